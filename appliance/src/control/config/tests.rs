//! The configuration's tests: good files, every error path naming its key.

use super::*;
use crate::ipvs::dest::FwdMethod;

const GOOD: &str = r#"
[eal]
args = ["--vdev=net_af_packet0,iface=ext", "--vdev=net_af_packet1,iface=int"]

[[port]]
name = "net_af_packet0"
addresses = ["198.18.0.10/24", "2001:2::10/64"]

[[port]]
name = "net_af_packet1"
addresses = ["198.18.1.1/24"]
mtu = 9000

[[route]]
prefix = "198.19.0.0/16"
via = "198.18.1.254"

[[neighbour]]
address = "198.18.1.11"
mac = "02:00:00:00:01:0b"
port = "net_af_packet1"

[[route]]
prefix = "2001:db8::/32"
via = "2001:2::1"

[[neighbour]]
address = "2001:2::1"
mac = "02:00:00:00:00:01"
port = "net_af_packet0"

[workers]
lcores = [1]
idle_sleep_us = 20
"#;

#[test]
fn good_config() {
    let c = from_toml(GOOD).unwrap();
    assert_eq!(c.ports.len(), 2);
    assert_eq!(c.ports[0].addresses[0].to_string(), "198.18.0.10/24");
    assert_eq!(c.ports[0].addresses.len(), 1, "IPv4 and IPv6 apart");
    assert_eq!(c.ports[0].addresses6[0].to_string(), "2001:2::10/64");
    assert!(c.ports[1].addresses6.is_empty());
    assert_eq!((c.routes.len(), c.routes6.len(), c.neighbours.len(), c.neighbours6.len()), (1, 1, 1, 1));
    assert_eq!(
        (c.routes6[0].prefix.to_string().as_str(), c.routes6[0].port),
        ("2001:db8::/32", 0),
        "port from the via"
    );
    assert_eq!(c.ports[1].mtu, 9000);
    assert_eq!(c.ports[0].mtu, 1500);
    assert_eq!(c.ports[0].side, PortSide::Both);
    assert_eq!(c.workers.rss_key, crate::net::rss::RSS_KEY);
    assert_eq!(c.routes[0].port, 1, "port found from the via address");
    assert_eq!(c.neighbours[0].port, 1);
    assert_eq!(c.workers.lcores, vec![1]);
    assert_eq!(c.workers.idle_sleep_us, 20);
    assert_eq!(c.eal.hugepages, Hugepages::Auto);
    assert_eq!(c.mempool.mbufs, 8191);
}

fn err(text: &str) -> String {
    from_toml(text).unwrap_err().to_string()
}

#[test]
fn errors_name_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("198.18.1.1/24", "1.2.3/40", "port[1].addresses[0]: invalid CIDR \"1.2.3/40\""),
        ("198.18.1.1/24", "198.18.0.10/32", "port[1].addresses[0]: 198.18.0.10 is already port[0].addresses[0]"),
        ("198.18.1.1/24", "224.0.0.1/24", "port[1].addresses[0]: \"224.0.0.1/24\" is not a unicast host address"),
        ("\"198.18.1.1/24\"", "\"2001:2::1/129\"", "port[1].addresses[0]: invalid IPv6 prefix \"2001:2::1/129\""),
        ("\"198.18.1.1/24\"", "\"ff02::1/64\"", "port[1].addresses[0]: \"ff02::1/64\" is not a unicast host address"),
        (
            "\"198.18.1.1/24\"",
            "\"198.18.1.1/24\", \"2001:2::10/128\"",
            "port[1].addresses: 2001:2::10 is already one of port[0].addresses",
        ),
        ("mtu = 9000", "mtu = 20", "port[1].mtu: 20 is outside 68..=9600"),
        ("lcores = [1]", "lcores = [0]", "workers.lcores[0]: lcore 0 is eal.main_lcore (the control lcore)"),
        ("lcores = [1]", "lcores = []", "workers.lcores: at least one worker lcore is needed"),
        ("lcores = [1]", "lcores = [1, 1]", "workers.lcores[1]: lcore 1 is listed twice"),
        (
            "via = \"198.18.1.254\"",
            "via = \"203.0.113.1\"",
            "route[0].via: 203.0.113.1 is on no port's connected network",
        ),
        ("via = \"198.18.1.254\"", "via = \"1.2.3\"", "route[0].via: invalid IPv4 address \"1.2.3\""),
        (
            "mac = \"02:00:00:00:01:0b\"",
            "mac = \"ff:ff:ff:ff:ff:ff\"",
            "neighbour[0].mac: ff:ff:ff:ff:ff:ff is not a unicast MAC",
        ),
        ("mac = \"02:00:00:00:01:0b\"", "mac = \"02:00\"", "neighbour[0].mac: invalid MAC address \"02:00\""),
        ("port = \"net_af_packet1\"", "port = \"eth9\"", "neighbour[0].port: no [[port]] named \"eth9\""),
        (
            "idle_sleep_us = 20",
            "idle_sleep_us = 20\nrx_descriptors = 1000",
            "workers.rx_descriptors: 1000 is not a power of two in 64..=4096",
        ),
        (
            "args = [",
            "args = [\"-l\", \"0-1\", ",
            "eal.args[0]: \"-l\": lcores come from workers.lcores and eal.main_lcore",
        ),
        (
            "args = [",
            "args = [\"--vdev=net_memif9,role=client,zero-copy=yes\", ",
            "eal.args[0]: a zero-copy memif port needs \"--single-file-segments\" in eal.args",
        ),
        (
            "args = [",
            "args = [\"--single-file-segments\", \"--no-huge\", \"--vdev=net_memif9,role=client,zero-copy=yes\", ",
            "eal.args[2]: a zero-copy memif port needs hugepages, not --no-huge or eal.hugepages = \"off\"",
        ),
    ];
    for (from, to, want) in cases {
        assert!(GOOD.contains(from), "{from}");
        let text = GOOD.replacen(from, to, 1);
        assert_eq!(err(&text), *want, "replacing {from:?} by {to:?}");
    }
}

const SERVICES: &str = r#"
[timeouts]
tcp = 600

[[service]]
protocol = "tcp"
address = "198.18.0.10"
port = 80
scheduler = "wlc"

  [[service.dest]]
  address = "198.18.1.11"
  port = 8080
  forward = "masq"
  weight = 3

  [[service.dest]]
  address = "198.18.1.12"
  port = 8080
  forward = "masq"

[[service]]
fwmark = 1
scheduler = "rr"
persistent = 1800
netmask = "255.255.255.0"

  [[service.dest]]
  address = "198.18.1.11"

[[fwmark]]
mark = 1
destination = "198.18.0.10/32"
protocol = "tcp"
ports = "10000:20000"
mac_source = "!02:d1:00:00:00:02"
"#;

#[test]
fn services_and_fwmarks() {
    let c = from_toml(&format!("{GOOD}{SERVICES}")).unwrap();
    assert_eq!(c.model.services.len(), 2);
    assert_eq!(c.model.services[0].1[0].weight, 3);
    assert_eq!(c.model.services[0].1[1].weight, 1, "default weight");
    assert_eq!(c.model.services[1].1[0].forward, FwdMethod::Route, "default forward, as ipvsadm's -g");
    assert_eq!(c.model.timeouts.get(), (600, 120, 300));
    assert!(!c.model.sysctl.sloppy_tcp, "the kernel's default");
    let sloppy =
        from_toml(&format!("{GOOD}{SERVICES}").replace("[timeouts]", "[ipvs]\nsloppy_tcp = true\n\n[timeouts]"))
            .unwrap();
    assert!(sloppy.model.sysctl.sloppy_tcp);
    let drain = from_toml(
        &format!("{GOOD}{SERVICES}")
            .replace("[timeouts]", "[ipvs]\nexpire_nodest_conn = true\nexpire_quiescent_template = true\n\n[timeouts]"),
    )
    .unwrap();
    assert!(drain.model.sysctl.expire_nodest_conn && drain.model.sysctl.expire_quiescent_template);
    assert!(!c.model.sysctl.expire_nodest_conn && !c.model.sysctl.expire_quiescent_template, "the kernel's defaults");
    let rules = crate::control::model::rules_from_specs(&c.model.fwmark).unwrap();
    assert_eq!(rules.rules()[0].dports, Some((10000, 20000)));
    assert!(rules.rules()[0].src_mac.unwrap().1, "negated");
    assert!(rules.is_empty6(), "an IPv4 destination: no IPv6 rule");
    // A port list (multiport) is a rule per port or range, with the source ports.
    let listed = from_toml(
        &format!("{GOOD}{SERVICES}")
            .replace("ports = \"10000:20000\"", "ports = \"21,10000:20000\"\nsource_ports = \"1024:65535\""),
    )
    .unwrap();
    assert!(listed.model.fwmark[0].multiport);
    let rules = crate::control::model::rules_from_specs(&listed.model.fwmark).unwrap();
    let r: Vec<_> = rules.rules().iter().map(|r| (r.dports, r.sports)).collect();
    assert_eq!(r, [(Some((21, 21)), Some((1024, 65535))), (Some((10000, 20000)), Some((1024, 65535)))]);
    assert_eq!(c.control_socket, std::path::PathBuf::from("/run/rvs/rvsd.sock"));
    let cases: &[(&str, &str, &str)] = &[
        (
            "port = 8080\n  forward = \"masq\"\n  weight = 3",
            "port = 8080\n  forward = \"dr\"\n  weight = 3",
            "service[0].dest[0]: direct routing (-g) cannot map ports",
        ),
        (
            "scheduler = \"wlc\"",
            "scheduler = \"xx\"",
            "service[0].scheduler: \"xx\" is not a scheduler (one of: rr wrr",
        ),
        ("address = \"198.18.1.12\"", "address = \"198.18.1.11\"", "service[0].dest[1]: Destination already exists"),
        (
            "ports = \"10000:20000\"",
            "ports = \"20000:10000\"",
            "fwmark[0].ports: \"20000:10000\" is not a port or a range lo:hi",
        ),
        (
            "mac_source = \"!02:d1:00:00:00:02\"",
            "mac_source = \"!02:d1\"",
            "fwmark[0].mac_source: invalid MAC address \"!02:d1\"",
        ),
        (
            "fwmark = 1\nscheduler",
            "fwmark = 1\nport = 80\nscheduler",
            "service[1]: give either protocol + address + port, or fwmark",
        ),
    ];
    for (from, to, want) in cases {
        let text = format!("{GOOD}{}", SERVICES.replacen(from, to, 1));
        assert!(SERVICES.contains(from), "{from}");
        assert!(err(&text).starts_with(want), "{} does not start with {want}", err(&text));
    }
}

/// An IPv6 fwmark service (keepalived's `ip_family inet6`) and IPv6 mark rules:
/// a rule's prefixes say its family; one without addresses marks both.
#[test]
fn ipv6_fwmark_services_and_rules() {
    const V6: &str = r#"
[[service]]
fwmark = 6
ip_family = "inet6"
scheduler = "rr"
persistent = 60
netmask = "64"

  [[service.dest]]
  address = "2001:2:0:1::11"

[[fwmark]]
mark = 6
destination = "2001:2::10"
protocol = "tcp"
ports = "443"

[[fwmark]]
mark = 7
mac_source = "02:d1:00:00:00:02"
"#;
    let c = from_toml(&format!("{GOOD}{V6}")).unwrap();
    let (spec, dests) = &c.model.services[0];
    assert_eq!((spec.service, spec.prefix6), (ServiceKey::Fwmark6(6), Some(64)));
    assert!(dests[0].addr.is_ipv6());
    let rules = crate::control::model::rules_from_specs(&c.model.fwmark).unwrap();
    assert_eq!(rules.rules6().len(), 2);
    assert_eq!(rules.rules6()[0].dst, Some("2001:2::10/128".parse().unwrap()));
    assert_eq!(rules.rules().len(), 1, "the address-less rule marks IPv4 too");
    assert_eq!(rules.rules()[0].mark, 7);
    let cases: &[(&str, &str, &str)] = &[
        ("ip_family = \"inet6\"", "ip_family = \"ipv6\"", "service[0].ip_family: \"ipv6\" is not inet or inet6"),
        ("ip_family = \"inet6\"", "ip_family = \"inet\"", "service[0].netmask: invalid IPv4 address \"64\""),
        (
            "address = \"2001:2:0:1::11\"",
            "address = \"198.18.1.11\"",
            "service[0].dest[0]: real server 198.18.1.11 is not of the virtual service's address family",
        ),
        (
            "destination = \"2001:2::10\"",
            "destination = \"2001:2::10\"\nsource = \"198.18.0.0/24\"",
            "fwmark[0].source: an IPv4 and an IPv6 prefix in one rule",
        ),
        ("destination = \"2001:2::10\"", "destination = \"2001:2::10/129\"", "fwmark[0].destination: invalid CIDR"),
    ];
    for (from, to, want) in cases {
        let text = format!("{GOOD}{}", V6.replacen(from, to, 1));
        assert!(err(&text).starts_with(want), "{} does not start with {want}", err(&text));
    }
}

/// The error paths the tables above do not reach: each names its key and
/// says what is wrong (every config error path, tested).
#[test]
fn every_other_error_path_names_its_key() {
    let base = format!("{GOOD}{SERVICES}");
    let cases: &[(&str, &str, &str)] = &[
        ("name = \"net_af_packet0\"", "name = \"\"", "port[0].name: empty device name"),
        ("name = \"net_af_packet1\"", "name = \"net_af_packet0\"", "port[1].name: device \"net_af_packet0\" is listed twice"),
        ("mtu = 9000", "mtu = 9000\nside = \"left\"", "port[1].side: \"left\" is not client, server or both"),
        ("mtu = 9000", "mtu = 9000\nkernel = \"way-too-long-ifname\"", "port[1].kernel: \"way-too-long-ifname\" is not an interface name"),
        ("prefix = \"198.19.0.0/16\"", "prefix = \"198.19/99\"", "route[0].prefix: invalid CIDR \"198.19/99\""),
        ("address = \"198.18.1.11\"\nmac", "address = \"198.18.1\"\nmac", "neighbour[0].address: invalid IP address \"198.18.1\""),
        ("lcores = [1]", "lcores = [1, 999]", "workers.lcores[1]: lcore 999 >="),
        ("[eal]", "[eal]\nmain_lcore = 999", "eal.main_lcore: lcore 999 >="),
        ("idle_sleep_us = 20", "idle_sleep_us = 20\nsteering = \"random\"", "workers.steering: \"random\" is not client-port or client"),
        ("idle_sleep_us = 20", "idle_sleep_us = 20\nrss_key = \"00ff\"", "workers.rss_key: not 40 bytes written as 80 hex digits"),
        ("idle_sleep_us = 20", "idle_sleep_us = 20\nconnections = 10", "workers.connections: 10 is below 1024"),
        ("[workers]", "[metrics]\nlisten = \"localhost\"\n[workers]", "metrics.listen: \"localhost\" is not an address:port"),
        ("[workers]", "[control]\nsocket = \"\"\n[workers]", "control.socket: empty path"),
        ("[workers]", "[mempool]\nmbufs = 100\n[workers]", "mempool.mbufs: 100 is below 1024"),
        ("[workers]", "[mempool]\ncache = 1000\n[workers]", "mempool.cache: 1000 is above 512"),
        ("[eal]", "[eal]\nmemory_mb = 8", "eal.memory_mb: 8 is below 64"),
        ("tcp = 600", "tcp = 600\ntcpfin = -1", "timeouts"),
        ("scheduler = \"wlc\"", "scheduler = \"wlc2\"", "service[0].scheduler: \"wlc2\" is not a scheduler"),
        ("port = 80\nscheduler", "port = 0\nscheduler", "service[0]: Zero port specified for non-persistent service"),
        ("protocol = \"tcp\"\naddress", "protocol = \"sctp\"\naddress", "service[0].protocol: \"sctp\" is not tcp or udp"),
        ("address = \"198.18.0.10\"\nport = 80", "address = \"198.18.0.300\"\nport = 80", "service[0].address: invalid IP address"),
        ("netmask = \"255.255.255.0\"", "netmask = \"255.255.255\"", "service[1].netmask: invalid IPv4 address"),
        ("forward = \"masq\"\n  weight = 3", "forward = \"nat64\"\n  weight = 3", "service[0].dest[0].forward: \"nat64\" is not masq, route or tunnel"),
        ("weight = 3", "weight = 3\n  upper = 1\n  lower = 5", "service[0].dest[0]: Illegal thresholds"),
        ("  forward = \"masq\"\n\n[[service]]", "  forward = \"masq\"\n\n  [[service.dest]]\n  address = \"198.18.1.12\"\n  port = 8080\n  forward = \"masq\"\n\n[[service]]", "service[0].dest[2]: Destination already exists"),
        ("  forward = \"masq\"\n\n[[service]]", "  forward = \"masq\"\n\n  [[service.dest]]\n  address = \"198.18.1.13\"\n  port = 8080\n\n[[service]]", "service[0].dest[2]: direct routing (-g) cannot map ports"),
        ("scheduler = \"wlc\"", "scheduler = \"wlc\"\nsorry_server = \"198.18.1.99\"", "service[0].sorry_server: \"198.18.1.99\" is not address:port"),
        ("scheduler = \"wlc\"", "scheduler = \"wlc\"\nsorry_server = \"198.18.1.99:80\"", "service[0].sorry_server: needs a [service.check]"),
        ("mark = 1\ndestination", "mark = 0\ndestination", "fwmark[0].mark: 0 is not a mark"),
        ("protocol = \"tcp\"\nports", "protocol = \"icmp\"\nports", "fwmark[0].protocol: \"icmp\" is not tcp or udp"),
        ("destination = \"198.18.0.10/32\"", "destination = \"198.18.0.10/33\"", "fwmark[0].destination: invalid CIDR"),
    ];
    for (from, to, want) in cases {
        assert!(base.contains(from), "{from}");
        let text = base.replacen(from, to, 1);
        let got = err(&text);
        assert!(got.starts_with(want), "replacing {from:?} by {to:?}: {got:?} does not start with {want:?}");
    }
    // Whole-file errors: TOML that does not parse, a file that is not there.
    let bad = err("[eal\n");
    assert!(bad.contains("line 1"), "a TOML syntax error says where: {bad}");
    let e = load(std::path::Path::new("/nonexistent/rvsd.toml")).unwrap_err();
    assert_eq!(e.to_string(), "cannot read config file /nonexistent/rvsd.toml");
    // Health-check keys.
    let with_check = |check: &str| {
        format!(
            "{GOOD}{}",
            SERVICES.replacen("scheduler = \"wlc\"", &format!("scheduler = \"wlc\"\n[service.check]\n{check}"), 1)
        )
    };
    for (check, want) in [
        ("type = \"http_get\"\npath = \"health\"", "service[0].check.path: \"health\" does not start with /"),
        ("type = \"http_get\"\ndigest = \"abc\"", "service[0].check.digest: not an MD5 digest (32 hex digits)"),
        ("type = \"tcp_check\"\ndelay_loop = 0", "service[0].check.delay_loop: must be at least 1 second"),
    ] {
        let got = err(&with_check(check));
        assert_eq!(got, want, "{check}");
    }
}

#[test]
fn checks_with_keepalived_names_and_defaults() {
    let text = format!(
        "{GOOD}{}",
        SERVICES.replacen(
            "scheduler = \"wlc\"",
            "scheduler = \"wlc\"\nsorry_server = \"198.18.1.99:8080\"\nquorum = 2\n[service.check]\ntype = \"http_get\"\npath = \"/health\"\nstatus_code = \"200-204\"\ndelay_loop = 1\ninhibit_on_failure = true",
            1
        )
    );
    let c = from_toml(&text).unwrap();
    let (svc, spec) = &c.checks[0];
    assert_eq!(*svc, c.model.services[0].0.service);
    assert_eq!(
        spec.kind,
        crate::control::health::Kind::Http { path: "/health".into(), status: (200, 204), digest: None }
    );
    assert_eq!((spec.delay_loop_s, spec.connect_timeout_s, spec.retry, spec.delay_before_retry_s), (1, 5, 1, 1));
    assert!(spec.inhibit_on_failure && !spec.alpha);
    assert_eq!((spec.quorum, spec.hysteresis), (2, 0));
    assert_eq!(spec.sorry_server, Some((Ipv4Addr::new(198, 18, 1, 99).into(), 8080, FwdMethod::Masq)));
    for (from, to, want) in [
        (
            "type = \"http_get\"",
            "type = \"smtp_check\"",
            "service[0].check.type: \"smtp_check\" is not tcp_check, http_get or misc_check",
        ),
        (
            "status_code = \"200-204\"",
            "status_code = \"ok\"",
            "service[0].check.status_code: \"ok\" is not a code or a range lo-hi",
        ),
        ("type = \"http_get\"", "type = \"misc_check\"", "service[0].check.misc_path: missing"),
        ("delay_loop = 1", "delay_loop = 1\nretries = 3", "service[0].check.retries: unknown key"),
    ] {
        let t = text.replacen(from, to, 1);
        assert_eq!(err(&t), want);
    }
}

#[test]
fn unknown_keys_are_errors() {
    let e =
        from_toml(&GOOD.replacen("addresses = [\"198.18.1.1/24\"]", "adresses = [\"198.18.1.1/24\"]", 1)).unwrap_err();
    assert!(e.key.ends_with("adresses"), "{e}");
    assert_eq!(e.reason, "unknown key");
    let e = from_toml(&format!("{GOOD}\n[bogus]\nx = 1\n")).unwrap_err();
    assert_eq!(e.to_string(), "bogus: unknown key");
    let e = from_toml(&GOOD.replacen("idle_sleep_us = 20", "idle_sleep = 20", 1)).unwrap_err();
    assert_eq!(e.to_string(), "workers.idle_sleep: unknown key");
}

#[test]
fn missing_sections() {
    let e = from_toml("[eal]\n[[port]]\nname = \"x\"\n").unwrap_err();
    assert_eq!(e.to_string(), "workers: missing");
    let e = from_toml("[eal]\n[workers]\nlcores = [1]\n").unwrap_err();
    assert_eq!(e.to_string(), "port: at least one [[port]] is needed");
}

#[test]
fn eal_argv_modes() {
    let c = from_toml(GOOD).unwrap();
    let huge = c.eal_argv(true);
    assert_eq!(&huge[..7], &["rvsd", "-l", "0,1", "--main-lcore", "0", "--no-telemetry", "--in-memory"]);
    assert!(huge.ends_with(&c.eal.args));
    let nohuge = c.eal_argv(false);
    assert_eq!(&nohuge[6..10], &["--no-huge", "-m", "512", "--no-shconf"]);
    let off = from_toml(&GOOD.replacen("[eal]", "[eal]\nhugepages = \"off\"", 1)).unwrap();
    assert!(off.eal_argv(true).contains(&"--no-huge".to_string()));
    assert_eq!(c.vdevs(), vec![(0, "net_af_packet0".to_string()), (1, "net_af_packet1".to_string())]);
}

#[test]
fn cpu_lists_and_lcore_checks() {
    assert_eq!(parse_cpu_list("0-1\n"), Some(vec![0, 1]));
    assert_eq!(parse_cpu_list("0-2,5,7-8"), Some(vec![0, 1, 2, 5, 7, 8]));
    assert_eq!(parse_cpu_list("3-1"), None);
    assert_eq!(parse_cpu_list("x"), None);
    let mut c = from_toml(&GOOD.replacen("lcores = [1]", "lcores = [1, 5]", 1)).unwrap();
    assert_eq!(
        check_lcores(&c, &[0, 1]).unwrap_err().to_string(),
        "workers.lcores[1]: lcore 5 is not an online CPU (online: [0, 1]); set workers.oversubscribe to share CPUs"
    );
    assert_eq!(check_lcores(&c, &[0, 1, 5]).unwrap(), vec![(0, 0), (1, 1), (5, 5)]);
    c.set_workers(3);
    assert_eq!(c.workers.lcores, vec![1, 2, 3]);
    let map = check_lcores(&c, &[0, 1]).unwrap();
    assert_eq!(map, vec![(0, 0), (1, 1), (2, 1), (3, 1)]);
    let argv = c.eal_argv_mapped(false, &map);
    assert_eq!(&argv[1..3], &["--lcores", "0@0,1@1,2@1,3@1"]);
    c.vdev_queues();
    assert_eq!(c.eal.args[0], "--vdev=net_af_packet0,iface=ext,qpairs=3");
}

#[test]
fn environment_overrides() {
    let dir = std::env::temp_dir().join(format!("rvs-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.toml");
    std::fs::write(&path, GOOD).unwrap();
    let env: HashMap<String, String> = [
        ("RVS_WORKERS__IDLE_SLEEP_US", "0"),
        ("RVS_EAL__ARGS", "--vdev=net_null0 --no-pci"),
        ("RVS_LAB_ID", "not configuration"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let c = load_with_env(&path, &env).unwrap();
    assert_eq!(c.workers.idle_sleep_us, 0);
    assert_eq!(c.eal.args, vec!["--vdev=net_null0", "--no-pci"]);
    let bad: HashMap<String, String> = [("RVS_WORKERS__BOGUS".to_string(), "1".to_string())].into_iter().collect();
    assert_eq!(load_with_env(&path, &bad).unwrap_err().to_string(), "workers.bogus: unknown key");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(load(&dir.join("nope.toml")).unwrap_err().to_string().contains("cannot read config file"));
}

/// A director of a pair: the VIP carried by VRRP, a kernel interface, a script.
const PAIR: &str = r#"
[eal]
args = ["--vdev=net_af_packet0,iface=eth0"]

[[port]]
name = "net_af_packet0"
addresses = ["198.18.0.2/24"]
kernel = "k0"
hidden = ["198.18.0.20"]

[workers]
lcores = [1]

[[vrrp_script]]
name = "chk"
script = "true"
weight = -20

[[vrrp_instance]]
name = "VI_1"
state = "MASTER"
interface = "net_af_packet0"
virtual_router_id = 51
priority = 150
advert_int = 1
authentication = { auth_type = "PASS", auth_pass = "a-long-password" }
virtual_ipaddress = ["198.18.0.10/24"]
track_script = ["chk"]
track_service = ["-t 198.18.0.10:80"]

[[vrrp_sync_group]]
name = "G"
group = ["VI_1"]

[[service]]
protocol = "tcp"
address = "198.18.0.10"
port = 80
  [[service.dest]]
  address = "198.18.0.2"
  [[service.dest]]
  address = "198.18.0.11"
"#;

#[test]
fn vrrp_with_keepalived_words_and_defaults() {
    let c = from_toml(PAIR).unwrap();
    let i = &c.vrrp.instances[0];
    assert!(i.want_master && i.version == 2 && i.advert_cs == 100 && i.priority == 150 && i.vrid == 51);
    assert_eq!(i.auth_pass, Some(*b"a-long-p"), "keepalived sends the first 8 characters");
    assert_eq!(i.addrs, vec![Ipv4Addr::new(198, 18, 0, 10)]);
    assert_eq!((i.garp_master_delay_s, i.garp_master_repeat, i.garp_master_refresh_s), (5, 5, 0));
    assert_eq!(c.vrrp.scripts[0].timeout_s, 1, "timeout defaults to the interval");
    assert_eq!(c.vrrp.groups[0].members, vec!["VI_1".to_string()]);
    assert_eq!(c.ports[0].hidden, vec![Ipv4Addr::new(198, 18, 0, 20)]);
    // A real server at the director's own address is Local, the other one Route.
    let fwd: Vec<FwdMethod> = c.model.services[0].1.iter().map(|d| d.forward).collect();
    assert_eq!(fwd, vec![FwdMethod::Local, FwdMethod::Route]);
    let v3 = from_toml(
        &PAIR
            .replace("advert_int = 1\n", "advert_int = 0.1\nversion = 3\n")
            .replace("authentication = { auth_type = \"PASS\", auth_pass = \"a-long-password\" }\n", ""),
    )
    .unwrap();
    assert_eq!(v3.vrrp.instances[0].advert_cs, 10);
}

/// An IPv6 instance beside the IPv4 one, on the same VRID (RFC 5798 §7.3): version
/// 3 whatever was asked (as keepalived); IPv6 addresses excluded from an IPv4
/// instance are carried by it.
#[test]
fn vrrp_over_ipv6_and_excluded_addresses() {
    let v6 = format!(
        "{}{}",
        PAIR.replace(
            "virtual_ipaddress = [\"198.18.0.10/24\"]",
            "virtual_ipaddress = [\"198.18.0.10/24\"]\nvirtual_ipaddress_excluded = [\"2001:2::11/64\"]"
        ),
        r#"
[[vrrp_instance]]
name = "VI_6"
state = "BACKUP"
interface = "net_af_packet0"
virtual_router_id = 51
priority = 100
virtual_ipaddress = ["2001:2::10/64"]
"#
    );
    let c = from_toml(&v6).unwrap();
    let (i4, i6) = (&c.vrrp.instances[0], &c.vrrp.instances[1]);
    assert_eq!(i4.excluded, vec!["2001:2::11".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(i6.addrs, vec!["2001:2::10".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!((i6.version, i6.vrid), (3, 51));
    let cases: &[(&str, &str, &str)] = &[
        (
            "virtual_ipaddress = [\"2001:2::10/64\"]",
            "virtual_ipaddress = [\"2001:2::10/64\", \"198.18.0.12\"]",
            "vrrp_instance[1].virtual_ipaddress[1]: 198.18.0.12 is not of the instance's family",
        ),
        (
            "virtual_ipaddress = [\"2001:2::10/64\"]",
            "virtual_ipaddress = [\"2001:2::11/64\"]",
            "vrrp_instance[1].virtual_ipaddress[0]: 2001:2::11 is carried twice",
        ),
        (
            "virtual_ipaddress = [\"2001:2::10/64\"]",
            "virtual_ipaddress = [\"ff02::12\"]",
            "vrrp_instance[1].virtual_ipaddress[0]: \"ff02::12\" is not a unicast host address",
        ),
        (
            "name = \"VI_6\"\nstate = \"BACKUP\"",
            "name = \"VI_6\"\nstate = \"BACKUP\"\nauthentication = { auth_type = \"PASS\", auth_pass = \"x\" }",
            "vrrp_instance[1].authentication: VRRP version 3 has no authentication",
        ),
    ];
    for (from, to, want) in cases {
        assert!(v6.contains(from), "{from}");
        let e = err(&v6.replacen(from, to, 1));
        assert!(e.starts_with(want), "{e} does not start with {want}");
    }
    let owned = v6.replace("addresses = [\"198.18.0.2/24\"]", "addresses = [\"198.18.0.2/24\", \"2001:2::10/64\"]");
    assert!(
        err(&owned).starts_with("vrrp_instance[1].virtual_ipaddress[0]: 2001:2::10 is carried by VRRP"),
        "{}",
        err(&owned)
    );
}

#[test]
fn vrrp_errors_name_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("kernel = \"k0\"\n", "", "port[0].hidden: hidden addresses are the kernel's"),
        (
            "kernel = \"k0\"\nhidden = [\"198.18.0.20\"]",
            "",
            "service[0]: real server 198.18.0.2 is this director (Local)",
        ),
        (
            "addresses = [\"198.18.0.2/24\"]",
            "addresses = [\"198.18.0.2/24\", \"198.18.0.10/32\"]",
            "vrrp_instance[0].virtual_ipaddress[0]: 198.18.0.10 is carried by VRRP",
        ),
        ("advert_int = 1", "advert_int = 0.5", "vrrp_instance[0].advert_int: 0.5 is not whole seconds"),
        (
            "advert_int = 1",
            "advert_int = 1\nversion = 3",
            "vrrp_instance[0].authentication: VRRP version 3 has no authentication",
        ),
        ("advert_int = 1", "advert_int = 1\nversion = 4", "vrrp_instance[0].version: 4 is not 2 or 3"),
        (
            "virtual_router_id = 51",
            "virtual_router_id = 256",
            "vrrp_instance[0].virtual_router_id: 256 is outside 1..=255",
        ),
        ("priority = 150", "priority = 0", "vrrp_instance[0].priority: 0 is outside 1..=255"),
        ("state = \"MASTER\"", "state = \"master\"", "vrrp_instance[0].state: \"master\" is not MASTER or BACKUP"),
        (
            "state = \"MASTER\"",
            "state = \"MASTER\"\nnopreempt = true",
            "vrrp_instance[0].nopreempt: needs state BACKUP",
        ),
        (
            "auth_type = \"PASS\"",
            "auth_type = \"AH\"",
            "vrrp_instance[0].authentication.auth_type: \"AH\" is not supported",
        ),
        (
            "interface = \"net_af_packet0\"",
            "interface = \"eth9\"",
            "vrrp_instance[0].interface: no [[port]] named \"eth9\"",
        ),
        (
            "track_script = [\"chk\"]",
            "track_script = [\"nope\"]",
            "vrrp_instance[0].track_script[0]: no [[vrrp_script]] named \"nope\"",
        ),
        ("\"-t 198.18.0.10:80\"", "\"-t 198.18.0.11:80\"", "vrrp_instance[0].track_service[0]: no such [[service]]"),
        ("\"-t 198.18.0.10:80\"", "\"tcp 80\"", "vrrp_instance[0].track_service[0]: \"tcp 80\" is not"),
        (
            "group = [\"VI_1\"]",
            "group = [\"VI_2\"]",
            "vrrp_sync_group[0].group[0]: no [[vrrp_instance]] named \"VI_2\"",
        ),
        ("weight = -20", "weight = 300", "vrrp_script[0].weight: 300 is outside -253..=253"),
        (
            "virtual_ipaddress = [\"198.18.0.10/24\"]",
            "virtual_ipaddress = []",
            "vrrp_instance[0].virtual_ipaddress: at least one address",
        ),
    ];
    let no_kernel = PAIR
        .replace("kernel = \"k0\"\nhidden = [\"198.18.0.20\"]", "")
        .replace("\"198.18.0.2\"\n", "\"198.18.0.12\"\n");
    assert!(err(&no_kernel).starts_with("vrrp_instance[0].interface: port \"net_af_packet0\" has no kernel interface"));
    for (from, to, want) in cases {
        assert!(PAIR.contains(from), "{from}");
        let e = err(&PAIR.replacen(from, to, 1));
        assert!(e.starts_with(want), "{from} -> {to}: got {e:?}, want {want:?}");
    }
}

#[test]
fn sync_in_ipvsadm_s_and_keepalived_s_words() {
    let base =
        PAIR.replace("[[vrrp_sync_group]]", "[sync]\ninterface = \"k0\"\nsyncid = 7\nttl = 2\n\n[[vrrp_sync_group]]");
    let c = from_toml(&base).unwrap();
    let m = c.sync.master.clone().unwrap();
    assert_eq!((m.mcast_interface.as_str(), m.syncid, m.ttl, m.port), ("k0", 7, 2, 8848));
    assert_eq!(c.sync.backup, Some(m), "both roles by default");
    assert_eq!((c.sync.threshold, c.sync.period), (3, 50));
    let ka = PAIR.replace(
        "[[vrrp_sync_group]]",
        "[sync]\nlvs_sync_daemon = \"net_af_packet0 VI_1 id 3 maxlen 1400 port 9000\"\nrole = \"backup\"\n\n[[vrrp_sync_group]]",
    );
    let c = from_toml(&ka).unwrap();
    assert!(c.sync.master.is_none());
    let b = c.sync.backup.unwrap();
    assert_eq!((b.mcast_interface.as_str(), b.syncid, b.maxlen, b.port), ("net_af_packet0", 3, 1400, 9000));
    for (sync, want) in [
        ("interface = \"eth9\"", "sync.interface: no port or kernel interface named \"eth9\""),
        ("interface = \"k0\"\nrole = \"leader\"", "sync.role: \"leader\" is not master, backup or both"),
        ("interface = \"k0\"\ngroup = \"198.18.0.1\"", "sync.group: 198.18.0.1 is not a multicast group"),
        ("interface = \"k0\"\nmaxlen = 20", "sync.maxlen: 20 is outside 44..=65507"),
        ("lvs_sync_daemon = \"k0 VI_9\"", "sync.lvs_sync_daemon: no [[vrrp_instance]] named \"VI_9\""),
        ("lvs_sync_daemon = \"k0 VI_1 id\"", "sync.lvs_sync_daemon: \"id\" needs a value"),
    ] {
        let text = PAIR.replace("[[vrrp_sync_group]]", &format!("[sync]\n{sync}\n\n[[vrrp_sync_group]]"));
        let e = err(&text);
        assert!(e.starts_with(want), "{sync}: {e}");
    }
}
