//! EAL's memory-segment descriptors reach DPDK's libraries as duplicates
//! (dpdk-sys/memseg_fd.c): a user that closes the one it was given leaves EAL's
//! open. DPDK 22.11's memif, as a zero-copy client, closes the one it is given;
//! with EAL's own, a second zero-copy port handed its peer a closed descriptor.
//! EAL once in this test binary, in hugepages with single-file segments (what a
//! zero-copy memif port runs with).

mod common;

use appliance::dpdk::eal::Eal;
use appliance::dpdk::mbuf::Mbuf;
use appliance::dpdk::mempool::Mempool;

#[test]
fn a_memseg_descriptor_its_user_closes_leaves_eal_s_own_open() {
    common::require_root();
    let eal = Eal::init(&[
        "memseg_fd_test",
        "-l",
        "0",
        "--in-memory",
        "--single-file-segments",
        "-m",
        "64",
        "--no-pci",
        "--no-telemetry",
    ])
    .expect("EAL in hugepages (scripts/setup reserves them)");
    let pool = Mempool::new("memseg_pool", 255, 0, 2176, -1).expect("mempool");
    let m = Mbuf::alloc(&pool).expect("mbuf");
    let at = m.data().as_ptr();
    let first = eal.memseg_fd(at).expect("hugepage memory has a descriptor");
    let size = std::fs::File::from(first.try_clone().expect("dup")).metadata().expect("fstat").len();
    // Closed by its user, as memif closes the one it is handed.
    drop(first);
    let second = eal.memseg_fd(at).expect("asked again");
    let meta = std::fs::File::from(second).metadata();
    assert!(meta.is_ok(), "EAL's descriptor was closed under it: {meta:?}");
    assert_eq!(meta.map(|m| m.len()).ok(), Some(size), "the same segment file");
    drop(m);
    drop(pool);
}
