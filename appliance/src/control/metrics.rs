//! Prometheus metrics, through the `metrics` facade and
//! `metrics-exporter-prometheus`'s recorder. The control lcore gathers the figures
//! (workers only write their own single-writer counters; the control lcore reads
//! them) and serves the text format on `/metrics` from its loop (`http`).
//!
//! Names: `rvs_` prefix, base units, `_total` for counters; labels `service`
//! (`tcp/198.18.0.10:80`, `udp/...`, `fwm/1`), `dest` (`198.18.1.11:80`), `lcore`,
//! `port`, `reason`. Counters count since rvsd started: `ipvsadm -Z` zeroes the
//! listing, not the exported series (Prometheus handles resets, but the exporter's
//! counters only go up).

use super::protocol::{ServiceInfo, ServiceKey, StatsInfo};
use crate::ipvs::Protocol;
use crate::pipeline::counters::{CountersSnapshot, DropReason};
use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};

/// One worker's figures.
#[derive(Debug, Clone, Default)]
pub struct LcoreFigures {
    pub lcore: u32,
    pub counters: CountersSnapshot,
    /// Share of the last period spent on packets, 0..=1.
    pub busy_ratio: f64,
    /// The worker's longest loop iteration since the previous scrape, in seconds:
    /// the longest its RX queues went unpolled.
    pub longest_loop_s: f64,
    /// The longest the control plane's work held the worker in one iteration since
    /// the previous scrape, in seconds (part of the loop above).
    pub longest_control_s: f64,
    pub table_capacity: u64,
}

/// One port's figures (DPDK ethdev stats and link).
#[derive(Debug, Clone, Default)]
pub struct PortFigures {
    pub name: String,
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
    pub link_up: bool,
    /// Link state changes rvsd saw (down and up each count).
    pub link_changes: u64,
}

/// Everything one scrape exports.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub services: Vec<ServiceInfo>,
    pub lcores: Vec<LcoreFigures>,
    pub ports: Vec<PortFigures>,
    pub mempool_in_use: u64,
    pub mempool_capacity: u64,
    pub config_generation: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// Checked real servers: (service, address, port, up).
    pub health: Vec<(ServiceKey, std::net::IpAddr, u16, bool)>,
    /// VRRP instances: (name, state, priority, counters), and the advertisements
    /// no instance was responsible for, by reason.
    pub vrrp: Vec<(String, super::vrrp::State, u8, super::vrrp::InstanceCounters)>,
    pub vrrp_unattributed: [u64; super::vrrp::DropReason::ALL.len()],
    /// The connection sync daemon's counters, while one runs.
    pub sync: Option<super::sync::SyncCounters>,
}

pub fn service_label(r: ServiceKey) -> String {
    match r {
        ServiceKey::Addr { proto: Protocol::Tcp, addr, port } => format!("tcp/{addr}:{port}"),
        ServiceKey::Addr { proto: Protocol::Udp, addr, port } => format!("udp/{addr}:{port}"),
        ServiceKey::Addr6 { proto: Protocol::Tcp, addr, port } => format!("tcp/[{addr}]:{port}"),
        ServiceKey::Addr6 { proto: Protocol::Udp, addr, port } => format!("udp/[{addr}]:{port}"),
        ServiceKey::Fwmark(mark) => format!("fwm/{mark}"),
        ServiceKey::Fwmark6(mark) => format!("fwm6/{mark}"),
    }
}

/// Help texts and units, once per process.
pub fn describe() {
    describe_counter!("rvs_sync_messages_sent_total", "Connection sync messages sent (master)");
    describe_counter!("rvs_sync_connections_sent_total", "Connections and templates sent in sync messages");
    describe_counter!("rvs_sync_send_errors_total", "Sync messages the socket refused");
    describe_counter!("rvs_sync_messages_received_total", "Sync messages received (backup)");
    describe_counter!("rvs_sync_connections_received_total", "Connections and templates received");
    describe_counter!("rvs_sync_own_messages_total", "This director's own sync messages seen again (ignored)");
    describe_counter!("rvs_sync_worker_ring_full_total", "Received entries no worker ring had room for");
    describe_counter!("rvs_sync_dropped_total", "Sync messages dropped or entries skipped, by reason");
    describe_counter!("rvs_lcore_sync_queued_total", "Connections the worker queued for sync");
    describe_counter!("rvs_lcore_sync_ring_full_total", "Connections not queued for sync: the ring was full");
    describe_counter!("rvs_lcore_sync_applied_total", "Synced connections entered into the worker's table");
    describe_counter!(
        "rvs_lcore_sync_refused_total",
        "Synced connections refused (no such service or real server, table full)"
    );
    describe_gauge!("rvs_vrrp_state", "VRRP instance state: 1 BACKUP, 2 MASTER, 3 FAULT");
    describe_gauge!("rvs_vrrp_priority", "VRRP instance priority now (tracked scripts' weights included)");
    describe_counter!("rvs_vrrp_transitions_total", "VRRP state changes of the instance");
    describe_counter!("rvs_vrrp_became_master_total", "Times the instance became MASTER");
    describe_counter!("rvs_vrrp_adverts_sent_total", "VRRP advertisements sent");
    describe_counter!("rvs_vrrp_adverts_received_total", "VRRP advertisements received and accepted");
    describe_counter!("rvs_vrrp_priority_zero_sent_total", "Priority-0 advertisements sent (stopping as master)");
    describe_counter!("rvs_vrrp_priority_zero_received_total", "Priority-0 advertisements received");
    describe_counter!(
        "rvs_vrrp_adverts_dropped_total",
        "VRRP advertisements dropped, by reason (instance empty: no instance has its VRID)"
    );
    describe_counter!("rvs_service_connections_total", "Connections scheduled to the virtual service");
    describe_counter!("rvs_service_in_packets_total", "Packets from clients to the service's real servers");
    describe_counter!("rvs_service_out_packets_total", "Packets from the service's real servers to clients (NAT)");
    describe_counter!("rvs_service_in_bytes_total", Unit::Bytes, "IP bytes from clients");
    describe_counter!("rvs_service_out_bytes_total", Unit::Bytes, "IP bytes to clients (NAT)");
    describe_counter!("rvs_dest_connections_total", "Connections scheduled to the real server");
    describe_counter!("rvs_dest_in_packets_total", "Packets to the real server");
    describe_counter!("rvs_dest_out_packets_total", "Packets from the real server (NAT)");
    describe_counter!("rvs_dest_in_bytes_total", Unit::Bytes, "IP bytes to the real server");
    describe_counter!("rvs_dest_out_bytes_total", Unit::Bytes, "IP bytes from the real server (NAT)");
    describe_gauge!("rvs_dest_active_connections", "ActiveConn, as ipvsadm lists it");
    describe_gauge!("rvs_dest_inactive_connections", "InActConn, as ipvsadm lists it");
    describe_gauge!("rvs_dest_persistent_connections", "Persistence templates pointing at the real server");
    describe_gauge!("rvs_dest_weight", "The real server's weight (0: quiesced)");
    describe_gauge!("rvs_dest_healthy", "1 when the real server passes its health check, 0 when it fails");
    describe_counter!("rvs_lcore_rx_packets_total", "Packets received by the worker");
    describe_counter!("rvs_lcore_rx_bursts_total", "RX bursts that brought packets (packets / bursts = average burst)");
    describe_counter!("rvs_lcore_tx_packets_total", "Packets sent by the worker");
    describe_counter!("rvs_lcore_drops_total", "Packets dropped by the worker, by reason");
    describe_counter!("rvs_lcore_redirected_packets_total", "Packets handed to the worker owning their connection");
    describe_counter!("rvs_lcore_connections_created_total", "Connections the worker entered in its table");
    describe_counter!(
        "rvs_lcore_mbuf_alloc_failures_total",
        "Frames the worker could not make for want of buffers (mempool exhausted)"
    );
    describe_counter!(
        "rvs_lcore_connections_evicted_total",
        "Half-open connections evicted from a full table to make room (SYN flood defence)"
    );
    describe_gauge!("rvs_lcore_busy_ratio", "Share of the worker's cycles spent on packets");
    describe_gauge!(
        "rvs_lcore_longest_loop_seconds",
        Unit::Seconds,
        "The worker's longest loop iteration since the previous scrape: the longest its RX queues went unpolled"
    );
    describe_gauge!(
        "rvs_lcore_longest_control_seconds",
        Unit::Seconds,
        "The longest the control plane's work (configuration, a request) held the worker in one loop iteration since the previous scrape"
    );
    describe_gauge!("rvs_lcore_connections", "Entries in the worker's connection table");
    describe_gauge!("rvs_lcore_connection_capacity", "Capacity of the worker's connection table");
    describe_counter!("rvs_port_rx_packets_total", "Packets received by the port (ethdev)");
    describe_counter!("rvs_port_tx_packets_total", "Packets sent by the port (ethdev)");
    describe_counter!("rvs_port_rx_bytes_total", Unit::Bytes, "Bytes received by the port");
    describe_counter!("rvs_port_tx_bytes_total", Unit::Bytes, "Bytes sent by the port");
    describe_counter!("rvs_port_rx_missed_total", "Packets the port dropped for lack of RX descriptors (imissed)");
    describe_counter!("rvs_port_rx_errors_total", "Erroneous received packets");
    describe_counter!("rvs_port_tx_errors_total", "Failed transmissions");
    describe_counter!("rvs_port_rx_nombuf_total", "RX mbuf allocation failures");
    describe_gauge!("rvs_port_link_up", "1 when the port's link is up");
    describe_counter!("rvs_port_link_changes_total", "Link state changes (down or up) seen by the control lcore");
    describe_gauge!("rvs_mempool_in_use_mbufs", "Packet buffers taken from the pool");
    describe_gauge!("rvs_mempool_capacity_mbufs", "Packet buffers in the pool");
    describe_gauge!("rvs_config_generation", "Configuration changes applied since start");
    describe_counter!("rvs_config_reloads_total", "Configuration reloads, by result");
}

fn stats(prefix: &str, labels: &[(&'static str, String)], s: &StatsInfo) {
    counter!(format!("{prefix}_connections_total"), labels).absolute(s.conns);
    counter!(format!("{prefix}_in_packets_total"), labels).absolute(s.inpkts);
    counter!(format!("{prefix}_out_packets_total"), labels).absolute(s.outpkts);
    counter!(format!("{prefix}_in_bytes_total"), labels).absolute(s.inbytes);
    counter!(format!("{prefix}_out_bytes_total"), labels).absolute(s.outbytes);
}

/// Sets every metric from the figures.
/// The VRRP series: state (1 BACKUP, 2 MASTER, 3 FAULT, keepalived's SNMP values),
/// priority, transitions, advertisements sent, received and dropped by reason.
fn record_vrrp(f: &Figures) {
    use super::vrrp::DropReason as R;
    for (name, state, prio, c) in &f.vrrp {
        let l = [("instance", name.clone())];
        gauge!("rvs_vrrp_state", &l).set(f64::from(*state as u8));
        gauge!("rvs_vrrp_priority", &l).set(f64::from(*prio));
        counter!("rvs_vrrp_transitions_total", &l).absolute(c.transitions);
        counter!("rvs_vrrp_became_master_total", &l).absolute(c.became_master);
        counter!("rvs_vrrp_adverts_sent_total", &l).absolute(c.sent);
        counter!("rvs_vrrp_adverts_received_total", &l).absolute(c.received);
        counter!("rvs_vrrp_priority_zero_sent_total", &l).absolute(c.priority_zero_sent);
        counter!("rvs_vrrp_priority_zero_received_total", &l).absolute(c.priority_zero_received);
        for r in R::ALL {
            let labels = [("instance", name.clone()), ("reason", r.label().to_string())];
            counter!("rvs_vrrp_adverts_dropped_total", &labels).absolute(c.dropped[r as usize]);
        }
    }
    if !f.vrrp.is_empty() {
        for r in R::ALL {
            let labels = [("instance", String::new()), ("reason", r.label().to_string())];
            counter!("rvs_vrrp_adverts_dropped_total", &labels).absolute(f.vrrp_unattributed[r as usize]);
        }
    }
}

/// The sync daemon's series: messages and connections sent and received,
/// dropped by reason, and what the workers queued and entered.
fn record_sync(f: &Figures) {
    use crate::ipvs::sync::Fault;
    if let Some(s) = &f.sync {
        counter!("rvs_sync_messages_sent_total").absolute(s.messages_sent);
        counter!("rvs_sync_connections_sent_total").absolute(s.conns_sent);
        counter!("rvs_sync_send_errors_total").absolute(s.send_errors);
        counter!("rvs_sync_messages_received_total").absolute(s.messages_received);
        counter!("rvs_sync_connections_received_total").absolute(s.conns_received);
        counter!("rvs_sync_own_messages_total").absolute(s.own);
        counter!("rvs_sync_worker_ring_full_total").absolute(s.ring_full);
        for (i, r) in Fault::ALL.iter().enumerate() {
            counter!("rvs_sync_dropped_total", "reason" => r.label()).absolute(s.dropped[i]);
        }
    }
    for l in &f.lcores {
        let lcore = [("lcore", l.lcore.to_string())];
        let c = &l.counters;
        counter!("rvs_lcore_sync_queued_total", &lcore).absolute(c.sync_queued);
        counter!("rvs_lcore_sync_ring_full_total", &lcore).absolute(c.sync_ring_full);
        counter!("rvs_lcore_sync_applied_total", &lcore).absolute(c.sync_applied);
        counter!("rvs_lcore_sync_refused_total", &lcore).absolute(c.sync_refused);
    }
}

pub fn record(f: &Figures) {
    record_vrrp(f);
    record_sync(f);
    for s in &f.services {
        let service = service_label(s.spec.service);
        stats("rvs_service", &[("service", service.clone())], &s.stats);
        for d in &s.dests {
            let labels = [("service", service.clone()), ("dest", super::listing::addr_port(d.addr, d.port))];
            stats("rvs_dest", &labels, &d.stats);
            gauge!("rvs_dest_active_connections", &labels).set(f64::from(d.active));
            gauge!("rvs_dest_inactive_connections", &labels).set(f64::from(d.inactive));
            gauge!("rvs_dest_persistent_connections", &labels).set(f64::from(d.persist));
            gauge!("rvs_dest_weight", &labels).set(f64::from(d.weight));
        }
    }
    for l in &f.lcores {
        let lcore = [("lcore", l.lcore.to_string())];
        let c = &l.counters;
        counter!("rvs_lcore_rx_packets_total", &lcore).absolute(c.rx_packets);
        counter!("rvs_lcore_rx_bursts_total", &lcore).absolute(c.rx_bursts);
        counter!("rvs_lcore_tx_packets_total", &lcore).absolute(c.tx_packets);
        counter!("rvs_lcore_redirected_packets_total", &lcore).absolute(c.redirected);
        counter!("rvs_lcore_connections_created_total", &lcore).absolute(c.conns_created);
        counter!("rvs_lcore_connections_evicted_total", &lcore).absolute(c.conns_evicted);
        counter!("rvs_lcore_mbuf_alloc_failures_total", &lcore).absolute(c.alloc_failed);
        for r in DropReason::ALL {
            let labels = [("lcore", l.lcore.to_string()), ("reason", r.name().to_string())];
            counter!("rvs_lcore_drops_total", &labels).absolute(c.drops[r as usize]);
        }
        gauge!("rvs_lcore_busy_ratio", &lcore).set(l.busy_ratio);
        gauge!("rvs_lcore_longest_loop_seconds", &lcore).set(l.longest_loop_s);
        gauge!("rvs_lcore_longest_control_seconds", &lcore).set(l.longest_control_s);
        gauge!("rvs_lcore_connections", &lcore).set(c.conn_table_len as f64);
        gauge!("rvs_lcore_connection_capacity", &lcore).set(l.table_capacity as f64);
    }
    for p in &f.ports {
        let port = [("port", p.name.clone())];
        counter!("rvs_port_rx_packets_total", &port).absolute(p.ipackets);
        counter!("rvs_port_tx_packets_total", &port).absolute(p.opackets);
        counter!("rvs_port_rx_bytes_total", &port).absolute(p.ibytes);
        counter!("rvs_port_tx_bytes_total", &port).absolute(p.obytes);
        counter!("rvs_port_rx_missed_total", &port).absolute(p.imissed);
        counter!("rvs_port_rx_errors_total", &port).absolute(p.ierrors);
        counter!("rvs_port_tx_errors_total", &port).absolute(p.oerrors);
        counter!("rvs_port_rx_nombuf_total", &port).absolute(p.rx_nombuf);
        gauge!("rvs_port_link_up", &port).set(if p.link_up { 1.0 } else { 0.0 });
        counter!("rvs_port_link_changes_total", &port).absolute(p.link_changes);
    }
    for (service, addr, port, up) in &f.health {
        let labels = [("service", service_label(*service)), ("dest", super::listing::addr_port(*addr, *port))];
        gauge!("rvs_dest_healthy", &labels).set(if *up { 1.0 } else { 0.0 });
    }
    gauge!("rvs_mempool_in_use_mbufs").set(f.mempool_in_use as f64);
    gauge!("rvs_mempool_capacity_mbufs").set(f.mempool_capacity as f64);
    gauge!("rvs_config_generation").set(f.config_generation as f64);
    counter!("rvs_config_reloads_total", "result" => "ok").absolute(f.reloads_ok);
    counter!("rvs_config_reloads_total", "result" => "failed").absolute(f.reloads_failed);
}

#[cfg(test)]
mod tests {
    use super::super::protocol::{DestInfo, ServiceSpec};
    use super::*;
    use crate::ipvs::dest::FwdMethod;
    use metrics_exporter_prometheus::PrometheusBuilder;
    use std::net::Ipv4Addr;

    #[test]
    fn exported_text_has_the_names_labels_and_values() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let figures = Figures {
            services: vec![ServiceInfo {
                spec: ServiceSpec {
                    service: ServiceKey::Addr { proto: Protocol::Tcp, addr: Ipv4Addr::new(198, 18, 0, 10), port: 80 },
                    scheduler: "rr".into(),
                    flags: vec![],
                    persistent: None,
                    netmask: None,
                    prefix6: None,
                },
                stats: StatsInfo { conns: 6, inpkts: 30, outpkts: 24, inbytes: 1600, outbytes: 2400 },
                rate: Default::default(),
                dests: vec![DestInfo {
                    addr: std::net::IpAddr::from(Ipv4Addr::new(198, 18, 1, 11)),
                    port: 80,
                    forward: FwdMethod::Masq,
                    weight: 3,
                    upper: 0,
                    lower: 0,
                    active: 1,
                    inactive: 2,
                    persist: 0,
                    stats: StatsInfo { conns: 3, ..Default::default() },
                    rate: Default::default(),
                }],
            }],
            lcores: vec![LcoreFigures {
                lcore: 1,
                busy_ratio: 0.25,
                longest_loop_s: 0.000_125,
                table_capacity: 4096,
                ..Default::default()
            }],
            ports: vec![PortFigures {
                name: "net_af_packet0".into(),
                ipackets: 9,
                link_up: true,
                link_changes: 0,
                ..Default::default()
            }],
            mempool_in_use: 512,
            mempool_capacity: 8191,
            config_generation: 2,
            reloads_ok: 1,
            reloads_failed: 0,
            health: vec![(
                ServiceKey::Addr { proto: Protocol::Tcp, addr: Ipv4Addr::new(198, 18, 0, 10), port: 80 },
                std::net::IpAddr::from(Ipv4Addr::new(198, 18, 1, 12)),
                80,
                false,
            )],
            vrrp: vec![(
                "VI_1".into(),
                crate::control::vrrp::State::Master,
                150,
                crate::control::vrrp::InstanceCounters {
                    sent: 7,
                    dropped: [0, 0, 0, 0, 0, 2, 0, 0],
                    ..Default::default()
                },
            )],
            vrrp_unattributed: [0, 0, 0, 0, 1, 0, 0, 0],
            sync: Some(crate::control::sync::SyncCounters { conns_sent: 40, ..Default::default() }),
        };
        metrics::with_local_recorder(&recorder, || {
            describe();
            record(&figures);
        });
        let text = handle.render();
        for line in [
            "rvs_service_connections_total{service=\"tcp/198.18.0.10:80\"} 6",
            "rvs_service_out_bytes_total{service=\"tcp/198.18.0.10:80\"} 2400",
            "rvs_dest_connections_total{service=\"tcp/198.18.0.10:80\",dest=\"198.18.1.11:80\"} 3",
            "rvs_dest_weight{service=\"tcp/198.18.0.10:80\",dest=\"198.18.1.11:80\"} 3",
            "rvs_dest_inactive_connections{service=\"tcp/198.18.0.10:80\",dest=\"198.18.1.11:80\"} 2",
            "rvs_lcore_drops_total{lcore=\"1\",reason=\"not_syn\"} 0",
            "rvs_lcore_busy_ratio{lcore=\"1\"} 0.25",
            "rvs_lcore_longest_loop_seconds{lcore=\"1\"} 0.000125",
            "rvs_port_rx_packets_total{port=\"net_af_packet0\"} 9",
            "rvs_port_link_up{port=\"net_af_packet0\"} 1",
            "rvs_mempool_capacity_mbufs 8191",
            "rvs_config_reloads_total{result=\"ok\"} 1",
            "rvs_dest_healthy{service=\"tcp/198.18.0.10:80\",dest=\"198.18.1.12:80\"} 0",
            "rvs_vrrp_state{instance=\"VI_1\"} 2",
            "rvs_sync_connections_sent_total 40",
            "rvs_sync_dropped_total{reason=\"foreign_syncid\"} 0",
            "rvs_vrrp_adverts_sent_total{instance=\"VI_1\"} 7",
            "rvs_vrrp_adverts_dropped_total{instance=\"VI_1\",reason=\"auth_mismatch\"} 2",
            "rvs_vrrp_adverts_dropped_total{instance=\"\",reason=\"unknown_vrid\"} 1",
            "# TYPE rvs_dest_connections_total counter",
            "# HELP rvs_dest_weight The real server's weight (0: quiesced)",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}

#[cfg(test)]
mod dashboard {
    /// conf/grafana/rvs.json parses, and every query names metrics rvsd exports.
    #[test]
    fn grafana_dashboard_queries_exported_metrics() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/grafana/rvs.json");
        let dash: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let source = include_str!("metrics.rs");
        let panels = dash["panels"].as_array().unwrap();
        assert!(panels.len() >= 10);
        let mut seen = 0;
        for p in panels {
            for t in p["targets"].as_array().unwrap() {
                let expr = t["expr"].as_str().unwrap();
                for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if word.starts_with("rvs_") {
                        assert!(source.contains(&format!("\"{word}\"")), "{word} is not exported");
                        seen += 1;
                    }
                }
            }
        }
        assert!(seen >= 20);
    }
}
