//! A region's leader gets the slowest clock the run allows, every other
//! store the fastest, and the leader is cut off from them: the widest gap
//! between a leader's lease and its followers' election timeouts.

use super::*;

/// The leader of the region at `region_index` (when the fault starts) runs
/// slow and is cut off from the other stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowLeaderCutOff {
    pub region_index: u64,
}

impl Kind for SlowLeaderCutOff {
    fn weight(weights: &Weights) -> u32 {
        weights.slow_leader_cut_off
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        SlowLeaderCutOff { region_index: d.below(on.regions) }
    }

    fn stores(&self) -> Vec<u64> {
        vec![]
    }

    fn start(&self, n: &Nemesis, _: &mut FaultState) -> (Vec<Link>, String) {
        let (region, leader) = partition::region_and_leader(n, self.region_index);
        let Some(leader) = leader else {
            return (vec![], format!("slow the clock of region {}'s leader: none known", region.id));
        };
        let x = n.clock_rates.iter().map(|r| (r - 1.0).abs()).fold(0.0, f64::max);
        for slot in n.cluster.stores.values() {
            slot.clock.set_rate(if slot.id == leader { 1.0 - x } else { 1.0 + x });
        }
        (
            between(&n.nodes(&[leader]), &n.nodes(&partition::others(n, leader))),
            format!("store {leader}, leader of region {}, clock slow by {x:.3}, others fast, cut off from the other stores", region.id),
        )
    }

    fn heal(&self, n: &Nemesis, _: &mut FaultState) {
        n.restore_clocks();
    }
}
