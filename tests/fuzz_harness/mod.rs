//! What each fuzz target does with its input, shared by the cargo-fuzz
//! targets in `fuzz/` (libFuzzer, nightly) and by `tests/fuzz_corpus.rs`, which
//! replays the committed corpus on stable in every test run. Each function panics
//! only on a finding: a crash of the code under test, or a broken invariant.
#![allow(dead_code)]

use appliance::control::{cli, config};
use appliance::net::{arp, ethernet, icmp, icmpv6, ipv4, ipv6, tcp, udp};
use appliance::pipeline::{Pipeline, Verdict};

/// Every wire view over `data`: a view that accepted its input must answer every
/// accessor without panicking.
pub fn wire(data: &[u8]) {
    let Ok(f) = ethernet::Frame::new_checked(data) else { return };
    let _ = (f.dst_addr(), f.src_addr(), f.has_vlan(), f.vlan_id(), f.header_len());
    let payload = f.payload();
    match f.ethertype() {
        ethernet::ethertype::ARP => {
            if let Ok(p) = arp::Packet::new_checked(payload) {
                let _ = arp::Repr::parse(&p);
                let _ = (p.operation(), p.sender_hardware_addr(), p.target_protocol_addr());
            }
        }
        ethernet::ethertype::IPV6 => wire_ipv6(payload, 0),
        _ => {
            let Ok(ip) = ipv4::Packet::new_checked(payload) else { return };
            let _ = ipv4::Repr::parse(&ip);
            let _ = (ip.verify_checksum(), ip.ident(), ip.frag_offset(), ip.dont_frag(), ip.ttl());
            let l4 = ip.payload();
            match ip.protocol() {
                ipv4::protocol::TCP => {
                    if let Ok(t) = tcp::Packet::new_checked(l4) {
                        let _ = (
                            t.src_port(),
                            t.flags(),
                            t.payload().len(),
                            t.verify_checksum(ip.src_addr(), ip.dst_addr()),
                        );
                    }
                }
                ipv4::protocol::UDP => {
                    if let Ok(u) = udp::Packet::new_checked(l4) {
                        let _ = (u.src_port(), u.dst_port(), u.len());
                    }
                }
                ipv4::protocol::ICMP => {
                    if let Ok(m) = icmp::Packet::new_checked(l4) {
                        let _ = (m.msg_type(), m.verify_checksum(), m.is_related_error());
                        if let Some((inner, rest)) = m.embedded_ipv4() {
                            let _ = (inner.src_addr(), inner.dst_addr(), inner.protocol(), rest.len());
                        }
                    }
                }
                ipv4::protocol::IPIP => wire_ip(l4),
                _ => {}
            }
        }
    }
}

/// An IPv6 packet: the extension-header walk, then what it ends at (`depth`:
/// nested IPv6-in-IPv6 is followed once).
fn wire_ipv6(data: &[u8], depth: u8) {
    let Ok(ip) = ipv6::Packet::new_checked(data) else { return };
    let _ = (ipv6::Repr::parse(&ip), ip.traffic_class(), ip.flow_label(), ip.hop_limit());
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let Ok(upper) = ipv6::upper_layer(ip.packet()) else { return };
    let _ = (upper.is_later_fragment(), upper.routing_pending);
    if upper.is_later_fragment() {
        return;
    }
    let Some(l4) = ip.packet().get(upper.offset..) else { return };
    match upper.protocol {
        ipv6::next_header::TCP => {
            if let Ok(t) = tcp::Packet::new_checked(l4) {
                let _ = (t.src_port(), t.flags(), t.payload().len());
            }
        }
        ipv6::next_header::UDP => {
            if let Ok(u) = udp::Packet::new_checked(l4) {
                let _ = (u.src_port(), u.dst_port(), u.len());
            }
        }
        ipv6::next_header::ICMPV6 => {
            if let Ok(m) = icmpv6::Packet::new_checked(l4) {
                let _ = (m.msg_type(), m.verify_checksum(src, dst), m.is_related_error(), m.mtu());
                if matches!(m.msg_type(), icmpv6::msg_type::NEIGHBOUR_SOLICIT | icmpv6::msg_type::NEIGHBOUR_ADVERT) {
                    let _ = (m.nd_target(), m.na_flags(), m.nd_ll_addr(icmpv6::nd_option::SOURCE_LL_ADDR));
                    let _ = m.nd_options().count();
                }
                if let Some((inner, rest)) = m.embedded_ipv6() {
                    let _ = (inner.src_addr(), inner.dst_addr(), inner.next_header(), rest.len());
                }
            }
        }
        ipv6::next_header::IPV6 if depth == 0 => wire_ipv6(l4, 1),
        _ => {}
    }
}

fn wire_ip(data: &[u8]) {
    if let Ok(ip) = ipv4::Packet::new_checked(data) {
        let _ = (ip.verify_checksum(), ip.payload().len());
    }
}

/// One frame through a long-lived pipeline (the fixtures' services: NAT, DR, TUN,
/// UDP), with reply tuples deferred as in the worker: byte 0 picks the port (bit
/// 0), keeps the burst going (bit 7; else it ends after this frame) and advances
/// the clock, the rest is the frame. A
/// frame it transmits must be an Ethernet frame whose IPv4 header (if any) checks.
pub fn pipeline(p: &mut Pipeline, now_ms: &mut u64, data: &[u8]) {
    let Some((&first, frame)) = data.split_first() else { return };
    p.director.conns.set_defer_output(true);
    *now_ms += u64::from((first >> 1) & 0x3f) * 37;
    let mut buf = frame.to_vec();
    let v = p.process(u16::from(first & 1), &mut buf, *now_ms);
    if let Verdict::Transmit(_) = v {
        let f = ethernet::Frame::new_checked(&buf[..]).expect("a transmitted frame has an Ethernet header");
        if f.ethertype() == ethernet::ethertype::IPV4 {
            let ip = ipv4::Packet::new_checked(f.payload()).expect("a transmitted IPv4 packet parses");
            assert!(ip.verify_checksum(), "a transmitted IPv4 header checksum verifies");
        }
    }
    if first & 0x80 == 0 {
        p.end_burst();
    }
    p.expire(*now_ms, 64);
}

/// rvsadm's argument parser and `-R`'s restore parser on arbitrary text.
pub fn rvsadm(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let args: Vec<&str> = text.split_whitespace().collect();
    let _ = cli::parse(&args);
    let _ = cli::parse_restore(&text);
    // rvs-iptables' grammar: a rule that parses is applied, listed, saved and built.
    if let Ok(op) = appliance::control::iptables::parse(&args) {
        let mut rules = Vec::new();
        if appliance::control::iptables::apply(op, &mut rules).is_ok() {
            let _ = appliance::control::iptables::list(&rules, None, true, true);
            let _ = appliance::control::iptables::save(&rules, None);
            // What rvs-iptables takes, rvsd builds.
            assert!(appliance::control::model::rules_from_specs(&rules).is_ok(), "{rules:?}");
        }
    }
}

/// The daemon's configuration parser (and validation) on arbitrary text.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = config::from_toml(text);
    }
}

/// A director with one NAT service (TCP 198.18.0.10:80 over 198.18.1.11 and .12,
/// persistent) and sync on: what a backup enters messages into.
pub fn sync_director() -> appliance::ipvs::director::Director {
    use appliance::ipvs::{dest, director, sched, service, sync, Protocol};
    let vip = std::net::Ipv4Addr::new(198, 18, 0, 10);
    let key = service::ServiceKey::Addr { proto: Protocol::Tcp, addr: vip, port: 80 };
    let pers = service::Persistence::new(300, std::net::Ipv4Addr::BROADCAST).ok();
    let mut s = service::Service::new(key, "rr", sched::SchedFlags::default(), pers).expect("service");
    for last in [11, 12] {
        let rs = std::net::Ipv4Addr::new(198, 18, 1, last);
        s.add_dest(dest::Dest::new(rs, 80, dest::FwdMethod::Masq, 1)).expect("dest");
    }
    let mut t = service::ServiceTable::new();
    t.add(s).expect("table");
    let mut d = director::Director::new(t, 4096, 1);
    d.set_sync(Some(sync::Rules::default()));
    d
}

/// A sync datagram: parsed (every group's, and only its own syncid's), its good
/// entries entered into `d`; they must read back the same once written again.
pub fn sync(d: &mut appliance::ipvs::director::Director, now_s: &mut u32, data: &[u8]) {
    use appliance::ipvs::sync;
    let mut p = sync::Parsed::default();
    sync::parse(data, data.get(1).copied().unwrap_or(0), &mut p);
    sync::parse(data, 0, &mut p);
    let mut m = sync::MessageBuilder::new(p.syncid, usize::from(u16::MAX));
    for e in &p.entries {
        let _ = d.apply_sync(e, *now_s);
        assert!(m.push(e), "a message of at most 255 entries holds every entry");
    }
    let again = m.take();
    let mut q = sync::Parsed::default();
    sync::parse(&again, 0, &mut q);
    assert_eq!(q.entries, p.entries, "entries read back differently once written");
    assert!(q.faults.is_empty(), "{:?}", q.faults);
    *now_s = now_s.wrapping_add(1);
    d.expire(*now_s, 64);
}
