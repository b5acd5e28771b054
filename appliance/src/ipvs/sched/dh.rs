//! Destination hashing (`dh`): the destination address picks one of 256 buckets
//! (`addr * 2654435761`, low 8 bits), filled with the dests in turn; a quiesced or
//! overloaded bucket dest means no dest (for cache clusters: one address, one cache).

use super::{SchedInput, Scheduler};
use crate::ipvs::dest::Dest;

pub const TAB_BITS: u32 = 8;
pub const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_MASK: u32 = (1 << TAB_BITS) - 1;

#[derive(Debug)]
pub struct DestinationHashing {
    buckets: Box<[Option<u16>; TAB_SIZE]>,
}

impl Default for DestinationHashing {
    fn default() -> Self {
        DestinationHashing { buckets: Box::new([None; TAB_SIZE]) }
    }
}

/// The kernel's `ip_vs_dh_hashkey`.
pub fn hashkey(addr: impl Into<std::net::IpAddr>) -> usize {
    let h = super::fold(addr).wrapping_mul(2_654_435_761) & TAB_MASK;
    h as usize
}

impl Scheduler for DestinationHashing {
    fn name(&self) -> &'static str {
        "dh"
    }

    /// Every bucket gets the next dest in list order, cycling (weights are not used).
    fn update(&mut self, dests: &[Dest]) {
        for (i, b) in self.buckets.iter_mut().enumerate() {
            *b = if dests.is_empty() { None } else { u16::try_from(i % dests.len()).ok() };
        }
    }

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let i = usize::from(self.buckets[hashkey(input.dst)]?);
        dests.get(i).filter(|d| d.is_available()).map(|_| i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use std::net::Ipv4Addr;

    fn pick(s: &mut DestinationHashing, d: &[Dest], dst: Ipv4Addr) -> Option<usize> {
        let mut inp = input(Ipv4Addr::new(198, 18, 0, 100));
        inp.dst = std::net::IpAddr::from(dst);
        s.schedule(d, &inp)
    }

    #[test]
    fn same_destination_same_dest_and_buckets_in_turn() {
        for weights in [[1, 1, 1], [5, 1, 1], [1, 2, 3]] {
            let d = dests(&weights);
            let mut s = DestinationHashing::default();
            s.update(&d);
            for last in 0..=255u8 {
                let a = Ipv4Addr::new(203, 0, 113, last);
                let want = hashkey(a) % 3;
                assert_eq!(pick(&mut s, &d, a), Some(want));
                assert_eq!(pick(&mut s, &d, a), Some(want), "stable");
            }
        }
        // 203.0.113.1: 0xcb007101 * 2654435761 mod 256 = 0x01 * 0xb1 (low byte) = 0xb1.
        assert_eq!(hashkey(Ipv4Addr::new(203, 0, 113, 1)), 0xb1);
    }

    #[test]
    fn quiesced_bucket_dest_gives_no_dest() {
        let mut d = dests(&[1, 1]);
        let mut s = DestinationHashing::default();
        s.update(&d);
        let a = (0..=255u8).map(|x| Ipv4Addr::new(203, 0, 113, x)).find(|&a| hashkey(a).is_multiple_of(2)).unwrap();
        d[0].set_weight(0);
        assert_eq!(pick(&mut s, &d, a), None);
    }
}
