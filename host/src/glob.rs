//! Wildcard matching for model names (`claude-haiku-*`, `*-mini`, `gpt-4?`): the guest
//! SDK's `glob_match` dialect, so a pattern means the same in gateway config and in
//! plugin config.

/// Whether `text` matches `pattern`: `*` matches any run of characters, `?` exactly one.
/// Byte-wise, so it does not allocate on the per-request path.
pub fn matches(pattern: &str, text: &str) -> bool {
    // Length of the UTF-8 character starting with `b`, so `?` and a `*` retry step whole
    // characters.
    fn char_len(b: u8) -> usize {
        match b {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => 4,
        }
    }
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Pattern index just after the last `*`, and the text index that `*` extends to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                pi += 1;
                star = Some((pi, ti));
            }
            Some(b'?') => {
                pi += 1;
                ti += char_len(t[ti]);
            }
            Some(&c) if c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    let st = st + char_len(t[st]);
                    star = Some((sp, st));
                    (pi, ti) = (sp, st);
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches("claude-*", "claude-sonnet-4-5"));
        assert!(matches("*", ""));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exact2"));
        assert!(matches("gpt-*-mini", "gpt-4o-mini"));
        assert!(!matches("gpt-*-mini", "gpt-4o"));
        assert!(matches("a*a", "aa"));
        assert!(!matches("a*a", "a"));
        assert!(matches("*haiku*", "claude-3-5-haiku-latest"));
    }

    #[test]
    fn wild_globs() {
        for (p, t) in [
            ("claude-*", "claude-sonnet-4-5"),
            ("claude-*", "claude-"),
            ("*", ""),
            ("gpt-4?", "gpt-4o"),
            ("*-4-?", "claude-opus-4-1"),
            ("claude-*-4-*", "claude-opus-4-1"),
            ("a*b*c", "aXXbYYc"),
            ("a*a", "aa"),
            ("**", "x"),
            ("?é", "xé"),
            ("é?", "éx"),
            ("*é", "aéé"),
        ] {
            assert!(matches(p, t), "{p} should match {t}");
        }
        for (p, t) in [
            ("claude-*", "claud"),
            ("gpt-4o", "gpt-4o-mini"),
            ("gpt-4?", "gpt-4"),
            ("gpt-4?", "gpt-4oo"),
            ("a*b*c", "aXXbYY"),
            ("a*a", "a"),
            ("?", ""),
            ("?", "éé"),
            ("Claude-*", "claude-x"),
        ] {
            assert!(!matches(p, t), "{p} should not match {t}");
        }
    }
}
