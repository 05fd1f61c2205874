//! Reading an answer that is passed through unchanged (client and provider speak the
//! same API): only its usage is taken out, every other value is checked and dropped.

use crate::api::Api;
use crate::usage::Usage;

/// What is read of a whole answer passed through unchanged: its usage and whether it
/// has `choices` (even `null`, as before). Every other value is checked as strictly as a
/// parse into [`Value`] would (UTF-8, escapes, number range, nesting depth) but never
/// built: that cost an allocation per field and content block.
#[derive(Default)]
struct Head {
    choices: bool,
    usage: Option<Counts>,
}

impl<'de> serde::Deserialize<'de> for Head {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Head;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Head, A::Error> {
                let mut head = Head::default();
                // A repeated key keeps its last value, as a parse into `Value` does.
                while let Some(key) = m.next_key::<Key>()? {
                    match key {
                        Key::Usage => head.usage = Some(m.next_value()?),
                        Key::Choices => {
                            m.next_value::<Checked>()?;
                            head.choices = true;
                        }
                        Key::Other => {
                            m.next_value::<Checked>()?;
                        }
                    }
                }
                Ok(head)
            }
        }
        d.deserialize_map(Fields)
    }
}

/// A key of [`Head`], matched without allocating.
#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Key {
    Usage,
    Choices,
    #[serde(other)]
    Other,
}

/// Any JSON value, checked and dropped; an unsigned integer is kept, as
/// `Value::as_u64` would read it (a token count).
struct Checked(Option<u64>);

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> serde::de::Visitor<'de> for Any {
            type Value = Checked;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
                Ok(Checked(None))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Checked, E> {
                Ok(Checked(u64::try_from(v).ok()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Checked, E> {
                Ok(Checked(Some(v)))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
                Ok(Checked(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
                Ok(Checked(None))
            }
            fn visit_unit<E>(self) -> Result<Checked, E> {
                Ok(Checked(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<Checked, A::Error> {
                while s.next_element::<Checked>()?.is_some() {}
                Ok(Checked(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Checked, A::Error> {
                while m.next_key::<Checked>()?.is_some() {
                    m.next_value::<Checked>()?;
                }
                Ok(Checked(None))
            }
        }
        d.deserialize_any(Any)
    }
}

/// The token counts of a `usage` value of either API, read as [`Usage::merge_anthropic`]
/// and [`Usage::from_openai`] read a parsed one: a count that is not an unsigned integer
/// is absent, and a `usage` that is not an object (`null` included) has none.
#[derive(Default)]
struct Counts {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    /// `prompt_tokens_details.cached_tokens`.
    cached_tokens: Option<u64>,
}

impl Counts {
    fn anthropic(&self) -> Usage {
        Usage {
            input_tokens: self.input_tokens.unwrap_or(0),
            output_tokens: self.output_tokens.unwrap_or(0),
            cache_read_tokens: self.cache_read_input_tokens.unwrap_or(0),
            cache_write_tokens: self.cache_creation_input_tokens.unwrap_or(0),
        }
    }

    fn openai(&self) -> Usage {
        let prompt = self.prompt_tokens.unwrap_or(0);
        let cached = self.cached_tokens.unwrap_or(0).min(prompt);
        Usage {
            input_tokens: prompt - cached,
            output_tokens: self.completion_tokens.unwrap_or(0),
            cache_read_tokens: cached,
            cache_write_tokens: 0,
        }
    }
}

/// A key of a `usage` object, matched without allocating.
#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum CountKey {
    InputTokens,
    OutputTokens,
    CacheReadInputTokens,
    CacheCreationInputTokens,
    PromptTokens,
    CompletionTokens,
    PromptTokensDetails,
    CachedTokens,
    #[serde(other)]
    Other,
}

impl<'de> serde::Deserialize<'de> for Counts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Reads `usage` (or, nested, `prompt_tokens_details`) into `Counts`.
        struct Fields {
            nested: bool,
        }
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Counts;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Counts, A::Error> {
                let mut c = Counts::default();
                // A repeated key keeps its last value, as a parse into `Value` does.
                while let Some(key) = m.next_key::<CountKey>()? {
                    let slot = match key {
                        // In `prompt_tokens_details`, only `cached_tokens` counts.
                        CountKey::CachedTokens if self.nested => &mut c.cached_tokens,
                        _ if self.nested => &mut None,
                        CountKey::PromptTokensDetails => {
                            c.cached_tokens = m.next_value_seed(Nested)?.cached_tokens;
                            continue;
                        }
                        CountKey::InputTokens => &mut c.input_tokens,
                        CountKey::OutputTokens => &mut c.output_tokens,
                        CountKey::CacheReadInputTokens => &mut c.cache_read_input_tokens,
                        CountKey::CacheCreationInputTokens => &mut c.cache_creation_input_tokens,
                        CountKey::PromptTokens => &mut c.prompt_tokens,
                        CountKey::CompletionTokens => &mut c.completion_tokens,
                        CountKey::CachedTokens | CountKey::Other => &mut None,
                    };
                    *slot = m.next_value::<Checked>()?.0;
                }
                Ok(c)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<Counts, A::Error> {
                while s.next_element::<Checked>()?.is_some() {}
                Ok(Counts::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Counts, E> {
                Ok(Counts::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Counts, E> {
                Ok(Counts::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Counts, E> {
                Ok(Counts::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Counts, E> {
                Ok(Counts::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Counts, E> {
                Ok(Counts::default())
            }
            fn visit_unit<E>(self) -> Result<Counts, E> {
                Ok(Counts::default())
            }
        }
        /// `prompt_tokens_details`, read for its `cached_tokens` alone.
        struct Nested;
        impl<'de> serde::de::DeserializeSeed<'de> for Nested {
            type Value = Counts;
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Counts, D::Error> {
                d.deserialize_any(Fields { nested: true })
            }
        }
        d.deserialize_any(Fields { nested: false })
    }
}

/// The usage of an answer in `api`'s own shape; `None` if it is not a valid answer
/// (not a JSON object, an Anthropic answer without usage, an OpenAI one without choices).
pub(super) fn usage(api: Api, body: &[u8]) -> Option<Usage> {
    let head: Head = serde_json::from_slice(body).ok()?;
    match api {
        Api::Anthropic => head.usage.as_ref().map(Counts::anthropic),
        Api::OpenAi => {
            head.choices.then_some(())?;
            Some(head.usage.as_ref().map(Counts::openai).unwrap_or_default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// What the counts of a `usage` value were when read from a parsed `Value`.
    fn through_value(api: Api, usage: &Value) -> Usage {
        match api {
            Api::Anthropic => {
                let mut u = Usage::default();
                u.merge_anthropic(usage);
                u
            }
            Api::OpenAi => Usage::from_openai(usage),
        }
    }

    /// Counts as providers write them, and as they should not.
    fn arb_count() -> impl Strategy<Value = Value> {
        prop_oneof![
            (0u64..1_000_000).prop_map(Value::from),
            Just(json!(u64::MAX)),
            Just(json!(-3)),
            Just(json!(2.5)),
            Just(json!("12")),
            Just(Value::Null),
            Just(json!({"cached_tokens": 9})),
            Just(json!([1, 2])),
        ]
    }

    fn arb_usage() -> impl Strategy<Value = Value> {
        let key = prop::sample::select(vec![
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "service_tier",
        ]);
        let details = prop_oneof![
            arb_count(),
            prop::collection::btree_map(
                prop::sample::select(vec!["cached_tokens", "audio_tokens"]),
                arb_count(),
                0..3
            )
            .prop_map(|m| json!(m)),
        ];
        prop_oneof![
            1 => arb_count(),
            6 => (
                prop::collection::btree_map(key, arb_count(), 0..8),
                prop::option::of(details)
            )
                .prop_map(|(mut m, d)| {
                    let mut m: serde_json::Map<String, Value> =
                        m.iter_mut().map(|(k, v)| (k.to_string(), v.take())).collect();
                    if let Some(d) = d {
                        m.insert("prompt_tokens_details".into(), d);
                    }
                    Value::Object(m)
                }),
        ]
    }

    proptest! {
        #[test]
        fn counts_read_as_a_parsed_value_read_them(usage in arb_usage()) {
            for api in [Api::Anthropic, Api::OpenAi] {
                let body = json!({"choices": [], "usage": usage}).to_string();
                prop_assert_eq!(
                    super::usage(api, body.as_bytes()),
                    Some(through_value(api, &usage)),
                    "{:?} {}", api, body
                );
            }
        }
    }

    #[test]
    fn a_repeated_count_keeps_its_last_value() {
        let body = br#"{"usage":{"input_tokens":1,"input_tokens":"x","output_tokens":2,
            "output_tokens":5,"prompt_tokens_details":{"cached_tokens":1}}}"#;
        let u = super::usage(Api::Anthropic, body).expect("an answer");
        assert_eq!((u.input_tokens, u.output_tokens), (0, 5));
    }
}
