//! ARP: answering for owned addresses, and the neighbour tables (IPv4 or IPv6 ->
//! MAC, port; IPv6's neighbour discovery is in `nd`).
//!
//! Learning follows Linux: a request addressed to one of our addresses creates (or
//! refreshes) the sender's entry; any ARP from a sender we already know refreshes it;
//! a reply addressed to us creates it. Only senders on one of the receiving port's
//! connected networks are learned, and static entries from the configuration are
//! never overwritten. The table has a fixed capacity, so learning never allocates.

use super::counters::{Counters, DropReason};
use super::{PortView, Verdict};
use crate::net::arp::{self, Operation};
use crate::net::ethernet::{self, EthernetAddress};
use core::hash::Hash;
use hashbrown::HashMap;
use std::net::{IpAddr, Ipv4Addr};

/// One neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    pub mac: EthernetAddress,
    /// Port index the neighbour was seen on.
    pub port: u16,
    /// Worker clock (ms) of the last confirmation.
    pub updated_ms: u64,
    /// From the configuration: never replaced by learning.
    pub is_static: bool,
}

/// A fixed-capacity neighbour table, of IPv4 (ARP) or IPv6 (neighbour discovery)
/// addresses.
pub struct NeighbourTable<A = Ipv4Addr> {
    map: HashMap<A, Neighbour>,
    capacity: usize,
    /// Moves when an entry's MAC or port changes (what caches of it check).
    generation: u64,
}

/// Outcome of offering the table a (address, MAC) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    Created,
    /// Known, and now at another MAC or port.
    Moved,
    Refreshed,
    /// A static entry exists; nothing changed.
    Static,
    Full,
}

impl<A: Copy + Eq + Hash> NeighbourTable<A> {
    /// A table that holds at most `capacity` entries; the memory is taken now.
    pub fn with_capacity(capacity: usize) -> NeighbourTable<A> {
        NeighbourTable { map: HashMap::with_capacity(capacity), capacity, generation: 0 }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The most entries it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Changes whenever a known entry's MAC or port does (a new entry changes
    /// nothing cached: only found entries are).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn lookup(&self, a: A) -> Option<&Neighbour> {
        self.map.get(&a)
    }

    /// Adds a static entry (configuration). Returns false when the table is full.
    pub fn insert_static(&mut self, a: A, mac: EthernetAddress, port: u16) -> bool {
        if self.map.len() >= self.capacity && !self.map.contains_key(&a) {
            return false;
        }
        self.map.insert(a, Neighbour { mac, port, updated_ms: 0, is_static: true });
        self.generation += 1;
        true
    }

    /// Refreshes an existing dynamic entry; with `create`, adds a missing one.
    pub fn learn(&mut self, a: A, mac: EthernetAddress, port: u16, now_ms: u64, create: bool) -> Option<Learned> {
        if let Some(n) = self.map.get_mut(&a) {
            if n.is_static {
                return Some(Learned::Static);
            }
            let moved = n.mac != mac || n.port != port;
            *n = Neighbour { mac, port, updated_ms: now_ms, is_static: false };
            if moved {
                self.generation += 1;
            }
            return Some(if moved { Learned::Moved } else { Learned::Refreshed });
        }
        if !create {
            return None;
        }
        if self.map.len() >= self.capacity {
            return Some(Learned::Full);
        }
        self.map.insert(a, Neighbour { mac, port, updated_ms: now_ms, is_static: false });
        Some(Learned::Created)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&A, &Neighbour)> {
        self.map.iter()
    }
}

/// Length of an ARP request frame, padded to the Ethernet minimum.
pub const REQUEST_FRAME_LEN: usize = 60;

/// Writes an ARP request "who has `target`, tell `src_ip`" from `src_mac` into
/// `out` (at least `REQUEST_FRAME_LEN` bytes, broadcast, zero-padded). Returns the
/// frame length.
pub fn build_request(out: &mut [u8], src_mac: EthernetAddress, src_ip: Ipv4Addr, target: Ipv4Addr) -> usize {
    let out = &mut out[..REQUEST_FRAME_LEN];
    out.fill(0);
    let mut f = ethernet::Frame::new_unchecked(&mut *out);
    f.set_dst_addr(EthernetAddress::BROADCAST);
    f.set_src_addr(src_mac);
    out[12..14].copy_from_slice(&ethernet::ethertype::ARP.to_be_bytes());
    arp::Repr {
        operation: Operation::Request,
        source_hardware_addr: src_mac,
        source_protocol_addr: src_ip,
        target_hardware_addr: EthernetAddress::ZERO,
        target_protocol_addr: target,
    }
    .emit(&mut arp::Packet::new_unchecked(&mut out[ethernet::HEADER_LEN..]));
    REQUEST_FRAME_LEN
}

/// A neighbour learned (or moved) on one worker, for the others to learn too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighUpdate {
    pub addr: IpAddr,
    pub mac: EthernetAddress,
    pub port: u16,
}

/// Updates waiting to be told to the other workers (fixed capacity: when full, the
/// others learn by their own ARP instead).
#[derive(Debug, Default)]
pub struct Updates {
    buf: [Option<NeighUpdate>; 16],
    len: usize,
}

impl Updates {
    pub fn push(&mut self, u: NeighUpdate) {
        if self.len < self.buf.len() {
            self.buf[self.len] = Some(u);
            self.len += 1;
        }
    }

    /// Takes every pending update.
    pub fn drain(&mut self) -> impl Iterator<Item = NeighUpdate> + '_ {
        let n = std::mem::take(&mut self.len);
        self.buf[..n].iter_mut().filter_map(Option::take)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Handles an ARP packet at offset `l3` of `frame`, received on `port`.
#[allow(clippy::too_many_arguments)]
pub fn handle_arp(
    view: &PortView,
    ownership: &super::owner::Ownership,
    port: u16,
    table: &mut NeighbourTable,
    updates: &mut Updates,
    counters: &Counters,
    frame: &mut [u8],
    l3: usize,
    now_ms: u64,
) -> Verdict {
    let Ok(pkt) = arp::Packet::new_checked(&frame[l3..]) else {
        return Verdict::Drop(DropReason::ArpMalformed);
    };
    let (op, sha, spa, tpa) =
        (pkt.operation(), pkt.sender_hardware_addr(), pkt.sender_protocol_addr(), pkt.target_protocol_addr());
    // A carried address is answered for only while its instance is MASTER; a
    // hidden one never.
    let for_us = view.owns(tpa) || (!ownership.is_empty() && ownership.master_on(tpa, port));
    let learnable = sha.is_unicast() && !spa.is_unspecified() && view.is_connected(spa) && !view.owns(spa);
    if learnable {
        let create = for_us && matches!(op, Operation::Request | Operation::Reply);
        match table.learn(spa, sha, port, now_ms, create) {
            Some(Learned::Created) => {
                counters.neigh_learned.inc();
                updates.push(NeighUpdate { addr: IpAddr::V4(spa), mac: sha, port });
            }
            Some(Learned::Moved) => updates.push(NeighUpdate { addr: IpAddr::V4(spa), mac: sha, port }),
            Some(Learned::Full) => counters.neigh_table_full.inc(),
            _ => {}
        }
    }
    match op {
        Operation::Request if for_us => {
            let Ok(mut pkt) = arp::Packet::new_checked(&mut frame[l3..]) else {
                return Verdict::Drop(DropReason::ArpMalformed);
            };
            pkt.make_reply(view.mac);
            ethernet::Frame::new_unchecked(&mut *frame).reflect(view.mac);
            counters.arp_replies.inc();
            Verdict::Transmit(port)
        }
        Operation::Request => Verdict::Drop(DropReason::ArpNotForUs),
        _ => Verdict::Consumed,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::net::arp::Repr;
    use etherparse::{ArpOperation, SlicedPacket};

    fn arp_frame(op: Operation, dst: EthernetAddress, sha: EthernetAddress, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
        let mut b = [0u8; arp::PACKET_LEN];
        Repr {
            operation: op,
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_hardware_addr: EthernetAddress::ZERO,
            target_protocol_addr: tpa,
        }
        .emit(&mut arp::Packet::new_unchecked(&mut b[..]));
        let mut f = eth(dst, sha, ethernet::ethertype::ARP, &b);
        f.resize(60, 0); // minimum frame, padded as on the wire
        f
    }

    #[test]
    fn the_generation_moves_only_when_a_known_entry_does() {
        let mut t = NeighbourTable::with_capacity(4);
        let (a, mac, other) = (CLIENT, CLIENT_MAC, EthernetAddress([2, 0, 0, 0, 0, 9]));
        let g = t.generation();
        assert_eq!(t.learn(a, mac, 0, 1, true), Some(Learned::Created));
        assert_eq!(t.learn(a, mac, 0, 2, true), Some(Learned::Refreshed));
        assert_eq!(t.generation(), g, "created and refreshed: nothing cached is wrong");
        assert_eq!(t.learn(a, other, 0, 3, true), Some(Learned::Moved));
        assert_ne!(t.generation(), g, "moved");
        let g = t.generation();
        assert_eq!(t.learn(a, other, 1, 4, true), Some(Learned::Moved), "another port");
        assert_ne!(t.generation(), g);
    }

    #[test]
    fn request_for_owned_address_is_answered_in_place() {
        let mut p = pipeline();
        let mut f = arp_frame(Operation::Request, EthernetAddress::BROADCAST, CLIENT_MAC, CLIENT, VIP);
        assert_eq!(p.process(0, &mut f, 5), Verdict::Transmit(0));
        // Independent parser: a well-formed ARP reply from the port's MAC.
        let parsed = SlicedPacket::from_ethernet(&f).expect("parses");
        let etherparse::LinkSlice::Ethernet2(eth) = parsed.link.expect("link") else { panic!("not ethernet") };
        assert_eq!(eth.source(), PORT_MAC.0);
        assert_eq!(eth.destination(), CLIENT_MAC.0);
        let Some(etherparse::NetSlice::Arp(arp)) = parsed.net else { panic!("not arp: {:?}", parsed.net) };
        assert_eq!(arp.operation(), ArpOperation::REPLY);
        assert_eq!(arp.sender_hw_addr(), &PORT_MAC.0[..]);
        assert_eq!(arp.sender_protocol_addr(), &VIP.octets()[..]);
        assert_eq!(arp.target_hw_addr(), &CLIENT_MAC.0[..]);
        assert_eq!(arp.target_protocol_addr(), &CLIENT.octets()[..]);
        // The requester was learned, and the other workers are to be told.
        let n = p.neigh.lookup(CLIENT).expect("learned");
        assert_eq!((n.mac, n.port, n.updated_ms), (CLIENT_MAC, 0, 5));
        let told: Vec<_> = p.neigh_updates.drain().collect();
        assert_eq!(told, vec![NeighUpdate { addr: IpAddr::V4(CLIENT), mac: CLIENT_MAC, port: 0 }]);
        assert!(p.neigh_updates.is_empty());
        let c = p.counters.snapshot();
        assert_eq!((c.arp_replies, c.neigh_learned), (1, 1));
    }

    #[test]
    fn request_for_other_address_is_dropped_and_not_learned() {
        let mut p = pipeline();
        let other = Ipv4Addr::new(198, 18, 0, 77);
        let mut f = arp_frame(Operation::Request, EthernetAddress::BROADCAST, CLIENT_MAC, CLIENT, other);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::ArpNotForUs));
        assert!(p.neigh.is_empty());
        // The DIP (port 1) is not answered on port 0.
        let dip = Ipv4Addr::new(198, 18, 1, 1);
        let mut f = arp_frame(Operation::Request, EthernetAddress::BROADCAST, CLIENT_MAC, CLIENT, dip);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::ArpNotForUs));
    }

    #[test]
    fn reply_to_us_is_learned_and_consumed() {
        let mut p = pipeline();
        let mut f = arp_frame(Operation::Reply, PORT_MAC, CLIENT_MAC, CLIENT, VIP);
        assert_eq!(p.process(0, &mut f, 9), Verdict::Consumed);
        assert_eq!(p.neigh.lookup(CLIENT).map(|n| n.mac), Some(CLIENT_MAC));
    }

    #[test]
    fn gratuitous_arp_refreshes_only_known_neighbours() {
        let mut p = pipeline();
        let new_mac = EthernetAddress([0x02, 0xc1, 0, 0, 0, 0x99]);
        let mut garp = arp_frame(Operation::Request, EthernetAddress::BROADCAST, new_mac, CLIENT, CLIENT);
        assert_eq!(p.process(0, &mut garp.clone(), 1), Verdict::Drop(DropReason::ArpNotForUs));
        assert!(p.neigh.lookup(CLIENT).is_none(), "unknown sender: not created");
        p.neigh.learn(CLIENT, CLIENT_MAC, 0, 1, true);
        p.process(0, &mut garp, 2);
        assert_eq!(p.neigh.lookup(CLIENT).map(|n| n.mac), Some(new_mac), "known sender: refreshed");
    }

    #[test]
    fn off_subnet_and_static_entries_are_not_overwritten() {
        let mut p = pipeline();
        let stranger = Ipv4Addr::new(203, 0, 113, 1);
        let mut f = arp_frame(Operation::Request, EthernetAddress::BROADCAST, CLIENT_MAC, stranger, VIP);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Transmit(0), "still answered");
        assert!(p.neigh.lookup(stranger).is_none(), "not on a connected network: not learned");
        let fixed = EthernetAddress([0x02, 0, 0, 0, 0, 0x55]);
        assert!(p.neigh.insert_static(CLIENT, fixed, 0));
        let mut f = arp_frame(Operation::Request, EthernetAddress::BROADCAST, CLIENT_MAC, CLIENT, VIP);
        p.process(0, &mut f, 0);
        assert_eq!(p.neigh.lookup(CLIENT).map(|n| (n.mac, n.is_static)), Some((fixed, true)));
    }

    #[test]
    fn full_table_counts_and_does_not_grow() {
        let mut p = pipeline();
        for i in 0..4u8 {
            assert_eq!(
                p.neigh.learn(Ipv4Addr::new(198, 18, 0, 200 + i), CLIENT_MAC, 0, 0, true),
                Some(Learned::Created)
            );
        }
        let mut f = arp_frame(Operation::Request, EthernetAddress::BROADCAST, CLIENT_MAC, CLIENT, VIP);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Transmit(0), "answered even when full");
        assert_eq!(p.neigh.len(), 4);
        assert_eq!(p.counters.snapshot().neigh_table_full, 1);
    }

    #[test]
    fn request_builder_makes_what_the_parser_answers() {
        let mut out = [0xaau8; 64];
        let n = build_request(&mut out, CLIENT_MAC, CLIENT, VIP);
        assert_eq!(n, 60);
        let parsed = SlicedPacket::from_ethernet(&out[..n]).unwrap();
        let Some(etherparse::NetSlice::Arp(a)) = parsed.net else { panic!() };
        assert_eq!(a.operation(), ArpOperation::REQUEST);
        assert_eq!(a.target_protocol_addr(), &VIP.octets()[..]);
        // And the pipeline answers it.
        let mut p = pipeline();
        let mut f = out[..n].to_vec();
        assert_eq!(p.process(0, &mut f, 0), Verdict::Transmit(0));
    }

    #[test]
    fn malformed_arp() {
        let mut p = pipeline();
        let mut f = arp_frame(Operation::Request, EthernetAddress::BROADCAST, CLIENT_MAC, CLIENT, VIP);
        f[14 + 5] = 16;
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::ArpMalformed));
        let mut f = eth(EthernetAddress::BROADCAST, CLIENT_MAC, ethernet::ethertype::ARP, &[0, 1, 8, 0]);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::ArpMalformed));
    }
}
