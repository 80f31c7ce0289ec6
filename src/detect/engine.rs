//! The inspection engine the proxy calls once per request: extract → scan → policy →
//! verdict (forward unchanged, forward rewritten, or answer the client directly).
//!
//! Matched values never leave this module: responses name rules, categories and
//! locations only; logs and the [`Inspection`] report carry a masked
//! [`crate::detect::scan::preview`].
//!
//! The URL cannot be redacted through [`Verdict::Rewrite`] (it has no URI field), so a
//! `redact` finding in the URL escalates to block; [`crate::detect::redact::uri`] exists for when
//! the proxy can forward a rewritten target.

use crate::config::{Config, ConfigError, Mode};
use crate::detect::extract::{self, BodyKind, ExtractError, Location, Segment, Source};
use crate::detect::limits::Limits;
use crate::detect::policy::{self, Decision, LlmPolicy, Outcome};
use crate::detect::pseudonymize::{self, Issuer, Pseudonymizer, Restorer, Scope};
use crate::detect::redact::{self, RedactError, Span};
use crate::detect::rules::{Action, Category, RulePack};
use crate::detect::scan::{self, Finding, Scanner};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use serde::Serialize;
use std::sync::Arc;

/// What the proxy knows about a request before its body is inspected.
pub struct RequestInfo<'a> {
    pub method: &'a http::Method,
    /// Absolute: `scheme://authority/path?query`.
    pub uri: &'a http::Uri,
    pub host: &'a str,
    pub port: u16,
    pub headers: &'a http::HeaderMap,
    pub client: std::net::SocketAddr,
    pub request_id: &'a str,
    /// Per-destination floor from the egress policy (`findings = "block"` on a paste
    /// site): every finding on this request is treated at least this strictly.
    pub floor: Option<Action>,
}

#[derive(Debug)]
pub enum Verdict {
    /// Forward the original request unchanged (byte-identical body). `would` is set in
    /// dry-run mode: the proxy adds response header `X-ClawGuard-Would: block|redact`.
    Pass { would: Option<Action> },
    /// Forward this rewritten request instead (redaction): replacement headers
    /// (Content-Length fixed; body sent identity-encoded with Content-Encoding removed,
    /// or re-encoded) and body.
    Rewrite {
        headers: http::HeaderMap,
        body: Bytes,
    },
    /// Answer the client with this response; the origin is not contacted.
    Respond(http::Response<Bytes>),
}

/// One finding as recorded for logs and audit: never the raw value.
#[derive(Debug, Clone, Serialize)]
pub struct Reported {
    pub rule: String,
    pub category: Category,
    pub location: Location,
    /// The header name for `location = "header"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Masked preview ([`scan::preview`]).
    pub preview: String,
    /// Keyed fingerprint of the matched bytes, when the engine has a
    /// [`Fingerprinter`](crate::audit::Fingerprinter): the only form in which a matched
    /// value leaves the engine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    pub outcome: Outcome,
}

/// How many findings one rule had in a request, all of them (listed or not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleCount {
    pub rule: String,
    pub category: Category,
    pub count: usize,
    /// The strongest outcome among them.
    pub outcome: Outcome,
}

/// What inspection found and decided, for an audit log.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// What the policy decided (in dry-run: what would have happened).
    pub decision: Decision,
    /// False in dry-run mode, and when `fail_open` let an uninspectable body through.
    pub enforced: bool,
    /// At most `[inspection] max_findings`, strongest outcomes first when over it.
    pub findings: Vec<Reported>,
    /// Every finding counted per rule, sorted by rule id (metrics, the log line).
    pub counts: Vec<RuleCount>,
    /// Findings counted but not listed in `findings` (over the cap).
    #[serde(skip_serializing_if = "is_zero")]
    pub unlisted: usize,
    /// Why the body could not be inspected, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a request to an LLM API (pseudonymization on): what its response is
    /// restored with (this request's placeholders, then the vault; same scope only).
    #[serde(skip)]
    pub restore: Option<Restorer>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Inspection {
    fn clean() -> Inspection {
        Inspection {
            decision: Decision::Allow,
            enforced: true,
            findings: Vec::new(),
            counts: Vec::new(),
            unlisted: 0,
            error: None,
            restore: None,
        }
    }

    /// Number of findings, listed or not.
    pub fn total(&self) -> usize {
        self.counts.iter().map(|c| c.count).sum()
    }
}

/// A compiled rule pack plus the policy settings of one configuration. Share it
/// behind an `Arc`; it is immutable.
pub struct Engine {
    scanner: Arc<Scanner>,
    mode: Mode,
    fail_open: bool,
    /// Status of a block answer (`block_status` in the config; 403 by default).
    block_status: StatusCode,
    max_inspect_bytes: usize,
    limits: Limits,
    fingerprinter: Option<crate::audit::Fingerprinter>,
    /// Where pseudonymization applies (`llm_hosts`, `[pseudonymize]`, `llm_action`).
    llm: LlmPolicy,
    /// The key and vault; pseudonymization is off without one.
    pseudo: Option<Arc<Pseudonymizer>>,
}

/// A finding in one of the request's segments.
struct Hit {
    seg: usize,
    finding: Finding,
    outcome: Outcome,
}

/// Every finding of a request, counted; at most `cap` of them kept as [`Hit`]s.
struct Hits {
    kept: Vec<Hit>,
    cap: usize,
    /// Per rule index: (count, strongest outcome).
    counts: std::collections::BTreeMap<u32, (usize, Outcome)>,
    /// Over all findings, kept or not.
    decision: Decision,
    redacts: usize,
}

impl Hits {
    fn new(cap: usize) -> Hits {
        Hits {
            kept: Vec::new(),
            cap,
            counts: Default::default(),
            decision: Decision::Allow,
            redacts: 0,
        }
    }

    fn push(&mut self, hit: Hit) {
        let c = self
            .counts
            .entry(hit.finding.rule_index)
            .or_insert((0, hit.outcome));
        c.0 += 1;
        c.1 = stronger(c.1, hit.outcome);
        self.decision = self.decision.max(policy::decide([hit.outcome]));
        self.redacts += usize::from(matches!(
            hit.outcome,
            Outcome::Redact | Outcome::Pseudonymize
        ));
        self.kept.push(hit);
        // Trim to the cap now and then, not per push: amortised O(n log cap).
        if self.kept.len() >= self.cap.saturating_mul(2).max(64) {
            self.trim();
        }
    }

    /// Keep the `cap` strongest outcomes (the ones that decide and must be listed),
    /// earlier ones first among equals, back in request order.
    fn trim(&mut self) {
        if self.kept.len() > self.cap {
            self.kept
                .sort_by_key(|h| std::cmp::Reverse(outcome_rank(h.outcome)));
            self.kept.truncate(self.cap);
            self.kept
                .sort_by_key(|h| (h.seg, h.finding.start, h.finding.end));
        }
    }

    fn total(&self) -> usize {
        self.counts.values().map(|c| c.0).sum()
    }

    fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

fn outcome_rank(o: Outcome) -> u8 {
    match o {
        Outcome::HomeHost => 0,
        Outcome::Log => 1,
        Outcome::Pseudonymize => 2,
        Outcome::Redact => 3,
        Outcome::Block => 4,
    }
}

fn stronger(a: Outcome, b: Outcome) -> Outcome {
    if outcome_rank(b) > outcome_rank(a) {
        b
    } else {
        a
    }
}

impl Engine {
    pub fn new(cfg: &Config) -> Result<Engine, ConfigError> {
        let pack = cfg.rule_pack()?;
        let mut engine = Engine::with_pack(&pack, cfg.mode, cfg.fail_open, cfg.max_inspect_bytes)?
            .with_limits(cfg.inspection);
        engine.llm = cfg.llm_policy();
        engine.block_status =
            StatusCode::from_u16(cfg.block_status).map_err(|_| ConfigError::Invalid {
                path: "config".into(),
                message: format!("block_status {} is not an HTTP status", cfg.block_status),
            })?;
        Ok(engine)
    }

    /// An engine over an explicit rule pack (tests, tools).
    pub fn with_pack(
        pack: &RulePack,
        mode: Mode,
        fail_open: bool,
        max_inspect_bytes: usize,
    ) -> Result<Engine, ConfigError> {
        let scanner = Scanner::new(pack).map_err(|e| ConfigError::Invalid {
            path: "rules".into(),
            message: e.to_string(),
        })?;
        Ok(Engine {
            scanner: Arc::new(scanner),
            mode,
            fail_open,
            block_status: StatusCode::FORBIDDEN,
            max_inspect_bytes,
            limits: Limits::default(),
            fingerprinter: None,
            llm: LlmPolicy::default(),
            pseudo: None,
        })
    }

    /// Pseudonymize findings in requests to LLM APIs with this key and vault (kept by
    /// the caller across reloads), where the LLM policy says so.
    pub fn with_pseudonymizer(mut self, p: Arc<Pseudonymizer>) -> Engine {
        self.pseudo = Some(p);
        self
    }

    /// Use this LLM policy instead of the configuration's (tests, tools).
    pub fn with_llm_policy(mut self, llm: LlmPolicy) -> Engine {
        self.llm = llm;
        self
    }

    /// Whether a request to `host` with `path` is an LLM API call that is pseudonymized
    /// and whose answer is restored.
    pub fn is_llm_api(&self, host: &str, path: &str) -> bool {
        self.pseudo.is_some() && self.llm.is_llm_api(host, path)
    }

    /// An issuer for `req` when it is an LLM API call: scoped to `user` when the proxy
    /// authenticated one, else to the client's address.
    fn issuer(&self, req: &RequestInfo<'_>, user: Option<&str>) -> Option<Issuer> {
        let p = self.pseudo.as_ref()?;
        if !self.llm.is_llm_api(req.host, req.uri.path()) {
            return None;
        }
        let scope = match user {
            Some(u) => Scope::user(u),
            None => Scope::client(req.client.ip()),
        };
        Some(p.issuer(scope))
    }

    /// Use these inspection bounds instead of the defaults.
    pub fn with_limits(mut self, limits: Limits) -> Engine {
        self.limits = limits;
        self
    }

    /// Report a keyed fingerprint of every matched value in [`Reported::fingerprint`].
    pub fn with_fingerprinter(mut self, f: crate::audit::Fingerprinter) -> Engine {
        self.fingerprinter = Some(f);
        self
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn scanner(&self) -> &Arc<Scanner> {
        &self.scanner
    }

    /// Inspect a complete request body (raw wire bytes, still Content-Encoded).
    pub fn inspect(&self, req: &RequestInfo<'_>, body: &Bytes) -> Verdict {
        self.inspect_report(req, body).0
    }

    /// The body is larger than max_inspect_bytes: 413 in enforce mode (fail-closed),
    /// Pass when fail_open or dry-run. The URL and headers are still inspected; since
    /// there is no body to rewrite, a `redact` finding there blocks.
    pub fn too_large(&self, req: &RequestInfo<'_>) -> Verdict {
        self.too_large_report(req).0
    }

    pub fn too_large_report(&self, req: &RequestInfo<'_>) -> (Verdict, Inspection) {
        self.too_large_inner(req, None)
    }

    /// [`Engine::too_large_report`] for a caller that restores the response with
    /// [`Inspection::restore`] (see [`Engine::inspect_for_llm`]).
    pub fn too_large_for_llm(
        &self,
        req: &RequestInfo<'_>,
        user: Option<&str>,
    ) -> (Verdict, Inspection) {
        self.too_large_inner(req, self.issuer(req, user))
    }

    fn too_large_inner(
        &self,
        req: &RequestInfo<'_>,
        issuer: Option<Issuer>,
    ) -> (Verdict, Inspection) {
        let segs = extract::request_segments(req.uri, req.headers);
        let hits = self.scan_segments(req, &segs, issuer.is_some(), |s| {
            s.source != Source::Uri && s.redactable
        });
        self.finish(req, &segs, hits, Some(ExtractError::TooLarge), None, issuer)
    }

    /// [`Engine::inspect`] plus the report of what was found and decided. Findings in
    /// requests to LLM APIs get the rules' usual actions here: only a caller that
    /// restores the response may pseudonymize ([`Engine::inspect_for_llm`]).
    pub fn inspect_report(&self, req: &RequestInfo<'_>, body: &Bytes) -> (Verdict, Inspection) {
        self.inspect_inner(req, body, None)
    }

    /// [`Engine::inspect_report`] for a caller that restores the response with
    /// [`Inspection::restore`] (the proxy): findings in the conversation sent to an LLM
    /// API are pseudonymized, with placeholders scoped to the authenticated proxy `user`
    /// (without one: to the client's address).
    pub fn inspect_for_llm(
        &self,
        req: &RequestInfo<'_>,
        body: &Bytes,
        user: Option<&str>,
    ) -> (Verdict, Inspection) {
        self.inspect_inner(req, body, self.issuer(req, user))
    }

    fn inspect_inner(
        &self,
        req: &RequestInfo<'_>,
        body: &Bytes,
        issuer: Option<Issuer>,
    ) -> (Verdict, Inspection) {
        let mut segs = extract::request_segments(req.uri, req.headers);
        let decoded = extract::decode_body(req.headers, body, self.max_inspect_bytes);
        let content_type = req
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let (view, error) = match &decoded {
            Ok(d) => (Some(extract::body_view(content_type, d)), None),
            Err(e) => (None, Some(e.clone())),
        };
        let (kind, nested) = match view {
            Some(v) => {
                let info = (v.kind, v.nested_json);
                segs.extend(v.segments);
                info
            }
            None => (BodyKind::Empty, 0),
        };
        let hits = self.scan_segments(req, &segs, issuer.is_some(), |s| {
            // The URL has no place in a Rewrite verdict: it cannot be redacted.
            s.source != Source::Uri && s.redactable
        });
        if hits.is_empty() && error.is_none() {
            let mut clean = Inspection::clean();
            clean.restore = issuer.map(Issuer::into_restorer);
            return (Verdict::Pass { would: None }, clean);
        }
        let body_ctx = BodyCtx {
            wire: body,
            decoded: decoded.as_deref().ok(),
            kind,
            nested,
        };
        self.finish(req, &segs, hits, error, Some(body_ctx), issuer)
    }

    /// Scan every segment and judge each finding; `redactable` says whether a segment
    /// can be rewritten by a [`Verdict::Rewrite`].
    fn scan_segments(
        &self,
        req: &RequestInfo<'_>,
        segs: &[Segment<'_>],
        llm_api: bool,
        redactable: impl Fn(&Segment<'_>) -> bool,
    ) -> Hits {
        let mut hits = Hits::new(self.limits.max_findings.max(1));
        let llm = llm_api.then_some(&self.llm);
        for (i, seg) in segs.iter().enumerate() {
            for finding in self.scanner.scan(&seg.view) {
                // Our own placeholder (sent back by the client) carries no value: skip a
                // finding that matches nothing once its placeholders are blanked out.
                if let Some(blanked) =
                    pseudonymize::blank_placeholders(&seg.view[finding.start..finding.end])
                {
                    if self.scanner.scan(&blanked).is_empty() {
                        continue;
                    }
                }
                let rule = self.scanner.rule(&finding);
                let can_redact = redactable(seg);
                let outcome = raise(
                    policy::outcome_for(rule, &seg.location, req.host, can_redact, llm),
                    req.floor,
                    can_redact,
                );
                hits.push(Hit {
                    seg: i,
                    finding,
                    outcome,
                });
            }
        }
        hits.trim();
        hits
    }

    fn finish(
        &self,
        req: &RequestInfo<'_>,
        segs: &[Segment<'_>],
        hits: Hits,
        error: Option<ExtractError>,
        body: Option<BodyCtx<'_>>,
        mut issuer: Option<Issuer>,
    ) -> (Verdict, Inspection) {
        let dry = self.mode == Mode::DryRun;
        let findings: Vec<Reported> = hits
            .kept
            .iter()
            .map(|h| {
                let seg = &segs[h.seg];
                let value = &seg.view[h.finding.start..h.finding.end];
                Reported {
                    rule: h.finding.rule.to_string(),
                    category: h.finding.category,
                    location: seg.location.clone(),
                    header: match &seg.location {
                        Location::Header(n) => Some(n.clone()),
                        _ => None,
                    },
                    preview: scan::preview(value),
                    fingerprint: self.fingerprinter.as_ref().map(|f| f.fingerprint(value)),
                    outcome: h.outcome,
                }
            })
            .collect();
        let counts: Vec<RuleCount> = {
            let mut c: Vec<RuleCount> = hits
                .counts
                .iter()
                .map(|(&idx, &(count, outcome))| {
                    let rule = &self.scanner.rules()[idx as usize];
                    RuleCount {
                        rule: rule.id.clone(),
                        category: rule.category,
                        count,
                        outcome,
                    }
                })
                .collect();
            c.sort_by(|a, b| a.rule.cmp(&b.rule));
            c
        };
        let total = hits.total();
        let by_findings = hits.decision;
        // A redaction must list every span it removes; past the cap it cannot.
        let too_many_to_redact = matches!(by_findings, Decision::Redact | Decision::Pseudonymize)
            && hits.redacts > hits.kept.len();
        // An uninspected body blocks unless fail_open says otherwise.
        let body_blocks = error.is_some() && !self.fail_open;
        let decision = if body_blocks || too_many_to_redact {
            Decision::Block
        } else {
            by_findings
        };
        let mut report = Inspection {
            decision,
            enforced: !(dry || error.is_some() && self.fail_open),
            unlisted: total - findings.len(),
            findings,
            counts,
            error: error.as_ref().map(|e| e.to_string()),
            restore: None,
        };
        if dry {
            report.restore = issuer.map(Issuer::into_restorer);
            log_request(req, &report, dry, None);
            return (
                Verdict::Pass {
                    would: decision.would(),
                },
                report,
            );
        }
        let mut note = None;
        let verdict = match decision {
            Decision::Allow => Verdict::Pass { would: None },
            // Findings that block say more than "could not inspect": report them first.
            Decision::Block => match error {
                _ if by_findings == Decision::Block => {
                    blocked(req, self.block_status, &report.findings, &[Outcome::Block])
                }
                Some(ExtractError::TooLarge) => too_large_response(req, self.max_inspect_bytes),
                Some(ExtractError::Undecodable(reason)) => undecodable_response(req, &reason),
                None => {
                    note = Some(format!(
                        "{} findings to redact, more than max_findings = {}: blocked instead",
                        hits.redacts, hits.cap
                    ));
                    blocked(
                        req,
                        self.block_status,
                        &report.findings,
                        &[Outcome::Block, Outcome::Redact, Outcome::Pseudonymize],
                    )
                }
            },
            Decision::Redact | Decision::Pseudonymize => {
                match body.map(|b| rewrite(req, segs, &hits.kept, b, issuer.as_mut())) {
                    Some(Ok(v)) => v,
                    other => {
                        let reason = match other {
                            Some(Err(e)) => e.to_string(),
                            _ => "no body to rewrite".to_string(),
                        };
                        note = Some(format!(
                            "redaction failed ({reason}): blocked instead (fail-closed)"
                        ));
                        report.decision = Decision::Block;
                        blocked(
                            req,
                            self.block_status,
                            &report.findings,
                            &[Outcome::Block, Outcome::Redact, Outcome::Pseudonymize],
                        )
                    }
                }
            }
        };
        report.restore = issuer.map(Issuer::into_restorer);
        log_request(req, &report, dry, note.as_deref());
        (verdict, report)
    }
}

/// Apply a destination's findings floor: `block` blocks every finding (home-host ones
/// too: the operator said nothing goes there); `redact` redacts what can be rewritten and
/// blocks the rest; `log` changes nothing (every finding is logged anyway).
fn raise(outcome: Outcome, floor: Option<Action>, redactable: bool) -> Outcome {
    match floor {
        Some(Action::Block) => Outcome::Block,
        Some(Action::Redact) if outcome != Outcome::Block => {
            if redactable {
                Outcome::Redact
            } else {
                Outcome::Block
            }
        }
        _ => outcome,
    }
}

/// The body as received and as decoded, for rewriting.
struct BodyCtx<'a> {
    wire: &'a Bytes,
    decoded: Option<&'a [u8]>,
    kind: BodyKind,
    nested: usize,
}

/// Masked previews named in the one log line per request.
const LOGGED_EXAMPLES: usize = 5;

/// One line per inspected request that found anything or could not inspect the body:
/// the decision and every rule's count (never a value; previews are in the audit record).
/// A body of a million findings writes one line, not a million.
fn log_request(req: &RequestInfo<'_>, r: &Inspection, dry: bool, note: Option<&str>) {
    if r.counts.is_empty() && r.error.is_none() {
        return;
    }
    let rules = r
        .counts
        .iter()
        .map(|c| format!("{}={}({})", c.rule, c.count, c.outcome.as_str()))
        .collect::<Vec<_>>()
        .join(",");
    let mut locations: Vec<String> = r.findings.iter().map(|f| f.location.to_string()).collect();
    locations.sort_unstable();
    locations.dedup();
    let locations = locations.join(",");
    // A few masked previews, so an operator can tell which values fired.
    let examples = r
        .findings
        .iter()
        .take(LOGGED_EXAMPLES)
        .map(|f| format!("{} in {}: {}", f.rule, f.location, f.preview))
        .collect::<Vec<_>>()
        .join("; ");
    let what = match (dry, r.decision) {
        (true, Decision::Allow) => "dry-run: would allow".to_string(),
        (true, d) => format!("dry-run: would {}", d.as_str()),
        (false, Decision::Allow) if r.error.is_some() => {
            "body not inspected; forwarded (fail_open)".to_string()
        }
        (false, Decision::Allow) => "findings logged; allowed".to_string(),
        (false, Decision::Block) => "blocked".to_string(),
        (false, Decision::Redact) => "redacted".to_string(),
        (false, Decision::Pseudonymize) => "pseudonymized".to_string(),
    };
    let findings = r.total();
    let error = r.error.as_deref().unwrap_or("");
    let note = note.unwrap_or("");
    // Pseudonymizing is the normal course of an LLM conversation, not an alarm.
    if matches!(r.decision, Decision::Allow | Decision::Pseudonymize) && r.error.is_none() {
        tracing::info!(request_id = req.request_id, findings, rules = %rules,
            locations = %locations, examples = %examples, "{what}");
    } else {
        tracing::warn!(request_id = req.request_id, findings, rules = %rules,
            locations = %locations, examples = %examples, error, note, "{what}");
    }
}

/// Apply the `redact` findings: header values in place, the body in its own syntax.
fn rewrite(
    req: &RequestInfo<'_>,
    segs: &[Segment<'_>],
    hits: &[Hit],
    body: BodyCtx<'_>,
    mut issuer: Option<&mut Issuer>,
) -> Result<Verdict, RedactError> {
    let mut body_spans = Vec::new();
    let mut header_spans: Vec<(usize, Span)> = Vec::new();
    for h in hits
        .iter()
        .filter(|h| matches!(h.outcome, Outcome::Redact | Outcome::Pseudonymize))
    {
        let seg = &segs[h.seg];
        let (start, end) = seg.raw_span(h.finding.start, h.finding.end);
        // A placeholder stands for the value as the receiver decodes it (the view),
        // and is restored escaped for wherever the model writes it back.
        let replacement = match (h.outcome, issuer.as_deref_mut()) {
            (Outcome::Pseudonymize, Some(iss)) => {
                let entity =
                    pseudonymize::placeholder::entity_for(&h.finding.rule, h.finding.category);
                let p = iss
                    .issue(entity, &seg.view[h.finding.start..h.finding.end])
                    .map_err(|_| RedactError::Invalid("placeholder (collision)"))?;
                Some(Arc::from(p))
            }
            _ => None,
        };
        let span = Span {
            start,
            end,
            rule: h.finding.rule.clone(),
            replacement,
        };
        match seg.source {
            Source::Body => body_spans.push(span),
            Source::Header(i) => header_spans.push((i, span)),
            Source::Uri | Source::Userinfo => return Err(RedactError::Structure("URL")),
        }
    }
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for (i, (name, value)) in req.headers.iter().enumerate() {
        let spans: Vec<Span> = header_spans
            .iter()
            .filter(|(j, _)| *j == i)
            .map(|(_, s)| s.clone())
            .collect();
        let value = if spans.is_empty() {
            value.clone()
        } else {
            redact::header_value(value, spans)?
        };
        headers.append(name.clone(), value);
    }
    if body_spans.is_empty() {
        return Ok(Verdict::Rewrite {
            headers,
            body: body.wire.clone(),
        });
    }
    let decoded = body.decoded.ok_or(RedactError::OutOfRange)?;
    let out = match body.kind {
        BodyKind::Json => redact::json(decoded, body_spans, body.nested)?,
        BodyKind::Form => redact::form(decoded, body_spans)?,
        BodyKind::Multipart | BodyKind::Text => redact::text(decoded, body_spans)?,
        BodyKind::Binary | BodyKind::Empty => return Err(RedactError::Structure("binary body")),
    };
    // The new body goes out identity-encoded.
    headers.remove(header::CONTENT_ENCODING);
    headers.remove(header::TRANSFER_ENCODING);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
    Ok(Verdict::Rewrite {
        headers,
        body: Bytes::from(out),
    })
}

#[derive(Serialize)]
struct FindingRef<'a> {
    rule: &'a str,
    category: Category,
    location: &'a Location,
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Verdict {
    let bytes = serde_json::to_vec_pretty(&body).expect("JSON value serializes");
    let resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::CONTENT_LENGTH, bytes.len())
        .body(Bytes::from(bytes))
        .expect("static response parts are valid");
    Verdict::Respond(resp)
}

/// The error envelope a client expects from the API it is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApiShape {
    /// Anything else: ClawGuard's own `{"error": "...", "request_id": ...}`.
    Plain,
    /// OpenAI and compatibles: `/v1/chat/completions`, `/v1/responses`, …
    OpenAi,
    /// Anthropic: `/v1/messages`.
    Anthropic,
    /// Google Gemini: `…:generateContent`, `…:streamGenerateContent`.
    Gemini,
}

fn api_shape(path: &str) -> ApiShape {
    let path = path.trim_end_matches('/');
    if path.ends_with(":generateContent") || path.ends_with(":streamGenerateContent") {
        ApiShape::Gemini
    } else if path.ends_with("/messages") && path.contains("/v1") {
        ApiShape::Anthropic
    } else if [
        "/chat/completions",
        "/responses",
        "/completions",
        "/embeddings",
    ]
    .iter()
    .any(|s| path.ends_with(s))
    {
        ApiShape::OpenAi
    } else {
        ApiShape::Plain
    }
}

/// An error answer in the shape the caller understands, so an LLM agent shows the user a
/// readable reason (and, being a 4xx other than 429, does not retry). Never holds a value.
fn error_response(
    req: &RequestInfo<'_>,
    status: StatusCode,
    message: String,
    findings: Option<&[FindingRef<'_>]>,
) -> Verdict {
    let message = format!("{message} (request id {})", req.request_id);
    let mut body = match api_shape(req.uri.path()) {
        ApiShape::Plain => serde_json::json!({ "error": message }),
        ApiShape::OpenAi => serde_json::json!({
            "error": {
                "message": message,
                "type": "clawguard_blocked",
                "param": null,
                "code": "data_leak_prevented",
            }
        }),
        ApiShape::Anthropic => serde_json::json!({
            "type": "error",
            "error": { "type": "permission_error", "message": message },
        }),
        ApiShape::Gemini => serde_json::json!({
            "error": { "code": status.as_u16(), "message": message, "status": "PERMISSION_DENIED" }
        }),
    };
    body["request_id"] = serde_json::json!(req.request_id);
    if let Some(list) = findings {
        body["findings"] = serde_json::json!(list);
    }
    json_response(status, body)
}

/// 403 naming the rules that caused the block; never the matched values.
fn blocked(
    req: &RequestInfo<'_>,
    status: StatusCode,
    findings: &[Reported],
    outcomes: &[Outcome],
) -> Verdict {
    let list: Vec<FindingRef<'_>> = findings
        .iter()
        .filter(|f| outcomes.contains(&f.outcome))
        .map(|f| FindingRef {
            rule: &f.rule,
            category: f.category,
            location: &f.location,
        })
        .collect();
    let mut what: Vec<String> = list
        .iter()
        .map(|f| format!("{} in {}", f.rule, f.location.as_str()))
        .collect();
    what.sort_unstable();
    what.dedup();
    error_response(
        req,
        status,
        format!(
            "Blocked by ClawGuard: this request carries sensitive data ({}) and was not sent",
            what.join(", ")
        ),
        Some(&list),
    )
}

fn too_large_response(req: &RequestInfo<'_>, max: usize) -> Verdict {
    error_response(
        req,
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "Blocked by ClawGuard: the request body is larger than the inspection limit \
             ({max} bytes after decompression) and cannot be checked"
        ),
        None,
    )
}

fn undecodable_response(req: &RequestInfo<'_>, reason: &str) -> Verdict {
    error_response(
        req,
        StatusCode::UNPROCESSABLE_ENTITY,
        format!(
            "Blocked by ClawGuard: the request body cannot be decoded for inspection ({reason})"
        ),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const PACK: &str = r#"
[[rule]]
id = "api-key"
category = "credential"
keywords = ["sk-"]
regex = '''\bsk-[A-Za-z0-9_-]{20,}'''
home_hosts = ["*.openai.com", "api.anthropic.com"]

[[rule]]
id = "telegram-bot-token"
category = "credential"
keywords = [":AA"]
regex = '''[0-9]{8,10}:AA[0-9A-Za-z_-]{33}'''
home_hosts = ["api.telegram.org"]

[[rule]]
id = "private-key"
category = "credential"
keywords = ["-----BEGIN"]
regex = '''-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]{1,8000}?-----END [A-Z ]*PRIVATE KEY-----'''
lookahead = 9000

[[rule]]
id = "payment-card"
category = "pii"
trigger = "digits"
regex = '''\b[0-9](?:[ -]?[0-9]){12,18}\b'''
validator = "payment_card"

[[rule]]
id = "email"
category = "pii"
trigger = "at"
regex = '''[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+'''
validator = "email"
action = "log"
"#;

    #[test]
    fn findings_floor_raises_outcomes() {
        assert_eq!(
            raise(Outcome::Log, Some(Action::Block), true),
            Outcome::Block
        );
        assert_eq!(
            raise(Outcome::HomeHost, Some(Action::Block), false),
            Outcome::Block
        );
        assert_eq!(
            raise(Outcome::Log, Some(Action::Redact), true),
            Outcome::Redact
        );
        assert_eq!(
            raise(Outcome::Log, Some(Action::Redact), false),
            Outcome::Block
        );
        assert_eq!(
            raise(Outcome::Block, Some(Action::Redact), true),
            Outcome::Block
        );
        assert_eq!(raise(Outcome::Log, Some(Action::Log), true), Outcome::Log);
        assert_eq!(raise(Outcome::Redact, None, true), Outcome::Redact);
    }

    const TOKEN: &str = "sk-proj-Zq8vN3kLm2Rt5Xw9Yb4Hc7Jd";
    const TG: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawq";

    fn engine(mode: Mode, fail_open: bool) -> Engine {
        let mut pack = RulePack::default();
        pack.merge_text("test", PACK).unwrap();
        Engine::with_pack(&pack, mode, fail_open, 1 << 20).unwrap()
    }

    struct Req {
        method: http::Method,
        uri: http::Uri,
        headers: HeaderMap,
    }

    impl Req {
        fn new(uri: &str, headers: &[(&str, &str)]) -> Req {
            let mut h = HeaderMap::new();
            for (k, v) in headers {
                h.append(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            Req {
                method: http::Method::POST,
                uri: uri.parse().unwrap(),
                headers: h,
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

    fn json_req(host: &str) -> Req {
        Req::new(
            &format!("https://{host}/v1/chat/completions"),
            &[("content-type", "application/json")],
        )
    }

    /// The status and parsed JSON body of a Respond verdict.
    fn response(v: &Verdict) -> (u16, serde_json::Value) {
        match v {
            Verdict::Respond(r) => {
                assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
                (
                    r.status().as_u16(),
                    serde_json::from_slice(r.body()).unwrap(),
                )
            }
            other => panic!("expected Respond, got {other:?}"),
        }
    }

    fn rewritten(v: Verdict) -> (HeaderMap, Bytes) {
        match v {
            Verdict::Rewrite { headers, body } => (headers, body),
            other => panic!("expected Rewrite, got {other:?}"),
        }
    }

    #[test]
    fn block_envelopes_follow_the_api_shape() {
        assert_eq!(api_shape("/v1/chat/completions"), ApiShape::OpenAi);
        assert_eq!(api_shape("/openai/v1/responses"), ApiShape::OpenAi);
        assert_eq!(api_shape("/v1/messages"), ApiShape::Anthropic);
        assert_eq!(
            api_shape("/v1beta/models/gemini-2.5-pro:streamGenerateContent"),
            ApiShape::Gemini
        );
        assert_eq!(api_shape("/upload"), ApiShape::Plain);
        let e = engine(Mode::Enforce, false);
        let body = Bytes::from(format!(r#"{{"content": "my key is {TOKEN}"}}"#));
        let anthropic = Req::new(
            "https://api.example.com/v1/messages",
            &[("content-type", "application/json")],
        );
        let (status, json) = response(&e.inspect(&anthropic.info(), &body));
        assert_eq!(status, 403);
        assert_eq!(json["type"], "error");
        assert_eq!(json["error"]["type"], "permission_error");
        assert!(json["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Blocked by ClawGuard:"));
        let plain = Req::new(
            "https://example.com/upload",
            &[("content-type", "application/json")],
        );
        let (_, json) = response(&e.inspect(&plain.info(), &body));
        assert!(json["error"]
            .as_str()
            .unwrap()
            .contains("(request id req-1)"));
        assert_eq!(json["findings"][0]["location"], "body");
    }

    #[test]
    fn block_status_is_configurable() {
        let cfg = Config::parse("t", "block_status = 451").unwrap();
        let e = Engine::new(&cfg).unwrap();
        let body = Bytes::from_static(br#"{"k": "AKIAQYLPMN5HFIQR7VUX"}"#);
        let (status, json) = response(&e.inspect(&json_req("api.example.com").info(), &body));
        assert_eq!(status, 451);
        assert_eq!(json["error"]["type"], "clawguard_blocked");
    }

    #[test]
    fn clean_request_passes() {
        let e = engine(Mode::Enforce, false);
        let body =
            Bytes::from_static(br#"{"messages": [{"role": "user", "content": "hi\nthere"}]}"#);
        let (v, report) = e.inspect_report(&json_req("api.openai.com").info(), &body);
        assert!(matches!(v, Verdict::Pass { would: None }));
        assert!(report.findings.is_empty());
    }

    #[test]
    fn credential_in_body_blocks_even_at_home() {
        let e = engine(Mode::Enforce, false);
        let body = Bytes::from(format!(r#"{{"content": "my key is {TOKEN}"}}"#));
        let v = e.inspect(&json_req("api.openai.com").info(), &body);
        let (status, json) = response(&v);
        assert_eq!(status, 403);
        assert_eq!(json["request_id"], "req-1");
        assert_eq!(json["findings"][0]["rule"], "api-key");
        assert_eq!(json["findings"][0]["category"], "credential");
        assert_eq!(json["findings"][0]["location"], "body");
        // An OpenAI-shaped path gets OpenAI's error envelope, with a readable reason.
        assert_eq!(json["error"]["type"], "clawguard_blocked");
        assert_eq!(
            json["error"]["message"],
            "Blocked by ClawGuard: this request carries sensitive data (api-key in body) \
             and was not sent (request id req-1)"
        );
        let Verdict::Respond(r) = v else {
            unreachable!()
        };
        let text = std::str::from_utf8(r.body()).unwrap();
        assert!(
            !text.contains("Zq8v") && !text.contains("sk-proj"),
            "{text}"
        );
    }

    #[test]
    fn home_host_binding_for_headers_and_url() {
        let e = engine(Mode::Enforce, false);
        let auth = format!("Bearer {TOKEN}");
        let body = Bytes::from_static(b"{}");
        let home = Req::new("https://api.openai.com/v1/x", &[("authorization", &auth)]);
        let (v, report) = e.inspect_report(&home.info(), &body);
        assert!(matches!(v, Verdict::Pass { would: None }));
        assert_eq!(report.findings[0].outcome, Outcome::HomeHost);
        let away = Req::new(
            "https://openai.com.evil.io/v1/x",
            &[("authorization", &auth)],
        );
        let (status, json) = response(&e.inspect(&away.info(), &body));
        assert_eq!(
            (status, json["findings"][0]["location"].as_str()),
            (403, Some("header"))
        );

        let tg = format!("https://api.telegram.org/bot{TG}/sendMessage");
        let (v, report) = e.inspect_report(&Req::new(&tg, &[]).info(), &body);
        assert!(matches!(v, Verdict::Pass { would: None }));
        assert_eq!(report.findings[0].outcome, Outcome::HomeHost);
        let evil = format!("https://evil.example/bot{TG}/sendMessage");
        let (status, json) = response(&e.inspect(&Req::new(&evil, &[]).info(), &body));
        assert_eq!(
            (status, json["findings"][0]["location"].as_str()),
            (403, Some("url"))
        );
    }

    #[test]
    fn pii_in_headers_and_url() {
        let e = engine(Mode::Enforce, false);
        let body = Bytes::from_static(b"{\"a\": 1}");
        // Redactable custom header: rewritten, body forwarded as is.
        let r = Req::new(
            "https://h.example/",
            &[
                ("x-card", "4111 1111 1111 1111"),
                ("content-encoding", "identity"),
            ],
        );
        let (headers, out) = rewritten(e.inspect(&r.info(), &body));
        assert_eq!(headers["x-card"], "[REDACTED:payment-card]");
        assert_eq!(out, body);
        // Authorization cannot be partially rewritten: block.
        let r = Req::new(
            "https://h.example/",
            &[("authorization", "Basic 4111111111111111")],
        );
        assert_eq!(response(&e.inspect(&r.info(), &body)).0, 403);
        // The URL cannot be rewritten through a Verdict: block.
        let r = Req::new("https://h.example/pay?card=4111+1111+1111+1111", &[]);
        assert_eq!(response(&e.inspect(&r.info(), &body)).0, 403);
    }

    #[test]
    fn nested_pem_key_in_tool_call_blocks() {
        let e = engine(Mode::Enforce, false);
        let args = serde_json::json!({"content": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"}).to_string();
        let body =
            serde_json::json!({"tool_calls": [{"function": {"name": "write", "arguments": args}}]})
                .to_string();
        assert!(body.contains(r"\\n"));
        let (status, json) =
            response(&e.inspect(&json_req("api.openai.com").info(), &Bytes::from(body)));
        assert_eq!(
            (status, json["findings"][0]["rule"].as_str()),
            (403, Some("private-key"))
        );
    }

    #[test]
    fn gzip_body_is_redacted_and_sent_identity() {
        let e = engine(Mode::Enforce, false);
        let plain = r#"{"messages":[{"content":"card 4111 1111 1111 1111\nthanks"}]}"#;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        enc.write_all(plain.as_bytes()).unwrap();
        let body = Bytes::from(enc.finish().unwrap());
        let r = Req::new(
            "https://api.openai.com/v1/chat/completions",
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
                ("content-length", &body.len().to_string()),
            ],
        );
        let (headers, out) = rewritten(e.inspect(&r.info(), &body));
        assert!(headers.get(header::CONTENT_ENCODING).is_none());
        assert_eq!(
            headers[header::CONTENT_LENGTH],
            out.len().to_string().as_str()
        );
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"messages":[{"content":"card [REDACTED:payment-card]\nthanks"}]}"#
        );
    }

    #[test]
    fn form_body_is_redacted() {
        let e = engine(Mode::Enforce, false);
        let r = Req::new(
            "https://h.example/pay",
            &[("content-type", "application/x-www-form-urlencoded")],
        );
        let body = Bytes::from_static(b"name=Li&card=4111+1111+1111+1111&ok=1");
        let (_, out) = rewritten(e.inspect(&r.info(), &body));
        assert_eq!(&out[..], b"name=Li&card=%5BREDACTED%3Apayment-card%5D&ok=1");
    }

    #[test]
    fn binary_body_cannot_be_redacted() {
        let e = engine(Mode::Enforce, false);
        let r = Req::new("https://h.example/up", &[("content-type", "image/png")]);
        let body = Bytes::from_static(b"\x89PNG\xff\xfe card 4111111111111111 \x00");
        let (status, json) = response(&e.inspect(&r.info(), &body));
        assert_eq!(
            (status, json["findings"][0]["rule"].as_str()),
            (403, Some("payment-card"))
        );
    }

    #[test]
    fn log_only_findings_pass_and_are_reported() {
        let e = engine(Mode::Enforce, false);
        let body = Bytes::from_static(br#"{"content": "mail alice@example.com"}"#);
        let (v, report) = e.inspect_report(&json_req("h.example").info(), &body);
        assert!(matches!(v, Verdict::Pass { would: None }));
        assert_eq!(report.decision, Decision::Allow);
        assert_eq!(report.findings[0].outcome, Outcome::Log);
        assert_eq!(report.findings[0].preview, "ali********m");
        let audit = serde_json::to_string(&report).unwrap();
        assert!(!audit.contains("alice@example.com"), "{audit}");
    }

    #[test]
    fn dry_run_never_changes_anything() {
        let e = engine(Mode::DryRun, false);
        let r = json_req("h.example");
        let body = Bytes::from(format!(r#"{{"k": "{TOKEN}"}}"#));
        let (v, report) = e.inspect_report(&r.info(), &body);
        assert!(matches!(
            v,
            Verdict::Pass {
                would: Some(Action::Block)
            }
        ));
        assert!(!report.enforced);
        let body = Bytes::from_static(br#"{"k": "4111 1111 1111 1111"}"#);
        assert!(matches!(
            e.inspect(&r.info(), &body),
            Verdict::Pass {
                would: Some(Action::Redact)
            }
        ));
        let bad = Req::new("https://h.example/", &[("content-encoding", "gzip")]);
        assert!(matches!(
            e.inspect(&bad.info(), &Bytes::from_static(b"garbage")),
            Verdict::Pass {
                would: Some(Action::Block)
            }
        ));
        assert!(matches!(
            e.too_large(&r.info()),
            Verdict::Pass {
                would: Some(Action::Block)
            }
        ));
    }

    #[test]
    fn uninspectable_bodies_fail_closed_unless_fail_open() {
        let bad = Req::new("https://h.example/", &[("content-encoding", "gzip")]);
        let garbage = Bytes::from_static(b"garbage");
        let e = engine(Mode::Enforce, false);
        let (status, json) = response(&e.inspect(&bad.info(), &garbage));
        assert_eq!(status, 422);
        assert!(json["error"]
            .as_str()
            .unwrap()
            .contains("cannot be decoded"));
        let (status, json) = response(&e.too_large(&bad.info()));
        assert_eq!(status, 413);
        assert!(json["error"].as_str().unwrap().contains("inspection limit"));
        // A body over the cap after decompression.
        let zeros = {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), Default::default());
            enc.write_all(&vec![b'a'; 2 << 20]).unwrap();
            Bytes::from(enc.finish().unwrap())
        };
        assert_eq!(response(&e.inspect(&bad.info(), &zeros)).0, 413);

        let open = engine(Mode::Enforce, true);
        assert!(matches!(
            open.inspect(&bad.info(), &garbage),
            Verdict::Pass { would: None }
        ));
        assert!(matches!(
            open.too_large(&bad.info()),
            Verdict::Pass { would: None }
        ));
        // Headers are still inspected when the body is not.
        let leak = Req::new(
            "https://h.example/",
            &[("content-encoding", "gzip"), ("x-key", TOKEN)],
        );
        assert_eq!(response(&open.inspect(&leak.info(), &garbage)).0, 403);
        assert_eq!(response(&open.too_large(&leak.info())).0, 403);
    }

    #[test]
    fn clean_gzip_body_passes_untouched() {
        let e = engine(Mode::Enforce, false);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        enc.write_all(br#"{"content": "nothing here"}"#).unwrap();
        let r = Req::new(
            "https://api.openai.com/v1/x",
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
        );
        let v = e.inspect(&r.info(), &Bytes::from(enc.finish().unwrap()));
        assert!(matches!(v, Verdict::Pass { would: None }));
    }

    #[test]
    fn multipart_text_part_is_redacted() {
        let e = engine(Mode::Enforce, false);
        let r = Req::new(
            "https://h.example/upload",
            &[("content-type", "multipart/form-data; boundary=XX")],
        );
        let body = Bytes::from_static(b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\ncard 4111-1111-1111-1111\r\n--XX--\r\n");
        let (headers, out) = rewritten(e.inspect(&r.info(), &body));
        assert_eq!(
            &out[..],
            b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\ncard [REDACTED:payment-card]\r\n--XX--\r\n"
        );
        assert_eq!(
            headers[header::CONTENT_LENGTH],
            out.len().to_string().as_str()
        );
    }

    /// Logs name rule, location and request id with a masked preview, never the value.
    #[test]
    fn logs_never_hold_the_value() {
        #[derive(Clone, Default)]
        struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let body = Bytes::from(format!(r#"{{"a": "{TOKEN}", "b": "4111 1111 1111 1111"}}"#));
            engine(Mode::Enforce, false).inspect(&json_req("h.example").info(), &body);
            engine(Mode::DryRun, false).inspect(&json_req("h.example").info(), &body);
        });
        let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(
            logs.contains("api-key") && logs.contains("payment-card"),
            "{logs}"
        );
        assert!(logs.contains("req-1") && logs.contains("body"), "{logs}");
        assert!(logs.contains("dry-run: would block"), "{logs}");
        assert!(
            !logs.contains("Zq8vN3kLm2Rt5Xw9Yb4Hc7Jd") && !logs.contains("4111 1111 1111 1111"),
            "{logs}"
        );
    }

    /// Many findings: at most `max_findings` listed, all counted, and the decision is
    /// the one all of them make.
    #[test]
    fn findings_over_the_cap_still_decide() {
        let capped = |n| engine(Mode::Enforce, false).with_limits(Limits { max_findings: n });
        let cards = |n: usize| {
            (0..n)
                .map(|_| "4111 1111 1111 1111")
                .collect::<Vec<_>>()
                .join(" and ")
        };
        let req = json_req("h.example");
        // Under the cap: redacted, every span.
        let body = Bytes::from(serde_json::json!({ "c": cards(4) }).to_string());
        let (v, report) = capped(5).inspect_report(&req.info(), &body);
        let (_, out) = rewritten(v);
        assert!(!String::from_utf8_lossy(&out).contains("4111"));
        assert_eq!((report.findings.len(), report.unlisted), (4, 0));
        // Over it: the redaction cannot list every span, so it blocks.
        let body = Bytes::from(serde_json::json!({ "c": cards(12) }).to_string());
        let (v, report) = capped(5).inspect_report(&req.info(), &body);
        assert_eq!(response(&v).0, 403);
        assert_eq!(report.decision, Decision::Block);
        assert_eq!((report.findings.len(), report.unlisted), (5, 7));
        assert_eq!(report.counts.len(), 1);
        assert_eq!(
            (report.counts[0].rule.as_str(), report.counts[0].count),
            ("payment-card", 12)
        );
        // A blocking finding after many log-only ones is listed and blocks.
        let mails = (0..50)
            .map(|i| format!("u{i}@example.com"))
            .collect::<Vec<_>>()
            .join(" ");
        let body = Bytes::from(serde_json::json!({ "m": mails, "k": TOKEN }).to_string());
        let (v, report) = capped(3).inspect_report(&req.info(), &body);
        let (status, json) = response(&v);
        assert_eq!(status, 403);
        assert_eq!(json["findings"][0]["rule"], "api-key");
        assert_eq!(report.findings.len(), 3);
        assert_eq!(report.findings[0].rule, "api-key");
        assert_eq!(report.total(), 51);
        // Log-only findings over the cap change nothing.
        let body = Bytes::from(serde_json::json!({ "m": mails }).to_string());
        let (v, report) = capped(3).inspect_report(&req.info(), &body);
        assert!(matches!(v, Verdict::Pass { would: None }));
        assert_eq!((report.findings.len(), report.unlisted), (3, 47));
    }

    /// Issue 8: one log line per request, however many findings.
    #[test]
    fn one_log_line_per_request() {
        let buf = LogBuf::default();
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        let mails = (0..2000)
            .map(|i| format!("u{i}@example.com"))
            .collect::<Vec<_>>()
            .join(" ");
        tracing::subscriber::with_default(subscriber, || {
            let body = Bytes::from(serde_json::json!({ "m": mails, "k": TOKEN }).to_string());
            engine(Mode::Enforce, false).inspect(&json_req("h.example").info(), &body);
        });
        let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logs.lines().count(), 1, "{logs}");
        assert!(logs.contains("email=2000(log)"), "{logs}");
        assert!(logs.contains("api-key=1(block)"), "{logs}");
    }

    #[derive(Clone, Default)]
    struct LogBuf(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for LogBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn engine_is_shareable_across_tasks() {
        fn check<T: Send + Sync>() {}
        check::<Engine>();
        check::<Verdict>();
        check::<Inspection>();
    }

    #[test]
    fn credential_in_userinfo_blocks() {
        let e = engine(Mode::Enforce, false);
        let r = Req::new(&format!("https://user:{TOKEN}@git.example/repo"), &[]);
        let (status, json) = response(&e.inspect(&r.info(), &Bytes::new()));
        assert_eq!(
            (status, json["findings"][0]["location"].as_str()),
            (403, Some("url"))
        );
    }

    #[test]
    fn builtin_config_engine() {
        let e = Engine::new(&Config::embedded()).unwrap();
        let body = Bytes::from_static(br#"{"content": "nothing to see"}"#);
        assert!(matches!(
            e.inspect(&json_req("api.openai.com").info(), &body),
            Verdict::Pass { would: None }
        ));
    }

    /// Real OpenClaw request shapes: the card in the user turn and inside the tool
    /// call's `arguments` string is redacted at both levels; the agent's own key in its
    /// auth header passes at its home host.
    #[test]
    fn openclaw_corpus() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/openclaw");
        let files = [
            (
                "sample_openai_chat_request_with_tool_result.json",
                "api.openai.com",
            ),
            (
                "sample_anthropic_messages_request.json",
                "api.anthropic.com",
            ),
        ];
        let e = engine(Mode::Enforce, false);
        for (name, host) in files {
            let Ok(text) = std::fs::read_to_string(dir.join(name)) else {
                eprintln!(
                    "SKIP openclaw_corpus: {} not found",
                    dir.join(name).display()
                );
                return;
            };
            let rec: serde_json::Value = serde_json::from_str(&text).unwrap();
            let body = Bytes::from(serde_json::to_vec(&rec["json"]).unwrap());
            let mut headers: Vec<(String, String)> = Vec::new();
            for (k, v) in rec["headers"].as_object().unwrap() {
                if !matches!(k.as_str(), "host" | "content-length" | "connection") {
                    headers.push((k.clone(), v.as_str().unwrap().to_string()));
                }
            }
            let hv: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let r = Req::new(
                &format!("https://{host}{}", rec["path"].as_str().unwrap()),
                &hv,
            );
            let (v, report) = e.inspect_report(&r.info(), &body);
            assert!(
                report
                    .findings
                    .iter()
                    .any(|f| f.outcome == Outcome::HomeHost),
                "{name}"
            );
            let (_, out) = rewritten(v);
            let text = std::str::from_utf8(&out).unwrap();
            assert!(
                !text.contains("4111 1111 1111 1111") && !text.contains("4111111111111111"),
                "{name}"
            );
            let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
            // Only the spans changed: the rest of the document is the same.
            assert_eq!(doc["model"], rec["json"]["model"]);
            if let Some(msgs) = doc["messages"].as_array() {
                for m in msgs {
                    for call in m["tool_calls"].as_array().into_iter().flatten() {
                        let args = call["function"]["arguments"].as_str().unwrap();
                        let inner: serde_json::Value = serde_json::from_str(args).unwrap();
                        assert!(inner["command"]
                            .as_str()
                            .unwrap()
                            .contains("card=[REDACTED:payment-card]"));
                    }
                }
            }
        }
    }
}
