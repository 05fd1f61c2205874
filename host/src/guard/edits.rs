//! Checking a plugin's edits and computing the parts' new text, before any body
//! changes.

use super::GuardError;
use crate::plugins::wit;

/// Most edits applied from one call.
pub const MAX_EDITS: usize = 4096;

/// Most bytes one call's rewrite may add to the text (replacements and appended text,
/// less what they replace): a guardrail redacts and annotates, it does not write.
pub const MAX_GROWTH: usize = 64 << 10;

/// The new text of every part `edits` change, by part index, in part order; `appended`
/// bytes (the rewrite's `append-system`) count towards the growth bound. Nothing is
/// returned unless every edit is valid.
pub fn plan(
    parts: &[wit::TextPart],
    edits: &[wit::TextEdit],
    appended: usize,
) -> Result<Vec<(usize, String)>, GuardError> {
    if edits.len() > MAX_EDITS {
        return Err(GuardError::TooManyEdits {
            count: edits.len(),
            max: MAX_EDITS,
        });
    }
    let mut order: Vec<usize> = (0..edits.len()).collect();
    order.sort_by_key(|&i| (edits[i].part, edits[i].start, edits[i].end));
    let (mut added, mut removed) = (appended, 0usize);
    let mut out = Vec::new();
    let mut k = 0;
    while k < order.len() {
        let part_id = edits[order[k]].part;
        let text = match parts.get(part_id as usize) {
            Some(p) => p.text.as_str(),
            None => {
                return Err(GuardError::NoSuchPart {
                    index: order[k],
                    part: part_id,
                    parts: parts.len(),
                });
            }
        };
        let mut new = String::with_capacity(text.len());
        let mut at = 0usize;
        let mut prev: Option<usize> = None;
        while k < order.len() && edits[order[k]].part == part_id {
            let i = order[k];
            let e = &edits[i];
            let (start, end) = (e.start as usize, e.end as usize);
            if start > end
                || end > text.len()
                || !text.is_char_boundary(start)
                || !text.is_char_boundary(end)
            {
                return Err(GuardError::Range {
                    index: i,
                    part: part_id,
                    start: e.start,
                    end: e.end,
                    len: text.len(),
                });
            }
            if let Some(p) = prev
                && (start < at || start == edits[p].start as usize)
            {
                return Err(GuardError::Overlap {
                    first: p.min(i),
                    second: p.max(i),
                    part: part_id,
                });
            }
            new.push_str(&text[at..start]);
            new.push_str(&e.replacement);
            added += e.replacement.len();
            removed += end - start;
            at = end;
            prev = Some(i);
            k += 1;
        }
        new.push_str(&text[at..]);
        out.push((part_id as usize, new));
    }
    let growth = added.saturating_sub(removed);
    if growth > MAX_GROWTH {
        return Err(GuardError::TooLarge {
            added: growth,
            max: MAX_GROWTH,
        });
    }
    Ok(out)
}

/// [`plan`] for an answer's rewrite, which may not append to a system prompt.
pub fn plan_answer(
    parts: &[wit::TextPart],
    rewrite: &wit::Rewrite,
) -> Result<Vec<(usize, String)>, GuardError> {
    if rewrite.append_system.is_some() {
        return Err(GuardError::AppendToAnswer);
    }
    plan(parts, &rewrite.edits, 0)
}

/// A numbered text part.
pub fn part(id: usize, role: wit::Role, message: Option<usize>, text: &str) -> wit::TextPart {
    wit::TextPart {
        id: u32::try_from(id).unwrap_or(u32::MAX),
        role,
        message: message.map(|m| u32::try_from(m).unwrap_or(u32::MAX)),
        text: text.to_string(),
    }
}
