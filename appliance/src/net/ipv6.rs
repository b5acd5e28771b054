//! IPv6 (RFC 8200): the fixed header, the walk over extension headers to the
//! upper-layer header (bounded), the `Ipv6Cidr` prefix type, and the addresses
//! neighbour discovery derives from a unicast one.

use super::checksum;
use super::ethernet::EthernetAddress;
use super::{read_u16, write_u16, Error, Field, Result};
use core::fmt;
use core::str::FromStr;
use std::net::Ipv6Addr;

/// Next-header values RVS looks at.
pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    /// IPv6 in IPv6 (RFC 2473).
    pub const IPV6: u8 = 41;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTIONS: u8 = 60;
    /// VRRP v3 over IPv6 keeps IPv4's protocol number.
    pub const VRRP: u8 = 112;
}

mod field {
    use super::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// The minimum link MTU every IPv6 link carries (RFC 8200 §5).
pub const MIN_MTU: usize = 1280;

/// At most this many extension headers are walked before the upper-layer header;
/// a longer chain is refused (the kernel's own parsers bound theirs too).
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Version 6, the 40-byte header and the payload length within the buffer (it
    /// may be longer: Ethernet padding). After this no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_TC_FLOW.start] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }
    pub fn flow_label(&self) -> u32 {
        let b = self.buffer.as_ref();
        (u32::from(b[1] & 0x0f) << 16) | (u32::from(b[2]) << 8) | u32::from(b[3])
    }
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }
    /// Header plus payload: what the packet occupies of the buffer.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    pub fn src_addr(&self) -> Ipv6Addr {
        read_ipv6(self.buffer.as_ref(), field::SRC_ADDR.start)
    }
    pub fn dst_addr(&self) -> Ipv6Addr {
        read_ipv6(self.buffer.as_ref(), field::DST_ADDR.start)
    }
    /// Everything after the fixed header, up to the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }
    /// The header and payload, without padding beyond them.
    pub fn packet(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Version 6, the traffic class and the flow label.
    pub fn set_ver_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let b = self.buffer.as_mut();
        let word = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        b[field::VER_TC_FLOW].copy_from_slice(&word.to_be_bytes());
    }
    pub fn set_payload_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, v)
    }
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = v
    }
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v
    }
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets())
    }
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets())
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

#[inline]
pub(crate) fn read_ipv6(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

/// The checked, high-level form of the fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    pub next_header: u8,
    pub payload_len: usize,
    pub hop_limit: u8,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: usize::from(p.payload_len()),
            hop_limit: p.hop_limit(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte header (traffic class and flow label zero); the buffer
    /// must hold it.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_ver_tc_flow(0, 0);
        p.set_payload_len(u16::try_from(self.payload_len).unwrap_or(u16::MAX));
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
    }
}

/// A fragment header (RFC 8200 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Offset of this fragment's data in the original payload, in bytes.
    pub offset: u16,
    pub more: bool,
    pub ident: u32,
    /// Where the fragment header starts, from the start of the IPv6 header.
    pub at: usize,
}

/// Where the walk over extension headers ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upper {
    /// The upper-layer protocol (the last next-header value).
    pub protocol: u8,
    /// Where its header starts, from the start of the IPv6 header. For a fragment
    /// after the first there is none: this is where the fragment's data starts.
    pub offset: usize,
    pub fragment: Option<Fragment>,
    /// A routing header with segments left: the packet is not at its final
    /// destination yet.
    pub routing_pending: bool,
}

impl Upper {
    /// A fragment after the first (no upper-layer header in it).
    pub fn is_later_fragment(&self) -> bool {
        self.fragment.is_some_and(|f| f.offset != 0)
    }
}

/// Why the walk over extension headers gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtError {
    /// An extension header runs past the payload length.
    Truncated,
    /// More than `MAX_EXTENSION_HEADERS` of them.
    TooLong,
    /// A hop-by-hop header anywhere but first (RFC 8200 §4.1).
    MisplacedHopByHop,
}

/// Walks the extension headers of `ip` (a checked packet's header and payload,
/// `Packet::packet`: nothing beyond the payload length) to
/// the upper-layer header, at most `MAX_EXTENSION_HEADERS` of them. Headers it does
/// not know end the walk: their number is the upper-layer protocol.
pub fn upper_layer(ip: &[u8]) -> core::result::Result<Upper, ExtError> {
    let mut proto = ip.get(field::NXT_HDR).copied().ok_or(ExtError::Truncated)?;
    let mut at = HEADER_LEN;
    let mut fragment = None;
    let mut routing_pending = false;
    for n in 0..=MAX_EXTENSION_HEADERS {
        let len = match proto {
            next_header::HOP_BY_HOP | next_header::ROUTING | next_header::DEST_OPTIONS | next_header::AH => {
                if proto == next_header::HOP_BY_HOP && n != 0 {
                    return Err(ExtError::MisplacedHopByHop);
                }
                let h = ip.get(at..at + 2).ok_or(ExtError::Truncated)?;
                if proto == next_header::AH {
                    (usize::from(h[1]) + 2) * 4
                } else {
                    (usize::from(h[1]) + 1) * 8
                }
            }
            next_header::FRAGMENT => 8,
            _ => return Ok(Upper { protocol: proto, offset: at, fragment, routing_pending }),
        };
        if n == MAX_EXTENSION_HEADERS {
            return Err(ExtError::TooLong);
        }
        let h = ip.get(at..at + len).ok_or(ExtError::Truncated)?;
        if proto == next_header::ROUTING && h.get(3).is_some_and(|&left| left != 0) {
            routing_pending = true;
        }
        if proto == next_header::FRAGMENT {
            let off_flags = read_u16(h, 2);
            let f = Fragment {
                offset: off_flags & 0xfff8,
                more: off_flags & 1 != 0,
                ident: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                at,
            };
            fragment = Some(f);
            if f.offset != 0 {
                // Only the first fragment carries the headers after this one.
                return Ok(Upper { protocol: h[0], offset: at + len, fragment, routing_pending });
            }
        }
        proto = h[0];
        at += len;
    }
    Err(ExtError::TooLong)
}

/// The sum of the upper-layer pseudo-header (RFC 8200 §8.1): both addresses, the
/// upper-layer packet length and the next header.
pub fn pseudo_header(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u32 {
    let acc = checksum::sum(0, &src.octets());
    let acc = checksum::add(acc, checksum::sum(0, &dst.octets()));
    let acc = checksum::add(acc, (length >> 16) + (length & 0xffff));
    checksum::add(acc, u32::from(next_header))
}

/// The solicited-node multicast address of `a` (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX
/// with `a`'s low 24 bits.
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(o[13]), u16::from_be_bytes([o[14], o[15]]))
}

/// The Ethernet address a multicast IPv6 address maps to (RFC 2464 §7): 33:33 and
/// its low 32 bits.
pub fn multicast_mac(a: Ipv6Addr) -> EthernetAddress {
    let o = a.octets();
    EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The all-nodes link-local multicast address, ff02::1.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The link-local address a port derives from its MAC (modified EUI-64, RFC 4291
/// appendix A): fe80::/64 with the MAC's universal/local bit flipped and ff:fe in
/// the middle.
pub const fn link_local(mac: EthernetAddress) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

/// An IPv6 address with a prefix length: `2001:2::1/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Cidr {
    address: Ipv6Addr,
    prefix_len: u8,
}

impl Ipv6Cidr {
    /// `None` when the prefix length exceeds 128.
    pub fn new(address: Ipv6Addr, prefix_len: u8) -> Option<Ipv6Cidr> {
        (prefix_len <= 128).then_some(Ipv6Cidr { address, prefix_len })
    }
    pub fn address(&self) -> Ipv6Addr {
        self.address
    }
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
    pub fn netmask(&self) -> u128 {
        prefix_mask(self.prefix_len)
    }
    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.address) & self.netmask())
    }
    /// True when `a` lies inside the prefix.
    pub fn contains(&self, a: Ipv6Addr) -> bool {
        u128::from(a) & self.netmask() == u128::from(self.address) & self.netmask()
    }
}

/// The mask of the first `len` bits (at most 128).
pub fn prefix_mask(len: u8) -> u128 {
    match len {
        0 => 0,
        n => u128::MAX << (128 - u32::from(n.min(128))),
    }
}

impl fmt::Display for Ipv6Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

impl FromStr for Ipv6Cidr {
    type Err = Error;
    /// `addr/len`; a bare address is a /128.
    fn from_str(s: &str) -> Result<Self> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, l),
            None => (s, "128"),
        };
        let address: Ipv6Addr = a.parse().map_err(|_| Error::Malformed)?;
        if l.is_empty() || l.len() > 3 || !l.bytes().all(|c| c.is_ascii_digit()) || (l.len() > 1 && l.starts_with('0'))
        {
            return Err(Error::Malformed);
        }
        let len: u8 = l.parse().map_err(|_| Error::Malformed)?;
        Ipv6Cidr::new(address, len).ok_or(Error::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn packet(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        Repr {
            src_addr: addr("2001:2::100"),
            dst_addr: addr("2001:2::10"),
            next_header: next,
            payload_len: payload.len(),
            hop_limit: 64,
        }
        .emit(&mut Packet::new_unchecked(&mut b[..]));
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn deconstruct() {
        let mut b = vec![0x60, 0, 0, 0, 0, 4, 17, 64];
        b.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        b.extend_from_slice(&addr("2001:db8::1").octets());
        b.extend_from_slice(&[1, 2, 3, 4]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.payload_len(), p.next_header(), p.hop_limit()), (4, 17, 64));
        assert_eq!(p.src_addr(), Ipv6Addr::LOCALHOST);
        assert_eq!(p.dst_addr(), addr("2001:db8::1"));
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        assert_eq!(Packet::new_checked(&b[..43]).unwrap_err(), Error::Truncated);
        b[0] = 0x40;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn emit_parse_roundtrip() {
        let mut b = packet(next_header::TCP, &[0; 20]);
        b.extend_from_slice(&[0xee; 6]); // padding is not payload
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_ver_tc_flow(0xb8, 0x12345);
        assert_eq!((p.version(), p.traffic_class(), p.flow_label()), (6, 0xb8, 0x12345));
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, 20);
        assert_eq!((r.src_addr, r.dst_addr, r.hop_limit), (addr("2001:2::100"), addr("2001:2::10"), 64));
        assert_eq!(p.payload().len(), 20);
        assert_eq!(p.packet().len(), 60);
    }

    fn ext(next: u8, len8: u8, fill: usize) -> Vec<u8> {
        let mut h = vec![next, len8];
        h.resize(fill, 0);
        h
    }

    #[test]
    fn walks_to_the_upper_layer() {
        // Hop-by-hop (8), destination options (16), routing (8, no segments left), TCP.
        let mut payload = ext(next_header::DEST_OPTIONS, 0, 8);
        payload.extend(ext(next_header::ROUTING, 1, 16));
        payload.extend(ext(next_header::TCP, 0, 8));
        payload.extend([0u8; 20]);
        let b = packet(next_header::HOP_BY_HOP, &payload);
        let u = upper_layer(&b).unwrap();
        assert_eq!((u.protocol, u.offset, u.fragment, u.routing_pending), (next_header::TCP, 72, None, false));
        // None at all.
        let b = packet(next_header::UDP, &[0; 8]);
        assert_eq!(upper_layer(&b).unwrap().offset, HEADER_LEN);
        // An unknown header ends the walk.
        let b = packet(253, &[0; 8]);
        assert_eq!(upper_layer(&b).unwrap().protocol, 253);
    }

    #[test]
    fn fragments() {
        // First fragment: the walk goes on past the fragment header.
        let mut payload = vec![next_header::UDP, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef];
        payload.extend([0u8; 8]);
        let b = packet(next_header::FRAGMENT, &payload);
        let u = upper_layer(&b).unwrap();
        assert_eq!(u.protocol, next_header::UDP);
        assert_eq!(u.offset, 48);
        assert_eq!(u.fragment, Some(Fragment { offset: 0, more: true, ident: 0xdead_beef, at: 40 }));
        assert!(!u.is_later_fragment());
        // A later one: no upper-layer header, the data starts after the fragment header.
        let b = packet(next_header::FRAGMENT, &[next_header::UDP, 0, 0x05, 0xa8, 0, 0, 0, 7, 1, 2, 3, 4]);
        let u = upper_layer(&b).unwrap();
        assert_eq!((u.protocol, u.offset), (next_header::UDP, 48));
        assert_eq!(u.fragment.map(|f| (f.offset, f.more)), Some((1448, false)));
        assert!(u.is_later_fragment());
    }

    #[test]
    fn chains_that_run_off_or_go_on() {
        // A destination options header claiming 16 bytes in 8.
        let b = packet(next_header::DEST_OPTIONS, &ext(next_header::TCP, 1, 8));
        assert_eq!(upper_layer(&b), Err(ExtError::Truncated));
        // A header cut before its length byte.
        let b = packet(next_header::ROUTING, &[next_header::TCP]);
        assert_eq!(upper_layer(&b), Err(ExtError::Truncated));
        // One past the bound.
        let mut payload = Vec::new();
        for _ in 0..=MAX_EXTENSION_HEADERS {
            payload.extend(ext(next_header::DEST_OPTIONS, 0, 8));
        }
        let b = packet(next_header::DEST_OPTIONS, &payload);
        assert_eq!(upper_layer(&b), Err(ExtError::TooLong));
        // At the bound: fine.
        let mut payload = Vec::new();
        for i in 0..MAX_EXTENSION_HEADERS {
            let next = if i + 1 == MAX_EXTENSION_HEADERS { next_header::NO_NEXT } else { next_header::DEST_OPTIONS };
            payload.extend(ext(next, 0, 8));
        }
        let b = packet(next_header::DEST_OPTIONS, &payload);
        assert_eq!(upper_layer(&b).unwrap().protocol, next_header::NO_NEXT);
        // Hop-by-hop after another header.
        let mut payload = ext(next_header::HOP_BY_HOP, 0, 8);
        payload.extend(ext(next_header::TCP, 0, 8));
        let b = packet(next_header::DEST_OPTIONS, &payload);
        assert_eq!(upper_layer(&b), Err(ExtError::MisplacedHopByHop));
        // Routing with segments left.
        let mut r = ext(next_header::TCP, 0, 8);
        r[3] = 2;
        let b = packet(next_header::ROUTING, &r);
        assert!(upper_layer(&b).unwrap().routing_pending);
    }

    #[test]
    fn derived_addresses() {
        assert_eq!(solicited_node(addr("2001:2::1:2345:6789")), addr("ff02::1:ff45:6789"));
        assert_eq!(multicast_mac(addr("ff02::1:ff45:6789")), EthernetAddress([0x33, 0x33, 0xff, 0x45, 0x67, 0x89]));
        assert_eq!(link_local(EthernetAddress([0x02, 0x1b, 0, 0, 0, 0x01])), addr("fe80::1b:ff:fe00:1"));
    }

    #[test]
    fn pseudo_header_sum() {
        // RFC 8200's pseudo-header as one buffer, summed plainly.
        let (s, d) = (addr("2001:2::100"), addr("ff02::1:ff00:10"));
        let mut b = Vec::new();
        b.extend_from_slice(&s.octets());
        b.extend_from_slice(&d.octets());
        b.extend_from_slice(&70_000u32.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, next_header::ICMPV6]);
        assert_eq!(
            checksum::fold(pseudo_header(s, d, next_header::ICMPV6, 70_000)),
            checksum::fold(checksum::sum(0, &b))
        );
    }

    #[test]
    fn cidr() {
        let c: Ipv6Cidr = "2001:2::1/64".parse().unwrap();
        assert_eq!(c.address(), addr("2001:2::1"));
        assert_eq!(c.prefix_len(), 64);
        assert_eq!(c.network(), addr("2001:2::"));
        assert!(c.contains(addr("2001:2::ffff:1")));
        assert!(!c.contains(addr("2001:2:0:1::1")));
        assert_eq!(c.to_string(), "2001:2::1/64");
        assert_eq!("2001:2::1".parse::<Ipv6Cidr>().unwrap().prefix_len(), 128);
        assert!("::/0".parse::<Ipv6Cidr>().unwrap().contains(addr("2001:db8::9")));
        for bad in ["2001:2::1/129", "2001:2::1/", "2001:2::1/064", "x/64", "198.18.0.1/24", "2001:2::1/6a"] {
            assert!(bad.parse::<Ipv6Cidr>().is_err(), "{bad}");
        }
    }
}
