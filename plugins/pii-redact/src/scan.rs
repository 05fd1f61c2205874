//! The detectors: one pass over a text's bytes, no regex, and no allocation unless
//! something is found.
//!
//! The fast path classifies eight bytes at a time through a 256-entry table, without
//! branching per byte, and only stops at a byte that can start or anchor a detection:
//! a digit or upper-case letter starting a word (IPv4, SSN, card, phone; AWS key, IBAN),
//! or one of `@` (e-mail), `+` and `(` (phone), `-` (private key block; the dash of
//! `sk-` and `xox?-`), `_` (of `gh?_` and `github_`), `J` (of `eyJ`) and `:` (after a
//! word of at most four hex digits: IPv6). In English prose that is a few percent of the
//! bytes; each check there is a few byte comparisons before anything is parsed.
//!
//! Every byte of a match is ASCII (except a private key block cut off at the end of the
//! text, which runs to the end) and any non-ASCII character counts as a separator, so
//! match offsets always fall on character boundaries whatever the surrounding text.
//! Detections that overlap are resolved by [`resolve`].

use std::cmp::Reverse;
use std::collections::BTreeMap;

/// A kind of thing the plugin detects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An e-mail address.
    Email,
    /// A phone number (international `+CC` form, or a national format with separators).
    Phone,
    /// A payment card number (13-19 digits, Luhn-valid, known issuer prefix).
    Card,
    /// An IBAN (known country, its length, mod-97 valid).
    Iban,
    /// A US social security number, `AAA-GG-SSSS`.
    Ssn,
    /// An IPv4 or IPv6 address.
    Ip,
    /// An AWS access key id (`AKIA`/`ASIA` + 16).
    AwsKey,
    /// A GitHub token (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`).
    GithubToken,
    /// A Slack token (`xoxa-`, `xoxb-`, `xoxp-`, `xoxo-`, `xoxs-`, `xoxr-`).
    SlackToken,
    /// An `sk-` style API key (OpenAI, Anthropic, ...).
    ApiKey,
    /// A PEM private key block.
    PrivateKey,
    /// A JSON Web Token.
    Jwt,
}

impl Kind {
    /// Every kind, in the order findings are reported.
    pub const ALL: [Kind; 12] = [
        Kind::Email,
        Kind::Phone,
        Kind::Card,
        Kind::Iban,
        Kind::Ssn,
        Kind::Ip,
        Kind::AwsKey,
        Kind::GithubToken,
        Kind::SlackToken,
        Kind::ApiKey,
        Kind::PrivateKey,
        Kind::Jwt,
    ];

    /// The kind's config key and finding rule, e.g. `aws_key`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Card => "card",
            Kind::Iban => "iban",
            Kind::Ssn => "ssn",
            Kind::Ip => "ip",
            Kind::AwsKey => "aws_key",
            Kind::GithubToken => "github_token",
            Kind::SlackToken => "slack_token",
            Kind::ApiKey => "api_key",
            Kind::PrivateKey => "private_key",
            Kind::Jwt => "jwt",
        }
    }

    /// The kind's placeholder stem, e.g. `AWS_KEY` for `[AWS_KEY_1]`.
    pub fn tag(self) -> &'static str {
        match self {
            Kind::Email => "EMAIL",
            Kind::Phone => "PHONE",
            Kind::Card => "CARD",
            Kind::Iban => "IBAN",
            Kind::Ssn => "SSN",
            Kind::Ip => "IP",
            Kind::AwsKey => "AWS_KEY",
            Kind::GithubToken => "GITHUB_TOKEN",
            Kind::SlackToken => "SLACK_TOKEN",
            Kind::ApiKey => "API_KEY",
            Kind::PrivateKey => "PRIVATE_KEY",
            Kind::Jwt => "JWT",
        }
    }

    /// Whether the kind is a credential (else personal data).
    pub fn is_credential(self) -> bool {
        self >= Kind::AwsKey
    }

    /// The finding kind: `credential` or `pii`.
    pub fn category(self) -> &'static str {
        if self.is_credential() {
            "credential"
        } else {
            "pii"
        }
    }

    /// The kind named `name` (its config key), if any.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Precedence when detections overlap: private key blocks, then other credentials,
    /// then the structured PII, then phone numbers (the loosest shape).
    fn tier(self) -> u8 {
        match self {
            Kind::PrivateKey => 3,
            k if k.is_credential() => 2,
            Kind::Phone => 0,
            _ => 1,
        }
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// A set of [`Kind`]s: what a scan looks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindSet(u16);

impl KindSet {
    /// Every kind.
    pub const ALL: KindSet = KindSet((1 << Kind::ALL.len()) - 1);

    /// No kind.
    pub const fn empty() -> Self {
        KindSet(0)
    }

    /// Adds `kind`.
    pub fn insert(&mut self, kind: Kind) {
        self.0 |= kind.bit();
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: Kind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Kind> for KindSet {
    fn from_iter<I: IntoIterator<Item = Kind>>(iter: I) -> Self {
        let mut set = KindSet::empty();
        for k in iter {
            set.insert(k);
        }
        set
    }
}

/// One detection: bytes `start..end` of the scanned text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// What was found.
    pub kind: Kind,
    /// First byte.
    pub start: usize,
    /// End, exclusive.
    pub end: usize,
}

/// A 256-entry byte class table from a `const fn(u8) -> bool`.
macro_rules! byte_table {
    ($f:ident) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = $f(i as u8);
            i += 1;
        }
        t
    }};
}

const fn word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

const fn key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

const fn local_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// ASCII letters, digits and `_`: what a "word" is made of.
static WORD: [bool; 256] = byte_table!(word_byte);
/// base64url: JWT segments and `sk-` key bodies.
static KEY: [bool; 256] = byte_table!(key_byte);
/// What an e-mail local part may hold (a common subset of RFC 5322).
static LOCAL: [bool; 256] = byte_table!(local_byte);

/// [`CLASS`] bit: a word byte.
const WORD_BYTE: u8 = 1;
/// [`CLASS`] bit: a byte that may start a detection at the start of a word (digits and
/// upper-case letters).
const START: u8 = 2;
/// [`CLASS`] bit: a byte that may start or anchor a detection anywhere: `@` (e-mail),
/// `+` and `(` (phone), `-` (private key; the dash of `sk-` and `xox?-`), `:` (IPv6),
/// `_` (of `gh?_` and `github_`) and `J` (of `eyJ`).
const SYMBOL: u8 = 4;

const fn class_of(c: u8) -> u8 {
    let mut class = 0;
    if word_byte(c) {
        class |= WORD_BYTE;
    }
    if c.is_ascii_digit() || c.is_ascii_uppercase() {
        class |= START;
    }
    if matches!(c, b'@' | b'+' | b'(' | b'-' | b':' | b'_' | b'J') {
        class |= SYMBOL;
    }
    class
}

/// Byte classes for the scan's fast path.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = class_of(i as u8);
        i += 1;
    }
    t
};

#[inline(always)]
fn is_word(c: u8) -> bool {
    WORD[c as usize]
}

#[inline(always)]
fn is_key(c: u8) -> bool {
    KEY[c as usize]
}

fn digit(c: u8) -> bool {
    c.is_ascii_digit()
}

/// End of the run of `class` bytes starting at `i`.
#[inline(always)]
fn run_end(b: &[u8], mut i: usize, class: &[bool; 256]) -> usize {
    while i < b.len() && class[b[i] as usize] {
        i += 1;
    }
    i
}

/// Scans `text` for `kinds`, leaving in `out` the detections, sorted by start and not
/// overlapping (see [`resolve`]). `out` is cleared first; reuse it across texts.
pub fn scan(text: &str, kinds: KindSet, out: &mut Vec<Match>) {
    out.clear();
    if kinds.is_empty() {
        return;
    }
    let b = text.as_bytes();
    let n = b.len();
    let mut s = Scan {
        text,
        b,
        kinds,
        out,
        jwt_until: 0,
        key_until: 0,
        slack_until: 0,
        last_end: 0,
    };
    // Eight bytes at a time, branch-free: their classes in the lanes of a u64. Only a
    // trigger byte at a word start, or a symbol, leaves the fast path (a few percent of
    // the bytes of prose); the scan then goes on after what it looked at.
    const LANES: u64 = 0x0101_0101_0101_0101;
    let class = |i: usize| u64::from(CLASS[b[i] as usize]);
    let mut i = 0;
    // The previous byte's WORD_BYTE bit, in lane 0.
    let mut carry = 0u64;
    while i < n {
        let hits = if i + 8 <= n {
            let raw = u64::from_le_bytes(b[i..i + 8].try_into().expect("eight bytes"));
            let mut x = 0u64;
            for k in 0..8 {
                x |= u64::from(CLASS[((raw >> (8 * k)) & 0xFF) as usize]) << (8 * k);
            }
            let words = x & LANES;
            let after_word = (words << 8) | carry;
            let hits = ((x >> 1) & LANES & !after_word) | ((x >> 2) & LANES);
            if hits == 0 {
                carry = words >> 56;
                i += 8;
                continue;
            }
            hits
        } else {
            let c = class(i);
            let hit = ((c >> 1) & 1 & !carry) | ((c >> 2) & 1);
            if hit == 0 {
                carry = c & 1;
                i += 1;
                continue;
            }
            hit
        };
        let at = i + hits.trailing_zeros() as usize / 8;
        let next = s.at(at).max(at + 1);
        carry = class(next - 1) & 1;
        i = next;
    }
    resolve(out);
}

/// The state of one scan.
struct Scan<'a> {
    text: &'a str,
    b: &'a [u8],
    kinds: KindSet,
    out: &'a mut Vec<Match>,
    /// No JWT starts before this (a failed parse already covered the segment).
    jwt_until: usize,
    /// No `sk-` key starts before this (a failed key body already covered it).
    key_until: usize,
    /// No Slack token starts before this.
    slack_until: usize,
    /// The end of the last detection.
    last_end: usize,
}

impl Scan<'_> {
    /// Looks closer at `i` (a symbol, or a digit or upper-case letter starting a word);
    /// returns where the scan goes on (after a detection, its end).
    fn at(&mut self, i: usize) -> usize {
        let b = self.b;
        let found = match b[i] {
            b'@' => {
                self.email(i);
                None
            }
            b'+' | b'(' => self.phone_sign(i),
            b'-' => self.dash(i),
            b':' => self.colon(i),
            b'_' => self.underscore(i),
            b'J' if self.word_before(i, b"ey").is_some() => self.jwt(i - 2),
            c => {
                if i > 0 && is_word(b[i - 1]) {
                    return i + 1; // a `J` inside a word
                }
                let end = run_end(b, i + 1, &WORD);
                let found = match c {
                    b'0'..=b'9' => self.number(i, end),
                    _ => self.upper(i, end),
                };
                // The rest of the word holds no word start.
                return found.map_or(end, |e| e.max(end));
            }
        };
        found.unwrap_or(i + 1)
    }

    /// Where a word made of `prefix` right before `i` starts, if one does.
    fn word_before(&self, i: usize, prefix: &[u8]) -> Option<usize> {
        let s = i.checked_sub(prefix.len())?;
        (self.b[s..i] == *prefix && (s == 0 || !is_word(self.b[s - 1]))).then_some(s)
    }

    /// `-`: a private key block, or the dash of `sk-` or `xox?-`.
    fn dash(&mut self, i: usize) -> Option<usize> {
        if let Some(end) = self.private_key(i) {
            return Some(end);
        }
        if let Some(s) = self.word_before(i, b"sk") {
            return self.api_key(s, i);
        }
        let s = i.checked_sub(4)?;
        if self.word_before(i - 1, b"xox").is_some() {
            return self.slack(s, i);
        }
        None
    }

    /// `_`: the underscore of `gh?_` or `github_pat_`.
    fn underscore(&mut self, u: usize) -> Option<usize> {
        if !self.on(Kind::GithubToken) {
            return None;
        }
        let b = self.b;
        let start = match u.checked_sub(3) {
            Some(s) if matches!(b[u - 1], b'p' | b'o' | b'u' | b's' | b'r') => {
                self.word_before(u - 1, b"gh").map(|_| s)
            }
            _ => None,
        };
        let start = start.or_else(|| self.word_before(u, b"github"))?;
        let end = run_end(b, u, &WORD);
        self.github(start, end)
    }

    /// `:` after a word of at most four hex digits: an IPv6 address from that word.
    fn colon(&mut self, c: usize) -> Option<usize> {
        if !self.on(Kind::Ip) {
            return None;
        }
        let b = self.b;
        let mut j = c;
        while j > 0 && c - j <= 4 && is_word(b[j - 1]) {
            j -= 1;
        }
        if j == c || c - j > 4 || (j > 0 && is_word(b[j - 1])) || j < self.last_end {
            return None;
        }
        self.ipv6(j)
    }

    fn on(&self, kind: Kind) -> bool {
        self.kinds.contains(kind)
    }

    fn push(&mut self, kind: Kind, start: usize, end: usize) -> Option<usize> {
        self.out.push(Match { kind, start, end });
        self.last_end = self.last_end.max(end);
        Some(end)
    }

    fn prev(&self, i: usize) -> u8 {
        if i == 0 { b' ' } else { self.b[i - 1] }
    }

    /// `@`: an e-mail address around it. Does not skip: the domain is scanned on.
    fn email(&mut self, at: usize) {
        if !self.on(Kind::Email) {
            return;
        }
        let b = self.b;
        let mut s = at;
        while s > 0 && LOCAL[b[s - 1] as usize] {
            s -= 1;
            if at - s > 64 {
                return;
            }
        }
        while s < at && b[s] == b'.' {
            s += 1;
        }
        if s == at || b[at - 1] == b'.' || (s > 0 && b[s - 1] == b'@') {
            return;
        }
        let Some((end, tld)) = domain(b, at + 1) else {
            return;
        };
        if b.get(end) == Some(&b'@') || FILE_EXTENSIONS.contains(&tld) {
            return;
        }
        self.push(Kind::Email, s, end);
    }

    /// `+` or `(`: an international or parenthesised phone number.
    fn phone_sign(&mut self, i: usize) -> Option<usize> {
        if !self.on(Kind::Phone) || digit(self.prev(i)) || is_word(self.prev(i)) {
            return None;
        }
        if self.prev(i) == b'+' {
            return None;
        }
        let end = phone(self.b, i)?;
        self.push(Kind::Phone, i, end)
    }

    /// `-`: a `-----BEGIN ... PRIVATE KEY-----` block, through its END line or to the
    /// end of the text.
    fn private_key(&mut self, i: usize) -> Option<usize> {
        const BEGIN: &[u8] = b"-----BEGIN ";
        if !self.on(Kind::PrivateKey) || !self.b[i..].starts_with(BEGIN) {
            return None;
        }
        let b = self.b;
        let ls = i + BEGIN.len();
        let mut le = ls;
        while le < b.len()
            && le - ls <= 64
            && (b[le].is_ascii_uppercase() || digit(b[le]) || b[le] == b' ')
        {
            le += 1;
        }
        if !b[le..].starts_with(b"-----") {
            return None;
        }
        let label = &self.text[ls..le];
        if !label.contains("PRIVATE KEY") {
            return None;
        }
        let after = le + 5;
        let footer = format!("-----END {label}-----");
        let end = self.text[after..]
            .find(&footer)
            .map_or(b.len(), |p| after + p + footer.len());
        self.push(Kind::PrivateKey, i, end)
    }

    /// A word of digits at `i..end`: IPv4, SSN, card, phone.
    fn number(&mut self, i: usize, end: usize) -> Option<usize> {
        let b = self.b;
        if !b[i..end].iter().all(|&c| digit(c)) {
            return None;
        }
        let prev = self.prev(i);
        let mut found = None;
        if self.on(Kind::Ip)
            && prev != b'.'
            && end - i <= 3
            && b.get(end) == Some(&b'.')
            && let Some(e) = ipv4(b, i)
        {
            found = self.push(Kind::Ip, i, e);
        }
        if matches!(prev, b'.' | b'-' | b'/' | b'\\' | b'@' | b'+') {
            return found;
        }
        // The next group of a space-separated digit sequence already read as a phone
        // number from its start (`1 000 000`), unless that start ended in a detection.
        let continuation = prev == b' ' && i >= 2 && digit(b[i - 2]) && i - 1 != self.last_end;
        if self.on(Kind::Ssn)
            && end - i == 3
            && b.get(end) == Some(&b'-')
            && let Some(e) = ssn(b, i)
        {
            found = found.max(self.push(Kind::Ssn, i, e));
        }
        if self.on(Kind::Card)
            && end - i >= 4
            && let Some(e) = card(b, i)
        {
            found = found.max(self.push(Kind::Card, i, e));
        }
        if self.on(Kind::Phone)
            && !continuation
            && let Some(e) = phone(b, i)
        {
            // Go on from the first group: a card may start in a later one
            // (`qty 2 4111 1111 1111 1111`), and wins over the phone number.
            self.push(Kind::Phone, i, e);
        }
        found
    }

    /// A word starting with an upper-case letter: AWS key id, IBAN.
    fn upper(&mut self, i: usize, end: usize) -> Option<usize> {
        let w = &self.b[i..end];
        if self.on(Kind::AwsKey)
            && w.len() == 20
            && (w.starts_with(b"AKIA") || w.starts_with(b"ASIA"))
            && w[4..].iter().all(|c| c.is_ascii_uppercase() || digit(*c))
        {
            return self.push(Kind::AwsKey, i, end);
        }
        if self.on(Kind::Iban)
            && w.len() >= 4
            && w[1].is_ascii_uppercase()
            && digit(w[2])
            && digit(w[3])
            && let Some(e) = iban(self.b, i)
        {
            return self.push(Kind::Iban, i, e);
        }
        None
    }

    /// The word at `i..end` (`gh?_...` or `github_pat_...`): a GitHub token.
    fn github(&mut self, i: usize, end: usize) -> Option<usize> {
        if !self.on(Kind::GithubToken) {
            return None;
        }
        let w = &self.b[i..end];
        let classic = w.len() >= 40
            && w[1] == b'h'
            && matches!(w[2], b'p' | b'o' | b'u' | b's' | b'r')
            && w[3] == b'_'
            && w[4..].iter().all(u8::is_ascii_alphanumeric);
        let fine_grained = w.len() >= 11 + 22 && w.starts_with(b"github_pat_");
        if classic || fine_grained {
            return self.push(Kind::GithubToken, i, end);
        }
        None
    }

    /// The word `sk` followed by `-`: an API key if a long, random-looking body follows.
    fn api_key(&mut self, i: usize, end: usize) -> Option<usize> {
        let b = self.b;
        if !self.on(Kind::ApiKey) || end != i + 2 || b[i + 1] != b'k' || b.get(end) != Some(&b'-') {
            return None;
        }
        if i < self.key_until {
            return None;
        }
        let e = run_end(b, end + 1, &KEY);
        // Any `sk-` inside this run has a shorter body with no more randomness: skip them.
        self.key_until = e;
        let mut body = &b[end + 1..e];
        for prefix in [&b"proj-"[..], b"ant-", b"svcacct-", b"admin-"] {
            if let Some(rest) = body.strip_prefix(prefix) {
                body = rest;
                break;
            }
        }
        if body.len() < 20 || !looks_random(body) {
            return None;
        }
        self.push(Kind::ApiKey, i, e)
    }

    /// The word `xox?` followed by `-`: a Slack token.
    fn slack(&mut self, i: usize, end: usize) -> Option<usize> {
        let b = self.b;
        if !self.on(Kind::SlackToken)
            || end != i + 4
            || !b[i..].starts_with(b"xox")
            || !matches!(b[i + 3], b'a' | b'b' | b'p' | b'o' | b's' | b'r')
            || b.get(end) != Some(&b'-')
            || i < self.slack_until
        {
            return None;
        }
        let mut e = end + 1;
        while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'-') {
            e += 1;
        }
        self.slack_until = e;
        while e > end + 1 && b[e - 1] == b'-' {
            e -= 1;
        }
        let body = &b[end + 1..e];
        if body.len() < 10 || !body.iter().any(|&c| digit(c)) {
            return None;
        }
        self.push(Kind::SlackToken, i, e)
    }

    /// `eyJ` at `i`: a JWT if three base64url segments (five for an encrypted one)
    /// follow.
    fn jwt(&mut self, i: usize) -> Option<usize> {
        let b = self.b;
        if !self.on(Kind::Jwt) || i < self.jwt_until || !b[i..].starts_with(b"eyJ") {
            return None;
        }
        let e1 = run_end(b, i, &KEY);
        let ok = |s: usize, e: usize, min: usize| e - s >= min;
        let mut end = None;
        if ok(i, e1, 10) && b.get(e1) == Some(&b'.') {
            let e2 = run_end(b, e1 + 1, &KEY);
            if ok(e1 + 1, e2, 4) && b.get(e2) == Some(&b'.') {
                let e3 = run_end(b, e2 + 1, &KEY);
                if ok(e2 + 1, e3, 10) {
                    end = Some(jwe_tail(b, e3));
                }
            }
        }
        match end {
            Some(end) => self.push(Kind::Jwt, i, end),
            None => {
                // Every `eyJ` inside the first segment fails the same way.
                self.jwt_until = e1;
                None
            }
        }
    }

    /// A word of at most four hex digits followed by `:`: an IPv6 address.
    fn ipv6(&mut self, i: usize) -> Option<usize> {
        if !self.on(Kind::Ip) || matches!(self.prev(i), b':' | b'.') {
            return None;
        }
        let end = ipv6(self.b, i)?;
        self.push(Kind::Ip, i, end)
    }
}

/// Top-level "domains" that are really file names (`icon@2x.png`).
const FILE_EXTENSIONS: [&[u8]; 9] = [
    b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"pdf", b"ico", b"bmp",
];

/// An e-mail domain from `i`: at least two labels, the last alphabetic (2+ letters).
/// Returns its end and top-level label.
fn domain(b: &[u8], i: usize) -> Option<(usize, &[u8])> {
    let mut j = i;
    let mut labels = 0;
    loop {
        let ls = j;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'-') && j - ls < 64 {
            j += 1;
        }
        if j == ls || b[ls] == b'-' || b[j - 1] == b'-' {
            return None;
        }
        labels += 1;
        if j + 1 < b.len() && b[j] == b'.' && b[j + 1].is_ascii_alphanumeric() {
            j += 1;
            continue;
        }
        let tld = &b[ls..j];
        let fits = labels >= 2 && j - i <= 253;
        let next_ok = j == b.len() || !(is_word(b[j]) || b[j] == b'-');
        let tld_ok = tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic);
        return (fits && next_ok && tld_ok).then_some((j, tld));
    }
}

/// Whether a `.` and a digit follow at `j` (more of a dotted number).
fn dot_digit(b: &[u8], j: usize) -> bool {
    b.get(j) == Some(&b'.') && b.get(j + 1).is_some_and(|&d| digit(d))
}

/// Whether a number ending at `e` really ends there: not glued to a word, an `@` or
/// more digits (`1.2.3.4.5`, `555-123-4567/8`).
fn num_end_ok(b: &[u8], e: usize) -> bool {
    match b.get(e) {
        None => true,
        Some(&c) => {
            !is_word(c)
                && c != b'@'
                && !(matches!(c, b'.' | b'-' | b'/') && b.get(e + 1).is_some_and(|&d| digit(d)))
        }
    }
}

/// A dotted quad from `i` with octets 0..=255 (no leading zeros), except the
/// unspecified, loopback and broadcast addresses.
fn ipv4(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    let mut octets = [0u16; 4];
    for (k, octet) in octets.iter_mut().enumerate() {
        if k > 0 {
            if b.get(j) != Some(&b'.') {
                return None;
            }
            j += 1;
        }
        let s = j;
        while j < b.len() && digit(b[j]) && j - s < 4 {
            *octet = *octet * 10 + u16::from(b[j] - b'0');
            j += 1;
        }
        let len = j - s;
        if len == 0 || len > 3 || *octet > 255 || (len > 1 && b[s] == b'0') {
            return None;
        }
    }
    // Not glued to a word or more dotted digits; `/24` or `:8080` may follow.
    if b.get(j).is_some_and(|&c| is_word(c)) || dot_digit(b, j) {
        return None;
    }
    let special = octets == [0, 0, 0, 0] || octets[0] == 127 || octets == [255; 4];
    (!special).then_some(j)
}

/// `AAA-GG-SSSS` from `i`, area not 000, 666 or 9xx, group not 00, serial not 0000.
fn ssn(b: &[u8], i: usize) -> Option<usize> {
    let w = b.get(i..i + 11)?;
    let shape = w.iter().enumerate().all(|(k, &c)| match k {
        3 | 6 => c == b'-',
        _ => digit(c),
    });
    if !shape || !num_end_ok(b, i + 11) {
        return None;
    }
    let area = &w[0..3];
    let valid = area != b"000"
        && area != b"666"
        && area[0] != b'9'
        && &w[4..6] != b"00"
        && &w[7..11] != b"0000";
    valid.then_some(i + 11)
}

/// The most digit groups a card or phone number is read in.
const MAX_GROUPS: usize = 8;

/// A run of digits in a card or phone number.
#[derive(Clone, Copy, Debug, Default)]
struct Group {
    /// Its digits.
    len: usize,
    /// Its first digit.
    first: u8,
    /// The byte after it (after the `)` for a parenthesised group).
    end: usize,
    /// Written in parentheses.
    paren: bool,
    /// The separator that follows it before the next group (`)` when none follows a
    /// parenthesised group); 0 for the last.
    sep: u8,
}

/// Digit groups from the digit at `i`, joined by single separators from `seps`.
fn digit_groups(b: &[u8], i: usize, seps: &[u8]) -> ([Group; MAX_GROUPS], usize) {
    let mut g = [Group::default(); MAX_GROUPS];
    let mut n = 0;
    let mut j = i;
    loop {
        let s = j;
        j = run_digits(b, j);
        g[n] = Group {
            len: j - s,
            first: b[s],
            end: j,
            ..Group::default()
        };
        n += 1;
        if n == MAX_GROUPS || j + 1 >= b.len() || !seps.contains(&b[j]) || !digit(b[j + 1]) {
            return (g, n);
        }
        g[n - 1].sep = b[j];
        j += 1;
    }
}

fn run_digits(b: &[u8], mut j: usize) -> usize {
    while j < b.len() && digit(b[j]) {
        j += 1;
    }
    j
}

/// A payment card number from the digit at `i`: 13-19 digits, contiguous or in groups
/// (4-4-4-4[-1..4], Amex 4-6-5, Diners 4-6-4) joined by one kind of separator (space
/// or `-`), with a known issuer prefix and a valid Luhn check digit. Trailing
/// space-separated groups that do not fit are left out.
fn card(b: &[u8], i: usize) -> Option<usize> {
    let (g, n) = digit_groups(b, i, b" -");
    if !num_end_ok(b, g[n - 1].end) {
        return None;
    }
    let mut total: usize = g[..n].iter().map(|g| g.len).sum();
    for k in (1..=n).rev() {
        if k < n {
            if g[k - 1].sep != b' ' {
                return None;
            }
            total -= g[k].len;
        }
        if total < 13 {
            return None;
        }
        if total <= 19 && card_shape(&g[..k]) {
            let mut digits = [0u8; 19];
            let mut m = 0;
            let mut j = i;
            while m < total {
                if digit(b[j]) {
                    digits[m] = b[j] - b'0';
                    m += 1;
                }
                j += 1;
            }
            let d = &digits[..total];
            if issuer_ok(d) && luhn(d) {
                return Some(g[k - 1].end);
            }
        }
    }
    None
}

fn card_shape(g: &[Group]) -> bool {
    if g.len() == 1 {
        return true;
    }
    if g[..g.len() - 1].iter().any(|x| x.sep != g[0].sep) {
        return false;
    }
    let lens = |l: &[usize]| g.len() == l.len() && g.iter().zip(l).all(|(x, &y)| x.len == y);
    let (last, init) = g.split_last().expect("at least two groups");
    (init.iter().all(|x| x.len == 4) && (1..=4).contains(&last.len))
        || lens(&[4, 6, 5])
        || lens(&[4, 6, 4])
}

/// Known issuer prefixes and their lengths: Visa, Mastercard, Amex, Diners, JCB,
/// Discover, UnionPay, Maestro.
fn issuer_ok(d: &[u8]) -> bool {
    let len = d.len();
    let p2 = d[0] * 10 + d[1];
    let p4 = u16::from(p2) * 100 + u16::from(d[2] * 10 + d[3]);
    match d[0] {
        4 => matches!(len, 13 | 16 | 19),
        2 => (2221..=2720).contains(&p4) && len == 16,
        5 => len >= 16,
        3 => match p2 {
            34 | 37 => len == 15,
            30 | 36 | 38 | 39 => len >= 14,
            35 => (3528..=3589).contains(&p4) && len >= 16,
            _ => false,
        },
        6 => len >= 16,
        _ => false,
    }
}

fn luhn(d: &[u8]) -> bool {
    let mut sum = 0u32;
    for (k, &x) in d.iter().rev().enumerate() {
        let x = u32::from(x);
        sum += if k % 2 == 1 {
            if x * 2 > 9 { x * 2 - 9 } else { x * 2 }
        } else {
            x
        };
    }
    sum.is_multiple_of(10)
}

/// A phone number from `i` (a digit, `+` or `(`): groups of digits joined by single
/// separators (space, `-`, `.`), the first may be parenthesised (after the country
/// code when international). Trailing space-separated groups that do not fit are left
/// out. See [`phone_shape`] for what counts.
fn phone(b: &[u8], i: usize) -> Option<usize> {
    let n = b.len();
    let intl = b[i] == b'+';
    let mut j = i + usize::from(intl);
    if intl && !(j < n && matches!(b[j], b'1'..=b'9')) {
        return None;
    }
    let mut g = [Group::default(); MAX_GROUPS];
    let mut ng = 0;
    let mut had_paren = false;
    loop {
        let paren = j < n && b[j] == b'(' && !had_paren && ng == usize::from(intl);
        let s = j + usize::from(paren);
        let e = run_digits(b, s);
        let len = e - s;
        if len == 0 || len > 15 || (paren && (len > 5 || b.get(e) != Some(&b')'))) {
            break;
        }
        had_paren |= paren;
        j = e + usize::from(paren);
        g[ng] = Group {
            len,
            first: b[s],
            end: j,
            paren,
            sep: 0,
        };
        ng += 1;
        if ng == MAX_GROUPS || j >= n {
            break;
        }
        let next_paren = !had_paren && ng == usize::from(intl);
        let starts_group = |c: u8| digit(c) || (c == b'(' && next_paren);
        if matches!(b[j], b' ' | b'-' | b'.') && j + 1 < n && starts_group(b[j + 1]) {
            g[ng - 1].sep = b[j];
            j += 1;
        } else if paren && digit(b[j]) {
            g[ng - 1].sep = b')';
        } else {
            break;
        }
    }
    if ng == 0 || !num_end_ok(b, g[ng - 1].end) {
        return None;
    }
    for k in (1..=ng).rev() {
        if k < ng && g[k - 1].sep != b' ' {
            return None;
        }
        if phone_shape(intl, &g[..k]) {
            return Some(g[k - 1].end);
        }
    }
    None
}

/// What counts as a phone number:
/// - international (`+`): 9-15 digits with the country code (1-3 digits) as its own
///   group, or 10-15 contiguous digits;
/// - national: 9-12 digits in groups of 2-8 (the first at most 5), and either
///   - a first group starting with the trunk `0` or in parentheses: `020 7946 0958`,
///     `07700 900123`, `(212) 555-0199`, and groups of two digits only in the
///     `01 23 45 67 89` style (dots too);
///   - or, without either, at least three groups of three or more digits led by a
///     three-digit area code or a `1`: `555-123-4567`, `1 800 555 1234`,
///     `138 0013 8000`; dots only as `555.123.4567`; and not thousands separators
///     (`100 200 300`, `1 000 000 000`).
fn phone_shape(intl: bool, g: &[Group]) -> bool {
    let total: usize = g.iter().map(|x| x.len).sum();
    let seps = &g[..g.len() - 1];
    let dots = seps.iter().any(|x| x.sep == b'.');
    if dots && seps.iter().any(|x| x.sep != b'.') {
        return false;
    }
    if intl {
        return if g.len() == 1 {
            (10..=15).contains(&total)
        } else {
            (9..=15).contains(&total) && g[0].len <= 3
        };
    }
    let (first, rest) = (&g[0], &g[1..]);
    if rest.is_empty()
        || !(9..=12).contains(&total)
        || first.len > 5
        || rest.iter().any(|x| x.len > 8 || x.len < 2)
    {
        return false;
    }
    if first.first == b'0' || first.paren {
        let pairs = first.first == b'0' && g.len() >= 4;
        let short = rest.iter().any(|x| x.len < 3);
        return pairs || !(short || dots);
    }
    let led = first.len == 3 || (first.len == 1 && first.first == b'1' && g[1].len == 3);
    let lens = |l: &[usize]| g.len() == l.len() && g.iter().zip(l).all(|(x, &y)| x.len == y);
    led && g.len() >= 3
        && rest.iter().all(|x| x.len >= 3)
        && !rest.iter().all(|x| x.len == 3)
        && (!dots || lens(&[3, 3, 4]))
}

/// IBAN lengths by country (SWIFT registry).
#[rustfmt::skip]
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24), (b"AE", 23), (b"AL", 28), (b"AT", 20), (b"AZ", 28), (b"BA", 20),
    (b"BE", 16), (b"BG", 22), (b"BH", 22), (b"BI", 27), (b"BR", 29), (b"BY", 28),
    (b"CH", 21), (b"CR", 22), (b"CY", 28), (b"CZ", 24), (b"DE", 22), (b"DJ", 27),
    (b"DK", 18), (b"DO", 28), (b"EE", 20), (b"EG", 29), (b"ES", 24), (b"FI", 18),
    (b"FK", 18), (b"FO", 18), (b"FR", 27), (b"GB", 22), (b"GE", 22), (b"GI", 23),
    (b"GL", 18), (b"GR", 27), (b"GT", 28), (b"HN", 28), (b"HR", 21), (b"HU", 28),
    (b"IE", 22), (b"IL", 23), (b"IQ", 23), (b"IS", 26), (b"IT", 27), (b"JO", 30),
    (b"KW", 30), (b"KZ", 20), (b"LB", 28), (b"LC", 32), (b"LI", 21), (b"LT", 20),
    (b"LU", 20), (b"LV", 21), (b"LY", 25), (b"MC", 27), (b"MD", 24), (b"ME", 22),
    (b"MK", 19), (b"MN", 20), (b"MR", 27), (b"MT", 31), (b"MU", 30), (b"NI", 28),
    (b"NL", 18), (b"NO", 15), (b"OM", 23), (b"PK", 24), (b"PL", 28), (b"PS", 29),
    (b"PT", 25), (b"QA", 29), (b"RO", 24), (b"RS", 22), (b"RU", 33), (b"SA", 24),
    (b"SC", 31), (b"SD", 18), (b"SE", 24), (b"SI", 19), (b"SK", 24), (b"SM", 27),
    (b"SO", 23), (b"ST", 25), (b"SV", 28), (b"TL", 23), (b"TN", 24), (b"TR", 26),
    (b"UA", 29), (b"VA", 22), (b"VG", 24), (b"XK", 20), (b"YE", 30),
];

/// An IBAN from `i` (two upper-case letters and two digits): the country's length in
/// upper-case letters and digits, contiguous or in groups of four joined by single
/// spaces, check digits 02..=98 and mod 97 = 1.
fn iban(b: &[u8], i: usize) -> Option<usize> {
    let cc = b.get(i..i + 2)?;
    let len = IBAN_LENGTHS.iter().find(|(c, _)| c[..] == *cc)?.1;
    let check = (b[i + 2] - b'0') * 10 + (b[i + 3] - b'0');
    if !(2..=98).contains(&check) {
        return None;
    }
    let mut chars = [0u8; 34];
    let mut count = 0;
    let mut j = i;
    let alnum = |c: u8| c.is_ascii_uppercase() || digit(c);
    while count < len && j < b.len() {
        if alnum(b[j]) {
            chars[count] = b[j];
            count += 1;
        } else if !(b[j] == b' ' && count % 4 == 0 && j + 1 < b.len() && alnum(b[j + 1])) {
            break;
        }
        j += 1;
    }
    if count != len || j < b.len() && is_word(b[j]) {
        return None;
    }
    let mut rem = 0u32;
    for &c in chars[4..len].iter().chain(&chars[..4]) {
        rem = if digit(c) {
            (rem * 10 + u32::from(c - b'0')) % 97
        } else {
            (rem * 100 + u32::from(c - b'A' + 10)) % 97
        };
    }
    (rem == 1).then_some(j)
}

/// An IPv6 address from the hex group at `i`: eight groups, or fewer with one `::`
/// (at least two groups then); at least one decimal digit, so `Face::face` or
/// `dead::beef` in code is not one; times (`12:30:45`) and MAC addresses have too few
/// groups.
fn ipv6(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    let mut groups = 0;
    let mut compressed = false;
    let mut has_digit = false;
    loop {
        let s = j;
        while j < b.len() && b[j].is_ascii_hexdigit() && j - s < 5 {
            has_digit |= digit(b[j]);
            j += 1;
        }
        if j == s || j - s > 4 {
            return None;
        }
        groups += 1;
        if groups > 8 {
            return None;
        }
        if b.get(j) != Some(&b':') {
            break;
        }
        if b.get(j + 1) == Some(&b':') {
            if compressed {
                return None;
            }
            compressed = true;
            if b.get(j + 2).is_some_and(u8::is_ascii_hexdigit) {
                j += 2;
                continue;
            }
            j += 2;
            break;
        }
        if !b.get(j + 1).is_some_and(u8::is_ascii_hexdigit) {
            break;
        }
        j += 1;
    }
    let next_ok = !b.get(j).is_some_and(|&c| is_word(c) || c == b':') && !dot_digit(b, j);
    let count_ok = if compressed { groups >= 2 } else { groups == 8 };
    (next_ok && count_ok && has_digit).then_some(j)
}

/// The end of a JWS at `e3`, or of a JWE if exactly two more segments follow.
fn jwe_tail(b: &[u8], e3: usize) -> usize {
    let mut end = e3;
    for _ in 0..2 {
        if b.get(end) != Some(&b'.') {
            return e3;
        }
        let e = run_end(b, end + 1, &KEY);
        if e == end + 1 {
            return e3;
        }
        end = e;
    }
    if b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(|&c| is_key(c)) {
        return e3;
    }
    end
}

/// Whether an `sk-` key body looks generated: a letter, a digit, and a run of at least
/// 12 letters and digits (so `sk-learn-...` or `sk-2024-annual-report-v2` do not count).
fn looks_random(body: &[u8]) -> bool {
    let mut letter = false;
    let mut number = false;
    let mut run = 0;
    let mut longest = 0;
    for &c in body {
        letter |= c.is_ascii_alphabetic();
        number |= digit(c);
        if c.is_ascii_alphanumeric() {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    letter && number && longest >= 12
}

/// Makes detections non-overlapping, deterministically: where detections overlap, a
/// private key block beats other credentials, credentials beat PII, structured PII
/// beats phone numbers; then the longer wins, then the earlier, then the kind listed
/// first. Leaves them sorted by start.
pub fn resolve(found: &mut Vec<Match>) {
    if found.len() < 2 {
        return;
    }
    found.sort_unstable_by_key(|m| (m.start, Reverse(m.end), m.kind));
    if found.windows(2).all(|w| w[0].end <= w[1].start) {
        return;
    }
    let mut out = Vec::with_capacity(found.len());
    let mut k = 0;
    while k < found.len() {
        let mut hi = found[k].end;
        let mut e = k + 1;
        while e < found.len() && found[e].start < hi {
            hi = hi.max(found[e].end);
            e += 1;
        }
        if e == k + 1 {
            out.push(found[k]);
        } else {
            let cluster = &mut found[k..e];
            cluster.sort_unstable_by_key(|m| {
                (
                    Reverse(m.kind.tier()),
                    Reverse(m.end - m.start),
                    m.start,
                    m.kind,
                )
            });
            // Accepted spans by start; they never overlap, so the one starting last
            // before a candidate's end is the only one that can overlap it.
            let mut taken: BTreeMap<usize, Match> = BTreeMap::new();
            for m in cluster.iter() {
                let clash = taken
                    .range(..m.end)
                    .next_back()
                    .is_some_and(|(_, t)| t.end > m.start);
                if !clash {
                    taken.insert(m.start, *m);
                }
            }
            out.extend(taken.into_values());
        }
        k = e;
    }
    *found = out;
}
