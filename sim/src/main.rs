//! `simkv-sim`: runs simkv inside the deterministic simulator.

/// mimalloc instead of glibc's malloc: a run allocates and frees many small
/// objects, and glibc's allocator took about a fifth of its time. Where
/// memory lands never reaches behaviour (nothing orders or hashes by address).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The real build: one command, `real`, which runs a scenario against real
/// processes (the simulation's commands need the simulation build).
#[cfg(not(madsim))]
fn main() {
    use clap::Parser;
    simkv::trace::init("warn");
    std::process::exit(real_cli::Cli::parse().run());
}

#[cfg(not(madsim))]
mod real_cli {
    use clap::{Parser, Subcommand};
    use simkv_sim::nemesis::Plan;
    use simkv_sim::run::real::{self, NotRun, Options};
    use simkv_sim::run::RunOutcome;
    use simkv_sim::scenario::Scenario;
    use std::path::PathBuf;

    #[derive(Parser)]
    #[command(
        name = "simkv-sim",
        about = "simkv's testbed against real processes. This is the real build (without --cfg madsim): it has the `real` command only; the simulation's commands are in the default build.",
        version
    )]
    pub struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Runs one scenario against real processes: PD and the stores as
        /// processes of the `simkv` binary (RocksDB, loopback TCP), the
        /// scenario's workloads and the seed's faults (kill -9, SIGSTOP,
        /// partitions, loss and delay, clock drift, membership changes), then
        /// the same checkers as a simulated run. Only the plan comes from the
        /// seed: a real run does not replay. Exit 0 pass, 1 a checker failed,
        /// 2 bad input or the cluster did not start, 3 inconclusive, 130
        /// interrupted.
        Real {
            /// The scenario file, e.g. scenarios/basic.toml.
            #[arg(long)]
            scenario: PathBuf,
            /// The seed: it fixes the plan (swarm and fault schedule).
            #[arg(long)]
            seed: u64,
            /// Runs this fault plan instead of drawing one from the seed.
            #[arg(long)]
            schedule: Option<PathBuf>,
            /// Ends the safety phase after this many seconds (default: the scenario's).
            #[arg(long)]
            time_budget: Option<u64>,
            /// Writes the run's report here: history, timeline, and every
            /// process's log and event file.
            #[arg(long)]
            out: Option<PathBuf>,
            /// The `simkv` binary (default: $SIMKV_BIN, or the one next to this one).
            #[arg(long)]
            simkv_bin: Option<PathBuf>,
            /// Runs the plan without the faults only simulation has (disk
            /// faults, buggify, planted bugs) instead of refusing it.
            #[arg(long)]
            skip_sim_only: bool,
            /// Keeps the processes' data directories after the run.
            #[arg(long)]
            keep: bool,
        },
    }

    impl Cli {
        pub fn run(self) -> i32 {
            let Command::Real { scenario: path, seed, schedule, time_budget, out, simkv_bin, skip_sim_only, keep } = self.command;
            let scenario = match Scenario::load(&path) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 2;
                }
            };
            let mut plan = match &schedule {
                Some(file) => match Plan::from_file(file, seed) {
                    Ok(plan) => plan,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return 2;
                    }
                },
                None => Plan::draw(&scenario, seed),
            };
            if let Some(secs) = time_budget {
                plan.safety_secs = Some(secs.min(plan.safety_secs.unwrap_or(scenario.phases.safety_secs)));
            }
            let options = Options { simkv_bin, out: out.clone(), keep, skip_sim_only };
            let started = std::time::Instant::now();
            let report = match real::run_blocking(&scenario, &plan, &options) {
                Ok(report) => report,
                Err(NotRun::Refused(e)) => {
                    eprintln!("error: {e}");
                    return 2;
                }
                Err(NotRun::Interrupted) => return 130,
            };
            print!("{}", simkv_sim::report::outcome_text(&path.display().to_string(), &report));
            println!("real run: {:.1} s of wall time", started.elapsed().as_secs_f64());
            if let Some(out) = &out {
                match simkv_sim::report::write_replay_of(out, &path.display().to_string(), &report) {
                    Ok(files) => println!("wrote {} files to {} (and the processes' logs and events)", files.len(), out.display()),
                    Err(e) => eprintln!("could not write the report to {}: {e}", out.display()),
                }
            }
            match report.outcome() {
                RunOutcome::Pass => 0,
                RunOutcome::Fail => 1,
                RunOutcome::Inconclusive => 3,
            }
        }
    }
}

#[cfg(madsim)]
fn main() {
    use clap::Parser;
    let cli = cli::Cli::parse();
    match cli.trace_file() {
        Some(path) => match std::fs::create_dir_all(path.parent().unwrap_or(std::path::Path::new("."))).and_then(|_| std::fs::File::create(&path)) {
            Ok(file) => simkv::trace::init_to_file(cli.log_filter(), file),
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                std::process::exit(2);
            }
        },
        None => simkv::trace::init(cli.log_filter()),
    }
    std::process::exit(cli.run());
}

#[cfg(madsim)]
mod cli {
    use clap::{Parser, Subcommand};
    use indicatif::{ProgressBar, ProgressStyle};
    use simkv_sim::checker::linearizability;
    use simkv_sim::history::formats;
    use simkv_sim::nemesis::Plan;
    use simkv_sim::run::{self, RunOutcome, RunReport};
    use simkv_sim::scenario::Scenario;
    use simkv_sim::{bench, explore, report};
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    #[derive(Parser)]
    #[command(name = "simkv-sim", about = "Deterministic simulation testbed for simkv", version)]
    pub struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    /// One scenario, one seed.
    #[derive(clap::Args)]
    struct OneRun {
        /// The scenario file, e.g. scenarios/chaos.toml.
        #[arg(long)]
        scenario: PathBuf,
        /// The seed: it fixes the plan and every event of the run.
        #[arg(long)]
        seed: u64,
        /// Replays this fault plan (written by `plan` or `replay`, maybe edited)
        /// instead of drawing one from the seed.
        #[arg(long)]
        schedule: Option<PathBuf>,
        /// Gives the run up (exit 4, "stalled at simulated time ...") when its
        /// simulated time does not advance for this many seconds of wall time.
        #[arg(long, default_value_t = 60)]
        stall_secs: u64,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Runs one scenario with one seed and checks it. Exit 0 pass, 1 a
        /// checker failed, 2 bad input, 3 inconclusive (a check ran out of its
        /// budget), 4 stalled (simulated time stopped for --stall-secs).
        Run {
            #[command(flatten)]
            one: OneRun,
            /// Runs the seed twice and fails unless both runs have the same digest.
            #[arg(long)]
            check_determinism: bool,
        },
        /// Runs scenarios over a range of seeds: a progress bar (a line every
        /// --progress-secs when stderr is not a terminal), a line per failing
        /// run as it happens, then the summary and the failures in seed order.
        /// Exit 0 every run passed, 1 some run failed (or, unless
        /// --allow-inconclusive, was inconclusive), 2 bad input.
        Fuzz {
            /// A scenario file or a directory of them (`*.toml`, not recursive).
            #[arg(long, default_value = "scenarios")]
            scenarios: PathBuf,
            /// Seeds as `A..B` (B excluded) or a single seed.
            #[arg(long, default_value = "0..20", value_parser = parse_seeds)]
            seeds: (u64, u64),
            /// Runs only the runs `i` of every `n` (`--shard 3/16`), for CI fan-out.
            #[arg(long, value_parser = parse_shard)]
            shard: Option<(u64, u64)>,
            /// Stops starting new runs after this many wall-clock seconds.
            #[arg(long)]
            time_budget: Option<u64>,
            /// Writes a JSON summary here.
            #[arg(long)]
            json: Option<PathBuf>,
            /// Runs every seed twice and compares digests.
            #[arg(long)]
            check_determinism: bool,
            /// Runs at once, each a simulation on its own thread (default: one
            /// per core). Results do not depend on it.
            #[arg(long)]
            jobs: Option<usize>,
            /// Exits 0 even when some runs were inconclusive (a check that ran
            /// out of its budget); they are still counted and listed.
            #[arg(long)]
            allow_inconclusive: bool,
            /// A run whose simulated time does not advance for this many seconds
            /// of wall time is recorded as a `stall` failure (with its replay
            /// command) and the campaign goes on without it.
            #[arg(long, default_value_t = 60)]
            stall_secs: u64,
            /// Prints each failing run's whole report (every checker's
            /// explanation) as it happens, instead of one line per run.
            #[arg(long)]
            verbose: bool,
            /// When stderr is not a terminal (a CI log), prints a progress
            /// line this often instead of a progress bar.
            #[arg(long, default_value_t = 30)]
            progress_secs: u64,
        },
        /// Runs one seed again with a debug trace, and writes the plan, the
        /// history (EDN and Porcupine), the timeline (text and HTML) and the
        /// trace to a folder. Exit codes as `run` (0 pass, 1 fail, 2 bad input
        /// or the folder cannot be written, 3 inconclusive, 4 stalled).
        Replay {
            #[command(flatten)]
            one: OneRun,
            #[arg(long, default_value = "replay-out")]
            out: PathBuf,
            /// The commit of the build that found the seed (a fuzz JSON's
            /// `build.commit`): warns when this binary was built from another.
            #[arg(long)]
            found_by: Option<String>,
        },
        /// Shrinks a failing seed: the smallest plan (fewer faults, shorter faults,
        /// fewer clients, keys, regions and stores, no transport faults, a shorter
        /// safety phase) that still fails the same checker. Writes it as plan.toml
        /// in --out, replayable with `run --schedule`. Exit 0 a plan was written,
        /// 2 bad input (including a seed that passes: nothing to shrink).
        Shrink {
            #[arg(long)]
            scenario: PathBuf,
            #[arg(long)]
            seed: u64,
            /// The checker that must keep failing (default: the first that fails).
            #[arg(long)]
            checker: Option<simkv_sim::checker::Checker>,
            #[arg(long, default_value = "replay-out")]
            out: PathBuf,
            /// Stops trying smaller plans after this many wall-clock seconds.
            #[arg(long, default_value_t = 300)]
            time_budget: u64,
            /// Stops after this many runs.
            #[arg(long, default_value_t = 500)]
            max_runs: usize,
            /// A candidate whose simulated time stops for this many wall seconds
            /// fails the `stall` checker (its thread is left behind).
            #[arg(long, default_value_t = 60)]
            stall_secs: u64,
        },
        /// Guided exploration: keeps the plans whose runs made the cluster do
        /// something new (coverage) in --corpus, mutates them, and writes each
        /// failing plan with its replay command, shrunk, under
        /// --corpus/failures/. Resumes from --corpus. A progress line every
        /// --progress-secs. Exit 0 no run failed, 1 some run failed, 2 bad input.
        Explore {
            #[arg(long)]
            scenario: PathBuf,
            /// The corpus folder: created if new, resumed if not.
            #[arg(long)]
            corpus: PathBuf,
            /// Stops starting runs after this many wall-clock seconds (default
            /// 600 when --runs is not given either).
            #[arg(long)]
            time_budget: Option<u64>,
            /// Stops after this many runs in all (a resumed corpus counts its
            /// earlier runs). The same seed and --runs give the same corpus.
            #[arg(long)]
            runs: Option<u64>,
            /// Seeds the explorer's own choices.
            #[arg(long, default_value_t = 0)]
            seed: u64,
            /// Runs at once (default: one per core). Results do not depend on it.
            #[arg(long)]
            jobs: Option<usize>,
            /// The baseline: fresh plans of consecutive seeds, no guidance.
            #[arg(long)]
            random: bool,
            /// Stops at the first failing run.
            #[arg(long)]
            stop_at_failure: bool,
            /// Wall seconds to shrink the first failure of each checker (0: not shrunk).
            #[arg(long, default_value_t = 120)]
            shrink_secs: u64,
            #[arg(long, default_value_t = 60)]
            stall_secs: u64,
            #[arg(long, default_value_t = 30)]
            progress_secs: u64,
            /// Then runs the random baseline for as many runs, and draws both
            /// curves in the report (--corpus/explore.html).
            #[arg(long)]
            compare_random: bool,
            /// Seeds a fresh plan never uses, comma-separated (bench-explore
            /// leaves out a bug's pinned seeds).
            #[arg(long, value_delimiter = ',')]
            skip_seeds: Vec<u64>,
        },
        /// Guided exploration against random seeds on the planted-bug zoo: for
        /// every bug scenario in --bugs, --reps times each, runs and wall seconds
        /// to the first failing run, one run at a time, from the same
        /// --budget-secs; the seeds pinned for the bug in seeds/ are never
        /// used. Prints a line per bug, the table, the zoo's median ratio
        /// and the bugs random found faster. Exit 0, or 2 bad input.
        BenchExplore {
            /// A bug scenario or a folder of them.
            #[arg(long, default_value = "scenarios/bugs")]
            bugs: PathBuf,
            #[arg(long, default_value_t = 120)]
            budget_secs: u64,
            #[arg(long, default_value_t = 3)]
            reps: u64,
            /// Only the bugs whose file name contains this.
            #[arg(long)]
            only: Option<String>,
            /// First, what computing coverage adds to a run's CPU time, over
            /// this many seeds of chaos-v2 and of txn-chaos (0: not measured).
            #[arg(long, default_value_t = 20)]
            cost_runs: u64,
        },
        /// Prints the plan (swarm parameters and fault schedule) a seed yields, as
        /// TOML that `run --schedule` accepts. Exit 0, or 2 bad input.
        Plan {
            #[arg(long)]
            scenario: PathBuf,
            #[arg(long)]
            seed: u64,
        },
        /// Checks a history file. Two kinds, told apart by their content:
        /// register / kv histories for linearizability (Jepsen etcd logs,
        /// Porcupine's test data or a raw jepsen.log; Porcupine kv logs; Jepsen /
        /// Knossos EDN, one op map per line or one vector or list of them), and
        /// list-append transaction histories (Elle's EDN, `:f :txn`) for the
        /// consistency model --model names. Exit 0 valid, 1 not (with the
        /// explanation), 2 unreadable (names the line), 3 inconclusive (the
        /// search budget ran out; register histories only).
        Check {
            file: PathBuf,
            /// Search steps allowed before giving up.
            #[arg(long, default_value_t = 1_000_000_000)]
            max_steps: u64,
            /// For list-append (transactional) histories: snapshot-isolation
            /// (default), strong-snapshot-isolation, serializable or strict-serializable.
            #[arg(long)]
            model: Option<String>,
        },
        /// Measures the simulator (simulated seconds per wall second), the bank's
        /// transactions (per simulated and wall second, abort rate) and the
        /// linearizability checker (corpus and generated histories, verdicts
        /// asserted) next to Porcupine's quoted timings. Exit 0, 1 a wrong
        /// verdict or a failed run, 2 bad input.
        Bench {
            /// Seeds of the scenario to time (0: only the checker).
            #[arg(long, default_value_t = 3)]
            seeds: u64,
            #[arg(long, default_value = "scenarios/chaos.toml")]
            scenario: PathBuf,
            /// A scenario with many regions, timed next to `--scenario`.
            #[arg(long, default_value = "scenarios/many-regions.toml")]
            large_scenario: PathBuf,
            /// The bank scenario whose transactions are counted (per simulated
            /// and per wall second, and the abort rate), next to the raw
            /// operations of `--baseline-scenario` in the same run.
            #[arg(long, default_value = "scenarios/bank.toml")]
            bank_scenario: PathBuf,
            #[arg(long, default_value = "scenarios/basic.toml")]
            baseline_scenario: PathBuf,
            /// The history corpus (with its MANIFEST.tsv) to time the checker on.
            #[arg(long, default_value = "sim/tests/corpus")]
            corpus: PathBuf,
            /// Times each history this many times and reports the median.
            #[arg(long, default_value_t = 9)]
            runs: usize,
        },
        /// Peak memory of a long campaign: runs the scenario's seeds 0..N one
        /// after another in this process and prints the peak resident memory,
        /// then goes on to 10×N runs and prints it again. A run that kept
        /// memory after it ended would show as the second figure growing.
        /// Exit 0, or 2 bad input.
        BenchMemory {
            #[arg(long, default_value = "scenarios/chaos.toml")]
            scenario: PathBuf,
            /// N: the first figure after N runs, the second after 10×N.
            #[arg(long, default_value_t = 20)]
            runs: u64,
        },
        /// Drives a 5-store, 8-region cluster under client load for each seed and
        /// prints simulated seconds per wall second and raw ops per wall second.
        /// Exit 0, or 1 a run failed.
        BenchRaftstore {
            #[arg(long, default_value_t = 1)]
            seed: u64,
            #[arg(long, default_value_t = 3)]
            seeds: u64,
            #[arg(long, default_value_t = 20)]
            sim_seconds: u64,
            #[arg(long, default_value_t = 8)]
            clients: usize,
        },
    }

    fn parse_seeds(s: &str) -> Result<(u64, u64), String> {
        let bad = || format!("`{s}` is not a seed range: write `A..B` (B excluded) or one seed");
        match s.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a >= b {
                    return Err(format!("seed range `{s}` is empty"));
                }
                Ok((a, b))
            }
            None => s.parse::<u64>().map(|a| (a, a + 1)).map_err(|_| bad()),
        }
    }

    fn parse_shard(s: &str) -> Result<(u64, u64), String> {
        let bad = || format!("`{s}` is not a shard: write `i/n` with 0 <= i < n");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (i, n): (u64, u64) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        if n == 0 || i >= n {
            return Err(bad());
        }
        Ok((i, n))
    }

    fn load(path: &Path) -> Result<Scenario, i32> {
        Scenario::load(path).map_err(|e| {
            eprintln!("error: {e}");
            2
        })
    }

    fn plan_for(scenario: &Scenario, seed: u64, schedule: &Option<PathBuf>) -> Result<Plan, i32> {
        let Some(path) = schedule else { return Ok(Plan::draw(scenario, seed)) };
        Plan::from_file(path, seed).map_err(|e| {
            eprintln!("error: {e}");
            2
        })
    }

    impl Cli {
        /// `replay` writes its debug trace into its output folder.
        pub fn trace_file(&self) -> Option<PathBuf> {
            match &self.command {
                Command::Replay { out, .. } => Some(out.join("trace.log")),
                _ => None,
            }
        }

        pub fn log_filter(&self) -> &'static str {
            match self.command {
                // madsim warns once per run that std's HashMap seeds are not
                // simulated; simkv never lets HashMap order reach behaviour.
                Command::Replay { .. } => "simkv=debug,simkv_sim=debug,madsim=error",
                _ => simkv::trace::CLI_FILTER,
            }
        }

        pub fn run(self) -> i32 {
            match self.command {
                Command::Run { one: OneRun { scenario, seed, schedule, stall_secs }, check_determinism } => {
                    let Ok(s) = load(&scenario) else { return 2 };
                    let Ok(plan) = plan_for(&s, seed, &schedule) else { return 2 };
                    println!("{}", plan.swarm_line());
                    let report = watched(&s, &plan, &scenario, schedule.as_deref(), stall_secs);
                    let mut code = print_report(&scenario, schedule.as_deref(), &report);
                    if check_determinism {
                        let again = run::run(&s, &plan);
                        println!("{}", report::determinism_line(&report, &again));
                        if again.digest != report.digest {
                            code = 1;
                        }
                    }
                    code
                }
                Command::Fuzz {
                    scenarios,
                    seeds,
                    shard,
                    time_budget,
                    json,
                    check_determinism,
                    jobs,
                    allow_inconclusive,
                    stall_secs,
                    verbose,
                    progress_secs,
                } => {
                    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
                    let options = FuzzOptions {
                        shard,
                        budget: time_budget,
                        json,
                        determinism: check_determinism,
                        jobs,
                        allow_inconclusive,
                        stall_secs,
                        verbose,
                        progress_secs,
                    };
                    fuzz(&scenarios, seeds, options)
                }
                Command::Replay { one: OneRun { scenario, seed, schedule, stall_secs }, out, found_by } => {
                    if let Some(warning) = found_by.as_deref().and_then(report::build_mismatch) {
                        eprintln!("{warning}");
                    }
                    let Ok(s) = load(&scenario) else { return 2 };
                    let Ok(plan) = plan_for(&s, seed, &schedule) else { return 2 };
                    println!("{}", plan.swarm_line());
                    let report = watched(&s, &plan, &scenario, schedule.as_deref(), stall_secs);
                    let code = print_report(&scenario, schedule.as_deref(), &report);
                    match report::write_replay_of(&out, &scenario.display().to_string(), &report) {
                        Ok(mut files) => {
                            files.push(out.join("trace.log").display().to_string());
                            println!("wrote {}", files.join(", "));
                            code
                        }
                        Err(e) => {
                            eprintln!("error: writing {}: {e}", out.display());
                            2
                        }
                    }
                }
                Command::Shrink { scenario, seed, checker, out, time_budget, max_runs, stall_secs } => {
                    let Ok(s) = load(&scenario) else { return 2 };
                    let budget = simkv_sim::shrink::Budget {
                        runs: max_runs,
                        wall: std::time::Duration::from_secs(time_budget),
                        stall: std::time::Duration::from_secs(stall_secs.max(1)),
                    };
                    let mut log = |line: &str| println!("{line}");
                    match simkv_sim::shrink::shrink(&s, Plan::draw(&s, seed), checker, budget, &mut log) {
                        Ok(shrunk) => {
                            println!("{} seed {seed}, failing {}: {} -> {} in {} runs", s.name, shrunk.checker, shrunk.original, shrunk.shrunk, shrunk.runs);
                            let path = out.join("plan.toml");
                            if let Err(e) = std::fs::create_dir_all(&out).and_then(|()| std::fs::write(&path, shrunk.plan.to_toml())) {
                                eprintln!("error: writing {}: {e}", path.display());
                                return 2;
                            }
                            println!(
                                "wrote {}; replay: cargo run --release -p simkv-sim -- run --scenario {} --seed {seed} --schedule {}",
                                path.display(),
                                scenario.display(),
                                path.display()
                            );
                            0
                        }
                        Err(e) => {
                            eprintln!("error: {e}");
                            2
                        }
                    }
                }
                Command::Explore {
                    scenario,
                    corpus,
                    time_budget,
                    runs,
                    seed,
                    jobs,
                    random,
                    stop_at_failure,
                    shrink_secs,
                    stall_secs,
                    progress_secs,
                    compare_random,
                    skip_seeds,
                } => {
                    let Ok(s) = load(&scenario) else { return 2 };
                    let options = explore::Options {
                        strategy: if random { explore::Strategy::Random } else { explore::Strategy::Guided },
                        seed,
                        jobs: jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
                        max_runs: runs,
                        time_budget: Some(std::time::Duration::from_secs(time_budget.unwrap_or(if runs.is_some() { u64::MAX / 4 } else { 600 }))),
                        stall: std::time::Duration::from_secs(stall_secs.max(1)),
                        stop_at_failure,
                        shrink: (shrink_secs > 0).then(|| std::time::Duration::from_secs(shrink_secs)),
                        progress: Some(std::time::Duration::from_secs(progress_secs.max(1))),
                        skip_seeds,
                    };
                    let mut explorer = match explore::Explorer::open(s, &scenario.display().to_string(), options, Some(corpus.as_path())) {
                        Ok(e) => e,
                        Err(e) => {
                            eprintln!("error: {e}");
                            return 2;
                        }
                    };
                    let started = Instant::now();
                    let mut log = |line: &str| eprintln!("{line}");
                    if let Err(e) = explorer.run(&mut log) {
                        eprintln!("error: {e}");
                        return 2;
                    }
                    println!("{}", explorer.progress_line(started));
                    let baseline = if compare_random {
                        let session_runs = explorer.runs - explorer.curve.first().map_or(0, |p| p.runs);
                        let mut options = explorer.options.clone();
                        (options.strategy, options.max_runs, options.time_budget, options.shrink) = (explore::Strategy::Random, Some(session_runs), None, None);
                        let Ok(mut random) = explore::Explorer::open(explorer.scenario.clone(), &scenario.display().to_string(), options, None) else {
                            return 2;
                        };
                        let started = Instant::now();
                        if let Err(e) = random.run(&mut log) {
                            eprintln!("error: {e}");
                            return 2;
                        }
                        println!("random baseline: {}", random.progress_line(started).trim_start_matches("explore: "));
                        Some(random)
                    } else {
                        None
                    };
                    let html = corpus.join("explore.html");
                    if let Err(e) = std::fs::write(&html, explore::page::page(&explorer, baseline.as_ref())) {
                        eprintln!("error: {}: {e}", html.display());
                        return 2;
                    }
                    println!("corpus: {}; report: {}", corpus.display(), html.display());
                    for f in &explorer.failures {
                        println!("FAIL run {} ({}): {}", f.run, f.checker, f.explanation.lines().next().unwrap_or(""));
                        if let Some(dir) = &f.dir {
                            println!("  written to {}", dir.display());
                        }
                    }
                    i32::from(!explorer.failures.is_empty())
                }
                Command::BenchExplore { bugs, budget_secs, reps, only, cost_runs } => {
                    let paths: Vec<PathBuf> = if bugs.is_dir() {
                        match Scenario::load_dir_paths(&bugs) {
                            Ok(p) => p,
                            Err(e) => {
                                eprintln!("error: {e}");
                                return 2;
                            }
                        }
                    } else {
                        vec![bugs.clone()]
                    };
                    let mut zoo = Vec::new();
                    for p in paths.into_iter().filter(|p| only.as_ref().is_none_or(|o| p.display().to_string().contains(o.as_str()))) {
                        let Ok(s) = load(&p) else { return 2 };
                        zoo.push((p, s));
                    }
                    let pinned: Vec<(String, u64)> = match simkv_sim::seeds::load_dir(Path::new("seeds")) {
                        Ok(entries) => entries.into_iter().map(|(_, e)| (e.scenario, e.seed)).collect(),
                        Err(e) => {
                            eprintln!("error: {e}");
                            return 2;
                        }
                    };
                    for name in ["chaos-v2", "txn-chaos"].into_iter().filter(|_| cost_runs > 0) {
                        let Ok(s) = load(&Path::new("scenarios").join(format!("{name}.toml"))) else { return 2 };
                        let (total, coverage) = explore::bench::coverage_cost(&s, cost_runs);
                        println!(
                            "coverage cost, {name}: {:.1} ms of {total:.1} CPU s over {cost_runs} runs = {:.3}% of a run's time (goal: at most 5%)",
                            coverage * 1000.0,
                            100.0 * coverage / total.max(1e-9)
                        );
                    }
                    println!("{} bugs, {reps} repetitions, {budget_secs} s budget per trial, one run at a time", zoo.len());
                    let mut log = |line: &str| println!("{line}");
                    let exe = match std::env::current_exe() {
                        Ok(e) => e,
                        Err(e) => {
                            eprintln!("error: cannot find this program to run its trials: {e}");
                            return 2;
                        }
                    };
                    let rows = explore::bench::zoo(&exe, &zoo, &pinned, std::time::Duration::from_secs(budget_secs), reps, &mut log);
                    println!();
                    print!("{}", explore::bench::summary(&rows).0);
                    0
                }
                Command::Plan { scenario, seed } => {
                    let Ok(s) = load(&scenario) else { return 2 };
                    print!("{}", Plan::draw(&s, seed).to_toml());
                    0
                }
                Command::Check { file, max_steps, model } => check(&file, max_steps, model.as_deref()),
                Command::Bench { seeds, scenario, large_scenario, bank_scenario, baseline_scenario, corpus, runs } => {
                    let (Ok(s), Ok(large), Ok(bank), Ok(baseline)) = (load(&scenario), load(&large_scenario), load(&bank_scenario), load(&baseline_scenario))
                    else {
                        return 2;
                    };
                    let (failed_small, small_rate) = bench::scenario(&s, seeds);
                    let (failed_large, large_rate) = bench::scenario(&large, seeds);
                    if seeds > 0 {
                        println!(
                            "{}: {large_rate:.1} simulated s per wall s, {:.2}x the {:.1} of {} (goal: 200 on one core)",
                            large.name,
                            large_rate / small_rate.max(1e-9),
                            small_rate,
                            s.name
                        );
                        // The ceiling, in the same run: raft-rs alone in madsim.
                        let (ceiling, committed) = bench::ceiling::bare_raft(60, 3);
                        println!(
                            "ceiling: a bare 3-node raft-rs group in madsim (no store, no checks; {committed} entries committed in 60 s) runs {ceiling:.0} simulated s per wall s; {} is {:.3}x of it, {} {:.3}x (goals: 1,000 and 400 on one core)",
                            s.name,
                            small_rate / ceiling.max(1e-9),
                            large.name,
                            large_rate / ceiling.max(1e-9)
                        );
                        // The main command's rate: one seed of every scenario.
                        let main = std::path::Path::new("scenarios");
                        if let Ok(all) = simkv_sim::scenario::Scenario::load_dir(main) {
                            let started = Instant::now();
                            let failed_main = all.iter().filter(|sc| !run::run(sc, &Plan::draw(sc, 0)).passed()).count();
                            let wall = started.elapsed().as_secs_f64();
                            println!(
                                "main command (fuzz every scenario in {}/): {} runs in {wall:.1} wall s = {:.0} runs per hour on one core ({failed_main} failed)",
                                main.display(),
                                all.len(),
                                3600.0 * all.len() as f64 / wall.max(1e-9)
                            );
                        }
                    }
                    if seeds > 0 {
                        // Regions without traffic: what each adds per simulated
                        // second and per tick, hibernating (the default) and
                        // kept awake, in the same run.
                        let (secs, many) = (120, large.cluster.regions.bounds().1.max(2) as usize);
                        let ticks_per_sec = 1000.0 / simkv::raftstore::RaftStoreConfig::default().base_tick_ms as f64;
                        let mut per_region = [0.0; 2];
                        for (i, hibernate) in [true, false].into_iter().enumerate() {
                            let (one, all) = (bench::idle_cluster(1, secs, 3, hibernate), bench::idle_cluster(many, secs, 3, hibernate));
                            per_region[i] = (all - one).max(0.0) / (many - 1) as f64 / secs as f64;
                            println!(
                                "idle regions ({}): 5 stores, {secs} simulated s without clients: 1 region {one:.3} wall s, {many} regions {all:.3} wall s; each idle region adds {:.2} us of wall time per simulated s ({:.3} us per tick); {:.0}x simulated/wall for the {many}",
                                if hibernate { "hibernating" } else { "kept awake" },
                                per_region[i] * 1e6,
                                per_region[i] * 1e6 / ticks_per_sec,
                                secs as f64 / all.max(1e-9)
                            );
                        }
                        println!("  an idle region costs {:.3}x what it costs kept awake", per_region[0] / per_region[1].max(1e-12));
                    }
                    let (lease, read_index) = (bench::read_latency(1, 20, true), bench::read_latency(1, 20, false));
                    println!("read paths, same seed and load:\n  {lease}\n  {read_index}");
                    println!(
                        "  lease reads: {:.2}x the ReadIndex mean latency, {:.2}x its p99",
                        lease.mean_ms / read_index.mean_ms.max(1e-9),
                        lease.p99_ms / read_index.p99_ms.max(1e-9)
                    );
                    let mut failed_bank = 0;
                    if seeds > 0 {
                        let measured = bench::bank(&bank, seeds);
                        let raw = bench::ops_per_wall_second(&baseline, seeds);
                        println!("{measured}");
                        println!(
                            "  {:.2}x the {:.1} raw operations per wall s of {} (a transaction is several raw round trips: begin, reads, prewrite, commit)",
                            measured.committed as f64 / measured.wall_seconds.max(1e-9) / raw.max(1e-9),
                            raw,
                            baseline.name
                        );
                        failed_bank = measured.failed_runs;
                    }
                    let failed_runs = failed_small + failed_large + failed_bank + bench::list_append::run(100_000);
                    let wrong_verdicts = bench::checker::run(&corpus, runs);
                    i32::from(failed_runs + wrong_verdicts > 0)
                }
                Command::BenchMemory { scenario, runs } => {
                    let Ok(s) = load(&scenario) else { return 2 };
                    let mb = |b: Option<u64>| b.map_or(f64::NAN, |b| b as f64 / (1 << 20) as f64);
                    let (started, mut failed) = (Instant::now(), 0);
                    let mut peaks = Vec::new();
                    for seed in 0..runs.max(1) * 10 {
                        failed += usize::from(!run::run(&s, &Plan::draw(&s, seed)).passed());
                        if seed + 1 == runs.max(1) || seed + 1 == runs.max(1) * 10 {
                            let peak = mb(report::peak_rss_bytes());
                            println!("{}: peak RSS {peak:.1} MB after {} runs ({:.0} wall s so far)", s.name, seed + 1, started.elapsed().as_secs_f64());
                            peaks.push(peak);
                        }
                    }
                    println!(
                        "  {} runs peak at {:.2}x the memory of {} runs (1.00x: nothing kept between runs); {failed} runs failed",
                        runs.max(1) * 10,
                        peaks[1] / peaks[0],
                        runs.max(1)
                    );
                    0
                }
                Command::BenchRaftstore { seed, seeds, sim_seconds, clients } => {
                    let mut total = bench::BenchTotals::default();
                    for s in seed..seed + seeds {
                        let report = bench::raftstore_load(s, sim_seconds, clients);
                        println!("{report}");
                        total.add(&report);
                    }
                    println!("{total}");
                    i32::from(total.failed_runs > 0)
                }
            }
        }
    }

    /// The command that replays a run: with the plan file when the run was
    /// given one (`--schedule`), since the seed alone draws another plan.
    fn replay_hint(scenario: &Path, seed: u64, schedule: Option<&Path>) -> String {
        let command = report::replay_command(&scenario.display().to_string(), seed);
        match schedule {
            Some(plan) => format!("{command} --schedule {}", plan.display()),
            None => command,
        }
    }

    fn print_report(scenario: &Path, schedule: Option<&Path>, report: &RunReport) -> i32 {
        let text = report::outcome_text(&scenario.display().to_string(), report);
        let plain = report::replay_command(&scenario.display().to_string(), report.plan.seed);
        print!("{}", text.replace(&plain, &replay_hint(scenario, report.plan.seed, schedule)));
        match report.outcome() {
            RunOutcome::Pass => 0,
            RunOutcome::Fail => 1,
            RunOutcome::Inconclusive => 3,
        }
    }

    fn check(file: &Path, max_steps: u64, model: Option<&str>) -> i32 {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {}: cannot read: {e}", file.display());
                return 2;
            }
        };
        if simkv_sim::workload::list_append::history::sniff(&text) {
            return check_transactions(file, &text, model.unwrap_or("snapshot-isolation"));
        }
        if let Some(model) = model {
            eprintln!("error: --model {model}: {} is not a transactional (list-append) history; --model applies only to those", file.display());
            return 2;
        }
        let history = match formats::parse(&text) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {}:{}: {}", file.display(), e.line, e.message);
                return 2;
            }
        };
        if history.skipped_lines > 0 {
            println!("{}: skipped {} lines that are not client operations (console output, nemesis lines)", file.display(), history.skipped_lines);
        }
        match linearizability::check_with_limit(&history, max_steps) {
            linearizability::Verdict::Linearizable => {
                println!("{}: linearizable ({} operations, {} with unknown outcome)", file.display(), history.ops.len(), history.unknown_count());
                0
            }
            linearizability::Verdict::NotLinearizable(v) => {
                println!("{}: NOT linearizable", file.display());
                println!("{}", linearizability::explain(&history, &v));
                1
            }
            linearizability::Verdict::Inconclusive { keys, steps } => {
                println!("{}: inconclusive: the search for keys {keys:?} ran out of its budget ({steps} steps); raise --max-steps", file.display());
                3
            }
        }
    }

    /// A run that gives up when its simulated time stops: the process exits 4
    /// with the stall and the replay command (the stuck thread cannot be stopped).
    fn watched(s: &Scenario, plan: &Plan, scenario: &Path, schedule: Option<&Path>, stall_secs: u64) -> run::RunReport {
        let (path, seed, hint) = (scenario.display().to_string(), plan.seed, replay_hint(scenario, plan.seed, schedule));
        run::run_watched(s, plan, std::time::Duration::from_secs(stall_secs.max(1)), move |stall| {
            eprintln!("STALLED {path} seed {seed}: {stall}");
            eprintln!("replay: {hint}");
            std::process::exit(4);
        })
    }

    /// A list-append history against `model`: 0 valid, 1 anomaly, 2 unreadable.
    fn check_transactions(file: &Path, text: &str, model: &str) -> i32 {
        use simkv_sim::workload::list_append::check::{self, Model};
        let Some(model) = Model::parse(model) else {
            eprintln!("error: --model {model}: not one of snapshot-isolation, strong-snapshot-isolation, serializable, strict-serializable");
            return 2;
        };
        let history = match simkv_sim::workload::list_append::history::parse(text) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {}:{}: {}", file.display(), e.line, e.message);
                return 2;
            }
        };
        let report = check::check(&history, model);
        if report.valid() {
            println!("{}: valid under {model} ({} transactions)", file.display(), report.txns);
            for a in &report.allowed {
                println!("allowed by {model}: {}\n{}", a.kind, a.explanation);
            }
            0
        } else {
            println!("{}: NOT {model}: {}", file.display(), report.kinds().join(", "));
            for a in &report.anomalies {
                println!("{}: {}", a.kind, a.explanation);
            }
            1
        }
    }

    struct FuzzOptions {
        shard: Option<(u64, u64)>,
        budget: Option<u64>,
        json: Option<PathBuf>,
        determinism: bool,
        jobs: usize,
        allow_inconclusive: bool,
        stall_secs: u64,
        verbose: bool,
        progress_secs: u64,
    }

    /// What the fuzz workers share.
    struct Campaign {
        scenarios: Vec<(PathBuf, Scenario)>,
        runs: Vec<(usize, u64)>,
        next: std::sync::atomic::AtomicUsize,
        summary: std::sync::Mutex<report::FuzzSummary>,
        /// Runs finished (or given up as stalled), with a condition to wait on.
        finished: (std::sync::Mutex<usize>, std::sync::Condvar),
        started: Instant,
        budget: Option<u64>,
        determinism: bool,
        stall: std::time::Duration,
        bar: ProgressBar,
        verbose: bool,
    }

    impl Campaign {
        fn finish_one(&self) {
            let mut n = self.finished.0.lock().unwrap();
            *n += 1;
            self.finished.1.notify_all();
        }
    }

    /// A worker: takes runs until none are left. A run that stalls is recorded
    /// by its watchdog, which starts a worker in its place (the stuck thread
    /// cannot be stopped; it ends with the process).
    fn spawn_worker(campaign: std::sync::Arc<Campaign>) {
        std::thread::spawn(move || loop {
            let c = &campaign;
            let k = c.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let Some(&(i, seed)) = c.runs.get(k) else { return };
            if c.budget.is_some_and(|b| c.started.elapsed().as_secs() >= b) {
                c.summary.lock().unwrap().skipped += 1;
                c.finish_one();
                continue;
            }
            let (path, scenario) = &c.scenarios[i];
            let path = path.display().to_string();
            let plan = Plan::draw(scenario, seed);
            let on_stall = {
                let (campaign, path) = (campaign.clone(), path.clone());
                move |stall: run::Stall| {
                    let text = stall.to_string();
                    campaign.bar.suspend(|| println!("STALLED {path} seed {seed}: {text}\nreplay: {}", report::replay_command(&path, seed)));
                    {
                        let mut summary = campaign.summary.lock().unwrap();
                        summary.runs += 1;
                        summary.failed += 1;
                        summary.add_failure(&path, seed, "stall", &text);
                    }
                    campaign.bar.inc(1);
                    campaign.finish_one();
                    spawn_worker(campaign);
                }
            };
            let report = run::run_watched(scenario, &plan, c.stall, on_stall);
            let again = c.determinism.then(|| run::run(scenario, &plan));
            let nondeterministic = again.as_ref().is_some_and(|a| a.digest != report.digest);
            {
                let mut summary = c.summary.lock().unwrap();
                if let (true, Some(again)) = (nondeterministic, &again) {
                    c.bar.suspend(|| println!("{}", report::determinism_line(&report, again)));
                    summary.add_failure(&path, seed, "determinism", "two runs of this seed produced different digests");
                }
                summary.add(&report, nondeterministic);
                if !report.passed() {
                    if c.verbose {
                        c.bar.suspend(|| print!("{}", report::outcome_text(&path, &report)));
                    } else {
                        c.bar.suspend(|| print!("{}", report::outcome_line(&path, &report)));
                    }
                    for f in &report.failures {
                        summary.add_failure(&path, seed, f.checker.as_str(), &f.explanation);
                    }
                    for f in &report.inconclusive {
                        summary.add_inconclusive(&path, seed, f.checker.as_str(), &f.explanation);
                    }
                }
                c.bar.set_message(format!("{} failed, {} inconclusive", summary.failed, summary.inconclusive));
            }
            c.bar.inc(1);
            c.finish_one();
        });
    }

    fn fuzz(dir: &Path, seeds: (u64, u64), options: FuzzOptions) -> i32 {
        let FuzzOptions { shard, budget, json, determinism, jobs, allow_inconclusive, stall_secs, verbose, progress_secs } = options;
        let scenarios: Vec<(PathBuf, Scenario)> = if dir.is_dir() {
            let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
                Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect(),
                Err(e) => {
                    eprintln!("error: {}: cannot list: {e}", dir.display());
                    return 2;
                }
            };
            paths.sort();
            let mut out = Vec::new();
            for p in paths {
                let Ok(s) = load(&p) else { return 2 };
                out.push((p, s));
            }
            out
        } else {
            let Ok(s) = load(dir) else { return 2 };
            vec![(dir.to_path_buf(), s)]
        };
        let mut runs: Vec<(usize, u64)> = Vec::new();
        for seed in seeds.0..seeds.1 {
            for i in 0..scenarios.len() {
                runs.push((i, seed));
            }
        }
        if let Some((i, n)) = shard {
            runs = runs.into_iter().enumerate().filter(|(k, _)| *k as u64 % n == i).map(|(_, r)| r).collect();
        }
        let started = Instant::now();
        let total = runs.len();
        // A bar on a terminal; elsewhere (CI logs) a plain line now and then.
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let bar = if terminal { ProgressBar::new(total as u64) } else { ProgressBar::hidden() };
        bar.set_length(total as u64);
        bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {msg} [{elapsed_precise}]").expect("template"));
        // Each run is its own simulation on its own thread: runs are independent
        // and each is deterministic, so workers only change the wall time.
        let campaign = std::sync::Arc::new(Campaign {
            scenarios,
            runs,
            next: std::sync::atomic::AtomicUsize::new(0),
            summary: std::sync::Mutex::new(report::FuzzSummary::default()),
            finished: (std::sync::Mutex::new(0), std::sync::Condvar::new()),
            started,
            budget,
            determinism,
            stall: std::time::Duration::from_secs(stall_secs.max(1)),
            bar: bar.clone(),
            verbose,
        });
        for _ in 0..jobs.max(1) {
            spawn_worker(campaign.clone());
        }
        {
            let every = std::time::Duration::from_secs(progress_secs.max(1));
            let mut finished = campaign.finished.0.lock().unwrap();
            let mut last_line = Instant::now();
            while *finished < total {
                let (guard, _) = campaign.finished.1.wait_timeout(finished, every).unwrap();
                finished = guard;
                if !terminal && last_line.elapsed() >= every && *finished < total {
                    last_line = Instant::now();
                    let (failed, inconclusive) = {
                        let summary = campaign.summary.lock().unwrap();
                        (summary.failed, summary.inconclusive)
                    };
                    eprintln!(
                        "fuzz: {}/{total} runs, {failed} failed, {inconclusive} inconclusive, {:.0} s elapsed",
                        *finished,
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }
        let summary = std::mem::take(&mut *campaign.summary.lock().unwrap());
        let mut summary = summary;
        summary.failures.sort_by(|a, b| (&a.scenario, a.seed, &a.checker).cmp(&(&b.scenario, b.seed, &b.checker)));
        summary.inconclusive_checks.sort_by(|a, b| (&a.scenario, a.seed, &a.checker).cmp(&(&b.scenario, b.seed, &b.checker)));
        bar.finish_and_clear();
        summary.wall_secs = started.elapsed().as_secs_f64();
        summary.workers = jobs.max(1) as u64;
        summary.peak_rss_mb = report::peak_rss_bytes().map(|b| b as f64 / (1 << 20) as f64);
        println!("{}", summary.line());
        print!("{}", summary.failures_text());
        if let Some(path) = json {
            if let Err(e) = std::fs::write(&path, summary.to_json()) {
                eprintln!("error: {}: {e}", path.display());
                return 2;
            }
        }
        if summary.inconclusive > 0 && !allow_inconclusive {
            println!("{} runs were inconclusive: not a pass (--allow-inconclusive accepts them)", summary.inconclusive);
        }
        i32::from(summary.failed > 0 || (summary.inconclusive > 0 && !allow_inconclusive))
    }
}
