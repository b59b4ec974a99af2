//! The store's mailbox: what the store loop reacts to, the handle others use to
//! reach it, and the callbacks that carry answers back.

use super::cmd::{PeerChange, ReadCmd, ReadResult, RegionError, RegionResult, WriteCmd, WriteResult};
use crate::engine::EngineError;
use crate::meta::{RegionEpoch, RegionId, StoreId};
use crate::transport::{RaftEnvelope, SnapshotChunk};
use futures::channel::{mpsc, oneshot};
use raft::eraftpb::Snapshot;
use std::net::SocketAddr;
use std::time::Duration;

pub type WriteCallback = oneshot::Sender<RegionResult<WriteResult>>;
pub type ReadCallback = oneshot::Sender<RegionResult<ReadResult>>;

/// What the store loop reacts to.
pub enum StoreMsg {
    Raft(RaftEnvelope),
    /// A raft message the network held back (the buggify site
    /// `read-index-across-transfer`), delivered now.
    HeldRaft(RaftEnvelope),
    SnapshotChunk(SocketAddr, SnapshotChunk),
    Tick,
    Write {
        region_id: RegionId,
        epoch: RegionEpoch,
        cmd: WriteCmd,
        callback: WriteCallback,
    },
    Read {
        region_id: RegionId,
        epoch: RegionEpoch,
        cmd: ReadCmd,
        callback: ReadCallback,
    },
    /// The snapshot worker built a snapshot for a region's leader.
    SnapshotGenerated {
        region_id: RegionId,
        snapshot: Box<Snapshot>,
        bytes: usize,
        took: Duration,
    },
    /// A background write failed: the store must stop (see [`Stopped`]).
    DiskFailed(String),
    /// A read of region `region_id`'s data failed its checksum (or could not
    /// be read) in the background: the replica must be repaired.
    Corrupted {
        region_id: RegionId,
        reason: String,
    },
    /// The snapshot worker finished writing a received snapshot's data.
    SnapshotApplied {
        region_id: RegionId,
        index: u64,
        bytes: usize,
        took: Duration,
    },
    /// PD gave ids for splitting `region_id` (as it was at `epoch`) at `split_keys`.
    SplitIds {
        region_id: RegionId,
        epoch: RegionEpoch,
        split_keys: Vec<Vec<u8>>,
        ids: Vec<super::cmd::SplitIds>,
    },
    /// Split `region_id` at `split_key` (an admin request; ids come from PD).
    AskSplit {
        region_id: RegionId,
        split_key: Vec<u8>,
    },
    /// Change `region_id`'s membership (an admin request or a PD operator);
    /// answered once the change is applied, or refused.
    ChangePeer {
        region_id: RegionId,
        epoch: RegionEpoch,
        changes: Vec<PeerChange>,
        callback: Option<WriteCallback>,
    },
    /// Peer `peer_id` of `region_id` is not in the region at `epoch` (a newer
    /// configuration): it was removed while away and must be destroyed.
    Tombstone {
        region_id: RegionId,
        peer_id: u64,
        epoch: RegionEpoch,
    },
    /// PD says where `store` listens.
    StoreAddress {
        store: StoreId,
        addr: SocketAddr,
    },
    /// Hand `region_id`'s leadership to its peer on `to_store`.
    TransferLeader {
        region_id: RegionId,
        to_store: StoreId,
    },
}

impl StoreMsg {
    /// The region a request or admin command is for: it wakes the region's
    /// peer if it hibernates (raft messages decide for themselves: a
    /// hibernation notice must not wake anyone).
    pub fn wakes(&self) -> Option<(RegionId, &'static str)> {
        match self {
            StoreMsg::Write { region_id, .. } => Some((*region_id, "write")),
            StoreMsg::Read { region_id, .. } => Some((*region_id, "read")),
            StoreMsg::SplitIds { region_id, .. } | StoreMsg::AskSplit { region_id, .. } => Some((*region_id, "split")),
            StoreMsg::ChangePeer { region_id, .. } => Some((*region_id, "membership change")),
            StoreMsg::TransferLeader { region_id, .. } => Some((*region_id, "leader transfer")),
            StoreMsg::Tombstone { region_id, .. } => Some((*region_id, "tombstone")),
            StoreMsg::Raft(_)
            | StoreMsg::HeldRaft(_)
            | StoreMsg::SnapshotChunk(..)
            | StoreMsg::Tick
            // Found damage wakes the peer where it is marked (`found_corrupt`,
            // which the scrubber calls too).
            | StoreMsg::Corrupted { .. }
            | StoreMsg::SnapshotGenerated { .. }
            | StoreMsg::DiskFailed(_)
            | StoreMsg::SnapshotApplied { .. }
            | StoreMsg::StoreAddress { .. } => None,
        }
    }
}

/// Why the store loop stops: its engines were closed under it (the node
/// crashed), or a write failed (a failed fsync: nothing written since the last
/// good sync can be trusted, so the store stops before it acknowledges
/// anything, and starts again from what is durable).
#[derive(Debug)]
pub enum Stopped {
    Closed,
    Failed(String),
}

/// Turns an engine error into a stop of the store loop.
pub fn engine_ok<T>(result: Result<T, EngineError>, what: &str) -> Result<T, Stopped> {
    match result {
        Ok(v) => Ok(v),
        Err(EngineError::Closed(_)) => Err(Stopped::Closed),
        Err(e) => Err(Stopped::Failed(format!("{what}: {e}"))),
    }
}

/// A cheap, cloneable way to talk to a running store.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<StoreMsg>,
}

impl StoreHandle {
    pub fn new(tx: mpsc::Sender<StoreMsg>) -> StoreHandle {
        StoreHandle { tx }
    }

    fn offer(&self, msg: StoreMsg) -> Result<(), RegionError> {
        self.tx
            .clone()
            .try_send(msg)
            .map_err(|e| RegionError::ServerIsBusy { reason: if e.is_full() { "store inbox full".into() } else { "store stopped".into() } })
    }

    /// Delivers a raft message; dropped if the store is overloaded (raft retries).
    pub fn raft(&self, envelope: RaftEnvelope) {
        let _ = self.offer(StoreMsg::Raft(envelope));
    }

    /// Asks the region's leader to split at `split_key` (dropped if the store is
    /// overloaded; a split is never urgent).
    pub fn ask_split(&self, region_id: RegionId, split_key: Vec<u8>) {
        let _ = self.offer(StoreMsg::AskSplit { region_id, split_key });
    }

    /// Asks the region's leader to hand leadership to its peer on `to_store`.
    pub fn transfer_leader(&self, region_id: RegionId, to_store: StoreId) -> RegionResult<()> {
        self.offer(StoreMsg::TransferLeader { region_id, to_store })
    }

    /// Changes the region's membership; answers once the change is applied.
    pub async fn change_peer(&self, region_id: RegionId, epoch: RegionEpoch, changes: Vec<PeerChange>) -> RegionResult<WriteResult> {
        let dropped = RegionError::OutcomeUnknown { reason: "store stopped before answering".into() };
        self.ask(|callback| StoreMsg::ChangePeer { region_id, epoch, changes, callback: Some(callback) }, dropped).await
    }

    pub fn snapshot_chunk(&self, from: SocketAddr, chunk: SnapshotChunk) {
        let _ = self.offer(StoreMsg::SnapshotChunk(from, chunk));
    }

    pub async fn write(&self, region_id: RegionId, epoch: RegionEpoch, cmd: WriteCmd) -> RegionResult<WriteResult> {
        // A write the store dropped unanswered may still have reached raft.
        let dropped = RegionError::OutcomeUnknown { reason: "store stopped before answering".into() };
        self.ask(|callback| StoreMsg::Write { region_id, epoch, cmd, callback }, dropped).await
    }

    pub async fn read(&self, region_id: RegionId, epoch: RegionEpoch, cmd: ReadCmd) -> RegionResult<ReadResult> {
        // A read that was never answered changed nothing: a definite failure.
        let dropped = RegionError::ServerIsBusy { reason: "store stopped before answering".into() };
        self.ask(|callback| StoreMsg::Read { region_id, epoch, cmd, callback }, dropped).await
    }

    /// Sends a request to the store loop and waits for its answer; `dropped` is
    /// the answer when the loop goes away first.
    async fn ask<T>(&self, message: impl FnOnce(oneshot::Sender<RegionResult<T>>) -> StoreMsg, dropped: RegionError) -> RegionResult<T> {
        let (callback, rx) = oneshot::channel();
        self.offer(message(callback))?;
        rx.await.unwrap_or(Err(dropped))
    }
}
