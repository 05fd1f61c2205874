//! What changed between two bundle specs, as `path: old -> new` lines.

use serde_json::Value;

/// Every leaf that differs between `old` and `new`, keys in sorted order; a key present on
/// one side only shows the other side as `(none)`.
pub fn diff(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out
}

fn walk(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = join(path, k);
                match b.get(k) {
                    Some(vb) => walk(&p, va, vb, out),
                    None => out.push(format!("{p}: {} -> (none)", short(va))),
                }
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    out.push(format!("{}: (none) -> {}", join(path, k), short(vb)));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let p = format!("{path}[{i}]");
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => walk(&p, x, y, out),
                    (Some(x), None) => out.push(format!("{p}: {} -> (none)", short(x))),
                    (None, Some(y)) => out.push(format!("{p}: (none) -> {}", short(y))),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a != b => out.push(format!(
            "{}: {} -> {}",
            if path.is_empty() { "." } else { path },
            short(a),
            short(b)
        )),
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A value as JSON, cut to a readable length.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 120 {
        return s;
    }
    let mut end = 117;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::diff;
    use serde_json::json;

    #[test]
    fn lists_changed_added_and_removed_leaves() {
        let a = json!({"plugins": [{"label": "model-router", "config": {"default": {"targets": [{"provider": "a"}]}}}], "models": ["x"]});
        let b = json!({"plugins": [{"label": "model-router", "config": {"default": {"targets": [{"provider": "b"}]}}}, {"label": "chaos"}], "default_provider": "m"});
        assert_eq!(
            diff(&a, &b),
            [
                "models: [\"x\"] -> (none)",
                "plugins[0].config.default.targets[0].provider: \"a\" -> \"b\"",
                "plugins[1]: (none) -> {\"label\":\"chaos\"}",
                "default_provider: (none) -> \"m\"",
            ]
        );
        assert!(diff(&a, &a).is_empty());
    }
}
