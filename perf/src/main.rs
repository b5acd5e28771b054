//! `perf`: RVS benchmarks that print numbers (never asserted by tests).
//!
//! For now, the pipeline alone, DPDK-free: the cost per packet of the L2/L3 stage on
//! the frames a lab sees (ARP request for the VIP, ICMP echo to the VIP, a frame to
//! drop). The pktgen-style generator over real ports comes with issue 9.
//!
//!   cargo run --release -p perf [-- PACKETS]

use appliance::net::arp;
use appliance::net::ethernet::{self, EthernetAddress};
use appliance::net::icmp;
use appliance::net::ipv4;
use appliance::pipeline::counters::Counters;
use appliance::pipeline::neigh::NeighbourTable;
use appliance::pipeline::{Pipeline, PortView};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

const PORT_MAC: EthernetAddress = EthernetAddress([0x02, 0x1b, 0, 0, 0, 1]);
const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0xc1, 0, 0, 0, 1]);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

fn eth(ethertype: u16, dst: EthernetAddress, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN];
    let mut v = ethernet::Frame::new_unchecked(&mut f[..]);
    v.set_dst_addr(dst);
    v.set_src_addr(CLIENT_MAC);
    v.set_ethertype(ethertype);
    f.extend_from_slice(payload);
    f.resize(f.len().max(60), 0);
    f
}

fn arp_request() -> Vec<u8> {
    let mut b = [0u8; arp::PACKET_LEN];
    arp::Repr {
        operation: arp::Operation::Request,
        source_hardware_addr: CLIENT_MAC,
        source_protocol_addr: CLIENT,
        target_hardware_addr: EthernetAddress::ZERO,
        target_protocol_addr: VIP,
    }
    .emit(&mut arp::Packet::new_unchecked(&mut b[..]));
    eth(ethernet::ethertype::ARP, EthernetAddress::BROADCAST, &b)
}

fn echo_request(dst: Ipv4Addr) -> Vec<u8> {
    let mut msg = vec![8u8, 0, 0, 0, 0x12, 0x34, 0, 1];
    msg.extend_from_slice(&[0xa5; 56]);
    icmp::Packet::new_unchecked(&mut msg[..]).fill_checksum();
    let mut ip = vec![0u8; ipv4::HEADER_LEN];
    ip.extend_from_slice(&msg);
    ipv4::Repr {
        src_addr: CLIENT,
        dst_addr: dst,
        protocol: 1,
        payload_len: msg.len(),
        ttl: 64,
        ident: 1,
        dont_frag: true,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut ip[..]));
    eth(ethernet::ethertype::IPV4, PORT_MAC, &ip)
}

fn main() {
    let packets: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5_000_000);
    let ports = vec![PortView { mac: PORT_MAC, addresses: vec!["198.18.0.10/24".parse().expect("cidr")], mtu: 1500 }];
    let mut p = Pipeline::new(ports, NeighbourTable::with_capacity(1024), Arc::new(Counters::default()));
    let cases = [
        ("arp request for VIP -> reply", arp_request()),
        ("icmp echo to VIP -> reply", echo_request(VIP)),
        ("ipv4 to foreign address -> drop", echo_request(Ipv4Addr::new(198, 18, 0, 99))),
    ];
    println!("pipeline L2/L3 stage, {packets} packets per case (rvs perf, {})", env!("CARGO_PKG_VERSION"));
    for (name, frame) in &cases {
        let mut buf = frame.clone();
        let t0 = Instant::now();
        for _ in 0..packets {
            // Each packet starts from the received bytes, as a fresh mbuf would.
            buf.copy_from_slice(frame);
            std::hint::black_box(p.process(0, std::hint::black_box(&mut buf), 0));
        }
        let ns = t0.elapsed().as_nanos() as f64 / packets as f64;
        println!("{name:<34} {ns:>7.1} ns/packet  {:>7.2} Mpps (one core)", 1e3 / ns);
    }
}
