//! Every known way out of `clawguard exec --lockdown`, tried from inside against
//! listeners on the host's loopback: each must fail, while the same request through the
//! proxy succeeds. Each case names the class of way out it covers; each runs twice:
//!
//! - `unprivileged`: ClawGuard itself runs as an unprivileged user (`nobody`, via
//!   `setpriv` when the test runs as root, as CI does), so the lockdown uses a user
//!   namespace;
//! - `allow_root`: ClawGuard runs as root with `--allow-root`, so the command is uid 0
//!   (with no capabilities).
//!
//! What is asserted is what the host side saw (the origin's request log, the relays'
//! and resolvers' connection counts), plus the probe's own report. The probes are
//! `tests/peers/lockdown_probe.py` (Python, standard library) and a setuid-root C helper
//! built with gcc. Everything stays on loopback; the case that tries other addresses
//! runs inside its own network namespace. Under `CI=true` a missing tool or kernel
//! feature fails the test.
//!
//! `CLAWGUARD_BYPASS_BIN=<another clawguard>` runs the suite against another build (for
//! example the one before issue 13: its `unix_socket_relay` and
//! `nsenter_into_a_host_namespace` cases fail).

mod common;

use common::{have, in_ci, is_root, skip_if, Origin};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The unprivileged user the `unprivileged` runs use.
const NOBODY: u32 = 65534;

/// The tools the probes use, all on the standard PATH (not a user's shims).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Unprivileged,
    AllowRoot,
}

// ---------------------------------------------------------------------------------------
// Host-side listeners that count what reaches them

/// Counts connections (or datagrams) that arrived.
#[derive(Clone, Default)]
struct Hits(Arc<AtomicUsize>);

impl Hits {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A relay: every connection to `listener` is forwarded to the origin on the host.
fn relay(listener: std::os::unix::net::UnixListener, to: SocketAddr) -> Hits {
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::UnixListener::from_std(listener).unwrap();
    let hits = Hits::default();
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            h.hit();
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    hits
}

/// A relay on a socket file anyone may connect to (so only the lockdown stops it).
fn unix_relay(path: &Path, to: SocketAddr) -> Hits {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let l = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    relay(l, to)
}

fn abstract_relay(name: &str, to: SocketAddr) -> Hits {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    relay(
        std::os::unix::net::UnixListener::bind_addr(&addr).unwrap(),
        to,
    )
}

/// A UDP echo server.
async fn udp_echo(bind: &str) -> (SocketAddr, Hits) {
    let s = tokio::net::UdpSocket::bind(bind).await.unwrap();
    let addr = s.local_addr().unwrap();
    let hits = Hits::default();
    let h = hits.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            h.hit();
            let _ = s.send_to(&buf[..n], from).await;
        }
    });
    (addr, hits)
}

/// A TCP listener that answers one HTTP status line per connection.
async fn tcp_counter(bind: &str) -> (SocketAddr, Hits) {
    let l = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Hits::default();
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            h.hit();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            // Read the request head first: closing with unread bytes sends a RST, which
            // can reach the proxy before it has read the answer (a flaky 502).
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nhost\n").await;
            let _ = s.shutdown().await;
        }
    });
    (addr, hits)
}

/// A datagram socket file that counts what it receives.
fn unix_datagram_sink(path: &Path) -> Hits {
    let s = std::os::unix::net::UnixDatagram::bind(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    s.set_nonblocking(true).unwrap();
    let s = tokio::net::UnixDatagram::from_std(s).unwrap();
    let hits = Hits::default();
    let h = hits.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while s.recv(&mut buf).await.is_ok() {
            h.hit();
        }
    });
    hits
}

// ---------------------------------------------------------------------------------------
// Fixtures shared by all cases of this test process

struct Tools {
    /// The clawguard binary, at a path the unprivileged user can execute.
    clawguard: PathBuf,
    /// The setuid-root helper (built once), written into each case's directory.
    setuid_probe: Option<Vec<u8>>,
}

/// `true` if `nobody` can run `path` (every directory above it is searchable).
fn nobody_can_run(path: &Path) -> bool {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "test",
            "-x",
        ])
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

fn tools() -> &'static Tools {
    static T: OnceLock<Tools> = OnceLock::new();
    T.get_or_init(|| {
        let built = std::env::var_os("CLAWGUARD_BYPASS_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_clawguard")));
        // Outside the (possibly private) checkout: one directory, reused across runs.
        let cache = std::env::temp_dir().join("clawguard-bypass");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o755)).unwrap();
        let clawguard = if !is_root() || nobody_can_run(&built) {
            built
        } else {
            // A copy nobody can run, named by the build's time; older copies go.
            let stamp = std::fs::metadata(&built)
                .and_then(|m| m.modified())
                .map(|t| {
                    t.duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs()
                })
                .unwrap_or(0);
            let copy = cache.join(format!("clawguard-{stamp}"));
            if !copy.exists() {
                for old in std::fs::read_dir(&cache).unwrap().flatten() {
                    if old.file_name().to_string_lossy().starts_with("clawguard-") {
                        let _ = std::fs::remove_file(old.path());
                    }
                }
                let tmp = cache.join(format!("tmp.{}", std::process::id()));
                if std::fs::hard_link(&built, &tmp).is_err() {
                    std::fs::copy(&built, &tmp).unwrap();
                }
                let _ = std::fs::rename(&tmp, &copy);
            }
            copy
        };
        let setuid_probe = (is_root() && have("gcc")).then(|| {
            let out = cache.join(format!("setuid_probe.{}", std::process::id()));
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/setuid_probe.c");
            let st = Command::new("gcc")
                .args(["-O1", "-o"])
                .arg(&out)
                .arg(&src)
                .status()
                .unwrap();
            assert!(st.success(), "gcc builds {}", src.display());
            let bytes = std::fs::read(&out).unwrap();
            let _ = std::fs::remove_file(&out);
            bytes
        });
        Tools {
            clawguard,
            setuid_probe,
        }
    })
}

// ---------------------------------------------------------------------------------------
// One case: an origin, a directory the command works in, and `clawguard exec` runs

struct Case {
    name: &'static str,
    mode: Mode,
    origin: Origin,
    /// The command's working directory (world-writable; carried into the lockdown).
    dir: tempfile::TempDir,
    origin_ca: PathBuf,
}

/// Something extra the spawned ClawGuard gets.
#[derive(Clone, Copy)]
enum Extra {
    None,
    /// This descriptor, open without close-on-exec at [`INHERITED_FD`].
    Descriptor(std::os::fd::RawFd),
    /// A terminal (run under `script`).
    Terminal,
    /// A kernel without `calls`: each fails with its errno (a seccomp filter on
    /// ClawGuard, as an older kernel or a sysctl would), and optionally `fd` as in
    /// [`Extra::Descriptor`].
    Without {
        calls: &'static [(i64, i32)],
        fd: Option<std::os::fd::RawFd>,
    },
}

/// A seccomp filter that fails `nr` with `errno` and allows everything else.
fn kernel_without(nr: i64, errno: i32) -> seccompiler::BpfProgram {
    let arch: seccompiler::TargetArch = std::env::consts::ARCH.try_into().unwrap();
    seccompiler::SeccompFilter::new(
        [(nr, vec![])].into_iter().collect(),
        seccompiler::SeccompAction::Allow,
        seccompiler::SeccompAction::Errno(errno as u32),
        arch,
    )
    .unwrap()
    .try_into()
    .unwrap()
}

/// Whether this kernel has Landlock (`landlock_create_ruleset`'s version query).
fn have_landlock() -> bool {
    // SAFETY: the documented version query: null attribute, size 0, flag VERSION.
    unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        ) > 0
    }
}

/// Where ClawGuard finds the descriptor of [`Extra::Descriptor`].
const INHERITED_FD: i32 = 9;

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Every probe line says `blocked`, none `reached`, and there was at least one.
    fn assert_all_blocked(&self, case: &Case) {
        let probes: Vec<&str> = self
            .lines()
            .into_iter()
            .filter(|l| l.starts_with("reached") || l.starts_with("blocked"))
            .collect();
        assert!(
            !probes.is_empty(),
            "{}: no probe ran\n{}\n{}",
            case.label(),
            self.stdout,
            self.stderr
        );
        for p in probes {
            assert!(
                p.starts_with("blocked"),
                "{}: a way out worked: {p}\n---stdout\n{}\n---stderr\n{}",
                case.label(),
                self.stdout,
                self.stderr
            );
        }
    }
}

impl Case {
    /// `None` (after SKIP) when this mode cannot run here; under CI it fails instead.
    async fn new(name: &'static str, mode: Mode) -> Option<Case> {
        if mode == Mode::AllowRoot && skip_if(!is_root(), "allow_root runs need root") {
            return None;
        }
        for tool in ["python3", "curl", "setpriv"] {
            if skip_if(!have(tool), &format!("{tool} is not installed")) {
                return None;
            }
        }
        let origin = Origin::start().await;
        let dir = tempfile::Builder::new()
            .prefix(&format!("cg-bypass-{name}-"))
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let origin_ca = dir.path().join("origin-ca.pem");
        std::fs::copy(&origin.ca_pem, &origin_ca).unwrap();
        for sub in ["home", "ca"] {
            let p = dir.path().join(sub);
            std::fs::create_dir(&p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/lockdown_probe.py"),
            dir.path().join("probe.py"),
        )
        .unwrap();
        let case = Case {
            name,
            mode,
            origin,
            dir,
            origin_ca,
        };
        // Skip (fail under CI) where the lockdown cannot start at all; checked once per
        // mode and process.
        static WORKS: [tokio::sync::OnceCell<Result<(), String>>; 2] = [
            tokio::sync::OnceCell::const_new(),
            tokio::sync::OnceCell::const_new(),
        ];
        let works = WORKS[mode as usize]
            .get_or_init(|| async {
                let out = case.exec(&["--lockdown"], "echo lockdown-works").await;
                if out.stdout.contains("lockdown-works") {
                    Ok(())
                } else {
                    Err(out.stderr)
                }
            })
            .await;
        if let Err(why) = works {
            skip_if(true, &format!("the lockdown does not start here: {why}"));
            return None;
        }
        Some(case)
    }

    fn label(&self) -> String {
        format!("{} ({:?})", self.name, self.mode)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `clawguard exec <flags> -- sh -c <script>` in the case directory, as this mode's
    /// user.
    async fn exec(&self, flags: &[&str], script: &str) -> Out {
        self.exec_with(flags, script, Extra::None).await
    }

    async fn exec_with(&self, flags: &[&str], script: &str, extra: Extra) -> Out {
        let t = tools();
        let mut cmd = if self.mode == Mode::Unprivileged && is_root() {
            let mut c = tokio::process::Command::new("setpriv");
            c.args([
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
                "--",
            ])
            .arg(&t.clawguard);
            c
        } else {
            tokio::process::Command::new(&t.clawguard)
        };
        cmd.arg("exec")
            .arg("--ca-dir")
            .arg(self.path("ca"))
            .arg("--upstream-ca")
            .arg(&self.origin_ca)
            .arg("--allow-private")
            .args(if self.mode == Mode::AllowRoot {
                &["--allow-root"][..]
            } else {
                &[]
            })
            .args(flags)
            .args(["--", "sh", "-c", script])
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", self.path("home"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let (inherit, without) = match extra {
            Extra::Descriptor(fd) => (Some(fd), &[][..]),
            Extra::Without { calls, fd } => (fd, calls),
            Extra::None | Extra::Terminal => (None, &[][..]),
        };
        let filters: Vec<seccompiler::BpfProgram> = without
            .iter()
            .map(|(nr, errno)| kernel_without(*nr, *errno))
            .collect();
        if inherit.is_some() || !filters.is_empty() {
            // SAFETY: only dup2, prctl and seccomp between fork and exec (the filters
            // were built before). dup2 clears close-on-exec, so ClawGuard inherits the
            // descriptor as a careless parent would leave it.
            unsafe {
                cmd.pre_exec(move || {
                    if let Some(fd) = inherit {
                        if libc::dup2(fd, INHERITED_FD) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    for f in &filters {
                        if seccompiler::apply_filter(f).is_err() {
                            return Err(std::io::Error::from_raw_os_error(libc::EPERM));
                        }
                    }
                    Ok(())
                });
            }
        }
        if let Extra::Terminal = extra {
            // Under `script`, so the command's standard input is a terminal.
            let std = cmd.as_std();
            let mut line = shell_quote(&std.get_program().to_string_lossy());
            for a in std.get_args() {
                line.push(' ');
                line.push_str(&shell_quote(&a.to_string_lossy()));
            }
            let mut s = tokio::process::Command::new("script");
            s.args(["-qec", &line, "/dev/null"])
                .current_dir(self.dir.path())
                .env_clear()
                .env("PATH", PATH)
                .env("HOME", self.path("home"))
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            cmd = s;
        }
        let out = tokio::time::timeout(common::PATIENCE * 3, cmd.output())
            .await
            .expect("clawguard exec finished")
            .expect("clawguard exec runs");
        Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The proxied request that must work in every case, then `attempts`.
    fn script(&self, attempts: &str) -> String {
        format!(
            "curl -sS --max-time 30 -o /dev/null -w 'proxied:%{{http_code}}\\n' {url}; {attempts}",
            url = self.origin.https(&format!("/proxied-{}", self.name)),
        )
    }

    fn probe(&self, args: &str) -> String {
        format!("python3 ./probe.py {args}; ")
    }

    /// Run `attempts` under the lockdown; assert the proxy path worked and every probe
    /// was blocked, and that the origin saw only the proxied request.
    async fn lockdown(&self, flags: &[&str], attempts: &str) -> Out {
        self.lockdown_with(flags, attempts, Extra::None).await
    }

    async fn lockdown_with(&self, flags: &[&str], attempts: &str, extra: Extra) -> Out {
        let mut all = vec!["--lockdown"];
        all.extend_from_slice(flags);
        let out = self.exec_with(&all, &self.script(attempts), extra).await;
        eprintln!("---- {}:\n{}", self.label(), out.stdout);
        assert!(
            out.lines().contains(&"proxied:200"),
            "{}: the proxied request must work\n---stdout\n{}\n---stderr\n{}",
            self.label(),
            out.stdout,
            out.stderr
        );
        out.assert_all_blocked(self);
        let paths: Vec<String> = self
            .origin
            .requests()
            .iter()
            .map(|r| r.path.clone())
            .collect();
        assert_eq!(
            paths,
            vec![format!("/proxied-{}", self.name)],
            "{}: only the proxied request reached the origin",
            self.label()
        );
        out
    }
}

/// Runs a case function once per mode, as `<case>::unprivileged` and
/// `<case>::allow_root`.
macro_rules! in_both_modes {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn unprivileged() {
                super::$case(super::Mode::Unprivileged).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn allow_root() {
                super::$case(super::Mode::AllowRoot).await
            }
        }
    )*};
}

in_both_modes!(
    direct_tcp_to_host_loopback,
    direct_udp_to_host_loopback,
    curl_noproxy,
    child_clears_proxy_variables,
    ipv6_to_host_loopback,
    raw_and_packet_sockets,
    unix_socket_relay,
    abstract_socket_relay,
    unix_datagram_socket,
    host_resolver,
    nsenter_into_a_host_namespace,
    unshare_a_new_namespace,
    setuid_helper,
    ptrace_a_host_process,
    double_fork_and_setsid_children,
    non_namespaced_socket_families,
    kernel_key_upcall,
    io_uring_bypasses_seccomp,
    other_addresses_in_own_namespace,
    inherited_descriptor,
    terminal_input_injection,
    clawguard_own_files,
    host_fifo_and_device_node,
    without_kernel_features,
);

// ---------------------------------------------------------------------------------------
// The cases

/// Class: direct IP connection to the host (network namespace).
async fn direct_tcp_to_host_loopback(mode: Mode) {
    let Some(c) = Case::new("tcp", mode).await else {
        return;
    };
    let port = c.origin.plain_addr.port();
    c.lockdown(
        &[],
        &format!(
            "{} bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null \
             && echo 'reached bash /dev/tcp' || echo 'blocked bash /dev/tcp'",
            c.probe(&format!("tcp 127.0.0.1 {port}"))
        ),
    )
    .await;
}

/// Class: direct IP datagram to the host (network namespace).
async fn direct_udp_to_host_loopback(mode: Mode) {
    let Some(c) = Case::new("udp", mode).await else {
        return;
    };
    let (addr, hits) = udp_echo("127.0.0.1:0").await;
    c.lockdown(&[], &c.probe(&format!("udp 127.0.0.1 {}", addr.port())))
        .await;
    assert_eq!(hits.get(), 0, "no datagram reached the host");
}

/// Class: a client told to ignore the proxy.
async fn curl_noproxy(mode: Mode) {
    let Some(c) = Case::new("noproxy", mode).await else {
        return;
    };
    c.lockdown(
        &[],
        &format!(
            "curl -sS --max-time 10 --noproxy '*' --cacert origin-ca.pem -o /dev/null {} \
             && echo 'reached curl --noproxy' || echo 'blocked curl --noproxy'",
            c.origin.https("/direct-noproxy")
        ),
    )
    .await;
}

/// Class: a child that drops the proxy variables.
async fn child_clears_proxy_variables(mode: Mode) {
    let Some(c) = Case::new("env", mode).await else {
        return;
    };
    c.lockdown(
        &[],
        &format!(
            "env -i /usr/bin/curl -sS --max-time 10 -o /dev/null {} \
             && echo 'reached env -i curl' || echo 'blocked env -i curl'",
            c.origin.http("/direct-env")
        ),
    )
    .await;
}

/// Class: IPv6 to the host's `::1` (the lockdown's `::1` is its own).
async fn ipv6_to_host_loopback(mode: Mode) {
    let Some(c) = Case::new("ipv6", mode).await else {
        return;
    };
    let (tcp, tcp_hits) = tcp_counter("[::1]:0").await;
    let (udp, udp_hits) = udp_echo("[::1]:0").await;
    c.lockdown(
        &[],
        &format!(
            "{}{}",
            c.probe(&format!("tcp ::1 {}", tcp.port())),
            c.probe(&format!("udp ::1 {}", udp.port()))
        ),
    )
    .await;
    assert_eq!(tcp_hits.get() + udp_hits.get(), 0);
}

/// Class: raw and packet sockets (need CAP_NET_RAW; and the namespace has no route).
async fn raw_and_packet_sockets(mode: Mode) {
    let Some(c) = Case::new("raw", mode).await else {
        return;
    };
    c.lockdown(&[], &c.probe("raw")).await;
}

/// Class: a filesystem UNIX socket whose listener has network access (finding 1 of
/// issue 13: a relay on a socket file reached the host origin from inside). Relays in a
/// path the command can see (its working directory), in a masked directory (/tmp) and in
/// /run; `curl --unix-socket` and a raw connect. Without `--lockdown` the same relay
/// works (control), and `--allow-socket` opens exactly that one socket.
async fn unix_socket_relay(mode: Mode) {
    let Some(c) = Case::new("unixrelay", mode).await else {
        return;
    };
    let to = c.origin.plain_addr;
    let visible = c.path("relay.sock");
    let visible_hits = unix_relay(&visible, to);
    let hidden_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(hidden_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let hidden = hidden_dir.path().join("relay.sock");
    let hidden_hits = unix_relay(&hidden, to);
    let run_dir = PathBuf::from(format!("/run/cg-bypass-{}-{:?}", std::process::id(), mode));
    let run_hits = is_root().then(|| unix_relay(&run_dir.join("relay.sock"), to));

    let mut attempts = String::new();
    for p in [
        visible.clone(),
        PathBuf::from("relay.sock"),
        hidden.clone(),
        run_dir.join("relay.sock"),
    ] {
        attempts += &c.probe(&format!("unix {}", p.display()));
    }
    attempts += &format!(
        "curl -sS --max-time 10 --noproxy '*' --unix-socket {} -o /dev/null http://relay/direct-curl-unix \
         && echo 'reached curl --unix-socket' || echo 'blocked curl --unix-socket'; ",
        visible.display()
    );
    c.lockdown(&[], &attempts).await;
    assert_eq!(visible_hits.get(), 0, "the visible relay was not reached");
    assert_eq!(hidden_hits.get(), 0, "the relay in /tmp was not reached");
    assert_eq!(run_hits.as_ref().map_or(0, Hits::get), 0);

    // Control: without the lockdown the relay is a way to the origin.
    let out = c
        .exec(&[], &c.probe(&format!("unix {}", visible.display())))
        .await;
    assert!(
        out.stdout.starts_with("reached unix"),
        "control: the relay works without --lockdown: {}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(visible_hits.get(), 1);
    // Trusting exactly this socket opens exactly it.
    let out = c
        .exec(
            &["--lockdown", "--allow-socket", "relay.sock"],
            &format!(
                "{}{}",
                c.probe(&format!("unix {}", visible.display())),
                c.probe(&format!("unix {}", hidden.display()))
            ),
        )
        .await;
    let lines = out.lines();
    assert!(
        lines[0].starts_with("reached unix"),
        "{out:?}",
        out = out.stdout
    );
    assert!(lines[1].starts_with("blocked unix"), "{}", out.stdout);
    assert_eq!(visible_hits.get(), 2);
    assert_eq!(hidden_hits.get(), 0);
    let _ = std::fs::remove_dir_all(&run_dir);

    // An allowed socket is connected with the command's credentials, never ClawGuard's:
    // a socket only another user may use stays closed, even to a uid-0 command.
    if is_root() {
        let private = c.path("private.sock");
        let private_hits = unix_relay(&private, to);
        std::os::unix::fs::chown(&private, Some(NOBODY + 1), None).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let out = c
            .exec(
                &["--lockdown", "--allow-socket", "private.sock"],
                &c.probe("unix private.sock"),
            )
            .await;
        assert!(
            out.stdout.starts_with("blocked unix private.sock EACCES"),
            "{}{}",
            out.stdout,
            out.stderr
        );
        assert_eq!(private_hits.get(), 0);
    }
}

/// Class: an abstract UNIX socket (no file; confined by the network namespace, and by
/// Landlock's scope where the kernel has it).
async fn abstract_socket_relay(mode: Mode) {
    let Some(c) = Case::new("abstract", mode).await else {
        return;
    };
    let name = format!("clawguard-bypass-{}-{:?}", std::process::id(), mode);
    let hits = abstract_relay(&name, c.origin.plain_addr);
    c.lockdown(&[], &c.probe(&format!("abstract {name}"))).await;
    assert_eq!(hits.get(), 0);
}

/// Class: a UNIX datagram socket on the host (e.g. syslog, journald): every datagram
/// names its destination, so the command may not create such sockets.
async fn unix_datagram_socket(mode: Mode) {
    let Some(c) = Case::new("dgram", mode).await else {
        return;
    };
    let path = c.path("dgram.sock");
    let hits = unix_datagram_sink(&path);
    c.lockdown(&[], &c.probe(&format!("unix-dgram {}", path.display())))
        .await;
    assert_eq!(hits.get(), 0);
}

/// Class: the host's resolver. A stand-in resolver listens on UNIX sockets where
/// systemd-resolved and nscd would (under /run, and in a path the command can see) and
/// on UDP on the host's loopback; lookups inside must reach none of them, and
/// /etc/resolv.conf must point at nothing.
async fn host_resolver(mode: Mode) {
    let Some(c) = Case::new("resolver", mode).await else {
        return;
    };
    let to = c.origin.plain_addr; // what a resolver would leak to, here the origin
    let visible = c.path("resolve/io.systemd.Resolve");
    let visible_hits = unix_relay(&visible, to);
    let run_dir = PathBuf::from(format!("/run/cg-resolve-{}-{:?}", std::process::id(), mode));
    let run_hits = is_root().then(|| unix_relay(&run_dir.join("io.systemd.Resolve"), to));
    let (dns, dns_hits) = udp_echo("127.0.0.1:0").await;
    let attempts = format!(
        "getent hosts clawguard-probe.example >/dev/null && echo 'reached getent' || echo 'blocked getent'; \
         {gai}{unix_visible}{unix_run}{udp}\
         grep -v '^#' /etc/resolv.conf | grep -qv 'nameserver 127.0.0.1\\|options' \
           && echo 'reached resolv.conf names another resolver' || echo 'blocked resolv.conf'; ",
        gai = c.probe("getaddrinfo clawguard-probe.example"),
        unix_visible = c.probe(&format!("unix {}", visible.display())),
        unix_run = c.probe(&format!("unix {}", run_dir.join("io.systemd.Resolve").display())),
        udp = c.probe(&format!("udp 127.0.0.1 {}", dns.port())),
    );
    c.lockdown(&[], &attempts).await;
    assert_eq!(visible_hits.get(), 0);
    assert_eq!(run_hits.as_ref().map_or(0, Hits::get), 0);
    assert_eq!(dns_hits.get(), 0);
    let _ = std::fs::remove_dir_all(&run_dir);
}

/// A handle on the host's network namespace (a bind mount of /proc/self/ns/net) in the
/// case directory; unmounted on drop.
struct NamespaceHandle(PathBuf);

impl NamespaceHandle {
    fn new(at: PathBuf) -> Option<NamespaceHandle> {
        std::fs::write(&at, "").unwrap();
        let ok = Command::new("mount")
            .args(["--bind", "/proc/self/ns/net"])
            .arg(&at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(NamespaceHandle(at))
    }
}

impl Drop for NamespaceHandle {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Class: entering another namespace (finding 2 of issue 13: as root, `nsenter -t <host
/// pid> -n` left the lockdown). Tries nsenter by pid (ClawGuard's, the host's init) and
/// through a handle on the host's network namespace, and setns(2) directly.
async fn nsenter_into_a_host_namespace(mode: Mode) {
    let Some(c) = Case::new("nsenter", mode).await else {
        return;
    };
    if skip_if(!have("nsenter"), "nsenter is not installed") {
        return;
    }
    let handle = if is_root() {
        NamespaceHandle::new(c.path("hostnet"))
    } else {
        None
    };
    assert!(
        handle.is_some() || !in_ci(),
        "CI=true: cannot bind a namespace handle"
    );
    let url = c.origin.http("/direct-nsenter");
    let curl = format!("curl -sS --max-time 10 --noproxy '*' -o /dev/null {url}");
    let mut attempts = format!(
        "nsenter -t 1 -n -m {curl} 2>/dev/null && echo 'reached nsenter -t 1' || echo 'blocked nsenter -t 1'; \
         nsenter -t {me} -n {curl} 2>/dev/null && echo 'reached nsenter -t host' || echo 'blocked nsenter -t host'; ",
        me = std::process::id()
    );
    if handle.is_some() {
        attempts += &format!(
            "nsenter --net=hostnet {curl} 2>/dev/null && echo 'reached nsenter --net' || echo 'blocked nsenter --net'; {}",
            c.probe("setns hostnet")
        );
    }
    c.lockdown(&[], &attempts).await;
    drop(handle);
}

/// Class: creating a new namespace (which would come with capabilities in it).
async fn unshare_a_new_namespace(mode: Mode) {
    let Some(c) = Case::new("unshare", mode).await else {
        return;
    };
    let attempts = format!(
        "for f in -n -U -m -p -r; do unshare $f true 2>/dev/null && echo \"reached unshare $f\" \
           || echo \"blocked unshare $f\"; done; {}",
        c.probe("unshare")
    );
    c.lockdown(&[], &attempts).await;
}

/// Class: a setuid-root program (no_new_privs ignores the bit; no capability comes
/// back; it cannot enter the host's namespace either).
async fn setuid_helper(mode: Mode) {
    let Some(c) = Case::new("setuid", mode).await else {
        return;
    };
    let Some(helper) = &tools().setuid_probe else {
        skip_if(true, "the setuid helper needs root and gcc");
        return;
    };
    let local = c.path("setuid_probe");
    std::fs::write(&local, helper).unwrap();
    std::os::unix::fs::chown(&local, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let handle = NamespaceHandle::new(c.path("hostnet"));
    let out = c.lockdown(&[], "./setuid_probe hostnet; ").await;
    let expect_euid = if mode == Mode::Unprivileged {
        NOBODY
    } else {
        0
    };
    assert!(
        out.stdout
            .contains(&format!("blocked setuid: euid {expect_euid} ")),
        "{}",
        out.stdout
    );
    drop(handle);
}

/// Class: other processes (ptrace or /proc/PID/mem of the test itself, a host process,
/// the lockdown's own init; neither ClawGuard nor the host process is visible in the
/// lockdown's /proc at all).
async fn ptrace_a_host_process(mode: Mode) {
    let Some(c) = Case::new("ptrace", mode).await else {
        return;
    };
    let mut host = Command::new("sleep").arg("300").spawn().unwrap();
    // ClawGuard (whose command line holds `exec --ca-dir`) and the host `sleep` must not
    // be among the processes the command can see (the pattern says `-[-]` so that this
    // script's own command line does not match it).
    let visible = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done > procs.txt; \
         grep -q -e ' exec -[-]ca-dir' -e '^sleep 300' procs.txt \
           && echo 'reached a host process is visible' || echo 'blocked only lockdown processes visible'; ";
    let attempts = format!(
        "{}{}{}{visible}",
        c.probe(&format!("ptrace {}", std::process::id())),
        c.probe(&format!("ptrace {}", host.id())),
        c.probe("ptrace 1"),
    );
    c.lockdown(&[], &attempts).await;
    let _ = host.kill();
    let _ = host.wait();
}

/// Class: processes that try to outlive or leave the lockdown (double fork + setsid):
/// they stay in its namespaces and die with it.
async fn double_fork_and_setsid_children(mode: Mode) {
    let Some(c) = Case::new("daemon", mode).await else {
        return;
    };
    let port = c.origin.plain_addr.port();
    // Unique per mode: both modes may run at once, and the check below looks for it.
    let marker_name = format!("daemon-{mode:?}.ns");
    let marker = c.path(&marker_name);
    let attempts = format!(
        "{}setsid sh -c 'sleep 60' & \
         for i in $(seq 1 300); do [ -s {marker_name} ] && break; sleep 0.1; done; \
         [ \"$(cat {marker_name})\" = \"$(readlink /proc/self/ns/net)\" ] \
           && echo 'blocked daemon in the lockdown namespace' || echo 'reached daemon elsewhere'; ",
        c.probe(&format!("daemon {marker_name} 127.0.0.1 {port} 120"))
    );
    c.lockdown(&[], &attempts).await;
    // The lockdown ended with the command: nothing it started is left running.
    let ns = std::fs::read_to_string(&marker).unwrap();
    assert_ne!(
        ns,
        std::fs::read_link("/proc/self/ns/net")
            .unwrap()
            .display()
            .to_string()
    );
    let left = Command::new("pgrep")
        .args(["-f", &format!("daemon {marker_name}")])
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&left.stdout);
    assert!(
        pids.trim().is_empty() || pids.trim() == std::process::id().to_string(),
        "daemon processes outlived the lockdown: {pids}"
    );
    assert!(c
        .origin
        .requests()
        .iter()
        .all(|r| r.path != "/direct-daemon"));
}

/// Class: socket families the network namespace does not confine (vsock reaches the
/// hypervisor host; also packet sockets).
async fn non_namespaced_socket_families(mode: Mode) {
    let Some(c) = Case::new("vsock", mode).await else {
        return;
    };
    c.lockdown(&[], &c.probe("vsock")).await;
}

/// Class: kernel upcalls that run helpers in the host's context (request_key with the
/// dns_resolver type resolves names on the host).
async fn kernel_key_upcall(mode: Mode) {
    let Some(c) = Case::new("keys", mode).await else {
        return;
    };
    c.lockdown(&[], &c.probe("request-key")).await;
}

/// Class: io_uring, which performs connects without the system call a filter sees.
async fn io_uring_bypasses_seccomp(mode: Mode) {
    let Some(c) = Case::new("iouring", mode).await else {
        return;
    };
    c.lockdown(&[], &c.probe("io-uring")).await;
}

/// Class: direct IP to other addresses (IPv4, IPv6 global and link-local). Runs this
/// test binary again inside a fresh network namespace (`unshare -n`) that holds those
/// addresses on its loopback, so nothing leaves the machine.
async fn other_addresses_in_own_namespace(mode: Mode) {
    if skip_if(
        !is_root(),
        "a fresh network namespace for the test needs root",
    ) || skip_if(!have("ip"), "ip (iproute2) is not installed")
        || (mode == Mode::AllowRoot && skip_if(!is_root(), "allow_root runs need root"))
    {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = tokio::process::Command::new("unshare")
        .arg("-n")
        .arg("--")
        .arg(exe)
        .args([
            "--exact",
            "inner_other_addresses",
            "--ignored",
            "--nocapture",
        ])
        .env("CLAWGUARD_BYPASS_MODE", format!("{mode:?}"))
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "inner test failed:\n{stdout}\n{stderr}"
    );
}

/// The inside of [`other_addresses_in_own_namespace`]; runs only in the namespace it
/// makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by other_addresses_in_own_namespace inside its own network namespace"]
async fn inner_other_addresses() {
    let mode = match std::env::var("CLAWGUARD_BYPASS_MODE").as_deref() {
        Ok("Unprivileged") => Mode::Unprivileged,
        Ok("AllowRoot") => Mode::AllowRoot,
        _ => panic!("run by other_addresses_in_own_namespace only"),
    };
    // Refuse to configure anything unless this really is a fresh namespace.
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&links.stdout).lines().count(),
        1,
        "not a fresh network namespace"
    );
    for args in [
        &["link", "set", "lo", "up"][..],
        &["addr", "add", "10.77.0.1/32", "dev", "lo"],
        &["-6", "addr", "add", "2001:db8::77/128", "dev", "lo"],
        &["-6", "addr", "add", "fe80::77/64", "dev", "lo"],
    ] {
        assert!(Command::new("ip").args(args).status().unwrap().success());
    }
    let Some(c) = Case::new("other", mode).await else {
        return;
    };
    let (v4, v4_hits) = tcp_counter("10.77.0.1:0").await;
    let (v6, v6_hits) = tcp_counter("[2001:db8::77]:0").await;
    let ll = tokio::net::TcpListener::bind(SocketAddr::V6(std::net::SocketAddrV6::new(
        "fe80::77".parse().unwrap(),
        0,
        0,
        1,
    )))
    .await
    .unwrap();
    let ll_port = ll.local_addr().unwrap().port();
    let ll_hits = Hits::default();
    let h = ll_hits.clone();
    tokio::spawn(async move {
        while ll.accept().await.is_ok() {
            h.hit();
        }
    });
    let (udp, udp_hits) = udp_echo("10.77.0.1:0").await;
    let attempts = format!(
        "{}{}{}{}curl -sS --max-time 10 -o /dev/null -w 'proxied-v4:%{{http_code}}\\n' http://10.77.0.1:{}/; ",
        c.probe(&format!("tcp 10.77.0.1 {}", v4.port())),
        c.probe(&format!("tcp 2001:db8::77 {}", v6.port())),
        c.probe(&format!("tcp-link-local fe80::77 {ll_port}")),
        c.probe(&format!("udp 10.77.0.1 {}", udp.port())),
        v4.port()
    );
    let out = c.lockdown(&[], &attempts).await;
    assert!(
        out.lines().contains(&"proxied-v4:200"),
        "the other address is reachable through the proxy: {}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        v4_hits.get(),
        1,
        "only the proxied request reached 10.77.0.1"
    );
    assert_eq!(v6_hits.get() + ll_hits.get() + udp_hits.get(), 0);
}

/// Class: a descriptor left open by whatever started ClawGuard (here a TCP connection
/// to the origin, already established outside): the lockdown closes everything but
/// standard input, output and error.
async fn inherited_descriptor(mode: Mode) {
    let Some(c) = Case::new("fd", mode).await else {
        return;
    };
    let conn = std::net::TcpStream::connect(c.origin.plain_addr).unwrap();
    use std::os::fd::AsRawFd;
    c.lockdown_with(
        &[],
        &c.probe(&format!("fd {INHERITED_FD}")),
        Extra::Descriptor(conn.as_raw_fd()),
    )
    .await;
    drop(conn);
}

/// Class: input injected into the terminal (TIOCSTI), which the user's shell would run
/// after the command ends.
async fn terminal_input_injection(mode: Mode) {
    let Some(c) = Case::new("tty", mode).await else {
        return;
    };
    if skip_if(!have("script"), "script (util-linux) is not installed") {
        return;
    }
    let out = c
        .lockdown_with(&[], &c.probe("tiocsti"), Extra::Terminal)
        .await;
    assert!(
        !out.stdout.contains("no-tty"),
        "the probe ran on a terminal: {}",
        out.stdout
    );
}

/// Class: ClawGuard's own secrets. The CA directory (its private key would let the
/// command impersonate any site to whatever trusts the CA) is hidden; only the
/// certificate and bundle the command needs are there, read-only.
async fn clawguard_own_files(mode: Mode) {
    let Some(c) = Case::new("ownfiles", mode).await else {
        return;
    };
    let ca = c.path("ca");
    let attempts = format!(
        "{}{}{}",
        c.probe(&format!("read {}", ca.join("clawguard-ca.key").display())),
        c.probe(&format!("write {}", ca.join("clawguard-ca.pem").display())),
        c.probe(&format!("write {}", ca.join("planted").display())),
    );
    let out = c
        .lockdown(
            &[],
            &format!("{attempts} test -s \"$NODE_EXTRA_CA_CERTS\" && echo ca-cert-readable; "),
        )
        .await;
    assert!(out.lines().contains(&"ca-cert-readable"), "{}", out.stdout);
    assert!(
        ca.join("clawguard-ca.key").exists(),
        "the key is still there outside"
    );
}

/// Removes a directory tree when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Class: local IPC through a named pipe (FIFO) on the host, read by a process with
/// network access; and device nodes outside `/dev`. A read-only mount stops neither
/// from being opened for writing: the host view is `nodev`, and Landlock (Linux 5.13)
/// lets the command write only beneath the view's writable mounts. Both sit in a host
/// directory the command sees read-only. (A FIFO in the working directory or `$HOME`
/// stays writable like any file there; the README says so.) Control: without
/// `--lockdown` the FIFO carries the data.
async fn host_fifo_and_device_node(mode: Mode) {
    let Some(c) = Case::new("fifo", mode).await else {
        return;
    };
    if skip_if(
        !is_root(),
        "a FIFO and a device node outside the lockdown's writable paths need root",
    ) || skip_if(
        !have_landlock(),
        "the kernel has no Landlock: a host FIFO stays writable (see the README)",
    ) {
        return;
    }
    let dir = PathBuf::from(format!(
        "/var/lib/cg-bypass-fifo-{}-{mode:?}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = RemoveOnDrop(dir.clone());
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fifo = dir.join("relay.fifo");
    let device = dir.join("null-copy");
    for (path, args) in [(&fifo, vec!["p"]), (&device, vec!["c", "1", "3"])] {
        let st = Command::new("mknod").arg(path).args(args).status().unwrap();
        assert!(st.success(), "mknod {}", path.display());
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    // The host side: a reader that never blocks and keeps the FIFO open.
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let mut drain = || {
        let mut buf = [0u8; 4096];
        match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(e) => panic!("reading the FIFO: {e}"),
        }
    };
    let attempts = format!(
        "{}{}(echo leak > {fifo}) 2>/dev/null && echo 'reached sh > fifo' || echo 'blocked sh > fifo'; ",
        c.probe(&format!("fifo {}", fifo.display())),
        c.probe(&format!("write {}", device.display())),
        fifo = fifo.display(),
    );
    c.lockdown(&[], &attempts).await;
    assert_eq!(drain(), 0, "nothing reached the host's FIFO reader");

    // Control: without the lockdown the FIFO is a way to the host process.
    let out = c
        .exec(&[], &c.probe(&format!("fifo {}", fifo.display())))
        .await;
    assert!(
        out.stdout.starts_with("reached fifo"),
        "control: the FIFO works without --lockdown: {}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(drain(), 5, "the control's write arrived");
}

/// Not a way out: what `--lockdown` does on a kernel without a feature it relies on.
/// Each feature is taken away by a seccomp filter on ClawGuard (the call fails as it
/// does on an older kernel, `ENOSYS`, or where a sysctl or security module refuses it,
/// `EPERM`). Without a required one ClawGuard refuses to start the command and says
/// which step failed and what it needs; without the optional ones (Landlock,
/// `close_range`) the command runs with everything else in place, and the profile says
/// Landlock was not enforced.
async fn without_kernel_features(mode: Mode) {
    let Some(c) = Case::new("nokernel", mode).await else {
        return;
    };
    type Missing = (&'static [(i64, i32)], &'static [&'static str]);
    let mut required: Vec<Missing> = vec![
        (
            &[(libc::SYS_mount_setattr, libc::ENOSYS)],
            &[
                "cannot make the host filesystem read-only",
                "mount_setattr (Linux 5.12)",
            ],
        ),
        (
            &[(libc::SYS_seccomp, libc::ENOSYS)],
            &[
                "cannot install seccomp filters",
                "seccomp filters with user notification (Linux 5.0)",
            ],
        ),
        (
            &[(libc::SYS_pidfd_getfd, libc::ENOSYS)],
            &["this kernel lacks pidfd_getfd (Linux 5.6)"],
        ),
        (
            &[(libc::SYS_openat2, libc::ENOSYS)],
            &["this kernel lacks openat2 (Linux 5.6)"],
        ),
    ];
    required.push(match mode {
        Mode::Unprivileged => (
            &[(libc::SYS_unshare, libc::EPERM)],
            &[
                "cannot create a user namespace",
                "unprivileged user namespaces",
                "--allow-root",
            ],
        ),
        Mode::AllowRoot => (
            &[(libc::SYS_unshare, libc::EPERM)],
            &[
                "cannot create namespaces",
                "network, mount, PID, IPC, UTS and cgroup namespaces",
            ],
        ),
    });
    for (calls, says) in required {
        let out = c
            .exec_with(
                &["--lockdown"],
                "echo COMMAND-RAN",
                Extra::Without { calls, fd: None },
            )
            .await;
        let what = format!(
            "{} without {calls:?}: code {:?}\n---stdout\n{}\n---stderr\n{}",
            c.label(),
            out.code,
            out.stdout,
            out.stderr
        );
        assert_ne!(out.code, Some(0), "{what}");
        assert!(!out.stdout.contains("COMMAND-RAN"), "{what}");
        assert!(out.stderr.contains("command was not started"), "{what}");
        for s in says {
            assert!(out.stderr.contains(s), "says {s:?}: {what}");
        }
    }

    // Optional features: the command runs, everything else holds (an inherited
    // descriptor is closed one by one without close_range), the profile tells.
    let conn = std::net::TcpStream::connect(c.origin.plain_addr).unwrap();
    use std::os::fd::AsRawFd;
    let out = c
        .lockdown_with(
            &["--print-profile", "json"],
            &c.probe(&format!("fd {INHERITED_FD}")),
            Extra::Without {
                calls: &[
                    (libc::SYS_landlock_create_ruleset, libc::ENOSYS),
                    (libc::SYS_close_range, libc::ENOSYS),
                ],
                fd: Some(conn.as_raw_fd()),
            },
        )
        .await;
    drop(conn);
    let json_end = out.stdout.find("\n}\n").expect("the profile") + 2;
    let profile: serde_json::Value = serde_json::from_str(&out.stdout[..json_end]).unwrap();
    let landlock = &profile["landlock"];
    assert!(
        landlock["status"]
            .as_str()
            .unwrap()
            .starts_with("not enforced"),
        "{landlock}"
    );
    assert_eq!(landlock["enforced"], serde_json::json!([]), "{landlock}");
    assert_eq!(profile["no_new_privs"], true);
}
