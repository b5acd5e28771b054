//! The nat lab end to end.
//! - rvsd in the LB namespace answers ARP for the VIP with its port's MAC
//!   and answers ping; SIGTERM stops it within a second and leaves no hugepage files.
//! - the LVS NAT tutorial with real curl and real HTTP servers: rr order,
//!   then wlc with weights 3:1, ActiveConn/InActConn and the connection listing.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn nat_lab_answers_arp_and_ping_and_stops_on_sigterm() {
    let lab = Lab::start("nat", "n");
    let (client, lb, vip) = (lab.var("CLIENT_NS"), lab.var("LB_NS"), lab.var("VIP"));
    let huge_before = hugepage_files();

    let (mut rvsd, sock) = lab.rvsd(None, &[]);

    // The client has never seen the VIP (the gratuitous ARP at start only updates
    // existing entries): ping must ARP first.
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
    assert!(!std::path::Path::new(&sock).exists(), "control socket removed at exit");
}

#[test]
fn nat_tutorial_rr_then_wlc_3_to_1() {
    let lab = Lab::start("nat", "w");
    let (client, vip, vport) = (lab.var("CLIENT_NS"), lab.var("VIP"), lab.var("VPORT"));
    let names = lab.list("RS_NAMES");
    let rs = lab.list("RS_IPS");
    let (rvsd, sock) = lab.rvsd(None, &[]);
    let url = format!("http://{vip}:{vport}/");

    // rr: server2 server1 server2 ... (the kernel puts each new real server at the
    // head of the list, so the last one configured comes first) and three TIME_WAIT
    // connections per server.
    let got = curls(client, &url, 6);
    let want: Vec<String> = (0..6).map(|i| names[(i + 1) % 2].clone()).collect();
    assert_eq!(got, want, "rr order\nrvsd log:\n{}", rvsd.log_text());
    let listing = rvsadm_ok(&sock, "-L -n");
    let expected = format!(
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n\
         \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  {vip}:{vport} rr\n\
         \x20 -> {:<28} Masq    1      0          3         \n\
         \x20 -> {:<28} Masq    1      0          3         \n",
        format!("{}:80", rs[0]),
        format!("{}:80", rs[1]),
    );
    assert_eq!(listing, expected);
    let conns = rvsadm_ok(&sock, "-lnc");
    let lines: Vec<&str> = conns.lines().collect();
    assert_eq!(lines[0], "IPVS connection entries");
    assert_eq!(lines[1], "pro expire state       source             virtual            destination");
    assert_eq!(lines.len(), 2 + 6, "{conns}");
    for l in &lines[2..] {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!((f[0], f[2]), ("TCP", "TIME_WAIT"), "{l}");
        let (m, s) = f[1].split_once(':').unwrap();
        let left = m.parse::<u32>().unwrap() * 60 + s.parse::<u32>().unwrap();
        assert!((100..=120).contains(&left), "expire countdown {l}");
        assert!(f[3].starts_with(lab.var("CLIENT_IP")) && f[4] == format!("{vip}:{vport}"), "{l}");
        assert!(rs.iter().any(|r| f[5] == format!("{r}:80")), "{l}");
    }

    // The NAT tutorial's wlc with weights 3:1, on a fresh service (-C removes the
    // services; as in the kernel, their connections live on until they end).
    rvsadm_ok(&sock, "-C");
    assert_eq!(rvsadm_ok(&sock, "-Ln"), "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
    assert_eq!(rvsadm_ok(&sock, "-lnc").lines().count(), 2 + 6, "connections outlive -C");
    rvsadm_ok(&sock, &format!("-A -t {vip}:{vport} -s wlc"));
    rvsadm_ok(&sock, &format!("-a -t {vip}:{vport} -r {}:80 -m -w 3", rs[0]));
    rvsadm_ok(&sock, &format!("-a -t {vip}:{vport} -r {}:80 -m -w 1", rs[1]));
    // Each request ends (TIME_WAIT, inactive) before the next: wlc compares
    // InActConn / weight over the list RS2, RS1 (the newest first, as the kernel
    // keeps it): RS2 first, then RS1 three times, as the kernel picks.
    let got = curls(client, &url, 6);
    let order = [1, 0, 0, 0, 1, 0];
    let want: Vec<String> = order.iter().map(|&i| names[i].clone()).collect();
    assert_eq!(got, want, "wlc 3:1 order");
    let listing = rvsadm_ok(&sock, "-Ln");
    assert!(listing.contains(&format!("TCP  {vip}:{vport} wlc\n")), "{listing}");
    assert!(
        listing.contains(&format!("  -> {:<28} Masq    3      0          4         \n", format!("{}:80", rs[0]))),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("  -> {:<28} Masq    1      0          2         \n", format!("{}:80", rs[1]))),
        "{listing}"
    );

    // Errors change nothing and say why, as ipvsadm does.
    let (code, _, err) = rvsadm(&sock, &format!("-a -t {vip}:{vport} -r {}:80 -m", rs[0]));
    assert_ne!(code, 0);
    assert!(err.contains("Destination already exists"), "{err}");
    let (code, _, err) = rvsadm(&sock, &format!("-D -t {vip}:81"));
    assert_eq!(code, 255);
    assert_eq!(err, "No such service\n");
    assert_eq!(rvsadm_ok(&sock, "-Ln"), listing, "failed commands changed nothing");
}

#[test]
fn one_arm_nat_tutorial() {
    let lab = Lab::start("nat1", "o");
    let (client, vip) = (lab.var("CLIENT_NS"), lab.var("VIP"));
    let names = lab.list("RS_NAMES");
    let rs = lab.list("RS_IPS");
    let (rvsd, sock) = lab.rvsd(None, &[]);
    let got = curls(client, &format!("http://{vip}/"), 6);
    let want: Vec<String> = (0..6).map(|i| names[(i + 1) % 2].clone()).collect();
    assert_eq!(got, want, "rvsd log:\n{}", rvsd.log_text());
    let listing = rvsadm_ok(&sock, "-Ln");
    for r in &rs {
        let line = format!("  -> {:<28} Masq    1      0          3         \n", format!("{r}:80"));
        assert!(listing.contains(&line), "{listing}");
    }
}

#[test]
fn reload_during_200_requests_loses_none_and_counters_add_up() {
    let lab = Lab::start("nat", "r");
    let (client, vip) = (lab.var("CLIENT_NS").to_string(), lab.var("VIP").to_string());
    let sock = lab.sock();
    let dir = lab.scratch("reload");
    let config = dir.join("nat.toml");
    let original = std::fs::read_to_string(lab.var("CONFIG")).unwrap();
    std::fs::write(&config, &original).unwrap();
    let (rvsd, _) = lab.rvsd(Some(&config), &[]);

    let url = format!("http://{vip}/");
    let load = std::thread::spawn(move || {
        let mut failed = 0;
        for _ in 0..200 {
            let o = in_ns(&client, &["curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", &url]);
            if String::from_utf8_lossy(&o.stdout) != "200" {
                failed += 1;
            }
        }
        failed
    });
    std::thread::sleep(Duration::from_millis(400));
    // First reload: the scheduler and a weight change.
    let edited = original.replace("scheduler = \"rr\"", "scheduler = \"wlc\"").replacen(
        "forward = \"masq\"",
        "forward = \"masq\"\n  weight = 3",
        1,
    );
    std::fs::write(&config, &edited).unwrap();
    assert_eq!(
        rvsadm_ok(&sock, "--reload"),
        format!(
            "rvsd reloaded its configuration: 2 change(s)\napplied: -E -t {vip}:80 -s wlc\n\
             applied: -e -t {vip}:80 -r 198.18.1.11:80 -m -w 3\n"
        )
    );
    std::thread::sleep(Duration::from_millis(400));
    // Second reload, by SIGHUP: a new UDP service next to the busy one.
    let more = format!(
        "{edited}\n[[service]]\nprotocol = \"udp\"\naddress = \"{vip}\"\nport = 53\nscheduler = \"rr\"\n  [[service.dest]]\n  address = \"198.18.1.11\"\n  forward = \"masq\"\n"
    );
    std::fs::write(&config, &more).unwrap();
    let _ = std::process::Command::new("kill").args(["-HUP", &rvsd.pid().unwrap().to_string()]).status();
    let failed = load.join().unwrap();
    assert_eq!(failed, 0, "requests lost during reloads\n{}", rvsd.log_text());
    let listing = rvsadm_ok(&sock, "-Ln");
    assert!(
        listing.contains(&format!("TCP  {vip}:80 wlc\n")) && listing.contains(&format!("UDP  {vip}:53 rr\n")),
        "{listing}"
    );
    assert!(listing.contains("Masq    3      "), "{listing}");

    // 200 connections, counted per service and per real server.
    let stats = rvsadm_ok(&sock, "-Ln --stats --exact");
    let row = |prefix: &str| -> Vec<u64> {
        let l = stats.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix} in {stats}"));
        l[33..].split_whitespace().map(|v| v.parse().unwrap()).collect()
    };
    let svc = row(&format!("TCP  {vip}:80"));
    assert_eq!(svc[0], 200, "Conns\n{stats}");
    assert!(svc[1] >= 200 * 5 && svc[2] >= 200 * 4, "packets in/out\n{stats}");
    assert!(svc[3] > svc[1] * 40 && svc[4] > svc[2] * 40, "bytes in/out\n{stats}");
    let d1 = row("  -> 198.18.1.11:80");
    let d2 = row("  -> 198.18.1.12:80");
    assert_eq!(d1[0] + d2[0], 200, "dest conns add up\n{stats}");
    // The estimator has seen the traffic (it runs every 2 s).
    std::thread::sleep(Duration::from_millis(2500));
    let rate = rvsadm_ok(&sock, "-Ln --rate");
    assert!(rate.starts_with("IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n"), "{rate}");
    let l = rate.lines().find(|l| l.starts_with(&format!("TCP  {vip}:80"))).unwrap();
    let inbps: u64 = l[33..].split_whitespace().nth(3).unwrap().trim_end_matches(['K', 'M']).parse().unwrap();
    assert!(inbps > 0, "{rate}");
    let _ = std::fs::remove_dir_all(dir);
}
