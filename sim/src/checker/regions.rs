//! Regions after the liveness phase: no two regions on any store overlap; the
//! regions tile the key space with no gap; every region has its replica count,
//! each replica at the region's newest epoch; and PD's routing table equals
//! what the stores applied.

use simkv::meta::{Region, RegionId, StoreId};
use std::collections::BTreeMap;

/// What is compared.
pub struct RegionViews<'a> {
    /// Each store's regions as it applied them.
    pub stores: &'a BTreeMap<StoreId, BTreeMap<RegionId, Region>>,
    /// The newest descriptor of each region, over all stores.
    pub newest: &'a BTreeMap<RegionId, Region>,
    /// PD's routing table.
    pub pd: &'a [Region],
    pub replicas: usize,
}

fn show(r: &Region) -> String {
    format!("region {} {} at {}", r.id, super::key_range(r), r.epoch)
}

/// `None` when every rule holds; otherwise the first broken one.
pub fn check(views: &RegionViews) -> Option<String> {
    for (store, regions) in views.stores {
        let mut sorted: Vec<&Region> = regions.values().collect();
        sorted.sort_by(|a, b| a.start_key.cmp(&b.start_key));
        if let Some(pair) = sorted.windows(2).find(|w| w[0].overlaps(w[1])) {
            return Some(format!("store {store} holds overlapping regions: {} and {}", show(pair[0]), show(pair[1])));
        }
    }
    let mut tiles: Vec<&Region> = views.newest.values().collect();
    tiles.sort_by(|a, b| a.start_key.cmp(&b.start_key));
    let mut expected_start: &[u8] = &[];
    for region in &tiles {
        if region.start_key != expected_start {
            return Some(format!("the regions do not tile the key space: {} starts where the previous one does not end", show(region)));
        }
        if region.end_key.is_empty() && !std::ptr::eq(*region, *tiles.last().unwrap()) {
            return Some(format!("the regions do not tile the key space: {} ends the key space but others follow", show(region)));
        }
        expected_start = &region.end_key;
    }
    if !tiles.last().is_some_and(|r| r.end_key.is_empty()) {
        return Some("the regions do not tile the key space: nothing reaches its end".into());
    }
    for region in &tiles {
        let mut stores: Vec<StoreId> = region.peers.iter().map(|p| p.store_id).collect();
        stores.sort();
        stores.dedup();
        if region.peers.len() != views.replicas || stores.len() != views.replicas || region.voter_count() != views.replicas || region.is_joint() {
            return Some(format!(
                "{} has {} peers ({} voting) on {} stores, not {} voters",
                show(region),
                region.peers.len(),
                region.voter_count(),
                stores.len(),
                views.replicas
            ));
        }
        for store in stores {
            match views.stores.get(&store).and_then(|r| r.get(&region.id)) {
                Some(applied) if applied.epoch == region.epoch && applied.start_key == region.start_key && applied.end_key == region.end_key => {}
                Some(applied) => return Some(format!("store {store} holds {} but the region is now {}", show(applied), show(region))),
                None => return Some(format!("store {store} has no peer of {}", show(region))),
            }
        }
    }
    for (store, regions) in views.stores {
        for held in regions.values() {
            if let Some(region) = views.newest.get(&held.id) {
                if region.peer_on_store(*store).is_none() {
                    return Some(format!("store {store} still holds a peer of {}, which no longer has a replica there", show(region)));
                }
            }
        }
    }
    let pd: BTreeMap<RegionId, &Region> = views.pd.iter().map(|r| (r.id, r)).collect();
    for region in &tiles {
        match pd.get(&region.id) {
            Some(known) if known.epoch == region.epoch && known.start_key == region.start_key && known.end_key == region.end_key => {}
            Some(known) => return Some(format!("PD knows {} but the stores applied {}", show(known), show(region))),
            None => return Some(format!("PD does not know {}", show(region))),
        }
    }
    if let Some(extra) = views.pd.iter().find(|r| !views.newest.contains_key(&r.id)) {
        return Some(format!("PD knows {}, which no store reports", show(extra)));
    }
    None
}

/// Placement after healing: every store holds a replica of some region, and,
/// when there are at least as many regions as stores, leads one. `leaders`
/// gives the store leading each region.
pub fn check_spread(newest: &BTreeMap<RegionId, Region>, leaders: &BTreeMap<RegionId, StoreId>, stores: &[StoreId]) -> Option<String> {
    for &store in stores {
        let held = newest.values().filter(|r| r.peer_on_store(store).is_some()).count();
        if held == 0 {
            return Some(format!("store {store} holds no region (of {})", newest.len()));
        }
        let led = leaders.values().filter(|&&s| s == store).count();
        if led == 0 && newest.len() >= stores.len() {
            return Some(format!("store {store} leads none of {} regions", newest.len()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use simkv::meta::{Peer, RegionEpoch};

    fn region(id: u64, start: &str, end: &str, version: u64) -> Region {
        let key = |k: &str| if k.is_empty() { vec![] } else { simkv::codec::keys::raw_key(k.as_bytes()) };
        Region {
            id,
            start_key: key(start),
            end_key: key(end),
            epoch: RegionEpoch::new(1, version),
            peers: (1..=3).map(|s| Peer::voter(id * 10 + s, s)).collect(),
        }
    }

    fn views_of(regions: &[Region]) -> (BTreeMap<StoreId, BTreeMap<RegionId, Region>>, BTreeMap<RegionId, Region>) {
        let newest: BTreeMap<RegionId, Region> = regions.iter().map(|r| (r.id, r.clone())).collect();
        let stores = (1..=3).map(|s| (s, newest.clone())).collect();
        (stores, newest)
    }

    fn views<'a>(stores: &'a BTreeMap<StoreId, BTreeMap<RegionId, Region>>, newest: &'a BTreeMap<RegionId, Region>, pd: &'a [Region]) -> RegionViews<'a> {
        RegionViews { stores, newest, pd, replicas: 3 }
    }

    #[test]
    fn spread_wants_every_store_to_hold_and_lead() {
        let regions: BTreeMap<RegionId, Region> = [region(1, "", "m", 2), region(2, "m", "", 2)].into_iter().map(|r| (r.id, r)).collect();
        let leaders: BTreeMap<RegionId, StoreId> = [(1, 1), (2, 2)].into_iter().collect();
        assert_eq!(check_spread(&regions, &leaders, &[1, 2, 3]), None, "fewer regions than stores: leading is not asked");
        assert_eq!(check_spread(&regions, &leaders, &[1, 2, 3, 4]).unwrap(), "store 4 holds no region (of 2)");
        assert_eq!(check_spread(&regions, &leaders, &[1, 2]), None);
        let one_leader: BTreeMap<RegionId, StoreId> = [(1, 1), (2, 1)].into_iter().collect();
        assert_eq!(check_spread(&regions, &one_leader, &[1, 2]).unwrap(), "store 2 leads none of 2 regions");
    }

    #[test]
    fn a_clean_layout_passes_and_each_rule_is_named() {
        let regions = [region(1, "", "m", 2), region(2, "m", "", 2)];
        let (mut stores, newest) = views_of(&regions);
        assert_eq!(check(&views(&stores, &newest, &regions)), None);
        // PD lags behind the split.
        let stale_pd = [region(1, "", "", 1)];
        assert!(check(&views(&stores, &newest, &stale_pd)).unwrap().starts_with("PD knows region 1"));
        // A gap.
        let (gap_stores, gap) = views_of(&[region(1, "", "k", 2), region(2, "m", "", 2)]);
        assert!(check(&views(&gap_stores, &gap, &regions)).unwrap().contains("do not tile"));
        // A store that never applied the split still holds the whole range.
        stores.get_mut(&2).unwrap().insert(1, region(1, "", "", 1));
        assert_eq!(
            check(&views(&stores, &newest, &regions)).unwrap(),
            "store 2 holds overlapping regions: region 1 [-∞, +∞) at conf_ver=1 version=1 and region 2 [\"m\", +∞) at conf_ver=1 version=2"
        );
        stores.get_mut(&2).unwrap().remove(&2);
        assert!(check(&views(&stores, &newest, &regions)).unwrap().starts_with("store 2 holds region 1"));
        // A store removed from a region that still holds its peer.
        let (mut stores, _) = views_of(&regions);
        stores.entry(4).or_default().insert(2, regions[1].clone());
        assert!(check(&views(&stores, &newest, &regions)).unwrap().starts_with("store 4 still holds a peer of region 2"));
        // A learner left behind, and a joint configuration, are not the replica count.
        let mut with_learner = regions.clone();
        with_learner[1].peers.push(simkv::meta::Peer { id: 99, store_id: 4, role: simkv::meta::PeerRole::Learner });
        let (stores, newest) = views_of(&with_learner);
        assert!(check(&views(&stores, &newest, &with_learner)).unwrap().contains("has 4 peers (3 voting)"));
        let mut joint = regions.clone();
        joint[1].peers[0].role = simkv::meta::PeerRole::DemotingVoter;
        let (stores, newest) = views_of(&joint);
        assert!(check(&views(&stores, &newest, &joint)).unwrap().contains("not 3 voters"));
    }
}
