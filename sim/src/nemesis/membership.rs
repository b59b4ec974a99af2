//! What the membership kinds share: asking PD for an operator on the region a
//! fault names. PD runs it step by step like its own and never overlaps
//! another change of the region; whether it completes shows in the store
//! events.

use super::Nemesis;
use simkv::meta::Region;
use simkv::proto::pd::OperatorRequest;

/// Asks PD (in the background, from the nemesis's own node) for the
/// operator `request` builds for the region at `region_index`, or says why
/// there is none; returns what was asked, for the timeline.
///
/// The plan names stores; the region as it is now decides which fit.
/// `request` gets the region and `holding(start, want)`: the first store
/// from `start` on (in id order, wrapping) that has (`want`) or has not a
/// replica of the region.
pub(super) fn ask(
    n: &Nemesis,
    region_index: u64,
    request: impl FnOnce(&Region, &dyn Fn(u64, bool) -> Option<u64>) -> Result<OperatorRequest, String>,
) -> String {
    let regions = n.cluster.topology().regions_in_order();
    let Some(region) = regions.get(region_index as usize % regions.len().max(1)) else {
        return "membership change: no region known".into();
    };
    let stores = n.store_ids();
    let holding = |start: u64, want: bool| {
        let at = stores.iter().position(|&s| s == start).unwrap_or(0);
        stores.iter().cycle().skip(at).take(stores.len()).copied().find(|&s| region.peer_on_store(s).is_some() == want)
    };
    let request = match request(region, &holding) {
        Ok(request) => request,
        Err(why) => return why,
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
