//! Guided exploration: a fuzzer that keeps the plans that made the cluster do
//! something new, and mutates them.
//!
//! Every run reports its [`coverage`] — an abstract set of what the cluster
//! did. The explorer keeps a **corpus** of plans whose runs added coverage
//! nobody had reached before; it picks a parent by an energy schedule (a
//! plan's energy is the sum, over its items, of one over the number of runs
//! that reached the item: plans holding rare behaviour get picked more), makes
//! a child with [`mutate::child`] (splicing in a second corpus plan), runs it,
//! and keeps it when it adds coverage. One run in four is a fresh plan drawn
//! from a new seed, as `fuzz` would run, so the search never narrows to the
//! corpus alone. A run that fails a checker is written out with its replay
//! command and shrunk with the existing shrinker.
//!
//! **Determinism.** Candidates are made and judged in batches of
//! [`BATCH`]: a batch is made from the state before it (the corpus and the
//! counts), with a stream seeded by the explorer's seed and the number of
//! runs so far, and its results are taken in candidate order, however many
//! `--jobs` ran them. So the same seed and the same budget in runs give the
//! same corpus, and a corpus folder resumes where it stopped: a session that
//! ended between batches (a time budget always does; a `--runs` budget does
//! at a multiple of [`BATCH`]) goes on exactly as one longer session would.
//!
//! **Random** is the same loop with every candidate a fresh plan of the next
//! seed: the baseline the benchmark and the report compare against.

pub mod bench;
pub mod coverage;
pub mod mutate;
pub mod page;

use crate::nemesis::Plan;
use crate::run::{self, RunReport};
use crate::scenario::Scenario;
use coverage::Coverage;
use mutate::Mutation;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Candidates made from one state of the corpus, whatever `jobs` is.
pub const BATCH: usize = 8;

/// One candidate in this many is a fresh plan from a new seed.
const FRESH_ONE_IN: u64 = 4;

/// How the next plans are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Mutate corpus plans that reached rare coverage.
    Guided,
    /// Fresh plans of consecutive seeds, as `fuzz` runs them.
    Random,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub strategy: Strategy,
    /// Seeds the explorer's own stream (and, for random, where its seeds start:
    /// `seed × 1,000,000`).
    pub seed: u64,
    pub jobs: usize,
    /// Stop after this many runs (counting earlier sessions of a corpus).
    pub max_runs: Option<u64>,
    /// Stop starting batches after this much wall time (this session).
    pub time_budget: Option<Duration>,
    pub stall: Duration,
    /// Stop at the first failing run.
    pub stop_at_failure: bool,
    /// Shrink the first failing plan of each checker, for at most this long.
    pub shrink: Option<Duration>,
    /// A progress line this often, to stderr.
    pub progress: Option<Duration>,
    /// Seeds a fresh plan never uses (a planted bug's own regression seed).
    pub skip_seeds: Vec<u64>,
}

/// A plan of the corpus and what its run reached.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: u64,
    pub plan: Plan,
    pub coverage: Coverage,
    /// How it was made (`seed N`, or its parent and mutations).
    pub origin: String,
}

/// A failing run.
#[derive(Debug, Clone)]
pub struct Found {
    /// Which run it was (1-based) and the wall time into the session.
    pub run: u64,
    pub wall_secs: f64,
    pub plan: Plan,
    pub checker: String,
    pub explanation: String,
    /// Where it was written, if the explorer has a folder.
    pub dir: Option<PathBuf>,
}

/// Coverage over time, one point a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub runs: u64,
    pub wall_secs: f64,
    pub coverage: usize,
    pub corpus: usize,
}

/// The explorer's state: resumable from its folder.
pub struct Explorer {
    pub scenario: Scenario,
    /// The scenario's file, for replay commands.
    pub scenario_path: String,
    pub options: Options,
    pub corpus: Vec<Entry>,
    /// Every coverage item reached, with the number of runs that reached it.
    pub hits: BTreeMap<String, u64>,
    pub runs: u64,
    /// Wall seconds spent by earlier sessions of this corpus.
    pub earlier_wall: f64,
    pub failures: Vec<Found>,
    pub curve: Vec<Point>,
    /// Per mutation: children made, and children kept.
    pub mutations: BTreeMap<Mutation, (u64, u64)>,
    dir: Option<PathBuf>,
    next_fresh: u64,
}

/// What a candidate is and where it came from.
struct Candidate {
    plan: Plan,
    origin: String,
    mutations: Vec<Mutation>,
}

impl Explorer {
    /// A new explorer, or the one a corpus folder holds.
    pub fn open(scenario: Scenario, scenario_path: &str, options: Options, dir: Option<&Path>) -> Result<Explorer, String> {
        let mut e = Explorer {
            scenario,
            scenario_path: scenario_path.to_string(),
            options,
            corpus: Vec::new(),
            hits: BTreeMap::new(),
            runs: 0,
            earlier_wall: 0.0,
            failures: Vec::new(),
            curve: Vec::new(),
            mutations: BTreeMap::new(),
            dir: dir.map(Path::to_path_buf),
            next_fresh: 0,
        };
        if let Some(dir) = dir {
            e.load(dir)?;
        }
        Ok(e)
    }

    fn fresh_seed(&mut self) -> u64 {
        loop {
            let seed = match self.options.strategy {
                Strategy::Random => self.options.seed * 1_000_000 + self.next_fresh,
                Strategy::Guided => {
                    let mut rng = ChaCha8Rng::seed_from_u64(self.options.seed ^ 0xf8e5_4000_0000_0000 ^ self.next_fresh);
                    rng.next_u64() % 1_000_000_000
                }
            };
            self.next_fresh += 1;
            if !self.options.skip_seeds.contains(&seed) {
                return seed;
            }
        }
    }

    /// Each corpus plan's energy: the sum over its items of one over the
    /// runs that reached each.
    fn energy(&self) -> Vec<f64> {
        self.corpus.iter().map(|e| e.coverage.items.iter().map(|i| 1.0 / self.hits.get(i).copied().unwrap_or(1).max(1) as f64).sum::<f64>().max(1e-9)).collect()
    }

    /// A corpus plan picked by `energy`.
    fn pick(energy: &[f64], rng: &mut ChaCha8Rng) -> usize {
        let total: f64 = energy.iter().sum();
        let mut x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
        for (i, w) in energy.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        energy.len() - 1
    }

    fn batch(&mut self, size: usize) -> Vec<Candidate> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.options.seed ^ 0x6e1d_ed00_0000_0000 ^ self.runs.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut out = Vec::new();
        // The corpus and its counts do not change within a batch.
        let energy = self.energy();
        for _ in 0..size {
            let fresh = self.options.strategy == Strategy::Random || self.corpus.is_empty() || rng.next_u64() % FRESH_ONE_IN == 0;
            if fresh {
                let seed = self.fresh_seed();
                out.push(Candidate { plan: Plan::draw(&self.scenario, seed), origin: format!("seed {seed}"), mutations: vec![] });
                continue;
            }
            let p = Self::pick(&energy, &mut rng);
            let o = (rng.next_u64() % self.corpus.len() as u64) as usize;
            let other = (o != p).then(|| &self.corpus[o].plan);
            let (plan, mutations) = mutate::child(&self.scenario, &self.corpus[p].plan, other, &mut rng);
            let names: Vec<&str> = mutations.iter().map(|m| m.name()).collect();
            let with = other.map_or(String::new(), |_| format!(" (with #{})", self.corpus[o].id));
            out.push(Candidate { origin: format!("#{}{with}: {}", self.corpus[p].id, names.join(", ")), plan, mutations });
        }
        out
    }

    /// Runs until the budget is spent (or, if asked, the first failure).
    /// `log` gets the progress lines and what was found.
    pub fn run(&mut self, log: &mut dyn FnMut(&str)) -> Result<(), String> {
        let started = Instant::now();
        let mut last_line = Instant::now();
        self.curve.push(self.point(started));
        loop {
            if self.options.max_runs.is_some_and(|m| self.runs >= m) || self.options.time_budget.is_some_and(|b| started.elapsed() >= b) {
                break;
            }
            if self.options.stop_at_failure && !self.failures.is_empty() {
                break;
            }
            let size = self.options.max_runs.map_or(BATCH, |m| BATCH.min((m - self.runs) as usize));
            let batch = self.batch(size);
            // One job: each candidate is judged as soon as it ran (so a first
            // failure's time is its own); more: the batch runs at once. The
            // batch and the order of judging are the same either way.
            let results = if self.options.jobs <= 1 {
                Vec::new()
            } else {
                let plans: Vec<Plan> = batch.iter().map(|c| c.plan.clone()).collect();
                run_all(&self.scenario, &plans, self.options.jobs, self.options.stall)
            };
            let mut results = results.into_iter();
            for candidate in batch {
                let result = match results.next() {
                    Some(r) => r,
                    None => run::run_or_stall(&self.scenario, &candidate.plan, self.options.stall),
                };
                self.judge(candidate, result, started, log)?;
                if self.options.stop_at_failure && !self.failures.is_empty() {
                    break;
                }
            }
            self.curve.push(self.point(started));
            self.save()?;
            if let Some(every) = self.options.progress {
                if last_line.elapsed() >= every {
                    last_line = Instant::now();
                    log(&self.progress_line(started));
                }
            }
        }
        Ok(())
    }

    fn point(&self, started: Instant) -> Point {
        Point { runs: self.runs, wall_secs: self.earlier_wall + started.elapsed().as_secs_f64(), coverage: self.hits.len(), corpus: self.corpus.len() }
    }

    pub fn progress_line(&self, started: Instant) -> String {
        let wall = started.elapsed().as_secs_f64();
        let session_runs = self.runs - self.curve.first().map_or(0, |p| p.runs);
        format!(
            "explore: {} runs, {} coverage items, {} plans in the corpus, {:.2} runs/s, {} failures",
            self.runs,
            self.hits.len(),
            self.corpus.len(),
            session_runs as f64 / wall.max(1e-9),
            self.failures.len()
        )
    }

    fn judge(&mut self, candidate: Candidate, result: Result<RunReport, run::Stall>, started: Instant, log: &mut dyn FnMut(&str)) -> Result<(), String> {
        self.runs += 1;
        let Candidate { plan, origin, mutations } = candidate;
        let (coverage, failed) = match result {
            Ok(report) => (report.coverage, report.failures.into_iter().next().map(|f| (f.checker.as_str().to_string(), f.explanation))),
            Err(stall) => (Coverage::default(), Some(("stall".to_string(), stall.to_string()))),
        };
        let new = coverage.items.iter().filter(|i| !self.hits.contains_key(*i)).count();
        for item in &coverage.items {
            *self.hits.entry(item.clone()).or_default() += 1;
        }
        let kept = new > 0 && failed.is_none();
        for m in &mutations {
            let tally = self.mutations.entry(*m).or_default();
            tally.0 += 1;
            tally.1 += u64::from(kept);
        }
        if let Some((checker, explanation)) = failed {
            let found = Found { run: self.runs, wall_secs: started.elapsed().as_secs_f64(), plan, checker, explanation, dir: None };
            self.found(found, log)?;
        } else if kept {
            let id = self.corpus.last().map_or(1, |e| e.id + 1);
            let entry = Entry { id, plan, coverage, origin };
            self.write_entry(&entry)?;
            self.corpus.push(entry);
        }
        Ok(())
    }

    /// A failing run: written out with its replay command, and shrunk (the
    /// first of its checker) when asked.
    fn found(&mut self, mut found: Found, log: &mut dyn FnMut(&str)) -> Result<(), String> {
        let first_of_checker = !self.failures.iter().any(|f| f.checker == found.checker);
        log(&format!("FAIL {} run {} ({}): {}", self.scenario_path, found.run, found.checker, found.explanation.lines().next().unwrap_or("")));
        if let Some(dir) = &self.dir {
            let at = dir.join("failures").join(format!("{:06}-{}", found.run, found.checker));
            std::fs::create_dir_all(&at).map_err(|e| format!("{}: {e}", at.display()))?;
            let plan_file = at.join("plan.toml");
            write(&plan_file, &found.plan.to_toml())?;
            let replay = replay_command(&self.scenario_path, found.plan.seed, &plan_file);
            let mut text = format!("{}\n\n{}\n\nreplay: {replay}\n", found.checker, found.explanation);
            if let (true, Some(budget)) = (first_of_checker, self.options.shrink) {
                let checker = found.checker.parse::<crate::checker::Checker>().ok();
                let b = crate::shrink::Budget { runs: 500, wall: budget, stall: self.options.stall };
                let mut quiet = |_: &str| {};
                if let Ok(shrunk) = crate::shrink::shrink(&self.scenario, found.plan.clone(), checker, b, &mut quiet) {
                    let shrunk_file = at.join("shrunk.toml");
                    write(&shrunk_file, &shrunk.plan.to_toml())?;
                    let line = format!(
                        "shrunk: {} -> {} in {} runs; replay: {}",
                        shrunk.original,
                        shrunk.shrunk,
                        shrunk.runs,
                        replay_command(&self.scenario_path, shrunk.plan.seed, &shrunk_file)
                    );
                    text.push_str(&line);
                    text.push('\n');
                    log(&format!("  {line}"));
                }
            }
            write(&at.join("README.txt"), &text)?;
            log(&format!("  replay: {replay}"));
            found.dir = Some(at);
        }
        self.failures.push(found);
        Ok(())
    }

    /// Coverage items of the kinds the report can enumerate that no run reached.
    pub fn never_reached(&self) -> Vec<String> {
        let mut out = Vec::new();
        let n = &self.scenario.nemesis;
        for kind in crate::nemesis::FaultKind::ALL.iter().filter(|k| k.weight(n) > 0) {
            for step in ["lead", "cc-applied", "split", "snap-taken", "lease-read"] {
                let item = format!("during:{}:{step}", kind.name());
                if !self.hits.contains_key(&item) {
                    out.push(item);
                }
            }
        }
        if n.buggify {
            let sites: Vec<simkv::buggify::Site> = if n.buggify_sites.is_empty() { simkv::buggify::ALL.to_vec() } else { n.buggify_sites.clone() };
            for site in sites {
                if !self.hits.keys().any(|i| i.starts_with(&format!("buggify:{}:", site.name()))) {
                    out.push(format!("buggify:{}", site.name()));
                }
            }
        }
        out
    }

    // ---- the folder ----

    fn write_entry(&self, entry: &Entry) -> Result<(), String> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let plans = dir.join("plans");
        std::fs::create_dir_all(&plans).map_err(|e| format!("{}: {e}", plans.display()))?;
        write(&plans.join(format!("{:06}.toml", entry.id)), &format!("# {}\n{}", entry.origin, entry.plan.to_toml()))?;
        write(&plans.join(format!("{:06}.cov", entry.id)), &entry.coverage.to_text())
    }

    fn save(&self) -> Result<(), String> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let mut hits = String::new();
        for (item, n) in &self.hits {
            hits.push_str(&format!("{n}\t{item}\n"));
        }
        write(&dir.join("hits.tsv"), &hits)?;
        let mut curve = String::from("runs\twall_secs\tcoverage\tcorpus\n");
        for p in &self.curve {
            curve.push_str(&format!("{}\t{:.3}\t{}\t{}\n", p.runs, p.wall_secs, p.coverage, p.corpus));
        }
        write(&dir.join("curve.tsv"), &curve)?;
        let state = format!(
            "# guided exploration's state; the plans are in plans/, failures in failures/\nscenario = {:?}\nseed = {}\nruns = {}\nnext_fresh = {}\nwall_secs = {:.3}\n",
            self.scenario.name,
            self.options.seed,
            self.runs,
            self.next_fresh,
            self.curve.last().map_or(0.0, |p| p.wall_secs)
        );
        write(&dir.join("state.toml"), &state)
    }

    fn load(&mut self, dir: &Path) -> Result<(), String> {
        let state_file = dir.join("state.toml");
        let Ok(text) = std::fs::read_to_string(&state_file) else {
            return std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()));
        };
        #[derive(serde::Deserialize)]
        struct State {
            scenario: String,
            seed: u64,
            runs: u64,
            next_fresh: u64,
            wall_secs: f64,
        }
        let file = state_file.display().to_string();
        let state: State = toml::from_str(&text).map_err(|e| format!("{file}: {}", e.message().trim()))?;
        if state.scenario != self.scenario.name {
            return Err(format!("{file}: this corpus explores scenario `{}`, not `{}`", state.scenario, self.scenario.name));
        }
        if state.seed != self.options.seed {
            return Err(format!("{file}: this corpus was made with --seed {}; resume it with that seed (or start another folder)", state.seed));
        }
        (self.runs, self.next_fresh, self.earlier_wall) = (state.runs, state.next_fresh, state.wall_secs);
        let hits_file = dir.join("hits.tsv");
        let text = std::fs::read_to_string(&hits_file).map_err(|e| format!("{}: {e}", hits_file.display()))?;
        for (i, line) in text.lines().enumerate() {
            let (n, item) = line.split_once('\t').ok_or_else(|| format!("{}:{}: expected `count<TAB>item`", hits_file.display(), i + 1))?;
            let n = n.parse().map_err(|_| format!("{}:{}: `{n}` is not a count", hits_file.display(), i + 1))?;
            self.hits.insert(item.to_string(), n);
        }
        let plans = dir.join("plans");
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&plans) {
            Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        for path in files {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{file}: {e}"))?;
            let plan = Plan::from_toml(&file, &text).map_err(|e| e.to_string())?;
            let id = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("{file}: a corpus plan is named by its number"))?;
            let cov = path.with_extension("cov");
            let coverage = Coverage::from_text(&std::fs::read_to_string(&cov).map_err(|e| format!("{}: {e}", cov.display()))?);
            let origin = text.lines().next().and_then(|l| l.strip_prefix("# ")).unwrap_or("").to_string();
            self.corpus.push(Entry { id, plan, coverage, origin });
        }
        let curve_file = dir.join("curve.tsv");
        if let Ok(text) = std::fs::read_to_string(&curve_file) {
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split('\t').collect();
                if let [runs, wall, coverage, corpus] = f[..] {
                    if let (Ok(runs), Ok(wall_secs), Ok(coverage), Ok(corpus)) = (runs.parse(), wall.parse(), coverage.parse(), corpus.parse()) {
                        self.curve.push(Point { runs, wall_secs, coverage, corpus });
                    }
                }
            }
        }
        Ok(())
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

/// The command that replays a plan file.
pub fn replay_command(scenario: &str, seed: u64, plan: &Path) -> String {
    format!("cargo run --release -p simkv-sim -- run --scenario {scenario} --seed {seed} --schedule {}", plan.display())
}

/// A run's report, or the stall that gave it up.
pub type RunResult = Result<RunReport, run::Stall>;

/// Runs `plans`, at most `jobs` at once, each on a thread of its own; the
/// results in the plans' order.
pub fn run_all(scenario: &Scenario, plans: &[Plan], jobs: usize, stall: Duration) -> Vec<RunResult> {
    let n = plans.len();
    let results: Arc<Mutex<Vec<Option<RunResult>>>> = Arc::new(Mutex::new((0..n).map(|_| None).collect()));
    let next = Arc::new(AtomicUsize::new(0));
    let shared = Arc::new((scenario.clone(), plans.to_vec()));
    let workers: Vec<_> = (0..jobs.clamp(1, n.max(1)))
        .map(|_| {
            let (results, next, shared) = (results.clone(), next.clone(), shared.clone());
            std::thread::spawn(move || loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(plan) = shared.1.get(k) else { return };
                let result = run::run_or_stall(&shared.0, plan, stall);
                results.lock().unwrap()[k] = Some(result);
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let mut results = results.lock().unwrap();
    results.iter_mut().map(|r| r.take().expect("every plan ran")).collect()
}
