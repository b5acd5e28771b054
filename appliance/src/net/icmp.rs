//! ICMPv4 (RFC 792): echo, and the errors that embed the offending IP header.

use super::checksum;
use super::{read_u16, write_u16, Error, Field, Result};

pub mod msg_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
}

mod field {
    use super::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const UNUSED_MTU: Field = 6..8;
}

/// Length of the fixed ICMP header (type, code, checksum, 4 bytes of rest).
pub const HEADER_LEN: usize = 8;

/// A view of an ICMPv4 message (the IP payload, up to the IP total length).
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

    /// The 8-byte header fits; after this no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
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
    /// Next-hop MTU of a "fragmentation needed" message (RFC 1191).
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::UNUSED_MTU.start)
    }
    /// The checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(0, self.buffer.as_ref())) == 0xffff
    }
    /// Echo data, or for errors the embedded IP header + 8 bytes.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// The IPv4 header an error quotes (checked: version 4, header within the
    /// message, at least 8 bytes after it), with the quoted transport bytes. The
    /// quote is usually truncated, so its total length is not checked.
    pub fn embedded_ipv4(&self) -> Option<(super::ipv4::Packet<&[u8]>, &[u8])> {
        let d = self.data();
        if !self.is_error() || d.len() < super::ipv4::HEADER_LEN {
            return None;
        }
        let ip = super::ipv4::Packet::new_unchecked(d);
        let hl = ip.header_len();
        if ip.version() != 4 || hl < super::ipv4::HEADER_LEN || d.len() < hl + 8 {
            return None;
        }
        Some((ip, &d[hl..]))
    }

    /// True for the error types that embed the offending packet's header.
    pub fn is_error(&self) -> bool {
        matches!(
            self.msg_type(),
            msg_type::DEST_UNREACHABLE
                | msg_type::SOURCE_QUENCH
                | msg_type::REDIRECT
                | msg_type::TIME_EXCEEDED
                | msg_type::PARAMETER_PROBLEM
        )
    }

    /// The errors a load balancer relates to a connection and translates, as the
    /// kernel's `ip_vs_in_icmp`/`ip_vs_out_icmp` do: destination unreachable
    /// (fragmentation needed among them), source quench, time exceeded. Redirects
    /// and parameter problems are not.
    pub fn is_related_error(&self) -> bool {
        matches!(self.msg_type(), msg_type::DEST_UNREACHABLE | msg_type::SOURCE_QUENCH | msg_type::TIME_EXCEEDED)
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
    pub fn set_next_hop_mtu(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT.start, 0);
        write_u16(self.buffer.as_mut(), field::UNUSED_MTU.start, v)
    }
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c)
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Turns an echo request into its reply in place: type 8 -> 0, checksum updated
    /// incrementally (RFC 1624), identifier, sequence number and data kept.
    pub fn make_echo_reply(&mut self) {
        let old = u16::from_be_bytes([self.msg_type(), self.msg_code()]);
        self.set_msg_type(msg_type::ECHO_REPLY);
        let new = u16::from_be_bytes([msg_type::ECHO_REPLY, self.msg_code()]);
        let c = checksum::update16(self.checksum(), old, new);
        self.set_checksum(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_request() -> Vec<u8> {
        let mut b = vec![8, 0, 0, 0, 0x12, 0x34, 0x00, 0x07];
        b.extend_from_slice(b"rvs ping payload");
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn deconstruct() {
        let b = echo_request();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), msg_type::ECHO_REQUEST);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 7);
        assert!(p.verify_checksum());
        assert_eq!(p.data(), b"rvs ping payload");
        assert!(!p.is_error());
    }

    #[test]
    fn echo_reply_in_place_verifies() {
        let mut b = echo_request();
        Packet::new_unchecked(&mut b[..]).make_echo_reply();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), msg_type::ECHO_REPLY);
        assert!(p.verify_checksum());
        let mut full = b.clone();
        Packet::new_unchecked(&mut full[..]).fill_checksum();
        // Same bytes as a full recompute, or the other encoding of zero.
        assert!(Packet::new_unchecked(&full[..]).verify_checksum());
        assert_eq!(&full[4..], &b[4..]);
    }

    #[test]
    fn embedded_header_of_an_error() {
        let mut m = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
        let mut quoted = vec![0x45u8, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 100, 198, 18, 1, 11];
        quoted.extend_from_slice(&[0x9c, 0x40, 0x1f, 0x90, 0, 0, 0, 1]);
        m.extend_from_slice(&quoted);
        let p = Packet::new_checked(&m[..]).unwrap();
        let (ip, l4) = p.embedded_ipv4().unwrap();
        assert_eq!(ip.dst_addr(), std::net::Ipv4Addr::new(198, 18, 1, 11));
        assert_eq!(&l4[..4], &[0x9c, 0x40, 0x1f, 0x90]);
        assert!(Packet::new_checked(&m[..30]).unwrap().embedded_ipv4().is_none(), "fewer than 8 quoted bytes");
        m[0] = 8;
        assert!(Packet::new_checked(&m[..]).unwrap().embedded_ipv4().is_none(), "echo is no error");
    }

    #[test]
    fn truncated() {
        assert_eq!(Packet::new_checked(&[8u8, 0, 0][..]).unwrap_err(), Error::Truncated);
    }
}
