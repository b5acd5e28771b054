//! Locality-based least connection with replication (`lblcr`): each destination
//! address keeps a set of dests and uses the weighted-least-loaded one of them; when
//! that one is overloaded (as in lblc) the weighted least-connection dest over all is
//! added to the set. A set of several dests unchanged for 24 hours drops its most
//! loaded member.

use super::lblc::is_overloaded;
use super::{weighted_least, SchedInput, Scheduler};
use crate::ipvs::dest::Dest;
use hashbrown::HashMap;

/// `sysctl net.ipv4.vs.lblcr_expiration` default: 24 h.
pub const EXPIRATION_MS: u64 = 24 * 60 * 60 * 1000;
pub const CAPACITY: usize = 16 * 1024;
/// Dests one set may hold (fixed size: no allocation when a set grows).
pub const SET_MAX: usize = 8;

#[derive(Debug, Clone, Copy)]
struct DestSet {
    members: [u16; SET_MAX],
    len: u8,
    lastmod_ms: u64,
}

impl DestSet {
    fn new(i: u16, now_ms: u64) -> DestSet {
        let mut members = [0; SET_MAX];
        members[0] = i;
        DestSet { members, len: 1, lastmod_ms: now_ms }
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.members[..usize::from(self.len)].iter().map(|&m| usize::from(m))
    }

    fn insert(&mut self, i: u16, now_ms: u64) {
        if self.iter().any(|m| m == usize::from(i)) {
            return;
        }
        if usize::from(self.len) < SET_MAX {
            self.members[usize::from(self.len)] = i;
            self.len += 1;
        } else {
            self.members[SET_MAX - 1] = i;
        }
        self.lastmod_ms = now_ms;
    }

    fn erase(&mut self, i: usize) {
        let pos = self.iter().position(|m| m == i);
        if let Some(pos) = pos {
            self.members.copy_within(pos + 1..usize::from(self.len), pos);
            self.len -= 1;
        }
    }

    /// The weighted-least-loaded available member (kernel `ip_vs_dest_set_min`).
    fn min(&self, dests: &[Dest]) -> Option<usize> {
        let mut least: Option<usize> = None;
        for m in self.iter() {
            let Some(d) = dests.get(m) else { continue };
            if !d.is_available() {
                continue;
            }
            let better = least.is_none_or(|l| {
                u128::from(dests[l].conn_overhead()) * u128::from(d.weight())
                    > u128::from(d.conn_overhead()) * u128::from(dests[l].weight())
            });
            if better {
                least = Some(m);
            }
        }
        least
    }

    /// The most loaded member (kernel `ip_vs_dest_set_max`).
    fn max(&self, dests: &[Dest]) -> Option<usize> {
        let mut most: Option<usize> = None;
        for m in self.iter() {
            let Some(d) = dests.get(m) else { continue };
            let better = most.is_none_or(|l| {
                u128::from(dests[l].conn_overhead()) * u128::from(d.weight())
                    < u128::from(d.conn_overhead()) * u128::from(dests[l].weight())
            });
            if better {
                most = Some(m);
            }
        }
        most
    }
}

#[derive(Debug)]
pub struct Lblcr {
    cache: HashMap<std::net::IpAddr, DestSet>,
}

impl Default for Lblcr {
    fn default() -> Self {
        Lblcr { cache: HashMap::with_capacity(CAPACITY) }
    }
}

impl Scheduler for Lblcr {
    fn name(&self) -> &'static str {
        "lblcr"
    }

    fn update(&mut self, _dests: &[Dest]) {
        self.cache.clear();
    }

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let now = input.now_ms;
        if let Some(set) = self.cache.get_mut(&input.dst) {
            let picked = set.min(dests);
            if set.len > 1 && now.saturating_sub(set.lastmod_ms) > EXPIRATION_MS {
                if let Some(m) = set.max(dests) {
                    set.erase(m);
                    set.lastmod_ms = now;
                }
            }
            if let Some(i) = picked.filter(|&i| !is_overloaded(&dests[i], dests)) {
                return Some(i);
            }
            let i = weighted_least(dests, Dest::conn_overhead)?;
            set.insert(u16::try_from(i).unwrap_or(u16::MAX), now);
            return Some(i);
        }
        let i = weighted_least(dests, Dest::conn_overhead)?;
        if self.cache.len() < CAPACITY {
            self.cache.insert(input.dst, DestSet::new(u16::try_from(i).unwrap_or(u16::MAX), now));
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
    fn set_grows_when_its_best_member_is_overloaded() {
        for weights in [[1u32, 1, 1], [2, 1, 1], [1, 1, 4]] {
            let mut d = dests(&weights);
            let mut s = Lblcr::default();
            let a = Ipv4Addr::new(203, 0, 113, 1);
            let first = s.schedule(&d, &to(a, 0)).unwrap();
            assert_eq!(s.cache[&std::net::IpAddr::from(a)].len, 1);
            let w = d[first].weight();
            d[first] = d[first].clone().with_conns(w + 1, 0);
            let second = s.schedule(&d, &to(a, 1)).unwrap();
            assert_ne!(first, second, "{weights:?}");
            assert_eq!(s.cache[&std::net::IpAddr::from(a)].len, 2, "{weights:?}");
            // Both members are now candidates; the least loaded is used.
            assert_eq!(s.schedule(&d, &to(a, 2)), Some(second));
        }
    }

    #[test]
    fn old_sets_drop_their_most_loaded_member() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = Lblcr::default();
        let a = Ipv4Addr::new(203, 0, 113, 1);
        assert_eq!(s.schedule(&d, &to(a, 0)), Some(0));
        d[0] = d[0].clone().with_conns(2, 0);
        assert_eq!(s.schedule(&d, &to(a, 1)), Some(1));
        assert_eq!(s.cache[&std::net::IpAddr::from(a)].len, 2);
        s.schedule(&d, &to(a, 1 + EXPIRATION_MS + 1));
        assert_eq!(s.cache[&std::net::IpAddr::from(a)].len, 1);
        assert_eq!(
            s.cache[&std::net::IpAddr::from(a)].iter().collect::<Vec<_>>(),
            vec![1],
            "the loaded RS1 left the set"
        );
    }

    #[test]
    fn quiesced_members_are_skipped() {
        let mut d = dests(&[1, 1]);
        let mut s = Lblcr::default();
        let a = Ipv4Addr::new(203, 0, 113, 1);
        assert_eq!(s.schedule(&d, &to(a, 0)), Some(0));
        d[0].set_weight(0);
        assert_eq!(s.schedule(&d, &to(a, 1)), Some(1));
    }
}
