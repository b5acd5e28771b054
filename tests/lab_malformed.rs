//! Malformed frames on the wire: every drop case of the malformed
//! fixture table that needs no connection is sent three times from the nat lab's
//! client (raw packet socket, scripts/send-frames.py) to rvsd, and each case's drop
//! reason shows up in rvsd's `/metrics` with exactly that count; every reason rvsd
//! has is exported, at zero or not.

mod common;
#[path = "fixtures/mod.rs"]
mod fixtures;

use appliance::pipeline::counters::DropReason;
use appliance::pipeline::Verdict;
use common::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const COPIES: u64 = 3;

fn mac_of(ns: &str, dev: &str) -> [u8; 6] {
    let link = text(&run(Command::new("ip").args(["-n", ns, "-br", "link", "show", dev])));
    let mac = link.split_whitespace().nth(2).unwrap_or_default().to_string();
    let b: Vec<u8> = mac.split(':').filter_map(|x| u8::from_str_radix(x, 16).ok()).collect();
    b.try_into().unwrap_or_else(|_| panic!("no MAC for {dev} in {ns}: {link}"))
}

/// reason -> value of `rvs_lcore_drops_total`, summed over lcores.
fn drops_in_metrics(ns: &str) -> BTreeMap<String, u64> {
    let o = in_ns(ns, &["curl", "-s", "-m", "5", "http://127.0.0.1:9477/metrics"]);
    assert!(o.status.success(), "scrape failed: {}", text(&o));
    let mut m = BTreeMap::new();
    for l in String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.starts_with("rvs_lcore_drops_total{")) {
        let Some(r) = l.split("reason=\"").nth(1).and_then(|x| x.split('"').next()) else { continue };
        // Counters are integers; the exporter may still print "3" or "3.0".
        let v: u64 = l.rsplit(' ').next().and_then(|v| v.trim_end_matches(".0").parse().ok()).unwrap_or(0);
        *m.entry(r.to_string()).or_insert(0) += v;
    }
    m
}

#[test]
fn malformed_frames_are_dropped_and_counted_in_metrics() {
    let lab = Lab::start("nat", "mf");
    let (client, lb, vip) = (lab.var("CLIENT_NS"), lab.var("LB_NS"), lab.var("VIP"));
    let (rvsd, _) = lab.rvsd(None, &[]);
    let ping = in_ns(client, &["ping", "-c", "1", "-W", "2", vip]);
    assert!(ping.status.success(), "ping failed:\n{}", text(&ping));

    let (port_mac, client_mac) = (mac_of(lb, &lab.list("LB_IFACES")[0]), mac_of(client, "eth0"));
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut lines = String::new();
    for c in fixtures::malformed::malformed() {
        let Verdict::Drop(r) = c.verdict else { continue };
        // Connections would need their setup; a frame shorter than an Ethernet
        // header cannot be sent through a packet socket; and net_af_packet's
        // fanout asks the kernel to reassemble fragments first
        // (PACKET_FANOUT_FLAG_DEFRAG), so a lone fragment never reaches rvsd.
        if !c.setup.is_empty() || c.input.len() < 14 || r == DropReason::IpFragment {
            continue;
        }
        let mut f = c.input.clone();
        f[0..6].copy_from_slice(&port_mac);
        f[6..12].copy_from_slice(&client_mac);
        lines.push_str(&f.iter().map(|b| format!("{b:02x}")).collect::<String>());
        lines.push('\n');
        *expected.entry(r.name().to_string()).or_insert(0) += COPIES;
    }
    assert!(expected.len() >= 12, "{expected:?}");
    let before = drops_in_metrics(lb);
    let mut send = Command::new("ip")
        .args(["netns", "exec", client, "python3"])
        .arg(repo_root().join("scripts/send-frames.py"))
        .args(["eth0", &COPIES.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("send-frames.py");
    send.stdin.take().expect("stdin").write_all(lines.as_bytes()).expect("write frames");
    let out = send.wait_with_output().expect("send-frames.py");
    assert!(out.status.success(), "send-frames.py: {}", String::from_utf8_lossy(&out.stderr));

    // The control loop publishes what the workers counted on each scrape.
    let mut got = BTreeMap::new();
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(100));
        let now = drops_in_metrics(lb);
        got = expected
            .keys()
            .map(|r| (r.clone(), now.get(r).copied().unwrap_or(0) - before.get(r).copied().unwrap_or(0)))
            .collect();
        if got == expected {
            break;
        }
    }
    assert_eq!(got, expected, "drop counters in /metrics (reason -> frames)\nrvsd log:\n{}", rvsd.log_text());
    let all = drops_in_metrics(lb);
    for r in DropReason::ALL {
        assert!(all.contains_key(r.name()), "reason {} not exported", r.name());
    }
    // rvsd still forwards: a request through the VIP works.
    let body = curls(client, &format!("http://{vip}/"), 1);
    assert!(body[0].starts_with("server"), "{body:?}");
}
