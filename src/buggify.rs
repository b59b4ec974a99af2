//! Buggify: named fault points inside the store, as FoundationDB has them.
//!
//! A [`Site`] is a place in the code where something rare may be forced to
//! happen: an apply delayed, a snapshot chunk dropped, a PD reply slowed, a
//! region-cache entry forgotten, the log compacted early, a raft-engine write
//! failed, a round of messages reordered — or the store killed exactly there (a **crash point**: a random kill almost never lands
//! in the millisecond between two writes; a crash point does).
//!
//! In simulation a run installs the sites its plan enabled, each with a
//! probability per visit; every draw comes from the run's seed, and how often
//! each site fired is reported with the run. A crash point calls the hook the
//! testbed installed (it kills the store's node and crashes its disks, and
//! restarts it later) and then never returns. In the real build every site is
//! `false` and compiles away.

use crate::meta::StoreId;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Site {
    /// Applying committed entries waits 10–300 ms before writing its batch.
    DelayApply,
    /// A received snapshot chunk is dropped (raft sends the snapshot again).
    DropSnapshotChunk,
    /// PD waits 100–1000 ms before answering a request.
    SlowPdReply,
    /// A client forgets the region it had cached and asks PD again.
    RegionCacheMiss,
    /// A leader compacts its log as if the GC limit were one entry.
    ShrinkLogGc,
    /// Crash point: right after a store sent a round of raft messages (votes
    /// and acknowledgements included), before anything else is written.
    CrashAfterSend,
    /// Crash point: right after a store sent a round of raft messages that
    /// grants a vote.
    CrashAfterVote,
    /// Crash point: right after a store sent a round of raft messages that
    /// acknowledges appended entries.
    CrashAfterAck,
    /// Crash point: after a kv apply batch is written, before the proposals
    /// it answers are answered.
    CrashAfterApply,
    /// Crash point: after a split's apply batch, before the new regions'
    /// peers are created.
    CrashAfterSplitApply,
    /// A raft-engine write fails (as after a failed fsync): the store must
    /// stop and restart from what is durable.
    FailRaftWrite,
    /// A round of raft messages to one store goes out in reverse order
    /// (raft allows any order).
    ReorderMessages,
    /// Crash point: after a received snapshot's metadata is persisted on the
    /// raft engine, before its region is marked applying on the kv engine.
    CrashAfterSnapshotMeta,
    /// Crash point: in the middle of destroying a peer, after its tombstone
    /// is written and before its raft state is deleted.
    CrashMidDestroy,
    /// A region heartbeat or split report waits 1–4 s before it is sent: PD
    /// receives it after newer ones of the same region (reports out of
    /// order), and lags behind the stores meanwhile.
    LateRegionReport,
    /// A leader holds back applying a committed split for 1–3 s while its
    /// followers apply it on time (the store goes on serving meanwhile).
    LateSplitApply,
    /// A leader that starts handing leadership over hears its region's raft
    /// messages 200–800 ms late for 2 s: the answers to its ReadIndex rounds
    /// and proposals arrive after the new leader may have been elected and
    /// taken writes (the old leader hears of it just as late).
    ReadIndexAcrossTransfer,
    /// Crash point (PD): right after PD answered a timestamp request that
    /// opened a new time window; the testbed restarts it 0.2–1 s later with
    /// its clock set back by up to 2 s.
    CrashPdAfterTso,
    /// A leader that just took a client write is cut off from its region,
    /// both ways: the followers elect another leader while its clients still
    /// wait (a client whose timeout outlasts an election hears what it
    /// answers when it catches up). Half the time nothing goes out and the
    /// cut ends at the first message of a newer term (the next leader wrote
    /// over the write's index; the old one catches up by log); half the time
    /// the write's append goes out first and the cut lasts 3 s (the next
    /// leader commits it and compacts its log; the old one catches up by
    /// snapshot).
    LeaderCutOffAfterWrite,
}

/// The id a PD crash point passes to the crash hook (stores count from 1).
pub const PD: StoreId = 0;

pub const ALL: [Site; 19] = [
    Site::DelayApply,
    Site::DropSnapshotChunk,
    Site::SlowPdReply,
    Site::RegionCacheMiss,
    Site::ShrinkLogGc,
    Site::CrashAfterSend,
    Site::CrashAfterVote,
    Site::CrashAfterApply,
    Site::CrashAfterSplitApply,
    Site::FailRaftWrite,
    Site::ReorderMessages,
    Site::CrashAfterSnapshotMeta,
    Site::CrashMidDestroy,
    Site::CrashAfterAck,
    Site::LateRegionReport,
    Site::LateSplitApply,
    Site::ReadIndexAcrossTransfer,
    Site::CrashPdAfterTso,
    Site::LeaderCutOffAfterWrite,
];

impl Site {
    /// The probability the site fires on one visit, once enabled: crash
    /// points and sites visited on every ready are rare, the others less so.
    pub fn per_visit(self) -> f64 {
        match self {
            Site::DelayApply => 0.01,
            Site::DropSnapshotChunk => 0.1,
            Site::SlowPdReply => 0.02,
            Site::RegionCacheMiss => 0.05,
            Site::ShrinkLogGc => 0.05,
            Site::CrashAfterSend | Site::CrashAfterApply => 0.0005,
            Site::CrashAfterVote => 0.2,
            Site::CrashAfterAck => 0.01,
            Site::CrashAfterSplitApply => 0.2,
            Site::FailRaftWrite => 0.0005,
            Site::ReorderMessages => 0.05,
            Site::CrashAfterSnapshotMeta | Site::CrashMidDestroy => 0.3,
            Site::LateRegionReport => 0.05,
            Site::LateSplitApply => 0.5,
            Site::ReadIndexAcrossTransfer => 0.5,
            Site::CrashPdAfterTso => 0.2,
            Site::LeaderCutOffAfterWrite => 0.01,
        }
    }

    pub fn is_crash_point(self) -> bool {
        matches!(
            self,
            Site::CrashAfterSend
                | Site::CrashAfterVote
                | Site::CrashAfterAck
                | Site::CrashAfterApply
                | Site::CrashAfterSplitApply
                | Site::CrashAfterSnapshotMeta
                | Site::CrashMidDestroy
                | Site::CrashPdAfterTso
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Site::DelayApply => "delay-apply",
            Site::DropSnapshotChunk => "drop-snapshot-chunk",
            Site::SlowPdReply => "slow-pd-reply",
            Site::RegionCacheMiss => "region-cache-miss",
            Site::ShrinkLogGc => "shrink-log-gc",
            Site::CrashAfterSend => "crash-after-send",
            Site::CrashAfterVote => "crash-after-vote",
            Site::CrashAfterAck => "crash-after-ack",
            Site::CrashAfterApply => "crash-after-apply",
            Site::CrashAfterSplitApply => "crash-after-split-apply",
            Site::FailRaftWrite => "fail-raft-write",
            Site::ReorderMessages => "reorder-messages",
            Site::CrashAfterSnapshotMeta => "crash-after-snapshot-meta",
            Site::CrashMidDestroy => "crash-mid-destroy",
            Site::LateRegionReport => "late-region-report",
            Site::LateSplitApply => "late-split-apply",
            Site::ReadIndexAcrossTransfer => "read-index-across-transfer",
            Site::CrashPdAfterTso => "crash-pd-after-tso",
            Site::LeaderCutOffAfterWrite => "leader-cut-off-after-write",
        }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(madsim)]
mod imp {
    use super::Site;
    use crate::meta::StoreId;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// Kills and crashes a store (and arranges its restart); returns false if
    /// the testbed declines (no more crashes this run).
    pub type CrashHook = Box<dyn Fn(StoreId, Site) -> bool>;

    struct State {
        enabled: BTreeMap<Site, f64>,
        fired: BTreeMap<Site, u64>,
        crash: Option<CrashHook>,
    }

    thread_local! {
        static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
    }

    /// Enables `sites` for the run about to start on this thread.
    pub fn install(sites: &[Site], crash: Option<CrashHook>) {
        let enabled = sites.iter().map(|s| (*s, s.per_visit())).collect();
        STATE.with(|s| *s.borrow_mut() = Some(State { enabled, fired: BTreeMap::new(), crash }));
    }

    /// Stops every site firing (the run's liveness phase: every fault heals),
    /// keeping the counts.
    pub fn quiesce() {
        STATE.with(|s| {
            if let Some(st) = s.borrow_mut().as_mut() {
                st.enabled.clear();
            }
        });
    }

    /// Ends the run's buggify: how often each site fired.
    pub fn uninstall() -> BTreeMap<Site, u64> {
        STATE.with(|s| s.borrow_mut().take().map(|st| st.fired).unwrap_or_default())
    }

    pub fn fires(site: Site) -> bool {
        use rand::Rng;
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let Some(st) = s.as_mut() else { return false };
            let Some(&p) = st.enabled.get(&site) else { return false };
            if !madsim::rand::thread_rng().gen_bool(p) {
                return false;
            }
            *st.fired.entry(site).or_default() += 1;
            true
        })
    }

    pub fn enabled(site: Site) -> bool {
        STATE.with(|s| s.borrow().as_ref().is_some_and(|st| st.enabled.contains_key(&site)))
    }

    pub fn crash(store: StoreId, site: Site) -> bool {
        STATE.with(|s| s.borrow().as_ref().and_then(|st| st.crash.as_ref()).is_some_and(|hook| hook(store, site)))
    }
}

#[cfg(madsim)]
pub use imp::{install, quiesce, uninstall, CrashHook};

/// Whether `site` fires on this visit.
#[inline]
pub fn fires(#[cfg_attr(not(madsim), allow(unused_variables))] site: Site) -> bool {
    #[cfg(madsim)]
    return imp::fires(site);
    #[cfg(not(madsim))]
    false
}

/// Whether `site` is on in this run (no draw: for sites whose visit costs
/// something to recognize).
#[inline]
pub fn enabled(#[cfg_attr(not(madsim), allow(unused_variables))] site: Site) -> bool {
    #[cfg(madsim)]
    return imp::enabled(site);
    #[cfg(not(madsim))]
    false
}

/// A random draw in `[lo, hi]` from the run's seed.
pub fn draw_ms(lo: u64, hi: u64) -> u64 {
    use rand::Rng;
    madsim::rand::thread_rng().gen_range(lo..=hi)
}

/// A crash point: if `site` fires, the store is killed here and this never
/// returns (the node's tasks are dropped; its disks lose what was not synced).
pub async fn crash_point(#[cfg_attr(not(madsim), allow(unused_variables))] site: Site, #[cfg_attr(not(madsim), allow(unused_variables))] store: StoreId) {
    #[cfg(madsim)]
    if imp::fires(site) {
        // What the store handed to its transport leaves first (the outboxes
        // are drained by tasks of their own): "after sending" means sent.
        madsim::time::sleep(std::time::Duration::from_micros(20)).await;
        if imp::crash(store, site) {
            tracing::info!(store, %site, "crash point");
            std::future::pending::<()>().await;
        }
    }
}

/// A random delay in `[lo, hi]` milliseconds from the run's seed.
pub async fn delay_ms(lo: u64, hi: u64) {
    use rand::Rng;
    let ms = madsim::rand::thread_rng().gen_range(lo..=hi);
    madsim::time::sleep(std::time::Duration::from_millis(ms)).await;
}
