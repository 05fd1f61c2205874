//! Compiles an [`Ast`] into a Thompson NFA and runs it with a Pike VM: time linear in
//! the text for any pattern (at most one thread per instruction per position), no
//! backtracking. Leftmost-first match semantics, as in the `regex` crate.

use crate::syntax::{Ast, Item, Look, Node, Perl};

/// One VM instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inst {
    /// Exactly this character.
    Char(char),
    /// A character whose case-folded form is this (already folded) one.
    Fold(char),
    /// A character in class `n`.
    Class(u32),
    /// Any character.
    Any,
    /// Any character but `\n`.
    AnyNoNl,
    /// A zero-width assertion (ASCII word tests when the flag is set).
    Look(Look, bool),
    /// Try the first target, then the second.
    Split(u32, u32),
    /// Go to the target.
    Jmp(u32),
    /// A match.
    Match,
}

/// A class as compiled: members `items[start..end]`.
#[derive(Clone, Copy, Debug)]
struct Class {
    start: u32,
    end: u32,
    negated: bool,
    fold: bool,
}

/// A compiled pattern.
#[derive(Clone, Debug)]
pub struct Program {
    insts: Vec<Inst>,
    classes: Vec<Class>,
    items: Vec<Item>,
    /// Bytes a match can start with (only ASCII and UTF-8 lead bytes), when known.
    first: Option<[u64; 4]>,
}

/// The simple case fold of `c`: its lowercase form when that is one character and, for
/// a non-ASCII character, not ASCII (so `K` KELVIN SIGN stays itself).
pub fn fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut it = c.to_lowercase();
    match (it.next(), it.next()) {
        (Some(l), None) if !l.is_ascii() => l,
        _ => c,
    }
}

/// The simple uppercase form of a non-ASCII `c`, on the same terms as [`fold`].
fn upper(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let mut it = c.to_uppercase();
    match (it.next(), it.next()) {
        (Some(u), None) if !u.is_ascii() => u,
        _ => c,
    }
}

/// Whether `c` has another case (so a case-insensitive match must fold it).
pub fn has_case(c: char) -> bool {
    fold(c) != c || upper(c) != c
}

/// `\w`.
pub fn is_word(c: char, ascii: bool) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '_'
    } else {
        !ascii && c.is_alphanumeric()
    }
}

fn perl_matches(class: Perl, ascii: bool, c: char) -> bool {
    match class {
        Perl::Digit => c.is_ascii_digit(),
        Perl::Word => is_word(c, ascii),
        Perl::Space => {
            if ascii || c.is_ascii() {
                matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
            } else {
                c.is_whitespace()
            }
        }
    }
}

/// Whether any of `items` contains `c` (no folding, no negation).
pub fn items_contain(items: &[Item], c: char) -> bool {
    items.iter().any(|it| match *it {
        Item::Range(lo, hi) => lo <= c && c <= hi,
        Item::Perl {
            class,
            negated,
            ascii,
        } => perl_matches(class, ascii, c) != negated,
    })
}

/// Whether a class of `items` matches `c`.
pub fn class_matches(items: &[Item], negated: bool, fold_case: bool, c: char) -> bool {
    let mut hit = items_contain(items, c);
    if !hit && fold_case {
        let (l, u) = (fold(c), upper(c));
        hit = (l != c && items_contain(items, l)) || (u != c && items_contain(items, u));
    }
    hit != negated
}

impl Program {
    /// Compiles `ast` (which the parser has already size-checked).
    pub fn new(ast: &Ast) -> Self {
        let mut c = Compiler {
            ast,
            insts: Vec::with_capacity(ast.size as usize),
            classes: Vec::new(),
        };
        c.node(ast.root);
        c.insts.push(Inst::Match);
        let mut p = Program {
            insts: c.insts,
            classes: c.classes,
            items: ast.items.clone(),
            first: None,
        };
        p.first = p.first_bytes();
        p
    }

    /// Bytes a match can start with: `None` when any byte may (or the empty string
    /// matches), so no skipping is possible.
    fn first_bytes(&self) -> Option<[u64; 4]> {
        let mut set = [0u64; 4];
        let mut add = |b: u8| set[(b >> 6) as usize] |= 1 << (b & 63);
        let mut seen = vec![false; self.insts.len()];
        let mut stack = vec![0u32];
        while let Some(pc) = stack.pop() {
            if std::mem::replace(&mut seen[pc as usize], true) {
                continue;
            }
            match self.insts[pc as usize] {
                Inst::Char(c) => add(lead_byte(c)),
                Inst::Fold(c) => {
                    add(lead_byte(c));
                    add(lead_byte(upper(c)));
                    if !c.is_ascii() {
                        // Other non-ASCII characters may fold to it.
                        (0xC0..=0xFF).for_each(&mut add);
                    }
                }
                Inst::Class(n) => {
                    let cl = self.classes[n as usize];
                    let items = &self.items[cl.start as usize..cl.end as usize];
                    for b in 0..128u8 {
                        if class_matches(items, cl.negated, cl.fold, b as char) {
                            add(b);
                        }
                    }
                    // Conservatively: any non-ASCII character may be a member.
                    (0xC0..=0xFF).for_each(&mut add);
                }
                Inst::Any | Inst::AnyNoNl | Inst::Match => return None,
                Inst::Look(..) => stack.push(pc + 1),
                Inst::Jmp(t) => stack.push(t),
                Inst::Split(a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
            }
        }
        Some(set)
    }

    /// Counts non-overlapping matches in `text` (as `regex`'s `find_iter` would),
    /// stopping at `limit`.
    pub fn count(&self, text: &str, limit: u32) -> u32 {
        self.count_in(text, &[(0, text.len())], limit)
    }

    /// Like [`Program::count`] when every match starts inside one of `windows`:
    /// `(from, to)` byte ranges of possible starts (inclusive, `from` on a character
    /// boundary), sorted and disjoint. Matches may run past a window's end.
    pub fn count_in(&self, text: &str, windows: &[(usize, usize)], limit: u32) -> u32 {
        let mut vm = Vm::new(self.insts.len());
        let mut at = 0;
        let mut n = 0;
        let mut last_end = None;
        let next_char = |e: usize| e + text[e..].chars().next().map_or(1, char::len_utf8);
        for &(from, to) in windows {
            at = at.max(from);
            while at <= text.len() && at <= to && n < limit {
                let Some((s, e)) = self.find_at(&mut vm, text, at, to) else {
                    break;
                };
                if s == e && last_end == Some(e) {
                    // An empty match right after the previous match: skip a character.
                    at = next_char(e);
                    continue;
                }
                n += 1;
                last_end = Some(e);
                at = if e == s { next_char(e) } else { e };
            }
        }
        n
    }

    /// Whether `text` has a match.
    pub fn is_match(&self, text: &str) -> bool {
        self.count(text, 1) > 0
    }

    /// The leftmost-first match starting in `start..=spawn_end`.
    fn find_at(
        &self,
        vm: &mut Vm,
        text: &str,
        start: usize,
        spawn_end: usize,
    ) -> Option<(usize, usize)> {
        let bytes = text.as_bytes();
        let mut clist = std::mem::take(&mut vm.clist);
        let mut nlist = std::mem::take(&mut vm.nlist);
        clist.clear();
        let mut matched = None;
        let mut pos = start;
        loop {
            if matched.is_none() && pos <= spawn_end {
                if clist.is_empty() {
                    // Forget epsilon states visited at an earlier position.
                    clist.clear();
                }
                if clist.is_empty()
                    && let Some(first) = &self.first
                {
                    let stop = bytes.len().min(spawn_end.saturating_add(1));
                    while pos < stop {
                        let b = bytes[pos];
                        if first[(b >> 6) as usize] & (1 << (b & 63)) != 0 {
                            break;
                        }
                        pos += 1;
                    }
                    if pos >= stop {
                        break;
                    }
                }
                self.add_thread(&mut clist, &mut vm.stack, 0, pos, text, pos);
            }
            let c = text[pos..].chars().next();
            let next = pos + c.map_or(0, char::len_utf8);
            if clist.is_empty() {
                if matched.is_some() || c.is_none() || pos >= spawn_end {
                    break;
                }
                pos = next;
                continue;
            }
            nlist.clear();
            for i in 0..clist.dense.len() {
                let (pc, tstart) = clist.dense[i];
                let ok = match (self.insts[pc as usize], c) {
                    (Inst::Match, _) => {
                        matched = Some((tstart, pos));
                        // Lower-priority threads are cut.
                        break;
                    }
                    (_, None) => false,
                    (Inst::Char(x), Some(c)) => x == c,
                    (Inst::Fold(x), Some(c)) => x == c || fold(c) == x,
                    (Inst::Class(n), Some(c)) => {
                        let cl = self.classes[n as usize];
                        class_matches(
                            &self.items[cl.start as usize..cl.end as usize],
                            cl.negated,
                            cl.fold,
                            c,
                        )
                    }
                    (Inst::Any, Some(_)) => true,
                    (Inst::AnyNoNl, Some(c)) => c != '\n',
                    _ => false,
                };
                if ok {
                    self.add_thread(&mut nlist, &mut vm.stack, pc + 1, tstart, text, next);
                }
            }
            std::mem::swap(&mut clist, &mut nlist);
            if c.is_none() {
                break;
            }
            pos = next;
        }
        vm.clist = clist;
        vm.nlist = nlist;
        matched
    }

    /// Adds the thread at `pc` (started at `tstart`) and its epsilon closure at text
    /// position `at`, in priority order.
    fn add_thread(
        &self,
        list: &mut Threads,
        stack: &mut Vec<u32>,
        pc: u32,
        tstart: usize,
        text: &str,
        at: usize,
    ) {
        stack.clear();
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if !list.insert(pc) {
                continue;
            }
            match self.insts[pc as usize] {
                Inst::Jmp(t) => stack.push(t),
                Inst::Split(a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                Inst::Look(look, ascii) => {
                    if look_holds(look, ascii, text, at) {
                        stack.push(pc + 1);
                    }
                }
                _ => list.dense.push((pc, tstart)),
            }
        }
    }
}

fn lead_byte(c: char) -> u8 {
    let mut buf = [0u8; 4];
    c.encode_utf8(&mut buf).as_bytes()[0]
}

/// Whether `look` holds at byte `at` of `text`.
pub fn look_holds(look: Look, ascii: bool, text: &str, at: usize) -> bool {
    let before = || text[..at].chars().next_back();
    let after = || text[at..].chars().next();
    let w_before = || before().is_some_and(|c| is_word(c, ascii));
    let w_after = || after().is_some_and(|c| is_word(c, ascii));
    match look {
        Look::Start => at == 0,
        Look::End => at == text.len(),
        Look::LineStart => at == 0 || text.as_bytes()[at - 1] == b'\n',
        Look::LineEnd => at == text.len() || text.as_bytes()[at] == b'\n',
        Look::Word => w_before() != w_after(),
        Look::NotWord => w_before() == w_after(),
        Look::WordStart => !w_before() && w_after(),
        Look::WordEnd => w_before() && !w_after(),
        Look::WordStartHalf => !w_before(),
        Look::WordEndHalf => !w_after(),
    }
}

/// A sparse set of program counters, with the threads in insertion (priority) order.
#[derive(Default)]
struct Threads {
    /// Generation-stamped membership: `mark[pc] == gen` when `pc` is in the set.
    mark: Vec<u32>,
    gen_: u32,
    dense: Vec<(u32, usize)>,
}

impl Threads {
    fn new(n: usize) -> Self {
        Self {
            mark: vec![0; n],
            gen_: 1,
            dense: Vec::with_capacity(n.min(64)),
        }
    }

    fn clear(&mut self) {
        self.dense.clear();
        self.gen_ = self.gen_.wrapping_add(1);
        if self.gen_ == 0 {
            self.mark.iter_mut().for_each(|m| *m = 0);
            self.gen_ = 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.dense.is_empty()
    }

    /// Marks `pc`; false when it was already in the set.
    fn insert(&mut self, pc: u32) -> bool {
        let m = &mut self.mark[pc as usize];
        if *m == self.gen_ {
            false
        } else {
            *m = self.gen_;
            true
        }
    }
}

struct Vm {
    clist: Threads,
    nlist: Threads,
    stack: Vec<u32>,
}

impl Vm {
    fn new(n: usize) -> Self {
        Self {
            clist: Threads::new(n),
            nlist: Threads::new(n),
            stack: Vec::with_capacity(16),
        }
    }
}

struct Compiler<'a> {
    ast: &'a Ast,
    insts: Vec<Inst>,
    classes: Vec<Class>,
}

impl Compiler<'_> {
    fn pc(&self) -> u32 {
        self.insts.len() as u32
    }

    fn node(&mut self, id: u32) {
        match self.ast.nodes[id as usize] {
            Node::Empty => {}
            Node::Lits {
                start,
                end,
                fold: f,
            } => {
                for &c in &self.ast.chars[start as usize..end as usize] {
                    self.insts.push(if f && has_case(c) {
                        Inst::Fold(fold(c))
                    } else {
                        Inst::Char(c)
                    });
                }
            }
            Node::Class {
                start,
                end,
                negated,
                fold,
            } => {
                self.classes.push(Class {
                    start,
                    end,
                    negated,
                    fold,
                });
                self.insts.push(Inst::Class(self.classes.len() as u32 - 1));
            }
            Node::Any { newline } => {
                self.insts
                    .push(if newline { Inst::Any } else { Inst::AnyNoNl })
            }
            Node::Look { look, ascii } => self.insts.push(Inst::Look(look, ascii)),
            Node::Concat { start, end } => {
                for &k in self.ast.kids(start, end) {
                    self.node(k);
                }
            }
            Node::Alt { start, end } => {
                let kids = self.ast.kids(start, end);
                let mut jumps = Vec::with_capacity(kids.len());
                for (i, &k) in kids.iter().enumerate() {
                    if i + 1 < kids.len() {
                        let split = self.pc();
                        self.insts.push(Inst::Split(split + 1, 0));
                        self.node(k);
                        jumps.push(self.pc());
                        self.insts.push(Inst::Jmp(0));
                        let next = self.pc();
                        self.insts[split as usize] = Inst::Split(split + 1, next);
                    } else {
                        self.node(k);
                    }
                }
                let end = self.pc();
                for j in jumps {
                    self.insts[j as usize] = Inst::Jmp(end);
                }
            }
            Node::Repeat {
                child,
                min,
                max,
                greedy,
            } => {
                match max {
                    None if min == 0 && !self.can_be_empty(child) => {
                        // L: split(body, out); body; jmp L
                        let split = self.pc();
                        self.insts.push(Inst::Split(0, 0));
                        self.node(child);
                        self.insts.push(Inst::Jmp(split));
                        let out = self.pc();
                        self.insts[split as usize] = self.split(split + 1, out, greedy);
                    }
                    None if min == 0 => {
                        // `x*` as `(x+)?` when x can match empty, for the same
                        // preference order as the `regex` crate (rust-lang/regex#779).
                        let question = self.pc();
                        self.insts.push(Inst::Split(0, 0));
                        let body = self.pc();
                        self.node(child);
                        let plus = self.pc();
                        self.insts.push(Inst::Split(0, 0));
                        let out = self.pc();
                        self.insts[question as usize] = self.split(body, out, greedy);
                        self.insts[plus as usize] = self.split(body, out, greedy);
                    }
                    None => {
                        // x{n,}: n-1 copies, then x+ as body; split(body, out).
                        for _ in 1..min {
                            self.node(child);
                        }
                        let body = self.pc();
                        self.node(child);
                        let plus = self.pc();
                        self.insts.push(Inst::Split(0, 0));
                        self.insts[plus as usize] = self.split(body, plus + 1, greedy);
                    }
                    Some(max) => {
                        for _ in 0..min {
                            self.node(child);
                        }
                        let mut splits = Vec::with_capacity((max - min) as usize);
                        for _ in min..max {
                            splits.push(self.pc());
                            self.insts.push(Inst::Split(0, 0));
                            self.node(child);
                        }
                        let out = self.pc();
                        for s in splits {
                            self.insts[s as usize] = self.split(s + 1, out, greedy);
                        }
                    }
                }
            }
        }
    }

    /// Whether `id` can match the empty string.
    fn can_be_empty(&self, id: u32) -> bool {
        match self.ast.nodes[id as usize] {
            Node::Empty | Node::Look { .. } => true,
            Node::Lits { start, end, .. } => start == end,
            Node::Class { .. } | Node::Any { .. } => false,
            Node::Concat { start, end } => self
                .ast
                .kids(start, end)
                .iter()
                .all(|&k| self.can_be_empty(k)),
            Node::Alt { start, end } => self
                .ast
                .kids(start, end)
                .iter()
                .any(|&k| self.can_be_empty(k)),
            Node::Repeat { child, min, .. } => min == 0 || self.can_be_empty(child),
        }
    }

    fn split(&self, body: u32, out: u32, greedy: bool) -> Inst {
        if greedy {
            Inst::Split(body, out)
        } else {
            Inst::Split(out, body)
        }
    }
}
