//! The checks run over what a run recorded, listed once.
//!
//! A checker is one file: its rule, its explanation, and a [`Check`] that says
//! when it applies and gives one [`Verdict`]. Adding one is that file plus a
//! line in [`ALL`] (and, when it should be switchable, a field of the
//! scenario's `[checkers]` section and a name in [`Checker`]).

use super::{pd::TimedPdEvent, routing::Watch, tso::TsCall, Checker, Failure};
use crate::history::History;
use crate::scenario::Scenario;
use crate::workload::bank::history::BankOp;
use crate::workload::{list_append::history::Txn, sequential::check::ClientLog, table::history::TableOp};
use simkv::client::raw::Answered;
use simkv::raftstore::StoreEvent;
use std::collections::BTreeMap;

/// One checker over a run's records.
pub trait Check: Sync {
    fn name(&self) -> Checker;
    /// Whether the scenario asks for this check (and records what it reads).
    fn applies(&self, scenario: &Scenario) -> bool;
    fn check(&self, run: &Inputs) -> Verdict;
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(Finding),
    /// The check could not decide (a search that ran out of its budget): an
    /// outcome of its own, never a pass.
    Inconclusive(String),
}

impl Verdict {
    /// A failure with an explanation alone (`None` passes).
    pub fn of(found: Option<String>) -> Verdict {
        found.map_or(Verdict::Pass, |explanation| Verdict::Fail(Finding { explanation, ..Finding::default() }))
    }

    /// A failure that points at the store events at `marks` (positions in the run's events).
    pub fn marked(found: Option<(String, Vec<usize>)>) -> Verdict {
        found.map_or(Verdict::Pass, |(explanation, marks)| Verdict::Fail(Finding { explanation, marks, named: vec![] }))
    }
}

/// A failed check: its explanation, and what it points at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finding {
    pub explanation: String,
    /// Positions of the offending store events in the run's events.
    pub marks: Vec<usize>,
    /// The history operations the explanation names.
    pub named: Vec<NamedOp>,
}

/// One history operation a failed check names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedOp {
    pub process: u64,
    pub invoke: u64,
    /// The operation the failure is about (else one of its window).
    pub culprit: bool,
}

/// What the workloads, the clients and PD recorded besides the register
/// history and the store events.
#[derive(Debug, Default)]
pub struct Records {
    pub bank: Vec<BankOp>,
    /// How many accounts the bank has.
    pub accounts: u64,
    pub table: Vec<TableOp>,
    pub list_append: Vec<Txn>,
    /// The timestamp workload's requests.
    pub ts_calls: Vec<TsCall>,
    /// The sequential workload's per-client logs (none when the run ended in a
    /// panic: they are only complete after the final reads).
    pub logs: Option<BTreeMap<u64, ClientLog>>,
    /// Who answered each register operation, which explanations name.
    pub served: BTreeMap<(u64, u64), Answered>,
    /// What PD handed out and accepted.
    pub pd_events: Vec<TimedPdEvent>,
    /// Each client's routing, as watched.
    pub routing: BTreeMap<u64, Watch>,
}

/// Everything a check may read.
pub struct Inputs<'a> {
    pub scenario: &'a Scenario,
    pub history: &'a History,
    pub events: &'a [StoreEvent],
    pub records: &'a Records,
}

/// Every check over a run's records, in the order their failures are reported.
pub const ALL: &[&dyn Check] = &[
    &crate::workload::list_append::check::Rule,
    &crate::workload::table::check::Rule,
    &crate::workload::bank::check::Rule,
    &super::tso::Rule,
    &super::routing::Rule,
    &super::pd::Rule,
    &super::linearizability::Rule,
    &super::durability::Rule,
    &crate::workload::sequential::check::Rule,
    &super::lease_path::Rule,
    &super::split_path::Rule,
    &super::raft::Rule,
    &super::membership::Rule,
];

/// The outcome of every check that applies.
#[derive(Debug, Default)]
pub struct Checked {
    pub failures: Vec<Failure>,
    pub inconclusive: Vec<Failure>,
    pub marks: Vec<usize>,
    pub named: Vec<NamedOp>,
}

/// Runs every check of [`ALL`] that applies to the run's scenario.
pub fn run_all(run: &Inputs) -> Checked {
    let mut checked = Checked::default();
    for check in ALL.iter().filter(|c| c.applies(run.scenario)) {
        match check.check(run) {
            Verdict::Pass => {}
            Verdict::Fail(Finding { explanation, marks, named }) => {
                checked.failures.push(Failure::new(check.name(), explanation));
                checked.marks.extend(marks);
                checked.named.extend(named);
            }
            Verdict::Inconclusive(why) => checked.inconclusive.push(Failure::new(check.name(), why)),
        }
    }
    checked
}
