//! The guardrail hooks' side of the contract the host relies on: what a call is shown
//! ([`Subject`]), what takes its rewrite ([`Guarded`], implemented over real bodies in
//! the guard module), why a rewrite is refused ([`GuardError`]), and how a tenant's
//! response guardrail treats streams ([`StreamMode`], a config setting).

use super::wit;
pub use crate::config::StreamMode;

/// Why a plugin's rewrite cannot be applied. Shown (after the plugin's name) in the
/// 500 the client gets and in the log row.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum GuardError {
    /// An edit names a part id the call did not show.
    #[error("edit {index} names part {part}, but there are only {parts} part(s)")]
    NoSuchPart {
        /// The edit's position in the plugin's list.
        index: usize,
        /// The part it names.
        part: u32,
        /// How many parts there are.
        parts: usize,
    },
    /// An edit's range is reversed, past the text's end or splits a character (the
    /// result would not be valid UTF-8, so not valid JSON).
    #[error(
        "edit {index} of part {part}: bytes {start}..{end} are not a range on character \
         boundaries of its {len}-byte text"
    )]
    Range {
        /// The edit's position in the plugin's list.
        index: usize,
        /// The part it names.
        part: u32,
        /// Its start.
        start: u32,
        /// Its end.
        end: u32,
        /// The text's length in bytes.
        len: usize,
    },
    /// Two edits of one part overlap (or insert at the same place).
    #[error("edits {first} and {second} of part {part} overlap")]
    Overlap {
        /// The earlier edit's position in the plugin's list.
        first: usize,
        /// The later one's.
        second: usize,
        /// The part both name.
        part: u32,
    },
    /// More edits than the host applies in one call.
    #[error("{count} edits; at most {max} are applied per call")]
    TooManyEdits {
        /// Edits returned.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// The rewrite would grow the text by more than the bound.
    #[error("the rewrite adds {added} bytes of text; at most {max} may be added per call")]
    TooLarge {
        /// Bytes added (replacements and appended text less what they replace).
        added: usize,
        /// The bound.
        max: usize,
    },
    /// `append-system` in an answer's rewrite.
    #[error("append-system only applies to requests, not answers")]
    AppendToAnswer,
}

/// What a guardrail hook is shown and how its rewrite lands: implemented by the
/// request's conversation, a whole answer and a buffered stream.
pub trait Guarded: Send {
    /// The text as the next plugin sees it.
    fn subject(&self) -> Subject<'_>;
    /// Applies one plugin's rewrite (all of it or, on error, none of it).
    fn rewrite(&mut self, rewrite: wit::Rewrite) -> Result<(), GuardError>;
    /// A request body as rewritten so far, for later plugins' `request-body` (`None`:
    /// unchanged, or not a request).
    fn rewritten_body(&self) -> Option<bytes::Bytes> {
        None
    }
}

/// What one guardrail call is shown.
pub enum Subject<'a> {
    /// A request's conversation (`inspect-request`).
    Request(&'a wit::Conversation),
    /// A model's answer (`inspect-response`).
    Response(&'a wit::Answer),
}
