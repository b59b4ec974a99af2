//! What a run produced, assembled once from what it recorded, whether it ended
//! normally or in a panic.

use crate::checker::registry::{self, Inputs, NamedOp, Records};
use crate::checker::{tso, Failure};
use crate::cluster::TimedEvent;
use crate::history::{History, Outcome};
use crate::nemesis::Plan;
#[cfg(madsim)]
use crate::panics::PanicReport;
use crate::scenario::Scenario;
use crate::workload::{self, Recorded};
use madsim::time::Duration;
use simkv::client::raw::Answered;
use simkv::meta::StoreId;
use simkv::raftstore::events::Fingerprint;
use simkv::raftstore::StoreEvent;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::mem::take;

/// How a run stopped for an event storm starts its message.
#[cfg(madsim)]
pub(super) const EVENT_STORM: &str = "event storm";

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
    fn of(history: &History, records: &Records, plan: &Plan, events: &[TimedEvent], simulated: Duration) -> RunStats {
        use crate::workload::bank::history::BankOutcome;
        use crate::workload::list_append::history::TxnOutcome;
        use workload::table::history::TableOutcome;
        let (bank, table, list_append) = (&records.bank, &records.table, &records.list_append);
        let topology = crate::topology::Topology::from_events(events.iter().map(|e| &e.event));
        let placement = (1..=plan.swarm.stores)
            .map(|s| {
                let held = topology.regions.values().filter(|r| r.peer_on_store(s).is_some()).count();
                let led = topology.regions.keys().filter(|id| topology.leader_of(**id) == Some(s)).count();
                (s, held, led)
            })
            .collect();
        let count = |matches: fn(&StoreEvent) -> bool| events.iter().filter(|e| matches(&e.event)).count();
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
            damaged: count(|e| matches!(e, StoreEvent::DataCorrupted { .. })),
            repaired: count(|e| matches!(e, StoreEvent::DataRepaired { .. })),
            hibernated: count(|e| matches!(e, StoreEvent::Hibernated { .. })),
            woke: count(|e| matches!(e, StoreEvent::Woke { .. })),
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
    pub bank: Vec<crate::workload::bank::history::BankOp>,
    /// The table workload's changes and checks (empty for other workloads).
    pub table: Vec<workload::table::history::TableOp>,
    /// The list-append workload's transactions (empty for other workloads).
    pub list_append: Vec<workload::list_append::history::Txn>,
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
    /// What the run made the cluster do, abstracted (guided exploration's
    /// feedback; see `explore::coverage`).
    pub coverage: crate::explore::coverage::Coverage,
    /// The CPU time computing `coverage` took (what `bench-explore` weighs
    /// against the run's); never part of the digest.
    pub coverage_cpu: std::time::Duration,
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

/// How a run ended, as the path that ended it knows it.
pub(super) struct Ending {
    pub history: History,
    /// Failures found before the checks (a panic, the liveness phase's).
    pub failures: Vec<Failure>,
    /// The sequential workload's logs (only after the final reads).
    pub logs: Option<BTreeMap<u64, crate::workload::sequential::check::ClientLog>>,
    pub simulated: Duration,
    /// A last line for the timeline (the panic's).
    pub last_line: Option<String>,
}

/// The report of a run: what it recorded, checked by every checker that
/// applies. Both ways a run ends come here.
pub(super) fn assemble(scenario: &Scenario, plan: &Plan, recorded: &Recorded, events: Vec<TimedEvent>, ending: Ending) -> RunReport {
    let Ending { history, mut failures, logs, simulated, last_line } = ending;
    let store_events: Vec<StoreEvent> = events.iter().map(|e| e.event.clone()).collect();
    let mut timeline = recorded.timeline.lock().unwrap().clone();
    timeline.extend(last_line);

    let records = Records {
        bank: take(&mut *recorded.bank.lock().unwrap()),
        accounts: plan.swarm.keys.max(2),
        table: take(&mut *recorded.table.lock().unwrap()),
        list_append: take(&mut *recorded.list_append.lock().unwrap()),
        ts_calls: take(&mut *recorded.ts_calls.lock().unwrap()),
        logs,
        served: take(&mut *recorded.served.lock().unwrap()),
        pd_events: take(&mut *recorded.pd_events.lock().unwrap()),
        routing: take(&mut *recorded.routing.lock().unwrap()),
    };
    let checked = registry::run_all(&Inputs { scenario, history: &history, events: &store_events, records: &records });
    failures.extend(checked.failures);
    let stats = RunStats::of(&history, &records, plan, &events, simulated);
    let digest = digest(&events, &timeline, &history, &records);
    let gave_up = take(&mut *recorded.gave_up.lock().unwrap());
    #[cfg(madsim)]
    simkv::supervisor::uninstall();
    #[cfg(madsim)]
    let buggify = simkv::buggify::uninstall().into_iter().map(|(site, n)| (site.name().to_string(), n)).collect();
    #[cfg(not(madsim))]
    let buggify = BTreeMap::new();
    let before = crate::explore::coverage::thread_cpu_time();
    let coverage = crate::explore::coverage::of(plan, &events, &history, &records, &buggify);
    let coverage_cpu = crate::explore::coverage::thread_cpu_time().saturating_sub(before);
    let Records { bank, table, list_append, ts_calls, served, .. } = records;
    RunReport {
        plan: plan.clone(),
        history,
        timeline,
        failures,
        inconclusive: checked.inconclusive,
        stats,
        digest,
        leader_changes: leader_changes(&events),
        bank,
        table,
        list_append,
        marks: Mark::of(&events, &checked.marks),
        buggify,
        named: checked.named,
        served,
        gave_up,
        ts_calls,
        coverage,
        coverage_cpu,
    }
}

/// How a run that panicked ends: the panic is a failure of its own that names
/// the node, the store and region it was working on, the simulated time and
/// the message; operations in flight at the panic count as unknown.
#[cfg(madsim)]
pub(super) fn after_panic(recorded: &Recorded, node: String, panic: &PanicReport) -> Ending {
    use crate::checker::Checker;
    use crate::history::{Call, Clock, Initial};
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
    // An event storm is stopped by a panic of the testbed's own (see
    // `watch::heartbeat`). A broken fault model is the testbed's failure,
    // never the store's.
    let checker = if panic.message.starts_with(EVENT_STORM) {
        Checker::EventStorm
    } else if panic.message.starts_with(simkv::engine::sim::FAULT_MODEL_BROKEN) {
        Checker::TestbedFaultModel
    } else {
        Checker::Panic
    };
    Ending {
        history,
        last_line: Some(format!("panic: {explanation}")),
        failures: vec![Failure::new(checker, explanation)],
        logs: None,
        simulated: panic.at.unwrap_or_default(),
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

/// Fingerprint of the store events, the timeline, the history and the other
/// records.
fn digest(events: &[TimedEvent], timeline: &[String], history: &History, records: &Records) -> u64 {
    // Written straight into the hash: the same bytes as formatting the text
    // first, without building it.
    let mut text = Fingerprint::default();
    let _ = writeln!(text, "{:016x}", crate::cluster::events_fingerprint(events));
    for o in &records.bank {
        let _ = writeln!(text, "{o:?}");
    }
    for o in &records.table {
        let _ = writeln!(text, "{o:?}");
    }
    for o in &records.list_append {
        let _ = writeln!(text, "{o:?}");
    }
    for o in &records.pd_events {
        let _ = writeln!(text, "{o:?}");
    }
    timeline.iter().for_each(|l| text.update(l.as_bytes()));
    history.ops.iter().for_each(|o| {
        let _ = writeln!(text, "{o:?}");
    });
    text.0
}
