//! ICMP addressed to the appliance itself: echo requests are answered in place.

use super::counters::{Counters, DropReason};
use super::{Pipeline, PortView, Verdict};
use crate::net::ethernet;
use crate::net::icmp::{self, msg_type};
use crate::net::ipv4;
use crate::net::PacketBuf;

/// TTL of packets the appliance originates (Linux's default).
pub const DEFAULT_TTL: u8 = 64;

/// Handles ICMP to an owned address; `l3` is the IPv4 header's offset in `frame`,
/// whose header length and checksum the caller has checked.
pub fn handle_to_us(view: &PortView, port: u16, counters: &Counters, frame: &mut [u8], l3: usize) -> Verdict {
    let Ok(mut ip) = ipv4::Packet::new_checked(&mut frame[l3..]) else {
        // The caller checked the header: unreachable, but a verdict all the same.
        return Verdict::Drop(DropReason::IpBadTotalLength);
    };
    {
        let Ok(msg) = icmp::Packet::new_checked(ip.payload()) else {
            return Verdict::Drop(DropReason::IcmpTruncated);
        };
        if !msg.verify_checksum() {
            return Verdict::Drop(DropReason::IcmpBadChecksum);
        }
        if msg.is_related_error() {
            // An error about nothing the director tracks (xmit::icmp_error took
            // the ones about connections).
            return Verdict::Drop(DropReason::IcmpErrorUntracked);
        }
        if msg.msg_type() != msg_type::ECHO_REQUEST {
            return Verdict::Drop(DropReason::IcmpUnhandled);
        }
    }
    icmp::Packet::new_unchecked(ip.payload_mut()).make_echo_reply();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_ttl(DEFAULT_TTL);
    ip.fill_checksum();
    ethernet::Frame::new_unchecked(&mut *frame).reflect(view.mac);
    counters.icmp_echo_replies.inc();
    Verdict::Transmit(port)
}

/// Most of the offending packet an ICMP error quotes: its IP header (up to 60
/// bytes with options) and the first 8 bytes of its payload (RFC 792).
const QUOTE_MAX: usize = 60 + 8;

/// Turns the packet at `l3` (too big for the path, DF set) into an ICMP
/// "fragmentation needed" (type 3, code 4) with next-hop MTU `mtu`, sent back out
/// of `in_port` to where it came from, from the address it was sent to. Built in
/// place: the quote is copied aside, the headers rewritten, the buffer shortened.
pub fn frag_needed<B: PacketBuf>(p: &mut Pipeline, in_port: u16, buf: &mut B, l3: usize, mtu: u16) -> Verdict {
    let Some(view) = p.ports.get(usize::from(in_port)) else {
        return Verdict::Drop(DropReason::UnknownPort);
    };
    let mac = view.mac;
    let (src, dst, quote_len) = {
        let ip = ipv4::Packet::new_unchecked(&buf.data()[l3..]);
        (ip.src_addr(), ip.dst_addr(), (ip.header_len() + 8).min(usize::from(ip.total_len())))
    };
    let mut quote = [0u8; QUOTE_MAX];
    let quote_len = quote_len.min(QUOTE_MAX);
    quote[..quote_len].copy_from_slice(&buf.data()[l3..l3 + quote_len]);
    let icmp_len = icmp::HEADER_LEN + quote_len;
    let total = ipv4::HEADER_LEN + icmp_len;
    if !buf.truncate(l3 + total) {
        // The quote is at most the packet itself: unreachable, but a verdict.
        return Verdict::Drop(DropReason::IpTruncated);
    }
    let frame = buf.data_mut();
    ethernet::Frame::new_unchecked(&mut *frame).reflect(mac);
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut frame[l3..]);
        ipv4::Repr {
            src_addr: dst,
            dst_addr: src,
            protocol: ipv4::protocol::ICMP,
            payload_len: icmp_len,
            ttl: DEFAULT_TTL,
            ident: 0,
            dont_frag: false,
        }
        .emit(&mut ip);
    }
    let l4 = l3 + ipv4::HEADER_LEN;
    frame[l4 + icmp::HEADER_LEN..l4 + icmp_len].copy_from_slice(&quote[..quote_len]);
    let mut msg = icmp::Packet::new_unchecked(&mut frame[l4..l4 + icmp_len]);
    msg.set_msg_type(msg_type::DEST_UNREACHABLE);
    msg.set_msg_code(4);
    msg.set_next_hop_mtu(mtu);
    msg.fill_checksum();
    p.counters.icmp_frag_needed_sent.inc();
    Verdict::Transmit(in_port)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use etherparse::{Icmpv4Type, NetSlice, SlicedPacket, TransportSlice};
    use std::net::Ipv4Addr;

    fn echo(dst: Ipv4Addr, icmp_type: u8, options: bool) -> Vec<u8> {
        let mut msg = vec![icmp_type, 0, 0, 0, 0xbe, 0xef, 0, 3];
        msg.extend_from_slice(b"0123456789abcdef0123456789abcdef");
        icmp::Packet::new_unchecked(&mut msg[..]).fill_checksum();
        let hl = if options { 24 } else { 20 };
        let mut ip = vec![0u8; hl];
        ip.extend_from_slice(&msg);
        ipv4::Repr {
            src_addr: CLIENT,
            dst_addr: dst,
            protocol: 1,
            payload_len: msg.len(),
            ttl: 17,
            ident: 9,
            dont_frag: true,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut ip[..]));
        if options {
            let total = u16::try_from(ip.len()).unwrap();
            let mut p = ipv4::Packet::new_unchecked(&mut ip[..]);
            p.set_ver_ihl(24);
            p.set_total_len(total);
            ip[20..24].copy_from_slice(&[1, 1, 1, 0]); // NOPs + end of options
            ipv4::Packet::new_unchecked(&mut ip[..]).fill_checksum();
        }
        eth(PORT_MAC, CLIENT_MAC, ethernet::ethertype::IPV4, &ip)
    }

    fn check_reply(f: &[u8]) {
        let parsed = SlicedPacket::from_ethernet(f).expect("parses");
        let etherparse::LinkSlice::Ethernet2(e) = parsed.link.clone().unwrap() else { panic!() };
        assert_eq!((e.source(), e.destination()), (PORT_MAC.0, CLIENT_MAC.0));
        let Some(NetSlice::Ipv4(ip)) = parsed.net.clone() else { panic!("no ipv4") };
        let h = ip.header().to_header();
        assert_eq!(h.source, VIP.octets());
        assert_eq!(h.destination, CLIENT.octets());
        assert_eq!(h.time_to_live, DEFAULT_TTL);
        assert_eq!(h.header_checksum, h.calc_header_checksum(), "IP checksum");
        let Some(TransportSlice::Icmpv4(icmp)) = parsed.transport else { panic!("no icmp") };
        let Icmpv4Type::EchoReply(e) = icmp.icmp_type() else { panic!("not an echo reply") };
        assert_eq!((e.id, e.seq), (0xbeef, 3));
        assert_eq!(icmp.payload(), b"0123456789abcdef0123456789abcdef");
        assert_eq!(icmp.checksum(), icmp.icmp_type().calc_checksum(icmp.payload()), "ICMP checksum");
    }

    #[test]
    fn echo_request_to_vip_is_answered() {
        let mut p = pipeline();
        let mut f = echo(VIP, msg_type::ECHO_REQUEST, false);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Transmit(0));
        check_reply(&f);
        assert_eq!(p.counters.snapshot().icmp_echo_replies, 1);
    }

    #[test]
    fn echo_request_with_ip_options_is_answered() {
        let mut p = pipeline();
        let mut f = echo(VIP, msg_type::ECHO_REQUEST, true);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Transmit(0));
        check_reply(&f);
    }

    #[test]
    fn other_icmp_and_bad_checksums_are_dropped() {
        let mut p = pipeline();
        let mut f = echo(VIP, msg_type::ECHO_REPLY, false);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::IcmpUnhandled));
        let mut f = echo(VIP, msg_type::ECHO_REQUEST, false);
        let last = f.len() - 1;
        f[last] ^= 0x5a;
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::IcmpBadChecksum));
        let mut f = echo(VIP, msg_type::ECHO_REQUEST, false);
        // Shrink the IP total length below the ICMP header.
        let l3 = ethernet::HEADER_LEN;
        let mut ip = ipv4::Packet::new_unchecked(&mut f[l3..]);
        ip.set_total_len(24);
        ip.fill_checksum();
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::IcmpTruncated));
    }
}
