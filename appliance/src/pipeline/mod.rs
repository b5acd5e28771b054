//! The stages a packet walks on a worker, on byte buffers so they run in tests
//! without DPDK: steering to the worker that owns it and the burst around it
//! (`burst`), L2 input (ARP answers and learning), then for IPv4 the LVS stages
//! (fwmark classifier -> connection lookup -> service -> persistence -> schedule ->
//! transmit by NAT, DR or TUN, `xmit`), ICMP errors about tracked connections, and
//! ICMP echo to owned addresses.
//!
//! A frame is processed in place and gets a `Verdict`: transmit it on a port, hold
//! it until its next hop answers ARP, it was consumed (learned from), or drop it for
//! a counted reason. No allocation, no panic.

pub mod burst;
pub mod counters;
pub mod frag;
pub mod icmp;
pub mod meta;
pub mod nd;
pub mod neigh;
pub mod owner;
pub mod route;
pub mod steer;
pub mod xmit;
pub mod xmit6;

use crate::ipvs::director::Director;
use crate::ipvs::fwmark::Classifier;
use crate::ipvs::service::ServiceTable;
use crate::net::ethernet::{self, EthernetAddress};
use crate::net::ipv4::{self, Ipv4Cidr};
use crate::net::ipv6::{self, Ipv6Cidr};
use crate::net::PacketBuf;
use counters::{Counters, DropReason};
use meta::{Class, Meta};
use neigh::NeighbourTable;
use route::Route;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use steer::Steering;

/// What to do with a frame after the pipeline has seen (and maybe rewritten) it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the (rewritten) frame out of this port index.
    Transmit(u16),
    /// Rewritten for `port` except the destination MAC: hold it until `next_hop`
    /// answers ARP (ask it from `src`, the port's address on that network).
    Hold { port: u16, next_hop: Ipv4Addr, src: Ipv4Addr },
    /// As `Hold`, until an IPv6 next hop answers a neighbour solicitation: the one
    /// `Pipeline::held_hop6(hop)` names (kept aside so a verdict stays small).
    Hold6 { port: u16, hop: u16 },
    /// The pipeline used the frame (e.g. learned a neighbour); free it, no drop.
    Consumed,
    /// Drop and count.
    Drop(DropReason),
}

/// A MAC address as the low 48 bits of a little-endian word (what the 8 bytes it
/// starts read as, the other two masked off).
#[inline(always)]
fn mac_word(mac: &[u8; 6]) -> u64 {
    let [a, b, c, d, e, f] = *mac;
    u64::from_le_bytes([a, b, c, d, e, f, 0, 0])
}

/// `Pipeline::macs` of a port whose frames never take the established path: no
/// MAC's word (48 bits) is it.
const NOT_ESTABLISHED: u64 = u64::MAX;

/// Next hops `Verdict::Hold6`s name (two bursts' worth).
const HELD6: usize = 2 * burst::BURST;

/// What the pipeline knows about one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortView {
    pub mac: EthernetAddress,
    /// Addresses the appliance owns on this port (VIPs, DIP), with their prefixes:
    /// the prefixes are the port's connected networks.
    pub addresses: Vec<Ipv4Cidr>,
    /// Its IPv6 prefixes (the port's link-local address, from its MAC, is owned
    /// besides).
    pub addresses6: Vec<Ipv6Cidr>,
    pub mtu: u16,
    /// The exception path: for a DPDK port, the index of its kernel (tap) port;
    /// for a kernel port, the DPDK port it stands for.
    pub host: Host,
}

/// A port's role in the exception path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Host {
    /// No kernel interface.
    #[default]
    None,
    /// A DPDK port whose kernel interface is port `0`.
    Via(u16),
    /// The kernel interface of DPDK port `0`: what the kernel sends leaves there.
    For(u16),
}

impl PortView {
    /// The appliance owns `a` on this port.
    pub fn owns(&self, a: Ipv4Addr) -> bool {
        self.addresses.iter().any(|c| c.address() == a)
    }

    /// `a` lies on one of this port's connected networks.
    pub fn is_connected(&self, a: Ipv4Addr) -> bool {
        self.addresses.iter().any(|c| c.contains(a))
    }

    /// The appliance owns IPv6 `a` on this port: one of its addresses, or its
    /// link-local one.
    pub fn owns6(&self, a: Ipv6Addr) -> bool {
        self.addresses6.iter().any(|c| c.address() == a)
            || (a.is_unicast_link_local() && a == ipv6::link_local(self.mac))
    }

    /// IPv6 `a` is on-link here: on one of the port's prefixes, or link-local.
    pub fn is_connected6(&self, a: Ipv6Addr) -> bool {
        self.addresses6.iter().any(|c| c.contains(a)) || a.is_unicast_link_local()
    }
}

/// One worker's pipeline: the ports it serves, routes, its neighbour table, its LVS
/// state and its counters. Owned by one lcore; nothing in it is shared for writing.
pub struct Pipeline {
    ports: Vec<PortView>,
    /// Each port's MAC as a word (`mac_word`) where its traffic may take the
    /// established path, `NOT_ESTABLISHED` on a kernel interface's port.
    macs: Vec<u64>,
    /// The connected networks and static routes, compiled.
    fib: route::Fib,
    /// The last egress and next-hop MAC of recent destinations.
    hops: route::HopCache,
    /// IPv6 static routes, longest prefix first.
    routes6: Vec<xmit6::Route6>,
    /// The next hops of recent `Verdict::Hold6`s (a ring longer than a burst, so
    /// the worker reads a burst's before they are reused).
    held6: [Ipv6Addr; HELD6],
    held6_next: u16,
    /// The last egress and next-hop MAC of recent IPv6 destinations.
    hops6: xmit6::HopCache6,
    pub neigh: NeighbourTable,
    /// IPv6 neighbours (neighbour discovery), of the same capacity.
    pub neigh6: NeighbourTable<Ipv6Addr>,
    /// Neighbours this worker learned, for the worker loop to tell the others.
    pub neigh_updates: neigh::Updates,
    pub director: Director,
    pub counters: Arc<Counters>,
    /// First fragments' connections, for the later fragments.
    frags: frag::FragTable,
    /// The same for IPv6 datagrams.
    frags6: frag::FragTable<frag::Key6>,
    /// The connection the last TCP/UDP packet used (slot, reply direction): what
    /// a first fragment leaves in `frags`.
    last_conn: Option<(u32, bool)>,
    /// How packets are spread over the workers, and which one this is.
    steering: Steering,
    worker: u16,
    /// Every address the appliance owns (VIPs, DIPs): a packet to one is a request.
    owned: Vec<Ipv4Addr>,
    /// Addresses VRRP carries (owned only while MASTER) and hidden ones.
    pub ownership: Arc<owner::Ownership>,
    /// No address is carried or hidden (`ownership` empty), as of the start of
    /// the burst (or packet) being processed.
    unowned: bool,
    /// The worker's clock in whole seconds (the connections' clock) as of the
    /// start of the burst (or packet) being processed.
    now_s: u32,
    /// The decode of each packet of the burst being run (`run_burst`).
    pub(super) metas: [Meta; burst::BURST],
    /// The IPv4 and IPv6 indexes' change counts when the burst's warming began:
    /// the hints warming left in `metas` hold while their family's is unchanged.
    pub(super) warmed_at: (u32, u32),
}

impl Pipeline {
    pub fn new(ports: Vec<PortView>, neigh: NeighbourTable, counters: Arc<Counters>) -> Pipeline {
        Pipeline {
            fib: route::Fib::new(&ports, &[]),
            hops: route::HopCache::default(),
            routes6: Vec::new(),
            held6: [Ipv6Addr::UNSPECIFIED; HELD6],
            held6_next: 0,
            hops6: xmit6::HopCache6::default(),
            neigh6: NeighbourTable::with_capacity(neigh.capacity()),
            neigh,
            neigh_updates: neigh::Updates::default(),
            director: Director::new(ServiceTable::new(), 1024, 0x5eed),
            counters,
            frags: frag::FragTable::default(),
            frags6: frag::FragTable::default(),
            last_conn: None,
            steering: Steering::default(),
            worker: 0,
            owned: ports.iter().flat_map(|v| v.addresses.iter().map(|c| c.address())).collect(),
            macs: ports
                .iter()
                .map(|v| if matches!(v.host, Host::For(_)) { NOT_ESTABLISHED } else { mac_word(&v.mac.0) })
                .collect(),
            ports,
            ownership: Arc::new(owner::Ownership::default()),
            unowned: true,
            now_s: 0,
            metas: [Meta::default(); burst::BURST],
            warmed_at: (0, 0),
        }
    }

    pub fn with_ownership(mut self, o: Arc<owner::Ownership>) -> Pipeline {
        self.ownership = o;
        self
    }

    /// `a` is an address of the appliance (owned, carried or hidden): a packet to
    /// it comes from a client.
    #[inline]
    pub fn knows(&self, a: Ipv4Addr) -> bool {
        self.owned.contains(&a) || (!self.ownership.is_empty() && self.ownership.knows(a))
    }

    /// `a` is one of the ports' IPv6 addresses, or one VRRP carries.
    pub fn knows6(&self, a: Ipv6Addr) -> bool {
        self.ports.iter().any(|v| v.owns6(a)) || (!self.ownership.is_empty6() && self.ownership.carried6(a).is_some())
    }

    pub fn with_routes(mut self, routes: Vec<Route>) -> Pipeline {
        self.fib = route::Fib::new(&self.ports, &routes);
        self.hops.clear();
        self
    }

    /// The IPv6 next hop a `Verdict::Hold6 { hop, .. }` waits for.
    pub fn held_hop6(&self, hop: u16) -> Ipv6Addr {
        self.held6.get(usize::from(hop)).copied().unwrap_or(Ipv6Addr::UNSPECIFIED)
    }

    /// Keeps `next_hop` aside for a `Verdict::Hold6`; returns its index.
    fn note_hold6(&mut self, next_hop: Ipv6Addr) -> u16 {
        let i = self.held6_next;
        if let Some(h) = self.held6.get_mut(usize::from(i)) {
            *h = next_hop;
        }
        self.held6_next = (i + 1) % u16::try_from(HELD6).unwrap_or(1);
        i
    }

    /// IPv6 static neighbours (configuration: never replaced by learning).
    pub fn with_neighbours6(mut self, entries: &[(Ipv6Addr, EthernetAddress, u16)]) -> Pipeline {
        for &(a, mac, port) in entries {
            self.neigh6.insert_static(a, mac, port);
        }
        self
    }

    /// IPv6 static routes (longest prefix first when looked up).
    pub fn with_routes6(mut self, mut routes: Vec<xmit6::Route6>) -> Pipeline {
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.prefix_len()));
        self.routes6 = routes;
        self.hops6.clear();
        self
    }

    pub fn with_director(mut self, director: Director) -> Pipeline {
        self.director = director;
        self
    }

    pub fn with_classifier(mut self, c: Classifier) -> Pipeline {
        self.director.classifier = std::sync::Arc::new(c);
        self
    }

    /// This pipeline is worker `worker` of those `steering` spreads packets over.
    pub fn with_steering(mut self, steering: Steering, worker: u16) -> Pipeline {
        self.steering = steering;
        self.worker = worker;
        self
    }

    /// Is warming worth its cost? Below 32 k connections the table mostly stays in
    /// cache and the staged decode and warming cost more than the misses they save
    /// (NAT, pipeline alone: 10 k flows 43 -> 54 ns/pkt warmed); from there the
    /// misses dominate (34 k flows 62 -> 59, 50 k 75 -> 56, 1 M flows 250 ->
    /// 150-170 when first measured).
    #[inline]
    pub fn warm_worthwhile(&self) -> bool {
        self.director.conns.len() + self.director.conns6.len() >= 1 << 15
    }

    /// Warms the caches for a frame about to be processed, without changing
    /// anything: `stage` 0 prefetches the connection index line its lookup starts
    /// at, stage 1 (after stage 0 for the whole burst) the connection it points to
    /// (a SYN's is not looked for).
    /// Stage 1 returns non-zero when it found a connection to prefetch (the hint
    /// `Meta::hint` keeps), else 0. (`run_burst` warms from the burst's decodes;
    /// this decodes `frame` for the caller.)
    pub fn warm(&self, frame: &[u8], stage: u8) -> u32 {
        let m = meta::decode(frame, false, |t| self.director.conns.hash(t), |t| self.director.conns6.hash(t));
        self.warm_meta(&m, stage)
    }

    #[inline]
    pub(super) fn warm_meta(&self, m: &Meta, stage: u8) -> u32 {
        if m.class == Class::Transport6 {
            if stage == 0 {
                self.director.conns6.warm_index(m.hash);
                return 0;
            }
            return self.director.conns6.warm_conn(m.hash);
        }
        if !m.has_ports() {
            return 0;
        }
        if stage == 0 {
            self.director.conns.warm_index(m.hash);
            0
        } else if m.is_syn() {
            // A SYN mostly opens a connection: its index line is what its lookup
            // and insert need, and warming waits for nothing more.
            0
        } else {
            self.director.conns.warm_conn(m.hash)
        }
    }

    /// Reads `buf` once: what steering, warming and processing work from.
    #[inline(always)]
    pub fn decode<B: PacketBuf>(&self, buf: &B) -> Meta {
        meta::decode(
            buf.data(),
            buf.ip_checksum_good(),
            |t| self.director.conns.hash(t),
            |t| self.director.conns6.hash(t),
        )
    }

    pub fn ports(&self) -> &[PortView] {
        &self.ports
    }

    pub fn steering(&self) -> &Steering {
        &self.steering
    }

    /// Processes one frame received on port index `port`, in place. `now_ms` is the
    /// worker's clock, read once per burst.
    pub fn process<B: PacketBuf>(&mut self, port: u16, buf: &mut B, now_ms: u64) -> Verdict {
        let m = self.decode(buf);
        self.process_decoded(port, buf, &m, now_ms)
    }

    /// As `process`, for a frame decoded already (`decode`; the frame unchanged since).
    #[inline(always)]
    pub fn process_decoded<B: PacketBuf>(&mut self, port: u16, buf: &mut B, m: &Meta, now_ms: u64) -> Verdict {
        self.begin(now_ms);
        let mut v = Verdict::Consumed;
        if self.plain_path(port, buf, m, now_ms, &mut v) {
            return v;
        }
        let verdict = self.general(port, buf, m, now_ms);
        self.counted(verdict)
    }

    /// Notes what holds for the burst (or packet) about to be processed, read
    /// once for it: whether any address is carried or hidden now (what VRRP
    /// publishes meanwhile counts from the next), and the clock `now_ms` in the
    /// connections' seconds.
    #[inline]
    pub(super) fn begin(&mut self, now_ms: u64) {
        self.unowned = self.ownership.is_empty();
        self.now_s = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
    }

    /// As `process_decoded`, the verdict written to `fate` where it is made (a
    /// connection's packet's straight from its transmit, not through a merge
    /// with the general path's).
    #[inline(always)]
    pub(super) fn process_into<B: PacketBuf>(
        &mut self,
        port: u16,
        buf: &mut B,
        m: &Meta,
        now_ms: u64,
        fate: &mut burst::Fate,
    ) {
        // The established path gives its verdict to the fate itself (a
        // transmit straight from where the way is known), counted.
        if self.plain_path(port, buf, m, now_ms, fate) {
            return;
        }
        let v = self.general(port, buf, m, now_ms);
        *fate = burst::Fate::Verdict(self.counted(v));
    }

    /// What the established path leaves: IPv6's established path and the general
    /// path.
    #[inline(always)]
    fn general<B: PacketBuf>(&mut self, port: u16, buf: &mut B, m: &Meta, now_ms: u64) -> Verdict {
        if m.class == Class::Transport6 {
            self.transport6(port, buf, m, now_ms)
        } else {
            self.eth_input(port, buf, m, now_ms)
        }
    }

    /// Counts a verdict's drop or hold; gives it back.
    #[inline(always)]
    fn counted(&self, verdict: Verdict) -> Verdict {
        match verdict {
            Verdict::Drop(reason) => self.counters.count_drop(reason),
            Verdict::Hold { .. } | Verdict::Hold6 { .. } => self.counters.held_for_arp.inc(),
            _ => {}
        }
        verdict
    }

    /// A packet `plain` takes: a SYN to the director as the Ethernet and IPv4
    /// input would send it (`opening`), anything else on the established path;
    /// the verdict given to `out` (and counted). False: the general path
    /// decides.
    #[inline(always)]
    fn plain_path<B: PacketBuf>(
        &mut self,
        port: u16,
        buf: &mut B,
        m: &Meta,
        now_ms: u64,
        out: &mut impl xmit::Give,
    ) -> bool {
        if !self.plain(port, buf, m) {
            return false;
        }
        // A SYN may open or reuse a connection: the director's `packet` decides.
        if m.is_syn() {
            let v = self.opening(port, buf, m, now_ms);
            out.give(self.counted(v));
            return true;
        }
        self.established(port, buf, m, out)
    }

    /// The established path: a packet `plain` takes that is no SYN, with a
    /// connection already: straight to its connection and its transmit, the
    /// verdict given to `out` (and counted). False: the general path
    /// (`eth_input`) decides — as it would for these packets too, through more
    /// checks that cannot fail for them.
    #[inline(always)]
    fn established<B: PacketBuf>(&mut self, port: u16, buf: &mut B, m: &Meta, out: &mut impl xmit::Give) -> bool {
        let now_s = self.now_s;
        // Warming's hint, while the index is as warming saw it.
        let hint = if m.hint != 0 && self.director.conns.index_changes() == self.warmed_at.0 { m.hint } else { 0 };
        let Some(conn) =
            self.director.established_conn(&m.tuple, m.hash, hint, m.tcp_flags, u32::from(m.ip_len), now_s)
        else {
            return false;
        };
        // Sent by a known next hop with the connection in hand; anything else
        // once it is let go.
        let (generation, output) = (self.neigh.generation(), conn.1);
        if let Some(plan) = xmit::forward_known(&self.hops, generation, &self.counters, buf, m, conn, out) {
            xmit::forward_to(self, port, buf, m, output, plan, out);
        }
        true
    }

    /// A whole TCP/UDP packet, unicast to this port's MAC from another, on a port
    /// that is no kernel interface, while no address is carried by VRRP or hidden,
    /// to a unicast address: one the Ethernet and IPv4 input would hand to the
    /// director as it is (`opening`).
    #[inline(always)]
    fn plain<B: PacketBuf>(&self, port: u16, buf: &B, m: &Meta) -> bool {
        m.plain && self.unowned && self.unicast_here(port, buf)
    }

    /// `plain`'s Ethernet part: unicast to this port's MAC from another, on a port
    /// that is no kernel interface (the packet's own part is `Meta::plain`).
    #[inline(always)]
    fn unicast_here<B: PacketBuf>(&self, port: u16, buf: &B) -> bool {
        // The port's MAC as a word (never a frame's on a kernel interface's port),
        // and the frame's destination and source MACs as words: the first 8
        // bytes with the last two masked off, bytes 4..12 with the first two
        // shifted out.
        let (Some(&mac), Some(head)) = (self.macs.get(usize::from(port)), buf.data().first_chunk::<12>()) else {
            return false;
        };
        let word = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().unwrap_or_default());
        let dst_mac = word(0) & mac_word(&[0xff; 6]);
        let src_mac = word(4) >> 16;
        dst_mac == mac && src_mac != mac
    }

    /// A packet `plain` takes that the established path does not (a SYN): to the
    /// director, as `ipv4_input` sends a whole TCP/UDP packet to an address no
    /// VRRP instance carries.
    #[inline(always)]
    fn opening<B: PacketBuf>(&mut self, port: u16, buf: &mut B, m: &Meta, now_ms: u64) -> Verdict {
        let v = xmit::transport(self, port, buf, m, now_ms);
        self.dip_traffic(port, m.tuple.daddr, v)
    }

    /// What the data plane leaves of the DIP's traffic (`v`, for `dst` on `port`)
    /// is the kernel's (replies to its health checks, ICMP for it); a VIP's never
    /// is (no RST for strays).
    #[inline]
    fn dip_traffic(&self, port: u16, dst: Ipv4Addr, v: Verdict) -> Verdict {
        match v {
            Verdict::Drop(DropReason::NoService | DropReason::NotSyn | DropReason::IcmpUnhandled)
                if self.host_address(port, dst) =>
            {
                self.to_host(self.ports[usize::from(port)].host, v)
            }
            v => v,
        }
    }

    /// A decoded IPv6 TCP/UDP packet: IPv6's established path first (not a SYN),
    /// then the general path. Out of line: the IPv4 path through
    /// `process_decoded` stays as small as it was.
    #[inline(never)]
    fn transport6<B: PacketBuf>(&mut self, port: u16, buf: &mut B, m: &Meta, now_ms: u64) -> Verdict {
        let syn = m.proto == ipv4::protocol::TCP && m.tcp_flags & crate::net::tcp::flags::SYN != 0;
        if !syn {
            if let Some(v) = self.established6(port, buf, m) {
                return v;
            }
        }
        self.eth_input(port, buf, m, now_ms)
    }

    /// The established path for IPv6 (see `established`): a decoded IPv6 TCP/UDP
    /// packet without extension headers, unicast to this port's MAC, whose
    /// connection exists, straight to its connection and transmit. (Out of line:
    /// IPv4's established path stays as small as it was.)
    #[inline(never)]
    fn established6<B: PacketBuf>(&mut self, port: u16, buf: &mut B, m: &Meta) -> Option<Verdict> {
        let view = self.ports.get(usize::from(port))?;
        let l3 = usize::from(m.l3);
        let f = buf.data();
        let (dst_mac, src_mac) = (f.get(0..6)?, f.get(6..12)?);
        let ip = f.get(l3..l3 + ipv6::HEADER_LEN)?;
        if matches!(view.host, Host::For(_))
            || dst_mac != view.mac.as_bytes()
            || src_mac == view.mac.as_bytes()
            || ip[24] == 0xff
            || !self.ownership.is_empty6()
        {
            return None;
        }
        let t = crate::ipvs::conntab::Tuple {
            proto: m.proto,
            saddr: ipv6::read_ipv6(ip, 8),
            sport: m.tuple.sport,
            daddr: ipv6::read_ipv6(ip, 24),
            dport: m.tuple.dport,
        };
        let now_s = self.now_s;
        let hint = if m.hint != 0 && self.director.conns6.index_changes() == self.warmed_at.1 { m.hint } else { 0 };
        let hit = self.director.established(&t, m.hash, hint, m.tcp_flags, u32::from(m.ip_len), now_s)?.hit();
        let at = (l3, usize::from(m.l4), m.proto == ipv4::protocol::TCP);
        Some(xmit6::forward6(self, port, buf, at, hit))
    }

    /// Ends a burst: the reply tuples of the connections it created enter the
    /// index (see `ConnTable::set_defer_output`; nothing to do when not deferred).
    #[inline]
    pub fn end_burst(&mut self) {
        self.director.conns.flush_pending();
    }

    /// Expires connections due by `now_ms` (at most `budget` looked at).
    pub fn expire(&mut self, now_ms: u64, budget: usize) -> usize {
        self.director.expire(u32::try_from(now_ms / 1000).unwrap_or(u32::MAX), budget)
    }

    /// L2 input: which port, whose frame, then ARP or IPv4 (what `plain` takes
    /// went to the director already, as they would send it).
    fn eth_input<B: PacketBuf>(&mut self, port: u16, buf: &mut B, m: &Meta, now_ms: u64) -> Verdict {
        let Some(view) = self.ports.get(usize::from(port)) else {
            return Verdict::Drop(DropReason::UnknownPort);
        };
        if let Host::For(out) = view.host {
            // From the kernel: out through the DPDK port it stands for, as it is.
            self.counters.from_host.inc();
            return Verdict::Transmit(out);
        }
        let Ok(eth) = ethernet::Frame::new_checked(buf.data()) else {
            return Verdict::Drop(DropReason::L2Truncated);
        };
        if eth.src_addr() == view.mac {
            // Our own transmission seen again (a packet socket sees outgoing frames
            // on some kernels), or a loop in the L2 network.
            return Verdict::Drop(DropReason::LoopedBack);
        }
        let dst = eth.dst_addr();
        if dst != view.mac && !dst.is_multicast() {
            return Verdict::Drop(DropReason::OtherHost);
        }
        let (ethertype, l3) = (eth.ethertype(), eth.header_len());
        match ethertype {
            ethernet::ethertype::ARP => {
                let host = view.host;
                let v = neigh::handle_arp(
                    view,
                    &self.ownership,
                    port,
                    &mut self.neigh,
                    &mut self.neigh_updates,
                    &self.counters,
                    buf.data_mut(),
                    l3,
                    now_ms,
                );
                // Replies also teach the kernel (its own ARP requests left through us).
                match v {
                    Verdict::Consumed => self.to_host(host, v),
                    v => v,
                }
            }
            ethernet::ethertype::IPV4 => self.ipv4_input(port, buf, m, now_ms),
            ethernet::ethertype::IPV6 => {
                // (A decoded packet of a known connection went the established path.)
                let hash = (m.class == Class::Transport6).then_some(m.hash);
                nd::ipv6_input(self, port, buf, l3, hash, now_ms)
            }
            _ => Verdict::Drop(DropReason::UnknownEthertype),
        }
    }

    /// Hands what the data plane does not use to the kernel, when the port has an
    /// exception path; else `otherwise`.
    fn to_host(&self, host: Host, otherwise: Verdict) -> Verdict {
        match host {
            Host::Via(k) => {
                self.counters.to_host.inc();
                Verdict::Transmit(k)
            }
            _ => otherwise,
        }
    }

    /// The appliance owns `dst` on `port` now: one of the port's addresses, or one a
    /// VRRP instance carries while it is MASTER.
    #[inline]
    pub(crate) fn owns_now(&self, port: u16, dst: Ipv4Addr) -> bool {
        self.ports.get(usize::from(port)).is_some_and(|v| v.owns(dst))
            || (!self.ownership.is_empty() && self.ownership.master_on(dst, port))
    }

    /// To an owned address that is not a VIP (the DIP), or to a hidden one: the
    /// kernel's, if it has one.
    fn host_address(&self, port: u16, dst: Ipv4Addr) -> bool {
        self.ports.get(usize::from(port)).is_some_and(|v| v.host != Host::None)
            && ((self.ports[usize::from(port)].owns(dst) && !self.director.services.has_vip(dst))
                || (!self.ownership.is_empty() && self.ownership.hidden_on(dst, port)))
    }

    /// To an IPv6 address of the port that is not a VIP (the DIP6): the kernel's,
    /// if it has one.
    pub(crate) fn host_address6(&self, port: u16, dst: Ipv6Addr) -> bool {
        self.ports.get(usize::from(port)).is_some_and(|v| v.host != Host::None && v.owns6(dst))
            && !self.director.services.has_vip6(dst)
    }

    fn ipv4_input<B: PacketBuf>(&mut self, port: u16, buf: &mut B, m: &Meta, now_ms: u64) -> Verdict {
        let (proto, dst) = match m.class {
            Class::Bad(reason) => return Verdict::Drop(reason),
            // EtherType IPv4 is always decoded as IPv4.
            Class::L2 => return Verdict::Drop(DropReason::IpTruncated),
            _ => (m.proto, m.tuple.daddr),
        };
        let l3 = usize::from(m.l3);
        if !self.ownership.is_empty() {
            if let Some((_, master)) = self.ownership.carried(dst) {
                if !master && !self.ownership.hidden_on(dst, port) {
                    return Verdict::Drop(DropReason::Standby);
                }
            }
        }
        if matches!(m.class, Class::Fragment | Class::FirstFragment) {
            let ip = ipv4::Packet::new_unchecked(&buf.data()[l3..]);
            let key = frag::Key { src: u32::from(m.tuple.saddr), dst: u32::from(dst), id: ip.ident(), proto };
            if m.class == Class::Fragment {
                let transport = matches!(proto, ipv4::protocol::TCP | ipv4::protocol::UDP);
                return match (transport, self.frags.lookup(&key, now_ms)) {
                    (true, Some((slot, output))) => xmit::later_fragment(self, port, buf, l3, slot, output),
                    _ => Verdict::Drop(DropReason::IpFragment),
                };
            }
            // A first fragment goes through like any packet; its connection is
            // remembered for the fragments that follow.
            self.last_conn = None;
            let v = xmit::transport(self, port, buf, m, now_ms);
            if let Some((slot, output)) = self.last_conn {
                self.frags.insert(key, slot, output, now_ms);
            }
            return v;
        }
        let host = self.ports[usize::from(port)].host;
        if dst.is_multicast() {
            // Link-local groups (VRRP, connection sync) are the kernel interface's:
            // the control lcore reads them there.
            return self.to_host(host, Verdict::Drop(DropReason::NotForUs));
        }
        let v = match proto {
            ipv4::protocol::TCP | ipv4::protocol::UDP => xmit::transport(self, port, buf, m, now_ms),
            ipv4::protocol::ICMP => {
                if let Some(v) = xmit::icmp_error(self, port, buf, l3) {
                    return v;
                }
                if self.owns_now(port, dst) {
                    icmp::handle_to_us(&self.ports[usize::from(port)], port, &self.counters, buf.data_mut(), l3)
                } else if self.host_address(port, dst) {
                    Verdict::Drop(DropReason::IcmpUnhandled)
                } else {
                    Verdict::Drop(DropReason::NotForUs)
                }
            }
            // Advertisements: the control lcore reads them on the kernel interface.
            crate::net::vrrp::PROTOCOL => return self.to_host(host, Verdict::Drop(DropReason::NoKernel)),
            _ if self.owns_now(port, dst) => Verdict::Drop(DropReason::NoService),
            _ => Verdict::Drop(DropReason::NotForUs),
        };
        self.dip_traffic(port, dst, v)
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// A fixed pseudo-random sequence of 32-bit numbers (an LCG) from `seed`.
    pub fn lcg(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            x >> 32
        }
    }

    pub const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0xc1, 0, 0, 0, 0x01]);
    pub const PORT_MAC: EthernetAddress = EthernetAddress([0x02, 0x1b, 0, 0, 0, 0x01]);
    pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

    pub fn pipeline() -> Pipeline {
        let ports = vec![
            PortView {
                mac: PORT_MAC,
                addresses: vec!["198.18.0.10/24".parse().unwrap()],
                addresses6: vec!["2001:2::10/64".parse().unwrap()],
                mtu: 1500,
                host: Default::default(),
            },
            PortView {
                mac: EthernetAddress([0x02, 0x1b, 0, 0, 0, 0x02]),
                addresses: vec!["198.18.1.1/24".parse().unwrap()],
                addresses6: vec!["2001:2:0:1::1/64".parse().unwrap()],
                mtu: 1500,
                host: Default::default(),
            },
        ];
        Pipeline::new(ports, NeighbourTable::with_capacity(4), std::sync::Arc::new(Counters::default()))
    }

    /// A frame from the client to port 0 carrying an IPv4 packet to `dst`.
    pub fn ip_frame(dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
        let mut ip = vec![0u8; ipv4::HEADER_LEN];
        ip.extend_from_slice(payload);
        let repr = ipv4::Repr {
            src_addr: CLIENT,
            dst_addr: dst,
            protocol,
            payload_len: payload.len(),
            ttl: 64,
            ident: 1,
            dont_frag: true,
        };
        repr.emit(&mut ipv4::Packet::new_unchecked(&mut ip[..]));
        eth(PORT_MAC, CLIENT_MAC, 0x0800, &ip)
    }

    /// An ICMP echo request from the client to the VIP.
    pub fn ping_to_vip() -> Vec<u8> {
        let mut msg = vec![8u8, 0, 0, 0, 0xbe, 0xef, 0, 1];
        crate::net::icmp::Packet::new_unchecked(&mut msg[..]).fill_checksum();
        ip_frame(VIP, ipv4::protocol::ICMP, &msg)
    }

    /// A TCP SYN from the client's port `sport` to VIP:80.
    pub fn tcp_to_vip(sport: u16) -> Vec<u8> {
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = crate::net::tcp::flags::SYN;
        ip_frame(VIP, ipv4::protocol::TCP, &tcp)
    }

    /// An Ethernet header + `payload`.
    pub fn eth(dst: EthernetAddress, src: EthernetAddress, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; ethernet::HEADER_LEN];
        let mut v = ethernet::Frame::new_unchecked(&mut f[..]);
        v.set_dst_addr(dst);
        v.set_src_addr(src);
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn drops_are_counted_by_reason() {
        let mut p = pipeline();
        let cases: Vec<(Vec<u8>, DropReason)> = vec![
            (vec![0u8; 10], DropReason::L2Truncated),
            (eth(PORT_MAC, CLIENT_MAC, 0x88cc, &[0; 46]), DropReason::UnknownEthertype),
            (eth(PORT_MAC, CLIENT_MAC, 0x86dd, &[0x60; 46]), DropReason::Ipv6BadLength),
            (eth(PORT_MAC, PORT_MAC, 0x0800, &[0; 46]), DropReason::LoopedBack),
            (eth(EthernetAddress([0x02, 9, 9, 9, 9, 9]), CLIENT_MAC, 0x0800, &[0; 46]), DropReason::OtherHost),
            (eth(PORT_MAC, CLIENT_MAC, 0x0800, &[0x45, 0, 0, 10]), DropReason::IpTruncated),
        ];
        for (frame, reason) in cases {
            let mut f = frame.clone();
            assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(reason), "{reason:?}");
            assert_eq!(f, frame, "a dropped frame is left as it was");
        }
        assert_eq!(p.process(7, &mut vec![0u8; 60], 0), Verdict::Drop(DropReason::UnknownPort));
        let snap = p.counters.snapshot();
        for r in
            [DropReason::L2Truncated, DropReason::UnknownEthertype, DropReason::Ipv6BadLength, DropReason::LoopedBack]
        {
            assert_eq!(snap.drops[r as usize], 1, "{r:?}");
        }
        assert_eq!(snap.drops.iter().sum::<u64>(), 7);
    }

    /// A one-arm director whose port 0 has a kernel interface (port 1), carrying
    /// `carried` by VRRP (not in the port's addresses) and hiding `hidden`.
    fn vrrp_pipeline(carried: Ipv4Addr, hidden: Vec<Ipv4Addr>) -> Pipeline {
        let ports = vec![
            PortView {
                mac: PORT_MAC,
                addresses: vec!["198.18.0.2/24".parse().unwrap()],
                addresses6: vec![],
                mtu: 1500,
                host: Host::Via(1),
            },
            PortView { mac: PORT_MAC, addresses: vec![], addresses6: vec![], mtu: 1500, host: Host::For(0) },
        ];
        let own = Arc::new(owner::Ownership::new(hidden.into_iter().map(|a| (a, 0)).collect()));
        own.publish(&[(carried.into(), 0, false)]);
        Pipeline::new(ports, NeighbourTable::with_capacity(4), Arc::new(Counters::default())).with_ownership(own)
    }

    /// TCP VIP:80, rr, no dests.
    fn service() -> crate::ipvs::service::Service {
        let key = crate::ipvs::service::ServiceKey::Addr { proto: crate::ipvs::Protocol::Tcp, addr: VIP, port: 80 };
        crate::ipvs::service::Service::new(key, "rr", Default::default(), None).unwrap()
    }

    fn arp_request(tpa: Ipv4Addr) -> Vec<u8> {
        let mut b = vec![0u8; crate::net::arp::PACKET_LEN];
        crate::net::arp::Repr {
            operation: crate::net::arp::Operation::Request,
            source_hardware_addr: CLIENT_MAC,
            source_protocol_addr: CLIENT,
            target_hardware_addr: EthernetAddress::ZERO,
            target_protocol_addr: tpa,
        }
        .emit(&mut crate::net::arp::Packet::new_unchecked(&mut b[..]));
        eth(EthernetAddress::BROADCAST, CLIENT_MAC, 0x0806, &b)
    }

    #[test]
    fn a_carried_address_is_owned_only_while_its_instance_is_master() {
        let mut p = vrrp_pipeline(VIP, vec![]);
        p.director.services.add(service()).unwrap();
        // BACKUP: no ARP, no ping, nothing balanced.
        assert_eq!(p.process(0, &mut arp_request(VIP), 0), Verdict::Drop(DropReason::ArpNotForUs));
        assert_eq!(p.process(0, &mut ping_to_vip(), 0), Verdict::Drop(DropReason::Standby));
        assert_eq!(p.process(0, &mut tcp_to_vip(1000), 0), Verdict::Drop(DropReason::Standby));
        // MASTER: ARP and ping answered.
        p.ownership.publish(&[(VIP.into(), 0, true)]);
        assert_eq!(p.process(0, &mut arp_request(VIP), 0), Verdict::Transmit(0));
        assert_eq!(p.process(0, &mut ping_to_vip(), 0), Verdict::Transmit(0));
        assert_eq!(p.process(0, &mut tcp_to_vip(1000), 0), Verdict::Drop(DropReason::NoDest), "balanced (no dest yet)");
        // Advertisements go to the kernel interface, where the control lcore reads them.
        let mut advert = ip_frame(crate::net::vrrp::GROUP, crate::net::vrrp::PROTOCOL, &[0x21, 51, 100, 0, 0, 1, 0, 0]);
        advert[0..6].copy_from_slice(&crate::net::vrrp::GROUP_MAC.0);
        assert_eq!(p.process(0, &mut advert, 0), Verdict::Transmit(1));
    }

    #[test]
    fn a_backup_director_forwards_nothing_of_its_connections_in_a_burst() {
        use crate::pipeline::burst::{Fate, Source, BURST};
        let mut p = vrrp_pipeline(VIP, vec![]);
        let mut svc = service();
        let rs = Ipv4Addr::new(198, 18, 0, 20);
        svc.add_dest(crate::ipvs::dest::Dest::new(rs, 8080, crate::ipvs::dest::FwdMethod::Masq, 1)).unwrap();
        p.director.services.add(svc).unwrap();
        p.neigh.insert_static(rs, EthernetAddress([0x02, 0x20, 0, 0, 0, 1]), 0);
        p.ownership.publish(&[(VIP.into(), 0, true)]);
        let mut fates = [Fate::Redirect(0); BURST];
        p.run_burst(&mut [(tcp_to_vip(1000), 0u16)], Source::Wire, 0, &mut fates);
        assert_eq!(fates[0], Fate::Verdict(Verdict::Transmit(0)), "master: a connection");
        let mut ack = tcp_to_vip(1000);
        ack[ethernet::HEADER_LEN + ipv4::HEADER_LEN + 13] = crate::net::tcp::flags::ACK;
        p.run_burst(&mut [(ack.clone(), 0u16)], Source::Wire, 0, &mut fates);
        assert_eq!(fates[0], Fate::Verdict(Verdict::Transmit(0)), "master: its packets forwarded");
        // BACKUP now: the next burst's packets of the connection are not.
        p.ownership.publish(&[(VIP.into(), 0, false)]);
        p.run_burst(&mut [(ack, 0u16)], Source::Wire, 0, &mut fates);
        assert_eq!(fates[0], Fate::Verdict(Verdict::Drop(DropReason::Standby)));
    }

    /// The MAC of `kernel_port_pipeline`'s port 2.
    const KERNEL_MAC: EthernetAddress = EthernetAddress([0x02, 0x4b, 0, 0, 0, 1]);

    /// Port 0 to the clients, with the VIP and the DIP 198.18.0.2 (its kernel
    /// interface is port 2), port 1 to the real server 198.18.1.20 (VIP:80 NAT to
    /// its port 8080).
    fn kernel_port_pipeline() -> Pipeline {
        let ports = vec![
            PortView {
                mac: PORT_MAC,
                addresses: vec!["198.18.0.10/24".parse().unwrap(), "198.18.0.2/24".parse().unwrap()],
                addresses6: vec![],
                mtu: 1500,
                host: Host::Via(2),
            },
            PortView {
                mac: EthernetAddress([0x02, 0x1b, 0, 0, 0, 0x02]),
                addresses: vec!["198.18.1.1/24".parse().unwrap()],
                addresses6: vec![],
                mtu: 1500,
                host: Host::None,
            },
            PortView { mac: KERNEL_MAC, addresses: vec![], addresses6: vec![], mtu: 1500, host: Host::For(0) },
        ];
        let mut p = Pipeline::new(ports, NeighbourTable::with_capacity(4), Arc::new(Counters::default()));
        let mut svc = service();
        let rs = Ipv4Addr::new(198, 18, 1, 20);
        svc.add_dest(crate::ipvs::dest::Dest::new(rs, 8080, crate::ipvs::dest::FwdMethod::Masq, 1)).unwrap();
        p.director.services.add(svc).unwrap();
        p.neigh.insert_static(rs, EthernetAddress([0x02, 0x20, 0, 0, 0, 1]), 1);
        p
    }

    #[test]
    fn the_dips_tcp_is_the_kernels_and_a_vips_never_is() {
        let mut p = kernel_port_pipeline();
        let tcp = |dst: Ipv4Addr, sport: u16, dport: u16, flags: u8| {
            let mut t = vec![0u8; 20];
            t[0..2].copy_from_slice(&sport.to_be_bytes());
            t[2..4].copy_from_slice(&dport.to_be_bytes());
            t[12] = 0x50;
            t[13] = flags;
            ip_frame(dst, ipv4::protocol::TCP, &t)
        };
        use crate::net::tcp::flags::{ACK, SYN};
        let dip = Ipv4Addr::new(198, 18, 0, 2);
        // An ssh connection to the director; a health check's SYN-ACK coming back.
        for (frame, verdict) in [
            (tcp(dip, 40000, 22, SYN), Verdict::Transmit(2)),
            (tcp(dip, 80, 40001, SYN | ACK), Verdict::Transmit(2)),
            (tcp(VIP, 40002, 22, SYN), Verdict::Drop(DropReason::NoService)),
        ] {
            let mut f = frame.clone();
            assert_eq!(p.process(0, &mut f, 0), verdict);
            assert_eq!(f, frame, "{verdict:?}: the frame is left as it was");
        }
    }

    #[test]
    fn a_packet_of_a_connection_gets_the_ethernet_checks_of_any_packet() {
        let mut p = kernel_port_pipeline();
        assert_eq!(p.process(0, &mut tcp_to_vip(1000), 0), Verdict::Transmit(1), "a connection");
        let mut ack = tcp_to_vip(1000);
        ack[ethernet::HEADER_LEN + ipv4::HEADER_LEN + 13] = crate::net::tcp::flags::ACK;
        assert_eq!(p.process(0, &mut ack.clone(), 0), Verdict::Transmit(1), "its packets forwarded");
        let with_macs = |dst: EthernetAddress, src: EthernetAddress| {
            let mut f = ack.clone();
            f[0..6].copy_from_slice(&dst.0);
            f[6..12].copy_from_slice(&src.0);
            f
        };
        let cases = [
            (0, with_macs(EthernetAddress([0x02, 9, 9, 9, 9, 9]), CLIENT_MAC), Verdict::Drop(DropReason::OtherHost)),
            (0, with_macs(PORT_MAC, PORT_MAC), Verdict::Drop(DropReason::LoopedBack)),
            // What the kernel sends leaves by its DPDK port as it is.
            (2, with_macs(KERNEL_MAC, CLIENT_MAC), Verdict::Transmit(0)),
        ];
        for (port, frame, verdict) in cases {
            let mut f = frame.clone();
            assert_eq!(p.process(port, &mut f, 0), verdict, "{verdict:?}");
            assert_eq!(f, frame, "{verdict:?}: the frame is left as it was");
        }
    }

    #[test]
    fn a_hidden_address_is_accepted_unannounced_and_a_local_real_server_gets_it_through_the_kernel() {
        let mut p = vrrp_pipeline(VIP, vec![VIP]);
        // Hidden: no ARP even as master; what matches no service is the kernel's.
        assert_eq!(p.process(0, &mut arp_request(VIP), 0), Verdict::Drop(DropReason::ArpNotForUs));
        assert_eq!(p.process(0, &mut tcp_to_vip(1000), 0), Verdict::Transmit(1), "no service: to the kernel");
        assert_eq!(p.process(0, &mut ping_to_vip(), 0), Verdict::Transmit(1), "the kernel answers");
        // A service whose real server is the director itself: Local, to the kernel.
        let mut svc = service();
        svc.add_dest(crate::ipvs::dest::Dest::new(
            Ipv4Addr::new(198, 18, 0, 2),
            80,
            crate::ipvs::dest::FwdMethod::Local,
            1,
        ))
        .unwrap();
        p.director.services.add(svc).unwrap();
        let frame = tcp_to_vip(1001);
        let mut f = frame.clone();
        assert_eq!(p.process(0, &mut f, 0), Verdict::Transmit(1));
        assert_eq!(f, frame, "delivered unchanged");
        assert_eq!(p.director.conns.len(), 1, "and tracked");
    }

    #[test]
    fn ipv4_to_other_address_or_bad_checksum_is_dropped() {
        let mut p = pipeline();
        let ip = |dst: Ipv4Addr, proto: u8| {
            let mut b = vec![0u8; 28];
            ipv4::Repr {
                src_addr: CLIENT,
                dst_addr: dst,
                protocol: proto,
                payload_len: 8,
                ttl: 64,
                ident: 1,
                dont_frag: false,
            }
            .emit(&mut ipv4::Packet::new_unchecked(&mut b[..]));
            b
        };
        let mut f = eth(PORT_MAC, CLIENT_MAC, 0x0800, &ip(Ipv4Addr::new(198, 18, 0, 11), 1));
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::NotForUs));
        // The DIP is owned on port 1, not on port 0.
        let mut f = eth(PORT_MAC, CLIENT_MAC, 0x0800, &ip(Ipv4Addr::new(198, 18, 1, 1), 1));
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::NotForUs));
        let mut f = eth(PORT_MAC, CLIENT_MAC, 0x0800, &ip(VIP, 47));
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::NoService), "GRE to the VIP");
        let mut f = eth(PORT_MAC, CLIENT_MAC, 0x0800, &ip(VIP, 6));
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::TcpTruncated), "8 bytes are no TCP header");
        let mut b = ip(VIP, 1);
        b[10] ^= 0xff;
        let mut f = eth(PORT_MAC, CLIENT_MAC, 0x0800, &b);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::IpBadChecksum));
        let mut b = ip(VIP, 1);
        b[6] = 0x20; // MF
        ipv4::Packet::new_unchecked(&mut b[..]).fill_checksum();
        let mut f = eth(PORT_MAC, CLIENT_MAC, 0x0800, &b);
        assert_eq!(p.process(0, &mut f, 0), Verdict::Drop(DropReason::IpFragment));
    }

    /// The established path's outcomes other than a send: a NAT real server whose
    /// MAC is not known yet (held for ARP), a reply whose TTL runs out, a
    /// direct-routing real server off the connected networks (a route through a
    /// gateway does not do for DR) — each for a packet of a connection that exists.
    #[test]
    fn an_established_packet_may_be_held_run_out_of_ttl_or_find_no_route() {
        use crate::ipvs::dest::{Dest, FwdMethod};
        use crate::ipvs::service::{Service, ServiceKey};
        use crate::net::tcp::flags::{ACK, SYN};
        let (near, far, router) =
            (Ipv4Addr::new(198, 18, 1, 12), Ipv4Addr::new(198, 19, 5, 5), Ipv4Addr::new(198, 18, 1, 254));
        let mut neigh = NeighbourTable::with_capacity(4);
        neigh.insert_static(CLIENT, CLIENT_MAC, 0);
        neigh.insert_static(router, EthernetAddress([0x02, 0xee, 0, 0, 0, 1]), 1);
        let ports = pipeline().ports;
        let inner_mac = ports[1].mac;
        let mut p = Pipeline::new(ports, neigh, Arc::new(Counters::default())).with_routes(vec![Route {
            prefix: "0.0.0.0/0".parse().unwrap(),
            via: router,
            port: 1,
        }]);
        let tcp = crate::ipvs::Protocol::Tcp;
        for (port, rs, fwd) in [(80, near, FwdMethod::Masq), (81, far, FwdMethod::Route)] {
            let mut s =
                Service::new(ServiceKey::Addr { proto: tcp, addr: VIP, port }, "rr", Default::default(), None).unwrap();
            s.add_dest(Dest::new(rs, port, fwd, 1)).unwrap();
            p.director.services.add(s).unwrap();
        }
        // (source, its port, destination, its port, flags, TTL), to `mac` from `from`.
        let frame = |(src, sport, dst, dport, flags, ttl): (Ipv4Addr, u16, Ipv4Addr, u16, u8, u8), mac, from| {
            let mut ip = vec![0u8; ipv4::HEADER_LEN + 20];
            ip[20..22].copy_from_slice(&sport.to_be_bytes());
            ip[22..24].copy_from_slice(&dport.to_be_bytes());
            (ip[32], ip[33]) = (0x50, flags);
            let repr = ipv4::Repr {
                src_addr: src,
                dst_addr: dst,
                protocol: 6,
                payload_len: 20,
                ttl,
                ident: 1,
                dont_frag: true,
            };
            repr.emit(&mut ipv4::Packet::new_unchecked(&mut ip[..]));
            eth(mac, from, 0x0800, &ip)
        };
        let rs_mac = EthernetAddress([0x02, 0x51, 0, 0, 0, 0x0c]);
        let held = Verdict::Hold { port: 1, next_hop: near, src: Ipv4Addr::new(198, 18, 1, 1) };
        let mut syn = frame((CLIENT, 1000, VIP, 80, SYN, 64), PORT_MAC, CLIENT_MAC);
        assert_eq!(p.process(0, &mut syn, 0), held, "the SYN makes the connection");
        let mut ack = frame((CLIENT, 1000, VIP, 80, ACK, 64), PORT_MAC, CLIENT_MAC);
        assert_eq!(p.process(0, &mut ack, 0), held, "its next packet, still no MAC");
        let mut reply = frame((near, 80, CLIENT, 1000, ACK, 1), inner_mac, rs_mac);
        assert_eq!(p.process(1, &mut reply, 0), Verdict::Drop(DropReason::TtlExceeded));
        let mut syn = frame((CLIENT, 2000, VIP, 81, SYN, 64), PORT_MAC, CLIENT_MAC);
        assert_eq!(p.process(0, &mut syn, 0), Verdict::Drop(DropReason::NoRoute));
        let mut ack = frame((CLIENT, 2000, VIP, 81, ACK, 64), PORT_MAC, CLIENT_MAC);
        assert_eq!(p.process(0, &mut ack, 0), Verdict::Drop(DropReason::NoRoute), "DR: connected networks only");
        assert_eq!(p.director.conns.len(), 2, "both connections exist");
        // Each counted once (the SYNs on the general path, the rest on this one).
        let before = p.counters.snapshot();
        let drops = |s: &counters::CountersSnapshot, r: DropReason| s.drops[r as usize];
        assert_eq!((drops(&before, DropReason::NoRoute), drops(&before, DropReason::TtlExceeded)), (2, 1));
        assert_eq!(before.held_for_arp, 2);
        // The same in a burst: fates, and each counted once.
        let mut packets = vec![(ack, 0), (frame((CLIENT, 1000, VIP, 80, ACK, 64), PORT_MAC, CLIENT_MAC), 0)];
        packets.push((frame((near, 80, CLIENT, 1000, ACK, 1), inner_mac, rs_mac), 1));
        let mut fates = [burst::Fate::Redirect(9); burst::BURST];
        p.run_burst(&mut packets, burst::Source::Wire, 0, &mut fates);
        let drop = |r| burst::Fate::Verdict(Verdict::Drop(r));
        assert_eq!(fates[..3], [drop(DropReason::NoRoute), burst::Fate::Verdict(held), drop(DropReason::TtlExceeded)]);
        let after = p.counters.snapshot();
        for r in [DropReason::NoRoute, DropReason::TtlExceeded] {
            assert_eq!(after.drops[r as usize] - before.drops[r as usize], 1, "{r:?}");
        }
        assert_eq!(after.held_for_arp - before.held_for_arp, 1);
    }
}
