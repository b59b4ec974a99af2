//! Raftstore settings. Defaults follow TiKV's shape at a smaller scale.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftStoreConfig {
    /// The base tick that drives every peer.
    pub base_tick_ms: u64,
    pub heartbeat_ticks: usize,
    /// Election timeouts are drawn from `[election_ticks_min, election_ticks_max)`.
    pub election_ticks_min: usize,
    pub election_ticks_max: usize,
    /// How often (in ticks) a leader considers compacting its log.
    pub raft_log_gc_ticks: u64,
    /// Compact once this many applied entries sit in the log.
    pub raft_log_gc_count_limit: u64,
    pub max_inflight_msgs: usize,
    pub max_size_per_msg: u64,
    /// Proposals and reads a peer holds at once before answering ServerIsBusy.
    pub max_pending_requests: usize,
    /// Messages queued for the store loop before senders are turned away.
    pub inbox_capacity: usize,
    /// The largest key + value a write may carry.
    pub max_entry_bytes: usize,
    /// Snapshots travel in chunks of this size.
    pub snapshot_chunk_bytes: usize,
    /// Snapshot generation reads data in batches of this many pairs.
    pub snapshot_batch_pairs: usize,
    /// Half-assembled incoming snapshots kept at once.
    pub max_receiving_snapshots: usize,
    /// How often (in ticks) a leader checks whether its region should split.
    pub split_check_ticks: u64,
    /// Split a region holding more than this many keys (0: never by count).
    pub region_split_keys: u64,
    /// Split a region holding more than this many bytes (0: never by size).
    pub region_split_bytes: u64,
    /// How often (in ticks) the store and its leaders heartbeat PD.
    pub pd_heartbeat_ticks: u64,
    /// A follower that hears nothing from its region this many ticks asks PD
    /// whether it was removed while away (and destroys itself if so).
    pub stale_peer_check_ticks: u64,
    /// How often (in ticks) the store reads all its replicas' data to verify
    /// checksums, so that damage nobody reads is found and repaired too
    /// (0: never).
    pub scrub_ticks: u64,
    /// Whether a leader with a valid lease serves reads without a ReadIndex
    /// round (see `raftstore::lease`).
    pub lease_reads: bool,
    /// A leader whose region has had nothing to do for this many ticks
    /// hibernates it: it tells the followers, and none of them ticks or
    /// heartbeats until something happens (see `raftstore::hibernate`).
    /// 0: never.
    pub hibernate_after_ticks: u64,
    /// How far two stores' clocks may drift apart over one election timeout;
    /// the lease is this much shorter than the election timeout.
    pub max_clock_drift_ms: u64,
    /// The store's clock: ticks and the lease read it (see `crate::clock`).
    #[serde(skip)]
    pub clock: crate::clock::Clock,
    /// Bugs planted on purpose so that the testbed can prove its checkers fail.
    /// Compiled only in simulation; a scenario switches them on.
    #[cfg(madsim)]
    pub bugs: PlantedBugs,
}

/// Deliberate defects, each breaking one rule the store must obey.
#[cfg(madsim)]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlantedBugs {
    /// A hibernating follower ignores that its leader's store fell silent:
    /// a region whose leader is cut off stays leaderless until something
    /// else wakes it (only a targeted test catches this: the scenarios'
    /// faults all heal, and healing wakes the region).
    pub hibernation_ignores_silence: bool,
    /// A follower answers reads from its own applied state, without ReadIndex.
    pub follower_local_read: bool,
    /// Puts and deletes are acknowledged when proposed, before raft commits them.
    pub ack_before_commit: bool,
    /// A hard state (term, vote) persisted without new entries is not synced, so a
    /// crash can forget a vote already sent.
    pub unsynced_vote: bool,
    /// Applying a snapshot writes its pairs over the region's old data without
    /// clearing it first, so keys deleted since linger on the replica.
    pub snapshot_keeps_stale_keys: bool,
    /// A scan is served past its region's end, from whatever this store holds
    /// of the next region.
    pub scan_ignores_region_end: bool,
    /// A restarted peer applies again from its truncated index, not from its
    /// durable applied index: entries already applied are applied twice.
    pub reapply_after_restart: bool,
    /// Applying a put of an empty value panics the node (a crash bug in the
    /// apply path, as a corrupt-state assertion gone wrong would be).
    pub empty_value_panics: bool,
    /// Apply skips the epoch check, so a write proposed before a split lands
    /// in a range its region no longer owns.
    pub apply_skips_epoch_check: bool,
    /// A split leaves the region's `version` where it was.
    pub split_keeps_version: bool,
    /// Applying the 50th entry of a region spins forever without awaiting (a
    /// livelock: the simulation's only thread never comes back).
    pub spin_in_apply: bool,
    /// A leader hands a membership change to raft-rs when it proposes it, not
    /// when its entry is applied.
    pub conf_change_at_propose: bool,
    /// A membership change may be proposed while another is still unapplied
    /// (raft-rs's own guard is bypassed too).
    pub two_pending_conf_changes: bool,
    /// A late message for a removed peer (any message, not only one a new
    /// leader sends first) recreates it with its old id, whatever its
    /// tombstone says.
    pub recreate_removed_peer: bool,
    /// A leader transfer leaves the leader's lease as it was, so the old leader
    /// may serve reads locally after the new one has taken writes.
    pub lease_kept_on_transfer: bool,
    /// A leader transfer voids the lease, but evidence gathered before the
    /// transfer could have finished (answers to rounds sent before or during
    /// it) renews it again.
    pub lease_renewed_across_transfer: bool,
    /// A peer created by a message (uninitialized) forgets on restart the vote
    /// it gave: its hard state is read back as empty.
    pub uninitialized_vote_forgotten: bool,
    /// Transactional reads ignore locks: they return the committed value
    /// under another transaction's lock.
    pub txn_reads_ignore_locks: bool,
    /// Prewrite skips the write-conflict check (lost updates).
    pub prewrite_skips_conflict_check: bool,
    /// Commit of a key whose lock is gone succeeds whatever the write CF says,
    /// a Rollback record included.
    pub commit_ignores_rollback: bool,
    /// Rolling back a key without a lock writes no Rollback record, so a late
    /// prewrite of the rolled-back transaction succeeds.
    pub rollback_leaves_no_record: bool,
    /// Commit writes its record but leaves the transaction's lock behind.
    pub commit_leaves_lock: bool,
    /// GC drops the version a read at the safe point sees, too.
    pub gc_drops_visible_version: bool,
    /// A failed raft-log write is ignored: raft is told the entries and the
    /// vote are persisted, and acknowledges them.
    pub ack_after_failed_fsync: bool,
    /// The lease lasts the whole election timeout, ignoring clock drift.
    pub lease_ignores_drift: bool,
    /// The snapshot receiver keeps chunks in arrival order and counts them,
    /// so a chunk delivered twice is applied twice in place of one not yet
    /// arrived.
    pub duplicate_chunk_applied_twice: bool,
    /// An apply writes its apply state in a batch of its own before the data
    /// it covers: a crash in between leaves the replica believing it applied
    /// entries whose effects it never wrote.
    pub apply_state_before_data: bool,
    /// Destroying a removed peer deletes its log and raft state before it
    /// writes the tombstone: a crash in between leaves a region state with
    /// no raft state behind it.
    pub destroy_deletes_log_first: bool,
    /// A received snapshot's region is marked applying before the snapshot
    /// itself is persisted: a crash in between leaves the mark with nothing
    /// to apply.
    pub mark_applying_first: bool,
    /// A split's batch leaves the new regions' apply states out; they are
    /// written when the new peers are created.
    pub split_defers_apply_state: bool,
    /// The leader serves lease reads from what it has applied, as TiKV's
    /// local reader does, without waiting for what it knows is committed —
    /// and a split does not suspend its lease. Safe within one region (an
    /// acknowledged write is applied on the leader before it is
    /// acknowledged), not across a split the leader has not applied yet
    /// while the new region's peers, elsewhere, have.
    pub lease_read_ignores_split: bool,
    /// Any one follower's heartbeat answer renews the leader's lease, as if
    /// it were a quorum's. With three replicas one follower is a quorum;
    /// with five it is not.
    pub lease_renewed_by_one_follower: bool,
}

#[cfg(madsim)]
impl PlantedBugs {
    /// The planted defects of the MVCC layer.
    pub fn mvcc(&self) -> crate::mvcc::MvccBugs {
        crate::mvcc::MvccBugs {
            reads_ignore_locks: self.txn_reads_ignore_locks,
            no_write_conflict_check: self.prewrite_skips_conflict_check,
            commit_ignores_rollback: self.commit_ignores_rollback,
            rollback_without_record: self.rollback_leaves_no_record,
            commit_leaves_lock: self.commit_leaves_lock,
            gc_drops_visible_version: self.gc_drops_visible_version,
        }
    }
}

impl Default for RaftStoreConfig {
    fn default() -> Self {
        RaftStoreConfig {
            base_tick_ms: 100,
            heartbeat_ticks: 2,
            election_ticks_min: 10,
            election_ticks_max: 20,
            raft_log_gc_ticks: 10,
            raft_log_gc_count_limit: 1000,
            max_inflight_msgs: 256,
            max_size_per_msg: 1 << 20,
            max_pending_requests: 1024,
            inbox_capacity: 8192,
            max_entry_bytes: 1 << 20,
            snapshot_chunk_bytes: 256 << 10,
            snapshot_batch_pairs: 256,
            max_receiving_snapshots: 8,
            split_check_ticks: 10,
            region_split_keys: 0,
            region_split_bytes: 96 << 20,
            pd_heartbeat_ticks: 10,
            stale_peer_check_ticks: 50,
            scrub_ticks: 600,
            lease_reads: true,
            hibernate_after_ticks: 10,
            max_clock_drift_ms: 250,
            clock: crate::clock::Clock::exact(),
            #[cfg(madsim)]
            bugs: PlantedBugs::default(),
        }
    }
}

impl RaftStoreConfig {
    pub fn base_tick(&self) -> Duration {
        Duration::from_millis(self.base_tick_ms)
    }

    /// The election timeout's lower bound.
    pub fn election_timeout(&self) -> Duration {
        self.base_tick() * self.election_ticks_min as u32
    }

    /// How long a quorum's acknowledgement keeps a leader's lease.
    pub fn lease_duration(&self) -> Duration {
        #[cfg(madsim)]
        if self.bugs.lease_ignores_drift {
            // Planted bug: the lease lasts the whole election timeout, as if
            // every clock ran at the same rate.
            return self.election_timeout();
        }
        self.election_timeout().saturating_sub(Duration::from_millis(self.max_clock_drift_ms))
    }

    /// The largest relative clock-rate error (fast or slow, e.g. 0.1 for
    /// ±10%) under which lease reads stay safe: a follower's clock running
    /// fast must not end its election timeout before a leader whose clock
    /// runs slow sees its lease end, i.e. `lease / (1 - x) <= timeout / (1 + x)`.
    pub fn max_safe_clock_rate_error(&self) -> f64 {
        let (e, l) = (self.election_timeout().as_secs_f64(), self.lease_duration().as_secs_f64());
        if e + l == 0.0 {
            return 0.0;
        }
        (e - l) / (e + l)
    }

    /// Checks the settings make sense together; says which one does not.
    pub fn validate(&self) -> Result<(), String> {
        if self.base_tick_ms == 0 {
            return Err("base_tick_ms must be positive".into());
        }
        if self.heartbeat_ticks == 0 || self.election_ticks_min <= self.heartbeat_ticks {
            return Err(format!("election_ticks_min ({}) must exceed heartbeat_ticks ({}) > 0", self.election_ticks_min, self.heartbeat_ticks));
        }
        if self.election_ticks_max <= self.election_ticks_min {
            return Err(format!("election_ticks_max ({}) must exceed election_ticks_min ({})", self.election_ticks_max, self.election_ticks_min));
        }
        if self.lease_reads && self.lease_duration().is_zero() {
            return Err(format!(
                "max_clock_drift_ms ({}) leaves no lease inside the election timeout ({:?})",
                self.max_clock_drift_ms,
                self.election_timeout()
            ));
        }
        if self.raft_log_gc_count_limit == 0 || self.snapshot_chunk_bytes == 0 || self.max_pending_requests == 0 {
            return Err("raft_log_gc_count_limit, snapshot_chunk_bytes and max_pending_requests must be positive".into());
        }
        Ok(())
    }
}
