//! IPv6 end to end, in the nat6 lab (the nat lab dual-stack) with the kernel's own
//! IPv6 stack as client and real servers.
//! - rvsd answers neighbour discovery for its IPv6 addresses with its ports' MACs
//!   and answers ping6, on both arms, while the IPv4 service keeps serving.
//! - the NAT tutorial over IPv6 beside the IPv4 one in one rvsd: six `curl -6`
//!   alternate over both real servers (rr), `rvsadm -L -n` lists both services as
//!   ipvsadm does, and the connection listing shows the IPv6 connections.
//! - the DR and TUN tutorials over IPv6 (dr6, tun6 labs): six `curl -6` alternate
//!   over real servers that answer the client themselves.

mod common;

use common::*;

#[test]
fn nat6_lab_serves_ipv6_and_ipv4_clients_at_once() {
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
    let want: Vec<String> = (0..4).map(|i| names[(i + 1) % 2].clone()).collect();
    assert_eq!(curls(client, &url, 4), want, "IPv4 rr beside IPv6\nrvsd log:\n{}", rvsd.log_text());

    let listing = rvsadm_ok(&sock, "-L -n");
    assert!(listing.contains(&format!("TCP  {}:{} rr", lab.var("VIP"), lab.var("VPORT"))), "{listing}");

    // The same tutorial over IPv6, at the same time: rr over both real servers.
    let url6 = format!("http://[{vip6}]:{}/", lab.var("VPORT"));
    let want6: Vec<String> = (0..6).map(|i| names[(i + 1) % 2].clone()).collect();
    let got6 = curls(client, &url6, 6);
    assert_eq!(got6, want6, "IPv6 rr\nrvsd log:\n{}", rvsd.log_text());
    // And IPv4 again, interleaved: neither family disturbs the other.
    assert_eq!(curls(client, &url, 2), vec![names[1].clone(), names[0].clone()]);

    let rs4 = lab.list("RS_IPS");
    let rs6 = lab.list("RS_IPS6");
    let listing = rvsadm_ok(&sock, "-L -n");
    let expected = format!(
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n\
         \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  {vip}:80 rr\n\
         \x20 -> {:<28} Masq    1      0          3         \n\
         \x20 -> {:<28} Masq    1      0          3         \n\
         TCP  [{vip6}]:80 rr\n\
         \x20 -> {:<28} Masq    1      0          3         \n\
         \x20 -> {:<28} Masq    1      0          3         \n",
        format!("{}:80", rs4[0]),
        format!("{}:80", rs4[1]),
        format!("[{}]:80", rs6[0]),
        format!("[{}]:80", rs6[1]),
        vip = lab.var("VIP"),
    );
    assert_eq!(listing, expected);
    // ipvsadm's IPv6 grammar at run time: a service and a real server added,
    // saved as ipvsadm saves them, and removed.
    rvsadm_ok(&sock, "-A -t [2001:2::10]:8080 -s wrr -p 600 -M 64");
    rvsadm_ok(&sock, &format!("-a -t [2001:2::10]:8080 -r [{}]:80 -m -w 2", rs6[0]));
    let saved = rvsadm_ok(&sock, "-S -n");
    assert!(saved.contains("-A -t [2001:2::10]:8080 -s wrr -p 600 -M 64\n"), "{saved}");
    assert!(saved.contains(&format!("-a -t [2001:2::10]:8080 -r [{}]:80 -m -w 2\n", rs6[0])), "{saved}");
    let (code, _, err) = rvsadm(&sock, &format!("-a -t [2001:2::10]:8080 -r {}:80 -m", rs4[0]));
    assert_ne!(code, 0, "an IPv4 real server in an IPv6 service: {err}");
    rvsadm_ok(&sock, "-D -t [2001:2::10]:8080");
    assert!(!rvsadm_ok(&sock, "-L -n").contains(":8080"));
    let conns = rvsadm_ok(&sock, "-lnc");
    let six: Vec<&str> = conns.lines().filter(|l| l.contains(&format!("[{vip6}]:80"))).collect();
    assert_eq!(six.len(), 6, "{conns}");
    assert!(
        six.iter().all(|l| l.starts_with("TCP ") && l.contains("TIME_WAIT") && l.contains("[2001:2::100]:")),
        "{conns}"
    );

    rvsd.terminate(std::time::Duration::from_secs(2)).expect("rvsd stops on SIGTERM");
    let log = rvsd.log_text();
    assert_eq!(exit_counter(&log, "icmp_echo_replies"), 5, "3 + 2 echo replies:\n{log}");
    assert!(exit_counter(&log, "nd_adverts") >= 2, "a solicitation answered on each arm:\n{log}");
}

/// The DR or TUN tutorial over IPv6 in lab `name`: six `curl -6` alternate over
/// both real servers, which answer the client themselves; ipvsadm's listing.
fn six_curls_through(name: &str, tag: &str, forward: &str) {
    let run = LabRun::start(name, tag, &[]);
    let (lab, rvsd, sock) = (&run.lab, &run.rvsd, &run.sock);
    let (client, vip6) = (lab.var("CLIENT_NS"), lab.var("VIP6"));
    let names = lab.list("RS_NAMES");
    let url = format!("http://[{vip6}]:{}/", lab.var("VPORT"));
    let want: Vec<String> = (0..6).map(|i| names[(i + 1) % 2].clone()).collect();
    assert_eq!(curls(client, &url, 6), want, "{name} rr\nrvsd log:\n{}", rvsd.log_text());
    let rs = lab.list("RS_IPS6");
    // The director sees only the client's side: its connections never leave
    // SYN_RECV/ESTABLISHED by replies, as with IPv4 DR and TUN (active, then
    // inactive once the client's FIN passes).
    let listing = rvsadm_ok(sock, "-L -n");
    let head = format!(
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n\
         \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  [{vip6}]:80 rr\n"
    );
    assert!(listing.starts_with(&head), "{listing}");
    for r in &rs {
        let line = format!("  -> {:<28} {forward:<7} 1      ", format!("[{r}]:80"));
        assert!(listing.contains(&line), "{line:?} in\n{listing}");
    }
}

#[test]
fn dr6_lab_six_curls_alternate() {
    six_curls_through("dr6", "d6", "Route");
}

#[test]
fn tun6_lab_six_curls_alternate() {
    six_curls_through("tun6", "t6", "Tunnel");
}
