//! Helpers on [`Annotation`], the `key = value` labels the policy, route and budget hooks
//! record in the request log.

use crate::Annotation;

impl Annotation {
    /// The label `key = value`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// A `(key, value)` pair is a label, so label lists can be written as tuples.
impl<K: Into<String>, V: Into<String>> From<(K, V)> for Annotation {
    fn from((key, value): (K, V)) -> Self {
        Self::new(key, value)
    }
}

/// The value of the first label named `key` in `labels`.
pub(crate) fn find<'a>(labels: &'a [Annotation], key: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|a| a.key == key)
        .map(|a| a.value.as_str())
}
