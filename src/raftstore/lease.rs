//! The leader lease: when a leader may serve a read from its own state without
//! a ReadIndex round.
//!
//! A follower that acknowledged the leader at time `t` (an append or a
//! heartbeat sent at or after `t`) will not vote for anyone else before `t` plus
//! its election timeout (raft-rs's check-quorum lease). So once a quorum has
//! acknowledged something the leader sent at `t`, no other leader can exist
//! before `t + election timeout`. The lease ends earlier than that by the
//! clock-drift bound, and is renewed only by such evidence: a ReadIndex round
//! confirmed by a quorum, or an entry proposed in this term and committed.
//!
//! Leadership can also move *on purpose*, and then followers vote without
//! waiting (a transfer's forced campaign), so the lease is made **suspect**
//! before that can happen: a leader transfer voids it, and no evidence gathered
//! before the transfer could have finished counts; a membership change or a
//! split voids it until that command is applied. While the lease is void or
//! suspect every read takes the ReadIndex path.

use madsim::time::Instant;
use std::ops::Add;
use std::time::Duration;

/// Generic over the instant it is measured in: the store's clock's
/// [`Instant`], or a model's own clock (`lease_model_tests`).
#[derive(Debug, Clone)]
pub struct Lease<I = Instant> {
    /// How long evidence from time `t` keeps the lease: the election timeout
    /// less the clock-drift bound.
    duration: Duration,
    expires: Option<I>,
    /// Evidence gathered before this instant does not count (a transfer).
    not_before: Option<I>,
    /// No lease until the admin command at this index is applied.
    suspect_until_index: u64,
}

impl<I: Copy + Ord + Add<Duration, Output = I>> Lease<I> {
    pub fn new(duration: Duration) -> Lease<I> {
        Lease { duration, expires: None, not_before: None, suspect_until_index: 0 }
    }

    /// A quorum acknowledged what this leader sent at `sent_at`.
    pub fn renew(&mut self, sent_at: I, applied_index: u64) {
        if self.not_before.is_some_and(|t| sent_at < t) || applied_index < self.suspect_until_index {
            return;
        }
        let until = sent_at + self.duration;
        if self.expires.is_none_or(|e| until > e) {
            self.expires = Some(until);
        }
    }

    /// Whether a read may be served locally now.
    pub fn is_valid(&self, now: I, applied_index: u64) -> bool {
        applied_index >= self.suspect_until_index && self.expires.is_some_and(|e| now < e)
    }

    /// Leadership may move to another peer from now on, without that peer
    /// waiting out an election timeout, for up to `window` (until raft-rs gives
    /// the transfer up).
    pub fn suspect_transfer(&mut self, now: I, window: Duration) {
        self.expires = None;
        self.not_before = Some(now + window);
    }

    /// An admin command that changes who may lead was proposed at `index`.
    pub fn suspect_until_applied(&mut self, index: u64) {
        self.expires = None;
        self.suspect_until_index = self.suspect_until_index.max(index);
    }

    /// Leadership was lost (or never held).
    pub fn expire(&mut self) {
        self.expires = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[madsim::test]
    async fn evidence_renews_and_suspicion_voids() {
        let t0 = Instant::now();
        let mut lease = Lease::new(Duration::from_millis(800));
        assert!(!lease.is_valid(t0, 10), "no evidence, no lease");
        lease.renew(t0, 10);
        assert!(lease.is_valid(t0 + Duration::from_millis(799), 10));
        assert!(!lease.is_valid(t0 + Duration::from_millis(800), 10), "expires at sent_at + duration");
        // A split proposed at index 12 voids the lease until it is applied.
        lease.suspect_until_applied(12);
        assert!(!lease.is_valid(t0, 11));
        lease.renew(t0 + Duration::from_millis(100), 11);
        assert!(!lease.is_valid(t0 + Duration::from_millis(200), 11), "no renewal before the command applies");
        lease.renew(t0 + Duration::from_millis(100), 12);
        assert!(lease.is_valid(t0 + Duration::from_millis(200), 12));
        // A transfer: evidence from before the transfer could have ended does not count.
        lease.suspect_transfer(t0 + Duration::from_millis(300), Duration::from_millis(1000));
        assert!(!lease.is_valid(t0 + Duration::from_millis(301), 12));
        lease.renew(t0 + Duration::from_millis(900), 12);
        assert!(!lease.is_valid(t0 + Duration::from_millis(950), 12));
        lease.renew(t0 + Duration::from_millis(1300), 12);
        assert!(lease.is_valid(t0 + Duration::from_millis(1400), 12));
        lease.expire();
        assert!(!lease.is_valid(t0 + Duration::from_millis(1400), 12));
    }
}

#[cfg(test)]
#[path = "lease_model_tests.rs"]
mod model;
