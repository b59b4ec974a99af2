//! One value on a store's kv disk becomes unreadable: reading it fails
//! rather than returning something else.

use super::*;

/// One value on `store` (the run's damaged disk) cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentReadError {
    pub store: u64,
}

impl Kind for LatentReadError {
    fn weight(weights: &Weights) -> u32 {
        weights.latent_read_error
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        LatentReadError { store: on.bad_disk(d) }
    }

    fn stores(&self) -> Vec<u64> {
        vec![self.store]
    }

    fn start(&self, n: &Nemesis, _: &mut FaultState) -> (Vec<Link>, String) {
        (vec![], disk::damage(n, self.store, simkv::engine::Damage::Unreadable))
    }
}
