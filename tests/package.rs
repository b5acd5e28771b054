//! The Debian package (scripts/package): built, installed with dpkg, its rvsd run in
//! the nat lab and reached by curl and by its installed rvsadm, its man pages
//! rendered, then purged with nothing left behind.

mod common;

use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Installed for the test, purged when it ends (also when it fails).
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "rvs"]).output();
    }
}

struct Rvsd(Child);

impl Drop for Rvsd {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

#[test]
fn the_package_installs_serves_and_purges() {
    require_root();
    let built = run(Command::new(repo_root().join("scripts/package")).current_dir(repo_root()));
    assert!(built.status.success(), "scripts/package:\n{}", text(&built));
    let deb = repo_root().join(String::from_utf8_lossy(&built.stdout).lines().last().unwrap_or("").trim());
    assert!(deb.exists(), "no package at {}", deb.display());
    let _installed = Installed;
    let i = run(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(i.status.success(), "dpkg -i:\n{}", text(&i));
    for f in [
        "/usr/sbin/rvsd",
        "/usr/sbin/rvsadm",
        "/usr/sbin/rvs-iptables",
        "/lib/systemd/system/rvsd.service",
        "/etc/rvs/rvsd.toml",
        "/usr/share/bash-completion/completions/rvsadm",
    ] {
        assert!(Path::new(f).exists(), "{f} not installed");
    }
    let conffiles =
        String::from_utf8_lossy(&run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "rvs"])).stdout)
            .to_string();
    assert!(conffiles.contains("/etc/rvs/rvsd.toml"), "{conffiles}");
    // The example configuration is valid as installed.
    let check = run(Command::new("/usr/sbin/rvsd").args(["--config", "/etc/rvs/rvsd.toml", "--check"]));
    assert!(check.status.success(), "{}", text(&check));
    let unit = std::fs::read_to_string("/lib/systemd/system/rvsd.service").unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("ExecReload=/bin/kill -HUP $MAINPID"), "{unit}");
    // man renders the pages.
    for page in ["rvsadm", "rvsd", "rvsd.toml", "rvs-iptables"] {
        let m = run(Command::new("man").args(["-P", "cat", page]).env("MANWIDTH", "80"));
        let t = String::from_utf8_lossy(&m.stdout).to_string();
        assert!(m.status.success() && t.contains("NAME") && t.contains("SEE ALSO"), "man {page}:\n{}", text(&m));
    }

    // The installed rvsd in the nat lab, reached by curl and the installed rvsadm.
    let lab = Lab::start("nat", "pkg");
    let sock = lab.sock();
    let log = std::fs::File::create(lab.scratch("package").join("rvsd.log")).unwrap();
    let rvsd = Rvsd(
        Command::new("ip")
            .args(["netns", "exec", lab.var("LB_NS"), "/usr/sbin/rvsd", "--config", lab.var("CONFIG")])
            .env("RVS_CONTROL__SOCKET", &sock)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let rvsadm = |args: &[&str]| run(Command::new("/usr/sbin/rvsadm").args(args).env("RVSADM_SOCKET", &sock));
    let t0 = Instant::now();
    while !rvsadm(&["-L", "-n"]).status.success() {
        assert!(t0.elapsed() < Duration::from_secs(30), "the installed rvsd did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let listing = String::from_utf8_lossy(&rvsadm(&["-L", "-n"]).stdout).to_string();
    assert!(listing.contains(&format!("TCP  {}:80", lab.var("VIP"))), "{listing}");
    let names = lab.list("RS_NAMES");
    let mut served = Vec::new();
    for _ in 0..4 {
        let o = in_ns(lab.var("CLIENT_NS"), &["curl", "-s", "-m", "2", &format!("http://{}/", lab.var("VIP"))]);
        served.push(String::from_utf8_lossy(&o.stdout).trim().to_string());
    }
    assert!(served.iter().all(|s| names.contains(s)), "{served:?}");
    drop(rvsd);
    drop(lab);

    // Purged: nothing of it left.
    drop(_installed);
    for f in ["/usr/sbin/rvsd", "/usr/sbin/rvsadm", "/lib/systemd/system/rvsd.service", "/etc/rvs"] {
        assert!(!Path::new(f).exists(), "{f} left after purge");
    }
}
