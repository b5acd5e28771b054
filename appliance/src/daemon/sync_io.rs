//! The connection sync daemon's sockets, on the control lcore: UDP multicast on the
//! kernel interface of the port named by `--mcast-interface` (frames reach the wire
//! through the exception path, and the workers hand received multicast to it). The
//! master gathers what the workers queue into messages and sends them; the backup
//! reads messages, checks them, and hands each entry to the worker that owns its
//! connection (steered as its packets are).

use super::links::SyncRings;
use crate::control::config::Config;
use crate::control::sync::{DaemonSpec, Outbox, Switch, SyncCounters, SyncSpec};
use crate::ipvs::sync::{self, Fault, Parsed};
use crate::pipeline::steer::Steering;
use ringbuf::traits::{Consumer, Producer};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Instant;

/// Entries taken from each worker's ring per control loop iteration.
const DRAIN_PER_WORKER: usize = 8192;
/// Datagrams read per control loop iteration.
const READ_PER_POLL: usize = 256;

struct Master {
    sock: UdpSocket,
    outbox: Outbox,
}

struct Backup {
    sock: UdpSocket,
    syncid: u8,
    own: Ipv4Addr,
}

/// The running daemons.
pub struct SyncIo {
    pub spec: SyncSpec,
    master: Option<Master>,
    backup: Option<Backup>,
    pub counters: SyncCounters,
    steering: Steering,
    parsed: Parsed,
    out: Vec<Vec<u8>>,
    buf: Vec<u8>,
}

/// The kernel interface and its address for `name` (a port or its kernel
/// interface).
fn interface(cfg: &Config, name: &str) -> Result<(String, Ipv4Addr), String> {
    let port = cfg
        .ports
        .iter()
        .find(|p| p.name == name || p.kernel.as_deref() == Some(name))
        .ok_or_else(|| format!("--mcast-interface {name}: no port or kernel interface of that name"))?;
    let k = port.kernel.clone().ok_or_else(|| {
        format!(
            "--mcast-interface {name}: port {} has no kernel interface (port.kernel): sync travels through it",
            port.name
        )
    })?;
    let a = port
        .addresses
        .first()
        .map(|c| c.address())
        .ok_or_else(|| format!("--mcast-interface {name}: port {} has no address", port.name))?;
    Ok((k, a))
}

fn master_socket(cfg: &Config, d: &DaemonSpec) -> Result<UdpSocket, String> {
    let (ifname, addr) = interface(cfg, &d.mcast_interface)?;
    let e = |what: &str, err: std::io::Error| format!("sync master on {ifname}: {what}: {err}");
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(|x| e("socket", x))?;
    s.bind_device(Some(ifname.as_bytes())).map_err(|x| e("SO_BINDTODEVICE", x))?;
    s.bind(&SockAddr::from(SocketAddrV4::new(addr, 0))).map_err(|x| e("bind", x))?;
    s.set_multicast_if_v4(&addr).map_err(|x| e("IP_MULTICAST_IF", x))?;
    s.set_multicast_ttl_v4(u32::from(d.ttl)).map_err(|x| e("IP_MULTICAST_TTL", x))?;
    s.set_multicast_loop_v4(false).map_err(|x| e("IP_MULTICAST_LOOP", x))?;
    s.connect(&SockAddr::from(SocketAddrV4::new(d.group, d.port))).map_err(|x| e("connect", x))?;
    s.set_nonblocking(true).map_err(|x| e("nonblocking", x))?;
    Ok(s.into())
}

fn backup_socket(cfg: &Config, d: &DaemonSpec) -> Result<(UdpSocket, Ipv4Addr), String> {
    let (ifname, addr) = interface(cfg, &d.mcast_interface)?;
    let e = |what: &str, err: std::io::Error| format!("sync backup on {ifname}: {what}: {err}");
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(|x| e("socket", x))?;
    s.set_reuse_address(true).map_err(|x| e("SO_REUSEADDR", x))?;
    s.bind_device(Some(ifname.as_bytes())).map_err(|x| e("SO_BINDTODEVICE", x))?;
    s.bind(&SockAddr::from(SocketAddrV4::new(d.group, d.port))).map_err(|x| e("bind", x))?;
    s.join_multicast_v4(&d.group, &addr).map_err(|x| e("IP_ADD_MEMBERSHIP", x))?;
    s.set_nonblocking(true).map_err(|x| e("nonblocking", x))?;
    Ok((s.into(), addr))
}

impl SyncIo {
    pub fn new(cfg: &Config) -> SyncIo {
        let n = u16::try_from(cfg.workers.lcores.len()).unwrap_or(1);
        SyncIo {
            spec: SyncSpec { threshold: 3, period: 50, ..Default::default() },
            master: None,
            backup: None,
            counters: SyncCounters::default(),
            steering: Steering::new(cfg.workers.rss_key, cfg.workers.steering, n),
            parsed: Parsed::default(),
            out: Vec::new(),
            buf: vec![0u8; 65_536],
        }
    }

    /// Runs the daemons `spec` asks for (starting, stopping, or restarting those
    /// whose settings changed), and tells the workers whether to queue. All or
    /// nothing: a daemon that cannot start leaves everything as it was.
    pub fn configure(&mut self, spec: &SyncSpec, cfg: &Config, switch: &Switch) -> Result<(), String> {
        let master = match &spec.master {
            Some(m) if self.spec.master.as_ref() != Some(m) || self.master.is_none() => {
                Some(Some(Master { sock: master_socket(cfg, m)?, outbox: Outbox::new(m) }))
            }
            Some(_) => None,
            None => Some(None),
        };
        let backup = match &spec.backup {
            Some(b) if self.spec.backup.as_ref() != Some(b) || self.backup.is_none() => {
                let (sock, own) = backup_socket(cfg, b)?;
                Some(Some(Backup { sock, syncid: b.syncid, own }))
            }
            Some(_) => None,
            None => Some(None),
        };
        if let Some(m) = master {
            self.master = m;
        }
        if let Some(b) = backup {
            self.backup = b;
        }
        self.spec = spec.clone();
        switch.set(self.master.is_some().then(|| spec.rules()));
        Ok(())
    }

    /// Whether a master daemon runs.
    pub fn is_master(&self) -> bool {
        self.master.is_some()
    }

    /// Entries from a dump of the table, into messages (full ones sent now).
    pub fn tell(&mut self, entries: &[crate::ipvs::sync::SyncConn], now: Instant) {
        let Some(m) = &mut self.master else { return };
        for e in entries {
            m.outbox.push(e, now, &mut self.out);
        }
        self.send_out();
    }

    fn send_out(&mut self) {
        let Some(m) = &mut self.master else { return };
        for msg in self.out.drain(..) {
            match m.sock.send(&msg) {
                Ok(_) => {
                    self.counters.messages_sent += 1;
                    self.counters.conns_sent += u64::from(msg[4]);
                }
                Err(_) => self.counters.send_errors += 1,
            }
        }
    }

    /// One control loop iteration: the workers' entries into messages (sent when
    /// full or after 20 ms), and the peers' messages into the workers.
    pub fn poll(&mut self, rings: &mut SyncRings, now: Instant) {
        if let Some(m) = &mut self.master {
            for r in &mut rings.from_workers {
                for _ in 0..DRAIN_PER_WORKER {
                    let Some(e) = r.try_pop() else { break };
                    m.outbox.push(&e, now, &mut self.out);
                }
            }
            m.outbox.due(now, &mut self.out);
            self.send_out();
        } else {
            // Nothing queues while no master runs; what is left is stale.
            for r in &mut rings.from_workers {
                while r.try_pop().is_some() {}
            }
        }
        let Some(b) = &self.backup else { return };
        for _ in 0..READ_PER_POLL {
            let Ok((n, from)) = b.sock.recv_from(&mut self.buf) else { break };
            if matches!(from, SocketAddr::V4(a) if *a.ip() == b.own) {
                self.counters.own += 1;
                continue;
            }
            sync::parse(&self.buf[..n], b.syncid, &mut self.parsed);
            for f in &self.parsed.faults {
                let i = Fault::ALL.iter().position(|x| x == f).unwrap_or(0);
                self.counters.dropped[i] += 1;
            }
            if self.parsed.faults.iter().any(|f| f.drops_message()) && self.parsed.entries.is_empty() {
                continue;
            }
            self.counters.messages_received += 1;
            for e in &self.parsed.entries {
                self.counters.conns_received += 1;
                // IPv6 clients are steered by their address folded to 32 bits.
                let client = match e.caddr {
                    std::net::IpAddr::V4(a) => a,
                    std::net::IpAddr::V6(a) => crate::pipeline::meta::fold6(&a.octets()),
                };
                let owner = usize::from(self.steering.owner(client, e.cport));
                let Some(ring) = rings.to_workers.get_mut(owner) else { continue };
                if ring.try_push(*e).is_err() {
                    self.counters.ring_full += 1;
                }
            }
        }
    }
}
