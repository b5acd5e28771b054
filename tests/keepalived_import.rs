//! keepalived.conf to rvsd.toml (`rvsd --from-keepalived`): every sample Debian's
//! keepalived package ships either converts, or names each keyword RVS cannot do
//! with its file and line (exit 1; 0 with --lenient); every conversion passes
//! `rvsd --check`; and a converted keepalived.conf (a DR director on the lab's
//! addresses) runs in the dr lab and serves curl.

mod common;

use common::*;
use std::process::Command;

const SAMPLES: &str = "/usr/share/doc/keepalived/samples";

/// (exit code, standard output, standard error) of rvsd with `args`.
fn rvsd(args: &[&str]) -> (i32, String, String) {
    let o = run(Command::new(rvsd_bin()).args(args));
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

#[test]
fn every_debian_sample_converts_or_names_what_it_cannot() {
    let mut samples: Vec<_> = std::fs::read_dir(SAMPLES)
        .expect("keepalived's samples (scripts/setup installs keepalived)")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("keepalived.conf")))
        .collect();
    samples.sort();
    assert!(samples.len() >= 20, "{} samples", samples.len());
    let dir = scratch_dir("keepalived-import", &unique_id("ki"));
    let (mut whole, mut named) = (0, 0);
    for s in &samples {
        let path = s.to_str().unwrap();
        let (code, toml, err) = rvsd(&["--from-keepalived", path]);
        if err.is_empty() {
            assert_eq!(code, 0, "{path}");
            whole += 1;
        } else {
            assert_eq!(code, 1, "{path}: something was not converted: exit 1\n{err}");
            for line in err.lines() {
                // "rvsd: not converted: FILE:LINE: KEYWORD: why"
                let rest = line.strip_prefix("rvsd: not converted: ").unwrap_or_else(|| panic!("{path}: {line}"));
                let (file, after) = rest.split_once(':').unwrap();
                let (line_no, after) = after.split_once(':').unwrap();
                assert!(file.starts_with(SAMPLES) && line_no.parse::<u32>().is_ok(), "{line}");
                assert!(after.trim_start().split(':').next().is_some_and(|k| !k.is_empty()), "{line}");
            }
            assert_eq!(rvsd(&["--from-keepalived", path, "--lenient"]).0, 0, "{path}: --lenient");
            named += 1;
        }
        let out = dir.join(format!("{}.toml", s.file_name().unwrap().to_str().unwrap()));
        std::fs::write(&out, &toml).unwrap();
        let (code, _, err) = rvsd(&["--config", out.to_str().unwrap(), "--check"]);
        assert_eq!(code, 0, "{path} converted does not pass rvsd --check: {err}\n{toml}");
    }
    eprintln!("{whole} samples converted whole, {named} with what RVS cannot do named");
    assert!(whole >= 5 && named >= 5, "{whole} whole, {named} named");
}

#[test]
fn a_converted_keepalived_conf_serves_in_the_dr_lab() {
    let lab = Lab::start("dr", "ki");
    let dir = lab.scratch("keepalived");
    let ka = dir.join("keepalived.conf");
    std::fs::write(
        &ka,
        "! the LVS-DR tutorial's director, in keepalived's words\n\
         global_defs {\n   router_id LVS_DR\n}\n\
         virtual_server 198.18.0.10 80 {\n    delay_loop 2\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n\
         \x20   real_server 198.18.0.11 80 {\n        weight 1\n        TCP_CHECK {\n            connect_timeout 1\n        }\n    }\n\
         \x20   real_server 198.18.0.12 80 {\n        weight 1\n        TCP_CHECK {\n            connect_timeout 1\n        }\n    }\n}\n",
    )
    .unwrap();
    // Converted where it will run (the interface's address is looked up there).
    let o = in_ns(lab.var("LB_NS"), &[rvsd_bin().to_str().unwrap(), "--from-keepalived", ka.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let toml = String::from_utf8_lossy(&o.stdout).to_string();
    let cfg = dir.join("rvsd.toml");
    std::fs::write(&cfg, &toml).unwrap();
    let (_rvsd, sock) = lab.rvsd(Some(&cfg), &[]);
    let listing = rvsadm_ok(&sock, "-L -n");
    assert!(listing.contains("TCP  198.18.0.10:80 rr"), "{listing}\n{toml}");
    let mut served: Vec<String> = (0..4)
        .map(|_| {
            let o = in_ns(lab.var("CLIENT_NS"), &["curl", "-s", "-m", "2", "http://198.18.0.10/"]);
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        })
        .collect();
    served.sort();
    assert_eq!(served, ["server1", "server1", "server2", "server2"], "{toml}");
}
