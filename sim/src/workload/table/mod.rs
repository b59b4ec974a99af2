//! The table workload: concurrent inserts, updates and deletes on a
//! "people" table (a unique email index, a non-unique age index), each in a
//! transaction, and consistency checks of the whole table in one snapshot:
//! every row has exactly its index entries, no entry points to a missing row
//! or to a row with another value, and unique values are unique.
//!
//! - [`client`]: the clients, run inside the simulation.
//! - [`history`]: what they record ([`history::TableOp`]) and its EDN.
//! - [`check`]: the checker of every whole-table check.

pub mod check;
pub mod client;
pub mod history;
