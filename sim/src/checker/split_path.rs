//! A promise of growth, checked like one of safety: a region that holds more
//! keys than the split threshold is split.
//!
//! A store that never splits, or splits too late, loses nothing and breaks
//! no history: every region just grows. No safety checker can see it (the
//! mutants of `raftstore/split_check.rs` that measure nothing survived every
//! campaign). This rule sees it: at the end of the run, after the liveness
//! phase, no region holds more of the history's keys than the threshold
//! (`split_region_keys`) lets it, counting the keys whose final read found a
//! value. The key set of a register workload is fixed early in the run, so
//! by then every region has had many split checks to split.
//! Scenarios with a split threshold switch it on (`[checkers] split_path =
//! true`, off by default).

use crate::history::{History, Outcome};
use crate::topology::Topology;
use crate::workload::FINAL_PROCESS;
use simkv::raftstore::StoreEvent;

/// What the rule found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Every region holds at most the threshold's keys.
    Kept,
    /// A region holds more (the explanation names it and its keys).
    Broken(String),
    /// No final read found a key (a run cut short): nothing to judge, and
    /// that is not a pass.
    NoFinalReads,
}

/// The keys of the final reads that found a value, and the final regions
/// (from the store events), against `threshold` keys per region.
pub fn check(history: &History, events: &[StoreEvent], threshold: u64) -> Found {
    // In key order, each once (a key read twice counts once).
    let present: std::collections::BTreeSet<&str> =
        history.ops.iter().filter(|op| op.process == FINAL_PROCESS && matches!(op.outcome, Outcome::Read(Some(_)))).map(|op| op.key.as_str()).collect();
    if present.is_empty() {
        return Found::NoFinalReads;
    }
    let regions = Topology::from_events(events).regions_in_order();
    for region in &regions {
        let held: Vec<&str> = present.iter().copied().filter(|k| region.contains(&simkv::codec::keys::raw_key(k.as_bytes()))).collect();
        if held.len() as u64 > threshold {
            const SHOWN: usize = 8;
            let more = if held.len() > SHOWN { format!(" and {} more", held.len() - SHOWN) } else { String::new() };
            return Found::Broken(format!(
                "region {} {} holds {} keys at the end of the run ({}{more}), over the split threshold of {threshold}: it was not split (of {} regions, {} keys present)",
                region.id,
                super::key_range(region),
                held.len(),
                held[..held.len().min(SHOWN)].join(", "),
                regions.len(),
                present.len()
            ));
        }
    }
    Found::Kept
}

/// This checker in the registry ([`super::registry::ALL`]).
pub struct Rule;

impl super::registry::Check for Rule {
    fn name(&self) -> super::Checker {
        super::Checker::SplitPath
    }

    fn applies(&self, scenario: &crate::scenario::Scenario) -> bool {
        scenario.checkers.split_path && scenario.cluster.split_region_keys > 0
    }

    fn check(&self, run: &super::registry::Inputs) -> super::registry::Verdict {
        use super::registry::Verdict;
        match check(run.history, run.events, run.scenario.cluster.split_region_keys) {
            Found::Kept => Verdict::Pass,
            Found::Broken(explanation) => Verdict::of(Some(explanation)),
            Found::NoFinalReads => Verdict::Inconclusive("no final read found a key: the run says nothing of how its regions split".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Call, Clock, Initial, Operation};
    use simkv::meta::{Peer, Region, RegionEpoch};

    /// Final reads that found `keys`.
    fn final_reads(keys: &[&str]) -> History {
        let ops = keys
            .iter()
            .enumerate()
            .map(|(i, k)| Operation {
                process: FINAL_PROCESS,
                key: k.to_string(),
                call: Call::Read,
                outcome: Outcome::Read(Some("1".into())),
                invoke: i as u64 * 10,
                complete: Some(i as u64 * 10 + 5),
            })
            .collect();
        History { initial: Initial::Absent, clock: Clock::Nanos, ops, lines: Vec::new(), skipped_lines: 0 }
    }

    fn region(id: u64, start: &str, end: &str, version: u64) -> Region {
        let raw = |k: &str| if k.is_empty() { vec![] } else { simkv::codec::keys::raw_key(k.as_bytes()) };
        Region { id, start_key: raw(start), end_key: raw(end), epoch: RegionEpoch { conf_ver: 1, version }, peers: vec![Peer::voter(id * 10, 1)] }
    }

    /// The store events of one region created, then split at `splits`.
    fn events(splits: &[&str]) -> Vec<StoreEvent> {
        let whole = region(1, "", "", 1);
        let mut events = vec![StoreEvent::PeerCreated { store_id: 1, region: whole, peer_id: 10, applied_index: 0 }];
        let mut bounds = vec![""];
        bounds.extend(splits);
        bounds.push("");
        if !splits.is_empty() {
            let regions = bounds.windows(2).enumerate().map(|(i, w)| region(i as u64 + 1, w[0], w[1], 2)).collect();
            events.push(StoreEvent::Split { store_id: 1, regions, index: 5 });
        }
        events
    }

    #[test]
    fn regions_within_the_threshold_pass_and_a_region_never_split_fails() {
        let keys = ["a", "b", "c", "d", "e", "f"];
        let many: Vec<String> = (0..12).map(|i| format!("k{i:02}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let Found::Broken(text) = check(&final_reads(&many), &events(&[]), 2) else { panic!("a region that never split is seen") };
        assert!(text.contains("(k00, k01, k02, k03, k04, k05, k06, k07 and 4 more)"), "{text}");
        assert_eq!(check(&final_reads(&keys), &events(&["c", "e"]), 2), Found::Kept);
        let Found::Broken(text) = check(&final_reads(&keys), &events(&[]), 2) else { panic!("a region that never split is seen") };
        assert!(text.contains("holds 6 keys") && text.contains("over the split threshold of 2"), "{text}");
        let Found::Broken(text) = check(&final_reads(&keys), &events(&["e"]), 2) else { panic!("a region split too little is seen") };
        assert!(text.contains("holds 4 keys at the end of the run (a, b, c, d)"), "{text}");
        assert_eq!(check(&final_reads(&[]), &events(&[]), 2), Found::NoFinalReads, "nothing to judge, and that is not a pass");
    }
}
