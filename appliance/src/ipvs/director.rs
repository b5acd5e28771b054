//! One worker's LVS state and the decisions the kernel's `ip_vs_in` makes: find the
//! connection of a packet, or schedule a new one (through a persistence template
//! when the service is persistent), step the TCP state machine, keep ActiveConn /
//! InActConn and PersistConn right, and expire entries.
//!
//! Per-lcore: each worker owns a `Director` (its own connection table and dest
//! counters); packets of one connection always reach the same worker (steering), so
//! nothing here is shared.

use super::addr::Addr;
use super::conn::{self, Binding, Conn, ConnState, Direction, Endpoints, Opening, TcpState, Timeouts, NONE};
use super::conntab::{ConnTable, Found, Tuple};
use super::persist;
use super::sched::SchedInput;
use super::service::{Service, ServiceKey, ServiceTable};
use super::Protocol;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The parts of a packet the director decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInfo<A = Ipv4Addr> {
    pub proto: Protocol,
    pub src: A,
    pub sport: u16,
    pub dst: A,
    pub dport: u16,
    /// TCP flags (0 for UDP).
    pub tcp_flags: u8,
    /// Firewall mark from the classifier (0: none).
    pub fwmark: u32,
    /// IP length, for the traffic counters.
    pub len: u32,
}

impl<A: Addr> PacketInfo<A> {
    pub fn tuple(&self) -> Tuple<A> {
        Tuple { proto: self.proto.number(), saddr: self.src, sport: self.sport, daddr: self.dst, dport: self.dport }
    }
}

/// Why no connection could be made for a packet to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No virtual service matches.
    NoService,
    /// TCP that is not a SYN and matches no connection (no sloppy TCP).
    NotSyn,
    /// The scheduler found no available dest.
    NoDest,
    /// The connection table is full.
    TableFull,
    /// The packet's connection goes to a real server no longer in its service (the
    /// kernel's dest without IP_VS_DEST_F_AVAILABLE).
    DestUnavailable,
}

/// The connection a packet belongs to, and how it travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub slot: u32,
    pub dir: Direction,
    /// The connection was created by this packet.
    pub new: bool,
}

/// What the established path found, in one word: the connection's slot and the
/// packet's direction as (slot << 1 | output) + 1, never 0 (so an
/// `Option<Taken>` is a word too, and none of it is packed or unpacked across
/// the call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken(std::num::NonZeroU32);

impl Taken {
    #[inline(always)]
    fn of(slot: u32, output: bool) -> Option<Taken> {
        std::num::NonZeroU32::new(((slot << 1) | u32::from(output)).wrapping_add(1)).map(Taken)
    }

    /// The hit: an existing connection (not new), in its direction.
    #[inline(always)]
    pub fn hit(self) -> Hit {
        let v = self.0.get() - 1;
        Hit { slot: v >> 1, dir: if v & 1 == 1 { Direction::Output } else { Direction::Input }, new: false }
    }
}

/// A connection's real server, as a client's packet of it finds it.
enum DestCheck {
    Available,
    Drop,
    Reschedule,
}

/// Entries (and wheel slots) looked at to find a half-open connection to evict.
const EVICT_BUDGET: usize = 256;
/// Seconds a half-open TCP connection (SYN_RECV) lives while the table is under
/// pressure, instead of its 60 s (the idea of IPVS's secure_tcp).
pub const PRESSURE_SYN_RECV_S: u32 = 3;

pub struct Director {
    pub services: ServiceTable,
    pub conns: ConnTable,
    /// IPv6 connections and templates: a table of their own (two lines an entry),
    /// as large as the IPv4 one.
    pub conns6: ConnTable<Ipv6Addr>,
    pub timeouts: Timeouts,
    /// Half-open connections evicted to make room (a single-writer count).
    pub evicted: u64,
    /// Firewall-mark rules (the iptables mangle rules of the tutorials).
    pub classifier: std::sync::Arc<super::fwmark::Classifier>,
    /// Connection sync, when on: when to tell the peers about a connection, and
    /// the slots due to be told (drained by the worker once per burst).
    pub sync: Option<super::sync::Rules>,
    pub sync_due: Vec<u32>,
    /// Slots that could not be queued (the queue was full).
    pub sync_missed: u64,
    /// The kernel's `net.ipv4.vs.sloppy_tcp`: a TCP packet that is no SYN (nor
    /// RST) and has no connection is scheduled like a SYN, its connection entering
    /// the state the packet gives (an ACK: ESTABLISHED). Directors behind ECMP take
    /// over each other's flows this way.
    pub sloppy_tcp: bool,
    /// The kernel's `expire_nodest_conn` and `expire_quiescent_template`.
    pub expire_nodest_conn: bool,
    pub expire_quiescent_template: bool,
}

impl Director {
    pub fn new(services: ServiceTable, capacity: usize, seed: u64) -> Director {
        Director {
            services,
            conns: ConnTable::new(capacity, seed),
            // Touched as IPv6 traffic comes: none, no memory.
            conns6: ConnTable::reserved(capacity, seed.rotate_left(17)),
            timeouts: Timeouts::default(),
            evicted: 0,
            classifier: Default::default(),
            sync: None,
            sync_due: Vec::new(),
            sync_missed: 0,
            sloppy_tcp: false,
            expire_nodest_conn: false,
            expire_quiescent_template: false,
        }
    }

    /// Turns connection sync on (`Some`) or off; the queue of due slots is made here,
    /// once, so the packet path never allocates.
    pub fn set_sync(&mut self, rules: Option<super::sync::Rules>) {
        if rules.is_some() && self.sync_due.capacity() < super::sync::DUE_MAX {
            self.sync_due = Vec::with_capacity(super::sync::DUE_MAX);
        }
        self.sync_due.clear();
        self.sync = rules;
    }

    /// Finds or creates the connection of `p` and applies the packet to it (state
    /// machine, counters, timer). `now_s` is the worker clock in seconds, `now_ms`
    /// the same in milliseconds (for schedulers).
    pub fn packet<A: Family>(&mut self, p: &PacketInfo<A>, now_s: u32, now_ms: u64) -> Result<Hit, Refused> {
        let h = A::conns(self).hash(&p.tuple());
        self.packet_hashed(p, h, now_s, now_ms)
    }

    /// As `packet`, with the hash of `p`'s tuple already known (`ConnTable::hash`).
    #[inline]
    pub fn packet_hashed<A: Family>(
        &mut self,
        p: &PacketInfo<A>,
        h: u64,
        now_s: u32,
        now_ms: u64,
    ) -> Result<Hit, Refused> {
        // The connection the packet has, or None: a new one is opened for it.
        let found = match A::conns(self).lookup_hashed(&p.tuple(), h) {
            Some(Found::Input(slot)) if self.reused(slot, p) => {
                // The kernel's conn_reuse_mode 1: a fresh SYN on the tuple of a
                // connection in TIME_WAIT ends that connection (it is freed by the
                // wheel, its counters released then) and is scheduled anew.
                self.end_now::<A>(slot, now_s);
                None
            }
            Some(Found::Input(slot)) if self.services.trashed() != 0 || self.expire_nodest_conn => {
                match self.dest_check::<A>(slot, p) {
                    DestCheck::Available => Some(Hit { slot, dir: Direction::Input, new: false }),
                    // The kernel drops it and leaves the timer alone.
                    DestCheck::Drop => return Err(Refused::DestUnavailable),
                    DestCheck::Reschedule => {
                        self.end_now::<A>(slot, now_s);
                        None
                    }
                }
            }
            Some(Found::Input(slot)) => Some(Hit { slot, dir: Direction::Input, new: false }),
            Some(Found::Output(slot)) => Some(Hit { slot, dir: Direction::Output, new: false }),
            None => None,
        };
        let Some(hit) = found else {
            return self.open(p, h, now_s, now_ms);
        };
        self.apply::<A>(hit, p.tcp_flags, p.len, now_s);
        Ok(hit)
    }

    /// A new connection for `p` (`schedule`), the packet applied to it: its state
    /// and counters as the connection is made, then what `apply` does besides.
    #[inline(always)]
    fn open<A: Family>(&mut self, p: &PacketInfo<A>, h: u64, now_s: u32, now_ms: u64) -> Result<Hit, Refused> {
        let (slot, applied) = self.schedule(p, h, now_s, now_ms)?;
        let hit = Hit { slot, dir: Direction::Input, new: true };
        if !applied {
            self.apply::<A>(hit, p.tcp_flags, p.len, now_s);
            return Ok(hit);
        }
        let Parts { conns, sync, sync_due, sync_missed, .. } = A::parts(self);
        // (Looked up only while sync runs.)
        if let Some(rules) = sync.as_ref().filter(|_| A::SYNCED) {
            if let Some(c) = conns.found_mut(slot) {
                sync_packet(c, slot | A::TAG, Some(rules), sync_due, sync_missed);
            }
        }
        Ok(hit)
    }

    /// The real server of connection `slot` was taken out of its service.
    fn dest_gone<A: Family>(&self, slot: u32) -> bool {
        A::conns(self).get(slot).is_some_and(|c| self.services.unavailable(c.binding.service, c.binding.dest))
    }

    /// What the kernel's `ip_vs_in` does with a client's packet of connection
    /// `slot` when its real server is not available: taken out of the service, its
    /// packets are dropped, or with `expire_nodest_conn` the connection ends and the
    /// packet is scheduled as a new one (which only a SYN survives); with
    /// `expire_nodest_conn` a SYN on a connection to a quiesced real server (weight
    /// 0) that no template controls is scheduled anew too.
    fn dest_check<A: Family>(&self, slot: u32, p: &PacketInfo<A>) -> DestCheck {
        let Some(c) = A::conns(self).get(slot) else { return DestCheck::Available };
        let b = c.binding;
        if self.services.unavailable(b.service, b.dest) {
            return if self.expire_nodest_conn { DestCheck::Reschedule } else { DestCheck::Drop };
        }
        let syn = p.proto == Protocol::Tcp && p.tcp_flags & crate::net::tcp::flags::SYN != 0;
        let quiesced =
            || self.services.get(b.service).and_then(|s| s.dest_by_id(b.dest)).is_some_and(|d| d.weight() == 0);
        if self.expire_nodest_conn && syn && c.control == NONE && quiesced() {
            return DestCheck::Reschedule;
        }
        DestCheck::Available
    }

    /// The established path, for a packet that is no TCP SYN (a SYN may reuse a
    /// TIME_WAIT connection: `packet` decides; the caller has looked at its
    /// flags already): applies it to the connection its tuple `t` (hash `h`)
    /// already has, and returns it; None when there is none. The same outcome as
    /// `packet` for the packets it takes, without building a `PacketInfo` or
    /// reaching the scheduler. `hint`: where the lookup starts
    /// (`ConnTable::lookup_hinted`; 0: none).
    #[inline]
    pub fn established<A: Family>(
        &mut self,
        t: &Tuple<A>,
        h: u64,
        hint: u32,
        tcp_flags: u8,
        len: u32,
        now_s: u32,
    ) -> Option<Taken> {
        let hit = self.lookup_established(t, h, hint)?;
        self.apply::<A>(hit, tcp_flags, len, now_s);
        Taken::of(hit.slot, hit.dir == Direction::Output)
    }

    /// As `established`, giving the connection itself (what its packet is sent
    /// by is read from it where it is needed) and whether the packet is its
    /// reply.
    #[inline]
    pub fn established_conn<A: Family>(
        &mut self,
        t: &Tuple<A>,
        h: u64,
        hint: u32,
        tcp_flags: u8,
        len: u32,
        now_s: u32,
    ) -> Option<(&Conn<A>, bool)> {
        let hit = self.lookup_established(t, h, hint)?;
        Some((self.apply::<A>(hit, tcp_flags, len, now_s)?, hit.dir == Direction::Output))
    }

    /// The connection `established` takes the packet with tuple `t` (hash `h`)
    /// to, if any.
    #[inline(always)]
    fn lookup_established<A: Family>(&self, t: &Tuple<A>, h: u64, hint: u32) -> Option<Hit> {
        Some(match A::conns(self).lookup_hinted(t, h, hint)? {
            // Its real server left its service: `packet` decides.
            Found::Input(slot) if self.services.trashed() != 0 && self.dest_gone::<A>(slot) => return None,
            Found::Input(slot) => Hit { slot, dir: Direction::Input, new: false },
            Found::Output(slot) => Hit { slot, dir: Direction::Output, new: false },
        })
    }

    /// Ends a connection now (`ip_vs_conn_expire_now`): out of the index, its
    /// counters and template control released; the wheel frees the entry later.
    pub(super) fn end_now<A: Family>(&mut self, slot: u32, now_s: u32) {
        let Some(c) = A::conns(self).get(slot).copied() else { return };
        let Parts { services, conns, .. } = A::parts(self);
        unbind(services, conns, &c);
        conns.retire(slot);
        if let Some(e) = conns.get_mut(slot) {
            e.flags |= conn::flags::DEAD;
            e.expires_s = now_s;
            e.timeout_s = 1;
        }
    }

    /// A SYN (without ACK) on the input tuple of a TCP connection in TIME_WAIT.
    #[inline]
    fn reused<A: Family>(&self, slot: u32, p: &PacketInfo<A>) -> bool {
        use crate::net::tcp::flags::{ACK, RST, SYN};
        p.proto == Protocol::Tcp
            && p.tcp_flags & (SYN | ACK | RST) == SYN
            && A::conns(self).get(slot).is_some_and(|c| c.state == ConnState::Tcp(TcpState::TimeWait))
    }

    /// Finds the connection only (ICMP errors, replies): no scheduling.
    pub fn lookup<A: Family>(&self, t: &Tuple<A>) -> Option<Hit> {
        match A::conns(self).lookup(t)? {
            Found::Input(slot) => Some(Hit { slot, dir: Direction::Input, new: false }),
            Found::Output(slot) => Some(Hit { slot, dir: Direction::Output, new: false }),
        }
    }

    #[inline]
    pub fn conn<A: Family>(&self, slot: u32) -> Option<&Conn<A>> {
        A::conns(self).get(slot)
    }

    /// The connection a `Hit` names (live: just found or made), without looking
    /// again.
    #[inline]
    pub fn hit_conn<A: Family>(&self, hit: Hit) -> Option<&Conn<A>> {
        A::conns(self).found(hit.slot)
    }

    /// Applies a packet of connection `hit` to it (state, timer, sync, counters);
    /// returns the connection.
    #[inline]
    fn apply<A: Family>(&mut self, hit: Hit, tcp_flags: u8, len: u32, now_s: u32) -> Option<&Conn<A>> {
        let Parts { services, conns, timeouts, sync, sync_due, sync_missed } = A::parts(self);
        // Found in the index or just inserted: live.
        let (c, fill) = conns.found_mut_with_fill(hit.slot)?;
        let moved = c.on_packet(hit.dir, tcp_flags, timeouts);
        // The timer: only `expires_s` moves (the wheel re-files lazily).
        c.expires_s = conn::deadline(now_s, c.timeout_s);
        let inbound = hit.dir != Direction::Output;
        sync_packet(c, hit.slot | A::TAG, sync.as_ref().filter(|_| inbound && A::SYNCED), sync_due, sync_missed);
        let half_open = c.state == ConnState::Tcp(TcpState::SynRecv);
        let b = c.binding;
        if let Some(svc) = services.get_mut(b.service) {
            svc.count_packet(b.dest, inbound, len);
            if let Some(now_active) = moved {
                if let Some(d) = svc.dest_by_id_mut(b.dest) {
                    d.conn_activity(now_active);
                }
            }
        }
        // Only a half-open connection looks at the table's fill (not every
        // packet): under pressure its timeout is cut short.
        if half_open && fill.under_pressure() {
            cut_short(c, now_s);
        }
        Some(c)
    }

    /// Zeroes the traffic counters of one service or of all (`ipvsadm -Z`).
    pub fn zero_stats(&mut self, key: Option<&super::service::ServiceKey>) {
        match key {
            Some(k) => {
                if let Some(s) = self.services.by_key_mut(k) {
                    s.zero_stats();
                }
            }
            // In place, nothing gathered or sorted: a worker answers it between bursts.
            None => self.services.values_mut().for_each(|s| s.zero_stats()),
        }
    }

    /// A new connection for `p`: service, persistence template or scheduler, then
    /// the entry (bound inactive to its dest). `h` is the hash of `p`'s tuple.
    fn schedule<A: Family>(
        &mut self,
        p: &PacketInfo<A>,
        h: u64,
        now_s: u32,
        now_ms: u64,
    ) -> Result<(u32, bool), Refused> {
        let svc_id = A::find_service(&self.services, p).ok_or(Refused::NoService)?;
        if p.proto == Protocol::Tcp {
            use crate::net::tcp::flags::{RST, SYN};
            if p.tcp_flags & RST != 0 || (p.tcp_flags & SYN == 0 && !self.sloppy_tcp) {
                return Err(Refused::NotSyn);
            }
        }
        // Room for the connection (and its template, with persistence): a full
        // table evicts half-open connections first. (Two free entries are
        // room enough either way.)
        if A::conns(self).capacity() - A::conns(self).len() < 2 {
            let room = 1 + usize::from(self.services.get(svc_id).is_some_and(|s| s.persistence.is_some()));
            while A::conns(self).capacity() - A::conns(self).len() < room && self.evict_half_open::<A>() {}
        }
        let quiescent = self.expire_quiescent_template;
        let Parts { services, conns, timeouts, .. } = A::parts(self);
        // The service and the dest are found once; the rest works on them.
        let svc = services.get_mut(svc_id).ok_or(Refused::NoService)?;
        let (di, template) = pick_dest(svc, svc_id, conns, p, quiescent, now_s, now_ms)?;
        let dest_id = svc.dest_id(di);
        let d = svc.dests().get(di).ok_or(Refused::NoDest)?;
        // The kernel's rule: without persistence the dest's port if it has one; with
        // persistence only a packet to the service's own port is mapped.
        let mapped = d.port != 0 && (template == NONE || p.dport == svc.vport());
        let dport = if mapped { d.port } else { p.dport };
        let (daddr, fwd, nat_sums) = (A::of(d.addr).ok_or(Refused::NoDest)?, d.fwd, d.nat_sums);
        let ep = Endpoints {
            proto: p.proto.number(),
            caddr: p.src,
            cport: p.sport,
            vaddr: p.dst,
            vport: p.dport,
            daddr,
            dport,
        };
        let binding = Binding { service: svc_id, dest: dest_id };
        // The connection's input tuple is the packet's: its hash is `h`. The
        // lookup that came here missed it, and nothing since has entered the
        // index but a template (whose key a client port 0 can share).
        if template != NONE {
            if let Some(s) = conns.find_input(&p.tuple(), h) {
                return Ok((s, false));
            }
        }
        // The packet that makes the connection is applied to it as it is made:
        // its state (and timeout, from which the insert arms the timer: a
        // half-open one's short at once in a table under pressure, as it is
        // with this one in), its dest counted active or inactive as it ends up.
        let syn_recv_max_s = if conns.under_pressure_with_one_more() { PRESSURE_SYN_RECV_S } else { u32::MAX };
        let opening = Opening { ep, fwd, binding, tcp_flags: p.tcp_flags, control: template, syn_recv_max_s, nat_sums };
        let Ok((slot, active)) = conns.open(opening, timeouts, h, now_s) else {
            return Err(Refused::TableFull);
        };
        svc.count_new(dest_id, p.len);
        if let Some(d) = svc.dest_at_mut(di) {
            d.bind_conn_as(active);
        }
        if template != NONE {
            conns.refresh(template, now_s);
            if let Some(t) = conns.get_mut(template) {
                t.n_control += 1;
            }
        }
        Ok((slot, true))
    }

    /// A full table makes room by evicting a half-open TCP connection (SYN_RECV,
    /// controlling no other): the soonest due among the first `EVICT_BUDGET`
    /// entries looked at. Established connections and templates are never evicted.
    /// Its dest counter and template control are released as on expiry.
    fn evict_half_open<A: Family>(&mut self) -> bool {
        let pick = |c: &Conn<A>| c.state == ConnState::Tcp(TcpState::SynRecv) && c.flags & conn::flags::DEAD == 0;
        let Parts { services, conns, .. } = A::parts(self);
        let Some(c) = conns.evict(EVICT_BUDGET, pick) else { return false };
        unbind(services, conns, &c);
        self.evicted += 1;
        true
    }

    /// Expires what is due up to `now_s` (at most `budget` entries looked at, in
    /// each family's table), releasing dest counters and template controls.
    /// Returns how many were freed.
    pub fn expire(&mut self, now_s: u32, budget: usize) -> usize {
        self.expire_in::<Ipv4Addr>(now_s, budget) + self.expire_in::<Ipv6Addr>(now_s, budget)
    }

    fn expire_in<A: Family>(&mut self, now_s: u32, budget: usize) -> usize {
        let Parts { services, conns, .. } = A::parts(self);
        conns.expire(now_s, budget, |table, slot| {
            let Some(c) = table.get(slot).copied() else { return true };
            if c.flags & conn::flags::DEAD != 0 {
                return true;
            }
            // A template lives on while connections it controls do.
            if c.is_template() && c.n_control > 0 {
                return false;
            }
            unbind(services, table, &c);
            true
        })
    }

    /// Removes every connection and template (`ipvsadm -C` / flush), releasing counters.
    pub fn flush(&mut self) {
        let services = &mut self.services;
        let unbound = |services: &mut ServiceTable, binding: Binding, template: bool, active: bool, dead: bool| {
            if !dead {
                unbind_dest(services, binding, template, active);
            }
        };
        self.conns
            .flush(|c| unbound(services, c.binding, c.is_template(), c.is_active(), c.flags & conn::flags::DEAD != 0));
        self.conns6
            .flush(|c| unbound(services, c.binding, c.is_template(), c.is_active(), c.flags & conn::flags::DEAD != 0));
    }
}

/// As the kernel's ip_vs_in: a packet from the client (`rules` the sync's, when
/// it runs and counts this family) counts toward its connection's sync, and may
/// make it due (`tagged`: its slot with the family's tag).
#[inline(always)]
fn sync_packet<A: Addr>(
    c: &mut Conn<A>,
    tagged: u32,
    rules: Option<&super::sync::Rules>,
    sync_due: &mut Vec<u32>,
    sync_missed: &mut u64,
) {
    if let Some(rules) = rules {
        c.in_pkts = c.in_pkts.wrapping_add(1);
        if rules.wanted(c) {
            if sync_due.len() < sync_due.capacity() {
                sync_due.push(tagged);
            } else {
                *sync_missed += 1;
            }
        }
    }
}

/// A half-open connection's timeout cut short (the table is under pressure).
/// (Out of line: the packets of established connections keep the registers.)
#[inline(never)]
fn cut_short<A: Addr>(c: &mut Conn<A>, now_s: u32) {
    c.timeout_s = c.timeout_s.min(PRESSURE_SYN_RECV_S);
    c.expires_s = conn::deadline(now_s, c.timeout_s);
}

/// Releases what a connection or template holds (the kernel's `ip_vs_unbind_dest`
/// and its control's count): its dest's counter, its template's control.
fn unbind<A: Addr>(services: &mut ServiceTable, conns: &mut ConnTable<A>, c: &Conn<A>) {
    unbind_dest(services, c.binding, c.is_template(), c.is_active());
    if c.control != NONE {
        if let Some(t) = conns.get_mut(c.control) {
            t.n_control = t.n_control.saturating_sub(1);
        }
    }
}

/// Releases the dest's count of `c`: PersistConn for a template, ActiveConn or
/// InActConn for a connection.
fn unbind_dest(services: &mut ServiceTable, binding: Binding, template: bool, active: bool) {
    services.unbind(binding.service, binding.dest, template, active);
}

/// Marks an IPv6 table's slot where both families' slots travel together (slots
/// fit 31 bits: `ConnTable::new`).
pub const SLOT_V6: u32 = 1 << 31;

/// The parts of a director a family's packet path borrows at once.
pub struct Parts<'a, A: Addr> {
    pub services: &'a mut ServiceTable,
    pub conns: &'a mut ConnTable<A>,
    pub timeouts: &'a Timeouts,
    pub sync: &'a Option<super::sync::Rules>,
    pub sync_due: &'a mut Vec<u32>,
    pub sync_missed: &'a mut u64,
}

/// The dest (its index in the service's list) a new connection of service
/// `svc_id` goes to, and the template that controls it (NONE without
/// persistence): the scheduler's choice, or with persistence the live template's
/// dest (a new template when there is none).
fn pick_dest<A: Family>(
    svc: &mut Service,
    svc_id: u32,
    conns: &mut ConnTable<A>,
    p: &PacketInfo<A>,
    quiescent: bool,
    now_s: u32,
    now_ms: u64,
) -> Result<(usize, u32), Refused> {
    let input = SchedInput { src: p.src.ip(), src_port: p.sport, dst: p.dst.ip(), dst_port: p.dport, now_ms };
    let Some(tkey) = persist::template_key(svc, p.proto.number(), p.src, p.dst, p.dport) else {
        let i = svc.schedule(&input).ok_or(Refused::NoDest)?;
        return Ok((i, NONE));
    };
    if let Some(t) = conns.lookup_template(&tkey) {
        // A template is good while its dest is still in the service (and, with
        // `expire_quiescent_template`, not quiesced).
        let good = |id: u32| {
            let i = svc.dest_index(id)?;
            (!(quiescent && svc.dests().get(i).is_some_and(|d| d.weight() == 0))).then_some(i)
        };
        match conns.get(t).and_then(|c| good(c.binding.dest)) {
            Some(i) => return Ok((i, t)),
            None => conns.retire(t),
        }
    }
    let i = svc.schedule(&input).ok_or(Refused::NoDest)?;
    let t = persist::template(svc, svc_id, tkey, i, p.dport).ok_or(Refused::NoDest)?;
    let slot = conns.insert(t, false, now_s).map_err(|_| Refused::TableFull)?;
    if let Some(d) = svc.dest_at_mut(i) {
        d.bind_template();
    }
    Ok((i, slot))
}

/// An address family the director keeps connections of: which table is its, and
/// how its packets find their service.
pub trait Family: Addr {
    /// Connection sync carries this family's entries.
    const SYNCED: bool;
    /// What marks a slot of this family's table where both families' slots mix
    /// (the sync queue): 0, or `SLOT_V6`.
    const TAG: u32;
    fn conns(d: &Director) -> &ConnTable<Self>;
    fn conns_mut(d: &mut Director) -> &mut ConnTable<Self>;
    fn parts(d: &mut Director) -> Parts<'_, Self>;
    /// The service a new connection of `p` belongs to: its mark's, else (proto,
    /// VIP, port), else (proto, VIP, 0).
    fn find_service(services: &ServiceTable, p: &PacketInfo<Self>) -> Option<u32>;
}

impl Family for Ipv4Addr {
    const SYNCED: bool = true;
    const TAG: u32 = 0;
    #[inline(always)]
    fn conns(d: &Director) -> &ConnTable<Self> {
        &d.conns
    }
    #[inline(always)]
    fn conns_mut(d: &mut Director) -> &mut ConnTable<Self> {
        &mut d.conns
    }
    #[inline(always)]
    fn parts(d: &mut Director) -> Parts<'_, Self> {
        Parts {
            services: &mut d.services,
            conns: &mut d.conns,
            timeouts: &d.timeouts,
            sync: &d.sync,
            sync_due: &mut d.sync_due,
            sync_missed: &mut d.sync_missed,
        }
    }
    #[inline(always)]
    fn find_service(services: &ServiceTable, p: &PacketInfo<Self>) -> Option<u32> {
        services.find(p.fwmark, p.proto, p.dst, p.dport)
    }
}

impl Family for Ipv6Addr {
    /// In the sync protocol's 72-byte entries.
    const SYNCED: bool = true;
    const TAG: u32 = SLOT_V6;
    fn conns(d: &Director) -> &ConnTable<Self> {
        &d.conns6
    }
    fn conns_mut(d: &mut Director) -> &mut ConnTable<Self> {
        &mut d.conns6
    }
    fn parts(d: &mut Director) -> Parts<'_, Self> {
        Parts {
            services: &mut d.services,
            conns: &mut d.conns6,
            timeouts: &d.timeouts,
            sync: &d.sync,
            sync_due: &mut d.sync_due,
            sync_missed: &mut d.sync_missed,
        }
    }
    fn find_service(services: &ServiceTable, p: &PacketInfo<Self>) -> Option<u32> {
        if p.fwmark != 0 {
            if let Some(id) = services.find_key(&ServiceKey::Fwmark6(p.fwmark)) {
                return Some(id);
            }
        }
        services
            .find_key(&ServiceKey::Addr6 { proto: p.proto, addr: p.dst, port: p.dport })
            .or_else(|| services.find_key(&ServiceKey::Addr6 { proto: p.proto, addr: p.dst, port: 0 }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::dest::FwdMethod;
    use crate::ipvs::dest::{Dest, Stats};
    use crate::ipvs::sched::SchedFlags;
    use crate::ipvs::service::{Persistence, Service, ServiceKey};
    use crate::net::tcp::flags::*;

    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
    const RS: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 1, 11), Ipv4Addr::new(198, 18, 1, 12)];

    #[test]
    fn what_the_established_path_takes_names_its_slot_and_direction() {
        // Up to the largest slot a table has ((1 << 31) - 2 entries).
        for slot in [0, 1, 12_345, (1 << 31) - 3] {
            for (output, dir) in [(false, Direction::Input), (true, Direction::Output)] {
                let taken = Taken::of(slot, output).expect("never zero");
                assert_eq!(taken.hit(), Hit { slot, dir, new: false }, "{slot} {output}");
            }
        }
    }

    fn director(key: ServiceKey, sched: &str, pers: Option<Persistence>, fwd: FwdMethod, rs_port: u16) -> Director {
        let mut s = Service::new(key, sched, SchedFlags::default(), pers).unwrap();
        // Added last first: the list (newest at the head) reads in array order.
        for a in RS.into_iter().rev() {
            s.add_dest(Dest::new(a, rs_port, fwd, 1)).unwrap();
        }
        let mut t = ServiceTable::new();
        t.add(s).unwrap();
        Director::new(t, 1024, 42)
    }

    /// A persistent NAT service on port 80 (template timeout `timeout` s) and the
    /// client's first connection: the director, that connection's slot and its
    /// real server.
    fn persistent_with_one_conn(timeout: u32) -> (Director, u32, Ipv4Addr) {
        let p = Persistence::new(timeout, Ipv4Addr::BROADCAST).unwrap();
        let mut d = director(tcp80(), "rr", Some(p), FwdMethod::Masq, 80);
        let h = d.packet(&syn(CLIENT, 1000, 80), 0, 0).unwrap();
        let rs = d.conn(h.slot).unwrap().ep.daddr;
        (d, h.slot, rs)
    }

    fn tcp80() -> ServiceKey {
        ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port: 80 }
    }

    fn syn(src: Ipv4Addr, sport: u16, dport: u16) -> PacketInfo {
        PacketInfo { proto: Protocol::Tcp, src, sport, dst: VIP, dport, tcp_flags: SYN, fwmark: 0, len: 60 }
    }

    fn dests(d: &Director) -> Vec<(u32, u32, u32)> {
        d.services.get(0).unwrap().dests().iter().map(|x| (x.active, x.inactive, x.persist)).collect()
    }

    /// Drives a whole NAT TCP connection: SYN, SYN-ACK, ACK, FIN both ways.
    fn full_nat_conn(d: &mut Director, sport: u16, now: u32) -> Ipv4Addr {
        let h = d.packet(&syn(CLIENT, sport, 80), now, 0).unwrap();
        let c = *d.conn(h.slot).unwrap();
        let reply = |f| PacketInfo {
            proto: Protocol::Tcp,
            src: c.ep.daddr,
            sport: c.ep.dport,
            dst: CLIENT,
            dport: sport,
            tcp_flags: f,
            fwmark: 0,
            len: 52,
        };
        let req = |f| PacketInfo { tcp_flags: f, ..syn(CLIENT, sport, 80) };
        assert_eq!(d.packet(&reply(SYN | ACK), now, 0).unwrap().dir, Direction::Output);
        d.packet(&req(ACK), now, 0).unwrap();
        d.packet(&req(FIN | ACK), now, 0).unwrap();
        d.packet(&reply(FIN | ACK), now, 0).unwrap();
        d.packet(&req(ACK), now, 0).unwrap();
        c.ep.daddr
    }

    #[test]
    fn six_curls_leave_three_time_wait_connections_per_server() {
        // The one-NIC NAT tutorial: rr, six requests, `Masq 1 0 3` for each server.
        let mut d = director(tcp80(), "rr", None, FwdMethod::Masq, 80);
        let order: Vec<_> = (0..6).map(|i| full_nat_conn(&mut d, 40000 + i, 10)).collect();
        assert_eq!(order, vec![RS[0], RS[1], RS[0], RS[1], RS[0], RS[1]]);
        assert_eq!(dests(&d), vec![(0, 3, 0), (0, 3, 0)]);
        assert!(d.conns.iter().all(|(_, c)| c.state.name() == "TIME_WAIT"));
        // TIME_WAIT lasts 120 s (from an instant of second 10: gone at 131, not before).
        d.expire(10 + 120, usize::MAX);
        assert_eq!(d.conns.len(), 6);
        d.expire(10 + 121, usize::MAX);
        assert_eq!(d.conns.len(), 0);
        assert_eq!(dests(&d), vec![(0, 0, 0), (0, 0, 0)]);
    }

    #[test]
    fn traffic_counters_per_service_and_dest() {
        let mut d = director(tcp80(), "rr", None, FwdMethod::Masq, 80);
        full_nat_conn(&mut d, 1000, 0);
        full_nat_conn(&mut d, 1001, 0);
        let s = d.services.get(0).unwrap();
        // Per connection: 4 packets in (60 bytes each), 2 out (52 bytes each).
        let st = s.stats();
        assert_eq!((st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes), (2, 8, 4, 480, 208));
        assert_eq!(s.dest_stats(0).conns, 1);
        assert_eq!(s.dest_stats(0).inpkts + s.dest_stats(1).inpkts, 8);
        d.zero_stats(None);
        assert_eq!(d.services.get(0).unwrap().stats(), crate::ipvs::dest::Stats::default());
        assert_eq!(d.services.get(0).unwrap().dest_stats(1).outbytes, 0);
    }

    #[test]
    fn a_new_syn_on_a_time_wait_tuple_is_a_new_connection() {
        let mut d = director(tcp80(), "rr", None, FwdMethod::Masq, 80);
        let first = full_nat_conn(&mut d, 40000, 0);
        assert_eq!(d.conns.iter().next().unwrap().1.state.name(), "TIME_WAIT");
        // Same client port again (the client closed second and may reuse it).
        let h = d.packet(&syn(CLIENT, 40000, 80), 5, 0).unwrap();
        assert!(h.new, "scheduled anew");
        assert_ne!(d.conn::<std::net::Ipv4Addr>(h.slot).unwrap().ep.daddr, first, "rr moved on");
        assert_eq!(d.services.get(0).unwrap().stats().conns, 2);
        assert_eq!(dests(&d).iter().map(|x| x.0 + x.1).sum::<u32>(), 1, "the old one's counter released at once");
        // The old entry itself goes when the wheel reaches it.
        d.expire(200, usize::MAX);
        assert_eq!(d.conns.len(), 0, "both gone by t=200 (the new one was SYN_RECV, 60 s)");
        assert_eq!(dests(&d), vec![(0, 0, 0), (0, 0, 0)], "nothing released twice");
    }

    #[test]
    fn established_is_active_and_non_syn_is_refused() {
        let mut d = director(tcp80(), "rr", None, FwdMethod::Masq, 8080);
        let h = d.packet(&syn(CLIENT, 1000, 80), 0, 0).unwrap();
        assert!(h.new);
        assert_eq!(dests(&d)[0], (1, 0, 0), "SYN_RECV counts as active");
        assert_eq!(d.conn::<std::net::Ipv4Addr>(h.slot).unwrap().ep.dport, 8080, "port mapping");
        let ack = PacketInfo { tcp_flags: ACK, ..syn(CLIENT, 2000, 80) };
        assert_eq!(d.packet(&ack, 0, 0), Err(Refused::NotSyn));
        let rst = PacketInfo { tcp_flags: SYN | RST, ..syn(CLIENT, 2000, 80) };
        assert_eq!(d.packet(&rst, 0, 0), Err(Refused::NotSyn));
        assert_eq!(d.packet(&syn(CLIENT, 1, 81), 0, 0), Err(Refused::NoService));
    }

    #[test]
    fn sloppy_tcp_schedules_a_mid_stream_packet_as_the_kernel_does() {
        use crate::ipvs::conn::TcpState;
        let mut d = director(tcp80(), "mh", None, FwdMethod::Route, 80);
        let ack = PacketInfo { tcp_flags: ACK, ..syn(CLIENT, 3000, 80) };
        assert_eq!(d.packet(&ack, 0, 0), Err(Refused::NotSyn));
        d.sloppy_tcp = true;
        // Another director's flow, mid-stream: scheduled, ESTABLISHED at once.
        let h = d.packet(&ack, 0, 0).unwrap();
        assert!(h.new);
        let c = *d.conn::<Ipv4Addr>(h.slot).unwrap();
        assert_eq!(c.state, crate::ipvs::conn::ConnState::Tcp(TcpState::Established));
        assert_eq!(dests(&d).iter().map(|x| x.0).sum::<u32>(), 1, "counted active");
        // The next packet finds it; a FIN from nothing closes at once; RST is never scheduled.
        assert!(!d.packet(&ack, 0, 0).unwrap().new);
        let fin = PacketInfo { tcp_flags: FIN | ACK, ..syn(CLIENT, 3001, 80) };
        let f = d.packet(&fin, 0, 0).unwrap();
        assert!(f.new);
        let rst = PacketInfo { tcp_flags: RST | ACK, ..syn(CLIENT, 3002, 80) };
        assert_eq!(d.packet(&rst, 0, 0), Err(Refused::NotSyn));
        // mh: the same real server as a SYN of that flow would get.
        let mut fresh = director(tcp80(), "mh", None, FwdMethod::Route, 80);
        let s = fresh.packet(&syn(CLIENT, 3000, 80), 0, 0).unwrap();
        assert_eq!(fresh.conn::<Ipv4Addr>(s.slot).unwrap().ep.daddr, c.ep.daddr);
    }

    #[test]
    fn quiesced_dest_keeps_existing_connections() {
        let mut d = director(tcp80(), "rr", None, FwdMethod::Masq, 80);
        let h = d.packet(&syn(CLIENT, 1000, 80), 0, 0).unwrap();
        let rs = d.conn::<Ipv4Addr>(h.slot).unwrap().ep.daddr;
        let svc = d.services.get_mut(0).unwrap();
        svc.edit_dest(rs, 80, FwdMethod::Masq, 0, 0, 0).unwrap();
        let again = d.packet(&PacketInfo { tcp_flags: ACK, ..syn(CLIENT, 1000, 80) }, 1, 0).unwrap();
        assert_eq!(again.slot, h.slot, "existing connection continues");
        for p in 0..4 {
            let n = d.packet(&syn(CLIENT, 2000 + p, 80), 1, 0).unwrap();
            assert_ne!(
                d.conn::<std::net::Ipv4Addr>(n.slot).unwrap().ep.daddr,
                rs,
                "no new connection to the quiesced dest"
            );
        }
        let svc = d.services.get_mut(0).unwrap();
        svc.edit_dest(RS[0], 80, FwdMethod::Masq, 0, 0, 0).unwrap();
        svc.edit_dest(RS[1], 80, FwdMethod::Masq, 0, 0, 0).unwrap();
        assert_eq!(d.packet(&syn(CLIENT, 3000, 80), 1, 0), Err(Refused::NoDest));
    }

    #[test]
    fn a_packet_from_port_0_is_never_taken_for_the_template_it_matches() {
        // A persistent port service's template is keyed <proto, client, 0, VIP,
        // vport>: a packet from the client's port 0 has that very tuple. Packets
        // never find templates (the kernel's connection lookups skip them too),
        // so it is no connection until a SYN makes one, then that one's.
        use crate::ipvs::conn::ConnState;
        let (mut d, first, rs) = persistent_with_one_conn(300);
        let template = d.conn::<Ipv4Addr>(first).unwrap().control;
        assert_ne!(template, NONE);
        let ack = PacketInfo { tcp_flags: ACK, ..syn(CLIENT, 0, 80) };
        assert_eq!(d.packet(&ack, 1, 0), Err(Refused::NotSyn), "no connection from port 0 yet");
        assert_eq!(d.established(&ack.tuple(), d.conns.hash(&ack.tuple()), 0, ACK, 60, 1), None);
        let h = d.packet(&syn(CLIENT, 0, 80), 1, 0).unwrap();
        assert!(h.new, "a SYN from port 0 makes its connection");
        assert_ne!(h.slot, template);
        let c = *d.conn::<Ipv4Addr>(h.slot).unwrap();
        assert_eq!((c.ep.daddr, c.control, c.is_template()), (rs, template, false), "under the template");
        assert_eq!(d.conn::<Ipv4Addr>(template).unwrap().state, ConnState::Template, "the template untouched");
        // The connection's next packet finds it, not the template; the template
        // still leads the client's other connections.
        let again = d.packet(&ack, 2, 0).unwrap();
        assert_eq!((again.slot, again.new), (h.slot, false));
        let other = d.packet(&syn(CLIENT, 2000, 80), 2, 0).unwrap();
        assert_eq!(d.conn::<Ipv4Addr>(other.slot).unwrap().control, template);
    }

    #[test]
    fn persistent_port_service_sticks_and_template_outlives_its_timeout() {
        let (mut d, _, rs) = persistent_with_one_conn(300);
        for i in 1..5 {
            let h = d.packet(&syn(CLIENT, 1000 + i, 80), 0, 0).unwrap();
            assert_eq!(d.conn::<std::net::Ipv4Addr>(h.slot).unwrap().ep.daddr, rs, "same client, same real server");
        }
        let other = d.packet(&syn(Ipv4Addr::new(198, 18, 0, 101), 1000, 80), 0, 0).unwrap();
        assert_ne!(d.conn::<std::net::Ipv4Addr>(other.slot).unwrap().ep.daddr, rs, "another client is scheduled");
        let idx = if rs == RS[0] { 0 } else { 1 };
        assert_eq!(dests(&d)[idx].2, 1, "one template: PersistConn 1");
        // Keep one connection alive (ESTABLISHED, 900 s) past the template's 300 s.
        let est = PacketInfo { tcp_flags: ACK, ..syn(CLIENT, 1000, 80) };
        d.packet(&est, 1, 0).unwrap();
        for t in [200u32, 400, 600, 850] {
            d.packet(&est, t, 0).unwrap();
            d.expire(t, usize::MAX);
        }
        assert_eq!(dests(&d)[idx].2, 1, "template alive while it controls a connection (t=850 > 300)");
        let h = d.packet(&syn(CLIENT, 5000, 80), 851, 0).unwrap();
        assert_eq!(d.conn::<std::net::Ipv4Addr>(h.slot).unwrap().ep.daddr, rs, "and still used");
        // Everything ends: connections, then the template.
        d.expire(851 + 900 + 300 + 10, usize::MAX);
        assert_eq!(d.conns.len(), 0);
        assert_eq!(dests(&d), vec![(0, 0, 0), (0, 0, 0)]);
    }

    #[test]
    fn template_expires_after_its_timeout_and_the_client_is_rescheduled() {
        let (mut d, _, rs) = persistent_with_one_conn(60);
        // The SYN_RECV connection times out at 60 s, the template 60 s after that.
        d.expire(59, usize::MAX);
        assert_eq!(d.conns.len(), 2);
        d.expire(130, usize::MAX);
        assert_eq!(d.conns.len(), 0);
        let h = d.packet(&syn(CLIENT, 1001, 80), 131, 0).unwrap();
        assert_ne!(d.conn::<std::net::Ipv4Addr>(h.slot).unwrap().ep.daddr, rs, "rr moved on: a fresh choice");
    }

    #[test]
    fn persistent_client_all_ports() {
        let p = Persistence::new(300, Ipv4Addr::BROADCAST).unwrap();
        let key = ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port: 0 };
        let mut d = director(key, "rr", Some(p), FwdMethod::Route, 0);
        let a = d.packet(&syn(CLIENT, 1000, 80), 0, 0).unwrap();
        let b = d.packet(&syn(CLIENT, 1001, 443), 0, 0).unwrap();
        let c = d.packet(&syn(CLIENT, 1002, 22), 0, 0).unwrap();
        let rs = d.conn(a.slot).unwrap().ep.daddr;
        assert_eq!(d.conn::<std::net::Ipv4Addr>(b.slot).unwrap().ep.daddr, rs);
        assert_eq!(d.conn::<std::net::Ipv4Addr>(c.slot).unwrap().ep.daddr, rs);
        assert_eq!(d.conn::<std::net::Ipv4Addr>(b.slot).unwrap().ep.dport, 443, "port kept");
        assert!(
            d.lookup(&Tuple { proto: 6, saddr: rs, sport: 443, daddr: CLIENT, dport: 1001 }).is_none(),
            "DR: no output key"
        );
    }

    #[test]
    fn fwmark_group_80_and_443_with_netmask() {
        let p = Persistence::new(1800, Ipv4Addr::new(255, 255, 255, 0)).unwrap();
        let mut d = director(ServiceKey::Fwmark(1), "rr", Some(p), FwdMethod::Route, 0);
        let pk = |src, sport, dport| PacketInfo { fwmark: 1, ..syn(src, sport, dport) };
        let a = d.packet(&pk(CLIENT, 1000, 80), 0, 0).unwrap();
        let rs = d.conn::<Ipv4Addr>(a.slot).unwrap().ep.daddr;
        let b = d.packet(&pk(CLIENT, 1001, 443), 0, 0).unwrap();
        let c = d.packet(&pk(Ipv4Addr::new(198, 18, 0, 7), 1001, 443), 0, 0).unwrap();
        assert_eq!(d.conn::<std::net::Ipv4Addr>(b.slot).unwrap().ep.daddr, rs);
        assert_eq!(d.conn::<std::net::Ipv4Addr>(c.slot).unwrap().ep.daddr, rs, "same /24: same template");
        let e = d.packet(&pk(Ipv4Addr::new(198, 18, 5, 7), 1001, 443), 0, 0).unwrap();
        assert_ne!(d.conn::<std::net::Ipv4Addr>(e.slot).unwrap().ep.daddr, rs, "another /24: rescheduled");
        assert_eq!(d.packet(&syn(CLIENT, 1002, 80), 0, 0), Err(Refused::NoService), "unmarked: no service");
    }

    #[test]
    fn template_to_a_removed_dest_is_replaced() {
        let (mut d, first, rs) = persistent_with_one_conn(300);
        d.services.del_dest(&tcp80(), rs.into(), 80).unwrap();
        let h2 = d.packet(&syn(CLIENT, 1001, 80), 1, 0).unwrap();
        assert_ne!(d.conn::<std::net::Ipv4Addr>(h2.slot).unwrap().ep.daddr, rs);
        // The old connection's packets are dropped, its timer left alone (the
        // kernel's dest without IP_VS_DEST_F_AVAILABLE).
        let expires = d.conn::<Ipv4Addr>(first).unwrap().expires_s;
        assert_eq!(d.packet(&ack(CLIENT, 1000), 2, 0), Err(Refused::DestUnavailable));
        assert_eq!(d.conn::<Ipv4Addr>(first).unwrap().expires_s, expires);
        assert_eq!(d.services.trashed(), 1, "held by its connection and template");
        d.expire(5000, usize::MAX);
        assert_eq!(d.conns.len(), 0);
        assert_eq!(d.services.trashed(), 0, "forgotten with its last connection");
    }

    /// rr NAT over RS[0] and RS[1], six connections from the client's ports 0..6
    /// established (SYN, then ACK): three to each.
    fn six_established() -> Director {
        let mut d = director(tcp80(), "rr", None, FwdMethod::Masq, 80);
        for port in 0..6 {
            d.packet(&syn(CLIENT, port, 80), 0, 0).unwrap();
            d.packet(&ack(CLIENT, port), 0, 0).unwrap();
        }
        d
    }

    /// The kernel's dest trash: a real server taken out while connections hold it
    /// and put back (by `-d` and `-a`, or a health check) has its counts again,
    /// and its connections flow again.
    #[test]
    fn a_dest_put_back_finds_its_connections_and_counts() {
        let mut d = six_established();
        assert_eq!(dests(&d), vec![(3, 0, 0), (3, 0, 0)]);
        d.services.del_dest(&tcp80(), RS[0].into(), 80).unwrap();
        assert_eq!(dests(&d), vec![(3, 0, 0)]);
        // Port 0 went to RS[0]: dropped while it is out.
        assert_eq!(d.packet(&ack(CLIENT, 0), 1, 0), Err(Refused::DestUnavailable));
        assert!(d.packet(&ack(CLIENT, 1), 1, 0).is_ok(), "RS[1]'s connections go on");
        d.services.add_dest(&tcp80(), Dest::new(RS[0], 80, FwdMethod::Masq, 5)).unwrap();
        let back = d.services.get(0).unwrap().dests()[0].clone();
        assert_eq!((back.addr, back.weight(), back.active), (RS[0].into(), 5, 3), "counts restored, weight as asked");
        assert!(d.packet(&ack(CLIENT, 0), 2, 0).is_ok(), "its connections flow again");
        assert_eq!(d.services.trashed(), 0);
        // Taken out again with nothing holding it: forgotten at once.
        let mut e = director(tcp80(), "rr", None, FwdMethod::Masq, 80);
        e.services.del_dest(&tcp80(), RS[0].into(), 80).unwrap();
        assert_eq!(e.services.trashed(), 0);
    }

    /// A service's counters are its dests' own and what dests that left carried:
    /// a dest in the trash keeps its counters through `ipvsadm -Z` and back, the
    /// service's start afresh; a dest that leaves for good leaves its counts in the
    /// service's, and its slot's next dest starts from zero.
    #[test]
    fn a_service_keeps_its_counts_as_dests_leave_come_back_and_are_zeroed() {
        let mut d = six_established();
        let svc = |d: &Director| {
            let s = d.services.get(0).unwrap().stats();
            (s.conns, s.inpkts, s.inbytes)
        };
        assert_eq!(svc(&d), (6, 12, 720));
        d.services.del_dest(&tcp80(), RS[0].into(), 80).unwrap();
        assert_eq!(svc(&d), (6, 12, 720), "a dest in the trash still counts in its service");
        d.zero_stats(None);
        assert_eq!(svc(&d), (0, 0, 0));
        assert!(d.packet(&ack(CLIENT, 1), 1, 0).is_ok());
        assert_eq!(svc(&d), (0, 1, 60));
        d.services.add_dest(&tcp80(), Dest::new(RS[0], 80, FwdMethod::Masq, 1)).unwrap();
        let s = d.services.get(0).unwrap();
        assert_eq!(s.dests()[0].addr, std::net::IpAddr::from(RS[0]));
        assert_eq!((s.dest_stats(0).conns, s.dest_stats(0).inpkts), (3, 6), "back with its own counts");
        assert_eq!((s.dest_stats(1).conns, s.dest_stats(1).inpkts), (0, 1));
        assert_eq!(svc(&d), (0, 1, 60), "the service's stay zeroed");
        // Nothing holds RS[1] once its connections are gone: it leaves for good.
        d.expire(1000, usize::MAX);
        d.services.del_dest(&tcp80(), RS[1].into(), 80).unwrap();
        assert_eq!(d.services.trashed(), 0);
        assert!(d.packet(&syn(CLIENT, 7, 80), 1000, 0).is_ok(), "to RS[0]");
        assert_eq!(svc(&d), (1, 2, 120), "what RS[1] carried stays in its service");
        d.services.add_dest(&tcp80(), Dest::new(RS[1], 80, FwdMethod::Masq, 1)).unwrap();
        assert_eq!(d.services.get(0).unwrap().dest_stats(0), Stats::default(), "a dest in a freed slot starts at zero");
        assert_eq!(svc(&d), (1, 2, 120));
    }

    /// `expire_nodest_conn`: a connection to a real server taken out ends at its
    /// next packet (a SYN is scheduled anew, anything else dropped), and a SYN on a
    /// connection to a quiesced one is scheduled anew.
    #[test]
    fn expire_nodest_conn_ends_connections_to_unavailable_dests() {
        let mut d = director(tcp80(), "rr", None, FwdMethod::Masq, 80);
        d.expire_nodest_conn = true;
        for port in 0..2 {
            d.packet(&syn(CLIENT, port, 80), 0, 0).unwrap();
            d.packet(&ack(CLIENT, port), 0, 0).unwrap();
        }
        d.services.del_dest(&tcp80(), RS[0].into(), 80).unwrap();
        assert_eq!(d.packet(&ack(CLIENT, 0), 1, 0), Err(Refused::NotSyn), "ended; an ACK opens nothing");
        let h = d.packet(&syn(CLIENT, 0, 80), 1, 0).unwrap();
        assert!(h.new);
        assert_eq!(d.conn::<Ipv4Addr>(h.slot).unwrap().ep.daddr, RS[1]);
        d.expire(1000, usize::MAX);
        assert_eq!(d.services.trashed(), 0);
        // Quiesced: a SYN on its connection's tuple goes to another.
        let mut q = director(tcp80(), "rr", None, FwdMethod::Masq, 80);
        let first = q.packet(&syn(CLIENT, 7, 80), 0, 0).unwrap();
        assert_eq!(q.conn::<Ipv4Addr>(first.slot).unwrap().ep.daddr, RS[0]);
        q.packet(&ack(CLIENT, 7), 0, 0).unwrap();
        q.services.get_mut(0).unwrap().edit_dest(RS[0], 80, FwdMethod::Masq, 0, 0, 0).unwrap();
        let same = q.packet(&syn(CLIENT, 7, 80), 1, 0).unwrap();
        assert_eq!((same.slot, same.new), (first.slot, false), "without the setting: the same connection");
        q.expire_nodest_conn = true;
        let h = q.packet(&syn(CLIENT, 7, 80), 2, 0).unwrap();
        assert!(h.new);
        assert_eq!(q.conn::<Ipv4Addr>(h.slot).unwrap().ep.daddr, RS[1]);
    }

    /// `expire_quiescent_template`: a quiesced real server loses its persistent
    /// clients (without it, they stay).
    #[test]
    fn expire_quiescent_template_lets_persistent_clients_move() {
        let (mut d, _, rs) = persistent_with_one_conn(300);
        d.services.get_mut(0).unwrap().edit_dest(rs, 80, FwdMethod::Masq, 0, 0, 0).unwrap();
        let h = d.packet(&syn(CLIENT, 1001, 80), 1, 0).unwrap();
        assert_eq!(d.conn::<Ipv4Addr>(h.slot).unwrap().ep.daddr, rs, "the template holds");
        d.expire_quiescent_template = true;
        let h = d.packet(&syn(CLIENT, 1002, 80), 2, 0).unwrap();
        assert_ne!(d.conn::<Ipv4Addr>(h.slot).unwrap().ep.daddr, rs, "the template let go");
        let h = d.packet(&syn(CLIENT, 1003, 80), 3, 0).unwrap();
        assert_ne!(d.conn::<Ipv4Addr>(h.slot).unwrap().ep.daddr, rs, "a new template, to another");
    }

    #[test]
    fn udp_connections_stay_inactive_and_last_300s() {
        let key = ServiceKey::Addr { proto: Protocol::Udp, addr: VIP, port: 53 };
        let mut d = director(key, "rr", None, FwdMethod::Masq, 53);
        let p = PacketInfo {
            proto: Protocol::Udp,
            src: CLIENT,
            sport: 5353,
            dst: VIP,
            dport: 53,
            tcp_flags: 0,
            fwmark: 0,
            len: 40,
        };
        d.packet(&p, 0, 0).unwrap();
        assert_eq!(dests(&d)[0], (0, 1, 0));
        d.expire(300, usize::MAX);
        assert_eq!(d.conns.len(), 1, "300 s may not have passed yet");
        d.expire(301, usize::MAX);
        assert_eq!(d.conns.len(), 0);
    }

    fn one_dest_director(capacity: usize) -> Director {
        one_dest_director_with(capacity, None)
    }

    fn one_dest_director_with(capacity: usize, pers: Option<Persistence>) -> Director {
        let mut s = Service::new(tcp80(), "rr", SchedFlags::default(), pers).unwrap();
        s.add_dest(Dest::new(RS[0], 80, FwdMethod::Masq, 1)).unwrap();
        let mut t = ServiceTable::new();
        t.add(s).unwrap();
        Director::new(t, capacity, 1)
    }

    fn ack(src: Ipv4Addr, sport: u16) -> PacketInfo {
        PacketInfo { tcp_flags: ACK, ..syn(src, sport, 80) }
    }

    #[test]
    fn full_table_of_established_connections_refuses_new_ones() {
        let mut d = one_dest_director(2);
        for port in [1, 2] {
            d.packet(&syn(CLIENT, port, 80), 0, 0).unwrap();
            d.packet(&ack(CLIENT, port), 0, 0).unwrap();
        }
        assert_eq!(d.packet(&syn(CLIENT, 3, 80), 0, 0), Err(Refused::TableFull));
        assert_eq!(dests(&d)[0], (2, 0, 0), "a refused connection is not counted");
        assert_eq!(d.evicted, 0, "established connections are never evicted");
    }

    #[test]
    fn a_new_nat_connection_carries_the_checksum_sums_of_its_endpoints() {
        // A service with a port (its dests' sums worked out as they join, the
        // dest's port or, where it has none, the service's), one without (the
        // packet's port kept; persistent, as it must be), a firewall mark (any
        // VIP), with and without persistence: each connection's sums are those
        // of its own endpoints.
        let p = || Some(Persistence::new(300, Ipv4Addr::BROADCAST).unwrap());
        let keys = [
            (tcp80(), 8080, None),
            (tcp80(), 8080, p()),
            (ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port: 0 }, 0, p()),
            (ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port: 0 }, 8080, p()),
            (ServiceKey::Fwmark(1), 0, None),
            (ServiceKey::Fwmark(1), 8080, p()),
        ];
        for (key, rs_port, pers) in keys {
            let mut d = director(key, "rr", pers, FwdMethod::Masq, rs_port);
            for (sport, dport) in [(1000, 80), (1001, 443), (1002, 80)] {
                // (A service with a port takes only that one.)
                let dport = if key.port() == 0 { dport } else { key.port() };
                let pkt = PacketInfo { fwmark: 1, ..syn(CLIENT, sport, dport) };
                let h = d.packet(&pkt, 0, 0).unwrap();
                let c = d.conn::<Ipv4Addr>(h.slot).unwrap();
                let want = crate::net::checksum::nat_sums(c.ep.vaddr, c.ep.daddr, c.ep.vport, c.ep.dport);
                assert_eq!(c.nat_sums, want, "{key:?} -> {}:{} for {sport} -> {dport}", c.ep.daddr, c.ep.dport);
            }
        }
        // The port-0 dest of a service with a port takes the service's.
        let mut d = director(tcp80(), "rr", None, FwdMethod::Masq, 0);
        let slot = d.packet(&syn(CLIENT, 1000, 80), 0, 0).unwrap().slot;
        let c = *d.conn::<Ipv4Addr>(slot).unwrap();
        assert_eq!(c.nat_sums, crate::net::checksum::nat_sums(VIP, c.ep.daddr, 80, 80));
    }

    #[test]
    fn a_new_persistent_client_makes_room_for_its_template_and_its_connection() {
        // A table of 4: the first client's template and two half-open
        // connections leave one entry; a second client needs two.
        let p = Persistence::new(300, Ipv4Addr::BROADCAST).unwrap();
        let mut d = one_dest_director_with(4, Some(p));
        for port in [1, 2] {
            d.packet(&syn(CLIENT, port, 80), 0, 0).unwrap();
        }
        assert_eq!(d.conns.len(), 3);
        let other = Ipv4Addr::new(198, 18, 0, 101);
        let h = d.packet(&syn(other, 1, 80), 0, 0).expect("room made");
        assert!(h.new);
        assert_eq!((d.evicted, d.conns.len()), (1, 4), "one half-open connection evicted");
        let c = d.conn::<Ipv4Addr>(h.slot).unwrap();
        assert_eq!((c.ep.caddr, c.control != NONE), (other, true), "its template made too");
    }

    #[test]
    fn syn_flood_evicts_half_open_connections_and_spares_established_ones() {
        let mut d = one_dest_director(100);
        // Ten established connections, then a flood of unique SYNs ten times the table.
        for port in 0..10 {
            d.packet(&syn(CLIENT, port, 80), 0, 0).unwrap();
            d.packet(&ack(CLIENT, port), 0, 0).unwrap();
        }
        let flooder = Ipv4Addr::new(203, 0, 113, 66);
        for (i, port) in (1000..2000u16).enumerate() {
            let now = u32::try_from(i / 100).unwrap();
            let h = d.packet(&syn(flooder, port, 80), now, 0).unwrap_or_else(|e| panic!("SYN {i}: {e:?}"));
            assert!(h.new);
            d.expire(now, 512);
        }
        assert!(d.conns.len() <= 100);
        assert!(d.evicted >= 800, "evicted {}", d.evicted);
        for port in 0..10 {
            let h = d.lookup(&ack(CLIENT, port).tuple()).expect("established connection kept");
            assert_eq!(d.conn::<std::net::Ipv4Addr>(h.slot).unwrap().state.name(), "ESTABLISHED");
            d.packet(&ack(CLIENT, port), 10, 0).unwrap();
        }
        // The dest's counters follow the table: 10 active + the half-open rest.
        let active = d.conns.iter().filter(|(_, c)| c.is_active()).count();
        assert_eq!(dests(&d)[0], (u32::try_from(active).unwrap(), 0, 0));
        assert_eq!(active, d.conns.len());
    }

    #[test]
    fn half_open_connections_time_out_sooner_under_pressure() {
        let mut d = one_dest_director(8);
        for port in 0..5 {
            d.packet(&syn(CLIENT, port, 80), 0, 0).unwrap();
        }
        assert_eq!(d.conns.iter().map(|(_, c)| c.timeout_s).max(), Some(60), "SYN_RECV: 60 s");
        // The sixth makes the table three quarters full: from then on, 3 s.
        let h = d.packet(&syn(CLIENT, 5, 80), 0, 0).unwrap();
        assert_eq!(d.conn::<std::net::Ipv4Addr>(h.slot).unwrap().timeout_s, PRESSURE_SYN_RECV_S);
        d.expire(PRESSURE_SYN_RECV_S + 1, usize::MAX);
        assert_eq!(d.conns.len(), 5, "the pressured one is gone after 3 s");
        // An established connection keeps its full timeout under pressure.
        d.packet(&ack(CLIENT, 0), 4, 0).unwrap();
        let h = d.lookup(&ack(CLIENT, 0).tuple()).unwrap();
        assert_eq!(d.conn::<std::net::Ipv4Addr>(h.slot).unwrap().timeout_s, 900);
    }

    #[test]
    fn a_half_open_connections_packet_under_pressure_cuts_its_timeout() {
        // The real server's SYN-ACK on the established path (the connection
        // stays SYN_RECV): its 60 s while the table has room, 3 s once it is
        // three quarters full, from then (the client's port 1 and then port 2).
        let mut d = one_dest_director(8);
        for port in 0..5 {
            d.packet(&syn(CLIENT, port, 80), 0, 0).unwrap();
        }
        let syn_ack = |port: u16| Tuple { proto: 6, saddr: RS[0], sport: 80, daddr: CLIENT, dport: port };
        let timeout = |d: &Director, slot: u32| d.conn::<Ipv4Addr>(slot).map(|c| (c.state.name(), c.timeout_s));
        let reply = |d: &mut Director, port: u16, now_s: u32| {
            let t = syn_ack(port);
            let h = d.conns.hash(&t);
            d.established(&t, h, 0, SYN | ACK, 60, now_s).expect("a connection's reply").hit()
        };
        let h = reply(&mut d, 1, 1);
        assert_eq!(h.dir, Direction::Output);
        assert_eq!(timeout(&d, h.slot), Some(("SYN_RECV", 60)));
        d.packet(&syn(CLIENT, 5, 80), 1, 0).unwrap();
        let h = reply(&mut d, 2, 2);
        assert_eq!(timeout(&d, h.slot), Some(("SYN_RECV", PRESSURE_SYN_RECV_S)));
        assert_eq!(d.conn::<Ipv4Addr>(h.slot).unwrap().expires_s, conn::deadline(2, PRESSURE_SYN_RECV_S));
        // The connection itself, as the pipeline's established path has it.
        let t = syn_ack(3);
        let (c, output) = d.established_conn(&t, d.conns.hash(&t), 0, SYN | ACK, 60, 3).unwrap();
        assert!(output);
        assert_eq!((c.ep.cport, c.state.name(), c.timeout_s), (3, "SYN_RECV", PRESSURE_SYN_RECV_S));
    }

    #[test]
    fn flush_releases_counters() {
        let (mut d, _, _) = persistent_with_one_conn(300);
        d.flush();
        assert_eq!(dests(&d), vec![(0, 0, 0), (0, 0, 0)]);
    }

    #[test]
    fn an_ipv6_service_balances_keeps_its_own_table_and_persists_by_prefix() {
        let a6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let (vip6, client6) = (a6("2001:2::10"), a6("2001:2::100"));
        let rs6 = [a6("2001:2:0:1::11"), a6("2001:2:0:1::12")];
        let key = ServiceKey::Addr6 { proto: Protocol::Tcp, addr: vip6, port: 80 };
        let mut s = Service::new(key, "rr", SchedFlags::default(), None).unwrap();
        // Added last first: the list (newest at the head) reads in array order.
        for a in rs6.into_iter().rev() {
            s.add_dest(Dest::new(a, 8080, FwdMethod::Masq, 1)).unwrap();
        }
        assert!(s.add_dest(Dest::new(RS[0], 80, FwdMethod::Masq, 1)).is_err(), "an IPv4 real server");
        let mut t = ServiceTable::new();
        t.add(s).unwrap();
        let mut d = Director::new(t, 1024, 42);
        let syn6 = |src: Ipv6Addr, sport: u16| PacketInfo {
            proto: Protocol::Tcp,
            src,
            sport,
            dst: vip6,
            dport: 80,
            tcp_flags: SYN,
            fwmark: 0,
            len: 80,
        };
        let picked: Vec<Ipv6Addr> = (0..6)
            .map(|i| {
                let h = d.packet(&syn6(client6, 40000 + i), 0, 0).unwrap();
                assert!(h.new);
                let c = d.conn::<Ipv6Addr>(h.slot).unwrap();
                assert_eq!((c.ep.caddr, c.ep.vaddr, c.ep.dport), (client6, vip6, 8080));
                c.ep.daddr
            })
            .collect();
        assert_eq!(picked, [rs6[0], rs6[1], rs6[0], rs6[1], rs6[0], rs6[1]], "rr");
        assert_eq!((d.conns6.len(), d.conns.len()), (6, 0), "IPv6 connections live in their own table");
        // The real server's reply finds its connection, in the output direction.
        let reply = Tuple { proto: 6, saddr: rs6[0], sport: 8080, daddr: client6, dport: 40000 };
        assert_eq!(d.lookup(&reply).map(|h| h.dir), Some(Direction::Output));
        // The same tuple in IPv4 is another connection's (none).
        assert!(d.packet(&syn(CLIENT, 40000, 80), 0, 0).is_err(), "no IPv4 service");
        // An IPv4 packet to the IPv6 VIP's port finds no service, and vice versa.
        let other = PacketInfo { dst: a6("2001:2::11"), ..syn6(client6, 1) };
        assert_eq!(d.packet(&other, 0, 0), Err(Refused::NoService));
        // Expiry and flush see the IPv6 table too.
        assert_eq!(d.expire(10_000, 1 << 20), 6);
        assert_eq!(dests(&d), vec![(0, 0, 0), (0, 0, 0)], "counters released");

        // Persistence by prefix: clients of one /64 stick to one real server.
        let p = Persistence::new6(300, 64).unwrap();
        let key = ServiceKey::Addr6 { proto: Protocol::Tcp, addr: vip6, port: 443 };
        let mut s = Service::new(key, "rr", SchedFlags::default(), Some(p)).unwrap();
        // Added last first: the list (newest at the head) reads in array order.
        for a in rs6.into_iter().rev() {
            s.add_dest(Dest::new(a, 443, FwdMethod::Masq, 1)).unwrap();
        }
        d.services.add(s).unwrap();
        let to443 = |src: Ipv6Addr, sport: u16| PacketInfo { dport: 443, ..syn6(src, sport) };
        let first = d.packet(&to443(client6, 1000), 0, 0).unwrap();
        let rs = d.conn::<Ipv6Addr>(first.slot).unwrap().ep.daddr;
        for (src, sport) in [(a6("2001:2::ffff:1"), 1001), (client6, 1002)] {
            let h = d.packet(&to443(src, sport), 0, 0).unwrap();
            assert_eq!(d.conn::<Ipv6Addr>(h.slot).unwrap().ep.daddr, rs, "{src} in the same /64");
        }
        let h = d.packet(&to443(a6("2001:2:0:9::1"), 1003), 0, 0).unwrap();
        assert_ne!(d.conn::<Ipv6Addr>(h.slot).unwrap().ep.daddr, rs, "another /64 is scheduled (rr)");
    }
}
