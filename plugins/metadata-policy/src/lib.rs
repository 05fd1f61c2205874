//! `metadata-policy`: require and restrict `x-portkey-metadata` keys, and limit which
//! models each team may use.
//!
//! Config (every field optional; `{}` allows everything):
//!
//! ```toml
//! [[tenants.plugins]]
//! name = "metadata-policy"
//! config = { required = ["env"], allowed_values = { env = ["prod", "staging", "dev"] }, team_models = { engineering = ["claude-sonnet-*", "claude-haiku-*"] }, default_models = ["claude-haiku-*"] }
//! ```
//!
//! - `required`: metadata keys that must be present (400 `invalid_request_error`).
//! - `allowed_values`: for a key, the exact values it may take when present (400).
//! - `optional` + `deny_unknown_keys`: with `deny_unknown_keys = true`, metadata keys
//!   not listed in `required`, `optional` or `allowed_values` are refused (400); list
//!   `team` and `user` too if callers send them.
//! - `team_models`: for a team, the model patterns it may request (403 `permission_error`).
//!   A pattern is an exact name or uses `*` for any run of characters and `?` for one (`claude-haiku-*`).
//! - `default_models`: patterns for teams not in `team_models` and for requests without a
//!   team. Absent = any model; `[]` = only the teams listed in `team_models` get through.
//!
//! The team is the one the API key is bound to, else the `team` metadata value. A
//! metadata team is asserted by the caller, so bind keys to teams when `team_models`
//! grants some teams more than others.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tollgate_guest::{Decision, Plugin, Request, glob_match};

/// The plugin; exported as the component's `guest` interface.
pub struct MetadataPolicy;

/// The plugin's config; see the crate docs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Metadata keys that must be present.
    #[serde(default)]
    pub required: Vec<String>,
    /// For a metadata key, the exact values it may take when present.
    #[serde(default)]
    pub allowed_values: BTreeMap<String, Vec<String>>,
    /// Further keys accepted, without value checks, when `deny_unknown_keys` is set.
    #[serde(default)]
    pub optional: Vec<String>,
    /// Refuse metadata keys not listed in `required`, `optional` or `allowed_values`.
    #[serde(default)]
    pub deny_unknown_keys: bool,
    /// For a team, the model patterns it may request.
    #[serde(default)]
    pub team_models: BTreeMap<String, Vec<String>>,
    /// Model patterns for other teams and team-less requests (absent = any model).
    #[serde(default)]
    pub default_models: Option<Vec<String>>,
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "metadata-policy",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "required": {
      "description": "x-portkey-metadata keys that must be present.",
      "type": "array", "items": {"type": "string", "minLength": 1}
    },
    "allowed_values": {
      "description": "For a metadata key, the exact values it may take when present.",
      "type": "object",
      "additionalProperties": {"type": "array", "minItems": 1, "items": {"type": "string"}}
    },
    "optional": {
      "description": "Keys accepted without value checks when deny_unknown_keys is set.",
      "type": "array", "items": {"type": "string", "minLength": 1}
    },
    "deny_unknown_keys": {
      "description": "Refuse metadata keys not listed in required, optional or allowed_values.",
      "type": "boolean", "default": false
    },
    "team_models": {
      "description": "For a team, the model patterns it may request ('*' matches any run of characters).",
      "type": "object",
      "additionalProperties": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}
    },
    "default_models": {
      "description": "Model patterns for teams not in team_models and team-less requests; absent = any model, [] = none.",
      "type": "array", "items": {"type": "string", "minLength": 1}
    }
  }
}"#;

#[tollgate_guest::plugin]
impl Plugin for MetadataPolicy {
    const NAME: &'static str = "metadata-policy";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Config = Config;

    fn config_schema() -> &'static str {
        SCHEMA
    }

    fn validate(c: &Config) -> Result<(), String> {
        non_empty_items("required", &c.required)?;
        non_empty_items("optional", &c.optional)?;
        for (key, values) in &c.allowed_values {
            if key.is_empty() {
                return Err("allowed_values: metadata key must not be empty".into());
            }
            if values.is_empty() {
                return Err(format!(
                    "allowed_values.{key}: list is empty; list at least one value or remove the key"
                ));
            }
        }
        for (team, patterns) in &c.team_models {
            if team.is_empty() {
                return Err("team_models: team name must not be empty".into());
            }
            if patterns.is_empty() {
                return Err(format!(
                    "team_models.{team}: list is empty; list at least one model pattern or remove the team"
                ));
            }
            non_empty_items(&format!("team_models.{team}"), patterns)?;
        }
        if let Some(patterns) = &c.default_models {
            non_empty_items("default_models", patterns)?;
            if patterns.is_empty() && c.team_models.is_empty() {
                return Err(
                    "default_models: empty and team_models lists no team, so every request would be denied".into(),
                );
            }
        }
        Ok(())
    }

    /// The checked config in postcard: a fresh instance reads it back without parsing
    /// the JSON or validating it again.
    fn prepare(c: &Config) -> Option<Vec<u8>> {
        postcard::to_allocvec(c).ok()
    }

    fn from_prepared(data: &[u8]) -> Option<Config> {
        postcard::from_bytes(data).ok()
    }

    fn policy(c: &Config, req: &Request) -> Decision {
        match check_metadata(c, req).and_then(|()| check_model(c, req)) {
            Ok(()) => Decision::allow(),
            Err(denial) => denial,
        }
    }
}

tollgate_guest::export_plugin!(MetadataPolicy);

/// Rejects empty strings in a list, naming the field and index.
fn non_empty_items(field: &str, items: &[String]) -> Result<(), String> {
    match items.iter().position(|s| s.is_empty()) {
        Some(i) => Err(format!("{field}[{i}]: must not be empty")),
        None => Ok(()),
    }
}

/// Required keys, unknown keys, allowed values: 400 `invalid_request_error`.
fn check_metadata(c: &Config, req: &Request) -> Result<(), Decision> {
    if let Some(key) = c.required.iter().find(|k| !req.has_meta(k)) {
        return Err(Decision::invalid(format!(
            "metadata key '{}' is required (x-portkey-metadata)",
            shown(key)
        )));
    }
    for (key, value) in req.metadata() {
        if let Some(allowed) = c.allowed_values.get(key) {
            if !allowed.iter().any(|a| a == value) {
                return Err(Decision::invalid(format!(
                    "metadata '{}' = '{}' is not allowed; allowed: {}",
                    shown(key),
                    shown(value),
                    allowed.join(", ")
                )));
            }
        } else if c.deny_unknown_keys && !c.required.iter().chain(&c.optional).any(|k| k == key) {
            return Err(Decision::invalid(format!(
                "metadata key '{}' is not allowed (x-portkey-metadata); allowed keys: {}",
                shown(key),
                known_keys(c)
            )));
        }
    }
    Ok(())
}

/// `team_models` / `default_models`: 403 `permission_error`.
fn check_model(c: &Config, req: &Request) -> Result<(), Decision> {
    let team = req.team();
    let Some(patterns) = team
        .and_then(|t| c.team_models.get(t))
        .or(c.default_models.as_ref())
    else {
        return Ok(());
    };
    let model = req.model();
    if patterns.iter().any(|p| glob_match(p, model)) {
        return Ok(());
    }
    let who = match team {
        Some(t) => format!("team '{}'", shown(t)),
        None => "requests without a team".to_string(),
    };
    Err(Decision::forbid(if patterns.is_empty() {
        format!("{who} may not use any model; ask an administrator to add the team to team_models")
    } else {
        format!(
            "{who} may not use model '{}'; allowed: {}",
            shown(model),
            patterns.join(", ")
        )
    }))
}

/// Metadata keys accepted under `deny_unknown_keys`, sorted, for error messages.
fn known_keys(c: &Config) -> String {
    let mut keys: Vec<&str> = c
        .required
        .iter()
        .chain(&c.optional)
        .chain(c.allowed_values.keys())
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        "none".into()
    } else {
        keys.join(", ")
    }
}

/// A caller-supplied value for an error message, cut to a readable length.
fn shown(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_guest::Hook;
    use tollgate_guest::testing::{self, TestRequest};

    const ENV: &str =
        r#"{"required": ["env"], "allowed_values": {"env": ["prod", "staging", "dev"]}}"#;

    const MODELS: &str = r#"{
        "team_models": {
            "engineering": ["claude-sonnet-*", "claude-haiku-*"],
            "research": ["*"]
        },
        "default_models": ["claude-haiku-*"]
    }"#;

    #[test]
    fn the_prepared_config_reads_back_as_checked() {
        for config in [ENV, MODELS, "{}"] {
            testing::assert_prepared_reads_back::<MetadataPolicy>(config);
        }
        testing::assert_prepared_reads_back::<MetadataPolicy>(
            r#"{"required": ["env"], "optional": ["team", "user"], "deny_unknown_keys": true,
                "allowed_values": {"env": ["prod"]}, "team_models": {"eng": ["claude-*"]},
                "default_models": []}"#,
        );
    }

    fn run(req: TestRequest, config: &str) -> Decision {
        req.run::<MetadataPolicy>(config).expect("config is valid")
    }

    fn denial(d: &Decision) -> (u16, &str, &str) {
        let d = d.denial().expect("expected a denial");
        (d.status, d.error_type.as_str(), d.message.as_str())
    }

    #[test]
    fn describe() {
        let info = testing::describe::<MetadataPolicy>();
        assert_eq!(info.name, "metadata-policy");
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(info.hooks, vec![Hook::Policy]);
        let schema: serde_json::Value =
            serde_json::from_str(&info.config_schema).expect("schema is JSON");
        let props = schema["properties"].as_object().expect("properties");
        let mut names: Vec<_> = props.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "allowed_values",
                "default_models",
                "deny_unknown_keys",
                "optional",
                "required",
                "team_models"
            ]
        );
    }

    #[test]
    fn empty_config_allows_everything() {
        let d = run(
            TestRequest::new()
                .meta("anything", "goes")
                .model("claude-opus-4-1"),
            "{}",
        );
        assert_eq!(d, Decision::Allow);
    }

    #[test]
    fn required_key_missing_is_400() {
        let d = run(TestRequest::new(), ENV);
        assert_eq!(
            denial(&d),
            (
                400,
                "invalid_request_error",
                "metadata key 'env' is required (x-portkey-metadata)"
            )
        );
    }

    #[test]
    fn required_keys_are_case_sensitive_and_checked_in_order() {
        let cfg = r#"{"required": ["env", "project"]}"#;
        let d = run(TestRequest::new().meta("Env", "prod"), cfg);
        assert_eq!(
            denial(&d).2,
            "metadata key 'env' is required (x-portkey-metadata)"
        );
        let d = run(TestRequest::new().meta("env", "prod"), cfg);
        assert_eq!(
            denial(&d).2,
            "metadata key 'project' is required (x-portkey-metadata)"
        );
        let d = run(
            TestRequest::new().meta("project", "x").meta("env", "prod"),
            cfg,
        );
        assert!(d.is_allow());
    }

    #[test]
    fn allowed_value_passes() {
        for env in ["prod", "staging", "dev"] {
            assert_eq!(
                run(TestRequest::new().meta("env", env), ENV),
                Decision::Allow,
                "{env}"
            );
        }
    }

    #[test]
    fn bad_value_is_400_and_lists_allowed() {
        let d = run(TestRequest::new().meta("env", "qa"), ENV);
        assert_eq!(
            denial(&d),
            (
                400,
                "invalid_request_error",
                "metadata 'env' = 'qa' is not allowed; allowed: prod, staging, dev"
            )
        );
        // Values are exact: no case folding or trimming.
        assert!(run(TestRequest::new().meta("env", "Prod"), ENV).is_deny());
        assert!(run(TestRequest::new().meta("env", "prod "), ENV).is_deny());
    }

    #[test]
    fn allowed_values_apply_only_when_present() {
        let cfg = r#"{"allowed_values": {"env": ["prod"]}}"#;
        assert!(run(TestRequest::new(), cfg).is_allow());
        assert!(run(TestRequest::new().meta("other", "x"), cfg).is_allow());
        assert!(run(TestRequest::new().meta("env", "dev"), cfg).is_deny());
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(500);
        let d = run(TestRequest::new().meta("env", &long), ENV);
        let msg = denial(&d).2;
        assert!(msg.contains(&format!("'{}…'", "x".repeat(64))), "{msg}");
        assert!(msg.len() < 200, "{msg}");
    }

    #[test]
    fn unknown_keys_denied_only_when_asked() {
        let cfg = r#"{"required": ["env"], "optional": ["trace"], "allowed_values": {"region": ["eu"]}, "deny_unknown_keys": true}"#;
        let ok = TestRequest::new()
            .meta("env", "x")
            .meta("trace", "t")
            .meta("region", "eu");
        assert!(run(ok, cfg).is_allow());
        let d = run(
            TestRequest::new().meta("env", "x").meta("project", "p"),
            cfg,
        );
        assert_eq!(
            denial(&d),
            (
                400,
                "invalid_request_error",
                "metadata key 'project' is not allowed (x-portkey-metadata); allowed keys: env, region, trace"
            )
        );
        // Without the flag, unknown keys pass.
        assert!(
            run(
                TestRequest::new().meta("env", "dev").meta("project", "p"),
                ENV
            )
            .is_allow()
        );
    }

    #[test]
    fn deny_unknown_keys_with_nothing_listed_refuses_any_metadata() {
        let cfg = r#"{"deny_unknown_keys": true}"#;
        assert!(run(TestRequest::new(), cfg).is_allow());
        let d = run(TestRequest::new().meta("a", "b"), cfg);
        assert!(denial(&d).2.ends_with("allowed keys: none"), "{:?}", d);
    }

    #[test]
    fn team_models_allow_matching_patterns() {
        let eng = || TestRequest::new().team("engineering");
        assert!(run(eng().model("claude-sonnet-4-5"), MODELS).is_allow());
        assert!(run(eng().model("claude-haiku-4-5"), MODELS).is_allow());
        assert!(
            run(
                TestRequest::new().team("research").model("claude-opus-4-1"),
                MODELS
            )
            .is_allow()
        );
    }

    #[test]
    fn team_model_outside_list_is_403() {
        let d = run(
            TestRequest::new()
                .team("engineering")
                .model("claude-opus-4-1"),
            MODELS,
        );
        assert_eq!(
            denial(&d),
            (
                403,
                "permission_error",
                "team 'engineering' may not use model 'claude-opus-4-1'; allowed: claude-sonnet-*, claude-haiku-*"
            )
        );
    }

    #[test]
    fn team_from_metadata_is_used_when_key_has_none() {
        let d = run(
            TestRequest::new()
                .meta("team", "engineering")
                .model("claude-opus-4-1"),
            MODELS,
        );
        assert!(denial(&d).2.starts_with("team 'engineering' may not use"));
        let d = run(
            TestRequest::new()
                .meta("team", "research")
                .model("claude-opus-4-1"),
            MODELS,
        );
        assert!(d.is_allow());
        // A key-bound team wins over the metadata claim.
        let d = run(
            TestRequest::new()
                .team("engineering")
                .meta("team", "research")
                .model("claude-opus-4-1"),
            MODELS,
        );
        assert!(d.is_deny());
    }

    #[test]
    fn unlisted_and_missing_teams_get_default_models() {
        let d = run(
            TestRequest::new().team("sales").model("claude-sonnet-4-5"),
            MODELS,
        );
        assert_eq!(
            denial(&d),
            (
                403,
                "permission_error",
                "team 'sales' may not use model 'claude-sonnet-4-5'; allowed: claude-haiku-*"
            )
        );
        assert!(
            run(
                TestRequest::new().team("sales").model("claude-haiku-4-5"),
                MODELS
            )
            .is_allow()
        );
        let d = run(TestRequest::new().model("claude-sonnet-4-5"), MODELS);
        assert_eq!(
            denial(&d).2,
            "requests without a team may not use model 'claude-sonnet-4-5'; allowed: claude-haiku-*"
        );
    }

    #[test]
    fn absent_default_models_allows_other_teams_any_model() {
        let cfg = r#"{"team_models": {"interns": ["claude-haiku-*"]}}"#;
        assert!(
            run(
                TestRequest::new().team("sales").model("claude-opus-4-1"),
                cfg
            )
            .is_allow()
        );
        assert!(run(TestRequest::new().model("claude-opus-4-1"), cfg).is_allow());
        assert!(
            run(
                TestRequest::new().team("interns").model("claude-opus-4-1"),
                cfg
            )
            .is_deny()
        );
    }

    #[test]
    fn empty_default_models_admits_only_listed_teams() {
        let cfg = r#"{"team_models": {"engineering": ["*"]}, "default_models": []}"#;
        assert!(run(TestRequest::new().team("engineering").model("m"), cfg).is_allow());
        let d = run(TestRequest::new().team("sales").model("m"), cfg);
        assert_eq!(
            denial(&d),
            (
                403,
                "permission_error",
                "team 'sales' may not use any model; ask an administrator to add the team to team_models"
            )
        );
    }

    #[test]
    fn metadata_is_checked_before_models() {
        let cfg = r#"{"required": ["env"], "team_models": {"engineering": ["claude-haiku-*"]}}"#;
        let d = run(
            TestRequest::new()
                .team("engineering")
                .model("claude-opus-4-1"),
            cfg,
        );
        assert_eq!(denial(&d).0, 400);
    }

    #[test]
    fn body_is_never_fetched() {
        let req = TestRequest::new()
            .meta("env", "prod")
            .team("engineering")
            .model("claude-haiku-4-5");
        let cfg = r#"{"required": ["env"], "allowed_values": {"env": ["prod"]}, "team_models": {"engineering": ["claude-haiku-*"]}}"#;
        assert!(run(req, cfg).is_allow());
        let req = TestRequest::new().meta("env", "prod");
        req.run::<MetadataPolicy>(cfg).expect("valid");
        assert_eq!(req.body_reads(), 0);
        assert!(req.logs().is_empty());
    }

    #[test]
    fn validate_names_the_field() {
        let cases = [
            (
                r#"{"allowed_values": {"env": []}}"#,
                "config: allowed_values.env: list is empty; list at least one value or remove the key",
            ),
            (
                r#"{"team_models": {"eng": []}}"#,
                "config: team_models.eng: list is empty; list at least one model pattern or remove the team",
            ),
            (
                r#"{"team_models": {"eng": ["claude-*", ""]}}"#,
                "config: team_models.eng[1]: must not be empty",
            ),
            (
                r#"{"required": ["env", ""]}"#,
                "config: required[1]: must not be empty",
            ),
            (
                r#"{"optional": [""]}"#,
                "config: optional[0]: must not be empty",
            ),
            (
                r#"{"default_models": [""]}"#,
                "config: default_models[0]: must not be empty",
            ),
            (
                r#"{"default_models": []}"#,
                "config: default_models: empty and team_models lists no team, so every request would be denied",
            ),
            (
                r#"{"allowed_values": {"": ["x"]}}"#,
                "config: allowed_values: metadata key must not be empty",
            ),
            (
                r#"{"team_models": {"": ["x"]}}"#,
                "config: team_models: team name must not be empty",
            ),
        ];
        for (cfg, want) in cases {
            assert_eq!(
                testing::validate::<MetadataPolicy>(cfg),
                Err(want.to_string()),
                "{cfg}"
            );
            assert_eq!(
                TestRequest::new().run::<MetadataPolicy>(cfg),
                Err(want.to_string()),
                "{cfg}"
            );
        }
    }

    #[test]
    fn serde_errors_name_the_field() {
        let err = testing::validate::<MetadataPolicy>(r#"{"allowed_values": {"env": "prod"}}"#)
            .unwrap_err();
        assert!(
            err.starts_with(
                "config: allowed_values.env: invalid type: string \"prod\", expected a sequence"
            ),
            "{err}"
        );
        let err = testing::validate::<MetadataPolicy>(r#"{"requried": ["env"]}"#).unwrap_err();
        assert!(
            err.starts_with("config: requried: unknown field `requried`, expected one of"),
            "{err}"
        );
        let err =
            testing::validate::<MetadataPolicy>(r#"{"deny_unknown_keys": "yes"}"#).unwrap_err();
        assert!(
            err.starts_with("config: deny_unknown_keys: invalid type"),
            "{err}"
        );
        let err = testing::validate::<MetadataPolicy>(r#"{"team_models": {"eng": ["a", 3]}}"#)
            .unwrap_err();
        assert!(
            err.starts_with("config: team_models.eng[1]: invalid type: integer"),
            "{err}"
        );
    }

    #[test]
    fn demo_config_is_valid() {
        // The gateway's embedded default config uses this.
        let cfg = r#"{"allowed_values": {"env": ["prod", "staging", "dev"]}}"#;
        assert_eq!(testing::validate::<MetadataPolicy>(cfg), Ok(()));
        assert!(run(TestRequest::new(), cfg).is_allow());
    }
}
