//! The cluster a scenario and a plan ask for, and the state the run's tasks
//! share.

use crate::cluster::{Cluster, ClusterSpec, NodeId, TimedEvent};
use crate::nemesis::{Nemesis, Plan};
use crate::scenario::Scenario;
use crate::workload::{Recorded, Shared};
use madsim::time::Instant;
use simkv::engine::IoProfile;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// The cluster of `scenario` with the swarm parameters and planted bugs of
/// `plan`, reporting into what the run records.
pub(super) fn cluster_spec(
    scenario: &Scenario,
    plan: &Plan,
    recorded: &Recorded,
    events: Arc<Mutex<Vec<TimedEvent>>>,
    nodes: Arc<Mutex<BTreeMap<NodeId, String>>>,
) -> ClusterSpec {
    let swarm = &plan.swarm;
    let mut spec = ClusterSpec::new(swarm.stores as usize, swarm.regions as usize);
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
    // (A real run without the `planted-bugs` feature refuses planted bugs
    // before it starts: `Plan::sim_only`.)
    #[cfg(any(madsim, feature = "planted-bugs"))]
    {
        spec.bugs = plan.bugs.iter().copied().collect();
    }
    if scenario.workload.kind.is_transactional() {
        // The workload's keys are transactional: pre-split that key space.
        spec.split_keys = spec.split_keys.iter().map(|k| simkv::codec::keys::txn_key(simkv::codec::keys::decode_raw_key(k).expect("raw split key"))).collect();
    }
    spec.io = IoProfile { slowdown: swarm.disk_slowdown.max(1), ..IoProfile::ssd() };
    spec
}

/// What the run's clients, nemesis and drivers share, for a started cluster
/// whose disks had `baseline_io` before any fault.
pub(super) fn shared(scenario: &Scenario, plan: &Plan, cluster: Arc<Cluster>, recorded: Arc<Recorded>, baseline_io: IoProfile) -> Shared {
    Shared {
        cluster: cluster.clone(),
        recorded,
        recent: Mutex::new(BTreeMap::new()),
        logs: Mutex::new(BTreeMap::new()),
        stop: AtomicBool::new(false),
        start: Instant::now(),
        nemesis: Nemesis::new(cluster, baseline_io),
        swarm: plan.swarm.clone(),
        delete_percent: scenario.workload.delete_percent,
        scan_percent: scenario.workload.scan_percent,
        scan_problems: Mutex::new(Vec::new()),
        txn: simkv::client::TxnConfig { lock_ttl_ms: scenario.workload.lock_ttl_ms, ..Default::default() },
        request_timeout: std::time::Duration::from_millis(scenario.workload.request_timeout_ms),
    }
}
