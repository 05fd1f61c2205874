//! Guardrails, the host's half: what the `inspect-request` and `inspect-response`
//! hooks see, and how their rewrites reach the real bodies.
//!
//! A request's conversation and a model's answer are shown to plugins as plain
//! [`wit::TextPart`]s, the same for both client APIs. Each part remembers where its
//! text lives in the body it came from (a JSON path, or for a stream the events that
//! carried it), so a plugin's byte-range edits are applied to exactly that text and
//! the body keeps the client's API shape: everything that is not a text part (tool
//! calls, images, thinking blocks, ids, usage) is never touched.
//!
//! The edits themselves are checked here ([`edits`]) before anything changes: an edit
//! naming a part that does not exist, off a character boundary, overlapping another,
//! or growing the text past the bound fails the request with a 500 naming the plugin
//! (see [`crate::plugins::PolicyChain::inspect`]); a body is never half-edited.

mod answer;
mod edits;
mod path;
mod request;
mod stream;

pub use answer::AnswerText;
pub use request::RequestText;
pub use stream::StreamText;

pub use crate::plugins::{GuardError, Guarded, StreamMode, Subject};

#[cfg(test)]
mod tests;
