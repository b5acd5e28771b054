//! A burst through the pipeline, the way a worker runs it and the benchmarks time
//! it: every packet steered to the worker that owns it, the burst's connection-table
//! lines warmed (index words, then connections, so their cache misses overlap), the
//! packets this worker owns processed in place, then the end of the burst (new
//! connections' reply tuples enter the index). What becomes of each packet — sent,
//! held for ARP, dropped, handed to another worker — is its `Fate`, for the caller to
//! carry out: the worker with mbufs and rings, perf/ with plain buffers.

use super::counters::DropReason;
use super::meta::{self, Class, Meta};
use super::steer::Steer;
use super::{Pipeline, Verdict};
use crate::net::PacketBuf;

pub use crate::net::buf::BURST;

/// Where a burst's packets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Received from a port: steered first.
    Wire,
    /// Handed over by the worker that received them: they are here already.
    Peer,
}

/// What became of one packet of a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Processed here: the pipeline's verdict (the frame rewritten in place).
    Verdict(Verdict),
    /// Owned by worker `0`: hand it over as it is.
    Redirect(u16),
}

/// Up to `BURST` packets, each with the port it arrived on. Its room is taken once;
/// filling and emptying it never allocates.
pub struct Burst<B> {
    packets: Vec<(B, u16)>,
}

impl<B> Default for Burst<B> {
    fn default() -> Self {
        Burst { packets: Vec::with_capacity(BURST) }
    }
}

impl<B: PacketBuf> Burst<B> {
    /// Adds a packet received on `port`; gives it back when the burst is full.
    pub fn push(&mut self, buf: B, port: u16) -> Result<(), B> {
        if self.is_full() {
            return Err(buf);
        }
        self.packets.push((buf, port));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.packets.len() == BURST
    }

    /// Takes the packets out, in order, with their ports.
    pub fn drain(&mut self) -> impl Iterator<Item = (B, u16)> + '_ {
        self.packets.drain(..)
    }

    /// The packets, in place (what `Pipeline::run_burst` runs).
    pub fn packets_mut(&mut self) -> &mut [(B, u16)] {
        &mut self.packets
    }
}

impl Pipeline {
    /// Runs a burst of packets (each with the port it arrived on; at most `BURST`)
    /// through steering (packets from the wire), warming and processing, then ends
    /// the burst. `fates[i]` says what became of packet `i`; the packets stay where
    /// they are for the caller to send, hold, hand over or free.
    pub fn run_burst<B: PacketBuf>(
        &mut self,
        packets: &mut [(B, u16)],
        source: Source,
        now_ms: u64,
        fates: &mut [Fate; BURST],
    ) {
        // One decode per packet, shared by steering, warming and processing: all
        // first when the burst is steered or warmed, else each as it is processed.
        // (Each way is a function of its own: the registers of one loop are not
        // spent by another's.)
        let n = packets.len().min(BURST);
        let packets = &mut packets[..n];
        self.begin(now_ms);
        let warm = self.warm_worthwhile();
        // With one worker, or for packets a peer handed over, everything is here.
        let steer = source == Source::Wire && self.steering.workers > 1;
        if warm || steer {
            let syns = self.decode_all(packets);
            if warm {
                self.run_warmed(packets, syns, steer, now_ms, fates);
            } else {
                self.run_staged(packets, steer, now_ms, fates);
            }
        } else {
            self.run_each(packets, now_ms, fates);
        }
        self.end_burst();
    }

    /// Decodes the burst's packets into `metas`; returns how many are SYNs.
    #[inline(always)]
    fn decode_all<B: PacketBuf>(&mut self, packets: &[(B, u16)]) -> usize {
        let mut syns = 0;
        for (m, (b, _)) in self.metas.iter_mut().zip(packets.iter()) {
            meta::decode_into(
                m,
                b.data(),
                b.ip_checksum_good(),
                |t| self.director.conns.hash(t),
                |t| self.director.conns6.hash(t),
            );
            syns += usize::from(m.is_syn());
        }
        syns
    }

    /// The decoded burst, warmed as it is processed.
    #[inline(never)]
    fn run_warmed<B: PacketBuf>(
        &mut self,
        packets: &mut [(B, u16)],
        syns: usize,
        steer: bool,
        now_ms: u64,
        fates: &mut [Fate; BURST],
    ) {
        let n = packets.len().min(BURST);
        // Warming runs ahead of processing, so the misses overlap with work
        // instead of the burst waiting for them all: packet i + AHEAD's
        // connection is asked for as packet i is processed, and before it its
        // index line — every index line of the burst first, or, in a burst of
        // mostly SYNs (each far more work than a known connection's packet),
        // 2 * AHEAD packets ahead. (Every line first: 3-7 ns a packet less at 1 M
        // flows; a burst of SYNs ran 4-7 % slower that way.) Stage 1 leaves in
        // each decode where its lookup will start: good while its family's index
        // stays as it is now.
        self.warmed_at = (self.director.conns.index_changes(), self.director.conns6.index_changes());
        let index_ahead = if 2 * syns > n { 2 * AHEAD } else { n };
        for m in &self.metas[..index_ahead.min(n)] {
            self.warm_meta(m, 0);
        }
        for j in 0..n.min(AHEAD) {
            self.metas[j].hint = self.warm_meta(&self.metas[j], 1);
        }
        for (i, ((b, port), fate)) in packets.iter_mut().zip(fates.iter_mut()).enumerate().take(n) {
            if let Some(m) = self.metas[..n].get(i + index_ahead) {
                self.warm_meta(m, 0);
            }
            if i + AHEAD < n {
                self.metas[i + AHEAD].hint = self.warm_meta(&self.metas[i + AHEAD], 1);
            }
            let m = self.metas[i];
            self.take(b, *port, &m, steer, now_ms, fate);
        }
    }

    /// The decoded burst, processed (steered first when `steer`).
    #[inline(never)]
    fn run_staged<B: PacketBuf>(
        &mut self,
        packets: &mut [(B, u16)],
        steer: bool,
        now_ms: u64,
        fates: &mut [Fate; BURST],
    ) {
        for (i, ((b, port), fate)) in packets.iter_mut().zip(fates.iter_mut()).enumerate().take(BURST) {
            let m = self.metas[i];
            self.take(b, *port, &m, steer, now_ms, fate);
        }
    }

    /// The burst, each packet decoded as it is processed (here already: not
    /// steered, and not warmed).
    #[inline(never)]
    fn run_each<B: PacketBuf>(&mut self, packets: &mut [(B, u16)], now_ms: u64, fates: &mut [Fate; BURST]) {
        // Each packet decoded into the same place (written whole every time).
        let mut m = Meta::default();
        for ((b, port), fate) in packets.iter_mut().zip(fates.iter_mut()) {
            meta::decode_into(
                &mut m,
                b.data(),
                b.ip_checksum_good(),
                |t| self.director.conns.hash(t),
                |t| self.director.conns6.hash(t),
            );
            self.take(b, *port, &m, false, now_ms, fate);
        }
    }

    /// One packet of a burst, decoded as `m`: handed over when another worker owns
    /// it, else processed here.
    #[inline(always)]
    fn take<B: PacketBuf>(&mut self, b: &mut B, port: u16, m: &Meta, steer: bool, now_ms: u64, fate: &mut Fate) {
        if !b.is_contiguous() {
            self.counters.count_drop(DropReason::MultiSegment);
            *fate = Fate::Verdict(Verdict::Drop(DropReason::MultiSegment));
            return;
        }
        // A port steering in hardware has delivered whole TCP/UDP to its owner.
        let here = !steer || (m.class == Class::Transport && self.steering.hardware(port));
        match (!here).then(|| self.steering.steer_decoded(m, b.data(), |a| self.knows(a), |a| self.knows6(a))) {
            Some(Steer::Owner(o)) if o != self.worker => *fate = Fate::Redirect(o),
            _ => self.process_into(port, b, m, now_ms, fate),
        }
    }
}

/// How many packets ahead of the one processed a connection is warmed.
const AHEAD: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::steer::Steering;
    use crate::pipeline::testutil::*;

    #[test]
    fn a_burst_is_steered_processed_and_ended() {
        // Two workers: this pipeline is worker 0. A ping to the VIP stays here;
        // a TCP packet whose client hashes to worker 1 is handed over untouched.
        let steering = Steering::new(crate::net::rss::RSS_KEY, crate::net::rss::Input::ClientPort, 2);
        let mut p = pipeline().with_steering(steering, 0);
        let client_port = (1024..u16::MAX).find(|&port| steering.owner(CLIENT, port) == 1).unwrap();
        let tcp = tcp_to_vip(client_port);
        let mut burst = Burst::default();
        burst.push(ping_to_vip(), 0).unwrap();
        burst.push(tcp.clone(), 0).unwrap();
        let mut fates = [Fate::Redirect(0); BURST];
        p.run_burst(burst.packets_mut(), Source::Wire, 0, &mut fates);
        assert_eq!(fates[0], Fate::Verdict(Verdict::Transmit(0)), "echo reply");
        assert_eq!(fates[1], Fate::Redirect(1));
        let out: Vec<_> = burst.drain().collect();
        assert_eq!(out[1], (tcp.clone(), 0), "a redirected packet is left as it was");
        // Handed over to its owner, it is not steered again.
        let mut p1 = pipeline().with_steering(steering, 1);
        let mut burst = Burst::default();
        burst.push(tcp, 0).unwrap();
        p1.run_burst(burst.packets_mut(), Source::Peer, 0, &mut fates);
        assert_eq!(fates[0], Fate::Verdict(Verdict::Drop(DropReason::NoService)), "processed by its owner");
    }

    #[test]
    fn a_burst_holds_at_most_burst_packets() {
        let mut burst = Burst::default();
        for _ in 0..BURST {
            burst.push(vec![0u8; 60], 0).unwrap();
        }
        assert!(burst.is_full());
        assert_eq!(burst.push(vec![1u8; 60], 0), Err(vec![1u8; 60]));
        assert_eq!(burst.drain().count(), BURST);
        assert!(burst.is_empty());
    }
}
