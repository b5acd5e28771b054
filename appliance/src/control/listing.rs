//! ipvsadm's listings, byte for byte (ipvsadm 1.29's printf formats): `-L -n`,
//! `-L -n -c`, `--timeout`. Numeric only (RVS does no name look-ups).

use super::protocol::{ConnInfo, ServiceInfo, ServiceKey};
#[cfg(test)]
use super::protocol::{RateInfo, StatsInfo};
use crate::ipvs::dest::FwdMethod;
use crate::ipvs::Protocol;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

/// The IPVS version ipvsadm prints in its header.
pub const IPVS_VERSION: &str = "1.2.1";

fn forward_name(f: FwdMethod) -> &'static str {
    match f {
        FwdMethod::Masq => "Masq",
        FwdMethod::Route => "Route",
        FwdMethod::Tunnel => "Tunnel",
        FwdMethod::Local => "Local",
    }
}

/// An address as ipvsadm orders them (IPv4 and IPv6 never meet in one list).
fn addr_order(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// `addr:port`, an IPv6 address in brackets (ipvsadm's `addrport_to_anyname`).
pub fn addr_port(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// ipvsadm's order (libipvs' `ipvs_cmp_services`): fwmark services after address
/// services, then IPv4 before IPv6, protocol (TCP before UDP), address, port;
/// dests by address, then port.
pub fn sort(services: &mut [ServiceInfo]) {
    let key = |s: &ServiceInfo| {
        let k = s.spec.service;
        let proto = match k {
            ServiceKey::Addr { proto, .. } | ServiceKey::Addr6 { proto, .. } => proto.number(),
            ServiceKey::Fwmark(_) | ServiceKey::Fwmark6(_) => 0,
        };
        let mark = k.fwmark().unwrap_or(0);
        (mark, k.is_ipv6(), proto, k.ip().map_or(0, addr_order), k.port())
    };
    services.sort_by_key(key);
    for s in services.iter_mut() {
        s.dests.sort_by_key(|d| (addr_order(d.addr), d.port));
    }
}

/// A service as ipvsadm names it in a listing (`TCP  VIP:port`, `FWM  mark`,
/// `FWM  mark IPv6`), or with `rule` in a saved command line (`-t VIP:port`,
/// `-f mark`, `-f mark -6`).
fn service_name(k: ServiceKey, rule: bool) -> String {
    match (k, rule) {
        (ServiceKey::Fwmark(mark), false) => format!("FWM  {mark}"),
        (ServiceKey::Fwmark(mark), true) => format!("-f {mark}"),
        (ServiceKey::Fwmark6(mark), false) => format!("FWM  {mark} IPv6"),
        (ServiceKey::Fwmark6(mark), true) => format!("-f {mark} -6"),
        (k, _) => {
            let tcp = matches!(
                k,
                ServiceKey::Addr { proto: Protocol::Tcp, .. } | ServiceKey::Addr6 { proto: Protocol::Tcp, .. }
            );
            let proto = match (tcp, rule) {
                (true, false) => "TCP ",
                (false, false) => "UDP ",
                (true, true) => "-t",
                (false, true) => "-u",
            };
            format!("{proto} {}", addr_port(k.ip().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), k.port()))
        }
    }
}

/// Which columns `-L` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Forward Weight ActiveConn InActConn.
    #[default]
    Default,
    /// `--stats`: Conns InPkts OutPkts InBytes OutBytes.
    Stats,
    /// `--rate`: CPS InPPS OutPPS InBPS OutBPS.
    Rate,
    /// `--thresholds`: Uthreshold Lthreshold ActiveConn InActConn.
    Thresholds,
    /// `--persistent-conn`: Weight PersistConn ActiveConn InActConn.
    PersistentConn,
}

/// ipvsadm's `print_largenum`: 9 columns, K/M/G/T above 100 million unless `exact`.
pub fn largenum(i: u64, exact: bool) -> String {
    if exact {
        let len = i.to_string().len();
        let w = if len <= 8 { 9 } else { len + 1 };
        return format!("{i:>w$}");
    }
    if i < 100_000_000 {
        format!("{i:>9}")
    } else if i < 1_000_000_000 {
        format!("{:>8}K", i / 1000)
    } else if i < 100_000_000_000 {
        format!("{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        format!("{:>8}G", i / 1_000_000_000)
    } else {
        format!("{:>8}T", i / 1_000_000_000_000)
    }
}

/// How a listing is laid out: ipvsadm's format, `--exact`, `--nosort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    pub format: Format,
    /// `--exact`: no K/M/G rounding.
    pub exact: bool,
    /// `--nosort`: services in the order they were added, each one's real servers in
    /// the kernel's list order (the newest first), as the scheduler walks them.
    pub nosort: bool,
}

impl Style {
    pub fn of(format: Format, exact: bool) -> Style {
        Style { format, exact, nosort: false }
    }
}

/// `ipvsadm -L -n`.
pub fn services(list: &[ServiceInfo], table_size: u32) -> String {
    services_as(list, table_size, Style::default())
}

/// `ipvsadm -L -n` with `--stats`, `--rate`, `--thresholds`, `--persistent-conn`,
/// `--exact` or `--nosort`.
pub fn services_as(list: &[ServiceInfo], table_size: u32, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "IP Virtual Server version {IPVS_VERSION} (size={table_size})");
    out.push_str(&service_entries_as(list, style));
    out
}

/// `ipvsadm -L -n -t VIP:port`: the title and one service, no version line.
pub fn service_entries(list: &[ServiceInfo]) -> String {
    service_entries_as(list, Style::default())
}

/// `list` in ipvsadm's order, or as given with `--nosort`.
fn ordered(list: &[ServiceInfo], nosort: bool) -> Vec<ServiceInfo> {
    let mut v = list.to_vec();
    if !nosort {
        sort(&mut v);
    }
    v
}

fn title(format: Format) -> String {
    let two = |a: &str, b: &str, c: &str, d: &str, e: &str| {
        format!("{:<33} {a:>8} {b:>8} {c:>8} {d:>8} {e:>8}\n  -> RemoteAddress:Port\n", "Prot LocalAddress:Port")
    };
    match format {
        Format::Stats => two("Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"),
        Format::Rate => two("CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"),
        Format::Thresholds => format!(
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        ),
        Format::PersistentConn => format!(
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        ),
        Format::Default => {
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".into()
        }
    }
}

/// The title and the services, in one of ipvsadm's formats.
pub fn service_entries_as(list: &[ServiceInfo], style: Style) -> String {
    let Style { format, exact, nosort } = style;
    let sorted = ordered(list, nosort);
    let mut out = title(format);
    for s in &sorted {
        let mut name = service_name(s.spec.service, false);
        // ipvsadm cuts IPv4 names to their column; IPv6 ones run on.
        if !s.spec.service.is_ipv6() {
            name.truncate(33);
        }
        match format {
            Format::Stats => {
                let st = &s.stats;
                let _ = write!(out, "{name:<33}");
                for v in [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes] {
                    out.push_str(&largenum(v, exact));
                }
            }
            Format::Rate => {
                let r = &s.rate;
                let _ = write!(out, "{name:<33}");
                for v in [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] {
                    out.push_str(&largenum(v, exact));
                }
            }
            _ => {
                let _ = write!(out, "{name} {}", s.spec.scheduler);
                if !s.spec.flags.is_empty() {
                    let _ = write!(out, " ({})", s.spec.flags.join(","));
                }
                if let Some(t) = s.spec.persistent {
                    let _ = write!(out, " persistent {t}");
                    if let Some(m) = s.spec.netmask.filter(|m| *m != Ipv4Addr::BROADCAST) {
                        let _ = write!(out, " mask {m}");
                    }
                    if let Some(l) = s.spec.prefix6.filter(|l| *l != 128) {
                        let _ = write!(out, " mask {l}");
                    }
                }
            }
        }
        out.push('\n');
        for d in &s.dests {
            let mut dname = addr_port(d.addr, d.port);
            if d.addr.is_ipv4() {
                dname.truncate(28);
            }
            match format {
                Format::Stats => {
                    let st = &d.stats;
                    let _ = write!(out, "  -> {dname:<28}");
                    for v in [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes] {
                        out.push_str(&largenum(v, exact));
                    }
                    out.push('\n');
                }
                Format::Rate => {
                    let r = &d.rate;
                    let _ = write!(out, "  -> {dname:<28} {:>8} {:>8} {:>8}", r.cps, r.inpps, r.outpps);
                    out.push_str(&largenum(r.inbps, exact));
                    out.push_str(&largenum(r.outbps, exact));
                    out.push('\n');
                }
                Format::Thresholds => {
                    let _ = writeln!(
                        out,
                        "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                        d.upper, d.lower, d.active, d.inactive
                    );
                }
                Format::PersistentConn => {
                    let _ = writeln!(
                        out,
                        "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                        d.weight, d.persist, d.active, d.inactive
                    );
                }
                Format::Default => {
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
        }
    }
    out
}

/// A change as the ipvsadm command that makes it (`-a -t VIP:80 -r RS:80 -m -w 1`,
/// `--set 900 120 300`, ...), for reports of what a reload changes.
pub fn change_line(c: &crate::control::protocol::Change) -> String {
    use crate::control::protocol::Change;
    let dest = |cmd: &str, d: &crate::control::protocol::DestSpec| {
        let sw = match d.forward {
            FwdMethod::Masq => "-m",
            FwdMethod::Tunnel => "-i",
            FwdMethod::Route | FwdMethod::Local => "-g",
        };
        let mut l =
            format!("{cmd} {} -r {} {sw} -w {}", service_name(d.service, true), addr_port(d.addr, d.port), d.weight);
        if d.upper != 0 || d.lower != 0 {
            let _ = write!(l, " -x {} -y {}", d.upper, d.lower);
        }
        l
    };
    let service = |cmd: &str, s: &crate::control::protocol::ServiceSpec| {
        let mut l = format!("{cmd} {} -s {}", service_name(s.service, true), s.scheduler);
        if let Some(t) = s.persistent {
            let _ = write!(l, " -p {t}");
            if let Some(m) = s.netmask.filter(|m| *m != Ipv4Addr::BROADCAST) {
                let _ = write!(l, " -M {m}");
            }
            if let Some(p) = s.prefix6.filter(|p| *p != 128) {
                let _ = write!(l, " -M {p}");
            }
        }
        if !s.flags.is_empty() {
            let _ = write!(l, " -b {}", s.flags.join(","));
        }
        l
    };
    match c {
        Change::AddService(s) => service("-A", s),
        Change::EditService(s) => service("-E", s),
        Change::DelService { service } => format!("-D {}", service_name(*service, true)),
        Change::Clear => "-C".into(),
        Change::AddDest(d) => dest("-a", d),
        Change::EditDest(d) => dest("-e", d),
        Change::DelDest { service, addr, port } => {
            format!("-d {} -r {}", service_name(*service, true), addr_port(*addr, *port))
        }
        Change::SetTimeouts { tcp, tcpfin, udp } => format!("--set {tcp} {tcpfin} {udp}"),
        Change::SetFwmarkRules { rules } => format!("firewall-mark rules: {} rule(s)", rules.len()),
        Change::SetSysctl { name, value } => format!("--sysctl {name}={value}"),
    }
}

/// `rvsadm --drained`: each quiesced real server (weight 0) of `list` (of `service`
/// only, and only `real` when given: a port of 0 is the service's) with what
/// still holds it, `drained` when nothing does (no active or inactive connection,
/// no persistence template). The second value: every one shown is drained.
pub fn drained(
    list: &[ServiceInfo],
    service: Option<ServiceKey>,
    real: Option<(IpAddr, u16)>,
) -> Result<(String, bool), String> {
    let mut out = String::new();
    let mut all = true;
    let mut found = false;
    for s in ordered(list, false).iter().filter(|s| service.is_none_or(|k| k == s.spec.service)) {
        found = true;
        let port_of = |p: u16| if p == 0 { s.spec.service.port() } else { p };
        for d in &s.dests {
            let wanted = real.is_none_or(|(a, p)| a == d.addr && port_of(p) == d.port);
            if !wanted || (real.is_none() && d.weight != 0) {
                continue;
            }
            let held = d.active + d.inactive + d.persist;
            let _ = write!(
                out,
                "{} -> {} weight {}",
                service_name(s.spec.service, false),
                addr_port(d.addr, d.port),
                d.weight
            );
            if held == 0 {
                out.push_str(" drained\n");
            } else {
                all = false;
                let _ =
                    writeln!(out, " draining: {} active, {} inactive, {} persistent", d.active, d.inactive, d.persist);
            }
        }
    }
    if !found && service.is_some() {
        return Err("No such service".into());
    }
    if real.is_some() && out.is_empty() {
        return Err("No such destination".into());
    }
    Ok((out, all))
}

/// `ipvsadm -S -n [--nosort]`: the configuration as command lines `-R` reads back.
pub fn save(list: &[ServiceInfo], nosort: bool) -> String {
    let sorted = ordered(list, nosort);
    let mut out = String::new();
    for s in &sorted {
        let name = service_name(s.spec.service, true);
        let _ = write!(out, "-A {name} -s {}", s.spec.scheduler);
        if let Some(t) = s.spec.persistent {
            let _ = write!(out, " -p {t}");
            if let Some(m) = s.spec.netmask.filter(|m| *m != Ipv4Addr::BROADCAST) {
                let _ = write!(out, " -M {m}");
            }
            if let Some(l) = s.spec.prefix6.filter(|l| *l != 128) {
                let _ = write!(out, " -M {l}");
            }
        }
        // ipvsadm writes the scheduler flags last.
        if !s.spec.flags.is_empty() {
            let _ = write!(out, " -b {}", s.spec.flags.join(","));
        }
        out.push('\n');
        for d in &s.dests {
            let sw = match d.forward {
                FwdMethod::Masq => "-m",
                FwdMethod::Tunnel => "-i",
                FwdMethod::Route | FwdMethod::Local => "-g",
            };
            let _ = writeln!(out, "-a {name} -r {} {sw} -w {}", addr_port(d.addr, d.port), d.weight);
        }
    }
    out
}

/// `ipvsadm -L -n -c`.
pub fn connections(list: &[ConnInfo]) -> String {
    connections_header() + &connection_lines(list)
}

/// The head of `ipvsadm -L -n -c`.
pub fn connections_header() -> String {
    "IPVS connection entries\npro expire state       source             virtual            destination\n".to_string()
}

/// The lines of `ipvsadm -L -n -c` for `list`.
pub fn connection_lines(list: &[ConnInfo]) -> String {
    let mut out = String::with_capacity(list.len() * 80);
    let mut w = ConnLineWriter::default();
    for c in list {
        let ends = ((c.caddr, c.cport), (c.vaddr, c.vport), (c.daddr, c.dport));
        w.line(&mut out, &c.proto, c.expire_s, &c.state, ends);
    }
    out
}

/// Client, virtual and real-server endpoints of a connection.
pub type ConnEnds = ((IpAddr, u16), (IpAddr, u16), (IpAddr, u16));

/// Writes `ipvsadm -L -n -c` lines, reusing its scratch space (a listing of a
/// million connections allocates per piece, not per line).
#[derive(Default)]
pub struct ConnLineWriter {
    expire: String,
    src: String,
    vip: String,
}

impl ConnLineWriter {
    /// Appends one line to `out`.
    pub fn line(&mut self, out: &mut String, proto: &str, expire_s: u32, state: &str, ends: ConnEnds) {
        let ((caddr, cport), (vaddr, vport), (daddr, dport)) = ends;
        self.expire.clear();
        self.src.clear();
        self.vip.clear();
        let _ = write!(self.expire, "{:02}:{:02}", expire_s / 60, expire_s % 60);
        let _ = write_addr_port(&mut self.src, caddr, cport);
        let _ = write_addr_port(&mut self.vip, vaddr, vport);
        let (expire, src, vip) = (&self.expire, &self.src, &self.vip);
        let _ = write!(out, "{proto:<3} {expire:<6} {state:<11} {src:<18} {vip:<18} ");
        let _ = write_addr_port(out, daddr, dport);
        out.push('\n');
    }
}

/// Writes `addr_port` without a String of its own.
fn write_addr_port(out: &mut String, a: IpAddr, port: u16) -> std::fmt::Result {
    match a {
        IpAddr::V4(a) => write!(out, "{a}:{port}"),
        IpAddr::V6(a) => write!(out, "[{a}]:{port}"),
    }
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

    fn d(last: u8, port: u16, f: FwdMethod, w: u32, a: u32, i: u32) -> DestInfo {
        DestInfo {
            addr: std::net::IpAddr::from(Ipv4Addr::new(198, 18, 1, last)),
            port,
            forward: f,
            weight: w,
            upper: 0,
            lower: 0,
            active: a,
            inactive: i,
            persist: 0,
            stats: Default::default(),
            rate: Default::default(),
        }
    }

    #[test]
    fn the_one_nic_nat_tutorial_listing() {
        let s = ServiceInfo {
            spec: ServiceSpec {
                service: ServiceKey::Addr { proto: Protocol::Tcp, addr: Ipv4Addr::new(198, 18, 0, 10), port: 80 },
                scheduler: "rr".into(),
                flags: vec![],
                persistent: None,
                netmask: None,
                prefix6: None,
            },
            dests: vec![d(12, 80, FwdMethod::Masq, 1, 0, 3), d(11, 80, FwdMethod::Masq, 1, 0, 3)],
            stats: Default::default(),
            rate: Default::default(),
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

    /// ipvsadm's `print_service_entry`: flags in parentheses after the scheduler in a
    /// listing, `-b` after the persistence in a saved line.
    #[test]
    fn scheduler_flags_listed_and_saved_where_ipvsadm_puts_them() {
        let s = ServiceInfo {
            spec: ServiceSpec {
                service: ServiceKey::Addr { proto: Protocol::Tcp, addr: Ipv4Addr::new(198, 18, 0, 10), port: 80 },
                scheduler: "sh".into(),
                flags: vec!["sh-fallback".into(), "sh-port".into()],
                persistent: Some(30),
                netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
                prefix6: None,
            },
            dests: vec![d(11, 80, FwdMethod::Route, 1, 0, 0)],
            stats: Default::default(),
            rate: Default::default(),
        };
        let listed = services(std::slice::from_ref(&s), 4096);
        assert!(
            listed.contains("\nTCP  198.18.0.10:80 sh (sh-fallback,sh-port) persistent 30 mask 255.255.255.0\n"),
            "{listed}"
        );
        let thresholds = service_entries_as(std::slice::from_ref(&s), Style::of(Format::Thresholds, false));
        assert!(thresholds.contains("\nTCP  198.18.0.10:80 sh (sh-fallback,sh-port) persistent 30"), "{thresholds}");
        assert_eq!(
            save(&[s], false).lines().next(),
            Some("-A -t 198.18.0.10:80 -s sh -p 30 -M 255.255.255.0 -b sh-fallback,sh-port")
        );
    }

    #[test]
    fn ipv6_services_list_save_and_sort_as_ipvsadm_prints_them() {
        let a6 = |s: &str| IpAddr::V6(s.parse().unwrap());
        let d6 = |a: &str, f, act, inact| DestInfo { addr: a6(a), ..d(0, 80, f, 1, act, inact) };
        let v6 = ServiceInfo {
            spec: ServiceSpec {
                service: ServiceKey::Addr6 { proto: Protocol::Tcp, addr: "2001:2::10".parse().unwrap(), port: 80 },
                scheduler: "rr".into(),
                flags: vec![],
                persistent: Some(300),
                netmask: None,
                prefix6: Some(64),
            },
            dests: vec![d6("2001:2:0:1::12", FwdMethod::Masq, 0, 3), d6("2001:2:0:1::11", FwdMethod::Masq, 1, 2)],
            stats: Default::default(),
            rate: Default::default(),
        };
        let v4 = ServiceInfo {
            spec: ServiceSpec {
                service: ServiceKey::Addr { proto: Protocol::Udp, addr: Ipv4Addr::new(198, 18, 0, 10), port: 53 },
                scheduler: "wrr".into(),
                flags: vec![],
                persistent: None,
                netmask: None,
                prefix6: None,
            },
            dests: vec![d(11, 53, FwdMethod::Masq, 1, 0, 0)],
            stats: Default::default(),
            rate: Default::default(),
        };
        // IPv4 before IPv6 (libipvs compares the family before the protocol); an
        // IPv6 name is bracketed and not cut to its column; the prefix is the mask.
        let want = concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "UDP  198.18.0.10:53 wrr\n",
            "  -> 198.18.1.11:53               Masq    1      0          0         \n",
            "TCP  [2001:2::10]:80 rr persistent 300 mask 64\n",
            "  -> [2001:2:0:1::11]:80          Masq    1      1          2         \n",
            "  -> [2001:2:0:1::12]:80          Masq    1      0          3         \n",
        );
        assert_eq!(services(&[v6.clone(), v4.clone()], 4096), want);
        let saved = concat!(
            "-A -u 198.18.0.10:53 -s wrr\n",
            "-a -u 198.18.0.10:53 -r 198.18.1.11:53 -m -w 1\n",
            "-A -t [2001:2::10]:80 -s rr -p 300 -M 64\n",
            "-a -t [2001:2::10]:80 -r [2001:2:0:1::11]:80 -m -w 1\n",
            "-a -t [2001:2::10]:80 -r [2001:2:0:1::12]:80 -m -w 1\n",
        );
        assert_eq!(save(&[v6.clone(), v4], false), saved);
        // A long IPv6 real server runs past its column, as in ipvsadm.
        let mut wide = v6.clone();
        wide.dests = vec![DestInfo { port: 65535, ..d6("2001:2:ffff:ffff:ffff:ffff:ffff:1", FwdMethod::Route, 0, 0) }];
        let listed = services(&[wide], 4096);
        assert!(listed.contains("  -> [2001:2:ffff:ffff:ffff:ffff:ffff:1]:65535 Route   1      0"), "{listed}");
        let c = ConnInfo {
            proto: "TCP".into(),
            expire_s: 119,
            state: "TIME_WAIT".into(),
            caddr: a6("2001:2::100"),
            cport: 40000,
            vaddr: a6("2001:2::10"),
            vport: 80,
            daddr: a6("2001:2:0:1::11"),
            dport: 80,
        };
        assert_eq!(
            connection_lines(&[c]),
            "TCP 01:59  TIME_WAIT   [2001:2::100]:40000 [2001:2::10]:80    [2001:2:0:1::11]:80\n"
        );
    }

    #[test]
    fn ipv6_fwmark_services_follow_their_ipv4_namesakes() {
        let fwm = |service, prefix6, rs: IpAddr| ServiceInfo {
            spec: ServiceSpec {
                service,
                scheduler: "rr".into(),
                flags: vec![],
                persistent: Some(1800),
                netmask: None,
                prefix6,
            },
            dests: vec![DestInfo { addr: rs, ..d(0, 0, FwdMethod::Route, 1, 0, 0) }],
            stats: Default::default(),
            rate: Default::default(),
        };
        let v6 = fwm(ServiceKey::Fwmark6(1), Some(64), IpAddr::V6("2001:2:0:1::11".parse().unwrap()));
        let v4 = fwm(ServiceKey::Fwmark(1), None, IpAddr::V4(Ipv4Addr::new(198, 18, 1, 11)));
        let want = concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "FWM  1 rr persistent 1800\n",
            "  -> 198.18.1.11:0                Route   1      0          0         \n",
            "FWM  1 IPv6 rr persistent 1800 mask 64\n",
            "  -> [2001:2:0:1::11]:0           Route   1      0          0         \n",
        );
        assert_eq!(services(&[v6.clone(), v4.clone()], 4096), want);
        let saved = concat!(
            "-A -f 1 -s rr -p 1800\n",
            "-a -f 1 -r 198.18.1.11:0 -g -w 1\n",
            "-A -f 1 -6 -s rr -p 1800 -M 64\n",
            "-a -f 1 -6 -r [2001:2:0:1::11]:0 -g -w 1\n",
        );
        assert_eq!(save(&[v6, v4], false), saved);
    }

    #[test]
    fn fwmark_persistent_with_mask_sorted_after_addresses() {
        let fwm = ServiceInfo {
            spec: ServiceSpec {
                service: ServiceKey::Fwmark(1),
                scheduler: "rr".into(),
                flags: vec![],
                persistent: Some(1800),
                netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
                prefix6: None,
            },
            dests: vec![d(11, 0, FwdMethod::Route, 1, 0, 0)],
            stats: Default::default(),
            rate: Default::default(),
        };
        let udp = ServiceInfo {
            spec: ServiceSpec {
                service: ServiceKey::Addr { proto: Protocol::Udp, addr: Ipv4Addr::new(198, 18, 0, 10), port: 53 },
                scheduler: "wlc".into(),
                flags: vec![],
                persistent: None,
                netmask: None,
                prefix6: None,
            },
            dests: vec![],
            stats: Default::default(),
            rate: Default::default(),
        };
        let out = services(&[fwm, udp], 4096);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[3], "UDP  198.18.0.10:53 wlc");
        assert_eq!(lines[4], "FWM  1 rr persistent 1800 mask 255.255.255.0");
        assert_eq!(lines[5], "  -> 198.18.1.11:0                Route   1      0          0         ");
    }

    fn one_service() -> ServiceInfo {
        let mut d1 = d(11, 80, FwdMethod::Masq, 3, 2, 17);
        d1.stats =
            StatsInfo { conns: 19, inpkts: 342, outpkts: 291, inbytes: 123_456_789, outbytes: 1_234_567_890_123 };
        d1.rate = RateInfo { cps: 1, inpps: 12, outpps: 10, inbps: 1840, outbps: 250_000_000 };
        d1.upper = 100;
        d1.lower = 50;
        d1.persist = 4;
        ServiceInfo {
            spec: ServiceSpec {
                service: ServiceKey::Addr { proto: Protocol::Tcp, addr: Ipv4Addr::new(198, 18, 0, 10), port: 80 },
                scheduler: "wlc".into(),
                flags: vec![],
                persistent: None,
                netmask: None,
                prefix6: None,
            },
            stats: StatsInfo {
                conns: 19,
                inpkts: 342,
                outpkts: 291,
                inbytes: 123_456_789,
                outbytes: 1_234_567_890_123,
            },
            rate: RateInfo { cps: 1, inpps: 12, outpps: 10, inbps: 1840, outbps: 250_000_000 },
            dests: vec![d1],
        }
    }

    #[test]
    fn stats_rate_thresholds_and_persistent_conn_formats() {
        let s = vec![one_service()];
        assert_eq!(
            service_entries_as(&s, Style::of(Format::Stats, false)),
            concat!(
                "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
                "  -> RemoteAddress:Port\n",
                "TCP  198.18.0.10:80                     19      342      291  123456K    1234G\n",
                "  -> 198.18.1.11:80                     19      342      291  123456K    1234G\n",
            )
        );
        assert_eq!(
            service_entries_as(&s, Style::of(Format::Stats, true)).lines().nth(2).unwrap(),
            "TCP  198.18.0.10:80                     19      342      291 123456789 1234567890123"
        );
        assert_eq!(
            service_entries_as(&s, Style::of(Format::Rate, false)),
            concat!(
                "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n",
                "  -> RemoteAddress:Port\n",
                "TCP  198.18.0.10:80                      1       12       10     1840  250000K\n",
                "  -> 198.18.1.11:80                      1       12       10     1840  250000K\n",
            )
        );
        assert_eq!(
            service_entries_as(&s, Style::of(Format::Thresholds, false)),
            concat!(
                "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n",
                "  -> RemoteAddress:Port\n",
                "TCP  198.18.0.10:80 wlc\n",
                "  -> 198.18.1.11:80               100        50         2          17        \n",
            )
        );
        assert_eq!(
            service_entries_as(&s, Style::of(Format::PersistentConn, false)),
            concat!(
                "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n",
                "  -> RemoteAddress:Port\n",
                "TCP  198.18.0.10:80 wlc\n",
                "  -> 198.18.1.11:80               3         4           2          17        \n",
            )
        );
    }

    #[test]
    fn largenum_like_ipvsadm() {
        assert_eq!(largenum(0, false), "        0");
        assert_eq!(largenum(99_999_999, false), " 99999999");
        assert_eq!(largenum(100_000_000, false), "  100000K");
        assert_eq!(largenum(1_000_000_000, false), "    1000M");
        assert_eq!(largenum(100_000_000_000, false), "     100G");
        assert_eq!(largenum(100_000_000_000_000, false), "     100T");
        assert_eq!(largenum(12, true), "       12");
        assert_eq!(largenum(123_456_789_012, true), " 123456789012");
    }

    #[test]
    fn connection_listing_and_timeouts() {
        let c = ConnInfo {
            proto: "TCP".into(),
            expire_s: 19,
            state: "FIN_WAIT".into(),
            caddr: std::net::IpAddr::from(Ipv4Addr::new(198, 18, 0, 100)),
            cport: 1309,
            vaddr: std::net::IpAddr::from(Ipv4Addr::new(198, 18, 0, 10)),
            vport: 21,
            daddr: std::net::IpAddr::from(Ipv4Addr::new(198, 18, 1, 12)),
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
