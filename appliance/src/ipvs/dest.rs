//! Real servers ("destinations"): address, port, forwarding method, weight,
//! connection thresholds, and the connection counters IPVS keeps for them.
//!
//! Counting follows the kernel (`ip_vs_bind_dest`, `set_tcp_state`,
//! `ip_vs_unbind_dest`): a new connection is bound inactive (InActConn + 1); a TCP
//! state that counts as active (SYN_SENT, SYN_RECV, ESTABLISHED, SYNACK) moves it to
//! ActiveConn, any other state back; UDP connections stay inactive. Persistence
//! templates count in PersistConn. With an upper threshold the dest is overloaded
//! once ActiveConn + InActConn reaches it, and available again below the lower
//! threshold (or, without one, below 3/4 of the upper).
//!
//! RVS difference: each worker lcore keeps its own counters (its own connection
//! table), so the least-connection schedulers see the lcore's share of the load;
//! the control plane sums them for listings.

use core::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Most workers a dest's shared counters have room for.
pub const MAX_WORKERS: usize = 64;

/// One dest's connection counts as every worker sees them: one slot per worker,
/// written only by that worker (a plain store), read by all (loads), so the
/// least-connection schedulers on any lcore weigh the dest's whole load.
#[derive(Debug)]
pub struct Shared {
    active: [AtomicU32; MAX_WORKERS],
    inactive: [AtomicU32; MAX_WORKERS],
    workers: usize,
}

impl Shared {
    pub fn new(workers: usize) -> Arc<Shared> {
        Arc::new(Shared {
            active: std::array::from_fn(|_| AtomicU32::new(0)),
            inactive: std::array::from_fn(|_| AtomicU32::new(0)),
            workers: workers.clamp(1, MAX_WORKERS),
        })
    }

    fn sum(slots: &[AtomicU32; MAX_WORKERS], n: usize) -> u32 {
        slots[..n].iter().map(|a| a.load(Ordering::Relaxed)).fold(0u32, u32::saturating_add)
    }
}

/// A worker's handle on a dest's shared counts: the block and its own slot.
#[derive(Debug, Clone)]
pub struct SharedCounts {
    shared: Arc<Shared>,
    slot: usize,
}

impl PartialEq for SharedCounts {
    fn eq(&self, o: &SharedCounts) -> bool {
        Arc::ptr_eq(&self.shared, &o.shared) && self.slot == o.slot
    }
}

impl Eq for SharedCounts {}

/// How packets reach the real server (named `masq`, `route`, `tunnel` on the
/// control socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FwdMethod {
    /// NAT (`-m`): destination address and port rewritten, replies come back through
    /// the director.
    Masq,
    /// Direct routing (`-g`, gatewaying): only the destination MAC changes.
    Route,
    /// IPIP tunnelling (`-i`).
    Tunnel,
    /// The real server is the director itself (an address it owns): the packet goes
    /// to its own kernel unchanged (the kernel's LOCALNODE; set by address, as the
    /// kernel does, whatever switch was given).
    Local,
}

impl fmt::Display for FwdMethod {
    /// As ipvsadm's listing prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FwdMethod::Masq => "Masq",
            FwdMethod::Route => "Route",
            FwdMethod::Tunnel => "Tunnel",
            FwdMethod::Local => "Local",
        })
    }
}

/// Traffic counters, as IPVS keeps them per service and per real server
/// (`ipvsadm --stats`): connections scheduled, packets and bytes (IP length) in
/// each direction. Per lcore; the control plane sums them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl Stats {
    /// Counts one packet of `len` bytes; `inbound` is client -> real server.
    #[inline]
    pub fn packet(&mut self, inbound: bool, len: u32) {
        if inbound {
            self.inpkts += 1;
            self.inbytes += u64::from(len);
        } else {
            self.outpkts += 1;
            self.outbytes += u64::from(len);
        }
    }

    pub fn add(&mut self, o: &Stats) {
        self.conns += o.conns;
        self.inpkts += o.inpkts;
        self.outpkts += o.outpkts;
        self.inbytes += o.inbytes;
        self.outbytes += o.outbytes;
    }

    /// `self + o` modulo 2^64 in each counter (offsets that may stand for
    /// negative amounts: a service's base).
    pub fn wrapping_add(&self, o: &Stats) -> Stats {
        Stats {
            conns: self.conns.wrapping_add(o.conns),
            inpkts: self.inpkts.wrapping_add(o.inpkts),
            outpkts: self.outpkts.wrapping_add(o.outpkts),
            inbytes: self.inbytes.wrapping_add(o.inbytes),
            outbytes: self.outbytes.wrapping_add(o.outbytes),
        }
    }

    /// `self - o` modulo 2^64 in each counter.
    pub fn wrapping_sub(&self, o: &Stats) -> Stats {
        Stats {
            conns: self.conns.wrapping_sub(o.conns),
            inpkts: self.inpkts.wrapping_sub(o.inpkts),
            outpkts: self.outpkts.wrapping_sub(o.outpkts),
            inbytes: self.inbytes.wrapping_sub(o.inbytes),
            outbytes: self.outbytes.wrapping_sub(o.outbytes),
        }
    }
}

/// The largest weight ipvsadm accepts.
pub const MAX_WEIGHT: u32 = 65535;

/// A real server of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    /// Of the service's family.
    pub addr: IpAddr,
    /// 0 in a fwmark or port-0 service: the packet's destination port is kept.
    pub port: u16,
    pub fwd: FwdMethod,
    weight: u32,
    /// The last non-zero weight (Maglev keeps a quiesced dest's slots with it).
    last_weight: u32,
    /// Upper connection threshold (0: none).
    pub u_threshold: u32,
    /// Lower connection threshold (0: none).
    pub l_threshold: u32,
    /// ActiveConn.
    pub active: u32,
    /// InActConn.
    pub inactive: u32,
    /// PersistConn (templates).
    pub persist: u32,
    overloaded: bool,
    /// With several workers: the counts of all of them (None: this worker's only).
    shared: Option<SharedCounts>,
    /// What NAT's rewrite towards it does to the checksums
    /// (`checksum::nat_sums`), where every connection to it has the same
    /// endpoints but the client (an IPv4 service's with a port): its
    /// service's, set as it joins it.
    pub(super) nat_sums: Option<[u16; 2]>,
}

impl Dest {
    pub fn new(addr: impl Into<IpAddr>, port: u16, fwd: FwdMethod, weight: u32) -> Dest {
        let weight = weight.min(MAX_WEIGHT);
        Dest {
            addr: addr.into(),
            port,
            fwd,
            weight,
            last_weight: weight,
            u_threshold: 0,
            l_threshold: 0,
            active: 0,
            inactive: 0,
            persist: 0,
            overloaded: false,
            shared: None,
            nat_sums: None,
        }
    }

    /// Joins the dest's shared counts as worker `slot`.
    pub fn attach(&mut self, shared: Arc<Shared>, slot: usize) {
        if slot < MAX_WORKERS {
            self.shared = Some(SharedCounts { shared, slot });
            self.publish();
        }
    }

    fn publish(&self) {
        if let Some(s) = &self.shared {
            s.shared.active[s.slot].store(self.active, Ordering::Relaxed);
            s.shared.inactive[s.slot].store(self.inactive, Ordering::Relaxed);
        }
    }

    /// ActiveConn over every worker.
    pub fn active_total(&self) -> u32 {
        match &self.shared {
            Some(s) => Shared::sum(&s.shared.active, s.shared.workers),
            None => self.active,
        }
    }

    /// InActConn over every worker.
    pub fn inactive_total(&self) -> u32 {
        match &self.shared {
            Some(s) => Shared::sum(&s.shared.inactive, s.shared.workers),
            None => self.inactive,
        }
    }

    pub fn with_thresholds(mut self, upper: u32, lower: u32) -> Dest {
        self.u_threshold = upper;
        self.l_threshold = lower;
        self.update_overload();
        self
    }

    pub fn weight(&self) -> u32 {
        self.weight
    }

    pub fn last_weight(&self) -> u32 {
        self.last_weight
    }

    /// Sets the weight; 0 quiesces the dest (no new connections, existing ones go on).
    pub fn set_weight(&mut self, w: u32) {
        self.weight = w.min(MAX_WEIGHT);
        if self.weight != 0 {
            self.last_weight = self.weight;
        }
    }

    /// Over its upper threshold (IP_VS_DEST_F_OVERLOAD).
    pub fn is_overloaded(&self) -> bool {
        self.overloaded
    }

    /// Weight above zero and not overloaded: may take new connections.
    pub fn is_available(&self) -> bool {
        self.weight > 0 && !self.overloaded
    }

    /// ActiveConn + InActConn, over every worker.
    pub fn total_conns(&self) -> u32 {
        self.active_total().saturating_add(self.inactive_total())
    }

    /// The kernel's `ip_vs_dest_conn_overhead`: active * 256 + inactive, over every
    /// worker.
    pub fn conn_overhead(&self) -> u64 {
        (u64::from(self.active_total()) << 8) + u64::from(self.inactive_total())
    }

    /// A new connection was bound to this dest (inactive until its state says so).
    pub fn bind_conn(&mut self) {
        self.bind_conn_as(false);
    }

    /// As `bind_conn`, for a connection already active (its first packet applied):
    /// counted in ActiveConn at once.
    pub fn bind_conn_as(&mut self, active: bool) {
        if active {
            self.active = self.active.saturating_add(1);
        } else {
            self.inactive = self.inactive.saturating_add(1);
        }
        self.publish();
        self.update_overload();
    }

    /// A connection a peer director scheduled (entered from a sync message): in
    /// ActiveConn or InActConn, not in this director's scheduling counts.
    pub fn bind_synced(&mut self, active: bool) {
        if active {
            self.active = self.active.saturating_add(1);
        } else {
            self.inactive = self.inactive.saturating_add(1);
        }
        self.publish();
        self.update_overload();
    }

    /// A connection left (expired); `active` is its activity flag.
    pub fn unbind_conn(&mut self, active: bool) {
        if active {
            self.active = self.active.saturating_sub(1);
        } else {
            self.inactive = self.inactive.saturating_sub(1);
        }
        self.publish();
        self.update_overload();
    }

    /// A connection moved between inactive and active.
    pub fn conn_activity(&mut self, now_active: bool) {
        if now_active {
            self.inactive = self.inactive.saturating_sub(1);
            self.active = self.active.saturating_add(1);
        } else {
            self.active = self.active.saturating_sub(1);
            self.inactive = self.inactive.saturating_add(1);
        }
        self.publish();
    }

    /// This worker's connections or templates still hold the dest.
    pub fn held(&self) -> bool {
        self.active != 0 || self.inactive != 0 || self.persist != 0
    }

    pub fn bind_template(&mut self) {
        self.persist = self.persist.saturating_add(1);
    }

    pub fn unbind_template(&mut self) {
        self.persist = self.persist.saturating_sub(1);
    }

    /// Sets or clears the overload flag from the thresholds, as the kernel does when
    /// connections are bound and unbound.
    fn update_overload(&mut self) {
        if self.u_threshold == 0 {
            // No threshold (the usual case): nothing to count.
            self.overloaded = false;
            return;
        }
        let total = self.total_conns();
        if total >= self.u_threshold {
            self.overloaded = true;
        } else if self.l_threshold != 0 {
            if total < self.l_threshold {
                self.overloaded = false;
            }
        } else if u64::from(total) * 4 < u64::from(self.u_threshold) * 3 {
            self.overloaded = false;
        }
    }

    /// For tests and simulations: set counters directly.
    pub fn with_conns(mut self, active: u32, inactive: u32) -> Dest {
        self.active = active;
        self.inactive = inactive;
        self.publish();
        self.update_overload();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn d() -> Dest {
        Dest::new(Ipv4Addr::new(198, 18, 1, 11), 80, FwdMethod::Masq, 1)
    }

    #[test]
    fn counting_like_the_kernel() {
        let mut x = d();
        x.bind_conn();
        assert_eq!((x.active, x.inactive), (0, 1), "bound inactive");
        x.conn_activity(true);
        assert_eq!((x.active, x.inactive), (1, 0));
        assert_eq!(x.conn_overhead(), 256);
        x.conn_activity(false);
        x.unbind_conn(false);
        assert_eq!((x.active, x.inactive), (0, 0));
    }

    #[test]
    fn weight_zero_quiesces_and_remembers_the_last_weight() {
        let mut x = d();
        x.set_weight(5);
        x.set_weight(0);
        assert!(!x.is_available());
        assert_eq!((x.weight(), x.last_weight()), (0, 5));
        x.set_weight(70000);
        assert_eq!(x.weight(), MAX_WEIGHT);
    }

    #[test]
    fn shared_counts_sum_every_worker() {
        let shared = Shared::new(3);
        let mut w0 = d();
        let mut w1 = d();
        w0.attach(Arc::clone(&shared), 0);
        w1.attach(Arc::clone(&shared), 1);
        w0.bind_conn();
        w0.conn_activity(true);
        w1.bind_conn();
        w1.bind_conn();
        assert_eq!((w0.active, w0.inactive), (1, 0), "own counts stay local");
        assert_eq!((w0.active_total(), w0.inactive_total()), (1, 2));
        assert_eq!(w1.conn_overhead(), 256 + 2, "a scheduler on worker 1 sees worker 0's connection");
        w1.unbind_conn(false);
        assert_eq!(w0.inactive_total(), 1);
    }

    #[test]
    fn thresholds_with_and_without_lower() {
        let mut x = d().with_thresholds(4, 2);
        for _ in 0..3 {
            x.bind_conn();
        }
        assert!(!x.is_overloaded());
        x.bind_conn();
        assert!(x.is_overloaded(), "4 >= upper 4");
        x.unbind_conn(false);
        assert!(x.is_overloaded(), "3 is not below the lower threshold 2");
        x.unbind_conn(false);
        assert!(x.is_overloaded(), "2 is not below 2");
        x.unbind_conn(false);
        assert!(!x.is_overloaded(), "1 < 2");

        let mut y = d().with_thresholds(8, 0);
        for _ in 0..8 {
            y.bind_conn();
        }
        assert!(y.is_overloaded());
        y.unbind_conn(false);
        y.unbind_conn(false);
        assert!(y.is_overloaded(), "6 * 4 = 24 is not < 8 * 3");
        y.unbind_conn(false);
        assert!(!y.is_overloaded(), "5 * 4 = 20 < 24");
    }
}
