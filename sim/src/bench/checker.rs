//! The linearizability checker's speed: the Porcupine corpus (every verdict
//! asserted against the manifest) and generated stress histories, each timed as
//! the median of several runs, printed next to Porcupine's own timings.
//!
//! Porcupine's figures are **quoted, not measured here**: they come from the
//! corpus README and are kept below as labelled constants with their provenance.

use crate::checker::linearizability::{self, Verdict};
use crate::history::generate::{self, Shape};
use crate::history::{formats, History};
use std::path::Path;
use std::time::Instant;

/// Where the quoted Porcupine figures come from.
pub const PORCUPINE_PROVENANCE: &str = "Porcupine commit 55508eb (github.com/anishathalye/porcupine), Go 1.19.8, \
its own parsers and models, CheckEvents time in one process (parsing excluded), pinned to one core of a 2-core \
machine of the type simkv's CI uses, median of 9 runs (3 processes x 3 repetitions), measured 2026-11-28; \
quoted from shared/corpus/README.md (\"Porcupine reference timings\"), not measured by this program";

/// Porcupine's in-process check times in milliseconds (see
/// [`PORCUPINE_PROVENANCE`]). For c50-bad the README gives 21.1 ms across
/// processes and 9.8 ms in-process; the smaller (harder to beat) is used.
pub const PORCUPINE_MS: &[(&str, f64)] = &[
    ("etcd, all 102 files", 473.5),
    ("etcd_002 (Porcupine's slowest)", 185.9),
    ("etcd_007", 120.9),
    ("kv c50-ok", 206.9),
    ("kv c50-bad", 9.8),
    ("kv c10-ok", 0.8),
    ("kv c10-bad", 0.3),
];

/// One corpus file: its name, history and expected verdict.
struct Case {
    name: String,
    history: History,
    linearizable: bool,
}

/// Reads the Porcupine rows of `corpus/MANIFEST.tsv` with their verdicts.
fn load_corpus(corpus: &Path) -> Result<Vec<Case>, String> {
    let manifest_path = corpus.join("MANIFEST.tsv");
    let manifest = std::fs::read_to_string(&manifest_path).map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let mut cases = Vec::new();
    for (i, line) in manifest.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        let (Some(path), Some(verdict)) = (fields.first(), fields.get(8)) else {
            return Err(format!("{}:{}: expected at least 9 tab-separated fields", manifest_path.display(), i + 1));
        };
        if !path.starts_with("porcupine/") || verdict.starts_with("n/a") {
            continue;
        }
        let text = std::fs::read_to_string(corpus.join(path)).map_err(|e| format!("{path}: {e}"))?;
        let history = formats::parse(&text).map_err(|e| format!("{path}:{}: {}", e.line, e.message))?;
        let name = Path::new(path).file_stem().and_then(|s| s.to_str()).unwrap_or(path).to_string();
        cases.push(Case { name, history, linearizable: *verdict == "linearizable" });
    }
    Ok(cases)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    if xs.is_empty() {
        return 0.0;
    }
    xs[xs.len() / 2]
}

/// Whether a verdict is the expected one (an inconclusive one never is).
fn agrees(verdict: &Verdict, linearizable: bool) -> bool {
    !matches!(verdict, Verdict::Inconclusive { .. }) && verdict.is_ok() == linearizable
}

/// Checks a history `runs` times; the median wall time in ms and the verdict.
fn time_check(history: &History, runs: usize) -> (f64, Verdict) {
    let mut times = Vec::with_capacity(runs);
    let mut verdict = Verdict::Linearizable;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        verdict = linearizability::check(history);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    (median(times), verdict)
}

/// `simkv-sim bench --checker`: prints the table; returns the number of wrong
/// verdicts (corpus and generated), which makes the command fail.
pub fn run(corpus: &Path, runs: usize) -> usize {
    let cases = match load_corpus(corpus) {
        Ok(c) => c,
        Err(e) => {
            println!("checker: cannot load the corpus: {e}");
            return 1;
        }
    };
    let mut wrong = Vec::new();
    let mut per_file: Vec<(String, f64)> = Vec::new();
    for case in &cases {
        let (ms, verdict) = time_check(&case.history, runs);
        if !agrees(&verdict, case.linearizable) {
            wrong.push(format!("{}: expected {}, got {verdict:?}", case.name, if case.linearizable { "linearizable" } else { "NOT linearizable" }));
        }
        per_file.push((case.name.clone(), ms));
    }
    let ms_of = |name: &str| per_file.iter().find(|(n, _)| n == name).map(|(_, ms)| *ms);
    let etcd: Vec<&(String, f64)> = per_file.iter().filter(|(n, _)| n.starts_with("etcd_")).collect();
    let etcd_total: f64 = etcd.iter().map(|(_, ms)| ms).sum();
    let (slowest_name, slowest_ms) = per_file.iter().fold((String::new(), 0.0f64), |acc, (n, ms)| if *ms > acc.1 { (n.clone(), *ms) } else { acc });
    println!("linearizability checker, each file checked {runs} times, median wall time (parsing excluded):");
    println!("  {:<32} {:>12} {:>16} {:>8}", "", "simkv ms", "Porcupine ms", "ratio");
    let measured = [Some(etcd_total), ms_of("etcd_002"), ms_of("etcd_007"), ms_of("c50-ok"), ms_of("c50-bad"), ms_of("c10-ok"), ms_of("c10-bad")];
    for ((label, quoted), ours) in PORCUPINE_MS.iter().zip(measured) {
        match ours {
            Some(ms) => println!("  {label:<32} {ms:>12.3} {quoted:>16.1} {:>7.3}x", ms / quoted),
            None => println!("  {label:<32} {:>12} {quoted:>16.1}", "(missing)"),
        }
    }
    println!("  ({} etcd files; slowest file for simkv: {slowest_name}, {slowest_ms:.3} ms)", etcd.len());
    println!("  simkv ms: measured now on this machine. Porcupine ms: QUOTED, {PORCUPINE_PROVENANCE}.");

    wrong.extend(stress(runs.min(3)));
    for w in &wrong {
        println!("WRONG VERDICT: {w}");
    }
    println!("verdicts: {} corpus files, {} wrong", cases.len(), wrong.len());
    wrong.len()
}

/// The generated stress sets: for each shape, valid and invalid histories;
/// prints ms per 1,000 operations and the slowest history.
fn stress(runs: usize) -> Vec<String> {
    let shapes = [
        ("etcd-like: 100 ops, 1 key, 10 processes, 5 values, 15% unknown", Shape { ops: 100, concurrency: 10, keys: 1, unknown_percent: 15, values: 5 }),
        ("kv-like: 5000 ops, 10 keys, 40 processes, unique values, 5% unknown", Shape { ops: 5000, concurrency: 40, keys: 10, unknown_percent: 5, values: 0 }),
        ("long: 1000 ops, 1 key, 10 processes, 5 values, none unknown", Shape { ops: 1000, concurrency: 10, keys: 1, unknown_percent: 0, values: 5 }),
    ];
    let mut wrong = Vec::new();
    println!("generated register histories (history::generate), 10 seeds per set, median of {runs}:");
    println!("  {:<76} {:>14} {:>12}", "", "ms / 1000 ops", "slowest ms");
    for (label, shape) in shapes {
        for valid in [true, false] {
            let (mut total_ms, mut total_ops, mut slowest) = (0.0, 0usize, 0.0f64);
            for seed in 0..10 {
                let history = generate::register_history(seed, shape, valid);
                let (ms, verdict) = time_check(&history, runs);
                if !agrees(&verdict, valid) {
                    wrong.push(format!("generated {label} seed {seed} valid={valid}: got {verdict:?}"));
                }
                total_ms += ms;
                total_ops += history.ops.len();
                slowest = slowest.max(ms);
            }
            let name = format!("{label}, {}", if valid { "valid" } else { "invalid" });
            println!("  {name:<76} {:>14.3} {slowest:>12.3}", total_ms * 1000.0 / total_ops as f64);
        }
    }
    wrong
}
