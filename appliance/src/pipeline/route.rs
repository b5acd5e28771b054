//! Where a packet to an address leaves: the port whose connected network holds it
//! (most specific prefix first), else the longest-prefix static route; and which
//! next hop's MAC it needs.

use super::PortView;
use crate::net::ipv4::Ipv4Cidr;
use std::net::Ipv4Addr;

/// A static route: `prefix` via `via`, out of port index `port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub prefix: Ipv4Cidr,
    pub via: Ipv4Addr,
    pub port: u16,
}

/// The egress: port index, the next hop to resolve, and the port's own address on
/// that network (the source of ARP requests and of tunnels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    pub port: u16,
    pub next_hop: Ipv4Addr,
    pub src: Ipv4Addr,
}

/// The connected network holding `dst`, as (port, the port's address there).
pub fn connected(ports: &[PortView], dst: Ipv4Addr) -> Option<(u16, Ipv4Addr)> {
    let mut best: Option<(u16, Ipv4Cidr)> = None;
    for (i, p) in ports.iter().enumerate() {
        for c in &p.addresses {
            if c.contains(dst) && best.is_none_or(|(_, b)| c.prefix_len() > b.prefix_len()) {
                best = Some((u16::try_from(i).unwrap_or(u16::MAX), *c));
            }
        }
    }
    best.map(|(p, c)| (p, c.address()))
}

/// Routes `dst`.
pub fn lookup(ports: &[PortView], routes: &[Route], dst: Ipv4Addr) -> Option<Egress> {
    if let Some((port, src)) = connected(ports, dst) {
        return Some(Egress { port, next_hop: dst, src });
    }
    let r = routes.iter().filter(|r| r.prefix.contains(dst)).max_by_key(|r| r.prefix.prefix_len())?;
    let src = connected(ports, r.via)
        .map(|(_, s)| s)
        .or_else(|| ports.get(usize::from(r.port)).and_then(|p| p.addresses.first().map(|c| c.address())))?;
    Some(Egress { port: r.port, next_hop: r.via, src })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ethernet::EthernetAddress;

    fn ports() -> Vec<PortView> {
        vec![
            PortView {
                mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
                addresses: vec!["198.18.0.10/24".parse().unwrap()],
                mtu: 1500,
                host: Default::default(),
            },
            PortView {
                mac: EthernetAddress([2, 0, 0, 0, 0, 2]),
                addresses: vec!["198.18.1.1/24".parse().unwrap(), "198.18.1.129/25".parse().unwrap()],
                mtu: 1500,
                host: Default::default(),
            },
        ]
    }

    #[test]
    fn connected_most_specific_then_longest_route() {
        let routes = vec![
            Route { prefix: "0.0.0.0/0".parse().unwrap(), via: "198.18.0.1".parse().unwrap(), port: 0 },
            Route { prefix: "198.19.0.0/16".parse().unwrap(), via: "198.18.1.254".parse().unwrap(), port: 1 },
        ];
        let p = ports();
        let e = lookup(&p, &routes, "198.18.1.11".parse().unwrap()).unwrap();
        assert_eq!((e.port, e.next_hop, e.src), (1, "198.18.1.11".parse().unwrap(), "198.18.1.1".parse().unwrap()));
        let e = lookup(&p, &routes, "198.18.1.200".parse().unwrap()).unwrap();
        assert_eq!(e.src, "198.18.1.129".parse::<Ipv4Addr>().unwrap(), "the /25 is more specific");
        let e = lookup(&p, &routes, "198.19.5.5".parse().unwrap()).unwrap();
        assert_eq!((e.port, e.next_hop), (1, "198.18.1.254".parse().unwrap()));
        let e = lookup(&p, &routes, "203.0.113.9".parse().unwrap()).unwrap();
        assert_eq!((e.port, e.next_hop, e.src), (0, "198.18.0.1".parse().unwrap(), "198.18.0.10".parse().unwrap()));
        assert_eq!(lookup(&p, &[], "203.0.113.9".parse().unwrap()), None);
    }
}
