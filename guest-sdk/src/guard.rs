//! Helpers for the guardrail hooks: [`Verdict`] constructors, [`Finding`]s, and
//! [`Rewrite`] to collect text edits while scanning.

use crate::{
    Answer, Conversation, Denial, Finding, Refusal, Rewrite, Role, TextEdit, TextPart, Verdict,
};
use std::ops::Range;

/// Most edits the host applies from one guardrail call; a rewrite with more fails the
/// request. A guardrail that would need more should deny instead.
pub const MAX_EDITS: usize = 4096;

/// Most bytes one call's rewrite may add to the text (replacements and appended text,
/// less what they replace).
pub const MAX_ADDED_BYTES: usize = 64 << 10;

impl Finding {
    /// `count` matches of `rule`, a thing of `kind` (e.g. `email`, `pii`, 2).
    pub fn new(rule: impl Into<String>, kind: impl Into<String>, count: u32) -> Self {
        Self {
            rule: rule.into(),
            kind: kind.into(),
            count,
        }
    }
}

/// Constructors and accessors.
///
/// ```
/// use tollgate_guest::{Finding, Verdict};
///
/// let v = Verdict::deny(400, "invalid_request_error", "no card numbers").finding("card", "pii", 1);
/// assert_eq!(v.denial().map(|d| d.status), Some(400));
/// assert_eq!(v.findings(), [Finding::new("card", "pii", 1)]);
/// assert!(Verdict::allow().finding("email", "pii", 2).is_flag());
/// ```
impl Verdict {
    /// Nothing to say: the text goes on unchanged.
    pub fn allow() -> Self {
        Verdict::Allow
    }

    /// The text goes on unchanged; `findings` are recorded in the log.
    pub fn flag(findings: impl IntoIterator<Item = Finding>) -> Self {
        Verdict::Flag(findings.into_iter().collect())
    }

    /// Refuses the request (or, for an answer, sends the client this error instead).
    pub fn deny(status: u16, error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Verdict::Deny(Refusal {
            denial: Denial::new(status, error_type, message),
            findings: Vec::new(),
        })
    }

    /// Adds a finding: an [`Verdict::Allow`] becomes a [`Verdict::Flag`].
    pub fn finding(mut self, rule: impl Into<String>, kind: impl Into<String>, count: u32) -> Self {
        let f = Finding::new(rule, kind, count);
        match &mut self {
            Verdict::Allow => return Verdict::Flag(vec![f]),
            Verdict::Flag(fs) => fs.push(f),
            Verdict::Deny(r) => r.findings.push(f),
            Verdict::Rewrite(r) => r.findings.push(f),
        }
        self
    }

    /// What was found, whatever the outcome.
    pub fn findings(&self) -> &[Finding] {
        match self {
            Verdict::Allow => &[],
            Verdict::Flag(fs) => fs,
            Verdict::Deny(r) => &r.findings,
            Verdict::Rewrite(r) => &r.findings,
        }
    }

    /// The refusal, when the verdict denies.
    pub fn denial(&self) -> Option<&Denial> {
        match self {
            Verdict::Deny(r) => Some(&r.denial),
            _ => None,
        }
    }

    /// The edits, when the verdict rewrites.
    pub fn edits(&self) -> &[TextEdit] {
        match self {
            Verdict::Rewrite(r) => &r.edits,
            _ => &[],
        }
    }

    /// Whether the verdict lets the text on unchanged but records findings.
    pub fn is_flag(&self) -> bool {
        matches!(self, Verdict::Flag(_))
    }
}

/// Collects edits and findings while a plugin scans the text, then becomes the
/// [`Verdict`]: a rewrite when there are edits, a flag when there are only findings,
/// else allow. Findings of the same rule and kind are counted together.
///
/// ```
/// use tollgate_guest::{Rewrite, Role, testing};
///
/// let convo = testing::conversation([(Role::User, "mail bob@example.com now")]);
/// let part = &convo.parts[0];
/// let mut rw = Rewrite::default();
/// rw.replace(part, 5..20, "[EMAIL_1]");
/// rw.found("email", "pii", 1);
/// let verdict = rw.into_verdict();
/// assert_eq!(testing::apply(&convo.parts, &verdict).unwrap(), ["mail [EMAIL_1] now"]);
/// ```
impl Rewrite {
    /// Replaces bytes `range` of `part`'s text with `replacement` (`range` must lie on
    /// character boundaries and must not overlap another edit of the same part).
    pub fn replace(
        &mut self,
        part: &TextPart,
        range: Range<usize>,
        replacement: impl Into<String>,
    ) {
        self.edits.push(TextEdit {
            part: part.id,
            start: u32::try_from(range.start).unwrap_or(u32::MAX),
            end: u32::try_from(range.end).unwrap_or(u32::MAX),
            replacement: replacement.into(),
        });
    }

    /// Adds `text` at the end of the system prompt (requests only).
    pub fn append_system(&mut self, text: impl Into<String>) {
        let text = text.into();
        match &mut self.append_system {
            Some(s) => {
                s.push_str("\n\n");
                s.push_str(&text);
            }
            None => self.append_system = Some(text),
        }
    }

    /// Records `count` more matches of `rule` (a thing of `kind`).
    pub fn found(&mut self, rule: &str, kind: &str, count: u32) {
        if count == 0 {
            return;
        }
        match self
            .findings
            .iter_mut()
            .find(|f| f.rule == rule && f.kind == kind)
        {
            Some(f) => f.count = f.count.saturating_add(count),
            None => self.findings.push(Finding::new(rule, kind, count)),
        }
    }

    /// Whether nothing was edited, appended or found.
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty() && self.append_system.is_none() && self.findings.is_empty()
    }

    /// The verdict: rewrite, flag or allow (see the type's docs).
    pub fn into_verdict(self) -> Verdict {
        if !self.edits.is_empty() || self.append_system.is_some() {
            Verdict::Rewrite(self)
        } else if !self.findings.is_empty() {
            Verdict::Flag(self.findings)
        } else {
            Verdict::Allow
        }
    }
}

impl Conversation {
    /// The parts written by `role`.
    pub fn parts_of(&self, role: Role) -> impl Iterator<Item = &TextPart> {
        self.parts.iter().filter(move |p| p.role == role)
    }

    /// Total bytes of text in the conversation.
    pub fn text_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.text.len()).sum()
    }
}

impl Answer {
    /// The answer's whole text, parts joined.
    pub fn text(&self) -> String {
        self.parts.iter().map(|p| p.text.as_str()).collect()
    }
}

/// Applies `verdict`'s edits to `parts` the way the host does, returning every part's
/// new text (in part order), or the reason the host would fail the request (an edit
/// naming a part that does not exist, off a character boundary, or overlapping
/// another). Used by [`crate::testing::apply`].
pub(crate) fn apply(parts: &[TextPart], verdict: &Verdict) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = parts.iter().map(|p| p.text.clone()).collect();
    let mut edits: Vec<&TextEdit> = verdict.edits().iter().collect();
    edits.sort_by_key(|e| (e.part, e.start, e.end));
    let mut prev: Option<&TextEdit> = None;
    // Applied back to front so earlier offsets stay valid.
    for e in &edits {
        let text = parts
            .get(e.part as usize)
            .map(|p| &p.text)
            .ok_or_else(|| format!("edit names part {}, which does not exist", e.part))?;
        let (s, end) = (e.start as usize, e.end as usize);
        if s > end || end > text.len() || !text.is_char_boundary(s) || !text.is_char_boundary(end) {
            return Err(format!(
                "edit {s}..{end} of part {} is not on character boundaries",
                e.part
            ));
        }
        if let Some(p) = prev
            && p.part == e.part
            && (s < p.end as usize || s == p.start as usize)
        {
            return Err(format!("edits of part {} overlap", e.part));
        }
        prev = Some(e);
    }
    for e in edits.iter().rev() {
        out[e.part as usize].replace_range(e.start as usize..e.end as usize, &e.replacement);
    }
    Ok(out)
}
