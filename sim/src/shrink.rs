//! Shrinking a failing run: the smallest plan that still fails the same way.
//!
//! Starting from a seed's plan, try smaller plans and keep each one whose run
//! fails with **the same checker**: drop faults (delta debugging over the
//! schedule: halves, then quarters, ... then single faults), halve fault
//! durations, fewer clients, keys, regions and stores, no transport loss or
//! delay, a shorter safety phase. Passes repeat until none of them helps, the
//! run budget is spent or the wall-clock budget is. Every candidate is an
//! ordinary plan: the result replays with `run --schedule plan.toml`.

use crate::checker::Checker;
use crate::nemesis::Plan;
use crate::run::{self, RunReport};
use crate::scenario::Scenario;
use std::time::{Duration, Instant};

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub faults: usize,
    pub ops: usize,
    pub sim_millis: u64,
}

impl Size {
    fn of(report: &RunReport) -> Size {
        Size { faults: report.plan.faults.len(), ops: report.stats.ops, sim_millis: report.stats.sim_millis }
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} faults, {} operations, {:.1} simulated s", self.faults, self.ops, self.sim_millis as f64 / 1000.0)
    }
}

pub struct Shrunk {
    pub checker: Checker,
    pub original: Size,
    pub shrunk: Size,
    pub plan: Plan,
    pub runs: usize,
}

/// Limits on the search.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub runs: usize,
    pub wall: Duration,
    /// A candidate whose simulated time stops for this long fails `stall`.
    pub stall: Duration,
}

/// One run, watched, on a thread of its own: the checkers that failed and its
/// size. A run whose simulated time stops for `stall` of wall time fails the
/// `stall` checker.
fn watched_run(scenario: &Scenario, plan: &Plan, stall: Duration) -> (Vec<Checker>, Size) {
    match run::run_or_stall(scenario, plan, stall) {
        Ok(report) => (report.failures.iter().map(|f| f.checker).collect(), Size::of(&report)),
        Err(s) => (vec![Checker::Stall], Size { faults: plan.faults.len(), ops: 0, sim_millis: s.sim_ms }),
    }
}

struct Search<'a> {
    scenario: &'a Scenario,
    checker: Checker,
    budget: Budget,
    started: Instant,
    runs: usize,
    best: Plan,
    best_size: Size,
    log: &'a mut dyn FnMut(&str),
}

impl Search<'_> {
    fn spent(&self) -> bool {
        self.runs >= self.budget.runs || self.started.elapsed() >= self.budget.wall
    }

    /// Runs `candidate`; keeps it if the checker still fails. Returns whether it did.
    fn try_plan(&mut self, what: &str, candidate: Plan) -> bool {
        if self.spent() || candidate == self.best {
            return false;
        }
        self.runs += 1;
        let (failed, size) = watched_run(self.scenario, &candidate, self.budget.stall);
        if !failed.contains(&self.checker) {
            return false;
        }
        (self.log)(&format!("kept: {what} -> {size}"));
        self.best = candidate;
        self.best_size = size;
        true
    }

    /// Delta debugging over the fault schedule.
    fn drop_faults(&mut self) -> bool {
        let mut changed = false;
        let mut chunks = 2;
        while !self.best.faults.is_empty() && !self.spent() {
            let n = self.best.faults.len();
            let chunk = n.div_ceil(chunks.min(n));
            let mut removed_any = false;
            let mut start = 0;
            while start < self.best.faults.len() && !self.spent() {
                let end = (start + chunk).min(self.best.faults.len());
                let mut candidate = self.best.clone();
                candidate.faults.drain(start..end);
                if self.try_plan(&format!("drop faults {start}..{end}"), candidate) {
                    removed_any = true;
                    changed = true;
                } else {
                    start = end;
                }
            }
            if removed_any {
                chunks = (chunks - 1).max(2);
            } else if chunk == 1 {
                break;
            } else {
                chunks *= 2;
            }
        }
        changed
    }

    fn smaller_plans(&self) -> Vec<(String, Plan)> {
        let best = &self.best;
        let mut out = Vec::new();
        let mut with = |what: &str, f: &dyn Fn(&mut Plan)| {
            let mut p = best.clone();
            f(&mut p);
            out.push((what.to_string(), p));
        };
        if best.faults.iter().any(|f| f.duration_ms > 200) {
            with("halve fault durations", &|p| p.faults.iter_mut().for_each(|f| f.duration_ms = (f.duration_ms / 2).max(100)));
        }
        if best.swarm.clients > 1 {
            with("one client fewer", &|p| p.swarm.clients -= 1);
        }
        if best.swarm.keys > 1 {
            with("one key fewer", &|p| p.swarm.keys -= 1);
        }
        if best.swarm.regions > 1 {
            with("one region fewer", &|p| p.swarm.regions -= 1);
        }
        let replicas = self.scenario.cluster.replicas.max(1);
        if best.swarm.stores > replicas {
            with("one store fewer", &|p| {
                p.swarm.stores -= 1;
                let stores = p.swarm.stores;
                p.faults.retain(|f| f.fault.stores().iter().all(|s| *s <= stores));
            });
        }
        if best.swarm.raft_loss > 0.0
            || best.swarm.raft_duplicate > 0.0
            || best.swarm.raft_delay_ms > 0
            || best.swarm.client_loss > 0.0
            || best.swarm.client_delay_ms > 0
        {
            with("no transport loss or delay", &|p| {
                p.swarm.raft_loss = 0.0;
                p.swarm.raft_duplicate = 0.0;
                p.swarm.raft_delay_ms = 0;
                p.swarm.client_loss = 0.0;
                p.swarm.client_delay_ms = 0;
            });
        }
        // Buggify sites, one at a time (the last one enabled first).
        if let Some(&site) = best.buggify.last() {
            with(&format!("buggify without {site}"), &|p| p.buggify.retain(|s| *s != site));
        }
        let safety = best.safety_secs.unwrap_or(self.scenario.phases.safety_secs);
        if safety > 2 {
            let shorter = (safety / 2).max(2);
            with(&format!("a {shorter} s safety phase"), &|p| {
                p.safety_secs = Some(shorter);
                p.faults.retain(|f| f.at_ms < shorter * 1000);
            });
        }
        out
    }
}

/// Shrinks `plan`, which must fail `checker` (or, if `None`, any checker: the
/// first that fails is the one kept failing).
pub fn shrink(scenario: &Scenario, plan: Plan, checker: Option<Checker>, budget: Budget, log: &mut dyn FnMut(&str)) -> Result<Shrunk, String> {
    let (failed, original) = watched_run(scenario, &plan, budget.stall);
    let checker = match checker {
        Some(c) if failed.contains(&c) => c,
        Some(c) => return Err(format!("seed {} does not fail the {c} checker; it {}", plan.seed, if failed.is_empty() { "passes" } else { "fails others" })),
        None => failed.first().copied().ok_or_else(|| format!("seed {} passes: nothing to shrink", plan.seed))?,
    };
    log(&format!("shrinking {} seed {} failing {checker}: {original}", scenario.name, plan.seed));
    let mut search = Search { scenario, checker, budget, started: Instant::now(), runs: 1, best: plan, best_size: original, log };
    loop {
        let mut changed = search.drop_faults();
        for (what, candidate) in search.smaller_plans() {
            changed |= search.try_plan(&what, candidate);
        }
        if !changed || search.spent() {
            break;
        }
    }
    Ok(Shrunk { checker: search.checker, original, shrunk: search.best_size, plan: search.best, runs: search.runs })
}
