//! PD moves a region's replica from one store to another (add a learner,
//! promote it, remove the old voter), step by step like its own operators.

use super::*;
use simkv::proto::pd::OperatorRequest;

/// The region at `region_index` moves its replica on `from` (or the next
/// store that has one) to `to` (or the next that has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovePeer {
    pub region_index: u64,
    pub from: u64,
    pub to: u64,
}

impl Kind for MovePeer {
    fn weight(weights: &Weights) -> u32 {
        weights.membership_churn
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        let (from, to) = d.two_stores(on.stores);
        MovePeer { region_index: d.below(on.churned_regions), from, to }
    }

    fn stores(&self) -> Vec<u64> {
        vec![self.from, self.to]
    }

    fn start(&self, n: &Nemesis, _: &mut FaultState) -> (Vec<Link>, String) {
        let what = membership::ask(n, self.region_index, |region, holding| {
            match (holding(self.from, true), holding(self.to, false)) {
                (Some(from_store), Some(to_store)) => Ok(OperatorRequest::MovePeer { from_store, to_store }),
                _ => Err(format!("move a replica of region {}: every store holds one", region.id)),
            }
        });
        (vec![], what)
    }
}
