//! `perf`: RVS benchmarks that print numbers (never asserted by tests).
//!
//! The pipeline alone, DPDK-free, driven by the packet fixtures of `tests/fixtures`
//! (Katran's way: the same table drives tests and benchmarks). Each case is first
//! run once in order (so connections exist), then each transmitted case is timed on
//! its own: the steady-state cost of that path for a packet of an existing
//! connection (NAT in/out, DR, TUN, ICMP). Plus ARP and ping to the VIP.
//! The pktgen-style generator over real ports comes with issue 9.
//!
//!   cargo run --release -p perf [-- PACKETS]

#[path = "../../tests/fixtures/mod.rs"]
mod fixtures;

use appliance::net::arp;
use appliance::net::ethernet::{self, EthernetAddress};
use appliance::pipeline::Verdict;
use std::net::Ipv4Addr;
use std::time::Instant;

fn arp_request() -> Vec<u8> {
    let mut f = vec![0u8; 60];
    let n = appliance::pipeline::neigh::build_request(
        &mut f,
        EthernetAddress(fixtures::CLIENT_MAC),
        Ipv4Addr::from(fixtures::CLIENT),
        Ipv4Addr::from(fixtures::VIP),
    );
    f.truncate(n);
    let _ = (arp::PACKET_LEN, ethernet::HEADER_LEN);
    f
}

fn main() {
    let packets: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let mut p = fixtures::pipeline();
    let mut timed: Vec<(String, u16, Vec<u8>)> = vec![("ARP request for the VIP -> reply".into(), 0, arp_request())];
    for c in fixtures::cases() {
        let mut buf = c.input.clone();
        let v = p.process(c.in_port, &mut buf, 1_000);
        if matches!(v, Verdict::Transmit(_)) && !c.description.contains("frag-needed, MTU") {
            timed.push((c.description.to_string(), c.in_port, c.input));
        }
    }
    println!("rvs pipeline, one core, {packets} packets per case (cargo run --release -p perf)");
    println!("{:>9}  {:>8}  case", "ns/pkt", "Mpps");
    let mut buf = Vec::with_capacity(2048);
    for (name, port, frame) in &timed {
        let t0 = Instant::now();
        for i in 0..packets {
            // Each packet starts from the received bytes, as a fresh mbuf would.
            buf.clear();
            buf.extend_from_slice(frame);
            std::hint::black_box(p.process(*port, std::hint::black_box(&mut buf), 1_000 + i / 1_000_000));
        }
        let ns = t0.elapsed().as_nanos() as f64 / packets as f64;
        println!("{ns:>9.1}  {:>8.2}  {name}", 1e3 / ns);
    }
}
