//! ClawGuard: a data-leak prevention forward proxy for AI agents.
//!
//! The crate is laid out one module per concern; see `../shared/ARCHITECTURE.md`
//! and the README for the data flow.

pub mod config;
pub mod extract;
pub mod inspect;
pub mod policy;
pub mod redact;
pub mod rules;
pub mod scan;
