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
use crate::dpdk::lcore;
use crate::pipeline::Pipeline;
use crate::worker::Agent;
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
}

impl ControlAgent {
    pub fn new(lcore: u32, index: usize, link: WorkerLink, published: Arc<Published>) -> ControlAgent {
        let current = published.load();
        ControlAgent { lcore, index, link, published, current, catchup: None }
    }
}

impl Agent for ControlAgent {
    #[inline]
    fn between_bursts(&mut self, pipeline: &mut Pipeline, now_ms: u64) {
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
