//! `rvsd --config FILE`: TOML read through the `config` crate, with environment
//! overrides `RVS_<SECTION>__<KEY>` (double underscore between levels, e.g.
//! `RVS_WORKERS__IDLE_SLEEP_US=0`; lists are space-separated:
//! `RVS_EAL__ARGS="--vdev=net_null0"`). Environment variables with no `__` (such as
//! `RVS_LAB_ID`) are not configuration and are ignored.
//!
//! `load` returns a validated `Config`, or an error that names the key and the reason
//! (`port[1].addresses[0]: invalid CIDR "1.2.3/40"`). Unknown keys are errors.
//!
//! Reloadable vs start-up only: everything here is start-up only (EAL, ports, lcores,
//! mempool). Addresses, routes and neighbours will become reloadable with the
//! control socket.

use super::model::Model;
use super::protocol::{Change, DestSpec, FwmarkSpec, ServiceKey, ServiceSpec};
use crate::ipvs::dest::FwdMethod;
use crate::ipvs::fwmark::Rule;
use crate::ipvs::Protocol;
use crate::net::ethernet::EthernetAddress;
use crate::net::ipv4::Ipv4Cidr;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

/// A configuration error: the key it concerns (`port[1].addresses[0]`, or empty for
/// the file as a whole) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError { key: key.into(), reason: reason.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Whether EAL gets hugepages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Hugepages {
    /// Use hugepages when some are free, else run with `--no-huge`.
    #[default]
    Auto,
    On,
    Off,
}

// ---- the file as written -------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    eal: RawEal,
    #[serde(default, rename = "port")]
    ports: Vec<RawPort>,
    #[serde(default, rename = "route")]
    routes: Vec<RawRoute>,
    #[serde(default, rename = "neighbour")]
    neighbours: Vec<RawNeighbour>,
    workers: RawWorkers,
    #[serde(default)]
    mempool: RawMempool,
    #[serde(default)]
    control: RawControl,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    timeouts: RawTimeouts,
    #[serde(default, rename = "service")]
    services: Vec<RawService>,
    #[serde(default, rename = "fwmark")]
    fwmarks: Vec<RawFwmark>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    #[serde(default = "default_socket")]
    socket: String,
}

impl Default for RawControl {
    fn default() -> Self {
        RawControl { socket: default_socket() }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default = "default_metrics_listen")]
    listen: String,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics { enabled: true, listen: default_metrics_listen() }
    }
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9477".to_string()
}

fn default_socket() -> String {
    super::protocol::DEFAULT_SOCKET.to_string()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    #[serde(default)]
    tcp: u32,
    #[serde(default)]
    tcpfin: u32,
    #[serde(default)]
    udp: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    protocol: Option<String>,
    address: Option<String>,
    port: Option<u16>,
    fwmark: Option<u32>,
    #[serde(default = "default_scheduler")]
    scheduler: String,
    #[serde(default)]
    flags: Vec<String>,
    persistent: Option<u32>,
    netmask: Option<String>,
    #[serde(default)]
    dest: Vec<RawDest>,
    check: Option<RawCheck>,
    /// keepalived's virtual_server quorum / hysteresis / sorry_server.
    #[serde(default = "default_quorum")]
    quorum: u32,
    #[serde(default)]
    hysteresis: u32,
    sorry_server: Option<String>,
    sorry_forward: Option<String>,
}

fn default_quorum() -> u32 {
    1
}

/// A service's health check, with keepalived's option names and defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    /// tcp_check | http_get | misc_check
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "default_delay_loop")]
    delay_loop: u32,
    #[serde(default = "default_connect_timeout")]
    connect_timeout: u32,
    connect_port: Option<u16>,
    #[serde(default = "default_one")]
    retry: u32,
    #[serde(default = "default_one")]
    delay_before_retry: u32,
    #[serde(default)]
    inhibit_on_failure: bool,
    #[serde(default)]
    alpha: bool,
    /// HTTP_GET: url path, status_code ("200" or "200-299"), digest (MD5 hex).
    #[serde(default = "default_path")]
    path: String,
    status_code: Option<String>,
    digest: Option<String>,
    /// MISC_CHECK: misc_path (a shell command), misc_timeout, misc_dynamic.
    misc_path: Option<String>,
    misc_timeout: Option<u32>,
    #[serde(default)]
    misc_dynamic: bool,
}

fn default_delay_loop() -> u32 {
    60
}
fn default_connect_timeout() -> u32 {
    5
}
fn default_one() -> u32 {
    1
}
fn default_path() -> String {
    "/".to_string()
}

fn default_scheduler() -> String {
    "wlc".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDest {
    address: String,
    #[serde(default)]
    port: u16,
    #[serde(default = "default_forward")]
    forward: String,
    #[serde(default = "default_weight")]
    weight: u32,
    #[serde(default)]
    upper: u32,
    #[serde(default)]
    lower: u32,
}

fn default_forward() -> String {
    "route".to_string()
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFwmark {
    mark: u32,
    destination: Option<String>,
    source: Option<String>,
    protocol: Option<String>,
    /// "80" or "10000:20000".
    ports: Option<String>,
    /// "02:00:00:00:00:01", or "!02:..." for "not from".
    mac_source: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEal {
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    main_lcore: u32,
    #[serde(default)]
    hugepages: Hugepages,
    #[serde(default = "default_memory_mb")]
    memory_mb: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: String,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default = "default_mtu")]
    mtu: u32,
    #[serde(default = "default_true")]
    promiscuous: bool,
    #[serde(default = "default_side")]
    side: String,
    /// Name of a kernel interface (net_tap) that gets this port's non-VIP addresses.
    kernel: Option<String>,
}

fn default_side() -> String {
    "both".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    prefix: String,
    via: String,
    port: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNeighbour {
    address: String,
    mac: String,
    port: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkers {
    lcores: Vec<u32>,
    #[serde(default = "default_descriptors")]
    rx_descriptors: u32,
    #[serde(default = "default_descriptors")]
    tx_descriptors: u32,
    #[serde(default)]
    idle_sleep_us: u32,
    #[serde(default = "default_neighbours")]
    neighbour_capacity: u32,
    #[serde(default = "default_connections")]
    connections: u32,
    #[serde(default)]
    oversubscribe: bool,
    #[serde(default = "default_steering")]
    steering: String,
    rss_key: Option<String>,
}

fn default_steering() -> String {
    "client-port".to_string()
}

fn default_connections() -> u32 {
    262_144
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMempool {
    #[serde(default = "default_mbufs")]
    mbufs: u32,
    #[serde(default = "default_mbuf_cache")]
    cache: u32,
}

impl Default for RawMempool {
    fn default() -> Self {
        RawMempool { mbufs: default_mbufs(), cache: default_mbuf_cache() }
    }
}

fn default_memory_mb() -> u32 {
    512
}
fn default_mtu() -> u32 {
    1500
}
fn default_true() -> bool {
    true
}
fn default_descriptors() -> u32 {
    1024
}
fn default_neighbours() -> u32 {
    4096
}
fn default_mbufs() -> u32 {
    8191
}
fn default_mbuf_cache() -> u32 {
    256
}

// ---- the validated configuration ---------------------------------------------

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub eal: Eal,
    pub ports: Vec<Port>,
    pub routes: Vec<Route>,
    pub neighbours: Vec<Neighbour>,
    pub workers: Workers,
    pub mempool: Mempool,
    /// The control socket's path.
    pub control_socket: std::path::PathBuf,
    /// Where `/metrics` is served (None: metrics off).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Services, dests and timeouts.
    pub model: Model,
    /// Firewall-mark rules, in order.
    pub fwmark_rules: Vec<Rule>,
    /// Health checks, per service.
    pub checks: Vec<(ServiceKey, super::health::CheckSpec)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eal {
    /// Extra EAL arguments, vdevs included (`--vdev=net_af_packet0,iface=eth1`).
    pub args: Vec<String>,
    pub main_lcore: u32,
    pub hugepages: Hugepages,
    /// Memory for `--no-huge` runs (`-m`), in MiB.
    pub memory_mb: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// DPDK device name: a vdev name (`net_af_packet0`) or a PCI address.
    pub name: String,
    pub addresses: Vec<Ipv4Cidr>,
    pub mtu: u16,
    pub promiscuous: bool,
    /// Which side of the director the port faces, for hardware steering.
    pub side: PortSide,
    /// The kernel interface of the exception path, if any.
    pub kernel: Option<String>,
}

/// Which traffic a port carries: its RSS hashes the client endpoint, which is the
/// source of what arrives from clients and the destination of replies from servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSide {
    /// Clients' packets arrive here: hash the source only.
    Client,
    /// Real servers' replies arrive here: hash the destination only.
    Server,
    /// Both (one-arm, DR): hash both; workers pass packets to their owner.
    Both,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub prefix: Ipv4Cidr,
    pub via: Ipv4Addr,
    /// Port index; when not given, the port whose connected network holds `via`.
    pub port: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub address: Ipv4Addr,
    pub mac: EthernetAddress,
    pub port: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workers {
    pub lcores: Vec<u32>,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    /// When a poll finds every queue empty, sleep this long (0: pure busy polling).
    pub idle_sleep_us: u32,
    pub neighbour_capacity: usize,
    /// Connection-table entries per worker (connections + templates).
    pub connections: usize,
    /// Allow more worker lcores than CPUs (they share CPUs: tests, small machines).
    pub oversubscribe: bool,
    /// What owns a connection: client address and port, or client address alone.
    pub steering: crate::net::rss::Input,
    /// The Toeplitz key of the ports' RSS and of the owner function.
    pub rss_key: [u8; 40],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mempool {
    pub mbufs: u32,
    pub cache: u32,
}

/// The largest lcore id DPDK 22.11 is built for (RTE_MAX_LCORE).
pub const MAX_LCORE: u32 = 128;

impl Config {
    /// The full EAL command line: program name, the lcore list (main lcore first,
    /// then the workers), memory mode, then `eal.args`. With hugepages, `--in-memory`
    /// (no shared files, nothing left in hugetlbfs after exit, several daemons side by
    /// side); without, `--no-huge -m MB --no-shconf`. `--in-memory` and `--no-huge` do
    /// not go together.
    pub fn eal_argv(&self, hugepages_available: bool) -> Vec<String> {
        let mut lcores = vec![self.eal.main_lcore];
        lcores.extend(&self.workers.lcores);
        self.eal_argv_mapped(hugepages_available, &lcores.iter().map(|&l| (l, l)).collect::<Vec<_>>())
    }

    /// As `eal_argv`, with each lcore placed on a CPU (`(lcore, cpu)`, main first):
    /// `-l` when every lcore is its own CPU, else `--lcores L@C,...`.
    pub fn eal_argv_mapped(&self, hugepages_available: bool, map: &[(u32, u32)]) -> Vec<String> {
        let identity = map.iter().all(|(l, c)| l == c);
        let (flag, list) = if identity {
            ("-l", map.iter().map(|(l, _)| l.to_string()).collect::<Vec<_>>().join(","))
        } else {
            ("--lcores", map.iter().map(|(l, c)| format!("{l}@{c}")).collect::<Vec<_>>().join(","))
        };
        let mut argv = vec![
            "rvsd".to_string(),
            flag.to_string(),
            list,
            "--main-lcore".to_string(),
            self.eal.main_lcore.to_string(),
            // RVS exports its own metrics; DPDK's telemetry socket would clash between
            // daemons running side by side.
            "--no-telemetry".to_string(),
        ];
        let explicit = self.eal.args.iter().any(|a| a == "--no-huge" || a == "--in-memory");
        if !explicit {
            let huge = match self.eal.hugepages {
                Hugepages::On => true,
                Hugepages::Off => false,
                Hugepages::Auto => hugepages_available,
            };
            if huge {
                argv.push("--in-memory".to_string());
            } else {
                argv.extend(["--no-huge".to_string(), "-m".to_string(), self.eal.memory_mb.to_string()]);
                argv.push("--no-shconf".to_string());
            }
        }
        argv.extend(self.eal.args.iter().cloned());
        argv
    }

    /// The exception-path vdevs: one net_tap per port with `kernel = "name"`, as
    /// (port index, vdev device name, EAL argument).
    pub fn host_vdevs(&self) -> Vec<(usize, String, String)> {
        self.ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let k = p.kernel.as_ref()?;
                let dev = format!("net_tap_rvs{i}");
                Some((i, dev.clone(), format!("--vdev={dev},iface={k}")))
            })
            .collect()
    }

    /// The vdevs `eal.args` asks for: (index in eal.args, device name).
    pub fn vdevs(&self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        let args = &self.eal.args;
        for (i, a) in args.iter().enumerate() {
            let spec = if let Some(s) = a.strip_prefix("--vdev=") {
                Some(s)
            } else if a == "--vdev" {
                args.get(i + 1).map(String::as_str)
            } else {
                None
            };
            if let Some(spec) = spec {
                let name = spec.split(',').next().unwrap_or_default().to_string();
                out.push((i, name));
            }
        }
        out
    }
}

/// Parses a Linux CPU list (`0-3,8,10-11`), as in /sys/devices/system/cpu/online.
pub fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if b < a {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// Checks that every lcore the configuration names is an online CPU, or, with
/// `workers.oversubscribe`, places the workers that are not on the online CPUs
/// (other than the main lcore's when there is another), round robin. Returns
/// (lcore, cpu) pairs, main lcore first.
pub fn check_lcores(cfg: &Config, online: &[u32]) -> Result<Vec<(u32, u32)>, ConfigError> {
    let has = |l: u32| online.contains(&l);
    let main = cfg.eal.main_lcore;
    if !has(main) {
        return Err(ConfigError::new(
            "eal.main_lcore",
            format!("lcore {main} is not an online CPU (online: {online:?})"),
        ));
    }
    let spare: Vec<u32> = match online.iter().copied().filter(|&c| c != main).collect::<Vec<_>>() {
        v if v.is_empty() => vec![main],
        v => v,
    };
    let mut map = vec![(main, main)];
    let mut next = 0;
    for (i, &l) in cfg.workers.lcores.iter().enumerate() {
        if has(l) {
            map.push((l, l));
        } else if cfg.workers.oversubscribe {
            map.push((l, spare[next % spare.len()]));
            next += 1;
        } else {
            return Err(ConfigError::new(
                format!("workers.lcores[{i}]"),
                format!("lcore {l} is not an online CPU (online: {online:?}); set workers.oversubscribe to share CPUs"),
            ));
        }
    }
    Ok(map)
}

impl Config {
    /// `rvsd --workers N`: N worker lcores after the main one, sharing CPUs if
    /// there are fewer.
    pub fn set_workers(&mut self, n: u32) {
        let main = self.eal.main_lcore;
        self.workers.lcores = (0..).filter(|&l| l != main).take(n as usize).collect();
        self.workers.oversubscribe = true;
    }

    /// With several workers, each af_packet vdev needs one queue pair per worker
    /// (`qpairs=N`, fanned out by the kernel); added where the vdev does not say.
    pub fn vdev_queues(&mut self) {
        let n = self.workers.lcores.len();
        if n <= 1 {
            return;
        }
        for a in &mut self.eal.args {
            if a.starts_with("--vdev=net_af_packet") && !a.contains("qpairs=") {
                a.push_str(&format!(",qpairs={n}"));
            }
        }
    }
}

/// Reads `path` (TOML) with `RVS_*__*` environment overrides and validates it.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = std::env::vars().collect();
    load_with_env(path, &env)
}

/// As `load`, with the environment given (for tests).
pub fn load_with_env(path: &Path, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::new("", format!("cannot read config file {}", path.display())));
    }
    let overrides: HashMap<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with("RVS_") && k["RVS_".len()..].contains("__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let list_keys: Vec<String> = overrides
        .keys()
        .map(|k| k["RVS_".len()..].to_lowercase().replace("__", "."))
        .filter(|k| k == "eal.args" || k == "workers.lcores")
        .collect();
    let mut envsrc = config::Environment::with_prefix("RVS")
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .source(Some(overrides.into_iter().collect()));
    if !list_keys.is_empty() {
        envsrc = envsrc.list_separator(" ");
        for k in list_keys {
            envsrc = envsrc.with_list_parse_key(&k);
        }
    }
    let built = config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .add_source(envsrc)
        .build()
        .map_err(|e| ConfigError::new("", format!("{}: {e}", path.display())))?;
    let raw: RawConfig = built.try_deserialize().map_err(from_config_error)?;
    validate(raw)
}

/// Parses TOML text (no environment), for tests and tools.
pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
    let built = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .map_err(|e| ConfigError::new("", e.to_string()))?;
    let raw: RawConfig = built.try_deserialize().map_err(from_config_error)?;
    validate(raw)
}

/// Turns the `config` crate's deserialization errors into key + reason.
fn from_config_error(e: config::ConfigError) -> ConfigError {
    if let config::ConfigError::NotFound(key) = &e {
        return ConfigError::new(key.clone(), "missing");
    }
    let text = e.to_string();
    // serde: "unknown field `adresses`, expected one of ..." possibly followed by
    // " for key `port[0]`" (the config crate's path).
    let key_suffix = text.rsplit_once(" for key `").map(|(_, k)| dotted(k.trim_end_matches('`')));
    let base = key_suffix.clone().unwrap_or_default();
    if let Some(rest) = text.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let key = if base.is_empty() { field.to_string() } else { format!("{base}.{field}") };
        return ConfigError::new(key, "unknown key");
    }
    if let Some(rest) = text.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let key = if base.is_empty() { field.to_string() } else { format!("{base}.{field}") };
        return ConfigError::new(key, "missing");
    }
    let reason = match text.rsplit_once(" for key `") {
        Some((r, _)) => r.to_string(),
        None => text.clone(),
    };
    ConfigError::new(base, reason)
}

/// `service[0]check` (the config crate's path inside arrays) as `service[0].check`.
fn dotted(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    let mut prev = ' ';
    for c in key.chars() {
        if prev == ']' && c != '[' && c != '.' {
            out.push('.');
        }
        out.push(c);
        prev = c;
    }
    out
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    if raw.ports.is_empty() {
        return Err(ConfigError::new("port", "at least one [[port]] is needed"));
    }
    let mut ports = Vec::with_capacity(raw.ports.len());
    for (i, p) in raw.ports.iter().enumerate() {
        let key = |k: &str| format!("port[{i}].{k}");
        if p.name.trim().is_empty() {
            return Err(ConfigError::new(key("name"), "empty device name"));
        }
        if raw.ports[..i].iter().any(|q| q.name == p.name) {
            return Err(ConfigError::new(key("name"), format!("device \"{}\" is listed twice", p.name)));
        }
        let mut addresses = Vec::with_capacity(p.addresses.len());
        for (j, a) in p.addresses.iter().enumerate() {
            let c: Ipv4Cidr = a
                .parse()
                .map_err(|_| ConfigError::new(format!("port[{i}].addresses[{j}]"), format!("invalid CIDR \"{a}\"")))?;
            if c.address().is_unspecified() || c.address().is_broadcast() || c.address().is_multicast() {
                return Err(ConfigError::new(
                    format!("port[{i}].addresses[{j}]"),
                    format!("\"{a}\" is not a unicast host address"),
                ));
            }
            addresses.push(c);
        }
        if !(68..=9600).contains(&p.mtu) {
            return Err(ConfigError::new(key("mtu"), format!("{} is outside 68..=9600", p.mtu)));
        }
        let side = match p.side.as_str() {
            "client" => PortSide::Client,
            "server" => PortSide::Server,
            "both" => PortSide::Both,
            other => return Err(ConfigError::new(key("side"), format!("\"{other}\" is not client, server or both"))),
        };
        ports.push(Port {
            name: p.name.clone(),
            addresses,
            mtu: u16::try_from(p.mtu).unwrap_or(1500),
            promiscuous: p.promiscuous,
            side,
            kernel: match &p.kernel {
                None => None,
                Some(k)
                    if k.is_empty()
                        || k.len() > 15
                        || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
                {
                    return Err(ConfigError::new(
                        key("kernel"),
                        format!("\"{k}\" is not an interface name (1-15 of a-z 0-9 - _)"),
                    ));
                }
                Some(k) => Some(k.clone()),
            },
        });
    }
    // One address, one port.
    for (i, p) in ports.iter().enumerate() {
        for (j, a) in p.addresses.iter().enumerate() {
            let clash = ports
                .iter()
                .enumerate()
                .flat_map(|(k, q)| q.addresses.iter().enumerate().map(move |(l, b)| (k, l, b)))
                .find(|&(k, l, b)| (k, l) < (i, j) && b.address() == a.address());
            if let Some((k, l, _)) = clash {
                return Err(ConfigError::new(
                    format!("port[{i}].addresses[{j}]"),
                    format!("{} is already port[{k}].addresses[{l}]", a.address()),
                ));
            }
        }
    }
    let port_index = |key: String, name: &str| -> Result<usize, ConfigError> {
        ports
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| ConfigError::new(key, format!("no [[port]] named \"{name}\"")))
    };

    let mut routes = Vec::with_capacity(raw.routes.len());
    for (i, r) in raw.routes.iter().enumerate() {
        let prefix: Ipv4Cidr = r
            .prefix
            .parse()
            .map_err(|_| ConfigError::new(format!("route[{i}].prefix"), format!("invalid CIDR \"{}\"", r.prefix)))?;
        let via: Ipv4Addr = r
            .via
            .parse()
            .map_err(|_| ConfigError::new(format!("route[{i}].via"), format!("invalid IPv4 address \"{}\"", r.via)))?;
        let port = match &r.port {
            Some(name) => port_index(format!("route[{i}].port"), name)?,
            None => ports.iter().position(|p| p.addresses.iter().any(|c| c.contains(via))).ok_or_else(|| {
                ConfigError::new(format!("route[{i}].via"), format!("{via} is on no port's connected network"))
            })?,
        };
        routes.push(Route { prefix, via, port });
    }

    let mut neighbours = Vec::with_capacity(raw.neighbours.len());
    for (i, n) in raw.neighbours.iter().enumerate() {
        let address: Ipv4Addr = n.address.parse().map_err(|_| {
            ConfigError::new(format!("neighbour[{i}].address"), format!("invalid IPv4 address \"{}\"", n.address))
        })?;
        let mac: EthernetAddress = n.mac.parse().map_err(|_| {
            ConfigError::new(format!("neighbour[{i}].mac"), format!("invalid MAC address \"{}\"", n.mac))
        })?;
        if !mac.is_unicast() {
            return Err(ConfigError::new(format!("neighbour[{i}].mac"), format!("{mac} is not a unicast MAC")));
        }
        let port = port_index(format!("neighbour[{i}].port"), &n.port)?;
        neighbours.push(Neighbour { address, mac, port });
    }

    let w = &raw.workers;
    if w.lcores.is_empty() {
        return Err(ConfigError::new("workers.lcores", "at least one worker lcore is needed"));
    }
    for (i, &l) in w.lcores.iter().enumerate() {
        if l >= MAX_LCORE {
            return Err(ConfigError::new(format!("workers.lcores[{i}]"), format!("lcore {l} >= {MAX_LCORE}")));
        }
        if l == raw.eal.main_lcore {
            return Err(ConfigError::new(
                format!("workers.lcores[{i}]"),
                format!("lcore {l} is eal.main_lcore (the control lcore)"),
            ));
        }
        if w.lcores[..i].contains(&l) {
            return Err(ConfigError::new(format!("workers.lcores[{i}]"), format!("lcore {l} is listed twice")));
        }
    }
    if raw.eal.main_lcore >= MAX_LCORE {
        return Err(ConfigError::new("eal.main_lcore", format!("lcore {} >= {MAX_LCORE}", raw.eal.main_lcore)));
    }
    let descriptors = |key: &str, v: u32| -> Result<u16, ConfigError> {
        if !(64..=4096).contains(&v) || !v.is_power_of_two() {
            return Err(ConfigError::new(key, format!("{v} is not a power of two in 64..=4096")));
        }
        Ok(u16::try_from(v).unwrap_or(1024))
    };
    let workers = Workers {
        lcores: w.lcores.clone(),
        rx_descriptors: descriptors("workers.rx_descriptors", w.rx_descriptors)?,
        tx_descriptors: descriptors("workers.tx_descriptors", w.tx_descriptors)?,
        idle_sleep_us: w.idle_sleep_us,
        neighbour_capacity: usize::try_from(w.neighbour_capacity).unwrap_or(4096).max(16),
        connections: usize::try_from(w.connections).unwrap_or(262_144),
        oversubscribe: w.oversubscribe,
        steering: match w.steering.as_str() {
            "client-port" => crate::net::rss::Input::ClientPort,
            "client" => crate::net::rss::Input::Client,
            other => {
                return Err(ConfigError::new("workers.steering", format!("\"{other}\" is not client-port or client")))
            }
        },
        rss_key: match &w.rss_key {
            None => crate::net::rss::RSS_KEY,
            Some(k) => crate::net::rss::parse_key(k)
                .ok_or_else(|| ConfigError::new("workers.rss_key", "not 40 bytes written as 80 hex digits"))?,
        },
    };
    if w.connections < 1024 {
        return Err(ConfigError::new("workers.connections", format!("{} is below 1024", w.connections)));
    }
    let mut model = services_model(&raw)?;
    let mut checks = Vec::new();
    for (i, s) in raw.services.iter().enumerate() {
        if let Some(c) = check_spec(i, s)? {
            let svc = model.services[i].0.service;
            checks.push((svc, c));
        }
    }
    model.fwmark = fwmark_specs(&raw.fwmarks)?;
    let fwmark_rules =
        super::model::rules_from_specs(&model.fwmark).map_err(|e| ConfigError::new("fwmark", e.to_string()))?;
    let metrics_listen = if raw.metrics.enabled {
        Some(raw.metrics.listen.parse().map_err(|_| {
            ConfigError::new("metrics.listen", format!("\"{}\" is not an address:port", raw.metrics.listen))
        })?)
    } else {
        None
    };
    if raw.control.socket.trim().is_empty() {
        return Err(ConfigError::new("control.socket", "empty path"));
    }
    if raw.mempool.mbufs < 1024 {
        return Err(ConfigError::new("mempool.mbufs", format!("{} is below 1024", raw.mempool.mbufs)));
    }
    if raw.mempool.cache > 512 {
        return Err(ConfigError::new(
            "mempool.cache",
            format!("{} is above 512 (RTE_MEMPOOL_CACHE_MAX_SIZE)", raw.mempool.cache),
        ));
    }
    for (i, a) in raw.eal.args.iter().enumerate() {
        for reserved in ["-l", "--lcores", "-c", "--main-lcore"] {
            if a == reserved || a.starts_with(&format!("{reserved}=")) {
                return Err(ConfigError::new(
                    format!("eal.args[{i}]"),
                    format!("\"{a}\": lcores come from workers.lcores and eal.main_lcore"),
                ));
            }
        }
    }
    if raw.eal.memory_mb < 64 {
        return Err(ConfigError::new("eal.memory_mb", format!("{} is below 64", raw.eal.memory_mb)));
    }
    Ok(Config {
        eal: Eal {
            args: raw.eal.args.clone(),
            main_lcore: raw.eal.main_lcore,
            hugepages: raw.eal.hugepages,
            memory_mb: raw.eal.memory_mb,
        },
        ports,
        routes,
        neighbours,
        workers,
        mempool: Mempool { mbufs: raw.mempool.mbufs, cache: raw.mempool.cache },
        control_socket: std::path::PathBuf::from(&raw.control.socket),
        metrics_listen,
        model,
        fwmark_rules,
        checks,
    })
}

fn check_spec(i: usize, s: &RawService) -> Result<Option<super::health::CheckSpec>, ConfigError> {
    use super::health::{CheckSpec, Kind};
    let key = |k: &str| format!("service[{i}].check.{k}");
    let sorry = match &s.sorry_server {
        None => None,
        Some(v) => {
            let (a, p) = v.rsplit_once(':').ok_or_else(|| {
                ConfigError::new(format!("service[{i}].sorry_server"), format!("\"{v}\" is not address:port"))
            })?;
            let addr = parse_ipv4(&format!("service[{i}].sorry_server"), a)?;
            let port = p.parse::<u16>().map_err(|_| {
                ConfigError::new(format!("service[{i}].sorry_server"), format!("\"{v}\" is not address:port"))
            })?;
            let fwd =
                parse_forward(&format!("service[{i}].sorry_forward"), s.sorry_forward.as_deref().unwrap_or("masq"))?;
            Some((addr, port, fwd))
        }
    };
    let Some(c) = &s.check else {
        if sorry.is_some() {
            return Err(ConfigError::new(
                format!("service[{i}].sorry_server"),
                "needs a [service.check] to know when the pool is down",
            ));
        }
        return Ok(None);
    };
    let kind = match c.kind.as_str() {
        "tcp_check" => Kind::Tcp,
        "http_get" => {
            let status = match c.status_code.as_deref() {
                None => (200, 299),
                Some(t) => {
                    let bad =
                        || ConfigError::new(key("status_code"), format!("\"{t}\" is not a code or a range lo-hi"));
                    match t.split_once('-') {
                        Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
                        None => {
                            let v: u16 = t.parse().map_err(|_| bad())?;
                            (v, v)
                        }
                    }
                }
            };
            if let Some(d) = &c.digest {
                if d.len() != 32 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ConfigError::new(key("digest"), "not an MD5 digest (32 hex digits)"));
                }
            }
            if !c.path.starts_with('/') {
                return Err(ConfigError::new(key("path"), format!("\"{}\" does not start with /", c.path)));
            }
            Kind::Http { path: c.path.clone(), status, digest: c.digest.clone() }
        }
        "misc_check" => Kind::Misc {
            command: c.misc_path.clone().ok_or_else(|| ConfigError::new(key("misc_path"), "missing"))?,
            timeout_s: c.misc_timeout.unwrap_or(c.delay_loop).max(1),
            dynamic: c.misc_dynamic,
        },
        other => {
            return Err(ConfigError::new(key("type"), format!("\"{other}\" is not tcp_check, http_get or misc_check")))
        }
    };
    if c.delay_loop == 0 {
        return Err(ConfigError::new(key("delay_loop"), "must be at least 1 second"));
    }
    Ok(Some(CheckSpec {
        kind,
        delay_loop_s: c.delay_loop,
        connect_timeout_s: c.connect_timeout.max(1),
        connect_port: c.connect_port,
        retry: c.retry,
        delay_before_retry_s: c.delay_before_retry,
        inhibit_on_failure: c.inhibit_on_failure,
        alpha: c.alpha,
        quorum: s.quorum,
        hysteresis: s.hysteresis,
        sorry_server: sorry,
    }))
}

fn parse_forward(key: &str, s: &str) -> Result<FwdMethod, ConfigError> {
    match s {
        "masq" | "masquerading" | "nat" => Ok(FwdMethod::Masq),
        "route" | "gatewaying" | "dr" => Ok(FwdMethod::Route),
        "tunnel" | "ipip" | "tun" => Ok(FwdMethod::Tunnel),
        other => Err(ConfigError::new(key, format!("\"{other}\" is not masq, route or tunnel"))),
    }
}

fn parse_ipv4(key: &str, s: &str) -> Result<Ipv4Addr, ConfigError> {
    s.parse().map_err(|_| ConfigError::new(key, format!("invalid IPv4 address \"{s}\"")))
}

/// The services of the file as changes to an empty model (so the file is checked by
/// exactly the rules `rvsadm` is checked by).
fn services_model(raw: &RawConfig) -> Result<Model, ConfigError> {
    let mut m = Model::default();
    let t = &raw.timeouts;
    m.apply(&Change::SetTimeouts { tcp: t.tcp, tcpfin: t.tcpfin, udp: t.udp })
        .map_err(|e| ConfigError::new("timeouts", e))?;
    for (i, s) in raw.services.iter().enumerate() {
        let key = |k: &str| format!("service[{i}].{k}");
        let service = match (s.fwmark, &s.protocol, &s.address) {
            (Some(mark), None, None) if s.port.is_none() => ServiceKey::Fwmark(mark),
            (None, Some(p), Some(a)) => {
                let addr = parse_ipv4(&key("address"), a)?;
                let port = s.port.ok_or_else(|| ConfigError::new(key("port"), "missing"))?;
                match p.as_str() {
                    "tcp" => ServiceKey::Addr { proto: Protocol::Tcp, addr, port },
                    "udp" => ServiceKey::Addr { proto: Protocol::Udp, addr, port },
                    other => return Err(ConfigError::new(key("protocol"), format!("\"{other}\" is not tcp or udp"))),
                }
            }
            _ => {
                return Err(ConfigError::new(
                    format!("service[{i}]"),
                    "give either protocol + address + port, or fwmark",
                ))
            }
        };
        let netmask = s.netmask.as_deref().map(|n| parse_ipv4(&key("netmask"), n)).transpose()?;
        let spec = ServiceSpec {
            service,
            scheduler: s.scheduler.clone(),
            flags: s.flags.clone(),
            persistent: s.persistent,
            netmask,
        };
        m.apply(&Change::AddService(spec)).map_err(|e| ConfigError::new(format!("service[{i}]"), e))?;
        for (j, d) in s.dest.iter().enumerate() {
            let dkey = |k: &str| format!("service[{i}].dest[{j}].{k}");
            let spec = DestSpec {
                service,
                addr: parse_ipv4(&dkey("address"), &d.address)?,
                port: d.port,
                forward: parse_forward(&dkey("forward"), &d.forward)?,
                weight: d.weight,
                upper: d.upper,
                lower: d.lower,
            };
            m.apply(&Change::AddDest(spec)).map_err(|e| ConfigError::new(format!("service[{i}].dest[{j}]"), e))?;
        }
    }
    Ok(m)
}

fn fwmark_specs(raw: &[RawFwmark]) -> Result<Vec<FwmarkSpec>, ConfigError> {
    let specs: Vec<FwmarkSpec> = raw
        .iter()
        .map(|r| FwmarkSpec {
            mark: r.mark,
            destination: r.destination.clone(),
            source: r.source.clone(),
            protocol: r.protocol.clone(),
            ports: r.ports.clone(),
            mac_source: r.mac_source.clone(),
        })
        .collect();
    super::model::rules_from_specs(&specs)
        .map_err(|e| ConfigError::new(format!("fwmark[{}].{}", e.index, e.field), e.reason))?;
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[eal]
args = ["--vdev=net_af_packet0,iface=ext", "--vdev=net_af_packet1,iface=int"]

[[port]]
name = "net_af_packet0"
addresses = ["198.18.0.10/24"]

[[port]]
name = "net_af_packet1"
addresses = ["198.18.1.1/24"]
mtu = 9000

[[route]]
prefix = "198.19.0.0/16"
via = "198.18.1.254"

[[neighbour]]
address = "198.18.1.11"
mac = "02:00:00:00:01:0b"
port = "net_af_packet1"

[workers]
lcores = [1]
idle_sleep_us = 20
"#;

    #[test]
    fn good_config() {
        let c = from_toml(GOOD).unwrap();
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.ports[0].addresses[0].to_string(), "198.18.0.10/24");
        assert_eq!(c.ports[1].mtu, 9000);
        assert_eq!(c.ports[0].mtu, 1500);
        assert_eq!(c.ports[0].side, PortSide::Both);
        assert_eq!(c.workers.rss_key, crate::net::rss::RSS_KEY);
        assert_eq!(c.routes[0].port, 1, "port found from the via address");
        assert_eq!(c.neighbours[0].port, 1);
        assert_eq!(c.workers.lcores, vec![1]);
        assert_eq!(c.workers.idle_sleep_us, 20);
        assert_eq!(c.eal.hugepages, Hugepages::Auto);
        assert_eq!(c.mempool.mbufs, 8191);
    }

    fn err(text: &str) -> String {
        from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("198.18.1.1/24", "1.2.3/40", "port[1].addresses[0]: invalid CIDR \"1.2.3/40\""),
            ("198.18.1.1/24", "198.18.0.10/32", "port[1].addresses[0]: 198.18.0.10 is already port[0].addresses[0]"),
            ("198.18.1.1/24", "224.0.0.1/24", "port[1].addresses[0]: \"224.0.0.1/24\" is not a unicast host address"),
            ("mtu = 9000", "mtu = 20", "port[1].mtu: 20 is outside 68..=9600"),
            ("lcores = [1]", "lcores = [0]", "workers.lcores[0]: lcore 0 is eal.main_lcore (the control lcore)"),
            ("lcores = [1]", "lcores = []", "workers.lcores: at least one worker lcore is needed"),
            ("lcores = [1]", "lcores = [1, 1]", "workers.lcores[1]: lcore 1 is listed twice"),
            (
                "via = \"198.18.1.254\"",
                "via = \"203.0.113.1\"",
                "route[0].via: 203.0.113.1 is on no port's connected network",
            ),
            ("via = \"198.18.1.254\"", "via = \"1.2.3\"", "route[0].via: invalid IPv4 address \"1.2.3\""),
            (
                "mac = \"02:00:00:00:01:0b\"",
                "mac = \"ff:ff:ff:ff:ff:ff\"",
                "neighbour[0].mac: ff:ff:ff:ff:ff:ff is not a unicast MAC",
            ),
            ("mac = \"02:00:00:00:01:0b\"", "mac = \"02:00\"", "neighbour[0].mac: invalid MAC address \"02:00\""),
            ("port = \"net_af_packet1\"", "port = \"eth9\"", "neighbour[0].port: no [[port]] named \"eth9\""),
            (
                "idle_sleep_us = 20",
                "idle_sleep_us = 20\nrx_descriptors = 1000",
                "workers.rx_descriptors: 1000 is not a power of two in 64..=4096",
            ),
            (
                "args = [",
                "args = [\"-l\", \"0-1\", ",
                "eal.args[0]: \"-l\": lcores come from workers.lcores and eal.main_lcore",
            ),
        ];
        for (from, to, want) in cases {
            assert!(GOOD.contains(from), "{from}");
            let text = GOOD.replacen(from, to, 1);
            assert_eq!(err(&text), *want, "replacing {from:?} by {to:?}");
        }
    }

    const SERVICES: &str = r#"
[timeouts]
tcp = 600

[[service]]
protocol = "tcp"
address = "198.18.0.10"
port = 80
scheduler = "wlc"

  [[service.dest]]
  address = "198.18.1.11"
  port = 8080
  forward = "masq"
  weight = 3

  [[service.dest]]
  address = "198.18.1.12"
  port = 8080
  forward = "masq"

[[service]]
fwmark = 1
scheduler = "rr"
persistent = 1800
netmask = "255.255.255.0"

  [[service.dest]]
  address = "198.18.1.11"

[[fwmark]]
mark = 1
destination = "198.18.0.10/32"
protocol = "tcp"
ports = "10000:20000"
mac_source = "!02:d1:00:00:00:02"
"#;

    #[test]
    fn services_and_fwmarks() {
        let c = from_toml(&format!("{GOOD}{SERVICES}")).unwrap();
        assert_eq!(c.model.services.len(), 2);
        assert_eq!(c.model.services[0].1[0].weight, 3);
        assert_eq!(c.model.services[0].1[1].weight, 1, "default weight");
        assert_eq!(c.model.services[1].1[0].forward, FwdMethod::Route, "default forward, as ipvsadm's -g");
        assert_eq!(c.model.timeouts.get(), (600, 120, 300));
        assert_eq!(c.fwmark_rules[0].dports, Some((10000, 20000)));
        assert!(c.fwmark_rules[0].src_mac.unwrap().1, "negated");
        assert_eq!(c.control_socket, std::path::PathBuf::from("/run/rvs/rvsd.sock"));
        let cases: &[(&str, &str, &str)] = &[
            (
                "port = 8080\n  forward = \"masq\"\n  weight = 3",
                "port = 8080\n  forward = \"dr\"\n  weight = 3",
                "service[0].dest[0]: direct routing (-g) cannot map ports",
            ),
            ("scheduler = \"wlc\"", "scheduler = \"xx\"", "service[0]: Scheduler not found: xx"),
            (
                "address = \"198.18.1.12\"",
                "address = \"198.18.1.11\"",
                "service[0].dest[1]: Destination already exists",
            ),
            (
                "ports = \"10000:20000\"",
                "ports = \"20000:10000\"",
                "fwmark[0].ports: \"20000:10000\" is not a port or a range lo:hi",
            ),
            (
                "mac_source = \"!02:d1:00:00:00:02\"",
                "mac_source = \"!02:d1\"",
                "fwmark[0].mac_source: invalid MAC address \"!02:d1\"",
            ),
            (
                "fwmark = 1\nscheduler",
                "fwmark = 1\nport = 80\nscheduler",
                "service[1]: give either protocol + address + port, or fwmark",
            ),
        ];
        for (from, to, want) in cases {
            let text = format!("{GOOD}{}", SERVICES.replacen(from, to, 1));
            assert!(SERVICES.contains(from), "{from}");
            assert!(err(&text).starts_with(want), "{} does not start with {want}", err(&text));
        }
    }

    /// The error paths the tables above do not reach: each names its key and
    /// says what is wrong (every config error path, tested).
    #[test]
    fn every_other_error_path_names_its_key() {
        let base = format!("{GOOD}{SERVICES}");
        let cases: &[(&str, &str, &str)] = &[
            ("name = \"net_af_packet0\"", "name = \"\"", "port[0].name: empty device name"),
            ("name = \"net_af_packet1\"", "name = \"net_af_packet0\"", "port[1].name: device \"net_af_packet0\" is listed twice"),
            ("mtu = 9000", "mtu = 9000\nside = \"left\"", "port[1].side: \"left\" is not client, server or both"),
            ("mtu = 9000", "mtu = 9000\nkernel = \"way-too-long-ifname\"", "port[1].kernel: \"way-too-long-ifname\" is not an interface name"),
            ("prefix = \"198.19.0.0/16\"", "prefix = \"198.19/99\"", "route[0].prefix: invalid CIDR \"198.19/99\""),
            ("address = \"198.18.1.11\"\nmac", "address = \"198.18.1\"\nmac", "neighbour[0].address: invalid IPv4 address \"198.18.1\""),
            ("lcores = [1]", "lcores = [1, 999]", "workers.lcores[1]: lcore 999 >="),
            ("[eal]", "[eal]\nmain_lcore = 999", "eal.main_lcore: lcore 999 >="),
            ("idle_sleep_us = 20", "idle_sleep_us = 20\nsteering = \"random\"", "workers.steering: \"random\" is not client-port or client"),
            ("idle_sleep_us = 20", "idle_sleep_us = 20\nrss_key = \"00ff\"", "workers.rss_key: not 40 bytes written as 80 hex digits"),
            ("idle_sleep_us = 20", "idle_sleep_us = 20\nconnections = 10", "workers.connections: 10 is below 1024"),
            ("[workers]", "[metrics]\nlisten = \"localhost\"\n[workers]", "metrics.listen: \"localhost\" is not an address:port"),
            ("[workers]", "[control]\nsocket = \"\"\n[workers]", "control.socket: empty path"),
            ("[workers]", "[mempool]\nmbufs = 100\n[workers]", "mempool.mbufs: 100 is below 1024"),
            ("[workers]", "[mempool]\ncache = 1000\n[workers]", "mempool.cache: 1000 is above 512"),
            ("[eal]", "[eal]\nmemory_mb = 8", "eal.memory_mb: 8 is below 64"),
            ("tcp = 600", "tcp = 600\ntcpfin = -1", "timeouts"),
            ("scheduler = \"wlc\"", "scheduler = \"wlc2\"", "service[0]: Scheduler not found: wlc2"),
            ("port = 80\nscheduler", "port = 0\nscheduler", "service[0]: Zero port specified for non-persistent service"),
            ("protocol = \"tcp\"\naddress", "protocol = \"sctp\"\naddress", "service[0].protocol: \"sctp\" is not tcp or udp"),
            ("address = \"198.18.0.10\"\nport = 80", "address = \"198.18.0.300\"\nport = 80", "service[0].address: invalid IPv4 address"),
            ("netmask = \"255.255.255.0\"", "netmask = \"255.255.255\"", "service[1].netmask: invalid IPv4 address"),
            ("forward = \"masq\"\n  weight = 3", "forward = \"nat64\"\n  weight = 3", "service[0].dest[0].forward: \"nat64\" is not masq, route or tunnel"),
            ("weight = 3", "weight = 3\n  upper = 1\n  lower = 5", "service[0].dest[0]: Illegal thresholds"),
            ("  forward = \"masq\"\n\n[[service]]", "  forward = \"masq\"\n\n  [[service.dest]]\n  address = \"198.18.1.12\"\n  port = 8080\n  forward = \"masq\"\n\n[[service]]", "service[0].dest[2]: Destination already exists"),
            ("  forward = \"masq\"\n\n[[service]]", "  forward = \"masq\"\n\n  [[service.dest]]\n  address = \"198.18.1.13\"\n  port = 8080\n\n[[service]]", "service[0].dest[2]: direct routing (-g) cannot map ports"),
            ("scheduler = \"wlc\"", "scheduler = \"wlc\"\nsorry_server = \"198.18.1.99\"", "service[0].sorry_server: \"198.18.1.99\" is not address:port"),
            ("scheduler = \"wlc\"", "scheduler = \"wlc\"\nsorry_server = \"198.18.1.99:80\"", "service[0].sorry_server: needs a [service.check]"),
            ("mark = 1\ndestination", "mark = 0\ndestination", "fwmark[0].mark: 0 is not a mark"),
            ("protocol = \"tcp\"\nports", "protocol = \"icmp\"\nports", "fwmark[0].protocol: \"icmp\" is not tcp or udp"),
            ("destination = \"198.18.0.10/32\"", "destination = \"198.18.0.10/33\"", "fwmark[0].destination: invalid CIDR"),
        ];
        for (from, to, want) in cases {
            assert!(base.contains(from), "{from}");
            let text = base.replacen(from, to, 1);
            let got = err(&text);
            assert!(got.starts_with(want), "replacing {from:?} by {to:?}: {got:?} does not start with {want:?}");
        }
        // Whole-file errors: TOML that does not parse, a file that is not there.
        let bad = err("[eal\n");
        assert!(bad.contains("line 1"), "a TOML syntax error says where: {bad}");
        let e = load(std::path::Path::new("/nonexistent/rvsd.toml")).unwrap_err();
        assert_eq!(e.to_string(), "cannot read config file /nonexistent/rvsd.toml");
        // Health-check keys.
        let with_check = |check: &str| {
            format!(
                "{GOOD}{}",
                SERVICES.replacen("scheduler = \"wlc\"", &format!("scheduler = \"wlc\"\n[service.check]\n{check}"), 1)
            )
        };
        for (check, want) in [
            ("type = \"http_get\"\npath = \"health\"", "service[0].check.path: \"health\" does not start with /"),
            ("type = \"http_get\"\ndigest = \"abc\"", "service[0].check.digest: not an MD5 digest (32 hex digits)"),
            ("type = \"tcp_check\"\ndelay_loop = 0", "service[0].check.delay_loop: must be at least 1 second"),
        ] {
            let got = err(&with_check(check));
            assert_eq!(got, want, "{check}");
        }
    }

    #[test]
    fn checks_with_keepalived_names_and_defaults() {
        let text = format!(
            "{GOOD}{}",
            SERVICES.replacen(
                "scheduler = \"wlc\"",
                "scheduler = \"wlc\"\nsorry_server = \"198.18.1.99:8080\"\nquorum = 2\n[service.check]\ntype = \"http_get\"\npath = \"/health\"\nstatus_code = \"200-204\"\ndelay_loop = 1\ninhibit_on_failure = true",
                1
            )
        );
        let c = from_toml(&text).unwrap();
        let (svc, spec) = &c.checks[0];
        assert_eq!(*svc, c.model.services[0].0.service);
        assert_eq!(
            spec.kind,
            crate::control::health::Kind::Http { path: "/health".into(), status: (200, 204), digest: None }
        );
        assert_eq!((spec.delay_loop_s, spec.connect_timeout_s, spec.retry, spec.delay_before_retry_s), (1, 5, 1, 1));
        assert!(spec.inhibit_on_failure && !spec.alpha);
        assert_eq!((spec.quorum, spec.hysteresis), (2, 0));
        assert_eq!(spec.sorry_server, Some((Ipv4Addr::new(198, 18, 1, 99), 8080, FwdMethod::Masq)));
        for (from, to, want) in [
            (
                "type = \"http_get\"",
                "type = \"smtp_check\"",
                "service[0].check.type: \"smtp_check\" is not tcp_check, http_get or misc_check",
            ),
            (
                "status_code = \"200-204\"",
                "status_code = \"ok\"",
                "service[0].check.status_code: \"ok\" is not a code or a range lo-hi",
            ),
            ("type = \"http_get\"", "type = \"misc_check\"", "service[0].check.misc_path: missing"),
            ("delay_loop = 1", "delay_loop = 1\nretries = 3", "service[0].check.retries: unknown key"),
        ] {
            let t = text.replacen(from, to, 1);
            assert_eq!(err(&t), want);
        }
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = from_toml(&GOOD.replacen("addresses = [\"198.18.1.1/24\"]", "adresses = [\"198.18.1.1/24\"]", 1))
            .unwrap_err();
        assert!(e.key.ends_with("adresses"), "{e}");
        assert_eq!(e.reason, "unknown key");
        let e = from_toml(&format!("{GOOD}\n[bogus]\nx = 1\n")).unwrap_err();
        assert_eq!(e.to_string(), "bogus: unknown key");
        let e = from_toml(&GOOD.replacen("idle_sleep_us = 20", "idle_sleep = 20", 1)).unwrap_err();
        assert_eq!(e.to_string(), "workers.idle_sleep: unknown key");
    }

    #[test]
    fn missing_sections() {
        let e = from_toml("[eal]\n[[port]]\nname = \"x\"\n").unwrap_err();
        assert_eq!(e.to_string(), "workers: missing");
        let e = from_toml("[eal]\n[workers]\nlcores = [1]\n").unwrap_err();
        assert_eq!(e.to_string(), "port: at least one [[port]] is needed");
    }

    #[test]
    fn eal_argv_modes() {
        let c = from_toml(GOOD).unwrap();
        let huge = c.eal_argv(true);
        assert_eq!(&huge[..7], &["rvsd", "-l", "0,1", "--main-lcore", "0", "--no-telemetry", "--in-memory"]);
        assert!(huge.ends_with(&c.eal.args));
        let nohuge = c.eal_argv(false);
        assert_eq!(&nohuge[6..10], &["--no-huge", "-m", "512", "--no-shconf"]);
        let off = from_toml(&GOOD.replacen("[eal]", "[eal]\nhugepages = \"off\"", 1)).unwrap();
        assert!(off.eal_argv(true).contains(&"--no-huge".to_string()));
        assert_eq!(c.vdevs(), vec![(0, "net_af_packet0".to_string()), (1, "net_af_packet1".to_string())]);
    }

    #[test]
    fn cpu_lists_and_lcore_checks() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0-2,5,7-8"), Some(vec![0, 1, 2, 5, 7, 8]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        let mut c = from_toml(&GOOD.replacen("lcores = [1]", "lcores = [1, 5]", 1)).unwrap();
        assert_eq!(
            check_lcores(&c, &[0, 1]).unwrap_err().to_string(),
            "workers.lcores[1]: lcore 5 is not an online CPU (online: [0, 1]); set workers.oversubscribe to share CPUs"
        );
        assert_eq!(check_lcores(&c, &[0, 1, 5]).unwrap(), vec![(0, 0), (1, 1), (5, 5)]);
        c.set_workers(3);
        assert_eq!(c.workers.lcores, vec![1, 2, 3]);
        let map = check_lcores(&c, &[0, 1]).unwrap();
        assert_eq!(map, vec![(0, 0), (1, 1), (2, 1), (3, 1)]);
        let argv = c.eal_argv_mapped(false, &map);
        assert_eq!(&argv[1..3], &["--lcores", "0@0,1@1,2@1,3@1"]);
        c.vdev_queues();
        assert_eq!(c.eal.args[0], "--vdev=net_af_packet0,iface=ext,qpairs=3");
    }

    #[test]
    fn environment_overrides() {
        let dir = std::env::temp_dir().join(format!("rvs-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, GOOD).unwrap();
        let env: HashMap<String, String> = [
            ("RVS_WORKERS__IDLE_SLEEP_US", "0"),
            ("RVS_EAL__ARGS", "--vdev=net_null0 --no-pci"),
            ("RVS_LAB_ID", "not configuration"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = load_with_env(&path, &env).unwrap();
        assert_eq!(c.workers.idle_sleep_us, 0);
        assert_eq!(c.eal.args, vec!["--vdev=net_null0", "--no-pci"]);
        let bad: HashMap<String, String> = [("RVS_WORKERS__BOGUS".to_string(), "1".to_string())].into_iter().collect();
        assert_eq!(load_with_env(&path, &bad).unwrap_err().to_string(), "workers.bogus: unknown key");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(load(&dir.join("nope.toml")).unwrap_err().to_string().contains("cannot read config file"));
    }
}
