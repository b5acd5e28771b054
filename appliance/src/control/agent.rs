//! The worker's side of the control plane: requests arrive on a channel, and the
//! worker answers them between bursts from its own state (its `Director`), so no
//! lock ever guards the data path. A connection listing is answered a piece at a
//! time (`CONN_CHUNK` entries of plain data, no strings) from a cursor the control
//! lcore hands back, so no answer holds a worker for long whatever its table's size.

use super::model::{apply_to_director, flag_names};
use super::protocol::{Change, ConnInfo, DestInfo, ServiceInfo, ServiceKey, ServiceSpec, StatsInfo};
use crate::ipvs::conn::{ConnState, Endpoints};
use crate::ipvs::dest::Stats;
use crate::ipvs::director::Director;

/// Connections a worker lists per request.
pub const CONN_CHUNK: usize = 256;
/// Table slots a worker looks at per listing request (sparse tables).
pub const CONN_CHUNK_SLOTS: usize = 8192;

/// One connection as a worker lists it: fixed-size, formatted by the control lcore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnEntry {
    pub ep: Endpoints,
    pub state: ConnState,
    /// Seconds left, at the worker's clock when it answered.
    pub expire_s: u32,
}

/// What the control lcore asks a worker.
#[derive(Debug, Clone)]
pub enum WorkerRequest {
    /// Changes the control plane has already validated.
    Apply(Vec<Change>),
    List,
    /// The next piece of the connection listing, from table slot `from`.
    Connections {
        from: u32,
    },
    /// Zero traffic counters (one service, or all).
    Zero(Option<ServiceKey>),
}

#[derive(Debug, Clone)]
pub enum WorkerReply {
    Applied(Result<(), String>),
    Services(Vec<ServiceInfo>),
    /// At most `CONN_CHUNK` connections, and where the next piece starts (None:
    /// the listing is complete).
    Connections {
        entries: Vec<ConnEntry>,
        next: Option<u32>,
    },
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
        WorkerRequest::Connections { from } => {
            let mut entries = Vec::with_capacity(CONN_CHUNK);
            let next = d.conns.scan(*from, CONN_CHUNK, CONN_CHUNK_SLOTS, |_, c| {
                entries.push(ConnEntry { ep: c.ep, state: c.state, expire_s: c.expires_s.saturating_sub(now_s) });
            });
            WorkerReply::Connections { entries, next }
        }
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

/// The protocol column of a listed connection: `TCP`, `UDP`, `IP` for a firewall-mark
/// template, else the number.
fn proto_name(e: &ConnEntry) -> std::borrow::Cow<'static, str> {
    match (e.ep.proto, e.state) {
        (6, _) => "TCP".into(),
        (17, _) => "UDP".into(),
        (_, ConnState::Template) => "IP".into(),
        (p, _) => p.to_string().into(),
    }
}

/// Appends `entries` to `out` as `ipvsadm -L -n -c` lines.
pub fn format_entries(entries: &[ConnEntry], w: &mut super::listing::ConnLineWriter, out: &mut String) {
    for e in entries {
        let ends = ((e.ep.caddr, e.ep.cport), (e.ep.vaddr, e.ep.vport), (e.ep.daddr, e.ep.dport));
        w.line(out, &proto_name(e), e.expire_s, e.state.name(), ends);
    }
}

/// A listed connection as the control socket carries it (ipvsadm's names).
pub fn conn_info(e: &ConnEntry) -> ConnInfo {
    ConnInfo {
        proto: proto_name(e).into_owned(),
        expire_s: e.expire_s,
        state: e.state.name().to_string(),
        caddr: e.ep.caddr,
        cport: e.ep.cport,
        vaddr: e.ep.vaddr,
        vport: e.ep.vport,
        daddr: e.ep.daddr,
        dport: e.ep.dport,
    }
}

/// Walks `d`'s connections piece by piece as a worker answers them (in-process
/// callers: tests, tools); returns how many there were.
pub fn each_piece(d: &mut Director, now_s: u32, mut f: impl FnMut(&[ConnEntry])) -> u64 {
    let (mut from, mut count) = (Some(0), 0);
    while let Some(at) = from {
        let WorkerReply::Connections { entries, next } = serve(&WorkerRequest::Connections { from: at }, d, now_s)
        else {
            break;
        };
        count += entries.len() as u64;
        f(&entries);
        from = next;
    }
    count
}

/// Every connection of `d`, as the control socket carries them.
pub fn connections(d: &mut Director, now_s: u32) -> Vec<ConnInfo> {
    let mut out = Vec::new();
    each_piece(d, now_s, |piece| out.extend(piece.iter().map(conn_info)));
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::conn::{flags, Binding, Conn, TcpState, NONE};
    use crate::ipvs::dest::FwdMethod;
    use crate::ipvs::service::ServiceTable;
    use std::net::Ipv4Addr;

    fn director_with(n: u32) -> Director {
        let mut d = Director::new(ServiceTable::new(), 2 * n as usize, 1);
        for i in 0..n {
            let ep = Endpoints {
                proto: 6,
                caddr: Ipv4Addr::from(0x6440_0000 + i),
                cport: 40_000,
                vaddr: Ipv4Addr::new(198, 18, 0, 10),
                vport: 80,
                daddr: Ipv4Addr::new(198, 18, 1, 11),
                dport: 80,
            };
            let state = ConnState::Tcp(TcpState::Established);
            let c = Conn::new(ep, state, FwdMethod::Masq, flags::INACTIVE, Binding { service: 0, dest: 0 }, 900, NONE);
            d.conns.insert(c, true, 0).unwrap();
        }
        d
    }

    #[test]
    fn a_listing_of_100k_connections_comes_in_bounded_pieces_and_adds_up() {
        let mut d = director_with(100_000);
        let (mut from, mut pieces, mut total) = (Some(0), 0, 0);
        while let Some(f) = from {
            let WorkerReply::Connections { entries, next } = serve(&WorkerRequest::Connections { from: f }, &mut d, 10)
            else {
                panic!("not a listing piece");
            };
            assert!(entries.len() <= CONN_CHUNK);
            assert!(entries.iter().all(|e| e.expire_s == 890 && e.state.name() == "ESTABLISHED"));
            total += entries.len();
            pieces += 1;
            from = next;
        }
        assert_eq!(total, 100_000, "the pieces add up to the table");
        assert!(pieces >= 100_000 / CONN_CHUNK, "{pieces} pieces");
        // Formatted as ipvsadm prints them.
        let mut w = crate::control::listing::ConnLineWriter::default();
        let mut out = String::new();
        let WorkerReply::Connections { entries, .. } = serve(&WorkerRequest::Connections { from: 0 }, &mut d, 10)
        else {
            panic!("not a listing piece");
        };
        format_entries(&entries[..1], &mut w, &mut out);
        assert_eq!(out, "TCP 14:50  ESTABLISHED 100.64.0.0:40000   198.18.0.10:80     198.18.1.11:80\n");
        assert_eq!(crate::control::listing::connection_lines(&[conn_info(&entries[0])]), out);
    }
}
