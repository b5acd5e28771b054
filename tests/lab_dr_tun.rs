//! The DR and TUN labs end to end: curl completes through
//! the director, the real servers answer the client directly, so a capture on the
//! director's link shows no real-server-to-client packet; in TUN the real server's
//! link carries protocol-4 packets DIP -> RIP whose inner packet is exactly what the
//! client sent.

mod common;

use common::*;
use std::net::Ipv4Addr;

fn addr(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Replies (VIP -> client) in a capture.
fn replies(frames: &[Vec<u8>], vip: Ipv4Addr, client: Ipv4Addr) -> usize {
    frames.iter().filter_map(|f| ipv4_of(f)).filter(|(s, d, p, _)| *s == vip && *d == client && *p == 6).count()
}

#[test]
fn dr_lab_replies_bypass_the_director() {
    let r = LabRun::start("dr", "d", &[]);
    let (client, vip, client_ip) = (r.lab.var("CLIENT_NS"), addr(r.lab.var("VIP")), addr(r.lab.var("CLIENT_IP")));
    let rs_ns = r.lab.list("RS_NSS");
    let lb_cap = Capture::start(r.lab.var("LB_NS"), "eth0", "dr-lb");
    let rs_cap = Capture::start(&rs_ns[0], "eth0", "dr-rs1");
    let got = curls(client, &format!("http://{vip}/"), 4);
    let lb = lb_cap.stop();
    let rs1 = rs_cap.stop();
    assert_eq!(got, vec!["server2", "server1", "server2", "server1"], "rvsd log:\n{}", r.rvsd.log_text());
    assert!(!lb.is_empty(), "the director's link saw the requests");
    assert_eq!(replies(&lb, vip, client_ip), 0, "a real-server reply crossed the director's link");
    assert!(replies(&rs1, vip, client_ip) > 0, "RS1 answered the client itself, from the VIP");
    // Requests reach RS1 still addressed to the VIP (only the MAC changed).
    let to_vip = rs1.iter().filter_map(|f| ipv4_of(f)).filter(|(s, d, _, _)| *s == client_ip && *d == vip).count();
    assert!(to_vip > 0);
    let listing = rvsadm_ok(&r.sock, "-Ln");
    assert!(listing.contains("Route   1      0          2"), "{listing}");
}

#[test]
fn tun_lab_wraps_requests_and_replies_bypass_the_director() {
    let r = LabRun::start("tun", "t", &[]);
    let (client, vip, client_ip) = (r.lab.var("CLIENT_NS"), addr(r.lab.var("VIP")), addr(r.lab.var("CLIENT_IP")));
    let (dip, rs1_ip) = (addr(r.lab.var("DIP")), addr(&r.lab.list("RS_IPS")[0]));
    let rs_ns = r.lab.list("RS_NSS");
    let lb_cap = Capture::start(r.lab.var("LB_NS"), "eth0", "tun-lb");
    let rs_cap = Capture::start(&rs_ns[0], "eth0", "tun-rs1");
    let client_cap = Capture::start(client, "eth0", "tun-client");
    let got = curls(client, &format!("http://{vip}/"), 4);
    let lb = lb_cap.stop();
    let rs1 = rs_cap.stop();
    let sent = client_cap.stop();
    assert_eq!(got, vec!["server2", "server1", "server2", "server1"], "rvsd log:\n{}", r.rvsd.log_text());
    assert_eq!(replies(&lb, vip, client_ip), 0, "a real-server reply crossed the director's link");
    assert!(replies(&rs1, vip, client_ip) > 0, "RS1 answered the client itself");

    // Protocol-4 packets DIP -> RS1 whose inner packet is byte for byte what the
    // client sent.
    let client_sent: Vec<Vec<u8>> = sent
        .iter()
        .filter_map(|f| ipv4_of(f))
        .filter(|(s, d, _, _)| *s == client_ip && *d == vip)
        .map(|(_, _, _, ip)| ip)
        .collect();
    let tunnelled: Vec<Vec<u8>> = rs1
        .iter()
        .filter_map(|f| ipv4_of(f))
        .filter(|(s, d, p, _)| *s == dip && *d == rs1_ip && *p == 4)
        .map(|(_, _, _, ip)| ip[20..].to_vec())
        .collect();
    assert!(tunnelled.len() >= 3, "IPIP packets seen on RS1's link: {}", tunnelled.len());
    for inner in &tunnelled {
        assert!(client_sent.contains(inner), "inner packet differs from every packet the client sent: {inner:02x?}");
    }
    let listing = rvsadm_ok(&r.sock, "-Ln");
    assert!(listing.contains("Tunnel  1      0          2"), "{listing}");
}
