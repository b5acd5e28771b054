//! rvsadm: ipvsadm for RVS. Speaks ipvsadm's command line, prints ipvsadm's
//! listings, and talks to rvsd over its control socket (RVSADM_SOCKET, default
//! /run/rvs/rvsd.sock). Errors are ipvsadm's words, alone on standard error, with
//! ipvsadm's exit status: 2 for a bad command line (and when rvsd cannot be reached,
//! as ipvsadm when it cannot initialize IPVS), 255 when rvsd refuses a change, 1 when
//! a listing cannot be made ("No such service").

#![forbid(unsafe_code)]

use appliance::control::cli::{self, Command};
use appliance::control::listing;
use appliance::control::protocol::{Request, Response, DEFAULT_SOCKET};
use appliance::control::server::{request, request_each};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

fn socket() -> PathBuf {
    std::env::var_os("RVSADM_SOCKET").map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from)
}

/// Why rvsadm stops, and the exit status ipvsadm gives for it.
enum Failure {
    /// A line of `-R`'s input does not parse (ipvsadm: 2).
    CommandLine(String),
    /// rvsd cannot be reached (ipvsadm: "Can't initialize ipvs", 2).
    Unreachable(String),
    /// rvsd refused (ipvsadm prints the kernel's error and exits -1, i.e. 255).
    Refused(String),
    /// A listing could not be made (ipvsadm: 1).
    Listing(String),
    /// `--drained -r`: the real server is still held (1, nothing printed).
    Pending,
}

impl From<String> for Failure {
    fn from(m: String) -> Failure {
        Failure::Refused(m)
    }
}

fn ask(req: &Request) -> Result<Response, Failure> {
    match request(&socket(), req).map_err(Failure::Unreachable)? {
        Response::Error { message } => Err(Failure::Refused(message)),
        r => Ok(r),
    }
}

fn run(cmd: Command) -> Result<String, Failure> {
    match cmd {
        Command::Help => Ok(cli::USAGE.to_string()),
        Command::Version => {
            Ok(format!("rvsadm {} (ipvsadm-compatible; IPVS {})\n", env!("CARGO_PKG_VERSION"), listing::IPVS_VERSION))
        }
        Command::Apply(changes) => ask(&Request::Apply { changes }).map(|_| String::new()),
        Command::Restore => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| format!("reading standard input: {e}"))?;
            let changes = cli::parse_restore(&text).map_err(Failure::CommandLine)?;
            ask(&Request::Apply { changes }).map(|_| String::new())
        }
        Command::Save { nosort } => match ask(&Request::List)? {
            Response::Services { services, .. } => Ok(listing::save(&services, nosort)),
            r => Err(unexpected(r)),
        },
        Command::List(o) if o.timeout => match ask(&Request::Timeouts)? {
            Response::Timeouts { tcp, tcpfin, udp } => Ok(listing::timeouts(tcp, tcpfin, udp)),
            r => Err(unexpected(r)),
        },
        Command::List(o) if o.connections => {
            // Printed as it arrives: rvsd streams the listing a piece at a time.
            let mut out = std::io::stdout().lock();
            let io = |e: std::io::Error| Failure::Listing(format!("writing the listing: {e}"));
            out.write_all(listing::connections_header().as_bytes()).map_err(io)?;
            let each = request_each(&socket(), &Request::Connections, |r| match r {
                Response::ConnectionLines { lines } => {
                    out.write_all(lines.as_bytes()).map_err(|e| format!("writing the listing: {e}"))?;
                    Ok(true)
                }
                Response::ConnectionsEnd { .. } => Ok(false),
                Response::Error { message } => Err(message),
                r => Err(format!("unexpected answer {r:?}")),
            });
            each.map_err(Failure::Listing)?;
            out.flush().map_err(io)?;
            Ok(String::new())
        }
        Command::List(o) => match ask(&Request::List)? {
            Response::Services { services, conn_table_size } => match o.service {
                None => Ok(listing::services_as(&services, conn_table_size, o.style())),
                Some(svc) => {
                    let one: Vec<_> = services.into_iter().filter(|s| s.spec.service == svc).collect();
                    if one.is_empty() {
                        return Err(Failure::Listing("No such service".into()));
                    }
                    Ok(listing::service_entries_as(&one, o.style()))
                }
            },
            r => Err(unexpected(r)),
        },
        Command::Vrrp => match ask(&Request::Vrrp)? {
            Response::Vrrp { listing } => Ok(listing),
            r => Err(unexpected(r)),
        },
        Command::Sysctl => match ask(&Request::Sysctl)? {
            Response::Sysctl { settings } => {
                Ok(settings.iter().map(|(n, v)| format!("net.ipv4.vs.{n} = {v}\n")).collect())
            }
            r => Err(unexpected(r)),
        },
        Command::StartDaemon { role, spec } => ask(&Request::StartDaemon { role, spec }).map(|_| String::new()),
        Command::StopDaemon { role } => ask(&Request::StopDaemon { role }).map(|_| String::new()),
        Command::Drained { service, real } => match ask(&Request::List)? {
            Response::Services { services, .. } => {
                let (text, all) = listing::drained(&services, service, real).map_err(Failure::Listing)?;
                print!("{text}");
                // For scripts waiting on one real server: done once it is drained.
                if real.is_some() && !all {
                    return Err(Failure::Pending);
                }
                Ok(String::new())
            }
            r => Err(unexpected(r)),
        },
        Command::ListDaemon => match ask(&Request::Daemon)? {
            Response::Daemon { listing } => Ok(listing),
            r => Err(unexpected(r)),
        },
        Command::Zero(service) => ask(&Request::Zero { service }).map(|_| String::new()),
        Command::Reload { dry_run, keep } => match ask(&Request::Reload { dry_run, keep })? {
            Response::Reloaded { changes, notes, applied, reverted, dry_run } => {
                let mut out = if dry_run {
                    format!("rvsd would apply {changes} change(s) (dry run: nothing changed)\n")
                } else {
                    format!("rvsd reloaded its configuration: {changes} change(s)\n")
                };
                let verb = if dry_run { "would revert" } else { "reverted" };
                for a in applied {
                    let tag = if reverted.contains(&a) {
                        verb
                    } else if dry_run {
                        "would apply"
                    } else {
                        "applied"
                    };
                    out.push_str(&format!("{tag}: {a}\n"));
                }
                for n in notes {
                    out.push_str(&format!("note: {n}\n"));
                }
                Ok(out)
            }
            r => Err(unexpected(r)),
        },
    }
}

fn unexpected(r: Response) -> Failure {
    Failure::Listing(format!("unexpected answer {r:?}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(cmd) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(Failure::CommandLine(e)) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Err(Failure::Unreachable(e)) => {
            eprintln!("Can't initialize ipvs: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Refused(e)) => {
            eprintln!("{e}");
            ExitCode::from(255)
        }
        Err(Failure::Listing(e)) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
        Err(Failure::Pending) => ExitCode::from(1),
    }
}
