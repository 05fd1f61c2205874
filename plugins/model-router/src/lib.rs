//! `model-router`: choose the provider and model for each request by rules on its
//! metadata, team, user, API key, requested model and endpoint, with fallbacks,
//! retries and weighted load balancing.
//!
//! Config (see `README.md` for a worked example):
//!
//! ```toml
//! [[tenants.plugins]]
//! name = "model-router"
//! config = { rules = [
//!   { name = "engineering", when = { metadata = { team = "engineering" } }, route = { targets = [{ provider = "anthropic" }, { provider = "openai", model = "gpt-4o" }] } },
//! ], default = { targets = [{ provider = "anthropic" }] } }
//! ```
//!
//! - `rules`: tried in order; the first whose `when` holds routes the request. Every
//!   condition present in `when` must hold (an empty `when` matches everything):
//!   - `metadata`: key (case-sensitive) -> a matcher: `{ equals = "x" }` (or just `"x"`),
//!     `{ in = [..] }`, `{ not_in = [..] }` (an absent key matches), `{ exists = bool }`,
//!     `{ prefix = "eu-" }`;
//!   - `team`, `user`, `key` (API key id or name): a string or a list of strings;
//!   - `model`: glob(s) on the requested model, `*` any run of characters, `?` one;
//!   - `endpoint`: `messages`, `count_tokens`, `chat_completions`, or a list.
//! - `route` (and `default`): `targets` (`provider`, optional `model`, `models` map of
//!   requested -> served model, `weight` default 1, `max_tokens_cap`); `strategy`
//!   (`single`, `fallback`, `load_balance`; default `single` for one target, else
//!   `fallback`); `retry_on` (`statuses` default 429/500/502/503/504, `timeout` and
//!   `connect_error` default true); `retries` (0), `backoff_ms` (200), `max_backoff_ms`
//!   (5000), `attempt_timeout_ms` (provider default).
//! - `default`: the route when no rule matches; absent = the request is left to later
//!   plugins and the tenant's default provider.
//! - `aliases`: requested model -> model to ask for when a target names none.
//!
//! A target's model is `models[requested]`, else `model`, else `aliases[requested]`,
//! else the requested model. The plan is labelled `route_rule=<rule name>` or
//! `route_rule=default` in the request log. The policy hook is not implemented: every
//! request is allowed.

#![warn(missing_docs)]

pub mod config;
pub mod matching;

#[cfg(test)]
mod tests;

pub use config::Config;
use tollgate_guest::{Plugin, Request, RoutePlan};

/// The plugin; exported as the component's `guest` interface.
pub struct ModelRouter;

/// JSON Schema of [`Config`].
pub const SCHEMA: &str = r##"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "model-router",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "aliases": {
      "description": "Requested model -> model to ask for when a target names none.",
      "type": "object",
      "additionalProperties": {"type": "string", "minLength": 1}
    },
    "rules": {
      "description": "Tried in order; the first whose `when` holds routes the request.",
      "type": "array",
      "items": {
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "route"],
        "properties": {
          "name": {"description": "Recorded as the route_rule label.", "type": "string", "minLength": 1, "not": {"const": "default"}},
          "when": {"$ref": "#/$defs/when"},
          "route": {"$ref": "#/$defs/route"}
        }
      }
    },
    "default": {
      "description": "Route for requests no rule matched; absent = leave them unrouted.",
      "$ref": "#/$defs/route"
    }
  },
  "$defs": {
    "strings": {
      "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}
      ]
    },
    "matcher": {
      "description": "A condition on one metadata value; a plain string means equals.",
      "oneOf": [
        {"type": "string"},
        {"type": "object", "additionalProperties": false, "minProperties": 1, "maxProperties": 1,
         "properties": {
           "equals": {"type": "string"},
           "in": {"type": "array", "minItems": 1, "items": {"type": "string"}},
           "not_in": {"description": "An absent key matches.", "type": "array", "items": {"type": "string"}},
           "exists": {"type": "boolean"},
           "prefix": {"type": "string"}
         }}
      ]
    },
    "when": {
      "description": "All present conditions must hold; empty matches every request.",
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "metadata": {
          "description": "x-portkey-metadata key (case-sensitive) -> matcher.",
          "type": "object",
          "additionalProperties": {"$ref": "#/$defs/matcher"}
        },
        "team": {"$ref": "#/$defs/strings"},
        "user": {"$ref": "#/$defs/strings"},
        "key": {"description": "API key id or name.", "$ref": "#/$defs/strings"},
        "model": {"description": "Globs on the requested model: * any run, ? one character.", "$ref": "#/$defs/strings"},
        "endpoint": {
          "oneOf": [
            {"$ref": "#/$defs/endpoint"},
            {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/endpoint"}}
          ]
        }
      }
    },
    "endpoint": {"enum": ["messages", "count_tokens", "chat_completions"]},
    "route": {
      "type": "object",
      "additionalProperties": false,
      "required": ["targets"],
      "properties": {
        "strategy": {
          "description": "Default: single for one target, else fallback.",
          "enum": ["single", "fallback", "load_balance"]
        },
        "targets": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/target"}},
        "retry_on": {
          "type": "object",
          "additionalProperties": false,
          "properties": {
            "statuses": {"type": "array", "items": {"type": "integer", "minimum": 100, "maximum": 599}, "default": [429, 500, 502, 503, 504]},
            "timeout": {"type": "boolean", "default": true},
            "connect_error": {"type": "boolean", "default": true}
          }
        },
        "retries": {"description": "Extra attempts per target.", "type": "integer", "minimum": 0, "default": 0},
        "backoff_ms": {"type": "integer", "minimum": 0, "default": 200},
        "max_backoff_ms": {"type": "integer", "minimum": 0, "default": 5000},
        "attempt_timeout_ms": {"description": "Absent: the provider's timeout.", "type": "integer", "minimum": 1}
      }
    },
    "target": {
      "type": "object",
      "additionalProperties": false,
      "required": ["provider"],
      "properties": {
        "provider": {"description": "Provider id from the gateway config.", "type": "string", "minLength": 1},
        "model": {"type": "string", "minLength": 1},
        "models": {
          "description": "Requested model -> model to ask this provider for; wins over model.",
          "type": "object",
          "additionalProperties": {"type": "string", "minLength": 1}
        },
        "weight": {"description": "Share of traffic under load_balance.", "type": "integer", "minimum": 0, "default": 1},
        "max_tokens_cap": {"type": "integer", "minimum": 1}
      }
    }
  }
}"##;

#[tollgate_guest::plugin]
impl Plugin for ModelRouter {
    const NAME: &'static str = "model-router";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Config = Config;

    fn config_schema() -> &'static str {
        SCHEMA
    }

    fn validate(c: &Config) -> Result<(), String> {
        config::validate(c)
    }

    /// The checked config in postcard: a fresh instance reads it back without parsing
    /// the JSON or validating it again.
    fn prepare(c: &Config) -> Option<Vec<u8>> {
        postcard::to_allocvec(c).ok()
    }

    fn from_prepared(data: &[u8]) -> Option<Config> {
        postcard::from_bytes(data).ok()
    }

    fn route(c: &Config, req: &Request) -> Option<RoutePlan> {
        matching::plan(c, req)
    }
}

tollgate_guest::export_plugin!(ModelRouter);
