//! PD cut off from every store and client: no timestamps, routes,
//! heartbeats or operators until the fault ends.

use super::*;

/// PD is cut off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsolatePd {}

impl Kind for IsolatePd {
    fn weight(weights: &Weights) -> u32 {
        weights.isolate_pd
    }

    fn draw(_: &mut Draw, _: &mut Target) -> Self {
        IsolatePd {}
    }

    fn stores(&self) -> Vec<u64> {
        vec![]
    }

    fn start(&self, n: &Nemesis, _: &mut FaultState) -> (Vec<Link>, String) {
        let mut others = n.nodes(&n.store_ids());
        others.extend(n.client_nodes());
        (between(&[n.pd_node()], &others), "isolate pd".to_string())
    }
}
