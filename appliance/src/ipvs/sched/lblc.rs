//! Locality-based least connection (`lblc`): a destination address keeps the dest it
//! was given, unless that dest is quiesced or overloaded (more active connections
//! than its weight while another dest has fewer than half its weight); then, and for
//! a new address, the weighted least-connection dest is taken and remembered.
//! Entries unused for 24 hours are forgotten (the kernel's lblc_expiration).

use super::{weighted_least, SchedInput, Scheduler};
use crate::ipvs::dest::Dest;
use hashbrown::HashMap;

/// `sysctl net.ipv4.vs.lblc_expiration` default: 24 h.
pub const EXPIRATION_MS: u64 = 24 * 60 * 60 * 1000;
/// Cache entries kept at most (preallocated: no allocation on the packet path).
pub const CAPACITY: usize = 16 * 1024;

#[derive(Debug)]
pub struct Lblc {
    cache: HashMap<std::net::IpAddr, (u16, u64)>,
}

impl Default for Lblc {
    fn default() -> Self {
        Lblc { cache: HashMap::with_capacity(CAPACITY) }
    }
}

/// The kernel's `is_overloaded` for lblc/lblcr.
pub(crate) fn is_overloaded(d: &Dest, dests: &[Dest]) -> bool {
    d.active_total() > d.weight() && dests.iter().any(|o| u64::from(o.active_total()) * 2 < u64::from(o.weight()))
}

impl Scheduler for Lblc {
    fn name(&self) -> &'static str {
        "lblc"
    }

    /// The dest list changed: indices may now name other dests, start afresh.
    fn update(&mut self, _dests: &[Dest]) {
        self.cache.clear();
    }

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        if let Some(&(i, last)) = self.cache.get(&input.dst) {
            let i = usize::from(i);
            let fresh = input.now_ms.saturating_sub(last) <= EXPIRATION_MS;
            if fresh && dests.get(i).is_some_and(|d| d.is_available() && !is_overloaded(d, dests)) {
                self.cache.insert(input.dst, (u16::try_from(i).unwrap_or(u16::MAX), input.now_ms));
                return Some(i);
            }
        }
        let i = weighted_least(dests, Dest::conn_overhead)?;
        if self.cache.len() < CAPACITY || self.cache.contains_key(&input.dst) {
            self.cache.insert(input.dst, (u16::try_from(i).unwrap_or(u16::MAX), input.now_ms));
        }
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use std::net::Ipv4Addr;

    fn to(dst: Ipv4Addr, now_ms: u64) -> SchedInput {
        SchedInput { dst: std::net::IpAddr::from(dst), now_ms, ..input(Ipv4Addr::new(198, 18, 0, 100)) }
    }

    #[test]
    fn a_destination_sticks_to_its_dest() {
        for weights in [[1u32, 1], [3, 1], [1, 5]] {
            let mut d = dests(&weights);
            let mut s = Lblc::default();
            let a = Ipv4Addr::new(203, 0, 113, 1);
            let first = s.schedule(&d, &to(a, 0)).unwrap();
            d[first].bind_conn();
            d[first].conn_activity(true);
            for t in 1..5 {
                assert_eq!(s.schedule(&d, &to(a, t)), Some(first), "{weights:?}");
            }
            // A new destination goes to the least-loaded dest.
            let b = Ipv4Addr::new(203, 0, 113, 2);
            assert_eq!(s.schedule(&d, &to(b, 5)), Some(1 - first), "{weights:?}");
        }
    }

    #[test]
    fn overloaded_or_quiesced_dest_moves_the_destination() {
        let mut d = dests(&[1, 1]);
        let mut s = Lblc::default();
        let a = Ipv4Addr::new(203, 0, 113, 1);
        assert_eq!(s.schedule(&d, &to(a, 0)), Some(0));
        // RS1: 2 active > weight 1, and RS2 has 0 * 2 < 1: overloaded in lblc's sense.
        d[0] = d[0].clone().with_conns(2, 0);
        assert_eq!(s.schedule(&d, &to(a, 1)), Some(1));
        assert_eq!(s.schedule(&d, &to(a, 2)), Some(1), "remembered");
        d[1].set_weight(0);
        assert_eq!(s.schedule(&d, &to(a, 3)), Some(0));
    }

    #[test]
    fn entries_expire() {
        let mut d = dests(&[1, 1]);
        let mut s = Lblc::default();
        let a = Ipv4Addr::new(203, 0, 113, 1);
        assert_eq!(s.schedule(&d, &to(a, 0)), Some(0));
        d[0] = d[0].clone().with_conns(1, 0);
        assert_eq!(s.schedule(&d, &to(a, EXPIRATION_MS)), Some(0), "still fresh");
        assert_eq!(s.schedule(&d, &to(a, 3 * EXPIRATION_MS)), Some(1), "expired: least connection again");
    }
}
