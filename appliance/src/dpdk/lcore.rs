//! Lcores: launching work on worker lcores, and the TSC clock.

use super::DpdkError;
use std::ffi::{c_int, c_void};

/// The id of the lcore this thread runs on (`u32::MAX` on a non-EAL thread).
pub fn current() -> u32 {
    // SAFETY: reads a per-thread variable; no preconditions.
    unsafe { dpdk_sys::rte_lcore_id() }
}

/// The main (control) lcore.
pub fn main_lcore() -> u32 {
    // SAFETY: reads EAL's configuration; valid after rte_eal_init.
    unsafe { dpdk_sys::rte_get_main_lcore() }
}

/// True when EAL runs `lcore` (it was in the `-l` list).
pub fn is_enabled(lcore: u32) -> bool {
    // SAFETY: reads EAL's configuration; out-of-range ids return false.
    unsafe { dpdk_sys::rte_lcore_is_enabled(lcore) != 0 }
}

/// The NUMA socket of `lcore`.
pub fn socket_of(lcore: u32) -> i32 {
    // SAFETY: reads EAL's configuration; out-of-range ids return a sentinel.
    let s = unsafe { dpdk_sys::rte_lcore_to_socket_id(lcore) };
    i32::try_from(s).unwrap_or(-1)
}

/// The time-stamp counter.
#[inline]
pub fn tsc() -> u64 {
    // SAFETY: reads the CPU's TSC; no preconditions.
    unsafe { dpdk_sys::rte_rdtsc() }
}

/// TSC ticks per second.
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value EAL measured at init.
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `launch`, handed to exactly this one call.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    // A panic must not unwind into C: report it as the lcore's failure.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or(-1)
}

/// Runs `f` on worker lcore `lcore`. Its return value is collected by `wait_all`.
pub fn launch<F>(lcore: u32, f: F) -> Result<(), DpdkError>
where
    F: FnOnce() -> i32 + Send + 'static,
{
    let job: Box<Job> = Box::new(Box::new(f));
    let arg = Box::into_raw(job).cast::<c_void>();
    // SAFETY: trampoline matches lcore_function_t; `arg` is a valid Box<Job> pointer
    // that trampoline takes back exactly once.
    let rc = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
    if rc != 0 {
        // SAFETY: the launch failed, so trampoline never ran: reclaim the job.
        drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
        return Err(DpdkError::from_code(format!("rte_eal_remote_launch(lcore {lcore})"), rc));
    }
    Ok(())
}

/// Waits for every worker lcore to finish its job.
pub fn wait_all() {
    // SAFETY: called from the main lcore after EAL init; blocks until workers return.
    unsafe { dpdk_sys::rte_eal_mp_wait_lcore() }
}
