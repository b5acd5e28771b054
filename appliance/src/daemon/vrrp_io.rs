//! VRRP's way in and out, on the control lcore: a packet socket on each port's kernel
//! interface (the exception path carries frames between it and the DPDK port both
//! ways: workers hand received advertisements to the kernel interface, and what is
//! written there leaves by the port as it is); keepalived's notify scripts and
//! `vrrp_script` checks as child processes, never waited for in the loop.

use super::StartError;
use crate::control::config::Config;
use crate::control::vrrp::{PortInfo, ScriptSpec, Vrrp};
use crate::net::ethernet::{self, EthernetAddress};
use crate::net::vrrp;
use crate::net::{ipv4, ipv6};
use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One port's packet socket.
struct Link {
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
    mac: EthernetAddress,
}

/// A `vrrp_script`'s state: its running check, its result so far.
struct Script {
    spec: ScriptSpec,
    next_at: Instant,
    running: Option<(Child, Instant)>,
    good: bool,
    streak: u32,
}

/// The packet sockets, scripts and notify children.
pub struct VrrpIo {
    links: Vec<Option<Link>>,
    scripts: Vec<Script>,
    notifying: Vec<Child>,
    /// Frames that could not be written (counted, logged once in a while).
    pub send_errors: u64,
}

impl VrrpIo {
    /// Opens a packet socket on the kernel interface of every port an instance runs
    /// on. `macs`: each port's MAC.
    pub fn open(cfg: &Config, macs: &[EthernetAddress]) -> Result<VrrpIo, StartError> {
        let mut links: Vec<Option<Link>> = (0..cfg.ports.len()).map(|_| None).collect();
        for inst in &cfg.vrrp.instances {
            if links[inst.port].is_some() {
                continue;
            }
            let Some(ifname) = cfg.ports[inst.port].kernel.clone() else { continue };
            let iface = pnet_datalink::interfaces()
                .into_iter()
                .find(|i| i.name == ifname)
                .ok_or_else(|| StartError::Dpdk(format!("vrrp: no kernel interface {ifname}")))?;
            let config =
                pnet_datalink::Config { read_timeout: Some(Duration::ZERO), promiscuous: false, ..Default::default() };
            let (tx, rx) = match pnet_datalink::channel(&iface, config) {
                Ok(Channel::Ethernet(tx, rx)) => (tx, rx),
                Ok(_) => return Err(StartError::Dpdk(format!("vrrp: {ifname}: not an Ethernet channel"))),
                Err(e) => return Err(StartError::Dpdk(format!("vrrp: packet socket on {ifname}: {e}"))),
            };
            let mac = macs.get(inst.port).copied().unwrap_or(EthernetAddress::ZERO);
            links[inst.port] = Some(Link { tx, rx, mac });
        }
        let now = Instant::now();
        let scripts = cfg
            .vrrp
            .scripts
            .iter()
            .map(|s| Script { spec: s.clone(), next_at: now, running: None, good: true, streak: 0 })
            .collect();
        Ok(VrrpIo { links, scripts, notifying: Vec::new(), send_errors: 0 })
    }

    /// What each port looks like to an instance: its MAC and first address.
    pub fn port_infos(cfg: &Config, macs: &[EthernetAddress]) -> Vec<PortInfo> {
        cfg.ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                PortInfo::new(
                    macs.get(i).copied().unwrap_or(EthernetAddress::ZERO),
                    p.addresses.first().map_or(std::net::Ipv4Addr::UNSPECIFIED, |c| c.address()),
                )
            })
            .collect()
    }

    /// Hands every advertisement waiting on the sockets to `v` (at most a few
    /// hundred per call: a flood does not hold the control loop).
    pub fn receive(&mut self, v: &mut Vrrp, now: Instant, out: &mut Vec<(usize, Vec<u8>)>) {
        for (port, link) in self.links.iter_mut().enumerate() {
            let Some(link) = link else { continue };
            for _ in 0..256 {
                let Ok(frame) = link.rx.next() else { break };
                let Ok(eth) = ethernet::Frame::new_checked(frame) else { continue };
                // Ours, seen leaving (a packet socket sees both ways).
                if eth.src_addr() == link.mac {
                    continue;
                }
                let ip = &frame[eth.header_len()..];
                let vrrp = match eth.ethertype() {
                    ethernet::ethertype::IPV4 => ip.len() >= ipv4::HEADER_LEN && ip[9] == vrrp::PROTOCOL,
                    // Straight after the fixed header: keepalived sends no extension headers.
                    ethernet::ethertype::IPV6 => ip.len() >= ipv6::HEADER_LEN && ip[6] == vrrp::PROTOCOL,
                    _ => false,
                };
                if vrrp {
                    v.receive(port, ip, now, out);
                }
            }
        }
    }

    /// Writes `frames` to their ports' kernel interfaces.
    pub fn send(&mut self, frames: &mut Vec<(usize, Vec<u8>)>) {
        for (port, f) in frames.drain(..) {
            let Some(Some(link)) = self.links.get_mut(port) else {
                self.send_errors += 1;
                continue;
            };
            match link.tx.send_to(&f, None) {
                Some(Ok(())) => {}
                _ => self.send_errors += 1,
            }
        }
    }

    /// Runs each command with `sh -c`, not waiting for it.
    pub fn notify(&mut self, cmds: Vec<String>) {
        for c in cmds {
            match Command::new("sh").arg("-c").arg(&c).stdin(Stdio::null()).spawn() {
                Ok(child) => self.notifying.push(child),
                Err(e) => tracing::warn!(command = %c, "vrrp notify: {e}"),
            }
        }
        // Reap those done.
        self.notifying.retain_mut(|ch| !matches!(ch.try_wait(), Ok(Some(_))));
    }

    /// Scripts whose specs changed (a reload) start over.
    pub fn set_scripts(&mut self, specs: &[ScriptSpec]) {
        let now = Instant::now();
        let mut old = std::mem::take(&mut self.scripts);
        for s in specs {
            match old.iter().position(|o| o.spec == *s) {
                Some(i) => self.scripts.push(old.swap_remove(i)),
                None => {
                    self.scripts.push(Script { spec: s.clone(), next_at: now, running: None, good: true, streak: 0 })
                }
            }
        }
        for mut o in old {
            if let Some((mut ch, _)) = o.running.take() {
                let _ = ch.kill();
                let _ = ch.wait();
            }
        }
    }

    /// Starts the scripts that are due, collects those that finished (or ran out of
    /// time: failed), and returns each script's result (name, good).
    pub fn poll_scripts(&mut self, now: Instant) -> Vec<(String, bool)> {
        for s in &mut self.scripts {
            if let Some((ch, started)) = &mut s.running {
                let result = match ch.try_wait() {
                    Ok(Some(st)) => Some(st.success()),
                    Ok(None) if now.duration_since(*started) >= Duration::from_secs(u64::from(s.spec.timeout_s)) => {
                        let _ = ch.kill();
                        let _ = ch.wait();
                        Some(false)
                    }
                    Ok(None) => None,
                    Err(_) => Some(false),
                };
                if let Some(ok) = result {
                    s.running = None;
                    if ok == s.good {
                        s.streak = 0;
                    } else {
                        s.streak += 1;
                        let need = if ok { s.spec.rise } else { s.spec.fall };
                        if s.streak >= need {
                            s.good = ok;
                            s.streak = 0;
                            tracing::info!(script = %s.spec.name, good = ok, "vrrp_script changed");
                        }
                    }
                }
            }
            if s.running.is_none() && now >= s.next_at {
                s.next_at = now + Duration::from_secs(u64::from(s.spec.interval_s));
                match Command::new("sh")
                    .arg("-c")
                    .arg(&s.spec.script)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                {
                    Ok(ch) => s.running = Some((ch, now)),
                    Err(e) => tracing::warn!(script = %s.spec.name, "vrrp_script: {e}"),
                }
            }
        }
        self.scripts.iter().map(|s| (s.spec.name.clone(), s.good)).collect()
    }
}
