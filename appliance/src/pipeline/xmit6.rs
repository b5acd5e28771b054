//! IPv6 through the director (the kernel's IPv6 halves of `ip_vs_core.c` and
//! `ip_vs_xmit.c`): TCP and UDP to an IPv6 service, or of its connections, found or
//! scheduled in the director's IPv6 table, then sent by the connection's method:
//!
//! - NAT in: destination address and port := the real server's; NAT out (a reply):
//!   source := VIP6:vport and the hop limit down by one. IPv6 has no header
//!   checksum: the transport checksum takes the address change through its
//!   pseudo-header, incrementally (RFC 1624).
//! - DR: only the MACs change; the real server must be on-link.
//! - TUN: an outer IPv6 header (next header 41, RFC 2473) from the port's address
//!   to the real server; a packet that would not fit the egress MTU is answered
//!   with ICMPv6 Packet Too Big (MTU minus the 40-byte outer header) from the VIP.
//!
//! Next hops are on-link destinations (the ports' IPv6 prefixes); their MACs come
//! from neighbour discovery, and a packet whose next hop is unknown is held while
//! the worker solicits it.

use super::counters::DropReason;
use super::{Pipeline, Verdict};
use crate::ipvs::conn::Direction;
use crate::ipvs::conntab::Tuple;
use crate::ipvs::dest::FwdMethod;
use crate::ipvs::director::PacketInfo;
use crate::ipvs::{fwmark, Protocol};
use crate::net::checksum;
use crate::net::ethernet::{self, EthernetAddress};
use crate::net::icmpv6;
use crate::net::ipv6::{self, next_header, Upper};
use crate::net::tcp;
use crate::net::PacketBuf;
use std::net::Ipv6Addr;

/// Hop limit of tunnel headers and of the errors the appliance sends.
const HOP_LIMIT: u8 = 64;
/// Bytes an IPv6-in-IPv6 tunnel header adds.
pub const TUNNEL6_OVERHEAD: usize = ipv6::HEADER_LEN;

/// Where an IPv6 packet leaves: the port, the on-link next hop, and the port's
/// address on that prefix (the source of solicitations and tunnels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress6 {
    pub port: u16,
    pub next_hop: Ipv6Addr,
    pub src: Ipv6Addr,
}

/// An IPv6 static route: `prefix` via `via`, out of port index `port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route6 {
    pub prefix: ipv6::Ipv6Cidr,
    pub via: Ipv6Addr,
    pub port: u16,
}

/// The last egress and next-hop MAC of recent IPv6 destinations, as
/// `route::HopCache` for IPv4: direct-mapped, good while the IPv6 neighbour
/// table's generation stands.
pub struct HopCache6 {
    entries: Vec<Hop6>,
}

#[derive(Debug, Clone, Copy)]
struct Hop6 {
    to: Ipv6Addr,
    /// The neighbour table's generation + 1 (0: empty).
    generation: u64,
    egress: Egress6,
    mac: EthernetAddress,
}

/// Entries in a worker's IPv6 hop cache (a power of two).
pub const HOP6_CACHE_ENTRIES: usize = 256;

impl Default for HopCache6 {
    fn default() -> Self {
        let u = Ipv6Addr::UNSPECIFIED;
        let empty =
            Hop6 { to: u, generation: 0, egress: Egress6 { port: 0, next_hop: u, src: u }, mac: EthernetAddress::ZERO };
        HopCache6 { entries: vec![empty; HOP6_CACHE_ENTRIES] }
    }
}

impl HopCache6 {
    #[inline]
    fn at(to: Ipv6Addr) -> usize {
        let o = to.octets();
        let low = u32::from_be_bytes([o[12], o[13], o[14], o[15]]) ^ u32::from_be_bytes([o[4], o[5], o[6], o[7]]);
        (low.wrapping_mul(0x9e37_79b1) >> 24) as usize & (HOP6_CACHE_ENTRIES - 1)
    }

    #[inline]
    fn get(&self, to: Ipv6Addr, generation: u64) -> Option<&Hop6> {
        let h = self.entries.get(Self::at(to))?;
        (h.generation == generation + 1 && h.to == to).then_some(h)
    }

    #[inline]
    fn put(&mut self, to: Ipv6Addr, generation: u64, egress: Egress6, mac: EthernetAddress) {
        if let Some(h) = self.entries.get_mut(Self::at(to)) {
            *h = Hop6 { to, generation: generation + 1, egress, mac };
        }
    }

    /// Forgets everything (the routes changed).
    pub fn clear(&mut self) {
        self.entries.iter_mut().for_each(|h| h.generation = 0);
    }
}

/// Where a packet to `to` leaves and its next hop's MAC (None while unknown): from
/// the hop cache while the IPv6 neighbours stay as they were, else from the
/// prefixes, routes and neighbour table (and cached once the MAC is known).
fn egress6(p: &mut Pipeline, to: Ipv6Addr) -> Option<(Egress6, Option<EthernetAddress>)> {
    let generation = p.neigh6.generation();
    if let Some(h) = p.hops6.get(to, generation) {
        return Some((h.egress, Some(h.mac)));
    }
    let (eg, mac) = route6(p, to)?;
    if let Some(mac) = mac {
        p.hops6.put(to, generation, eg, mac);
    }
    Some((eg, mac))
}

/// Where a packet to `to` goes next: out of a port to a known MAC, or to a next hop
/// still to be solicited.
#[derive(Debug, Clone, Copy)]
enum Next6 {
    Mac(u16, EthernetAddress),
    Unknown(u16, Ipv6Addr),
}

/// `egress6` for what only needs the port and the MAC (NAT, DR): from the hop cache
/// without copying the rest of its entry.
#[inline]
fn next6(p: &mut Pipeline, to: Ipv6Addr) -> Option<Next6> {
    if let Some(h) = p.hops6.get(to, p.neigh6.generation()) {
        return Some(Next6::Mac(h.egress.port, h.mac));
    }
    let (eg, mac) = egress6(p, to)?;
    Some(match mac {
        Some(mac) => Next6::Mac(eg.port, mac),
        None => Next6::Unknown(eg.port, eg.next_hop),
    })
}

/// The port whose IPv6 prefix holds `to` (the most specific; `to` is its own next
/// hop), else the longest-prefix static route; with the next hop's MAC if known.
fn route6(p: &Pipeline, to: Ipv6Addr) -> Option<(Egress6, Option<EthernetAddress>)> {
    let on_link = |a: Ipv6Addr| {
        p.ports
            .iter()
            .enumerate()
            .flat_map(|(i, v)| v.addresses6.iter().map(move |c| (i, c)))
            .filter(|(_, c)| c.contains(a))
            .max_by_key(|(_, c)| c.prefix_len())
            .map(|(i, c)| (u16::try_from(i).unwrap_or(u16::MAX), c.address()))
    };
    let eg = match on_link(to) {
        Some((port, src)) => Egress6 { port, next_hop: to, src },
        None => {
            let r = p.routes6.iter().find(|r| r.prefix.contains(to))?;
            let src = on_link(r.via).map(|(_, s)| s).or_else(|| {
                p.ports.get(usize::from(r.port)).and_then(|v| v.addresses6.first()).map(ipv6::Ipv6Cidr::address)
            })?;
            Egress6 { port: r.port, next_hop: r.via, src }
        }
    };
    let mac = p.neigh6.lookup(eg.next_hop).map(|n| n.mac);
    Some((eg, mac))
}

/// A TCP or UDP packet (its IPv6 header at `l3`, its transport header where `upper`
/// says) to or through the director.
pub(super) fn transport6<B: PacketBuf>(
    p: &mut Pipeline,
    in_port: u16,
    buf: &mut B,
    l3: usize,
    upper: &Upper,
    hash: Option<u64>,
    now_ms: u64,
) -> Verdict {
    let l4 = l3 + upper.offset;
    let (src, dst, len, sport, dport, tcp_flags) = {
        let frame = buf.data();
        let ip = ipv6::Packet::new_unchecked(&frame[l3..]);
        let total = ip.total_len();
        let seg = &frame[l4..l3 + total];
        let proto = upper.protocol;
        let Some(&[s0, s1, d0, d1, ..]) = seg.get(..8) else {
            return Verdict::Drop(if proto == next_header::TCP {
                DropReason::TcpTruncated
            } else {
                DropReason::UdpTruncated
            });
        };
        let flags = if proto == next_header::TCP {
            let Some(t) = seg.get(..20) else { return Verdict::Drop(DropReason::TcpTruncated) };
            let hl = usize::from(t[12] >> 4) * 4;
            if hl < 20 {
                return Verdict::Drop(DropReason::TcpBadDataOffset);
            }
            if hl > seg.len() {
                return Verdict::Drop(DropReason::TcpTruncated);
            }
            t[13]
        } else {
            // A first fragment holds the header, not the whole datagram its
            // length counts.
            let ulen = usize::from(u16::from_be_bytes([seg[4], seg[5]]));
            if upper.fragment.is_none() && (ulen < 8 || ulen > seg.len()) {
                return Verdict::Drop(DropReason::UdpBadLength);
            }
            0
        };
        let len = u32::try_from(total).unwrap_or(u32::MAX);
        (ip.src_addr(), ip.dst_addr(), len, u16::from_be_bytes([s0, s1]), u16::from_be_bytes([d0, d1]), flags)
    };
    let proto = if upper.protocol == next_header::TCP { Protocol::Tcp } else { Protocol::Udp };
    let fwmark = if p.director.classifier.is_empty6() {
        0
    } else {
        let src_mac = ethernet::Frame::new_unchecked(buf.data()).src_addr();
        p.director.classifier.classify6(&fwmark::Packet { src_mac, proto: proto.number(), src, dst, dport, sport })
    };
    let info = PacketInfo { proto, src, sport, dst, dport, tcp_flags, fwmark, len };
    let h = hash.unwrap_or_else(|| {
        p.director.conns6.hash(&Tuple { proto: proto.number(), saddr: src, sport, daddr: dst, dport })
    });
    let now_s = p.now_s;
    let hit = match p.director.packet_hashed(&info, h, now_s, now_ms) {
        Ok(h) => h,
        Err(r) => return super::xmit::refused(r, || p.ports.get(usize::from(in_port)).is_some_and(|v| v.owns6(dst))),
    };
    super::xmit::took(p, hit);
    forward6(p, in_port, buf, (l3, l4, proto == Protocol::Tcp), hit)
}

/// Sends an IPv6 TCP/UDP packet (`at`: its IPv6 and transport headers' offsets,
/// TCP or not) of the connection `hit` found or made, by its method.
pub(super) fn forward6<B: PacketBuf>(
    p: &mut Pipeline,
    in_port: u16,
    buf: &mut B,
    (l3, l4, tcp): (usize, usize, bool),
    hit: crate::ipvs::director::Hit,
) -> Verdict {
    let Some((ep, fwd)) = p.director.conn::<Ipv6Addr>(hit.slot).map(|c| (c.ep, c.fwd)) else {
        return Verdict::Drop(DropReason::NoDest);
    };
    match hit.dir {
        Direction::Output => p.counters.lvs_out_packets.inc(),
        _ => p.counters.lvs_in_packets.inc(),
    }
    // NAT both ways through one (inlined) rewrite.
    let (to, source, addr, port) = match (hit.dir, fwd) {
        (Direction::Output, _) => (ep.caddr, true, ep.vaddr, ep.vport),
        (_, FwdMethod::Masq) => (ep.daddr, false, ep.daddr, ep.dport),
        _ => return forward6_other(p, in_port, buf, l3, ep.daddr, fwd),
    };
    nat6(p, buf, (l3, l4, tcp), to, source, addr, port)
}

/// `forward6` towards the real server by DR, TUN or Local.
fn forward6_other<B: PacketBuf>(
    p: &mut Pipeline,
    in_port: u16,
    buf: &mut B,
    l3: usize,
    daddr: Ipv6Addr,
    fwd: FwdMethod,
) -> Verdict {
    match fwd {
        FwdMethod::Masq => Verdict::Drop(DropReason::NoDest),
        FwdMethod::Route => match next6(p, daddr) {
            Some(n) => send_next6(p, buf, n),
            None => Verdict::Drop(DropReason::NoRoute),
        },
        FwdMethod::Tunnel => tun6(p, in_port, buf, l3, daddr),
        // The director's own kernel, through the exception path.
        FwdMethod::Local => super::xmit::local(p, in_port),
    }
}

/// NAT: towards the real server (`source` false) the destination becomes `addr`
/// and `port`; towards the client (`source`: a reply) the source does, and the hop
/// limit drops by one. Sent towards `to`. `at`: the IPv6 and transport headers'
/// offsets, and whether the transport is TCP.
#[inline(always)]
fn nat6<B: PacketBuf>(
    p: &mut Pipeline,
    buf: &mut B,
    at: (usize, usize, bool),
    to: Ipv6Addr,
    source: bool,
    addr: Ipv6Addr,
    port: u16,
) -> Verdict {
    let Some(next) = next6(p, to) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    if !rewrite6(buf.data_mut(), at, source, addr, port) {
        return Verdict::Drop(DropReason::TtlExceeded);
    }
    send_next6(p, buf, next)
}

/// Rewrites the source (`source`) or destination address and port of the packet at
/// `l3` (transport header at `l4`, TCP or else UDP), updating the transport checksum
/// through its pseudo-header; a reply's hop limit goes down by one. False when the
/// hop limit runs out.
///
/// As IPv4's rewrite, the words are read, summed and written in the machine's byte
/// order, none swapped (a one's-complement sum is byte-order independent; UDP's
/// computed zero, sent as all ones, is its own swap), and the address's
/// difference is summed in 64-bit words and folded once.
pub(super) fn rewrite6(
    f: &mut [u8],
    (l3, l4, is_tcp): (usize, usize, bool),
    source: bool,
    addr: Ipv6Addr,
    port: u16,
) -> bool {
    let (at, p_at) = if source { (8, 0) } else { (24, 2) };
    let c_at = if is_tcp { tcp::CHECKSUM_OFFSET } else { 6 };
    let Some((head, rest)) = f.get_mut(l3..).map(|f| f.split_at_mut(l4.saturating_sub(l3).min(f.len()))) else {
        return false;
    };
    let (Some(ip), Some(t)) = (head.get_mut(..ipv6::HEADER_LEN), rest.get_mut(..c_at + 2)) else { return false };
    if source {
        if ip[7] <= 1 {
            return false;
        }
        ip[7] -= 1;
    }
    let new = addr.octets();
    let Ok(field) = <&mut [u8; 16]>::try_from(&mut ip[at..at + 16]) else { return false };
    // ~old + new (RFC 1624), two 64-bit words of each.
    let halves = |b: &[u8; 16]| {
        let (hi, lo) = b.split_at(8);
        [hi, lo].map(|h| <[u8; 8]>::try_from(h).map_or(0, u64::from_ne_bytes))
    };
    let ([o0, o1], [n0, n1]) = (halves(field), halves(&new));
    let d_addr = fold64(u128::from(!o0) + u128::from(!o1) + u128::from(n0) + u128::from(n1));
    *field = new;
    let ne16 = |b: &[u8], at: usize| u16::from_ne_bytes([b[at], b[at + 1]]);
    let (old_port, port) = (ne16(t, p_at), u16::from_ne_bytes(port.to_be_bytes()));
    t[p_at..p_at + 2].copy_from_slice(&port.to_ne_bytes());
    let delta = u32::from(d_addr) + checksum::delta16(old_port, port);
    let c = match checksum::apply_delta(ne16(t, c_at), delta) {
        // UDP over IPv6 always has a checksum; a computed zero is sent as ones.
        0 if !is_tcp => 0xffff,
        c => c,
    };
    t[c_at..c_at + 2].copy_from_slice(&c.to_ne_bytes());
    true
}

/// A one's-complement sum of 64-bit words (at most a few, so below 2^67) folded
/// to 16 bits: each fold adds the carries out of the width back in at bit 0.
#[inline(always)]
fn fold64(acc: u128) -> u16 {
    let [lo, hi] = [acc & u128::from(u64::MAX), acc >> 64].map(|w| u64::try_from(w).unwrap_or(0));
    let (s, carry) = lo.overflowing_add(hi);
    // With a carry, s is at most 2^64 - 2: adding it back cannot carry again.
    let s = s + u64::from(carry);
    let s = (s & 0xffff_ffff) + (s >> 32);
    let s = (s & 0xffff_ffff) + (s >> 32);
    checksum::fold(u32::try_from(s).unwrap_or(u32::MAX))
}

/// TUN: the packet in an IPv6 header from the egress port's address to `rip`;
/// too big for the egress MTU, answered with Packet Too Big.
fn tun6<B: PacketBuf>(p: &mut Pipeline, in_port: u16, buf: &mut B, l3: usize, rip: Ipv6Addr) -> Verdict {
    let Some((eg, mac)) = egress6(p, rip) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    let (inner_len, tclass) = {
        let ip = ipv6::Packet::new_unchecked(&buf.data()[l3..]);
        (ip.total_len(), ip.traffic_class())
    };
    let mtu = p.ports.get(usize::from(eg.port)).map_or(1500, |v| usize::from(v.mtu));
    if inner_len + TUNNEL6_OVERHEAD > mtu {
        let mtu = u32::try_from(mtu - TUNNEL6_OVERHEAD).unwrap_or(1280);
        return packet_too_big(p, in_port, buf, l3, mtu);
    }
    // Drop Ethernet padding, then make room in front: [eth][outer][inner].
    if !buf.truncate(l3 + inner_len) || !buf.prepend(TUNNEL6_OVERHEAD) {
        return Verdict::Drop(DropReason::NoHeadroom);
    }
    let frame = buf.data_mut();
    frame.copy_within(TUNNEL6_OVERHEAD..TUNNEL6_OVERHEAD + l3, 0);
    let mut outer = ipv6::Packet::new_unchecked(&mut frame[l3..l3 + TUNNEL6_OVERHEAD]);
    ipv6::Repr {
        src_addr: eg.src,
        dst_addr: rip,
        next_header: next_header::IPV6,
        payload_len: inner_len,
        hop_limit: HOP_LIMIT,
    }
    .emit(&mut outer);
    // RFC 2473 §5.1: the tunnel entry point may copy the traffic class.
    outer.set_ver_tc_flow(tclass, 0);
    send6(p, buf, eg, mac)
}

/// Most of the offending packet an ICMPv6 error quotes: as much as keeps the error
/// within the minimum MTU (RFC 4443 §2.4 (c)).
const QUOTE6_MAX: usize = ipv6::MIN_MTU - ipv6::HEADER_LEN - icmpv6::HEADER_LEN;

/// Turns the packet at `l3` into an ICMPv6 Packet Too Big (`mtu`) from the address
/// it was sent to, back out of `in_port` to where it came from. Built in place.
pub(super) fn packet_too_big<B: PacketBuf>(
    p: &mut Pipeline,
    in_port: u16,
    buf: &mut B,
    l3: usize,
    mtu: u32,
) -> Verdict {
    let Some(view) = p.ports.get(usize::from(in_port)) else {
        return Verdict::Drop(DropReason::UnknownPort);
    };
    let me = view.mac;
    let (src, dst, total) = {
        let ip = ipv6::Packet::new_unchecked(&buf.data()[l3..]);
        (ip.src_addr(), ip.dst_addr(), ip.total_len())
    };
    let quote_len = total.min(QUOTE6_MAX);
    let msg_len = icmpv6::HEADER_LEN + quote_len;
    // Room for the new IPv6 and ICMPv6 headers in front: the quote stays in place.
    let grow = ipv6::HEADER_LEN + icmpv6::HEADER_LEN;
    if !buf.prepend(grow) {
        return Verdict::Drop(DropReason::NoHeadroom);
    }
    let frame = buf.data_mut();
    frame.copy_within(grow..grow + l3, 0);
    ethernet::Frame::new_unchecked(&mut *frame).reflect(me);
    ipv6::Repr {
        src_addr: dst,
        dst_addr: src,
        next_header: next_header::ICMPV6,
        payload_len: msg_len,
        hop_limit: HOP_LIMIT,
    }
    .emit(&mut ipv6::Packet::new_unchecked(&mut frame[l3..l3 + ipv6::HEADER_LEN]));
    {
        let at = l3 + ipv6::HEADER_LEN;
        let mut m = icmpv6::Packet::new_unchecked(&mut frame[at..at + msg_len]);
        m.set_msg_type(icmpv6::msg_type::PACKET_TOO_BIG);
        m.set_msg_code(0);
        m.set_mtu(mtu);
        m.fill_checksum(dst, src);
    }
    if !buf.truncate(l3 + ipv6::HEADER_LEN + msg_len) {
        return Verdict::Drop(DropReason::NoHeadroom);
    }
    p.counters.icmp_frag_needed_sent.inc();
    Verdict::Transmit(in_port)
}

/// A fragment after the first, of a datagram whose first fragment used the IPv6
/// connection at `slot` (`output`: the reply direction): the same forwarding, on
/// the IPv6 header only (no transport header travels in it).
pub(super) fn later_fragment6<B: PacketBuf>(
    p: &mut Pipeline,
    in_port: u16,
    buf: &mut B,
    l3: usize,
    slot: u32,
    output: bool,
) -> Verdict {
    let Some((ep, fwd)) = p.director.conn::<Ipv6Addr>(slot).map(|c| (c.ep, c.fwd)) else {
        return Verdict::Drop(DropReason::IpFragment);
    };
    if output {
        p.counters.lvs_out_packets.inc();
    } else {
        p.counters.lvs_in_packets.inc();
    }
    let (to, rewrite) = match (output, fwd) {
        (true, _) => (ep.caddr, Some((8, ep.vaddr))),
        (false, FwdMethod::Masq) => (ep.daddr, Some((24, ep.daddr))),
        (false, FwdMethod::Route) => (ep.daddr, None),
        (false, FwdMethod::Tunnel) => return tun6(p, in_port, buf, l3, ep.daddr),
        (false, FwdMethod::Local) => return super::xmit::local(p, in_port),
    };
    let Some((eg, mac)) = egress6(p, to) else { return Verdict::Drop(DropReason::NoRoute) };
    if let Some((at, addr)) = rewrite {
        let Some(ip) = buf.data_mut().get_mut(l3..l3 + ipv6::HEADER_LEN) else {
            return Verdict::Drop(DropReason::Ipv6Truncated);
        };
        if output {
            if ip[7] <= 1 {
                return Verdict::Drop(DropReason::TtlExceeded);
            }
            ip[7] -= 1;
        }
        ip[at..at + 16].copy_from_slice(&addr.octets());
    }
    send6(p, buf, eg, mac)
}

/// An ICMPv6 error (its message at `icmp_at`, checksum verified) quoting a TCP or
/// UDP packet of a tracked connection: Some(verdict), as the kernel's
/// `ip_vs_in_icmp_v6` / `ip_vs_out_icmp_v6`. Towards the real server (an error
/// about a reply) NAT makes the outer destination and the quoted source the real
/// server's; towards the client (an error about a packet to the real server) the
/// outer source and the quoted destination become VIP6:vport. DR forwards it as
/// it is, TUN in a tunnel. Parameter problems about a connection are dropped.
pub(super) fn icmp6_error<B: PacketBuf>(
    p: &mut Pipeline,
    in_port: u16,
    buf: &mut B,
    l3: usize,
    icmp_at: usize,
) -> Option<Verdict> {
    let (t, related, e3, end) = {
        let frame = buf.data();
        let end = l3 + ipv6::Packet::new_unchecked(&frame[l3..]).total_len();
        let msg = icmpv6::Packet::new_checked(&frame[icmp_at..end]).ok()?;
        let (emb, rest) = msg.embedded_ipv6()?;
        let proto = emb.next_header();
        if !matches!(proto, next_header::TCP | next_header::UDP) || rest.len() < 8 {
            return None;
        }
        let (sp, dp) = (u16::from_be_bytes([rest[0], rest[1]]), u16::from_be_bytes([rest[2], rest[3]]));
        // The quoted packet travelled the other way: looked up reversed.
        let t = Tuple { proto, saddr: emb.dst_addr(), sport: dp, daddr: emb.src_addr(), dport: sp };
        (t, msg.is_related_error(), icmp_at + icmpv6::HEADER_LEN, end)
    };
    let hit = p.director.lookup::<Ipv6Addr>(&t)?;
    if !related {
        return Some(Verdict::Drop(DropReason::IcmpUnhandled));
    }
    let (ep, fwd) = p.director.conn::<Ipv6Addr>(hit.slot).map(|c| (c.ep, c.fwd))?;
    p.counters.icmp_related.inc();
    let (outer_src, to, rewrite) = match (hit.dir, fwd) {
        // About a packet to the real server: to the client, from the VIP.
        (Direction::Output, _) => (Some(ep.vaddr), ep.caddr, Some((24, 2, ep.vaddr, ep.vport))),
        (_, FwdMethod::Masq) => (None, ep.daddr, Some((8, 0, ep.daddr, ep.dport))),
        (_, FwdMethod::Route) => (None, ep.daddr, None),
        (_, FwdMethod::Tunnel) => return Some(tun6(p, in_port, buf, l3, ep.daddr)),
        (_, FwdMethod::Local) => return Some(super::xmit::local(p, in_port)),
    };
    let Some((eg, mac)) = egress6(p, to) else { return Some(Verdict::Drop(DropReason::NoRoute)) };
    if let Some((at, p_at, addr, port)) = rewrite {
        let f = buf.data_mut();
        // The outer header's other end: the destination towards the real server,
        // the source towards the client.
        let outer_at = if outer_src.is_some() { l3 + 8 } else { l3 + 24 };
        f[outer_at..outer_at + 16].copy_from_slice(&addr.octets());
        f[e3 + at..e3 + at + 16].copy_from_slice(&addr.octets());
        let l4 = e3 + ipv6::HEADER_LEN + p_at;
        f[l4..l4 + 2].copy_from_slice(&port.to_be_bytes());
        let (src, dst) = {
            let ip = ipv6::Packet::new_unchecked(&f[l3..]);
            (ip.src_addr(), ip.dst_addr())
        };
        icmpv6::Packet::new_unchecked(&mut f[icmp_at..end]).fill_checksum(src, dst);
    }
    Some(send6(p, buf, eg, mac))
}

/// Sets the source MAC to the egress port's and the destination MAC to the next
/// hop's; without it the frame is held while the worker solicits the next hop.
fn send6<B: PacketBuf>(p: &mut Pipeline, buf: &mut B, eg: Egress6, mac: Option<EthernetAddress>) -> Verdict {
    send_next6(
        p,
        buf,
        match mac {
            Some(mac) => Next6::Mac(eg.port, mac),
            None => Next6::Unknown(eg.port, eg.next_hop),
        },
    )
}

/// `send6` of a `Next6`.
#[inline]
fn send_next6<B: PacketBuf>(p: &mut Pipeline, buf: &mut B, next: Next6) -> Verdict {
    let (Next6::Mac(port, _) | Next6::Unknown(port, _)) = next;
    let Some(view) = p.ports.get(usize::from(port)) else {
        return Verdict::Drop(DropReason::UnknownPort);
    };
    let mut f = ethernet::Frame::new_unchecked(buf.data_mut());
    f.set_src_addr(view.mac);
    match next {
        Next6::Mac(port, mac) => {
            f.set_dst_addr(mac);
            Verdict::Transmit(port)
        }
        Next6::Unknown(port, hop) => Verdict::Hold6 { port, hop: p.note_hold6(hop) },
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::ipvs::dest::Dest;
    use crate::ipvs::director::Director;
    use crate::ipvs::sched::SchedFlags;
    use crate::ipvs::service::{Service, ServiceKey, ServiceTable};
    use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

    fn a6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// The sum over the IPv6 pseudo-header and the transport segment of the
    /// packet `f` (header at 0, no extension headers), folded.
    fn transport_sum6(f: &[u8]) -> u16 {
        let len = u32::try_from(f.len() - 40).unwrap();
        let acc = checksum::sum(0, &f[8..40]);
        let acc = checksum::add(acc, checksum::sum(0, &len.to_be_bytes()));
        let acc = checksum::add(acc, u32::from(f[6]));
        checksum::fold(checksum::add(acc, checksum::sum(0, &f[40..])))
    }

    #[test]
    fn a_64_bit_word_sum_folds_to_its_ones_complement_value() {
        // Folded, a sum is congruent to it modulo 0xffff, and only 0 folds to 0.
        let reference = |v: u128| if v == 0 { 0 } else { u16::try_from((v - 1) % 0xffff + 1).unwrap() };
        let top = u128::from(u64::MAX);
        for v in [0, 1, 0xfffe, 0xffff, 0x1_0000, top, top + 1, 3 * top + 3, 4 * top, 4 * top + 3, (1 << 67) - 1] {
            assert_eq!(fold64(v), reference(v), "{v:#x}");
        }
    }

    #[test]
    fn an_ipv6_rewrite_leaves_the_transport_checksum_right() {
        // Random addresses, ports and payloads (an LCG), TCP and UDP, either end:
        // every checksum the rewrite leaves is the one computed afresh.
        let mut next = crate::pipeline::testutil::lcg(0x2545_f491_4f6c_dd1d);
        for i in 0..4000 {
            let tcp = i % 2 == 0;
            let mut f = vec![0x60, 0, 0, 0, 0, 0, if tcp { 6 } else { 17 }, 64];
            f.extend((0..32).map(|_| next().to_le_bytes()[0]));
            f.extend((0..if tcp { 24 } else { 12 }).map(|_| next().to_le_bytes()[0]));
            let len = u16::try_from(f.len() - 40).unwrap();
            f[4..6].copy_from_slice(&len.to_be_bytes());
            let c_at = if tcp {
                f[52] = 0x50;
                56
            } else {
                f[44..46].copy_from_slice(&len.to_be_bytes());
                46
            };
            f[c_at..c_at + 2].copy_from_slice(&[0, 0]);
            let c = !transport_sum6(&f);
            f[c_at..c_at + 2].copy_from_slice(&c.to_be_bytes());
            assert_eq!(transport_sum6(&f), 0xffff);
            let source = i % 3 == 0;
            let addr = Ipv6Addr::from(u128::from(next()) << 96 | u128::from(next()) << 64 | u128::from(next()));
            let port = u16::try_from(next() & 0xffff).unwrap();
            assert!(rewrite6(&mut f, (0, 40, tcp), source, addr, port));
            let (at, p_at) = if source { (8, 40) } else { (24, 42) };
            assert_eq!((&f[at..at + 16], &f[p_at..p_at + 2]), (&addr.octets()[..], &port.to_be_bytes()[..]));
            assert_eq!(f[7], if source { 63 } else { 64 }, "a reply's hop limit");
            assert_eq!(transport_sum6(&f), 0xffff, "case {i}: {f:02x?}");
            assert!(tcp || f[c_at..c_at + 2] != [0, 0], "UDP over IPv6 keeps a checksum");
        }
    }
    const INT_MAC: EthernetAddress = EthernetAddress([0x02, 0x1b, 0, 0, 0, 0x02]);
    const RS1_MAC: EthernetAddress = EthernetAddress([0x02, 0x51, 0, 0, 0, 0x0b]);

    /// The test pipeline with IPv6 services on VIP6 2001:2::10: port 80 NAT to
    /// RS 2001:2:0:1::11 / ::12 port 8080 (rr), 81 DR and 82 TUN to ::11; the
    /// client and ::11 are known neighbours, ::12 is not.
    fn pipeline6() -> Pipeline {
        let vip6 = a6("2001:2::10");
        let mut t = ServiceTable::new();
        for (port, fwd, rs_port, rss) in [
            (80, FwdMethod::Masq, 8080, &["2001:2:0:1::11", "2001:2:0:1::12"][..]),
            (81, FwdMethod::Route, 81, &["2001:2:0:1::11"][..]),
            (82, FwdMethod::Tunnel, 82, &["2001:2:0:1::11"][..]),
        ] {
            let key = ServiceKey::Addr6 { proto: Protocol::Tcp, addr: vip6, port };
            let mut s = Service::new(key, "rr", SchedFlags::default(), None).unwrap();
            // Added last first: the list (newest at the head) reads in array order.
            for rs in rss.iter().rev() {
                s.add_dest(Dest::new(a6(rs), rs_port, fwd, 1)).unwrap();
            }
            t.add(s).unwrap();
        }
        let mut p = pipeline().with_director(Director::new(t, 1024, 7));
        p.neigh6.insert_static(a6("2001:2::100"), CLIENT_MAC, 0);
        p.neigh6.insert_static(a6("2001:2:0:1::11"), RS1_MAC, 1);
        p
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp6(
        src_mac: EthernetAddress,
        dst_mac: EthernetAddress,
        s: &str,
        sp: u16,
        d: &str,
        dp: u16,
        syn: bool,
        hop: u8,
        body: &[u8],
    ) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(src_mac.0, dst_mac.0).ipv6(a6(s).octets(), a6(d).octets(), hop);
        let b = if syn { b.tcp(sp, dp, 1, 64240).syn() } else { b.tcp(sp, dp, 1, 64240).ack(1) };
        let mut out = Vec::new();
        b.write(&mut out, body).unwrap();
        out
    }

    /// (eth src, eth dst, ip src, ip dst, hop limit, sport, dport): the TCP checksum verified.
    fn parse_tcp6(f: &[u8]) -> ([u8; 6], [u8; 6], Ipv6Addr, Ipv6Addr, u8, u16, u16) {
        let s = SlicedPacket::from_ethernet(f).expect("parses");
        let Some(etherparse::LinkSlice::Ethernet2(e)) = s.link else { panic!() };
        let Some(NetSlice::Ipv6(ip)) = s.net else { panic!("{:?}", s.net) };
        let h = ip.header();
        let Some(TransportSlice::Tcp(t)) = s.transport else { panic!() };
        let want = t.to_header().calc_checksum_ipv6(&h.to_header(), t.payload()).unwrap();
        assert_eq!(t.checksum(), want, "TCP checksum over the IPv6 pseudo-header");
        (
            e.source(),
            e.destination(),
            h.source_addr(),
            h.destination_addr(),
            h.hop_limit(),
            t.source_port(),
            t.destination_port(),
        )
    }

    #[test]
    fn an_ipv6_syn_on_a_connection_in_time_wait_is_scheduled_anew() {
        use crate::ipvs::conn::{ConnState, TcpState};
        use crate::ipvs::conntab::Found;
        let mut p = pipeline6();
        let syn = tcp6(CLIENT_MAC, PORT_MAC, "2001:2::100", 40010, "2001:2::10", 80, true, 64, b"");
        assert_eq!(p.process(0, &mut syn.clone(), 0), Verdict::Transmit(1), "to ::11");
        let t = Tuple { proto: 6, saddr: a6("2001:2::100"), sport: 40010, daddr: a6("2001:2::10"), dport: 80 };
        let Some(Found::Input(slot)) = p.director.conns6.lookup(&t) else { panic!("made") };
        p.director.conns6.get_mut(slot).unwrap().state = ConnState::Tcp(TcpState::TimeWait);
        // The kernel's conn_reuse_mode: the old connection ends, the SYN is a new
        // one (rr: to ::12, whose MAC is asked for), not the old one's again.
        assert!(matches!(p.process(0, &mut syn.clone(), 0), Verdict::Hold6 { port: 1, .. }), "to ::12");
    }

    #[test]
    fn nat6_rewrites_both_ways_with_the_pseudo_header_checksum() {
        let mut p = pipeline6();
        let mut syn = tcp6(CLIENT_MAC, PORT_MAC, "2001:2::100", 40000, "2001:2::10", 80, true, 64, b"");
        assert_eq!(p.process(0, &mut syn, 0), Verdict::Transmit(1));
        let (es, ed, s, d, hop, sp, dp) = parse_tcp6(&syn);
        assert_eq!((es, ed), (INT_MAC.0, RS1_MAC.0));
        assert_eq!((s, d, hop, sp, dp), (a6("2001:2::100"), a6("2001:2:0:1::11"), 64, 40000, 8080));
        // The reply leaves as VIP6:80, one hop less.
        let mut reply = tcp6(RS1_MAC, INT_MAC, "2001:2:0:1::11", 8080, "2001:2::100", 40000, false, 64, b"hello");
        assert_eq!(p.process(1, &mut reply, 0), Verdict::Transmit(0));
        let (es, ed, s, d, hop, sp, dp) = parse_tcp6(&reply);
        assert_eq!((es, ed), (PORT_MAC.0, CLIENT_MAC.0));
        assert_eq!((s, d, hop, sp, dp), (a6("2001:2::10"), a6("2001:2::100"), 63, 80, 40000));
        assert!(reply.ends_with(b"hello"));
        // rr: the next client goes to ::12, whose MAC is unknown: held for a solicitation.
        let mut syn2 = tcp6(CLIENT_MAC, PORT_MAC, "2001:2::100", 40001, "2001:2::10", 80, true, 64, b"");
        let Verdict::Hold6 { port: 1, hop } = p.process(0, &mut syn2, 0) else { panic!("held") };
        assert_eq!(p.held_hop6(hop), a6("2001:2:0:1::12"));
        // A reply whose hop limit runs out is dropped.
        let mut last = tcp6(RS1_MAC, INT_MAC, "2001:2:0:1::11", 8080, "2001:2::100", 40000, false, 1, b"");
        assert_eq!(p.process(1, &mut last, 0), Verdict::Drop(DropReason::TtlExceeded));
        // No service on port 90; an ACK of no connection.
        let mut other = tcp6(CLIENT_MAC, PORT_MAC, "2001:2::100", 40002, "2001:2::10", 90, true, 64, b"");
        assert_eq!(p.process(0, &mut other, 0), Verdict::Drop(DropReason::NoService));
        let mut stray = tcp6(CLIENT_MAC, PORT_MAC, "2001:2::100", 40003, "2001:2::10", 80, false, 64, b"");
        assert_eq!(p.process(0, &mut stray, 0), Verdict::Drop(DropReason::NotSyn));
        assert_eq!(p.director.conns6.len(), 2);
    }

    #[test]
    fn dr6_changes_macs_only_and_tun6_encapsulates() {
        let mut p = pipeline6();
        let input = tcp6(CLIENT_MAC, PORT_MAC, "2001:2::100", 40000, "2001:2::10", 81, true, 64, b"");
        let mut dr = input.clone();
        assert_eq!(p.process(0, &mut dr, 0), Verdict::Transmit(1));
        assert_eq!(&dr[12..], &input[12..], "only the MACs change");
        assert_eq!((&dr[..6], &dr[6..12]), (&RS1_MAC.0[..], &INT_MAC.0[..]));

        let inner = tcp6(CLIENT_MAC, PORT_MAC, "2001:2::100", 40000, "2001:2::10", 82, true, 64, b"x");
        let mut tun = inner.clone();
        assert_eq!(p.process(0, &mut tun, 0), Verdict::Transmit(1));
        let s = SlicedPacket::from_ethernet(&tun).unwrap();
        let Some(NetSlice::Ipv6(outer)) = s.net else { panic!() };
        let h = outer.header();
        assert_eq!((h.source_addr(), h.destination_addr()), (a6("2001:2:0:1::1"), a6("2001:2:0:1::11")));
        assert_eq!(h.next_header(), etherparse::IpNumber::IPV6);
        assert_eq!(usize::from(h.payload_length()), inner.len() - 14);
        assert_eq!(&tun[14 + 40..], &inner[14..], "the client's packet, unchanged, inside");
    }

    #[test]
    fn an_ipv6_fwmark_rule_picks_the_ipv6_fwmark_service() {
        use crate::ipvs::fwmark::{Classifier, Rule};
        use crate::ipvs::service::Persistence;
        // ip6tables -t mangle -A PREROUTING -d 2001:2::10 -p tcp --dport 443 -j MARK --set-mark 6
        // ipvsadm -A -f 6 -6 -s rr -p 60 -M 64; ipvsadm -a -f 6 -6 -r [2001:2:0:1::11] -m
        let mut p = pipeline6().with_classifier(Classifier::both(
            vec![Rule { proto: Some(Protocol::Tcp), dports: Some((443, 443)), ..Rule::mark(4) }],
            vec![Rule {
                dst: Some("2001:2::10/128".parse().unwrap()),
                proto: Some(Protocol::Tcp),
                dports: Some((443, 443)),
                ..Rule::mark(6)
            }],
        ));
        let mut s =
            Service::new(ServiceKey::Fwmark6(6), "rr", SchedFlags::default(), Some(Persistence::new6(60, 64).unwrap()))
                .unwrap();
        s.add_dest(Dest::new(a6("2001:2:0:1::11"), 0, FwdMethod::Masq, 1)).unwrap();
        p.director.services.add(s).unwrap();
        let mut syn = tcp6(CLIENT_MAC, PORT_MAC, "2001:2::100", 40000, "2001:2::10", 443, true, 64, b"");
        assert_eq!(p.process(0, &mut syn, 0), Verdict::Transmit(1));
        let (_, _, _, d, _, _, dp) = parse_tcp6(&syn);
        assert_eq!((d, dp), (a6("2001:2:0:1::11"), 443), "the mark's service, its port kept");
        // The IPv4 rule's mark 4 has no IPv6 service; unmarked port 444 has none at all.
        let mut other = tcp6(CLIENT_MAC, PORT_MAC, "2001:2::100", 40001, "2001:2::10", 444, true, 64, b"");
        assert_eq!(p.process(0, &mut other, 0), Verdict::Drop(DropReason::NoService));
        // A template for the client's /64 and the mark, and the connection.
        assert_eq!(p.director.conns6.len(), 2);
    }

    #[test]
    fn the_exception_path_takes_the_dip6_s_leftovers_and_local_real_servers() {
        use super::super::{Host, PortView};
        use crate::pipeline::counters::Counters;
        use crate::pipeline::neigh::NeighbourTable;
        // One port holding DIP6 2001:2::2 and VIP6 2001:2::10, with a kernel
        // interface (port 1); VIP6:80 balanced to the director itself (Local).
        let ports = vec![
            PortView {
                mac: PORT_MAC,
                addresses: vec![],
                addresses6: vec!["2001:2::2/64".parse().unwrap(), "2001:2::10/128".parse().unwrap()],
                mtu: 1500,
                host: Host::Via(1),
            },
            PortView { mac: PORT_MAC, addresses: vec![], addresses6: vec![], mtu: 1500, host: Host::For(0) },
        ];
        let mut t = ServiceTable::new();
        let key = ServiceKey::Addr6 { proto: Protocol::Tcp, addr: a6("2001:2::10"), port: 80 };
        let mut s = Service::new(key, "rr", SchedFlags::default(), None).unwrap();
        s.add_dest(Dest::new(a6("2001:2::10"), 80, FwdMethod::Local, 1)).unwrap();
        t.add(s).unwrap();
        let mut p = Pipeline::new(ports, NeighbourTable::with_capacity(4), std::sync::Arc::new(Counters::default()))
            .with_director(Director::new(t, 64, 1));
        // A SYN to VIP6:80 goes to the kernel unchanged (its server answers there).
        let syn = tcp6(CLIENT_MAC, PORT_MAC, "2001:2::100", 40000, "2001:2::10", 80, true, 64, b"");
        let mut f = syn.clone();
        assert_eq!(p.process(0, &mut f, 0), Verdict::Transmit(1));
        assert_eq!(f, syn);
        // The DIP6's own traffic (an ssh to the director, the reply to a kernel
        // connection) is the kernel's ...
        let mut ssh = tcp6(CLIENT_MAC, PORT_MAC, "2001:2::100", 40001, "2001:2::2", 22, true, 64, b"");
        assert_eq!(p.process(0, &mut ssh, 0), Verdict::Transmit(1));
        let mut ack = tcp6(CLIENT_MAC, PORT_MAC, "2001:2::11", 80, "2001:2::2", 40002, false, 64, b"");
        assert_eq!(p.process(0, &mut ack, 0), Verdict::Transmit(1));
        // ... a VIP6's strays are not (no reset for them from the kernel).
        let mut stray = tcp6(CLIENT_MAC, PORT_MAC, "2001:2::100", 40003, "2001:2::10", 22, true, 64, b"");
        assert_eq!(p.process(0, &mut stray, 0), Verdict::Drop(DropReason::NoService));
        // Without a kernel interface the Local real server is unreachable.
        p.ports[0].host = Host::None;
        let mut f = tcp6(CLIENT_MAC, PORT_MAC, "2001:2::100", 40004, "2001:2::10", 80, true, 64, b"");
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::NoKernel));
        let mut ssh = tcp6(CLIENT_MAC, PORT_MAC, "2001:2::100", 40001, "2001:2::2", 22, true, 64, b"");
        assert_eq!(p.process(0, &mut ssh, 0), Verdict::Drop(DropReason::NoService));
    }

    #[test]
    fn a_tunnelled_packet_too_big_is_answered_with_packet_too_big() {
        let mut p = pipeline6();
        let body = vec![0x5au8; 1500 - 40 - 20];
        let mut big = tcp6(CLIENT_MAC, PORT_MAC, "2001:2::100", 40000, "2001:2::10", 82, true, 64, &body);
        let sent = big.clone();
        assert_eq!(p.process(0, &mut big, 0), Verdict::Transmit(0));
        let s = SlicedPacket::from_ethernet(&big).unwrap();
        let Some(NetSlice::Ipv6(ip)) = s.net else { panic!() };
        let h = ip.header();
        assert_eq!((h.source_addr(), h.destination_addr()), (a6("2001:2::10"), a6("2001:2::100")));
        let Some(TransportSlice::Icmpv6(m)) = s.transport else { panic!() };
        let want =
            m.icmp_type().calc_checksum(h.source_addr().octets(), h.destination_addr().octets(), m.payload()).unwrap();
        assert_eq!(m.checksum(), want);
        assert_eq!(m.icmp_type(), etherparse::Icmpv6Type::PacketTooBig { mtu: 1460 });
        assert_eq!(big.len(), 14 + 1280, "the error fits the minimum MTU");
        assert_eq!(&big[14 + 48..], &sent[14..14 + 1232], "quoting the start of the packet");
        assert_eq!((&big[..6], &big[6..12]), (&CLIENT_MAC.0[..], &PORT_MAC.0[..]));
    }

    #[test]
    fn replies_to_a_far_client_take_the_ipv6_route() {
        let router = EthernetAddress([0x02, 0xee, 0, 0, 0, 0x01]);
        let mut p = pipeline6()
            .with_routes6(vec![Route6 { prefix: "2001:db8::/32".parse().unwrap(), via: a6("2001:2::1"), port: 0 }])
            .with_neighbours6(&[(a6("2001:2::1"), router, 0)]);
        let mut syn = tcp6(router, PORT_MAC, "2001:db8::5", 40000, "2001:2::10", 80, true, 60, b"");
        assert_eq!(p.process(0, &mut syn, 0), Verdict::Transmit(1));
        let mut reply = tcp6(RS1_MAC, INT_MAC, "2001:2:0:1::11", 8080, "2001:db8::5", 40000, false, 64, b"");
        assert_eq!(p.process(1, &mut reply, 0), Verdict::Transmit(0));
        let (_, ed, s, d, ..) = parse_tcp6(&reply);
        assert_eq!((ed, s, d), (router.0, a6("2001:2::10"), a6("2001:db8::5")), "to the router's MAC");
        // Nowhere to go: no route.
        let mut p = pipeline6();
        let mut syn = tcp6(router, PORT_MAC, "2001:db8::5", 40000, "2001:2::10", 80, true, 60, b"");
        p.process(0, &mut syn, 0);
        let mut reply = tcp6(RS1_MAC, INT_MAC, "2001:2:0:1::11", 8080, "2001:db8::5", 40000, false, 64, b"");
        assert_eq!(p.process(1, &mut reply, 0), Verdict::Drop(DropReason::NoRoute));
    }

    /// `pipeline6` as worker 0 of two steering by client and port.
    fn worker0_of_2() -> Pipeline {
        use crate::net::rss::{Input, RSS_KEY};
        pipeline6().with_steering(crate::pipeline::steer::Steering::new(RSS_KEY, Input::ClientPort, 2), 0)
    }

    /// The worker that processes `f` arriving on `port` (0: this one).
    fn owner(p: &mut Pipeline, port: u16, f: Vec<u8>) -> u16 {
        use crate::pipeline::burst::{Fate, Source, BURST};
        let mut fates = [Fate::Verdict(Verdict::Consumed); BURST];
        p.run_burst(&mut [(f, port)], Source::Wire, 0, &mut fates);
        match fates[0] {
            Fate::Redirect(o) => o,
            Fate::Verdict(_) => 0,
        }
    }

    #[test]
    fn several_workers_steer_an_ipv6_request_and_its_reply_to_one_owner() {
        let mut p = worker0_of_2();
        let mut owners = [0usize; 2];
        for cport in 40_000..40_200u16 {
            let client = format!("2001:2::{:x}", 0x100 + cport % 7);
            let syn = tcp6(CLIENT_MAC, PORT_MAC, &client, cport, "2001:2::10", 80, true, 64, b"");
            let reply = tcp6(RS1_MAC, INT_MAC, "2001:2:0:1::11", 8080, &client, cport, false, 64, b"");
            let (a, b) = (owner(&mut p, 0, syn), owner(&mut p, 1, reply));
            assert_eq!(a, b, "[{client}]:{cport}");
            owners[usize::from(a)] += 1;
        }
        assert!(owners.iter().all(|&n| n > 40), "both workers own IPv6 clients: {owners:?}");
    }

    #[test]
    fn ipv6_behind_extension_headers_and_errors_about_it_go_to_the_connection_s_owner() {
        let mut p = worker0_of_2();
        // `f` with an 8-byte extension header `kind` (bytes after its next header)
        // between the IPv6 header and TCP.
        let behind = |f: &[u8], kind: u8, rest: [u8; 7]| {
            let mut g = f[..54].to_vec();
            g[20] = kind;
            g.push(next_header::TCP);
            g.extend_from_slice(&rest);
            g.extend_from_slice(&f[54..]);
            let plen = u16::from_be_bytes([g[18], g[19]]) + 8;
            g[18..20].copy_from_slice(&plen.to_be_bytes());
            g
        };
        let mut owners = [0usize; 2];
        for cport in 40_000..40_100u16 {
            let client = format!("2001:2::{:x}", 0x100 + cport % 5);
            let reply = tcp6(RS1_MAC, INT_MAC, "2001:2:0:1::11", 8080, &client, cport, false, 64, b"");
            let want = owner(&mut p, 1, reply);
            owners[usize::from(want)] += 1;
            let syn = tcp6(CLIENT_MAC, PORT_MAC, &client, cport, "2001:2::10", 80, true, 64, b"");
            let opts = behind(&syn, next_header::DEST_OPTIONS, [0, 1, 4, 0, 0, 0, 0]);
            assert_eq!(owner(&mut p, 0, opts), want, "behind destination options: [{client}]:{cport}");
            let first = behind(&syn, 44, [0, 0, 1, 0, 0, 0, 7]);
            assert_eq!(owner(&mut p, 0, first), want, "a first fragment: [{client}]:{cport}");
            // RS1's port unreachable about client -> RS1:8080 (NAT's inside).
            let to_rs = tcp6(INT_MAC, RS1_MAC, &client, cport, "2001:2:0:1::11", 8080, true, 64, b"");
            let t = etherparse::Icmpv6Type::DestinationUnreachable(etherparse::icmpv6::DestUnreachableCode::Port);
            let err = icmp6_error_frame(RS1_MAC, INT_MAC, "2001:2:0:1::11", &client, t, &to_rs[14..]);
            assert_eq!(owner(&mut p, 1, err), want, "an ICMPv6 error about it: [{client}]:{cport}");
        }
        assert!(owners.iter().all(|&n| n > 20), "both workers own clients: {owners:?}");
    }

    /// An ICMPv6 error of type `t` from `src` to `dst` quoting `quote` (an IPv6
    /// packet without its Ethernet header), in a frame from `mac` to `to`.
    fn icmp6_error_frame(
        mac: EthernetAddress,
        to: EthernetAddress,
        src: &str,
        dst: &str,
        t: etherparse::Icmpv6Type,
        quote: &[u8],
    ) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(mac.0, to.0).ipv6(a6(src).octets(), a6(dst).octets(), 64).icmpv6(t);
        let mut out = Vec::new();
        b.write(&mut out, quote).unwrap();
        out
    }

    /// (outer src, outer dst, quoted src:port, quoted dst:port, ICMPv6 type): the checksum verified.
    fn parse_error(f: &[u8]) -> (Ipv6Addr, Ipv6Addr, (Ipv6Addr, u16), (Ipv6Addr, u16), etherparse::Icmpv6Type) {
        let s = SlicedPacket::from_ethernet(f).unwrap();
        let Some(NetSlice::Ipv6(ip)) = s.net else { panic!() };
        let h = ip.header();
        let Some(TransportSlice::Icmpv6(m)) = s.transport else { panic!() };
        let want =
            m.icmp_type().calc_checksum(h.source_addr().octets(), h.destination_addr().octets(), m.payload()).unwrap();
        assert_eq!(m.checksum(), want, "ICMPv6 checksum after the rewrite");
        let q = m.payload();
        let (qs, qd) = (ipv6::read_ipv6(q, 8), ipv6::read_ipv6(q, 24));
        let port = |at: usize| u16::from_be_bytes([q[at], q[at + 1]]);
        (h.source_addr(), h.destination_addr(), (qs, port(40)), (qd, port(42)), m.icmp_type())
    }

    #[test]
    fn icmp6_errors_about_a_nat_connection_are_translated_both_ways() {
        let mut p = pipeline6();
        let mut syn = tcp6(CLIENT_MAC, PORT_MAC, "2001:2::100", 40000, "2001:2::10", 80, true, 64, b"");
        assert_eq!(p.process(0, &mut syn, 0), Verdict::Transmit(1));
        // A router on the client's side cannot pass a reply (VIP6:80 -> client): to RS1.
        let reply_seen = tcp6(PORT_MAC, CLIENT_MAC, "2001:2::10", 80, "2001:2::100", 40000, false, 63, b"data");
        let ptb = etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 };
        let mut f = icmp6_error_frame(CLIENT_MAC, PORT_MAC, "2001:2::1", "2001:2::10", ptb, &reply_seen[14..]);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Transmit(1));
        let (s, d, qs, qd, t) = parse_error(&f);
        assert_eq!((s, d), (a6("2001:2::1"), a6("2001:2:0:1::11")), "on to the real server");
        assert_eq!((qs, qd), ((a6("2001:2:0:1::11"), 8080), (a6("2001:2::100"), 40000)), "quoting what it sent");
        assert_eq!(t, ptb);
        assert_eq!(&f[..6], &RS1_MAC.0[..]);
        // The real server's side reports a packet to it undeliverable: to the client, from VIP6.
        let to_rs = tcp6(INT_MAC, RS1_MAC, "2001:2::100", 40000, "2001:2:0:1::11", 8080, false, 64, b"");
        let unreach = etherparse::Icmpv6Type::DestinationUnreachable(etherparse::icmpv6::DestUnreachableCode::Port);
        let mut f = icmp6_error_frame(RS1_MAC, INT_MAC, "2001:2:0:1::11", "2001:2::100", unreach, &to_rs[14..]);
        assert_eq!(p.process(1, &mut f, 0), Verdict::Transmit(0));
        let (s, d, qs, qd, _) = parse_error(&f);
        assert_eq!((s, d), (a6("2001:2::10"), a6("2001:2::100")));
        assert_eq!((qs, qd), ((a6("2001:2::100"), 40000), (a6("2001:2::10"), 80)), "the client's own packet");
        assert_eq!(p.counters.snapshot().icmp_related, 2);
        // About no connection: an owned destination counts it as untracked.
        let stray = tcp6(PORT_MAC, CLIENT_MAC, "2001:2::10", 81, "2001:2::100", 1, false, 63, b"");
        let mut f = icmp6_error_frame(CLIENT_MAC, PORT_MAC, "2001:2::1", "2001:2::10", ptb, &stray[14..]);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::IcmpErrorUntracked));
    }

    /// An IPv6 fragment of a TCP datagram (identification `id`, byte offset
    /// `offset`, more to come) carrying `data`, client -> VIP6:80.
    fn fragment6(id: u32, offset: u16, more: bool, data: &[u8]) -> Vec<u8> {
        let mut frag = vec![next_header::TCP, 0];
        frag.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
        frag.extend_from_slice(&id.to_be_bytes());
        frag.extend_from_slice(data);
        let mut ip = vec![0u8; 40];
        ipv6::Repr {
            src_addr: a6("2001:2::100"),
            dst_addr: a6("2001:2::10"),
            next_header: next_header::FRAGMENT,
            payload_len: frag.len(),
            hop_limit: 64,
        }
        .emit(&mut ipv6::Packet::new_unchecked(&mut ip[..]));
        ip.extend_from_slice(&frag);
        let mut f = vec![0u8; 14];
        ethernet::Frame::new_unchecked(&mut f[..]).set_dst_addr(PORT_MAC);
        ethernet::Frame::new_unchecked(&mut f[..]).set_src_addr(CLIENT_MAC);
        f[12..14].copy_from_slice(&ethernet::ethertype::IPV6.to_be_bytes());
        f.extend_from_slice(&ip);
        f
    }

    #[test]
    fn ipv6_fragments_follow_their_first_fragments_connection() {
        let mut p = pipeline6();
        // The first fragment: a SYN's 20-byte header and 4 bytes of data.
        let mut tcp = vec![0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0];
        tcp.extend_from_slice(b"abcd");
        let mut first = fragment6(0x1234, 0, true, &tcp);
        assert_eq!(p.process(0, &mut first, 0), Verdict::Transmit(1));
        let ip = ipv6::Packet::new_unchecked(&first[14..]);
        assert_eq!(ip.dst_addr(), a6("2001:2:0:1::11"));
        assert_eq!(&first[14 + 48..14 + 52], &[0x9c, 0x40, 0x1f, 0x90], "ports: 8080 now");
        // The rest of the datagram: no ports, the same real server.
        let mut rest = fragment6(0x1234, 24, false, b"efghijkl");
        assert_eq!(p.process(0, &mut rest, 1), Verdict::Transmit(1));
        assert_eq!(ipv6::Packet::new_unchecked(&rest[14..]).dst_addr(), a6("2001:2:0:1::11"));
        assert!(rest.ends_with(b"efghijkl"));
        assert_eq!(&rest[..6], &RS1_MAC.0[..]);
        // Another datagram's later fragment, whose first was never seen.
        let mut stray = fragment6(0x9999, 24, false, b"efghijkl");
        assert_eq!(p.process(0, &mut stray, 1), Verdict::Drop(DropReason::IpFragment));
        // Entries expire.
        let mut late = fragment6(0x1234, 32, false, b"mnop");
        assert_eq!(p.process(0, &mut late, crate::pipeline::frag::TTL_MS + 1), Verdict::Drop(DropReason::IpFragment));
    }

    #[test]
    fn the_ipv6_established_path_is_the_general_path_shortened() {
        // The same frames through the decode (and so the established path) and
        // through the general path alone (an undecoded frame): same verdicts,
        // bytes and connection states.
        let (mut fast, mut general) = (pipeline6(), pipeline6());
        let c = "2001:2::100";
        let frames: Vec<(u16, Vec<u8>)> = vec![
            (0, tcp6(CLIENT_MAC, PORT_MAC, c, 40000, "2001:2::10", 80, true, 64, b"")),
            (1, tcp6(RS1_MAC, INT_MAC, "2001:2:0:1::11", 8080, c, 40000, false, 64, b"")),
            (0, tcp6(CLIENT_MAC, PORT_MAC, c, 40000, "2001:2::10", 80, false, 64, b"GET /")),
            (1, tcp6(RS1_MAC, INT_MAC, "2001:2:0:1::11", 8080, c, 40000, false, 1, b"")),
            (0, tcp6(CLIENT_MAC, PORT_MAC, c, 40001, "2001:2::10", 81, true, 64, b"")),
            (0, tcp6(CLIENT_MAC, PORT_MAC, c, 40001, "2001:2::10", 81, false, 64, b"x")),
            (0, tcp6(CLIENT_MAC, PORT_MAC, c, 40002, "2001:2::10", 82, true, 64, b"")),
            (0, tcp6(CLIENT_MAC, PORT_MAC, c, 40002, "2001:2::10", 82, false, 64, b"y")),
            (0, tcp6(CLIENT_MAC, PORT_MAC, c, 49999, "2001:2::10", 80, false, 64, b"")),
        ];
        for (i, (port, f)) in frames.into_iter().enumerate() {
            let (mut a, mut b) = (f.clone(), f);
            let va = fast.process(port, &mut a, 1000);
            let vb = general.process_decoded(port, &mut b, &crate::pipeline::meta::Meta::default(), 1000);
            assert_eq!(va, vb, "frame {i}");
            assert_eq!(a, b, "frame {i} bytes");
        }
        let states = |p: &Pipeline| p.director.conns6.iter().map(|(_, c)| (c.ep, c.state, c.flags)).collect::<Vec<_>>();
        assert_eq!(states(&fast), states(&general));
        assert_eq!(fast.director.conns6.len(), 3);
    }
}
