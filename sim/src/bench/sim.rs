//! How fast the simulator runs the store: simulated seconds and operations per
//! wall second, measured in the same run.

use crate::cluster::{Cluster, ClusterSpec};
use madsim::time::{sleep, Duration};
use simkv::client::ClientConfig;
use std::fmt;
use std::sync::Arc;

/// One seed's run.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub seed: u64,
    pub sim_seconds: f64,
    pub wall_seconds: f64,
    pub ops_ok: u64,
    pub ops_failed: u64,
    pub digest: u64,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {:>4}: {:.1} sim s in {:.2} wall s = {:.1} sim s / wall s; {} ops ok, {} failed = {:.0} ops / wall s; digest {:016x}",
            self.seed,
            self.sim_seconds,
            self.wall_seconds,
            self.sim_seconds / self.wall_seconds,
            self.ops_ok,
            self.ops_failed,
            self.ops_ok as f64 / self.wall_seconds,
            self.digest
        )
    }
}

#[derive(Debug, Default)]
pub struct BenchTotals {
    pub runs: u64,
    pub failed_runs: u64,
    pub sim_seconds: f64,
    pub wall_seconds: f64,
    pub ops_ok: u64,
}

impl BenchTotals {
    pub fn add(&mut self, report: &LoadReport) {
        self.runs += 1;
        self.failed_runs += (report.ops_ok == 0) as u64;
        self.sim_seconds += report.sim_seconds;
        self.wall_seconds += report.wall_seconds;
        self.ops_ok += report.ops_ok;
    }
}

impl fmt::Display for BenchTotals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "total: {} runs, {:.1} sim s / wall s, {:.0} raw ops / wall s{}",
            self.runs,
            self.sim_seconds / self.wall_seconds.max(1e-9),
            self.ops_ok as f64 / self.wall_seconds.max(1e-9),
            if self.failed_runs > 0 { format!(", {} runs made no progress", self.failed_runs) } else { String::new() }
        )
    }
}

/// Runs `clients` clients doing put/get against a 5-store, 8-region cluster for
/// `sim_seconds` of simulated time.
pub fn raftstore_load(seed: u64, sim_seconds: u64, clients: usize) -> LoadReport {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    let wall = std::time::Instant::now();
    let (ops_ok, ops_failed, digest) = runtime.block_on(async move {
        let cluster = Arc::new(Cluster::start(ClusterSpec::new(5, 8)));
        sleep(Duration::from_secs(3)).await;
        let deadline = madsim::time::Instant::now() + Duration::from_secs(sim_seconds);
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (node, local) = cluster.client_node();
            let cluster = cluster.clone();
            tasks.push(node.spawn(async move {
                let client = cluster.raw_client(local, ClientConfig::default()).await;
                let (mut ok, mut failed, mut i) = (0u64, 0u64, 0usize);
                while madsim::time::Instant::now() < deadline {
                    let key = format!("key{:03}", (c * 131 + i * 17) % 1000).into_bytes();
                    let result = if i % 2 == 0 { client.put(&key, b"value").await } else { client.get(&key).await.map(|_| ()) };
                    if result.is_ok() {
                        ok += 1
                    } else {
                        failed += 1
                    }
                    i += 1;
                }
                (ok, failed)
            }));
        }
        let (mut ok, mut failed) = (0, 0);
        for task in tasks {
            let (o, f) = task.await.expect("client task");
            ok += o;
            failed += f;
        }
        (ok, failed, cluster.digest())
    });
    LoadReport { seed, sim_seconds: (sim_seconds + 3) as f64, wall_seconds: wall.elapsed().as_secs_f64(), ops_ok, ops_failed, digest }
}

/// What regions without traffic cost: a 5-store cluster with `regions`
/// regions and no clients, run for `sim_seconds` (start-up included); the
/// wall seconds it took (median of `runs`). Wall time is read outside the
/// simulation: inside it, even `std::time` is simulated.
/// `hibernate: false` keeps every region awake (`hibernate_after_ticks = 0`).
pub fn idle_cluster(regions: usize, sim_seconds: u64, runs: usize, hibernate: bool) -> f64 {
    let mut walls: Vec<f64> = (0..runs.max(1))
        .map(|seed| {
            let runtime = madsim::runtime::Runtime::with_seed_and_config(seed as u64, madsim::Config::default());
            let started = std::time::Instant::now();
            runtime.block_on(async move {
                let mut spec = ClusterSpec::new(5, regions);
                if !hibernate {
                    spec.raftstore.hibernate_after_ticks = 0;
                }
                let cluster = Cluster::start(spec);
                sleep(Duration::from_secs(sim_seconds)).await;
                drop(cluster);
            });
            started.elapsed().as_secs_f64()
        })
        .collect();
    walls.sort_by(f64::total_cmp);
    walls[walls.len() / 2]
}

/// `simkv-sim bench`: simulated seconds per wall second and seeds per hour for a
/// scenario; returns how many runs failed.
/// Runs `seeds` seeds of `scenario`; returns the failed runs and the simulated
/// seconds per wall second over all of them.
pub fn scenario(scenario: &crate::scenario::Scenario, seeds: u64) -> (usize, f64) {
    use std::time::Instant;

    let mut failed = 0;
    let (mut sim, mut wall) = (0.0f64, 0.0f64);
    for seed in 0..seeds {
        let plan = crate::nemesis::Plan::draw(scenario, seed);
        let started = Instant::now();
        let report = crate::run::run(scenario, &plan);
        let w = started.elapsed().as_secs_f64();
        let s = report.stats.sim_millis as f64 / 1000.0;
        println!(
            "{} seed {seed}: {:.1} simulated s in {:.2} wall s = {:.1} simulated s per wall s; {} ops, {} faults, {} regions; {}",
            scenario.name,
            s,
            w,
            s / w,
            report.stats.ops,
            report.stats.faults,
            report.stats.regions,
            if report.passed() { "pass" } else { "FAIL" }
        );
        failed += usize::from(!report.passed());
        sim += s;
        wall += w;
    }
    if seeds > 0 {
        println!("{}: {:.1} simulated s per wall s; {:.0} seeds per hour on one core", scenario.name, sim / wall, 3600.0 * seeds as f64 / wall);
    }
    (failed, sim / wall.max(1e-9))
}

/// Read latency, in simulated time, on one read path.
#[derive(Debug, Clone)]
pub struct ReadLatency {
    pub lease_reads: bool,
    pub reads: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl fmt::Display for ReadLatency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<9} {} reads: mean {:.2} ms, p50 {:.2} ms, p99 {:.2} ms (simulated)",
            if self.lease_reads { "lease" } else { "ReadIndex" },
            self.reads,
            self.mean_ms,
            self.p50_ms,
            self.p99_ms
        )
    }
}

/// Four clients reading (nine in ten operations) and writing one region of a
/// 3-store cluster with 2 ms of raft delay, with leader leases on or off, for
/// `sim_seconds`: the read latency each path gives, measured by the clients in
/// simulated time.
pub fn read_latency(seed: u64, sim_seconds: u64, lease_reads: bool) -> ReadLatency {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    let mut latencies: Vec<Duration> = runtime.block_on(async move {
        let mut spec = ClusterSpec::new(3, 1);
        spec.raftstore.lease_reads = lease_reads;
        let cluster = Arc::new(Cluster::start(spec));
        let raft = simkv::transport::LinkFaults { loss: 0.0, delay_ms: (2, 2), duplicate: 0.0 };
        cluster.net_faults.set(simkv::transport::Traffic::Raft, raft);
        sleep(Duration::from_secs(3)).await;
        let deadline = madsim::time::Instant::now() + Duration::from_secs(sim_seconds);
        let mut tasks = Vec::new();
        for c in 0..4usize {
            let (node, local) = cluster.client_node();
            let cluster = cluster.clone();
            tasks.push(node.spawn(async move {
                let client = cluster.raw_client(local, ClientConfig::default()).await;
                let mut latencies = Vec::new();
                let mut i = 0usize;
                while madsim::time::Instant::now() < deadline {
                    let key = format!("key{:03}", (c * 7 + i) % 16).into_bytes();
                    if i.is_multiple_of(10) {
                        let _ = client.put(&key, b"value").await;
                    } else {
                        let started = madsim::time::Instant::now();
                        if client.get(&key).await.is_ok() {
                            latencies.push(started.elapsed());
                        }
                    }
                    i += 1;
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("client task"));
        }
        all
    });
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q) as usize).copied().map_or(0.0, ms);
    let mean = latencies.iter().map(|d| ms(*d)).sum::<f64>() / latencies.len().max(1) as f64;
    ReadLatency { lease_reads, reads: latencies.len(), mean_ms: mean, p50_ms: at(0.5), p99_ms: at(0.99) }
}

/// What the bank benchmark measured over its seeds.
#[derive(Debug, Clone, Default)]
pub struct BankBench {
    pub runs: usize,
    pub failed_runs: usize,
    /// Transactions that committed: transfers, and whole-bank reads.
    pub committed: usize,
    /// Transfers that reached their commit and were aborted (conflicts, locks
    /// that stayed, rollbacks by others), and transfers that tried.
    pub aborted: usize,
    pub transfers_tried: usize,
    pub unknown: usize,
    /// The safety phases' simulated seconds (when clients run), and the
    /// runs' wall seconds.
    pub sim_seconds: f64,
    pub wall_seconds: f64,
}

impl fmt::Display for BankBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bank: {} runs ({} failed): {} committed transactions, {:.1} per simulated s, {:.1} per wall s; abort rate {:.1}% ({} of {} transfers), {} unknown",
            self.runs,
            self.failed_runs,
            self.committed,
            self.committed as f64 / self.sim_seconds.max(1e-9),
            self.committed as f64 / self.wall_seconds.max(1e-9),
            100.0 * self.aborted as f64 / (self.transfers_tried.max(1)) as f64,
            self.aborted,
            self.transfers_tried,
            self.unknown
        )
    }
}

/// Runs `seeds` seeds of a bank scenario and counts its transactions: how
/// many committed per simulated and per wall second, and how many aborted.
pub fn bank(scenario: &crate::scenario::Scenario, seeds: u64) -> BankBench {
    use crate::workload::bank::history::{BankCall, BankOutcome};
    let mut out = BankBench::default();
    for seed in 0..seeds {
        let plan = crate::nemesis::Plan::draw(scenario, seed);
        let started = std::time::Instant::now();
        let report = crate::run::run(scenario, &plan);
        out.wall_seconds += started.elapsed().as_secs_f64();
        out.sim_seconds += plan.safety_secs.unwrap_or(scenario.phases.safety_secs) as f64;
        out.runs += 1;
        out.failed_runs += usize::from(!report.passed());
        for op in report.bank.iter().filter(|o| o.process != crate::workload::FINAL_PROCESS) {
            match (&op.call, &op.outcome) {
                (_, BankOutcome::Ok | BankOutcome::Read(_)) => out.committed += 1,
                (_, BankOutcome::Info(_)) => out.unknown += 1,
                // A transfer refused for want of money never tried to commit.
                (BankCall::Transfer { .. }, BankOutcome::Fail(why)) if why.contains("less than") => continue,
                (BankCall::Transfer { .. }, BankOutcome::Fail(_)) => out.aborted += 1,
                (BankCall::Read, BankOutcome::Fail(_)) => {}
            }
            if matches!(op.call, BankCall::Transfer { .. }) {
                out.transfers_tried += 1;
            }
        }
    }
    out
}

/// Completed operations per wall second over `seeds` seeds of `scenario`:
/// the raw baseline the bank's transactions are put next to.
pub fn ops_per_wall_second(scenario: &crate::scenario::Scenario, seeds: u64) -> f64 {
    let (mut ops, mut wall) = (0usize, 0.0f64);
    for seed in 0..seeds {
        let plan = crate::nemesis::Plan::draw(scenario, seed);
        let started = std::time::Instant::now();
        let report = crate::run::run(scenario, &plan);
        wall += started.elapsed().as_secs_f64();
        ops += report.stats.ok;
    }
    ops as f64 / wall.max(1e-9)
}
