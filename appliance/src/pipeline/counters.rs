//! Per-worker counters: written by one lcore only (a relaxed load + store, no locked
//! instruction), read by the control lcore, which sums the workers'.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why the data plane dropped a packet. Every drop has exactly one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// Received on a port the pipeline does not know (configuration race).
    UnknownPort,
    /// Shorter than an Ethernet header (with its VLAN tag).
    L2Truncated,
    /// Our own source MAC: a frame we sent, seen again.
    LoopedBack,
    /// Unicast to another MAC address.
    OtherHost,
    /// An EtherType RVS does not handle.
    UnknownEthertype,
    /// The frame ends inside the 40-byte IPv6 header.
    Ipv6Truncated,
    /// EtherType IPv6 with another version in the header.
    Ipv6BadVersion,
    /// IPv6 payload length beyond the frame's end (padding after it is fine).
    Ipv6BadLength,
    /// An IPv6 extension header runs past the payload.
    Ipv6ExtTruncated,
    /// More IPv6 extension headers than the walk's bound (`ipv6::MAX_EXTENSION_HEADERS`).
    Ipv6ExtTooMany,
    /// A hop-by-hop header anywhere but first.
    Ipv6ExtMisplaced,
    /// ICMPv6 shorter than its header (or a neighbour message than its target).
    Icmpv6Truncated,
    /// ICMPv6 checksum (with the pseudo-header) does not verify.
    Icmpv6BadChecksum,
    /// ICMPv6 to an owned address of a type the appliance does not answer.
    Icmpv6Unhandled,
    /// A neighbour solicitation or advertisement failing RFC 4861's checks (hop limit
    /// not 255, code not 0, multicast target, malformed options, no link-layer address
    /// where one is required).
    NdInvalid,
    /// A neighbour solicitation for an address we do not own on that port.
    NdNotForUs,
    /// ARP that is not Ethernet/IPv4, or truncated.
    ArpMalformed,
    /// ARP request for an address we do not own on that port.
    ArpNotForUs,
    /// The frame ends inside the IPv4 header (before 20 bytes, or before IHL × 4).
    IpTruncated,
    /// EtherType IPv4 with another version in the header.
    IpBadVersion,
    /// IHL below 5, or a header longer than the total length.
    IpBadHeaderLen,
    /// Total length beyond the frame's end (padding after it is fine).
    IpBadTotalLength,
    /// IPv4 header checksum does not verify.
    IpBadChecksum,
    /// An IPv4 fragment RVS cannot place: a later fragment whose first fragment
    /// was not seen (or expired), or a fragment of a protocol other than TCP/UDP
    /// (no reassembly on the fast path; see `pipeline::frag`).
    IpFragment,
    /// IPv4 to an address the appliance does not own on that port.
    NotForUs,
    /// To an owned address, but no service or handler for it.
    NoService,
    /// ICMP shorter than its 8-byte header.
    IcmpTruncated,
    /// ICMP checksum does not verify.
    IcmpBadChecksum,
    /// ICMP to an owned address of a type we do not answer (redirects and
    /// parameter problems are not translated, as in the kernel's ip_vs_in_icmp).
    IcmpUnhandled,
    /// An ICMP error quoting a packet of no connection the director tracks.
    IcmpErrorUntracked,
    /// A multi-segment mbuf (the pipeline needs contiguous headers).
    MultiSegment,
    /// The NIC's TX queue was full: the rest of a burst was freed.
    TxFull,
    /// TCP shorter than its header (20 bytes, or the data offset's length).
    TcpTruncated,
    /// TCP data offset below 5.
    TcpBadDataOffset,
    /// UDP shorter than its 8-byte header.
    UdpTruncated,
    /// UDP length field below 8 or beyond the IP payload.
    UdpBadLength,
    /// TCP without SYN matching no connection (no sloppy TCP).
    NotSyn,
    /// The scheduler found no available real server.
    NoDest,
    /// The connection table is full.
    ConnTableFull,
    /// No connected network or route to the next hop.
    NoRoute,
    /// A forwarded packet's TTL ran out.
    TtlExceeded,
    /// Too big for the tunnel and DF not set (no fragmentation on the fast path).
    TunnelTooBig,
    /// No headroom to prepend a tunnel header.
    NoHeadroom,
    /// The next hop did not answer ARP in time.
    NeighUnresolved,
    /// Too many packets already waiting for ARP.
    HoldFull,
    /// The ring to the owning worker was full.
    RingFull,
    /// To an address a VRRP instance carries while it is not MASTER.
    Standby,
    /// For the kernel (a Local real server, VRRP advertisements) on a port with no
    /// kernel interface.
    NoKernel,
    /// Of a connection whose real server was taken out of its service (the kernel
    /// drops it; with `expire_nodest_conn` the connection ends and a SYN is
    /// scheduled anew).
    DestUnavailable,
}

impl DropReason {
    pub const COUNT: usize = DropReason::DestUnavailable as usize + 1;

    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::UnknownPort,
        DropReason::L2Truncated,
        DropReason::LoopedBack,
        DropReason::OtherHost,
        DropReason::UnknownEthertype,
        DropReason::Ipv6Truncated,
        DropReason::Ipv6BadVersion,
        DropReason::Ipv6BadLength,
        DropReason::Ipv6ExtTruncated,
        DropReason::Ipv6ExtTooMany,
        DropReason::Ipv6ExtMisplaced,
        DropReason::Icmpv6Truncated,
        DropReason::Icmpv6BadChecksum,
        DropReason::Icmpv6Unhandled,
        DropReason::NdInvalid,
        DropReason::NdNotForUs,
        DropReason::ArpMalformed,
        DropReason::ArpNotForUs,
        DropReason::IpTruncated,
        DropReason::IpBadVersion,
        DropReason::IpBadHeaderLen,
        DropReason::IpBadTotalLength,
        DropReason::IpBadChecksum,
        DropReason::IpFragment,
        DropReason::NotForUs,
        DropReason::NoService,
        DropReason::IcmpTruncated,
        DropReason::IcmpBadChecksum,
        DropReason::IcmpUnhandled,
        DropReason::IcmpErrorUntracked,
        DropReason::MultiSegment,
        DropReason::TxFull,
        DropReason::TcpTruncated,
        DropReason::TcpBadDataOffset,
        DropReason::UdpTruncated,
        DropReason::UdpBadLength,
        DropReason::NotSyn,
        DropReason::NoDest,
        DropReason::ConnTableFull,
        DropReason::NoRoute,
        DropReason::TtlExceeded,
        DropReason::TunnelTooBig,
        DropReason::NoHeadroom,
        DropReason::NeighUnresolved,
        DropReason::HoldFull,
        DropReason::RingFull,
        DropReason::Standby,
        DropReason::NoKernel,
        DropReason::DestUnavailable,
    ];

    /// The metric label: snake_case, stable.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::UnknownPort => "unknown_port",
            DropReason::L2Truncated => "l2_truncated",
            DropReason::LoopedBack => "looped_back",
            DropReason::OtherHost => "other_host",
            DropReason::UnknownEthertype => "unknown_ethertype",
            DropReason::Ipv6Truncated => "ipv6_truncated",
            DropReason::Ipv6BadVersion => "ipv6_bad_version",
            DropReason::Ipv6BadLength => "ipv6_bad_length",
            DropReason::Ipv6ExtTruncated => "ipv6_ext_truncated",
            DropReason::Ipv6ExtTooMany => "ipv6_ext_too_many",
            DropReason::Ipv6ExtMisplaced => "ipv6_ext_misplaced",
            DropReason::Icmpv6Truncated => "icmpv6_truncated",
            DropReason::Icmpv6BadChecksum => "icmpv6_bad_checksum",
            DropReason::Icmpv6Unhandled => "icmpv6_unhandled",
            DropReason::NdInvalid => "nd_invalid",
            DropReason::NdNotForUs => "nd_not_for_us",
            DropReason::ArpMalformed => "arp_malformed",
            DropReason::ArpNotForUs => "arp_not_for_us",
            DropReason::IpTruncated => "ip_truncated",
            DropReason::IpBadVersion => "ip_bad_version",
            DropReason::IpBadHeaderLen => "ip_bad_header_len",
            DropReason::IpBadTotalLength => "ip_bad_total_length",
            DropReason::IpBadChecksum => "ip_bad_checksum",
            DropReason::IpFragment => "ip_fragment",
            DropReason::NotForUs => "not_for_us",
            DropReason::NoService => "no_service",
            DropReason::IcmpTruncated => "icmp_truncated",
            DropReason::IcmpBadChecksum => "icmp_bad_checksum",
            DropReason::IcmpUnhandled => "icmp_unhandled",
            DropReason::IcmpErrorUntracked => "icmp_error_untracked",
            DropReason::MultiSegment => "multi_segment",
            DropReason::TxFull => "tx_full",
            DropReason::TcpTruncated => "tcp_truncated",
            DropReason::TcpBadDataOffset => "tcp_bad_data_offset",
            DropReason::UdpTruncated => "udp_truncated",
            DropReason::UdpBadLength => "udp_bad_length",
            DropReason::NotSyn => "not_syn",
            DropReason::NoDest => "no_dest",
            DropReason::ConnTableFull => "conn_table_full",
            DropReason::NoRoute => "no_route",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::TunnelTooBig => "tunnel_too_big",
            DropReason::NoHeadroom => "no_headroom",
            DropReason::NeighUnresolved => "neigh_unresolved",
            DropReason::HoldFull => "hold_full",
            DropReason::RingFull => "ring_full",
            DropReason::Standby => "standby",
            DropReason::NoKernel => "no_kernel",
            DropReason::DestUnavailable => "dest_unavailable",
        }
    }
}

/// One value per drop reason, indexed by `reason as usize` (arrays this long have
/// no `Default` of their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerReason<T>(pub [T; DropReason::COUNT]);

impl<T: Default> Default for PerReason<T> {
    fn default() -> Self {
        PerReason(std::array::from_fn(|_| T::default()))
    }
}

impl<T> std::ops::Deref for PerReason<T> {
    type Target = [T; DropReason::COUNT];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T> std::ops::DerefMut for PerReason<T> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// One single-writer counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning lcore may call this (single writer), which is why a
    /// plain load + store suffices.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed)
    }
    #[inline]
    pub fn inc(&self) {
        self.add(1)
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Raises a high-water mark to `v` (the owning lcore only).
    #[inline]
    pub fn raise(&self, v: u64) {
        if v > self.0.load(Ordering::Relaxed) {
            self.0.store(v, Ordering::Relaxed)
        }
    }
    /// Reads a high-water mark and starts it again from 0 (the reader's side). A
    /// value the owner raises at that very moment may land after the reset: it is
    /// then the next window's, never lost.
    pub fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
    /// Stores a level (a gauge written by one lcore).
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed)
    }
}

/// A worker's counters, on their own cache lines.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Counters {
    pub rx_packets: Counter,
    /// RX bursts that brought at least one packet (rx_packets / rx_bursts is the
    /// average burst: small bursts mean the worker keeps up with its input).
    pub rx_bursts: Counter,
    pub tx_packets: Counter,
    pub arp_replies: Counter,
    /// Neighbour advertisements sent in answer to solicitations.
    pub nd_adverts: Counter,
    pub neigh_learned: Counter,
    pub neigh_table_full: Counter,
    pub icmp_echo_replies: Counter,
    pub conns_created: Counter,
    /// Half-open connections evicted from a full table (SYN flood defence).
    pub conns_evicted: Counter,
    pub lvs_in_packets: Counter,
    pub lvs_out_packets: Counter,
    pub icmp_related: Counter,
    pub icmp_frag_needed_sent: Counter,
    pub held_for_arp: Counter,
    pub arp_requests: Counter,
    /// Buffers the worker could not get from its mempool for frames it makes
    /// (ARP requests): the pool was exhausted.
    pub alloc_failed: Counter,
    /// Packets handed to the worker that owns them.
    pub redirected: Counter,
    /// Packets handed to the kernel (exception path), and taken from it.
    pub to_host: Counter,
    pub from_host: Counter,
    /// Connection sync: entries handed to the control lcore, entries the ring had
    /// no room for, synced entries entered into the table, and refused ones.
    pub sync_queued: Counter,
    pub sync_ring_full: Counter,
    pub sync_applied: Counter,
    pub sync_refused: Counter,
    /// TSC cycles of loop iterations that found work, and of all iterations.
    pub busy_cycles: Counter,
    pub loop_cycles: Counter,
    /// The longest loop iteration (TSC cycles) since the control lcore last took
    /// it: the longest the worker's RX queues went unpolled.
    pub longest_loop_cycles: Counter,
    /// The longest the control plane's work (a configuration slice, a request)
    /// held the worker in one iteration, since the control lcore last took it.
    pub longest_control_cycles: Counter,
    /// Entries in the worker's connection table (a level).
    pub conn_table_len: Counter,
    drops: PerReason<Counter>,
}

/// A plain copy of `Counters`, for reading and summing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub rx_packets: u64,
    pub rx_bursts: u64,
    pub tx_packets: u64,
    pub arp_replies: u64,
    pub nd_adverts: u64,
    pub neigh_learned: u64,
    pub neigh_table_full: u64,
    pub icmp_echo_replies: u64,
    pub conns_created: u64,
    pub conns_evicted: u64,
    pub lvs_in_packets: u64,
    pub lvs_out_packets: u64,
    pub icmp_related: u64,
    pub icmp_frag_needed_sent: u64,
    pub held_for_arp: u64,
    pub arp_requests: u64,
    pub alloc_failed: u64,
    pub redirected: u64,
    pub to_host: u64,
    pub from_host: u64,
    pub sync_queued: u64,
    pub sync_ring_full: u64,
    pub sync_applied: u64,
    pub sync_refused: u64,
    pub busy_cycles: u64,
    pub loop_cycles: u64,
    pub longest_loop_cycles: u64,
    pub longest_control_cycles: u64,
    pub conn_table_len: u64,
    pub drops: PerReason<u64>,
}

impl Counters {
    #[inline]
    pub fn count_drop(&self, reason: DropReason) {
        self.drops[reason as usize].inc()
    }
    #[inline]
    pub fn drop_n(&self, reason: DropReason, n: u64) {
        self.drops[reason as usize].add(n)
    }

    pub fn snapshot(&self) -> CountersSnapshot {
        let mut drops = PerReason::<u64>::default();
        for (d, c) in drops.iter_mut().zip(self.drops.iter()) {
            *d = c.get();
        }
        CountersSnapshot {
            rx_packets: self.rx_packets.get(),
            rx_bursts: self.rx_bursts.get(),
            tx_packets: self.tx_packets.get(),
            arp_replies: self.arp_replies.get(),
            nd_adverts: self.nd_adverts.get(),
            neigh_learned: self.neigh_learned.get(),
            neigh_table_full: self.neigh_table_full.get(),
            icmp_echo_replies: self.icmp_echo_replies.get(),
            conns_created: self.conns_created.get(),
            conns_evicted: self.conns_evicted.get(),
            lvs_in_packets: self.lvs_in_packets.get(),
            lvs_out_packets: self.lvs_out_packets.get(),
            icmp_related: self.icmp_related.get(),
            icmp_frag_needed_sent: self.icmp_frag_needed_sent.get(),
            held_for_arp: self.held_for_arp.get(),
            arp_requests: self.arp_requests.get(),
            alloc_failed: self.alloc_failed.get(),
            redirected: self.redirected.get(),
            to_host: self.to_host.get(),
            from_host: self.from_host.get(),
            sync_queued: self.sync_queued.get(),
            sync_ring_full: self.sync_ring_full.get(),
            sync_applied: self.sync_applied.get(),
            sync_refused: self.sync_refused.get(),
            busy_cycles: self.busy_cycles.get(),
            loop_cycles: self.loop_cycles.get(),
            longest_loop_cycles: self.longest_loop_cycles.get(),
            longest_control_cycles: self.longest_control_cycles.get(),
            conn_table_len: self.conn_table_len.get(),
            drops,
        }
    }
}

impl CountersSnapshot {
    /// Adds another worker's counters into this one.
    pub fn accumulate(&mut self, o: &CountersSnapshot) {
        self.rx_packets += o.rx_packets;
        self.rx_bursts += o.rx_bursts;
        self.tx_packets += o.tx_packets;
        self.arp_replies += o.arp_replies;
        self.nd_adverts += o.nd_adverts;
        self.neigh_learned += o.neigh_learned;
        self.neigh_table_full += o.neigh_table_full;
        self.icmp_echo_replies += o.icmp_echo_replies;
        self.conns_created += o.conns_created;
        self.conns_evicted += o.conns_evicted;
        self.lvs_in_packets += o.lvs_in_packets;
        self.lvs_out_packets += o.lvs_out_packets;
        self.icmp_related += o.icmp_related;
        self.icmp_frag_needed_sent += o.icmp_frag_needed_sent;
        self.held_for_arp += o.held_for_arp;
        self.arp_requests += o.arp_requests;
        self.alloc_failed += o.alloc_failed;
        self.redirected += o.redirected;
        self.to_host += o.to_host;
        self.from_host += o.from_host;
        self.sync_queued += o.sync_queued;
        self.sync_ring_full += o.sync_ring_full;
        self.sync_applied += o.sync_applied;
        self.sync_refused += o.sync_refused;
        self.busy_cycles += o.busy_cycles;
        self.loop_cycles += o.loop_cycles;
        self.longest_loop_cycles = self.longest_loop_cycles.max(o.longest_loop_cycles);
        self.longest_control_cycles = self.longest_control_cycles.max(o.longest_control_cycles);
        self.conn_table_len += o.conn_table_len;
        for (a, b) in self.drops.iter_mut().zip(o.drops.iter()) {
            *a += b;
        }
    }

    /// `name=value` pairs of the non-zero counters, for logs.
    pub fn summary(&self) -> String {
        let mut parts = vec![
            format!("rx={}", self.rx_packets),
            format!("tx={}", self.tx_packets),
            format!("arp_replies={}", self.arp_replies),
            format!("icmp_echo_replies={}", self.icmp_echo_replies),
            format!("neigh_learned={}", self.neigh_learned),
            format!("conns_created={}", self.conns_created),
            format!("lvs_in={}", self.lvs_in_packets),
            format!("lvs_out={}", self.lvs_out_packets),
        ];
        for (name, v) in [
            ("nd_adverts", self.nd_adverts),
            ("conns_evicted", self.conns_evicted),
            ("icmp_related", self.icmp_related),
            ("icmp_frag_needed_sent", self.icmp_frag_needed_sent),
            ("held_for_arp", self.held_for_arp),
            ("arp_requests", self.arp_requests),
            ("alloc_failed", self.alloc_failed),
            ("redirected", self.redirected),
            ("to_host", self.to_host),
            ("from_host", self.from_host),
            ("sync_queued", self.sync_queued),
            ("sync_ring_full", self.sync_ring_full),
            ("sync_applied", self.sync_applied),
            ("sync_refused", self.sync_refused),
        ] {
            if v > 0 {
                parts.push(format!("{name}={v}"));
            }
        }
        for r in DropReason::ALL {
            let n = self.drops[r as usize];
            if n > 0 {
                parts.push(format!("drop_{}={n}", r.name()));
            }
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_in_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let names: std::collections::HashSet<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn snapshot_and_accumulate() {
        let c = Counters::default();
        c.rx_packets.add(3);
        c.count_drop(DropReason::Ipv6Truncated);
        c.drop_n(DropReason::TxFull, 5);
        let mut total = c.snapshot();
        total.accumulate(&c.snapshot());
        assert_eq!(total.rx_packets, 6);
        assert_eq!(total.drops[DropReason::TxFull as usize], 10);
        assert!(total.summary().contains("drop_ipv6_truncated=2"));
        assert!(std::mem::align_of::<Counters>() >= 64);
    }

    #[test]
    fn a_high_water_mark_rises_and_starts_again_when_taken() {
        let c = Counters::default();
        for v in [5, 9, 3] {
            c.longest_loop_cycles.raise(v);
        }
        let mut a = c.snapshot();
        assert_eq!(a.longest_loop_cycles, 9);
        assert_eq!(c.longest_loop_cycles.take(), 9);
        c.longest_loop_cycles.raise(2);
        assert_eq!(c.longest_loop_cycles.take(), 2, "a new window");
        // Summed over workers, the longest of them.
        let mut b = c.snapshot();
        b.longest_loop_cycles = 4;
        a.accumulate(&b);
        assert_eq!(a.longest_loop_cycles, 9);
    }
}
