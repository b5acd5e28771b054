//! The Internet checksum (RFC 1071), full and incremental (RFC 1624).
//!
//! `sum` accumulates 16-bit big-endian words into a u32 without folding, so several
//! pieces (pseudo-header, header, payload) can be added before one `fold`.

use std::net::Ipv4Addr;

/// Adds `data` as big-endian 16-bit words (an odd last byte is padded with zero) to
/// `acc`. The result is not folded.
///
/// Sums 32-bit words into 64 bits (RFC 1071: any word size gives the same folded
/// sum, since 2^16 = 1 modulo 0xffff), so a 20-byte header is five additions and no
/// frame can overflow; the tail is taken as 16-bit words.
#[inline]
pub fn sum(acc: u32, data: &[u8]) -> u32 {
    let mut a = u64::from(acc);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        a += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let mut halves = words.remainder().chunks_exact(2);
    for h in &mut halves {
        a += u64::from(u16::from_be_bytes([h[0], h[1]]));
    }
    if let [last] = halves.remainder() {
        a += u64::from(*last) << 8;
    }
    // Two end-around folds bring any u64 below 2^32 + 1, then below 2^32.
    a = (a & 0xffff_ffff) + (a >> 32);
    a = (a & 0xffff_ffff) + (a >> 32);
    u32::try_from(a).unwrap_or(u32::MAX)
}

/// Folds a 32-bit accumulator into 16 bits of one's-complement sum: two
/// end-around folds (the first leaves at most 0x1fffe, the second at most 0xffff),
/// without a loop.
#[inline]
pub fn fold(acc: u32) -> u16 {
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    // At most 0xffff after two folds: its low half is all of it.
    let [lo, hi, _, _] = acc.to_le_bytes();
    u16::from_le_bytes([lo, hi])
}

/// The checksum to store over `data`: the complement of its one's-complement sum.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(0, data))
}

/// Sum of the TCP/UDP pseudo-header for IPv4.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u32 {
    let acc = sum(0, &src.octets());
    let acc = sum(acc, &dst.octets());
    // `sum` may return anything below 2^32: add the rest through `add`, which
    // carries end-around (found by the `wire` fuzz target: 255.255.255.255
    // addresses overflowed a plain u32 addition).
    add(acc, u32::from(protocol) + u32::from(length))
}

/// `a + b` in one's-complement arithmetic on 32-bit accumulators: a carry out of
/// bit 31 comes back in at bit 0, so the folded sum is unchanged.
#[inline]
pub fn add(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s + u32::from(carry)
}

/// RFC 1624 eqn. 3: the checksum after one 16-bit word of the covered data changed
/// from `old` to `new`: HC' = ~(~HC + ~m + m').
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!csum) + u32::from(!old) + u32::from(new);
    !fold(acc)
}

/// As `update16` for a 32-bit field (an IPv4 address), word by word.
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let [o0, o1, o2, o3] = old.to_be_bytes();
    let acc = u32::from(!csum)
        + u32::from(!u16::from_be_bytes([o0, o1]))
        + u32::from(!u16::from_be_bytes([o2, o3]))
        + (new >> 16)
        + (new & 0xffff);
    !fold(acc)
}

/// The one's-complement difference a 32-bit field's change from `old` to `new`
/// makes (RFC 1624's ~m + m'), to apply to several checksums covering the field
/// with `apply_delta`.
#[inline]
pub fn delta32(old: u32, new: u32) -> u32 {
    (!old >> 16) + (!old & 0xffff) + (new >> 16) + (new & 0xffff)
}

/// As `delta32` for a 16-bit field.
#[inline]
pub fn delta16(old: u16, new: u16) -> u32 {
    u32::from(!old) + u32::from(new)
}

/// A checksum after changes whose differences sum to `delta` (`delta32`, `delta16`;
/// at most a few added together): HC' = ~(~HC + delta).
#[inline]
pub fn apply_delta(csum: u16, delta: u32) -> u16 {
    !fold(u32::from(!csum) + delta)
}

/// The one's-complement sum of two 16-bit words: their sum with its carry added
/// back (end-around carry), which never carries again.
#[inline(always)]
pub fn ones_add(a: u16, b: u16) -> u16 {
    let (s, carry) = a.overflowing_add(b);
    s.wrapping_add(u16::from(carry))
}

/// `apply_delta` for one 16-bit difference (`nat_sums`' own, or two
/// `ones_add`ed): HC' = ~(~HC + sum), one end-around add.
#[inline(always)]
pub fn apply_sum(csum: u16, sum: u16) -> u16 {
    !ones_add(!csum, sum)
}

/// What rewriting an IPv4 address `old` -> `new` and a transport port
/// `old_port` -> `new_port` does to the IPv4 header checksum (`[0]`: the
/// address) and the transport checksum (`[1]`: both), as one's-complement
/// differences below 0xffff, to apply with `apply_delta`; their complements undo
/// the rewrite. Summed as the rewrite sums the packet's words: in the machine's
/// order of the wire's bytes.
///
/// A one's-complement sum is its plain sum modulo 0xffff, and a 32-bit word is
/// its two halves' sum modulo it (2^16 = 1), so the address is taken whole: the
/// complement of a word is its negation modulo 0xffff (all ones, 32 or 16 bits,
/// is a multiple of it), and one remainder each gives the differences.
#[inline]
pub fn nat_sums(old: Ipv4Addr, new: Ipv4Addr, old_port: u16, new_port: u16) -> [u16; 2] {
    let addr = |a: Ipv4Addr| u64::from(u32::from_ne_bytes(a.octets()));
    let port = |p: u16| u64::from(u16::from_ne_bytes(p.to_be_bytes()));
    let d_addr = (0xffff_ffff - addr(old)) + addr(new);
    let d_l4 = d_addr + (0xffff - port(old_port)) + port(new_port);
    let rem = |d: u64| u16::try_from(d % 0xffff).unwrap_or(0);
    [rem(d_addr), rem(d_l4)]
}

/// As `update32` for an IPv4 address.
#[inline]
pub fn update_addr(csum: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update32(csum, u32::from(old), u32::from(new))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071 section 3's example bytes.
    const RFC1071: [u8; 8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];

    #[test]
    fn nat_sums_of_a_rewrite_and_its_reverse_are_complements() {
        // Modulo 0xffff (0 and 0xffff are both zero): what one rewrite adds, the
        // reverse takes away, so a reply's rewrite uses the complements.
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        for (old, new, op, np) in [
            (a("198.18.0.10"), a("198.18.1.11"), 80, 8080),
            (a("255.255.255.255"), a("0.0.0.0"), 65535, 0),
            (a("198.18.0.10"), a("198.18.0.10"), 80, 80),
        ] {
            let there = nat_sums(old, new, op, np);
            let back = nat_sums(new, old, np, op);
            for i in 0..2 {
                assert_eq!((u32::from(there[i]) + u32::from(back[i])) % 0xffff, 0, "{old} {new} {i}");
                assert_eq!(u32::from(!there[i]) % 0xffff, u32::from(back[i]) % 0xffff, "{old} {new} {i}");
            }
        }
    }

    #[test]
    fn one_end_around_add_is_the_folded_sum() {
        // Every pair of a sample, the words that carry among them: the same
        // checksum as the folded sum gives, and one more add for a third word.
        let words: Vec<u16> = [0u16, 1, 2, 0x7fff, 0x8000, 0xfffe, 0xffff]
            .into_iter()
            .chain((0..200u32).map(|i| u16::try_from(i.wrapping_mul(0x9e37_79b1) >> 16).unwrap_or(0)))
            .collect();
        for &a in &words {
            for &b in &words {
                assert_eq!(ones_add(a, b), fold(u32::from(a) + u32::from(b)), "{a:#x} + {b:#x}");
                assert_eq!(apply_sum(a, b), apply_delta(a, u32::from(b)), "{a:#x} + {b:#x}");
                let c = b.rotate_left(5);
                let three = fold(u32::from(a) + u32::from(b) + u32::from(c));
                assert_eq!(ones_add(ones_add(a, b), c), three, "{a:#x} + {b:#x} + {c:#x}");
            }
        }
    }

    #[test]
    fn rfc1071_example() {
        assert_eq!(fold(sum(0, &RFC1071)), 0xddf2);
        assert_eq!(checksum(&RFC1071), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(0, &[0xab])), 0xab00);
        assert_eq!(fold(sum(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn data_with_its_checksum_sums_to_all_ones() {
        let mut d = [0x45u8, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2];
        let c = checksum(&d);
        d[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(fold(sum(0, &d)), 0xffff);
        assert_eq!(checksum(&d), 0);
    }

    #[test]
    fn incremental_matches_full_recompute() {
        let mut d: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        let c0 = checksum(&d);
        // a 16-bit word
        let old = u16::from_be_bytes([d[6], d[7]]);
        d[6..8].copy_from_slice(&0xbeefu16.to_be_bytes());
        let c1 = update16(c0, old, 0xbeef);
        assert_eq!(c1, checksum(&d));
        // a 32-bit word
        let old32 = u32::from_be_bytes([d[12], d[13], d[14], d[15]]);
        d[12..16].copy_from_slice(&0xc612_0a0bu32.to_be_bytes());
        assert_eq!(update32(c1, old32, 0xc612_0a0b), checksum(&d));
    }

    #[test]
    fn incremental_handles_all_ones_and_zero() {
        for (old, new) in [(0u16, 0xffffu16), (0xffff, 0), (0x1234, 0x1234), (0x8000, 0x7fff)] {
            let mut d = [0x11u8, 0x22, 0, 0, 0x33, 0x44];
            d[2..4].copy_from_slice(&old.to_be_bytes());
            let c0 = checksum(&d);
            d[2..4].copy_from_slice(&new.to_be_bytes());
            let c1 = update16(c0, old, new);
            // Both encodings of zero (0x0000 / 0xffff) verify; compare by verification.
            let mut v = d.to_vec();
            v.extend_from_slice(&c1.to_be_bytes());
            assert_eq!(fold(sum(0, &v)), 0xffff, "old={old:#x} new={new:#x}");
        }
    }

    #[test]
    fn wide_sum_folds_like_sixteen_bit_words() {
        // The definition: 16-bit words, folded as they go.
        let narrow = |data: &[u8]| {
            let mut acc: u64 = 0;
            for c in data.chunks(2) {
                acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
            while acc > 0xffff {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            acc
        };
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..200usize {
            for fill in [0x00u8, 0xff, 0x5a] {
                let data: Vec<u8> = (0..len)
                    .map(|i| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if i % 3 == 0 {
                            fill
                        } else {
                            x.to_le_bytes()[0]
                        }
                    })
                    .collect();
                assert_eq!(u64::from(fold(sum(0, &data))), narrow(&data), "len {len}");
                // A running accumulator (a pseudo-header) carries in the same way.
                let mut with = narrow(&data) + 0x1234 + 0x5678;
                while with > 0xffff {
                    with = (with & 0xffff) + (with >> 16);
                }
                assert_eq!(u64::from(fold(sum(0x1234_5678, &data))), with, "len {len}, with an accumulator");
            }
        }
        assert_eq!(fold(sum(0, &[0xff; 9000])), 0xffff);
    }

    #[test]
    fn pseudo_header_of_all_ones_addresses_carries_end_around() {
        let ones = Ipv4Addr::new(255, 255, 255, 255);
        let got = fold(pseudo_header_v4(ones, ones, 17, 0xffff));
        // 16-bit words: 0xffff four times, 17, 0xffff; one's-complement sum.
        let mut want: u32 = 0;
        for w in [0xffffu32, 0xffff, 0xffff, 0xffff, 17, 0xffff] {
            want += w;
            want = (want & 0xffff) + (want >> 16);
        }
        assert_eq!(u32::from(got), want);
        assert_eq!(add(u32::MAX, 1), 1);
        assert_eq!(fold(add(0xffff_fff0, 0x20)), fold(0xffff_fff0 % 0xffff + 0x20));
    }
}
