//! The registry of fault kinds: for each, the scenario weight that asks for
//! it, how a plan draws one, the stores it names, and how it starts and heals
//! on a running cluster (through the family module that does it: partition,
//! clog, crash, pause, disk, membership).
//!
//! A plan picks a kind by weight, walking [`FaultKind::ALL`] in order, then
//! draws the fault's parameters from the same stream: that order is part of
//! what a seed means, so a new kind is appended, never inserted. Adding a
//! fault is a [`Fault`] variant, a kind here (its weight, draw, stores, start
//! and heal: every match is exhaustive, so the compiler lists what is
//! missing), its scenario weight in `scenario.rs`, and the code that does it
//! in its family module.

use super::{Draw, Fault, Swarm};
use crate::scenario::Nemesis as Weights;

/// Every kind of fault a plan can draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    PartitionHalves,
    IsolateStore,
    IsolateLeader,
    Asymmetric,
    Bridge,
    ClogLink,
    CrashRestart,
    Pause,
    SlowDisk,
    SlowSnapshotIo,
    PdCrashRestart,
    IsolatePd,
    MovePeer,
    TransferLeader,
    RemoveReAdd,
    CorruptValue,
    LatentReadError,
    FailSync,
    SlowLeaderCutOff,
    LeaderWithOneFollower,
}

impl FaultKind {
    /// Every kind, in the order a plan walks them when it picks one.
    pub const ALL: [FaultKind; 20] = [
        FaultKind::PartitionHalves,
        FaultKind::IsolateStore,
        FaultKind::IsolateLeader,
        FaultKind::Asymmetric,
        FaultKind::Bridge,
        FaultKind::ClogLink,
        FaultKind::CrashRestart,
        FaultKind::Pause,
        FaultKind::SlowDisk,
        FaultKind::SlowSnapshotIo,
        FaultKind::PdCrashRestart,
        FaultKind::IsolatePd,
        FaultKind::MovePeer,
        FaultKind::TransferLeader,
        FaultKind::RemoveReAdd,
        FaultKind::CorruptValue,
        FaultKind::LatentReadError,
        FaultKind::FailSync,
        FaultKind::SlowLeaderCutOff,
        FaultKind::LeaderWithOneFollower,
    ];

    /// How often the scenario asks for this kind (its `[nemesis]` weight).
    pub fn weight(self, n: &Weights) -> u32 {
        match self {
            FaultKind::PartitionHalves => n.partition_halves,
            FaultKind::IsolateStore => n.isolate_store,
            FaultKind::IsolateLeader => n.isolate_leader,
            FaultKind::Asymmetric => n.asymmetric,
            FaultKind::Bridge => n.bridge,
            FaultKind::ClogLink => n.clog_link,
            FaultKind::CrashRestart => n.crash_restart,
            FaultKind::Pause => n.pause,
            FaultKind::SlowDisk => n.slow_disk,
            FaultKind::SlowSnapshotIo => n.slow_snapshot_io,
            FaultKind::PdCrashRestart => n.pd_crash_restart,
            FaultKind::IsolatePd => n.isolate_pd,
            FaultKind::MovePeer => n.membership_churn,
            FaultKind::TransferLeader => n.leader_transfer,
            FaultKind::RemoveReAdd => n.remove_readd,
            FaultKind::CorruptValue => n.corrupt_value,
            FaultKind::LatentReadError => n.latent_read_error,
            FaultKind::FailSync => n.fail_sync,
            FaultKind::SlowLeaderCutOff => n.slow_leader_cut_off,
            FaultKind::LeaderWithOneFollower => n.leader_with_one_follower,
        }
    }

    /// One fault of this kind, its parameters drawn from the plan's stream.
    /// Damage (`CorruptValue`, `LatentReadError`) goes to one store all run,
    /// `bad_disk`, drawn when first needed.
    pub(super) fn draw(self, d: &mut Draw, swarm: &Swarm, bad_disk: &mut Option<u64>) -> Fault {
        let s = swarm.stores;
        // Region indexes wrap around the regions there are when the fault
        // starts; membership faults aim at up to 8, which splits create.
        let (region, churned_region) = (swarm.regions, swarm.regions.max(8));
        match self {
            FaultKind::PartitionHalves => {
                let all = d.shuffled(s);
                let mut side = all[..(1 + d.below(s - 1)) as usize].to_vec();
                side.sort();
                Fault::PartitionHalves { side }
            }
            FaultKind::IsolateStore => Fault::IsolateStore { store: d.store(s) },
            FaultKind::IsolateLeader => Fault::IsolateLeader { region_index: d.below(region) },
            FaultKind::Asymmetric => {
                let all = d.shuffled(s);
                let cut = (1 + d.below(s - 1)) as usize;
                let (mut from, mut to) = (all[..cut].to_vec(), all[cut..].to_vec());
                from.sort();
                to.sort();
                Fault::Asymmetric { from, to }
            }
            FaultKind::Bridge => {
                let all = d.shuffled(s);
                let bridge = all[0];
                let split = 1 + (s as usize - 1) / 2;
                let (mut left, mut right) = (all[1..split].to_vec(), all[split..].to_vec());
                left.sort();
                right.sort();
                Fault::Bridge { left, bridge, right }
            }
            FaultKind::ClogLink => {
                let (from, to) = d.two_stores(s);
                Fault::ClogLink { from, to }
            }
            FaultKind::CrashRestart => Fault::CrashRestart { store: d.store(s) },
            FaultKind::Pause => Fault::Pause { store: d.store(s) },
            FaultKind::SlowDisk => Fault::SlowDisk { store: d.store(s), factor: 10 + d.below(90) },
            FaultKind::SlowSnapshotIo => Fault::SlowSnapshotIo { store: d.store(s), factor: 100 + d.below(900) },
            FaultKind::PdCrashRestart => Fault::PdCrashRestart { clock_back_ms: d.below(2001) },
            FaultKind::IsolatePd => Fault::IsolatePd,
            FaultKind::MovePeer => {
                let (from, to) = d.two_stores(s);
                Fault::MovePeer { region_index: d.below(churned_region), from, to }
            }
            FaultKind::TransferLeader => Fault::TransferLeader { region_index: d.below(churned_region), to: d.store(s) },
            FaultKind::RemoveReAdd => Fault::RemoveReAdd { region_index: d.below(churned_region), store: d.store(s) },
            FaultKind::CorruptValue => Fault::CorruptValue { store: *bad_disk.get_or_insert_with(|| d.store(s)) },
            FaultKind::LatentReadError => Fault::LatentReadError { store: *bad_disk.get_or_insert_with(|| d.store(s)) },
            FaultKind::FailSync => Fault::FailSync { store: d.store(s), kv: d.below(2) == 1 },
            FaultKind::SlowLeaderCutOff => Fault::SlowLeaderCutOff { region_index: d.below(region) },
            FaultKind::LeaderWithOneFollower => Fault::LeaderWithOneFollower { region_index: d.below(region) },
        }
    }
}

impl Fault {
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::PartitionHalves { .. } => FaultKind::PartitionHalves,
            Fault::IsolateStore { .. } => FaultKind::IsolateStore,
            Fault::IsolateLeader { .. } => FaultKind::IsolateLeader,
            Fault::Asymmetric { .. } => FaultKind::Asymmetric,
            Fault::Bridge { .. } => FaultKind::Bridge,
            Fault::ClogLink { .. } => FaultKind::ClogLink,
            Fault::CrashRestart { .. } => FaultKind::CrashRestart,
            Fault::Pause { .. } => FaultKind::Pause,
            Fault::SlowDisk { .. } => FaultKind::SlowDisk,
            Fault::SlowSnapshotIo { .. } => FaultKind::SlowSnapshotIo,
            Fault::PdCrashRestart { .. } => FaultKind::PdCrashRestart,
            Fault::IsolatePd => FaultKind::IsolatePd,
            Fault::MovePeer { .. } => FaultKind::MovePeer,
            Fault::TransferLeader { .. } => FaultKind::TransferLeader,
            Fault::RemoveReAdd { .. } => FaultKind::RemoveReAdd,
            Fault::CorruptValue { .. } => FaultKind::CorruptValue,
            Fault::LatentReadError { .. } => FaultKind::LatentReadError,
            Fault::FailSync { .. } => FaultKind::FailSync,
            Fault::SlowLeaderCutOff { .. } => FaultKind::SlowLeaderCutOff,
            Fault::LeaderWithOneFollower { .. } => FaultKind::LeaderWithOneFollower,
        }
    }

    /// The stores the fault names in the plan (not those it resolves when it
    /// starts, such as a region's leader then).
    pub fn stores(&self) -> Vec<u64> {
        match self {
            Fault::PartitionHalves { side } => side.clone(),
            Fault::Asymmetric { from, to } => [from.clone(), to.clone()].concat(),
            Fault::Bridge { left, bridge, right } => [left.clone(), vec![*bridge], right.clone()].concat(),
            Fault::ClogLink { from, to } | Fault::MovePeer { from, to, .. } => vec![*from, *to],
            Fault::IsolateStore { store }
            | Fault::CrashRestart { store }
            | Fault::Pause { store }
            | Fault::SlowDisk { store, .. }
            | Fault::SlowSnapshotIo { store, .. }
            | Fault::TransferLeader { to: store, .. }
            | Fault::RemoveReAdd { store, .. }
            | Fault::CorruptValue { store }
            | Fault::LatentReadError { store }
            | Fault::FailSync { store, .. } => vec![*store],
            Fault::IsolateLeader { .. }
            | Fault::PdCrashRestart { .. }
            | Fault::IsolatePd
            | Fault::SlowLeaderCutOff { .. }
            | Fault::LeaderWithOneFollower { .. } => vec![],
        }
    }
}

#[cfg(madsim)]
use super::{clog, crash, disk, membership, partition, pause, FaultState, Link, Nemesis};

#[cfg(madsim)]
impl Fault {
    /// Starts the fault on the running cluster: the links it cuts (the
    /// nemesis clogs and counts them), and what it did, for the timeline.
    pub(super) fn start(&self, n: &Nemesis, state: &mut FaultState) -> (Vec<Link>, String) {
        let no_links = |what: String| (vec![], what);
        match self {
            Fault::PartitionHalves { .. }
            | Fault::IsolateStore { .. }
            | Fault::IsolateLeader { .. }
            | Fault::Asymmetric { .. }
            | Fault::Bridge { .. }
            | Fault::IsolatePd
            | Fault::SlowLeaderCutOff { .. }
            | Fault::LeaderWithOneFollower { .. } => partition::links(n, self).expect("a partition cuts links"),
            Fault::ClogLink { .. } => clog::links(n, self).expect("a clog cuts a link"),
            Fault::CrashRestart { store } => no_links(crash::start(n, state, *store)),
            Fault::Pause { store } => no_links(pause::start(n, state, *store)),
            Fault::SlowDisk { store, factor } => no_links(disk::start_slow(n, state, *store, *factor, false)),
            Fault::SlowSnapshotIo { store, factor } => no_links(disk::start_slow(n, state, *store, *factor, true)),
            Fault::PdCrashRestart { clock_back_ms } => no_links(crash::start_pd(n, state, *clock_back_ms)),
            Fault::MovePeer { .. } | Fault::TransferLeader { .. } | Fault::RemoveReAdd { .. } => no_links(membership::start(n, self)),
            Fault::CorruptValue { store } => no_links(disk::damage(n, *store, simkv::engine::Damage::BitFlip)),
            Fault::LatentReadError { store } => no_links(disk::damage(n, *store, simkv::engine::Damage::Unreadable)),
            Fault::FailSync { store, kv } => no_links(disk::fail_sync(n, *store, *kv)),
        }
    }

    /// What healing the fault takes besides unclogging its links.
    pub(super) fn heal(&self, n: &Nemesis, state: &mut FaultState) {
        match self {
            Fault::SlowLeaderCutOff { .. } => n.restore_clocks(),
            Fault::CrashRestart { store } => crash::heal(n, state, *store),
            Fault::PdCrashRestart { clock_back_ms } => crash::heal_pd(n, state, *clock_back_ms),
            Fault::Pause { store } => pause::heal(n, state, *store),
            Fault::SlowDisk { store, .. } | Fault::SlowSnapshotIo { store, .. } => disk::heal(n, state, *store),
            // Partitions heal with their links; membership changes, damage
            // and failed syncs are done once started.
            Fault::PartitionHalves { .. }
            | Fault::IsolateStore { .. }
            | Fault::IsolateLeader { .. }
            | Fault::Asymmetric { .. }
            | Fault::Bridge { .. }
            | Fault::ClogLink { .. }
            | Fault::IsolatePd
            | Fault::LeaderWithOneFollower { .. }
            | Fault::MovePeer { .. }
            | Fault::TransferLeader { .. }
            | Fault::RemoveReAdd { .. }
            | Fault::CorruptValue { .. }
            | Fault::LatentReadError { .. }
            | Fault::FailSync { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once_and_draws_its_own_kind() {
        use rand_core::SeedableRng;
        let scenario = crate::scenario::Scenario::parse("five.toml", "[cluster]\nstores = 5\nregions = 3\n").unwrap();
        let swarm = super::super::Plan::draw(&scenario, 1).swarm;
        let mut d = Draw(rand_chacha::ChaCha8Rng::seed_from_u64(7));
        for (i, kind) in FaultKind::ALL.iter().enumerate() {
            assert!(!FaultKind::ALL[..i].contains(kind), "{kind:?} listed twice");
            let fault = kind.draw(&mut d, &swarm, &mut None);
            assert_eq!(fault.kind(), *kind);
            assert!(fault.stores().iter().all(|s| (1..=5).contains(s)), "{fault:?}");
        }
    }
}
