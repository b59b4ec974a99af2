//! Percolator transactions end to end on a simulated cluster: two-phase
//! commit across regions, snapshot reads, conflicts, lock resolution after a
//! client dies between prewrite and commit, and a bank that keeps its total.
#![cfg(madsim)]

use madsim::time::{sleep, Duration};
use simkv::client::{ClientConfig, TxnConfig, TxnError};
use simkv_sim::cluster::{Cluster, ClusterSpec};
use std::sync::Arc;

async fn wait_for_leaders(cluster: &Cluster) {
    for _ in 0..300 {
        if cluster.initial_regions.iter().all(|r| cluster.leader_of(r.id).is_some()) {
            return;
        }
        sleep(Duration::from_millis(100)).await;
    }
    panic!("no leaders within 30 simulated seconds");
}

/// Three stores; the transactional key space split at `split_at` (user keys).
fn cluster(split_at: &[&str]) -> Arc<Cluster> {
    let mut spec = ClusterSpec::new(3, 1);
    spec.split_keys = split_at.iter().map(|k| simkv::codec::keys::txn_key(k.as_bytes())).collect();
    spec.pd.schedule = false;
    Arc::new(Cluster::start(spec))
}

#[madsim::test]
async fn a_transaction_commits_across_regions_and_snapshots_are_consistent() {
    let cluster = cluster(&["acct3", "acct7"]);
    wait_for_leaders(&cluster).await;
    let (node, local) = cluster.client_node();
    let c = cluster.clone();
    node.spawn(async move {
        let client = c.txn_client(local, ClientConfig::default(), TxnConfig::default()).await;
        let mut t = client.begin().await.unwrap();
        for i in 0..10 {
            t.set(format!("acct{i}").as_bytes(), b"100");
        }
        assert_eq!(t.get(b"acct3").await.unwrap(), Some(b"100".to_vec()), "a transaction reads its own writes");
        let first = t.commit().await.unwrap();
        // An old snapshot does not see a later commit; a new one does.
        let old = client.begin().await.unwrap();
        let mut t = client.begin().await.unwrap();
        t.set(b"acct0", b"50");
        t.set(b"acct9", b"150");
        t.delete(b"acct5");
        let second = t.commit().await.unwrap();
        assert!(second > first && second > old.start_ts());
        assert_eq!(old.get(b"acct0").await.unwrap(), Some(b"100".to_vec()));
        assert_eq!(old.scan(b"acct", b"acct:", 100).await.unwrap().len(), 10);
        let now = client.begin().await.unwrap();
        assert_eq!(now.get(b"acct0").await.unwrap(), Some(b"50".to_vec()));
        let all = now.scan(b"acct", b"", 100).await.unwrap();
        assert_eq!(now.scan(b"acct2", b"acct8", 3).await.unwrap().len(), 3, "a scan crossing regions keeps its limit");
        assert_eq!(all.len(), 9, "acct5 was deleted");
        assert_eq!(all.iter().map(|(_, v)| String::from_utf8_lossy(v).parse::<u64>().unwrap()).sum::<u64>(), 900);
    })
    .await
    .unwrap();
}

#[madsim::test]
async fn concurrent_writers_conflict_and_one_aborts() {
    let cluster = cluster(&["m"]);
    wait_for_leaders(&cluster).await;
    let (node, local) = cluster.client_node();
    let c = cluster.clone();
    node.spawn(async move {
        let client = c.txn_client(local, ClientConfig::default(), TxnConfig::default()).await;
        let mut a = client.begin().await.unwrap();
        let mut b = client.begin().await.unwrap();
        a.set(b"k", b"a");
        b.set(b"k", b"b");
        a.commit().await.unwrap();
        assert!(matches!(b.commit().await, Err(TxnError::WriteConflict { .. })), "b started before a committed");
        let r = client.begin().await.unwrap();
        assert_eq!(r.get(b"k").await.unwrap(), Some(b"a".to_vec()));
    })
    .await
    .unwrap();
}

/// A client prewrites and dies before committing: a reader waits for the
/// lock's TTL, then rolls the transaction back through its primary. Another
/// one dies after committing its primary only: the reader commits the
/// secondary.
#[madsim::test]
async fn locks_of_a_dead_client_are_resolved_by_readers() {
    use simkv::proto::{TxnCmd, TxnMutation, TxnOp, TxnWrite};
    let cluster = cluster(&["m"]);
    wait_for_leaders(&cluster).await;
    let (node, local) = cluster.client_node();
    let c = cluster.clone();
    node.spawn(async move {
        let cfg = TxnConfig { lock_ttl_ms: 500, ..TxnConfig::default() };
        let client = c.txn_client(local, ClientConfig::default(), cfg).await;
        let mutation = |k: &str, v: &str| TxnMutation { key: k.as_bytes().to_vec(), op: TxnOp::Put(v.as_bytes().to_vec()) };
        // Transaction 1 prewrites p1 (primary) and s1, then "dies".
        let t1 = client.timestamp().await.unwrap();
        let prewrite = TxnWrite::Prewrite { mutations: vec![mutation("p1", "x"), mutation("s1", "x")], primary: b"p1".to_vec(), start_ts: t1, ttl_ms: 500 };
        client.command(b"p1", TxnCmd::Write(prewrite)).await.unwrap().unwrap();
        // Transaction 2 prewrites p2 and s2, commits p2 only, then "dies".
        let t2 = client.timestamp().await.unwrap();
        let prewrite = TxnWrite::Prewrite { mutations: vec![mutation("p2", "y"), mutation("s2", "y")], primary: b"p2".to_vec(), start_ts: t2, ttl_ms: 500 };
        client.command(b"p2", TxnCmd::Write(prewrite)).await.unwrap().unwrap();
        let c2 = client.timestamp().await.unwrap();
        client.command(b"p2", TxnCmd::Write(TxnWrite::Commit { keys: vec![b"p2".to_vec()], start_ts: t2, commit_ts: c2 })).await.unwrap().unwrap();
        let reader = client.begin().await.unwrap();
        assert_eq!(reader.get(b"s1").await.unwrap(), None, "transaction 1 is rolled back");
        let physical_ms = |ts: u64| ts >> 18;
        assert!(physical_ms(client.timestamp().await.unwrap()) >= physical_ms(t1) + 500, "the reader waited for the lock's TTL");
        assert_eq!(reader.get(b"s2").await.unwrap(), Some(b"y".to_vec()), "transaction 2 committed at its primary");
        assert!(client.scan_locks(u64::MAX).await.unwrap().is_empty(), "the reader resolved both transactions");
        // Transaction 3 prewrites and dies; nobody reads its key: the sweep
        // after the clients stop resolves it.
        let t3 = client.timestamp().await.unwrap();
        let prewrite = TxnWrite::Prewrite { mutations: vec![mutation("p3", "z")], primary: b"p3".to_vec(), start_ts: t3, ttl_ms: 500 };
        client.command(b"p3", TxnCmd::Write(prewrite)).await.unwrap().unwrap();
        assert_eq!(client.scan_locks(u64::MAX).await.unwrap().len(), 1);
        assert_eq!(client.resolve_locks_in(u64::MAX).await.unwrap(), 1);
        assert!(client.scan_locks(u64::MAX).await.unwrap().is_empty());
        assert_eq!(client.begin().await.unwrap().get(b"p3").await.unwrap(), None);
    })
    .await
    .unwrap();
}

/// The table layer: a "people" table with a unique email and a non-unique
/// age index, as a person would use it.
#[madsim::test]
async fn a_table_keeps_its_indexes_with_its_rows() {
    use simkv::table::{create_table, open_table, Datum, IndexSchema, TableError, TableSchema};
    let cluster = cluster(&["t"]);
    wait_for_leaders(&cluster).await;
    let (node, local) = cluster.client_node();
    let c = cluster.clone();
    node.spawn(async move {
        let client = c.txn_client(local, ClientConfig::default(), TxnConfig::default()).await;
        let schema = TableSchema {
            id: 7,
            name: "people".into(),
            columns: vec!["name".into(), "email".into(), "age".into()],
            indexes: vec![
                IndexSchema { id: 1, name: "by_email".into(), column: 1, unique: true },
                IndexSchema { id: 2, name: "by_age".into(), column: 2, unique: false },
            ],
        };
        create_table(&client, &schema).await.unwrap();
        assert!(matches!(create_table(&client, &schema).await, Err(TableError::TableExists(_))));
        let people = open_table(&client, "people").await.unwrap();
        assert_eq!(people, schema);
        let person = |name: &str, email: &str, age: i64| vec![Datum::Text(name.into()), Datum::Text(email.into()), Datum::Int(age)];
        let mut t = client.begin().await.unwrap();
        people.insert(&mut t, 1, person("ann", "ann@x", 30)).await.unwrap();
        people.insert(&mut t, 2, person("bob", "bob@x", 41)).await.unwrap();
        people.insert(&mut t, 3, person("cat", "cat@x", 30)).await.unwrap();
        assert!(
            matches!(people.insert(&mut t, 4, person("dup", "bob@x", 50)).await, Err(TableError::DuplicateKey { holder: 2, .. })),
            "seen in its own transaction"
        );
        assert!(matches!(people.insert(&mut t, 1, person("again", "a@y", 1)).await, Err(TableError::DuplicatePrimaryKey(1))));
        t.commit().await.unwrap();
        let t = client.begin().await.unwrap();
        let thirty: Vec<i64> = people.find(&t, "by_age", &Datum::Int(30), 10).await.unwrap().into_iter().map(|(pk, _)| pk).collect();
        assert_eq!(thirty, vec![1, 3], "a prefix seek over the non-unique index");
        assert_eq!(people.get_by_unique(&t, "by_email", &Datum::Text("bob@x".into())).await.unwrap().map(|(pk, _)| pk), Some(2));
        // Bob changes his email and age: the old entries go, the new ones come.
        let mut t = client.begin().await.unwrap();
        people.update(&mut t, 2, person("bob", "robert@x", 30)).await.unwrap();
        assert!(people.delete(&mut t, 1).await.unwrap());
        t.commit().await.unwrap();
        let t = client.begin().await.unwrap();
        assert_eq!(people.get_by_unique(&t, "by_email", &Datum::Text("bob@x".into())).await.unwrap(), None);
        let thirty: Vec<i64> = people.find(&t, "by_age", &Datum::Int(30), 10).await.unwrap().into_iter().map(|(pk, _)| pk).collect();
        assert_eq!(thirty, vec![2, 3]);
        assert_eq!(people.index_entries(&t, "by_email").await.unwrap().into_iter().map(|(_, pk)| pk).collect::<Vec<_>>(), vec![3, 2], "cat@x < robert@x");
        assert_eq!(people.scan(&t, 10).await.unwrap().into_iter().map(|(pk, _)| pk).collect::<Vec<_>>(), vec![2, 3]);
        // Two transactions taking the same unique value: one aborts.
        let (mut a, mut b) = (client.begin().await.unwrap(), client.begin().await.unwrap());
        people.insert(&mut a, 10, person("x", "same@x", 1)).await.unwrap();
        people.insert(&mut b, 11, person("y", "same@x", 2)).await.unwrap();
        a.commit().await.unwrap();
        assert!(matches!(b.commit().await, Err(TxnError::WriteConflict { .. })));
    })
    .await
    .unwrap();
}
