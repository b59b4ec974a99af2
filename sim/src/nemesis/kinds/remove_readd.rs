//! PD removes a region's replica from a store, then adds one back there
//! under a new peer id: the old peer's messages and state must not be
//! mistaken for the new one's.

use super::*;
use simkv::proto::pd::OperatorRequest;

/// The region at `region_index` loses its replica on `store` (or the next
/// store that holds one) and gets a new one there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveReAdd {
    pub region_index: u64,
    pub store: u64,
}

impl Kind for RemoveReAdd {
    fn weight(weights: &Weights) -> u32 {
        weights.remove_readd
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        RemoveReAdd { region_index: d.below(on.churned_regions), store: d.store(on.stores) }
    }

    fn stores(&self) -> Vec<u64> {
        vec![self.store]
    }

    fn start(&self, n: &Nemesis, _: &mut FaultState) -> (Vec<Link>, String) {
        let what = membership::ask(n, self.region_index, |_, holding| {
            Ok(OperatorRequest::RemoveReAdd { store: holding(self.store, true).unwrap_or(self.store) })
        });
        (vec![], what)
    }
}
