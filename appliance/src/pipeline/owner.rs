//! Addresses whose ownership is not fixed by the port configuration:
//!
//! - carried: an address a VRRP instance carries is the appliance's only while
//!   that instance is MASTER (then it answers ARP and ping for it and balances to
//!   it; as BACKUP it does none of that). The control lcore flips the flags; workers
//!   read them with one relaxed load per look, no lock, no allocation.
//! - hidden: an address the appliance accepts packets for but never announces
//!   (no ARP), as a DR real server holds its VIP on `lo` with `arp_ignore`: a director
//!   that is also a real server takes what it does not balance to its own kernel.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

/// Most carried addresses (over all VRRP instances).
pub const MAX_CARRIED: usize = 256;

#[derive(Debug, Default)]
struct Slot {
    addr: AtomicU32,
    port: AtomicU32,
    master: AtomicBool,
}

/// The carried and hidden addresses, shared by the control lcore and the workers.
#[derive(Debug)]
pub struct Ownership {
    hidden: Vec<(Ipv4Addr, u16)>,
    len: AtomicUsize,
    slots: Box<[Slot]>,
}

impl Default for Ownership {
    fn default() -> Self {
        Ownership::new(Vec::new())
    }
}

impl Ownership {
    /// `hidden`: (address, port index) pairs.
    pub fn new(hidden: Vec<(Ipv4Addr, u16)>) -> Ownership {
        Ownership { hidden, len: AtomicUsize::new(0), slots: (0..MAX_CARRIED).map(|_| Slot::default()).collect() }
    }

    /// Nothing carried, nothing hidden: every look can be skipped.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.hidden.is_empty() && self.len.load(Ordering::Relaxed) == 0
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

    /// Control side: the carried addresses now, (address, port, owned). Returns
    /// false when there were more than `MAX_CARRIED` (the rest are not carried).
    pub fn publish(&self, list: &[(Ipv4Addr, u16, bool)]) -> bool {
        let n = list.len().min(self.slots.len());
        if n < self.len.load(Ordering::Relaxed) {
            self.len.store(n, Ordering::Release);
        }
        for (s, &(a, p, m)) in self.slots.iter().zip(list) {
            s.addr.store(u32::from(a), Ordering::Relaxed);
            s.port.store(u32::from(p), Ordering::Relaxed);
            s.master.store(m, Ordering::Release);
        }
        self.len.store(n, Ordering::Release);
        n == list.len()
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
        o.publish(&[(vip, 0, false)]);
        assert_eq!(o.carried(vip), Some((0, false)));
        assert!(!o.master_on(vip, 0));
        o.publish(&[(vip, 0, true)]);
        assert!(o.master_on(vip, 0) && !o.master_on(vip, 1));
        o.publish(&[]);
        assert!(o.carried(vip).is_none());
        assert!(o.hidden_on(Ipv4Addr::new(198, 18, 0, 20), 0) && o.knows(Ipv4Addr::new(198, 18, 0, 20)));
    }
}
