//! The platform edge: the safe layer over DPDK (the `dpdk` feature), the only
//! module of the appliance that touches `dpdk-sys`, and the cache prefetch hint
//! and memory advice (built without the feature too). The only place with `unsafe`: every other module of the
//! crate forbids it, and each block here says why it is sound.
//!
//! - `eal`: EAL init / cleanup guard, errors from `rte_errno`.
//! - `mempool`: the packet-buffer pool.
//! - `mbuf`: an owned `Mbuf` (freed on Drop), bursts for RX and TX.
//! - `port`: device lookup, queues, RSS, MTU, offload capabilities, MAC, link, stats.
//! - `lcore`: launching closures on worker lcores, the TSC clock.
//! - `error`: `DpdkError`, `rte_errno` and `rte_strerror`, the version string.
//! - `prefetch`: the CPU's cache prefetch hint, for the DPDK-free fast path.
//! - `memory`: transparent huge pages asked for the fast path's large tables.

#[cfg(feature = "dpdk")]
pub mod eal;
#[cfg(feature = "dpdk")]
mod error;
#[cfg(feature = "dpdk")]
pub mod lcore;
#[cfg(feature = "dpdk")]
pub mod mbuf;
pub mod memory;
#[cfg(feature = "dpdk")]
pub mod mempool;
#[cfg(feature = "dpdk")]
pub mod port;
pub mod prefetch;

#[cfg(feature = "dpdk")]
pub use error::{errno, strerror, version, DpdkError};
