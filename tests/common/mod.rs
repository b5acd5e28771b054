//! Helpers for end-to-end tests: labs in network namespaces (scripts/lab) and rvsd
//! processes, both torn down on Drop so a failing test leaves nothing behind.
#![allow(dead_code)]

pub mod pair;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The workspace root (the crate under test may be the appliance or perf/'s generator).
pub fn repo_root() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.ancestors().find(|d| d.join("Cargo.lock").exists()).expect("workspace root").to_path_buf()
}

/// An appliance binary: cargo's own path in the appliance's tests; from another
/// crate of the workspace, the one built beside this test (`cargo test --workspace`
/// builds the appliance's binaries before any test runs).
pub fn appliance_bin(cargo_path: Option<&str>, name: &str) -> PathBuf {
    if let Some(p) = cargo_path {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable");
    let path = exe.parent().and_then(Path::parent).expect("target/<profile>").join(name);
    assert!(path.exists(), "{} is not built: cargo build -p appliance --bin {name}", path.display());
    path
}

pub fn rvsd_bin() -> PathBuf {
    appliance_bin(option_env!("CARGO_BIN_EXE_rvsd"), "rvsd")
}

pub fn rvsadm_bin() -> PathBuf {
    appliance_bin(option_env!("CARGO_BIN_EXE_rvsadm"), "rvsadm")
}

/// A configuration on one DPDK vdev that needs no network (`net_null0`,
/// `net_ring_<id>`), hugepages off; `rest` follows the port.
pub fn vdev_config(vdev: &str, rest: &str) -> String {
    format!(
        "[eal]\nargs = [\"--no-pci\", \"--vdev={vdev}\"]\nhugepages = \"off\"\nmemory_mb = 128\n\n\
         [[port]]\nname = \"{vdev}\"\naddresses = [\"198.18.0.10/24\"]\n{rest}"
    )
}

/// A fresh directory for files test `id` writes (configurations).
pub fn scratch_dir(tag: &str, id: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rvs-{tag}-{id}"));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// A control-socket path of this test's own.
pub fn socket_path(id: &str) -> String {
    format!("/run/rvs/test-{id}.sock")
}

/// Runs rvsadm with `args` against `socket`; returns (exit code, stdout, stderr).
pub fn rvsadm(socket: &str, args: &str) -> (i32, String, String) {
    let out = run(Command::new(rvsadm_bin()).args(args.split_whitespace()).env("RVSADM_SOCKET", socket));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// rvsadm that must succeed; returns its stdout.
pub fn rvsadm_ok(socket: &str, args: &str) -> String {
    let (code, out, err) = rvsadm(socket, args);
    assert_eq!(code, 0, "rvsadm {args} failed: {err}");
    out
}

/// `n` requests for `url` from namespace `ns`, `parallel` at a time (curl -Z);
/// returns how many got HTTP 200.
pub fn parallel_curls(ns: &str, url: &str, n: usize, parallel: usize) -> usize {
    let list = std::env::temp_dir().join(format!("rvs-urls-{}-{n}-{parallel}", std::process::id()));
    let mut text = String::new();
    for _ in 0..n {
        text.push_str(&format!("url = \"{url}\"\noutput = \"/dev/null\"\n"));
    }
    std::fs::write(&list, text).unwrap();
    let o = in_ns(
        ns,
        &[
            "curl",
            "-s",
            "-Z",
            "--parallel-max",
            &parallel.to_string(),
            "-m",
            "10",
            "-K",
            list.to_str().unwrap(),
            "-w",
            "%{http_code}\n",
        ],
    );
    let _ = std::fs::remove_file(&list);
    String::from_utf8_lossy(&o.stdout).lines().filter(|l| *l == "200").count()
}

/// A counter from rvsd's exit summary (`name=value`; absent means 0).
pub fn exit_counter(log: &str, name: &str) -> u64 {
    let key = format!("{name}=");
    log.split_whitespace().rev().find_map(|w| w.strip_prefix(key.as_str())).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// `curl -s http://addr:port/` from namespace `ns`, `n` times in a row; the bodies.
pub fn curls(ns: &str, url: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let o = in_ns(ns, &["curl", "-s", "-m", "5", url]);
            assert!(o.status.success(), "curl {url} failed: {}", text(&o));
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        })
        .collect()
}

/// End-to-end tests need root (namespaces, packet sockets, hugepages).
pub fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:").map(|v| v.split_whitespace().next().unwrap_or("").to_string()))
        })
        .unwrap_or_default();
    assert_eq!(uid, "0", "end-to-end tests must run as root (namespaces, packet sockets): run scripts/test as root");
}

/// A unique short id for this test's lab copy.
pub fn unique_id(tag: &str) -> String {
    format!("{tag}{}", std::process::id() % 100_000)
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Runs `args` inside network namespace `ns`.
pub fn in_ns(ns: &str, args: &[&str]) -> Output {
    run(Command::new("ip").args(["netns", "exec", ns]).args(args))
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A lab from scripts/lab, brought down on Drop.
pub struct Lab {
    pub name: String,
    pub id: String,
    pub vars: HashMap<String, String>,
}

impl Lab {
    /// As root, lab `name` up under a new id tagged `tag`.
    pub fn start(name: &str, tag: &str) -> Lab {
        require_root();
        Lab::up(name, &unique_id(tag))
    }

    /// A fresh directory of this lab's own for files a test writes (configurations).
    pub fn scratch(&self, tag: &str) -> PathBuf {
        scratch_dir(tag, &self.id)
    }

    /// The control socket `Lab::rvsd` gives the daemon.
    pub fn sock(&self) -> String {
        socket_path(&self.id)
    }

    pub fn up(name: &str, id: &str) -> Lab {
        // Made first so that a failing `up` is still torn down.
        let mut lab = Lab { name: name.to_string(), id: id.to_string(), vars: HashMap::new() };
        let out = run(Command::new(repo_root().join("scripts/lab")).args([name, "up"]).env("RVS_LAB_ID", id));
        assert!(out.status.success(), "scripts/lab {name} up failed:\n{}", text(&out));
        lab.vars = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        lab
    }

    pub fn var(&self, k: &str) -> &str {
        self.vars.get(k).unwrap_or_else(|| panic!("lab {} printed no {k}", self.name))
    }

    pub fn list(&self, k: &str) -> Vec<String> {
        self.var(k).split_whitespace().map(str::to_string).collect()
    }

    /// Starts rvsd in this lab's load-balancer namespace on `config` (the lab's own
    /// when None) with rvsd `args`, its control socket of its own; returns it ready
    /// to serve, and the socket.
    pub fn rvsd(&self, config: Option<&Path>, args: &[&str]) -> (Daemon, String) {
        let sock = self.sock();
        let config = config.unwrap_or_else(|| Path::new(self.var("CONFIG")));
        let mut rvsd = Daemon::start_with(Some(self.var("LB_NS")), config, &[("RVS_CONTROL__SOCKET", &sock)], args);
        rvsd.wait_ready(Duration::from_secs(30));
        (rvsd, sock)
    }
}

/// A lab with rvsd running on its configuration (fields drop in order: rvsd stops
/// before the lab goes down).
pub struct LabRun {
    pub rvsd: Daemon,
    pub sock: String,
    pub lab: Lab,
}

impl LabRun {
    /// Brings up lab `topology` under a new id tagged `tag` and starts rvsd in it.
    pub fn start(topology: &str, tag: &str, args: &[&str]) -> LabRun {
        let lab = Lab::start(topology, tag);
        let (rvsd, sock) = lab.rvsd(None, args);
        LabRun { rvsd, sock, lab }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/lab"))
            .args([&self.name, "down"])
            .env("RVS_LAB_ID", &self.id)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Files a test made (sockets, scratch files), removed when it ends, pass or fail.
pub struct RemoveOnDrop(pub Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// An rvsd process, killed on Drop if still running.
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts rvsd with `config` inside `ns` (None: this namespace).
    pub fn start(ns: Option<&str>, config: &Path, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_with(ns, config, env, &[])
    }

    /// As `start`, with extra rvsd arguments (`--workers 3`).
    pub fn start_with(ns: Option<&str>, config: &Path, env: &[(&str, &str)], args: &[&str]) -> Daemon {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = std::env::temp_dir().join(format!(
            "rvsd-{}-{n}-{}.log",
            std::process::id(),
            config.file_stem().and_then(|s| s.to_str()).unwrap_or("cfg")
        ));
        let f = std::fs::File::create(&log).expect("log file");
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(rvsd_bin());
                c
            }
            None => Command::new(rvsd_bin()),
        };
        cmd.arg("--config").arg(config).args(args).stdin(Stdio::null()).stdout(f.try_clone().expect("dup")).stderr(f);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // `ip netns exec` execs the program: the child's pid is rvsd's.
        let child = cmd.spawn().expect("spawn rvsd");
        Daemon { child: Some(child), log }
    }

    /// The daemon's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until rvsd logs that it is ready; panics with the log if it exits first.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if self.log_text().contains("rvsd ready") {
                return;
            }
            if let Some(st) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("rvsd exited ({st}) before it was ready:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("rvsd not ready after {timeout:?}:\n{}", self.log_text());
    }

    /// SIGKILL: the daemon dies with no goodbye (a crashed director).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits up to `limit`. Returns the exit status and how long the
    /// stop took, or None when it was still running at `limit` (then it is killed).
    pub fn terminate(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let child = self.child.as_mut()?;
        let pid = child.id().to_string();
        let t0 = Instant::now();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return Some((st, t0.elapsed()));
            }
            if t0.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM first, so rvsd removes its control socket; SIGKILL if it hangs.
        let _ = self.terminate(Duration::from_secs(2));
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Names of the files in hugetlbfs (where EAL would leave rtemap_* files).
pub fn hugepage_files() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/hugepages")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// A tcpdump capture in a namespace, written to a pcap file; stopped on Drop.
pub struct Capture {
    child: Option<Child>,
    pub file: PathBuf,
    log: PathBuf,
}

impl Capture {
    /// Starts `tcpdump -i IFACE -w FILE -U` in `ns` and waits until it listens.
    pub fn start(ns: &str, iface: &str, tag: &str) -> Capture {
        let file = std::env::temp_dir().join(format!("rvs-{}-{tag}.pcap", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let err = std::env::temp_dir().join(format!("rvs-{}-{tag}.tcpdump", std::process::id()));
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "tcpdump", "--immediate-mode", "-i", iface, "-U", "-n", "-s", "2048", "-w"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).expect("tcpdump log"))
            .spawn()
            .expect("tcpdump (installed by scripts/setup)");
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if std::fs::read_to_string(&err).unwrap_or_default().contains("listening on") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Capture { child: Some(child), file, log: err }
    }

    /// Stops the capture and returns the frames.
    pub fn stop(mut self) -> Vec<Vec<u8>> {
        if let Some(mut c) = self.child.take() {
            std::thread::sleep(Duration::from_millis(200));
            let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
            let _ = c.wait();
        }
        read_pcap(&self.file)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The frames of a classic pcap file (little-endian, as tcpdump writes here).
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).unwrap_or_default();
    let mut out = Vec::new();
    if b.len() < 24 {
        return out;
    }
    let le = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
    let mut at = 24;
    while at + 16 <= b.len() {
        let incl = le(at + 8);
        at += 16;
        if at + incl > b.len() {
            break;
        }
        out.push(b[at..at + incl].to_vec());
        at += incl;
    }
    out
}

/// IPv4 headers and payload of an Ethernet frame: (src, dst, protocol, ip bytes).
pub fn ipv4_of(frame: &[u8]) -> Option<(std::net::Ipv4Addr, std::net::Ipv4Addr, u8, Vec<u8>)> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let src = std::net::Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = std::net::Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    Some((src, dst, ip[9], ip[..total].to_vec()))
}
