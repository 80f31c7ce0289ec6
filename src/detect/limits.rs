//! Bounds on the work one request's inspection may cost, from `[inspection]` in the
//! config. They bound memory and CPU by configuration, never by what a client sends;
//! going past a bound never lets data through unseen (see each field).

use serde::Deserialize;

/// `[inspection]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Findings listed per request (in the audit record, the block answer and the
    /// redaction plan). Beyond it every finding is still counted per rule and still
    /// decides: anything that blocks blocks, and a redaction that would need more spans
    /// than this blocks instead (fail-closed: it cannot list what it would remove).
    pub max_findings: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_findings: 1000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    #[error("[inspection] max_findings must be at least 1")]
    NoFindings,
}

impl Limits {
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.max_findings == 0 {
            return Err(LimitsError::NoFindings);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn read_from_the_config() {
        assert_eq!(Config::embedded().inspection.max_findings, 1000);
        let c = Config::parse("t", "[inspection]\nmax_findings = 7\n").unwrap();
        assert_eq!(c.inspection.max_findings, 7);
        let e = Config::parse("t", "[inspection]\nmax_findings = 0\n").unwrap_err();
        assert!(e.to_string().contains("max_findings"), "{e}");
        assert!(Config::parse("t", "[inspection]\nmax_finding = 7\n").is_err());
    }
}
