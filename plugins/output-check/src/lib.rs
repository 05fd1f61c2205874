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
//! Answers that carry only tool calls are not checked. Findings: rule `json_parse` or
//! `json_schema`, kind `format`.

use serde::Deserialize;
use serde_json::Value;
use tollgate_guest::{Answer, Plugin, Request, Verdict, glob_match};

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
            jsonschema::validator_for(schema).map_err(|e| format!("schema: {e}"))?;
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
        let schema = c.schema.as_ref().or(asked.schema.as_ref());
        if !(asked.json || schema.is_some() || c.require_json) {
            return Verdict::allow();
        }
        let Some((rule, problem)) = violation(&answer.text(), schema) else {
            return Verdict::allow();
        };
        match c.action {
            Action::Flag => Verdict::allow().finding(rule, "format", 1),
            Action::Deny => Verdict::deny(
                502,
                "api_error",
                format!("the model's answer was withheld by output-check: {problem}"),
            )
            .finding(rule, "format", 1),
        }
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

/// The rule broken and a description of the first violation, or `None` when `text` is
/// JSON matching `schema`. A schema that does not compile (one a request sent) checks
/// only that the text is JSON.
fn violation(text: &str, schema: Option<&Value>) -> Option<(&'static str, String)> {
    let doc: Value = match serde_json::from_str(text.trim()) {
        Ok(v) => v,
        Err(e) => {
            return Some((
                "json_parse",
                clip(format!("the answer is not valid JSON ({e})")),
            ));
        }
    };
    let validator = jsonschema::validator_for(schema?).ok()?;
    let err = validator.iter_errors(&doc).next()?;
    let at = err.instance_path().to_string();
    let at = if at.is_empty() { "/".to_string() } else { at };
    Some((
        "json_schema",
        clip(format!(
            "the answer does not match the JSON schema: {at}: {err}"
        )),
    ))
}

/// `s` cut to [`MAX_DETAIL`] bytes on a character boundary (a violation may quote the
/// answer's values).
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
