//! Director pairs in labs (scripts/lab pair, pair-rs, pair-nat): each director's
//! rvsd, its VRRP states, configuration variants, metrics.

use super::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One director of the pair: its rvsd and control socket.
pub struct Director {
    pub rvsd: Daemon,
    pub sock: String,
}

pub fn director(lab: &Lab, which: u8, config: &Path) -> Director {
    let ns = lab.var(&format!("LB{which}_NS")).to_string();
    let sock = socket_path(&format!("{}-{which}", lab.id));
    let mut rvsd = Daemon::start_with(Some(&ns), config, &[("RVS_CONTROL__SOCKET", &sock)], &[]);
    rvsd.wait_ready(Duration::from_secs(30));
    Director { rvsd, sock }
}

/// The instance's state as `rvsadm --vrrp` lists it.
pub fn state(d: &Director) -> String {
    let (_, out, _) = rvsadm(&d.sock, "--vrrp");
    out.lines().nth(1).and_then(|l| l.split_whitespace().nth(5)).unwrap_or("?").to_string()
}

pub fn wait_state(d: &Director, want: &str, limit: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if state(d) == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("not {want} after {limit:?} (is {}):\n{}", state(d), d.rvsd.log_text());
}

/// `base` with each (from, to) replaced, written to the lab's scratch directory.
pub fn variant(lab: &Lab, base: &str, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(base).expect("config");
    for (from, to) in edits {
        assert!(text.contains(from), "{base} has no {from:?}");
        text = text.replace(from, to);
    }
    let path = lab.scratch("vrrp").join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

/// A metric's value from rvsd's /metrics inside `ns`.
pub fn metric(ns: &str, series: &str) -> f64 {
    let o = in_ns(ns, &["curl", "-s", "-m", "2", "http://127.0.0.1:9477/metrics"]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Every instance's state as `rvsadm --vrrp` lists them.
pub fn states(d: &Director) -> Vec<String> {
    let (_, out, _) = rvsadm(&d.sock, "--vrrp");
    out.lines().skip(1).filter_map(|l| l.split_whitespace().nth(5)).map(str::to_string).collect()
}

pub fn wait_states(d: &Director, want: &str, limit: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        let s = states(d);
        if !s.is_empty() && s.iter().all(|x| x == want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("not all {want} after {limit:?}: {:?}\n{}", states(d), d.rvsd.log_text());
}
