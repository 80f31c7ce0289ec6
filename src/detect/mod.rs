//! The detection core: one cohesive pipeline the proxy (and `clawguard scan`) calls.
//!
//! `validate` (checksums and shape checks, a leaf) → `rules` (pure data from
//! `patterns/*.toml`, regexes compiled and validators parsed once at load) → `scan`
//! (the compiled matcher) →
//! `extract` (request parts → segments with offset maps) → `policy` (rule × destination →
//! action) → `redact` (rewriting spans) → `engine` (a request in, a verdict out).
//! Dependencies point one way, down this list; nothing here knows about sockets.

pub mod engine;
pub mod extract;
pub mod limits;
pub mod policy;
pub mod pseudonymize;
pub mod redact;
pub mod rules;
pub mod scan;
pub mod validate;
