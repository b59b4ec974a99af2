//! The workloads: clients that drive the store and record a history.
//!
//! A workload with a history and a checker of its own is a folder, with the
//! same three files in each: `client.rs` (the clients), `history.rs` (what
//! they record, and its EDN) and `check.rs` (its checker): [`bank`]
//! (transfers and snapshot reads of every account), [`table`] (rows with
//! unique and non-unique indexes, checked whole), [`list_append`] (Elle's
//! transactions of appends and reads) and [`sequential`] (each client
//! appends ordered items to its own key; its log is its history).
//!
//! Two are one file each, because their history and checker are shared:
//! [`register`] (per-key get / put / cas / delete, and scans across regions
//! projected onto the keys they cover) records the single-key history of
//! `crate::history`, which `sequential` also records and other tools'
//! histories are read into, checked by `checker::linearizability`; [`tso`]
//! asks PD for timestamps, which `checker::tso` reads with every other
//! timestamp the run handed out.
//!
//! This module holds what they share: the run's shared state, how an
//! operation is recorded, and the final reads and write probes after
//! healing.

pub mod bank;
pub mod list_append;
pub mod register;
pub mod sequential;
pub mod table;
pub mod tso;

use crate::checker::Failure;
use crate::cluster::Cluster;
use crate::history::{Call, Operation, Outcome};
use crate::nemesis::{Nemesis, Swarm};
use crate::scenario::{Scenario, WorkloadKind};
use crate::workload::sequential::check::{self as sequential_check, ClientLog};
use madsim::time::{sleep, Duration, Instant};
use simkv::client::ClientConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// How many recent values per key a CAS may pick its expected value from.
pub const RECENT_VALUES: usize = 4;

/// The process id of the final reads after healing.
pub const FINAL_PROCESS: u64 = 1_000_000;

/// Scans are recorded as one read per key they cover, each by a process of its
/// own numbered from here (see [`register::scan`]).
pub const SCAN_PROCESS: u64 = 2_000_000;

pub use crate::cluster::now_ns;

/// The register workload's keys, spread over the pre-split key space.
pub fn register_key(i: u64, keys: u64) -> String {
    format!("key{:03}-r", i * 1000 / keys.max(1))
}

pub fn sequential_key(client: u64, clients: u64) -> String {
    format!("key{:03}-s{client}", client * 1000 / clients.max(1))
}

/// What a run records, held outside the simulation so that it survives a panic
/// inside it: the other checkers still run on it.
#[derive(Default)]
pub struct Recorded {
    pub timeline: Mutex<Vec<String>>,
    pub ops: Mutex<Vec<Operation>>,
    /// Operations invoked and not yet returned, by process: if the run ends in
    /// a panic, their outcome is unknown.
    pub in_flight: Mutex<BTreeMap<u64, Operation>>,
    /// Timestamps clients got from PD.
    pub ts_calls: Mutex<Vec<crate::checker::tso::TsCall>>,
    /// The bank workload's transfers and reads. (An operation in flight at a
    /// panic is left out: only reads are checked, and a transfer's outcome
    /// then is unknown anyway.)
    pub bank: Mutex<Vec<crate::workload::bank::history::BankOp>>,
    /// The table workload's changes and checks.
    pub table: Mutex<Vec<table::history::TableOp>>,
    /// The list-append workload's transactions.
    pub list_append: Mutex<Vec<list_append::history::Txn>>,
    /// Which store answered each register operation that got an answer, by
    /// (process, invoke time): explanations and the timeline name it.
    pub served: Mutex<BTreeMap<(u64, u64), simkv::client::raw::Answered>>,
    /// When the client gave up waiting for each register operation whose
    /// outcome is unknown, by (process, invoke time): the timeline ends its
    /// bar there.
    pub gave_up: Mutex<BTreeMap<(u64, u64), u64>>,
    /// What PD handed out and accepted, with simulated times.
    pub pd_events: Arc<Mutex<Vec<crate::checker::pd::TimedPdEvent>>>,
    /// Each client's routing, watched as it goes.
    pub routing: Arc<Mutex<BTreeMap<u64, crate::checker::routing::Watch>>>,
}

pub struct Shared {
    pub cluster: Arc<Cluster>,
    pub recorded: Arc<Recorded>,
    /// The last values seen on each key (written or read), oldest first: what a
    /// CAS compares against.
    pub recent: Mutex<BTreeMap<String, std::collections::VecDeque<String>>>,
    pub logs: Mutex<BTreeMap<u64, ClientLog>>,
    pub stop: AtomicBool,
    pub start: Instant,
    pub nemesis: Nemesis,
    pub swarm: Swarm,
    pub delete_percent: u64,
    pub scan_percent: u64,
    /// Scans whose results were malformed (keys repeated, out of order, or
    /// outside the range asked for).
    pub scan_problems: Mutex<Vec<String>>,
    /// How transactional clients are configured (planted client bugs included).
    pub txn: simkv::client::TxnConfig,
    /// How long a workload client waits for one request's answer.
    pub request_timeout: std::time::Duration,
}

impl Shared {
    pub fn log(&self, line: String) {
        let at = self.start.elapsed();
        let line = format!("{:>8.3}s {line}", at.as_secs_f64());
        tracing::info!(target: "simkv_sim::nemesis", "{line}");
        self.recorded.timeline.lock().unwrap().push(line);
    }

    /// `process` invoked `call` on `key`: in flight until recorded.
    pub fn begin(&self, process: u64, key: &str, call: Call, invoke: u64) {
        let op = Operation { process, key: key.to_string(), call, outcome: Outcome::Unknown, invoke, complete: None };
        self.recorded.in_flight.lock().unwrap().insert(process, op);
    }

    pub fn record_table(&self, op: table::history::TableOp) {
        self.recorded.table.lock().unwrap().push(op);
    }

    pub fn record_list_append(&self, op: list_append::history::Txn) {
        self.recorded.list_append.lock().unwrap().push(op);
    }

    pub fn record_bank(&self, op: crate::workload::bank::history::BankOp) {
        self.recorded.bank.lock().unwrap().push(op);
    }

    /// Notes which store answered `process`'s operation invoked at `invoke`.
    pub fn note_served(&self, process: u64, invoke: u64, answered: Option<simkv::client::raw::Answered>) {
        if let Some(answered) = answered {
            self.recorded.served.lock().unwrap().insert((process, invoke), answered);
        }
    }

    /// `process`'s operation returned (recorded, or dropped as not worth it).
    pub fn end(&self, process: u64) {
        self.recorded.in_flight.lock().unwrap().remove(&process);
    }
}

/// Records one finished operation.
pub fn record(shared: &Shared, process: u64, key: &str, call: Call, invoke: u64, outcome: Option<Outcome>) {
    shared.end(process);
    let Some(outcome) = outcome else { return };
    if outcome == Outcome::Unknown && call == Call::Read {
        return;
    }
    let complete = (outcome != Outcome::Unknown).then(now_ns);
    if complete.is_none() {
        shared.recorded.gave_up.lock().unwrap().insert((process, invoke), now_ns());
    }
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
    shared.recorded.ops.lock().unwrap().push(Operation { process, key: key.to_string(), call, outcome, invoke, complete });
}

/// Records a completed operation whose return time is already known.
pub fn record_at(shared: &Shared, process: u64, key: &str, call: Call, invoke: u64, complete: u64, outcome: Outcome) {
    shared.recorded.ops.lock().unwrap().push(Operation { process, key: key.to_string(), call, outcome, invoke, complete: Some(complete) });
}

pub async fn think(shared: &Shared) {
    let (lo, hi) = shared.swarm.think_ms;
    let ms = if hi > lo { rand::Rng::gen_range(&mut madsim::rand::thread_rng(), lo..=hi) } else { lo };
    sleep(Duration::from_millis(ms)).await;
}

/// After healing: read every workload key (recorded in the history, so the
/// linearizability and durability checks see them) and one key of every region.
pub async fn final_reads(shared: &Arc<Shared>, scenario: &Scenario, deadline: Instant) -> Vec<Failure> {
    let cluster = &shared.cluster;
    let (node, local) = cluster.client_node();
    let keys: Vec<String> = {
        let ops = shared.recorded.ops.lock().unwrap();
        let mut keys: BTreeSet<String> = ops.iter().map(|o| o.key.clone()).collect();
        if scenario.workload.kind == WorkloadKind::Sequential {
            let clients = shared.logs.lock().unwrap().len() as u64;
            keys.extend((0..clients).map(|c| sequential_key(c, clients)));
        }
        keys.into_iter().collect()
    };
    // One user key of every region the stores report (its start key, as a raw key).
    let region_keys: Vec<Vec<u8>> = cluster
        .topology()
        .regions_in_order()
        .iter()
        .map(|r| simkv::codec::keys::decode_raw_key(&r.start_key).map(<[u8]>::to_vec).unwrap_or_default())
        .collect();
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
                            checker: crate::checker::Checker::Liveness,
                            explanation: format!("the final read of key {key:?} did not complete within the liveness phase: {e}"),
                        });
                        break None;
                    }
                }
            };
            if let Some((invoke, value)) = read {
                shared2.note_served(process, invoke, client.take_answered());
                record(&shared2, process, key, Call::Read, invoke, Some(Outcome::Read(value.clone())));
                if key.contains("-s") {
                    let client_id: u64 = key.rsplit("-s").next().and_then(|c| c.parse().ok()).unwrap_or(u64::MAX);
                    let list = sequential_check::decode(value.as_deref().unwrap_or(""));
                    if let Some(log) = shared2.logs.lock().unwrap().get_mut(&client_id) {
                        match list {
                            Ok(list) => log.final_list = Some(list),
                            Err(e) => failures.push(Failure { checker: crate::checker::Checker::Sequential, explanation: format!("client {client_id}: {e}") }),
                        }
                    }
                }
            }
        }
        // Every region serves a read (it has a leader that can confirm it)
        // and acknowledges a write (a store that commits but never answers
        // would leave every write of the run unknown, which the history
        // checkers accept). The write goes to a key of its own, just after
        // the region's start key, and is not part of the history.
        for key in region_keys {
            let mut probe = key.clone();
            probe.extend_from_slice(b"\0liveness-probe");
            for (what, write) in [("read", false), ("write", true)] {
                loop {
                    let done = if write { client.put(&probe, b"1").await.map(|_| ()) } else { client.get(&key).await.map(|_| ()) };
                    match done {
                        Ok(()) => break,
                        Err(_) if Instant::now() < deadline => sleep(Duration::from_millis(200)).await,
                        Err(e) => {
                            failures.push(Failure {
                                checker: crate::checker::Checker::Liveness,
                                explanation: format!("the region starting at {key:?} completed no {what} within the liveness phase: {e}"),
                            });
                            break;
                        }
                    }
                }
            }
        }
        failures
    });
    task.await.unwrap_or_else(|e| vec![Failure { checker: crate::checker::Checker::Liveness, explanation: format!("final reads stopped: {e}") }])
}
