//! The short fuzz campaign `.ci/mutants` runs against each mutant that
//! cargo-mutants makes of the store. cargo-mutants runs the tests of the
//! package it mutates (this one), so this program builds the testbed from the
//! same (mutated) tree and runs `simkv-sim fuzz` over every scenario named:
//! the mutant is caught when any run fails (a stall included).
//!
//! Not part of `cargo test` (`test = false` in `Cargo.toml`); run by name:
//!
//! ```text
//! SIMKV_MUTANTS_SCENARIOS=scenarios/split.toml,scenarios/chaos.toml SIMKV_MUTANTS_SEEDS=0..30 \
//!   cargo test --release --test mutation_campaign
//! ```
//!
//! `SIMKV_MUTANTS_UNIT`, if set, names unit tests of the store (a `cargo test`
//! filter, e.g. `raftstore::lease::model`) that run first, in release: a
//! module with a model of its own (the lease's, against raft-rs) is checked
//! by it as well as by the campaign.
//!
//! Scenario paths are relative to the repository root; a planted bug's
//! scenario (`scenarios/bugs/`) runs without its bug, as the shape built to
//! open that bug's window. The testbed is built
//! into `$CARGO_TARGET_DIR-campaign` (the outer build holds the target
//! directory's lock while this runs). Exit 0 when every run passed, 1 when
//! one failed (printed), 2 for bad input or a build that failed.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let root = env!("CARGO_MANIFEST_DIR");
    let Ok(list) = std::env::var("SIMKV_MUTANTS_SCENARIOS") else {
        eprintln!("error: SIMKV_MUTANTS_SCENARIOS is not set (comma-separated scenario files, relative to the repository root)");
        return ExitCode::from(2);
    };
    let seeds = std::env::var("SIMKV_MUTANTS_SEEDS").unwrap_or_else(|_| "0..30".into());
    let target = format!("{}-campaign", std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{root}/target")));
    if let Ok(filter) = std::env::var("SIMKV_MUTANTS_UNIT") {
        let unit = Command::new(env!("CARGO"))
            .args(["test", "--release", "-q", "-p", "simkv", "--lib", &filter])
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_INCREMENTAL", "1")
            .current_dir(root)
            .output();
        match unit {
            Ok(out) if out.status.success() => println!("unit tests {filter}: passed"),
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                let first = text.lines().find(|l| l.contains("FAILED") || l.contains("panicked")).unwrap_or("a unit test failed");
                println!("caught by unit tests {filter}: {first}");
                return ExitCode::from(1);
            }
            Err(e) => {
                eprintln!("error: could not run the unit tests {filter}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    // Each mutant changes one line of one file: incremental release builds
    // reuse the rest of the build of the mutant before it.
    let built = Command::new(env!("CARGO"))
        .args(["build", "--release", "-q", "-p", "simkv-sim"])
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_INCREMENTAL", "1")
        .current_dir(root)
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("error: the testbed did not build");
        return ExitCode::from(2);
    }
    let bin = format!("{target}/release/simkv-sim");
    for scenario in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        // A planted bug's scenario is the shape built to open its window:
        // run it without the bug.
        let Ok(text) = std::fs::read_to_string(format!("{root}/{scenario}")) else {
            eprintln!("error: cannot read {scenario}");
            return ExitCode::from(2);
        };
        let clean: String = text.lines().filter(|l| !l.trim_start().starts_with("bugs")).map(|l| format!("{l}\n")).collect();
        let name = std::path::Path::new(scenario).file_name().map_or("scenario.toml".into(), |n| n.to_string_lossy().into_owned());
        let file = format!("{target}/campaign-{name}");
        if std::fs::write(&file, clean).is_err() {
            eprintln!("error: cannot write {file}");
            return ExitCode::from(2);
        }
        let out =
            Command::new(&bin).args(["fuzz", "--scenarios", &file, "--seeds", &seeds, "--stall-secs", "60", "--allow-inconclusive"]).current_dir(root).output();
        let Ok(out) = out else {
            eprintln!("error: could not run {bin}");
            return ExitCode::from(2);
        };
        let text = String::from_utf8_lossy(&out.stdout);
        match out.status.code() {
            Some(0) => println!("{scenario}: every run passed"),
            Some(1) => {
                let first = text.lines().find(|l| l.starts_with("FAIL")).unwrap_or("a run failed");
                println!("caught: {first}");
                return ExitCode::from(1);
            }
            other => {
                eprintln!("error: fuzz of {scenario} exited {other:?}: {}", String::from_utf8_lossy(&out.stderr));
                return ExitCode::from(2);
            }
        }
    }
    println!("not caught");
    ExitCode::SUCCESS
}
