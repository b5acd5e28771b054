//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz
//! targets' harness on stable, in every test run: a crash libFuzzer once found
//! stays fixed. `scripts/fuzz` runs the targets themselves (libFuzzer, nightly).
//! With `RVS_FUZZ_SEED=1` this test (re)writes the seed corpus: the fixture and
//! malformed frames, the LVS labs' ipvsadm lines, the configs in conf/.

#[path = "fixtures/mod.rs"]
mod fixtures;
#[path = "fuzz_harness/mod.rs"]
mod harness;
#[path = "fixtures/sync.rs"]
mod sync_fixtures;

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

fn files(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(corpus(target))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap_or_default();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

/// The seed corpus, from the repository's own frames, commands and configs.
fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut v = Vec::new();
    for (i, c) in fixtures::cases().into_iter().enumerate() {
        v.push(("wire", format!("fixture-{i:02}"), c.input.clone()));
        let mut d = vec![u8::try_from(c.in_port).unwrap_or(0) | 2];
        d.extend_from_slice(&c.input);
        v.push(("pipeline", format!("fixture-{i:02}"), d));
    }
    for (i, c) in fixtures::malformed::malformed().into_iter().enumerate() {
        v.push(("wire", format!("malformed-{i:02}"), c.input.clone()));
        let mut d = Vec::new();
        for (port, f) in c.setup.iter().take(1) {
            d.push(u8::try_from(*port).unwrap_or(0));
            d.extend_from_slice(f);
            v.push(("pipeline", format!("malformed-{i:02}-setup"), d.clone()));
            d.clear();
        }
        d.push(u8::try_from(c.in_port).unwrap_or(0));
        d.extend_from_slice(&c.input);
        v.push(("pipeline", format!("malformed-{i:02}"), d));
    }
    let labs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/LVS-LABS.md"))
        .unwrap_or_default();
    for (n, l) in labs.lines().map(str::trim).filter(|l| l.starts_with("ipvsadm ")).enumerate() {
        v.push(("rvsadm", format!("labs-{n:03}"), l.as_bytes()["ipvsadm ".len()..].to_vec()));
    }
    for (name, line) in [
        ("add-service", "-A -t 198.18.0.10:80 -s wlc -p 300 -M 255.255.255.0"),
        ("add-dest", "-a -t 198.18.0.10:80 -r 198.18.1.11:8080 -m -w 3 -x 100 -y 10"),
        ("fwmark", "-A -f 1 -s sh -b sh-port,sh-fallback"),
        ("list", "-L -n --stats --exact --rate --thresholds --persistent-conn -c"),
        ("timeout", "--set 900 120 300"),
        ("restore", "-A -t 198.18.0.10:80 -s rr\n-a -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 1\n"),
    ] {
        v.push(("rvsadm", name.to_string(), line.as_bytes().to_vec()));
    }
    for (name, d) in sync_fixtures::datagrams() {
        v.push(("sync", name.to_string(), d));
    }
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf");
    for e in std::fs::read_dir(&conf).into_iter().flatten().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "toml") {
            let name = p.file_stem().and_then(|s| s.to_str()).unwrap_or("conf").to_string();
            v.push(("config", name, std::fs::read(&p).unwrap_or_default()));
        }
    }
    v
}

#[test]
fn corpus_replays_without_a_crash() {
    if std::env::var_os("RVS_FUZZ_SEED").is_some() {
        for (target, name, data) in seeds() {
            let dir = corpus(target);
            std::fs::create_dir_all(&dir).expect("corpus dir");
            std::fs::write(dir.join(format!("seed-{name}")), data).expect("write seed");
        }
    }
    let mut counts = Vec::new();
    for target in ["wire", "pipeline", "rvsadm", "config", "sync"] {
        let inputs = files(target);
        assert!(!inputs.is_empty(), "fuzz/corpus/{target} is empty (RVS_FUZZ_SEED=1 writes the seeds)");
        let mut p = fixtures::pipeline();
        let mut now = 1_000u64;
        let (mut d, mut now_s) = (harness::sync_director(), 1u32);
        for (path, data) in &inputs {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match target {
                "wire" => harness::wire(data),
                "pipeline" => harness::pipeline(&mut p, &mut now, data),
                "rvsadm" => harness::rvsadm(data),
                "sync" => harness::sync(&mut d, &mut now_s, data),
                _ => harness::config(data),
            }));
            assert!(r.is_ok(), "{target}: {} crashes", path.display());
        }
        counts.push(format!("{target} {}", inputs.len()));
    }
    eprintln!("replayed: {}", counts.join(", "));
}
