//! The control plane. For now: the daemon's configuration (`config`).

pub mod config;
