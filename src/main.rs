//! The `clawguard` command line: parses arguments and calls into the library.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use clawguard::detect::rules::RulePack;
use clawguard::detect::scan::Scanner;
use clawguard::file_scan::{self, Input, WalkOptions};
use clawguard::report::{self, Format};
use is_terminal::IsTerminal;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clawguard::ca_trust;
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
    /// Check this machine and its OpenClaw install against the CNCERT/CCS OpenClaw guide's
    /// baseline: isolation, no root, exposed ports, private data, updates, and the wiring
    /// to ClawGuard (with live checks through the proxy on loopback).
    ///
    /// Exit status: 0 no check failed (warnings allowed), 1 a check failed, 2 error.
    Doctor(DoctorArgs),
    /// Internal: the lockdown side of `exec --lockdown` (started by ClawGuard itself).
    #[command(name = "__lockdown-init", hide = true)]
    LockdownInit {
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<std::ffi::OsString>,
    },
    /// Ask a running proxy to re-read its config file and rule packs (POST /reload on
    /// its admin listener). Sending SIGHUP to the process does the same.
    Reload {
        /// The proxy's admin address.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9383")]
        admin: std::net::SocketAddr,
        /// The admin token file (config `admin_token_file`), when the listener needs one.
        #[arg(long, value_name = "FILE", env = "CLAWGUARD_ADMIN_TOKEN_FILE")]
        token_file: Option<PathBuf>,
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
        /// Ed25519 public key file (hex): every checkpoint must carry its signature.
        #[arg(long)]
        pubkey: Option<PathBuf>,
        /// Checkpoints held elsewhere (the `audit_checkpoint_file` copy, or the syslog
        /// collector's file): the log must reach the newest one, with the same hash.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Create an Ed25519 checkpoint signing key (FILE, 0600) and its public key
    /// (FILE.pub) for `audit_signing_key` and `audit verify --pubkey`.
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
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
    /// Also scan what .gitignore, .ignore and .git/info/exclude list.
    #[arg(long)]
    no_ignore: bool,
    /// Also scan version-control directories (.git/, .hg/, .svn/). Other dotfiles
    /// (.env, .npmrc, …) are always scanned.
    #[arg(long)]
    hidden: bool,
    /// No summary line and no progress bar on standard error.
    #[arg(long, short)]
    quiet: bool,
    /// Files or directories to scan; `-` (or nothing) reads standard input.
    paths: Vec<PathBuf>,
}

#[derive(Args)]
struct DoctorArgs {
    /// One JSON document on standard output instead of the text report.
    #[arg(long)]
    json: bool,
    /// Where the machine's `/` is (its proc, sys, etc, run, tmp): a fixture directory in
    /// tests. The OpenClaw files are looked for under HOME (or OPENCLAW_STATE_DIR).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// ClawGuard's CA directory (the config's `ca_dir` by default).
    #[arg(long, value_name = "DIR")]
    ca_dir: Option<PathBuf>,
    /// The npm registry asked for OpenClaw's newest version.
    #[arg(long, value_name = "URL", env = "npm_config_registry", default_value = clawguard::doctor::updates::DEFAULT_REGISTRY)]
    registry: String,
    /// Check this proxy URL instead of the one OpenClaw is configured with.
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// No network: neither the registry nor the live checks through the proxy.
    #[arg(long)]
    offline: bool,
    /// Bound on each network exchange, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    timeout: u64,
    /// Extra rule packs for the privacy scan.
    #[arg(long, value_name = "DIR")]
    rules: Option<PathBuf>,
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
    /// Run the command where ClawGuard is its only way out (Linux): its own network,
    /// mount, PID and IPC namespaces, no capabilities, seccomp filters, every connect
    /// mediated, no host sockets or resolver. See the README's lockdown section.
    #[arg(long)]
    lockdown: bool,
    /// With --lockdown: let the command connect to this UNIX socket (repeatable). The
    /// socket's listener is trusted: whatever it reaches, the command reaches.
    #[arg(long, value_name = "PATH")]
    allow_socket: Vec<PathBuf>,
    /// With --lockdown: print what the lockdown applied (namespaces, capabilities,
    /// filters, mount view) on standard output before the command starts.
    #[arg(long, value_name = "FORMAT", num_args = 0..=1, default_missing_value = "text")]
    print_profile: Option<ProfileFormatArg>,
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
enum ProfileFormatArg {
    Text,
    Json,
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
    /// Print the path of the CA certificate clients must trust (exit 2 when there is no
    /// CA yet).
    Path {
        #[arg(long, value_name = "DIR")]
        ca_dir: Option<PathBuf>,
    },
    /// Install the CA into the system trust store (update-ca-certificates, update-ca-trust
    /// or p11-kit's trust; needs root), creating it first if there is none, and print the
    /// variables for clients that keep their own roots.
    Trust {
        #[arg(long, value_name = "DIR")]
        ca_dir: Option<PathBuf>,
    },
    /// Remove the CA from the system trust store.
    Untrust {
        #[arg(long, value_name = "DIR")]
        ca_dir: Option<PathBuf>,
    },
    /// Print `export` lines that make Node, Python, curl and git trust the CA without
    /// touching the system store: `eval "$(clawguard ca env)"`.
    Env {
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
    let r = rt.block_on(clawguard::proxy::run(cfg, source));
    // The proxy drained with its own deadline; do not wait again for blocking work
    // (an Argon2 check, an audit write) still running.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    r?;
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
fn cmd_reload(admin: std::net::SocketAddr, token_file: Option<PathBuf>) -> Result<ExitCode> {
    use std::net::TcpStream;
    let authorization = match token_file {
        Some(f) => {
            let raw = std::fs::read(&f).with_context(|| format!("{}", f.display()))?;
            let token = String::from_utf8(raw.trim_ascii().to_vec())
                .context("the admin token is not UTF-8")?;
            format!("Authorization: Bearer {token}\r\n")
        }
        None => String::new(),
    };
    let timeout = std::time::Duration::from_secs(120);
    let mut s = TcpStream::connect_timeout(&admin, std::time::Duration::from_secs(10))
        .with_context(|| format!("connecting to the admin listener at {admin}"))?;
    s.set_read_timeout(Some(timeout))?;
    write!(
        s,
        "POST /reload HTTP/1.1\r\nHost: {admin}\r\n{authorization}{csrf}: 1\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n",
        csrf = clawguard::admin::auth::CSRF_HEADER
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let ok = head.starts_with("HTTP/1.1 200");
    println!("{}", body.trim());
    Ok(ExitCode::from(if ok { 0 } else { 1 }))
}

fn cmd_exec(a: ExecArgs) -> anyhow::Result<ExitCode> {
    // Same configuration, egress policy and root refusal as `run`.
    let config_file = a.run.config.clone();
    let cfg = config_source(a.run).load()?;
    init_logging(cfg.log_format);
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let opts = clawguard::exec::ExecOptions {
        lockdown: a.lockdown,
        proxy: a.proxy,
        no_proxy: a.no_proxy,
        allow_sockets: a.allow_socket,
        config_file,
        print_profile: a.print_profile.map(|f| match f {
            ProfileFormatArg::Text => clawguard::exec::ProfileFormat::Text,
            ProfileFormatArg::Json => clawguard::exec::ProfileFormat::Json,
        }),
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
            println!("{}", ca_trust::ca_cert_path(&ca_dir(d))?.display());
        }
        CaCommand::Trust { ca_dir: d } => {
            let t = ca_trust::trust(&ca_dir(d))?;
            if t.created_ca {
                eprintln!("clawguard: created a CA: {}", t.ca_cert.display());
            }
            eprintln!(
                "clawguard: the system trust store now holds {} ({}; bundle {}): curl, wget, \
                 git and other OpenSSL/GnuTLS clients trust ClawGuard. `clawguard ca untrust` \
                 removes it.",
                t.anchor.display(),
                t.store.tool(),
                t.store.bundle.display()
            );
            print_client_env(&t.ca_cert, "Clients with their own roots need these")?;
        }
        CaCommand::Untrust { ca_dir: d } => {
            let u = ca_trust::untrust(&ca_dir(d))?;
            if u.was_trusted {
                eprintln!(
                    "clawguard: removed {} from the system trust store ({})",
                    u.anchor.display(),
                    u.store.tool()
                );
            } else {
                eprintln!("clawguard: the system trust store did not hold this CA; nothing to do");
            }
            eprintln!(
                "clawguard: unset NODE_EXTRA_CA_CERTS SSL_CERT_FILE REQUESTS_CA_BUNDLE \
                 CURL_CA_BUNDLE GIT_SSL_CAINFO where you exported them"
            );
        }
        CaCommand::Env { ca_dir: d } => {
            let cert = ca_trust::ca_cert_path(&ca_dir(d))?;
            print_client_env(&cert, "Without the system store, clients need these")?;
        }
    }
    Ok(())
}

/// The per-client variables on stdout (`eval`-able), what they are on stderr.
fn print_client_env(ca_cert: &std::path::Path, lead: &str) -> Result<()> {
    let bundle = ca_trust::client_bundle(ca_cert)?;
    eprintln!(
        "clawguard: {lead} (NODE_EXTRA_CA_CERTS adds the CA to Node's roots; the others \
         name {}, the bundle `clawguard exec` writes: system roots plus the CA). \
         `eval \"$(clawguard ca env)\"` sets them in this shell:",
        bundle.display()
    );
    print!("{}", ca_trust::export_lines(ca_cert, &bundle));
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
    if let Command::LockdownInit { command } = cli.command {
        // A fresh process that must stay single-threaded: nothing else runs first.
        std::process::exit(clawguard::exec::lockdown::init_main(command));
    }
    let result = match cli.command {
        Command::LockdownInit { .. } => unreachable!("handled above"),
        Command::Run(a) => cmd_run(a).map(|()| ExitCode::SUCCESS),
        Command::Icap(a) => cmd_icap(a).map(|()| ExitCode::SUCCESS),
        Command::Ca(c) => cmd_ca(c).map(|()| ExitCode::SUCCESS),
        Command::Exec(a) => cmd_exec(a),
        Command::Scan(args) => cmd_scan(args),
        Command::Rules(RulesCommand::List { rules }) => cmd_rules_list(rules),
        Command::Rules(RulesCommand::Test { rules }) => cmd_rules_test(rules),
        Command::User(UserCommand::Add { name }) => cmd_user_add(&name),
        Command::Audit(AuditCommand::Verify {
            file,
            key,
            pubkey,
            checkpoint,
        }) => cmd_audit_verify(file, key, pubkey, checkpoint),
        Command::Audit(AuditCommand::Keygen { out }) => clawguard::audit::checkpoint::keygen(&out)
            .map(|public| {
                println!("{public}");
                ExitCode::SUCCESS
            })
            .map_err(anyhow::Error::from),
        Command::Reload { admin, token_file } => cmd_reload(admin, token_file),
        Command::Doctor(a) => cmd_doctor(a),
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
    let walk = WalkOptions {
        no_ignore: args.no_ignore,
        hidden: args.hidden,
    };
    let interactive = !args.quiet && std::io::stderr().is_terminal();
    let outcome = file_scan::scan(
        &scanner,
        &inputs,
        walk,
        std::io::stdin().lock(),
        interactive,
    );
    let color = args.format == Format::Text && std::io::stdout().is_terminal();
    let (found, errors) = report::print(&scanner, &outcome.results, args.format, color, &mut out)?;
    out.flush()?;
    if !args.quiet {
        eprintln!("{}", outcome.summary());
    }
    Ok(ExitCode::from(if errors > 0 {
        2
    } else if found > 0 {
        1
    } else {
        0
    }))
}

fn cmd_doctor(a: DoctorArgs) -> Result<ExitCode> {
    use clawguard::doctor;
    let machine = doctor::Machine::current(a.root);
    let opts = doctor::Options {
        registry: (!a.offline).then_some(a.registry),
        proxy: a.proxy,
        ca_dir: ca_dir(a.ca_dir),
        no_live: a.offline,
        timeout: std::time::Duration::from_secs(a.timeout.max(1)),
    };
    let report = doctor::run(&machine, &opts, a.rules.as_deref())?;
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        write!(out, "{}", report.to_text(color))?;
    }
    out.flush()?;
    Ok(ExitCode::from(if report.ok { 0 } else { 1 }))
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

fn cmd_audit_verify(
    file: PathBuf,
    key: Option<PathBuf>,
    pubkey: Option<PathBuf>,
    checkpoint: Option<PathBuf>,
) -> Result<ExitCode> {
    use clawguard::audit::checkpoint::{self, Checkpoint};
    let key = key.map(|k| clawguard::audit::read_key(&k)).transpose()?;
    let pubkey = pubkey.map(|p| checkpoint::read_public(&p)).transpose()?;
    let external: Option<Checkpoint> = match &checkpoint {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?;
            let newest = text
                .lines()
                .filter_map(Checkpoint::from_line)
                .max_by_key(|c| c.covers);
            Some(newest.with_context(|| format!("{}: no checkpoint line", p.display()))?)
        }
    };
    let opts = clawguard::audit::VerifyOptions {
        key: key.as_deref(),
        pubkey: pubkey.as_ref(),
        external: external.as_ref(),
    };
    match clawguard::audit::verify_with(&file, &opts) {
        Ok(v) => {
            println!(
                "audit verify: OK: {} record(s) in {} file(s), last hash {}",
                v.records, v.files, v.last_hash
            );
            if pubkey.is_some() {
                println!(
                    "signed checkpoints: {} (last covers record {}), {} record(s) after it{}",
                    v.checkpoints,
                    v.last_checkpoint.map_or("-".into(), |c| c.to_string()),
                    v.unsigned_tail,
                    if v.external_checked {
                        "; external checkpoint matched"
                    } else {
                        ""
                    }
                );
            }
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
