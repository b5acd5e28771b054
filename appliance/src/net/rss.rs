//! Receive-side scaling: the Toeplitz hash NICs spread flows with, its key, and the
//! redirection table's size. The steering of packets to workers (`pipeline::steer`)
//! and the ports' RSS setup (`dpdk::port`) use the same key and the same input, so
//! software and hardware agree on every flow's owner.

use std::net::Ipv4Addr;

/// The Toeplitz key most NICs ship with (and DPDK's testpmd uses).
pub const RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

/// Redirection-table size (as on common NICs).
pub const RETA_SIZE: u32 = 128;

/// The Toeplitz hash of `input` under `key` (RSS).
pub fn toeplitz(key: &[u8; 40], input: &[u8]) -> u32 {
    let mut result = 0u32;
    // The 32-bit window of the key, sliding one bit per input bit.
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (next, &byte) in (4..).zip(input) {
        for bit in (0..8).rev() {
            if byte & (1 << bit) != 0 {
                result ^= window;
            }
            let incoming = key.get(next).map_or(0, |k| (k >> bit) & 1);
            window = (window << 1) | u32::from(incoming);
        }
    }
    result
}

/// What of a flow the hash reads: the client endpoint, with or without its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Input {
    /// Client address and port: the most even spread.
    #[default]
    ClientPort,
    /// Client address alone: every connection of a client lands together, which
    /// persistence (templates are per worker) needs with more than one worker.
    Client,
}

/// The redirection-table entry of client endpoint (`addr`, `port`).
pub fn reta_index(key: &[u8; 40], input: Input, addr: Ipv4Addr, port: u16) -> u32 {
    let mut bytes = [0u8; 6];
    bytes[..4].copy_from_slice(&addr.octets());
    let len = match input {
        Input::ClientPort => {
            bytes[4..].copy_from_slice(&port.to_be_bytes());
            6
        }
        Input::Client => 4,
    };
    toeplitz(key, &bytes[..len]) % RETA_SIZE
}

/// The Toeplitz hash of a client endpoint (up to 6 bytes: address and port),
/// table-driven: the hash is linear over GF(2), so it is the XOR of each input
/// byte's own contribution, looked up — six loads instead of 48 conditional XORs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Toeplitz {
    table: [[u32; 256]; 6],
}

impl std::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Toeplitz { .. }")
    }
}

impl Toeplitz {
    pub fn new(key: &[u8; 40]) -> Toeplitz {
        // Input bit k (from the most significant of byte 0) adds the key's 32 bits
        // starting at bit k; a byte adds the sum of its set bits'.
        let bit = |k: usize| -> u32 {
            let at = k / 8;
            let wide = u64::from_be_bytes([key[at], key[at + 1], key[at + 2], key[at + 3], key[at + 4], 0, 0, 0]);
            let [b0, b1, b2, b3, ..] = (wide << (k % 8)).to_be_bytes();
            u32::from_be_bytes([b0, b1, b2, b3])
        };
        let mut table = [[0u32; 256]; 6];
        for (at, row) in table.iter_mut().enumerate() {
            for b in 1..256usize {
                let low = b.trailing_zeros() as usize;
                row[b] = row[b & (b - 1)] ^ bit(at * 8 + 7 - low);
            }
        }
        Toeplitz { table }
    }

    /// The redirection-table entry of client endpoint (`addr`, `port`), as
    /// `reta_index` computes it.
    #[inline]
    pub fn reta_index(&self, input: Input, addr: Ipv4Addr, port: u16) -> u32 {
        let [a, b, c, d] = addr.octets();
        let t = &self.table;
        let mut h = t[0][usize::from(a)] ^ t[1][usize::from(b)] ^ t[2][usize::from(c)] ^ t[3][usize::from(d)];
        if input == Input::ClientPort {
            let [p0, p1] = port.to_be_bytes();
            h ^= t[4][usize::from(p0)] ^ t[5][usize::from(p1)];
        }
        h % RETA_SIZE
    }
}

/// Parses an RSS key written as 80 hex digits (colons allowed).
pub fn parse_key(s: &str) -> Option<[u8; 40]> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    if hex.len() != 80 {
        return None;
    }
    let mut k = [0u8; 40];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (source, destination, source port, destination port, hash with ports, hash without).
    type Vector = ([u8; 4], [u8; 4], u16, u16, u32, u32);

    #[test]
    fn toeplitz_matches_the_published_test_vectors() {
        // Microsoft's RSS verification suite, IPv4 with ports (src addr, dst addr,
        // src port, dst port) and IPv4 only.
        let cases: [Vector; 3] = [
            ([66, 9, 149, 187], [161, 142, 100, 80], 2794, 1766, 0x51cc_c178, 0x323e_8fc2),
            ([199, 92, 111, 2], [65, 69, 140, 83], 14230, 4739, 0xc626_b0ea, 0xd718_262a),
            ([24, 19, 198, 95], [12, 22, 207, 184], 12898, 38024, 0x5c2b_394a, 0xd2d0_a5de),
        ];
        for (src, dst, sp, dp, with_ports, ip_only) in cases {
            let mut b = Vec::new();
            b.extend_from_slice(&src);
            b.extend_from_slice(&dst);
            assert_eq!(toeplitz(&RSS_KEY, &b), ip_only);
            b.extend_from_slice(&sp.to_be_bytes());
            b.extend_from_slice(&dp.to_be_bytes());
            assert_eq!(toeplitz(&RSS_KEY, &b), with_ports);
        }
    }

    #[test]
    fn the_table_driven_hash_is_the_bit_serial_one() {
        let keys = [RSS_KEY, [0x6d; 40], std::array::from_fn(|i| u8::try_from(i).unwrap().wrapping_mul(97))];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for key in keys {
            let t = Toeplitz::new(&key);
            for _ in 0..5000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let [a, b, c, d, p0, p1, ..] = x.to_be_bytes();
                let addr = Ipv4Addr::new(a, b, c, d);
                let port = u16::from_be_bytes([p0, p1]);
                for input in [Input::ClientPort, Input::Client] {
                    assert_eq!(t.reta_index(input, addr, port), reta_index(&key, input, addr, port), "{addr}:{port}");
                }
            }
        }
    }

    #[test]
    fn keys_parse() {
        let text: String = RSS_KEY.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse_key(&text), Some(RSS_KEY));
        assert_eq!(parse_key(&text[..78]), None);
        assert_eq!(parse_key(&text.replace('6', "g")), None);
    }
}
