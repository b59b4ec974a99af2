//! Benchmarks. Measured, never asserted: numbers are printed next to a baseline
//! measured in the same run, or next to clearly labelled quoted figures.
//!
//! - [`checker`]: the linearizability checker on the Porcupine corpus and on
//!   generated stress histories, against Porcupine's quoted timings.
//! - [`list_append`]: the SI checker on a generated 100,000-transaction
//!   history, clean and with every anomaly class planted, next to Elle's
//!   published figure, with peak memory.
//! - the simulator (sim mode only): simulated seconds per wall second for a
//!   scenario, and raw ops per wall second for a loaded raftstore;
//!   [`ceiling`]: a bare raft-rs group in madsim, what the store's runs are
//!   measured against.

#[cfg(madsim)]
pub mod ceiling;
pub mod checker;
pub mod list_append;
#[cfg(madsim)]
mod sim;
#[cfg(madsim)]
pub use sim::*;
