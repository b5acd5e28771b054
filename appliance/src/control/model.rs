//! The configuration as the control plane holds it: services and dests as specs,
//! the timeouts and the firewall-mark rules. Changes are validated here first,
//! all-or-none, with ipvsadm's error messages; only then do workers apply them to
//! their own tables (`apply_to_director`). A change the model accepted fails there
//! only if a worker's tables disagree with the model (a bug, reported with the
//! worker's error, the generation still acknowledged).

use super::protocol::{Change, DestSpec, FwmarkSpec, ServiceKey, ServiceSpec};
use crate::ipvs::conn::Timeouts;
use crate::ipvs::dest::{Dest, FwdMethod, MAX_WEIGHT};
use crate::ipvs::fwmark::{Classifier, Rule};
use crate::ipvs::sched::SchedFlags;
use crate::ipvs::service::{Persistence, Service, ServiceTable};
use crate::ipvs::Protocol;
use crate::net::ethernet::EthernetAddress;
use crate::net::ipv4::Ipv4Cidr;
use crate::net::ipv6::Ipv6Cidr;
use std::net::Ipv4Addr;

/// Scheduler flags back to names, as ipvsadm shows them for that scheduler.
pub fn flag_names(sched: &str, f: SchedFlags) -> Vec<String> {
    let mut v = Vec::new();
    let (n1, n2) = match sched {
        "sh" => ("sh-fallback", "sh-port"),
        "mh" => ("mh-fallback", "mh-port"),
        _ => ("flag-1", "flag-2"),
    };
    if f.flag1 {
        v.push(n1.to_string());
    }
    if f.flag2 {
        v.push(n2.to_string());
    }
    if f.flag3 {
        v.push("flag-3".to_string());
    }
    v
}

/// A spec's persistence: `-p` with an IPv4 service's netmask or an IPv6 service's
/// prefix length (`-M`), each only where it applies.
fn persistence_of(s: &ServiceSpec) -> Result<Option<Persistence>, String> {
    let v6 = s.service.is_ipv6();
    if v6 && s.netmask.is_some_and(|m| m != Ipv4Addr::BROADCAST) {
        return Err("an IPv6 service's netmask (-M) is a prefix length".into());
    }
    if !v6 && s.prefix6.is_some_and(|l| l != 128) {
        return Err("an IPv4 service's netmask (-M) is a dotted mask".into());
    }
    match s.persistent {
        Some(t) if v6 => Persistence::new6(t, s.prefix6.unwrap_or(128)).map(Some).map_err(|e| e.to_string()),
        Some(t) => Persistence::new(t, s.netmask.unwrap_or(Ipv4Addr::BROADCAST)).map(Some).map_err(|e| e.to_string()),
        None if s.netmask.is_some_and(|m| m != Ipv4Addr::BROADCAST) || s.prefix6.is_some_and(|l| l != 128) => {
            Err("netmask (-M) only applies to a persistent service (-p)".into())
        }
        None => Ok(None),
    }
}

/// Builds the service a spec describes (validating scheduler, flags, persistence
/// and the port-0 rule).
pub fn service_from_spec(s: &ServiceSpec) -> Result<Service, String> {
    let flags = SchedFlags::parse(&s.scheduler, &s.flags.join(","))?;
    let persistence = persistence_of(s)?;
    if let ServiceKey::Addr { port: 0, .. } | ServiceKey::Addr6 { port: 0, .. } = s.service {
        if persistence.is_none() {
            return Err("Zero port specified for non-persistent service".into());
        }
    }
    // An unknown scheduler is the kernel's ENOENT, which ipvsadm words this way.
    if !crate::ipvs::sched::NAMES.contains(&s.scheduler.as_str()) {
        return Err("Scheduler or persistence engine not found".into());
    }
    Service::new(s.service, &s.scheduler, flags, persistence).map_err(|e| e.to_string())
}

pub fn dest_from_spec(d: &DestSpec) -> Result<Dest, String> {
    if d.weight > MAX_WEIGHT {
        return Err(format!("Illegal weight specified: {} (0..{MAX_WEIGHT})", d.weight));
    }
    if d.upper != 0 && d.lower > d.upper {
        return Err(format!("Illegal thresholds: lower {} above upper {}", d.lower, d.upper));
    }
    Ok(Dest::new(d.addr, d.port, d.forward, d.weight).with_thresholds(d.upper, d.lower))
}

/// A bad firewall-mark rule: which one, which field, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub index: usize,
    pub field: &'static str,
    pub reason: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fwmark[{}].{}: {}", self.index, self.field, self.reason)
    }
}

/// The classifier the specs describe. A rule's addresses say its family (IPv4 or
/// IPv6 prefixes, not both); a rule without addresses marks packets of both.
pub fn rules_from_specs(specs: &[FwmarkSpec]) -> Result<Classifier, RuleError> {
    let (mut out, mut out6) = (Vec::with_capacity(specs.len()), Vec::new());
    for (index, r) in specs.iter().enumerate() {
        let err = |field: &'static str, reason: String| RuleError { index, field, reason };
        if r.mark == 0 {
            return Err(err("mark", "0 is not a mark".into()));
        }
        // Either family's prefix; a bare address is a host prefix.
        let cidr = |field: &'static str, v: &Option<String>| -> Result<Option<IpCidr>, RuleError> {
            let Some(s) = v.as_deref() else { return Ok(None) };
            let bad = || err(field, format!("invalid CIDR \"{s}\""));
            if s.contains(':') {
                let s6 = if s.contains('/') { s.to_string() } else { format!("{s}/128") };
                s6.parse::<Ipv6Cidr>().map(|c| Some(IpCidr::V6(c))).map_err(|_| bad())
            } else {
                s.parse::<Ipv4Cidr>().map(|c| Some(IpCidr::V4(c))).map_err(|_| bad())
            }
        };
        let proto = match r.protocol.as_deref() {
            None => None,
            Some("tcp") => Some(Protocol::Tcp),
            Some("udp") => Some(Protocol::Udp),
            Some(o) => return Err(err("protocol", format!("\"{o}\" is not tcp or udp"))),
        };
        // A port or a range lo:hi; destination ports may be a list of them (each
        // becomes a rule of its own: the same mark, so the same outcome).
        let ranges = |field: &'static str, v: Option<&str>, list: bool| -> Result<Vec<Option<(u16, u16)>>, RuleError> {
            let Some(p) = v else { return Ok(vec![None]) };
            let bad = || err(field, format!("\"{p}\" is not a port or a range lo:hi"));
            if proto.is_none() {
                return Err(err(field, "a port match needs protocol = \"tcp\" or \"udp\"".into()));
            }
            let items: Vec<&str> = p.split(',').collect();
            // iptables' multiport: 15 ports at most, a range counting two.
            let weight: usize = items.iter().map(|i| if i.contains(':') { 2 } else { 1 }).sum();
            if (!list && items.len() > 1) || weight > 15 {
                return Err(bad());
            }
            items
                .into_iter()
                .map(|one| {
                    let (lo, hi) = match one.split_once(':') {
                        Some((a, b)) => (a.parse::<u16>().map_err(|_| bad())?, b.parse::<u16>().map_err(|_| bad())?),
                        None => {
                            let v = one.parse::<u16>().map_err(|_| bad())?;
                            (v, v)
                        }
                    };
                    if lo > hi {
                        return Err(bad());
                    }
                    Ok(Some((lo, hi)))
                })
                .collect()
        };
        let dport_list = ranges("ports", r.ports.as_deref(), true)?;
        let sports = ranges("source_ports", r.source_ports.as_deref(), false)?[0];
        let src_mac = match r.mac_source.as_deref() {
            None => None,
            Some(m) => {
                let (neg, mac) = match m.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, m),
                };
                let mac: EthernetAddress =
                    mac.parse().map_err(|_| err("mac_source", format!("invalid MAC address \"{m}\"")))?;
                Some((mac, neg))
            }
        };
        let (dst, src) = (cidr("destination", &r.destination)?, cidr("source", &r.source)?);
        for dports in dport_list {
            let any: Rule = Rule { proto, dports, sports, src_mac, ..Rule::mark(r.mark) };
            match (dst, src) {
                (None, None) => {
                    out6.push(any.without_addresses());
                    out.push(any);
                }
                (dst @ (None | Some(IpCidr::V4(_))), src @ (None | Some(IpCidr::V4(_)))) => {
                    let v4 = |c: Option<IpCidr>| if let Some(IpCidr::V4(c)) = c { Some(c) } else { None };
                    out.push(Rule { dst: v4(dst), src: v4(src), ..any });
                }
                (dst @ (None | Some(IpCidr::V6(_))), src @ (None | Some(IpCidr::V6(_)))) => {
                    let v6 = |c: Option<IpCidr>| if let Some(IpCidr::V6(c)) = c { Some(c) } else { None };
                    out6.push(Rule { dst: v6(dst), src: v6(src), ..any.without_addresses() });
                }
                _ => return Err(err("source", "an IPv4 and an IPv6 prefix in one rule".into())),
            }
        }
    }
    Ok(Classifier::both(out, out6))
}

/// A rule's prefix: the family decides which packets it can match.
#[derive(Debug, Clone, Copy)]
enum IpCidr {
    V4(Ipv4Cidr),
    V6(Ipv6Cidr),
}

/// A real server at one of the appliance's own addresses is the director itself:
/// its forwarding becomes Local, whatever was asked (the kernel does the same when
/// a dest's address is local).
pub fn localize(d: &mut DestSpec, own: &[std::net::IpAddr]) {
    if own.contains(&d.addr) {
        d.forward = FwdMethod::Local;
    }
}

/// Services and dests as specs, in the order they were added, the timeouts, the
/// firewall-mark rules and the settings: everything that can change while rvsd runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Model {
    pub services: Vec<(ServiceSpec, Vec<DestSpec>)>,
    pub timeouts: Timeouts,
    pub fwmark: Vec<FwmarkSpec>,
    pub sysctl: Sysctl,
}

/// The kernel's `net.ipv4.vs.*` settings RVS has, by their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sysctl {
    /// `sloppy_tcp`: schedule a TCP packet of no connection that is no SYN.
    pub sloppy_tcp: bool,
    /// `expire_nodest_conn`: a packet of a connection whose real server left its
    /// service ends the connection (a SYN is then scheduled anew), and a SYN on a
    /// connection to a quiesced one (weight 0) is scheduled anew; without it such
    /// packets are dropped and the connection lives out its timeout.
    pub expire_nodest_conn: bool,
    /// `expire_quiescent_template`: a persistence template whose real server is
    /// quiesced (weight 0) no longer holds its clients.
    pub expire_quiescent_template: bool,
}

/// The settings' names (`net.ipv4.vs.NAME`).
pub const SYSCTL_NAMES: [&str; 3] = ["sloppy_tcp", "expire_nodest_conn", "expire_quiescent_template"];

impl Sysctl {
    /// Every setting as (name, value).
    pub fn list(&self) -> Vec<(&'static str, u32)> {
        vec![
            ("expire_nodest_conn", u32::from(self.expire_nodest_conn)),
            ("expire_quiescent_template", u32::from(self.expire_quiescent_template)),
            ("sloppy_tcp", u32::from(self.sloppy_tcp)),
        ]
    }

    /// Sets `name` to `value`, checked as the kernel checks it (0 or 1).
    pub fn set(&mut self, name: &str, value: u32) -> Result<(), String> {
        let flag = match value {
            0 => false,
            1 => true,
            v => return Err(format!("{name}: {v} is not 0 or 1")),
        };
        match name {
            "sloppy_tcp" => self.sloppy_tcp = flag,
            "expire_nodest_conn" => self.expire_nodest_conn = flag,
            "expire_quiescent_template" => self.expire_quiescent_template = flag,
            // RVS balances TCP and UDP: there is no SCTP to be sloppy about.
            other => return Err(format!("no such setting: {other} (known: {})", SYSCTL_NAMES.join(", "))),
        }
        Ok(())
    }
}

impl Model {
    fn find(&self, r: ServiceKey) -> Option<usize> {
        self.services.iter().position(|(s, _)| s.service == r)
    }

    /// Applies every change or none.
    pub fn apply_all(&mut self, changes: &[Change]) -> Result<(), String> {
        let mut next = self.clone();
        for c in changes {
            next.apply(c)?;
        }
        *self = next;
        Ok(())
    }

    /// Applies one change, with ipvsadm's messages when it cannot.
    pub fn apply(&mut self, c: &Change) -> Result<(), String> {
        match c {
            Change::AddService(s) => {
                if self.find(s.service).is_some() {
                    return Err("Service already exists".into());
                }
                service_from_spec(s)?;
                self.services.push((s.clone(), Vec::new()));
            }
            Change::EditService(s) => {
                let i = self.find(s.service).ok_or("No such service")?;
                let mut svc = service_from_spec(s)?;
                for d in &self.services[i].1 {
                    svc.add_dest(dest_from_spec(d)?).map_err(|e| e.to_string())?;
                }
                self.services[i].0 = s.clone();
            }
            Change::DelService { service } => {
                let i = self.find(*service).ok_or("No such service")?;
                self.services.remove(i);
            }
            Change::Clear => self.services.clear(),
            Change::AddDest(d) => {
                let i = self.find(d.service).ok_or("Service not defined")?;
                let mut svc = service_from_spec(&self.services[i].0)?;
                let new = dest_from_spec(d)?;
                svc.add_dest(new).map_err(|e| e.to_string())?;
                let port = svc.dests()[0].port;
                if self.services[i].1.iter().any(|x| x.addr == d.addr && x.port == port) {
                    return Err("Destination already exists".into());
                }
                self.services[i].1.push(DestSpec { port, ..d.clone() });
            }
            Change::EditDest(d) => {
                let i = self.find(d.service).ok_or("Service not defined")?;
                let port = normalise_port(&self.services[i].0, d.port);
                let j = self.services[i]
                    .1
                    .iter()
                    .position(|x| x.addr == d.addr && x.port == port)
                    .ok_or("No such destination")?;
                let mut svc = service_from_spec(&self.services[i].0)?;
                svc.add_dest(dest_from_spec(&DestSpec { port, ..d.clone() })?).map_err(|e| e.to_string())?;
                self.services[i].1[j] = DestSpec { port, ..d.clone() };
            }
            Change::DelDest { service, addr, port } => {
                let i = self.find(*service).ok_or("Service not defined")?;
                let port = normalise_port(&self.services[i].0, *port);
                let j = self.services[i]
                    .1
                    .iter()
                    .position(|x| x.addr == *addr && x.port == port)
                    .ok_or("No such destination")?;
                self.services[i].1.remove(j);
            }
            Change::SetTimeouts { tcp, tcpfin, udp } => self.timeouts.set(*tcp, *tcpfin, *udp),
            Change::SetFwmarkRules { rules } => {
                rules_from_specs(rules).map_err(|e| e.to_string())?;
                self.fwmark = rules.clone();
            }
            Change::SetSysctl { name, value } => self.sysctl.set(name, *value)?,
        }
        Ok(())
    }

    /// The changes that turn this model into `new`, touching only what differs: an
    /// unchanged service keeps its connections, counters and scheduler state.
    pub fn diff(&self, new: &Model) -> Vec<Change> {
        let mut out = Vec::new();
        if self.timeouts != new.timeouts {
            let (tcp, tcpfin, udp) = new.timeouts.get();
            out.push(Change::SetTimeouts { tcp, tcpfin, udp });
        }
        if self.fwmark != new.fwmark {
            out.push(Change::SetFwmarkRules { rules: new.fwmark.clone() });
        }
        for ((name, old), (_, value)) in self.sysctl.list().into_iter().zip(new.sysctl.list()) {
            if old != value {
                out.push(Change::SetSysctl { name: name.into(), value });
            }
        }
        for (s, _) in &self.services {
            if !new.services.iter().any(|(n, _)| n.service == s.service) {
                out.push(Change::DelService { service: s.service });
            }
        }
        for (ns, nds) in &new.services {
            match self.services.iter().find(|(s, _)| s.service == ns.service) {
                None => {
                    out.push(Change::AddService(ns.clone()));
                    out.extend(nds.iter().cloned().map(Change::AddDest));
                }
                Some((os, ods)) => {
                    if os != ns {
                        out.push(Change::EditService(ns.clone()));
                    }
                    for od in ods {
                        if !nds.iter().any(|d| d.addr == od.addr && d.port == od.port) {
                            out.push(Change::DelDest { service: od.service, addr: od.addr, port: od.port });
                        }
                    }
                    for nd in nds {
                        match ods.iter().find(|d| d.addr == nd.addr && d.port == nd.port) {
                            None => out.push(Change::AddDest(nd.clone())),
                            Some(od) if od != nd => out.push(Change::EditDest(nd.clone())),
                            Some(_) => {}
                        }
                    }
                }
            }
        }
        out
    }

    /// This running model with the configuration file's edits since `base` (what
    /// the file said when it was last read) taken over, item by item, and every
    /// other runtime change kept: where the file changed a service, a real server,
    /// the timeouts, the firewall-mark rules or a setting, the file's version;
    /// elsewhere this one's (what rvsadm made of it).
    pub fn keep_runtime(&self, base: &Model, file: &Model) -> Model {
        fn pick<T>(file_changed: bool, f: T, l: T) -> T {
            if file_changed {
                f
            } else {
                l
            }
        }
        let mut out = Model {
            services: Vec::new(),
            timeouts: pick(base.timeouts != file.timeouts, file.timeouts, self.timeouts),
            fwmark: pick(base.fwmark != file.fwmark, file.fwmark.clone(), self.fwmark.clone()),
            sysctl: self.sysctl,
        };
        for ((name, b), ((_, f), (_, l))) in
            base.sysctl.list().into_iter().zip(file.sysctl.list().into_iter().zip(self.sysctl.list()))
        {
            let _ = out.sysctl.set(name, if b != f { f } else { l });
        }
        let find = |m: &Model, k: ServiceKey| m.services.iter().find(|(s, _)| s.service == k).cloned();
        let mut keys: Vec<ServiceKey> = self.services.iter().map(|(s, _)| s.service).collect();
        keys.extend(file.services.iter().map(|(s, _)| s.service).filter(|k| self.find(*k).is_none()));
        for k in keys {
            let (b, f, l) = (find(base, k), find(file, k), find(self, k));
            let spec = |m: &Option<(ServiceSpec, Vec<DestSpec>)>| m.as_ref().map(|(s, _)| s.clone());
            let Some(svc) = pick(spec(&b) != spec(&f), spec(&f), spec(&l)) else { continue };
            let dests_of =
                |m: &Option<(ServiceSpec, Vec<DestSpec>)>| m.as_ref().map(|(_, d)| d.clone()).unwrap_or_default();
            let (bd, fd, ld) = (dests_of(&b), dests_of(&f), dests_of(&l));
            let mut dkeys: Vec<(std::net::IpAddr, u16)> = ld.iter().map(|d| (d.addr, d.port)).collect();
            dkeys.extend(fd.iter().map(|d| (d.addr, d.port)).filter(|k| !ld.iter().any(|d| (d.addr, d.port) == *k)));
            let one = |v: &[DestSpec], k: (std::net::IpAddr, u16)| v.iter().find(|d| (d.addr, d.port) == k).cloned();
            let dests = dkeys
                .into_iter()
                .filter_map(|dk| pick(one(&bd, dk) != one(&fd, dk), one(&fd, dk), one(&ld, dk)))
                .collect();
            out.services.push((svc, dests));
        }
        out
    }

    /// The changes that build this model from nothing (start-up, new workers).
    pub fn as_changes(&self) -> Vec<Change> {
        let (tcp, tcpfin, udp) = self.timeouts.get();
        let mut v =
            vec![Change::SetTimeouts { tcp, tcpfin, udp }, Change::SetFwmarkRules { rules: self.fwmark.clone() }];
        v.extend(self.sysctl.list().into_iter().map(|(name, value)| Change::SetSysctl { name: name.into(), value }));
        for (s, ds) in &self.services {
            v.push(Change::AddService(s.clone()));
            v.extend(ds.iter().cloned().map(Change::AddDest));
        }
        v
    }
}

/// What a change touches, to tell whether two changes touch the same thing: the
/// timeouts, the firewall-mark rules, a setting, a service, a service's real server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Item {
    Timeouts,
    Fwmark,
    Sysctl(String),
    Service(ServiceKey),
    Dest(ServiceKey, std::net::IpAddr, u16),
    All,
}

impl Item {
    pub fn of(c: &Change) -> Item {
        match c {
            Change::AddService(s) | Change::EditService(s) => Item::Service(s.service),
            Change::DelService { service } => Item::Service(*service),
            Change::Clear => Item::All,
            Change::AddDest(d) | Change::EditDest(d) => Item::Dest(d.service, d.addr, d.port),
            Change::DelDest { service, addr, port } => Item::Dest(*service, *addr, *port),
            Change::SetTimeouts { .. } => Item::Timeouts,
            Change::SetFwmarkRules { .. } => Item::Fwmark,
            Change::SetSysctl { name, .. } => Item::Sysctl(name.clone()),
        }
    }
}

/// A dest port of 0 in an address service means the virtual port.
fn normalise_port(s: &ServiceSpec, port: u16) -> u16 {
    match s.service {
        ServiceKey::Addr { proto: Protocol::Tcp, port: vport, .. }
        | ServiceKey::Addr { proto: Protocol::Udp, port: vport, .. }
            if port == 0 =>
        {
            vport
        }
        _ => port,
    }
}

/// Applies a change the model accepted to a worker's own state.
pub fn apply_to_director(d: &mut crate::ipvs::director::Director, c: &Change) -> Result<(), String> {
    match c {
        Change::SetFwmarkRules { rules } => {
            d.classifier = std::sync::Arc::new(rules_from_specs(rules).map_err(|e| e.to_string())?);
            Ok(())
        }
        Change::SetSysctl { name, value } => {
            let mut s = Sysctl {
                sloppy_tcp: d.sloppy_tcp,
                expire_nodest_conn: d.expire_nodest_conn,
                expire_quiescent_template: d.expire_quiescent_template,
            };
            s.set(name, *value)?;
            d.sloppy_tcp = s.sloppy_tcp;
            d.expire_nodest_conn = s.expire_nodest_conn;
            d.expire_quiescent_template = s.expire_quiescent_template;
            Ok(())
        }
        _ => apply_to_table(&mut d.services, &mut d.timeouts, c),
    }
}

/// Applies a change the model accepted to a worker's service table and timeouts
/// (firewall-mark rules go through `apply_to_director`).
pub fn apply_to_table(table: &mut ServiceTable, timeouts: &mut Timeouts, c: &Change) -> Result<(), String> {
    match c {
        Change::SetFwmarkRules { .. } | Change::SetSysctl { .. } => {}
        Change::AddService(s) => {
            table.add(service_from_spec(s)?).map_err(|e| e.to_string())?;
        }
        Change::EditService(s) => {
            let svc = table.by_key_mut(&s.service).ok_or("No such service")?;
            let flags = SchedFlags::parse(&s.scheduler, &s.flags.join(","))?;
            if svc.scheduler_name() != s.scheduler || svc.scheduler_flags() != flags {
                svc.set_scheduler(&s.scheduler, flags).map_err(|e| e.to_string())?;
            }
            svc.persistence = persistence_of(s)?;
        }
        Change::DelService { service } => {
            table.remove(service).map_err(|e| e.to_string())?;
        }
        Change::Clear => {
            let keys: Vec<ServiceKey> = table.iter().map(|(_, s)| s.key).collect();
            for k in keys {
                let _ = table.remove(&k);
            }
        }
        Change::AddDest(d) => {
            table.by_key_mut(&d.service).ok_or("Service not defined")?;
            table.add_dest(&d.service, dest_from_spec(d)?).map_err(|e| e.to_string())?;
        }
        Change::EditDest(d) => {
            let svc = table.by_key_mut(&d.service).ok_or("Service not defined")?;
            svc.edit_dest(d.addr, d.port, d.forward, d.weight, d.upper, d.lower).map_err(|e| e.to_string())?;
        }
        Change::DelDest { service, addr, port } => {
            table.by_key_mut(service).ok_or("Service not defined")?;
            table.del_dest(service, *addr, *port).map_err(|e| e.to_string())?;
        }
        Change::SetTimeouts { tcp, tcpfin, udp } => timeouts.set(*tcp, *tcpfin, *udp),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::dest::FwdMethod;

    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

    fn svc(port: u16, sched: &str, p: Option<u32>) -> ServiceSpec {
        ServiceSpec {
            service: ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port },
            scheduler: sched.into(),
            flags: vec![],
            persistent: p,
            netmask: None,
            prefix6: None,
        }
    }

    fn dest(port: u16, last: u8, f: FwdMethod, w: u32) -> DestSpec {
        DestSpec {
            service: ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port },
            addr: std::net::IpAddr::from(Ipv4Addr::new(198, 18, 1, last)),
            port,
            forward: f,
            weight: w,
            upper: 0,
            lower: 0,
        }
    }

    /// `--reload --keep`: the file's edits since it was read win where they are;
    /// what rvsadm changed elsewhere stays.
    #[test]
    fn keep_runtime_takes_the_files_edits_and_keeps_the_rest() {
        let mut base = Model::default();
        base.apply_all(&[Change::AddService(svc(80, "rr", None)), Change::AddDest(dest(80, 11, FwdMethod::Masq, 1))])
            .unwrap();
        let mut live = base.clone();
        live.apply_all(&[
            Change::AddService(svc(81, "wlc", None)),
            Change::EditDest(dest(80, 11, FwdMethod::Masq, 5)),
            Change::SetTimeouts { tcp: 600, tcpfin: 60, udp: 60 },
        ])
        .unwrap();
        let mut file = base.clone();
        file.apply_all(&[Change::AddDest(dest(80, 12, FwdMethod::Masq, 2)), Change::EditService(svc(80, "sh", None))])
            .unwrap();
        let kept = live.keep_runtime(&base, &file);
        assert_eq!(kept.timeouts.get(), (600, 60, 60), "rvsadm's --set stays");
        let s80 = &kept.services.iter().find(|(s, _)| s.service.port() == 80).unwrap();
        assert_eq!(s80.0.scheduler, "sh", "the file's edit");
        assert_eq!(s80.1.iter().map(|d| d.weight).collect::<Vec<_>>(), [5, 2], "rvsadm's weight, the file's new dest");
        assert!(kept.services.iter().any(|(s, _)| s.service.port() == 81), "rvsadm's service stays");
        // Without runtime changes it is the file.
        assert_eq!(base.keep_runtime(&base, &file), file);
    }

    #[test]
    fn ipvsadm_messages_and_nothing_changes_on_error() {
        let mut m = Model::default();
        m.apply_all(&[Change::AddService(svc(80, "rr", None)), Change::AddDest(dest(80, 11, FwdMethod::Masq, 1))])
            .unwrap();
        let before = m.clone();
        let cases: Vec<(Change, &str)> = vec![
            (Change::AddService(svc(80, "rr", None)), "Service already exists"),
            (Change::AddService(svc(0, "rr", None)), "Zero port specified for non-persistent service"),
            (Change::AddService(svc(81, "bogus", None)), "Scheduler or persistence engine not found"),
            (Change::EditService(svc(80, "bogus", None)), "Scheduler or persistence engine not found"),
            (Change::EditService(svc(99, "rr", None)), "No such service"),
            (
                Change::DelService { service: ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port: 99 } },
                "No such service",
            ),
            (Change::AddDest(dest(99, 11, FwdMethod::Masq, 1)), "Service not defined"),
            (Change::AddDest(dest(80, 11, FwdMethod::Masq, 1)), "Destination already exists"),
            (Change::AddDest(dest(80, 12, FwdMethod::Masq, 70000)), "Illegal weight specified"),
            (
                Change::DelDest {
                    service: ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port: 80 },
                    addr: std::net::IpAddr::from(Ipv4Addr::new(198, 18, 1, 99)),
                    port: 80,
                },
                "No such destination",
            ),
            (Change::AddDest(DestSpec { port: 8080, ..dest(80, 12, FwdMethod::Route, 1) }), "cannot map ports"),
        ];
        for (c, want) in cases {
            let e = m.apply_all(&[Change::AddService(svc(90, "wlc", None)), c.clone()]).unwrap_err();
            assert!(e.contains(want), "{c:?}: {e}");
            assert_eq!(m, before, "{c:?} changed the model");
        }
    }

    #[test]
    fn dest_port_zero_is_the_virtual_port_and_edits_find_it() {
        let mut m = Model::default();
        let zero = |w| DestSpec { port: 0, ..dest(80, 11, FwdMethod::Route, w) };
        m.apply_all(&[Change::AddService(svc(80, "rr", None)), Change::AddDest(zero(1))]).unwrap();
        assert_eq!(m.services[0].1[0].port, 80);
        m.apply(&Change::EditDest(zero(5))).unwrap();
        assert_eq!(m.services[0].1[0].weight, 5);
    }

    #[test]
    fn diff_touches_only_what_changed() {
        let mut a = Model::default();
        a.apply_all(&[
            Change::AddService(svc(80, "rr", None)),
            Change::AddDest(dest(80, 11, FwdMethod::Masq, 1)),
            Change::AddDest(dest(80, 12, FwdMethod::Masq, 1)),
            Change::AddService(svc(81, "rr", None)),
            Change::AddService(svc(82, "wlc", None)),
        ])
        .unwrap();
        let mut b = Model::default();
        b.apply_all(&[
            Change::AddService(svc(80, "rr", None)),
            Change::AddDest(dest(80, 11, FwdMethod::Masq, 5)),
            Change::AddDest(dest(80, 13, FwdMethod::Masq, 1)),
            Change::AddService(svc(82, "rr", None)),
            Change::AddService(svc(83, "rr", None)),
            Change::SetTimeouts { tcp: 60, tcpfin: 0, udp: 0 },
        ])
        .unwrap();
        let d = a.diff(&b);
        let vip = VIP;
        assert_eq!(
            d,
            vec![
                Change::SetTimeouts { tcp: 60, tcpfin: 120, udp: 300 },
                Change::DelService { service: ServiceKey::Addr { proto: Protocol::Tcp, addr: vip, port: 81 } },
                Change::DelDest {
                    service: ServiceKey::Addr { proto: Protocol::Tcp, addr: vip, port: 80 },
                    addr: std::net::IpAddr::from(Ipv4Addr::new(198, 18, 1, 12)),
                    port: 80
                },
                Change::EditDest(dest(80, 11, FwdMethod::Masq, 5)),
                Change::AddDest(dest(80, 13, FwdMethod::Masq, 1)),
                Change::EditService(svc(82, "rr", None)),
                Change::AddService(svc(83, "rr", None)),
            ]
        );
        let mut c = a.clone();
        c.apply_all(&d).unwrap();
        assert_eq!(c.services, b.services, "applying the diff gives the new model");
        assert!(b.diff(&b).is_empty());
    }

    #[test]
    fn changes_rebuild_a_table() {
        let mut m = Model::default();
        m.apply_all(&[
            Change::AddService(svc(80, "wlc", Some(300))),
            Change::AddDest(dest(80, 11, FwdMethod::Masq, 3)),
            Change::AddDest(dest(80, 12, FwdMethod::Masq, 1)),
            Change::SetTimeouts { tcp: 60, tcpfin: 0, udp: 0 },
        ])
        .unwrap();
        let mut t = ServiceTable::new();
        let mut to = Timeouts::default();
        for c in m.as_changes() {
            apply_to_table(&mut t, &mut to, &c).unwrap();
        }
        let (_, s) = t.iter().next().unwrap();
        assert_eq!((s.scheduler_name(), s.dests().len(), s.persistence.unwrap().timeout_s), ("wlc", 2, 300));
        assert_eq!(to.get(), (60, 120, 300));
    }
}
