//! The list-append workload, as Elle's: transactions of 1–4 micro-ops over a
//! few keys, each an append of a value unique to its key (`[:append k v]`)
//! or a read of the key's whole list (`[:r k [v …]]`). A key's list is kept
//! as one value (the values comma-separated); an append reads it and writes
//! it back longer, in the same transaction. Every read reveals a prefix of
//! the key's version order, which is what lets the checker
//! (`checker::list_append`) infer the dependency graph and find cycles.

use super::{now_ns, think, Shared};
use crate::history::txn::{Mop, Txn, TxnHistory, TxnOutcome};
use simkv::client::{TxnClient, TxnError};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

/// One micro-op as the client ran it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MicroOp {
    Append {
        key: u64,
        value: u64,
    },
    /// The list read (`None` in an invocation, or when the transaction failed
    /// before this read).
    Read {
        key: u64,
        values: Option<Vec<u64>>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListAppendOp {
    pub process: u64,
    pub mops: Vec<MicroOp>,
    pub outcome: TxnOutcome,
    /// Simulated nanoseconds.
    pub invoke: u64,
    pub complete: Option<u64>,
    /// Why the transaction failed or is unknown.
    pub error: Option<String>,
    /// The timestamps it used, when known (for the TSO checker).
    pub start_ts: Option<u64>,
    pub commit_ts: Option<u64>,
}

/// The key of list `k` of `n`, spread over the pre-split key space.
pub fn list_key(k: u64, n: u64) -> String {
    format!("key{:03}-l{k}", k * 1000 / n.max(1))
}

fn decode(value: Option<Vec<u8>>) -> Result<Vec<u64>, TxnError> {
    let Some(value) = value else { return Ok(vec![]) };
    let text = String::from_utf8_lossy(&value);
    text.split(',').filter(|s| !s.is_empty()).map(|s| s.parse().map_err(|e| TxnError::Unexpected(format!("list {text:?}: {e}")))).collect()
}

fn encode(values: &[u64]) -> String {
    values.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// One client: random list-append transactions until the safety phase ends.
/// A client whose commit has an unknown outcome continues as a new process.
pub async fn list_append_client(shared: &Shared, client: &TxnClient, c: u64) {
    use rand::Rng;
    let keys = shared.swarm.keys.max(1);
    let clients = shared.swarm.clients.max(1);
    let mut process = c;
    let mut counter = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        let planned: Vec<MicroOp> = {
            let mut rng = madsim::rand::thread_rng();
            let n = rng.gen_range(1..=4);
            (0..n)
                .map(|_| {
                    let key = rng.gen_range(0..keys);
                    if rng.gen_bool(0.5) {
                        counter += 1;
                        MicroOp::Append { key, value: (c + 1) * 1_000_000 + counter }
                    } else {
                        MicroOp::Read { key, values: None }
                    }
                })
                .collect()
        };
        let invoke = now_ns();
        let (mops, start_ts, result) = run(client, keys, planned).await;
        let (outcome, error, commit_ts) = match result {
            Ok(commit_ts) => (TxnOutcome::Ok, None, Some(commit_ts)),
            Err(e) if e.is_definite() => (TxnOutcome::Fail, Some(e.to_string()), None),
            Err(e) => (TxnOutcome::Info, Some(e.to_string()), None),
        };
        let complete = (outcome != TxnOutcome::Info).then(now_ns);
        shared.record_list_append(ListAppendOp { process, mops, outcome, invoke, complete, error, start_ts, commit_ts });
        if outcome == TxnOutcome::Info {
            process += clients;
        }
        think(shared).await;
    }
}

/// Runs the micro-ops in one transaction; returns them with what the reads
/// saw, the start_ts (if it began) and the commit_ts (if it committed).
async fn run(client: &TxnClient, keys: u64, planned: Vec<MicroOp>) -> (Vec<MicroOp>, Option<u64>, Result<u64, TxnError>) {
    let mut txn = match client.begin().await {
        Ok(txn) => txn,
        Err(e) => return (planned, None, Err(e)),
    };
    let start_ts = Some(txn.start_ts());
    let mut done = Vec::with_capacity(planned.len());
    for (i, mop) in planned.iter().enumerate() {
        let step = async {
            match mop {
                MicroOp::Read { key, .. } => {
                    let values = decode(txn.get(list_key(*key, keys).as_bytes()).await?)?;
                    Ok::<_, TxnError>(MicroOp::Read { key: *key, values: Some(values) })
                }
                MicroOp::Append { key, value } => {
                    let k = list_key(*key, keys);
                    let mut values = decode(txn.get(k.as_bytes()).await?)?;
                    values.push(*value);
                    txn.set(k.as_bytes(), encode(&values).as_bytes());
                    Ok(mop.clone())
                }
            }
        };
        match step.await {
            Ok(mop) => done.push(mop),
            Err(e) => {
                done.extend(planned[i..].iter().cloned());
                return (done, start_ts, Err(e));
            }
        }
    }
    (done, start_ts, txn.commit().await)
}

/// The recorded transactions as a history the checker reads: keys and values
/// interned, real-time positions from the simulated clock.
pub fn history(ops: &[ListAppendOp]) -> TxnHistory {
    let mut h = TxnHistory::default();
    let (mut keys, mut values): (BTreeMap<u64, u32>, BTreeMap<u64, u32>) = (BTreeMap::new(), BTreeMap::new());
    let intern = |map: &mut BTreeMap<u64, u32>, names: &mut Vec<String>, v: u64| {
        *map.entry(v).or_insert_with(|| {
            names.push(v.to_string());
            names.len() as u32 - 1
        })
    };
    let mut sorted: Vec<&ListAppendOp> = ops.iter().collect();
    sorted.sort_by_key(|o| (o.invoke, o.process));
    for (line, op) in sorted.into_iter().enumerate() {
        let mops = op
            .mops
            .iter()
            .map(|m| match m {
                MicroOp::Append { key, value } => Mop::Append { key: intern(&mut keys, &mut h.keys, *key), value: intern(&mut values, &mut h.values, *value) },
                MicroOp::Read { key, values: read } => Mop::Read {
                    key: intern(&mut keys, &mut h.keys, *key),
                    values: read
                        .as_ref()
                        .filter(|_| op.outcome != TxnOutcome::Fail)
                        .map(|vs| vs.iter().map(|v| intern(&mut values, &mut h.values, *v)).collect()),
                },
            })
            .collect();
        h.txns.push(Txn { process: Some(op.process as i64), outcome: op.outcome, mops, invoke: op.invoke, complete: op.complete, line: line + 1 });
    }
    h
}

/// The history as Elle's EDN: `:f :txn`, micro-ops as vectors.
pub fn to_edn(ops: &[ListAppendOp]) -> String {
    let events = crate::history::windows_in_order(ops.iter().map(|o| (o.invoke, o.complete)));
    let mut out = String::new();
    for (time, phase, i) in events {
        let op = &ops[i];
        let mops: Vec<String> = op
            .mops
            .iter()
            .map(|m| match m {
                MicroOp::Append { key, value } => format!("[:append {key} {value}]"),
                MicroOp::Read { key, values: Some(vs) } if phase == 1 && op.outcome == TxnOutcome::Ok => {
                    format!("[:r {key} [{}]]", vs.iter().map(u64::to_string).collect::<Vec<_>>().join(" "))
                }
                MicroOp::Read { key, .. } => format!("[:r {key} nil]"),
            })
            .collect();
        let kind = match (phase, op.outcome) {
            (0, _) => "invoke",
            (_, TxnOutcome::Ok) => "ok",
            (_, TxnOutcome::Fail) => "fail",
            (_, TxnOutcome::Info) => "info",
        };
        let error = match (&op.error, phase) {
            (Some(e), 1) => format!(", :error {e:?}"),
            _ => String::new(),
        };
        let _ = writeln!(out, "{{:type :{kind}, :f :txn, :value [{}], :process {}, :time {time}{error}}}", mops.join(" "), op.process);
    }
    out
}
