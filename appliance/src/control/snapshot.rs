//! The running configuration as one immutable snapshot: services, dests, weights,
//! timeouts, firewall-mark rules (the model), and each dest's shared connection
//! counts. The control lcore builds a new snapshot for every change and publishes it
//! RCU-style: an `ArcSwap` holds the current one and a generation number says it
//! changed. A worker looks at the generation once per loop; when it moved, the
//! worker takes the new snapshot, brings its own tables in line (only what differs:
//! `Model::diff`, so connections, counters and scheduler state of unchanged services
//! stay), keeps its reference, and acknowledges the generation. An old snapshot is
//! freed when the last worker has let go of it (the `Arc`'s count).

use super::model::{apply_to_director, Model};
use super::protocol::ServiceKey;
use crate::ipvs::dest::Shared;
use crate::ipvs::director::Director;
use arc_swap::ArcSwap;
use hashbrown::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type DestKey = (ServiceKey, Ipv4Addr, u16);

#[derive(Debug, Default)]
pub struct Snapshot {
    pub generation: u64,
    pub model: Model,
    /// Per dest: the counts every worker writes its slot of.
    pub shared: HashMap<DestKey, Arc<Shared>>,
}

impl Snapshot {
    /// The next snapshot, for `model`: dests that stay keep their shared counts.
    pub fn next(&self, model: Model, workers: usize) -> Snapshot {
        let mut shared = HashMap::new();
        for (s, ds) in &model.services {
            for d in ds {
                let k = (s.service, d.addr, d.port);
                let block = self.shared.get(&k).cloned().unwrap_or_else(|| Shared::new(workers));
                shared.insert(k, block);
            }
        }
        Snapshot { generation: self.generation + 1, model, shared }
    }
}

/// Brings a worker's director from snapshot `from` to `to`; `slot` is the worker's
/// index in the shared counts.
pub fn reconcile(d: &mut Director, from: &Snapshot, to: &Snapshot, slot: usize) -> Result<(), String> {
    for c in from.model.diff(&to.model) {
        apply_to_director(d, &c)?;
    }
    for (&(service, addr, port), block) in &to.shared {
        if let Some(svc) = d.services.by_key_mut(&service) {
            if let Some(i) = svc.dests().iter().position(|x| x.addr == addr && x.port == port) {
                svc.dests_mut_by_index(i).attach(Arc::clone(block), slot);
            }
        }
    }
    Ok(())
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
            }),
            Change::AddDest(DestSpec {
                service: svc,
                addr: Ipv4Addr::new(198, 18, 1, 11),
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
                addr: Ipv4Addr::new(198, 18, 1, 12),
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
        let s1 = empty.next(model(1, true), 2);
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
        w[0].services.by_key_mut(&vip).unwrap().dests_mut_by_index(0).bind_conn();
        let d1 = &w[1].services.by_key_mut(&vip).unwrap().dests()[0];
        assert_eq!((d1.inactive, d1.inactive_total()), (0, 1));
        // A weight change and a removed dest: shared counts of the kept dest stay.
        let s2 = s1.next(model(5, false), 2);
        assert_eq!(s2.generation, 2);
        assert!(Arc::ptr_eq(
            s2.shared.values().next().unwrap(),
            s1.shared
                .get(&(
                    ServiceKey::Addr { proto: Protocol::Tcp, addr: Ipv4Addr::new(198, 18, 0, 10), port: 80 },
                    Ipv4Addr::new(198, 18, 1, 11),
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

    #[test]
    fn publish_waits_for_every_worker() {
        let p = Published::new(Snapshot::default().next(Model::default(), 2), 2);
        p.ack(0, 1);
        p.ack(1, 1);
        let next = p.load().next(Model::default(), 2);
        let e = p.publish(next, Duration::from_millis(20)).unwrap_err();
        assert!(e.contains("generation 2"), "{e}");
        assert_eq!(p.generation(), 2);
        p.ack(0, 2);
        p.ack(1, 2);
        let next = p.load().next(Model::default(), 2);
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
