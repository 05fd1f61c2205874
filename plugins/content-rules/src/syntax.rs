//! A small parser for the regular-expression syntax admins write in `patterns`.
//!
//! The syntax is the `regex` crate's, minus what a linear-time engine cannot do or this
//! plugin does not need: no look-around, backreferences, Unicode property classes
//! (`\p{..}`), nested classes or class set operations. Everything is parsed into a
//! compact [`Ast`] (a few vectors, no allocation per node) that [`crate::literal`]
//! mines for required literals and [`crate::vm`] compiles into a Pike VM program.
//!
//! Differences in meaning from the `regex` crate (all documented in the crate docs):
//! `\d` is ASCII `[0-9]`; `\w` is `char::is_alphanumeric` or `_`; `\s` is
//! `char::is_whitespace`; `(?i)` compares simple lowercase forms and never folds a
//! non-ASCII character onto an ASCII one (the Kelvin sign does not match `k`).

use std::fmt;

/// Longest accepted pattern, in bytes.
pub const MAX_PATTERN_BYTES: usize = 1024;
/// Largest compiled program for one pattern, in VM instructions.
pub const MAX_PROGRAM: u32 = 10_000;
/// Largest counted repetition (`x{n,m}`).
pub const MAX_REPEAT: u32 = 1000;
/// Deepest group nesting.
const MAX_DEPTH: u32 = 64;

/// A zero-width assertion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Look {
    /// `\A`, or `^` without `m`.
    Start,
    /// `\z`, or `$` without `m`.
    End,
    /// `^` with `m`.
    LineStart,
    /// `$` with `m`.
    LineEnd,
    /// `\b`.
    Word,
    /// `\B`.
    NotWord,
    /// `\<` or `\b{start}`.
    WordStart,
    /// `\>` or `\b{end}`.
    WordEnd,
    /// `\b{start-half}`: not preceded by a word character.
    WordStartHalf,
    /// `\b{end-half}`: not followed by a word character.
    WordEndHalf,
}

/// A Perl class inside a character class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perl {
    /// `\d`: ASCII digits.
    Digit,
    /// `\w`: alphanumeric (Unicode, or ASCII with `(?-u)`) or `_`.
    Word,
    /// `\s`: whitespace (Unicode, or ASCII with `(?-u)`).
    Space,
}

/// One member of a character class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    /// An inclusive range of characters (a single character is `c..=c`).
    Range(char, char),
    /// A Perl class, possibly negated (`\D`), ASCII-only when `ascii`.
    Perl {
        /// Which class.
        class: Perl,
        /// `\D`, `\W`, `\S`.
        negated: bool,
        /// Under `(?-u)`.
        ascii: bool,
    },
}

/// A node of the [`Ast`]; children and characters live in the AST's side vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// Matches the empty string.
    Empty,
    /// A run of literal characters `chars[start..end]`, case-insensitive when `fold`.
    Lits {
        /// First character.
        start: u32,
        /// End of the run (exclusive).
        end: u32,
        /// Under `(?i)`.
        fold: bool,
    },
    /// A class of `items[start..end]`.
    Class {
        /// First item.
        start: u32,
        /// End of the items (exclusive).
        end: u32,
        /// `[^...]`.
        negated: bool,
        /// Under `(?i)`.
        fold: bool,
    },
    /// `.`; also matches `\n` when `newline` (`(?s)`).
    Any {
        /// Under `(?s)`.
        newline: bool,
    },
    /// A zero-width assertion; word tests are ASCII-only when `ascii`.
    Look {
        /// Which assertion.
        look: Look,
        /// Under `(?-u)`.
        ascii: bool,
    },
    /// Children `kids[start..end]` in sequence.
    Concat {
        /// First child index in `kids`.
        start: u32,
        /// End (exclusive).
        end: u32,
    },
    /// Children `kids[start..end]` as alternatives, in priority order.
    Alt {
        /// First child index in `kids`.
        start: u32,
        /// End (exclusive).
        end: u32,
    },
    /// `child` repeated `min..=max` times (`max` none: unbounded).
    Repeat {
        /// The repeated node.
        child: u32,
        /// Fewest repetitions.
        min: u32,
        /// Most repetitions, none for unbounded.
        max: Option<u32>,
        /// Prefers more repetitions.
        greedy: bool,
    },
}

/// A parsed pattern.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ast {
    /// All nodes; `root` is the whole pattern.
    pub nodes: Vec<Node>,
    /// Child lists of `Concat` and `Alt` nodes.
    pub kids: Vec<u32>,
    /// Characters of `Lits` nodes.
    pub chars: Vec<char>,
    /// Members of `Class` nodes.
    pub items: Vec<Item>,
    /// The root node.
    pub root: u32,
    /// Size of the compiled program, in instructions (an upper bound).
    pub size: u32,
}

/// Why a pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// What is wrong.
    pub msg: String,
    /// Byte offset in the pattern.
    pub at: usize,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid pattern: {} (at byte {})", self.msg, self.at)
    }
}

#[derive(Clone, Copy, Debug)]
struct Flags {
    i: bool,
    m: bool,
    s: bool,
    x: bool,
    u: bool,
    swap_greed: bool,
}

/// Parses `pattern`.
pub fn parse(pattern: &str) -> Result<Ast, Error> {
    let mut ast = Ast::default();
    parse_into(pattern, &mut ast)?;
    Ok(ast)
}

/// Parses `pattern` into `ast`, reusing its buffers.
pub fn parse_into(pattern: &str, ast: &mut Ast) -> Result<(), Error> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(Error {
            msg: format!("longer than {MAX_PATTERN_BYTES} bytes"),
            at: MAX_PATTERN_BYTES,
        });
    }
    let mut buf = std::mem::take(ast);
    buf.nodes.clear();
    buf.kids.clear();
    buf.chars.clear();
    buf.items.clear();
    let mut p = Parser {
        src: pattern,
        pos: 0,
        depth: 0,
        flags: Flags {
            i: false,
            m: false,
            s: false,
            x: false,
            u: true,
            swap_greed: false,
        },
        ast: buf,
        stack: Vec::new(),
    };
    let result = p.alternation().and_then(|(root, size)| {
        if p.pos < p.src.len() {
            // Only an unopened `)` stops the top-level alternation early.
            return Err(p.err("unopened group: `)` without `(`"));
        }
        Ok((root, size))
    });
    *ast = p.ast;
    let (root, size) = result?;
    ast.root = root;
    ast.size = size + 1;
    Ok(())
}

impl Ast {
    /// An empty builder for ASTs made by code rather than parsed (keywords, phrases).
    pub fn builder() -> Self {
        Self::default()
    }

    /// Adds a node, returning its id.
    pub fn push(&mut self, node: Node) -> u32 {
        self.nodes.push(node);
        (self.nodes.len() - 1) as u32
    }

    /// Adds a `Lits` node for `s`.
    pub fn push_lits(&mut self, s: &str, fold: bool) -> u32 {
        let start = self.chars.len() as u32;
        self.chars.extend(s.chars());
        let end = self.chars.len() as u32;
        self.push(Node::Lits { start, end, fold })
    }

    /// Adds a `Concat` of `kids`.
    pub fn push_concat(&mut self, kids: &[u32]) -> u32 {
        let start = self.kids.len() as u32;
        self.kids.extend_from_slice(kids);
        let end = self.kids.len() as u32;
        self.push(Node::Concat { start, end })
    }

    /// The longest match, in bytes, or `None` when unbounded.
    pub fn max_len(&self) -> Option<u32> {
        self.node_max_len(self.root)
    }

    fn node_max_len(&self, id: u32) -> Option<u32> {
        Some(match self.nodes[id as usize] {
            Node::Empty | Node::Look { .. } => 0,
            Node::Lits { start, end, fold } => self.chars[start as usize..end as usize]
                .iter()
                .map(|&c| {
                    if fold && !c.is_ascii() {
                        4
                    } else {
                        c.len_utf8() as u32
                    }
                })
                .sum(),
            Node::Class { .. } | Node::Any { .. } => 4,
            Node::Concat { start, end } => {
                let mut sum = 0u32;
                for &k in self.kids(start, end) {
                    sum = sum.saturating_add(self.node_max_len(k)?);
                }
                sum
            }
            Node::Alt { start, end } => {
                let mut max = 0;
                for &k in self.kids(start, end) {
                    max = max.max(self.node_max_len(k)?);
                }
                max
            }
            Node::Repeat { child, max, .. } => {
                let child = self.node_max_len(child)?;
                if child == 0 {
                    0
                } else {
                    child.saturating_mul(max?)
                }
            }
        })
    }

    /// The children of a `Concat` or `Alt` node's range.
    pub fn kids(&self, start: u32, end: u32) -> &[u32] {
        &self.kids[start as usize..end as usize]
    }
}

/// The pattern a keyword or injection phrase stands for: its words, case-insensitive,
/// separated by any run of whitespace, and not inside a longer word (no word character
/// right before a phrase that starts with one, nor right after one that ends with one).
pub fn phrase(text: &str) -> Ast {
    let mut ast = Ast::builder();
    let mut kids = Vec::with_capacity(8);
    let word = |c: Option<char>| c.is_some_and(|c| crate::vm::is_word(c, false));
    if word(text.chars().next()) {
        kids.push(ast.push(Node::Look {
            look: Look::WordStartHalf,
            ascii: false,
        }));
    }
    for (i, w) in text.split_whitespace().enumerate() {
        if i > 0 {
            let start = ast.items.len() as u32;
            ast.items.push(Item::Perl {
                class: Perl::Space,
                negated: false,
                ascii: false,
            });
            let space = ast.push(Node::Class {
                start,
                end: start + 1,
                negated: false,
                fold: false,
            });
            kids.push(ast.push(Node::Repeat {
                child: space,
                min: 1,
                max: None,
                greedy: true,
            }));
        }
        kids.push(ast.push_lits(w, true));
    }
    if word(text.chars().next_back()) {
        kids.push(ast.push(Node::Look {
            look: Look::WordEndHalf,
            ascii: false,
        }));
    }
    ast.root = ast.push_concat(&kids);
    ast.size = ast.chars.len() as u32 + 4 * kids.len() as u32 + 1;
    ast
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: u32,
    flags: Flags,
    ast: Ast,
    /// Scratch stack of child ids while a concatenation or alternation is parsed.
    stack: Vec<u32>,
}

/// What one step of a concatenation produced.
enum Atom {
    /// A literal character (merged into runs).
    Char(char),
    /// A finished node and its program size.
    Node(u32, u32),
    /// A flag directive such as `(?i)`: nothing to add.
    Nothing,
}

fn add(a: u32, b: u32) -> u32 {
    a.saturating_add(b)
}

impl Parser<'_> {
    fn err(&self, msg: impl Into<String>) -> Error {
        Error {
            msg: msg.into(),
            at: self.pos,
        }
    }

    #[inline]
    fn peek(&self) -> Option<char> {
        match *self.src.as_bytes().get(self.pos)? {
            b if b < 0x80 => Some(b as char),
            _ => self.src[self.pos..].chars().next(),
        }
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.src[self.pos..].chars().nth(ahead)
    }

    #[inline]
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.src[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Skips whitespace and `#` comments in verbose mode.
    #[inline]
    fn skip_verbose(&mut self) {
        if self.flags.x {
            self.skip_verbose_slow();
        }
    }

    fn skip_verbose_slow(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else if c == '#' {
                while let Some(c) = self.bump() {
                    if c == '\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    fn check_size(&self, size: u32) -> Result<u32, Error> {
        if size > MAX_PROGRAM {
            Err(self.err(format!(
                "too large once compiled (over {MAX_PROGRAM} instructions)"
            )))
        } else {
            Ok(size)
        }
    }

    /// `a|b|...` up to the end or a `)`.
    fn alternation(&mut self) -> Result<(u32, u32), Error> {
        let mark = self.stack.len();
        let mut size = 0u32;
        loop {
            let (node, s) = self.concat()?;
            self.stack.push(node);
            size = add(size, s);
            if self.peek() == Some('|') {
                self.pos += 1;
                continue;
            }
            break;
        }
        let n = self.stack.len() - mark;
        if n == 1 {
            let node = self.stack.pop().unwrap_or_default();
            return Ok((node, size));
        }
        // Each alternative but the last costs a split and a jump.
        size = self.check_size(add(size, 2 * (n as u32 - 1)))?;
        let start = self.ast.kids.len() as u32;
        self.ast.kids.extend(self.stack.drain(mark..));
        let end = self.ast.kids.len() as u32;
        Ok((self.ast.push(Node::Alt { start, end }), size))
    }

    /// A sequence of atoms, each optionally repeated, up to `|`, `)` or the end.
    fn concat(&mut self) -> Result<(u32, u32), Error> {
        let mark = self.stack.len();
        let mut size = 0u32;
        // The pending run of literal characters: its range in `chars` and fold flag.
        let mut run: Option<(u32, u32, bool)> = None;
        loop {
            // Fast path: plain ASCII characters not followed by a quantifier.
            if !self.flags.x {
                let bytes = self.src.as_bytes();
                while let Some(&b) = bytes.get(self.pos) {
                    if !is_plain(b) || bytes.get(self.pos + 1).is_some_and(|&n| is_quantifier(n)) {
                        break;
                    }
                    self.push_run_char(&mut run, b as char);
                    size = add(size, 1);
                    self.pos += 1;
                }
            }
            self.skip_verbose();
            match self.peek() {
                None | Some('|') | Some(')') => break,
                _ => {}
            }
            let atom_at = self.pos;
            let atom = self.atom()?;
            self.skip_verbose();
            let quantified = matches!(self.peek(), Some('*' | '+' | '?' | '{'));
            match atom {
                Atom::Char(c) if !quantified => {
                    self.push_run_char(&mut run, c);
                    size = add(size, 1);
                }
                Atom::Char(c) => {
                    self.flush_run(&mut run);
                    let start = self.ast.chars.len() as u32;
                    self.ast.chars.push(c);
                    let node = self.ast.push(Node::Lits {
                        start,
                        end: start + 1,
                        fold: self.flags.i,
                    });
                    let (node, s) = self.repeats(node, 1)?;
                    self.stack.push(node);
                    size = add(size, s);
                }
                Atom::Node(node, s) => {
                    self.flush_run(&mut run);
                    let (node, s) = if quantified {
                        self.repeats(node, s)?
                    } else {
                        (node, s)
                    };
                    self.stack.push(node);
                    size = add(size, s);
                }
                Atom::Nothing => {
                    self.flush_run(&mut run);
                    if quantified {
                        self.pos = atom_at;
                        return Err(self.err("repetition of a flag group"));
                    }
                }
            }
            self.check_size(size)?;
        }
        self.flush_run(&mut run);
        let n = self.stack.len() - mark;
        let node = match n {
            0 => self.ast.push(Node::Empty),
            1 => self.stack.pop().unwrap_or_default(),
            _ => {
                let start = self.ast.kids.len() as u32;
                self.ast.kids.extend(self.stack.drain(mark..));
                let end = self.ast.kids.len() as u32;
                self.ast.push(Node::Concat { start, end })
            }
        };
        Ok((node, size))
    }

    /// Appends `c` to `chars`, continuing the pending literal run when it can (same fold
    /// flag, nothing pushed in between) and starting a new one otherwise.
    fn push_run_char(&mut self, run: &mut Option<(u32, u32, bool)>, c: char) {
        let fold = self.flags.i;
        let at = self.ast.chars.len() as u32;
        match run {
            Some((_, end, f)) if *f == fold && *end == at => *end = at + 1,
            _ => {
                self.flush_run(run);
                *run = Some((at, at + 1, fold));
            }
        }
        self.ast.chars.push(c);
    }

    fn flush_run(&mut self, run: &mut Option<(u32, u32, bool)>) {
        if let Some((start, end, fold)) = run.take() {
            let node = self.ast.push(Node::Lits { start, end, fold });
            self.stack.push(node);
        }
    }

    /// Applies the quantifiers at the cursor (`a**` is `(?:a*)*`) to `node`.
    fn repeats(&mut self, mut node: u32, mut size: u32) -> Result<(u32, u32), Error> {
        loop {
            (node, size) = self.repeat(node, size)?;
            self.skip_verbose();
            if !matches!(self.peek(), Some('*' | '+' | '?' | '{')) {
                return Ok((node, size));
            }
        }
    }

    /// Applies the quantifier at the cursor to `node` (of program size `size`).
    fn repeat(&mut self, node: u32, size: u32) -> Result<(u32, u32), Error> {
        let at = self.pos;
        let (min, max) = match self.bump() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            _ => self.counted()?,
        };
        let mut greedy = true;
        if self.peek() == Some('?') {
            self.pos += 1;
            greedy = false;
        }
        if self.flags.swap_greed {
            greedy = !greedy;
        }
        // min copies, then either a loop (split + jump) or max-min optional copies.
        let total = match max {
            None => add(size.saturating_mul(min.max(1)), 2),
            Some(max) => add(
                size.saturating_mul(min),
                (size + 1).saturating_mul(max - min),
            ),
        };
        let total = self.check_size(total).map_err(|mut e| {
            e.at = at;
            e
        })?;
        Ok((
            self.ast.push(Node::Repeat {
                child: node,
                min,
                max,
                greedy,
            }),
            total,
        ))
    }

    /// `{n}`, `{n,}` or `{n,m}` (the `{` already consumed).
    fn counted(&mut self) -> Result<(u32, Option<u32>), Error> {
        let min = self.decimal()?;
        let max = if self.eat(",") {
            self.skip_verbose();
            if self.peek() == Some('}') {
                None
            } else {
                Some(self.decimal()?)
            }
        } else {
            Some(min)
        };
        self.skip_verbose();
        if !self.eat("}") {
            return Err(self.err("unclosed counted repetition: expected `}`"));
        }
        if let Some(max) = max
            && max < min
        {
            return Err(self.err(format!("invalid repetition {{{min},{max}}}: min over max")));
        }
        if max.unwrap_or(min) > MAX_REPEAT {
            return Err(self.err(format!("repetition count over {MAX_REPEAT}")));
        }
        Ok((min, max))
    }

    fn decimal(&mut self) -> Result<u32, Error> {
        self.skip_verbose();
        let start = self.pos;
        while matches!(self.peek(), Some('0'..='9')) {
            self.pos += 1;
        }
        let digits = &self.src[start..self.pos];
        if digits.is_empty() {
            return Err(self.err("counted repetition expects a decimal number"));
        }
        let n = digits
            .parse::<u32>()
            .map_err(|_| self.err(format!("repetition count over {MAX_REPEAT}")))?;
        self.skip_verbose();
        Ok(n)
    }

    fn atom(&mut self) -> Result<Atom, Error> {
        let Some(c) = self.bump() else {
            return Ok(Atom::Nothing);
        };
        let f = self.flags;
        Ok(match c {
            '(' => return self.group(),
            '[' => {
                let node = self.class()?;
                Atom::Node(node, 1)
            }
            '.' => Atom::Node(self.ast.push(Node::Any { newline: f.s }), 1),
            '^' => {
                let look = if f.m { Look::LineStart } else { Look::Start };
                Atom::Node(self.look(look), 1)
            }
            '$' => {
                let look = if f.m { Look::LineEnd } else { Look::End };
                Atom::Node(self.look(look), 1)
            }
            '*' | '+' | '?' | '{' => {
                self.pos -= 1;
                return Err(self.err("repetition operator missing expression"));
            }
            '\\' => return self.escape(),
            c => Atom::Char(c),
        })
    }

    fn look(&mut self, look: Look) -> u32 {
        let ascii = !self.flags.u;
        self.ast.push(Node::Look { look, ascii })
    }

    fn perl_node(&mut self, class: Perl, negated: bool) -> u32 {
        let start = self.ast.items.len() as u32;
        self.ast.items.push(Item::Perl {
            class,
            negated,
            ascii: !self.flags.u,
        });
        self.ast.push(Node::Class {
            start,
            end: start + 1,
            negated: false,
            fold: false,
        })
    }

    /// After a `\` outside a class.
    fn escape(&mut self) -> Result<Atom, Error> {
        let at = self.pos - 1;
        let Some(c) = self.bump() else {
            return Err(self.err("pattern ends with a lone `\\`"));
        };
        let node = match c {
            'd' => self.perl_node(Perl::Digit, false),
            'D' => self.perl_node(Perl::Digit, true),
            'w' => self.perl_node(Perl::Word, false),
            'W' => self.perl_node(Perl::Word, true),
            's' => self.perl_node(Perl::Space, false),
            'S' => self.perl_node(Perl::Space, true),
            'A' => self.look(Look::Start),
            'z' => self.look(Look::End),
            'B' => self.look(Look::NotWord),
            '<' => self.look(Look::WordStart),
            '>' => self.look(Look::WordEnd),
            'b' => {
                let look = if self.eat("{start}") {
                    Look::WordStart
                } else if self.eat("{end}") {
                    Look::WordEnd
                } else if self.eat("{start-half}") {
                    Look::WordStartHalf
                } else if self.eat("{end-half}") {
                    Look::WordEndHalf
                } else if self.src[self.pos..].starts_with('{')
                    && self.src[self.pos + 1..]
                        .chars()
                        .take_while(|&c| c != '}')
                        .all(|c| c.is_ascii_alphabetic() || c == '-')
                    && self.src[self.pos + 1..].contains('}')
                {
                    return Err(self.err("unknown word boundary: expected \\b{start}, \\b{end}, \\b{start-half} or \\b{end-half}"));
                } else {
                    Look::Word
                };
                self.look(look)
            }
            _ => {
                self.pos = at;
                return self.escaped_char().map(Atom::Char);
            }
        };
        Ok(Atom::Node(node, 1))
    }

    /// A `\` escape that stands for one character (inside or outside a class).
    fn escaped_char(&mut self) -> Result<char, Error> {
        let at = self.pos;
        self.pos += 1; // the backslash
        let Some(c) = self.bump() else {
            return Err(self.err("pattern ends with a lone `\\`"));
        };
        let fail = |p: &mut Self, msg: String| {
            p.pos = at;
            Err(p.err(msg))
        };
        match c {
            'n' => Ok('\n'),
            't' => Ok('\t'),
            'r' => Ok('\r'),
            'f' => Ok('\x0c'),
            'v' => Ok('\x0b'),
            'a' => Ok('\x07'),
            'x' => self.hex(2),
            'u' => self.hex(4),
            'U' => self.hex(8),
            'p' | 'P' => fail(
                self,
                "Unicode property classes (\\p{..}) are not supported".into(),
            ),
            '0'..='9' => fail(
                self,
                "backreferences and octal escapes are not supported".into(),
            ),
            'k' => fail(self, "backreferences are not supported".into()),
            c if c.is_ascii() && !c.is_ascii_alphanumeric() && c != '<' && c != '>' => Ok(c),
            c => fail(self, format!("unrecognized escape `\\{c}`")),
        }
    }

    /// `\xHH`, `\x{H..}`, `\uHHHH`, `\UHHHHHHHH` (after the letter).
    fn hex(&mut self, digits: usize) -> Result<char, Error> {
        let start;
        let end;
        if self.eat("{") {
            start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                self.pos += 1;
            }
            end = self.pos;
            if !self.eat("}") || start == end || end - start > 8 {
                return Err(self.err("invalid hex escape: expected {hex digits}"));
            }
        } else {
            start = self.pos;
            for _ in 0..digits {
                if !self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                    return Err(
                        self.err(format!("invalid hex escape: expected {digits} hex digits"))
                    );
                }
                self.pos += 1;
            }
            end = self.pos;
        }
        u32::from_str_radix(&self.src[start..end], 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| self.err("hex escape is not a Unicode scalar value"))
    }

    /// After `(`.
    fn group(&mut self) -> Result<Atom, Error> {
        let open = self.pos - 1;
        let saved = self.flags;
        if self.eat("?") {
            if self.eat("P<")
                || (self.peek() == Some('<') && !matches!(self.peek_at(1), Some('=' | '!')))
            {
                self.eat("<");
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'))
                {
                    self.bump();
                }
                if start == self.pos || !self.eat(">") {
                    return Err(self.err("invalid capture group name"));
                }
            } else if self.eat("=") || self.eat("!") || self.eat("<=") || self.eat("<!") {
                self.pos = open;
                return Err(self.err("look-around is not supported"));
            } else if self.eat("P=") {
                self.pos = open;
                return Err(self.err("backreferences are not supported"));
            } else {
                // Flags: `(?flags)` applies to the rest of the enclosing group,
                // `(?flags:...)` to the group only.
                let mut negate = false;
                let mut any = false;
                let mut dangling = false;
                loop {
                    let Some(c) = self.bump() else {
                        return Err(self.err("unclosed flag group"));
                    };
                    let on = !negate;
                    match c {
                        'i' => self.flags.i = on,
                        'm' => self.flags.m = on,
                        's' => self.flags.s = on,
                        'x' => self.flags.x = on,
                        'u' => self.flags.u = on,
                        'U' => self.flags.swap_greed = on,
                        '-' if !negate => {
                            negate = true;
                            dangling = true;
                            continue;
                        }
                        ')' if !any || dangling => {
                            self.pos -= 1;
                            return Err(self.err("empty flag group or dangling `-`"));
                        }
                        ':' if dangling => {
                            self.pos -= 1;
                            return Err(self.err("empty flag group or dangling `-`"));
                        }
                        ')' => return Ok(Atom::Nothing),
                        ':' => break,
                        c => {
                            self.pos -= c.len_utf8();
                            return Err(self.err(format!("unknown flag `{c}`")));
                        }
                    }
                    any = true;
                    dangling = false;
                }
            }
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(format!("groups nested deeper than {MAX_DEPTH}")));
        }
        let (node, size) = self.alternation()?;
        self.depth -= 1;
        if !self.eat(")") {
            self.pos = open;
            return Err(self.err("unclosed group"));
        }
        self.flags = saved;
        Ok(Atom::Node(node, size))
    }

    /// After `[`.
    fn class(&mut self) -> Result<u32, Error> {
        let open = self.pos - 1;
        let start = self.ast.items.len() as u32;
        let negated = self.eat("^");
        let mut first = true;
        loop {
            if self.flags.x {
                while self.peek().is_some_and(char::is_whitespace) {
                    self.bump();
                }
            }
            let Some(c) = self.peek() else {
                self.pos = open;
                return Err(self.err("unclosed character class"));
            };
            if c == ']' && !first {
                self.pos += 1;
                break;
            }
            first = false;
            if c == '[' {
                if self.src[self.pos..].starts_with("[:") {
                    self.posix()?;
                    continue;
                }
                return Err(self.err("nested character classes are not supported"));
            }
            if ["&&", "--", "~~"]
                .iter()
                .any(|op| self.src[self.pos..].starts_with(op))
            {
                return Err(self.err("character class set operations are not supported"));
            }
            let lo = match c {
                '\\' => match self.peek_at(1) {
                    Some(p @ ('d' | 'D' | 'w' | 'W' | 's' | 'S')) => {
                        self.pos += 2;
                        let class = match p.to_ascii_lowercase() {
                            'd' => Perl::Digit,
                            'w' => Perl::Word,
                            _ => Perl::Space,
                        };
                        self.ast.items.push(Item::Perl {
                            class,
                            negated: p.is_ascii_uppercase(),
                            ascii: !self.flags.u,
                        });
                        continue;
                    }
                    _ => self.escaped_char()?,
                },
                c => {
                    self.bump();
                    c
                }
            };
            // A range `lo-hi`, unless the `-` is the last member.
            let hi = if self.peek() == Some('-') && !matches!(self.peek_at(1), Some(']') | None) {
                self.pos += 1;
                let hi = match self.peek() {
                    Some('\\') => {
                        if matches!(self.peek_at(1), Some('d' | 'D' | 'w' | 'W' | 's' | 'S')) {
                            return Err(self.err("a class range cannot end in a Perl class"));
                        }
                        self.escaped_char()?
                    }
                    Some('[') => return Err(self.err("invalid class range")),
                    Some(c) => {
                        self.bump();
                        c
                    }
                    None => {
                        self.pos = open;
                        return Err(self.err("unclosed character class"));
                    }
                };
                if hi < lo {
                    return Err(self.err(format!("invalid class range {lo:?}-{hi:?}")));
                }
                hi
            } else {
                lo
            };
            self.ast.items.push(Item::Range(lo, hi));
        }
        let end = self.ast.items.len() as u32;
        Ok(self.ast.push(Node::Class {
            start,
            end,
            negated,
            fold: self.flags.i,
        }))
    }

    /// `[:name:]` or `[:^name:]` inside a class (cursor on the `[`).
    fn posix(&mut self) -> Result<(), Error> {
        let at = self.pos;
        let rest = &self.src[self.pos + 2..];
        let Some(close) = rest.find(":]") else {
            return Err(self.err("nested character classes are not supported"));
        };
        let (negated, name) = match rest[..close].strip_prefix('^') {
            Some(n) => (true, n),
            None => (false, &rest[..close]),
        };
        let ranges: &[(char, char)] = match name {
            "alnum" => &[('0', '9'), ('A', 'Z'), ('a', 'z')],
            "alpha" => &[('A', 'Z'), ('a', 'z')],
            "ascii" => &[('\0', '\x7f')],
            "blank" => &[('\t', '\t'), (' ', ' ')],
            "cntrl" => &[('\0', '\x1f'), ('\x7f', '\x7f')],
            "digit" => &[('0', '9')],
            "graph" => &[('!', '~')],
            "lower" => &[('a', 'z')],
            "print" => &[(' ', '~')],
            "punct" => &[('!', '/'), (':', '@'), ('[', '`'), ('{', '~')],
            "space" => &[('\t', '\r'), (' ', ' ')],
            "upper" => &[('A', 'Z')],
            "word" => &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')],
            "xdigit" => &[('0', '9'), ('A', 'F'), ('a', 'f')],
            _ => {
                return Err(Error {
                    msg: format!("unknown POSIX class [:{name}:]"),
                    at,
                });
            }
        };
        if negated {
            let mut next = '\0';
            for &(lo, hi) in ranges {
                if lo > next {
                    self.ast.items.push(Item::Range(next, prev_char(lo)));
                }
                next = next_char(hi);
            }
            self.ast.items.push(Item::Range(next, char::MAX));
        } else {
            self.ast
                .items
                .extend(ranges.iter().map(|&(lo, hi)| Item::Range(lo, hi)));
        }
        self.pos += 2 + close + 2;
        Ok(())
    }
}

/// An ASCII byte that stands for itself outside a class (and is not whitespace, which
/// verbose mode would skip).
#[inline]
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b' ' | b'-'
                | b'_'
                | b','
                | b':'
                | b';'
                | b'='
                | b'@'
                | b'/'
                | b'\''
                | b'"'
                | b'!'
                | b'%'
                | b'&'
                | b'~'
                | b'`'
                | b'<'
                | b'>'
        )
}

#[inline]
fn is_quantifier(b: u8) -> bool {
    matches!(b, b'*' | b'+' | b'?' | b'{')
}

fn next_char(c: char) -> char {
    match c {
        '\u{D7FF}' => '\u{E000}',
        c => char::from_u32(c as u32 + 1).unwrap_or(char::MAX),
    }
}

fn prev_char(c: char) -> char {
    match c {
        '\u{E000}' => '\u{D7FF}',
        c => char::from_u32((c as u32).saturating_sub(1)).unwrap_or('\0'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_syntax() {
        for p in [
            r"\b\d{3}-\d{4}\b",
            r"(?i)falcon[- ]?\d+",
            r"(?i)\bproject\s+(falcon|osprey|kestrel)\b",
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
            r"[[:alpha:][:^digit:]]",
            r"(?x) a b # comment
               c",
            r"(?P<name>x)(?<other>y)",
            r"a{2}b{2,}c{2,5}?",
            r"\x41\x{263A}\u00e9\.\-\#",
            r"[\]\\\-a-z]",
            r"a||b()",
            r"\b{start}x\b{end}\<y\>",
            "",
        ] {
            parse(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
    }

    #[test]
    fn rejects_with_a_reason() {
        for (p, want) in [
            (r"(a", "unclosed group"),
            (r"a)", "unopened group"),
            (r"[a", "unclosed character class"),
            (r"*a", "missing expression"),
            (r"a{2,1}", "min over max"),
            (r"a{1001}", "over 1000"),
            (r"a{x}", "decimal"),
            (r"(?=a)", "look-around"),
            (r"(?<!a)", "look-around"),
            (r"(a)\1", "backreferences"),
            (r"\pL", "Unicode property"),
            (r"\q", "unrecognized escape"),
            (r"[a[b]]", "nested character classes"),
            (r"[a&&b]", "set operations"),
            (r"[z-a]", "invalid class range"),
            (r"(?z)", "unknown flag"),
            (r"(?)", "empty flag group"),
            (r"\", "lone"),
            (r"(?i)+", "repetition of a flag group"),
            (
                r"(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((a)))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))",
                "nested deeper",
            ),
            (r"(a{1000}){1000}", "too large"),
            (
                r"\w{1000}\w{1000}\w{1000}\w{1000}\w{1000}\w{1000}\w{1000}\w{1000}\w{1000}\w{1000}\w{1000}",
                "too large",
            ),
        ] {
            let e = parse(p).expect_err(p);
            assert!(e.to_string().contains(want), "{p}: {e}");
        }
        assert!(
            parse(&"a".repeat(1025))
                .unwrap_err()
                .msg
                .contains("longer than")
        );
    }

    #[test]
    fn literal_runs_are_merged() {
        let ast = parse("abc+d").unwrap();
        // "ab", Repeat(c), "d" under one concat.
        let Node::Concat { start, end } = ast.nodes[ast.root as usize] else {
            panic!("{ast:?}")
        };
        assert_eq!(end - start, 3);
        assert_eq!(ast.chars, ['a', 'b', 'c', 'd']);
    }
}
