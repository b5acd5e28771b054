//! A cluster of three directors behind a router doing ECMP (scripts/lab ecmp): each
//! rvsd holds the VIP on its kernel interface while its service is healthy, the BIRD
//! beside it announces the VIP over BGP with BFD, and the router (BIRD, `merge
//! paths`, L4 multipath hashing) spreads flows over the three. 300 long-lived
//! connections (a request every 100 ms each) live through a director's SIGKILL and
//! its return: every director chooses the same real server for a flow (`mh`) and
//! takes over flows mid-stream (`sloppy_tcp`). Without `sloppy_tcp`, or with `rr`,
//! the same kill breaks connections. A director whose service loses its quorum
//! withdraws its route.
//!
//! Timings are bounded generously (a loaded CI machine must not fail them); the
//! detection gap and the longest stall are printed, not asserted.

mod common;

use common::pair::{director, variant, Director};
use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One cluster at a time: three rvsd, four BIRDs and 300 clients are this
/// machine's fill.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Paths the router has for the VIP (its multipath route's next hops).
fn paths(lab: &Lab) -> usize {
    let o = in_ns(lab.var("ROUTER_NS"), &["ip", "route", "show", lab.var("VIP")]);
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    match t.matches("nexthop").count() {
        0 if t.contains(" via ") => 1,
        n => n,
    }
}

fn wait_paths(lab: &Lab, want: usize, limit: Duration) -> Duration {
    let t0 = Instant::now();
    while paths(lab) != want {
        assert!(t0.elapsed() < limit, "the router has {} paths to the VIP, not {want}, after {limit:?}", paths(lab));
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

/// scripts/long-conns.py in the client namespace: `n` connections for `secs`.
struct Clients(Option<Child>);

impl Clients {
    fn start(lab: &Lab, n: usize, secs: u32) -> Clients {
        let child = Command::new("ip")
            .args(["netns", "exec", lab.var("CLIENT_NS"), "python3"])
            .arg(repo_root().join("scripts/long-conns.py"))
            .args([lab.var("VIP"), "80", &n.to_string(), &secs.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("long-conns.py");
        Clients(Some(child))
    }

    /// (opened, requests answered, failed requests, resets, longest wait, the summary).
    fn finish(mut self) -> (u64, u64, u64, u64, f64, String) {
        let out = self.0.take().unwrap().wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let j: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let n = |k: &str| j[k].as_u64().unwrap_or(u64::MAX);
        (
            n("opened"),
            n("requests_ok"),
            n("failed_requests"),
            n("resets"),
            j["longest_wait_s"].as_f64().unwrap_or(-1.0),
            text,
        )
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The active connections a director lists.
fn active(d: &Director) -> u64 {
    rvsadm_ok(&d.sock, "-L -n")
        .lines()
        .filter(|l| l.starts_with("  -> "))
        .filter_map(|l| l.split_whitespace().nth(4).and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

/// The three directors on `configs`, up with their routes in the router.
fn cluster(lab: &Lab, configs: [&Path; 3]) -> Vec<Director> {
    let ds: Vec<Director> = (1..=3).map(|i| director(lab, i, configs[usize::from(i) - 1])).collect();
    wait_paths(lab, 3, Duration::from_secs(30));
    ds
}

#[test]
fn a_director_dies_and_returns_and_no_connection_breaks() {
    let _one = serial();
    let lab = Lab::start("ecmp", "e");
    let configs = [lab.var("CONFIG1"), lab.var("CONFIG2"), lab.var("CONFIG3")].map(Path::new);
    let mut ds = cluster(&lab, configs);
    let clients = Clients::start(&lab, 300, 24);
    std::thread::sleep(Duration::from_secs(4));
    // Every director carries some of the flows.
    let carried: Vec<u64> = ds.iter().map(active).collect();
    assert!(carried.iter().all(|&n| n > 0), "connections per director: {carried:?}");
    eprintln!("connections per director: {carried:?}");
    // Director 2 dies: BFD tells the router, which moves its flows (and, hashing
    // over fewer paths, some of the others') to directors that never saw them.
    ds[1].rvsd.kill();
    let gap = wait_paths(&lab, 2, Duration::from_secs(10));
    eprintln!("SIGKILL -> the router's paths updated after {gap:?}");
    std::thread::sleep(Duration::from_secs(6));
    // It returns and takes flows again, mid-stream.
    ds[1] = director(&lab, 2, configs[1]);
    let back = wait_paths(&lab, 3, Duration::from_secs(30));
    eprintln!("restart -> three paths again after {back:?}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(active(&ds[1]) > 0, "the returned director carries flows again");
    let (opened, ok, failed, resets, longest, text) = clients.finish();
    eprintln!("300 connections through a director's death and return: {text}");
    assert_eq!(opened, 300, "{text}");
    assert_eq!((failed, resets), (0, 0), "connections broke: {text}");
    assert!(ok > 300 * 100, "too few requests answered: {text}");
    assert!(longest < 20.0, "{text}");
}

/// The same with TUN to the real servers (IPIP from whichever director has the flow).
#[test]
fn a_tun_cluster_loses_nothing_either() {
    let _one = serial();
    let lab = Lab::start("ecmp", "et");
    let configs: Vec<std::path::PathBuf> = (1..=3)
        .map(|i| variant(&lab, lab.var(&format!("CONFIG{i}")), &format!("tun{i}"), &[("\"route\"", "\"tunnel\"")]))
        .collect();
    let mut ds = cluster(&lab, [&configs[0], &configs[1], &configs[2]].map(|p| p.as_path()));
    let clients = Clients::start(&lab, 150, 10);
    std::thread::sleep(Duration::from_secs(3));
    assert!(ds.iter().all(|d| active(d) > 0), "every director carries flows");
    ds[2].rvsd.kill();
    wait_paths(&lab, 2, Duration::from_secs(10));
    let (opened, ok, failed, resets, _, text) = clients.finish();
    eprintln!("TUN: 150 connections through a director's death: {text}");
    assert_eq!((opened, failed, resets), (150, 0, 0), "{text}");
    assert!(ok > 150 * 40, "{text}");
}

/// Without sloppy_tcp the others drop the moved flows' packets; with rr they send
/// them to other real servers, which reset them. Either way connections break.
#[test]
fn without_sloppy_tcp_or_with_rr_the_same_death_breaks_connections() {
    let _one = serial();
    let lab = Lab::start("ecmp", "eb");
    for (name, edit) in [
        ("strict", ("sloppy_tcp = true", "sloppy_tcp = false")),
        ("rr", ("scheduler = \"mh\"\nflags = [\"mh-port\"]", "scheduler = \"rr\"")),
    ] {
        let configs: Vec<std::path::PathBuf> =
            (1..=3).map(|i| variant(&lab, lab.var(&format!("CONFIG{i}")), &format!("{name}{i}"), &[edit])).collect();
        let mut ds = cluster(&lab, [&configs[0], &configs[1], &configs[2]].map(|p| p.as_path()));
        let clients = Clients::start(&lab, 100, 8);
        std::thread::sleep(Duration::from_secs(3));
        ds[1].rvsd.kill();
        wait_paths(&lab, 2, Duration::from_secs(10));
        let (opened, _, failed, resets, _, text) = clients.finish();
        eprintln!("{name}: {text}");
        assert_eq!(opened, 100, "{text}");
        assert!(failed + resets > 0, "{name}: no connection broke, the difference does not show: {text}");
        drop(ds);
        wait_paths(&lab, 0, Duration::from_secs(30));
    }
}

/// A director that cannot reach the real servers loses its service's quorum and
/// withdraws the VIP: the router stops sending to it.
#[test]
fn a_quorum_loss_withdraws_the_route() {
    let _one = serial();
    let lab = Lab::start("ecmp", "eq");
    let configs = [lab.var("CONFIG1"), lab.var("CONFIG2"), lab.var("CONFIG3")].map(Path::new);
    let ds = cluster(&lab, configs);
    // Director 3's own kernel (its health checks leave from there) loses its way
    // to both real servers.
    let lb3 = lab.var("LB3_NS");
    for rs in lab.var("RS_IPS").split_whitespace() {
        in_ns(lb3, &["ip", "route", "add", "blackhole", &format!("{rs}/32")]);
    }
    let t0 = Instant::now();
    wait_paths(&lab, 2, Duration::from_secs(20));
    eprintln!("real servers unreachable from director 3 -> its route withdrawn after {:?}", t0.elapsed());
    let held = String::from_utf8_lossy(&in_ns(lb3, &["ip", "-br", "addr", "show", "dev", "k0"]).stdout).to_string();
    assert!(!held.contains(lab.var("VIP")), "director 3 still holds the VIP: {held}");
    // Back: the VIP is announced again.
    for rs in lab.var("RS_IPS").split_whitespace() {
        in_ns(lb3, &["ip", "route", "del", "blackhole", &format!("{rs}/32")]);
    }
    wait_paths(&lab, 3, Duration::from_secs(20));
    drop(ds);
}
