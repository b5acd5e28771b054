//! From the file as written to a validated `Config`: every value checked, every
//! error naming its key. Services, dests, timeouts and firewall marks become the
//! changes `rvsadm` would make to an empty model, checked by the same rules.

use super::checks::check_spec;
use super::schema::*;
use super::*;
use crate::control::model::rules_from_specs;
use crate::control::protocol::{Change, DestSpec, FwmarkSpec, ServiceSpec};
use crate::ipvs::dest::FwdMethod;
use crate::ipvs::Protocol;

pub(super) fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    if raw.ports.is_empty() {
        return Err(ConfigError::new("port", "at least one [[port]] is needed"));
    }
    let mut ports = Vec::with_capacity(raw.ports.len());
    for (i, p) in raw.ports.iter().enumerate() {
        let key = |k: &str| format!("port[{i}].{k}");
        if p.name.trim().is_empty() {
            return Err(ConfigError::new(key("name"), "empty device name"));
        }
        if raw.ports[..i].iter().any(|q| q.name == p.name) {
            return Err(ConfigError::new(key("name"), format!("device \"{}\" is listed twice", p.name)));
        }
        let mut addresses = Vec::with_capacity(p.addresses.len());
        let mut addresses6 = Vec::new();
        for (j, a) in p.addresses.iter().enumerate() {
            if a.contains(':') {
                let c: Ipv6Cidr = a.parse().map_err(|_| {
                    ConfigError::new(format!("port[{i}].addresses[{j}]"), format!("invalid IPv6 prefix \"{a}\""))
                })?;
                let h = c.address();
                if h.is_unspecified() || h.is_multicast() || h.is_loopback() {
                    return Err(ConfigError::new(
                        format!("port[{i}].addresses[{j}]"),
                        format!("\"{a}\" is not a unicast host address"),
                    ));
                }
                addresses6.push(c);
                continue;
            }
            let c: Ipv4Cidr = a
                .parse()
                .map_err(|_| ConfigError::new(format!("port[{i}].addresses[{j}]"), format!("invalid CIDR \"{a}\"")))?;
            if c.address().is_unspecified() || c.address().is_broadcast() || c.address().is_multicast() {
                return Err(ConfigError::new(
                    format!("port[{i}].addresses[{j}]"),
                    format!("\"{a}\" is not a unicast host address"),
                ));
            }
            addresses.push(c);
        }
        if !(68..=9600).contains(&p.mtu) {
            return Err(ConfigError::new(key("mtu"), format!("{} is outside 68..=9600", p.mtu)));
        }
        let side = match p.side.as_str() {
            "client" => PortSide::Client,
            "server" => PortSide::Server,
            "both" => PortSide::Both,
            other => return Err(ConfigError::new(key("side"), format!("\"{other}\" is not client, server or both"))),
        };
        let mut hidden = Vec::with_capacity(p.hidden.len());
        for (j, a) in p.hidden.iter().enumerate() {
            let h = parse_ipv4(&format!("port[{i}].hidden[{j}]"), a)?;
            if addresses.iter().any(|c: &Ipv4Cidr| c.address() == h) {
                return Err(ConfigError::new(
                    format!("port[{i}].hidden[{j}]"),
                    format!("{h} is one of the port's addresses (announced); a hidden address is not"),
                ));
            }
            hidden.push(h);
        }
        if p.announce && p.kernel.is_none() {
            return Err(ConfigError::new(
                key("announce"),
                "VIPs are announced on the kernel interface: set port.kernel (a routing daemon reads it)",
            ));
        }
        if !hidden.is_empty() && p.kernel.is_none() {
            return Err(ConfigError::new(
                key("hidden"),
                "hidden addresses are the kernel's: set port.kernel (the kernel interface that holds them)",
            ));
        }
        ports.push(Port {
            name: p.name.clone(),
            addresses,
            addresses6,
            hidden,
            announce: p.announce,
            mtu: u16::try_from(p.mtu).unwrap_or(1500),
            promiscuous: p.promiscuous,
            side,
            kernel: match &p.kernel {
                None => None,
                Some(k)
                    if k.is_empty()
                        || k.len() > 15
                        || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
                {
                    return Err(ConfigError::new(
                        key("kernel"),
                        format!("\"{k}\" is not an interface name (1-15 of a-z 0-9 - _)"),
                    ));
                }
                Some(k) => Some(k.clone()),
            },
        });
    }
    // One address, one port.
    for (i, p) in ports.iter().enumerate() {
        for (j, a) in p.addresses.iter().enumerate() {
            let clash = ports
                .iter()
                .enumerate()
                .flat_map(|(k, q)| q.addresses.iter().enumerate().map(move |(l, b)| (k, l, b)))
                .find(|&(k, l, b)| (k, l) < (i, j) && b.address() == a.address());
            if let Some((k, l, _)) = clash {
                return Err(ConfigError::new(
                    format!("port[{i}].addresses[{j}]"),
                    format!("{} is already port[{k}].addresses[{l}]", a.address()),
                ));
            }
        }
    }
    for (i, p) in ports.iter().enumerate() {
        for (j, a) in p.addresses6.iter().enumerate() {
            let clash = ports
                .iter()
                .enumerate()
                .flat_map(|(k, q)| q.addresses6.iter().enumerate().map(move |(l, b)| (k, l, b)))
                .find(|&(k, l, b)| (k, l) < (i, j) && b.address() == a.address());
            if let Some((k, _, _)) = clash {
                return Err(ConfigError::new(
                    format!("port[{i}].addresses"),
                    format!("{} is already one of port[{k}].addresses", a.address()),
                ));
            }
        }
    }
    let port_index = |key: String, name: &str| -> Result<usize, ConfigError> {
        ports
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| ConfigError::new(key, format!("no [[port]] named \"{name}\"")))
    };

    let mut routes = Vec::with_capacity(raw.routes.len());
    let mut routes6 = Vec::new();
    for (i, r) in raw.routes.iter().enumerate() {
        if r.prefix.contains(':') || r.via.contains(':') {
            let prefix: Ipv6Cidr = r.prefix.parse().map_err(|_| {
                ConfigError::new(format!("route[{i}].prefix"), format!("invalid IPv6 prefix \"{}\"", r.prefix))
            })?;
            let via: std::net::Ipv6Addr = r.via.parse().map_err(|_| {
                ConfigError::new(format!("route[{i}].via"), format!("invalid IPv6 address \"{}\"", r.via))
            })?;
            let port = match &r.port {
                Some(name) => port_index(format!("route[{i}].port"), name)?,
                None => ports.iter().position(|p| p.addresses6.iter().any(|c| c.contains(via))).ok_or_else(|| {
                    ConfigError::new(format!("route[{i}].via"), format!("{via} is on no port's IPv6 prefix"))
                })?,
            };
            routes6.push(Route6 { prefix, via, port });
            continue;
        }
        let prefix: Ipv4Cidr = r
            .prefix
            .parse()
            .map_err(|_| ConfigError::new(format!("route[{i}].prefix"), format!("invalid CIDR \"{}\"", r.prefix)))?;
        let via: Ipv4Addr = r
            .via
            .parse()
            .map_err(|_| ConfigError::new(format!("route[{i}].via"), format!("invalid IPv4 address \"{}\"", r.via)))?;
        let port = match &r.port {
            Some(name) => port_index(format!("route[{i}].port"), name)?,
            None => ports.iter().position(|p| p.addresses.iter().any(|c| c.contains(via))).ok_or_else(|| {
                ConfigError::new(format!("route[{i}].via"), format!("{via} is on no port's connected network"))
            })?,
        };
        routes.push(Route { prefix, via, port });
    }

    let mut neighbours = Vec::with_capacity(raw.neighbours.len());
    let mut neighbours6 = Vec::new();
    for (i, n) in raw.neighbours.iter().enumerate() {
        let address: std::net::IpAddr = n.address.parse().map_err(|_| {
            ConfigError::new(format!("neighbour[{i}].address"), format!("invalid IP address \"{}\"", n.address))
        })?;
        let mac: EthernetAddress = n.mac.parse().map_err(|_| {
            ConfigError::new(format!("neighbour[{i}].mac"), format!("invalid MAC address \"{}\"", n.mac))
        })?;
        if !mac.is_unicast() {
            return Err(ConfigError::new(format!("neighbour[{i}].mac"), format!("{mac} is not a unicast MAC")));
        }
        let port = port_index(format!("neighbour[{i}].port"), &n.port)?;
        match address {
            std::net::IpAddr::V4(address) => neighbours.push(Neighbour { address, mac, port }),
            std::net::IpAddr::V6(address) => neighbours6.push(Neighbour6 { address, mac, port }),
        }
    }

    let w = &raw.workers;
    if w.lcores.is_empty() {
        return Err(ConfigError::new("workers.lcores", "at least one worker lcore is needed"));
    }
    for (i, &l) in w.lcores.iter().enumerate() {
        if l >= MAX_LCORE {
            return Err(ConfigError::new(format!("workers.lcores[{i}]"), format!("lcore {l} >= {MAX_LCORE}")));
        }
        if l == raw.eal.main_lcore {
            return Err(ConfigError::new(
                format!("workers.lcores[{i}]"),
                format!("lcore {l} is eal.main_lcore (the control lcore)"),
            ));
        }
        if w.lcores[..i].contains(&l) {
            return Err(ConfigError::new(format!("workers.lcores[{i}]"), format!("lcore {l} is listed twice")));
        }
    }
    if raw.eal.main_lcore >= MAX_LCORE {
        return Err(ConfigError::new("eal.main_lcore", format!("lcore {} >= {MAX_LCORE}", raw.eal.main_lcore)));
    }
    let descriptors = |key: &str, v: u32| -> Result<u16, ConfigError> {
        if !(64..=4096).contains(&v) || !v.is_power_of_two() {
            return Err(ConfigError::new(key, format!("{v} is not a power of two in 64..=4096")));
        }
        Ok(u16::try_from(v).unwrap_or(1024))
    };
    let workers = Workers {
        lcores: w.lcores.clone(),
        rx_descriptors: descriptors("workers.rx_descriptors", w.rx_descriptors)?,
        tx_descriptors: descriptors("workers.tx_descriptors", w.tx_descriptors)?,
        idle_sleep_us: w.idle_sleep_us,
        neighbour_capacity: usize::try_from(w.neighbour_capacity).unwrap_or(4096).max(16),
        connections: usize::try_from(w.connections).unwrap_or(262_144),
        oversubscribe: w.oversubscribe,
        steering: match w.steering.as_str() {
            "client-port" => crate::net::rss::Input::ClientPort,
            "client" => crate::net::rss::Input::Client,
            other => {
                return Err(ConfigError::new("workers.steering", format!("\"{other}\" is not client-port or client")))
            }
        },
        rss_key: match &w.rss_key {
            None => crate::net::rss::RSS_KEY,
            Some(k) => crate::net::rss::parse_key(k)
                .ok_or_else(|| ConfigError::new("workers.rss_key", "not 40 bytes written as 80 hex digits"))?,
        },
    };
    if w.connections < 1024 {
        return Err(ConfigError::new("workers.connections", format!("{} is below 1024", w.connections)));
    }
    let own = own_addresses(&ports);
    let mut model = services_model(&raw, &own)?;
    if ports.iter().all(|p| p.kernel.is_none()) {
        for (s, ds) in &model.services {
            if let Some(d) = ds.iter().find(|d| d.forward == FwdMethod::Local) {
                return Err(ConfigError::new(
                    format!("service[{}]", model.services.iter().position(|(x, _)| x == s).unwrap_or(0)),
                    format!(
                        "real server {} is this director (Local): a port needs a kernel interface (port.kernel) to deliver to",
                        d.addr
                    ),
                ));
            }
        }
    }
    let mut checks = Vec::new();
    for (i, s) in raw.services.iter().enumerate() {
        if let Some(c) = check_spec(i, s)? {
            let svc = model.services[i].0.service;
            checks.push((svc, c));
        }
    }
    model.fwmark = fwmark_specs(&raw.fwmarks)?;
    // The rules themselves are built where they are used (the workers' classifiers).
    rules_from_specs(&model.fwmark).map_err(|e| ConfigError::new("fwmark", e.to_string()))?;
    let metrics_listen = if raw.metrics.enabled {
        Some(raw.metrics.listen.parse().map_err(|_| {
            ConfigError::new("metrics.listen", format!("\"{}\" is not an address:port", raw.metrics.listen))
        })?)
    } else {
        None
    };
    if raw.control.socket.trim().is_empty() {
        return Err(ConfigError::new("control.socket", "empty path"));
    }
    if raw.mempool.mbufs < 1024 {
        return Err(ConfigError::new("mempool.mbufs", format!("{} is below 1024", raw.mempool.mbufs)));
    }
    if raw.mempool.cache > 512 {
        return Err(ConfigError::new(
            "mempool.cache",
            format!("{} is above 512 (RTE_MEMPOOL_CACHE_MAX_SIZE)", raw.mempool.cache),
        ));
    }
    for (i, a) in raw.eal.args.iter().enumerate() {
        for reserved in ["-l", "--lcores", "-c", "--main-lcore"] {
            if a == reserved || a.starts_with(&format!("{reserved}=")) {
                return Err(ConfigError::new(
                    format!("eal.args[{i}]"),
                    format!("\"{a}\": lcores come from workers.lcores and eal.main_lcore"),
                ));
            }
        }
    }
    // A zero-copy memif client hands its peer EAL's memory by descriptor: one
    // file per memory-segment list (single-file segments), in hugepages.
    if let Some(i) = super::plan::zero_copy_memif(&raw.eal.args) {
        let no_huge = raw.eal.hugepages == super::Hugepages::Off || raw.eal.args.iter().any(|a| a == "--no-huge");
        if !raw.eal.args.iter().any(|a| a == "--single-file-segments") {
            return Err(ConfigError::new(
                format!("eal.args[{i}]"),
                "a zero-copy memif port needs \"--single-file-segments\" in eal.args",
            ));
        }
        if no_huge {
            return Err(ConfigError::new(
                format!("eal.args[{i}]"),
                "a zero-copy memif port needs hugepages, not --no-huge or eal.hugepages = \"off\"",
            ));
        }
    }
    if raw.eal.memory_mb < 64 {
        return Err(ConfigError::new("eal.memory_mb", format!("{} is below 64", raw.eal.memory_mb)));
    }
    let vrrp = super::vrrp::validate(&raw.vrrp_instances, &raw.vrrp_scripts, &raw.vrrp_sync_groups, &ports)?;
    for (i, inst) in vrrp.instances.iter().enumerate() {
        for (j, s) in inst.track_service.iter().enumerate() {
            if !model.services.iter().any(|(x, _)| x.service == *s) {
                return Err(ConfigError::new(
                    format!("vrrp_instance[{i}].track_service[{j}]"),
                    "no such [[service]] to track",
                ));
            }
        }
    }
    let sync = sync_spec(raw.sync.as_ref(), &ports, &vrrp)?;
    Ok(Config {
        sync,
        vrrp,
        eal: Eal {
            args: raw.eal.args.clone(),
            main_lcore: raw.eal.main_lcore,
            hugepages: raw.eal.hugepages,
            memory_mb: raw.eal.memory_mb,
        },
        ports,
        routes,
        routes6,
        neighbours,
        neighbours6,
        workers,
        mempool: Mempool { mbufs: raw.mempool.mbufs, cache: raw.mempool.cache },
        control_socket: std::path::PathBuf::from(&raw.control.socket),
        metrics_listen,
        model,
        checks,
    })
}

pub(super) fn parse_forward(key: &str, s: &str) -> Result<FwdMethod, ConfigError> {
    match s {
        "masq" | "masquerading" | "nat" => Ok(FwdMethod::Masq),
        "route" | "gatewaying" | "dr" => Ok(FwdMethod::Route),
        "tunnel" | "ipip" | "tun" => Ok(FwdMethod::Tunnel),
        other => Err(ConfigError::new(key, format!("\"{other}\" is not masq, route or tunnel"))),
    }
}

pub(super) fn parse_ipv4(key: &str, s: &str) -> Result<Ipv4Addr, ConfigError> {
    s.parse().map_err(|_| ConfigError::new(key, format!("invalid IPv4 address \"{s}\"")))
}

/// An IPv4 or IPv6 address.
pub(super) fn parse_ip(key: &str, s: &str) -> Result<std::net::IpAddr, ConfigError> {
    s.parse().map_err(|_| ConfigError::new(key, format!("invalid IP address \"{s}\"")))
}

/// The services of the file as changes to an empty model (so the file is checked by
/// exactly the rules `rvsadm` is checked by).
fn services_model(raw: &RawConfig, own: &[std::net::IpAddr]) -> Result<Model, ConfigError> {
    let mut m = Model::default();
    let t = &raw.timeouts;
    m.apply(&Change::SetTimeouts { tcp: t.tcp, tcpfin: t.tcpfin, udp: t.udp })
        .map_err(|e| ConfigError::new("timeouts", e))?;
    for (name, on) in [
        ("sloppy_tcp", raw.ipvs.sloppy_tcp),
        ("expire_nodest_conn", raw.ipvs.expire_nodest_conn),
        ("expire_quiescent_template", raw.ipvs.expire_quiescent_template),
    ] {
        m.apply(&Change::SetSysctl { name: name.into(), value: u32::from(on) })
            .map_err(|e| ConfigError::new(format!("ipvs.{name}"), e))?;
    }
    for (i, s) in raw.services.iter().enumerate() {
        let key = |k: &str| format!("service[{i}].{k}");
        let service = match (s.fwmark, &s.protocol, &s.address) {
            (Some(mark), None, None) if s.port.is_none() => match s.ip_family.as_deref() {
                None | Some("inet") => ServiceKey::Fwmark(mark),
                Some("inet6") => ServiceKey::Fwmark6(mark),
                Some(o) => return Err(ConfigError::new(key("ip_family"), format!("\"{o}\" is not inet or inet6"))),
            },
            (None, Some(p), Some(a)) => {
                let addr = parse_ip(&key("address"), a)?;
                let port = s.port.ok_or_else(|| ConfigError::new(key("port"), "missing"))?;
                match p.as_str() {
                    "tcp" => ServiceKey::of_ip(Protocol::Tcp, addr, port),
                    "udp" => ServiceKey::of_ip(Protocol::Udp, addr, port),
                    other => return Err(ConfigError::new(key("protocol"), format!("\"{other}\" is not tcp or udp"))),
                }
            }
            _ => {
                return Err(ConfigError::new(
                    format!("service[{i}]"),
                    "give either protocol + address + port, or fwmark",
                ))
            }
        };
        // An IPv6 service's netmask is a prefix length ("64"), as ipvsadm's -M.
        let (netmask, prefix6) = match s.netmask.as_deref() {
            Some(n) if service.is_ipv6() => {
                let plen = n.parse::<u8>().ok().filter(|l| (1..=128).contains(l)).ok_or_else(|| {
                    ConfigError::new(key("netmask"), format!("\"{n}\" is not a prefix length (1..=128)"))
                })?;
                (None, Some(plen))
            }
            Some(n) => (Some(parse_ipv4(&key("netmask"), n)?), None),
            None => (None, None),
        };
        if s.ip_family.is_some() && s.fwmark.is_none() {
            return Err(ConfigError::new(key("ip_family"), "only for a fwmark service (an address says its family)"));
        }
        if !crate::ipvs::sched::NAMES.contains(&s.scheduler.as_str()) {
            return Err(ConfigError::new(
                key("scheduler"),
                format!("\"{}\" is not a scheduler (one of: {})", s.scheduler, crate::ipvs::sched::NAMES.join(" ")),
            ));
        }
        let spec = ServiceSpec {
            service,
            scheduler: s.scheduler.clone(),
            flags: s.flags.clone(),
            persistent: s.persistent,
            netmask,
            prefix6,
        };
        m.apply(&Change::AddService(spec)).map_err(|e| ConfigError::new(format!("service[{i}]"), e))?;
        for (j, d) in s.dest.iter().enumerate() {
            let dkey = |k: &str| format!("service[{i}].dest[{j}].{k}");
            let mut spec = DestSpec {
                service,
                addr: parse_ip(&dkey("address"), &d.address)?,
                port: d.port,
                forward: parse_forward(&dkey("forward"), &d.forward)?,
                weight: d.weight,
                upper: d.upper,
                lower: d.lower,
            };
            crate::control::model::localize(&mut spec, own);
            m.apply(&Change::AddDest(spec)).map_err(|e| ConfigError::new(format!("service[{i}].dest[{j}]"), e))?;
        }
    }
    Ok(m)
}

fn fwmark_specs(raw: &[RawFwmark]) -> Result<Vec<FwmarkSpec>, ConfigError> {
    let specs: Vec<FwmarkSpec> = raw
        .iter()
        .map(|r| FwmarkSpec {
            mark: r.mark,
            destination: r.destination.clone(),
            source: r.source.clone(),
            protocol: r.protocol.clone(),
            ports: r.ports.clone(),
            source_ports: r.source_ports.clone(),
            multiport: r.ports.as_deref().is_some_and(|p| p.contains(',')),
            mac_source: r.mac_source.clone(),
        })
        .collect();
    rules_from_specs(&specs).map_err(|e| ConfigError::new(format!("fwmark[{}].{}", e.index, e.field), e.reason))?;
    Ok(specs)
}

/// `[sync]`: which daemons, on which interface, with which settings.
fn sync_spec(
    raw: Option<&RawSync>,
    ports: &[Port],
    vrrp: &crate::control::vrrp::VrrpSpec,
) -> Result<crate::control::sync::SyncSpec, ConfigError> {
    use crate::control::sync::{DaemonSpec, SyncSpec};
    let Some(r) = raw else {
        return Ok(SyncSpec { threshold: 3, period: 50, ..Default::default() });
    };
    let mut d = DaemonSpec::new("", 0);
    let (mut iface, mut syncid) = (r.interface.clone(), r.syncid);
    if let Some(line) = &r.lvs_sync_daemon {
        // keepalived's words: IFACE VRRP_INSTANCE [id N] [maxlen N] [port P] [ttl T] [group A]
        let key = "sync.lvs_sync_daemon";
        let w: Vec<&str> = line.split_whitespace().collect();
        let (Some(i), Some(inst)) = (w.first(), w.get(1)) else {
            return Err(ConfigError::new(key, "needs an interface and a VRRP instance"));
        };
        if !vrrp.instances.iter().any(|x| x.name == *inst) {
            return Err(ConfigError::new(key, format!("no [[vrrp_instance]] named \"{inst}\"")));
        }
        iface = Some((*i).to_string());
        let mut rest = w[2..].chunks(2);
        for kv in rest.by_ref() {
            let [k, v] = kv else { return Err(ConfigError::new(key, format!("\"{}\" needs a value", kv[0]))) };
            let bad = || ConfigError::new(key, format!("{k} {v}: not a valid value"));
            match *k {
                "id" => syncid = Some(v.parse().map_err(|_| bad())?),
                "maxlen" => d.maxlen = v.parse().map_err(|_| bad())?,
                "port" => d.port = v.parse().map_err(|_| bad())?,
                "ttl" => d.ttl = v.parse().map_err(|_| bad())?,
                "group" => d.group = v.parse().map_err(|_| bad())?,
                other => return Err(ConfigError::new(key, format!("unknown word \"{other}\""))),
            }
        }
    }
    let iface = iface.ok_or_else(|| ConfigError::new("sync.interface", "missing"))?;
    let port = ports
        .iter()
        .find(|p| p.name == iface || p.kernel.as_deref() == Some(iface.as_str()))
        .ok_or_else(|| ConfigError::new("sync.interface", format!("no port or kernel interface named \"{iface}\"")))?;
    if port.kernel.is_none() {
        return Err(ConfigError::new(
            "sync.interface",
            format!("port \"{}\" has no kernel interface: set its kernel (sync travels through it)", port.name),
        ));
    }
    d.mcast_interface = iface;
    d.syncid = u8::try_from(syncid.unwrap_or(0)).map_err(|_| ConfigError::new("sync.syncid", "outside 0..=255"))?;
    if let Some(m) = r.maxlen {
        d.maxlen = usize::try_from(m).unwrap_or(0);
    }
    if !(sync_min()..=65_507).contains(&d.maxlen) {
        return Err(ConfigError::new("sync.maxlen", format!("{} is outside {}..=65507", d.maxlen, sync_min())));
    }
    if let Some(g) = &r.group {
        d.group = parse_ipv4("sync.group", g)?;
    }
    if !d.group.is_multicast() {
        return Err(ConfigError::new("sync.group", format!("{} is not a multicast group", d.group)));
    }
    if let Some(p) = r.port {
        d.port = p;
    }
    if d.port == 0 {
        return Err(ConfigError::new("sync.port", "0 is not a port"));
    }
    if let Some(t) = r.ttl {
        d.ttl =
            u8::try_from(t).ok().filter(|t| *t >= 1).ok_or_else(|| ConfigError::new("sync.ttl", "outside 1..=255"))?;
    }
    let (master, backup) = match r.role.as_deref().unwrap_or("both") {
        "master" => (true, false),
        "backup" => (false, true),
        "both" => (true, true),
        other => return Err(ConfigError::new("sync.role", format!("\"{other}\" is not master, backup or both"))),
    };
    Ok(SyncSpec {
        master: master.then(|| d.clone()),
        backup: backup.then_some(d),
        threshold: r.threshold,
        period: r.period,
    })
}

/// The smallest message: a header and one entry.
fn sync_min() -> usize {
    crate::ipvs::sync::HEADER_LEN + crate::ipvs::sync::CONN_V4_LEN
}
