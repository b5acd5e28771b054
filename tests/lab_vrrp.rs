//! Director pairs (scripts/lab pair, pair6, pair-rs): two rvsd sharing the VIP by VRRP, with
//! each other and with stock keepalived; failover on a crash and on a clean stop,
//! preemption and nopreempt, VRRP version 3's short intervals; a BACKUP that
//! answers neither ARP nor ping for the VIP and counts every bad advertisement by
//! its reason; and the tutorials' directors that are also real servers, with and
//! without the firewall marks that keep them from balancing twice.
//!
//! Timings are bounded generously (a loaded CI machine must not fail them): the
//! protocol's own figures are measured by perf/failover.

mod common;

use appliance::net::ethernet::EthernetAddress;
use appliance::net::vrrp::Advert;
use common::pair::*;
use common::*;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous bound for any takeover (the protocol's is 3 x 1 s + skew at most).
const TAKEOVER: Duration = Duration::from_secs(15);

/// One request to the VIP: the body, if served within 300 ms.
fn ask(client: &str, vip: &str) -> Option<String> {
    let o = in_ns(client, &["curl", "-s", "-m", "0.3", &format!("http://{vip}/")]);
    let body = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && !body.is_empty()).then_some(body)
}

/// Requests every 50 ms from `since` until one is served; how long it took and by whom.
fn first_served(client: &str, vip: &str, since: Instant, limit: Duration) -> (Duration, String) {
    while since.elapsed() < limit {
        if let Some(b) = ask(client, vip) {
            return (since.elapsed(), b);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing served within {limit:?}");
}

/// The MAC the client's neighbour table holds for `ip`.
fn neigh_mac(client: &str, ip: &str) -> String {
    let o = in_ns(client, &["ip", "neigh", "show", ip]);
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    t.split_whitespace().skip_while(|w| *w != "lladdr").nth(1).unwrap_or("").to_string()
}

/// Waits until a served request leaves the client's neighbour entry for the VIP at
/// `mac` (gratuitous ARP moved it).
fn wait_neigh(client: &str, vip: &str, mac: &str, limit: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        let _ = ask(client, vip);
        if neigh_mac(client, vip) == mac {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the client's neighbour entry for {vip} is {}, not {mac}", neigh_mac(client, vip));
}

#[test]
fn a_pair_fails_over_on_a_crash_and_a_clean_stop_and_the_master_takes_back_unless_nopreempt() {
    let lab = Lab::start("pair", "vp");
    let (client, vip) = (lab.var("CLIENT_NS").to_string(), lab.var("VIP").to_string());
    let (mac1, mac2) = (lab.var("MAC1").to_string(), lab.var("MAC2").to_string());
    let mut d1 = director(&lab, 1, Path::new(lab.var("CONFIG1")));
    let d2 = director(&lab, 2, Path::new(lab.var("CONFIG2")));
    wait_state(&d1, "MASTER", TAKEOVER);
    wait_state(&d2, "BACKUP", TAKEOVER);
    let (_, body) = first_served(&client, &vip, Instant::now(), TAKEOVER);
    assert!(body.starts_with("server"), "{body}");
    wait_neigh(&client, &vip, &mac1, TAKEOVER);

    // The master dies: the backup owns the VIP and serves.
    d1.rvsd.kill();
    let (gap, body) = first_served(&client, &vip, Instant::now(), TAKEOVER);
    eprintln!("crash: served again after {gap:?}");
    assert!(body.starts_with("server"), "{body}");
    assert_eq!(state(&d2), "MASTER");
    wait_neigh(&client, &vip, &mac2, TAKEOVER);

    // Restarted with the higher priority, it takes the VIP back.
    let mut d1 = director(&lab, 1, Path::new(lab.var("CONFIG1")));
    wait_state(&d1, "MASTER", TAKEOVER);
    wait_state(&d2, "BACKUP", TAKEOVER);
    wait_neigh(&client, &vip, &mac1, TAKEOVER);

    // A clean stop says priority 0: the backup takes over within its skew.
    let lb2 = lab.var("LB2_NS").to_string();
    let zero_before = metric(&lb2, "rvs_vrrp_priority_zero_received_total{instance=\"VI_1\"}");
    d1.rvsd.terminate(Duration::from_secs(10)).expect("rvsd stops on SIGTERM");
    let (gap, _) = first_served(&client, &vip, Instant::now(), TAKEOVER);
    eprintln!("clean stop: served again after {gap:?}");
    assert_eq!(state(&d2), "MASTER");
    assert_eq!(metric(&lb2, "rvs_vrrp_priority_zero_received_total{instance=\"VI_1\"}"), zero_before + 1.0);

    // With nopreempt (state BACKUP), the returning director leaves the master be.
    let nopreempt = variant(
        &lab,
        lab.var("CONFIG1"),
        "nopreempt",
        &[("state = \"MASTER\"", "state = \"BACKUP\"\nnopreempt = true")],
    );
    let d1 = director(&lab, 1, &nopreempt);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!((state(&d1).as_str(), state(&d2).as_str()), ("BACKUP", "MASTER"));
    assert!(ask(&client, &vip).is_some_and(|b| b.starts_with("server")));
    assert_eq!(neigh_mac(&client, &vip), mac2);

    // VRRP is reloadable: preemption back on and a higher priority, and it takes over.
    let text = std::fs::read_to_string(&nopreempt).unwrap();
    std::fs::write(&nopreempt, text.replace("nopreempt = true", "").replace("priority = 150", "priority = 250"))
        .unwrap();
    let out = rvsadm_ok(&d1.sock, "--reload");
    assert!(out.contains("reloaded"), "{out}");
    wait_state(&d1, "MASTER", TAKEOVER);
    wait_state(&d2, "BACKUP", TAKEOVER);
    let (_, listing, _) = rvsadm(&d1.sock, "--vrrp");
    assert!(listing.lines().nth(1).is_some_and(|l| l.split_whitespace().nth(3) == Some("250")), "{listing}");
    wait_neigh(&client, &vip, &mac1, TAKEOVER);
}

#[test]
fn version_3_with_a_tenth_of_a_second_fails_over_in_under_a_second_or_so() {
    let lab = Lab::start("pair", "v3");
    let (client, vip) = (lab.var("CLIENT_NS").to_string(), lab.var("VIP").to_string());
    let v3 = [
        ("advert_int = 1\n", "advert_int = 0.1\nversion = 3\n"),
        ("authentication = { auth_type = \"PASS\", auth_pass = \"rvs-pair\" }\n", ""),
    ];
    let c1 = variant(&lab, lab.var("CONFIG1"), "v3-1", &v3);
    // keepalived's notify scripts: the backup records its transitions.
    let notes = lab.scratch("vrrp").join("notify.log");
    let _ = std::fs::remove_file(&notes);
    let notify = format!("virtual_ipaddress = [\"198.18.0.10\"]\nnotify = \"echo >> {}\"\n", notes.display());
    let mut v3_2 = v3.to_vec();
    v3_2.push(("virtual_ipaddress = [\"198.18.0.10\"]\n", &notify));
    let c2 = variant(&lab, lab.var("CONFIG2"), "v3-2", &v3_2);
    let mut d1 = director(&lab, 1, &c1);
    let d2 = director(&lab, 2, &c2);
    wait_state(&d1, "MASTER", TAKEOVER);
    wait_state(&d2, "BACKUP", TAKEOVER);
    let (_, body) = first_served(&client, &vip, Instant::now(), TAKEOVER);
    assert!(body.starts_with("server"));
    let (_, out, _) = rvsadm(&d2.sock, "--vrrp");
    assert!(out.lines().nth(1).is_some_and(|l| l.split_whitespace().nth(4) == Some("3")), "{out}");
    d1.rvsd.kill();
    let (gap, _) = first_served(&client, &vip, Instant::now(), TAKEOVER);
    eprintln!("v3 0.1 s crash: served again after {gap:?}");
    assert_eq!(state(&d2), "MASTER");
    let t0 = Instant::now();
    while !std::fs::read_to_string(&notes).unwrap_or_default().contains("INSTANCE VI_1 MASTER 100") {
        assert!(t0.elapsed() < Duration::from_secs(5), "notify: {:?}", std::fs::read_to_string(&notes));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stock keepalived (VRRP only) in the lab's "ka" namespace.
struct Keepalived {
    child: Option<Child>,
    dir: PathBuf,
    ns: String,
}

impl Keepalived {
    fn start(lab: &Lab, state: &str, priority: u8) -> Keepalived {
        let conf = format!(
            "global_defs {{\n    router_id rvs-lab\n}}\n\
             vrrp_instance VI_1 {{\n    state {state}\n    interface eth0\n    virtual_router_id 51\n    \
             priority {priority}\n    advert_int 1\n    authentication {{\n        auth_type PASS\n        \
             auth_pass rvs-pair\n    }}\n    virtual_ipaddress {{\n        {}/32\n    }}\n}}\n",
            lab.var("VIP")
        );
        Keepalived::start_with(lab, &conf)
    }

    /// keepalived with the configuration `conf`.
    fn start_with(lab: &Lab, conf: &str) -> Keepalived {
        let dir = lab.scratch("keepalived");
        std::fs::write(dir.join("keepalived.conf"), conf).unwrap();
        let ns = lab.var("KA_NS").to_string();
        let _ = in_ns(&ns, &["ip", "link", "set", "eth0", "up"]);
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, "keepalived", "-n", "-l", "-P", "-D", "-f"])
            .arg(dir.join("keepalived.conf"))
            .arg("-p")
            .arg(dir.join("keepalived.pid"))
            .arg("-r")
            .arg(dir.join("vrrp.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("keepalived (installed by scripts/setup)");
        Keepalived { child: Some(child), dir, ns }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The host dies: keepalived and its VRRP child killed, the link down (the VIP
    /// it held goes with it).
    fn crash(&mut self) {
        // The parent and its VRRP child (forked: the same command line), at once:
        // killing the child alone has the parent start another.
        let conf = self.dir.join("keepalived.conf");
        let _ = Command::new("pkill").arg("-KILL").arg("-f").arg(conf.to_str().unwrap()).status();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for f in ["keepalived.pid", "vrrp.pid"] {
            let _ = std::fs::remove_file(self.dir.join(f));
        }
        let _ = in_ns(&self.ns, &["ip", "link", "set", "eth0", "down"]);
        let _ = in_ns(&self.ns, &["ip", "addr", "del", "198.18.0.10/32", "dev", "eth0"]);
        let _ = in_ns(&self.ns, &["ip", "-6", "addr", "del", "2001:2::10/64", "dev", "eth0"]);
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.crash();
    }
}

/// The MAC of `ns`'s eth0.
fn mac_of(ns: &str) -> String {
    let o = in_ns(ns, &["cat", "/sys/class/net/eth0/address"]);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn rvsd_and_keepalived_take_over_from_each_other() {
    let lab = Lab::start("pair", "vk");
    let (client, vip) = (lab.var("CLIENT_NS").to_string(), lab.var("VIP").to_string());
    let mac1 = lab.var("MAC1").to_string();
    let ka_mac = mac_of(lab.var("KA_NS"));

    // rvsd MASTER (150), keepalived BACKUP (100).
    let mut d1 = director(&lab, 1, Path::new(lab.var("CONFIG1")));
    wait_state(&d1, "MASTER", TAKEOVER);
    let mut ka = Keepalived::start(&lab, "BACKUP", 100);
    std::thread::sleep(Duration::from_secs(3));
    assert!(ka.log().contains("Entering BACKUP STATE"), "{}", ka.log());
    assert!(!ka.log().contains("Entering MASTER STATE"), "keepalived ignored rvsd's adverts:\n{}", ka.log());
    wait_neigh(&client, &vip, &mac1, TAKEOVER);
    // rvsd dies: keepalived takes the VIP.
    d1.rvsd.kill();
    let t0 = Instant::now();
    while ask(&client, &vip).as_deref() != Some("keepalived") {
        assert!(t0.elapsed() < TAKEOVER, "keepalived did not take over:\n{}", ka.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("rvsd crash -> keepalived serves after {:?}", t0.elapsed());
    wait_neigh(&client, &vip, &ka_mac, TAKEOVER);
    // rvsd returns with the higher priority and preempts keepalived.
    let d1 = director(&lab, 1, Path::new(lab.var("CONFIG1")));
    wait_state(&d1, "MASTER", TAKEOVER);
    wait_neigh(&client, &vip, &mac1, TAKEOVER);
    assert!(ask(&client, &vip).is_some_and(|b| b.starts_with("server")));
    assert!(ka.log().matches("Entering BACKUP STATE").count() >= 2, "{}", ka.log());

    // The reverse: keepalived MASTER (200) preempts rvsd, ...
    ka.crash();
    drop(ka);
    let mut ka = Keepalived::start(&lab, "MASTER", 200);
    wait_state(&d1, "BACKUP", TAKEOVER);
    wait_neigh(&client, &vip, &ka_mac, TAKEOVER);
    assert_eq!(ask(&client, &vip).as_deref(), Some("keepalived"));
    // ... dies, and rvsd takes over ...
    ka.crash();
    let (gap, body) = first_served(&client, &vip, Instant::now(), TAKEOVER);
    eprintln!("keepalived crash -> rvsd serves after {gap:?}");
    assert!(body.starts_with("server") || body == "keepalived", "{body}");
    wait_state(&d1, "MASTER", TAKEOVER);
    wait_neigh(&client, &vip, &mac1, TAKEOVER);
    // ... and keepalived, back, preempts again.
    drop(ka);
    let ka = Keepalived::start(&lab, "MASTER", 200);
    wait_state(&d1, "BACKUP", TAKEOVER);
    wait_neigh(&client, &vip, &ka_mac, TAKEOVER);
    drop(ka);
}

/// The pair over IPv6 (scripts/lab pair6): a VRRP version 3 instance over IPv6
/// between two rvsd, then with keepalived; each new master announces VIP6 by
/// unsolicited neighbour advertisements, which move the client's neighbour entry.
#[test]
fn an_ipv6_pair_fails_over_and_takes_over_from_keepalived() {
    let lab = Lab::start("pair6", "v6");
    let client = lab.var("CLIENT_NS").to_string();
    let (vip6, url) = (lab.var("VIP6").to_string(), format!("[{}]", lab.var("VIP6")));
    let (mac1, mac2) = (lab.var("MAC1").to_string(), lab.var("MAC2").to_string());
    let ka_mac = mac_of(lab.var("KA_NS"));
    // Requests until one is served with the client's neighbour entry for VIP6 at `mac`.
    let wait_neigh6 = |mac: &str| {
        let t0 = Instant::now();
        while t0.elapsed() < TAKEOVER {
            let _ = ask(&client, &url);
            if neigh_mac(&client, &vip6) == mac {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the client's neighbour entry for {vip6} is {}, not {mac}", neigh_mac(&client, &vip6));
    };
    let served = || -> Vec<String> { (0..4).filter_map(|_| ask(&client, &url)).collect() };
    // With no traffic (so no neighbour unreachability detection): only an
    // unsolicited advertisement moves the client's entry to `mac`.
    let announced = |mac: &str| {
        let t0 = Instant::now();
        while neigh_mac(&client, &vip6) != mac {
            assert!(t0.elapsed() < TAKEOVER, "no advertisement moved {vip6} to {mac}: {}", neigh_mac(&client, &vip6));
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    let mut d1 = director(&lab, 1, Path::new(lab.var("CONFIG1")));
    let d2 = director(&lab, 2, Path::new(lab.var("CONFIG2")));
    wait_state(&d1, "MASTER", TAKEOVER);
    wait_state(&d2, "BACKUP", TAKEOVER);
    wait_neigh6(&mac1);
    let (_, listing, _) = rvsadm(&d2.sock, "--vrrp");
    assert!(listing.contains("fe80::ff:fe00:102"), "the master heard from its link-local address:\n{listing}");
    // The director's own kernel is reachable on its DIP6 (the exception path).
    assert_eq!(ask(&client, "[2001:2::2]:8080").as_deref(), Some("director1"));
    let mut got = served();
    got.sort();
    assert_eq!(got, ["server1", "server1", "server2", "server2"], "rr over both real servers through director 1");

    // Director 1 dies: director 2 takes VIP6 and tells the client.
    d1.rvsd.kill();
    let t0 = Instant::now();
    wait_state(&d2, "MASTER", TAKEOVER);
    announced(&mac2);
    eprintln!("rvsd crash -> the other rvsd holds VIP6 after {:?}", t0.elapsed());
    assert!(served().iter().all(|b| b.starts_with("server")));

    // keepalived (priority 200) takes over: it read rvsd's advertisements, and
    // rvsd reads its.
    let conf = "global_defs {\n    router_id rvs-lab6\n}\n\
                vrrp_instance VI_6 {\n    state MASTER\n    interface eth0\n    virtual_router_id 61\n    \
                priority 200\n    advert_int 1\n    virtual_ipaddress {\n        2001:2::10/64\n    }\n}\n";
    let mut ka = Keepalived::start_with(&lab, conf);
    wait_state(&d2, "BACKUP", TAKEOVER);
    announced(&ka_mac);
    assert_eq!(ask(&client, &url).as_deref(), Some("keepalived"));
    assert!(ka.log().contains("received lower priority (100) advert from fe80::ff:fe00:103"), "{}", ka.log());
    // keepalived dies: rvsd is master again and the client follows.
    ka.crash();
    wait_state(&d2, "MASTER", TAKEOVER);
    announced(&mac2);
    assert!(served().iter().all(|b| b.starts_with("server")));
    drop(ka);
}

/// Sends hex frames from the client's eth0.
fn send_frames(client: &str, frames: &[Vec<u8>]) {
    let lines: String =
        frames.iter().map(|f| f.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n").collect();
    let mut send = Command::new("ip")
        .args(["netns", "exec", client, "python3"])
        .arg(repo_root().join("scripts/send-frames.py"))
        .arg("eth0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("send-frames.py");
    send.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
    let out = send.wait_with_output().unwrap();
    assert!(out.status.success(), "send-frames.py: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_backup_answers_no_arp_or_ping_for_the_vip_and_counts_each_bad_advert() {
    let lab = Lab::start("pair", "vb");
    let client = lab.var("CLIENT_NS").to_string();
    let lb2 = lab.var("LB2_NS").to_string();
    let vip: Ipv4Addr = lab.var("VIP").parse().unwrap();
    let mac2: EthernetAddress = lab.var("MAC2").parse().unwrap();
    let d1 = director(&lab, 1, Path::new(lab.var("CONFIG1")));
    let d2 = director(&lab, 2, Path::new(lab.var("CONFIG2")));
    wait_state(&d1, "MASTER", TAKEOVER);
    wait_state(&d2, "BACKUP", TAKEOVER);
    let client_mac: EthernetAddress = mac_of(&client).parse().unwrap();
    let client_ip: Ipv4Addr = lab.var("CLIENT_IP").parse().unwrap();

    // ARP for the VIP (broadcast) and a ping sent straight to the backup's MAC:
    // only the master answers the one, nobody the other.
    let arp = {
        let mut f = vec![0u8; 42];
        f[0..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&client_mac.0);
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f[22..28].copy_from_slice(&client_mac.0);
        f[28..32].copy_from_slice(&client_ip.octets());
        f[38..42].copy_from_slice(&vip.octets());
        f
    };
    let ping = {
        let mut ip = vec![0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 1, 0, 0];
        ip.extend_from_slice(&client_ip.octets());
        ip.extend_from_slice(&vip.octets());
        let sum = appliance::net::checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut icmp = vec![8u8, 0, 0, 0, 0x12, 0x34, 0, 1];
        let s = appliance::net::checksum::checksum(&icmp);
        icmp[2..4].copy_from_slice(&s.to_be_bytes());
        let mut f = mac2.0.to_vec();
        f.extend_from_slice(&client_mac.0);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&icmp);
        f
    };
    let standby = "rvs_lcore_drops_total{lcore=\"1\",reason=\"standby\"}";
    let arp_not = "rvs_lcore_drops_total{lcore=\"1\",reason=\"arp_not_for_us\"}";
    let (standby0, arp0) = (metric(&lb2, standby), metric(&lb2, arp_not));
    let cap = Capture::start(&client, "eth0", &format!("vrrp-{}", lab.id));
    send_frames(&client, &[arp, ping]);
    let frames = cap.stop();
    let arp_replies: Vec<String> = frames
        .iter()
        .filter(|f| f.len() >= 42 && f[12..14] == [8, 6] && f[20..22] == [0, 2] && f[28..32] == vip.octets())
        .map(|f| EthernetAddress::from_bytes(&f[22..28]).to_string())
        .collect();
    assert_eq!(arp_replies, vec![lab.var("MAC1").to_string()], "only the master answers ARP for the VIP");
    let echo_replies =
        frames.iter().filter(|f| ipv4_of(f).is_some_and(|(s, _, p, ip)| s == vip && p == 1 && ip[20] == 0)).count();
    assert_eq!(echo_replies, 0, "the backup answered a ping for the VIP");
    let t0 = Instant::now();
    while metric(&lb2, standby) < standby0 + 1.0 || metric(&lb2, arp_not) < arp0 + 1.0 {
        assert!(t0.elapsed() < Duration::from_secs(5), "the backup's drops did not count the ARP and the ping");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Bad advertisements from the client: each moves its own counter on the backup.
    let good = Advert {
        version: 2,
        vrid: 51,
        priority: 100,
        interval_cs: 100,
        auth_type: 1,
        auth_data: *b"rvs-pair",
        addrs: vec![vip.into()],
    };
    let frame = |a: &Advert| a.frame(client_mac, client_ip.into());
    let mut cases: Vec<(&str, &str, Vec<u8>)> = Vec::new();
    let mut ttl = frame(&good);
    ttl[22] = 64;
    let mut p = appliance::net::ipv4::Packet::new_unchecked(&mut ttl[14..]);
    p.fill_checksum();
    cases.push(("VI_1", "bad_ttl", ttl));
    let mut sum = frame(&good);
    sum[14 + 20 + 6] ^= 0x55;
    cases.push(("VI_1", "bad_checksum", sum));
    cases.push(("VI_1", "bad_version", frame(&Advert { version: 3, auth_type: 0, auth_data: [0; 8], ..good.clone() })));
    cases.push(("", "unknown_vrid", frame(&Advert { vrid: 77, ..good.clone() })));
    cases.push(("VI_1", "auth_mismatch", frame(&Advert { auth_data: *b"intruder", ..good.clone() })));
    cases.push(("VI_1", "interval_mismatch", frame(&Advert { interval_cs: 300, ..good.clone() })));
    cases.push((
        "VI_1",
        "address_mismatch",
        frame(&Advert { addrs: vec![Ipv4Addr::new(198, 18, 0, 99).into()], ..good.clone() }),
    ));
    let mut short = frame(&good);
    short.truncate(short.len() - 6);
    let total = u16::try_from(short.len() - 14).unwrap();
    short[16..18].copy_from_slice(&total.to_be_bytes());
    let mut p = appliance::net::ipv4::Packet::new_unchecked(&mut short[14..]);
    p.fill_checksum();
    cases.push(("VI_1", "truncated", short));
    let series =
        |inst: &str, reason: &str| format!("rvs_vrrp_adverts_dropped_total{{instance=\"{inst}\",reason=\"{reason}\"}}");
    let before: Vec<f64> = cases.iter().map(|(i, r, _)| metric(&lb2, &series(i, r))).collect();
    let received0 = metric(&lb2, "rvs_vrrp_adverts_received_total{instance=\"VI_1\"}");
    send_frames(&client, &cases.iter().map(|(_, _, f)| f.clone()).collect::<Vec<_>>());
    let t0 = Instant::now();
    loop {
        let now: Vec<f64> = cases.iter().map(|(i, r, _)| metric(&lb2, &series(i, r))).collect();
        let moved: Vec<f64> = now.iter().zip(&before).map(|(a, b)| a - b).collect();
        if moved.iter().all(|m| *m == 1.0) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "each bad advert moves its own counter by one: {:?}",
            cases.iter().map(|(_, r, _)| *r).zip(moved).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // None of them counted as received, and the backup stayed BACKUP.
    let received = metric(&lb2, "rvs_vrrp_adverts_received_total{instance=\"VI_1\"}") - received0;
    assert!(received <= 3.0, "only the master's own adverts arrived meanwhile ({received})");
    assert_eq!(state(&d2), "BACKUP");
}

/// `n` requests with a 2-second limit each; the bodies of those served.
fn bodies(client: &str, vip: &str, n: usize) -> Vec<String> {
    (0..n)
        .filter_map(|_| {
            let o = in_ns(client, &["curl", "-s", "-m", "2", &format!("http://{vip}/")]);
            let b = String::from_utf8_lossy(&o.stdout).trim().to_string();
            (o.status.success() && !b.is_empty()).then_some(b)
        })
        .collect()
}

/// Connections a director's service scheduled (`rvsadm -L -n --stats`, first service).
fn scheduled(d: &Director) -> u64 {
    let out = rvsadm_ok(&d.sock, "-L -n --stats");
    out.lines()
        .find(|l| l.starts_with("FWM") || l.starts_with("TCP"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn directors_that_are_real_servers_balance_once_with_the_mac_source_marks_and_loop_without() {
    let lab = Lab::start("pair-rs", "vr");
    let (client, vip) = (lab.var("CLIENT_NS").to_string(), lab.var("VIP").to_string());
    {
        let d1 = director(&lab, 1, Path::new(lab.var("CONFIG1")));
        let d2 = director(&lab, 2, Path::new(lab.var("CONFIG2")));
        wait_state(&d1, "MASTER", TAKEOVER);
        wait_state(&d2, "BACKUP", TAKEOVER);
        let listing = rvsadm_ok(&d1.sock, "-L -n");
        let own = listing.lines().find(|l| l.contains(&format!("-> {}:", lab.var("DIP1"))));
        assert!(own.is_some_and(|l| l.contains("Local")), "the director itself is Local:\n{listing}");
        let got = bodies(&client, &vip, 12);
        assert_eq!(got.len(), 12, "every request served: {got:?}");
        for who in ["director1", "director2", "server1", "server2"] {
            assert!(got.iter().any(|b| b == who), "{who} served none of {got:?}");
        }
        assert_eq!(scheduled(&d2), 0, "the backup balanced what the master sent it");
    }
    // Without the mac-source condition the backup balances again what the master
    // forwards to it; what it sends back to the master loops.
    let edits = [("mac_source = ", "# mac_source = ")];
    let c1 = variant(&lab, lab.var("CONFIG1"), "loop-1", &edits);
    let c2 = variant(&lab, lab.var("CONFIG2"), "loop-2", &edits);
    let d1 = director(&lab, 1, &c1);
    let d2 = director(&lab, 2, &c2);
    wait_state(&d1, "MASTER", TAKEOVER);
    wait_state(&d2, "BACKUP", TAKEOVER);
    // 16 requests: the master's rr hands the backup every fourth, and the backup's
    // own rr (its list newest first: server2, server1, itself, director1) sends the
    // fourth of those back to the master.
    let got = bodies(&client, &vip, 16);
    let again = scheduled(&d2);
    eprintln!("without the marks: {} of 16 served; the backup balanced {again} again", got.len());
    assert!(again > 0, "the backup balanced nothing again");
    assert!(got.len() < 16, "no request was lost to the loop: {got:?}");
}

#[test]
fn a_nat_pair_moves_the_vip_and_the_dip_together() {
    let lab = Lab::start("pair-nat", "vn");
    let (client, vip) = (lab.var("CLIENT_NS").to_string(), lab.var("VIP").to_string());
    // Director 1's DIP side tracks a script that fails while a file exists.
    let flag = lab.scratch("vrrp").join("dip-broken");
    let _ = std::fs::remove_file(&flag);
    let c1 = variant(
        &lab,
        lab.var("CONFIG1"),
        "nat-1",
        &[
            (
                "virtual_ipaddress = [\"198.18.1.1\"]\n",
                "virtual_ipaddress = [\"198.18.1.1\"]\ntrack_script = [\"dip_ok\"]\n",
            ),
            (
                "[[vrrp_sync_group]]",
                &format!(
                    "[[vrrp_script]]\nname = \"dip_ok\"\nscript = \"test ! -e {}\"\n\n[[vrrp_sync_group]]",
                    flag.display()
                ),
            ),
        ],
    );
    let d1 = director(&lab, 1, &c1);
    let d2 = director(&lab, 2, Path::new(lab.var("CONFIG2")));
    wait_states(&d1, "MASTER", TAKEOVER);
    wait_states(&d2, "BACKUP", TAKEOVER);
    let got = bodies(&client, &vip, 4);
    assert_eq!(got, ["server2", "server1", "server2", "server1"], "rr: the last real server configured comes first");

    // Only the DIP side fails on director 1: its whole group leaves (FAULT, priority
    // 0 on both sides) and director 2 takes the VIP and the DIP, so NAT replies
    // reach the director that holds the connections.
    std::fs::write(&flag, "").unwrap();
    wait_states(&d1, "FAULT", TAKEOVER);
    wait_states(&d2, "MASTER", TAKEOVER);
    let (_, body) = first_served(&client, &vip, Instant::now(), TAKEOVER);
    assert!(body.starts_with("server"), "{body}");
    assert_eq!(bodies(&client, &vip, 4).len(), 4, "NAT through director 2");
    // Good again: director 1 is BACKUP, then preempts with both.
    std::fs::remove_file(&flag).unwrap();
    wait_states(&d1, "MASTER", TAKEOVER);
    wait_states(&d2, "BACKUP", TAKEOVER);
    assert_eq!(bodies(&client, &vip, 4).len(), 4, "NAT through director 1 again");
}
