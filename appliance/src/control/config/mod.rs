//! `rvsd --config FILE`: TOML read through the `config` crate, with environment
//! overrides `RVS_<SECTION>__<KEY>` (double underscore between levels, e.g.
//! `RVS_WORKERS__IDLE_SLEEP_US=0`; lists are space-separated:
//! `RVS_EAL__ARGS="--vdev=net_null0"`). Environment variables with no `__` (such as
//! `RVS_LAB_ID`) are not configuration and are ignored.
//!
//! `load` returns a validated `Config`, or an error that names the key and the reason
//! (`port[1].addresses[0]: invalid CIDR "1.2.3/40"`). Unknown keys are errors.
//!
//! - `schema`: the file as written (its sections, keys and defaults);
//! - `validate`: what is written, checked and turned into a `Config` (services and
//!   firewall marks by the very rules `rvsadm`'s changes go through);
//! - `checks`: the health-check specs of `[service.check]`, keepalived's options;
//! - `plan`: the EAL command line and the CPUs the lcores run on.
//!
//! Reloadable or start-up only (a reload — SIGHUP, `rvsadm --reload` — applies the
//! first kind at once and all or nothing; for the second it says what changed and
//! keeps the running values until the next start):
//!
//! | section | keys | |
//! |---|---|---|
//! | `[[service]]`, `[[service.dest]]` | all | reloadable |
//! | `[service.check]` | all | reloadable |
//! | `[timeouts]` | `tcp`, `tcpfin`, `udp` | reloadable |
//! | `[ipvs]` | `sloppy_tcp`, `expire_nodest_conn`, `expire_quiescent_template` | reloadable |
//! | `[[fwmark]]` | all | reloadable |
//! | `[[vrrp_instance]]`, `[[vrrp_script]]`, `[[vrrp_sync_group]]` | all | reloadable |
//! | `[sync]` | all | reloadable |
//! | `[eal]`, `[[port]]`, `[[route]]`, `[[neighbour]]` | all | start-up only |
//! | `[workers]`, `[mempool]`, `[control]`, `[metrics]` | all | start-up only |

mod checks;
mod plan;
mod schema;
#[cfg(test)]
mod tests;
mod validate;
mod vrrp;

pub use plan::{check_lcores, parse_cpu_list, MAX_LCORE};

use super::model::Model;
use super::protocol::ServiceKey;
use crate::net::ethernet::EthernetAddress;
use crate::net::ipv4::Ipv4Cidr;
use crate::net::ipv6::Ipv6Cidr;
use schema::RawConfig;
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

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub eal: Eal,
    pub ports: Vec<Port>,
    pub routes: Vec<Route>,
    /// IPv6 routes (`[[route]]` with IPv6 prefix and next hop).
    pub routes6: Vec<Route6>,
    pub neighbours: Vec<Neighbour>,
    /// IPv6 static neighbours.
    pub neighbours6: Vec<Neighbour6>,
    pub workers: Workers,
    pub mempool: Mempool,
    /// The control socket's path.
    pub control_socket: std::path::PathBuf,
    /// Where `/metrics` is served (None: metrics off).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Services, dests and timeouts.
    pub model: Model,
    /// Health checks, per service.
    pub checks: Vec<(ServiceKey, super::health::CheckSpec)>,
    /// VRRP instances, scripts and sync groups.
    pub vrrp: super::vrrp::VrrpSpec,
    /// The connection sync daemons.
    pub sync: super::sync::SyncSpec,
}

impl Config {
    /// Every address of the appliance's own: the ports' and the hidden ones (a real
    /// server at one of them is the director itself: Local).
    pub fn own_addresses(&self) -> Vec<std::net::IpAddr> {
        own_addresses(&self.ports)
    }
}

/// The ports' addresses of both families and the hidden ones.
pub(super) fn own_addresses(ports: &[Port]) -> Vec<std::net::IpAddr> {
    ports
        .iter()
        .flat_map(|p| {
            let v4 = p.addresses.iter().map(|c| c.address()).chain(p.hidden.iter().copied()).map(std::net::IpAddr::V4);
            v4.chain(p.addresses6.iter().map(|c| std::net::IpAddr::V6(c.address())))
        })
        .collect()
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
    /// The IPv6 prefixes among `addresses` (they are listed together).
    pub addresses6: Vec<Ipv6Cidr>,
    pub mtu: u16,
    pub promiscuous: bool,
    /// Which side of the director the port faces, for hardware steering.
    pub side: PortSide,
    /// The kernel interface of the exception path, if any.
    pub kernel: Option<String>,
    /// Addresses accepted but never announced (the kernel interface holds them).
    pub hidden: Vec<Ipv4Addr>,
    /// The kernel interface holds each VIP (/32, /128) while its services are
    /// healthy, for a routing daemon to announce.
    pub announce: bool,
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
pub struct Route6 {
    pub prefix: Ipv6Cidr,
    pub via: std::net::Ipv6Addr,
    pub port: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour6 {
    pub address: std::net::Ipv6Addr,
    pub mac: EthernetAddress,
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
    validate::validate(raw)
}

/// Parses TOML text (no environment), for tests and tools.
pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
    let built = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .map_err(|e| ConfigError::new("", e.to_string()))?;
    let raw: RawConfig = built.try_deserialize().map_err(from_config_error)?;
    validate::validate(raw)
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
