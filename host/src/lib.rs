//! Tollgate: a self-hosted AI gateway whose policy and routing logic run as sandboxed
//! WebAssembly components.
//!
//! The request flow is described in `ARCHITECTURE.md` at the repository root; each
//! module below owns one concern of it.

pub(crate) mod admin;
pub mod api;
pub(crate) mod auth;
pub(crate) mod budget;
pub(crate) mod bundles;
pub mod cli;
pub mod config;
pub(crate) mod console;
pub(crate) mod control;
pub(crate) mod demo;
pub(crate) mod error;
pub(crate) mod glob;
pub mod guard;
pub(crate) mod headers;
pub(crate) mod http;
pub mod ids;
pub mod ledger;
pub mod metadata;
pub mod mock;
pub(crate) mod pipeline;
pub mod plugins;
pub mod pricing;
pub mod providers;
pub(crate) mod replicas;
pub(crate) mod routing;
pub mod server;
pub mod store;
pub(crate) mod sync;
pub(crate) mod telemetry;
pub(crate) mod tenancy;
pub(crate) mod time;
pub mod translate;
pub mod usage;
