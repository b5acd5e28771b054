//! The structure the code keeps: layers use only those below them, the daemon's
//! command line stays a command line, and the benchmarks time the worker's own burst
//! function. (The compiler keeps `unsafe` in `dpdk/`: every other module forbids it.)

use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_file() {
        out.push(p.to_path_buf());
        return;
    }
    for e in std::fs::read_dir(p).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() || p.extension().is_some_and(|x| x == "rs") {
            rust_files(&p, out);
        }
    }
}

/// Code lines of every file under `dir` (comments dropped) that mention `needle`.
fn uses(dir: &Path, needle: &str) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    assert!(!files.is_empty(), "no files under {}", dir.display());
    let mut hits = Vec::new();
    for f in files {
        for (n, line) in std::fs::read_to_string(&f).unwrap().lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains(needle) {
                hits.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    hits
}

#[test]
fn layers_point_down() {
    let s = src();
    let rules: &[(&str, &[&str])] = &[
        ("net", &["crate::ipvs", "crate::pipeline", "crate::control", "crate::worker", "crate::daemon"]),
        ("ipvs", &["crate::pipeline", "crate::control", "crate::worker", "crate::daemon"]),
        ("pipeline", &["crate::control", "crate::worker", "crate::daemon"]),
        ("dpdk", &["crate::pipeline", "crate::ipvs", "crate::control", "crate::worker", "crate::daemon"]),
        ("control", &["crate::pipeline::steer", "crate::worker", "crate::daemon", "crate::dpdk"]),
        ("worker.rs", &["crate::control", "crate::daemon"]),
    ];
    let mut wrong = Vec::new();
    for (dir, forbidden) in rules {
        for f in *forbidden {
            wrong.extend(uses(&s.join(dir), f));
        }
    }
    assert!(wrong.is_empty(), "imports that point up or sideways:\n{}", wrong.join("\n"));
}

#[test]
fn rvsd_is_a_command_line_over_the_daemon_library() {
    let text = std::fs::read_to_string(src().join("bin/rvsd.rs")).unwrap();
    let lines = text.lines().count();
    assert!(lines <= 120, "bin/rvsd.rs has {lines} lines: start-up belongs in appliance::daemon");
    assert!(text.contains("Daemon::new()"), "rvsd starts the appliance through appliance::daemon");
}

#[test]
fn the_benchmarks_time_the_workers_burst_function() {
    let s = src();
    assert!(!uses(&s.join("worker.rs"), "run_burst(").is_empty(), "the worker runs Pipeline::run_burst");
    let perf = s.join("../../perf/src/scenarios.rs");
    assert!(!uses(&perf, "run_burst(").is_empty(), "perf/ times Pipeline::run_burst");
    assert!(uses(&perf, ".warm(").is_empty(), "perf/ does not warm bursts its own way");
    assert!(!s.join("bin/rvs-pktgen.rs").exists(), "the generator lives in perf/generator");
}
