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
//! not leave, and we have no safe way to remove just it.

use crate::detect::extract::Location;
use crate::detect::rules::{Action, Rule};
use serde::Serialize;

/// What happens to one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A credential on its way to its own home host: legitimate.
    HomeHost,
    /// Recorded only.
    Log,
    Redact,
    Block,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::HomeHost => "home-host",
            Outcome::Log => "log",
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
    Redact,
    Block,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Redact => "redact",
            Decision::Block => "block",
        }
    }

    /// The action a dry run reports as "would" (`X-ClawGuard-Would`).
    pub fn would(self) -> Option<Action> {
        match self {
            Decision::Allow => None,
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
/// `redactable` says whether the finding's bytes can be rewritten in place.
pub fn outcome(rule: &Rule, location: &Location, host: &str, redactable: bool) -> Outcome {
    if !matches!(location, Location::Body) && is_home_host(rule, host) {
        return Outcome::HomeHost;
    }
    match rule.action() {
        Action::Log => Outcome::Log,
        Action::Block => Outcome::Block,
        Action::Redact if redactable => Outcome::Redact,
        Action::Redact => Outcome::Block,
    }
}

/// The strongest outcome wins: any block blocks, else any redact redacts, else allow
/// (log-only and home-host findings are still reported by the caller).
pub fn decide(outcomes: impl IntoIterator<Item = Outcome>) -> Decision {
    outcomes
        .into_iter()
        .map(|o| match o {
            Outcome::HomeHost | Outcome::Log => Decision::Allow,
            Outcome::Redact => Decision::Redact,
            Outcome::Block => Decision::Block,
        })
        .max()
        .unwrap_or(Decision::Allow)
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
        assert_eq!(decide([Log, Redact]), Decision::Redact);
        assert_eq!(decide([Redact, Block, Log]), Decision::Block);
        assert_eq!(Decision::Block.would(), Some(Action::Block));
        assert_eq!(Decision::Allow.would(), None);
    }
}
