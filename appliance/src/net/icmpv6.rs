//! ICMPv6 (RFC 4443) and neighbour discovery (RFC 4861): echo, the errors that
//! quote the offending packet (destination unreachable, packet too big, time
//! exceeded, parameter problem), neighbour solicitation and advertisement with their
//! link-layer address options. The checksum covers the IPv6 pseudo-header.

use super::checksum;
use super::ethernet::EthernetAddress;
use super::ipv6::{self, next_header};
use super::{read_u16, write_u16, Error, Field, Result};
use std::net::Ipv6Addr;

pub mod msg_type {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAMETER_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const ROUTER_ADVERT: u8 = 134;
    pub const NEIGHBOUR_SOLICIT: u8 = 135;
    pub const NEIGHBOUR_ADVERT: u8 = 136;
    pub const REDIRECT: u8 = 137;
}

/// Neighbour discovery option types (RFC 4861 §4.6).
pub mod nd_option {
    pub const SOURCE_LL_ADDR: u8 = 1;
    pub const TARGET_LL_ADDR: u8 = 2;
}

/// Neighbour advertisement flags (RFC 4861 §4.4), in the message's first byte after
/// the checksum.
pub mod na_flags {
    pub const ROUTER: u8 = 0x80;
    pub const SOLICITED: u8 = 0x40;
    pub const OVERRIDE: u8 = 0x20;
}

mod field {
    use super::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const MTU: Field = 4..8;
    pub const NA_FLAGS: usize = 4;
    pub const ND_TARGET: Field = 8..24;
}

/// Length of the fixed header (type, code, checksum, 4 bytes of rest).
pub const HEADER_LEN: usize = 8;
/// A neighbour solicitation or advertisement without options.
pub const ND_LEN: usize = field::ND_TARGET.end;
/// A link-layer address option for Ethernet: type, length 1 (8 bytes), the MAC.
pub const LL_OPTION_LEN: usize = 8;

/// A view of an ICMPv6 message (the upper-layer payload).
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

    /// The 8-byte header fits, and for neighbour solicitations and advertisements
    /// the target address too; after this no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN || (self.is_nd() && b.len() < ND_LEN) {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO.start)
    }
    /// The MTU a packet-too-big message reports.
    pub fn mtu(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::MTU];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    fn is_nd(&self) -> bool {
        matches!(self.msg_type(), msg_type::NEIGHBOUR_SOLICIT | msg_type::NEIGHBOUR_ADVERT)
    }
    /// The target address of a neighbour solicitation or advertisement.
    pub fn nd_target(&self) -> Ipv6Addr {
        ipv6::read_ipv6(self.buffer.as_ref(), field::ND_TARGET.start)
    }
    pub fn na_flags(&self) -> u8 {
        self.buffer.as_ref()[field::NA_FLAGS] & 0xe0
    }
    /// The options after a neighbour solicitation's or advertisement's target.
    pub fn nd_options(&self) -> NdOptions<'_> {
        let b = self.buffer.as_ref();
        NdOptions { rest: b.get(ND_LEN..).unwrap_or(&[]), bad: false }
    }
    /// The link-layer address option of type `kind` (source for solicitations,
    /// target for advertisements); None when absent. Err when the options are
    /// malformed (a zero length, or one running past the message: RFC 4861 §4.6
    /// has such a message discarded).
    pub fn nd_ll_addr(&self, kind: u8) -> core::result::Result<Option<EthernetAddress>, Error> {
        let mut found = None;
        let mut opts = self.nd_options();
        for (t, body) in &mut opts {
            if t == kind && found.is_none() && body.len() >= 6 {
                found = Some(EthernetAddress::from_bytes(&body[..6]));
            }
        }
        if opts.bad {
            return Err(Error::Malformed);
        }
        Ok(found)
    }
    /// The whole message verifies with the pseudo-header of `src` -> `dst`.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        let acc = ipv6::pseudo_header(src, dst, next_header::ICMPV6, len);
        checksum::fold(checksum::add(acc, checksum::sum(0, b))) == 0xffff
    }
    /// Echo data, or for errors the quoted packet.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// True for the error types (type below 128) that quote the offending packet.
    pub fn is_error(&self) -> bool {
        self.msg_type() < 128
    }
    /// The errors a load balancer relates to a connection and translates, as the
    /// kernel's `ip_vs_in_icmp_v6`: destination unreachable, packet too big, time
    /// exceeded. Parameter problems are not.
    pub fn is_related_error(&self) -> bool {
        matches!(self.msg_type(), msg_type::DEST_UNREACHABLE | msg_type::PACKET_TOO_BIG | msg_type::TIME_EXCEEDED)
    }
    /// The IPv6 header an error quotes, with what follows it in the quote (usually
    /// truncated: the payload length is not checked against it).
    pub fn embedded_ipv6(&self) -> Option<(ipv6::Packet<&[u8]>, &[u8])> {
        let d = self.data();
        if !self.is_error() || d.len() < ipv6::HEADER_LEN || d[0] >> 4 != 6 {
            return None;
        }
        Some((ipv6::Packet::new_unchecked(d), &d[ipv6::HEADER_LEN..]))
    }
}

/// The options of a neighbour discovery message: (type, body after type and
/// length). Stops at the first malformed one (and says so in `bad`).
pub struct NdOptions<'a> {
    rest: &'a [u8],
    bad: bool,
}

impl<'a> Iterator for NdOptions<'a> {
    type Item = (u8, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.bad {
            return None;
        }
        let len = usize::from(*self.rest.get(1).unwrap_or(&0)) * 8;
        if len == 0 || len > self.rest.len() {
            self.bad = true;
            return None;
        }
        let (opt, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some((opt[0], &opt[2..]))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v
    }
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v
    }
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v)
    }
    pub fn set_echo_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT.start, v)
    }
    pub fn set_echo_seq_no(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO.start, v)
    }
    pub fn set_mtu(&mut self, v: u32) {
        self.buffer.as_mut()[field::MTU].copy_from_slice(&v.to_be_bytes())
    }
    /// The four bytes after the checksum (flags and reserved, or unused) set to zero.
    pub fn clear_rest(&mut self) {
        self.buffer.as_mut()[4..8].fill(0)
    }
    pub fn set_na_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::NA_FLAGS] = v & 0xe0
    }
    pub fn set_nd_target(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::ND_TARGET].copy_from_slice(&a.octets())
    }
    /// Writes a link-layer address option at `at` (from the message's start).
    pub fn set_ll_option(&mut self, at: usize, kind: u8, mac: EthernetAddress) {
        let o = &mut self.buffer.as_mut()[at..at + LL_OPTION_LEN];
        o[0] = kind;
        o[1] = 1;
        o[2..].copy_from_slice(mac.as_bytes());
    }
    /// Computes and stores the checksum for `src` -> `dst`.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        let acc = checksum::add(ipv6::pseudo_header(src, dst, next_header::ICMPV6, len), checksum::sum(0, b));
        let c = !checksum::fold(acc);
        self.set_checksum(c)
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    const MAC: EthernetAddress = EthernetAddress([0x02, 0xc1, 0, 0, 0, 0x01]);

    #[test]
    fn echo() {
        let (s, d) = (addr("2001:2::100"), addr("2001:2::10"));
        let mut b = vec![msg_type::ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 7];
        b.extend_from_slice(b"ping6");
        Packet::new_unchecked(&mut b[..]).fill_checksum(s, d);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.echo_ident(), p.echo_seq_no(), p.data()), (0x1234, 7, &b"ping6"[..]));
        assert!(p.verify_checksum(s, d));
        assert!(!p.verify_checksum(d, addr("2001:2::11")), "the pseudo-header counts");
        assert!(!p.is_error());
        // The sum etherparse computes for the same message.
        let ep = etherparse::Icmpv6Header::with_checksum(
            etherparse::Icmpv6Type::EchoRequest(etherparse::IcmpEchoHeader { id: 0x1234, seq: 7 }),
            s.octets(),
            d.octets(),
            b"ping6",
        )
        .unwrap();
        assert_eq!(ep.checksum, p.checksum());
    }

    fn solicitation(options: &[u8]) -> Vec<u8> {
        let mut b = vec![msg_type::NEIGHBOUR_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&addr("2001:2::10").octets());
        b.extend_from_slice(options);
        b
    }

    #[test]
    fn neighbour_solicitation_options() {
        let mut opt = vec![nd_option::SOURCE_LL_ADDR, 1];
        opt.extend_from_slice(MAC.as_bytes());
        let b = solicitation(&opt);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.nd_target(), addr("2001:2::10"));
        assert_eq!(p.nd_ll_addr(nd_option::SOURCE_LL_ADDR), Ok(Some(MAC)));
        assert_eq!(p.nd_ll_addr(nd_option::TARGET_LL_ADDR), Ok(None));
        // An unknown option before it is skipped.
        let mut two = vec![14, 1, 0, 0, 0, 0, 0, 0];
        two.extend_from_slice(&opt);
        assert_eq!(Packet::new_checked(&solicitation(&two)[..]).unwrap().nd_ll_addr(1), Ok(Some(MAC)));
        // Zero length, or running past the end: malformed.
        let zero = [1u8, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(Packet::new_checked(&solicitation(&zero)[..]).unwrap().nd_ll_addr(1), Err(Error::Malformed));
        let long = [1u8, 2, 0, 0, 0, 0, 0, 0];
        assert_eq!(Packet::new_checked(&solicitation(&long)[..]).unwrap().nd_ll_addr(1), Err(Error::Malformed));
        // No room for the target.
        assert_eq!(Packet::new_checked(&b[..20]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn neighbour_advertisement_checked_by_etherparse() {
        let (s, d) = (addr("2001:2::10"), addr("2001:2::100"));
        let mut b = vec![0u8; ND_LEN + LL_OPTION_LEN];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(msg_type::NEIGHBOUR_ADVERT);
        p.set_msg_code(0);
        p.clear_rest();
        p.set_na_flags(na_flags::SOLICITED | na_flags::OVERRIDE);
        p.set_nd_target(s);
        p.set_ll_option(ND_LEN, nd_option::TARGET_LL_ADDR, MAC);
        p.fill_checksum(s, d);
        let (h, rest) = etherparse::Icmpv6Header::from_slice(&b).unwrap();
        assert_eq!(h.checksum, h.icmp_type.calc_checksum(s.octets(), d.octets(), rest).unwrap());
        let etherparse::Icmpv6Type::NeighborAdvertisement(na) = h.icmp_type else { panic!("{h:?}") };
        assert!(na.solicited && na.r#override && !na.router);
        assert_eq!(Packet::new_checked(&b[..]).unwrap().nd_ll_addr(nd_option::TARGET_LL_ADDR), Ok(Some(MAC)));
    }

    #[test]
    fn errors_quote_the_packet() {
        let mut b = vec![msg_type::PACKET_TOO_BIG, 0, 0, 0, 0, 0, 0, 0];
        let mut ip = vec![0u8; 40];
        ipv6::Repr {
            src_addr: addr("2001:2::10"),
            dst_addr: addr("2001:2::100"),
            next_header: 6,
            payload_len: 1400,
            hop_limit: 63,
        }
        .emit(&mut ipv6::Packet::new_unchecked(&mut ip[..]));
        ip.extend_from_slice(&[0x1f, 0x90, 0x9c, 0x40, 0, 0, 0, 1]);
        b.extend_from_slice(&ip);
        Packet::new_unchecked(&mut b[..]).set_mtu(1280);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_error() && p.is_related_error());
        assert_eq!(p.mtu(), 1280);
        let (q, l4) = p.embedded_ipv6().unwrap();
        assert_eq!(q.dst_addr(), addr("2001:2::100"));
        assert_eq!(&l4[..4], &[0x1f, 0x90, 0x9c, 0x40]);
        assert!(Packet::new_checked(&b[..40]).unwrap().embedded_ipv6().is_none(), "shorter than an IPv6 header");
        b[0] = msg_type::PARAMETER_PROBLEM;
        assert!(!Packet::new_checked(&b[..]).unwrap().is_related_error());
    }
}
