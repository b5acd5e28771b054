//! Runs the packet fixtures of `tests/fixtures` through the pipeline (no DPDK) and
//! checks verdicts, output bytes and, with etherparse, every checksum of every
//! output frame (inner headers of tunnels and ICMP quotes' IP headers included).

mod fixtures;

use appliance::pipeline::Verdict;
use etherparse::{
    Icmpv6Header, IpNumber, Ipv4Header, Ipv6Header, NetSlice, SlicedPacket, TcpHeader, TransportSlice, UdpHeader,
};

/// Every checksum in `frame` verifies (IP, TCP/UDP, ICMP; the IP inside IPIP).
fn verify_checksums(frame: &[u8], what: &str) {
    let p = SlicedPacket::from_ethernet(frame).unwrap_or_else(|e| panic!("{what}: does not parse: {e:?}"));
    let ip = match &p.net {
        Some(NetSlice::Ipv4(ip)) => ip,
        Some(NetSlice::Ipv6(_)) => return verify_checksums6(frame, what),
        _ => return,
    };
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum(), "{what}: IPv4 header checksum");
    if h.protocol == etherparse::IpNumber::IPV4 {
        let inner = ip.payload().payload;
        let (ih, _) = Ipv4Header::from_slice(inner).unwrap();
        assert_eq!(ih.header_checksum, ih.calc_header_checksum(), "{what}: inner IPv4 checksum");
        return;
    }
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let want = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
            assert_eq!(t.checksum(), want, "{what}: TCP checksum");
        }
        Some(TransportSlice::Udp(u)) if u.checksum() != 0 => {
            let want = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
            assert_eq!(u.checksum(), want, "{what}: UDP checksum");
        }
        Some(TransportSlice::Icmpv4(i)) => {
            assert_eq!(i.checksum(), i.icmp_type().calc_checksum(i.payload()), "{what}: ICMP checksum");
            if let Ok((q, _)) = Ipv4Header::from_slice(i.payload()) {
                assert_eq!(q.header_checksum, q.calc_header_checksum(), "{what}: quoted IPv4 checksum");
            }
        }
        _ => {}
    }
}

/// The IPv6 half of `verify_checksums`: TCP, UDP and ICMPv6 over the pseudo-header,
/// and the packet inside IPv6-in-IPv6.
fn verify_checksums6(frame: &[u8], what: &str) {
    let ip = &frame[14..];
    let (h, rest) = Ipv6Header::from_slice(ip).unwrap_or_else(|e| panic!("{what}: IPv6 header: {e:?}"));
    let payload = &rest[..usize::from(h.payload_length).min(rest.len())];
    match h.next_header {
        IpNumber::IPV6 => {
            // The inner packet, checked as if it came in its own frame.
            let mut inner = frame[..14].to_vec();
            inner.extend_from_slice(payload);
            verify_checksums6(&inner, &format!("{what} (inner)"));
        }
        IpNumber::TCP => {
            let (t, body) = TcpHeader::from_slice(payload).unwrap();
            assert_eq!(t.checksum, t.calc_checksum_ipv6(&h, body).unwrap(), "{what}: TCP checksum");
        }
        IpNumber::UDP => {
            let (u, body) = UdpHeader::from_slice(payload).unwrap();
            assert_eq!(u.checksum, u.calc_checksum_ipv6(&h, body).unwrap(), "{what}: UDP checksum");
        }
        IpNumber::IPV6_ICMP => {
            let (i, body) = Icmpv6Header::from_slice(payload).unwrap();
            let want = i.icmp_type.calc_checksum(h.source, h.destination, body).unwrap();
            assert_eq!(i.checksum, want, "{what}: ICMPv6 checksum");
        }
        _ => {}
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}

#[test]
fn packet_fixtures() {
    let mut p = fixtures::pipeline();
    let cases = fixtures::cases();
    assert!(cases.len() >= 15);
    for c in cases {
        verify_checksums(&c.input, &format!("input of '{}'", c.description));
        let mut buf = c.input.clone();
        let got = p.process(c.in_port, &mut buf, 1_000);
        assert_eq!(got, c.verdict, "{}", c.description);
        if let Some(want) = &c.output {
            assert_eq!(hex(&buf), hex(want), "{}: output frame", c.description);
        }
        if matches!(got, Verdict::Transmit(_)) {
            verify_checksums(&buf, c.description);
        }
    }
    let s = p.counters.snapshot();
    assert!(s.conns_created >= 6, "{s:?}");
    assert_eq!(s.icmp_related, 3);
    assert_eq!(s.icmp_frag_needed_sent, 1);
}

/// The malformed and edge-case table: each case on a fresh pipeline after its
/// setup frames; a drop moves exactly its reason's counter by one and no other
/// drop counter; a transmit moves none and its output passes the case's check.
#[test]
fn malformed_fixtures() {
    let cases = fixtures::malformed::malformed();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut reasons = std::collections::BTreeSet::new();
    for c in &cases {
        let mut p = fixtures::pipeline();
        for (port, f) in &c.setup {
            let mut b = f.clone();
            let v = p.process(*port, &mut b, 1_000);
            assert!(matches!(v, Verdict::Transmit(_)), "{}: setup frame got {v:?}", c.description);
        }
        let before = p.counters.snapshot().drops;
        let mut buf = c.input.clone();
        let got = p.process(c.in_port, &mut buf, 2_000);
        assert_eq!(got, c.verdict, "{}", c.description);
        let after = p.counters.snapshot().drops;
        for r in appliance::pipeline::counters::DropReason::ALL {
            let want = u64::from(got == Verdict::Drop(r));
            assert_eq!(after[r as usize] - before[r as usize], want, "{}: counter {}", c.description, r.name());
        }
        if let Verdict::Drop(r) = got {
            reasons.insert(r.name());
        }
        if matches!(got, Verdict::Transmit(_)) && c.description != fixtures::malformed::KEEPS_BAD_TCP_CHECKSUM {
            verify_checksums(&buf, &c.description);
        }
        if let Some(check) = c.check {
            check(&buf).unwrap_or_else(|e| panic!("{}: {e}\n{}", c.description, hex(&buf)));
        }
    }
    // The table covers every reason a malformed frame can have.
    for r in [
        "l2_truncated",
        "ip_truncated",
        "ip_bad_version",
        "ip_bad_header_len",
        "ip_bad_total_length",
        "ip_bad_checksum",
        "ip_fragment",
        "tcp_truncated",
        "tcp_bad_data_offset",
        "udp_truncated",
        "udp_bad_length",
        "icmp_truncated",
        "icmp_bad_checksum",
        "icmp_unhandled",
        "icmp_error_untracked",
        "ttl_exceeded",
    ] {
        assert!(reasons.contains(r), "no case drops for {r}");
    }
}

/// Seeded mutations of every fixture frame (bit flips, byte stores, truncations,
/// extensions), run through one long-lived pipeline: it must never panic, and every
/// frame it transmits must still parse.
#[test]
#[allow(clippy::cast_possible_truncation)] // random bytes and indices: truncation is the point
fn mutated_fixtures_never_panic() {
    let mut p = fixtures::pipeline();
    let seeds: Vec<(u16, Vec<u8>)> = fixtures::cases().into_iter().map(|c| (c.in_port, c.input)).collect();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut transmitted = 0;
    for round in 0..40_000u64 {
        let (port, base) = &seeds[(next() % seeds.len() as u64) as usize];
        let mut f = base.clone();
        for _ in 0..(1 + next() % 4) {
            match next() % 5 {
                0 if !f.is_empty() => {
                    let i = (next() % f.len() as u64) as usize;
                    f[i] ^= 1 << (next() % 8);
                }
                1 if !f.is_empty() => {
                    let i = (next() % f.len() as u64) as usize;
                    f[i] = next() as u8;
                }
                2 => {
                    let n = (next() % (f.len() as u64 + 1)) as usize;
                    f.truncate(n);
                }
                3 => f.extend((0..next() % 64).map(|_| next() as u8)),
                _ => {
                    // Corrupt a length field: IP total length or IHL, TCP data offset.
                    let at = [16usize, 17, 14, 46][(next() % 4) as usize];
                    if at < f.len() {
                        f[at] = next() as u8;
                    }
                }
            }
        }
        let port = if next() % 10 == 0 { (next() % 4) as u16 } else { *port };
        let v = p.process(port, &mut f, 1_000 + round);
        if matches!(v, Verdict::Transmit(_)) {
            transmitted += 1;
            assert!(SlicedPacket::from_ethernet(&f).is_ok(), "transmitted frame does not parse: {}", hex(&f));
        }
        if round % 1000 == 0 {
            p.expire(1_000 + round, 1000);
        }
    }
    assert!(transmitted > 100, "mutations should still let many frames through ({transmitted})");
}

/// Cache warming finds (and prefetches) the connection a frame belongs to and
/// changes nothing.
#[test]
fn warming_finds_the_connection_and_changes_nothing() {
    use fixtures::*;
    let mut p = pipeline();
    let syn = eth(CLIENT_MAC, EXT_MAC, &tcp(CLIENT, 40000, VIP, 80, SYN, 64, &[]));
    let ack = eth(CLIENT_MAC, EXT_MAC, &tcp(CLIENT, 40000, VIP, 80, ACK, 64, &[]));
    let other = eth(CLIENT_MAC, EXT_MAC, &tcp(CLIENT, 40001, VIP, 80, ACK, 64, &[]));
    assert_eq!(p.warm(&ack, 1), 0, "no connection yet");
    let mut b = syn.clone();
    assert!(matches!(p.process(0, &mut b, 1_000), Verdict::Transmit(_)));
    let before = p.director.conns.len();
    assert_ne!(p.warm(&ack, 1), 0, "the connection is found and prefetched");
    assert_eq!(p.warm(&other, 1), 0, "another tuple finds nothing");
    assert_eq!(p.warm(&syn, 1), 0, "a SYN (mostly opening a connection) is not looked for");
    assert_eq!(p.warm(&ack[..20], 0), 0, "truncated: nothing to warm");
    assert_eq!(p.director.conns.len(), before);
    assert!(!p.warm_worthwhile(), "a small table stays in cache");
}

/// Splits the IPv4 packet `ip` (no options) in two fragments at payload byte
/// `at` (a multiple of 8), as frames from `src_mac` to `dst_mac`.
fn fragments(ip: &[u8], at: usize, src_mac: [u8; 6], dst_mac: [u8; 6]) -> [Vec<u8>; 2] {
    let payload = &ip[20..];
    let make = |part: &[u8], offset: usize, more: bool| {
        let mut h = ip[..20].to_vec();
        h[2..4].copy_from_slice(&u16::try_from(20 + part.len()).unwrap().to_be_bytes());
        let fo = u16::try_from(offset / 8).unwrap() | if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&fo.to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let c = appliance::net::checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(part);
        fixtures::eth(src_mac, dst_mac, &h)
    };
    [make(&payload[..at], 0, true), make(&payload[at..], at, false)]
}

/// Puts translated fragments back together: (source, destination, protocol,
/// transport bytes), checking each fragment's IPv4 header checksum.
fn reassemble(frames: &[Vec<u8>]) -> (std::net::Ipv4Addr, std::net::Ipv4Addr, u8, Vec<u8>) {
    let mut parts: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut addrs = None;
    for f in frames {
        let (h, rest) = Ipv4Header::from_slice(&f[14..]).unwrap();
        assert_eq!(h.header_checksum, h.calc_header_checksum(), "fragment's IPv4 checksum");
        let len = usize::from(h.total_len) - h.header_len();
        parts.push((usize::from(h.fragment_offset.value()) * 8, rest[..len].to_vec()));
        addrs = Some((std::net::Ipv4Addr::from(h.source), std::net::Ipv4Addr::from(h.destination), h.protocol.0));
    }
    parts.sort();
    let (s, d, p) = addrs.unwrap();
    (s, d, p, parts.into_iter().flat_map(|(_, b)| b).collect())
}

fn l4_checksum_ok(src: std::net::Ipv4Addr, dst: std::net::Ipv4Addr, proto: u8, l4: &[u8]) -> bool {
    use appliance::net::checksum;
    let acc = checksum::pseudo_header_v4(src, dst, proto, u16::try_from(l4.len()).unwrap());
    checksum::fold(checksum::sum(acc, l4)) == 0xffff
}

/// Fragments follow their first fragment's connection: NAT both ways (the
/// reassembled datagram's UDP checksum holds with the new addresses), DR, TUN;
/// a later fragment after the entry's lifetime is dropped.
#[test]
fn fragments_follow_their_first_fragment() {
    use appliance::pipeline::counters::DropReason;
    use appliance::pipeline::frag::TTL_MS;
    use fixtures::*;
    let mut p = fixtures::pipeline();
    let payload: Vec<u8> = (0..40u8).collect();
    // NAT in: UDP client:5353 -> VIP:53 in two fragments.
    let query = udp(CLIENT, 5353, VIP, 53, 64, &payload);
    let mut out = Vec::new();
    for mut f in fragments(&query, 24, CLIENT_MAC, EXT_MAC) {
        assert_eq!(p.process(0, &mut f, 1_000), Verdict::Transmit(1));
        out.push(f);
    }
    let (s, d, proto, l4) = reassemble(&out);
    assert_eq!((s, d), (CLIENT.into(), RS1.into()), "both fragments go to RS1");
    assert_eq!(&l4[2..4], &53u16.to_be_bytes());
    assert!(l4_checksum_ok(s, d, proto, &l4), "the datagram's UDP checksum holds after translation");
    assert_eq!(&l4[8..], &payload[..]);
    // NAT out: RS1's answer in two fragments leaves as VIP:53.
    let answer = udp(RS1, 53, CLIENT, 5353, 64, &payload);
    let mut out = Vec::new();
    for mut f in fragments(&answer, 16, RS1_MAC, INT_MAC) {
        assert_eq!(p.process(1, &mut f, 1_100), Verdict::Transmit(0));
        out.push(f);
    }
    let (s, d, proto, l4) = reassemble(&out);
    assert_eq!((s, d), (VIP.into(), CLIENT.into()));
    assert!(l4_checksum_ok(s, d, proto, &l4), "reply checksum holds");
    // DR (VIP:81) and TUN (VIP:82): a SYN with data, fragmented.
    for (vport, outer_proto) in [(81u16, 6u8), (82, 4)] {
        let syn = tcp(CLIENT, 41000, VIP, vport, SYN, 64, &payload);
        for mut f in fragments(&syn, 32, CLIENT_MAC, EXT_MAC) {
            assert_eq!(p.process(0, &mut f, 1_200), Verdict::Transmit(1), "VIP:{vport}");
            assert_eq!(f[14 + 9], outer_proto, "VIP:{vport}: forwarded as its first fragment was");
        }
    }
    // Too late: the first fragment's entry is gone.
    let late = udp(CLIENT, 5354, VIP, 53, 64, &payload);
    let [mut first, mut second] = fragments(&late, 24, CLIENT_MAC, EXT_MAC);
    assert_eq!(p.process(0, &mut first, 2_000), Verdict::Transmit(1));
    assert_eq!(p.process(0, &mut second, 2_000 + TTL_MS), Verdict::Drop(DropReason::IpFragment));
}

/// Two workers under software steering by client (`workers.steering = "client"`):
/// every fragment of a datagram, first or later, request or NAT reply, is handed
/// to the worker that owns its client, so the first fragment's connection is made
/// there and the later fragments find it.
#[test]
fn a_datagrams_fragments_reach_one_worker() {
    use appliance::net::rss::{Input, RSS_KEY};
    use appliance::pipeline::burst::{Burst, Fate, Source, BURST};
    use appliance::pipeline::steer::Steering;
    use fixtures::*;
    let steering = Steering::new(RSS_KEY, Input::Client, 2);
    let owner = steering.owner(CLIENT.into(), 0);
    let other = 1 - owner;
    let mut workers: Vec<_> = (0..2).map(|w| fixtures::pipeline().with_steering(steering, w)).collect();
    let payload: Vec<u8> = (0..40u8).collect();
    let query = udp(CLIENT, 5353, VIP, 53, 64, &payload);
    let answer = udp(RS1, 53, CLIENT, 5353, 64, &payload);
    let mut fates = [Fate::Redirect(u16::MAX); BURST];
    for (frames, port, leaves_on) in
        [(fragments(&query, 24, CLIENT_MAC, EXT_MAC), 0u16, 1u16), (fragments(&answer, 16, RS1_MAC, INT_MAC), 1, 0)]
    {
        // They arrive at the worker that does not own the client: all handed over.
        let mut burst = Burst::default();
        for f in &frames {
            burst.push(f.clone(), port).unwrap();
        }
        workers[usize::from(other)].run_burst(burst.packets_mut(), Source::Wire, 1_000, &mut fates);
        assert_eq!(&fates[..2], &[Fate::Redirect(owner); 2], "every fragment goes to the client's owner");
        // The owner forwards the first by its connection and the later by the first's.
        let handed: Vec<_> = burst.drain().collect();
        let mut burst = Burst::default();
        for (f, port) in handed {
            burst.push(f, port).unwrap();
        }
        workers[usize::from(owner)].run_burst(burst.packets_mut(), Source::Peer, 1_000, &mut fates);
        assert_eq!(&fates[..2], &[Fate::Verdict(Verdict::Transmit(leaves_on)); 2]);
    }
    assert_eq!(workers[usize::from(owner)].director.conns.len(), 1, "one connection, on the owner");
    assert_eq!(workers[usize::from(other)].director.conns.len(), 0);
}

/// The next hop's MAC is remembered per destination, and forgotten the moment the
/// neighbour moves: the next packet leaves for the new MAC (requests to the real
/// server, replies to the client alike).
#[test]
fn a_moved_neighbour_is_followed_at_once() {
    use appliance::net::ethernet::EthernetAddress;
    use fixtures::*;
    let mut p = fixtures::pipeline();
    let mut syn = eth(CLIENT_MAC, EXT_MAC, &tcp(CLIENT, 40000, VIP, 80, SYN, 64, &[]));
    assert_eq!(p.process(0, &mut syn, 1_000), Verdict::Transmit(1));
    assert_eq!(&syn[..6], &RS1_MAC, "to RS1");
    let mut reply = eth(RS1_MAC, INT_MAC, &tcp(RS1, 8080, CLIENT, 40000, SYN_ACK, 64, &[]));
    assert_eq!(p.process(1, &mut reply, 1_000), Verdict::Transmit(0));
    assert_eq!(&reply[..6], &CLIENT_MAC, "to the client");
    let (rs1_moved, client_moved) = ([0x02, 0x51, 0, 0, 0, 0x99], [0x02, 0xc1, 0, 0, 0, 0x99]);
    p.neigh.insert_static(RS1.into(), EthernetAddress(rs1_moved), 1);
    p.neigh.insert_static(CLIENT.into(), EthernetAddress(client_moved), 0);
    let mut ack = eth(CLIENT_MAC, EXT_MAC, &tcp(CLIENT, 40000, VIP, 80, ACK, 64, &[]));
    assert_eq!(p.process(0, &mut ack, 1_001), Verdict::Transmit(1));
    assert_eq!(&ack[..6], &rs1_moved, "RS1 at its new MAC");
    let mut reply = eth(RS1_MAC, INT_MAC, &tcp(RS1, 8080, CLIENT, 40000, ACK, 64, &[]));
    assert_eq!(p.process(1, &mut reply, 1_001), Verdict::Transmit(0));
    assert_eq!(&reply[..6], &client_moved, "the client at its new MAC");
}

/// The established path (a known connection's packets straight to their transmit)
/// and the general path reach the same verdicts, the same bytes and the same
/// connection states: the same traffic through a pipeline that takes the shortcut
/// and through one kept on the general path (an unrelated hidden address rules the
/// shortcut out).
#[test]
fn the_established_path_is_the_general_path_shortened() {
    use appliance::pipeline::owner::Ownership;
    use fixtures::*;
    let mut fast = fixtures::pipeline();
    let unrelated = std::sync::Arc::new(Ownership::new(vec![(std::net::Ipv4Addr::new(198, 18, 0, 99), 0)]));
    let mut general = fixtures::pipeline().with_ownership(unrelated);
    let c = |sport, vport, f| (0u16, eth(CLIENT_MAC, EXT_MAC, &tcp(CLIENT, sport, VIP, vport, f, 64, &[1, 2, 3])));
    let r = |sport, f| (1u16, eth(RS1_MAC, INT_MAC, &tcp(RS1, 8080, CLIENT, sport, f, 64, &[4, 5])));
    let fin = Flags { syn: false, ack: true, fin: true };
    let mut traffic = vec![c(40000, 80, SYN), r(40000, SYN_ACK), c(40000, 80, ACK), r(40000, ACK), c(40000, 80, fin)];
    traffic.extend([r(40000, fin), c(40000, 80, ACK), c(40000, 80, SYN)]);
    for vport in [81u16, 82] {
        traffic.extend([c(41000, vport, SYN), c(41000, vport, ACK), c(41000, vport, fin), c(41000, vport, ACK)]);
    }
    traffic.push((0, eth(CLIENT_MAC, EXT_MAC, &udp(CLIENT, 5353, VIP, 53, 64, &[9; 12]))));
    traffic.push((0, eth(CLIENT_MAC, EXT_MAC, &udp(CLIENT, 5353, VIP, 53, 64, &[8; 12]))));
    // Packets without a connection that make none: to an address that is not the
    // appliance's, to no service of the VIP, not a SYN, to the DIP of another port,
    // to the DIP from its own side.
    traffic.push((0, eth(CLIENT_MAC, EXT_MAC, &tcp(CLIENT, 40001, [198, 18, 0, 77], 80, SYN, 64, &[]))));
    traffic.push((0, eth(CLIENT_MAC, EXT_MAC, &tcp(CLIENT, 40002, VIP, 8443, SYN, 64, &[]))));
    traffic.push((0, eth(CLIENT_MAC, EXT_MAC, &udp(CLIENT, 40003, VIP, 5000, 64, &[1; 8]))));
    traffic.push((0, eth(CLIENT_MAC, EXT_MAC, &tcp(CLIENT, 40004, VIP, 80, ACK, 64, &[]))));
    traffic.push((0, eth(CLIENT_MAC, EXT_MAC, &tcp(CLIENT, 40005, DIP, 22, SYN, 64, &[]))));
    traffic.push((1, eth(RS1_MAC, INT_MAC, &tcp(RS1, 40006, DIP, 22, SYN, 64, &[]))));
    for (i, (port, frame)) in traffic.into_iter().enumerate() {
        let (mut a, mut b) = (frame.clone(), frame);
        let (va, vb) = (fast.process(port, &mut a, 1_000 + i as u64), general.process(port, &mut b, 1_000 + i as u64));
        assert_eq!(va, vb, "packet {i}: verdict");
        assert_eq!(a, b, "packet {i}: bytes");
    }
    let states = |p: &appliance::pipeline::Pipeline| {
        let mut v: Vec<_> = p.director.conns.iter().map(|(_, c)| (c.ep, c.state, c.flags, c.expires_s)).collect();
        v.sort_by_key(|e| format!("{e:?}"));
        v
    };
    assert_eq!(states(&fast), states(&general), "connection states");
    let (f, g) = (fast.counters.snapshot(), general.counters.snapshot());
    assert_eq!(f.drops, g.drops);
    assert_eq!((f.lvs_in_packets, f.lvs_out_packets), (g.lvs_in_packets, g.lvs_out_packets), "packets each way");
}

/// A UDP datagram without a checksum (zero: "none" in IPv4) is translated and
/// keeps none; one with a checksum gets it updated.
#[test]
fn udp_without_a_checksum_keeps_none() {
    use fixtures::*;
    let mut p = fixtures::pipeline();
    let mut ip = udp(CLIENT, 5353, VIP, 53, 64, &[1, 2, 3, 4]);
    ip[26..28].copy_from_slice(&[0, 0]);
    let mut f = eth(CLIENT_MAC, EXT_MAC, &ip);
    assert_eq!(p.process(0, &mut f, 1_000), Verdict::Transmit(1));
    assert_eq!(&f[30..34], &RS1, "to RS1");
    assert_eq!(&f[14 + 20 + 2..14 + 20 + 4], &53u16.to_be_bytes());
    assert_eq!(&f[14 + 20 + 6..14 + 20 + 8], &[0, 0], "still no checksum");
    verify_checksums(&f, "UDP without checksum");
    let mut f = eth(CLIENT_MAC, EXT_MAC, &udp(CLIENT, 5354, VIP, 53, 64, &[1, 2, 3, 4]));
    assert_eq!(p.process(0, &mut f, 1_000), Verdict::Transmit(1));
    assert_ne!(&f[14 + 20 + 6..14 + 20 + 8], &[0, 0]);
    verify_checksums(&f, "UDP with checksum");
}

/// A burst through a table large enough to be warmed (its lines asked for ahead of
/// the packet processed) does exactly what the same packets do one by one: the
/// same verdicts, bytes, connection states and drops, whatever each packet is
/// (a known connection either way, a new one, one seen twice in the burst, a
/// stray without a connection, a datagram).
#[test]
fn a_warmed_burst_does_what_the_packets_do_one_by_one() {
    use appliance::pipeline::burst::{Fate, Source, BURST};
    use fixtures::*;
    const FLOWS: usize = 66_000;
    let client = |i: usize| {
        let a = u8::try_from(100 + i / 50_000).unwrap();
        ([198, 18, 0, a], u16::try_from(10_000 + i % 50_000).unwrap())
    };
    let mut bursty = fixtures::pipeline_sized(FLOWS + 1_000, true);
    let mut single = fixtures::pipeline_sized(FLOWS + 1_000, true);
    // Where each flow's SYN went (the real server's address), to answer from it.
    let mut real = vec![[0u8; 4]; FLOWS];
    for (i, r) in real.iter_mut().enumerate() {
        let (a, port) = client(i);
        let syn = eth(CLIENT_MAC, EXT_MAC, &tcp(a, port, VIP, 80, SYN, 64, &[]));
        for p in [&mut bursty, &mut single] {
            let mut f = syn.clone();
            assert!(matches!(p.process(0, &mut f, 1_000), Verdict::Transmit(_)), "flow {i}");
            r.copy_from_slice(&f[30..34]);
        }
    }
    assert!(bursty.warm_worthwhile(), "the table is large enough to be warmed");
    let c = |i: usize, f: Flags| {
        let (a, port) = client(i);
        (0u16, eth(CLIENT_MAC, EXT_MAC, &tcp(a, port, VIP, 80, f, 64, &[1, 2, 3])))
    };
    let r = |i: usize, f: Flags| {
        let (a, port) = client(i);
        let mac = if real[i] == RS1 { RS1_MAC } else { RS2_MAC };
        (1u16, eth(mac, INT_MAC, &tcp(real[i], 8080, a, port, f, 64, &[4, 5])))
    };
    let fin = Flags { syn: false, ack: true, fin: true };
    let mut traffic = Vec::new();
    for i in 0..BURST * 3 {
        let flow = (i * 7919) % FLOWS;
        traffic.push(match i % 8 {
            0 => r(flow, ACK),
            1 => c(FLOWS + i, SYN),
            2 => c(FLOWS + i, ACK),
            3 => c(flow, fin),
            4 => (0, eth(CLIENT_MAC, EXT_MAC, &udp(CLIENT, 5353, VIP, 53, 64, &[7; 12]))),
            _ => c(flow, ACK),
        });
    }
    // The same flow twice in one burst.
    traffic[5] = c(42, ACK);
    traffic[6] = c(42, fin);
    // One burst through `bursty`, its packets one by one through `single`: the
    // same verdicts and bytes.
    let same = |bursty: &mut appliance::pipeline::Pipeline,
                single: &mut appliance::pipeline::Pipeline,
                chunk: &[(u16, Vec<u8>)],
                k: usize| {
        let mut packets: Vec<(Vec<u8>, u16)> = chunk.iter().map(|(port, f)| (f.clone(), *port)).collect();
        let mut fates = [Fate::Redirect(0); BURST];
        bursty.run_burst(&mut packets, Source::Wire, 2_000, &mut fates);
        for (i, (port, frame)) in chunk.iter().enumerate() {
            let mut f = frame.clone();
            let v = single.process(*port, &mut f, 2_000);
            single.end_burst();
            assert_eq!(fates[i], Fate::Verdict(v), "burst {k} packet {i}: verdict");
            assert_eq!(packets[i].0, f, "burst {k} packet {i}: bytes");
        }
    };
    for (k, chunk) in traffic.chunks(BURST).enumerate() {
        same(&mut bursty, &mut single, chunk, k);
    }
    // A connection in TIME_WAIT taken again by a SYN, then its ACKs, in one burst:
    // the SYN ends the old entry and makes another with the same tuple, so the
    // ACKs must find the new one, though warming found the old.
    use appliance::ipvs::conn::{ConnState, TcpState};
    let x = 4243;
    let (xa, xp) = client(x);
    for p in [&mut bursty, &mut single] {
        let mut f = c(x, fin).1;
        assert!(matches!(p.process(0, &mut f, 2_000), Verdict::Transmit(_)));
        p.end_burst();
        let state =
            p.director.conns.iter().find(|(_, c)| c.ep.caddr == std::net::Ipv4Addr::from(xa) && c.ep.cport == xp);
        assert_eq!(state.map(|(_, c)| c.state), Some(ConnState::Tcp(TcpState::TimeWait)));
    }
    // The same over IPv6 (its own index, its own hints).
    let c6 = |port: u16, f: Flags| (0u16, eth6(CLIENT_MAC, EXT_MAC, &tcp6(CLIENT6, port, VIP6, 80, f, 64, &[1, 2, 3])));
    for p in [&mut bursty, &mut single] {
        for f in [SYN, fin] {
            let mut f = c6(4243, f).1;
            assert!(matches!(p.process(0, &mut f, 2_000), Verdict::Transmit(_)));
            p.end_burst();
        }
        let state = p.director.conns6.iter().find(|(_, c)| c.ep.cport == 4243).map(|(_, c)| c.state);
        assert_eq!(state, Some(ConnState::Tcp(TcpState::TimeWait)));
    }
    let chunk = [c(x, SYN), c(x, ACK), c(x, ACK), c(x + 1, ACK), c6(4243, SYN), c6(4243, ACK), c6(4243, ACK)];
    same(&mut bursty, &mut single, &chunk, 99);
    let states6 = |p: &appliance::pipeline::Pipeline| {
        let mut v: Vec<_> = p.director.conns6.iter().map(|(_, c)| (c.ep, c.state, c.flags, c.expires_s)).collect();
        v.sort_by_key(|e| (e.0.cport, e.0.vport));
        v
    };
    assert_eq!(states6(&bursty), states6(&single), "IPv6 connection states");
    let states = |p: &appliance::pipeline::Pipeline| {
        let mut v: Vec<_> = p.director.conns.iter().map(|(_, c)| (c.ep, c.state, c.flags, c.expires_s)).collect();
        v.sort_by_key(|e| (e.0.caddr, e.0.cport, e.0.vport));
        v
    };
    assert_eq!(states(&bursty), states(&single), "connection states");
    assert_eq!(bursty.counters.snapshot().drops, single.counters.snapshot().drops);
}
