//! Schedulers: one trait, one file per scheduler, each opening with its rule.
//!
//! A scheduler picks an index into the service's dest list for a new connection (or
//! a new persistence template), or None when no dest may take it. It is called on
//! the worker lcore that owns the connection, with that lcore's counters, and keeps
//! its own state (rr position, wrr current weight, lblc caches, Maglev table), which
//! `update` rebuilds whenever the dest list or a weight changes.

pub mod dh;
pub mod fo;
pub mod lblc;
pub mod lblcr;
pub mod lc;
pub mod mh;
pub mod nq;
pub mod ovf;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod twos;
pub mod wlc;
pub mod wrr;

use super::dest::Dest;
use std::net::IpAddr;

/// An address as the kernel's hashing schedulers take it: IPv4's in host order,
/// IPv6's four 32-bit words XORed (`addr_fold` in ip_vs_sh.c, ip_vs_mh.c).
pub fn fold(a: impl Into<IpAddr>) -> u32 {
    match a.into() {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let o = a.octets();
            (0..4).fold(0, |acc, i| acc ^ u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]))
        }
    }
}

/// What a scheduler may look at in the packet that opens a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedInput {
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
    /// Worker clock, milliseconds.
    pub now_ms: u64,
}

/// Scheduler flags, `ipvsadm -b flag-1,flag-2,flag-3` (or by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchedFlags {
    /// sh-fallback / mh-fallback.
    pub flag1: bool,
    /// sh-port / mh-port.
    pub flag2: bool,
    pub flag3: bool,
}

impl SchedFlags {
    /// Parses `ipvsadm -b`'s comma-separated list for scheduler `sched`.
    pub fn parse(sched: &str, list: &str) -> Result<SchedFlags, String> {
        let mut f = SchedFlags::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match (sched, item) {
                (_, "flag-1") | ("sh", "sh-fallback") | ("mh", "mh-fallback") => f.flag1 = true,
                (_, "flag-2") | ("sh", "sh-port") | ("mh", "mh-port") => f.flag2 = true,
                (_, "flag-3") => f.flag3 = true,
                _ => return Err(format!("invalid scheduler flag \"{item}\" for scheduler {sched}")),
            }
        }
        Ok(f)
    }
}

/// The scheduling algorithm of one service.
pub trait Scheduler: Send + std::fmt::Debug {
    /// ipvsadm's name (`rr`, `wlc`, ...).
    fn name(&self) -> &'static str;

    /// The dest list or a weight changed: rebuild derived state.
    fn update(&mut self, dests: &[Dest]);

    /// A dest was put at `index` of the list (before `update`).
    fn dest_added(&mut self, _index: usize) {}

    /// The dest at `index` left the list (before `update`).
    fn dest_removed(&mut self, _index: usize) {}

    /// Picks the dest for a new connection.
    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize>;
}

/// The schedulers RVS has, by ipvsadm name.
pub const NAMES: [&str; 14] =
    ["rr", "wrr", "lc", "wlc", "sed", "nq", "dh", "sh", "lblc", "lblcr", "fo", "ovf", "mh", "twos"];

/// A scheduler by name, with its flags, already updated for `dests`.
pub fn new(name: &str, flags: SchedFlags, dests: &[Dest]) -> Result<Box<dyn Scheduler>, String> {
    let mut s: Box<dyn Scheduler> = match name {
        "rr" => Box::new(rr::RoundRobin::default()),
        "wrr" => Box::new(wrr::WeightedRoundRobin::default()),
        "lc" => Box::new(lc::LeastConnection),
        "wlc" => Box::new(wlc::WeightedLeastConnection),
        "sed" => Box::new(sed::ShortestExpectedDelay),
        "nq" => Box::new(nq::NeverQueue),
        "dh" => Box::new(dh::DestinationHashing::default()),
        "sh" => Box::new(sh::SourceHashing::new(flags)),
        "lblc" => Box::new(lblc::Lblc::default()),
        "lblcr" => Box::new(lblcr::Lblcr::default()),
        "fo" => Box::new(fo::WeightedFailover),
        "ovf" => Box::new(ovf::WeightedOverflow),
        "mh" => Box::new(mh::MaglevHashing::new(flags)),
        "twos" => Box::new(twos::TwoChoices::default()),
        other => return Err(format!("unknown scheduler \"{other}\" (one of: {})", NAMES.join(" "))),
    };
    s.update(dests);
    Ok(s)
}

/// The kernel's weighted-least pick shared by wlc, sed, lblc and lblcr: the first
/// available dest, then any later non-overloaded one whose
/// `overhead / weight` is strictly smaller (compared as cross products, so no
/// division: `loh * w_dest > doh * w_least`).
pub(crate) fn weighted_least(dests: &[Dest], overhead: impl Fn(&Dest) -> u64) -> Option<usize> {
    let first = dests.iter().position(Dest::is_available)?;
    let mut least = first;
    let mut loh = overhead(&dests[first]);
    for (i, d) in dests.iter().enumerate().skip(first + 1) {
        if d.is_overloaded() {
            continue;
        }
        let doh = overhead(d);
        if u128::from(loh) * u128::from(d.weight()) > u128::from(doh) * u128::from(dests[least].weight()) {
            least = i;
            loh = doh;
        }
    }
    Some(least)
}

/// The kernel's `hash_32`: multiply by the 32-bit golden ratio, keep the top bits.
pub(crate) fn hash_32(v: u32, bits: u32) -> u32 {
    v.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::ipvs::dest::FwdMethod;
    use std::net::Ipv4Addr;

    /// Dests RS1..RSn with the given weights.
    pub fn dests(weights: &[u32]) -> Vec<Dest> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                Dest::new(Ipv4Addr::new(198, 18, 1, 11 + u8::try_from(i).expect("few dests")), 80, FwdMethod::Masq, w)
            })
            .collect()
    }

    pub fn input(src: Ipv4Addr) -> SchedInput {
        SchedInput {
            src: src.into(),
            src_port: 40000,
            dst: Ipv4Addr::new(198, 18, 0, 10).into(),
            dst_port: 80,
            now_ms: 0,
        }
    }

    /// Runs `n` schedules with a fixed client and returns the picked indices.
    pub fn sequence(s: &mut dyn Scheduler, dests: &[Dest], n: usize) -> Vec<Option<usize>> {
        let inp = input(Ipv4Addr::new(198, 18, 0, 100));
        (0..n).map(|_| s.schedule(dests, &inp)).collect()
    }

    /// Schedules `n` connections, binding each one (as the connection table does),
    /// optionally making it active; returns the picked indices.
    pub fn load(s: &mut dyn Scheduler, dests: &mut [Dest], n: usize, active: bool) -> Vec<usize> {
        let inp = input(Ipv4Addr::new(198, 18, 0, 100));
        (0..n)
            .map(|_| {
                let i = s.schedule(dests, &inp).expect("a dest");
                dests[i].bind_conn();
                if active {
                    dests[i].conn_activity(true);
                }
                i
            })
            .collect()
    }

    pub fn some(v: &[usize]) -> Vec<Option<usize>> {
        v.iter().map(|&i| Some(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn every_name_builds_and_unknown_is_an_error() {
        let d = dests(&[1, 1]);
        for n in NAMES {
            let s = new(n, SchedFlags::default(), &d).unwrap();
            assert_eq!(s.name(), n);
        }
        assert!(new("xyz", SchedFlags::default(), &d).unwrap_err().contains("unknown scheduler \"xyz\""));
    }

    #[test]
    fn every_scheduler_returns_none_when_all_dests_are_quiesced_or_there_are_none() {
        let quiesced = dests(&[0, 0, 0]);
        for n in NAMES {
            let mut s = new(n, SchedFlags::default(), &quiesced).unwrap();
            assert_eq!(s.schedule(&quiesced, &input(Ipv4Addr::new(198, 18, 0, 100))), None, "{n}");
            let mut s = new(n, SchedFlags::default(), &[]).unwrap();
            assert_eq!(s.schedule(&[], &input(Ipv4Addr::new(198, 18, 0, 100))), None, "{n} with no dests");
        }
    }

    #[test]
    fn every_scheduler_skips_overloaded_dests() {
        let mut d = dests(&[1, 1]);
        d[0] = d[0].clone().with_thresholds(1, 0).with_conns(0, 1);
        assert!(d[0].is_overloaded());
        for n in NAMES {
            let mut s = new(n, SchedFlags { flag1: true, ..Default::default() }, &d).unwrap();
            for k in 0..20u8 {
                let got = s.schedule(&d, &input(Ipv4Addr::new(198, 18, 0, 100 + k)));
                if n == "dh" {
                    // dh has no fallback: an overloaded bucket dest means no dest.
                    assert_ne!(got, Some(0), "{n}");
                } else {
                    assert_eq!(got, Some(1), "{n}");
                }
            }
        }
    }

    #[test]
    fn flags_parse() {
        assert_eq!(
            SchedFlags::parse("sh", "sh-fallback,sh-port").unwrap(),
            SchedFlags { flag1: true, flag2: true, flag3: false }
        );
        assert_eq!(SchedFlags::parse("mh", "flag-2").unwrap(), SchedFlags { flag2: true, ..Default::default() });
        assert!(SchedFlags::parse("rr", "sh-port").is_err());
    }

    #[test]
    fn hash_32_matches_the_kernel() {
        // hash_32(val, bits) = (val * GOLDEN_RATIO_32) >> (32 - bits)
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(0, 8), 0);
        assert_eq!(hash_32(0xffff_ffff, 32), 0x9e37_79b9);
    }
}
