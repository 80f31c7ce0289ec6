//! The `clawguard` command line: parses arguments and calls into the library.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use clawguard::detect::rules::RulePack;
use clawguard::detect::scan::Scanner;
use clawguard::report::{self, Format, Input};
use is_terminal::IsTerminal;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clawguard::config::{Config, ConfigSource, LogFormat, Mode, Overrides};

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
    /// Run the proxy.
    Run(RunArgs),
    /// Serve ICAP (RFC 3507) REQMOD at icap://ADDR/reqmod for Squid and other ICAP
    /// clients: the same config, rules, policy, audit and metrics as `run`.
    Icap(IcapArgs),
    /// Manage the interception CA.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Run a command wired to ClawGuard: an embedded proxy on an ephemeral loopback port
    /// for the command's lifetime, proxy and CA variables set, its exit status returned.
    Exec(ExecArgs),
    /// Scan files, directories or standard input for credentials and personal data.
    ///
    /// Exit status: 0 nothing found, 1 findings, 2 error.
    Scan(ScanArgs),
    /// List or test the rule packs.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Manage proxy users.
    #[command(subcommand)]
    User(UserCommand),
    /// Work with the tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Ask a running proxy to re-read its config file and rule packs (POST /reload on
    /// its admin listener). Sending SIGHUP to the process does the same.
    Reload {
        /// The proxy's admin address.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9383")]
        admin: std::net::SocketAddr,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Hash a password (asked on the terminal, or one line of standard input) and print
    /// the `[users]` line to paste into the config.
    Add { name: String },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain of FILE and its rotated predecessors (FILE.NNNNNN).
    ///
    /// Exit status 0 when intact; 1 naming the first bad record otherwise.
    Verify {
        file: PathBuf,
        /// HMAC key file the log was written with.
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

#[derive(Args)]
struct ScanArgs {
    /// Output format: text (for people), json (one object per finding per line), sarif.
    #[arg(long, default_value = "text")]
    format: Format,
    /// A directory of extra rule packs (*.toml) merged over the built-in ones.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Print the input with every finding replaced by [REDACTED:<rule-id>].
    #[arg(long)]
    redact: bool,
    /// Files or directories to scan; `-` (or nothing) reads standard input.
    paths: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// List the rules: id, category, default action, description.
    List {
        #[arg(long)]
        rules: Option<PathBuf>,
    },
    /// Run every rule's `match` / `no_match` examples; non-zero exit on any miss.
    Test {
        #[arg(long)]
        rules: Option<PathBuf>,
    },
}

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
    /// Allow destinations on loopback and private ranges (config `egress.allow_private`).
    /// Cloud metadata endpoints stay denied.
    #[arg(long)]
    allow_private: bool,
    /// Allow a non-loopback listen address without [users] (config `allow_unauthenticated`).
    #[arg(long)]
    allow_unauthenticated: bool,
    /// Allow running as root (config `allow_root`).
    #[arg(long)]
    allow_root: bool,
    /// Append a hash-chained audit record per decision to FILE (config `audit_log`).
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// HMAC key file for audit records and fingerprints (config `audit_key`).
    #[arg(long, value_name = "FILE")]
    audit_key: Option<PathBuf>,
    /// Admin listener for /metrics, /healthz, /readyz, POST /reload (config `admin`).
    #[arg(long, value_name = "ADDR")]
    admin: Option<std::net::SocketAddr>,
}

#[derive(Args)]
struct IcapArgs {
    /// The same options as `clawguard run`; `--listen` is the ICAP address
    /// (config `[icap] listen`, default 127.0.0.1:1344).
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct ExecArgs {
    /// The same options as `clawguard run` (`--listen` is ignored: the port is ephemeral).
    #[command(flatten)]
    run: RunArgs,
    /// Run the command in its own network namespace whose only reachable endpoint is
    /// ClawGuard: direct connections and DNS lookups fail instead of leaking (Linux).
    #[arg(long)]
    lockdown: bool,
    /// Use a running ClawGuard (http://HOST:PORT) instead of starting one.
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// NO_PROXY for the command; empty (the default) sends everything through ClawGuard.
    #[arg(long, value_name = "LIST", default_value = "")]
    no_proxy: String,
    /// The command and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<std::ffi::OsString>,
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

fn config_source(a: RunArgs) -> ConfigSource {
    ConfigSource {
        file: a.config,
        overrides: Overrides {
            listen: a.listen,
            mode: a.mode,
            rules_dir: a.rules,
            ca_dir: a.ca_dir,
            upstream_ca: a.upstream_ca,
            log_format: a.log_format.map(|f| match f {
                LogFormatArg::Text => LogFormat::Text,
                LogFormatArg::Json => LogFormat::Json,
            }),
            allow_private: a.allow_private,
            allow_unauthenticated: a.allow_unauthenticated,
            allow_root: a.allow_root,
            audit_log: a.audit_log,
            audit_key: a.audit_key,
            admin: a.admin,
            icap_listen: None,
        },
    }
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

fn cmd_run(a: RunArgs) -> anyhow::Result<()> {
    let source = config_source(a);
    let cfg = source.load()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    anyhow::ensure!(
        euid != 0 || cfg.allow_root,
        "refusing to run as root: a proxy that parses untrusted traffic should run as an \
         unprivileged user (pass --allow-root or set allow_root = true to override)"
    );
    init_logging(cfg.log_format);
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(clawguard::proxy::run(cfg, source))?;
    Ok(())
}

fn cmd_icap(mut a: IcapArgs) -> anyhow::Result<()> {
    let listen = a.run.listen.take();
    let mut source = config_source(a.run);
    source.overrides.icap_listen = listen;
    let cfg = source.load()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    anyhow::ensure!(
        euid != 0 || cfg.allow_root,
        "refusing to run as root: a service that parses untrusted traffic should run as an \
         unprivileged user (pass --allow-root or set allow_root = true to override)"
    );
    init_logging(cfg.log_format);
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(clawguard::icap::run(cfg, source))?;
    Ok(())
}

/// POST /reload to the admin listener with a plain HTTP/1.1 exchange.
fn cmd_reload(admin: std::net::SocketAddr) -> Result<ExitCode> {
    use std::net::TcpStream;
    let timeout = std::time::Duration::from_secs(120);
    let mut s = TcpStream::connect_timeout(&admin, std::time::Duration::from_secs(10))
        .with_context(|| format!("connecting to the admin listener at {admin}"))?;
    s.set_read_timeout(Some(timeout))?;
    write!(
        s,
        "POST /reload HTTP/1.1\r\nHost: {admin}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let ok = head.starts_with("HTTP/1.1 200");
    println!("{}", body.trim());
    Ok(ExitCode::from(if ok { 0 } else { 1 }))
}

fn cmd_exec(a: ExecArgs) -> anyhow::Result<ExitCode> {
    // Same configuration and egress policy as `run` (no root refusal: the command is the
    // caller's own, and the embedded proxy only listens on loopback for it).
    let cfg = config_source(a.run).load()?;
    init_logging(cfg.log_format);
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let opts = clawguard::exec::ExecOptions {
        lockdown: a.lockdown,
        proxy: a.proxy,
        no_proxy: a.no_proxy,
        command: a.command,
    };
    let code = rt.block_on(clawguard::exec::run(cfg, opts))?;
    // The runtime may hold blocking tasks (stdin readers of children): don't wait for them.
    rt.shutdown_background();
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

fn cmd_ca(cmd: CaCommand) -> anyhow::Result<()> {
    match cmd {
        CaCommand::Init { ca_dir: d, force } => {
            init_logging(LogFormat::Text);
            let dir = ca_dir(d);
            let ca = clawguard::tls::CertificateAuthority::init(&dir, force)?;
            println!("{}", ca.path().display());
        }
        CaCommand::Path { ca_dir: d } => {
            println!(
                "{}",
                clawguard::tls::CertificateAuthority::cert_path(&ca_dir(d)).display()
            );
        }
    }
    Ok(())
}

fn load_pack(dir: Option<&PathBuf>) -> Result<RulePack> {
    Ok(match dir {
        Some(d) => RulePack::builtin_with_dir(d)?,
        None => RulePack::builtin(),
    })
}

fn main() -> ExitCode {
    // Exactly one crypto provider is compiled in; make it the process default before any
    // rustls configuration is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => cmd_run(a).map(|()| ExitCode::SUCCESS),
        Command::Icap(a) => cmd_icap(a).map(|()| ExitCode::SUCCESS),
        Command::Ca(c) => cmd_ca(c).map(|()| ExitCode::SUCCESS),
        Command::Exec(a) => cmd_exec(a),
        Command::Scan(args) => cmd_scan(args),
        Command::Rules(RulesCommand::List { rules }) => cmd_rules_list(rules),
        Command::Rules(RulesCommand::Test { rules }) => cmd_rules_test(rules),
        Command::User(UserCommand::Add { name }) => cmd_user_add(&name),
        Command::Audit(AuditCommand::Verify { file, key }) => cmd_audit_verify(file, key),
        Command::Reload { admin } => cmd_reload(admin),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("clawguard: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn cmd_scan(args: ScanArgs) -> Result<ExitCode> {
    let pack = load_pack(args.rules.as_ref())?;
    let scanner = Scanner::new(&pack)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.redact {
        let mut input = Vec::new();
        match args.paths.as_slice() {
            [] => {
                std::io::stdin().read_to_end(&mut input)?;
            }
            [p] if p.as_os_str() == "-" => {
                std::io::stdin().read_to_end(&mut input)?;
            }
            [p] => {
                input = std::fs::read(p).with_context(|| format!("{}", p.display()))?;
            }
            _ => anyhow::bail!("--redact takes one file or `-`"),
        }
        let (redacted, n) = report::redact_all(&scanner, &input);
        out.write_all(&redacted)?;
        out.flush()?;
        return Ok(ExitCode::from(if n > 0 { 1 } else { 0 }));
    }
    let inputs: Vec<Input> = if args.paths.is_empty() {
        vec![Input::Stdin]
    } else {
        args.paths
            .iter()
            .map(|p| {
                if p.as_os_str() == "-" {
                    Input::Stdin
                } else {
                    Input::Path(p.clone())
                }
            })
            .collect()
    };
    let (files, mut results, stdin) = report::expand(&inputs);
    if stdin {
        results.push(report::scan_one(&scanner, "-", std::io::stdin().lock()));
    }
    results.extend(report::scan_files(&scanner, &files));
    let color = args.format == Format::Text && std::io::stdout().is_terminal();
    let (found, errors) = report::print(&scanner, &results, args.format, color, &mut out)?;
    out.flush()?;
    Ok(ExitCode::from(if errors > 0 {
        2
    } else if found > 0 {
        1
    } else {
        0
    }))
}

fn cmd_rules_list(dir: Option<PathBuf>) -> Result<ExitCode> {
    let pack = load_pack(dir.as_ref())?;
    let mut out = std::io::stdout().lock();
    for r in pack.enabled() {
        writeln!(
            out,
            "{:32} {:10} {:6} {}",
            r.id,
            r.category.as_str(),
            r.action().as_str(),
            r.description
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_rules_test(dir: Option<PathBuf>) -> Result<ExitCode> {
    let pack = load_pack(dir.as_ref())?;
    let rules = pack.enabled().count();
    let (count, failures) = clawguard::detect::scan::self_test(&pack)?;
    for f in &failures {
        let what = if f.example.is_empty() {
            f.found.join(", ")
        } else if f.expected_match {
            format!(
                "match example not found: {:?} (found: {:?})",
                f.example, f.found
            )
        } else {
            format!("no_match example matched: {:?}", f.example)
        };
        let src = pack.source_of(&f.rule).unwrap_or("?");
        println!("FAIL {} [{}]: {}", f.rule, src, what);
    }
    println!(
        "rules test: {} rules, {} examples, {} failed",
        rules,
        count,
        failures.len()
    );
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn cmd_audit_verify(file: PathBuf, key: Option<PathBuf>) -> Result<ExitCode> {
    let key = key.map(|k| clawguard::audit::read_key(&k)).transpose()?;
    match clawguard::audit::verify(&file, key.as_deref()) {
        Ok(v) => {
            println!(
                "audit verify: OK: {} record(s) in {} file(s), last hash {}",
                v.records, v.files, v.last_hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("audit verify: FAILED: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn cmd_user_add(name: &str) -> Result<ExitCode> {
    let password = if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(format!("password for {name}: "))?;
        let again = rpassword::prompt_password("again: ")?;
        anyhow::ensure!(p == again, "passwords differ");
        p
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    anyhow::ensure!(
        password.len() >= 8,
        "use a password of at least 8 characters"
    );
    println!("{}", clawguard::auth::user_line(name, &password)?);
    eprintln!("paste the line above under [users] in the config");
    Ok(ExitCode::SUCCESS)
}
