//! One store cut off from every other store and from the clients.

use super::*;

/// `store` is cut off from everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsolateStore {
    pub store: u64,
}

impl Kind for IsolateStore {
    fn weight(weights: &Weights) -> u32 {
        weights.isolate_store
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        IsolateStore { store: d.store(on.stores) }
    }

    fn stores(&self) -> Vec<u64> {
        vec![self.store]
    }

    fn start(&self, n: &Nemesis, _: &mut FaultState) -> (Vec<Link>, String) {
        (partition::isolate(n, self.store), format!("isolate store {}", self.store))
    }
}
