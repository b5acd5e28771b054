//! The control socket's protocol: one JSON object per line each way, every request
//! carrying the protocol version. `rvsadm` (and tests, and later health checks) talk
//! it to `rvsd`; nothing in it is specific to one client.

use crate::ipvs::dest::FwdMethod;
pub use crate::ipvs::service::ServiceKey;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};

/// Bumped on any incompatible change; the daemon refuses other versions.
pub const VERSION: u32 = 1;

/// Default socket path (`RVSADM_SOCKET` or `control.socket` change it).
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvsd.sock";

/// A service's settings (`-A` / `-E`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub service: ServiceKey,
    pub scheduler: String,
    /// Scheduler flags by name (`sh-port`, `flag-1`, ...).
    #[serde(default)]
    pub flags: Vec<String>,
    /// Persistence timeout in seconds.
    #[serde(default)]
    pub persistent: Option<u32>,
    #[serde(default)]
    pub netmask: Option<Ipv4Addr>,
    /// An IPv6 service's persistence prefix length (`-M 64`).
    #[serde(default)]
    pub prefix6: Option<u8>,
}

/// A real server's settings (`-a` / `-e`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestSpec {
    pub service: ServiceKey,
    pub addr: IpAddr,
    pub port: u16,
    pub forward: FwdMethod,
    pub weight: u32,
    #[serde(default)]
    pub upper: u32,
    #[serde(default)]
    pub lower: u32,
}

/// A firewall-mark rule (`[[fwmark]]` in the config file; an iptables mangle
/// PREROUTING `-j MARK` rule for `rvs-iptables`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FwmarkSpec {
    pub mark: u32,
    #[serde(default)]
    pub destination: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub protocol: Option<String>,
    /// Destination ports: "80", "10000:20000", or a list of either ("21,10000:20000").
    #[serde(default)]
    pub ports: Option<String>,
    /// Source ports, as `ports`: one port or a range.
    #[serde(default)]
    pub source_ports: Option<String>,
    /// The destination ports came as iptables' `-m multiport --dports` (how the rule
    /// is listed back).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub multiport: bool,
    /// A MAC, or "!MAC" for "not from".
    #[serde(default)]
    pub mac_source: Option<String>,
}

/// A change to the running configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    AddService(ServiceSpec),
    EditService(ServiceSpec),
    DelService {
        service: ServiceKey,
    },
    Clear,
    AddDest(DestSpec),
    EditDest(DestSpec),
    DelDest {
        service: ServiceKey,
        addr: IpAddr,
        port: u16,
    },
    SetTimeouts {
        tcp: u32,
        tcpfin: u32,
        udp: u32,
    },
    /// Replaces every firewall-mark rule.
    SetFwmarkRules {
        rules: Vec<FwmarkSpec>,
    },
    /// One of the kernel's `net.ipv4.vs.*` settings RVS has (`sloppy_tcp`).
    SetSysctl {
        name: String,
        value: u32,
    },
}

/// A request on the socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Apply changes atomically: all or none.
    Apply {
        changes: Vec<Change>,
    },
    /// Services, dests and counters (summed over workers).
    List,
    /// The connection table (every worker's).
    Connections,
    Timeouts,
    /// Zero the traffic counters of one service, or of all (`ipvsadm -Z`).
    Zero {
        service: Option<ServiceKey>,
    },
    /// Re-read the configuration file and apply what changed (also SIGHUP):
    /// `dry_run` says what would change and changes nothing; `keep` takes only the
    /// file's edits since it was last read, keeping what rvsadm changed elsewhere.
    Reload {
        #[serde(default)]
        dry_run: bool,
        #[serde(default)]
        keep: bool,
    },
    /// The VRRP instances (`rvsadm --vrrp`).
    Vrrp,
    /// The `net.ipv4.vs.*` settings, as `sysctl` prints them.
    Sysctl,
    /// The firewall-mark rules (`rvs-iptables -L`, and what its changes start from).
    FwmarkRules,
    /// `--start-daemon ROLE ...`: a connection sync daemon started (or restarted
    /// with new settings).
    StartDaemon {
        role: String,
        spec: crate::control::sync::DaemonSpec,
    },
    /// `--stop-daemon ROLE`.
    StopDaemon {
        role: String,
    },
    /// `-L --daemon`.
    Daemon,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub version: u32,
    #[serde(flatten)]
    pub body: T,
}

/// Traffic counters (`--stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatsInfo {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

/// Estimated rates (`--rate`), per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RateInfo {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// One real server in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestInfo {
    pub addr: IpAddr,
    pub port: u16,
    pub forward: FwdMethod,
    pub weight: u32,
    pub upper: u32,
    pub lower: u32,
    pub active: u32,
    pub inactive: u32,
    pub persist: u32,
    #[serde(default)]
    pub stats: StatsInfo,
    #[serde(default)]
    pub rate: RateInfo,
}

/// One service in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub spec: ServiceSpec,
    pub dests: Vec<DestInfo>,
    #[serde(default)]
    pub stats: StatsInfo,
    #[serde(default)]
    pub rate: RateInfo,
}

/// One connection (or template) in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnInfo {
    /// `TCP`, `UDP`, or `IP` for fwmark templates.
    pub proto: String,
    /// Seconds left.
    pub expire_s: u32,
    pub state: String,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Ok,
    Services {
        services: Vec<ServiceInfo>,
        conn_table_size: u32,
    },
    /// A piece of the connection listing; on the socket, as many lines as it takes,
    /// then `ConnectionsEnd`.
    Connections {
        connections: Vec<ConnInfo>,
    },
    /// A piece of the connection listing as `ipvsadm -L -n -c` prints it (what the
    /// socket streams: rvsd formats, rvsadm prints as it receives).
    ConnectionLines {
        lines: String,
    },
    /// The connection listing is complete: `count` connections in all.
    ConnectionsEnd {
        count: u64,
    },
    Timeouts {
        tcp: u32,
        tcpfin: u32,
        udp: u32,
    },
    /// The settings, (name, value).
    Sysctl {
        settings: Vec<(String, u32)>,
    },
    FwmarkRules {
        rules: Vec<FwmarkSpec>,
    },
    /// The VRRP instances as `rvsadm --vrrp` prints them; the sync daemons as
    /// `-L --daemon` does.
    Vrrp {
        listing: String,
    },
    Daemon {
        listing: String,
    },
    /// A reload went through (or, `dry_run`, would): `applied` names each change
    /// as the ipvsadm command that makes it, `reverted` those of them that undo
    /// a change made at run time (rvsadm), `notes` what it could not change.
    Reloaded {
        changes: usize,
        notes: Vec<String>,
        #[serde(default)]
        applied: Vec<String>,
        #[serde(default)]
        reverted: Vec<String>,
        #[serde(default)]
        dry_run: bool,
    },
    Error {
        message: String,
    },
}

impl Request {
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(&Envelope { version: VERSION, body: self.clone() }).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parses a request line, checking the version.
    pub fn from_line(line: &str) -> Result<Request, String> {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("bad request: {e}"))?;
        let version = v.get("version").and_then(serde_json::Value::as_u64).unwrap_or(0);
        if version != u64::from(VERSION) {
            return Err(format!("protocol version {version} not supported (this daemon speaks {VERSION})"));
        }
        let e: Envelope<Request> = serde_json::from_value(v).map_err(|e| format!("bad request: {e}"))?;
        Ok(e.body)
    }
}

impl Response {
    pub fn to_line(&self) -> String {
        let mut s =
            serde_json::to_string(self).unwrap_or_else(|_| "{\"response\":\"error\",\"message\":\"encoding\"}".into());
        s.push('\n');
        s
    }

    pub fn from_line(line: &str) -> Result<Response, String> {
        serde_json::from_str(line).map_err(|e| format!("bad response from rvsd: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::Protocol;

    #[test]
    fn requests_roundtrip_and_versions_are_checked() {
        let r = Request::Apply {
            changes: vec![
                Change::AddService(ServiceSpec {
                    service: ServiceKey::Addr { proto: Protocol::Tcp, addr: Ipv4Addr::new(198, 18, 0, 10), port: 80 },
                    scheduler: "rr".into(),
                    flags: vec![],
                    persistent: Some(300),
                    netmask: None,
                    prefix6: None,
                }),
                Change::DelDest {
                    service: ServiceKey::Fwmark(1),
                    addr: std::net::IpAddr::from(Ipv4Addr::new(198, 18, 1, 11)),
                    port: 0,
                },
            ],
        };
        let line = r.to_line();
        assert!(line.ends_with('\n') && line.contains("\"version\":1"));
        assert_eq!(Request::from_line(&line).unwrap(), r);
        let old = line.replace("\"version\":1", "\"version\":0");
        assert!(Request::from_line(&old).unwrap_err().contains("protocol version 0 not supported"));
        assert!(Request::from_line("nonsense").is_err());
        let resp = Response::Error { message: "x".into() };
        assert_eq!(Response::from_line(&resp.to_line()).unwrap(), resp);
    }
}
