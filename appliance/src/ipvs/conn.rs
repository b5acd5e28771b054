//! Connections: the IPVS TCP state machine (the kernel's `tcp_states` tables for
//! input, output and input-only), which states count as active, and the per-state
//! timeouts with the kernel's defaults (settable, as `ipvsadm --set tcp tcpfin udp`).

use super::dest::FwdMethod;
use core::fmt;
use std::net::Ipv4Addr;

/// IPVS TCP states, in the kernel's order (`IP_VS_TCP_S_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    Established,
    SynSent,
    SynRecv,
    FinWait,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    SynAck,
}

impl TcpState {
    pub const ALL: [TcpState; 11] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// As `ipvsadm -lc` prints it.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }

    /// The kernel's `tcp_state_active_table`: states counted in ActiveConn.
    pub fn is_active(self) -> bool {
        matches!(self, TcpState::Established | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck)
    }
}

/// Which way a packet travels relative to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to real server (through the director).
    Input,
    /// Real server to client (seen in NAT only).
    Output,
    /// Input on a connection whose output the director never sees (DR, TUN).
    InputOnly,
}

/// The TCP flag that drives a transition, in the kernel's order of precedence
/// (`tcp_state_idx`: RST, then SYN, then FIN, then ACK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpEvent {
    Syn = 0,
    Fin = 1,
    Ack = 2,
    Rst = 3,
}

impl TcpEvent {
    /// From the TCP flags byte; None when none of SYN/FIN/ACK/RST is set (the kernel
    /// then moves to CLOSE).
    pub fn from_flags(flags: u8) -> Option<TcpEvent> {
        use crate::net::tcp::flags::*;
        if flags & RST != 0 {
            Some(TcpEvent::Rst)
        } else if flags & SYN != 0 {
            Some(TcpEvent::Syn)
        } else if flags & FIN != 0 {
            Some(TcpEvent::Fin)
        } else if flags & ACK != 0 {
            Some(TcpEvent::Ack)
        } else {
            None
        }
    }
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI, None as NO,
    SynAck as SA, SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// `tcp_states[]` of `ip_vs_proto_tcp.c`: [direction][event][current state].
/// Columns: NO ES SS SR FW TW CL CW LA LI SA.
const TABLE: [[[TcpState; 11]; 4]; 3] = [
    // INPUT
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // OUTPUT
    [
        /*syn*/ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        /*fin*/ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /*rst*/ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT-ONLY
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The next TCP state (`set_tcp_state`): no recognised flag means CLOSE.
pub fn tcp_transition(state: TcpState, dir: Direction, event: Option<TcpEvent>) -> TcpState {
    let Some(ev) = event else { return TcpState::Close };
    let d = match dir {
        Direction::Input => 0,
        Direction::Output => 1,
        Direction::InputOnly => 2,
    };
    TABLE[d][ev as usize][state as usize]
}

/// Per-state timeouts in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: [u32; 11],
    pub udp: u32,
}

impl Default for Timeouts {
    /// The kernel's `tcp_timeouts` and `udp_timeouts`.
    fn default() -> Self {
        let mut tcp = [0u32; 11];
        tcp[NO as usize] = 2;
        tcp[ES as usize] = 15 * 60;
        tcp[SS as usize] = 2 * 60;
        tcp[SR as usize] = 60;
        tcp[FW as usize] = 2 * 60;
        tcp[TW as usize] = 2 * 60;
        tcp[CL as usize] = 10;
        tcp[CW as usize] = 60;
        tcp[LA as usize] = 30;
        tcp[LI as usize] = 2 * 60;
        tcp[SA as usize] = 120;
        Timeouts { tcp, udp: 5 * 60 }
    }
}

impl Timeouts {
    pub fn tcp(&self, s: TcpState) -> u32 {
        self.tcp[s as usize]
    }

    /// `ipvsadm --set tcp tcpfin udp`: ESTABLISHED, FIN_WAIT and UDP timeouts; 0
    /// leaves a value unchanged, as in ipvsadm.
    pub fn set(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        if tcp != 0 {
            self.tcp[ES as usize] = tcp;
        }
        if tcpfin != 0 {
            self.tcp[FW as usize] = tcpfin;
        }
        if udp != 0 {
            self.udp = udp;
        }
    }

    /// `ipvsadm -L --timeout`'s values: (tcp, tcpfin, udp).
    pub fn get(&self) -> (u32, u32, u32) {
        (self.tcp[ES as usize], self.tcp[FW as usize], self.udp)
    }
}

/// A connection's protocol state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    Tcp(TcpState),
    /// UDP has one state; `ipvsadm -lc` prints `UDP`.
    Udp,
    /// A persistence template (`NONE` in listings).
    Template,
}

impl ConnState {
    pub fn name(self) -> &'static str {
        match self {
            ConnState::Tcp(s) => s.name(),
            ConnState::Udp => "UDP",
            ConnState::Template => "NONE",
        }
    }

    pub fn is_active(self) -> bool {
        matches!(self, ConnState::Tcp(s) if s.is_active())
    }
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The 5-tuple halves a connection is found by. Laid out as (vaddr, caddr, daddr)
/// and (vport, cport, dport): each key's addresses (and ports) are neighbours,
/// the input key's (caddr -> vaddr) read as (vaddr, caddr), the output key's
/// (daddr -> caddr) as (caddr, daddr), so a lookup compares each as one word
/// (`Addr::key_eq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Endpoints<A = Ipv4Addr> {
    pub vaddr: A,
    pub caddr: A,
    pub daddr: A,
    pub vport: u16,
    pub cport: u16,
    pub dport: u16,
    /// IP protocol number (0 for fwmark templates).
    pub proto: u8,
}

impl<A: super::Addr> Endpoints<A> {
    /// The same endpoints with addresses of either family (listings).
    pub fn ip(&self) -> Endpoints<std::net::IpAddr> {
        Endpoints {
            proto: self.proto,
            caddr: self.caddr.ip(),
            cport: self.cport,
            vaddr: self.vaddr.ip(),
            vport: self.vport,
            daddr: self.daddr.ip(),
            dport: self.dport,
        }
    }
}

/// Connection flags (a subset of IP_VS_CONN_F_*).
pub mod flags {
    /// Counted in InActConn.
    pub const INACTIVE: u8 = 1;
    /// The director has not seen the output direction (DR, TUN: always).
    pub const NO_OUTPUT: u8 = 2;
    /// A persistence template.
    pub const TEMPLATE: u8 = 4;
    /// Ended early (its counters are released already); the wheel frees it.
    pub const DEAD: u8 = 8;
    /// Entered from a sync message (the kernel's IP_VS_CONN_F_SYNC).
    pub const SYNCED: u8 = 16;
}

/// What the scheduling side needs to find a connection's service and dest again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Binding {
    pub service: u32,
    pub dest: u32,
}

/// One connection (or persistence template) in a worker's table: one cache line
/// for IPv4 (two for IPv6), everything a packet reads of it (liveness included)
/// in one miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(align(64))]
pub struct Conn<A = Ipv4Addr> {
    pub ep: Endpoints<A>,
    pub state: ConnState,
    pub fwd: FwdMethod,
    pub flags: u8,
    pub binding: Binding,
    /// Current timeout, seconds.
    pub timeout_s: u32,
    /// Worker clock (seconds) when it expires unless refreshed.
    pub expires_s: u32,
    /// Slot of the template controlling this connection (persistence), or NONE.
    pub control: u32,
    /// Templates: how many live connections it controls.
    pub n_control: u32,
    /// Packets from the client (counted while connection sync runs: its
    /// threshold and period are in these).
    pub in_pkts: u32,
    /// The TCP state the last sync told (the kernel's `old_state`; `NOT_SYNCED`
    /// before the first).
    pub sync_state: u8,
    /// Timer-wheel link.
    pub(super) wheel_next: u32,
    /// What NAT's rewrite towards the real server (VIP:vport -> RS:port) does to
    /// the IPv4 header checksum (`[0]`) and the transport checksum (`[1]`), as
    /// `checksum::nat_sums` gives; a reply's rewrite undoes them (their
    /// complements). Kept for IPv4 NAT connections, made once with the
    /// connection; zero otherwise.
    pub nat_sums: [u16; 2],
    /// The table's: this slot holds a connection (not free).
    pub(super) live: bool,
}

/// The flags a state step looks at, and a bare ACK among them.
const STEP_FLAGS: u8 = crate::net::tcp::flags::SYN
    | crate::net::tcp::flags::FIN
    | crate::net::tcp::flags::RST
    | crate::net::tcp::flags::ACK;
const ACK_ONLY: u8 = crate::net::tcp::flags::ACK;

/// When an entry armed now for `timeout_s` expires, on the worker's clock. The clock
/// counts whole seconds (second `now_s` is any instant in [now_s, now_s + 1)), and
/// the timer wheel reaches second t at the instant t: an entry armed during second
/// `now_s` falls due at `now_s + 1 + timeout_s`, so it never leaves before its
/// timeout (the kernel arms each timer for the full timeout) and at most one tick
/// after it.
#[inline]
pub fn deadline(now_s: u32, timeout_s: u32) -> u32 {
    now_s.saturating_add(1).saturating_add(timeout_s)
}

/// What `ipvsadm -lnc` shows of an entry's timer at `now_s`: the seconds surely
/// left of its timeout, rounded down as the kernel rounds the jiffies left (a
/// 300 s entry listed at once shows 04:59).
#[inline]
pub fn seconds_left(expires_s: u32, now_s: u32) -> u32 {
    expires_s.saturating_sub(now_s.saturating_add(2))
}

/// "No slot".
pub const NONE: u32 = u32::MAX;

/// `Conn::sync_state` of a connection no sync has told yet.
pub const NOT_SYNCED: u8 = u8::MAX;

impl<A: super::Addr> Conn<A> {
    /// A connection (or template) not yet in a table: no timer, controlling nothing.
    /// `fwd`, from its dest, is how its packets will be sent, bound here once.
    pub fn new(
        ep: Endpoints<A>,
        state: ConnState,
        fwd: FwdMethod,
        flags: u8,
        binding: Binding,
        timeout_s: u32,
        control: u32,
    ) -> Conn<A> {
        Conn {
            ep,
            state,
            fwd,
            flags,
            binding,
            timeout_s,
            expires_s: 0,
            control,
            n_control: 0,
            in_pkts: 0,
            sync_state: NOT_SYNCED,
            wheel_next: NONE,
            nat_sums: if fwd == FwdMethod::Masq { A::nat_sums(&ep) } else { [0; 2] },
            live: false,
        }
    }

    /// Makes this entry (a vacant one of a table) the connection `o` opens, as
    /// `new` in the protocol's first state (TCP's NONE) and then `on_packet`
    /// with the opening packet in the input direction would: the state the
    /// kernel's table gives from NONE (input-only for a connection whose replies
    /// do not pass the director), its timeout, ActiveConn or InActConn as that
    /// state counts. Written where the entry is kept, field by field: an entry
    /// made aside and copied in whole would be read with wide loads while the
    /// narrow stores that made it are still on their way (a stall per load).
    /// No timer and not live yet: the table's to set. Returns whether it counts
    /// as active.
    #[inline(always)]
    pub fn open(&mut self, o: Opening<A>, t: &Timeouts) -> bool {
        let masq = o.fwd == FwdMethod::Masq;
        let (state, timeout_s) = if o.ep.proto == crate::net::ipv4::protocol::TCP {
            let dir = if masq { Direction::Input } else { Direction::InputOnly };
            let s = tcp_transition(TcpState::None, dir, TcpEvent::from_flags(o.tcp_flags));
            let timeout_s = if s == TcpState::SynRecv { t.tcp(s).min(o.syn_recv_max_s) } else { t.tcp(s) };
            (ConnState::Tcp(s), timeout_s)
        } else {
            (ConnState::Udp, t.udp)
        };
        let active = state.is_active();
        let mut f = if active { 0 } else { flags::INACTIVE };
        if !masq {
            f |= flags::NO_OUTPUT;
        }
        *self = Conn {
            ep: o.ep,
            state,
            fwd: o.fwd,
            flags: f,
            binding: o.binding,
            timeout_s,
            expires_s: 0,
            control: o.control,
            n_control: 0,
            in_pkts: 0,
            sync_state: NOT_SYNCED,
            wheel_next: NONE,
            nat_sums: match (masq, o.nat_sums) {
                (false, _) => [0; 2],
                (true, Some(sums)) => sums,
                (true, None) => A::nat_sums(&o.ep),
            },
            live: false,
        };
        active
    }
}

/// What a client's packet opens a connection with (`Conn::open`).
#[derive(Debug, Clone, Copy)]
pub struct Opening<A> {
    /// The connection's endpoints: the packet's client and virtual service, the
    /// real server it was scheduled to.
    pub ep: Endpoints<A>,
    pub fwd: FwdMethod,
    pub binding: Binding,
    /// The packet's TCP flags (none for UDP).
    pub tcp_flags: u8,
    /// The template controlling it (persistence), or NONE.
    pub control: u32,
    /// The longest a half-open (SYN_RECV) connection's timeout may be: the
    /// state's own, shorter while its table is under pressure.
    pub syn_recv_max_s: u32,
    /// NAT's checksum sums for `ep` when known already (its dest's); None:
    /// worked out from `ep`.
    pub nat_sums: Option<[u16; 2]>,
}

impl<A> Conn<A> {
    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }

    pub fn is_active(&self) -> bool {
        self.flags & flags::INACTIVE == 0
    }

    /// Applies one TCP packet's flags in `dir` (the director saw it), as the kernel's
    /// `set_tcp_state`; returns Some(now_active) when the ActiveConn/InActConn
    /// accounting must move, and sets the timeout for the new state. UDP just
    /// refreshes its timeout.
    #[inline]
    pub fn on_packet(&mut self, dir: Direction, tcp_flags: u8, t: &Timeouts) -> Option<bool> {
        // The common case first, the state compared whole (one byte): an ACK (no
        // SYN, FIN, RST) on an established connection is ESTABLISHED again in every
        // direction's table (a first reply still clears NO_OUTPUT below).
        if self.state == ConnState::Tcp(TcpState::Established)
            && tcp_flags & STEP_FLAGS == ACK_ONLY
            && (dir != Direction::Output || self.flags & flags::NO_OUTPUT == 0)
        {
            self.timeout_s = t.tcp(TcpState::Established);
            return None;
        }
        match self.state {
            ConnState::Tcp(s) => self.tcp_step(s, dir, tcp_flags, t),
            ConnState::Udp => {
                self.timeout_s = t.udp;
                None
            }
            ConnState::Template => None,
        }
    }

    /// `on_packet`'s TCP state step off the common case (a connection's few
    /// packets that open, close or reset it): out of line, so the common case's
    /// path keeps its registers.
    #[inline(never)]
    fn tcp_step(&mut self, s: TcpState, dir: Direction, tcp_flags: u8, t: &Timeouts) -> Option<bool> {
        let mut d = dir;
        if self.flags & flags::NO_OUTPUT != 0 {
            if dir == Direction::Output {
                self.flags &= !flags::NO_OUTPUT;
            } else {
                d = Direction::InputOnly;
            }
        }
        let next = tcp_transition(s, d, TcpEvent::from_flags(tcp_flags));
        let mut moved = None;
        if next != s {
            let was_active = self.is_active();
            let now_active = next.is_active();
            if was_active != now_active {
                if now_active {
                    self.flags &= !flags::INACTIVE;
                } else {
                    self.flags |= flags::INACTIVE;
                }
                moved = Some(now_active);
            }
        }
        self.state = ConnState::Tcp(next);
        self.timeout_s = t.tcp(next);
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::tcp::flags::*;

    fn walk(dir_flags: &[(Direction, u8)]) -> Vec<TcpState> {
        let mut s = TcpState::None;
        dir_flags
            .iter()
            .map(|&(d, f)| {
                s = tcp_transition(s, d, TcpEvent::from_flags(f));
                s
            })
            .collect()
    }

    #[test]
    fn a_connection_is_one_cache_line() {
        // What a packet reads of its connection (endpoints, state, binding, timer,
        // liveness) costs one miss at most.
        assert_eq!(std::mem::size_of::<Conn>(), 64);
        assert_eq!(std::mem::align_of::<Conn>(), 64);
        // IPv6's three addresses take the entry to two lines.
        assert_eq!(std::mem::size_of::<Conn<std::net::Ipv6Addr>>(), 128);
    }

    #[test]
    fn every_table_cell_matches_the_kernel() {
        // The kernel's rows, written out as strings of two-letter states, compared
        // cell by cell against TABLE through tcp_transition.
        let rows = [
            (Direction::Input, TcpEvent::Syn, "SR ES ES SR SR SR SR SR SR SR SR"),
            (Direction::Input, TcpEvent::Fin, "CL CW SS TW TW TW CL CW LA LI TW"),
            (Direction::Input, TcpEvent::Ack, "ES ES SS ES FW TW CL CW CL LI ES"),
            (Direction::Input, TcpEvent::Rst, "CL CL CL SR CL CL CL CL LA LI SR"),
            (Direction::Output, TcpEvent::Syn, "SS ES SS SR SS SS SS SS SS LI SR"),
            (Direction::Output, TcpEvent::Fin, "TW FW SS TW FW TW CL TW LA LI TW"),
            (Direction::Output, TcpEvent::Ack, "ES ES SS ES FW TW CL CW LA ES ES"),
            (Direction::Output, TcpEvent::Rst, "CL CL SS CL CL TW CL CL CL CL CL"),
            (Direction::InputOnly, TcpEvent::Syn, "SR ES ES SR SR SR SR SR SR SR SR"),
            (Direction::InputOnly, TcpEvent::Fin, "CL FW SS TW FW TW CL CW LA LI TW"),
            (Direction::InputOnly, TcpEvent::Ack, "ES ES SS ES FW TW CL CW CL LI ES"),
            (Direction::InputOnly, TcpEvent::Rst, "CL CL CL SR CL CL CL CL LA LI CL"),
        ];
        let abbrev = |s: TcpState| match s {
            NO => "NO",
            ES => "ES",
            SS => "SS",
            SR => "SR",
            FW => "FW",
            TW => "TW",
            CL => "CL",
            CW => "CW",
            LA => "LA",
            LI => "LI",
            SA => "SA",
        };
        for (dir, ev, row) in rows {
            let got: Vec<&str> = TcpState::ALL.iter().map(|&s| abbrev(tcp_transition(s, dir, Some(ev)))).collect();
            assert_eq!(got.join(" "), row, "{dir:?} {ev:?}");
        }
    }

    #[test]
    fn flags_precedence_and_no_flags() {
        assert_eq!(TcpEvent::from_flags(SYN | ACK | RST), Some(TcpEvent::Rst));
        assert_eq!(TcpEvent::from_flags(SYN | ACK), Some(TcpEvent::Syn));
        assert_eq!(TcpEvent::from_flags(FIN | ACK), Some(TcpEvent::Fin));
        assert_eq!(TcpEvent::from_flags(ACK | PSH), Some(TcpEvent::Ack));
        assert_eq!(TcpEvent::from_flags(PSH), None);
        assert_eq!(tcp_transition(ES, Direction::Input, None), CL);
    }

    #[test]
    fn nat_connection_lifecycle() {
        use Direction::*;
        // Client opens, server answers, data, client closes first.
        let got = walk(&[
            (Input, SYN),
            (Output, SYN | ACK),
            (Input, ACK),
            (Input, ACK | PSH),
            (Output, ACK | PSH),
            (Input, FIN | ACK),
            (Output, FIN | ACK),
            (Input, ACK),
        ]);
        assert_eq!(got, vec![SR, SR, ES, ES, ES, CW, TW, TW]);
    }

    #[test]
    fn dr_connection_lifecycle_is_input_only() {
        use Direction::*;
        let got = walk(&[
            (InputOnly, SYN),
            (InputOnly, ACK),
            (InputOnly, ACK | PSH),
            (InputOnly, FIN | ACK),
            (InputOnly, ACK),
        ]);
        assert_eq!(got, vec![SR, ES, ES, FW, FW]);
    }

    #[test]
    fn every_timeout_has_the_kernel_default_and_set_changes_three() {
        let t = Timeouts::default();
        let want = [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120];
        for (s, w) in TcpState::ALL.iter().zip(want) {
            assert_eq!(t.tcp(*s), w, "{}", s.name());
        }
        assert_eq!(t.udp, 300);
        assert_eq!(t.get(), (900, 120, 300));
        let mut t2 = t;
        t2.set(3600, 0, 60);
        assert_eq!(t2.get(), (3600, 120, 60));
        assert_eq!(t2.tcp(TcpState::TimeWait), 120, "only the three ipvsadm values change");
    }

    #[test]
    fn an_established_connection_steps_by_the_kernel_table_whatever_the_flags() {
        // Every flags byte, both directions, with and without NO_OUTPUT: the
        // shortcut for a bare ACK ends where the table does.
        let t = Timeouts { tcp: std::array::from_fn(|i| 100 + u32::try_from(i).unwrap()), udp: 1 };
        let ep = Endpoints {
            proto: 6,
            caddr: Ipv4Addr::new(198, 18, 0, 100),
            cport: 1,
            vaddr: Ipv4Addr::new(198, 18, 0, 10),
            vport: 80,
            daddr: Ipv4Addr::new(198, 18, 1, 11),
            dport: 80,
        };
        let binding = Binding { service: 0, dest: 0 };
        for dir in [Direction::Input, Direction::Output] {
            for no_output in [0, flags::NO_OUTPUT] {
                for f in 0..=255u8 {
                    let mut c = Conn::new(ep, ConnState::Tcp(ES), FwdMethod::Masq, no_output, binding, 1, NONE);
                    let moved = c.on_packet(dir, f, &t);
                    let table_dir = match (no_output != 0, dir) {
                        (true, Direction::Output) | (false, _) => dir,
                        (true, _) => Direction::InputOnly,
                    };
                    let next = tcp_transition(ES, table_dir, TcpEvent::from_flags(f));
                    let what = format!("{dir:?} NO_OUTPUT={no_output} flags {f:#04x}");
                    assert_eq!(c.state, ConnState::Tcp(next), "{what}");
                    assert_eq!(c.timeout_s, t.tcp(next), "{what}");
                    assert_eq!(moved, (!next.is_active()).then_some(false), "{what}");
                    let cleared = no_output != 0 && dir == Direction::Output;
                    assert_eq!(c.flags & flags::NO_OUTPUT, if cleared { 0 } else { no_output }, "{what}");
                }
            }
        }
    }

    #[test]
    fn a_connection_opens_as_new_and_its_first_packet_would_leave_it() {
        // Every flags byte, TCP and UDP, each forwarding method, with and without
        // a cap on SYN_RECV's timeout: `open` writes a connection in its first
        // state with the packet applied, whatever the entry held before.
        let t = Timeouts { tcp: std::array::from_fn(|i| 100 + u32::try_from(i).unwrap()), udp: 7 };
        let binding = Binding { service: 3, dest: 5 };
        let stale = Conn { flags: 0xff, n_control: 4, in_pkts: 9, sync_state: 2, live: true, expires_s: 8, ..stale() };
        for proto in [6u8, 17] {
            let ep = Endpoints {
                proto,
                caddr: Ipv4Addr::new(198, 18, 0, 100),
                cport: 40000,
                vaddr: Ipv4Addr::new(198, 18, 0, 10),
                vport: 80,
                daddr: Ipv4Addr::new(198, 18, 1, 11),
                dport: 8080,
            };
            for fwd in [FwdMethod::Masq, FwdMethod::Route, FwdMethod::Tunnel, FwdMethod::Local] {
                for (cap, f) in [u32::MAX, 2].into_iter().flat_map(|cap| (0..=255u8).map(move |f| (cap, f))) {
                    let (state, timeout) =
                        if proto == 6 { (ConnState::Tcp(NO), t.tcp(NO)) } else { (ConnState::Udp, t.udp) };
                    let no_output = if fwd == FwdMethod::Masq { 0 } else { flags::NO_OUTPUT };
                    let mut want = Conn::new(ep, state, fwd, flags::INACTIVE | no_output, binding, timeout, 9);
                    want.on_packet(Direction::Input, f, &t);
                    if want.state == ConnState::Tcp(SR) {
                        want.timeout_s = want.timeout_s.min(cap);
                    }
                    let mut got = stale;
                    let o = Opening { ep, fwd, binding, tcp_flags: f, control: 9, syn_recv_max_s: cap, nat_sums: None };
                    let active = got.open(o, &t);
                    assert_eq!(got, want, "proto {proto} {fwd:?} flags {f:#04x} cap {cap}");
                    assert_eq!(active, want.is_active(), "proto {proto} {fwd:?} flags {f:#04x}");
                    // Sums known already (the dest's) are NAT's, as they are.
                    let mut known = stale;
                    known.open(Opening { nat_sums: Some([0x1234, 0xfedc]), ..o }, &t);
                    let sums = if fwd == FwdMethod::Masq { [0x1234, 0xfedc] } else { [0; 2] };
                    assert_eq!(known, Conn { nat_sums: sums, ..want }, "{fwd:?} with sums known");
                }
            }
        }
    }

    /// An entry holding something else (what `open` must write over).
    fn stale() -> Conn {
        let ep = Endpoints {
            proto: 17,
            caddr: Ipv4Addr::new(1, 2, 3, 4),
            cport: 1,
            vaddr: Ipv4Addr::new(5, 6, 7, 8),
            vport: 2,
            daddr: Ipv4Addr::new(9, 10, 11, 12),
            dport: 3,
        };
        let mut c = Conn::new(ep, ConnState::Template, FwdMethod::Masq, 0, Binding { service: 7, dest: 7 }, 1, 5);
        c.wheel_next = 77;
        c
    }

    #[test]
    fn active_states_and_accounting_moves() {
        let active: Vec<_> = TcpState::ALL.iter().filter(|s| s.is_active()).map(|s| s.name()).collect();
        assert_eq!(active, vec!["ESTABLISHED", "SYN_SENT", "SYN_RECV", "SYNACK"]);
        let t = Timeouts::default();
        let ep = Endpoints {
            proto: 6,
            caddr: Ipv4Addr::new(198, 18, 0, 100),
            cport: 40000,
            vaddr: Ipv4Addr::new(198, 18, 0, 10),
            vport: 80,
            daddr: Ipv4Addr::new(198, 18, 1, 11),
            dport: 80,
        };
        let binding = Binding { service: 0, dest: 0 };
        let mut c = Conn::new(ep, ConnState::Tcp(NO), FwdMethod::Masq, flags::INACTIVE, binding, t.tcp(NO), NONE);
        assert_eq!(c.on_packet(Direction::Input, SYN, &t), Some(true), "SYN_RECV is active");
        assert_eq!(c.timeout_s, 60);
        assert_eq!(c.on_packet(Direction::Output, SYN | ACK, &t), None);
        assert_eq!(c.on_packet(Direction::Input, ACK, &t), None, "SR -> ES: both active");
        assert_eq!(c.timeout_s, 900);
        assert_eq!(c.on_packet(Direction::Input, FIN | ACK, &t), Some(false), "CLOSE_WAIT is inactive");
        assert_eq!(c.state.name(), "CLOSE_WAIT");
        // DR: NO_OUTPUT makes input use the input-only table.
        c.state = ConnState::Tcp(ES);
        c.flags = flags::NO_OUTPUT;
        c.on_packet(Direction::Input, FIN | ACK, &t);
        assert_eq!(c.state, ConnState::Tcp(FW), "input-only FIN in ES -> FIN_WAIT");
        assert_eq!(c.timeout_s, 120);
    }
}
