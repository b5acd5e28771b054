//! DPDK's errors as Rust values, and its version.

use std::ffi::CStr;
use std::fmt;

/// A failed DPDK call: which one, and DPDK's error code and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkError {
    pub op: String,
    pub code: i32,
    pub message: String,
}

impl DpdkError {
    /// An error for `op` with the code a DPDK call returned (negative errno) or, when
    /// `code` is 0 or -1, the thread's `rte_errno`.
    pub fn from_code(op: impl Into<String>, code: i32) -> DpdkError {
        let code = if code == 0 || code == -1 { errno() } else { code.abs() };
        DpdkError { op: op.into(), code, message: strerror(code) }
    }

    /// An error not coming from a DPDK return code.
    pub fn msg(op: impl Into<String>, message: impl Into<String>) -> DpdkError {
        DpdkError { op: op.into(), code: 0, message: message.into() }
    }
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.op, self.message)?;
        if self.code != 0 {
            write!(f, " ({})", self.code)?;
        }
        Ok(())
    }
}

impl std::error::Error for DpdkError {}

/// This thread's `rte_errno`.
pub fn errno() -> i32 {
    // SAFETY: reads a thread-local int through the shim; no preconditions.
    unsafe { dpdk_sys::rvs_rte_errno() }
}

/// DPDK's text for an error code (covers errno values and DPDK's own).
pub fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a NUL-terminated string that stays
    // valid at least until the next call on this thread; we copy it at once.
    unsafe {
        let p = dpdk_sys::rte_strerror(code);
        if p.is_null() {
            return format!("error {code}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// The DPDK version string (e.g. "DPDK 22.11.11").
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(dpdk_sys::rte_version()).to_string_lossy().into_owned() }
}
