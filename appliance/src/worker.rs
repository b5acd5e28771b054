//! The worker lcore loop: for each port, receive a burst, run the pipeline on each
//! packet, gather the packets to send per port; then send, and count what the NIC
//! did not take. Between bursts: the stop flag, and an optional idle back-off.

use crate::dpdk::lcore;
use crate::dpdk::mbuf::{RxBurst, TxBurst};
use crate::dpdk::port::{RxQueue, TxQueue};
use crate::pipeline::counters::DropReason;
use crate::pipeline::{Pipeline, Verdict};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Everything one worker owns.
pub struct Worker {
    pub lcore: u32,
    /// One (RX, TX) queue pair per port, indexed by port index.
    pub queues: Vec<(RxQueue, TxQueue)>,
    pub pipeline: Pipeline,
    pub stop: Arc<AtomicBool>,
    pub idle_sleep_us: u32,
}

impl Worker {
    /// The loop; returns when `stop` is set.
    pub fn run(mut self) -> i32 {
        let ms_ticks = (lcore::tsc_hz() / 1000).max(1);
        let nports = self.queues.len();
        let mut rx = RxBurst::default();
        let mut tx: Vec<TxBurst> = (0..nports).map(|_| TxBurst::default()).collect();
        let counters = Arc::clone(&self.pipeline.counters);
        tracing::info!(lcore = self.lcore, ports = nports, "worker started");
        while !self.stop.load(Ordering::Relaxed) {
            let now_ms = lcore::tsc() / ms_ticks;
            let mut received = 0;
            for in_port in 0..nports {
                let n = self.queues[in_port].0.rx(&mut rx);
                if n == 0 {
                    continue;
                }
                received += n;
                counters.rx_packets.add(n as u64);
                let in_port_idx = u16::try_from(in_port).unwrap_or(u16::MAX);
                for mut m in rx.by_ref() {
                    if !m.is_contiguous() {
                        counters.count_drop(DropReason::MultiSegment);
                        continue;
                    }
                    match self.pipeline.process(in_port_idx, m.data_mut(), now_ms) {
                        Verdict::Transmit(out) => {
                            let out = usize::from(out);
                            let Some(burst) = tx.get_mut(out) else {
                                counters.count_drop(DropReason::UnknownPort);
                                continue;
                            };
                            if burst.is_full() {
                                flush(&mut self.queues[out].1, burst, &counters);
                            }
                            // Just flushed: there is room.
                            if let Err(m) = burst.push(m) {
                                drop(m);
                                counters.count_drop(DropReason::TxFull);
                            }
                        }
                        Verdict::Consumed | Verdict::Drop(_) => {}
                    }
                }
            }
            for (out, burst) in tx.iter_mut().enumerate() {
                flush(&mut self.queues[out].1, burst, &counters);
            }
            if received == 0 && self.idle_sleep_us > 0 {
                std::thread::sleep(std::time::Duration::from_micros(u64::from(self.idle_sleep_us)));
            }
        }
        tracing::info!(lcore = self.lcore, "worker stopped");
        0
    }
}

fn flush(q: &mut TxQueue, burst: &mut TxBurst, counters: &crate::pipeline::counters::Counters) {
    let (sent, freed) = q.flush(burst);
    counters.tx_packets.add(sent as u64);
    if freed > 0 {
        counters.drop_n(DropReason::TxFull, freed as u64);
    }
}
