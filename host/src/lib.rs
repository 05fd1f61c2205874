//! Tollgate: a self-hosted AI gateway whose policy and routing logic run as sandboxed
//! WebAssembly components.
//!
//! The request flow is described in `ARCHITECTURE.md` at the repository root; each
//! module below owns one concern of it.

pub mod admin;
pub mod api;
pub mod auth;
pub mod budget;
pub mod bundles;
pub mod cli;
pub mod config;
pub mod console;
pub mod control;
pub mod demo;
pub mod error;
pub mod glob;
pub mod http;
pub mod ids;
pub mod ledger;
pub mod metadata;
pub mod mock;
pub mod pipeline;
pub mod plugins;
pub mod pricing;
pub mod providers;
pub mod routing;
pub mod server;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tenancy;
pub mod time;
pub mod translate;
pub mod usage;
