//! The control loop on the main lcore, every 10 ms: the control socket, the metrics
//! endpoint, link state, SIGHUP reloads, health checks, VRRP and the rate estimator.

use super::Running;
use crate::control::server::Workers;
use crate::control::{announce, estimator, metrics, vrrp};
use crate::dpdk::lcore;
use crate::dpdk::port::Port;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long the loop sleeps between iterations; also how often links are looked at
/// (a flap shorter than that goes unseen).
const PERIOD: Duration = Duration::from_millis(10);

/// Pieces of a table dump (each up to 256 entries) per loop iteration.
const DUMP_PIECES: usize = 16;

/// What the loop remembers between iterations.
pub(super) struct State {
    next_tick: Instant,
    /// Link state as last seen, and changes seen (a flap is logged and counted; the
    /// workers keep polling a port whose link is down: nothing to restart).
    link_up: Vec<bool>,
    link_changes: Vec<u64>,
    /// Each worker's (busy, loop) cycles at the last scrape.
    last_cycles: Vec<(u64, u64)>,
    /// The `vrrp_script`s being run.
    vrrp_scripts: Vec<vrrp::ScriptSpec>,
    /// A dump of the connection tables to the sync peers in progress: the worker
    /// and slot it has reached, and the buffer the pieces come in.
    sync_dump: Option<(usize, u32)>,
    dump_buf: Vec<crate::ipvs::sync::SyncConn>,
    /// The VIPs held on a kernel interface for a routing daemon (a port with
    /// `announce`), and when to look again.
    announcer: Option<announce::Announcer>,
    announce_at: Instant,
}

impl State {
    pub(super) fn new(ports: &[Port], workers: usize) -> State {
        State {
            next_tick: Instant::now() + Duration::from_secs(estimator::INTERVAL_S),
            link_up: ports.iter().map(|p| p.link().up).collect(),
            link_changes: vec![0; ports.len()],
            last_cycles: vec![(0, 0); workers],
            vrrp_scripts: Vec::new(),
            sync_dump: None,
            dump_buf: Vec::with_capacity(crate::control::agent::CONN_CHUNK),
            announcer: None,
            announce_at: Instant::now(),
        }
    }

    /// Announces on the kernel interface of the port configured to (if any).
    pub(super) fn with_announcer(mut self, d: &Running) -> State {
        let cfg = d.control.config.as_ref().map(|(_, c)| c);
        let ifname = cfg.and_then(|c| c.ports.iter().find(|p| p.announce)).and_then(|p| p.kernel.clone());
        self.announcer = ifname.map(|i| announce::Announcer::new(&i));
        self
    }

    /// Every 100 ms: the VIPs whose services hold their quorum are held on the
    /// kernel interface, the others not (a routing daemon exports what is held).
    fn announce(&mut self, d: &Running) {
        let now = Instant::now();
        let Some(a) = &mut self.announcer else { return };
        if now < self.announce_at {
            return;
        }
        self.announce_at = now + Duration::from_millis(100);
        let want = announce::wanted(&d.control.model, &d.control.checker.quorum_lost());
        for step in a.steps(&want) {
            if !run_ip(&step.args(&a.ifname)) {
                // Tried again in a second.
                self.announce_at = now + Duration::from_secs(1);
                continue;
            }
            a.done(&step);
            if step.announce {
                tracing::info!(vip = %step.addr, interface = %a.ifname, "announcing the VIP (its services are healthy)");
            } else {
                tracing::warn!(vip = %step.addr, interface = %a.ifname, "withdrawing the VIP (a service lost its quorum)");
            }
        }
    }

    /// Stopping: every announced VIP is withdrawn before the workers stop.
    pub(super) fn withdraw_all(&mut self) {
        let Some(a) = &mut self.announcer else { return };
        for step in a.steps(&Default::default()) {
            if run_ip(&step.args(&a.ifname)) {
                a.done(&step);
            }
        }
        tracing::info!(interface = %a.ifname, "VIPs withdrawn");
    }

    pub(super) fn iteration(&mut self, d: &mut Running) {
        d.socket.poll(&mut d.control, &d.links);
        if let Some((server, handle)) = &d.metrics {
            server.poll(|| {
                metrics::record(&self.figures(d));
                handle.render()
            });
        }
        self.watch_links(&d.ports);
        if d.reload.swap(false, Ordering::Relaxed) {
            match d.control.reload(&d.links) {
                Ok(r) => tracing::info!(
                    changes = r.changes,
                    notes = ?r.notes,
                    reverted = ?r.reverted,
                    "configuration reloaded (SIGHUP)"
                ),
                Err(e) => tracing::error!("{e}"),
            }
        }
        self.vrrp(d);
        self.sync(d);
        self.announce(d);
        for e in d.control.health_tick(&d.links, Instant::now()) {
            let service = metrics::service_label(e.service);
            let dest = format!("{}:{}", e.addr, e.port);
            if e.up {
                tracing::info!(%service, %dest, "real server up: back in the pool");
            } else {
                tracing::warn!(%service, %dest, "real server down: health check failed");
            }
        }
        for (s, up) in d.control.checker.take_quorum_changes() {
            let service = metrics::service_label(s);
            if up {
                tracing::info!(%service, "quorum regained: real servers back in place of the sorry server");
            } else {
                tracing::warn!(%service, "quorum lost: the sorry server (if any) takes the traffic");
            }
        }
        if Instant::now() >= self.next_tick {
            d.control.tick(&d.links);
            self.next_tick += Duration::from_secs(estimator::INTERVAL_S);
        }
        std::thread::sleep(PERIOD);
    }

    /// VRRP: advertisements in, timers and tracking, frames out, the addresses'
    /// ownership to the workers, transitions logged and notified.
    fn vrrp(&mut self, d: &mut Running) {
        if d.control.vrrp.instances.is_empty() && d.control.vrrp_out.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut out = std::mem::take(&mut d.control.vrrp_out);
        if let Some((_, cfg)) = &d.control.config {
            if cfg.vrrp.scripts != self.vrrp_scripts {
                self.vrrp_scripts = cfg.vrrp.scripts.clone();
                d.vrrp_io.set_scripts(&self.vrrp_scripts);
            }
        }
        let scripts = d.vrrp_io.poll_scripts(now);
        let quorum_lost = d.control.checker.quorum_lost();
        d.vrrp_io.receive(&mut d.control.vrrp, now, &mut out);
        let tracked = vrrp::Tracked { links: &self.link_up, quorum_lost: &quorum_lost, scripts: &scripts };
        d.control.vrrp.tick(now, &tracked, &mut out);
        // Ownership before the frames: a new master answers for its addresses by
        // the time its gratuitous ARPs are out.
        d.ownership.publish(&d.control.vrrp.carried());
        d.vrrp_io.send(&mut out);
        for t in d.control.vrrp.take_transitions() {
            let from = t.from.map_or("INIT", vrrp::State::name);
            match (t.from, t.to) {
                (None, _) => {
                    tracing::info!(instance = %t.instance, priority = t.priority, "VRRP: entering BACKUP state (init)")
                }
                (_, vrrp::State::Master) => {
                    tracing::warn!(instance = %t.instance, from, priority = t.priority, why = t.why, "VRRP: entering MASTER state")
                }
                (_, to) => {
                    tracing::warn!(instance = %t.instance, from, to = to.name(), why = t.why, "VRRP: entering {} state", to.name())
                }
            }
            let cmds = d.control.vrrp.notify_commands(&t);
            d.vrrp_io.notify(cmds);
            // Yielding to a peer that takes the addresses (a failback): it gets every
            // connection this director holds, not only those due by the kernel's
            // rules, so none breaks when it takes the traffic.
            if t.from == Some(vrrp::State::Master)
                && t.to == vrrp::State::Backup
                && d.sync_io.is_master()
                && self.sync_dump.is_none()
            {
                tracing::info!(instance = %t.instance, "connection sync: the whole table to the new master");
                self.sync_dump = Some((0, 0));
            }
        }
    }

    /// Connection sync: the daemons made what the control plane wants (an rvsadm
    /// command, a reload), then the messages in and out.
    fn sync(&mut self, d: &mut Running) {
        if d.control.sync != d.sync_io.spec {
            let want = d.control.sync.clone();
            let r = match &d.control.config {
                Some((_, cfg)) => d.sync_io.configure(&want, cfg, &d.sync_switch),
                None => Err("no configuration".to_string()),
            };
            match r {
                Ok(()) => {
                    tracing::info!(daemons = %want.listing().trim_end().replace('\n', "; "), "connection sync daemons")
                }
                Err(e) => {
                    tracing::error!("connection sync: {e}");
                    d.control.sync = d.sync_io.spec.clone();
                }
            }
        }
        let now = Instant::now();
        // A dump in progress: a few pieces per iteration (each a worker's answer
        // between two of its bursts).
        for _ in 0..DUMP_PIECES {
            let Some((w, from)) = self.sync_dump else { break };
            let buf = std::mem::take(&mut self.dump_buf);
            let Some((entries, next)) = d.links.sync_dump(w, from, buf) else {
                self.sync_dump = None;
                break;
            };
            d.sync_io.tell(&entries, now);
            self.dump_buf = entries;
            self.sync_dump = match next {
                Some(n) => Some((w, n)),
                None if w + 1 < d.counters.len() => Some((w + 1, 0)),
                None => None,
            };
        }
        d.sync_io.poll(&mut d.sync_rings, now);
    }

    /// Stopping: masters say priority 0 and the frames get a moment to leave
    /// through the workers before they stop.
    pub(super) fn vrrp_goodbye(&mut self, d: &mut Running) {
        if d.control.vrrp.instances.is_empty() {
            return;
        }
        let mut out = std::mem::take(&mut d.control.vrrp_out);
        d.control.vrrp.shutdown(&mut out);
        d.ownership.publish(&d.control.vrrp.carried());
        let n = out.len();
        d.vrrp_io.send(&mut out);
        if n > 0 {
            tracing::info!(frames = n, "VRRP: priority 0 sent, addresses released");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn watch_links(&mut self, ports: &[Port]) {
        for (i, p) in ports.iter().enumerate() {
            let up = p.link().up;
            if up != self.link_up[i] {
                self.link_up[i] = up;
                self.link_changes[i] += 1;
                if up {
                    tracing::info!(port = %p.name(), "link up");
                } else {
                    tracing::warn!(port = %p.name(), "link down");
                }
            }
        }
    }

    /// Everything the metrics endpoint exports, read now.
    fn figures(&mut self, d: &Running) -> metrics::Figures {
        let lcores = d
            .counters
            .iter()
            .zip(self.last_cycles.iter_mut())
            .map(|((lc, c), last)| {
                let mut snap = c.snapshot();
                snap.longest_loop_cycles = c.longest_loop_cycles.take();
                snap.longest_control_cycles = c.longest_control_cycles.take();
                let (busy, total) = (snap.busy_cycles - last.0, snap.loop_cycles - last.1);
                *last = (snap.busy_cycles, snap.loop_cycles);
                metrics::LcoreFigures {
                    lcore: *lc,
                    busy_ratio: if total == 0 { 0.0 } else { busy as f64 / total as f64 },
                    longest_loop_s: snap.longest_loop_cycles as f64 / lcore::tsc_hz().max(1) as f64,
                    longest_control_s: snap.longest_control_cycles as f64 / lcore::tsc_hz().max(1) as f64,
                    counters: snap,
                    table_capacity: d.cfg.workers.connections as u64,
                }
            })
            .collect();
        let ports = d
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let st = p.stats();
                metrics::PortFigures {
                    name: p.name().to_string(),
                    ipackets: st.ipackets,
                    opackets: st.opackets,
                    ibytes: st.ibytes,
                    obytes: st.obytes,
                    imissed: st.imissed,
                    ierrors: st.ierrors,
                    oerrors: st.oerrors,
                    rx_nombuf: st.rx_nombuf,
                    link_up: p.link().up,
                    link_changes: self.link_changes.get(i).copied().unwrap_or(0),
                }
            })
            .collect();
        metrics::Figures {
            services: d.control.metric_services(&d.links),
            lcores,
            ports,
            mempool_in_use: u64::from(d.pool.in_use()),
            mempool_capacity: u64::from(d.cfg.mempool.mbufs),
            config_generation: d.control.generation,
            reloads_ok: d.control.reloads_ok,
            reloads_failed: d.control.reloads_failed,
            health: d.control.checker.states(),
            vrrp: d
                .control
                .vrrp
                .instances
                .iter()
                .map(|i| (i.spec.name.clone(), i.state, i.priority, i.counters.clone()))
                .collect(),
            vrrp_unattributed: d.control.vrrp.unattributed,
            sync: (d.sync_io.spec.master.is_some() || d.sync_io.spec.backup.is_some())
                .then(|| d.sync_io.counters.clone()),
        }
    }
}

/// Runs `ip ARGS`; an address already there (adding) or already gone (deleting)
/// counts as done. False, logged, otherwise.
fn run_ip(args: &[String]) -> bool {
    match std::process::Command::new("ip").args(args).output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            if err.contains("File exists") || err.contains("Cannot assign requested address") {
                return true;
            }
            tracing::warn!(command = %args.join(" "), "ip: {}", err.trim());
            false
        }
        Err(e) => {
            tracing::warn!("running ip: {e}");
            false
        }
    }
}
