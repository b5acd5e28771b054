//! A cache prefetch hint for the fast path (the connection table warms a burst's
//! lines with it). Here because calling the instruction is `unsafe`; it needs no
//! DPDK and builds without the `dpdk` feature.

/// Asks the CPU to bring the cache line holding `p` into all cache levels. A hint
/// only: any address, mapped or not, is fine, and nothing is read.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 has no architectural effect and never faults, whatever
    // the address (Intel SDM, PREFETCHh); SSE is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
