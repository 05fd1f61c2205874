//! The `x-portkey-metadata` header: a JSON object of string values that tags a request.

use crate::error::ApiError;
use std::sync::Arc;

/// Header carrying request metadata (Portkey's name, so existing clients work unchanged).
pub const HEADER: &str = "x-portkey-metadata";
/// Most keys a metadata object may carry.
pub const MAX_KEYS: usize = 64;
/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 128;
/// Longest value, in bytes.
pub const MAX_VALUE_LEN: usize = 1024;

/// Parsed request metadata, sorted by key. Keys are case-sensitive.
///
/// Shared, not copied: the log record, the ledger's scopes and the plugins' usage
/// reads all hold the same pairs (a copy was two allocations a pair, per holder).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata(pub Arc<[(String, String)]>);

impl From<Vec<(String, String)>> for Metadata {
    /// Sorts the pairs by key (lookups search them) and keeps the last of a repeated
    /// key, as a JSON object does.
    fn from(mut pairs: Vec<(String, String)>) -> Self {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        Self(pairs.into())
    }
}

// A sequence of pairs, as the `Vec` it was: journal records and stored rows keep
// their shape.
impl serde::Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<(String, String)>::deserialize(d).map(Self::from)
    }
}

impl Metadata {
    /// The value for `key`, matched exactly.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|(_, v)| v.as_str())
    }

    /// Whether no metadata was sent.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// As a JSON object text, for the request log.
    pub fn to_json(&self) -> String {
        /// The pairs serialised as an object straight from the slice (building a
        /// `Value` first cost two allocations a pair).
        struct AsObject<'a>(&'a [(String, String)]);
        impl serde::Serialize for AsObject<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
            }
        }
        serde_json::to_string(&AsObject(&self.0)).unwrap_or_else(|_| "{}".into())
    }

    /// The pairs as a JSON object.
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect()
    }

    /// Parses the header value, or says exactly what is wrong with it.
    pub fn parse(raw: &[u8]) -> Result<Self, ApiError> {
        let fail = |why: String| ApiError::invalid(format!("invalid {HEADER} header: {why}"));
        let text = std::str::from_utf8(raw)
            .map_err(|e| fail(format!("not valid UTF-8 at byte {}", e.valid_up_to())))?;
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| fail(describe_json_error(&e)))?;
        let serde_json::Value::Object(map) = value else {
            return Err(fail(format!(
                "must be a JSON object of string values, got {}",
                json_type(&value)
            )));
        };
        if map.len() > MAX_KEYS {
            return Err(fail(format!(
                "has {} keys; at most {MAX_KEYS} are allowed",
                map.len()
            )));
        }
        let mut out = Vec::with_capacity(map.len());
        for (k, v) in map {
            if k.is_empty() || k.len() > MAX_KEY_LEN {
                return Err(fail(format!(
                    "key '{k}' must be 1 to {MAX_KEY_LEN} bytes long"
                )));
            }
            let serde_json::Value::String(s) = v else {
                return Err(fail(format!(
                    "value of '{k}' must be a string, got {}",
                    json_type(&v)
                )));
            };
            if s.len() > MAX_VALUE_LEN {
                return Err(fail(format!(
                    "value of '{k}' is longer than {MAX_VALUE_LEN} bytes"
                )));
            }
            out.push((k, s));
        }
        Ok(Self::from(out))
    }
}

/// serde_json names the problem and its line/column; make "EOF" readable.
fn describe_json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    if msg.contains("EOF while parsing") {
        format!(
            "not valid JSON: unexpected end of input at column {}",
            e.column()
        )
    } else {
        format!("not valid JSON: {msg}")
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(raw: &str) -> String {
        Metadata::parse(raw.as_bytes())
            .expect_err("should fail")
            .message
    }

    #[test]
    fn stored_as_pairs_logged_as_an_object() {
        let m = Metadata::from(vec![
            ("env".to_string(), "prod".to_string()),
            ("team".to_string(), "a\"b".to_string()),
        ]);
        let pairs = r#"[["env","prod"],["team","a\"b"]]"#;
        assert_eq!(serde_json::to_string(&m).ok().as_deref(), Some(pairs));
        assert_eq!(
            serde_json::from_str::<Metadata>(pairs).ok(),
            Some(m.clone())
        );
        assert_eq!(m.to_json(), r#"{"env":"prod","team":"a\"b"}"#);
        assert_eq!(Metadata::default().to_json(), "{}");
    }

    /// What `request-context.metadata` promises plugins (wit/plugin.wit): sorted by key,
    /// one pair per key, a repeated key's last value.
    #[test]
    fn pairs_are_sorted_by_key_and_a_repeated_key_keeps_its_last_value() {
        let m =
            Metadata::parse(br#"{"user":"u","env":"dev","team":"a","env":"prod"}"#).expect("valid");
        let pairs: Vec<(&str, &str)> = m.0.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(pairs, [("env", "prod"), ("team", "a"), ("user", "u")]);
    }

    #[test]
    fn parses_string_object_case_sensitively() {
        let m = Metadata::parse(br#"{"team":"eng","Team":"x","env":"prod"}"#).expect("valid");
        assert_eq!(m.get("team"), Some("eng"));
        assert_eq!(m.get("Team"), Some("x"));
        assert_eq!(m.get("TEAM"), None);
        assert_eq!(m.get("env"), Some("prod"));
    }

    #[test]
    fn trailing_comma_names_column() {
        let msg = err(r#"{"team":"eng",}"#);
        assert!(msg.contains("trailing comma"), "{msg}");
        assert!(msg.contains("column 15"), "{msg}");
    }

    #[test]
    fn non_object_and_non_string_values() {
        assert!(err("[1,2]").contains("got an array"));
        assert!(err("\"x\"").contains("got a string"));
        let msg = err(r#"{"n":5}"#);
        assert!(
            msg.contains("value of 'n' must be a string, got a number"),
            "{msg}"
        );
        assert!(err(r#"{"a":{"b":"c"}}"#).contains("got an object"));
        assert!(err(r#"{"a":null}"#).contains("got null"));
    }

    #[test]
    fn truncated_json() {
        assert!(err(r#"{"team":"#).contains("unexpected end of input"));
    }

    #[test]
    fn empty_header_is_no_metadata() {
        assert!(Metadata::parse(b"  ").expect("empty ok").is_empty());
    }
}
