//! The data path takes no lock: no Mutex or RwLock (std, parking_lot, spin) in the
//! code a worker runs per packet. Control-plane code (control/, bin/) may.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_mutex_or_rwlock_on_the_data_path() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for d in ["net", "ipvs", "pipeline", "dpdk"] {
        rust_files(&src.join(d), &mut files);
    }
    files.push(src.join("worker.rs"));
    assert!(files.len() > 20, "found {} files", files.len());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in ["Mutex", "RwLock", ".lock()", ".write()", ".read().unwrap()"] {
                assert!(!code.contains(word), "{}:{}: `{word}` on the data path: {line}", f.display(), n + 1);
            }
        }
    }
}

/// `unsafe` lives in dpdk-sys/ and appliance/src/dpdk/ only (the engineering
/// rules): no other Rust file of the workspace uses the keyword in code. In the
/// appliance the compiler enforces it (every module but `dpdk` forbids unsafe code);
/// this covers the other crates, the tests and the fuzz targets as well.
#[test]
fn unsafe_only_in_the_dpdk_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for d in ["appliance/src", "perf/src", "perf/generator/src", "tests", "fuzz/fuzz_targets"] {
        rust_files(&root.join(d), &mut files);
    }
    let allowed = root.join("appliance/src/dpdk");
    let this = Path::new(file!()).file_name().unwrap_or_default().to_owned();
    let mut checked = 0;
    for f in files.iter().filter(|f| !f.starts_with(&allowed) && f.file_name() != Some(this.as_os_str())) {
        checked += 1;
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let uses = code.split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == "unsafe");
            assert!(!uses, "{}:{}: `unsafe` outside the DPDK layer: {line}", f.display(), n + 1);
        }
    }
    assert!(checked > 50, "checked {checked} files");
}
