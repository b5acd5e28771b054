//! Runs the packet fixtures of `tests/fixtures` through the pipeline (no DPDK) and
//! checks verdicts, output bytes and, with etherparse, every checksum of every
//! output frame (inner headers of tunnels and ICMP quotes' IP headers included).

mod fixtures;

use appliance::pipeline::Verdict;
use etherparse::{Ipv4Header, NetSlice, SlicedPacket, TransportSlice};

/// Every checksum in `frame` verifies (IP, TCP/UDP, ICMP; the IP inside IPIP).
fn verify_checksums(frame: &[u8], what: &str) {
    let p = SlicedPacket::from_ethernet(frame).unwrap_or_else(|e| panic!("{what}: does not parse: {e:?}"));
    let Some(NetSlice::Ipv4(ip)) = &p.net else { return };
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
    assert_eq!(s.icmp_related, 2);
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

/// Cache warming reads the connection a frame belongs to and changes nothing.
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
    assert_ne!(p.warm(&ack, 1), 0, "the connection's expiry time is read");
    assert_eq!(p.warm(&other, 1), 0, "another tuple finds nothing");
    assert_eq!(p.warm(&ack[..20], 0), 0, "truncated: nothing to warm");
    assert_eq!(p.director.conns.len(), before);
    assert!(!p.warm_worthwhile(), "a small table stays in cache");
}
