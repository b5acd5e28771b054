//! The traffic generator (perf/generator) against rvsd: rvsd runs conf/perf.toml, whose two
//! memif ports are the generator's other ends (shared memory between the two
//! processes; no network interface is touched). Each forwarding method's rewrite is
//! verified on every frame, nothing may be lost, and a generator told to expect the
//! wrong rewrite must say so (the verification can fail). A SYN flood leaves
//! established flows whole; each run's end is a link flap rvsd survives. With its
//! ports as zero-copy memif clients (the generator the server), rvsd forwards every
//! frame too: EAL's memseg descriptors reach memif as duplicates (dpdk-sys/memseg_fd.c).

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The tests here take turns: each runs busy-polling DPDK processes on both cores,
/// and memif's handshakes (in EAL's interrupt threads) stalled when three such
/// pairs ran at once.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn pktgen_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rvs-pktgen"))
}

struct Setup {
    daemon: Daemon,
    eal: String,
    metrics: String,
    /// rvsd's memif and control sockets, removed after it stops (also when a test
    /// fails: fields drop in order, the daemon first).
    _files: RemoveOnDrop,
}

fn start(id: &str, metrics_port: u16) -> Setup {
    let (client, server) = (format!("/run/rvs/test-{id}-client.sock"), format!("/run/rvs/test-{id}-server.sock"));
    let _ = std::fs::create_dir_all("/run/rvs");
    let rvsd_eal = format!(
        "--no-pci --vdev=net_memif0,role=server,id=0,socket={client},socket-abstract=no \
         --vdev=net_memif1,role=server,id=1,socket={server},socket-abstract=no"
    );
    let metrics = format!("127.0.0.1:{metrics_port}");
    let socket = socket_path(id);
    let files = RemoveOnDrop(vec![client.clone().into(), server.clone().into(), socket.clone().into()]);
    let mut daemon = Daemon::start(
        None,
        &repo_root().join("conf/perf.toml"),
        &[
            ("RVS_EAL__ARGS", rvsd_eal.as_str()),
            ("RVS_CONTROL__SOCKET", socket.as_str()),
            ("RVS_METRICS__LISTEN", metrics.as_str()),
            ("RVS_WORKERS__CONNECTIONS", "65536"),
            ("RVS_MEMPOOL__MBUFS", "8191"),
        ],
    );
    daemon.wait_ready(Duration::from_secs(20));
    let eal = format!(
        "--no-pci --no-huge -m 256 --no-shconf -l 0 \
         --vdev=net_memif0,role=client,id=0,socket={client},socket-abstract=no,mac=02:9e:00:00:00:01 \
         --vdev=net_memif1,role=client,id=1,socket={server},socket-abstract=no,mac=02:9e:00:00:00:02"
    );
    Setup { daemon, eal, metrics, _files: files }
}

/// Runs the generator; returns its exit code, its JSON report and its output.
fn pktgen(s: &Setup, args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = run(Command::new(pktgen_bin())
        .args(["--eal", &s.eal, "--metrics", &s.metrics, "--json", "--stall-s", "5"])
        .args(args));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // rvsd's drops so far, by reason: where frames went when some are missing.
    let all = format!("{stdout}{}rvsd drops: {}\n", String::from_utf8_lossy(&out.stderr), drops(&s.metrics));
    let json = stdout.lines().rev().find_map(|l| serde_json::from_str(l).ok()).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json, all)
}

/// The sum of a metric's samples in rvsd's /metrics.
fn metric(addr: &str, name: &str) -> f64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("metrics endpoint");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// rvsd's non-zero drop counters, `reason=count` (summed over workers).
fn drops(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return "(metrics unreachable)".into() };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let mut by: std::collections::BTreeMap<String, f64> = Default::default();
    for l in text.lines().filter(|l| l.starts_with("rvs_lcore_drops_total{")) {
        let reason = l.split("reason=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("?");
        *by.entry(reason.to_string()).or_default() += l.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    }
    by.into_iter().filter(|(_, v)| *v > 0.0).map(|(r, v)| format!("{r}={v}")).collect::<Vec<_>>().join(" ")
}

fn num(v: &serde_json::Value, k: &str) -> f64 {
    v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN)
}

#[test]
fn generator_verifies_every_method_and_catches_a_wrong_rewrite() {
    require_root();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let s = start(&unique_id("pktgen"), 19481);

    // NAT both ways: every frame checked at the servers and back at the clients.
    let (rc, j, out) = pktgen(&s, &["--flows", "500", "--packets", "20000", "--reflect", "--sample", "1"]);
    assert_eq!(rc, 0, "NAT run failed:\n{out}");
    assert_eq!(num(&j, "open_syns"), 500.0, "{out}");
    assert_eq!(num(&j, "lost"), 0.0, "{out}");
    assert_eq!(num(&j, "bad"), 0.0, "{out}");
    // 500 SYNs + 20000 at the servers, 20000 replies at the clients.
    assert_eq!(num(&j, "verified"), 40_500.0, "{out}");
    assert!(num(&j, "rtt_us_p50") > 0.0, "round trips timed:\n{out}");
    assert!(num(&j, "worker_ns_per_pkt") > 0.0, "the worker's busy share read from /metrics:\n{out}");

    // DR and TUN: MAC rewrite; IPIP from the DIP with the client's packet inside.
    for vport in ["81", "82"] {
        let (rc, j, out) = pktgen(&s, &["--vport", vport, "--flows", "300", "--packets", "10000", "--sample", "1"]);
        assert_eq!(rc, 0, "VIP port {vport} failed:\n{out}");
        assert_eq!((num(&j, "lost"), num(&j, "bad"), num(&j, "verified")), (0.0, 0.0, 10_300.0), "{out}");
    }

    // New connections only: unique tuples, one connection each.
    let (rc, j, out) = pktgen(&s, &["--mode", "syn", "--vport", "81", "--flows", "5000", "--sample", "7"]);
    assert_eq!(rc, 0, "SYN run failed:\n{out}");
    assert!(num(&j, "new_conn_per_s") > 0.0, "{out}");

    // A SYN flood three times the table (65 536 here) with 200 established flows
    // mixed in: the table makes room by evicting half-open connections, and no
    // established packet is lost.
    let evicted_before = metric(&s.metrics, "rvs_lcore_connections_evicted_total");
    let (rc, j, out) =
        pktgen(&s, &["--mode", "flood", "--flows", "200", "--syns", "200000", "--every", "10", "--sample", "50"]);
    assert_eq!(rc, 0, "flood run failed:\n{out}");
    assert_eq!(num(&j, "est_packets"), 20_000.0, "{out}");
    assert_eq!(num(&j, "est_lost"), 0.0, "{out}");
    assert!(num(&j, "syns_forwarded") >= 199_000.0, "the flood's SYNs are taken, not refused:\n{out}");
    let evicted = metric(&s.metrics, "rvs_lcore_connections_evicted_total") - evicted_before;
    assert!(evicted > 100_000.0, "half-open connections evicted: {evicted}\n{out}");
    let table = metric(&s.metrics, "rvs_lcore_connections");
    assert!(table <= 65_536.0, "the table stays bounded: {table}");

    // A generator expecting another real-server port sees every sampled NAT frame
    // as a bad rewrite, and fails.
    let (rc, j, out) = pktgen(&s, &["--flows", "50", "--packets", "1000", "--sample", "10", "--server-port", "9999"]);
    assert_eq!(rc, 1, "a wrong rewrite went unnoticed:\n{out}");
    assert!(num(&j, "bad") > 0.0 && num(&j, "bad") == num(&j, "verified"), "{out}");
    assert!(out.contains("expected"), "the first bad frame is described:\n{out}");

    // Every generator run connected and disconnected the memif links: rvsd saw
    // the links go down and up again, logged and counted it, and kept forwarding
    // (each run above passed after the previous one's link went down).
    let log = s.daemon.log_text();
    assert!(!log.contains("panicked"), "{log}");
    let downs = log.lines().filter(|l| l.contains("link down") && l.contains("net_memif0")).count();
    let ups = log.lines().filter(|l| l.contains("link up") && l.contains("net_memif0")).count();
    // Six runs: six ups and six downs (rvsd looks every 10 ms; a new generator
    // process takes far longer to come up).
    assert!(downs >= 5 && ups >= 5, "link flaps logged: {downs} down, {ups} up\n{log}");
    assert!(metric(&s.metrics, "rvs_port_link_changes_total") >= 10.0);
}

/// testpmd forwarding between the two memif ports, as `perf/pktgen` runs it for the
/// limit figure; killed (and its sockets removed) when dropped.
struct Testpmd {
    child: std::process::Child,
    eal: String,
    _files: RemoveOnDrop,
}

impl Testpmd {
    fn start(id: &str, mode: &str) -> Testpmd {
        let (client, server) = (format!("/run/rvs/test-{id}-client.sock"), format!("/run/rvs/test-{id}-server.sock"));
        let _ = std::fs::create_dir_all("/run/rvs");
        let files = RemoveOnDrop(vec![client.clone().into(), server.clone().into()]);
        let log_path = std::env::temp_dir().join(format!("testpmd-{id}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new("dpdk-testpmd")
            .args(["-l", "0,1", "--no-pci", "--no-huge", "-m", "512", "--no-shconf"])
            .arg(format!("--vdev=net_memif0,role=server,id=0,socket={client},socket-abstract=no"))
            .arg(format!("--vdev=net_memif1,role=server,id=1,socket={server},socket-abstract=no"))
            .args(["--", &format!("--forward-mode={mode}"), "--total-num-mbufs=8192", "--auto-start"])
            .args(["--stats-period", "60"])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dpdk-testpmd (Debian's dpdk-dev; scripts/setup installs it)");
        // Its memif ports take connections once forwarding has started.
        for _ in 0..200 {
            if std::fs::read_to_string(&log_path).unwrap_or_default().contains("forwards packets on") {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let eal = format!(
            "--no-pci --no-huge -m 256 --no-shconf -l 0 \
             --vdev=net_memif0,role=client,id=0,socket={client},socket-abstract=no,mac=02:9e:00:00:00:01 \
             --vdev=net_memif1,role=client,id=1,socket={server},socket-abstract=no,mac=02:9e:00:00:00:02"
        );
        Testpmd { child, eal, _files: files }
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The limit figure's setup: the generator in `--forwarder` mode through testpmd.
/// Forwarded unchanged (io), every frame checks out; with the MACs swapped
/// (macswap) every sampled frame is bad: the check can fail.
#[test]
fn the_generator_measures_the_limit_through_a_forwarder() {
    require_root();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for (mode, good) in [("io", true), ("macswap", false)] {
        let t = Testpmd::start(&unique_id(&format!("fwd-{mode}")), mode);
        let out = run(Command::new(pktgen_bin())
            .args(["--eal", &t.eal, "--forwarder", "--json", "--stall-s", "3"])
            .args(["--flows", "200", "--packets", "5000", "--sample", "1"]));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let j: serde_json::Value = text.lines().rev().find_map(|l| serde_json::from_str(l).ok()).unwrap_or_default();
        if good {
            assert_eq!(out.status.code(), Some(0), "{text}");
            assert!(num(&j, "verified") >= 5000.0 && num(&j, "bad") == 0.0 && num(&j, "lost") == 0.0, "{text}");
            assert!(num(&j, "ns_per_pkt_wall") > 0.0, "{text}");
        } else {
            assert_eq!(out.status.code(), Some(1), "a changed frame went unnoticed:\n{text}");
            assert!(num(&j, "bad") > 0.0 && num(&j, "bad") == num(&j, "verified"), "{text}");
            assert!(text.contains("MACs are not as sent"), "{text}");
        }
    }
}

/// A child process killed if the test fails before it is waited for.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// rvsd's memif ports as zero-copy clients (its mbufs are the shared memory; the
/// generator, the server, copies), as `perf/pktgen`'s zero-copy figures run it: NAT
/// both ways and DR forward every frame rewritten as they should, none lost.
#[test]
fn rvsd_forwards_with_its_memif_ports_as_zero_copy_clients() {
    require_root();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let id = unique_id("zc");
    let (client, server) = (format!("/run/rvs/test-{id}-client.sock"), format!("/run/rvs/test-{id}-server.sock"));
    let _ = std::fs::create_dir_all("/run/rvs");
    let socket = socket_path(&id);
    let _files = RemoveOnDrop(vec![client.clone().into(), server.clone().into(), socket.clone().into()]);
    let metrics = "127.0.0.1:19483";
    let gen_eal = format!(
        "--no-pci --no-huge -m 256 --no-shconf -l 0 \
         --vdev=net_memif0,role=server,id=0,socket={client},socket-abstract=no,mac=02:9e:00:00:00:01 \
         --vdev=net_memif1,role=server,id=1,socket={server},socket-abstract=no,mac=02:9e:00:00:00:02"
    );
    let rvsd_eal = format!(
        "--no-pci --single-file-segments \
         --vdev=net_memif0,role=client,id=0,socket={client},socket-abstract=no,zero-copy=yes \
         --vdev=net_memif1,role=client,id=1,socket={server},socket-abstract=no,zero-copy=yes"
    );
    for (args, expect) in [
        (&["--flows", "300", "--packets", "10000", "--reflect", "--sample", "1"][..], 20_300.0),
        (&["--vport", "81", "--flows", "300", "--packets", "10000", "--sample", "1"][..], 10_300.0),
    ] {
        // The server's sockets first (the last generator's gone): a memif client
        // connects to them as it starts.
        let _ = (std::fs::remove_file(&client), std::fs::remove_file(&server));
        let mut gen = KillOnDrop(Some(
            Command::new(pktgen_bin())
                .args(["--eal", &gen_eal, "--metrics", metrics, "--json", "--stall-s", "5"])
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("rvs-pktgen"),
        ));
        for _ in 0..100 {
            if std::path::Path::new(&client).exists() && std::path::Path::new(&server).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // A fresh rvsd for each generator: a memif client does not connect again
        // to a server that went away.
        let mut daemon = Daemon::start(
            None,
            &repo_root().join("conf/perf.toml"),
            &[
                ("RVS_EAL__ARGS", rvsd_eal.as_str()),
                ("RVS_CONTROL__SOCKET", socket.as_str()),
                ("RVS_METRICS__LISTEN", metrics),
                ("RVS_WORKERS__CONNECTIONS", "65536"),
                ("RVS_MEMPOOL__MBUFS", "8191"),
            ],
        );
        daemon.wait_ready(Duration::from_secs(20));
        let out = gen.0.take().expect("spawned").wait_with_output().expect("rvs-pktgen's output");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let text = format!(
            "{stdout}{}rvsd drops: {}\nrvsd's log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            drops(metrics),
            daemon.log_text()
        );
        let j: serde_json::Value = stdout.lines().rev().find_map(|l| serde_json::from_str(l).ok()).unwrap_or_default();
        assert_eq!(out.status.code(), Some(0), "{args:?}:\n{text}");
        assert_eq!((num(&j, "lost"), num(&j, "bad"), num(&j, "verified")), (0.0, 0.0, expect), "{args:?}:\n{text}");
        let log = daemon.log_text();
        assert!(log.contains("zero-copy=yes") && !log.contains("panicked"), "{log}");
    }
}
