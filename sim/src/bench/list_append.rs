//! The SI checker at scale: a generated 100,000-transaction list-append history
//! (serializable by construction), parsed and checked under snapshot isolation
//! and strict serializability, then the same history with one of every
//! plantable anomaly class, which must all be found. Printed next to Elle's
//! published figure (55 to 73 s for 100,000 operations on 24 cores), with the
//! process's peak memory.

use crate::workload::list_append::check::{check, Model};
use crate::workload::list_append::{generate as txn_generate, history as txn};
use std::time::Instant;

/// Elle's paper (Kingsbury and Alvaro, VLDB 2020, §6): list-append histories of
/// 100,000 operations checked in 55–73 s on a 24-core machine.
pub const ELLE_100K_SECONDS: (f64, f64) = (55.0, 73.0);

/// The process's peak resident memory, from /proc (Linux), in MiB.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Runs the benchmark; returns how many planted classes were missed (or the
/// clean history judged invalid).
pub fn run(txns: usize) -> usize {
    let started = Instant::now();
    let text = txn_generate::list_append_history(7, txns, 200, 40, &[]);
    let generated = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let history = txn::parse(&text).expect("generated histories parse");
    let parsed = started.elapsed().as_secs_f64();
    let mut wrong = 0;
    for model in [Model::SnapshotIsolation, Model::StrictSerializable] {
        let started = Instant::now();
        let report = check(&history, model);
        let took = started.elapsed().as_secs_f64();
        println!(
            "list-append {txns} txns under {model}: {} in {took:.2} s (parse {parsed:.2} s, generate {generated:.2} s); Elle: {:.0}-{:.0} s on 24 cores = {:.0}x faster than its best",
            if report.valid() { "valid" } else { "INVALID" },
            ELLE_100K_SECONDS.0,
            ELLE_100K_SECONDS.1,
            ELLE_100K_SECONDS.0 / (took + parsed).max(1e-9)
        );
        wrong += usize::from(!report.valid());
    }
    let text = txn_generate::list_append_history(7, txns, 200, 40, &txn_generate::PLANTABLE);
    let history = txn::parse(&text).expect("generated histories parse");
    let started = Instant::now();
    let report = check(&history, Model::SnapshotIsolation);
    let took = started.elapsed().as_secs_f64();
    let missed: Vec<&str> = txn_generate::PLANTABLE.iter().copied().filter(|k| !report.kinds().contains(k)).collect();
    println!(
        "list-append {txns} txns with every anomaly class planted: {} of {} found in {took:.2} s{}",
        txn_generate::PLANTABLE.len() - missed.len(),
        txn_generate::PLANTABLE.len(),
        if missed.is_empty() { String::new() } else { format!("; MISSED {missed:?}") }
    );
    if let Some(mib) = peak_memory_mib() {
        println!("peak memory of the whole process so far: {mib:.0} MiB");
    }
    wrong + missed.len()
}
