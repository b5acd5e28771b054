//! Weighted least connection (`wlc`, ipvsadm's default): the dest with the smallest
//! `(ActiveConn * 256 + InActConn) / weight`; the first of equals wins.

use super::{weighted_least, SchedInput, Scheduler};
use crate::ipvs::dest::Dest;

#[derive(Debug, Default)]
pub struct WeightedLeastConnection;

impl Scheduler for WeightedLeastConnection {
    fn name(&self) -> &'static str {
        "wlc"
    }

    fn update(&mut self, _dests: &[Dest]) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        weighted_least(dests, Dest::conn_overhead)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn proportional_to_weight() {
        // The NAT tutorial: RS1 -w 3, RS2 -w 1, connections staying active.
        let mut d = dests(&[3, 1]);
        assert_eq!(load(&mut WeightedLeastConnection, &mut d, 8, true), vec![0, 1, 0, 0, 0, 1, 0, 0]);
        let mut d = dests(&[1, 1, 1]);
        assert_eq!(load(&mut WeightedLeastConnection, &mut d, 6, true), vec![0, 1, 2, 0, 1, 2]);
        let mut d = dests(&[1, 2, 4]);
        let got = load(&mut WeightedLeastConnection, &mut d, 70, true);
        let count = |i| got.iter().filter(|&&g| g == i).count();
        assert_eq!((count(0), count(1), count(2)), (10, 20, 40));
    }

    #[test]
    fn inactive_connections_weigh_one_256th() {
        // RS1 (w 1) holds 300 inactive (TIME_WAIT) connections: 300 / 1 > 256 / 1,
        // so RS2 with one active connection is preferred.
        let d = vec![dests(&[1])[0].clone().with_conns(0, 300), dests(&[1, 1])[1].clone().with_conns(1, 0)];
        assert_eq!(sequence(&mut WeightedLeastConnection, &d, 1), some(&[1]));
    }

    #[test]
    fn zero_weight_never_wins() {
        let mut d = dests(&[0, 1, 1]);
        assert_eq!(load(&mut WeightedLeastConnection, &mut d, 4, true), vec![1, 2, 1, 2]);
    }
}
