//! The connection sync daemon's control side, DPDK- and socket-free: its
//! configuration (ipvsadm's `--start-daemon` options and keepalived's
//! `lvs_sync_daemon`), the switch workers read to know whether to queue
//! connections, the batching of entries into messages (full, or 20 ms after the
//! first entry: the kernel's send delay), the counters, and `-L --daemon`'s listing.
//! A director runs master and backup at once (the kernel allows both), so after a
//! failback the returning director holds what its peer served meanwhile.

use crate::ipvs::sync::{self, Fault, MessageBuilder, Rules, SyncConn};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long an entry may wait for its message to fill (`IPVS_SYNC_SEND_DELAY`).
pub const SEND_DELAY: Duration = Duration::from_millis(20);

/// One daemon's settings (`--start-daemon master|backup --mcast-interface IF
/// --syncid N --sync-maxlen N --mcast-group A --mcast-port P --mcast-ttl T`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DaemonSpec {
    /// The interface multicast leaves and arrives by: a port's name or its kernel
    /// interface's (printed as given).
    pub mcast_interface: String,
    pub syncid: u8,
    pub maxlen: usize,
    pub group: Ipv4Addr,
    pub port: u16,
    pub ttl: u8,
}

impl DaemonSpec {
    pub fn new(mcast_interface: &str, syncid: u8) -> DaemonSpec {
        DaemonSpec {
            mcast_interface: mcast_interface.to_string(),
            syncid,
            maxlen: sync::DEFAULT_MAXLEN,
            group: sync::GROUP,
            port: sync::PORT,
            ttl: 1,
        }
    }

    /// ipvsadm's line for it: the kernel's two fields, then what is not default.
    fn line(&self, role: &str) -> String {
        let mut s = format!("{role} sync daemon (mcast={}, syncid={}", self.mcast_interface, self.syncid);
        if self.maxlen != sync::DEFAULT_MAXLEN {
            s.push_str(&format!(", maxlen={}", self.maxlen));
        }
        if self.group != sync::GROUP {
            s.push_str(&format!(", group={}", self.group));
        }
        if self.port != sync::PORT {
            s.push_str(&format!(", port={}", self.port));
        }
        if self.ttl != 1 {
            s.push_str(&format!(", ttl={}", self.ttl));
        }
        s + ")\n"
    }
}

/// Which daemons run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncSpec {
    pub master: Option<DaemonSpec>,
    pub backup: Option<DaemonSpec>,
    /// The kernel's `sync_threshold` and `sync_period`.
    pub threshold: u32,
    pub period: u32,
}

impl SyncSpec {
    pub fn rules(&self) -> Rules {
        Rules { threshold: self.threshold, period: self.period }
    }

    /// `ipvsadm -L --daemon`.
    pub fn listing(&self) -> String {
        let mut s = String::new();
        if let Some(m) = &self.master {
            s.push_str(&m.line("master"));
        }
        if let Some(b) = &self.backup {
            s.push_str(&b.line("backup"));
        }
        s
    }
}

/// What workers read once per loop iteration: whether to queue connections for
/// sync, and by which rules. A change moves the generation.
#[derive(Debug, Default)]
pub struct Switch {
    on: AtomicBool,
    threshold: AtomicU32,
    period: AtomicU32,
    generation: AtomicU64,
}

impl Switch {
    pub fn set(&self, rules: Option<Rules>) {
        self.on.store(rules.is_some(), Ordering::Relaxed);
        let r = rules.unwrap_or_default();
        self.threshold.store(r.threshold, Ordering::Relaxed);
        self.period.store(r.period, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Release);
    }

    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn rules(&self) -> Option<Rules> {
        self.on.load(Ordering::Relaxed).then(|| Rules {
            threshold: self.threshold.load(Ordering::Relaxed),
            period: self.period.load(Ordering::Relaxed),
        })
    }
}

/// Counters of the sync daemon (exported as rvs_sync_*).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncCounters {
    pub messages_sent: u64,
    pub conns_sent: u64,
    pub send_errors: u64,
    pub messages_received: u64,
    pub conns_received: u64,
    /// Per fault (`Fault::ALL` order): messages dropped (message faults) or entries
    /// skipped (entry faults).
    pub dropped: [u64; Fault::ALL.len()],
    /// Our own messages, seen again (ignored).
    pub own: u64,
    /// Entries no worker could take (its ring full).
    pub ring_full: u64,
}

/// Entries on their way into messages.
#[derive(Debug)]
pub struct Outbox {
    builder: MessageBuilder,
    first_at: Option<Instant>,
}

impl Outbox {
    pub fn new(spec: &DaemonSpec) -> Outbox {
        Outbox { builder: MessageBuilder::new(spec.syncid, spec.maxlen), first_at: None }
    }

    /// Adds an entry; a message that filled up comes back to be sent.
    pub fn push(&mut self, e: &SyncConn, now: Instant, out: &mut Vec<Vec<u8>>) {
        if !self.builder.push(e) {
            out.push(self.builder.take());
            self.first_at = None;
            let _ = self.builder.push(e);
        }
        self.first_at.get_or_insert(now);
    }

    /// The message, if its first entry has waited `SEND_DELAY`.
    pub fn due(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        if self.first_at.is_some_and(|t| now.duration_since(t) >= SEND_DELAY) && !self.builder.is_empty() {
            out.push(self.builder.take());
            self.first_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_is_ipvsadm_s() {
        let mut s = SyncSpec { threshold: 3, period: 50, ..Default::default() };
        assert_eq!(s.listing(), "");
        s.master = Some(DaemonSpec::new("eth1", 1));
        s.backup = Some(DaemonSpec { ttl: 2, ..DaemonSpec::new("eth1", 1) });
        assert_eq!(
            s.listing(),
            "master sync daemon (mcast=eth1, syncid=1)\nbackup sync daemon (mcast=eth1, syncid=1, ttl=2)\n"
        );
    }

    #[test]
    fn entries_leave_when_a_message_is_full_or_has_waited_20_ms() {
        let spec = DaemonSpec::new("k1", 1);
        let mut o = Outbox::new(&spec);
        let e = crate::ipvs::sync::tests::conn(1);
        let t0 = Instant::now();
        let mut out = Vec::new();
        for _ in 0..41 {
            o.push(&e, t0, &mut out);
        }
        assert_eq!(out.len(), 1, "40 entries fill 1472 bytes; the 41st starts the next");
        assert_eq!(out[0].len(), 8 + 40 * 36);
        o.due(t0 + Duration::from_millis(19), &mut out);
        assert_eq!(out.len(), 1);
        o.due(t0 + Duration::from_millis(20), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1][4], 1, "the last entry alone");
        let sw = Switch::default();
        let g = sw.generation();
        sw.set(Some(Rules::default()));
        assert!(sw.generation() != g && sw.rules() == Some(Rules::default()));
    }
}
