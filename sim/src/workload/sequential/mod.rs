//! The sequential workload: each client appends items 1, 2, 3, ... to its own
//! key; none may be lost, duplicated or reordered.
//!
//! - [`client`]: the clients, run inside the simulation. Each call is also
//!   recorded as a register operation (`crate::history`), so the
//!   linearizability checker reads the sequential keys too.
//! - [`check`]: each client's log ([`check::ClientLog`]) against what the
//!   final read found: none lost, duplicated or reordered.

pub mod check;
pub mod client;
