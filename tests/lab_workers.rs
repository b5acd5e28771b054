//! Many workers in the nat lab: every connection has one owner lcore,
//! packets that arrive elsewhere travel to it through lock-free rings, and the
//! configuration reaches every worker.

mod common;

use common::*;
use std::time::Duration;

/// rvsd in the lab with `workers` workers (its socket is `socket_path(&lab.id)`).
fn start(lab: &Lab, workers: u32, config: &std::path::Path) -> Daemon {
    lab.rvsd(Some(config), &["--workers", &workers.to_string()]).0
}

#[test]
fn two_thousand_parallel_requests_with_one_two_and_three_workers() {
    let lab = Lab::start("nat", "m");
    let sock = lab.sock();
    let url = format!("http://{}/", lab.var("VIP"));
    for workers in [1u32, 2, 3] {
        let mut d = start(&lab, workers, std::path::Path::new(lab.var("CONFIG")));
        let ok = parallel_curls(lab.var("CLIENT_NS"), &url, 2000, 100);
        let stats = rvsadm_ok(&sock, "-Ln --stats --exact");
        let (status, _) = d.terminate(Duration::from_secs(5)).expect("stops");
        assert!(status.success());
        let log = d.log_text();
        assert_eq!(ok, 2000, "{workers} workers: {ok}/2000 answered\n{stats}\n{log}");
        let redirected = exit_counter(&log, "redirected");
        eprintln!("{workers} workers: 2000/2000 requests, {redirected} packets redirected to their owner");
        if workers == 1 {
            assert_eq!(redirected, 0, "one worker owns everything");
        } else {
            assert!(redirected > 0, "{workers} workers: the ring path carried nothing\n{log}");
        }
        let (ring_full, created) = (exit_counter(&log, "drop_ring_full"), exit_counter(&log, "conns_created"));
        assert_eq!((ring_full, created), (0, 2000), "{workers} workers: ring_full, conns_created\n{log}");
    }
}

#[test]
fn weight_changes_reach_every_worker_under_load() {
    let lab = Lab::start("nat", "e");
    let sock = lab.sock();
    let _d = start(&lab, 3, std::path::Path::new(lab.var("CONFIG")));
    let (client, vip) = (lab.var("CLIENT_NS").to_string(), lab.var("VIP").to_string());
    let rs2 = lab.list("RS_IPS")[1].clone();
    let url = format!("http://{vip}/");
    let load = std::thread::spawn(move || parallel_curls(&client, &url, 1500, 30));
    std::thread::sleep(Duration::from_millis(300));
    rvsadm_ok(&sock, &format!("-e -t {vip}:80 -r {rs2}:80 -m -w 0"));
    let conns_of = |stats: &str| -> u64 {
        let l = stats.lines().find(|l| l.starts_with(&format!("  -> {rs2}:80"))).expect("RS2 row");
        l[33..].split_whitespace().next().unwrap().parse().unwrap()
    };
    let at_change = conns_of(&rvsadm_ok(&sock, "-Ln --stats --exact"));
    let ok = load.join().unwrap();
    assert_eq!(ok, 1500, "requests failed across the change");
    let after = conns_of(&rvsadm_ok(&sock, "-Ln --stats --exact"));
    assert_eq!(after, at_change, "a worker still scheduled the quiesced RS2");
    assert!(rvsadm_ok(&sock, "-Ln").contains("Masq    0      "), "weight 0 listed");
}

#[test]
fn persistence_holds_across_workers_when_steering_by_client() {
    let lab = Lab::start("nat", "c");
    let sock = lab.sock();
    let dir = lab.scratch("steer");
    let config = dir.join("nat.toml");
    let text = std::fs::read_to_string(lab.var("CONFIG")).unwrap();
    std::fs::write(&config, text.replace("connections = 4096", "connections = 4096\nsteering = \"client\"")).unwrap();
    let _d = start(&lab, 3, &config);
    let vip = lab.var("VIP");
    rvsadm_ok(&sock, &format!("-E -t {vip}:80 -s rr -p 300"));
    let got = curls(lab.var("CLIENT_NS"), &format!("http://{vip}/"), 12);
    assert!(got.iter().all(|g| *g == got[0]), "persistence split across workers: {got:?}");
    let _ = std::fs::remove_dir_all(dir);
}
