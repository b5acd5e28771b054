//! The LVS domain, pure Rust and DPDK-free: services, real servers (dests), the
//! kernel's schedulers, connections with the TCP state machine and timeouts, the
//! per-lcore connection table, persistence templates and the firewall-mark
//! classifier. Semantics follow the Linux kernel's IPVS (`net/netfilter/ipvs/`);
//! where RVS differs because its state is per lcore, the item says so.

pub mod addr;
pub mod conn;
pub mod conntab;
pub mod dest;
pub mod director;
pub mod fwmark;
pub mod persist;
pub mod sched;
pub mod service;
pub mod sync;

pub use addr::Addr;
use core::fmt;

/// The transport protocols a virtual service balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => crate::net::ipv4::protocol::TCP,
            Protocol::Udp => crate::net::ipv4::protocol::UDP,
        }
    }

    pub fn from_number(n: u8) -> Option<Protocol> {
        match n {
            crate::net::ipv4::protocol::TCP => Some(Protocol::Tcp),
            crate::net::ipv4::protocol::UDP => Some(Protocol::Udp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    /// As ipvsadm prints it: `TCP`, `UDP`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        })
    }
}
