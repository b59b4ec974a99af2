//! simkv: a TiKV-style distributed transactional key-value store, built to be run
//! and tortured inside a deterministic simulation (madsim) as well as for real.
//!
//! Layers, bottom up (see `DESIGN.md` in the project's shared notes and README):
//! [`codec`] is the ground floor, [`engine`] stands on them, and
//! everything above reaches storage only through the [`engine::Engine`] trait.

pub mod buggify;
pub mod client;
pub mod clock;
pub mod codec;
pub mod control;
pub mod engine;
pub mod event_log;
pub mod meta;
pub mod mvcc;
pub mod pd;
pub mod pd_client;
pub mod planted;
pub mod proto;
pub mod raftstore;
pub mod rpc;
pub mod server;
pub mod supervisor;
pub mod table;
pub mod trace;
pub mod transport;
