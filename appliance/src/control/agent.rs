//! The worker's side of the control plane: requests arrive on a channel, and the
//! worker answers them between bursts from its own state (its `Director`), so no
//! lock ever guards the data path. Listings (connections, and the counters of
//! services and dests) are answered a piece at a time (a few hundred entries of
//! plain data, no strings) from a cursor the control lcore hands back, so no answer
//! holds a worker for long whatever the size of its tables; the control lcore puts
//! the names and settings to the counters from the configuration it published.

use super::model::{apply_to_director, flag_names, Model};
use super::protocol::{Change, ConnInfo, DestInfo, ServiceInfo, ServiceKey, ServiceSpec, StatsInfo};
use crate::ipvs::conn::{ConnState, Endpoints};
use crate::ipvs::dest::Stats;
use crate::ipvs::director::Director;
use crate::ipvs::sched::SchedFlags;
use hashbrown::HashMap;
use std::net::Ipv4Addr;

/// Connections a worker lists per request.
pub const CONN_CHUNK: usize = 256;
/// Table slots a worker looks at per listing request (sparse tables).
pub const CONN_CHUNK_SLOTS: usize = 8192;

/// Counter entries a worker lists per request.
pub const COUNTER_CHUNK: usize = 256;
/// Service slots a worker looks at per counter-listing request (deleted services
/// leave empty slots).
pub const COUNTER_CHUNK_SLOTS: u32 = 4096;

/// The dest counter slots a counter piece sums for its services' totals (one
/// service with more is summed alone in its piece).
pub const COUNTER_CHUNK_SUMS: usize = 4096;

/// Where a counter listing goes on: a service slot, and a place in it (0: the
/// service's own counters, k: its dest k - 1).
pub type CounterCursor = (u32, u32);

/// The counters of a service (`dest` None) or of one of its dests, as one worker
/// lists them: fixed-size; names and settings come from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterEntry {
    pub service: ServiceKey,
    pub dest: Option<(std::net::IpAddr, u16)>,
    pub stats: StatsInfo,
    /// This worker's connections to the dest (0 for a service's own entry).
    pub active: u32,
    pub inactive: u32,
    pub persist: u32,
}

/// One connection as a worker lists it: fixed-size, formatted by the control lcore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnEntry {
    pub ep: Endpoints<std::net::IpAddr>,
    pub state: ConnState,
    /// Seconds left, at the worker's clock when it answered.
    pub expire_s: u32,
}

/// What the control lcore asks a worker.
#[derive(Debug, Clone)]
pub enum WorkerRequest {
    /// Changes the control plane has already validated.
    Apply(Vec<Change>),
    /// The next piece of the services' and dests' counters, into `buf` (its
    /// capacity bounds the piece).
    Counters { from: CounterCursor, buf: Vec<CounterEntry> },
    /// The next piece of the connection listing, from table slot `from`, into
    /// `buf` (its capacity bounds the piece).
    Connections { from: u32, buf: Vec<ConnEntry> },
    /// Zero traffic counters (one service, or all).
    Zero(Option<ServiceKey>),
    /// The next piece of the table as sync entries (connections in the states a
    /// peer can take over, and templates), from slot `from`, into `buf`.
    SyncDump { from: u32, buf: Vec<crate::ipvs::sync::SyncConn> },
}

#[derive(Debug, Clone)]
pub enum WorkerReply {
    Applied(Result<(), String>),
    /// At most `COUNTER_CHUNK` entries, and where the next piece starts (None:
    /// the listing is complete).
    Counters {
        entries: Vec<CounterEntry>,
        next: Option<CounterCursor>,
    },
    /// At most `CONN_CHUNK` connections, and where the next piece starts (None:
    /// the listing is complete).
    Connections {
        entries: Vec<ConnEntry>,
        next: Option<u32>,
    },
    /// A piece of the table as sync entries, and where the next starts.
    SyncDump {
        entries: Vec<crate::ipvs::sync::SyncConn>,
        next: Option<u32>,
    },
}

/// A request, or a reply, with the number that pairs them.
pub type Envelope<T> = (u64, T);

/// A listing's buffer as the control lcore provides it: the worker fills it
/// without allocating, and it goes back (and is freed) where it was made, so the
/// worker never takes an allocator's lock for another thread's memory. Made here
/// only when a caller gave none.
fn piece_buffer<T>(mut buf: Vec<T>, chunk: usize) -> Vec<T> {
    buf.clear();
    if buf.capacity() == 0 {
        buf.reserve(chunk);
    }
    buf
}

/// Answers one request from the worker's director; `now_s` is its clock.
pub fn serve(req: WorkerRequest, d: &mut Director, now_s: u32) -> WorkerReply {
    match req {
        WorkerRequest::Apply(changes) => {
            for c in &changes {
                if let Err(e) = apply_to_director(d, c) {
                    return WorkerReply::Applied(Err(e));
                }
            }
            WorkerReply::Applied(Ok(()))
        }
        WorkerRequest::Counters { from, buf } => {
            let mut entries = piece_buffer(buf, COUNTER_CHUNK);
            let next = counters(d, from, &mut entries);
            WorkerReply::Counters { entries, next }
        }
        WorkerRequest::Connections { from, buf } => {
            let mut entries = piece_buffer(buf, CONN_CHUNK);
            let max = entries.capacity().min(CONN_CHUNK);
            // The cursor runs over the IPv4 table's slots, then on over the IPv6 one's.
            let cap4 = u32::try_from(d.conns.capacity()).unwrap_or(u32::MAX);
            let entry = |ep: Endpoints<std::net::IpAddr>, state, expires_s: u32| ConnEntry {
                ep,
                state,
                expire_s: crate::ipvs::conn::seconds_left(expires_s, now_s),
            };
            let next = if from < cap4 {
                let next = d.conns.scan(from, max, CONN_CHUNK_SLOTS, |_, c| {
                    entries.push(entry(c.ep.ip(), c.state, c.expires_s));
                });
                Some(next.unwrap_or(cap4)).filter(|_| next.is_some() || !d.conns6.is_empty())
            } else {
                let next = d.conns6.scan(from - cap4, max, CONN_CHUNK_SLOTS, |_, c| {
                    entries.push(entry(c.ep.ip(), c.state, c.expires_s));
                });
                next.map(|n| n.saturating_add(cap4))
            };
            WorkerReply::Connections { entries, next }
        }
        WorkerRequest::Zero(svc) => {
            d.zero_stats(svc.as_ref());
            WorkerReply::Applied(Ok(()))
        }
        WorkerRequest::SyncDump { from, mut buf } => {
            buf.clear();
            let max = buf.capacity().min(CONN_CHUNK);
            // The IPv4 table's slots, then on over the IPv6 one's (as the listing).
            let cap4 = u32::try_from(d.conns.capacity()).unwrap_or(u32::MAX);
            let next = if from < cap4 {
                let next = d.conns.scan(from, max, CONN_CHUNK_SLOTS, |slot, c| {
                    if crate::ipvs::sync::worth_telling(c) {
                        buf.extend(d.sync_entry(slot));
                    }
                });
                Some(next.unwrap_or(cap4)).filter(|_| next.is_some() || !d.conns6.is_empty())
            } else {
                let next = d.conns6.scan(from - cap4, max, CONN_CHUNK_SLOTS, |slot, c| {
                    if crate::ipvs::sync::worth_telling(c) {
                        buf.extend(d.sync_entry(slot | crate::ipvs::director::SLOT_V6));
                    }
                });
                next.map(|n| n.saturating_add(cap4))
            };
            WorkerReply::SyncDump { entries: buf, next }
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

/// A piece of the counter listing from `from` into `out`: services in slot order,
/// each followed by its dests, as many entries as `out` has room for (at most
/// `COUNTER_CHUNK`) from at most `COUNTER_CHUNK_SLOTS` service slots, whose
/// totals sum at most `COUNTER_CHUNK_SUMS` dest counters (or one service's).
fn counters(d: &Director, from: CounterCursor, out: &mut Vec<CounterEntry>) -> Option<CounterCursor> {
    let max = out.capacity().min(COUNTER_CHUNK);
    let (mut id, mut at) = from;
    let mut summed = 0;
    let end = d.services.slots().min(id.saturating_add(COUNTER_CHUNK_SLOTS));
    while id < end {
        if let Some(s) = d.services.get(id) {
            let dests = s.dests();
            while (at as usize) <= dests.len() {
                if out.len() == max {
                    return Some((id, at));
                }
                if at == 0 {
                    // A service's total is a sum over its dest counters.
                    let n = s.counter_slots();
                    if summed > 0 && summed + n > COUNTER_CHUNK_SUMS {
                        return Some((id, at));
                    }
                    summed += n;
                }
                out.push(match at.checked_sub(1) {
                    None => CounterEntry {
                        service: s.key,
                        dest: None,
                        stats: stats_info(&s.stats()),
                        active: 0,
                        inactive: 0,
                        persist: 0,
                    },
                    Some(k) => {
                        let x = &dests[k as usize];
                        CounterEntry {
                            service: s.key,
                            dest: Some((x.addr, x.port)),
                            stats: stats_info(&s.dest_stats(k as usize)),
                            active: x.active,
                            inactive: x.inactive,
                            persist: x.persist,
                        }
                    }
                });
                at += 1;
            }
        }
        id += 1;
        at = 0;
    }
    (id < d.services.slots()).then_some((id, 0))
}

/// Walks `d`'s counter listing piece by piece as a worker answers it.
pub fn each_counter_piece(d: &mut Director, mut f: impl FnMut(&[CounterEntry])) {
    let mut from = Some((0, 0));
    while let Some(at) = from {
        let req = WorkerRequest::Counters { from: at, buf: Vec::with_capacity(COUNTER_CHUNK) };
        let WorkerReply::Counters { entries, next } = serve(req, d, 0) else {
            break;
        };
        f(&entries);
        from = next;
    }
}

/// Builds one worker's listing from its counter entries (in its order) and the
/// configuration it runs: names, scheduler, flags, persistence, weights and
/// thresholds from `model`, counts from the entries. What the worker has and the
/// model has not (a change still being taken) is left out.
pub struct Listing<'m> {
    model: &'m Model,
    index: HashMap<ServiceKey, usize>,
    services: Vec<ServiceInfo>,
}

impl<'m> Listing<'m> {
    pub fn new(model: &'m Model) -> Listing<'m> {
        let index = model.services.iter().enumerate().map(|(i, (s, _))| (s.service, i)).collect();
        Listing { model, index, services: Vec::new() }
    }

    pub fn add(&mut self, entries: &[CounterEntry]) {
        for e in entries {
            let Some(&i) = self.index.get(&e.service) else { continue };
            let (spec, dests) = &self.model.services[i];
            match e.dest {
                None => self.services.push(ServiceInfo {
                    spec: ServiceSpec {
                        service: spec.service,
                        scheduler: spec.scheduler.clone(),
                        flags: SchedFlags::parse(&spec.scheduler, &spec.flags.join(","))
                            .map(|f| flag_names(&spec.scheduler, f))
                            .unwrap_or_default(),
                        persistent: spec.persistent,
                        netmask: spec
                            .persistent
                            .filter(|_| !spec.service.is_ipv6())
                            .map(|_| spec.netmask.unwrap_or(Ipv4Addr::BROADCAST)),
                        prefix6: spec
                            .persistent
                            .filter(|_| spec.service.is_ipv6())
                            .map(|_| spec.prefix6.unwrap_or(128)),
                    },
                    dests: Vec::new(),
                    stats: e.stats,
                    rate: Default::default(),
                }),
                Some((addr, port)) => {
                    let Some(d) = dests.iter().find(|d| d.addr == addr && d.port == port) else { continue };
                    let Some(s) = self.services.last_mut().filter(|s| s.spec.service == e.service) else { continue };
                    s.dests.push(DestInfo {
                        addr,
                        port,
                        forward: d.forward,
                        weight: d.weight,
                        upper: d.upper,
                        lower: d.lower,
                        active: e.active,
                        inactive: e.inactive,
                        persist: e.persist,
                        stats: e.stats,
                        rate: Default::default(),
                    });
                }
            }
        }
    }

    /// The services in the order they were added (ipvsadm sorts them unless
    /// `--nosort`), each one's dests in its list order.
    pub fn finish(self) -> Vec<ServiceInfo> {
        self.services
    }
}

/// `d`'s listing, put together as the control lcore does (in-process callers).
pub fn list(d: &mut Director, model: &Model) -> Vec<ServiceInfo> {
    let mut l = Listing::new(model);
    each_counter_piece(d, |piece| l.add(piece));
    l.finish()
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
        let req = WorkerRequest::Connections { from: at, buf: Vec::with_capacity(CONN_CHUNK) };
        let WorkerReply::Connections { entries, next } = serve(req, d, now_s) else {
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
    fn a_counter_piece_sums_a_bounded_number_of_dest_counters() {
        // Three services that had 3 000 dests and keep 10: each total still sums
        // 3 000 counter slots, so no piece carries two of them (4 096 at most,
        // or one service's alone), though all 33 entries would fit one.
        use crate::ipvs::dest::Dest;
        use crate::ipvs::service::Service;
        let key = |p: u16| ServiceKey::Addr {
            proto: crate::ipvs::Protocol::Tcp,
            addr: Ipv4Addr::new(198, 18, 0, 10),
            port: p,
        };
        let mut table = ServiceTable::new();
        for p in 80..83u16 {
            let mut svc = Service::new(key(p), "rr", Default::default(), None).unwrap();
            for i in 0..3000u16 {
                let [a, b] = i.to_be_bytes();
                svc.add_dest(Dest::new(Ipv4Addr::new(198, 19, a, b), 80, FwdMethod::Masq, 1)).unwrap();
            }
            for i in 10..3000u16 {
                let [a, b] = i.to_be_bytes();
                svc.del_dest(Ipv4Addr::new(198, 19, a, b), 80).unwrap();
            }
            assert_eq!(svc.counter_slots(), 3000);
            table.add(svc).unwrap();
        }
        let d = Director::new(table, 64, 1);
        let (mut from, mut entries) = (Some((0, 0)), 0);
        while let Some(at) = from {
            let mut out = Vec::with_capacity(COUNTER_CHUNK);
            from = counters(&d, at, &mut out);
            let totals = out.iter().filter(|e| e.dest.is_none()).count();
            assert!(totals <= 1, "{totals} service totals in one piece");
            entries += out.len();
        }
        assert_eq!(entries, 3 * 11);
    }

    #[test]
    fn counters_of_many_services_come_in_bounded_pieces_and_are_put_to_the_configuration() {
        use crate::control::protocol::{DestSpec, ServiceSpec};
        use crate::ipvs::Protocol;
        let key = |p: u16| ServiceKey::Addr { proto: Protocol::Tcp, addr: Ipv4Addr::new(198, 18, 0, 10), port: p };
        let mut changes = Vec::new();
        // 300 services of 4 dests: 5 entries each, so pieces end inside services.
        for p in (1..=300).rev() {
            changes.push(Change::AddService(ServiceSpec {
                service: key(p),
                scheduler: "sh".into(),
                flags: vec!["sh-port".into()],
                persistent: (p == 7).then_some(600),
                netmask: None,
                prefix6: None,
            }));
            for last in 11..15 {
                changes.push(Change::AddDest(DestSpec {
                    service: key(p),
                    addr: std::net::IpAddr::from(Ipv4Addr::new(198, 18, 1, last)),
                    port: 80,
                    forward: FwdMethod::Masq,
                    weight: u32::from(last),
                    upper: 0,
                    lower: 0,
                }));
            }
        }
        // And 100 deleted ones before them: empty slots the walk steps over.
        let mut d = Director::new(ServiceTable::new(), 64, 1);
        for p in 1000..1100 {
            let spec = ServiceSpec {
                service: key(p),
                scheduler: "rr".into(),
                flags: vec![],
                persistent: None,
                netmask: None,
                prefix6: None,
            };
            apply_to_director(&mut d, &Change::AddService(spec)).unwrap();
            apply_to_director(&mut d, &Change::DelService { service: key(p) }).unwrap();
        }
        let mut model = Model::default();
        model.apply_all(&changes).unwrap();
        for c in &changes {
            apply_to_director(&mut d, c).unwrap();
        }
        let svc = d.services.by_key_mut(&key(42)).unwrap();
        svc.dests_mut_by_index(2).bind_conn();
        svc.count_new(svc.dest_id(2), 60);
        let (mut pieces, mut total) = (0, 0);
        each_counter_piece(&mut d, |piece| {
            assert!(piece.len() <= COUNTER_CHUNK);
            pieces += 1;
            total += piece.len();
        });
        assert_eq!(total, 300 * 5);
        assert!(pieces >= 300 * 5 / COUNTER_CHUNK, "{pieces} pieces");
        let l = list(&mut d, &model);
        assert_eq!(l.len(), 300);
        assert!(l.windows(2).all(|w| w[0].spec.service > w[1].spec.service), "in the order they were added");
        let s42 = &l[300 - 42];
        assert_eq!(s42.spec.service, key(42));
        assert_eq!(s42.spec.flags, vec!["sh-port".to_string()]);
        assert_eq!(
            s42.dests.iter().map(|x| (x.weight, x.inactive)).collect::<Vec<_>>(),
            [(14, 0), (13, 0), (12, 1), (11, 0)],
            "the kernel's order: the newest dest first"
        );
        assert_eq!(s42.dests[2].stats.conns, 1);
        assert_eq!((l[300 - 7].spec.persistent, l[300 - 7].spec.netmask), (Some(600), Some(Ipv4Addr::BROADCAST)));
    }

    #[test]
    fn a_listing_of_100k_connections_comes_in_bounded_pieces_and_adds_up() {
        let mut d = director_with(100_000);
        let (mut from, mut pieces, mut total) = (Some(0), 0, 0);
        while let Some(f) = from {
            let WorkerReply::Connections { entries, next } =
                serve(WorkerRequest::Connections { from: f, buf: Vec::new() }, &mut d, 10)
            else {
                panic!("not a listing piece");
            };
            assert!(entries.len() <= CONN_CHUNK);
            // Made during second 0 for 900 s, listed during second 10: 889 s surely left.
            assert!(entries.iter().all(|e| e.expire_s == 889 && e.state.name() == "ESTABLISHED"));
            total += entries.len();
            pieces += 1;
            from = next;
        }
        assert_eq!(total, 100_000, "the pieces add up to the table");
        assert!(pieces >= 100_000 / CONN_CHUNK, "{pieces} pieces");
        // Formatted as ipvsadm prints them.
        let mut w = crate::control::listing::ConnLineWriter::default();
        let mut out = String::new();
        let WorkerReply::Connections { entries, .. } =
            serve(WorkerRequest::Connections { from: 0, buf: Vec::new() }, &mut d, 10)
        else {
            panic!("not a listing piece");
        };
        format_entries(&entries[..1], &mut w, &mut out);
        assert_eq!(out, "TCP 14:49  ESTABLISHED 100.64.0.0:40000   198.18.0.10:80     198.18.1.11:80\n");
        assert_eq!(crate::control::listing::connection_lines(&[conn_info(&entries[0])]), out);
    }
}
