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
//! its destination. ICMP errors follow the packet they quote; fragments are steered
//! by their client address under `rss::Input::Client`. ARP and packets for the
//! appliance itself are handled where they arrive.

use super::meta::{Class, Meta};
use crate::net::ethernet;
use crate::net::icmp;
use crate::net::icmpv6;
use crate::net::ipv4::{self, protocol};
use crate::net::ipv6::{self, next_header};
use crate::net::rss;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Where a received frame is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steer {
    /// Here (ARP, to the appliance itself, unparseable: the pipeline decides).
    Here,
    /// By the worker that owns the client endpoint.
    Owner(u16),
}

/// How packets are spread over `workers` workers: the ports' Toeplitz key, what of
/// the client endpoint it hashes, and the ports whose NIC steers in hardware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steering {
    pub rss_key: [u8; 40],
    pub input: rss::Input,
    pub workers: u16,
    /// The key's hash, table-driven.
    toeplitz: rss::Toeplitz,
    /// Bit `p`: port `p`'s NIC hashes the client endpoint with this key into a
    /// redirection table filled as ours, so its whole TCP/UDP packets arrive at
    /// their owner and are not hashed again (fragments and ICMP errors still are:
    /// the NIC cannot see their client).
    hardware: u64,
}

impl Default for Steering {
    /// One worker: everything is handled where it arrives.
    fn default() -> Self {
        Steering::new(rss::RSS_KEY, rss::Input::ClientPort, 1)
    }
}

impl Steering {
    pub fn new(rss_key: [u8; 40], input: rss::Input, workers: u16) -> Steering {
        Steering { rss_key, input, workers, toeplitz: rss::Toeplitz::new(&rss_key), hardware: 0 }
    }

    /// Port `port` steers in hardware (see `hardware`).
    pub fn with_hardware_port(mut self, port: u16) -> Steering {
        if port < 64 {
            self.hardware |= 1 << port;
        }
        self
    }

    /// Port `port` delivers whole TCP/UDP packets to their owner by itself.
    #[inline]
    pub fn hardware(&self, port: u16) -> bool {
        port < 64 && self.hardware & (1 << port) != 0
    }

    /// The owner of client endpoint (`addr`, `port`).
    #[inline]
    pub fn owner(&self, addr: Ipv4Addr, port: u16) -> u16 {
        if self.workers <= 1 {
            return 0;
        }
        let slot = self.toeplitz.reta_index(self.input, addr, port);
        u16::try_from(slot % u32::from(self.workers)).unwrap_or(0)
    }

    /// Decides where a frame decoded as `m` belongs; `owned` says whether an
    /// address is the appliance's (VIPs and DIPs). TCP/UDP from the decode; a
    /// fragment by its client address under `Input::Client` (every fragment of a
    /// datagram then has its first fragment's owner; under `Input::ClientPort` a
    /// later fragment carries no port and stays where it arrived); ICMP by the
    /// packet it quotes.
    #[inline]
    pub fn steer_decoded(
        &self,
        m: &Meta,
        frame: &[u8],
        owned: impl Fn(Ipv4Addr) -> bool,
        owned6: impl Fn(Ipv6Addr) -> bool,
    ) -> Steer {
        if self.workers <= 1 {
            return Steer::Here;
        }
        let t = &m.tuple;
        match m.class {
            // IPv6 by the client's address folded to 32 bits, and its port.
            super::meta::Class::Transport6 => {
                let at = usize::from(m.l3) + 24;
                let dst =
                    frame.get(at..at + 16).and_then(|b| <[u8; 16]>::try_from(b).ok()).map(std::net::Ipv6Addr::from);
                if dst.is_some_and(owned6) {
                    Steer::Owner(self.owner(t.saddr, t.sport))
                } else {
                    Steer::Owner(self.owner(t.daddr, t.dport))
                }
            }
            _ if m.has_ports() => {
                if owned(t.daddr) {
                    Steer::Owner(self.owner(t.saddr, t.sport))
                } else {
                    Steer::Owner(self.owner(t.daddr, t.dport))
                }
            }
            Class::Fragment | Class::FirstFragment if self.input == rss::Input::Client => {
                Steer::Owner(self.owner(if owned(t.daddr) { t.saddr } else { t.daddr }, 0))
            }
            Class::OtherIp if m.proto == protocol::ICMP => self.steer(frame, owned),
            // IPv6 the decode left whole (extension headers, fragments, ICMPv6).
            Class::L2 if frame.get(12..14) == Some(&[0x86, 0xdd][..]) => self.steer6(frame, owned6),
            _ => Steer::Here,
        }
    }

    /// Where an IPv6 packet behind extension headers belongs: TCP/UDP (a first
    /// fragment too) by its client's folded address and port; a later fragment by
    /// the client's address under `Input::Client`, else where it arrived; an ICMPv6
    /// error by the packet it quotes. The walk is `ipv6::upper_layer`'s, bounded.
    fn steer6(&self, frame: &[u8], owned6: impl Fn(Ipv6Addr) -> bool) -> Steer {
        use super::meta::fold6;
        let Some(ip) = frame.get(ethernet::HEADER_LEN..) else { return Steer::Here };
        let Ok(p) = ipv6::Packet::new_checked(ip) else { return Steer::Here };
        let Ok(upper) = ipv6::upper_layer(p.packet()) else { return Steer::Here };
        let (src, dst) = (p.src_addr(), p.dst_addr());
        let client = |src: Ipv6Addr, dst: Ipv6Addr| if owned6(dst) { src } else { dst };
        let l4 = p.packet().get(upper.offset..).unwrap_or(&[]);
        match upper.protocol {
            next_header::TCP | next_header::UDP if upper.is_later_fragment() => {
                if self.input == rss::Input::Client {
                    Steer::Owner(self.owner(fold6(&client(src, dst).octets()), 0))
                } else {
                    Steer::Here
                }
            }
            next_header::TCP | next_header::UDP => {
                let Some((sport, dport)) = ports_at(l4, 0) else { return Steer::Here };
                let port = if owned6(dst) { sport } else { dport };
                Steer::Owner(self.owner(fold6(&client(src, dst).octets()), port))
            }
            next_header::ICMPV6 if !upper.is_later_fragment() => {
                let Ok(msg) = icmpv6::Packet::new_checked(l4) else { return Steer::Here };
                if !msg.is_related_error() {
                    return Steer::Here;
                }
                let Some((emb, rest)) = msg.embedded_ipv6() else { return Steer::Here };
                if !matches!(emb.next_header(), next_header::TCP | next_header::UDP) {
                    return Steer::Here;
                }
                let Some((esport, edport)) = ports_at(rest, 0) else { return Steer::Here };
                // The quoted packet went VIP6 -> client (a reply) or client -> real server.
                if owned6(emb.src_addr()) {
                    Steer::Owner(self.owner(fold6(&emb.dst_addr().octets()), edport))
                } else {
                    Steer::Owner(self.owner(fold6(&emb.src_addr().octets()), esport))
                }
            }
            _ => Steer::Here,
        }
    }

    /// Decides where `frame` belongs, reading it; `owned` says whether an address is
    /// the appliance's (VIPs and DIPs).
    pub fn steer(&self, frame: &[u8], owned: impl Fn(Ipv4Addr) -> bool) -> Steer {
        if self.workers <= 1 {
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
                    Steer::Owner(self.owner(src, sport))
                } else {
                    Steer::Owner(self.owner(dst, dport))
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
                    Steer::Owner(self.owner(emb.dst_addr(), edport))
                } else {
                    Steer::Owner(self.owner(emb.src_addr(), esport))
                }
            }
            _ => Steer::Here,
        }
    }
}

pub(super) fn ports_at(b: &[u8], at: usize) -> Option<(u16, u16)> {
    let p = b.get(at..at + 4)?;
    Some((u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::rss::{Input, RSS_KEY};

    fn steer(f: &[u8], workers: u16, owned: impl Fn(Ipv4Addr) -> bool) -> Steer {
        Steering::new(RSS_KEY, Input::ClientPort, workers).steer(f, owned)
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
        // Built once: a Steering's hash table takes a moment to fill.
        let steerings: Vec<Vec<Steering>> = [Input::ClientPort, Input::Client]
            .iter()
            .map(|&k| (0..=8).map(|w| Steering::new(RSS_KEY, k, w)).collect())
            .collect();
        for i in 0..20_000 {
            let key = if i % 2 == 0 { Input::ClientPort } else { Input::Client };
            let by_key = &steerings[i % 2];
            let steer = |f: &[u8], w: u16, o: &dyn Fn(Ipv4Addr) -> bool| by_key[usize::from(w)].steer(f, o);
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
            if key == Input::Client {
                let other_port = steer(&frame(client, cport ^ 0x5a5a, vip, vport + 1, proto), workers, &owned);
                assert_eq!(request, other_port, "by client: every port of a client on one worker");
            }
            assert_eq!(request, nat_reply, "{client}:{cport} via {vip}:{vport}, {workers} workers");
            assert_eq!(request, dr_reply_to_client);
            if let (8, Input::ClientPort, Steer::Owner(o)) = (workers, key, request) {
                spread[usize::from(o)] += 1;
            }
        }
        assert!(spread.iter().all(|&n| n > 100), "every worker owns some clients: {spread:?}");
    }

    #[test]
    fn the_rss_key_changes_owners() {
        let (ours, other) =
            (Steering::new(RSS_KEY, Input::ClientPort, 4), Steering::new([0x6d; 40], Input::ClientPort, 4));
        let client = Ipv4Addr::new(198, 18, 0, 100);
        let moved = (0..200u16).filter(|p| ours.owner(client, *p) != other.owner(client, *p)).count();
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
