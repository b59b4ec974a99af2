//! Raft safety, from the facts stores report ([`StoreEvent`]s), never from their
//! internals:
//!
//! - **election safety**: at most one leader per term per region;
//! - **lease safety**: a leader serves a read on its lease (without a ReadIndex
//!   round) only while no leader of a newer term has been elected;
//! - **lease safety across splits**: a lease read is answered from a region's
//!   state at version `v` only if no region at a later version covering some
//!   of the same keys (split off it since) had elected a leader before the
//!   read was admitted — that leader may have acknowledged writes the read
//!   would miss. Regions are related by key range, not by id: after a split
//!   the keys have another region;
//! - **one vote per term**: a peer grants its vote in a region's term to one
//!   candidate only, across restarts (a vote forgotten in a crash and given again
//!   is a bug even when it does not produce two leaders);
//! - **log matching / state machine safety**: an entry applied at an index is the
//!   same entry (term and contents) on every replica and at every time — a store
//!   that crashed and re-applies must re-apply the same thing;
//! - **apply at most once, skip only by snapshot**: each replica applies the
//!   indexes after its durable applied index one by one; after a restart it
//!   continues from the applied index its durable state holds (reported when the
//!   peer is created), which is never beyond what it had applied. Applying an
//!   index that the durable state already covers, or jumping over indexes except
//!   by a snapshot, is a bug even where idempotent commands hide it;
//! - **apply-time epoch check**: a data write takes effect only if the region's
//!   version did not move between its proposal and its apply (else its keys may
//!   have left the region);
//! - **a split bumps the version**: the regions a split leaves are all at a
//!   version above the one the region had before it;
//! - **ids are never reused**: every region and peer id a split creates is
//!   created by that split only (PD hands out each id once, restarts included).

use simkv::raftstore::StoreEvent;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Where one replica's applying stands.
#[derive(Default)]
struct ApplyProgress {
    /// The index it must apply next, once known.
    next: Option<u64>,
    /// The highest index its state could have reached: applied or being
    /// written by a snapshot.
    high: u64,
}

/// Checks `events` (in the order they happened); `None` when every rule holds,
/// otherwise a description of every broken rule (the first few of each kind).
pub fn check(events: &[StoreEvent]) -> Option<String> {
    check_marked(events).map(|(text, _)| text)
}

/// [`check`], with the positions in `events` of the events that broke a rule
/// (what the HTML timeline marks).
pub fn check_marked(events: &[StoreEvent]) -> Option<(String, Vec<usize>)> {
    let mut leaders: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    // The newest term a leader was elected in, per region, and where.
    let mut newest_leader: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut votes: BTreeMap<(u64, u64, u64), u64> = BTreeMap::new();
    let mut applied: BTreeMap<(u64, u64), (u64, u64, u64)> = BTreeMap::new();
    let mut progress: BTreeMap<(u64, u64), ApplyProgress> = BTreeMap::new();
    // The epoch each store last reported for each region.
    let mut epochs: BTreeMap<(u64, u64), simkv::meta::RegionEpoch> = BTreeMap::new();
    // Which split (parent region, index) created each region and peer id.
    let mut created_by: BTreeMap<(&'static str, u64), (u64, u64)> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut marks = Vec::new();
    for (at, event) in events.iter().enumerate() {
        let before = problems.len();
        match *event {
            StoreEvent::LeaseRead { store_id, region_id, term, .. } => {
                // (Across splits: see `lease_across_splits`.)
                if let Some(&(newer, by)) = newest_leader.get(&region_id).filter(|(t, _)| *t > term) {
                    problems.push(format!(
                        "lease reads only while no newer leader exists: store {store_id} served a read of region {region_id} on its term-{term} lease after store {by} became leader in term {newer} (a read that may miss that leader's writes)"
                    ));
                }
            }
            StoreEvent::BecameLeader { store_id, region_id, term, .. } => {
                if newest_leader.get(&region_id).is_none_or(|(t, _)| term > *t) {
                    newest_leader.insert(region_id, (term, store_id));
                }
                if let Some(&other) = leaders.get(&(region_id, term)) {
                    if other != store_id {
                        problems.push(format!("election safety: region {region_id} has two leaders in term {term}: store {other} and store {store_id}"));
                    }
                } else {
                    leaders.insert((region_id, term), store_id);
                }
            }
            StoreEvent::Voted { store_id, region_id, peer_id, term, candidate } => match votes.get(&(region_id, peer_id, term)) {
                Some(&first) if first != candidate => problems.push(format!(
                    "one vote per term: store {store_id} voted in term {term} of region {region_id} for peer {first}, then for peer {candidate}"
                )),
                Some(_) => {}
                None => {
                    votes.insert((region_id, peer_id, term), candidate);
                }
            },
            StoreEvent::PeerDestroyed { store_id, region_id, .. } => {
                // A later peer of the region on this store is a new replica.
                progress.remove(&(store_id, region_id));
                epochs.remove(&(store_id, region_id));
            }
            StoreEvent::Split { store_id, ref regions, index } => {
                if let (Some(derived), Some(before)) = (regions.first(), regions.first().and_then(|r| epochs.get(&(store_id, r.id)))) {
                    if let Some(unbumped) = regions.iter().find(|r| r.epoch.version <= before.version) {
                        problems.push(format!(
                            "a split bumps the version: store {store_id} split region {} at index {index}, and region {} is at version {}, not above the {} it was split from",
                            derived.id, unbumped.id, unbumped.epoch.version, before.version
                        ));
                    }
                }
                for r in regions {
                    epochs.insert((store_id, r.id), r.epoch);
                }
                let parent = regions.first().map_or(0, |r| r.id);
                for r in regions.iter().skip(1) {
                    let ids = std::iter::once(("region", r.id)).chain(r.peers.iter().map(|p| ("peer", p.id)));
                    for (kind, id) in ids {
                        match created_by.get(&(kind, id)) {
                            Some(&(p, i)) if (p, i) != (parent, index) => problems.push(format!(
                                "ids are never reused: {kind} id {id} was created by the split of region {p} at index {i} and again by the split of region {parent} at index {index}"
                            )),
                            Some(_) => {}
                            None => {
                                created_by.insert((kind, id), (parent, index));
                            }
                        }
                    }
                }
            }
            // A peer that knows no region yet (created by a message) has
            // applied nothing and says nothing about where it will start.
            StoreEvent::PeerCreated { applied_index: 0, .. } => {}
            StoreEvent::PeerCreated { store_id, ref region, applied_index, .. } => {
                epochs.insert((store_id, region.id), region.epoch);
                let p = progress.entry((store_id, region.id)).or_default();
                if p.next.is_some() && applied_index > p.high {
                    problems.push(format!(
                        "apply at most once: store {store_id} restarted region {} at applied index {applied_index}, beyond the {} it had applied",
                        region.id, p.high
                    ));
                }
                p.next = Some(applied_index + 1);
                p.high = p.high.max(applied_index);
            }
            StoreEvent::SnapshotApplying { store_id, region_id, index, .. } => {
                let p = progress.entry((store_id, region_id)).or_default();
                p.high = p.high.max(index);
            }
            StoreEvent::SnapshotApplied { store_id, region_id, index, ref region, .. }
            | StoreEvent::SnapshotResumed { store_id, region_id, index, ref region } => {
                epochs.insert((store_id, region_id), region.epoch);
                let p = progress.entry((store_id, region_id)).or_default();
                p.next = Some(index + 1);
                p.high = p.high.max(index);
            }
            StoreEvent::Applied { store_id, region_id, index, term, digest, write_epochs, .. } => {
                if let Some((proposed, at)) = write_epochs {
                    if proposed.version < at.version {
                        problems.push(format!(
                            "apply-time epoch check: store {store_id} applied a write at index {index} of region {region_id} proposed at version {}, after the region moved to version {}: its keys may no longer be the region's",
                            proposed.version, at.version
                        ));
                    }
                }
                let p = progress.entry((store_id, region_id)).or_default();
                match p.next {
                    Some(next) if index < next => problems.push(format!(
                        "apply at most once: store {store_id} applied index {index} of region {region_id} again (its state already covered up to {})",
                        next - 1
                    )),
                    Some(next) if index > next => problems.push(format!(
                        "apply at most once: store {store_id} jumped from index {} to {index} of region {region_id} without a snapshot",
                        next - 1
                    )),
                    _ => {}
                }
                p.next = Some(index + 1);
                p.high = p.high.max(index);
                match applied.get(&(region_id, index)) {
                    Some(&(first_store, first_term, first_digest)) if (first_term, first_digest) != (term, digest) => {
                        problems.push(format!(
                            "state machine safety: region {region_id} index {index}: store {first_store} applied an entry of term {first_term} (digest {first_digest:016x}), store {store_id} applied one of term {term} (digest {digest:016x})"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        applied.insert((region_id, index), (store_id, term, digest));
                    }
                }
            }
            _ => {}
        }
        if problems.len() > before {
            marks.push(at);
        }
    }
    for (at, problem) in lease_across_splits(events) {
        problems.push(problem);
        marks.push(at);
    }
    if problems.is_empty() {
        return None;
    }
    let mut out = String::new();
    for p in problems.iter().take(5) {
        let _ = writeln!(out, "{p}");
    }
    if problems.len() > 5 {
        let _ = writeln!(out, "... and {} more", problems.len() - 5);
    }
    Some((out.trim_end().to_string(), marks))
}

/// The lease-across-splits rule (see the module docs): each broken case
/// with the position of the read's answer in `events`.
fn lease_across_splits(events: &[StoreEvent]) -> Vec<(usize, String)> {
    use simkv::meta::Region;
    // Each store's view of each region: keys and version, as last reported.
    let mut regions: BTreeMap<(u64, u64), Region> = BTreeMap::new();
    // Every election, with the region as the new leader's store knew it.
    let mut elected: Vec<(usize, u64, Region)> = Vec::new();
    // Where each lease read was admitted, by (store, region, read id).
    let mut admitted: BTreeMap<(u64, u64, u64), usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for (at, event) in events.iter().enumerate() {
        match event {
            StoreEvent::PeerCreated { store_id, region, .. }
            | StoreEvent::ConfChangeApplied { store_id, region, .. }
            | StoreEvent::SnapshotApplied { store_id, region, .. }
            | StoreEvent::SnapshotResumed { store_id, region, .. } => {
                regions.insert((*store_id, region.id), region.clone());
            }
            StoreEvent::Split { store_id, regions: split, .. } => {
                for r in split {
                    regions.insert((*store_id, r.id), r.clone());
                }
            }
            StoreEvent::PeerDestroyed { store_id, region_id, .. } => {
                regions.remove(&(*store_id, *region_id));
            }
            StoreEvent::BecameLeader { store_id, region_id, .. } => {
                if let Some(region) = regions.get(&(*store_id, *region_id)) {
                    elected.push((at, *store_id, region.clone()));
                }
            }
            StoreEvent::LeaseRead { store_id, region_id, read_id, .. } => {
                admitted.insert((*store_id, *region_id, *read_id), at);
            }
            StoreEvent::LeaseServed { store_id, region_id, read_id, version, .. } => {
                let (Some(since), Some(reader)) = (admitted.remove(&(*store_id, *region_id, *read_id)), regions.get(&(*store_id, *region_id))) else {
                    continue;
                };
                let newer = elected.iter().find(|(when, _, r)| *when < since && r.id != reader.id && r.epoch.version > *version && r.overlaps(reader));
                if let Some((_, leader_store, newer)) = newer {
                    problems.push((
                        at,
                        format!(
                            "lease reads across splits: store {store_id} answered a lease read from region {region_id} at version {version} (keys {}), admitted after region {} at version {} (keys {}, split off it since) had elected a leader on store {leader_store}: the read may miss that leader's writes",
                            super::key_range(reader),
                            newer.id,
                            newer.epoch.version,
                            super::key_range(newer)
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    problems
}

/// This checker in the registry ([`super::registry::ALL`]).
pub struct Rule;

impl super::registry::Check for Rule {
    fn name(&self) -> super::Checker {
        super::Checker::Raft
    }

    fn applies(&self, scenario: &crate::scenario::Scenario) -> bool {
        scenario.checkers.raft
    }

    fn check(&self, run: &super::registry::Inputs) -> super::registry::Verdict {
        super::registry::Verdict::marked(check_marked(run.events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(store_id: u64, term: u64) -> StoreEvent {
        StoreEvent::BecameLeader { store_id, region_id: 1, peer_id: store_id, term }
    }

    fn applied(store_id: u64, index: u64, term: u64, digest: u64) -> StoreEvent {
        StoreEvent::Applied { store_id, region_id: 1, peer_id: store_id, index, term, digest, write_epochs: None }
    }

    #[test]
    fn a_clean_run_passes() {
        let events = [leader(1, 6), applied(1, 7, 6, 9), applied(2, 7, 6, 9), leader(2, 7), leader(2, 7), created(1, 6), applied(1, 7, 6, 9)];
        assert_eq!(check(&events), None);
    }

    #[test]
    fn a_lease_read_missing_a_split_off_regions_leader_is_caught() {
        use simkv::meta::{Peer, Region, RegionEpoch};
        let region = |id, start: &str, end: &str, version| Region {
            id,
            start_key: start.into(),
            end_key: end.into(),
            epoch: RegionEpoch::new(1, version),
            peers: vec![Peer::voter(id * 10, 1)],
        };
        let created = |store_id, r: Region| StoreEvent::PeerCreated { store_id, peer_id: r.id * 10 + store_id, region: r, applied_index: 5 };
        let setup = vec![
            created(1, region(1, "", "", 1)),
            created(2, region(1, "", "", 1)),
            StoreEvent::Split { store_id: 2, regions: vec![region(1, "", "m", 2), region(2, "m", "", 2)], index: 9 },
            created(2, region(2, "m", "", 2)),
        ];
        let elected = StoreEvent::BecameLeader { store_id: 2, region_id: 2, peer_id: 22, term: 6 };
        let admitted = StoreEvent::LeaseRead { store_id: 1, region_id: 1, peer_id: 11, term: 5, read_id: 7 };
        let served = StoreEvent::LeaseServed { store_id: 1, region_id: 1, peer_id: 11, read_id: 7, version: 1 };
        let mut late = setup.clone();
        late.extend([elected.clone(), admitted.clone(), served.clone()]);
        let text = check(&late).unwrap();
        assert!(text.starts_with("lease reads across splits: store 1 answered a lease read from region 1 at version 1 (keys [-∞, +∞)), admitted after region 2 at version 2 (keys [\"m\", +∞)"), "{text}");
        // Admitted before the new region had a leader: concurrent with its writes.
        let mut early = setup;
        early.extend([admitted, elected, served]);
        assert_eq!(check(&early), None);
    }

    #[test]
    fn two_leaders_in_one_term_are_caught() {
        let explanation = check(&[leader(1, 6), leader(3, 6)]).unwrap();
        assert_eq!(explanation, "election safety: region 1 has two leaders in term 6: store 1 and store 3");
    }

    #[test]
    fn a_lease_read_after_a_newer_leader_is_caught() {
        let read = |store_id, term| StoreEvent::LeaseRead { store_id, region_id: 1, peer_id: store_id, term, read_id: 0 };
        assert_eq!(check(&[leader(1, 6), read(1, 6), leader(2, 7), read(2, 7)]), None);
        let explanation = check(&[leader(1, 6), leader(2, 7), read(1, 6)]).unwrap();
        assert_eq!(
            explanation,
            "lease reads only while no newer leader exists: store 1 served a read of region 1 on its term-6 lease after store 2 became leader in term 7 (a read that may miss that leader's writes)"
        );
    }

    fn created(store_id: u64, applied_index: u64) -> StoreEvent {
        let region = simkv::meta::Region { id: 1, start_key: vec![], end_key: vec![], epoch: simkv::meta::RegionEpoch::new(1, 1), peers: vec![] };
        StoreEvent::PeerCreated { store_id, region, peer_id: store_id, applied_index }
    }

    fn voted(store_id: u64, term: u64, candidate: u64) -> StoreEvent {
        StoreEvent::Voted { store_id, region_id: 1, peer_id: store_id, term, candidate }
    }

    #[test]
    fn a_second_vote_in_one_term_is_caught_even_across_a_restart() {
        assert_eq!(check(&[voted(2, 6, 1), voted(2, 6, 1), voted(2, 7, 3), voted(3, 6, 1)]), None, "the same vote again, or a new term, is fine");
        let explanation = check(&[voted(2, 6, 1), created(2, 5), voted(2, 6, 3)]).unwrap();
        assert_eq!(explanation, "one vote per term: store 2 voted in term 6 of region 1 for peer 1, then for peer 3");
    }

    #[test]
    fn replicas_apply_each_index_once_and_skip_only_by_snapshot() {
        let region = simkv::meta::Region { id: 1, start_key: vec![], end_key: vec![], epoch: simkv::meta::RegionEpoch::new(1, 1), peers: vec![] };
        let snapshot = StoreEvent::SnapshotApplied { store_id: 1, region_id: 1, index: 20, bytes: 0, took: std::time::Duration::ZERO, region };
        // Applies 6..=8, loses 8 in a crash (durable state at 7), re-applies 8, then catches up by snapshot.
        let clean = [
            created(1, 5),
            applied(1, 6, 6, 1),
            applied(1, 7, 6, 2),
            applied(1, 8, 6, 3),
            created(1, 7),
            applied(1, 8, 6, 3),
            snapshot.clone(),
            applied(1, 21, 6, 4),
        ];
        assert_eq!(check(&clean), None);
        let again = check(&[created(1, 5), applied(1, 6, 6, 1), applied(1, 7, 6, 2), created(1, 7), applied(1, 6, 6, 1)]).unwrap();
        assert_eq!(again, "apply at most once: store 1 applied index 6 of region 1 again (its state already covered up to 7)");
        let skipped = check(&[created(1, 5), applied(1, 6, 6, 1), applied(1, 9, 6, 2)]).unwrap();
        assert_eq!(skipped, "apply at most once: store 1 jumped from index 6 to 9 of region 1 without a snapshot");
        let phantom = check(&[created(1, 5), applied(1, 6, 6, 1), created(1, 9)]).unwrap();
        assert_eq!(phantom, "apply at most once: store 1 restarted region 1 at applied index 9, beyond the 6 it had applied");
    }

    #[test]
    fn splits_must_bump_the_version_and_stale_writes_must_not_take_effect() {
        use simkv::meta::{Region, RegionEpoch};
        let region = |id, version| Region { id, start_key: vec![], end_key: vec![], epoch: RegionEpoch::new(1, version), peers: vec![] };
        let split = |version| StoreEvent::Split { store_id: 1, regions: vec![region(1, version), region(2, version)], index: 9 };
        let created = StoreEvent::PeerCreated { store_id: 1, region: region(1, 1), peer_id: 1, applied_index: 5 };
        assert_eq!(check(&[created.clone(), split(2)]), None);
        let kept = check(&[created, split(1)]).unwrap();
        assert_eq!(kept, "a split bumps the version: store 1 split region 1 at index 9, and region 1 is at version 1, not above the 1 it was split from");
        let stale = StoreEvent::Applied {
            store_id: 2,
            region_id: 1,
            peer_id: 2,
            index: 7,
            term: 6,
            digest: 1,
            write_epochs: Some((RegionEpoch::new(1, 1), RegionEpoch::new(1, 2))),
        };
        assert!(check(&[stale]).unwrap().starts_with("apply-time epoch check: store 2 applied a write at index 7 of region 1 proposed at version 1"));
    }

    #[test]
    fn an_id_two_splits_create_is_caught() {
        use simkv::meta::{Peer, Region, RegionEpoch};
        let region = |id: u64, peer: u64| Region { id, start_key: vec![], end_key: vec![], epoch: RegionEpoch::new(1, 2), peers: vec![Peer::voter(peer, 1)] };
        let split = |store_id, parent, index, child: u64, peer| StoreEvent::Split { store_id, regions: vec![region(parent, 1), region(child, peer)], index };
        // Every store reports the same split: fine.
        assert_eq!(check(&[split(1, 1, 9, 7, 70), split(2, 1, 9, 7, 70)]), None);
        let reused = check(&[split(1, 1, 9, 7, 70), split(1, 3, 12, 7, 71)]).unwrap();
        assert_eq!(reused, "ids are never reused: region id 7 was created by the split of region 1 at index 9 and again by the split of region 3 at index 12");
        assert!(check(&[split(1, 1, 9, 7, 70), split(1, 3, 12, 8, 70)]).unwrap().contains("peer id 70"));
    }

    #[test]
    fn a_changed_entry_is_caught() {
        let explanation = check(&[applied(1, 7, 6, 9), applied(2, 7, 7, 10)]).unwrap();
        assert!(explanation.starts_with("state machine safety: region 1 index 7"), "{explanation}");
    }
}
