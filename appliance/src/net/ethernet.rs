//! Ethernet II frames, with at most one 802.1Q tag skipped.

use super::{read_u16, write_u16, Error, Field, Result};
use core::fmt;
use core::str::FromStr;

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);
    pub const ZERO: EthernetAddress = EthernetAddress([0; 6]);

    #[inline]
    pub fn from_bytes(b: &[u8]) -> EthernetAddress {
        let mut a = [0u8; 6];
        a.copy_from_slice(&b[..6]);
        EthernetAddress(a)
    }
    pub fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }
    /// Group bit set (broadcast included).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && *self != Self::ZERO
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for EthernetAddress {
    type Err = Error;
    /// `aa:bb:cc:dd:ee:ff` (or with `-`), case-insensitive.
    fn from_str(s: &str) -> Result<Self> {
        let mut out = [0u8; 6];
        let mut n = 0;
        for part in s.split([':', '-']) {
            if n == 6 || part.len() != 2 {
                return Err(Error::Malformed);
            }
            out[n] = u8::from_str_radix(part, 16).map_err(|_| Error::Malformed)?;
            n += 1;
        }
        if n != 6 {
            return Err(Error::Malformed);
        }
        Ok(EthernetAddress(out))
    }
}

/// EtherType values RVS handles.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86dd;
}

mod field {
    use super::Field;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const VLAN_TCI: Field = 14..16;
    pub const VLAN_ETHERTYPE: Field = 16..18;
}

/// Length of an untagged header.
pub const HEADER_LEN: usize = field::ETHERTYPE.end;
/// Length of a header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = field::VLAN_ETHERTYPE.end;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    pub fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Ensures the header (with its 802.1Q tag, if any) fits; after this no accessor
    /// panics.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < self.header_len() {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    fn outer_ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }

    /// True when the frame carries an 802.1Q tag.
    pub fn has_vlan(&self) -> bool {
        self.outer_ethertype() == ethertype::VLAN
    }

    /// The VLAN id of the tag, if any.
    pub fn vlan_id(&self) -> Option<u16> {
        self.has_vlan().then(|| read_u16(self.buffer.as_ref(), field::VLAN_TCI.start) & 0x0fff)
    }

    /// The EtherType of the payload (behind the tag when tagged).
    pub fn ethertype(&self) -> u16 {
        if self.has_vlan() {
            read_u16(self.buffer.as_ref(), field::VLAN_ETHERTYPE.start)
        } else {
            self.outer_ethertype()
        }
    }

    pub fn header_len(&self) -> usize {
        if self.has_vlan() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    pub fn set_dst_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&a.0)
    }

    pub fn set_src_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&a.0)
    }

    /// Sets the EtherType of an untagged frame (the tag's inner type when tagged).
    pub fn set_ethertype(&mut self, t: u16) {
        let at = if self.has_vlan() { field::VLAN_ETHERTYPE.start } else { field::ETHERTYPE.start };
        write_u16(self.buffer.as_mut(), at, t)
    }

    /// Replies go back where the frame came from: destination := source, source := `me`.
    pub fn reflect(&mut self, me: EthernetAddress) {
        let src = self.src_addr();
        self.set_dst_addr(src);
        self.set_src_addr(me);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        &mut self.buffer.as_mut()[at..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static FRAME: [u8; 18] = [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, // dst
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, // src
        0x08, 0x00, // IPv4
        0xaa, 0xbb, 0xcc, 0xdd,
    ];

    #[test]
    fn deconstruct() {
        let f = Frame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), EthernetAddress([1, 2, 3, 4, 5, 6]));
        assert_eq!(f.src_addr(), EthernetAddress([0x11, 0x12, 0x13, 0x14, 0x15, 0x16]));
        assert_eq!(f.ethertype(), ethertype::IPV4);
        assert_eq!(f.vlan_id(), None);
        assert_eq!(f.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn vlan_tag_is_skipped() {
        let mut b = FRAME;
        b[12..14].copy_from_slice(&[0x81, 0x00]);
        b[14..16].copy_from_slice(&[0x00, 0x2a]); // VID 42
        b[16..18].copy_from_slice(&[0x08, 0x06]);
        let f = Frame::new_checked(&b[..]).unwrap();
        assert_eq!(f.vlan_id(), Some(42));
        assert_eq!(f.ethertype(), ethertype::ARP);
        assert_eq!(f.header_len(), VLAN_HEADER_LEN);
        assert!(f.payload().is_empty());
    }

    #[test]
    fn truncated() {
        assert_eq!(Frame::new_checked(&FRAME[..13]).unwrap_err(), Error::Truncated);
        let mut b = FRAME;
        b[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(Frame::new_checked(&b[..16]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn reflect_swaps_toward_sender() {
        let mut b = FRAME;
        let me = EthernetAddress([0x02, 0, 0, 0, 0, 9]);
        Frame::new_unchecked(&mut b[..]).reflect(me);
        let f = Frame::new_unchecked(&b[..]);
        assert_eq!(f.dst_addr(), EthernetAddress([0x11, 0x12, 0x13, 0x14, 0x15, 0x16]));
        assert_eq!(f.src_addr(), me);
    }

    #[test]
    fn mac_parse_and_print() {
        let m: EthernetAddress = "02:AB:cd:00:01:ff".parse().unwrap();
        assert_eq!(m.to_string(), "02:ab:cd:00:01:ff");
        assert!(m.is_unicast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
        for bad in ["", "02:ab:cd:00:01", "02:ab:cd:00:01:ff:00", "0g:00:00:00:00:00", "2:ab:cd:00:01:ff"] {
            assert!(bad.parse::<EthernetAddress>().is_err(), "{bad}");
        }
    }
}
