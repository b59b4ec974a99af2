//! The table checker: every whole-table check a client made in one snapshot
//! found each row with exactly its index entries (unique values unique), and
//! a failure names the transactions that changed the rows involved, each
//! placed against the check's snapshot (the one committed before it but not
//! wholly visible is the one the store half applied).

use super::history::{TableCall, TableOp, TableOutcome};
use std::fmt::Write as _;

/// The first check that found the table inconsistent, explained.
pub fn check(ops: &[TableOp]) -> Option<String> {
    let mut checks: Vec<&TableOp> = ops.iter().filter(|o| matches!(&o.outcome, TableOutcome::Checked { problems, .. } if !problems.is_empty())).collect();
    checks.sort_by_key(|o| (o.invoke, o.process));
    let op = checks.first()?;
    let TableOutcome::Checked { problems, rows, involved } = &op.outcome else { unreachable!() };
    let mut text = format!(
        "the check by process {} (invoked at {:.3}s) found the table inconsistent in one snapshot of {rows} rows (rows and index entries must change together): ",
        op.process,
        op.invoke as f64 / 1e9
    );
    text.push_str(&problems.iter().take(3).cloned().collect::<Vec<_>>().join("; "));
    if problems.len() > 3 {
        let _ = write!(text, "; and {} more", problems.len() - 3);
    }
    text.push_str(&changes_of(ops, op, involved));
    Some(text)
}

/// What changed `rows` up to the end of `check` (the last few transactions
/// of each, in invocation order), each placed against the check's snapshot:
/// a transaction committed before it whose row and index entries are not
/// all visible is the one the store half applied.
fn changes_of(ops: &[TableOp], check: &TableOp, rows: &[i64]) -> String {
    let snapshot = check.start_ts;
    let until = check.complete.unwrap_or(check.invoke);
    let mut text = String::new();
    if let Some(s) = snapshot {
        let _ = write!(text, "\nThe check's snapshot is at ts {s}.");
    }
    for &pk in rows.iter().take(3) {
        let mut changes: Vec<&TableOp> = ops
            .iter()
            .filter(|o| o.invoke <= until)
            .filter(|o| match &o.call {
                TableCall::Insert { pk: p, .. } | TableCall::Update { pk: p, .. } | TableCall::Delete { pk: p } => *p == pk,
                TableCall::Check => false,
            })
            .collect();
        changes.sort_by_key(|o| (o.invoke, o.process));
        let skipped = changes.len().saturating_sub(4);
        let _ = write!(
            text,
            "\nRow {pk} was changed, up to the check's end, by{}:",
            if skipped > 0 { format!(" (the last 4 of {})", changes.len()) } else { String::new() }
        );
        for o in &changes[skipped..] {
            let what = match &o.call {
                TableCall::Insert { email, age, .. } => format!("insert ({email}, {age})"),
                TableCall::Update { email, age, .. } => format!("update to ({email}, {age})"),
                _ => "delete".to_string(),
            };
            let start = o.start_ts.map_or_else(|| "no start ts".to_string(), |t| format!("start ts {t}"));
            let end = match (&o.outcome, o.commit_ts, snapshot) {
                (TableOutcome::Ok, Some(c), Some(s)) => format!("committed at ts {c}, {} the snapshot", if c <= s { "before" } else { "after" }),
                (TableOutcome::Ok, Some(c), None) => format!("committed at ts {c}"),
                (TableOutcome::Info(_), ..) => "outcome unknown".to_string(),
                (TableOutcome::Fail(why), ..) => format!("failed: {why}"),
                _ => "?".to_string(),
            };
            let _ = write!(text, "\n  process {} at {:.3}s: {what}, {start}, {end}", o.process, o.invoke as f64 / 1e9);
        }
    }
    text
}

/// This checker in the registry ([`crate::checker::registry::ALL`]).
pub struct Rule;

impl crate::checker::registry::Check for Rule {
    fn name(&self) -> crate::checker::Checker {
        crate::checker::Checker::Table
    }

    fn applies(&self, scenario: &crate::scenario::Scenario) -> bool {
        scenario.checkers.table && scenario.workload.kind == crate::scenario::WorkloadKind::Table
    }

    fn check(&self, run: &crate::checker::registry::Inputs) -> crate::checker::registry::Verdict {
        crate::checker::registry::Verdict::of(check(&run.records.table))
    }
}
