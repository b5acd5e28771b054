//! IPv4 (RFC 791) headers, options included, and the `Ipv4Cidr` prefix type.

use super::checksum;
use super::{read_ipv4, read_u16, write_u16, Error, Field, Result};
use core::fmt;
use core::str::FromStr;
use std::net::Ipv4Addr;

/// IP protocol numbers RVS handles.
pub mod protocol {
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
}

mod field {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
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

    /// Ensures version 4, 20 <= header length (IHL) <= total length <= buffer length.
    /// After this no accessor panics. The buffer may be longer than the total length
    /// (Ethernet padding): `payload` stops at the total length.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 || self.header_len() < HEADER_LEN {
            return Err(Error::Malformed);
        }
        let total = usize::from(self.total_len());
        if total < self.header_len() {
            return Err(Error::Malformed);
        }
        if b.len() < total {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT.start)
    }
    fn flags_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start)
    }
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) << 3
    }
    /// A fragment, first or later.
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (FLAG_MF | OFFSET_MASK) != 0
    }
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }
    pub fn src_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SRC_ADDR.start)
    }
    pub fn dst_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::DST_ADDR.start)
    }
    /// The header checksum verifies (over the header, options included).
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(0, &self.buffer.as_ref()[..self.header_len()])) == 0xffff
    }
    /// Bytes between the header and the total length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_ver_ihl(&mut self, header_len: usize) {
        let ihl = u8::try_from(header_len / 4).unwrap_or(5) & 0x0f;
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ihl;
    }
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v
    }
    pub fn set_total_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, v)
    }
    pub fn set_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT.start, v)
    }
    /// Flags and offset: DF as given, not a fragment.
    pub fn set_unfragmented(&mut self, dont_frag: bool) {
        write_u16(self.buffer.as_mut(), field::FLG_OFF.start, if dont_frag { FLAG_DF } else { 0 })
    }
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v
    }
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v
    }
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v)
    }
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets())
    }
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets())
    }
    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c)
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[hl..tl]
    }
}

/// The checked, high-level form of an option-less IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: u8,
    pub payload_len: usize,
    pub ttl: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Repr {
    /// Parses a checked packet whose header checksum verifies.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if !p.verify_checksum() || p.is_fragment() {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.payload().len(),
            ttl: p.ttl(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header with its checksum; the buffer must hold it.
    #[inline(always)]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_ver_ihl(HEADER_LEN);
        p.set_dscp_ecn(0);
        let total = u16::try_from(HEADER_LEN + self.payload_len).unwrap_or(u16::MAX);
        p.set_total_len(total);
        p.set_ident(self.ident);
        p.set_unfragmented(self.dont_frag);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        p.fill_checksum();
    }
}

/// An IPv4 address with a prefix length: `198.18.0.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    address: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Cidr {
    /// `None` when the prefix length exceeds 32.
    pub fn new(address: Ipv4Addr, prefix_len: u8) -> Option<Ipv4Cidr> {
        (prefix_len <= 32).then_some(Ipv4Cidr { address, prefix_len })
    }
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
    pub fn netmask(&self) -> u32 {
        match self.prefix_len {
            0 => 0,
            n => u32::MAX << (32 - u32::from(n)),
        }
    }
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) & self.netmask())
    }
    /// True when `a` lies inside the prefix.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.netmask() == u32::from(self.address) & self.netmask()
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = Error;
    /// `a.b.c.d/len`; a bare address is a /32.
    fn from_str(s: &str) -> Result<Self> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, l),
            None => (s, "32"),
        };
        let address: Ipv4Addr = a.parse().map_err(|_| Error::Malformed)?;
        if l.is_empty() || l.len() > 2 || !l.bytes().all(|c| c.is_ascii_digit()) {
            return Err(Error::Malformed);
        }
        let len: u8 = l.parse().map_err(|_| Error::Malformed)?;
        Ipv4Cidr::new(address, len).ok_or(Error::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ICMP echo request 198.18.0.100 -> 198.18.0.10, 8 bytes payload
    static PACKET: [u8; 28] = [
        0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 198, 18, 0, 100, 198, 18, 0, 10, 0x08,
        0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    fn packet() -> [u8; 28] {
        let mut b = PACKET;
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn deconstruct() {
        let b = packet();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), protocol::ICMP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(198, 18, 0, 100));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 18, 0, 10));
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn parse_emit_roundtrip() {
        let b = packet();
        let r = Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        let mut out = [0u8; 28];
        out[20..].copy_from_slice(&b[20..]);
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, b);
    }

    #[test]
    fn padding_is_not_payload() {
        let mut b = packet().to_vec();
        b.extend_from_slice(&[0; 18]);
        assert_eq!(Packet::new_checked(&b[..]).unwrap().payload().len(), 8);
    }

    #[test]
    fn malformed() {
        let b = packet();
        let mut small_ihl = b;
        small_ihl[0] = 0x44;
        assert_eq!(Packet::new_checked(&small_ihl[..]).unwrap_err(), Error::Malformed);
        let mut v6 = b;
        v6[0] = 0x65;
        assert_eq!(Packet::new_checked(&v6[..]).unwrap_err(), Error::Malformed);
        let mut big_ihl = b;
        big_ihl[0] = 0x4f; // 60-byte header, 28-byte packet
        assert!(Packet::new_checked(&big_ihl[..]).is_err());
        let mut long = b;
        long[3] = 0x40; // claims 64 bytes
        assert_eq!(Packet::new_checked(&long[..]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&b[..19]).unwrap_err(), Error::Truncated);
        let mut bad_sum = b;
        bad_sum[11] ^= 1;
        assert!(!Packet::new_checked(&bad_sum[..]).unwrap().verify_checksum());
    }

    #[test]
    fn fragment_flags() {
        let mut b = packet();
        b[6] = 0x20; // MF
        assert!(Packet::new_unchecked(&b[..]).is_fragment());
        b[6] = 0x00;
        b[7] = 0x10; // offset 16 * 8
        let p = Packet::new_unchecked(&b[..]);
        assert!(p.is_fragment());
        assert_eq!(p.frag_offset(), 128);
    }

    #[test]
    fn options_are_header() {
        let mut b = vec![0x46u8, 0, 0, 32, 0, 0, 0, 0, 64, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1, 1, 0];
        b.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0]);
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &[8, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn cidr() {
        let c: Ipv4Cidr = "198.18.0.1/24".parse().unwrap();
        assert_eq!(c.address(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(c.prefix_len(), 24);
        assert_eq!(c.network(), Ipv4Addr::new(198, 18, 0, 0));
        assert!(c.contains(Ipv4Addr::new(198, 18, 0, 254)));
        assert!(!c.contains(Ipv4Addr::new(198, 18, 1, 1)));
        assert_eq!(c.to_string(), "198.18.0.1/24");
        assert_eq!("10.0.0.1".parse::<Ipv4Cidr>().unwrap().prefix_len(), 32);
        let any: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(Ipv4Addr::new(203, 0, 113, 9)));
        for bad in ["1.2.3/40", "1.2.3.4/33", "1.2.3.4/", "1.2.3.4/-1", "x/24", "1.2.3.4/2a", "1.2.3.4/024"] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }
}
