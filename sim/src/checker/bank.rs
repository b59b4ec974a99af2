//! The bank checker: every snapshot read of every account sees the total
//! the bank started with, no account negative and none missing. A read that
//! breaks it saw part of a transfer (a torn transaction), a lost update (two
//! transfers from one balance), or money that appeared from nowhere.

use crate::history::bank::{BankCall, BankOp, BankOutcome};

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
            return Some(format!(
                "{at} saw a total of {sum}, not {total} (a snapshot must see every transfer whole or not at all; {transfers} transfers committed in the run): {balances:?}"
            ));
        }
    }
    None
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
}
