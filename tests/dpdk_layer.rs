//! The safe DPDK layer against real DPDK, without NICs (capsule's way): EAL once per
//! test binary with `--no-huge` and a `net_ring` vdev, whose TX rings are its RX rings,
//! so what a TX burst sends an RX burst reads back.

mod common;

use appliance::dpdk::eal::Eal;
use appliance::dpdk::lcore;
use appliance::dpdk::mbuf::{Mbuf, RxBurst, TxBurst, BURST};
use appliance::dpdk::mempool::Mempool;
use appliance::dpdk::port::{rss, Port, PortSetup};
use appliance::pipeline::burst::{Burst, Fate, Source};
use appliance::pipeline::counters::Counters;
use appliance::pipeline::neigh::NeighbourTable;
use appliance::pipeline::{Pipeline, PortView, Verdict};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

const POOL: u32 = 2047;

fn frame(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| tag.wrapping_add(u8::try_from(i % 256).unwrap_or(0))).collect()
}

fn mbuf_with(pool: &Mempool, bytes: &[u8]) -> Mbuf {
    let mut m = Mbuf::alloc(pool).expect("mbuf");
    m.append(u16::try_from(bytes.len()).unwrap()).expect("tailroom").copy_from_slice(bytes);
    m
}

#[test]
fn dpdk_layer_on_a_ring_vdev() {
    common::require_root();
    let eal = Eal::init(&[
        "dpdk_layer_test",
        "-l",
        "0,1",
        "--no-huge",
        "-m",
        "128",
        "--no-shconf",
        "--no-pci",
        "--no-telemetry",
        "--vdev=net_ring0",
    ])
    .expect("EAL init");
    assert!(Eal::init(&["again"]).is_err(), "EAL initialises once per process");
    assert!(appliance::dpdk::version().starts_with("DPDK 2"), "{}", appliance::dpdk::version());

    let pool = Mempool::new("test_pool", POOL, 0, 2176, -1).expect("mempool");
    assert_eq!(pool.available(), POOL);

    // Mbuf: append, prepend, adj, trim; freed on Drop.
    {
        let mut m = mbuf_with(&pool, &frame(1, 60));
        assert_eq!((m.data_len(), m.pkt_len()), (60, 60));
        assert!(m.is_contiguous());
        m.prepend(20).expect("headroom").copy_from_slice(&[0xee; 20]);
        assert_eq!(m.data_len(), 80);
        assert_eq!(&m.data()[..20], &[0xee; 20]);
        assert_eq!(&m.data()[20..], &frame(1, 60)[..]);
        assert!(m.adj(20));
        assert_eq!(m.data(), &frame(1, 60)[..]);
        assert!(m.trim(10));
        assert_eq!(m.data(), &frame(1, 50)[..]);
        assert!(!m.adj(51), "cannot remove more than the packet holds");
        assert!(m.prepend(4096).is_none(), "headroom is finite");
        m.data_mut()[0] = 0x42;
        assert_eq!(m.data()[0], 0x42);
        assert_eq!(pool.in_use(), 1);
    }
    assert_eq!(pool.available(), POOL, "Drop gave the mbuf back");

    // Ports.
    assert!(Port::by_name("net_ring9").is_err());
    assert_eq!(Port::all_names(), vec!["net_ring0".to_string()]);
    let port = Port::by_name("net_ring0").expect("port");
    let info = port.info().expect("info");
    assert_eq!(info.driver, "net_ring");
    let setup = PortSetup {
        queues: 1,
        rx_descriptors: 256,
        tx_descriptors: 256,
        mtu: 1500,
        rss_hf: rss::IPV4_ALL,
        rss_key: None,
        promiscuous: true,
    };
    let mut conf = port.configure(&setup, &pool).expect("configure");
    assert_eq!(conf.rss_hf, 0, "one queue: no RSS");
    let too_many = PortSetup { queues: info.max_rx_queues.saturating_add(1), ..setup.clone() };
    assert!(Port::by_name("net_ring0").unwrap().configure(&too_many, &pool).is_err());
    port.start(true).expect("start");
    assert!(port.link().up);
    let mac = port.mac().expect("mac");
    let (mut rxq, mut txq) = (conf.rx.remove(0), conf.tx.remove(0));

    // TX then RX through the ring: same bytes back, ownership moved without leaks.
    let mut tx = TxBurst::default();
    for i in 0..5u8 {
        tx.push(mbuf_with(&pool, &frame(i, 64 + usize::from(i)))).expect("room");
    }
    assert_eq!(txq.flush(&mut tx), (5, 0));
    assert!(tx.is_empty());
    let mut rx = RxBurst::default();
    assert_eq!(rxq.rx(&mut rx), 5);
    assert_eq!(rx.len(), 5);
    for (i, m) in rx.by_ref().enumerate() {
        let i = u8::try_from(i).unwrap();
        assert_eq!(m.data(), &frame(i, 64 + usize::from(i))[..]);
    }
    // net_ring keeps no mbufs in its RX rings: every mbuf is back in the pool.
    assert_eq!(pool.in_use(), 0, "mbufs leaked through TX/RX");

    // A burst the NIC cannot take whole: the rest is freed and reported.
    let mut sent_total = 0;
    let mut freed_total = 0;
    for round in 0..200 {
        for _ in 0..BURST {
            let Some(m) = Mbuf::alloc(&pool) else { break };
            if tx.push(m).is_err() {
                break;
            }
        }
        let (sent, freed) = txq.flush(&mut tx);
        sent_total += sent;
        freed_total += freed;
        if freed > 0 {
            assert!(sent < BURST, "round {round}: freed {freed} with a full send");
            break;
        }
    }
    assert!(freed_total > 0, "the ring never filled ({sent_total} sent)");
    // Drain what the ring holds: everything comes back to the pool.
    let mut drained = 0;
    loop {
        let n = rxq.rx(&mut rx);
        if n == 0 {
            break;
        }
        drained += n;
    }
    rx.by_ref().for_each(drop);
    assert_eq!(drained, sent_total);
    assert_eq!(pool.in_use(), 0, "no mbuf leaked by the partial bursts");

    // send_keep (the generator's back-pressure): what the ring does not take stays
    // in the burst, in order, and goes out once the ring has room.
    let mut pushed = 0u32;
    let mut kept = 0;
    for _ in 0..200 {
        while !tx.is_full() {
            let mut m = Mbuf::alloc(&pool).expect("mbuf");
            m.append(4).expect("room").copy_from_slice(&pushed.to_be_bytes());
            pushed += 1;
            tx.push(m).expect("room");
        }
        txq.send_keep(&mut tx);
        if !tx.is_empty() {
            kept = tx.len();
            break;
        }
    }
    assert!(kept > 0, "the ring never filled");
    let mut seen = 0u32;
    while seen < pushed {
        txq.send_keep(&mut tx);
        assert!(rxq.rx(&mut rx) > 0 || !tx.is_empty(), "stalled at {seen} of {pushed}");
        for m in rx.by_ref() {
            assert_eq!(m.data(), &seen.to_be_bytes()[..], "order kept across retries");
            seen += 1;
        }
    }
    assert!(tx.is_empty());
    assert_eq!(pool.in_use(), 0, "no mbuf leaked by send_keep");

    // The pipeline on real mbufs, as the worker runs it (a burst): an ARP request in,
    // the reply out through the ring.
    let counters = Arc::new(Counters::default());
    let view = PortView {
        mac,
        addresses: vec!["198.18.0.10/24".parse().unwrap()],
        addresses6: vec![],
        mtu: 1500,
        host: Default::default(),
    };
    let mut pipeline = Pipeline::new(vec![view], NeighbourTable::with_capacity(16), counters);
    let mut req = vec![0xffu8; 6];
    req.extend_from_slice(&[0x02, 0xc1, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    req.extend_from_slice(&[0x02, 0xc1, 0, 0, 0, 1, 198, 18, 0, 100, 0, 0, 0, 0, 0, 0, 198, 18, 0, 10]);
    req.resize(60, 0);
    let mut burst = Burst::default();
    burst.push(mbuf_with(&pool, &req), 0).unwrap();
    let mut fates = [Fate::Redirect(0); BURST];
    pipeline.run_burst(burst.packets_mut(), Source::Wire, 0, &mut fates);
    assert_eq!(fates[0], Fate::Verdict(Verdict::Transmit(0)));
    let (m, _) = burst.drain().next().unwrap();
    tx.push(m).unwrap();
    assert_eq!(txq.flush(&mut tx), (1, 0));
    assert_eq!(rxq.rx(&mut rx), 1);
    let reply = rx.next().unwrap();
    assert_eq!(&reply.data()[6..12], &mac.0, "reply from the port's MAC");
    assert_eq!(&reply.data()[20..22], &[0, 2], "ARP reply");
    drop(reply);

    let stats = port.stats();
    assert!(stats.opackets >= 6 && stats.ipackets >= 6, "{stats:?}");

    // Mempool exhaustion: allocation fails (None, never a crash), the port keeps
    // passing packets from other buffers, and once buffers come back allocation
    // works again.
    {
        let small = Mempool::new("test_small", 63, 0, 2176, -1).expect("small mempool");
        let taken: Vec<Mbuf> = std::iter::from_fn(|| Mbuf::alloc(&small)).collect();
        assert_eq!(taken.len(), 63);
        assert_eq!(small.available(), 0);
        assert!(Mbuf::alloc(&small).is_none(), "an exhausted pool gives nothing");
        let mut tx = TxBurst::default();
        tx.push(mbuf_with(&pool, &frame(9, 64))).expect("room");
        assert_eq!(txq.flush(&mut tx), (1, 0));
        let mut rx = RxBurst::default();
        assert_eq!(rxq.rx(&mut rx), 1, "traffic from another pool still flows");
        rx.by_ref().for_each(drop);
        drop(taken);
        assert_eq!(small.available(), 63, "every buffer came back");
        assert!(Mbuf::alloc(&small).is_some(), "allocation recovers");
    }

    // A job on the worker lcore.
    let ran = Arc::new(AtomicU32::new(u32::MAX));
    let seen = Arc::clone(&ran);
    lcore::launch(1, move || {
        seen.store(lcore::current(), Ordering::SeqCst);
        0
    })
    .expect("launch");
    lcore::wait_all();
    assert_eq!(ran.load(Ordering::SeqCst), 1, "ran on lcore 1");
    assert!(lcore::launch(5, || 0).is_err(), "lcore 5 is not enabled");
    assert!(lcore::tsc_hz() > 0);

    port.stop().expect("stop");
    port.close().expect("close");
    drop(pool);
    drop(eal);
}
