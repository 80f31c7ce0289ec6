//! The compiled scanner: an Aho-Corasick keyword prefilter plus two cheap triggers
//! (digit runs, `@`) decide *where* to look; each rule's regex then runs only in a small
//! window around a hit, and its validator/context/entropy checks confirm the match.
//!
//! Benign text costs one DFA pass for keywords and one byte loop for digit runs;
//! no rule's regex ever runs over the whole input.

use crate::detect::pseudonymize::placeholder::looks_like_placeholder;
use crate::detect::rules::{Category, ContextWhen, Rule, RulePack, Trigger};
use crate::detect::validate::{Validator, Verdict};
use regex_automata::meta::Regex;
use regex_automata::Input;
use std::io::Read;
use std::sync::Arc;

mod keywords;
use keywords::Keywords;

/// Digit runs shorter than this never start a candidate.
const MIN_DIGIT_RUN: usize = 5;

/// One detected item: half-open byte offsets into the scanned input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Arc<str>,
    pub category: Category,
    pub start: usize,
    pub end: usize,
    /// Index of the rule in [`Scanner::rules`].
    pub rule_index: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("rule `{rule}`: {message}")]
    Rule { rule: String, message: String },
    #[error("building the keyword automaton: {0}")]
    Keywords(String),
}

struct CompiledRule {
    id: Arc<str>,
    category: Category,
    regex: Regex,
    secret_group: Option<usize>,
    /// The `key` group of assignment rules, handed to the validator with the value.
    key_group: Option<usize>,
    validator: Option<Validator>,
    /// The rule's context words, ASCII case ignored; `None` when it has none.
    context: Option<aho_corasick::AhoCorasick>,
    context_when: ContextWhen,
    /// Rides the digit-run trigger: its findings must not be a piece of a longer number.
    digits: bool,
    context_window: usize,
    lookbehind: usize,
    lookahead: usize,
    allow: Vec<Vec<u8>>,
    priority: i32,
}

/// A compiled rule pack. Cheap to share (`Arc<Scanner>`), safe to use from many threads.
pub struct Scanner {
    rules: Vec<CompiledRule>,
    source: Vec<Rule>,
    keywords: Option<Keywords>,
    /// For each keyword pattern id, the rules that asked for it.
    keyword_rules: Vec<Vec<u32>>,
    /// Digit-triggered rules with the fewest digits each needs, fewest first.
    digit_rules: Vec<(usize, u32)>,
    at_rules: Vec<u32>,
    max_span: usize,
}

/// A place where one rule's regex should be tried.
#[derive(Clone, Copy)]
struct Candidate {
    rule: u32,
    win_start: usize,
    win_end: usize,
    hit_start: usize,
    hit_end: usize,
}

impl Scanner {
    pub fn new(pack: &RulePack) -> Result<Scanner, ScanError> {
        let mut rules = Vec::new();
        let mut source = Vec::new();
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut keyword_rules: Vec<Vec<u32>> = Vec::new();
        let mut digit_rules = Vec::new();
        let mut at_rules = Vec::new();
        let mut max_span = 0;
        for rule in pack.enabled() {
            let idx = rules.len() as u32;
            let err = |message: String| ScanError::Rule {
                rule: rule.id.clone(),
                message,
            };
            let crate::detect::rules::CompiledParts { regex, validator } =
                rule.compiled().map_err(err)?;
            let group = |name: &str| {
                regex
                    .group_info()
                    .to_index(regex_automata::util::primitives::PatternID::ZERO, name)
            };
            let (secret_group, key_group) = (group("secret"), group("key"));
            for k in rule
                .keywords
                .iter()
                .flat_map(|kw| keyword_forms(kw, rule.keyword_case))
            {
                match patterns.iter().position(|p| *p == k) {
                    Some(p) => {
                        if !keyword_rules[p].contains(&idx) {
                            keyword_rules[p].push(idx);
                        }
                    }
                    None => {
                        patterns.push(k);
                        keyword_rules.push(vec![idx]);
                    }
                }
            }
            match rule.trigger {
                Some(Trigger::Digits) => {
                    digit_rules.push((rule.min_digits.unwrap_or(MIN_DIGIT_RUN), idx))
                }
                Some(Trigger::At) => at_rules.push(idx),
                None => {}
            }
            max_span = max_span.max(rule.lookbehind + rule.lookahead + 2 * rule.context_window);
            rules.push(CompiledRule {
                id: Arc::from(rule.id.as_str()),
                category: rule.category,
                regex,
                secret_group,
                key_group,
                validator,
                context_when: rule.context_when,
                digits: rule.trigger == Some(Trigger::Digits),
                context: context_words(&rule.context).map_err(|e| ScanError::Rule {
                    rule: rule.id.clone(),
                    message: format!("context words: {e}"),
                })?,
                context_window: rule.context_window,
                lookbehind: rule.lookbehind,
                lookahead: rule.lookahead,
                allow: rule.allow.iter().map(|a| a.as_bytes().to_vec()).collect(),
                priority: rule.priority,
            });
            source.push(rule.clone());
        }
        digit_rules.sort_unstable();
        // Validators that read libphonenumber's metadata: start loading it now (a few
        // hundred milliseconds, once per process, on a thread of its own) rather than
        // inside the first request's scan.
        if rules.iter().any(|r: &CompiledRule| {
            matches!(r.validator, Some(Validator::Phone | Validator::CnLandline))
        }) {
            crate::detect::validate::warm_up_phone_metadata();
        }
        let keywords = Keywords::new(&patterns).map_err(|e| ScanError::Keywords(e.to_string()))?;
        Ok(Scanner {
            rules,
            source,
            keywords,
            keyword_rules,
            digit_rules,
            at_rules,
            max_span,
        })
    }

    /// The enabled rules, in the order of [`Finding::rule_index`].
    pub fn rules(&self) -> &[Rule] {
        &self.source
    }

    pub fn rule(&self, f: &Finding) -> &Rule {
        &self.source[f.rule_index as usize]
    }

    /// The longest stretch of bytes one finding plus its context can cover; streaming
    /// windows overlap by at least this much.
    pub fn max_span(&self) -> usize {
        self.max_span
    }

    /// Scan a whole buffer. Findings are sorted by start and do not overlap: where two
    /// rules claim overlapping bytes, the higher priority (then the longer) wins.
    pub fn scan(&self, hay: &[u8]) -> Vec<Finding> {
        let mut cands = Vec::new();
        self.collect_candidates(hay, &mut cands);
        if cands.is_empty() {
            return Vec::new();
        }
        cands.sort_unstable_by_key(|c| (c.rule, c.win_start));
        let mut found = Vec::new();
        let mut i = 0;
        while i < cands.len() {
            // Merge overlapping windows of the same rule so its regex runs once there.
            let mut c = cands[i];
            let mut j = i + 1;
            while j < cands.len() && cands[j].rule == c.rule && cands[j].win_start <= c.win_end {
                c.win_end = c.win_end.max(cands[j].win_end);
                c.hit_end = c.hit_end.max(cands[j].hit_end);
                c.hit_start = c.hit_start.min(cands[j].hit_start);
                j += 1;
            }
            self.confirm(hay, c, &mut found);
            i = j;
        }
        resolve_overlaps(&self.rules, found)
    }

    fn collect_candidates(&self, hay: &[u8], out: &mut Vec<Candidate>) {
        let len = hay.len();
        let mut push = |rule: u32, hs: usize, he: usize| {
            let r = &self.rules[rule as usize];
            out.push(Candidate {
                rule,
                win_start: hs.saturating_sub(r.lookbehind),
                win_end: (he + r.lookahead).min(len),
                hit_start: hs,
                hit_end: he,
            });
        };
        if let Some(keywords) = &self.keywords {
            // Duplicate candidates merge later, with the windows.
            keywords.for_each(hay, |pattern, s, e| {
                for &rule in &self.keyword_rules[pattern] {
                    push(rule, s, e);
                }
            });
        }
        if !self.at_rules.is_empty() {
            for pos in memchr::memchr_iter(b'@', hay) {
                // An address has a local-part byte before the `@` and a domain byte after
                // it; decorators (`@property`) and `@@` do not.
                let before = pos > 0 && is_local_part_byte(hay[pos - 1]);
                let after = hay.get(pos + 1).is_some_and(u8::is_ascii_alphanumeric);
                if before && after {
                    for &rule in &self.at_rules {
                        push(rule, pos, pos + 1);
                    }
                }
            }
        }
        if !self.digit_rules.is_empty() {
            for_each_digit_run(hay, |s, e, digits| {
                for &(min, rule) in &self.digit_rules {
                    if digits < min {
                        break;
                    }
                    push(rule, s, e);
                }
            });
        }
    }

    fn confirm(&self, hay: &[u8], c: Candidate, found: &mut Vec<Finding>) {
        let rule = &self.rules[c.rule as usize];
        let input = Input::new(hay).range(c.win_start..c.win_end);
        // Any match in the window counts, touching the hit or not: for keyword-context
        // rules (`zhipu … <id>.<secret>`) the keyword is not part of the item, and a match
        // found from two nearby hits is one finding after overlap resolution.
        let mut consider = |ms: usize, me: usize, s: usize, e: usize, key: Option<&[u8]>| {
            if s >= e {
                return;
            }
            let value = &hay[s..e];
            if rule.allow.iter().any(|a| value == a.as_slice()) {
                return;
            }
            if is_marker(value)
                || (rule.category == Category::Credential && is_placeholder(value))
                || inside_sentinel(hay, s, e)
            {
                return;
            }
            if rule.digits && rule.category == Category::Pii && splits_a_number(hay, s, e) {
                return;
            }
            // Where a context word is required anyway (always, or because the value could
            // at best be a weak match), look for it once, before running a validator (some
            // read phone metadata): most candidates have none.
            let cannot_stand_alone = rule.context_when == ContextWhen::Weak
                && rule
                    .validator
                    .as_ref()
                    .is_some_and(|v| !v.may_accept_without_context(value));
            let context_seen = rule.context.is_some()
                && (rule.context_when == ContextWhen::Always || cannot_stand_alone);
            if context_seen && !has_context(hay, ms, me, rule) {
                return;
            }
            let verdict = match &rule.validator {
                Some(v) => v.check(value, key),
                None => Verdict::Accept,
            };
            let needs_context = match verdict {
                Verdict::Reject => return,
                Verdict::NeedsContext => !context_seen,
                Verdict::Accept => false,
            };
            if needs_context && !has_context(hay, ms, me, rule) {
                return;
            }
            found.push(Finding {
                rule: rule.id.clone(),
                category: rule.category,
                start: s,
                end: e,
                rule_index: c.rule,
            });
        };
        match rule.secret_group {
            Some(g) => {
                // The next search starts where the secret ended, not where the match did:
                // a rule's regex may consume the boundary byte after its value (there is no
                // look-around), and that byte is also the boundary before the next item
                // (`a@a.bc b@b.cd`).
                let mut caps = rule.regex.create_captures();
                let mut input = input;
                while input.start() < input.end() {
                    rule.regex.search_captures(&input, &mut caps);
                    let Some(m) = caps.get_match() else { break };
                    let next = match caps.get_group(g) {
                        Some(sec) => {
                            let key = rule
                                .key_group
                                .and_then(|k| caps.get_group(k))
                                .map(|k| &hay[k.start..k.end]);
                            consider(m.start(), m.end(), sec.start, sec.end, key);
                            sec.end
                        }
                        None => m.end(),
                    };
                    let next = next.max(m.start() + 1);
                    if next >= input.end() {
                        break;
                    }
                    input.set_start(next);
                }
            }
            None => {
                for m in rule.regex.find_iter(input) {
                    consider(m.start(), m.end(), m.start(), m.end(), None);
                }
            }
        }
    }

    /// Scan a reader in bounded memory: windows of `chunk` bytes that overlap by more
    /// than any finding plus its context, so items split across reads are still found.
    /// Offsets are absolute. Returns the number of bytes read.
    pub fn scan_reader<R: Read>(
        &self,
        reader: R,
        chunk: usize,
        mut on_finding: impl FnMut(Finding),
    ) -> std::io::Result<u64> {
        self.scan_reader_lines(reader, chunk, |f, _, _| on_finding(f))
    }

    /// [`Scanner::scan_reader`] that also passes the 1-based line number and the
    /// matched bytes of each finding.
    pub fn scan_reader_lines<R: Read>(
        &self,
        mut reader: R,
        chunk: usize,
        mut on_finding: impl FnMut(Finding, usize, &[u8]),
    ) -> std::io::Result<u64> {
        let overlap = self.max_span.max(16 * 1024);
        let chunk = chunk.max(overlap * 2);
        // Zeroed once; each window refills it in place (no per-window memset).
        let mut storage = vec![0u8; chunk + overlap];
        let mut filled = 0usize;
        let mut base: u64 = 0; // absolute offset of storage[0]
        let mut lines_before_base: usize = 0;
        let mut reported_upto: u64 = 0;
        let mut total: u64 = 0;
        loop {
            let mut eof = false;
            while filled < storage.len() {
                match reader.read(&mut storage[filled..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        filled += n;
                        total += n as u64;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            let buf = &storage[..filled];
            let limit = if eof { buf.len() } else { buf.len() - overlap };
            // Findings come sorted by start: count newlines incrementally.
            let (mut cursor, mut line) = (0usize, lines_before_base + 1);
            for mut f in self.scan(buf) {
                let abs = base + f.start as u64;
                if abs < reported_upto || f.start >= limit {
                    continue;
                }
                line += memchr::memchr_iter(b'\n', &buf[cursor..f.start]).count();
                cursor = f.start;
                let (s, e) = (f.start, f.end);
                f.start = abs as usize;
                f.end = (base + e as u64) as usize;
                on_finding(f, line, &buf[s..e]);
            }
            reported_upto = base + limit as u64;
            if eof {
                return Ok(total);
            }
            // Keep some already-reported bytes as look-behind context for the next window.
            let keep = limit.min(overlap);
            let drop = limit - keep;
            lines_before_base += memchr::memchr_iter(b'\n', &buf[..drop]).count();
            storage.copy_within(drop..filled, 0);
            filled -= drop;
            base += drop as u64;
        }
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
/// (It lives here, not in `rules`, because it needs the compiled scanner.)
pub fn self_test(pack: &RulePack) -> Result<(usize, Vec<ExampleFailure>), ScanError> {
    let scanner = Scanner::new(pack)?;
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

/// The byte strings a keyword is searched as: as written, and for `KeywordCase::Any` also
/// lower-case, UPPER-CASE and Capitalised (first ASCII letter upper, rest lower).
fn keyword_forms(kw: &str, case: crate::detect::rules::KeywordCase) -> Vec<Vec<u8>> {
    let mut forms = vec![kw.as_bytes().to_vec()];
    if case == crate::detect::rules::KeywordCase::Any {
        let lower = kw.as_bytes().to_ascii_lowercase();
        let mut capital = lower.clone();
        if let Some(c) = capital.iter_mut().find(|b| b.is_ascii_alphabetic()) {
            c.make_ascii_uppercase();
        }
        forms.extend([lower, kw.as_bytes().to_ascii_uppercase(), capital]);
    }
    let mut unique: Vec<Vec<u8>> = Vec::with_capacity(forms.len());
    for f in forms {
        if !unique.contains(&f) {
            unique.push(f);
        }
    }
    unique
}

fn is_local_part_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// Call `f(start, end, digits)` for every run of at least [`MIN_DIGIT_RUN`] ASCII digits,
/// where up to three spaces, dots or dashes between digit groups do not break the run
/// (`6222 0200 1234`, `4111.1111.1111.1111`, `138 - 1234 - 5678`).
fn for_each_digit_run(hay: &[u8], mut f: impl FnMut(usize, usize, usize)) {
    let n = hay.len();
    let mut i = 0;
    while i < n {
        match next_digit(hay, i) {
            Some(p) => i = p,
            None => return,
        }
        let start = i;
        let mut count = 0;
        let end;
        loop {
            while i < n && hay[i].is_ascii_digit() {
                i += 1;
                count += 1;
            }
            // Up to three separator bytes, any mix of space, dot and dash, between groups.
            let sep = hay[i..n.min(i + 4)]
                .iter()
                .take_while(|&&b| matches!(b, b' ' | b'.' | b'-'))
                .count();
            if (1..=3).contains(&sep) && i + sep < n && hay[i + sep].is_ascii_digit() {
                i += sep;
                continue;
            }
            end = i;
            break;
        }
        if count >= MIN_DIGIT_RUN {
            f(start, end, count);
        }
    }
}

/// Position of the first ASCII digit at or after `from`, eight bytes at a time.
#[inline]
fn next_digit(hay: &[u8], mut i: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while i + 8 <= hay.len() {
        let w = u64::from_le_bytes(hay[i..i + 8].try_into().expect("8 bytes"));
        // Per byte (all values < 0x80): high bit set where 0x2f < b < 0x3a. Bytes >= 0x80
        // are masked out by `!w`. (Bit-twiddling "hasbetween", exact for ASCII.)
        let x = w & (LO * 127);
        let t = ((LO * (127 + 0x3a)).wrapping_sub(x)) & !w & (x + LO * (127 - 0x2f)) & HI;
        if t != 0 {
            return Some(i + (t.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay[i..].iter().position(u8::is_ascii_digit).map(|p| i + p)
}

/// Documented placeholders and masked values are not leaks.
fn is_placeholder(v: &[u8]) -> bool {
    const MARKERS: &[&[u8]] = &[
        b"EXAMPLE",
        b"example",
        b"xxxxxx",
        b"XXXXXX",
        b"******",
        b"your_",
        b"YOUR_",
        b"<",
        b"${",
        b"{{",
        b"placeholder",
        b"PLACEHOLDER",
        b"changeme",
        b"REPLACE",
        b"dummy",
        b"DUMMY",
    ];
    MARKERS.iter().any(|m| memchr::memmem::find(v, m).is_some())
}

/// What ClawGuard and OpenClaw put in place of a value they removed: our typed
/// pseudonymization placeholders (`CG_PHONE_qvtxamkbkazep`, see
/// [`crate::detect::pseudonymize::placeholder`]), our redaction markers
/// (`[REDACTED:rule-id]`) and OpenClaw's `__OPENCLAW_REDACTED__`. Reporting them would
/// block the very requests that redaction made safe.
fn is_marker(v: &[u8]) -> bool {
    looks_like_placeholder(v)
        || memchr::memmem::find(v, b"[REDACTED:").is_some()
        || memchr::memmem::find(v, b"__OPENCLAW_REDACTED__").is_some()
}

/// OpenClaw's secret sentinels (`oc-sent-v2.<base64url>.end`) carry an encrypted
/// secret whose ciphertext can look like anything; nothing inside one is a finding.
fn inside_sentinel(hay: &[u8], s: usize, e: usize) -> bool {
    const PREFIX: &[u8] = b"oc-sent-v2.";
    const SUFFIX: &[u8] = b".end";
    const MAX_PAYLOAD: usize = 16 * 1024;
    let is_payload = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-');
    // Walk left over payload bytes to where a sentinel would begin.
    let floor = s.saturating_sub(MAX_PAYLOAD + PREFIX.len());
    let mut start = s;
    while start > floor && is_payload(&hay[start - 1]) {
        start -= 1;
    }
    if start < PREFIX.len() || &hay[start - PREFIX.len()..start] != PREFIX {
        return false;
    }
    let mut end = start;
    while end < hay.len() && end - start <= MAX_PAYLOAD && is_payload(&hay[end]) {
        end += 1;
    }
    e <= end + SUFFIX.len() && hay[end..].starts_with(SUFFIX)
}

/// A digit-run finding that is only a piece of something longer: glued to more digits,
/// after or before a decimal point (`3.16992500144` is a fraction, not a mobile number),
/// glued to letters (`…93a3-0736-27259a33…` is a hex id, `T5:01:02.048176Z` a time), or
/// one group of a byte dump (`hex!("0c 04 31 32 33 34")`). Spaces and dashes between
/// digits are soft separators; a dot between digits joins one number. A `-`, `_` or `+`
/// joins only runs a dashed id is made of (UUID groups are at most 12 characters): a
/// longer run after one (`X-4539148803436467` as a header name) is a value of its own.
fn splits_a_number(hay: &[u8], s: usize, e: usize) -> bool {
    const ID_GROUP_MAX: usize = 12;
    let id_group = e - s <= ID_GROUP_MAX;
    let at = |i: usize| hay.get(i).copied();
    let digit = |i: usize| at(i).is_some_and(|b| b.is_ascii_digit());
    let alnum = |i: usize| at(i).is_some_and(|b| b.is_ascii_alphanumeric());
    let letter = |i: usize| at(i).is_some_and(|b| b.is_ascii_alphabetic());
    let left = s > 0 && {
        let p = hay[s - 1];
        digit(s - 1)
            || (p == b'.' && s > 1 && digit(s - 2))
            || (digit(s)
                && (letter(s - 1)
                    || (id_group && matches!(p, b'-' | b'_' | b'+') && s > 1 && alnum(s - 2))))
    };
    let right = e > 0 && {
        digit(e)
            || (at(e) == Some(b'.') && digit(e + 1))
            || (digit(e - 1)
                && (letter(e) || (id_group && matches!(at(e), Some(b'-' | b'_')) && alnum(e + 1))))
    };
    left || right || in_byte_dump(hay, s, e)
}

/// Two-digit groups with a hex byte (`0c `, ` e0`) right next to them.
fn in_byte_dump(hay: &[u8], s: usize, e: usize) -> bool {
    let item = &hay[s..e];
    let pairs = item.len() >= 5
        && item
            .split(|&b| b == b' ')
            .all(|g| g.len() == 2 && g.iter().all(u8::is_ascii_digit));
    let hex_byte = |w: &[u8]| w.len() == 2 && w.iter().all(u8::is_ascii_hexdigit);
    pairs
        && ((s >= 3 && hay[s - 1] == b' ' && hex_byte(&hay[s - 3..s - 1]))
            || (e + 3 <= hay.len() && hay[e] == b' ' && hex_byte(&hay[e + 1..e + 3])))
}

/// Whether `window[i]` continues an identifier into the byte after it: a letter, digit or
/// `_`, except the letter of an escape (`\nSSN:` starts a word after the newline).
fn glued(window: &[u8], i: usize) -> bool {
    let b = window[i];
    (b.is_ascii_alphanumeric() || b == b'_') && !(i > 0 && window[i - 1] == b'\\')
}

/// One of the rule's context words occurs within `context_window` bytes before or
/// after the match (`card 4111…`, `… (passport)`, `api_key="sk-…", base_url="…deepseek…"`).
/// A word starting with an ASCII letter must start a word (`tel` is not in `hotel`, `mtp`
/// not in `smtputf8`, `call` not in `VHOST_SET_VRING_CALL`); it may run on (`cards`,
/// `dingxxxx` app keys, `telephone`).
fn has_context(hay: &[u8], ms: usize, me: usize, rule: &CompiledRule) -> bool {
    let Some(words) = &rule.context else {
        return false;
    };
    let from = ms.saturating_sub(rule.context_window);
    let to = (me + rule.context_window).min(hay.len());
    let window = &hay[from..to];
    words.find_overlapping_iter(window).any(|m| {
        let i = m.start();
        let ascii_word = window[i].is_ascii_alphabetic();
        !(ascii_word && i > 0 && glued(window, i - 1))
    })
}

/// One automaton for a rule's context words (a few dozen words looked for around every
/// candidate: one pass over the window instead of one per word).
fn context_words(
    words: &[String],
) -> Result<Option<aho_corasick::AhoCorasick>, aho_corasick::BuildError> {
    if words.is_empty() {
        return Ok(None);
    }
    aho_corasick::AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .match_kind(aho_corasick::MatchKind::Standard)
        .build(words)
        .map(Some)
}

/// Sort by start and drop findings that overlap a stronger one.
///
/// Greedy, strongest first (priority, then length, then earlier start). The findings kept
/// so far are disjoint, so sorted by start they are sorted by end too: the only one that
/// can overlap a new finding is the last kept one starting before the new one's end.
/// One ordered-map lookup per finding: O(n log n) overall (a body of 1 MiB that is all
/// e-mail addresses holds ~150 000 findings; a pairwise check took seconds there).
fn resolve_overlaps(rules: &[CompiledRule], mut found: Vec<Finding>) -> Vec<Finding> {
    if found.len() < 2 {
        return found;
    }
    found.sort_by(|a, b| {
        let pa = rules[a.rule_index as usize].priority;
        let pb = rules[b.rule_index as usize].priority;
        pb.cmp(&pa)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    // start -> end of every kept finding (`confirm` never yields an empty one, so no two
    // kept findings share a start).
    let mut kept: std::collections::BTreeMap<usize, usize> = std::collections::BTreeMap::new();
    let mut out: Vec<Finding> = Vec::with_capacity(found.len());
    for f in found {
        let overlaps = kept
            .range(..f.end)
            .next_back()
            .is_some_and(|(_, &e)| f.start < e);
        if !overlaps {
            kept.insert(f.start, f.end);
            out.push(f);
        }
    }
    out.sort_by_key(|f| (f.start, f.end));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_digit_matches_a_plain_search() {
        let mut data: Vec<u8> = (0u8..=255).collect();
        data.extend_from_slice("漢字/:9 0x".as_bytes());
        for start in 0..data.len() {
            let want = data[start..]
                .iter()
                .position(u8::is_ascii_digit)
                .map(|p| p + start);
            assert_eq!(next_digit(&data, start), want, "from {start}");
        }
        let no_digits: Vec<u8> = (0u8..=255)
            .filter(|b| !b.is_ascii_digit())
            .cycle()
            .take(4096)
            .collect();
        for start in 0..64 {
            assert_eq!(next_digit(&no_digits, start), None);
        }
    }

    #[test]
    fn keyword_case_forms() {
        use crate::detect::rules::KeywordCase::{Any, Exact};
        assert_eq!(keyword_forms("AKIA", Exact), vec![b"AKIA".to_vec()]);
        let forms = keyword_forms("_token", Any);
        for f in [&b"_token"[..], b"_TOKEN", b"_Token"] {
            assert!(forms.contains(&f.to_vec()), "{forms:?}");
        }
        assert_eq!(keyword_forms("密码", Any), vec!["密码".as_bytes().to_vec()]);
    }

    #[test]
    fn digit_runs_join_separators() {
        let mut runs = Vec::new();
        for_each_digit_run(b"tel 138 0013 8000, id 1234 x 1234567", |s, e, n| {
            runs.push((s, e, n))
        });
        assert_eq!(runs, vec![(4, 17, 11), (29, 36, 7)]);
        runs.clear();
        for_each_digit_run(b"4111.1111.1111.1111 or 138 - 1234 - 5678", |s, e, n| {
            runs.push((s, e, n))
        });
        assert_eq!(runs, vec![(0, 19, 16), (23, 40, 11)]);
    }

    /// A reader that hands out a few bytes at a time, like a slow socket.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn streaming_finds_the_same_items_as_one_buffer() {
        let pack = RulePack::builtin();
        let scanner = Scanner::new(&pack).unwrap();
        let overlap = scanner.max_span().max(16 * 1024);
        // Items every few KiB, so some straddle every window edge.
        let mut data = Vec::new();
        let mut i = 0;
        while data.len() < overlap * 9 {
            data.extend(std::iter::repeat_n(b'x', 997 + (i * 131) % 2000));
            data.extend_from_slice(b" id 11010519491231002X mail a.b@example.com\n");
            i += 1;
        }
        let whole = scanner.scan(&data);
        assert!(whole.len() > 20);
        let mut streamed = Vec::new();
        scanner
            .scan_reader(Trickle(&data, 4093), 0, |f| streamed.push(f))
            .unwrap();
        assert_eq!(streamed, whole);
    }

    /// The ordered-map resolution keeps exactly what the pairwise check kept.
    #[test]
    fn overlap_resolution_matches_the_pairwise_check() {
        use rand::{Rng, SeedableRng};
        let scanner = Scanner::new(&RulePack::builtin()).unwrap();
        let rules = &scanner.rules;
        let pairwise = |mut found: Vec<Finding>| {
            found.sort_by(|a, b| {
                let pa = rules[a.rule_index as usize].priority;
                let pb = rules[b.rule_index as usize].priority;
                pb.cmp(&pa)
                    .then((b.end - b.start).cmp(&(a.end - a.start)))
                    .then(a.start.cmp(&b.start))
            });
            let mut kept: Vec<Finding> = Vec::new();
            for f in found {
                if !kept.iter().any(|k| k.start < f.end && f.start < k.end) {
                    kept.push(f);
                }
            }
            kept.sort_by_key(|f| (f.start, f.end));
            kept
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..500 {
            let n = rng.random_range(0..40);
            let found: Vec<Finding> = (0..n)
                .map(|_| {
                    let start = rng.random_range(0..100);
                    let idx = rng.random_range(0..rules.len()) as u32;
                    Finding {
                        rule: rules[idx as usize].id.clone(),
                        category: rules[idx as usize].category,
                        start,
                        end: start + rng.random_range(1..20),
                        rule_index: idx,
                    }
                })
                .collect();
            assert_eq!(resolve_overlaps(rules, found.clone()), pairwise(found));
        }
    }

    /// Issue 8: a body of nothing but e-mail addresses (one finding every 7 bytes).
    /// Pairwise resolution took ~7.5 s for 1 MiB; this must finish in well under that on
    /// any machine, but nothing here asserts on time: it asserts on what is found.
    #[test]
    fn a_body_of_findings_is_resolved() {
        let scanner = Scanner::new(&RulePack::builtin()).unwrap();
        let body = b"a@a.bc ".repeat((1 << 20) / 7);
        let found = scanner.scan(&body);
        assert!(found.len() > 100_000, "{}", found.len());
        assert!(found.windows(2).all(|w| w[0].end <= w[1].start));
    }

    #[test]
    fn non_ascii_literals_compile() {
        let re = crate::detect::rules::compile_regex(r"(?:密码|口令)(?:：|:)\s*(?P<secret>\S+)")
            .unwrap();
        let hay = "数据库密码：abc123".as_bytes();
        assert!(re.find(hay).is_some());
    }
}

/// A masked preview of a matched value, safe for logs, audit records and terminals:
/// at most a fifth of the characters show (never more than four at the start and two
/// at the end), the rest become `*`. Control characters are escaped.
pub fn preview(value: &[u8]) -> String {
    let s = String::from_utf8_lossy(value);
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let head = (n / 5).min(4);
    let tail = (n / 10).min(2);
    let mut out = String::with_capacity(head + tail + 8);
    let visible = |c: char, out: &mut String| {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    };
    for &c in &chars[..head] {
        visible(c, &mut out);
    }
    out.extend(std::iter::repeat_n('*', (n - head - tail).clamp(1, 8)));
    for &c in &chars[n - tail..] {
        visible(c, &mut out);
    }
    out
}

#[cfg(test)]
mod preview_tests {
    use super::preview;

    #[test]
    fn preview_hides_most_of_the_value() {
        let token = "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";
        let p = preview(token.as_bytes());
        assert_eq!(p, "ghp_********Bo");
        assert_eq!(preview(b"123456"), "1*****");
        assert_eq!(preview(b"ab"), "**");
        assert_eq!(
            preview("身份证11010519491231002X".as_bytes()),
            "身份证1********2X"
        );
    }
}
