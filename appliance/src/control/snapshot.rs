//! The running configuration as one immutable snapshot: services, dests, weights,
//! timeouts, firewall-mark rules (the model), each dest's shared connection counts,
//! the changes from the previous snapshot and the firewall-mark classifier, both
//! worked out once by the control lcore. It publishes every snapshot RCU-style: an
//! `ArcSwap` holds the current one and a generation number says it changed. A worker
//! looks at the generation once per loop; when it moved, the worker takes the new
//! snapshot and brings its own tables in line a few changes per loop iteration
//! (`Catchup`: only what differs, so connections, counters and scheduler state of
//! unchanged services stay, and a configuration of thousands of services never holds
//! the worker off its queues for long), then keeps its reference and acknowledges
//! the generation. The worker lets go of the old snapshot before it acknowledges, so
//! the control lcore, which waits for the acknowledgements, frees it.

use super::model::{apply_to_director, rules_from_specs, Model};
use super::protocol::{Change, ServiceKey};
use crate::ipvs::dest::Shared;
use crate::ipvs::director::Director;
use crate::ipvs::fwmark::Classifier;
use arc_swap::ArcSwap;
use hashbrown::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type DestKey = (ServiceKey, IpAddr, u16);

#[derive(Debug, Default)]
pub struct Snapshot {
    pub generation: u64,
    pub model: Model,
    /// Per dest: the counts every worker writes its slot of.
    pub shared: HashMap<DestKey, Arc<Shared>>,
    /// The generation `changes` start from.
    pub base: u64,
    /// What turns generation `base`'s model into this one (`Model::diff`).
    pub changes: Vec<Change>,
    /// The firewall-mark rules, built (the workers share it).
    pub classifier: Arc<Classifier>,
}

impl Snapshot {
    /// The next snapshot, for `model`: the changes from this one, the classifier
    /// (the same one while the rules stay), and shared counts (dests that stay keep
    /// theirs).
    pub fn next(&self, model: Model, workers: usize) -> Result<Snapshot, String> {
        let classifier = if model.fwmark == self.model.fwmark {
            Arc::clone(&self.classifier)
        } else {
            Arc::new(rules_from_specs(&model.fwmark).map_err(|e| e.to_string())?)
        };
        let mut shared = HashMap::new();
        for (s, ds) in &model.services {
            for d in ds {
                let k = (s.service, d.addr, d.port);
                let block = self.shared.get(&k).cloned().unwrap_or_else(|| Shared::new(workers));
                shared.insert(k, block);
            }
        }
        Ok(Snapshot {
            generation: self.generation + 1,
            changes: self.model.diff(&model),
            base: self.generation,
            model,
            shared,
            classifier,
        })
    }
}

/// A worker's way from the snapshot it runs to the next, a few changes at a time.
/// Between steps the worker forwards with the changes so far applied, as the kernel
/// does between two `ipvsadm` commands.
#[derive(Debug)]
pub struct Catchup {
    next: Arc<Snapshot>,
    /// Changes worked out here when the worker missed a generation (the
    /// snapshot's own are relative to one it never ran).
    own: Option<Vec<Change>>,
    at: usize,
}

impl Catchup {
    pub fn new(from: &Snapshot, next: Arc<Snapshot>) -> Catchup {
        let own = (next.base != from.generation).then(|| {
            let mut changes = from.model.diff(&next.model);
            // Re-attach every dest's counts: some may have been replaced meanwhile.
            changes.extend(next.model.services.iter().flat_map(|(_, ds)| ds.iter().cloned().map(Change::EditDest)));
            changes
        });
        Catchup { next, own, at: 0 }
    }

    pub fn generation(&self) -> u64 {
        self.next.generation
    }

    fn changes(&self) -> &[Change] {
        self.own.as_deref().unwrap_or(&self.next.changes)
    }

    /// Changes still to apply.
    pub fn remaining(&self) -> usize {
        self.changes().len() - self.at
    }

    /// Applies at most `max` more changes to the worker's director (`slot`: its
    /// index in the shared counts). A change that fails is skipped and reported;
    /// the next step goes on after it.
    pub fn step(&mut self, d: &mut Director, slot: usize, max: usize) -> Result<(), String> {
        let end = (self.at + max).min(self.changes().len());
        while self.at < end {
            let i = self.at;
            self.at += 1;
            let next = &self.next;
            let c = &self.own.as_deref().unwrap_or(&next.changes)[i];
            match c {
                // The classifier is built already: the worker takes a reference.
                Change::SetFwmarkRules { .. } => d.classifier = Arc::clone(&next.classifier),
                _ => apply_to_director(d, c)?,
            }
            if let Change::AddDest(x) | Change::EditDest(x) = c {
                attach(d, next, x.service, x.addr, x.port, slot);
            }
        }
        Ok(())
    }

    /// The snapshot now run (all changes applied).
    pub fn finish(self) -> Arc<Snapshot> {
        self.next
    }
}

/// Points a worker's dest at the snapshot's shared counts for it.
fn attach(d: &mut Director, s: &Snapshot, service: ServiceKey, addr: IpAddr, port: u16, slot: usize) {
    let Some(block) = s.shared.get(&(service, addr, port)) else { return };
    if let Some(svc) = d.services.by_key_mut(&service) {
        if let Some(i) = svc.dests().iter().position(|x| x.addr == addr && x.port == port) {
            svc.dests_mut_by_index(i).attach(Arc::clone(block), slot);
        }
    }
}

/// Brings a worker's director from snapshot `from` to `to` at once (start-up,
/// tests); `slot` is the worker's index in the shared counts.
pub fn reconcile(d: &mut Director, from: &Snapshot, to: &Arc<Snapshot>, slot: usize) -> Result<(), String> {
    let mut c = Catchup::new(from, Arc::clone(to));
    let mut first_error = Ok(());
    while c.remaining() > 0 {
        if let Err(e) = c.step(d, slot, usize::MAX) {
            first_error = first_error.and(Err(e));
        }
    }
    first_error
}

/// Where the control lcore publishes snapshots and workers acknowledge them.
#[derive(Debug)]
pub struct Published {
    current: ArcSwap<Snapshot>,
    generation: AtomicU64,
    acks: Vec<AtomicU64>,
}

impl Published {
    pub fn new(first: Snapshot, workers: usize) -> Arc<Published> {
        let g = first.generation;
        Arc::new(Published {
            current: ArcSwap::from_pointee(first),
            generation: AtomicU64::new(g),
            acks: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// The generation now published (one load: what workers check per loop).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Worker `slot` runs generation `g`.
    pub fn ack(&self, slot: usize, g: u64) {
        if let Some(a) = self.acks.get(slot) {
            a.store(g, Ordering::Release);
        }
    }

    /// Publishes `next` and waits until every worker runs it (or `timeout`).
    pub fn publish(&self, next: Snapshot, timeout: Duration) -> Result<(), String> {
        let g = next.generation;
        self.current.store(Arc::new(next));
        self.generation.store(g, Ordering::Release);
        let t0 = Instant::now();
        while self.acks.iter().any(|a| a.load(Ordering::Acquire) < g) {
            if t0.elapsed() > timeout {
                return Err(format!("a worker did not take configuration generation {g} within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::protocol::{Change, DestSpec, ServiceSpec};
    use super::*;
    use crate::ipvs::dest::FwdMethod;
    use crate::ipvs::service::ServiceTable;
    use crate::ipvs::Protocol;
    use std::net::Ipv4Addr;

    fn model(weight: u32, extra: bool) -> Model {
        let vip = Ipv4Addr::new(198, 18, 0, 10);
        let svc = ServiceKey::Addr { proto: Protocol::Tcp, addr: vip, port: 80 };
        let mut m = Model::default();
        let mut ch = vec![
            Change::AddService(ServiceSpec {
                service: svc,
                scheduler: "wlc".into(),
                flags: vec![],
                persistent: None,
                netmask: None,
                prefix6: None,
            }),
            Change::AddDest(DestSpec {
                service: svc,
                addr: std::net::IpAddr::from(Ipv4Addr::new(198, 18, 1, 11)),
                port: 80,
                forward: FwdMethod::Masq,
                weight,
                upper: 0,
                lower: 0,
            }),
        ];
        if extra {
            ch.push(Change::AddDest(DestSpec {
                service: svc,
                addr: std::net::IpAddr::from(Ipv4Addr::new(198, 18, 1, 12)),
                port: 80,
                forward: FwdMethod::Masq,
                weight: 1,
                upper: 0,
                lower: 0,
            }));
        }
        m.apply_all(&ch).unwrap();
        m
    }

    #[test]
    fn two_workers_follow_snapshots_and_share_counts() {
        let empty = Snapshot::default();
        let s1 = Arc::new(empty.next(model(1, true), 2).unwrap());
        let mut w: Vec<Director> = (0..2).map(|i| Director::new(ServiceTable::new(), 64, i)).collect();
        for (i, d) in w.iter_mut().enumerate() {
            reconcile(d, &empty, &s1, i).unwrap();
        }
        // Worker 0 takes a connection to RS1; worker 1's wlc sees it.
        let vip = crate::ipvs::service::ServiceKey::Addr {
            proto: crate::ipvs::Protocol::Tcp,
            addr: Ipv4Addr::new(198, 18, 0, 10),
            port: 80,
        };
        let rs1 = IpAddr::from(Ipv4Addr::new(198, 18, 1, 11));
        let at =
            |d: &mut Director| d.services.by_key_mut(&vip).unwrap().dests().iter().position(|x| x.addr == rs1).unwrap();
        let i = at(&mut w[0]);
        w[0].services.by_key_mut(&vip).unwrap().dests_mut_by_index(i).bind_conn();
        let i = at(&mut w[1]);
        let d1 = &w[1].services.by_key_mut(&vip).unwrap().dests()[i];
        assert_eq!((d1.inactive, d1.inactive_total()), (0, 1));
        // A weight change and a removed dest: shared counts of the kept dest stay.
        let s2 = Arc::new(s1.next(model(5, false), 2).unwrap());
        assert_eq!(s2.generation, 2);
        assert!(Arc::ptr_eq(
            s2.shared.values().next().unwrap(),
            s1.shared
                .get(&(
                    ServiceKey::Addr { proto: Protocol::Tcp, addr: Ipv4Addr::new(198, 18, 0, 10), port: 80 },
                    Ipv4Addr::new(198, 18, 1, 11).into(),
                    80
                ))
                .unwrap()
        ));
        for (i, d) in w.iter_mut().enumerate() {
            reconcile(d, &s1, &s2, i).unwrap();
        }
        let d1 = &w[1].services.by_key_mut(&vip).unwrap().dests()[0];
        assert_eq!((d1.weight(), d1.inactive_total()), (5, 1));
        assert_eq!(w[1].services.by_key_mut(&vip).unwrap().dests().len(), 1);
    }

    /// `services` services of `dests` dests each, every weight `weight`.
    fn big(services: u16, dests: u8, weight: u32) -> Model {
        let mut ch = Vec::new();
        for p in 0..services {
            let service =
                ServiceKey::Addr { proto: Protocol::Tcp, addr: Ipv4Addr::new(198, 18, 0, 10), port: 1000 + p };
            ch.push(Change::AddService(ServiceSpec {
                service,
                scheduler: "wrr".into(),
                flags: vec![],
                persistent: None,
                netmask: None,
                prefix6: None,
            }));
            for d in 0..dests {
                ch.push(Change::AddDest(DestSpec {
                    service,
                    addr: std::net::IpAddr::from(Ipv4Addr::new(198, 18, 1, 10 + d)),
                    port: 80,
                    forward: FwdMethod::Masq,
                    weight,
                    upper: 0,
                    lower: 0,
                }));
            }
        }
        let mut m = Model::default();
        m.apply_all(&ch).unwrap();
        m
    }

    #[test]
    fn a_large_snapshot_is_taken_a_slice_at_a_time() {
        let empty = Arc::new(Snapshot::default());
        let s1 = Arc::new(empty.next(big(2000, 4, 1), 2).unwrap());
        assert_eq!(s1.changes.len(), 2000 * 5);
        let mut d = Director::new(ServiceTable::new(), 64, 0);
        let mut c = Catchup::new(&empty, Arc::clone(&s1));
        let mut steps = 0;
        while c.remaining() > 0 {
            c.step(&mut d, 0, 16).unwrap();
            steps += 1;
            // Between steps the worker runs a prefix of the changes.
            if steps == 10 {
                assert_eq!(d.services.iter().count(), 32, "160 changes: 32 services of 4 dests");
            }
        }
        assert_eq!(steps, (2000 * 5usize).div_ceil(16));
        assert_eq!(d.services.iter().count(), 2000);
        assert_eq!(c.finish().generation, 1);
        // A weight change everywhere: one change per dest, again in slices, and
        // every dest still counts into the snapshot's shared block.
        let s2 = Arc::new(s1.next(big(2000, 4, 3), 2).unwrap());
        assert_eq!(s2.changes.len(), 2000 * 4);
        let mut c = Catchup::new(&s1, Arc::clone(&s2));
        c.step(&mut d, 0, 100).unwrap();
        assert_eq!(c.remaining(), 2000 * 4 - 100);
        reconcile(&mut d, &s1, &s2, 0).unwrap();
        let svc = d
            .services
            .by_key_mut(&ServiceKey::Addr { proto: Protocol::Tcp, addr: Ipv4Addr::new(198, 18, 0, 10), port: 2999 })
            .unwrap();
        assert!(svc.dests().iter().all(|x| x.weight() == 3));
        assert!(svc.dests().iter().all(|x| x.inactive_total() == 0));
        let i = svc.dests().iter().position(|x| x.addr == IpAddr::from(Ipv4Addr::new(198, 18, 1, 10))).unwrap();
        svc.dests_mut_by_index(i).bind_conn();
        // Counted in the shared block: a second worker on it would see it.
        let block = Arc::clone(s2.shared.get(&(svc.key, Ipv4Addr::new(198, 18, 1, 10).into(), 80)).unwrap());
        let mut other = crate::ipvs::dest::Dest::new(Ipv4Addr::new(198, 18, 1, 10), 80, FwdMethod::Masq, 3);
        other.attach(block, 1);
        assert_eq!(other.inactive_total(), 1);
    }

    #[test]
    fn a_worker_that_missed_a_generation_works_out_its_own_changes() {
        let empty = Arc::new(Snapshot::default());
        let s1 = Arc::new(empty.next(model(1, true), 1).unwrap());
        let s2 = Arc::new(s1.next(model(5, false), 1).unwrap());
        let mut d = Director::new(ServiceTable::new(), 64, 0);
        // From nothing straight to generation 2 (its changes start from 1).
        reconcile(&mut d, &empty, &s2, 0).unwrap();
        let vip = ServiceKey::Addr { proto: Protocol::Tcp, addr: Ipv4Addr::new(198, 18, 0, 10), port: 80 };
        let svc = d.services.by_key_mut(&vip).unwrap();
        assert_eq!(svc.dests().iter().map(|x| x.weight()).collect::<Vec<_>>(), vec![5]);
    }

    /// A real server a health check takes out and puts back (the models it
    /// publishes) comes back to every worker with the connections they counted,
    /// in the new snapshot's shared counts too.
    #[test]
    fn a_dest_taken_out_and_back_by_published_models_keeps_its_counts() {
        let empty = Snapshot::default();
        let vip = ServiceKey::Addr { proto: Protocol::Tcp, addr: Ipv4Addr::new(198, 18, 0, 10), port: 80 };
        let rs2 = IpAddr::from(Ipv4Addr::new(198, 18, 1, 12));
        let s1 = Arc::new(empty.next(model(1, true), 2).unwrap());
        let mut w: Vec<Director> = (0..2).map(|i| Director::new(ServiceTable::new(), 64, i)).collect();
        for (i, d) in w.iter_mut().enumerate() {
            reconcile(d, &empty, &s1, i).unwrap();
            let svc = d.services.by_key_mut(&vip).unwrap();
            let at = svc.dests().iter().position(|x| x.addr == rs2).unwrap();
            for _ in 0..=i {
                svc.dests_mut_by_index(at).bind_conn();
            }
        }
        let s2 = Arc::new(s1.next(model(1, false), 2).unwrap());
        let s3 = Arc::new(s2.next(model(1, true), 2).unwrap());
        for (i, d) in w.iter_mut().enumerate() {
            reconcile(d, &s1, &s2, i).unwrap();
            assert_eq!(d.services.trashed(), 1, "held by worker {i}'s connections");
        }
        for (i, d) in w.iter_mut().enumerate() {
            reconcile(d, &s2, &s3, i).unwrap();
        }
        for (i, d) in w.iter_mut().enumerate() {
            assert_eq!(d.services.trashed(), 0);
            let svc = d.services.by_key_mut(&vip).unwrap();
            let back = svc.dests().iter().find(|x| x.addr == rs2).unwrap();
            let own = u32::try_from(i).unwrap() + 1;
            assert_eq!((back.inactive, back.inactive_total()), (own, 3), "worker {i}: its own and all workers'");
        }
    }

    #[test]
    fn firewall_mark_rules_are_built_once_and_shared() {
        let empty = Snapshot::default();
        let mut m = model(1, false);
        m.fwmark = vec![crate::control::protocol::FwmarkSpec {
            mark: 1,
            destination: None,
            source: None,
            protocol: Some("tcp".into()),
            ports: Some("80".into()),
            ..Default::default()
        }];
        let s1 = Arc::new(empty.next(m.clone(), 2).unwrap());
        let mut w: Vec<Director> = (0..2).map(|i| Director::new(ServiceTable::new(), 64, i)).collect();
        for (i, d) in w.iter_mut().enumerate() {
            reconcile(d, &empty, &s1, i).unwrap();
            assert!(Arc::ptr_eq(&d.classifier, &s1.classifier), "the snapshot's classifier, not a copy");
        }
        assert_eq!(s1.classifier.rules().len(), 1);
        let s2 = s1.next(m, 2).unwrap();
        assert!(Arc::ptr_eq(&s2.classifier, &s1.classifier), "unchanged rules: the same classifier");
    }

    #[test]
    fn publish_waits_for_every_worker() {
        let p = Published::new(Snapshot::default().next(Model::default(), 2).unwrap(), 2);
        p.ack(0, 1);
        p.ack(1, 1);
        let next = p.load().next(Model::default(), 2).unwrap();
        let e = p.publish(next, Duration::from_millis(20)).unwrap_err();
        assert!(e.contains("generation 2"), "{e}");
        assert_eq!(p.generation(), 2);
        p.ack(0, 2);
        p.ack(1, 2);
        let next = p.load().next(Model::default(), 2).unwrap();
        let p2 = Arc::clone(&p);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            p2.ack(0, 3);
            p2.ack(1, 3);
        });
        p.publish(next, Duration::from_secs(2)).unwrap();
        t.join().unwrap();
    }
}
