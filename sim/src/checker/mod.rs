//! Checkers: each reads a history or the store's events, never store internals,
//! and explains a failure in terms a person can act on.
//!
//! | checker | reads | rule |
//! |---|---|---|
//! | [`linearizability`] | register history | some total order respects real time and the register model |
//! | [`raft`] | store events | one leader per term; an applied entry never changes |
//! | [`sequential`](crate::workload::sequential::check) | per-client append logs | none lost, none duplicated, order kept |
//! | [`durability`] | final reads in the history | acknowledged writes survive |
//! | [`convergence`] | replica data after healing | replicas of a region are identical, in every data CF |
//! | [`membership`] | store events | a configuration is used only once its entry is applied; one pending change per region; epochs only grow per replica; no peer back from its tombstone |
//! | [`regions`] | store events and PD's table after healing | regions tile the key space, none overlap on a store, each fully replicated, PD agrees |
//! | [`list_append`](crate::workload::list_append::check) | list-append transactions | snapshot isolation (or strong SI, serializable, strict serializable): no forbidden dependency cycle, aborted or intermediate read, lost update |
//! | [`tso`] | timestamps clients got from PD | unique, and increasing in real-time order |
//! | [`routing`] | each client's routing events | a client never routes a key by a region older than one it learned for that key |
//! | [`pd`] | PD's events | every timestamp and id handed out once, in increasing order, restarts included; within a PD lifetime, the regions it takes and routes by never go back to an older epoch or leader |
//! | [`bank`](crate::workload::bank::check) | bank transfers and snapshot reads | every read sees the total; no account negative or missing |
//! | [`table`](crate::workload::table::check) | whole-table checks in one snapshot | every row has exactly its index entries; unique values unique |
//! | [`locks`] | every replica's lock CF after the sweeps | no lock outlives its transaction's resolution |
//! | [`lease_path`] | completed reads and lease-read events | on a healthy cluster, most reads are served on a lease (a promise of speed) |
//! | [`split_path`] | final reads and the final regions | no region holds more keys than the split threshold lets it (a promise of growth) |

//!
//! Each checker that reads what a run recorded is one [`registry::Check`] in
//! its own file and one line of [`registry::ALL`]; the testbed runs the list.
//! The checkers of the cluster and of the register history are here; a
//! workload with a history of its own keeps its checker with it
//! (`workload/<name>/check.rs`, linked in the table above).
//! The checks that drive the cluster after healing (convergence, regions,
//! locks) run in the liveness phase (`run::settle`).

/// A checker that failed, with what a person needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub checker: Checker,
    pub explanation: String,
}

impl Failure {
    pub fn new(checker: Checker, explanation: impl Into<String>) -> Failure {
        Failure { checker, explanation: explanation.into() }
    }
}

/// Who reports a failure: every checker, and the testbed's own verdicts on a
/// run (a panic, a stall, a workload that could not finish). Their names are
/// what reports, summaries and `shrink --checker` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Checker {
    Linearizability,
    Raft,
    Durability,
    Convergence,
    Membership,
    Regions,
    Tso,
    Pd,
    Routing,
    LeasePath,
    SplitPath,
    Sequential,
    Bank,
    Table,
    ListAppend,
    Locks,
    /// A scan's answer was malformed (keys repeated, out of order or outside its range).
    Scan,
    /// A workload could not be set up, or a client stopped.
    Workload,
    /// Something did not complete within the liveness phase.
    Liveness,
    /// A node of the simulated cluster panicked.
    Panic,
    /// The stores reported events without bound.
    EventStorm,
    /// The simulated disks broke their own fault model (the testbed's bug).
    TestbedFaultModel,
    /// Simulated time stopped advancing.
    Stall,
}

impl Checker {
    pub const ALL: [Checker; 23] = [
        Checker::Linearizability,
        Checker::Raft,
        Checker::Durability,
        Checker::Convergence,
        Checker::Membership,
        Checker::Regions,
        Checker::Tso,
        Checker::Pd,
        Checker::Routing,
        Checker::LeasePath,
        Checker::SplitPath,
        Checker::Sequential,
        Checker::Bank,
        Checker::Table,
        Checker::ListAppend,
        Checker::Locks,
        Checker::Scan,
        Checker::Workload,
        Checker::Liveness,
        Checker::Panic,
        Checker::EventStorm,
        Checker::TestbedFaultModel,
        Checker::Stall,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Checker::Linearizability => "linearizability",
            Checker::Raft => "raft",
            Checker::Durability => "durability",
            Checker::Convergence => "convergence",
            Checker::Membership => "membership",
            Checker::Regions => "regions",
            Checker::Tso => "tso",
            Checker::Pd => "pd",
            Checker::Routing => "routing",
            Checker::LeasePath => "lease-path",
            Checker::SplitPath => "split-path",
            Checker::Sequential => "sequential",
            Checker::Bank => "bank",
            Checker::Table => "table",
            Checker::ListAppend => "list-append",
            Checker::Locks => "locks",
            Checker::Scan => "scan",
            Checker::Workload => "workload",
            Checker::Liveness => "liveness",
            Checker::Panic => "panic",
            Checker::EventStorm => "event-storm",
            Checker::TestbedFaultModel => "testbed-fault-model",
            Checker::Stall => "stall",
        }
    }
}

impl std::fmt::Display for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Checker {
    type Err = String;

    fn from_str(name: &str) -> Result<Checker, String> {
        Checker::ALL.into_iter().find(|c| c.as_str() == name).ok_or_else(|| {
            let names: Vec<&str> = Checker::ALL.iter().map(|c| c.as_str()).collect();
            format!("no checker is called {name:?}; the checkers are {}", names.join(", "))
        })
    }
}

impl PartialEq<str> for Checker {
    fn eq(&self, name: &str) -> bool {
        self.as_str() == name
    }
}

impl PartialEq<&str> for Checker {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

/// A region's keys as `[start, end)`: raw keys decoded and quoted, `-∞` and
/// `+∞` for open ends. Every checker that names a region's keys uses it.
pub fn key_range(region: &simkv::meta::Region) -> String {
    let key = |k: &[u8]| format!("{:?}", String::from_utf8_lossy(simkv::codec::keys::decode_raw_key(k).unwrap_or(k)));
    let start = if region.start_key.is_empty() { "-∞".to_string() } else { key(&region.start_key) };
    let end = if region.end_key.is_empty() { "+∞".to_string() } else { key(&region.end_key) };
    format!("[{start}, {end})")
}

pub mod convergence;
pub mod durability;
pub mod lease_path;
pub mod linearizability;
pub mod locks;
pub mod membership;
pub mod pd;
pub mod raft;
pub mod regions;
pub mod registry;
pub mod routing;
pub mod split_path;
pub mod tso;
