//! Round robin (`rr`): each new connection goes to the next available dest in list
//! order, starting after the one chosen last; weights only matter as zero / non-zero.

use super::{SchedInput, Scheduler};
use crate::ipvs::dest::Dest;

#[derive(Debug, Default)]
pub struct RoundRobin {
    /// Index of the dest chosen last (None: start from the head of the list).
    last: Option<usize>,
}

impl Scheduler for RoundRobin {
    fn name(&self) -> &'static str {
        "rr"
    }

    fn update(&mut self, dests: &[Dest]) {
        if self.last.is_some_and(|l| l >= dests.len()) {
            self.last = None;
        }
    }

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let n = dests.len();
        let start = self.last.map_or(0, |l| l + 1);
        let pick = (0..n).map(|k| (start + k) % n).find(|&i| dests[i].is_available())?;
        self.last = Some(pick);
        Some(pick)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn in_turn_ignoring_weight_values() {
        for weights in [[1, 1, 1], [5, 1, 3], [100, 100, 1]] {
            let d = dests(&weights);
            let mut s = RoundRobin::default();
            assert_eq!(sequence(&mut s, &d, 7), some(&[0, 1, 2, 0, 1, 2, 0]), "{weights:?}");
        }
    }

    #[test]
    fn quiesced_dest_is_skipped_and_the_turn_goes_on() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = RoundRobin::default();
        assert_eq!(sequence(&mut s, &d, 1), some(&[0]));
        d[1].set_weight(0);
        assert_eq!(sequence(&mut s, &d, 4), some(&[2, 0, 2, 0]));
    }

    #[test]
    fn shrinking_list_restarts_from_the_head() {
        let d = dests(&[1, 1, 1]);
        let mut s = RoundRobin::default();
        sequence(&mut s, &d, 3);
        let d2 = dests(&[1, 1]);
        s.update(&d2);
        assert_eq!(sequence(&mut s, &d2, 3), some(&[0, 1, 0]));
    }
}
