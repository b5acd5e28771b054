//! RVS, the Rust Virtual Server: the Linux Virtual Server director as a DPDK
//! appliance.
//!
//! Dependency direction: bin -> control / worker -> pipeline -> net; `dpdk` only at the
//! edges. `net`, `pipeline` and `control::config` never touch DPDK and build without
//! the `dpdk` feature.

pub mod control;
pub mod ipvs;
pub mod net;
pub mod pipeline;

#[cfg(feature = "dpdk")]
pub mod dpdk;
/// The cache prefetch hint (`dpdk/prefetch.rs`, in the DPDK layer's directory with
/// the rest of the low-level code), also without the `dpdk` feature.
#[path = "dpdk/prefetch.rs"]
pub mod prefetch;
#[cfg(feature = "dpdk")]
pub mod worker;
