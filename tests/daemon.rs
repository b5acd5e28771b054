//! The daemon started in-process through its library API (`appliance::daemon`), as a
//! test or a benchmark can: a configuration on a net_ring vdev brought up, a request
//! answered on its control socket while `Running::wait` runs the control loop, and a
//! stop through the flag a signal handler would set.

mod common;

use appliance::control::config;
use appliance::control::protocol::{Request, Response};
use appliance::control::server::request;
use appliance::daemon::{Daemon, StartError};
use common::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[test]
fn the_daemon_starts_serves_and_stops_in_process() {
    require_root();
    let id = unique_id("i");
    let sock = socket_path(&id);
    let dir = scratch_dir("daemon", &id);
    let path = dir.join("rvsd.toml");
    let rest = format!(
        "\n[workers]\nlcores = [1]\nidle_sleep_us = 200\nconnections = 4096\n\n[control]\nsocket = \"{sock}\"\n\n\
         [metrics]\nenabled = false\n\n[[service]]\nprotocol = \"tcp\"\naddress = \"198.18.0.10\"\nport = 80\n\
         scheduler = \"wlc\"\n\n  [[service.dest]]\n  address = \"198.18.0.11\"\n  port = 80\n"
    );
    std::fs::write(&path, vdev_config(&format!("net_ring_{id}"), &rest)).unwrap();
    let cfg = config::load(&path).expect("valid configuration");

    let running = match Daemon::new().start(cfg, path.clone()) {
        Ok(r) => r,
        Err(StartError::Config(e)) => panic!("configuration: {e}"),
        Err(StartError::Dpdk(e)) => panic!("DPDK: {e}"),
    };
    assert!(std::path::Path::new(&sock).exists(), "the control socket is bound once started");
    let stop = running.stop_flag();
    // The control loop runs on this thread; a client asks from another, then stops it.
    let client = std::thread::spawn(move || {
        let answer = request(std::path::Path::new(&sock), &Request::List);
        stop.store(true, Ordering::Relaxed);
        answer
    });
    let t0 = Instant::now();
    running.wait();
    assert!(t0.elapsed() < Duration::from_secs(15), "stopped once asked");
    match client.join().unwrap() {
        Ok(Response::Services { services, conn_table_size }) => {
            assert_eq!(conn_table_size, 4096);
            assert_eq!(services.len(), 1);
            assert_eq!(services[0].spec.scheduler, "wlc");
            assert_eq!(services[0].dests.len(), 1, "{services:?}");
        }
        other => panic!("List answered {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
