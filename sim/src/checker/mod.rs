//! Checkers: each reads a history or the store's events, never store internals,
//! and explains a failure in terms a person can act on.

pub mod linearizability;
