//! The stores split into two sides that cannot talk.

use super::*;

/// The stores in `side` cannot talk to the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionHalves {
    pub side: Vec<u64>,
}

impl Kind for PartitionHalves {
    fn weight(weights: &Weights) -> u32 {
        weights.partition_halves
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        let all = d.shuffled(on.stores);
        let mut side = all[..(1 + d.below(on.stores - 1)) as usize].to_vec();
        side.sort();
        PartitionHalves { side }
    }

    fn stores(&self) -> Vec<u64> {
        self.side.clone()
    }

    fn start(&self, n: &Nemesis, _: &mut FaultState) -> (Vec<Link>, String) {
        let rest: Vec<u64> = n.store_ids().into_iter().filter(|s| !self.side.contains(s)).collect();
        (between(&n.nodes(&self.side), &n.nodes(&rest)), format!("partition {:?} | {rest:?}", self.side))
    }
}
