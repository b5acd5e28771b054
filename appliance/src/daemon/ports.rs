//! The ports: every DPDK device of the configuration configured with one queue pair
//! per worker and started, and for each port with a `kernel` interface its exception
//! path (a net_tap device the kernel sees, given the port's MAC and its addresses
//! that are not VIPs).

use super::StartError;
use crate::control::config::{Config, ConfigError, PortSide};
use crate::dpdk::mempool::Mempool;
use crate::dpdk::port::{rss, Port, PortSetup, RxQueue, TxQueue};
use crate::net::rss::Input;
use crate::pipeline::{Host, PortView};
use std::net::Ipv4Addr;

/// The ports brought up, what the pipeline knows of them, and each worker's queue
/// pairs (indexed by worker, then by port index).
pub struct Ports {
    pub ports: Vec<Port>,
    pub views: Vec<PortView>,
    /// Ports whose NIC delivers each TCP/UDP packet to its owner (see
    /// `hardware_steers`).
    pub hardware_steered: Vec<u16>,
    pub queues: Vec<Vec<(RxQueue, TxQueue)>>,
}

/// Brings up the configuration's ports (then the kernel interfaces of the exception
/// path, which `host_vdevs` named: (port index, tap device, EAL argument)).
pub fn bring_up(cfg: &Config, pool: &Mempool, host_vdevs: &[(usize, String, String)]) -> Result<Ports, StartError> {
    let present = Port::all_names();
    for (i, name) in cfg.vdevs() {
        if !present.contains(&name) {
            return Err(ConfigError::new(
                format!("eal.args[{i}]"),
                format!("vdev \"{name}\" did not come up (see EAL's messages above; devices present: {present:?})"),
            )
            .into());
        }
    }
    let workers = u16::try_from(cfg.workers.lcores.len()).unwrap_or(u16::MAX);
    // The ports' Toeplitz key, alive for the process (drivers keep a pointer).
    let rss_key: &'static [u8; 40] = Box::leak(Box::new(cfg.workers.rss_key));
    let mut up = Ports {
        ports: Vec::new(),
        views: Vec::new(),
        hardware_steered: Vec::new(),
        queues: (0..workers).map(|_| Vec::new()).collect(),
    };
    for (i, pc) in cfg.ports.iter().enumerate() {
        let key = format!("port[{i}]");
        let port = Port::by_name(&pc.name).map_err(|_| {
            ConfigError::new(
                format!("{key}.name"),
                format!("no DPDK device named \"{}\" (devices present: {present:?})", pc.name),
            )
        })?;
        let info = port.info().map_err(|e| StartError::Dpdk(e.to_string()))?;
        let setup = PortSetup {
            queues: workers,
            rx_descriptors: cfg.workers.rx_descriptors,
            tx_descriptors: cfg.workers.tx_descriptors,
            mtu: pc.mtu,
            rss_hf: rss_fields(pc.side, cfg.workers.steering),
            rss_key: Some(rss_key),
            promiscuous: pc.promiscuous,
        };
        let configured = up.add(port, &setup, pool, &key)?;
        let hardware = hardware_steers(workers, setup.rss_hf, configured.0, &info);
        if hardware {
            up.hardware_steered.push(u16::try_from(i).unwrap_or(u16::MAX));
        }
        let port = &up.ports[i];
        let mac = port.mac().map_err(|e| StartError::Dpdk(e.to_string()))?;
        let link = port.link();
        tracing::info!(
            port = %port.name(),
            id = port.id(),
            driver = %info.driver,
            %mac,
            link_up = link.up,
            speed_mbps = link.speed_mbps,
            rss_hf = format!("{:#x}", configured.0),
            hardware_steering = hardware,
            tx_offloads = format!("{:#x}", configured.1),
            rx_offloads = format!("{:#x}", configured.2),
            tx_offload_capa = format!("{:#x}", info.tx_offload_capa),
            addresses = ?pc.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "port up"
        );
        up.views.push(PortView {
            mac,
            addresses: pc.addresses.clone(),
            addresses6: pc.addresses6.clone(),
            mtu: pc.mtu,
            host: Host::None,
        });
    }
    for (real, dev, _) in host_vdevs {
        up.kernel_interface(cfg, *real, dev, pool)?;
    }
    Ok(up)
}

impl Ports {
    /// Configures and starts `port`; its queue pairs go to the workers, in order.
    /// Returns the RSS fields and TX offloads it got.
    fn add(&mut self, port: Port, setup: &PortSetup, pool: &Mempool, key: &str) -> Result<(u64, u64, u64), StartError> {
        let configured = port.configure(setup, pool).map_err(|e| ConfigError::new(key, e.to_string()))?;
        port.start(setup.promiscuous).map_err(|e| ConfigError::new(key, e.to_string()))?;
        for (w, pair) in configured.rx.into_iter().zip(configured.tx).enumerate() {
            self.queues[w].push(pair);
        }
        self.ports.push(port);
        Ok((configured.rss_hf, configured.tx_offloads, configured.rx_offloads))
    }

    /// The exception path of port `real`: tap device `dev`, brought up in the kernel
    /// as the port's `kernel` interface.
    fn kernel_interface(&mut self, cfg: &Config, real: usize, dev: &str, pool: &Mempool) -> Result<(), StartError> {
        let pc = &cfg.ports[real];
        let key = format!("port[{real}].kernel");
        let ifname = pc.kernel.clone().unwrap_or_default();
        let tap = Port::by_name(dev).map_err(|e| ConfigError::new(&key, e.to_string()))?;
        let setup = PortSetup {
            queues: u16::try_from(cfg.workers.lcores.len()).unwrap_or(u16::MAX),
            rx_descriptors: 256,
            tx_descriptors: 256,
            mtu: pc.mtu,
            rss_hf: 0,
            rss_key: None,
            promiscuous: false,
        };
        self.add(tap, &setup, pool, &key)?;
        let tap_index = u16::try_from(self.views.len()).unwrap_or(u16::MAX);
        self.views[real].host = Host::Via(tap_index);
        let mac = self.views[real].mac;
        let real16 = u16::try_from(real).unwrap_or(u16::MAX);
        self.views.push(PortView {
            mac,
            addresses: Vec::new(),
            addresses6: vec![],
            mtu: pc.mtu,
            host: Host::For(real16),
        });
        let vips = vips(cfg);
        let mut cmds: Vec<Vec<String>> = vec![
            vec!["link".into(), "set".into(), "dev".into(), ifname.clone(), "address".into(), mac.to_string()],
            vec!["link".into(), "set".into(), "dev".into(), ifname.clone(), "up".into()],
        ];
        for a in pc.addresses.iter().filter(|a| !vips.contains(&a.address())) {
            cmds.push(vec!["addr".into(), "add".into(), a.to_string(), "dev".into(), ifname.clone()]);
        }
        // Hidden addresses are the kernel's (the data plane never announces them).
        for h in &pc.hidden {
            cmds.push(vec!["addr".into(), "add".into(), format!("{h}/32"), "dev".into(), ifname.clone()]);
        }
        // IPv6 only where the port has IPv6 addresses: the kernel holds them all
        // (its VIPs too: Local real servers answer there), no duplicate address
        // detection (the data plane answers for them on the wire), no
        // autoconfiguration from router advertisements.
        let sys6 = |knob: &str, v: &str| std::fs::write(format!("/proc/sys/net/ipv6/conf/{ifname}/{knob}"), v);
        if pc.addresses6.is_empty() {
            let _ = sys6("disable_ipv6", "1");
        } else {
            for (knob, v) in [("accept_dad", "0"), ("accept_ra", "0"), ("autoconf", "0"), ("disable_ipv6", "0")] {
                let _ = sys6(knob, v);
            }
            for a in &pc.addresses6 {
                cmds.push(["addr", "add", &a.to_string(), "dev", &ifname, "nodad"].map(str::to_string).to_vec());
            }
        }
        if !pc.hidden.is_empty() {
            // As on a DR real server: never announce a hidden address in the kernel's
            // own ARP requests, never answer for it.
            let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{ifname}/arp_announce"), "2");
            let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{ifname}/arp_ignore"), "1");
        }
        for c in cmds {
            ip(&c)?;
        }
        tracing::info!(port = %pc.name, kernel = %ifname, %mac, "exception path up");
        Ok(())
    }
}

/// Runs `ip ARGS`; its complaint is the error.
fn ip(args: &[String]) -> Result<(), StartError> {
    match std::process::Command::new("ip").args(args).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(StartError::Dpdk(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim()))),
        Err(e) => Err(StartError::Dpdk(format!("running ip: {e}"))),
    }
}

/// The configured services' virtual addresses.
fn vips(cfg: &Config) -> Vec<Ipv4Addr> {
    cfg.model.services.iter().filter_map(|(s, _)| s.service.addr()).collect()
}

/// The NIC steers every TCP/UDP packet to the worker the software would pick: it
/// granted every field asked for (one endpoint only), hashes with our 40-byte key,
/// and its redirection table (filled round-robin over the queues, DPDK's default)
/// maps hash values to queues as ours does (`RETA_SIZE` entries, modulo the
/// workers: the same for a power-of-two number of workers and a table size that is
/// a multiple of ours).
fn hardware_steers(workers: u16, asked: u64, granted: u64, info: &crate::dpdk::port::PortInfo) -> bool {
    workers > 1
        && workers.is_power_of_two()
        && asked & rss::ONLY_MASK != 0
        && granted == asked
        && u32::from(workers) <= crate::net::rss::RETA_SIZE
        && info.hash_key_size == 40
        && info.reta_size > 0
        && u32::from(info.reta_size) % crate::net::rss::RETA_SIZE == 0
}

/// RSS fields for a port: the client endpoint only (source on the client side,
/// destination on the server side) where the port faces one side, so a NIC that
/// honours the modifiers delivers every packet to the worker that owns it.
fn rss_fields(side: PortSide, input: Input) -> u64 {
    let (fields, l4_src, l4_dst) = match input {
        Input::ClientPort => (rss::IPV4_ALL, rss::L4_SRC_ONLY, rss::L4_DST_ONLY),
        Input::Client => (rss::IPV4_L3, 0, 0),
    };
    match side {
        PortSide::Client => fields | rss::L3_SRC_ONLY | l4_src,
        PortSide::Server => fields | rss::L3_DST_ONLY | l4_dst,
        PortSide::Both => fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpdk::port::PortInfo;

    fn nic(reta_size: u16, hash_key_size: u8) -> PortInfo {
        PortInfo {
            driver: "net_ice".into(),
            max_rx_queues: 64,
            max_tx_queues: 64,
            min_mtu: 68,
            max_mtu: 9000,
            rx_offload_capa: 0,
            tx_offload_capa: 0,
            flow_type_rss_offloads: u64::MAX,
            reta_size,
            hash_key_size,
        }
    }

    #[test]
    fn hardware_steers_only_where_the_nic_maps_flows_as_the_software_does() {
        let asked = rss_fields(PortSide::Client, Input::ClientPort);
        let good = nic(512, 40);
        assert!(hardware_steers(2, asked, asked, &good));
        assert!(hardware_steers(4, asked, asked, &nic(128, 40)));
        assert!(!hardware_steers(1, asked, asked, &good), "one worker: nothing to steer");
        assert!(!hardware_steers(3, asked, asked, &good), "3 workers: hash % 512 % 3 is not hash % 128 % 3");
        assert!(!hardware_steers(2, asked, asked & !rss::L4_SRC_ONLY, &good), "a field refused");
        assert!(!hardware_steers(2, asked, asked, &nic(64, 40)), "a smaller redirection table");
        assert!(!hardware_steers(2, asked, asked, &nic(0, 40)));
        assert!(!hardware_steers(2, asked, asked, &nic(512, 52)), "another key size");
        let both = rss_fields(PortSide::Both, Input::ClientPort);
        assert!(!hardware_steers(2, both, both, &good), "hashing both ends steers by neither");
    }
}
