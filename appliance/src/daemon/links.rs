//! How the control lcore and the workers reach each other. Each worker has a request
//! channel and reads published configuration snapshots; the control side
//! (`ChannelWorkers`, what `control::server` asks through) sends requests and
//! publishes, the worker side (`ControlAgent`, what the worker calls between bursts)
//! adopts snapshots and answers. No lock is taken on the data path.

use crate::control::agent::{self, ConnEntry, Envelope, WorkerReply, WorkerRequest};
use crate::control::model::Model;
use crate::control::protocol::{Change, ServiceInfo, ServiceKey};
use crate::control::server::Workers;
use crate::control::snapshot::{Catchup, Published, Snapshot};
use crate::dpdk::lcore;
use crate::pipeline::Pipeline;
use crate::worker::Agent;
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

/// How long the control lcore waits for a worker's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Reaches the workers through their request channels; a worker answers between
/// bursts, so a reply is quick unless the worker is stuck.
pub struct ChannelWorkers {
    pub requests: Vec<Sender<Envelope>>,
    pub published: Arc<Published>,
}

impl ChannelWorkers {
    fn ask(&self, req: &WorkerRequest) -> Vec<WorkerReply> {
        self.requests.iter().filter_map(|w| ask_one(w, req.clone())).collect()
    }
}

impl Workers for ChannelWorkers {
    /// Publishes the next snapshot and waits until every worker runs it.
    fn apply(&self, _changes: &[Change], next: &Model) -> Result<(), String> {
        // Held until every worker runs the next one: the old snapshot is freed here,
        // on the control lcore, not on a worker.
        let previous = self.published.load();
        let snapshot = previous.next(next.clone(), self.requests.len())?;
        self.published.publish(snapshot, ANSWER_TIMEOUT)
    }

    /// Worker by worker, piece by piece (as connections), each worker's counters
    /// put to the configuration it was given.
    fn list(&self) -> Vec<Vec<ServiceInfo>> {
        let snapshot = self.published.load();
        let mut all = Vec::with_capacity(self.requests.len());
        'workers: for w in &self.requests {
            let mut listing = agent::Listing::new(&snapshot.model);
            let mut from = Some((0, 0));
            while let Some(f) = from {
                let Some(WorkerReply::Counters { entries, next }) = ask_one(w, WorkerRequest::Counters { from: f })
                else {
                    continue 'workers;
                };
                listing.add(&entries);
                from = next;
            }
            all.push(listing.finish());
        }
        all
    }

    fn zero(&self, service: Option<ServiceKey>) -> Result<(), String> {
        let replies = self.ask(&WorkerRequest::Zero(service));
        if replies.len() != self.requests.len() {
            return Err("a worker did not answer".into());
        }
        Ok(())
    }

    /// Worker by worker, piece by piece: each worker answers one piece per loop
    /// iteration and is asked for the next only once the previous one is passed on.
    fn connections(&self, each: &mut dyn FnMut(&[ConnEntry]) -> bool) -> u64 {
        let mut count = 0;
        for w in &self.requests {
            let mut from = Some(0);
            while let Some(f) = from {
                let Some(WorkerReply::Connections { entries, next }) =
                    ask_one(w, WorkerRequest::Connections { from: f })
                else {
                    break;
                };
                count += entries.len() as u64;
                if !each(&entries) {
                    return count;
                }
                from = next;
            }
        }
        count
    }
}

/// Asks one worker; None when it is gone or does not answer in time.
fn ask_one(w: &Sender<Envelope>, req: WorkerRequest) -> Option<WorkerReply> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    w.send((req, tx)).ok()?;
    rx.recv_timeout(ANSWER_TIMEOUT).ok()
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
    pub requests: Receiver<Envelope>,
    pub published: Arc<Published>,
    pub current: Arc<Snapshot>,
    pub catchup: Option<Catchup>,
}

impl ControlAgent {
    pub fn new(lcore: u32, index: usize, requests: Receiver<Envelope>, published: Arc<Published>) -> ControlAgent {
        let current = published.load();
        ControlAgent { lcore, index, requests, published, current, catchup: None }
    }
}

impl Agent for ControlAgent {
    #[inline]
    fn between_bursts(&mut self, pipeline: &mut Pipeline, now_ms: u64) {
        let catching_up = self.catchup.is_some() || self.published.generation() != self.current.generation;
        let request = self.requests.try_recv();
        if !catching_up && request.is_err() {
            return;
        }
        let t0 = lcore::tsc();
        if catching_up {
            self.catch_up(pipeline);
        }
        // One request per loop iteration: each is bounded (a listing answers a
        // piece), so the worker returns to its queues promptly.
        if let Ok((req, reply)) = request {
            let now_s = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
            let _ = reply.send(agent::serve(&req, &mut pipeline.director, now_s));
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
