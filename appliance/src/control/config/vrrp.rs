//! `[[vrrp_instance]]`, `[[vrrp_script]]` and `[[vrrp_sync_group]]`: keepalived's
//! words and defaults, checked as keepalived checks them (plus what RVS needs: the
//! instance's port must have a kernel interface, through which advertisements
//! travel, and an address to send them from).

use super::schema::{RawVrrpInstance, RawVrrpScript, RawVrrpSyncGroup};
use super::{ConfigError, Port};
use crate::control::protocol::ServiceKey;
use crate::control::vrrp::{InstanceSpec, ScriptSpec, SyncGroupSpec, VrrpSpec};
use crate::ipvs::Protocol;
use crate::net::vrrp::AUTH_LEN;
use std::net::IpAddr;

pub(super) fn validate(
    instances: &[RawVrrpInstance],
    scripts: &[RawVrrpScript],
    groups: &[RawVrrpSyncGroup],
    ports: &[Port],
) -> Result<VrrpSpec, ConfigError> {
    let mut spec = VrrpSpec::default();
    for (i, s) in scripts.iter().enumerate() {
        let key = |k: &str| format!("vrrp_script[{i}].{k}");
        if s.name.trim().is_empty() || scripts[..i].iter().any(|x| x.name == s.name) {
            return Err(ConfigError::new(key("name"), format!("\"{}\" is empty or used twice", s.name)));
        }
        if s.script.trim().is_empty() {
            return Err(ConfigError::new(key("script"), "empty command"));
        }
        if s.interval == 0 {
            return Err(ConfigError::new(key("interval"), "0 is not an interval"));
        }
        if !(-253..=253).contains(&s.weight) {
            return Err(ConfigError::new(key("weight"), format!("{} is outside -253..=253", s.weight)));
        }
        if s.rise == 0 || s.fall == 0 {
            return Err(ConfigError::new(key(if s.rise == 0 { "rise" } else { "fall" }), "must be at least 1"));
        }
        spec.scripts.push(ScriptSpec {
            name: s.name.clone(),
            script: s.script.clone(),
            interval_s: s.interval,
            timeout_s: s.timeout.unwrap_or(s.interval).max(1),
            weight: s.weight,
            rise: s.rise,
            fall: s.fall,
        });
    }
    let port_of = |key: String, name: &str| -> Result<usize, ConfigError> {
        ports
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| ConfigError::new(key, format!("no [[port]] named \"{name}\"")))
    };
    for (i, r) in instances.iter().enumerate() {
        let key = |k: &str| format!("vrrp_instance[{i}].{k}");
        if r.name.trim().is_empty() || instances[..i].iter().any(|x| x.name == r.name) {
            return Err(ConfigError::new(key("name"), format!("\"{}\" is empty or used twice", r.name)));
        }
        let want_master = match r.state.as_str() {
            "MASTER" => true,
            "BACKUP" => false,
            other => return Err(ConfigError::new(key("state"), format!("\"{other}\" is not MASTER or BACKUP"))),
        };
        let port = port_of(key("interface"), &r.interface)?;
        let pc = &ports[port];
        if pc.kernel.is_none() {
            return Err(ConfigError::new(
                key("interface"),
                format!(
                    "port \"{}\" has no kernel interface: set port[{port}].kernel (advertisements travel through it)",
                    r.interface
                ),
            ));
        }
        // The family of the first address is the instance's (IPv6 advertisements
        // come from the port's link-local address: no configured one is needed).
        let is_v6 = |x: &RawVrrpInstance| x.virtual_ipaddress.first().is_some_and(|a| a.contains(':'));
        let ipv6 = is_v6(r);
        if !ipv6 && pc.addresses.is_empty() {
            return Err(ConfigError::new(
                key("interface"),
                format!("port \"{}\" has no address to send advertisements from", r.interface),
            ));
        }
        let vrid = u8::try_from(r.virtual_router_id).ok().filter(|v| *v >= 1).ok_or_else(|| {
            ConfigError::new(key("virtual_router_id"), format!("{} is outside 1..=255", r.virtual_router_id))
        })?;
        // An IPv4 and an IPv6 router may share a VRID (RFC 5798 §7.3).
        if instances[..i]
            .iter()
            .any(|x| x.interface == r.interface && x.virtual_router_id == r.virtual_router_id && is_v6(x) == ipv6)
        {
            return Err(ConfigError::new(key("virtual_router_id"), format!("{vrid} is used twice on {}", r.interface)));
        }
        let priority = u8::try_from(r.priority)
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| ConfigError::new(key("priority"), format!("{} is outside 1..=255", r.priority)))?;
        let version = match r.version {
            // Version 2 has no IPv6: as keepalived, an IPv6 instance speaks 3.
            2 if ipv6 => 3u8,
            2 => 2u8,
            3 => 3u8,
            v => return Err(ConfigError::new(key("version"), format!("{v} is not 2 or 3"))),
        };
        // Centiseconds: whole ones in 1..=4095 (checked below) fit a u16.
        let cs = (r.advert_int * 100.0).round();
        let cs16 = if (1.0..=4095.0).contains(&cs) { format!("{cs}").parse::<u16>().unwrap_or(0) } else { 0 };
        let advert_cs = if version == 2 {
            if r.advert_int.fract() != 0.0 || !(1.0..=255.0).contains(&r.advert_int) {
                return Err(ConfigError::new(
                    key("advert_int"),
                    format!(
                        "{} is not whole seconds in 1..=255 (version 2; below a second needs version = 3)",
                        r.advert_int
                    ),
                ));
            }
            cs16
        } else {
            if !(1.0..=4095.0).contains(&cs) {
                return Err(ConfigError::new(key("advert_int"), format!("{} is outside 0.01..=40.95 s", r.advert_int)));
            }
            cs16
        };
        let auth_pass = match &r.authentication {
            None => None,
            Some(_) if version == 3 => {
                return Err(ConfigError::new(key("authentication"), "VRRP version 3 has no authentication (RFC 5798)"))
            }
            Some(a) if a.auth_type != "PASS" => {
                return Err(ConfigError::new(
                    key("authentication.auth_type"),
                    format!("\"{}\" is not supported (PASS)", a.auth_type),
                ))
            }
            Some(a) => {
                if a.auth_pass.is_empty() {
                    return Err(ConfigError::new(key("authentication.auth_pass"), "empty password"));
                }
                // keepalived sends the first 8 characters, zero-padded.
                let mut b = [0u8; AUTH_LEN];
                for (d, s) in b.iter_mut().zip(a.auth_pass.bytes()) {
                    *d = s;
                }
                Some(b)
            }
        };
        if r.virtual_ipaddress.is_empty() {
            return Err(ConfigError::new(key("virtual_ipaddress"), "at least one address"));
        }
        let (mut addrs, mut excluded) = (Vec::new(), Vec::new());
        let lists = [
            ("virtual_ipaddress", &r.virtual_ipaddress),
            ("virtual_ipaddress_excluded", &r.virtual_ipaddress_excluded),
        ];
        for (list, raw) in lists {
            for (j, a) in raw.iter().enumerate() {
                let k = format!("vrrp_instance[{i}].{list}[{j}]");
                let text = a.split('/').next().unwrap_or_default();
                let addr: IpAddr =
                    text.parse().map_err(|_| ConfigError::new(&k, format!("invalid IP address \"{a}\"")))?;
                let unicast = match addr {
                    IpAddr::V4(v) => !(v.is_unspecified() || v.is_multicast() || v.is_broadcast()),
                    IpAddr::V6(v) => !(v.is_unspecified() || v.is_multicast() || v.is_loopback()),
                };
                if !unicast {
                    return Err(ConfigError::new(&k, format!("\"{a}\" is not a unicast host address")));
                }
                if list == "virtual_ipaddress" && addr.is_ipv6() != ipv6 {
                    return Err(ConfigError::new(
                        &k,
                        format!("{addr} is not of the instance's family (the first address's); put it in virtual_ipaddress_excluded"),
                    ));
                }
                let owned = |p: &Port| match addr {
                    IpAddr::V4(v) => p.addresses.iter().any(|c| c.address() == v),
                    IpAddr::V6(v) => p.addresses6.iter().any(|c| c.address() == v),
                };
                if let Some((pi, _)) = ports.iter().enumerate().find(|(_, p)| owned(p)) {
                    return Err(ConfigError::new(
                        &k,
                        format!("{addr} is carried by VRRP: remove it from port[{pi}].addresses (it is owned only while MASTER)"),
                    ));
                }
                let same = |y: &String| y.split('/').next().and_then(|t| t.parse::<IpAddr>().ok()) == Some(addr);
                if instances[..i]
                    .iter()
                    .any(|x| x.virtual_ipaddress.iter().chain(&x.virtual_ipaddress_excluded).any(same))
                    || addrs.contains(&addr)
                    || excluded.contains(&addr)
                {
                    return Err(ConfigError::new(&k, format!("{addr} is carried twice")));
                }
                if list == "virtual_ipaddress" {
                    addrs.push(addr);
                } else {
                    excluded.push(addr);
                }
            }
        }
        let mut track_interface = Vec::new();
        for (j, n) in r.track_interface.iter().enumerate() {
            track_interface.push(port_of(format!("vrrp_instance[{i}].track_interface[{j}]"), n)?);
        }
        let mut track_service = Vec::new();
        for (j, s) in r.track_service.iter().enumerate() {
            track_service.push(
                parse_service(s).map_err(|e| ConfigError::new(format!("vrrp_instance[{i}].track_service[{j}]"), e))?,
            );
        }
        let mut track_script = Vec::new();
        for (j, n) in r.track_script.iter().enumerate() {
            if !spec.scripts.iter().any(|s| &s.name == n) {
                return Err(ConfigError::new(
                    format!("vrrp_instance[{i}].track_script[{j}]"),
                    format!("no [[vrrp_script]] named \"{n}\""),
                ));
            }
            track_script.push((n.clone(), None));
        }
        if r.nopreempt && want_master {
            return Err(ConfigError::new(key("nopreempt"), "needs state BACKUP (as in keepalived)"));
        }
        if r.preempt_delay > 1000 {
            return Err(ConfigError::new(key("preempt_delay"), format!("{} is above 1000 s", r.preempt_delay)));
        }
        spec.instances.push(InstanceSpec {
            name: r.name.clone(),
            want_master,
            interface: r.interface.clone(),
            port,
            vrid,
            priority,
            advert_cs,
            version,
            nopreempt: r.nopreempt,
            preempt_delay_s: r.preempt_delay,
            auth_pass,
            addrs,
            excluded,
            track_interface,
            track_service,
            track_script,
            garp_master_delay_s: r.garp_master_delay,
            garp_master_repeat: r.garp_master_repeat.max(1),
            garp_master_refresh_s: r.garp_master_refresh,
            notify_master: r.notify_master.clone(),
            notify_backup: r.notify_backup.clone(),
            notify_fault: r.notify_fault.clone(),
            notify: r.notify.clone(),
        });
    }
    for (i, g) in groups.iter().enumerate() {
        let key = |k: &str| format!("vrrp_sync_group[{i}].{k}");
        if g.name.trim().is_empty() || groups[..i].iter().any(|x| x.name == g.name) {
            return Err(ConfigError::new(key("name"), format!("\"{}\" is empty or used twice", g.name)));
        }
        for (j, m) in g.group.iter().enumerate() {
            let k = format!("vrrp_sync_group[{i}].group[{j}]");
            if !spec.instances.iter().any(|x| &x.name == m) {
                return Err(ConfigError::new(k, format!("no [[vrrp_instance]] named \"{m}\"")));
            }
            if groups[..i].iter().any(|x| x.group.contains(m)) || g.group[..j].contains(m) {
                return Err(ConfigError::new(k, format!("\"{m}\" is in a sync group already")));
            }
        }
        spec.groups.push(SyncGroupSpec {
            name: g.name.clone(),
            members: g.group.clone(),
            notify_master: g.notify_master.clone(),
            notify_backup: g.notify_backup.clone(),
            notify_fault: g.notify_fault.clone(),
            notify: g.notify.clone(),
        });
    }
    Ok(spec)
}

/// "-t 198.18.0.10:80", "-u ...", "-f 3", "-f 3 -6": a service named as ipvsadm
/// names it.
fn parse_service(s: &str) -> Result<ServiceKey, String> {
    let mut it = s.split_whitespace();
    let (Some(flag), Some(v), six) = (it.next(), it.next(), it.next()) else {
        return Err(format!("\"{s}\" is not \"-t ADDR:PORT\", \"-u ADDR:PORT\" or \"-f MARK\""));
    };
    if flag == "-f" && six == Some("-6") && it.next().is_none() {
        return parse_service(&format!("-f {v}")).map(|k| ServiceKey::Fwmark6(k.fwmark().unwrap_or(0)));
    }
    if six.is_some() {
        return Err(format!("\"{s}\" is not \"-t ADDR:PORT\", \"-u ADDR:PORT\" or \"-f MARK\""));
    }
    match flag {
        "-t" | "-u" => {
            let (addr, port) = crate::control::cli::parse_addr_port(v, "virtual service")?;
            let proto = if flag == "-t" { Protocol::Tcp } else { Protocol::Udp };
            Ok(ServiceKey::of_ip(proto, addr, port))
        }
        "-f" => {
            v.parse().ok().filter(|m| *m != 0).map(ServiceKey::Fwmark).ok_or_else(|| format!("illegal fwmark \"{v}\""))
        }
        _ => Err(format!("\"{s}\" is not \"-t ADDR:PORT\", \"-u ADDR:PORT\" or \"-f MARK\"")),
    }
}
