//! What this machine's memory allows the fast path, measured beside its figures:
//! a table of 1 M connections is ~100 MiB read at random, so a packet of a large
//! table costs at least what one random cache line costs here.
//!
//! - `latency`: one load waiting for the one before (a random cyclic chain of
//!   cache lines): what a packet would wait for each line nobody asked for early.
//! - `throughput`: independent loads of random lines, each prefetched `ahead`
//!   loads before it is read (as the pipeline warms a burst): the cost of a line
//!   when the core keeps many in flight — the floor a random line per packet puts
//!   under ns/packet, however well the misses overlap.
//!
//! Both in memory advised to transparent huge pages, as the connection table is.

use appliance::dpdk::memory::advise_huge_pages;
use appliance::dpdk::prefetch::prefetch;
use std::time::Instant;

/// u64 words in a cache line.
const LINE: usize = 8;

/// `bytes` of cache lines in huge-page-advised memory, zeroed (every page
/// touched before anything is timed).
fn lines(bytes: usize) -> Vec<u64> {
    let mut v: Vec<u64> = Vec::with_capacity(bytes / 8);
    advise_huge_pages(&v);
    v.resize(bytes / 8, 0);
    v
}

/// xorshift64: a fixed pseudo-random sequence (no dependency, same every run).
pub struct XorShift(pub u64);

impl XorShift {
    /// The next number, below `below`.
    pub fn below(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % below as u64).unwrap_or(0)
    }
}

/// ns per load of a chain through every line of `bytes` in random order, each
/// load's address read by the one before.
pub fn latency(bytes: usize, loads: usize) -> f64 {
    let mut mem = lines(bytes);
    let n = mem.len() / LINE;
    // The lines in a random order, each holding the index of the next (the last
    // the first's): one cycle through all of them.
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for i in (1..n).rev() {
        let j = rng.below(i + 1);
        order.swap(i, j);
    }
    for k in 0..n {
        mem[order[k] * LINE] = order[(k + 1) % n] as u64;
    }
    drop(order);
    let mut at = 0usize;
    let t0 = Instant::now();
    for _ in 0..loads {
        at = usize::try_from(mem[at * LINE]).unwrap_or(0);
    }
    let ns = t0.elapsed().as_nanos() as f64 / loads as f64;
    std::hint::black_box(at);
    ns
}

/// ns per line of `loads` independent reads of random lines of `bytes`, each
/// prefetched `ahead` reads before.
pub fn throughput(bytes: usize, loads: usize, ahead: usize) -> f64 {
    let mem = lines(bytes);
    let n = mem.len() / LINE;
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let at: Vec<u32> = (0..loads).map(|_| u32::try_from(rng.below(n)).unwrap_or(0)).collect();
    let line = |i: usize| usize::try_from(at[i]).unwrap_or(0) * LINE;
    let mut sum = 0u64;
    let t0 = Instant::now();
    for i in 0..loads {
        if let Some(&a) = at.get(i + ahead) {
            prefetch(&mem[usize::try_from(a).unwrap_or(0) * LINE]);
        }
        sum = sum.wrapping_add(mem[line(i)]);
    }
    let ns = t0.elapsed().as_nanos() as f64 / loads as f64;
    std::hint::black_box(sum);
    ns
}
