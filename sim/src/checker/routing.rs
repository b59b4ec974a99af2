//! The region-cache rule, from what each client reports of its routing
//! ([`RoutingEvent`]s): **a client never routes a key by a region older than
//! one it has already learned for that key** — not the same region at an
//! older epoch, nor a region at a lower version than another it learned that
//! holds the key (split off it since). (A key no newer region is known for
//! may be routed by an old descriptor: the store corrects it.) The source a client asks (PD) learns from heartbeats and may
//! lag behind what a store already told the client; a request routed by the
//! older answer costs a round trip at best and, for a store that kept the old
//! layout, reaches the wrong peer.
//!
//! Checked as the run goes ([`Watch`], one per client, keeps only the newest
//! region of each id it learned and the first few broken cases), so a long
//! run does not keep every request.

use simkv::client::region_cache::RoutingEvent;
use simkv::meta::{Region, RegionId};
use std::collections::BTreeMap;

/// One client's view: the newest region of each id it learned, and what it
/// did wrong.
#[derive(Debug, Default)]
pub struct Watch {
    learned: BTreeMap<RegionId, Region>,
    pub problems: Vec<String>,
    /// Broken cases past the first few (not kept).
    pub more: usize,
}

impl Watch {
    pub fn observe(&mut self, client: u64, event: &RoutingEvent) {
        match event {
            RoutingEvent::Learned(region) => {
                if self.learned.get(&region.id).is_none_or(|known| known.epoch.is_stale_against(&region.epoch)) {
                    self.learned.insert(region.id, region.clone());
                }
            }
            RoutingEvent::Sent { region, store, key } => {
                let newer = self.learned.values().find(|r| {
                    if r.id == region.id {
                        region.epoch.is_stale_against(&r.epoch)
                    } else {
                        r.contains(key) && region.epoch.version < r.epoch.version
                    }
                });
                if let Some(newer) = newer {
                    if self.problems.len() < 3 {
                        self.problems.push(format!(
                            "a client routes by the newest region it knows: client {client} sent store {store} a request for key {} by region {} at {}, after learning region {} at {}",
                            key.escape_ascii(),
                            region.id,
                            region.epoch,
                            newer.id,
                            newer.epoch
                        ));
                    } else {
                        self.more += 1;
                    }
                }
            }
        }
    }
}

/// Checks every client's events (each in the order it happened); `None` when
/// the rule holds.
pub fn check(clients: &BTreeMap<u64, Watch>) -> Option<String> {
    let problems: Vec<&String> = clients.values().flat_map(|w| &w.problems).collect();
    if problems.is_empty() {
        return None;
    }
    let more: usize = clients.values().map(|w| w.more).sum::<usize>() + problems.len().saturating_sub(3);
    let mut text = problems.iter().take(3).map(|p| p.as_str()).collect::<Vec<_>>().join("\n");
    if more > 0 {
        text.push_str(&format!("\n... and {more} more"));
    }
    Some(text)
}

/// This checker in the registry ([`super::registry::ALL`]).
pub struct Rule;

impl super::registry::Check for Rule {
    fn name(&self) -> super::Checker {
        super::Checker::Routing
    }

    fn applies(&self, scenario: &crate::scenario::Scenario) -> bool {
        scenario.checkers.routing
    }

    fn check(&self, run: &super::registry::Inputs) -> super::registry::Verdict {
        super::registry::Verdict::of(check(&run.records.routing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simkv::meta::{Peer, RegionEpoch};

    fn region(id: RegionId, start: &str, end: &str, version: u64) -> Region {
        Region { id, start_key: start.into(), end_key: end.into(), epoch: RegionEpoch::new(1, version), peers: vec![Peer::voter(id * 10, 1)] }
    }

    fn run(events: &[RoutingEvent]) -> Option<String> {
        let mut watch = Watch::default();
        events.iter().for_each(|e| watch.observe(7, e));
        check(&BTreeMap::from([(7, watch)]))
    }

    #[test]
    fn routing_by_the_newest_region_passes_and_by_an_older_one_is_caught() {
        let sent = |r: Region| RoutingEvent::Sent { key: if r.start_key.is_empty() { b"a".to_vec() } else { r.start_key.clone() }, region: r, store: 2 };
        let whole = region(1, "", "", 1);
        let (left, right) = (region(1, "", "m", 2), region(2, "m", "", 2));
        let clean = [
            RoutingEvent::Learned(whole.clone()),
            sent(whole.clone()),
            RoutingEvent::Learned(left.clone()),
            RoutingEvent::Learned(right.clone()),
            sent(left.clone()),
            sent(right),
        ];
        assert_eq!(run(&clean), None);
        // Learned the split, then sent by the region before it.
        let text = run(&[RoutingEvent::Learned(left.clone()), sent(whole.clone())]).unwrap();
        assert_eq!(text, "a client routes by the newest region it knows: client 7 sent store 2 a request for key a by region 1 at conf_ver=1 version=1, after learning region 1 at conf_ver=1 version=2");
        // Another region, split off it since, holds the key.
        let in_new = RoutingEvent::Sent { region: region(3, "a", "z", 1), store: 2, key: b"q".to_vec() };
        let text = run(&[RoutingEvent::Learned(region(2, "m", "", 2)), in_new]).unwrap();
        assert!(text.contains("key q by region 3") && text.contains("after learning region 2"), "{text}");
        // A key no newer region is known for may go by the old descriptor.
        let outside = RoutingEvent::Sent { region: region(3, "a", "z", 1), store: 2, key: b"b".to_vec() };
        assert_eq!(run(&[RoutingEvent::Learned(region(2, "m", "", 2)), outside]), None);
        // An older region learned after a newer one changes nothing.
        assert!(run(&[RoutingEvent::Learned(left), RoutingEvent::Learned(whole.clone()), sent(whole)]).is_some());
    }
}
