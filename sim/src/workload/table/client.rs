//! The table's clients: create the table, change rows in transactions,
//! check the whole table in one snapshot, and record each as a [`TableOp`].

use super::history::{TableCall, TableOp, TableOutcome};
use crate::workload::{now_ns, think, Shared};
use simkv::client::{Transaction, TxnClient, TxnError};
use simkv::table::{self, Datum, IndexSchema, TableError, TableSchema};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

/// The workload's table.
pub fn schema() -> TableSchema {
    TableSchema {
        id: 1,
        name: "people".into(),
        columns: vec!["email".into(), "age".into()],
        indexes: vec![
            IndexSchema { id: 1, name: "by_email".into(), column: 0, unique: true },
            IndexSchema { id: 2, name: "by_age".into(), column: 1, unique: false },
        ],
    }
}

/// Creates the table; retried until it exists.
pub async fn create(client: &TxnClient) -> Result<(), TableError> {
    let mut last = None;
    for _ in 0..30 {
        match table::create_table(client, &schema()).await {
            Ok(()) | Err(TableError::TableExists(_)) => return Ok(()),
            Err(e) => last = Some(e),
        }
        madsim::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(last.expect("attempted"))
}

/// Checks the whole table in `txn`'s snapshot; returns the problems found
/// and the number of rows.
pub async fn check(txn: &Transaction<'_>, people: &TableSchema) -> Result<(Vec<String>, usize, Vec<i64>), TableError> {
    let rows = people.scan(txn, usize::MAX).await?;
    let by_pk: BTreeMap<i64, &Vec<Datum>> = rows.iter().map(|(pk, row)| (*pk, row)).collect();
    let mut problems = Vec::new();
    let mut involved = BTreeSet::new();
    for index in &people.indexes {
        let entries = people.index_entries(txn, &index.name).await?;
        let found: BTreeMap<&[u8], i64> = entries.iter().map(|(k, pk)| (k.as_slice(), *pk)).collect();
        let mut expected: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        let mut values: BTreeMap<&Datum, Vec<i64>> = BTreeMap::new();
        for (pk, row) in &rows {
            expected.insert(people.entry_key(index, &row[index.column], *pk), *pk);
            values.entry(&row[index.column]).or_default().push(*pk);
        }
        for (key, pk) in &found {
            match by_pk.get(pk) {
                None => {
                    involved.insert(*pk);
                    problems.push(format!("index {} has an entry for row {pk}, which does not exist", index.name));
                }
                Some(row) if expected.get(*key) != Some(pk) => {
                    involved.insert(*pk);
                    problems.push(format!("index {} has an entry for row {pk} that does not match its value {}", index.name, row[index.column]))
                }
                Some(_) => {}
            }
        }
        for (key, pk) in &expected {
            if found.get(key.as_slice()) != Some(pk) {
                involved.insert(*pk);
                problems.push(format!("row {pk} ({}) has no entry in index {}", by_pk[pk][index.column], index.name));
            }
        }
        if index.unique {
            for (value, pks) in values.into_iter().filter(|(_, pks)| pks.len() > 1) {
                involved.extend(pks.iter().copied());
                problems.push(format!("rows {pks:?} share the value {value} of unique index {}", index.name));
            }
        }
    }
    Ok((problems, rows.len(), involved.into_iter().collect()))
}

/// One client: random inserts, updates, deletes and checks until the safety
/// phase ends. A client whose commit has an unknown outcome continues as a
/// new process.
pub async fn table_client(shared: &Shared, client: &TxnClient, c: u64) {
    use rand::Rng;
    let rows = shared.swarm.keys.max(2) as i64;
    let clients = shared.swarm.clients.max(1);
    let people = schema();
    let mut process = c;
    while !shared.stop.load(Ordering::SeqCst) {
        let (dice, pk, email, age, delete) = {
            let mut rng = madsim::rand::thread_rng();
            // Fewer emails than twice the rows: inserts and updates collide on them.
            (rng.gen_range(0..100u64), rng.gen_range(0..rows), format!("e{}", rng.gen_range(0..rows * 2)), rng.gen_range(0..4i64), rng.gen_bool(0.3))
        };
        let invoke = now_ns();
        let (call, outcome, start_ts, commit_ts) = if dice < shared.swarm.read_percent {
            let (outcome, start_ts) = run_check(client, &people).await;
            (TableCall::Check, outcome, start_ts, None)
        } else {
            change(client, &people, pk, email, age, delete).await
        };
        let unknown = matches!(outcome, TableOutcome::Info(_));
        let complete = (!unknown).then(now_ns);
        shared.record_table(TableOp { process, call, outcome, invoke, complete, start_ts, commit_ts });
        if unknown {
            process += clients;
        }
        think(shared).await;
    }
}

/// A whole-table check in one snapshot; with the snapshot's timestamp.
pub async fn run_check(client: &TxnClient, people: &TableSchema) -> (TableOutcome, Option<u64>) {
    let txn = match client.begin().await {
        Ok(txn) => txn,
        Err(e) => return (TableOutcome::Fail(e.to_string()), None),
    };
    let outcome = match check(&txn, people).await {
        Ok((problems, rows, involved)) => TableOutcome::Checked { problems, rows, involved },
        Err(e) => TableOutcome::Fail(e.to_string()),
    };
    (outcome, Some(txn.start_ts()))
}

/// Inserts row `pk` if it is absent; otherwise updates it, or deletes it.
async fn change(
    client: &TxnClient,
    people: &TableSchema,
    pk: i64,
    email: String,
    age: i64,
    delete: bool,
) -> (TableCall, TableOutcome, Option<u64>, Option<u64>) {
    let mut txn = match client.begin().await {
        Ok(txn) => txn,
        Err(e) => return (TableCall::Delete { pk }, TableOutcome::Fail(e.to_string()), None, None),
    };
    let start_ts = Some(txn.start_ts());
    let row = vec![Datum::Text(email.clone()), Datum::Int(age)];
    let exists = match people.get(&txn, pk).await {
        Ok(row) => row.is_some(),
        Err(e) => return (TableCall::Delete { pk }, TableOutcome::Fail(e.to_string()), start_ts, None),
    };
    let (call, changed) = match (exists, delete) {
        (false, _) => (TableCall::Insert { pk, email, age }, people.insert(&mut txn, pk, row).await),
        (true, false) => (TableCall::Update { pk, email, age }, people.update(&mut txn, pk, row).await),
        (true, true) => (TableCall::Delete { pk }, people.delete(&mut txn, pk).await.map(|_| ())),
    };
    if let Err(e) = changed {
        return (call, TableOutcome::Fail(e.to_string()), start_ts, None);
    }
    let (outcome, commit_ts) = match txn.commit().await {
        Ok(ts) => (TableOutcome::Ok, Some(ts)),
        Err(e @ TxnError::Unknown(_)) => (TableOutcome::Info(e.to_string()), None),
        Err(e) => (TableOutcome::Fail(e.to_string()), None),
    };
    (call, outcome, start_ts, commit_ts)
}
