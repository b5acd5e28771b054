//! The worker lcore loop: for each port, receive a burst and run it through the
//! pipeline (`Pipeline::run_burst`: steering, warming, processing), then carry out
//! each packet's fate: gather it for sending, hold it for ARP, hand it to the worker
//! that owns it. Then the packets other workers handed over, the same way; then
//! send, and count what the NIC did not take. Between bursts: the control plane's
//! requests (`Agent`), packets waiting for ARP, connection expiry, the stop flag,
//! and an optional idle back-off.

use crate::dpdk::lcore;
use crate::dpdk::mbuf::{FreeBurst, Mbuf, RxBurst, TxBurst};
use crate::dpdk::mempool::Mempool;
use crate::dpdk::port::{RxQueue, TxQueue};
use crate::net::ethernet;
use crate::pipeline::burst::{Burst, Fate, Source, BURST};
use crate::pipeline::counters::{Counters, DropReason};
use crate::pipeline::nd;
use crate::pipeline::neigh::{self, NeighUpdate};
use crate::pipeline::{Pipeline, Verdict};
use ringbuf::traits::{Consumer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Packets that may wait for ARP at once, per worker.
pub const HOLD_MAX: usize = 64;
/// How long a packet waits for its next hop's MAC.
pub const HOLD_MS: u64 = 1000;
/// Connection-table entries looked at per expiry pass.
const EXPIRE_BUDGET: usize = 512;

/// What a worker does for the control plane, between bursts and in bounded time:
/// take a new configuration, answer requests about its state. The daemon provides
/// it; the worker only calls it.
pub trait Agent: Send {
    /// Called once per loop iteration with the worker's pipeline and clock.
    fn between_bursts(&mut self, pipeline: &mut Pipeline, now_ms: u64);
}

/// A packet waiting for its next hop's MAC.
struct Held {
    m: Mbuf,
    port: u16,
    next_hop: IpAddr,
    deadline_ms: u64,
    /// An ARP request went out for it (false when no buffer was free for one:
    /// the next packet for this hop asks again).
    asked: bool,
}

/// A packet on its way to the worker that owns it.
pub struct Redirect {
    pub m: Mbuf,
    pub port: u16,
}

/// Rings out of a worker (one per peer, None for itself) and into it: packets
/// for their owner, and neighbours learned (every worker needs every MAC).
pub struct Rings {
    pub to: Vec<Option<HeapProd<Redirect>>>,
    pub from: Vec<HeapCons<Redirect>>,
    pub neigh_to: Vec<Option<HeapProd<NeighUpdate>>>,
    pub neigh_from: Vec<HeapCons<NeighUpdate>>,
}

/// Builds the single-producer / single-consumer rings between `n` workers, one
/// per ordered pair, each holding `capacity` packets.
pub fn rings(n: usize, capacity: usize) -> Vec<Rings> {
    let mut out: Vec<Rings> = (0..n)
        .map(|_| Rings {
            to: (0..n).map(|_| None).collect(),
            from: Vec::new(),
            neigh_to: (0..n).map(|_| None).collect(),
            neigh_from: Vec::new(),
        })
        .collect();
    for i in 0..n {
        for j in 0..n {
            if i != j {
                let (p, c) = HeapRb::<Redirect>::new(capacity).split();
                out[i].to[j] = Some(p);
                out[j].from.push(c);
                let (p, c) = HeapRb::<NeighUpdate>::new(64).split();
                out[i].neigh_to[j] = Some(p);
                out[j].neigh_from.push(c);
            }
        }
    }
    out
}

/// Everything one worker owns.
pub struct Worker<A> {
    pub lcore: u32,
    /// This worker's index (its pipeline steers by it).
    pub index: u16,
    pub rings: Rings,
    /// One (RX, TX) queue pair per port, indexed by port index.
    pub queues: Vec<(RxQueue, TxQueue)>,
    pub pipeline: Pipeline,
    /// Buffers for the packets the worker makes itself (ARP requests).
    pub pool: Arc<Mempool>,
    pub stop: Arc<AtomicBool>,
    pub idle_sleep_us: u32,
    /// The control plane's side of this worker.
    pub agent: A,
    /// A burst's dropped and consumed packets, freed together at its end.
    pub dropped: FreeBurst,
}

impl<A: Agent> Worker<A> {
    /// The loop; returns when `stop` is set.
    pub fn run(mut self) -> i32 {
        let ms_ticks = (lcore::tsc_hz() / 1000).max(1);
        let nports = self.queues.len();
        let mut rx = RxBurst::default();
        let mut burst = Burst::default();
        let mut fates = [Fate::Redirect(0); BURST];
        let mut tx: Vec<TxBurst> = (0..nports).map(|_| TxBurst::default()).collect();
        let mut held: Vec<Held> = Vec::with_capacity(HOLD_MAX);
        let counters = Arc::clone(&self.pipeline.counters);
        tracing::info!(
            lcore = self.lcore,
            index = self.index,
            workers = self.pipeline.steering().workers,
            ports = nports,
            "worker started"
        );
        self.pipeline.director.conns.set_defer_output(true);
        if self.index == 0 {
            self.gratuitous_arp(&mut tx, &counters);
        }
        // One TSC read per iteration (about 10 ns each on some machines): an
        // iteration starts where the previous one ended.
        let mut last_tsc = lcore::tsc();
        while !self.stop.load(Ordering::Relaxed) {
            let start = last_tsc;
            let now_ms = start / ms_ticks;
            self.agent.between_bursts(&mut self.pipeline, now_ms);
            let mut received = 0;
            for in_port in 0..nports {
                let n = self.queues[in_port].0.rx(&mut rx);
                if n == 0 {
                    continue;
                }
                received += n;
                counters.rx_packets.add(n as u64);
                counters.rx_bursts.inc();
                let port = u16::try_from(in_port).unwrap_or(u16::MAX);
                for m in rx.by_ref() {
                    // The frame's first line asked for now: the burst's decode
                    // reads them one after another (a frame another core wrote
                    // is a miss each).
                    crate::dpdk::prefetch::prefetch(m.data().as_ptr());
                    // An RX burst is at most BURST long: it always fits.
                    let _ = burst.push(m, port);
                }
                self.pipeline.run_burst(burst.packets_mut(), Source::Wire, now_ms, &mut fates);
                self.carry_out(&mut burst, &fates, now_ms, &mut tx, &mut held, &counters);
            }
            // Neighbours the other workers learned; then what this one learned.
            for r in 0..self.rings.neigh_from.len() {
                while let Some(u) = self.rings.neigh_from[r].try_pop() {
                    match u.addr {
                        IpAddr::V4(a) => self.pipeline.neigh.learn(a, u.mac, u.port, now_ms, true),
                        IpAddr::V6(a) => self.pipeline.neigh6.learn(a, u.mac, u.port, now_ms, true),
                    };
                }
            }
            if !self.pipeline.neigh_updates.is_empty() {
                for u in self.pipeline.neigh_updates.drain() {
                    for ring in self.rings.neigh_to.iter_mut().flatten() {
                        let _ = ring.try_push(u);
                    }
                }
            }
            // Packets other workers received for connections this one owns.
            for r in 0..self.rings.from.len() {
                while !burst.is_full() {
                    let Some(Redirect { m, port }) = self.rings.from[r].try_pop() else { break };
                    let _ = burst.push(m, port);
                }
                if !burst.is_empty() {
                    received += burst.len();
                    self.pipeline.run_burst(burst.packets_mut(), Source::Peer, now_ms, &mut fates);
                    self.carry_out(&mut burst, &fates, now_ms, &mut tx, &mut held, &counters);
                }
            }
            if !held.is_empty() {
                self.release_held(&mut held, &mut tx, now_ms, &counters);
            }
            for (out, burst) in tx.iter_mut().enumerate() {
                flush(&mut self.queues[out].1, burst, &counters);
            }
            self.pipeline.expire(now_ms, EXPIRE_BUDGET);
            // Busy ratio: cycles of iterations that had work, over all cycles.
            let end = lcore::tsc();
            let took = end.wrapping_sub(start);
            if received > 0 {
                counters.busy_cycles.add(took);
            }
            // The longest the RX queues waited between two polls (idle sleeps aside).
            counters.longest_loop_cycles.raise(took);
            counters.loop_cycles.add(end.wrapping_sub(last_tsc));
            last_tsc = end;
            counters.conn_table_len.set(self.pipeline.director.conns.len() as u64);
            if received == 0 && self.idle_sleep_us > 0 {
                std::thread::sleep(std::time::Duration::from_micros(u64::from(self.idle_sleep_us)));
                // The sleep counts as idle time in the next iteration's loop cycles
                // only: busy cycles start after it.
                let woke = lcore::tsc();
                counters.loop_cycles.add(woke.wrapping_sub(last_tsc));
                last_tsc = woke;
            }
        }
        // Packets still in flight to this worker are freed with the rings.
        tracing::info!(lcore = self.lcore, "worker stopped");
        0
    }

    /// Carries out the fate of each packet of a burst the pipeline has run.
    fn carry_out(
        &mut self,
        burst: &mut Burst<Mbuf>,
        fates: &[Fate; BURST],
        now_ms: u64,
        tx: &mut [TxBurst],
        held: &mut Vec<Held>,
        counters: &Counters,
    ) {
        for ((m, in_port), fate) in burst.drain().zip(fates) {
            match *fate {
                Fate::Redirect(owner) => self.redirect(owner, m, in_port, counters),
                Fate::Verdict(Verdict::Transmit(out)) => self.send(tx, out, m, counters),
                Fate::Verdict(Verdict::Hold { port, next_hop, src }) => {
                    if held.len() >= HOLD_MAX {
                        counters.count_drop(DropReason::HoldFull);
                        continue;
                    }
                    let hop = IpAddr::V4(next_hop);
                    let mut asked = held.iter().any(|h| h.next_hop == hop && h.asked);
                    if !asked {
                        asked = self.arp_request(tx, port, src, next_hop, counters);
                    }
                    held.push(Held { m, port, next_hop: hop, deadline_ms: now_ms + HOLD_MS, asked });
                }
                Fate::Verdict(Verdict::Hold6 { port, hop }) => {
                    let next_hop = self.pipeline.held_hop6(hop);
                    if held.len() >= HOLD_MAX {
                        counters.count_drop(DropReason::HoldFull);
                        continue;
                    }
                    let hop = IpAddr::V6(next_hop);
                    let mut asked = held.iter().any(|h| h.next_hop == hop && h.asked);
                    if !asked {
                        asked = self.solicit(tx, port, next_hop, counters);
                    }
                    held.push(Held { m, port, next_hop: hop, deadline_ms: now_ms + HOLD_MS, asked });
                }
                // Dropped (and counted by the pipeline) or consumed: freed together.
                Fate::Verdict(Verdict::Consumed | Verdict::Drop(_)) => self.dropped.push(m),
            }
        }
        self.dropped.free();
    }

    /// Hands a packet to the worker that owns it.
    fn redirect(&mut self, owner: u16, m: Mbuf, port: u16, counters: &Counters) {
        let Some(Some(ring)) = self.rings.to.get_mut(usize::from(owner)) else {
            counters.count_drop(DropReason::UnknownPort);
            return;
        };
        match ring.try_push(Redirect { m, port }) {
            Ok(()) => counters.redirected.inc(),
            Err(r) => {
                drop(r);
                counters.count_drop(DropReason::RingFull);
            }
        }
    }

    fn send(&mut self, tx: &mut [TxBurst], out: u16, m: Mbuf, counters: &Counters) {
        let out = usize::from(out);
        let Some(burst) = tx.get_mut(out) else {
            counters.count_drop(DropReason::UnknownPort);
            return;
        };
        if burst.is_full() {
            flush(&mut self.queues[out].1, burst, counters);
        }
        // Just flushed: there is room unless the NIC took nothing.
        if burst.push(m).is_err() {
            counters.count_drop(DropReason::TxFull);
        }
    }

    /// Sends held packets whose next hop is now known; drops those that waited too long.
    fn release_held(&mut self, held: &mut Vec<Held>, tx: &mut [TxBurst], now_ms: u64, counters: &Counters) {
        let mut i = 0;
        while i < held.len() {
            let known = match held[i].next_hop {
                IpAddr::V4(a) => self.pipeline.neigh.lookup(a),
                IpAddr::V6(a) => self.pipeline.neigh6.lookup(a),
            };
            if let Some(n) = known {
                let mac = n.mac;
                let mut h = held.swap_remove(i);
                ethernet::Frame::new_unchecked(h.m.data_mut()).set_dst_addr(mac);
                self.send(tx, h.port, h.m, counters);
            } else if held[i].deadline_ms <= now_ms {
                drop(held.swap_remove(i));
                counters.count_drop(DropReason::NeighUnresolved);
            } else {
                i += 1;
            }
        }
    }

    /// Announces every owned address on its port (ARP request for itself, an
    /// unsolicited neighbour advertisement for an IPv6 one), so neighbours learn
    /// where the VIPs and DIPs are now.
    fn gratuitous_arp(&mut self, tx: &mut [TxBurst], counters: &Counters) {
        let owned: Vec<(u16, IpAddr)> = self
            .pipeline
            .ports()
            .iter()
            .enumerate()
            .flat_map(|(i, v)| {
                let port = u16::try_from(i).unwrap_or(u16::MAX);
                let v4 = v.addresses.iter().map(move |c| (port, IpAddr::V4(c.address())));
                v4.chain(v.addresses6.iter().map(move |c| (port, IpAddr::V6(c.address()))))
            })
            .collect();
        for (port, addr) in owned {
            let _ = match addr {
                IpAddr::V4(a) => self.arp_request(tx, port, a, a, counters),
                IpAddr::V6(a) => self.advertise(tx, port, a, counters),
            };
        }
        for (out, burst) in tx.iter_mut().enumerate() {
            flush(&mut self.queues[out].1, burst, counters);
        }
    }

    /// Sends an unsolicited neighbour advertisement of `addr` out of `port`.
    fn advertise(&mut self, tx: &mut [TxBurst], port: u16, addr: Ipv6Addr, counters: &Counters) -> bool {
        let Some(mac) = self.pipeline.ports().get(usize::from(port)).map(|v| v.mac) else { return false };
        let sent = self.send_made(tx, port, nd::SOLICIT_FRAME_LEN, counters, |room| {
            nd::build_unsolicited_advert(room, mac, addr);
        });
        if sent {
            counters.nd_adverts.inc();
        }
        sent
    }

    /// Sends a neighbour solicitation for `target` out of `port`, from the port's
    /// address on the target's prefix (else its link-local one); false when it
    /// could not.
    fn solicit(&mut self, tx: &mut [TxBurst], port: u16, target: Ipv6Addr, counters: &Counters) -> bool {
        let Some(view) = self.pipeline.ports().get(usize::from(port)) else { return false };
        let (mac, src) = (
            view.mac,
            view.addresses6
                .iter()
                .find(|c| c.contains(target))
                .map_or_else(|| crate::net::ipv6::link_local(view.mac), |c| c.address()),
        );
        let sent = self.send_made(tx, port, nd::SOLICIT_FRAME_LEN, counters, |room| {
            nd::build_solicitation(room, mac, src, target);
        });
        if sent {
            counters.arp_requests.inc();
        }
        sent
    }

    /// Sends "who has `target`" out of `port`; false when it could not.
    fn arp_request(
        &mut self,
        tx: &mut [TxBurst],
        port: u16,
        src: Ipv4Addr,
        target: Ipv4Addr,
        counters: &Counters,
    ) -> bool {
        let Some(mac) = self.pipeline.ports().get(usize::from(port)).map(|v| v.mac) else { return false };
        let sent = self.send_made(tx, port, neigh::REQUEST_FRAME_LEN, counters, |room| {
            neigh::build_request(room, mac, src, target);
        });
        if sent {
            counters.arp_requests.inc();
        }
        sent
    }

    /// Sends a frame of `len` bytes the worker makes itself (`build` writes it) out
    /// of `port`; false when no buffer was free (counted: a held packet then stays
    /// held, and the next one for its hop asks again).
    fn send_made(
        &mut self,
        tx: &mut [TxBurst],
        port: u16,
        len: usize,
        counters: &Counters,
        build: impl FnOnce(&mut [u8]),
    ) -> bool {
        let Some(mut m) = Mbuf::alloc(&self.pool) else {
            counters.alloc_failed.inc();
            return false;
        };
        let Some(room) = u16::try_from(len).ok().and_then(|n| m.append(n)) else { return false };
        build(room);
        self.send(tx, port, m, counters);
        true
    }
}

fn flush(q: &mut TxQueue, burst: &mut TxBurst, counters: &Counters) {
    let (sent, freed) = q.flush(burst);
    counters.tx_packets.add(sent as u64);
    if freed > 0 {
        counters.drop_n(DropReason::TxFull, freed as u64);
    }
}
