//! What runs print and write: the outcome of a run (with the exact replay
//! command when it failed), the fuzz summary (text and JSON), and the replay
//! folder. Pinned by insta snapshots: these formats change only on purpose.

use crate::history::formats;
use crate::run::{RunOutcome, RunReport};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// The build a result came from: the commit (`git rev-parse`) and profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildInfo {
    pub commit: String,
    pub profile: String,
}

impl Default for BuildInfo {
    fn default() -> Self {
        BuildInfo { commit: env!("SIMKV_BUILD_COMMIT").to_string(), profile: env!("SIMKV_BUILD_PROFILE").to_string() }
    }
}

/// What `replay --found-by COMMIT` says when this binary is not that build.
pub fn build_mismatch(found_by: &str) -> Option<String> {
    let here = BuildInfo::default();
    (found_by != here.commit).then(|| {
        format!(
            "warning: this binary was built from {} but the seed was found by {found_by}: the plan (faults, swarm) is the same, the run itself may differ",
            here.commit
        )
    })
}

/// The command that reruns exactly this run.
pub fn replay_command(scenario_path: &str, seed: u64) -> String {
    format!("cargo run --release -p simkv-sim -- replay --scenario {scenario_path} --seed {seed}")
}

/// One line (and the replay command) for a run that did not pass, as `fuzz`
/// prints it while the campaign goes on: the checkers that failed, the first
/// line of the first explanation. `run` or `replay` with the seed shows all.
/// What a run's seconds are: simulated time, or on real processes the
/// machine's.
#[cfg(madsim)]
const RUN_SECONDS: &str = "simulated s";
#[cfg(not(madsim))]
const RUN_SECONDS: &str = "s of real time";

pub fn outcome_line(scenario_path: &str, report: &RunReport) -> String {
    let (what, checks) = match report.outcome() {
        RunOutcome::Pass => return String::new(),
        RunOutcome::Fail => ("FAIL", &report.failures),
        RunOutcome::Inconclusive => ("INCONCLUSIVE", &report.inconclusive),
    };
    let names: Vec<&str> = checks.iter().map(|f| f.checker.as_str()).collect();
    let first = checks.first().and_then(|f| f.explanation.lines().next()).unwrap_or("").trim();
    format!(
        "{what} {} seed {}: {}: {first}\n  replay: {}\n",
        report.plan.scenario,
        report.plan.seed,
        names.join(", "),
        replay_command(scenario_path, report.plan.seed)
    )
}

/// The text `run`, `replay` and `fuzz` print for one run.
pub fn outcome_text(scenario_path: &str, report: &RunReport) -> String {
    let mut out = String::new();
    let plan = &report.plan;
    let s = &report.stats;
    if report.outcome() == RunOutcome::Inconclusive {
        let _ = writeln!(out, "INCONCLUSIVE {} seed {}: no check failed, but not every check could decide", plan.scenario, plan.seed);
        let _ = writeln!(out, "{}", plan.swarm_line());
        for f in &report.inconclusive {
            let _ = writeln!(out, "checker {} inconclusive:", f.checker);
            for line in f.explanation.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        let _ = writeln!(out, "replay: {}", replay_command(scenario_path, plan.seed));
        return out;
    }
    if report.passed() {
        let _ = writeln!(
            out,
            "PASS {} seed {}: {} ops ({} completed, {} unknown), {} faults, {} regions, {} store events, {:.1} {RUN_SECONDS}, digest {:016x}",
            plan.scenario,
            plan.seed,
            s.ops,
            s.ok,
            s.unknown,
            s.faults,
            s.regions,
            s.events,
            s.sim_millis as f64 / 1000.0,
            report.digest
        );
        if s.placement.iter().any(|&(_, held, _)| held != s.regions) {
            let stores: Vec<String> = s.placement.iter().map(|(store, held, led)| format!("store {store}: {held} regions, {led} leaders")).collect();
            let _ = writeln!(out, "  placement: {}", stores.join("; "));
        }
        let stops = report.timeline.iter().filter(|l| l.contains("supervisor: store") && l.contains("stopped")).count();
        if s.damaged + stops > 0 {
            let _ =
                writeln!(out, "  disk: {} damaged replicas found, {} repaired by snapshot; {} stores stopped on a failed write", s.damaged, s.repaired, stops);
        }
        if s.hibernated > 0 {
            let _ = writeln!(out, "  hibernation: peers hibernated {} times and woke {} times", s.hibernated, s.woke);
        }
        return out;
    }
    let _ = writeln!(out, "FAIL {} seed {}", plan.scenario, plan.seed);
    let _ = writeln!(out, "{}", plan.swarm_line());
    for (f, what) in report.failures.iter().map(|f| (f, "failed")).chain(report.inconclusive.iter().map(|f| (f, "inconclusive"))) {
        let _ = writeln!(out, "checker {} {what}:", f.checker);
        for line in f.explanation.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    let _ = writeln!(out, "replay: {}", replay_command(scenario_path, plan.seed));
    out
}

pub fn determinism_line(first: &RunReport, second: &RunReport) -> String {
    if first.digest == second.digest {
        format!("deterministic: seed {} gave digest {:016x} twice", first.plan.seed, first.digest)
    } else {
        format!("NOT deterministic: seed {} gave digests {:016x} and {:016x}", first.plan.seed, first.digest, second.digest)
    }
}

/// Writes the plan, the history (EDN, and Porcupine logs per key) and the
/// timeline of a run into `dir`; returns the file names.
pub fn write_replay(dir: &Path, report: &RunReport) -> std::io::Result<Vec<String>> {
    write_replay_of(dir, &report.plan.scenario, report)
}

/// [`write_replay`], naming the scenario file the run came from.
pub fn write_replay_of(dir: &Path, scenario_path: &str, report: &RunReport) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    let mut write = |name: &str, text: &str| -> std::io::Result<()> {
        std::fs::write(dir.join(name), text)?;
        files.push(dir.join(name).display().to_string());
        Ok(())
    };
    write("plan.toml", &report.plan.to_toml())?;
    // history.edn is the run's history as `check` reads it: the register
    // operations, or for a list-append run (which records none) its
    // transactions in Elle's layout, the same as list-append.edn. The bank
    // and table workloads record no register operations: their histories
    // are bank.edn and table.edn only.
    if !report.history.ops.is_empty() {
        write("history.edn", &formats::to_edn(&report.history))?;
    } else if !report.list_append.is_empty() {
        write(
            "history.edn",
            &crate::workload::list_append::history::to_edn(&crate::workload::list_append::history::TxnHistory::recorded(&report.list_append)),
        )?;
    }
    if !report.bank.is_empty() {
        write("bank.edn", &crate::workload::bank::history::to_edn(&report.bank))?;
    }
    if !report.list_append.is_empty() {
        write(
            "list-append.edn",
            &crate::workload::list_append::history::to_edn(&crate::workload::list_append::history::TxnHistory::recorded(&report.list_append)),
        )?;
    }
    if !report.table.is_empty() {
        write("table.edn", &crate::workload::table::history::to_edn(&report.table))?;
    }
    for (i, key) in report.history.keys().iter().enumerate() {
        if let Ok(log) = formats::to_porcupine_log(&report.history, key) {
            write(&format!("history-key{i}.porcupine.log"), &log)?;
        }
    }
    let mut timeline = report.timeline.join("\n");
    timeline.push('\n');
    for f in &report.failures {
        let _ = writeln!(timeline, "checker {} failed:\n{}", f.checker, f.explanation);
    }
    for f in &report.inconclusive {
        let _ = writeln!(timeline, "checker {} inconclusive:\n{}", f.checker, f.explanation);
    }
    write("timeline.txt", &timeline)?;
    write("timeline.html", &crate::timeline_html::render(scenario_path, report))?;
    Ok(files)
}

#[derive(Debug, Default, Serialize)]
pub struct FuzzFailure {
    pub scenario: String,
    pub seed: u64,
    pub checker: String,
    pub explanation: String,
    pub replay: String,
}

impl FuzzFailure {
    fn new(scenario_path: &str, seed: u64, checker: &str, explanation: &str) -> Self {
        FuzzFailure {
            scenario: scenario_path.to_string(),
            seed,
            checker: checker.to_string(),
            explanation: explanation.to_string(),
            replay: replay_command(scenario_path, seed),
        }
    }
}

/// Totals of a fuzz campaign. Every run counts in exactly one of `passed`,
/// `failed` and `inconclusive`.
#[derive(Debug, Default, Serialize)]
pub struct FuzzSummary {
    pub runs: u64,
    pub passed: u64,
    pub failed: u64,
    /// Runs where no check failed but some check could not decide.
    pub inconclusive: u64,
    /// Runs not started because the time budget ran out.
    pub skipped: u64,
    pub ops: u64,
    pub faults: u64,
    pub simulated_secs: f64,
    pub wall_secs: f64,
    /// Runs going at once (`--jobs`): the simulated seconds per wall second
    /// of the campaign are over all of them.
    pub workers: u64,
    pub failures: Vec<FuzzFailure>,
    /// The checks that could not decide, one entry each, with the replay command.
    pub inconclusive_checks: Vec<FuzzFailure>,
    /// The build that ran the campaign (pass `build.commit` to `replay --found-by`).
    pub build: BuildInfo,
    /// How often each buggify site fired across the campaign (coverage).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub buggify: std::collections::BTreeMap<String, u64>,
    /// The process's peak resident memory when the campaign ended (MB), where
    /// the system says it (`VmHWM` on Linux).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_mb: Option<f64>,
}

/// The process's peak resident set size so far, in bytes (Linux: `VmHWM` in
/// `/proc/self/status`); `None` where the system does not say.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

impl FuzzSummary {
    /// Counts a run; `failed` adds a failure the report does not hold (a
    /// determinism mismatch).
    pub fn add(&mut self, report: &RunReport, failed: bool) {
        self.runs += 1;
        match report.outcome() {
            RunOutcome::Fail => self.failed += 1,
            _ if failed => self.failed += 1,
            RunOutcome::Inconclusive => self.inconclusive += 1,
            RunOutcome::Pass => self.passed += 1,
        }
        self.ops += report.stats.ops as u64;
        self.faults += report.stats.faults as u64;
        self.simulated_secs += report.stats.sim_millis as f64 / 1000.0;
        for (site, n) in &report.buggify {
            *self.buggify.entry(site.clone()).or_default() += n;
        }
    }

    pub fn add_inconclusive(&mut self, scenario_path: &str, seed: u64, checker: &str, explanation: &str) {
        self.inconclusive_checks.push(FuzzFailure::new(scenario_path, seed, checker, explanation));
    }

    pub fn add_failure(&mut self, scenario_path: &str, seed: u64, checker: &str, explanation: &str) {
        self.failures.push(FuzzFailure::new(scenario_path, seed, checker, explanation));
    }

    pub fn line(&self) -> String {
        let rate = if self.wall_secs > 0.0 { self.simulated_secs / self.wall_secs } else { 0.0 };
        let workers = if self.workers > 1 { format!(" over {} workers, {:.1}x each", self.workers, rate / self.workers as f64) } else { String::new() };
        format!(
            "fuzz: {} runs, {} passed, {} failed, {} inconclusive, {} skipped (time budget); {} ops, {} faults; {:.0} simulated s in {:.1} wall s ({:.1}x{workers})",
            self.runs, self.passed, self.failed, self.inconclusive, self.skipped, self.ops, self.faults, self.simulated_secs, self.wall_secs, rate
        ) + &self.coverage()
            + &self.peak_rss_mb.map(|mb| format!("; peak RSS {mb:.0} MB")).unwrap_or_default()
    }

    /// The failed and inconclusive runs, one line each in seed order (then
    /// scenario), with the first line of what failed and the replay command;
    /// "" when there are none.
    pub fn failures_text(&self) -> String {
        let mut out = String::new();
        let mut all: Vec<(&str, &FuzzFailure)> = self.failures.iter().map(|f| ("FAILED", f)).collect();
        all.extend(self.inconclusive_checks.iter().map(|f| ("INCONCLUSIVE", f)));
        all.sort_by(|(_, a), (_, b)| (a.seed, &a.scenario, &a.checker).cmp(&(b.seed, &b.scenario, &b.checker)));
        for (what, f) in all {
            let _ = writeln!(out, "{what} {} seed {}: {}: {}", f.scenario, f.seed, f.checker, f.explanation.lines().next().unwrap_or("").trim());
            let _ = writeln!(out, "  replay: {}", f.replay);
        }
        out
    }

    /// The buggify sites that fired, and how often ("" when none did).
    fn coverage(&self) -> String {
        if self.buggify.is_empty() {
            return String::new();
        }
        let sites: Vec<String> = self.buggify.iter().map(|(site, n)| format!("{site} {n}")).collect();
        format!("; buggify fired: {}", sites.join(", "))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("summary serializes")
    }
}
