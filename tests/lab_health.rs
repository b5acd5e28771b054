//! Health checks in the nat lab: the checker (HTTP_GET, delay_loop 1 s,
//! retry 1) takes a stopped real server out within 3 s, a client loop sees no failure
//! after that, the server comes back when restarted, the sorry server answers when
//! both are down, and the checks leave from the DIP through the DPDK port (the
//! exception path). Over IPv6 (the pair6 lab's director 1), the checks leave from
//! the DIP6 and take a stopped IPv6 real server out.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn config(lab: &Lab, dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(lab.var("CONFIG")).unwrap();
    let text = text.replace("side = \"server\"", "side = \"server\"\nkernel = \"rvsk1\"").replacen(
        "scheduler = \"rr\"\n",
        "scheduler = \"rr\"\nsorry_server = \"198.18.1.12:8080\"\n\n  [service.check]\n  type = \"http_get\"\n  path = \"/\"\n  delay_loop = 1\n  connect_timeout = 1\n  retry = 1\n  delay_before_retry = 1\n",
        1,
    );
    let path = dir.join("nat-checks.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Is `addr:port` in the pool (the listing's "  -> addr:port  Masq ..." lines)?
fn listed(sock: &str, addr_port: &str) -> bool {
    rvsadm_ok(sock, "-Ln").lines().any(|l| l.starts_with(&format!("  -> {addr_port} ")))
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    t0.elapsed()
}

fn http_server(ns: &str, addr: &str, port: u16, name: &str) -> std::process::Child {
    Command::new("ip")
        .args(["netns", "exec", ns, "python3"])
        .arg(repo_root().join("scripts/httpd.py"))
        .args([addr, &port.to_string(), name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn kill_lab_server(lab: &Lab, name: &str) {
    let pid = std::fs::read_to_string(format!("/run/rvs-lab/{}-{}/http-{name}.pid", lab.id, lab.var("LAB"))).unwrap();
    let _ = Command::new("kill").arg(pid.trim()).status();
}

#[test]
fn checks_take_failed_servers_out_bring_them_back_and_fall_back_to_the_sorry_server() {
    let lab = Lab::start("nat", "h");
    let sock = lab.sock();
    let dir = lab.scratch("health");
    let cfg = config(&lab, &dir);
    let (rs_ns, rs) = (lab.list("RS_NSS"), lab.list("RS_IPS"));
    let mut sorry = http_server(&rs_ns[1], &rs[1], 8080, "sorry");
    let lb = lab.var("LB_NS").to_string();
    // On the switch's side of the internal link: the appliance's packet socket
    // bypasses the qdisc layer, so captures on its own end miss what it sends.
    let capture = Capture::start(lab.var("SW_NS"), "p-lb", "health-int");
    let (rvsd, _) = lab.rvsd(Some(&cfg), &[]);
    wait_for("both servers checked up", Duration::from_secs(10), || {
        listed(&sock, &format!("{}:80", rs[0])) && listed(&sock, &format!("{}:80", rs[1]))
    });

    // A client loop through the failure.
    let (client, url) = (lab.var("CLIENT_NS").to_string(), format!("http://{}/", lab.var("VIP")));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let loop_thread = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let o = in_ns(&client, &["curl", "-s", "-m", "2", &url]);
            let body = if o.status.success() {
                String::from_utf8_lossy(&o.stdout).trim().to_string()
            } else {
                "FAILED".into()
            };
            seen.push((Instant::now(), body));
            std::thread::sleep(Duration::from_millis(50));
        }
        seen
    });
    std::thread::sleep(Duration::from_millis(700));
    kill_lab_server(&lab, "server1");
    let killed = Instant::now();
    let took = wait_for("server1 out of the pool", Duration::from_secs(3), || !listed(&sock, &format!("{}:80", rs[0])));
    let detected = killed + took;
    eprintln!("server1 taken out {took:?} after it stopped");
    std::thread::sleep(Duration::from_millis(2000));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = loop_thread.join().unwrap();
    // Requests that started after the server left the pool (each entry is stamped
    // when its curl ended, so allow one request's length).
    let after: Vec<&String> =
        seen.iter().filter(|(t, _)| *t > detected + Duration::from_millis(100)).map(|(_, b)| b).collect();
    assert!(after.len() >= 5, "requests after the failure: {}", after.len());
    assert!(after.iter().all(|b| *b == "server2"), "after the failure was detected: {after:?}");

    // Back when it runs again.
    let mut back = http_server(&rs_ns[0], &rs[0], 80, "server1");
    let took = wait_for("server1 back", Duration::from_secs(5), || listed(&sock, &format!("{}:80", rs[0])));
    eprintln!("server1 back {took:?} after it restarted");

    // Both down: the sorry server answers.
    let _ = back.kill();
    let _ = back.wait();
    kill_lab_server(&lab, "server2");
    wait_for("the sorry server in", Duration::from_secs(6), || listed(&sock, &format!("{}:8080", rs[1])));
    assert_eq!(curls(lab.var("CLIENT_NS"), &format!("http://{}/", lab.var("VIP")), 2), vec!["sorry", "sorry"]);
    let metrics =
        String::from_utf8_lossy(&in_ns(&lb, &["curl", "-s", "http://127.0.0.1:9477/metrics"]).stdout).to_string();
    assert!(
        metrics.contains(&format!("rvs_dest_healthy{{service=\"tcp/{}:80\",dest=\"{}:80\"}} 0", lab.var("VIP"), rs[0])),
        "healthy gauge"
    );

    // The checks left from the DIP, through the appliance's port (its MAC).
    let frames = capture.stop();
    let dip: std::net::Ipv4Addr = lab.var("DIP").parse().unwrap();
    let checks = frames
        .iter()
        .filter(|f| {
            ipv4_of(f).is_some_and(|(s, d, p, ip)| {
                s == dip
                    && p == 6
                    && rs.iter().any(|r| r.parse::<std::net::Ipv4Addr>().unwrap() == d)
                    && ip[33] & 0x02 != 0
            })
        })
        .count();
    assert!(checks >= 3, "health-check SYNs from the DIP on the internal link: {checks}");
    let _ = sorry.kill();
    let _ = sorry.wait();
    let log = rvsd.log_text();
    assert!(log.contains("real server down"), "{log}");
    assert!(log.contains("quorum lost"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn ipv6_checks_leave_from_the_dip6_and_take_a_stopped_server_out() {
    let lab = Lab::start("pair6", "h6");
    let check = "scheduler = \"rr\"\n\n  [service.check]\n  type = \"tcp_check\"\n  delay_loop = 1\n  connect_timeout = 1\n  retry = 1\n  delay_before_retry = 1\n";
    let cfg = common::pair::variant(&lab, lab.var("CONFIG1"), "pair6-checks", &[("scheduler = \"rr\"\n", check)]);
    let d = common::pair::director(&lab, 1, &cfg);
    common::pair::wait_state(&d, "MASTER", Duration::from_secs(15));
    let (rs1, rs2) = ("[2001:2::11]:80", "[2001:2::12]:80");
    wait_for("both IPv6 real servers up", Duration::from_secs(10), || listed(&d.sock, rs1) && listed(&d.sock, rs2));
    kill_lab_server(&lab, "server1-6");
    let took = wait_for("server1 out of the pool", Duration::from_secs(10), || !listed(&d.sock, rs1));
    eprintln!("a stopped IPv6 real server left the pool after {took:?}");
    assert!(listed(&d.sock, rs2));
    let client = lab.var("CLIENT_NS");
    for _ in 0..4 {
        let o = in_ns(client, &["curl", "-s", "-m", "2", "http://[2001:2::10]/"]);
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "server2");
    }
    let metrics =
        String::from_utf8_lossy(&in_ns(lab.var("LB1_NS"), &["curl", "-s", "http://127.0.0.1:9477/metrics"]).stdout)
            .to_string();
    assert!(
        metrics.contains("rvs_dest_healthy{service=\"tcp/[2001:2::10]:80\",dest=\"[2001:2::11]:80\"} 0"),
        "{}",
        metrics.lines().filter(|l| l.contains("healthy")).collect::<Vec<_>>().join("\n")
    );
}
