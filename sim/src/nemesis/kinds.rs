//! The registry of fault kinds: one module per kind (in `kinds/`), each a
//! struct with the fault's parameters that implements [`Kind`] — its
//! scenario weight, how a plan draws one, the stores it names, and how it
//! starts and heals on a running cluster — and one line per kind in the
//! [`registry!`] list below, which builds [`Fault`], [`FaultKind`] and
//! their dispatch from it.
//!
//! A plan picks a kind by weight, walking [`FaultKind::ALL`] in the list's
//! order, then draws the fault's parameters from the same stream: that order
//! is part of what a seed means, so a new kind is appended, never inserted.
//! Adding a fault is its module, its line here and its `[nemesis]` weight in
//! `scenario.rs`. Work several kinds share (cutting links, crashing a
//! process, slowing a disk, asking PD for an operator) lives in the family
//! modules next to this one: `partition`, `crash`, `disk`, `membership`.

use super::Draw;
use super::{between, crash, disk, membership, partition, FaultState, Link, Nemesis};
use crate::scenario::Nemesis as Weights;
use serde::{Deserialize, Serialize};

/// One kind of fault: a struct of the parameters the plan drew for it.
pub(super) trait Kind: Sized {
    /// How often the scenario asks for this kind (its `[nemesis]` weight).
    fn weight(weights: &Weights) -> u32;

    /// One fault of this kind, its parameters drawn from the plan's stream.
    fn draw(d: &mut Draw, on: &mut Target) -> Self;

    /// The stores the fault names in the plan (not those it resolves when it
    /// starts, such as a region's leader then).
    fn stores(&self) -> Vec<u64>;

    /// Starts the fault on the running cluster: the links it cuts (the
    /// nemesis clogs and counts them), and what it did, for the timeline.
    fn start(&self, n: &Nemesis, state: &mut FaultState) -> (Vec<Link>, String);

    /// What healing the fault takes besides unclogging its links; nothing
    /// for faults that are done once started.
    fn heal(&self, _n: &Nemesis, _state: &mut FaultState) {}
}

/// What a plan draws faults against.
pub(super) struct Target {
    pub stores: u64,
    /// Regions at the start; a region index wraps around the regions there
    /// are when the fault starts.
    pub regions: u64,
    /// Regions membership faults aim at: up to 8, which splits create.
    pub churned_regions: u64,
    /// Damage goes to one store all run, drawn when first needed (so plans
    /// without disk faults are as they were).
    pub bad_disk: Option<u64>,
}

impl Target {
    pub fn new(stores: u64, regions: u64) -> Target {
        Target { stores, regions, churned_regions: regions.max(8), bad_disk: None }
    }

    /// The store that takes the run's damage.
    fn bad_disk(&mut self, d: &mut Draw) -> u64 {
        let stores = self.stores;
        *self.bad_disk.get_or_insert_with(|| d.store(stores))
    }
}

/// Builds [`Fault`] (one variant per kind, holding its struct), [`FaultKind`]
/// and the dispatch from each to the kind's module.
macro_rules! registry {
    ($($kind:ident in $module:ident,)*) => {
        $(mod $module;)*
        $(pub use $module::$kind;)*

        /// One fault: a kind and its parameters. Store ids are 1-based; a
        /// region's leader is resolved when the fault starts (the leader
        /// then). In a plan file, `kind` names it (kebab-case) and the
        /// kind's fields follow.
        #[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "kebab-case")]
        pub enum Fault {
            $($kind($kind),)*
        }

        /// Every kind of fault a plan can draw.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum FaultKind {
            $($kind,)*
        }

        impl FaultKind {
            /// Every kind, in the order a plan walks them when it picks one.
            pub const ALL: &[FaultKind] = &[$(FaultKind::$kind,)*];

            /// The kind's name (its module's), as coverage and reports print it.
            pub fn name(self) -> &'static str {
                match self {
                    $(FaultKind::$kind => stringify!($module),)*
                }
            }

            /// How often the scenario asks for this kind.
            pub fn weight(self, weights: &Weights) -> u32 {
                match self {
                    $(FaultKind::$kind => $kind::weight(weights),)*
                }
            }

            /// One fault of this kind, drawn from the plan's stream.
            pub(super) fn draw(self, d: &mut Draw, on: &mut Target) -> Fault {
                match self {
                    $(FaultKind::$kind => Fault::$kind($kind::draw(d, on)),)*
                }
            }
        }

        impl Fault {
            pub fn kind(&self) -> FaultKind {
                match self {
                    $(Fault::$kind(_) => FaultKind::$kind,)*
                }
            }

            /// The stores the fault names in the plan.
            pub fn stores(&self) -> Vec<u64> {
                match self {
                    $(Fault::$kind(f) => f.stores(),)*
                }
            }

            pub(super) fn start(&self, n: &Nemesis, state: &mut FaultState) -> (Vec<Link>, String) {
                match self {
                    $(Fault::$kind(f) => f.start(n, state),)*
                }
            }

            pub(super) fn heal(&self, n: &Nemesis, state: &mut FaultState) {
                match self {
                    $(Fault::$kind(f) => f.heal(n, state),)*
                }
            }
        }

        /// A fault prints as its kind's struct (`Bridge { left: .. }`), as
        /// schedules and timelines show it.
        impl std::fmt::Debug for Fault {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    $(Fault::$kind(fault) => fault.fmt(f),)*
                }
            }
        }
    };
}

registry! {
    PartitionHalves in partition_halves,
    IsolateStore in isolate_store,
    IsolateLeader in isolate_leader,
    Asymmetric in asymmetric,
    Bridge in bridge,
    ClogLink in clog_link,
    CrashRestart in crash_restart,
    Pause in pause,
    SlowDisk in slow_disk,
    SlowSnapshotIo in slow_snapshot_io,
    PdCrashRestart in pd_crash_restart,
    IsolatePd in isolate_pd,
    MovePeer in move_peer,
    TransferLeader in transfer_leader,
    RemoveReAdd in remove_readd,
    CorruptValue in corrupt_value,
    LatentReadError in latent_read_error,
    FailSync in fail_sync,
    SlowLeaderCutOff in slow_leader_cut_off,
    LeaderWithOneFollower in leader_with_one_follower,
}

impl Fault {
    /// Why the fault cannot be carried out on real processes, for the kinds
    /// that cannot: the disk faults (RocksDB's files and fsyncs are not the
    /// testbed's to slow, damage or fail).
    pub fn sim_only(&self) -> Option<&'static str> {
        match self {
            Fault::SlowDisk(_) => Some("a slow disk needs the simulated disk"),
            Fault::SlowSnapshotIo(_) => Some("slow snapshot IO needs the simulated disk"),
            Fault::CorruptValue(_) => Some("a flipped bit in stored data needs the simulated disk"),
            Fault::LatentReadError(_) => Some("an unreadable block needs the simulated disk"),
            Fault::FailSync(_) => Some("a failed fsync needs the simulated disk"),
            _ => None,
        }
    }

    /// The store whose disk the fault damages (the run's bad disk), for the
    /// kinds that damage one.
    pub fn damaged_store(&self) -> Option<u64> {
        match self {
            Fault::CorruptValue(c) => Some(c.store),
            Fault::LatentReadError(l) => Some(l.store),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once_and_draws_its_own_kind() {
        use rand_core::SeedableRng;
        let mut d = Draw(rand_chacha::ChaCha8Rng::seed_from_u64(7));
        let mut on = Target::new(5, 3);
        for (i, kind) in FaultKind::ALL.iter().enumerate() {
            assert!(!FaultKind::ALL[..i].contains(kind), "{kind:?} listed twice");
            let fault = kind.draw(&mut d, &mut on);
            assert_eq!(fault.kind(), *kind);
            assert!(fault.stores().iter().all(|s| (1..=5).contains(s)), "{fault:?}");
        }
    }
}
