//! The `clawguard` command line: parses arguments and calls the library.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use clawguard::config::{Config, LogFormat, Mode};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "clawguard",
    version,
    about = "Data-leak prevention forward proxy for AI agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    // ---- proxy commands (issue 3, networking) ----
    /// Run the proxy.
    Run(RunArgs),
    /// Manage the interception CA.
    #[command(subcommand)]
    Ca(CaCommand),
    // ---- end proxy commands ----
}

// ---- proxy commands (issue 3, networking) ----

#[derive(Args)]
struct RunArgs {
    /// Configuration file (TOML); built-in defaults otherwise.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8383 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// enforce or dry-run.
    #[arg(long)]
    mode: Option<Mode>,
    /// Directory of extra rule packs.
    #[arg(long, value_name = "DIR")]
    rules: Option<PathBuf>,
    /// Directory holding the interception CA.
    #[arg(long, value_name = "DIR")]
    ca_dir: Option<PathBuf>,
    /// Extra PEM file of roots trusted for origins (repeatable; added to the file's list).
    #[arg(long, value_name = "PEM")]
    upstream_ca: Vec<PathBuf>,
    /// text or json.
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum CaCommand {
    /// Create the CA (refuses to replace an existing one without --force).
    Init {
        #[arg(long, value_name = "DIR")]
        ca_dir: Option<PathBuf>,
        /// Replace an existing CA (clients must trust the new one).
        #[arg(long)]
        force: bool,
    },
    /// Print the path of the CA certificate clients must trust.
    Path {
        #[arg(long, value_name = "DIR")]
        ca_dir: Option<PathBuf>,
    },
}

fn run_config(a: RunArgs) -> anyhow::Result<Config> {
    let mut cfg = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config::embedded(),
    };
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if let Some(m) = a.mode {
        cfg.mode = m;
    }
    if let Some(r) = a.rules {
        cfg.rules_dir = Some(r);
    }
    if let Some(d) = a.ca_dir {
        cfg.ca_dir = d;
    }
    cfg.upstream_ca.extend(a.upstream_ca);
    if let Some(f) = a.log_format {
        cfg.log_format = match f {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    Ok(cfg)
}

fn ca_dir(flag: Option<PathBuf>) -> PathBuf {
    match flag {
        Some(d) => clawguard::config::expand_home(&d),
        None => Config::embedded().ca_dir(),
    }
}

fn init_logging(format: LogFormat) {
    use is_terminal::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

fn proxy_command(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Run(a) => {
            let cfg = run_config(a)?;
            init_logging(cfg.log_format);
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(clawguard::proxy::run(cfg))?;
        }
        Command::Ca(CaCommand::Init { ca_dir: d, force }) => {
            init_logging(LogFormat::Text);
            let dir = ca_dir(d);
            let ca = clawguard::tls::CertificateAuthority::init(&dir, force)?;
            println!("{}", ca.path().display());
        }
        Command::Ca(CaCommand::Path { ca_dir: d }) => {
            println!(
                "{}",
                clawguard::tls::CertificateAuthority::cert_path(&ca_dir(d)).display()
            );
        }
    }
    Ok(())
}

// ---- end proxy commands ----

fn main() -> anyhow::Result<()> {
    // Exactly one crypto provider is compiled in; make it the process default before any
    // rustls configuration is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        c @ (Command::Run(_) | Command::Ca(_)) => proxy_command(c),
    }
}
