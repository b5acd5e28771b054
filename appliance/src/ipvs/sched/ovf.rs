//! Weighted overflow (`ovf`): the highest-weight available dest whose active
//! connections do not exceed its weight (the first of equals); when it fills up, the
//! next highest weight takes the overflow.

use super::{SchedInput, Scheduler};
use crate::ipvs::dest::Dest;

#[derive(Debug, Default)]
pub struct WeightedOverflow;

impl Scheduler for WeightedOverflow {
    fn name(&self) -> &'static str {
        "ovf"
    }

    fn update(&mut self, _dests: &[Dest]) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_available() || d.active_total() > d.weight() {
                continue;
            }
            if best.is_none_or(|b| d.weight() > dests[b].weight()) {
                best = Some(i);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn overflows_by_weight() {
        // RS2 (w 3) takes connections while active <= 3, i.e. four of them, then RS1
        // (w 2) takes three, then RS3 (w 1) two.
        let mut d = dests(&[2, 3, 1]);
        assert_eq!(load(&mut WeightedOverflow, &mut d, 9, true), vec![1, 1, 1, 1, 0, 0, 0, 2, 2]);
        assert_eq!(sequence(&mut WeightedOverflow, &d, 1), vec![None], "all full");
    }

    #[test]
    fn inactive_connections_do_not_fill_a_dest() {
        let mut d = dests(&[1, 1]);
        assert_eq!(load(&mut WeightedOverflow, &mut d, 5, false), vec![0, 0, 0, 0, 0]);
        let mut d = dests(&[0, 1]);
        assert_eq!(load(&mut WeightedOverflow, &mut d, 2, true), vec![1, 1]);
    }
}
