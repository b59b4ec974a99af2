//! The checkers against histories recorded by other projects, with the verdicts
//! those projects' own test suites assert (`tests/corpus/MANIFEST.tsv` says where
//! each file and verdict comes from). A checker that disagrees with one is wrong.

use simkv_sim::checker::linearizability::{self, Verdict};
use simkv_sim::history::formats;
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// (path, expected verdict) for every Porcupine file in the manifest.
fn porcupine_rows() -> Vec<(String, String)> {
    let manifest = std::fs::read_to_string(corpus_dir().join("MANIFEST.tsv")).expect("manifest");
    manifest
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f[0].starts_with("porcupine/"))
        .map(|f| (f[0].to_string(), f[8].to_string()))
        .collect()
}

#[test]
fn porcupine_corpus_verdicts_agree() {
    let rows = porcupine_rows();
    assert_eq!(rows.len(), 109, "103 etcd logs (one empty) and 6 kv logs");
    let (mut checked, mut linearizable_etcd) = (0, 0);
    let mut disagreements = Vec::new();
    for (path, expected) in &rows {
        let text = std::fs::read_to_string(corpus_dir().join(path)).unwrap();
        let parsed = formats::parse(&text);
        if expected.starts_with("n/a") {
            assert!(parsed.is_err(), "{path}: an empty log is not a history");
            continue;
        }
        let history = parsed.unwrap_or_else(|e| panic!("{path}: {e}"));
        let verdict = linearizability::check(&history);
        let want = match expected.as_str() {
            "linearizable" => true,
            "NOT-linearizable" => false,
            other => panic!("{path}: unknown verdict {other:?}"),
        };
        if verdict.is_ok() != want {
            disagreements.push(format!("{path}: expected {expected}, got {verdict:?}"));
        }
        if let Verdict::NotLinearizable(v) = &verdict {
            let text = linearizability::explain(&history, v);
            assert!(text.contains(&history.describe(&v.blocked)), "{path}: the explanation names the blocked operation");
        }
        if path.contains("etcd") && verdict.is_ok() {
            linearizable_etcd += 1;
        }
        checked += 1;
    }
    assert!(disagreements.is_empty(), "{} disagreements:\n{}", disagreements.len(), disagreements.join("\n"));
    assert_eq!(checked, 108);
    assert_eq!(linearizable_etcd, 23);
}

/// A known-bad history's explanation is pinned: it should change only on purpose.
#[test]
fn etcd_000_explanation_is_pinned() {
    let text = std::fs::read_to_string(corpus_dir().join("porcupine/test_data/jepsen/etcd_000.log")).unwrap();
    let history = formats::parse(&text).unwrap();
    let Verdict::NotLinearizable(v) = linearizability::check(&history) else { panic!("etcd_000 is not linearizable") };
    insta::assert_snapshot!("etcd_000", linearizability::explain(&history, &v));
}

#[test]
fn kv_bad_explanation_is_pinned() {
    let text = std::fs::read_to_string(corpus_dir().join("porcupine/test_data/kv/c01-bad.txt")).unwrap();
    let history = formats::parse(&text).unwrap();
    let Verdict::NotLinearizable(v) = linearizability::check(&history) else { panic!("c01-bad is not linearizable") };
    insta::assert_snapshot!("c01_bad", linearizability::explain(&history, &v));
}

/// Elle's list-append histories, under each model, with the verdicts Elle's own
/// tests and the corpus notes give: si-without-g-single is valid under snapshot
/// isolation and its only anomaly is G2-item; huge-scc violates only real-time
/// models (the weakest: strong snapshot isolation); the paper's example only a
/// real-time model (G-single-realtime).
#[test]
fn elle_corpus_verdicts_agree() {
    use simkv_sim::workload::list_append::check::{check, Model};
    use simkv_sim::workload::list_append::history as txn;
    let load = |name: &str| {
        let text = std::fs::read_to_string(corpus_dir().join("elle").join(name)).unwrap();
        assert!(txn::sniff(&text), "{name} is a list-append history");
        txn::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let kinds = |h: &txn::TxnHistory, m: Model| check(h, m).kinds().iter().map(|k| k.to_string()).collect::<Vec<_>>();

    let skew = load("si-without-g-single.edn");
    assert_eq!(kinds(&skew, Model::SnapshotIsolation), Vec::<String>::new());
    assert_eq!(kinds(&skew, Model::Serializable), vec!["G2-item"]);

    let huge = load("huge-scc.edn");
    assert!(huge.txns.len() > 10_000, "{} transactions", huge.txns.len());
    assert!(check(&huge, Model::SnapshotIsolation).valid());
    assert!(check(&huge, Model::Serializable).valid());
    assert!(!check(&huge, Model::StrongSnapshotIsolation).valid(), "the weakest model it violates");
    assert!(!check(&huge, Model::StrictSerializable).valid());
    assert!(kinds(&huge, Model::StrictSerializable).iter().all(|k| k.ends_with("-realtime")), "only real-time anomalies");

    let paper = load("paper-example.edn");
    assert!(check(&paper, Model::SnapshotIsolation).valid());
    assert!(check(&paper, Model::Serializable).valid());
    assert_eq!(kinds(&paper, Model::StrictSerializable), vec!["G-single-realtime"]);
}
