//! Persistence templates (`-p`, `-M`): which template a new connection looks for.
//!
//! As the kernel's `ip_vs_sched_persist`, a template is a table entry keyed by
//! - `<proto, client & netmask, 0, VIP, vport>` for a persistent port service
//!   (PPC; FTP's port 21 uses vport 0 so data connections to other ports follow),
//! - `<proto, client & netmask, 0, VIP, 0>` for an all-ports service (PCC, port 0),
//! - `<0, client & netmask, 0, fwmark, 0>` for a firewall-mark service (the mark
//!   in the address field), so 80 and 443 of one client go to one real server.
//!
//! A template lives `timeout` after the last connection it created, and longer while
//! connections it controls are alive. It points at a dest until that dest leaves
//! the service; a quiesced dest (weight 0) keeps its clients, as with the kernel's
//! default `expire_quiescent_template = 0`.

use super::addr::Addr;
use super::conn::{self, Binding, Conn, ConnState, Endpoints, NONE};
use super::conntab::Tuple;
use super::service::{Service, ServiceKey};

/// FTP's control port: its templates ignore the port (passive data follows).
pub const FTP_PORT: u16 = 21;

/// The template key for a packet from `src` to `dst:dport` (protocol `proto`) of a
/// persistent service.
pub fn template_key<A: Addr>(svc: &Service, proto: u8, src: A, dst: A, dport: u16) -> Option<Tuple<A>> {
    let p = svc.persistence?;
    let snet = src.persist_mask(&p);
    let vport = svc.vport();
    let (proto, vaddr, port) = match svc.key {
        ServiceKey::Fwmark(m) | ServiceKey::Fwmark6(m) => (0, A::from_mark(m), 0),
        _ if vport != 0 && dport == vport => (proto, dst, if vport == FTP_PORT { 0 } else { dport }),
        _ => (proto, dst, 0),
    };
    Some(Tuple { proto, saddr: snet, sport: 0, daddr: vaddr, dport: port })
}

/// A new template under `key` for service `svc` (id `service_id`), pointing at its
/// dest at index `dest`, made for a packet to port `dport`. A persistent port
/// service's template keeps the dest's port (FTP's does not: its data connections go
/// to other ports); it lives the service's persistence timeout. None when the
/// dest is of another family than the key (configuration keeps them alike).
pub fn template<A: Addr>(svc: &Service, service_id: u32, key: Tuple<A>, dest: usize, dport: u16) -> Option<Conn<A>> {
    let d = svc.dests().get(dest)?;
    let daddr = A::of(d.addr)?;
    let vport = svc.vport();
    let port = if vport != 0 && dport == vport && vport != FTP_PORT { d.port } else { 0 };
    let ep = Endpoints {
        proto: key.proto,
        caddr: key.saddr,
        cport: 0,
        vaddr: key.daddr,
        vport: key.dport,
        daddr,
        dport: port,
    };
    let binding = Binding { service: service_id, dest: svc.dest_id(dest) };
    let timeout = svc.persistence.map_or(300, |p| p.timeout_s);
    Some(Conn::new(ep, ConnState::Template, d.fwd, conn::flags::TEMPLATE, binding, timeout, NONE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::sched::SchedFlags;
    use crate::ipvs::service::Persistence;
    use crate::ipvs::Protocol;
    use std::net::Ipv4Addr;

    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

    fn svc(key: ServiceKey, mask: Ipv4Addr) -> Service {
        Service::new(key, "rr", SchedFlags::default(), Some(Persistence::new(300, mask).unwrap())).unwrap()
    }

    #[test]
    fn keys_for_ppc_pcc_ftp_and_fwmark() {
        let all = Ipv4Addr::BROADCAST;
        let ppc = svc(ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port: 80 }, all);
        assert_eq!(
            template_key(&ppc, 6, CLIENT, VIP, 80),
            Some(Tuple { proto: 6, saddr: CLIENT, sport: 0, daddr: VIP, dport: 80 })
        );
        let pcc = svc(ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port: 0 }, all);
        let k80 = template_key(&pcc, 6, CLIENT, VIP, 80).unwrap();
        let k443 = template_key(&pcc, 6, CLIENT, VIP, 443).unwrap();
        assert_eq!(k80, k443, "one template for every port of the VIP");
        assert_eq!(k80.dport, 0);
        let ftp = svc(ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port: 21 }, all);
        assert_eq!(template_key(&ftp, 6, CLIENT, VIP, 21).unwrap().dport, 0);
        let fwm = svc(ServiceKey::Fwmark(1), all);
        let k = template_key(&fwm, 6, CLIENT, VIP, 443).unwrap();
        assert_eq!((k.proto, k.daddr, k.dport), (0, Ipv4Addr::new(0, 0, 0, 1), 0));
        assert_eq!(k, template_key(&fwm, 17, CLIENT, VIP, 80).unwrap(), "whatever the protocol and port");
    }

    #[test]
    fn netmask_groups_clients() {
        let s = svc(ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port: 80 }, Ipv4Addr::new(255, 255, 255, 0));
        let a = template_key(&s, 6, Ipv4Addr::new(198, 18, 0, 100), VIP, 80).unwrap();
        let b = template_key(&s, 6, Ipv4Addr::new(198, 18, 0, 200), VIP, 80).unwrap();
        let c = template_key(&s, 6, Ipv4Addr::new(198, 18, 1, 100), VIP, 80).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.saddr, Ipv4Addr::new(198, 18, 0, 0));
        let plain = Service::new(
            ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port: 80 },
            "rr",
            SchedFlags::default(),
            None,
        )
        .unwrap();
        assert_eq!(template_key(&plain, 6, CLIENT, VIP, 80), None);
    }
}
