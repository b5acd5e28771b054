//! `rvs-iptables`: the `iptables -t mangle` subset the LVS tutorials mark packets
//! with, applied to rvsd's firewall-mark rules at run time and listed as iptables
//! (Debian 12's, 1.8.9) lists them. The subset: `-A`, `-I`, `-D`, `-R` on the
//! PREROUTING chain, `-F`, `-L [-n] [-v] [--line-numbers]`, `-S`; rules of `-s`,
//! `-d` (IPv4 prefixes), `-p tcp|udp`, `--sport`/`--dport` (a port or a range),
//! `-m multiport --dports`, `-m mac [!] --mac-source`, and `-j MARK --set-mark N`
//! (or `--set-xmark N/0xffffffff`, as `-S` writes it). Anything else is refused
//! with a message that names the option. Rule counters are not kept (`-v` shows 0).

use super::protocol::FwmarkSpec;
use std::fmt::Write;
use std::net::Ipv4Addr;

pub const USAGE: &str = "Usage: rvs-iptables -t mangle COMMAND [rule]
  -A PREROUTING rule          append
  -I PREROUTING [num] rule    insert (at num, 1 first)
  -D PREROUTING rule|num      delete
  -R PREROUTING num rule      replace
  -F [chain]                  flush
  -L [chain] [-n] [-v] [--line-numbers]
  -S [chain]
rule: [-s addr[/len]] [-d addr[/len]] [-p tcp|udp] [--sport port[:port]]
      [--dport port[:port]] [-m multiport --dports port[,port:port...]]
      [-m mac [!] --mac-source MAC] -j MARK --set-mark N
Rules go to rvsd through RVSADM_SOCKET (default /run/rvs/rvsd.sock) at once;
a reload of rvsd's file ([[fwmark]]) replaces them.
";

/// The mangle table's built-in chains, in iptables' order.
pub const CHAINS: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

/// Where a rule goes or which one goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Append(FwmarkSpec),
    /// 1-based position.
    Insert(usize, FwmarkSpec),
    DeleteRule(FwmarkSpec),
    DeleteNum(usize),
    Replace(usize, FwmarkSpec),
    /// `-F [CHAIN]`.
    Flush,
    List {
        chain: Option<String>,
        verbose: bool,
        line_numbers: bool,
    },
    Save {
        chain: Option<String>,
    },
}

impl Op {
    /// The command changes the rules (and must be sent to rvsd).
    pub fn changes(&self) -> bool {
        !matches!(self, Op::List { .. } | Op::Save { .. })
    }
}

fn refuse(what: &str) -> String {
    format!("{what}: not in the subset rvs-iptables applies (-t mangle PREROUTING rules of -s, -d, -p tcp|udp, --sport, --dport, -m multiport --dports, -m mac [!] --mac-source, -j MARK --set-mark)")
}

/// An IPv4 address or prefix (`a.b.c.d`, `/len` or `/a.b.c.d`), as iptables keeps it:
/// the network address with its length.
fn prefix(opt: &str, v: &str) -> Result<String, String> {
    let bad = || format!("host/network `{v}' not found (rvs-iptables takes IPv4 addresses and prefixes for {opt})");
    let (a, len) = match v.split_once('/') {
        None => (v, 32u32),
        Some((a, m)) => {
            let len = match m.parse::<u32>() {
                Ok(l) if l <= 32 => l,
                Ok(_) => return Err(bad()),
                Err(_) => {
                    let mask = u32::from(m.parse::<Ipv4Addr>().map_err(|_| bad())?);
                    if mask.leading_ones() + mask.trailing_zeros() != 32 {
                        return Err(bad());
                    }
                    mask.leading_ones()
                }
            };
            (a, len)
        }
    };
    let a = u32::from(a.parse::<Ipv4Addr>().map_err(|_| bad())?);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok(format!("{}/{len}", Ipv4Addr::from(a & mask)))
}

/// A port or a range `lo:hi`.
fn port_range(opt: &str, v: &str) -> Result<String, String> {
    let bad = || format!("invalid port/service `{v}' specified for {opt}");
    let one = |s: &str| s.parse::<u16>().map_err(|_| bad());
    match v.split_once(':') {
        Some((a, b)) => {
            let (lo, hi) = (one(a)?, one(b)?);
            if lo > hi {
                return Err(bad());
            }
            Ok(if lo == hi { lo.to_string() } else { format!("{lo}:{hi}") })
        }
        None => Ok(one(v)?.to_string()),
    }
}

/// A mark value: decimal or 0x hex, optionally `/0xffffffff`.
fn mark_value(v: &str) -> Result<u32, String> {
    let num = |s: &str| match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse::<u32>().ok(),
    };
    let (value, mask) = match v.split_once('/') {
        Some((a, m)) => (num(a), num(m)),
        None => (num(v), Some(u32::MAX)),
    };
    match (value, mask) {
        (Some(0), _) => Err("--set-mark 0 marks nothing: RVS has no firewall-mark service 0".into()),
        (Some(n), Some(u32::MAX)) => Ok(n),
        (Some(_), Some(_)) => Err(refuse(&format!("MARK with mask `{v}'"))),
        _ => Err(format!("Bad MARK value \"{v}\"")),
    }
}

/// Parses one `iptables` command line (without the program name).
pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Op, String> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let mut table = "filter".to_string();
    let mut cmd: Option<(char, Option<String>)> = None;
    let mut nums: Vec<usize> = Vec::new();
    let (mut verbose, mut line_numbers) = (false, false);
    let mut r = FwmarkSpec::default();
    let (mut dport, mut target, mut mark, mut negate_next) = (None::<String>, None::<String>, None::<u32>, false);
    let mut rule_given = false;
    let mut i = 0;
    let value = |i: &mut usize, opt: &str| -> Result<String, String> {
        *i += 1;
        args.get(*i).map(|s| s.to_string()).ok_or_else(|| format!("option \"{opt}\" requires an argument"))
    };
    while i < args.len() {
        let a = args[i];
        if a == "!" {
            negate_next = true;
            i += 1;
            continue;
        }
        // `--mac-source` is the one option RVS takes negated.
        if negate_next && a != "--mac-source" {
            return Err(refuse(&format!("! {a}")));
        }
        let command = |c: char, cmd: &mut Option<(char, Option<String>)>, i: &mut usize| -> Result<(), String> {
            if cmd.is_some() {
                return Err("Can't use two commands at once".into());
            }
            let chain = args.get(*i + 1).filter(|s| !s.starts_with('-')).map(|s| s.to_string());
            if chain.is_some() {
                *i += 1;
            }
            *cmd = Some((c, chain));
            Ok(())
        };
        match a {
            "-t" | "--table" => table = value(&mut i, a)?,
            "-A" | "--append" => command('A', &mut cmd, &mut i)?,
            "-I" | "--insert" => command('I', &mut cmd, &mut i)?,
            "-D" | "--delete" => command('D', &mut cmd, &mut i)?,
            "-R" | "--replace" => command('R', &mut cmd, &mut i)?,
            "-F" | "--flush" => command('F', &mut cmd, &mut i)?,
            "-L" | "--list" => command('L', &mut cmd, &mut i)?,
            "-S" | "--list-rules" => command('S', &mut cmd, &mut i)?,
            "-n" | "--numeric" => {}
            "-v" | "--verbose" => verbose = true,
            "--line-numbers" => line_numbers = true,
            "-s" | "--source" | "--src" => {
                r.source = Some(prefix(a, &value(&mut i, a)?)?);
                rule_given = true;
            }
            "-d" | "--destination" | "--dst" => {
                r.destination = Some(prefix(a, &value(&mut i, a)?)?);
                rule_given = true;
            }
            "-p" | "--protocol" => {
                let v = value(&mut i, a)?;
                r.protocol = Some(match v.as_str() {
                    "tcp" | "6" => "tcp".into(),
                    "udp" | "17" => "udp".into(),
                    other => return Err(refuse(&format!("-p {other}"))),
                });
                rule_given = true;
            }
            "-m" | "--match" => match value(&mut i, a)?.as_str() {
                "tcp" | "udp" | "multiport" | "mac" => {}
                other => return Err(refuse(&format!("-m {other}"))),
            },
            "--dport" | "--destination-port" => {
                dport = Some(port_range(a, &value(&mut i, a)?)?);
                rule_given = true;
            }
            "--sport" | "--source-port" => {
                r.source_ports = Some(port_range(a, &value(&mut i, a)?)?);
                rule_given = true;
            }
            "--dports" | "--destination-ports" => {
                let v = value(&mut i, a)?;
                let list: Vec<String> = v.split(',').map(|p| port_range(a, p)).collect::<Result<_, _>>()?;
                if list.iter().map(|p| if p.contains(':') { 2 } else { 1 }).sum::<usize>() > 15 {
                    return Err("multiport: too many ports specified".into());
                }
                r.ports = Some(list.join(","));
                r.multiport = true;
                rule_given = true;
            }
            "--mac-source" => {
                let mut v = value(&mut i, a)?;
                // The old form `--mac-source ! MAC`.
                if v == "!" {
                    negate_next = true;
                    v = value(&mut i, a)?;
                }
                let mac = v.to_ascii_lowercase();
                let ok = mac.split(':').count() == 6
                    && mac.split(':').all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
                if !ok {
                    return Err(format!("Bad mac address \"{v}\""));
                }
                r.mac_source = Some(if negate_next { format!("!{mac}") } else { mac });
                negate_next = false;
                rule_given = true;
            }
            "-j" | "--jump" => target = Some(value(&mut i, a)?),
            "--set-mark" | "--set-xmark" => mark = Some(mark_value(&value(&mut i, a)?)?),
            n if !n.starts_with('-') && n.parse::<usize>().is_ok() => {
                nums.push(n.parse().unwrap_or(0));
            }
            other => return Err(refuse(other)),
        }
        i += 1;
    }
    if table != "mangle" {
        return Err(format!(
            "table `{table}': RVS classifies packets with the mangle table's PREROUTING MARK rules only (-t mangle)"
        ));
    }
    let Some((c, chain)) = cmd else {
        return Err("no command specified (one of -A -I -D -R -F -L -S)".into());
    };
    if let Some(ch) = &chain {
        if !CHAINS.contains(&ch.as_str()) {
            return Err("iptables: No chain/target/match by that name.".into());
        }
    }
    if let Some(p) = dport {
        if r.multiport {
            return Err(refuse("--dport with -m multiport --dports"));
        }
        r.ports = Some(p);
    }
    if (r.ports.is_some() || r.source_ports.is_some()) && r.protocol.is_none() {
        return Err("port matches need -p tcp or -p udp".into());
    }
    let rule = |r: FwmarkSpec| -> Result<FwmarkSpec, String> {
        match target.as_deref() {
            Some("MARK") => {}
            Some(t) => return Err(refuse(&format!("-j {t}"))),
            None => return Err(refuse("a rule without -j MARK")),
        }
        let mark = mark.ok_or("MARK target: Parameter --set-mark is required")?;
        Ok(FwmarkSpec { mark, ..r })
    };
    let prerouting = |chain: &Option<String>| -> Result<(), String> {
        match chain.as_deref() {
            Some("PREROUTING") => Ok(()),
            Some(other) => Err(refuse(&format!("chain {other} (only PREROUTING rules classify packets)"))),
            None => Err("a chain is required (PREROUTING)".into()),
        }
    };
    let num = |k: usize| nums.get(k).copied();
    Ok(match c {
        'A' => {
            prerouting(&chain)?;
            Op::Append(rule(r)?)
        }
        'I' => {
            prerouting(&chain)?;
            Op::Insert(num(0).unwrap_or(1).max(1), rule(r)?)
        }
        'D' => {
            prerouting(&chain)?;
            match num(0) {
                Some(n) if !rule_given && target.is_none() => Op::DeleteNum(n),
                _ => Op::DeleteRule(rule(r)?),
            }
        }
        'R' => {
            prerouting(&chain)?;
            Op::Replace(num(0).ok_or("-R needs a rule number")?, rule(r)?)
        }
        'F' => Op::Flush,
        'L' => Op::List { chain, verbose, line_numbers },
        _ => Op::Save { chain },
    })
}

/// Carries out a changing `op` on `rules` (the PREROUTING chain), with iptables'
/// errors.
pub fn apply(op: Op, rules: &mut Vec<FwmarkSpec>) -> Result<(), String> {
    match op {
        Op::Append(r) => rules.push(r),
        Op::Insert(n, r) => {
            if n > rules.len() + 1 {
                return Err("iptables: Index of insertion too big.".into());
            }
            rules.insert(n - 1, r);
        }
        Op::DeleteRule(r) => {
            let i = rules
                .iter()
                .position(|x| *x == r)
                .ok_or("iptables: Bad rule (does a matching rule exist in that chain?).")?;
            rules.remove(i);
        }
        Op::DeleteNum(n) => {
            if n == 0 || n > rules.len() {
                return Err("iptables: Index of deletion too big.".into());
            }
            rules.remove(n - 1);
        }
        Op::Replace(n, r) => {
            if n == 0 || n > rules.len() {
                return Err("iptables: Index of replacement too big.".into());
            }
            rules[n - 1] = r;
        }
        Op::Flush => rules.clear(),
        Op::List { .. } | Op::Save { .. } => {}
    }
    Ok(())
}

/// A prefix as `-L -n` shows it: `0.0.0.0/0` for none, a host bare.
fn shown(p: &Option<String>) -> String {
    match p.as_deref() {
        None => "0.0.0.0/0".into(),
        Some(s) => s.strip_suffix("/32").unwrap_or(s).to_string(),
    }
}

fn proto_number(r: &FwmarkSpec) -> &'static str {
    match r.protocol.as_deref() {
        Some("tcp") => "6",
        Some("udp") => "17",
        _ => "0",
    }
}

/// The matches and the target of a rule as `-L` prints them.
fn matches_shown(r: &FwmarkSpec) -> String {
    let mut parts: Vec<String> = Vec::new();
    let range = |name: &str, v: &str| {
        if v.contains(':') {
            format!("{name}s:{v}")
        } else {
            format!("{name}:{v}")
        }
    };
    let plain_dport = r.ports.as_ref().filter(|_| !r.multiport);
    if r.source_ports.is_some() || plain_dport.is_some() {
        let mut m = r.protocol.clone().unwrap_or_default();
        if let Some(s) = &r.source_ports {
            let _ = write!(m, " {}", range("spt", s));
        }
        if let Some(d) = plain_dport {
            let _ = write!(m, " {}", range("dpt", d));
        }
        parts.push(m);
    }
    if let Some(d) = r.ports.as_ref().filter(|_| r.multiport) {
        parts.push(format!("multiport dports {d}"));
    }
    if let Some(m) = &r.mac_source {
        parts.push(match m.strip_prefix('!') {
            Some(m) => format!("MAC ! {m}"),
            None => format!("MAC {m}"),
        });
    }
    parts.push(if r.mark == u32::MAX { "MARK or 0xffffffff".into() } else { format!("MARK set {:#x}", r.mark) });
    parts.join(" ")
}

/// `iptables -t mangle -L [CHAIN] -n [-v] [--line-numbers]`.
pub fn list(rules: &[FwmarkSpec], chain: Option<&str>, verbose: bool, line_numbers: bool) -> String {
    let mut blocks = Vec::new();
    for ch in CHAINS.iter().filter(|c| chain.is_none_or(|x| x == **c)) {
        let mut out = String::new();
        if verbose {
            let _ = writeln!(out, "Chain {ch} (policy ACCEPT 0 packets, 0 bytes)");
        } else {
            let _ = writeln!(out, "Chain {ch} (policy ACCEPT)");
        }
        if line_numbers {
            out.push_str("num  ");
        }
        if verbose {
            out.push_str(" pkts bytes ");
        }
        out.push_str("target     prot opt ");
        if verbose {
            out.push_str("in     out     ");
        }
        out.push_str("source               destination         \n");
        let mine: &[FwmarkSpec] = if *ch == "PREROUTING" { rules } else { &[] };
        for (n, r) in mine.iter().enumerate() {
            if line_numbers {
                let _ = write!(out, "{:<4} ", n + 1);
            }
            if verbose {
                out.push_str("    0     0 ");
            }
            let _ = write!(out, "{:<10} {:<5}--  ", "MARK", proto_number(r));
            if verbose {
                out.push_str("*      *       ");
            }
            let _ = writeln!(out, "{:<20} {:<20} {}", shown(&r.source), shown(&r.destination), matches_shown(r));
        }
        blocks.push(out);
    }
    blocks.join("\n")
}

/// One rule as `-S` writes it.
pub fn rule_line(r: &FwmarkSpec) -> String {
    let mut l = String::from("-A PREROUTING");
    if let Some(s) = &r.source {
        let _ = write!(l, " -s {s}");
    }
    if let Some(d) = &r.destination {
        let _ = write!(l, " -d {d}");
    }
    if let Some(p) = &r.protocol {
        let _ = write!(l, " -p {p}");
    }
    let plain_dport = r.ports.as_ref().filter(|_| !r.multiport);
    if r.source_ports.is_some() || plain_dport.is_some() {
        let _ = write!(l, " -m {}", r.protocol.as_deref().unwrap_or("tcp"));
        if let Some(s) = &r.source_ports {
            let _ = write!(l, " --sport {s}");
        }
        if let Some(d) = plain_dport {
            let _ = write!(l, " --dport {d}");
        }
    }
    if let Some(d) = r.ports.as_ref().filter(|_| r.multiport) {
        let _ = write!(l, " -m multiport --dports {d}");
    }
    if let Some(m) = &r.mac_source {
        match m.strip_prefix('!') {
            Some(m) => {
                let _ = write!(l, " -m mac ! --mac-source {m}");
            }
            None => {
                let _ = write!(l, " -m mac --mac-source {m}");
            }
        }
    }
    let _ = write!(l, " -j MARK --set-xmark {:#x}/0xffffffff", r.mark);
    l
}

/// `iptables -t mangle -S [CHAIN]`.
pub fn save(rules: &[FwmarkSpec], chain: Option<&str>) -> String {
    let mut out = String::new();
    for ch in CHAINS.iter().filter(|c| chain.is_none_or(|x| x == **c)) {
        let _ = writeln!(out, "-P {ch} ACCEPT");
    }
    if chain.is_none_or(|c| c == "PREROUTING") {
        for r in rules {
            out.push_str(&rule_line(r));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Op, String> {
        parse(&line.split_whitespace().collect::<Vec<_>>())
    }

    fn rules(lines: &[&str]) -> Vec<FwmarkSpec> {
        let mut v = Vec::new();
        for l in lines {
            apply(p(l).unwrap(), &mut v).unwrap();
        }
        v
    }

    const TUTORIAL: [&str; 5] = [
        "-t mangle -A PREROUTING -d 198.18.0.30 -p tcp --dport 80 -j MARK --set-mark 1",
        "-t mangle -A PREROUTING -s 198.18.0.0/24 -d 198.18.0.0/16 -p udp --sport 1000:2000 --dport 53:60 -j MARK --set-mark 300",
        "-t mangle -A PREROUTING -d 198.18.0.10/32 -p tcp -m multiport --dports 80,443 -m mac --mac-source 02:AB:00:00:00:01 -j MARK --set-mark 1",
        "-t mangle -A PREROUTING -p udp --sport 53 -j MARK --set-mark 2",
        "-t mangle -A PREROUTING -m mac ! --mac-source 02:00:00:00:00:01 -j MARK --set-mark 4294967295",
    ];

    /// The listings Debian 12's iptables (1.8.9, nf_tables) printed for the same
    /// five commands in a scratch namespace.
    #[test]
    fn listed_as_iptables_lists_them() {
        let r = rules(&TUTORIAL);
        assert_eq!(
            list(&r, Some("PREROUTING"), false, false),
            concat!(
                "Chain PREROUTING (policy ACCEPT)\n",
                "target     prot opt source               destination         \n",
                "MARK       6    --  0.0.0.0/0            198.18.0.30          tcp dpt:80 MARK set 0x1\n",
                "MARK       17   --  198.18.0.0/24        198.18.0.0/16        udp spts:1000:2000 dpts:53:60 MARK set 0x12c\n",
                "MARK       6    --  0.0.0.0/0            198.18.0.10          multiport dports 80,443 MAC 02:ab:00:00:00:01 MARK set 0x1\n",
                "MARK       17   --  0.0.0.0/0            0.0.0.0/0            udp spt:53 MARK set 0x2\n",
                "MARK       0    --  0.0.0.0/0            0.0.0.0/0            MAC ! 02:00:00:00:00:01 MARK or 0xffffffff\n",
            )
        );
        assert_eq!(
            list(&r[..1], Some("PREROUTING"), true, false),
            concat!(
                "Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)\n",
                " pkts bytes target     prot opt in     out     source               destination         \n",
                "    0     0 MARK       6    --  *      *       0.0.0.0/0            198.18.0.30          tcp dpt:80 MARK set 0x1\n",
            )
        );
        assert_eq!(
            list(&r[..1], None, false, true).lines().take(3).collect::<Vec<_>>(),
            [
                "Chain PREROUTING (policy ACCEPT)",
                "num  target     prot opt source               destination         ",
                "1    MARK       6    --  0.0.0.0/0            198.18.0.30          tcp dpt:80 MARK set 0x1"
            ]
        );
        assert!(list(&[], None, false, false).ends_with(
            "\nChain POSTROUTING (policy ACCEPT)\ntarget     prot opt source               destination         \n"
        ));
        assert_eq!(
            save(&r, None),
            concat!(
                "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n",
                "-A PREROUTING -d 198.18.0.30/32 -p tcp -m tcp --dport 80 -j MARK --set-xmark 0x1/0xffffffff\n",
                "-A PREROUTING -s 198.18.0.0/24 -d 198.18.0.0/16 -p udp -m udp --sport 1000:2000 --dport 53:60 -j MARK --set-xmark 0x12c/0xffffffff\n",
                "-A PREROUTING -d 198.18.0.10/32 -p tcp -m multiport --dports 80,443 -m mac --mac-source 02:ab:00:00:00:01 -j MARK --set-xmark 0x1/0xffffffff\n",
                "-A PREROUTING -p udp -m udp --sport 53 -j MARK --set-xmark 0x2/0xffffffff\n",
                "-A PREROUTING -m mac ! --mac-source 02:00:00:00:00:01 -j MARK --set-xmark 0xffffffff/0xffffffff\n",
            )
        );
        // What -S writes reads back as the same rules.
        let again: Vec<String> =
            save(&r, Some("PREROUTING")).lines().skip(1).map(|l| format!("-t mangle {l}")).collect();
        assert_eq!(rules(&again.iter().map(String::as_str).collect::<Vec<_>>()), r);
    }

    #[test]
    fn insert_delete_replace_flush_as_iptables() {
        let mut r = rules(&TUTORIAL[..2]);
        apply(p("-t mangle -I PREROUTING -p tcp --dport 21 -j MARK --set-mark 21").unwrap(), &mut r).unwrap();
        assert_eq!(r[0].mark, 21);
        apply(p("-t mangle -I PREROUTING 3 -p tcp --dport 22 -j MARK --set-mark 22").unwrap(), &mut r).unwrap();
        assert_eq!(r.iter().map(|x| x.mark).collect::<Vec<_>>(), [21, 1, 22, 300]);
        apply(p("-t mangle -D PREROUTING -d 198.18.0.30/32 -p tcp --dport 80 -j MARK --set-mark 1").unwrap(), &mut r)
            .unwrap();
        apply(p("-t mangle -D PREROUTING 1").unwrap(), &mut r).unwrap();
        apply(p("-t mangle -R PREROUTING 1 -p udp --dport 7 -j MARK --set-mark 7").unwrap(), &mut r).unwrap();
        assert_eq!(r.iter().map(|x| x.mark).collect::<Vec<_>>(), [7, 300]);
        let e = |line: &str, r: &mut Vec<FwmarkSpec>| apply(p(line).unwrap(), r).unwrap_err();
        assert_eq!(e("-t mangle -D PREROUTING 9", &mut r), "iptables: Index of deletion too big.");
        assert_eq!(
            e("-t mangle -I PREROUTING 9 -p tcp -j MARK --set-mark 1", &mut r),
            "iptables: Index of insertion too big."
        );
        assert_eq!(
            e("-t mangle -D PREROUTING -p tcp -j MARK --set-mark 9", &mut r),
            "iptables: Bad rule (does a matching rule exist in that chain?)."
        );
        apply(p("-t mangle -F").unwrap(), &mut r).unwrap();
        assert!(r.is_empty());
    }

    #[test]
    fn outside_the_subset_is_refused_by_name() {
        for (line, want) in [
            ("-A PREROUTING -p tcp -j MARK --set-mark 1", "table `filter'"),
            ("-t nat -A PREROUTING -p tcp -j MARK --set-mark 1", "table `nat'"),
            ("-t mangle -A OUTPUT -p tcp -j MARK --set-mark 1", "chain OUTPUT"),
            ("-t mangle -A PREROUTING -p tcp -j DROP", "-j DROP"),
            ("-t mangle -A PREROUTING -p icmp -j MARK --set-mark 1", "-p icmp"),
            ("-t mangle -A PREROUTING -i eth0 -j MARK --set-mark 1", "-i:"),
            ("-t mangle -A PREROUTING ! -d 198.18.0.1 -j MARK --set-mark 1", "! -d"),
            ("-t mangle -A PREROUTING -m state --state NEW -j MARK --set-mark 1", "-m state"),
            ("-t mangle -A PREROUTING --dport 80 -j MARK --set-mark 1", "need -p tcp or -p udp"),
            ("-t mangle -A PREROUTING -p tcp -j MARK --set-mark 1/0xff", "MARK with mask"),
            ("-t mangle -A PREROUTING -d 2001:2::10 -p tcp -j MARK --set-mark 1", "IPv4"),
            ("-t mangle -A PREROUTING -p tcp -j MARK", "--set-mark is required"),
            ("-t mangle -A FOO -j MARK --set-mark 1", "No chain/target/match by that name"),
            (
                "-t mangle -A PREROUTING -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:16 -j MARK --set-mark 1",
                "too many ports",
            ),
        ] {
            let e = p(line).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        }
    }
}
