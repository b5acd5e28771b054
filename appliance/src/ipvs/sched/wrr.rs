//! Weighted round robin (`wrr`): dests take turns in list order, and in each pass a
//! dest is chosen only while its weight is at least the current weight, which drops
//! by the gcd of the weights after every pass (from the largest weight down); a dest
//! of weight w is thus chosen w/gcd times per cycle.

use super::{SchedInput, Scheduler};
use crate::ipvs::dest::Dest;

#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    /// Position in the list (None: the list head, before the first dest).
    cl: Option<usize>,
    /// Current weight.
    cw: i64,
    /// Largest weight, rounded as the kernel does (max - (gcd - 1)).
    mw: i64,
    /// gcd of the non-zero weights.
    di: i64,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Scheduler for WeightedRoundRobin {
    fn name(&self) -> &'static str {
        "wrr"
    }

    fn update(&mut self, dests: &[Dest]) {
        let g = dests.iter().map(Dest::weight).filter(|&w| w > 0).fold(0, gcd).max(1);
        let max = dests.iter().map(Dest::weight).max().unwrap_or(0);
        self.di = i64::from(g);
        self.mw = i64::from(max) - (self.di - 1);
        if self.mw < 0 {
            self.mw = 0;
        }
        self.cl = None;
        self.cw = self.mw;
    }

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        // With one available dest the scan below ends within one cycle: the current
        // weight steps down (mw, mw - gcd, ..., 1) to at most that dest's weight.
        if self.mw <= 0 || !dests.iter().any(Dest::is_available) {
            return None;
        }
        let mut pos = self.cl;
        loop {
            let next = pos.map_or(0, |i| i + 1);
            if next >= dests.len() {
                // Back at the list head: the next pass asks for a lower weight.
                pos = None;
                self.cw -= self.di;
                if self.cw <= 0 {
                    self.cw = self.mw;
                }
                continue;
            }
            pos = Some(next);
            let d = &dests[next];
            if !d.is_overloaded() && i64::from(d.weight()) >= self.cw {
                self.cl = pos;
                return Some(next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn run(weights: &[u32], n: usize) -> Vec<Option<usize>> {
        let d = dests(weights);
        let mut s = WeightedRoundRobin::default();
        s.update(&d);
        sequence(&mut s, &d, n)
    }

    #[test]
    fn sequences_from_the_kernel_algorithm() {
        // Weights 4,3,2 (gcd 1): passes at cw = 4, 3, 2, 1.
        assert_eq!(run(&[4, 3, 2], 9), some(&[0, 0, 1, 0, 1, 2, 0, 1, 2]));
        assert_eq!(run(&[4, 3, 2], 18)[9..], some(&[0, 0, 1, 0, 1, 2, 0, 1, 2])[..]);
        // Weights 3,1 (the NAT tutorial's -w 3 / -w 1).
        assert_eq!(run(&[3, 1], 8), some(&[0, 0, 0, 1, 0, 0, 0, 1]));
        // Weights 2,4,6 (gcd 2, mw = 6 - 1 = 5): passes at cw = 5, 3, 1.
        assert_eq!(run(&[2, 4, 6], 6), some(&[2, 1, 2, 0, 1, 2]));
        // Equal weights behave like rr.
        assert_eq!(run(&[5, 5, 5], 6), some(&[0, 1, 2, 0, 1, 2]));
    }

    #[test]
    fn proportional_over_a_cycle() {
        let got = run(&[5, 2, 1], 8 * 10);
        let count = |i| got.iter().filter(|&&g| g == Some(i)).count();
        assert_eq!((count(0), count(1), count(2)), (50, 20, 10));
    }

    #[test]
    fn weight_zero_and_all_zero() {
        assert_eq!(run(&[0, 2, 1], 6), some(&[1, 1, 2, 1, 1, 2]));
        assert_eq!(run(&[0, 0], 3), vec![None, None, None]);
    }

    #[test]
    fn overloaded_dest_is_passed_over() {
        let mut d = dests(&[3, 1]);
        d[0] = d[0].clone().with_thresholds(1, 0).with_conns(0, 1);
        let mut s = WeightedRoundRobin::default();
        s.update(&d);
        assert_eq!(sequence(&mut s, &d, 3), some(&[1, 1, 1]));
    }
}
