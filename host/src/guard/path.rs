//! Where a text part lives in a JSON body: a short path of keys and indices.

use serde_json::Value;

/// One step into a JSON value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seg {
    /// An object's field.
    Key(&'static str),
    /// An array's item.
    Index(usize),
}

/// A path from the body's root to a string.
pub type Path = Vec<Seg>;

/// The string at `path` in `body`, for replacing; `None` when the body no longer has
/// one there (it cannot happen for paths read from the same body).
pub fn string_at<'a>(body: &'a mut Value, path: &[Seg]) -> Option<&'a mut String> {
    let mut v = body;
    for seg in path {
        v = match seg {
            Seg::Key(k) => v.get_mut(*k)?,
            Seg::Index(i) => v.get_mut(*i)?,
        };
    }
    match v {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// Sets every changed part's text at its path.
pub fn write(body: &mut Value, paths: &[Path], changes: Vec<(usize, String)>) {
    for (part, text) in changes {
        if let Some(slot) = paths.get(part).and_then(|p| string_at(body, p)) {
            *slot = text;
        }
    }
}
