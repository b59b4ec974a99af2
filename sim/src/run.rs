//! One run: a scenario, a plan (swarm parameters and fault schedule drawn from the
//! seed), a simulated cluster, a workload recording its history, two phases, and
//! the checkers.
//!
//! 1. **Safety phase**: clients run the workload while the nemesis injects the
//!    plan's faults (each healed when its duration ends).
//! 2. **Liveness phase**: every fault is healed. Within the phase's bound every
//!    client operation must complete, every region must serve a read, and every
//!    region's replicas must hold identical data; failing that is a failure of its
//!    own ("did not converge").
//! 3. **Checks**: linearizability of the history (with the final reads in it),
//!    durability, the sequential check, raft safety over the store events, and
//!    convergence.

use crate::checker::sequential::{ClientLog, ItemStatus};
use crate::checker::{convergence, durability, linearizability, raft as raft_checker, sequential};
use crate::cluster::{Cluster, ClusterSpec};
use crate::history::{Call, Clock, History, Initial, Operation, Outcome};
use crate::nemesis::{Nemesis, Plan, Swarm};
use crate::scenario::{Bug, Scenario, WorkloadKind};
use madsim::time::{sleep, Duration, Instant};
use simkv::client::{ClientConfig, ClientError, RawClient};
use simkv::engine::IoProfile;
use simkv::meta::StoreId;
use simkv::raftstore::events::fingerprint;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A checker that failed, with what a person needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub checker: String,
    pub explanation: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    pub ops: usize,
    pub ok: usize,
    pub unknown: usize,
    pub faults: usize,
    pub events: usize,
    pub sim_millis: u64,
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub plan: Plan,
    pub history: History,
    /// Nemesis and phase events with simulated times, one line each.
    pub timeline: Vec<String>,
    pub failures: Vec<Failure>,
    /// Checks that could not decide (a search that ran out of its budget): an
    /// outcome of its own, never a pass.
    pub inconclusive: Vec<Failure>,
    pub stats: RunStats,
    /// Fingerprint of the store events, the timeline and the history: two runs
    /// of one seed in one build must agree on it.
    pub digest: u64,
}

/// What a run amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Pass,
    /// Some check could not decide; none failed.
    Inconclusive,
    Fail,
}

impl RunReport {
    /// Every check ran to a verdict and every verdict was good.
    pub fn passed(&self) -> bool {
        self.outcome() == RunOutcome::Pass
    }

    pub fn outcome(&self) -> RunOutcome {
        if !self.failures.is_empty() {
            RunOutcome::Fail
        } else if !self.inconclusive.is_empty() {
            RunOutcome::Inconclusive
        } else {
            RunOutcome::Pass
        }
    }
}

/// Runs `scenario` with `plan` in a fresh simulation seeded with `plan.seed`.
/// A panic anywhere in the simulated cluster is reported as a failure.
pub fn run(scenario: &Scenario, plan: &Plan) -> RunReport {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(plan.seed, madsim::Config::default());
    let (scenario, plan2) = (scenario.clone(), plan.clone());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(run_inner(scenario, plan2))));
    match result {
        Ok(report) => report,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            RunReport {
                plan: plan.clone(),
                history: History::new(Initial::Absent, Clock::Nanos),
                timeline: vec![],
                failures: vec![Failure { checker: "panic".into(), explanation: format!("the simulation panicked: {message}") }],
                inconclusive: vec![],
                stats: RunStats::default(),
                digest: fingerprint(message.as_bytes()),
            }
        }
    }
}

/// How many recent values per key a CAS may pick its expected value from.
const RECENT_VALUES: usize = 4;

/// The process id of the final reads after healing.
const FINAL_PROCESS: u64 = 1_000_000;

fn now_ns() -> u64 {
    madsim::time::TimeHandle::current().elapsed().as_nanos() as u64
}

/// The register workload's keys, spread over the pre-split key space.
fn register_key(i: u64, keys: u64) -> String {
    format!("key{:03}-r", i * 1000 / keys.max(1))
}

fn sequential_key(client: u64, clients: u64) -> String {
    format!("key{:03}-s{client}", client * 1000 / clients.max(1))
}

struct Shared {
    cluster: Arc<Cluster>,
    timeline: Mutex<Vec<String>>,
    ops: Mutex<Vec<Operation>>,
    /// The last values seen on each key (written or read), oldest first: what a
    /// CAS compares against.
    recent: Mutex<BTreeMap<String, std::collections::VecDeque<String>>>,
    logs: Mutex<BTreeMap<u64, ClientLog>>,
    stop: AtomicBool,
    start: Instant,
    nemesis: Nemesis,
    swarm: Swarm,
    delete_percent: u64,
}

impl Shared {
    fn log(&self, line: String) {
        let at = self.start.elapsed();
        let line = format!("{:>8.3}s {line}", at.as_secs_f64());
        tracing::info!(target: "simkv_sim::nemesis", "{line}");
        self.timeline.lock().unwrap().push(line);
    }
}

async fn run_inner(scenario: Scenario, plan: Plan) -> RunReport {
    let swarm = plan.swarm.clone();
    let mut spec = ClusterSpec::new(swarm.stores as usize, swarm.regions as usize);
    spec.replicas = scenario.cluster.replicas as usize;
    spec.raftstore.raft_log_gc_count_limit = swarm.raft_log_gc_count_limit;
    spec.raftstore.raft_log_gc_ticks = 3;
    for bug in &plan.bugs {
        match bug {
            Bug::FollowerLocalRead => spec.raftstore.bugs.follower_local_read = true,
            Bug::AckBeforeCommit => spec.raftstore.bugs.ack_before_commit = true,
            Bug::UnsyncedVote => spec.raftstore.bugs.unsynced_vote = true,
            Bug::SnapshotKeepsStaleKeys => spec.raftstore.bugs.snapshot_keeps_stale_keys = true,
        }
    }
    spec.io = IoProfile { slowdown: swarm.disk_slowdown.max(1), ..IoProfile::ssd() };
    let baseline_io = spec.io.clone();
    let cluster = Arc::new(Cluster::start(spec));
    let shared = Arc::new(Shared {
        cluster: cluster.clone(),
        timeline: Mutex::new(Vec::new()),
        ops: Mutex::new(Vec::new()),
        recent: Mutex::new(BTreeMap::new()),
        logs: Mutex::new(BTreeMap::new()),
        stop: AtomicBool::new(false),
        start: Instant::now(),
        nemesis: Nemesis::new(cluster.clone(), baseline_io),
        swarm: swarm.clone(),
        delete_percent: scenario.workload.delete_percent,
    });
    shared.log(plan.swarm_line());
    let mut failures = Vec::new();

    // Let the regions elect leaders before load and faults begin.
    sleep(Duration::from_secs(3)).await;

    // Safety phase.
    let safety = Duration::from_secs(scenario.phases.safety_secs);
    shared.log("safety phase begins".into());
    let transport = crate::nemesis::network::start(&cluster, &swarm);
    if swarm.raft_loss > 0.0 || swarm.raft_delay_ms > 0 || swarm.client_loss > 0.0 || swarm.client_delay_ms > 0 {
        shared.log(transport);
    }
    let mut clients = Vec::new();
    for c in 0..swarm.clients {
        let (node, local) = cluster.client_node();
        shared.nemesis.add_client(node.id());
        let shared = shared.clone();
        let kind = scenario.workload.kind;
        clients.push(node.spawn(async move {
            let cfg = ClientConfig { rpc_timeout: Duration::from_secs(1), max_attempts: 8, ..ClientConfig::default() };
            let client = shared.cluster.raw_client(local, cfg).await;
            match kind {
                WorkloadKind::Register => register_client(&shared, &client, c).await,
                WorkloadKind::Sequential => sequential_client(&shared, &client, c).await,
            }
        }));
    }
    let nemesis = {
        let shared = shared.clone();
        let plan = plan.clone();
        madsim::task::spawn(async move { run_nemesis(&shared, &plan).await })
    };
    sleep(safety).await;
    shared.stop.store(true, Ordering::SeqCst);
    nemesis.abort();

    // Liveness phase: heal everything; the cluster must converge in time.
    shared.nemesis.heal_all();
    shared.log("liveness phase begins: every fault healed".into());
    let deadline = Instant::now() + Duration::from_secs(scenario.phases.liveness_secs);
    for (i, task) in clients.into_iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        match madsim::time::timeout(left, task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(Failure { checker: "workload".into(), explanation: format!("client {i} stopped: {e}") }),
            Err(_) => failures.push(Failure {
                checker: "liveness".into(),
                explanation: format!("client {i} was still waiting for an operation when the liveness phase ended"),
            }),
        }
    }
    failures.extend(final_reads(&shared, &scenario, deadline).await);
    if scenario.checkers.convergence {
        if let Some(f) = converge(&cluster, deadline).await {
            failures.push(f);
        }
    }
    shared.log("liveness phase ends".into());

    // Checks.
    let mut history = History::new(Initial::Absent, Clock::Nanos);
    history.ops = std::mem::take(&mut *shared.ops.lock().unwrap());
    history.ops.sort_by_key(|o| (o.invoke, o.process));
    let mut inconclusive = Vec::new();
    if scenario.checkers.linearizability {
        match linearizability::check_with_limit(&history, scenario.checkers.linearizability_steps) {
            linearizability::Verdict::Linearizable => {}
            linearizability::Verdict::NotLinearizable(v) => {
                failures.push(Failure { checker: "linearizability".into(), explanation: linearizability::explain(&history, &v) })
            }
            linearizability::Verdict::Inconclusive { keys, steps } => inconclusive.push(Failure {
                checker: "linearizability".into(),
                explanation: format!(
                    "the search ran out of its budget of {steps} steps for keys {keys:?} without a verdict: this run was neither shown linearizable nor shown not to be (replay it and run `simkv-sim check --max-steps N` on its history.edn)"
                ),
            }),
        }
    }
    if scenario.checkers.durability {
        if let Some(e) = durability::check(&history, FINAL_PROCESS) {
            failures.push(Failure { checker: "durability".into(), explanation: e });
        }
    }
    if scenario.checkers.sequential && scenario.workload.kind == WorkloadKind::Sequential {
        if let Some(e) = sequential::check(&shared.logs.lock().unwrap()) {
            failures.push(Failure { checker: "sequential".into(), explanation: e });
        }
    }
    let events: Vec<_> = cluster.events().into_iter().map(|e| e.event).collect();
    if scenario.checkers.raft {
        if let Some(e) = raft_checker::check(&events) {
            failures.push(Failure { checker: "raft".into(), explanation: e });
        }
    }

    let timeline = shared.timeline.lock().unwrap().clone();
    let stats = RunStats {
        ops: history.ops.len(),
        ok: history.ops.iter().filter(|o| !matches!(o.outcome, Outcome::Unknown | Outcome::Failed)).count(),
        unknown: history.unknown_count(),
        faults: plan.faults.len(),
        events: events.len(),
        sim_millis: shared.start.elapsed().as_millis() as u64,
    };
    let mut text = format!("{:016x}\n", cluster.digest());
    timeline.iter().for_each(|l| text.push_str(l));
    history.ops.iter().for_each(|o| {
        let _ = writeln!(text, "{o:?}");
    });
    RunReport { plan, history, timeline, failures, inconclusive, stats, digest: fingerprint(text.as_bytes()) }
}

/// Records one finished operation.
fn record(shared: &Shared, process: u64, key: &str, call: Call, invoke: u64, outcome: Option<Outcome>) {
    let Some(outcome) = outcome else { return };
    if outcome == Outcome::Unknown && call == Call::Read {
        return;
    }
    let complete = (outcome != Outcome::Unknown).then(now_ns);
    let seen = match (&call, &outcome) {
        (Call::Write(v), Outcome::Done) | (Call::Cas(_, v), Outcome::CasOk) | (_, Outcome::Read(Some(v))) => Some(v.clone()),
        _ => None,
    };
    if let Some(v) = seen {
        let mut recent = shared.recent.lock().unwrap();
        let values = recent.entry(key.to_string()).or_default();
        values.push_back(v);
        if values.len() > RECENT_VALUES {
            values.pop_front();
        }
    }
    shared.ops.lock().unwrap().push(Operation { process, key: key.to_string(), call, outcome, invoke, complete });
}

async fn think(shared: &Shared) {
    let (lo, hi) = shared.swarm.think_ms;
    let ms = if hi > lo { rand::Rng::gen_range(&mut madsim::rand::thread_rng(), lo..=hi) } else { lo };
    sleep(Duration::from_millis(ms)).await;
}

/// Per-key get / put / cas / delete. A client whose operation has an unknown outcome
/// continues as a new process, as Jepsen's do.
async fn register_client(shared: &Shared, client: &RawClient, c: u64) {
    use rand::Rng;
    let (keys, read_percent, cas_percent) = (shared.swarm.keys, shared.swarm.read_percent, shared.swarm.cas_percent);
    let delete_percent = shared.delete_percent;
    let clients = shared.swarm.clients.max(1);
    let mut process = c;
    let mut counter = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        let (k, dice, expect) = {
            let mut rng = madsim::rand::thread_rng();
            (rng.gen_range(0..keys), rng.gen_range(0..100u64), rng.gen_range(0..RECENT_VALUES as u64))
        };
        let key = register_key(k, keys);
        counter += 1;
        let value = ((c + 1) * 1_000_000 + counter).to_string();
        let invoke = now_ns();
        let (call, outcome) = if dice < read_percent {
            let outcome = match client.get(key.as_bytes()).await {
                Ok(v) => Some(Outcome::Read(v.map(|v| String::from_utf8_lossy(&v).into_owned()))),
                // Definite: the client saw only errors that mean it did not happen.
                Err(_) => Some(Outcome::Failed),
            };
            (Call::Read, outcome)
        } else if dice < read_percent + cas_percent {
            // Compare against a value this key plausibly holds: the last value
            // this process read or wrote, else a recent one from the history.
            let from = last_value(shared, &key, expect).unwrap_or_else(|| "0".into());
            let outcome = match client.cas(key.as_bytes(), Some(from.as_bytes()), Some(value.as_bytes())).await {
                Ok((true, _)) => Some(Outcome::CasOk),
                Ok((false, _)) => Some(Outcome::CasFailed),
                Err(ClientError::Unknown(_)) => Some(Outcome::Unknown),
                // Definite: the client saw only errors that mean it did not happen.
                Err(_) => Some(Outcome::Failed),
            };
            (Call::Cas(from, value), outcome)
        } else if dice < read_percent + cas_percent + delete_percent {
            let outcome = match client.delete(key.as_bytes()).await {
                Ok(()) => Some(Outcome::Done),
                Err(ClientError::Unknown(_)) => Some(Outcome::Unknown),
                // Definite: the client saw only errors that mean it did not happen.
                Err(_) => Some(Outcome::Failed),
            };
            (Call::Delete, outcome)
        } else {
            let outcome = match client.put(key.as_bytes(), value.as_bytes()).await {
                Ok(()) => Some(Outcome::Done),
                Err(ClientError::Unknown(_)) => Some(Outcome::Unknown),
                // Definite: the client saw only errors that mean it did not happen.
                Err(_) => Some(Outcome::Failed),
            };
            (Call::Write(value), outcome)
        };
        let unknown = outcome == Some(Outcome::Unknown);
        record(shared, process, &key, call, invoke, outcome);
        if unknown {
            process += clients;
        }
        think(shared).await;
    }
}

/// One of the last few values seen on `key` (0 = the latest).
fn last_value(shared: &Shared, key: &str, back: u64) -> Option<String> {
    shared.recent.lock().unwrap().get(key).and_then(|values| values.iter().rev().nth(back as usize).cloned())
}

/// Appends items 1, 2, 3, ... to the client's own key by read + compare-and-set.
async fn sequential_client(shared: &Shared, client: &RawClient, c: u64) {
    let clients = shared.swarm.clients.max(1);
    let key = sequential_key(c, clients);
    shared.logs.lock().unwrap().insert(c, ClientLog::default());
    let mut process = c;
    // Start from the empty list, so that every append is a compare-and-set
    // between two strings the register model can follow.
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let invoke = now_ns();
        let outcome = match client.put(key.as_bytes(), b"").await {
            Ok(()) => Some(Outcome::Done),
            Err(ClientError::Unknown(_)) => Some(Outcome::Unknown),
            Err(_) => Some(Outcome::Failed),
        };
        let done = outcome == Some(Outcome::Done);
        if outcome == Some(Outcome::Unknown) {
            record(shared, process, &key, Call::Write(String::new()), invoke, outcome.clone());
            process += clients;
        }
        if done {
            record(shared, process, &key, Call::Write(String::new()), invoke, outcome);
            break;
        }
        think(shared).await;
    }
    let mut item = 1u64;
    while !shared.stop.load(Ordering::SeqCst) {
        let invoke = now_ns();
        let current = match client.get(key.as_bytes()).await {
            Ok(v) => v.map(|v| String::from_utf8_lossy(&v).into_owned()),
            Err(_) => {
                think(shared).await;
                continue;
            }
        };
        record(shared, process, &key, Call::Read, invoke, Some(Outcome::Read(current.clone())));
        let mut next = current.clone().unwrap_or_default();
        next.push_str(&format!("{item},"));
        let from = current.clone().unwrap_or_default();
        let invoke = now_ns();
        let expected = current.as_deref().map(str::as_bytes);
        let (status, outcome) = match client.cas(key.as_bytes(), expected, Some(next.as_bytes())).await {
            Ok((true, _)) => (Some(ItemStatus::Acknowledged), Some(Outcome::CasOk)),
            Ok((false, _)) => (None, Some(Outcome::CasFailed)),
            Err(ClientError::Unknown(_)) => (Some(ItemStatus::Unknown), Some(Outcome::Unknown)),
            Err(_) => (None, Some(Outcome::Failed)),
        };
        record(shared, process, &key, Call::Cas(from, next), invoke, outcome.clone());
        if let Some(status) = status {
            shared.logs.lock().unwrap().get_mut(&c).expect("registered").items.insert(item, status);
            item += 1;
        }
        if outcome == Some(Outcome::Unknown) {
            process += clients;
        }
        think(shared).await;
    }
}

/// After healing: read every workload key (recorded in the history, so the
/// linearizability and durability checks see them) and one key of every region.
async fn final_reads(shared: &Arc<Shared>, scenario: &Scenario, deadline: Instant) -> Vec<Failure> {
    let cluster = &shared.cluster;
    let (node, local) = cluster.client_node();
    let keys: Vec<String> = {
        let ops = shared.ops.lock().unwrap();
        let mut keys: BTreeSet<String> = ops.iter().map(|o| o.key.clone()).collect();
        if scenario.workload.kind == WorkloadKind::Sequential {
            let clients = shared.logs.lock().unwrap().len() as u64;
            keys.extend((0..clients).map(|c| sequential_key(c, clients)));
        }
        keys.into_iter().collect()
    };
    let region_keys: Vec<Vec<u8>> = cluster.regions.iter().map(|r| r.start_key.clone()).collect();
    let shared2 = shared.clone();
    let task = node.spawn(async move {
        let cfg = ClientConfig { rpc_timeout: Duration::from_secs(1), max_attempts: 4, ..ClientConfig::default() };
        let client = shared2.cluster.raw_client(local, cfg).await;
        let mut failures = Vec::new();
        let process = FINAL_PROCESS;
        for key in &keys {
            let read = loop {
                let invoke = now_ns();
                match client.get(key.as_bytes()).await {
                    Ok(v) => break Some((invoke, v.map(|v| String::from_utf8_lossy(&v).into_owned()))),
                    Err(_) if Instant::now() < deadline => sleep(Duration::from_millis(200)).await,
                    Err(e) => {
                        failures.push(Failure {
                            checker: "liveness".into(),
                            explanation: format!("the final read of key {key:?} did not complete within the liveness phase: {e}"),
                        });
                        break None;
                    }
                }
            };
            if let Some((invoke, value)) = read {
                record(&shared2, process, key, Call::Read, invoke, Some(Outcome::Read(value.clone())));
                if key.contains("-s") {
                    let client_id: u64 = key.rsplit("-s").next().and_then(|c| c.parse().ok()).unwrap_or(u64::MAX);
                    let list = sequential::decode(value.as_deref().unwrap_or(""));
                    if let Some(log) = shared2.logs.lock().unwrap().get_mut(&client_id) {
                        match list {
                            Ok(list) => log.final_list = Some(list),
                            Err(e) => failures.push(Failure { checker: "sequential".into(), explanation: format!("client {client_id}: {e}") }),
                        }
                    }
                }
            }
        }
        // Every region serves a read: it has a leader that can confirm it.
        for key in region_keys {
            loop {
                match client.get(&key).await {
                    Ok(_) => break,
                    Err(_) if Instant::now() < deadline => sleep(Duration::from_millis(200)).await,
                    Err(e) => {
                        failures.push(Failure {
                            checker: "liveness".into(),
                            explanation: format!("the region starting at {key:?} served no read within the liveness phase: {e}"),
                        });
                        break;
                    }
                }
            }
        }
        failures
    });
    task.await.unwrap_or_else(|e| vec![Failure { checker: "liveness".into(), explanation: format!("final reads stopped: {e}") }])
}

/// Waits until every region's replicas hold identical data, or the deadline.
async fn converge(cluster: &Cluster, deadline: Instant) -> Option<Failure> {
    loop {
        let regions: Vec<convergence::RegionCopies> = cluster
            .regions
            .iter()
            .map(|region| convergence::RegionCopies {
                region_id: region.id,
                copies: region
                    .peers
                    .iter()
                    .map(|p| (p.store_id, cluster.region_data(p.store_id, region), last_applied(cluster, p.store_id, region.id)))
                    .collect(),
            })
            .collect();
        let difference = convergence::check(&regions)?;
        if Instant::now() >= deadline {
            return Some(Failure { checker: "convergence".into(), explanation: format!("the cluster did not converge after healing: {difference}") });
        }
        sleep(Duration::from_millis(500)).await;
    }
}

/// The last index a store reported applying for a region.
fn last_applied(cluster: &Cluster, store: StoreId, region: u64) -> Option<u64> {
    cluster.events().iter().rev().find_map(|e| match e.event {
        simkv::raftstore::StoreEvent::Applied { store_id, region_id, index, .. } if store_id == store && region_id == region => Some(index),
        _ => None,
    })
}

/// Runs the plan's faults at their times, each healed when its duration ends.
async fn run_nemesis(shared: &Arc<Shared>, plan: &Plan) {
    for (index, event) in plan.faults.iter().enumerate() {
        let at = shared.start + Duration::from_secs(3) + Duration::from_millis(event.at_ms);
        madsim::time::sleep_until(at).await;
        let what = shared.nemesis.start(index, &event.fault);
        shared.log(format!("fault #{index} starts: {what}"));
        let shared = shared.clone();
        let (fault, duration) = (event.fault.clone(), Duration::from_millis(event.duration_ms));
        madsim::task::spawn(async move {
            sleep(duration).await;
            if !shared.stop.load(Ordering::SeqCst) && shared.nemesis.heal(index, &fault) {
                shared.log(format!("fault #{index} healed"));
            }
        });
    }
}
