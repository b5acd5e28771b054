//! Memory advice for the large tables of the fast path (builds without the `dpdk`
//! feature): the connection table and its index are hundreds of megabytes read at
//! random, one line per packet, so with 4 KiB pages nearly every lookup also misses
//! the TLB. Asking for transparent huge pages before the table is first touched
//! lets the kernel back it with 2 MiB pages where it can.

/// Advises the kernel to back the memory `v` has allocated (its whole capacity)
/// with transparent huge pages. Call it before the memory is first written: pages
/// already faulted in stay small. Advice only: where THP is off or the range is too
/// small, nothing changes; the answer (the kernel took the advice) is for tests.
pub fn advise_huge_pages<T>(v: &Vec<T>) -> bool {
    const PAGE: usize = 4096;
    let bytes = v.capacity().saturating_mul(std::mem::size_of::<T>());
    let start = v.as_ptr() as usize;
    // madvise wants a page-aligned start: the whole pages inside the allocation.
    let first = start.next_multiple_of(PAGE);
    let end = (start + bytes) / PAGE * PAGE;
    if end <= first {
        return false;
    }
    advise(first, end - first)
}

#[cfg(target_os = "linux")]
fn advise(addr: usize, len: usize) -> bool {
    // SAFETY: [addr, addr + len) is whole pages of an allocation this process owns
    // (a Vec's buffer, alive while the caller holds it); MADV_HUGEPAGE only changes
    // how the kernel may back it later and never the contents, so no Rust reference
    // into it is affected.
    unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_HUGEPAGE) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn advise(_addr: usize, _len: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_pages_of_the_allocation_are_advised() {
        // Too small to hold a whole page: nothing asked.
        assert!(!advise_huge_pages(&Vec::<u64>::with_capacity(16)));
        assert!(!advise_huge_pages(&Vec::<u64>::new()));
        // Large: the kernel takes the advice (MADV_HUGEPAGE succeeds whenever the
        // kernel has THP, even when its policy is "never").
        let big = Vec::<u64>::with_capacity(1 << 20);
        let thp = std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists();
        assert_eq!(advise_huge_pages(&big), thp);
    }
}
