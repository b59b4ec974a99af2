//! The cluster's layout as the stores report it: which regions exist (their
//! latest descriptors), where their replicas are, and who leads each.
//!
//! Learned only from store events (`PeerCreated`, `ConfChangeApplied`, `Split`,
//! `PeerDestroyed`, `BecameLeader`), never from the layout the cluster started
//! with, so faults, final reads and convergence follow regions that move and
//! split.

use simkv::meta::{Region, RegionId, StoreId};
use simkv::raftstore::StoreEvent;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// The newest descriptor reported for each region.
    pub regions: BTreeMap<RegionId, Region>,
    /// The store that most recently became leader of each region, with its term.
    pub leaders: BTreeMap<RegionId, (u64, StoreId)>,
    /// Each store's own regions, as it applied them.
    pub stores: BTreeMap<StoreId, BTreeMap<RegionId, Region>>,
}

impl Topology {
    /// Folds `events` (in the order they happened) into a topology.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a StoreEvent>) -> Topology {
        let mut t = Topology::default();
        // Peers destroyed and not created again since: a split this store
        // applies late does not bring them back (their tombstone wins).
        let mut removed: std::collections::BTreeSet<(StoreId, RegionId)> = Default::default();
        for event in events {
            match event {
                StoreEvent::PeerCreated { region, store_id, .. } => {
                    removed.remove(&(*store_id, region.id));
                    t.learn(region);
                    t.learn_on(*store_id, region);
                }
                StoreEvent::ConfChangeApplied { region, store_id, .. }
                | StoreEvent::SnapshotApplied { region, store_id, .. }
                | StoreEvent::SnapshotResumed { region, store_id, .. } => {
                    t.learn(region);
                    t.learn_on(*store_id, region);
                }
                StoreEvent::Split { regions, store_id, .. } => regions.iter().for_each(|r| {
                    t.learn(r);
                    if !removed.contains(&(*store_id, r.id)) {
                        t.learn_on(*store_id, r);
                    }
                }),
                StoreEvent::PeerDestroyed { store_id, region_id, .. } => {
                    removed.insert((*store_id, *region_id));
                    if let Some(regions) = t.stores.get_mut(store_id) {
                        regions.remove(region_id);
                    }
                }
                StoreEvent::BecameLeader { store_id, region_id, term, .. } => {
                    let newer = t.leaders.get(region_id).is_none_or(|(known, _)| term >= known);
                    if newer {
                        t.leaders.insert(*region_id, (*term, *store_id));
                    }
                }
                _ => {}
            }
        }
        t
    }

    /// Keeps `region` unless a newer epoch of it is known (a peer that knows
    /// no region yet reports none).
    fn learn(&mut self, region: &Region) {
        if region.peers.is_empty() {
            return;
        }
        let known = self.regions.get(&region.id);
        if known.is_none_or(|k| !region.epoch.is_stale_against(&k.epoch)) {
            self.regions.insert(region.id, region.clone());
        }
    }

    /// Keeps `region` as `store` holds it, unless it holds a newer epoch; a
    /// descriptor without the store means the store left the region.
    fn learn_on(&mut self, store: StoreId, region: &Region) {
        if region.peers.is_empty() {
            return;
        }
        let regions = self.stores.entry(store).or_default();
        if regions.get(&region.id).is_none_or(|k| !region.epoch.is_stale_against(&k.epoch)) {
            if region.peer_on_store(store).is_some() {
                regions.insert(region.id, region.clone());
            } else {
                // The store applied its own removal (its tombstone was written
                // with it, even if a crash came before `PeerDestroyed`).
                regions.remove(&region.id);
            }
        }
    }

    pub fn leader_of(&self, region_id: RegionId) -> Option<StoreId> {
        self.leaders.get(&region_id).map(|&(_, store)| store)
    }

    /// Regions in key order.
    pub fn regions_in_order(&self) -> Vec<Region> {
        let mut regions: Vec<Region> = self.regions.values().cloned().collect();
        regions.sort_by(|a, b| a.start_key.cmp(&b.start_key));
        regions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simkv::meta::{Peer, RegionEpoch};

    fn region(id: u64, start: &str, end: &str, version: u64, stores: &[u64]) -> Region {
        let peers = stores.iter().map(|&s| Peer::voter(id * 10 + s, s)).collect();
        Region { id, start_key: start.into(), end_key: end.into(), epoch: RegionEpoch::new(1, version), peers }
    }

    #[test]
    fn regions_follow_splits_and_leaders_follow_terms() {
        let created = |store, r: Region| StoreEvent::PeerCreated { store_id: store, peer_id: r.id * 10 + store, region: r, applied_index: 5 };
        let leader = |store, term| StoreEvent::BecameLeader { store_id: store, region_id: 1, peer_id: 10 + store, term };
        let events = vec![
            created(1, region(1, "", "", 1, &[1, 2, 3])),
            created(2, region(1, "", "", 1, &[1, 2, 3])),
            leader(2, 6),
            StoreEvent::Split { store_id: 2, regions: vec![region(1, "", "m", 2, &[1, 2, 3]), region(2, "m", "", 2, &[1, 2, 3])], index: 9 },
            // A restarted store that had not applied the split reports the old descriptor.
            created(3, region(1, "", "", 1, &[1, 2, 3])),
            leader(3, 5),
        ];
        let t = Topology::from_events(&events);
        assert_eq!(t.regions_in_order().iter().map(|r| (r.id, r.end_key.clone())).collect::<Vec<_>>(), vec![(1, b"m".to_vec()), (2, vec![])]);
        assert_eq!(t.leader_of(1), Some(2), "an older term's leader does not win");
        assert_eq!(t.leader_of(2), None);
    }

    /// A store that applied its own removal holds the region no more, even
    /// when a crash came before it reported the peer destroyed.
    #[test]
    fn a_store_leaves_a_region_when_it_applies_its_removal() {
        let before = region(1, "", "", 1, &[1, 2, 3]);
        let mut after = region(1, "", "", 1, &[2, 3]);
        after.epoch.conf_ver = 2;
        let created = |store| StoreEvent::PeerCreated { store_id: store, peer_id: 10 + store, region: before.clone(), applied_index: 5 };
        let t = Topology::from_events(&[created(1), created(2), StoreEvent::ConfChangeApplied { store_id: 1, region: after.clone(), index: 9 }]);
        assert!(!t.stores[&1].contains_key(&1));
        assert_eq!(t.regions[&1], after);
    }

    /// A store that applies a split late, after the new region's peer there
    /// was created by a message, removed and destroyed, does not hold it
    /// again: its tombstone wins (chaos-v2 seed 136, with late-split-apply).
    #[test]
    fn a_late_split_does_not_bring_back_a_destroyed_peer() {
        let new = region(2, "m", "", 2, &[1, 2, 3]);
        let events = [
            StoreEvent::PeerCreated { store_id: 3, peer_id: 23, region: new.clone(), applied_index: 5 },
            StoreEvent::PeerDestroyed { store_id: 3, region_id: 2, peer_id: 23 },
            StoreEvent::Split { store_id: 3, regions: vec![region(1, "", "m", 2, &[1, 2, 3]), new.clone()], index: 9 },
        ];
        let t = Topology::from_events(&events);
        assert!(!t.stores[&3].contains_key(&2) && t.stores[&3].contains_key(&1));
        // Created again (a new replica): held again.
        let mut again = events.to_vec();
        again.push(StoreEvent::PeerCreated { store_id: 3, peer_id: 33, region: new, applied_index: 5 });
        assert!(Topology::from_events(&again).stores[&3].contains_key(&2));
    }
}
