//! The table workload's history: each change or check, with its outcome,
//! times and timestamps; written out as EDN.

use std::collections::BTreeSet;
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TableCall {
    Insert {
        pk: i64,
        email: String,
        age: i64,
    },
    Update {
        pk: i64,
        email: String,
        age: i64,
    },
    Delete {
        pk: i64,
    },
    /// A consistency check of the whole table in one snapshot.
    Check,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TableOutcome {
    Ok,
    /// A check's findings (empty: consistent), the rows it saw, and the
    /// primary keys its findings are about.
    Checked {
        problems: Vec<String>,
        rows: usize,
        involved: Vec<i64>,
    },
    Fail(String),
    Info(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableOp {
    pub process: u64,
    pub call: TableCall,
    pub outcome: TableOutcome,
    pub invoke: u64,
    pub complete: Option<u64>,
    /// The transaction's start timestamp (a check's snapshot), once it had one.
    pub start_ts: Option<u64>,
    /// Its commit timestamp, when it committed.
    pub commit_ts: Option<u64>,
}

/// The history as Jepsen EDN, one invocation and one completion per operation.
pub fn to_edn(ops: &[TableOp]) -> String {
    let events = crate::history::windows_in_order(ops.iter().map(|o| (o.invoke, o.complete)));
    let mut out = String::new();
    for (time, phase, i) in events {
        let op = &ops[i];
        let (f, value) = match &op.call {
            TableCall::Insert { pk, email, age } => ("insert", format!("{{:pk {pk}, :email {email:?}, :age {age}}}")),
            TableCall::Update { pk, email, age } => ("update", format!("{{:pk {pk}, :email {email:?}, :age {age}}}")),
            TableCall::Delete { pk } => ("delete", format!("{{:pk {pk}}}")),
            TableCall::Check => ("check", "nil".into()),
        };
        let (kind, value, extra) = match (phase, &op.outcome) {
            (0, _) => ("invoke", value, String::new()),
            (_, TableOutcome::Ok) => ("ok", value, String::new()),
            (_, TableOutcome::Checked { problems, rows, .. }) => {
                let problems: BTreeSet<&String> = problems.iter().collect();
                ("ok", format!("{{:rows {rows}, :problems [{}]}}", problems.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(" ")), String::new())
            }
            (_, TableOutcome::Fail(why)) => ("fail", value, format!(", :error {why:?}")),
            (_, TableOutcome::Info(why)) => ("info", value, format!(", :error {why:?}")),
        };
        let _ = writeln!(out, "{{:type :{kind}, :f :{f}, :value {value}, :process {}, :time {time}{extra}}}", op.process);
    }
    out
}
