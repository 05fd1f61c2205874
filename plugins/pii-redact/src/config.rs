//! The plugin's config: serde types, the checks serde cannot express (each error naming
//! the field path), and the per-call [`Settings`] a team's overrides resolve to.

use crate::scan::{Kind, KindSet};
use serde::Deserialize;
use std::collections::BTreeMap;

/// What happens to a detected kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Replace each match with a numbered placeholder such as `[EMAIL_1]`.
    #[default]
    Redact,
    /// Refuse the request (400) or withhold the answer (502).
    Deny,
    /// Let the text through unchanged; record a finding.
    Flag,
    /// Do not look for it.
    Off,
}

/// Which hooks the plugin acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyTo {
    /// Only what the request sends to the model.
    Request,
    /// Only the model's answer.
    Response,
    /// Both.
    #[default]
    Both,
}

/// The plugin's config; see the crate docs. `{}` redacts every kind in requests and
/// answers.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Action per kind name (`email`, `aws_key`, ...); kinds not listed get `default`.
    #[serde(default)]
    pub kinds: BTreeMap<String, Action>,
    /// Action for kinds not listed in `kinds` (default `redact`).
    #[serde(default)]
    pub default: Option<Action>,
    /// Which hooks the plugin acts on (default `both`).
    #[serde(default)]
    pub apply_to: Option<ApplyTo>,
    /// Overrides per team (the request's team), merged over the fields above.
    #[serde(default)]
    pub teams: BTreeMap<String, Overrides>,
}

/// A team's overrides: each field given replaces the top-level one, and `kinds` is
/// merged key by key over the top-level `kinds`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// Action per kind name, over the top-level `kinds`.
    #[serde(default)]
    pub kinds: BTreeMap<String, Action>,
    /// Action for kinds named in neither `kinds`.
    #[serde(default)]
    pub default: Option<Action>,
    /// Which hooks the plugin acts on for this team.
    #[serde(default)]
    pub apply_to: Option<ApplyTo>,
}

/// What one call does: the action for every kind and which hooks apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Action per kind, indexed by `Kind as usize`.
    pub actions: [Action; Kind::ALL.len()],
    /// Which hooks the plugin acts on.
    pub apply_to: ApplyTo,
}

impl Settings {
    /// The action for `kind`.
    pub fn action(&self, kind: Kind) -> Action {
        self.actions[kind as usize]
    }

    /// The kinds to look for (those not `off`).
    pub fn enabled(&self) -> KindSet {
        Kind::ALL
            .into_iter()
            .filter(|&k| self.action(k) != Action::Off)
            .collect()
    }

    /// Whether the request hook applies.
    pub fn requests(&self) -> bool {
        self.apply_to != ApplyTo::Response
    }

    /// Whether the answer hook applies.
    pub fn responses(&self) -> bool {
        self.apply_to != ApplyTo::Request
    }
}

impl Config {
    /// The settings for a request of `team`: the team's overrides (if the config names
    /// the team) merged over the top level.
    ///
    /// A kind's action is the first given of: the team's `kinds`, the top-level `kinds`,
    /// the team's `default`, the top-level `default`, `redact`.
    pub fn settings(&self, team: Option<&str>) -> Settings {
        let over = team.and_then(|t| self.teams.get(t));
        let default = over
            .and_then(|o| o.default)
            .or(self.default)
            .unwrap_or_default();
        let mut actions = [default; Kind::ALL.len()];
        for kind in Kind::ALL {
            let named = over
                .and_then(|o| o.kinds.get(kind.name()))
                .or_else(|| self.kinds.get(kind.name()));
            if let Some(&action) = named {
                actions[kind as usize] = action;
            }
        }
        Settings {
            actions,
            apply_to: over
                .and_then(|o| o.apply_to)
                .or(self.apply_to)
                .unwrap_or_default(),
        }
    }
}

/// Checks what serde cannot; the error starts with the field path.
pub fn validate(c: &Config) -> Result<(), String> {
    validate_kinds(&c.kinds, "kinds")?;
    for (team, o) in &c.teams {
        if team.is_empty() {
            return Err("teams: a team name must not be empty".into());
        }
        validate_kinds(&o.kinds, &format!("teams.{team}.kinds"))?;
    }
    Ok(())
}

fn validate_kinds(kinds: &BTreeMap<String, Action>, at: &str) -> Result<(), String> {
    match kinds.keys().find(|k| Kind::from_name(k).is_none()) {
        Some(bad) => {
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
            Err(format!(
                "{at}.{bad}: unknown kind; expected one of {}",
                names.join(", ")
            ))
        }
        None => Ok(()),
    }
}
