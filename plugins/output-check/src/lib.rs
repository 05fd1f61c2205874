//! `output-check`: when a request asks for JSON, check that the answer is JSON and
//! matches the schema, and withhold (or flag) it when it does not.
//!
//! Config (every field optional):
//!
//! ```toml
//! [[tenants.plugins]]
//! name = "output-check"
//! response_stream = "buffer"   # check streamed answers before the client sees them
//! config = { action = "deny", schema = { type = "object", required = ["id"] }, models = ["gpt-*"], teams = ["data"] }
//! ```
//!
//! - A request asks for JSON with OpenAI's `response_format` (`json_object`, or
//!   `json_schema` with `json_schema.schema`) or Anthropic's `output_format`
//!   (`{"type": "json_schema", "schema": ...}`). Then the answer's text must parse as
//!   JSON (surrounding whitespace allowed; a Markdown code fence is not JSON, since the
//!   client's own parser would refuse it) and match the schema it gave, if any.
//! - `schema`: the admin's schema; when set, every answer in scope must be JSON
//!   matching it, and it takes the place of a schema the request gave (the admin's rule
//!   is the policy).
//! - `require_json`: every answer in scope must be JSON, asked for or not.
//! - `action`: `deny` (default; the client gets `502 api_error` naming the first
//!   violation, and the call is still billed and logged) or `flag` (the answer goes
//!   through, the violation is recorded).
//! - `models` (globs) and `teams` restrict which requests are checked (absent: all).
//!
//! With OpenAI's `n` above 1, each choice is checked on its own and the first failing
//! one is named (`choice 1: ...`). Answers that carry only tool calls are not checked.
//! Findings: rule `json_parse` or `json_schema`, kind `format`, counting the failing
//! choices.
//!
//! # Schemas
//!
//! A built-in validator covering drafts 4 to 2020-12, compiled once per call:
//!
//! - any value: `type` (a name or a list; `integer` takes any number with no
//!   fraction), `enum`, `const`, `allOf`, `anyOf`, `oneOf`, `not`, `if`/`then`/`else`,
//!   boolean schemas, and `$ref` to a JSON pointer in the same schema (`#`,
//!   `#/$defs/name`, `#/definitions/name`), recursion included;
//! - numbers: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` (draft 4's
//!   boolean form and the later numeric one), `multipleOf`;
//! - strings: `minLength`, `maxLength` (in characters), `pattern` (an unanchored search
//!   in `regex-lite` syntax, which is close to ECMA-262's for common patterns but has
//!   no Unicode classes such as `\p{L}`; at most 1 KiB);
//! - arrays: `items` (a schema, or draft 4's array form), `prefixItems`,
//!   `additionalItems`, `contains` with `minContains`/`maxContains`, `minItems`,
//!   `maxItems`, `uniqueItems`;
//! - objects: `properties`, `required`, `additionalProperties`, `patternProperties`,
//!   `propertyNames`, `minProperties`, `maxProperties`, `dependentRequired`,
//!   `dependentSchemas` and draft 4's `dependencies`.
//!
//! Annotations are ignored: `title`, `description`, `default`, `examples`, `$schema`,
//! `$id`, `$comment`, `$anchor`, `deprecated`, `readOnly`, `writeOnly`, `content*`,
//! keys starting with `x-`, and `format` (not checked: an annotation here). `$ref`
//! siblings apply too, as in 2019-09 and later. Anything else (`unevaluatedProperties`,
//! `unevaluatedItems`, `$dynamicRef`, `$recursiveRef`, a `$ref` to another document or
//! an anchor, a misspelt keyword) cannot be checked: in the admin's `schema` the config
//! is refused with the keyword and its place (`schema: /properties/a: unsupported
//! keyword 'unevaluatedProperties'`); in a schema the request sent, the answer is only
//! checked to be JSON.
//!
//! A check gives up past 64 `$ref`s in a row without stepping into the answer (a
//! `$ref` loop), checks nested 256 deep, or 100,000 checks in all: an answer the admin's
//! schema could not be checked against fails; one of a request's schema goes through.
//!
//! A violation names the JSON pointer of the offending value and the rule it breaks
//! (`/items/0/price: expected number, found string`, `/: missing required property
//! 'age'`), never the value: the answer may hold secrets.

use schema::{Outcome, Schema};
use serde::Deserialize;
use serde_json::Value;
use std::cell::OnceCell;
use tollgate_guest::{Answer, Plugin, Request, Verdict, glob_match};

mod schema;

/// The plugin; exported as the component's `guest` interface.
pub struct OutputCheck;

/// What to do with an answer that fails the check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Withhold it: the client gets an error instead.
    #[default]
    Deny,
    /// Let it through and record the violation.
    Flag,
}

/// The plugin's config; see the crate docs.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Deny or flag a failing answer.
    #[serde(default)]
    pub action: Action,
    /// The admin's JSON Schema for every answer in scope.
    #[serde(default)]
    pub schema: Option<Value>,
    /// Every answer in scope must be JSON.
    #[serde(default)]
    pub require_json: bool,
    /// Only requests for these models (globs).
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Only requests of these teams.
    #[serde(default)]
    pub teams: Option<Vec<String>>,
    /// `schema`, compiled by [`Plugin::validate`] (a config is validated before use).
    #[serde(skip)]
    compiled: OnceCell<Option<Schema>>,
}

impl Config {
    /// The admin's schema, compiled; `None` when there is none (or it does not compile,
    /// which [`Plugin::validate`] refuses).
    fn compiled(&self) -> Option<&Schema> {
        self.compiled
            .get_or_init(|| self.schema.as_ref().and_then(|s| Schema::compile(s).ok()))
            .as_ref()
    }
}

const SCHEMA: &str = r##"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "output-check config",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "action": {"enum": ["deny", "flag"], "default": "deny"},
    "schema": {"type": ["object", "boolean"], "description": "JSON Schema every answer in scope must match"},
    "require_json": {"type": "boolean", "default": false},
    "models": {"type": "array", "items": {"type": "string", "minLength": 1}},
    "teams": {"type": "array", "items": {"type": "string", "minLength": 1}}
  }
}"##;

/// Longest violation text put in a denial or a log line.
const MAX_DETAIL: usize = 300;

#[tollgate_guest::plugin]
impl Plugin for OutputCheck {
    const NAME: &'static str = "output-check";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Config = Config;

    fn config_schema() -> &'static str {
        SCHEMA
    }

    fn validate(c: &Config) -> Result<(), String> {
        if let Some(schema) = &c.schema {
            let compiled = Schema::compile(schema).map_err(|e| format!("schema: {e}"))?;
            c.compiled.get_or_init(|| Some(compiled));
        }
        for (field, list) in [("models", &c.models), ("teams", &c.teams)] {
            if list
                .as_ref()
                .is_some_and(|l| l.iter().any(String::is_empty))
            {
                return Err(format!("{field}: entries must not be empty"));
            }
        }
        Ok(())
    }

    fn inspect_response(c: &Config, req: &Request, answer: &Answer) -> Verdict {
        if !in_scope(c, req) || answer.parts.is_empty() {
            return Verdict::allow();
        }
        let asked = requested(req);
        if !(asked.json || c.schema.is_some() || asked.schema.is_some() || c.require_json) {
            return Verdict::allow();
        }
        // The admin's schema wins; a request's that cannot be checked is left out.
        let from_request;
        let schema = if c.schema.is_some() {
            c.compiled().map(|s| (s, true))
        } else {
            from_request = asked.schema.as_ref().and_then(|s| Schema::compile(s).ok());
            from_request.as_ref().map(|s| (s, false))
        };
        let choices = choices(answer);
        let mut first = None;
        let (mut parse, mut mismatch) = (0, 0);
        for (choice, text) in &choices {
            let Some((rule, problem)) = violation(text, schema) else {
                continue;
            };
            if rule == "json_parse" {
                parse += 1;
            } else {
                mismatch += 1;
            }
            if first.is_none() {
                let problem = if choices.len() > 1 {
                    format!("choice {choice}: {problem}")
                } else {
                    problem
                };
                first = Some((rule, clip(problem)));
            }
        }
        let Some((rule, problem)) = first else {
            return Verdict::allow();
        };
        let mut verdict = match c.action {
            Action::Flag => Verdict::allow(),
            Action::Deny => Verdict::deny(
                502,
                "api_error",
                format!("the model's answer was withheld by output-check: {problem}"),
            ),
        };
        // The first failure's rule first.
        let mut counts = [("json_parse", parse), ("json_schema", mismatch)];
        if rule == "json_schema" {
            counts.reverse();
        }
        for (rule, n) in counts {
            if n > 0 {
                verdict = verdict.finding(rule, "format", n);
            }
        }
        verdict
    }
}

tollgate_guest::export_plugin!(OutputCheck);

/// Whether the config's `models` and `teams` cover the request.
fn in_scope(c: &Config, req: &Request) -> bool {
    let model_ok = c
        .models
        .as_ref()
        .is_none_or(|m| m.iter().any(|g| glob_match(g, req.model())));
    let team_ok = c
        .teams
        .as_ref()
        .is_none_or(|t| req.team().is_some_and(|team| t.iter().any(|x| x == team)));
    model_ok && team_ok
}

/// What the request asked for.
#[derive(Default)]
struct Asked {
    json: bool,
    schema: Option<Value>,
}

/// Reads OpenAI's `response_format` or Anthropic's `output_format` from the body.
fn requested(req: &Request) -> Asked {
    let Ok(body) = req.body_json() else {
        return Asked::default();
    };
    if let Some(rf) = body.get("response_format") {
        return match rf.get("type").and_then(Value::as_str) {
            Some("json_object") => Asked {
                json: true,
                schema: None,
            },
            Some("json_schema") => Asked {
                json: true,
                schema: rf.pointer("/json_schema/schema").cloned(),
            },
            _ => Asked::default(),
        };
    }
    match body.get("output_format") {
        Some(of) if of.get("type").and_then(Value::as_str) == Some("json_schema") => Asked {
            json: true,
            schema: of.get("schema").cloned(),
        },
        _ => Asked::default(),
    }
}

/// The answer's text per choice (OpenAI `n`), in choice order: the parts of each
/// choice joined.
fn choices(answer: &Answer) -> Vec<(u32, String)> {
    let mut out: Vec<(u32, String)> = Vec::new();
    for part in &answer.parts {
        let choice = part.message.unwrap_or(0);
        match out.iter_mut().find(|(c, _)| *c == choice) {
            Some((_, text)) => text.push_str(&part.text),
            None => out.push((choice, part.text.clone())),
        }
    }
    out.sort_by_key(|(c, _)| *c);
    out
}

/// The rule broken and a description of the first violation, or `None` when `text` is
/// JSON matching `schema` (with whether it is the admin's). A check that gives up fails
/// the answer for the admin's schema only.
fn violation(text: &str, schema: Option<(&Schema, bool)>) -> Option<(&'static str, String)> {
    let doc: Value = match serde_json::from_str(text.trim()) {
        Ok(v) => v,
        Err(e) => {
            return Some(("json_parse", format!("the answer is not valid JSON ({e})")));
        }
    };
    let (schema, admin) = schema?;
    match schema.check(&doc) {
        Outcome::Valid => None,
        Outcome::Invalid(at) => Some((
            "json_schema",
            format!("the answer does not match the JSON schema: {at}"),
        )),
        Outcome::GaveUp(why) if admin => Some((
            "json_schema",
            format!("the answer could not be checked against the JSON schema: {why}"),
        )),
        Outcome::GaveUp(_) => None,
    }
}

/// `s` cut to [`MAX_DETAIL`] bytes on a character boundary (a violation's pointer holds
/// the answer's keys, an `enum` list the schema's values).
fn clip(mut s: String) -> String {
    if s.len() > MAX_DETAIL {
        let mut end = MAX_DETAIL;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests;
