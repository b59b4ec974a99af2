//! A promise of speed, checked like one of safety: on a healthy cluster with
//! lease reads on, a leader serves reads on its lease, not with a ReadIndex
//! round each.
//!
//! A lease that is never valid (or always expired) is safe — every read
//! takes the ReadIndex path — so no safety checker can see it; only what the
//! reads cost changes. This rule sees it: at least half of the reads clients
//! completed must have been admitted on a lease (`StoreEvent::LeaseRead`).
//! It only holds where nothing disturbs the leaders, so scenarios switch it
//! on where that is so (`[checkers] lease_path = true`, off by default).

use crate::history::{History, Outcome};
use simkv::raftstore::StoreEvent;

/// The share of completed reads that must be lease reads.
pub const MIN_SHARE: f64 = 0.5;

/// Fewer completed reads than this say nothing about the path reads take.
pub const MIN_READS: usize = 20;

/// What the rule found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Enough reads, and enough of them on a lease.
    Kept,
    /// Too few of the reads were on a lease.
    Broken(String),
    /// Too few reads completed to judge (inconclusive, never a pass).
    TooFewReads(usize),
}

pub fn check(history: &History, events: &[StoreEvent]) -> Found {
    let reads = history.ops.iter().filter(|op| matches!(op.outcome, Outcome::Read(_))).count();
    let on_lease = events.iter().filter(|e| matches!(e, StoreEvent::LeaseRead { .. })).count();
    if reads < MIN_READS {
        return Found::TooFewReads(reads);
    }
    let share = on_lease as f64 / reads as f64;
    if share >= MIN_SHARE {
        return Found::Kept;
    }
    Found::Broken(format!(
        "leaders serve reads on their lease: {on_lease} of {reads} completed reads ({:.0}%) were admitted on a lease, under the {:.0}% a healthy cluster with lease reads on serves that way (the rest took a ReadIndex round each)",
        share * 100.0,
        MIN_SHARE * 100.0
    ))
}

/// This checker in the registry ([`super::registry::ALL`]).
pub struct Rule;

impl super::registry::Check for Rule {
    fn name(&self) -> super::Checker {
        super::Checker::LeasePath
    }

    fn applies(&self, scenario: &crate::scenario::Scenario) -> bool {
        scenario.checkers.lease_path && scenario.cluster.lease_reads
    }

    fn check(&self, run: &super::registry::Inputs) -> super::registry::Verdict {
        use super::registry::Verdict;
        match check(run.history, run.events) {
            Found::Kept => Verdict::Pass,
            Found::Broken(explanation) => Verdict::of(Some(explanation)),
            Found::TooFewReads(reads) => Verdict::Inconclusive(format!(
                "only {reads} reads completed, under the {MIN_READS} it takes to tell which path reads take: the run says nothing of the lease path"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Call, Clock, Initial, Operation};

    fn history(reads: usize) -> History {
        let ops = (0..reads)
            .map(|i| Operation {
                process: 0,
                key: "k".into(),
                call: Call::Read,
                outcome: Outcome::Read(None),
                invoke: i as u64 * 10,
                complete: Some(i as u64 * 10 + 5),
            })
            .collect();
        History { initial: Initial::Absent, clock: Clock::Nanos, ops, lines: Vec::new(), skipped_lines: 0 }
    }

    fn lease_reads(n: usize) -> Vec<StoreEvent> {
        (0..n).map(|i| StoreEvent::LeaseRead { store_id: 1, region_id: 1, peer_id: 1, term: 2, read_id: i as u64 }).collect()
    }

    #[test]
    fn reads_on_the_lease_pass_and_reads_without_it_fail() {
        assert_eq!(check(&history(100), &lease_reads(90)), Found::Kept);
        let Found::Broken(text) = check(&history(100), &lease_reads(10)) else { panic!("a lease never used is seen") };
        assert!(text.contains("10 of 100 completed reads (10%)"), "{text}");
        assert_eq!(check(&history(5), &[]), Found::TooFewReads(5), "too few reads to judge, and that is not a pass");
    }
}
