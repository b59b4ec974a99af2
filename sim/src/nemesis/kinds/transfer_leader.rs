//! PD hands a region's leadership to another of its voters.

use super::*;
use simkv::proto::pd::OperatorRequest;

/// The region at `region_index` hands leadership to its voter on `to` (or
/// the next store that holds one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferLeader {
    pub region_index: u64,
    pub to: u64,
}

impl Kind for TransferLeader {
    fn weight(weights: &Weights) -> u32 {
        weights.leader_transfer
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        TransferLeader { region_index: d.below(on.churned_regions), to: d.store(on.stores) }
    }

    fn stores(&self) -> Vec<u64> {
        vec![self.to]
    }

    fn start(&self, n: &Nemesis, _: &mut FaultState) -> (Vec<Link>, String) {
        let what = membership::ask(n, self.region_index, |_, holding| {
            Ok(OperatorRequest::TransferLeader { to_store: holding(self.to, true).unwrap_or(self.to) })
        });
        (vec![], what)
    }
}
