//! VRRP as keepalived's `vrrp_instance`: version 2 (RFC 3768) and version 3 (RFC
//! 5798) routers that share addresses between directors. DPDK-free and socket-free:
//! `Vrrp` takes received advertisements and the time, and says what to send (frames
//! for a port) and which transitions happened; the daemon carries frames to and from
//! the ports and runs the notify scripts.
//!
//! The state machine is the RFC's, with keepalived's options:
//! - BACKUP waits `3 x advert_int + skew` (skew `(256 - priority) / 256` of the
//!   interval) for the master's advertisements, then becomes MASTER; a priority-0
//!   advertisement (the master stopping) cuts the wait to the skew. A lower-priority
//!   master is preempted unless `nopreempt`, and not before `preempt_delay` after start.
//! - MASTER advertises every `advert_int`, owns its addresses (the data plane answers
//!   ARP and ping for them and balances to them only then), announces them with
//!   `garp_master_repeat` gratuitous ARPs at once and again after `garp_master_delay`
//!   (and every `garp_master_refresh`), and yields to a higher priority (or an equal
//!   one from a higher address). On stopping it sends priority 0.
//! - FAULT while something it tracks fails (a port's link, a service's quorum, a
//!   `vrrp_script` of weight 0); a script with a weight moves the priority instead.
//! - A `vrrp_sync_group` moves its instances together (the VIP side and the DIP side
//!   of a NAT director).
//! - `state MASTER` starts as BACKUP listening for one interval (a master that is
//!   there keeps the role); priority 255 (the address owner) is MASTER at once.
//!
//! - An instance is of one family: its `virtual_ipaddress` are IPv4, or IPv6 (then
//!   it speaks version 3 from the port's link-local address to ff02::12, and
//!   announces its addresses with unsolicited neighbour advertisements instead of
//!   gratuitous ARPs). `virtual_ipaddress_excluded` addresses, of either family, are
//!   carried and announced but not advertised (keepalived's way of a dual-stack pair).
//!
//! Advertisements that fail a check are dropped and counted by reason.

use crate::net::ethernet::EthernetAddress;
use crate::net::vrrp::{self, Advert, Fault};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// A router's state (keepalived's names; the numbers are its SNMP values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Backup = 1,
    Master = 2,
    Fault = 3,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

/// Why an advertisement was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Truncated,
    BadTtl,
    BadVersion,
    BadChecksum,
    UnknownVrid,
    AuthMismatch,
    IntervalMismatch,
    AddressMismatch,
}

impl DropReason {
    pub const ALL: [DropReason; 8] = [
        DropReason::Truncated,
        DropReason::BadTtl,
        DropReason::BadVersion,
        DropReason::BadChecksum,
        DropReason::UnknownVrid,
        DropReason::AuthMismatch,
        DropReason::IntervalMismatch,
        DropReason::AddressMismatch,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadTtl => "bad_ttl",
            DropReason::BadVersion => "bad_version",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::UnknownVrid => "unknown_vrid",
            DropReason::AuthMismatch => "auth_mismatch",
            DropReason::IntervalMismatch => "interval_mismatch",
            DropReason::AddressMismatch => "address_mismatch",
        }
    }
}

impl From<Fault> for DropReason {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Truncated => DropReason::Truncated,
            Fault::BadTtl => DropReason::BadTtl,
            Fault::BadVersion => DropReason::BadVersion,
            Fault::BadChecksum => DropReason::BadChecksum,
        }
    }
}

/// One `[[vrrp_instance]]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    pub name: String,
    /// `state MASTER` at start.
    pub want_master: bool,
    /// The port (`interface`) and its index.
    pub interface: String,
    pub port: usize,
    pub vrid: u8,
    pub priority: u8,
    /// `advert_int`, in centiseconds.
    pub advert_cs: u16,
    /// 2 or 3.
    pub version: u8,
    pub nopreempt: bool,
    pub preempt_delay_s: u32,
    /// `authentication { auth_type PASS auth_pass ... }` (version 2): the 8 bytes sent.
    pub auth_pass: Option<[u8; vrrp::AUTH_LEN]>,
    /// `virtual_ipaddress`: advertised, all of the instance's family.
    pub addrs: Vec<IpAddr>,
    /// `virtual_ipaddress_excluded`: carried and announced, not advertised.
    pub excluded: Vec<IpAddr>,
    /// Ports whose link must be up (`track_interface`).
    pub track_interface: Vec<usize>,
    /// Services whose quorum must hold (`track_service`, an RVS addition).
    pub track_service: Vec<crate::control::protocol::ServiceKey>,
    /// `track_script`: names of `[[vrrp_script]]`s, with the weight to use (the
    /// script's own when not given).
    pub track_script: Vec<(String, Option<i32>)>,
    pub garp_master_delay_s: u32,
    pub garp_master_repeat: u32,
    pub garp_master_refresh_s: u32,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    pub notify: Option<String>,
}

/// One `[[vrrp_script]]`: a command run every `interval`, failed after `fall`
/// failures in a row, good again after `rise` successes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSpec {
    pub name: String,
    pub script: String,
    pub interval_s: u32,
    pub timeout_s: u32,
    pub weight: i32,
    pub rise: u32,
    pub fall: u32,
}

/// One `[[vrrp_sync_group]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupSpec {
    pub name: String,
    pub members: Vec<String>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    pub notify: Option<String>,
}

/// The VRRP part of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VrrpSpec {
    pub instances: Vec<InstanceSpec>,
    pub scripts: Vec<ScriptSpec>,
    pub groups: Vec<SyncGroupSpec>,
}

/// Counters of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceCounters {
    pub sent: u64,
    pub received: u64,
    pub dropped: [u64; DropReason::ALL.len()],
    pub transitions: u64,
    pub became_master: u64,
    pub priority_zero_sent: u64,
    pub priority_zero_received: u64,
}

/// What the tracked things look like now (the daemon fills it each tick).
#[derive(Debug, Default)]
pub struct Tracked<'a> {
    /// Link state per port index.
    pub links: &'a [bool],
    /// Services whose quorum is lost.
    pub quorum_lost: &'a [crate::control::protocol::ServiceKey],
    /// Script results: name -> good.
    pub scripts: &'a [(String, bool)],
}

/// A transition, for the log and the notify scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub instance: String,
    /// None: the instance just started (keepalived's "Entering BACKUP STATE (init)").
    pub from: Option<State>,
    pub to: State,
    pub priority: u8,
    pub why: &'static str,
}

/// What an instance knows of the port it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortInfo {
    pub mac: EthernetAddress,
    /// The source of its IPv4 advertisements (the port's first address).
    pub primary: Ipv4Addr,
    /// The source of its IPv6 ones: the link-local address of its MAC.
    pub link_local: Ipv6Addr,
}

impl PortInfo {
    /// A port with this MAC and first IPv4 address.
    pub const fn new(mac: EthernetAddress, primary: Ipv4Addr) -> PortInfo {
        PortInfo { mac, primary, link_local: crate::net::ipv6::link_local(mac) }
    }
}

/// One running instance.
#[derive(Debug)]
pub struct Instance {
    pub spec: InstanceSpec,
    pub state: State,
    pub counters: InstanceCounters,
    /// The priority now (the configured one moved by weighted scripts).
    pub priority: u8,
    /// The master's advertisement interval (learned from it in version 3).
    master_cs: u16,
    /// Backup: when the master counts as gone.
    down_at: Instant,
    /// Master: the next advertisement.
    advert_at: Instant,
    /// Master: the delayed gratuitous ARPs, the periodic ones.
    garp_again_at: Option<Instant>,
    garp_refresh_at: Option<Instant>,
    /// Preemption not before this.
    preempt_after: Instant,
    /// The master last heard (its address).
    pub master_seen: Option<IpAddr>,
    port: PortInfo,
}

fn ms(cs: u16) -> Duration {
    Duration::from_millis(u64::from(cs) * 10)
}

impl Instance {
    fn new(spec: InstanceSpec, port: PortInfo, now: Instant) -> Instance {
        let mut i = Instance {
            priority: spec.priority,
            master_cs: spec.advert_cs,
            state: State::Backup,
            counters: InstanceCounters::default(),
            down_at: now,
            advert_at: now,
            garp_again_at: None,
            garp_refresh_at: None,
            preempt_after: now + Duration::from_secs(u64::from(spec.preempt_delay_s)),
            master_seen: None,
            port,
            spec,
        };
        // A wanted master listens one interval (plus its skew) for one already there.
        i.down_at = if i.spec.want_master { now + ms(i.spec.advert_cs) + i.skew() } else { now + i.master_down() };
        i
    }

    /// Whether it owns its addresses now.
    pub fn owns(&self) -> bool {
        self.state == State::Master
    }

    /// An IPv6 instance.
    fn is_ipv6(&self) -> bool {
        self.spec.addrs.first().is_some_and(IpAddr::is_ipv6)
    }

    /// Where its advertisements come from: the port's first IPv4 address, or its
    /// link-local IPv6 one.
    fn source(&self) -> IpAddr {
        if self.is_ipv6() {
            IpAddr::V6(self.port.link_local)
        } else {
            IpAddr::V4(self.port.primary)
        }
    }

    /// Skew_Time: lower priorities wait longer.
    fn skew(&self) -> Duration {
        let cs = u64::from(if self.spec.version == 3 { self.master_cs } else { 100 });
        Duration::from_millis((256 - u64::from(self.priority)) * cs * 10 / 256)
    }

    /// Master_Down_Interval.
    fn master_down(&self) -> Duration {
        ms(self.master_cs) * 3 + self.skew()
    }

    fn advert(&self, priority: u8) -> Advert {
        Advert {
            version: self.spec.version,
            vrid: self.spec.vrid,
            priority,
            interval_cs: self.spec.advert_cs,
            auth_type: if self.spec.auth_pass.is_some() { vrrp::AUTH_PASS } else { vrrp::AUTH_NONE },
            auth_data: self.spec.auth_pass.unwrap_or([0; vrrp::AUTH_LEN]),
            addrs: self.spec.addrs.clone(),
        }
    }

    fn send_advert(&mut self, priority: u8, out: &mut Vec<(usize, Vec<u8>)>) {
        out.push((self.spec.port, self.advert(priority).frame(self.port.mac, self.source())));
        self.counters.sent += 1;
        if priority == 0 {
            self.counters.priority_zero_sent += 1;
        }
    }

    /// Gratuitous ARPs for its IPv4 addresses, unsolicited neighbour
    /// advertisements (override set, to all nodes) for its IPv6 ones.
    fn send_garps(&self, out: &mut Vec<(usize, Vec<u8>)>) {
        use crate::pipeline::nd;
        for _ in 0..self.spec.garp_master_repeat.max(1) {
            for a in self.spec.addrs.iter().chain(&self.spec.excluded) {
                let frame = match *a {
                    IpAddr::V4(a) => vrrp::gratuitous_arp(self.port.mac, a),
                    IpAddr::V6(a) => {
                        let mut f = vec![0u8; nd::SOLICIT_FRAME_LEN];
                        let n = nd::build_unsolicited_advert(&mut f, self.port.mac, a);
                        f.truncate(n);
                        f
                    }
                };
                out.push((self.spec.port, frame));
            }
        }
    }

    /// Checks an advertisement addressed to this instance's VRID against its
    /// configuration (RFC 3768 7.1, keepalived's checks).
    fn check(&self, a: &Advert) -> Result<(), DropReason> {
        if a.version != self.spec.version {
            return Err(DropReason::BadVersion);
        }
        if a.version == 2 {
            let want_type = if self.spec.auth_pass.is_some() { vrrp::AUTH_PASS } else { vrrp::AUTH_NONE };
            if a.auth_type != want_type || (want_type == vrrp::AUTH_PASS && Some(a.auth_data) != self.spec.auth_pass) {
                return Err(DropReason::AuthMismatch);
            }
            if a.interval_cs != self.spec.advert_cs {
                return Err(DropReason::IntervalMismatch);
            }
        }
        if a.addrs.len() != self.spec.addrs.len() || a.addrs.iter().any(|x| !self.spec.addrs.contains(x)) {
            return Err(DropReason::AddressMismatch);
        }
        Ok(())
    }

    /// The effective priority and whether the instance is in fault, from what it
    /// tracks.
    fn tracked(&self, t: &Tracked<'_>, scripts: &[ScriptSpec]) -> (u8, bool) {
        let mut fault = self.spec.track_interface.iter().any(|p| !t.links.get(*p).copied().unwrap_or(true))
            || self.spec.track_service.iter().any(|s| t.quorum_lost.contains(s));
        let mut delta: i32 = 0;
        for (name, weight) in &self.spec.track_script {
            let Some(spec) = scripts.iter().find(|s| &s.name == name) else { continue };
            let good = t.scripts.iter().find(|(n, _)| n == name).is_none_or(|(_, g)| *g);
            match weight.unwrap_or(spec.weight) {
                0 => fault |= !good,
                w if w > 0 && good => delta += w,
                w if w < 0 && !good => delta += w,
                _ => {}
            }
        }
        let prio = if self.spec.priority == 255 {
            255
        } else {
            u8::try_from((i32::from(self.spec.priority) + delta).clamp(1, 254)).unwrap_or(1)
        };
        (prio, fault)
    }
}

/// Every instance, their sync groups and scripts' results.
#[derive(Debug, Default)]
pub struct Vrrp {
    pub instances: Vec<Instance>,
    pub spec: VrrpSpec,
    /// Advertisements no instance could be held responsible for (unknown VRID, or
    /// too broken to tell), by reason.
    pub unattributed: [u64; DropReason::ALL.len()],
    pub transitions: Vec<Transition>,
}

impl Vrrp {
    /// Instances for `spec`, on ports described by `ports` (by index). Instances
    /// that exist already under the same name, port and VRID keep their state and
    /// counters (a reload); the others start afresh. Frames to send (the leaving
    /// masters' priority-0 advertisements) go to `out`.
    pub fn configure(&mut self, spec: VrrpSpec, ports: &[PortInfo], now: Instant, out: &mut Vec<(usize, Vec<u8>)>) {
        let mut old: Vec<Instance> = std::mem::take(&mut self.instances);
        for s in &spec.instances {
            let port =
                ports.get(s.port).copied().unwrap_or(PortInfo::new(EthernetAddress::ZERO, Ipv4Addr::UNSPECIFIED));
            let kept = old.iter().position(|i| i.spec.name == s.name && i.spec.port == s.port && i.spec.vrid == s.vrid);
            let inst = match kept {
                Some(k) => {
                    let mut i = old.swap_remove(k);
                    let addrs_changed = i.spec.addrs != s.addrs || i.spec.excluded != s.excluded;
                    i.spec = s.clone();
                    i.port = port;
                    i.master_cs = if s.version == 3 { i.master_cs } else { s.advert_cs };
                    if i.state == State::Master && addrs_changed {
                        i.send_garps(out);
                    }
                    i
                }
                None => {
                    let i = Instance::new(s.clone(), port, now);
                    // Starting is entering BACKUP: logged and notified, as keepalived does.
                    self.transitions.push(Transition {
                        instance: i.spec.name.clone(),
                        from: None,
                        to: State::Backup,
                        priority: i.priority,
                        why: "init",
                    });
                    i
                }
            };
            self.instances.push(inst);
        }
        for mut gone in old {
            if gone.state == State::Master {
                gone.send_advert(0, out);
            }
        }
        // Priority 255 owns its addresses from the start.
        for i in 0..self.instances.len() {
            if self.instances[i].spec.priority == 255 && self.instances[i].state == State::Backup {
                self.transition(i, State::Master, "address owner (priority 255)", now, out);
            }
        }
        self.spec = spec;
    }

    /// The addresses instances carry, for the data plane: (address, port, owned now).
    pub fn carried(&self) -> Vec<(IpAddr, u16, bool)> {
        self.instances
            .iter()
            .flat_map(|i| {
                let port = u16::try_from(i.spec.port).unwrap_or(u16::MAX);
                i.spec.addrs.iter().chain(&i.spec.excluded).map(move |a| (*a, port, i.owns()))
            })
            .collect()
    }

    /// A VRRP packet received on port `port`: IPv4 (protocol 112) or IPv6 (next
    /// header 112). Instances of the two families may share a VRID (RFC 5798 §7.3).
    pub fn receive(&mut self, port: usize, ip: &[u8], now: Instant, out: &mut Vec<(usize, Vec<u8>)>) {
        let v6 = ip.first().is_some_and(|b| b >> 4 == 6);
        let vrid = if v6 {
            ip.get(crate::net::ipv6::HEADER_LEN + 1).copied()
        } else {
            ip.first().map(|b| usize::from(b & 0x0f) * 4).and_then(|ihl| ip.get(ihl + 1).copied())
        };
        let who = vrid.and_then(|v| {
            self.instances.iter().position(|i| i.spec.port == port && i.spec.vrid == v && i.is_ipv6() == v6)
        });
        let advert = match Advert::parse(ip) {
            Ok(a) => a,
            Err(f) => {
                let r = DropReason::from(f);
                match who {
                    Some(i) => self.instances[i].counters.dropped[r as usize] += 1,
                    None => self.unattributed[r as usize] += 1,
                }
                return;
            }
        };
        let Some(i) = who else {
            self.unattributed[DropReason::UnknownVrid as usize] += 1;
            return;
        };
        let src = if v6 {
            IpAddr::V6(crate::net::ipv6::Packet::new_unchecked(ip).src_addr())
        } else {
            IpAddr::V4(crate::net::read_ipv4(ip, 12))
        };
        let inst = &mut self.instances[i];
        if src == inst.source() {
            return; // our own, seen on the way out
        }
        if let Err(r) = inst.check(&advert) {
            inst.counters.dropped[r as usize] += 1;
            return;
        }
        inst.counters.received += 1;
        if advert.priority == 0 {
            inst.counters.priority_zero_received += 1;
        }
        match inst.state {
            State::Fault => {}
            State::Backup => {
                if inst.spec.version == 3 {
                    inst.master_cs = advert.interval_cs.max(1);
                }
                if advert.priority == 0 {
                    inst.down_at = now + inst.skew();
                } else if inst.spec.nopreempt || advert.priority >= inst.priority || now < inst.preempt_after {
                    inst.down_at = now + inst.master_down();
                    inst.master_seen = Some(src);
                }
                // A lower priority master: let the down timer run out and take over.
            }
            State::Master => {
                if advert.priority == 0 {
                    inst.send_advert(inst.priority, out);
                    inst.advert_at = now + ms(inst.spec.advert_cs);
                } else if advert.priority > inst.priority || (advert.priority == inst.priority && src > inst.source()) {
                    if inst.spec.version == 3 {
                        inst.master_cs = advert.interval_cs.max(1);
                    }
                    inst.master_seen = Some(src);
                    self.transition(i, State::Backup, "higher priority advertisement", now, out);
                }
            }
        }
    }

    /// Timers and tracking: what is due by `now`.
    pub fn tick(&mut self, now: Instant, tracked: &Tracked<'_>, out: &mut Vec<(usize, Vec<u8>)>) {
        let mut states: Vec<(u8, bool)> =
            self.instances.iter().map(|i| i.tracked(tracked, &self.spec.scripts)).collect();
        // A member's fault is its whole sync group's.
        for g in &self.spec.groups {
            let members: Vec<usize> =
                (0..self.instances.len()).filter(|j| g.members.contains(&self.instances[*j].spec.name)).collect();
            if members.iter().any(|j| states[*j].1) {
                for j in members {
                    states[j].1 = true;
                }
            }
        }
        for (i, (prio, fault)) in states.into_iter().enumerate() {
            let inst = &mut self.instances[i];
            inst.priority = prio;
            match inst.state {
                State::Fault if !fault => {
                    self.transition(i, State::Backup, "tracked objects good again", now, out);
                }
                State::Fault => {}
                _ if fault => self.transition(i, State::Fault, "a tracked object failed", now, out),
                State::Backup => {
                    if now >= inst.down_at {
                        self.transition(i, State::Master, "no advertisement from a master", now, out);
                    }
                }
                State::Master => {
                    if now >= inst.advert_at {
                        inst.send_advert(inst.priority, out);
                        inst.advert_at += ms(inst.spec.advert_cs);
                        if inst.advert_at < now {
                            inst.advert_at = now + ms(inst.spec.advert_cs);
                        }
                    }
                    if inst.garp_again_at.is_some_and(|t| now >= t) {
                        inst.garp_again_at = None;
                        inst.send_garps(out);
                    }
                    if let Some(t) = inst.garp_refresh_at.filter(|t| now >= *t) {
                        inst.send_garps(out);
                        inst.garp_refresh_at =
                            Some(t.max(now) + Duration::from_secs(u64::from(inst.spec.garp_master_refresh_s)));
                    }
                }
            }
        }
    }

    /// Stopping: masters send priority 0 so their peers take over at once.
    pub fn shutdown(&mut self, out: &mut Vec<(usize, Vec<u8>)>) {
        for inst in &mut self.instances {
            if inst.state == State::Master {
                inst.send_advert(0, out);
            }
            inst.state = State::Backup;
        }
    }

    /// Moves instance `i` (and its sync group) to `to`.
    fn transition(&mut self, i: usize, to: State, why: &'static str, now: Instant, out: &mut Vec<(usize, Vec<u8>)>) {
        let name = self.instances[i].spec.name.clone();
        let group: Vec<usize> = match self.spec.groups.iter().find(|g| g.members.contains(&name)) {
            Some(g) => {
                (0..self.instances.len()).filter(|j| g.members.contains(&self.instances[*j].spec.name)).collect()
            }
            None => vec![i],
        };
        for j in group {
            self.enter(j, to, if j == i { why } else { "sync group" }, now, out);
        }
    }

    fn enter(&mut self, i: usize, to: State, why: &'static str, now: Instant, out: &mut Vec<(usize, Vec<u8>)>) {
        let inst = &mut self.instances[i];
        let from = inst.state;
        if from == to {
            return;
        }
        if from == State::Master {
            inst.garp_again_at = None;
            inst.garp_refresh_at = None;
            if to == State::Fault {
                inst.send_advert(0, out);
            }
        }
        inst.state = to;
        inst.counters.transitions += 1;
        match to {
            State::Master => {
                inst.counters.became_master += 1;
                inst.master_seen = Some(inst.source());
                inst.send_advert(inst.priority, out);
                inst.advert_at = now + ms(inst.spec.advert_cs);
                inst.send_garps(out);
                inst.garp_again_at = (inst.spec.garp_master_delay_s > 0)
                    .then(|| now + Duration::from_secs(u64::from(inst.spec.garp_master_delay_s)));
                inst.garp_refresh_at = (inst.spec.garp_master_refresh_s > 0)
                    .then(|| now + Duration::from_secs(u64::from(inst.spec.garp_master_refresh_s)));
            }
            State::Backup => {
                inst.master_cs = if inst.spec.version == 3 { inst.master_cs } else { inst.spec.advert_cs };
                inst.down_at = now + inst.master_down();
            }
            State::Fault => {}
        }
        let t = Transition { instance: inst.spec.name.clone(), from: Some(from), to, priority: inst.priority, why };
        self.transitions.push(t);
    }

    /// Transitions since last asked.
    pub fn take_transitions(&mut self) -> Vec<Transition> {
        std::mem::take(&mut self.transitions)
    }

    /// The shell commands a transition runs (keepalived's notify_* and `notify`
    /// with `INSTANCE|GROUP name state priority`), for the instance and its group.
    pub fn notify_commands(&self, t: &Transition) -> Vec<String> {
        let mut cmds = Vec::new();
        let Some(inst) = self.instances.iter().find(|i| i.spec.name == t.instance) else { return cmds };
        let s = &inst.spec;
        let specific = match t.to {
            State::Master => &s.notify_master,
            State::Backup => &s.notify_backup,
            State::Fault => &s.notify_fault,
        };
        cmds.extend(specific.iter().cloned());
        if let Some(n) = &s.notify {
            cmds.push(format!("{n} INSTANCE {} {} {}", s.name, t.to.name(), t.priority));
        }
        cmds
    }

    /// The `rvsadm --vrrp` listing (an RVS extension).
    pub fn listing(&self) -> String {
        let mut s = format!(
            "{:<16} {:<16} {:>4} {:>4} {:>3} {:<7} {:<15} {}\n",
            "Instance", "Interface", "VRID", "Prio", "Ver", "State", "Master", "Addresses"
        );
        for i in &self.instances {
            let addrs: Vec<String> = i.spec.addrs.iter().map(ToString::to_string).collect();
            s.push_str(&format!(
                "{:<16} {:<16} {:>4} {:>4} {:>3} {:<7} {:<15} {}\n",
                i.spec.name,
                i.spec.interface,
                i.spec.vrid,
                i.priority,
                i.spec.version,
                i.state.name(),
                i.master_seen.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
                addrs.join(",")
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: PortInfo = PortInfo::new(EthernetAddress([2, 0xd1, 0, 0, 0, 1]), Ipv4Addr::new(198, 18, 0, 2));
    const B: PortInfo = PortInfo::new(EthernetAddress([2, 0xd2, 0, 0, 0, 1]), Ipv4Addr::new(198, 18, 0, 3));
    const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10));

    pub(crate) fn spec(name: &str, prio: u8, want_master: bool) -> InstanceSpec {
        InstanceSpec {
            name: name.into(),
            want_master,
            interface: "p0".into(),
            port: 0,
            vrid: 51,
            priority: prio,
            advert_cs: 100,
            version: 2,
            nopreempt: false,
            preempt_delay_s: 0,
            auth_pass: Some(*b"secret\0\0"),
            addrs: vec![VIP],
            excluded: vec![],
            track_interface: vec![],
            track_service: vec![],
            track_script: vec![],
            garp_master_delay_s: 5,
            garp_master_repeat: 5,
            garp_master_refresh_s: 0,
            notify_master: None,
            notify_backup: None,
            notify_fault: None,
            notify: None,
        }
    }

    fn router(s: InstanceSpec, port: PortInfo, now: Instant) -> Vrrp {
        let mut v = Vrrp::default();
        v.configure(VrrpSpec { instances: vec![s], ..Default::default() }, &[port], now, &mut Vec::new());
        v
    }

    /// The adverts among `frames` as (src, advert).
    fn adverts(frames: &[(usize, Vec<u8>)]) -> Vec<Vec<u8>> {
        let vrrp = |f: &[u8]| f[12..14] == [8, 0] || (f[12..14] == [0x86, 0xdd] && f[14 + 6] == vrrp::PROTOCOL);
        frames.iter().filter(|(_, f)| vrrp(f)).map(|(_, f)| f[14..].to_vec()).collect()
    }

    const LINKS: [bool; 1] = [true];
    fn ok() -> Tracked<'static> {
        Tracked { links: &LINKS, quorum_lost: &[], scripts: &[] }
    }

    /// Runs two routers against each other for `secs` in steps of 10 ms.
    fn run(a: &mut Vrrp, b: &mut Vrrp, t: &mut Instant, secs: f64) {
        let end = *t + Duration::from_secs_f64(secs);
        while *t < end {
            *t += Duration::from_millis(10);
            let (mut oa, mut ob) = (Vec::new(), Vec::new());
            a.tick(*t, &ok(), &mut oa);
            b.tick(*t, &ok(), &mut ob);
            for ip in adverts(&oa) {
                b.receive(0, &ip, *t, &mut ob);
            }
            for ip in adverts(&ob) {
                a.receive(0, &ip, *t, &mut oa);
            }
        }
    }

    #[test]
    fn the_higher_priority_becomes_master_and_the_backup_takes_over_when_it_stops() {
        let mut t = Instant::now();
        let mut a = router(spec("VI_1", 150, true), A, t);
        let mut b = router(spec("VI_1", 100, false), B, t);
        run(&mut a, &mut b, &mut t, 5.0);
        assert_eq!((a.instances[0].state, b.instances[0].state), (State::Master, State::Backup));
        assert!(a.instances[0].owns() && !b.instances[0].owns());
        assert_eq!(b.instances[0].master_seen, Some(IpAddr::V4(A.primary)));
        // A clean stop: priority 0, and the backup is master within its skew.
        let mut out = Vec::new();
        a.shutdown(&mut out);
        let stop = t;
        for ip in adverts(&out) {
            b.receive(0, &ip, t, &mut Vec::new());
        }
        while b.instances[0].state != State::Master {
            t += Duration::from_millis(10);
            b.tick(t, &ok(), &mut Vec::new());
        }
        assert!(t - stop <= Duration::from_millis(700), "the skew of priority 100 is 0.61 s: {:?}", t - stop);
        assert_eq!(b.instances[0].counters.priority_zero_received, 1);
    }

    #[test]
    fn a_silent_master_is_replaced_after_the_master_down_interval() {
        let mut t = Instant::now();
        let mut a = router(spec("VI_1", 150, true), A, t);
        let mut b = router(spec("VI_1", 100, false), B, t);
        run(&mut a, &mut b, &mut t, 5.0);
        let killed = t;
        while b.instances[0].state != State::Master {
            t += Duration::from_millis(10);
            b.tick(t, &ok(), &mut Vec::new());
        }
        let gap = t - killed;
        assert!(gap > Duration::from_millis(2500) && gap <= Duration::from_millis(3700), "{gap:?}");
    }

    #[test]
    fn preemption_and_nopreempt() {
        for nopreempt in [false, true] {
            let mut t = Instant::now();
            // b alone becomes master; a (higher) arrives later.
            let mut b = router(spec("VI_1", 100, false), B, t);
            let mut idle = router(spec("VI_1", 150, false), A, t);
            idle.instances.clear();
            run(&mut idle, &mut b, &mut t, 5.0);
            assert_eq!(b.instances[0].state, State::Master);
            let mut a = router(InstanceSpec { nopreempt, ..spec("VI_1", 150, false) }, A, t);
            run(&mut a, &mut b, &mut t, 6.0);
            let want = if nopreempt { (State::Backup, State::Master) } else { (State::Master, State::Backup) };
            assert_eq!((a.instances[0].state, b.instances[0].state), want, "nopreempt {nopreempt}");
        }
    }

    #[test]
    fn version_3_learns_short_intervals() {
        let mut t = Instant::now();
        let v3 = |name, prio, m| InstanceSpec { version: 3, advert_cs: 10, auth_pass: None, ..spec(name, prio, m) };
        let mut a = router(v3("VI_1", 150, true), A, t);
        let mut b = router(v3("VI_1", 100, false), B, t);
        run(&mut a, &mut b, &mut t, 2.0);
        assert_eq!((a.instances[0].state, b.instances[0].state), (State::Master, State::Backup));
        let killed = t;
        while b.instances[0].state != State::Master {
            t += Duration::from_millis(10);
            b.tick(t, &ok(), &mut Vec::new());
        }
        assert!(t - killed < Duration::from_millis(500), "{:?}", t - killed);
    }

    #[test]
    fn each_bad_advert_moves_its_own_counter() {
        let t = Instant::now();
        let mut b = router(spec("VI_1", 100, false), B, t);
        let good = spec("VI_1", 150, true);
        let frame = |s: &InstanceSpec| {
            let inst = Instance::new(s.clone(), A, t);
            inst.advert(150).frame(A.mac, IpAddr::V4(A.primary))[14..].to_vec()
        };
        let mut cases: Vec<(Vec<u8>, Option<DropReason>)> = vec![(frame(&good), None)];
        cases.push((
            frame(&InstanceSpec { auth_pass: Some(*b"wrong\0\0\0"), ..good.clone() }),
            Some(DropReason::AuthMismatch),
        ));
        cases.push((frame(&InstanceSpec { advert_cs: 200, ..good.clone() }), Some(DropReason::IntervalMismatch)));
        cases.push((
            frame(&InstanceSpec { addrs: vec![Ipv4Addr::new(198, 18, 0, 11).into()], ..good.clone() }),
            Some(DropReason::AddressMismatch),
        ));
        cases.push((frame(&InstanceSpec { vrid: 52, ..good.clone() }), Some(DropReason::UnknownVrid)));
        cases.push((frame(&InstanceSpec { version: 3, ..good.clone() }), Some(DropReason::BadVersion)));
        let mut ttl = frame(&good);
        ttl[8] = 64;
        let mut p = crate::net::ipv4::Packet::new_unchecked(&mut ttl[..]);
        p.fill_checksum();
        cases.push((ttl, Some(DropReason::BadTtl)));
        let mut sum = frame(&good);
        sum[27] ^= 0x40;
        cases.push((sum, Some(DropReason::BadChecksum)));
        let whole = frame(&good);
        cases.push((whole[..whole.len() - 4].to_vec(), Some(DropReason::Truncated)));
        for (ip, reason) in cases {
            let before = (b.instances[0].counters.clone(), b.unattributed);
            b.receive(0, &ip, t, &mut Vec::new());
            let after = (&b.instances[0].counters, b.unattributed);
            match reason {
                None => assert_eq!(after.0.received, before.0.received + 1),
                Some(DropReason::UnknownVrid) => {
                    assert_eq!(
                        after.1[DropReason::UnknownVrid as usize],
                        before.1[DropReason::UnknownVrid as usize] + 1
                    )
                }
                Some(r) => assert_eq!(after.0.dropped[r as usize], before.0.dropped[r as usize] + 1, "{r:?}"),
            }
        }
        let c = &b.instances[0].counters;
        assert_eq!(c.received, 1);
        assert_eq!(c.dropped.iter().sum::<u64>(), 7);
    }

    #[test]
    fn a_sync_group_moves_together_and_a_fault_releases_the_addresses() {
        let t0 = Instant::now();
        let vip = spec("VIP_SIDE", 150, false);
        let dip = InstanceSpec {
            vrid: 52,
            port: 1,
            addrs: vec![Ipv4Addr::new(198, 19, 0, 1).into()],
            ..spec("DIP_SIDE", 150, false)
        };
        let mut v = Vrrp::default();
        let spec = VrrpSpec {
            instances: vec![InstanceSpec { track_interface: vec![1], ..vip }, dip],
            scripts: vec![],
            groups: vec![SyncGroupSpec {
                name: "G".into(),
                members: vec!["VIP_SIDE".into(), "DIP_SIDE".into()],
                notify_master: None,
                notify_backup: None,
                notify_fault: None,
                notify: None,
            }],
        };
        v.configure(spec, &[A, B], t0, &mut Vec::new());
        let mut out = Vec::new();
        let links = [true, true];
        v.tick(t0 + Duration::from_secs(4), &Tracked { links: &links, ..Default::default() }, &mut out);
        assert!(v.instances.iter().all(|i| i.state == State::Master));
        let down = [true, false];
        out.clear();
        v.tick(t0 + Duration::from_secs(5), &Tracked { links: &down, ..Default::default() }, &mut out);
        assert!(v.instances.iter().all(|i| i.state == State::Fault && !i.owns()));
        let zero: Vec<_> = adverts(&out).iter().map(|ip| Advert::parse(ip).unwrap().priority).collect();
        assert_eq!(zero, vec![0, 0], "each leaving master says priority 0");
        v.tick(t0 + Duration::from_secs(6), &Tracked { links: &links, ..Default::default() }, &mut out);
        assert!(v.instances.iter().all(|i| i.state == State::Backup));
    }

    #[test]
    fn a_reload_keeps_the_state_of_instances_that_stay_and_a_removed_master_says_goodbye() {
        let t0 = Instant::now();
        let mut v = router(spec("VI_1", 100, false), A, t0);
        v.tick(t0 + Duration::from_secs(4), &ok(), &mut Vec::new());
        assert_eq!(v.instances[0].state, State::Master);
        let sent = v.instances[0].counters.sent;
        // Priority changed: the same instance, still master, counters kept.
        let mut out = Vec::new();
        v.configure(VrrpSpec { instances: vec![spec("VI_1", 120, false)], ..Default::default() }, &[A], t0, &mut out);
        assert_eq!((v.instances[0].state, v.instances[0].counters.sent), (State::Master, sent));
        assert_eq!(v.instances[0].spec.priority, 120);
        assert!(out.is_empty());
        // Removed: priority 0 on its way out, nothing carried any more.
        v.configure(VrrpSpec::default(), &[A], t0, &mut out);
        let prios: Vec<u8> = adverts(&out).iter().map(|ip| Advert::parse(ip).unwrap().priority).collect();
        assert_eq!(prios, vec![0]);
        assert!(v.carried().is_empty());
    }

    #[test]
    fn scripts_move_the_priority_or_fault_the_instance() {
        let t0 = Instant::now();
        let script = |w| ScriptSpec {
            name: "chk".into(),
            script: "true".into(),
            interval_s: 1,
            timeout_s: 1,
            weight: w,
            rise: 1,
            fall: 1,
        };
        for (weight, good, want) in
            [(-30, false, (70, State::Backup)), (20, true, (120, State::Backup)), (0, false, (100, State::Fault))]
        {
            let mut v = Vrrp::default();
            let s = InstanceSpec { track_script: vec![("chk".into(), None)], ..spec("VI_1", 100, false) };
            v.configure(
                VrrpSpec { instances: vec![s], scripts: vec![script(weight)], groups: vec![] },
                &[A],
                t0,
                &mut Vec::new(),
            );
            let results = [("chk".to_string(), good)];
            v.tick(t0, &Tracked { links: &LINKS, quorum_lost: &[], scripts: &results }, &mut Vec::new());
            assert_eq!((v.instances[0].priority, v.instances[0].state), want, "weight {weight}, good {good}");
        }
    }

    #[test]
    fn notify_commands_are_keepalived_s() {
        let t0 = Instant::now();
        let s = InstanceSpec {
            notify_master: Some("/bin/m".into()),
            notify: Some("/bin/n".into()),
            ..spec("VI_1", 100, false)
        };
        let mut v = router(s, A, t0);
        let init = v.take_transitions();
        assert_eq!((init.len(), init[0].from, init[0].to), (1, None, State::Backup), "starting is entering BACKUP");
        assert_eq!(v.notify_commands(&init[0]), vec!["/bin/n INSTANCE VI_1 BACKUP 100".to_string()]);
        v.tick(t0 + Duration::from_secs(4), &ok(), &mut Vec::new());
        let t = v.take_transitions();
        assert_eq!(t.len(), 1);
        assert_eq!(v.notify_commands(&t[0]), vec!["/bin/m".to_string(), "/bin/n INSTANCE VI_1 MASTER 100".to_string()]);
    }

    #[test]
    fn becoming_master_sends_gratuitous_arps_now_and_after_the_delay() {
        let t0 = Instant::now();
        let mut v = router(spec("VI_1", 100, false), A, t0);
        let garps = |out: &[(usize, Vec<u8>)]| out.iter().filter(|(_, f)| f[12..14] == [8, 6]).count();
        let mut out = Vec::new();
        v.tick(t0 + Duration::from_secs(4), &ok(), &mut out);
        assert_eq!(v.instances[0].state, State::Master);
        assert_eq!(garps(&out), 5);
        out.clear();
        v.tick(t0 + Duration::from_secs(8), &ok(), &mut out);
        assert_eq!(garps(&out), 0);
        v.tick(t0 + Duration::from_secs(9), &ok(), &mut out);
        assert_eq!(garps(&out), 5, "garp_master_delay 5: again 5 s later");
    }

    #[test]
    fn an_ipv6_pair_speaks_version_3_from_link_local_and_announces_by_neighbour_advertisement() {
        let v6 = |s: &str| IpAddr::V6(s.parse().unwrap());
        let s6 = |prio, master| InstanceSpec {
            version: 3,
            auth_pass: None,
            addrs: vec![v6("2001:2::10")],
            excluded: vec![],
            ..spec("VI_6", prio, master)
        };
        let mut t = Instant::now();
        let mut a = router(s6(150, true), A, t);
        let mut b = router(s6(100, false), B, t);
        run(&mut a, &mut b, &mut t, 5.0);
        assert_eq!((a.instances[0].state, b.instances[0].state), (State::Master, State::Backup));
        assert_eq!(b.instances[0].master_seen, Some(IpAddr::V6(A.link_local)));
        assert_eq!(a.carried(), vec![(v6("2001:2::10"), 0, true)]);
        // The master's advertisement: IPv6 from its link-local address to ff02::12.
        let mut out = Vec::new();
        a.tick(t + Duration::from_secs(1), &ok(), &mut out);
        let (_, f) = out.iter().find(|(_, f)| f[12..14] == [0x86, 0xdd]).expect("an advertisement");
        assert_eq!(&f[..6], &vrrp::GROUP6_MAC.0);
        assert_eq!(&f[14 + 8..14 + 24], &A.link_local.octets());
        assert_eq!(Advert::parse(&f[14..]).unwrap().addrs, vec![v6("2001:2::10")]);
        // An IPv4 router of the same VRID is another router (RFC 5798 §7.3): its
        // advertisements are not this instance's.
        let v4 = Instance::new(spec("VI_1", 200, true), B, t).advert(200).frame(B.mac, IpAddr::V4(B.primary));
        a.receive(0, &v4[14..], t, &mut Vec::new());
        assert_eq!(a.instances[0].state, State::Master);
        assert_eq!(a.unattributed[DropReason::UnknownVrid as usize], 1);
        // The backup takes over when the master stops, announcing the address with
        // unsolicited neighbour advertisements (ICMPv6 136, override, to all nodes).
        let mut out = Vec::new();
        a.shutdown(&mut out);
        for ip in adverts(&out) {
            b.receive(0, &ip, t, &mut Vec::new());
        }
        let mut out = Vec::new();
        for _ in 0..100 {
            t += Duration::from_millis(10);
            b.tick(t, &ok(), &mut out);
        }
        assert_eq!(b.instances[0].state, State::Master);
        let nas: Vec<&Vec<u8>> =
            out.iter().map(|(_, f)| f).filter(|f| f[12..14] == [0x86, 0xdd] && f[14 + 6] == 58).collect();
        assert_eq!(nas.len(), 5, "garp_master_repeat 5");
        let (h, rest) = etherparse::Ipv6Header::from_slice(&nas[0][14..]).unwrap();
        assert_eq!((h.destination, h.hop_limit), ("ff02::1".parse::<Ipv6Addr>().unwrap().octets(), 255));
        assert_eq!((rest[0], rest[4] & 0x20), (136, 0x20), "an advertisement with override");
        assert_eq!(&rest[8..24], &"2001:2::10".parse::<Ipv6Addr>().unwrap().octets());
    }

    #[test]
    fn excluded_addresses_are_carried_and_announced_but_not_advertised() {
        let v6: IpAddr = "2001:2::10".parse().unwrap();
        let s = InstanceSpec { excluded: vec![v6], ..spec("VI_1", 100, false) };
        let t0 = Instant::now();
        let mut v = router(s, A, t0);
        assert_eq!(v.carried(), vec![(VIP, 0, false), (v6, 0, false)]);
        let mut out = Vec::new();
        v.tick(t0 + Duration::from_secs(4), &ok(), &mut out);
        assert_eq!(v.instances[0].state, State::Master);
        assert_eq!(v.carried(), vec![(VIP, 0, true), (v6, 0, true)]);
        let ads = adverts(&out);
        assert_eq!(ads.len(), 1);
        assert_eq!(Advert::parse(&ads[0]).unwrap().addrs, vec![VIP], "the excluded address is not advertised");
        let count = |ty: [u8; 2]| out.iter().filter(|(_, f)| f[12..14] == ty).count();
        assert_eq!((count([8, 6]), count([0x86, 0xdd])), (5, 5), "ARP for the IPv4 VIP, NA for the IPv6 one");
    }
}
