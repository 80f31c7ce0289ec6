//! `clawguard doctor` on fixture machines (a root directory with its own `proc/`, `etc/`,
//! …, a home with an OpenClaw state directory) set up right and set up wrong, with a real
//! ClawGuard proxy, a fake npm registry on loopback, and a real OpenClaw install. Plus one
//! run on this machine. Assertions are on `--json` and the exit status.

mod common;

use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The uid fixtures give OpenClaw's dedicated user.
const OPENCLAW_UID: u32 = 1000;
/// An OpenAI-shaped key (the `openai-api-key` rule) as OpenClaw's provider key.
const PROVIDER_KEY: &str = "sk-proj-Qm3Hx9RkPzW7vNbY2dLcT3BlbkFJa8Vn2XqR5tKp0WzYj4Hs";
const CN_MOBILE: &str = "13800138000";
const CN_ID: &str = "11010519491231002X";
const INSTALLED: &str = "2026.9.6";

/// A machine: `root` stands for `/`, `home` for the OpenClaw user's home.
struct Fixture {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl Fixture {
    /// A machine set up right, except for what each test breaks: a container, a dedicated
    /// user owning ~/.openclaw (0700), OpenClaw 2026.9.6 installed, its config pointing at
    /// ClawGuard with loopback routed through it, Node/curl/Python trusting the CA, a clean
    /// workspace. The proxy URL and CA are set by [`Fixture::wire`].
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let f = Fixture {
            dir,
            env: Vec::new(),
            args: Vec::new(),
        };
        f.write(
            "root/etc/passwd",
            "root:x:0:0::/root:/bin/sh\nopenclaw:x:1000:1000::/home/openclaw:/bin/sh\n",
        );
        f.write("root/.dockerenv", "");
        std::fs::create_dir_all(f.root().join("proc")).unwrap();
        // OpenClaw installed the way npm does it: a link into node_modules/openclaw.
        f.write(
            "root/usr/lib/node_modules/openclaw/package.json",
            &format!("{{\"name\": \"openclaw\", \"version\": \"{INSTALLED}\"}}"),
        );
        f.write("root/usr/lib/node_modules/openclaw/openclaw.mjs", "");
        std::fs::create_dir_all(f.root().join("usr/bin")).unwrap();
        std::os::unix::fs::symlink(
            "../lib/node_modules/openclaw/openclaw.mjs",
            f.root().join("usr/bin/openclaw"),
        )
        .unwrap();
        f.config(serde_json::json!({"proxy": {"loopbackMode": "block"}}));
        f.write(
            ".openclaw/workspace/MEMORY.md",
            "# Memory\nThe user prefers short answers.\n",
        );
        f.chmod(".openclaw", 0o700);
        f.own(".openclaw", OPENCLAW_UID);
        f
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Write `rel` (under the home, or under the root for `root/…`).
    fn write(&self, rel: &str, body: &str) -> PathBuf {
        let p = match rel.strip_prefix("root/") {
            Some(r) => self.root().join(r),
            None => self.home().join(rel),
        };
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, body).unwrap();
        p
    }

    fn chmod(&self, rel: &str, mode: u32) {
        std::fs::set_permissions(self.home().join(rel), std::fs::Permissions::from_mode(mode))
            .unwrap();
    }

    /// Give `rel` (recursively) to `uid`; without root the files already belong to the
    /// unprivileged user running the test.
    fn own(&self, rel: &str, uid: u32) {
        if !is_root() {
            return;
        }
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{uid}"))
            .arg(self.home().join(rel))
            .status()
            .unwrap();
        assert!(st.success());
    }

    fn config(&self, cfg: Value) {
        self.write(
            ".openclaw/openclaw.json",
            &serde_json::to_string_pretty(&cfg).unwrap(),
        );
        self.chmod(".openclaw/openclaw.json", 0o600);
    }

    /// A process in the fixture's /proc.
    fn process(&self, pid: u32, uid: u32, argv: &[&str]) {
        self.write(
            &format!("root/proc/{pid}/status"),
            &format!("Name:\tx\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"),
        );
        self.write(
            &format!("root/proc/{pid}/cmdline"),
            &(argv.join("\0") + "\0"),
        );
    }

    /// Point OpenClaw at `proxy` and make Node, curl and Python trust its CA.
    fn wire(&mut self, proxy: &str, ca_dir: &Path) {
        let mut cfg: Value = serde_json::from_str(
            &std::fs::read_to_string(self.home().join(".openclaw/openclaw.json")).unwrap(),
        )
        .unwrap();
        cfg["proxy"]["proxyUrl"] = proxy.into();
        self.config(cfg);
        let ca = ca_dir.join("clawguard-ca.pem");
        self.write(
            ".openclaw/.env",
            &format!("NODE_EXTRA_CA_CERTS={}\n", ca.display()),
        );
        self.chmod(".openclaw/.env", 0o600);
        self.own(".openclaw", OPENCLAW_UID);
        for v in ["CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE"] {
            self.env.push((v.into(), ca.display().to_string()));
        }
        self.args.push("--ca-dir".into());
        self.args.push(ca_dir.display().to_string());
    }

    fn registry(&mut self, url: &str) {
        self.args.push("--registry".into());
        self.args.push(url.into());
    }

    /// `clawguard doctor --json --root ROOT` with HOME and PATH of the fixture only.
    fn doctor(&self) -> Doctor {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawguard"));
        cmd.arg("doctor")
            .arg("--json")
            .arg("--root")
            .arg(self.root())
            .args(["--timeout", "20"])
            .args(&self.args)
            .env_clear()
            .env("HOME", self.home())
            .env("PATH", self.root().join("usr/bin"));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "doctor --json printed no JSON ({e}):\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        Doctor {
            code: out.status.code(),
            stdout,
            json,
        }
    }
}

struct Doctor {
    code: Option<i32>,
    stdout: String,
    json: Value,
}

impl Doctor {
    fn check(&self, id: &str) -> &Value {
        self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no check {id} in {}", self.stdout))
    }

    fn status(&self, id: &str) -> &str {
        self.check(id)["status"].as_str().unwrap()
    }

    /// `id` failed, names a recommendation and a fix, and the run exits 1.
    fn assert_fails(&self, id: &str) -> &Value {
        let c = self.check(id);
        assert_eq!(c["status"], "fail", "{id}: {c:#}");
        assert!(
            c["recommendation"].as_str().is_some_and(|r| !r.is_empty()),
            "{c:#}"
        );
        assert!(
            c["fix"].as_str().is_some_and(|f| !f.is_empty()),
            "{id} names a fix: {c:#}"
        );
        assert_eq!(self.code, Some(1), "a failed check exits 1");
        assert_eq!(self.json["ok"], false);
        c
    }

    fn evidence(&self, id: &str) -> String {
        self.check(id)["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn failed(&self) -> Vec<String> {
        self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "fail")
            .map(|c| format!("{}: {}", c["id"], c["evidence"]))
            .collect()
    }
}

/// A fake npm registry on loopback answering `/openclaw/latest` with `version`.
struct Registry {
    url: String,
}

impl Registry {
    fn start(version: &str) -> Registry {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let body = format!("{{\"name\":\"openclaw\",\"version\":\"{version}\"}}");
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let mut s = s;
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let resp = if head.starts_with("GET /openclaw/latest ") {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .into()
                };
                let _ = s.write_all(resp.as_bytes());
            }
        });
        Registry { url }
    }
}

/// ClawGuard as the guide wants it: loopback and private destinations refused.
fn guarded_proxy(extra: &[&str]) -> Proxy {
    Proxy::start_with("", Path::new(""), extra)
}

fn ca_dir(p: &Proxy) -> PathBuf {
    p.ca_pem.parent().unwrap().to_path_buf()
}

#[test]
fn a_machine_set_up_right_passes() {
    let proxy = guarded_proxy(&[]);
    let registry = Registry::start(INSTALLED);
    let mut f = Fixture::new();
    f.wire(&proxy.url(), &ca_dir(&proxy));
    f.registry(&registry.url);
    f.process(
        4242,
        OPENCLAW_UID,
        &["node", "/usr/bin/openclaw", "gateway", "run"],
    );
    let d = f.doctor();
    assert!(d.failed().is_empty(), "nothing fails: {:#?}", d.failed());
    assert_eq!(d.code, Some(0), "{}", d.stdout);
    assert_eq!(d.json["ok"], true);
    for id in [
        "openclaw.found",
        "isolation.sandbox",
        "isolation.daily-desktop",
        "privilege.openclaw-processes",
        "privilege.openclaw-user",
        "exposure.listeners",
        "exposure.gateway-bind",
        "privacy.personal-data",
        "privacy.credentials",
        "privacy.permissions",
        "updates.openclaw-version",
        "wiring.proxy-configured",
        "wiring.loopback-mode",
        "wiring.ca",
        "wiring.trust-node",
        "wiring.trust-curl",
        "wiring.trust-python",
        "wiring.proxy-is-clawguard",
        "wiring.live-loopback-refused",
        "wiring.live-credential-blocked",
    ] {
        assert_eq!(d.status(id), "pass", "{id}: {:#}", d.check(id));
    }
    assert!(d.evidence("isolation.sandbox").contains("docker"));
    assert!(d.evidence("updates.openclaw-version").contains(INSTALLED));
    assert!(d.evidence("wiring.live-loopback-refused").contains("403"));
    // Every check says which recommendation it serves.
    for c in d.json["checks"].as_array().unwrap() {
        assert!(
            c["recommendation"].as_str().is_some_and(|r| !r.is_empty()),
            "{c}"
        );
    }
}

#[test]
fn root_run_openclaw_fails_no_root() {
    let mut f = Fixture::new();
    f.args.push("--offline".into());
    f.own(".openclaw", 0);
    f.process(77, 0, &["openclaw-gateway"]);
    f.process(78, 0, &["/usr/local/bin/clawguard", "run", "--allow-root"]);
    f.process(79, OPENCLAW_UID, &["bash"]);
    let d = f.doctor();
    let c = d.assert_fails("privilege.openclaw-processes");
    assert!(
        c["evidence"][0].as_str().unwrap().contains("pid 77"),
        "{c:#}"
    );
    d.assert_fails("privilege.clawguard-processes");
    if is_root() {
        // The files belong to root only when the test can make them so.
        d.assert_fails("privilege.openclaw-user");
    }
}

#[test]
fn unset_or_disabled_proxy_fails_wiring_and_skips_the_live_checks() {
    let mut f = Fixture::new();
    f.args.push("--offline".into());
    let d = f.doctor();
    let c = d.assert_fails("wiring.proxy-configured");
    assert!(
        c["fix"].as_str().unwrap().contains("proxy.proxyUrl"),
        "{c:#}"
    );
    assert_eq!(d.status("wiring.live-loopback-refused"), "skip");

    f.config(serde_json::json!({"proxy": {"proxyUrl": "http://127.0.0.1:8383", "enabled": false}}));
    let d = f.doctor();
    let c = d.assert_fails("wiring.proxy-configured");
    assert!(
        c["evidence"][0]
            .as_str()
            .unwrap()
            .contains("proxy.enabled is false"),
        "{c:#}"
    );
    assert_eq!(
        d.status("wiring.loopback-mode"),
        "warn",
        "gateway-only lets loopback bypass"
    );
}

#[test]
fn world_readable_credentials_fail_and_are_never_printed() {
    let mut f = Fixture::new();
    f.args.push("--offline".into());
    f.config(serde_json::json!({
        "models": {"providers": {"openai": {"apiKey": PROVIDER_KEY}}},
        "proxy": {"proxyUrl": "http://127.0.0.1:8383", "loopbackMode": "block"}
    }));
    f.chmod(".openclaw/openclaw.json", 0o644);
    f.chmod(".openclaw", 0o755);
    let d = f.doctor();
    let c = d.assert_fails("privacy.permissions");
    let ev = d.evidence("privacy.permissions");
    assert!(
        ev.contains("openclaw.json holds credentials and is mode 644"),
        "{ev}"
    );
    assert!(ev.contains("mode 755"), "{ev}");
    assert!(c["fix"].as_str().unwrap().contains("chmod 600"), "{c:#}");
    // The provider key where OpenClaw keeps it is not itself a failure.
    assert_eq!(d.status("privacy.credentials"), "pass");
    assert!(d.evidence("privacy.credentials").contains("openai-api-key"));
    assert!(!d.stdout.contains(PROVIDER_KEY), "the key is never printed");

    // Private again: passes.
    f.chmod(".openclaw/openclaw.json", 0o600);
    f.chmod(".openclaw", 0o700);
    assert_eq!(f.doctor().status("privacy.permissions"), "pass");
}

#[test]
fn personal_data_and_credentials_in_the_workspace_fail_with_counts_and_places() {
    let mut f = Fixture::new();
    f.args.push("--offline".into());
    f.write(
        ".openclaw/workspace/MEMORY.md",
        &format!("# Memory\nMobile {CN_MOBILE}, ID {CN_ID}.\nCall {CN_MOBILE} after 6.\n"),
    );
    f.write(
        ".openclaw/workspace/project/.env",
        &format!("OPENAI_API_KEY={PROVIDER_KEY}\n"),
    );
    // Installed packages' own fixtures are not the user's data.
    f.write(
        ".openclaw/extensions/x/node_modules/y/test.js",
        &format!("const k = '{PROVIDER_KEY}';"),
    );
    let d = f.doctor();
    d.assert_fails("privacy.personal-data");
    let ev = d.evidence("privacy.personal-data");
    assert!(
        ev.contains(
            "cn-mobile: 2 in ~/.openclaw/workspace/MEMORY.md:2, ~/.openclaw/workspace/MEMORY.md:3"
        ),
        "{ev}"
    );
    assert!(
        ev.contains("cn-resident-id: 1 in ~/.openclaw/workspace/MEMORY.md:2"),
        "{ev}"
    );
    d.assert_fails("privacy.credentials");
    let ev = d.evidence("privacy.credentials");
    assert!(
        ev.contains("openai-api-key: 1 in ~/.openclaw/workspace/project/.env:1"),
        "{ev}"
    );
    assert!(!ev.contains("node_modules"), "{ev}");
    for secret in [CN_MOBILE, CN_ID, PROVIDER_KEY] {
        assert!(
            !d.stdout.contains(secret),
            "{secret} printed:\n{}",
            d.stdout
        );
    }
}

#[test]
fn an_old_openclaw_fails_updates_and_an_unreachable_registry_is_said_plainly() {
    let registry = Registry::start("2026.11.2");
    let mut f = Fixture::new();
    f.registry(&registry.url);
    f.args.push("--proxy".into());
    f.args.push(format!("http://127.0.0.1:{}", closed_port()));
    let d = f.doctor();
    let c = d.assert_fails("updates.openclaw-version");
    assert!(
        c["fix"].as_str().unwrap().contains("openclaw@2026.11.2"),
        "{c:#}"
    );
    // Nothing listens where the proxy should be.
    d.assert_fails("wiring.proxy-is-clawguard");

    let mut f = Fixture::new();
    f.args.push("--offline".into());
    f.registry(&format!("http://127.0.0.1:{}", closed_port()));
    let idx = f.args.iter().position(|a| a == "--offline").unwrap();
    f.args.remove(idx);
    f.args.push("--proxy".into());
    f.args.push("https://proxy.example:8443".into());
    let d = f.doctor();
    assert_eq!(d.status("updates.openclaw-version"), "warn");
    assert!(d
        .evidence("updates.openclaw-version")
        .contains("could not ask the npm registry"));
    assert!(d.evidence("updates.openclaw-version").contains(INSTALLED));
    // The live checks talk to a loopback proxy only.
    assert_eq!(d.status("wiring.live-loopback-refused"), "skip");
}

#[test]
fn a_proxy_that_reaches_loopback_or_only_watches_fails_the_live_checks() {
    // --allow-private: the loopback canary is reached; the credential is still blocked.
    let proxy = guarded_proxy(&["--allow-private"]);
    let mut f = Fixture::new();
    f.args.push("--registry".into());
    f.args.push(format!("http://127.0.0.1:{}", closed_port()));
    f.wire(&proxy.url(), &ca_dir(&proxy));
    let d = f.doctor();
    let c = d.assert_fails("wiring.live-loopback-refused");
    assert!(
        c["fix"].as_str().unwrap().contains("--allow-private"),
        "{c:#}"
    );
    assert_eq!(d.status("wiring.proxy-is-clawguard"), "pass");
    assert_eq!(
        d.status("wiring.live-credential-blocked"),
        "pass",
        "{:#}",
        d.check("wiring.live-credential-blocked")
    );

    // Dry-run: the credential goes through.
    let proxy = guarded_proxy(&["--allow-private", "--mode", "dry-run"]);
    let mut f = Fixture::new();
    f.args.push("--registry".into());
    f.args.push(format!("http://127.0.0.1:{}", closed_port()));
    f.wire(&proxy.url(), &ca_dir(&proxy));
    let d = f.doctor();
    let c = d.assert_fails("wiring.live-credential-blocked");
    assert!(c["fix"].as_str().unwrap().contains("enforce"), "{c:#}");
    assert!(
        !d.stdout.contains("ghu_"),
        "the test credential is not printed"
    );
}

#[test]
fn a_dry_run_clawguard_fails_even_when_its_egress_refusal_hides_it() {
    // Loopback refused before inspection, so the credential request proves nothing by
    // itself: the running ClawGuard's config says dry-run.
    let proxy = guarded_proxy(&["--mode", "dry-run"]);
    let mut f = Fixture::new();
    f.args.push("--registry".into());
    f.args.push(format!("http://127.0.0.1:{}", closed_port()));
    f.wire(&proxy.url(), &ca_dir(&proxy));
    f.write("root/etc/clawguard/clawguard.toml", "mode = \"dry-run\"\n");
    let listen = proxy.addr.to_string();
    f.process(
        900,
        OPENCLAW_UID,
        &[
            "/usr/bin/clawguard",
            "run",
            "--listen",
            &listen,
            "--config",
            "/etc/clawguard/clawguard.toml",
        ],
    );
    let d = f.doctor();
    assert_eq!(d.status("wiring.live-loopback-refused"), "pass");
    let c = d.assert_fails("wiring.live-credential-blocked");
    assert!(
        d.evidence("wiring.live-credential-blocked")
            .contains("dry-run"),
        "{c:#}"
    );

    // The same proxy named by --mode on its command line.
    let mut f2 = Fixture::new();
    f2.args.push("--registry".into());
    f2.args.push(format!("http://127.0.0.1:{}", closed_port()));
    f2.wire(&proxy.url(), &ca_dir(&proxy));
    f2.process(901, OPENCLAW_UID, &["clawguard", "run", "--mode=dry-run"]);
    f2.doctor().assert_fails("wiring.live-credential-blocked");
}

#[test]
fn another_proxy_is_not_clawguard() {
    // Something answering 200 to everything, like a plain forwarding proxy would.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    let proxy = guarded_proxy(&[]);
    let mut f = Fixture::new();
    f.args.push("--registry".into());
    f.args.push(format!("http://127.0.0.1:{}", closed_port()));
    f.wire(&format!("http://{addr}"), &ca_dir(&proxy));
    let d = f.doctor();
    d.assert_fails("wiring.proxy-is-clawguard");
}

#[test]
fn a_daily_desktop_and_exposed_ports_fail() {
    let mut f = Fixture::new();
    f.args.push("--offline".into());
    f.env.push(("DISPLAY".into(), ":0".into()));
    f.write("Documents/report.docx", "x");
    f.write(".thunderbird/profiles.ini", "[General]\n");
    // 0.0.0.0:18789 LISTEN (0A), and the gateway bound to the LAN.
    f.write(
        "root/proc/net/tcp",
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:4965 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0\n   1: 0100007F:4DA2 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 100 0 0 10 0\n",
    );
    f.config(serde_json::json!({"gateway": {"bind": "lan"}, "proxy": {"proxyUrl": "http://127.0.0.1:8383", "loopbackMode": "block"}}));
    let d = f.doctor();
    d.assert_fails("isolation.daily-desktop");
    let ev = d.evidence("isolation.daily-desktop");
    assert!(ev.contains("DISPLAY is set"), "{ev}");
    assert!(ev.contains("~/.thunderbird"), "{ev}");
    assert!(ev.contains("~/Documents/report.docx"), "{ev}");
    let c = d.assert_fails("exposure.listeners");
    let ev = d.evidence("exposure.listeners");
    assert!(ev.contains("port 18789 listens on 0.0.0.0"), "{ev}");
    assert!(
        !ev.contains("19890: reachable"),
        "the loopback one is fine: {ev}"
    );
    assert!(c["fix"].as_str().unwrap().contains("gateway.bind loopback"));
    d.assert_fails("exposure.gateway-bind");
}

#[test]
fn no_ca_and_untrusting_node_fail() {
    let mut f = Fixture::new();
    f.args.push("--offline".into());
    let empty = f.dir.path().join("no-ca");
    f.wire("http://127.0.0.1:8383", &empty);
    let d = f.doctor();
    let c = d.assert_fails("wiring.ca");
    assert!(
        c["fix"].as_str().unwrap().contains("clawguard ca init"),
        "{c:#}"
    );

    // A CA whose key others can read; Node not told about it.
    let ca = f.dir.path().join("ca");
    let out = Command::new(env!("CARGO_BIN_EXE_clawguard"))
        .args(["ca", "init", "--ca-dir"])
        .arg(&ca)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::set_permissions(
        ca.join("clawguard-ca.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let mut f = Fixture::new();
    f.args.push("--offline".into());
    f.wire("http://127.0.0.1:8383", &ca);
    f.write(".openclaw/.env", "");
    let d = f.doctor();
    let c = d.assert_fails("wiring.ca");
    assert!(c["fix"].as_str().unwrap().contains("chmod 600"), "{c:#}");
    let c = d.assert_fails("wiring.trust-node");
    assert!(
        c["fix"].as_str().unwrap().contains("NODE_EXTRA_CA_CERTS"),
        "{c:#}"
    );
    assert_eq!(d.status("wiring.trust-curl"), "pass");
}

#[test]
fn text_report_names_each_fix() {
    let mut f = Fixture::new();
    f.args.push("--offline".into());
    let out = Command::new(env!("CARGO_BIN_EXE_clawguard"))
        .arg("doctor")
        .arg("--root")
        .arg(f.root())
        .args(&f.args)
        .env_clear()
        .env("HOME", f.home())
        .env("PATH", f.root().join("usr/bin"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL wiring.proxy-configured"), "{text}");
    assert!(text.contains("fix: start ClawGuard"), "{text}");
    assert!(text.contains("[guide] A.3"), "{text}");
    assert!(text.contains("doctor: "), "{text}");
    f.args.clear();
}

/// The real machine: the doctor completes, with every check group reported.
#[test]
fn runs_on_this_machine() {
    let out = Command::new(env!("CARGO_BIN_EXE_clawguard"))
        .args(["doctor", "--json", "--timeout", "5"])
        .args(["--registry", &format!("http://127.0.0.1:{}", closed_port())])
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let ids: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for group in [
        "isolation.",
        "privilege.",
        "exposure.",
        "privacy.",
        "updates.",
        "wiring.",
    ] {
        assert!(
            ids.iter().any(|i| i.starts_with(group)),
            "{group} in {ids:?}"
        );
    }
    assert_eq!(json["ok"], out.status.code() == Some(0));
}

/// A real OpenClaw install, configured with its own CLI: right, then wrong.
#[test]
fn a_real_openclaw_install_set_up_right_and_wrong() {
    let Some(tools) = openclaw::tooling("doctor_real_openclaw") else {
        return;
    };
    let proxy = guarded_proxy(&[]);
    let registry = Registry::start(openclaw::OPENCLAW_VERSION);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let oc = |args: &[&str]| {
        let out = Command::new(tools.openclaw())
            .args(args)
            .env("HOME", &home)
            .env("PATH", tools.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "openclaw {args:?}: {out:?}");
    };
    oc(&["config", "set", "proxy.proxyUrl", &proxy.url()]);
    oc(&["config", "set", "proxy.loopbackMode", "block"]);
    let ca = proxy.ca_pem.display().to_string();
    std::fs::write(
        home.join(".openclaw/.env"),
        format!("NODE_EXTRA_CA_CERTS={ca}\n"),
    )
    .unwrap();
    std::fs::set_permissions(
        home.join(".openclaw/.env"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let doctor = || {
        let out = Command::new(env!("CARGO_BIN_EXE_clawguard"))
            .args([
                "doctor",
                "--json",
                "--timeout",
                "20",
                "--registry",
                &registry.url,
            ])
            .arg("--ca-dir")
            .arg(proxy.ca_pem.parent().unwrap())
            .env_clear()
            .env("HOME", &home)
            .env("PATH", tools.path())
            .env("CURL_CA_BUNDLE", &ca)
            .env("REQUESTS_CA_BUNDLE", &ca)
            .output()
            .unwrap();
        let json: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
        (out.status.code(), json)
    };
    let status = |json: &Value, id: &str| {
        json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    let (_, json) = doctor();
    for id in [
        "openclaw.found",
        "updates.openclaw-version",
        "wiring.proxy-configured",
        "wiring.loopback-mode",
        "wiring.trust-node",
        "wiring.proxy-is-clawguard",
        "wiring.live-loopback-refused",
        "wiring.live-credential-blocked",
        "privacy.personal-data",
        "privacy.credentials",
        "privacy.permissions",
    ] {
        assert_eq!(status(&json, id), "pass", "{id}: {json:#}");
    }
    // The version came from the real package.
    assert!(json.to_string().contains(openclaw::OPENCLAW_VERSION));

    // Set up wrong with OpenClaw's own CLI: the proxy turned off, loopback direct.
    oc(&["config", "set", "proxy.enabled", "false"]);
    oc(&["config", "set", "proxy.loopbackMode", "gateway-only"]);
    let (code, json) = doctor();
    assert_eq!(code, Some(1), "{json:#}");
    assert_eq!(status(&json, "wiring.proxy-configured"), "fail");
    assert_eq!(status(&json, "wiring.loopback-mode"), "warn");
}
