//! Scenario files (`scenarios/*.toml`): cluster shape, workload, fault mix with
//! rate ranges, phase durations, checkers and optional planted bugs.
//!
//! Any number may be given as a range `[min, max]` instead of a value: each run's
//! seed then picks the value (swarm testing), and the run prints what it picked.
//! Unknown fields are errors, and every error names the file, line and field.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// A number or an inclusive range the seed picks from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Range<T> {
    Fixed(T),
    Between([T; 2]),
}

/// The numbers a [`Range`] holds, and how a TOML value becomes one (with a
/// message that says what was expected when it cannot).
pub trait RangeNumber: Copy + Sized {
    /// What a person should write, for error messages.
    const EXPECTED: &'static str;
    fn from_i64(v: i64) -> Result<Self, String>;
    fn from_f64(v: f64) -> Result<Self, String>;
}

impl RangeNumber for u64 {
    const EXPECTED: &'static str = "a whole number (or a range [min, max] of them)";
    fn from_i64(v: i64) -> Result<Self, String> {
        u64::try_from(v).map_err(|_| format!("{v} is negative: expected {}", Self::EXPECTED))
    }
    fn from_f64(v: f64) -> Result<Self, String> {
        Err(format!("{v} is not a whole number: expected {}", Self::EXPECTED))
    }
}

impl RangeNumber for f64 {
    const EXPECTED: &'static str = "a number (or a range [min, max] of them)";
    fn from_i64(v: i64) -> Result<Self, String> {
        Ok(v as f64)
    }
    fn from_f64(v: f64) -> Result<Self, String> {
        Ok(v)
    }
}

impl<'de, T: RangeNumber> Deserialize<'de> for Range<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{self, SeqAccess, Visitor};

        struct RangeVisitor<T>(std::marker::PhantomData<T>);

        /// One bound of a `[min, max]` range.
        struct Bound<T>(T);

        impl<'de, T: RangeNumber> Deserialize<'de> for Bound<T> {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(RangeVisitor::<T>(std::marker::PhantomData)).and_then(|r| match r {
                    Range::Fixed(v) => Ok(Bound(v)),
                    Range::Between(_) => Err(de::Error::custom(format!("a range's bounds are numbers, not ranges: expected {}", T::EXPECTED))),
                })
            }
        }

        impl<'de, T: RangeNumber> Visitor<'de> for RangeVisitor<T> {
            type Value = Range<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(T::EXPECTED)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                T::from_i64(v).map(Range::Fixed).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                let v = i64::try_from(v).map_err(|_| E::custom(format!("{v} is too large: expected {}", T::EXPECTED)))?;
                self.visit_i64(v)
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                T::from_f64(v).map(Range::Fixed).map_err(E::custom)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let wrong = |n: usize| de::Error::custom(format!("a range has exactly two numbers [min, max], this one has {n}"));
                let Some(Bound(lo)) = seq.next_element::<Bound<T>>()? else { return Err(wrong(0)) };
                let Some(Bound(hi)) = seq.next_element::<Bound<T>>()? else { return Err(wrong(1)) };
                let mut n = 2;
                while seq.next_element::<de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                if n != 2 {
                    return Err(wrong(n));
                }
                Ok(Range::Between([lo, hi]))
            }
        }

        deserializer.deserialize_any(RangeVisitor::<T>(std::marker::PhantomData))
    }
}

impl<T: Copy + PartialOrd + fmt::Display> Range<T> {
    pub fn bounds(&self) -> (T, T) {
        match *self {
            Range::Fixed(v) => (v, v),
            Range::Between([a, b]) => (a, b),
        }
    }

    fn check(&self, field: &str) -> Result<(), String> {
        let (a, b) = self.bounds();
        if a > b {
            return Err(format!("`{field}`: range [{a}, {b}] is empty (min > max)"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Defaults to the file name.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub cluster: ClusterShape,
    #[serde(default)]
    pub workload: Workload,
    #[serde(default)]
    pub phases: Phases,
    #[serde(default)]
    pub nemesis: Nemesis,
    #[serde(default)]
    pub checkers: Checkers,
    /// Planted bugs switched on for this scenario.
    #[serde(default)]
    pub bugs: Vec<Bug>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterShape {
    pub stores: Range<u64>,
    pub regions: Range<u64>,
    /// Raft log entries kept before the leader compacts (small: more snapshots).
    pub raft_log_gc_count_limit: Range<u64>,
    /// Foreground disk slowdown factor when no fault is active.
    pub disk_slowdown: Range<u64>,
    /// Replicas (voters) per region. Fixed, not drawn: the plan a seed yields
    /// does not depend on it.
    pub replicas: u64,
    /// A leader splits its region once it holds more than this many keys (0:
    /// never by count). Fixed, not drawn.
    pub split_region_keys: u64,
    /// Leaders with a valid lease serve reads without a ReadIndex round (off:
    /// every read takes ReadIndex). Fixed, not drawn.
    pub lease_reads: bool,
    /// Snapshots travel in chunks of about this many bytes of pairs (small:
    /// every snapshot is many chunks). Fixed, not drawn.
    pub snapshot_chunk_bytes: u64,
}

impl Default for ClusterShape {
    fn default() -> Self {
        ClusterShape {
            stores: Range::Fixed(3),
            regions: Range::Fixed(1),
            raft_log_gc_count_limit: Range::Fixed(1000),
            disk_slowdown: Range::Fixed(1),
            replicas: 3,
            split_region_keys: 0,
            lease_reads: true,
            snapshot_chunk_bytes: 256 << 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// Per-key get / put / cas over a few keys.
    Register,
    /// Each client appends its own ordered items to its own key.
    Sequential,
    /// Transactions move money between accounts (`keys` of them) and read
    /// every account in one snapshot; the total never changes.
    Bank,
    /// Transactions insert, update and delete rows of a table with a unique
    /// and a non-unique index (rows drawn from `keys`) and check the whole
    /// table in one snapshot: rows and index entries agree.
    Table,
    /// Elle's list-append transactions over `keys` lists, checked for
    /// strong snapshot isolation.
    ListAppend,
}

impl WorkloadKind {
    /// Whether the workload runs transactions (its keys live in the
    /// transactional key space, which the cluster is pre-split on).
    pub fn is_transactional(self) -> bool {
        matches!(self, WorkloadKind::Bank | WorkloadKind::Table | WorkloadKind::ListAppend)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub clients: Range<u64>,
    /// Keys the register workload spreads over.
    pub keys: Range<u64>,
    /// Think time between one client's operations.
    pub think_ms: Range<u64>,
    /// Percent of register operations that are reads / cas (the rest are puts).
    pub read_percent: Range<u64>,
    pub cas_percent: Range<u64>,
    /// Percent of register operations that delete the key. Fixed, not drawn:
    /// the plan a seed yields does not depend on it.
    pub delete_percent: u64,
    /// Percent of register operations that scan a range of keys (crossing
    /// region boundaries). Fixed, not drawn.
    pub scan_percent: u64,
    /// The TTL of transactions' locks, in milliseconds: how long others wait
    /// before rolling a silent transaction back. Fixed, not drawn.
    pub lock_ttl_ms: u64,
    /// How long a workload client waits for one request's answer before it
    /// records the operation as unknown (a write) or tries another replica
    /// (a read), in milliseconds. Short (the default, under an election
    /// timeout): a client never hears what a deposed leader answers once it
    /// catches up; long: it does. Fixed, not drawn.
    pub request_timeout_ms: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            kind: WorkloadKind::Register,
            clients: Range::Fixed(3),
            keys: Range::Fixed(3),
            think_ms: Range::Between([0, 50]),
            read_percent: Range::Fixed(40),
            cas_percent: Range::Fixed(30),
            delete_percent: 0,
            scan_percent: 0,
            lock_ttl_ms: 3000,
            request_timeout_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Phases {
    /// Faults and load.
    pub safety_secs: u64,
    /// Every fault healed; the cluster must converge within this long.
    pub liveness_secs: u64,
}

impl Default for Phases {
    fn default() -> Self {
        Phases { safety_secs: 20, liveness_secs: 30 }
    }
}

/// The faults a scenario may inject. A weight of 0 (the default) leaves a fault
/// out; otherwise faults are picked in proportion to their weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Nemesis {
    /// Time from one fault starting to the next.
    pub interval_ms: Range<u64>,
    /// How long each fault lasts.
    pub duration_ms: Range<u64>,
    pub partition_halves: u32,
    pub isolate_store: u32,
    pub isolate_leader: u32,
    pub asymmetric: u32,
    pub bridge: u32,
    pub clog_link: u32,
    pub crash_restart: u32,
    pub pause: u32,
    pub slow_disk: u32,
    pub slow_snapshot_io: u32,
    /// PD's process dies and restarts when the fault ends, its clock set back
    /// by up to two seconds (as NTP may do to a restarted machine).
    pub pd_crash_restart: u32,
    /// PD cut off from every store and client.
    pub isolate_pd: u32,
    /// PD moves a region's replica to another store (an operator asked by
    /// the nemesis; instantaneous, the operator runs on its own).
    pub membership_churn: u32,
    /// PD hands a region's leadership to another store.
    pub leader_transfer: u32,
    /// PD removes a region's replica and adds it back on the same store
    /// under a new peer id.
    pub remove_readd: u32,
    /// One stored value on the run's "bad disk" (one store's kv disk, the
    /// same all run, so damage stays on a minority of replicas) gets a bit
    /// flipped; checksums must catch it and the replica be repaired.
    pub corrupt_value: u32,
    /// One stored value on the bad disk becomes unreadable (a latent sector
    /// error) until it is written again.
    pub latent_read_error: u32,
    /// The next fsync on one store's raft or kv disk fails; the store must
    /// stop rather than acknowledge what is not durable.
    pub fail_sync: u32,
    /// How far each store's clock rate may be from true time (0.1: up to
    /// 10% fast or slow), drawn per run; each store's clock then runs fast
    /// or slow by that much (drawn per store). Must stay within the bound the
    /// stores' leases assume unless `clock_drift_unsafe`.
    pub clock_drift: Range<f64>,
    /// Allows `clock_drift` beyond the stores' bound: lease reads may then be
    /// stale, and the checkers must say so.
    pub clock_drift_unsafe: bool,
    /// The moment leases are for, built on purpose: a region's leader gets
    /// the slowest clock the run's drift allows and every other store the
    /// fastest, and the leader is cut off from the other stores (clients
    /// still reach it) until the fault ends; then the drawn rates return.
    pub slow_leader_cut_off: u32,
    /// A shape no random partition builds: a region's leader and exactly one
    /// of its followers on one side, every other store on the other (clients
    /// reach both). With five replicas the leader keeps a follower's answers
    /// but no quorum, while the other side can elect.
    pub leader_with_one_follower: u32,
    /// Loss and delay in our transport for the whole safety phase; raft and
    /// client traffic are drawn separately.
    pub raft_loss: Range<f64>,
    pub raft_delay_ms: Range<u64>,
    pub client_loss: Range<f64>,
    pub client_delay_ms: Range<u64>,
    /// Probability that a raft message or snapshot chunk is delivered twice,
    /// the copy possibly late. Client traffic is never duplicated: a client's
    /// retries already repeat requests.
    pub raft_duplicate: Range<f64>,
    /// Buggify: the seed enables about half of the store's fault points
    /// (`simkv::buggify::Site`: delays, dropped chunks, slow PD replies,
    /// region-cache misses, early log GC, and crash points that kill a store
    /// exactly between two steps, at most three a run, restarted 1–3 s later).
    pub buggify: bool,
    /// The sites buggify enables (all of them fixed, not drawn); empty: the
    /// seed picks.
    pub buggify_sites: Vec<simkv::buggify::Site>,
}

impl Default for Nemesis {
    fn default() -> Self {
        Nemesis {
            interval_ms: Range::Between([2000, 5000]),
            duration_ms: Range::Between([1000, 4000]),
            partition_halves: 0,
            isolate_store: 0,
            isolate_leader: 0,
            asymmetric: 0,
            bridge: 0,
            clog_link: 0,
            crash_restart: 0,
            pause: 0,
            slow_disk: 0,
            slow_snapshot_io: 0,
            pd_crash_restart: 0,
            isolate_pd: 0,
            membership_churn: 0,
            leader_transfer: 0,
            remove_readd: 0,
            corrupt_value: 0,
            latent_read_error: 0,
            fail_sync: 0,
            clock_drift: Range::Fixed(0.0),
            clock_drift_unsafe: false,
            slow_leader_cut_off: 0,
            leader_with_one_follower: 0,
            raft_loss: Range::Fixed(0.0),
            raft_delay_ms: Range::Fixed(0),
            client_loss: Range::Fixed(0.0),
            client_delay_ms: Range::Fixed(0),
            raft_duplicate: Range::Fixed(0.0),
            buggify: false,
            buggify_sites: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Checkers {
    pub linearizability: bool,
    pub raft: bool,
    pub durability: bool,
    pub convergence: bool,
    /// Membership changes take effect when applied, one at a time; epochs
    /// only grow; removed peers stay removed.
    pub membership: bool,
    /// Regions tile the key space, none overlap on a store, each is fully
    /// replicated, and PD agrees with the stores.
    pub regions: bool,
    /// Timestamps from PD are unique and increase in real-time order.
    pub tso: bool,
    /// PD's own events: timestamps and ids handed out once, in increasing
    /// order; its view of regions never goes back within a lifetime.
    pub pd: bool,
    /// A client never routes a key by a region older than one it has learned
    /// for that key.
    pub routing: bool,
    /// After healing, every store holds a replica of some region and (when
    /// there are enough regions) leads one: PD spread the data.
    pub spread: bool,
    /// Leaders serve most reads on their lease (a promise of speed, for
    /// healthy clusters only; off by default).
    pub lease_path: bool,
    /// After healing, no region holds more of the history's keys than the
    /// split threshold lets it (a promise of growth, for scenarios with a
    /// threshold; off by default).
    pub split_path: bool,
    pub sequential: bool,
    /// Every snapshot read of the bank sees its total, no account negative.
    pub bank: bool,
    /// Every check of the table finds rows and index entries agreeing.
    pub table: bool,
    /// The list-append history has no dependency cycle or other anomaly the
    /// model forbids.
    pub list_append: bool,
    /// The model list-append histories are checked against:
    /// "strong-snapshot-isolation" (what one TSO promises), or
    /// "snapshot-isolation", "serializable", "strict-serializable".
    pub list_append_model: String,
    /// After the clients stop and a sweep resolves what they left, no
    /// replica holds a lock.
    pub locks: bool,
    /// Search steps the linearizability checker may take before the run is
    /// inconclusive (its own outcome, never a pass).
    pub linearizability_steps: u64,
    /// A run whose stores report more events than this has run away (a storm
    /// of elections, messages or applies): it is stopped and fails.
    pub max_store_events: u64,
}

impl Default for Checkers {
    fn default() -> Self {
        Checkers {
            linearizability: true,
            raft: true,
            durability: true,
            convergence: true,
            membership: true,
            regions: true,
            tso: true,
            pd: true,
            routing: true,
            spread: false,
            lease_path: false,
            split_path: false,
            sequential: true,
            bank: true,
            table: true,
            list_append: true,
            list_append_model: "strong-snapshot-isolation".into(),
            locks: true,
            linearizability_steps: 20_000_000,
            max_store_events: 5_000_000,
        }
    }
}

/// Planted bugs are the store's own (`simkv::planted`): a scenario names them.
pub use simkv::planted::Bug;

/// A scenario that could not be loaded: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    /// What in the scenario only the simulator can do, one line each: fault
    /// kinds that need the simulated disk, a slowed disk, buggify, planted
    /// bugs. Empty: the scenario runs on real processes (`simkv-sim real`).
    pub fn sim_only(&self) -> Vec<String> {
        let n = &self.nemesis;
        let mut found: Vec<String> = [
            ("slow_disk", n.slow_disk),
            ("slow_snapshot_io", n.slow_snapshot_io),
            ("corrupt_value", n.corrupt_value),
            ("latent_read_error", n.latent_read_error),
            ("fail_sync", n.fail_sync),
        ]
        .into_iter()
        .filter(|(_, weight)| *weight > 0)
        .map(|(kind, _)| format!("[nemesis] {kind}: a disk fault, which needs the simulated disk"))
        .collect();
        let slowest = match self.cluster.disk_slowdown {
            Range::Fixed(v) => v,
            Range::Between([_, hi]) => hi,
        };
        if slowest > 1 {
            found.push(format!("[cluster] disk_slowdown up to {slowest}: slowing every disk needs the simulated disk"));
        }
        if n.buggify || !n.buggify_sites.is_empty() {
            found.push("[nemesis] buggify: buggify is compiled into simulation only".into());
        }
        if !self.bugs.is_empty() && cfg!(not(feature = "planted-bugs")) {
            found.push(format!("bugs {:?}: planted bugs are compiled into simulation only (or a build with the planted-bugs feature)", self.bugs));
        }
        found
    }

    /// Parses a scenario; `file` names it in errors and gives the default name.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let error = |line, message| ScenarioError { file: file.to_string(), line, message };
        let mut scenario: Scenario = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|span| span.start.min(text.len()));
            let line = at.map(|at| text[..at].matches('\n').count() + 1);
            let message = e.message().trim().to_string();
            match line.and_then(|line| key_path_at(text, line)) {
                Some(key) => error(line, format!("`{key}`: {message}")),
                None => error(line, message),
            }
        })?;
        if scenario.name.is_empty() {
            scenario.name = Path::new(file).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        }
        scenario.validate().map_err(|(field, message)| error(line_of(text, field), message))?;
        Ok(scenario)
    }

    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError { file: file.clone(), line: None, message: format!("cannot read: {e}") })?;
        Scenario::parse(&file, &text)
    }

    /// Every `*.toml` in `dir`, by file name.
    pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, ScenarioError> {
        Scenario::load_dir_paths(dir)?.iter().map(|p| Scenario::load(p)).collect()
    }

    /// The scenario files of `dir` (`*.toml`, not recursive), sorted.
    pub fn load_dir_paths(dir: &Path) -> Result<Vec<std::path::PathBuf>, ScenarioError> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| ScenarioError { file: dir.display().to_string(), line: None, message: format!("cannot list: {e}") })?;
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
        paths.sort();
        Ok(paths)
    }

    /// Checks what the types cannot; errors name the field (`section.key`).
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let c = &self.cluster;
        let checks: [(&'static str, Result<(), String>); 12] = [
            ("stores", c.stores.check("cluster.stores")),
            ("regions", c.regions.check("cluster.regions")),
            ("raft_log_gc_count_limit", c.raft_log_gc_count_limit.check("cluster.raft_log_gc_count_limit")),
            ("clients", self.workload.clients.check("workload.clients")),
            ("keys", self.workload.keys.check("workload.keys")),
            ("think_ms", self.workload.think_ms.check("workload.think_ms")),
            ("interval_ms", self.nemesis.interval_ms.check("nemesis.interval_ms")),
            ("duration_ms", self.nemesis.duration_ms.check("nemesis.duration_ms")),
            ("raft_loss", self.nemesis.raft_loss.check("nemesis.raft_loss")),
            ("client_loss", self.nemesis.client_loss.check("nemesis.client_loss")),
            ("raft_delay_ms", self.nemesis.raft_delay_ms.check("nemesis.raft_delay_ms")),
            ("client_delay_ms", self.nemesis.client_delay_ms.check("nemesis.client_delay_ms")),
        ];
        for (field, check) in checks {
            check.map_err(|m| (field, m))?;
        }
        if self.checkers.linearizability_steps == 0 {
            return Err(("linearizability_steps", "`checkers.linearizability_steps` must be positive".into()));
        }
        if c.stores.bounds().0 < 3 || c.stores.bounds().1 > 9 {
            return Err(("stores", "`cluster.stores` must be between 3 and 9".into()));
        }
        if c.replicas == 0 || c.replicas > c.stores.bounds().0 {
            return Err(("replicas", "`cluster.replicas` must be between 1 and the smallest number of stores".into()));
        }
        if c.regions.bounds().0 < 1 || c.regions.bounds().1 > 64 {
            return Err(("regions", "`cluster.regions` must be between 1 and 64".into()));
        }
        if c.snapshot_chunk_bytes == 0 {
            return Err(("snapshot_chunk_bytes", "`cluster.snapshot_chunk_bytes` must be positive".into()));
        }
        if c.raft_log_gc_count_limit.bounds().0 == 0 {
            return Err(("raft_log_gc_count_limit", "`cluster.raft_log_gc_count_limit` must be positive".into()));
        }
        if self.workload.clients.bounds().0 == 0 || self.workload.keys.bounds().0 == 0 {
            return Err(("clients", "`workload.clients` and `workload.keys` must be positive".into()));
        }
        if self.workload.kind == WorkloadKind::Bank && self.workload.keys.bounds().0 < 2 {
            return Err(("keys", "the bank workload needs `workload.keys` (accounts) of at least 2".into()));
        }
        if crate::workload::list_append::check::Model::parse(&self.checkers.list_append_model).is_none() {
            return Err((
                "list_append_model",
                format!(
                    "`checkers.list_append_model` {:?} is not one of snapshot-isolation, strong-snapshot-isolation, serializable, strict-serializable",
                    self.checkers.list_append_model
                ),
            ));
        }
        if self.workload.lock_ttl_ms == 0 {
            return Err(("lock_ttl_ms", "`workload.lock_ttl_ms` must be positive".into()));
        }
        if self.workload.request_timeout_ms == 0 {
            return Err(("request_timeout_ms", "`workload.request_timeout_ms` must be positive".into()));
        }
        let (drift_lo, drift_hi) = self.nemesis.clock_drift.bounds();
        if !(0.0..0.9).contains(&drift_lo) || !(0.0..0.9).contains(&drift_hi) || drift_lo > drift_hi {
            return Err(("clock_drift", "`nemesis.clock_drift` is a relative rate error: between 0 and 0.9".into()));
        }
        let bound = simkv::raftstore::RaftStoreConfig::default().max_safe_clock_rate_error();
        if drift_hi > bound && !self.nemesis.clock_drift_unsafe {
            return Err((
                "clock_drift",
                format!("`nemesis.clock_drift` up to {drift_hi} is beyond the {bound:.3} the stores' leases are safe for; set `clock_drift_unsafe = true` to run it anyway"),
            ));
        }
        for (field, r) in [("raft_loss", self.nemesis.raft_loss), ("client_loss", self.nemesis.client_loss), ("raft_duplicate", self.nemesis.raft_duplicate)] {
            let (a, b) = r.bounds();
            if !(0.0..=1.0).contains(&a) || !(0.0..=1.0).contains(&b) {
                return Err((field, format!("`nemesis.{field}` is a probability: between 0 and 1")));
            }
        }
        if self.workload.read_percent.bounds().1 + self.workload.cas_percent.bounds().1 + self.workload.delete_percent + self.workload.scan_percent > 100 {
            return Err((
                "read_percent",
                "`workload.read_percent` + `workload.cas_percent` + `workload.delete_percent` + `workload.scan_percent` must not exceed 100".into(),
            ));
        }
        if self.phases.safety_secs == 0 || self.phases.liveness_secs == 0 {
            return Err(("safety_secs", "`phases.safety_secs` and `phases.liveness_secs` must be positive".into()));
        }
        if self.nemesis.interval_ms.bounds().0 == 0 {
            return Err(("interval_ms", "`nemesis.interval_ms` must be positive".into()));
        }
        if !self.nemesis.buggify_sites.is_empty() && !self.nemesis.buggify {
            return Err((
                "buggify_sites",
                "`nemesis.buggify_sites` names sites but `nemesis.buggify` is off, so none would fire: add `buggify = true` (it then enables exactly these sites)"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The dotted path (`section.key`) of the key set on 1-based `line`, or on
/// the nearest line above it that sets one (a value may span lines), with
/// the `[section]` it sits in.
fn key_path_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let upto = line.min(lines.len());
    let (at, key) = lines[..upto].iter().enumerate().rev().find_map(|(i, l)| {
        let l = l.trim_start();
        let (key, _) = l.split_once('=')?;
        let key = key.trim();
        (!key.is_empty() && !l.starts_with('#') && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .then(|| (i, key.to_string()))
    })?;
    let section = lines[..at]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    Some(match section {
        Some(section) => format!("{section}.{key}"),
        None => key,
    })
}

/// The line on which `key` is set, if it is.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines().position(|l| l.trim_start().starts_with(key) && l[l.find(key).unwrap_or(0) + key.len()..].trim_start().starts_with('=')).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_an_empty_file() {
        let s = Scenario::parse("scenarios/basic.toml", "").unwrap();
        assert_eq!(s.name, "basic");
        assert_eq!(s.cluster.stores, Range::Fixed(3));
    }

    #[test]
    fn ranges_and_values_parse() {
        let s = Scenario::parse("x.toml", "[workload]\nclients = [2, 8]\n[nemesis]\nraft_loss = 0.05\ncrash_restart = 2\n").unwrap();
        assert_eq!(s.workload.clients, Range::Between([2, 8]));
        assert_eq!(s.nemesis.raft_loss, Range::Fixed(0.05));
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let unknown = Scenario::parse("scenarios/bad.toml", "[cluster]\nstores = 3\nstorez = 4\n").unwrap_err();
        assert_eq!(unknown.line, Some(3));
        assert!(unknown.to_string().starts_with("scenarios/bad.toml:3: `cluster.storez`: unknown field `storez`"), "{unknown}");
        // Type and range errors name the field and say what was expected.
        let cases = [
            ("[workload]\nclients = 1.5\n", 2, "`workload.clients`: 1.5 is not a whole number: expected a whole number (or a range [min, max] of them)"),
            ("[workload]\n\nclients = 99999999999999999999999\n", 3, "`workload.clients`: "),
            ("[workload]\nclients = [1, \"x\"]\n", 2, "`workload.clients`: "),
            ("[workload]\nclients = [1, 2, 3]\n", 2, "`workload.clients`: a range has exactly two numbers [min, max], this one has 3"),
            ("[workload]\nclients = -2\n", 2, "`workload.clients`: -2 is negative"),
            ("# top\n[cluster]\nstores = 3\n[nemesis]\nraft_loss = [0.1, true]\n", 5, "`nemesis.raft_loss`: "),
            ("[cluster]\nreplicas = -1\n", 2, "`cluster.replicas`: "),
            ("description = 7\n", 1, "`description`: "),
        ];
        for (text, line, start) in cases {
            let e = Scenario::parse("bad.toml", text).unwrap_err();
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
            assert!(e.message.starts_with(start), "{text:?}: {e}");
        }
        let sites = Scenario::parse("bad.toml", "[nemesis]\nbuggify_sites = [\"delay-apply\"]\n").unwrap_err();
        assert_eq!(sites.line, Some(2), "{sites}");
        assert!(sites.message.contains("buggify = true"), "{sites}");
        Scenario::parse("ok.toml", "[nemesis]\nbuggify = true\nbuggify_sites = [\"delay-apply\"]\n").unwrap();
        let wrong_type = Scenario::parse("bad.toml", "[workload]\nclients = \"many\"\n").unwrap_err();
        assert_eq!(wrong_type.line, Some(2), "{wrong_type}");
        let empty_range = Scenario::parse("bad.toml", "[nemesis]\n\ninterval_ms = [500, 100]\n").unwrap_err();
        assert_eq!(empty_range.to_string(), "bad.toml:3: `nemesis.interval_ms`: range [500, 100] is empty (min > max)");
        let small = Scenario::parse("bad.toml", "[cluster]\nstores = 1\n").unwrap_err();
        assert_eq!(small.to_string(), "bad.toml:2: `cluster.stores` must be between 3 and 9");
        let bug = Scenario::parse("bad.toml", "bugs = [\"no-such-bug\"]\n").unwrap_err();
        assert_eq!(bug.line, Some(1));
        assert!(bug.message.contains("no-such-bug"), "{bug}");
        let drift = Scenario::parse("bad.toml", "[nemesis]\ncrash_restart = 1\nclock_drift = [0.1, 0.3]\n").unwrap_err();
        assert_eq!(drift.line, Some(3), "{drift}");
        assert!(drift.message.contains("beyond the 0.161") && drift.message.contains("clock_drift_unsafe"), "{drift}");
        Scenario::parse("ok.toml", "[nemesis]\nclock_drift = [0.1, 0.3]\nclock_drift_unsafe = true\n").unwrap();
    }
}
