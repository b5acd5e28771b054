//! VRRP advertisements: version 2 (RFC 3768, keepalived's default, IPv4 only) and
//! version 3 (RFC 5798, intervals in centiseconds, over IPv4 or IPv6). Parsing checks
//! what a router must check before looking at a packet's contents (the TTL or hop
//! limit, the version and type, the length, the checksum) and reports each fault on
//! its own; `frame` builds the Ethernet frame: TTL / hop limit 255, protocol 112, to
//! 224.0.0.18 or ff02::12.
//!
//! ```text
//!  0                   1                   2                   3
//! |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
//! v2: |   Auth Type   |   Adver Int   |          Checksum             |
//! v3: |(rsvd) |     Max Adver Int     |          Checksum             |
//! |             IPv4 or IPv6 address(es) (4 or 16 bytes each) ...     |
//! v2: |                Authentication Data (8 bytes)                  |
//! ```

use super::checksum;
use super::ethernet::{self, EthernetAddress};
use super::{ipv4, ipv6};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP.
pub const PROTOCOL: u8 = 112;
/// The VRRP IPv4 multicast group.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// Its Ethernet address (01:00:5e + the group's low 23 bits).
pub const GROUP_MAC: EthernetAddress = EthernetAddress([0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);
/// The VRRP IPv6 multicast group (link scope).
pub const GROUP6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// Its Ethernet address (33:33 + the group's low 32 bits).
pub const GROUP6_MAC: EthernetAddress = EthernetAddress([0x33, 0x33, 0x00, 0x00, 0x00, 0x12]);
/// The TTL (hop limit) every advertisement is sent with and must arrive with.
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
    /// Not sent with TTL (hop limit) 255: it crossed a router.
    BadTtl,
    /// Version not 2 or 3 (not 3 over IPv6), or not an advertisement (type 1).
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
    /// All of one family: the family of the packet carrying them.
    pub addrs: Vec<IpAddr>,
}

/// The checksum field's value for `msg` (checksum zeroed or to be checked) sent
/// from `src` to the group of its family: version 2 sums the message alone,
/// version 3 the IP pseudo-header too.
fn message_sum(version: u8, src: IpAddr, msg: &[u8]) -> u16 {
    let len = u16::try_from(msg.len()).unwrap_or(0);
    let pseudo = match (version, src) {
        (2, _) => return checksum::checksum(msg),
        (_, IpAddr::V4(s)) => checksum::pseudo_header_v4(s, GROUP, PROTOCOL, len),
        (_, IpAddr::V6(s)) => ipv6::pseudo_header(s, GROUP6, PROTOCOL, u32::from(len)),
    };
    !checksum::fold(checksum::sum(pseudo, msg))
}

impl Advert {
    /// Bytes per address: 16 when the addresses are IPv6.
    fn addr_len(&self) -> usize {
        if self.addrs.first().is_some_and(IpAddr::is_ipv6) {
            16
        } else {
            4
        }
    }

    /// Length of the VRRP message.
    pub fn len(&self) -> usize {
        HEADER_LEN + self.addr_len() * self.addrs.len() + if self.version == 2 { AUTH_LEN } else { 0 }
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Reads the VRRP message of IP packet `ip` (an IPv4 packet of protocol 112,
    /// or an IPv6 one whose next header is 112, checked by the caller), checking
    /// TTL or hop limit, version and type, lengths and checksum.
    pub fn parse(ip: &[u8]) -> Result<Advert, Fault> {
        let (src, ttl, m, addr_len) = match ip.first().map(|b| b >> 4) {
            Some(6) => {
                let p = ipv6::Packet::new_checked(ip).map_err(|_| Fault::Truncated)?;
                (IpAddr::V6(p.src_addr()), p.hop_limit(), &ip[ipv6::HEADER_LEN..p.total_len()], 16)
            }
            _ => {
                let p = ipv4::Packet::new_checked(ip).map_err(|_| Fault::Truncated)?;
                let (start, end) = (p.header_len(), usize::from(p.total_len()));
                (IpAddr::V4(p.src_addr()), p.ttl(), &ip[start..end], 4)
            }
        };
        if ttl != TTL {
            return Err(Fault::BadTtl);
        }
        if m.len() < HEADER_LEN {
            return Err(Fault::Truncated);
        }
        let version = m[0] >> 4;
        if !(version == 3 || (version == 2 && addr_len == 4)) || m[0] & 0x0f != 1 {
            return Err(Fault::BadVersion);
        }
        let count = usize::from(m[3]);
        let need = HEADER_LEN + addr_len * count + if version == 2 { AUTH_LEN } else { 0 };
        if m.len() < need {
            return Err(Fault::Truncated);
        }
        let msg = &m[..need];
        if message_sum(version, src, msg) != 0 {
            return Err(Fault::BadChecksum);
        }
        let addrs = (0..count)
            .map(|i| {
                let at = HEADER_LEN + addr_len * i;
                if addr_len == 16 {
                    IpAddr::V6(ipv6::read_ipv6(msg, at))
                } else {
                    IpAddr::V4(super::read_ipv4(msg, at))
                }
            })
            .collect();
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
    /// computed for a packet from `src` to the group of its family.
    pub fn emit_message(&self, src: IpAddr, out: &mut [u8]) {
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
        let mut at = HEADER_LEN;
        for a in &self.addrs {
            match a {
                IpAddr::V4(a) => m[at..at + 4].copy_from_slice(&a.octets()),
                IpAddr::V6(a) => m[at..at + 16].copy_from_slice(&a.octets()),
            }
            at += self.addr_len();
        }
        if self.version == 2 {
            m[len - AUTH_LEN..].copy_from_slice(&self.auth_data);
        }
        let sum = message_sum(self.version, src, m);
        super::write_u16(m, 6, sum);
    }

    /// The whole Ethernet frame: from `mac` and `src` to the VRRP group of `src`'s
    /// family (an IPv6 instance sends from its link-local address).
    pub fn frame(&self, mac: EthernetAddress, src: IpAddr) -> Vec<u8> {
        let len = self.len();
        let (ethertype, group_mac, ip_len) = match src {
            IpAddr::V4(_) => (ethernet::ethertype::IPV4, GROUP_MAC, ipv4::HEADER_LEN),
            IpAddr::V6(_) => (ethernet::ethertype::IPV6, GROUP6_MAC, ipv6::HEADER_LEN),
        };
        let mut f = vec![0u8; ethernet::HEADER_LEN + ip_len + len];
        {
            let mut e = ethernet::Frame::new_unchecked(&mut f[..]);
            e.set_dst_addr(group_mac);
            e.set_src_addr(mac);
            e.set_ethertype(ethertype);
        }
        let ip = &mut f[ethernet::HEADER_LEN..];
        match src {
            IpAddr::V4(src_addr) => ipv4::Repr {
                src_addr,
                dst_addr: GROUP,
                protocol: PROTOCOL,
                payload_len: len,
                ttl: TTL,
                ident: 0,
                dont_frag: false,
            }
            .emit(&mut ipv4::Packet::new_unchecked(&mut ip[..])),
            IpAddr::V6(src_addr) => {
                ipv6::Repr { src_addr, dst_addr: GROUP6, next_header: PROTOCOL, payload_len: len, hop_limit: TTL }
                    .emit(&mut ipv6::Packet::new_unchecked(&mut ip[..]))
            }
        }
        self.emit_message(src, &mut ip[ip_len..]);
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
            addrs: vec![IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10))],
        }
    }

    #[test]
    fn a_written_advert_reads_back() {
        for a in [v2(), Advert { version: 3, interval_cs: 10, auth_type: 0, auth_data: [0; 8], ..v2() }] {
            let f = a.frame(MAC, IpAddr::V4(SRC));
            let ip = &f[ethernet::HEADER_LEN..];
            assert!(ipv4::Packet::new_checked(ip).unwrap().verify_checksum());
            assert_eq!(Advert::parse(ip), Ok(a.clone()));
        }
    }

    #[test]
    fn each_fault_is_told_apart() {
        let f = v2().frame(MAC, IpAddr::V4(SRC));
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
        let mut moved = a3.frame(MAC, IpAddr::V4(SRC))[ethernet::HEADER_LEN..].to_vec();
        let mut p = ipv4::Packet::new_unchecked(&mut moved[..]);
        p.set_src_addr(Ipv4Addr::new(198, 18, 0, 3));
        p.fill_checksum();
        assert_eq!(Advert::parse(&moved), Err(Fault::BadChecksum));
    }

    #[test]
    fn version_3_over_ipv6_from_the_link_local_address() {
        let ll = ipv6::link_local(MAC);
        let a = Advert {
            version: 3,
            vrid: 61,
            priority: 150,
            interval_cs: 100,
            auth_type: AUTH_NONE,
            auth_data: [0; AUTH_LEN],
            addrs: vec![IpAddr::V6("2001:2::10".parse().unwrap()), IpAddr::V6("2001:2::11".parse().unwrap())],
        };
        let f = a.frame(MAC, IpAddr::V6(ll));
        assert_eq!(&f[..6], &GROUP6_MAC.0);
        assert_eq!(f.len(), ethernet::HEADER_LEN + ipv6::HEADER_LEN + HEADER_LEN + 32);
        // An independent reading: etherparse's IPv6 header, the RFC 5798 checksum.
        let (h, rest) = etherparse::Ipv6Header::from_slice(&f[ethernet::HEADER_LEN..]).unwrap();
        assert_eq!((h.hop_limit, h.next_header.0, h.destination), (255, 112, GROUP6.octets()));
        assert_eq!(h.source, ll.octets());
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&h.source);
        pseudo.extend_from_slice(&h.destination);
        pseudo.extend_from_slice(&u32::try_from(rest.len()).unwrap().to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 112]);
        pseudo.extend_from_slice(rest);
        assert_eq!(checksum::checksum(&pseudo), 0, "the checksum covers the IPv6 pseudo-header");
        let ip = &f[ethernet::HEADER_LEN..];
        assert_eq!(Advert::parse(ip), Ok(a.clone()));
        let mut hop = ip.to_vec();
        hop[7] = 254;
        assert_eq!(Advert::parse(&hop), Err(Fault::BadTtl));
        let mut v2 = ip.to_vec();
        v2[40] = 0x21;
        assert_eq!(Advert::parse(&v2), Err(Fault::BadVersion), "version 2 has no IPv6");
        let mut moved = ip.to_vec();
        moved[23] ^= 1;
        assert_eq!(Advert::parse(&moved), Err(Fault::BadChecksum), "another source: another pseudo-header");
        let mut short = ip.to_vec();
        short[43] = 3;
        assert_eq!(Advert::parse(&short), Err(Fault::Truncated));
    }
}
