//! Zero-copy wire views in the smoltcp manner: a `Packet<T: AsRef<[u8]>>` (or `Frame`)
//! over a buffer, fields read and written by offset (mbuf data is not guaranteed
//! aligned), `new_checked` = `new_unchecked` + `check_len`, after which no accessor can
//! panic. Getters need `AsRef<[u8]>`, setters `AsMut<[u8]>`: whether a view may write is
//! a type-level fact. No DPDK in here.

pub mod arp;
pub mod buf;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ipip;
pub mod ipv4;
pub mod ipv6;
pub mod rss;
pub mod tcp;
pub mod udp;
pub mod vrrp;

use core::fmt;

/// A byte range inside a header.
pub type Field = core::ops::Range<usize>;

/// Why a buffer could not be viewed as a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than its header, or than the length its header claims.
    Truncated,
    /// A field holds a value the view cannot interpret (bad IHL, version, ...).
    Malformed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated packet"),
            Error::Malformed => f.write_str("malformed packet"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

#[inline]
pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn write_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn read_ipv4(b: &[u8], at: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}
pub use buf::PacketBuf;
