//! One run against real processes: the scenario's cluster started as
//! processes of the `simkv` binary (`cluster`'s real implementation), then
//! the same two phases, workloads, nemesis and checkers as a simulated run.
//!
//! What differs from simulation is only what cannot be the same: time is
//! the machine's (a run takes its phases' length in wall time), nothing is
//! reproducible from the seed except the plan (the schedule of faults and
//! the swarm), and what only the simulator can do is refused before the run
//! starts (`Plan::sim_only`): disk faults, buggify and planted bugs.
//!
//! The processes live in a directory of their own under the system's temp
//! directory, removed when the run ends, fails or is interrupted (Ctrl-C
//! kills every process first); `--keep` keeps it. Each process's log and
//! event file are copied into the run's output folder.

use super::{phases, spec, RunReport};
use crate::cluster::{Cluster, RealSetup};
use crate::nemesis::Plan;
use crate::scenario::Scenario;
use crate::workload::Recorded;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// How a real run is set up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The `simkv` binary; found by [`find_simkv`] when not given.
    pub simkv_bin: Option<PathBuf>,
    /// Where the processes' logs and event files are copied.
    pub out: Option<PathBuf>,
    /// Keeps the processes' directory (data, logs) after the run.
    pub keep: bool,
    /// Runs the plan without what only simulation can do instead of refusing it.
    pub skip_sim_only: bool,
}

/// Why a real run did not produce a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRun {
    /// The plan or the setup cannot run (the message says what and how to fix it).
    Refused(String),
    /// Ctrl-C: every process was killed and the directory removed.
    Interrupted,
}

/// The `simkv` binary: `explicit`, else `$SIMKV_BIN`, else the one built
/// next to this executable (the same target directory; a test's executable
/// is one folder further down).
pub fn find_simkv(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit.map(Path::to_path_buf).or_else(|| std::env::var_os("SIMKV_BIN").map(PathBuf::from)) {
        return if path.is_file() { Ok(path) } else { Err(format!("{}: no such file (the simkv binary)", path.display())) };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot tell where this executable is: {e}"))?;
    let candidates: Vec<PathBuf> = exe.ancestors().skip(1).take(2).map(|dir| dir.join("simkv")).collect();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        format!(
            "cannot find the simkv binary (looked for {}); build it with `RUSTFLAGS=\"\" cargo build --release --bin simkv` (into the same target directory) or pass --simkv-bin",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" and ")
        )
    })
}

/// A run's directory under the system's temp directory, removed when dropped.
struct RunDir {
    path: PathBuf,
    keep: bool,
}

impl RunDir {
    fn new(keep: bool) -> Result<RunDir, String> {
        static RUNS: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!("simkv-real-{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::SeqCst)));
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(RunDir { path, keep })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept the processes' directory: {}", self.path.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("could not remove {}: {e}", self.path.display());
        }
    }
}

/// Runs `scenario` with `plan` on real processes, in a runtime of its own,
/// until it ends or Ctrl-C.
pub fn run_blocking(scenario: &Scenario, plan: &Plan, options: &Options) -> Result<RunReport, NotRun> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| NotRun::Refused(format!("a tokio runtime: {e}")))?;
    runtime.block_on(async {
        let dir = RunDir::new(options.keep).map_err(NotRun::Refused)?;
        tokio::select! {
            report = run(scenario, plan, options, &dir.path) => report.map_err(NotRun::Refused),
            _ = tokio::signal::ctrl_c() => {
                crate::cluster::kill_all();
                eprintln!("interrupted: every process of the run killed");
                Err(NotRun::Interrupted)
            }
        }
    })
}

/// Runs `scenario` with `plan` on real processes whose files go in `dir`.
/// `Err`: the plan asks for what only simulation can do, the binary is
/// missing, or the cluster did not come up (the message says which, and
/// where the processes' logs are).
pub async fn run(scenario: &Scenario, plan: &Plan, options: &Options, dir: &Path) -> Result<RunReport, String> {
    let mut sim_only = scenario.sim_only();
    sim_only.extend(plan.sim_only());
    let plan = if options.skip_sim_only {
        plan.without_sim_only()
    } else if sim_only.is_empty() {
        plan.clone()
    } else {
        return Err(format!("{} asks for what only the simulator can do (--skip-sim-only runs it without):\n  {}", scenario.name, sim_only.join("\n  ")));
    };
    let setup = RealSetup { bin: find_simkv(options.simkv_bin.as_deref())?, dir: dir.to_path_buf(), bugs: plan.bugs.clone() };
    let recorded = Arc::new(Recorded::default());
    let events = Arc::default();
    let spec = spec::cluster_spec(scenario, &plan, &recorded, Arc::clone(&events), Arc::default());
    let baseline_io = spec.io.clone();
    let started = Cluster::start(spec, &setup).await;
    let cluster = match started {
        Ok(cluster) => Arc::new(cluster),
        Err(e) => {
            if let Some(out) = &options.out {
                copy_files(out, &setup.dir);
            }
            return Err(format!(
                "{e}\n(the processes' logs: {})",
                options.out.as_ref().map_or(setup.dir.display().to_string(), |o| o.join("logs").display().to_string())
            ));
        }
    };
    let shared = Arc::new(spec::shared(scenario, &plan, cluster.clone(), recorded.clone(), baseline_io));
    shared.log(plan.swarm_line());
    // (Its end stops the cluster: `Cluster::finish`.)
    let report = phases::both_phases(&shared, scenario, &plan, &recorded, &events).await;
    if let Some(out) = &options.out {
        copy_files(out, &setup.dir);
    }
    Ok(report)
}

/// Copies every process's log and event file from the run's directory into
/// `out/logs/` and `out/events/`.
fn copy_files(out: &Path, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten().filter(|e| e.path().is_dir()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        for (file, folder, ext) in [("log.txt", "logs", "log"), ("events.jsonl", "events", "jsonl")] {
            let from = entry.path().join(file);
            if from.is_file() {
                let to = out.join(folder);
                if std::fs::create_dir_all(&to).and_then(|_| std::fs::copy(&from, to.join(format!("{name}.{ext}")))).is_err() {
                    eprintln!("could not copy {} into {}", from.display(), to.display());
                }
            }
        }
    }
}
