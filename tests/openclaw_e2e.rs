//! End to end with the real OpenClaw client: `clawguard exec -- openclaw agent exec …`
//! against a fake OpenAI-compatible model server (`tests/peers/fake_llm.py`, HTTPS with a
//! test CA made here). Everything stays on loopback.
//!
//! Node 24 and OpenClaw are installed with npm into `target/e2e-cache/` on first use and
//! reused afterwards (override the place with `CLAWGUARD_E2E_CACHE`; see
//! `tests/common/openclaw.rs`, shared with `tests/doctor.rs`). The tests skip only
//! when npm or node is missing entirely (then they print `SKIP:`), and never under
//! `CI=true`.
//!
//! What is asserted is what the fake model server received: personal data redacted, a
//! credential in a tool result never arriving, the provider key passing, dry-run changing
//! nothing, and under `--lockdown` only the proxied path working.
//! Timeouts only bound the run so it never hangs; nothing asserts on durations.

mod common;

use common::openclaw::{tooling, Tooling};
use common::{run_bounded, Output};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One OpenClaw turn takes 10–30 s here; this only bounds a broken run.
const TURN_TIMEOUT: Duration = Duration::from_secs(300);

/// Personal data a user pastes into a prompt.
const CN_ID: &str = "11010519491231002X"; // GB 11643 check digit valid
const CN_MOBILE: &str = "13800138000";
const CARD: &str = "4111 1111 1111 1111"; // Luhn valid
/// OpenClaw's own provider key: shaped like an OpenAI project key so the
/// `openai-api-key` rule fires on it; the config binds it to the fake server's host.
const PROVIDER_KEY: &str = "sk-proj-Qm3Hx9RkPzW7vNbY2dLcT3BlbkFJa8Vn2XqR5tKp0WzYj4Hs";
/// An Azure storage account key, printed by a tool. OpenClaw 2026.9.6 does not mask it
/// in tool results itself, so what stops it is ClawGuard. The command that prints it
/// holds it in two halves, so the model's tool call does not carry it.
const AZURE_KEY_A: &str = "DRoltMQuIa/HXyl6EjjpcEfJhx4iKIh1FXd/ayatXeL4";
const AZURE_KEY_B: &str = "VLVvGnEh0ee3ufJjNqDXKu0BMbibfTJzwgJ7IN2jTQ==";
/// An Alibaba Cloud AccessKey ID, printed by the same tool call. OpenClaw masks these in
/// tool results itself (`LTAI5t…bY2d`); reported, not asserted.
const ALIBABA_A: &str = "LTAI";
const ALIBABA_B: &str = "5tQm3Hx9RkPzW7vNbY2d";

// ---------------------------------------------------------------------------------------
// The fake model server

struct FakeLlm {
    child: Child,
    port: u16,
    log: PathBuf,
    /// PEM of the test CA that signed its certificate (ClawGuard's `--upstream-ca`).
    ca_pem: PathBuf,
    _dir: tempfile::TempDir,
}

impl FakeLlm {
    fn start() -> FakeLlm {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "OpenClaw e2e fake-llm CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca_pem = dir.path().join("fake-llm-ca.pem");
        std::fs::write(&ca_pem, ca_cert.pem()).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let (cert, key) = (dir.path().join("leaf.pem"), dir.path().join("leaf.key"));
        std::fs::write(&cert, leaf.pem()).unwrap();
        std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
        let log = dir.path().join("requests.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/fake_llm.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("fake_llm.stderr")).unwrap())
            .spawn()
            .expect("python3 runs tests/peers/fake_llm.py (install python3)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("fake_llm.py printed its port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("fake_llm.py said {line:?}"));
        FakeLlm {
            child,
            port,
            log,
            ca_pem,
            _dir: dir,
        }
    }

    fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}/v1", self.port)
    }

    /// Every request received: {method, path, headers: [[name, value]…], body}.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("request log line is JSON"))
            .collect()
    }

    fn chat_requests(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["method"] == "POST" && r["path"] == "/v1/chat/completions")
            .collect()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header<'a>(req: &'a Value, name: &str) -> Option<&'a str> {
    req["headers"]
        .as_array()?
        .iter()
        .find(|h| h[0] == name)
        .and_then(|h| h[1].as_str())
}

/// The parsed chat body of a recorded request.
fn body(req: &Value) -> Value {
    serde_json::from_str(req["body"].as_str().unwrap_or("")).expect("chat body is JSON")
}

fn text_of(msg: &Value) -> String {
    match &msg["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The user message OpenClaw built from our prompt (it also sends internal-context user
/// messages; ours is the first).
fn first_user_text(req: &Value) -> String {
    body(req)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "user")
        .map(text_of)
        .unwrap_or_default()
}

fn tool_texts(req: &Value) -> Vec<String> {
    body(req)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(text_of)
        .collect()
}

// ---------------------------------------------------------------------------------------
// An OpenClaw home and a ClawGuard-wrapped run

struct Scene {
    tools: &'static Tooling,
    fake: FakeLlm,
    dir: tempfile::TempDir,
}

impl Scene {
    fn new(tools: &'static Tooling) -> Scene {
        let fake = FakeLlm::start();
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".openclaw")).unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        // proxy.loopbackMode = "proxy": OpenClaw's managed proxy mode otherwise sends
        // loopback destinations (our fake server) direct. It must be in
        // ~/.openclaw/openclaw.json; we pass the same file as --config.
        let cfg = serde_json::json!({
            "models": {"providers": {"fake": {
                "baseUrl": fake.base_url(),
                "apiKey": PROVIDER_KEY,
                "api": "openai-completions",
                "models": [{"id": "fake-model", "name": "Fake model",
                            "contextWindow": 128000, "maxTokens": 4096}]
            }}},
            "agents": {"defaults": {"model": {"primary": "fake/fake-model"}}},
            "proxy": {"loopbackMode": "proxy"}
        });
        std::fs::write(
            home.join(".openclaw/openclaw.json"),
            serde_json::to_vec_pretty(&cfg).unwrap(),
        )
        .unwrap();
        // The provider key may go to the fake provider (its "home host"); the fake
        // server is on loopback, which the egress policy denies unless allowed.
        std::fs::write(
            dir.path().join("clawguard.toml"),
            "[rules.openai-api-key]\nhome_hosts = [\"127.0.0.1\"]\n\n\
             [egress]\nallow_private = true\n",
        )
        .unwrap();
        Scene { tools, fake, dir }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `clawguard exec <flags> -- <command…>` in the OpenClaw home, bounded.
    fn exec(&self, flags: &[&str], command: &[&str], tag: &str) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawguard"));
        cmd.arg("exec")
            .arg("--ca-dir")
            .arg(self.dir.path().join("ca"))
            .arg("--upstream-ca")
            .arg(&self.fake.ca_pem)
            // The fake LLM listens on 127.0.0.1, which the default egress policy refuses.
            .arg("--allow-private")
            // CI runs as root; `exec` refuses root without it (a locked-down root
            // command still has no capabilities).
            .args(if unsafe { libc::geteuid() } == 0 {
                &["--allow-root"][..]
            } else {
                &[]
            })
            .arg("--config")
            .arg(self.dir.path().join("clawguard.toml"))
            .args(flags)
            .arg("--")
            .args(command)
            .current_dir(self.dir.path().join("work"))
            .env("HOME", self.home())
            .env("PATH", self.tools.node_path())
            .env("NO_COLOR", "1")
            .env("FORCE_COLOR", "0")
            .env("RUST_LOG", "info");
        let out = run_bounded(cmd, TURN_TIMEOUT, &self.dir.path().join(tag));
        eprintln!(
            "---- {tag}: exit {:?}\n---- stdout:\n{}\n---- stderr (OpenClaw and ClawGuard):\n{}",
            out.code,
            out.stdout,
            strip_sqlite_noise(&out.stderr)
        );
        out
    }

    fn openclaw_args(&self, message: &str) -> Vec<String> {
        vec![
            self.tools.openclaw().display().to_string(),
            "agent".into(),
            "exec".into(),
            "--config".into(),
            self.home()
                .join(".openclaw/openclaw.json")
                .display()
                .to_string(),
            "--timeout".into(),
            "120".into(),
            "--json".into(),
            message.into(),
        ]
    }

    /// One turn of the persistent OpenClaw session `session` (`openclaw agent --local`)
    /// through `clawguard exec`.
    fn local_turn(&self, session: &str, message: &str, tag: &str) -> Output {
        let oc = self.tools.openclaw().display().to_string();
        let argv = [
            oc.as_str(),
            "agent",
            "--local",
            "--session-id",
            session,
            "--json",
            "-m",
            message,
        ];
        self.exec(&[], &argv, tag)
    }

    /// One OpenClaw turn through `clawguard exec <flags>`.
    fn turn(&self, flags: &[&str], message: &str, tag: &str) -> (Output, Value) {
        let args = self.openclaw_args(message);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.exec(flags, &args, tag);
        let json = parse_envelope(&out.stdout);
        (out, json)
    }
}

/// OpenClaw's `--json` envelope from stdout (Null when there is none).
fn parse_envelope(stdout: &str) -> Value {
    let start = stdout.find('{').unwrap_or(stdout.len());
    serde_json::from_str(&stdout[start..]).unwrap_or(Value::Null)
}

fn strip_sqlite_noise(s: &str) -> String {
    s.lines()
        .filter(|l| !l.contains("[session-sqlite]"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn exec_message(command: &str) -> String {
    format!("Please run this for me. CALL_EXEC:{command}")
}

/// A command whose output holds an Azure storage key and an Alibaba AccessKey ID while
/// the command line itself holds neither in one piece.
fn leaking_command() -> String {
    format!(
        "printf 'AccountName=e2edemo;AccountKey=%s%s\\n' {AZURE_KEY_A} {AZURE_KEY_B}; \
         printf 'ali=%s%s\\n' {ALIBABA_A} {ALIBABA_B}"
    )
}

fn azure_key() -> String {
    format!("{AZURE_KEY_A}{AZURE_KEY_B}")
}

fn alibaba_key() -> String {
    format!("{ALIBABA_A}{ALIBABA_B}")
}

fn pii_message() -> String {
    format!(
        "Please file this for me: resident ID {CN_ID}, mobile {CN_MOBILE}, card {CARD}. \
         Thanks."
    )
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn pii_in_a_prompt_reaches_the_model_redacted_and_the_provider_key_passes() {
    let Some(tools) = tooling("pii_in_a_prompt") else {
        return;
    };
    let scene = Scene::new(tools);
    let (out, json) = scene.turn(&[], &pii_message(), "pii");
    assert_eq!(out.code, Some(0), "the turn completes");
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["final"], "FAKE_REPLY: ok", "{json}");

    let chats = scene.fake.chat_requests();
    assert!(!chats.is_empty(), "the model got the turn");
    for req in &chats {
        let raw = req["body"].as_str().unwrap();
        for secret in [CN_ID, CN_MOBILE, CARD, &CARD.replace(' ', "")] {
            assert!(!raw.contains(secret), "{secret} reached the model: {raw}");
        }
        // OpenClaw's own key went to its provider (home host binding).
        assert_eq!(
            header(req, "authorization"),
            Some(format!("Bearer {PROVIDER_KEY}").as_str()),
            "the provider key passes unchanged"
        );
    }
    let user = first_user_text(&chats[0]);
    assert!(user.contains("[REDACTED:cn-resident-id]"), "{user}");
    assert!(user.contains("[REDACTED:cn-mobile]"), "{user}");
    assert_eq!(
        user.matches("[REDACTED:").count(),
        3,
        "ID, mobile and card each replaced: {user}"
    );
    assert!(
        user.contains("Please file this for me: resident ID [REDACTED:"),
        "the rest of the prompt is intact: {user}"
    );
    assert!(
        out.stderr.contains("cn-resident-id"),
        "ClawGuard logged the redaction"
    );
}

#[test]
fn a_credential_in_a_tool_result_is_blocked_before_the_model_sees_it() {
    let Some(tools) = tooling("tool_result_blocked") else {
        return;
    };
    let scene = Scene::new(tools);
    let (out, json) = scene.turn(&[], &exec_message(&leaking_command()), "tool-block");

    // The model asked for the command, OpenClaw ran it, and the request carrying its
    // output was stopped: the fake server saw only the first request.
    let chats = scene.fake.chat_requests();
    assert_eq!(
        chats.len(),
        1,
        "only the request before the tool ran reached the model"
    );
    assert_eq!(json["toolSummary"]["tools"][0], "exec", "exec ran: {json}");
    for req in scene.fake.requests() {
        let raw = req["body"].as_str().unwrap_or("");
        assert!(!raw.contains(&azure_key()), "Azure key reached the model");
        assert!(
            !raw.contains(&alibaba_key()),
            "Alibaba key reached the model"
        );
    }
    // OpenClaw reports the block readably and fails the run.
    assert_ne!(out.code, Some(0), "a blocked turn is a failed run");
    assert_eq!(json["ok"], false, "{json}");
    let reported = format!("{}\n{}", out.stdout, out.stderr);
    assert!(
        reported.contains("Blocked by ClawGuard"),
        "OpenClaw shows ClawGuard's reason"
    );
    assert!(
        reported.contains("azure-storage-account-key"),
        "the reason names the rule"
    );
    eprintln!(
        "NOTE: OpenClaw's JSON error on a block: {}\nNOTE: OpenClaw's payload text: {}",
        json["error"], json["payloads"]
    );
}

#[test]
fn dry_run_forwards_everything_unchanged_and_logs_what_it_would_do() {
    let Some(tools) = tooling("dry_run") else {
        return;
    };
    let scene = Scene::new(tools);
    let message = format!("{} {}", pii_message(), exec_message(&leaking_command()));
    let (out, json) = scene.turn(&["--mode", "dry-run"], &message, "dry-run");
    assert_eq!(out.code, Some(0), "nothing is blocked in dry-run");
    assert_eq!(json["ok"], true, "{json}");
    assert!(
        json["final"]
            .as_str()
            .unwrap_or("")
            .starts_with("FAKE_FINAL"),
        "the tool result reached the model: {json}"
    );

    let chats = scene.fake.chat_requests();
    assert_eq!(chats.len(), 2, "prompt, then prompt + tool result");
    let user = first_user_text(&chats[0]);
    assert!(user.contains(CN_ID), "the raw ID was forwarded: {user}");
    assert!(user.contains(CN_MOBILE) && user.contains(CARD), "{user}");
    assert!(!user.contains("[REDACTED:"), "{user}");
    let tool = tool_texts(&chats[1]).join("\n");
    assert!(
        tool.contains(&azure_key()),
        "the Azure key was forwarded: {tool}"
    );
    if !tool.contains(&alibaba_key()) {
        eprintln!("NOTE: OpenClaw masked the Alibaba key in the tool result itself: {tool}");
    }
    assert!(
        out.stderr.contains("dry-run: would redact"),
        "ClawGuard logs the redaction it would have made"
    );
    assert!(
        out.stderr.contains("dry-run: would block"),
        "ClawGuard logs the block it would have made"
    );
    for rule in ["cn-resident-id", "cn-mobile", "azure-storage-account-key"] {
        assert!(out.stderr.contains(rule), "dry-run log names {rule}");
    }
}

#[test]
fn lockdown_leaves_only_the_proxy_path_and_openclaw_still_works() {
    let Some(tools) = tooling("lockdown") else {
        return;
    };
    let scene = Scene::new(tools);
    let models = format!("{}/models", scene.fake.base_url());
    let port = scene.fake.port;
    let ca = scene.fake.ca_pem.display().to_string();
    let turn = scene.openclaw_args(&pii_message());
    let quoted: Vec<String> = turn.iter().map(|a| shell_quote(a)).collect();
    // Direct attempts (curl without proxy, a raw Node socket) must fail; the proxied
    // ones (curl and Node's fetch via the proxy variables) must work; then a whole
    // OpenClaw turn runs inside the namespace.
    let probes = format!(
        "curl -sS --max-time 10 -o /dev/null -w 'curl-proxied:%{{http_code}}\\n' {models}; \
         curl -sS --max-time 10 --noproxy '*' --cacert {ca} -o /dev/null {models} 2>/dev/null \
           && echo curl-direct:reached || echo curl-direct:failed; \
         node -e \"fetch('{models}').then(r => console.log('node-proxied:' + r.status), \
           e => console.log('node-proxied:failed ' + (e.cause && e.cause.code)))\"; \
         node -e \"const s = require('net').connect({port}, '127.0.0.1'); \
           s.on('connect', () => {{ console.log('node-direct:reached'); s.destroy(); }}); \
           s.on('error', e => console.log('node-direct:failed ' + e.code))\"; "
    );
    // Control: without --lockdown the direct attempts do reach the server, so their
    // failure below is the namespace's doing.
    let control = scene.exec(&[], &["bash", "-c", &probes], "no-lockdown-probes");
    let lines: Vec<&str> = control.stdout.lines().collect();
    assert!(lines.contains(&"curl-direct:reached"), "{lines:?}");
    assert!(lines.contains(&"node-direct:reached"), "{lines:?}");
    let before = scene.fake.requests().len();

    let script = format!(
        "{probes} {turn} > openclaw.json; echo openclaw:$?",
        turn = quoted.join(" "),
    );
    let out = scene.exec(&["--lockdown"], &["bash", "-c", &script], "lockdown");
    if lockdown_unavailable(&out) {
        return;
    }
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.contains(&"curl-proxied:200"), "{lines:?}");
    assert!(lines.contains(&"curl-direct:failed"), "{lines:?}");
    assert!(lines.contains(&"node-proxied:200"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("node-direct:failed")),
        "{lines:?}"
    );
    assert!(lines.contains(&"openclaw:0"), "{lines:?}");
    let json = parse_envelope(
        &std::fs::read_to_string(scene.dir.path().join("work/openclaw.json")).unwrap(),
    );
    assert_eq!(json["ok"], true, "{json}");

    // The fake server saw the two proxied GETs and the redacted turn, nothing direct.
    let reqs = scene.fake.requests().split_off(before);
    let gets = reqs.iter().filter(|r| r["method"] == "GET").count();
    assert_eq!(gets, 2, "only the proxied probes arrived");
    let chats = scene.fake.chat_requests();
    assert!(!chats.is_empty(), "the OpenClaw turn reached the model");
    for req in &chats {
        assert!(!req["body"].as_str().unwrap().contains(CN_ID));
    }
    assert!(first_user_text(&chats[0]).contains("[REDACTED:cn-resident-id]"));
}

/// A block on the first request of a turn must not make OpenClaw disable its provider
/// key. With a 403, OpenClaw 2026.9.6 reports "authentication failed, HTTP 403.
/// Re-authenticate the provider" and puts the key in a cooldown of about a minute, so
/// the user's next, clean turn fails too. With 451 (tried by changing the status in
/// `detect::engine::blocked`) this test passes: OpenClaw puts "451 Blocked by ClawGuard: …" in
/// its JSON error, retries the turn a few times (each blocked again) and leaves the key
/// alone. Ignored until ClawGuard answers blocks on LLM API paths with a status
/// OpenClaw does not read as an auth failure.
#[test]
#[ignore = "ClawGuard answers blocks with 403, which OpenClaw treats as an auth failure"]
fn a_blocked_turn_does_not_disable_the_provider_key() {
    let Some(tools) = tooling("blocked_turn_cooldown") else {
        return;
    };
    let scene = Scene::new(tools);
    let leak = format!("my storage key is AccountKey={}", azure_key());
    let (out, _) = scene.turn(&[], &leak, "blocked-first");
    assert!(format!("{}{}", out.stdout, out.stderr).contains("Blocked by ClawGuard"));
    let (out, json) = scene.turn(&[], "hello again", "clean-after-block");
    assert_eq!(out.code, Some(0), "the next clean turn works: {json}");
    assert_eq!(json["ok"], true, "{json}");
}

/// After a tool result was blocked, the next turn of the same session must work. With
/// `openclaw agent --local` (a persistent session) OpenClaw 2026.9.6 keeps the blocked
/// tool result in the session transcript and re-sends it with every later turn, so
/// ClawGuard blocks each of them again until the user starts a new session. Ignored
/// until blocks on LLM API paths leave the session usable (e.g. redact credentials in
/// tool results of the chat history instead of blocking).
#[test]
#[ignore = "a blocked tool result stays in OpenClaw's session and blocks every later turn"]
fn a_blocked_tool_result_does_not_poison_the_session() {
    let Some(tools) = tooling("session_poisoning") else {
        return;
    };
    let scene = Scene::new(tools);
    let session = "e2e-session";
    let local_turn = |message: &str, tag: &str| scene.local_turn(session, message, tag);
    let out = local_turn(&exec_message(&leaking_command()), "poison-1");
    assert!(format!("{}{}", out.stdout, out.stderr).contains("Blocked by ClawGuard"));
    let out = local_turn("hello again, nothing secret here", "poison-2");
    assert_eq!(out.code, Some(0), "the next turn of the session works");
    let last = scene
        .fake
        .chat_requests()
        .pop()
        .expect("the model got the turn");
    assert!(
        first_user_text(&last).contains("hello again")
            || last["body"].as_str().unwrap().contains("hello again")
    );
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `true` (after printing SKIP) when `clawguard exec --lockdown` refused to start here;
/// under `CI=true` that fails the test instead, with ClawGuard's reason.
fn lockdown_unavailable(out: &Output) -> bool {
    if !out.stderr.contains("--lockdown: ") {
        return false;
    }
    assert!(
        !matches!(std::env::var("CI").as_deref(), Ok("true" | "1")),
        "CI=true and the lockdown is unavailable: {}",
        out.stderr
    );
    eprintln!("SKIP: lockdown: unavailable here: {}", out.stderr);
    true
}

/// OpenClaw's own check of its proxy set-up, `openclaw proxy validate`, run from inside
/// the lockdown: the allowed destination (the fake model server on the host, reachable
/// only through ClawGuard) answers through the proxy, and OpenClaw's loopback canary
/// (which it starts inside the lockdown) is not reachable through it.
#[test]
fn openclaw_proxy_validate_passes_inside_the_lockdown() {
    let Some(tools) = tooling("proxy_validate") else {
        return;
    };
    let scene = Scene::new(tools);
    let models = format!("{}/models", scene.fake.base_url());
    let oc = tools.openclaw().display().to_string();
    let out = scene.exec(
        &["--lockdown"],
        &[
            &oc,
            "proxy",
            "validate",
            "--allowed-url",
            &models,
            "--timeout-ms",
            "30000",
            "--json",
        ],
        "proxy-validate",
    );
    if lockdown_unavailable(&out) {
        return;
    }
    let json = parse_envelope(&out.stdout);
    assert_eq!(out.code, Some(0), "openclaw proxy validate passes: {json}");
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["config"]["source"], "env", "{json}");
    assert_eq!(
        json["config"]["proxyUrl"], "http://127.0.0.1:8383/",
        "{json}"
    );
    let checks = json["checks"].as_array().expect("checks");
    let allowed = checks.iter().find(|c| c["kind"] == "allowed").unwrap();
    assert_eq!(allowed["ok"], true, "{allowed}");
    assert_eq!(allowed["status"], 200, "{allowed}");
    let denied = checks.iter().find(|c| c["kind"] == "denied").unwrap();
    assert_eq!(denied["ok"], true, "{denied}");
    // The allowed probe reached the model server, through ClawGuard.
    assert!(
        scene
            .fake
            .requests()
            .iter()
            .any(|r| r["method"] == "GET" && r["path"] == "/v1/models"),
        "the fake server saw the allowed probe"
    );
}

// ---------------------------------------------------------------------------------------
// Pseudonymization (issue 10): the fake server declared an LLM API host, so findings in
// the conversation reach it as placeholders and the model's answers are restored.

/// ClawGuard's config for the pseudonymization tests: the same as [`Scene::new`]'s, with
/// the fake server (127.0.0.1) listed in `llm_hosts`.
fn pseudonymizing(scene: &Scene) {
    std::fs::write(
        scene.dir.path().join("clawguard.toml"),
        "llm_hosts = [\"127.0.0.1\"]\n\n\
         [rules.openai-api-key]\nhome_hosts = [\"127.0.0.1\"]\n\n\
         [egress]\nallow_private = true\n",
    )
    .unwrap();
}

/// Switch the OpenClaw provider to the Anthropic Messages API on the same fake server.
fn anthropic_provider(scene: &Scene) {
    let cfg = serde_json::json!({
        "models": {"providers": {"fake": {
            "baseUrl": format!("https://127.0.0.1:{}", scene.fake.port),
            "apiKey": PROVIDER_KEY,
            "api": "anthropic-messages",
            "models": [{"id": "fake-model", "name": "Fake model",
                        "contextWindow": 128000, "maxTokens": 4096}]
        }}},
        "agents": {"defaults": {"model": {"primary": "fake/fake-model"}}},
        "proxy": {"loopbackMode": "proxy"}
    });
    std::fs::write(
        scene.home().join(".openclaw/openclaw.json"),
        serde_json::to_vec_pretty(&cfg).unwrap(),
    )
    .unwrap();
}

/// The placeholders (`CG_<ENTITY>_<13 letters>`) in `text`, in order.
fn placeholders_in(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = text[i..].find("CG_") {
        let at = i + p;
        let ent = b[at + 3..]
            .iter()
            .take_while(|c| c.is_ascii_uppercase())
            .count();
        let tag_at = at + 3 + ent + 1;
        let ok = (2..=12).contains(&ent)
            && b.get(at + 3 + ent) == Some(&b'_')
            && b.len() >= tag_at + 13
            && b[tag_at..tag_at + 13]
                .iter()
                .all(|c| c.is_ascii_lowercase());
        if ok {
            out.push(text[at..tag_at + 13].to_string());
            i = tag_at + 13;
        } else {
            i = at + 3;
        }
    }
    out
}

/// (a) and (c): the prompt's mobile number and resident ID reach the model only as
/// placeholders; the model answers with a streamed `exec` call writing the placeholders
/// into a file; OpenClaw runs it and the file holds the real values; the next request
/// carries the same placeholders again (the tool call in the history), never a value;
/// the final answer, quoting the placeholders, reaches the agent with the real values.
fn placeholders_round_trip(anthropic: bool, tag: &str) {
    let Some(tools) = tooling(tag) else {
        return;
    };
    let scene = Scene::new(tools);
    pseudonymizing(&scene);
    if anthropic {
        anthropic_provider(&scene);
    }
    let saved = scene.dir.path().join("work/saved.txt");
    let message = format!(
        "Save my mobile {CN_MOBILE} and my resident ID {CN_ID}. CALL_EXEC_PLACEHOLDERS:{}",
        saved.display()
    );
    let (out, json) = scene.turn(&[], &message, tag);
    assert_eq!(out.code, Some(0), "the turn completes: {json}");
    assert_eq!(json["ok"], true, "{json}");

    let path = if anthropic {
        "/v1/messages"
    } else {
        "/v1/chat/completions"
    };
    let chats: Vec<Value> = scene
        .fake
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "POST" && r["path"] == path)
        .collect();
    assert_eq!(chats.len(), 2, "prompt, then prompt + tool result");
    for req in &chats {
        let raw = req["body"].as_str().unwrap();
        for value in [CN_MOBILE, CN_ID] {
            assert!(!raw.contains(value), "{value} reached the model: {raw}");
        }
    }
    let sent = placeholders_in(&first_user_text(&chats[0]));
    let phone = sent
        .iter()
        .find(|p| p.starts_with("CG_PHONE_"))
        .expect("mobile as a placeholder");
    let id = sent
        .iter()
        .find(|p| p.starts_with("CG_IDNUM_"))
        .expect("ID as a placeholder");

    // The tool ran with the restored command: the file holds the real values.
    let file = std::fs::read_to_string(&saved).expect("the exec tool wrote the file");
    assert_eq!(
        file.lines().collect::<Vec<_>>(),
        [CN_MOBILE, CN_ID],
        "{file}"
    );

    // The next request re-sends the tool call (and the prompt) with placeholders only.
    let second = chats[1]["body"].as_str().unwrap();
    let again = placeholders_in(second);
    assert!(again.contains(phone) && again.contains(id), "{second}");
    assert!(
        again.iter().filter(|p| *p == phone).count() >= 2,
        "prompt and tool-call arguments both carry the same placeholder: {second}"
    );

    // The model's final text quoted the placeholders; the agent got the values.
    let final_text = json["final"].as_str().unwrap_or("");
    assert!(
        final_text.contains(CN_MOBILE) && final_text.contains(CN_ID),
        "final answer restored: {json}"
    );
    assert!(!final_text.contains("CG_"), "{json}");
}

#[test]
fn pseudonymized_prompt_tool_call_writes_the_real_values() {
    placeholders_round_trip(false, "pseudo-openai");
}

#[test]
fn pseudonymized_prompt_tool_call_writes_the_real_values_anthropic() {
    placeholders_round_trip(true, "pseudo-anthropic");
}

/// (b): a cloud key printed by a tool reaches the model as a placeholder instead of
/// blocking the request, and the persistent session's next turn completes.
#[test]
fn a_credential_in_a_tool_result_is_pseudonymized_and_the_session_continues() {
    let Some(tools) = tooling("pseudo_tool_result") else {
        return;
    };
    let scene = Scene::new(tools);
    pseudonymizing(&scene);
    let session = "e2e-pseudo-session";
    let local_turn = |message: &str, tag: &str| scene.local_turn(session, message, tag);
    let out = local_turn(&exec_message(&leaking_command()), "pseudo-tool-1");
    assert_eq!(out.code, Some(0), "the turn with the tool result completes");
    assert!(!format!("{}{}", out.stdout, out.stderr).contains("Blocked by ClawGuard"));
    let out = local_turn("hello again, nothing secret here", "pseudo-tool-2");
    assert_eq!(out.code, Some(0), "the next turn of the session completes");

    let chats = scene.fake.chat_requests();
    assert!(
        chats.len() >= 3,
        "turn 1 (two requests) and turn 2 reached the model"
    );
    let mut key_placeholders = 0;
    for req in &chats {
        let raw = req["body"].as_str().unwrap();
        assert!(
            !raw.contains(&azure_key()),
            "the Azure key reached the model: {raw}"
        );
        key_placeholders += placeholders_in(raw)
            .iter()
            .filter(|p| p.starts_with("CG_KEY_"))
            .count();
    }
    assert!(
        key_placeholders >= 2,
        "the tool result's key went as a placeholder, twice (turn 1, then the session's history)"
    );
    let last = chats.last().unwrap()["body"].as_str().unwrap();
    assert!(last.contains("hello again"), "{last}");
}
