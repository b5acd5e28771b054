//! The control plane: the daemon's configuration (`config`), the configuration model
//! changes are validated against (`model`), the control socket's protocol
//! (`protocol`) and ipvsadm's listings (`listing`).

pub mod agent;
pub mod cli;
pub mod config;
pub mod estimator;
pub mod health;
pub mod http;
pub mod listing;
pub mod metrics;
pub mod model;
pub mod protocol;
pub mod server;
pub mod snapshot;
