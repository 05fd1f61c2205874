//! Reading an answer that is passed through unchanged (client and provider speak the
//! same API): only its usage is taken out, every other value is checked and dropped.

use crate::api::Api;
use crate::usage::Usage;
use serde_json::Value;

/// What is read of a whole answer passed through unchanged: its usage and whether it
/// has `choices` (even `null`, as before). Every other value is checked as strictly as a
/// parse into [`Value`] would (UTF-8, escapes, number range, nesting depth) but never
/// built: that cost an allocation per field and content block.
#[derive(Default)]
struct Head {
    choices: bool,
    usage: Option<Value>,
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

/// Any JSON value, checked and dropped.
struct Checked;

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> serde::de::Visitor<'de> for Any {
            type Value = Checked;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_unit<E>(self) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<Checked, A::Error> {
                while s.next_element::<Checked>()?.is_some() {}
                Ok(Checked)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Checked, A::Error> {
                while m.next_key::<Checked>()?.is_some() {
                    m.next_value::<Checked>()?;
                }
                Ok(Checked)
            }
        }
        d.deserialize_any(Any)
    }
}

/// The usage of an answer in `api`'s own shape; `None` if it is not a valid answer
/// (not a JSON object, an Anthropic answer without usage, an OpenAI one without choices).
pub(super) fn usage(api: Api, body: &[u8]) -> Option<Usage> {
    let head: Head = serde_json::from_slice(body).ok()?;
    match api {
        Api::Anthropic => {
            let mut u = Usage::default();
            u.merge_anthropic(head.usage.as_ref()?);
            Some(u)
        }
        Api::OpenAi => {
            head.choices.then_some(())?;
            Some(
                head.usage
                    .as_ref()
                    .map(Usage::from_openai)
                    .unwrap_or_default(),
            )
        }
    }
}
