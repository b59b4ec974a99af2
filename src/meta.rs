//! The shared vocabulary: ids, regions, epochs, peers and stores.
//!
//! A **region** is a contiguous key range `[start_key, end_key)` (an empty
//! `end_key` means "to the end of the key space") replicated by a raft group whose
//! **peers** live on different **stores**. Its **epoch** says which version of the
//! region a request was routed with: `conf_ver` grows with every membership change,
//! `version` with every split or merge, and a request carrying an older epoch is
//! stale.

use serde::{Deserialize, Serialize};
use std::fmt;

pub type StoreId = u64;
pub type RegionId = u64;
pub type PeerId = u64;
/// A timestamp from PD's TSO: `(physical_ms << 18) + logical`.
pub type Ts = u64;

/// How many low bits of a [`Ts`] count logical ticks within one millisecond.
pub const TS_LOGICAL_BITS: u32 = 18;

/// The timestamp of logical tick `logical` within millisecond `physical_ms`.
pub fn compose_ts(physical_ms: u64, logical: u64) -> Ts {
    physical_ms << TS_LOGICAL_BITS | logical
}

/// The millisecond of PD's clock a timestamp was handed out in (lock TTLs
/// are measured against it).
pub fn physical_ms(ts: Ts) -> u64 {
    ts >> TS_LOGICAL_BITS
}

/// Version of a region's shape; see the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RegionEpoch {
    pub conf_ver: u64,
    pub version: u64,
}

impl RegionEpoch {
    pub fn new(conf_ver: u64, version: u64) -> Self {
        RegionEpoch { conf_ver, version }
    }

    /// True if `self` is older than `other` in either dimension.
    pub fn is_stale_against(&self, other: &RegionEpoch) -> bool {
        self.conf_ver < other.conf_ver || self.version < other.version
    }

    /// True if `self` (a request's epoch) is older than `current` in a checked
    /// part: `version` when `check_version`, `conf_ver` when `check_conf_ver`.
    /// What apply asks of a committed command: its epoch can only lag the
    /// region's, since it was proposed against state at or before its own index.
    pub fn is_stale_for(&self, current: &RegionEpoch, (check_version, check_conf_ver): (bool, bool)) -> bool {
        (check_version && self.version < current.version) || (check_conf_ver && self.conf_ver < current.conf_ver)
    }

    /// True if `self` (a request's epoch) equals `current` in every checked part:
    /// what admission asks, as TiKV does. A request from a newer epoch than this
    /// replica's is refused too: the replica is behind and cannot judge it.
    pub fn matches(&self, current: &RegionEpoch, (check_version, check_conf_ver): (bool, bool)) -> bool {
        (!check_version || self.version == current.version) && (!check_conf_ver || self.conf_ver == current.conf_ver)
    }
}

impl fmt::Display for RegionEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conf_ver={} version={}", self.conf_ver, self.version)
    }
}

/// A replica's part in its region's raft group. The two joint roles exist only
/// while a membership change that moves several replicas at once is half done
/// (joint consensus): the old configuration is the `Voter`s and
/// `DemotingVoter`s, the new one the `Voter`s and `IncomingVoter`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PeerRole {
    Voter,
    Learner,
    /// A voter of the new configuration only (it was a learner or new).
    IncomingVoter,
    /// A voter of the old configuration only; a learner once the change ends.
    DemotingVoter,
}

/// One replica of a region, on one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Peer {
    pub id: PeerId,
    pub store_id: StoreId,
    pub role: PeerRole,
}

impl Peer {
    pub fn voter(id: PeerId, store_id: StoreId) -> Self {
        Peer { id, store_id, role: PeerRole::Voter }
    }
}

/// A region's descriptor: its range, epoch and replicas.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Region {
    pub id: RegionId,
    pub start_key: Vec<u8>,
    /// Exclusive; empty means unbounded.
    pub end_key: Vec<u8>,
    pub epoch: RegionEpoch,
    pub peers: Vec<Peer>,
}

impl Region {
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= &self.start_key[..] && (self.end_key.is_empty() || key < &self.end_key[..])
    }

    pub fn peer_on_store(&self, store_id: StoreId) -> Option<&Peer> {
        self.peers.iter().find(|p| p.store_id == store_id)
    }

    pub fn peer(&self, peer_id: PeerId) -> Option<&Peer> {
        self.peers.iter().find(|p| p.id == peer_id)
    }

    fn ids_with(&self, roles: &[PeerRole]) -> Vec<PeerId> {
        let mut ids: Vec<PeerId> = self.peers.iter().filter(|p| roles.contains(&p.role)).map(|p| p.id).collect();
        ids.sort_unstable();
        ids
    }

    /// Voters of the (new, when joint) configuration, in increasing order
    /// (raft-rs keeps them in a hash set).
    pub fn voter_ids(&self) -> Vec<PeerId> {
        self.ids_with(&[PeerRole::Voter, PeerRole::IncomingVoter])
    }

    /// Voters of the old configuration while the region is joint; empty otherwise.
    pub fn outgoing_voter_ids(&self) -> Vec<PeerId> {
        if self.is_joint() {
            self.ids_with(&[PeerRole::Voter, PeerRole::DemotingVoter])
        } else {
            Vec::new()
        }
    }

    pub fn learner_ids(&self) -> Vec<PeerId> {
        self.ids_with(&[PeerRole::Learner])
    }

    /// Voters that become learners when the joint change ends.
    pub fn learner_next_ids(&self) -> Vec<PeerId> {
        self.ids_with(&[PeerRole::DemotingVoter])
    }

    /// True while a joint membership change is half done.
    pub fn is_joint(&self) -> bool {
        self.peers.iter().any(|p| matches!(p.role, PeerRole::IncomingVoter | PeerRole::DemotingVoter))
    }

    /// Replicas that vote (in either configuration while joint).
    pub fn voter_count(&self) -> usize {
        self.peers.iter().filter(|p| p.role != PeerRole::Learner).count()
    }

    /// True if the two ranges share any key.
    pub fn overlaps(&self, other: &Region) -> bool {
        let self_ends_before = !self.end_key.is_empty() && self.end_key <= other.start_key;
        let other_ends_before = !other.end_key.is_empty() && other.end_key <= self.start_key;
        !self_ends_before && !other_ends_before
    }
}

/// Splits the key space into `n` regions at the given split keys, each replicated
/// on `stores` (peer ids allocated from `next_id`): how a cluster bootstraps before
/// PD can split regions itself.
pub fn presplit_regions(split_keys: &[Vec<u8>], stores: &[StoreId], replicas: usize, next_id: &mut u64) -> Vec<Region> {
    let mut bounds: Vec<Vec<u8>> = vec![Vec::new()];
    bounds.extend(split_keys.iter().cloned());
    bounds.push(Vec::new());
    let mut regions = Vec::new();
    for (i, pair) in bounds.windows(2).enumerate() {
        let id = *next_id;
        *next_id += 1;
        let peers = (0..replicas.min(stores.len()))
            .map(|r| {
                let peer = Peer::voter(*next_id, stores[(i + r) % stores.len()]);
                *next_id += 1;
                peer
            })
            .collect();
        regions.push(Region { id, start_key: pair[0].clone(), end_key: pair[1].clone(), epoch: RegionEpoch::new(1, 1), peers });
    }
    regions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TiKV's table: data commands check version, membership changes conf_ver,
    /// splits both, log compaction neither; admission wants equality, apply
    /// only refuses what is older.
    #[test]
    fn epoch_checks_compare_only_the_parts_asked_for() {
        let current = RegionEpoch::new(3, 7);
        let (data, conf, both, none) = ((true, false), (false, true), (true, true), (false, false));
        assert!(RegionEpoch::new(1, 7).matches(&current, data), "a membership change does not concern data");
        assert!(!RegionEpoch::new(3, 6).matches(&current, data));
        assert!(!RegionEpoch::new(3, 8).matches(&current, data), "a newer epoch than the replica's is refused too");
        assert!(!RegionEpoch::new(2, 7).matches(&current, conf));
        assert!(!RegionEpoch::new(3, 6).matches(&current, both) && RegionEpoch::new(3, 7).matches(&current, both));
        assert!(RegionEpoch::new(0, 0).matches(&current, none));
        assert!(RegionEpoch::new(3, 6).is_stale_for(&current, data));
        assert!(!RegionEpoch::new(1, 7).is_stale_for(&current, data));
        assert!(RegionEpoch::new(2, 9).is_stale_for(&current, conf));
        assert!(!RegionEpoch::new(3, 8).is_stale_for(&current, both), "newer is not stale");
        assert!(!RegionEpoch::new(0, 0).is_stale_for(&current, none));
    }

    #[test]
    fn presplit_covers_the_key_space_without_overlap() {
        let mut next_id = 1;
        let regions = presplit_regions(&[b"b".to_vec(), b"m".to_vec()], &[1, 2, 3, 4], 3, &mut next_id);
        assert_eq!(regions.len(), 3);
        assert!(regions[0].contains(b"") && regions[0].contains(b"a") && !regions[0].contains(b"b"));
        assert!(regions[2].contains(b"\xff\xff") && !regions[2].contains(b"l"));
        for (i, a) in regions.iter().enumerate() {
            assert_eq!(a.peers.len(), 3);
            let mut stores: Vec<_> = a.peers.iter().map(|p| p.store_id).collect();
            stores.dedup();
            assert_eq!(stores.len(), 3, "replicas on distinct stores");
            for b in &regions[i + 1..] {
                assert!(!a.overlaps(b));
            }
        }
        assert_eq!(next_id, 13, "ids are never reused");
    }
}
