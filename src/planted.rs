//! Planted bugs: deliberate defects the testbed switches on, one scenario at
//! a time, to prove that each of its checkers can fail.
//!
//! A bug is one [`Bug`] variant, named in a scenario's `bugs = [...]` by its
//! kebab-case name. Every component that can carry one is configured with a
//! [`Bugs`] set and asks it at the one place the defect lives:
//! `if cfg.bugs.on(Bug::FollowerLocalRead) { ... }`. In simulation the set is
//! a bit set filled from the scenario; in the real build it is empty and
//! zero-sized and `on` is `false` at compile time, so no defect can be
//! switched on there and none costs a branch, unless the real build is made
//! with the cargo feature `planted-bugs` (off by default; refused in a
//! release build): then `simkv store|pd --bugs a,b` plants them in a
//! process, and `simkv-sim real` hunts a scenario's bugs on real processes
//! (the README's "The case for simulation").

use serde::{Deserialize, Serialize};

#[cfg(all(feature = "planted-bugs", not(madsim), not(debug_assertions)))]
compile_error!("the `planted-bugs` feature compiles deliberate defects into the store: never in a release build");

/// Every planted bug, by the rule it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    // ---- raftstore: reads, proposals, persistence ----
    /// A follower answers reads from its own applied state, without ReadIndex.
    FollowerLocalRead,
    /// Puts and deletes are acknowledged when proposed, before raft commits them.
    AckBeforeCommit,
    /// A hard state (term, vote) persisted without new entries is not
    /// synced, so a crash can forget a vote already sent.
    UnsyncedVote,
    /// A failed raft-log write is ignored: raft is told the entries and the
    /// vote are persisted, and acknowledges them.
    AckAfterFailedFsync,
    /// A proposal is answered by its index alone: when another term's entry
    /// took its index (a new leader wrote over it), it gets that entry's
    /// result, as if it were its own.
    SupersededProposalTakesResult,
    /// A snapshot that covers waiting proposals leaves them waiting, and the
    /// next applied entry tells them `StaleCommand` (failed), although the
    /// snapshot may hold them.
    SnapshotCoveredProposalFails,
    /// A scan is served past its region's end, from whatever this store
    /// holds of the next region.
    ScanIgnoresRegionEnd,
    /// A hibernating follower ignores that its leader's store fell silent: a
    /// region whose leader is cut off stays leaderless until something else
    /// wakes it (only a targeted test catches this: the scenarios' faults
    /// all heal, and healing wakes the region).
    HibernationIgnoresSilence,

    // ---- raftstore: apply and restart ----
    /// A restarted peer applies again from its truncated index, not from its
    /// durable applied index: entries already applied are applied twice.
    ReapplyAfterRestart,
    /// Applying a put of an empty value panics the node (a crash bug in the
    /// apply path, as a corrupt-state assertion gone wrong would be).
    EmptyValuePanics,
    /// Apply skips the epoch check, so a write proposed before a split lands
    /// in a range its region no longer owns.
    ApplySkipsEpochCheck,
    /// Applying the 50th entry of a region spins forever without awaiting (a
    /// livelock: the simulation's only thread never comes back).
    SpinInApply,
    /// An apply writes its apply state in a batch of its own before the data
    /// it covers: a crash in between leaves the replica believing it applied
    /// entries whose effects it never wrote.
    ApplyStateBeforeData,

    // ---- raftstore: splits, membership, peers ----
    /// A split leaves the region's `version` where it was.
    SplitKeepsVersion,
    /// A split's batch leaves the new regions' apply states out; they are
    /// written when the new peers are created.
    SplitDefersApplyState,
    /// The split check measures nothing (no keys, no bytes), so no region
    /// ever splits on its own. Nothing is lost and no history breaks: the
    /// regions just grow.
    SplitCheckMeasuresNothing,
    /// A leader hands a membership change to raft-rs when it proposes it,
    /// not when its entry is applied.
    ConfChangeAtPropose,
    /// A membership change may be proposed while another is still unapplied
    /// (raft-rs's own guard is bypassed too).
    TwoPendingConfChanges,
    /// A late message for a removed peer (any message, not only one a new
    /// leader sends first) recreates it with its old id, whatever its
    /// tombstone says.
    RecreateRemovedPeer,
    /// A peer created by a message (uninitialized) forgets on restart the
    /// vote it gave: its hard state is read back as empty.
    UninitializedVoteForgotten,
    /// Destroying a removed peer deletes its log and raft state before it
    /// writes the tombstone: a crash in between leaves a region state with
    /// no raft state behind it.
    DestroyDeletesLogFirst,

    // ---- raftstore: snapshots ----
    /// Applying a snapshot writes its pairs over the region's old data
    /// without clearing it first, so keys deleted since linger.
    SnapshotKeepsStaleKeys,
    /// A received snapshot's region is marked applying before the snapshot
    /// itself is persisted: a crash in between leaves the mark with nothing
    /// to apply.
    MarkApplyingFirst,
    /// The snapshot receiver keeps chunks in arrival order and counts them,
    /// so a chunk delivered twice is applied twice in place of one not yet
    /// arrived.
    DuplicateChunkAppliedTwice,

    // ---- raftstore: the leader lease ----
    /// A leader transfer leaves the leader's lease as it was, so the old
    /// leader may serve reads locally after the new one has taken writes.
    LeaseKeptOnTransfer,
    /// A leader transfer voids the lease, but evidence gathered before the
    /// transfer could have finished (answers to rounds sent before or
    /// during it) renews it again.
    LeaseRenewedAcrossTransfer,
    /// The lease lasts the whole election timeout, ignoring clock drift.
    LeaseIgnoresDrift,
    /// The leader serves lease reads from what it has applied, as TiKV's
    /// local reader does, without waiting for what it knows is committed,
    /// and a split does not suspend its lease. Safe within one region, not
    /// across a split the leader has not applied yet while the new region's
    /// peers, elsewhere, have.
    LeaseReadIgnoresSplit,
    /// Any one follower's heartbeat answer renews the leader's lease, as if
    /// it were a quorum's. With three replicas one follower is a quorum;
    /// with five it is not.
    LeaseRenewedByOneFollower,

    // ---- MVCC ----
    /// Transactional reads ignore locks: they return the committed value
    /// under another transaction's lock.
    TxnReadsIgnoreLocks,
    /// Prewrite skips the write-conflict check (lost updates).
    PrewriteSkipsConflictCheck,
    /// Commit of a key whose lock is gone succeeds whatever the write CF
    /// says, a Rollback record included.
    CommitIgnoresRollback,
    /// Rolling back a key without a lock writes no Rollback record, so a
    /// late prewrite of the rolled-back transaction succeeds.
    RollbackLeavesNoRecord,
    /// Commit writes its record but leaves the transaction's lock behind.
    CommitLeavesLock,
    /// GC drops the version a read at the safe point sees, too.
    GcDropsVisibleVersion,

    // ---- engine ----
    /// Reads stop verifying checksums: a flipped value is served.
    SkipsChecksums,

    // ---- PD ----
    /// PD never saves its timestamp window, so a restarted PD whose clock
    /// went back hands out smaller timestamps.
    TsoWindowNotPersisted,
    /// A new time window is saved after the timestamp that opened it was
    /// sent, not before, so a crash in between loses it.
    TsoAnsweredBeforeSave,
    /// A region report older than what PD knows (a late heartbeat) is taken
    /// anyway, and PD routes by it.
    PdAcceptsStaleHeartbeat,

    // ---- clients ----
    /// An expired lock is resolved as committed without asking its primary.
    ResolveWithoutPrimary,
    /// A transaction reads at a timestamp half a second older than its
    /// start_ts (it still prewrites and checks conflicts at start_ts).
    StaleSnapshotReads,
    /// A transaction begins at the start_ts its client used less than 50 ms
    /// before, instead of asking PD: two transactions share a timestamp, and
    /// the second reads a snapshot older than its beginning.
    StartTsReused,
    /// The region cache takes every region it is told of, however old, and
    /// routes by it.
    CacheTakesOlderRegions,
}

/// The planted bugs a component runs with. Cheap to copy; empty by default.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs {
    #[cfg(any(madsim, feature = "planted-bugs"))]
    bits: u64,
}

// Every variant has a bit.
#[cfg(any(madsim, feature = "planted-bugs"))]
const _: () = assert!((Bug::CacheTakesOlderRegions as u32) < u64::BITS);

impl Bugs {
    /// No bug: what every real build runs with.
    pub const NONE: Bugs = Bugs {
        #[cfg(any(madsim, feature = "planted-bugs"))]
        bits: 0,
    };

    /// Whether `bug` is planted. Always `false` outside simulation.
    #[inline(always)]
    pub fn on(self, #[cfg_attr(not(any(madsim, feature = "planted-bugs")), allow(unused_variables))] bug: Bug) -> bool {
        #[cfg(any(madsim, feature = "planted-bugs"))]
        return self.bits & (1 << bug as u32) != 0;
        #[cfg(not(any(madsim, feature = "planted-bugs")))]
        false
    }

    /// This set with `bug` planted too.
    #[cfg(any(madsim, feature = "planted-bugs"))]
    pub fn with(mut self, bug: Bug) -> Bugs {
        self.bits |= 1 << bug as u32;
        self
    }
}

#[cfg(any(madsim, feature = "planted-bugs"))]
impl FromIterator<Bug> for Bugs {
    fn from_iter<I: IntoIterator<Item = Bug>>(bugs: I) -> Bugs {
        bugs.into_iter().fold(Bugs::NONE, Bugs::with)
    }
}

impl Bug {
    /// A bug by its kebab-case name, as scenarios and `--bugs` write it.
    pub fn parse(name: &str) -> Result<Bug, String> {
        serde_json::from_value(serde_json::Value::String(name.trim().to_string())).map_err(|_| format!("no planted bug is named {name:?}"))
    }

    /// The bug's kebab-case name.
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }
}

impl std::fmt::Debug for Bugs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        #[cfg(any(madsim, feature = "planted-bugs"))]
        let on = self.bits.count_ones();
        #[cfg(not(any(madsim, feature = "planted-bugs")))]
        let on = 0;
        write!(f, "Bugs({on} planted)")
    }
}

#[cfg(all(test, madsim))]
mod tests {
    use super::*;

    #[test]
    fn a_set_holds_what_was_planted_and_nothing_else() {
        let bugs: Bugs = [Bug::FollowerLocalRead, Bug::CacheTakesOlderRegions].into_iter().collect();
        assert!(bugs.on(Bug::FollowerLocalRead) && bugs.on(Bug::CacheTakesOlderRegions));
        assert!(!bugs.on(Bug::AckBeforeCommit) && !Bugs::NONE.on(Bug::FollowerLocalRead));
    }
}
