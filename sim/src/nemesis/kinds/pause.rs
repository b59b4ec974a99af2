//! A store's process stops running (its timers and messages wait) until the
//! fault ends: a long GC pause or a stopped VM.

use super::*;

/// `store` is paused until the fault ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pause {
    pub store: u64,
}

impl Kind for Pause {
    fn weight(weights: &Weights) -> u32 {
        weights.pause
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        Pause { store: d.store(on.stores) }
    }

    fn stores(&self) -> Vec<u64> {
        vec![self.store]
    }

    fn start(&self, n: &Nemesis, state: &mut FaultState) -> (Vec<Link>, String) {
        // A store that is down is not paused; its restart clears the pause.
        if state.paused.insert(self.store) && !state.down.contains(&self.store) {
            n.cluster.pause(self.store);
        }
        (vec![], format!("pause store {}", self.store))
    }

    fn heal(&self, n: &Nemesis, state: &mut FaultState) {
        if state.paused.remove(&self.store) && !state.down.contains(&self.store) {
            n.cluster.resume(self.store);
        }
    }
}
