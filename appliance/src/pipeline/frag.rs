//! IPv4 and IPv6 fragments without reassembly.
//!
//! The first fragment of a TCP/UDP datagram (offset 0, more-fragments set) carries
//! the transport header: it is looked up or scheduled like any packet, translated
//! (its L4 checksum covers the whole datagram, and the incremental update is
//! exact for it), and the connection it used is remembered here under (source,
//! destination, IP id, protocol). Later fragments carry no ports: they find that
//! connection here and get the same forwarding, addresses only (NAT rewrites the
//! IP address and header checksum, DR the MACs, TUN encapsulates each fragment).
//! IPv6 fragments (the fragment header's offset and 32-bit identification) are
//! followed the same way, keyed by (source, destination, identification).
//!
//! The table is small, per worker and direct-mapped: a new first fragment takes
//! its key's entry; entries live `TTL_MS`. A later fragment whose first fragment
//! was not seen — it came first, was lost, or its entry was taken — is dropped
//! (`ip_fragment`), as is any fragment of another protocol: the kernel would
//! reassemble them, the fast path does not. With several workers the fragments of
//! a datagram must reach one worker: `workers.steering = "client"` (the client's
//! address, not its port, picks the worker) guarantees it.

/// Entries in a worker's table (a power of two).
pub const ENTRIES: usize = 1024;
/// How long a first fragment's entry serves the later ones.
pub const TTL_MS: u64 = 2_000;

/// What identifies the fragments of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Key {
    pub src: u32,
    pub dst: u32,
    pub id: u16,
    pub proto: u8,
}

/// What identifies the fragments of one IPv6 datagram (RFC 8200 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key6 {
    pub src: std::net::Ipv6Addr,
    pub dst: std::net::Ipv6Addr,
    pub id: u32,
}

impl Default for Key6 {
    fn default() -> Self {
        Key6 { src: std::net::Ipv6Addr::UNSPECIFIED, dst: std::net::Ipv6Addr::UNSPECIFIED, id: 0 }
    }
}

/// A fragment key: where its entry is.
pub trait FragKey: Copy + Eq + Default {
    fn at(&self) -> usize;
}

fn spread(a: u64, b: u64) -> usize {
    let h = (a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    usize::try_from(h >> 54).unwrap_or(0) & (ENTRIES - 1)
}

impl FragKey for Key {
    fn at(&self) -> usize {
        spread(u64::from(self.src) << 32 | u64::from(self.dst), u64::from(self.id) << 8 | u64::from(self.proto))
    }
}

impl FragKey for Key6 {
    fn at(&self) -> usize {
        let (s, d) = (u128::from(self.src), u128::from(self.dst));
        let fold = |x: u128| {
            u64::from_be_bytes(x.to_be_bytes()[..8].try_into().unwrap_or([0; 8]))
                ^ u64::from_be_bytes(x.to_be_bytes()[8..].try_into().unwrap_or([0; 8]))
        };
        spread(fold(s) ^ fold(d).rotate_left(17), u64::from(self.id))
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry<K> {
    key: K,
    slot: u32,
    output: bool,
    expires_ms: u64,
}

/// A worker's fragment table (IPv4's keys, or IPv6's): allocated once, never grows.
pub struct FragTable<K = Key> {
    entries: Vec<Entry<K>>,
}

impl<K: FragKey> Default for FragTable<K> {
    fn default() -> Self {
        FragTable { entries: vec![Entry::default(); ENTRIES] }
    }
}

impl<K: FragKey> FragTable<K> {
    /// Remembers the connection (slot, reply direction) of a first fragment.
    pub fn insert(&mut self, key: K, slot: u32, output: bool, now_ms: u64) {
        if let Some(e) = self.entries.get_mut(key.at()) {
            *e = Entry { key, slot, output, expires_ms: now_ms + TTL_MS };
        }
    }

    /// The connection of a later fragment, if its first fragment was seen.
    pub fn lookup(&self, key: &K, now_ms: u64) -> Option<(u32, bool)> {
        let e = self.entries.get(key.at())?;
        (e.expires_ms > now_ms && e.key == *key).then_some((e.slot, e.output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_until_it_expires_and_only_by_its_whole_key() {
        let mut t: FragTable = FragTable::default();
        let k = Key { src: 1, dst: 2, id: 77, proto: 6 };
        assert_eq!(t.lookup(&k, 0), None);
        t.insert(k, 5, true, 1_000);
        assert_eq!(t.lookup(&k, 1_500), Some((5, true)));
        assert_eq!(t.lookup(&Key { id: 78, ..k }, 1_500), None);
        assert_eq!(t.lookup(&Key { proto: 17, ..k }, 1_500), None);
        assert_eq!(t.lookup(&k, 1_000 + TTL_MS), None, "expired");
    }

    #[test]
    fn bounded_whatever_the_traffic() {
        let mut t: FragTable = FragTable::default();
        for id in 0..100_000u32 {
            let k = Key { src: id, dst: 9, id: u16::try_from(id & 0xffff).unwrap(), proto: 17 };
            t.insert(k, id, false, 0);
        }
        assert_eq!(t.entries.len(), ENTRIES);
        let last = Key { src: 99_999, dst: 9, id: u16::try_from(99_999 & 0xffff).unwrap(), proto: 17 };
        assert_eq!(t.lookup(&last, 1), Some((99_999, false)), "the newest first fragment wins its entry");
    }
}
