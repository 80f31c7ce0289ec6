//! Pseudonymization for LLM APIs: each finding in a request to an LLM endpoint is
//! replaced by a stable, typed placeholder ([`placeholder`]), and the real value is put
//! back into the model's answer on its way to the agent. The provider never sees the
//! value; the agent's tools (which run locally) get it back.
//!
//! - [`placeholder`]: the placeholder grammar, the cheap recogniser other modules use so
//!   they never flag our own placeholders, the entity words, and the keyed derivation.
//! - the vault and the restore filters follow (see the README section "Pseudonymization
//!   for LLM APIs").

pub mod placeholder;

pub use placeholder::{looks_like_placeholder, PseudonymKey, Scope};
