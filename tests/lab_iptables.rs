//! The tutorials' iptables mangle lines pasted with `rvs-iptables` in place of
//! `iptables`: on a director started without `[[fwmark]]` rules they become its
//! firewall-mark rules at once, classify as the equivalent `[[fwmark]]` rules do
//! (real curl and FTP through the marks; the two directors' `! --mac-source`
//! rules), and are listed byte for byte as Debian's iptables lists the same lines
//! (run in a scratch namespace beside).

mod common;

use common::pair::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn rvs_iptables_bin() -> PathBuf {
    appliance_bin(option_env!("CARGO_BIN_EXE_rvs-iptables"), "rvs-iptables")
}

/// `rvs-iptables ARGS` against the rvsd on `sock`: (exit code, stdout, stderr).
fn rvs_iptables(sock: &str, args: &str) -> (i32, String, String) {
    let out = Command::new(rvs_iptables_bin())
        .args(args.split_whitespace())
        .env("RVSADM_SOCKET", sock)
        .output()
        .expect("rvs-iptables runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A tutorial line (`iptables -t mangle ...`) run by rvs-iptables.
fn paste(sock: &str, line: &str) {
    let args = line.strip_prefix("iptables ").expect("an iptables line");
    let (code, _, err) = rvs_iptables(sock, args);
    assert_eq!(code, 0, "rvs-iptables {args}: {err}");
}

/// `config` without its `[[fwmark]]` tables, written beside the lab's files.
fn without_fwmarks(lab: &Lab, config: &str, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(config).expect("config");
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with('[') {
            skipping = line.trim() == "[[fwmark]]";
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert_ne!(out, text, "{config} has [[fwmark]] rules");
    let path = lab.scratch("iptables").join(format!("{name}.toml"));
    std::fs::write(&path, out).expect("write config");
    path
}

/// What Debian's iptables lists after `lines`, in a namespace of its own.
fn iptables_listing(tag: &str, lines: &[&str], listings: &[&str]) -> Vec<String> {
    /// The namespace, deleted when dropped (also when an assertion fails).
    struct Scratch(String);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
        }
    }
    let ns = Scratch(format!("rvs{tag}-ipt"));
    let _ = Command::new("ip").args(["netns", "del", &ns.0]).output();
    assert!(Command::new("ip").args(["netns", "add", &ns.0]).status().expect("ip").success());
    let run =
        |args: &str| in_ns(&ns.0, &std::iter::once("iptables").chain(args.split_whitespace()).collect::<Vec<_>>());
    for l in lines {
        let o = run(l.strip_prefix("iptables ").expect("an iptables line"));
        assert!(o.status.success(), "iptables {l}: {}", text(&o));
    }
    listings.iter().map(|l| String::from_utf8_lossy(&run(l).stdout).into_owned()).collect()
}

/// The persistence lab's marks, as the LVS HOWTO writes them: 80 and 443 of one
/// VIP as mark 1, FTP's control port and passive range of another as mark 21.
const TUTORIAL: [&str; 4] = [
    "iptables -t mangle -A PREROUTING -d 198.18.0.30 -p tcp --dport 80 -j MARK --set-mark 1",
    "iptables -t mangle -A PREROUTING -d 198.18.0.30 -p tcp --dport 443 -j MARK --set-mark 1",
    "iptables -t mangle -A PREROUTING -d 198.18.0.40 -p tcp --dport 21 -j MARK --set-mark 21",
    "iptables -t mangle -A PREROUTING -d 198.18.0.40 -p tcp --dport 10000:20000 -j MARK --set-mark 21",
];

#[test]
fn the_tutorials_mangle_lines_mark_as_the_configured_rules_do() {
    let lab = Lab::start("persist", "i");
    let c = lab.var("CLIENT_NS");
    let (fwm, ftp) = (lab.var("FWM1_VIP"), lab.var("FTP_VIP"));
    // The rules as the file has them, listed the iptables way.
    let configured = {
        let (_rvsd, sock) = lab.rvsd(None, &[]);
        rvs_iptables(&sock, "-t mangle -S").1
    };
    let bare = without_fwmarks(&lab, lab.var("CONFIG"), "persist-bare");
    let (rvsd, sock) = lab.rvsd(Some(&bare), &[]);
    let unmarked = in_ns(c, &["curl", "-s", "-m", "1", &format!("http://{fwm}/")]);
    assert!(!unmarked.status.success(), "no marks yet: nothing serves {fwm}");

    for line in TUTORIAL {
        paste(&sock, line);
    }
    assert_eq!(rvs_iptables(&sock, "-t mangle -S").1, configured, "the same rules as the file's [[fwmark]]");
    // Classified at once: 443 follows 80 (mark 1), FTP's data follows its control
    // connection (mark 21).
    let on80 = curls(c, &format!("http://{fwm}/"), 1)[0].clone();
    assert_eq!(curls(c, &format!("http://{fwm}:443/"), 2), vec![on80.clone(), on80], "mark 1 keeps 443 with 80");
    let got = curls(c, &format!("ftp://{ftp}/hello"), 2);
    assert!(lab.list("RS_NAMES").contains(&got[0]), "FTP download: {got:?}\n{}", rvsd.log_text());
    assert_eq!(got[0], got[1], "data connections follow their control connection's server");

    // Listed as Debian's iptables lists the same lines.
    let forms = ["-t mangle -L -n", "-t mangle -L PREROUTING -n -v --line-numbers", "-t mangle -S"];
    let want = iptables_listing("i", &TUTORIAL, &forms);
    for (form, want) in forms.iter().zip(want) {
        assert_eq!(rvs_iptables(&sock, form).1, want, "rvs-iptables {form}");
    }

    // Deleting and flushing take effect as they do in iptables.
    paste(&sock, "iptables -t mangle -D PREROUTING 2");
    let failed = in_ns(c, &["curl", "-s", "-m", "1", &format!("http://{fwm}:443/")]);
    assert!(!failed.status.success(), "443 unmarked again after -D");
    paste(&sock, "iptables -t mangle -F");
    assert_eq!(rvs_iptables(&sock, "-t mangle -S PREROUTING").1, "-P PREROUTING ACCEPT\n");

    // Outside the subset: refused, naming what, and nothing changes.
    for (args, want) in [
        ("-t mangle -A PREROUTING -p tcp -j DROP", "-j DROP"),
        ("-A PREROUTING -p tcp --dport 80 -j MARK --set-mark 1", "table `filter'"),
        ("-t mangle -A PREROUTING -p tcp -m state --state NEW -j MARK --set-mark 1", "-m state"),
    ] {
        let (code, _, err) = rvs_iptables(&sock, args);
        assert_eq!(code, 2, "{args}: {err}");
        assert!(err.starts_with("rvs-iptables: ") && err.contains(want), "{args}: {err}");
    }
    assert_eq!(rvs_iptables(&sock, "-t mangle -S PREROUTING").1, "-P PREROUTING ACCEPT\n");
}

/// The tutorial's directors that are real servers, marked by rvs-iptables: each
/// marks port 80 of the VIP unless the frame comes from the other director, so the
/// master balances over all four and the backup serves what it is sent.
#[test]
fn the_directors_mac_source_lines_keep_them_from_balancing_twice() {
    let lab = Lab::start("pair-rs", "j");
    let (client, vip) = (lab.var("CLIENT_NS").to_string(), lab.var("VIP").to_string());
    let c1 = without_fwmarks(&lab, lab.var("CONFIG1"), "rs1-bare");
    let c2 = without_fwmarks(&lab, lab.var("CONFIG2"), "rs2-bare");
    let d1 = director(&lab, 1, Path::new(&c1));
    let d2 = director(&lab, 2, Path::new(&c2));
    for (d, other) in [(&d1, lab.var("MAC2")), (&d2, lab.var("MAC1"))] {
        paste(
            &d.sock,
            &format!(
                "iptables -t mangle -I PREROUTING -d {vip} -p tcp -m tcp --dport 80 -m mac ! --mac-source {other} -j MARK --set-mark 0x3"
            ),
        );
    }
    wait_state(&d1, "MASTER", Duration::from_secs(15));
    wait_state(&d2, "BACKUP", Duration::from_secs(15));
    let got: Vec<String> = (0..12)
        .filter_map(|_| {
            let o = in_ns(&client, &["curl", "-s", "-m", "2", &format!("http://{vip}/")]);
            let b = String::from_utf8_lossy(&o.stdout).trim().to_string();
            (o.status.success() && !b.is_empty()).then_some(b)
        })
        .collect();
    assert_eq!(got.len(), 12, "every request served: {got:?}");
    for who in ["director1", "director2", "server1", "server2"] {
        assert!(got.iter().any(|b| b == who), "{who} served none of {got:?}");
    }
    let stats = rvsadm_ok(&d2.sock, "-L -n --stats");
    let scheduled: u64 = stats
        .lines()
        .find(|l| l.starts_with("FWM"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert_eq!(scheduled, 0, "the backup balanced what the master sent it:\n{stats}");
    let rule = rvs_iptables(&d1.sock, "-t mangle -S PREROUTING").1;
    assert_eq!(
        rule,
        format!(
            "-P PREROUTING ACCEPT\n-A PREROUTING -d {vip}/32 -p tcp -m tcp --dport 80 -m mac ! --mac-source {} -j MARK --set-xmark 0x3/0xffffffff\n",
            lab.var("MAC2")
        )
    );
}
