//! Round robin (`rr`): each new connection goes to the next available dest in list
//! order, starting after the one chosen last; weights only matter as zero / non-zero.
//! The place is kept across changes of the list as the kernel keeps it: a new dest
//! (at the head) does not move it, and when the dest chosen last leaves, the turn
//! goes on with the one that followed it.

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

    fn dest_added(&mut self, index: usize) {
        if let Some(l) = self.last.as_mut().filter(|l| **l >= index) {
            *l += 1;
        }
    }

    fn dest_removed(&mut self, index: usize) {
        self.last = match self.last {
            // The one before it (or the head): the next turn is the one after it.
            Some(l) if l == index => index.checked_sub(1),
            Some(l) if l > index => Some(l - 1),
            other => other,
        };
    }

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        // From the one after the last pick, round to it again: no division per
        // dest looked at.
        let start = self.last.map_or(0, |l| l + 1);
        let start = if start < dests.len() { start } else { 0 };
        let (wrapped, from_start) = dests.split_at(start);
        let pick = from_start
            .iter()
            .position(Dest::is_available)
            .map(|i| start + i)
            .or_else(|| wrapped.iter().position(Dest::is_available))?;
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
    fn the_turn_wraps_past_quiesced_dests_at_the_end() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = RoundRobin::default();
        assert_eq!(sequence(&mut s, &d, 2), some(&[0, 1]));
        d[2].set_weight(0);
        assert_eq!(sequence(&mut s, &d, 3), some(&[0, 1, 0]));
        d[0].set_weight(0);
        d[1].set_weight(0);
        assert_eq!(sequence(&mut s, &d, 1), vec![None], "none available");
    }

    /// ip_vs_rr.c: the position is a list node; a dest added at the head does not
    /// move it, and a removed last pick hands the turn to its successor.
    #[test]
    fn the_turn_survives_adds_at_the_head_and_removals() {
        let mut s = RoundRobin::default();
        let mut d = dests(&[1, 1]);
        assert_eq!(sequence(&mut s, &d, 1), some(&[0]));
        d.insert(0, dests(&[1])[0].clone());
        s.dest_added(0);
        s.update(&d);
        // Last pick is now at 1: next 2, then around to the new head.
        assert_eq!(sequence(&mut s, &d, 3), some(&[2, 0, 1]));
        d.remove(1);
        s.dest_removed(1);
        s.update(&d);
        assert_eq!(sequence(&mut s, &d, 2), some(&[1, 0]));
        s.dest_removed(0);
        d.remove(0);
        s.update(&d);
        assert_eq!(sequence(&mut s, &d, 1), some(&[0]));
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
