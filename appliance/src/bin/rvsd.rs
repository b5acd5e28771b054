//! rvsd: the RVS daemon. Reads the configuration, starts the appliance
//! (`appliance::daemon`), and stops cleanly on SIGINT / SIGTERM; SIGHUP reloads.
//!
//! Exit codes: 0 after a clean stop, 2 for a configuration error (the message names
//! the key), 1 when DPDK could not bring the configuration up.

#![forbid(unsafe_code)]

use appliance::control::config;
use appliance::daemon::{Daemon, StartError};
use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "rvsd", version, about = "RVS daemon: the Linux Virtual Server director on DPDK")]
struct Cli {
    /// Configuration file (TOML); RVS_<SECTION>__<KEY> environment variables override it.
    #[arg(long, short = 'c', value_name = "FILE", required_unless_present = "from_keepalived")]
    config: Option<PathBuf>,
    /// Print the rvsd configuration equivalent to a keepalived.conf, and exit;
    /// what RVS cannot do is named on standard error (exit 1 unless --lenient).
    #[arg(long, value_name = "FILE")]
    from_keepalived: Option<PathBuf>,
    /// With --from-keepalived: exit 0 even when something was not converted.
    #[arg(long)]
    lenient: bool,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Run N workers (lcores 1..=N, sharing CPUs if there are fewer); overrides
    /// workers.lcores.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: Option<u32>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("RVS_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    if let Some(ka) = &cli.from_keepalived {
        return from_keepalived(ka, cli.lenient);
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::Config(e)) => {
            eprintln!("rvsd: {}: {e}", cli.config.as_deref().unwrap_or(std::path::Path::new("-")).display());
            ExitCode::from(2)
        }
        Err(StartError::Dpdk(e)) => {
            eprintln!("rvsd: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: &Cli) -> Result<(), StartError> {
    let path = cli.config.clone().unwrap_or_default();
    let mut cfg = config::load(&path)?;
    if let Some(n) = cli.workers {
        cfg.set_workers(n);
    }
    cfg.vdev_queues();
    if cli.check {
        println!("rvsd: {} is valid", path.display());
        return Ok(());
    }
    // The handlers are in place before rvsd says it is ready.
    let daemon = Daemon::new();
    let signals = |e: std::io::Error| StartError::Dpdk(format!("installing a signal handler: {e}"));
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register(sig, daemon.stop_flag()).map_err(signals)?;
    }
    signal_hook::flag::register(SIGHUP, daemon.reload_flag()).map_err(signals)?;
    let running = daemon.start(cfg, path)?;
    appliance::daemon::notify::sd_notify("READY=1");
    running.wait();
    Ok(())
}

/// `--from-keepalived FILE`: the converted configuration on standard output.
fn from_keepalived(path: &std::path::Path, lenient: bool) -> ExitCode {
    use appliance::control::keepalived;
    let nodes = match keepalived::read(path) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("rvsd: {e}");
            return ExitCode::from(2);
        }
    };
    let r = keepalived::convert(&nodes, keepalived::own_address);
    print!("{}", r.toml);
    for u in &r.unsupported {
        eprintln!("rvsd: not converted: {u}");
    }
    if r.unsupported.is_empty() || lenient {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
