//! One decode per packet. A received frame is read once, at the start of its burst,
//! into a `Meta`: where its IPv4 header and transport header start, whether they are
//! sound (and if not, the drop reason), its connection-table tuple and that tuple's
//! hash, its TCP flags. Steering, warming and processing all work from the `Meta`;
//! nothing is parsed or validated twice, and the table's hash is computed once.
//!
//! The checks and their order are those of the checked views (`net::ipv4`,
//! `net::tcp`, `net::udp`): IPv4 length, version, IHL, total length, header
//! checksum (skipped when the NIC verified it); then the transport header, whose
//! fault is kept apart (`l4_fault`) because the pipeline reports it only once the
//! packet is known to be for a service (a standby VIP's packet is `standby` first).
//!
//! The common frame — untagged IPv4, a 20-byte header, a whole TCP or UDP packet
//! that passes every check — is read at fixed offsets (`decode_common`); any
//! other, and any fault, goes through the full decode (`decode_any`), which gives
//! the same result for the common frame and names the fault of the others.

use super::counters::DropReason;
use crate::ipvs::conntab::Tuple;
use crate::net::checksum;
use crate::net::ipv4::protocol;
use std::net::{Ipv4Addr, Ipv6Addr};

/// What a frame is, as far as the pipeline's routing of it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Class {
    /// Not IPv4 (ARP, IPv6, another EtherType, too short for Ethernet): L2 input
    /// decides.
    #[default]
    L2,
    /// IPv4 whose header is unsound: dropped for this reason.
    Bad(DropReason),
    /// A whole (unfragmented) IPv4 TCP or UDP packet: `tuple`, `hash` and
    /// `tcp_flags` are set (unless `l4_fault`).
    Transport,
    /// The first fragment of a TCP or UDP datagram: as `Transport`, and its
    /// fragment key is in the header.
    FirstFragment,
    /// A later fragment, or a fragment of another protocol: no ports.
    Fragment,
    /// Whole IPv4 of another protocol (ICMP, VRRP, ...).
    OtherIp,
    /// A sound IPv6 TCP or UDP packet without extension headers: `hash` is the
    /// IPv6 table's hash of its tuple, `tuple` has its ports and its addresses
    /// folded to 32 bits (steering's key), `tcp_flags` is set. Everything else
    /// IPv6 is `L2`: IPv6 input checks and reports it.
    Transport6,
}

/// The decode of one frame (see the module's comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub class: Class,
    /// Offset of the IPv4 header (14, or 18 behind an 802.1Q tag).
    pub l3: u8,
    /// Offset of the transport header.
    pub l4: u8,
    pub proto: u8,
    /// TCP flags (0 for anything but TCP).
    pub tcp_flags: u8,
    /// The transport header's fault, reported when the packet reaches the LVS
    /// stages.
    pub l4_fault: Option<DropReason>,
    /// A whole IPv4 TCP or UDP packet (`Transport`) with a sound transport
    /// header, to an address that is no multicast group's: what the established
    /// path and `Pipeline::plain` take, as far as the packet itself goes.
    pub plain: bool,
    /// IPv4 total length.
    pub ip_len: u16,
    /// Protocol, addresses and ports as the packet carries them (ports 0 when it
    /// has none).
    pub tuple: Tuple,
    /// The connection table's hash of `tuple` (`ConnTable::hash`).
    pub hash: u64,
    /// What warming found in its family's index for `hash`
    /// (`ConnTable::warm_conn`; 0: not warmed, or nothing there): where the
    /// lookup starts while that index stays as it was.
    pub hint: u32,
}

impl Meta {
    /// A TCP segment with SYN set: it may open a connection (or reuse one).
    /// (Anything but TCP has no flags.)
    #[inline(always)]
    pub fn is_syn(&self) -> bool {
        self.tcp_flags & crate::net::tcp::flags::SYN != 0
    }
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            class: Class::L2,
            l3: 0,
            l4: 0,
            proto: 0,
            tcp_flags: 0,
            l4_fault: None,
            plain: false,
            ip_len: 0,
            tuple: Tuple { proto: 0, saddr: Ipv4Addr::UNSPECIFIED, sport: 0, daddr: Ipv4Addr::UNSPECIFIED, dport: 0 },
            hash: 0,
            hint: 0,
        }
    }
}

impl Meta {
    /// A TCP/UDP packet (whole or first fragment) with a sound transport header:
    /// its tuple can be looked up.
    #[inline]
    pub fn has_ports(&self) -> bool {
        matches!(self.class, Class::Transport | Class::FirstFragment) && self.l4_fault.is_none()
    }
}

const IPV4: [u8; 2] = [0x08, 0x00];
const IPV6: [u8; 2] = [0x86, 0xdd];

/// An IPv6 address folded to 32 bits (its four words XORed): the key steering
/// spreads IPv6 clients by.
#[inline(always)]
pub fn fold6(a: &[u8]) -> Ipv4Addr {
    let w = |i: usize| u32::from_be_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
    Ipv4Addr::from(w(0) ^ w(4) ^ w(8) ^ w(12))
}

/// The IPv6 packet at `l3` when it is a sound TCP or UDP packet without extension
/// headers (`Class::Transport6`); else `L2`, for IPv6 input to check in full.
/// (Out of line: IPv4's decode stays as small as it was.)
#[inline(never)]
fn decode6(frame: &[u8], l3: usize, hash6: impl Fn(&Tuple<Ipv6Addr>) -> u64) -> Meta {
    let Some(h) = frame.get(l3..l3 + 40) else { return Meta::default() };
    let total = 40 + usize::from(be16(h, 4));
    let proto = h[6];
    if h[0] >> 4 != 6 || frame.len() < l3 + total || (proto != protocol::TCP && proto != protocol::UDP) {
        return Meta::default();
    }
    let seg = &frame[l3 + 40..l3 + total];
    let Some(&[sp0, sp1, dp0, dp1, ..]) = seg.get(..8) else { return Meta::default() };
    let tcp_flags = if proto == protocol::TCP {
        let Some(t) = seg.get(..20) else { return Meta::default() };
        let hl = usize::from(t[12] >> 4) * 4;
        if hl < 20 || hl > seg.len() {
            return Meta::default();
        }
        t[13]
    } else {
        let len = usize::from(be16(seg, 4));
        if len < 8 || len > seg.len() {
            return Meta::default();
        }
        0
    };
    let (sport, dport) = (u16::from_be_bytes([sp0, sp1]), u16::from_be_bytes([dp0, dp1]));
    let (src, dst) = (&h[8..24], &h[24..40]);
    let v6 = |b: &[u8]| {
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Ipv6Addr::from(a)
    };
    let t6 = Tuple { proto, saddr: v6(src), sport, daddr: v6(dst), dport };
    Meta {
        class: Class::Transport6,
        // 14 or 18, and 40 more.
        l3: u8::try_from(l3).unwrap_or(14),
        l4: u8::try_from(l3 + 40).unwrap_or(54),
        proto,
        tcp_flags,
        l4_fault: None,
        plain: false,
        ip_len: u16::try_from(total).unwrap_or(u16::MAX),
        tuple: Tuple { proto, saddr: fold6(src), sport, daddr: fold6(dst), dport },
        hash: hash6(&t6),
        hint: 0,
    }
}
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

#[inline(always)]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The IPv4 header of `ihl` bytes at the start of `ip` sums to all ones; the
/// usual 20 bytes as five 32-bit words in the machine's byte order, without a
/// loop or a fold. A one's-complement sum of 16-bit words is congruent to their
/// plain sum modulo 0xffff, and a nonzero sum folds to a value in 1..=0xffff: it
/// folds to all ones exactly when the plain sum is a nonzero multiple of 0xffff.
/// That holds of the 32-bit words too (2^16 = 1 modulo 0xffff: a word and the
/// sum of its halves agree), and in either byte order (a swapped word is 2^8
/// times the word modulo 0xffff, and 2^8 is invertible modulo it), so no word is
/// split or swapped. The multiple test is one multiplication: times the inverse
/// of 0xffff modulo 2^64, the multiples of 0xffff (and only they) land at or
/// below u64::MAX / 0xffff.
#[inline(always)]
fn header_checksum_ok(ip: &[u8], ihl: usize) -> bool {
    match ip.first_chunk::<20>() {
        Some(h) if ihl == 20 => {
            let a = sum20(h);
            a != 0 && multiple_of_ffff(a)
        }
        _ => checksum::fold(checksum::sum(0, &ip[..ihl])) == 0xffff,
    }
}

/// A 20-byte header's plain sum as five 32-bit words in the machine's order.
#[inline(always)]
fn sum20(h: &[u8; 20]) -> u64 {
    let w = |at: usize| u64::from(u32::from_ne_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]));
    w(0) + w(4) + w(8) + w(12) + w(16)
}

/// `a` is a multiple of 0xffff (zero included).
#[inline(always)]
fn multiple_of_ffff(a: u64) -> bool {
    /// 0xffff * INVERSE = 1 modulo 2^64.
    const INVERSE: u64 = 0xfffe_fffe_fffe_ffff;
    a.wrapping_mul(INVERSE) <= u64::MAX / 0xffff
}

/// Decodes `frame`. `checksum_good`: the NIC verified the IPv4 header checksum.
/// `hash` is the connection table's hash of a tuple. No allocation, no panic.
#[inline(always)]
pub fn decode(
    frame: &[u8],
    checksum_good: bool,
    hash: impl Fn(&Tuple) -> u64,
    hash6: impl Fn(&Tuple<Ipv6Addr>) -> u64,
) -> Meta {
    let mut m = Meta::default();
    decode_into(&mut m, frame, checksum_good, hash, hash6);
    m
}

/// As `decode`, into `m` (a burst's decodes are written where they are kept,
/// field by field, not built aside and copied).
#[inline(always)]
pub fn decode_into(
    m: &mut Meta,
    frame: &[u8],
    checksum_good: bool,
    hash: impl Fn(&Tuple) -> u64,
    hash6: impl Fn(&Tuple<Ipv6Addr>) -> u64,
) {
    if !decode_common(m, frame, checksum_good, &hash) {
        decode_any(m, frame, checksum_good, hash, hash6);
    }
}

/// The common frame at fixed offsets: untagged IPv4 with a 20-byte header, a
/// whole TCP or UDP packet, every check passed — decoded into `m` as
/// `decode_any` would, and true. False (`m` untouched) for anything else, which
/// `decode_any` then reads in full and names the fault of.
#[inline(always)]
fn decode_common(m: &mut Meta, frame: &[u8], checksum_good: bool, hash: &impl Fn(&Tuple) -> u64) -> bool {
    // Ethernet, the IPv4 header and the transport header's first 8 bytes.
    let Some(f) = frame.first_chunk::<42>() else { return false };
    let proto = f[23];
    let frag = be16(f, 20);
    // EtherType IPv4 and a version-4 header of 20 bytes: bytes 12..15 as a word.
    let head = u32::from_le_bytes([f[12], f[13], f[14], f[15]]) & 0x00ff_ffff;
    if head != u32::from_le_bytes([0x08, 0x00, 0x45, 0])
        || frag & (FLAG_MF | OFFSET_MASK) != 0
        || (proto != protocol::TCP && proto != protocol::UDP)
    {
        return false;
    }
    let total16 = be16(f, 16);
    let total = usize::from(total16);
    // The transport segment: from 34 to 14 + total, within the frame.
    // The header's sum is never zero (its first byte is 0x45).
    let header = f[14..34].first_chunk::<20>().map_or(0, sum20);
    if total < 28 || frame.len() < 14 + total || (!checksum_good && !multiple_of_ffff(header)) {
        return false;
    }
    let segment = total - 20;
    let tcp_flags = if proto == protocol::TCP {
        let Some(&[.., offset, flags]) = frame.get(..48) else { return false };
        let hl = usize::from(offset >> 4) * 4;
        if hl < 20 || hl > segment {
            return false;
        }
        flags
    } else {
        let len = usize::from(be16(f, 38));
        if len < 8 || len > segment {
            return false;
        }
        0
    };
    m.class = Class::Transport;
    m.l3 = 14;
    m.l4 = 34;
    m.proto = proto;
    m.tcp_flags = tcp_flags;
    m.l4_fault = None;
    m.plain = f[30] & 0xf0 != 0xe0;
    m.ip_len = total16;
    let tuple = Tuple {
        proto,
        saddr: Ipv4Addr::new(f[26], f[27], f[28], f[29]),
        sport: be16(f, 34),
        daddr: Ipv4Addr::new(f[30], f[31], f[32], f[33]),
        dport: be16(f, 36),
    };
    m.hash = hash(&tuple);
    m.tuple = tuple;
    m.hint = 0;
    true
}

/// `decode_into` for any frame: every check in the checked views' order.
#[inline(always)]
fn decode_any(
    m: &mut Meta,
    frame: &[u8],
    checksum_good: bool,
    hash: impl Fn(&Tuple) -> u64,
    hash6: impl Fn(&Tuple<Ipv6Addr>) -> u64,
) {
    let l3 = match frame.get(12..14) {
        Some(&[0x08, 0x00]) => 14,
        Some(&[0x81, 0x00]) if frame.get(16..18) == Some(&IPV4[..]) => 18,
        Some(&[0x86, 0xdd]) => {
            *m = decode6(frame, 14, hash6);
            return;
        }
        Some(&[0x81, 0x00]) if frame.get(16..18) == Some(&IPV6[..]) => {
            *m = decode6(frame, 18, hash6);
            return;
        }
        _ => {
            *m = Meta::default();
            return;
        }
    };
    // 14 or 18.
    let l3_u8 = u8::try_from(l3).unwrap_or(14);
    let mut bad = |r| *m = Meta { class: Class::Bad(r), l3: l3_u8, ..Meta::default() };
    let ip = &frame[l3..];
    // The checked view's order: length, version, IHL, total length.
    let Some(h) = ip.get(..20) else { return bad(DropReason::IpTruncated) };
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total16 = be16(h, 2);
    let total = usize::from(total16);
    if h[0] != 0x45 {
        let fault = if h[0] >> 4 != 4 {
            Some(DropReason::IpBadVersion)
        } else if ihl < 20 {
            Some(DropReason::IpBadHeaderLen)
        } else if ip.len() < ihl {
            Some(DropReason::IpTruncated)
        } else {
            None
        };
        if let Some(r) = fault {
            return bad(r);
        }
    }
    if total < ihl {
        return bad(DropReason::IpBadHeaderLen);
    }
    if ip.len() < total {
        return bad(DropReason::IpBadTotalLength);
    }
    if !checksum_good && !header_checksum_ok(ip, ihl) {
        return bad(DropReason::IpBadChecksum);
    }
    let proto = h[9];
    let frag = be16(h, 6);
    *m = Meta {
        class: Class::OtherIp,
        l3: l3_u8,
        // At most 18 + 60.
        l4: u8::try_from(l3 + ihl).unwrap_or(u8::MAX),
        proto,
        tcp_flags: 0,
        l4_fault: None,
        plain: false,
        ip_len: total16,
        tuple: Tuple {
            proto,
            saddr: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
            sport: 0,
            daddr: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
            dport: 0,
        },
        hash: 0,
        hint: 0,
    };
    let transport = proto == protocol::TCP || proto == protocol::UDP;
    let fragment = frag & (FLAG_MF | OFFSET_MASK) != 0;
    m.class = match (fragment, frag & OFFSET_MASK == 0, transport) {
        (false, _, true) => Class::Transport,
        (false, _, false) => return,
        (true, true, true) => Class::FirstFragment,
        (true, _, _) => {
            m.class = Class::Fragment;
            return;
        }
    };
    let payload = &ip[ihl..total];
    let Some(&[sp0, sp1, dp0, dp1, ..]) = payload.get(..8) else {
        m.l4_fault = Some(if proto == protocol::TCP { DropReason::TcpTruncated } else { DropReason::UdpTruncated });
        return;
    };
    if proto == protocol::TCP {
        let Some(t) = payload.get(..20) else {
            m.l4_fault = Some(DropReason::TcpTruncated);
            return;
        };
        let hl = usize::from(t[12] >> 4) * 4;
        if hl < 20 {
            m.l4_fault = Some(DropReason::TcpBadDataOffset);
            return;
        }
        if hl > payload.len() {
            m.l4_fault = Some(DropReason::TcpTruncated);
            return;
        }
        m.tcp_flags = t[13];
    } else {
        // A first fragment holds the header, not the whole datagram its length
        // field counts.
        let len = usize::from(be16(payload, 4));
        if !fragment && (len < 8 || len > payload.len()) {
            m.l4_fault = Some(DropReason::UdpBadLength);
            return;
        }
    }
    m.tuple.sport = u16::from_be_bytes([sp0, sp1]);
    m.tuple.dport = u16::from_be_bytes([dp0, dp1]);
    m.hash = hash(&m.tuple);
    m.plain = m.class == Class::Transport && !m.tuple.daddr.is_multicast();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ipv4;

    fn ip_packet(proto: u8, payload: &[u8], frag: u16) -> Vec<u8> {
        let mut ip = vec![0u8; 20];
        ip.extend_from_slice(payload);
        ipv4::Repr {
            src_addr: Ipv4Addr::new(198, 18, 0, 100),
            dst_addr: Ipv4Addr::new(198, 18, 0, 10),
            protocol: proto,
            payload_len: payload.len(),
            ttl: 64,
            ident: 7,
            dont_frag: false,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut ip[..]));
        ip[6..8].copy_from_slice(&frag.to_be_bytes());
        ipv4::Packet::new_unchecked(&mut ip[..]).fill_checksum();
        ip
    }

    fn frame(ip: &[u8], vlan: bool) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(ip);
        f
    }

    fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[12] = 0x50;
        t[13] = flags;
        t
    }

    fn decoded(f: &[u8]) -> Meta {
        decode(f, false, |t| u64::from(t.sport) << 16 | u64::from(t.dport), |_| 0)
    }

    #[test]
    fn a_tcp_packet_is_read_once_whole() {
        for vlan in [false, true] {
            let m = decoded(&frame(&ip_packet(6, &tcp(5555, 80, 0x10), 0), vlan));
            let l3 = if vlan { 18 } else { 14 };
            assert_eq!((m.class, m.l3, m.l4, m.tcp_flags, m.ip_len), (Class::Transport, l3, l3 + 20, 0x10, 40));
            assert_eq!((m.tuple.sport, m.tuple.dport, m.tuple.proto), (5555, 80, 6));
            assert_eq!(m.tuple.saddr, Ipv4Addr::new(198, 18, 0, 100));
            assert_eq!(m.hash, 5555 << 16 | 80, "the table's hash of the tuple");
            assert!(m.has_ports());
        }
    }

    #[test]
    fn faults_are_named_in_the_checked_views_order() {
        let good = ip_packet(6, &tcp(1, 2, 0x02), 0);
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut ip = good.clone();
            f(&mut ip);
            decoded(&frame(&ip, false))
        };
        let bad = |r| Class::Bad(r);
        assert_eq!(with(&|ip| ip.truncate(19)).class, bad(DropReason::IpTruncated));
        assert_eq!(with(&|ip| ip[0] = 0x65).class, bad(DropReason::IpBadVersion));
        assert_eq!(with(&|ip| ip[0] = 0x44).class, bad(DropReason::IpBadHeaderLen));
        assert_eq!(with(&|ip| ip[2..4].copy_from_slice(&[0, 19])).class, bad(DropReason::IpBadHeaderLen));
        assert_eq!(with(&|ip| ip[2..4].copy_from_slice(&[0, 41])).class, bad(DropReason::IpBadTotalLength));
        assert_eq!(with(&|ip| ip[10] ^= 1).class, bad(DropReason::IpBadChecksum));
        // The NIC said the checksum is good: not looked at again.
        let mut ip = good.clone();
        ip[10] ^= 1;
        assert_eq!(decode(&frame(&ip, false), true, |_| 0, |_| 0).class, Class::Transport);
        // Transport faults are kept apart.
        let short = decoded(&frame(&ip_packet(6, &[0; 12], 0), false));
        assert_eq!((short.class, short.l4_fault), (Class::Transport, Some(DropReason::TcpTruncated)));
        assert!(!short.has_ports());
        let mut t = tcp(1, 2, 0);
        t[12] = 0x40;
        assert_eq!(decoded(&frame(&ip_packet(6, &t, 0), false)).l4_fault, Some(DropReason::TcpBadDataOffset));
        t[12] = 0x60;
        assert_eq!(decoded(&frame(&ip_packet(6, &t, 0), false)).l4_fault, Some(DropReason::TcpTruncated));
        assert_eq!(decoded(&frame(&ip_packet(17, &[0; 4], 0), false)).l4_fault, Some(DropReason::UdpTruncated));
        let udp = [0, 1, 0, 2, 0, 9, 0, 0];
        assert_eq!(decoded(&frame(&ip_packet(17, &udp, 0), false)).l4_fault, Some(DropReason::UdpBadLength));
        // ... except a first fragment's length, which counts the whole datagram.
        let m = decoded(&frame(&ip_packet(17, &udp, FLAG_MF), false));
        assert_eq!((m.class, m.l4_fault, m.tuple.dport), (Class::FirstFragment, None, 2));
    }

    #[test]
    fn the_fixed_offset_decode_agrees_with_the_full_one_or_leaves_it() {
        // Frames of every kind, each mutated at random (a byte anywhere, mostly in
        // the headers, or cut short): where the fixed-offset decode takes a frame
        // its decode is the full decode's, and it takes the plain ones.
        let hash = |t: &Tuple| u64::from(u32::from(t.saddr)) << 16 ^ u64::from(t.sport) << 8 ^ u64::from(t.dport);
        let full = |f: &[u8], good: bool| {
            let mut m = Meta::default();
            decode_any(&mut m, f, good, hash, |_| 0);
            m
        };
        let mut udp = vec![0x13, 0x88, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4];
        let plain = [frame(&ip_packet(6, &tcp(5555, 80, 0x18), 0), false), frame(&ip_packet(17, &udp, 0), false)];
        for f in &plain {
            let mut m = Meta::default();
            assert!(decode_common(&mut m, f, false, &hash), "a plain frame takes the fixed offsets");
            assert_eq!(m, full(f, false));
        }
        udp[4..6].copy_from_slice(&8u16.to_be_bytes());
        let mut kinds = plain.to_vec();
        kinds.extend([
            frame(&ip_packet(6, &tcp(1, 2, 0x02), 0), true),
            frame(&ip_packet(17, &udp, FLAG_MF), false),
            frame(&ip_packet(6, &tcp(1, 2, 0x10), 100), false),
            frame(&ip_packet(1, &[8, 0, 0, 0, 0, 0, 0, 0], 0), false),
            frame(&ip_packet(6, &[tcp(7, 8, 0x11), vec![0xab; 30]].concat(), 0), false),
            frame(&ip_packet(17, &[0, 1, 0, 2, 0, 8, 0, 0], 0), false),
        ]);
        let mut next = crate::pipeline::testutil::lcg(0x5851_f42d_4c95_7f2d);
        let mut taken = 0;
        for i in 0..60_000 {
            let mut f = kinds[i % kinds.len()].clone();
            let r = usize::try_from(next()).unwrap();
            match r % 4 {
                0 => f.truncate(r / 4 % (f.len() + 1)),
                // The headers' bytes (Ethernet, IPv4, the transport header).
                1 | 2 => {
                    let at = r / 4 % f.len().min(60);
                    f[at] = next().to_be_bytes()[4];
                }
                _ => {
                    let at = r / 4 % f.len();
                    f[at] ^= 1 << (r % 8);
                }
            }
            for good in [false, true] {
                let mut m = Meta { hint: 9, ..Meta::default() };
                let before = m;
                if decode_common(&mut m, &f, good, &hash) {
                    taken += 1;
                    assert_eq!(m, full(&f, good), "case {i}: {f:02x?}");
                } else {
                    assert_eq!(m, before, "left untouched");
                }
            }
        }
        assert!(taken > 10_000, "{taken} taken");
    }

    #[test]
    fn the_header_checksum_check_agrees_with_the_big_endian_sum() {
        // Headers of random words (an LCG), each with its checksum right, then
        // with one bit of it wrong: the machine-order check says what the RFC 1071
        // sum over big-endian words says.
        let mut next = crate::pipeline::testutil::lcg(0x2545_f491_4f6c_dd1d);
        for _ in 0..20_000 {
            let (mut h, mut last) = ([0u8; 20], 0);
            for b in h.iter_mut() {
                // The top byte of each number.
                last = next();
                *b = last.to_be_bytes()[4];
            }
            h[10..12].copy_from_slice(&[0, 0]);
            let c = checksum::checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            assert!(header_checksum_ok(&h, 20), "{h:02x?}");
            let bit = usize::try_from(last).unwrap() % 160;
            h[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(header_checksum_ok(&h, 20), checksum::checksum(&h) == 0, "{h:02x?}");
        }
        // A sum of zero folds to zero, not all ones (though a multiple of 0xffff).
        assert!(!header_checksum_ok(&[0; 20], 20));
        assert_ne!(checksum::checksum(&[0; 20]), 0);
    }

    #[test]
    fn a_decode_into_a_used_meta_leaves_nothing_of_the_one_before() {
        // Every kind of frame, in turns, into one `Meta`: each time what a fresh
        // decode gives.
        let mut bad_sum = ip_packet(6, &tcp(1, 2, 0x10), 0);
        bad_sum[10] ^= 1;
        let mut t = tcp(7, 8, 0x12);
        t[12] = 0x40;
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let mut v6 = vec![0u8; 12];
        v6.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 20, 6, 64]);
        v6.extend_from_slice(&[0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        v6.extend_from_slice(&[0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]);
        v6.extend_from_slice(&tcp(40000, 80, 0x02));
        let frames = [
            frame(&ip_packet(6, &tcp(5555, 80, 0x10), 0), false),
            frame(&ip_packet(17, &[0x14, 0xe9, 0, 53, 0, 8, 0, 0], 0), true),
            frame(&bad_sum, false),
            frame(&ip_packet(6, &t, 0), false),
            frame(&ip_packet(17, &[0, 1, 0, 2, 0, 9, 0, 0], FLAG_MF), false),
            frame(&ip_packet(6, &[0; 8], 0x0003), false),
            frame(&ip_packet(1, &[0; 8], 0), false),
            frame(&ip_packet(6, &[0; 12], 0), false),
            arp,
            v6,
            vec![0u8; 10],
        ];
        let hash6 = |t: &Tuple<Ipv6Addr>| u64::from(t.sport) << 8 | u64::from(t.daddr.octets()[15]);
        let hash = |t: &Tuple| u64::from(t.sport) << 16 | u64::from(t.dport);
        let mut m = Meta::default();
        for round in 0..3 {
            for (i, f) in frames.iter().enumerate().cycle().skip(round * 4).take(frames.len()) {
                decode_into(&mut m, f, false, hash, hash6);
                assert_eq!(m, decode(f, false, hash, hash6), "frame {i}, round {round}");
            }
        }
    }

    #[test]
    fn fragments_and_other_protocols_and_l2() {
        assert_eq!(decoded(&frame(&ip_packet(6, &[0; 8], 0x0003), false)).class, Class::Fragment);
        assert_eq!(decoded(&frame(&ip_packet(1, &[0; 8], FLAG_MF), false)).class, Class::Fragment);
        assert_eq!(decoded(&frame(&ip_packet(1, &[0; 8], 0), false)).class, Class::OtherIp);
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(decoded(&arp).class, Class::L2);
        assert_eq!(decoded(&[0u8; 10]).class, Class::L2);
    }

    #[test]
    fn ipv6_tcp_and_udp_are_decoded_once_and_the_rest_left_to_ipv6_input() {
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap().octets();
        let frame6 = |next: u8, l4: &[u8]| {
            let mut f = vec![0u8; 12];
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&u16::try_from(l4.len()).unwrap().to_be_bytes());
            f.extend_from_slice(&[next, 64]);
            f.extend_from_slice(&v6("2001:2::100"));
            f.extend_from_slice(&v6("2001:2::10"));
            f.extend_from_slice(l4);
            f
        };
        let mut tcp = [0u8; 20];
        tcp[..4].copy_from_slice(&[0x9c, 0x40, 0, 80]);
        tcp[12] = 0x50;
        tcp[13] = 0x02;
        let hash6 = |t: &Tuple<Ipv6Addr>| u64::from(t.sport) ^ u64::from(t.daddr.octets()[15]);
        let m = decode(&frame6(protocol::TCP, &tcp), false, |_| 0, hash6);
        assert_eq!(m.class, Class::Transport6);
        assert_eq!((m.l3, m.l4, m.proto, m.tcp_flags, m.ip_len), (14, 54, 6, 0x02, 60));
        assert_eq!((m.tuple.sport, m.tuple.dport, m.hash), (40000, 80, 40000 ^ 0x10));
        assert_eq!(m.tuple.saddr, fold6(&v6("2001:2::100")));
        // Extension headers, a bad data offset, a truncated payload: IPv6 input's.
        let mut bad = tcp;
        bad[12] = 0x40;
        for f in [
            frame6(60, &[6, 0, 0, 0, 0, 0, 0, 0]),
            frame6(protocol::TCP, &bad),
            frame6(protocol::TCP, &tcp)[..70].to_vec(),
        ] {
            assert_eq!(decode(&f, false, |_| 0, hash6).class, Class::L2);
        }
        let udp = [0x14, 0xe9, 0, 53, 0, 8, 0, 0];
        assert_eq!(decode(&frame6(protocol::UDP, &udp), false, |_| 0, hash6).class, Class::Transport6);
    }
}
