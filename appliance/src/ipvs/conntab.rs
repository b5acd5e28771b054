//! One worker's connection table: connections in a slab reserved at creation, found from
//! both directions through one hash index, expired by a timer wheel.
//!
//! - Capacity is fixed at creation; it never allocates on the packet path. A full
//!   table makes room by evicting a half-open entry (`evict`, chosen by the
//!   director), else refuses ("table full" drop reason).
//! - The index holds two keys per connection: the input tuple (client -> virtual)
//!   and the output tuple (real server -> client); templates and DR/TUN
//!   connections are findable by input only. It is an open-addressed array of
//!   8-byte words (32-bit hash tag, slot and direction), linear probing with
//!   backward-shift removal, at most 5/8 full: a key's home is known from its hash
//!   alone, so a burst can prefetch the index line and then the connection before
//!   any packet of it is processed (`warm_index`, `warm_conn`). The key warming
//!   found is the packet's hint: its lookup starts there while the index has not
//!   changed since (`lookup_hinted`, `index_changes`), so a warmed packet probes
//!   the index once.
//! - Expiry is a hashed timer wheel of 1-second ticks with lazy refresh: a packet
//!   only moves `expires_s` forward; when the wheel reaches the entry's slot it is
//!   either expired or re-filed at its new time. No full-table scans, and the
//!   per-packet cost of a refresh is one store. An entry lives at least its timeout
//!   and at most one tick more (`conn::deadline`).
//!
//! Per-lcore: nothing here is shared; each worker owns its table.

use super::addr::Addr;
use super::conn::{Conn, Opening, Timeouts, NONE};
use super::dest::FwdMethod;
use std::net::Ipv4Addr;

/// Timer-wheel slots (1 s each): 4096 s, longer than any default timeout; longer
/// timeouts are re-filed when their slot comes round.
pub const WHEEL_SLOTS: u32 = 4096;

/// A lookup tuple: protocol and the two endpoints as the packet carries them.
/// (Laid out as the keys are, each pair one word to compare, it saved 4
/// instructions a packet and nothing on the clock, and new connections ran 8 %
/// slower.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple<A = Ipv4Addr> {
    pub proto: u8,
    pub saddr: A,
    pub sport: u16,
    pub daddr: A,
    pub dport: u16,
}

/// Which key of a connection matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The packet is client -> virtual service.
    Input(u32),
    /// The packet is real server -> client.
    Output(u32),
}

/// Why an insert failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    Full,
    /// A connection with the same input tuple exists.
    Exists(u32),
}

/// The index: words of (tag << 32 | (slot << 1 | output) + 1), EMPTY (0) where
/// free. Free words are zeros, so a table's index is allocated zeroed and the pages
/// it never uses (a family without traffic) are never touched.
struct Index {
    words: Vec<u64>,
    mask: usize,
    /// Counts every change to `words` (wrapping): while it stays the same, a
    /// probe gives what it gave before.
    changes: u32,
}

const EMPTY: u64 = 0;

/// A word for value `v` (slot << 1 | output) under hash `h`: never EMPTY.
#[inline(always)]
fn word(h: u64, v: u32) -> u64 {
    (Index::tag(h) << 32) | (u64::from(v) + 1)
}

/// The value a word holds.
#[inline(always)]
fn value_of(w: u64) -> u32 {
    // The low half is the value + 1 (at least 1 in any word but EMPTY).
    u32::try_from(w & 0xffff_ffff).unwrap_or(0).wrapping_sub(1)
}

impl Index {
    /// Room for `entries` keys at most 5/8 full (so a free word always ends a probe).
    fn new(entries: usize) -> Index {
        let size = (entries.saturating_mul(8) / 5 + 1).max(16).next_power_of_two();
        Index { words: vec![EMPTY; size], mask: size - 1, changes: 0 }
    }

    /// Writes a word of every page, so none is first touched on the packet path.
    fn touch(&mut self) {
        for i in (0..self.words.len()).step_by(4096 / std::mem::size_of::<u64>()) {
            self.words[i] = std::hint::black_box(EMPTY);
        }
    }

    fn tag(h: u64) -> u64 {
        h >> 32
    }

    fn home(&self, h: u64) -> usize {
        usize::try_from(Self::tag(h)).unwrap_or(0) & self.mask
    }

    /// The value (slot << 1 | output) of the first key with `h`'s tag that `eq` accepts.
    #[inline]
    fn find(&self, h: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = Self::tag(h);
        // The length is a power of two (never zero): masked positions are in
        // bounds, which the compiler sees without a check per word.
        let words = &self.words[..];
        let mask = words.len().wrapping_sub(1);
        if words.is_empty() {
            return None;
        }
        let mut i = usize::try_from(tag).unwrap_or(0) & mask;
        loop {
            let w = words[i & mask];
            if w == EMPTY {
                return None;
            }
            if w >> 32 == tag {
                let v = value_of(w);
                if eq(v) {
                    return Some(v);
                }
            }
            i = (i + 1) & mask;
        }
    }

    fn insert(&mut self, h: u64, v: u32) {
        self.changes = self.changes.wrapping_add(1);
        // As in `find`: masked positions in a power-of-two length.
        let words = &mut self.words[..];
        let mask = words.len().wrapping_sub(1);
        if words.is_empty() {
            return;
        }
        let mut i = usize::try_from(Self::tag(h)).unwrap_or(0) & mask;
        while words[i & mask] != EMPTY {
            i = (i + 1) & mask;
        }
        words[i & mask] = word(h, v);
    }

    /// Removes the key (h, v), shifting later keys of the run back so every key
    /// stays reachable from its home.
    fn remove(&mut self, h: u64, v: u32) -> bool {
        self.changes = self.changes.wrapping_add(1);
        let want = word(h, v);
        let mut i = self.home(h);
        loop {
            let w = self.words[i];
            if w == EMPTY {
                return false;
            }
            if w == want {
                break;
            }
            i = (i + 1) & self.mask;
        }
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let w = self.words[j];
            if w == EMPTY {
                break;
            }
            let k = usize::try_from(w >> 32).unwrap_or(0) & self.mask;
            // w stays when its home k lies cyclically in (i, j].
            let stays = if i <= j { i < k && k <= j } else { i < k || k <= j };
            if !stays {
                self.words[i] = w;
                i = j;
            }
        }
        self.words[i] = EMPTY;
        true
    }

    fn clear(&mut self) {
        self.changes = self.changes.wrapping_add(1);
        self.words.iter_mut().for_each(|w| *w = EMPTY);
    }
}

fn value(slot: u32, output: bool) -> u32 {
    (slot << 1) | u32::from(output)
}

pub struct ConnTable<A: Addr = Ipv4Addr> {
    /// The entries made so far: it grows to `cap` within the capacity reserved at
    /// creation (never reallocating), so memory a table never uses (an address
    /// family without traffic) is never touched.
    slab: Vec<Conn<A>>,
    cap: usize,
    /// Freed slots, linked through their (unused) wheel link.
    free_head: u32,
    len: usize,
    index: Index,
    seed: u64,
    /// The timer wheel: each slot's list head. Of a fixed size, so a slot taken
    /// modulo `WHEEL_SLOTS` needs no bounds check.
    wheel: Box<[u32; WHEEL_SLOTS as usize]>,
    /// Last second the wheel has processed.
    wheel_now: u32,
    /// Entries the wheel has looked at, ever (its work, for tests and figures).
    pub wheel_visits: u64,
    /// (head, tail) of the entries of the slot being worked through that belong
    /// to a later lap of it: out of the wheel until the slot is done.
    later: (u32, u32),
    /// With `defer_output`: slots whose reply tuple is entered in the index at
    /// `flush_pending` (the end of the worker's burst), not at insert.
    pending: Vec<(u32, u64)>,
    defer_output: bool,
}

/// How full a table is, beside one of its entries being changed
/// (`ConnTable::found_mut_with_fill`).
pub struct Fill<'a> {
    len: &'a usize,
    cap: &'a usize,
}

impl Fill<'_> {
    /// As `ConnTable::under_pressure`.
    #[inline(always)]
    pub fn under_pressure(&self) -> bool {
        under_pressure(*self.len, *self.cap)
    }
}

/// A table of `cap` entries holding `len` is under pressure from three quarters.
#[inline(always)]
fn under_pressure(len: usize, cap: usize) -> bool {
    len * 4 >= cap * 3
}

/// Reply tuples that may wait for `flush_pending` (a burst's new connections);
/// beyond that they are entered at once.
pub const PENDING_MAX: usize = 64;

#[inline(always)]
fn mix<A: Addr>(seed: u64, t: &Tuple<A>) -> u64 {
    A::mix(seed, t)
}

/// What a template's index key has flipped in its tuple's hash: a template's
/// tuple (the client's port 0) is one a packet can carry too, and packets never
/// find templates (as the kernel's connection lookups skip them). The flip is in
/// the tag (the hash's upper half), so a template's key and a connection's with
/// the same tuple never have the same tag, and keys are compared only under
/// their own tag: a lookup finds templates only when it asks for one
/// (`lookup_template`), without a packet's lookup looking at anything more.
const TEMPLATE_HASH: u64 = 0x9e37_79b9 << 32;

/// The index hash of a connection's input key whose tuple hashes to `h`.
#[inline(always)]
fn input_key_hash<A>(c: &Conn<A>, h: u64) -> u64 {
    if c.is_template() {
        h ^ TEMPLATE_HASH
    } else {
        h
    }
}

impl<A: Addr> ConnTable<A> {
    /// A table for `capacity` entries (connections + templates); `seed` keys the
    /// index hash (take it from a random source at start-up so clients cannot aim
    /// collisions at it). Its memory is touched at once: no page of it is first
    /// touched (a page fault) on the packet path.
    pub fn new(capacity: usize, seed: u64) -> ConnTable<A> {
        let mut t = Self::reserved(capacity, seed);
        // Read at random, a line per packet: huge pages spare most TLB misses.
        // Asked before the first write, so the pages faulted in below are huge.
        crate::dpdk::memory::advise_huge_pages(&t.slab);
        crate::dpdk::memory::advise_huge_pages(&t.index.words);
        let free = Self::blank();
        // Every slot made now, free, linked in slot order.
        for i in 1..=t.cap {
            t.slab.push(Conn { wheel_next: if i == t.cap { NONE } else { u32::try_from(i).unwrap_or(NONE) }, ..free });
        }
        t.free_head = 0;
        t.index.touch();
        t
    }

    /// What a slot holds before any connection did.
    fn blank() -> Conn<A> {
        let nowhere = super::conn::Endpoints {
            proto: 0,
            caddr: A::UNSPECIFIED,
            cport: 0,
            vaddr: A::UNSPECIFIED,
            vport: 0,
            daddr: A::UNSPECIFIED,
            dport: 0,
        };
        let binding = super::conn::Binding { service: 0, dest: 0 };
        Conn::new(nowhere, super::conn::ConnState::Udp, FwdMethod::Masq, 0, binding, 0, NONE)
    }

    /// The same table with its memory touched only as it is used: a table that
    /// may see no traffic (the IPv6 one of an IPv4 director) costs no memory until
    /// it does, and pays a page fault per page the first time it fills. (No huge
    /// pages here: a 2 MiB page faulted in on the packet path can take milliseconds
    /// — zeroing, and compaction to find it — where a 4 KiB one takes a microsecond.)
    pub fn reserved(capacity: usize, seed: u64) -> ConnTable<A> {
        // Slots fit 31 bits (the index keeps a direction bit beside them).
        let capacity = capacity.clamp(1, (1 << 31) - 2);
        ConnTable {
            slab: Vec::with_capacity(capacity),
            cap: capacity,
            free_head: NONE,
            len: 0,
            index: Index::new(capacity * 2),
            seed,
            wheel: Box::new([NONE; WHEEL_SLOTS as usize]),
            wheel_now: 0,
            wheel_visits: 0,
            later: (NONE, NONE),
            pending: Vec::with_capacity(PENDING_MAX),
            defer_output: false,
        }
    }

    /// Defers entering new connections' reply tuples in the index to
    /// `flush_pending`, which the worker calls at the end of each burst: their
    /// index lines are prefetched at insert and written when the burst is done, so
    /// the misses of a burst of SYNs overlap. Safe because no reply can come back
    /// before the burst's packets have left. Off: entered at once (the default).
    pub fn set_defer_output(&mut self, on: bool) {
        if !on {
            self.flush_pending();
        }
        self.defer_output = on;
    }

    /// Enters the reply tuples that wait (see `set_defer_output`).
    pub fn flush_pending(&mut self) {
        let (pending, slab, index) = (&mut self.pending, &self.slab, &mut self.index);
        for &(slot, h) in pending.iter() {
            if slab.get(slot as usize).is_some_and(|c| c.live) {
                index.insert(h, value(slot, true));
            }
        }
        pending.clear();
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn get(&self, slot: u32) -> Option<&Conn<A>> {
        let i = slot as usize;
        self.slab.get(i).filter(|c| c.live)
    }

    /// The entry at `slot`, a slot the index or an insert has just given (live:
    /// the index holds only live entries' keys), without looking again.
    #[inline]
    pub fn found(&self, slot: u32) -> Option<&Conn<A>> {
        self.slab.get(slot as usize)
    }

    /// As `found`, to change it.
    #[inline]
    pub fn found_mut(&mut self, slot: u32) -> Option<&mut Conn<A>> {
        self.slab.get_mut(slot as usize)
    }

    /// As `found_mut`, with the table's fill beside it (read only when asked).
    #[inline(always)]
    pub fn found_mut_with_fill(&mut self, slot: u32) -> Option<(&mut Conn<A>, Fill<'_>)> {
        let c = self.slab.get_mut(slot as usize)?;
        Some((c, Fill { len: &self.len, cap: &self.cap }))
    }

    #[inline]
    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Conn<A>> {
        let i = slot as usize;
        self.slab.get_mut(i).filter(|c| c.live)
    }

    fn input_tuple(c: &Conn<A>) -> Tuple<A> {
        Tuple { proto: c.ep.proto, saddr: c.ep.caddr, sport: c.ep.cport, daddr: c.ep.vaddr, dport: c.ep.vport }
    }

    fn output_tuple(c: &Conn<A>) -> Tuple<A> {
        Tuple { proto: c.ep.proto, saddr: c.ep.daddr, sport: c.ep.dport, daddr: c.ep.caddr, dport: c.ep.cport }
    }

    /// The key `v` (slot << 1 | output) names is `t`.
    #[inline(always)]
    fn key_is(&self, v: u32, t: &Tuple<A>) -> bool {
        A::key_eq(&self.slab[(v >> 1) as usize].ep, v & 1 == 1, t)
    }

    /// The index's hash of `t` (what `lookup_hashed` and the warming take, so a
    /// packet's tuple is hashed once).
    #[inline]
    pub fn hash(&self, t: &Tuple<A>) -> u64 {
        mix(self.seed, t)
    }

    /// Finds the connection a packet with tuple `t` belongs to, in either direction.
    #[inline]
    pub fn lookup(&self, t: &Tuple<A>) -> Option<Found> {
        self.lookup_hashed(t, mix(self.seed, t))
    }

    /// As `lookup`, with `t`'s hash already known (`hash`).
    #[inline]
    pub fn lookup_hashed(&self, t: &Tuple<A>, h: u64) -> Option<Found> {
        self.lookup_hinted(t, h, 0)
    }

    /// As `lookup_hashed`, with `hint` what `warm_conn` gave for `h` while
    /// `index_changes` was what it is now (0: no hint). The probe then starts where
    /// it found its first key and stops there when that key is `t`'s: the entry a
    /// probe from the start would give, since the index has not changed since.
    #[inline]
    pub fn lookup_hinted(&self, t: &Tuple<A>, h: u64, hint: u32) -> Option<Found> {
        let hinted =
            |v: u32| self.slab.get((v >> 1) as usize).is_some_and(|c| c.live && A::key_eq(&c.ep, v & 1 == 1, t));
        let v = match hint.checked_sub(1) {
            Some(v) if hinted(v) => v,
            _ => self.index.find(h, |v| self.key_is(v, t))?,
        };
        Some(if v & 1 == 1 { Found::Output(v >> 1) } else { Found::Input(v >> 1) })
    }

    /// How many times the index has changed (wrapping): hints from `warm_conn`
    /// hold while it stays the same.
    #[inline]
    pub fn index_changes(&self) -> u32 {
        self.index.changes
    }

    /// Prefetches the index line where the probe for hash `h` starts (first stage
    /// of a burst: the misses of 32 packets overlap instead of each stalling in turn).
    #[inline]
    pub fn warm_index(&self, h: u64) {
        crate::dpdk::prefetch::prefetch(&self.index.words[self.index.home(h)]);
    }

    /// Prefetches the first connection whose tag matches hash `h` (second stage,
    /// once the index line is in cache; a connection is one line). Returns the
    /// hint `lookup_hinted` takes (that key's value + 1), 0 when there was none.
    #[inline]
    pub fn warm_conn(&self, h: u64) -> u32 {
        let Some(v) = self.index.find(h, |_| true) else { return 0 };
        let c = &self.slab[(v >> 1) as usize];
        crate::dpdk::prefetch::prefetch(c);
        if std::mem::size_of::<Conn<A>>() > 64 {
            // An IPv6 entry's second line (its real server's address ends there).
            crate::dpdk::prefetch::prefetch(std::ptr::from_ref(c).cast::<u8>().wrapping_add(64));
        }
        v.wrapping_add(1)
    }

    /// Finds a connection (not a template) by its input tuple only.
    pub fn lookup_input(&self, t: &Tuple<A>) -> Option<u32> {
        self.find_input(t, mix(self.seed, t))
    }

    /// Finds the template keyed `t` (`persist::template_key`).
    pub fn lookup_template(&self, t: &Tuple<A>) -> Option<u32> {
        self.find_input(t, mix(self.seed, t) ^ TEMPLATE_HASH)
    }

    /// The slot whose input key is `t` under index hash `h`.
    pub fn find_input(&self, t: &Tuple<A>, h: u64) -> Option<u32> {
        self.index.find(h, |v| v & 1 == 0 && self.key_is(v, t)).map(|v| v >> 1)
    }

    /// Adds a connection that expires `timeout_s` after `now_s`. `with_output`
    /// indexes the reply direction too (NAT). Returns its slot.
    pub fn insert(&mut self, c: Conn<A>, with_output: bool, now_s: u32) -> Result<u32, InsertError> {
        let h = mix(self.seed, &Self::input_tuple(&c));
        self.insert_hashed(c, h, with_output, now_s)
    }

    /// As `insert`, with the hash of `c`'s input tuple already known (`hash`: the
    /// packet that makes a connection was hashed when it was decoded). A
    /// template's key is indexed under that hash flipped (`TEMPLATE_HASH`).
    pub fn insert_hashed(&mut self, c: Conn<A>, h_in: u64, with_output: bool, now_s: u32) -> Result<u32, InsertError> {
        let tin = Self::input_tuple(&c);
        if let Some(s) = self.find_input(&tin, input_key_hash(&c, h_in)) {
            return Err(InsertError::Exists(s));
        }
        let slot = self.vacant().ok_or(InsertError::Full)?;
        self.slab[slot as usize] = c;
        Ok(self.enter(slot, h_in, with_output, now_s))
    }

    /// As `insert_hashed`, for the connection a client's packet opens
    /// (`Conn::open`, written where it is kept), whose input key the caller
    /// knows is not in the table (a lookup of it under `h_in` has just missed,
    /// and nothing has entered since): the index is not searched for it first.
    /// Returns its slot and whether it counts as active.
    #[inline(always)]
    pub fn open(&mut self, o: Opening<A>, t: &Timeouts, h_in: u64, now_s: u32) -> Result<(u32, bool), InsertError> {
        let slot = self.vacant().ok_or(InsertError::Full)?;
        let active = self.slab[slot as usize].open(o, t);
        Ok((self.enter(slot, h_in, o.fwd == FwdMethod::Masq, now_s), active))
    }

    /// A slot for a new entry: a freed one, else a fresh one (within the
    /// reserved capacity: no allocation; blank until written), None when the
    /// table is full. The caller writes the entry and `enter`s it at once.
    #[inline(always)]
    fn vacant(&mut self) -> Option<u32> {
        if self.free_head != NONE {
            let slot = self.free_head;
            self.free_head = self.slab[slot as usize].wheel_next;
            Some(slot)
        } else if self.slab.len() < self.cap {
            self.slab.push(Self::blank());
            u32::try_from(self.slab.len() - 1).ok()
        } else {
            None
        }
    }

    /// Enters the entry just written at the `vacant` slot `slot` (its input
    /// key's hash `h_in`; `with_output`: its output key too): armed for its
    /// timeout from `now_s`, live, indexed, on the wheel. Returns `slot`.
    #[inline(always)]
    fn enter(&mut self, slot: u32, h_in: u64, with_output: bool, now_s: u32) -> u32 {
        let e = &mut self.slab[slot as usize];
        e.expires_s = super::conn::deadline(now_s, e.timeout_s);
        e.live = true;
        let h_in = input_key_hash(e, h_in);
        self.len += 1;
        self.index.insert(h_in, value(slot, false));
        if with_output {
            let tout = Self::output_tuple(&self.slab[slot as usize]);
            let h = mix(self.seed, &tout);
            if self.defer_output && self.pending.len() < PENDING_MAX {
                crate::dpdk::prefetch::prefetch(&self.index.words[self.index.home(h)]);
                self.pending.push((slot, h));
            } else {
                self.index.insert(h, value(slot, true));
            }
        }
        self.file(slot);
        slot
    }

    /// Re-arms the entry for its timeout from now (`conn::deadline`; the entry stays
    /// in its wheel slot until that comes round: lazy refresh).
    #[inline]
    pub fn refresh(&mut self, slot: u32, now_s: u32) {
        if let Some(c) = self.get_mut(slot) {
            c.expires_s = super::conn::deadline(now_s, c.timeout_s);
        }
    }

    fn file(&mut self, slot: u32) {
        let c = &mut self.slab[slot as usize];
        // An entry due now or earlier goes to the next tick the wheel will visit.
        let at = c.expires_s.max(self.wheel_now.saturating_add(1));
        let w = at % WHEEL_SLOTS;
        c.wheel_next = self.wheel[w as usize];
        self.wheel[w as usize] = slot;
    }

    fn unindex(&mut self, slot: u32) {
        let c = self.slab[slot as usize];
        let seed = self.seed;
        self.index.remove(input_key_hash(&c, mix(seed, &Self::input_tuple(&c))), value(slot, false));
        self.index.remove(mix(seed, &Self::output_tuple(&c)), value(slot, true));
    }

    /// Removes the entry now (it must no longer be in a wheel list: called from
    /// expiry, or via `flush`).
    fn release(&mut self, slot: u32) {
        self.unpend(slot);
        self.unindex(slot);
        self.slab[slot as usize].live = false;
        self.slab[slot as usize].wheel_next = self.free_head;
        self.free_head = slot;
        self.len -= 1;
    }

    /// Runs the wheel up to `now_s`, visiting at most `budget` entries. Each entry
    /// due is offered to `on_expire`, which returns true to let it go (it sees the
    /// table, e.g. to update a controlling template) or false to keep it for
    /// another `timeout_s` (a template that still controls connections). Returns how
    /// many entries were freed. Entries not yet due are re-filed where they now
    /// belong; those a lap later in the same slot wait aside (`later`) until the
    /// slot is done, so a slot larger than the budget is worked through over
    /// several calls, each looking at no more than `budget` entries.
    pub fn expire(
        &mut self,
        now_s: u32,
        mut budget: usize,
        mut on_expire: impl FnMut(&mut ConnTable<A>, u32) -> bool,
    ) -> usize {
        let mut freed = 0;
        while self.wheel_now < now_s && budget > 0 {
            let tick = self.wheel_now + 1;
            let w = (tick % WHEEL_SLOTS) as usize;
            let mut cur = std::mem::replace(&mut self.wheel[w], NONE);
            while cur != NONE && budget > 0 {
                let next = self.slab[cur as usize].wheel_next;
                budget -= 1;
                self.wheel_visits += 1;
                let due = self.slab[cur as usize].expires_s <= tick;
                if due && on_expire(self, cur) {
                    self.release(cur);
                    freed += 1;
                } else {
                    if due {
                        // Kept (a template that still controls connections): armed
                        // again for its timeout, from the tick (the wheel may be
                        // catching up).
                        let c = &mut self.slab[cur as usize];
                        c.expires_s = super::conn::deadline(tick, c.timeout_s.max(1));
                    }
                    if (self.slab[cur as usize].expires_s % WHEEL_SLOTS) as usize != w {
                        // Refreshed: file at its new time (the wheel is at `tick`).
                        let saved = self.wheel_now;
                        self.wheel_now = tick;
                        self.file(cur);
                        self.wheel_now = saved;
                    } else {
                        // This slot, a later lap: aside until the slot is done.
                        if self.later.0 == NONE {
                            self.later.1 = cur;
                        }
                        self.slab[cur as usize].wheel_next = self.later.0;
                        self.later.0 = cur;
                    }
                }
                cur = next;
            }
            if cur != NONE {
                // Out of budget: the rest of the slot is looked at next time. (Nothing
                // was filed here meanwhile: what was re-filed went elsewhere.)
                self.wheel[w] = cur;
                break;
            }
            // The slot is done: what waits a lap goes back, the wheel moves on.
            let (head, tail) = std::mem::replace(&mut self.later, (NONE, NONE));
            if head != NONE {
                self.slab[tail as usize].wheel_next = self.wheel[w];
                self.wheel[w] = head;
            }
            self.wheel_now = tick;
        }
        freed
    }

    /// Three quarters full or more: the table is under pressure (a SYN flood, or
    /// too small a size), and half-open connections get short timeouts.
    pub fn under_pressure(&self) -> bool {
        under_pressure(self.len, self.cap)
    }

    /// As `under_pressure`, once one more entry is in (for an entry about to be).
    pub fn under_pressure_with_one_more(&self) -> bool {
        under_pressure(self.len + 1, self.cap)
    }

    /// Frees one entry `pick` accepts, in the order entries fall due (soonest
    /// first), looking at no more than `budget` entries and wheel slots; returns
    /// the entry freed (for its owner's bookkeeping), None when none was found.
    /// The IPVS idea of `drop_entry`: under a flood the half-open entries, with
    /// their short timeouts, sit in the next slots; established ones are far out.
    pub fn evict(&mut self, mut budget: usize, pick: impl Fn(&Conn<A>) -> bool) -> Option<Conn<A>> {
        for k in 1..=WHEEL_SLOTS {
            let w = (self.wheel_now.wrapping_add(k) % WHEEL_SLOTS) as usize;
            let mut prev = NONE;
            let mut cur = self.wheel[w];
            budget = budget.checked_sub(1)?;
            while cur != NONE {
                budget = budget.checked_sub(1)?;
                let next = self.slab[cur as usize].wheel_next;
                if pick(&self.slab[cur as usize]) {
                    if prev == NONE {
                        self.wheel[w] = next;
                    } else {
                        self.slab[prev as usize].wheel_next = next;
                    }
                    let c = self.slab[cur as usize];
                    // Out of the wheel now; `release` unindexes (nothing to do
                    // for a retired entry) and frees the slot.
                    self.release(cur);
                    return Some(c);
                }
                let due = self.slab[cur as usize].expires_s;
                if due > self.wheel_now && (due % WHEEL_SLOTS) as usize != w {
                    // Refreshed since it was filed (lazy refresh): move it to its
                    // own slot now, so later searches do not wade through it.
                    if prev == NONE {
                        self.wheel[w] = next;
                    } else {
                        self.slab[prev as usize].wheel_next = next;
                    }
                    self.file(cur);
                } else {
                    prev = cur;
                }
                cur = next;
            }
        }
        None
    }

    /// Takes an entry out of the index now (a stale persistence template): new
    /// lookups no longer find it, and it is freed when the wheel reaches it and its
    /// expiry callback lets it go.
    pub fn retire(&mut self, slot: u32) {
        if self.get(slot).is_some() {
            self.unpend(slot);
            self.unindex(slot);
        }
    }

    /// A slot leaving the index leaves the pending reply tuples too (eviction or
    /// retirement within the burst that created it).
    fn unpend(&mut self, slot: u32) {
        if !self.pending.is_empty() {
            self.pending.retain(|&(s, _)| s != slot);
        }
    }

    /// Removes every entry, offering each to `on_remove` first (control-plane flush).
    pub fn flush(&mut self, mut on_remove: impl FnMut(&Conn<A>)) {
        for i in 0..self.slab.len() {
            if self.slab[i].live {
                on_remove(&self.slab[i]);
            }
        }
        self.index.clear();
        self.pending.clear();
        // Every slot fresh again (the memory stays reserved).
        self.slab.clear();
        self.free_head = NONE;
        self.wheel.iter_mut().for_each(|w| *w = NONE);
        self.later = (NONE, NONE);
        self.len = 0;
    }

    /// A bounded piece of a walk over the live entries in slot order: from slot
    /// `from`, offers each live entry to `f` until `max_entries` were offered or
    /// `max_slots` slots looked at; returns the slot to go on from, or None at the
    /// end. Entries made or freed between pieces are seen at most once: a walk
    /// visits each slot once (what fills a slot it has passed is not listed).
    pub fn scan(
        &self,
        from: u32,
        max_entries: usize,
        max_slots: usize,
        mut f: impl FnMut(u32, &Conn<A>),
    ) -> Option<u32> {
        let start = from as usize;
        let end = start.saturating_add(max_slots).min(self.slab.len());
        let mut offered = 0;
        for i in start..end {
            if offered == max_entries {
                return u32::try_from(i).ok();
            }
            if self.slab[i].live {
                f(u32::try_from(i).unwrap_or(NONE), &self.slab[i]);
                offered += 1;
            }
        }
        (end < self.slab.len()).then(|| u32::try_from(end).unwrap_or(NONE))
    }

    /// Every live entry with its slot (listings, tests).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Conn<A>)> {
        self.slab.iter().enumerate().filter(|(_, c)| c.live).map(|(i, c)| (u32::try_from(i).unwrap_or(NONE), c))
    }

    /// Bytes the table takes per connection it can hold: the slab entry (its free
    /// link is its wheel link) and its share of the index (8-byte words) at its
    /// allocated size.
    pub fn bytes_per_conn(&self) -> usize {
        let slab = std::mem::size_of::<Conn<A>>();
        let index = self.index.words.len() * std::mem::size_of::<u64>() / self.capacity();
        slab + index
    }
}

#[cfg(test)]
mod tests {
    use super::super::conn::*;
    use super::super::dest::FwdMethod;
    use super::*;

    fn conn(cport: u16, timeout_s: u32) -> Conn {
        let ep = Endpoints {
            proto: 6,
            caddr: Ipv4Addr::new(198, 18, 0, 100),
            cport,
            vaddr: Ipv4Addr::new(198, 18, 0, 10),
            vport: 80,
            daddr: Ipv4Addr::new(198, 18, 1, 11),
            dport: 8080,
        };
        let established = ConnState::Tcp(TcpState::Established);
        Conn::new(ep, established, FwdMethod::Masq, 0, Binding { service: 0, dest: 0 }, timeout_s, NONE)
    }

    fn tin(cport: u16) -> Tuple {
        Tuple {
            proto: 6,
            saddr: Ipv4Addr::new(198, 18, 0, 100),
            sport: cport,
            daddr: Ipv4Addr::new(198, 18, 0, 10),
            dport: 80,
        }
    }

    fn tout(cport: u16) -> Tuple {
        Tuple {
            proto: 6,
            saddr: Ipv4Addr::new(198, 18, 1, 11),
            sport: 8080,
            daddr: Ipv4Addr::new(198, 18, 0, 100),
            dport: cport,
        }
    }

    #[test]
    fn a_hinted_lookup_finds_what_a_probe_finds() {
        let mut t: ConnTable = ConnTable::new(256, 3);
        for p in 0..200u16 {
            t.insert(conn(p, 60), true, 0).unwrap();
        }
        let before = t.index_changes();
        for p in 0..200u16 {
            for k in [tin(p), tout(p)] {
                let h = t.hash(&k);
                let hint = t.warm_conn(h);
                assert_ne!(hint, 0, "warming finds a key for {k:?}");
                assert_eq!(t.lookup_hinted(&k, h, hint), t.lookup(&k), "{k:?}");
                // No hint, another key's, one past the table: the probe decides.
                let other = t.warm_conn(t.hash(&tin((p + 1) % 200)));
                for h2 in [0, other, u32::MAX, 2 * 256 + 1] {
                    assert_eq!(t.lookup_hinted(&k, h, h2), t.lookup(&k), "{k:?} with hint {h2}");
                }
            }
        }
        assert_eq!(t.index_changes(), before, "lookups and warming change nothing");
        // Every change to the index is counted: a hint older than one is not used.
        let slot = match t.lookup(&tin(7)) {
            Some(Found::Input(s)) => s,
            other => panic!("{other:?}"),
        };
        t.retire(slot);
        assert_ne!(t.index_changes(), before);
        let after = t.index_changes();
        t.insert(conn(500, 60), true, 0).unwrap();
        assert_ne!(t.index_changes(), after);
        assert_eq!(t.lookup_hinted(&tin(7), t.hash(&tin(7)), 0), None, "retired");
    }

    #[test]
    fn eviction_takes_the_soonest_due_match_and_keeps_the_wheel_whole() {
        let mut t: ConnTable = ConnTable::new(64, 7);
        // Odd ports are "half-open" (SYN_RECV), with timeouts 1..=64 s.
        for p in 0..64u16 {
            let mut c = conn(p, 1 + u32::from(p));
            if p % 2 == 1 {
                c.state = ConnState::Tcp(TcpState::SynRecv);
            }
            t.insert(c, true, 0).unwrap();
        }
        let half_open = |c: &Conn| c.state == ConnState::Tcp(TcpState::SynRecv);
        // The soonest due half-open entry is port 1 (2 s), then 3, 5, ...
        for want in [1u16, 3, 5] {
            let c = t.evict(1000, half_open).expect("a half-open entry");
            assert_eq!(c.ep.cport, want);
            assert!(t.lookup(&tin(want)).is_none() && t.lookup(&tout(want)).is_none());
        }
        assert_eq!(t.len(), 61);
        assert!(t.evict(2, half_open).is_none(), "the budget bounds the search");
        assert!(t.evict(1000, |c| c.ep.cport == 999).is_none());
        // Freed slots are reused, and the wheel still expires everything else.
        t.insert(conn(1000, 5), true, 0).unwrap();
        assert_eq!(t.expire(100, usize::MAX, |_, _| true), 62);
        assert!(t.is_empty());
    }

    #[test]
    fn deferred_reply_tuples_are_found_after_the_burst() {
        let mut t: ConnTable = ConnTable::new(16, 3);
        t.set_defer_output(true);
        let a = t.insert(conn(1, 60), true, 0).unwrap();
        let b = t.insert(conn(2, 60), true, 0).unwrap();
        assert_eq!(t.lookup(&tin(1)), Some(Found::Input(a)), "the request side at once");
        assert_eq!(t.lookup(&tout(1)), None, "the reply side after the burst");
        // Evicted (or retired) within the burst: never entered afterwards.
        t.retire(b);
        t.flush_pending();
        assert_eq!(t.lookup(&tout(1)), Some(Found::Output(a)));
        assert_eq!(t.lookup(&tout(2)), None, "a retired entry stays out");
        // A slot freed and reused within a burst is entered once, for its new key.
        let c = t.insert(conn(3, 60), true, 0).unwrap();
        let freed = t.evict(100, |x| x.ep.cport == 3).expect("evicted");
        assert_eq!(freed.ep.cport, 3);
        let d = t.insert(conn(4, 60), true, 0).unwrap();
        assert_eq!(c, d, "the slot was reused");
        t.flush_pending();
        assert_eq!(t.lookup(&tout(3)), None);
        assert_eq!(t.lookup(&tout(4)), Some(Found::Output(d)));
        // More than a burst's worth are entered at once; turning deferral off flushes.
        for p in 10..(10 + u16::try_from(PENDING_MAX).unwrap() + 2) {
            if t.len() < t.capacity() {
                t.insert(conn(p, 60), true, 0).unwrap();
            }
        }
        t.set_defer_output(false);
        for (_, c) in t.iter().filter(|(_, c)| c.ep.cport != 2) {
            let k = Tuple { proto: 6, saddr: c.ep.daddr, sport: c.ep.dport, daddr: c.ep.caddr, dport: c.ep.cport };
            assert!(t.lookup(&k).is_some(), "port {} findable by its reply", c.ep.cport);
        }
        // Expiry frees them all (the retired one too).
        let n = t.len();
        assert_eq!(t.expire(100, usize::MAX, |_, _| true), n);
        assert!(t.is_empty());
    }

    #[test]
    fn found_from_both_directions() {
        let mut t: ConnTable = ConnTable::new(16, 1);
        let s = t.insert(conn(40000, 900), true, 0).unwrap();
        assert_eq!(t.lookup(&tin(40000)), Some(Found::Input(s)));
        assert_eq!(t.lookup(&tout(40000)), Some(Found::Output(s)));
        assert_eq!(t.lookup(&tin(40001)), None);
        let s2 = t.insert(conn(40001, 900), false, 0).unwrap();
        assert_eq!(t.lookup(&tin(40001)), Some(Found::Input(s2)));
        assert_eq!(t.lookup(&tout(40001)), None, "input only");
        assert_eq!(t.insert(conn(40000, 900), true, 0), Err(InsertError::Exists(s)));
    }

    #[test]
    fn full_table_refuses() {
        let mut t: ConnTable = ConnTable::new(3, 1);
        for p in 0..3 {
            t.insert(conn(p, 10), true, 0).unwrap();
        }
        assert_eq!(t.insert(conn(9, 10), true, 0), Err(InsertError::Full));
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn expires_on_time_and_refresh_postpones() {
        let mut t: ConnTable = ConnTable::new(8, 1);
        let a = t.insert(conn(1, 10), true, 100).unwrap();
        let b = t.insert(conn(2, 10), true, 100).unwrap();
        // Armed during second 100 (any instant of it) for 10 s: due at 111, the
        // first tick that is surely 10 s later.
        let mut gone = Vec::new();
        t.expire(105, 1000, |_, s| {
            gone.push(s);
            true
        });
        assert!(gone.is_empty());
        t.refresh(b, 105); // now due at 116
        t.expire(110, 1000, |_, s| {
            gone.push(s);
            true
        });
        assert!(gone.is_empty(), "not before its timeout");
        t.expire(111, 1000, |_, s| {
            gone.push(s);
            true
        });
        assert_eq!(gone, vec![a], "at most a tick after it");
        assert!(t.get(a).is_none() && t.lookup(&tin(1)).is_none() && t.lookup(&tout(1)).is_none());
        t.expire(115, 1000, |_, s| {
            gone.push(s);
            true
        });
        assert_eq!(gone, vec![a]);
        t.expire(116, 1000, |_, s| {
            gone.push(s);
            true
        });
        assert_eq!(gone, vec![a, b]);
        assert!(t.is_empty());
        // The slot is reused.
        assert!(t.insert(conn(3, 10), true, 116).is_ok());
    }

    #[test]
    fn timeouts_longer_than_the_wheel() {
        let mut t: ConnTable = ConnTable::new(4, 1);
        let long = WHEEL_SLOTS * 2 + 7;
        t.insert(conn(1, long), true, 0).unwrap();
        let mut n = 0;
        t.expire(long, usize::MAX, |_, _| {
            n += 1;
            true
        });
        assert_eq!(n, 0, "not before its time");
        t.expire(long + 1, usize::MAX, |_, _| {
            n += 1;
            true
        });
        assert_eq!(n, 1);
    }

    #[test]
    fn kept_entries_live_another_timeout() {
        let mut t: ConnTable = ConnTable::new(4, 1);
        let s = t.insert(conn(1, 5), false, 0).unwrap();
        let mut offers = 0;
        t.expire(6, 100, |_, _| {
            offers += 1;
            false
        });
        assert_eq!(offers, 1);
        assert!(t.get(s).is_some());
        t.expire(11, 100, |_, _| true);
        assert!(t.get(s).is_some(), "kept until 12");
        t.expire(12, 100, |_, _| true);
        assert!(t.get(s).is_none());
    }

    /// Walks `t` in pieces of at most `chunk` entries (and 4 096 slots), calling
    /// `between` after each piece; returns the cports listed and the pieces taken.
    fn walk(t: &mut ConnTable, chunk: usize, mut between: impl FnMut(&mut ConnTable)) -> (Vec<u16>, usize) {
        let (mut seen, mut pieces, mut from) = (Vec::new(), 0, Some(0));
        while let Some(f) = from {
            let mut piece = 0;
            from = t.scan(f, chunk, 4096, |_, c| {
                seen.push(c.ep.cport);
                piece += 1;
            });
            assert!(piece <= chunk);
            pieces += 1;
            between(t);
        }
        (seen, pieces)
    }

    #[test]
    fn a_walk_in_pieces_lists_every_entry_once() {
        let n = 100_000;
        let mut t: ConnTable = ConnTable::new(n, 1);
        for p in 0..n {
            let mut c = conn(u16::try_from(p % 65_536).unwrap(), 60);
            c.ep.caddr = Ipv4Addr::from(0x6440_0000 + u32::try_from(p).unwrap());
            t.insert(c, true, 0).unwrap();
        }
        let (seen, pieces) = walk(&mut t, 256, |_| {});
        assert_eq!(seen.len(), n, "every connection listed");
        assert!(pieces >= n / 256, "in {pieces} pieces");
        // A sparse table: the slot bound keeps each piece short.
        t.expire(61, n / 2, |_, _| true);
        let (seen, _) = walk(&mut t, 256, |_| {});
        assert_eq!(seen.len(), n / 2);
    }

    #[test]
    fn entries_expiring_or_made_during_a_walk_are_listed_at_most_once() {
        let mut t: ConnTable = ConnTable::new(10_000, 1);
        for p in 0..5_000u16 {
            t.insert(conn(p, 1 + u32::from(p % 3)), true, 0).unwrap();
        }
        let mut now = 0;
        let mut next_port = 5_000u16;
        let (seen, _) = walk(&mut t, 100, |t| {
            // Between pieces: some connections expire, new ones arrive.
            now += 1;
            t.expire(now, 300, |_, _| true);
            for _ in 0..50 {
                if t.insert(conn(next_port, 60), true, now).is_ok() {
                    next_port += 1;
                }
            }
        });
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "no connection listed twice");
        assert!(seen.len() <= 5_000 + usize::from(next_port - 5_000));
    }

    #[test]
    fn budget_bounds_the_work_and_the_rest_follows() {
        let mut t: ConnTable = ConnTable::new(100, 1);
        for p in 0..100 {
            t.insert(conn(p, 1), true, 0).unwrap();
        }
        let first = t.expire(2, 30, |_, _| true);
        assert_eq!(first, 30);
        let mut total = first;
        for _ in 0..10 {
            total += t.expire(2, 30, |_, _| true);
        }
        assert_eq!(total, 100);
        assert!(t.is_empty());
    }

    #[test]
    fn a_crowded_wheel_slot_is_worked_through_in_bounded_passes() {
        // 60 k entries filed in the same slot (made in the same second with a 30 s
        // timeout), all refreshed meanwhile to a later time: when the wheel comes
        // round, each is re-filed where it belongs, 512 a pass, and no pass looks
        // at more than its budget (no walk over the rest of the slot).
        let n = 60_000u16;
        let mut t: ConnTable = ConnTable::new(usize::from(n), 1);
        for p in 0..n {
            let s = t.insert(conn(p, 30), true, 0).unwrap();
            t.refresh(s, 20);
        }
        let (mut passes, mut freed) = (0, 0);
        while t.wheel_now < 32 {
            let before = t.wheel_visits;
            freed += t.expire(32, 512, |_, _| true);
            assert!(t.wheel_visits - before <= 512, "a pass looked at {} entries", t.wheel_visits - before);
            passes += 1;
            assert!(passes <= 1_000, "no progress");
        }
        assert_eq!(freed, 0, "refreshed: none due at 31");
        assert!(passes >= usize::from(n) / 512, "{passes} passes");
        // They fall due at 51, all of them.
        while !t.is_empty() {
            freed += t.expire(51, 512, |_, _| true);
            passes += 1;
            assert!(passes <= 2_000, "no progress");
        }
        assert_eq!(freed, usize::from(n));
    }

    #[test]
    fn flush_empties_and_reports() {
        let mut t: ConnTable = ConnTable::new(8, 1);
        for p in 0..5 {
            t.insert(conn(p, 100), true, 0).unwrap();
        }
        let mut n = 0;
        t.flush(|_| n += 1);
        assert_eq!((n, t.len()), (5, 0));
        assert!(t.lookup(&tin(1)).is_none());
        for p in 0..8 {
            t.insert(conn(p, 100), true, 0).unwrap();
        }
        t.expire(50, 100, |_, _| true);
        assert_eq!(t.len(), 8, "flush cleared the wheel without losing new entries");
    }

    #[test]
    fn memory_per_connection_is_at_most_128_bytes() {
        let t: ConnTable = ConnTable::new(1 << 16, 1);
        let b = t.bytes_per_conn();
        eprintln!(
            "connection table: {} bytes per connection (Conn {} B + index {} B)",
            b,
            std::mem::size_of::<Conn>(),
            b - std::mem::size_of::<Conn>()
        );
        assert!(b <= 128, "{b} bytes per connection");
    }

    /// The kB of huge pages backing the mapping that holds `addr` (/proc/self/smaps).
    fn huge_kb_at(addr: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ').filter(|(r, _)| r.contains('-') && !r.ends_with(':')) {
                let (a, b) = range.split_once('-')?;
                let (a, b) = (usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?);
                inside = (a..b).contains(&addr);
            } else if inside {
                if let Some(kb) = line.strip_prefix("AnonHugePages:") {
                    return kb.trim().trim_end_matches("kB").trim().parse().ok();
                }
            }
        }
        None
    }

    #[test]
    fn a_large_table_is_backed_by_huge_pages_where_the_kernel_offers_them() {
        let policy = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        if policy.is_empty() || policy.contains("[never]") {
            eprintln!("no transparent huge pages here: nothing to check");
            return;
        }
        // 64 MiB of connections and 32 MiB of index: many whole 2 MiB pages.
        let t: ConnTable = ConnTable::new(1 << 20, 1);
        // The advice splits each allocation's mapping at its whole pages: ask
        // about the middle of each.
        let middle = |p: usize, bytes: usize| p + bytes / 2;
        let slab = huge_kb_at(middle(t.slab.as_ptr() as usize, t.slab.capacity() * std::mem::size_of::<Conn>()))
            .expect("the slab's mapping");
        let words = &t.index.words;
        let index = huge_kb_at(middle(words.as_ptr() as usize, words.len() * 8)).expect("the index's mapping");
        eprintln!("huge pages: slab {slab} kB, index {index} kB");
        assert!(slab >= 32 * 1024 && index >= 16 * 1024, "slab {slab} kB, index {index} kB in huge pages");
    }

    /// Mean and longest displacement of `keys` inserted in turn into an index
    /// for `entries` keys by linear probing from their homes (the table's hash
    /// under `seed`).
    fn displacement<A: Addr>(seed: u64, entries: usize, keys: &[Tuple<A>]) -> (f64, usize) {
        let ix = Index::new(entries);
        let mut taken = vec![false; ix.words.len()];
        let (mut sum, mut longest) = (0usize, 0usize);
        for t in keys {
            let home = ix.home(mix(seed, t));
            let mut d = 0;
            while taken[(home + d) & ix.mask] {
                d += 1;
            }
            taken[(home + d) & ix.mask] = true;
            sum += d;
            longest = longest.max(d);
        }
        (sum as f64 / keys.len() as f64, longest)
    }

    #[test]
    fn the_index_hash_spreads_sequential_clients_as_random_keys_spread() {
        // 100 000 NAT connections of clients counting up their ports (50 000 an
        // address), both keys of each; and the same count of keys whose fields
        // all vary. Random homes in an index filled this far (38 %) are displaced
        // 0.3 words on average, rarely more than 40: the structured keys must
        // spread no worse. (A hash whose upper half steps with the client's
        // port by a stride with factors of two crowds them: 0.58 on average.)
        let n = 100_000u32;
        let (vip, rs) = (Ipv4Addr::new(198, 18, 0, 10), Ipv4Addr::new(198, 19, 1, 11));
        let mut sequential = Vec::new();
        let mut random = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..n {
            let caddr = Ipv4Addr::from(0x6440_0000 + i / 50_000);
            let cport = 10_000 + u16::try_from(i % 50_000).unwrap();
            sequential.push(Tuple { proto: 6, saddr: caddr, sport: cport, daddr: vip, dport: 80 });
            sequential.push(Tuple { proto: 6, saddr: rs, sport: 8080, daddr: caddr, dport: cport });
            for _ in 0..2 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let [a, b, c, d, e, f, g, h] = x.to_le_bytes();
                let t = Tuple {
                    proto: 6,
                    saddr: Ipv4Addr::new(a, b, c, d),
                    sport: u16::from_le_bytes([e, f]),
                    daddr: Ipv4Addr::new(d, e, f, g),
                    dport: u16::from_le_bytes([g, h]),
                };
                random.push(t);
            }
        }
        for seed in [1, 0x5555_0000_aaaa, 0xdead_beef_0bad_f00d] {
            let (mean, longest) = displacement(seed, sequential.len(), &sequential);
            let (random_mean, random_longest) = displacement(seed, random.len(), &random);
            eprintln!("seed {seed:#x}: sequential {mean:.3} / {longest}, random {random_mean:.3} / {random_longest}");
            assert!(mean < 0.5 && longest < 60, "seed {seed:#x}: displaced {mean:.3} on average, {longest} at most");
        }
    }

    #[test]
    fn index_removal_keeps_every_key_reachable() {
        // Few homes, long runs that wrap around the end: backward shift under stress.
        let mut ix = Index::new(40);
        let mut model: Vec<(u64, u32)> = Vec::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let home = (x % 5) + u64::try_from(ix.words.len()).unwrap() - 3; // near the wrap
            let h = ((home | ((x >> 8) & 0x3) << 20) << 32) | (x & 0xffff);
            if model.len() < 40 && x & 1 == 0 {
                ix.insert(h, step);
                model.push((h, step));
            } else if !model.is_empty() {
                let (h, v) = model.swap_remove(usize::try_from(x >> 40).unwrap() % model.len());
                assert!(ix.remove(h, v), "step {step}: key present");
            }
            for &(h, v) in &model {
                assert_eq!(ix.find(h, |w| w == v), Some(v), "step {step}: reachable");
            }
        }
    }

    #[test]
    fn randomised_against_a_model() {
        // Insert/refresh/expire at random; the table must agree with a plain map.
        let mut t: ConnTable = ConnTable::new(64, 7);
        let mut model: std::collections::HashMap<u16, u32> = std::collections::HashMap::new(); // cport -> expires
        let mut rng = 0x1234_5678u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut now = 0u32;
        for _ in 0..5000 {
            match next() % 4 {
                0 | 1 => {
                    let p = (next() % 100) as u16;
                    // Now and then longer than the wheel (a later lap of a slot).
                    let to =
                        if next() % 10 == 0 { WHEEL_SLOTS + (next() % 3) as u32 } else { 1 + (next() % 20) as u32 };
                    if t.insert(conn(p, to), true, now).is_ok() {
                        assert!(!model.contains_key(&p));
                        model.insert(p, deadline(now, to));
                    }
                }
                2 => {
                    let p = (next() % 100) as u16;
                    if let Some(Found::Input(s)) = t.lookup(&tin(p)) {
                        t.refresh(s, now);
                        let to = t.get(s).unwrap().timeout_s;
                        model.insert(p, deadline(now, to));
                    }
                }
                _ => {
                    now += if next() % 40 == 0 { 2000 } else { (next() % 3) as u32 };
                    // In passes of a few entries, as a busy worker runs it.
                    while t.wheel_now < now {
                        let budget = 1 + (next() % 4) as usize;
                        t.expire(now, budget, |_, _| true);
                    }
                    model.retain(|_, e| *e > now);
                }
            }
            assert_eq!(t.len(), model.len(), "at {now}");
            for p in model.keys() {
                assert!(matches!(t.lookup(&tout(*p)), Some(Found::Output(_))));
            }
        }
    }
}
