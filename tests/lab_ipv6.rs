//! IPv6 end to end, in the nat6 lab (the nat lab dual-stack) with the kernel's own
//! IPv6 stack as client and real servers.
//! - rvsd answers neighbour discovery for its IPv6 addresses with its ports' MACs
//!   and answers ping6, on both arms, while the IPv4 service keeps serving.

mod common;

use common::*;

#[test]
fn nat6_lab_answers_neighbour_discovery_and_ping6_beside_ipv4() {
    let lab = Lab::start("nat6", "6");
    let (client, lb, vip6) = (lab.var("CLIENT_NS"), lab.var("LB_NS"), lab.var("VIP6"));
    let (mut rvsd, sock) = lab.rvsd(None, &[]);

    // The client has no neighbour entry for VIP6: ping -6 must solicit it first.
    let ping = in_ns(client, &["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", vip6]);
    let ping_text = text(&ping);
    assert!(ping.status.success(), "ping -6 failed:\n{ping_text}\nrvsd log:\n{}", rvsd.log_text());
    assert!(ping_text.contains("3 packets transmitted, 3 received"), "{ping_text}");

    // VIP6 resolves to the MAC of the appliance's external port.
    let ext = lab.list("LB_IFACES")[0].clone();
    let link = text(&run(std::process::Command::new("ip").args(["-n", lb, "-br", "link", "show", &ext])));
    let port_mac = link.split_whitespace().nth(2).expect("MAC in ip -br link").to_string();
    let neigh = text(&run(std::process::Command::new("ip").args(["-n", client, "-6", "neigh", "show", vip6])));
    assert!(neigh.contains(&format!("lladdr {port_mac}")), "client neighbour entry {neigh:?}, port MAC {port_mac}");

    // The internal arm answers for DIP6: a real server pings its IPv6 gateway...
    let rs_ns = lab.list("RS_NSS")[0].clone();
    let ping_dip = in_ns(&rs_ns, &["ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", lab.var("DIP6")]);
    assert!(ping_dip.status.success(), "ping -6 DIP6 failed:\n{}", text(&ping_dip));
    // ...but not for VIP6 there: the solicitation stays unanswered.
    let vip_inside = in_ns(&rs_ns, &["ping", "-6", "-c", "1", "-W", "1", vip6]);
    assert!(!vip_inside.status.success(), "VIP6 answered on the internal arm:\n{}", text(&vip_inside));

    // The IPv4 service of the same rvsd serves on: rr over both real servers.
    let url = format!("http://{}:{}/", lab.var("VIP"), lab.var("VPORT"));
    let names = lab.list("RS_NAMES");
    let want: Vec<String> = (0..4).map(|i| names[i % 2].clone()).collect();
    assert_eq!(curls(client, &url, 4), want, "IPv4 rr beside IPv6\nrvsd log:\n{}", rvsd.log_text());

    let listing = rvsadm_ok(&sock, "-L -n");
    assert!(listing.contains(&format!("TCP  {}:{} rr", lab.var("VIP"), lab.var("VPORT"))), "{listing}");

    rvsd.terminate(std::time::Duration::from_secs(2)).expect("rvsd stops on SIGTERM");
    let log = rvsd.log_text();
    assert_eq!(exit_counter(&log, "icmp_echo_replies"), 5, "3 + 2 echo replies:\n{log}");
    assert!(exit_counter(&log, "nd_adverts") >= 2, "a solicitation answered on each arm:\n{log}");
}
