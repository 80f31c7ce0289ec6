//! The OpenClaw install the checks look at: its state directory (`OPENCLAW_STATE_DIR`,
//! default `~/.openclaw`), its config (`OPENCLAW_CONFIG_PATH`, default
//! `<state>/openclaw.json`), the service environment `<state>/.env`, the agent workspace
//! (`agents.defaults.workspace`, default `<state>/workspace`) and the installed package.

use super::machine::Machine;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct OpenClaw {
    pub state_dir: PathBuf,
    pub config_path: PathBuf,
    /// The parsed config (`None`: no file, or see `config_error`).
    pub config: Option<Value>,
    pub config_error: Option<String>,
    /// `<state>/.env`: OpenClaw loads it into its own environment at start.
    pub dotenv: BTreeMap<String, String>,
    pub workspace: PathBuf,
    pub install: Option<Install>,
    /// The environment of a running OpenClaw process, when one runs and can be read:
    /// what it really got (e.g. from `clawguard exec`), ahead of this shell's.
    pub running_env: Option<(u32, BTreeMap<String, String>)>,
}

/// The installed OpenClaw package.
#[derive(Debug, Clone)]
pub struct Install {
    /// The `openclaw` command found on PATH.
    pub bin: PathBuf,
    /// Its `package.json` version.
    pub version: String,
}

impl OpenClaw {
    pub fn find(m: &Machine) -> OpenClaw {
        let state_dir = m
            .var("OPENCLAW_STATE_DIR")
            .map(|d| m.expand(d))
            .unwrap_or_else(|| m.home.join(".openclaw"));
        let config_path = m
            .var("OPENCLAW_CONFIG_PATH")
            .map(|p| m.expand(p))
            .unwrap_or_else(|| state_dir.join("openclaw.json"));
        let (config, config_error) = match std::fs::read_to_string(&config_path) {
            Err(_) => (None, None),
            Ok(text) => match parse_config(&text) {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(format!("{}: {e}", config_path.display()))),
            },
        };
        let dotenv = std::fs::read_to_string(state_dir.join(".env"))
            .map(|t| parse_dotenv(&t))
            .unwrap_or_default();
        let workspace = config
            .as_ref()
            .and_then(|c| c.pointer("/agents/defaults/workspace"))
            .and_then(Value::as_str)
            .map(|w| m.expand(w))
            .unwrap_or_else(|| state_dir.join("workspace"));
        let running_env = m
            .processes()
            .into_iter()
            .filter(|p| p.runs("openclaw") && !p.runs("clawguard"))
            .find_map(|p| m.process_env(p.pid).map(|e| (p.pid, e)));
        OpenClaw {
            install: find_install(m),
            running_env,
            state_dir,
            config_path,
            config,
            config_error,
            dotenv,
            workspace,
        }
    }

    /// Whether there is an OpenClaw here at all (a state directory or an install).
    pub fn present(&self) -> bool {
        self.state_dir.is_dir() || self.install.is_some()
    }

    /// A config value by JSON pointer (`/proxy/proxyUrl`).
    pub fn get(&self, pointer: &str) -> Option<&Value> {
        self.config.as_ref()?.pointer(pointer)
    }

    /// The variable as OpenClaw sees it, and where it comes from: a running OpenClaw's
    /// environment; else this process's (OpenClaw started from here inherits it); then
    /// `<state>/.env` (OpenClaw loads it without overriding what is set).
    pub fn env(&self, m: &Machine, name: &str) -> Option<(String, String)> {
        let found = match &self.running_env {
            Some((pid, env)) => env.get(name).map(|v| {
                (
                    v.clone(),
                    format!("the environment of OpenClaw (pid {pid})"),
                )
            }),
            None => m
                .var(name)
                .map(|v| (v.to_string(), "this environment".to_string())),
        };
        found.filter(|(v, _)| !v.is_empty()).or_else(|| {
            self.dotenv
                .get(name)
                .filter(|v| !v.is_empty())
                .map(|v| (v.clone(), "~/.openclaw/.env".to_string()))
        })
    }
}

/// OpenClaw writes plain JSON; people may add JSON5 comments and trailing commas. Plain
/// JSON first, then the same text with `//` and `/* */` comments and trailing commas
/// removed (outside strings); anything else is reported as unreadable.
fn parse_config(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str(text).or_else(|e| serde_json::from_str(&strip_json5(text)).map_err(|_| e))
}

fn strip_json5(text: &str) -> String {
    strip_outside_strings(&strip_outside_strings(text, false), true)
}

/// One pass over `text` outside string literals (single-quoted ones become
/// double-quoted): without `commas`, drop `//` and `/* */` comments; with it, drop commas
/// followed only by whitespace before `}` or `]`.
fn strip_outside_strings(text: &str, commas: bool) -> String {
    let b = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut in_str: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        if let Some(q) = in_str {
            if c == b'\\' && i + 1 < b.len() {
                out.extend_from_slice(&b[i..i + 2]);
                i += 2;
                continue;
            }
            if c == q {
                in_str = None;
                out.push(b'"');
            } else {
                out.push(c);
            }
        } else if c == b'"' || c == b'\'' {
            in_str = Some(c);
            out.push(b'"');
        } else if !commas && b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        } else if !commas && b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
            continue;
        } else if commas && c == b',' {
            let next = b[i + 1..].iter().find(|x| !x.is_ascii_whitespace());
            if !matches!(next, Some(b'}' | b']')) {
                out.push(c);
            }
        } else {
            out.push(c);
        }
        i += 1;
    }
    // Only ASCII bytes were dropped or replaced: the rest is the original UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// `KEY=VALUE` lines (optionally `export `, quoted values); comments and blanks skipped.
pub fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// The `openclaw` on PATH and the version in its package's `package.json` (npm installs
/// the command as a link into `node_modules/openclaw/`).
fn find_install(m: &Machine) -> Option<Install> {
    let path = m.var("PATH")?;
    let bin = std::env::split_paths(path)
        .map(|d| d.join("openclaw"))
        .find(|p| p.is_file())?;
    let real = std::fs::canonicalize(&bin).unwrap_or_else(|_| bin.clone());
    let version = real.ancestors().skip(1).take(6).find_map(package_version)?;
    Some(Install { bin, version })
}

fn package_version(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("package.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    (v["name"] == "openclaw")
        .then(|| v["version"].as_str().map(str::to_string))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json5_comments_and_trailing_commas_are_read() {
        let v = parse_config(
            "{ // proxy\n \"proxy\": { \"proxyUrl\": \"http://127.0.0.1:8383\", /* x */ },\n \
             \"name\": \"中文 // not a comment\", }",
        )
        .unwrap();
        assert_eq!(v["proxy"]["proxyUrl"], "http://127.0.0.1:8383");
        assert_eq!(v["name"], "中文 // not a comment");
    }

    #[test]
    fn dotenv_lines() {
        let e = parse_dotenv("# c\nexport A=1\nB=\"two words\"\nC='x'\n\nbad line\n");
        assert_eq!(e["A"], "1");
        assert_eq!(e["B"], "two words");
        assert_eq!(e["C"], "x");
        assert_eq!(e.len(), 3);
    }
}
