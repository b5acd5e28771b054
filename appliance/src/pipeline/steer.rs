//! Which worker owns a packet. A connection's owner is a pure function of its
//! client endpoint (client address, client port), which appears in both
//! directions: as the source of requests and the destination of NAT replies. The
//! hash is the Toeplitz hash NICs use for RSS, over the same bytes, through a
//! redirection table filled round-robin — so where a NIC can hash source-only on the
//! client-facing port and destination-only on the server-facing port, the hardware
//! delivers every packet to its owner and nothing moves between workers.
//!
//! A packet to an address the appliance owns (VIP, DIP) is a request: its client is
//! its source. Anything else arriving is a reply or forwarded traffic: its client is
//! its destination. ICMP errors follow the packet they quote. ARP and packets for the
//! appliance itself are handled where they arrive.

use crate::net::ethernet;
use crate::net::icmp;
use crate::net::ipv4::{self, protocol};
use std::net::Ipv4Addr;

/// The Toeplitz key most NICs ship with (and DPDK's testpmd uses).
pub const RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

/// Redirection-table size (as on common NICs).
pub const RETA_SIZE: u32 = 128;

/// The Toeplitz hash of `input` under `key` (RSS).
pub fn toeplitz(key: &[u8; 40], input: &[u8]) -> u32 {
    let mut result = 0u32;
    // The 32-bit window of the key, sliding one bit per input bit.
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (next, &byte) in (4..).zip(input) {
        for bit in (0..8).rev() {
            if byte & (1 << bit) != 0 {
                result ^= window;
            }
            let incoming = key.get(next).map_or(0, |k| (k >> bit) & 1);
            window = (window << 1) | u32::from(incoming);
        }
    }
    result
}

/// What the owner is a function of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Key {
    /// Client address and port (DESIGN's default): the most even spread.
    #[default]
    ClientPort,
    /// Client address alone: every connection of a client on one worker, which
    /// persistence (templates are per worker) needs with more than one worker.
    Client,
}

/// The owner of client endpoint (`addr`, `port`) among `workers`.
#[inline]
pub fn owner(addr: Ipv4Addr, port: u16, workers: u16) -> u16 {
    owner_by(Key::ClientPort, addr, port, workers)
}

/// The owner under steering key `key`, with the default RSS key.
#[inline]
pub fn owner_by(key: Key, addr: Ipv4Addr, port: u16, workers: u16) -> u16 {
    owner_with(&RSS_KEY, key, addr, port, workers)
}

/// The owner under steering key `key` and Toeplitz key `rss_key` (the ports' key).
#[inline]
pub fn owner_with(rss_key: &[u8; 40], key: Key, addr: Ipv4Addr, port: u16, workers: u16) -> u16 {
    if workers <= 1 {
        return 0;
    }
    let mut input = [0u8; 6];
    input[..4].copy_from_slice(&addr.octets());
    let len = match key {
        Key::ClientPort => {
            input[4..].copy_from_slice(&port.to_be_bytes());
            6
        }
        Key::Client => 4,
    };
    let slot = toeplitz(rss_key, &input[..len]) % RETA_SIZE;
    u16::try_from(slot % u32::from(workers)).unwrap_or(0)
}

/// Parses an RSS key written as 80 hex digits (colons allowed).
pub fn parse_key(s: &str) -> Option<[u8; 40]> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    if hex.len() != 80 {
        return None;
    }
    let mut k = [0u8; 40];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(k)
}

/// Where a received frame is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steer {
    /// Here (ARP, to the appliance itself, unparseable: the pipeline decides).
    Here,
    /// By the worker that owns the client endpoint.
    Owner(u16),
}

pub(super) fn ports_at(b: &[u8], at: usize) -> Option<(u16, u16)> {
    let p = b.get(at..at + 4)?;
    Some((u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]])))
}

/// Decides where `frame` belongs; `owned` says whether an address is the
/// appliance's (VIPs and DIPs).
pub fn steer(frame: &[u8], workers: u16, owned: impl Fn(Ipv4Addr) -> bool) -> Steer {
    steer_by(Key::ClientPort, frame, workers, owned)
}

/// As `steer`, under steering key `key`.
pub fn steer_by(key: Key, frame: &[u8], workers: u16, owned: impl Fn(Ipv4Addr) -> bool) -> Steer {
    steer_with(&RSS_KEY, key, frame, workers, owned)
}

/// As `steer_by`, with the ports' Toeplitz key.
pub fn steer_with(rss_key: &[u8; 40], key: Key, frame: &[u8], workers: u16, owned: impl Fn(Ipv4Addr) -> bool) -> Steer {
    let owner = |a, p, w| owner_with(rss_key, key, a, p, w);
    if workers <= 1 {
        return Steer::Here;
    }
    let Ok(eth) = ethernet::Frame::new_checked(frame) else { return Steer::Here };
    if eth.ethertype() != ethernet::ethertype::IPV4 {
        return Steer::Here;
    }
    let l3 = eth.header_len();
    let Ok(ip) = ipv4::Packet::new_checked(&frame[l3..]) else { return Steer::Here };
    if ip.is_fragment() {
        return Steer::Here;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let payload = ip.payload();
    match ip.protocol() {
        protocol::TCP | protocol::UDP => {
            let Some((sport, dport)) = ports_at(payload, 0) else { return Steer::Here };
            if owned(dst) {
                Steer::Owner(owner(src, sport, workers))
            } else {
                Steer::Owner(owner(dst, dport, workers))
            }
        }
        protocol::ICMP => {
            let Ok(msg) = icmp::Packet::new_checked(payload) else { return Steer::Here };
            let Some((emb, l4)) = msg.embedded_ipv4() else { return Steer::Here };
            if !matches!(emb.protocol(), protocol::TCP | protocol::UDP) {
                return Steer::Here;
            }
            let Some((esport, edport)) = ports_at(l4, 0) else { return Steer::Here };
            // The quoted packet went VIP -> client (a reply) or client -> real server.
            if owned(emb.src_addr()) {
                Steer::Owner(owner(emb.dst_addr(), edport, workers))
            } else {
                Steer::Owner(owner(emb.src_addr(), esport, workers))
            }
        }
        _ => Steer::Here,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (source, destination, source port, destination port, hash with ports, hash without).
    type Vector = ([u8; 4], [u8; 4], u16, u16, u32, u32);

    #[test]
    fn toeplitz_matches_the_published_test_vectors() {
        // Microsoft's RSS verification suite, IPv4 with ports (src addr, dst addr,
        // src port, dst port) and IPv4 only.
        let cases: [Vector; 3] = [
            ([66, 9, 149, 187], [161, 142, 100, 80], 2794, 1766, 0x51cc_c178, 0x323e_8fc2),
            ([199, 92, 111, 2], [65, 69, 140, 83], 14230, 4739, 0xc626_b0ea, 0xd718_262a),
            ([24, 19, 198, 95], [12, 22, 207, 184], 12898, 38024, 0x5c2b_394a, 0xd2d0_a5de),
        ];
        for (src, dst, sp, dp, with_ports, ip_only) in cases {
            let mut b = Vec::new();
            b.extend_from_slice(&src);
            b.extend_from_slice(&dst);
            assert_eq!(toeplitz(&RSS_KEY, &b), ip_only);
            b.extend_from_slice(&sp.to_be_bytes());
            b.extend_from_slice(&dp.to_be_bytes());
            assert_eq!(toeplitz(&RSS_KEY, &b), with_ports);
        }
    }

    fn frame(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, proto: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0u8; 20 + 20];
        ipv4::Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: proto,
            payload_len: 20,
            ttl: 64,
            ident: 0,
            dont_frag: true,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut ip[..]));
        ip[20..22].copy_from_slice(&sport.to_be_bytes());
        ip[22..24].copy_from_slice(&dport.to_be_bytes());
        ip[32] = 0x50;
        f.extend_from_slice(&ip);
        f
    }

    #[test]
    #[allow(clippy::cast_possible_truncation)] // random test values
    fn a_request_and_its_nat_reply_have_one_owner() {
        // Seeded random clients, VIPs, real servers and ports; 2..=8 workers.
        let vips = [Ipv4Addr::new(198, 18, 0, 10), Ipv4Addr::new(198, 18, 0, 20)];
        let owned = |a: Ipv4Addr| vips.contains(&a) || a == Ipv4Addr::new(198, 18, 1, 1);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut spread = [0usize; 8];
        for i in 0..20_000 {
            let key = if i % 2 == 0 { Key::ClientPort } else { Key::Client };
            let steer = |f: &[u8], w, o: &dyn Fn(Ipv4Addr) -> bool| steer_by(key, f, w, o);
            let workers = 2 + (next() % 7) as u16;
            let client = Ipv4Addr::from((next() as u32) | 0x0100_0000);
            if owned(client) {
                continue;
            }
            let cport = (next() % 64_000) as u16 + 1024;
            let vip = vips[(next() % 2) as usize];
            let (vport, rs, rport) =
                ((next() % 1000) as u16, Ipv4Addr::new(198, 18, 1, (next() % 200) as u8 + 2), (next() % 9000) as u16);
            let proto = if next() % 2 == 0 { protocol::TCP } else { protocol::UDP };
            let request = steer(&frame(client, cport, vip, vport, proto), workers, &owned);
            let nat_reply = steer(&frame(rs, rport, client, cport, proto), workers, &owned);
            let dr_reply_to_client = steer(&frame(vip, vport, client, cport, proto), workers, &|a| a == rs);
            if key == Key::Client {
                let other_port = steer(&frame(client, cport ^ 0x5a5a, vip, vport + 1, proto), workers, &owned);
                assert_eq!(request, other_port, "by client: every port of a client on one worker");
            }
            assert_eq!(request, nat_reply, "{client}:{cport} via {vip}:{vport}, {workers} workers");
            assert_eq!(request, dr_reply_to_client);
            if let (8, Key::ClientPort, Steer::Owner(o)) = (workers, key, request) {
                spread[usize::from(o)] += 1;
            }
        }
        assert!(spread.iter().all(|&n| n > 100), "every worker owns some clients: {spread:?}");
    }

    #[test]
    fn rss_keys_parse_and_change_owners() {
        let text: String = RSS_KEY.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse_key(&text), Some(RSS_KEY));
        assert_eq!(parse_key(&text[..78]), None);
        assert_eq!(parse_key(&text.replace('6', "g")), None);
        let other = [0x6du8; 40];
        let moved = (0..200u16)
            .filter(|p| {
                owner_with(&RSS_KEY, Key::ClientPort, Ipv4Addr::new(198, 18, 0, 100), *p, 4)
                    != owner_with(&other, Key::ClientPort, Ipv4Addr::new(198, 18, 0, 100), *p, 4)
            })
            .count();
        assert!(moved > 50, "the key matters");
    }

    #[test]
    fn icmp_errors_follow_the_quoted_packet_and_the_rest_stays() {
        let vip = Ipv4Addr::new(198, 18, 0, 10);
        let client = Ipv4Addr::new(203, 0, 113, 9);
        let owned = |a: Ipv4Addr| a == vip;
        let req = frame(client, 5555, vip, 80, protocol::TCP);
        let want = steer(&req, 4, owned);
        // A router's frag-needed about a reply VIP:80 -> client:5555.
        let reply = frame(vip, 80, client, 5555, protocol::TCP);
        let mut icmp_msg = vec![3u8, 4, 0, 0, 0, 0, 5, 0x78];
        icmp_msg.extend_from_slice(&reply[14..14 + 28]);
        let mut ip = vec![0u8; 20];
        ip.extend_from_slice(&icmp_msg);
        ipv4::Repr {
            src_addr: Ipv4Addr::new(198, 18, 0, 1),
            dst_addr: vip,
            protocol: 1,
            payload_len: icmp_msg.len(),
            ttl: 64,
            ident: 0,
            dont_frag: false,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut ip[..]));
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&ip);
        assert_eq!(steer(&f, 4, owned), want);
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(steer(&arp, 4, owned), Steer::Here);
        assert_eq!(steer(&req, 1, owned), Steer::Here, "one worker: nothing moves");
    }
}
