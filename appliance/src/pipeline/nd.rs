//! IPv6 input: the header and its extension headers checked, then what is for the
//! appliance itself — neighbour discovery (RFC 4861: solicitations for owned
//! addresses answered, neighbours learned from solicitations and advertisements)
//! and ICMPv6 echo.
//!
//! Learning follows Linux as for ARP: a solicitation for one of our addresses
//! creates (or refreshes) its sender's entry from the source link-layer option; an
//! advertisement unicast to us creates its target's, any other refreshes a known
//! one; only on-link senders are learned, static entries are never overwritten.

use super::counters::DropReason;
use super::icmp::DEFAULT_TTL;
use super::neigh::{Learned, NeighUpdate};
use super::{Pipeline, Verdict};
use crate::net::ethernet::{self, EthernetAddress};
use crate::net::icmpv6::{self, msg_type, na_flags, nd_option};
use crate::net::ipv6::{self, next_header, ExtError};
use crate::net::PacketBuf;
use std::net::{IpAddr, Ipv6Addr};

/// Hop limit of neighbour discovery messages, sent and required (RFC 4861 §7.1).
pub const ND_HOP_LIMIT: u8 = 255;

/// A neighbour advertisement with its target link-layer address option.
const NA_LEN: usize = icmpv6::ND_LEN + icmpv6::LL_OPTION_LEN;

/// Checks the IPv6 packet at `l3` of `buf` received on `port`, then handles it.
/// `hash`: the IPv6 table's hash of its tuple when the decode worked it out.
pub(super) fn ipv6_input<B: PacketBuf>(
    p: &mut Pipeline,
    port: u16,
    buf: &mut B,
    l3: usize,
    hash: Option<u64>,
    now_ms: u64,
) -> Verdict {
    let (src, dst, hop_limit, upper) = {
        let Some(ip) = buf.data().get(l3..).filter(|b| b.len() >= ipv6::HEADER_LEN).map(ipv6::Packet::new_unchecked)
        else {
            return Verdict::Drop(DropReason::Ipv6Truncated);
        };
        if ip.version() != 6 {
            return Verdict::Drop(DropReason::Ipv6BadVersion);
        }
        if ip.check_len().is_err() {
            return Verdict::Drop(DropReason::Ipv6BadLength);
        }
        let upper = match ipv6::upper_layer(ip.packet()) {
            Ok(u) => u,
            Err(ExtError::Truncated) => return Verdict::Drop(DropReason::Ipv6ExtTruncated),
            Err(ExtError::TooLong) => return Verdict::Drop(DropReason::Ipv6ExtTooMany),
            Err(ExtError::MisplacedHopByHop) => return Verdict::Drop(DropReason::Ipv6ExtMisplaced),
        };
        (ip.src_addr(), ip.dst_addr(), ip.hop_limit(), upper)
    };
    let Some(view) = p.ports.get(usize::from(port)) else {
        return Verdict::Drop(DropReason::UnknownPort);
    };
    let host = view.host;
    // An address VRRP carries is ours only while its instance is MASTER.
    let carried = if p.ownership.is_empty6() { None } else { p.ownership.carried6(dst) };
    if carried.is_some_and(|(_, master)| !master) {
        return Verdict::Drop(DropReason::Standby);
    }
    let owned = view.owns6(dst) || carried.is_some_and(|(on, _)| on == port);
    let transport = matches!(upper.protocol, next_header::TCP | next_header::UDP);
    if transport && !upper.routing_pending && !dst.is_multicast() {
        let Some(f) = upper.fragment else {
            let v = super::xmit6::transport6(p, port, buf, l3, &upper, hash, now_ms);
            // What the data plane leaves of the DIP6's traffic is the kernel's (its
            // own connections, replies to its health checks); a VIP's never is.
            return match v {
                Verdict::Drop(DropReason::NoService | DropReason::NotSyn) if p.host_address6(port, dst) => {
                    p.to_host(host, v)
                }
                v => v,
            };
        };
        // Fragments as IPv4's (`frag`): the first goes through like any packet and
        // leaves its connection for the later ones, which carry no ports.
        let key = super::frag::Key6 { src, dst, id: f.ident };
        if f.offset != 0 {
            return match p.frags6.lookup(&key, now_ms) {
                Some((slot, output)) => super::xmit6::later_fragment6(p, port, buf, l3, slot, output),
                None => Verdict::Drop(DropReason::IpFragment),
            };
        }
        p.last_conn = None;
        let v = super::xmit6::transport6(p, port, buf, l3, &upper, None, now_ms);
        if let Some((slot, output)) = p.last_conn {
            p.frags6.insert(key, slot, output, now_ms);
        }
        return v;
    }
    if upper.protocol != next_header::ICMPV6 || upper.is_later_fragment() {
        return if owned {
            Verdict::Drop(DropReason::NoService)
        } else if dst.is_multicast() {
            // Link-scope groups (MLD, VRRP v3) are the kernel interface's.
            p.to_host(host, Verdict::Drop(DropReason::NotForUs))
        } else {
            Verdict::Drop(DropReason::NotForUs)
        };
    }
    let icmp_at = l3 + upper.offset;
    let kind = {
        let ip = ipv6::Packet::new_unchecked(&buf.data()[l3..]);
        let msg = icmpv6::Packet::new_unchecked(&ip.packet()[upper.offset..]);
        if msg.check_len().is_err() {
            return Verdict::Drop(DropReason::Icmpv6Truncated);
        }
        if !msg.verify_checksum(src, dst) {
            return Verdict::Drop(DropReason::Icmpv6BadChecksum);
        }
        msg.msg_type()
    };
    if kind < 128 {
        // An error about a connection the director tracks goes where the
        // connection goes (translated for NAT).
        if let Some(v) = super::xmit6::icmp6_error(p, port, buf, l3, icmp_at) {
            return v;
        }
        if owned {
            let v = Verdict::Drop(DropReason::IcmpErrorUntracked);
            return if p.host_address6(port, dst) { p.to_host(host, v) } else { v };
        }
    }
    match kind {
        msg_type::NEIGHBOUR_SOLICIT => solicitation(p, port, buf, l3, icmp_at, src, dst, hop_limit, now_ms),
        msg_type::NEIGHBOUR_ADVERT => {
            let v = advertisement(p, port, buf.data(), icmp_at, dst, hop_limit, now_ms);
            // Advertisements also teach the kernel (its own solicitations left through us).
            match v {
                Verdict::Consumed => p.to_host(host, v),
                v => v,
            }
        }
        msg_type::ECHO_REQUEST if owned => echo_reply(p, port, buf, l3, icmp_at, src, dst),
        _ if owned => p.to_host(host, Verdict::Drop(DropReason::Icmpv6Unhandled)),
        _ if dst.is_multicast() => p.to_host(host, Verdict::Drop(DropReason::NotForUs)),
        _ => Verdict::Drop(DropReason::NotForUs),
    }
}

/// A neighbour solicitation (its ICMPv6 message at `icmp_at`; checksum verified).
#[allow(clippy::too_many_arguments)]
fn solicitation<B: PacketBuf>(
    p: &mut Pipeline,
    port: u16,
    buf: &mut B,
    l3: usize,
    icmp_at: usize,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    now_ms: u64,
) -> Verdict {
    let frame = buf.data();
    let msg = icmpv6::Packet::new_unchecked(&frame[icmp_at..]);
    let target = msg.nd_target();
    let Ok(sll) = msg.nd_ll_addr(nd_option::SOURCE_LL_ADDR) else {
        return Verdict::Drop(DropReason::NdInvalid);
    };
    // RFC 4861 §7.1.1; a duplicate address detection probe (unspecified source)
    // goes to the solicited-node group and carries no link-layer address.
    let dad = src.is_unspecified();
    if hop_limit != ND_HOP_LIMIT
        || msg.msg_code() != 0
        || target.is_multicast()
        || (dad && (dst != ipv6::solicited_node(target) || sll.is_some()))
    {
        return Verdict::Drop(DropReason::NdInvalid);
    }
    let Some(view) = p.ports.get(usize::from(port)) else {
        return Verdict::Drop(DropReason::UnknownPort);
    };
    let mine = view.owns6(target) || (!p.ownership.is_empty6() && p.ownership.master_on6(target, port));
    let for_us = mine && (dst == target || dst == ipv6::solicited_node(target));
    let learnable = view.is_connected6(src) && !view.owns6(src);
    let me = view.mac;
    let from_mac = ethernet::Frame::new_unchecked(frame).src_addr();
    if let Some(mac) = sll.filter(|m| m.is_unicast() && learnable) {
        learn(p, src, mac, port, now_ms, for_us);
    }
    if !for_us {
        return Verdict::Drop(DropReason::NdNotForUs);
    }
    // To the solicitor; a probe's answer goes to all nodes, unsolicited.
    let (to_ip, to_mac, flags) = if dad {
        (ipv6::ALL_NODES, ipv6::multicast_mac(ipv6::ALL_NODES), na_flags::OVERRIDE)
    } else {
        (src, sll.unwrap_or(from_mac), na_flags::SOLICITED | na_flags::OVERRIDE)
    };
    if !write_advert(buf, l3, me, to_mac, target, to_ip, flags) {
        return Verdict::Drop(DropReason::NoHeadroom);
    }
    p.counters.nd_adverts.inc();
    Verdict::Transmit(port)
}

/// A neighbour advertisement (checksum verified): learned, never answered.
fn advertisement(
    p: &mut Pipeline,
    port: u16,
    frame: &[u8],
    icmp_at: usize,
    dst: Ipv6Addr,
    hop_limit: u8,
    now_ms: u64,
) -> Verdict {
    let msg = icmpv6::Packet::new_unchecked(&frame[icmp_at..]);
    let target = msg.nd_target();
    let Ok(tll) = msg.nd_ll_addr(nd_option::TARGET_LL_ADDR) else {
        return Verdict::Drop(DropReason::NdInvalid);
    };
    // RFC 4861 §7.1.2: a multicast advertisement is never solicited.
    if hop_limit != ND_HOP_LIMIT
        || msg.msg_code() != 0
        || target.is_multicast()
        || (dst.is_multicast() && msg.na_flags() & na_flags::SOLICITED != 0)
    {
        return Verdict::Drop(DropReason::NdInvalid);
    }
    let Some(view) = p.ports.get(usize::from(port)) else {
        return Verdict::Drop(DropReason::UnknownPort);
    };
    let learnable = view.is_connected6(target) && !view.owns6(target);
    // A reply to our solicitation creates the entry; others refresh.
    let create = !dst.is_multicast() && view.owns6(dst);
    if let Some(mac) = tll.filter(|m| m.is_unicast() && learnable) {
        learn(p, target, mac, port, now_ms, create);
    }
    Verdict::Consumed
}

fn learn(p: &mut Pipeline, a: Ipv6Addr, mac: EthernetAddress, port: u16, now_ms: u64, create: bool) {
    match p.neigh6.learn(a, mac, port, now_ms, create) {
        Some(Learned::Created) => {
            p.counters.neigh_learned.inc();
            p.neigh_updates.push(NeighUpdate { addr: IpAddr::V6(a), mac, port });
        }
        Some(Learned::Moved) => p.neigh_updates.push(NeighUpdate { addr: IpAddr::V6(a), mac, port }),
        Some(Learned::Full) => p.counters.neigh_table_full.inc(),
        _ => {}
    }
}

/// Makes `buf` exactly `len` bytes (grown at the front or cut at the end: the
/// caller rewrites all of it). False when there is no room.
fn resize<B: PacketBuf>(buf: &mut B, len: usize) -> bool {
    let have = buf.data().len();
    if have < len {
        buf.prepend(len - have)
    } else {
        buf.truncate(len)
    }
}

/// Rewrites `buf` (its Ethernet header `l3` bytes, VLAN tag kept) into a neighbour
/// advertisement for `target` from `me` to `to_ip` at `to_mac`, with `flags` and
/// the target link-layer address option.
fn write_advert<B: PacketBuf>(
    buf: &mut B,
    l3: usize,
    me: EthernetAddress,
    to_mac: EthernetAddress,
    target: Ipv6Addr,
    to_ip: Ipv6Addr,
    flags: u8,
) -> bool {
    let mut head = [0u8; ethernet::VLAN_HEADER_LEN];
    let l3 = l3.min(head.len());
    head[..l3].copy_from_slice(&buf.data()[..l3]);
    if !resize(buf, l3 + ipv6::HEADER_LEN + NA_LEN) {
        return false;
    }
    let frame = buf.data_mut();
    frame[..l3].copy_from_slice(&head[..l3]);
    advert_into(frame, l3, me, to_mac, target, to_ip, flags);
    true
}

/// Writes the advertisement after an Ethernet header of `l3` bytes (its addresses
/// set here) into `frame`, exactly `l3 + 40 + NA_LEN` bytes long.
fn advert_into(
    frame: &mut [u8],
    l3: usize,
    me: EthernetAddress,
    to_mac: EthernetAddress,
    target: Ipv6Addr,
    to_ip: Ipv6Addr,
    flags: u8,
) {
    let mut eth = ethernet::Frame::new_unchecked(&mut *frame);
    eth.set_dst_addr(to_mac);
    eth.set_src_addr(me);
    let (ip, msg) = frame[l3..].split_at_mut(ipv6::HEADER_LEN);
    ipv6::Repr {
        src_addr: target,
        dst_addr: to_ip,
        next_header: next_header::ICMPV6,
        payload_len: NA_LEN,
        hop_limit: ND_HOP_LIMIT,
    }
    .emit(&mut ipv6::Packet::new_unchecked(ip));
    let mut m = icmpv6::Packet::new_unchecked(msg);
    m.set_msg_type(msg_type::NEIGHBOUR_ADVERT);
    m.set_msg_code(0);
    m.clear_rest();
    m.set_na_flags(flags);
    m.set_nd_target(target);
    m.set_ll_option(icmpv6::ND_LEN, nd_option::TARGET_LL_ADDR, me);
    m.fill_checksum(target, to_ip);
}

/// Writes an unsolicited advertisement of `addr` at `mac` to all nodes (override
/// set: neighbours' entries for it move here, as after a takeover) into `out` (at
/// least `SOLICIT_FRAME_LEN` bytes). Returns the frame length.
pub fn build_unsolicited_advert(out: &mut [u8], mac: EthernetAddress, addr: Ipv6Addr) -> usize {
    let out = &mut out[..SOLICIT_FRAME_LEN];
    out.fill(0);
    out[12..14].copy_from_slice(&ethernet::ethertype::IPV6.to_be_bytes());
    let all = ipv6::ALL_NODES;
    advert_into(out, ethernet::HEADER_LEN, mac, ipv6::multicast_mac(all), addr, all, na_flags::OVERRIDE);
    SOLICIT_FRAME_LEN
}

/// Length of a neighbour solicitation frame with its source link-layer option.
pub const SOLICIT_FRAME_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + NA_LEN;

/// Writes a neighbour solicitation "who has `target`" from `src_mac` / `src_ip` to
/// the target's solicited-node group into `out` (at least `SOLICIT_FRAME_LEN`
/// bytes). Returns the frame length.
pub fn build_solicitation(out: &mut [u8], src_mac: EthernetAddress, src_ip: Ipv6Addr, target: Ipv6Addr) -> usize {
    let out = &mut out[..SOLICIT_FRAME_LEN];
    out.fill(0);
    let group = ipv6::solicited_node(target);
    let mut f = ethernet::Frame::new_unchecked(&mut *out);
    f.set_dst_addr(ipv6::multicast_mac(group));
    f.set_src_addr(src_mac);
    out[12..14].copy_from_slice(&ethernet::ethertype::IPV6.to_be_bytes());
    let (ip, msg) = out[ethernet::HEADER_LEN..].split_at_mut(ipv6::HEADER_LEN);
    ipv6::Repr {
        src_addr: src_ip,
        dst_addr: group,
        next_header: next_header::ICMPV6,
        payload_len: NA_LEN,
        hop_limit: ND_HOP_LIMIT,
    }
    .emit(&mut ipv6::Packet::new_unchecked(ip));
    let mut m = icmpv6::Packet::new_unchecked(msg);
    m.set_msg_type(msg_type::NEIGHBOUR_SOLICIT);
    m.set_nd_target(target);
    m.set_ll_option(icmpv6::ND_LEN, nd_option::SOURCE_LL_ADDR, src_mac);
    m.fill_checksum(src_ip, group);
    SOLICIT_FRAME_LEN
}

/// Answers an echo request to an owned address: the reply goes back as the request
/// came, without the request's extension headers.
fn echo_reply<B: PacketBuf>(
    p: &mut Pipeline,
    port: u16,
    buf: &mut B,
    l3: usize,
    icmp_at: usize,
    src: Ipv6Addr,
    dst: Ipv6Addr,
) -> Verdict {
    let Some(view) = p.ports.get(usize::from(port)) else {
        return Verdict::Drop(DropReason::UnknownPort);
    };
    let me = view.mac;
    let end = {
        let ip = ipv6::Packet::new_unchecked(&buf.data()[l3..]);
        l3 + ip.total_len()
    };
    let msg_len = end - icmp_at;
    let at = l3 + ipv6::HEADER_LEN;
    let frame = buf.data_mut();
    frame.copy_within(icmp_at..end, at);
    ethernet::Frame::new_unchecked(&mut *frame).reflect(me);
    {
        let mut ip = ipv6::Packet::new_unchecked(&mut frame[l3..]);
        ip.set_payload_len(u16::try_from(msg_len).unwrap_or(u16::MAX));
        ip.set_next_header(next_header::ICMPV6);
        ip.set_hop_limit(DEFAULT_TTL);
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
    }
    {
        let mut m = icmpv6::Packet::new_unchecked(&mut frame[at..at + msg_len]);
        m.set_msg_type(msg_type::ECHO_REPLY);
        m.fill_checksum(dst, src);
    }
    if !buf.truncate(at + msg_len) {
        return Verdict::Drop(DropReason::Ipv6BadLength);
    }
    p.counters.icmp_echo_replies.inc();
    Verdict::Transmit(port)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use etherparse::{Icmpv6Type, NetSlice, SlicedPacket, TransportSlice};

    pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x10);
    pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100);

    /// A frame carrying an IPv6 packet with `next` and `payload`.
    fn ip6_frame(dst_mac: EthernetAddress, src: Ipv6Addr, dst: Ipv6Addr, hop: u8, next: u8, payload: &[u8]) -> Vec<u8> {
        let mut ip = vec![0u8; ipv6::HEADER_LEN];
        ipv6::Repr { src_addr: src, dst_addr: dst, next_header: next, payload_len: payload.len(), hop_limit: hop }
            .emit(&mut ipv6::Packet::new_unchecked(&mut ip[..]));
        ip.extend_from_slice(payload);
        eth(dst_mac, CLIENT_MAC, ethernet::ethertype::IPV6, &ip)
    }

    fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, mut m: Vec<u8>) -> Vec<u8> {
        icmpv6::Packet::new_unchecked(&mut m[..]).fill_checksum(src, dst);
        m
    }

    fn ns(target: Ipv6Addr, sll: Option<EthernetAddress>) -> Vec<u8> {
        let mut m = vec![msg_type::NEIGHBOUR_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&target.octets());
        if let Some(mac) = sll {
            m.extend_from_slice(&[nd_option::SOURCE_LL_ADDR, 1]);
            m.extend_from_slice(mac.as_bytes());
        }
        m
    }

    fn ns_frame(src: Ipv6Addr, target: Ipv6Addr, sll: Option<EthernetAddress>) -> Vec<u8> {
        let dst = ipv6::solicited_node(target);
        let m = icmp6(src, dst, ns(target, sll));
        ip6_frame(ipv6::multicast_mac(dst), src, dst, ND_HOP_LIMIT, next_header::ICMPV6, &m)
    }

    /// What etherparse reads of a frame: (eth src, eth dst, ip src, ip dst, hop limit, ICMPv6 type).
    fn parse(f: &[u8]) -> ([u8; 6], [u8; 6], Ipv6Addr, Ipv6Addr, u8, Icmpv6Type) {
        let s = SlicedPacket::from_ethernet(f).expect("parses");
        let Some(etherparse::LinkSlice::Ethernet2(e)) = s.link else { panic!("not ethernet") };
        let Some(NetSlice::Ipv6(ip)) = s.net else { panic!("not ipv6: {:?}", s.net) };
        let h = ip.header();
        let Some(TransportSlice::Icmpv6(m)) = s.transport else { panic!("not icmpv6") };
        let (src, dst) = (h.source_addr(), h.destination_addr());
        let computed = m.icmp_type().calc_checksum(src.octets(), dst.octets(), m.payload()).unwrap();
        assert_eq!(m.checksum(), computed, "ICMPv6 checksum");
        assert_eq!(usize::from(h.payload_length()) + 40 + 14, f.len(), "lengths agree");
        (e.source(), e.destination(), src, dst, h.hop_limit(), m.icmp_type())
    }

    #[test]
    fn a_solicitation_for_an_owned_address_is_answered_and_its_sender_learned() {
        let mut p = pipeline();
        let mut f = ns_frame(CLIENT6, VIP6, Some(CLIENT_MAC));
        assert_eq!(p.process(0, &mut f, 7), Verdict::Transmit(0));
        let (es, ed, src, dst, hop, t) = parse(&f);
        assert_eq!((es, ed), (PORT_MAC.0, CLIENT_MAC.0));
        assert_eq!((src, dst, hop), (VIP6, CLIENT6, 255));
        let Icmpv6Type::NeighborAdvertisement(na) = t else { panic!("{t:?}") };
        assert!(na.solicited && na.r#override && !na.router);
        let m = icmpv6::Packet::new_checked(&f[54..]).unwrap();
        assert_eq!(m.nd_target(), VIP6);
        assert_eq!(m.nd_ll_addr(nd_option::TARGET_LL_ADDR), Ok(Some(PORT_MAC)));
        let n = p.neigh6.lookup(CLIENT6).expect("learned");
        assert_eq!((n.mac, n.port, n.updated_ms), (CLIENT_MAC, 0, 7));
        let told: Vec<_> = p.neigh_updates.drain().collect();
        assert_eq!(told, vec![NeighUpdate { addr: IpAddr::V6(CLIENT6), mac: CLIENT_MAC, port: 0 }]);
        let c = p.counters.snapshot();
        assert_eq!((c.nd_adverts, c.neigh_learned), (1, 1));
    }

    #[test]
    fn a_unicast_solicitation_without_an_option_grows_into_the_answer() {
        let mut p = pipeline();
        p.neigh6.learn(CLIENT6, CLIENT_MAC, 0, 0, true);
        let m = icmp6(CLIENT6, VIP6, ns(VIP6, None));
        let mut f = ip6_frame(PORT_MAC, CLIENT6, VIP6, ND_HOP_LIMIT, next_header::ICMPV6, &m);
        assert_eq!(f.len(), 14 + 40 + 24);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Transmit(0));
        let (_, ed, src, dst, _, t) = parse(&f);
        assert_eq!((ed, src, dst), (CLIENT_MAC.0, VIP6, CLIENT6));
        assert!(matches!(t, Icmpv6Type::NeighborAdvertisement(_)));
        // The link-local address derived from the port's MAC is answered too.
        let ll = ipv6::link_local(PORT_MAC);
        let mut f = ns_frame("fe80::c1:ff:fe00:1".parse().unwrap(), ll, Some(CLIENT_MAC));
        assert_eq!(p.process(0, &mut f, 0), Verdict::Transmit(0));
        assert_eq!(parse(&f).2, ll);
    }

    #[test]
    fn duplicate_address_detection_is_answered_to_all_nodes() {
        let mut p = pipeline();
        let mut f = ns_frame(Ipv6Addr::UNSPECIFIED, VIP6, None);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Transmit(0));
        let (_, ed, src, dst, _, t) = parse(&f);
        assert_eq!((ed, src, dst), ([0x33, 0x33, 0, 0, 0, 1], VIP6, ipv6::ALL_NODES));
        let Icmpv6Type::NeighborAdvertisement(na) = t else { panic!() };
        assert!(!na.solicited && na.r#override);
        assert!(p.neigh6.is_empty());
    }

    #[test]
    fn solicitations_that_fail_the_checks_or_are_for_others() {
        let mut p = pipeline();
        // Hop limit below 255: forwarded by a router, not on-link.
        let dst = ipv6::solicited_node(VIP6);
        let m = icmp6(CLIENT6, dst, ns(VIP6, Some(CLIENT_MAC)));
        let mut f = ip6_frame(ipv6::multicast_mac(dst), CLIENT6, dst, 254, next_header::ICMPV6, &m);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::NdInvalid));
        // A probe with a link-layer option.
        let mut f = ns_frame(Ipv6Addr::UNSPECIFIED, VIP6, Some(CLIENT_MAC));
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::NdInvalid));
        // A zero-length option.
        let mut bad = ns(VIP6, None);
        bad.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        let m = icmp6(CLIENT6, dst, bad);
        let mut f = ip6_frame(ipv6::multicast_mac(dst), CLIENT6, dst, 255, next_header::ICMPV6, &m);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::NdInvalid));
        // Another host's address; the DIP of port 1 asked on port 0.
        for target in ["2001:2::77", "2001:2:0:1::1"] {
            let mut f = ns_frame(CLIENT6, target.parse().unwrap(), Some(CLIENT_MAC));
            assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::NdNotForUs), "{target}");
        }
        assert!(p.neigh6.is_empty(), "not for us: not created");
        // A bad checksum.
        let mut f = ns_frame(CLIENT6, VIP6, Some(CLIENT_MAC));
        let n = f.len();
        f[n - 1] ^= 1;
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::Icmpv6BadChecksum));
        assert_eq!(p.counters.snapshot().nd_adverts, 0);
    }

    fn na(target: Ipv6Addr, flags: u8, tll: EthernetAddress) -> Vec<u8> {
        let mut m = vec![msg_type::NEIGHBOUR_ADVERT, 0, 0, 0, flags, 0, 0, 0];
        m.extend_from_slice(&target.octets());
        m.extend_from_slice(&[nd_option::TARGET_LL_ADDR, 1]);
        m.extend_from_slice(tll.as_bytes());
        m
    }

    #[test]
    fn advertisements_teach_the_table() {
        let mut p = pipeline();
        // Unicast to us (the answer to a solicitation): created.
        let m = icmp6(CLIENT6, VIP6, na(CLIENT6, na_flags::SOLICITED, CLIENT_MAC));
        let mut f = ip6_frame(PORT_MAC, CLIENT6, VIP6, 255, next_header::ICMPV6, &m);
        assert_eq!(p.process(0, &mut f, 3), Verdict::Consumed);
        assert_eq!(p.neigh6.lookup(CLIENT6).map(|n| (n.mac, n.updated_ms)), Some((CLIENT_MAC, 3)));
        // Unsolicited to all nodes: a known neighbour moves; an unknown one is not created.
        let moved = EthernetAddress([0x02, 0xc1, 0, 0, 0, 0x99]);
        let other: Ipv6Addr = "2001:2::101".parse().unwrap();
        for (target, mac) in [(CLIENT6, moved), (other, moved)] {
            let m = icmp6(target, ipv6::ALL_NODES, na(target, na_flags::OVERRIDE, mac));
            let mut f =
                ip6_frame(ipv6::multicast_mac(ipv6::ALL_NODES), target, ipv6::ALL_NODES, 255, next_header::ICMPV6, &m);
            assert_eq!(p.process(0, &mut f, 4), Verdict::Consumed);
        }
        assert_eq!(p.neigh6.lookup(CLIENT6).map(|n| n.mac), Some(moved));
        assert!(p.neigh6.lookup(other).is_none());
        // Solicited, yet multicast: invalid.
        let m = icmp6(CLIENT6, ipv6::ALL_NODES, na(CLIENT6, na_flags::SOLICITED, CLIENT_MAC));
        let mut f =
            ip6_frame(ipv6::multicast_mac(ipv6::ALL_NODES), CLIENT6, ipv6::ALL_NODES, 255, next_header::ICMPV6, &m);
        assert_eq!(p.process(0, &mut f, 5), Verdict::Drop(DropReason::NdInvalid));
        assert_eq!(p.neigh6.lookup(CLIENT6).map(|n| n.mac), Some(moved));
    }

    #[test]
    fn echo_to_an_owned_address_is_answered() {
        let mut p = pipeline();
        let mut m = vec![msg_type::ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 1];
        m.extend_from_slice(b"rvs ping6");
        // Behind a destination options header, which the reply leaves out.
        let mut payload = vec![next_header::ICMPV6, 0, 1, 4, 0, 0, 0, 0];
        payload.extend(icmp6(CLIENT6, VIP6, m));
        let mut f = ip6_frame(PORT_MAC, CLIENT6, VIP6, 64, next_header::DEST_OPTIONS, &payload);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Transmit(0));
        let (es, ed, src, dst, hop, t) = parse(&f);
        assert_eq!((es, ed, src, dst, hop), (PORT_MAC.0, CLIENT_MAC.0, VIP6, CLIENT6, 64));
        assert!(matches!(t, Icmpv6Type::EchoReply(h) if h.id == 0x1234 && h.seq == 1), "{t:?}");
        assert!(f.ends_with(b"rvs ping6"));
        assert_eq!(p.counters.snapshot().icmp_echo_replies, 1);
        // To an address we do not own: not ours.
        let m = icmp6(CLIENT6, "2001:2::77".parse().unwrap(), vec![msg_type::ECHO_REQUEST, 0, 0, 0, 0, 1, 0, 1]);
        let mut f = ip6_frame(PORT_MAC, CLIENT6, "2001:2::77".parse().unwrap(), 64, next_header::ICMPV6, &m);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::NotForUs));
    }

    #[test]
    fn malformed_ipv6_is_dropped_by_reason() {
        let mut p = pipeline();
        let mut tcp = [0u8; 20];
        tcp[12] = 0x50; // data offset 5
        let good = ip6_frame(PORT_MAC, CLIENT6, VIP6, 64, next_header::TCP, &tcp);
        assert_eq!(p.process(0, &mut good.clone(), 0), Verdict::Drop(DropReason::NoService));
        let mut short = good[..14 + 39].to_vec();
        assert_eq!(p.process(0, &mut short, 0), Verdict::Drop(DropReason::Ipv6Truncated));
        let mut v4 = good.clone();
        v4[14] = 0x45;
        assert_eq!(p.process(0, &mut v4, 0), Verdict::Drop(DropReason::Ipv6BadVersion));
        let mut long = good.clone();
        long[14 + 5] = 21; // payload length one beyond the frame
        assert_eq!(p.process(0, &mut long, 0), Verdict::Drop(DropReason::Ipv6BadLength));
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 4]);
        assert_eq!(p.process(0, &mut padded, 0), Verdict::Drop(DropReason::NoService), "padding is fine");
        let runs_off =
            ip6_frame(PORT_MAC, CLIENT6, VIP6, 64, next_header::DEST_OPTIONS, &[next_header::TCP, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(p.process(0, &mut runs_off.clone(), 0), Verdict::Drop(DropReason::Ipv6ExtTruncated));
        let mut chain = Vec::new();
        for _ in 0..=ipv6::MAX_EXTENSION_HEADERS {
            chain.extend_from_slice(&[next_header::DEST_OPTIONS, 0, 0, 0, 0, 0, 0, 0]);
        }
        let mut f = ip6_frame(PORT_MAC, CLIENT6, VIP6, 64, next_header::DEST_OPTIONS, &chain);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::Ipv6ExtTooMany));
        let mut f = ip6_frame(
            PORT_MAC,
            CLIENT6,
            VIP6,
            64,
            next_header::DEST_OPTIONS,
            &[0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0],
        );
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::Ipv6ExtMisplaced));
        let mut f = ip6_frame(PORT_MAC, CLIENT6, VIP6, 64, next_header::ICMPV6, &[128, 0, 0]);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::Icmpv6Truncated));
        let mut f = ip6_frame(
            PORT_MAC,
            CLIENT6,
            "2001:2::77".parse().unwrap(),
            64,
            next_header::UDP,
            &[0, 1, 0, 2, 0, 8, 0, 0],
        );
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::NotForUs));
    }

    #[test]
    fn an_address_vrrp_carries_is_answered_and_pinged_only_while_master() {
        let mut p = pipeline();
        let vip: Ipv6Addr = "2001:2::20".parse().unwrap();
        let echo = |p: &mut Pipeline| {
            let m = icmp6(CLIENT6, vip, vec![msg_type::ECHO_REQUEST, 0, 0, 0, 0, 1, 0, 1]);
            let mut f = ip6_frame(PORT_MAC, CLIENT6, vip, 64, next_header::ICMPV6, &m);
            p.process(0, &mut f, 0)
        };
        assert_eq!(
            p.process(0, &mut ns_frame(CLIENT6, vip, Some(CLIENT_MAC)), 0),
            Verdict::Drop(DropReason::NdNotForUs)
        );
        // BACKUP: carried, not owned: no answer, and its packets are the master's.
        p.ownership.publish(&[(vip.into(), 0, false)]);
        assert_eq!(
            p.process(0, &mut ns_frame(CLIENT6, vip, Some(CLIENT_MAC)), 0),
            Verdict::Drop(DropReason::NdNotForUs)
        );
        assert_eq!(echo(&mut p), Verdict::Drop(DropReason::Standby));
        assert!(p.knows6(vip));
        // MASTER: answered, pinged.
        p.ownership.publish(&[(vip.into(), 0, true)]);
        let mut f = ns_frame(CLIENT6, vip, Some(CLIENT_MAC));
        assert_eq!(p.process(0, &mut f, 0), Verdict::Transmit(0));
        assert_eq!(parse(&f).2, vip);
        assert_eq!(echo(&mut p), Verdict::Transmit(0));
        // Carried on another port: not this one's to answer.
        p.ownership.publish(&[(vip.into(), 1, true)]);
        assert_eq!(
            p.process(0, &mut ns_frame(CLIENT6, vip, Some(CLIENT_MAC)), 0),
            Verdict::Drop(DropReason::NdNotForUs)
        );
    }

    #[test]
    fn a_built_solicitation_is_what_the_pipeline_answers() {
        let mut out = [0xaau8; 100];
        let n = build_solicitation(&mut out, CLIENT_MAC, CLIENT6, VIP6);
        let (es, ed, src, dst, hop, t) = parse(&out[..n]);
        assert_eq!((es, ed), (CLIENT_MAC.0, [0x33, 0x33, 0xff, 0, 0, 0x10]));
        assert_eq!((src, dst, hop), (CLIENT6, ipv6::solicited_node(VIP6), 255));
        assert!(matches!(t, Icmpv6Type::NeighborSolicitation), "{t:?}");
        let mut p = pipeline();
        let mut f = out[..n].to_vec();
        assert_eq!(p.process(0, &mut f, 0), Verdict::Transmit(0));
        assert_eq!(p.neigh6.lookup(CLIENT6).map(|n| n.mac), Some(CLIENT_MAC), "and learns its sender");
    }

    #[test]
    fn an_unsolicited_advertisement_moves_a_known_neighbour() {
        let mut out = [0u8; 90];
        let n = build_unsolicited_advert(&mut out, CLIENT_MAC, CLIENT6);
        let (es, ed, src, dst, hop, t) = parse(&out[..n]);
        assert_eq!((es, ed, src, dst, hop), (CLIENT_MAC.0, [0x33, 0x33, 0, 0, 0, 1], CLIENT6, ipv6::ALL_NODES, 255));
        let Icmpv6Type::NeighborAdvertisement(na) = t else { panic!("{t:?}") };
        assert!(na.r#override && !na.solicited);
        // A neighbour that knew CLIENT6 at another MAC follows it.
        let mut p = pipeline();
        p.neigh6.learn(CLIENT6, EthernetAddress([2, 0, 0, 0, 0, 9]), 0, 0, true);
        let mut f = out[..n].to_vec();
        assert_eq!(p.process(0, &mut f, 1), Verdict::Consumed);
        assert_eq!(p.neigh6.lookup(CLIENT6).map(|n| n.mac), Some(CLIENT_MAC));
    }
}
