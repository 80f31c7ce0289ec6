//! Where the rules' keywords occur in a haystack: every occurrence of every keyword,
//! overlapping ones included.
//!
//! The automaton is the `aho-corasick` crate's DFA over all keywords and their case forms
//! (Standard semantics: each state lists every keyword ending there). Walking a DFA costs
//! one table load per byte that depends on the load before it, so a single walk runs at
//! the latency of L1, not its throughput (~5 cycles a byte here, whatever the table's
//! size; with ~400 keywords it was the largest cost of a scan). Two things are ours:
//! - the haystack is cut into four stretches walked in lock-step, whose loads do not
//!   depend on each other and overlap in the pipeline (the crate's iterators walk one);
//! - the walk reads a flat copy of the crate's transitions (byte → class → next state,
//!   match states numbered last): one compare tells "no match in any lane", where the
//!   crate's `Automaton` trait costs a few more instructions per byte.
//!
//! (A regex-automata dense DFA walks in fewer instructions too but took 1.3 s to build for
//! these keywords, at every start.)

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};
use std::collections::HashMap;

/// Below this many bytes per lane one walk is as fast.
const MIN_LANE: usize = 4096;

/// A keyword automaton, flattened for the walk.
pub(super) struct Keywords {
    /// Next state, indexed by `state + class[byte]`; states are premultiplied by the
    /// number of classes.
    next: Vec<u32>,
    class: [u8; 256],
    start: u32,
    /// States at or above this one end a keyword.
    first_match: u32,
    /// For each match state (`(state - first_match) / classes`): `(pattern, length)` of
    /// every keyword ending there.
    matches: Vec<Vec<(u32, u32)>>,
    classes: u32,
    longest: usize,
}

impl Keywords {
    /// `None` when there are no keywords.
    pub fn new(patterns: &[Vec<u8>]) -> Result<Option<Keywords>, aho_corasick::BuildError> {
        if patterns.is_empty() {
            return Ok(None);
        }
        // Case-sensitive on purpose (ASCII case folding makes the automaton larger);
        // words that need it come in several forms.
        let dfa = DFA::builder()
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .build(patterns)?;
        let start = dfa
            .start_state(Anchored::No)
            .expect("an unanchored DFA has an unanchored start state");
        // Every state reachable from the start, and its row of 256 successors.
        let mut order: Vec<StateID> = vec![start];
        let mut seen: HashMap<StateID, usize> = HashMap::from([(start, 0)]);
        let mut rows: Vec<[StateID; 256]> = Vec::new();
        let mut i = 0;
        while i < order.len() {
            let from = order[i];
            let row: [StateID; 256] =
                std::array::from_fn(|b| dfa.next_state(Anchored::No, from, b as u8));
            for &to in &row {
                seen.entry(to).or_insert_with(|| {
                    order.push(to);
                    order.len() - 1
                });
            }
            rows.push(row);
            i += 1;
        }
        // Bytes whose column is the same in every row share a class.
        let mut class = [0u8; 256];
        let mut columns: Vec<usize> = Vec::new(); // a representative byte per class
        for b in 0..256 {
            let same = columns
                .iter()
                .position(|&c| rows.iter().all(|r| r[c] == r[b]));
            class[b] = match same {
                Some(k) => k as u8,
                None => {
                    columns.push(b);
                    (columns.len() - 1) as u8
                }
            };
        }
        let classes = columns.len() as u32;
        // Number the states: those that end no keyword first, then those that do.
        let mut number = vec![0u32; order.len()];
        let (plain, ends): (Vec<usize>, Vec<usize>) =
            (0..order.len()).partition(|&k| !dfa.is_match(order[k]));
        let first_match = plain.len() as u32 * classes;
        let mut matches = Vec::with_capacity(ends.len());
        for (n, &k) in plain.iter().chain(&ends).enumerate() {
            number[k] = n as u32 * classes;
        }
        for &k in &ends {
            let s = order[k];
            matches.push(
                (0..dfa.match_len(s))
                    .map(|m| {
                        let p = dfa.match_pattern(s, m);
                        (p.as_u32(), dfa.pattern_len(p) as u32)
                    })
                    .collect(),
            );
        }
        let mut next = vec![0u32; order.len() * classes as usize];
        for (k, row) in rows.iter().enumerate() {
            for (c, &b) in columns.iter().enumerate() {
                next[(number[k] + c as u32) as usize] = number[seen[&row[b]]];
            }
        }
        Ok(Some(Keywords {
            next,
            class,
            start: number[0],
            first_match,
            matches,
            classes,
            longest: patterns.iter().map(Vec::len).max().unwrap_or(0),
        }))
    }

    #[inline(always)]
    fn step(&self, state: u32, byte: u8) -> u32 {
        self.next[(state + u32::from(self.class[usize::from(byte)])) as usize]
    }

    /// Call `f(pattern, start, end)` for every occurrence of every keyword (in no
    /// particular order).
    pub fn for_each(&self, hay: &[u8], mut f: impl FnMut(usize, usize, usize)) {
        let lane = hay.len() / 4;
        if lane < MIN_LANE {
            self.walk_from(self.start, hay, 0, hay.len(), usize::MAX, &mut f);
            return;
        }
        let [a, b, c, d] = std::array::from_fn(|k| &hay[k * lane..(k + 1) * lane]);
        // Four states in four locals (registers, not an array in memory, whose store and
        // reload would lengthen every chain), and one branch for all four match checks.
        let (mut s0, mut s1, mut s2, mut s3) = (self.start, self.start, self.start, self.start);
        for (i, (((&x0, &x1), &x2), &x3)) in a.iter().zip(b).zip(c).zip(d).enumerate() {
            s0 = self.step(s0, x0);
            s1 = self.step(s1, x1);
            s2 = self.step(s2, x2);
            s3 = self.step(s3, x3);
            if s0.max(s1).max(s2.max(s3)) >= self.first_match {
                for (k, s) in [s0, s1, s2, s3].into_iter().enumerate() {
                    self.report(s, k * lane + i + 1, usize::MAX, &mut f);
                }
            }
        }
        // Each lane walks on past its end by the longest keyword less one byte, for the
        // keywords that start in it and end in the next; the last lane to the end.
        for (k, state) in [s0, s1, s2, s3].into_iter().enumerate() {
            let from = (k + 1) * lane;
            let (until, starts_before) = if k == 3 {
                (hay.len(), usize::MAX)
            } else {
                ((from + self.longest - 1).min(hay.len()), from)
            };
            self.walk_from(state, hay, from, until, starts_before, &mut f);
        }
    }

    fn walk_from(
        &self,
        mut state: u32,
        hay: &[u8],
        from: usize,
        until: usize,
        starts_before: usize,
        f: &mut impl FnMut(usize, usize, usize),
    ) {
        for (i, &b) in hay[from..until].iter().enumerate() {
            state = self.step(state, b);
            if state >= self.first_match {
                self.report(state, from + i + 1, starts_before, f);
            }
        }
    }

    /// The keywords that end at `end` in `state` (none unless it is a match state) and
    /// start before `starts_before`.
    #[cold]
    fn report(
        &self,
        state: u32,
        end: usize,
        starts_before: usize,
        f: &mut impl FnMut(usize, usize, usize),
    ) {
        let Some(k) = state.checked_sub(self.first_match) else {
            return;
        };
        for &(pattern, len) in &self.matches[(k / self.classes) as usize] {
            let start = end - len as usize;
            if start < starts_before {
                f(pattern as usize, start, end);
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
        let n = 4 * MIN_LANE * 2 + 7;
        let lane = n / 4;
        let mut hay = vec![b'.'; n];
        let mut put = |at: usize, w: &[u8]| hay[at..at + w.len()].copy_from_slice(w);
        put(0, b"password");
        put(n - 8, b"password");
        for k in 1..4 {
            let b = k * lane;
            put(b - 20, b"token");
            put(b - 4, b"password"); // across the boundary
            put(b + 4, b"SK");
            put(b + 8, "密码".as_bytes());
        }
        put(lane * 4 - 1, b"Q~"); // across the end of the last lane proper
        assert_eq!(found(&kw, &hay), naive(&pats, &hay));
    }

    #[test]
    fn no_keywords_no_automaton() {
        assert!(Keywords::new(&[]).unwrap().is_none());
    }
}
