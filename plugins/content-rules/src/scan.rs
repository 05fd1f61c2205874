//! Scanning text parts with every matcher in scope, in one prefilter pass per part.

use crate::config::{Config, InjectionAction, Phrase, SetRef, Tables};
use crate::injection::BUILTIN;
use crate::literal::{Prefilter, normalize_into};
use crate::syntax;
use crate::vm::Program;
use tollgate_guest::{Role, TextPart};

/// Matches counted per matcher stop here.
const COUNT_LIMIT: u32 = 10_000;

/// Prefilter owner ids are `matcher * PARTS + part`.
const PARTS: u32 = 8;

/// What a matcher's matches are recorded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A keyword of `rules[n]`.
    Keyword(usize),
    /// A pattern of `rules[n]`.
    Pattern(usize),
    /// A prompt-injection phrase.
    Injection,
}

/// Where a matcher's program comes from.
enum Source<'a> {
    Pattern(&'a str),
    Phrase(&'a str),
    Builtin(&'static str),
}

/// The literals a matcher requires.
enum Req<'a> {
    /// None found: the matcher runs over every part.
    None,
    /// At least one of these.
    Any(SetRef<'a>),
    /// At least one of these.
    Static(&'static [&'static str]),
    /// All of these (a phrase's words); matches start where the first is found when
    /// the flag is set.
    All(SetRef<'a>, bool),
}

struct Matcher<'a> {
    owner: Owner,
    source: Source<'a>,
    req: Req<'a>,
}

impl<'a> Matcher<'a> {
    fn phrase(t: &'a Tables, owner: Owner, k: &'a Phrase) -> Self {
        Matcher {
            owner,
            source: Source::Phrase(t.str(k.text)),
            req: if k.words.is_empty() {
                Req::None
            } else {
                Req::All(t.set(k.words), k.anchored)
            },
        }
    }

    /// `(part, string)` pairs the prefilter looks for.
    fn strings(&self) -> Vec<(u32, &'a [u8])> {
        match self.req {
            Req::None => Vec::new(),
            Req::Any(s) => s.iter().map(|s| (0, s)).collect(),
            Req::Static(s) => s.iter().map(|s| (0, s.as_bytes())).collect(),
            Req::All(s, _) => (0..).zip(s.iter()).collect(),
        }
    }
}

/// Match counts per rule (keywords, patterns) and for injection.
#[derive(Debug, Default)]
pub struct Counts {
    /// `(keyword matches, pattern matches)` per rule, by index.
    pub rules: Vec<(u32, u32)>,
    /// Injection phrase matches.
    pub injection: u32,
}

/// Scans `parts` with the rules `in_scope` (by index) and, when `injection`, the
/// prompt-injection phrases (on user and tool parts only).
pub fn scan(config: &Config, in_scope: &[usize], injection: bool, parts: &[TextPart]) -> Counts {
    let mut matchers: Vec<Matcher> = Vec::new();
    for &i in in_scope {
        let r = &config.rules[i];
        matchers.extend(
            config
                .keywords(r)
                .iter()
                .map(|k| Matcher::phrase(config, Owner::Keyword(i), k)),
        );
        matchers.extend(config.patterns_of(r).iter().map(|p| Matcher {
            owner: Owner::Pattern(i),
            source: Source::Pattern(config.str(p.source)),
            req: p.req.map_or(Req::None, |r| Req::Any(config.set(r))),
        }));
    }
    if injection
        && let Some(inj) = &config.injection
        && inj.action != InjectionAction::Off
    {
        if inj.builtin {
            matchers.extend(BUILTIN.iter().map(|&(p, lits)| Matcher {
                owner: Owner::Injection,
                source: Source::Builtin(p),
                req: if lits.is_empty() {
                    Req::None
                } else {
                    Req::Static(lits)
                },
            }));
        }
        matchers.extend(
            config
                .injection_phrases(inj)
                .iter()
                .map(|k| Matcher::phrase(config, Owner::Injection, k)),
        );
    }
    let mut counts = Counts {
        rules: vec![(0, 0); config.rules.len()],
        injection: 0,
    };
    if matchers.is_empty() {
        return counts;
    }
    let mut strings = Vec::new();
    for (i, m) in matchers.iter().enumerate() {
        let base = i as u32 * PARTS;
        strings.extend(m.strings().into_iter().map(|(part, s)| (base + part, s)));
    }
    let prefilter = Prefilter::new(strings);
    let mut programs: Vec<Option<(Program, Option<u32>)>> =
        (0..matchers.len()).map(|_| None).collect();
    let always: Vec<u32> = (0..matchers.len() as u32)
        .filter(|&i| matches!(matchers[i as usize].req, Req::None))
        .collect();
    let mut norm = Vec::new();
    let mut found = Vec::new();
    let mut windows = Vec::new();
    for part in parts {
        let user_text = matches!(part.role, Role::User | Role::Tool);
        normalize_into(&part.text, &mut norm);
        found.clear();
        prefilter.scan(&norm, &mut found);
        // Matchers without literals run over the whole part.
        found.extend(always.iter().map(|&i| (i * PARTS, u32::MAX)));
        found.sort_unstable();
        let mut rest = &found[..];
        while let Some(&(id, _)) = rest.first() {
            let i = id / PARTS;
            let len = rest.iter().take_while(|o| o.0 / PARTS == i).count();
            let (group, tail) = rest.split_at(len);
            rest = tail;
            let m = &matchers[i as usize];
            if m.owner == Owner::Injection && !user_text {
                continue;
            }
            windows.clear();
            if group[0].1 == u32::MAX {
                windows.push((0, part.text.len()));
            } else if let Req::All(words, anchored) = m.req {
                // Every word must have been found.
                let mut seen = 0u32;
                for &(id, _) in group {
                    seen |= 1 << (id % PARTS);
                }
                if seen.count_ones() as usize != words.len() {
                    continue;
                }
                if anchored {
                    for &(id, at) in group.iter().filter(|o| o.0 % PARTS == 0) {
                        let _ = id;
                        let at = at as usize;
                        if windows.last() != Some(&(at, at)) {
                            windows.push((at, at));
                        }
                    }
                } else {
                    let last = group.iter().map(|o| o.1 as usize).max().unwrap_or(0);
                    windows.push((0, last.min(part.text.len())));
                }
            }
            let (prog, max_len) = programs[i as usize].get_or_insert_with(|| compile(&m.source));
            if windows.is_empty() {
                spawn_windows(&part.text, group, *max_len, &mut windows);
            }
            let n = prog.count_in(&part.text, &windows, COUNT_LIMIT);
            if n == 0 {
                continue;
            }
            match m.owner {
                Owner::Keyword(r) => counts.rules[r].0 = counts.rules[r].0.saturating_add(n),
                Owner::Pattern(r) => counts.rules[r].1 = counts.rules[r].1.saturating_add(n),
                Owner::Injection => counts.injection = counts.injection.saturating_add(n),
            }
        }
    }
    counts
}

/// Where the matches containing one of a pattern's literals, found at `found` offsets
/// (sorted), can start: at most `max_len` bytes before each (anywhere before it when
/// the pattern is unbounded), and no later. Merged, in order.
pub fn spawn_windows(
    text: &str,
    found: &[(u32, u32)],
    max_len: Option<u32>,
    out: &mut Vec<(usize, usize)>,
) {
    let Some(m) = max_len else {
        let last = found.iter().map(|f| f.1 as usize).max().unwrap_or(0);
        out.push((0, last.min(text.len())));
        return;
    };
    let start = out.len();
    for &(_, at) in found {
        let mut from = at.saturating_sub(m) as usize;
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        out.push((from, (at as usize).min(text.len())));
    }
    // Strings of one set are found in separate passes: sort, then merge.
    out[start..].sort_unstable();
    let mut w = start;
    for r in start..out.len() {
        let (from, to) = out[r];
        if w > start && from <= out[w - 1].1 + 1 {
            out[w - 1].1 = out[w - 1].1.max(to);
        } else {
            out[w] = (from, to);
            w += 1;
        }
    }
    out.truncate(w);
}

/// The program for a matcher, and its longest match in bytes (none: unbounded).
fn compile(source: &Source) -> (Program, Option<u32>) {
    let ast = match source {
        // Checked when the config was read; the fallback never matches.
        Source::Pattern(p) => syntax::parse(p).unwrap_or_else(|_| syntax::phrase("\u{0}")),
        Source::Phrase(p) => syntax::phrase(p),
        Source::Builtin(p) => syntax::parse(p).unwrap_or_else(|_| syntax::phrase("\u{0}")),
    };
    (Program::new(&ast), ast.max_len())
}
