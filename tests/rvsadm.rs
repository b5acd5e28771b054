//! rvsadm against a running rvsd: ipvsadm's command lines from the LVS
//! tutorials unchanged, byte-identical listings, save / clear / restore, counters
//! zeroed, reloads (invalid files rejected, valid ones applied, SIGHUP), no daemon.
//! A quiet rvsd on a net_ring vdev serves the control-plane tests; the reload under
//! load runs in the nat lab with real clients.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const VIP: &str = "198.18.0.10";
const RS1: &str = "198.18.1.11";
const RS2: &str = "198.18.1.12";

fn quiet_config(id: &str, services: &str) -> String {
    let rest = format!(
        "\n[workers]\nlcores = [1]\nidle_sleep_us = 200\nconnections = 4096\n\n\
         [control]\nsocket = \"/run/rvs/test-{id}.sock\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n{services}\n"
    );
    vdev_config(&format!("net_ring_{id}"), &rest)
}

struct Quiet {
    daemon: Daemon,
    sock: String,
    config: PathBuf,
}

fn quiet(tag: &str, services: &str) -> Quiet {
    require_root();
    let id = unique_id(tag);
    let dir = scratch_dir("rvsadm", &id);
    let config = dir.join("rvsd.toml");
    std::fs::write(&config, quiet_config(&id, services)).unwrap();
    let mut daemon = Daemon::start(None, &config, &[]);
    daemon.wait_ready(Duration::from_secs(30));
    Quiet { daemon, sock: socket_path(&id), config }
}

fn header() -> &'static str {
    concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    )
}

fn dest_line(name: &str, fwd: &str, w: u32, a: u32, i: u32) -> String {
    format!("  -> {name:<28} {fwd:<7} {w:<6} {a:<10} {i:<10}\n")
}

#[test]
fn no_daemon_is_one_clear_line() {
    // ipvsadm without IPVS: "Can't initialize ipvs: ...", exit 2.
    let (code, out, err) = rvsadm("/run/rvs/nobody-here.sock", "-ln");
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("Can't initialize ipvs: cannot reach rvsd at /run/rvs/nobody-here.sock"), "{err}");
}

#[test]
fn every_ipvsadm_line_of_the_lvs_labs() {
    let q = quiet("l", "");
    let s = &q.sock;
    let run = |line: &str| rvsadm_ok(s, line);

    // NAT, two-arm.
    run(&format!("-A -t {VIP}:80 -s wlc"));
    run(&format!("-a -t {VIP}:80 -r {RS1} -m -w 3"));
    run(&format!("-a -t {VIP}:80 -r {RS2} -m -w 1"));
    let want = format!(
        "{}TCP  {VIP}:80 wlc\n{}{}",
        header(),
        dest_line(&format!("{RS1}:80"), "Masq", 3, 0, 0),
        dest_line(&format!("{RS2}:80"), "Masq", 1, 0, 0)
    );
    assert_eq!(run("-L -n"), want);
    run("-C");

    // NAT, one NIC: the tutorial's listing, byte for byte.
    run(&format!("-A -t {VIP}:80 -s rr"));
    run(&format!("-a -t {VIP}:80 -r {RS1}:80 -m"));
    run(&format!("-a -t {VIP}:80 -r {RS2}:80 -m"));
    let want = format!(
        "{}TCP  {VIP}:80 rr\n{}{}",
        header(),
        dest_line(&format!("{RS1}:80"), "Masq", 1, 0, 0),
        dest_line(&format!("{RS2}:80"), "Masq", 1, 0, 0)
    );
    assert_eq!(run("-ln"), want);
    run("-C");

    // TUN and DR.
    for (flag, fwd) in [("-i", "Tunnel"), ("-g", "Route")] {
        run(&format!("-A -t {VIP}:80 -s rr"));
        run(&format!("-a -t {VIP}:80 -r {RS1}:80 {flag}"));
        run(&format!("-a -t {VIP}:80 -r {RS2}:80 {flag}"));
        let l = run("-ln");
        assert!(
            l.ends_with(&format!(
                "{}{}",
                dest_line(&format!("{RS1}:80"), fwd, 1, 0, 0),
                dest_line(&format!("{RS2}:80"), fwd, 1, 0, 0)
            )),
            "{l}"
        );
        run("-C");
    }

    // Persistence.
    run(&format!("-A -t {VIP}:80 -s rr -p 300"));
    run(&format!("-A -t {VIP}:0 -s rr -p 300"));
    let l = run("-ln");
    assert!(l.contains(&format!("TCP  {VIP}:80 rr persistent 300\n")), "{l}");
    assert!(l.contains(&format!("TCP  {VIP}:0 rr persistent 300\n")), "{l}");
    run("-C");

    // Firewall marks, and passive FTP.
    run("-A -f 1 -s rr -p 1800");
    run(&format!("-a -f 1 -r {RS1} -g"));
    run("-A -f 21 -s rr -p 1800");
    let l = run("-ln");
    assert!(
        l.contains(&format!("FWM  1 rr persistent 1800\n{}", dest_line(&format!("{RS1}:0"), "Route", 1, 0, 0))),
        "{l}"
    );
    assert!(l.contains("FWM  21 rr persistent 1800\n"), "{l}");
    assert_eq!(
        run("-lcn"),
        "IPVS connection entries\npro expire state       source             virtual            destination\n"
    );
    assert_eq!(run("-L --timeout"), "Timeout (tcp tcpfin udp): 900 120 300\n");
    run("--set 3600 60 120");
    assert_eq!(run("-L --timeout"), "Timeout (tcp tcpfin udp): 3600 60 120\n");
    // The kernel's net.ipv4.vs.sloppy_tcp, as `sysctl` prints it.
    let all = |a, b, c| {
        format!(
            "net.ipv4.vs.expire_nodest_conn = {a}\nnet.ipv4.vs.expire_quiescent_template = {b}\nnet.ipv4.vs.sloppy_tcp = {c}\n"
        )
    };
    assert_eq!(run("--sysctl"), all(0, 0, 0));
    run("--sysctl net.ipv4.vs.sloppy_tcp=1");
    run("--sysctl expire_nodest_conn=1");
    assert_eq!(run("--sysctl"), all(1, 0, 1));
}

#[test]
fn save_clear_restore_gives_the_same_save() {
    let q = quiet("s", "");
    let s = &q.sock;
    for line in [
        format!("-A -t {VIP}:80 -s wlc"),
        format!("-a -t {VIP}:80 -r {RS1}:8080 -m -w 3"),
        format!("-a -t {VIP}:80 -r {RS2}:8080 -m -w 1"),
        format!("-A -u {VIP}:53 -s sh -b sh-port"),
        format!("-a -u {VIP}:53 -r {RS1} -g"),
        format!("-A -t {VIP}:0 -s rr -p 600 -M 255.255.255.0"),
        format!("-a -t {VIP}:0 -r {RS2} -i -w 7"),
        "-A -f 21 -s mh -p 1800 -b mh-fallback".to_string(),
        format!("-a -f 21 -r {RS1} -g -w 0"),
    ] {
        rvsadm_ok(s, &line);
    }
    let saved = rvsadm_ok(s, "-Sn");
    assert_eq!(
        saved,
        format!(
            "-A -t {VIP}:0 -s rr -p 600 -M 255.255.255.0\n-a -t {VIP}:0 -r {RS2}:0 -i -w 7\n\
             -A -t {VIP}:80 -s wlc\n-a -t {VIP}:80 -r {RS1}:8080 -m -w 3\n-a -t {VIP}:80 -r {RS2}:8080 -m -w 1\n\
             -A -u {VIP}:53 -s sh -b sh-port\n-a -u {VIP}:53 -r {RS1}:53 -g -w 1\n\
             -A -f 21 -s mh -p 1800 -b mh-fallback\n-a -f 21 -r {RS1}:0 -g -w 0\n"
        )
    );
    let listing = rvsadm_ok(s, "-Ln");
    rvsadm_ok(s, "-C");
    assert_eq!(rvsadm_ok(s, "-Ln"), header());
    let mut child = Command::new(rvsadm_bin()).arg("-R").env("RVSADM_SOCKET", s).stdin(Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(saved.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(rvsadm_ok(s, "-Sn"), saved);
    assert_eq!(rvsadm_ok(s, "-Ln"), listing);
    // A restore with a bad line applies nothing.
    let mut child = Command::new(rvsadm_bin())
        .arg("-R")
        .env("RVSADM_SOCKET", s)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("-A -t {VIP}:99 -s rr\n-a -t {VIP}:98 -r {RS1} -m\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Service not defined"));
    assert_eq!(rvsadm_ok(s, "-Sn"), saved, "nothing of the failed restore was applied");
}

#[test]
fn reload_applies_valid_files_rejects_invalid_ones_and_answers_sighup() {
    let services = format!(
        r#"
[[service]]
protocol = "tcp"
address = "{VIP}"
port = 80
scheduler = "rr"
  [[service.dest]]
  address = "{RS1}"
  forward = "masq"
"#
    );
    let mut q = quiet("r", &services);
    let s = q.sock.clone();
    let before = rvsadm_ok(&s, "-Ln");
    assert!(before.contains(&format!("TCP  {VIP}:80 rr\n")));

    // An invalid file: rejected with the key, nothing changes.
    let good = std::fs::read_to_string(&q.config).unwrap();
    std::fs::write(&q.config, good.replace(&format!("address = \"{RS1}\""), "address = \"198.18.1\"")).unwrap();
    let (code, _, err) = rvsadm(&s, "--reload");
    assert_ne!(code, 0);
    assert!(err.contains("reload rejected, running configuration kept"), "{err}");
    assert!(err.contains("service[0].dest[0].address: invalid IP address \"198.18.1\""), "{err}");
    assert_eq!(rvsadm_ok(&s, "-Ln"), before);

    // A valid file: only the difference is applied.
    let next = format!("{good}\n  [[service.dest]]\n  address = \"{RS2}\"\n  forward = \"masq\"\n  weight = 2\n");
    std::fs::write(&q.config, &next).unwrap();
    let out = rvsadm_ok(&s, "--reload");
    assert_eq!(
        out,
        format!("rvsd reloaded its configuration: 1 change(s)\napplied: -a -t {VIP}:80 -r {RS2}:80 -m -w 2\n")
    );
    assert!(rvsadm_ok(&s, "-Ln").contains(&dest_line(&format!("{RS2}:80"), "Masq", 2, 0, 0)));

    // SIGHUP does the same.
    std::fs::write(&q.config, next.replace("scheduler = \"rr\"", "scheduler = \"wlc\"")).unwrap();
    let pid = q.daemon_pid();
    let _ = Command::new("kill").args(["-HUP", &pid.to_string()]).status();
    let t0 = std::time::Instant::now();
    while !rvsadm_ok(&s, "-Ln").contains(&format!("TCP  {VIP}:80 wlc\n")) {
        assert!(t0.elapsed() < Duration::from_secs(5), "SIGHUP did not reload:\n{}", q.daemon.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Counters: -Z on a quiet daemon leaves zeros; --stats prints ipvsadm's columns.
    rvsadm_ok(&s, "-Z");
    let stats = rvsadm_ok(&s, "-L -n --stats");
    assert!(
        stats.contains("Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n"),
        "{stats}"
    );
    let zeros = format!("{:<33}{:>9}{:>9}{:>9}{:>9}{:>9}\n", format!("TCP  {VIP}:80"), 0, 0, 0, 0, 0);
    assert!(stats.contains(&zeros), "{stats}");
    let (code, _, err) = rvsadm(&s, "-Z -t 198.18.0.10:81");
    assert_eq!((code, err.as_str()), (255, "No such service\n"));
}

impl Quiet {
    fn daemon_pid(&mut self) -> u32 {
        self.daemon.pid().expect("running")
    }
}

/// Every error rvsadm can give (its argument parser's and the daemon's model's):
/// ipvsadm's words where ipvsadm has the error, alone on one line of stderr, nothing
/// on stdout, ipvsadm's exit status (2 for a command line that does not parse, 255
/// for one the daemon refuses, 1 for a listing that cannot be made), and the
/// configuration unchanged (`-S -n` is the same before and after).
#[test]
fn every_error_is_one_clear_line_and_changes_nothing() {
    let q = quiet("e", "");
    let s = &q.sock;
    rvsadm_ok(s, &format!("-A -t {VIP}:80 -s rr"));
    rvsadm_ok(s, &format!("-a -t {VIP}:80 -r {RS1}:8080 -m -w 2"));
    rvsadm_ok(s, "-A -f 7 -s sh -p 60");
    let saved = rvsadm_ok(s, "-S -n");
    let cases: &[(&str, i32, &str)] = &[
        // The command line.
        ("-n", 2, "no command specified (one of -A -E -D -C -R -S -a -e -d -L -Z --set)"),
        ("--start-daemon master", 2, "--start-daemon needs --mcast-interface"),
        ("--start-daemon master --mcast-interface eth9", 255, "--mcast-interface eth9: no port with a kernel interface"),
        ("--start-daemon leader --mcast-interface eth9", 2, "illegal start-daemon parameter specified"),
        ("--bogus", 2, "--bogus: unknown option"),
        ("-A -a -t 198.18.0.10:81", 2, "only one command may be given"),
        ("-A -t", 2, "option -t requires an argument"),
        ("-A -t 198.18.0:80", 2, "illegal virtual server address[:port] specified"),
        ("-A -t 198.18.0.10:70000", 2, "illegal virtual server address[:port] specified"),
        ("-A -t 198.18.0.10:0 -s rr", 2, "Zero port specified for non-persistent service"),
        ("-A -f 0", 2, "invalid fwmark value `0' specified"),
        ("-A -f x", 2, "invalid fwmark value `x' specified"),
        ("-A -t 198.18.0.10:81 -p 60 -M 255.255.0", 2, "illegal virtual server persistent mask specified"),
        ("-a -t 198.18.0.10:80 -r 198.18.1.12 -w 70000", 2, "illegal weight specified"),
        ("-a -t 198.18.0.10:80 -r 198.18.1.12 -x many", 2, "illegal u_threshold specified"),
        ("-a -t 198.18.0.10:80 -r 198.18.1.300", 2, "illegal real server address[:port] specified"),
        ("-A -t 198.18.0.10:81 -Q", 2, "-Q: unknown option"),
        ("-A -s rr", 2, "no virtual service specified (-t, -u or -f)"),
        ("-a -t 198.18.0.10:80", 2, "no real server specified (-r)"),
        ("--set 1 2", 2, "--set option requires 3 timeout values"),
        ("--set 1 2 x", 2, "invalid timeout value `x' specified"),
        ("--sysctl sloppy_tcp=2", 255, "sloppy_tcp: 2 is not 0 or 1"),
        ("--sysctl sloppy_sctp=1", 255, "no such setting: sloppy_sctp (known: sloppy_tcp, expire_nodest_conn, expire_quiescent_template)"),
        // The daemon's model: libipvs' `ipvs_strerror` words.
        ("-A -t 198.18.0.10:80 -s rr", 255, "Service already exists"),
        ("-A -t 198.18.0.10:81 -s fastest", 255, "Scheduler or persistence engine not found"),
        ("-E -t 198.18.0.10:80 -s fastest", 255, "Scheduler or persistence engine not found"),
        ("-A -t 198.18.0.10:81 -s rr -M 255.255.255.0", 255, "netmask (-M) only applies to a persistent service"),
        ("-E -t 198.18.0.10:99 -s rr", 255, "No such service"),
        ("-D -t 198.18.0.10:99", 255, "No such service"),
        ("-a -t 198.18.0.10:99 -r 198.18.1.12 -m", 255, "Service not defined"),
        ("-a -t 198.18.0.10:80 -r 198.18.1.11:8080 -m", 255, "Destination already exists"),
        (
            "-a -t 198.18.0.10:80 -r 198.18.1.12:8080 -g",
            255,
            "direct routing (-g) cannot map ports: real server port 8080 differs from the virtual port 80; use masquerading (-m) to map ports",
        ),
        ("-a -t 198.18.0.10:80 -r 198.18.1.12 -m -x 1 -y 5", 255, "Illegal thresholds"),
        ("-e -t 198.18.0.10:80 -r 198.18.1.99 -m", 255, "No such destination"),
        ("-d -t 198.18.0.10:80 -r 198.18.1.99", 255, "No such destination"),
        ("-Z -t 198.18.0.10:99", 255, "No such service"),
        ("-L -n -t 198.18.0.10:99", 1, "No such service"),
    ];
    let mut failures = Vec::new();
    for (args, code, want) in cases {
        let (got_code, out, err) = rvsadm(s, args);
        let ok = got_code == *code && out.is_empty() && err.starts_with(want) && err.lines().count() == 1;
        if !ok {
            failures.push(format!(
                "rvsadm {args:?}: exit {got_code}, stdout {out:?}, stderr {err:?} (want exit {code}, {want:?})"
            ));
        }
        assert_eq!(rvsadm_ok(s, "-S -n"), saved, "rvsadm {args:?} changed the configuration");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // ipvsadm alone lists the table.
    assert_eq!(rvsadm(s, "").1, rvsadm_ok(s, "-L -n"));
    // A restore with one bad line applies none of its lines.
    let mut child = Command::new(rvsadm_bin())
        .arg("-R")
        .env("RVSADM_SOCKET", s)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rvsadm -R");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("-A -t {VIP}:90 -s rr\n-a -t {VIP}:90 -r {RS2} -m -w 99999\n").as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("rvsadm -R");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!((out.status.code(), err.as_ref()), (Some(2), "line 2: illegal weight specified\n"));
    assert_eq!(rvsadm_ok(s, "-S -n"), saved, "a failed restore applied nothing");
}

/// `--nosort` shows what the kernel keeps: services as added, each one's real
/// servers newest first (the order rr and wlc walk); without it, ipvsadm's sort.
#[test]
fn nosort_lists_the_kernel_order_and_sorted_lists_ipvsadms() {
    let q = quiet("o", "");
    let s = &q.sock;
    rvsadm_ok(s, &format!("-A -t {VIP}:81 -s rr"));
    rvsadm_ok(s, &format!("-A -t {VIP}:80 -s sh -b sh-port -p 30"));
    for rs in [RS1, RS2] {
        rvsadm_ok(s, &format!("-a -t {VIP}:81 -r {rs} -m"));
    }
    let line = |rs: &str| dest_line(&format!("{rs}:81"), "Masq", 1, 0, 0);
    let sorted = rvsadm_ok(s, "-L -n");
    let want_sorted = format!(
        "IP Virtual Server version 1.2.1 (size=4096)\n{}TCP  {VIP}:80 sh (sh-port) persistent 30\nTCP  {VIP}:81 rr\n{}{}",
        &header()[header().find('\n').unwrap() + 1..],
        line(RS1),
        line(RS2)
    );
    assert_eq!(sorted, want_sorted);
    let unsorted = rvsadm_ok(s, "-L -n --nosort");
    let want_unsorted = format!(
        "IP Virtual Server version 1.2.1 (size=4096)\n{}TCP  {VIP}:81 rr\n{}{}TCP  {VIP}:80 sh (sh-port) persistent 30\n",
        &header()[header().find('\n').unwrap() + 1..],
        line(RS2),
        line(RS1)
    );
    assert_eq!(unsorted, want_unsorted);
    assert_eq!(
        rvsadm_ok(s, "-S -n --nosort"),
        format!(
            "-A -t {VIP}:81 -s rr\n-a -t {VIP}:81 -r {RS2}:81 -m -w 1\n-a -t {VIP}:81 -r {RS1}:81 -m -w 1\n\
             -A -t {VIP}:80 -s sh -p 30 -b sh-port\n"
        )
    );
}

/// A reload names each change it reverts of those made with rvsadm; `--dry-run`
/// says what a reload would do and changes nothing; `--keep` takes only the file's
/// edits and keeps the rest of what rvsadm changed.
#[test]
fn reloads_name_what_they_revert_dry_runs_change_nothing_and_keep_keeps() {
    let services = format!(
        "\n[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}\"\nport = 80\nscheduler = \"rr\"\n  \
         [[service.dest]]\n  address = \"{RS1}\"\n  forward = \"masq\"\n"
    );
    let q = quiet("k", &services);
    let s = &q.sock;
    let file_state = rvsadm_ok(s, "-S -n");
    let runtime = || {
        rvsadm_ok(s, &format!("-A -t {VIP}:81 -s wlc"));
        rvsadm_ok(s, &format!("-e -t {VIP}:80 -r {RS1} -m -w 5"));
        rvsadm_ok(s, "--set 600 60 60");
    };
    runtime();
    let changed = rvsadm_ok(s, "-S -n");
    let timeouts = rvsadm_ok(s, "-L --timeout");
    let dry = rvsadm_ok(s, "--reload --dry-run");
    assert_eq!(
        dry,
        format!(
            "rvsd would apply 3 change(s) (dry run: nothing changed)\n\
             would revert: --set 900 120 300\n\
             would revert: -D -t {VIP}:81\n\
             would revert: -e -t {VIP}:80 -r {RS1}:80 -m -w 1\n"
        )
    );
    assert_eq!(
        (rvsadm_ok(s, "-S -n"), rvsadm_ok(s, "-L --timeout")),
        (changed, timeouts),
        "a dry run changed something"
    );
    let done = rvsadm_ok(s, "--reload");
    assert_eq!(
        done,
        dry.replace(
            "rvsd would apply 3 change(s) (dry run: nothing changed)",
            "rvsd reloaded its configuration: 3 change(s)"
        )
        .replace("would revert", "reverted")
    );
    assert_eq!(rvsadm_ok(s, "-S -n"), file_state);
    // Keep: the file gains RS2; what rvsadm changed stays.
    runtime();
    let cfg = std::fs::read_to_string(&q.config).unwrap();
    std::fs::write(&q.config, format!("{cfg}\n  [[service.dest]]\n  address = \"{RS2}\"\n  forward = \"masq\"\n"))
        .unwrap();
    assert_eq!(
        rvsadm_ok(s, "--reload --keep"),
        format!("rvsd reloaded its configuration: 1 change(s)\napplied: -a -t {VIP}:80 -r {RS2}:80 -m -w 1\n")
    );
    let kept = rvsadm_ok(s, "-S -n");
    assert!(kept.contains(&format!("-A -t {VIP}:81 -s wlc\n")), "{kept}");
    assert!(kept.contains(&format!("-a -t {VIP}:80 -r {RS1}:80 -m -w 5\n")), "{kept}");
    assert!(kept.contains(&format!("-a -t {VIP}:80 -r {RS2}:80 -m -w 1\n")), "{kept}");
    assert_eq!(rvsadm_ok(s, "-L --timeout"), "Timeout (tcp tcpfin udp): 600 60 60\n");
}
