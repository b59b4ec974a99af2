//! The raftstore: many regions, each a raft group, hosted by one store.
//!
//! A [`Store`](store::Store) owns every local [`PeerFsm`](peer::PeerFsm) and runs one
//! loop: it takes messages from its inbox (raft messages from other stores, client
//! requests, ticks, finished background jobs), steps the peers, then drives each
//! peer's ready in the order raft-rs requires:
//!
//! 1. send the ready's messages (a leader may send before it persists);
//! 2. adopt a snapshot, if the ready carries one, and start writing its data in the
//!    background;
//! 3. apply committed entries to the kv engine (data and apply state in one batch);
//! 4. append new entries and the hard state to the raft engine, **synced**;
//! 5. only then send the persisted messages (votes, append responses), advance,
//!    and handle the light ready the same way.
//!
//! Snapshots are asynchronous as in TiKV: generation reads the region through a kv
//! snapshot in a background task (paying simulated snapshot IO), the result travels
//! in chunks, and the receiver writes it in another background task while the peer
//! refuses proposals. Raft log GC is an admin command (CompactLog) proposed by the
//! leader when the applied log grows past a limit.
//!
//! Determinism: raft-rs draws election timeouts from an unseeded RNG; each peer's
//! range is narrowed to one value drawn from the run's seed, so raft-rs has no choice
//! left to make (see `store::raft_config`).
//!
//! Not implemented here (yet): membership changes, split and merge, leader leases
//! (every read uses ReadIndex), and peers created on demand by messages.

pub mod cmd;
pub mod config;
pub mod events;
pub mod peer;
pub mod proposal;
pub mod state;
pub mod storage;
pub mod store;

pub use cmd::{ReadCmd, ReadResult, RegionError, RegionResult, WriteCmd, WriteResult};
#[cfg(madsim)]
pub use config::PlantedBugs;
pub use config::RaftStoreConfig;
pub use events::{EventSink, StoreEvent};
pub use store::{bootstrap_store, SnapshotData, Store, StoreHandle};
