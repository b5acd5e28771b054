//! Virtual services: keyed by (protocol, VIP, port) or by firewall mark, with a
//! scheduler, optional persistence and the list of real servers.
//!
//! Rules as ipvsadm enforces them: port 0 (all ports) only with persistence; a
//! persistence netmask must be contiguous; a dest is unique by (address, port);
//! direct routing and tunnelling cannot map ports, so their real-server port must be
//! the virtual port (or 0, which means "the same").

use super::dest::{Dest, FwdMethod, Stats};
use super::sched::{self, SchedFlags, SchedInput, Scheduler};
use super::Protocol;
use core::fmt;
use hashbrown::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How a service is found (and named in ipvsadm's commands and on the control
/// socket, as `{"tcp": {"addr", "port"}}`, `{"udp": ...}` or `{"fwmark": {"mark"}}`, with
/// `"ipv6": true` for an IPv6 one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(into = "Named", from = "Named")]
pub enum ServiceKey {
    /// `-t` / `-u VIP:port`.
    Addr { proto: Protocol, addr: Ipv4Addr, port: u16 },
    /// `-f mark`.
    Fwmark(u32),
    /// `-t` / `-u [VIP6]:port`.
    Addr6 { proto: Protocol, addr: Ipv6Addr, port: u16 },
    /// `-f mark -6`: the mark of IPv6 packets (a mark names one service per family).
    Fwmark6(u32),
}

impl ServiceKey {
    /// The virtual IPv4 address (none for an IPv6 or firewall-mark service).
    pub fn addr(&self) -> Option<Ipv4Addr> {
        match *self {
            ServiceKey::Addr { addr, .. } => Some(addr),
            ServiceKey::Fwmark(_) | ServiceKey::Addr6 { .. } | ServiceKey::Fwmark6(_) => None,
        }
    }

    /// The virtual address of either family (none for a firewall-mark service).
    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            ServiceKey::Addr { addr, .. } => Some(IpAddr::V4(addr)),
            ServiceKey::Addr6 { addr, .. } => Some(IpAddr::V6(addr)),
            ServiceKey::Fwmark(_) | ServiceKey::Fwmark6(_) => None,
        }
    }

    /// A `-t`/`-u` key for `addr` of either family.
    pub fn of_ip(proto: Protocol, addr: IpAddr, port: u16) -> ServiceKey {
        match addr {
            IpAddr::V4(addr) => ServiceKey::Addr { proto, addr, port },
            IpAddr::V6(addr) => ServiceKey::Addr6 { proto, addr, port },
        }
    }

    /// The service's port (0 for a firewall-mark service or all ports).
    pub fn port(&self) -> u16 {
        match *self {
            ServiceKey::Addr { port, .. } | ServiceKey::Addr6 { port, .. } => port,
            ServiceKey::Fwmark(_) | ServiceKey::Fwmark6(_) => 0,
        }
    }

    /// Its addresses are IPv6.
    pub fn is_ipv6(&self) -> bool {
        matches!(self, ServiceKey::Addr6 { .. } | ServiceKey::Fwmark6(_))
    }

    /// The firewall mark of a `-f` service of either family.
    pub fn fwmark(&self) -> Option<u32> {
        match *self {
            ServiceKey::Fwmark(m) | ServiceKey::Fwmark6(m) => Some(m),
            _ => None,
        }
    }
}

/// A service key as the control socket writes it: the protocol is the variant.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Named {
    Tcp {
        addr: IpAddr,
        port: u16,
    },
    Udp {
        addr: IpAddr,
        port: u16,
    },
    Fwmark {
        mark: u32,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ipv6: bool,
    },
}

impl From<ServiceKey> for Named {
    fn from(k: ServiceKey) -> Named {
        match k {
            ServiceKey::Fwmark(mark) => Named::Fwmark { mark, ipv6: false },
            ServiceKey::Fwmark6(mark) => Named::Fwmark { mark, ipv6: true },
            k => {
                let (addr, port) = (k.ip().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), k.port());
                match k {
                    ServiceKey::Addr { proto: Protocol::Udp, .. } | ServiceKey::Addr6 { proto: Protocol::Udp, .. } => {
                        Named::Udp { addr, port }
                    }
                    _ => Named::Tcp { addr, port },
                }
            }
        }
    }
}

impl From<Named> for ServiceKey {
    fn from(n: Named) -> ServiceKey {
        match n {
            Named::Tcp { addr, port } => ServiceKey::of_ip(Protocol::Tcp, addr, port),
            Named::Udp { addr, port } => ServiceKey::of_ip(Protocol::Udp, addr, port),
            Named::Fwmark { mark, ipv6: false } => ServiceKey::Fwmark(mark),
            Named::Fwmark { mark, ipv6: true } => ServiceKey::Fwmark6(mark),
        }
    }
}

impl fmt::Display for ServiceKey {
    /// As ipvsadm's numeric listing: `TCP  198.18.0.10:80`, `FWM  1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr { proto, addr, port } => write!(f, "{proto}  {addr}:{port}"),
            ServiceKey::Addr6 { proto, addr, port } => write!(f, "{proto}  [{addr}]:{port}"),
            ServiceKey::Fwmark(m) => write!(f, "FWM  {m}"),
            ServiceKey::Fwmark6(m) => write!(f, "FWM  {m} IPv6"),
        }
    }
}

/// `-p timeout [-M netmask]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    pub timeout_s: u32,
    /// IPv4 client addresses are masked with this before the template lookup.
    pub netmask: Ipv4Addr,
    /// IPv6 ones keep this many leading bits (ipvsadm's `-M` of an IPv6 service
    /// is a prefix length).
    pub prefix6: u8,
}

impl Persistence {
    /// ipvsadm's default persistence timeout (`-p` without a value).
    pub const DEFAULT_TIMEOUT_S: u32 = 300;

    pub fn new(timeout_s: u32, netmask: Ipv4Addr) -> Result<Persistence, ServiceError> {
        if timeout_s == 0 {
            return Err(ServiceError::Invalid("persistence timeout must be at least 1 second".into()));
        }
        let m = u32::from(netmask);
        if m.leading_ones() + m.trailing_zeros() != 32 {
            return Err(ServiceError::Invalid(format!("netmask {netmask} is not contiguous")));
        }
        Ok(Persistence { timeout_s, netmask, prefix6: 128 })
    }

    /// Persistence for an IPv6 service: clients grouped by their first `prefix` bits.
    pub fn new6(timeout_s: u32, prefix: u8) -> Result<Persistence, ServiceError> {
        if prefix == 0 || prefix > 128 {
            return Err(ServiceError::Invalid(format!("prefix length {prefix} is not within 1..=128")));
        }
        let p = Persistence::new(timeout_s, Ipv4Addr::BROADCAST)?;
        Ok(Persistence { prefix6: prefix, ..p })
    }

    pub fn mask(&self, a: Ipv4Addr) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(a) & u32::from(self.netmask))
    }

    pub fn mask6(&self, a: Ipv6Addr) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(a) & crate::net::ipv6::prefix_mask(self.prefix6))
    }
}

/// Why a service operation was refused (the message is meant for the operator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceError {
    Invalid(String),
    DestExists(IpAddr, u16),
    NoSuchDest(IpAddr, u16),
    ServiceExists(ServiceKey),
    NoSuchService(ServiceKey),
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::Invalid(m) => f.write_str(m),
            ServiceError::DestExists(a, p) => write!(f, "destination {a}:{p} already exists"),
            ServiceError::NoSuchDest(a, p) => write!(f, "no such destination {a}:{p}"),
            ServiceError::ServiceExists(k) => write!(f, "service {k} already exists"),
            ServiceError::NoSuchService(k) => write!(f, "no such service {k}"),
        }
    }
}

impl std::error::Error for ServiceError {}

/// Marks a dest slot's location as one in the service's trash.
const TRASHED: usize = 1 << 31;

/// Dest ids that find their dest in one step: an id is a slot number (low 16 bits)
/// and the slot's generation (high 16), so the id of a dest that left finds nothing,
/// even once its slot serves another dest (until the generation wraps, 65 536 reuses
/// of that slot later).
#[derive(Debug, Clone, Default)]
struct DestSlots {
    /// Per slot: its generation, and the index in `dests` of the dest holding it.
    slots: Vec<(u16, Option<usize>)>,
}

impl DestSlots {
    /// An id for a dest at `index`: a free slot, or a new one.
    fn take(&mut self, index: usize) -> u32 {
        let slot = match self.slots.iter().position(|s| s.1.is_none()) {
            Some(free) => {
                let s = &mut self.slots[free];
                s.0 = s.0.wrapping_add(1);
                free
            }
            None => {
                self.slots.push((0, None));
                self.slots.len() - 1
            }
        };
        self.slots[slot].1 = Some(index);
        (u32::from(self.slots[slot].0) << 16) | u32::try_from(slot).unwrap_or(0xffff)
    }

    /// The id's dest is now at `index`.
    fn point(&mut self, id: u32, index: usize) {
        if let Some(s) = self.slots.get_mut(Self::slot(id)) {
            s.1 = Some(index);
        }
    }

    fn release(&mut self, id: u32) {
        if let Some(s) = self.slots.get_mut(Self::slot(id)) {
            s.1 = None;
        }
    }

    /// Where the id's dest is: its index in the list, or `TRASHED | i` for the
    /// trash's i-th.
    #[inline]
    fn locate(&self, id: u32) -> Option<usize> {
        let (generation, index) = *self.slots.get(Self::slot(id))?;
        if u32::from(generation) == id >> 16 {
            index
        } else {
            None
        }
    }

    /// The id's index in the list (none for a dest in the trash).
    #[inline]
    fn index(&self, id: u32) -> Option<usize> {
        self.locate(id).filter(|i| i & TRASHED == 0)
    }

    #[inline]
    fn slot(id: u32) -> usize {
        (id & 0xffff) as usize
    }
}

/// A virtual service.
#[derive(Debug)]
pub struct Service {
    pub key: ServiceKey,
    sched_name: &'static str,
    sched_flags: SchedFlags,
    scheduler: Box<dyn Scheduler>,
    pub persistence: Option<Persistence>,
    dests: Vec<Dest>,
    /// Stable ids of `dests` (connections keep the id, not the index).
    ids: Vec<u32>,
    /// Where each id points.
    slots: DestSlots,
    /// Dests taken out while connections or templates of this worker still held
    /// them (the kernel's dest trash): those connections still find them (to count
    /// their traffic and release them; their packets are dropped, the dest being
    /// unavailable), and adding the same address and port back restores the dest
    /// with its counts. A dest leaves the trash when its last connection does.
    trash: Vec<(u32, Dest)>,
    /// Each dest's traffic counters, by its id's slot (a connection's packet
    /// counts there in one step from its binding); a slot's are zero while no
    /// dest holds it. A dest back from the trash has its counters again.
    counts: Vec<Stats>,
    /// The service's counters are `base` plus all of `counts`: `base` keeps what
    /// dests that left for good carried, less what the trash held when the
    /// counters were last zeroed (each counter modulo 2^64).
    base: Stats,
}

impl Service {
    pub fn new(
        key: ServiceKey,
        sched: &str,
        flags: SchedFlags,
        persistence: Option<Persistence>,
    ) -> Result<Service, ServiceError> {
        if let ServiceKey::Addr { port: 0, .. } | ServiceKey::Addr6 { port: 0, .. } = key {
            if persistence.is_none() {
                return Err(ServiceError::Invalid(
                    "port 0 (all ports) is only allowed for a persistent service (-p)".into(),
                ));
            }
        }
        if let ServiceKey::Fwmark(0) | ServiceKey::Fwmark6(0) = key {
            return Err(ServiceError::Invalid("firewall mark 0 is not a mark".into()));
        }
        let scheduler = sched::new(sched, flags, &[]).map_err(ServiceError::Invalid)?;
        Ok(Service {
            key,
            sched_name: scheduler.name(),
            sched_flags: flags,
            scheduler,
            persistence,
            dests: Vec::new(),
            ids: Vec::new(),
            slots: DestSlots::default(),
            trash: Vec::new(),
            counts: Vec::new(),
            base: Stats::default(),
        })
    }

    pub fn scheduler_name(&self) -> &'static str {
        self.sched_name
    }

    pub fn scheduler_flags(&self) -> SchedFlags {
        self.sched_flags
    }

    /// Replaces the scheduler (`ipvsadm -E -s`).
    pub fn set_scheduler(&mut self, name: &str, flags: SchedFlags) -> Result<(), ServiceError> {
        self.scheduler = sched::new(name, flags, &self.dests).map_err(ServiceError::Invalid)?;
        self.sched_name = self.scheduler.name();
        self.sched_flags = flags;
        Ok(())
    }

    pub fn dests(&self) -> &[Dest] {
        &self.dests
    }

    /// The port a dest of this service must use, and the normalised port to store.
    fn check_dest_port(&self, fwd: FwdMethod, port: u16) -> Result<u16, ServiceError> {
        let vport = self.key.port();
        if fwd == FwdMethod::Masq {
            return Ok(if vport != 0 && port == 0 { vport } else { port });
        }
        if port == 0 || port == vport {
            return Ok(vport);
        }
        Err(ServiceError::Invalid(format!(
            "{} cannot map ports: real server port {port} differs from the virtual port {}; use masquerading (-m) to map ports",
            match fwd {
                FwdMethod::Tunnel => "tunnelling (-i)",
                FwdMethod::Local => "a local real server",
                _ => "direct routing (-g)",
            },
            if vport == 0 { "(any)".to_string() } else { vport.to_string() },
        )))
    }

    /// `ipvsadm -a`.
    pub fn add_dest(&mut self, mut d: Dest) -> Result<u32, ServiceError> {
        // A service's real servers are of its family (a firewall mark's: IPv4).
        if d.addr.is_ipv6() != self.key.is_ipv6() {
            return Err(ServiceError::Invalid(format!(
                "real server {} is not of the virtual service's address family",
                d.addr
            )));
        }
        d.port = self.check_dest_port(d.fwd, d.port)?;
        if self.dests.iter().any(|x| x.addr == d.addr && x.port == d.port) {
            return Err(ServiceError::DestExists(d.addr, d.port));
        }
        if self.dests.len() + self.trash.len() >= usize::from(u16::MAX) {
            return Err(ServiceError::Invalid("too many destinations".into()));
        }
        // The same dest back from the trash: its counts, counters and id (its
        // connections find it again), with what was asked now.
        let restored = self.trash.iter().position(|(_, x)| x.addr == d.addr && x.port == d.port).map(|j| {
            let (id, mut back) = self.untrash(j);
            back.fwd = d.fwd;
            back.set_weight(d.weight());
            d = back.with_thresholds(d.u_threshold, d.l_threshold);
            self.slots.point(id, 0);
            id
        });
        // The kernel puts a new dest at the head of the service's list (`list_add`):
        // schedulers walk it from there, and `--nosort` lists it so.
        let id = restored.unwrap_or_else(|| self.slots.take(0));
        d.nat_sums = self.nat_sums_to(&d);
        let slot = DestSlots::slot(id);
        if self.counts.len() <= slot {
            self.counts.resize(slot + 1, Stats::default());
        }
        self.dests.insert(0, d);
        self.ids.insert(0, id);
        for (j, &id) in self.ids.iter().enumerate().skip(1) {
            self.slots.point(id, j);
        }
        self.scheduler.dest_added(0);
        self.scheduler.update(&self.dests);
        Ok(id)
    }

    fn position(&self, addr: IpAddr, port: u16) -> Option<usize> {
        let port = match self.key {
            ServiceKey::Addr { port: vport, .. } | ServiceKey::Addr6 { port: vport, .. } if port == 0 => vport,
            _ => port,
        };
        self.dests.iter().position(|d| d.addr == addr && d.port == port)
    }

    /// `ipvsadm -e`: new forwarding method, weight and thresholds; the counters stay.
    pub fn edit_dest(
        &mut self,
        addr: impl Into<IpAddr>,
        port: u16,
        fwd: FwdMethod,
        weight: u32,
        upper: u32,
        lower: u32,
    ) -> Result<(), ServiceError> {
        let addr = addr.into();
        let i = self.position(addr, port).ok_or(ServiceError::NoSuchDest(addr, port))?;
        let p = self.dests[i].port;
        self.check_dest_port(fwd, p)?;
        let d = &mut self.dests[i];
        d.fwd = fwd;
        d.set_weight(weight);
        *d = d.clone().with_thresholds(upper, lower);
        self.scheduler.update(&self.dests);
        Ok(())
    }

    /// `ipvsadm -d`. A dest this worker's connections or templates still hold goes
    /// to the trash (they find it there; their packets are dropped as the kernel
    /// drops those of an unavailable dest), any other is forgotten.
    pub fn del_dest(&mut self, addr: impl Into<IpAddr>, port: u16) -> Result<Dest, ServiceError> {
        let addr = addr.into();
        let i = self.position(addr, port).ok_or(ServiceError::NoSuchDest(addr, port))?;
        let id = self.ids.remove(i);
        let d = self.dests.remove(i);
        if d.held() {
            self.slots.point(id, TRASHED | self.trash.len());
            self.trash.push((id, d.clone()));
        } else {
            self.release(id);
        }
        // The dests after it moved down one place.
        for (j, &id) in self.ids.iter().enumerate().skip(i) {
            self.slots.point(id, j);
        }
        self.scheduler.dest_removed(i);
        self.scheduler.update(&self.dests);
        Ok(d)
    }

    /// The dest at index `i` of the list (what a scheduler picks), if there is one.
    #[inline]
    pub fn dest_at_mut(&mut self, i: usize) -> Option<&mut Dest> {
        self.dests.get_mut(i)
    }

    pub(crate) fn dests_mut_by_index(&mut self, i: usize) -> &mut Dest {
        &mut self.dests[i]
    }

    /// Zeroes the service's and its dests' counters (`ipvsadm -Z`); a dest in the
    /// trash keeps its own (as the kernel's does, for when it comes back).
    pub fn zero_stats(&mut self) {
        for &id in &self.ids {
            if let Some(c) = self.counts.get_mut(DestSlots::slot(id)) {
                *c = Stats::default();
            }
        }
        let trashed = self.trash.iter().filter_map(|&(id, _)| self.counts.get(DestSlots::slot(id)));
        self.base = trashed.fold(Stats::default(), |b, c| b.wrapping_sub(c));
    }

    /// How many dest counters `stats` sums.
    pub fn counter_slots(&self) -> usize {
        self.counts.len()
    }

    /// The service's traffic counters (`ipvsadm --stats`).
    pub fn stats(&self) -> Stats {
        self.counts.iter().fold(self.base, |s, c| s.wrapping_add(c))
    }

    /// The traffic counters of the dest at index `i` of the list.
    pub fn dest_stats(&self, i: usize) -> Stats {
        self.ids.get(i).and_then(|&id| self.counts.get(DestSlots::slot(id))).copied().unwrap_or_default()
    }

    /// Counts a packet of a connection bound to dest `id` (in the list or in the
    /// trash): one step from the id.
    #[inline]
    pub fn count_packet(&mut self, id: u32, inbound: bool, len: u32) {
        if let Some(c) = self.counts.get_mut(DestSlots::slot(id)) {
            c.packet(inbound, len);
        }
    }

    /// Counts a new connection to dest `id`, and its first packet (client to real
    /// server, `len` bytes).
    #[inline]
    pub fn count_new(&mut self, id: u32, len: u32) {
        if let Some(c) = self.counts.get_mut(DestSlots::slot(id)) {
            c.conns += 1;
            c.packet(true, len);
        }
    }

    /// Lets dest `id`'s slot go: its counters stay in the service's.
    fn release(&mut self, id: u32) {
        if let Some(c) = self.counts.get_mut(DestSlots::slot(id)) {
            self.base = self.base.wrapping_add(c);
            *c = Stats::default();
        }
        self.slots.release(id);
    }

    /// The index of the dest with stable id `id`, if it is still there.
    #[inline]
    pub fn dest_index(&self, id: u32) -> Option<usize> {
        self.slots.index(id)
    }

    pub fn dest_id(&self, index: usize) -> u32 {
        self.ids[index]
    }

    /// The dest with id `id`, in the list or in the trash.
    #[inline]
    pub fn dest_by_id_mut(&mut self, id: u32) -> Option<&mut Dest> {
        let i = self.slots.locate(id)?;
        if i & TRASHED == 0 {
            self.dests.get_mut(i)
        } else {
            self.trash.get_mut(i & !TRASHED).map(|(_, d)| d)
        }
    }

    /// The dest with id `id`, in the list or in the trash.
    pub fn dest_by_id(&self, id: u32) -> Option<&Dest> {
        let i = self.slots.locate(id)?;
        if i & TRASHED == 0 {
            self.dests.get(i)
        } else {
            self.trash.get(i & !TRASHED).map(|(_, d)| d)
        }
    }

    /// The dest with id `id` was taken out of the service (it is in the trash).
    #[inline]
    pub fn is_trashed(&self, id: u32) -> bool {
        self.slots.locate(id).is_some_and(|i| i & TRASHED != 0)
    }

    /// Dests in the trash.
    pub fn trashed(&self) -> usize {
        self.trash.len()
    }

    /// The trashed dest `id` lets go once nothing holds it any more; true when it
    /// left the trash.
    pub fn forget_if_idle(&mut self, id: u32) -> bool {
        let Some(i) = self.slots.locate(id).filter(|i| i & TRASHED != 0) else { return false };
        let j = i & !TRASHED;
        if self.trash.get(j).is_none_or(|(_, d)| d.held()) {
            return false;
        }
        let (id, _) = self.untrash(j);
        self.release(id);
        true
    }

    /// Takes the trash's `j`-th out (the last one moves to its place).
    fn untrash(&mut self, j: usize) -> (u32, Dest) {
        let out = self.trash.swap_remove(j);
        if let Some(&(moved, _)) = self.trash.get(j) {
            self.slots.point(moved, TRASHED | j);
        }
        out
    }

    /// What NAT's rewrite towards `d` does to the checksums, where every
    /// connection to it has the same virtual address and port and the same
    /// real server port: an IPv4 service with a port (whose dests have one:
    /// `check_dest_port`); None elsewhere.
    fn nat_sums_to(&self, d: &Dest) -> Option<[u16; 2]> {
        match (self.key, d.addr) {
            (ServiceKey::Addr { addr, port, .. }, IpAddr::V4(rs)) if port != 0 => {
                Some(crate::net::checksum::nat_sums(addr, rs, port, d.port))
            }
            _ => None,
        }
    }

    /// Runs the scheduler.
    pub fn schedule(&mut self, input: &SchedInput) -> Option<usize> {
        self.scheduler.schedule(&self.dests, input)
    }

    /// The port the real server receives for a packet to `vport`.
    pub fn dest_port(&self, dest: &Dest, vport: u16) -> u16 {
        if dest.port == 0 {
            vport
        } else {
            dest.port
        }
    }

    pub fn is_fwmark(&self) -> bool {
        self.key.fwmark().is_some()
    }

    /// The virtual port (0 for fwmark and all-ports services).
    pub fn vport(&self) -> u16 {
        self.key.port()
    }
}

/// An IPv4 service key packed in a word: protocol, address, port. Never 0 (the
/// protocol number is in it).
#[inline(always)]
fn addr4_key(proto: Protocol, addr: Ipv4Addr, port: u16) -> u64 {
    u64::from(proto.number()) << 48 | u64::from(u32::from(addr)) << 16 | u64::from(port)
}

/// The IPv4 (proto, VIP, port) services by packed key (`addr4_key`): an
/// open-addressed array of (key, id), linear probing, at most half full (0 marks a
/// free place, which no key is). A new connection's packet finds its service in a
/// multiply and, mostly, one compare. Written only by configuration (which may grow
/// it); a removal rebuilds it.
#[derive(Debug, Default)]
struct AddrIndex {
    places: Vec<(u64, u32)>,
    len: usize,
}

impl AddrIndex {
    #[inline(always)]
    fn home(key: u64, mask: usize) -> usize {
        usize::try_from(key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40).unwrap_or(0) & mask
    }

    #[inline]
    fn get(&self, key: u64) -> Option<u32> {
        let places = &self.places[..];
        // A power of two long (or empty): masked places are in bounds.
        let mask = places.len().wrapping_sub(1);
        if places.is_empty() {
            return None;
        }
        let mut i = Self::home(key, mask);
        loop {
            let (k, id) = places[i & mask];
            if k == key {
                return Some(id);
            }
            if k == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    fn insert(&mut self, key: u64, id: u32) {
        if (self.len + 1) * 2 > self.places.len() {
            let entries: Vec<(u64, u32)> = self.places.iter().copied().filter(|&(k, _)| k != 0).collect();
            self.places = vec![(0, 0); ((self.len + 1) * 2).next_power_of_two().max(8)];
            self.len = 0;
            for (k, v) in entries {
                self.put(k, v);
            }
        }
        self.put(key, id);
    }

    /// Enters `key` (replacing its id if it is there); the room is there.
    fn put(&mut self, key: u64, id: u32) {
        let mask = self.places.len() - 1;
        let mut i = Self::home(key, mask);
        while self.places[i].0 != 0 && self.places[i].0 != key {
            i = (i + 1) & mask;
        }
        if self.places[i].0 == 0 {
            self.len += 1;
        }
        self.places[i] = (key, id);
    }

    fn remove(&mut self, key: u64) {
        let entries: Vec<(u64, u32)> = self.places.iter().copied().filter(|&(k, _)| k != 0 && k != key).collect();
        self.places.iter_mut().for_each(|p| *p = (0, 0));
        self.len = 0;
        for (k, v) in entries {
            self.put(k, v);
        }
    }
}

/// All services of the appliance, found as the kernel finds them.
#[derive(Debug, Default)]
pub struct ServiceTable {
    services: Vec<Option<Service>>,
    by_key: HashMap<ServiceKey, u32>,
    /// The IPv4 (proto, VIP, port) services again, under their packed key
    /// (`addr4_key`): what a new connection's packet looks up, rather than hashing
    /// the key enum field by field.
    addr4: AddrIndex,
    /// Dests in the services' trashes, all told (0: no connection can be to an
    /// unavailable dest, which the packet path asks first).
    trashed: usize,
    /// Each virtual address's number of services: "is it a VIP" in one lookup (the
    /// data plane asks it of packets to the appliance's own addresses).
    vips: HashMap<IpAddr, u32>,
}

impl ServiceTable {
    pub fn new() -> ServiceTable {
        ServiceTable::default()
    }

    /// `ipvsadm -A`.
    pub fn add(&mut self, s: Service) -> Result<u32, ServiceError> {
        if self.by_key.contains_key(&s.key) {
            return Err(ServiceError::ServiceExists(s.key));
        }
        // Ids are never reused: connections of a deleted service keep its id.
        self.services.push(None);
        let id = self.services.len() - 1;
        let id32 = u32::try_from(id).map_err(|_| ServiceError::Invalid("too many services".into()))?;
        self.by_key.insert(s.key, id32);
        if let ServiceKey::Addr { proto, addr, port } = s.key {
            self.addr4.insert(addr4_key(proto, addr, port), id32);
        }
        if let Some(a) = s.key.ip() {
            *self.vips.entry(a).or_insert(0) += 1;
        }
        self.services[id] = Some(s);
        Ok(id32)
    }

    /// `ipvsadm -D`.
    pub fn remove(&mut self, key: &ServiceKey) -> Result<Service, ServiceError> {
        let id = self.by_key.remove(key).ok_or(ServiceError::NoSuchService(*key))?;
        if let ServiceKey::Addr { proto, addr, port } = *key {
            self.addr4.remove(addr4_key(proto, addr, port));
        }
        if let Some(a) = key.ip() {
            if let Some(n) = self.vips.get_mut(&a) {
                *n -= 1;
                if *n == 0 {
                    self.vips.remove(&a);
                }
            }
        }
        let s = self.services[id as usize].take().ok_or(ServiceError::NoSuchService(*key))?;
        self.trashed -= s.trashed();
        Ok(s)
    }

    /// `ipvsadm -a` (a dest in the service's trash comes back with its counts).
    pub fn add_dest(&mut self, key: &ServiceKey, d: Dest) -> Result<u32, ServiceError> {
        let s = self.by_key_mut(key).ok_or(ServiceError::NoSuchService(*key))?;
        let before = s.trashed();
        let id = s.add_dest(d)?;
        let after = s.trashed();
        self.trashed = self.trashed + after - before;
        Ok(id)
    }

    /// `ipvsadm -d` (a dest connections still hold goes to the service's trash).
    pub fn del_dest(&mut self, key: &ServiceKey, addr: IpAddr, port: u16) -> Result<Dest, ServiceError> {
        let s = self.by_key_mut(key).ok_or(ServiceError::NoSuchService(*key))?;
        let before = s.trashed();
        let d = s.del_dest(addr, port)?;
        let after = s.trashed();
        self.trashed = self.trashed + after - before;
        Ok(d)
    }

    /// Dests in the services' trashes.
    #[inline]
    pub fn trashed(&self) -> usize {
        self.trashed
    }

    /// The dest `binding` names was taken out of its service.
    #[inline]
    pub fn unavailable(&self, service: u32, dest: u32) -> bool {
        self.trashed != 0 && self.get(service).is_some_and(|s| s.is_trashed(dest))
    }

    /// A connection or template of dest `dest` (service `service`) ended: the dest's
    /// count goes down (PersistConn for a template, ActiveConn or InActConn), and a
    /// trashed dest nothing holds any more is forgotten.
    pub fn unbind(&mut self, service: u32, dest: u32, template: bool, active: bool) {
        let trashed = self.trashed;
        let Some(s) = self.get_mut(service) else { return };
        if let Some(d) = s.dest_by_id_mut(dest) {
            if template {
                d.unbind_template();
            } else {
                d.unbind_conn(active);
            }
        }
        if trashed != 0 && s.forget_if_idle(dest) {
            self.trashed -= 1;
        }
    }

    /// One past the highest service id (ids are never reused: deleted services
    /// leave empty slots).
    pub fn slots(&self) -> u32 {
        u32::try_from(self.services.len()).unwrap_or(u32::MAX)
    }

    pub fn get(&self, id: u32) -> Option<&Service> {
        self.services.get(id as usize).and_then(Option::as_ref)
    }

    #[inline]
    pub fn get_mut(&mut self, id: u32) -> Option<&mut Service> {
        self.services.get_mut(id as usize).and_then(Option::as_mut)
    }

    /// Every service, in no particular order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Service> {
        self.services.iter_mut().flatten()
    }

    pub fn id_of(&self, key: &ServiceKey) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    pub fn by_key_mut(&mut self, key: &ServiceKey) -> Option<&mut Service> {
        let id = self.id_of(key)?;
        self.get_mut(id)
    }

    /// The kernel's `ip_vs_service_find`: a firewall-mark service when the packet
    /// carries a mark that has one, else (proto, VIP, port), else the all-ports
    /// service (proto, VIP, 0).
    #[inline]
    pub fn find(&self, fwmark: u32, proto: Protocol, addr: Ipv4Addr, port: u16) -> Option<u32> {
        if fwmark != 0 {
            if let Some(&id) = self.by_key.get(&ServiceKey::Fwmark(fwmark)) {
                return Some(id);
            }
        }
        self.addr4.get(addr4_key(proto, addr, port)).or_else(|| self.addr4.get(addr4_key(proto, addr, 0)))
    }

    /// The service under exactly `key`.
    #[inline]
    pub fn find_key(&self, key: &ServiceKey) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    /// True when some service uses `addr` as its VIP (the appliance answers ARP for it).
    pub fn has_vip(&self, addr: Ipv4Addr) -> bool {
        self.vips.contains_key(&IpAddr::V4(addr))
    }

    /// True when some service uses `addr` as its IPv6 VIP.
    pub fn has_vip6(&self, addr: Ipv6Addr) -> bool {
        self.vips.contains_key(&IpAddr::V6(addr))
    }

    /// Services in key order (listings).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Service)> {
        let mut ids: Vec<(ServiceKey, u32)> = self.by_key.iter().map(|(k, v)| (*k, *v)).collect();
        ids.sort();
        ids.into_iter().filter_map(move |(_, id)| self.get(id).map(|s| (id, s)))
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_index_finds_what_it_holds_through_growth_and_removal() {
        let key = |i: u32| addr4_key(Protocol::Tcp, Ipv4Addr::from(0xc612_0000 + i / 7), u16::try_from(i % 7).unwrap());
        let mut ix = AddrIndex::default();
        assert_eq!(ix.get(key(1)), None, "empty");
        for i in 0..300 {
            ix.insert(key(i), i);
            assert!(ix.places.len() >= 2 * ix.len, "at most half full");
        }
        ix.insert(key(5), 1005);
        assert_eq!(ix.len, 300, "a key entered again is replaced");
        for i in (0..300).step_by(3) {
            ix.remove(key(i));
        }
        for i in 0..300 {
            let want = (i % 3 != 0).then_some(if i == 5 { 1005 } else { i });
            assert_eq!(ix.get(key(i)), want, "key {i}");
        }
        assert_eq!(ix.get(addr4_key(Protocol::Udp, Ipv4Addr::from(0xc612_0000), 1)), None, "another protocol");
        assert_eq!(ix.len, 200);
    }

    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const RS1: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);

    fn tcp(port: u16) -> ServiceKey {
        ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port }
    }

    #[test]
    fn port_zero_needs_persistence() {
        let e = Service::new(tcp(0), "rr", SchedFlags::default(), None).unwrap_err();
        assert!(e.to_string().contains("only allowed for a persistent service"), "{e}");
        let p = Persistence::new(300, Ipv4Addr::BROADCAST).unwrap();
        assert!(Service::new(tcp(0), "rr", SchedFlags::default(), Some(p)).is_ok());
    }

    #[test]
    fn persistence_netmask_and_timeout() {
        assert!(Persistence::new(300, Ipv4Addr::new(255, 255, 255, 0)).is_ok());
        assert!(Persistence::new(300, Ipv4Addr::new(255, 0, 255, 0))
            .unwrap_err()
            .to_string()
            .contains("not contiguous"));
        assert!(Persistence::new(0, Ipv4Addr::BROADCAST).is_err());
        let p = Persistence::new(1, Ipv4Addr::new(255, 255, 255, 0)).unwrap();
        assert_eq!(p.mask(Ipv4Addr::new(198, 18, 0, 77)), Ipv4Addr::new(198, 18, 0, 0));
    }

    #[test]
    fn dr_and_tun_cannot_map_ports() {
        let mut s = Service::new(tcp(80), "rr", SchedFlags::default(), None).unwrap();
        for fwd in [FwdMethod::Route, FwdMethod::Tunnel] {
            let e = s.add_dest(Dest::new(RS1, 8080, fwd, 1)).unwrap_err();
            assert!(e.to_string().contains("cannot map ports"), "{e}");
        }
        s.add_dest(Dest::new(RS1, 8080, FwdMethod::Masq, 1)).unwrap();
        s.add_dest(Dest::new(Ipv4Addr::new(198, 18, 1, 12), 0, FwdMethod::Route, 1)).unwrap();
        assert_eq!(s.dests()[0].port, 80, "0 means the virtual port");
        assert_eq!(
            s.add_dest(Dest::new(RS1, 8080, FwdMethod::Masq, 1)),
            Err(ServiceError::DestExists(std::net::IpAddr::from(RS1), 8080))
        );
        let e = s.edit_dest(RS1, 8080, FwdMethod::Route, 1, 0, 0).unwrap_err();
        assert!(e.to_string().contains("cannot map ports"));
    }

    #[test]
    fn dest_ids_are_stable_across_deletes() {
        let mut s = Service::new(tcp(80), "rr", SchedFlags::default(), None).unwrap();
        let a = s.add_dest(Dest::new(RS1, 80, FwdMethod::Masq, 1)).unwrap();
        let b = s.add_dest(Dest::new(Ipv4Addr::new(198, 18, 1, 12), 80, FwdMethod::Masq, 1)).unwrap();
        s.del_dest(RS1, 80).unwrap();
        assert_eq!(s.dest_index(a), None);
        assert_eq!(s.dest_index(b), Some(0));
        // A new dest takes the freed slot; the old id still finds nothing.
        let c = s.add_dest(Dest::new(Ipv4Addr::new(198, 18, 1, 13), 80, FwdMethod::Masq, 1)).unwrap();
        assert_eq!((c & 0xffff, s.dest_index(c)), (a & 0xffff, Some(0)));
        assert_eq!((s.dest_index(a), s.dest_index(b)), (None, Some(1)));
        assert_eq!(s.dest_id(0), c);
        assert_eq!(s.del_dest(RS1, 80).unwrap_err(), ServiceError::NoSuchDest(std::net::IpAddr::from(RS1), 80));
    }

    /// The kernel's `list_add`: after `-a RS1; -a RS2` the list is RS2, RS1, so rr's
    /// first connection goes to RS2 and wlc 3:1 (RS1 3, RS2 1) picks RS2, RS1, RS1, RS1.
    #[test]
    fn a_new_dest_goes_to_the_head_of_the_list_as_in_the_kernel() {
        let rs2 = Ipv4Addr::new(198, 18, 1, 12);
        let input = SchedInput {
            src: Ipv4Addr::new(198, 18, 0, 100).into(),
            src_port: 40000,
            dst: VIP.into(),
            dst_port: 80,
            now_ms: 0,
        };
        let picks = |sched: &str, weights: (u32, u32), n: usize| {
            let mut s = Service::new(tcp(80), sched, SchedFlags::default(), None).unwrap();
            s.add_dest(Dest::new(RS1, 80, FwdMethod::Masq, weights.0)).unwrap();
            s.add_dest(Dest::new(rs2, 80, FwdMethod::Masq, weights.1)).unwrap();
            (0..n)
                .map(|_| {
                    let i = s.schedule(&input).unwrap();
                    let d = s.dests_mut_by_index(i);
                    d.bind_conn();
                    d.conn_activity(true);
                    if d.addr == IpAddr::from(RS1) {
                        1
                    } else {
                        2
                    }
                })
                .collect::<Vec<u8>>()
        };
        assert_eq!(picks("rr", (1, 1), 4), [2, 1, 2, 1]);
        assert_eq!(picks("wlc", (3, 1), 4), [2, 1, 1, 1]);
        let mut s = Service::new(tcp(80), "rr", SchedFlags::default(), None).unwrap();
        let a = s.add_dest(Dest::new(RS1, 80, FwdMethod::Masq, 1)).unwrap();
        let b = s.add_dest(Dest::new(rs2, 80, FwdMethod::Masq, 1)).unwrap();
        assert_eq!(s.dests().iter().map(|d| d.addr).collect::<Vec<_>>(), [IpAddr::from(rs2), RS1.into()]);
        assert_eq!((s.dest_index(a), s.dest_index(b)), (Some(1), Some(0)), "ids follow their dests");
    }

    #[test]
    fn lookup_order_fwmark_exact_then_port_zero() {
        let mut t = ServiceTable::new();
        let p = Persistence::new(300, Ipv4Addr::BROADCAST).unwrap();
        let exact = t.add(Service::new(tcp(80), "rr", SchedFlags::default(), None).unwrap()).unwrap();
        let all = t.add(Service::new(tcp(0), "rr", SchedFlags::default(), Some(p)).unwrap()).unwrap();
        let fwm = t.add(Service::new(ServiceKey::Fwmark(1), "rr", SchedFlags::default(), Some(p)).unwrap()).unwrap();
        assert_eq!(t.find(0, Protocol::Tcp, VIP, 80), Some(exact));
        assert_eq!(t.find(0, Protocol::Tcp, VIP, 443), Some(all));
        assert_eq!(t.find(1, Protocol::Tcp, VIP, 80), Some(fwm));
        assert_eq!(t.find(2, Protocol::Tcp, VIP, 80), Some(exact), "a mark without a service");
        assert_eq!(t.find(0, Protocol::Udp, VIP, 80), None);
        assert!(t.add(Service::new(tcp(80), "wlc", SchedFlags::default(), None).unwrap()).is_err());
        assert!(t.has_vip(VIP));
        t.remove(&tcp(80)).unwrap();
        assert_eq!(t.find(0, Protocol::Tcp, VIP, 80), Some(all));
        assert!(t.has_vip(VIP), "the all-ports service is still on it");
        assert!(!t.has_vip6(Ipv6Addr::LOCALHOST));
        t.remove(&tcp(0)).unwrap();
        assert!(!t.has_vip(VIP), "no service left on it");
        assert_eq!(tcp(80).to_string(), "TCP  198.18.0.10:80");
        assert_eq!(ServiceKey::Fwmark(21).to_string(), "FWM  21");
    }
}
