//! The list-append clients: random transactions of appends and reads,
//! each recorded as a [`Txn`] (keys and values are their own ids).

use super::history::{Mop, Txn, TxnOutcome};
use crate::workload::{now_ns, think, Shared};
use simkv::client::{TxnClient, TxnError};
use std::sync::atomic::Ordering;

/// The key of list `k` of `n`, spread over the pre-split key space.
pub fn list_key(k: u32, n: u32) -> String {
    format!("key{:03}-l{k}", u64::from(k) * 1000 / u64::from(n.max(1)))
}

fn decode(value: Option<Vec<u8>>) -> Result<Vec<u32>, TxnError> {
    let Some(value) = value else { return Ok(vec![]) };
    let text = String::from_utf8_lossy(&value);
    text.split(',').filter(|s| !s.is_empty()).map(|s| s.parse().map_err(|e| TxnError::Unexpected(format!("list {text:?}: {e}")))).collect()
}

fn encode(values: &[u32]) -> String {
    values.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// One client: random list-append transactions until the safety phase ends.
/// A client whose commit has an unknown outcome continues as a new process.
pub async fn list_append_client(shared: &Shared, client: &TxnClient, c: u64) {
    use rand::Rng;
    let keys = u32::try_from(shared.swarm.keys.max(1)).expect("keys fit in u32");
    let clients = shared.swarm.clients.max(1);
    let mut process = c;
    let mut counter = 0u32;
    // Client c appends the values (c + 1) * 1,000,000 + 1, + 2, ...
    let base = u32::try_from((c + 1) * 1_000_000).expect("fewer than 4,000 clients");
    while !shared.stop.load(Ordering::SeqCst) {
        let planned: Vec<Mop> = {
            let mut rng = madsim::rand::thread_rng();
            let n = rng.gen_range(1..=4);
            (0..n)
                .map(|_| {
                    let key = rng.gen_range(0..keys);
                    if rng.gen_bool(0.5) {
                        counter += 1;
                        Mop::Append { key, value: base + counter }
                    } else {
                        Mop::Read { key, values: None }
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
        let txn = Txn { process: Some(process as i64), outcome, mops, invoke, complete, line: 0, error, start_ts, commit_ts };
        shared.record_list_append(txn);
        if outcome == TxnOutcome::Info {
            process += clients;
        }
        think(shared).await;
    }
}

/// Runs the micro-ops in one transaction; returns them with what the reads
/// saw, the start_ts (if it began) and the commit_ts (if it committed).
async fn run(client: &TxnClient, keys: u32, planned: Vec<Mop>) -> (Vec<Mop>, Option<u64>, Result<u64, TxnError>) {
    let mut txn = match client.begin().await {
        Ok(txn) => txn,
        Err(e) => return (planned, None, Err(e)),
    };
    let start_ts = Some(txn.start_ts());
    let mut done = Vec::with_capacity(planned.len());
    for (i, mop) in planned.iter().enumerate() {
        let step = async {
            match mop {
                Mop::Read { key, .. } => {
                    let values = decode(txn.get(list_key(*key, keys).as_bytes()).await?)?;
                    Ok::<_, TxnError>(Mop::Read { key: *key, values: Some(values) })
                }
                Mop::Append { key, value } => {
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
