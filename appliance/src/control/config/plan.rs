//! Where the appliance runs: the EAL command line (lcores, memory mode, vdevs, the
//! exception path's taps) and the CPUs the lcores are placed on.

use super::{Config, ConfigError, Hugepages};

/// The largest lcore id DPDK 22.11 is built for (RTE_MAX_LCORE).
pub const MAX_LCORE: u32 = 128;

impl Config {
    /// The full EAL command line: program name, the lcore list (main lcore first,
    /// then the workers), memory mode, then `eal.args`. With hugepages, `--in-memory`
    /// (no shared files, nothing left in hugetlbfs after exit, several daemons side by
    /// side); without, `--no-huge -m MB --no-shconf`. `--in-memory` and `--no-huge` do
    /// not go together.
    pub fn eal_argv(&self, hugepages_available: bool) -> Vec<String> {
        let mut lcores = vec![self.eal.main_lcore];
        lcores.extend(&self.workers.lcores);
        self.eal_argv_mapped(hugepages_available, &lcores.iter().map(|&l| (l, l)).collect::<Vec<_>>())
    }

    /// As `eal_argv`, with each lcore placed on a CPU (`(lcore, cpu)`, main first):
    /// `-l` when every lcore is its own CPU, else `--lcores L@C,...`.
    pub fn eal_argv_mapped(&self, hugepages_available: bool, map: &[(u32, u32)]) -> Vec<String> {
        let identity = map.iter().all(|(l, c)| l == c);
        let (flag, list) = if identity {
            ("-l", map.iter().map(|(l, _)| l.to_string()).collect::<Vec<_>>().join(","))
        } else {
            ("--lcores", map.iter().map(|(l, c)| format!("{l}@{c}")).collect::<Vec<_>>().join(","))
        };
        let mut argv = vec![
            "rvsd".to_string(),
            flag.to_string(),
            list,
            "--main-lcore".to_string(),
            self.eal.main_lcore.to_string(),
            // RVS exports its own metrics; DPDK's telemetry socket would clash between
            // daemons running side by side.
            "--no-telemetry".to_string(),
        ];
        let explicit = self.eal.args.iter().any(|a| a == "--no-huge" || a == "--in-memory");
        if !explicit {
            let huge = match self.eal.hugepages {
                Hugepages::On => true,
                Hugepages::Off => false,
                Hugepages::Auto => hugepages_available,
            };
            if huge {
                argv.push("--in-memory".to_string());
            } else {
                argv.extend(["--no-huge".to_string(), "-m".to_string(), self.eal.memory_mb.to_string()]);
                argv.push("--no-shconf".to_string());
            }
        }
        argv.extend(self.eal.args.iter().cloned());
        argv
    }

    /// The exception-path vdevs: one net_tap per port with `kernel = "name"`, as
    /// (port index, vdev device name, EAL argument).
    pub fn host_vdevs(&self) -> Vec<(usize, String, String)> {
        self.ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let k = p.kernel.as_ref()?;
                let dev = format!("net_tap_rvs{i}");
                Some((i, dev.clone(), format!("--vdev={dev},iface={k}")))
            })
            .collect()
    }

    /// The first memif vdev in `eal.args` run as a zero-copy client (its index):
    /// it needs hugepages and single-file segments.
    pub fn zero_copy_memif(&self) -> Option<usize> {
        zero_copy_memif(&self.eal.args)
    }

    /// The vdevs `eal.args` asks for: (index in eal.args, device name).
    pub fn vdevs(&self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        let args = &self.eal.args;
        for (i, a) in args.iter().enumerate() {
            let spec = if let Some(s) = a.strip_prefix("--vdev=") {
                Some(s)
            } else if a == "--vdev" {
                args.get(i + 1).map(String::as_str)
            } else {
                None
            };
            if let Some(spec) = spec {
                let name = spec.split(',').next().unwrap_or_default().to_string();
                out.push((i, name));
            }
        }
        out
    }
}

/// Parses a Linux CPU list (`0-3,8,10-11`), as in /sys/devices/system/cpu/online.
pub fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if b < a {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// Checks that every lcore the configuration names is an online CPU, or, with
/// `workers.oversubscribe`, places the workers that are not on the online CPUs
/// (other than the main lcore's when there is another), round robin. Returns
/// (lcore, cpu) pairs, main lcore first.
pub fn check_lcores(cfg: &Config, online: &[u32]) -> Result<Vec<(u32, u32)>, ConfigError> {
    let has = |l: u32| online.contains(&l);
    let main = cfg.eal.main_lcore;
    if !has(main) {
        return Err(ConfigError::new(
            "eal.main_lcore",
            format!("lcore {main} is not an online CPU (online: {online:?})"),
        ));
    }
    let spare: Vec<u32> = match online.iter().copied().filter(|&c| c != main).collect::<Vec<_>>() {
        v if v.is_empty() => vec![main],
        v => v,
    };
    let mut map = vec![(main, main)];
    let mut next = 0;
    for (i, &l) in cfg.workers.lcores.iter().enumerate() {
        if has(l) {
            map.push((l, l));
        } else if cfg.workers.oversubscribe {
            map.push((l, spare[next % spare.len()]));
            next += 1;
        } else {
            return Err(ConfigError::new(
                format!("workers.lcores[{i}]"),
                format!("lcore {l} is not an online CPU (online: {online:?}); set workers.oversubscribe to share CPUs"),
            ));
        }
    }
    Ok(map)
}

impl Config {
    /// `rvsd --workers N`: N worker lcores after the main one, sharing CPUs if
    /// there are fewer.
    pub fn set_workers(&mut self, n: u32) {
        let main = self.eal.main_lcore;
        self.workers.lcores = (0..).filter(|&l| l != main).take(n as usize).collect();
        self.workers.oversubscribe = true;
    }

    /// With several workers, each af_packet vdev needs one queue pair per worker
    /// (`qpairs=N`, fanned out by the kernel); added where the vdev does not say.
    pub fn vdev_queues(&mut self) {
        let n = self.workers.lcores.len();
        if n <= 1 {
            return;
        }
        for a in &mut self.eal.args {
            if a.starts_with("--vdev=net_af_packet") && !a.contains("qpairs=") {
                a.push_str(&format!(",qpairs={n}"));
            }
        }
    }
}

/// The first memif vdev in EAL arguments `args` run as a zero-copy client.
pub(super) fn zero_copy_memif(args: &[String]) -> Option<usize> {
    args.iter().position(|a| a.starts_with("--vdev=net_memif") && a.split(',').any(|kv| kv == "zero-copy=yes"))
}
