//! The packet-buffer pool (`rte_pktmbuf_pool_create`).

use super::DpdkError;
use dpdk_sys::rte_mempool;
use std::ffi::CString;
use std::ptr::NonNull;

/// A pool of packet buffers. Multi-producer/multi-consumer: any lcore may allocate
/// from and free to it.
#[derive(Debug)]
pub struct Mempool {
    ptr: NonNull<rte_mempool>,
}

// SAFETY: an rte_mempool with the default ring ops is safe to use from several
// threads at once (its per-lcore caches are indexed by lcore id).
unsafe impl Send for Mempool {}
// SAFETY: as above; &Mempool only hands out the pointer to thread-safe DPDK calls.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// A pool of `n` buffers with `data_room` bytes each (headroom included) and a
    /// per-lcore cache of `cache`, on NUMA socket `socket` (-1: any).
    pub fn new(name: &str, n: u32, cache: u32, data_room: u16, socket: i32) -> Result<Mempool, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::msg("rte_pktmbuf_pool_create", "name holds NUL"))?;
        // SAFETY: cname is a valid C string for the duration of the call.
        let p = unsafe { dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        NonNull::new(p)
            .map(|ptr| Mempool { ptr })
            .ok_or_else(|| DpdkError::from_code(format!("rte_pktmbuf_pool_create({name}, {n} mbufs)"), 0))
    }

    pub fn as_ptr(&self) -> *mut rte_mempool {
        self.ptr.as_ptr()
    }

    /// Buffers free in the pool.
    pub fn available(&self) -> u32 {
        // SAFETY: ptr is a live pool.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Buffers taken from the pool (in flight, in caches, in NIC rings).
    pub fn in_use(&self) -> u32 {
        // SAFETY: ptr is a live pool.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: the pool is live and is freed once; callers drop it after the ports
        // that fill their RX rings from it have been closed.
        unsafe { dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) }
    }
}
