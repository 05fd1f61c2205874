//! `hostile`: a plugin that attacks the gateway through what it returns, for the
//! end-to-end tests of the host's bounds (docs/security.md). Where `chaos` misbehaves
//! inside its sandbox (traps, loops, memory), `hostile` stays within its CPU and memory
//! limits and tries to hurt the host and other tenants with its output instead. Never
//! deploy it for real traffic.
//!
//! Config: `{"mode": "...", "count": n, "size": bytes, "provider": "..."}`; each mode
//! acts in one hook and leaves the others alone:
//!
//! | mode             | hook   | behaviour                                                         |
//! |------------------|--------|-------------------------------------------------------------------|
//! | `allow`          | all    | nothing                                                           |
//! | `huge-deny`      | policy | denies with a `size`-byte message and a bogus error type          |
//! | `many-labels`    | policy | allows with `count` labels of `size`-byte values                  |
//! | `log-flood`      | policy | writes `count` log lines of `size` bytes, then allows             |
//! | `clock-probe`    | policy | labels what the WASI clocks look like from inside                 |
//! | `random-probe`   | policy | labels a hash keyed by WASI randomness (to compare across calls)  |
//! | `many-targets`   | route  | a fallback plan of `count` targets on `provider`                  |
//! | `many-limits`    | budget | grants `count` limits with names unique to the request            |
//! | `fresh-limit`    | budget | grants one limit whose name is new on every request               |
//! | `nan-limit`      | budget | grants a limit whose cap is NaN                                   |
//! | `negative-limit` | budget | grants a limit whose cap is negative                              |
//! | `edit-no-part`   | inspect-request  | edits a part that does not exist                        |
//! | `edit-overlap`   | inspect-request  | two overlapping edits of the first part                 |
//! | `edit-split-char`| inspect-request  | an edit ending inside a multi-byte character            |
//! | `edit-grow`      | inspect-request  | inserts `size` bytes into the first part                |
//! | `many-findings`  | inspect-request  | flags `count` findings with `size`-byte rule names      |
//! | `answer-no-part` | inspect-response | edits an answer part that does not exist                |
//! | `prepared-probe` | validate, policy | keeps a `size`-byte prepared config; labels what it reads back |

use serde::{Deserialize, Serialize};
use tollgate_guest::{
    Answer, BudgetDecision, BudgetLimit, Conversation, Decision, Finding, LogLevel, Metric, Period,
    Plugin, Request, Rewrite, RoutePlan, Scope, Target, Verdict,
};

/// The plugin; exported as the component's `guest` interface.
pub struct Hostile;

/// What the plugin attacks with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Nothing hostile.
    #[default]
    Allow,
    /// Deny with a `size`-byte message and a bogus error type.
    HugeDeny,
    /// Allow with `count` labels of `size`-byte values.
    ManyLabels,
    /// Write `count` log lines of `size` bytes, then allow.
    LogFlood,
    /// Label what the WASI clocks look like from inside.
    ClockProbe,
    /// Label a hash keyed by WASI randomness.
    RandomProbe,
    /// Route with a fallback plan of `count` targets.
    ManyTargets,
    /// Grant `count` limits with names unique to the request.
    ManyLimits,
    /// Grant one limit whose name is new on every request.
    FreshLimit,
    /// Grant a limit whose cap is NaN.
    NanLimit,
    /// Grant a limit whose cap is negative.
    NegativeLimit,
    /// Edit a conversation part that does not exist.
    EditNoPart,
    /// Two overlapping edits of the first part.
    EditOverlap,
    /// An edit ending inside a multi-byte character.
    EditSplitChar,
    /// Insert `size` bytes into the first part.
    EditGrow,
    /// Flag `count` findings with `size`-byte rule names.
    ManyFindings,
    /// Edit an answer part that does not exist.
    AnswerNoPart,
    /// Keep a `size`-byte prepared config, and label how many bytes a call read back.
    PreparedProbe,
}

/// The plugin's config.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    /// What to attack with.
    pub mode: Mode,
    /// How many labels, lines, targets or limits.
    #[serde(default = "default_count")]
    pub count: u32,
    /// How many bytes per message, label value or line.
    #[serde(default = "default_size")]
    pub size: u32,
    /// The provider of `many-targets`.
    #[serde(default)]
    pub provider: Option<String>,
    /// How many prepared bytes this call's config was read from (`prepared-probe`).
    #[serde(skip)]
    pub prepared: Option<usize>,
}

fn default_count() -> u32 {
    1_000
}
fn default_size() -> u32 {
    1_024
}

#[tollgate_guest::plugin]
impl Plugin for Hostile {
    const NAME: &'static str = "hostile";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Config = Config;

    fn validate(c: &Config) -> Result<(), String> {
        if c.mode == Mode::ManyTargets && c.provider.is_none() {
            return Err("provider: required for mode = \"many-targets\"".into());
        }
        Ok(())
    }

    fn prepare(c: &Config) -> Option<Vec<u8>> {
        if c.mode != Mode::PreparedProbe {
            return None;
        }
        // The config's JSON padded with spaces to `size` bytes (still JSON).
        let mut data = serde_json::to_vec(c).ok()?;
        data.resize(data.len().max(c.size as usize), b' ');
        Some(data)
    }

    fn from_prepared(data: &[u8]) -> Option<Config> {
        let mut c: Config = serde_json::from_slice(data).ok()?;
        c.prepared = Some(data.len());
        Some(c)
    }

    fn policy(c: &Config, req: &Request) -> Decision {
        let text = |n: u32| "x".repeat(n as usize);
        match c.mode {
            Mode::PreparedProbe => Decision::allow_with([(
                "prepared.bytes",
                c.prepared.map_or("none".to_string(), |n| n.to_string()),
            )]),
            Mode::HugeDeny => Decision::deny(403, "Not A Type!", text(c.size)),
            Mode::ManyLabels => {
                Decision::allow_with((0..c.count).map(|i| (format!("label-{i}"), text(c.size))))
            }
            Mode::LogFlood => {
                let line = text(c.size);
                for _ in 0..c.count {
                    req.log(LogLevel::Warn, line.clone());
                }
                Decision::allow()
            }
            Mode::ClockProbe => Decision::allow_with(clock_probe()),
            Mode::RandomProbe => {
                use std::hash::BuildHasher as _;
                // RandomState draws its keys from WASI's random source.
                let h = std::collections::hash_map::RandomState::new().hash_one(42u64);
                Decision::allow_with([("random.hash", h.to_string())])
            }
            _ => Decision::allow(),
        }
    }

    fn route(c: &Config, _req: &Request) -> Option<RoutePlan> {
        if c.mode != Mode::ManyTargets {
            return None;
        }
        let provider = c.provider.clone().unwrap_or_default();
        Some(RoutePlan::fallback(
            (0..c.count).map(|_| Target::new(provider.as_str())),
        ))
    }

    fn budget(c: &Config, req: &Request, _target: &Target) -> BudgetDecision {
        let limit = |name: String, cap: f64| {
            BudgetLimit::new(name, Scope::Tenant, Metric::Requests, Period::Day, cap)
        };
        let id = req.request_id();
        match c.mode {
            Mode::ManyLimits => (0..c.count).fold(BudgetDecision::allow(), |d, i| {
                d.limit(limit(format!("l-{id}-{i}"), 1e12))
            }),
            Mode::FreshLimit => BudgetDecision::allow().limit(limit(format!("fresh-{id}"), 1e12)),
            Mode::NanLimit => BudgetDecision::allow().limit(limit("nan".into(), f64::NAN)),
            Mode::NegativeLimit => BudgetDecision::allow().limit(limit("negative".into(), -5.0)),
            _ => BudgetDecision::allow(),
        }
    }

    fn inspect_request(c: &Config, _req: &Request, convo: &Conversation) -> Verdict {
        let Some(first) = convo.parts.first() else {
            return Verdict::allow();
        };
        let mut rw = Rewrite::default();
        match c.mode {
            Mode::EditNoPart => {
                let mut ghost = first.clone();
                ghost.id = 9_999;
                rw.replace(&ghost, 0..0, "x");
            }
            Mode::EditOverlap => {
                let end = first.text.len();
                rw.replace(first, 0..end, "a");
                rw.replace(first, 0..end, "b");
            }
            Mode::EditSplitChar => {
                // Inside the first multi-byte character, else past the end.
                let at = first
                    .text
                    .char_indices()
                    .find(|(_, ch)| ch.len_utf8() > 1)
                    .map_or(first.text.len() + 1, |(i, _)| i + 1);
                rw.replace(first, 0..at, "");
            }
            Mode::EditGrow => rw.replace(first, 0..0, "x".repeat(c.size as usize)),
            Mode::ManyFindings => {
                let rule = "r".repeat(c.size as usize);
                return Verdict::flag(
                    (0..c.count).map(|i| Finding::new(format!("{rule}{i}"), "k", 1)),
                );
            }
            _ => return Verdict::allow(),
        }
        rw.into_verdict()
    }

    fn inspect_response(c: &Config, _req: &Request, answer: &Answer) -> Verdict {
        match (c.mode, answer.parts.first()) {
            (Mode::AnswerNoPart, Some(first)) => {
                let mut ghost = first.clone();
                ghost.id = 9_999;
                let mut rw = Rewrite::default();
                rw.replace(&ghost, 0..0, "x");
                rw.into_verdict()
            }
            _ => Verdict::allow(),
        }
    }
}

tollgate_guest::export_plugin!(Hostile);

/// What the clocks a plugin can reach look like: the wall clock's sub-millisecond part
/// and the smallest step the monotonic clock takes.
fn clock_probe() -> Vec<(String, String)> {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 1_000_000)
        .unwrap_or(u32::MAX);
    let mut smallest = u128::MAX;
    let mut last = std::time::Instant::now();
    let mut steps = 0;
    // Until the clock has moved three times (a few ms), within the call's deadline.
    for _ in 0..20_000 {
        let now = std::time::Instant::now();
        let step = now.duration_since(last).as_nanos();
        if step > 0 {
            smallest = smallest.min(step);
            steps += 1;
            if steps == 3 {
                break;
            }
        }
        last = now;
    }
    vec![
        ("clock.wall_sub_ms_ns".into(), wall.to_string()),
        ("clock.monotonic_step_ns".into(), smallest.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_guest::testing::TestRequest;

    #[test]
    fn prepared_probe_reads_back_what_it_kept() {
        let req = TestRequest::new();
        let d = req
            .run::<Hostile>(r#"{"mode": "prepared-probe", "size": 300}"#)
            .expect("valid");
        assert_eq!(req.prepared().len(), 300);
        assert_eq!(d.annotations()[0].value, "300");
        // Other modes keep nothing.
        let req = TestRequest::new();
        req.run::<Hostile>(r#"{"mode": "allow"}"#).expect("valid");
        assert!(req.prepared().is_empty());
    }

    #[test]
    fn each_mode_attacks_in_its_hook() {
        let d = TestRequest::new()
            .run::<Hostile>(r#"{"mode": "huge-deny", "size": 5000}"#)
            .expect("valid");
        assert_eq!(d.denial().map(|d| d.message.len()), Some(5000));
        let d = TestRequest::new()
            .run::<Hostile>(r#"{"mode": "many-labels", "count": 40, "size": 3}"#)
            .expect("valid");
        assert_eq!(d.annotations().len(), 40);
        let plan = TestRequest::new()
            .run_route::<Hostile>(r#"{"mode": "many-targets", "count": 50, "provider": "p"}"#)
            .expect("valid")
            .expect("routed");
        assert_eq!(plan.targets.len(), 50);
        let b = TestRequest::new()
            .run_budget::<Hostile>(r#"{"mode": "many-limits", "count": 7}"#, &Target::new("p"))
            .expect("valid");
        assert_eq!(b.limits().len(), 7);
        let b = TestRequest::new()
            .run_budget::<Hostile>(r#"{"mode": "nan-limit"}"#, &Target::new("p"))
            .expect("valid");
        assert!(b.limits()[0].limit.is_nan());
        // Other hooks stay quiet.
        assert!(
            TestRequest::new()
                .run_route::<Hostile>(r#"{"mode": "huge-deny"}"#)
                .expect("ok")
                .is_none()
        );
        assert!(
            TestRequest::new()
                .run_budget::<Hostile>(r#"{"mode": "huge-deny"}"#, &Target::new("p"))
                .expect("ok")
                .limits()
                .is_empty()
        );
    }
}
