//! Membership-change correctness, from the facts stores report
//! ([`StoreEvent`]s), never from their internals:
//!
//! - **a configuration takes effect when its entry is applied**: the voters and
//!   learners raft-rs counts votes and acknowledgements by on a peer
//!   (`RaftConfig`) are always those of the region descriptor that peer last
//!   applied (created with, changed by an applied `ChangePeer`, installed by a
//!   snapshot, or split into), never those of a change merely proposed;
//! - **one pending membership change per region**: a leader proposes a change
//!   that commits only once its store has applied every earlier change of the
//!   region (every committed change at a lower index);
//! - **epochs only grow**: on every replica, a region's `conf_ver` and
//!   `version` never go back;
//! - **no peer comes back from its tombstone**: once a store destroyed peer `p`,
//!   nothing on that store acts as `p` again (created, voting, applying, leading
//!   or counting a configuration).
//!
//! That no two regions overlap on a store, and that each region ends with its
//! replica count on distinct stores as PD sees it, is the `regions` checker's.

use simkv::meta::{PeerId, Region, RegionEpoch, RegionId, StoreId};
use simkv::raftstore::StoreEvent;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

type Conf = (Vec<PeerId>, Vec<PeerId>, Vec<PeerId>);

fn conf_of(region: &Region) -> Conf {
    (region.voter_ids(), region.outgoing_voter_ids(), region.learner_ids())
}

fn show(conf: &Conf) -> String {
    if conf.1.is_empty() {
        format!("voters {:?}, learners {:?}", conf.0, conf.2)
    } else {
        format!("voters {:?} (joint with {:?}), learners {:?}", conf.0, conf.1, conf.2)
    }
}

type Epochs = BTreeMap<(StoreId, RegionId), RegionEpoch>;

/// A replica's region descriptor changed to `region`: its configuration now
/// counts, and its epoch must not have gone back.
fn learn(store: StoreId, region: &Region, confs: &mut BTreeMap<(StoreId, RegionId), Conf>, epochs: &mut Epochs, note: &mut dyn FnMut(&'static str, String)) {
    if region.peers.is_empty() {
        return; // a peer that knows no region yet
    }
    confs.insert((store, region.id), conf_of(region));
    let key = (store, region.id);
    if let Some(old) = epochs.get(&key) {
        if region.epoch.conf_ver < old.conf_ver || region.epoch.version < old.version {
            note("epochs only grow", format!("store {store} went from region {} at {old} back to {}", region.id, region.epoch));
        }
    }
    epochs.insert(key, region.epoch);
}

/// Checks `events` (in the order they happened); `None` when every rule holds,
/// otherwise every broken rule (the first few of each kind).
pub fn check(events: &[StoreEvent]) -> Option<String> {
    check_marked(events).map(|(text, _)| text)
}

/// [`check`], with the positions in `events` of the events that broke a rule
/// (what the HTML timeline marks).
pub fn check_marked(events: &[StoreEvent]) -> Option<(String, Vec<usize>)> {
    // Pass 1: every membership change that was committed (applied anywhere),
    // and every entry that was, by (region, index, term).
    let mut committed: BTreeMap<RegionId, BTreeSet<u64>> = BTreeMap::new();
    let mut entries: BTreeSet<(RegionId, u64, u64)> = BTreeSet::new();
    for event in events {
        match event {
            StoreEvent::ConfChangeApplied { region, index, .. } => drop(committed.entry(region.id).or_default().insert(*index)),
            StoreEvent::Applied { region_id, index, term, .. } => drop(entries.insert((*region_id, *index, *term))),
            _ => {}
        }
    }
    let mut applied_conf: BTreeMap<(StoreId, RegionId), Conf> = BTreeMap::new();
    let mut epochs: Epochs = BTreeMap::new();
    // Per (store, region): conf-change indexes applied, and the highest index a snapshot covered.
    let mut applied_cc: BTreeMap<(StoreId, RegionId), (BTreeSet<u64>, u64)> = BTreeMap::new();
    let mut dead: BTreeMap<StoreId, BTreeSet<PeerId>> = BTreeMap::new();
    let mut broken: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let current = std::cell::Cell::new(0usize);
    let mut marks: Vec<usize> = Vec::new();
    let mut note = |rule: &'static str, text: String| {
        broken.entry(rule).or_default().push(text);
        if marks.last() != Some(&current.get()) {
            marks.push(current.get());
        }
    };

    for (at, event) in events.iter().enumerate() {
        current.set(at);
        let alive = |store: StoreId, peer: PeerId, what: &str, note: &mut dyn FnMut(&'static str, String)| {
            if dead.get(&store).is_some_and(|d| d.contains(&peer)) {
                note("no peer comes back from its tombstone", format!("store {store}: peer {peer} was destroyed, then {what}"));
            }
        };
        match event {
            StoreEvent::PeerCreated { store_id, region, peer_id, applied_index } => {
                alive(*store_id, *peer_id, "was created again", &mut note);
                if region.peers.is_empty() {
                    applied_conf.insert((*store_id, region.id), (vec![], vec![], vec![]));
                }
                learn(*store_id, region, &mut applied_conf, &mut epochs, &mut note);
                // Its durable state covers everything up to its applied index.
                let progress = applied_cc.entry((*store_id, region.id)).or_default();
                progress.1 = progress.1.max(*applied_index);
            }
            StoreEvent::ConfChangeApplied { store_id, region, index } => {
                learn(*store_id, region, &mut applied_conf, &mut epochs, &mut note);
                applied_cc.entry((*store_id, region.id)).or_default().0.insert(*index);
            }
            StoreEvent::SnapshotApplying { store_id, region, index, .. }
            | StoreEvent::SnapshotApplied { store_id, region, index, .. }
            | StoreEvent::SnapshotResumed { store_id, region, index, .. } => {
                learn(*store_id, region, &mut applied_conf, &mut epochs, &mut note);
                let progress = applied_cc.entry((*store_id, region.id)).or_default();
                progress.1 = progress.1.max(*index);
            }
            StoreEvent::Split { store_id, regions, .. } => regions.iter().for_each(|r| learn(*store_id, r, &mut applied_conf, &mut epochs, &mut note)),
            StoreEvent::RaftConfig { store_id, region_id, peer_id, voters, outgoing, learners } => {
                alive(*store_id, *peer_id, "counted votes by a configuration", &mut note);
                let using = (voters.clone(), outgoing.clone(), learners.clone());
                let applied = applied_conf.get(&(*store_id, *region_id)).cloned().unwrap_or_default();
                if using != applied {
                    note(
                        "a configuration takes effect when its entry is applied",
                        format!(
                            "store {store_id}, peer {peer_id} of region {region_id} counts votes and acknowledgements by {} but has applied {}",
                            show(&using),
                            show(&applied)
                        ),
                    );
                }
            }
            // A proposal that never committed changed nothing (the entries
            // before it in the proposer's log may not have, either).
            StoreEvent::ConfChangeProposed { store_id, region_id, peer_id, index, term } if entries.contains(&(*region_id, *index, *term)) => {
                let (done, snapshot) = applied_cc.get(&(*store_id, *region_id)).cloned().unwrap_or_default();
                let unapplied: Vec<u64> =
                    committed.get(region_id).into_iter().flatten().filter(|&&j| j < *index && j > snapshot && !done.contains(&j)).copied().collect();
                if !unapplied.is_empty() {
                    note(
                        "one pending membership change per region",
                        format!("store {store_id}, peer {peer_id} proposed a change of region {region_id} at index {index} while the change(s) at {unapplied:?} were not applied on it"),
                    );
                }
            }
            StoreEvent::PeerDestroyed { store_id, peer_id, region_id } => {
                dead.entry(*store_id).or_default().insert(*peer_id);
                applied_conf.remove(&(*store_id, *region_id));
                epochs.remove(&(*store_id, *region_id));
                applied_cc.remove(&(*store_id, *region_id));
            }
            StoreEvent::Voted { store_id, peer_id, term, .. } => alive(*store_id, *peer_id, &format!("voted in term {term}"), &mut note),
            StoreEvent::BecameLeader { store_id, peer_id, term, .. } => alive(*store_id, *peer_id, &format!("became leader in term {term}"), &mut note),
            StoreEvent::Applied { store_id, peer_id, index, .. } => alive(*store_id, *peer_id, &format!("applied index {index}"), &mut note),
            _ => {}
        }
    }
    if broken.is_empty() {
        return None;
    }
    let mut out = String::new();
    for (rule, cases) in &broken {
        let _ = writeln!(out, "  {rule}: {}", cases[0]);
        for case in cases.iter().skip(1).take(4) {
            let _ = writeln!(out, "    also: {case}");
        }
        if cases.len() > 5 {
            let _ = writeln!(out, "    ... and {} more", cases.len() - 5);
        }
    }
    Some((out.trim_end().to_string(), marks))
}

/// This checker in the registry ([`super::registry::ALL`]).
pub struct Rule;

impl super::registry::Check for Rule {
    fn name(&self) -> super::Checker {
        super::Checker::Membership
    }

    fn applies(&self, scenario: &crate::scenario::Scenario) -> bool {
        scenario.checkers.membership
    }

    fn check(&self, run: &super::registry::Inputs) -> super::registry::Verdict {
        super::registry::Verdict::marked(check_marked(run.events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simkv::meta::Peer;

    fn region(conf_ver: u64, stores: &[u64]) -> Region {
        Region {
            id: 1,
            start_key: vec![],
            end_key: vec![],
            epoch: RegionEpoch::new(conf_ver, 1),
            peers: stores.iter().map(|&s| Peer::voter(10 + s, s)).collect(),
        }
    }

    fn created(store: u64, r: &Region) -> StoreEvent {
        StoreEvent::PeerCreated { store_id: store, region: r.clone(), peer_id: 10 + store, applied_index: 5 }
    }

    fn config(store: u64, voters: &[u64]) -> StoreEvent {
        StoreEvent::RaftConfig { store_id: store, region_id: 1, peer_id: 10 + store, voters: voters.to_vec(), outgoing: vec![], learners: vec![] }
    }

    fn proposed(store: u64, index: u64) -> StoreEvent {
        StoreEvent::ConfChangeProposed { store_id: store, region_id: 1, peer_id: 10 + store, index, term: 6 }
    }

    fn applied(store: u64, r: &Region, index: u64) -> StoreEvent {
        StoreEvent::ConfChangeApplied { store_id: store, region: r.clone(), index }
    }

    fn entry(store: u64, index: u64) -> StoreEvent {
        StoreEvent::Applied { store_id: store, region_id: 1, peer_id: 10 + store, index, term: 6, digest: 0, write_epochs: None }
    }

    #[test]
    fn a_change_used_after_its_apply_passes() {
        let (before, after) = (region(1, &[1, 2, 3]), region(2, &[1, 2, 3, 4]));
        let events = vec![
            created(1, &before),
            proposed(1, 7),
            applied(1, &after, 7),
            config(1, &[11, 12, 13, 14]),
            proposed(1, 9),
            applied(1, &region(3, &[1, 2, 4]), 9),
        ];
        assert_eq!(check(&events), None);
    }

    #[test]
    fn a_configuration_used_before_its_apply_is_named() {
        let before = region(1, &[1, 2, 3]);
        let events = vec![created(1, &before), proposed(1, 7), config(1, &[11, 12, 13, 14]), applied(1, &region(2, &[1, 2, 3, 4]), 7)];
        let e = check(&events).unwrap();
        assert!(e.contains("a configuration takes effect when its entry is applied: store 1, peer 11 of region 1 counts votes"), "{e}");
        assert!(e.contains("has applied voters [11, 12, 13]"), "{e}");
    }

    #[test]
    fn a_second_pending_change_is_named() {
        let before = region(1, &[1, 2, 3]);
        let mut events =
            vec![created(1, &before), proposed(1, 7), proposed(1, 8), applied(1, &region(2, &[1, 2, 3, 4]), 7), applied(2, &region(2, &[1, 2, 3, 4]), 7)];
        assert_eq!(check(&events), None, "the second proposal never committed");
        events.push(entry(2, 8));
        let e = check(&events).unwrap();
        assert!(
            e.contains("one pending membership change per region: store 1, peer 11 proposed a change of region 1 at index 8 while the change(s) at [7]"),
            "{e}"
        );
        // A change covered by a snapshot counts as applied.
        let snap = StoreEvent::SnapshotApplying { store_id: 1, region_id: 1, index: 7, region: region(2, &[1, 2, 3, 4]) };
        assert_eq!(check(&[created(1, &before), snap, proposed(1, 8), applied(2, &region(2, &[1, 2, 3, 4]), 7), entry(2, 8)]), None);
    }

    #[test]
    fn epochs_going_back_and_peers_back_from_the_dead_are_named() {
        let (r1, r2) = (region(1, &[1, 2, 3]), region(2, &[1, 2, 3]));
        let e = check(&[created(1, &r2), applied(1, &r1, 9)]).unwrap();
        assert!(e.contains("epochs only grow: store 1 went from region 1 at conf_ver=2 version=1 back to conf_ver=1 version=1"), "{e}");
        let destroyed = StoreEvent::PeerDestroyed { store_id: 3, region_id: 1, peer_id: 13 };
        let vote = StoreEvent::Voted { store_id: 3, region_id: 1, peer_id: 13, term: 9, candidate: 11 };
        let e = check(&[created(3, &r1), destroyed.clone(), vote]).unwrap();
        assert!(e.contains("no peer comes back from its tombstone: store 3: peer 13 was destroyed, then voted in term 9"), "{e}");
        // A new peer id on the same store is a new peer.
        let fresh = StoreEvent::Voted { store_id: 3, region_id: 1, peer_id: 23, term: 9, candidate: 11 };
        assert_eq!(check(&[created(3, &r1), destroyed, fresh]), None);
    }
}
