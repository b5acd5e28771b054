//! Never queue (`nq`): an idle dest (no active connection) is taken at once, first
//! in list order; otherwise as `sed`, the smallest `(ActiveConn + 1) / weight`.

use super::{SchedInput, Scheduler};
use crate::ipvs::dest::Dest;

#[derive(Debug, Default)]
pub struct NeverQueue;

impl Scheduler for NeverQueue {
    fn name(&self) -> &'static str {
        "nq"
    }

    fn update(&mut self, _dests: &[Dest]) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_available() {
                continue;
            }
            if d.active_total() == 0 {
                return Some(i);
            }
            let doh = super::sed::overhead(d);
            let better = least.is_none_or(|(l, loh)| {
                u128::from(loh) * u128::from(d.weight()) > u128::from(doh) * u128::from(dests[l].weight())
            });
            if better {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn idle_first_then_expected_delay() {
        // w 3 / 1: both idle at first (RS1, then RS2), then by (a+1)/w.
        let mut d = dests(&[3, 1]);
        assert_eq!(load(&mut NeverQueue, &mut d, 8, true), vec![0, 1, 0, 0, 0, 0, 0, 1]);
        let mut d = dests(&[1, 1, 1]);
        assert_eq!(load(&mut NeverQueue, &mut d, 6, true), vec![0, 1, 2, 0, 1, 2]);
        let mut d = dests(&[1, 10]);
        assert_eq!(load(&mut NeverQueue, &mut d, 4, true), vec![0, 1, 1, 1]);
    }

    #[test]
    fn idle_means_no_active_connection_whatever_the_inactive_ones() {
        let d = vec![dests(&[10])[0].clone().with_conns(1, 0), dests(&[10, 1])[1].clone().with_conns(0, 500)];
        assert_eq!(sequence(&mut NeverQueue, &d, 1), some(&[1]));
    }

    #[test]
    fn zero_weight_idle_dest_is_not_taken() {
        let mut d = dests(&[0, 1]);
        assert_eq!(load(&mut NeverQueue, &mut d, 2, true), vec![1, 1]);
    }
}
