//! What the data path needs of a packet buffer: its bytes, and room to grow at the
//! front (tunnel encapsulation) or shrink at the end (turning a packet into an ICMP
//! error). Mbufs implement it in `dpdk::mbuf`; `Vec<u8>` implements it for tests, and
//! perf/ has an mbuf-shaped one.

/// Packets per burst, from the NIC's RX to its TX.
pub const BURST: usize = 32;

pub trait PacketBuf {
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the packet by `n` bytes at the front; false when there is no room.
    fn prepend(&mut self, n: usize) -> bool;
    /// Shortens the packet to `len` bytes; false when it is shorter already.
    fn truncate(&mut self, len: usize) -> bool;
    /// The whole packet is in this one buffer (a chained mbuf is not: the data path
    /// drops those).
    fn is_contiguous(&self) -> bool {
        true
    }
    /// The NIC verified the IPv4 header checksum and found it good (the PMD's RX
    /// flag): the pipeline does not verify it again.
    fn ip_checksum_good(&self) -> bool {
        false
    }
}

impl PacketBuf for Vec<u8> {
    fn data(&self) -> &[u8] {
        self
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self
    }
    fn prepend(&mut self, n: usize) -> bool {
        self.splice(0..0, std::iter::repeat_n(0u8, n));
        true
    }
    fn truncate(&mut self, len: usize) -> bool {
        if len > self.len() {
            return false;
        }
        Vec::truncate(self, len);
        true
    }
}
