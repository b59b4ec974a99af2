//! The list-append workload, as Elle's: transactions of 1–4 micro-ops over a
//! few keys, each an append of a value unique to its key (`[:append k v]`)
//! or a read of the key's whole list (`[:r k [v …]]`). A key's list is kept
//! as one value (the values comma-separated); an append reads it and writes
//! it back longer, in the same transaction. Every read reveals a prefix of
//! the key's version order, which is what lets the checker
//! ([`check`]) infer the dependency graph and find cycles.
//!
//! - [`client`]: the clients, run inside the simulation.
//! - [`history`]: the one op type, [`history::Txn`]: what a client recorded
//!   (the micro-ops as run, with simulated times and timestamps; keys and
//!   values are their own ids) or what an Elle or Jepsen EDN file says
//!   (keys and values interned, named in [`history::TxnHistory`]). The
//!   checker reads a [`history::TxnHistory`] of either.
//! - [`check`]: snapshot isolation and its neighbours, as Elle checks them.
//! - [`generate`]: random histories with planted anomalies, for the
//!   checker's benchmark.

pub mod check;
pub mod client;
pub mod generate;
pub mod history;
