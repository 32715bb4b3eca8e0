//! buvar-kit: components, dependency injection, plugin staging, typed config and logging for
//! tokio services.
//!
//! - [`config`]: layered TOML config read as typed sections, with environment overrides,
//!   env help and a redacted dump.
//! - [`log`]: one-call tracing set-up, JSON lines or human-readable, with the process id.

pub mod config;
pub mod log;
