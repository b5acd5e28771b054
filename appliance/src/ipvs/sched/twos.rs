//! Weighted random twos choice (`twos`): two dests are drawn at random with
//! probability proportional to weight, and the one with the smaller
//! `(ActiveConn * 256 + InActConn) / weight` is taken (the first drawn on a tie).
//! As in the kernel, a draw is uniform over `0..=total weight`, which gives the
//! first available dest one extra share.

use super::{SchedInput, Scheduler};
use crate::ipvs::dest::Dest;

/// A small xorshift64* generator: per scheduler (so per lcore), no syscalls.
#[derive(Debug)]
pub struct TwoChoices {
    state: u64,
}

impl Default for TwoChoices {
    fn default() -> Self {
        TwoChoices::with_seed(0x9e37_79b9_7f4a_7c15)
    }
}

impl TwoChoices {
    pub fn with_seed(seed: u64) -> TwoChoices {
        TwoChoices { state: seed.max(1) }
    }

    fn next_u32(&mut self) -> u32 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

impl Scheduler for TwoChoices {
    fn name(&self) -> &'static str {
        "twos"
    }

    fn update(&mut self, _dests: &[Dest]) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let total: u64 = dests.iter().filter(|d| d.is_available()).map(|d| u64::from(d.weight())).sum();
        if total == 0 {
            return None;
        }
        // As the kernel: draws in [0, total], inclusive.
        let mut r1 = (u64::from(self.next_u32()) % (total + 1)) as i64;
        let mut r2 = (u64::from(self.next_u32()) % (total + 1)) as i64;
        let (mut c1, mut c2) = (None, None);
        for (i, d) in dests.iter().enumerate() {
            if !d.is_available() {
                continue;
            }
            let w = i64::from(d.weight());
            r1 -= w;
            r2 -= w;
            if r1 <= 0 && c1.is_none() {
                c1 = Some(i);
            }
            if r2 <= 0 && c2.is_none() {
                c2 = Some(i);
            }
            if c1.is_some() && c2.is_some() {
                break;
            }
        }
        // A draw of exactly `total` lands past the end: the last available dest.
        let last = dests.iter().rposition(Dest::is_available);
        let c1 = c1.or(last)?;
        let Some(c2) = c2.or(last) else { return Some(c1) };
        let (d1, d2) = (&dests[c1], &dests[c2]);
        if u128::from(d2.weight()) * u128::from(d1.conn_overhead())
            > u128::from(d1.weight()) * u128::from(d2.conn_overhead())
        {
            Some(c2)
        } else {
            Some(c1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn idle_dests_are_drawn_by_weight() {
        for (weights, n) in [(vec![1u32, 1], 10_000usize), (vec![3, 1], 10_000), (vec![1, 0, 4], 10_000)] {
            let d = dests(&weights);
            let mut s = TwoChoices::with_seed(7);
            let got = sequence(&mut s, &d, n);
            let total: u32 = weights.iter().sum();
            for (i, &w) in weights.iter().enumerate() {
                let share = got.iter().filter(|&&g| g == Some(i)).count() as f64 / n as f64;
                // With no load the first draw wins: (w + [first]) / (total + 1).
                let w = if i == 0 { w + 1 } else { w };
                let want = f64::from(w) / f64::from(total + 1);
                assert!((share - want).abs() < 0.05, "{weights:?}: dest {i} share {share}, want {want}");
            }
        }
    }

    #[test]
    fn the_less_loaded_of_two_wins() {
        // Under load the two choices even things out: lower spread than random.
        let mut d = dests(&[1, 1, 1, 1]);
        let mut s = TwoChoices::with_seed(42);
        load(&mut s, &mut d, 4000, true);
        let max = d.iter().map(|x| x.active).max().unwrap();
        let min = d.iter().map(|x| x.active).min().unwrap();
        assert!(max - min <= 4, "spread {min}..{max}");
    }
}
