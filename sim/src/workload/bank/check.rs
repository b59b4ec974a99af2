//! The bank checker: every snapshot read of every account sees the total
//! the bank started with, no account negative and none missing. A read that
//! breaks it saw part of a transfer (a torn transaction), a lost update (two
//! transfers from one balance), or money that appeared from nowhere.

use super::history::{BankCall, BankOp, BankOutcome};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The first read that breaks the invariant, explained; None if all hold.
pub fn check(ops: &[BankOp], accounts: u64, total: i64) -> Option<String> {
    let mut reads: Vec<&BankOp> = ops.iter().filter(|o| matches!(o.outcome, BankOutcome::Read(_))).collect();
    reads.sort_by_key(|o| (o.invoke, o.process));
    for op in reads {
        let BankOutcome::Read(balances) = &op.outcome else { unreachable!() };
        let at = format!(
            "the read by process {} (invoked at {:.3}s, start_ts {})",
            op.process,
            op.invoke as f64 / 1e9,
            op.start_ts.map_or("?".into(), |t| t.to_string())
        );
        let missing: Vec<u64> = (0..accounts).filter(|a| !balances.contains_key(a)).collect();
        if !missing.is_empty() {
            return Some(format!("{at} found no balance for accounts {missing:?}: {balances:?}"));
        }
        if let Some((a, b)) = balances.iter().find(|(_, b)| **b < 0) {
            return Some(format!("{at} saw account {a} at {b}, below zero: {balances:?}"));
        }
        let sum: i64 = balances.values().sum();
        if sum != total {
            let transfers = ops.iter().filter(|o| matches!(o.call, BankCall::Transfer { .. }) && o.outcome == BankOutcome::Ok).count();
            let mut text = format!(
                "{at} saw a total of {sum}, not {total} (a snapshot must see every transfer whole or not at all; {transfers} transfers committed in the run): {balances:?}"
            );
            if let Some(start_ts) = op.start_ts {
                text.push_str(&half_visible(ops, balances, accounts, total, start_ts));
            }
            return Some(text);
        }
    }
    None
}

/// What a torn read saw against the transfers: the balances that replaying
/// every transfer known to have committed at or before the read's start_ts
/// gives, the accounts where the read differs, and the transfers touching
/// those accounts whose commit is nearest the read (known commits and
/// unknown outcomes), with their timestamps: the transactions whose effects
/// the read saw only in part are among them.
fn half_visible(ops: &[BankOp], seen: &BTreeMap<u64, i64>, accounts: u64, total: i64, start_ts: u64) -> String {
    let initial = total / accounts.max(1) as i64;
    let mut committed: Vec<&BankOp> = ops.iter().filter(|o| o.outcome == BankOutcome::Ok && o.commit_ts.is_some_and(|c| c <= start_ts)).collect();
    committed.sort_by_key(|o| o.commit_ts);
    let mut expected: BTreeMap<u64, i64> = (0..accounts).map(|a| (a, initial)).collect();
    for o in &committed {
        if let BankCall::Transfer { from, to, amount } = o.call {
            *expected.entry(from).or_default() -= amount;
            *expected.entry(to).or_default() += amount;
        }
    }
    let differ: Vec<u64> = (0..accounts).filter(|a| seen.get(a) != expected.get(a)).collect();
    let mut out = String::new();
    let _ = write!(
        out,
        "\nReplaying the {} transfers known to have committed at or before start_ts {start_ts} gives {:?}; the read differs on accounts {differ:?}.",
        committed.len(),
        expected
    );
    let mut touching: Vec<&BankOp> = ops
        .iter()
        .filter(|o| matches!(o.outcome, BankOutcome::Ok | BankOutcome::Info(_)))
        .filter(|o| matches!(o.call, BankCall::Transfer { from, to, .. } if differ.contains(&from) || differ.contains(&to)))
        .collect();
    touching.sort_by_key(|o| o.commit_ts.or(o.start_ts).map_or(u64::MAX, |t| t.abs_diff(start_ts)));
    if !touching.is_empty() {
        out.push_str("\nThe transfers touching those accounts whose commit is nearest the read:");
    }
    for o in touching.iter().take(4) {
        let BankCall::Transfer { from, to, amount } = o.call else { continue };
        let outcome = if o.outcome == BankOutcome::Ok { "committed" } else { "outcome unknown" };
        let commit = o.commit_ts.map_or("?".to_string(), |c| c.to_string());
        let side = match o.commit_ts {
            Some(c) if c <= start_ts => "before the read's start_ts",
            Some(_) => "after the read's start_ts",
            None => "at an unknown time",
        };
        let start = o.start_ts.map_or("?".to_string(), |t| t.to_string());
        let _ = write!(out, "\n  process {}: {amount} from account {from} to {to}, {outcome}, start_ts {start}, commit_ts {commit} ({side})", o.process);
    }
    out
}

/// This checker in the registry ([`crate::checker::registry::ALL`]).
pub struct Rule;

impl crate::checker::registry::Check for Rule {
    fn name(&self) -> crate::checker::Checker {
        crate::checker::Checker::Bank
    }

    fn applies(&self, scenario: &crate::scenario::Scenario) -> bool {
        scenario.checkers.bank && scenario.workload.kind == crate::scenario::WorkloadKind::Bank
    }

    fn check(&self, run: &crate::checker::registry::Inputs) -> crate::checker::registry::Verdict {
        let accounts = run.records.accounts;
        crate::checker::registry::Verdict::of(check(&run.records.bank, accounts, crate::workload::bank::client::INITIAL_BALANCE * accounts as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(invoke: u64, balances: &[(u64, i64)]) -> BankOp {
        BankOp {
            process: 3,
            call: BankCall::Read,
            outcome: BankOutcome::Read(balances.iter().copied().collect()),
            invoke,
            complete: Some(invoke + 1),
            start_ts: Some(invoke * 10),
            commit_ts: None,
        }
    }

    #[test]
    fn reads_that_keep_the_total_pass() {
        assert_eq!(check(&[read(1, &[(0, 100), (1, 100)]), read(2, &[(0, 40), (1, 160)])], 2, 200), None);
    }

    #[test]
    fn a_torn_transfer_a_negative_balance_and_a_missing_account_are_caught() {
        let torn = check(&[read(1, &[(0, 100), (1, 100)]), read(2, &[(0, 95), (1, 100)])], 2, 200).unwrap();
        assert!(torn.contains("total of 195, not 200") && torn.contains("invoked at 0.000s"), "{torn}");
        let negative = check(&[read(1, &[(0, -5), (1, 205)])], 2, 200).unwrap();
        assert!(negative.contains("account 0 at -5, below zero"), "{negative}");
        let missing = check(&[read(1, &[(0, 200)])], 2, 200).unwrap();
        assert!(missing.contains("no balance for accounts [1]"), "{missing}");
    }

    #[test]
    fn a_torn_read_names_the_transfer_it_saw_in_part() {
        let transfer = |process, amount, start_ts, commit_ts| BankOp {
            process,
            call: BankCall::Transfer { from: 0, to: 1, amount },
            outcome: BankOutcome::Ok,
            invoke: start_ts,
            complete: Some(commit_ts + 1),
            start_ts: Some(start_ts),
            commit_ts: Some(commit_ts),
        };
        // Transfer 5 committed at 15; the read at start_ts 20 sees its debit
        // but not its credit.
        let ops = [transfer(7, 5, 10, 15), transfer(8, 3, 30, 35), read(2, &[(0, 95), (1, 100)])];
        let text = check(&ops, 2, 200).unwrap();
        assert!(
            text.contains("Replaying the 1 transfers known to have committed at or before start_ts 20 gives {0: 95, 1: 105}; the read differs on accounts [1]"),
            "{text}"
        );
        assert!(text.contains("process 7: 5 from account 0 to 1, committed, start_ts 10, commit_ts 15 (before the read's start_ts)"), "{text}");
        let first = text.lines().position(|l| l.contains("process 7")).unwrap();
        let second = text.lines().position(|l| l.contains("process 8")).unwrap();
        assert!(first < second, "nearest commit first: {text}");
    }
}
