//! Addresses whose ownership is not fixed by the port configuration:
//!
//! - carried: an address a VRRP instance carries is the appliance's only while
//!   that instance is MASTER (then it answers ARP and ping for it and balances to
//!   it; as BACKUP it does none of that). The control lcore flips the flags; workers
//!   read them with one relaxed load per look, no lock, no allocation.
//! - hidden: an address the appliance accepts packets for but never announces
//!   (no ARP), as a DR real server holds its VIP on `lo` with `arp_ignore`: a director
//!   that is also a real server takes what it does not balance to its own kernel.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Most carried addresses of each family (over all VRRP instances).
pub const MAX_CARRIED: usize = 256;

#[derive(Debug, Default)]
struct Slot {
    addr: AtomicU32,
    port: AtomicU32,
    master: AtomicBool,
}

/// An IPv6 address in two halves; a reader that races a publish may see a torn
/// address, which matches no packet's (the list is short and changes on a VRRP
/// transition only).
#[derive(Debug, Default)]
struct Slot6 {
    hi: AtomicU64,
    lo: AtomicU64,
    port: AtomicU32,
    master: AtomicBool,
}

/// An IPv6 address's high and low 64 bits.
fn halves(a: Ipv6Addr) -> (u64, u64) {
    let o = a.octets();
    let half = |r: std::ops::Range<usize>| o[r].iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
    (half(0..8), half(8..16))
}

/// The carried and hidden addresses, shared by the control lcore and the workers.
#[derive(Debug)]
pub struct Ownership {
    hidden: Vec<(Ipv4Addr, u16)>,
    len: AtomicUsize,
    slots: Box<[Slot]>,
    len6: AtomicUsize,
    slots6: Box<[Slot6]>,
}

impl Default for Ownership {
    fn default() -> Self {
        Ownership::new(Vec::new())
    }
}

impl Ownership {
    /// `hidden`: (address, port index) pairs.
    pub fn new(hidden: Vec<(Ipv4Addr, u16)>) -> Ownership {
        Ownership {
            hidden,
            len: AtomicUsize::new(0),
            slots: (0..MAX_CARRIED).map(|_| Slot::default()).collect(),
            len6: AtomicUsize::new(0),
            slots6: (0..MAX_CARRIED).map(|_| Slot6::default()).collect(),
        }
    }

    /// No IPv4 address carried, none hidden: IPv4 packets need no look.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0 && self.hidden.is_empty()
    }

    /// No IPv6 address carried: IPv6 packets need no look.
    #[inline]
    pub fn is_empty6(&self) -> bool {
        self.len6.load(Ordering::Relaxed) == 0
    }

    /// Whether IPv6 `a` is carried, and if so on which port and whether it is owned now.
    pub fn carried6(&self, a: Ipv6Addr) -> Option<(u16, bool)> {
        let n = self.len6.load(Ordering::Acquire).min(self.slots6.len());
        let (hi, lo) = halves(a);
        self.slots6[..n].iter().find(|s| s.lo.load(Ordering::Relaxed) == lo && s.hi.load(Ordering::Relaxed) == hi).map(
            |s| (u16::try_from(s.port.load(Ordering::Relaxed)).unwrap_or(u16::MAX), s.master.load(Ordering::Acquire)),
        )
    }

    /// IPv6 `a` is carried on `port` by an instance that is MASTER.
    pub fn master_on6(&self, a: Ipv6Addr, port: u16) -> bool {
        self.carried6(a).is_some_and(|(p, m)| m && p == port)
    }

    /// Whether `a` is carried, and if so on which port and whether it is owned now.
    #[inline]
    pub fn carried(&self, a: Ipv4Addr) -> Option<(u16, bool)> {
        let n = self.len.load(Ordering::Acquire).min(self.slots.len());
        let want = u32::from(a);
        self.slots[..n].iter().find(|s| s.addr.load(Ordering::Relaxed) == want).map(|s| {
            (u16::try_from(s.port.load(Ordering::Relaxed)).unwrap_or(u16::MAX), s.master.load(Ordering::Acquire))
        })
    }

    /// `a` is carried on `port` by an instance that is MASTER.
    #[inline]
    pub fn master_on(&self, a: Ipv4Addr, port: u16) -> bool {
        self.carried(a).is_some_and(|(p, m)| m && p == port)
    }

    /// `a` is hidden on `port`.
    #[inline]
    pub fn hidden_on(&self, a: Ipv4Addr, port: u16) -> bool {
        self.hidden.iter().any(|&(h, p)| h == a && p == port)
    }

    /// Every carried or hidden address (for steering: packets to them are requests).
    pub fn knows(&self, a: Ipv4Addr) -> bool {
        self.hidden.iter().any(|&(h, _)| h == a) || self.carried(a).is_some()
    }

    /// Control side: the carried addresses now, (address, port, owned), of either
    /// family. Returns false when a family had more than `MAX_CARRIED` (the rest
    /// are not carried).
    pub fn publish(&self, list: &[(IpAddr, u16, bool)]) -> bool {
        let v4: Vec<(Ipv4Addr, u16, bool)> =
            list.iter().filter_map(|&(a, p, m)| if let IpAddr::V4(a) = a { Some((a, p, m)) } else { None }).collect();
        let v6: Vec<(Ipv6Addr, u16, bool)> =
            list.iter().filter_map(|&(a, p, m)| if let IpAddr::V6(a) = a { Some((a, p, m)) } else { None }).collect();
        let n = v4.len().min(self.slots.len());
        if n < self.len.load(Ordering::Relaxed) {
            self.len.store(n, Ordering::Release);
        }
        for (s, &(a, p, m)) in self.slots.iter().zip(&v4) {
            s.addr.store(u32::from(a), Ordering::Relaxed);
            s.port.store(u32::from(p), Ordering::Relaxed);
            s.master.store(m, Ordering::Release);
        }
        self.len.store(n, Ordering::Release);
        let n6 = v6.len().min(self.slots6.len());
        if n6 < self.len6.load(Ordering::Relaxed) {
            self.len6.store(n6, Ordering::Release);
        }
        for (s, &(a, p, m)) in self.slots6.iter().zip(&v6) {
            let (hi, lo) = halves(a);
            s.hi.store(hi, Ordering::Relaxed);
            s.lo.store(lo, Ordering::Relaxed);
            s.port.store(u32::from(p), Ordering::Relaxed);
            s.master.store(m, Ordering::Release);
        }
        self.len6.store(n6, Ordering::Release);
        n == v4.len() && n6 == v6.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carried_addresses_follow_what_is_published() {
        let vip = Ipv4Addr::new(198, 18, 0, 10);
        let o = Ownership::new(vec![(Ipv4Addr::new(198, 18, 0, 20), 0)]);
        assert!(!o.is_empty() && o.carried(vip).is_none());
        let vip6: Ipv6Addr = "2001:2::10".parse().unwrap();
        o.publish(&[(vip.into(), 0, false), (vip6.into(), 0, false)]);
        assert_eq!(o.carried(vip), Some((0, false)));
        assert_eq!(o.carried6(vip6), Some((0, false)));
        assert!(!o.master_on(vip, 0) && !o.master_on6(vip6, 0));
        o.publish(&[(vip.into(), 0, true), (vip6.into(), 1, true)]);
        assert!(o.master_on(vip, 0) && !o.master_on(vip, 1));
        assert!(o.master_on6(vip6, 1) && !o.master_on6(vip6, 0) && !o.is_empty6());
        assert!(o.carried6("2001:2::11".parse().unwrap()).is_none());
        o.publish(&[]);
        assert!(o.carried(vip).is_none() && o.carried6(vip6).is_none() && o.is_empty6());
        assert!(o.hidden_on(Ipv4Addr::new(198, 18, 0, 20), 0) && o.knows(Ipv4Addr::new(198, 18, 0, 20)));
    }

    #[test]
    fn each_family_looks_only_while_its_own_addresses_are_carried() {
        let o = Ownership::new(vec![]);
        assert!(o.is_empty() && o.is_empty6());
        o.publish(&[("2001:2::10".parse::<Ipv6Addr>().unwrap().into(), 0, true)]);
        assert!(o.is_empty() && !o.is_empty6(), "an IPv6 address: IPv4 packets need no look");
        o.publish(&[(Ipv4Addr::new(198, 18, 0, 10).into(), 0, true)]);
        assert!(!o.is_empty() && o.is_empty6());
        o.publish(&[]);
        assert!(o.is_empty() && o.is_empty6());
    }
}
