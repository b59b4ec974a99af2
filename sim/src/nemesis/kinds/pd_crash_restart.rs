//! PD's process dies (its unsynced writes may be lost) and restarts when the
//! fault ends, its clock set back: the timestamp oracle must still never
//! hand out a timestamp twice.

use super::*;

/// PD crashes, and comes back `clock_back_ms` behind when the fault ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdCrashRestart {
    pub clock_back_ms: u64,
}

impl Kind for PdCrashRestart {
    fn weight(weights: &Weights) -> u32 {
        weights.pd_crash_restart
    }

    fn draw(d: &mut Draw, _: &mut Target) -> Self {
        PdCrashRestart { clock_back_ms: d.below(2001) }
    }

    fn stores(&self) -> Vec<u64> {
        vec![]
    }

    fn start(&self, n: &Nemesis, state: &mut FaultState) -> (Vec<Link>, String) {
        crash::crash_pd(n, state);
        (vec![], format!("crash pd (it comes back with its clock {} ms behind)", self.clock_back_ms))
    }

    fn heal(&self, n: &Nemesis, state: &mut FaultState) {
        crash::restart_pd(n, state, self.clock_back_ms);
    }
}
