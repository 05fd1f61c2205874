//! `pii-redact`: finds personal data and credentials in what a request sends to the
//! model and in the model's answer, and redacts, refuses or flags them.
//!
//! Kinds (finding rule, finding kind, placeholder):
//!
//! | rule           | kind         | what                                                        |
//! |----------------|--------------|-------------------------------------------------------------|
//! | `email`        | `pii`        | e-mail address                                              |
//! | `phone`        | `pii`        | `+CC` international, or national with separators (9-12 digits) |
//! | `card`         | `pii`        | 13-19 digits, Luhn-valid, known issuer prefix               |
//! | `iban`         | `pii`        | known country and length, mod 97                            |
//! | `ssn`          | `pii`        | US SSN `AAA-GG-SSSS`, invalid ranges excluded               |
//! | `ip`           | `pii`        | IPv4 (not 0.0.0.0, 127/8, 255.255.255.255), IPv6            |
//! | `aws_key`      | `credential` | `AKIA`/`ASIA` + 16                                          |
//! | `github_token` | `credential` | `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_` + 36, `github_pat_...`   |
//! | `slack_token`  | `credential` | `xox[abposr]-...`                                           |
//! | `api_key`      | `credential` | `sk-`, `sk-proj-`, `sk-ant-`... + 20 or more key characters |
//! | `private_key`  | `credential` | `-----BEGIN ... PRIVATE KEY-----` through its END line      |
//! | `jwt`          | `credential` | three base64url segments, the first starting `eyJ`          |
//!
//! Config (every field optional; `{}` redacts every kind in requests and answers):
//!
//! ```json
//! {
//!   "kinds": {"email": "redact", "card": "deny", "ip": "off", "jwt": "flag"},
//!   "default": "redact",
//!   "apply_to": "both",
//!   "teams": {"security": {"kinds": {"email": "off"}, "apply_to": "request"}}
//! }
//! ```
//!
//! - `kinds`: action per kind: `redact` (replace each match with `[EMAIL_1]`,
//!   `[AWS_KEY_2]`...: one number per distinct value and kind, in order of first
//!   appearance across the call's parts), `deny` (refuse the request with 400
//!   `invalid_request_error`, or withhold the answer with 502 `api_error`; the message
//!   names the kinds and counts, never the text), `flag` (record only) or `off`.
//! - `default`: the action for kinds not named (default `redact`).
//! - `apply_to`: `request`, `response` or `both` (default).
//! - `teams`: per team (the request's team), the same three fields, merged over the top
//!   level: a kind's action is the first given of the team's `kinds`, the top-level
//!   `kinds`, the team's `default`, the top-level `default`.
//!
//! Every verdict carries a finding per kind found (rule = kind name, kind = `pii` or
//! `credential`, count = matches), whatever the action. Overlapping detections are
//! resolved so edits never overlap: a private key block wins over anything inside it,
//! credentials over personal data, then the longer match. `README.md` lists what each
//! detector accepts and the false-positive decisions (e.g. `1.2.3.4` is an IPv4 address).

#![warn(missing_docs)]

pub mod config;
pub mod scan;

#[cfg(test)]
mod tests;

pub use config::{Action, ApplyTo, Config, Settings};
use scan::{Kind, Match};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use tollgate_guest::{
    Answer, Conversation, Denial, Finding, Plugin, Refusal, Request, Rewrite, TextPart, Verdict,
};

/// The plugin; exported as the component's `guest` interface.
pub struct PiiRedact;

/// The plugin's name, as denials show it.
const NAME: &str = "pii-redact";

/// JSON Schema of [`Config`].
pub const SCHEMA: &str = r##"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "pii-redact",
  "description": "Redacts, refuses or flags personal data and credentials in requests and answers.",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "kinds": {"$ref": "#/$defs/kinds"},
    "default": {"$ref": "#/$defs/action", "description": "Action for kinds not named in kinds.", "default": "redact"},
    "apply_to": {"$ref": "#/$defs/apply_to", "default": "both"},
    "teams": {
      "description": "Overrides per team (the request's team), merged over the top level.",
      "type": "object",
      "propertyNames": {"minLength": 1},
      "additionalProperties": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "kinds": {"$ref": "#/$defs/kinds"},
          "default": {"$ref": "#/$defs/action"},
          "apply_to": {"$ref": "#/$defs/apply_to"}
        }
      }
    }
  },
  "$defs": {
    "action": {
      "description": "redact: replace with a numbered placeholder; deny: refuse (400) or withhold the answer (502); flag: record only; off: do not look.",
      "enum": ["redact", "deny", "flag", "off"]
    },
    "apply_to": {"description": "Which hooks the plugin acts on.", "enum": ["request", "response", "both"]},
    "kinds": {
      "description": "Action per kind; kinds not named get default.",
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "email": {"$ref": "#/$defs/action"},
        "phone": {"$ref": "#/$defs/action"},
        "card": {"$ref": "#/$defs/action"},
        "iban": {"$ref": "#/$defs/action"},
        "ssn": {"$ref": "#/$defs/action"},
        "ip": {"$ref": "#/$defs/action"},
        "aws_key": {"$ref": "#/$defs/action"},
        "github_token": {"$ref": "#/$defs/action"},
        "slack_token": {"$ref": "#/$defs/action"},
        "api_key": {"$ref": "#/$defs/action"},
        "private_key": {"$ref": "#/$defs/action"},
        "jwt": {"$ref": "#/$defs/action"}
      }
    }
  }
}"##;

#[tollgate_guest::plugin]
impl Plugin for PiiRedact {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Config = Config;

    fn config_schema() -> &'static str {
        SCHEMA
    }

    fn validate(c: &Config) -> Result<(), String> {
        config::validate(c)
    }

    fn inspect_request(c: &Config, req: &Request, conversation: &Conversation) -> Verdict {
        let settings = c.settings(req.team());
        if !settings.requests() {
            return Verdict::allow();
        }
        inspect(&settings, &conversation.parts, Direction::Request)
    }

    fn inspect_response(c: &Config, req: &Request, answer: &Answer) -> Verdict {
        let settings = c.settings(req.team());
        if !settings.responses() {
            return Verdict::allow();
        }
        // A delivered answer gets the same verdict: the host only records it.
        inspect(&settings, &answer.parts, Direction::Response)
    }
}

/// Which hook is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `inspect-request`.
    Request,
    /// `inspect-response`.
    Response,
}

/// Scans `parts` and builds the verdict: a denial if any kind set to `deny` was found,
/// else a rewrite with a placeholder for every match of a kind set to `redact`, with a
/// finding per kind found.
pub fn inspect(settings: &Settings, parts: &[TextPart], direction: Direction) -> Verdict {
    let kinds = settings.enabled();
    if kinds.is_empty() {
        return Verdict::allow();
    }
    let mut counts = [0u32; Kind::ALL.len()];
    let mut rw = Rewrite::default();
    let mut numbers: BTreeMap<Value, u32> = BTreeMap::new();
    let mut last = [0u32; Kind::ALL.len()];
    let mut found: Vec<Match> = Vec::new();
    for part in parts {
        scan::scan(&part.text, kinds, &mut found);
        for m in &found {
            let k = m.kind as usize;
            counts[k] = counts[k].saturating_add(1);
            if settings.action(m.kind) != Action::Redact {
                continue;
            }
            let value = Value(m.kind, &part.text[m.start..m.end]);
            let n = *numbers.entry(value).or_insert_with(|| {
                last[k] += 1;
                last[k]
            });
            rw.replace(part, m.start..m.end, placeholder(m.kind, n));
        }
    }
    let found_kinds = || Kind::ALL.into_iter().filter(|&k| counts[k as usize] > 0);
    // More than the host applies from one call: refuse rather than let any through.
    let too_many = rw.edits.len() > tollgate_guest::MAX_EDITS;
    let denied: Vec<(Kind, u32)> = found_kinds()
        .filter(|&k| {
            let action = settings.action(k);
            action == Action::Deny || (too_many && action == Action::Redact)
        })
        .map(|k| (k, counts[k as usize]))
        .collect();
    if !denied.is_empty() {
        let findings = found_kinds()
            .map(|k| Finding::new(k.name(), k.category(), counts[k as usize]))
            .collect();
        return Verdict::Deny(Refusal {
            denial: denial(&denied, direction),
            findings,
        });
    }
    for k in found_kinds() {
        rw.found(k.name(), k.category(), counts[k as usize]);
    }
    rw.into_verdict()
}

/// A detected value, compared the way two matches share a placeholder: numbers by their
/// digits and letters (`4111 1111 ...` and `4111-1111-...` are one card), e-mail
/// addresses and IPs without case, credentials exactly. Compares without allocating.
#[derive(Clone, Copy, Debug)]
struct Value<'a>(Kind, &'a str);

impl Value<'_> {
    fn normalized(&self) -> impl Iterator<Item = u8> + '_ {
        let numeric = matches!(self.0, Kind::Card | Kind::Phone | Kind::Iban | Kind::Ssn);
        let fold = matches!(self.0, Kind::Email | Kind::Ip);
        self.1
            .bytes()
            .filter(move |c| !numeric || c.is_ascii_alphanumeric())
            .map(move |c| {
                if numeric {
                    c.to_ascii_uppercase()
                } else if fold {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
    }
}

impl Ord for Value<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .cmp(&other.0)
            .then_with(|| self.normalized().cmp(other.normalized()))
    }
}

impl PartialOrd for Value<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value<'_> {}

/// `[EMAIL_3]`.
fn placeholder(kind: Kind, n: u32) -> String {
    let mut digits = [0u8; 10];
    let mut len = 0;
    let mut n = n;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut s = String::with_capacity(kind.tag().len() + len + 3);
    s.push('[');
    s.push_str(kind.tag());
    s.push('_');
    s.extend(digits[..len].iter().rev().map(|&d| char::from(d)));
    s.push(']');
    s
}

/// The refusal for the denied kinds and their counts: names and counts, never text.
fn denial(denied: &[(Kind, u32)], direction: Direction) -> Denial {
    let mut groups = Vec::new();
    let mut total = 0u32;
    for (credential, one, many) in [
        (true, "credential", "credentials"),
        (false, "piece of personal data", "pieces of personal data"),
    ] {
        let of: Vec<&(Kind, u32)> = denied
            .iter()
            .filter(|(k, _)| k.is_credential() == credential)
            .collect();
        if of.is_empty() {
            continue;
        }
        let n = of
            .iter()
            .map(|(_, c)| c)
            .fold(0u32, |a, c| a.saturating_add(*c));
        total = total.saturating_add(n);
        let names: Vec<&str> = of.iter().map(|(k, _)| k.name()).collect();
        let noun = if n == 1 { one } else { many };
        groups.push(format!("{n} {noun} ({})", names.join(", ")));
    }
    let what = groups.join(" and ");
    match direction {
        Direction::Request => {
            let pronoun = if total == 1 { "it" } else { "them" };
            Denial::new(
                400,
                "invalid_request_error",
                format!(
                    "request refused by {NAME}: it contains {what}; remove {pronoun} and retry"
                ),
            )
        }
        Direction::Response => Denial::new(
            502,
            "api_error",
            format!("the model's answer was withheld by {NAME}: it contained {what}"),
        ),
    }
}

tollgate_guest::export_plugin!(PiiRedact);
