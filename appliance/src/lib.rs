//! RVS, the Rust Virtual Server: the Linux Virtual Server director as a DPDK
//! appliance.
//!
//! Layers, each using only those below it:
//!
//! - `daemon`: a configuration brought up as a running appliance (EAL, ports, kernel
//!   interfaces, workers, the control loop, metrics); `rvsd` is its command line.
//! - `control`: the control plane, DPDK-free: configuration, the ipvsadm model and
//!   grammar, the control socket, listings, health checks, metrics.
//! - `worker`: the lcore loop around the pipeline (DPDK queues and rings).
//! - `pipeline`: what a worker does to a burst of frames, on `PacketBuf`s.
//! - `ipvs`: the LVS domain (services, dests, schedulers, connections).
//! - `net`: wire views, checksums, the RSS hash, the packet-buffer trait.
//! - `dpdk`: the platform edge (the DPDK layer, the prefetch hint); the only
//!   module where `unsafe` compiles.
//!
//! Without the `dpdk` feature the crate is `net`, `ipvs`, `pipeline` and `control`.

#[forbid(unsafe_code)]
pub mod control;
#[cfg(feature = "dpdk")]
#[forbid(unsafe_code)]
pub mod daemon;
pub mod dpdk;
#[forbid(unsafe_code)]
pub mod ipvs;
#[forbid(unsafe_code)]
pub mod net;
#[forbid(unsafe_code)]
pub mod pipeline;
#[cfg(feature = "dpdk")]
#[forbid(unsafe_code)]
pub mod worker;
