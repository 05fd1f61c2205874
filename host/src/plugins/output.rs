//! Bounds on what a plugin call may hand back to the host: everything a plugin returns
//! ends up in an answer, a log row, the gateway's log or an upstream attempt, so each
//! is capped. Text that is merely too long is cut (and the cut logged, naming the
//! plugin); output that cannot be used safely (too many route targets or budget
//! limits, a limit that is NaN or negative) fails the call like a trap would.

use super::bindings::{Decision, RoutePlan, wit};

/// The bounds, from `[sandbox]` and `[budgets]` in the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLimits {
    /// Longest deny message (and `validate-config` error) kept, in bytes.
    pub max_message_bytes: usize,
    /// Most labels kept per decision.
    pub max_labels: usize,
    /// Longest label key or value kept, in bytes.
    pub max_label_bytes: usize,
    /// Most lines a call may write to the gateway's log.
    pub max_log_lines: u32,
    /// Most bytes a call may write to the gateway's log.
    pub max_log_bytes: usize,
    /// Most targets in a route plan.
    pub max_route_targets: usize,
    /// Most upstream attempts one request may make, whatever its plan says.
    pub max_attempts: u32,
    /// Most budget limits one request may be held to, across its budget plugins.
    pub max_limits_per_request: usize,
}

impl OutputLimits {
    /// The bounds `cfg` sets (`[sandbox]`, and `[budgets] max_limits_per_request`).
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        let s = &cfg.sandbox;
        Self {
            max_message_bytes: s.max_message_bytes,
            max_labels: s.max_labels,
            max_label_bytes: s.max_label_bytes,
            max_log_lines: s.max_log_lines,
            max_log_bytes: s.max_log_bytes,
            max_route_targets: s.max_route_targets,
            max_attempts: s.max_attempts,
            max_limits_per_request: cfg.budgets.max_limits_per_request,
        }
    }
}

impl Default for OutputLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 1024,
            max_labels: 16,
            max_label_bytes: 256,
            max_log_lines: 16,
            max_log_bytes: 8 << 10,
            max_route_targets: 8,
            max_attempts: crate::config::DEFAULT_MAX_ATTEMPTS,
            max_limits_per_request: 32,
        }
    }
}

/// Longest finding rule or kind kept, in bytes.
pub const FINDING_NAME_BYTES: usize = 64;

/// Longest limit name, error type, provider id or model name accepted.
const MAX_NAME_BYTES: usize = 128;
/// Most alert thresholds per limit, and the largest one (percent).
const MAX_ALERTS: usize = 10;
const MAX_ALERT_PCT: u32 = 1_000;

/// What was cut from a plugin's output; logged once per call when not empty.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Trimmed(Vec<String>);

impl Trimmed {
    fn note(&mut self, what: impl Into<String>) {
        self.0.push(what.into());
    }

    /// Whether nothing was cut.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What was cut, in a line.
    pub fn describe(&self) -> String {
        self.0.join("; ")
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
pub fn truncate(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    true
}

impl OutputLimits {
    /// Caps a label list in place.
    pub fn labels(&self, labels: &mut Vec<wit::Annotation>, trimmed: &mut Trimmed) {
        if labels.len() > self.max_labels {
            trimmed.note(format!(
                "{} labels cut to {} ([sandbox] max_labels)",
                labels.len(),
                self.max_labels
            ));
            labels.truncate(self.max_labels);
        }
        let mut cut = 0;
        for a in labels.iter_mut() {
            cut += usize::from(truncate(&mut a.key, self.max_label_bytes));
            cut += usize::from(truncate(&mut a.value, self.max_label_bytes));
        }
        if cut > 0 {
            trimmed.note(format!(
                "{cut} label key(s)/value(s) cut to {} bytes ([sandbox] max_label_bytes)",
                self.max_label_bytes
            ));
        }
    }

    /// Caps a denial in place: message length, and an error type of lowercase letters
    /// and underscores (anything else is dropped: the status decides the type).
    pub fn denial(&self, d: &mut wit::Denial, trimmed: &mut Trimmed) {
        let len = d.message.len();
        if truncate(&mut d.message, self.max_message_bytes) {
            trimmed.note(format!(
                "deny message of {len} bytes cut to {} ([sandbox] max_message_bytes)",
                self.max_message_bytes
            ));
        }
        let ok = d.error_type.len() <= 64
            && d.error_type
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_');
        if !ok {
            trimmed.note("an error type that is not [a-z_]{1,64} was dropped");
            d.error_type.clear();
        }
    }

    /// Caps a policy decision in place.
    pub fn decision(&self, d: &mut Decision, trimmed: &mut Trimmed) {
        match d {
            Decision::Allow => {}
            Decision::AllowWith(labels) => self.labels(labels, trimmed),
            Decision::Deny(denial) => self.denial(denial, trimmed),
        }
    }

    /// Caps a guardrail verdict in place: its findings like labels (count and name
    /// lengths, [`FINDING_NAME_BYTES`] for rule and kind), its denial like a policy's.
    /// Edits are checked where they are applied (by the guard module).
    pub fn verdict(&self, v: &mut wit::Verdict, trimmed: &mut Trimmed) {
        let findings = match v {
            wit::Verdict::Allow => return,
            wit::Verdict::Flag(f) => f,
            wit::Verdict::Deny(r) => {
                self.denial(&mut r.denial, trimmed);
                &mut r.findings
            }
            wit::Verdict::Rewrite(r) => &mut r.findings,
        };
        if findings.len() > self.max_labels {
            trimmed.note(format!(
                "{} findings cut to {} ([sandbox] max_labels)",
                findings.len(),
                self.max_labels
            ));
            findings.truncate(self.max_labels);
        }
        let mut cut = 0;
        for f in findings.iter_mut() {
            cut += usize::from(truncate(&mut f.rule, FINDING_NAME_BYTES));
            cut += usize::from(truncate(&mut f.kind, FINDING_NAME_BYTES));
        }
        if cut > 0 {
            trimmed.note(format!(
                "{cut} finding rule(s)/kind(s) cut to {FINDING_NAME_BYTES} bytes"
            ));
        }
    }

    /// Checks a route plan: too many targets, or names no provider could have, make it
    /// unusable; its labels are capped in place.
    pub fn route_plan(&self, plan: &mut RoutePlan, trimmed: &mut Trimmed) -> Result<(), String> {
        if plan.targets.len() > self.max_route_targets {
            return Err(format!(
                "returned a route plan of {} targets; at most {} are allowed ([sandbox] max_route_targets)",
                plan.targets.len(),
                self.max_route_targets
            ));
        }
        for (i, t) in plan.targets.iter().enumerate() {
            target(t).map_err(|e| format!("route plan targets[{i}]: {e}"))?;
        }
        self.labels(&mut plan.labels, trimmed);
        Ok(())
    }

    /// Checks a budget decision: every limit named, finite and not negative, with sane
    /// alert thresholds, and no more than `room` of them; labels and denials are capped
    /// in place.
    pub fn budget(
        &self,
        d: &mut wit::BudgetDecision,
        room: usize,
        trimmed: &mut Trimmed,
    ) -> Result<(), String> {
        match d {
            wit::BudgetDecision::Deny(denial) => {
                self.denial(denial, trimmed);
                Ok(())
            }
            wit::BudgetDecision::Allow(grant) => {
                if grant.limits.len() > room {
                    return Err(format!(
                        "granted {} budget limits; a request may be held to at most {} \
                         ([budgets] max_limits_per_request){}",
                        grant.limits.len(),
                        self.max_limits_per_request,
                        if room < self.max_limits_per_request {
                            ", counting those of earlier budget plugins"
                        } else {
                            ""
                        }
                    ));
                }
                for (i, l) in grant.limits.iter().enumerate() {
                    limit(l)
                        .map_err(|e| format!("budget limits[{i}] ('{}'): {e}", short(&l.name)))?;
                }
                if let Some(t) = &grant.downgrade {
                    target(t).map_err(|e| format!("budget downgrade: {e}"))?;
                }
                self.labels(&mut grant.labels, trimmed);
                Ok(())
            }
        }
    }
}

/// The first 64 bytes of a name, for error messages.
fn short(s: &str) -> String {
    let mut s = s.to_string();
    if truncate(&mut s, 64) {
        s.push('…');
    }
    s
}

fn target(t: &wit::RouteTarget) -> Result<(), String> {
    if t.provider.is_empty() || t.provider.len() > MAX_NAME_BYTES {
        return Err(format!("provider id must be 1 to {MAX_NAME_BYTES} bytes"));
    }
    if t.model
        .as_ref()
        .is_some_and(|m| m.len() > MAX_NAME_BYTES * 2)
    {
        return Err(format!(
            "model name is longer than {} bytes",
            MAX_NAME_BYTES * 2
        ));
    }
    Ok(())
}

fn limit(l: &wit::BudgetLimit) -> Result<(), String> {
    if l.name.is_empty() || l.name.len() > MAX_NAME_BYTES {
        return Err(format!("the name must be 1 to {MAX_NAME_BYTES} bytes"));
    }
    if !l.limit.is_finite() || l.limit < 0.0 {
        return Err(format!("the limit {} is not a finite number ≥ 0", l.limit));
    }
    if let wit::Scope::Metadata(k) = &l.scope
        && (k.is_empty() || k.len() > crate::metadata::MAX_KEY_LEN)
    {
        return Err(format!(
            "a metadata scope's key must be 1 to {} bytes",
            crate::metadata::MAX_KEY_LEN
        ));
    }
    if l.alert_at.len() > MAX_ALERTS || l.alert_at.iter().any(|&p| p == 0 || p > MAX_ALERT_PCT) {
        return Err(format!(
            "alert_at takes at most {MAX_ALERTS} thresholds, each 1 to {MAX_ALERT_PCT} percent"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(k: &str, v: &str) -> wit::Annotation {
        wit::Annotation {
            key: k.into(),
            value: v.into(),
        }
    }

    fn budget_limit(name: &str, cap: f64) -> wit::BudgetLimit {
        wit::BudgetLimit {
            name: name.into(),
            scope: wit::Scope::Team,
            metric: wit::Metric::Cost,
            period: wit::Period::Day,
            window: wit::Window::Calendar,
            limit: cap,
            alert_at: vec![50, 100],
        }
    }

    #[test]
    fn long_messages_and_many_labels_are_cut_on_char_boundaries() {
        let o = OutputLimits::default();
        let mut t = Trimmed::default();
        let mut d = Decision::Deny(wit::Denial {
            status: 403,
            error_type: "Permission Error!".into(),
            message: "é".repeat(4 << 20),
        });
        o.decision(&mut d, &mut t);
        let Decision::Deny(d) = d else { panic!() };
        assert!(d.message.len() <= 1024 && d.message.len() >= 1022);
        assert!(d.error_type.is_empty());
        let mut labels: Vec<_> = (0..1000)
            .map(|i| label(&format!("k{i}"), &"v".repeat(10_000)))
            .collect();
        o.labels(&mut labels, &mut t);
        assert_eq!(labels.len(), 16);
        assert!(labels.iter().all(|l| l.value.len() == 256));
        assert!(
            t.describe().contains("max_message_bytes"),
            "{}",
            t.describe()
        );
        assert!(
            t.describe().contains("1000 labels cut to 16"),
            "{}",
            t.describe()
        );
    }

    #[test]
    fn unusable_plans_and_limits_are_refused() {
        let o = OutputLimits::default();
        let mut t = Trimmed::default();
        let tgt = wit::RouteTarget {
            provider: "a".into(),
            model: None,
            weight: 1,
            max_tokens_cap: None,
        };
        let mut plan = RoutePlan {
            strategy: wit::Strategy::Fallback,
            targets: vec![tgt.clone(); 11_000],
            retry_on: wit::RetryOn {
                statuses: vec![],
                timeout: false,
                connect_error: false,
            },
            retries: 0,
            backoff_ms: 0,
            max_backoff_ms: 0,
            attempt_timeout_ms: None,
            labels: vec![],
        };
        let e = o.route_plan(&mut plan, &mut t).expect_err("too many");
        assert!(
            e.contains("11000 targets") && e.contains("max_route_targets"),
            "{e}"
        );
        plan.targets = vec![tgt; 2];
        assert!(o.route_plan(&mut plan, &mut t).is_ok());

        for bad in [f64::NAN, -1.0, f64::INFINITY] {
            let mut d = wit::BudgetDecision::Allow(wit::BudgetGrant {
                limits: vec![budget_limit("x", bad)],
                downgrade: None,
                labels: vec![],
            });
            let e = o.budget(&mut d, 32, &mut t).expect_err("bad limit");
            assert!(e.contains("finite"), "{e}");
        }
        let mut d = wit::BudgetDecision::Allow(wit::BudgetGrant {
            limits: (0..5000)
                .map(|i| budget_limit(&format!("l{i}"), 1.0))
                .collect(),
            downgrade: None,
            labels: vec![],
        });
        let e = o.budget(&mut d, 32, &mut t).expect_err("too many");
        assert!(
            e.contains("5000 budget limits") && e.contains("max_limits_per_request"),
            "{e}"
        );
        let mut d = wit::BudgetDecision::Allow(wit::BudgetGrant {
            limits: vec![budget_limit("ok", 0.0)],
            downgrade: None,
            labels: vec![],
        });
        assert!(o.budget(&mut d, 32, &mut t).is_ok());
        assert!(
            o.budget(&mut d, 0, &mut t)
                .unwrap_err()
                .contains("earlier budget plugins")
        );
    }
}
