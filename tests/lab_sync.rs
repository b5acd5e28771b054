//! Connection sync on director pairs: 200 long-lived connections (a small request
//! every 100 ms each, scripts/long-conns.py) through the master, which is killed
//! with SIGKILL and later comes back and preempts; none may be reset or lose a
//! request, through a two-arm NAT pair (scripts/lab pair-nat, VIP and DIP in a sync
//! group), a DR pair (scripts/lab pair) and a DR pair over IPv6 (scripts/lab pair6,
//! its connections in the 72-byte IPv6 entries). Every sync datagram on the wire is
//! decoded by Wireshark's own IPVS dissector (tshark) without a malformed-packet
//! warning, and its entries are connections the sender lists.

mod common;

use common::pair::*;
use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TAKEOVER: Duration = Duration::from_secs(15);
const CONNS: usize = 200;

/// scripts/long-conns.py running in the client namespace.
struct Clients {
    child: Option<Child>,
}

impl Clients {
    fn start(lab: &Lab, vip: &str, secs: u32) -> Clients {
        let child = Command::new("ip")
            .args(["netns", "exec", lab.var("CLIENT_NS"), "python3"])
            .arg(repo_root().join("scripts/long-conns.py"))
            .args([vip, "80", &CONNS.to_string(), &secs.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("long-conns.py");
        Clients { child: Some(child) }
    }

    /// Waits for the end: the summary's (opened, requests_ok, failed, resets, longest wait).
    fn finish(mut self) -> (u64, u64, u64, u64, f64, String) {
        let out = self.child.take().expect("running").wait_with_output().expect("long-conns.py");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let field = |k: &str| -> String {
            let key = format!("\"{k}\": ");
            text.split(&key).nth(1).and_then(|r| r.split([',', '}']).next()).unwrap_or("").trim().to_string()
        };
        let f = |k| field(k).parse::<u64>().unwrap_or(u64::MAX);
        let wait = field("longest_wait_s").parse::<f64>().unwrap_or(f64::MAX);
        (f("opened"), f("requests_ok"), f("failed_requests"), f("resets"), wait, text)
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Entries (client port) in the backup's table, as `rvsadm -lnc` lists them.
fn listed_ports(d: &Director) -> BTreeSet<u16> {
    rvsadm_ok(&d.sock, "-L -n -c")
        .lines()
        .filter(|l| l.starts_with("TCP"))
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|src| src.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
        .collect()
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "{what} not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts a director; with `daemons`, its sync daemons by rvsadm, as an operator
/// would (`--start-daemon master` and `backup` on the shared port).
fn started(lab: &Lab, which: u8, config: &Path, daemons: Option<&str>) -> Director {
    let d = director(lab, which, config);
    if let Some(port) = daemons {
        for role in ["master", "backup"] {
            rvsadm_ok(&d.sock, &format!("--start-daemon {role} --mcast-interface {port} --syncid 1"));
        }
    }
    d
}

/// The failover and failback of one pair, `c1` and `c2` its directors' configs,
/// the clients connecting to `vip`; `daemons`: the port to start the sync daemons
/// on with rvsadm (None: the configuration starts them).
fn through_failover_and_failback(
    lab: &Lab,
    (c1, c2): (&Path, &Path),
    vip: &str,
    capture_on: Option<&str>,
    daemons: Option<&str>,
) {
    let mut d1 = started(lab, 1, c1, daemons);
    let d2 = started(lab, 2, c2, daemons);
    wait_states(&d1, "MASTER", TAKEOVER);
    wait_states(&d2, "BACKUP", TAKEOVER);
    assert_eq!(
        rvsadm_ok(&d1.sock, "-L --daemon"),
        "master sync daemon (mcast=net_af_packet1, syncid=1)\nbackup sync daemon (mcast=net_af_packet1, syncid=1)\n"
            .replace("net_af_packet1", daemons.unwrap_or("net_af_packet1"))
    );
    let cap = capture_on.map(|port| Capture::start(lab.var("SW_NS"), port, &format!("sync-{}", lab.id)));
    let clients = Clients::start(lab, vip, 30);
    // Every connection reaches the backup's table.
    wait_for("200 connections synced to the backup", Duration::from_secs(15), || listed_ports(&d2).len() >= CONNS);
    if let Some(cap) = cap {
        let sender = listed_ports(&d1);
        let frames = cap.stop();
        decoded_by_tshark(&frames, &sender, lab);
    }
    // The master dies.
    std::thread::sleep(Duration::from_secs(2));
    d1.rvsd.kill();
    let t0 = Instant::now();
    wait_states(&d2, "MASTER", TAKEOVER);
    eprintln!("crash: backup MASTER after {:?}", t0.elapsed());
    std::thread::sleep(Duration::from_secs(6));
    // It comes back with the higher priority and preempts: the failback.
    let d1 = started(lab, 1, c1, daemons);
    wait_states(&d1, "MASTER", TAKEOVER);
    wait_states(&d2, "BACKUP", TAKEOVER);
    let (opened, ok, failed, resets, longest, text) = clients.finish();
    eprintln!("{CONNS} connections through a crash and a failback: {text}");
    assert_eq!(opened, CONNS as u64, "{text}");
    assert_eq!((failed, resets), (0, 0), "connections lost: {text}\nbackup's log:\n{}", d2.rvsd.log_text());
    assert!(ok > (CONNS as u64) * 50, "too few requests answered: {text}");
    assert!(longest < 20.0, "{text}");
}

/// Each captured sync datagram decoded by tshark's `ipvs` dissector: no malformed
/// packet, and every client port it carries is a connection the sender lists.
fn decoded_by_tshark(frames: &[Vec<u8>], sender: &BTreeSet<u16>, lab: &Lab) {
    let sync: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|f| ipv4_of(f).is_some_and(|(_, dst, p, _)| p == 17 && dst == std::net::Ipv4Addr::new(224, 0, 0, 81)))
        .collect();
    assert!(!sync.is_empty(), "no sync datagram captured");
    // Written back as a pcap of their own for tshark.
    let path = lab.scratch("sync").join("sync.pcap");
    let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0];
    for f in &sync {
        let n = u32::try_from(f.len()).unwrap().to_le_bytes();
        pcap.extend_from_slice(&[0; 8]);
        pcap.extend_from_slice(&n);
        pcap.extend_from_slice(&n);
        pcap.extend_from_slice(f);
    }
    std::fs::write(&path, pcap).unwrap();
    let out = run(Command::new("tshark").arg("-r").arg(&path).args([
        "-d",
        "udp.port==8848,ipvs",
        "-T",
        "fields",
        "-e",
        "ipvs.cport",
        "-e",
        "_ws.malformed",
        "-e",
        "_ws.expert",
    ]));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    let full = run(Command::new("tshark").arg("-r").arg(&path).args(["-d", "udp.port==8848,ipvs"]));
    let summary = String::from_utf8_lossy(&full.stdout).to_string();
    assert!(!summary.contains("Malformed") && !text.contains("Malformed"), "tshark:\n{summary}");
    assert_eq!(
        summary.lines().filter(|l| l.contains("IPVS")).count(),
        sync.len(),
        "every datagram dissected as IPVS:\n{summary}"
    );
    let ports: BTreeSet<u16> = text
        .lines()
        .flat_map(|l| {
            l.split('\t').next().unwrap_or("").split(',').filter_map(|p| p.trim().parse().ok()).collect::<Vec<u16>>()
        })
        .collect();
    assert!(!ports.is_empty(), "tshark found no connection entries:\n{text}");
    let strangers: Vec<&u16> = ports.iter().filter(|p| !sender.contains(p)).collect();
    assert!(strangers.is_empty(), "entries the sender does not list: {strangers:?}");
    eprintln!("tshark decoded {} sync datagrams, {} connections, all the sender's", sync.len(), ports.len());
}

#[test]
fn a_nat_pair_loses_no_connection_through_a_crash_and_a_failback() {
    let lab = Lab::start("pair-nat", "sn");
    let (c1, c2) = (lab.var("CONFIG1").to_string(), lab.var("CONFIG2").to_string());
    through_failover_and_failback(&lab, (Path::new(&c1), Path::new(&c2)), lab.var("VIP"), Some("p-lb1i"), None);
}

#[test]
fn a_dr_pair_loses_no_connection_through_a_crash_and_a_failback() {
    // The daemons started by rvsadm this time (ipvsadm --start-daemon's words).
    let lab = Lab::start("pair", "sd");
    let (c1, c2) = (lab.var("CONFIG1").to_string(), lab.var("CONFIG2").to_string());
    through_failover_and_failback(&lab, (Path::new(&c1), Path::new(&c2)), lab.var("VIP"), None, Some("net_af_packet0"));
}

#[test]
fn an_ipv6_dr_pair_loses_no_connection_through_a_crash_and_a_failback() {
    // IPv6 connections in the sync protocol's 72-byte entries, over the IPv4
    // multicast group, as the kernel sends them.
    let lab = Lab::start("pair6", "s6");
    let (c1, c2) = (lab.var("CONFIG1").to_string(), lab.var("CONFIG2").to_string());
    through_failover_and_failback(
        &lab,
        (Path::new(&c1), Path::new(&c2)),
        lab.var("VIP6"),
        Some("p-lb1"),
        Some("net_af_packet0"),
    );
}
