//! keepalived.conf to rvsd's configuration (`rvsd --from-keepalived FILE`): the
//! file (and what it `include`s) read into blocks, then each keyword RVS has
//! written as rvsd.toml says it, each one it has not named with its file and line.
//!
//! Converted: `virtual_server` (IP PORT, `fwmark`, `group` with its
//! `virtual_server_group`), `lb_algo`/`lvs_sched`, `lb_kind`/`lvs_method`,
//! `persistence_timeout`, `persistence_granularity`, `protocol`, `quorum`,
//! `hysteresis`, `sorry_server`, `alpha`, `delay_loop`, `real_server` with `weight`,
//! `inhibit_on_failure` and TCP_CHECK / HTTP_GET / MISC_CHECK; `vrrp_instance`,
//! `vrrp_script`, `vrrp_sync_group`, `lvs_sync_daemon`. `global_defs` says nothing
//! a director's forwarding depends on and is left out. Each interface keepalived
//! names becomes a port: an af_packet vdev over it with a kernel interface (where
//! VRRP's advertisements travel), its address the interface's own when this host
//! has it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One `keyword args...` line, with the block it opens.
#[derive(Debug, Clone)]
pub struct Node {
    pub key: String,
    pub args: Vec<String>,
    pub at: String,
    pub children: Vec<Node>,
}

/// The conversion: rvsd.toml's text, and what could not be converted (each
/// "file:line: keyword: why").
#[derive(Debug, Default)]
pub struct Imported {
    pub toml: String,
    pub unsupported: Vec<String>,
}

/// The tokens of one file: (token, line), braces alone, comments (`#`, `!`) gone,
/// double-quoted strings kept whole.
fn tokens(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut cur = String::new();
        let mut quoted = false;
        let push = |cur: &mut String, out: &mut Vec<(String, usize)>| {
            if !cur.is_empty() {
                out.push((std::mem::take(cur), n + 1));
            }
        };
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                _ if quoted => cur.push(c),
                '#' | '!' => break,
                '{' | '}' => {
                    push(&mut cur, &mut out);
                    out.push((c.to_string(), n + 1));
                }
                c if c.is_whitespace() => push(&mut cur, &mut out),
                c => cur.push(c),
            }
        }
        push(&mut cur, &mut out);
    }
    out
}

/// Reads `path` into blocks, following `include` (a pattern whose last part may
/// hold `*`, relative to the including file).
pub fn read(path: &Path) -> Result<Vec<Node>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let toks = tokens(&text);
    let mut i = 0;
    let nodes = block(&toks, &mut i, path)?;
    let mut out = Vec::new();
    for n in nodes {
        if n.key == "include" {
            for f in n.args.iter().flat_map(|p| matches(path, p)) {
                out.extend(read(&f)?);
            }
        } else {
            out.push(n);
        }
    }
    Ok(out)
}

/// The files an `include` pattern names.
fn matches(from: &Path, pattern: &str) -> Vec<PathBuf> {
    let p = Path::new(pattern);
    let p = if p.is_absolute() { p.to_path_buf() } else { from.parent().unwrap_or(Path::new(".")).join(p) };
    let (Some(dir), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str())) else { return vec![] };
    if !name.contains('*') {
        return vec![p.clone()];
    }
    let (pre, post) = name.split_once('*').unwrap_or((name, ""));
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| {
                    f.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(pre) && n.ends_with(post))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Statements up to the closing brace (or the end).
fn block(t: &[(String, usize)], i: &mut usize, file: &Path) -> Result<Vec<Node>, String> {
    let mut out = Vec::new();
    while *i < t.len() {
        let (tok, line) = &t[*i];
        if tok == "}" {
            *i += 1;
            return Ok(out);
        }
        if tok == "{" {
            return Err(format!("{}:{line}: a block with no keyword", file.display()));
        }
        let mut node =
            Node { key: tok.clone(), args: Vec::new(), at: format!("{}:{line}", file.display()), children: Vec::new() };
        *i += 1;
        while *i < t.len() && t[*i].1 == *line && t[*i].0 != "{" && t[*i].0 != "}" {
            node.args.push(t[*i].0.clone());
            *i += 1;
        }
        if *i < t.len() && t[*i].0 == "{" {
            *i += 1;
            node.children = block(t, i, file)?;
        }
        out.push(node);
    }
    Ok(out)
}

/// This host's first IPv4 address on `iface` (`ip -4 -o addr show dev IFACE`), as
/// a prefix.
pub fn own_address(iface: &str) -> Option<String> {
    let o = std::process::Command::new("ip").args(["-4", "-o", "addr", "show", "dev", iface]).output().ok()?;
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    t.split_whitespace().skip_while(|w| *w != "inet").nth(1).map(str::to_string)
}

/// A TOML basic string.
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

struct Out {
    toml: String,
    unsupported: Vec<String>,
    /// Interface name -> port index.
    ports: BTreeMap<String, usize>,
    /// The vrrp_scripts converted (an instance may track only these).
    scripts: Vec<String>,
}

impl Out {
    fn no(&mut self, n: &Node, why: &str) {
        self.unsupported.push(format!("{}: {}: {why}", n.at, n.key));
    }

    fn port(&mut self, iface: &str) -> String {
        let next = self.ports.len();
        let i = *self.ports.entry(iface.to_string()).or_insert(next);
        format!("net_af_packet{i}")
    }
}

fn arg(n: &Node, i: usize) -> &str {
    n.args.get(i).map_or("", String::as_str)
}

/// Converts the blocks read from a keepalived.conf.
pub fn convert(nodes: &[Node], own_address: impl Fn(&str) -> Option<String>) -> Imported {
    let scripts = nodes
        .iter()
        .filter(|n| n.key == "vrrp_script" && n.children.iter().any(|c| c.key == "script"))
        .map(|n| arg(n, 0).to_string())
        .collect();
    let mut o = Out { toml: String::new(), unsupported: Vec::new(), ports: BTreeMap::new(), scripts };
    // Virtual addresses no VRRP instance carries: keepalived leaves them to the
    // host's interface configuration; here the first port owns them.
    let carried: Vec<String> = nodes
        .iter()
        .filter(|n| n.key == "vrrp_instance")
        .flat_map(|n| n.children.iter().filter(|c| c.key.starts_with("virtual_ipaddress")))
        .flat_map(|c| c.children.iter().map(|x| x.key.split('/').next().unwrap_or("").to_string()))
        .collect();
    // (Not one that is also a real server's: that host is not this director.)
    let real: Vec<String> = nodes
        .iter()
        .filter(|n| n.key == "virtual_server")
        .flat_map(|n| n.children.iter().filter(|c| c.key == "real_server").map(|c| arg(c, 0).to_string()))
        .collect();
    let mut owned: Vec<String> = Vec::new();
    for n in nodes.iter().filter(|n| n.key == "virtual_server" && n.args.len() == 2) {
        let a = arg(n, 0).to_string();
        if a.parse::<std::net::IpAddr>().is_ok() && !carried.contains(&a) && !owned.contains(&a) && !real.contains(&a) {
            owned.push(a);
        }
    }
    for g in nodes.iter().filter(|n| n.key == "virtual_server_group") {
        for m in &g.children {
            let fresh = !carried.contains(&m.key) && !owned.contains(&m.key) && !real.contains(&m.key);
            if m.key.parse::<std::net::IpAddr>().is_ok() && fresh {
                owned.push(m.key.clone());
            }
        }
    }
    let groups: BTreeMap<String, &Node> =
        nodes.iter().filter(|n| n.key == "virtual_server_group").map(|n| (arg(n, 0).to_string(), n)).collect();
    let mut body = String::new();
    let mut sync_daemon: Option<(String, String, &Node)> = None;
    for n in nodes {
        match n.key.as_str() {
            "global_defs" => {
                for c in &n.children {
                    match c.key.as_str() {
                        "lvs_sync_daemon" => sync_daemon = Some((arg(c, 0).into(), arg(c, 1).into(), c)),
                        "lvs_sync_daemon_interface" => sync_daemon = Some((arg(c, 0).into(), String::new(), c)),
                        _ => {}
                    }
                }
            }
            "virtual_server_group" => {}
            k if k.starts_with('@') => o.no(n, "conditional configuration: choose the line for this host first"),
            "virtual_server" => virtual_server(&mut o, &mut body, n, &groups),
            "vrrp_instance" => vrrp_instance(&mut o, &mut body, n, &mut sync_daemon),
            "vrrp_script" => vrrp_script(&mut o, &mut body, n),
            "vrrp_sync_group" => vrrp_sync_group(&mut o, &mut body, n),
            _ => o.no(n, "RVS has no such thing"),
        }
    }
    if let Some((iface, inst, at)) = sync_daemon {
        let port = o.port(&iface);
        if inst.is_empty() {
            o.no(at, "lvs_sync_daemon_interface without a vrrp_instance: give lvs_sync_daemon IFACE INSTANCE");
        } else {
            let _ = writeln!(body, "\n[sync]\nlvs_sync_daemon = {}", q(&format!("{port} {inst}")));
        }
    }
    // The ports the interfaces become (one at least: the services arrive somewhere).
    if o.ports.is_empty() {
        o.port("eth0");
    }
    let mut head = String::from(
        "# rvsd configuration converted from keepalived.conf by `rvsd --from-keepalived`.\n\
         # Review the ports: each interface keepalived named is an af_packet vdev here\n\
         # (a NIC bound to vfio-pci is faster) with a kernel interface for VRRP.\n\n[eal]\nargs = [",
    );
    let mut by_index: Vec<(&String, &usize)> = o.ports.iter().collect();
    by_index.sort_by_key(|(_, i)| **i);
    let vdevs: Vec<String> = by_index.iter().map(|(f, i)| q(&format!("--vdev=net_af_packet{i},iface={f}"))).collect();
    let _ = writeln!(head, "\"--no-pci\", {}]", vdevs.join(", "));
    for (iface, i) in &by_index {
        let addr = own_address(iface).unwrap_or_else(|| format!("198.18.{i}.2/24"));
        let note = if own_address(iface).is_some() {
            ""
        } else {
            "   # this host has no address on it: put the port's own here"
        };
        let mut addrs = vec![q(&addr)];
        if **i == 0 {
            addrs
                .extend(owned.iter().map(|a| q(&if a.contains(':') { format!("{a}/128") } else { format!("{a}/32") })));
        }
        let _ = writeln!(
            head,
            "\n[[port]]\nname = \"net_af_packet{i}\"\naddresses = [{}]{note}\nkernel = {}",
            addrs.join(", "),
            q(&format!("rvsk{i}"))
        );
    }
    head.push_str("\n[workers]\nlcores = [1]\n");
    o.toml = head + &body;
    Imported { toml: o.toml, unsupported: o.unsupported }
}

fn virtual_server(o: &mut Out, body: &mut String, n: &Node, groups: &BTreeMap<String, &Node>) {
    // The services this block stands for: (address, port) pairs, or a mark.
    let keys: Vec<(Option<String>, Option<String>, Option<u32>)> = match arg(n, 0) {
        "fwmark" => vec![(None, None, arg(n, 1).parse().ok())],
        "group" => match groups.get(arg(n, 1)) {
            Some(g) => g
                .children
                .iter()
                .filter_map(|m| match m.key.as_str() {
                    "fwmark" => Some((None, None, arg(m, 0).parse().ok())),
                    a if m.args.len() == 1 && !a.contains('-') => {
                        Some((Some(a.to_string()), Some(arg(m, 0).to_string()), None))
                    }
                    _ => {
                        o.no(m, "an address range in a virtual_server_group: list the addresses");
                        None
                    }
                })
                .collect(),
            None => {
                o.no(n, &format!("no virtual_server_group {}", arg(n, 1)));
                return;
            }
        },
        a => vec![(Some(a.to_string()), Some(arg(n, 1).to_string()), None)],
    };
    let mut svc = String::new();
    let mut dests = String::new();
    let mut check: Option<String> = None;
    let mut fwd = "route";
    let mut protocol = "tcp";
    let (mut delay_loop, mut alpha) = (None::<String>, false);
    let mut flags: Vec<String> = Vec::new();
    for c in &n.children {
        match c.key.as_str() {
            "lb_algo" | "lvs_sched" => {
                let _ = writeln!(svc, "scheduler = {}", q(arg(c, 0)));
            }
            "lb_kind" | "lvs_method" => {
                fwd = match arg(c, 0) {
                    "NAT" => "masq",
                    "DR" => "route",
                    "TUN" => "tunnel",
                    other => {
                        o.no(c, &format!("{other} is not NAT, DR or TUN"));
                        "route"
                    }
                }
            }
            "persistence_timeout" => {
                let _ = writeln!(svc, "persistent = {}", arg(c, 0).parse::<u32>().unwrap_or(300));
            }
            "persistence_granularity" => {
                let _ = writeln!(svc, "netmask = {}", q(arg(c, 0)));
            }
            "protocol" => match arg(c, 0) {
                "TCP" => protocol = "tcp",
                "UDP" => protocol = "udp",
                other => o.no(c, &format!("{other}: RVS balances TCP and UDP")),
            },
            "quorum" | "hysteresis" => {
                let _ = writeln!(svc, "{} = {}", c.key, arg(c, 0).parse::<u32>().unwrap_or(1));
            }
            "sorry_server" => {
                let _ = writeln!(svc, "sorry_server = {}", q(&format!("{}:{}", arg(c, 0), arg(c, 1))));
            }
            // keepalived's scheduler flags, one keyword each (ipvsadm's -b).
            "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" | "flag-1" | "flag-2" | "flag-3" => {
                flags.push(q(&c.key))
            }
            // A hashed entry is every entry here.
            "hashed" => {}
            "delay_loop" => delay_loop = Some(arg(c, 0).to_string()),
            "alpha" => alpha = true,
            "real_server" => {
                let (d, chk) = real_server(o, c);
                dests.push_str(&d);
                match (&check, chk) {
                    (None, Some(k)) => check = Some(k),
                    (Some(a), Some(b)) if *a != b => o.no(
                        c,
                        "its check differs from the service's first: RVS checks every real server of a service alike",
                    ),
                    _ => {}
                }
            }
            "omega" | "quorum_up" | "quorum_down" | "virtualhost" | "ha_suspend" | "ops" => {
                o.no(c, "RVS has no such option")
            }
            _ => o.no(c, "not a virtual_server option RVS knows"),
        }
    }
    if !flags.is_empty() {
        let _ = writeln!(svc, "flags = [{}]", flags.join(", "));
    }
    let dests = dests.replace("forward = \"@\"", &format!("forward = {}", q(fwd)));
    for (addr, port, mark) in keys {
        let _ = writeln!(body, "\n[[service]]");
        match (addr, port, mark) {
            (_, _, Some(m)) => {
                let _ = writeln!(body, "fwmark = {m}");
            }
            (Some(a), Some(p), None) => {
                let _ = writeln!(
                    body,
                    "protocol = {}\naddress = {}\nport = {}",
                    q(protocol),
                    q(&a),
                    p.parse::<u16>().unwrap_or(0)
                );
            }
            _ => {}
        }
        body.push_str(&svc);
        if let Some(k) = &check {
            let _ = write!(body, "\n  [service.check]\n{k}");
            if let Some(d) = &delay_loop {
                let _ = writeln!(body, "  delay_loop = {}", d.parse::<u32>().unwrap_or(60));
            }
            if alpha {
                body.push_str("  alpha = true\n");
            }
        }
        body.push_str(&dests);
    }
}

/// A real server: its [[service.dest]] (the forwarding method filled in by the
/// service), and its check's lines.
fn real_server(o: &mut Out, n: &Node) -> (String, Option<String>) {
    let mut d = format!("\n  [[service.dest]]\n  address = {}\n", q(arg(n, 0)));
    if let Ok(p) = arg(n, 1).parse::<u16>() {
        let _ = writeln!(d, "  port = {p}");
    }
    d.push_str("  forward = \"@\"\n");
    let mut check = None;
    let mut inhibit = false;
    for c in &n.children {
        match c.key.as_str() {
            "weight" => {
                let _ = writeln!(d, "  weight = {}", arg(c, 0).parse::<u32>().unwrap_or(1));
            }
            "inhibit_on_failure" => inhibit = true,
            "TCP_CHECK" | "HTTP_GET" | "MISC_CHECK" => check = Some(check_lines(o, c)),
            "SSL_GET" | "SMTP_CHECK" | "DNS_CHECK" | "UDP_CHECK" | "PING_CHECK" | "BFD_CHECK" | "FILE_CHECK" => {
                o.no(c, "RVS checks by TCP_CHECK, HTTP_GET and MISC_CHECK")
            }
            _ => o.no(c, "not a real_server option RVS knows"),
        }
    }
    let check = check.map(|k| if inhibit { k + "  inhibit_on_failure = true\n" } else { k });
    (d, check)
}

fn check_lines(o: &mut Out, n: &Node) -> String {
    let kind = match n.key.as_str() {
        "TCP_CHECK" => "tcp_check",
        "HTTP_GET" => "http_get",
        _ => "misc_check",
    };
    let mut k = format!("  type = {}\n", q(kind));
    for c in &n.children {
        match c.key.as_str() {
            "connect_timeout" | "connect_port" | "delay_before_retry" | "misc_timeout" => {
                let _ = writeln!(k, "  {} = {}", c.key, arg(c, 0).parse::<u32>().unwrap_or(1));
            }
            "retry" | "nb_get_retry" => {
                let _ = writeln!(k, "  retry = {}", arg(c, 0).parse::<u32>().unwrap_or(1));
            }
            "misc_path" => {
                let _ = writeln!(k, "  misc_path = {}", q(&c.args.join(" ")));
            }
            "misc_dynamic" => k.push_str("  misc_dynamic = true\n"),
            "url" if k.contains("  path = ") => o.no(c, "RVS's HTTP_GET checks one url (the first)"),
            "url" => {
                for u in &c.children {
                    match u.key.as_str() {
                        "path" => {
                            let _ = writeln!(k, "  path = {}", q(arg(u, 0)));
                        }
                        "digest" => {
                            let _ = writeln!(k, "  digest = {}", q(arg(u, 0)));
                        }
                        "status_code" => {
                            let _ = writeln!(k, "  status_code = {}", q(arg(u, 0)));
                        }
                        _ => o.no(u, "not a url option RVS knows"),
                    }
                }
            }
            _ => o.no(c, "not a check option RVS knows"),
        }
    }
    k
}

fn vrrp_instance<'a>(o: &mut Out, body: &mut String, n: &'a Node, sync: &mut Option<(String, String, &'a Node)>) {
    let mut v = format!("\n[[vrrp_instance]]\nname = {}\n", q(arg(n, 0)));
    for c in &n.children {
        let a0 = arg(c, 0);
        match c.key.as_str() {
            "state" => {
                let _ = writeln!(v, "state = {}", q(a0));
            }
            "interface" => {
                let port = o.port(a0);
                let _ = writeln!(v, "interface = {}", q(&port));
            }
            "virtual_router_id"
            | "priority"
            | "preempt_delay"
            | "garp_master_delay"
            | "garp_master_repeat"
            | "garp_master_refresh" => {
                let _ = writeln!(v, "{} = {}", c.key, a0.parse::<u32>().unwrap_or(0));
            }
            "advert_int" => {
                let _ = writeln!(v, "advert_int = {}", a0.parse::<f64>().unwrap_or(1.0));
            }
            "version" => {
                let _ = writeln!(v, "version = {}", a0.parse::<u32>().unwrap_or(2));
            }
            "nopreempt" => v.push_str("nopreempt = true\n"),
            "authentication" if c.children.iter().any(|x| x.key == "auth_type" && arg(x, 0) != "PASS") => {
                o.no(c, "RVS authenticates by PASS only (AH is deprecated, RFC 3768)")
            }
            "authentication" => {
                let get = |k: &str| c.children.iter().find(|x| x.key == k).map(|x| arg(x, 0).to_string());
                let _ = writeln!(
                    v,
                    "authentication = {{ auth_type = {}, auth_pass = {} }}",
                    q(&get("auth_type").unwrap_or_else(|| "PASS".into())),
                    q(&get("auth_pass").unwrap_or_default())
                );
            }
            "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                let mut addrs: Vec<String> = Vec::new();
                for x in &c.children {
                    let only_dev = x.args.is_empty() || (x.args.len() == 2 && x.args[0] == "dev");
                    if !only_dev {
                        o.no(x, "only the address is taken (RVS carries it on the instance's port)");
                    }
                    // Listed twice (with another label, say): carried once.
                    if !addrs.contains(&q(&x.key)) {
                        addrs.push(q(&x.key));
                    }
                }
                let _ = writeln!(v, "{} = [{}]", c.key, addrs.join(", "));
            }
            "track_interface" => {
                let ports: Vec<String> = c.children.iter().map(|x| q(&o.port(&x.key))).collect();
                let _ = writeln!(v, "track_interface = [{}]", ports.join(", "));
            }
            "track_script" => {
                let mut names: Vec<String> = Vec::new();
                for x in &c.children {
                    if o.scripts.contains(&x.key) {
                        names.push(q(&x.key));
                    } else {
                        o.no(x, "no vrrp_script of that name was converted: not tracked");
                    }
                }
                let _ = writeln!(v, "track_script = [{}]", names.join(", "));
            }
            "notify_master" | "notify_backup" | "notify_fault" | "notify" => {
                let _ = writeln!(v, "{} = {}", c.key, q(&c.args.join(" ")));
            }
            "lvs_sync_daemon_interface" => *sync = Some((a0.to_string(), arg(n, 0).to_string(), c)),
            "smtp_alert" | "dont_track_primary" => {}
            _ => o.no(c, "not a vrrp_instance option RVS knows"),
        }
    }
    body.push_str(&v);
}

fn vrrp_script(o: &mut Out, body: &mut String, n: &Node) {
    if !n.children.iter().any(|c| c.key == "script") {
        o.no(n, "no script: the block is left out");
        return;
    }
    let mut v = format!("\n[[vrrp_script]]\nname = {}\n", q(arg(n, 0)));
    for c in &n.children {
        match c.key.as_str() {
            "script" => {
                let _ = writeln!(v, "script = {}", q(&c.args.join(" ")));
            }
            "interval" | "timeout" | "rise" | "fall" => {
                let _ = writeln!(v, "{} = {}", c.key, arg(c, 0).parse::<u32>().unwrap_or(1));
            }
            "weight" => {
                let _ = writeln!(v, "weight = {}", arg(c, 0).parse::<i32>().unwrap_or(0));
            }
            _ => o.no(c, "not a vrrp_script option RVS knows"),
        }
    }
    body.push_str(&v);
}

fn vrrp_sync_group(o: &mut Out, body: &mut String, n: &Node) {
    let mut v = format!("\n[[vrrp_sync_group]]\nname = {}\n", q(arg(n, 0)));
    // Members in a `group { }` block, or (an older syntax) listed directly.
    let mut members: Vec<String> = Vec::new();
    for c in &n.children {
        match c.key.as_str() {
            "group" => members.extend(c.children.iter().map(|x| q(&x.key))),
            k if c.args.is_empty()
                && c.children.is_empty()
                && k.starts_with(|ch: char| ch.is_ascii_alphabetic())
                && !k.starts_with("notify")
                && k != "smtp_alert" =>
            {
                members.push(q(k))
            }
            "notify_master" | "notify_backup" | "notify_fault" | "notify" => {
                let _ = writeln!(v, "{} = {}", c.key, q(&c.args.join(" ")));
            }
            "smtp_alert" => {}
            _ => o.no(c, "not a vrrp_sync_group option RVS knows"),
        }
    }
    if members.is_empty() {
        o.no(n, "no member instances: the group is left out");
        return;
    }
    let _ = writeln!(v, "group = [{}]", members.join(", "));
    body.push_str(&v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(text: &str) -> Imported {
        let dir = std::env::temp_dir().join(format!("rvs-ka-{}-{}", std::process::id(), text.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("keepalived.conf");
        std::fs::write(&p, text).unwrap();
        let r = convert(&read(&p).unwrap(), |_| Some("198.18.0.2/24".into()));
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    #[test]
    fn a_nat_service_with_checks_and_a_vrrp_pair_convert_and_validate() {
        let r = conv(
            "! the LVS-NAT tutorial's director\n\
             vrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 51\n  priority 150\n  advert_int 1\n\
               authentication {\n    auth_type PASS\n    auth_pass secret\n  }\n  virtual_ipaddress {\n    198.18.0.10/24 dev eth0\n  }\n}\n\
             virtual_server 198.18.0.10 80 {\n  delay_loop 3\n  lb_algo wrr\n  lb_kind NAT\n  persistence_timeout 300\n  protocol TCP\n\
               quorum 1\n  sorry_server 198.18.1.99 8080\n\
               real_server 198.18.1.11 8080 {\n    weight 3\n    HTTP_GET {\n      url {\n        path /health\n        status_code 200\n      }\n      connect_timeout 2\n      nb_get_retry 2\n      delay_before_retry 1\n    }\n  }\n\
               real_server 198.18.1.12 8080 {\n    weight 1\n    HTTP_GET {\n      url {\n        path /health\n        status_code 200\n      }\n      connect_timeout 2\n      nb_get_retry 2\n      delay_before_retry 1\n    }\n  }\n}\n",
        );
        assert!(r.unsupported.is_empty(), "{:?}", r.unsupported);
        let c = crate::control::config::from_toml(&r.toml).unwrap_or_else(|e| panic!("{e}\n{}", r.toml));
        let (s, d) = &c.model.services[0];
        assert_eq!((s.scheduler.as_str(), s.persistent), ("wrr", Some(300)));
        assert_eq!((d[0].weight, d[0].forward, d[0].port), (3, crate::ipvs::dest::FwdMethod::Masq, 8080));
        assert_eq!(c.vrrp.instances[0].vrid, 51);
        assert_eq!(c.checks.len(), 1);
    }

    #[test]
    fn what_rvs_cannot_do_is_named_with_its_line() {
        let r = conv(
            "virtual_server 198.18.0.10 443 {\n  lb_kind DR\n  protocol TCP\n  real_server 198.18.1.11 443 {\n    SSL_GET {\n      url {\n        path /\n      }\n    }\n  }\n}\nfoo_bar 1\n",
        );
        assert_eq!(r.unsupported.len(), 2, "{:?}", r.unsupported);
        assert!(
            r.unsupported[0].ends_with(":5: SSL_GET: RVS checks by TCP_CHECK, HTTP_GET and MISC_CHECK"),
            "{:?}",
            r.unsupported
        );
        assert!(r.unsupported[1].ends_with(":12: foo_bar: RVS has no such thing"), "{:?}", r.unsupported);
        // What converts still validates.
        crate::control::config::from_toml(&r.toml).unwrap_or_else(|e| panic!("{e}\n{}", r.toml));
    }

    #[test]
    fn groups_fwmarks_and_includes() {
        let dir = std::env::temp_dir().join(format!("rvs-ka-inc-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(
            dir.join("keepalived.conf"),
            "include conf.d/*.conf\nvirtual_server_group WEB {\n  198.18.0.10 80\n  198.18.0.11 80\n}\n\
             virtual_server group WEB {\n  lb_algo mh\n  mh-port\n  lb_kind DR\n  protocol TCP\n  real_server 198.18.1.11 80 {\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n}\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("conf.d/fwm.conf"),
            "virtual_server fwmark 1 {\n  lb_algo rr\n  lb_kind DR\n  persistence_timeout 60\n  real_server 198.18.1.12 0 {\n    weight 2\n  }\n}\n",
        )
        .unwrap();
        let r = convert(&read(&dir.join("keepalived.conf")).unwrap(), |_| None);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(r.unsupported.is_empty(), "{:?}", r.unsupported);
        let c = crate::control::config::from_toml(&r.toml).unwrap_or_else(|e| panic!("{e}\n{}", r.toml));
        let keys: Vec<String> = c.model.services.iter().map(|(s, _)| s.service.to_string()).collect();
        assert_eq!(keys, ["FWM  1", "TCP  198.18.0.10:80", "TCP  198.18.0.11:80"]);
        assert_eq!(c.model.services[1].0.flags, ["mh-port"], "keepalived's scheduler flag keywords");
    }
}
