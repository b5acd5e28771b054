//! Health checks the way keepalived runs them (keepalived.conf(5)): TCP_CHECK,
//! HTTP_GET (path, status code range, optional MD5 digest of the body) and
//! MISC_CHECK (an external command with a timeout; with `misc_dynamic` its exit code
//! sets the weight: 0 up, 1 down, 2..=255 up with weight code - 2).
//!
//! Per real server: a check every `delay_loop` seconds; a failure is retried `retry`
//! times, `delay_before_retry` apart, before the server is declared down; then it
//! leaves the pool (or stays with weight 0 under `inhibit_on_failure`), and comes
//! back at its first successful check. `alpha` starts servers down. Per service:
//! `quorum` (minimum total weight of live servers) with `hysteresis`; when it is lost
//! the `sorry_server` replaces the pool.
//!
//! The checker never touches the data plane: `overlay` turns the operator's model and
//! the health states into the model the control plane publishes, through the same
//! snapshot path an operator's change takes. Probes run on short-lived threads of
//! the control plane (so a slow server never stalls the control loop), from the
//! kernel, i.e. through the exception path: they leave from the DIP.

use super::model::Model;
use super::protocol::{DestSpec, ServiceKey};
use crate::ipvs::dest::FwdMethod;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// What a check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Tcp,
    Http { path: String, status: (u16, u16), digest: Option<String> },
    Misc { command: String, timeout_s: u32, dynamic: bool },
}

/// One service's check settings (keepalived's names and defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub kind: Kind,
    /// `delay_loop` (default 60).
    pub delay_loop_s: u32,
    /// `connect_timeout` (default 5).
    pub connect_timeout_s: u32,
    /// `connect_port`: check this port instead of the real server's.
    pub connect_port: Option<u16>,
    /// `retry` (default 1).
    pub retry: u32,
    /// `delay_before_retry` (default 1).
    pub delay_before_retry_s: u32,
    pub inhibit_on_failure: bool,
    pub alpha: bool,
    /// `quorum` (default 1) and `hysteresis` (default 0), in weight.
    pub quorum: u32,
    pub hysteresis: u32,
    pub sorry_server: Option<(IpAddr, u16, FwdMethod)>,
}

impl Default for CheckSpec {
    fn default() -> Self {
        CheckSpec {
            kind: Kind::Tcp,
            delay_loop_s: 60,
            connect_timeout_s: 5,
            connect_port: None,
            retry: 1,
            delay_before_retry_s: 1,
            inhibit_on_failure: false,
            alpha: false,
            quorum: 1,
            hysteresis: 0,
            sorry_server: None,
        }
    }
}

/// One probe's outcome: up or down, and for MISC_CHECK with `misc_dynamic` a weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub up: bool,
    pub weight: Option<u32>,
}

/// Runs one check against `addr:port` (blocking, bounded by the timeouts).
pub fn probe(kind: &Kind, addr: IpAddr, port: u16, timeout: Duration) -> Outcome {
    let down = Outcome { up: false, weight: None };
    let up = Outcome { up: true, weight: None };
    match kind {
        Kind::Tcp => match TcpStream::connect_timeout(&SocketAddr::from((addr, port)), timeout) {
            Ok(_) => up,
            Err(_) => down,
        },
        Kind::Http { path, status, digest } => {
            let Ok(mut s) = TcpStream::connect_timeout(&SocketAddr::from((addr, port)), timeout) else { return down };
            let _ = s.set_read_timeout(Some(timeout));
            let _ = s.set_write_timeout(Some(timeout));
            let req =
                format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: rvsd-check\r\nConnection: close\r\n\r\n");
            if s.write_all(req.as_bytes()).is_err() {
                return down;
            }
            let mut resp = Vec::new();
            let deadline = Instant::now() + timeout;
            let mut buf = [0u8; 4096];
            while Instant::now() < deadline && resp.len() < 1 << 20 {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => resp.extend_from_slice(&buf[..n]),
                    // The tap PMD raises SIGIO for every frame it is handed, so
                    // blocking reads on this process's threads see EINTR often.
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            let text = String::from_utf8_lossy(&resp);
            let code = text.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
            let Some(code) = code else { return down };
            if code < status.0 || code > status.1 {
                return down;
            }
            if let Some(want) = digest {
                let body_at = resp.windows(4).position(|w| w == b"\r\n\r\n").map_or(resp.len(), |i| i + 4);
                let got = format!("{:x}", md5::compute(&resp[body_at..]));
                if !got.eq_ignore_ascii_case(want) {
                    return down;
                }
            }
            up
        }
        Kind::Misc { command, timeout_s, dynamic } => {
            let Ok(mut child) = std::process::Command::new("/bin/sh")
                .args(["-c", command])
                .env("RVS_CHECK_ADDR", addr.to_string())
                .env("RVS_CHECK_PORT", port.to_string())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
            else {
                return down;
            };
            let deadline = Instant::now() + Duration::from_secs(u64::from(*timeout_s));
            loop {
                match child.try_wait() {
                    Ok(Some(st)) => {
                        let code = st.code().unwrap_or(1);
                        return match (code, dynamic) {
                            (0, _) => up,
                            (2..=255, true) => Outcome { up: true, weight: Some(u32::try_from(code - 2).unwrap_or(0)) },
                            _ => down,
                        };
                    }
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return down;
                    }
                }
            }
        }
    }
}

/// A real server's health.
#[derive(Debug, Clone)]
struct DestState {
    service: ServiceKey,
    addr: IpAddr,
    port: u16,
    up: bool,
    /// Failures still to be retried before down.
    retries_left: u32,
    next: Instant,
    running: bool,
    weight: Option<u32>,
}

#[derive(Debug)]
struct Probe {
    service: ServiceKey,
    addr: IpAddr,
    port: u16,
    outcome: Outcome,
}

/// A state change, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub service: ServiceKey,
    pub addr: IpAddr,
    pub port: u16,
    pub up: bool,
}

/// Every service's checks and every checked real server's state.
#[derive(Debug)]
pub struct Checker {
    specs: Vec<(ServiceKey, CheckSpec)>,
    dests: Vec<DestState>,
    quorum_up: Vec<(ServiceKey, bool)>,
    /// Quorum transitions not yet taken (for the log).
    quorum_changes: Vec<(ServiceKey, bool)>,
    tx: crossbeam_channel::Sender<Probe>,
    rx: crossbeam_channel::Receiver<Probe>,
}

impl Checker {
    pub fn new(specs: Vec<(ServiceKey, CheckSpec)>) -> Checker {
        let (tx, rx) = crossbeam_channel::unbounded();
        Checker { specs, dests: Vec::new(), quorum_up: Vec::new(), quorum_changes: Vec::new(), tx, rx }
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// New settings (reload); states of servers still checked are kept.
    pub fn set_specs(&mut self, specs: Vec<(ServiceKey, CheckSpec)>) {
        self.specs = specs;
    }

    fn spec(&self, s: ServiceKey) -> Option<&CheckSpec> {
        self.specs.iter().find(|(r, _)| *r == s).map(|(_, c)| c)
    }

    /// Is this real server up (unchecked ones are)?
    pub fn is_up(&self, s: ServiceKey, addr: IpAddr, port: u16) -> bool {
        self.dests.iter().find(|d| d.service == s && d.addr == addr && d.port == port).is_none_or(|d| d.up)
    }

    /// Starts the checks that are due and takes the results in; returns the state
    /// changes (real servers up/down, quorum).
    pub fn poll(&mut self, model: &Model, now: Instant) -> Vec<Event> {
        // Track exactly the dests of checked services (sets: this runs every tick).
        let mut wanted: hashbrown::HashSet<(ServiceKey, IpAddr, u16)> = hashbrown::HashSet::new();
        for (s, ds) in &model.services {
            if self.spec(s.service).is_some() {
                wanted.extend(ds.iter().map(|d| (s.service, d.addr, d.port)));
            }
        }
        self.dests.retain(|d| wanted.remove(&(d.service, d.addr, d.port)));
        // What is left in `wanted` is not tracked yet.
        for (s, addr, port) in wanted {
            let spec = self.spec(s).cloned().unwrap_or_default();
            self.dests.push(DestState {
                service: s,
                addr,
                port,
                up: !spec.alpha,
                retries_left: spec.retry,
                next: now,
                running: false,
                weight: None,
            });
        }
        let mut events = Vec::new();
        while let Ok(p) = self.rx.try_recv() {
            let Some(spec) = self.spec(p.service).cloned() else { continue };
            let Some(d) =
                self.dests.iter_mut().find(|d| d.service == p.service && d.addr == p.addr && d.port == p.port)
            else {
                continue;
            };
            d.running = false;
            if p.outcome.up {
                d.retries_left = spec.retry;
                d.weight = p.outcome.weight;
                d.next = now + Duration::from_secs(u64::from(spec.delay_loop_s));
                if !d.up {
                    d.up = true;
                    events.push(Event { service: d.service, addr: d.addr, port: d.port, up: true });
                }
            } else if d.up && d.retries_left > 0 {
                d.retries_left -= 1;
                d.next = now + Duration::from_secs(u64::from(spec.delay_before_retry_s));
            } else {
                d.retries_left = spec.retry;
                d.next = now + Duration::from_secs(u64::from(spec.delay_loop_s));
                if d.up {
                    d.up = false;
                    events.push(Event { service: d.service, addr: d.addr, port: d.port, up: false });
                }
            }
        }
        for i in 0..self.dests.len() {
            let d = &self.dests[i];
            if d.running || d.next > now {
                continue;
            }
            let Some(spec) = self.spec(d.service).cloned() else { continue };
            let (service, addr, port) = (d.service, d.addr, spec.connect_port.unwrap_or(d.port));
            let tx = self.tx.clone();
            let kind = spec.kind.clone();
            let timeout = Duration::from_secs(u64::from(spec.connect_timeout_s.max(1)));
            let real_port = d.port;
            self.dests[i].running = true;
            std::thread::spawn(move || {
                let outcome = probe(&kind, addr, port, timeout);
                let _ = tx.send(Probe { service, addr, port: real_port, outcome });
            });
        }
        events
    }

    /// The model to publish: the operator's, with down servers out (or at weight 0
    /// under inhibit_on_failure), misc_dynamic weights applied, and the sorry server
    /// in place of the pool when the quorum is lost.
    pub fn overlay(&mut self, model: &Model) -> Model {
        let mut out = model.clone();
        let mut quorum_states = Vec::new();
        for (s, ds) in &mut out.services {
            let Some(spec) = self.spec(s.service).cloned() else { continue };
            let mut kept = Vec::with_capacity(ds.len());
            for d in ds.drain(..) {
                let st = self.dests.iter().find(|x| x.service == s.service && x.addr == d.addr && x.port == d.port);
                let up = st.is_none_or(|x| x.up);
                let weight = st.and_then(|x| x.weight).unwrap_or(d.weight);
                if up {
                    kept.push(DestSpec { weight, ..d });
                } else if spec.inhibit_on_failure {
                    kept.push(DestSpec { weight: 0, ..d });
                }
            }
            let alive: u32 = kept.iter().map(|d| d.weight).sum();
            let was_up = self.quorum_up.iter().find(|(r, _)| *r == s.service).is_none_or(|(_, u)| *u);
            let now_up =
                if was_up { alive + spec.hysteresis >= spec.quorum } else { alive >= spec.quorum + spec.hysteresis };
            quorum_states.push((s.service, now_up));
            if was_up != now_up {
                self.quorum_changes.push((s.service, now_up));
            }
            match (now_up, spec.sorry_server) {
                (false, Some((addr, port, forward))) => {
                    *ds = vec![DestSpec { service: s.service, addr, port, forward, weight: 1, upper: 0, lower: 0 }];
                }
                _ => *ds = kept,
            }
        }
        self.quorum_up = quorum_states;
        out
    }

    /// Services whose quorum is lost now.
    pub fn quorum_lost(&self) -> Vec<ServiceKey> {
        self.quorum_up.iter().filter(|(_, up)| !up).map(|(s, _)| *s).collect()
    }

    /// Services whose quorum was lost (false) or regained (true) since last asked.
    pub fn take_quorum_changes(&mut self) -> Vec<(ServiceKey, bool)> {
        std::mem::take(&mut self.quorum_changes)
    }

    /// (service, addr, port, up) of every checked real server (metrics).
    pub fn states(&self) -> Vec<(ServiceKey, IpAddr, u16, bool)> {
        self.dests.iter().map(|d| (d.service, d.addr, d.port, d.up)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    const LOCAL: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    use super::super::protocol::{Change, ServiceSpec};
    use super::*;
    use crate::ipvs::Protocol;
    use std::net::TcpListener;

    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

    fn model(ports: &[u16]) -> (Model, ServiceKey) {
        let svc = ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port: 80 };
        let mut m = Model::default();
        let mut c = vec![Change::AddService(ServiceSpec {
            service: svc,
            scheduler: "rr".into(),
            flags: vec![],
            persistent: None,
            netmask: None,
            prefix6: None,
        })];
        for &p in ports {
            c.push(Change::AddDest(DestSpec {
                service: svc,
                addr: LOCAL,
                port: p,
                forward: FwdMethod::Masq,
                weight: 2,
                upper: 0,
                lower: 0,
            }));
        }
        m.apply_all(&c).unwrap();
        (m, svc)
    }

    fn run_until(c: &mut Checker, m: &Model, want: impl Fn(&Checker) -> bool) -> Vec<Event> {
        let t0 = Instant::now();
        let mut all = Vec::new();
        // Simulated clock far ahead so delays never hold a check back.
        let mut now = Instant::now();
        while !want(c) {
            assert!(t0.elapsed() < Duration::from_secs(10), "checker did not settle: {:?}", c.states());
            now += Duration::from_secs(120);
            all.extend(c.poll(m, now));
            std::thread::sleep(Duration::from_millis(10));
        }
        all
    }

    #[test]
    fn tcp_check_takes_a_dead_server_out_after_its_retries_and_back_in() {
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = TcpListener::bind("127.0.0.1:0").unwrap();
        let (lp, dp) = (live.local_addr().unwrap().port(), dead.local_addr().unwrap().port());
        drop(dead);
        let (m, svc) = model(&[lp, dp]);
        let spec = CheckSpec { delay_loop_s: 1, connect_timeout_s: 1, retry: 2, ..Default::default() };
        let mut c = Checker::new(vec![(svc, spec.clone())]);
        let events = run_until(&mut c, &m, |c| !c.is_up(svc, LOCAL, dp));
        assert_eq!(events, vec![Event { service: svc, addr: LOCAL, port: dp, up: false }]);
        assert!(c.is_up(svc, LOCAL, lp));
        let eff = c.overlay(&m);
        assert_eq!(eff.services[0].1.iter().map(|d| d.port).collect::<Vec<_>>(), vec![lp], "removed");
        // inhibit_on_failure keeps it at weight 0.
        c.set_specs(vec![(svc, CheckSpec { inhibit_on_failure: true, ..spec })]);
        let eff = c.overlay(&m);
        assert_eq!(eff.services[0].1.iter().map(|d| (d.port, d.weight)).collect::<Vec<_>>(), vec![(lp, 2), (dp, 0)]);
        // The server comes back.
        let _again = TcpListener::bind(("127.0.0.1", dp)).unwrap();
        run_until(&mut c, &m, |c| c.is_up(svc, LOCAL, dp));
    }

    #[test]
    fn sorry_server_replaces_a_pool_without_quorum() {
        let dead = TcpListener::bind("127.0.0.1:0").unwrap();
        let dp = dead.local_addr().unwrap().port();
        drop(dead);
        let (m, svc) = model(&[dp]);
        let sorry = (std::net::IpAddr::from(Ipv4Addr::new(198, 18, 1, 99)), 8080, FwdMethod::Masq);
        let mut c = Checker::new(vec![(
            svc,
            CheckSpec { retry: 0, connect_timeout_s: 1, sorry_server: Some(sorry), ..Default::default() },
        )]);
        assert_eq!(c.overlay(&m).services[0].1[0].port, dp, "quorum held while it is up");
        run_until(&mut c, &m, |c| !c.is_up(svc, LOCAL, dp));
        let eff = c.overlay(&m);
        assert_eq!(eff.services[0].1.iter().map(|d| (d.addr, d.port)).collect::<Vec<_>>(), vec![(sorry.0, sorry.1)]);
        assert_eq!(c.take_quorum_changes(), vec![(svc, false)], "the loss is reported once");
        assert_eq!(c.overlay(&m).services[0].1[0].port, 8080);
        assert!(c.take_quorum_changes().is_empty());
    }

    #[test]
    fn http_get_status_digest_and_misc_dynamic() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in server.incoming().take(4) {
                let mut s = s.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let resp = if req.starts_with("GET /ok ") {
                    "HTTP/1.0 200 OK\r\n\r\nserver1\n"
                } else {
                    "HTTP/1.0 503 Busy\r\n\r\nno\n"
                };
                s.write_all(resp.as_bytes()).unwrap();
            }
        });
        let t = Duration::from_secs(2);
        let http = |path: &str, digest: Option<&str>| Kind::Http {
            path: path.into(),
            status: (200, 299),
            digest: digest.map(str::to_string),
        };
        assert!(probe(&http("/ok", None), LOCAL, port, t).up);
        assert!(!probe(&http("/busy", None), LOCAL, port, t).up, "503 is outside 200-299");
        let md5 = format!("{:x}", md5::compute(b"server1\n"));
        assert!(probe(&http("/ok", Some(&md5)), LOCAL, port, t).up);
        assert!(!probe(&http("/ok", Some("00")), LOCAL, port, t).up, "digest differs");
        let misc = |c: &str, dynamic| Kind::Misc { command: c.into(), timeout_s: 2, dynamic };
        assert_eq!(probe(&misc("exit 0", false), LOCAL, 1, t), Outcome { up: true, weight: None });
        assert!(!probe(&misc("exit 1", true), LOCAL, 1, t).up);
        assert_eq!(probe(&misc("exit 7", true), LOCAL, 1, t), Outcome { up: true, weight: Some(5) });
        assert!(!probe(&misc("exit 7", false), LOCAL, 1, t).up);
        let slow = Kind::Misc { command: "sleep 5".into(), timeout_s: 1, dynamic: false };
        let t0 = Instant::now();
        assert!(!probe(&slow, LOCAL, 1, t).up, "timed out");
        assert!(t0.elapsed() < Duration::from_secs(3));
        assert!(probe(&misc("test \"$RVS_CHECK_ADDR:$RVS_CHECK_PORT\" = 127.0.0.1:1", false), LOCAL, 1, t).up);
    }

    #[test]
    fn alpha_starts_down() {
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let lp = live.local_addr().unwrap().port();
        let (m, svc) = model(&[lp]);
        let mut c = Checker::new(vec![(svc, CheckSpec { alpha: true, connect_timeout_s: 1, ..Default::default() })]);
        c.poll(&m, Instant::now());
        assert!(!c.is_up(svc, LOCAL, lp));
        let events = run_until(&mut c, &m, |c| c.is_up(svc, LOCAL, lp));
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn checks_reach_ipv6_real_servers() {
        let live = TcpListener::bind("[::1]:0").expect("IPv6 loopback");
        let port = live.local_addr().unwrap().port();
        let v6 = std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
        let t = Duration::from_secs(1);
        assert!(probe(&Kind::Tcp, v6, port, t).up);
        drop(live);
        assert!(!probe(&Kind::Tcp, v6, port, t).up, "nothing listens any more");
    }
}
