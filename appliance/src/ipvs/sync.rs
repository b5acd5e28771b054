//! The IPVS sync daemon's messages, version 1 (the kernel's `ip_vs_sync.c`): what a
//! master multicasts about its connections so a backup can take them over.
//!
//! ```text
//! message:  | 0 (reserved) | syncid | size (16, whole datagram) |
//!           | count        | version 1 | spare 0 (16)            |   then `count` entries
//! IPv4 entry (36 bytes, padded to 32 bits with its options):
//!           | type 0 | protocol | version (4 bits, 0) + size (12 bits) |
//!           | flags (32) | state (16) | cport | vport | dport |
//!           | fwmark (32) | timeout in seconds (32) | caddr | vaddr | daddr |
//!           options: | type | length | data |   (sequence data, persistence engine)
//! ```
//!
//! Parsing checks what the kernel checks and tells each fault apart: a fault of the
//! message (too short, size not the datagram's, not version 1, a foreign syncid, an
//! entry running past the end, an entry version or an option it cannot read) drops
//! the rest of the message; a fault of one entry (unknown protocol, impossible state,
//! impossible addresses, IPv6 before RVS speaks it) skips that entry.

use super::conn::{self, Binding, Conn, ConnState, Endpoints, TcpState, NONE};
use super::conntab::Tuple;
use super::dest::FwdMethod;
use super::director::{Director, Family, PacketInfo, Parts, SLOT_V6};
use super::Protocol;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The kernel's default group and port.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
pub const PORT: u16 = 8848;
/// Message header.
pub const HEADER_LEN: usize = 8;
/// An IPv4 entry without options.
pub const CONN_V4_LEN: usize = 36;
/// The same, as the entry's size field and the header's size of an empty message.
const CONN_V4_SIZE: u16 = 36;
const HEADER_SIZE: u8 = 8;
/// An IPv6 entry without options.
pub const CONN_V6_LEN: usize = 72;
/// The message version this speaks.
pub const VERSION: u8 = 1;
/// Entry type bit: IPv6 addresses.
pub const TYPE_INET6: u8 = 1;
/// The kernel's default maximum message: an Ethernet MTU's worth of UDP payload
/// (1500 - 20 IPv4 - 8 UDP).
pub const DEFAULT_MAXLEN: usize = 1472;
/// Options.
pub const OPT_SEQ_DATA: u8 = 1;
pub const OPT_PE_DATA: u8 = 2;
pub const OPT_PE_NAME: u8 = 3;
/// Option type bit: the option may be ignored when not understood.
pub const OPT_F_PARAM: u8 = 1 << (7 - 1);

/// `IP_VS_CONN_F_*`, as they travel.
pub mod cflags {
    pub const FWD_MASK: u32 = 0x0007;
    pub const MASQ: u32 = 0x0000;
    pub const LOCALNODE: u32 = 0x0001;
    pub const TUNNEL: u32 = 0x0002;
    pub const DROUTE: u32 = 0x0003;
    pub const SYNC: u32 = 0x0020;
    pub const HASHED: u32 = 0x0040;
    pub const NOOUTPUT: u32 = 0x0080;
    pub const INACTIVE: u32 = 0x0100;
    pub const SEQ_MASK: u32 = 0x0600;
    pub const NO_CPORT: u32 = 0x0800;
    pub const TEMPLATE: u32 = 0x1000;
    pub const ONE_PACKET: u32 = 0x2000;
    /// What a backup takes from a message (`IP_VS_CONN_F_BACKUP_MASK`).
    pub const BACKUP_MASK: u32 = FWD_MASK | NOOUTPUT | INACTIVE | SEQ_MASK | NO_CPORT | TEMPLATE;
}

/// Protocol states the kernel knows: TCP has 11 (`IP_VS_TCP_S_LAST`), UDP one,
/// templates two (`IP_VS_CTPL_S_LAST`).
pub const TCP_STATES: u16 = 11;
pub const TEMPLATE_STATES: u16 = 2;

/// One connection (or persistence template) as it travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConn {
    pub proto: u8,
    pub flags: u32,
    pub state: u16,
    pub cport: u16,
    pub vport: u16,
    pub dport: u16,
    pub fwmark: u32,
    pub timeout_s: u32,
    /// All three of one family: an IPv6 connection travels as a 72-byte entry.
    pub caddr: IpAddr,
    pub vaddr: IpAddr,
    pub daddr: IpAddr,
}

impl SyncConn {
    pub fn is_template(&self) -> bool {
        self.flags & cflags::TEMPLATE != 0
    }

    /// An IPv6 connection's entry.
    pub fn is_ipv6(&self) -> bool {
        self.caddr.is_ipv6()
    }

    /// The entry's length on the wire: 36 bytes, or 72 for IPv6.
    pub fn wire_len(&self) -> usize {
        if self.is_ipv6() {
            CONN_V6_LEN
        } else {
            CONN_V4_LEN
        }
    }

    /// Writes the entry (`len` bytes) at the start of `out`.
    pub fn write(&self, out: &mut [u8]) {
        let e = &mut out[..self.wire_len()];
        e[0] = if self.is_ipv6() { TYPE_INET6 } else { 0 };
        e[1] = self.proto;
        let size = u16::try_from(self.wire_len()).unwrap_or(CONN_V4_SIZE);
        e[2..4].copy_from_slice(&size.to_be_bytes());
        e[4..8].copy_from_slice(&(self.flags & !cflags::HASHED).to_be_bytes());
        e[8..10].copy_from_slice(&self.state.to_be_bytes());
        e[10..12].copy_from_slice(&self.cport.to_be_bytes());
        e[12..14].copy_from_slice(&self.vport.to_be_bytes());
        e[14..16].copy_from_slice(&self.dport.to_be_bytes());
        e[16..20].copy_from_slice(&self.fwmark.to_be_bytes());
        e[20..24].copy_from_slice(&self.timeout_s.to_be_bytes());
        let mut at = 24;
        for a in [self.caddr, self.vaddr, self.daddr] {
            match a {
                IpAddr::V4(a) => {
                    e[at..at + 4].copy_from_slice(&a.octets());
                    at += 4;
                }
                IpAddr::V6(a) => {
                    e[at..at + 16].copy_from_slice(&a.octets());
                    at += 16;
                }
            }
        }
    }
}

/// A message being filled: entries go in until it would pass `maxlen` or hold 255.
#[derive(Debug)]
pub struct MessageBuilder {
    buf: Vec<u8>,
    maxlen: usize,
    count: u8,
}

impl MessageBuilder {
    /// An empty message for `syncid`, at most `maxlen` bytes (at least one entry).
    pub fn new(syncid: u8, maxlen: usize) -> MessageBuilder {
        let maxlen = maxlen.clamp(HEADER_LEN + CONN_V4_LEN, usize::from(u16::MAX));
        let mut buf = Vec::with_capacity(maxlen);
        buf.extend_from_slice(&[0, syncid, 0, HEADER_SIZE, 0, VERSION, 0, 0]);
        MessageBuilder { buf, maxlen, count: 0 }
    }

    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds `c`; false (and nothing added) when the message is full.
    pub fn push(&mut self, c: &SyncConn) -> bool {
        if self.count == u8::MAX || self.buf.len() + c.wire_len() > self.maxlen {
            return false;
        }
        let at = self.buf.len();
        self.buf.resize(at + c.wire_len(), 0);
        c.write(&mut self.buf[at..]);
        self.count += 1;
        let size = u16::try_from(self.buf.len()).unwrap_or(u16::MAX);
        self.buf[2..4].copy_from_slice(&size.to_be_bytes());
        self.buf[4] = self.count;
        true
    }

    /// The datagram; the builder starts over empty.
    pub fn take(&mut self) -> Vec<u8> {
        let syncid = self.buf[1];
        let out = std::mem::replace(&mut self.buf, Vec::with_capacity(self.maxlen));
        self.buf.extend_from_slice(&[0, syncid, 0, HEADER_SIZE, 0, VERSION, 0, 0]);
        self.count = 0;
        out
    }
}

/// Why a message, or one entry of it, was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Shorter than its header, or an entry (or option) runs past the end.
    Truncated,
    /// The size field is not the datagram's length.
    SizeMismatch,
    /// Not a version 1 message (version 0, or reserved fields set), or an entry of
    /// another version.
    BadVersion,
    /// Another sync group's message.
    ForeignSyncid,
    /// An option that must be understood and is not, or one of a wrong length.
    BadOption,
    /// An entry's protocol is not TCP or UDP.
    UnknownProtocol,
    /// An entry's state is beyond its protocol's.
    BadState,
    /// An entry whose addresses cannot be a connection's (unspecified, multicast,
    /// broadcast), or an IPv6 entry (not yet spoken).
    BadAddress,
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::Truncated,
        Fault::SizeMismatch,
        Fault::BadVersion,
        Fault::ForeignSyncid,
        Fault::BadOption,
        Fault::UnknownProtocol,
        Fault::BadState,
        Fault::BadAddress,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Fault::Truncated => "truncated",
            Fault::SizeMismatch => "size_mismatch",
            Fault::BadVersion => "bad_version",
            Fault::ForeignSyncid => "foreign_syncid",
            Fault::BadOption => "bad_option",
            Fault::UnknownProtocol => "unknown_protocol",
            Fault::BadState => "bad_state",
            Fault::BadAddress => "bad_address",
        }
    }

    /// Whether the fault drops the whole message (else only its entry).
    pub fn drops_message(self) -> bool {
        !matches!(self, Fault::UnknownProtocol | Fault::BadState | Fault::BadAddress)
    }
}

/// What a datagram held: its good entries, and the faults met (a message fault
/// ends it; entry faults skip entries).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub syncid: u8,
    pub entries: Vec<SyncConn>,
    pub faults: Vec<Fault>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn ip(b: &[u8], at: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]))
}

fn ip6(b: &[u8], at: usize) -> IpAddr {
    IpAddr::V6(crate::net::ipv6::read_ipv6(b, at))
}

fn plausible(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    }
}

/// Reads datagram `d`. `want_syncid`: 0 takes every group's messages (as the
/// kernel's backup with syncid 0 does). Good entries go to `out.entries`.
pub fn parse(d: &[u8], want_syncid: u8, out: &mut Parsed) {
    out.entries.clear();
    out.faults.clear();
    if d.len() < HEADER_LEN {
        out.faults.push(Fault::Truncated);
        return;
    }
    if usize::from(be16(d, 2)) != d.len() {
        out.faults.push(Fault::SizeMismatch);
        return;
    }
    out.syncid = d[1];
    if want_syncid != 0 && d[1] != want_syncid {
        out.faults.push(Fault::ForeignSyncid);
        return;
    }
    if d[0] != 0 || d[5] != VERSION || be16(d, 6) != 0 {
        out.faults.push(Fault::BadVersion);
        return;
    }
    let count = usize::from(d[4]);
    let mut at = HEADER_LEN;
    for _ in 0..count {
        if at + CONN_V4_LEN > d.len() {
            out.faults.push(Fault::Truncated);
            return;
        }
        let vs = be16(d, at + 2);
        let size = usize::from(vs & 0x0fff);
        if vs >> 12 != 0 {
            out.faults.push(Fault::BadVersion);
            return;
        }
        let end = at + size;
        if end > d.len() {
            out.faults.push(Fault::Truncated);
            return;
        }
        let fixed = if d[at] & TYPE_INET6 != 0 { CONN_V6_LEN } else { CONN_V4_LEN };
        if d[at] & !TYPE_INET6 != 0 {
            out.faults.push(Fault::BadVersion);
            return;
        }
        if size < fixed {
            out.faults.push(Fault::Truncated);
            return;
        }
        // Options: each must fit; an unknown one must be ignorable.
        let mut p = at + fixed;
        while p < end {
            if p + 2 > end {
                out.faults.push(Fault::Truncated);
                return;
            }
            let (ty, len) = (d[p], usize::from(d[p + 1]));
            if len == 0 || p + 2 + len > end {
                out.faults.push(Fault::BadOption);
                return;
            }
            let known = matches!(ty & !OPT_F_PARAM, OPT_SEQ_DATA | OPT_PE_DATA | OPT_PE_NAME);
            if !known && ty & OPT_F_PARAM == 0 {
                out.faults.push(Fault::BadOption);
                return;
            }
            if ty & !OPT_F_PARAM == OPT_SEQ_DATA && len != 24 {
                out.faults.push(Fault::BadOption);
                return;
            }
            p += 2 + len;
        }
        let next = at + ((size + 3) & !3);
        let (caddr, vaddr, daddr) = if fixed == CONN_V6_LEN {
            (ip6(d, at + 24), ip6(d, at + 40), ip6(d, at + 56))
        } else {
            (ip(d, at + 24), ip(d, at + 28), ip(d, at + 32))
        };
        let c = SyncConn {
            proto: d[at + 1],
            flags: (be32(d, at + 4) & cflags::BACKUP_MASK) | cflags::SYNC,
            state: be16(d, at + 8),
            cport: be16(d, at + 10),
            vport: be16(d, at + 12),
            dport: be16(d, at + 14),
            fwmark: be32(d, at + 16),
            timeout_s: be32(d, at + 20),
            caddr,
            vaddr,
            daddr,
        };
        at = next;
        let fwmark_template = c.is_template() && c.proto == 0;
        if !(c.proto == 6 || c.proto == 17 || fwmark_template) {
            out.faults.push(Fault::UnknownProtocol);
            continue;
        }
        let states = match (c.is_template(), c.proto) {
            (true, _) => TEMPLATE_STATES,
            (false, 6) => TCP_STATES,
            _ => 1,
        };
        if c.state >= states {
            out.faults.push(Fault::BadState);
            continue;
        }
        // A fwmark template carries the mark as its "virtual address".
        if !plausible(c.caddr) || !plausible(c.daddr) || (!fwmark_template && !plausible(c.vaddr)) {
            out.faults.push(Fault::BadAddress);
            continue;
        }
        out.entries.push(c);
    }
}

/// Slots a worker may queue for sync in one burst (more are counted as missed).
pub const DUE_MAX: usize = 256;

/// When a connection is worth telling the peers about: the kernel's
/// `sync_threshold` (default 3) and `sync_period` (default 50).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub threshold: u32,
    pub period: u32,
}

impl Default for Rules {
    fn default() -> Self {
        Rules { threshold: 3, period: 50 }
    }
}

impl Rules {
    /// `ip_vs_sync_conn_needed` for a connection that just took a packet from its
    /// client: TCP only in the states a backup can use (ESTABLISHED, FIN_WAIT,
    /// CLOSE, CLOSE_WAIT, TIME_WAIT), at once when its state differs from the last
    /// one told and is not ESTABLISHED, else at the `threshold`th client packet and
    /// every `period` after; UDP by packets alone. Templates go with the
    /// connections they control. When it says yes, the state is noted as told.
    pub fn wanted<A>(&self, c: &mut Conn<A>) -> bool {
        match c.state {
            ConnState::Template => return false,
            ConnState::Tcp(s) => {
                use TcpState::*;
                if !matches!(s, Established | FinWait | Close | CloseWait | TimeWait) {
                    return false;
                }
                if s as u8 != c.sync_state && s != Established {
                    c.sync_state = s as u8;
                    return true;
                }
            }
            ConnState::Udp => {}
        }
        let due = if self.period > 0 { c.in_pkts % self.period == self.threshold } else { c.in_pkts == self.threshold };
        if due {
            if let ConnState::Tcp(s) = c.state {
                c.sync_state = s as u8;
            }
        }
        due
    }
}

/// Whether a peer can take the connection over (the states `Rules::wanted` syncs,
/// templates, UDP), for a dump of the whole table.
pub fn worth_telling<A>(c: &Conn<A>) -> bool {
    if c.flags & conn::flags::DEAD != 0 {
        return false;
    }
    match c.state {
        ConnState::Tcp(s) => {
            use TcpState::*;
            matches!(s, Established | FinWait | Close | CloseWait | TimeWait)
        }
        ConnState::Udp | ConnState::Template => true,
    }
}

/// Why a synced entry was not entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refused {
    /// No virtual service of that address, port, protocol or mark here.
    NoService,
    /// The service has no real server of that address and port here.
    NoDest,
    TableFull,
}

impl Director {
    /// The sync entry telling a peer about the connection (or template) at the
    /// family-tagged `slot` (`director::SLOT_V6` marks an IPv6 table's).
    pub fn sync_entry(&self, slot: u32) -> Option<SyncConn> {
        if slot & SLOT_V6 != 0 {
            self.sync_entry_in::<Ipv6Addr>(slot & !SLOT_V6)
        } else {
            self.sync_entry_in::<Ipv4Addr>(slot)
        }
    }

    /// The template controlling the connection at the family-tagged `slot`, tagged
    /// likewise (None without persistence).
    pub fn sync_control(&self, slot: u32) -> Option<u32> {
        let (control, tag) = if slot & SLOT_V6 != 0 {
            (self.conn::<Ipv6Addr>(slot & !SLOT_V6)?.control, SLOT_V6)
        } else {
            (self.conn::<Ipv4Addr>(slot)?.control, 0)
        };
        (control != NONE).then_some(control | tag)
    }

    fn sync_entry_in<A: Family>(&self, slot: u32) -> Option<SyncConn> {
        let c = A::conns(self).get(slot)?;
        let mut flags = match c.fwd {
            FwdMethod::Masq => cflags::MASQ,
            FwdMethod::Local => cflags::LOCALNODE,
            FwdMethod::Tunnel => cflags::TUNNEL,
            FwdMethod::Route => cflags::DROUTE,
        };
        if c.flags & conn::flags::INACTIVE != 0 && !c.is_template() {
            flags |= cflags::INACTIVE;
        }
        if c.flags & conn::flags::NO_OUTPUT != 0 {
            flags |= cflags::NOOUTPUT;
        }
        if c.is_template() {
            flags |= cflags::TEMPLATE;
        }
        let state = match c.state {
            ConnState::Tcp(s) => s as u16,
            ConnState::Udp | ConnState::Template => 0,
        };
        let fwmark = self.services.get(c.binding.service).and_then(|s| s.key.fwmark()).unwrap_or(0);
        Some(SyncConn {
            proto: c.ep.proto,
            flags,
            state,
            cport: c.ep.cport,
            vport: c.ep.vport,
            dport: c.ep.dport,
            fwmark,
            timeout_s: c.timeout_s,
            caddr: c.ep.caddr.ip(),
            vaddr: c.ep.vaddr.ip(),
            daddr: c.ep.daddr.ip(),
        })
    }

    /// Enters (or updates) a connection a peer told about, as the kernel's
    /// `ip_vs_proc_conn`: found by its client and virtual endpoints; a known one
    /// takes the state, timeout and activity sent (moving between ActiveConn and
    /// InActConn); one bound elsewhere is replaced unless the message is about an
    /// inactive one; a new one is bound to its dest (found by address and port in
    /// the service found by mark or address), counted, and lives the timeout sent
    /// (the state's own when 0). IPv6 entries go to the IPv6 table. Returns the
    /// family-tagged slot.
    pub fn apply_sync(&mut self, s: &SyncConn, now_s: u32) -> Result<u32, Refused> {
        match (s.caddr, s.vaddr, s.daddr) {
            (IpAddr::V4(c), IpAddr::V4(v), IpAddr::V4(d)) => self.apply_sync_in(s, (c, v, d), now_s),
            (IpAddr::V6(c), IpAddr::V6(v), IpAddr::V6(d)) => {
                self.apply_sync_in(s, (c, v, d), now_s).map(|slot| slot | SLOT_V6)
            }
            // The parser never mixes families.
            _ => Err(Refused::NoService),
        }
    }

    fn apply_sync_in<A: Family>(
        &mut self,
        s: &SyncConn,
        (caddr, vaddr, daddr): (A, A, A),
        now_s: u32,
    ) -> Result<u32, Refused> {
        let template = s.is_template();
        let proto = Protocol::from_number(s.proto);
        let mark = match vaddr.ip() {
            _ if s.fwmark != 0 => s.fwmark,
            IpAddr::V4(v) if template && s.proto == 0 => u32::from(v),
            IpAddr::V6(v) if template && s.proto == 0 => u32::try_from(u128::from(v)).unwrap_or(0),
            _ => 0,
        };
        let find = PacketInfo {
            proto: proto.unwrap_or(Protocol::Tcp),
            src: caddr,
            sport: s.cport,
            dst: vaddr,
            dport: s.vport,
            tcp_flags: 0,
            fwmark: mark,
            len: 0,
        };
        let svc_id = A::find_service(&self.services, &find).ok_or(Refused::NoService)?;
        let state = match (template, proto) {
            (true, _) => ConnState::Template,
            (false, Some(Protocol::Tcp)) => {
                ConnState::Tcp(TcpState::ALL.get(usize::from(s.state)).copied().unwrap_or(TcpState::Close))
            }
            (false, _) => ConnState::Udp,
        };
        let timeout = if s.timeout_s != 0 {
            s.timeout_s
        } else {
            match state {
                ConnState::Tcp(t) => self.timeouts.tcp(t),
                ConnState::Udp => self.timeouts.udp,
                ConnState::Template => 180,
            }
        };
        let active = s.flags & cflags::INACTIVE == 0 && !template;
        let threshold = self.sync.map_or(0, |r| r.threshold);
        let tuple = Tuple { proto: s.proto, saddr: caddr, sport: s.cport, daddr: vaddr, dport: s.vport };
        let found = if template { A::conns(self).lookup_template(&tuple) } else { A::conns(self).lookup_input(&tuple) };
        if let Some(slot) = found {
            let c = *A::conns(self).get(slot).ok_or(Refused::TableFull)?;
            if template || (c.ep.daddr == daddr && c.ep.dport == s.dport) {
                let Parts { services, conns, .. } = A::parts(self);
                if !template && c.is_active() != active {
                    if let Some(d) = services.get_mut(c.binding.service).and_then(|v| v.dest_by_id_mut(c.binding.dest))
                    {
                        d.conn_activity(active);
                    }
                }
                if let Some(e) = conns.get_mut(slot) {
                    e.state = state;
                    e.timeout_s = timeout;
                    e.in_pkts = threshold;
                    if !template {
                        e.flags = (e.flags & !conn::flags::INACTIVE) | if active { 0 } else { conn::flags::INACTIVE };
                    }
                }
                conns.refresh(slot, now_s);
                return Ok(slot);
            }
            if !active {
                // About the connection that was replaced already.
                return Ok(slot);
            }
            self.end_now::<A>(slot, now_s);
        }
        let svc = self.services.get(svc_id).ok_or(Refused::NoService)?;
        let (d_ip, dport) = (daddr.ip(), s.dport);
        let index = svc
            .dests()
            .iter()
            .position(|d| d.addr == d_ip && d.port == dport)
            .or_else(|| svc.dests().iter().position(|d| d.addr == d_ip && (d.port == 0 || dport == 0)))
            .ok_or(Refused::NoDest)?;
        let dest_id = svc.dest_id(index);
        let fwd = svc.dests()[index].fwd;
        let mut flags = conn::flags::SYNCED;
        if template {
            flags |= conn::flags::TEMPLATE;
        } else if !active {
            flags |= conn::flags::INACTIVE;
        }
        if s.flags & cflags::NOOUTPUT != 0 || fwd != FwdMethod::Masq {
            flags |= conn::flags::NO_OUTPUT;
        }
        let ep = Endpoints { proto: s.proto, caddr, cport: s.cport, vaddr, vport: s.vport, daddr, dport: s.dport };
        let mut c = Conn::new(ep, state, fwd, flags, Binding { service: svc_id, dest: dest_id }, timeout, NONE);
        c.in_pkts = threshold;
        let Parts { services, conns, .. } = A::parts(self);
        let slot = conns.insert(c, fwd == FwdMethod::Masq && !template, now_s).map_err(|e| match e {
            super::conntab::InsertError::Full => Refused::TableFull,
            super::conntab::InsertError::Exists(_) => Refused::TableFull,
        })?;
        if let Some(d) = services.get_mut(svc_id).and_then(|v| v.dest_by_id_mut(dest_id)) {
            if template {
                d.bind_template();
            } else {
                d.bind_synced(active);
            }
        }
        Ok(slot)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A TCP NAT connection from client port 40000 + `i` (tests elsewhere use it).
    pub(crate) fn conn(i: u8) -> SyncConn {
        SyncConn {
            proto: 6,
            flags: cflags::MASQ,
            state: 1,
            cport: 40000 + u16::from(i),
            vport: 80,
            dport: 80,
            fwmark: 0,
            timeout_s: 900,
            caddr: Ipv4Addr::new(198, 18, 0, 100).into(),
            vaddr: Ipv4Addr::new(198, 18, 0, 10).into(),
            daddr: Ipv4Addr::new(198, 18, 1, 11).into(),
        }
    }

    #[test]
    fn messages_fill_to_maxlen_and_read_back() {
        let mut m = MessageBuilder::new(7, DEFAULT_MAXLEN);
        let mut n = 0u8;
        while m.push(&conn(n)) {
            n += 1;
        }
        assert_eq!(usize::from(n), (DEFAULT_MAXLEN - HEADER_LEN) / CONN_V4_LEN, "40 entries in 1472 bytes");
        let d = m.take();
        assert_eq!(d.len(), HEADER_LEN + usize::from(n) * CONN_V4_LEN);
        assert_eq!((d[0], d[1], be16(&d, 2) as usize, d[4], d[5]), (0, 7, d.len(), n, 1));
        let mut p = Parsed::default();
        parse(&d, 7, &mut p);
        assert!(p.faults.is_empty(), "{:?}", p.faults);
        assert_eq!(p.entries.len(), usize::from(n));
        assert_eq!(p.entries[3], SyncConn { flags: cflags::SYNC, ..conn(3) });
        assert!(m.is_empty() && m.take().len() == HEADER_LEN, "the builder starts over");
    }
}

#[cfg(test)]
mod director_tests {
    use super::*;
    use crate::ipvs::dest::Dest;
    use crate::ipvs::director::PacketInfo;
    use crate::ipvs::sched::SchedFlags;
    use crate::ipvs::service::{Persistence, Service, ServiceKey, ServiceTable};
    use crate::net::tcp::flags::{ACK, FIN, SYN};

    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
    const RS: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 1, 11), Ipv4Addr::new(198, 18, 1, 12)];

    fn director(pers: Option<Persistence>) -> Director {
        let key = ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port: 80 };
        let mut s = Service::new(key, "rr", SchedFlags::default(), pers).unwrap();
        // Added last first: the list (newest at the head) reads in array order.
        for a in RS.into_iter().rev() {
            s.add_dest(Dest::new(a, 80, FwdMethod::Masq, 1)).unwrap();
        }
        let mut t = ServiceTable::new();
        t.add(s).unwrap();
        let mut d = Director::new(t, 1024, 7);
        d.set_sync(Some(Rules::default()));
        d
    }

    fn pkt(sport: u16, flags: u8) -> PacketInfo {
        PacketInfo {
            proto: Protocol::Tcp,
            src: CLIENT,
            sport,
            dst: VIP,
            dport: 80,
            tcp_flags: flags,
            fwmark: 0,
            len: 60,
        }
    }

    fn counts(d: &Director) -> Vec<(u32, u32, u32)> {
        let s = d.services.get(0).unwrap();
        s.dests().iter().map(|x| (x.active_total(), x.inactive_total(), x.persist)).collect()
    }

    #[test]
    fn the_kernel_s_threshold_period_and_state_changes_decide_what_is_synced() {
        let mut d = director(None);
        let mut due = Vec::new();
        // SYN, ACK (ESTABLISHED), then data: the 3rd client packet, then every 50th.
        for (i, f) in [SYN, ACK].into_iter().chain(std::iter::repeat_n(ACK, 200)).enumerate() {
            d.sync_due.clear();
            d.packet(&pkt(40000, f), 0, 0).unwrap();
            if !d.sync_due.is_empty() {
                due.push(i + 1);
            }
        }
        assert_eq!(due, vec![3, 53, 103, 153]);
        // The client's FIN (ESTABLISHED -> CLOSE_WAIT on input): a change to a state other
        // than ESTABLISHED is synced at once.
        d.sync_due.clear();
        d.packet(&pkt(40000, FIN | ACK), 0, 0).unwrap();
        assert_eq!(d.sync_due.len(), 1);
        let e = d.sync_entry(d.sync_due[0]).unwrap();
        assert_eq!((e.state, e.flags & cflags::FWD_MASK, e.timeout_s), (TcpState::CloseWait as u16, cflags::MASQ, 60));
        // Off: nothing queued, nothing counted.
        d.set_sync(None);
        d.packet(&pkt(40001, SYN), 0, 0).unwrap();
        assert!(d.sync_due.is_empty());
    }

    #[test]
    fn replies_are_not_counted_and_a_state_they_moved_is_told_with_the_next_client_packet() {
        let mut d = director(None);
        let slot = d.packet(&pkt(40000, SYN), 0, 0).unwrap().slot;
        d.packet(&pkt(40000, ACK), 0, 0).unwrap();
        d.sync_due.clear();
        d.packet(&pkt(40000, ACK), 0, 0).unwrap();
        assert_eq!(d.sync_due, vec![slot], "the 3rd client packet");
        let c = *d.conn(slot).unwrap();
        let reply = PacketInfo {
            proto: Protocol::Tcp,
            src: c.ep.daddr,
            sport: c.ep.dport,
            dst: CLIENT,
            dport: 40000,
            tcp_flags: ACK,
            fwmark: 0,
            len: 60,
        };
        d.sync_due.clear();
        d.packet(&reply, 0, 0).unwrap();
        assert!(d.sync_due.is_empty(), "a reply neither counts nor syncs");
        assert_eq!(d.conn::<std::net::Ipv4Addr>(slot).unwrap().in_pkts, 3);
        // The server closes (FIN_WAIT by a reply): told at the client's next packet.
        d.packet(&PacketInfo { tcp_flags: FIN | ACK, ..reply }, 0, 0).unwrap();
        assert!(d.sync_due.is_empty());
        d.packet(&pkt(40000, ACK), 0, 0).unwrap();
        assert_eq!(d.sync_due, vec![slot]);
        assert_eq!(d.sync_entry(slot).unwrap().state, TcpState::FinWait as u16);
    }

    #[test]
    fn a_backup_enters_what_the_master_sends_and_its_counters_follow() {
        let mut master = director(Some(Persistence::new(300, Ipv4Addr::BROADCAST).unwrap()));
        let mut backup = director(Some(Persistence::new(300, Ipv4Addr::BROADCAST).unwrap()));
        let slot = master.packet(&pkt(40000, SYN), 0, 0).unwrap().slot;
        master.packet(&pkt(40000, ACK), 0, 0).unwrap();
        let conn = master.sync_entry(slot).unwrap();
        let tslot = master.conn::<std::net::Ipv4Addr>(slot).unwrap().control;
        let tpl = master.sync_entry(tslot).unwrap();
        assert!(tpl.is_template() && !conn.is_template());
        // Through the wire and back.
        let mut m = MessageBuilder::new(1, DEFAULT_MAXLEN);
        assert!(m.push(&tpl) && m.push(&conn));
        let mut p = Parsed::default();
        parse(&m.take(), 1, &mut p);
        assert!(p.faults.is_empty());
        for e in &p.entries {
            backup.apply_sync(e, 10).unwrap();
        }
        assert_eq!(backup.conns.len(), 2);
        let i = RS.iter().position(|a| *a == conn.daddr).unwrap();
        assert_eq!(counts(&backup)[i], (1, 0, 1), "ActiveConn and PersistConn on the synced dest");
        // A packet of the connection finds it on the backup (no SYN needed), NAT to the same server.
        let hit = backup.packet(&pkt(40000, ACK), 11, 11_000).unwrap();
        assert!(!hit.new);
        assert_eq!(backup.conn::<std::net::Ipv4Addr>(hit.slot).unwrap().ep.daddr, conn.daddr);
        // The master says it went inactive (FIN): the backup moves it to InActConn.
        let fin = SyncConn { state: TcpState::FinWait as u16, flags: conn.flags | cflags::INACTIVE, ..conn };
        backup.apply_sync(&fin, 12).unwrap();
        assert_eq!(counts(&backup)[i], (0, 1, 1));
        // A message for a service or dest the backup does not have is refused.
        let stranger = SyncConn { daddr: Ipv4Addr::new(198, 18, 1, 99).into(), cport: 1, ..conn };
        assert_eq!(backup.apply_sync(&stranger, 12), Err(Refused::NoDest));
        let elsewhere = SyncConn { vport: 8080, cport: 2, ..conn };
        assert_eq!(backup.apply_sync(&elsewhere, 12), Err(Refused::NoService));
    }

    #[test]
    fn ipv6_connections_travel_in_72_byte_entries_and_a_backup_takes_them() {
        let a6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let (vip6, client6, rs6) = (a6("2001:2::10"), a6("2001:2::100"), a6("2001:2:0:1::11"));
        let six = || {
            let key = ServiceKey::Addr6 { proto: Protocol::Tcp, addr: vip6, port: 80 };
            let mut s = Service::new(key, "rr", SchedFlags::default(), None).unwrap();
            s.add_dest(Dest::new(rs6, 80, FwdMethod::Masq, 1)).unwrap();
            let mut t = ServiceTable::new();
            t.add(s).unwrap();
            let mut d = Director::new(t, 64, 3);
            d.set_sync(Some(Rules::default()));
            d
        };
        let (mut master, mut backup) = (six(), six());
        let pkt6 = |f| PacketInfo {
            proto: Protocol::Tcp,
            src: client6,
            sport: 40000,
            dst: vip6,
            dport: 80,
            tcp_flags: f,
            fwmark: 0,
            len: 80,
        };
        for f in [SYN, ACK, ACK] {
            master.sync_due.clear();
            master.packet(&pkt6(f), 0, 0).unwrap();
        }
        assert_eq!(master.sync_due.len(), 1, "the 3rd client packet");
        let tagged = master.sync_due[0];
        assert_ne!(tagged & SLOT_V6, 0, "an IPv6 table's slot");
        let e = master.sync_entry(tagged).unwrap();
        assert_eq!((e.caddr, e.vaddr, e.daddr), (client6.into(), vip6.into(), rs6.into()));
        let mut m = MessageBuilder::new(1, DEFAULT_MAXLEN);
        assert!(m.push(&e) && m.push(&super::tests::conn(1)), "an IPv6 entry beside an IPv4 one");
        let d = m.take();
        assert_eq!(d.len(), HEADER_LEN + CONN_V6_LEN + CONN_V4_LEN);
        assert_eq!((d[HEADER_LEN], be16(&d, HEADER_LEN + 2)), (TYPE_INET6, 72));
        let mut p = Parsed::default();
        parse(&d, 1, &mut p);
        assert!(p.faults.is_empty(), "{:?}", p.faults);
        assert_eq!(p.entries[0], SyncConn { flags: e.flags | cflags::SYNC, ..e });
        // The backup enters it in its IPv6 table, bound and counted, and a reply finds it.
        let slot = backup.apply_sync(&p.entries[0], 5).unwrap();
        assert_ne!(slot & SLOT_V6, 0);
        assert_eq!(backup.conns6.len(), 1);
        let reply = Tuple { proto: 6, saddr: rs6, sport: 80, daddr: client6, dport: 40000 };
        assert_eq!(backup.lookup(&reply).map(|h| h.dir), Some(crate::ipvs::conn::Direction::Output));
        let d = &backup.services.get(0).unwrap().dests()[0];
        assert_eq!((d.active, d.inactive), (1, 0), "ActiveConn on the backup");
        // IPv4 and IPv6 never mix in one entry.
        let mixed = SyncConn { vaddr: Ipv4Addr::new(198, 18, 0, 10).into(), ..p.entries[0] };
        assert_eq!(backup.apply_sync(&mixed, 5), Err(Refused::NoService));
    }
}
