//! The store's link to PD: heartbeats, split ids, split reports, and the
//! operator steps PD answers region heartbeats with.
//!
//! The store loop never waits for PD. It hands [`PdTask`]s to this worker, which
//! calls PD in tasks of its own and feeds what comes back (ids for a split) into
//! the store's mailbox. A PD that is down or cut off costs only retries here:
//! the regions keep serving, and a split simply waits for the next check.

use super::router::StoreMsg;
use crate::meta::{Peer, Region, RegionEpoch, RegionId, StoreId};
use crate::pd_client::{PdClient, PdClientError};
use crate::proto::pd::{PdError, RegionCommand, RegionHeartbeat, StoreStats};
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};

#[derive(Debug, Clone)]
pub enum PdTask {
    /// The leader of `region` wants to split it at `split_key`.
    AskSplit {
        region: Region,
        split_key: Vec<u8>,
    },
    /// A split applied on the leader: the regions it left.
    ReportSplit {
        regions: Vec<Region>,
    },
    RegionHeartbeat(RegionHeartbeat),
    StoreHeartbeat(StoreStats),
    /// Where does `store` listen? (a store that joined after this one started)
    ResolveStore {
        store: StoreId,
    },
    /// A peer heard nothing for long: ask PD whether it was removed.
    CheckStalePeer {
        peer: Peer,
        region_id: RegionId,
        epoch: RegionEpoch,
    },
}

/// Asks PD for the region: if its configuration is newer than `epoch` and
/// no longer holds `peer`, the peer was removed while it could not hear of
/// it, and the store destroys it. Configurations follow one log, so a newer
/// one without the peer means it was removed.
async fn removed_while_away(pd: &PdClient, store: &mut mpsc::Sender<StoreMsg>, peer: Peer, region_id: RegionId, epoch: RegionEpoch) {
    if let Ok((region, _)) = pd.region_by_id(region_id).await {
        if region.peer(peer.id).is_none() && region.epoch.conf_ver > epoch.conf_ver {
            let _ = store.send(StoreMsg::Tombstone { region_id, peer_id: peer.id, epoch: region.epoch }).await;
        }
    }
}

/// Starts the worker; returns where to send it tasks.
pub fn start(store_id: StoreId, pd: PdClient, store: mpsc::Sender<StoreMsg>) -> mpsc::UnboundedSender<PdTask> {
    let (tx, mut rx) = mpsc::unbounded::<PdTask>();
    madsim::task::spawn(async move {
        while let Some(task) = rx.next().await {
            let (pd, mut store) = (pd.clone(), store.clone());
            madsim::task::spawn(async move {
                match task {
                    PdTask::AskSplit { region, split_key } => match pd.ask_split(region.clone(), 1).await {
                        Ok(ids) => {
                            let msg = StoreMsg::SplitIds { region_id: region.id, epoch: region.epoch, split_keys: vec![split_key], ids };
                            let _ = store.send(msg).await;
                        }
                        Err(e) => tracing::debug!(store = store_id, region = region.id, error = %e, "ask split failed"),
                    },
                    PdTask::ReportSplit { regions } => {
                        if crate::buggify::fires(crate::buggify::Site::LateRegionReport) {
                            crate::buggify::delay_ms(1000, 4000).await;
                        }
                        if let Err(e) = pd.report_split(regions).await {
                            tracing::debug!(store = store_id, error = %e, "report split failed");
                        }
                    }
                    PdTask::RegionHeartbeat(hb) => {
                        let (region_id, leader, epoch) = (hb.region.id, hb.leader, hb.region.epoch);
                        if crate::buggify::fires(crate::buggify::Site::LateRegionReport) {
                            // Newer heartbeats of the region overtake this one.
                            crate::buggify::delay_ms(1000, 4000).await;
                        }
                        match pd.region_heartbeat(hb).await {
                            Ok(Some(RegionCommand::ChangePeer { epoch, changes })) => {
                                let _ = store.send(StoreMsg::ChangePeer { region_id, epoch, changes, callback: None }).await;
                            }
                            Ok(Some(RegionCommand::TransferLeader { to_store })) => {
                                let _ = store.send(StoreMsg::TransferLeader { region_id, to_store }).await;
                            }
                            Ok(None) => {}
                            Err(PdClientError::Pd(PdError::StaleRegion { message, .. })) => {
                                // PD knows a newer configuration. A leader that
                                // hibernated while cut off hears from no peer
                                // (the others moved on without it): PD's answer
                                // is the only news it gets of its removal.
                                tracing::debug!(store = store_id, region = region_id, %message, "region heartbeat refused as stale: asking PD whether this peer was removed");
                                removed_while_away(&pd, &mut store, leader, region_id, epoch).await;
                            }
                            Err(e) => tracing::debug!(store = store_id, error = %e, "region heartbeat failed"),
                        }
                    }
                    PdTask::ResolveStore { store: target } => {
                        if let Ok(addr) = pd.store_addr(target).await {
                            let _ = store.send(StoreMsg::StoreAddress { store: target, addr }).await;
                        }
                    }
                    PdTask::CheckStalePeer { peer, region_id, epoch } => removed_while_away(&pd, &mut store, peer, region_id, epoch).await,
                    PdTask::StoreHeartbeat(stats) => {
                        if let Err(e) = pd.store_heartbeat(store_id, stats).await {
                            tracing::debug!(store = store_id, error = %e, "store heartbeat failed");
                        }
                    }
                }
            });
        }
    });
    tx
}
