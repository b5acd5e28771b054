//! ipvsadm's listings, byte for byte (ipvsadm 1.29's printf formats): `-L -n`,
//! `-L -n -c`, `--timeout`. Numeric only (RVS does no name look-ups).

use super::protocol::{ConnInfo, Forward, ServiceInfo, ServiceRef};
use std::fmt::Write;

/// The IPVS version ipvsadm prints in its header.
pub const IPVS_VERSION: &str = "1.2.1";

fn forward_name(f: Forward) -> &'static str {
    match f {
        Forward::Masq => "Masq",
        Forward::Route => "Route",
        Forward::Tunnel => "Tunnel",
    }
}

/// ipvsadm's order: fwmark services after address services, then protocol (TCP
/// before UDP), address, port; dests by address, then port.
pub fn sort(services: &mut [ServiceInfo]) {
    let key = |s: &ServiceInfo| match s.spec.service {
        ServiceRef::Tcp { addr, port } => (0u32, 6u8, u32::from(addr), port),
        ServiceRef::Udp { addr, port } => (0, 17, u32::from(addr), port),
        ServiceRef::Fwmark { mark } => (mark, 0, 0, 0),
    };
    services.sort_by_key(key);
    for s in services.iter_mut() {
        s.dests.sort_by_key(|d| (u32::from(d.addr), d.port));
    }
}

/// `ipvsadm -L -n`.
pub fn services(list: &[ServiceInfo], table_size: u32) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "IP Virtual Server version {IPVS_VERSION} (size={table_size})");
    out.push_str(&service_entries(list));
    out
}

/// `ipvsadm -L -n -t VIP:port`: the title and one service, no version line.
pub fn service_entries(list: &[ServiceInfo]) -> String {
    let mut sorted = list.to_vec();
    sort(&mut sorted);
    let mut out = String::new();
    out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
    out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
    for s in &sorted {
        let mut name = match s.spec.service {
            ServiceRef::Tcp { addr, port } => format!("TCP  {addr}:{port}"),
            ServiceRef::Udp { addr, port } => format!("UDP  {addr}:{port}"),
            ServiceRef::Fwmark { mark } => format!("FWM  {mark}"),
        };
        name.truncate(33);
        let _ = write!(out, "{name} {}", s.spec.scheduler);
        if let Some(t) = s.spec.persistent {
            let _ = write!(out, " persistent {t}");
            if let Some(m) = s.spec.netmask.filter(|m| *m != std::net::Ipv4Addr::BROADCAST) {
                let _ = write!(out, " mask {m}");
            }
        }
        out.push('\n');
        for d in &s.dests {
            let mut dname = format!("{}:{}", d.addr, d.port);
            dname.truncate(28);
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                dname,
                forward_name(d.forward),
                d.weight,
                d.active,
                d.inactive
            );
        }
    }
    out
}

/// `ipvsadm -S -n`: the configuration as command lines `-R` reads back.
pub fn save(list: &[ServiceInfo]) -> String {
    let mut sorted = list.to_vec();
    sort(&mut sorted);
    let mut out = String::new();
    for s in &sorted {
        let name = match s.spec.service {
            ServiceRef::Tcp { addr, port } => format!("-t {addr}:{port}"),
            ServiceRef::Udp { addr, port } => format!("-u {addr}:{port}"),
            ServiceRef::Fwmark { mark } => format!("-f {mark}"),
        };
        let _ = write!(out, "-A {name} -s {}", s.spec.scheduler);
        if !s.spec.flags.is_empty() {
            let _ = write!(out, " -b {}", s.spec.flags.join(","));
        }
        if let Some(t) = s.spec.persistent {
            let _ = write!(out, " -p {t}");
            if let Some(m) = s.spec.netmask.filter(|m| *m != std::net::Ipv4Addr::BROADCAST) {
                let _ = write!(out, " -M {m}");
            }
        }
        out.push('\n');
        for d in &s.dests {
            let sw = match d.forward {
                Forward::Masq => "-m",
                Forward::Tunnel => "-i",
                Forward::Route => "-g",
            };
            let _ = writeln!(out, "-a {name} -r {}:{} {sw} -w {}", d.addr, d.port, d.weight);
        }
    }
    out
}

/// `ipvsadm -L -n -c`.
pub fn connections(list: &[ConnInfo]) -> String {
    let mut out = String::from("IPVS connection entries\n");
    out.push_str("pro expire state       source             virtual            destination\n");
    for c in list {
        let expire = format!("{:02}:{:02}", c.expire_s / 60, c.expire_s % 60);
        let (src, vip) = (format!("{}:{}", c.caddr, c.cport), format!("{}:{}", c.vaddr, c.vport));
        let _ =
            writeln!(out, "{:<3} {:<6} {:<11} {src:<18} {vip:<18} {}:{}", c.proto, expire, c.state, c.daddr, c.dport);
    }
    out
}

/// `ipvsadm -L --timeout`.
pub fn timeouts(tcp: u32, tcpfin: u32, udp: u32) -> String {
    format!("Timeout (tcp tcpfin udp): {tcp} {tcpfin} {udp}\n")
}

#[cfg(test)]
mod tests {
    use super::super::protocol::{DestInfo, ServiceSpec};
    use super::*;
    use std::net::Ipv4Addr;

    fn d(last: u8, port: u16, f: Forward, w: u32, a: u32, i: u32) -> DestInfo {
        DestInfo {
            addr: Ipv4Addr::new(198, 18, 1, last),
            port,
            forward: f,
            weight: w,
            upper: 0,
            lower: 0,
            active: a,
            inactive: i,
            persist: 0,
        }
    }

    #[test]
    fn the_one_nic_nat_tutorial_listing() {
        let s = ServiceInfo {
            spec: ServiceSpec {
                service: ServiceRef::Tcp { addr: Ipv4Addr::new(198, 18, 0, 10), port: 80 },
                scheduler: "rr".into(),
                flags: vec![],
                persistent: None,
                netmask: None,
            },
            dests: vec![d(12, 80, Forward::Masq, 1, 0, 3), d(11, 80, Forward::Masq, 1, 0, 3)],
        };
        let want = concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  198.18.0.10:80 rr\n",
            "  -> 198.18.1.11:80               Masq    1      0          3         \n",
            "  -> 198.18.1.12:80               Masq    1      0          3         \n",
        );
        assert_eq!(services(&[s], 4096), want);
    }

    #[test]
    fn fwmark_persistent_with_mask_sorted_after_addresses() {
        let fwm = ServiceInfo {
            spec: ServiceSpec {
                service: ServiceRef::Fwmark { mark: 1 },
                scheduler: "rr".into(),
                flags: vec![],
                persistent: Some(1800),
                netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            },
            dests: vec![d(11, 0, Forward::Route, 1, 0, 0)],
        };
        let udp = ServiceInfo {
            spec: ServiceSpec {
                service: ServiceRef::Udp { addr: Ipv4Addr::new(198, 18, 0, 10), port: 53 },
                scheduler: "wlc".into(),
                flags: vec![],
                persistent: None,
                netmask: None,
            },
            dests: vec![],
        };
        let out = services(&[fwm, udp], 4096);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[3], "UDP  198.18.0.10:53 wlc");
        assert_eq!(lines[4], "FWM  1 rr persistent 1800 mask 255.255.255.0");
        assert_eq!(lines[5], "  -> 198.18.1.11:0                Route   1      0          0         ");
    }

    #[test]
    fn connection_listing_and_timeouts() {
        let c = ConnInfo {
            proto: "TCP".into(),
            expire_s: 19,
            state: "FIN_WAIT".into(),
            caddr: Ipv4Addr::new(198, 18, 0, 100),
            cport: 1309,
            vaddr: Ipv4Addr::new(198, 18, 0, 10),
            vport: 21,
            daddr: Ipv4Addr::new(198, 18, 1, 12),
            dport: 21,
        };
        assert_eq!(
            connections(&[c]),
            concat!(
                "IPVS connection entries\n",
                "pro expire state       source             virtual            destination\n",
                "TCP 00:19  FIN_WAIT    198.18.0.100:1309  198.18.0.10:21     198.18.1.12:21\n",
            )
        );
        assert_eq!(timeouts(900, 120, 300), "Timeout (tcp tcpfin udp): 900 120 300\n");
    }
}
