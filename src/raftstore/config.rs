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
    /// Bugs planted on purpose so that the testbed can prove its checkers
    /// fail (`crate::planted`): none outside simulation.
    #[serde(skip)]
    pub bugs: crate::planted::Bugs,
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
            bugs: crate::planted::Bugs::NONE,
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

    /// The shortest time, on its own clock, for which a voter that has just
    /// heard from its leader refuses to vote for anyone else. raft-rs counts
    /// the election timeout in ticks from the message, and the first tick
    /// may come right after it: one tick less than the timeout.
    pub fn vote_refusal(&self) -> Duration {
        self.base_tick() * self.election_ticks_min.saturating_sub(1) as u32
    }

    /// How long a quorum's acknowledgement keeps a leader's lease: the
    /// voters' refusal less the drift bound. (Until session 13 it was the
    /// whole election timeout less the drift bound, one tick too long:
    /// `lease_model_tests.rs` found a slow leader's lease outliving a fast
    /// follower's refusal with clocks 12% apart.)
    pub fn lease_duration(&self) -> Duration {
        if self.bugs.on(crate::planted::Bug::LeaseIgnoresDrift) {
            // Planted bug: the lease lasts the whole election timeout, as if
            // every clock ran at the same rate.
            return self.election_timeout();
        }
        self.vote_refusal().saturating_sub(Duration::from_millis(self.max_clock_drift_ms))
    }

    /// The largest relative clock-rate error (fast or slow, e.g. 0.1 for
    /// ±10%) under which lease reads stay safe: a follower's clock running
    /// fast must not end its refusal to vote before a leader whose clock
    /// runs slow sees its lease end, i.e. `lease / (1 - x) <= refusal / (1 + x)`.
    pub fn max_safe_clock_rate_error(&self) -> f64 {
        let (e, l) = (self.vote_refusal().as_secs_f64(), self.lease_duration().as_secs_f64());
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
                "max_clock_drift_ms ({}) leaves no lease inside the voters' refusal of {:?} (election_ticks_min - 1 ticks)",
                self.max_clock_drift_ms,
                self.vote_refusal()
            ));
        }
        if self.raft_log_gc_count_limit == 0 || self.snapshot_chunk_bytes == 0 || self.max_pending_requests == 0 {
            return Err("raft_log_gc_count_limit, snapshot_chunk_bytes and max_pending_requests must be positive".into());
        }
        Ok(())
    }
}
