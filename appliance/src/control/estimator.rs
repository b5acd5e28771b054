//! Rate estimation as the kernel's `ip_vs_est.c` does it: every 2 seconds the
//! counters' growth is folded into an exponentially weighted average (weight 1/4),
//! kept in fixed point (rates << 10, byte rates << 5), and rounded when read.

use super::protocol::{RateInfo, ServiceInfo, ServiceKey, StatsInfo};
use hashbrown::HashMap;
use std::net::IpAddr;

/// How often `tick` must run.
pub const INTERVAL_S: u64 = 2;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimator {
    last: StatsInfo,
    cps: i64,
    inpps: i64,
    outpps: i64,
    inbps: i64,
    outbps: i64,
    /// Zeroed (`-Z`): the next tick starts afresh from the counters as they are.
    rebase: bool,
}

fn delta(now: u64, last: u64) -> i64 {
    i64::try_from(now.saturating_sub(last)).unwrap_or(i64::MAX >> 10)
}

impl Estimator {
    /// Starts from the counters as they are.
    pub fn starting_at(now: &StatsInfo) -> Estimator {
        Estimator { last: *now, ..Default::default() }
    }

    /// Folds the last 2 seconds in (the kernel's estimation timer).
    pub fn update(&mut self, now: &StatsInfo) {
        let fold = |avg: &mut i64, rate: i64| *avg += (rate - *avg) >> 2;
        fold(&mut self.cps, delta(now.conns, self.last.conns) << 9);
        fold(&mut self.inpps, delta(now.inpkts, self.last.inpkts) << 9);
        fold(&mut self.outpps, delta(now.outpkts, self.last.outpkts) << 9);
        fold(&mut self.inbps, delta(now.inbytes, self.last.inbytes) << 4);
        fold(&mut self.outbps, delta(now.outbytes, self.last.outbytes) << 4);
        self.last = *now;
    }

    /// The rates per second (`ip_vs_read_estimator`).
    pub fn read(&self) -> RateInfo {
        let r = |v: i64, add: i64, shift: u32| u64::try_from((v + add) >> shift).unwrap_or(0);
        RateInfo {
            cps: r(self.cps, 0x1FF, 10),
            inpps: r(self.inpps, 0x1FF, 10),
            outpps: r(self.outpps, 0x1FF, 10),
            inbps: r(self.inbps, 0xF, 5),
            outbps: r(self.outbps, 0xF, 5),
        }
    }
}

type Key = (ServiceKey, Option<(IpAddr, u16)>);

/// One estimator per service and per real server.
#[derive(Debug, Default)]
pub struct Estimators {
    map: HashMap<Key, Estimator>,
}

impl Estimators {
    /// Feeds the current totals (every `INTERVAL_S`); estimators of services and
    /// dests that are gone are dropped. A service or dest seen the first time has
    /// counted since it was made (from zero, as the kernel starts its estimator with
    /// the service): its first interval is all it has counted.
    pub fn tick(&mut self, services: &[ServiceInfo]) {
        let mut seen: HashMap<Key, Estimator> = HashMap::with_capacity(self.map.len());
        for s in services {
            let mut feed = |k: Key, st: &StatsInfo| {
                let e = match self.map.get(&k) {
                    Some(e) if e.rebase => Estimator::starting_at(st),
                    Some(e) => {
                        let mut e = *e;
                        e.update(st);
                        e
                    }
                    None => {
                        let mut e = Estimator::starting_at(&StatsInfo::default());
                        e.update(st);
                        e
                    }
                };
                seen.insert(k, e);
            };
            feed((s.spec.service, None), &s.stats);
            for d in &s.dests {
                feed((s.spec.service, Some((d.addr, d.port))), &d.stats);
            }
        }
        self.map = seen;
    }

    /// Writes the rates into a listing.
    pub fn fill(&self, services: &mut [ServiceInfo]) {
        for s in services {
            if let Some(e) = self.map.get(&(s.spec.service, None)) {
                s.rate = e.read();
            }
            for d in &mut s.dests {
                if let Some(e) = self.map.get(&(s.spec.service, Some((d.addr, d.port)))) {
                    d.rate = e.read();
                }
            }
        }
    }

    /// `-Z`: counters restart from zero, so do the estimators (from the totals the
    /// next tick sees: the workers' own counters go on).
    pub fn zero(&mut self, service: Option<ServiceKey>) {
        for ((s, _), e) in self.map.iter_mut() {
            if service.is_none_or(|z| z == *s) {
                *e = Estimator { rebase: true, ..Estimator::default() };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_to_the_rate_like_the_kernel() {
        let mut e = Estimator::starting_at(&StatsInfo::default());
        let mut total = StatsInfo::default();
        // 100 connections, 1000 packets and 64000 bytes per second, long enough for
        // the average to settle (the fixed-point step stops within 3 units).
        for _ in 0..100 {
            total.conns += 200;
            total.inpkts += 2000;
            total.inbytes += 128_000;
            e.update(&total);
        }
        let r = e.read();
        assert_eq!((r.cps, r.inpps, r.inbps, r.outpps), (100, 1000, 64000, 0));
        // One interval: a quarter of the way.
        let mut f = Estimator::starting_at(&StatsInfo::default());
        f.update(&StatsInfo { conns: 200, ..Default::default() });
        assert_eq!(f.read().cps, 25);
        // Counters that went down (zeroed) count as no growth, not as a wrap.
        f.update(&StatsInfo::default());
        assert_eq!(f.read().cps, 19);
    }

    fn service(conns: u64) -> ServiceInfo {
        ServiceInfo {
            spec: crate::control::protocol::ServiceSpec {
                service: ServiceKey::Fwmark(1),
                scheduler: "rr".into(),
                flags: vec![],
                persistent: None,
                netmask: None,
                prefix6: None,
            },
            dests: vec![],
            stats: StatsInfo { conns, ..Default::default() },
            rate: RateInfo::default(),
        }
    }

    /// A service whose traffic all came before the first tick still shows it (its
    /// counters started at zero with it); after -Z the rate starts afresh.
    #[test]
    fn a_new_service_counts_from_its_creation_and_zero_starts_afresh() {
        let mut e = Estimators::default();
        let mut l = vec![service(400)];
        e.tick(&l);
        e.fill(&mut l);
        assert_eq!(l[0].rate.cps, 50, "400 connections in the first 2 s: a quarter of 200/s");
        e.zero(None);
        e.tick(&l);
        e.fill(&mut l);
        assert_eq!(l[0].rate.cps, 0, "zeroed: the 400 already counted are not new");
        l[0].stats.conns = 800;
        e.tick(&l);
        e.fill(&mut l);
        assert_eq!(l[0].rate.cps, 50);
    }
}
