//! Hibernating regions: a region with nothing to do costs (almost) nothing.
//!
//! A raft group heartbeats and ticks whether or not anyone uses it; with many
//! regions per store most of them idle, that is most of a store's work. As
//! TiKV does, a leader whose region has been settled for
//! `hibernate_after_ticks` ticks — nothing proposed, read, replicated,
//! applied or being changed, every peer holding the whole log, and a split
//! check caught up with what it applied (a hibernating leader is not checked,
//! so a region written past its threshold and then left idle would never
//! split) — tells its
//! peers so with a **notice** (a raft heartbeat carrying [`NOTICE`] as its
//! context: the followers' raft-rs takes it as the heartbeat it is, so their
//! commit index is the leader's last index) and stops ticking. A follower that
//! took the notice from its leader, with nothing left to commit, stops ticking
//! too: no heartbeats, no election timer. The answer raft-rs writes to the
//! notice is not sent.
//!
//! Anything for the region wakes its peer: a raft message other than a notice
//! (a proposal's append wakes the followers; any message to the leader wakes
//! it), a request, an admin command, found damage. A leader that wakes starts
//! its quorum check afresh (its followers were silent on purpose).
//!
//! **A leader that is gone.** A hibernating follower does not time out, so it
//! needs another way to learn that its leader's store died or is cut off:
//! **store liveness**. Every raft envelope a store receives says its sender
//! store is alive; a store hosting hibernating leaders sends every store that
//! hosts their followers a [`keepalive`](crate::transport::RaftEnvelope::keepalive)
//! each heartbeat interval in which it sent that store nothing else — one tiny
//! message per pair of stores instead of one per region. A hibernating
//! follower whose leader's store has been silent for an election timeout
//! wakes, and raft elects a new leader as it would have. A leader cut off from
//! its followers while hibernating still believes it leads, but its lease ran
//! out long before they can elect anyone (they wake an election timeout after
//! the last keepalive and campaign an election timeout later), and a request
//! wakes it into raft's own quorum check.

use crate::meta::StoreId;
use std::collections::BTreeMap;

/// The context of a hibernation notice (a read index context is 8 bytes,
/// so the two never meet).
pub const NOTICE: &[u8] = b"simkv:hibernate";

/// When this store last heard from each other store (any raft envelope).
#[derive(Debug, Default)]
pub struct StoreLiveness {
    heard: BTreeMap<StoreId, madsim::time::Instant>,
}

impl StoreLiveness {
    pub fn heard(&mut self, store: StoreId, at: madsim::time::Instant) {
        self.heard.insert(store, at);
    }

    /// Whether `store` was heard from within `window` of `now`.
    pub fn alive(&self, store: StoreId, now: madsim::time::Instant, window: std::time::Duration) -> bool {
        self.heard.get(&store).is_some_and(|&t| now.saturating_duration_since(t) < window)
    }
}
