//! Pseudonymization through the detection engine, with the built-in rule packs: what
//! reaches an LLM API, what reaches anything else, and that the response restores.

use super::restore::{ApiKind, ResponseRestorer};
use super::*;
use crate::config::{Config, Mode};
use crate::detect::engine::{Engine, RequestInfo, Verdict};
use crate::detect::policy::{Decision, Outcome};
use crate::detect::rules::Action;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};

const PHONE: &str = "13800138000";
const ID: &str = "11010519491231002X";
const AWS: &str = "AKIAQYLPMN5HFIQR7VUX";
const PROVIDER_KEY: &str = "sk-proj-Qm3Hx9RkPzW7vNbY2dLcT3BlbkFJa8Vn2XqR5tKp0WzYj4Hs";

fn engine_with(cfg: &str, pseudo: &Arc<Pseudonymizer>) -> Engine {
    let cfg = Config::parse("t.toml", cfg).unwrap();
    Engine::new(&cfg)
        .unwrap()
        .with_pseudonymizer(pseudo.clone())
}

struct Req {
    method: http::Method,
    uri: http::Uri,
    headers: HeaderMap,
}

impl Req {
    fn post(url: &str) -> Req {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert(
            "authorization",
            format!("Bearer {PROVIDER_KEY}").parse().unwrap(),
        );
        Req {
            method: http::Method::POST,
            uri: url.parse().unwrap(),
            headers,
        }
    }

    fn info(&self) -> RequestInfo<'_> {
        RequestInfo {
            floor: None,
            method: &self.method,
            uri: &self.uri,
            host: self.uri.host().unwrap(),
            port: 443,
            headers: &self.headers,
            client: "127.0.0.1:5000".parse().unwrap(),
            request_id: "req-1",
        }
    }
}

fn rewritten(v: Verdict) -> Value {
    match v {
        Verdict::Rewrite { body, headers } => {
            assert_eq!(headers["content-length"], body.len().to_string().as_str());
            serde_json::from_slice(&body).expect("still JSON")
        }
        other => panic!("expected a rewrite, got {other:?}"),
    }
}

fn chat_body() -> Bytes {
    let args = json!({"command": format!("sms {PHONE} 'meeting at 3'")}).to_string();
    Bytes::from(
        json!({
            "model": "gpt-x",
            "stream": true,
            "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": format!("Text {PHONE} the time; my ID is {ID}.")},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "exec", "arguments": args}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": format!("aws_access_key_id = {AWS}")}
            ]
        })
        .to_string(),
    )
}

#[test]
fn conversation_to_an_llm_api_is_pseudonymized_and_restores() {
    let pseudo = Arc::new(Pseudonymizer::ephemeral());
    let e = engine_with("", &pseudo);
    let req = Req::post("https://api.openai.com/v1/chat/completions");
    let (v, report) = e.inspect_for_llm(&req.info(), &chat_body(), None);
    assert_eq!(report.decision, Decision::Pseudonymize);
    assert!(report
        .findings
        .iter()
        .any(|f| f.outcome == Outcome::HomeHost && f.rule == "openai-api-key"));
    let doc = rewritten(v);
    let text = doc.to_string();
    for value in [PHONE, ID, AWS] {
        assert!(!text.contains(value), "{value} left the proxy: {text}");
    }
    let user = doc["messages"][1]["content"].as_str().unwrap();
    let phone_ph = user.split_whitespace().nth(1).unwrap();
    assert!(looks_like_placeholder(phone_ph.as_bytes()), "{user}");
    assert!(phone_ph.starts_with("CG_PHONE_"));
    assert!(user.contains("CG_IDNUM_"), "{user}");
    // Inside the tool call's arguments too, and both JSON levels still parse.
    let args: Value = serde_json::from_str(
        doc["messages"][2]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        args["command"],
        format!("sms {phone_ph} 'meeting at 3'"),
        "same value, same placeholder"
    );
    assert!(doc["messages"][3]["content"]
        .as_str()
        .unwrap()
        .contains("CG_KEY_"));

    // The model's answer quotes the placeholder; the agent gets the value.
    let restorer = report.restore.expect("an LLM request is restored");
    let answer = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": format!("Texting {phone_ph} now")}}]}).to_string();
    let mut h = HeaderMap::new();
    h.insert("content-type", "application/json".parse().unwrap());
    let mut r = ResponseRestorer::new(restorer, ApiKind::ChatCompletions, &h, 1 << 20).unwrap();
    let mut out = Vec::new();
    r.push(answer.as_bytes(), &mut out).unwrap();
    r.finish(&mut out).unwrap();
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        out["choices"][0]["message"]["content"],
        format!("Texting {PHONE} now")
    );
}

#[test]
fn only_a_restoring_caller_pseudonymizes() {
    // ICAP REQMOD and the host check cannot restore an answer: today's actions there.
    let pseudo = Arc::new(Pseudonymizer::ephemeral());
    let e = engine_with("", &pseudo);
    let req = Req::post("https://api.openai.com/v1/chat/completions");
    let (_, report) = e.inspect_report(&req.info(), &chat_body());
    assert_eq!(report.decision, Decision::Block);
    assert!(report.restore.is_none());
}

#[test]
fn elsewhere_block_and_redact_stay() {
    let pseudo = Arc::new(Pseudonymizer::ephemeral());
    let e = engine_with("", &pseudo);
    // Not an LLM host.
    let req = Req::post("https://api.example.com/v1/chat/completions");
    let (v, report) = e.inspect_for_llm(&req.info(), &chat_body(), None);
    assert_eq!(report.decision, Decision::Block);
    assert!(matches!(v, Verdict::Respond(_)));
    assert!(report.restore.is_none());
    // An LLM host, but not a generation API path.
    let req = Req::post("https://api.openai.com/v1/files");
    let body = Bytes::from(json!({"note": format!("call {PHONE}")}).to_string());
    let (v, report) = e.inspect_for_llm(&req.info(), &body, None);
    assert_eq!(report.decision, Decision::Redact);
    assert!(rewritten(v)["note"]
        .as_str()
        .unwrap()
        .contains("[REDACTED:cn-mobile]"));
    // Pseudonymization switched off: today's behaviour at LLM endpoints too.
    let off = engine_with("[pseudonymize]\nenabled = false\n", &pseudo);
    let req = Req::post("https://api.openai.com/v1/chat/completions");
    assert_eq!(
        off.inspect_for_llm(&req.info(), &chat_body(), None)
            .1
            .decision,
        Decision::Block
    );
    // Excluded host.
    let ex = engine_with(
        "[pseudonymize]\nexclude_hosts = [\"api.openai.com\"]\n",
        &pseudo,
    );
    assert_eq!(
        ex.inspect_for_llm(&req.info(), &chat_body(), None)
            .1
            .decision,
        Decision::Block
    );
}

#[test]
fn per_rule_llm_action_and_configured_hosts() {
    let pseudo = Arc::new(Pseudonymizer::ephemeral());
    let e = engine_with(
        "llm_hosts = [\"llm.corp.example\"]\n[rules.aws-access-key-id]\nllm_action = \"block\"\n",
        &pseudo,
    );
    let mut req = Req::post("https://llm.corp.example/v1/chat/completions");
    // OpenAI's key is not at home at a gateway (bind it with home_hosts for that).
    req.headers.remove("authorization");
    let (_, report) = e.inspect_for_llm(&req.info(), &chat_body(), None);
    assert_eq!(report.decision, Decision::Block);
    let blocked: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.outcome == Outcome::Block)
        .map(|f| f.rule.as_str())
        .collect();
    assert!(blocked.contains(&"aws-access-key-id"), "{blocked:?}");
    let body = Bytes::from(
        json!({"messages": [{"role": "user", "content": format!("call {PHONE}")}]}).to_string(),
    );
    let (v, report) = e.inspect_for_llm(&req.info(), &body, None);
    assert_eq!(report.decision, Decision::Pseudonymize);
    assert!(rewritten(v).to_string().contains("CG_PHONE_"));
}

#[test]
fn dry_run_reports_would_pseudonymize() {
    let pseudo = Arc::new(Pseudonymizer::ephemeral());
    let e = engine_with("mode = \"dry-run\"\n", &pseudo);
    let mut req = Req::post("https://api.anthropic.com/v1/messages");
    req.headers.remove("authorization");
    let body = Bytes::from(
        json!({"messages": [{"role": "user", "content": format!("call {PHONE}")}]}).to_string(),
    );
    let (v, report) = e.inspect_for_llm(&req.info(), &body, None);
    assert!(matches!(
        v,
        Verdict::Pass {
            would: Some(Action::Pseudonymize)
        }
    ));
    assert_eq!(report.decision, Decision::Pseudonymize);
    assert_eq!(
        crate::audit::decision_label(report.decision, Mode::DryRun),
        "would-pseudonymize"
    );
}

#[test]
fn placeholders_sent_back_are_not_flagged_again() {
    let pseudo = Arc::new(Pseudonymizer::ephemeral());
    let e = engine_with("", &pseudo);
    let req = Req::post("https://api.openai.com/v1/chat/completions");
    let body = Bytes::from(
        json!({"messages": [{"role": "user", "content": "my password = hunter2isSecret!"}]})
            .to_string(),
    );
    let (v, report) = e.inspect_for_llm(&req.info(), &body, None);
    assert_eq!(
        report.decision,
        Decision::Pseudonymize,
        "{:?}",
        report.findings
    );
    let sent = rewritten(v)["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(sent.contains("CG_PASSWORD_"), "{sent}");
    // The agent's next turn carries the placeholder (e.g. it was never restored).
    let body = Bytes::from(json!({"messages": [{"role": "user", "content": sent}]}).to_string());
    let (v, report) = e.inspect_for_llm(&req.info(), &body, None);
    assert!(
        matches!(v, Verdict::Pass { would: None }),
        "{:?}",
        report.findings
    );
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.outcome == Outcome::HomeHost),
        "only the provider key: {:?}",
        report.findings
    );
    // A real secret beside a placeholder is still found.
    let body = Bytes::from(
        json!({"messages": [{"role": "user", "content": format!("{sent} {AWS}")}]}).to_string(),
    );
    let (_, report) = e.inspect_for_llm(&req.info(), &body, None);
    assert!(report
        .findings
        .iter()
        .any(|f| f.rule == "aws-access-key-id"));
}

#[test]
fn scope_per_user_and_per_client() {
    let pseudo = Arc::new(Pseudonymizer::ephemeral());
    let e = engine_with("", &pseudo);
    let req = Req::post("https://api.openai.com/v1/chat/completions");
    let body = Bytes::from(
        json!({"messages": [{"role": "user", "content": format!("call {PHONE}")}]}).to_string(),
    );
    let sent = |user: Option<&str>| {
        let (v, report) = e.inspect_for_llm(&req.info(), &body, user);
        (
            rewritten(v)["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_string(),
            report.restore.unwrap(),
        )
    };
    let (alice, alice_r) = sent(Some("alice"));
    let (alice2, _) = sent(Some("alice"));
    let (bob, _) = sent(Some("bob"));
    let (anon, _) = sent(None);
    assert_eq!(alice, alice2, "stable within a scope");
    assert_ne!(alice, bob);
    assert_ne!(alice, anon);
    let ph = alice.strip_prefix("call ").unwrap();
    assert_eq!(
        alice_r.lookup(ph.as_bytes()).unwrap().expose(),
        PHONE.as_bytes()
    );
    assert!(pseudo
        .restorer(Scope::user("bob"))
        .lookup(ph.as_bytes())
        .is_none());
}

/// The recorded OpenClaw requests: everything sensitive in the conversation becomes a
/// placeholder, the documents stay valid at both JSON levels, the provider key passes.
#[test]
fn openclaw_corpus_requests() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/openclaw");
    let pseudo = Arc::new(Pseudonymizer::ephemeral());
    let e = engine_with("", &pseudo);
    for (name, host) in [
        (
            "sample_openai_chat_request_with_tool_result.json",
            "api.openai.com",
        ),
        (
            "sample_anthropic_messages_request.json",
            "api.anthropic.com",
        ),
    ] {
        let Ok(text) = std::fs::read_to_string(dir.join(name)) else {
            // Under CI a missing corpus fails the test instead of passing silently.
            assert!(
                !matches!(std::env::var("CI").as_deref(), Ok("true" | "1")),
                "CI=true and {} is missing",
                dir.join(name).display()
            );
            eprintln!("SKIP openclaw_corpus_requests: {name} not found");
            return;
        };
        let rec: Value = serde_json::from_str(&text).unwrap();
        let body = Bytes::from(serde_json::to_vec(&rec["json"]).unwrap());
        let mut req = Req::post(&format!("https://{host}{}", rec["path"].as_str().unwrap()));
        req.headers.remove("authorization");
        let (v, report) = e.inspect_for_llm(&req.info(), &body, None);
        assert_eq!(
            report.decision,
            Decision::Pseudonymize,
            "{name}: {:?}",
            report.findings
        );
        let doc = rewritten(v);
        let out = doc.to_string();
        assert!(
            !out.contains("4111 1111 1111 1111") && !out.contains("4111111111111111"),
            "{name}"
        );
        assert!(out.contains("CG_CARD_"), "{name}");
        assert_eq!(doc["model"], rec["json"]["model"]);
        // Restoring the request's own text gives the original back.
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/json".parse().unwrap());
        let mut r =
            ResponseRestorer::new(report.restore.unwrap(), ApiKind::Generic, &h, 1 << 22).unwrap();
        let mut back = Vec::new();
        let sent = serde_json::to_vec(&doc).unwrap();
        r.push(&sent, &mut back).unwrap();
        r.finish(&mut back).unwrap();
        let back: Value = serde_json::from_slice(&back).unwrap();
        assert_eq!(
            back, rec["json"],
            "{name}: restore is the inverse of pseudonymize"
        );
    }
}

#[test]
fn configuration_is_validated() {
    for bad in [
        "llm_hosts = [\"\"]\n",
        "llm_hosts = [\"https://llm.example/v1\"]\n",
        "[pseudonymize]\nexclude_hosts = [\"a b\"]\n",
        "[pseudonymize]\nvault_max_bytes = 0\n",
        "[pseudonymize]\nbogus = 1\n",
        "[rules.cn-mobile]\nllm_action = \"shout\"\n",
    ] {
        assert!(Config::parse("t.toml", bad).is_err(), "{bad}");
    }
    let c = Config::parse(
        "t.toml",
        "llm_hosts = [\"*.litellm.internal\"]\n[pseudonymize]\nvault_ttl_secs = 60\n[rules.private-key]\nllm_action = \"block\"\n",
    )
    .unwrap();
    assert_eq!(c.pseudonymize.vault_ttl_secs, 60);
    assert!(c.pseudonymize.enabled, "other keys keep their defaults");
    let p = c.llm_policy();
    assert!(p.is_llm_api("gw.litellm.internal", "/v1/chat/completions"));
    assert_eq!(p.rule_actions.get("private-key"), Some(&Action::Block));
}

/// Per destination: an egress rule's `findings` floor still applies at an LLM endpoint
/// (`"redact"` redacts instead of pseudonymizing, `"block"` blocks); `"log"` keeps
/// pseudonymization.
#[test]
fn egress_findings_floor_applies_at_llm_endpoints() {
    let pseudo = Arc::new(Pseudonymizer::ephemeral());
    let e = engine_with("", &pseudo);
    let mut req = Req::post("https://api.openai.com/v1/chat/completions");
    // A floor raises every finding, the provider key in Authorization too (a redact
    // floor blocks what cannot be rewritten): leave it out here.
    req.headers.remove("authorization");
    let body = Bytes::from(
        json!({"messages": [{"role": "user", "content": format!("call {PHONE}")}]}).to_string(),
    );
    let with_floor = |floor| {
        let mut info = req.info();
        info.floor = floor;
        e.inspect_for_llm(&info, &body, None)
    };
    let (v, report) = with_floor(Some(Action::Redact));
    assert_eq!(report.decision, Decision::Redact);
    let sent = rewritten(v).to_string();
    assert!(sent.contains("[REDACTED:cn-mobile]") && !sent.contains("CG_PHONE_"));
    assert_eq!(with_floor(Some(Action::Block)).1.decision, Decision::Block);
    let (v, report) = with_floor(Some(Action::Log));
    assert_eq!(report.decision, Decision::Pseudonymize);
    assert!(rewritten(v).to_string().contains("CG_PHONE_"));
    assert!(report.restore.is_some());
}
