//! Rule packs: the TOML files in `patterns/`, embedded at build time, plus a
//! user's own directory that may add rules or disable/override built-in ones by id.
//!
//! A rule never knows about HTTP; it only says what a sensitive item looks like,
//! how to confirm it (validator, context words, entropy) and what to do with it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The built-in packs, embedded so the binary works with no files around.
pub const BUILTIN_PACKS: &[(&str, &str)] = &[
    (
        "credentials.toml",
        include_str!("../../patterns/credentials.toml"),
    ),
    ("pii-cn.toml", include_str!("../../patterns/pii-cn.toml")),
    (
        "pii-global.toml",
        include_str!("../../patterns/pii-global.toml"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Credential,
    Pii,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Credential => "credential",
            Category::Pii => "pii",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Block,
    Redact,
    Log,
    /// Replace by a placeholder in requests to LLM APIs and restore it in the answer
    /// (see `detect::policy`); elsewhere the same as `redact`.
    Pseudonymize,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::Redact => "redact",
            Action::Log => "log",
            Action::Pseudonymize => "pseudonymize",
        }
    }

    /// Default action per category: credentials are blocked, personal data redacted.
    pub fn default_for(category: Category) -> Action {
        match category {
            Category::Credential => Action::Block,
            Category::Pii => Action::Redact,
        }
    }
}

/// How a rule's keywords are matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeywordCase {
    #[default]
    Exact,
    Any,
}

/// Cheap candidate generators for rules that have no literal keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// A run of at least six ASCII digits, optionally split by single spaces or dashes.
    Digits,
    /// An `@` byte (e-mail addresses).
    At,
}

/// One rule as written in a pack file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub category: Category,
    #[serde(default)]
    pub description: String,
    /// Literal prefilter keywords, matched as written. The regex only runs near a hit.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// `exact` (default): keywords match as written — token prefixes are case-sensitive
    /// by their spec. `any`: also their lower-case, UPPER-CASE and Capitalised forms,
    /// for words such as `password` (`DB_PASSWORD`, `dbPassword`).
    #[serde(default)]
    pub keyword_case: KeywordCase,
    /// Candidate generator for keyword-less rules.
    #[serde(default)]
    pub trigger: Option<Trigger>,
    /// With `trigger = "digits"`: the fewest digits a run must hold to be worth this
    /// rule's regex (the item's own digit count; default 6). Keeps short numbers cheap.
    #[serde(default)]
    pub min_digits: Option<usize>,
    /// Confirmation regex (bytes, ASCII classes). A group named `secret` narrows the finding.
    pub regex: String,
    /// Checksum/shape validator run on the finding, e.g. `luhn`, `entropy(3.5)`.
    #[serde(default)]
    pub validator: Option<String>,
    /// Words (ASCII case-insensitive) of which one must occur shortly before the item.
    #[serde(default)]
    pub context: Vec<String>,
    /// How many bytes before the item the context words are looked for.
    #[serde(default = "default_context_window")]
    pub context_window: usize,
    /// How far before a keyword/trigger hit the regex may start, in bytes.
    #[serde(default = "default_lookbehind")]
    pub lookbehind: usize,
    /// How far after a keyword/trigger hit the regex may end, in bytes.
    #[serde(default = "default_lookahead")]
    pub lookahead: usize,
    /// Values that look right but are documented placeholders; never reported.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Higher wins when two findings overlap.
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub action: Option<Action>,
    /// Host globs where this credential may legitimately be sent.
    #[serde(default)]
    pub home_hosts: Vec<String>,
    #[serde(default, rename = "match")]
    pub matches: Vec<String>,
    #[serde(default)]
    pub no_match: Vec<String>,
    /// Set in a user pack to switch a built-in rule off.
    #[serde(default)]
    pub disabled: bool,
}

fn default_context_window() -> usize {
    48
}
fn default_lookbehind() -> usize {
    64
}
fn default_lookahead() -> usize {
    256
}

impl Rule {
    pub fn action(&self) -> Action {
        self.action
            .unwrap_or_else(|| Action::default_for(self.category))
    }
}

/// A partial rule in a user pack: `id` plus the fields to change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleOverride {
    // Read through `toml::Value` before this struct is built; kept so the field is accepted.
    #[allow(dead_code)]
    id: String,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    action: Option<Action>,
    #[serde(default)]
    home_hosts: Option<Vec<String>>,
    #[serde(default)]
    allow: Option<Vec<String>>,
    #[serde(default)]
    priority: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackFile {
    #[serde(default, rename = "rule")]
    rules: Vec<toml::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: rule `{id}`: {message}")]
    Invalid {
        path: String,
        id: String,
        message: String,
    },
}

/// A set of rules ready to compile into a [`crate::detect::scan::Scanner`].
#[derive(Debug, Clone, Default)]
pub struct RulePack {
    pub rules: Vec<Rule>,
    /// Which file each rule came from (for error messages).
    pub sources: Vec<String>,
}

impl RulePack {
    /// The embedded default packs.
    pub fn builtin() -> RulePack {
        let mut pack = RulePack::default();
        for (name, text) in BUILTIN_PACKS {
            pack.merge_text(&format!("builtin:{name}"), text)
                .unwrap_or_else(|e| panic!("built-in rule pack is invalid: {e}"));
        }
        pack
    }

    /// The built-in packs, then every `*.toml` in `dir` (sorted by name) merged over them.
    pub fn builtin_with_dir(dir: &Path) -> Result<RulePack, RuleError> {
        let mut pack = RulePack::builtin();
        pack.merge_dir(dir)?;
        Ok(pack)
    }

    pub fn merge_dir(&mut self, dir: &Path) -> Result<(), RuleError> {
        let entries = std::fs::read_dir(dir).map_err(|source| RuleError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| RuleError::Io {
                path: file.clone(),
                source,
            })?;
            self.merge_text(&file.display().to_string(), &text)?;
        }
        Ok(())
    }

    /// Parse one pack file. A full rule with a known id replaces the old one; a rule
    /// that has only `id` plus override fields (`disabled`, `action`, `home_hosts`,
    /// `allow`, `priority`) changes the existing rule in place.
    pub fn merge_text(&mut self, path: &str, text: &str) -> Result<(), RuleError> {
        let file: PackFile = toml::from_str(text).map_err(|e| toml_error(path, text, e))?;
        for value in file.rules {
            let is_full = value.get("regex").is_some();
            let id = value
                .get("id")
                .and_then(|v| v.as_str())
                .ok_or_else(|| RuleError::Parse {
                    path: path.to_string(),
                    line: 0,
                    message: "a [[rule]] has no `id`".into(),
                })?
                .to_string();
            let existing = self.rules.iter().position(|r| r.id == id);
            let invalid = |e: toml::de::Error| RuleError::Invalid {
                path: path.to_string(),
                id: id.clone(),
                message: e.message().to_string(),
            };
            if is_full {
                let rule: Rule = value.try_into().map_err(invalid)?;
                check_rule(path, &rule)?;
                match existing {
                    Some(i) => {
                        self.rules[i] = rule;
                        self.sources[i] = path.to_string();
                    }
                    None => {
                        self.rules.push(rule);
                        self.sources.push(path.to_string());
                    }
                }
            } else {
                let ov: RuleOverride = value.try_into().map_err(invalid)?;
                let Some(i) = existing else {
                    return Err(RuleError::Invalid {
                        path: path.to_string(),
                        id,
                        message: "overrides a rule that does not exist (a new rule needs `regex` and `category`)".into(),
                    });
                };
                let rule = &mut self.rules[i];
                if let Some(d) = ov.disabled {
                    rule.disabled = d;
                }
                if let Some(a) = ov.action {
                    rule.action = Some(a);
                }
                if let Some(h) = ov.home_hosts {
                    rule.home_hosts = h;
                }
                if let Some(a) = ov.allow {
                    rule.allow = a;
                }
                if let Some(p) = ov.priority {
                    rule.priority = p;
                }
            }
        }
        Ok(())
    }

    /// Rules that are switched on.
    pub fn enabled(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| !r.disabled)
    }

    pub fn source_of(&self, id: &str) -> Option<&str> {
        self.rules
            .iter()
            .position(|r| r.id == id)
            .map(|i| self.sources[i].as_str())
    }
}

fn check_rule(path: &str, rule: &Rule) -> Result<(), RuleError> {
    let invalid = |message: String| RuleError::Invalid {
        path: path.to_string(),
        id: rule.id.clone(),
        message,
    };
    if rule.id.is_empty()
        || !rule
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(invalid(
            "id must be non-empty ASCII letters, digits, '-', '_' or '.'".into(),
        ));
    }
    if rule.keywords.is_empty() && rule.trigger.is_none() {
        return Err(invalid(
            "needs `keywords` or a `trigger` (digits|at): rules never run over every byte".into(),
        ));
    }
    if rule.keywords.iter().any(|k| k.len() < 2) {
        return Err(invalid("keywords must be at least 2 bytes long".into()));
    }
    crate::detect::scan::compile_regex(&rule.regex)
        .map_err(|e| invalid(format!("bad regex: {e}")))?;
    if let Some(v) = &rule.validator {
        crate::detect::scan::validate::Validator::parse(v).map_err(invalid)?;
    }
    Ok(())
}

fn toml_error(path: &str, text: &str, e: toml::de::Error) -> RuleError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
        .unwrap_or(0);
    RuleError::Parse {
        path: path.to_string(),
        line,
        message: e.message().to_string(),
    }
}

/// One failed example in a self-test.
#[derive(Debug, Clone)]
pub struct ExampleFailure {
    pub rule: String,
    pub example: String,
    pub expected_match: bool,
    pub found: Vec<String>,
}

/// Run every rule's `match` / `no_match` examples through a scanner built from the pack.
/// A `match` example must yield a finding of that rule; a `no_match` example must not.
pub fn self_test(
    pack: &RulePack,
) -> Result<(usize, Vec<ExampleFailure>), crate::detect::scan::ScanError> {
    let scanner = crate::detect::scan::Scanner::new(pack)?;
    let mut failures = Vec::new();
    let mut count = 0;
    for rule in pack.enabled() {
        for (examples, expected) in [(&rule.matches, true), (&rule.no_match, false)] {
            for ex in examples {
                count += 1;
                let findings = scanner.scan(ex.as_bytes());
                let hit = findings.iter().any(|f| *f.rule == rule.id);
                if hit != expected {
                    failures.push(ExampleFailure {
                        rule: rule.id.clone(),
                        example: ex.clone(),
                        expected_match: expected,
                        found: findings.iter().map(|f| f.rule.to_string()).collect(),
                    });
                }
            }
        }
        if rule.matches.is_empty() || rule.no_match.is_empty() {
            failures.push(ExampleFailure {
                rule: rule.id.clone(),
                example: String::new(),
                expected_match: rule.matches.is_empty(),
                found: vec!["rule has no match/no_match examples".into()],
            });
        }
    }
    Ok((count, failures))
}
