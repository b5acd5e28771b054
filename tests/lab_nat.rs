//! The nat lab end to end (issue 2's "done when" 3 and 5): rvsd in the LB namespace
//! answers ARP for the VIP with its port's MAC and answers ping; SIGTERM stops it
//! within a second and leaves no hugepage files.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn nat_lab_answers_arp_and_ping_and_stops_on_sigterm() {
    require_root();
    let lab = Lab::up("nat", &unique_id("n"));
    let (client, lb, vip) = (lab.var("CLIENT_NS"), lab.var("LB_NS"), lab.var("VIP"));
    let huge_before = hugepage_files();

    let mut rvsd = Daemon::start(Some(lb), std::path::Path::new(lab.var("CONFIG")), &[]);
    rvsd.wait_ready(Duration::from_secs(30));

    // The client has never seen the VIP: ping must ARP first.
    let neigh = text(&run(std::process::Command::new("ip").args(["-n", client, "neigh", "show", vip])));
    assert!(!neigh.contains("lladdr"), "VIP already resolved before rvsd answered: {neigh}");
    let ping = in_ns(client, &["ping", "-c", "3", "-i", "0.2", "-W", "2", vip]);
    let ping_text = text(&ping);
    assert!(ping.status.success(), "ping failed:\n{ping_text}\nrvsd log:\n{}", rvsd.log_text());
    assert!(ping_text.contains("3 packets transmitted, 3 received"), "{ping_text}");

    // The VIP resolves to the MAC of the appliance's external port (the af_packet PMD
    // takes the veth's MAC).
    let ext = lab.list("LB_IFACES")[0].clone();
    let link = text(&run(std::process::Command::new("ip").args(["-n", lb, "-br", "link", "show", &ext])));
    let port_mac = link.split_whitespace().nth(2).expect("MAC in ip -br link").to_string();
    let neigh = text(&run(std::process::Command::new("ip").args(["-n", client, "neigh", "show", vip])));
    assert!(neigh.contains(&format!("lladdr {port_mac}")), "client neighbour entry {neigh:?}, port MAC {port_mac}");

    // The internal arm answers for the DIP too: a real server pings its gateway.
    let rs_ns = lab.list("RS_NSS")[0].clone();
    let ping_dip = in_ns(&rs_ns, &["ping", "-c", "2", "-i", "0.2", "-W", "2", lab.var("DIP")]);
    assert!(ping_dip.status.success(), "ping DIP failed:\n{}", text(&ping_dip));
    // ...but not for the VIP on the internal arm: ARP there stays unanswered.
    let arping_vip = in_ns(&rs_ns, &["ping", "-c", "1", "-W", "1", vip]);
    assert!(!arping_vip.status.success(), "VIP answered on the internal arm:\n{}", text(&arping_vip));

    let (status, took) = rvsd.terminate(Duration::from_secs(1)).unwrap_or_else(|| {
        panic!("rvsd still running 1 s after SIGTERM:\n{}", rvsd.log_text());
    });
    let log = rvsd.log_text();
    assert!(status.success(), "rvsd exited with {status}:\n{log}");
    eprintln!("rvsd stopped {took:?} after SIGTERM");
    assert!(log.contains("icmp_echo_replies=5"), "echo replies not counted as 3 + 2:\n{log}");
    assert_eq!(hugepage_files(), huge_before, "rvsd left files in /dev/hugepages");
}
