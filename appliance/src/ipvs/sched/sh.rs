//! Source hashing (`sh`): the source address (and with `sh-port` the source port)
//! picks one of 256 buckets (`hash_32(port + addr, 8)`), filled with each dest
//! `weight` times in list order, cycling. A quiesced or overloaded bucket dest means
//! no dest, unless `sh-fallback`, which walks on to the next buckets.

use super::{hash_32, SchedFlags, SchedInput, Scheduler};
use crate::ipvs::dest::Dest;

pub const TAB_BITS: u32 = 8;
pub const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_SIZE_U32: u32 = 1 << TAB_BITS;

#[derive(Debug)]
pub struct SourceHashing {
    buckets: Box<[Option<u16>; TAB_SIZE]>,
    fallback: bool,
    port: bool,
}

impl SourceHashing {
    pub fn new(flags: SchedFlags) -> SourceHashing {
        SourceHashing { buckets: Box::new([None; TAB_SIZE]), fallback: flags.flag1, port: flags.flag2 }
    }
}

/// The kernel's `ip_vs_sh_hashkey`.
pub fn hashkey(addr: impl Into<std::net::IpAddr>, port: u16, offset: u32) -> usize {
    let h = offset.wrapping_add(hash_32(u32::from(port).wrapping_add(super::fold(addr)), TAB_BITS));
    (h as usize) & (TAB_SIZE - 1)
}

impl Scheduler for SourceHashing {
    fn name(&self) -> &'static str {
        "sh"
    }

    fn update(&mut self, dests: &[Dest]) {
        let mut p = 0usize;
        let mut count = 0u32;
        for b in self.buckets.iter_mut() {
            if dests.is_empty() {
                *b = None;
                continue;
            }
            *b = u16::try_from(p).ok();
            count += 1;
            if count >= dests[p].weight() {
                p = (p + 1) % dests.len();
                count = 0;
            }
        }
    }

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let port = if self.port { input.src_port } else { 0 };
        if !self.fallback {
            let i = usize::from(self.buckets[hashkey(input.src, port, 0)]?);
            return dests.get(i).filter(|d| d.is_available()).map(|_| i);
        }
        for offset in 0..TAB_SIZE_U32 {
            let i = usize::from(self.buckets[hashkey(input.src, port, offset)]?);
            if dests.get(i).is_some_and(Dest::is_available) {
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use std::net::Ipv4Addr;

    fn pick(s: &mut SourceHashing, d: &[Dest], src: Ipv4Addr, port: u16) -> Option<usize> {
        let mut inp = input(src);
        inp.src_port = port;
        s.schedule(d, &inp)
    }

    fn clients() -> impl Iterator<Item = Ipv4Addr> {
        (0..=255u8).map(|x| Ipv4Addr::new(198, 18, 0, x))
    }

    #[test]
    fn buckets_are_weighted() {
        // A weight-0 dest still takes one bucket per cycle in the kernel's fill:
        // [3,1,0] cycles over 5 buckets, 3 + 1 + 1.
        for (weights, want) in
            [([1u32, 1, 1], [86usize, 85, 85]), ([3, 1, 0], [154, 51, 51]), ([2, 1, 1], [128, 64, 64])]
        {
            let d = dests(&weights);
            let mut s = SourceHashing::new(SchedFlags::default());
            s.update(&d);
            let mut counts = [0usize; 3];
            for b in s.buckets.iter() {
                counts[usize::from(b.unwrap())] += 1;
            }
            assert_eq!(counts, want, "{weights:?}");
        }
    }

    #[test]
    fn same_client_same_dest_and_port_only_with_sh_port() {
        let d = dests(&[1, 1, 1]);
        let mut s = SourceHashing::new(SchedFlags::default());
        s.update(&d);
        for c in clients() {
            let want = usize::from(s.buckets[hashkey(c, 0, 0)].unwrap());
            assert_eq!(pick(&mut s, &d, c, 1000), Some(want));
            assert_eq!(pick(&mut s, &d, c, 2000), Some(want), "port ignored");
        }
        let mut sp = SourceHashing::new(SchedFlags { flag2: true, ..Default::default() });
        sp.update(&d);
        let c = Ipv4Addr::new(198, 18, 0, 100);
        let picks: std::collections::HashSet<_> = (1000..1064).map(|p| pick(&mut sp, &d, c, p)).collect();
        assert!(picks.len() > 1, "sh-port spreads one client's ports");
        assert_eq!(hashkey(c, 0, 0), (hash_32(u32::from(c), 8)) as usize);
    }

    #[test]
    fn fallback_only_with_the_flag() {
        let mut d = dests(&[1, 1]);
        let mut plain = SourceHashing::new(SchedFlags::default());
        let mut fb = SourceHashing::new(SchedFlags { flag1: true, ..Default::default() });
        plain.update(&d);
        fb.update(&d);
        d[0].set_weight(0);
        let c = clients().find(|&c| plain.buckets[hashkey(c, 0, 0)] == Some(0)).unwrap();
        assert_eq!(pick(&mut plain, &d, c, 0), None);
        assert_eq!(pick(&mut fb, &d, c, 0), Some(1));
        d[1].set_weight(0);
        assert_eq!(pick(&mut fb, &d, c, 0), None, "all quiesced");
    }
}
