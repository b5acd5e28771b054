//! How the control lcore and the workers reach each other. Each worker has a request
//! channel and a reply channel, both made once at start (bounded: sending allocates
//! nothing), and reads published configuration snapshots; the control side
//! (`ChannelWorkers`, what `control::server` asks through) sends requests and
//! publishes, the worker side (`ControlAgent`, what the worker calls between bursts)
//! adopts snapshots and answers. No lock is taken on the data path, and the worker
//! allocates and frees nothing for a request: listings come with their buffers.

use crate::control::agent::{self, ConnEntry, Envelope, WorkerReply, WorkerRequest, CONN_CHUNK, COUNTER_CHUNK};
use crate::control::model::Model;
use crate::control::protocol::{Change, ServiceInfo, ServiceKey};
use crate::control::server::Workers;
use crate::control::snapshot::{Catchup, Published, Snapshot};
use crate::control::sync::Switch;
use crate::dpdk::lcore;
use crate::ipvs::sync::SyncConn;
use crate::pipeline::Pipeline;
use crate::worker::Agent;
use crossbeam_channel::{Receiver, Sender};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sync entries a ring between a worker and the control lcore holds.
pub const SYNC_RING: usize = 16_384;
/// Synced entries a worker enters per loop iteration.
const SYNC_APPLY_SLICE: usize = 256;

/// A worker's side of connection sync: its connections out to the control lcore,
/// peers' connections in, and the switch saying whether to queue at all.
pub struct SyncLink {
    out: ringbuf::HeapProd<SyncConn>,
    inbox: ringbuf::HeapCons<SyncConn>,
    switch: Arc<Switch>,
    seen: u64,
}

/// The control lcore's side: every worker's connections in, and a way into each
/// worker for what peers sent.
pub struct SyncRings {
    pub from_workers: Vec<ringbuf::HeapCons<SyncConn>>,
    pub to_workers: Vec<ringbuf::HeapProd<SyncConn>>,
}

/// The sync rings of `n` workers, made once at start.
pub fn sync_rings(n: usize, switch: &Arc<Switch>) -> (Vec<SyncLink>, SyncRings) {
    let mut links = Vec::with_capacity(n);
    let mut rings = SyncRings { from_workers: Vec::with_capacity(n), to_workers: Vec::with_capacity(n) };
    for _ in 0..n {
        let (out, from) = ringbuf::HeapRb::<SyncConn>::new(SYNC_RING).split();
        let (to, inbox) = ringbuf::HeapRb::<SyncConn>::new(SYNC_RING).split();
        rings.from_workers.push(from);
        rings.to_workers.push(to);
        links.push(SyncLink { out, inbox, switch: Arc::clone(switch), seen: u64::MAX });
    }
    (links, rings)
}

/// How long the control lcore waits for a worker's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Replies a worker can have waiting (late ones the control lcore gave up on).
const REPLY_SLOTS: usize = 4;

/// The control side of one worker's channels.
pub struct Link {
    requests: Sender<Envelope<WorkerRequest>>,
    replies: Receiver<Envelope<WorkerReply>>,
}

/// The worker side of them.
pub struct WorkerLink {
    requests: Receiver<Envelope<WorkerRequest>>,
    replies: Sender<Envelope<WorkerReply>>,
}

/// A worker's pair of channels: requests in (a few may queue), replies out.
pub fn link() -> (Link, WorkerLink) {
    let (rq_tx, rq_rx) = crossbeam_channel::bounded(16);
    let (rp_tx, rp_rx) = crossbeam_channel::bounded(REPLY_SLOTS);
    (Link { requests: rq_tx, replies: rp_rx }, WorkerLink { requests: rq_rx, replies: rp_tx })
}

/// Reaches the workers through their channels; a worker answers between bursts, so
/// a reply is quick unless the worker is stuck.
pub struct ChannelWorkers {
    pub links: Vec<Link>,
    pub published: Arc<Published>,
    /// The number of the last request (replies carry it back).
    pub asked: AtomicU64,
}

impl ChannelWorkers {
    pub fn new(links: Vec<Link>, published: Arc<Published>) -> ChannelWorkers {
        ChannelWorkers { links, published, asked: AtomicU64::new(0) }
    }

    fn ask(&self, req: &WorkerRequest) -> Vec<WorkerReply> {
        self.links.iter().filter_map(|w| self.ask_one(w, req.clone())).collect()
    }

    /// Asks one worker; None when it is gone or does not answer in time. A reply
    /// to an earlier request it gave up on is dropped here.
    fn ask_one(&self, w: &Link, req: WorkerRequest) -> Option<WorkerReply> {
        while w.replies.try_recv().is_ok() {}
        let n = self.asked.fetch_add(1, Ordering::Relaxed) + 1;
        w.requests.send((n, req)).ok()?;
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let (m, reply) = w.replies.recv_deadline(deadline).ok()?;
            if m == n {
                return Some(reply);
            }
        }
    }
}

impl Workers for ChannelWorkers {
    /// Publishes the next snapshot and waits until every worker runs it.
    fn apply(&self, _changes: &[Change], next: &Model) -> Result<(), String> {
        // Held until every worker runs the next one: the old snapshot is freed here,
        // on the control lcore, not on a worker.
        let previous = self.published.load();
        let snapshot = previous.next(next.clone(), self.links.len())?;
        self.published.publish(snapshot, ANSWER_TIMEOUT)
    }

    /// Worker by worker, piece by piece (as connections), each worker's counters
    /// put to the configuration it was given.
    fn list(&self) -> Vec<Vec<ServiceInfo>> {
        let snapshot = self.published.load();
        let mut all = Vec::with_capacity(self.links.len());
        'workers: for w in &self.links {
            let mut listing = agent::Listing::new(&snapshot.model);
            let (mut from, mut buf) = (Some((0, 0)), Vec::with_capacity(COUNTER_CHUNK));
            while let Some(f) = from {
                let Some(WorkerReply::Counters { entries, next }) =
                    self.ask_one(w, WorkerRequest::Counters { from: f, buf })
                else {
                    continue 'workers;
                };
                listing.add(&entries);
                // The same buffer for the next piece.
                (from, buf) = (next, entries);
            }
            all.push(listing.finish());
        }
        all
    }

    fn zero(&self, service: Option<ServiceKey>) -> Result<(), String> {
        let replies = self.ask(&WorkerRequest::Zero(service));
        if replies.len() != self.links.len() {
            return Err("a worker did not answer".into());
        }
        Ok(())
    }

    /// Worker by worker, piece by piece: each worker answers one piece per loop
    /// iteration and is asked for the next only once the previous one is passed on.
    fn sync_dump(&self, worker: usize, from: u32, buf: Vec<SyncConn>) -> Option<(Vec<SyncConn>, Option<u32>)> {
        let w = self.links.get(worker)?;
        match self.ask_one(w, WorkerRequest::SyncDump { from, buf })? {
            WorkerReply::SyncDump { entries, next } => Some((entries, next)),
            _ => None,
        }
    }

    fn connections(&self, each: &mut dyn FnMut(&[ConnEntry]) -> bool) -> u64 {
        let mut count = 0;
        for w in &self.links {
            let (mut from, mut buf) = (Some(0), Vec::with_capacity(CONN_CHUNK));
            while let Some(f) = from {
                let Some(WorkerReply::Connections { entries, next }) =
                    self.ask_one(w, WorkerRequest::Connections { from: f, buf })
                else {
                    break;
                };
                count += entries.len() as u64;
                if !each(&entries) {
                    return count;
                }
                (from, buf) = (next, entries);
            }
        }
        count
    }
}

/// How long a worker spends on configuration changes per loop iteration (at
/// least one change): a large reload is spread over iterations of about this much.
const CATCHUP_SLICE_US: u64 = 20;

/// A worker's side: the snapshot it runs, the one it is catching up with, and its
/// request channel.
pub struct ControlAgent {
    pub lcore: u32,
    /// The worker's index (its slot in `published`).
    pub index: usize,
    pub link: WorkerLink,
    pub published: Arc<Published>,
    pub current: Arc<Snapshot>,
    pub catchup: Option<Catchup>,
    pub sync: SyncLink,
}

impl ControlAgent {
    pub fn new(lcore: u32, index: usize, link: WorkerLink, published: Arc<Published>, sync: SyncLink) -> ControlAgent {
        let current = published.load();
        ControlAgent { lcore, index, link, published, current, catchup: None, sync }
    }

    /// Connection sync between bursts: the switch looked at (one load), the
    /// connections due handed to the control lcore, and a slice of what peers sent
    /// entered into the table.
    #[inline]
    fn sync_work(&mut self, p: &mut Pipeline, now_ms: u64) {
        let g = self.sync.switch.generation();
        if g != self.sync.seen {
            self.sync.seen = g;
            p.director.set_sync(self.sync.switch.rules());
        }
        if !p.director.sync_due.is_empty() {
            self.sync_out(p);
        }
        if !self.sync.inbox.is_empty() {
            self.sync_in(p, now_ms);
        }
    }

    #[cold]
    fn sync_out(&mut self, p: &mut Pipeline) {
        let d = &mut p.director;
        for i in 0..d.sync_due.len() {
            let slot = d.sync_due[i];
            // A template goes with each connection it controls, ahead of it.
            let template = d.sync_control(slot).and_then(|t| d.sync_entry(t));
            for e in template.into_iter().chain(d.sync_entry(slot)) {
                if self.sync.out.try_push(e).is_ok() {
                    p.counters.sync_queued.inc();
                } else {
                    p.counters.sync_ring_full.inc();
                }
            }
        }
        d.sync_due.clear();
        if d.sync_missed > 0 {
            p.counters.sync_ring_full.add(d.sync_missed);
            d.sync_missed = 0;
        }
    }

    #[cold]
    fn sync_in(&mut self, p: &mut Pipeline, now_ms: u64) {
        let now_s = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
        for _ in 0..SYNC_APPLY_SLICE {
            let Some(e) = self.sync.inbox.try_pop() else { break };
            match p.director.apply_sync(&e, now_s) {
                Ok(_) => p.counters.sync_applied.inc(),
                Err(_) => p.counters.sync_refused.inc(),
            }
        }
    }
}

impl Agent for ControlAgent {
    #[inline]
    fn between_bursts(&mut self, pipeline: &mut Pipeline, now_ms: u64) {
        self.sync_work(pipeline, now_ms);
        let catching_up = self.catchup.is_some() || self.published.generation() != self.current.generation;
        let request = self.link.requests.try_recv();
        if !catching_up && request.is_err() {
            return;
        }
        let t0 = lcore::tsc();
        if catching_up {
            self.catch_up(pipeline);
        }
        // One request per loop iteration: each is bounded (a listing answers a
        // piece), so the worker returns to its queues promptly.
        if let Ok((n, req)) = request {
            let now_s = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
            // Never blocks: with every reply slot taken (the control lcore gone),
            // the reply is dropped.
            let _ = self.link.replies.try_send((n, agent::serve(req, &mut pipeline.director, now_s)));
        }
        pipeline.counters.longest_control_cycles.raise(lcore::tsc().wrapping_sub(t0));
    }
}

impl ControlAgent {
    /// Works towards the published configuration for one slice of time: takes the
    /// snapshot, applies changes until the slice is used, and once all are
    /// applied runs it: lets go of the previous one, then acknowledges.
    #[cold]
    fn catch_up(&mut self, pipeline: &mut Pipeline) {
        let c = self.catchup.get_or_insert_with(|| Catchup::new(&self.current, self.published.load()));
        let deadline = lcore::tsc() + lcore::tsc_hz() / 1_000_000 * CATCHUP_SLICE_US;
        loop {
            if let Err(e) = c.step(&mut pipeline.director, self.index, 1) {
                tracing::error!(
                    lcore = self.lcore,
                    generation = c.generation(),
                    "configuration change not applied: {e}"
                );
            }
            if c.remaining() == 0 || lcore::tsc() >= deadline {
                break;
            }
        }
        if c.remaining() > 0 {
            return;
        }
        let Some(done) = self.catchup.take() else { return };
        let g = done.generation();
        // The old snapshot's last references are the control lcore's, which frees it.
        self.current = done.finish();
        self.published.ack(self.index, g);
    }
}
