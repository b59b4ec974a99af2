//! Timestamps: every timestamp any consumer got from PD is unique, and one
//! obtained after another returned (in simulated real time) is larger —
//! across PD crashes, restarts and clocks set back, and across consumers: the
//! timestamp workload's own requests, and every bank and list-append
//! transaction's start_ts and commit_ts (a transaction's timestamps are known to have been obtained
//! within the transaction's own window, which is what the check uses for
//! them: wider than the request itself, so never a false alarm).

/// Who used a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsUse {
    /// The timestamp workload asked PD for it.
    Request,
    /// A transaction began at it.
    StartTs,
    /// A transaction committed at it.
    CommitTs,
}

/// One timestamp a consumer got: within invoke and return (simulated ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsCall {
    pub client: u64,
    pub invoke: u64,
    pub complete: u64,
    pub ts: u64,
    pub used_as: TsUse,
}

impl TsCall {
    fn who(&self) -> String {
        match self.used_as {
            TsUse::Request => format!("client {}", self.client),
            TsUse::StartTs => format!("process {} (a transaction's start_ts)", self.client),
            TsUse::CommitTs => format!("process {} (a transaction's commit_ts)", self.client),
        }
    }
}

/// One transaction's timestamps: process, invoke, complete (None: never
/// known), start_ts and commit_ts as far as they are known.
pub type TxnTimestamps = (u64, u64, Option<u64>, Option<u64>, Option<u64>);

/// Every timestamp transactions used: start_ts and commit_ts, each within
/// its transaction's window (an unknown outcome's window never ends). A
/// read-only transaction commits at its start_ts: counted once.
pub fn of_transactions(txns: impl IntoIterator<Item = TxnTimestamps>) -> Vec<TsCall> {
    let mut out = Vec::new();
    for (process, invoke, complete, start_ts, commit_ts) in txns {
        let complete = complete.unwrap_or(u64::MAX);
        let call = |ts, used_as| TsCall { client: process, invoke, complete, ts, used_as };
        if let Some(ts) = start_ts {
            out.push(call(ts, TsUse::StartTs));
        }
        if let Some(ts) = commit_ts.filter(|&c| Some(c) != start_ts) {
            out.push(call(ts, TsUse::CommitTs));
        }
    }
    out
}

/// The bank's transfers' and reads' timestamps.
pub fn of_bank(ops: &[crate::workload::bank::history::BankOp]) -> Vec<TsCall> {
    of_transactions(ops.iter().map(|o| (o.process, o.invoke, o.complete, o.start_ts, o.commit_ts)))
}

/// The list-append transactions' timestamps.
pub fn of_list_append(txns: &[crate::workload::list_append::history::Txn]) -> Vec<TsCall> {
    of_transactions(txns.iter().map(|t| (t.process.unwrap_or_default() as u64, t.invoke, t.complete, t.start_ts, t.commit_ts)))
}

/// `None` when the rule holds; otherwise the first violation found.
pub fn check(calls: &[TsCall]) -> Option<String> {
    let mut by_complete: Vec<&TsCall> = calls.iter().collect();
    by_complete.sort_by_key(|c| (c.complete, c.ts));
    let mut by_invoke: Vec<&TsCall> = calls.iter().collect();
    by_invoke.sort_by_key(|c| (c.invoke, c.ts));
    // Walk the calls in invoke order, keeping the largest timestamp of every
    // call that returned strictly before the current one was invoked.
    let (mut done, mut largest): (usize, Option<&TsCall>) = (0, None);
    for call in by_invoke {
        while done < by_complete.len() && by_complete[done].complete < call.invoke {
            let c = by_complete[done];
            if largest.is_none_or(|l| c.ts > l.ts) {
                largest = Some(c);
            }
            done += 1;
        }
        if let Some(before) = largest {
            if call.ts <= before.ts {
                return Some(format!(
                    "timestamps went backwards: {} got {} at {:.6}s, after {} had got {} at {:.6}s",
                    call.who(),
                    call.ts,
                    call.invoke as f64 / 1e9,
                    before.who(),
                    before.ts,
                    before.complete as f64 / 1e9
                ));
            }
        }
    }
    let mut seen: Vec<&TsCall> = calls.iter().collect();
    seen.sort_by_key(|c| c.ts);
    seen.windows(2).find(|w| w[0].ts == w[1].ts).map(|w| format!("timestamp {} was handed out twice ({} and {})", w[0].ts, w[0].who(), w[1].who()))
}

/// This checker in the registry ([`super::registry::ALL`]).
pub struct Rule;

impl super::registry::Check for Rule {
    fn name(&self) -> super::Checker {
        super::Checker::Tso
    }

    fn applies(&self, scenario: &crate::scenario::Scenario) -> bool {
        scenario.checkers.tso
    }

    fn check(&self, run: &super::registry::Inputs) -> super::registry::Verdict {
        // Every consumer's timestamps: the timestamp workload's requests and
        // the transactions' start and commit timestamps.
        let mut all = run.records.ts_calls.clone();
        all.extend(of_bank(&run.records.bank));
        all.extend(of_list_append(&run.records.list_append));
        super::registry::Verdict::of(check(&all))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(client: u64, invoke: u64, complete: u64, ts: u64) -> TsCall {
        TsCall { client, invoke, complete, ts, used_as: TsUse::Request }
    }

    #[test]
    fn increasing_and_overlapping_calls_pass() {
        // The second and third overlap: either order of their timestamps is fine.
        assert_eq!(check(&[call(1, 0, 10, 5), call(2, 20, 40, 9), call(3, 25, 30, 7), call(1, 50, 60, 11)]), None);
    }

    #[test]
    fn a_smaller_or_repeated_timestamp_is_caught() {
        let back = check(&[call(1, 0, 10, 500), call(2, 20, 30, 400)]).unwrap();
        assert_eq!(back, "timestamps went backwards: client 2 got 400 at 0.000000s, after client 1 had got 500 at 0.000000s");
        assert!(check(&[call(1, 0, 10, 5), call(2, 5, 15, 5)]).unwrap().contains("handed out twice"));
    }

    #[test]
    fn transactions_timestamps_count_within_their_windows() {
        use crate::workload::bank::history::{BankCall, BankOp, BankOutcome};
        let op = |process, invoke, complete, start_ts, commit_ts| BankOp {
            process,
            call: BankCall::Transfer { from: 0, to: 1, amount: 1 },
            outcome: BankOutcome::Ok,
            invoke,
            complete,
            start_ts,
            commit_ts,
        };
        // A read-only transaction (commit_ts = start_ts) counts once.
        let read = op(1, 0, Some(10), Some(5), Some(5));
        assert_eq!(of_bank(std::slice::from_ref(&read)).len(), 1);
        // A commit_ts another consumer also got is caught, whoever they are.
        let mut calls = of_bank(&[read, op(2, 20, Some(30), Some(21), Some(22))]);
        calls.push(call(9, 25, 26, 22));
        assert_eq!(check(&calls).unwrap(), "timestamp 22 was handed out twice (process 2 (a transaction's commit_ts) and client 9)");
        // An unknown outcome's window never ends: only uniqueness binds it.
        assert_eq!(check(&of_bank(&[op(3, 0, None, Some(50), Some(51)), op(4, 100, Some(110), Some(40), None)])), None);
    }
}
