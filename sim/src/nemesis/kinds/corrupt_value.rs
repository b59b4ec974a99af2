//! One value on a store's kv disk gets a bit flipped: a checksum must catch
//! it before it reaches a client.

use super::*;

/// One value on `store` (the run's damaged disk) is corrupted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorruptValue {
    pub store: u64,
}

impl Kind for CorruptValue {
    fn weight(weights: &Weights) -> u32 {
        weights.corrupt_value
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        CorruptValue { store: on.bad_disk(d) }
    }

    fn stores(&self) -> Vec<u64> {
        vec![self.store]
    }

    fn start(&self, n: &Nemesis, _: &mut FaultState) -> (Vec<Link>, String) {
        (vec![], disk::damage(n, self.store, simkv::engine::Damage::BitFlip))
    }
}
