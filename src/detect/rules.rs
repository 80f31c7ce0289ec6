//! Rule packs: the TOML files in `patterns/`, embedded at build time, plus a
//! user's own directory that may add rules or disable/override built-in ones by id.
//!
//! A rule never knows about HTTP; it only says what a sensitive item looks like,
//! how to confirm it (validator, context words, entropy) and what to do with it.

use crate::detect::validate::Validator;
use regex_automata::meta::Regex;
use regex_automata::util::syntax;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The built-in packs, embedded so the binary works with no files around.
pub const BUILTIN_PACKS: &[(&str, &str)] = &[
    (
        "credentials.toml",
        include_str!("../../patterns/credentials.toml"),
    ),
    (
        "credentials-cn.toml",
        include_str!("../../patterns/credentials-cn.toml"),
    ),
    ("generic.toml", include_str!("../../patterns/generic.toml")),
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

/// When a rule's `context` words are required.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContextWhen {
    #[default]
    Always,
    Weak,
}

/// Cheap candidate generators for rules that have no literal keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// A run of at least six ASCII digits; spaces, dots and dashes between digit groups
    /// (`4111.1111.1111.1111`, `138 1234 5678`) do not break the run.
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
    /// `always` (default): the rule reports nothing without a context word. `weak`: a
    /// context word is needed only when the validator calls the item weak (a bare
    /// number that is as often something else, an item without a checksum).
    #[serde(default)]
    pub context_when: ContextWhen,
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
    /// `regex` and `validator` as compiled/parsed once when the pack was loaded
    /// ([`RulePack::merge_text`]); the scanner reuses them instead of compiling again.
    #[serde(skip)]
    pub(crate) compiled: Option<CompiledParts>,
}

/// The parts of a rule that are checked and built at load time.
#[derive(Debug, Clone)]
pub(crate) struct CompiledParts {
    pub regex: Regex,
    pub validator: Option<Validator>,
}

/// Compile a rule regex the way the scanner runs it: over bytes, ASCII classes
/// (`\d`, `\w`, `\b` never match non-ASCII, so offsets stay byte-exact next to CJK text).
pub fn compile_regex(pattern: &str) -> Result<Regex, String> {
    Regex::builder()
        .syntax(
            syntax::Config::new()
                .unicode(false)
                .utf8(false)
                .multi_line(false),
        )
        .configure(Regex::config().utf8_empty(false))
        .build(pattern)
        .map_err(|e| {
            // The build error's own message only names the pattern; the parser's reason
            // is its source.
            match std::error::Error::source(&e) {
                Some(src) => format!("{e}: {src}"),
                None => e.to_string(),
            }
        })
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

    /// The compiled regex and parsed validator: from load time when the rule came through
    /// a pack file, built here otherwise.
    pub(crate) fn compiled(&self) -> Result<CompiledParts, String> {
        if let Some(c) = &self.compiled {
            return Ok(c.clone());
        }
        compile_parts(self)
    }
}

fn compile_parts(rule: &Rule) -> Result<CompiledParts, String> {
    let regex = compile_regex(&rule.regex).map_err(|e| format!("bad regex: {e}"))?;
    let validator = rule
        .validator
        .as_deref()
        .map(Validator::parse)
        .transpose()?;
    Ok(CompiledParts { regex, validator })
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
                let mut rule: Rule = value.try_into().map_err(invalid)?;
                check_rule(path, &mut rule)?;
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

fn check_rule(path: &str, rule: &mut Rule) -> Result<(), RuleError> {
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
    rule.compiled = Some(compile_parts(rule).map_err(invalid)?);
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
