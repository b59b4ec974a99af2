//! Admin requests from the testbed (tests and the nemesis) to the stores:
//! membership changes and leader transfers, sent to whichever store leads the
//! region now, following the cluster's topology and the stores' hints.

use crate::cluster::Cluster;
use madsim::time::{sleep, Duration, Instant};
use simkv::meta::{RegionId, StoreId};
use simkv::proto::{AdminReply, AdminRequest, PeerChange, RpcRequest, RpcResponse};
use simkv::rpc::RpcClient;
use std::net::SocketAddr;
use std::sync::Arc;

/// An admin client on a node of its own.
pub struct Admin {
    cluster: Arc<Cluster>,
    rpc: RpcClient,
}

/// No store did an admin request before its deadline; the last answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut(pub String);

impl Admin {
    /// Binds on `local` (an address of the calling node).
    pub async fn new(cluster: Arc<Cluster>, local: SocketAddr) -> Admin {
        let rpc = RpcClient::bind_with_faults(local, Some(cluster.net_faults.clone())).await.expect("admin client binds");
        Admin { cluster, rpc }
    }

    /// One request to one store; the answer, or what went wrong.
    pub async fn call(&self, store: StoreId, request: AdminRequest) -> Result<AdminReply, String> {
        let Some(&addr) = self.cluster.addresses.get(&store) else {
            return Err(format!("no store {store}"));
        };
        match self.rpc.call(addr, &RpcRequest::Admin(request), Duration::from_secs(3)).await {
            Ok(RpcResponse::Admin(Ok(reply))) => Ok(reply),
            Ok(RpcResponse::Admin(Err(e))) | Ok(RpcResponse::Rejected(e)) => Err(format!("{e:?}")),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The store believed to lead `region_id`, then the others holding it.
    fn candidates(&self, region_id: RegionId) -> Vec<StoreId> {
        let topology = self.cluster.topology();
        let mut stores: Vec<StoreId> = topology.regions.get(&region_id).map(|r| r.peers.iter().map(|p| p.store_id).collect()).unwrap_or_default();
        if let Some(leader) = topology.leader_of(region_id) {
            stores.retain(|&s| s != leader);
            stores.insert(0, leader);
        }
        stores
    }

    /// Makes `changes` to the region (as `build` computes them from its
    /// current descriptor), retrying at whichever store leads it until one
    /// applies them or `within` passes. `build` returning None means there is
    /// nothing left to do.
    pub async fn change_peer(
        &self,
        region_id: RegionId,
        within: Duration,
        build: impl Fn(&simkv::meta::Region) -> Option<Vec<PeerChange>>,
    ) -> Result<(), TimedOut> {
        let deadline = Instant::now() + within;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            let Some(region) = self.cluster.topology().regions.get(&region_id).cloned() else {
                return Err(TimedOut(format!("region {region_id} is not known")));
            };
            let Some(changes) = build(&region) else { return Ok(()) };
            for store in self.candidates(region_id) {
                let request = AdminRequest::ChangePeer { region_id, epoch: region.epoch, changes: changes.clone() };
                match self.call(store, request).await {
                    Ok(_) => return Ok(()),
                    Err(e) => last = format!("store {store}: {e}"),
                }
            }
            sleep(Duration::from_millis(200)).await;
        }
        Err(TimedOut(last))
    }

    /// Asks the region's leader to hand leadership to its peer on `to_store`.
    pub async fn transfer_leader(&self, region_id: RegionId, to_store: StoreId) -> Result<(), String> {
        let Some(leader) = self.cluster.leader_of(region_id) else {
            return Err(format!("region {region_id} has no known leader"));
        };
        self.call(leader, AdminRequest::TransferLeader { region_id, to_store }).await.map(|_| ())
    }
}
