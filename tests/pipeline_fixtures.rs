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
