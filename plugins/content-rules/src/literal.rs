//! The literal prefilter: which patterns can possibly match a text, found in one pass.
//!
//! Every pattern is mined for a *required* set of literal strings: any match contains
//! at least one of them. Strings are in a normalized alphabet ([`norm`]: ASCII letters
//! lowercased, ASCII digits all `0`, ASCII whitespace all a space, other bytes kept),
//! so `(?i)falcon[- ]?\d+` requires one of `falcon0`, `falcon-0`, `falcon 0` and
//! `\d{3}-\d{4}` requires `000-0000`. Normalizing is byte-for-byte, so positions in the
//! normalized text are positions in the text. [`Prefilter`] looks for all patterns'
//! strings at once; only patterns with a hit (or without any required string) are
//! compiled and run.

use crate::syntax::{Ast, Item, Node, Perl};
use crate::vm::has_case;

/// Most strings in one literal set.
const MAX_SET: usize = 8;
/// Longest string in a literal set, in bytes.
const MAX_LEN: usize = 24;

/// A set of normalized strings.
pub type Set = Vec<Vec<u8>>;

/// The normalized form of a byte.
#[inline]
pub fn norm(b: u8) -> u8 {
    NORM[b as usize]
}

static NORM: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = match b {
            b'A'..=b'Z' => b + 32,
            b'0'..=b'9' => b'0',
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => b' ',
            _ => b,
        };
        i += 1;
    }
    t
};

/// `text` normalized into `out` (cleared first).
pub fn normalize_into(text: &str, out: &mut Vec<u8>) {
    out.clear();
    out.extend(text.bytes().map(norm));
}

/// What a keyword or phrase ([`crate::syntax::phrase`]) requires: normalized strings
/// from its words (a word's longest piece between non-ASCII characters that have other
/// cases), all of which every match contains: the first word's and the longest other
/// word's. The flag tells whether every match starts where the first string is found.
pub fn phrase_required(phrase: &str) -> (Set, bool) {
    let mut words: Set = Vec::new();
    let mut anchored = false;
    for (i, word) in phrase.split_whitespace().enumerate() {
        let mut best: Vec<u8> = Vec::new();
        let mut cur: Vec<u8> = Vec::with_capacity(word.len());
        let mut first_piece = true;
        for c in word.chars() {
            if !c.is_ascii() && has_case(c) {
                if i == 0 && first_piece {
                    anchored = !cur.is_empty();
                }
                if cur.len() > best.len() || (i == 0 && first_piece && !cur.is_empty()) {
                    best = std::mem::take(&mut cur);
                }
                cur.clear();
                first_piece = false;
            } else if c.is_ascii() {
                cur.push(norm(c as u8));
            } else {
                let mut buf = [0u8; 4];
                cur.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
        if i == 0 && first_piece {
            anchored = !cur.is_empty();
        }
        if cur.len() > best.len() && !(i == 0 && anchored && !best.is_empty()) {
            best = cur;
        }
        best.truncate(MAX_LEN);
        if !best.is_empty() {
            words.push(best);
        } else if i == 0 {
            anchored = false;
        }
    }
    // The prefilter looks for the first word (where matches start) and the longest
    // other one; a short first word (common bigrams are slow to look for) is dropped
    // for a longer one.
    let Some(first) = words.first().cloned() else {
        return (words, false);
    };
    let longest = words[1..].iter().max_by_key(|w| w.len()).cloned();
    words.clear();
    match longest {
        Some(l) if first.len() < 4 && l.len() >= 4 => {
            words.push(l);
            anchored = false;
        }
        Some(l) if l.len() >= 4 => words.extend([first, l]),
        _ => words.push(first),
    }
    (words, anchored)
}

/// A string in the [`Miner`]'s arena.
#[derive(Clone, Copy, Debug, Default)]
struct Str {
    at: u16,
    len: u8,
}

/// Arena offsets past this poison the result (see [`Miner::overflow`]).
const ARENA_MAX: usize = u16::MAX as usize - 2 * MAX_LEN;

/// A small set of strings, by value (no allocation while mining).
#[derive(Clone, Copy, Debug)]
struct Lits {
    n: u8,
    s: [Str; MAX_SET],
}

impl Lits {
    fn strs(&self) -> &[Str] {
        &self.s[..self.n as usize]
    }

    /// How useful the set is as a requirement: its shortest string's length (0 =
    /// useless).
    fn quality(&self) -> usize {
        self.strs()
            .iter()
            .map(|s| s.len as usize)
            .min()
            .unwrap_or(0)
    }
}

/// The set holding only the empty string.
const EMPTY: Lits = Lits {
    n: 1,
    s: [Str { at: 0, len: 0 }; MAX_SET],
};

/// What a node tells about the literals of its matches.
#[derive(Clone, Copy, Debug, Default)]
struct Info {
    /// Every match is one of these strings.
    exact: Option<Lits>,
    /// Every match starts with one of these.
    prefix: Option<Lits>,
    /// Every match ends with one of these.
    suffix: Option<Lits>,
    /// Every match contains one of these (the best such set found).
    inner: Option<Lits>,
}

fn exact(set: Lits) -> Info {
    Info {
        exact: Some(set),
        ..Info::default()
    }
}

/// Keeps the better of `best` and `cand`: longer shortest string, then fewer strings.
fn consider(best: &mut Option<Lits>, cand: Option<Lits>) {
    let Some(cand) = cand else { return };
    let q = cand.quality();
    if q == 0 {
        return;
    }
    let better = match best {
        None => true,
        Some(b) => {
            let qb = b.quality();
            q > qb || (q == qb && cand.n < b.n)
        }
    };
    if better {
        *best = Some(cand);
    }
}

/// The best requirement of a node: its inner, exact, prefix or suffix set.
fn best_of(i: &Info) -> Option<Lits> {
    let mut best = None;
    consider(&mut best, i.inner);
    consider(&mut best, i.exact);
    consider(&mut best, i.prefix);
    consider(&mut best, i.suffix);
    best
}

/// The set of strings some match of the pattern must contain, or `None` when no such
/// set was found (the pattern must then always be run).
pub fn required(ast: &Ast) -> Option<Set> {
    required_with(ast, &mut Vec::new())
}

/// [`required`], with a scratch buffer to reuse.
pub fn required_with(ast: &Ast, scratch: &mut Vec<u8>) -> Option<Set> {
    if let Some(simple) = simple_required(ast) {
        return simple;
    }
    scratch.clear();
    let mut m = Miner {
        ast,
        arena: std::mem::take(scratch),
        overflow: false,
    };
    let info = m.info(ast.root);
    let out = best_of(&info)
        .filter(|_| !m.overflow)
        .map(|best| best.strs().iter().map(|s| m.bytes(*s).to_vec()).collect());
    *scratch = m.arena;
    out
}

/// The fast path for the most common shape, literal text between zero-width
/// assertions (`(?i)\bssn\b`): the whole text, when no character needs folding beyond
/// ASCII. `None` when the pattern has another shape.
fn simple_required(ast: &Ast) -> Option<Option<Set>> {
    let lits = |id: u32| match ast.nodes[id as usize] {
        Node::Lits { start, end, fold } => Some(Some((start, end, fold))),
        Node::Look { .. } => Some(None),
        _ => None,
    };
    let kids: &[u32] = match ast.nodes[ast.root as usize] {
        Node::Concat { start, end } => ast.kids(start, end),
        Node::Lits { .. } => std::slice::from_ref(&ast.root),
        _ => return None,
    };
    let mut out = Vec::new();
    for &k in kids {
        if let Some((start, end, fold)) = lits(k)? {
            for &c in &ast.chars[start as usize..end as usize] {
                if c.is_ascii() {
                    out.push(norm(c as u8));
                } else if fold && has_case(c) {
                    return None;
                } else {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }
    if out.len() > MAX_LEN {
        // Any part of a required string is required.
        out.truncate(MAX_LEN);
    }
    Some((!out.is_empty()).then(|| vec![out]))
}

/// Computes [`Info`]s bottom-up, all strings in one arena.
struct Miner<'a> {
    ast: &'a Ast,
    arena: Vec<u8>,
    /// The arena outgrew [`Str`] offsets: the result is not trusted.
    overflow: bool,
}

impl Miner<'_> {
    fn bytes(&self, s: Str) -> &[u8] {
        &self.arena[s.at as usize..s.at as usize + s.len as usize]
    }

    /// The offset for a string about to be appended.
    fn at(&mut self) -> u16 {
        if self.arena.len() > ARENA_MAX {
            self.overflow = true;
            self.arena.clear();
        }
        self.arena.len() as u16
    }

    fn push(&mut self, b: &[u8]) -> Str {
        let at = self.at();
        self.arena.extend_from_slice(b);
        Str {
            at,
            len: b.len() as u8,
        }
    }

    /// Adds `s` to `set` unless present; false when the set is full.
    fn insert(&self, set: &mut Lits, s: Str) -> bool {
        if set.strs().iter().any(|&t| self.bytes(t) == self.bytes(s)) {
            return true;
        }
        if set.n as usize == MAX_SET {
            return false;
        }
        set.s[set.n as usize] = s;
        set.n += 1;
        true
    }

    /// Every `a` followed by every `b`, if that stays within the limits.
    fn cross(&mut self, a: &Lits, b: &Lits) -> Option<Lits> {
        if a.n as usize * b.n as usize > MAX_SET {
            return None;
        }
        // Concatenating with the empty string changes nothing.
        if a.n == 1 && a.s[0].len == 0 {
            return Some(*b);
        }
        if b.n == 1 && b.s[0].len == 0 {
            return Some(*a);
        }
        let mut out = Lits { n: 0, ..EMPTY };
        for &x in a.strs() {
            for &y in b.strs() {
                if x.len as usize + y.len as usize > MAX_LEN {
                    return None;
                }
                let at = self.at();
                if self.overflow {
                    return None;
                }
                let (xa, ya) = (x.at as usize, y.at as usize);
                self.arena.extend_from_within(xa..xa + x.len as usize);
                self.arena.extend_from_within(ya..ya + y.len as usize);
                let s = Str {
                    at,
                    len: x.len + y.len,
                };
                self.insert(&mut out, s);
            }
        }
        Some(out)
    }

    fn union(&self, a: &Lits, b: &Lits) -> Option<Lits> {
        let mut out = *a;
        for &s in b.strs() {
            if !self.insert(&mut out, s) {
                return None;
            }
        }
        Some(out)
    }

    fn info(&mut self, id: u32) -> Info {
        let ast = self.ast;
        match ast.nodes[id as usize] {
            Node::Empty | Node::Look { .. } => exact(EMPTY),
            Node::Any { .. } => Info::default(),
            Node::Lits { start, end, fold } => {
                self.lits(&ast.chars[start as usize..end as usize], fold)
            }
            Node::Class {
                start,
                end,
                negated,
                fold,
            } => self
                .class(&ast.items[start as usize..end as usize], negated, fold)
                .map(exact)
                .unwrap_or_default(),
            Node::Concat { start, end } => {
                let mut c = Concat::new();
                for &k in ast.kids(start, end) {
                    let i = self.info(k);
                    c.add(self, i);
                }
                c.finish()
            }
            Node::Alt { start, end } => {
                let kids = ast.kids(start, end);
                let first = self.info(kids[0]);
                let mut acc = Alt::new(&first);
                for &k in &kids[1..] {
                    let i = self.info(k);
                    acc.add(self, &i);
                }
                acc.finish()
            }
            Node::Repeat {
                child, min, max, ..
            } => {
                let child = self.info(child);
                self.repeat(child, min, max)
            }
        }
    }

    /// A run of literal characters: exact when every character has one form, else the
    /// pieces between the characters that do not.
    fn lits(&mut self, chars: &[char], fold: bool) -> Info {
        let mut c = Concat::new();
        let mut piece = self.at() as usize;
        let mut broken = false;
        for &ch in chars {
            if ch.is_ascii() {
                self.arena.push(norm(ch as u8));
            } else if fold && has_case(ch) {
                let i = self.run(piece);
                c.add(self, i);
                c.add(self, Info::default());
                piece = self.at() as usize;
                broken = true;
            } else {
                let mut buf = [0u8; 4];
                self.arena
                    .extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
        }
        let i = self.run(piece);
        if !broken {
            return i;
        }
        c.add(self, i);
        c.finish()
    }

    /// The literal string `arena[from..]`: exact, or when longer than [`MAX_LEN`], its
    /// head and tail.
    fn run(&mut self, from: usize) -> Info {
        if self.arena.len() > u16::MAX as usize {
            self.overflow = true;
            return Info::default();
        }
        let len = self.arena.len() - from;
        if len <= MAX_LEN {
            return exact(Lits {
                s: [Str {
                    at: from as u16,
                    len: len as u8,
                }; MAX_SET],
                ..EMPTY
            });
        }
        let head = Str {
            at: from as u16,
            len: MAX_LEN as u8,
        };
        let tail = Str {
            at: (self.arena.len() - MAX_LEN) as u16,
            len: MAX_LEN as u8,
        };
        let one = |s| Lits {
            s: [s; MAX_SET],
            ..EMPTY
        };
        Info {
            exact: None,
            prefix: Some(one(head)),
            suffix: Some(one(tail)),
            inner: Some(one(head)),
        }
    }

    /// A small class: the normalized forms of its members, when there are few.
    fn class(&mut self, items: &[Item], negated: bool, fold: bool) -> Option<Lits> {
        if negated {
            return None;
        }
        let mut out = Lits { n: 0, ..EMPTY };
        for it in items {
            match *it {
                Item::Perl {
                    class: Perl::Digit,
                    negated: false,
                    ..
                } => {
                    let s = self.push(b"0");
                    self.insert(&mut out, s);
                }
                Item::Perl { .. } => return None,
                Item::Range(lo, hi) => {
                    if (hi as u32) - (lo as u32) > 16 && !(lo >= '0' && hi <= '9') {
                        return None;
                    }
                    for c in lo..=hi {
                        let s = if c.is_ascii() {
                            self.push(&[norm(c as u8)])
                        } else if fold && has_case(c) {
                            return None;
                        } else {
                            let mut buf = [0u8; 4];
                            self.push(c.encode_utf8(&mut buf).as_bytes())
                        };
                        if !self.insert(&mut out, s) || out.n > 4 {
                            return None;
                        }
                    }
                }
            }
        }
        (out.n > 0).then_some(out)
    }

    fn repeat(&mut self, child: Info, min: u32, max: Option<u32>) -> Info {
        if min == 0 {
            if max == Some(1)
                && let Some(ex) = &child.exact
            {
                return self.union(&EMPTY, ex).map(exact).unwrap_or_default();
            }
            return Info::default();
        }
        let Some(ex) = child.exact else {
            return Info {
                exact: None,
                prefix: child.prefix,
                suffix: child.suffix,
                inner: best_of(&child),
            };
        };
        let mut pow = ex;
        let mut complete = true;
        for _ in 1..min {
            match self.cross(&pow, &ex) {
                Some(p) => pow = p,
                None => {
                    complete = false;
                    break;
                }
            }
        }
        if complete && max == Some(min) {
            return exact(pow);
        }
        Info {
            exact: None,
            prefix: Some(pow),
            suffix: Some(pow),
            inner: Some(pow),
        }
    }
}

/// Folds the children of a concatenation into an [`Info`].
struct Concat {
    /// Exact strings of the current run of children.
    run: Lits,
    /// Whether the run began at the concatenation's start.
    from_start: bool,
    all_exact: bool,
    prefix: Option<Lits>,
    best: Option<Lits>,
}

impl Concat {
    fn new() -> Self {
        Concat {
            run: EMPTY,
            from_start: true,
            all_exact: true,
            prefix: None,
            best: None,
        }
    }

    fn add(&mut self, m: &mut Miner, k: Info) {
        if let Some(ex) = k.exact {
            if let Some(p) = m.cross(&self.run, &ex) {
                self.run = p;
                return;
            }
            consider(&mut self.best, Some(self.run));
            if self.from_start {
                self.prefix = Some(self.run);
            }
            self.run = ex;
            self.from_start = false;
            self.all_exact = false;
            return;
        }
        self.all_exact = false;
        let joined = k
            .prefix
            .and_then(|p| m.cross(&self.run, &p))
            .unwrap_or(self.run);
        consider(&mut self.best, Some(joined));
        consider(&mut self.best, best_of(&k));
        if self.from_start {
            self.prefix = Some(joined);
            self.from_start = false;
        }
        self.run = k.suffix.unwrap_or(EMPTY);
    }

    fn finish(mut self) -> Info {
        consider(&mut self.best, Some(self.run));
        if self.all_exact {
            return Info {
                exact: Some(self.run),
                inner: self.best,
                ..Info::default()
            };
        }
        Info {
            exact: None,
            prefix: self.prefix,
            suffix: Some(self.run),
            inner: self.best,
        }
    }
}

/// Folds the alternatives of an alternation into an [`Info`].
struct Alt {
    exact: Option<Lits>,
    prefix: Option<Lits>,
    suffix: Option<Lits>,
    inner: Option<Lits>,
}

impl Alt {
    fn new(first: &Info) -> Self {
        Alt {
            exact: first.exact,
            prefix: first.prefix.or(first.exact),
            suffix: first.suffix.or(first.exact),
            inner: best_of(first).filter(|s| s.quality() > 0),
        }
    }

    fn add(&mut self, m: &mut Miner, k: &Info) {
        let merge =
            |acc: Option<Lits>, s: Option<Lits>, m: &Miner| -> Option<Lits> { m.union(&acc?, &s?) };
        self.exact = merge(self.exact, k.exact, m);
        self.prefix = merge(self.prefix, k.prefix.or(k.exact), m);
        self.suffix = merge(self.suffix, k.suffix.or(k.exact), m);
        self.inner = merge(self.inner, best_of(k).filter(|s| s.quality() > 0), m);
    }

    fn finish(self) -> Info {
        if self.exact.is_some() {
            return Info {
                exact: self.exact,
                ..Info::default()
            };
        }
        Info {
            exact: None,
            prefix: self.prefix,
            suffix: self.suffix,
            inner: self.inner,
        }
    }
}

/// Finds which of many owners' literal strings occur in a normalized text, and where,
/// in one pass: strings of four bytes or more are found through a hash of their first
/// four bytes, shorter ones through their first two or one.
#[derive(Debug, Default)]
pub struct Prefilter<'a> {
    /// Hash of the first four bytes of long strings -> bit (16384 bits).
    quads: Vec<u64>,
    /// Hash of the first two bytes of two- and three-byte strings -> bit (4096 bits).
    pairs: Vec<u64>,
    /// Single-byte strings.
    singles: [u64; 4],
    /// `(hash, string, owner)` of long strings, sorted by hash.
    long: Vec<(u16, &'a [u8], u32)>,
    /// `(hash, string, owner)` of two- and three-byte strings, sorted by hash.
    short: Vec<(u16, &'a [u8], u32)>,
    /// `(byte, owner)` of single-byte strings, sorted.
    one: Vec<(u8, u32)>,
}

#[inline]
fn pair_hash(x: u16) -> u16 {
    (x.wrapping_mul(0x9E37) >> 4) & 0x0FFF
}

#[inline]
fn quad_hash(x: u32) -> u16 {
    (x.wrapping_mul(0x9E37_79B1) >> 18) as u16
}

#[inline]
fn bit(set: &[u64], h: usize) -> bool {
    set[h >> 6] & (1 << (h & 63)) != 0
}

impl<'a> Prefilter<'a> {
    /// A prefilter for `(owner, string)` pairs. Empty strings are ignored.
    pub fn new(strings: impl IntoIterator<Item = (u32, &'a [u8])>) -> Self {
        let mut p = Prefilter {
            quads: vec![0; 256],
            pairs: vec![0; 64],
            singles: [0; 4],
            long: Vec::new(),
            short: Vec::new(),
            one: Vec::new(),
        };
        for (owner, s) in strings {
            match s.len() {
                0 => {}
                1 => {
                    p.singles[(s[0] >> 6) as usize] |= 1 << (s[0] & 63);
                    p.one.push((s[0], owner));
                }
                2 | 3 => {
                    let h = pair_hash(u16::from_le_bytes([s[0], s[1]]));
                    p.pairs[(h >> 6) as usize] |= 1 << (h & 63);
                    p.short.push((h, s, owner));
                }
                _ => {
                    let h = quad_hash(u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
                    p.quads[(h >> 6) as usize] |= 1 << (h & 63);
                    p.long.push((h, s, owner));
                }
            }
        }
        p.long.sort_unstable_by_key(|e| e.0);
        p.short.sort_unstable_by_key(|e| e.0);
        p.one.sort_unstable();
        p
    }

    /// Appends to `found` an `(owner, offset)` pair for every occurrence of every
    /// string in `text` (in no particular order).
    pub fn scan(&self, text: &[u8], found: &mut Vec<(u32, u32)>) {
        let n = text.len();
        let (quads, pairs) = (!self.long.is_empty(), !self.short.is_empty());
        if n >= 4 && (quads || pairs) {
            for (i, w) in text.windows(4).enumerate() {
                let x = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                if quads {
                    let h = quad_hash(x);
                    if bit(&self.quads, h as usize) {
                        Self::check(&self.long, h, text, i, found);
                    }
                }
                if pairs {
                    let h = pair_hash(x as u16);
                    if bit(&self.pairs, h as usize) {
                        Self::check(&self.short, h, text, i, found);
                    }
                }
            }
        }
        if pairs && n >= 2 {
            for i in n.saturating_sub(3)..n - 1 {
                let h = pair_hash(u16::from_le_bytes([text[i], text[i + 1]]));
                if bit(&self.pairs, h as usize) {
                    Self::check(&self.short, h, text, i, found);
                }
            }
        }
        if !self.one.is_empty() {
            for (i, &b) in text.iter().enumerate() {
                if bit(&self.singles, b as usize) {
                    let from = self.one.partition_point(|e| e.0 < b);
                    for &(eb, owner) in &self.one[from..] {
                        if eb != b {
                            break;
                        }
                        found.push((owner, i as u32));
                    }
                }
            }
        }
    }

    fn check(
        entries: &[(u16, &[u8], u32)],
        h: u16,
        text: &[u8],
        i: usize,
        found: &mut Vec<(u32, u32)>,
    ) {
        let from = entries.partition_point(|e| e.0 < h);
        for &(eh, s, owner) in &entries[from..] {
            if eh != h {
                break;
            }
            if text[i..].starts_with(s) {
                found.push((owner, i as u32));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::parse;

    fn req(p: &str) -> Option<Vec<String>> {
        required(&parse(p).unwrap()).map(|s| {
            let mut v: Vec<String> = s
                .into_iter()
                .map(|b| String::from_utf8(b).unwrap())
                .collect();
            v.sort();
            v
        })
    }

    #[test]
    fn required_literals() {
        assert_eq!(req("(?i)confidential").unwrap(), ["confidential"]);
        assert_eq!(req(r"\b\d{3}-\d{4}\b").unwrap(), ["000-0000"]);
        assert_eq!(
            req(r"(?i)falcon[- ]?\d+").unwrap(),
            ["falcon 0", "falcon-0", "falcon0"]
        );
        assert_eq!(req(r"\b[A-Z]{2,4}-\d{3,6}\b").unwrap(), ["-000"]);
        assert_eq!(
            req("merger|acquisition").unwrap(),
            ["acquisition", "merger"]
        );
        assert_eq!(req(r"AKIA[0-9A-Z]{16}").unwrap(), ["akia"]);
        assert_eq!(req(r"\b[\w.+-]+@acme\.com\b").unwrap(), ["@acme.com"]);
        assert_eq!(
            req(r"(?i)\bproject\s+(falcon|osprey|kestrel)\b").unwrap(),
            ["project"]
        );
        assert_eq!(req(r"x(?:ab|cd)y").unwrap(), ["xaby", "xcdy"]);
        assert_eq!(req(r"(?i)müller").unwrap(), ["ller"]);
        assert_eq!(req(r"müller").unwrap(), ["müller"]);
        assert_eq!(req(r"[A-Z]+"), None);
        assert_eq!(req(r".*"), None);
        assert_eq!(req(r"a|.*"), None);
        assert_eq!(req(r"(?:abc)?"), None);
        assert_eq!(req(r"(abc){2}").unwrap(), ["abcabc"]);
    }

    #[test]
    fn prefilter_finds_owners() {
        let sets: Vec<Set> = vec![
            vec![b"falcon".to_vec()],
            vec![b"000-0000".to_vec()],
            vec![b"-".to_vec()],
            vec![b"zzz".to_vec(), b"secret".to_vec()],
        ];
        let p = Prefilter::new(
            sets.iter()
                .enumerate()
                .flat_map(|(i, s)| s.iter().map(move |x| (i as u32, x.as_slice()))),
        );
        let mut text = Vec::new();
        normalize_into("Call 555-0199 about the SECRET plan", &mut text);
        let mut found = Vec::new();
        p.scan(&text, &mut found);
        found.sort_unstable();
        assert_eq!(found, [(1, 5), (2, 8), (3, 24)]);
    }
}
