//! PD's routing table: regions by id and by start key, with their leaders.
//!
//! Learned only from region heartbeats and split reports. A report older than
//! what PD knows of the same region (lower `version` or `conf_ver`) is refused;
//! a report that overlaps other regions replaces them when its `version` is at
//! least theirs (it came from a later split) and is refused otherwise.

use crate::meta::{Peer, Region, RegionId};
use crate::proto::PdError;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionEntry {
    pub region: Region,
    pub leader: Option<Peer>,
    /// The term the leader reported (a newer leader's heartbeat wins).
    pub term: u64,
    pub approximate_size: u64,
    pub approximate_keys: u64,
}

#[derive(Debug, Default)]
pub struct RoutingTable {
    regions: BTreeMap<RegionId, RegionEntry>,
    by_start: BTreeMap<Vec<u8>, RegionId>,
}

impl RoutingTable {
    /// Learns `entry` (see the module docs for what is refused).
    pub fn learn(&mut self, entry: RegionEntry) -> Result<(), PdError> {
        let region = &entry.region;
        if let Some(known) = self.regions.get(&region.id) {
            if region.epoch.is_stale_against(&known.region.epoch) {
                return Err(PdError::StaleRegion { region_id: region.id, message: format!("reported at {}, PD knows {}", region.epoch, known.region.epoch) });
            }
            if region.epoch == known.region.epoch && entry.term < known.term {
                // An older leader's heartbeat of the same region: keep the newer leader.
                return Ok(());
            }
        }
        let overlapping = self.overlapping(region);
        for id in &overlapping {
            let other = &self.regions[id].region;
            if other.epoch.version > region.epoch.version {
                return Err(PdError::StaleRegion {
                    region_id: region.id,
                    message: format!("overlaps region {} at a later version ({} > {})", other.id, other.epoch.version, region.epoch.version),
                });
            }
        }
        self.replace(entry, overlapping);
        Ok(())
    }

    /// The other regions that cover some of `region`'s keys.
    fn overlapping(&self, region: &Region) -> Vec<RegionId> {
        self.regions.values().filter(|e| e.region.id != region.id && e.region.overlaps(region)).map(|e| e.region.id).collect()
    }

    /// Puts `entry` in place of its older self and the regions `overlapping` it.
    fn replace(&mut self, entry: RegionEntry, overlapping: Vec<RegionId>) {
        for id in overlapping {
            self.remove(id);
        }
        self.remove(entry.region.id);
        self.by_start.insert(entry.region.start_key.clone(), entry.region.id);
        self.regions.insert(entry.region.id, entry);
    }

    /// Planted bug (simulation only): [`RoutingTable::learn`] without its
    /// checks: any report replaces what PD knows of its region and whatever
    /// it overlaps, however old it is.
    pub fn learn_unchecked(&mut self, entry: RegionEntry) -> Result<(), PdError> {
        let region = &entry.region;
        let overlapping = self.overlapping(region);
        self.replace(entry, overlapping);
        Ok(())
    }

    fn remove(&mut self, id: RegionId) {
        if let Some(old) = self.regions.remove(&id) {
            self.by_start.remove(&old.region.start_key);
        }
    }

    pub fn by_id(&self, id: RegionId) -> Option<&RegionEntry> {
        self.regions.get(&id)
    }

    pub fn by_key(&self, key: &[u8]) -> Option<&RegionEntry> {
        let (_, id) = self.by_start.range(..=key.to_vec()).next_back()?;
        self.regions.get(id).filter(|e| e.region.contains(key))
    }

    /// Up to `limit` regions in key order, from the one holding `start` on.
    pub fn scan(&self, start: &[u8], limit: usize) -> Vec<&RegionEntry> {
        let first = self.by_key(start).map(|e| e.region.start_key.clone()).unwrap_or_else(|| start.to_vec());
        self.by_start.range(first..).take(limit).filter_map(|(_, id)| self.regions.get(id)).collect()
    }

    pub fn len(&self) -> usize {
        self.regions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    pub fn regions(&self) -> impl Iterator<Item = &RegionEntry> {
        self.regions.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::RegionEpoch;

    fn entry(id: RegionId, start: &str, end: &str, conf_ver: u64, version: u64, term: u64) -> RegionEntry {
        let region =
            Region { id, start_key: start.into(), end_key: end.into(), epoch: RegionEpoch::new(conf_ver, version), peers: vec![Peer::voter(id * 10, 1)] };
        RegionEntry { leader: Some(region.peers[0]), region, term, approximate_size: 0, approximate_keys: 0 }
    }

    #[test]
    fn stale_reports_are_refused_and_splits_replace_their_parent() {
        let mut table = RoutingTable::default();
        table.learn(entry(1, "", "", 1, 1, 5)).unwrap();
        assert_eq!(table.by_key(b"q").unwrap().region.id, 1);
        // The split's left half (same id, newer version) and the new right half.
        table.learn(entry(2, "m", "", 1, 2, 5)).unwrap();
        assert_eq!(table.by_key(b"q").unwrap().region.id, 2);
        assert!(table.by_key(b"a").is_none(), "the parent was replaced: the left half is not known yet");
        table.learn(entry(1, "", "m", 1, 2, 5)).unwrap();
        assert_eq!(table.by_key(b"a").unwrap().region.id, 1);
        // The parent's old heartbeat arrives late: refused, nothing changes.
        assert!(matches!(table.learn(entry(1, "", "", 1, 1, 5)), Err(PdError::StaleRegion { region_id: 1, .. })));
        assert!(matches!(table.learn(entry(3, "", "z", 1, 1, 5)), Err(PdError::StaleRegion { region_id: 3, .. })), "overlaps newer regions");
        assert!(matches!(table.learn(entry(2, "m", "", 0, 2, 5)), Err(PdError::StaleRegion { .. })), "an older conf_ver");
        assert_eq!(table.len(), 2);
        assert_eq!(table.scan(b"b", 10).iter().map(|e| e.region.id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(table.scan(b"n", 10).iter().map(|e| e.region.id).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn a_newer_leader_wins_and_an_older_one_is_ignored() {
        let mut table = RoutingTable::default();
        table.learn(entry(1, "", "", 1, 1, 7)).unwrap();
        let mut old = entry(1, "", "", 1, 1, 6);
        old.leader = Some(Peer::voter(99, 3));
        table.learn(old).unwrap();
        assert_eq!(table.by_id(1).unwrap().term, 7);
        assert_eq!(table.by_id(1).unwrap().leader, Some(Peer::voter(10, 1)));
    }
}
