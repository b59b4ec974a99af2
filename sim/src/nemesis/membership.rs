//! Membership churn: move a region's replica from one store to another,
//! remove a replica and add it back on the same store (a new peer id), and
//! hand leadership to another store. Each is asked of PD as an operator, so it
//! runs step by step like PD's own and never overlaps another change of the
//! region; whether it completes shows in the store events.

use super::{Fault, Nemesis};
use simkv::proto::pd::OperatorRequest;

/// Asks PD for the fault's operator (in the background, from the nemesis's
/// own node); returns what was asked, for the timeline.
pub(super) fn start(n: &Nemesis, fault: &Fault) -> String {
    let region_index = match *fault {
        Fault::MovePeer { region_index, .. } | Fault::TransferLeader { region_index, .. } | Fault::RemoveReAdd { region_index, .. } => region_index,
        _ => unreachable!("{fault:?} is not a membership fault"),
    };
    let regions = n.cluster.topology().regions_in_order();
    let Some(region) = regions.get(region_index as usize % regions.len().max(1)) else {
        return "membership change: no region known".into();
    };
    // The plan names stores; the region as it is now decides which fit: the
    // first store from the named one on (in id order, wrapping) that has, or
    // has not, a replica of the region.
    let stores = n.store_ids();
    let from_on = |start: u64, want: bool| {
        let at = stores.iter().position(|&s| s == start).unwrap_or(0);
        stores.iter().cycle().skip(at).take(stores.len()).copied().find(|&s| region.peer_on_store(s).is_some() == want)
    };
    let request = match *fault {
        Fault::MovePeer { from, to, .. } => match (from_on(from, true), from_on(to, false)) {
            (Some(from_store), Some(to_store)) => OperatorRequest::MovePeer { from_store, to_store },
            _ => return format!("move a replica of region {}: every store holds one", region.id),
        },
        Fault::TransferLeader { to, .. } => OperatorRequest::TransferLeader { to_store: from_on(to, true).unwrap_or(to) },
        Fault::RemoveReAdd { store, .. } => OperatorRequest::RemoveReAdd { store: from_on(store, true).unwrap_or(store) },
        _ => unreachable!(),
    };
    let (cluster, region_id, ip) = (n.cluster.clone(), region.id, n.admin_ip);
    n.admin_node.spawn(async move {
        let pd = cluster.pd_client(ip).await;
        if let Err(e) = pd.add_operator(region_id, request).await {
            tracing::info!(region = region_id, error = %e, "nemesis operator refused");
        }
    });
    match request {
        OperatorRequest::MovePeer { from_store, to_store } => format!("move region {region_id}'s replica from store {from_store} to store {to_store}"),
        OperatorRequest::TransferLeader { to_store } => format!("transfer region {region_id}'s leadership to store {to_store}"),
        OperatorRequest::RemoveReAdd { store } => format!("remove region {region_id}'s replica on store {store}, then add it back"),
    }
}
