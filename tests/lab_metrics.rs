//! Prometheus metrics end to end: a real Prometheus (Debian's package)
//! scrapes rvsd in the nat lab; after a known number of requests, its query API
//! says each real server's connection counter equals the requests it served;
//! `promtool check metrics` accepts a scrape; `rvsadm -ln --stats` and `/metrics`
//! agree on every count.

mod common;

use common::*;
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Prometheus {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn metrics_text(ns: &str) -> String {
    let o = in_ns(ns, &["curl", "-s", "-m", "5", "http://127.0.0.1:9477/metrics"]);
    assert!(o.status.success(), "scrape failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `name{labels} value` lines of a scrape: (name with labels) -> value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(k, v)| (k.to_string(), v.parse().unwrap_or(f64::NAN))))
        .collect()
}

#[test]
fn prometheus_scrapes_rvsd_and_counts_agree_with_rvsadm() {
    let lab = Lab::start("nat", "x");
    let lb = lab.var("LB_NS").to_string();
    let (mut rvsd, sock) = lab.rvsd(None, &["--workers", "2"]);

    // A real Prometheus next to rvsd, scraping every second.
    let dir = lab.scratch("prom");
    let conf = dir.join("prometheus.yml");
    std::fs::write(
        &conf,
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rvs\n    static_configs:\n      - targets: ['127.0.0.1:9477']\n",
    )
    .unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &lb, "prometheus"])
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .args(["--web.listen-address=127.0.0.1:9090", "--log.level=warn"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus (installed by scripts/setup)");
    let prom = Prometheus { child, dir: dir.clone() };
    let t0 = Instant::now();
    while !String::from_utf8_lossy(&in_ns(&lb, &["curl", "-s", "-m", "1", "http://127.0.0.1:9090/-/ready"]).stdout)
        .contains("Ready")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "prometheus did not start: {}",
            std::fs::read_to_string(prom.dir.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A known number of requests; the bodies say who served each.
    let bodies = curls(lab.var("CLIENT_NS"), &format!("http://{}/", lab.var("VIP")), 20);
    let names = lab.list("RS_NAMES");
    let ips = lab.list("RS_IPS");
    let served: HashMap<String, usize> =
        names.iter().zip(&ips).map(|(n, ip)| (ip.clone(), bodies.iter().filter(|b| *b == n).count())).collect();
    assert_eq!(served.values().sum::<usize>(), 20);

    // Prometheus' query API, until the scrapes have caught up.
    let query = |q: &str| -> serde_json::Value {
        let o = in_ns(
            &lb,
            &[
                "curl",
                "-s",
                "-m",
                "5",
                "--get",
                "http://127.0.0.1:9090/api/v1/query",
                "--data-urlencode",
                &format!("query={q}"),
            ],
        );
        serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
    };
    let t0 = Instant::now();
    let per_dest = loop {
        let v = query("rvs_dest_connections_total");
        let got: HashMap<String, usize> = v["data"]["result"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|s| {
                        let dest = s["metric"]["dest"].as_str().unwrap_or("").trim_end_matches(":80").to_string();
                        (dest, s["value"][1].as_str().unwrap_or("0").parse::<usize>().unwrap_or(0))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if got == served || t0.elapsed() > Duration::from_secs(20) {
            break got;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(per_dest, served, "Prometheus' view of each dest's connections");
    let up = query("up{job=\"rvs\"}");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");

    // promtool accepts a scrape.
    let scrape = metrics_text(&lb);
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check.stdin.take().unwrap().write_all(scrape.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // rvsadm --stats and /metrics agree on every count.
    let stats = rvsadm_ok(&sock, "-ln --stats --exact");
    let m = samples(&metrics_text(&lb));
    let service = format!("tcp/{}:80", lab.var("VIP"));
    let names = ["connections", "in_packets", "out_packets", "in_bytes", "out_bytes"];
    for line in stats.lines().skip(3) {
        let values: Vec<f64> = line[33..].split_whitespace().map(|v| v.parse().unwrap()).collect();
        let who = line[..33].trim();
        for (i, n) in names.iter().enumerate() {
            let key = if let Some(dest) = who.strip_prefix("-> ") {
                format!("rvs_dest_{n}_total{{service=\"{service}\",dest=\"{dest}\"}}")
            } else {
                format!("rvs_service_{n}_total{{service=\"{service}\"}}")
            };
            assert_eq!(m.get(&key).copied(), Some(values[i]), "{key}\n{stats}");
        }
    }
    assert!(m.keys().any(|k| k.starts_with("rvs_lcore_drops_total{")), "per-lcore drops exported");
    assert_eq!(m.get("rvs_port_link_up{port=\"net_af_packet0\"}").copied(), Some(1.0));
    drop(prom);
    let _ = rvsd.terminate(Duration::from_secs(5));
}
