//! The engine (parser, Pike VM, literal prefilter) checked against the `regex` crate
//! on generated patterns and texts.

use crate::literal::{Prefilter, normalize_into, required};
use crate::syntax::parse;
use crate::vm::Program;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

fn gen_pattern(r: &mut Rng, depth: u32) -> String {
    let atoms = [
        "a",
        "b",
        "A",
        "1",
        "-",
        " ",
        "ab",
        "ba",
        "\\d",
        "\\w",
        "\\s",
        "\\D",
        "[ab]",
        "[^a]",
        "[a-c1]",
        "[[:digit:]-]",
        ".",
        "\\b",
        "\\B",
        "^",
        "$",
        "é",
        "É",
        "\\.",
        "x",
    ];
    let n = 1 + r.below(4);
    let mut s = String::new();
    for _ in 0..n {
        let mut atom = if depth < 2 && r.below(5) == 0 {
            let inner = gen_pattern(r, depth + 1);
            if r.below(3) == 0 {
                let other = gen_pattern(r, depth + 1);
                format!("(?:{inner}|{other})")
            } else {
                format!("({inner})")
            }
        } else {
            r.pick(&atoms).to_string()
        };
        if r.below(3) == 0 {
            atom.push_str(r.pick(&["*", "+", "?", "{2}", "{1,3}", "{0,2}", "*?", "+?", "{2,}"]));
        }
        s.push_str(&atom);
    }
    if depth == 0 {
        match r.below(6) {
            0 => s.insert_str(0, "(?i)"),
            1 => s.insert_str(0, "(?m)"),
            2 => s.push_str("|zz"),
            _ => {}
        }
    }
    s
}

fn gen_text(r: &mut Rng) -> String {
    let parts = [
        "a", "b", "A", "B", "1", "22", "-", " ", "\n", "ab", "x", "é", "É", ".", "_",
    ];
    (0..r.below(24)).map(|_| r.pick(&parts)).collect()
}

#[test]
fn engine_agrees_with_the_regex_crate() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut checked = 0;
    for _ in 0..3000 {
        let p = gen_pattern(&mut r, 0);
        let reference = regex::Regex::new(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
        let ast = parse(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
        let prog = Program::new(&ast);
        let req = required(&ast);
        let pf = req
            .as_ref()
            .map(|s| Prefilter::new(s.iter().map(|x| (0u32, x.as_slice()))));
        for _ in 0..8 {
            let t = gen_text(&mut r);
            let want = reference.find_iter(&t).count() as u32;
            let got = prog.count(&t, u32::MAX);
            assert_eq!(got, want, "pattern {p:?} text {t:?}");
            if let Some(pf) = &pf {
                let mut norm = Vec::new();
                normalize_into(&t, &mut norm);
                let mut found = Vec::new();
                pf.scan(&norm, &mut found);
                found.sort_unstable();
                if want > 0 {
                    assert!(
                        !found.is_empty(),
                        "prefilter missed: pattern {p:?} text {t:?} req {req:?}"
                    );
                }
                let mut windows = Vec::new();
                crate::scan::spawn_windows(&t, &found, ast.max_len(), &mut windows);
                let windowed = prog.count_in(&t, &windows, u32::MAX);
                assert_eq!(
                    windowed, want,
                    "windowed: pattern {p:?} text {t:?} {windows:?}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 24_000);
}

#[test]
fn validity_agrees_with_the_regex_crate() {
    let both_ok = [
        r"\b\d{3}-\d{4}\b",
        r"(?i)\bproject\s+(falcon|osprey|kestrel)\b",
        r"(?x) a \  b",
        r"[]a]",
        r"[^]a]",
        r"[a-]",
        r"[-a]",
        r"\x{1F600}",
        r"(?i:a)(?-i)b",
        r"(?s).",
        r"a{2,}?",
        r"\<a\>",
        r"\b{start}a\b{end-half}",
        r"(?U)a+",
        r"(?m)^a$",
        r"(?P<x>a)",
        r"a|",
        r"()",
        r"\#\&\~\-",
        r"[\d\s]",
    ];
    for p in both_ok {
        assert!(regex::Regex::new(p).is_ok(), "regex rejects {p}");
        parse(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    }
    let both_err = [
        r"(", r")", r"[", r"*", r"a{2,1}", r"(?=a)", r"\1", r"\q", r"(?z)", r"a{", r"\", r"[z-a]",
    ];
    for p in both_err {
        assert!(regex::Regex::new(p).is_err(), "regex accepts {p}");
        assert!(parse(p).is_err(), "we accept {p}");
    }
    // Valid for `regex`, refused here on purpose (documented).
    assert!(parse(r"\pL").is_err());
    for p in [r"[a[b]]", r"[a&&b]", r"(?R)a"] {
        assert!(regex::Regex::new(p).is_ok(), "regex rejects {p}");
        assert!(parse(p).is_err(), "we accept {p}");
    }
}

#[test]
fn counts_and_unicode() {
    let count = |p: &str, t: &str| Program::new(&parse(p).unwrap()).count(t, u32::MAX);
    assert_eq!(
        count(
            r"\b\d{3}-\d{4}\b",
            "call 555-0199 or 555-0100, not 5555-01999"
        ),
        2
    );
    assert_eq!(count(r"(?i)müller", "MÜLLER und Müller"), 2);
    assert_eq!(
        count(r"(?i)k", "\u{212A}"),
        0,
        "Kelvin sign is not folded onto k"
    );
    assert_eq!(count(r"\w+", "héllo wörld"), 2);
    assert_eq!(count(r"\s", "a\u{2003}b"), 1);
    assert_eq!(count(r"\d", "٣"), 0, "\\d is ASCII");
    assert_eq!(count(r"", "ab"), 3);
    assert_eq!(count(r"a*", "baa"), 2);
    assert_eq!(count(r"x", &"x".repeat(50)), 50);
}

#[test]
fn phrases_scan_like_their_full_search() {
    use crate::syntax::phrase;
    use tollgate_guest::{Role, testing};
    let words = [
        "ab", "Ab", "b", "müller", "Éclair", "a-b", "_x", "c++", "1", "zz",
    ];
    let mut r = Rng(0xDEAD_BEEF_1234_5678);
    for _ in 0..600 {
        let n = 1 + r.below(3);
        let p: Vec<&str> = (0..n).map(|_| r.pick(&words)).collect();
        let p = p.join(if r.below(2) == 0 { " " } else { "  " });
        let config = serde_json::json!({"rules": [{"name": "r", "keywords": [p]}]}).to_string();
        let c: crate::Config = serde_json::from_str(&config).unwrap();
        let prog = Program::new(&phrase(&p));
        for _ in 0..6 {
            let t: String = (0..r.below(12))
                .map(|_| {
                    r.pick(&[
                        "ab", "AB", " ", "\n", "b", "MÜLLER", "éclair", "-", "x", "_", "c++", "1",
                        "zz", "é",
                    ])
                })
                .collect();
            let want = prog.count(&t, u32::MAX);
            let parts = testing::conversation([(Role::User, t.as_str())]).parts;
            let got = crate::scan::scan(&c, &[0], false, &parts).rules[0].0;
            assert_eq!(got, want, "phrase {p:?} text {t:?}");
        }
    }
}
