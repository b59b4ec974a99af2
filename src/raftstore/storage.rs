//! `PeerStorage`: raft-rs's [`Storage`] over the raft engine.
//!
//! The log lives in the raft engine under `raft_log_key(region, index)`; entries at
//! or below the truncated index are gone (compacted), and the position just at it is
//! remembered by term so raft can still match it. Snapshots are produced
//! asynchronously, as in TiKV: when raft asks for one, the storage answers
//! "temporarily unavailable" and records a request; the store then generates it in a
//! background task and hands it back with [`PeerStorage::set_generated`], and raft's
//! next attempt gets it.

use super::state::{ApplyState, RaftLocalState};
use crate::codec::keys;
use crate::engine::{Cf, Engine, Snapshot as _, WriteBatch};
use crate::meta::Region;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use std::cell::RefCell;

/// Where a region's snapshot is in its life.
#[derive(Debug, Clone)]
pub enum SnapState {
    Idle,
    /// Raft asked; the store has not started generating yet.
    Requested,
    Generating,
    Generated(Box<Snapshot>),
}

pub struct PeerStorage<E: Engine> {
    pub region_id: u64,
    raft_engine: E,
    pub raft_state: RaftLocalState,
    pub apply_state: ApplyState,
    /// The region as of the last applied admin command or snapshot.
    pub region: Region,
    snap_state: RefCell<SnapState>,
}

/// The raft configuration a region descriptor stands for (joint while a
/// change is half done; see `PeerRole`).
pub fn conf_state_of(region: &Region) -> ConfState {
    ConfState {
        voters: region.voter_ids(),
        learners: region.learner_ids(),
        voters_outgoing: region.outgoing_voter_ids(),
        learners_next: region.learner_next_ids(),
        auto_leave: false,
        ..ConfState::default()
    }
}

impl<E: Engine> PeerStorage<E> {
    pub fn new(raft_engine: E, region: Region, mut raft_state: RaftLocalState, apply_state: ApplyState) -> Self {
        // Applied entries were committed. The kv engine may have kept applied data
        // that a crash took from the raft engine's last hard state (the two
        // engines sync separately), so commit never starts below applied.
        raft_state.commit = raft_state.commit.max(apply_state.applied_index);
        assert!(
            raft_state.last_index >= apply_state.truncated_index,
            "region {}: last index {} below truncated index {}",
            region.id,
            raft_state.last_index,
            apply_state.truncated_index
        );
        PeerStorage { region_id: region.id, raft_engine, raft_state, apply_state, region, snap_state: RefCell::new(SnapState::Idle) }
    }

    pub fn hard_state(&self) -> HardState {
        HardState { term: self.raft_state.term, vote: self.raft_state.vote, commit: self.raft_state.commit, ..HardState::default() }
    }

    pub fn truncated_index(&self) -> u64 {
        self.apply_state.truncated_index
    }

    /// Adds `entries` (and the hard state, if any) to `batch`: the raft engine write
    /// of one ready. Entries past the new tail left from an old leader are deleted.
    pub fn append(&mut self, entries: &[Entry], hard_state: Option<&HardState>, batch: &mut WriteBatch) {
        if let Some(first) = entries.first() {
            assert!(
                first.index > self.apply_state.truncated_index,
                "region {}: appending index {} at or below truncated index {}",
                self.region_id,
                first.index,
                self.apply_state.truncated_index
            );
            let last = entries.last().expect("non-empty").index;
            for entry in entries {
                batch.put(Cf::Raft, keys::raft_log_key(self.region_id, entry.index), entry.write_to_bytes().expect("entry encodes"));
            }
            if last < self.raft_state.last_index {
                batch.delete_range(Cf::Raft, keys::raft_log_key(self.region_id, last + 1), keys::raft_log_key(self.region_id, self.raft_state.last_index + 1));
            }
            self.raft_state.last_index = last;
        }
        if let Some(hs) = hard_state {
            assert!(hs.term >= self.raft_state.term, "region {}: term regression {} -> {}", self.region_id, self.raft_state.term, hs.term);
            let voted = self.raft_state.vote != raft::INVALID_ID;
            assert!(
                hs.term > self.raft_state.term || !voted || hs.vote == self.raft_state.vote,
                "region {}: the vote of term {} changed from {} to {}",
                self.region_id,
                hs.term,
                self.raft_state.vote,
                hs.vote
            );
            self.raft_state.term = hs.term;
            self.raft_state.vote = hs.vote;
            self.raft_state.commit = hs.commit;
        }
        assert!(
            self.raft_state.commit <= self.raft_state.last_index,
            "region {}: commit index {} past the last index {}",
            self.region_id,
            self.raft_state.commit,
            self.raft_state.last_index
        );
        batch.put(Cf::Raft, keys::raft_state_key(self.region_id), super::state::encode(&self.raft_state));
    }

    /// Takes a snapshot request raised by raft, if any, marking it as generating.
    pub fn take_snapshot_request(&self) -> bool {
        let mut state = self.snap_state.borrow_mut();
        if matches!(*state, SnapState::Requested) {
            *state = SnapState::Generating;
            return true;
        }
        false
    }

    pub fn set_generated(&self, snapshot: Snapshot) {
        *self.snap_state.borrow_mut() = SnapState::Generated(Box::new(snapshot));
    }

    pub fn cancel_generating(&self) {
        *self.snap_state.borrow_mut() = SnapState::Idle;
    }

    /// Adopts a received snapshot's position: the log restarts right after it.
    pub fn apply_snapshot_meta(&mut self, snapshot: &Snapshot, region: Region, batch: &mut WriteBatch) {
        let meta = snapshot.get_metadata();
        batch.delete_range(Cf::Raft, keys::raft_log_key(self.region_id, 0), keys::raft_log_key(self.region_id, self.raft_state.last_index.max(meta.index) + 1));
        self.raft_state.last_index = meta.index;
        self.raft_state.commit = self.raft_state.commit.max(meta.index);
        self.raft_state.term = self.raft_state.term.max(meta.term);
        self.apply_state.truncated_index = meta.index;
        self.apply_state.truncated_term = meta.term;
        self.region = region;
        *self.snap_state.borrow_mut() = SnapState::Idle;
        batch.put(Cf::Raft, keys::raft_state_key(self.region_id), super::state::encode(&self.raft_state));
    }

    fn read_entry(&self, snap: &E::Snap, index: u64) -> raft::Result<Entry> {
        let bytes = snap
            .get(Cf::Raft, &keys::raft_log_key(self.region_id, index))
            .map_err(|e| raft::Error::Store(StorageError::Other(Box::new(e))))?
            .unwrap_or_else(|| panic!("region {}: log entry {index} missing from {}", self.region_id, self.raft_engine.name()));
        Entry::parse_from_bytes(&bytes).map_err(raft::Error::CodecError)
    }
}

impl<E: Engine> Storage for PeerStorage<E> {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state(), conf_state_of(&self.region)))
    }

    fn entries(&self, low: u64, high: u64, max_size: impl Into<Option<u64>>, _context: GetEntriesContext) -> raft::Result<Vec<Entry>> {
        if low <= self.apply_state.truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(high <= self.raft_state.last_index + 1, "region {}: entries [{low}, {high}) past last index {}", self.region_id, self.raft_state.last_index);
        let snap = self.raft_engine.snapshot();
        let start = keys::raft_log_key(self.region_id, low);
        let end = keys::raft_log_key(self.region_id, high);
        let mut entries = Vec::with_capacity((high - low) as usize);
        for pair in snap.iter(Cf::Raft, &start, Some(&end), false) {
            let (_, bytes) = pair.map_err(|e| raft::Error::Store(StorageError::Other(Box::new(e))))?;
            entries.push(Entry::parse_from_bytes(&bytes).map_err(raft::Error::CodecError)?);
        }
        assert_eq!(entries.len() as u64, high - low, "region {}: hole in log [{low}, {high})", self.region_id);
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.apply_state.truncated_index {
            return Ok(self.apply_state.truncated_term);
        }
        if idx < self.apply_state.truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.raft_state.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.read_entry(&self.raft_engine.snapshot(), idx)?.term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.apply_state.truncated_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.raft_state.last_index)
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let mut state = self.snap_state.borrow_mut();
        match &*state {
            // A generated snapshot is handed out once, and only while it is still
            // new enough: the log must continue right after it (its index at or
            // above the truncated index). Otherwise a follower would be sent the
            // same old snapshot forever and reject it as stale every time.
            SnapState::Generated(snap) if snap.get_metadata().index >= request_index && snap.get_metadata().index >= self.truncated_index() => {
                let snap = (**snap).clone();
                *state = SnapState::Idle;
                return Ok(snap);
            }
            SnapState::Generating | SnapState::Requested => {}
            SnapState::Idle | SnapState::Generated(_) => *state = SnapState::Requested,
        }
        Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable))
    }
}
