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

use super::{Explorer, Options, Strategy};
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

/// Runs `strategy` on `scenario` until its first failure or `budget`.
pub fn first_failure(scenario: &Scenario, path: &str, strategy: Strategy, seed: u64, budget: Duration, skip_seeds: &[u64]) -> Trial {
    let options = Options {
        strategy,
        seed,
        jobs: 1,
        max_runs: None,
        time_budget: Some(budget),
        stall: Duration::from_secs(60),
        stop_at_failure: true,
        shrink: None,
        progress: None,
        skip_seeds: skip_seeds.to_vec(),
    };
    let mut e = Explorer::open(scenario.clone(), path, options, None).expect("an explorer without a folder opens");
    let started = std::time::Instant::now();
    let _ = e.run(&mut |_| {});
    match e.failures.first() {
        Some(f) => Trial { runs: f.run, wall_secs: f.wall_secs, found: true },
        None => Trial { runs: e.runs, wall_secs: started.elapsed().as_secs_f64(), found: false },
    }
}

/// Every bug of `paths`, `reps` times each strategy.
pub fn zoo(paths: &[(PathBuf, Scenario)], pinned: &[(String, u64)], budget: Duration, reps: u64, log: &mut dyn FnMut(&str)) -> Vec<Row> {
    let mut rows = Vec::new();
    for (path, scenario) in paths {
        let file = path.display().to_string();
        let skip: Vec<u64> = pinned.iter().filter(|(s, _)| Path::new(s).file_name() == path.file_name()).map(|(_, seed)| *seed).collect();
        let mut row = Row { bug: scenario.name.clone(), random: vec![], guided: vec![] };
        for rep in 0..reps {
            row.random.push(first_failure(scenario, &file, Strategy::Random, rep, budget, &skip));
            row.guided.push(first_failure(scenario, &file, Strategy::Guided, rep, budget, &skip));
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

fn line(row: &Row) -> String {
    format!("{:<38} random {:<34} guided {:<34} {:.2}x", row.bug, cell(&row.random), cell(&row.guided), ratio(row))
}

/// The table, the zoo's median ratio, and the bugs random found faster.
pub fn summary(rows: &[Row]) -> (String, f64) {
    let mut out =
        String::from("bug                                    random (median runs / wall to the first failure; found/trials)   guided   random/guided\n");
    for row in rows {
        let _ = writeln!(out, "{}", line(row));
    }
    let mut ratios: Vec<f64> = rows.iter().map(ratio).collect();
    ratios.sort_by(f64::total_cmp);
    let median = if ratios.is_empty() { f64::NAN } else { ratios[ratios.len() / 2] };
    let _ = writeln!(out, "median over the zoo of random's wall time over guided's: {median:.2}x (goal: at least 2x)");
    let random_wins: Vec<&str> = rows.iter().filter(|r| ratio(r) < 1.0).map(|r| r.bug.as_str()).collect();
    let _ = writeln!(
        out,
        "random was faster on {} of {}: {}",
        random_wins.len(),
        rows.len(),
        if random_wins.is_empty() { "none".into() } else { random_wins.join(", ") }
    );
    (out, median)
}
