//! Owned packet buffers and bursts of them.
//!
//! An `Mbuf` owns one `rte_mbuf` chain and frees it on Drop. Handing it to a TX burst
//! moves the ownership to the NIC (no double free); what a partial `tx_burst` leaves
//! is freed by the burst and reported to the caller for counting.

use super::mempool::Mempool;
use dpdk_sys::rte_mbuf;
use std::ptr::NonNull;

/// Packets per RX/TX burst.
pub use crate::net::buf::BURST;

/// Bytes reserved in front of received data (room for an encapsulation header).
pub const HEADROOM: u32 = dpdk_sys::RTE_PKTMBUF_HEADROOM;

/// An owned packet buffer.
#[derive(Debug)]
pub struct Mbuf {
    ptr: NonNull<rte_mbuf>,
}

// SAFETY: an mbuf is owned by exactly one Mbuf at a time; moving that ownership to
// another thread (e.g. over a ring to the owning lcore) is how DPDK is meant to be used.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// A fresh, empty buffer from `pool` (None when the pool is empty).
    pub fn alloc(pool: &Mempool) -> Option<Mbuf> {
        // SAFETY: the pool is live for the duration of the call.
        let p = unsafe { dpdk_sys::rte_pktmbuf_alloc(pool.as_ptr()) };
        NonNull::new(p).map(|ptr| Mbuf { ptr })
    }

    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `p` must be a valid mbuf that nothing else owns or will free.
    pub unsafe fn from_raw(p: NonNull<rte_mbuf>) -> Mbuf {
        Mbuf { ptr: p }
    }

    /// Gives up ownership: the caller (a NIC queue) now frees it.
    pub fn into_raw(self) -> *mut rte_mbuf {
        let p = self.ptr.as_ptr();
        std::mem::forget(self);
        p
    }

    #[inline(always)]
    fn raw(&self) -> &rte_mbuf {
        // SAFETY: ptr is a valid mbuf owned by self.
        unsafe { self.ptr.as_ref() }
    }

    /// Bytes in the first segment.
    #[inline]
    pub fn data_len(&self) -> usize {
        usize::from(self.raw().data_len)
    }

    /// Bytes in the whole chain.
    pub fn pkt_len(&self) -> usize {
        self.raw().pkt_len as usize
    }

    /// One segment: every byte of the packet is in `data()`.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.raw().nb_segs == 1
    }

    /// The port the packet was received on.
    pub fn in_port(&self) -> u16 {
        self.raw().port
    }

    /// The first segment's bytes.
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's buffer, which
        // self owns; the slice's lifetime is tied to &self.
        unsafe {
            std::slice::from_raw_parts(m.buf_addr.cast::<u8>().add(usize::from(m.data_off)), usize::from(m.data_len))
        }
    }

    /// The first segment's bytes, writable.
    #[inline(always)]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; &mut self guarantees exclusive access. A refcount > 1
        // (indirect/cloned mbufs) is never created by the appliance.
        unsafe {
            let m = self.ptr.as_mut();
            std::slice::from_raw_parts_mut(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// Grows the packet at the front by `n` bytes (for an encapsulation header) and
    /// returns them; None when the headroom is too small.
    pub fn prepend(&mut self, n: u16) -> Option<&mut [u8]> {
        // SAFETY: ptr is a valid mbuf owned by self.
        let p = unsafe { dpdk_sys::rte_pktmbuf_prepend(self.ptr.as_ptr(), n) };
        if p.is_null() {
            return None;
        }
        // SAFETY: on success p points at n writable bytes at the new start of data.
        Some(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), usize::from(n)) })
    }

    /// Removes `n` bytes from the front (decapsulation); false when too short.
    pub fn adj(&mut self, n: u16) -> bool {
        // SAFETY: ptr is a valid mbuf owned by self.
        !unsafe { dpdk_sys::rte_pktmbuf_adj(self.ptr.as_ptr(), n) }.is_null()
    }

    /// Grows the packet at the end by `n` bytes and returns them; None when the last
    /// segment's tailroom is too small.
    pub fn append(&mut self, n: u16) -> Option<&mut [u8]> {
        // SAFETY: ptr is a valid mbuf owned by self.
        let p = unsafe { dpdk_sys::rte_pktmbuf_append(self.ptr.as_ptr(), n) };
        if p.is_null() {
            return None;
        }
        // SAFETY: on success p points at n writable bytes at the end of the data.
        Some(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), usize::from(n)) })
    }

    /// Removes `n` bytes from the end; false when too short.
    pub fn trim(&mut self, n: u16) -> bool {
        // SAFETY: ptr is a valid mbuf owned by self.
        unsafe { dpdk_sys::rte_pktmbuf_trim(self.ptr.as_ptr(), n) == 0 }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: self owns the mbuf chain; it is freed exactly once.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.ptr.as_ptr()) }
    }
}

/// Mbufs received by one `rx_burst`, handed out one by one as owned `Mbuf`s; any not
/// taken are freed on Drop.
pub struct RxBurst {
    pub(super) slots: [*mut rte_mbuf; BURST],
    pub(super) len: usize,
    next: usize,
}

impl Default for RxBurst {
    fn default() -> Self {
        RxBurst { slots: [std::ptr::null_mut(); BURST], len: 0, next: 0 }
    }
}

impl RxBurst {
    /// Called by the RX queue after it filled `slots[..len]`.
    pub(super) fn filled(&mut self, len: usize) {
        self.len = len.min(BURST);
        self.next = 0;
    }

    pub fn len(&self) -> usize {
        self.len - self.next
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Releases what was not taken (before a refill).
    pub(super) fn clear(&mut self) {
        while self.pop().is_some() {}
        self.len = 0;
        self.next = 0;
    }
}

impl Iterator for RxBurst {
    type Item = Mbuf;

    fn next(&mut self) -> Option<Mbuf> {
        self.pop()
    }
}

impl RxBurst {
    fn pop(&mut self) -> Option<Mbuf> {
        while self.next < self.len {
            let p = self.slots[self.next];
            self.next += 1;
            if let Some(nn) = NonNull::new(p) {
                // SAFETY: rx_burst filled slots[..len] with mbufs the caller now owns;
                // each is taken once (next only grows).
                return Some(unsafe { Mbuf::from_raw(nn) });
            }
        }
        None
    }
}

impl Drop for RxBurst {
    fn drop(&mut self) {
        self.clear()
    }
}

/// Mbufs gathered for one TX queue; `TxQueue::flush` sends them.
pub struct TxBurst {
    pub(super) slots: [*mut rte_mbuf; BURST],
    pub(super) len: usize,
}

impl Default for TxBurst {
    fn default() -> Self {
        TxBurst { slots: [std::ptr::null_mut(); BURST], len: 0 }
    }
}

impl TxBurst {
    /// Queues `m`; gives it back when the burst is full (flush first).
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == BURST {
            return Err(m);
        }
        self.slots[self.len] = m.into_raw();
        self.len += 1;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == BURST
    }

    /// Moves `slots[from..len]` (the part a NIC did not take) to the front, in order,
    /// and keeps them for the next send.
    pub(super) fn keep_from(&mut self, from: usize) {
        let from = from.min(self.len);
        self.slots.copy_within(from..self.len, 0);
        for p in &mut self.slots[self.len - from..self.len] {
            *p = std::ptr::null_mut();
        }
        self.len -= from;
    }

    /// Frees `slots[from..len]` (the part a NIC did not take) and empties the burst.
    /// Returns how many were freed.
    pub(super) fn free_from(&mut self, from: usize) -> usize {
        let mut freed = 0;
        for p in &mut self.slots[from..self.len] {
            if let Some(nn) = NonNull::new(*p) {
                // SAFETY: the burst owns these mbufs (pushed, not taken by the NIC).
                drop(unsafe { Mbuf::from_raw(nn) });
                freed += 1;
            }
            *p = std::ptr::null_mut();
        }
        self.len = 0;
        freed
    }
}

impl Drop for TxBurst {
    fn drop(&mut self) {
        self.free_from(0);
    }
}

/// `RTE_MBUF_F_RX_IP_CKSUM_MASK` and `_GOOD`: the PMD verified the IPv4 header
/// checksum (set only where the port's RX IPv4 checksum offload is on).
const RX_IP_CKSUM_MASK: u64 = (1 << 4) | (1 << 7);
const RX_IP_CKSUM_GOOD: u64 = 1 << 7;

/// Mbufs to free, collected over a burst and returned to their pool in one call
/// (`rte_pktmbuf_free_bulk`) instead of one call each. Full, it frees what it
/// holds first; what it holds when dropped is freed too.
pub struct FreeBurst {
    slots: [*mut rte_mbuf; BURST],
    len: usize,
}

// SAFETY: the pointers are owned mbufs, as `Mbuf` is Send.
unsafe impl Send for FreeBurst {}

impl Default for FreeBurst {
    fn default() -> Self {
        FreeBurst { slots: [std::ptr::null_mut(); BURST], len: 0 }
    }
}

impl FreeBurst {
    /// Takes `m` to free with the others.
    #[inline]
    pub fn push(&mut self, m: Mbuf) {
        if self.len == BURST {
            self.free();
        }
        self.slots[self.len] = m.into_raw();
        self.len += 1;
    }

    /// Frees every mbuf held.
    pub fn free(&mut self) {
        if self.len == 0 {
            return;
        }
        // At most BURST.
        let n = u32::try_from(self.len).unwrap_or(0);
        // SAFETY: slots[..len] are owned mbufs taken by `push` (each once, from an
        // `Mbuf` that gave up its ownership); freed here once, then forgotten.
        unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.slots.as_mut_ptr(), n) };
        self.len = 0;
    }
}

impl Drop for FreeBurst {
    fn drop(&mut self) {
        self.free();
    }
}

impl crate::net::PacketBuf for Mbuf {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }

    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self)
    }

    fn prepend(&mut self, n: usize) -> bool {
        u16::try_from(n).ok().and_then(|n| Mbuf::prepend(self, n)).is_some()
    }

    fn truncate(&mut self, len: usize) -> bool {
        let cur = self.data_len();
        if len > cur || !self.is_contiguous() {
            return false;
        }
        u16::try_from(cur - len).is_ok_and(|n| self.trim(n))
    }

    #[inline]
    fn is_contiguous(&self) -> bool {
        Mbuf::is_contiguous(self)
    }

    #[inline]
    fn ip_checksum_good(&self) -> bool {
        self.raw().ol_flags & RX_IP_CKSUM_MASK == RX_IP_CKSUM_GOOD
    }
}
