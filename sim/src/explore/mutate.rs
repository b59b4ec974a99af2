//! New plans from old ones: what guided exploration tries next.
//!
//! A child is its parent with one to three mutations stacked, each drawn from
//! the explorer's own stream: add a fault (a kind the scenario weighs, at a
//! random time), drop one, shift one in time, lengthen or shorten one,
//! retarget one (the same kind, redrawn: other stores, another region or its
//! leader), splice (the parent's faults before a moment, another corpus
//! plan's after it), flip a buggify site (when the scenario asks for
//! buggify: among its sites, or all of them), draw another simulator seed
//! (every message, client and timer draw changes; the faults stay), or draw
//! the client count or key count again within the scenario's ranges.
//! Everything stays inside what the scenario allows, so a child is a plan
//! the scenario could have drawn.

use crate::nemesis::{FaultEvent, FaultKind, Plan};
use crate::scenario::Scenario;
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

/// The mutations, for the log and the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mutation {
    AddFault,
    DropFault,
    ShiftFault,
    LengthenFault,
    ShortenFault,
    RetargetFault,
    Splice,
    FlipBuggify,
    NewSeed,
    Swarm,
    Clients,
    Keys,
}

impl Mutation {
    const ALL: [Mutation; 12] = [
        Mutation::AddFault,
        Mutation::DropFault,
        Mutation::ShiftFault,
        Mutation::LengthenFault,
        Mutation::ShortenFault,
        Mutation::RetargetFault,
        Mutation::Splice,
        Mutation::FlipBuggify,
        Mutation::NewSeed,
        Mutation::Swarm,
        Mutation::Clients,
        Mutation::Keys,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mutation::AddFault => "add a fault",
            Mutation::DropFault => "drop a fault",
            Mutation::ShiftFault => "shift a fault",
            Mutation::LengthenFault => "lengthen a fault",
            Mutation::ShortenFault => "shorten a fault",
            Mutation::RetargetFault => "retarget a fault",
            Mutation::Splice => "splice",
            Mutation::FlipBuggify => "flip a buggify site",
            Mutation::NewSeed => "new simulator seed",
            Mutation::Swarm => "redraw the swarm",
            Mutation::Clients => "client count",
            Mutation::Keys => "key count",
        }
    }
}

fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    if n <= 1 {
        0
    } else {
        rng.next_u64() % n
    }
}

fn between(rng: &mut ChaCha8Rng, (a, b): (u64, u64)) -> u64 {
    a + below(rng, b.saturating_sub(a) + 1)
}

/// The fault kinds the scenario asks for, with their weights.
fn kinds(scenario: &Scenario) -> Vec<(u64, FaultKind)> {
    FaultKind::ALL.iter().map(|&k| (k.weight(&scenario.nemesis) as u64, k)).filter(|(w, _)| *w > 0).collect()
}

fn safety_ms(scenario: &Scenario, plan: &Plan) -> u64 {
    plan.safety_secs.unwrap_or(scenario.phases.safety_secs).max(1) * 1000
}

/// Whether `m` can change `plan` at all.
fn applies(m: Mutation, scenario: &Scenario, plan: &Plan, other: Option<&Plan>) -> bool {
    let has_faults = !plan.faults.is_empty();
    let (c, k) = (scenario.workload.clients.bounds(), scenario.workload.keys.bounds());
    match m {
        Mutation::AddFault => !kinds(scenario).is_empty(),
        Mutation::DropFault | Mutation::ShiftFault | Mutation::LengthenFault | Mutation::ShortenFault | Mutation::RetargetFault => has_faults,
        Mutation::Splice => other.is_some_and(|o| o != plan && !(o.faults.is_empty() && plan.faults.is_empty())),
        Mutation::FlipBuggify => scenario.nemesis.buggify,
        Mutation::NewSeed | Mutation::Swarm => true,
        Mutation::Clients => c.0 < c.1,
        Mutation::Keys => k.0 < k.1,
    }
}

/// A child of `parent` (with `other`, a second corpus plan, for a splice),
/// and the mutations that made it.
pub fn child(scenario: &Scenario, parent: &Plan, other: Option<&Plan>, rng: &mut ChaCha8Rng) -> (Plan, Vec<Mutation>) {
    let mut plan = parent.clone();
    let mut done = Vec::new();
    let stacked = 1 + below(rng, 3);
    for _ in 0..stacked {
        let usable: Vec<Mutation> = Mutation::ALL.into_iter().filter(|&m| applies(m, scenario, &plan, other)).collect();
        let m = usable[below(rng, usable.len() as u64) as usize];
        apply(m, scenario, &mut plan, other, rng);
        done.push(m);
    }
    // Half the children also run under another simulator seed: a child that
    // keeps its parent's seed replays the parent's run up to its first
    // change, which finds little that is new.
    if !done.contains(&Mutation::NewSeed) && below(rng, 2) == 0 {
        apply(Mutation::NewSeed, scenario, &mut plan, other, rng);
        done.push(Mutation::NewSeed);
    }
    plan.faults.sort_by_key(|f| f.at_ms);
    (plan, done)
}

fn apply(m: Mutation, scenario: &Scenario, plan: &mut Plan, other: Option<&Plan>, rng: &mut ChaCha8Rng) {
    let safety = safety_ms(scenario, plan);
    let n = &scenario.nemesis;
    let pick = |rng: &mut ChaCha8Rng, plan: &Plan| below(rng, plan.faults.len() as u64) as usize;
    match m {
        Mutation::AddFault => {
            let weighted = kinds(scenario);
            let total: u64 = weighted.iter().map(|(w, _)| w).sum();
            let mut x = below(rng, total);
            let kind = weighted.iter().find(|(w, _)| {
                let hit = x < *w;
                x = x.saturating_sub(*w);
                hit
            });
            let kind = kind.map_or(weighted[0].1, |k| k.1);
            let at_ms = below(rng, safety);
            let duration_ms = between(rng, n.duration_ms.bounds()).min(safety - at_ms).max(1);
            let fault = plan.draw_fault(kind, rng.next_u64());
            plan.faults.push(FaultEvent { at_ms, duration_ms, fault });
        }
        Mutation::DropFault => {
            let i = pick(rng, plan);
            plan.faults.remove(i);
        }
        Mutation::ShiftFault => {
            let i = pick(rng, plan);
            let f = &mut plan.faults[i];
            let shift = below(rng, 6001) as i64 - 3000;
            f.at_ms = (f.at_ms as i64 + shift).clamp(0, safety as i64 - 1) as u64;
            f.duration_ms = f.duration_ms.min(safety - f.at_ms).max(1);
        }
        Mutation::LengthenFault => {
            let i = pick(rng, plan);
            let f = &mut plan.faults[i];
            f.duration_ms = (f.duration_ms * 2).min(safety - f.at_ms).max(1);
        }
        Mutation::ShortenFault => {
            let i = pick(rng, plan);
            let f = &mut plan.faults[i];
            f.duration_ms = (f.duration_ms / 2).max(1);
        }
        Mutation::RetargetFault => {
            let i = pick(rng, plan);
            let kind = plan.faults[i].fault.kind();
            let seed = rng.next_u64();
            plan.faults[i].fault = plan.draw_fault(kind, seed);
        }
        Mutation::Splice => {
            let Some(other) = other else { return };
            let cut = below(rng, safety);
            let stores = plan.swarm.stores;
            plan.faults.retain(|f| f.at_ms < cut);
            plan.faults.extend(other.faults.iter().filter(|f| f.at_ms >= cut && f.fault.stores().iter().all(|s| *s <= stores)).cloned());
            plan.one_damaged_store();
        }
        Mutation::FlipBuggify => {
            let sites: Vec<simkv::buggify::Site> = if n.buggify_sites.is_empty() { simkv::buggify::ALL.to_vec() } else { n.buggify_sites.clone() };
            let site = sites[below(rng, sites.len() as u64) as usize];
            if plan.buggify.contains(&site) {
                plan.buggify.retain(|s| *s != site);
            } else {
                plan.buggify.push(site);
                // In the order the store lists its sites, as a drawn plan has them.
                plan.buggify.sort_by_key(|s| simkv::buggify::ALL.iter().position(|x| x == s));
            }
        }
        Mutation::NewSeed => plan.seed = below(rng, 1_000_000_000),
        Mutation::Swarm => {
            // Another seed's swarm: transport loss and delay, think times,
            // the read and compare-and-set mix, disk slowdown, clocks. The
            // store and region counts stay (the faults name stores).
            let drawn = Plan::draw(scenario, below(rng, 1_000_000_000)).swarm;
            let keep = (plan.swarm.stores, plan.swarm.regions, plan.swarm.clock_rates.len());
            let mut swarm = drawn.clone();
            (swarm.stores, swarm.regions) = (keep.0, keep.1);
            if drawn.clock_rates.len() != keep.2 {
                // One rate per store and PD: the drawn ones, cycled to fit.
                swarm.clock_rates = (0..keep.2).map(|i| drawn.clock_rates.get(i % drawn.clock_rates.len().max(1)).copied().unwrap_or(1.0)).collect();
            }
            plan.swarm = swarm;
        }
        Mutation::Clients => plan.swarm.clients = between(rng, scenario.workload.clients.bounds()),
        Mutation::Keys => plan.swarm.keys = between(rng, scenario.workload.keys.bounds()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn children_stay_inside_the_scenario() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/chaos.toml");
        let scenario = Scenario::load(std::path::Path::new(path)).expect("chaos loads");
        let (a, b) = (Plan::draw(&scenario, 1), Plan::draw(&scenario, 2));
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let safety = scenario.phases.safety_secs * 1000;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let (child, done) = child(&scenario, &a, Some(&b), &mut rng);
            seen.extend(done);
            for f in &child.faults {
                assert!(f.at_ms < safety && f.at_ms + f.duration_ms <= safety.max(f.at_ms + 1), "{f:?}");
                assert!(f.fault.stores().iter().all(|s| (1..=child.swarm.stores).contains(s)), "{f:?}");
                assert!(f.fault.kind().weight(&scenario.nemesis) > 0, "{f:?}");
            }
            let damaged: std::collections::BTreeSet<u64> = child.faults.iter().filter_map(|f| f.fault.damaged_store()).collect();
            assert!(damaged.len() <= 1, "two damaged disks: {damaged:?}");
            let (c, k) = (scenario.workload.clients.bounds(), scenario.workload.keys.bounds());
            assert!((c.0..=c.1).contains(&child.swarm.clients) && (k.0..=k.1).contains(&child.swarm.keys));
            assert!(child.faults.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
            assert_eq!((child.swarm.stores, child.swarm.regions), (a.swarm.stores, a.swarm.regions));
            assert_eq!(child.swarm.clock_rates.len(), a.swarm.clock_rates.len());
        }
        // Every mutation chaos allows was tried.
        for m in Mutation::ALL {
            if applies(m, &scenario, &a, Some(&b)) {
                assert!(seen.contains(&m), "{m:?} never drawn");
            }
        }
    }

    #[test]
    fn the_same_stream_makes_the_same_children() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/chaos.toml");
        let scenario = Scenario::load(std::path::Path::new(path)).expect("chaos loads");
        let (a, b) = (Plan::draw(&scenario, 3), Plan::draw(&scenario, 4));
        let make = || {
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            (0..50).map(|_| child(&scenario, &a, Some(&b), &mut rng).0).collect::<Vec<_>>()
        };
        assert_eq!(make(), make());
    }
}
