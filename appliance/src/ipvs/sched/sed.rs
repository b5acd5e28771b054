//! Shortest expected delay (`sed`): the dest with the smallest
//! `(ActiveConn + 1) / weight`, inactive connections ignored; the first of equals wins.

use super::{weighted_least, SchedInput, Scheduler};
use crate::ipvs::dest::Dest;

#[derive(Debug, Default)]
pub struct ShortestExpectedDelay;

/// The kernel's `ip_vs_sed_dest_overhead`.
pub(crate) fn overhead(d: &Dest) -> u64 {
    u64::from(d.active_total()) + 1
}

impl Scheduler for ShortestExpectedDelay {
    fn name(&self) -> &'static str {
        "sed"
    }

    fn update(&mut self, _dests: &[Dest]) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        weighted_least(dests, overhead)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn expected_delay_sequences() {
        // w 3 / 1: (0+1)/3 < (0+1)/1 ... RS1 until (a+1)/3 > 1.
        let mut d = dests(&[3, 1]);
        assert_eq!(load(&mut ShortestExpectedDelay, &mut d, 8, true), vec![0, 0, 0, 1, 0, 0, 0, 1]);
        let mut d = dests(&[1, 1]);
        assert_eq!(load(&mut ShortestExpectedDelay, &mut d, 4, true), vec![0, 1, 0, 1]);
        let mut d = dests(&[2, 5, 1]);
        let got = load(&mut ShortestExpectedDelay, &mut d, 16, true);
        let count = |i| got.iter().filter(|&&g| g == i).count();
        assert_eq!((count(0), count(1), count(2)), (4, 10, 2));
    }

    #[test]
    fn inactive_connections_are_ignored() {
        let d = vec![dests(&[1])[0].clone().with_conns(0, 1000), dests(&[1, 1])[1].clone().with_conns(1, 0)];
        assert_eq!(sequence(&mut ShortestExpectedDelay, &d, 1), some(&[0]));
    }

    #[test]
    fn zero_weight_never_wins() {
        let mut d = dests(&[1, 0]);
        assert_eq!(load(&mut ShortestExpectedDelay, &mut d, 3, true), vec![0, 0, 0]);
    }
}
