//! The daemon as a library: everything between a parsed configuration and a running
//! appliance. `Daemon::start` brings up EAL, the mempool, the ports and their kernel
//! interfaces, the control socket, metrics and one worker per configured lcore;
//! `Running::wait` runs the control loop on the calling (main) lcore until stopped,
//! then stops the workers and releases everything. `rvsd` is this plus a command
//! line, logging and signal handlers; tests and benchmarks start the same daemon
//! in-process.
//!
//! ```text
//! let daemon = Daemon::new();
//! signal_hook::flag::register(SIGTERM, daemon.stop_flag())?;  // before start: a
//! daemon.start(cfg, path)?.wait();                              // signal then is a stop
//! ```

mod control_loop;
pub mod links;
pub mod notify;
pub mod ports;
pub mod sync_io;
pub mod vrrp_io;

use crate::control::config::{self, Config, ConfigError};
use crate::control::server::{Control, Socket};
use crate::control::snapshot::{reconcile, Published, Snapshot};
use crate::control::{http::MetricsServer, metrics};
use crate::dpdk::eal::Eal;
use crate::dpdk::lcore;
use crate::dpdk::mempool::Mempool;
use crate::dpdk::port::Port;
use crate::ipvs::director::Director;
use crate::ipvs::service::ServiceTable;
use crate::net::rss::Input;
use crate::pipeline::counters::Counters;
use crate::pipeline::neigh::NeighbourTable;
use crate::pipeline::owner::Ownership;
use crate::pipeline::route::Route;
use crate::pipeline::steer::Steering;
use crate::pipeline::Pipeline;
use crate::worker::{self, Worker};
use links::{ChannelWorkers, ControlAgent};
use metrics_exporter_prometheus::PrometheusHandle;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Why the daemon could not start.
#[derive(Debug)]
pub enum StartError {
    /// Bad configuration (rvsd exits 2); the message names the key.
    Config(ConfigError),
    /// DPDK or the system could not do what the configuration asks (rvsd exits 1).
    Dpdk(String),
}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> Self {
        StartError::Config(e)
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::Dpdk(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for StartError {}

/// An appliance about to start: its stop and reload flags exist before it does, so
/// signal handlers can be in place before it reports ready.
pub struct Daemon {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
}

impl Default for Daemon {
    fn default() -> Self {
        Daemon::new()
    }
}

/// A running appliance: its workers poll; the control loop runs in `wait`.
pub struct Running {
    cfg: Config,
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    control: Control,
    socket: Socket,
    links: ChannelWorkers,
    metrics: Option<(MetricsServer, PrometheusHandle)>,
    /// Each worker's lcore and counters.
    counters: Vec<(u32, Arc<Counters>)>,
    /// The workers' own stop flag: set after the control loop has said goodbye
    /// (VRRP's priority 0 leaves through them).
    workers_stop: Arc<AtomicBool>,
    /// Carried (VRRP) and hidden addresses, shared with the workers.
    ownership: Arc<Ownership>,
    vrrp_io: vrrp_io::VrrpIo,
    /// Connection sync: the daemons, the rings to and from the workers, the
    /// switch the workers read.
    sync_io: sync_io::SyncIo,
    sync_rings: links::SyncRings,
    sync_switch: Arc<crate::control::sync::Switch>,
    ports: Vec<Port>,
    pool: Arc<Mempool>,
    eal: Eal,
}

impl Daemon {
    pub fn new() -> Daemon {
        Daemon { stop: Arc::new(AtomicBool::new(false)), reload: Arc::new(AtomicBool::new(false)) }
    }

    /// Setting this flag stops the appliance (`Running::wait` returns; set during
    /// start-up, it returns at once); for SIGTERM / SIGINT.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Setting this flag reloads the configuration file once; for SIGHUP.
    pub fn reload_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.reload)
    }

    /// Brings `cfg` (read from `path`, which reloads read again) up as a running
    /// appliance. Only one per process: EAL initialises once.
    pub fn start(self, mut cfg: Config, path: PathBuf) -> Result<Running, StartError> {
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| config::parse_cpu_list(&s))
            .unwrap_or_else(|| (0..128).collect());
        let lcore_map = config::check_lcores(&cfg, &online)?;
        let huge = hugepages_free();
        if !huge && cfg.eal.hugepages == config::Hugepages::Auto {
            // A zero-copy memif port cannot share memory EAL has no file for.
            if let Some(i) = cfg.zero_copy_memif() {
                return Err(ConfigError::new(
                    format!("eal.args[{i}]"),
                    "a zero-copy memif port needs hugepages and none are free (scripts/setup reserves them)",
                )
                .into());
            }
            tracing::warn!("no free hugepages: running with --no-huge (run scripts/setup to reserve some)");
        }
        // The exception path: a net_tap vdev per port that has a kernel interface.
        let host_vdevs = cfg.host_vdevs();
        cfg.eal.args.extend(host_vdevs.iter().map(|(_, _, arg)| arg.clone()));
        let argv = cfg.eal_argv_mapped(huge, &lcore_map);
        tracing::info!(args = ?argv, "starting EAL");
        let eal = Eal::init(&argv).map_err(|e| {
            let vdevs: Vec<String> = cfg.vdevs().into_iter().map(|(_, n)| n).collect();
            let hint = if vdevs.is_empty() {
                String::new()
            } else {
                format!("; check the --vdev drivers: {}", vdevs.join(", "))
            };
            ConfigError::new("eal.args", format!("{e}{hint}"))
        })?;
        tracing::info!(version = %crate::dpdk::version(), "EAL up");

        let socket_id = lcore::socket_of(lcore::main_lcore());
        let pool = Arc::new(
            Mempool::new("rvs_mbufs", cfg.mempool.mbufs, cfg.mempool.cache, data_room(&cfg), socket_id)
                .map_err(|e| StartError::Dpdk(format!("mempool: {e}")))?,
        );
        let up = ports::bring_up(&cfg, &pool, &host_vdevs)?;

        // The control socket before the workers: a clash fails the start.
        let socket = Socket::bind(&cfg.control_socket).map_err(|e| ConfigError::new("control.socket", e))?;
        let mut control = Control::new(cfg.model.clone(), u32::try_from(cfg.workers.connections).unwrap_or(u32::MAX))
            .with_config(path, cfg.clone())
            .with_checks(cfg.checks.clone());
        let metrics = match cfg.metrics_listen {
            Some(addr) => {
                let server = MetricsServer::bind(addr).map_err(|e| ConfigError::new("metrics.listen", e))?;
                let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
                    .install_recorder()
                    .map_err(|e| StartError::Dpdk(format!("metrics recorder: {e}")))?;
                metrics::describe();
                Some((server, handle))
            }
            None => None,
        };
        // The first configuration snapshot, seen through the health checks (servers
        // with `alpha` start out of the pool); workers build their tables from it.
        control.checker.poll(&cfg.model, std::time::Instant::now());
        let nworkers = cfg.workers.lcores.len();
        let published = Published::new(
            Snapshot::default()
                .next(control.checker.overlay(&cfg.model), nworkers)
                .map_err(|e| ConfigError::new("fwmark", e))?,
            nworkers,
        );
        // VRRP: instances on the ports' MACs and first addresses, carried addresses
        // published to the workers before they start.
        let macs: Vec<_> = up.views.iter().take(cfg.ports.len()).map(|v| v.mac).collect();
        let hidden = cfg
            .ports
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.hidden.iter().map(move |a| (*a, u16::try_from(i).unwrap_or(u16::MAX))))
            .collect();
        let ownership = Arc::new(Ownership::new(hidden));
        let vrrp_io = vrrp_io::VrrpIo::open(&cfg, &macs)?;
        control.vrrp_ports = vrrp_io::VrrpIo::port_infos(&cfg, &macs);
        control.sync = cfg.sync.clone();
        let mut first_frames = Vec::new();
        control.vrrp.configure(cfg.vrrp.clone(), &control.vrrp_ports, std::time::Instant::now(), &mut first_frames);
        control.vrrp_out.extend(first_frames);
        if !ownership.publish(&control.vrrp.carried()) {
            return Err(ConfigError::new(
                "vrrp_instance",
                format!("more than {} addresses carried", crate::pipeline::owner::MAX_CARRIED),
            )
            .into());
        }
        let stop = self.stop;
        let workers_stop = Arc::new(AtomicBool::new(false));
        // Connection sync: the rings between workers and the control lcore, and the
        // daemons the configuration starts.
        let sync_switch = Arc::new(crate::control::sync::Switch::default());
        let (sync_links, sync_rings) = links::sync_rings(nworkers, &sync_switch);
        let mut sync_io = sync_io::SyncIo::new(&cfg);
        sync_io.configure(&cfg.sync, &cfg, &sync_switch).map_err(|e| ConfigError::new("sync", e))?;
        let (requests, counters) = launch_workers(
            &cfg,
            up.views,
            &up.hardware_steered,
            up.queues,
            WorkersShare { pool: &pool, published: &published, stop: &workers_stop, ownership: &ownership },
            sync_links,
        )?;
        warn_persistence_spread(&cfg);
        tracing::info!(workers = nworkers, socket = %cfg.control_socket.display(), services = cfg.model.services.len(), "rvsd ready");
        Ok(Running {
            stop,
            reload: self.reload,
            control,
            socket,
            links: ChannelWorkers::new(requests, published),
            metrics,
            counters,
            workers_stop,
            ownership,
            vrrp_io,
            sync_io,
            sync_rings,
            sync_switch,
            ports: up.ports,
            pool,
            eal,
            cfg,
        })
    }
}

impl Running {
    /// Setting this flag stops the appliance (`wait` returns); for SIGTERM / SIGINT.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Setting this flag reloads the configuration file once; for SIGHUP.
    pub fn reload_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.reload)
    }

    /// Runs the control loop until the stop flag is set, then stops the workers,
    /// the ports and EAL.
    pub fn wait(mut self) {
        let mut state = control_loop::State::new(&self.ports, self.counters.len()).with_announcer(&self);
        while !self.stop.load(Ordering::Relaxed) {
            state.iteration(&mut self);
        }
        notify::sd_notify("STOPPING=1");
        state.withdraw_all();
        state.vrrp_goodbye(&mut self);
        self.shut_down();
    }

    fn shut_down(self) {
        let Running { socket, counters, ports, pool, eal, workers_stop, .. } = self;
        drop(socket);
        tracing::info!("stopping");
        workers_stop.store(true, Ordering::Relaxed);
        lcore::wait_all();
        let mut total = crate::pipeline::counters::CountersSnapshot::default();
        for (_, c) in &counters {
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
    }
}

/// What every worker shares with the control lcore.
struct WorkersShare<'a> {
    pool: &'a Arc<Mempool>,
    published: &'a Arc<Published>,
    /// The workers' stop flag.
    stop: &'a Arc<AtomicBool>,
    ownership: &'a Arc<Ownership>,
}

/// One worker per configured lcore, each with its pipeline (tables built from the
/// first snapshot), its queues and rings, launched. Returns their request channels
/// and (lcore, counters).
#[allow(clippy::type_complexity)]
fn launch_workers(
    cfg: &Config,
    views: Vec<crate::pipeline::PortView>,
    hardware_steered: &[u16],
    queues: Vec<Vec<(crate::dpdk::port::RxQueue, crate::dpdk::port::TxQueue)>>,
    shared: WorkersShare<'_>,
    mut sync_links: Vec<links::SyncLink>,
) -> Result<(Vec<links::Link>, Vec<(u32, Arc<Counters>)>), StartError> {
    let WorkersShare { pool, published, stop, ownership } = shared;
    let n = cfg.workers.lcores.len();
    let steering = hardware_steered.iter().fold(
        Steering::new(cfg.workers.rss_key, cfg.workers.steering, u16::try_from(n).unwrap_or(u16::MAX)),
        |s, &p| s.with_hardware_port(p),
    );
    let routes: Vec<Route> = cfg
        .routes
        .iter()
        .map(|r| Route { prefix: r.prefix, via: r.via, port: u16::try_from(r.port).unwrap_or(u16::MAX) })
        .collect();
    let routes6: Vec<crate::pipeline::xmit6::Route6> = cfg
        .routes6
        .iter()
        .map(|r| crate::pipeline::xmit6::Route6 {
            prefix: r.prefix,
            via: r.via,
            port: u16::try_from(r.port).unwrap_or(u16::MAX),
        })
        .collect();
    let neighbours6: Vec<_> =
        cfg.neighbours6.iter().map(|nb| (nb.address, nb.mac, u16::try_from(nb.port).unwrap_or(u16::MAX))).collect();
    let first = published.load();
    let mut requests = Vec::with_capacity(n);
    let mut counters = Vec::with_capacity(n);
    let seed = random_seed();
    for (index, ((&lc, qs), rings)) in cfg.workers.lcores.iter().zip(queues).zip(worker::rings(n, 1024)).enumerate() {
        let c = Arc::new(Counters::default());
        counters.push((lc, Arc::clone(&c)));
        let mut neigh = NeighbourTable::with_capacity(cfg.workers.neighbour_capacity);
        for nb in &cfg.neighbours {
            neigh.insert_static(nb.address, nb.mac, u16::try_from(nb.port).unwrap_or(u16::MAX));
        }
        let mut director = Director::new(ServiceTable::new(), cfg.workers.connections, seed);
        reconcile(&mut director, &Snapshot::default(), &first, index)
            .map_err(|e| StartError::Dpdk(format!("building worker state: {e}")))?;
        published.ack(index, first.generation);
        let (control_side, worker_side) = links::link();
        requests.push(control_side);
        let index16 = u16::try_from(index).unwrap_or(u16::MAX);
        let worker = Worker {
            lcore: lc,
            index: index16,
            rings,
            queues: qs,
            pipeline: Pipeline::new(views.clone(), neigh, c)
                .with_routes(routes.clone())
                .with_routes6(routes6.clone())
                .with_neighbours6(&neighbours6)
                .with_director(director)
                .with_steering(steering, index16)
                .with_ownership(Arc::clone(ownership)),
            pool: Arc::clone(pool),
            stop: Arc::clone(stop),
            idle_sleep_us: cfg.workers.idle_sleep_us,
            agent: ControlAgent::new(lc, index, worker_side, Arc::clone(published), sync_links.remove(0)),
            dropped: Default::default(),
        };
        lcore::launch(lc, move || worker.run()).map_err(|e| StartError::Dpdk(e.to_string()))?;
    }
    Ok((requests, counters))
}

/// Persistence templates are per worker: with several workers, a client's
/// connections must all reach one.
fn warn_persistence_spread(cfg: &Config) {
    let n = cfg.workers.lcores.len();
    if n > 1
        && cfg.workers.steering == Input::ClientPort
        && cfg.model.services.iter().any(|(s, _)| s.persistent.is_some())
    {
        tracing::warn!(
            "persistent services with {n} workers and workers.steering = \"client-port\": a client's \
             connections may land on different workers, each with its own templates; set \
             workers.steering = \"client\" to keep persistence exact"
        );
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
    let need = u32::from(mtu) + 18 + 4 + crate::dpdk::mbuf::HEADROOM;
    u16::try_from(need.max(2176)).unwrap_or(u16::MAX)
}
