//! `bench-explore`: guided exploration against random seeds on the planted
//! bug zoo, from the same wall-clock budget on one core.
//!
//! For every planted bug's scenario (`scenarios/bugs/`, the bug switched on),
//! each repetition runs random (fresh plans of consecutive seeds, starting at
//! `rep × 1,000,000`) and guided exploration (explorer seed `rep`) until the
//! first failing run or the budget, one run at a time. The seeds pinned for
//! the bug in `seeds/` are never used, so neither starts from the answer.
//! A trial that spent its budget without a failure counts at the budget
//! (marked `>`), which favours whichever strategy missed.

use super::Strategy;
use crate::scenario::Scenario;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One strategy's attempt at one bug.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    pub runs: u64,
    pub wall_secs: f64,
    pub found: bool,
}

/// One bug's trials.
#[derive(Debug, Clone)]
pub struct Row {
    pub bug: String,
    pub random: Vec<Trial>,
    pub guided: Vec<Trial>,
}

/// Runs `strategy` on the scenario at `path` until its first failure or
/// `budget`, in a process of its own (`exe explore ... --stop-at-failure`):
/// a run that stalls leaves a thread spinning, and it must not slow the
/// trials after it. The wall time is the process's, start to exit.
pub fn first_failure(exe: &Path, path: &str, strategy: Strategy, seed: u64, budget: Duration, skip_seeds: &[u64]) -> Trial {
    let corpus = std::env::temp_dir().join(format!("simkv-bench-explore-{}-{seed}-{:?}", std::process::id(), strategy));
    let _ = std::fs::remove_dir_all(&corpus);
    let mut command = std::process::Command::new(exe);
    command.args(["explore", "--scenario", path, "--seed", &seed.to_string(), "--jobs", "1", "--stop-at-failure", "--shrink-secs", "0"]);
    command.args(["--time-budget", &budget.as_secs().max(1).to_string(), "--stall-secs", "20", "--progress-secs", "100000"]);
    command.arg("--corpus").arg(&corpus);
    if strategy == Strategy::Random {
        command.arg("--random");
    }
    if !skip_seeds.is_empty() {
        let list: Vec<String> = skip_seeds.iter().map(u64::to_string).collect();
        command.args(["--skip-seeds", &list.join(",")]);
    }
    let started = std::time::Instant::now();
    let out = command.output();
    let wall_secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&corpus);
    let stdout = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    // `FAIL run N (checker): ...` for the first failure; else the last
    // `explore: N runs, ...` line.
    let number_after =
        |line: &str, prefix: &str| line.strip_prefix(prefix).and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()).and_then(|n| n.parse().ok());
    if let Some(runs) = stdout.lines().find_map(|l| number_after(l, "FAIL run ")) {
        return Trial { runs, wall_secs, found: true };
    }
    let runs = stdout.lines().rev().find_map(|l| number_after(l, "explore: ")).unwrap_or(0);
    Trial { runs, wall_secs, found: false }
}

/// Every bug of `paths`, `reps` times each strategy, each trial a process
/// of `exe`.
pub fn zoo(exe: &Path, paths: &[(PathBuf, Scenario)], pinned: &[(String, u64)], budget: Duration, reps: u64, log: &mut dyn FnMut(&str)) -> Vec<Row> {
    let mut rows = Vec::new();
    for (path, scenario) in paths {
        let file = path.display().to_string();
        let skip: Vec<u64> = pinned.iter().filter(|(s, _)| Path::new(s).file_name() == path.file_name()).map(|(_, seed)| *seed).collect();
        let mut row = Row { bug: scenario.name.clone(), random: vec![], guided: vec![] };
        for rep in 0..reps {
            row.random.push(first_failure(exe, &file, Strategy::Random, rep, budget, &skip));
            row.guided.push(first_failure(exe, &file, Strategy::Guided, rep, budget, &skip));
        }
        log(&line(&row));
        rows.push(row);
    }
    rows
}

/// The median of `trials` by wall time (and its runs), and whether every trial found the bug.
fn median(trials: &[Trial]) -> (f64, u64, bool) {
    let mut t = trials.to_vec();
    t.sort_by(|a, b| a.wall_secs.total_cmp(&b.wall_secs));
    let mut runs: Vec<u64> = trials.iter().map(|t| t.runs).collect();
    runs.sort_unstable();
    let mid = |n: usize| n / 2;
    (t[mid(t.len())].wall_secs, runs[mid(runs.len())], trials.iter().all(|t| t.found))
}

fn cell(trials: &[Trial]) -> String {
    let (wall, runs, all) = median(trials);
    let found = trials.iter().filter(|t| t.found).count();
    format!("{}{runs} runs / {}{wall:.1} s ({found}/{})", if all { "" } else { ">" }, if all { "" } else { ">" }, trials.len())
}

/// Random's median wall time over guided's: above 1, guided was faster.
pub fn ratio(row: &Row) -> f64 {
    median(&row.random).0.max(1e-3) / median(&row.guided).0.max(1e-3)
}

/// The same in runs.
pub fn runs_ratio(row: &Row) -> f64 {
    median(&row.random).1.max(1) as f64 / median(&row.guided).1.max(1) as f64
}

fn line(row: &Row) -> String {
    format!("{:<38} random {:<30} guided {:<30} {:>6.2}x wall {:>6.2}x runs", row.bug, cell(&row.random), cell(&row.guided), ratio(row), runs_ratio(row))
}

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// The table, the zoo's median ratios (all bugs, and the bugs random needed
/// more than three runs for), and the bugs random found faster.
pub fn summary(rows: &[Row]) -> (String, f64) {
    let mut out =
        String::from("bug                                    random: median runs / wall s to the first failure (found/trials)   guided   random/guided\n");
    for row in rows {
        let _ = writeln!(out, "{}", line(row));
    }
    let all = median_of(rows.iter().map(ratio).collect());
    let _ = writeln!(
        out,
        "median over the zoo ({} bugs), random over guided: {all:.2}x in wall time, {:.2}x in runs (goal: at least 2x)",
        rows.len(),
        median_of(rows.iter().map(runs_ratio).collect())
    );
    let hard: Vec<&Row> = rows.iter().filter(|r| median(&r.random).1 > 3).collect();
    let _ = writeln!(
        out,
        "median over the {} bugs random needed more than 3 runs for: {:.2}x in wall time, {:.2}x in runs",
        hard.len(),
        median_of(hard.iter().map(|r| ratio(r)).collect()),
        median_of(hard.iter().map(|r| runs_ratio(r)).collect())
    );
    let random_wins: Vec<&str> = rows.iter().filter(|r| ratio(r) < 1.0).map(|r| r.bug.as_str()).collect();
    let _ = writeln!(
        out,
        "random was faster (wall) on {} of {}: {}",
        random_wins.len(),
        rows.len(),
        if random_wins.is_empty() { "none".into() } else { random_wins.join(", ") }
    );
    (out, all)
}

/// What computing coverage adds to a run: over seeds `0..runs` of
/// `scenario`, the CPU time of the runs (this thread's: a run is one
/// thread) and the part of it spent on coverage.
pub fn coverage_cost(scenario: &Scenario, runs: u64) -> (f64, f64) {
    let (mut total, mut coverage) = (0.0, 0.0);
    for seed in 0..runs {
        let before = super::coverage::thread_cpu_time();
        let report = crate::run::run(scenario, &crate::nemesis::Plan::draw(scenario, seed));
        total += (super::coverage::thread_cpu_time() - before).as_secs_f64();
        coverage += report.coverage_cpu.as_secs_f64();
    }
    (total, coverage)
}
