//! `content-rules`: keyword and regular-expression rules on the text a request sends
//! to the model and on the model's answer, a prompt-length cap, and prompt-injection
//! phrase detection.
//!
//! Config (JSON, as the host hands it over):
//!
//! ```json
//! {
//!   "rules": [
//!     {"name": "codenames", "action": "deny", "keywords": ["project falcon", "bluebird"],
//!      "patterns": ["(?i)falcon[- ]?\\d+"], "teams": ["eng"], "models": ["claude-*"],
//!      "apply_to": "request", "message": "codenames may not be sent to the model"}
//!   ],
//!   "max_prompt_chars": 200000,
//!   "injection": {"action": "flag", "phrases": ["extra phrase"], "builtin": true}
//! }
//! ```
//!
//! - `rules[]` (at most 200): `name` (unique, at most 64 bytes; `injection` and
//!   `max_prompt_chars` are reserved), `action` `deny` (default) or `flag`, `keywords`
//!   and/or `patterns` (at least one of them), optional `teams` (the request's team is
//!   one of these; a request without a team never matches), `models` (globs on the
//!   requested model, `*` any run, `?` one character), `apply_to` `request` (default),
//!   `response` or `both`, and `message` (added to the denial).
//! - **Keywords** (at most 1000 in all, 256 bytes each) match case-insensitively, any
//!   run of whitespace matching the spaces between their words, and only as whole
//!   words: a keyword that starts (ends) with a letter, digit or `_` does not match
//!   right after (before) another one (`bluebird` does not match `bluebirds`).
//! - **Patterns** (at most 500 in all, 1 KiB each) are regular expressions in the
//!   `regex` crate's syntax, run by this plugin's own linear-time engine (a Pike VM:
//!   no backtracking, so no pattern can blow up on any text). Not supported (refused
//!   by validation): look-around, backreferences, Unicode property classes `\p{..}`,
//!   nested classes and class set operations. Differences in meaning: `\d` is ASCII
//!   `[0-9]`; `\w` is any alphanumeric character or `_`; `(?i)` compares simple
//!   lowercase forms and never folds a non-ASCII character onto an ASCII one. Each
//!   pattern compiles to at most 10 000 instructions (all together 200 000); counted
//!   repetitions are at most 1000.
//! - `max_prompt_chars`: a request whose text parts have more characters (Unicode
//!   scalar values, all roles) is refused with 400, finding `max_prompt_chars`/`length`
//!   counting the characters. Absent = no cap.
//! - `injection`: absent = off. `action` `flag` (default), `deny` or `off`; built-in
//!   phrases (about 40 common phrasings such as "ignore all previous instructions",
//!   "you are now DAN", "pretend you have no restrictions", "reveal your system
//!   prompt", in 15 case-insensitive, whitespace-flexible patterns; see
//!   [`injection::BUILTIN`]) unless `builtin` is false, plus `phrases` (at most 200,
//!   matched like keywords). Only user and tool parts of requests are checked: system
//!   prompts are the admin's, and answers are the model's. Findings:
//!   `injection`/`injection`.
//!
//! Only text parts are checked: for a request every part of the conversation (system,
//! user, assistant and tool text), for an answer its text. Matches are counted per part
//! (a keyword split across two parts is not found). Findings name the rule and the kind
//! (`keyword` or `pattern`) with the number of matches, never the matched text. A
//! request matched by a `deny` rule is refused with `400 invalid_request_error`:
//! `request refused by content-rules: rule 'codenames' matched: codenames may not be
//! sent to the model`; an answer with `502 api_error`: `the model's answer was withheld
//! by content-rules: rule 'x' matched`. The first matching deny rule (in config order,
//! then injection) names the denial; every match is in the findings. Otherwise matches
//! of `flag` rules flag the request or answer. An answer already delivered (observe
//! mode) gets the same verdict; the host only records it.
//!
//! # Performance
//!
//! The host runs every call in a fresh instance, so the config is parsed, and every
//! pattern parsed, on every call. Nothing is compiled up front: each pattern and keyword
//! is mined for literal strings one of which every match must contain (in a normalized
//! alphabet where case, digits and whitespace kinds are folded, so `\d{3}-\d{4}` needs
//! `000-0000`), one pass over each text part looks for all of them at once
//! ([`literal::Prefilter`]), and only the patterns whose literals occur (or that have
//! none, such as `[A-Z]+`) are compiled and run over that part.

#![warn(missing_docs)]

pub mod config;
pub mod injection;
pub mod literal;
pub mod scan;
pub mod syntax;
pub mod vm;

#[cfg(test)]
mod bench;
#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod tests;

pub use config::Config;
use config::{Action, InjectionAction, Rule};
use scan::Counts;
use tollgate_guest::{Answer, Conversation, Denial, Finding, Plugin, Refusal, Request, Verdict};

/// The plugin; exported as the component's `guest` interface.
pub struct ContentRules;

/// JSON Schema of [`Config`].
pub const SCHEMA: &str = r##"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "content-rules",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "rules": {
      "description": "Keyword and pattern rules, checked in order.",
      "type": "array",
      "maxItems": 200,
      "items": {
        "type": "object",
        "additionalProperties": false,
        "required": ["name"],
        "anyOf": [{"required": ["keywords"]}, {"required": ["patterns"]}],
        "properties": {
          "name": {"description": "Named in findings and denials; unique.", "type": "string", "minLength": 1, "maxLength": 64, "not": {"enum": ["injection", "max_prompt_chars"]}},
          "action": {"enum": ["deny", "flag"], "default": "deny"},
          "keywords": {
            "description": "Case-insensitive whole words or phrases; any whitespace run matches a space. At most 1000 in all rules.",
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 256}
          },
          "patterns": {
            "description": "Regular expressions (regex crate syntax without look-around, backreferences, \\p{..}, nested classes). At most 500 in all rules.",
            "type": "array",
            "items": {"type": "string", "maxLength": 1024}
          },
          "teams": {"description": "Only requests of these teams; absent = all.", "type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
          "models": {"description": "Only requested models matching these globs (* any run, ? one character); absent = all.", "type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
          "apply_to": {"description": "Which text is checked.", "enum": ["request", "response", "both"], "default": "request"},
          "message": {"description": "Added to the denial message.", "type": "string", "maxLength": 500}
        }
      }
    },
    "max_prompt_chars": {"description": "Refuse requests whose text has more characters; absent = no cap.", "type": "integer", "minimum": 1},
    "injection": {
      "description": "Prompt-injection phrase detection on user and tool text; absent = off.",
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "action": {"enum": ["flag", "deny", "off"], "default": "flag"},
        "phrases": {"description": "Extra phrases, matched like keywords.", "type": "array", "maxItems": 200, "items": {"type": "string", "minLength": 1, "maxLength": 256}},
        "builtin": {"description": "Use the built-in phrases.", "type": "boolean", "default": true}
      }
    }
  }
}"##;

/// Which side a verdict is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

/// Whether `rule` applies to `req`'s team and model.
fn in_scope(rule: &Rule, req: &Request) -> bool {
    let team_ok = rule.teams.as_ref().is_none_or(|teams| {
        req.team()
            .is_some_and(|team| teams.iter().any(|t| t == team))
    });
    team_ok
        && rule.models.as_ref().is_none_or(|globs| {
            globs
                .iter()
                .any(|g| tollgate_guest::glob_match(g, req.model()))
        })
}

fn verdict(c: &Config, in_scope: &[usize], counts: &Counts, side: Side) -> Verdict {
    let mut findings = Vec::new();
    let mut deny: Option<(&str, Option<&str>)> = None;
    for &i in in_scope {
        let (k, p) = counts.rules[i];
        let r = &c.rules[i];
        let name = c.name(r);
        if k > 0 {
            findings.push(Finding::new(name, "keyword", k));
        }
        if p > 0 {
            findings.push(Finding::new(name, "pattern", p));
        }
        if k + p > 0 && r.action == Action::Deny && deny.is_none() {
            deny = Some((name, r.message.map(|m| c.str(m))));
        }
    }
    if counts.injection > 0 {
        findings.push(Finding::new("injection", "injection", counts.injection));
        if deny.is_none()
            && c.injection
                .as_ref()
                .is_some_and(|i| i.action == InjectionAction::Deny)
        {
            deny = Some(("injection", Some("possible prompt injection")));
        }
    }
    match deny {
        Some((name, message)) => {
            let mut msg = match side {
                Side::Request => format!("request refused by content-rules: rule '{name}' matched"),
                Side::Response => format!(
                    "the model's answer was withheld by content-rules: rule '{name}' matched"
                ),
            };
            if let Some(m) = message {
                msg.push_str(": ");
                msg.push_str(m);
            }
            let (status, kind) = match side {
                Side::Request => (400, "invalid_request_error"),
                Side::Response => (502, "api_error"),
            };
            Verdict::Deny(Refusal {
                denial: Denial::new(status, kind, msg),
                findings,
            })
        }
        None if findings.is_empty() => Verdict::allow(),
        None => Verdict::flag(findings),
    }
}

#[tollgate_guest::plugin]
impl Plugin for ContentRules {
    const NAME: &'static str = "content-rules";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Config = Config;

    fn config_schema() -> &'static str {
        SCHEMA
    }

    fn validate(c: &Config) -> Result<(), String> {
        config::validate(c)
    }

    // Patterns are parsed and mined once, when the host checks the config: every call
    // reads the result back instead (about a tenth of the cost).
    fn prepare(c: &Config) -> Option<Vec<u8>> {
        c.prepare()
    }

    fn from_prepared(data: &[u8]) -> Option<Config> {
        Config::from_prepared(data)
    }

    fn inspect_request(c: &Config, req: &Request, conversation: &Conversation) -> Verdict {
        if let Some(max) = c.max_prompt_chars {
            let chars: u64 = conversation
                .parts
                .iter()
                .map(|p| p.text.chars().count() as u64)
                .sum();
            if chars > max {
                return Verdict::deny(
                    400,
                    "invalid_request_error",
                    format!(
                        "request refused by content-rules: the prompt has {chars} characters, over the limit of {max}"
                    ),
                )
                .finding(
                    "max_prompt_chars",
                    "length",
                    u32::try_from(chars).unwrap_or(u32::MAX),
                );
            }
        }
        let scope: Vec<usize> = (0..c.rules.len())
            .filter(|&i| c.rules[i].apply_to.request() && in_scope(&c.rules[i], req))
            .collect();
        let injection = c
            .injection
            .as_ref()
            .is_some_and(|i| i.action != InjectionAction::Off);
        if scope.is_empty() && !injection {
            return Verdict::allow();
        }
        let counts = scan::scan(c, &scope, injection, &conversation.parts);
        verdict(c, &scope, &counts, Side::Request)
    }

    fn inspect_response(c: &Config, req: &Request, answer: &Answer) -> Verdict {
        let scope: Vec<usize> = (0..c.rules.len())
            .filter(|&i| c.rules[i].apply_to.response() && in_scope(&c.rules[i], req))
            .collect();
        if scope.is_empty() {
            return Verdict::allow();
        }
        let counts = scan::scan(c, &scope, false, &answer.parts);
        verdict(c, &scope, &counts, Side::Response)
    }
}

tollgate_guest::export_plugin!(ContentRules);
