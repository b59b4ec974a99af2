//! The raftstore: many regions, each a raft group, hosted by one store.
//!
//! A [`Store`](store::Store) owns every local [`PeerFsm`](peer::PeerFsm) and runs one
//! loop: it takes messages from its mailbox (raft messages from other stores, client
//! requests, ticks, finished background jobs), steps the peers, then has each
//! touched peer handle its ready in the order raft-rs requires:
//!
//! 1. send the ready's messages (a leader may send before it persists);
//! 2. adopt a snapshot, if the ready carries one, and start writing its data in the
//!    background;
//! 3. apply committed entries to the kv engine (data and apply state in one batch);
//! 4. append new entries and the hard state to the raft engine, **synced**;
//! 5. only then send the persisted messages (votes, append responses), advance,
//!    and handle the light ready the same way; raft-rs's applied index moves only
//!    to what the state machine applied.
//!
//! The peer does no IO: it says what to write (each batch with its sync flag),
//! apply and send, and [`ready`] does the writes, syncs, crash points and
//! delays in that order and calls it back. A golden trace of a 3-peer group
//! (`pipeline_tests.rs`, insta) pins the whole sequence.
//!
//! One file per responsibility, as TiKV and TinyKV divide it. The imports go one
//! way: `store` → `ready` → `peer` → `apply` / `snapshot` / `raft_node` / `proposal` →
//! `router` / `cmd` / `state` / `storage` / `events`.
//!
//! * [`router`]: the mailbox (`StoreMsg`), `StoreHandle`, callbacks;
//! * [`bootstrap`]: a store's first state;
//! * [`store`]: the loop, batching, ticks, routing, creating peers;
//! * [`ready`]: a peer's ready carried out: the IO, in raft-rs's order;
//! * [`peer`]: one replica, without IO: admission, proposing, what a ready
//!   persists, applies and sends, reads;
//! * [`raft_node`]: raft-rs's `RawNode`, fenced for determinism;
//! * [`hibernate`]: idle regions stop ticking; store liveness wakes them;
//! * [`proposal`]: the proposal queue and its stale rule;
//! * [`apply`]: pure: committed entries in; write batch, answers, exec results out;
//! * [`snapshot`]: generate, send in chunks, reassemble, validate, apply, resume;
//! * [`storage`]: raft-rs's `Storage` on the raft engine; [`state`]: persisted state.
//!
//! Snapshots are asynchronous as in TiKV (see [`snapshot`]). Raft log GC is an
//! admin command (CompactLog) proposed by the leader when the applied log grows
//! past a limit, and carried out by the peer as an exec result.
//!
//! Regions without traffic hibernate (see [`hibernate`]). Not implemented:
//! region merge.

pub mod apply;
pub mod bootstrap;
pub mod cmd;
pub mod conf_change;
pub mod config;
pub mod events;
pub mod hibernate;
pub mod lease;
pub mod pd_worker;
pub mod peer;
pub mod proposal;
pub mod raft_node;
pub mod read;
pub mod ready;
pub mod router;
pub mod snapshot;
pub mod split_check;
pub mod state;
pub mod storage;
pub mod store;

pub use bootstrap::bootstrap_store;
pub use cmd::{Mutation, ReadCmd, ReadResult, RegionError, RegionResult, WriteCmd, WriteResult};
pub use config::RaftStoreConfig;
pub use events::{EventSink, StoreEvent};
pub use router::{Stopped, StoreHandle, StoreMsg};
pub use snapshot::SnapshotData;
pub use store::Store;
