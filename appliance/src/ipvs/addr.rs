//! The two address families the LVS domain keys connections by. A connection
//! table, its tuples and its entries are of one family (`ConnTable<Ipv4Addr>`,
//! the default, or `ConnTable<Ipv6Addr>`): an IPv4 connection stays one cache line,
//! an IPv6 one takes two.

use super::conn::Endpoints;
use super::conntab::Tuple;
use super::service::Persistence;
use core::fmt;
use core::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub trait Addr: Copy + Eq + Ord + Hash + fmt::Debug + fmt::Display + Send + Sync + 'static {
    const UNSPECIFIED: Self;
    /// The address as either family.
    fn ip(self) -> IpAddr;
    /// `a` when it is of this family.
    fn of(a: IpAddr) -> Option<Self>;
    /// The connection table's hash of `t`, keyed by `seed`.
    fn mix(seed: u64, t: &Tuple<Self>) -> u64;
    /// A firewall-mark template keeps the mark where the virtual address goes.
    fn from_mark(mark: u32) -> Self;
    /// The client network a persistence template is keyed by (`-M`).
    fn persist_mask(self, p: &Persistence) -> Self;
    /// What NAT's rewrite towards the real server does to the checksums
    /// (`Conn::nat_sums`): kept for IPv4 only (IPv6's NAT sums from the packet).
    fn nat_sums(_ep: &Endpoints<Self>) -> [u16; 2] {
        [0; 2]
    }
    /// `ep`'s input key (its output key when `output`) is `t`.
    #[inline(always)]
    fn key_eq(ep: &Endpoints<Self>, output: bool, t: &Tuple<Self>) -> bool {
        let (saddr, sport, daddr, dport) =
            if output { (ep.daddr, ep.dport, ep.caddr, ep.cport) } else { (ep.caddr, ep.cport, ep.vaddr, ep.vport) };
        saddr == t.saddr && daddr == t.daddr && sport == t.sport && dport == t.dport && ep.proto == t.proto
    }
}

/// The last mixing step of the table hash (splitmix64's), over the ports and
/// protocol word `b` and the addresses' word `a`.
#[inline(always)]
fn finish(seed: u64, a: u64, b: u64) -> u64 {
    let mut h = seed ^ a.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h = (h ^ (h >> 29) ^ b).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^ (h >> 32)
}

#[inline(always)]
fn ports(t_sport: u16, t_dport: u16, proto: u8) -> u64 {
    (u64::from(t_sport) << 32) | (u64::from(t_dport) << 8) | u64::from(proto)
}

impl Addr for Ipv4Addr {
    const UNSPECIFIED: Self = Ipv4Addr::UNSPECIFIED;
    fn ip(self) -> IpAddr {
        IpAddr::V4(self)
    }
    fn of(a: IpAddr) -> Option<Self> {
        match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }
    #[inline(always)]
    fn mix(seed: u64, t: &Tuple<Self>) -> u64 {
        // (Not the word `key_eq` compares: read from endpoints just written field
        // by field, a word spanning two fields would wait for both stores.)
        let a = (u64::from(u32::from(t.saddr)) << 32) | u64::from(u32::from(t.daddr));
        finish(seed, a, ports(t.sport, t.dport, t.proto))
    }
    fn from_mark(mark: u32) -> Self {
        Ipv4Addr::from(mark)
    }
    fn persist_mask(self, p: &Persistence) -> Self {
        p.mask(self)
    }
    #[inline]
    fn nat_sums(ep: &Endpoints<Self>) -> [u16; 2] {
        crate::net::checksum::nat_sums(ep.vaddr, ep.daddr, ep.vport, ep.dport)
    }
    /// The key's two addresses as one word and its two ports as another, each
    /// compared with the endpoints' neighbours (`Endpoints`' layout): (vaddr,
    /// caddr) and (vport, cport) for the input key, (caddr, daddr) and (cport,
    /// dport) for the output key, in memory order.
    #[inline(always)]
    fn key_eq(ep: &Endpoints<Self>, output: bool, t: &Tuple<Self>) -> bool {
        let a = |a: Ipv4Addr| u64::from(u32::from_ne_bytes(a.octets()));
        let p = u32::from;
        let (addrs, ports) = if output {
            (a(ep.caddr) | a(ep.daddr) << 32, p(ep.cport) | p(ep.dport) << 16)
        } else {
            (a(ep.vaddr) | a(ep.caddr) << 32, p(ep.vport) | p(ep.cport) << 16)
        };
        addrs == a(t.daddr) | a(t.saddr) << 32 && ports == p(t.dport) | p(t.sport) << 16 && ep.proto == t.proto
    }
}

/// An IPv6 address as two 64-bit words in the machine's order (the table's hash
/// needs them distinct, not in any order: nothing swapped).
#[inline(always)]
fn halves(a: Ipv6Addr) -> [u64; 2] {
    let o = a.octets();
    let w = |i: usize| u64::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3], o[i + 4], o[i + 5], o[i + 6], o[i + 7]]);
    [w(0), w(8)]
}

impl Addr for Ipv6Addr {
    const UNSPECIFIED: Self = Ipv6Addr::UNSPECIFIED;
    fn ip(self) -> IpAddr {
        IpAddr::V6(self)
    }
    fn of(a: IpAddr) -> Option<Self> {
        match a {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }
    }
    /// Each 64-bit half of both addresses goes through a keyed multiply before
    /// the next is added, so which addresses collide depends on the seed.
    #[inline(always)]
    fn mix(seed: u64, t: &Tuple<Self>) -> u64 {
        let (s, d) = (halves(t.saddr), halves(t.daddr));
        let mut a = seed;
        for w in [s[0], s[1], d[0], d[1]] {
            a = (a ^ w).wrapping_mul(0xff51_afd7_ed55_8ccd);
            a ^= a >> 33;
        }
        finish(seed, a, ports(t.sport, t.dport, t.proto))
    }
    fn from_mark(mark: u32) -> Self {
        Ipv6Addr::from(u128::from(mark))
    }
    fn persist_mask(self, p: &Persistence) -> Self {
        p.mask6(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_key_compared_as_words_is_the_key_compared_field_by_field() {
        let ep = Endpoints {
            proto: 6,
            caddr: Ipv4Addr::new(198, 18, 0, 100),
            cport: 40_000,
            vaddr: Ipv4Addr::new(198, 18, 0, 10),
            vport: 80,
            daddr: Ipv4Addr::new(198, 19, 1, 11),
            dport: 8080,
        };
        let input = Tuple { proto: 6, saddr: ep.caddr, sport: ep.cport, daddr: ep.vaddr, dport: ep.vport };
        let output = Tuple { proto: 6, saddr: ep.daddr, sport: ep.dport, daddr: ep.caddr, dport: ep.cport };
        let by_fields = |output: bool, t: &Tuple| {
            let k = if output {
                (ep.proto, ep.daddr, ep.dport, ep.caddr, ep.cport)
            } else {
                (ep.proto, ep.caddr, ep.cport, ep.vaddr, ep.vport)
            };
            k == (t.proto, t.saddr, t.sport, t.daddr, t.dport)
        };
        // Each key, and every tuple one field (or one swap) away from either.
        let bump = |a: Ipv4Addr| Ipv4Addr::from(u32::from(a) ^ 1);
        for t in [input, output] {
            let near = [
                t,
                Tuple { proto: 17, ..t },
                Tuple { saddr: bump(t.saddr), ..t },
                Tuple { daddr: bump(t.daddr), ..t },
                Tuple { sport: t.sport ^ 1, ..t },
                Tuple { dport: t.dport ^ 1, ..t },
                Tuple { saddr: t.daddr, daddr: t.saddr, ..t },
                Tuple { sport: t.dport, dport: t.sport, ..t },
            ];
            for n in near {
                for out in [false, true] {
                    assert_eq!(Ipv4Addr::key_eq(&ep, out, &n), by_fields(out, &n), "{n:?} as output {out}");
                }
            }
        }
        assert!(Ipv4Addr::key_eq(&ep, false, &input) && Ipv4Addr::key_eq(&ep, true, &output));
    }

    #[test]
    fn the_ipv4_hash_depends_in_its_upper_half_on_every_bit_of_the_tuple_and_the_seed() {
        // The index keeps and places a key by its hash's upper half.
        let t = Tuple {
            proto: 6,
            saddr: Ipv4Addr::new(198, 18, 0, 100),
            sport: 40_000,
            daddr: Ipv4Addr::new(198, 18, 0, 10),
            dport: 80,
        };
        let upper = |seed: u64, t: &Tuple| Ipv4Addr::mix(seed, t) >> 32;
        let h = upper(7, &t);
        let flip = |a: Ipv4Addr, bit: u32| Ipv4Addr::from(u32::from(a) ^ (1 << bit));
        for bit in 0..32 {
            assert_ne!(upper(7, &Tuple { saddr: flip(t.saddr, bit), ..t }), h, "source bit {bit}");
            assert_ne!(upper(7, &Tuple { daddr: flip(t.daddr, bit), ..t }), h, "destination bit {bit}");
        }
        for bit in 0..16 {
            assert_ne!(upper(7, &Tuple { sport: t.sport ^ (1 << bit), ..t }), h, "source port bit {bit}");
            assert_ne!(upper(7, &Tuple { dport: t.dport ^ (1 << bit), ..t }), h, "destination port bit {bit}");
        }
        for bit in 0..8 {
            assert_ne!(upper(7, &Tuple { proto: t.proto ^ (1 << bit), ..t }), h, "protocol bit {bit}");
        }
        assert_ne!(upper(8, &t), h);
        // A reply's tuple (the endpoints swapped) is another key.
        let swapped = Tuple { saddr: t.daddr, daddr: t.saddr, sport: t.dport, dport: t.sport, ..t };
        assert_ne!(upper(7, &swapped), h);
    }

    #[test]
    fn the_ipv6_hash_depends_on_every_address_bit_and_the_seed() {
        let t = Tuple { proto: 6, saddr: Ipv6Addr::LOCALHOST, sport: 1, daddr: Ipv6Addr::UNSPECIFIED, dport: 2 };
        let h = Ipv6Addr::mix(7, &t);
        for bit in 0..128 {
            let flip = |a: Ipv6Addr| Ipv6Addr::from(u128::from(a) ^ (1u128 << bit));
            assert_ne!(Ipv6Addr::mix(7, &Tuple { saddr: flip(t.saddr), ..t }), h, "source bit {bit}");
            assert_ne!(Ipv6Addr::mix(7, &Tuple { daddr: flip(t.daddr), ..t }), h, "destination bit {bit}");
        }
        assert_ne!(Ipv6Addr::mix(8, &t), h);
        // Swapped halves of an address are another key.
        let a = Ipv6Addr::from(0x0123_4567_89ab_cdef_0011_2233_4455_6677_u128);
        let b = Ipv6Addr::from(0x0011_2233_4455_6677_0123_4567_89ab_cdef_u128);
        assert_ne!(Ipv6Addr::mix(7, &Tuple { saddr: a, ..t }), Ipv6Addr::mix(7, &Tuple { saddr: b, ..t }));
    }
}
