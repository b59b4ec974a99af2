//! The bank workload: accounts that start with [`client::INITIAL_BALANCE`]
//! each; clients transfer random amounts between random accounts (refusing
//! to overdraw) and read every account in one snapshot. The total never
//! changes, and no account goes below zero.
//!
//! - [`client`]: the clients, run inside the simulation.
//! - [`history`]: what they record ([`history::BankOp`]), as Jepsen's bank
//!   test records it, and its EDN.
//! - [`check`]: the checker of every snapshot read.

pub mod check;
pub mod client;
pub mod history;
