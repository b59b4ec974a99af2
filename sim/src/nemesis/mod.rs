//! The fault schedule of a run, drawn before the cluster starts.
//!
//! [`Plan::draw`] takes the scenario and the seed and, from a `rand_chacha`
//! stream of its own, picks the swarm parameters (every range in the scenario
//! becomes one value) and the list of faults with their start times, durations
//! and targets. Nothing the store does can change it, so a regression seed keeps
//! its meaning across code changes, and a plan can be written out (TOML), edited
//! and replayed with `simkv-sim run --schedule FILE`.
//!
//! Each kind of fault is one module of `kinds/` (a struct of its parameters:
//! how a plan draws it, the stores it names, how it starts and heals), named
//! once in the registry in `kinds.rs`; [`Fault`] holds one of them. The
//! runner starts each fault at `at_ms` through [`Nemesis::start`] (which logs
//! it), and heals it `duration_ms` later (a crash is healed by a restart);
//! [`Nemesis::heal_all`] ends every fault at the start of the liveness phase.
//! Packet loss, delay and duplication for the whole safety phase are not
//! faults of the schedule but swarm parameters (`network`).

mod crash;
mod disk;
mod kinds;
mod membership;
pub mod network;
mod partition;

pub use kinds::*;

use crate::scenario::{Bug, Range, Scenario};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// The values the seed picked from the scenario's ranges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Swarm {
    pub stores: u64,
    pub regions: u64,
    pub raft_log_gc_count_limit: u64,
    pub disk_slowdown: u64,
    pub clients: u64,
    pub keys: u64,
    pub think_ms: (u64, u64),
    pub read_percent: u64,
    pub cas_percent: u64,
    pub raft_loss: f64,
    pub raft_delay_ms: u64,
    pub client_loss: f64,
    pub client_delay_ms: u64,
    /// Probability that a raft message or snapshot chunk is delivered twice
    /// (drawn after the schedule, so plans without it are unchanged).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub raft_duplicate: f64,
    /// Each store's clock rate (local seconds per second), by store id
    /// order, then PD's; empty: exact clocks (drawn last).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clock_rates: Vec<f64>,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEvent {
    pub at_ms: u64,
    pub duration_ms: u64,
    #[serde(flatten)]
    pub fault: Fault,
}

/// Everything a run does that the seed decides before it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub scenario: String,
    pub seed: u64,
    pub swarm: Swarm,
    #[serde(default)]
    pub bugs: Vec<Bug>,
    #[serde(default)]
    pub faults: Vec<FaultEvent>,
    /// A safety phase shorter than the scenario's (set by `shrink`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_secs: Option<u64>,
    /// The buggify sites this run enables (drawn last; empty unless the
    /// scenario asks for buggify).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buggify: Vec<simkv::buggify::Site>,
}

/// A small wrapper for drawing from the plan's own stream.
struct Draw(ChaCha8Rng);

impl Draw {
    fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        self.0.next_u64() % n
    }

    fn range(&mut self, r: Range<u64>) -> u64 {
        let (a, b) = r.bounds();
        a + self.below(b - a + 1)
    }

    fn range_f(&mut self, r: Range<f64>) -> f64 {
        let (a, b) = r.bounds();
        let unit = (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        // Three decimals are plenty, and print the same everywhere.
        ((a + (b - a) * unit) * 1000.0).round() / 1000.0
    }

    fn store(&mut self, stores: u64) -> u64 {
        1 + self.below(stores)
    }

    /// Two distinct stores.
    fn two_stores(&mut self, stores: u64) -> (u64, u64) {
        let a = self.store(stores);
        let b = 1 + (a + self.below(stores - 1)) % stores;
        (a, b)
    }

    fn shuffled(&mut self, stores: u64) -> Vec<u64> {
        let mut all: Vec<u64> = (1..=stores).collect();
        for i in (1..all.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            all.swap(i, j);
        }
        all
    }
}

/// Mixes the seed so that the plan's stream is not the simulator's stream.
fn plan_seed(seed: u64) -> u64 {
    seed ^ 0x5eed_5c4e_d01e_0000
}

impl Plan {
    pub fn draw(scenario: &Scenario, seed: u64) -> Plan {
        let mut d = Draw(ChaCha8Rng::seed_from_u64(plan_seed(seed)));
        let (c, w, n) = (&scenario.cluster, &scenario.workload, &scenario.nemesis);
        let think_hi = d.range(w.think_ms);
        let swarm = Swarm {
            stores: d.range(c.stores),
            regions: d.range(c.regions),
            raft_log_gc_count_limit: d.range(c.raft_log_gc_count_limit),
            disk_slowdown: d.range(c.disk_slowdown),
            clients: d.range(w.clients),
            keys: d.range(w.keys),
            think_ms: (w.think_ms.bounds().0, think_hi),
            read_percent: d.range(w.read_percent),
            cas_percent: d.range(w.cas_percent),
            raft_loss: d.range_f(n.raft_loss),
            raft_delay_ms: d.range(n.raft_delay_ms),
            client_loss: d.range_f(n.client_loss),
            client_delay_ms: d.range(n.client_delay_ms),
            raft_duplicate: 0.0,
            clock_rates: Vec::new(),
        };
        let weights: Vec<(u32, FaultKind)> = FaultKind::ALL.iter().map(|&kind| (kind.weight(n), kind)).collect();
        let mut target = kinds::Target::new(swarm.stores, swarm.regions);
        let total: u64 = weights.iter().map(|(w, _)| *w as u64).sum();
        let mut faults = Vec::new();
        let safety_ms = scenario.phases.safety_secs * 1000;
        let mut at = d.range(n.interval_ms);
        while total > 0 && at < safety_ms {
            let duration_ms = d.range(n.duration_ms).min(safety_ms - at).max(1);
            let mut pick = d.below(total);
            let kind = weights.iter().find(|(w, _)| {
                let hit = pick < *w as u64;
                pick = pick.saturating_sub(*w as u64);
                hit
            });
            let kind = kind.map_or(FaultKind::ALL[0], |k| k.1);
            let fault = kind.draw(&mut d, &mut target);
            faults.push(FaultEvent { at_ms: at, duration_ms, fault });
            at += d.range(n.interval_ms);
        }
        let mut swarm = swarm;
        // Drawn last: plans of scenarios without duplication stay as they were.
        if n.raft_duplicate.bounds().1 > 0.0 {
            swarm.raft_duplicate = d.range_f(n.raft_duplicate);
        }
        if n.clock_drift.bounds().1 > 0.0 {
            // Each clock as far off as the run allows, fast or slow: the
            // pairs that matter (a fast follower, a slow leader) are common.
            let x = d.range_f(n.clock_drift);
            swarm.clock_rates = (0..=swarm.stores).map(|_| if d.below(2) == 0 { 1.0 + x } else { 1.0 - x }).collect();
        }
        let buggify = match (n.buggify, n.buggify_sites.is_empty()) {
            (false, _) => Vec::new(),
            (true, true) => simkv::buggify::ALL.into_iter().filter(|_| d.below(2) == 0).collect(),
            (true, false) => n.buggify_sites.clone(),
        };
        Plan { scenario: scenario.name.clone(), seed, swarm, bugs: scenario.bugs.clone(), faults, safety_secs: None, buggify }
    }

    /// One fault of `kind`, its parameters drawn from `seed`, against this
    /// plan's cluster: what guided exploration adds to a plan. Disk damage
    /// goes to the store this plan already damages, if it damages one, so
    /// that damage stays on one store all run (see [`Plan::one_damaged_store`]).
    pub fn draw_fault(&self, kind: FaultKind, seed: u64) -> Fault {
        let mut d = Draw(ChaCha8Rng::seed_from_u64(plan_seed(seed)));
        let mut target = kinds::Target::new(self.swarm.stores, self.swarm.regions);
        target.bad_disk = self.faults.iter().find_map(|f| f.fault.damaged_store());
        kind.draw(&mut d, &mut target)
    }

    /// Points every disk-damage fault at the first one's store: a plan made
    /// of two plans' faults (guided exploration's splice) must not damage
    /// two stores' disks, which could take a region's majority of replicas.
    pub fn one_damaged_store(&mut self) {
        let Some(store) = self.faults.iter().find_map(|f| f.fault.damaged_store()) else { return };
        for f in &mut self.faults {
            match &mut f.fault {
                Fault::CorruptValue(c) => c.store = store,
                Fault::LatentReadError(l) => l.store = store,
                _ => {}
            }
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("plans serialize")
    }

    /// Reads a plan file (`plan`, `replay`, `shrink` and `explore` write
    /// them) to run with `seed`.
    pub fn from_file(path: &std::path::Path, seed: u64) -> Result<Plan, crate::scenario::ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| crate::scenario::ScenarioError {
            file: file.clone(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        let mut plan = Plan::from_toml(&file, &text)?;
        plan.seed = seed;
        Ok(plan)
    }

    /// Reads a plan written by [`Plan::to_toml`] (possibly edited by hand).
    pub fn from_toml(file: &str, text: &str) -> Result<Plan, crate::scenario::ScenarioError> {
        toml::from_str(text).map_err(|e| crate::scenario::ScenarioError {
            file: file.to_string(),
            line: e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            message: e.message().trim().to_string(),
        })
    }

    /// One line with the swarm parameters, printed at the start of every run.
    pub fn swarm_line(&self) -> String {
        let s = &self.swarm;
        let mut line = format!(
            "swarm: stores={} regions={} gc_limit={} disk_slowdown={} clients={} keys={} think_ms={}..{} reads={}% cas={}% raft_loss={} raft_delay_ms={} client_loss={} client_delay_ms={}",
            s.stores, s.regions, s.raft_log_gc_count_limit, s.disk_slowdown, s.clients, s.keys, s.think_ms.0, s.think_ms.1,
            s.read_percent, s.cas_percent, s.raft_loss, s.raft_delay_ms, s.client_loss, s.client_delay_ms
        );
        if s.raft_duplicate > 0.0 {
            let _ = write!(line, " raft_duplicate={}", s.raft_duplicate);
        }
        if !s.clock_rates.is_empty() {
            let rates: Vec<String> = s.clock_rates.iter().map(|r| format!("{r:.3}")).collect();
            let _ = write!(line, " clock_rates=[{}]", rates.join(","));
        }
        if !self.buggify.is_empty() {
            let sites: Vec<&str> = self.buggify.iter().map(|s| s.name()).collect();
            let _ = write!(line, " buggify=[{}]", sites.join(","));
        }
        if !self.bugs.is_empty() {
            let _ = write!(line, " bugs={:?}", self.bugs);
        }
        line
    }

    /// The schedule, one fault per line.
    /// What in the plan only the simulator can do, one line each (empty: the
    /// plan runs on real processes as it is). See [`Plan::without_sim_only`].
    pub fn sim_only(&self) -> Vec<String> {
        let mut found = Vec::new();
        for (i, f) in self.faults.iter().enumerate() {
            if let Some(why) = f.fault.sim_only() {
                found.push(format!("fault #{i} ({:?}): {why}", f.fault));
            }
        }
        if self.swarm.disk_slowdown > 1 {
            found.push(format!("swarm disk_slowdown = {}: slowing every disk needs the simulated disk", self.swarm.disk_slowdown));
        }
        if !self.buggify.is_empty() {
            found.push(format!("buggify sites {:?}: buggify is compiled into simulation only", self.buggify));
        }
        if !self.bugs.is_empty() && cfg!(not(feature = "planted-bugs")) {
            found.push(format!("planted bugs {:?}: planted bugs are compiled into simulation only (or a build with the planted-bugs feature)", self.bugs));
        }
        found
    }

    /// The plan without what only the simulator can do (`--skip-sim-only`).
    pub fn without_sim_only(&self) -> Plan {
        let mut plan = self.clone();
        plan.faults.retain(|f| f.fault.sim_only().is_none());
        plan.swarm.disk_slowdown = plan.swarm.disk_slowdown.min(1);
        plan.buggify.clear();
        if cfg!(not(feature = "planted-bugs")) {
            plan.bugs.clear();
        }
        plan
    }

    pub fn schedule_text(&self) -> String {
        let mut out = String::new();
        for f in &self.faults {
            let _ = writeln!(out, "{:>7}ms +{:>5}ms  {:?}", f.at_ms, f.duration_ms, f.fault);
        }
        out
    }
}

/// A directed link between two simulated nodes.
pub(super) type Link = (crate::cluster::NodeId, crate::cluster::NodeId);

/// What is currently broken, so that overlapping faults compose and healing
/// undoes exactly what was done.
#[derive(Default)]
pub(super) struct FaultState {
    /// Clogged directed links, counted (two faults may clog one link).
    clogs: std::collections::BTreeMap<Link, u32>,
    down: std::collections::BTreeSet<u64>,
    paused: std::collections::BTreeSet<u64>,
    slow: std::collections::BTreeMap<u64, u32>,
    pd_down: bool,
    /// Faults started and not yet healed, by their index in the plan, with the
    /// links each clogged.
    active: std::collections::BTreeMap<usize, Vec<Link>>,
}

/// Carries out a plan's faults on a running cluster.
pub struct Nemesis {
    cluster: std::sync::Arc<crate::cluster::Cluster>,
    state: std::sync::Mutex<FaultState>,
    clients: std::sync::Mutex<Vec<crate::cluster::NodeId>>,
    baseline_io: simkv::engine::IoProfile,
    /// The node the nemesis asks PD from (membership churn).
    admin_node: crate::cluster::NodeHandle,
    admin_ip: std::net::IpAddr,
    /// The clock rates the run drew, by store id order.
    clock_rates: Vec<f64>,
}

/// Both directions between every node of `a` and every node of `b`.
fn between(a: &[crate::cluster::NodeId], b: &[crate::cluster::NodeId]) -> Vec<Link> {
    let mut links = Vec::new();
    for &x in a {
        for &y in b {
            if x != y {
                links.push((x, y));
                links.push((y, x));
            }
        }
    }
    links
}

impl Nemesis {
    pub fn new(cluster: std::sync::Arc<crate::cluster::Cluster>, baseline_io: simkv::engine::IoProfile) -> Self {
        let admin_ip = cluster.nemesis_ip();
        let admin_node = cluster.control_node("nemesis", admin_ip);
        let clock_rates = cluster.spec.clock_rates.clone();
        Nemesis { cluster, state: Default::default(), clients: Default::default(), baseline_io, admin_node, admin_ip, clock_rates }
    }

    /// Runs `task` on the nemesis's own node (the fault schedule and each
    /// fault's heal timer), so that the end of a run stops it with the
    /// cluster's nodes (see `run::teardown`).
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) -> madsim::task::JoinHandle<()> {
        self.admin_node.spawn(task)
    }

    /// A buggify crash point kills `store`: it is down as if a crash fault
    /// had started (overlapping crash faults compose). False if it already is.
    pub fn crash_point(&self, store: u64) -> bool {
        crash::crash_store(self, &mut self.state.lock().unwrap(), store)
    }

    /// PD reached a crash point: crash it unless it is down already.
    pub fn crash_point_pd(&self) -> bool {
        crash::crash_pd(self, &mut self.state.lock().unwrap())
    }

    /// Restarts PD after a crash point, its clock `clock_back_ms` behind,
    /// unless something restarted it already.
    pub fn restart_pd_after_crash_point(&self, clock_back_ms: u64) -> bool {
        crash::restart_pd(self, &mut self.state.lock().unwrap(), clock_back_ms)
    }

    /// Restarts a store a crash point killed, unless something restarted
    /// it already (a crash fault's end, or healing).
    pub fn restart_after_crash_point(&self, store: u64) -> bool {
        crash::restart_store(self, &mut self.state.lock().unwrap(), store)
    }

    /// A client node: isolating a store cuts it off from clients too.
    pub fn add_client(&self, node: crate::cluster::NodeId) {
        self.clients.lock().unwrap().push(node);
    }

    fn client_nodes(&self) -> Vec<crate::cluster::NodeId> {
        self.clients.lock().unwrap().clone()
    }

    fn store_ids(&self) -> Vec<u64> {
        self.cluster.stores.keys().copied().collect()
    }

    fn pd_node(&self) -> crate::cluster::NodeId {
        self.cluster.pd.node.id()
    }

    fn nodes(&self, stores: &[u64]) -> Vec<crate::cluster::NodeId> {
        stores.iter().filter_map(|s| self.cluster.stores.get(s).map(|slot| slot.node.id())).collect()
    }

    /// Starts fault `index` of the plan; returns what it did, for the timeline.
    pub fn start(&self, index: usize, fault: &Fault) -> String {
        let mut state = self.state.lock().unwrap();
        let (links, what) = fault.start(self, &mut state);
        for &link in &links {
            let count = state.clogs.entry(link).or_insert(0);
            if *count == 0 {
                self.cluster.clog_link_nodes(link.0, link.1);
            }
            *count += 1;
        }
        state.active.insert(index, links);
        what
    }

    /// Heals fault `index` unless it was healed already (by [`Nemesis::heal_all`]).
    pub fn heal(&self, index: usize, fault: &Fault) -> bool {
        let mut state = self.state.lock().unwrap();
        let Some(links) = state.active.remove(&index) else { return false };
        for link in links {
            if let Some(count) = state.clogs.get_mut(&link) {
                *count -= 1;
                if *count == 0 {
                    state.clogs.remove(&link);
                    self.cluster.unclog_link_nodes(link.0, link.1);
                }
            }
        }
        fault.heal(self, &mut state);
        true
    }

    /// Ends every fault at once: links unclogged, paused stores resumed, crashed
    /// stores restarted, disks back to normal, transport faults off.
    pub fn heal_all(&self) {
        let mut state = self.state.lock().unwrap();
        for (a, b) in std::mem::take(&mut state.clogs).into_keys() {
            self.cluster.unclog_link_nodes(a, b);
        }
        state.active.clear();
        for store in std::mem::take(&mut state.paused) {
            if !state.down.contains(&store) {
                self.cluster.resume(store);
            }
        }
        for store in std::mem::take(&mut state.down) {
            self.cluster.restart(store);
        }
        if std::mem::take(&mut state.pd_down) {
            self.cluster.restart_pd(self.cluster.pd.clock_offset_ms.load(std::sync::atomic::Ordering::Relaxed));
        }
        for store in std::mem::take(&mut state.slow).into_keys() {
            disk::set(self, store, self.baseline_io.clone());
        }
        network::heal(&self.cluster);
        self.restore_clocks();
    }

    /// Every store's clock back at the rate the run drew for it.
    pub(super) fn restore_clocks(&self) {
        for (i, slot) in self.cluster.stores.values().enumerate() {
            slot.clock.set_rate(self.clock_rates.get(i).copied().unwrap_or(1.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chaos() -> Scenario {
        Scenario::parse(
            "chaos.toml",
            "[cluster]\nstores = [3, 5]\n[nemesis]\npartition_halves = 1\nisolate_store = 1\nisolate_leader = 1\nasymmetric = 1\nbridge = 1\nclog_link = 1\ncrash_restart = 1\npause = 1\nslow_disk = 1\nslow_snapshot_io = 1\npd_crash_restart = 1\nisolate_pd = 1\nmembership_churn = 1\nleader_transfer = 1\nremove_readd = 1\ncorrupt_value = 1\nlatent_read_error = 1\nfail_sync = 1\nraft_loss = [0.0, 0.1]\n",
        )
        .unwrap()
    }

    #[test]
    fn same_seed_same_plan_and_plans_round_trip() {
        let a = Plan::draw(&chaos(), 42);
        assert_eq!(a, Plan::draw(&chaos(), 42));
        assert_ne!(a, Plan::draw(&chaos(), 43));
        assert!(!a.faults.is_empty());
        assert_eq!(Plan::from_toml("p.toml", &a.to_toml()).unwrap(), a);
    }

    #[test]
    fn faults_stay_inside_the_safety_phase_and_the_cluster() {
        for seed in 0..200 {
            let plan = Plan::draw(&chaos(), seed);
            for f in &plan.faults {
                assert!(f.at_ms + f.duration_ms <= 20_000);
                match &f.fault {
                    Fault::ClogLink(ClogLink { from, to }) | Fault::MovePeer(MovePeer { from, to, .. }) => assert_ne!(from, to),
                    Fault::Asymmetric(Asymmetric { from, to }) => {
                        assert!(!from.is_empty() && !to.is_empty() && from.iter().all(|s| !to.contains(s)), "{f:?}")
                    }
                    _ => {}
                }
                let stores = f.fault.stores();
                assert!(stores.iter().all(|s| (1..=plan.swarm.stores).contains(s)), "{f:?}");
            }
        }
    }

    #[test]
    fn a_bad_plan_file_names_the_line() {
        let mut text = Plan::draw(&chaos(), 1).to_toml();
        text.push_str("\n[[faults]]\nat_ms = 5\nduration_ms = 1\nkind = \"meteor-strike\"\n");
        let e = Plan::from_toml("plan.toml", &text).unwrap_err();
        assert!(e.line.is_some() && e.message.contains("meteor-strike"), "{e}");
    }

    #[test]
    fn a_fault_with_a_field_its_kind_lacks_is_refused_by_name() {
        let mut text = Plan::draw(&chaos(), 1).to_toml();
        text.push_str("\n[[faults]]\nat_ms = 5\nduration_ms = 1\nkind = \"clog-link\"\nfrom = 1\nto = 2\nspeed = 3\n");
        let e = Plan::from_toml("plan.toml", &text).unwrap_err();
        assert!(e.line.is_some() && e.message.contains("speed"), "{e}");
        // Every kind a plan can draw reads back as itself, `isolate-pd` (no
        // fields) among them.
        let isolate_pd = "[[faults]]\nat_ms = 5\nduration_ms = 1\nkind = \"isolate-pd\"\n";
        let text = format!("{}\n{isolate_pd}", Plan::draw(&chaos(), 1).to_toml());
        let plan = Plan::from_toml("plan.toml", &text).unwrap();
        assert_eq!(plan.faults.last().unwrap().fault, Fault::IsolatePd(IsolatePd {}));
    }
}
