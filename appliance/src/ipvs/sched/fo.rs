//! Weighted failover (`fo`): always the available dest with the highest weight (the
//! first of equals); the others take over only when it is quiesced or overloaded.

use super::{SchedInput, Scheduler};
use crate::ipvs::dest::Dest;

#[derive(Debug, Default)]
pub struct WeightedFailover;

impl Scheduler for WeightedFailover {
    fn name(&self) -> &'static str {
        "fo"
    }

    fn update(&mut self, _dests: &[Dest]) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, d) in dests.iter().enumerate() {
            if d.is_available() && best.is_none_or(|b| d.weight() > dests[b].weight()) {
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
    fn highest_weight_takes_everything() {
        assert_eq!(sequence(&mut WeightedFailover, &dests(&[1, 3, 2]), 3), some(&[1, 1, 1]));
        assert_eq!(sequence(&mut WeightedFailover, &dests(&[5, 5, 1]), 2), some(&[0, 0]), "first of equals");
        assert_eq!(sequence(&mut WeightedFailover, &dests(&[0, 0, 1]), 2), some(&[2, 2]));
    }

    #[test]
    fn fails_over_when_quiesced_or_overloaded() {
        let mut d = dests(&[3, 2, 1]);
        d[0].set_weight(0);
        assert_eq!(sequence(&mut WeightedFailover, &d, 1), some(&[1]));
        d[1] = d[1].clone().with_thresholds(1, 0).with_conns(1, 0);
        assert_eq!(sequence(&mut WeightedFailover, &d, 1), some(&[2]));
    }
}
