//! The two phases of a run: the safety phase (clients and faults), then the
//! liveness phase (every fault healed; everything must complete and converge).

use super::report::{self, Ending, RunReport};
use super::settle;
use crate::checker::{Checker, Failure};
use crate::cluster::TimedEvent;
use crate::history::{Clock, History, Initial};
use crate::nemesis::Plan;
use crate::scenario::{Scenario, WorkloadKind};
use crate::workload::{self, Recorded, Shared};
use madsim::task::JoinHandle;
use madsim::time::{sleep, Duration, Instant};
use simkv::client::ClientConfig;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// A run inside its simulation: the cluster, the two phases, the report.
#[cfg(madsim)]
pub(super) async fn run_inner(
    scenario: Scenario,
    plan: Plan,
    recorded: Arc<Recorded>,
    events: Arc<Mutex<Vec<TimedEvent>>>,
    nodes: Arc<Mutex<std::collections::BTreeMap<crate::cluster::NodeId, String>>>,
) -> RunReport {
    let spec = super::spec::cluster_spec(&scenario, &plan, &recorded, events.clone(), nodes);
    let baseline_io = spec.io.clone();
    let cluster = Arc::new(crate::cluster::Cluster::start(spec));
    let shared = Arc::new(super::spec::shared(&scenario, &plan, cluster, recorded.clone(), baseline_io));
    shared.log(plan.swarm_line());
    super::crashes::install_buggify(&shared, &plan);
    super::crashes::install_supervisor(&shared);
    both_phases(&shared, &scenario, &plan, &recorded, &events).await
}

/// The two phases on a started cluster, the cluster stopped, the report.
pub(super) async fn both_phases(shared: &Arc<Shared>, scenario: &Scenario, plan: &Plan, recorded: &Recorded, events: &Mutex<Vec<TimedEvent>>) -> RunReport {
    // Let the regions elect leaders before load and faults begin.
    sleep(Duration::from_secs(3)).await;
    let (mut failures, clients) = safety(shared, scenario, plan).await;
    failures.extend(liveness(shared, scenario, clients).await);
    failures.extend(scan_problems(shared));
    failures.extend(shared.cluster.finish());
    let mut history = History::new(Initial::Absent, Clock::Nanos);
    history.ops = std::mem::take(&mut *recorded.ops.lock().unwrap());
    history.ops.sort_by_key(|o| (o.invoke, o.process));
    let logs = Some(shared.logs.lock().unwrap().clone());
    let ending = Ending { history, failures, logs, simulated: shared.start.elapsed(), last_line: None };
    // The run is over: its events move into the report (no copy).
    let events = std::mem::take(&mut *events.lock().unwrap());
    report::assemble(scenario, plan, recorded, events, ending)
}

/// The clients of a run, and the timestamp client (when the TSO is checked).
struct Clients {
    workload: Vec<JoinHandle<()>>,
    tso: Option<JoinHandle<()>>,
}

/// The safety phase: the workload set up, its clients started, the plan's
/// faults injected until the phase ends.
async fn safety(shared: &Arc<Shared>, scenario: &Scenario, plan: &Plan) -> (Vec<Failure>, Clients) {
    let mut failures = Vec::new();
    let safety = Duration::from_secs(plan.safety_secs.unwrap_or(scenario.phases.safety_secs));
    shared.log("safety phase begins".into());
    let swarm = &plan.swarm;
    let transport = crate::nemesis::network::start(&shared.cluster, swarm);
    if swarm.raft_loss > 0.0 || swarm.raft_duplicate > 0.0 || swarm.raft_delay_ms > 0 || swarm.client_loss > 0.0 || swarm.client_delay_ms > 0 {
        shared.log(transport);
    }
    if scenario.workload.kind.is_transactional() {
        failures.extend(settle::set_up_workload(shared, scenario.workload.kind).await);
    }
    let workload = (0..swarm.clients).map(|c| start_client(shared, scenario.workload.kind, c)).collect();
    let tso = scenario.checkers.tso.then(|| start_tso_client(shared));
    let nemesis = {
        let (s, plan) = (shared.clone(), plan.clone());
        shared.nemesis.spawn(async move { run_nemesis(&s, &plan).await })
    };
    sleep(safety).await;
    shared.stop.store(true, Ordering::SeqCst);
    nemesis.abort();
    (failures, Clients { workload, tso })
}

/// Client `c` of the workload, on a node of its own.
fn start_client(shared: &Arc<Shared>, kind: WorkloadKind, c: u64) -> JoinHandle<()> {
    let (node, local) = shared.cluster.client_node();
    shared.nemesis.add_client(node.id());
    let shared = shared.clone();
    node.spawn(async move {
        let cfg = ClientConfig { rpc_timeout: shared.request_timeout, max_attempts: 8, ..ClientConfig::default() };
        if kind.is_transactional() {
            let client = shared.cluster.txn_client(local, cfg, shared.txn.clone()).await;
            match kind {
                WorkloadKind::Bank => workload::bank::client::bank_client(&shared, &client, c).await,
                WorkloadKind::Table => workload::table::client::table_client(&shared, &client, c).await,
                WorkloadKind::ListAppend => workload::list_append::client::list_append_client(&shared, &client, c).await,
                WorkloadKind::Register | WorkloadKind::Sequential => unreachable!("not transactional"),
            }
            return;
        }
        let client = shared.cluster.raw_client(local, cfg).await;
        match kind {
            WorkloadKind::Register => workload::register::register_client(&shared, &client, c).await,
            WorkloadKind::Sequential => workload::sequential::client::sequential_client(&shared, &client, c).await,
            WorkloadKind::Bank | WorkloadKind::Table | WorkloadKind::ListAppend => unreachable!("transactional"),
        }
    })
}

/// The timestamp workload's client, asking PD directly.
fn start_tso_client(shared: &Arc<Shared>) -> JoinHandle<()> {
    let (node, local) = shared.cluster.client_node();
    shared.nemesis.add_client(node.id());
    let shared = shared.clone();
    node.spawn(async move {
        let pd = shared.cluster.pd_client(local.ip()).await;
        workload::tso::tso_client(&shared, &pd, 0).await
    })
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

/// The liveness phase: every fault healed, then within the phase's bound the
/// clients finish, the final reads and settling complete, and the cluster
/// converges.
async fn liveness(shared: &Arc<Shared>, scenario: &Scenario, clients: Clients) -> Vec<Failure> {
    #[cfg(madsim)]
    simkv::buggify::quiesce();
    shared.nemesis.heal_all();
    shared.log("liveness phase begins: every fault healed".into());
    let deadline = Instant::now() + Duration::from_secs(scenario.phases.liveness_secs);
    let mut failures = Vec::new();
    for (i, task) in clients.workload.into_iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        match madsim::time::timeout(left, task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(Failure::new(Checker::Workload, format!("client {i} stopped: {e}"))),
            Err(_) => failures.push(Failure::new(Checker::Liveness, format!("client {i} was still waiting for an operation when the liveness phase ended"))),
        }
    }
    failures.extend(workload::final_reads(shared, scenario, deadline).await);
    if scenario.workload.kind.is_transactional() {
        failures.extend(settle::settle_transactions(shared, scenario, deadline).await);
    }
    if let Some(task) = clients.tso {
        let left = deadline.saturating_duration_since(Instant::now());
        if madsim::time::timeout(left, task).await.is_err() {
            failures.push(Failure::new(Checker::Liveness, "the timestamp client was still waiting for PD when the liveness phase ended"));
        }
    }
    if scenario.checkers.convergence {
        failures.extend(settle::converge(&shared.cluster, deadline).await);
    }
    if scenario.checkers.regions {
        let replicas = scenario.cluster.replicas as usize;
        failures.extend(settle::settle_regions(&shared.cluster, deadline, replicas, scenario.checkers.spread).await);
    }
    shared.log("liveness phase ends".into());
    failures
}

/// Scans whose answers were malformed, as one failure (the first three shown).
fn scan_problems(shared: &Shared) -> Option<Failure> {
    let problems = std::mem::take(&mut *shared.scan_problems.lock().unwrap());
    if problems.is_empty() {
        return None;
    }
    let mut text = problems.iter().take(3).cloned().collect::<Vec<_>>().join("\n");
    if problems.len() > 3 {
        let _ = write!(text, "\n... and {} more", problems.len() - 3);
    }
    Some(Failure::new(Checker::Scan, text))
}
