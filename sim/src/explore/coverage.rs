//! Coverage of behaviour: what a run made the cluster do, abstracted into a
//! set of short text items that guided exploration ([`super`]) compares
//! across runs. It is built from what a run already records — the stores'
//! events, PD's events, the plan's fault spans, the buggify sites that fired
//! and what clients were told — never from store internals, and it is a
//! `BTreeSet`, so one run gives one set.
//!
//! The families (each item starts with its family's name):
//!
//! - `path:a>b>c` — three consecutive **steps of one region**, across all
//!   its replicas in the order they happened. A step is an event abstracted
//!   to its kind and the little that matters about it: an election (`lead`,
//!   `lead-again` when the same store wins again, `+` when the term jumped
//!   by more than one), a membership change proposed or applied, joint or
//!   simple configurations, a split (`split` for the region that split,
//!   `born` for a region it made), a snapshot built, taken, resumed or
//!   refused (with the refusal's reason), log compaction, a lease read,
//!   hibernation, a peer created or removed, a damaged replica and its
//!   repair, a write applied under a newer epoch than it was proposed at.
//!   Repeats of one step collapse into one. Data applies and votes are not
//!   steps: they are most of the events and say nothing the elections do
//!   not; nor are log compaction, hibernation and lease reads, which recur
//!   between any two other steps (they still count in `during`). A region
//!   with fewer than three steps gives its whole path.
//! - `during:fault:step` — a step that happened while a fault of that kind
//!   was active (from the plan's spans; a crash's span is the time the
//!   store is down).
//! - `overlap:a+b` — two kinds of fault active at once.
//! - `buggify:site:n` — a buggify site (or crash point) fired `n` times,
//!   bucketed as 1, 2-9, 10+.
//! - `pd:...` — PD restarted, took a region report by each route, started
//!   and ended an operator of each kind, finished or not.
//! - `client:workload:what` — what clients were told: each call's outcome
//!   kind, and each distinct error, its numbers blanked (`region # not
//!   found`), cut at its first colon.
//!
//! The cost is one pass over the run's events and records; the testbed's
//! `bench-explore` prints what it adds to a run's CPU time.

use crate::checker::registry::Records;
use crate::cluster::TimedEvent;
use crate::history::{Call, History, Outcome};
use crate::nemesis::{Fault, Plan};
use simkv::pd::events::PdEvent;
use simkv::raftstore::StoreEvent;
use std::collections::{BTreeMap, BTreeSet};

/// The calling thread's CPU time, by raw syscall: inside a simulation, madsim
/// answers `clock_gettime` (and so `Instant::now`) with simulated time, which
/// does not move while code computes. Used only to measure; never read by
/// anything a run decides.
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: the syscall writes one timespec into `ts`, which outlives it.
    let rc = unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_THREAD_CPUTIME_ID, &mut ts as *mut libc::timespec) };
    if rc != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A run's coverage: its items, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    pub items: BTreeSet<String>,
}

impl Coverage {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The family an item belongs to (the text before its first `:`).
    pub fn family(item: &str) -> &str {
        item.split(':').next().unwrap_or(item)
    }

    /// One item per line, for a corpus file.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for item in &self.items {
            out.push_str(item);
            out.push('\n');
        }
        out
    }

    pub fn from_text(text: &str) -> Coverage {
        Coverage { items: text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect() }
    }
}

/// The coverage of a run from what it recorded.
pub fn of(plan: &Plan, events: &[TimedEvent], history: &History, records: &Records, buggify: &BTreeMap<String, u64>) -> Coverage {
    let mut items = BTreeSet::new();
    let spans = spans(plan);
    region_paths(events, &spans, &mut items);
    for (i, (a, from_a, to_a)) in spans.iter().enumerate() {
        for (b, from_b, to_b) in &spans[i + 1..] {
            if from_a < to_b && from_b < to_a {
                let (x, y) = if a <= b { (a, b) } else { (b, a) };
                items.insert(format!("overlap:{x}+{y}"));
            }
        }
    }
    for (site, &n) in buggify {
        if n > 0 {
            items.insert(format!("buggify:{site}:{}", bucket(n)));
        }
    }
    pd(records, &mut items);
    clients(history, records, &mut items);
    Coverage { items }
}

/// Each fault's kind and span (ms).
fn spans(plan: &Plan) -> Vec<(&'static str, u64, u64)> {
    plan.faults.iter().map(|f| (kind_name(&f.fault), f.at_ms, f.at_ms + f.duration_ms)).collect()
}

fn kind_name(fault: &Fault) -> &'static str {
    fault.kind().name()
}

fn bucket(n: u64) -> &'static str {
    match n {
        0 => "0",
        1 => "1",
        2..=9 => "2-9",
        _ => "10+",
    }
}

/// What the region's path remembers between its steps.
#[derive(Default)]
struct RegionState {
    steps: Vec<&'static str>,
    term: u64,
    leader_store: Option<u64>,
}

/// The region each step belongs to, and the step (`None`: not a step).
fn step(event: &StoreEvent, state: &BTreeMap<u64, RegionState>) -> Vec<(u64, &'static str)> {
    use StoreEvent::*;
    match event {
        BecameLeader { store_id, region_id, term, .. } => {
            let known = state.get(region_id);
            let jumped = known.is_some_and(|r| *term > r.term + 1);
            let again = known.and_then(|r| r.leader_store) == Some(*store_id);
            let step = match (again, jumped) {
                (false, false) => "lead",
                (false, true) => "lead+",
                (true, false) => "lead-again",
                (true, true) => "lead-again+",
            };
            vec![(*region_id, step)]
        }
        Hibernated { region_id, .. } => vec![(*region_id, "hibernate")],
        Woke { region_id, .. } => vec![(*region_id, "wake")],
        Applied { region_id, write_epochs: Some((proposed, applied)), .. } if proposed != applied => vec![(*region_id, "apply-newer-epoch")],
        SnapshotGenerated { region_id, .. } => vec![(*region_id, "snap-built")],
        SnapshotApplying { region_id, .. } => vec![(*region_id, "snap-taken")],
        SnapshotResumed { region_id, .. } => vec![(*region_id, "snap-resumed")],
        SnapshotRejected { region_id, reason, .. } => vec![(*region_id, rejected(reason))],
        LogCompacted { region_id, .. } => vec![(*region_id, "compact")],
        LeaseRead { region_id, .. } => vec![(*region_id, "lease-read")],
        PeerCreated { region, .. } => vec![(region.id, "peer-created")],
        PeerDestroyed { region_id, .. } => vec![(*region_id, "peer-removed")],
        ConfChangeProposed { region_id, .. } => vec![(*region_id, "cc-proposed")],
        ConfChangeApplied { region, .. } => vec![(region.id, "cc-applied")],
        RaftConfig { region_id, outgoing, .. } => vec![(*region_id, if outgoing.is_empty() { "config-simple" } else { "config-joint" })],
        Split { regions, .. } => {
            let mut out = vec![(regions[0].id, "split")];
            out.extend(regions[1..].iter().map(|r| (r.id, "born")));
            out
        }
        DataCorrupted { region_id, .. } => vec![(*region_id, "damaged")],
        DataRepaired { region_id, .. } => vec![(*region_id, "repaired")],
        Applied { .. } | SnapshotApplied { .. } | LeaseServed { .. } | Voted { .. } => vec![],
    }
}

/// A refused snapshot's step names its reason (a `&'static str` of the store's).
fn rejected(reason: &str) -> &'static str {
    match reason {
        r if r.contains("stale") => "snap-refused-stale",
        r if r.contains("overlap") => "snap-refused-overlap",
        r if r.contains("applying") => "snap-refused-busy",
        _ => "snap-refused",
    }
}

/// Steps left out of a region's path: they recur all run (between any two
/// other steps), so their n-grams would say more about timing than about
/// what the region went through.
fn routine(step: &str) -> bool {
    matches!(step, "compact" | "hibernate" | "wake" | "lease-read")
}

/// Steps worth naming with the faults active when they happened.
fn notable(step: &str) -> bool {
    step.starts_with("lead") || step.starts_with("cc-") || step.starts_with("snap-") || matches!(step, "split" | "lease-read" | "damaged" | "peer-removed")
}

fn region_paths(events: &[TimedEvent], spans: &[(&'static str, u64, u64)], items: &mut BTreeSet<String>) {
    let mut regions: BTreeMap<u64, RegionState> = BTreeMap::new();
    let mut during = BTreeSet::new();
    for e in events {
        for (region, step) in step(&e.event, &regions) {
            let at = e.at.as_millis() as u64;
            let r = regions.entry(region).or_default();
            if let StoreEvent::BecameLeader { store_id, term, .. } = &e.event {
                r.term = *term;
                r.leader_store = Some(*store_id);
            }
            if notable(step) {
                during.extend(spans.iter().filter(|(_, from, to)| *from <= at && at < *to).map(|(kind, _, _)| (*kind, step)));
            }
            if routine(step) || r.steps.last() == Some(&step) {
                continue;
            }
            r.steps.push(step);
        }
    }
    items.extend(during.into_iter().map(|(kind, step)| format!("during:{kind}:{step}")));
    for r in regions.values() {
        if r.steps.len() < 3 {
            items.insert(format!("path:{}", r.steps.join(">")));
        }
        for w in r.steps.windows(3) {
            items.insert(format!("path:{}>{}>{}", w[0], w[1], w[2]));
        }
    }
}

fn pd(records: &Records, items: &mut BTreeSet<String>) {
    let mut opened = 0;
    for (_, e) in &records.pd_events {
        match e {
            PdEvent::Opened { .. } => {
                opened += 1;
                if opened > 1 {
                    items.insert("pd:restarted".into());
                }
            }
            PdEvent::RegionAccepted { via, .. } => {
                items.insert(format!("pd:accepted-by:{via:?}"));
            }
            PdEvent::OperatorStarted { what, .. } => {
                items.insert(format!("pd:operator-started:{}", what.split([' ', '(', ':']).next().unwrap_or(what)));
            }
            PdEvent::OperatorEnded { kind, finished, .. } => {
                items.insert(format!("pd:operator-{}:{kind}", if *finished { "finished" } else { "abandoned" }));
            }
            PdEvent::TsHandedOut { .. } | PdEvent::IdsHandedOut { .. } | PdEvent::Routed { .. } => {}
        }
    }
}

/// An error's kind: its text before the first colon, numbers blanked.
fn error_kind(text: &str) -> String {
    let head = text.split(':').next().unwrap_or(text);
    let mut out = String::new();
    let mut in_number = false;
    for c in head.chars().take(60) {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out.trim().to_string()
}

fn clients(history: &History, records: &Records, items: &mut BTreeSet<String>) {
    use crate::workload::bank::history::BankOutcome;
    use crate::workload::list_append::history::TxnOutcome;
    use crate::workload::table::history::TableOutcome;
    for op in &history.ops {
        let call = match op.call {
            Call::Read => "read",
            Call::Write(_) => "write",
            Call::Cas(..) => "cas",
            Call::Append(_) => "append",
            Call::Delete => "delete",
        };
        let outcome = match op.outcome {
            Outcome::Read(None) => "read-nothing",
            Outcome::Read(Some(_)) => "read-value",
            Outcome::Done => "done",
            Outcome::CasOk => "cas-ok",
            Outcome::CasFailed => "cas-failed",
            Outcome::Unknown => "unknown",
            Outcome::Failed => "failed",
        };
        items.insert(format!("client:register:{call}:{outcome}"));
    }
    for op in &records.bank {
        match &op.outcome {
            BankOutcome::Ok => items.insert("client:bank:committed".into()),
            BankOutcome::Read(_) => items.insert("client:bank:read".into()),
            BankOutcome::Fail(why) => items.insert(format!("client:bank:fail:{}", error_kind(why))),
            BankOutcome::Info(why) => items.insert(format!("client:bank:unknown:{}", error_kind(why))),
        };
    }
    for op in &records.table {
        match &op.outcome {
            TableOutcome::Ok => items.insert("client:table:committed".into()),
            TableOutcome::Checked { .. } => items.insert("client:table:checked".into()),
            TableOutcome::Fail(why) => items.insert(format!("client:table:fail:{}", error_kind(why))),
            TableOutcome::Info(why) => items.insert(format!("client:table:unknown:{}", error_kind(why))),
        };
    }
    for t in &records.list_append {
        let outcome = match t.outcome {
            TxnOutcome::Ok => "committed",
            TxnOutcome::Fail => "fail",
            TxnOutcome::Info => "unknown",
        };
        match &t.error {
            Some(why) => items.insert(format!("client:txn:{outcome}:{}", error_kind(why))),
            None => items.insert(format!("client:txn:{outcome}")),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_abstracted_to_their_kind() {
        assert_eq!(error_kind("region 1012 not found: epoch 3"), "region # not found");
        assert_eq!(error_kind("timed out"), "timed out");
    }

    #[test]
    fn coverage_round_trips_through_its_file() {
        let c = Coverage { items: ["path:lead>split>born", "client:bank:committed"].into_iter().map(String::from).collect() };
        assert_eq!(Coverage::from_text(&c.to_text()), c);
        assert_eq!(Coverage::family("path:lead>split>born"), "path");
    }
}
