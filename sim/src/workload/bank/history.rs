//! Bank histories: transfers between accounts and snapshot reads of every
//! account, as Jepsen's bank test records them, with the transaction's
//! timestamps.

use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BankCall {
    Transfer {
        from: u64,
        to: u64,
        amount: i64,
    },
    /// A snapshot read of every account.
    Read,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BankOutcome {
    /// A transfer committed.
    Ok,
    /// A read returned these balances (account → balance).
    Read(BTreeMap<u64, i64>),
    /// Certainly did not happen (why).
    Fail(String),
    /// May or may not have happened (why).
    Info(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BankOp {
    pub process: u64,
    pub call: BankCall,
    pub outcome: BankOutcome,
    /// Simulated nanoseconds.
    pub invoke: u64,
    pub complete: Option<u64>,
    pub start_ts: Option<u64>,
    pub commit_ts: Option<u64>,
}

/// The history as Jepsen EDN: an invocation and a completion per operation,
/// in time order (`:info` completions at the invocation's place when the
/// outcome never came back). Transfers carry `{:from :to :amount}`, reads a
/// map of account to balance.
pub fn to_edn(ops: &[BankOp]) -> String {
    let events = crate::history::windows_in_order(ops.iter().map(|o| (o.invoke, o.complete)));
    let mut out = String::new();
    for (time, phase, i) in events {
        let op = &ops[i];
        let (f, invoke_value) = match &op.call {
            BankCall::Transfer { from, to, amount } => ("transfer", format!("{{:from {from}, :to {to}, :amount {amount}}}")),
            BankCall::Read => ("read", "nil".to_string()),
        };
        let (kind, value, error) = match (phase, &op.outcome) {
            (0, _) => ("invoke", invoke_value, None),
            (_, BankOutcome::Ok) => ("ok", invoke_value, None),
            (_, BankOutcome::Read(balances)) => {
                let map: Vec<String> = balances.iter().map(|(a, b)| format!("{a} {b}")).collect();
                ("ok", format!("{{{}}}", map.join(", ")), None)
            }
            (_, BankOutcome::Fail(why)) => ("fail", invoke_value, Some(why)),
            (_, BankOutcome::Info(why)) => ("info", invoke_value, Some(why)),
        };
        let mut line = format!("{{:type :{kind}, :f :{f}, :value {value}, :process {}, :time {time}", op.process);
        if phase == 1 {
            if let Some(ts) = op.start_ts {
                let _ = write!(line, ", :start-ts {ts}");
            }
            if let Some(ts) = op.commit_ts {
                let _ = write!(line, ", :commit-ts {ts}");
            }
            if let Some(why) = error {
                let _ = write!(line, ", :error {:?}", why);
            }
        }
        line.push('}');
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edn_pairs_invocations_with_completions_in_time_order() {
        let ops = vec![
            BankOp {
                process: 0,
                call: BankCall::Transfer { from: 1, to: 2, amount: 5 },
                outcome: BankOutcome::Ok,
                invoke: 10,
                complete: Some(30),
                start_ts: Some(100),
                commit_ts: Some(120),
            },
            BankOp {
                process: 1,
                call: BankCall::Read,
                outcome: BankOutcome::Read([(1, 95), (2, 105)].into_iter().collect()),
                invoke: 20,
                complete: Some(25),
                start_ts: Some(110),
                commit_ts: None,
            },
        ];
        let edn = to_edn(&ops);
        let lines: Vec<&str> = edn.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "{:type :invoke, :f :transfer, :value {:from 1, :to 2, :amount 5}, :process 0, :time 10}");
        assert_eq!(lines[2], "{:type :ok, :f :read, :value {1 95, 2 105}, :process 1, :time 25, :start-ts 110}");
        assert!(lines[3].starts_with("{:type :ok, :f :transfer"));
        assert!(lines[3].contains(":commit-ts 120"));
    }
}
