//! rvsd: the RVS daemon. Reads the configuration, brings EAL and the ports up, runs
//! one worker per configured lcore, and stops cleanly on SIGINT / SIGTERM.
//!
//! Exit codes: 0 after a clean stop, 2 for a configuration error (the message names
//! the key), 1 when DPDK could not bring the configuration up.

use appliance::control::config::{self, Config, ConfigError};
use appliance::control::protocol::{Change, ConnInfo, ServiceInfo, ServiceRef};
use appliance::control::server::Control;
use appliance::control::snapshot::{reconcile, Published, Snapshot};
use appliance::control::{self, agent, model};
use appliance::dpdk::eal::Eal;
use appliance::dpdk::mempool::Mempool;
use appliance::dpdk::port::{rss, Port, PortSetup};
use appliance::dpdk::{self, lcore};
use appliance::ipvs::director::Director;
use appliance::ipvs::fwmark::Classifier;
use appliance::ipvs::service::ServiceTable;
use appliance::pipeline::counters::{Counters, CountersSnapshot};
use appliance::pipeline::neigh::NeighbourTable;
use appliance::pipeline::route::Route;
use appliance::pipeline::{Pipeline, PortView};
use appliance::worker::Worker;
use clap::Parser;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "rvsd", version, about = "RVS daemon: the Linux Virtual Server director on DPDK")]
struct Cli {
    /// Configuration file (TOML); RVS_<SECTION>__<KEY> environment variables override it.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Run N workers (lcores 1..=N, sharing CPUs if there are fewer); overrides
    /// workers.lcores.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: Option<u32>,
}

/// Why the daemon could not start.
enum StartError {
    /// Bad configuration (exit 2).
    Config(ConfigError),
    /// DPDK could not do what the configuration asks (exit 1).
    Dpdk(String),
}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> Self {
        StartError::Config(e)
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("RVS_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let result = config::load(&cli.config).map_err(StartError::from).and_then(|mut cfg| {
        if let Some(n) = cli.workers {
            cfg.set_workers(n);
        }
        cfg.vdev_queues();
        if cli.check {
            println!("rvsd: {} is valid", cli.config.display());
            return Ok(());
        }
        run(cfg, &cli.config)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::Config(e)) => {
            eprintln!("rvsd: {}: {e}", cli.config.display());
            ExitCode::from(2)
        }
        Err(StartError::Dpdk(e)) => {
            eprintln!("rvsd: {e}");
            ExitCode::from(1)
        }
    }
}

fn hugepages_free() -> bool {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| l.strip_prefix("HugePages_Free:")).and_then(|v| v.trim().parse::<u64>().ok())
        })
        .is_some_and(|n| n > 0)
}

fn run(cfg: Config, config_path: &std::path::Path) -> Result<(), StartError> {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| config::parse_cpu_list(&s))
        .unwrap_or_else(|| (0..128).collect());
    let lcore_map = config::check_lcores(&cfg, &online)?;
    let huge = hugepages_free();
    if !huge && cfg.eal.hugepages == config::Hugepages::Auto {
        tracing::warn!("no free hugepages: running with --no-huge (run scripts/setup to reserve some)");
    }
    // The exception path: a net_tap vdev per port that has a kernel interface.
    let host_vdevs = cfg.host_vdevs();
    let mut cfg = cfg;
    cfg.eal.args.extend(host_vdevs.iter().map(|(_, _, arg)| arg.clone()));
    let argv = cfg.eal_argv_mapped(huge, &lcore_map);
    tracing::info!(args = ?argv, "starting EAL");
    let eal = Eal::init(&argv).map_err(|e| {
        let vdevs: Vec<String> = cfg.vdevs().into_iter().map(|(_, n)| n).collect();
        let hint =
            if vdevs.is_empty() { String::new() } else { format!("; check the --vdev drivers: {}", vdevs.join(", ")) };
        ConfigError::new("eal.args", format!("{e}{hint}"))
    })?;
    tracing::info!(version = %dpdk::version(), "EAL up");

    // Every vdev asked for must have come up.
    let present = Port::all_names();
    for (i, name) in cfg.vdevs() {
        if !present.contains(&name) {
            return Err(ConfigError::new(
                format!("eal.args[{i}]"),
                format!("vdev \"{name}\" did not come up (see EAL's messages above; devices present: {present:?})"),
            )
            .into());
        }
    }
    let mut ports = Vec::with_capacity(cfg.ports.len());
    for (i, p) in cfg.ports.iter().enumerate() {
        let port = Port::by_name(&p.name).map_err(|_| {
            ConfigError::new(
                format!("port[{i}].name"),
                format!("no DPDK device named \"{}\" (devices present: {present:?})", p.name),
            )
        })?;
        ports.push(port);
    }

    let nworkers = u16::try_from(cfg.workers.lcores.len()).unwrap_or(u16::MAX);
    let socket = lcore::socket_of(lcore::main_lcore());
    let pool = Arc::new(
        Mempool::new("rvs_mbufs", cfg.mempool.mbufs, cfg.mempool.cache, data_room(&cfg), socket)
            .map_err(|e| StartError::Dpdk(format!("mempool: {e}")))?,
    );

    // The ports' Toeplitz key, alive for the process (drivers keep a pointer).
    let rss_key: &'static [u8; 40] = Box::leak(Box::new(cfg.workers.rss_key));
    let mut views = Vec::with_capacity(ports.len());
    let mut queues: Vec<Vec<_>> = (0..nworkers).map(|_| Vec::new()).collect();
    for (i, (port, pc)) in ports.iter().zip(&cfg.ports).enumerate() {
        let info = port.info().map_err(|e| StartError::Dpdk(e.to_string()))?;
        let setup = PortSetup {
            queues: nworkers,
            rx_descriptors: cfg.workers.rx_descriptors,
            tx_descriptors: cfg.workers.tx_descriptors,
            mtu: pc.mtu,
            rss_hf: rss_fields(pc.side, cfg.workers.steering),
            rss_key: Some(rss_key),
            promiscuous: pc.promiscuous,
        };
        let configured =
            port.configure(&setup, &pool).map_err(|e| ConfigError::new(format!("port[{i}]"), e.to_string()))?;
        port.start(setup.promiscuous).map_err(|e| ConfigError::new(format!("port[{i}]"), e.to_string()))?;
        let mac = port.mac().map_err(|e| StartError::Dpdk(e.to_string()))?;
        let link = port.link();
        tracing::info!(
            port = %port.name(),
            id = port.id(),
            driver = %info.driver,
            %mac,
            link_up = link.up,
            speed_mbps = link.speed_mbps,
            rss_hf = format!("{:#x}", configured.rss_hf),
            hardware_steering = nworkers > 1 && configured.rss_hf & rss::ONLY_MASK != 0,
            tx_offloads = format!("{:#x}", configured.tx_offloads),
            tx_offload_capa = format!("{:#x}", info.tx_offload_capa),
            addresses = ?pc.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "port up"
        );
        views.push(PortView { mac, addresses: pc.addresses.clone(), mtu: pc.mtu, host: Default::default() });
        for (w, pair) in configured.rx.into_iter().zip(configured.tx).enumerate() {
            queues[w].push(pair);
        }
    }

    // The control socket before the workers: a clash fails the start.
    let socket =
        control::server::Socket::bind(&cfg.control_socket).map_err(|e| ConfigError::new("control.socket", e))?;
    let mut control = Control::new(cfg.model.clone(), u32::try_from(cfg.workers.connections).unwrap_or(u32::MAX))
        .with_config(config_path.to_path_buf(), cfg.clone())
        .with_checks(cfg.checks.clone());
    let classifier = Classifier::new(cfg.fwmark_rules.clone());
    let mut worker_links = Vec::with_capacity(cfg.workers.lcores.len());

    // Kernel interfaces: configured like the DPDK ports (one queue pair per worker),
    // given the port's MAC and its addresses that are not VIPs.
    let vips: Vec<std::net::Ipv4Addr> = cfg
        .model
        .services
        .iter()
        .filter_map(|(s, _)| match s.service {
            control::protocol::ServiceRef::Tcp { addr, .. } | control::protocol::ServiceRef::Udp { addr, .. } => {
                Some(addr)
            }
            control::protocol::ServiceRef::Fwmark { .. } => None,
        })
        .collect();
    for (real, dev, _) in &host_vdevs {
        let pc = &cfg.ports[*real];
        let ifname = pc.kernel.clone().unwrap_or_default();
        let tap = Port::by_name(dev).map_err(|e| ConfigError::new(format!("port[{real}].kernel"), e.to_string()))?;
        let setup = PortSetup {
            queues: nworkers,
            rx_descriptors: 256,
            tx_descriptors: 256,
            mtu: pc.mtu,
            rss_hf: 0,
            rss_key: None,
            promiscuous: false,
        };
        let configured = tap
            .configure(&setup, &pool)
            .map_err(|e| ConfigError::new(format!("port[{real}].kernel"), e.to_string()))?;
        tap.start(false).map_err(|e| ConfigError::new(format!("port[{real}].kernel"), e.to_string()))?;
        let tap_index = u16::try_from(views.len()).unwrap_or(u16::MAX);
        let real16 = u16::try_from(*real).unwrap_or(u16::MAX);
        views[*real].host = appliance::pipeline::Host::Via(tap_index);
        let mac = views[*real].mac;
        views.push(PortView { mac, addresses: Vec::new(), mtu: pc.mtu, host: appliance::pipeline::Host::For(real16) });
        for (w, pair) in configured.rx.into_iter().zip(configured.tx).enumerate() {
            queues[w].push(pair);
        }
        let mut cmds: Vec<Vec<String>> = vec![
            vec!["link".into(), "set".into(), "dev".into(), ifname.clone(), "address".into(), mac.to_string()],
            vec!["link".into(), "set".into(), "dev".into(), ifname.clone(), "up".into()],
        ];
        for a in pc.addresses.iter().filter(|a| !vips.contains(&a.address())) {
            cmds.push(vec!["addr".into(), "add".into(), a.to_string(), "dev".into(), ifname.clone()]);
        }
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"), "1");
        for c in cmds {
            let out = std::process::Command::new("ip").args(&c).output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => {
                    return Err(StartError::Dpdk(format!(
                        "ip {}: {}",
                        c.join(" "),
                        String::from_utf8_lossy(&o.stderr).trim()
                    )))
                }
                Err(e) => return Err(StartError::Dpdk(format!("running ip: {e}"))),
            }
        }
        tracing::info!(port = %pc.name, kernel = %ifname, %mac, "exception path up");
        ports.push(tap);
    }

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| StartError::Dpdk(format!("installing a signal handler: {e}")))?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
        .map_err(|e| StartError::Dpdk(format!("installing a signal handler: {e}")))?;

    // Metrics: the recorder, and the endpoint the control loop answers.
    let metrics = match cfg.metrics_listen {
        Some(addr) => {
            let server = control::http::MetricsServer::bind(addr).map_err(|e| ConfigError::new("metrics.listen", e))?;
            let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .map_err(|e| StartError::Dpdk(format!("metrics recorder: {e}")))?;
            control::metrics::describe();
            Some((server, handle))
        }
        None => None,
    };
    // The first configuration snapshot; workers build their tables from it.
    // Seen through the health checks (servers with `alpha` start out of the pool).
    control.checker.poll(&cfg.model, std::time::Instant::now());
    let effective = control.checker.overlay(&cfg.model);
    let published =
        Published::new(Snapshot::default().next(effective, cfg.workers.lcores.len()), cfg.workers.lcores.len());
    let first = published.load();
    let mut all_counters = Vec::with_capacity(cfg.workers.lcores.len());
    let mut rings = appliance::worker::rings(cfg.workers.lcores.len(), 1024).into_iter();
    for (index, (&lc, qs)) in cfg.workers.lcores.iter().zip(queues).enumerate() {
        let counters = Arc::new(Counters::default());
        all_counters.push((lc, Arc::clone(&counters)));
        let mut neigh = NeighbourTable::with_capacity(cfg.workers.neighbour_capacity);
        for n in &cfg.neighbours {
            neigh.insert_static(n.address, n.mac, u16::try_from(n.port).unwrap_or(u16::MAX));
        }
        let routes = cfg
            .routes
            .iter()
            .map(|r| Route { prefix: r.prefix, via: r.via, port: u16::try_from(r.port).unwrap_or(u16::MAX) })
            .collect();
        let mut director = Director::new(ServiceTable::new(), cfg.workers.connections, random_seed());
        reconcile(&mut director, &Snapshot::default(), &first, index)
            .map_err(|e| StartError::Dpdk(format!("building worker state: {e}")))?;
        published.ack(index, first.generation);
        let (tx, rx) = crossbeam_channel::bounded(16);
        worker_links.push(tx);
        let worker = Worker {
            lcore: lc,
            index: u16::try_from(index).unwrap_or(u16::MAX),
            workers: nworkers,
            steering: cfg.workers.steering,
            rss_key: cfg.workers.rss_key,
            rings: rings.next().ok_or_else(|| StartError::Dpdk("rings".into()))?,
            queues: qs,
            pipeline: Pipeline::new(views.clone(), neigh, counters)
                .with_routes(routes)
                .with_director(director)
                .with_classifier(classifier.clone()),
            pool: Arc::clone(&pool),
            stop: Arc::clone(&stop),
            idle_sleep_us: cfg.workers.idle_sleep_us,
            control: rx,
            config: Arc::clone(&published),
            current: Arc::clone(&first),
        };
        lcore::launch(lc, move || worker.run()).map_err(|e| StartError::Dpdk(e.to_string()))?;
    }
    let links = ChannelWorkers { requests: worker_links, published: Arc::clone(&published) };
    if nworkers > 1
        && cfg.workers.steering == appliance::pipeline::steer::Key::ClientPort
        && cfg.model.services.iter().any(|(s, _)| s.persistent.is_some())
    {
        tracing::warn!(
            "persistent services with {nworkers} workers and workers.steering = \"client-port\": a client's \
             connections may land on different workers, each with its own templates; set \
             workers.steering = \"client\" to keep persistence exact"
        );
    }
    tracing::info!(workers = nworkers, socket = %cfg.control_socket.display(), services = cfg.model.services.len(), "rvsd ready");

    let mut next_tick = std::time::Instant::now() + Duration::from_secs(control::estimator::INTERVAL_S);
    // Link state as last seen, and changes seen (a flap is logged and counted;
    // the workers keep polling a port whose link is down: nothing to restart).
    let mut link_up: Vec<bool> = ports.iter().map(|p| p.link().up).collect();
    let mut link_changes: Vec<u64> = vec![0; ports.len()];
    let mut next_link_check = std::time::Instant::now();
    let mut last_cycles: Vec<(u64, u64)> = vec![(0, 0); all_counters.len()];
    while !stop.load(Ordering::Relaxed) {
        socket.poll(&mut control, &links);
        if let Some((server, handle)) = &metrics {
            server.poll(|| {
                let lcores = all_counters
                    .iter()
                    .zip(last_cycles.iter_mut())
                    .map(|((lc, c), last)| {
                        let snap = c.snapshot();
                        let (busy, total) = (snap.busy_cycles - last.0, snap.loop_cycles - last.1);
                        *last = (snap.busy_cycles, snap.loop_cycles);
                        control::metrics::LcoreFigures {
                            lcore: *lc,
                            busy_ratio: if total == 0 { 0.0 } else { busy as f64 / total as f64 },
                            counters: snap,
                            table_capacity: cfg.workers.connections as u64,
                        }
                    })
                    .collect();
                let figures = control::metrics::Figures {
                    services: control.metric_services(&links),
                    lcores,
                    ports: ports
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            let st = p.stats();
                            control::metrics::PortFigures {
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
                                link_changes: link_changes.get(i).copied().unwrap_or(0),
                            }
                        })
                        .collect(),
                    mempool_in_use: u64::from(pool.in_use()),
                    mempool_capacity: u64::from(cfg.mempool.mbufs),
                    config_generation: control.generation,
                    reloads_ok: control.reloads_ok,
                    reloads_failed: control.reloads_failed,
                    health: control.checker.states(),
                };
                control::metrics::record(&figures);
                handle.render()
            });
        }
        if std::time::Instant::now() >= next_link_check {
            // Every loop (10 ms): a flap shorter than that goes unseen.
            next_link_check = std::time::Instant::now() + Duration::from_millis(10);
            for (i, p) in ports.iter().enumerate() {
                let up = p.link().up;
                if up != link_up[i] {
                    link_up[i] = up;
                    link_changes[i] += 1;
                    if up {
                        tracing::info!(port = %p.name(), "link up");
                    } else {
                        tracing::warn!(port = %p.name(), "link down");
                    }
                }
            }
        }
        if hup.swap(false, Ordering::Relaxed) {
            match control.reload(&links) {
                Ok((n, notes)) => tracing::info!(changes = n, ?notes, "configuration reloaded (SIGHUP)"),
                Err(e) => tracing::error!("{e}"),
            }
        }
        for e in control.health_tick(&links, std::time::Instant::now()) {
            let service = control::metrics::service_label(e.service);
            if e.up {
                tracing::info!(%service, dest = %format!("{}:{}", e.addr, e.port), "real server up: back in the pool");
            } else {
                tracing::warn!(%service, dest = %format!("{}:{}", e.addr, e.port), "real server down: health check failed");
            }
        }
        for (s, up) in control.checker.take_quorum_changes() {
            let service = control::metrics::service_label(s);
            if up {
                tracing::info!(%service, "quorum regained: real servers back in place of the sorry server");
            } else {
                tracing::warn!(%service, "quorum lost: the sorry server (if any) takes the traffic");
            }
        }
        if std::time::Instant::now() >= next_tick {
            control.tick(&links);
            next_tick += Duration::from_secs(control::estimator::INTERVAL_S);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(socket);
    tracing::info!("stopping");
    lcore::wait_all();
    let mut total = CountersSnapshot::default();
    for (_, c) in &all_counters {
        total.accumulate(&c.snapshot());
    }
    tracing::info!(counters = %total.summary(), "workers stopped");
    for port in ports {
        let s = port.stats();
        tracing::info!(port = %port.name(), ipackets = s.ipackets, opackets = s.opackets, imissed = s.imissed, "port stats");
        if let Err(e) = port.stop().and_then(|()| port.close()) {
            tracing::warn!("{e}");
        }
    }
    drop(pool);
    drop(eal);
    tracing::info!("rvsd stopped");
    Ok(())
}

/// RSS fields for a port: the client endpoint only (source on the client side,
/// destination on the server side) where the port faces one side, so a NIC that
/// honours the modifiers delivers every packet to the worker that owns it.
fn rss_fields(side: config::PortSide, steering: appliance::pipeline::steer::Key) -> u64 {
    use appliance::pipeline::steer::Key;
    let (fields, l4_src, l4_dst) = match steering {
        Key::ClientPort => (rss::IPV4_ALL, rss::L4_SRC_ONLY, rss::L4_DST_ONLY),
        Key::Client => (rss::IPV4_L3, 0, 0),
    };
    match side {
        config::PortSide::Client => fields | rss::L3_SRC_ONLY | l4_src,
        config::PortSide::Server => fields | rss::L3_DST_ONLY | l4_dst,
        config::PortSide::Both => fields,
    }
}

/// Reaches the workers through their request channels; a worker answers between
/// bursts, so a reply is quick unless the worker is stuck.
struct ChannelWorkers {
    requests: Vec<crossbeam_channel::Sender<agent::Envelope>>,
    published: Arc<Published>,
}

impl ChannelWorkers {
    fn ask(&self, req: &agent::WorkerRequest) -> Vec<agent::WorkerReply> {
        let mut replies = Vec::with_capacity(self.requests.len());
        for w in &self.requests {
            let (tx, rx) = crossbeam_channel::bounded(1);
            if w.send((req.clone(), tx)).is_err() {
                continue;
            }
            if let Ok(r) = rx.recv_timeout(Duration::from_secs(2)) {
                replies.push(r);
            }
        }
        replies
    }
}

impl control::server::Workers for ChannelWorkers {
    /// Publishes the next snapshot and waits until every worker runs it.
    fn apply(&self, _changes: &[Change], next: &model::Model) -> Result<(), String> {
        let snapshot = self.published.load().next(next.clone(), self.requests.len());
        self.published.publish(snapshot, Duration::from_secs(2))
    }

    fn list(&self) -> Vec<Vec<ServiceInfo>> {
        self.ask(&agent::WorkerRequest::List)
            .into_iter()
            .filter_map(|r| if let agent::WorkerReply::Services(s) = r { Some(s) } else { None })
            .collect()
    }

    fn zero(&self, service: Option<ServiceRef>) -> Result<(), String> {
        let replies = self.ask(&agent::WorkerRequest::Zero(service));
        if replies.len() != self.requests.len() {
            return Err("a worker did not answer".into());
        }
        Ok(())
    }

    fn connections(&self) -> Vec<ConnInfo> {
        self.ask(&agent::WorkerRequest::Connections)
            .into_iter()
            .filter_map(|r| if let agent::WorkerReply::Connections(c) = r { Some(c) } else { None })
            .flatten()
            .collect()
    }
}

/// A per-process random seed for the connection index hash (so clients cannot aim
/// collisions at it): std's RandomState draws its keys from the OS.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}

/// Buffer size for the largest configured MTU (frame + VLAN tag + headroom).
fn data_room(cfg: &Config) -> u16 {
    let mtu = cfg.ports.iter().map(|p| p.mtu).max().unwrap_or(1500);
    let need = u32::from(mtu) + 18 + 4 + appliance::dpdk::mbuf::HEADROOM;
    u16::try_from(need.max(2176)).unwrap_or(u16::MAX)
}
