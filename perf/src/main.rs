//! `perf`: RVS benchmarks that print numbers (never asserted by tests).
//!
//! The pipeline alone, DPDK-free, driven by the packet fixtures of `tests/fixtures`
//! (Katran's way: the same table drives tests and benchmarks). Each case is first
//! run once in order (so connections exist), then each transmitted case is timed on
//! its own: the steady-state cost of that path for a packet of an existing
//! connection (NAT in/out, DR, TUN, ICMP). Plus ARP and ping to the VIP.
//! Then the scenarios at scale (`scenarios.rs`): established NAT/DR/TUN over 1 k to
//! 1 M flows, new connections per second, bytes per connection up to 10 M
//! connections. Results go to stdout as a table and to `perf/results/latest.json`.
//!
//!   cargo run --release -p perf [-- --quick]     (perf/run runs it)

#![forbid(unsafe_code)]

#[path = "../../tests/fixtures/mod.rs"]
mod fixtures;
mod memory;
mod scenarios;

use appliance::net::arp;
use appliance::net::ethernet::{self, EthernetAddress};
use appliance::pipeline::Verdict;
use std::net::Ipv4Addr;
use std::time::Instant;

fn arp_request() -> Vec<u8> {
    let mut f = vec![0u8; 60];
    let n = appliance::pipeline::neigh::build_request(
        &mut f,
        EthernetAddress(fixtures::CLIENT_MAC),
        Ipv4Addr::from(fixtures::CLIENT),
        Ipv4Addr::from(fixtures::VIP),
    );
    f.truncate(n);
    let _ = (arp::PACKET_LEN, ethernet::HEADER_LEN);
    f
}

/// A loop that does nothing but read the clock for `secs` seconds: the longest
/// gap between two reads (µs), and how many gaps exceeded 100 and 200 µs. On a
/// virtual machine this is the hypervisor's share of the core.
fn busy_gaps(secs: f64) -> (f64, u64, u64) {
    let t0 = std::time::Instant::now();
    let (mut last, mut max, mut over100, mut over200) = (t0, std::time::Duration::ZERO, 0, 0);
    while last.duration_since(t0).as_secs_f64() < secs {
        let now = std::time::Instant::now();
        let gap = now - last;
        max = max.max(gap);
        over100 += u64::from(gap.as_micros() > 100);
        over200 += u64::from(gap.as_micros() > 200);
        last = now;
    }
    (max.as_secs_f64() * 1e6, over100, over200)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, vport, flows, rest @ ..] = &args[..] {
        if flag == "--established" {
            // One scenario alone (for a profiler; perf/run counts its instructions
            // with callgrind): VIP port 80 NAT, 81 DR, 82 TUN.
            let (vport, flows) = (vport.parse().unwrap_or(80), flows.parse().unwrap_or(1_000_000));
            let packets = rest.first().and_then(|p| p.parse().ok()).unwrap_or(20_000_000);
            let staged = std::env::var_os("RVS_PERF_UNSTAGED").is_none();
            // RVS_PERF_SYNC=1: with connection sync on (threshold 3, period 50).
            let sync = std::env::var_os("RVS_PERF_SYNC").is_some();
            // RVS_PERF_RANDOM=1: the connections taken in random order.
            let order = match std::env::var_os("RVS_PERF_RANDOM") {
                Some(_) => scenarios::Order::Random,
                None => scenarios::Order::Made,
            };
            let (inbound, outbound) = scenarios::established_with(vport, flows, packets, staged, 1, sync, order);
            println!("{flows} flows to VIP:{vport}: {inbound:.1} ns/pkt in, {outbound:?} ns/pkt out");
            return;
        }
    }
    if let [_, flag, flows, rest @ ..] = &args[..] {
        if flag == "--established6" {
            // IPv6 NAT alone (callgrind: instructions per packet), beside the IPv4
            // figures of `--established 80`.
            let flows = flows.parse().unwrap_or(1_000_000);
            let packets = rest.first().and_then(|p| p.parse().ok()).unwrap_or(20_000_000);
            let (inbound, outbound) = scenarios::established6(flows, packets);
            println!("{flows} flows to [VIP6]:80: {inbound:.1} ns/pkt in, {outbound:.1} ns/pkt out");
            return;
        }
    }
    if let [_, flag, flows] = &args[..] {
        if flag == "--sync-on-off" {
            // Only the connection sync comparison: established NAT over `flows` and
            // new connections, sync off then on, in this one process.
            let flows: usize = flows.parse().unwrap_or(1_000_000);
            for sync in [false, true] {
                let (i, o) = scenarios::established_with(80, flows, 5_000_000, true, 1, sync, scenarios::Order::Made);
                let cps = scenarios::new_connections_with(1_000_000, sync);
                println!(
                    "sync {}: NAT established {flows} flows {i:.1} ns/pkt in, {:.1} out; new connections {:.2} M/s",
                    if sync { "on " } else { "off" },
                    o.unwrap_or(f64::NAN),
                    cps / 1e6
                );
            }
            return;
        }
    }
    if let [_, flag, n] = &args[..] {
        if flag == "--new" {
            let cps = scenarios::new_connections(n.parse().unwrap_or(100_000));
            println!("{n} new connections: {:.2} M conn/s", cps / 1e6);
            return;
        }
    }
    if let [_, flag] = &args[..] {
        if flag == "--memory" {
            // Only the memory figures (see memory.rs), over 1 .. 256 MiB.
            for mib in [1, 4, 16, 64, 256] {
                let (latency, line) =
                    (memory::latency(mib << 20, 2_000_000), memory::throughput(mib << 20, 8_000_000, 16));
                println!("{mib:>4} MiB: {latency:.1} ns a line waited for, {line:.1} ns a line among many in flight");
            }
            return;
        }
    }
    if let [_, flag, n] = &args[..] {
        if flag == "--bytes-per-conn" {
            // In a process of its own, so nothing freed earlier is reused.
            println!("{}", scenarios::bytes_per_connection(n.parse().unwrap_or(10_000)));
            return;
        }
    }
    if let [_, flag, secs] = &args[..] {
        if flag == "--busy-gaps" {
            // What the machine alone allows a polling loop: run it on a worker's
            // core (taskset) with nothing else there.
            let (max_us, over_100us, over_200us) = busy_gaps(secs.parse().unwrap_or(10.0));
            println!(
                "{{\"max_gap_us\": {max_us:.1}, \"gaps_over_100us\": {over_100us}, \"gaps_over_200us\": {over_200us}}}"
            );
            return;
        }
    }
    let quick = args.iter().any(|a| a == "--quick");
    let packets: u64 = if quick { 200_000 } else { 2_000_000 };
    micro(packets);
    let r = scale(quick);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/latest.json");
    let _ = std::fs::create_dir_all(path.parent().unwrap_or(std::path::Path::new(".")));
    match std::fs::write(&path, serde_json::to_string_pretty(&r).unwrap_or_default() + "\n") {
        Ok(()) => println!("\nwritten: {}", path.display()),
        Err(e) => eprintln!("perf: writing {}: {e}", path.display()),
    }
}

/// The scenarios at scale; the figures for latest.json.
fn scale(quick: bool) -> serde_json::Value {
    let big = if quick { 100_000 } else { 1_000_000 };
    let packets = if quick { 1_000_000 } else { 5_000_000 };
    println!("\nscenarios at scale, one core ({packets} packets per run, frames built beforehand)");
    println!("{:>10}  {:>9}  {:>8}  scenario", "flows", "ns/pkt", "Mpps");
    let row = |flows: usize, ns: f64, name: &str| println!("{flows:>10}  {ns:>9.1}  {:>8.2}  {name}", 1e3 / ns);
    let mut curve = Vec::new();
    let mut nat = (0.0, 0.0);
    for flows in [1_000, 10_000, 100_000, 1_000_000].into_iter().filter(|&f| f <= big) {
        let (inbound, outbound) = scenarios::established(80, flows, packets, true);
        let outbound = outbound.unwrap_or(f64::NAN);
        row(flows, inbound, "NAT established, client -> real server");
        row(flows, outbound, "NAT established, real server -> client");
        curve.push(serde_json::json!({"flows": flows, "nat_in_ns": inbound, "nat_out_ns": outbound}));
        nat = (inbound, outbound);
    }
    if !quick {
        // The table at 10 M connections (a process of its own: 1.4 GB, freed after).
        let flows = 10_000_000;
        let out = std::env::current_exe()
            .and_then(|exe| {
                std::process::Command::new(exe)
                    .args(["--established", "80", &flows.to_string(), &packets.to_string()])
                    .output()
            })
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        // "N flows to VIP:80: X ns/pkt in, Some(Y) ns/pkt out"
        let num = |after: &str| -> f64 {
            out.split(after)
                .nth(1)
                .and_then(|r| r.split(|c: char| !(c.is_ascii_digit() || c == '.')).find(|t| !t.is_empty()))
                .and_then(|t| t.parse().ok())
                .unwrap_or(f64::NAN)
        };
        let (inbound, outbound) = (num("VIP:80: "), num("Some("));
        row(flows, inbound, "NAT established, client -> real server (table at 10 M)");
        row(flows, outbound, "NAT established, real server -> client (table at 10 M)");
        curve.push(serde_json::json!({"flows": flows, "nat_in_ns": inbound, "nat_out_ns": outbound}));
    }
    // The worker's path with software steering: worker 0 of two hashes every packet.
    let (steered_in, steered_out) = scenarios::established_on(80, big, packets, true, 2);
    let steered_out = steered_out.unwrap_or(f64::NAN);
    row(big, steered_in, "NAT established, client -> real server, worker 0 of 2 (software steering)");
    row(big, steered_out, "NAT established, real server -> client, worker 0 of 2 (software steering)");
    // IPv6 NAT beside IPv4's at the same size, in the same run.
    let (nat6_in, nat6_out) = scenarios::established6(big, packets);
    row(big, nat6_in, "NAT established over IPv6, client -> real server");
    row(big, nat6_out, "NAT established over IPv6, real server -> client");
    let nat6_ratio = (nat6_in + nat6_out) / (nat.0 + nat.1);
    println!("{:>10}  {:>9.2}  {:>8}  IPv6 / IPv4 NAT ns per packet", "", nat6_ratio, "");
    let (dr, _) = scenarios::established(81, big, packets, true);
    row(big, dr, "DR established");
    let (tun, _) = scenarios::established(82, big, packets, true);
    row(big, tun, "TUN established (IPIP prepended in the headroom)");
    // The rows above take their connections in the order they were made (the
    // slab's lines in sequence); real clients come in no order.
    let (dr_random, _) = scenarios::established_with(81, big, packets, true, 1, false, scenarios::Order::Random);
    row(big, dr_random, "DR established, connections in random order (each a random line)");
    // What a random line costs on this machine: the floor under the large tables.
    let table_bytes = 64 << 20;
    let mem_latency = memory::latency(table_bytes, 2_000_000);
    let mem_line = memory::throughput(table_bytes, 8_000_000, 16);
    println!("{:>10}  {mem_latency:>9.1}  {:>8}  memory: one random line waited for (64 MiB, huge pages)", "", "");
    println!(
        "{:>10}  {mem_line:>9.1}  {:>8}  memory: one random line among many in flight (16 prefetched ahead)",
        "", ""
    );
    // Connection sync on and off, side by side (the same build, the same run).
    let mut sync_rows = Vec::new();
    for sync in [false, true] {
        let (inbound, outbound) = scenarios::established_with(80, big, packets, true, 1, sync, scenarios::Order::Made);
        let cps = scenarios::new_connections_with(if quick { 200_000 } else { 1_000_000 }, sync);
        let on = if sync { "on" } else { "off" };
        row(big, inbound, &format!("NAT established, client -> real server, sync {on}"));
        row(big, outbound.unwrap_or(f64::NAN), &format!("NAT established, real server -> client, sync {on}"));
        println!("{:>10}  {:>9.1}  {:>8.2}  new connections, sync {on}", "", 1e9 / cps, cps / 1e6);
        sync_rows.push(
            serde_json::json!({"sync": sync, "nat_in_ns": inbound, "nat_out_ns": outbound, "new_conn_per_s": cps}),
        );
    }
    let n_new = if quick { 200_000 } else { 2_000_000 };
    let cps = scenarios::new_connections(n_new);
    println!(
        "{n_new:>10}  {:>9.1}  {:>8.2}  new connections (unique-tuple SYNs): {:.2} M conn/s",
        1e9 / cps,
        cps / 1e6,
        cps / 1e6
    );
    println!("\n{:>10}  {:>14}  connection table scale (resident memory / connections)", "conns", "bytes/conn");
    let mut bytes = Vec::new();
    let sizes: &[usize] = if quick { &[10_000, 100_000] } else { &[10_000, 100_000, 1_000_000, 10_000_000] };
    for &n in sizes {
        let b = std::env::current_exe()
            .and_then(|exe| std::process::Command::new(exe).args(["--bytes-per-conn", &n.to_string()]).output())
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        println!("{n:>10}  {b:>14.1}");
        bytes.push(serde_json::json!({"connections": n, "bytes_per_conn": b}));
    }
    let last_bytes = bytes.last().and_then(|b| b["bytes_per_conn"].as_f64()).unwrap_or(f64::NAN);
    serde_json::json!({
        "machine": machine(),
        "quick": quick,
        "flows": big,
        "nat_est_ns_per_pkt": nat.0,
        "nat_est_reply_ns_per_pkt": nat.1,
        "nat6_est_ns_per_pkt": nat6_in,
        "nat6_est_reply_ns_per_pkt": nat6_out,
        "nat6_to_nat_ratio": nat6_ratio,
        "nat_est_steered_ns_per_pkt": steered_in,
        "nat_est_steered_reply_ns_per_pkt": steered_out,
        "dr_est_ns_per_pkt": dr,
        "tun_est_ns_per_pkt": tun,
        "dr_est_random_order_ns_per_pkt": dr_random,
        "memory_latency_ns": mem_latency,
        "memory_random_line_ns": mem_line,
        "new_conn_per_s": cps,
        "bytes_per_conn": last_bytes,
        "bytes_per_conn_at": sizes.last(),
        "rate_by_flows": curve,
        "sync_on_off": sync_rows,
        "table_scale": bytes,
        // perf/peer fills it in (the nat lab under wrk, through rvsd and nftables).
        "kernel_peer_ratio": serde_json::Value::Null,
    })
}

/// CPU model and core count, for the record.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpu}, {} cores", std::thread::available_parallelism().map_or(0, usize::from))
}

/// The fixtures' paths one by one (few flows: the table stays in cache).
fn micro(packets: u64) {
    let mut p = fixtures::pipeline();
    let mut timed: Vec<(String, u16, Vec<u8>)> = vec![("ARP request for the VIP -> reply".into(), 0, arp_request())];
    for c in fixtures::cases() {
        let mut buf = c.input.clone();
        let v = p.process(c.in_port, &mut buf, 1_000);
        if matches!(v, Verdict::Transmit(_)) && !c.description.contains("frag-needed, MTU") {
            timed.push((c.description.to_string(), c.in_port, c.input));
        }
    }
    println!("rvs pipeline, one core, {packets} packets per case (cargo run --release -p perf)");
    println!("{:>9}  {:>8}  case", "ns/pkt", "Mpps");
    let mut buf = Vec::with_capacity(2048);
    for (name, port, frame) in &timed {
        let t0 = Instant::now();
        for i in 0..packets {
            // Each packet starts from the received bytes, as a fresh mbuf would.
            buf.clear();
            buf.extend_from_slice(frame);
            std::hint::black_box(p.process(*port, std::hint::black_box(&mut buf), 1_000 + i / 1_000_000));
        }
        let ns = t0.elapsed().as_nanos() as f64 / packets as f64;
        println!("{ns:>9.1}  {:>8.2}  {name}", 1e3 / ns);
    }
}
