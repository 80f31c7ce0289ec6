//! Where the rules' keywords occur in a haystack: every occurrence of every keyword,
//! overlapping ones included.
//!
//! One Aho-Corasick DFA (the `aho-corasick` crate) over all keywords and their case
//! forms. Walking a DFA costs one table load per byte that depends on the load before
//! it, so a single walk runs at the latency of L1, not its throughput (~5 cycles a byte
//! here, whatever the table's size; with ~400 keywords it was the largest cost of a
//! scan). The haystack is therefore cut into [`LANES`] stretches walked in lock-step:
//! their loads do not depend on each other and overlap in the pipeline. Hand-written
//! because the crate's iterators walk one stretch at a time; the automaton is the
//! crate's, driven through its public `Automaton` trait. (A regex-automata dense DFA
//! walks in fewer instructions but took 1.3 s to build for these keywords, at every
//! start.)

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};

/// Stretches walked at once. Four hide most of the load latency; more gave nothing
/// measurable (`cargo bench --bench scan`).
const LANES: usize = 4;

/// Below this many bytes per lane one walk is as fast.
const MIN_LANE: usize = 4096;

/// A keyword automaton.
pub(super) struct Keywords {
    dfa: DFA,
    longest: usize,
}

impl Keywords {
    /// `None` when there are no keywords.
    pub fn new(patterns: &[Vec<u8>]) -> Result<Option<Keywords>, aho_corasick::BuildError> {
        if patterns.is_empty() {
            return Ok(None);
        }
        // Case-sensitive on purpose (ASCII case folding makes the automaton larger);
        // words that need it come in several forms. Standard semantics: each state lists
        // every keyword ending there, which is what an overlapping search reports.
        let dfa = DFA::builder()
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .build(patterns)?;
        Ok(Some(Keywords {
            dfa,
            longest: patterns.iter().map(Vec::len).max().unwrap_or(0),
        }))
    }

    /// Call `f(pattern, start, end)` for every occurrence of every keyword (in no
    /// particular order).
    pub fn for_each(&self, hay: &[u8], mut f: impl FnMut(usize, usize, usize)) {
        let lane = hay.len() / LANES;
        if lane < MIN_LANE {
            self.walk(hay, 0, hay.len(), hay.len(), &mut f);
            return;
        }
        let dfa = &self.dfa;
        let Ok(start) = dfa.start_state(Anchored::No) else {
            return;
        };
        let [a, b, c, d] = std::array::from_fn(|k| &hay[k * lane..(k + 1) * lane]);
        // Four states in four locals (registers, not an array in memory, whose store and
        // reload would lengthen every chain), and one branch for all four match checks.
        let (mut s0, mut s1, mut s2, mut s3) = (start, start, start, start);
        let next = |s, x| dfa.next_state(Anchored::No, s, x);
        for (i, (((&x0, &x1), &x2), &x3)) in a.iter().zip(b).zip(c).zip(d).enumerate() {
            s0 = next(s0, x0);
            s1 = next(s1, x1);
            s2 = next(s2, x2);
            s3 = next(s3, x3);
            if dfa.is_match(s0) | dfa.is_match(s1) | dfa.is_match(s2) | dfa.is_match(s3) {
                for (k, s) in [s0, s1, s2, s3].into_iter().enumerate() {
                    if dfa.is_match(s) {
                        self.report(s, k * lane + i + 1, 0, &mut f);
                    }
                }
            }
        }
        let states = [s0, s1, s2, s3];
        // Each lane walks on past its end by the longest keyword less one byte, for the
        // keywords that start in it and end in the next; the last lane to the end.
        for (k, &state) in states.iter().enumerate() {
            let from = (k + 1) * lane;
            let (until, starts_before) = if k + 1 == LANES {
                (hay.len(), hay.len())
            } else {
                ((from + self.longest - 1).min(hay.len()), from)
            };
            self.walk_from(state, hay, from, until, starts_before, &mut f);
        }
    }

    /// One walk over `hay[from..until]` from the start state, reporting keywords that
    /// start before `starts_before`.
    fn walk(
        &self,
        hay: &[u8],
        from: usize,
        until: usize,
        starts_before: usize,
        f: &mut impl FnMut(usize, usize, usize),
    ) {
        if let Ok(start) = self.dfa.start_state(Anchored::No) {
            self.walk_from(start, hay, from, until, starts_before, f);
        }
    }

    fn walk_from(
        &self,
        mut state: aho_corasick::automaton::StateID,
        hay: &[u8],
        from: usize,
        until: usize,
        starts_before: usize,
        f: &mut impl FnMut(usize, usize, usize),
    ) {
        for (i, &b) in hay[from..until].iter().enumerate() {
            state = self.dfa.next_state(Anchored::No, state, b);
            if self.dfa.is_match(state) {
                self.report(state, from + i + 1, starts_before, f);
            }
        }
    }

    /// The keywords of match state `state` ending at `end`; with `starts_before` > 0,
    /// only those starting before it.
    #[cold]
    fn report(
        &self,
        state: aho_corasick::automaton::StateID,
        end: usize,
        starts_before: usize,
        f: &mut impl FnMut(usize, usize, usize),
    ) {
        for k in 0..self.dfa.match_len(state) {
            let pattern = self.dfa.match_pattern(state, k);
            let start = end - self.dfa.pattern_len(pattern);
            if starts_before == 0 || start < starts_before {
                f(pattern.as_usize(), start, end);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every occurrence, by brute force.
    fn naive(patterns: &[Vec<u8>], hay: &[u8]) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for i in 0..hay.len() {
            for (p, k) in patterns.iter().enumerate() {
                if hay[i..].starts_with(k) {
                    out.push((p, i, i + k.len()));
                }
            }
        }
        out.sort();
        out
    }

    fn found(kw: &Keywords, hay: &[u8]) -> Vec<(usize, usize, usize)> {
        let mut got = Vec::new();
        kw.for_each(hay, |p, s, e| got.push((p, s, e)));
        got.sort();
        got
    }

    fn patterns() -> Vec<Vec<u8>> {
        [
            "password", "pass", "SK", "Q~", "token", "_key", "key", "密码", "sk-", "a", "word",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect()
    }

    #[test]
    fn finds_what_a_brute_force_search_finds() {
        let pats = patterns();
        let kw = Keywords::new(&pats).unwrap().unwrap();
        for hay in [
            &b"my password is pass; token=abc _key SK Q~"[..],
            "数据库密码: x SK".as_bytes(),
            b"SK",
            b"",
            b"nothing to see here, move along",
        ] {
            assert_eq!(
                found(&kw, hay),
                naive(&pats, hay),
                "{:?}",
                String::from_utf8_lossy(hay)
            );
        }
    }

    /// Long enough for the lanes: keywords at, across and right after every lane
    /// boundary, and at both ends, are each found once.
    #[test]
    fn lanes_lose_and_double_nothing() {
        let pats = patterns();
        let kw = Keywords::new(&pats).unwrap().unwrap();
        let n = LANES * MIN_LANE * 2 + 7;
        let lane = n / LANES;
        let mut hay = vec![b'.'; n];
        let mut put = |at: usize, w: &[u8]| hay[at..at + w.len()].copy_from_slice(w);
        put(0, b"password");
        put(n - 8, b"password");
        for k in 1..LANES {
            let b = k * lane;
            put(b - 20, b"token");
            put(b - 4, b"password"); // across the boundary
            put(b + 4, b"SK");
            put(b + 8, "密码".as_bytes());
        }
        put(lane * LANES - 1, b"Q~"); // across the end of the last lane proper
        assert_eq!(found(&kw, &hay), naive(&pats, &hay));
    }

    #[test]
    fn no_keywords_no_automaton() {
        assert!(Keywords::new(&[]).unwrap().is_none());
    }
}
