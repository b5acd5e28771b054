//! Bad configurations: rvsd exits non-zero with a message
//! naming the key, before or while bringing DPDK up.

mod common;

use common::*;
use std::process::Command;

/// A valid configuration the cases below break one key of.
fn base() -> String {
    vdev_config("net_null0", "\n[workers]\nlcores = [1]\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n")
}

/// Runs rvsd on `config` and returns (exit code, stderr).
fn rvsd_with(name: &str, config: &str) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("rvs-bad-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let out = run(Command::new(rvsd_bin()).arg("--config").arg(&path).env("RVS_LOG", "warn"));
    let code = out.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn expect_error(name: &str, config: &str, code: i32, message: &str) {
    let (got, stderr) = rvsd_with(name, config);
    assert_eq!(got, code, "{name}: exit code; stderr:\n{stderr}");
    let last = stderr.lines().rev().find(|l| l.starts_with("rvsd: ")).unwrap_or_default().to_string();
    assert!(last.contains(message), "{name}: want {message:?} in the error line, got {last:?}\nstderr:\n{stderr}");
}

#[test]
fn unknown_key() {
    let cfg = base().replace("addresses = ", "adresses = ");
    expect_error("unknown-key", &cfg, 2, "port[0].adresses: unknown key");
    let cfg = format!("{}\n[telemetry]\nlisten = \"127.0.0.1:9100\"\n", base());
    expect_error("unknown-section", &cfg, 2, "telemetry: unknown key");
}

#[test]
fn bad_cidr() {
    let cfg = base().replace("198.18.0.10/24", "1.2.3/40");
    expect_error("bad-cidr", &cfg, 2, "port[0].addresses[0]: invalid CIDR \"1.2.3/40\"");
}

#[test]
fn missing_file() {
    let out = run(Command::new(rvsd_bin()).args(["--config", "/nonexistent/rvs.toml"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("cannot read config file /nonexistent/rvs.toml"), "{}", text(&out));
}

#[test]
fn lcore_that_does_not_exist() {
    let cfg = base().replace("lcores = [1]", "lcores = [127]");
    expect_error("no-lcore", &cfg, 2, "workers.lcores[0]: lcore 127 is not an online CPU");
}

#[test]
fn vdev_driver_that_does_not_exist() {
    require_root();
    let cfg = base().replace("--vdev=net_null0", "--vdev=net_bogus0");
    expect_error("bogus-driver", &cfg, 2, "eal.args: rte_eal_init failed");
    expect_error("bogus-driver", &cfg, 2, "net_bogus0");
}

#[test]
fn vdev_on_an_interface_that_does_not_exist() {
    require_root();
    let cfg = base()
        .replace("--vdev=net_null0", "--vdev=net_af_packet0,iface=rvs-no-such-if")
        .replace("name = \"net_null0\"", "name = \"net_af_packet0\"");
    expect_error("no-iface", &cfg, 2, "eal.args[1]: vdev \"net_af_packet0\" did not come up");
}

#[test]
fn port_that_names_no_device() {
    require_root();
    let cfg = base().replace("name = \"net_null0\"", "name = \"net_null9\"");
    expect_error("no-device", &cfg, 2, "port[0].name: no DPDK device named \"net_null9\"");
}

#[test]
fn check_flag_validates_without_starting() {
    let dir = std::env::temp_dir().join(format!("rvs-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ok.toml");
    std::fs::write(&path, base()).unwrap();
    let out = run(Command::new(rvsd_bin()).arg("--config").arg(&path).arg("--check"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("is valid"));
}
