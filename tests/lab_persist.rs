//! The persistence lab end to end: `-p` keeps a
//! client on one real server; a port-0 service keeps every port of the VIP
//! together; firewall mark 1 binds 80 and 443; passive FTP completes through
//! fwmark 21; UDP services balance and their short template expires and lets the
//! scheduler choose again; a TCP non-SYN without a connection is dropped, counted,
//! and answered by nothing.

mod common;

use common::*;
use std::time::Duration;

fn udp_ask(ns: &str, addr: &str, port: u16) -> String {
    let script = repo_root().join("scripts/udp-ask.py");
    let o = in_ns(ns, &["python3", script.to_str().unwrap(), addr, &port.to_string()]);
    assert!(o.status.success(), "no UDP answer from {addr}:{port}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn persistence_fwmarks_ftp_udp_and_non_syn() {
    let lab = Lab::start("persist", "p");
    let (mut rvsd, sock) = lab.rvsd(None, &[]);
    let c = lab.var("CLIENT_NS");

    // -p on port 80: six requests, one real server.
    let ppc = curls(c, &format!("http://{}/", lab.var("VIP")), 6);
    assert!(ppc.iter().all(|s| *s == ppc[0]), "PPC spread: {ppc:?}\n{}", rvsd.log_text());

    // Port 0: every port of the VIP goes where the first went.
    let pcc = lab.var("PCC_VIP");
    let first = curls(c, &format!("http://{pcc}/"), 1)[0].clone();
    for _ in 0..3 {
        assert_eq!(curls(c, &format!("http://{pcc}:443/"), 1)[0], first, "PCC: 443 follows 80");
        assert_eq!(curls(c, &format!("http://{pcc}/"), 1)[0], first);
    }

    // fwmark 1 = 80 + 443.
    let fwm = lab.var("FWM1_VIP");
    let on80 = curls(c, &format!("http://{fwm}/"), 1)[0].clone();
    assert_eq!(curls(c, &format!("http://{fwm}:443/"), 2), vec![on80.clone(), on80], "fwmark 1 keeps 443 with 80");

    // Passive FTP through fwmark 21: control on 21, data on 10000:20000.
    let ftp = format!("ftp://{}/hello", lab.var("FTP_VIP"));
    let got = curls(c, &ftp, 2);
    assert!(lab.list("RS_NAMES").contains(&got[0]), "FTP download: {got:?}");
    assert_eq!(got[0], got[1], "data connections follow their control connection's server");

    // A UDP service: rr over datagrams from new source ports.
    let vip = lab.var("VIP");
    let udp: Vec<String> = (0..4).map(|_| udp_ask(c, vip, 7)).collect();
    let names = lab.list("RS_NAMES");
    // The last real server configured is first in the kernel's list: rr starts there.
    assert_eq!(udp, vec![names[1].clone(), names[0].clone(), names[1].clone(), names[0].clone()]);

    // A 2 s template on UDP (connections last 1 s): sticky, then rescheduled.
    let up = lab.var("UDP_PERSIST_VIP");
    let a = udp_ask(c, up, 7);
    assert_eq!(udp_ask(c, up, 7), a, "template holds");
    std::thread::sleep(Duration::from_millis(3500));
    assert_ne!(udp_ask(c, up, 7), a, "the template expired and rr chose again");

    // The listing shows the persistent services as ipvsadm does.
    let listing = rvsadm_ok(&sock, "-Ln");
    for line in [
        "TCP  198.18.0.10:80 rr persistent 300",
        "TCP  198.18.0.20:0 rr persistent 300",
        "UDP  198.18.0.10:7 rr",
        "UDP  198.18.0.50:7 rr persistent 2",
        "FWM  1 rr persistent 1800",
        "FWM  21 rr persistent 1800",
        "  -> 198.18.0.11:0                Route   1      ",
    ] {
        assert!(listing.contains(line), "missing {line:?} in\n{listing}");
    }
    let conns = rvsadm_ok(&sock, "-lnc");
    assert!(
        conns.lines().any(|l| l.starts_with("TCP") && l.contains(" NONE ") && l.contains("198.18.0.100:0 ")),
        "templates listed:\n{conns}"
    );
    assert!(
        conns.lines().any(|l| l.starts_with("IP ") && l.contains(" NONE ")),
        "fwmark templates listed as IP:\n{conns}"
    );

    // A TCP ACK that opens nothing: no answer at all (no RST), and counted.
    let probe = repo_root().join("scripts/tcp-probe.py");
    let o = in_ns(c, &["python3", probe.to_str().unwrap(), lab.var("CLIENT_IP"), vip, "45000", "80", "A"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "no answer", "{}", text(&o));
    let (status, _) = rvsd.terminate(Duration::from_secs(5)).expect("rvsd stops");
    assert!(status.success());
    let log = rvsd.log_text();
    let not_syn = log
        .split_whitespace()
        .find_map(|w| w.strip_prefix("drop_not_syn="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(not_syn >= 1, "the non-SYN was not counted:\n{log}");
}

/// Connection timers as the kernel arms them: after `ipvsadm --set 5 2 2` a UDP
/// entry lives at least 2 s from its datagram (never less, whatever the instant of
/// the second it came in) and at most one wheel tick (1 s) more; `-lnc` never
/// shows more than is left (00:01 at once, where 2 s are not quite left).
#[test]
fn udp_entries_live_their_whole_timeout_and_at_most_a_tick_more() {
    let lab = Lab::start("persist", "q");
    let (rvsd, sock) = lab.rvsd(None, &[]);
    let (c, vip) = (lab.var("CLIENT_NS"), lab.var("VIP"));
    rvsadm_ok(&sock, "--set 5 2 2");
    let t0 = std::time::Instant::now();
    let secs = |t: std::time::Instant| t.duration_since(t0).as_secs_f64();
    // Datagrams at spread instants of the clock's seconds; each from its own port.
    // (spawned, answered): the entry is made between the two.
    let mut sent: Vec<(f64, f64)> = Vec::new();
    // Each poll: when it started and ended, and the (client port, expire) listed.
    type Poll = (f64, f64, Vec<(u16, String)>);
    let mut polls: Vec<Poll> = Vec::new();
    let poll = |polls: &mut Vec<Poll>| {
        let a = std::time::Instant::now();
        let out = rvsadm_ok(&sock, "-lnc");
        let b = std::time::Instant::now();
        let entries = out
            .lines()
            .filter(|l| l.starts_with("UDP "))
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let port = f.get(3)?.rsplit_once(':')?.1.parse().ok()?;
                Some((port, f[1].to_string()))
            })
            .collect();
        polls.push((secs(a), secs(b), entries));
    };
    let mut ports = Vec::new();
    for k in 0..8 {
        let a = std::time::Instant::now();
        let o = in_ns(
            c,
            &[
                "python3",
                "-c",
                &format!(
                    "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); \
             s.sendto(b'x', ('{vip}', 7)); s.recvfrom(100); print(s.getsockname()[1])"
                ),
            ],
        );
        let b = std::time::Instant::now();
        assert!(o.status.success(), "no UDP answer: {}", text(&o));
        ports.push(String::from_utf8_lossy(&o.stdout).trim().parse::<u16>().unwrap());
        sent.push((secs(a), secs(b)));
        // 137 ms apart, polling meanwhile: the eight datagrams fall on different
        // instants of the worker's seconds.
        let until = std::time::Instant::now() + Duration::from_millis(137 - (k % 2) * 40);
        while std::time::Instant::now() < until {
            poll(&mut polls);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let end = std::time::Instant::now() + Duration::from_millis(4500);
    while std::time::Instant::now() < end {
        poll(&mut polls);
        std::thread::sleep(Duration::from_millis(30));
    }
    let mut failures = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (spawned, answered) = sent[i];
        for (a, b, entries) in &polls {
            let shown = entries.iter().find(|(p, _)| p == port);
            // Surely before 2 s had passed since the datagram: still listed.
            if *b < spawned + 2.0 && *a > answered && shown.is_none() {
                failures.push(format!("port {port}: gone at {a:.3}..{b:.3}, made {spawned:.3}..{answered:.3}"));
            }
            // Surely after 2 s and a tick (plus the worker's loop): gone.
            if *a > answered + 3.1 && shown.is_some() {
                failures.push(format!("port {port}: still listed at {a:.3}, made {spawned:.3}..{answered:.3}"));
            }
            if let Some((_, expire)) = shown {
                if expire.as_str() > "00:01" {
                    failures.push(format!("port {port}: listed with {expire} left of a 2 s timeout"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}\nrvsd log:\n{}", failures.join("\n"), rvsd.log_text());
}

/// One UDP datagram from `port` (0: any) to `vip:7`; the answering server's name,
/// or None when nothing answers within a second.
fn udp_from(ns: &str, vip: &str, port: u16) -> Option<String> {
    let py = format!(
        "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); \
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('', {port})); s.settimeout(1); \
         s.sendto(b'x', ('{vip}', 7)); print(s.recvfrom(100)[0].decode().split(':')[0])"
    );
    let o = in_ns(ns, &["python3", "-c", &py]);
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// A real server taken out while it has connections and put back keeps its counts
/// (the kernel's dest trash); a quiesced one is reported draining, then drained;
/// a connection to a removed one is dropped, or with `expire_nodest_conn` ends and
/// its next datagram is scheduled anew.
#[test]
fn removed_real_servers_come_back_with_their_counts_drain_and_expire_nodest_conn() {
    let lab = Lab::start("persist", "n");
    let (rvsd, sock) = lab.rvsd(None, &[]);
    let (c, vip) = (lab.var("CLIENT_NS"), lab.var("VIP"));
    let names = lab.list("RS_NAMES");
    rvsadm_ok(&sock, "--set 0 0 6");
    for _ in 0..4 {
        assert!(udp_from(c, vip, 0).is_some());
    }
    let rs1 = format!("{}:7", lab.list("RS_IPS")[0]);
    let line = |listing: &str| listing.lines().find(|l| l.contains(&rs1)).map(str::to_string);
    let before = line(&rvsadm_ok(&sock, "-L -n -u 198.18.0.10:7")).unwrap();
    assert!(before.ends_with("Route   1      0          2         "), "{before}");
    rvsadm_ok(&sock, &format!("-d -u {vip}:7 -r {rs1}"));
    assert_eq!(line(&rvsadm_ok(&sock, "-L -n -u 198.18.0.10:7")), None);
    rvsadm_ok(&sock, &format!("-a -u {vip}:7 -r {rs1} -g -w 1"));
    let after = line(&rvsadm_ok(&sock, "-L -n -u 198.18.0.10:7")).unwrap();
    assert_eq!(after, before, "put back with its 2 connections counted");

    // Quiesced: draining while its entries live, drained once they are gone.
    rvsadm_ok(&sock, &format!("-e -u {vip}:7 -r {rs1} -g -w 0"));
    let (code, out, _) = rvsadm(&sock, &format!("--drained -u {vip}:7 -r {rs1}"));
    assert_eq!(
        (code, out.as_str()),
        (1, format!("UDP  {vip}:7 -> {rs1} weight 0 draining: 0 active, 2 inactive, 0 persistent\n").as_str())
    );
    let t0 = std::time::Instant::now();
    loop {
        let (code, out, _) = rvsadm(&sock, &format!("--drained -u {vip}:7 -r {rs1}"));
        if code == 0 {
            assert_eq!(out, format!("UDP  {vip}:7 -> {rs1} weight 0 drained\n"));
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "never drained: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(rvsadm_ok(&sock, "--drained").contains(&format!("-> {rs1} weight 0 drained\n")));
    rvsadm_ok(&sock, &format!("-e -u {vip}:7 -r {rs1} -g -w 1"));

    // A connection to a real server taken out: its datagrams are dropped...
    let port = 47007;
    let first = udp_from(c, vip, port).expect("an answer");
    let gone = lab.list("RS_IPS")[names.iter().position(|n| *n == first).unwrap()].clone();
    rvsadm_ok(&sock, &format!("-d -u {vip}:7 -r {gone}:7"));
    assert_eq!(udp_from(c, vip, port), None, "dropped: its real server is out");
    // ...until expire_nodest_conn ends it at its next datagram, scheduled anew.
    rvsadm_ok(&sock, "--sysctl expire_nodest_conn=1");
    let other = udp_from(c, vip, port).expect("rescheduled");
    assert_ne!(other, first);
    drop(rvsd);
}
