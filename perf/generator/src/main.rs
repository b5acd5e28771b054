//! `rvs-pktgen`: a pktgen-style traffic generator for RVS (the benchmarks of perf/).
//!
//! A DPDK process of its own with two ports: the client side (it sends clients'
//! packets to the VIP, receives the appliance's replies) and the server side (it
//! receives what the appliance forwards to the real servers and, with `--reflect`,
//! answers as the servers would). On this machine the ports are memif interfaces
//! whose other ends are rvsd's (conf/perf.toml; `perf/pktgen` starts both); on bare
//! metal the same program drives a NIC pair cabled to the appliance's ports.
//!
//! Each frame carries a stamp after its TCP header: a magic, the flow's number and
//! the TSC at sending, so the receiving side knows the flow (to verify the rewrite)
//! and the latency. Every `--sample`th frame received is verified in full: MACs,
//! addresses and ports against what the service's forwarding method must produce,
//! TTL, and every checksum recomputed.
//!
//! Modes:
//!   est    opens `--flows` connections (one SYN each: the new-connection rate), then
//!          sends `--packets` ACKs over them in a strided order (established path)
//!   syn    unique-tuple SYNs only (`--flows` of them)
//!   flood  opens `--flows` connections, then sends `--syns` unique SYNs with one
//!          established-flow packet after every `--every` SYNs; reports whether the
//!          established flows lost any packet
//!
//! The worker's own cost per packet comes from rvsd's busy-cycle ratio (`--metrics`,
//! rvsd's Prometheus endpoint, read before and after the timed phase): busy share ×
//! elapsed / packets the worker handled. `--json` prints the figures as one line.

#![forbid(unsafe_code)]

use appliance::dpdk::eal::Eal;
use appliance::dpdk::lcore;
use appliance::dpdk::mbuf::{Mbuf, RxBurst, TxBurst};
use appliance::dpdk::mempool::Mempool;
use appliance::dpdk::port::{Port, PortSetup, RxQueue, TxQueue};
use appliance::net::ethernet::{self, EthernetAddress};
use appliance::net::ipv4::{self, protocol};
use appliance::net::{arp, checksum, tcp};
use appliance::pipeline::neigh;
use clap::{Parser, ValueEnum};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const ETH: usize = ethernet::HEADER_LEN;
const IP: usize = ipv4::HEADER_LEN;
const TCP: usize = tcp::HEADER_LEN;
/// The stamp after the TCP header: magic, flow, TSC.
const STAMP: usize = 16;
const MAGIC: [u8; 4] = *b"RVSg";
#[allow(clippy::cast_possible_truncation)] // 70
const MIN_SIZE: u16 = (ETH + IP + TCP + STAMP) as u16;
const TTL: u8 = 64;
use tcp::flags::{ACK, SYN};
/// Flows of the flood's SYNs are numbered from here (disjoint from established ones).
const FLOOD_BASE: u32 = 1 << 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Est,
    Syn,
    Flood,
}

#[derive(Parser, Debug)]
#[command(name = "rvs-pktgen", about = "pktgen-style traffic generator for RVS (see perf/README.md)")]
struct Args {
    #[arg(long, value_enum, default_value = "est")]
    mode: Mode,
    /// The service's port on the VIP: 80 NAT, 81 DR, 82 TUN in conf/perf.toml.
    #[arg(long, default_value_t = 80)]
    vport: u16,
    /// Concurrent flows (est, flood) or unique SYNs (syn).
    #[arg(long, default_value_t = 1000)]
    flows: u32,
    /// Established-path packets to send (est).
    #[arg(long, default_value_t = 1_000_000)]
    packets: u64,
    /// Unique SYNs of the flood.
    #[arg(long, default_value_t = 1_000_000)]
    syns: u64,
    /// Flood: one established-flow packet after this many SYNs.
    #[arg(long, default_value_t = 10)]
    every: u64,
    /// Packets per second offered (0: as fast as the appliance takes them).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Frame size in bytes without FCS (at least 70: headers and the stamp).
    #[arg(long, default_value_t = MIN_SIZE)]
    size: u16,
    /// Verify every Nth frame received in full (1: all).
    #[arg(long, default_value_t = 16)]
    sample: u64,
    /// Answer each NAT packet as the real server would (both directions through RVS).
    #[arg(long)]
    reflect: bool,
    /// rvsd's Prometheus endpoint, for the worker's busy share.
    #[arg(long)]
    metrics: Option<String>,
    /// The appliance's VIP (client side) and DIP (server side).
    #[arg(long, default_value = "198.18.0.10")]
    vip: Ipv4Addr,
    #[arg(long, default_value = "198.18.1.1")]
    dip: Ipv4Addr,
    /// The generator's own address on the client side (the clients' router).
    #[arg(long, default_value = "198.18.0.2")]
    gateway: Ipv4Addr,
    /// Real servers (the generator answers ARP for them and checks rewrites).
    #[arg(long, value_delimiter = ',', default_value = "198.18.1.11,198.18.1.12")]
    servers: Vec<Ipv4Addr>,
    /// Port on the real servers for NAT (the rewrite checked).
    #[arg(long, default_value_t = 8080)]
    server_port: u16,
    #[arg(long, default_value = "net_memif0")]
    client_dev: String,
    #[arg(long, default_value = "net_memif1")]
    server_dev: String,
    /// EAL arguments, whitespace-separated.
    #[arg(
        long,
        allow_hyphen_values = true,
        default_value = "--no-pci --in-memory -l 0 \
            --vdev=net_memif0,role=client,id=0,socket=/run/rvs/pktgen-client.sock,socket-abstract=no,mac=02:9e:00:00:00:01 \
            --vdev=net_memif1,role=client,id=1,socket=/run/rvs/pktgen-server.sock,socket-abstract=no,mac=02:9e:00:00:00:02"
    )]
    eal: String,
    /// Frames in flight at most (sent, not yet back): below the rings' size (1024
    /// slots by default), so no ring toward the generator can overflow.
    #[arg(long, default_value_t = 512)]
    window: u64,
    /// Established phase: every Nth frame is malformed instead (in turn a bad IP
    /// version, header length, header checksum, TCP data offset), which the
    /// appliance must drop and count by reason; 0: none. They are not expected back.
    #[arg(long, default_value_t = 0)]
    malformed: u64,
    /// Established phase: every Nth frame is instead a SYN opening a new
    /// connection, from a pool of `--new-pool` client tuples taken in turn (a
    /// steady stream of new connections that expire as the pool comes round); 0: none.
    #[arg(long, default_value_t = 0)]
    new_every: u64,
    #[arg(long, default_value_t = 1_000_000)]
    new_pool: u64,
    /// Give up a phase after this many seconds without progress.
    #[arg(long, default_value_t = 3)]
    stall_s: u64,
    #[arg(long)]
    json: bool,
    /// The device under test is a zero-work forwarder (e.g. `dpdk-testpmd` in `io`
    /// mode): no ARP, and frames are checked to reach the server side as they were
    /// sent. What the generator and the ports reach without an appliance's work:
    /// the limit rvsd's figures are measured against.
    #[arg(long)]
    forwarder: bool,
}

/// The destination MAC of frames toward a zero-work forwarder (`--forwarder`).
const FORWARDER_MAC: EthernetAddress = EthernetAddress([0x02, 0x9e, 0, 0, 0, 0xff]);

/// A client endpoint per flow number: 198.19.0.0/16 addresses, ports from 1024.
fn client_of(flow: u32) -> (Ipv4Addr, u16) {
    let [_, _, b2, b3] = flow.to_be_bytes();
    let port = 1024 + u16::try_from(flow >> 16).unwrap_or(0) % 64000;
    (Ipv4Addr::new(198, 19, b2, b3), port)
}

/// One side's port: queues, bursts, MACs.
struct Side {
    rx: RxQueue,
    tx: TxQueue,
    rxb: RxBurst,
    txb: TxBurst,
    mac: EthernetAddress,
    /// The appliance's MAC on this side (learned by ARP).
    peer: EthernetAddress,
    /// TX calls that could not send everything (the appliance was the bottleneck).
    pressured: u64,
    tx_calls: u64,
}

impl Side {
    fn open(name: &str, pool: &Mempool) -> Result<(Port, Side), String> {
        let port = Port::by_name(name).map_err(|e| format!("{name}: {e} (devices: {:?})", Port::all_names()))?;
        let setup = PortSetup {
            queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            mtu: 1500,
            rss_hf: 0,
            rss_key: None,
            promiscuous: true,
        };
        let c = port.configure(&setup, pool).map_err(|e| format!("{name}: {e}"))?;
        // A memif peer (rvsd) may still be closing the previous generator's
        // connection when this one starts: it refuses for a moment, then accepts.
        // On a loaded machine its control thread may take seconds to get there;
        // the wait is bounded all the same.
        let deadline = Instant::now() + Duration::from_secs(15);
        while let Err(e) = port.start(true) {
            if Instant::now() > deadline {
                return Err(format!("{name}: {e}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mac = port.mac().map_err(|e| format!("{name}: {e}"))?;
        let (rx, tx) = c.rx.into_iter().zip(c.tx).next().ok_or_else(|| format!("{name}: no queue"))?;
        let side = Side {
            rx,
            tx,
            rxb: RxBurst::default(),
            txb: TxBurst::default(),
            mac,
            peer: EthernetAddress::BROADCAST,
            pressured: 0,
            tx_calls: 0,
        };
        Ok((port, side))
    }

    /// Sends what is queued; keeps the rest for later (nothing is dropped here).
    fn push(&mut self) {
        if self.txb.is_empty() {
            return;
        }
        self.tx_calls += 1;
        self.tx.send_keep(&mut self.txb);
        if !self.txb.is_empty() {
            self.pressured += 1;
        }
    }

    /// Queues `m`, sending first when the burst is full.
    fn queue(&mut self, m: Mbuf) {
        let mut m = m;
        loop {
            match self.txb.push(m) {
                Ok(()) => return,
                Err(back) => {
                    m = back;
                    self.push();
                }
            }
        }
    }
}

/// Counts and checks of one direction.
#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    received: u64,
    verified: u64,
    bad: u64,
    /// Frames that were not ours (ARP, gratuitous ARP, other).
    other: u64,
    syn: u64,
}

/// Books a sampled frame: verified (the first failure is kept for the report),
/// and its latency, while the preallocated room lasts.
fn sampled(
    tally: &mut Tally,
    latencies: &mut Vec<u64>,
    first_bad: &mut Option<String>,
    side: &str,
    st: &Stamp,
    check: Result<(), String>,
    now: u64,
) {
    tally.verified += 1;
    if let Err(e) = check {
        tally.bad += 1;
        first_bad.get_or_insert_with(|| format!("{side} side, flow {}: {e}", st.flow));
    }
    if latencies.len() < latencies.capacity() {
        latencies.push(now.wrapping_sub(st.tsc));
    }
}

/// What a frame received carried, when it was ours.
struct Stamp {
    flow: u32,
    tsc: u64,
    syn: bool,
}

impl Stamp {
    /// As it is written after the TCP header: magic, flow, TSC.
    fn bytes(&self) -> [u8; STAMP] {
        let mut s = [0u8; STAMP];
        s[..4].copy_from_slice(&MAGIC);
        s[4..8].copy_from_slice(&self.flow.to_be_bytes());
        s[8..].copy_from_slice(&self.tsc.to_be_bytes());
        s
    }
}

struct Gen {
    a: Args,
    pool: Mempool,
    client: Side,
    server: Side,
    hz: u64,
    /// Latencies (TSC ticks) of the sampled frames, by where they arrived.
    lat_server: Vec<u64>,
    lat_client: Vec<u64>,
    /// Frames sent that are not to come back (malformed on purpose).
    not_expected: std::cell::Cell<u64>,
    at_server: Tally,
    at_client: Tally,
    /// Flood: established-flow packets that reached the servers.
    est_received: u64,
    first_bad: Option<String>,
    /// The client frame's constant part and its checksum sums.
    template: Vec<u8>,
    ip_base: u32,
    tcp_base: u32,
    /// One TSC read per burst stamps every frame of it.
    burst_tsc: u64,
}

/// Fills the IPv4 header checksum and the TCP checksum of the packet at `ip` in `b`.
fn fill_checksums(b: &mut [u8], ip: usize) {
    let mut p = ipv4::Packet::new_unchecked(&mut b[ip..]);
    p.fill_checksum();
    let (src, dst, total) = (p.src_addr(), p.dst_addr(), usize::from(p.total_len()));
    tcp::Packet::new_unchecked(&mut p.payload_mut()[..total - IP]).fill_checksum(src, dst);
}

/// An address and a port.
type Endpoint = (Ipv4Addr, u16);

/// The endpoints and TTL of the IPv4/TCP packet at `ip` in `b`, when it is one and
/// both its checksums hold.
fn checked(b: &[u8], ip: usize) -> Option<(Endpoint, Endpoint, u8)> {
    let p = ipv4::Packet::new_checked(b.get(ip..)?).ok()?;
    let t = tcp::Packet::new_checked(p.payload()).ok()?;
    let ok = p.protocol() == protocol::TCP && p.verify_checksum() && t.verify_checksum(p.src_addr(), p.dst_addr());
    ok.then(|| ((p.src_addr(), t.src_port()), (p.dst_addr(), t.dst_port()), p.ttl()))
}

/// The layer of `b` that carries the client's packet: after the outer IPv4 header of
/// an IPIP packet (TUN), else right after Ethernet.
fn inner_ip(b: &[u8]) -> usize {
    match ipv4::Packet::new_checked(b.get(ETH..).unwrap_or(&[])) {
        Ok(outer) if outer.protocol() == protocol::IPIP => ETH + outer.header_len(),
        _ => ETH,
    }
}

impl Gen {
    /// Builds the frame every client frame starts from (after ARP: it carries the
    /// appliance's MAC), and the checksum sums of its constant part.
    fn build_template(&mut self) {
        let size = usize::from(self.a.size);
        let mut b = vec![0u8; size];
        let mut f = ethernet::Frame::new_unchecked(&mut b[..]);
        f.set_dst_addr(self.client.peer);
        f.set_src_addr(self.client.mac);
        f.set_ethertype(ethernet::ethertype::IPV4);
        // Source address, ident, source port, seq, flags, flow and TSC are zero here
        // and added per frame.
        let repr = ipv4::Repr {
            src_addr: Ipv4Addr::UNSPECIFIED,
            dst_addr: self.a.vip,
            protocol: protocol::TCP,
            payload_len: size - ETH - IP,
            ttl: TTL,
            ident: 0,
            dont_frag: true,
        };
        let mut ip = ipv4::Packet::new_unchecked(f.payload_mut());
        repr.emit(&mut ip);
        ip.set_checksum(0);
        let mut t = tcp::Packet::new_unchecked(ip.payload_mut());
        t.set_dst_port(self.a.vport);
        t.set_header_len(TCP);
        t.set_window(65535);
        t.payload_mut()[..MAGIC.len()].copy_from_slice(&MAGIC);
        self.ip_base = checksum::sum(0, &b[ETH..ETH + IP]);
        let seg = u16::try_from(size - ETH - IP).unwrap_or(0);
        let pseudo = checksum::pseudo_header_v4(Ipv4Addr::UNSPECIFIED, self.a.vip, protocol::TCP, seg);
        self.tcp_base = checksum::sum(pseudo, &b[ETH + IP..]);
        self.template = b;
    }

    /// A client's frame for `flow` with TCP `flags`, stamped with the burst's TSC:
    /// the template with the per-frame fields written in, its checksums the
    /// template's sums plus those fields' (the servers' side verifies them in full on
    /// the sample).
    fn client_frame(&self, flow: u32, flags: u8) -> Option<Mbuf> {
        let mut m = Mbuf::alloc(&self.pool)?;
        let b = m.append(self.a.size)?;
        b.copy_from_slice(&self.template);
        let (src, sport) = client_of(flow);
        let ident = u16::try_from(flow & 0xffff).unwrap_or(0);
        let mut ip = ipv4::Packet::new_unchecked(&mut b[ETH..]);
        ip.set_src_addr(src);
        ip.set_ident(ident);
        let mut added = [0u8; 6];
        added[..4].copy_from_slice(&src.octets());
        added[4..].copy_from_slice(&ident.to_be_bytes());
        ip.set_checksum(!checksum::fold(checksum::sum(self.ip_base, &added)));
        let mut t = tcp::Packet::new_unchecked(ip.payload_mut());
        t.set_src_port(sport);
        t.set_seq_number(flow);
        t.set_flags(flags);
        let stamp = Stamp { flow, tsc: self.burst_tsc, syn: false }.bytes();
        t.payload_mut()[..STAMP].copy_from_slice(&stamp);
        // The fields set above, each at an even offset of its header (the flags are
        // the low byte of their 16-bit word), summed on top of the template's sum.
        let mut added = [0u8; 12];
        added[..4].copy_from_slice(&src.octets());
        added[4..6].copy_from_slice(&sport.to_be_bytes());
        added[6..10].copy_from_slice(&flow.to_be_bytes());
        added[11] = flags;
        let acc = checksum::sum(checksum::sum(self.tcp_base, &added), &stamp[MAGIC.len()..]);
        t.set_checksum(!checksum::fold(acc));
        Some(m)
    }

    /// A client frame broken in way `kind` (0..4): IP version 5, IP header length
    /// 16 bytes, a wrong IP header checksum, a TCP data offset of 12 bytes.
    fn malformed_frame(&self, flow: u32, kind: u64) -> Option<Mbuf> {
        let mut m = self.client_frame(flow, ACK)?;
        // Never coming back: not in flight either.
        self.not_expected.set(self.not_expected.get() + 1);
        let b = m.data_mut();
        match kind % 4 {
            0 => b[ETH] = 0x55,
            1 => b[ETH] = 0x44,
            2 => b[ETH + 10] ^= 0xff,
            _ => b[ETH + 20 + 12] = 3 << 4,
        }
        Some(m)
    }

    /// The stamp of a TCP packet at `ip`, if it is one of ours.
    fn stamp(b: &[u8], ip: usize) -> Option<Stamp> {
        let p = ipv4::Packet::new_checked(b.get(ip..)?).ok()?;
        if p.protocol() != protocol::TCP {
            return None;
        }
        let t = tcp::Packet::new_checked(p.payload()).ok()?;
        let s = t.payload().get(..STAMP)?;
        if s[..MAGIC.len()] != MAGIC {
            return None;
        }
        let flow = u32::from_be_bytes([s[4], s[5], s[6], s[7]]);
        let mut tsc = [0u8; 8];
        tsc.copy_from_slice(&s[8..16]);
        Some(Stamp { flow, tsc: u64::from_be_bytes(tsc), syn: t.syn() })
    }

    /// Checks a frame that reached the servers against the forwarding method.
    fn verify_at_server(&self, b: &[u8], flow: u32) -> Result<(), String> {
        let (client, cport) = client_of(flow);
        let f = ethernet::Frame::new_checked(b).map_err(|e| e.to_string())?;
        if self.a.forwarder {
            // Unchanged: as the client side sent it.
            if f.dst_addr() != FORWARDER_MAC || f.src_addr() != self.client.mac {
                return Err("MACs are not as sent".into());
            }
            return self.check_client_packet(b, ETH, (client, cport), (self.a.vip, self.a.vport), TTL);
        }
        if f.dst_addr() != self.server.mac || f.src_addr() != self.server.peer {
            return Err("MACs are not appliance -> server".into());
        }
        match self.a.vport {
            82 => {
                // TUN: DIP -> RIP, protocol 4, the client's packet inside unchanged.
                let outer = ipv4::Packet::new_checked(f.payload()).map_err(|e| format!("outer header: {e}"))?;
                if outer.protocol() != protocol::IPIP || outer.src_addr() != self.a.dip {
                    return Err(format!("TUN outer header: protocol {} from {}", outer.protocol(), outer.src_addr()));
                }
                if !self.a.servers.contains(&outer.dst_addr()) {
                    return Err(format!("TUN outer destination {} is no real server", outer.dst_addr()));
                }
                if !outer.verify_checksum() {
                    return Err("outer IPv4 checksum".into());
                }
                let inner = ETH + outer.header_len();
                self.check_client_packet(b, inner, (client, cport), (self.a.vip, self.a.vport), TTL)
            }
            81 => {
                // DR: only the MACs change.
                self.check_client_packet(b, ETH, (client, cport), (self.a.vip, self.a.vport), TTL)
            }
            _ => {
                // NAT in: destination := a real server's address and port; the TTL
                // stays (IPVS takes the packet at LOCAL_IN, not through forwarding).
                let dst = ipv4::Packet::new_checked(f.payload()).map_err(|e| e.to_string())?.dst_addr();
                if !self.a.servers.contains(&dst) {
                    return Err(format!("NAT destination {dst} is no real server"));
                }
                self.check_client_packet(b, ETH, (client, cport), (dst, self.a.server_port), TTL)
            }
        }
    }

    /// The IPv4/TCP packet at `ip` goes from `src` to `dst` with `ttl`, and both its
    /// checksums hold.
    fn check_client_packet(&self, b: &[u8], ip: usize, src: Endpoint, dst: Endpoint, ttl: u8) -> Result<(), String> {
        let (from, to, got_ttl) = checked(b, ip).ok_or("IPv4 or TCP checksum")?;
        if (from, to) != (src, dst) {
            return Err(format!("tuple {:?}, expected {:?}", (from, to), (src, dst)));
        }
        if got_ttl != ttl {
            return Err(format!("TTL {got_ttl} (expected {ttl})"));
        }
        Ok(())
    }

    /// A reply from the appliance on the client side: VIP:vport -> the client, TTL
    /// one less than the server's (NAT out is forwarded).
    fn verify_at_client(&self, b: &[u8], flow: u32) -> Result<(), String> {
        let f = ethernet::Frame::new_checked(b).map_err(|e| e.to_string())?;
        if f.dst_addr() != self.client.mac || f.src_addr() != self.client.peer {
            return Err("MACs are not appliance -> client".into());
        }
        self.check_client_packet(b, ETH, (self.a.vip, self.a.vport), client_of(flow), TTL - 1)
    }

    /// The servers' answer to a client's packet, in place: MACs, addresses and ports
    /// swapped, an ACK, checksums filled.
    fn reflect(&self, b: &mut [u8]) {
        let mut f = ethernet::Frame::new_unchecked(&mut *b);
        f.set_dst_addr(self.server.peer);
        f.set_src_addr(self.server.mac);
        let mut ip = ipv4::Packet::new_unchecked(f.payload_mut());
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
        ip.set_ttl(TTL);
        let mut t = tcp::Packet::new_unchecked(ip.payload_mut());
        let (sp, dp) = (t.src_port(), t.dst_port());
        t.set_src_port(dp);
        t.set_dst_port(sp);
        t.set_flags(ACK);
        fill_checksums(b, ETH);
    }

    /// Answers ARP requests for the generator's addresses; learns the appliance's MAC
    /// from replies. Returns true when the frame was ARP.
    fn arp(side: &mut Side, pool: &Mempool, mine: &[Ipv4Addr], appliance: Ipv4Addr, b: &[u8]) -> bool {
        let Ok(f) = ethernet::Frame::new_checked(b) else { return false };
        if f.ethertype() != ethernet::ethertype::ARP {
            return false;
        }
        let Ok(p) = arp::Packet::new_checked(f.payload()) else { return true };
        match p.operation() {
            arp::Operation::Reply if p.sender_protocol_addr() == appliance => side.peer = p.sender_hardware_addr(),
            arp::Operation::Request if mine.contains(&p.target_protocol_addr()) => {
                if let Some(mut m) = Mbuf::alloc(pool) {
                    if let Some(out) = m.append(u16::try_from(b.len()).unwrap_or(60)) {
                        out.copy_from_slice(b);
                        let mut f = ethernet::Frame::new_unchecked(&mut *out);
                        f.reflect(side.mac);
                        let mut p = arp::Packet::new_unchecked(f.payload_mut());
                        let target = p.target_protocol_addr();
                        p.make_reply(side.mac);
                        p.set_sender_protocol_addr(target);
                        side.queue(m);
                        side.push();
                    }
                }
            }
            _ => {}
        }
        true
    }

    /// Receives on both sides: counts, verifies a sample, reflects if asked.
    fn poll(&mut self) {
        let now = lcore::tsc();
        // Server side.
        self.server.rx.rx(&mut self.server.rxb);
        while let Some(mut m) = self.server.rxb.next() {
            let b = m.data();
            if Gen::arp(&mut self.server, &self.pool, &self.a.servers, self.a.dip, b) {
                self.at_server.other += 1;
                continue;
            }
            let Some(st) = Gen::stamp(b, inner_ip(b)) else {
                self.at_server.other += 1;
                continue;
            };
            self.at_server.received += 1;
            if st.syn {
                self.at_server.syn += 1;
            }
            if st.flow < FLOOD_BASE {
                self.est_received += u64::from(!st.syn);
            }
            if self.at_server.received.is_multiple_of(self.a.sample) {
                let check = self.verify_at_server(b, st.flow);
                sampled(&mut self.at_server, &mut self.lat_server, &mut self.first_bad, "server", &st, check, now);
            }
            if self.a.reflect && self.a.vport == 80 && !st.syn {
                self.reflect(m.data_mut());
                self.server.queue(m);
            }
        }
        self.server.push();
        // Client side.
        self.client.rx.rx(&mut self.client.rxb);
        while let Some(m) = self.client.rxb.next() {
            let b = m.data();
            if Gen::arp(&mut self.client, &self.pool, &[self.a.gateway], self.a.vip, b) {
                self.at_client.other += 1;
                continue;
            }
            let Some(st) = Gen::stamp(b, ETH) else {
                self.at_client.other += 1;
                continue;
            };
            self.at_client.received += 1;
            if self.at_client.received.is_multiple_of(self.a.sample) {
                let check = self.verify_at_client(b, st.flow);
                sampled(&mut self.at_client, &mut self.lat_client, &mut self.first_bad, "client", &st, check, now);
            }
        }
        self.client.push();
    }

    /// Sends an ARP request from `side` (as `me`, for `target`).
    fn ask(side: &mut Side, pool: &Mempool, me: Ipv4Addr, target: Ipv4Addr) {
        if let Some(mut m) = Mbuf::alloc(pool) {
            if let Some(b) = m.append(u16::try_from(neigh::REQUEST_FRAME_LEN).unwrap_or(60)) {
                neigh::build_request(b, side.mac, me, target);
                side.queue(m);
                side.push();
            }
        }
    }

    /// Learns the appliance's MAC on both sides (ARP for the VIP and the DIP); with
    /// a forwarder, waits until it passes frames.
    fn resolve(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut next_ask = Instant::now();
        if self.a.forwarder {
            // Nothing answers ARP; the forwarder does not look at MACs.
            self.client.peer = FORWARDER_MAC;
            self.server.peer = FORWARDER_MAC;
            // A forwarder passes frames only once it polls its ports (a memif
            // client's receive ring stays empty until its first receive call, on
            // either end): an ARP request goes from the client side until one
            // reaches the server side.
            let seen = self.at_server.other;
            while self.at_server.other == seen {
                if Instant::now() > deadline {
                    return Err("the forwarder passed no frame within 10 s".into());
                }
                if Instant::now() >= next_ask {
                    next_ask = Instant::now() + Duration::from_millis(20);
                    Gen::ask(&mut self.client, &self.pool, self.a.gateway, self.a.vip);
                }
                self.poll();
            }
            return Ok(());
        }
        while self.client.peer.is_broadcast() || self.server.peer.is_broadcast() {
            if Instant::now() > deadline {
                return Err("the appliance did not answer ARP for the VIP and the DIP within 10 s".into());
            }
            if Instant::now() >= next_ask {
                next_ask = Instant::now() + Duration::from_millis(200);
                if self.client.peer.is_broadcast() {
                    Gen::ask(&mut self.client, &self.pool, self.a.gateway, self.a.vip);
                }
                if self.server.peer.is_broadcast() {
                    let me = self.a.servers.first().copied().unwrap_or(self.a.dip);
                    Gen::ask(&mut self.server, &self.pool, me, self.a.dip);
                }
            }
            self.poll();
        }
        Ok(())
    }

    /// Frames sent and not yet seen back: at the servers, or at the clients when
    /// every frame comes back as a reply.
    fn returned(&self, reflect: bool) -> u64 {
        if reflect {
            self.at_client.received
        } else {
            self.at_server.received
        }
    }

    /// Sends `n` frames made by `make(k)` (k = 0..n) at the offered rate while
    /// receiving, never more than `--window` in flight (so the appliance's output
    /// rings toward the generator cannot overflow while the generator is busy
    /// sending); returns when `done()` holds or nothing arrived for `stall_s`, with
    /// the time from the first send to the last frame received.
    fn run_phase(
        &mut self,
        n: u64,
        reflect: bool,
        mut make: impl FnMut(&Gen, u64) -> Option<Mbuf>,
        done: impl Fn(&Gen) -> bool,
    ) -> Duration {
        let t0 = lcore::tsc();
        let mut sent = 0u64;
        let mut last_progress = t0;
        let mut last_seen = (self.at_server.received, self.at_client.received);
        let base = self.returned(reflect);
        let not_expected0 = self.not_expected.get();
        // Frames given up for lost (dropped by the appliance, e.g. a full table).
        let mut written_off = 0u64;
        let hz = self.hz;
        // Frames are given up for lost after half a second of nothing back with the
        // window full. Sooner, a starved appliance (a loaded machine: 100 ms
        // without a poll) would have frames written off that are only late, and
        // the next window sent on top of them would overflow its rings.
        let (lost_after, stall) = (hz / 2, hz * self.a.stall_s);
        let window = self.a.window;
        loop {
            // One TSC read per iteration: pacing, stamps, progress.
            let now = lcore::tsc();
            // As many as the rate and the window allow now, in bursts of up to 32.
            let allowed = if self.a.rate == 0 {
                n
            } else {
                let ticks = u128::from(now.wrapping_sub(t0));
                u64::try_from(ticks * u128::from(self.a.rate) / u128::from(hz)).unwrap_or(u64::MAX).min(n)
            };
            let gone = self.returned(reflect) - base + written_off + (self.not_expected.get() - not_expected0);
            let in_flight = sent.saturating_sub(gone);
            let mut budget = allowed.saturating_sub(sent).min(32).min(window.saturating_sub(in_flight));
            self.burst_tsc = now;
            while budget > 0 && !self.client.txb.is_full() {
                let Some(m) = make(self, sent) else { break };
                self.client.queue(m);
                sent += 1;
                budget -= 1;
            }
            self.client.push();
            self.poll();
            let seen = (self.at_server.received, self.at_client.received);
            if seen != last_seen {
                last_seen = seen;
                last_progress = now;
            } else if in_flight >= window && now.wrapping_sub(last_progress) > lost_after {
                // Blocked by the window with nothing coming back: those are lost.
                written_off = sent - (self.returned(reflect) - base) - (self.not_expected.get() - not_expected0);
            }
            if sent >= n && self.client.txb.is_empty() && done(self) {
                break;
            }
            if now.wrapping_sub(last_progress) > stall {
                break;
            }
        }
        Duration::from_secs_f64(last_progress.wrapping_sub(t0) as f64 / hz as f64)
    }
}

/// What rvsd's /metrics says about its workers.
#[derive(Clone, Copy, Default)]
struct Scrape {
    /// Busy share of the worker lcores since the previous scrape (the exporter
    /// computes it between scrapes), summed over workers.
    busy: f64,
    rx_packets: f64,
    rx_bursts: f64,
}

fn scrape(addr: &str) -> Option<Scrape> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let sum = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    if !text.contains("rvs_lcore_busy_ratio{") {
        return None;
    }
    Some(Scrape {
        busy: sum("rvs_lcore_busy_ratio"),
        rx_packets: sum("rvs_lcore_rx_packets_total"),
        rx_bursts: sum("rvs_lcore_rx_bursts_total"),
    })
}

/// The worker's figures over a phase: (busy share, ns per packet, average burst).
fn worker_figures(before: Option<Scrape>, after: Option<Scrape>, secs: f64) -> Option<(f64, f64, f64)> {
    let (b, a) = (before?, after?);
    let packets = a.rx_packets - b.rx_packets;
    let bursts = a.rx_bursts - b.rx_bursts;
    if packets <= 0.0 || bursts <= 0.0 {
        return None;
    }
    Some((a.busy, a.busy * secs * 1e9 / packets, packets / bursts))
}

/// p50, p99, p99.9 in microseconds.
fn percentiles(v: &mut [u64], hz: u64) -> Option<[f64; 3]> {
    percentiles_permille(v, hz, [500, 990, 999])
}

fn percentiles_permille(v: &mut [u64], hz: u64, qs: [u64; 3]) -> Option<[f64; 3]> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let at = |permille: u64| {
        let i = usize::try_from((v.len() as u64 - 1) * permille / 1000).unwrap_or(0);
        v[i.min(v.len() - 1)] as f64 * 1e6 / hz as f64
    };
    Some(qs.map(at))
}

/// A permutation-ish stride over `flows`: consecutive packets hit flows far apart
/// in the appliance's table (created in order), as real traffic does.
fn stride_for(flows: u64) -> u64 {
    let mut s = 1_000_003u64 % flows.max(1);
    while s > 1 && gcd(s, flows) != 1 {
        s += 1;
    }
    s.max(1)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn main() -> ExitCode {
    let a = Args::parse();
    if a.size < MIN_SIZE || a.size > 1514 {
        eprintln!("rvs-pktgen: --size {} is outside {MIN_SIZE}..=1514", a.size);
        return ExitCode::from(2);
    }
    if a.sample == 0 || a.flows == 0 || a.flows >= FLOOD_BASE || a.every == 0 {
        eprintln!("rvs-pktgen: --sample, --flows and --every must be positive (--flows below {FLOOD_BASE})");
        return ExitCode::from(2);
    }
    match run(a) {
        Ok(ok) => {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("rvs-pktgen: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(a: Args) -> Result<bool, String> {
    if a.forwarder && a.reflect {
        return Err("--forwarder sends one way: no --reflect".into());
    }
    let mut argv = vec!["rvs-pktgen".to_string()];
    argv.extend(a.eal.split_whitespace().map(str::to_string));
    let _eal = Eal::init(&argv).map_err(|e| format!("EAL: {e}"))?;
    let pool = Mempool::new("pktgen", 32767, 256, 2048 + 128, lcore::socket_of(lcore::main_lcore()))
        .map_err(|e| format!("mempool: {e}"))?;
    let (cport, client) = Side::open(&a.client_dev, &pool)?;
    let (sport, server) = Side::open(&a.server_dev, &pool)?;
    // memif comes up once the appliance's end accepts the connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(cport.link().up && sport.link().up) {
        if Instant::now() > deadline {
            return Err(format!(
                "links not up after 10 s (client {}, server {}): is rvsd running with conf/perf.toml?",
                cport.link().up,
                sport.link().up
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let hz = lcore::tsc_hz();
    let samples =
        usize::try_from((a.packets.max(u64::from(a.flows)) + a.syns) / a.sample + 1).unwrap_or(1 << 20).min(1 << 21);
    let mut g = Gen {
        pool,
        client,
        server,
        hz,
        lat_server: Vec::with_capacity(samples),
        lat_client: Vec::with_capacity(samples),
        not_expected: std::cell::Cell::new(0),
        at_server: Tally::default(),
        at_client: Tally::default(),
        est_received: 0,
        first_bad: None,
        template: Vec::new(),
        ip_base: 0,
        tcp_base: 0,
        burst_tsc: 0,
        a,
    };
    g.resolve()?;
    g.build_template();
    let flows = u64::from(g.a.flows);
    let mut report = serde_json::Map::new();
    report.insert("mode".into(), format!("{:?}", g.a.mode).to_lowercase().into());
    report.insert("vport".into(), g.a.vport.into());
    report.insert("flows".into(), flows.into());
    report.insert("size".into(), g.a.size.into());
    report.insert("rate_offered_pps".into(), g.a.rate.into());
    let metrics = g.a.metrics.clone();
    let mut ok = true;

    // Opening: one SYN per flow (the syn mode's whole run).
    let before = metrics.as_deref().and_then(scrape);
    let took = g.run_phase(
        flows,
        false,
        |g, k| g.client_frame(u32::try_from(k).unwrap_or(0), SYN),
        |g| g.at_server.syn >= flows,
    );
    let opened = g.at_server.syn;
    let w = worker_figures(before, metrics.as_deref().and_then(scrape), took.as_secs_f64());
    let cps = opened as f64 / took.as_secs_f64();
    println!(
        "open: {opened}/{flows} SYNs through in {:.3} s: {:.3} M conn/s{}",
        took.as_secs_f64(),
        cps / 1e6,
        w.map(|(b, ns, burst)| format!(", worker {ns:.1} ns/SYN (busy {:.0}%, bursts of {burst:.1})", b * 100.0))
            .unwrap_or_default()
    );
    report.insert("open_syns".into(), opened.into());
    report.insert("new_conn_per_s".into(), cps.into());
    if let Some((_, ns, burst)) = w {
        report.insert("worker_ns_per_syn".into(), ns.into());
        report.insert("worker_burst_syn".into(), burst.into());
    }
    ok &= opened == flows;

    match g.a.mode {
        Mode::Syn => {}
        Mode::Est => {
            let (s0, c0) = (g.at_server, g.at_client);
            g.lat_server.clear();
            g.lat_client.clear();
            let sent = g.a.packets;
            let every = g.a.malformed;
            let (new_every, pool) = (g.a.new_every, g.a.new_pool.clamp(1, u64::from(u32::MAX - FLOOD_BASE)));
            let bad_frames = sent.checked_div(every).unwrap_or(0);
            let new_frames = sent.checked_div(new_every).unwrap_or(0);
            // What should come back: all but the malformed (and no reply to a SYN).
            let n = sent - bad_frames;
            let n_replies = n.saturating_sub(new_frames);
            let stride = stride_for(flows);
            let reflect = g.a.reflect && g.a.vport == 80;
            let before = metrics.as_deref().and_then(scrape);
            let took = g.run_phase(
                sent,
                reflect,
                |g, k| {
                    let flow = u32::try_from((k * stride) % flows).unwrap_or(0);
                    if every > 0 && k % every == every - 1 {
                        g.malformed_frame(flow, k / every)
                    } else if new_every > 0 && k % new_every == new_every - 1 {
                        let j = (k / new_every) % pool;
                        g.client_frame(FLOOD_BASE + u32::try_from(j).unwrap_or(0), SYN)
                    } else {
                        g.client_frame(flow, ACK)
                    }
                },
                |g| {
                    g.at_server.received - s0.received >= n
                        && (!reflect || g.at_client.received - c0.received >= n_replies)
                },
            );
            let after = metrics.as_deref().and_then(scrape);
            let at_s = g.at_server.received - s0.received;
            let at_c = g.at_client.received - c0.received;
            let handled = at_s + at_c;
            let secs = took.as_secs_f64();
            let pps = handled as f64 / secs;
            let lost = n - at_s.min(n) + if reflect { n_replies - at_c.min(n_replies) } else { 0 };
            println!(
                "established: sent {n}{}, at servers {at_s}, at clients {at_c}, lost {lost}; {:.3} Mpps through the worker ({:.1} ns/pkt wall)",
                if reflect { " (+ as many replies)" } else { "" },
                pps / 1e6,
                1e9 / pps
            );
            report.insert("packets".into(), n.into());
            report.insert("malformed".into(), bad_frames.into());
            report.insert("new_syns".into(), new_frames.into());
            report.insert("lost".into(), lost.into());
            report.insert("mpps".into(), (pps / 1e6).into());
            report.insert("ns_per_pkt_wall".into(), (1e9 / pps).into());
            if let Some((b, ns, burst)) = worker_figures(before, after, secs) {
                println!(
                    "worker: busy {:.0}%, average RX burst {burst:.1} -> {ns:.1} ns/pkt (its own cycles, PMD included)",
                    b * 100.0
                );
                report.insert("worker_busy".into(), b.into());
                report.insert("worker_ns_per_pkt".into(), ns.into());
                report.insert("worker_burst".into(), burst.into());
            }
            ok &= lost == 0;
        }
        Mode::Flood => {
            // One ACK per flow first: the flows are ESTABLISHED before the flood.
            let e0 = g.est_received;
            g.run_phase(
                flows,
                false,
                |g, k| g.client_frame(u32::try_from(k).unwrap_or(0), ACK),
                |g| g.est_received - e0 >= flows,
            );
            let established = g.est_received - e0;
            println!("established: {established}/{flows} flows acknowledged");
            ok &= established == flows;
            let est0 = g.est_received;
            let syns = g.a.syns;
            let every = g.a.every;
            let est_packets = syns / every;
            let total = syns + est_packets;
            let stride = stride_for(flows);
            let s0 = g.at_server;
            let before = metrics.as_deref().and_then(scrape);
            let took = g.run_phase(
                total,
                false,
                |g, k| {
                    if k % (every + 1) == every {
                        let j = k / (every + 1);
                        g.client_frame(u32::try_from((j * stride) % flows).unwrap_or(0), ACK)
                    } else {
                        let j = k - k / (every + 1);
                        g.client_frame(FLOOD_BASE + u32::try_from(j).unwrap_or(0), SYN)
                    }
                },
                |g| g.est_received - est0 >= est_packets && g.at_server.syn - s0.syn >= syns,
            );
            let w = worker_figures(before, metrics.as_deref().and_then(scrape), took.as_secs_f64());
            let est_got = g.est_received - est0;
            let syn_got = g.at_server.syn - s0.syn;
            let secs = took.as_secs_f64();
            println!(
                "flood: {syns} unique SYNs sent, {syn_got} forwarded; established packets {est_got}/{est_packets} \
                 (lost {}); {:.3} s, {:.3} M SYN/s offered and taken{}",
                est_packets - est_got.min(est_packets),
                secs,
                syns as f64 / secs / 1e6,
                w.map(|(b, ns, _)| format!(", worker busy {:.0}%, {ns:.1} ns/pkt", b * 100.0)).unwrap_or_default()
            );
            report.insert("syns".into(), syns.into());
            report.insert("syns_forwarded".into(), syn_got.into());
            report.insert("est_packets".into(), est_packets.into());
            report.insert("est_lost".into(), (est_packets - est_got.min(est_packets)).into());
            ok &= est_got >= est_packets;
        }
    }

    let hz = g.hz;
    if let Some([p50, p99, p999]) = percentiles(&mut g.lat_server, hz) {
        // Sorted by now: the worst is the last.
        let max = g.lat_server.last().map_or(0.0, |&t| t as f64 * 1e6 / hz as f64);
        println!("latency to the servers: p50 {p50:.1} us, p99 {p99:.1} us, p99.9 {p999:.1} us, max {max:.1} us");
        report.insert("latency_us_p50".into(), p50.into());
        report.insert("latency_us_p99".into(), p99.into());
        report.insert("latency_us_p999".into(), p999.into());
        report.insert("latency_us_max".into(), max.into());
    }
    if let Some([p50, p99, _]) = percentiles(&mut g.lat_client, hz) {
        println!("round trip (client -> server -> client): p50 {p50:.1} us, p99 {p99:.1} us");
        report.insert("rtt_us_p50".into(), p50.into());
        report.insert("rtt_us_p99".into(), p99.into());
    }
    let verified = g.at_server.verified + g.at_client.verified;
    let bad = g.at_server.bad + g.at_client.bad;
    println!(
        "verified {verified} sampled frames (1 in {}): {bad} bad{}; back-pressure on {:.1}% of sends",
        g.a.sample,
        g.first_bad.as_ref().map(|e| format!(" (first: {e})")).unwrap_or_default(),
        100.0 * g.client.pressured as f64 / g.client.tx_calls.max(1) as f64
    );
    report.insert("verified".into(), verified.into());
    report.insert("bad".into(), bad.into());
    report.insert("backpressure".into(), (g.client.pressured as f64 / g.client.tx_calls.max(1) as f64).into());
    ok &= bad == 0 && verified > 0;
    report.insert("ok".into(), ok.into());
    if g.a.json {
        println!("{}", serde_json::Value::Object(report));
    }
    drop(g);
    let _ = cport.stop();
    let _ = sport.stop();
    Ok(ok)
}
