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
//! 3. **Checks**: every checker of `checker::registry` that applies, over what
//!    the run recorded.
//!
//! One file a job: [`spec`] (the cluster a scenario and plan ask for),
//! [`phases`] (the two phases), [`settle`] (what the liveness phase waits for
//! and checks), [`crashes`] (crash points and the supervisor), [`watch`] (stall
//! watchdog, event-storm heartbeat) and [`report`] (one assembly of the report,
//! for a run that ended and one that panicked).

#[cfg(madsim)]
mod crashes;
mod phases;
#[cfg(not(madsim))]
pub mod real;
mod report;
mod settle;
mod spec;
#[cfg(madsim)]
mod watch;

pub use crate::checker::registry::NamedOp;
pub use crate::checker::Failure;
pub use report::{Mark, RunOutcome, RunReport, RunStats};
#[cfg(madsim)]
pub use watch::{run_or_stall, run_watched, Stall};

#[cfg(madsim)]
use crate::cluster::{NodeId, TimedEvent};
#[cfg(madsim)]
use crate::nemesis::Plan;
#[cfg(madsim)]
use crate::panics;
#[cfg(madsim)]
use crate::scenario::Scenario;
#[cfg(madsim)]
use crate::workload::Recorded;
#[cfg(madsim)]
use std::collections::BTreeMap;
#[cfg(madsim)]
use std::sync::atomic::AtomicU64;
#[cfg(madsim)]
use std::sync::{Arc, Mutex};

/// Runs `scenario` with `plan` in a fresh simulation seeded with `plan.seed`.
///
/// A panic anywhere in the simulated cluster (ours or a dependency's) is a
/// failure of its own that names the node, the store and region it was working
/// on, the simulated time and the message; what was recorded up to the panic
/// (history, store events, timeline) is kept, and the other checkers still run
/// on it, with operations in flight at the panic counted as unknown.
#[cfg(madsim)]
pub fn run(scenario: &Scenario, plan: &Plan) -> RunReport {
    run_with_progress(scenario, plan, Arc::default())
}

/// [`run`], with the simulated time (ms) written to `progress` as it passes.
/// Watched or not, a run has the same tasks, so it is the same run.
#[cfg(madsim)]
fn run_with_progress(scenario: &Scenario, plan: &Plan, progress: Arc<AtomicU64>) -> RunReport {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(plan.seed, madsim::Config::default());
    let recorded = Arc::new(Recorded::default());
    let events: Arc<Mutex<Vec<TimedEvent>>> = Arc::default();
    let nodes: Arc<Mutex<BTreeMap<NodeId, String>>> = Arc::default();
    let (scenario2, plan2, recorded2, events2, nodes2) = (scenario.clone(), plan.clone(), recorded.clone(), events.clone(), nodes.clone());
    let (events3, max_events, nodes3) = (events.clone(), scenario.checkers.max_store_events, nodes.clone());
    let result = panics::catching(|| {
        runtime.block_on(async move {
            let _heartbeat = watch::heartbeat(progress, events3, max_events);
            let report = phases::run_inner(scenario2, plan2, recorded2, events2, nodes2).await;
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
    let ending = report::after_panic(&recorded, node, &panic);
    // The run is over: its events move into the report (no copy).
    let events = std::mem::take(&mut *events.lock().unwrap());
    report::assemble(scenario, plan, &recorded, events, ending)
}

/// Ends a run's simulation: kills every node the testbed created (stores,
/// PD, clients, the nemesis's, the supervisors'), so their tasks are dropped
/// before the main task returns. Without it, tasks still waiting on the
/// simulated network or timers keep each other and the runtime alive after
/// it is gone, with every disk, event log and history of the run: a long
/// campaign's memory grew by about 2 MB a run. Nothing of the run is
/// observed after this point (its report is already made), so the digest
/// does not change.
#[cfg(madsim)]
fn teardown(nodes: &Mutex<BTreeMap<NodeId, String>>) {
    let handle = madsim::runtime::Handle::current();
    for id in nodes.lock().unwrap().keys() {
        handle.kill(*id);
    }
}
