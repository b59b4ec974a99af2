//! The short fuzz campaign `.ci/mutants` runs against each mutant that
//! cargo-mutants makes of the store: every seed of every scenario named, in
//! release, two runs at a time. A mutant is caught when any run fails.
//!
//! Not part of `cargo test` (`test = false` in `sim/Cargo.toml`); run by name:
//!
//! ```text
//! SIMKV_MUTANTS_SCENARIOS=scenarios/split.toml,scenarios/chaos.toml SIMKV_MUTANTS_SEEDS=0..40 \
//!   cargo test --release -p simkv-sim --test mutation_campaign
//! ```
//!
//! Scenario paths are relative to the repository root. Exit 0 when every run
//! passed, 1 at the first failing run (printed with its replay command), 2
//! for bad input.

use simkv_sim::nemesis::Plan;
use simkv_sim::run;
use simkv_sim::scenario::Scenario;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf();
    let Ok(list) = std::env::var("SIMKV_MUTANTS_SCENARIOS") else {
        eprintln!("error: SIMKV_MUTANTS_SCENARIOS is not set (comma-separated scenario files, relative to the repository root)");
        std::process::exit(2);
    };
    let seeds = std::env::var("SIMKV_MUTANTS_SEEDS").unwrap_or_else(|_| "0..50".into());
    let Some((a, b)) = seeds.split_once("..").and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))) else {
        eprintln!("error: SIMKV_MUTANTS_SEEDS: expected `A..B`, got {seeds:?}");
        std::process::exit(2);
    };
    let mut runs = Vec::new();
    for file in list.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let scenario = Scenario::load(&root.join(file)).unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(2);
        });
        runs.extend((a..b).map(|seed| (file.to_string(), scenario.clone(), seed)));
    }
    let (next, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
    let first_failure = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some((file, scenario, seed)) = runs.get(next.fetch_add(1, Ordering::Relaxed)) else { break };
                    let plan = Plan::draw(scenario, *seed);
                    // A mutant that livelocks a run is caught as a stall (the
                    // stuck thread cannot be stopped: the process ends).
                    let name = format!("{file} seed {seed}");
                    let report = run::run_watched(scenario, &plan, Duration::from_secs(60), move |stall| {
                        println!("caught: {name}: stall: {stall}");
                        std::process::exit(1);
                    });
                    if !report.passed() {
                        failed.store(true, Ordering::Relaxed);
                        let what = report
                            .failures
                            .iter()
                            .map(|f| format!("{}: {}", f.checker, f.explanation.lines().next().unwrap_or("")))
                            .collect::<Vec<_>>()
                            .join("; ");
                        first_failure.lock().unwrap().get_or_insert(format!("{file} seed {seed}: {what}"));
                    }
                }
            });
        }
    });
    match first_failure.into_inner().unwrap() {
        Some(failure) => {
            println!("caught: {failure}");
            std::process::exit(1);
        }
        None => println!("not caught: {} runs passed", runs.len()),
    }
}
