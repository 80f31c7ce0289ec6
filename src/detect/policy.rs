//! What to do with a request's findings: per finding an [`Outcome`], then one
//! [`Decision`] for the request. No bytes are touched here.
//!
//! # Home-host binding
//!
//! A credential is usually *meant* to go somewhere: the agent's own
//! `Authorization: Bearer sk-…` to `api.openai.com`, a Telegram bot token in the path of
//! `https://api.telegram.org/bot<token>/sendMessage`. A rule lists those destinations in
//! `home_hosts` (globs, see [`host_matches`]). A finding passes when
//! - it is in a **header or the URL** (where a credential authenticates the request), and
//! - the request's host matches one of the rule's `home_hosts`.
//!
//! The same credential in the **body** is content, not authentication (an agent pasting
//! its key into a chat message or a tool result, even one sent to its home host), so it
//! gets the rule's action as usual. A credential sent to any other host is a leak.
//!
//! # Escalation
//!
//! A `redact` finding that cannot be rewritten in place (in `Authorization`, in a binary
//! body, or where the proxy cannot rewrite the request) becomes `block`: the data must
//! not leave, and we have no safe way to remove just it. The same holds for
//! `pseudonymize`.
//!
//! # LLM API endpoints
//!
//! A request to an LLM API ([`LlmPolicy::is_llm_api`]: a built-in list of providers'
//! hosts plus the configured `llm_hosts`, and a generation API path) carries the
//! agent's conversation in its body: prompts, system prompt, tool results, tool-call
//! arguments. Blocking it breaks the agent (the blocked content stays in its session)
//! and redacting it leaves the model unable to act on the value. So there, a body
//! finding whose rule would block or redact is **pseudonymized** instead: replaced by a
//! placeholder the model can use and that is restored in the answer
//! ([`crate::detect::pseudonymize`]). Per rule, `[rules.<id>] llm_action` overrides
//! that (`"block"` keeps a private key from ever reaching a model); a `log` rule stays
//! log-only; headers and the URL follow the usual rules (the provider's own key in
//! `Authorization` passes to its home host); an egress `findings` floor still applies.
//! Elsewhere a rule whose action is `pseudonymize` redacts: only an LLM endpoint's
//! answer is ever restored.

use crate::detect::extract::Location;
use crate::detect::rules::{Action, Rule};
use serde::Serialize;
use std::collections::HashMap;

/// What happens to one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A credential on its way to its own home host: legitimate.
    HomeHost,
    /// Recorded only.
    Log,
    /// Replaced by a placeholder, restored in the LLM's answer.
    Pseudonymize,
    Redact,
    Block,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::HomeHost => "home-host",
            Outcome::Log => "log",
            Outcome::Pseudonymize => "pseudonymize",
            Outcome::Redact => "redact",
            Outcome::Block => "block",
        }
    }
}

/// What happens to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    /// Findings replaced by placeholders (and none redacted or blocked).
    Pseudonymize,
    Redact,
    Block,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Pseudonymize => "pseudonymize",
            Decision::Redact => "redact",
            Decision::Block => "block",
        }
    }

    /// The action a dry run reports as "would" (`X-ClawGuard-Would`).
    pub fn would(self) -> Option<Action> {
        match self {
            Decision::Allow => None,
            Decision::Pseudonymize => Some(Action::Pseudonymize),
            Decision::Redact => Some(Action::Redact),
            Decision::Block => Some(Action::Block),
        }
    }
}

/// Whether `host` matches `glob`, ASCII case-insensitively, ignoring a trailing dot.
/// `*.example.com` matches any name *under* `example.com` (`api.example.com`,
/// `a.b.example.com`) but neither `example.com` itself nor `example.com.evil.io`;
/// `*` alone matches every host. Any other `*` stays within one label: `sts.*.amazonaws.com`
/// matches `sts.eu-west-1.amazonaws.com` but not `a.b.amazonaws.com`, and `oss-*.aliyuncs.com`
/// matches `oss-cn-hangzhou.aliyuncs.com` but not `bucket.oss-cn-hangzhou.aliyuncs.com`.
pub fn host_matches(glob: &str, host: &str) -> bool {
    let glob = glob.trim_end_matches('.');
    let host = host.trim_end_matches('.');
    if glob == "*" {
        return true;
    }
    let host_labels: Vec<&str> = host.split('.').collect();
    let (glob, any_depth) = match glob.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (glob, false),
    };
    let glob_labels: Vec<&str> = glob.split('.').collect();
    let n = glob_labels.len();
    let fits = if any_depth {
        host_labels.len() > n
    } else {
        host_labels.len() == n
    };
    fits && host_labels[host_labels.len() - n..]
        .iter()
        .zip(&glob_labels)
        .all(|(h, g)| label_matches(g, h))
}

/// One label against one glob label, where `*` matches any run of characters.
fn label_matches(glob: &str, label: &str) -> bool {
    let (g, l) = (glob.as_bytes(), label.as_bytes());
    match g.iter().position(|&b| b == b'*') {
        None => g.eq_ignore_ascii_case(l),
        Some(star) => {
            let (head, tail) = (&g[..star], &g[star + 1..]);
            l.len() >= head.len()
                && l[..head.len()].eq_ignore_ascii_case(head)
                && (head.len()..=l.len()).any(|i| {
                    label_matches(
                        std::str::from_utf8(tail).unwrap_or_default(),
                        std::str::from_utf8(&l[i..]).unwrap_or_default(),
                    )
                })
        }
    }
}

/// Whether `host` is one of the rule's home hosts: it matches one of its globs and none
/// of its exclusions (`!glob`, a namespace where strangers run the receiving end, such as
/// `!*.storage.googleapis.com` under `*.googleapis.com`).
pub fn is_home_host(rule: &Rule, host: &str) -> bool {
    let (excluded, included): (Vec<&String>, Vec<&String>) =
        rule.home_hosts.iter().partition(|g| g.starts_with('!'));
    !excluded.iter().any(|g| host_matches(&g[1..], host))
        && included.iter().any(|g| host_matches(g, host))
}

/// The outcome of one finding of `rule` at `location` in a request to `host`;
/// `redactable` says whether the finding's bytes can be rewritten in place. Not an LLM
/// API request: see [`outcome_for`].
pub fn outcome(rule: &Rule, location: &Location, host: &str, redactable: bool) -> Outcome {
    outcome_for(rule, location, host, redactable, None)
}

/// [`outcome`], where `llm` is the LLM policy when the request goes to an LLM API
/// endpoint with pseudonymization on (see the module docs).
pub fn outcome_for(
    rule: &Rule,
    location: &Location,
    host: &str,
    redactable: bool,
    llm: Option<&LlmPolicy>,
) -> Outcome {
    if !matches!(location, Location::Body) && is_home_host(rule, host) {
        return Outcome::HomeHost;
    }
    let action = match llm {
        Some(p) if matches!(location, Location::Body) => p.action_for(rule),
        // Only an LLM endpoint's answer is restored: elsewhere a placeholder would be
        // a one-way replacement, which is what redaction is.
        _ if rule.action() == Action::Pseudonymize => Action::Redact,
        _ => rule.action(),
    };
    match action {
        Action::Log => Outcome::Log,
        Action::Block => Outcome::Block,
        Action::Redact if redactable => Outcome::Redact,
        Action::Pseudonymize if redactable => Outcome::Pseudonymize,
        Action::Redact | Action::Pseudonymize => Outcome::Block,
    }
}

/// The strongest outcome wins: any block blocks, else any redact redacts, else any
/// pseudonymize pseudonymizes, else allow (log-only and home-host findings are still
/// reported by the caller).
pub fn decide(outcomes: impl IntoIterator<Item = Outcome>) -> Decision {
    outcomes
        .into_iter()
        .map(|o| match o {
            Outcome::HomeHost | Outcome::Log => Decision::Allow,
            Outcome::Pseudonymize => Decision::Pseudonymize,
            Outcome::Redact => Decision::Redact,
            Outcome::Block => Decision::Block,
        })
        .max()
        .unwrap_or(Decision::Allow)
}

/// Hosts of LLM APIs known out of the box (globs as in [`host_matches`]). A request is
/// an LLM API call when its host is here (or in `llm_hosts`) *and* its path is a
/// generation API ([`is_llm_api_path`]).
pub const BUILTIN_LLM_HOSTS: &[&str] = &[
    // OpenAI; Azure OpenAI and Azure AI Foundry
    "api.openai.com",
    "*.openai.azure.com",
    "*.cognitiveservices.azure.com",
    "*.services.ai.azure.com",
    "*.models.ai.azure.com",
    // Anthropic
    "api.anthropic.com",
    // Google Gemini (AI Studio) and Vertex AI
    "generativelanguage.googleapis.com",
    "aiplatform.googleapis.com",
    // OpenRouter
    "openrouter.ai",
    // DeepSeek
    "api.deepseek.com",
    // Moonshot (Kimi)
    "api.moonshot.cn",
    "api.moonshot.ai",
    // Zhipu (GLM), Z.ai
    "open.bigmodel.cn",
    "api.z.ai",
    // Qwen (Alibaba Cloud DashScope / Model Studio)
    "dashscope.aliyuncs.com",
    "dashscope-intl.aliyuncs.com",
    "dashscope-us.aliyuncs.com",
    // Baidu Qianfan (ERNIE)
    "qianfan.baidubce.com",
    "aip.baidubce.com",
    // SiliconFlow
    "api.siliconflow.cn",
    "api.siliconflow.com",
    // MiniMax
    "api.minimax.chat",
    "api.minimaxi.com",
    "api.minimax.io",
    // Mistral
    "api.mistral.ai",
    "codestral.mistral.ai",
    // Groq
    "api.groq.com",
    // xAI, Together, Fireworks, Perplexity, Cohere, Cerebras, DeepInfra, Novita
    "api.x.ai",
    "api.together.xyz",
    "api.together.ai",
    "api.fireworks.ai",
    "api.perplexity.ai",
    "api.cohere.com",
    "api.cohere.ai",
    "api.cerebras.ai",
    "api.deepinfra.com",
    "api.novita.ai",
    // Volcengine Ark (Doubao), BytePlus ModelArk, Tencent Hunyuan, StepFun, 01.AI,
    // Baichuan, iFlytek Spark
    "ark.cn-beijing.volces.com",
    "ark.ap-southeast.bytepluses.com",
    "api.hunyuan.cloud.tencent.com",
    "api.stepfun.com",
    "api.lingyiwanwu.com",
    "api.baichuan-ai.com",
    "spark-api-open.xf-yun.com",
];

/// Host suffixes of LLM APIs that a glob cannot say: Vertex AI's regional endpoints
/// (`us-central1-aiplatform.googleapis.com`).
pub const BUILTIN_LLM_HOST_SUFFIXES: &[&str] = &["-aiplatform.googleapis.com"];

/// Whether `path` (query ignored) is an LLM generation API: OpenAI-style
/// `…/chat/completions`, `…/completions`, `…/responses`, `…/embeddings`; Anthropic-style
/// `…/messages` (and `…/messages/count_tokens`); Gemini `…:generateContent`,
/// `…:streamGenerateContent`, `…:countTokens`, `…:embedContent`; MiniMax
/// `…/chatcompletion_v2`; DashScope `…/services/aigc/…`; Baidu `…/wenxinworkshop/chat/…`;
/// Cohere `…/v1/chat`, `…/v2/chat`; Vertex AI partner models (Anthropic, Mistral)
/// `…:rawPredict`, `…:streamRawPredict`; Ollama's native `…/api/chat`, `…/api/generate`
/// (on a host listed in `llm_hosts`).
pub fn is_llm_api_path(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path).trim_end_matches('/');
    const SUFFIXES: &[&str] = &[
        "/chat/completions",
        "/completions",
        "/responses",
        "/embeddings",
        "/messages",
        "/messages/count_tokens",
        ":generateContent",
        ":streamGenerateContent",
        ":countTokens",
        ":embedContent",
        ":batchEmbedContents",
        "/chatcompletion_v2",
        "/v1/chat",
        "/v2/chat",
        ":rawPredict",
        ":streamRawPredict",
        "/api/chat",
        "/api/generate",
    ];
    SUFFIXES.iter().any(|s| path.ends_with(s))
        || path.contains("/services/aigc/")
        || path.contains("/wenxinworkshop/chat/")
}

/// Where pseudonymization applies and what each rule does there.
#[derive(Debug, Clone, Default)]
pub struct LlmPolicy {
    /// `pseudonymize.enabled`: off means no request is treated as an LLM API call.
    pub enabled: bool,
    /// `llm_hosts`: more LLM endpoints (self-hosted gateways, LiteLLM, vLLM).
    pub hosts: Vec<String>,
    /// `pseudonymize.exclude_hosts`: LLM hosts treated like any other destination.
    pub exclude: Vec<String>,
    /// `[rules.<id>] llm_action`.
    pub rule_actions: HashMap<String, Action>,
}

impl LlmPolicy {
    /// Whether a request to `host` with `path` is an LLM API call that gets
    /// pseudonymized (and its answer restored).
    pub fn is_llm_api(&self, host: &str, path: &str) -> bool {
        self.enabled && self.is_llm_host(host) && is_llm_api_path(path)
    }

    /// Whether `host` is an LLM endpoint (built-in or configured, and not excluded).
    pub fn is_llm_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        !self.exclude.iter().any(|g| host_matches(g, host))
            && (BUILTIN_LLM_HOSTS
                .iter()
                .copied()
                .chain(self.hosts.iter().map(String::as_str))
                .any(|g| host_matches(g, host))
                || BUILTIN_LLM_HOST_SUFFIXES.iter().any(|s| {
                    host.len() > s.len()
                        && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
                        && !host[..host.len() - s.len()].contains('.')
                }))
    }

    /// What a body finding of `rule` becomes in a request to an LLM API.
    pub fn action_for(&self, rule: &Rule) -> Action {
        if let Some(&a) = self.rule_actions.get(&rule.id) {
            return a;
        }
        match rule.action() {
            Action::Log => Action::Log,
            Action::Block | Action::Redact | Action::Pseudonymize => Action::Pseudonymize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rules::{Category, RulePack};

    #[test]
    fn host_globs() {
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(host_matches(
            "sts.*.amazonaws.com",
            "sts.eu-west-1.amazonaws.com"
        ));
        assert!(!host_matches("sts.*.amazonaws.com", "sts.amazonaws.com"));
        assert!(!host_matches(
            "sts.*.amazonaws.com",
            "x.sts.eu-west-1.amazonaws.com"
        ));
        assert!(host_matches(
            "oss-*.aliyuncs.com",
            "oss-cn-hangzhou.aliyuncs.com"
        ));
        assert!(!host_matches(
            "oss-*.aliyuncs.com",
            "b.oss-cn-hangzhou.aliyuncs.com"
        ));
        assert!(host_matches(
            "*.oss-*.aliyuncs.com",
            "b.oss-cn-hangzhou.aliyuncs.com"
        ));
        assert!(host_matches("*.*.*.aliyuncs.com", "a.b.c.aliyuncs.com"));
        assert!(!host_matches("*.*.*.aliyuncs.com", "b.c.aliyuncs.com"));
    }

    #[test]
    fn builtin_home_hosts_exclude_strangers_namespaces() {
        let pack = RulePack::builtin();
        let home = |id: &str, host: &str| {
            is_home_host(pack.rules.iter().find(|r| r.id == id).unwrap(), host)
        };
        assert!(home("aws-access-key-id", "sts.amazonaws.com"));
        assert!(home("aws-access-key-id", "sts.eu-west-1.amazonaws.com"));
        assert!(!home(
            "aws-access-key-id",
            "attacker-bucket.s3.amazonaws.com"
        ));
        assert!(!home(
            "aws-access-key-id",
            "abc.execute-api.us-east-1.amazonaws.com"
        ));
        assert!(home("google-api-key", "generativelanguage.googleapis.com"));
        assert!(!home("google-api-key", "docs.google.com"));
        assert!(!home("google-api-key", "bucket.storage.googleapis.com"));
        assert!(!home(
            "azure-storage-account-key",
            "evilacct.blob.core.windows.net"
        ));
        assert!(home(
            "alibaba-access-key-id",
            "ecs.cn-hangzhou.aliyuncs.com"
        ));
        assert!(!home(
            "alibaba-access-key-id",
            "bucket.oss-cn-hangzhou.aliyuncs.com"
        ));
        // Every credential rule states its home hosts (possibly none), and no glob is a
        // catch-all.
        for r in pack
            .rules
            .iter()
            .filter(|r| r.category == Category::Credential)
        {
            assert!(!r.home_hosts.iter().any(|g| g == "*"), "{}", r.id);
        }
    }

    fn rule(id: &str, category: &str, action: Option<&str>, home: &str) -> Rule {
        let mut text = format!(
            "[[rule]]\nid = \"{id}\"\ncategory = \"{category}\"\nkeywords = [\"zz\"]\nregex = 'zz'\nhome_hosts = [{home}]\n"
        );
        if let Some(a) = action {
            text.push_str(&format!("action = \"{a}\"\n"));
        }
        let mut pack = RulePack::default();
        pack.merge_text("test", &text).unwrap();
        pack.rules.remove(0)
    }

    #[test]
    fn globs() {
        assert!(host_matches("*.openai.com", "api.openai.com"));
        assert!(host_matches("*.openai.com", "API.OpenAI.com."));
        assert!(host_matches("*.openai.com", "a.b.openai.com"));
        assert!(!host_matches("*.openai.com", "openai.com"));
        assert!(!host_matches("*.openai.com", "openai.com.evil.io"));
        assert!(!host_matches("*.openai.com", "evilopenai.com"));
        assert!(host_matches("api.telegram.org", "API.telegram.org"));
        assert!(!host_matches(
            "api.telegram.org",
            "api.telegram.org.evil.io"
        ));
        // A `*` that does not lead stays within one label.
        assert!(host_matches("api.*.org", "api.telegram.org"));
        assert!(!host_matches("api.*.org", "api.a.b.org"));
        assert!(host_matches("*", "anything"));
    }

    #[test]
    fn home_host_binding() {
        let key = rule("openai-key", "credential", None, "\"*.openai.com\"");
        assert_eq!(key.category, Category::Credential);
        let h = Location::Header("authorization".into());
        assert_eq!(
            outcome(&key, &h, "api.openai.com", false),
            Outcome::HomeHost
        );
        assert_eq!(
            outcome(&key, &Location::Url, "api.openai.com", true),
            Outcome::HomeHost
        );
        // Elsewhere, or in the body even at home: blocked.
        assert_eq!(
            outcome(&key, &h, "openai.com.evil.io", false),
            Outcome::Block
        );
        assert_eq!(
            outcome(&key, &Location::Body, "api.openai.com", true),
            Outcome::Block
        );
    }

    #[test]
    fn actions_and_escalation() {
        let email = rule("email", "pii", None, "");
        assert_eq!(outcome(&email, &Location::Body, "h", true), Outcome::Redact);
        // Cannot be rewritten in place (Authorization, binary body): block.
        let auth = Location::Header("authorization".into());
        assert_eq!(outcome(&email, &auth, "h", false), Outcome::Block);
        let logged = rule("x", "pii", Some("log"), "");
        assert_eq!(outcome(&logged, &Location::Body, "h", false), Outcome::Log);
        let overridden = rule("y", "credential", Some("redact"), "");
        assert_eq!(
            outcome(&overridden, &Location::Body, "h", true),
            Outcome::Redact
        );
    }

    #[test]
    fn strongest_wins() {
        use Outcome::*;
        assert_eq!(decide([]), Decision::Allow);
        assert_eq!(decide([Log, HomeHost]), Decision::Allow);
        assert_eq!(decide([Log, Pseudonymize]), Decision::Pseudonymize);
        assert_eq!(decide([Pseudonymize, Redact]), Decision::Redact);
        assert_eq!(decide([Log, Redact]), Decision::Redact);
        assert_eq!(decide([Redact, Block, Log]), Decision::Block);
        assert_eq!(Decision::Pseudonymize.would(), Some(Action::Pseudonymize));
        assert_eq!(Decision::Block.would(), Some(Action::Block));
        assert_eq!(Decision::Allow.would(), None);
    }

    fn llm() -> LlmPolicy {
        LlmPolicy {
            enabled: true,
            hosts: vec!["*.litellm.corp.example".into(), "10.0.0.5".into()],
            exclude: vec!["api.groq.com".into()],
            rule_actions: HashMap::from([("private-key".to_string(), Action::Block)]),
        }
    }

    #[test]
    fn llm_endpoints() {
        let p = llm();
        for (host, path) in [
            ("api.openai.com", "/v1/chat/completions"),
            ("api.openai.com", "/v1/responses"),
            ("api.anthropic.com", "/v1/messages"),
            (
                "my-res.openai.azure.com",
                "/openai/deployments/gpt/chat/completions?api-version=2024-10-21",
            ),
            (
                "generativelanguage.googleapis.com",
                "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
            ),
            (
                "us-central1-aiplatform.googleapis.com",
                "/v1/projects/p/locations/us-central1/publishers/google/models/g:generateContent",
            ),
            ("openrouter.ai", "/api/v1/chat/completions"),
            ("api.deepseek.com", "/chat/completions"),
            ("api.deepseek.com", "/anthropic/v1/messages"),
            ("api.moonshot.cn", "/v1/chat/completions"),
            ("open.bigmodel.cn", "/api/paas/v4/chat/completions"),
            (
                "dashscope.aliyuncs.com",
                "/compatible-mode/v1/chat/completions",
            ),
            (
                "dashscope.aliyuncs.com",
                "/api/v1/services/aigc/text-generation/generation",
            ),
            ("qianfan.baidubce.com", "/v2/chat/completions"),
            ("api.siliconflow.cn", "/v1/chat/completions"),
            ("api.minimaxi.com", "/v1/text/chatcompletion_v2"),
            ("api.mistral.ai", "/v1/chat/completions"),
            ("gw.litellm.corp.example", "/v1/chat/completions"),
            ("10.0.0.5", "/v1/messages"),
            (
                "us-east5-aiplatform.googleapis.com",
                "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4:streamRawPredict",
            ),
            ("10.0.0.5", "/api/chat"),
            ("10.0.0.5", "/api/generate"),
        ] {
            assert!(p.is_llm_api(host, path), "{host}{path}");
        }
        for (host, path) in [
            ("api.openai.com", "/v1/files"),
            ("api.openai.com", "/v1/models"),
            ("api.groq.com", "/openai/v1/chat/completions"), // excluded
            ("evil.example", "/v1/chat/completions"),
            ("api.openai.com.evil.example", "/v1/chat/completions"),
            ("litellm.corp.example", "/v1/chat/completions"),
            ("10.0.0.5", "/api/tags"),
            ("10.0.0.5", "/api/pull"),
        ] {
            assert!(!p.is_llm_api(host, path), "{host}{path}");
        }
        let off = LlmPolicy {
            enabled: false,
            ..llm()
        };
        assert!(!off.is_llm_api("api.openai.com", "/v1/chat/completions"));
    }

    #[test]
    fn body_findings_at_llm_endpoints_are_pseudonymized() {
        let p = llm();
        let key = rule(
            "aws-access-key-id",
            "credential",
            None,
            "\"*.amazonaws.com\"",
        );
        let phone = rule("cn-mobile", "pii", None, "");
        let logged = rule("email", "pii", Some("log"), "");
        let pem = rule("private-key", "credential", None, "");
        let host = "api.openai.com";
        let at =
            |r: &Rule, loc: &Location, redactable| outcome_for(r, loc, host, redactable, Some(&p));
        assert_eq!(at(&key, &Location::Body, true), Outcome::Pseudonymize);
        assert_eq!(at(&phone, &Location::Body, true), Outcome::Pseudonymize);
        assert_eq!(at(&logged, &Location::Body, true), Outcome::Log);
        assert_eq!(
            at(&pem, &Location::Body, true),
            Outcome::Block,
            "llm_action"
        );
        // Cannot be rewritten: block.
        assert_eq!(at(&phone, &Location::Body, false), Outcome::Block);
        // Headers and the URL follow the usual rules.
        let auth = Location::Header("authorization".into());
        assert_eq!(at(&key, &auth, false), Outcome::Block);
        assert_eq!(at(&phone, &Location::Url, false), Outcome::Block);
        // Not an LLM request: today's actions.
        assert_eq!(outcome(&key, &Location::Body, host, true), Outcome::Block);
        assert_eq!(
            outcome(&phone, &Location::Body, host, true),
            Outcome::Redact
        );
        // `pseudonymize` on a rule elsewhere redacts.
        let ps = rule("x", "pii", Some("pseudonymize"), "");
        assert_eq!(outcome(&ps, &Location::Body, "h", true), Outcome::Redact);
        assert_eq!(
            outcome_for(&ps, &Location::Body, "h", true, Some(&p)),
            Outcome::Pseudonymize
        );
    }
}
