//! The LVS stages of the pipeline (the kernel's `ip_vs_core.c` and `ip_vs_xmit.c`):
//! connection lookup / scheduling through the worker's `Director`, then transmit by
//! the connection's forwarding method, chosen in one place (`transmit`) for whole
//! packets, later fragments and ICMP errors alike.
//!
//! - NAT in (client -> VIP): destination address and port := real server's, IP and
//!   TCP/UDP checksums updated incrementally (RFC 1624), routed to the real server.
//! - NAT out (real server -> client): source := VIP:vport, TTL - 1 (forwarded, as
//!   the kernel's FORWARD path does), routed to the client.
//! - DR: only the MACs change; the real server must be on a connected network.
//! - TUN: an outer IPv4 header (protocol 4, DIP -> RIP, DF and TOS copied) is
//!   prepended; too big for the egress MTU with DF set answers the client with
//!   ICMP fragmentation-needed (MTU minus the 20-byte tunnel header), without DF it
//!   is dropped and counted (no fragmentation on the fast path).
//! - ICMP errors about a tracked connection are translated (NAT) and forwarded
//!   (the kernel's `ip_vs_in_icmp` / `ip_vs_out_icmp`).

use super::counters::Counters;
use super::counters::DropReason;
use super::meta::Meta;
use super::route::{Egress, HopCache};
use super::{Pipeline, Verdict};
use crate::ipvs::conn::{Conn, Direction, Endpoints};
use crate::ipvs::conntab::Tuple;
use crate::ipvs::dest::FwdMethod;
use crate::ipvs::director::{Hit, PacketInfo, Refused};
use crate::ipvs::{fwmark, Protocol};
use crate::net::checksum;
use crate::net::ethernet;
use crate::net::icmp;
use crate::net::ipip;
use crate::net::ipv4::{self, protocol};
use crate::net::tcp;
use crate::net::PacketBuf;
use std::net::Ipv4Addr;

/// Default TTL of tunnel headers.
const TUNNEL_TTL: u8 = 64;
/// Bytes a tunnel header adds.
pub const TUNNEL_OVERHEAD: usize = ipip::OVERHEAD;

/// A TCP or UDP packet to or through the director, decoded as `m`.
pub(super) fn transport<B: PacketBuf>(p: &mut Pipeline, in_port: u16, buf: &mut B, m: &Meta, now_ms: u64) -> Verdict {
    if let Some(fault) = m.l4_fault {
        return Verdict::Drop(fault);
    }
    let proto = if m.proto == protocol::TCP { Protocol::Tcp } else { Protocol::Udp };
    let Tuple { saddr: src, sport, daddr: dst, dport, .. } = m.tuple;
    let (tcp_flags, len) = (m.tcp_flags, u32::from(m.ip_len));
    let frame = buf.data();
    let fwmark = if p.director.classifier.is_empty() {
        0
    } else {
        let src_mac = ethernet::Frame::new_unchecked(frame).src_addr();
        p.director.classifier.classify(&fwmark::Packet { src_mac, proto: proto.number(), src, dst, dport, sport })
    };
    let info = PacketInfo { proto, src, sport, dst, dport, tcp_flags, fwmark, len };
    let now_s = p.now_s;
    let hit = match p.director.packet_hashed(&info, m.hash, now_s, now_ms) {
        Ok(h) => h,
        Err(r) => {
            return refused(r, || {
                p.owns_now(in_port, dst) || (!p.ownership.is_empty() && p.ownership.hidden_on(dst, in_port))
            })
        }
    };
    took(p, hit);
    forward(p, in_port, buf, m, hit)
}

/// The drop for a packet the director refused; `owned`: its destination is the
/// appliance's (no service there), else it was for another host.
pub(super) fn refused(r: Refused, owned: impl FnOnce() -> bool) -> Verdict {
    Verdict::Drop(match r {
        Refused::NoService if owned() => DropReason::NoService,
        Refused::NoService => DropReason::NotForUs,
        Refused::NotSyn => DropReason::NotSyn,
        Refused::NoDest => DropReason::NoDest,
        Refused::DestUnavailable => DropReason::DestUnavailable,
        Refused::TableFull => DropReason::ConnTableFull,
    })
}

/// Counts a connection the packet made, and remembers the connection it used
/// (what a first fragment leaves for the later ones).
#[inline]
pub(super) fn took(p: &mut Pipeline, hit: Hit) {
    if hit.new {
        p.counters.conns_created.inc();
        p.counters.conns_evicted.set(p.director.evicted);
    }
    p.last_conn = Some((hit.slot, hit.dir == Direction::Output));
}

/// What a connection's packet is sent by, read from the connection `hit` found
/// or made (not a copy of its endpoints): its forwarding method, the client, the
/// virtual address and port, the real server and its port, NAT's checksum sums.
#[derive(Clone, Copy)]
struct Sent {
    fwd: FwdMethod,
    caddr: Ipv4Addr,
    vaddr: Ipv4Addr,
    vport: u16,
    daddr: Ipv4Addr,
    dport: u16,
    sums: [u16; 2],
}

/// `Sent` of the connection `hit` found or made, its packet counted.
#[inline(always)]
fn sent_by(p: &Pipeline, hit: Hit) -> Option<Sent> {
    let c = p.director.hit_conn(hit)?;
    let (fwd, ep, sums) = (c.fwd, &c.ep, c.nat_sums);
    let s = Sent { fwd, caddr: ep.caddr, vaddr: ep.vaddr, vport: ep.vport, daddr: ep.daddr, dport: ep.dport, sums };
    count(p, hit.dir);
    Some(s)
}

/// Sends a whole TCP/UDP packet (decoded as `m`) of the connection `hit` found or
/// made, by its forwarding method.
#[inline(always)]
pub(super) fn forward<B: PacketBuf>(p: &mut Pipeline, in_port: u16, buf: &mut B, m: &Meta, hit: Hit) -> Verdict {
    let Some(c) = sent_by(p, hit) else {
        return Verdict::Drop(DropReason::NoDest);
    };
    let [s_ip, s_l4] = c.sums;
    let (l3, part) = (usize::from(m.l3), Part::Whole { l4: usize::from(m.l4) });
    match (hit.dir, c.fwd) {
        (Direction::Output, _) => nat_to(p, buf, l3, (c.caddr, c.vaddr, c.vport), true, part, [!s_ip, !s_l4]),
        (_, FwdMethod::Masq) => nat_to(p, buf, l3, (c.daddr, c.daddr, c.dport), false, part, [s_ip, s_l4]),
        (_, FwdMethod::Route) => dr_to(p, buf, c.daddr),
        (_, FwdMethod::Tunnel) => tun_to(p, in_port, buf, l3, c.daddr),
        (_, FwdMethod::Local) => local(p, in_port),
    }
}

/// How a connection's packet is sent: what `plan` reads of the connection.
#[derive(Clone, Copy)]
pub(super) enum Plan {
    /// NAT: towards `to`, its destination (its source when `back`: the real
    /// server's reply) rewritten to `addr`:`port`, the checksums moved by `sums`.
    Nat { to: Ipv4Addr, addr: Ipv4Addr, port: u16, back: bool, sums: [u16; 2] },
    /// Direct routing to the real server `to`.
    Route(Ipv4Addr),
    /// Tunnelled to the real server `to`.
    Tunnel(Ipv4Addr),
    /// To a real server on the director itself.
    Local,
}

/// How connection `c`'s packet (its reply when `output`) is sent.
#[inline(always)]
pub(super) fn plan(c: &Conn, output: bool) -> Plan {
    let [s_ip, s_l4] = c.nat_sums;
    let ep = &c.ep;
    match (output, c.fwd) {
        (true, _) => Plan::Nat { to: ep.caddr, addr: ep.vaddr, port: ep.vport, back: true, sums: [!s_ip, !s_l4] },
        (_, FwdMethod::Masq) => {
            Plan::Nat { to: ep.daddr, addr: ep.daddr, port: ep.dport, back: false, sums: [s_ip, s_l4] }
        }
        (_, FwdMethod::Route) => Plan::Route(ep.daddr),
        (_, FwdMethod::Tunnel) => Plan::Tunnel(ep.daddr),
        (_, FwdMethod::Local) => Plan::Local,
    }
}

/// The established path's send for what `forward_known` leaves (a tunnel, a
/// local real server, a next hop the hop cache does not know): as `forward`
/// sends, by `plan`, the verdict given to `out` and counted, when it is a drop or
/// a hold, as the caller would count it.
#[inline(always)]
pub(super) fn forward_to<B: PacketBuf>(
    p: &mut Pipeline,
    in_port: u16,
    buf: &mut B,
    m: &Meta,
    output: bool,
    plan: Plan,
    out: &mut impl Give,
) {
    let dir = if output { Direction::Output } else { Direction::Input };
    let (l3, part) = (usize::from(m.l3), Part::Whole { l4: usize::from(m.l4) });
    // Each way counted, and its verdict given, where it is made.
    match plan {
        Plan::Tunnel(to) => {
            count(p, dir);
            let v = tun_to(p, in_port, buf, l3, to);
            out.give(p.counted(v))
        }
        Plan::Nat { to, addr, port, back, sums } => {
            count(p, dir);
            let v = nat_to(p, buf, l3, (to, addr, port), back, part, sums);
            out.give(p.counted(v))
        }
        Plan::Route(to) => {
            count(p, dir);
            let v = dr_to(p, buf, to);
            out.give(p.counted(v))
        }
        Plan::Local => {
            count(p, dir);
            let v = local(p, in_port);
            out.give(p.counted(v))
        }
    }
}

/// The established path's send, with the connection `c` itself (the packet its
/// reply when `output`): NAT either way, or DR, to a next hop the hop cache
/// knows while the neighbours stay as they were — counted, rewritten, its MACs
/// written, its verdict given to `out` where it is made (not through a join with
/// every other outcome's verdict, which the compiler makes in memory, then
/// copies) and counted when it is a drop; each of `c`'s fields read where it is
/// needed. Anything else is left as it is, and the plan it is sent by returned
/// (for `forward_to`).
#[inline(always)]
pub(super) fn forward_known<B: PacketBuf>(
    hops: &HopCache,
    neigh_generation: u64,
    counters: &Counters,
    buf: &mut B,
    m: &Meta,
    (c, output): (&Conn, bool),
    out: &mut impl Give,
) -> Option<Plan> {
    let (to, nat) = match (output, c.fwd) {
        (true, _) => (c.ep.caddr, true),
        (_, FwdMethod::Masq) => (c.ep.daddr, true),
        (_, FwdMethod::Route) => (c.ep.daddr, false),
        (_, FwdMethod::Tunnel) => return Some(Plan::Tunnel(c.ep.daddr)),
        (_, FwdMethod::Local) => return Some(Plan::Local),
    };
    let Some((port, macs)) = hops.get(to, neigh_generation, !nat) else { return Some(plan(c, output)) };
    match output {
        true => counters.lvs_out_packets.inc(),
        false => counters.lvs_in_packets.inc(),
    }
    if nat {
        let [s_ip, s_l4] = c.nat_sums;
        let (to, sums) =
            if output { ((c.ep.vaddr, c.ep.vport), [!s_ip, !s_l4]) } else { ((c.ep.daddr, c.ep.dport), [s_ip, s_l4]) };
        if !rewrite(buf.data_mut(), usize::from(m.l3), usize::from(m.l4), output, to, output, sums) {
            counters.count_drop(DropReason::TtlExceeded);
            out.give(Verdict::Drop(DropReason::TtlExceeded));
            return None;
        }
    }
    match buf.data_mut().first_chunk_mut::<12>() {
        Some(head) => {
            Macs::of(&macs).write(head);
            out.give(Verdict::Transmit(port));
        }
        None => {
            counters.count_drop(DropReason::L2Truncated);
            out.give(Verdict::Drop(DropReason::L2Truncated));
        }
    }
    None
}

/// Where the established path gives its verdict: a verdict, or a burst's fate.
pub(super) trait Give {
    fn give(&mut self, v: Verdict);
}

impl Give for Verdict {
    #[inline(always)]
    fn give(&mut self, v: Verdict) {
        *self = v;
    }
}

impl Give for super::burst::Fate {
    #[inline(always)]
    fn give(&mut self, v: Verdict) {
        *self = super::burst::Fate::Verdict(v);
    }
}

/// A fragment after the first, of a datagram whose first fragment used the
/// connection at `slot` (`output`: the reply direction): the same forwarding,
/// on the IP header only (there is no transport header in it).
pub(super) fn later_fragment<B: PacketBuf>(
    p: &mut Pipeline,
    in_port: u16,
    buf: &mut B,
    l3: usize,
    slot: u32,
    output: bool,
) -> Verdict {
    let (src, dst) = {
        let ip = ipv4::Packet::new_unchecked(&buf.data()[l3..]);
        (ip.src_addr(), ip.dst_addr())
    };
    // The slot may have been freed and reused since: the addresses must match.
    let Some(c) = p.director.conn(slot).map(Bound::of).filter(|c| {
        if output {
            c.ep.daddr == src && c.ep.caddr == dst
        } else {
            c.ep.caddr == src && c.ep.vaddr == dst
        }
    }) else {
        return Verdict::Drop(DropReason::IpFragment);
    };
    let dir = if output { Direction::Output } else { Direction::Input };
    count(p, dir);
    transmit(p, in_port, buf, l3, &c, dir, Part::Fragment)
}

/// What the transmit needs of a connection: its endpoints and how it is forwarded
/// (a copy, so the pipeline can be borrowed again while sending).
#[derive(Debug, Clone, Copy)]
struct Bound {
    ep: Endpoints,
    fwd: FwdMethod,
    nat_sums: [u16; 2],
}

impl Bound {
    #[inline(always)]
    fn of(c: &Conn) -> Bound {
        Bound { ep: c.ep, fwd: c.fwd, nat_sums: c.nat_sums }
    }
}

/// Counts a packet the LVS stages forward.
#[inline]
fn count(p: &Pipeline, dir: Direction) {
    match dir {
        Direction::Output => p.counters.lvs_out_packets.inc(),
        _ => p.counters.lvs_in_packets.inc(),
    }
}

/// What of a packet the transmit rewrites.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// A whole TCP/UDP packet (transport header at `l4`): address, port, and the
    /// transport checksum.
    Whole { l4: usize },
    /// A fragment after the first: the IP address only (it has no transport header).
    Fragment,
    /// An ICMP error quoting a packet of the connection: the outer address, the
    /// quoted header's address and port, the ICMP checksum. `e3`: the quoted IP
    /// header; `l4`: the ICMP header; `len`: the ICMP message's length.
    IcmpError { e3: usize, l4: usize, len: usize },
}

/// Sends a packet of connection `c` travelling `dir` by the connection's forwarding
/// method (bound when the connection was made: replies exist only for NAT).
#[inline(always)]
fn transmit<B: PacketBuf>(
    p: &mut Pipeline,
    in_port: u16,
    buf: &mut B,
    l3: usize,
    c: &Bound,
    dir: Direction,
    part: Part,
) -> Verdict {
    match (dir, c.fwd) {
        (Direction::Output, _) => nat(p, buf, l3, c, true, part),
        (_, FwdMethod::Masq) => nat(p, buf, l3, c, false, part),
        (_, FwdMethod::Route) => dr(p, buf, c),
        (_, FwdMethod::Tunnel) => tun(p, in_port, buf, l3, c),
        (_, FwdMethod::Local) => local(p, in_port),
    }
}

/// A real server that is the director itself: the packet, unchanged, to the kernel
/// behind the port it came in on (which holds the address, as a DR real server does).
#[inline]
pub(super) fn local(p: &Pipeline, in_port: u16) -> Verdict {
    let host = p.ports.get(usize::from(in_port)).map_or(super::Host::None, |v| v.host);
    p.to_host(host, Verdict::Drop(DropReason::NoKernel))
}

#[inline]
fn read16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn write16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Rewrites one address (source or destination) and its port of an IPv4 TCP/UDP
/// packet at `l3` (transport header at `l4`) to `(addr, port)`, with `ttl_down`
/// the TTL decremented too; `sums` is what the address and port's change does to
/// the IP and transport checksums (`checksum::nat_sums`: a connection's, made
/// once), applied as RFC 1624 has it. False, and nothing changed, when the TTL
/// would reach zero.
///
/// The words are read, summed and written in the machine's byte order, none
/// swapped: one's-complement sums are the same in either order, byte-swapped
/// (RFC 1071, "byte order independence"), and 0 and all ones (UDP's "no checksum"
/// and its stand-in for a computed zero) are their own swaps.
#[inline(always)]
fn rewrite(
    frame: &mut [u8],
    l3: usize,
    l4: usize,
    source: bool,
    to: (Ipv4Addr, u16),
    ttl_down: bool,
    sums: [u16; 2],
) -> bool {
    // The IP header, the transport header's first 8 bytes (ports; UDP's
    // checksum) and TCP's checksum, as fixed-size views: for the common frame
    // (untagged, a 20-byte header) at fixed offsets, one check for all.
    if l3 == 14 && l4 == 34 {
        if let Some((head, rest)) = frame.split_first_chunk_mut::<42>() {
            let (_, head) = head.split_at_mut(14);
            let (ip, l4h) = head.split_at_mut(20);
            if let (Ok(ip), Ok(l4h)) = (<&mut [u8; 20]>::try_from(ip), <&mut [u8; 8]>::try_from(l4h)) {
                let tcp_sum = rest.get_mut(tcp::CHECKSUM_OFFSET - 8..tcp::CHECKSUM_OFFSET - 6);
                return rewrite_headers(ip, l4h, tcp_sum, source, to, ttl_down, sums);
            }
        }
    }
    let Some((head, rest)) = frame.get_mut(l3..).map(|f| f.split_at_mut(l4.saturating_sub(l3).min(f.len()))) else {
        return false;
    };
    let Some((l4h, after)) = rest.split_first_chunk_mut::<8>() else { return false };
    let Some(ip) = head.first_chunk_mut::<20>() else { return false };
    let tcp_sum = after.get_mut(tcp::CHECKSUM_OFFSET - 8..tcp::CHECKSUM_OFFSET - 6);
    rewrite_headers(ip, l4h, tcp_sum, source, to, ttl_down, sums)
}

/// `rewrite` on the headers' views: `ip` the IP header, `l4h` the transport
/// header's first 8 bytes, `tcp_sum` TCP's checksum (when the segment has one).
#[inline(always)]
fn rewrite_headers(
    ip: &mut [u8; 20],
    l4h: &mut [u8; 8],
    tcp_sum: Option<&mut [u8]>,
    source: bool,
    (addr, port): (Ipv4Addr, u16),
    ttl_down: bool,
    [s_ip, s_l4]: [u16; 2],
) -> bool {
    // The TTL's word (TTL, protocol) one less: always this difference.
    const TTL_DOWN: u16 = !u16::from_ne_bytes([1, 0]);
    let ne16 = |b: &[u8], at: usize| u16::from_ne_bytes([b[at], b[at + 1]]);
    let mut d_ip = s_ip;
    let (ttl, proto) = (ip[8], ip[9]);
    if ttl_down {
        if ttl <= 1 {
            return false;
        }
        d_ip = checksum::ones_add(d_ip, TTL_DOWN);
        ip[8] = ttl - 1;
    }
    let at = if source { 12 } else { 16 };
    ip[at..at + 4].copy_from_slice(&addr.octets());
    let c = checksum::apply_sum(ne16(ip, 10), d_ip);
    ip[10..12].copy_from_slice(&c.to_ne_bytes());
    let p_at = if source { 0 } else { 2 };
    l4h[p_at..p_at + 2].copy_from_slice(&port.to_be_bytes());
    if proto == protocol::UDP {
        // A zero UDP checksum is "none": it stays; a computed zero is sent as ones.
        let old = ne16(l4h, 6);
        if old != 0 {
            let c = match checksum::apply_sum(old, s_l4) {
                0 => 0xffff,
                c => c,
            };
            l4h[6..8].copy_from_slice(&c.to_ne_bytes());
        }
    } else if let Some(t) = tcp_sum {
        let c = checksum::apply_sum(ne16(t, 0), s_l4);
        t.copy_from_slice(&c.to_ne_bytes());
    }
    true
}

/// Sets the source (or destination) address of `ip` from `old` to `new`, its
/// header checksum updated incrementally.
#[inline(always)]
fn set_addr(ip: &mut ipv4::Packet<&mut [u8]>, source: bool, old: Ipv4Addr, new: Ipv4Addr) {
    if source {
        ip.set_src_addr(new);
    } else {
        ip.set_dst_addr(new);
    }
    let c = checksum::update_addr(ip.checksum(), old, new);
    ip.set_checksum(c);
}

/// Decrements the TTL of a forwarded packet; false when it reached zero.
fn decrement_ttl(frame: &mut [u8], l3: usize) -> bool {
    let mut ip = ipv4::Packet::new_unchecked(&mut frame[l3..]);
    let ttl = ip.ttl();
    if ttl <= 1 {
        return false;
    }
    let old = u16::from_be_bytes([ttl, ip.protocol()]);
    ip.set_ttl(ttl - 1);
    let new = u16::from_be_bytes([ttl - 1, ip.protocol()]);
    let c = checksum::update16(ip.checksum(), old, new);
    ip.set_checksum(c);
    true
}

/// NAT: towards the real server (`out` false) the destination becomes the real
/// server's address and port; towards the client (`out`: a reply) the source becomes
/// VIP:vport and the TTL drops by one, as the kernel's FORWARD path does.
#[inline(always)]
fn nat<B: PacketBuf>(p: &mut Pipeline, buf: &mut B, l3: usize, c: &Bound, out: bool, part: Part) -> Verdict {
    let ends = if out { (c.ep.caddr, c.ep.vaddr, c.ep.vport) } else { (c.ep.daddr, c.ep.daddr, c.ep.dport) };
    let [s_ip, s_l4] = c.nat_sums;
    nat_to(p, buf, l3, ends, out, part, if out { [!s_ip, !s_l4] } else { [s_ip, s_l4] })
}

/// `nat` with its ends worked out: `to` the next hop's address, `addr` and `port`
/// what the packet's destination (source, `out`) becomes, `sums` what that does
/// to the checksums (`Conn::nat_sums`, or their complements for a reply).
#[inline(always)]
fn nat_to<B: PacketBuf>(
    p: &mut Pipeline,
    buf: &mut B,
    l3: usize,
    (to, addr, port): (Ipv4Addr, Ipv4Addr, u16),
    out: bool,
    part: Part,
    sums: [u16; 2],
) -> Verdict {
    let Some(way) = way(p, to, false) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    let f = buf.data_mut();
    match part {
        Part::Whole { l4 } => {
            if !rewrite(f, l3, l4, out, (addr, port), out, sums) {
                return Verdict::Drop(DropReason::TtlExceeded);
            }
        }
        Part::Fragment if out && !decrement_ttl(f, l3) => return Verdict::Drop(DropReason::TtlExceeded),
        Part::Fragment => set_outer_addr(f, l3, out, addr),
        Part::IcmpError { e3, l4, len } => {
            // The quoted packet travelled the other way: its other end changes.
            set_outer_addr(f, l3, out, addr);
            set_embedded(f, e3, !out, addr, port);
            refill_icmp(f, l4, len);
        }
    }
    send_way(p, buf, way)
}

fn dr<B: PacketBuf>(p: &mut Pipeline, buf: &mut B, c: &Bound) -> Verdict {
    dr_to(p, buf, c.ep.daddr)
}

/// `dr` to the real server `daddr`.
#[inline(always)]
fn dr_to<B: PacketBuf>(p: &mut Pipeline, buf: &mut B, daddr: Ipv4Addr) -> Verdict {
    // Direct routing only reaches real servers on a connected network.
    let Some(way) = way(p, daddr, true) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    send_way(p, buf, way)
}

fn tun<B: PacketBuf>(p: &mut Pipeline, in_port: u16, buf: &mut B, l3: usize, c: &Bound) -> Verdict {
    tun_to(p, in_port, buf, l3, c.ep.daddr)
}

/// `tun` to the real server `daddr`.
fn tun_to<B: PacketBuf>(p: &mut Pipeline, in_port: u16, buf: &mut B, l3: usize, daddr: Ipv4Addr) -> Verdict {
    let Some((eg, macs)) = egress(p, daddr) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    let (inner_len, dont_frag) = {
        let ip = ipv4::Packet::new_unchecked(&buf.data()[l3..]);
        (usize::from(ip.total_len()), ip.dont_frag())
    };
    let mtu = p.ports.get(usize::from(eg.port)).map_or(1500, |v| usize::from(v.mtu));
    if inner_len + TUNNEL_OVERHEAD > mtu {
        if dont_frag {
            let next_mtu = u16::try_from(mtu - TUNNEL_OVERHEAD).unwrap_or(576);
            return super::icmp::frag_needed(p, in_port, buf, l3, next_mtu);
        }
        return Verdict::Drop(DropReason::TunnelTooBig);
    }
    // Drop Ethernet padding, then make room in front: [eth][outer][inner].
    if !buf.truncate(l3 + inner_len) || !buf.prepend(ipip::OVERHEAD) {
        return Verdict::Drop(DropReason::NoHeadroom);
    }
    let frame = buf.data_mut();
    frame.copy_within(ipip::OVERHEAD..ipip::OVERHEAD + l3, 0);
    let (outer, inner) = frame[l3..].split_at_mut(ipip::OVERHEAD);
    ipip::write_outer(outer, inner, eg.src, daddr, TUNNEL_TTL);
    send(p, buf, eg, macs)
}

/// Where a packet to `to` leaves and the MAC addresses it leaves with (the next
/// hop's, then the egress port's), None while the next hop's is unknown: from the
/// hop cache while the neighbours stay as they were, else `resolve`d.
#[inline(always)]
fn egress(p: &mut Pipeline, to: Ipv4Addr) -> Option<(Egress, Option<[u8; 12]>)> {
    if let Some((eg, macs)) = p.hops.get_egress(to, p.neigh.generation()) {
        return Some((eg, Some(macs)));
    }
    look_up(p, to, false)
}

/// Where a packet to `to` leaves (`connected_only`: only if `to` is on a connected
/// network, as direct routing needs) and the MAC addresses it leaves with (the next
/// hop's, then the egress port's), None while the next hop's is unknown: from the
/// routes and the neighbour table (cached when the MAC is known). Out of line: the
/// hop cache answers most packets (`way`).
#[inline(never)]
fn resolve(p: &mut Pipeline, to: Ipv4Addr, connected_only: bool) -> Option<(Egress, Option<[u8; 12]>)> {
    look_up(p, to, connected_only)
}

/// `resolve`, inlined (the tunnel's path measured faster so).
#[inline(always)]
fn look_up(p: &mut Pipeline, to: Ipv4Addr, connected_only: bool) -> Option<(Egress, Option<[u8; 12]>)> {
    let generation = p.neigh.generation();
    let (eg, connected) = p.fib.lookup_kind(to)?;
    if connected_only && !connected {
        return None;
    }
    let src = p.ports.get(usize::from(eg.port))?.mac;
    let macs = p.neigh.lookup(eg.next_hop).map(|n| {
        let mut macs = [0u8; 12];
        macs[..6].copy_from_slice(n.mac.as_bytes());
        macs[6..].copy_from_slice(src.as_bytes());
        macs
    });
    if let Some(macs) = macs {
        p.hops.put(to, generation, eg, connected, macs);
    }
    Some((eg, macs))
}

/// How a packet leaves: by a port with the frame's first 12 bytes (the next hop's
/// MAC, then the port's), or held for ARP while the next hop's MAC is unknown.
#[derive(Debug, Clone, Copy)]
enum Way {
    Known { port: u16, macs: Macs },
    Held(Egress),
}

/// A frame's first 12 bytes (destination and source MACs) as two words (so they
/// are moved as two, not reassembled from pieces of an array).
#[derive(Debug, Clone, Copy)]
struct Macs(u64, u32);

impl Macs {
    #[inline(always)]
    fn of(m: &[u8; 12]) -> Macs {
        let [a, b, c, d, e, f, g, h, i, j, k, l] = *m;
        Macs(u64::from_ne_bytes([a, b, c, d, e, f, g, h]), u32::from_ne_bytes([i, j, k, l]))
    }

    /// Writes them over the frame's first 12 bytes.
    #[inline(always)]
    fn write(self, head: &mut [u8; 12]) {
        let (a, b) = head.split_at_mut(8);
        a.copy_from_slice(&self.0.to_ne_bytes());
        b.copy_from_slice(&self.1.to_ne_bytes());
    }
}

/// How a packet to `to` leaves (`connected_only`: only if `to` is on a connected
/// network, as direct routing needs): from the hop cache while the neighbours stay
/// as they were, else `resolve`d; None: no route.
#[inline(always)]
fn way(p: &mut Pipeline, to: Ipv4Addr, connected_only: bool) -> Option<Way> {
    if let Some((port, macs)) = p.hops.get(to, p.neigh.generation(), connected_only) {
        return Some(Way::Known { port, macs: Macs::of(&macs) });
    }
    Some(match resolve(p, to, connected_only)? {
        (eg, Some(macs)) => Way::Known { port: eg.port, macs: Macs::of(&macs) },
        (eg, None) => Way::Held(eg),
    })
}

/// Writes the frame's destination and source MACs and sends it by `way`'s port
/// (`send` holds it while the next hop's MAC is unknown).
#[inline(always)]
fn send_way<B: PacketBuf>(p: &Pipeline, buf: &mut B, way: Way) -> Verdict {
    match way {
        Way::Known { port, macs } => match buf.data_mut().first_chunk_mut::<12>() {
            Some(head) => {
                macs.write(head);
                Verdict::Transmit(port)
            }
            None => Verdict::Drop(DropReason::L2Truncated),
        },
        Way::Held(eg) => send(p, buf, eg, None),
    }
}

/// Writes the frame's destination and source MACs (`macs`, from `egress`); without
/// them (the next hop unknown) the source only, and the frame is held for ARP.
#[inline(always)]
fn send<B: PacketBuf>(p: &Pipeline, buf: &mut B, eg: Egress, macs: Option<[u8; 12]>) -> Verdict {
    let Some(head) = buf.data_mut().get_mut(..12) else {
        return Verdict::Drop(DropReason::L2Truncated);
    };
    match macs {
        Some(macs) => {
            head.copy_from_slice(&macs);
            Verdict::Transmit(eg.port)
        }
        None => {
            let Some(view) = p.ports.get(usize::from(eg.port)) else {
                return Verdict::Drop(DropReason::UnknownPort);
            };
            head[6..].copy_from_slice(view.mac.as_bytes());
            Verdict::Hold { port: eg.port, next_hop: eg.next_hop, src: eg.src }
        }
    }
}

/// An ICMP error at `l3`; Some(verdict) when it concerns a tracked connection.
pub(super) fn icmp_error<B: PacketBuf>(p: &mut Pipeline, in_port: u16, buf: &mut B, l3: usize) -> Option<Verdict> {
    let frame = buf.data();
    let ip = ipv4::Packet::new_unchecked(&frame[l3..]);
    let l4 = l3 + ip.header_len();
    let msg = icmp::Packet::new_checked(ip.payload()).ok()?;
    let (emb, _) = msg.embedded_ipv4()?;
    let e3 = l4 + icmp::HEADER_LEN;
    let e4 = e3 + emb.header_len();
    if !matches!(emb.protocol(), protocol::TCP | protocol::UDP) {
        return None;
    }
    let (es, ed) = (emb.src_addr(), emb.dst_addr());
    let (sp, dp) = (read16(frame, e4), read16(frame, e4 + 2));
    // The embedded packet travelled the other way: look it up reversed.
    let t = Tuple { proto: emb.protocol(), saddr: ed, sport: dp, daddr: es, dport: sp };
    let hit = p.director.lookup(&t)?;
    if !msg.is_related_error() {
        // Redirects and parameter problems about a connection are not passed on
        // (they would show the other side's addresses).
        return Some(Verdict::Drop(DropReason::IcmpUnhandled));
    }
    // Verified only now: an error about a connection is rare, and its checksum
    // covers the whole message (the kernel's ip_vs_checksum_complete).
    if !msg.verify_checksum() {
        return Some(Verdict::Drop(DropReason::IcmpBadChecksum));
    }
    let c = Bound::of(p.director.conn(hit.slot)?);
    p.counters.icmp_related.inc();
    let icmp_len = usize::from(ip.total_len()) - ip.header_len();
    Some(transmit(p, in_port, buf, l3, &c, hit.dir, Part::IcmpError { e3, l4, len: icmp_len }))
}

fn set_outer_addr(f: &mut [u8], l3: usize, source: bool, a: Ipv4Addr) {
    let mut ip = ipv4::Packet::new_unchecked(&mut f[l3..]);
    let old = if source { ip.src_addr() } else { ip.dst_addr() };
    set_addr(&mut ip, source, old, a);
}

/// Rewrites the embedded header's source (or destination) address and port and its
/// IP checksum (the embedded transport checksum is left, as the kernel does).
fn set_embedded(f: &mut [u8], e3: usize, source: bool, a: Ipv4Addr, port: u16) {
    let hl = {
        let mut ip = ipv4::Packet::new_unchecked(&mut f[e3..]);
        if source {
            ip.set_src_addr(a);
        } else {
            ip.set_dst_addr(a);
        }
        let hl = ip.header_len();
        ip.set_checksum(0);
        hl
    };
    let c = checksum::checksum(&f[e3..e3 + hl]);
    write16(f, e3 + 10, c);
    write16(f, e3 + hl + if source { 0 } else { 2 }, port);
}

fn refill_icmp(f: &mut [u8], l4: usize, len: usize) {
    icmp::Packet::new_unchecked(&mut f[l4..l4 + len]).fill_checksum();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 packet (20-byte header, TTL 64) with `l4` behind it, both checksums
    /// right (a UDP checksum of 0 left as "none").
    fn packet(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0x45, 0, 0, 0, 0, 7, 0, 0, 64, proto, 0, 0, 198, 18, 0, 100, 198, 18, 0, 10];
        let total = u16::try_from(20 + l4.len()).unwrap();
        f[2..4].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(l4);
        let c = checksum::checksum(&f[..20]);
        f[10..12].copy_from_slice(&c.to_be_bytes());
        let at = if proto == protocol::UDP { 26 } else { 36 };
        if proto == protocol::TCP || f[at..at + 2] != [0, 0] {
            f[at..at + 2].copy_from_slice(&[0, 0]);
            let c = l4_checksum(&f);
            f[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        f
    }

    /// The transport checksum computed afresh (zero where the field is).
    fn l4_checksum(f: &[u8]) -> u16 {
        let (src, dst) = (Ipv4Addr::new(f[12], f[13], f[14], f[15]), Ipv4Addr::new(f[16], f[17], f[18], f[19]));
        let len = u16::try_from(f.len() - 20).unwrap();
        !checksum::fold(checksum::sum(checksum::pseudo_header_v4(src, dst, f[9], len), &f[20..]))
    }

    fn sums_to_ones(f: &[u8]) -> bool {
        let (src, dst) = (Ipv4Addr::new(f[12], f[13], f[14], f[15]), Ipv4Addr::new(f[16], f[17], f[18], f[19]));
        let len = u16::try_from(f.len() - 20).unwrap();
        checksum::fold(checksum::sum(checksum::pseudo_header_v4(src, dst, f[9], len), &f[20..])) == 0xffff
    }

    /// The sums of rewriting packet `f`'s source (destination) address and port
    /// to `addr` and `port`, from what it carries now.
    fn sums_to(f: &[u8], source: bool, addr: Ipv4Addr, port: u16) -> [u16; 2] {
        let (at, p_at) = if source { (12, 20) } else { (16, 22) };
        let old = Ipv4Addr::new(f[at], f[at + 1], f[at + 2], f[at + 3]);
        checksum::nat_sums(old, addr, u16::from_be_bytes([f[p_at], f[p_at + 1]]), port)
    }

    #[test]
    fn a_rewrite_leaves_both_checksums_right() {
        // Random addresses, ports and payloads (an LCG), TCP and UDP, either end,
        // with and without the TTL: every header checksum and transport checksum
        // the rewrite leaves is the one computed afresh.
        let mut next = crate::pipeline::testutil::lcg(0x9e37_79b9_7f4a_7c15);
        for i in 0..4000 {
            let proto = if i % 2 == 0 { protocol::TCP } else { protocol::UDP };
            let mut l4 = vec![0u8; if proto == protocol::TCP { 24 } else { 12 }];
            for b in l4.iter_mut() {
                *b = next().to_le_bytes()[0];
            }
            if proto == protocol::TCP {
                l4[12] = 0x50;
            } else {
                l4[4..6].copy_from_slice(&12u16.to_be_bytes());
                l4[6] |= 1;
            }
            let mut f = packet(proto, &l4);
            let (source, ttl_down) = (i % 3 == 0, i % 5 == 0);
            let addr = Ipv4Addr::from(u32::try_from(next()).unwrap());
            let port = u16::try_from(next() & 0xffff).unwrap();
            let (at, p_at) = if source { (12, 20) } else { (16, 22) };
            let sums = sums_to(&f, source, addr, port);
            let before = f.clone();
            assert!(rewrite(&mut f, 0, 20, source, (addr, port), ttl_down, sums));
            // Nothing changes but the TTL, the address, the port and the checksums.
            let sum_at = if proto == protocol::TCP { 36 } else { 26 };
            for (k, (b, a)) in before.iter().zip(&f).enumerate() {
                let may = k == 8 || (10..12).contains(&k) || (at..at + 4).contains(&k);
                let may = may || (p_at..p_at + 2).contains(&k) || (sum_at..sum_at + 2).contains(&k);
                assert!(may || b == a, "case {i}: byte {k} changed");
            }
            assert_eq!((&f[at..at + 4], &f[p_at..p_at + 2]), (&addr.octets()[..], &port.to_be_bytes()[..]));
            assert_eq!(f[8], if ttl_down { 63 } else { 64 });
            assert_eq!(checksum::checksum(&f[..20]), 0, "header checksum, case {i}");
            assert!(sums_to_ones(&f), "transport checksum, case {i}: {f:02x?}");
        }
    }

    #[test]
    fn a_udp_checksum_stays_none_and_a_computed_zero_is_sent_as_ones() {
        let to = Ipv4Addr::new(198, 18, 1, 11);
        let mut udp = [0x15, 0xb3, 0, 80, 0, 12, 0, 0, 0, 0, 0, 0];
        let mut f = packet(protocol::UDP, &udp);
        let sums = sums_to(&f, false, to, 8080);
        assert!(rewrite(&mut f, 0, 20, false, (to, 8080), false, sums));
        assert_eq!(&f[26..28], &[0, 0], "no checksum stays none");
        // A payload word chosen so the rewritten datagram's checksum computes to
        // zero (its other words then sum to all ones): sent as 0xffff (RFC 768).
        let mut after = packet(protocol::UDP, &udp);
        after[16..20].copy_from_slice(&to.octets());
        after[22..24].copy_from_slice(&8080u16.to_be_bytes());
        let (src, dst) = (Ipv4Addr::new(198, 18, 0, 100), to);
        let rest = checksum::fold(checksum::sum(checksum::pseudo_header_v4(src, dst, 17, 12), &after[20..]));
        udp[8..10].copy_from_slice(&(0xffff - rest).to_be_bytes());
        udp[6..8].copy_from_slice(&[0, 1]); // (computed by `packet`)
        let mut f = packet(protocol::UDP, &udp);
        assert_ne!(&f[26..28], &[0, 0]);
        let sums = sums_to(&f, false, to, 8080);
        assert!(rewrite(&mut f, 0, 20, false, (to, 8080), false, sums));
        assert_eq!(&f[26..28], &[0xff, 0xff]);
        assert!(sums_to_ones(&f));
    }
}
