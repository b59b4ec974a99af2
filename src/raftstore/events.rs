//! Facts a store reports about itself, for traces and for the testbed's checkers.
//!
//! The store calls an [`EventSink`] synchronously at the moment each fact becomes
//! true. Checkers read these, never store internals.

use crate::meta::{PeerId, Region, RegionEpoch, RegionId, StoreId};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StoreEvent {
    /// A peer stopped ticking: its region had nothing to do (see
    /// `raftstore::hibernate`); `leader` says whether it led it.
    Hibernated { store_id: StoreId, region_id: RegionId, peer_id: PeerId, leader: bool },
    /// A hibernating peer woke: `why` names what woke it.
    Woke {
        store_id: StoreId,
        region_id: RegionId,
        peer_id: PeerId,
        #[serde(deserialize_with = "crate::event_log::interned")]
        why: crate::event_log::StaticText,
    },
    /// A peer became leader of its region at `term`.
    BecameLeader { store_id: StoreId, region_id: RegionId, peer_id: PeerId, term: u64 },
    /// A peer applied the entry at `index` (of `term`); `digest` fingerprints its
    /// data. For a data write that took effect, `write_epochs` is the epoch it
    /// was proposed at and the region's epoch when it was applied.
    Applied { store_id: StoreId, region_id: RegionId, peer_id: PeerId, index: u64, term: u64, digest: u64, write_epochs: Option<(RegionEpoch, RegionEpoch)> },
    /// A leader finished building a snapshot.
    SnapshotGenerated { store_id: StoreId, region_id: RegionId, index: u64, bytes: usize, took: Duration },
    /// A follower accepted a snapshot (of `region`, whose configuration raft
    /// now uses) and started writing its data.
    SnapshotApplying { store_id: StoreId, region_id: RegionId, index: u64, region: Region },
    /// A restarted store finished writing a snapshot that a crash interrupted.
    SnapshotResumed { store_id: StoreId, region_id: RegionId, index: u64, region: Region },
    /// A follower finished writing a received snapshot's data.
    SnapshotApplied { store_id: StoreId, region_id: RegionId, index: u64, bytes: usize, took: Duration, region: Region },
    /// A received snapshot was refused (stale, overlapping, or one already applying).
    SnapshotRejected {
        store_id: StoreId,
        region_id: RegionId,
        index: u64,
        #[serde(deserialize_with = "crate::event_log::interned")]
        reason: crate::event_log::StaticText,
    },
    /// The log was compacted up to `index`.
    LogCompacted { store_id: StoreId, region_id: RegionId, index: u64 },
    /// A leader of `term` admitted a read to be served on its lease, without
    /// a ReadIndex round.
    LeaseRead { store_id: StoreId, region_id: RegionId, peer_id: PeerId, term: u64, read_id: u64 },
    /// The lease read `read_id` (admitted as [`StoreEvent::LeaseRead`]) is
    /// answered now from the region's state at `version`.
    LeaseServed { store_id: StoreId, region_id: RegionId, peer_id: PeerId, read_id: u64, version: u64 },
    /// A peer granted its vote in `term` to `candidate` (sent after the vote was
    /// persisted). Pre-votes are not votes.
    Voted { store_id: StoreId, region_id: RegionId, peer_id: PeerId, term: u64, candidate: PeerId },
    /// A peer started on this store (at open, or created later), with the region
    /// as it knows it and the applied index its durable state holds.
    PeerCreated { store_id: StoreId, region: Region, peer_id: PeerId, applied_index: u64 },
    /// A peer removed itself; its data is gone and a tombstone remains. A
    /// store that restarts says it again for every tombstone it finds (a
    /// crash may have come before it was said).
    PeerDestroyed { store_id: StoreId, region_id: RegionId, peer_id: PeerId },
    /// A leader proposed a membership change; its entry is at `index` of `term`.
    ConfChangeProposed { store_id: StoreId, region_id: RegionId, peer_id: PeerId, index: u64, term: u64 },
    /// A membership change's entry was applied: `region` is the region after it.
    ConfChangeApplied { store_id: StoreId, region: Region, index: u64 },
    /// The configuration raft-rs counts votes and acknowledgements by changed
    /// on this peer (sorted ids; `outgoing` is non-empty while joint).
    RaftConfig { store_id: StoreId, region_id: RegionId, peer_id: PeerId, voters: Vec<PeerId>, outgoing: Vec<PeerId>, learners: Vec<PeerId> },
    /// A region split at apply time: `regions` are the results, the original first.
    Split { store_id: StoreId, regions: Vec<Region>, index: u64 },
    /// A read of the replica's data failed its checksum (or could not be
    /// read): it stops serving and applying and asks for a snapshot.
    DataCorrupted { store_id: StoreId, region_id: RegionId, peer_id: PeerId, reason: String },
    /// A damaged replica's data was replaced by a snapshot at `index`.
    DataRepaired { store_id: StoreId, region_id: RegionId, peer_id: PeerId, index: u64 },
}

pub type EventSink = Arc<dyn Fn(&StoreEvent) + Send + Sync>;

/// Where a store's events go: traced, and handed to the sink if there is one.
#[derive(Clone)]
pub struct Events {
    pub store_id: StoreId,
    sink: Option<EventSink>,
}

impl StoreEvent {
    /// The store that reported the event.
    pub fn store_id(&self) -> StoreId {
        match self {
            StoreEvent::BecameLeader { store_id, .. }
            | StoreEvent::Hibernated { store_id, .. }
            | StoreEvent::Woke { store_id, .. }
            | StoreEvent::Applied { store_id, .. }
            | StoreEvent::SnapshotGenerated { store_id, .. }
            | StoreEvent::SnapshotApplying { store_id, .. }
            | StoreEvent::SnapshotResumed { store_id, .. }
            | StoreEvent::SnapshotApplied { store_id, .. }
            | StoreEvent::SnapshotRejected { store_id, .. }
            | StoreEvent::LogCompacted { store_id, .. }
            | StoreEvent::LeaseRead { store_id, .. }
            | StoreEvent::LeaseServed { store_id, .. }
            | StoreEvent::Voted { store_id, .. }
            | StoreEvent::PeerCreated { store_id, .. }
            | StoreEvent::PeerDestroyed { store_id, .. }
            | StoreEvent::ConfChangeProposed { store_id, .. }
            | StoreEvent::ConfChangeApplied { store_id, .. }
            | StoreEvent::RaftConfig { store_id, .. }
            | StoreEvent::Split { store_id, .. }
            | StoreEvent::DataCorrupted { store_id, .. }
            | StoreEvent::DataRepaired { store_id, .. } => *store_id,
        }
    }
}

impl Events {
    pub fn new(store_id: StoreId, sink: Option<EventSink>) -> Events {
        Events { store_id, sink }
    }

    pub fn emit(&self, event: StoreEvent) {
        tracing::debug!(store = self.store_id, ?event, "event");
        if let Some(sink) = &self.sink {
            sink(&event);
        }
    }
}

/// FNV-1a: a small, stable fingerprint (std's hasher is randomly keyed).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    let mut hash = Fingerprint::default();
    hash.update(bytes);
    hash.0
}

/// [`fingerprint`] computed as text is written into it: `write!` into it
/// gives the fingerprint of the text without building the text.
#[derive(Debug, Clone, Copy)]
pub struct Fingerprint(pub u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }
}

impl Fingerprint {
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl std::fmt::Write for Fingerprint {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.update(s.as_bytes());
        Ok(())
    }
}
