//! ClawGuard: a data-leak prevention forward proxy for AI agents.
//!
//! The crate is laid out one module per concern; see `../shared/ARCHITECTURE.md`
//! and the README for the data flow.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod ca_trust;
pub mod config;
pub mod detect;
pub mod doctor;
pub mod egress;
pub mod exec;
pub mod file_scan;
pub mod icap;
pub mod metrics;
pub mod proxy;
pub mod report;
pub mod tls;
