//! Two sides that talk only through one bridge store, which both reach.

use super::*;

/// `left` and `right` cannot talk; both still reach `bridge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bridge {
    pub left: Vec<u64>,
    pub bridge: u64,
    pub right: Vec<u64>,
}

impl Kind for Bridge {
    fn weight(weights: &Weights) -> u32 {
        weights.bridge
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        let all = d.shuffled(on.stores);
        let bridge = all[0];
        let split = 1 + (on.stores as usize - 1) / 2;
        let (mut left, mut right) = (all[1..split].to_vec(), all[split..].to_vec());
        left.sort();
        right.sort();
        Bridge { left, bridge, right }
    }

    fn stores(&self) -> Vec<u64> {
        [self.left.clone(), vec![self.bridge], self.right.clone()].concat()
    }

    fn start(&self, n: &Nemesis, _: &mut FaultState) -> (Vec<Link>, String) {
        let Bridge { left, bridge, right } = self;
        (between(&n.nodes(left), &n.nodes(right)), format!("bridge: {left:?} and {right:?} meet only through store {bridge}"))
    }
}
