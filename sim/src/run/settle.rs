//! What the liveness phase waits for and checks once every fault is healed:
//! the transactional workloads settled (final reads, lock sweeps, no lock
//! left), the regions tiling the key space as PD sees them, and every
//! region's replicas identical.

use crate::checker::{convergence, locks, regions, Checker, Failure};
use crate::cluster::Cluster;
use crate::scenario::{Scenario, WorkloadKind};
use crate::workload::bank::history::{BankCall, BankOp, BankOutcome};
use crate::workload::table::history::{TableCall, TableOp, TableOutcome};
use crate::workload::{self, Shared, FINAL_PROCESS};
use madsim::time::{sleep, Duration, Instant};
use simkv::client::{ClientConfig, TxnClient};
use simkv::meta::StoreId;
use std::collections::BTreeMap;
#[cfg(madsim)]
use std::fmt::Write as _;
use std::sync::Arc;

/// Sets a transactional workload up before the clients start (and faults
/// begin): opens the bank's accounts, or creates the table.
pub(super) async fn set_up_workload(shared: &Arc<Shared>, kind: WorkloadKind) -> Option<Failure> {
    let (node, local) = shared.cluster.client_node();
    let s = shared.clone();
    let task = node.spawn(async move {
        let client = s.cluster.txn_client(local, ClientConfig::default(), s.txn.clone()).await;
        match kind {
            WorkloadKind::Bank => workload::bank::client::open_accounts(&client, s.swarm.keys.max(2)).await.map_err(|e| e.to_string()),
            WorkloadKind::Table => workload::table::client::create(&client).await.map_err(|e| e.to_string()),
            WorkloadKind::Register | WorkloadKind::Sequential | WorkloadKind::ListAppend => Ok(()),
        }
    });
    match task.await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(Failure::new(Checker::Workload, format!("the {kind:?} workload could not be set up: {e}"))),
        Err(e) => Some(Failure::new(Checker::Workload, format!("setting the {kind:?} workload up stopped: {e}"))),
    }
}

/// After healing, for transactional workloads: the final snapshot read of
/// the bank (recorded, so the bank checker sees it) or check of the table, a
/// sweep that resolves the locks the clients left, then the lock check: no
/// replica holds a lock; for the bank, garbage collection and a read after it.
pub(super) async fn settle_transactions(shared: &Arc<Shared>, scenario: &Scenario, deadline: Instant) -> Vec<Failure> {
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
            failures.extend(final_table_check(&s, &client, deadline).await);
        }
        failures.extend(sweep_locks(&s, &client, check_locks, deadline).await);
        if kind == WorkloadKind::Bank && failures.is_empty() {
            match collect_garbage(&client, deadline).await {
                Ok(()) => final_bank_read(&s, &client, deadline, &mut failures).await,
                Err(e) => failures.push(Failure::new(Checker::Liveness, format!("garbage collection did not complete within the liveness phase: {e}"))),
            }
        }
        failures
    });
    task.await.unwrap_or_else(|e| vec![Failure::new(Checker::Liveness, format!("settling transactions stopped: {e}"))])
}

/// A whole-table check after healing, recorded (as the final process) so the
/// table checker sees it.
async fn final_table_check(s: &Shared, client: &TxnClient, deadline: Instant) -> Option<Failure> {
    let people = workload::table::client::schema();
    loop {
        let invoke = workload::now_ns();
        match workload::table::client::run_check(client, &people).await {
            (outcome @ TableOutcome::Checked { .. }, start_ts) => {
                let complete = Some(workload::now_ns());
                s.record_table(TableOp { process: FINAL_PROCESS, call: TableCall::Check, outcome, invoke, complete, start_ts, commit_ts: None });
                return None;
            }
            _ if Instant::now() < deadline => sleep(Duration::from_millis(200)).await,
            other => {
                let why = format!("the final check of the table did not complete within the liveness phase: {other:?}");
                return Some(Failure::new(Checker::Liveness, why));
            }
        }
    }
}

/// Sweeps settle every transaction the clients left (a second sweep catches a
/// late prewrite that landed behind the first); then, with `check_locks`, no
/// replica may hold a lock.
async fn sweep_locks(s: &Shared, client: &TxnClient, check_locks: bool, deadline: Instant) -> Option<Failure> {
    loop {
        let swept = async {
            let now = client.timestamp().await?;
            client.resolve_locks_in(now).await
        };
        let swept = swept.await;
        let left = if check_locks { locks::held(&lock_cfs(&s.cluster).await) } else { vec![] };
        if swept.is_ok() && left.is_empty() {
            return None;
        }
        if Instant::now() >= deadline {
            return Some(match swept {
                Err(e) => Failure::new(Checker::Liveness, format!("the lock sweep did not complete within the liveness phase: {e}")),
                Ok(_) => Failure::new(Checker::Locks, locks::explain(&left)),
            });
        }
        sleep(Duration::from_millis(300)).await;
    }
}

/// Garbage collection at the present keeps what a read now sees (the bank is
/// read again after it). Retried until the liveness phase ends, as the sweeps
/// are: a region may be between leaders (a transfer the nemesis asked for just
/// before healing) for longer than one call's attempts.
async fn collect_garbage(client: &TxnClient, deadline: Instant) -> Result<(), simkv::client::TxnError> {
    loop {
        let attempt = async {
            let now = client.timestamp().await?;
            client.gc(now).await
        };
        match attempt.await {
            Err(_) if Instant::now() < deadline => sleep(Duration::from_millis(200)).await,
            done => return done.map(|_| ()),
        }
    }
}

/// A snapshot read of the whole bank after healing, recorded (as the final
/// process) so the bank checker sees it.
async fn final_bank_read(s: &Shared, client: &TxnClient, deadline: Instant, failures: &mut Vec<Failure>) {
    let accounts = s.swarm.keys.max(2);
    loop {
        let invoke = workload::now_ns();
        match workload::bank::client::read_all(client, accounts).await {
            (start_ts, Ok(balances)) => {
                let outcome = BankOutcome::Read(balances);
                s.record_bank(BankOp {
                    process: FINAL_PROCESS,
                    call: BankCall::Read,
                    outcome,
                    invoke,
                    complete: Some(workload::now_ns()),
                    start_ts,
                    commit_ts: None,
                });
                return;
            }
            (_, Err(_)) if Instant::now() < deadline => sleep(Duration::from_millis(200)).await,
            (_, Err(e)) => {
                let why = format!("the final read of the bank did not complete within the liveness phase: {e}");
                failures.push(Failure::new(Checker::Liveness, why));
                return;
            }
        }
    }
}

/// Every replica's lock CF, for the lock checker.
async fn lock_cfs(cluster: &Cluster) -> Vec<locks::Replica> {
    let mut out = Vec::new();
    for region in cluster.topology().regions_in_order() {
        for peer in &region.peers {
            let data = cluster.region_data(peer.store_id, &region).await;
            let locks = data.into_iter().filter(|(cf, _)| *cf == simkv::engine::Cf::Lock).map(|(_, pair)| pair).collect();
            out.push(locks::Replica { store_id: peer.store_id, region_id: region.id, locks });
        }
    }
    out
}

/// Waits until the regions the stores applied tile the key space, each fully
/// replicated and none overlapping on a store, and PD's table agrees (it learns
/// from heartbeats, so it may lag), or the deadline.
/// With `spread`, also until every store holds (and, with enough regions,
/// leads) some region.
pub(super) async fn settle_regions(cluster: &Arc<Cluster>, deadline: Instant, replicas: usize, spread: bool) -> Option<Failure> {
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
                return Some(Failure::new(Checker::Regions, format!("after healing: {problem}")));
            }
            sleep(Duration::from_millis(500)).await;
        }
    });
    task.await.unwrap_or_else(|e| Some(Failure::new(Checker::Regions, format!("the region check stopped: {e}"))))
}

/// Waits until every region's replicas hold identical data, or the deadline.
pub(super) async fn converge(cluster: &Cluster, deadline: Instant) -> Option<Failure> {
    loop {
        let applied = last_applied(cluster);
        let mut regions: Vec<convergence::RegionCopies> = Vec::new();
        for region in cluster.topology().regions_in_order() {
            let mut copies = Vec::new();
            for p in &region.peers {
                copies.push((p.store_id, cluster.region_data(p.store_id, &region).await, applied.get(&(p.store_id, region.id)).copied()));
            }
            regions.push(convergence::RegionCopies { region_id: region.id, copies });
        }
        let difference = convergence::check(&regions)?;
        if Instant::now() >= deadline {
            let explanation = format!("the cluster did not converge after healing: {difference}{}", damaged_values(cluster));
            return Some(Failure::new(Checker::Convergence, explanation));
        }
        sleep(Duration::from_millis(500)).await;
    }
}

/// The damaged values the simulated disks still hold (three per store), a
/// line each: what a failure to converge may come from.
#[cfg(madsim)]
fn damaged_values(cluster: &Cluster) -> String {
    let mut text = String::new();
    for (store, slot) in &cluster.stores {
        for (cf, key, damage) in slot.kv_disk.damaged().into_iter().take(3) {
            let _ = write!(text, "\nstore {store} still holds a damaged value ({damage:?}) in the {} CF at {key:?}: never found, or never repaired", cf.name());
        }
    }
    text
}

/// Real processes' disks are never damaged by the testbed.
#[cfg(not(madsim))]
fn damaged_values(_: &Cluster) -> String {
    String::new()
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
