//! In-process integration tests: the whole request path (auth, plugin chain, routing
//! executor, codecs, stream relay, ledger, log writer) and the admin API, served by a
//! real gateway on an ephemeral port against the built-in mock providers. They sit
//! between the unit tests and the end-to-end suite that drives the release binary with
//! the official SDKs; the first-party plugins must be built (`make plugins`).

mod support;

mod admin_roles;
mod bundles;
mod chain;
mod contract;
mod guardrails;
mod prepared;
mod routing;
mod streams;
mod warm;
