//! The TOML configuration: embedded defaults, a user file over them, flags over both.
//! Validation errors name the file and line.

use crate::detect::rules::{Action, RulePack};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The configuration compiled into the binary.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Enforce,
    DryRun,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "enforce" => Ok(Mode::Enforce),
            "dry-run" | "dryrun" | "dry_run" => Ok(Mode::DryRun),
            _ => Err(format!("unknown mode `{s}` (enforce or dry-run)")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Per-rule settings from `[rules.<id>]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    pub action: Option<Action>,
    #[serde(default)]
    pub disabled: bool,
    /// Added to the rule's own home hosts.
    #[serde(default)]
    pub home_hosts: Vec<String>,
    /// What a finding of this rule in the conversation sent to an LLM API becomes
    /// (default: pseudonymize, see `detect::policy`).
    #[serde(default)]
    pub llm_action: Option<Action>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub mode: Mode,
    pub ca_dir: PathBuf,
    #[serde(default)]
    pub upstream_ca: Vec<PathBuf>,
    #[serde(default)]
    pub rules_dir: Option<PathBuf>,
    pub log_format: LogFormat,
    pub max_inspect_bytes: usize,
    pub fail_open: bool,
    /// HTTP status of a block answer (4xx). 403 by default; see the README for how
    /// agents read it (OpenClaw treats 401/403 as an authentication failure).
    pub block_status: u16,
    #[serde(default)]
    pub bypass: Vec<String>,
    pub connect_timeout_secs: u64,
    pub upstream_timeout_secs: u64,
    #[serde(default)]
    pub rules: BTreeMap<String, RuleSettings>,
    /// Destination policy.
    #[serde(default)]
    pub egress: crate::egress::EgressConfig,
    /// Proxy users: name = Argon2 PHC hash (`clawguard user add NAME` prints the line).
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// Append-only hash-chained audit log (off when unset).
    #[serde(default)]
    pub audit_log: Option<PathBuf>,
    /// Key file for HMAC-keyed audit records and keyed fingerprints.
    #[serde(default)]
    pub audit_key: Option<PathBuf>,
    /// Rotate the audit log when it grows past this many bytes (0 = never).
    #[serde(default)]
    pub audit_rotate_bytes: u64,
    /// Ed25519 key (hex seed file) signing audit checkpoints (`clawguard audit keygen`).
    #[serde(default)]
    pub audit_signing_key: Option<PathBuf>,
    /// Event records between signed checkpoints (also at rotation and shutdown).
    #[serde(default = "default_checkpoint_every")]
    pub audit_checkpoint_every: u64,
    /// A copy of every checkpoint line, ideally on other storage.
    #[serde(default)]
    pub audit_checkpoint_file: Option<PathBuf>,
    /// Forward every audit line to a syslog collector (RFC 5424 over TCP or TLS).
    #[serde(default)]
    pub audit_syslog: Option<crate::audit::syslog::SyslogConfig>,
    /// Admin listener for /metrics, /healthz, /readyz, /reload (off when unset).
    #[serde(default)]
    pub admin: Option<SocketAddr>,
    /// Listen on a non-loopback address without `users` (explicit opt-in).
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// Run as root (euid 0); refused otherwise (explicit opt-in).
    #[serde(default)]
    pub allow_root: bool,
    /// Open client connections at most; beyond it a connection gets `503` and is closed.
    pub max_connections: usize,
    /// Longest gap between two chunks of a request body (and the grace before
    /// `body_min_rate` applies).
    pub body_idle_timeout_secs: u64,
    /// Minimum average bytes/s of a request body (0 = none).
    pub body_min_rate: u64,
    /// A whole request body, however it trickles.
    pub body_deadline_secs: u64,
    /// Memory for all buffered request bodies together; over it: `503` + `Retry-After`.
    pub body_budget_bytes: usize,
    /// Request bodies buffered at once, at most.
    pub max_buffered_bodies: usize,
    /// Inspection threads per lane (0 = one per core).
    pub inspect_threads: usize,
    /// After SIGTERM, how long in-flight requests may finish before the process exits.
    pub shutdown_grace_secs: u64,
    /// Pooled upstream connections idle this long are closed.
    pub upstream_idle_secs: u64,
    /// Token file for the admin listener (`Authorization: Bearer`, or Basic user
    /// `token`). Required, or `admin_users`, when `admin` is not on loopback.
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    /// `[users]` names allowed on the admin listener with their password (Basic).
    #[serde(default)]
    pub admin_users: Vec<String>,
    /// Bounds on one request's inspection (`[inspection]`).
    #[serde(default)]
    pub inspection: crate::detect::limits::Limits,
    /// `clawguard icap`: the ICAP service's listener and limits.
    #[serde(default)]
    pub icap: crate::icap::IcapConfig,
    /// More LLM API hosts (globs) besides the built-in list.
    #[serde(default)]
    pub llm_hosts: Vec<String>,
    /// `[pseudonymize]`: placeholders for LLM APIs.
    #[serde(default)]
    pub pseudonymize: crate::detect::pseudonymize::PseudonymizeConfig,
}

fn default_checkpoint_every() -> u64 {
    1000
}

/// Command-line values that override the file. Kept as a value (not applied once and
/// forgotten) so a live reload re-reads the file and applies the same flags again.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub mode: Option<Mode>,
    pub rules_dir: Option<PathBuf>,
    pub ca_dir: Option<PathBuf>,
    pub upstream_ca: Vec<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub allow_private: bool,
    pub allow_unauthenticated: bool,
    pub allow_root: bool,
    pub audit_log: Option<PathBuf>,
    pub audit_key: Option<PathBuf>,
    pub admin: Option<SocketAddr>,
    /// `clawguard icap --listen`.
    pub icap_listen: Option<SocketAddr>,
}

/// Where the running configuration comes from: an optional file plus flags.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    pub overrides: Overrides,
}

impl ConfigSource {
    /// Read the file (or the embedded defaults), apply the flags, then validate the
    /// result: a check like "non-loopback listen needs users" must see the flags.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let (name, mut cfg) = match &self.file {
            Some(p) => (p.display().to_string(), Config::load_unvalidated(p)?),
            None => ("<embedded default>".to_string(), Config::embedded()),
        };
        let o = &self.overrides;
        if let Some(l) = o.listen {
            cfg.listen = l;
        }
        if let Some(m) = o.mode {
            cfg.mode = m;
        }
        if let Some(r) = &o.rules_dir {
            cfg.rules_dir = Some(r.clone());
        }
        if let Some(d) = &o.ca_dir {
            cfg.ca_dir = d.clone();
        }
        cfg.upstream_ca.extend(o.upstream_ca.iter().cloned());
        if let Some(f) = o.log_format {
            cfg.log_format = f;
        }
        cfg.egress.allow_private |= o.allow_private;
        cfg.allow_unauthenticated |= o.allow_unauthenticated;
        cfg.allow_root |= o.allow_root;
        if let Some(a) = &o.audit_log {
            cfg.audit_log = Some(a.clone());
        }
        if let Some(k) = &o.audit_key {
            cfg.audit_key = Some(k.clone());
        }
        if let Some(a) = o.admin {
            cfg.admin = Some(a);
        }
        if let Some(a) = o.icap_listen {
            cfg.icap.listen = a;
        }
        cfg.validate(&name)?;
        Ok(cfg)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
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
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error(transparent)]
    Rules(#[from] crate::detect::rules::RuleError),
}

impl Config {
    /// The embedded default configuration.
    pub fn embedded() -> Config {
        Config::parse("<embedded default>", DEFAULT_CONFIG)
            .expect("embedded default config is valid")
    }

    /// Read a file; keys it leaves out keep their default values.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let cfg = Config::load_unvalidated(path)?;
        cfg.validate(&path.display().to_string())?;
        Ok(cfg)
    }

    /// Read a file without [`Config::validate`] (flags still to be applied).
    pub fn load_unvalidated(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse_unvalidated(&path.display().to_string(), &text)
    }

    /// Parse `text` merged over the embedded defaults.
    pub fn parse(name: &str, text: &str) -> Result<Config, ConfigError> {
        let cfg = Config::parse_unvalidated(name, text)?;
        cfg.validate(name)?;
        Ok(cfg)
    }

    /// [`Config::parse`] without the final [`Config::validate`].
    pub fn parse_unvalidated(name: &str, text: &str) -> Result<Config, ConfigError> {
        let parse_err = |e: toml::de::Error, src: &str| ConfigError::Parse {
            path: name.to_string(),
            line: e
                .span()
                .map(|s| src[..s.start.min(src.len())].matches('\n').count() + 1)
                .unwrap_or(0),
            message: e.message().to_string(),
        };
        let mut base: toml::Table =
            toml::from_str(DEFAULT_CONFIG).expect("embedded default config is TOML");
        let user: toml::Table = toml::from_str(text).map_err(|e| parse_err(e, text))?;
        for (k, v) in user {
            base.insert(k, v);
        }
        let merged = toml::to_string(&base).expect("a TOML table serializes");
        let cfg: Config = toml::from_str(&merged).map_err(|e| {
            // Point at the user's file: find the offending key's line there if we can.
            let line = e
                .span()
                .and_then(|s| {
                    let key_line = merged[..s.start.min(merged.len())].lines().last()?;
                    let key = key_line.split('=').next()?.trim();
                    text.lines()
                        .position(|l| l.trim_start().starts_with(key))
                        .map(|i| i + 1)
                })
                .unwrap_or(0);
            ConfigError::Parse {
                path: name.to_string(),
                line,
                message: e.message().to_string(),
            }
        })?;
        Ok(cfg)
    }

    /// Check values that parse but make no sense; run again after flags override a file.
    pub fn validate(&self, name: &str) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: name.to_string(),
            message,
        };
        if !(400..=499).contains(&self.block_status) || self.block_status == 407 {
            return Err(invalid(format!(
                "block_status {} must be a 4xx status other than 407",
                self.block_status
            )));
        }
        if self.max_inspect_bytes == 0 {
            return Err(invalid("max_inspect_bytes must be greater than 0".into()));
        }
        for g in self
            .llm_hosts
            .iter()
            .chain(&self.pseudonymize.exclude_hosts)
        {
            if g.is_empty() || g.contains(char::is_whitespace) || g.contains('/') {
                return Err(invalid(format!(
                    "LLM host `{g}` is not a host glob (api.example.com or *.example.com)"
                )));
            }
        }
        if self.pseudonymize.vault_max_bytes == 0 || self.pseudonymize.vault_ttl_secs == 0 {
            return Err(invalid(
                "pseudonymize.vault_max_bytes and vault_ttl_secs must be greater than 0".into(),
            ));
        }
        self.inspection
            .validate()
            .map_err(|e| invalid(e.to_string()))?;
        if self.connect_timeout_secs == 0
            || self.upstream_timeout_secs == 0
            || self.body_idle_timeout_secs == 0
            || self.body_deadline_secs == 0
            || self.upstream_idle_secs == 0
        {
            return Err(invalid("timeouts must be at least 1 second".into()));
        }
        if self.max_connections == 0 || self.max_buffered_bodies == 0 {
            return Err(invalid(
                "max_connections and max_buffered_bodies must be at least 1".into(),
            ));
        }
        if self.body_budget_bytes <= self.max_inspect_bytes {
            return Err(invalid(format!(
                "body_budget_bytes ({}) must be larger than max_inspect_bytes ({}): \
                 otherwise no body of the inspectable size could ever be buffered",
                self.body_budget_bytes, self.max_inspect_bytes
            )));
        }
        if !self.listen.ip().is_loopback() && self.users.is_empty() && !self.allow_unauthenticated {
            return Err(invalid(format!(
                "refusing to listen on {} (not loopback) without authentication: add [users] \
                 (clawguard user add NAME) or set allow_unauthenticated = true",
                self.listen
            )));
        }
        for (name, hash) in &self.users {
            crate::auth::check_hash(name, hash).map_err(|e| invalid(e.to_string()))?;
        }
        self.icap.validate().map_err(invalid)?;
        if let Some(s) = &self.audit_syslog {
            s.validate().map_err(invalid)?;
        }
        if (self.audit_signing_key.is_some() || self.audit_syslog.is_some())
            && self.audit_log.is_none()
        {
            return Err(invalid(
                "audit_signing_key and [audit_syslog] need audit_log".into(),
            ));
        }
        if let Some(a) = self.admin {
            if !a.ip().is_loopback()
                && self.admin_token_file.is_none()
                && self.admin_users.is_empty()
            {
                return Err(invalid(format!(
                    "refusing an admin listener on {a} (not loopback) without authentication: \
                     set admin_token_file or admin_users"
                )));
            }
        }
        for u in &self.admin_users {
            if !self.users.contains_key(u) {
                return Err(invalid(format!(
                    "admin_users: `{u}` is not in [users] (clawguard user add {u})"
                )));
            }
        }
        for g in &self.bypass {
            if g.is_empty() || g.contains(char::is_whitespace) {
                return Err(invalid(format!("bypass entry `{g}` is not a host glob")));
            }
        }
        Ok(())
    }

    /// `ca_dir` with a leading `~` expanded.
    pub fn ca_dir(&self) -> PathBuf {
        expand_home(&self.ca_dir)
    }

    /// The rule pack this config asks for: built-in packs, `rules_dir` over them, then
    /// `[rules.<id>]` settings. Unknown rule ids in the config are an error.
    pub fn rule_pack(&self) -> Result<RulePack, ConfigError> {
        let mut pack = match &self.rules_dir {
            Some(dir) => RulePack::builtin_with_dir(&expand_home(dir))?,
            None => RulePack::builtin(),
        };
        for (id, s) in &self.rules {
            let Some(rule) = pack.rules.iter_mut().find(|r| &r.id == id) else {
                return Err(ConfigError::Invalid {
                    path: "config".into(),
                    message: format!("[rules.{id}]: no rule with that id"),
                });
            };
            if s.disabled {
                rule.disabled = true;
            }
            if let Some(a) = s.action {
                rule.action = Some(a);
            }
            rule.home_hosts.extend(s.home_hosts.iter().cloned());
        }
        Ok(pack)
    }

    /// Where pseudonymization applies and each rule's `llm_action`.
    pub fn llm_policy(&self) -> crate::detect::policy::LlmPolicy {
        crate::detect::policy::LlmPolicy {
            enabled: self.pseudonymize.enabled,
            hosts: self.llm_hosts.clone(),
            exclude: self.pseudonymize.exclude_hosts.clone(),
            rule_actions: self
                .rules
                .iter()
                .filter_map(|(id, s)| s.llm_action.map(|a| (id.clone(), a)))
                .collect(),
        }
    }
}

/// Expand a leading `~/` to `$HOME/`.
pub fn expand_home(p: &Path) -> PathBuf {
    if let Ok(rest) = p.strip_prefix("~") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    p.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults() {
        let c = Config::embedded();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8383");
        assert_eq!(c.mode, Mode::Enforce);
        assert!(!c.fail_open);
        assert_eq!(c.max_inspect_bytes, 16 * 1024 * 1024);
    }

    #[test]
    fn user_file_overrides_and_keeps_defaults() {
        let c = Config::parse(
            "t.toml",
            "mode = \"dry-run\"\n[rules.email]\naction = \"log\"\n",
        )
        .unwrap();
        assert_eq!(c.mode, Mode::DryRun);
        assert_eq!(c.listen.port(), 8383);
        let pack = c.rule_pack().unwrap();
        let email = pack.rules.iter().find(|r| r.id == "email").unwrap();
        assert_eq!(email.action(), Action::Log);
    }

    #[test]
    fn errors_name_the_line() {
        let e = Config::parse("t.toml", "listen = \"127.0.0.1:1\"\nmode = \"loud\"\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("t.toml:2:"), "{msg}");
        let e = Config::parse("t.toml", "listen = [\n").unwrap_err();
        assert!(e.to_string().starts_with("t.toml:"), "{e}");
        let e = Config::parse("t.toml", "bogus_key = 1\n").unwrap_err();
        assert!(e.to_string().contains("bogus_key"), "{e}");
    }

    #[test]
    fn flags_apply_before_validation() {
        let dir = std::env::temp_dir().join(format!("cg-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:8383\"\n").unwrap();
        let mut src = ConfigSource {
            file: Some(file.clone()),
            overrides: Overrides::default(),
        };
        let e = src.load().unwrap_err().to_string();
        assert!(e.contains("refusing to listen on 0.0.0.0:8383"), "{e}");
        src.overrides.allow_unauthenticated = true;
        src.overrides.allow_private = true;
        let c = src.load().unwrap();
        assert!(c.egress.allow_private && c.allow_unauthenticated);
        // A flag can also make an acceptable file unacceptable.
        std::fs::write(&file, "").unwrap();
        src.overrides.allow_unauthenticated = false;
        src.overrides.listen = Some("0.0.0.0:1".parse().unwrap());
        assert!(src.load().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_user_hash_is_a_config_error() {
        let e = Config::parse("t.toml", "[users]\nalice = \"not-a-hash\"\n").unwrap_err();
        assert!(e.to_string().contains("alice"), "{e}");
    }

    #[test]
    fn block_status_must_be_a_client_error() {
        assert_eq!(
            Config::parse("t", "block_status = 451")
                .unwrap()
                .block_status,
            451
        );
        assert!(Config::parse("t", "block_status = 200").is_err());
        assert!(Config::parse("t", "block_status = 407").is_err());
    }

    #[test]
    fn unknown_rule_in_config_is_an_error() {
        let c = Config::parse("t.toml", "[rules.no-such-rule]\naction = \"log\"\n").unwrap();
        assert!(c.rule_pack().is_err());
    }
}
