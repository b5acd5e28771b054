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

/// The routing table compiled for the fast path: the connected networks (most
/// specific first), then the static routes (longest prefix first), each with its
/// mask and source address worked out once. A lookup is a scan of a few masks and
/// compares, instead of re-deriving prefixes and sources for every packet.
#[derive(Debug, Clone, Default)]
pub struct Fib {
    entries: Vec<FibEntry>,
}

#[derive(Debug, Clone, Copy)]
struct FibEntry {
    net: u32,
    mask: u32,
    port: u16,
    /// None: a connected network (the destination is its own next hop).
    via: Option<Ipv4Addr>,
    src: Ipv4Addr,
}

impl Fib {
    pub fn new(ports: &[PortView], routes: &[Route]) -> Fib {
        let mut connected: Vec<(u8, FibEntry)> = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            let port = u16::try_from(i).unwrap_or(u16::MAX);
            for c in &p.addresses {
                let mask = c.netmask();
                connected.push((
                    c.prefix_len(),
                    FibEntry { net: u32::from(c.address()) & mask, mask, port, via: None, src: c.address() },
                ));
            }
        }
        // Stable: among equal prefixes the first port keeps precedence.
        connected.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
        let fib0 = Fib { entries: connected.into_iter().map(|(_, e)| e).collect() };
        let mut statics: Vec<(u8, FibEntry)> = Vec::new();
        // Among equal prefixes the route listed last wins (as before): insert reversed.
        for r in routes.iter().rev() {
            let Some(src) = fib0
                .connected(r.via)
                .map(|(_, s)| s)
                .or_else(|| ports.get(usize::from(r.port)).and_then(|p| p.addresses.first().map(|c| c.address())))
            else {
                continue;
            };
            let mask = r.prefix.netmask();
            statics.push((
                r.prefix.prefix_len(),
                FibEntry { net: u32::from(r.prefix.address()) & mask, mask, port: r.port, via: Some(r.via), src },
            ));
        }
        statics.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
        let mut entries = fib0.entries;
        entries.extend(statics.into_iter().map(|(_, e)| e));
        Fib { entries }
    }

    /// The connected network holding `dst`, as (port, the port's address there).
    #[inline]
    pub fn connected(&self, dst: Ipv4Addr) -> Option<(u16, Ipv4Addr)> {
        let d = u32::from(dst);
        self.entries.iter().take_while(|e| e.via.is_none()).find(|e| d & e.mask == e.net).map(|e| (e.port, e.src))
    }

    /// Routes `dst`: a connected network first, else the longest static prefix.
    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<Egress> {
        self.lookup_kind(dst).map(|(e, _)| e)
    }

    /// As `lookup`, and whether `dst` is on a connected network.
    #[inline]
    pub fn lookup_kind(&self, dst: Ipv4Addr) -> Option<(Egress, bool)> {
        let d = u32::from(dst);
        self.entries
            .iter()
            .find(|e| d & e.mask == e.net)
            .map(|e| (Egress { port: e.port, next_hop: e.via.unwrap_or(dst), src: e.src }, e.via.is_none()))
    }
}

/// Where packets to an address left last: the egress, whether the address is on a
/// connected network, and the frame's MAC addresses (the next hop's, then the
/// egress port's: the twelve bytes a frame leaving that way starts with) — good
/// while the neighbour table's
/// generation is the one it was cached under (a neighbour that moves, or a static
/// entry written, changes it). Direct-mapped, fixed size: a real server's or a
/// router's entry stays; among many directly connected clients they take turns,
/// and a miss costs the route and neighbour lookups it saves.
pub struct HopCache {
    /// A fixed array: a masked position needs no bounds check.
    entries: Box<[Hop; HOP_CACHE_ENTRIES]>,
}

#[derive(Debug, Clone, Copy)]
struct Hop {
    to: Ipv4Addr,
    /// The neighbour table's generation + 1 (0: empty).
    generation: u64,
    egress: Egress,
    connected: bool,
    macs: [u8; 12],
}

/// Entries in a worker's cache (a power of two).
pub const HOP_CACHE_ENTRIES: usize = 256;

impl Default for HopCache {
    fn default() -> Self {
        let empty = Hop {
            to: Ipv4Addr::UNSPECIFIED,
            generation: 0,
            egress: Egress { port: 0, next_hop: Ipv4Addr::UNSPECIFIED, src: Ipv4Addr::UNSPECIFIED },
            connected: false,
            macs: [0; 12],
        };
        HopCache { entries: Box::new([empty; HOP_CACHE_ENTRIES]) }
    }
}

impl HopCache {
    #[inline]
    fn at(to: Ipv4Addr) -> usize {
        let h = u32::from(to).wrapping_mul(0x9e37_79b1) >> 24;
        h as usize & (HOP_CACHE_ENTRIES - 1)
    }

    /// The cached egress and MACs for `to` under neighbour generation `generation`.
    #[inline(always)]
    pub fn get_egress(&self, to: Ipv4Addr, generation: u64) -> Option<(Egress, [u8; 12])> {
        let h = &self.entries[Self::at(to)];
        (h.generation == generation + 1 && h.to == to).then_some((h.egress, h.macs))
    }

    /// The cached egress port and MACs for `to` under neighbour generation
    /// `generation` (`connected_only`: only if `to` is on a connected network).
    #[inline(always)]
    pub fn get(&self, to: Ipv4Addr, generation: u64, connected_only: bool) -> Option<(u16, [u8; 12])> {
        let h = &self.entries[Self::at(to)];
        (h.generation == generation + 1 && h.to == to && (h.connected || !connected_only))
            .then_some((h.egress.port, h.macs))
    }

    #[inline]
    pub fn put(&mut self, to: Ipv4Addr, generation: u64, egress: Egress, connected: bool, macs: [u8; 12]) {
        self.entries[Self::at(to)] = Hop { to, generation: generation + 1, egress, connected, macs };
    }

    /// Forgets everything (the routes changed).
    pub fn clear(&mut self) {
        self.entries.iter_mut().for_each(|h| h.generation = 0);
    }
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
                addresses6: vec![],
                mtu: 1500,
                host: Default::default(),
            },
            PortView {
                mac: EthernetAddress([2, 0, 0, 0, 0, 2]),
                addresses: vec!["198.18.1.1/24".parse().unwrap(), "198.18.1.129/25".parse().unwrap()],
                addresses6: vec![],
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
        let fib = Fib::new(&p, &routes);
        let e = fib.lookup("198.18.1.11".parse().unwrap()).unwrap();
        assert_eq!((e.port, e.next_hop, e.src), (1, "198.18.1.11".parse().unwrap(), "198.18.1.1".parse().unwrap()));
        let e = fib.lookup("198.18.1.200".parse().unwrap()).unwrap();
        assert_eq!(e.src, "198.18.1.129".parse::<Ipv4Addr>().unwrap(), "the /25 is more specific");
        let e = fib.lookup("198.19.5.5".parse().unwrap()).unwrap();
        assert_eq!((e.port, e.next_hop), (1, "198.18.1.254".parse().unwrap()));
        let e = fib.lookup("203.0.113.9".parse().unwrap()).unwrap();
        assert_eq!((e.port, e.next_hop, e.src), (0, "198.18.0.1".parse().unwrap(), "198.18.0.10".parse().unwrap()));
        assert_eq!(Fib::new(&p, &[]).lookup("203.0.113.9".parse().unwrap()), None);
        assert_eq!(fib.connected("198.19.5.5".parse().unwrap()), None, "routed, not connected");
        assert_eq!(fib.connected("198.18.0.7".parse().unwrap()), Some((0, "198.18.0.10".parse().unwrap())));
    }

    #[test]
    fn the_hop_cache_answers_for_its_address_and_generation_and_direct_routing_only_when_connected() {
        let mut hops = HopCache::default();
        let macs = [2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 2];
        let via: Ipv4Addr = "198.18.1.254".parse().unwrap();
        let routed: Ipv4Addr = "198.19.0.7".parse().unwrap();
        let eg = Egress { port: 1, next_hop: via, src: "198.18.1.1".parse().unwrap() };
        hops.put(routed, 4, eg, false, macs);
        assert_eq!(hops.get(routed, 4, false), Some((1, macs)));
        assert_eq!(hops.get_egress(routed, 4), Some((eg, macs)));
        // Behind a router: not for direct routing, which needs the server's own MAC.
        assert_eq!(hops.get(routed, 4, true), None);
        // Another neighbour generation, or another address in the same place: a miss.
        assert_eq!(hops.get(routed, 5, false), None);
        assert_eq!(hops.get_egress(routed, 5), None);
        let other =
            (1u32..).map(|i| Ipv4Addr::from(u32::from(routed) + i)).find(|a| HopCache::at(*a) == HopCache::at(routed));
        assert_eq!(hops.get(other.unwrap(), 4, false), None);
        let connected: Ipv4Addr = "198.18.1.11".parse().unwrap();
        hops.put(connected, 4, Egress { next_hop: connected, ..eg }, true, macs);
        assert_eq!(hops.get(connected, 4, true), Some((1, macs)));
        hops.clear();
        assert_eq!(hops.get(connected, 4, false), None);
    }
}
