//! Live checks through the configured proxy, on loopback only: is it ClawGuard, does it
//! refuse a request to a loopback canary, does it stop a request carrying a test
//! credential. The canary is a listener of our own on 127.0.0.1 with a per-run token: if
//! the token reaches it, the proxy forwarded what it should have refused.
//!
//! The exchanges are a few plain HTTP/1.1 messages over a loopback socket, written by
//! hand like `clawguard reload` does: a client library would add nothing but its own
//! proxy and connection handling, which is exactly what must not interfere here.

use super::machine::Process;
use super::openclaw::OpenClaw;
use super::wiring::{mask_userinfo, proxy_setting, ProxySetting};
use super::{guide, Check, Machine, Options, Status};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A credential the built-in rules block (`github-token`: the right shape and a valid
/// CRC32 check) made up for this check; no account is behind it, so nothing real is ever
/// sent.
const TEST_CREDENTIAL: &str = "ghu_qkw1aXHigWhaXoNt9Jzvk69Wtl7SBH3FFpA1";
const TEST_RULE: &str = "github-token";

const ENFORCE_FIX: &str = "run ClawGuard in enforce mode (`clawguard run` without `--mode dry-run`; config `mode = \"enforce\"`, the default) and keep the built-in credential rules' action `block`";

const IDS: [&str; 3] = [
    "wiring.proxy-is-clawguard",
    "wiring.live-loopback-refused",
    "wiring.live-credential-blocked",
];

pub fn checks(m: &Machine, oc: &OpenClaw, opts: &Options) -> Vec<Check> {
    let skip = |why: String| {
        IDS.map(|id| Check::new(id, guide::CONTROL_EGRESS, Status::Skip).evidence(why.clone()))
            .to_vec()
    };
    if opts.no_live {
        return skip("live checks not run (--offline)".into());
    }
    let Some(setting) = proxy_setting(m, oc, opts) else {
        return skip("no proxy configured (see wiring.proxy-configured)".into());
    };
    let proxy = match ProxyAddr::parse(&setting.url) {
        Ok(p) => p,
        Err(why) => return skip(format!("{}: {why}", mask_userinfo(&setting.url))),
    };
    let dry_run = dry_run_process(m, proxy.addr);
    run(&setting, &proxy, opts.timeout, dry_run)
}

/// A proxy the live checks may talk to: plain HTTP on a loopback address.
struct ProxyAddr {
    addr: SocketAddr,
    /// `Proxy-Authorization` from the URL's user info.
    authorization: Option<String>,
}

impl ProxyAddr {
    fn parse(url: &str) -> Result<ProxyAddr, String> {
        let rest = url.strip_prefix("http://").ok_or(
            "not an http:// proxy URL; the live checks speak plain HTTP to a loopback ClawGuard only",
        )?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let hostport = if hostport.contains(':') && !hostport.ends_with(']') {
            hostport.to_string()
        } else {
            format!("{hostport}:80")
        };
        let addr = hostport
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {hostport}: {e}"))?
            .next()
            .ok_or_else(|| format!("{hostport} has no address"))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{} is not a loopback address; the live checks talk to loopback only",
                addr.ip()
            ));
        }
        use base64::Engine;
        let authorization = userinfo.map(|u| {
            let decoded = percent_encoding::percent_decode_str(u).decode_utf8_lossy();
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(decoded.as_bytes())
            )
        });
        Ok(ProxyAddr {
            addr,
            authorization,
        })
    }
}

/// What the canary received: every request's bytes (bounded).
struct Canary {
    received: Mutex<Vec<Vec<u8>>>,
    stop: AtomicBool,
    port: u16,
}

const CANARY_MAX_REQUEST: usize = 64 * 1024;

impl Canary {
    /// Listen on 127.0.0.1:0 and answer every request with 200 until dropped (the
    /// thread only ever serves loopback test requests).
    fn start(timeout: Duration) -> std::io::Result<Arc<Canary>> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let canary = Arc::new(Canary {
            received: Mutex::default(),
            stop: AtomicBool::new(false),
            port: listener.local_addr()?.port(),
        });
        let c = Arc::downgrade(&canary);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let Some(c) = c.upgrade().filter(|c| !c.stop.load(Ordering::Relaxed)) else {
                    break;
                };
                let mut s = stream;
                let _ = s.set_read_timeout(Some(timeout));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                // Read until the head and (small) body have arrived or the peer stops.
                while buf.len() < CANARY_MAX_REQUEST {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if complete(&buf) {
                        break;
                    }
                }
                // Recorded before answering: once the proxy relays our answer, the doctor
                // must find the request here.
                if let Ok(mut r) = c.received.lock() {
                    r.push(buf);
                }
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nConnection: close\r\n\r\ncanary reached",
                );
            }
        });
        Ok(canary)
    }

    fn saw(&self, needle: &str) -> bool {
        self.received.lock().is_ok_and(|r| {
            r.iter()
                .any(|req| memchr::memmem::find(req, needle.as_bytes()).is_some())
        })
    }
}

impl Drop for Canary {
    /// Stop the listener thread: flag it, then wake its `accept` with one connection.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A request is complete once its head is and Content-Length bytes followed.
fn complete(buf: &[u8]) -> bool {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    buf.len() >= end + 4 + len
}

/// The proxy's answer: status and the headers that say who answered and why.
struct Answer {
    status: u16,
    clawguard: bool,
    reason: Option<String>,
    would: Option<String>,
}

fn send(proxy: &ProxyAddr, request: &str, timeout: Duration) -> Result<Answer, String> {
    let mut s = TcpStream::connect_timeout(&proxy.addr, timeout)
        .map_err(|e| format!("cannot connect to {}: {e}", proxy.addr))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(request.as_bytes())
        .map_err(|e| format!("sending to {}: {e}", proxy.addr))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(_)) = resp.parse(&buf) {
            let get = |name: &str| {
                resp.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
            };
            return Ok(Answer {
                status: resp.code.unwrap_or(0),
                clawguard: get("x-clawguard-request-id").is_some(),
                reason: get("x-clawguard-reason"),
                would: get("x-clawguard-would"),
            });
        }
        match s.read(&mut chunk) {
            Ok(0) => {
                return Err(format!(
                    "{} closed the connection without an answer",
                    proxy.addr
                ))
            }
            Ok(n) if buf.len() < 64 * 1024 => buf.extend_from_slice(&chunk[..n]),
            Ok(_) => return Err("the answer's head is too large".into()),
            Err(e) => return Err(format!("no answer from {}: {e}", proxy.addr)),
        }
    }
}

fn token() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

fn run(
    setting: &ProxySetting,
    proxy: &ProxyAddr,
    timeout: Duration,
    dry_run: Option<String>,
) -> Vec<Check> {
    let canary = match Canary::start(timeout) {
        Ok(c) => c,
        Err(e) => {
            return IDS
                .map(|id| {
                    Check::new(id, guide::CONTROL_EGRESS, Status::Warn)
                        .evidence(format!("could not open a loopback canary: {e}"))
                })
                .to_vec()
        }
    };
    let port = canary.port;
    let auth = proxy
        .authorization
        .as_ref()
        .map(|a| format!("Proxy-Authorization: {a}\r\n"))
        .unwrap_or_default();
    let where_ = format!("{} ({})", mask_userinfo(&setting.url), setting.source);

    // 1. A loopback destination.
    let t1 = token();
    let r1 = send(
        proxy,
        &format!(
            "GET http://127.0.0.1:{port}/clawguard-doctor-canary/{t1} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n"
        ),
        timeout,
    );
    let answer = match r1 {
        Ok(a) => a,
        Err(why) => {
            let down = Check::new(IDS[0], guide::CONTROL_EGRESS, Status::Fail)
                .evidence(format!("proxy {where_}: {why}"))
                .fix("start ClawGuard where OpenClaw's proxy URL points (`clawguard run --listen ADDR`), or point OpenClaw at the running one: `openclaw config set proxy.proxyUrl http://127.0.0.1:8383`");
            let rest = IDS[1..].iter().map(|id| {
                Check::new(id, guide::CONTROL_EGRESS, Status::Skip)
                    .evidence("the proxy did not answer (see wiring.proxy-is-clawguard)")
            });
            return std::iter::once(down).chain(rest).collect();
        }
    };
    let mut out = Vec::new();
    out.push(if answer.clawguard {
        Check::new(IDS[0], guide::CONTROL_EGRESS, Status::Pass)
            .evidence(format!("proxy {where_} answers with ClawGuard's headers"))
    } else {
        Check::new(IDS[0], guide::CONTROL_EGRESS, Status::Fail)
            .evidence(format!(
                "proxy {where_} answered {} without ClawGuard's headers: it is another proxy (or something else)",
                answer.status
            ))
            .fix("point OpenClaw at ClawGuard: `openclaw config set proxy.proxyUrl http://127.0.0.1:8383` (ClawGuard's --listen address)")
    });
    let reached = canary.saw(&t1);
    out.push(if reached {
        Check::new(IDS[1], guide::CONTROL_EGRESS, Status::Fail)
            .evidence(format!(
                "a request through the proxy reached a canary on 127.0.0.1:{port} (answer {})",
                answer.status
            ))
            .fix("run ClawGuard without --allow-private (config `[egress] allow_private = false`, the default): the agent must not reach services on this machine or its network through it; allow a single local service with an [[egress.rule]] if one is needed")
    } else {
        Check::new(IDS[1], guide::CONTROL_EGRESS, Status::Pass).evidence(format!(
            "the proxy refused a request to a canary on 127.0.0.1:{port}: {}{}",
            answer.status,
            answer
                .reason
                .as_ref()
                .map(|r| format!(" (x-clawguard-reason: {r})"))
                .unwrap_or_default()
        ))
    });

    // 2. A request carrying a test credential (to the same canary: loopback only).
    let t2 = token();
    let body = format!("{{\"note\":\"clawguard doctor {t2}\",\"token\":\"{TEST_CREDENTIAL}\"}}");
    let r2 = send(
        proxy,
        &format!(
            "POST http://127.0.0.1:{port}/clawguard-doctor-credential/{t2} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        timeout,
    );
    out.push(match r2 {
        Err(why) => Check::new(IDS[2], guide::CONTROL_EGRESS, Status::Warn)
            .evidence(format!("the credential request got no answer: {why}")),
        Ok(_) if canary.saw(TEST_CREDENTIAL) => {
            Check::new(IDS[2], guide::CONTROL_EGRESS, Status::Fail)
                .evidence(format!(
                    "a test credential ({TEST_RULE}) went through the proxy to the canary unchanged"
                ))
                .fix(ENFORCE_FIX)
        }
        Ok(a) => {
            let how = if canary.saw(&t2) {
                "reached the canary with the credential removed".to_string()
            } else if let Some(r) = &a.reason {
                format!(
                    "was refused ({}, x-clawguard-reason: {r}) before it could leave; with the loopback refusal in the way the rule itself is not exercised",
                    a.status
                )
            } else {
                format!("was blocked ({})", a.status)
            };
            let mut c = Check::new(IDS[2], guide::CONTROL_EGRESS, Status::Pass)
                .evidence(format!("a request carrying a test credential ({TEST_RULE}) {how}"));
            // A refusal before inspection says nothing about the mode: a dry-run ClawGuard
            // refuses loopback too, and lets credentials through to everything else.
            let dry = a
                .would
                .map(|w| format!("ClawGuard is in dry-run mode (x-clawguard-would: {w})"))
                .or(dry_run);
            if let Some(why) = dry {
                c.status = Status::Fail;
                c = c.evidence(why).fix(ENFORCE_FIX);
            }
            c
        }
    });
    out
}

/// A running ClawGuard in dry-run mode serving `proxy` (matched by `--listen`; any
/// running one when none names that address), by its command line and config file:
/// `--mode dry-run`, or `mode = "dry-run"` in its `--config`.
fn dry_run_process(m: &Machine, proxy: SocketAddr) -> Option<String> {
    let procs: Vec<Process> = m
        .processes()
        .into_iter()
        .filter(|p| {
            p.runs("clawguard")
                && p.argv
                    .get(1)
                    .is_some_and(|s| matches!(s.as_str(), "run" | "exec" | "icap"))
        })
        .collect();
    let listens_here = |p: &Process| {
        flag(p, "--listen").is_some_and(|l| l.parse::<SocketAddr>().ok() == Some(proxy))
    };
    let serving: Vec<&Process> = if procs.iter().any(listens_here) {
        procs.iter().filter(|p| listens_here(p)).collect()
    } else {
        procs.iter().collect()
    };
    serving.into_iter().find_map(|p| {
        if flag(p, "--mode").as_deref() == Some("dry-run") {
            return Some(format!(
                "pid {} `{}` runs with --mode dry-run",
                p.pid,
                p.short()
            ));
        }
        let file = flag(p, "--config")?;
        let path = if Path::new(&file).is_absolute() {
            m.sys_path(&file)
        } else {
            m.sys_path(&format!("/proc/{}/cwd", p.pid)).join(&file)
        };
        let cfg: toml::Table = std::fs::read_to_string(&path).ok()?.parse().ok()?;
        (cfg.get("mode").and_then(|v| v.as_str()) == Some("dry-run")).then(|| {
            format!(
                "pid {} `{}` runs with mode = \"dry-run\" in {file}",
                p.pid,
                p.short()
            )
        })
    })
}

/// The value of `--name VALUE` or `--name=VALUE` in a command line.
fn flag(p: &Process, name: &str) -> Option<String> {
    let mut it = p.argv.iter();
    while let Some(a) = it.next() {
        if a == name {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            return Some(v.to_string());
        }
    }
    None
}
