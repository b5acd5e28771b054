//! Maglev hashing (`mh`): a lookup table of prime size (4093, the kernel's default)
//! is filled from each dest's permutation of the slots (offset and skip from SipHash
//! of its address and port with the kernel's fixed keys), taking turns in proportion
//! to the weights; the source address (with `mh-port`, plus the source port) indexes
//! the table. A quiesced or overloaded dest means no dest, unless `mh-fallback`,
//! which rehashes around the table. Quiesced dests keep their slots (the table uses
//! the last non-zero weight), so removing or quiescing one dest moves only its
//! clients.
//!
//! The hash is the kernel's: `hsiphash` (SipHash-1-3 on 64-bit) of the u32
//! `offset + port + addr`, keys 2654435761 (lookup, offsets) and 2654435801 (skips).

use super::{SchedFlags, SchedInput, Scheduler};
use crate::ipvs::dest::Dest;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;

/// Table size: the kernel's primes[CONFIG_IP_VS_MH_TAB_INDEX - 8] with the default
/// index 12.
pub const TAB_SIZE: usize = M as usize;
const M: u32 = 4093;
const TAB_BITS: u32 = 11; // ilog2(TAB_SIZE)

const KEY1: u64 = 2_654_435_761;
const KEY2: u64 = 2_654_435_801;

/// The kernel's `ip_vs_mh_hashkey` for IPv4.
pub fn hashkey(addr: impl Into<std::net::IpAddr>, port: u16, key: u64, offset: u32) -> u32 {
    let v = offset.wrapping_add(u32::from(port)).wrapping_add(super::fold(addr));
    let mut h = SipHasher13::new_with_keys(key, key);
    h.write(&v.to_ne_bytes());
    // hsiphash returns 32 bits: the low half of SipHash's 64.
    (h.finish() & 0xffff_ffff) as u32
}

#[derive(Debug)]
pub struct MaglevHashing {
    table: Vec<Option<u16>>,
    fallback: bool,
    port: bool,
}

impl MaglevHashing {
    pub fn new(flags: SchedFlags) -> MaglevHashing {
        MaglevHashing { table: vec![None; TAB_SIZE], fallback: flags.flag1, port: flags.flag2 }
    }

    /// The dest index in each slot (for tests and diagnostics).
    pub fn table(&self) -> &[Option<u16>] {
        &self.table
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn fls(x: u32) -> u32 {
    32 - x.leading_zeros()
}

impl Scheduler for MaglevHashing {
    fn name(&self) -> &'static str {
        "mh"
    }

    fn update(&mut self, dests: &[Dest]) {
        self.table.iter_mut().for_each(|s| *s = None);
        let g = dests.iter().map(Dest::last_weight).filter(|&w| w > 0).fold(0, gcd);
        if dests.is_empty() || g == 0 {
            return;
        }
        let mw = dests.iter().map(Dest::last_weight).max().unwrap_or(0) / g;
        let rshift = fls(mw).saturating_sub(TAB_BITS);
        let m = M;
        // (perm, skip, turns) per dest.
        let mut ds: Vec<(u32, u32, u32)> = dests
            .iter()
            .map(|d| {
                let offset = hashkey(d.addr, d.port, KEY1, 0) % m;
                let skip = hashkey(d.addr, d.port, KEY2, 0) % (m - 1) + 1;
                let lw = d.last_weight();
                let turns = match (lw / g) >> rshift {
                    0 => u32::from(lw != 0),
                    t => t,
                };
                (offset, skip, turns)
            })
            .collect();
        let mut filled = vec![false; TAB_SIZE];
        let mut n = 0usize;
        while n < TAB_SIZE {
            let mut i = 0;
            let mut dt = 0u32;
            while i < ds.len() {
                let (perm, skip, turns) = &mut ds[i];
                if *turns < 1 {
                    i += 1;
                    continue;
                }
                let mut c = *perm;
                while filled[c as usize] {
                    *perm += *skip;
                    if *perm >= m {
                        *perm -= m;
                    }
                    c = *perm;
                }
                filled[c as usize] = true;
                self.table[c as usize] = u16::try_from(i).ok();
                n += 1;
                if n == TAB_SIZE {
                    return;
                }
                dt += 1;
                if dt >= *turns {
                    dt = 0;
                    i += 1;
                }
            }
        }
    }

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let port = if self.port { input.src_port } else { 0 };
        let m = M;
        let ihash = hashkey(input.src, port, KEY1, 0) % m;
        let i = usize::from(self.table[ihash as usize]?);
        if dests.get(i).is_some_and(Dest::is_available) {
            return Some(i);
        }
        if !self.fallback {
            return None;
        }
        for offset in 0..m {
            let roffset = (offset + ihash) % m;
            let h = hashkey(input.src, port, KEY1, roffset) % m;
            let i = usize::from(self.table[h as usize]?);
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

    fn built(weights: &[u32], flags: SchedFlags) -> (Vec<Dest>, MaglevHashing) {
        let d = dests(weights);
        let mut s = MaglevHashing::new(flags);
        s.update(&d);
        (d, s)
    }

    fn shares(s: &MaglevHashing, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for slot in s.table() {
            c[usize::from(slot.expect("every slot filled"))] += 1;
        }
        c
    }

    /// SipHash-1-3 written out from the paper (one compression round, three
    /// finalisation rounds), for a 4-byte message: checks `hashkey` feeds the crate
    /// the bytes and keys the kernel's hsiphash uses.
    fn reference_siphash13_u32(m: u32, k0: u64, k1: u64) -> u64 {
        let (mut v0, mut v1, mut v2, mut v3) =
            (k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d, k0 ^ 0x6c7967656e657261, k1 ^ 0x7465646279746573);
        let round = |v0: &mut u64, v1: &mut u64, v2: &mut u64, v3: &mut u64| {
            *v0 = v0.wrapping_add(*v1);
            *v1 = v1.rotate_left(13) ^ *v0;
            *v0 = v0.rotate_left(32);
            *v2 = v2.wrapping_add(*v3);
            *v3 = v3.rotate_left(16) ^ *v2;
            *v0 = v0.wrapping_add(*v3);
            *v3 = v3.rotate_left(21) ^ *v0;
            *v2 = v2.wrapping_add(*v1);
            *v1 = v1.rotate_left(17) ^ *v2;
            *v2 = v2.rotate_left(32);
        };
        let b: u64 = (4u64 << 56) | u64::from(m);
        v3 ^= b;
        round(&mut v0, &mut v1, &mut v2, &mut v3);
        v0 ^= b;
        v2 ^= 0xff;
        for _ in 0..3 {
            round(&mut v0, &mut v1, &mut v2, &mut v3);
        }
        v0 ^ v1 ^ v2 ^ v3
    }

    #[test]
    fn hashkey_is_siphash13_of_the_folded_u32() {
        for (a, p, off) in [(Ipv4Addr::new(198, 18, 1, 11), 80u16, 0u32), (Ipv4Addr::new(10, 0, 0, 1), 0, 7)] {
            let v = off + u32::from(p) + u32::from(a);
            for key in [KEY1, KEY2] {
                let want = reference_siphash13_u32(v, key, key) & 0xffff_ffff;
                assert_eq!(u64::from(hashkey(a, p, key, off)), want);
            }
        }
    }

    #[test]
    fn table_shares_follow_weights() {
        for (weights, want) in [
            (vec![1u32, 1, 1], [1364.0, 1364.0, 1364.0]),
            (vec![3, 1, 0], [3070.0, 1023.0, 0.0]),
            (vec![2, 1, 1], [2046.0, 1023.0, 1023.0]),
        ] {
            let (_, s) = built(&weights, SchedFlags::default());
            let got = shares(&s, 3);
            for (g, w) in got.iter().zip(want) {
                assert!((*g as f64 - w).abs() <= 3.0, "{weights:?}: {got:?}");
            }
        }
    }

    #[test]
    fn removing_a_dest_moves_only_its_slots() {
        let (_, s3) = built(&[1, 1, 1], SchedFlags::default());
        let (_, s2) = built(&[1, 1], SchedFlags::default());
        let mut moved = 0;
        for (a, b) in s3.table().iter().zip(s2.table()) {
            if *a != Some(2) && a != b {
                moved += 1;
            }
        }
        // Maglev's promise: near-minimal disruption (a few percent at most).
        assert!(moved < TAB_SIZE / 20, "{moved} slots of surviving dests moved");
    }

    #[test]
    fn same_client_same_dest_and_quiesced_keeps_its_slots() {
        let (mut d, mut s) = built(&[1, 1, 1], SchedFlags::default());
        let clients: Vec<Ipv4Addr> = (0..=255u8).map(|x| Ipv4Addr::new(198, 18, 0, x)).collect();
        let before: Vec<_> = clients.iter().map(|&c| s.schedule(&d, &input(c))).collect();
        assert!(before.iter().all(Option::is_some));
        d[1].set_weight(0);
        s.update(&d);
        for (c, b) in clients.iter().zip(&before) {
            let now = s.schedule(&d, &input(*c));
            if *b == Some(1) {
                assert_eq!(now, None, "quiesced without fallback: no dest");
            } else {
                assert_eq!(now, *b, "other clients stay");
            }
        }
        let (mut d, mut s) = built(&[1, 1, 1], SchedFlags { flag1: true, ..Default::default() });
        d[1].set_weight(0);
        s.update(&d);
        for c in &clients {
            let now = s.schedule(&d, &input(*c));
            assert!(matches!(now, Some(0) | Some(2)), "fallback finds another dest");
        }
    }

    #[test]
    fn mh_port_spreads_one_clients_ports() {
        let (d, mut s) = built(&[1, 1, 1], SchedFlags { flag2: true, ..Default::default() });
        let c = Ipv4Addr::new(198, 18, 0, 100);
        let picks: std::collections::HashSet<_> =
            (1000..1100).map(|p| s.schedule(&d, &SchedInput { src_port: p, ..input(c) })).collect();
        assert!(picks.len() == 3);
    }
}
