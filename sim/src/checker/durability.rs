//! Durability: after the liveness phase, a final read of every key (recorded in
//! the history by process `final_process`) must show that acknowledged writes
//! survived every crash — the key holds a value that some write put there
//! (acknowledged, or with an unknown outcome), never nothing once a write was
//! acknowledged (unless a delete took effect or may have), and never a value no
//! one wrote. It does not check that the final value is the *last* write:
//! the linearizability checker, which sees the final reads too, does that.

use crate::history::{Call, History, Operation, Outcome};
use std::collections::BTreeSet;

/// Every key whose writes were acknowledged reads back as a value some write
/// (acknowledged or unknown) put there, never as nothing (unless deleted) and
/// never as a value no one wrote.
pub fn check(history: &History, final_process: u64) -> Option<String> {
    let mut problems = Vec::new();
    for key in history.keys() {
        let ops: Vec<&Operation> = history.ops.iter().filter(|o| o.key == key).collect();
        let Some(last) = ops.iter().rev().find(|o| o.process == final_process) else { continue };
        let Outcome::Read(value) = &last.outcome else { continue };
        let written: BTreeSet<&str> = ops
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Done | Outcome::CasOk | Outcome::Unknown))
            .filter_map(|o| match &o.call {
                Call::Write(v) | Call::Cas(_, v) => Some(v.as_str()),
                _ => None,
            })
            .collect();
        let acknowledged = ops.iter().any(|o| o.process != final_process && matches!(o.outcome, Outcome::Done | Outcome::CasOk));
        // A delete that took effect (or may have) explains a key that holds nothing.
        let deleted = ops.iter().any(|o| o.call == Call::Delete && matches!(o.outcome, Outcome::Done | Outcome::Unknown));
        match value {
            None if acknowledged && !deleted => problems.push(format!("key {key:?}: writes were acknowledged, but it reads back as nothing after healing")),
            Some(v) if !written.contains(v.as_str()) => {
                let failed = ops.iter().find(|o| o.outcome == Outcome::Failed && matches!(&o.call, Call::Write(w) | Call::Cas(_, w) if w == v));
                problems.push(match failed {
                    Some(op) => format!(
                        "key {key:?}: reads back {v:?}, written only by an operation recorded as failed: {}; the history, not the store, may be what is wrong",
                        history.describe(op)
                    ),
                    None => format!("key {key:?}: reads back {v:?}, which no write put there"),
                })
            }
            _ => {}
        }
    }
    (!problems.is_empty()).then(|| problems.join("\n"))
}

/// This checker in the registry ([`super::registry::ALL`]).
pub struct Rule;

impl super::registry::Check for Rule {
    fn name(&self) -> super::Checker {
        super::Checker::Durability
    }

    fn applies(&self, scenario: &crate::scenario::Scenario) -> bool {
        scenario.checkers.durability
    }

    fn check(&self, run: &super::registry::Inputs) -> super::registry::Verdict {
        // Only a run that reached its final reads can be checked.
        let reached = run.history.ops.iter().any(|o| o.process == crate::workload::FINAL_PROCESS);
        super::registry::Verdict::of(reached.then(|| check(run.history, crate::workload::FINAL_PROCESS)).flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Clock, Initial};

    fn op(process: u64, call: Call, outcome: Outcome, t: u64) -> Operation {
        Operation { process, key: "k".into(), call, outcome, invoke: t, complete: Some(t + 1) }
    }

    #[test]
    fn lost_and_phantom_values_are_caught() {
        let mut h = History::new(Initial::Absent, Clock::Nanos);
        h.ops.push(op(0, Call::Write("1".into()), Outcome::Done, 0));
        h.ops.push(op(9, Call::Read, Outcome::Read(Some("1".into())), 10));
        assert_eq!(check(&h, 9), None);
        h.ops[1].outcome = Outcome::Read(None);
        assert!(check(&h, 9).unwrap().contains("reads back as nothing"));
        // Unless a delete took effect, or may have.
        let mut deleted = h.clone();
        deleted.ops.insert(1, op(2, Call::Delete, Outcome::Unknown, 5));
        assert_eq!(check(&deleted, 9), None);
        h.ops[1].outcome = Outcome::Read(Some("7".into()));
        assert!(check(&h, 9).unwrap().contains("no write put there"));
        h.ops.insert(1, op(1, Call::Write("7".into()), Outcome::Failed, 5));
        h.ops[2].outcome = Outcome::Read(Some("7".into()));
        assert!(check(&h, 9).unwrap().contains("reads back \"7\", written only by an operation recorded as failed: [0.000000s .. 0.000000s] process 1"));
    }
}
