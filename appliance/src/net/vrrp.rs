//! VRRP advertisements over IPv4: version 2 (RFC 3768, keepalived's default) and
//! version 3 (RFC 5798, intervals in centiseconds). Parsing checks what a router must
//! check before looking at a packet's contents (the IP TTL, the version and type, the
//! length, the checksum) and reports each fault on its own; `emit` builds the IPv4
//! packet (TTL 255, protocol 112, to 224.0.0.18) and `frame` the Ethernet frame
//! around it.
//!
//! ```text
//!  0                   1                   2                   3
//! |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
//! v2: |   Auth Type   |   Adver Int   |          Checksum             |
//! v3: |(rsvd) |     Max Adver Int     |          Checksum             |
//! |                     IPv4 address(es) ...                          |
//! v2: |                Authentication Data (8 bytes)                  |
//! ```

use super::checksum;
use super::ethernet::{self, EthernetAddress};
use super::ipv4;
use std::net::Ipv4Addr;

/// IP protocol number of VRRP.
pub const PROTOCOL: u8 = 112;
/// The VRRP IPv4 multicast group.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// Its Ethernet address (01:00:5e + the group's low 23 bits).
pub const GROUP_MAC: EthernetAddress = EthernetAddress([0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);
/// The TTL every advertisement is sent with and must arrive with.
pub const TTL: u8 = 255;
/// Fixed part of the message (before the addresses).
pub const HEADER_LEN: usize = 8;
/// Version 2's authentication data.
pub const AUTH_LEN: usize = 8;
/// Most addresses one advertisement carries (the count is one byte; keepalived's
/// limit for one instance's addresses in a packet is lower still).
pub const MAX_ADDRS: usize = 255;
/// Authentication types of version 2.
pub const AUTH_NONE: u8 = 0;
pub const AUTH_PASS: u8 = 1;
pub const AUTH_AH: u8 = 2;

/// Why an advertisement cannot be looked at further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Shorter than its header, its address list or its authentication data.
    Truncated,
    /// Not sent with TTL 255: it crossed a router.
    BadTtl,
    /// Version not 2 or 3, or not an advertisement (type 1).
    BadVersion,
    BadChecksum,
}

/// An advertisement as read (or to be written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    pub version: u8,
    pub vrid: u8,
    pub priority: u8,
    /// Advertisement interval in centiseconds (version 2 carries whole seconds).
    pub interval_cs: u16,
    /// Version 2: the authentication type and its 8 bytes (a PASS password,
    /// zero-padded); version 3: none.
    pub auth_type: u8,
    pub auth_data: [u8; AUTH_LEN],
    pub addrs: Vec<Ipv4Addr>,
}

impl Advert {
    /// Length of the VRRP message.
    pub fn len(&self) -> usize {
        HEADER_LEN + 4 * self.addrs.len() + if self.version == 2 { AUTH_LEN } else { 0 }
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Reads the VRRP message of IPv4 packet `ip` (protocol 112, checked by the
    /// caller), checking TTL, version and type, lengths and checksum.
    pub fn parse(ip: &[u8]) -> Result<Advert, Fault> {
        let p = ipv4::Packet::new_checked(ip).map_err(|_| Fault::Truncated)?;
        if p.ttl() != TTL {
            return Err(Fault::BadTtl);
        }
        let m = p.payload();
        if m.len() < HEADER_LEN {
            return Err(Fault::Truncated);
        }
        let version = m[0] >> 4;
        if !(version == 2 || version == 3) || m[0] & 0x0f != 1 {
            return Err(Fault::BadVersion);
        }
        let count = usize::from(m[3]);
        let need = HEADER_LEN + 4 * count + if version == 2 { AUTH_LEN } else { 0 };
        if m.len() < need {
            return Err(Fault::Truncated);
        }
        let msg = &m[..need];
        let sum = if version == 2 {
            checksum::checksum(msg)
        } else {
            let pseudo =
                checksum::pseudo_header_v4(p.src_addr(), p.dst_addr(), PROTOCOL, u16::try_from(need).unwrap_or(0));
            !checksum::fold(checksum::sum(pseudo, msg))
        };
        if sum != 0 {
            return Err(Fault::BadChecksum);
        }
        let addrs = (0..count).map(|i| super::read_ipv4(msg, HEADER_LEN + 4 * i)).collect();
        let (interval_cs, auth_type, mut auth_data) = if version == 2 {
            (u16::from(msg[5]) * 100, msg[4], [0u8; AUTH_LEN])
        } else {
            (super::read_u16(msg, 4) & 0x0fff, AUTH_NONE, [0u8; AUTH_LEN])
        };
        if version == 2 {
            auth_data.copy_from_slice(&msg[need - AUTH_LEN..need]);
        }
        Ok(Advert { version, vrid: msg[1], priority: msg[2], interval_cs, auth_type, auth_data, addrs })
    }

    /// Writes the VRRP message into `out` (at least `len()` bytes), the checksum
    /// computed for an IPv4 packet from `src` to the group.
    pub fn emit_message(&self, src: Ipv4Addr, out: &mut [u8]) {
        let len = self.len();
        let m = &mut out[..len];
        m.fill(0);
        m[0] = (self.version << 4) | 1;
        m[1] = self.vrid;
        m[2] = self.priority;
        m[3] = u8::try_from(self.addrs.len()).unwrap_or(u8::MAX);
        if self.version == 2 {
            m[4] = self.auth_type;
            m[5] = u8::try_from(self.interval_cs / 100).unwrap_or(u8::MAX);
        } else {
            super::write_u16(m, 4, self.interval_cs & 0x0fff);
        }
        for (i, a) in self.addrs.iter().enumerate() {
            m[HEADER_LEN + 4 * i..HEADER_LEN + 4 * i + 4].copy_from_slice(&a.octets());
        }
        if self.version == 2 {
            m[len - AUTH_LEN..].copy_from_slice(&self.auth_data);
        }
        let sum = if self.version == 2 {
            checksum::checksum(m)
        } else {
            let pseudo = checksum::pseudo_header_v4(src, GROUP, PROTOCOL, u16::try_from(len).unwrap_or(0));
            !checksum::fold(checksum::sum(pseudo, m))
        };
        super::write_u16(m, 6, sum);
    }

    /// The whole Ethernet frame: from `mac` and `src` to the VRRP group.
    pub fn frame(&self, mac: EthernetAddress, src: Ipv4Addr) -> Vec<u8> {
        let len = self.len();
        let mut f = vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + len];
        {
            let mut e = ethernet::Frame::new_unchecked(&mut f[..]);
            e.set_dst_addr(GROUP_MAC);
            e.set_src_addr(mac);
            e.set_ethertype(ethernet::ethertype::IPV4);
        }
        let ip = &mut f[ethernet::HEADER_LEN..];
        ipv4::Repr {
            src_addr: src,
            dst_addr: GROUP,
            protocol: PROTOCOL,
            payload_len: len,
            ttl: TTL,
            ident: 0,
            dont_frag: false,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut ip[..]));
        self.emit_message(src, &mut ip[ipv4::HEADER_LEN..]);
        f
    }
}

/// A gratuitous ARP for `addr` from `mac`: a broadcast request whose sender and
/// target are both `addr` (what keepalived sends on becoming master).
pub fn gratuitous_arp(mac: EthernetAddress, addr: Ipv4Addr) -> Vec<u8> {
    use super::arp;
    let mut f = vec![0u8; ethernet::HEADER_LEN + arp::PACKET_LEN];
    {
        let mut e = ethernet::Frame::new_unchecked(&mut f[..]);
        e.set_dst_addr(EthernetAddress::BROADCAST);
        e.set_src_addr(mac);
        e.set_ethertype(ethernet::ethertype::ARP);
    }
    arp::Repr {
        operation: arp::Operation::Request,
        source_hardware_addr: mac,
        source_protocol_addr: addr,
        target_hardware_addr: EthernetAddress::BROADCAST,
        target_protocol_addr: addr,
    }
    .emit(&mut arp::Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const MAC: EthernetAddress = EthernetAddress([2, 0xd1, 0, 0, 0, 1]);

    fn v2() -> Advert {
        let mut auth = [0u8; AUTH_LEN];
        auth[..4].copy_from_slice(b"1111");
        Advert {
            version: 2,
            vrid: 51,
            priority: 100,
            interval_cs: 100,
            auth_type: AUTH_PASS,
            auth_data: auth,
            addrs: vec![Ipv4Addr::new(198, 18, 0, 10)],
        }
    }

    #[test]
    fn a_written_advert_reads_back() {
        for a in [v2(), Advert { version: 3, interval_cs: 10, auth_type: 0, auth_data: [0; 8], ..v2() }] {
            let f = a.frame(MAC, SRC);
            let ip = &f[ethernet::HEADER_LEN..];
            assert!(ipv4::Packet::new_checked(ip).unwrap().verify_checksum());
            assert_eq!(Advert::parse(ip), Ok(a.clone()));
        }
    }

    #[test]
    fn each_fault_is_told_apart() {
        let f = v2().frame(MAC, SRC);
        let ip = f[ethernet::HEADER_LEN..].to_vec();
        let mut ttl = ip.clone();
        ttl[8] = 64;
        assert_eq!(Advert::parse(&ttl), Err(Fault::BadTtl));
        let mut ver = ip.clone();
        ver[20] = 0x41;
        assert_eq!(Advert::parse(&ver), Err(Fault::BadVersion));
        let mut sum = ip.clone();
        sum[26] ^= 1;
        assert_eq!(Advert::parse(&sum), Err(Fault::BadChecksum));
        let mut count = ip.clone();
        count[23] = 9;
        assert_eq!(Advert::parse(&count), Err(Fault::Truncated));
        // v3's checksum covers the pseudo-header: the same message from another
        // source fails.
        let a3 = Advert { version: 3, auth_type: 0, auth_data: [0; 8], ..v2() };
        let mut moved = a3.frame(MAC, SRC)[ethernet::HEADER_LEN..].to_vec();
        let mut p = ipv4::Packet::new_unchecked(&mut moved[..]);
        p.set_src_addr(Ipv4Addr::new(198, 18, 0, 3));
        p.fill_checksum();
        assert_eq!(Advert::parse(&moved), Err(Fault::BadChecksum));
    }
}
