//! The worker's side of the control plane: requests arrive on a channel, and the
//! worker answers them between bursts from its own state (its `Director`), so no
//! lock ever guards the data path.

use super::model::{apply_to_director, flag_names};
use super::protocol::{Change, ConnInfo, DestInfo, ServiceInfo, ServiceKey, ServiceSpec, StatsInfo};
use crate::ipvs::conn::ConnState;
use crate::ipvs::dest::Stats;
use crate::ipvs::director::Director;

/// What the control lcore asks a worker.
#[derive(Debug, Clone)]
pub enum WorkerRequest {
    /// Changes the control plane has already validated.
    Apply(Vec<Change>),
    List,
    Connections,
    /// Zero traffic counters (one service, or all).
    Zero(Option<ServiceKey>),
}

#[derive(Debug, Clone)]
pub enum WorkerReply {
    Applied(Result<(), String>),
    Services(Vec<ServiceInfo>),
    Connections(Vec<ConnInfo>),
}

/// A request with the channel its answer goes back on.
pub type Envelope = (WorkerRequest, crossbeam_channel::Sender<WorkerReply>);

/// Answers one request from the worker's director; `now_s` is its clock.
pub fn serve(req: &WorkerRequest, d: &mut Director, now_s: u32) -> WorkerReply {
    match req {
        WorkerRequest::Apply(changes) => {
            for c in changes {
                if let Err(e) = apply_to_director(d, c) {
                    return WorkerReply::Applied(Err(e));
                }
            }
            WorkerReply::Applied(Ok(()))
        }
        WorkerRequest::List => WorkerReply::Services(list(d)),
        WorkerRequest::Connections => WorkerReply::Connections(connections(d, now_s)),
        WorkerRequest::Zero(svc) => {
            d.zero_stats(svc.as_ref());
            WorkerReply::Applied(Ok(()))
        }
    }
}

fn stats_info(s: &Stats) -> StatsInfo {
    StatsInfo { conns: s.conns, inpkts: s.inpkts, outpkts: s.outpkts, inbytes: s.inbytes, outbytes: s.outbytes }
}

fn add(a: &mut StatsInfo, b: &StatsInfo) {
    a.conns += b.conns;
    a.inpkts += b.inpkts;
    a.outpkts += b.outpkts;
    a.inbytes += b.inbytes;
    a.outbytes += b.outbytes;
}

pub fn list(d: &Director) -> Vec<ServiceInfo> {
    d.services
        .iter()
        .map(|(_, s)| ServiceInfo {
            spec: ServiceSpec {
                service: s.key,
                scheduler: s.scheduler_name().to_string(),
                flags: flag_names(s.scheduler_name(), s.scheduler_flags()),
                persistent: s.persistence.map(|p| p.timeout_s),
                netmask: s.persistence.map(|p| p.netmask),
            },
            dests: s
                .dests()
                .iter()
                .map(|x| DestInfo {
                    addr: x.addr,
                    port: x.port,
                    forward: x.fwd,
                    weight: x.weight(),
                    upper: x.u_threshold,
                    lower: x.l_threshold,
                    active: x.active,
                    inactive: x.inactive,
                    persist: x.persist,
                    stats: stats_info(&x.stats),
                    rate: Default::default(),
                })
                .collect(),
            stats: stats_info(&s.stats),
            rate: Default::default(),
        })
        .collect()
}

pub fn connections(d: &Director, now_s: u32) -> Vec<ConnInfo> {
    d.conns
        .iter()
        .map(|(_, c)| ConnInfo {
            proto: match (c.ep.proto, c.state) {
                (6, _) => "TCP".into(),
                (17, _) => "UDP".into(),
                (_, ConnState::Template) => "IP".into(),
                (p, _) => p.to_string(),
            },
            expire_s: c.expires_s.saturating_sub(now_s),
            state: c.state.name().to_string(),
            caddr: c.ep.caddr,
            cport: c.ep.cport,
            vaddr: c.ep.vaddr,
            vport: c.ep.vport,
            daddr: c.ep.daddr,
            dport: c.ep.dport,
        })
        .collect()
}

/// Sums several workers' listings (same services and dests, counters added).
pub fn merge(mut per_worker: Vec<Vec<ServiceInfo>>) -> Vec<ServiceInfo> {
    let Some(mut total) = per_worker.pop() else { return Vec::new() };
    for other in per_worker {
        for s in other {
            let Some(t) = total.iter_mut().find(|t| t.spec.service == s.spec.service) else { continue };
            add(&mut t.stats, &s.stats);
            for d in s.dests {
                if let Some(td) = t.dests.iter_mut().find(|x| x.addr == d.addr && x.port == d.port) {
                    td.active += d.active;
                    td.inactive += d.inactive;
                    td.persist += d.persist;
                    add(&mut td.stats, &d.stats);
                }
            }
        }
    }
    total
}
