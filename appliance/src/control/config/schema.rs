//! The configuration file as written: its sections and keys (unknown ones are
//! errors) and their defaults. `validate` turns it into a `Config`.

use super::Hugepages;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) eal: RawEal,
    #[serde(default, rename = "port")]
    pub(super) ports: Vec<RawPort>,
    #[serde(default, rename = "route")]
    pub(super) routes: Vec<RawRoute>,
    #[serde(default, rename = "neighbour")]
    pub(super) neighbours: Vec<RawNeighbour>,
    pub(super) workers: RawWorkers,
    #[serde(default)]
    pub(super) mempool: RawMempool,
    #[serde(default)]
    pub(super) control: RawControl,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
    #[serde(default)]
    pub(super) timeouts: RawTimeouts,
    /// The kernel's `net.ipv4.vs.*` settings, by their names.
    #[serde(default)]
    pub(super) ipvs: RawIpvs,
    #[serde(default, rename = "service")]
    pub(super) services: Vec<RawService>,
    #[serde(default, rename = "fwmark")]
    pub(super) fwmarks: Vec<RawFwmark>,
    #[serde(default, rename = "vrrp_instance")]
    pub(super) vrrp_instances: Vec<RawVrrpInstance>,
    #[serde(default, rename = "vrrp_script")]
    pub(super) vrrp_scripts: Vec<RawVrrpScript>,
    #[serde(default, rename = "vrrp_sync_group")]
    pub(super) vrrp_sync_groups: Vec<RawVrrpSyncGroup>,
    pub(super) sync: Option<RawSync>,
}

/// The connection sync daemon: ipvsadm's `--start-daemon` options, or keepalived's
/// `lvs_sync_daemon` line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSync {
    pub(super) interface: Option<String>,
    pub(super) syncid: Option<u32>,
    /// master | backup | both (default: both, as the kernel allows).
    pub(super) role: Option<String>,
    pub(super) maxlen: Option<u32>,
    pub(super) group: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) ttl: Option<u32>,
    #[serde(default = "default_sync_threshold")]
    pub(super) threshold: u32,
    #[serde(default = "default_sync_period")]
    pub(super) period: u32,
    /// keepalived: "IFACE VRRP_INSTANCE [id N] [maxlen N] [port P] [ttl T] [group A]".
    pub(super) lvs_sync_daemon: Option<String>,
}

pub(super) fn default_sync_threshold() -> u32 {
    3
}
pub(super) fn default_sync_period() -> u32 {
    50
}

/// keepalived's `vrrp_instance`, in its words and with its defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVrrpInstance {
    pub(super) name: String,
    #[serde(default = "default_vrrp_state")]
    pub(super) state: String,
    pub(super) interface: String,
    pub(super) virtual_router_id: u32,
    #[serde(default = "default_vrrp_priority")]
    pub(super) priority: u32,
    #[serde(default = "default_advert_int")]
    pub(super) advert_int: f64,
    /// keepalived's `vrrp_version` (global there, per instance here).
    #[serde(default = "default_vrrp_version")]
    pub(super) version: u32,
    #[serde(default)]
    pub(super) nopreempt: bool,
    #[serde(default)]
    pub(super) preempt_delay: u32,
    pub(super) authentication: Option<RawVrrpAuth>,
    #[serde(default)]
    pub(super) virtual_ipaddress: Vec<String>,
    /// Carried and announced, not advertised (either family).
    #[serde(default)]
    pub(super) virtual_ipaddress_excluded: Vec<String>,
    #[serde(default)]
    pub(super) track_interface: Vec<String>,
    /// ipvsadm's way of naming a service: "-t 198.18.0.10:80", "-u ...", "-f 3".
    #[serde(default)]
    pub(super) track_service: Vec<String>,
    #[serde(default)]
    pub(super) track_script: Vec<String>,
    #[serde(default = "default_garp_delay")]
    pub(super) garp_master_delay: u32,
    #[serde(default = "default_garp_repeat")]
    pub(super) garp_master_repeat: u32,
    #[serde(default)]
    pub(super) garp_master_refresh: u32,
    pub(super) notify_master: Option<String>,
    pub(super) notify_backup: Option<String>,
    pub(super) notify_fault: Option<String>,
    pub(super) notify: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVrrpAuth {
    pub(super) auth_type: String,
    pub(super) auth_pass: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVrrpScript {
    pub(super) name: String,
    pub(super) script: String,
    #[serde(default = "default_one")]
    pub(super) interval: u32,
    pub(super) timeout: Option<u32>,
    #[serde(default)]
    pub(super) weight: i32,
    #[serde(default = "default_one")]
    pub(super) rise: u32,
    #[serde(default = "default_one")]
    pub(super) fall: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVrrpSyncGroup {
    pub(super) name: String,
    pub(super) group: Vec<String>,
    pub(super) notify_master: Option<String>,
    pub(super) notify_backup: Option<String>,
    pub(super) notify_fault: Option<String>,
    pub(super) notify: Option<String>,
}

pub(super) fn default_vrrp_state() -> String {
    "BACKUP".to_string()
}
pub(super) fn default_vrrp_priority() -> u32 {
    100
}
pub(super) fn default_advert_int() -> f64 {
    1.0
}
pub(super) fn default_vrrp_version() -> u32 {
    2
}
pub(super) fn default_garp_delay() -> u32 {
    5
}
pub(super) fn default_garp_repeat() -> u32 {
    5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControl {
    #[serde(default = "default_socket")]
    pub(super) socket: String,
}

impl Default for RawControl {
    fn default() -> Self {
        RawControl { socket: default_socket() }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    #[serde(default = "default_true")]
    pub(super) enabled: bool,
    #[serde(default = "default_metrics_listen")]
    pub(super) listen: String,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics { enabled: true, listen: default_metrics_listen() }
    }
}

pub(super) fn default_metrics_listen() -> String {
    "127.0.0.1:9477".to_string()
}

pub(super) fn default_socket() -> String {
    crate::control::protocol::DEFAULT_SOCKET.to_string()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIpvs {
    #[serde(default)]
    pub(super) sloppy_tcp: bool,
    #[serde(default)]
    pub(super) expire_nodest_conn: bool,
    #[serde(default)]
    pub(super) expire_quiescent_template: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    #[serde(default)]
    pub(super) tcp: u32,
    #[serde(default)]
    pub(super) tcpfin: u32,
    #[serde(default)]
    pub(super) udp: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub(super) protocol: Option<String>,
    pub(super) address: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) fwmark: Option<u32>,
    /// A fwmark service's family, in keepalived's words: "inet" (default) or "inet6".
    pub(super) ip_family: Option<String>,
    #[serde(default = "default_scheduler")]
    pub(super) scheduler: String,
    #[serde(default)]
    pub(super) flags: Vec<String>,
    pub(super) persistent: Option<u32>,
    pub(super) netmask: Option<String>,
    #[serde(default)]
    pub(super) dest: Vec<RawDest>,
    pub(super) check: Option<RawCheck>,
    /// keepalived's virtual_server quorum / hysteresis / sorry_server.
    #[serde(default = "default_quorum")]
    pub(super) quorum: u32,
    #[serde(default)]
    pub(super) hysteresis: u32,
    pub(super) sorry_server: Option<String>,
    pub(super) sorry_forward: Option<String>,
}

pub(super) fn default_quorum() -> u32 {
    1
}

/// A service's health check, with keepalived's option names and defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    /// tcp_check | http_get | misc_check
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default = "default_delay_loop")]
    pub(super) delay_loop: u32,
    #[serde(default = "default_connect_timeout")]
    pub(super) connect_timeout: u32,
    pub(super) connect_port: Option<u16>,
    #[serde(default = "default_one")]
    pub(super) retry: u32,
    #[serde(default = "default_one")]
    pub(super) delay_before_retry: u32,
    #[serde(default)]
    pub(super) inhibit_on_failure: bool,
    #[serde(default)]
    pub(super) alpha: bool,
    /// HTTP_GET: url path, status_code ("200" or "200-299"), digest (MD5 hex).
    #[serde(default = "default_path")]
    pub(super) path: String,
    pub(super) status_code: Option<String>,
    pub(super) digest: Option<String>,
    /// MISC_CHECK: misc_path (a shell command), misc_timeout, misc_dynamic.
    pub(super) misc_path: Option<String>,
    pub(super) misc_timeout: Option<u32>,
    #[serde(default)]
    pub(super) misc_dynamic: bool,
}

pub(super) fn default_delay_loop() -> u32 {
    60
}
pub(super) fn default_connect_timeout() -> u32 {
    5
}
pub(super) fn default_one() -> u32 {
    1
}
pub(super) fn default_path() -> String {
    "/".to_string()
}

pub(super) fn default_scheduler() -> String {
    "wlc".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDest {
    pub(super) address: String,
    #[serde(default)]
    pub(super) port: u16,
    #[serde(default = "default_forward")]
    pub(super) forward: String,
    #[serde(default = "default_weight")]
    pub(super) weight: u32,
    #[serde(default)]
    pub(super) upper: u32,
    #[serde(default)]
    pub(super) lower: u32,
}

pub(super) fn default_forward() -> String {
    "route".to_string()
}

pub(super) fn default_weight() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFwmark {
    pub(super) mark: u32,
    pub(super) destination: Option<String>,
    pub(super) source: Option<String>,
    pub(super) protocol: Option<String>,
    /// "80", "10000:20000", or a list of either: "21,10000:20000".
    pub(super) ports: Option<String>,
    /// "53" or "1000:2000".
    pub(super) source_ports: Option<String>,
    /// "02:00:00:00:00:01", or "!02:..." for "not from".
    pub(super) mac_source: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEal {
    #[serde(default)]
    pub(super) args: Vec<String>,
    #[serde(default)]
    pub(super) main_lcore: u32,
    #[serde(default)]
    pub(super) hugepages: Hugepages,
    #[serde(default = "default_memory_mb")]
    pub(super) memory_mb: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPort {
    pub(super) name: String,
    #[serde(default)]
    pub(super) addresses: Vec<String>,
    #[serde(default = "default_mtu")]
    pub(super) mtu: u32,
    #[serde(default = "default_true")]
    pub(super) promiscuous: bool,
    #[serde(default = "default_side")]
    pub(super) side: String,
    /// Name of a kernel interface (net_tap) that gets this port's non-VIP addresses.
    pub(super) kernel: Option<String>,
    /// Addresses accepted here but never announced (no ARP): the kernel interface
    /// holds them, as a DR real server holds its VIP on lo.
    #[serde(default)]
    pub(super) hidden: Vec<String>,
    /// Announce the VIPs whose services are healthy on the kernel interface, for a
    /// routing daemon beside rvsd to export (ECMP clusters).
    #[serde(default)]
    pub(super) announce: bool,
}

pub(super) fn default_side() -> String {
    "both".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) prefix: String,
    pub(super) via: String,
    pub(super) port: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNeighbour {
    pub(super) address: String,
    pub(super) mac: String,
    pub(super) port: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkers {
    pub(super) lcores: Vec<u32>,
    #[serde(default = "default_descriptors")]
    pub(super) rx_descriptors: u32,
    #[serde(default = "default_descriptors")]
    pub(super) tx_descriptors: u32,
    #[serde(default)]
    pub(super) idle_sleep_us: u32,
    #[serde(default = "default_neighbours")]
    pub(super) neighbour_capacity: u32,
    #[serde(default = "default_connections")]
    pub(super) connections: u32,
    #[serde(default)]
    pub(super) oversubscribe: bool,
    #[serde(default = "default_steering")]
    pub(super) steering: String,
    pub(super) rss_key: Option<String>,
}

pub(super) fn default_steering() -> String {
    "client-port".to_string()
}

pub(super) fn default_connections() -> u32 {
    262_144
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMempool {
    #[serde(default = "default_mbufs")]
    pub(super) mbufs: u32,
    #[serde(default = "default_mbuf_cache")]
    pub(super) cache: u32,
}

impl Default for RawMempool {
    fn default() -> Self {
        RawMempool { mbufs: default_mbufs(), cache: default_mbuf_cache() }
    }
}

pub(super) fn default_memory_mb() -> u32 {
    512
}
pub(super) fn default_mtu() -> u32 {
    1500
}
pub(super) fn default_true() -> bool {
    true
}
pub(super) fn default_descriptors() -> u32 {
    1024
}
pub(super) fn default_neighbours() -> u32 {
    4096
}
pub(super) fn default_mbufs() -> u32 {
    8191
}
pub(super) fn default_mbuf_cache() -> u32 {
    256
}
