//! rvs-iptables: `iptables -t mangle` for RVS. The tutorials' firewall-mark lines
//! (`iptables -t mangle -A PREROUTING ... -j MARK --set-mark N`) pasted with
//! `rvs-iptables` in place of `iptables` become rvsd's firewall-mark rules at once;
//! `-L -n` and `-S` list them as iptables does. The subset and its messages:
//! `appliance::control::iptables`. The socket is RVSADM_SOCKET, as rvsadm's. Exit
//! status: 0, 1 when rvsd refuses or cannot be reached or a rule is not there, 2
//! for a command line outside the subset (iptables' own codes).

#![forbid(unsafe_code)]

use appliance::control::iptables::{self, Op};
use appliance::control::protocol::{Change, Request, Response, DEFAULT_SOCKET};
use appliance::control::server::request;
use std::path::PathBuf;
use std::process::ExitCode;

fn socket() -> PathBuf {
    std::env::var_os("RVSADM_SOCKET").map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from)
}

fn ask(req: &Request) -> Result<Response, String> {
    match request(&socket(), req)? {
        Response::Error { message } => Err(message),
        r => Ok(r),
    }
}

fn run(op: Op) -> Result<String, String> {
    let mut rules = match ask(&Request::FwmarkRules)? {
        Response::FwmarkRules { rules } => rules,
        r => return Err(format!("unexpected answer {r:?}")),
    };
    match op {
        Op::List { chain, verbose, line_numbers } => {
            Ok(iptables::list(&rules, chain.as_deref(), verbose, line_numbers))
        }
        Op::Save { chain } => Ok(iptables::save(&rules, chain.as_deref())),
        op => {
            iptables::apply(op, &mut rules)?;
            ask(&Request::Apply { changes: vec![Change::SetFwmarkRules { rules }] })?;
            Ok(String::new())
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", iptables::USAGE);
        return ExitCode::SUCCESS;
    }
    let op = match iptables::parse(&args) {
        Ok(op) => op,
        Err(e) => {
            eprintln!("rvs-iptables: {e}");
            eprintln!("Try `rvs-iptables -h' or 'rvs-iptables --help' for more information.");
            return ExitCode::from(2);
        }
    };
    match run(op) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
