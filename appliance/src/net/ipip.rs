//! IP-in-IP (RFC 2003): an outer IPv4 header with protocol 4 around an IPv4 packet.
//! The director encapsulates (TUN forwarding); a real server, or the labs'
//! user-space decapsulator, takes the inner packet out.

use super::ipv4::{self, protocol};
use super::{Error, Result};

/// Bytes the outer header adds (RVS writes it without options).
pub const OVERHEAD: usize = ipv4::HEADER_LEN;

/// The inner packet of an IPIP packet (`outer` is the whole outer IPv4 packet).
/// Checks the outer header, its protocol and the inner header's length.
pub fn inner(outer: &[u8]) -> Result<ipv4::Packet<&[u8]>> {
    let o = ipv4::Packet::new_checked(outer)?;
    if o.protocol() != protocol::IPIP {
        return Err(Error::Malformed);
    }
    let start = o.header_len();
    let end = usize::from(o.total_len());
    ipv4::Packet::new_checked(&outer[start..end])
}

/// Writes the outer header for `inner_len` bytes of inner packet into `out[..20]`:
/// `src -> dst`, protocol 4, TTL `ttl`; DF, TOS and identification copied from the
/// inner header (`inner`, at least its first 20 bytes).
pub fn write_outer(out: &mut [u8], inner: &[u8], src: std::net::Ipv4Addr, dst: std::net::Ipv4Addr, ttl: u8) {
    let i = ipv4::Packet::new_unchecked(inner);
    let (inner_len, dont_frag, tos, ident) = (usize::from(i.total_len()), i.dont_frag(), i.dscp_ecn(), i.ident());
    let mut o = ipv4::Packet::new_unchecked(&mut out[..OVERHEAD]);
    ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: protocol::IPIP,
        payload_len: inner_len,
        ttl,
        ident,
        dont_frag,
    }
    .emit(&mut o);
    o.set_dscp_ecn(tos);
    o.fill_checksum();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn wrap_and_unwrap() {
        let mut inner = vec![0u8; 28];
        ipv4::Repr {
            src_addr: Ipv4Addr::new(198, 18, 0, 100),
            dst_addr: Ipv4Addr::new(198, 18, 0, 10),
            protocol: 6,
            payload_len: 8,
            ttl: 64,
            ident: 0x77,
            dont_frag: true,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut inner[..]));
        inner[1] = 0xb8; // DSCP EF
        ipv4::Packet::new_unchecked(&mut inner[..]).fill_checksum();
        let mut pkt = vec![0u8; OVERHEAD];
        write_outer(&mut pkt, &inner, Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 11), 64);
        pkt.extend_from_slice(&inner);
        let o = ipv4::Packet::new_checked(&pkt[..]).unwrap();
        assert!(o.verify_checksum());
        assert_eq!((o.protocol(), o.total_len(), o.ident(), o.dont_frag(), o.dscp_ecn()), (4, 48, 0x77, true, 0xb8));
        let i = inner_of(&pkt);
        assert_eq!(i.dst_addr(), Ipv4Addr::new(198, 18, 0, 10));
        pkt[9] = 6;
        assert_eq!(super::inner(&pkt).unwrap_err(), Error::Malformed);
    }

    fn inner_of(p: &[u8]) -> ipv4::Packet<&[u8]> {
        inner(p).unwrap()
    }
}
