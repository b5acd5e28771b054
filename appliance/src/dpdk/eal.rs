//! The Environment Abstraction Layer: initialised once per process, cleaned up when
//! the guard drops.

use super::DpdkError;
use std::ffi::{c_char, c_int, CString};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Proof that EAL is up. Dropping it runs `rte_eal_cleanup` (after every port, pool
/// and worker that used EAL is gone: hold it last).
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Runs `rte_eal_init` with `args` (`args[0]` is the program name). Once per
    /// process: a second call fails, as EAL cannot be initialised twice.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal, DpdkError> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::msg("rte_eal_init", "EAL is already initialised in this process"));
        }
        let owned: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_ref()).map_err(|_| DpdkError::msg("rte_eal_init", "argument holds a NUL byte")))
            .collect::<Result<_, _>>()?;
        // EAL may keep pointers into argv (and permutes it): give it storage that lives
        // for the rest of the process. This happens once.
        let strings: &'static mut [CString] = Box::leak(owned.into_boxed_slice());
        let argv: &'static mut [*mut c_char] =
            Box::leak(strings.iter_mut().map(|s| s.as_ptr().cast_mut()).collect::<Vec<_>>().into_boxed_slice());
        let argc = c_int::try_from(argv.len()).map_err(|_| DpdkError::msg("rte_eal_init", "too many arguments"))?;
        // SAFETY: argv holds argc valid NUL-terminated strings that live for the rest of
        // the process; INITIALISED ensures this runs at most once.
        let rc = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            return Err(DpdkError::from_code("rte_eal_init", rc));
        }
        Ok(Eal { _private: () })
    }

    /// The file descriptor of the DPDK memory segment holding `addr`: a duplicate
    /// of EAL's, the caller's to close (dpdk-sys/memseg_fd.c hands every caller of
    /// `rte_memseg_get_fd` its own). None where there is none: EAL without
    /// hugepages, or memory DPDK did not allocate.
    pub fn memseg_fd(&self, addr: *const u8) -> Option<OwnedFd> {
        // SAFETY: EAL is up (`self`); rvs_memseg_fd_of only looks `addr` up in
        // EAL's memory map, never reading through it, and returns a descriptor or -1.
        let fd = unsafe { dpdk_sys::rvs_memseg_fd_of(addr.cast()) };
        // SAFETY: a non-negative descriptor was made for this call (a duplicate):
        // nothing else owns or will close it.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: EAL was initialised by `init`; the guard is dropped once, after the
        // objects that used EAL (the caller's duty, documented on the type).
        unsafe {
            dpdk_sys::rte_eal_cleanup();
        }
    }
}
