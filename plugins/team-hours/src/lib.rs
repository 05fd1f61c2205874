//! `team-hours`: which models each team may use and at what hours, where its requests
//! are served, and how much each of its users may spend a day. The same policy is
//! written with the Python and JavaScript guest SDKs (`plugins/team-hours-py`,
//! `plugins/team-hours-js`), and all three pass the fixtures in `tests/`.
//!
//! ```json
//! {
//!   "utc_offset": "+01:00",
//!   "default_team": "contractors",
//!   "teams": {
//!     "engineering": {
//!       "models": ["claude-*", "gpt-4o*"],
//!       "hours": "08:00-20:00",
//!       "days": ["mon", "tue", "wed", "thu", "fri"],
//!       "route": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}, {"provider": "openai"}],
//!       "daily_usd": 50.0
//!     },
//!     "contractors": {"models": ["claude-haiku-*"]}
//!   }
//! }
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use tollgate_guest::{
    BudgetDecision, BudgetGrant, BudgetLimit, Decision, Metric, Period, Plugin, Request, RetryOn,
    RoutePlan, Scope, Target, glob_match,
};

/// The plugin; exported as the component's `guest` interface.
pub struct TeamHours;

/// The plugin's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Offset of the clock hours and days are read in: `+HH:MM` or `-HH:MM`.
    #[serde(default = "utc")]
    pub utc_offset: String,
    /// The entry for requests whose team is absent or not listed.
    #[serde(default)]
    pub default_team: Option<String>,
    /// Rules per team.
    pub teams: BTreeMap<String, Team>,
}

fn utc() -> String {
    "+00:00".into()
}

/// One team's rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    /// Globs of the models the team may ask for.
    pub models: Vec<String>,
    /// `HH:MM-HH:MM`: when requests are allowed (local time, end exclusive).
    #[serde(default)]
    pub hours: Option<String>,
    /// Weekdays requests are allowed on (`mon` .. `sun`).
    #[serde(default)]
    pub days: Option<Vec<String>>,
    /// Where the team's requests are served, in fallback order.
    #[serde(default)]
    pub route: Option<Vec<RouteTo>>,
    /// Most each user (or key, without a user) may spend a day, in USD.
    #[serde(default)]
    pub daily_usd: Option<f64>,
}

/// A route target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTo {
    /// A provider of the tenant.
    pub provider: String,
    /// The model to ask it for; absent keeps the requested one.
    #[serde(default)]
    pub model: Option<String>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Minutes east of UTC for `+HH:MM` / `-HH:MM` (at most 14 hours).
fn offset_minutes(s: &str) -> Option<i64> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let m = clock(rest)?;
    (m <= 14 * 60).then_some(sign * m)
}

/// Minutes since midnight of `HH:MM` (24:00 allowed).
fn clock(s: &str) -> Option<i64> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

/// `(start, end)` minutes of `HH:MM-HH:MM`, start before end.
fn hours(s: &str) -> Option<(i64, i64)> {
    let (a, b) = s.split_once('-')?;
    let (a, b) = (clock(a)?, clock(b)?);
    (a < b).then_some((a, b))
}

impl Config {
    /// The entry a request's team uses, with its key.
    fn entry(&self, team: Option<&str>) -> Option<(&str, &Team)> {
        team.and_then(|t| self.teams.get_key_value(t))
            .or_else(|| {
                let d = self.default_team.as_deref()?;
                self.teams.get_key_value(d)
            })
            .map(|(k, v)| (k.as_str(), v))
    }
}

fn check_team(name: &str, t: &Team) -> Result<(), String> {
    let at = format!("teams.{name}");
    if t.models.is_empty() {
        return Err(format!("{at}.models: must list at least one model glob"));
    }
    if let Some(i) = t.models.iter().position(String::is_empty) {
        return Err(format!("{at}.models[{i}]: must not be empty"));
    }
    if let Some(h) = &t.hours
        && hours(h).is_none()
    {
        return Err(format!(
            "{at}.hours: expected HH:MM-HH:MM with start before end"
        ));
    }
    if let Some(days) = &t.days {
        if days.is_empty() {
            return Err(format!("{at}.days: must list at least one day"));
        }
        for (i, d) in days.iter().enumerate() {
            if !DAYS.contains(&d.as_str()) {
                return Err(format!("{at}.days[{i}]: '{d}' is not a day (mon..sun)"));
            }
            if days[..i].contains(d) {
                return Err(format!("{at}.days[{i}]: '{d}' is listed twice"));
            }
        }
    }
    if let Some(route) = &t.route {
        if route.is_empty() {
            return Err(format!("{at}.route: must list at least one target"));
        }
        for (i, r) in route.iter().enumerate() {
            if r.provider.is_empty() {
                return Err(format!("{at}.route[{i}].provider: must not be empty"));
            }
            if r.model.as_deref() == Some("") {
                return Err(format!("{at}.route[{i}].model: must not be empty"));
            }
        }
    }
    if let Some(usd) = t.daily_usd
        && !(usd.is_finite() && usd > 0.0)
    {
        return Err(format!("{at}.daily_usd: must be a number above 0"));
    }
    Ok(())
}

/// Local weekday (0 = Monday) and minute of the day at `now_ms` shifted by `offset`.
fn local(now_ms: u64, offset: i64) -> (usize, i64) {
    let minutes = (now_ms / 60_000) as i64 + offset;
    let days = minutes.div_euclid(24 * 60);
    // 1970-01-01 was a Thursday.
    (
        (days + 3).rem_euclid(7) as usize,
        minutes.rem_euclid(24 * 60),
    )
}

#[tollgate_guest::plugin]
impl Plugin for TeamHours {
    const NAME: &'static str = "team-hours";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Config = Config;

    fn validate(c: &Config) -> Result<(), String> {
        if offset_minutes(&c.utc_offset).is_none() {
            return Err("utc_offset: expected +HH:MM or -HH:MM, at most 14:00".into());
        }
        if c.teams.is_empty() {
            return Err("teams: must list at least one team".into());
        }
        for (name, t) in &c.teams {
            check_team(name, t)?;
        }
        if let Some(d) = &c.default_team
            && !c.teams.contains_key(d)
        {
            return Err(format!("default_team: '{d}' is not one of teams"));
        }
        Ok(())
    }

    fn policy(c: &Config, req: &Request) -> Decision {
        let Some((key, t)) = c.entry(req.team()) else {
            return Decision::forbid(match req.team() {
                None => "team-hours: requests without a team are not allowed".to_string(),
                Some(team) => {
                    format!("team-hours: team '{team}' is not allowed to use the gateway")
                }
            });
        };
        let team = req.team().unwrap_or("-");
        let model = req.model();
        if !t.models.iter().any(|g| glob_match(g, model)) {
            return Decision::forbid(format!(
                "team-hours: model '{model}' is not allowed for team '{team}'"
            ));
        }
        let offset = offset_minutes(&c.utc_offset).unwrap_or(0);
        let (day, minute) = local(req.now_ms(), offset);
        let day_ok = t
            .days
            .as_ref()
            .is_none_or(|days| days.iter().any(|d| d == DAYS[day]));
        let hour_ok = t
            .hours
            .as_deref()
            .and_then(hours)
            .is_none_or(|(from, to)| from <= minute && minute < to);
        if !(day_ok && hour_ok) {
            let sign = if offset < 0 { '-' } else { '+' };
            let off = offset.abs();
            return Decision::forbid(format!(
                "team-hours: team '{team}' is outside its hours; now {} {:02}:{:02} at UTC{sign}{:02}:{:02}",
                DAYS[day],
                minute / 60,
                minute % 60,
                off / 60,
                off % 60
            ));
        }
        Decision::allow_with([("team_hours.entry", key)])
    }

    fn route(c: &Config, req: &Request) -> Option<RoutePlan> {
        let (key, t) = c.entry(req.team())?;
        let targets: Vec<Target> = t
            .route
            .as_ref()?
            .iter()
            .map(|r| {
                let target = Target::new(&r.provider);
                match &r.model {
                    Some(m) => target.model(m),
                    None => target,
                }
            })
            .collect();
        let plan = if targets.len() == 1 {
            RoutePlan::new(tollgate_guest::Strategy::Single, targets)
        } else {
            RoutePlan::fallback(targets)
        };
        Some(
            plan.retry_on(
                RetryOn::statuses([429, 500, 502, 503, 529])
                    .timeout()
                    .connect_errors(),
            )
            .backoff_ms(0)
            .max_backoff_ms(0)
            .label("team_hours.entry", key),
        )
    }

    fn budget(c: &Config, req: &Request, _target: &Target) -> BudgetDecision {
        let Some((
            key,
            Team {
                daily_usd: Some(usd),
                ..
            },
        )) = c.entry(req.team())
        else {
            return BudgetDecision::allow();
        };
        let scope = if req.user().is_some() {
            Scope::User
        } else {
            Scope::Key
        };
        BudgetDecision::allow_with(
            BudgetGrant::new().limit(
                BudgetLimit::new(
                    format!("team-hours:{key}:daily"),
                    scope,
                    Metric::Cost,
                    Period::Day,
                    *usd,
                )
                .alert_at([80]),
            ),
        )
    }
}

tollgate_guest::export_plugin!(TeamHours);

#[cfg(test)]
mod tests;
