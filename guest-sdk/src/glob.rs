//! Wildcard matching for model names and other identifiers (`claude-haiku-*`, `gpt-4?`).

/// Whether `text` matches `pattern`, where `*` matches any run of characters (including
/// none), `?` exactly one character, and everything else itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Position of the last `*` seen and the text index it currently extends to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_stars_and_question_marks() {
        for (p, t) in [
            ("claude-*", "claude-sonnet-4-5"),
            ("claude-*", "claude-"),
            ("*", ""),
            ("*", "anything"),
            ("gpt-4o", "gpt-4o"),
            ("gpt-4?", "gpt-4o"),
            ("*-4-?", "claude-opus-4-1"),
            ("claude-*-4-*", "claude-opus-4-1"),
            ("a*b*c", "aXXbYYc"),
            ("**", "x"),
            ("?é", "xé"),
        ] {
            assert!(glob_match(p, t), "{p} should match {t}");
        }
        for (p, t) in [
            ("claude-*", "claud"),
            ("gpt-4o", "gpt-4o-mini"),
            ("gpt-4?", "gpt-4"),
            ("gpt-4?", "gpt-4oo"),
            ("a*b*c", "aXXbYY"),
            ("?", ""),
            ("Claude-*", "claude-x"),
        ] {
            assert!(!glob_match(p, t), "{p} should not match {t}");
        }
    }
}
