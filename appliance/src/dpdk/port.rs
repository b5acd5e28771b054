//! Ethernet ports: lookup by device name, queue setup, RSS, MTU, offload capability
//! probing, MAC, link state and statistics; and the per-lcore RX/TX queue handles.

use super::mbuf::{RxBurst, TxBurst, BURST};
use super::mempool::Mempool;
use super::DpdkError;
use crate::net::ethernet::EthernetAddress;
use std::ffi::{c_char, CStr, CString};

/// RSS hash-field bits (`RTE_ETH_RSS_*`, function-like macros bindgen cannot see).
pub mod rss {
    pub const IPV4: u64 = 1 << 2;
    pub const FRAG_IPV4: u64 = 1 << 3;
    pub const NONFRAG_IPV4_TCP: u64 = 1 << 4;
    pub const NONFRAG_IPV4_UDP: u64 = 1 << 5;
    pub const NONFRAG_IPV4_OTHER: u64 = 1 << 7;
    pub const L4_DST_ONLY: u64 = 1 << 60;
    pub const L4_SRC_ONLY: u64 = 1 << 61;
    pub const L3_DST_ONLY: u64 = 1 << 62;
    pub const L3_SRC_ONLY: u64 = 1 << 63;
    /// Everything IPv4 the appliance balances on.
    pub const IPV4_ALL: u64 = IPV4 | FRAG_IPV4 | NONFRAG_IPV4_TCP | NONFRAG_IPV4_UDP | NONFRAG_IPV4_OTHER;
    /// IPv4 without the ports.
    pub const IPV4_L3: u64 = IPV4 | FRAG_IPV4 | NONFRAG_IPV4_OTHER;
    /// The modifiers that make a NIC hash only one endpoint.
    pub const ONLY_MASK: u64 = L3_SRC_ONLY | L3_DST_ONLY | L4_SRC_ONLY | L4_DST_ONLY;
}

/// RX offload bits (`RTE_ETH_RX_OFFLOAD_*`).
pub mod rx_offload {
    /// The NIC verifies IPv4 header checksums and flags each packet.
    pub const IPV4_CKSUM: u64 = 1 << 1;
}

/// TX offload bits (`RTE_ETH_TX_OFFLOAD_*`).
pub mod tx_offload {
    pub const IPV4_CKSUM: u64 = 1 << 1;
    pub const UDP_CKSUM: u64 = 1 << 2;
    pub const TCP_CKSUM: u64 = 1 << 3;
    pub const MBUF_FAST_FREE: u64 = 1 << 16;
}

/// An Ethernet device known to EAL.
#[derive(Debug)]
pub struct Port {
    id: u16,
    name: String,
}

/// What a device can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub min_mtu: u16,
    pub max_mtu: u16,
    pub rx_offload_capa: u64,
    pub tx_offload_capa: u64,
    pub flow_type_rss_offloads: u64,
    pub reta_size: u16,
    pub hash_key_size: u8,
}

/// How to set a port up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSetup {
    pub queues: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    pub mtu: u16,
    /// Wanted RSS hash fields; what the device cannot do is left out.
    pub rss_hf: u64,
    /// The Toeplitz key (40 bytes), when the device takes one that long.
    pub rss_key: Option<&'static [u8; 40]>,
    pub promiscuous: bool,
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    pub speed_mbps: u32,
}

/// Device counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

/// What `configure` enabled.
#[derive(Debug)]
pub struct Configured {
    pub rx: Vec<RxQueue>,
    pub tx: Vec<TxQueue>,
    /// RSS fields in effect (0: RSS off).
    pub rss_hf: u64,
    pub tx_offloads: u64,
    pub rx_offloads: u64,
}

fn check(op: impl Into<String>, rc: i32) -> Result<(), DpdkError> {
    if rc < 0 {
        Err(DpdkError::from_code(op, rc))
    } else {
        Ok(())
    }
}

impl Port {
    /// The device called `name` (a vdev name such as `net_af_packet0`, or a PCI address).
    pub fn by_name(name: &str) -> Result<Port, DpdkError> {
        let op = format!("rte_eth_dev_get_port_by_name({name})");
        let cname = CString::new(name).map_err(|_| DpdkError::msg(op.clone(), "name holds NUL"))?;
        let mut id: u16 = 0;
        // SAFETY: cname is a valid C string; id is a valid out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(DpdkError::msg(op, "no such device"));
        }
        Ok(Port { id, name: name.to_owned() })
    }

    /// Names of every device EAL probed.
    pub fn all_names() -> Vec<String> {
        let mut out = Vec::new();
        for id in 0..u16::try_from(dpdk_sys::RTE_MAX_ETHPORTS).unwrap_or(u16::MAX) {
            // SAFETY: any port id may be asked about.
            if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id) } == 0 {
                continue;
            }
            let mut buf = [0 as c_char; 64];
            // SAFETY: buf is 64 bytes (RTE_ETH_NAME_MAX_LEN), id is valid.
            if unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) } == 0 {
                // SAFETY: on success buf holds a NUL-terminated name.
                out.push(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned());
            }
        }
        out
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn info(&self) -> Result<PortInfo, DpdkError> {
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: info is a valid out-pointer; the port id is valid.
        check("rte_eth_dev_info_get", unsafe { dpdk_sys::rte_eth_dev_info_get(self.id, &mut info) })?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name points at the driver's static NUL-terminated name.
            unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy().into_owned()
        };
        Ok(PortInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
            rx_offload_capa: info.rx_offload_capa,
            tx_offload_capa: info.tx_offload_capa,
            flow_type_rss_offloads: info.flow_type_rss_offloads,
            reta_size: info.reta_size,
            hash_key_size: info.hash_key_size,
        })
    }

    /// Configures `setup.queues` RX and TX queue pairs (one per worker), RSS over the
    /// fields the device supports when there is more than one queue, and the MTU.
    pub fn configure(&self, setup: &PortSetup, pool: &Mempool) -> Result<Configured, DpdkError> {
        let info = self.info()?;
        let name = &self.name;
        if setup.queues == 0 || setup.queues > info.max_rx_queues || setup.queues > info.max_tx_queues {
            return Err(DpdkError::msg(
                format!("configure {name}"),
                format!(
                    "{} queue pairs wanted, device has {} RX / {} TX",
                    setup.queues, info.max_rx_queues, info.max_tx_queues
                ),
            ));
        }
        if info.max_mtu != 0 && (setup.mtu > info.max_mtu || setup.mtu < info.min_mtu) {
            return Err(DpdkError::msg(
                format!("configure {name}"),
                format!("MTU {} outside the device's {}..={}", setup.mtu, info.min_mtu, info.max_mtu),
            ));
        }
        let mut conf = dpdk_sys::rte_eth_conf::default();
        conf.rxmode.mtu = u32::from(setup.mtu);
        let rss_hf = if setup.queues > 1 { setup.rss_hf & info.flow_type_rss_offloads } else { 0 };
        if rss_hf != 0 {
            conf.rxmode.mq_mode = dpdk_sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            if let Some(key) = setup.rss_key.filter(|_| info.hash_key_size == 40) {
                // The driver reads the key through this pointer; it is 'static.
                conf.rx_adv_conf.rss_conf.rss_key = key.as_ptr().cast_mut();
                conf.rx_adv_conf.rss_conf.rss_key_len = 40;
            }
        }
        let tx_offloads = info.tx_offload_capa & tx_offload::MBUF_FAST_FREE;
        conf.txmode.offloads = tx_offloads;
        // Where the NIC checks IPv4 header checksums the pipeline trusts its flag
        // (the software check stays for ports that cannot).
        let rx_offloads = info.rx_offload_capa & rx_offload::IPV4_CKSUM;
        conf.rxmode.offloads = rx_offloads;
        // SAFETY: conf is a valid, initialised rte_eth_conf; the port id is valid.
        check(format!("rte_eth_dev_configure({name})"), unsafe {
            dpdk_sys::rte_eth_dev_configure(self.id, setup.queues, setup.queues, &conf)
        })?;
        // SAFETY: the port id is valid.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(self.id) };
        // SOCKET_ID_ANY (-1) as the unsigned the queue-setup calls take.
        let socket = u32::try_from(socket).unwrap_or(u32::MAX);
        let mut rx = Vec::with_capacity(usize::from(setup.queues));
        let mut tx = Vec::with_capacity(usize::from(setup.queues));
        for q in 0..setup.queues {
            // SAFETY: the port is configured with setup.queues queues; a null rx_conf
            // means the driver's defaults; pool is a live pktmbuf pool.
            check(format!("rte_eth_rx_queue_setup({name}, {q})"), unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    self.id,
                    q,
                    setup.rx_descriptors,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            })?;
            // SAFETY: as above, null tx_conf means defaults.
            check(format!("rte_eth_tx_queue_setup({name}, {q})"), unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(self.id, q, setup.tx_descriptors, socket, std::ptr::null())
            })?;
            rx.push(RxQueue { port: self.id, queue: q });
            tx.push(TxQueue { port: self.id, queue: q });
        }
        Ok(Configured { rx, tx, rss_hf, tx_offloads, rx_offloads })
    }

    pub fn start(&self, promiscuous: bool) -> Result<(), DpdkError> {
        // SAFETY: the port is configured.
        check(format!("rte_eth_dev_start({})", self.name), unsafe { dpdk_sys::rte_eth_dev_start(self.id) })?;
        if promiscuous {
            // SAFETY: the port is started. Drivers without the mode return -ENOTSUP,
            // which is not fatal: the port still receives frames for its own MAC.
            let _ = unsafe { dpdk_sys::rte_eth_promiscuous_enable(self.id) };
        }
        Ok(())
    }

    pub fn stop(&self) -> Result<(), DpdkError> {
        // SAFETY: the port id is valid; stopping a stopped port is harmless.
        check(format!("rte_eth_dev_stop({})", self.name), unsafe { dpdk_sys::rte_eth_dev_stop(self.id) })
    }

    /// Stops and releases the device (its RX rings give their mbufs back).
    pub fn close(self) -> Result<(), DpdkError> {
        // SAFETY: the port id is valid and no queue handle is used any more (workers
        // have returned before the caller closes ports).
        check(format!("rte_eth_dev_close({})", self.name), unsafe { dpdk_sys::rte_eth_dev_close(self.id) })
    }

    pub fn mac(&self) -> Result<EthernetAddress, DpdkError> {
        let mut a = dpdk_sys::rte_ether_addr::default();
        // SAFETY: a is a valid out-pointer.
        check("rte_eth_macaddr_get", unsafe { dpdk_sys::rte_eth_macaddr_get(self.id, &mut a) })?;
        Ok(EthernetAddress(a.addr_bytes))
    }

    pub fn link(&self) -> Link {
        let mut l = dpdk_sys::rte_eth_link::default();
        // SAFETY: l is a valid out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.id, &mut l) };
        if rc < 0 {
            return Link { up: false, speed_mbps: 0 };
        }
        Link { up: u32::from(l.link_status()) == dpdk_sys::RTE_ETH_LINK_UP, speed_mbps: l.link_speed }
    }

    pub fn stats(&self) -> PortStats {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: s is a valid out-pointer.
        if unsafe { dpdk_sys::rte_eth_stats_get(self.id, &mut s) } != 0 {
            return PortStats::default();
        }
        PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }
}

/// One RX queue of one port: used by exactly one lcore (not Clone).
#[derive(Debug, PartialEq, Eq)]
pub struct RxQueue {
    port: u16,
    queue: u16,
}

/// One TX queue of one port: used by exactly one lcore (not Clone).
#[derive(Debug, PartialEq, Eq)]
pub struct TxQueue {
    port: u16,
    queue: u16,
}

impl RxQueue {
    pub fn port_id(&self) -> u16 {
        self.port
    }

    /// Receives up to `BURST` packets into `burst` (releasing what it still held).
    #[inline]
    pub fn rx(&mut self, burst: &mut RxBurst) -> usize {
        burst.clear();
        let max = u16::try_from(BURST).unwrap_or(32);
        // SAFETY: &mut self makes this lcore the queue's only user; slots has BURST
        // entries; the received mbufs become owned by the burst.
        let n = unsafe { dpdk_sys::rte_eth_rx_burst(self.port, self.queue, burst.slots.as_mut_ptr(), max) };
        burst.filled(usize::from(n));
        usize::from(n)
    }
}

impl TxQueue {
    pub fn port_id(&self) -> u16 {
        self.port
    }

    /// Sends what `burst` holds. Returns (sent, freed): the NIC owns the sent mbufs;
    /// those it could not take are freed here, for the caller to count.
    #[inline]
    pub fn flush(&mut self, burst: &mut TxBurst) -> (usize, usize) {
        if burst.is_empty() {
            return (0, 0);
        }
        let len = u16::try_from(burst.len).unwrap_or(0);
        // SAFETY: &mut self makes this lcore the queue's only user; slots[..len] hold
        // owned mbufs; those sent now belong to the driver.
        let sent =
            usize::from(unsafe { dpdk_sys::rte_eth_tx_burst(self.port, self.queue, burst.slots.as_mut_ptr(), len) });
        let freed = burst.free_from(sent);
        (sent, freed)
    }

    /// Sends what `burst` holds and keeps, in order, what the device did not take
    /// (a traffic generator's back-pressure: nothing is lost, the caller retries).
    /// Returns how many were sent.
    #[inline]
    pub fn send_keep(&mut self, burst: &mut TxBurst) -> usize {
        if burst.is_empty() {
            return 0;
        }
        let len = u16::try_from(burst.len).unwrap_or(0);
        // SAFETY: as in `flush`: this lcore is the queue's only user and slots[..len]
        // hold owned mbufs; the ones sent belong to the driver, `keep_from` moves the
        // rest to the front without freeing them.
        let sent =
            usize::from(unsafe { dpdk_sys::rte_eth_tx_burst(self.port, self.queue, burst.slots.as_mut_ptr(), len) });
        burst.keep_from(sent);
        sent
    }
}
