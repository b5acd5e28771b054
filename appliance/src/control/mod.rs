//! The control plane, DPDK-free, on the control lcore:
//!
//! - `config`: the daemon's file (schema, validation, health-check specs, EAL plan);
//! - `model`: services, dests, timeouts and firewall marks as specs, every change
//!   validated against it with ipvsadm's errors;
//! - `protocol`: the control socket's versioned JSON lines; `server`: the socket,
//!   requests, reloads, and what is asked of the workers (the `Workers` trait);
//! - `snapshot`: one immutable configuration published to the workers, and how a
//!   worker reconciles its tables with it; `agent`: what a worker answers;
//! - `cli`: ipvsadm's grammar for `rvsadm`; `listing`: ipvsadm's formats;
//! - `health`: keepalived's checkers, quorum, the sorry server;
//! - `estimator`: the kernel's rate estimator (`--rate`);
//! - `metrics`: Prometheus series; `http`: the endpoint serving them;
//! - `announce`: VIPs held on a kernel interface for a routing daemon (ECMP).

pub mod agent;
pub mod announce;
pub mod cli;
pub mod config;
pub mod estimator;
pub mod health;
pub mod http;
pub mod iptables;
pub mod keepalived;
pub mod listing;
pub mod metrics;
pub mod model;
pub mod protocol;
pub mod server;
pub mod snapshot;
pub mod sync;
pub mod vrrp;
