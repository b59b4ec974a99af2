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

use crate::checker::{convergence, durability, linearizability, raft as raft_checker, regions, sequential, tso};
use crate::cluster::{Cluster, ClusterSpec, TimedEvent};
use crate::history::{Call, Clock, History, Initial, Outcome};
use crate::nemesis::{Nemesis, Plan};
use crate::panics;
use crate::scenario::{Scenario, WorkloadKind};
use crate::workload::{self, Recorded, Shared, FINAL_PROCESS};
use madsim::task::NodeId;
use madsim::time::{sleep, Duration, Instant};
use simkv::client::raw::Answered;
use simkv::client::ClientConfig;
use simkv::engine::IoProfile;
use simkv::meta::StoreId;
use simkv::raftstore::events::Fingerprint;
use simkv::raftstore::StoreEvent;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub use crate::checker::Failure;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    pub ops: usize,
    pub ok: usize,
    pub unknown: usize,
    pub faults: usize,
    pub events: usize,
    pub sim_millis: u64,
    /// Regions at the end of the run, as the stores reported them.
    pub regions: usize,
    /// Per store at the end: (store, regions it holds a replica of, regions it leads).
    pub placement: Vec<(StoreId, usize, usize)>,
    /// Replicas found damaged (checksum or read failures) and repaired.
    pub damaged: usize,
    pub repaired: usize,
    /// Times a peer hibernated, and woke, over the run.
    pub hibernated: usize,
    pub woke: usize,
}

impl RunStats {
    fn of(
        history: &History,
        txns: (&[crate::history::bank::BankOp], &[workload::table::TableOp], &[workload::list_append::ListAppendOp]),
        plan: &Plan,
        events: &[TimedEvent],
        simulated: Duration,
    ) -> RunStats {
        use crate::history::bank::BankOutcome;
        use crate::history::txn::TxnOutcome;
        use workload::table::TableOutcome;
        let (bank, table, list_append) = txns;
        let topology = crate::topology::Topology::from_events(events.iter().map(|e| &e.event));
        let placement = (1..=plan.swarm.stores)
            .map(|s| {
                let held = topology.regions.values().filter(|r| r.peer_on_store(s).is_some()).count();
                let led = topology.regions.keys().filter(|id| topology.leader_of(**id) == Some(s)).count();
                (s, held, led)
            })
            .collect();
        RunStats {
            regions: topology.regions.len(),
            placement,
            ops: history.ops.len() + bank.len() + table.len() + list_append.len(),
            ok: history.ops.iter().filter(|o| !matches!(o.outcome, Outcome::Unknown | Outcome::Failed)).count()
                + bank.iter().filter(|o| matches!(o.outcome, BankOutcome::Ok | BankOutcome::Read(_))).count()
                + table.iter().filter(|o| matches!(o.outcome, TableOutcome::Ok | TableOutcome::Checked { .. })).count()
                + list_append.iter().filter(|o| o.outcome == TxnOutcome::Ok).count(),
            unknown: history.unknown_count()
                + bank.iter().filter(|o| matches!(o.outcome, BankOutcome::Info(_))).count()
                + table.iter().filter(|o| matches!(o.outcome, TableOutcome::Info(_))).count()
                + list_append.iter().filter(|o| o.outcome == TxnOutcome::Info).count(),
            faults: plan.faults.len(),
            damaged: events.iter().filter(|e| matches!(e.event, simkv::raftstore::StoreEvent::DataCorrupted { .. })).count(),
            repaired: events.iter().filter(|e| matches!(e.event, simkv::raftstore::StoreEvent::DataRepaired { .. })).count(),
            hibernated: events.iter().filter(|e| matches!(e.event, simkv::raftstore::StoreEvent::Hibernated { .. })).count(),
            woke: events.iter().filter(|e| matches!(e.event, simkv::raftstore::StoreEvent::Woke { .. })).count(),
            events: events.len(),
            sim_millis: simulated.as_millis() as u64,
        }
    }
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
    /// Leader changes the stores reported: (simulated ms, store, region, term).
    pub leader_changes: Vec<(u64, u64, u64, u64)>,
    /// The bank workload's transfers and reads (empty for other workloads).
    pub bank: Vec<crate::history::bank::BankOp>,
    /// The table workload's changes and checks (empty for other workloads).
    pub table: Vec<workload::table::TableOp>,
    /// The list-append workload's transactions (empty for other workloads).
    pub list_append: Vec<workload::list_append::ListAppendOp>,
    /// The store events a raft or membership failure names, for the timeline.
    pub marks: Vec<Mark>,
    /// How often each enabled buggify site fired.
    pub buggify: BTreeMap<String, u64>,
    /// The operations a failure's explanation names (the operation that
    /// cannot be placed, and the others of its window), for the timeline.
    pub named: Vec<NamedOp>,
    /// Which store answered each register operation that got an answer, by
    /// (process, invoke time).
    pub served: BTreeMap<(u64, u64), Answered>,
    /// When the client gave up waiting for each register operation whose
    /// outcome is unknown, by (process, invoke time).
    pub gave_up: BTreeMap<(u64, u64), u64>,
    /// The timestamp workload's requests (the TSO checker also takes the
    /// transactions' timestamps, from `bank`).
    pub ts_calls: Vec<tso::TsCall>,
}

/// One history operation a failed check names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedOp {
    pub process: u64,
    pub invoke: u64,
    /// The operation the failure is about (else one of its window).
    pub culprit: bool,
}

/// What the checks found to point at, besides their explanations: the
/// positions of offending store events, and the operations they name.
#[derive(Default)]
struct Pointers {
    marks: Vec<usize>,
    named: Vec<NamedOp>,
}

/// One store event a failed check names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub at_ms: u64,
    pub store: u64,
    /// The event as the store reported it.
    pub what: String,
}

impl Mark {
    /// The marks for the events at `positions` of `events`.
    fn of(events: &[TimedEvent], positions: &[usize]) -> Vec<Mark> {
        positions
            .iter()
            .filter_map(|&i| events.get(i))
            .map(|e| {
                let what: String = format!("{:?}", e.event).chars().take(300).collect();
                Mark { at_ms: e.at.as_millis() as u64, store: e.event.store_id(), what }
            })
            .collect()
    }
}

fn leader_changes(events: &[TimedEvent]) -> Vec<(u64, u64, u64, u64)> {
    events
        .iter()
        .filter_map(|e| match e.event {
            StoreEvent::BecameLeader { store_id, region_id, term, .. } => Some((e.at.as_millis() as u64, store_id, region_id, term)),
            _ => None,
        })
        .collect()
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

/// How a run stopped for an event storm starts its message.
const EVENT_STORM: &str = "event storm";

/// Why a run was given up: its simulated time stopped advancing (a task spinning
/// without awaiting holds the simulation's only thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    /// The last simulated time seen, in ms.
    pub sim_ms: u64,
    pub wall_secs: u64,
    /// The (store, region) the store last started working on, if any.
    pub working_on: Option<(u64, u64)>,
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stalled at simulated time {:.3}s: no simulated time passed for {} s of wall time", self.sim_ms as f64 / 1000.0, self.wall_secs)?;
        if let Some((store, region)) = self.working_on {
            write!(f, " (store {store} was last working on region {region})")?;
        }
        Ok(())
    }
}

/// [`run`], watched: if the run's simulated time stops advancing for `stall`
/// of wall time, `on_stall` is called from the watchdog's thread (the run's own
/// thread is stuck and cannot be stopped: the caller decides what to do, e.g.
/// exit the process, or record the failure and go on with another thread).
pub fn run_watched(scenario: &Scenario, plan: &Plan, stall: std::time::Duration, on_stall: impl FnOnce(Stall) + Send + 'static) -> RunReport {
    use std::sync::atomic::{AtomicBool, AtomicU64};
    let progress = Arc::new(AtomicU64::new(u64::MAX));
    let done = Arc::new(AtomicBool::new(false));
    let slot: simkv::trace::WorkingOnSlot = Arc::default();
    simkv::trace::watch_working_on(Some(slot.clone()));
    let watchdog = {
        let (progress, done, slot) = (progress.clone(), done.clone(), slot.clone());
        std::thread::spawn(move || {
            let (mut last, mut since) = (u64::MAX, std::time::Instant::now());
            while !done.load(Ordering::SeqCst) {
                // Woken early when the run ends, so a finished run never waits.
                std::thread::park_timeout(std::time::Duration::from_millis(100));
                let now = progress.load(Ordering::SeqCst);
                if now != last {
                    (last, since) = (now, std::time::Instant::now());
                } else if since.elapsed() >= stall {
                    let store = slot.0.load(Ordering::Relaxed);
                    let working_on = (store != 0).then(|| (store, slot.1.load(Ordering::Relaxed)));
                    on_stall(Stall { sim_ms: if last == u64::MAX { 0 } else { last }, wall_secs: stall.as_secs(), working_on });
                    return;
                }
            }
        })
    };
    let report = run_with_progress(scenario, plan, progress);
    done.store(true, Ordering::SeqCst);
    simkv::trace::watch_working_on(None);
    watchdog.thread().unpark();
    let _ = watchdog.join();
    report
}

/// Runs `scenario` with `plan` in a fresh simulation seeded with `plan.seed`.
///
/// A panic anywhere in the simulated cluster (ours or a dependency's) is a
/// failure of its own that names the node, the store and region it was working
/// on, the simulated time and the message; what was recorded up to the panic
/// (history, store events, timeline) is kept, and the other checkers still run
/// on it, with operations in flight at the panic counted as unknown.
pub fn run(scenario: &Scenario, plan: &Plan) -> RunReport {
    run_with_progress(scenario, plan, Arc::default())
}

/// [`run`], with the simulated time (ms) written to `progress` as it passes.
/// Watched or not, a run has the same tasks, so it is the same run.
fn run_with_progress(scenario: &Scenario, plan: &Plan, progress: Arc<std::sync::atomic::AtomicU64>) -> RunReport {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(plan.seed, madsim::Config::default());
    let recorded = Arc::new(Recorded::default());
    let events: Arc<Mutex<Vec<TimedEvent>>> = Arc::default();
    let nodes: Arc<Mutex<BTreeMap<NodeId, String>>> = Arc::default();
    let (scenario2, plan2, recorded2, events2, nodes2) = (scenario.clone(), plan.clone(), recorded.clone(), events.clone(), nodes.clone());
    let (events3, max_events, nodes3) = (events.clone(), scenario.checkers.max_store_events, nodes.clone());
    let result = panics::catching(|| {
        runtime.block_on(async move {
            // A heartbeat of simulated time: it stops when a task stops awaiting.
            // It also stops a run that explodes (its stores report events
            // without bound) while it can still be reported, not when memory
            // runs out.
            let (events, limit) = (events3, max_events);
            let _heartbeat = AbortOnDrop(madsim::task::spawn(async move {
                loop {
                    let now = madsim::time::TimeHandle::current().elapsed();
                    progress.store(now.as_millis() as u64, Ordering::SeqCst);
                    let count = events.lock().unwrap().len() as u64;
                    if count > limit {
                        panic!(
                            "{EVENT_STORM}: {count} store events by simulated time {:.1}s, over the limit of {limit} ([checkers] max_store_events)",
                            now.as_secs_f64()
                        );
                    }
                    sleep(Duration::from_millis(100)).await;
                }
            }));
            let report = run_inner(scenario2, plan2, recorded2, events2, nodes2).await;
            teardown(&nodes3);
            report
        })
    });
    let panic = match result {
        Ok(report) => return report,
        Err(panic) => panic,
    };
    // The panic left every node's tasks in place: stop them in the runtime
    // (a second, instant block_on drops them) before it goes.
    let _ = panics::catching(|| runtime.block_on(async { teardown(&nodes) }));
    let node = panic.node.and_then(|id| nodes.lock().unwrap().get(&id).cloned()).unwrap_or_else(|| "the simulation's main task".into());
    let mut explanation =
        format!("{node} panicked at {}: {}", panic.at.map_or("an unknown time".into(), |t| format!("{:.6}s", t.as_secs_f64())), panic.message);
    if let Some((store, region)) = panic.working_on {
        if node == format!("store-{store}") {
            let _ = write!(explanation, " (while working on region {region})");
        }
    }
    if let Some(location) = &panic.location {
        let _ = write!(explanation, " at {location}");
    }
    let mut history = History::new(Initial::Absent, Clock::Nanos);
    history.ops = std::mem::take(&mut *recorded.ops.lock().unwrap());
    history.ops.extend(std::mem::take(&mut *recorded.in_flight.lock().unwrap()).into_values().filter(|op| op.call != Call::Read));
    history.ops.sort_by_key(|o| (o.invoke, o.process));
    let events: Vec<TimedEvent> = events.lock().unwrap().clone();
    let mut timeline = recorded.timeline.lock().unwrap().clone();
    timeline.push(format!("panic: {explanation}"));
    // An event storm is stopped by a panic of the testbed's own (see run_inner).
    // A broken fault model is the testbed's failure, never the store's.
    let checker = if panic.message.starts_with(EVENT_STORM) {
        "event-storm"
    } else if panic.message.starts_with(simkv::engine::sim::FAULT_MODEL_BROKEN) {
        "testbed-fault-model"
    } else {
        "panic"
    };
    let mut failures = vec![Failure { checker: checker.into(), explanation }];
    let store_events: Vec<StoreEvent> = events.iter().map(|e| e.event.clone()).collect();
    let ts_calls = recorded.ts_calls.lock().unwrap().clone();
    let bank = std::mem::take(&mut *recorded.bank.lock().unwrap());
    let table = std::mem::take(&mut *recorded.table.lock().unwrap());
    let list_append = std::mem::take(&mut *recorded.list_append.lock().unwrap());
    let mut pointers = Pointers::default();
    let served = std::mem::take(&mut *recorded.served.lock().unwrap());
    let pd_events = std::mem::take(&mut *recorded.pd_events.lock().unwrap());
    let routing = std::mem::take(&mut *recorded.routing.lock().unwrap());
    let txns = Txns { bank, accounts: plan.swarm.keys.max(2), table, list_append, served, pd_events, routing };
    let (more, inconclusive) = check_recorded(scenario, &history, &store_events, &ts_calls, None, &txns, &mut pointers);
    let marks = Mark::of(&events, &pointers.marks);
    failures.extend(more);
    let stats = RunStats::of(&history, (&txns.bank, &txns.table, &txns.list_append), plan, &events, panic.at.unwrap_or_default());
    let digest = digest(&events, &timeline, &history, &txns);
    let Txns { bank, table, list_append, served, .. } = txns;
    let leader_changes = leader_changes(&events);
    simkv::supervisor::uninstall();
    let buggify = simkv::buggify::uninstall().into_iter().map(|(site, n)| (site.name().to_string(), n)).collect();
    let (named, gave_up) = (pointers.named, std::mem::take(&mut *recorded.gave_up.lock().unwrap()));
    RunReport {
        plan: plan.clone(),
        history,
        timeline,
        failures,
        inconclusive,
        stats,
        digest,
        leader_changes,
        bank,
        table,
        list_append,
        marks,
        buggify,
        named,
        served,
        gave_up,
        ts_calls,
    }
}

/// A task of the main node that stops when its handle goes, however the
/// run ends (a panic unwinds through the main task and drops it).
struct AbortOnDrop(madsim::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Ends a run's simulation: kills every node the testbed created (stores,
/// PD, clients, the nemesis's, the supervisors'), so their tasks are dropped
/// before the main task returns. Without it, tasks still waiting on the
/// simulated network or timers keep each other and the runtime alive after
/// it is gone, with every disk, event log and history of the run: a long
/// campaign's memory grew by about 2 MB a run. Nothing of the run is
/// observed after this point (its report is already made), so the digest
/// does not change.
fn teardown(nodes: &Mutex<BTreeMap<NodeId, String>>) {
    let handle = madsim::runtime::Handle::current();
    for id in nodes.lock().unwrap().keys() {
        handle.kill(*id);
    }
}

/// The checks over what a run recorded: linearizability, durability (only when
/// the run reached its final reads), the sequential check, and raft safety.
fn check_recorded(
    scenario: &Scenario,
    history: &History,
    events: &[StoreEvent],
    ts_calls: &[tso::TsCall],
    logs: Option<&BTreeMap<u64, sequential::ClientLog>>,
    txns: &Txns,
    pointers: &mut Pointers,
) -> (Vec<Failure>, Vec<Failure>) {
    let (mut failures, mut inconclusive) = (Vec::new(), Vec::new());
    let (list_append, table) = (&txns.list_append, &txns.table);
    let bank = (&txns.bank[..], txns.accounts);
    if scenario.checkers.list_append && scenario.workload.kind == WorkloadKind::ListAppend {
        let model = crate::checker::list_append::Model::parse(&scenario.checkers.list_append_model).expect("validated");
        let report = crate::checker::list_append::check(&workload::list_append::history(list_append), model);
        if !report.valid() {
            let shown: Vec<String> = report.anomalies.iter().take(3).map(|a| format!("{}: {}", a.kind, a.explanation)).collect();
            failures
                .push(Failure { checker: "list-append".into(), explanation: format!("{} transactions are not {model}: {}", report.txns, shown.join("\n")) });
        }
    }
    if scenario.checkers.table && scenario.workload.kind == WorkloadKind::Table {
        if let Some(e) = crate::checker::table::check(table) {
            failures.push(Failure { checker: "table".into(), explanation: e });
        }
    }
    if scenario.checkers.bank && scenario.workload.kind == WorkloadKind::Bank {
        let (ops, accounts) = bank;
        let total = workload::bank::INITIAL_BALANCE * accounts as i64;
        if let Some(e) = crate::checker::bank::check(ops, accounts, total) {
            failures.push(Failure { checker: "bank".into(), explanation: e });
        }
    }
    if scenario.checkers.tso {
        // Every consumer's timestamps: the timestamp workload's requests and
        // the transactions' start and commit timestamps.
        let mut all = ts_calls.to_vec();
        all.extend(tso::of_bank(&txns.bank));
        all.extend(tso::of_list_append(&txns.list_append));
        if let Some(e) = tso::check(&all) {
            failures.push(Failure { checker: "tso".into(), explanation: e });
        }
    }
    if scenario.checkers.routing {
        if let Some(e) = crate::checker::routing::check(&txns.routing) {
            failures.push(Failure { checker: "routing".into(), explanation: e });
        }
    }
    if scenario.checkers.pd {
        if let Some(e) = crate::checker::pd::check(&txns.pd_events) {
            failures.push(Failure { checker: "pd".into(), explanation: e });
        }
    }
    if scenario.checkers.linearizability {
        match linearizability::check_with_limit(history, scenario.checkers.linearizability_steps) {
            linearizability::Verdict::Linearizable => {}
            linearizability::Verdict::NotLinearizable(v) => {
                let mut explanation = linearizability::explain(history, &v);
                if let Some(a) = txns.served.get(&(v.blocked.process, v.blocked.invoke)) {
                    let peer = a.peer.map_or_else(|| "no peer of it".to_string(), |p| format!("peer {p}"));
                    let _ = write!(explanation, "\nThe operation that cannot be placed was answered by store {} ({peer} of region {}).", a.store, a.region);
                }
                pointers.named.extend(v.window.iter().map(|o| NamedOp { process: o.process, invoke: o.invoke, culprit: *o == v.blocked }));
                failures.push(Failure { checker: "linearizability".into(), explanation })
            }
            linearizability::Verdict::Inconclusive { keys, steps } => inconclusive.push(Failure {
                checker: "linearizability".into(),
                explanation: format!(
                    "the search ran out of its budget of {steps} steps for keys {keys:?} without a verdict: this run was neither shown linearizable nor shown not to be (replay it and run `simkv-sim check --max-steps N` on its history.edn)"
                ),
            }),
        }
    }
    if scenario.checkers.durability && history.ops.iter().any(|o| o.process == FINAL_PROCESS) {
        if let Some(e) = durability::check(history, FINAL_PROCESS) {
            failures.push(Failure { checker: "durability".into(), explanation: e });
        }
    }
    if let Some(logs) = logs {
        if scenario.checkers.sequential && scenario.workload.kind == WorkloadKind::Sequential {
            if let Some(e) = sequential::check(logs) {
                failures.push(Failure { checker: "sequential".into(), explanation: e });
            }
        }
    }
    if scenario.checkers.lease_path && scenario.cluster.lease_reads {
        if let Some(e) = crate::checker::lease_path::check(history, events) {
            failures.push(Failure { checker: "lease-path".into(), explanation: e });
        }
    }
    if scenario.checkers.raft {
        if let Some((e, at)) = raft_checker::check_marked(events) {
            failures.push(Failure { checker: "raft".into(), explanation: e });
            pointers.marks.extend(at);
        }
    }
    if scenario.checkers.membership {
        if let Some((e, at)) = crate::checker::membership::check_marked(events) {
            failures.push(Failure { checker: "membership".into(), explanation: e });
            pointers.marks.extend(at);
        }
    }
    (failures, inconclusive)
}

/// The transactional workloads' records.
struct Txns {
    bank: Vec<crate::history::bank::BankOp>,
    /// How many accounts the bank has.
    accounts: u64,
    table: Vec<workload::table::TableOp>,
    list_append: Vec<workload::list_append::ListAppendOp>,
    /// Not a transactional record: who answered each register operation,
    /// which the linearizability explanation names.
    served: BTreeMap<(u64, u64), Answered>,
    /// Nor this: what PD handed out and accepted.
    pd_events: Vec<crate::checker::pd::TimedPdEvent>,
    /// Nor this: each client's routing, as watched.
    routing: BTreeMap<u64, crate::checker::routing::Watch>,
}

/// Fingerprint of the store events, the timeline and the history.
fn digest(events: &[TimedEvent], timeline: &[String], history: &History, txns: &Txns) -> u64 {
    let Txns { bank, table, list_append, pd_events, .. } = txns;
    // Written straight into the hash: the same bytes as formatting the text
    // first, without building it.
    let mut text = Fingerprint::default();
    let _ = writeln!(text, "{:016x}", crate::cluster::events_fingerprint(events));
    bank.iter().for_each(|o| {
        let _ = writeln!(text, "{o:?}");
    });
    table.iter().for_each(|o| {
        let _ = writeln!(text, "{o:?}");
    });
    list_append.iter().for_each(|o| {
        let _ = writeln!(text, "{o:?}");
    });
    pd_events.iter().for_each(|o| {
        let _ = writeln!(text, "{o:?}");
    });
    timeline.iter().for_each(|l| text.update(l.as_bytes()));
    history.ops.iter().for_each(|o| {
        let _ = writeln!(text, "{o:?}");
    });
    text.0
}

async fn run_inner(
    scenario: Scenario,
    plan: Plan,
    recorded: Arc<Recorded>,
    events: Arc<Mutex<Vec<TimedEvent>>>,
    nodes: Arc<Mutex<BTreeMap<NodeId, String>>>,
) -> RunReport {
    let swarm = plan.swarm.clone();
    let mut spec = ClusterSpec::new(swarm.stores as usize, swarm.regions as usize);
    let txn = simkv::client::TxnConfig { lock_ttl_ms: scenario.workload.lock_ttl_ms, ..Default::default() };
    spec.events = events;
    spec.pd_events = recorded.pd_events.clone();
    spec.routing = recorded.routing.clone();
    spec.node_names = nodes;
    spec.replicas = scenario.cluster.replicas as usize;
    spec.raftstore.region_split_keys = scenario.cluster.split_region_keys;
    spec.raftstore.lease_reads = scenario.cluster.lease_reads;
    spec.raftstore.raft_log_gc_count_limit = swarm.raft_log_gc_count_limit;
    spec.raftstore.raft_log_gc_ticks = 3;
    spec.raftstore.scrub_ticks = 30;
    spec.raftstore.snapshot_chunk_bytes = scenario.cluster.snapshot_chunk_bytes as usize;
    spec.clock_rates = swarm.clock_rates.clone();
    spec.bugs = plan.bugs.iter().copied().collect();
    if scenario.workload.kind.is_transactional() {
        // The workload's keys are transactional: pre-split that key space.
        spec.split_keys = spec.split_keys.iter().map(|k| simkv::codec::keys::txn_key(simkv::codec::keys::decode_raw_key(k).expect("raw split key"))).collect();
    }
    spec.io = IoProfile { slowdown: swarm.disk_slowdown.max(1), ..IoProfile::ssd() };
    let baseline_io = spec.io.clone();
    let cluster = Arc::new(Cluster::start(spec));
    let shared = Arc::new(Shared {
        cluster: cluster.clone(),
        recorded,
        recent: Mutex::new(BTreeMap::new()),
        logs: Mutex::new(BTreeMap::new()),
        stop: AtomicBool::new(false),
        start: Instant::now(),
        nemesis: Nemesis::new(cluster.clone(), baseline_io),
        swarm: swarm.clone(),
        delete_percent: scenario.workload.delete_percent,
        scan_percent: scenario.workload.scan_percent,
        scan_problems: Mutex::new(Vec::new()),
        txn,
    });
    shared.log(plan.swarm_line());
    install_buggify(&shared, &plan);
    install_supervisor(&shared);
    let mut failures = Vec::new();
    // Let the regions elect leaders before load and faults begin.
    sleep(Duration::from_secs(3)).await;

    // Safety phase.
    let safety = Duration::from_secs(plan.safety_secs.unwrap_or(scenario.phases.safety_secs));
    shared.log("safety phase begins".into());
    let transport = crate::nemesis::network::start(&cluster, &swarm);
    if swarm.raft_loss > 0.0 || swarm.raft_duplicate > 0.0 || swarm.raft_delay_ms > 0 || swarm.client_loss > 0.0 || swarm.client_delay_ms > 0 {
        shared.log(transport);
    }
    if scenario.workload.kind.is_transactional() {
        if let Some(f) = set_up_workload(&shared, scenario.workload.kind).await {
            failures.push(f);
        }
    }
    let mut clients = Vec::new();
    for c in 0..swarm.clients {
        let (node, local) = cluster.client_node();
        shared.nemesis.add_client(node.id());
        let shared = shared.clone();
        let kind = scenario.workload.kind;
        clients.push(node.spawn(async move {
            let cfg = ClientConfig { rpc_timeout: Duration::from_secs(1), max_attempts: 8, ..ClientConfig::default() };
            if kind.is_transactional() {
                let client = shared.cluster.txn_client(local, cfg, shared.txn.clone()).await;
                match kind {
                    WorkloadKind::Bank => workload::bank::bank_client(&shared, &client, c).await,
                    WorkloadKind::Table => workload::table::table_client(&shared, &client, c).await,
                    WorkloadKind::ListAppend => workload::list_append::list_append_client(&shared, &client, c).await,
                    WorkloadKind::Register | WorkloadKind::Sequential => unreachable!("not transactional"),
                }
                return;
            }
            let client = shared.cluster.raw_client(local, cfg).await;
            match kind {
                WorkloadKind::Register => workload::register::register_client(&shared, &client, c).await,
                WorkloadKind::Sequential => workload::sequential::sequential_client(&shared, &client, c).await,
                WorkloadKind::Bank | WorkloadKind::Table | WorkloadKind::ListAppend => unreachable!("transactional"),
            }
        }));
    }
    let tso_client = if scenario.checkers.tso {
        let (node, local) = cluster.client_node();
        shared.nemesis.add_client(node.id());
        let shared = shared.clone();
        Some(node.spawn(async move {
            let pd = shared.cluster.pd_client(local.ip()).await;
            workload::tso::tso_client(&shared, &pd, 0).await
        }))
    } else {
        None
    };
    let nemesis = {
        let (s, plan) = (shared.clone(), plan.clone());
        shared.nemesis.spawn(async move { run_nemesis(&s, &plan).await })
    };
    sleep(safety).await;
    shared.stop.store(true, Ordering::SeqCst);
    nemesis.abort();

    // Liveness phase: heal everything; the cluster must converge in time.
    simkv::buggify::quiesce();
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
    failures.extend(workload::final_reads(&shared, &scenario, deadline).await);
    if scenario.workload.kind.is_transactional() {
        failures.extend(settle_transactions(&shared, &scenario, deadline).await);
    }
    if let Some(task) = tso_client {
        let left = deadline.saturating_duration_since(Instant::now());
        if madsim::time::timeout(left, task).await.is_err() {
            failures.push(Failure {
                checker: "liveness".into(),
                explanation: "the timestamp client was still waiting for PD when the liveness phase ended".into(),
            });
        }
    }
    if scenario.checkers.convergence {
        if let Some(f) = converge(&cluster, deadline).await {
            failures.push(f);
        }
    }
    if scenario.checkers.regions {
        if let Some(f) = settle_regions(&cluster, deadline, scenario.cluster.replicas as usize, scenario.checkers.spread).await {
            failures.push(f);
        }
    }
    shared.log("liveness phase ends".into());

    // Checks.
    let mut history = History::new(Initial::Absent, Clock::Nanos);
    history.ops = std::mem::take(&mut *shared.recorded.ops.lock().unwrap());
    history.ops.sort_by_key(|o| (o.invoke, o.process));
    let scan_problems = std::mem::take(&mut *shared.scan_problems.lock().unwrap());
    if !scan_problems.is_empty() {
        let mut text = scan_problems.iter().take(3).cloned().collect::<Vec<_>>().join("\n");
        if scan_problems.len() > 3 {
            let _ = write!(text, "\n... and {} more", scan_problems.len() - 3);
        }
        failures.push(Failure { checker: "scan".into(), explanation: text });
    }
    let timed = cluster.events();
    let events: Vec<StoreEvent> = timed.iter().map(|e| e.event.clone()).collect();
    let ts_calls = shared.recorded.ts_calls.lock().unwrap().clone();
    let bank = std::mem::take(&mut *shared.recorded.bank.lock().unwrap());
    let table = std::mem::take(&mut *shared.recorded.table.lock().unwrap());
    let list_append = std::mem::take(&mut *shared.recorded.list_append.lock().unwrap());
    let mut pointers = Pointers::default();
    let logs = shared.logs.lock().unwrap().clone();
    let served = std::mem::take(&mut *shared.recorded.served.lock().unwrap());
    let pd_events = std::mem::take(&mut *shared.recorded.pd_events.lock().unwrap());
    let routing = std::mem::take(&mut *shared.recorded.routing.lock().unwrap());
    let txns = Txns { bank, accounts: swarm.keys.max(2), table, list_append, served, pd_events, routing };
    let (more, inconclusive) = check_recorded(&scenario, &history, &events, &ts_calls, Some(&logs), &txns, &mut pointers);
    let marks = Mark::of(&timed, &pointers.marks);
    failures.extend(more);

    let timeline = shared.recorded.timeline.lock().unwrap().clone();
    let stats = RunStats::of(&history, (&txns.bank, &txns.table, &txns.list_append), &plan, &timed, shared.start.elapsed());
    let digest = digest(&timed, &timeline, &history, &txns);
    let Txns { bank, table, list_append, served, .. } = txns;
    let gave_up = std::mem::take(&mut *shared.recorded.gave_up.lock().unwrap());
    simkv::supervisor::uninstall();
    let buggify = simkv::buggify::uninstall().into_iter().map(|(site, n)| (site.name().to_string(), n)).collect();
    RunReport {
        plan,
        history,
        timeline,
        failures,
        inconclusive,
        stats,
        digest,
        leader_changes: leader_changes(&timed),
        bank,
        table,
        list_append,
        marks,
        buggify,
        named: pointers.named,
        served,
        gave_up,
        ts_calls,
    }
}

/// Enables the plan's buggify sites for this run, with the crash hook: a
/// crash point kills its store (disks crashed: unsynced writes may be lost)
/// and restarts it 1–3 s later, at most three times a run and only while
/// the safety phase lasts.
fn install_buggify(shared: &Arc<Shared>, plan: &Plan) {
    if plan.buggify.is_empty() {
        return;
    }
    let supervisor = madsim::runtime::Handle::current().create_node().name("buggify").build();
    shared.cluster.spec.node_names.lock().unwrap().insert(supervisor.id(), "buggify".into());
    let crashes = std::cell::Cell::new(0u32);
    let s = shared.clone();
    let hook: simkv::buggify::CrashHook = Box::new(move |store, site| {
        if s.stop.load(Ordering::SeqCst) || crashes.get() >= 3 {
            return false;
        }
        let killed = if store == simkv::buggify::PD {
            kill_and_restart_pd(&s, &supervisor, format!("buggify: crash point {site} kills pd"))
        } else {
            kill_and_restart(&s, &supervisor, store, format!("buggify: crash point {site} kills store {store}"), "buggify")
        };
        crashes.set(crashes.get() + killed as u32);
        killed
    });
    simkv::buggify::install(&plan.buggify, Some(hook));
}

/// The supervisor a store calls when a disk write failed: the store's node
/// is killed (its disks keep what was durable) and restarted 1–3 s later,
/// as systemd would restart the process.
fn install_supervisor(shared: &Arc<Shared>) {
    let supervisor = madsim::runtime::Handle::current().create_node().name("supervisor").build();
    shared.cluster.spec.node_names.lock().unwrap().insert(supervisor.id(), "supervisor".into());
    let s = shared.clone();
    simkv::supervisor::install(Box::new(move |store, reason| {
        kill_and_restart(&s, &supervisor, store, format!("supervisor: store {store} stopped ({reason})"), "supervisor")
    }));
}

/// Takes `store` down as a crash does (unless it is down already), logs
/// `why`, and restarts it 1–3 s later from `node`; says whether it did.
fn kill_and_restart(s: &Arc<Shared>, node: &madsim::runtime::NodeHandle, store: u64, why: String, who: &'static str) -> bool {
    if !s.nemesis.crash_point(store) {
        return false;
    }
    s.log(why);
    let s = s.clone();
    node.spawn(async move {
        use rand::Rng;
        let ms = madsim::rand::thread_rng().gen_range(1000..=3000);
        sleep(Duration::from_millis(ms)).await;
        if s.nemesis.restart_after_crash_point(store) {
            s.log(format!("{who}: store {store} restarts"));
        }
    });
    true
}

/// Takes PD down as a crash does (unless it is down already), logs `why`,
/// and restarts it 0.2–1 s later from `node` with its clock set back by up to
/// 2 s (as the fault `pd_crash_restart` may); says whether it did.
fn kill_and_restart_pd(s: &Arc<Shared>, node: &madsim::runtime::NodeHandle, why: String) -> bool {
    if !s.nemesis.crash_point_pd() {
        return false;
    }
    s.log(why);
    let s = s.clone();
    node.spawn(async move {
        use rand::Rng;
        let (ms, back) = {
            let mut rng = madsim::rand::thread_rng();
            (rng.gen_range(200..=1000), rng.gen_range(0..=2000))
        };
        sleep(Duration::from_millis(ms)).await;
        if s.nemesis.restart_pd_after_crash_point(back) {
            s.log(format!("buggify: pd restarts, its clock {back} ms behind"));
        }
    });
    true
}

/// Sets a transactional workload up before the clients start (and faults
/// begin): opens the bank's accounts, or creates the table.
async fn set_up_workload(shared: &Arc<Shared>, kind: WorkloadKind) -> Option<Failure> {
    let (node, local) = shared.cluster.client_node();
    let s = shared.clone();
    let task = node.spawn(async move {
        let client = s.cluster.txn_client(local, ClientConfig::default(), s.txn.clone()).await;
        match kind {
            WorkloadKind::Bank => workload::bank::open_accounts(&client, s.swarm.keys.max(2)).await.map_err(|e| e.to_string()),
            WorkloadKind::Table => workload::table::create(&client).await.map_err(|e| e.to_string()),
            WorkloadKind::Register | WorkloadKind::Sequential | WorkloadKind::ListAppend => Ok(()),
        }
    });
    match task.await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(Failure { checker: "workload".into(), explanation: format!("the {kind:?} workload could not be set up: {e}") }),
        Err(e) => Some(Failure { checker: "workload".into(), explanation: format!("setting the {kind:?} workload up stopped: {e}") }),
    }
}

/// After healing, for transactional workloads: the final snapshot read of
/// the bank (recorded, so the bank checker sees it), a sweep that resolves
/// the locks the clients left, then the lock check: no replica holds a lock.
async fn settle_transactions(shared: &Arc<Shared>, scenario: &Scenario, deadline: Instant) -> Vec<Failure> {
    let (node, local) = shared.cluster.client_node();
    let (s, kind, check_locks) = (shared.clone(), scenario.workload.kind, scenario.checkers.locks);
    let task = node.spawn(async move {
        let cfg = ClientConfig { rpc_timeout: Duration::from_secs(1), max_attempts: 4, ..ClientConfig::default() };
        let client = s.cluster.txn_client(local, cfg, s.txn.clone()).await;
        let mut failures = Vec::new();
        if kind == WorkloadKind::Bank {
            final_bank_read(&s, &client, deadline, &mut failures).await;
        }
        if kind == WorkloadKind::Table {
            let people = workload::table::schema();
            loop {
                let invoke = workload::now_ns();
                match workload::table::run_check(&client, &people).await {
                    (outcome @ workload::table::TableOutcome::Checked { .. }, start_ts) => {
                        let complete = Some(workload::now_ns());
                        let call = workload::table::TableCall::Check;
                        s.record_table(workload::table::TableOp { process: FINAL_PROCESS, call, outcome, invoke, complete, start_ts, commit_ts: None });
                        break;
                    }
                    _ if Instant::now() < deadline => sleep(Duration::from_millis(200)).await,
                    other => {
                        failures.push(Failure {
                            checker: "liveness".into(),
                            explanation: format!("the final check of the table did not complete within the liveness phase: {other:?}"),
                        });
                        break;
                    }
                }
            }
        }
        // Sweeps settle every transaction the clients left (a second sweep
        // catches a late prewrite that landed behind the first); then no
        // replica may hold a lock.
        loop {
            let swept = async {
                let now = client.timestamp().await?;
                client.resolve_locks_in(now).await
            };
            let swept = swept.await;
            let left = if check_locks { crate::checker::locks::held(&lock_cfs(&s.cluster)) } else { vec![] };
            if swept.is_ok() && left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                match swept {
                    Err(e) => failures
                        .push(Failure { checker: "liveness".into(), explanation: format!("the lock sweep did not complete within the liveness phase: {e}") }),
                    Ok(_) => failures.push(Failure { checker: "locks".into(), explanation: crate::checker::locks::explain(&left) }),
                }
                break;
            }
            sleep(Duration::from_millis(300)).await;
        }
        if kind == WorkloadKind::Bank && failures.is_empty() {
            // Garbage collection at the present keeps what a read now sees:
            // the bank is read again after it.
            // Retried until the liveness phase ends, as the sweeps are: a
            // region may be between leaders (a transfer the nemesis asked
            // for just before healing) for longer than one call's attempts.
            let collected = loop {
                let attempt = async {
                    let now = client.timestamp().await?;
                    client.gc(now).await
                };
                match attempt.await {
                    Err(_) if Instant::now() < deadline => sleep(Duration::from_millis(200)).await,
                    done => break done,
                }
            };
            match collected {
                Ok(_) => final_bank_read(&s, &client, deadline, &mut failures).await,
                Err(e) => failures
                    .push(Failure { checker: "liveness".into(), explanation: format!("garbage collection did not complete within the liveness phase: {e}") }),
            }
        }
        failures
    });
    task.await.unwrap_or_else(|e| vec![Failure { checker: "liveness".into(), explanation: format!("settling transactions stopped: {e}") }])
}

/// A snapshot read of the whole bank after healing, recorded (as the final
/// process) so the bank checker sees it.
async fn final_bank_read(s: &Shared, client: &simkv::client::TxnClient, deadline: Instant, failures: &mut Vec<Failure>) {
    let accounts = s.swarm.keys.max(2);
    loop {
        let invoke = workload::now_ns();
        match workload::bank::read_all(client, accounts).await {
            (start_ts, Ok(balances)) => {
                s.record_bank(crate::history::bank::BankOp {
                    process: FINAL_PROCESS,
                    call: crate::history::bank::BankCall::Read,
                    outcome: crate::history::bank::BankOutcome::Read(balances),
                    invoke,
                    complete: Some(workload::now_ns()),
                    start_ts,
                    commit_ts: None,
                });
                return;
            }
            (_, Err(_)) if Instant::now() < deadline => sleep(Duration::from_millis(200)).await,
            (_, Err(e)) => {
                failures.push(Failure {
                    checker: "liveness".into(),
                    explanation: format!("the final read of the bank did not complete within the liveness phase: {e}"),
                });
                return;
            }
        }
    }
}

/// Every replica's lock CF, for the lock checker.
fn lock_cfs(cluster: &Cluster) -> Vec<crate::checker::locks::Replica> {
    let mut out = Vec::new();
    for region in cluster.topology().regions_in_order() {
        for peer in &region.peers {
            let locks =
                cluster.region_data(peer.store_id, &region).into_iter().filter(|(cf, _)| *cf == simkv::engine::Cf::Lock).map(|(_, pair)| pair).collect();
            out.push(crate::checker::locks::Replica { store_id: peer.store_id, region_id: region.id, locks });
        }
    }
    out
}

/// Waits until the regions the stores applied tile the key space, each fully
/// replicated and none overlapping on a store, and PD's table agrees (it learns
/// from heartbeats, so it may lag), or the deadline.
/// With `spread`, also until every store holds (and, with enough regions,
/// leads) some region.
async fn settle_regions(cluster: &Arc<Cluster>, deadline: Instant, replicas: usize, spread: bool) -> Option<Failure> {
    let (node, local) = cluster.client_node();
    let c = cluster.clone();
    let task = node.spawn(async move {
        let pd = c.pd_client(local.ip()).await;
        loop {
            let topology = c.topology();
            let problem = match pd.scan_regions(&[], 100_000).await {
                Ok(table) => {
                    let pd_regions: Vec<_> = table.into_iter().map(|(r, _)| r).collect();
                    regions::check(&regions::RegionViews { stores: &topology.stores, newest: &topology.regions, pd: &pd_regions, replicas }).or_else(|| {
                        let leaders = topology.leaders.iter().map(|(&r, &(_, s))| (r, s)).collect();
                        let stores: Vec<u64> = c.stores.keys().copied().collect();
                        spread.then(|| regions::check_spread(&topology.regions, &leaders, &stores)).flatten()
                    })
                }
                Err(e) => Some(format!("PD could not be asked for its regions: {e}")),
            };
            let problem = problem?;
            if Instant::now() >= deadline {
                return Some(Failure { checker: "regions".into(), explanation: format!("after healing: {problem}") });
            }
            sleep(Duration::from_millis(500)).await;
        }
    });
    task.await.unwrap_or_else(|e| Some(Failure { checker: "regions".into(), explanation: format!("the region check stopped: {e}") }))
}

/// Waits until every region's replicas hold identical data, or the deadline.
async fn converge(cluster: &Cluster, deadline: Instant) -> Option<Failure> {
    loop {
        let applied = last_applied(cluster);
        let regions: Vec<convergence::RegionCopies> = cluster
            .topology()
            .regions_in_order()
            .iter()
            .map(|region| convergence::RegionCopies {
                region_id: region.id,
                copies: region
                    .peers
                    .iter()
                    .map(|p| (p.store_id, cluster.region_data(p.store_id, region), applied.get(&(p.store_id, region.id)).copied()))
                    .collect(),
            })
            .collect();
        let difference = convergence::check(&regions)?;
        if Instant::now() >= deadline {
            let mut explanation = format!("the cluster did not converge after healing: {difference}");
            for (store, slot) in &cluster.stores {
                for (cf, key, damage) in slot.kv_disk.damaged().into_iter().take(3) {
                    let _ = write!(
                        explanation,
                        "\nstore {store} still holds a damaged value ({damage:?}) in the {} CF at {key:?}: never found, or never repaired",
                        cf.name()
                    );
                }
            }
            return Some(Failure { checker: "convergence".into(), explanation });
        }
        sleep(Duration::from_millis(500)).await;
    }
}

/// The last index each store reported applying for each region.
fn last_applied(cluster: &Cluster) -> BTreeMap<(StoreId, u64), u64> {
    let mut applied = BTreeMap::new();
    for e in cluster.events().iter() {
        if let simkv::raftstore::StoreEvent::Applied { store_id, region_id, index, .. } = e.event {
            applied.insert((store_id, region_id), index);
        }
    }
    applied
}

/// Runs the plan's faults at their times, each healed when its duration ends.
async fn run_nemesis(shared: &Arc<Shared>, plan: &Plan) {
    for (index, event) in plan.faults.iter().enumerate() {
        let at = shared.start + Duration::from_secs(3) + Duration::from_millis(event.at_ms);
        madsim::time::sleep_until(at).await;
        let what = shared.nemesis.start(index, &event.fault);
        shared.log(format!("fault #{index} starts: {what}"));
        let s = shared.clone();
        let (fault, duration) = (event.fault.clone(), Duration::from_millis(event.duration_ms));
        shared.nemesis.spawn(async move {
            let shared = s;
            sleep(duration).await;
            if !shared.stop.load(Ordering::SeqCst) && shared.nemesis.heal(index, &fault) {
                shared.log(format!("fault #{index} healed"));
            }
        });
    }
}
