//! Least connection (`lc`): the available dest with the smallest overhead
//! `ActiveConn * 256 + InActConn`; weights only matter as zero / non-zero, and the
//! first of equals wins.

use super::{SchedInput, Scheduler};
use crate::ipvs::dest::Dest;

#[derive(Debug, Default)]
pub struct LeastConnection;

impl Scheduler for LeastConnection {
    fn name(&self) -> &'static str {
        "lc"
    }

    fn update(&mut self, _dests: &[Dest]) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_available() {
                continue;
            }
            let doh = d.conn_overhead();
            if least.is_none_or(|(_, loh)| doh < loh) {
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
    fn fewest_connections_first_of_equals() {
        // Weight values do not matter to lc: the same sequence for every mix.
        for weights in [[1, 1, 1], [3, 2, 1], [1, 10, 100]] {
            let mut d = dests(&weights);
            let mut s = LeastConnection;
            assert_eq!(load(&mut s, &mut d, 6, true), vec![0, 1, 2, 0, 1, 2], "{weights:?}");
        }
    }

    #[test]
    fn active_counts_256_inactive_one() {
        let d = vec![dests(&[1])[0].clone().with_conns(1, 0), dests(&[1, 1])[1].clone().with_conns(0, 255)];
        let mut s = LeastConnection;
        assert_eq!(sequence(&mut s, &d, 1), some(&[1]), "255 < 256");
        let d = vec![d[0].clone(), d[1].clone().with_conns(0, 256)];
        assert_eq!(sequence(&mut s, &d, 1), some(&[0]), "a tie goes to the first");
    }

    #[test]
    fn quiesced_dest_gets_nothing() {
        let mut d = dests(&[1, 0, 1]);
        let mut s = LeastConnection;
        assert_eq!(load(&mut s, &mut d, 4, true), vec![0, 2, 0, 2]);
    }
}
