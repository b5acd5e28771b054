//! `rvsadm`'s command line: ipvsadm's grammar (short options, clusters such as
//! `-Ln` / `-lnc`, long options, `-p` with an optional timeout), parsed into one
//! `Command`. Numeric addresses only: RVS does no name look-ups.

use super::listing::Format;
use super::protocol::{Change, DestSpec, ServiceKey, ServiceSpec};
use crate::ipvs::dest::FwdMethod;
use crate::ipvs::Protocol;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// ipvsadm's default scheduler.
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// ipvsadm's default persistence timeout.
pub const DEFAULT_PERSISTENCE: u32 = 300;
/// The longest timeout ipvsadm takes (`MAX_TIMEOUT`: 31 days).
pub const MAX_TIMEOUT: u32 = 86400 * 31;

/// What to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListOptions {
    pub connections: bool,
    pub timeout: bool,
    pub service: Option<ServiceKey>,
    pub format: Format,
    /// `--exact`: no K/M/G rounding.
    pub exact: bool,
    /// `--nosort`: the order the kernel keeps (services as added, real servers newest
    /// first).
    pub nosort: bool,
}

impl ListOptions {
    pub fn style(&self) -> super::listing::Style {
        super::listing::Style { format: self.format, exact: self.exact, nosort: self.nosort }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Apply(Vec<Change>),
    List(ListOptions),
    /// `-S [--nosort]`: the configuration as `-A` / `-a` lines.
    Save {
        nosort: bool,
    },
    /// `-R`: read `-A` / `-a` lines from standard input, apply them all at once.
    Restore,
    /// `-Z`: zero the counters of one service or of all.
    Zero(Option<ServiceKey>),
    /// `--reload [--dry-run] [--keep]` (RVS): re-read rvsd's configuration file, as
    /// SIGHUP does; `--dry-run` only says what would change, `--keep` keeps what
    /// rvsadm changed where the file did not change it.
    Reload {
        dry_run: bool,
        keep: bool,
    },
    /// `--vrrp` (RVS): the VRRP instances and their states.
    Vrrp,
    /// `--sysctl` (RVS): the `net.ipv4.vs.*` settings RVS has.
    Sysctl,
    /// `--start-daemon master|backup --mcast-interface IF [--syncid N] [--sync-maxlen N]
    /// [--mcast-group A] [--mcast-port P] [--mcast-ttl T]`.
    StartDaemon {
        role: String,
        spec: crate::control::sync::DaemonSpec,
    },
    /// `--stop-daemon master|backup`.
    StopDaemon {
        role: String,
    },
    /// `-L --daemon`.
    ListDaemon,
    /// `--drained [virtual-service [-r server]]` (RVS): the quiesced real servers
    /// (weight 0) and whether connections or templates still hold them.
    Drained {
        service: Option<ServiceKey>,
        real: Option<(IpAddr, u16)>,
    },
    Version,
    Help,
}

pub const USAGE: &str = "Usage:
  rvsadm -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags]
  rvsadm -D virtual-service
  rvsadm -C
  rvsadm -R
  rvsadm -S [-n]
  rvsadm -a|e virtual-service -r server-address [options]
  rvsadm -d virtual-service -r server-address
  rvsadm -L|l [virtual-service] [options]
  rvsadm -Z [virtual-service]
  rvsadm --set tcp tcpfin udp
  rvsadm --reload [--dry-run] [--keep]
                             (RVS: re-read rvsd's configuration file, like SIGHUP;
                             names each runtime change it reverts; --dry-run: say
                             what would change; --keep: keep rvsadm's changes where
                             the file was not edited)
  rvsadm --vrrp              (RVS: the VRRP instances, their states and masters)
  rvsadm --drained [virtual-service [-r server-address]]
                             (RVS: quiesced real servers, drained or not; with -r,
                             exit 0 once nothing holds it, 1 while something does)
  rvsadm --sysctl [NAME=VALUE] (RVS: net.ipv4.vs.* settings: sloppy_tcp,
                               expire_nodest_conn, expire_quiescent_template)
  rvsadm --start-daemon master|backup --mcast-interface IF [--syncid N] [--sync-maxlen N]
         [--mcast-group ADDR] [--mcast-port PORT] [--mcast-ttl TTL]
  rvsadm --stop-daemon master|backup
  rvsadm -L --daemon
  rvsadm -h

virtual-service: --tcp-service|-t address:port | --udp-service|-u address:port
                 | --fwmark-service|-f fwmark [-6|--ipv6]
options: -n --numeric, -c --connection, --timeout, --stats, --rate, --exact, --thresholds,
         --persistent-conn, --nosort, -g --gatewaying (default), -i --ipip,
         -m --masquerading, -w --weight N, -x --u-threshold N, -y --l-threshold N,
         -r --real-server address[:port], -s --scheduler NAME (default wlc),
         -p --persistent [timeout] (default 300), -M --netmask MASK, -b --sched-flags LIST
The socket is RVSADM_SOCKET, or /run/rvs/rvsd.sock.
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    AddService,
    EditService,
    DelService,
    Clear,
    Restore,
    Save,
    AddDest,
    EditDest,
    DelDest,
    List,
    Zero,
    Set,
    Reload,
    Vrrp,
    Sysctl,
    Drained,
    StartDaemon,
    StopDaemon,
    Version,
    Help,
}

fn long_to_short(l: &str) -> Option<&'static str> {
    Some(match l {
        "add-service" => "A",
        "edit-service" => "E",
        "delete-service" => "D",
        "clear" => "C",
        "restore" => "R",
        "save" => "S",
        "add-server" => "a",
        "edit-server" => "e",
        "delete-server" => "d",
        "list" => "L",
        "zero" => "Z",
        "help" => "h",
        "version" => "v",
        "tcp-service" => "t",
        "udp-service" => "u",
        "fwmark-service" => "f",
        "ipv6" => "6",
        "scheduler" => "s",
        "persistent" => "p",
        "netmask" => "M",
        "real-server" => "r",
        "gatewaying" => "g",
        "ipip" => "i",
        "masquerading" => "m",
        "weight" => "w",
        "u-threshold" => "x",
        "l-threshold" => "y",
        "numeric" => "n",
        "connection" => "c",
        "sched-flags" => "b",
        _ => return None,
    })
}

/// `addr[:port]`, an IPv6 address in brackets: `[2001:2::10]:80`.
pub(crate) fn parse_addr_port(s: &str, what: &str) -> Result<(IpAddr, u16), String> {
    let bad = || format!("illegal {what} address[:port] specified");
    let (addr, p): (IpAddr, Option<&str>) = match s.strip_prefix('[') {
        Some(rest) => {
            let (a, after) = rest.split_once(']').ok_or_else(bad)?;
            let p = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(bad)?),
            };
            (IpAddr::V6(a.parse::<Ipv6Addr>().map_err(|_| bad())?), p)
        }
        None => {
            let (a, p) = match s.rsplit_once(':') {
                Some((a, p)) => (a, Some(p)),
                None => (s, None),
            };
            (IpAddr::V4(a.parse::<Ipv4Addr>().map_err(|_| bad())?), p)
        }
    };
    let port = match p {
        Some(p) => p.parse::<u16>().map_err(|_| bad())?,
        None => 0,
    };
    Ok((addr, port))
}

fn number(v: &str, what: &str, max: u64) -> Result<u32, String> {
    match v.parse::<u64>() {
        Ok(n) if n <= max => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
        _ => Err(format!("illegal {what} specified")),
    }
}

/// Parses one ipvsadm command line (without the program name).
pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Command, String> {
    // Expand long options and short clusters into single short options.
    let mut toks: Vec<String> = Vec::new();
    for a in args.iter().map(AsRef::as_ref) {
        if let Some(l) = a.strip_prefix("--") {
            let (name, val) = match l.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (l, None),
            };
            match name {
                "timeout" | "stats" | "rate" | "exact" | "thresholds" | "persistent-conn" | "sort" | "set"
                | "nosort" | "reload" | "dry-run" | "keep" | "vrrp" | "sysctl" | "drained" | "daemon"
                | "start-daemon" | "stop-daemon" | "mcast-interface" | "syncid" | "sync-maxlen" | "mcast-group"
                | "mcast-port" | "mcast-ttl" => toks.push(format!("--{name}")),
                _ => match long_to_short(name) {
                    Some(s) => toks.push(format!("-{s}")),
                    None => return Err(format!("--{name}: unknown option")),
                },
            }
            if let Some(v) = val {
                toks.push(v.to_string());
            }
        } else if a.len() > 2 && a.starts_with('-') && !a[1..].starts_with(|c: char| c.is_ascii_digit()) {
            // A cluster: -Ln, -lnc; a value-taking option ends it (-w3).
            let chars: Vec<char> = a[1..].chars().collect();
            for (i, c) in chars.iter().enumerate() {
                toks.push(format!("-{c}"));
                if "tufspMrwxyb".contains(*c) && i + 1 < chars.len() {
                    toks.push(chars[i + 1..].iter().collect());
                    break;
                }
            }
        } else {
            toks.push(a.to_string());
        }
    }

    let mut cmd: Option<Cmd> = None;
    let mut service: Option<ServiceKey> = None;
    let mut sched: Option<String> = None;
    let mut persistent: Option<u32> = None;
    let mut netmask: Option<Ipv4Addr> = None;
    let mut prefix6: Option<u8> = None;
    let mut flags: Vec<String> = Vec::new();
    let mut real: Option<(IpAddr, u16)> = None;
    let mut forward: Option<FwdMethod> = None;
    let mut weight: Option<u32> = None;
    let (mut upper, mut lower) = (0u32, 0u32);
    let mut list = ListOptions::default();
    let mut set: Option<(u32, u32, u32)> = None;
    let mut sysctl: Option<(String, u32)> = None;
    let mut role: Option<String> = None;
    let mut daemon = crate::control::sync::DaemonSpec::new("", 0);
    let (mut mcast_if, mut list_daemon) = (None::<String>, false);
    let (mut dry_run, mut keep) = (false, false);

    let mut it = toks.into_iter().peekable();
    let set_cmd = |c: Cmd, cmd: &mut Option<Cmd>| -> Result<(), String> {
        if cmd.is_some_and(|x| x != c) {
            return Err("only one command may be given".into());
        }
        *cmd = Some(c);
        Ok(())
    };
    while let Some(t) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("option {name} requires an argument"));
        match t.as_str() {
            "-A" => set_cmd(Cmd::AddService, &mut cmd)?,
            "-E" => set_cmd(Cmd::EditService, &mut cmd)?,
            "-D" => set_cmd(Cmd::DelService, &mut cmd)?,
            "-C" => set_cmd(Cmd::Clear, &mut cmd)?,
            "-R" => set_cmd(Cmd::Restore, &mut cmd)?,
            "-S" => set_cmd(Cmd::Save, &mut cmd)?,
            "-a" => set_cmd(Cmd::AddDest, &mut cmd)?,
            "-e" => set_cmd(Cmd::EditDest, &mut cmd)?,
            "-d" => set_cmd(Cmd::DelDest, &mut cmd)?,
            "-L" | "-l" => set_cmd(Cmd::List, &mut cmd)?,
            "-Z" => set_cmd(Cmd::Zero, &mut cmd)?,
            "-h" => set_cmd(Cmd::Help, &mut cmd)?,
            "-v" => set_cmd(Cmd::Version, &mut cmd)?,
            "--set" => {
                set_cmd(Cmd::Set, &mut cmd)?;
                let mut three = [0u32; 3];
                for t in &mut three {
                    let v = it.next().ok_or("--set option requires 3 timeout values")?;
                    *t = v
                        .parse::<u32>()
                        .ok()
                        .filter(|&t| t <= MAX_TIMEOUT)
                        .ok_or_else(|| format!("invalid timeout value `{v}' specified"))?;
                }
                set = Some((three[0], three[1], three[2]));
            }
            "-t" | "-u" => {
                let (addr, port) = parse_addr_port(&value(&t)?, "virtual server")?;
                let proto = if t == "-t" { Protocol::Tcp } else { Protocol::Udp };
                service = Some(ServiceKey::of_ip(proto, addr, port));
            }
            "-f" => {
                let v = value("-f")?;
                let mark = number(&v, "fwmark", u64::from(u32::MAX))
                    .ok()
                    .filter(|&m| m > 0)
                    .ok_or_else(|| format!("invalid fwmark value `{v}' specified"))?;
                service = Some(ServiceKey::Fwmark(mark));
            }
            // An IPv6 firewall-mark service (ipvsadm: -6 only after -f).
            "-6" | "--ipv6" => match service {
                Some(ServiceKey::Fwmark(m) | ServiceKey::Fwmark6(m)) => service = Some(ServiceKey::Fwmark6(m)),
                _ => return Err("-6 used before -f".into()),
            },
            "-s" => sched = Some(value("-s")?),
            "-p" => {
                persistent = Some(DEFAULT_PERSISTENCE);
                if let Some(n) = it.peek().and_then(|v| v.parse::<u32>().ok()) {
                    persistent = Some(n);
                    it.next();
                }
            }
            "-M" => {
                // A dotted mask (IPv4), or a prefix length (an IPv6 service's).
                let v = value("-M")?;
                let bad = || "illegal virtual server persistent mask specified".to_string();
                if v.contains('.') {
                    netmask = Some(v.parse().map_err(|_| bad())?);
                } else {
                    prefix6 = Some(v.parse::<u8>().ok().filter(|n| (1..=128).contains(n)).ok_or_else(bad)?);
                }
            }
            "-b" => flags.extend(value("-b")?.split(',').map(str::to_string)),
            "-r" => real = Some(parse_addr_port(&value("-r")?, "real server")?),
            "-g" => forward = Some(FwdMethod::Route),
            "-i" => forward = Some(FwdMethod::Tunnel),
            "-m" => forward = Some(FwdMethod::Masq),
            "-w" => {
                let v = value("-w")?;
                weight = Some(number(&v, "weight", 65535)?);
            }
            "-x" => upper = number(&value("-x")?, "u_threshold", u64::from(u32::MAX))?,
            "-y" => lower = number(&value("-y")?, "l_threshold", u64::from(u32::MAX))?,
            "-n" | "--sort" => {}
            "--nosort" => list.nosort = true,
            "--exact" => list.exact = true,
            "-c" => list.connections = true,
            "--timeout" => list.timeout = true,
            "--stats" => list.format = Format::Stats,
            "--rate" => list.format = Format::Rate,
            "--thresholds" => list.format = Format::Thresholds,
            "--persistent-conn" => list.format = Format::PersistentConn,
            "--reload" => set_cmd(Cmd::Reload, &mut cmd)?,
            "--dry-run" => dry_run = true,
            "--keep" => keep = true,
            "--vrrp" => set_cmd(Cmd::Vrrp, &mut cmd)?,
            "--drained" => set_cmd(Cmd::Drained, &mut cmd)?,
            // `--sysctl` lists; `--sysctl NAME=VALUE` sets, as `sysctl -w
            // net.ipv4.vs.NAME=VALUE` does for the kernel.
            "--sysctl" => {
                set_cmd(Cmd::Sysctl, &mut cmd)?;
                if let Some(v) = it.next_if(|v| v.contains('=')) {
                    let (name, value) = v.split_once('=').unwrap_or_default();
                    let name = name.trim().trim_start_matches("net.ipv4.vs.").to_string();
                    let value = number(value.trim(), &name, u64::from(u32::MAX))?;
                    sysctl = Some((name, value));
                }
            }
            "--start-daemon" | "--stop-daemon" => {
                set_cmd(if t == "--start-daemon" { Cmd::StartDaemon } else { Cmd::StopDaemon }, &mut cmd)?;
                let v = value(&t)?;
                if v != "master" && v != "backup" {
                    return Err("illegal start-daemon parameter specified".into());
                }
                role = Some(v);
            }
            "--daemon" => list_daemon = true,
            "--mcast-interface" => mcast_if = Some(value(&t)?),
            "--syncid" => {
                let v = value(&t)?;
                daemon.syncid = u8::try_from(number(&v, "syncid", 255)?).unwrap_or(0);
            }
            "--sync-maxlen" => {
                let v = value(&t)?;
                daemon.maxlen = usize::try_from(number(&v, "sync-maxlen", 65_507)?).unwrap_or(0);
            }
            "--mcast-group" => {
                let v = value(&t)?;
                daemon.group = v
                    .parse::<Ipv4Addr>()
                    .ok()
                    .filter(Ipv4Addr::is_multicast)
                    .ok_or_else(|| format!("illegal mcast-group specified: {v}"))?;
            }
            "--mcast-port" => {
                let v = value(&t)?;
                daemon.port = u16::try_from(number(&v, "mcast-port", 65_535)?).unwrap_or(0);
            }
            "--mcast-ttl" => {
                let v = value(&t)?;
                daemon.ttl = u8::try_from(number(&v, "mcast-ttl", 255)?).unwrap_or(1).max(1);
            }
            other if other.starts_with('-') => return Err(format!("{other}: unknown option")),
            other => return Err(format!("unexpected argument {other}")),
        }
    }

    let need_service = || service.ok_or_else(|| "no virtual service specified (-t, -u or -f)".to_string());
    let need_real = || real.ok_or_else(|| "no real server specified (-r)".to_string());
    let spec = |svc| ServiceSpec {
        service: svc,
        scheduler: sched.clone().unwrap_or_else(|| DEFAULT_SCHEDULER.into()),
        flags: flags.clone(),
        persistent,
        netmask,
        prefix6,
    };
    let dest = |svc, (addr, port): (IpAddr, u16)| DestSpec {
        service: svc,
        addr,
        port,
        forward: forward.unwrap_or(FwdMethod::Route),
        weight: weight.unwrap_or(1),
        upper,
        lower,
    };
    // ipvsadm checks this before asking the kernel.
    if let (Some(Cmd::AddService | Cmd::EditService), Some(svc)) = (cmd, service) {
        if svc.fwmark().is_none() && svc.port() == 0 && persistent.is_none() {
            return Err("Zero port specified for non-persistent service".into());
        }
    }
    Ok(match cmd {
        // ipvsadm alone lists the table.
        None if args.is_empty() => Command::List(list),
        None => return Err("no command specified (one of -A -E -D -C -R -S -a -e -d -L -Z --set)".into()),
        Some(Cmd::Help) => Command::Help,
        Some(Cmd::Version) => Command::Version,
        Some(Cmd::AddService) => Command::Apply(vec![Change::AddService(spec(need_service()?))]),
        Some(Cmd::EditService) => Command::Apply(vec![Change::EditService(spec(need_service()?))]),
        Some(Cmd::DelService) => Command::Apply(vec![Change::DelService { service: need_service()? }]),
        Some(Cmd::Clear) => Command::Apply(vec![Change::Clear]),
        Some(Cmd::AddDest) => Command::Apply(vec![Change::AddDest(dest(need_service()?, need_real()?))]),
        Some(Cmd::EditDest) => Command::Apply(vec![Change::EditDest(dest(need_service()?, need_real()?))]),
        Some(Cmd::DelDest) => {
            let (addr, port) = need_real()?;
            Command::Apply(vec![Change::DelDest { service: need_service()?, addr, port }])
        }
        Some(Cmd::Set) => {
            let (tcp, tcpfin, udp) = set.unwrap_or((0, 0, 0));
            Command::Apply(vec![Change::SetTimeouts { tcp, tcpfin, udp }])
        }
        Some(Cmd::List) if list_daemon => Command::ListDaemon,
        Some(Cmd::List) => Command::List(ListOptions { service, ..list }),
        Some(Cmd::StartDaemon) => {
            daemon.mcast_interface = mcast_if.ok_or("--start-daemon needs --mcast-interface")?;
            Command::StartDaemon { role: role.unwrap_or_default(), spec: daemon }
        }
        Some(Cmd::StopDaemon) => Command::StopDaemon { role: role.unwrap_or_default() },
        Some(Cmd::Save) => Command::Save { nosort: list.nosort },
        Some(Cmd::Restore) => Command::Restore,
        Some(Cmd::Zero) => Command::Zero(service),
        Some(Cmd::Reload) => Command::Reload { dry_run, keep },
        Some(Cmd::Vrrp) => Command::Vrrp,
        Some(Cmd::Drained) => Command::Drained { service, real },
        Some(Cmd::Sysctl) => match sysctl {
            Some((name, value)) => Command::Apply(vec![Change::SetSysctl { name, value }]),
            None => Command::Sysctl,
        },
    })
}

/// The changes of a `-R` script: one ipvsadm command line per line (blank lines and
/// `#` comments skipped), all to be applied at once.
pub fn parse_restore(text: &str) -> Result<Vec<Change>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match parse(&words).map_err(|e| format!("line {}: {e}", n + 1))? {
            Command::Apply(c) => out.extend(c),
            _ => return Err(format!("line {}: only -A, -E, -D, -C, -a, -e, -d and --set may be restored", n + 1)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const RS1: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);

    fn p(line: &str) -> Result<Command, String> {
        parse(&line.split_whitespace().collect::<Vec<_>>())
    }

    #[test]
    fn the_lvs_labs_command_lines() {
        let tcp80 = ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port: 80 };
        assert_eq!(
            p("-A -t 198.18.0.10:80 -s wlc").unwrap(),
            Command::Apply(vec![Change::AddService(ServiceSpec {
                service: tcp80,
                scheduler: "wlc".into(),
                flags: vec![],
                persistent: None,
                netmask: None,
                prefix6: None
            })])
        );
        assert_eq!(
            p("-a -t 198.18.0.10:80 -r 198.18.1.11 -m -w 3").unwrap(),
            Command::Apply(vec![Change::AddDest(DestSpec {
                service: tcp80,
                addr: std::net::IpAddr::from(RS1),
                port: 0,
                forward: FwdMethod::Masq,
                weight: 3,
                upper: 0,
                lower: 0
            })])
        );
        let Command::Apply(c) = p("-a -t 198.18.0.10:80 -r 198.18.1.11:80 -g").unwrap() else { panic!() };
        assert!(matches!(&c[0], Change::AddDest(d) if d.forward == FwdMethod::Route && d.port == 80 && d.weight == 1));
        let Command::Apply(c) = p("-a -t 198.18.0.10:80 -r 198.18.1.11:80 -i").unwrap() else { panic!() };
        assert!(matches!(&c[0], Change::AddDest(d) if d.forward == FwdMethod::Tunnel));
        let Command::Apply(c) = p("-A -t 198.18.0.10:80 -s rr -p 300").unwrap() else { panic!() };
        assert!(matches!(&c[0], Change::AddService(s) if s.persistent == Some(300)));
        let Command::Apply(c) = p("-A -t 198.18.0.10:0 -s rr -p").unwrap() else { panic!() };
        assert!(
            matches!(&c[0], Change::AddService(s) if s.persistent == Some(300) && s.service == ServiceKey::Addr { proto: Protocol::Tcp, addr: VIP, port: 0 })
        );
        let Command::Apply(c) = p("-A -f 1 -s rr -p 1800 -M 255.255.255.0").unwrap() else { panic!() };
        assert!(
            matches!(&c[0], Change::AddService(s) if s.service == ServiceKey::Fwmark(1) && s.netmask == Some(Ipv4Addr::new(255, 255, 255, 0)))
        );
        let Command::Apply(c) = p("-a -f 1 -r 198.18.1.11 -g").unwrap() else { panic!() };
        assert!(matches!(&c[0], Change::AddDest(d) if d.service == ServiceKey::Fwmark(1)));
        let Command::Apply(c) = p("-A -f 1 -6 -s rr -p 1800 -M 64").unwrap() else { panic!() };
        assert!(matches!(&c[0], Change::AddService(s) if s.service == ServiceKey::Fwmark6(1) && s.prefix6 == Some(64)));
        let Command::Apply(c) = p("-a -f 1 --ipv6 -r [2001:2:0:1::11] -g").unwrap() else { panic!() };
        assert!(matches!(&c[0], Change::AddDest(d) if d.service == ServiceKey::Fwmark6(1)));
        assert_eq!(p("-A -6 -f 1").unwrap_err(), "-6 used before -f");
        assert_eq!(p("-A -t [2001:2::10]:80 -6").unwrap_err(), "-6 used before -f");
        assert_eq!(p("-L -n").unwrap(), Command::List(ListOptions::default()));
        assert_eq!(p("-ln").unwrap(), Command::List(ListOptions::default()));
        assert_eq!(p("-lcn").unwrap(), Command::List(ListOptions { connections: true, ..Default::default() }));
        assert_eq!(p("-Lnc").unwrap(), Command::List(ListOptions { connections: true, ..Default::default() }));
        assert_eq!(p("-L --timeout").unwrap(), Command::List(ListOptions { timeout: true, ..Default::default() }));
        assert_eq!(
            p("--set 900 120 300").unwrap(),
            Command::Apply(vec![Change::SetTimeouts { tcp: 900, tcpfin: 120, udp: 300 }])
        );
        assert_eq!(p("-C").unwrap(), Command::Apply(vec![Change::Clear]));
        assert_eq!(p("-Sn").unwrap(), Command::Save { nosort: false });
        assert_eq!(p("-S -n --nosort").unwrap(), Command::Save { nosort: true });
        assert_eq!(p("").unwrap(), Command::List(ListOptions::default()), "ipvsadm alone lists");
        assert_eq!(p("-L -n --nosort").unwrap(), Command::List(ListOptions { nosort: true, ..Default::default() }));
        assert_eq!(p("-Z").unwrap(), Command::Zero(None));
        assert_eq!(p("-Z -t 198.18.0.10:80").unwrap(), Command::Zero(Some(tcp80)));
        assert_eq!(p("--reload").unwrap(), Command::Reload { dry_run: false, keep: false });
        assert_eq!(p("--reload --dry-run").unwrap(), Command::Reload { dry_run: true, keep: false });
        assert_eq!(p("--reload --keep").unwrap(), Command::Reload { dry_run: false, keep: true });
        assert_eq!(p("--vrrp").unwrap(), Command::Vrrp);
        assert_eq!(p("--sysctl").unwrap(), Command::Sysctl);
        assert_eq!(
            p("--sysctl net.ipv4.vs.sloppy_tcp=1").unwrap(),
            Command::Apply(vec![Change::SetSysctl { name: "sloppy_tcp".into(), value: 1 }])
        );
        assert_eq!(
            p("--sysctl sloppy_tcp=0").unwrap(),
            Command::Apply(vec![Change::SetSysctl { name: "sloppy_tcp".into(), value: 0 }])
        );
        assert_eq!(p("-L --daemon").unwrap(), Command::ListDaemon);
        assert_eq!(p("--stop-daemon backup").unwrap(), Command::StopDaemon { role: "backup".into() });
        let want = crate::control::sync::DaemonSpec {
            maxlen: 1400,
            ttl: 2,
            ..crate::control::sync::DaemonSpec::new("eth1", 1)
        };
        assert_eq!(
            p("--start-daemon master --mcast-interface eth1 --syncid 1 --sync-maxlen 1400 --mcast-ttl 2").unwrap(),
            Command::StartDaemon { role: "master".into(), spec: want }
        );
        assert!(p("--start-daemon leader --mcast-interface eth1").is_err());
        assert!(p("--start-daemon master").is_err());
        assert_eq!(
            p("-L -n --stats --exact").unwrap(),
            Command::List(ListOptions { format: Format::Stats, exact: true, ..Default::default() })
        );
        assert_eq!(p("-ln --rate").unwrap(), Command::List(ListOptions { format: Format::Rate, ..Default::default() }));
        assert_eq!(
            p("-L --thresholds").unwrap(),
            Command::List(ListOptions { format: Format::Thresholds, ..Default::default() })
        );
        assert_eq!(
            p("-L --persistent-conn").unwrap(),
            Command::List(ListOptions { format: Format::PersistentConn, ..Default::default() })
        );
        assert_eq!(p("--list --numeric").unwrap(), Command::List(ListOptions::default()));
        let Command::Apply(c) =
            p("--add-server --tcp-service 198.18.0.10:80 --real-server 198.18.1.11:8080 --masquerading --weight=2")
                .unwrap()
        else {
            panic!()
        };
        assert!(matches!(&c[0], Change::AddDest(d) if d.port == 8080 && d.weight == 2));
        let Command::Apply(c) = p("-A -t 198.18.0.10:80 -s sh -b sh-fallback,sh-port").unwrap() else { panic!() };
        assert!(matches!(&c[0], Change::AddService(s) if s.flags == vec!["sh-fallback", "sh-port"]));
    }

    #[test]
    fn ipv6_services_and_real_servers_in_brackets() {
        let vip6: std::net::Ipv6Addr = "2001:2::10".parse().unwrap();
        let svc = ServiceKey::Addr6 { proto: Protocol::Tcp, addr: vip6, port: 80 };
        let Ok(Command::Apply(c)) = p("-A -t [2001:2::10]:80 -s rr -p 600 -M 64") else { panic!() };
        assert!(
            matches!(&c[0], Change::AddService(s) if s.service == svc && s.persistent == Some(600) && s.prefix6 == Some(64) && s.netmask.is_none()),
            "{c:?}"
        );
        let Ok(Command::Apply(c)) = p("-a -t [2001:2::10]:80 -r [2001:2:0:1::11]:8080 -m -w 2") else { panic!() };
        assert!(
            matches!(&c[0], Change::AddDest(d) if d.service == svc && d.addr == "2001:2:0:1::11".parse::<IpAddr>().unwrap() && d.port == 8080 && d.weight == 2),
            "{c:?}"
        );
        let Ok(Command::Apply(c)) = p("-d -u [2001:2::10]:53 -r [2001:2:0:1::11]") else { panic!() };
        assert!(
            matches!(
                &c[0],
                Change::DelDest { service: ServiceKey::Addr6 { proto: Protocol::Udp, port: 53, .. }, port: 0, .. }
            ),
            "{c:?}"
        );
        for bad in [
            "-A -t 2001:2::10:80",
            "-A -t [2001:2::10:80",
            "-A -t [2001:2::10]80",
            "-A -t [198.18.0.10]:80",
            "-A -t [2001:2::10]:80 -M 129",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors() {
        // ipvsadm's own words where it has them (ipvsadm.c's `fail` calls).
        for (line, want) in [
            ("-A -t 198.18.0:80", "illegal virtual server address[:port] specified"),
            ("-A -t 198.18.0.10:70000", "illegal virtual server address[:port] specified"),
            ("-a -t 198.18.0.10:80 -r 198.18.1.300", "illegal real server address[:port] specified"),
            ("-a -t 198.18.0.10:80 -r 198.18.1.11 -w 70000", "illegal weight specified"),
            ("-a -t 198.18.0.10:80 -r 198.18.1.11 -x x", "illegal u_threshold specified"),
            ("-A -t 198.18.0.10:80 -p 60 -M 255.0.255.0.1", "illegal virtual server persistent mask specified"),
            ("-A -t 198.18.0.10:0", "Zero port specified for non-persistent service"),
            ("-E -t 198.18.0.10:0 -s rr", "Zero port specified for non-persistent service"),
            ("-A -f 0", "invalid fwmark value `0' specified"),
            ("-A -f x", "invalid fwmark value `x' specified"),
            ("--set 1 2", "--set option requires 3 timeout values"),
            ("--set 1 2 x", "invalid timeout value `x' specified"),
            ("--set 1 2 2678401", "invalid timeout value `2678401' specified"),
            ("-q", "-q: unknown option"),
            ("--bogus", "--bogus: unknown option"),
            ("-L -n extra", "unexpected argument extra"),
            ("-a -t 198.18.0.10:80", "no real server specified (-r)"),
            ("-A -s rr", "no virtual service specified (-t, -u or -f)"),
            ("-A -D -t 198.18.0.10:80", "only one command may be given"),
            ("-n", "no command specified (one of -A -E -D -C -R -S -a -e -d -L -Z --set)"),
            ("--start-daemon master", "--start-daemon needs --mcast-interface"),
            ("-a -t 198.18.0.10:80 -r", "option -r requires an argument"),
        ] {
            let e = p(line).unwrap_err();
            assert_eq!(e, want, "{line}");
        }
        assert!(p("-A -t 198.18.0.10:0 -p").is_ok(), "a persistent service may take every port");
    }

    #[test]
    fn restore_scripts() {
        let text = "# saved\n-A -t 198.18.0.10:80 -s rr\n-a -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 1\n\n";
        let c = parse_restore(text).unwrap();
        assert_eq!(c.len(), 2);
        assert!(parse_restore("-L -n\n").unwrap_err().contains("line 1"));
        assert!(parse_restore("-A -t 198.18.0.10:80\n-a -t x -r y\n").unwrap_err().starts_with("line 2"));
    }
}
