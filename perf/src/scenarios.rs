//! Scenarios at scale, DPDK-free: the pipeline alone on one core, fed from frames
//! built beforehand (so only the fast path is timed), in a buffer with mbuf-like
//! headroom (TUN's encapsulation prepends in O(1), as on an mbuf).
//!
//! - established NAT (client -> real server, and the replies), DR and TUN, cycling
//!   over 1 k .. 1 M flows whose connections exist; NAT again as worker 0 of two
//!   under software steering (every packet hashed, as the worker does);
//! - new connections: unique-tuple SYNs, each scheduled and entered in the table;
//! - table scale: resident memory per connection at 10 k .. 10 M connections.

use crate::fixtures;
use appliance::net::rss::{Input, RSS_KEY};
use appliance::net::PacketBuf;
use appliance::pipeline::burst::{Fate, Source, BURST};
use appliance::pipeline::steer::Steering;
use appliance::pipeline::{Pipeline, Verdict};
use std::time::Instant;

/// Headroom before the frame, as DPDK's RTE_PKTMBUF_HEADROOM.
const HEADROOM: u8 = 128;

/// The longest frame a buffer holds (a mask: lengths are kept at or below it).
const MAX_LEN: u16 = 2047;

/// A buffer's size: room for any offset a `u8` can hold and the longest frame,
/// plus a cache line, so a burst's buffers (allocated one after the other) start on
/// different cache sets, as a DPDK mempool spreads its objects; at a power-of-two
/// stride their frames would all compete for a few sets of L1.
const STORE: usize = 256 + MAX_LEN as usize + 1 + 64;

/// A buffer's storage, on a cache line of its own as an mbuf's data room is.
#[repr(align(64))]
struct Store([u8; STORE]);

/// A packet buffer shaped like an mbuf: fixed storage, data at an offset. The
/// offset is a `u8` and the length at most `MAX_LEN`, so the data's bounds are
/// inside the storage by construction: taking the slice costs no checks, as an
/// mbuf's data (address + offset, length) costs none.
pub struct Headroom {
    store: Box<Store>,
    start: u8,
    len: u16,
}

impl Headroom {
    pub fn new() -> Headroom {
        Headroom { store: Box::new(Store([0; STORE])), start: HEADROOM, len: 0 }
    }

    /// Starts over with frame `i` of `frames`, as a freshly received mbuf. The
    /// NIC's write costs the core nothing, so the stand-in is as cheap a copy as
    /// can be: a frame of at most `CHUNK` bytes (every timed IPv4 scenario's) is
    /// kept in a chunk of its own and copied as that one fixed-size chunk (the
    /// length says where the frame ends), not through `memcpy`.
    #[inline(always)]
    pub fn load_from(&mut self, frames: &Frames, i: usize) {
        let at = usize::from(HEADROOM);
        // Within the storage (constant bounds): no check is left of it.
        let room = self.store.0.get_mut(at..at + CHUNK).and_then(|r| <&mut [u8; CHUNK]>::try_from(r).ok());
        match (frames.small.get(i), room) {
            (Some(chunk), Some(room)) => {
                *room = *chunk;
                self.start = HEADROOM;
                self.len = u16::try_from(frames.stride).unwrap_or(MAX_LEN);
            }
            _ => self.load(frames.get(i)),
        }
    }

    /// Starts over with `frame`, as a freshly received mbuf.
    pub fn load(&mut self, frame: &[u8]) {
        let len = frame.len().min(usize::from(MAX_LEN));
        self.start = HEADROOM;
        self.len = u16::try_from(len).unwrap_or(MAX_LEN);
        let at = usize::from(HEADROOM);
        self.store.0[at..at + len].copy_from_slice(&frame[..len]);
    }

    /// Where the data is: within `store` whatever `start` and `len` hold.
    #[inline(always)]
    fn span(&self) -> std::ops::Range<usize> {
        let start = usize::from(self.start);
        start..start + usize::from(self.len & MAX_LEN)
    }
}

impl PacketBuf for Headroom {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        &self.store.0[self.span()]
    }
    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        let span = self.span();
        &mut self.store.0[span]
    }
    fn prepend(&mut self, n: usize) -> bool {
        let (start, len) = (usize::from(self.start), usize::from(self.len));
        if n > start || len + n > usize::from(MAX_LEN) {
            return false;
        }
        // Both fit their fields: start - n <= start, len + n <= MAX_LEN.
        self.start = u8::try_from(start - n).unwrap_or(0);
        self.len = u16::try_from(len + n).unwrap_or(MAX_LEN);
        true
    }
    fn truncate(&mut self, len: usize) -> bool {
        match u16::try_from(len) {
            Ok(len) if len <= self.len => {
                self.len = len;
                true
            }
            _ => false,
        }
    }
}

/// How many bytes `Headroom::load_from` copies at once.
const CHUNK: usize = 64;

/// Frames of equal length: each in a chunk of its own when they are at most
/// `CHUNK` bytes long (`small`), else back to back (`bytes`).
pub struct Frames {
    small: Vec<[u8; CHUNK]>,
    bytes: Vec<u8>,
    stride: usize,
}

impl Frames {
    pub fn build(n: usize, f: impl Fn(usize) -> Vec<u8>) -> Frames {
        let first = f(0);
        let stride = first.len();
        let mut frames = Frames { small: Vec::new(), bytes: Vec::new(), stride };
        if stride <= CHUNK {
            frames.small.reserve_exact(n);
        } else {
            frames.bytes.reserve_exact(n * stride);
        }
        for i in 0..n {
            let fr = if i == 0 { first.clone() } else { f(i) };
            assert_eq!(fr.len(), stride, "frames of one scenario have one length");
            if stride <= CHUNK {
                let mut chunk = [0; CHUNK];
                chunk[..stride].copy_from_slice(&fr);
                frames.small.push(chunk);
            } else {
                frames.bytes.extend_from_slice(&fr);
            }
        }
        frames
    }

    pub fn len(&self) -> usize {
        if self.stride <= CHUNK {
            self.small.len()
        } else {
            self.bytes.len() / self.stride
        }
    }

    pub fn get(&self, i: usize) -> &[u8] {
        match self.small.get(i) {
            Some(chunk) => &chunk[..self.stride],
            None => &self.bytes[i * self.stride..(i + 1) * self.stride],
        }
    }
}

/// The client endpoint of flow `i`: 50 000 ports per address in 100.64.0.0/10
/// (routed through the fixtures' default gateway).
pub fn client(i: usize) -> ([u8; 4], u16) {
    let a = i / 50_000;
    let port = 10_000 + u16::try_from(i % 50_000).unwrap_or(0);
    (
        [
            100,
            64 + u8::try_from(a >> 16).unwrap_or(0),
            u8::try_from((a >> 8) & 0xff).unwrap_or(0),
            u8::try_from(a & 0xff).unwrap_or(0),
        ],
        port,
    )
}

/// A client's TCP packet to the VIP, as received on the external port.
pub fn to_vip(i: usize, vport: u16, f: fixtures::Flags) -> Vec<u8> {
    let (src, sport) = client(i);
    fixtures::eth(fixtures::ROUTER_MAC, fixtures::EXT_MAC, &fixtures::tcp(src, sport, fixtures::VIP, vport, f, 64, &[]))
}

/// The clock the scenarios run at (ms): every connection stays young.
pub const NOW_MS: u64 = 5_000;

/// Runs every frame once; returns how many were transmitted. (Never inlined:
/// perf/run counts instructions inside it.)
#[inline(never)]
pub fn feed(p: &mut Pipeline, port: u16, frames: &Frames, mut seen: impl FnMut(usize, &[u8])) -> usize {
    let mut b = Headroom::new();
    let mut sent = 0;
    for i in 0..frames.len() {
        b.load_from(frames, i);
        if let Verdict::Transmit(_) = p.process(port, &mut b, NOW_MS) {
            sent += 1;
            seen(i, b.data());
        }
    }
    sent
}

/// A burst's worth of mbuf-shaped buffers, refilled with the next frames for each
/// burst (as RX refills mbufs).
pub struct Buffers {
    packets: Vec<(Headroom, u16)>,
    fates: [Fate; BURST],
    /// With connection sync on: the entries the worker hands over (a ring's
    /// stand-in, emptied as the control lcore would).
    told: Vec<appliance::ipvs::sync::SyncConn>,
}

impl Buffers {
    pub fn new() -> Buffers {
        Buffers {
            packets: (0..BURST).map(|_| (Headroom::new(), 0)).collect(),
            fates: [Fate::Redirect(0); BURST],
            told: Vec::with_capacity(4096),
        }
    }

    /// Runs the frames `ids` (at most `BURST`) through the pipeline as one burst,
    /// the worker's way (`Pipeline::run_burst`); returns how many were transmitted.
    #[inline]
    pub fn run(&mut self, p: &mut Pipeline, port: u16, frames: &Frames, ids: &[usize]) -> usize {
        let k = ids.len().min(BURST);
        for ((b, in_port), &i) in self.packets.iter_mut().zip(ids) {
            b.load_from(frames, i);
            *in_port = port;
        }
        p.run_burst(&mut self.packets[..k], Source::Wire, NOW_MS, &mut self.fates);
        if !p.director.sync_due.is_empty() {
            // What the worker does between bursts with sync on: each due connection
            // as a sync entry onto the ring.
            for i in 0..p.director.sync_due.len() {
                if self.told.len() == self.told.capacity() {
                    self.told.clear();
                }
                self.told.extend(p.director.sync_entry(p.director.sync_due[i]));
            }
            p.director.sync_due.clear();
        }
        self.fates[..k].iter().filter(|f| matches!(f, Fate::Verdict(Verdict::Transmit(_)))).count()
    }
}

/// As `feed`, the way the worker takes an RX burst: 32 frames at a time through
/// `Pipeline::run_burst` (steered, warmed once the table is large, processed, the
/// burst ended). Returns how many were transmitted. (Never inlined: perf/run counts
/// instructions in it.)
#[inline(never)]
pub fn feed_staged(p: &mut Pipeline, port: u16, frames: &Frames) -> usize {
    let mut bufs = Buffers::new();
    let mut ids = [0usize; BURST];
    let (n, mut start, mut sent) = (frames.len(), 0, 0);
    while start < n {
        let end = (start + BURST).min(n);
        for (slot, i) in ids.iter_mut().zip(start..end) {
            *slot = i;
        }
        sent += bufs.run(p, port, frames, &ids[..end - start]);
        start = end;
    }
    sent
}

/// Times `packets` packets cycling over `frames`; ns per packet. (Never inlined:
/// perf/run counts instructions inside it.)
#[inline(never)]
pub fn time(p: &mut Pipeline, port: u16, frames: &Frames, packets: usize) -> f64 {
    let mut b = Headroom::new();
    let n = frames.len();
    let t0 = Instant::now();
    let mut i = 0;
    for _ in 0..packets {
        b.load_from(frames, i);
        std::hint::black_box(p.process(port, std::hint::black_box(&mut b), NOW_MS));
        i += 1;
        if i == n {
            i = 0;
        }
    }
    t0.elapsed().as_nanos() as f64 / packets as f64
}

/// Like `time`, in bursts of 32 run the way the worker runs them
/// (`Pipeline::run_burst`: steering, warming once the table is large, processing,
/// the end of the burst). (Never inlined: perf/run counts instructions inside it.)
#[inline(never)]
pub fn time_staged(p: &mut Pipeline, port: u16, frames: &Frames, packets: usize) -> f64 {
    let mut bufs = Buffers::new();
    let n = frames.len();
    let t0 = Instant::now();
    let mut next = 0;
    let mut done = 0;
    let mut burst = [0usize; BURST];
    while done < packets {
        let k = BURST.min(packets - done);
        for slot in burst.iter_mut().take(k) {
            *slot = next;
            next = if next + 1 == n { 0 } else { next + 1 };
        }
        std::hint::black_box(bufs.run(p, port, frames, &burst[..k]));
        done += k;
    }
    t0.elapsed().as_nanos() as f64 / packets as f64
}

/// Established traffic over `flows` connections to VIP:`vport`; (ns/pkt client ->
/// server, ns/pkt server -> client when the method is NAT).
/// `staged`: in warmed bursts (`time_staged`) rather than one packet at a time.
pub fn established(vport: u16, flows: usize, packets: usize, staged: bool) -> (f64, Option<f64>) {
    established_on(vport, flows, packets, staged, 1)
}

/// As `established`, the pipeline being worker 0 of `workers` under software
/// steering (every packet hashed; the flows are clients worker 0 owns, so every
/// packet is processed here).
pub fn established_on(vport: u16, flows: usize, packets: usize, staged: bool, workers: u16) -> (f64, Option<f64>) {
    established_with(vport, flows, packets, staged, workers, false, Order::Made)
}

/// The order the timed packets take their connections in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The order the connections were made in: neighbouring packets' connections
    /// are neighbours in the table's slab (one random line per packet: the index's).
    Made,
    /// A fixed random permutation of it: each packet's connection is a random line
    /// too, as with real clients.
    Random,
}

/// A fixed pseudo-random permutation of `0..n` (Fisher-Yates).
fn permutation(n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut rng = crate::memory::XorShift(0x2545_f491_4f6c_dd1d);
    for i in (1..n).rev() {
        v.swap(i, rng.below(i + 1));
    }
    v
}

/// As `established_on`, with connection sync on (`sync`: the kernel's threshold 3
/// and period 50; what is due handed over between bursts as the worker does), the
/// packets taking their connections in `order`.
pub fn established_with(
    vport: u16,
    flows: usize,
    packets: usize,
    staged: bool,
    workers: u16,
    sync: bool,
    order: Order,
) -> (f64, Option<f64>) {
    let steering = Steering::new(RSS_KEY, Input::ClientPort, workers);
    let mut p = fixtures::pipeline_sized(flows, true).with_steering(steering, 0);
    if sync {
        p.director.set_sync(Some(appliance::ipvs::sync::Rules::default()));
    }
    // The clients of worker 0 (all of them with one worker).
    let ids: Vec<usize> = (0..)
        .filter(|&i| {
            let (a, port) = client(i);
            steering.owner(a.into(), port) == 0
        })
        .take(flows)
        .collect();
    let syns = Frames::build(flows, |i| to_vip(ids[i], vport, fixtures::SYN));
    let mut real = vec![[0u8; 4]; flows];
    let created = feed(&mut p, 0, &syns, |i, out| {
        // The IPv4 destination after scheduling: the real server (NAT/DR).
        real[i].copy_from_slice(&out[30..34]);
    });
    assert_eq!(created, flows, "every SYN opens a connection");
    drop(syns);
    // Timed packet j is of flow at[j].
    let at: Vec<usize> = match order {
        Order::Made => (0..flows).collect(),
        Order::Random => permutation(flows),
    };
    let acks = Frames::build(flows, |j| to_vip(ids[at[j]], vport, fixtures::ACK));
    let run = if staged { time_staged } else { time };
    let inbound = run(&mut p, 0, &acks, packets);
    if vport != 80 {
        return (inbound, None);
    }
    drop(acks);
    let replies = Frames::build(flows, |j| {
        let i = at[j];
        let (dst, dport) = client(ids[i]);
        let mac = if real[i] == fixtures::RS1 { fixtures::RS1_MAC } else { fixtures::RS2_MAC };
        fixtures::eth(mac, fixtures::INT_MAC, &fixtures::tcp(real[i], 8080, dst, dport, fixtures::ACK, 64, &[]))
    });
    let back = feed(&mut p, 1, &replies, |_, _| {});
    assert_eq!(back, flows, "every reply is translated");
    (inbound, Some(run(&mut p, 1, &replies, packets)))
}

/// The IPv6 client endpoint of flow `i`: 2001:2:ff00::/40 beyond the fixtures'
/// router 2001:2::1, 50 000 ports per address.
pub fn client6(i: usize) -> ([u8; 16], u16) {
    let (_, port) = client(i);
    let a = u32::try_from(i / 50_000).unwrap_or(u32::MAX).to_be_bytes();
    ([0x20, 0x01, 0, 2, 0xff, 0, 0, 0, 0, 0, 0, 0, a[0], a[1], a[2], a[3]], port)
}

/// Established IPv6 NAT over `flows` connections to [VIP6]:80 (the fixtures'
/// IPv6 service to RS1_6:8080): (ns/pkt client -> server, server -> client), in
/// the same warmed bursts as the IPv4 figures.
pub fn established6(flows: usize, packets: usize) -> (f64, f64) {
    let router6 = std::net::Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
    let mut p = fixtures::pipeline_sized(flows, true)
        .with_routes6(vec![appliance::pipeline::xmit6::Route6 {
            prefix: "2001:2:ff00::/40".parse().expect("a prefix"),
            via: router6,
            port: 0,
        }])
        .with_neighbours6(&[(router6, appliance::net::ethernet::EthernetAddress(fixtures::ROUTER_MAC), 0)]);
    let frame = |i: usize, f: fixtures::Flags| {
        let (src, sport) = client6(i);
        fixtures::eth6(
            fixtures::ROUTER_MAC,
            fixtures::EXT_MAC,
            &fixtures::tcp6(src, sport, fixtures::VIP6, 80, f, 64, &[]),
        )
    };
    let syns = Frames::build(flows, |i| frame(i, fixtures::SYN));
    assert_eq!(feed(&mut p, 0, &syns, |_, _| {}), flows, "every SYN opens a connection");
    drop(syns);
    let acks = Frames::build(flows, |i| frame(i, fixtures::ACK));
    let inbound = time_staged(&mut p, 0, &acks, packets);
    drop(acks);
    let replies = Frames::build(flows, |i| {
        let (dst, dport) = client6(i);
        fixtures::eth6(
            fixtures::RS1_MAC,
            fixtures::INT_MAC,
            &fixtures::tcp6(fixtures::RS1_6, 8080, dst, dport, fixtures::ACK, 64, &[]),
        )
    });
    assert_eq!(feed(&mut p, 1, &replies, |_, _| {}), flows, "every reply is translated");
    (inbound, time_staged(&mut p, 1, &replies, packets))
}

/// New connections per second: `n` unique-tuple SYNs into a table with room.
pub fn new_connections(n: usize) -> f64 {
    new_connections_with(n, false)
}

/// As `new_connections`, with connection sync on or off.
pub fn new_connections_with(n: usize, sync: bool) -> f64 {
    let mut p = fixtures::pipeline_sized(n, true);
    if sync {
        p.director.set_sync(Some(appliance::ipvs::sync::Rules::default()));
    }
    p.director.conns.set_defer_output(true);
    let syns = Frames::build(n, |i| to_vip(i, 80, fixtures::SYN));
    let t0 = Instant::now();
    let created = feed_staged(&mut p, 0, &syns);
    let s = t0.elapsed().as_secs_f64();
    assert_eq!(created, n);
    n as f64 / s
}

/// Resident bytes per connection with `n` connections (whole process, measured
/// from /proc: table, index, timer wheel, everything the connections cost).
pub fn bytes_per_connection(n: usize) -> f64 {
    let before = rss_bytes();
    let mut p = fixtures::pipeline_sized(n, true);
    let mut b = Headroom::new();
    let mut created = 0usize;
    for i in 0..n {
        b.load(&to_vip(i, 80, fixtures::SYN));
        if let Verdict::Transmit(_) = p.process(0, &mut b, NOW_MS) {
            created += 1;
        }
    }
    assert_eq!(created, n);
    let after = rss_bytes();
    drop(p);
    after.saturating_sub(before) as f64 / n as f64
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
