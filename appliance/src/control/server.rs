//! The control socket: a UNIX stream socket (mode 0600) on which each line is a
//! request (`protocol::Request`) and gets one line of response. The control lcore
//! polls it between its other duties; a request that changes the configuration is
//! validated against the `Model` first (all or nothing), then applied by every
//! worker.

use super::agent::{self, merge, ConnEntry};
use super::config::{self, Config};
use super::estimator::Estimators;
use super::health::Checker;
use super::listing::{self, ConnLineWriter};
use super::model::{Item, Model};
use super::protocol::{Change, Request, Response, ServiceInfo, ServiceKey, StatsInfo};
use hashbrown::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How the control plane reaches the workers.
pub trait Workers {
    /// Applies validated changes on every worker; `next` is the model they lead to.
    fn apply(&self, changes: &[Change], next: &Model) -> Result<(), String>;
    /// Every worker's listing.
    fn list(&self) -> Vec<Vec<ServiceInfo>>;
    /// Every worker's connections, a piece at a time as each worker answers:
    /// `each` gets every piece and returns false to stop (the client went away).
    /// Returns how many connections were listed.
    fn connections(&self, each: &mut dyn FnMut(&[ConnEntry]) -> bool) -> u64;
    /// Zeroes traffic counters on every worker.
    fn zero(&self, service: Option<ServiceKey>) -> Result<(), String>;
    /// A piece of worker `worker`'s table as sync entries from slot `from` (into
    /// `buf`), and where the next piece starts; None when the worker does not answer.
    fn sync_dump(
        &self,
        worker: usize,
        from: u32,
        buf: Vec<crate::ipvs::sync::SyncConn>,
    ) -> Option<(Vec<crate::ipvs::sync::SyncConn>, Option<u32>)>;
}

/// How a reload goes: `dry_run` changes nothing; `keep` takes only the file's
/// edits since it was last read and keeps every other runtime change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadMode {
    pub dry_run: bool,
    pub keep: bool,
}

/// What a reload did (or would do): how many changes, each as the ipvsadm command
/// that makes it, those that undo a runtime change, and what it could not change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reload {
    pub changes: usize,
    pub notes: Vec<String>,
    pub applied: Vec<String>,
    pub reverted: Vec<String>,
}

/// The control plane's state.
pub struct Control {
    pub model: Model,
    /// Connection-table size reported in listings.
    pub table_size: u32,
    /// The configuration file (for reloads) and what it set at start.
    pub config: Option<(PathBuf, Config)>,
    pub estimators: Estimators,
    /// Configuration changes applied since start.
    pub generation: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// What `-Z` took out of the listings, added back for the exported counters
    /// (which only go up).
    stats_base: HashMap<(ServiceKey, Option<(std::net::IpAddr, u16)>), StatsInfo>,
    /// Health checks: what is published is the operator's model seen through them.
    pub checker: Checker,
    /// VRRP: the instances, what the ports they run on look like, and the frames
    /// they want sent (the daemon carries them out).
    pub vrrp: super::vrrp::Vrrp,
    pub vrrp_ports: Vec<super::vrrp::PortInfo>,
    pub vrrp_out: Vec<(usize, Vec<u8>)>,
    /// The connection sync daemons wanted (the daemon loop makes them so).
    pub sync: super::sync::SyncSpec,
}

impl Control {
    pub fn new(model: Model, table_size: u32) -> Control {
        Control {
            model,
            table_size,
            config: None,
            estimators: Estimators::default(),
            generation: 0,
            reloads_ok: 0,
            reloads_failed: 0,
            stats_base: HashMap::new(),
            checker: Checker::new(Vec::new()),
            vrrp: super::vrrp::Vrrp::default(),
            vrrp_ports: Vec::new(),
            vrrp_out: Vec::new(),
            sync: super::sync::SyncSpec { threshold: 3, period: 50, ..Default::default() },
        }
    }

    /// Remembers the configuration file, for `Reload` and SIGHUP.
    pub fn with_config(mut self, path: PathBuf, cfg: Config) -> Control {
        self.config = Some((path, cfg));
        self
    }

    /// Health checks for these services.
    pub fn with_checks(mut self, checks: Vec<(ServiceKey, super::health::CheckSpec)>) -> Control {
        self.checker = Checker::new(checks);
        self
    }

    /// `--start-daemon`: the interface must be a port (or its kernel interface)
    /// with a kernel interface; the daemon loop starts it.
    fn start_daemon(&mut self, role: &str, spec: super::sync::DaemonSpec) -> Result<(), String> {
        if let Some((_, cfg)) = &self.config {
            let ok = cfg.ports.iter().any(|p| {
                (p.name == spec.mcast_interface || p.kernel.as_deref() == Some(spec.mcast_interface.as_str()))
                    && p.kernel.is_some()
            });
            if !ok {
                return Err(format!(
                    "--mcast-interface {}: no port with a kernel interface of that name (sync travels through it)",
                    spec.mcast_interface
                ));
            }
        }
        match role {
            "master" => self.sync.master = Some(spec),
            "backup" => self.sync.backup = Some(spec),
            _ => return Err(format!("illegal start-daemon parameter specified: {role}")),
        }
        Ok(())
    }

    /// Real servers at the appliance's own addresses are Local.
    fn localize(&mut self, changes: &mut [Change]) -> &mut Control {
        let Some((_, cfg)) = &self.config else { return self };
        let own = cfg.own_addresses();
        for c in changes {
            if let Change::AddDest(d) | Change::EditDest(d) = c {
                super::model::localize(d, &own);
            }
        }
        self
    }

    fn apply(&mut self, changes: &[Change], workers: &dyn Workers) -> Result<(), String> {
        let mut next = self.model.clone();
        next.apply_all(changes)?;
        let effective = self.checker.overlay(&next);
        workers.apply(changes, &effective)?;
        self.model = next;
        if !changes.is_empty() {
            self.generation += 1;
        }
        Ok(())
    }

    /// The services with counters since start (listing counters plus what `-Z`
    /// took away), for the metrics.
    pub fn metric_services(&self, workers: &dyn Workers) -> Vec<ServiceInfo> {
        let mut list = merge(workers.list());
        for s in &mut list {
            if let Some(b) = self.stats_base.get(&(s.spec.service, None)) {
                add_stats(&mut s.stats, b);
            }
            for d in &mut s.dests {
                if let Some(b) = self.stats_base.get(&(s.spec.service, Some((d.addr, d.port)))) {
                    add_stats(&mut d.stats, b);
                }
            }
        }
        list
    }

    /// Answers one request.
    pub fn handle(&mut self, req: Request, workers: &dyn Workers) -> Response {
        match req {
            Request::Apply { mut changes } => match self.localize(&mut changes).apply(&changes, workers) {
                Ok(()) => Response::Ok,
                Err(message) => Response::Error { message },
            },
            Request::List => {
                let mut services = merge(workers.list());
                self.estimators.fill(&mut services);
                Response::Services { services, conn_table_size: self.table_size }
            }
            // Whole, for callers in the process; the socket streams it (`serve_client`).
            Request::Connections => {
                let mut connections = Vec::new();
                workers.connections(&mut |piece| {
                    connections.extend(piece.iter().map(agent::conn_info));
                    true
                });
                Response::Connections { connections }
            }
            Request::Timeouts => {
                let (tcp, tcpfin, udp) = self.model.timeouts.get();
                Response::Timeouts { tcp, tcpfin, udp }
            }
            Request::Zero { service } => {
                if let Some(s) = service {
                    if !self.model.services.iter().any(|(x, _)| x.service == s) {
                        return Response::Error { message: "No such service".into() };
                    }
                }
                for s in merge(workers.list()).into_iter().filter(|s| service.is_none_or(|z| z == s.spec.service)) {
                    add_stats(self.stats_base.entry((s.spec.service, None)).or_default(), &s.stats);
                    for d in &s.dests {
                        add_stats(
                            self.stats_base.entry((s.spec.service, Some((d.addr, d.port)))).or_default(),
                            &d.stats,
                        );
                    }
                }
                match workers.zero(service) {
                    Ok(()) => {
                        self.estimators.zero(service);
                        Response::Ok
                    }
                    Err(message) => Response::Error { message },
                }
            }
            Request::Reload { dry_run, keep } => match self.reload_as(workers, ReloadMode { dry_run, keep }) {
                Ok(r) => Response::Reloaded {
                    changes: r.changes,
                    notes: r.notes,
                    applied: r.applied,
                    reverted: r.reverted,
                    dry_run,
                },
                Err(message) => Response::Error { message },
            },
            Request::Vrrp => Response::Vrrp { listing: self.vrrp.listing() },
            Request::Sysctl => Response::Sysctl {
                settings: self.model.sysctl.list().into_iter().map(|(n, v)| (n.to_string(), v)).collect(),
            },
            Request::FwmarkRules => Response::FwmarkRules { rules: self.model.fwmark.clone() },
            Request::Daemon => Response::Daemon { listing: self.sync.listing() },
            Request::StartDaemon { role, spec } => match self.start_daemon(&role, spec) {
                Ok(()) => Response::Ok,
                Err(message) => Response::Error { message },
            },
            Request::StopDaemon { role } => {
                match role.as_str() {
                    "master" => self.sync.master = None,
                    "backup" => self.sync.backup = None,
                    _ => {
                        return Response::Error { message: format!("illegal stop-daemon parameter specified: {role}") }
                    }
                }
                Response::Ok
            }
        }
    }

    /// Re-reads the configuration file and applies the difference (services, dests,
    /// timeouts, firewall-mark rules) at once; an invalid file changes nothing.
    /// Start-up-only settings that differ are reported, not applied.
    pub fn reload(&mut self, workers: &dyn Workers) -> Result<Reload, String> {
        self.reload_as(workers, ReloadMode::default())
    }

    /// `reload`, as a dry run (nothing changes) or keeping runtime changes.
    pub fn reload_as(&mut self, workers: &dyn Workers, mode: ReloadMode) -> Result<Reload, String> {
        let r = self.reload_inner(workers, mode);
        if mode.dry_run {
            return r;
        }
        if r.is_ok() {
            self.reloads_ok += 1;
        } else {
            self.reloads_failed += 1;
        }
        r
    }

    fn reload_inner(&mut self, workers: &dyn Workers, mode: ReloadMode) -> Result<Reload, String> {
        let Some((path, running)) = &self.config else {
            return Err("rvsd was started without a configuration file to reload".into());
        };
        let path = path.clone();
        let new = config::load(&path).map_err(|e| format!("reload rejected, running configuration kept: {e}"))?;
        let mut notes = Vec::new();
        if new.eal != running.eal {
            notes.push("eal: changed; takes effect at the next start".to_string());
        }
        if new.ports != running.ports {
            notes.push("port: changed; takes effect at the next start".to_string());
        }
        if new.routes != running.routes || new.neighbours != running.neighbours {
            notes.push("route/neighbour: changed; takes effect at the next start".to_string());
        }
        if new.workers != running.workers || new.mempool != running.mempool {
            notes.push("workers/mempool: changed; takes effect at the next start".to_string());
        }
        if new.control_socket != running.control_socket {
            notes.push("control.socket: changed; takes effect at the next start".to_string());
        }
        if new.metrics_listen != running.metrics_listen {
            notes.push("metrics: changed; takes effect at the next start".to_string());
        }
        let target = if mode.keep { self.model.keep_runtime(&running.model, &new.model) } else { new.model.clone() };
        let changes = self.model.diff(&target);
        // What rvsadm changed since the file was read: a change of the reload that
        // touches the same thing undoes it.
        let runtime: Vec<Item> = running.model.diff(&self.model).iter().map(Item::of).collect();
        let touched_at_run_time = |c: &Change| {
            let item = Item::of(c);
            runtime.iter().any(|r| {
                *r == item || *r == Item::All || matches!((r, &item), (Item::Service(s), Item::Dest(d, _, _)) if s == d)
            })
        };
        let applied: Vec<String> = changes.iter().map(listing::change_line).collect();
        let reverted: Vec<String> =
            changes.iter().filter(|c| touched_at_run_time(c)).map(listing::change_line).collect();
        let checks_changed = self.checker_specs_differ(&new.checks);
        let vrrp_changed = new.vrrp != running.vrrp;
        // [sync] as the file now says, only when the file changed it: daemons an
        // operator started with rvsadm stay otherwise.
        let sync_changed = new.sync != running.sync;
        let n = changes.len() + usize::from(checks_changed) + usize::from(vrrp_changed) + usize::from(sync_changed);
        if mode.dry_run {
            for (changed, what) in
                [(checks_changed, "health checks"), (vrrp_changed, "vrrp instances"), (sync_changed, "sync daemons")]
            {
                if changed {
                    notes.push(format!("{what}: changed in the file"));
                }
            }
            return Ok(Reload { changes: n, notes, applied, reverted });
        }
        if checks_changed {
            self.checker.set_specs(new.checks.clone());
        }
        self.apply(&changes, workers).map_err(|e| format!("reload rejected, running configuration kept: {e}"))?;
        for r in &reverted {
            tracing::warn!(change = %r, "reload reverted a runtime change");
        }
        if vrrp_changed {
            self.vrrp.configure(new.vrrp.clone(), &self.vrrp_ports, std::time::Instant::now(), &mut self.vrrp_out);
        }
        if sync_changed {
            self.sync = new.sync.clone();
        }
        if let Some((_, running)) = &mut self.config {
            running.model = new.model;
            running.checks = new.checks;
            running.vrrp = new.vrrp;
            running.sync = new.sync;
        }
        Ok(Reload { changes: n, notes, applied, reverted })
    }

    fn checker_specs_differ(&self, new: &[(ServiceKey, super::health::CheckSpec)]) -> bool {
        let old = self.config.as_ref().map(|(_, c)| c.checks.clone()).unwrap_or_default();
        old != new
    }

    /// Runs the health checks that are due; when a real server changes state the
    /// model seen through the checks is published (the path an operator's change
    /// takes). Returns the state changes.
    pub fn health_tick(&mut self, workers: &dyn Workers, now: std::time::Instant) -> Vec<super::health::Event> {
        if self.checker.is_empty() {
            return Vec::new();
        }
        let events = self.checker.poll(&self.model, now);
        if !events.is_empty() {
            let effective = self.checker.overlay(&self.model);
            match workers.apply(&[], &effective) {
                Ok(()) => self.generation += 1,
                Err(e) => tracing::error!("publishing health changes: {e}"),
            }
        }
        events
    }

    /// Feeds the rate estimators (every `estimator::INTERVAL_S` seconds).
    pub fn tick(&mut self, workers: &dyn Workers) {
        let services = merge(workers.list());
        self.estimators.tick(&services);
    }
}

fn add_stats(a: &mut StatsInfo, b: &StatsInfo) {
    a.conns += b.conns;
    a.inpkts += b.inpkts;
    a.outpkts += b.outpkts;
    a.inbytes += b.inbytes;
    a.outbytes += b.outbytes;
}

/// A bound control socket.
#[derive(Debug)]
pub struct Socket {
    listener: UnixListener,
    path: PathBuf,
}

impl Socket {
    /// Binds `path` (creating its directory, replacing a stale socket) with mode 0600.
    pub fn bind(path: &Path) -> Result<Socket, String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(format!("{} is in use by another rvsd", path.display()));
            }
            std::fs::remove_file(path).map_err(|e| format!("removing stale {}: {e}", path.display()))?;
        }
        let listener = UnixListener::bind(path).map_err(|e| format!("binding {}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(Socket { listener, path: path.to_path_buf() })
    }

    /// Serves every client waiting now; returns how many requests were answered.
    pub fn poll(&self, control: &mut Control, workers: &dyn Workers) -> usize {
        let mut n = 0;
        while let Ok((stream, _)) = self.listener.accept() {
            n += serve_client(stream, control, workers);
        }
        n
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_client(stream: UnixStream, control: &mut Control, workers: &dyn Workers) -> usize {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let Ok(mut writer) = stream.try_clone() else { return 0 };
    let reader = BufReader::new(stream);
    let mut n = 0;
    for line in reader.lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let resp = match Request::from_line(&line) {
            Ok(Request::Connections) => {
                // Streamed: one line per piece, as the workers answer; memory stays
                // bounded whatever the table's size.
                let mut sent = true;
                let mut w = ConnLineWriter::default();
                let count = workers.connections(&mut |piece| {
                    let mut lines = String::with_capacity(piece.len() * 80);
                    agent::format_entries(piece, &mut w, &mut lines);
                    let line = Response::ConnectionLines { lines }.to_line();
                    sent = writer.write_all(line.as_bytes()).is_ok();
                    sent
                });
                if !sent {
                    break;
                }
                Response::ConnectionsEnd { count }
            }
            Ok(req) => control.handle(req, workers),
            Err(message) => Response::Error { message },
        };
        if writer.write_all(resp.to_line().as_bytes()).is_err() {
            break;
        }
        n += 1;
    }
    n
}

/// Client side: sends `req` to the socket at `path` and hands each response line to
/// `each` until it returns false (a streamed answer's last line) or rvsd closes.
pub fn request_each(
    path: &Path,
    req: &Request,
    mut each: impl FnMut(Response) -> Result<bool, String>,
) -> Result<(), String> {
    let stream = UnixStream::connect(path).map_err(|e| {
        format!("cannot reach rvsd at {}: {e} (is rvsd running? RVSADM_SOCKET names another socket)", path.display())
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let mut w = stream.try_clone().map_err(|e| e.to_string())?;
    w.write_all(req.to_line().as_bytes()).map_err(|e| format!("writing to {}: {e}", path.display()))?;
    w.shutdown(std::net::Shutdown::Write).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(|e| format!("reading from {}: {e}", path.display()))?;
        if line.is_empty() {
            return Err(format!("rvsd at {} closed the connection without an answer", path.display()));
        }
        if !each(Response::from_line(&line)?)? {
            return Ok(());
        }
    }
}

/// Client side: sends one request to the socket at `path`, returns the response.
pub fn request(path: &Path, req: &Request) -> Result<Response, String> {
    let mut answer = None;
    request_each(path, req, |r| {
        answer = Some(r);
        Ok(false)
    })?;
    answer.ok_or_else(|| format!("rvsd at {} closed the connection without an answer", path.display()))
}

#[cfg(test)]
mod tests {
    use super::super::agent::{self, WorkerReply, WorkerRequest};
    use super::super::protocol::*;
    use super::*;
    use crate::ipvs::dest::FwdMethod;
    use crate::ipvs::director::Director;
    use crate::ipvs::service::ServiceTable;
    use crate::ipvs::Protocol;
    use std::cell::RefCell;
    use std::net::Ipv4Addr;

    /// Two in-process "workers" answering through `agent::serve`.
    /// Workers in the process: their directors, and the configuration they run.
    struct Fake(RefCell<Vec<Director>>, RefCell<Model>);

    impl Workers for Fake {
        fn apply(&self, changes: &[Change], next: &Model) -> Result<(), String> {
            *self.1.borrow_mut() = next.clone();
            for d in self.0.borrow_mut().iter_mut() {
                if let WorkerReply::Applied(Err(e)) = agent::serve(WorkerRequest::Apply(changes.to_vec()), d, 0) {
                    return Err(e);
                }
            }
            Ok(())
        }
        fn list(&self) -> Vec<Vec<ServiceInfo>> {
            let model = self.1.borrow();
            self.0.borrow_mut().iter_mut().map(|d| agent::list(d, &model)).collect()
        }
        fn connections(&self, each: &mut dyn FnMut(&[agent::ConnEntry]) -> bool) -> u64 {
            self.0.borrow_mut().iter_mut().map(|d| agent::each_piece(d, 0, |piece| _ = each(piece))).sum()
        }

        fn zero(&self, service: Option<ServiceKey>) -> Result<(), String> {
            for d in self.0.borrow_mut().iter_mut() {
                agent::serve(WorkerRequest::Zero(service), d, 0);
            }
            Ok(())
        }

        fn sync_dump(
            &self,
            worker: usize,
            from: u32,
            buf: Vec<crate::ipvs::sync::SyncConn>,
        ) -> Option<(Vec<crate::ipvs::sync::SyncConn>, Option<u32>)> {
            let mut w = self.0.borrow_mut();
            let d = w.get_mut(worker)?;
            match agent::serve(WorkerRequest::SyncDump { from, buf }, d, 0) {
                WorkerReply::SyncDump { entries, next } => Some((entries, next)),
                _ => None,
            }
        }
    }

    #[test]
    fn socket_roundtrip_atomic_apply_and_summed_listing() {
        let dir = std::env::temp_dir().join(format!("rvs-sock-{}", std::process::id()));
        let path = dir.join("t.sock");
        let sock = Socket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(Socket::bind(&path).unwrap_err().contains("in use"));
        let workers = Fake(
            RefCell::new(vec![Director::new(ServiceTable::new(), 64, 1), Director::new(ServiceTable::new(), 64, 2)]),
            RefCell::default(),
        );
        let mut control = Control::new(Model::default(), 4096);
        let vip = Ipv4Addr::new(198, 18, 0, 10);
        let svc = ServiceKey::Addr { proto: Protocol::Tcp, addr: vip, port: 80 };
        let add = Request::Apply {
            changes: vec![
                Change::AddService(ServiceSpec {
                    service: svc,
                    scheduler: "rr".into(),
                    flags: vec![],
                    persistent: None,
                    netmask: None,
                    prefix6: None,
                }),
                Change::AddDest(DestSpec {
                    service: svc,
                    addr: std::net::IpAddr::from(Ipv4Addr::new(198, 18, 1, 11)),
                    port: 80,
                    forward: FwdMethod::Masq,
                    weight: 1,
                    upper: 0,
                    lower: 0,
                }),
            ],
        };
        let bad = Request::Apply {
            changes: vec![
                Change::DelDest { service: svc, addr: std::net::IpAddr::from(Ipv4Addr::new(198, 18, 1, 11)), port: 80 },
                Change::DelService { service: ServiceKey::Addr { proto: Protocol::Tcp, addr: vip, port: 81 } },
            ],
        };
        // Client in a thread, server polled here.
        let p2 = path.clone();
        let client = std::thread::spawn(move || {
            let a = request(&p2, &add).unwrap();
            let b = request(&p2, &bad).unwrap();
            let l = request(&p2, &Request::List).unwrap();
            (a, b, l)
        });
        let t0 = std::time::Instant::now();
        let mut served = 0;
        while served < 3 && t0.elapsed() < Duration::from_secs(10) {
            served += sock.poll(&mut control, &workers);
            std::thread::sleep(Duration::from_millis(5));
        }
        let (a, b, l) = client.join().unwrap();
        assert_eq!(a, Response::Ok);
        assert_eq!(b, Response::Error { message: "No such service".into() }, "all or nothing");
        let Response::Services { services, conn_table_size } = l else { panic!("{l:?}") };
        assert_eq!(conn_table_size, 4096);
        assert_eq!(services.len(), 1);
        assert_eq!(services[0].dests.len(), 1, "the first half of the failed request was not applied");
        drop(sock);
        assert!(!path.exists(), "socket removed on drop");
        let e = request(&path, &Request::List).unwrap_err();
        assert!(e.contains("cannot reach rvsd"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
