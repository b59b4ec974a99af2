//! Raft safety, from the facts stores report ([`StoreEvent`]s), never from their
//! internals:
//!
//! - **election safety**: at most one leader per term per region;
//! - **log matching / state machine safety**: an entry applied at an index is the
//!   same entry (term and contents) on every replica and at every time — a store
//!   that crashed and re-applies must re-apply the same thing.

use simkv::raftstore::StoreEvent;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Checks `events` (in the order they happened); `None` when every rule holds,
/// otherwise a description of every broken rule (the first few of each kind).
pub fn check(events: &[StoreEvent]) -> Option<String> {
    let mut leaders: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let mut applied: BTreeMap<(u64, u64), (u64, u64, u64)> = BTreeMap::new();
    let mut problems = Vec::new();
    for event in events {
        match *event {
            StoreEvent::BecameLeader { store_id, region_id, term, .. } => {
                if let Some(&other) = leaders.get(&(region_id, term)) {
                    if other != store_id {
                        problems.push(format!("election safety: region {region_id} has two leaders in term {term}: store {other} and store {store_id}"));
                    }
                } else {
                    leaders.insert((region_id, term), store_id);
                }
            }
            StoreEvent::Applied { store_id, region_id, index, term, digest, .. } => match applied.get(&(region_id, index)) {
                Some(&(first_store, first_term, first_digest)) if (first_term, first_digest) != (term, digest) => {
                    problems.push(format!(
                        "state machine safety: region {region_id} index {index}: store {first_store} applied an entry of term {first_term} (digest {first_digest:016x}), store {store_id} applied one of term {term} (digest {digest:016x})"
                    ));
                }
                Some(_) => {}
                None => {
                    applied.insert((region_id, index), (store_id, term, digest));
                }
            },
            _ => {}
        }
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
    Some(out.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(store_id: u64, term: u64) -> StoreEvent {
        StoreEvent::BecameLeader { store_id, region_id: 1, peer_id: store_id, term }
    }

    fn applied(store_id: u64, index: u64, term: u64, digest: u64) -> StoreEvent {
        StoreEvent::Applied { store_id, region_id: 1, peer_id: store_id, index, term, digest }
    }

    #[test]
    fn a_clean_run_passes() {
        let events = [leader(1, 6), applied(1, 7, 6, 9), applied(2, 7, 6, 9), leader(2, 7), leader(2, 7), applied(1, 7, 6, 9)];
        assert_eq!(check(&events), None);
    }

    #[test]
    fn two_leaders_in_one_term_are_caught() {
        let explanation = check(&[leader(1, 6), leader(3, 6)]).unwrap();
        assert_eq!(explanation, "election safety: region 1 has two leaders in term 6: store 1 and store 3");
    }

    #[test]
    fn a_changed_entry_is_caught() {
        let explanation = check(&[applied(1, 7, 6, 9), applied(2, 7, 7, 10)]).unwrap();
        assert!(explanation.starts_with("state machine safety: region 1 index 7"), "{explanation}");
    }
}
