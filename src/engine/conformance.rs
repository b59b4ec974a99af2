//! The engine conformance suite: what every [`Engine`] must do, written once.
//!
//! Each check takes a fresh, empty engine. [`crate::engine_conformance_tests!`]
//! instantiates every check as a test for one engine type; `SimEngine` and
//! `RocksEngine` both do, so neither can drift from the other. The last check,
//! [`matches_model`], drives a seeded random mix of operations against the engine
//! and a `BTreeMap` model and compares every read.
//!
//! What an engine promises, and so all `SimEngine` may give the store (it
//! must never promise more than RocksDB does):
//!
//! * a batch is applied whole or not at all, also across a crash (RocksDB's
//!   WAL record checksums discard a torn last record; `SimEngine` models the
//!   tear and the discard);
//! * a batch written with `sync` is durable, with every batch before it,
//!   once the write returns `Ok`; an unsynced batch may be lost by a crash,
//!   with every batch after it (a suffix, never a gap);
//! * a write that returns an error promises nothing about what reached the
//!   disk (after a failed fsync not even the batches before it): the caller
//!   must stop (`crate::supervisor`);
//! * a value read back is the value written, or the read fails: a value whose
//!   checksum does not match (RocksDB verifies block checksums on every read)
//!   or that cannot be read reads as absent and is reported by
//!   `Snapshot::failure`; a snapshot whose reads all succeeded reports none
//!   (checked here for both engines).

use super::{Cf, Engine, Snapshot, WriteBatch, ALL_CFS};

/// Reads that succeed leave no failure on the snapshot, point reads and
/// scans alike, present keys and absent ones.
pub async fn good_reads_report_no_failure<E: Engine>(engine: E) {
    engine.write(&put(Cf::Write, b"k", b"v"), true).await.unwrap();
    let snap = engine.snapshot();
    assert_eq!(snap.get(Cf::Write, b"k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(snap.get(Cf::Write, b"absent").unwrap(), None);
    assert_eq!(snap.scan(Cf::Write, b"", None, 10, true).unwrap().len(), 1);
    assert!(snap.failure().is_none(), "{:?}", snap.failure());
}
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::BTreeMap;

fn put(cf: Cf, key: &[u8], value: &[u8]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    batch.put(cf, key, value);
    batch
}

fn keys_of(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<Vec<u8>> {
    pairs.into_iter().map(|(k, _)| k).collect()
}

/// A new engine holds nothing in any CF.
pub async fn empty_engine_reads_nothing<E: Engine>(engine: E) {
    let snap = engine.snapshot();
    for cf in ALL_CFS {
        assert_eq!(snap.get(cf, b"k").unwrap(), None, "{cf:?}");
        assert_eq!(snap.get(cf, b"").unwrap(), None, "{cf:?}");
        assert!(snap.scan(cf, b"", None, usize::MAX, false).unwrap().is_empty(), "{cf:?}");
        assert!(snap.scan(cf, b"", None, usize::MAX, true).unwrap().is_empty(), "{cf:?}");
    }
    assert_eq!(engine.get(Cf::Default, b"k").await.unwrap(), None);
}

/// The empty key and the empty value are ordinary; an empty value is not absence.
pub async fn empty_keys_and_values<E: Engine>(engine: E) {
    engine.write(&put(Cf::Default, b"", b"empty key"), false).await.unwrap();
    engine.write(&put(Cf::Default, b"k", b""), false).await.unwrap();
    let snap = engine.snapshot();
    assert_eq!(snap.get(Cf::Default, b"").unwrap(), Some(b"empty key".to_vec()));
    assert_eq!(snap.get(Cf::Default, b"k").unwrap(), Some(Vec::new()));
    assert_eq!(snap.get(Cf::Default, b"k\0").unwrap(), None);
    assert_eq!(keys_of(snap.scan(Cf::Default, b"", None, 10, false).unwrap()), vec![b"".to_vec(), b"k".to_vec()]);
    let mut delete = WriteBatch::new();
    delete.delete(Cf::Default, b"");
    delete.delete(Cf::Default, b"absent");
    engine.write(&delete, true).await.unwrap();
    assert_eq!(engine.snapshot().get(Cf::Default, b"").unwrap(), None);
}

/// A batch spanning every CF is seen whole or not at all; later mutations in a batch
/// win over earlier ones on the same key.
pub async fn batches_are_atomic<E: Engine>(engine: E) {
    let before = engine.snapshot();
    let mut batch = WriteBatch::new();
    for cf in ALL_CFS {
        batch.put(cf, b"a", cf.name());
        batch.put(cf, b"b", b"first");
        batch.put(cf, b"b", b"second");
        batch.put(cf, b"c", b"doomed");
        batch.delete(cf, b"c");
    }
    engine.write(&batch, true).await.unwrap();
    let after = engine.snapshot();
    for cf in ALL_CFS {
        assert_eq!(before.get(cf, b"a").unwrap(), None);
        assert_eq!(after.get(cf, b"a").unwrap(), Some(cf.name().as_bytes().to_vec()));
        assert_eq!(after.get(cf, b"b").unwrap(), Some(b"second".to_vec()));
        assert_eq!(after.get(cf, b"c").unwrap(), None);
    }
}

/// Scans return keys in byte order (reverse when asked), bounded by `[start, end)`
/// and by `limit`, and never show another CF's keys.
pub async fn scans_are_ordered_in_every_cf<E: Engine>(engine: E) {
    let keys: [&[u8]; 7] = [b"m", b"a", b"\xff\x00", b"ab", b"", b"b\x00", b"\x00"];
    for (i, cf) in ALL_CFS.into_iter().enumerate() {
        let mut batch = WriteBatch::new();
        for key in keys {
            let mut k = key.to_vec();
            k.extend_from_slice(cf.name().as_bytes());
            batch.put(cf, k, vec![i as u8]);
        }
        engine.write(&batch, false).await.unwrap();
    }
    let snap = engine.snapshot();
    for cf in ALL_CFS {
        let mut expected: Vec<Vec<u8>> = keys.iter().map(|k| [*k, cf.name().as_bytes()].concat()).collect();
        expected.sort();
        let forward = keys_of(snap.scan(cf, b"", None, usize::MAX, false).unwrap());
        assert_eq!(forward, expected, "forward scan of {cf:?}");
        let mut backward = keys_of(snap.scan(cf, b"", None, usize::MAX, true).unwrap());
        backward.reverse();
        assert_eq!(backward, expected, "reverse scan of {cf:?}");
        // Bounded: [a, b) with start inclusive and end exclusive.
        let start = [b"a", cf.name().as_bytes()].concat();
        let bounded = keys_of(snap.scan(cf, &start, Some(b"b\x00"), usize::MAX, false).unwrap());
        let want: Vec<Vec<u8>> = expected.iter().filter(|k| **k >= start && k[..] < b"b\x00"[..]).cloned().collect();
        assert_eq!(bounded, want, "bounded scan of {cf:?}");
        let bounded_rev = keys_of(snap.scan(cf, &start, Some(b"b\x00"), 1, true).unwrap());
        assert_eq!(bounded_rev, vec![want.last().unwrap().clone()], "bounded reverse scan of {cf:?}");
        assert_eq!(snap.scan(cf, b"", None, 3, false).unwrap().len(), 3);
        // An empty or inverted range yields nothing.
        assert!(snap.scan(cf, b"m", Some(b"m"), 10, false).unwrap().is_empty());
        assert!(snap.scan(cf, b"z", Some(b"a"), 10, true).unwrap().is_empty());
    }
}

/// A snapshot is frozen: writes after it, overwrites and deletes, are invisible to it.
pub async fn snapshots_are_isolated<E: Engine>(engine: E) {
    engine.write(&put(Cf::Write, b"k1", b"v1"), false).await.unwrap();
    engine.write(&put(Cf::Write, b"k2", b"v2"), false).await.unwrap();
    let old = engine.snapshot();
    let mut batch = WriteBatch::new();
    batch.put(Cf::Write, b"k1", b"v1-new");
    batch.delete(Cf::Write, b"k2");
    batch.put(Cf::Write, b"k3", b"v3");
    engine.write(&batch, true).await.unwrap();
    assert_eq!(old.get(Cf::Write, b"k1").unwrap(), Some(b"v1".to_vec()));
    assert_eq!(old.get(Cf::Write, b"k2").unwrap(), Some(b"v2".to_vec()));
    assert_eq!(old.get(Cf::Write, b"k3").unwrap(), None);
    assert_eq!(keys_of(old.scan(Cf::Write, b"", None, 10, true).unwrap()), vec![b"k2".to_vec(), b"k1".to_vec()]);
    let new = engine.snapshot();
    assert_eq!(keys_of(new.scan(Cf::Write, b"", None, 10, false).unwrap()), vec![b"k1".to_vec(), b"k3".to_vec()]);
}

/// Values of several MiB round-trip unchanged.
pub async fn large_values_round_trip<E: Engine>(engine: E) {
    let big: Vec<u8> = (0..4 * 1024 * 1024 + 7).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    engine.write(&put(Cf::Default, b"big", &big), true).await.unwrap();
    engine.write(&put(Cf::Default, b"small", b"x"), false).await.unwrap();
    let snap = engine.snapshot();
    assert_eq!(snap.get(Cf::Default, b"big").unwrap().as_deref(), Some(&big[..]));
    let scanned = snap.scan(Cf::Default, b"", None, 10, false).unwrap();
    assert_eq!(scanned[0].1.len(), big.len());
    assert!(snap.approximate_size(Cf::Default, b"", None).unwrap() >= big.len() as u64);
}

/// `delete_range` removes exactly `[start, end)` of one CF.
pub async fn delete_range_is_exact<E: Engine>(engine: E) {
    let mut batch = WriteBatch::new();
    for key in [&b"a"[..], b"b", b"b1", b"c", b"d"] {
        batch.put(Cf::Lock, key, b"v");
        batch.put(Cf::Default, key, b"v");
    }
    engine.write(&batch, false).await.unwrap();
    let mut delete = WriteBatch::new();
    delete.delete_range(Cf::Lock, b"b", b"d");
    engine.write(&delete, false).await.unwrap();
    let snap = engine.snapshot();
    assert_eq!(keys_of(snap.scan(Cf::Lock, b"", None, 10, false).unwrap()), vec![b"a".to_vec(), b"d".to_vec()]);
    assert_eq!(snap.scan(Cf::Default, b"", None, 10, false).unwrap().len(), 5);
}

/// A seeded random mix of puts, deletes, range deletes and reads against a model.
pub async fn matches_model<E: Engine>(engine: E) {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let mut model: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = vec![BTreeMap::new(); ALL_CFS.len()];
    let random_key = |rng: &mut ChaCha8Rng| {
        let len = (rng.next_u32() % 4) as usize;
        (0..len).map(|_| b"ab\x00\xff"[(rng.next_u32() % 4) as usize]).collect::<Vec<u8>>()
    };
    for round in 0..300 {
        let mut batch = WriteBatch::new();
        for _ in 0..(rng.next_u32() % 5) {
            let cf = ALL_CFS[(rng.next_u32() % 4) as usize];
            let key = random_key(&mut rng);
            match rng.next_u32() % 10 {
                0..=5 => {
                    let value = format!("{round}").into_bytes();
                    model[cf.index()].insert(key.clone(), value.clone());
                    batch.put(cf, key, value);
                }
                6..=8 => {
                    model[cf.index()].remove(&key);
                    batch.delete(cf, key);
                }
                _ => {
                    let end = random_key(&mut rng);
                    if key < end {
                        model[cf.index()].retain(|k, _| *k < key || *k >= end);
                        batch.delete_range(cf, key, end);
                    }
                }
            }
        }
        engine.write(&batch, rng.next_u32() % 3 == 0).await.unwrap();
        let snap = engine.snapshot();
        let cf = ALL_CFS[(rng.next_u32() % 4) as usize];
        let (start, end) = (random_key(&mut rng), random_key(&mut rng));
        let reverse = rng.next_u32() % 2 == 0;
        let got = snap.scan(cf, &start, Some(&end), usize::MAX, reverse).unwrap();
        let mut want: Vec<(Vec<u8>, Vec<u8>)> =
            if start < end { model[cf.index()].range(start.clone()..end.clone()).map(|(k, v)| (k.clone(), v.clone())).collect() } else { Vec::new() };
        if reverse {
            want.reverse();
        }
        assert_eq!(got, want, "round {round}: scan {cf:?} [{start:?}, {end:?}) reverse={reverse}");
        let probe = random_key(&mut rng);
        assert_eq!(snap.get(cf, &probe).unwrap(), model[cf.index()].get(&probe).cloned(), "round {round}");
    }
}

/// Instantiates every conformance check as a `#[madsim::test]` for one engine.
/// `$make` is an expression giving `(engine, guard)`, where `guard` lives as long as
/// the test (a temp dir, say).
#[macro_export]
macro_rules! engine_conformance_tests {
    ($make:expr) => {
        $crate::engine_conformance_tests!(@each $make;
            empty_engine_reads_nothing, empty_keys_and_values, batches_are_atomic,
            scans_are_ordered_in_every_cf, snapshots_are_isolated, large_values_round_trip,
            delete_range_is_exact, good_reads_report_no_failure, matches_model);
    };
    (@each $make:expr; $($check:ident),*) => {
        $(
            #[madsim::test]
            async fn $check() {
                let (engine, _guard) = $make;
                $crate::engine::conformance::$check(engine).await;
            }
        )*
    };
}
