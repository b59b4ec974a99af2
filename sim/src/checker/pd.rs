//! The control plane's promises, from the facts PD reports ([`PdEvent`]s),
//! whoever asked and whatever they did with the answer:
//!
//! - **timestamps**: every timestamp PD hands out is above every one it
//!   handed out before, to anyone, restarts included (what the `tso` checker
//!   sees of it depends on which clients record their timestamps; this rule
//!   sees every one at the source);
//! - **ids**: no id is handed out twice, restarts included;
//! - **accepted reports never go back**: within one PD lifetime, a report PD
//!   takes into its routing table is never older than what it already took —
//!   for the same region, not a lower `version` or `conf_ver`, nor an older
//!   leader's term at the same epoch; for other regions, it never replaces a
//!   region covering the same keys at a later `version`;
//! - **routing never goes back**: every region PD answers a routing question
//!   with is, within that lifetime, no older than the newest report of it PD
//!   took, and no region PD took at a later version covers the same keys.
//!
//! A restarted PD relearns its routing table from heartbeats (it is not
//! persisted), so the two view rules start over at each [`PdEvent::Opened`];
//! the timestamp and id rules never do.

use simkv::meta::{Region, RegionId};
use simkv::pd::PdEvent;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// A PD event with the simulated time it happened at.
pub type TimedPdEvent = (Duration, PdEvent);

/// Which of the rules to apply (the tests switch one off to show what it alone
/// catches).
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub handed_out: bool,
    pub view: bool,
}

impl Rules {
    pub const ALL: Rules = Rules { handed_out: true, view: true };
}

/// Checks `events` (in the order they happened); `None` when every rule holds,
/// otherwise the first few broken rules, each with when and what.
pub fn check(events: &[TimedPdEvent]) -> Option<String> {
    check_rules(events, Rules::ALL)
}

pub fn check_rules(events: &[TimedPdEvent], rules: Rules) -> Option<String> {
    let mut problems: Vec<String> = Vec::new();
    let mut lifetime = 0;
    // The highest timestamp handed out so far, when, to whom, and in which lifetime.
    let mut top_ts: Option<(u64, Duration, String, u32)> = None;
    let mut top_id: Option<(u64, Duration)> = None;
    // This lifetime's view: each region as last taken, with its leader's term.
    let mut view: BTreeMap<RegionId, (Region, u64, Duration)> = BTreeMap::new();
    // The newest report of each region taken in this lifetime (the view drops
    // a region another replaced; this keeps how new it was).
    let mut newest: BTreeMap<RegionId, (Region, u64, Duration)> = BTreeMap::new();
    for (at, event) in events {
        let at = *at;
        match event {
            PdEvent::Opened { .. } => {
                lifetime += 1;
                view.clear();
                newest.clear();
            }
            PdEvent::TsHandedOut { last, count, to } if rules.handed_out => {
                let first = last.saturating_sub(u64::from(*count).saturating_sub(1));
                let to = to.map_or_else(|| "PD itself".to_string(), |a| a.ip().to_string());
                if let Some((top, when, whom, life)) = &top_ts {
                    if first <= *top {
                        let restart = if *life == lifetime { String::new() } else { format!(", {} restart(s) before", lifetime - life) };
                        let what = if first == *last {
                            format!("timestamp {}", ts_text(*last))
                        } else {
                            format!("timestamps {}..={}", ts_text(first), ts_text(*last))
                        };
                        problems.push(format!(
                            "timestamps only go up: at {} PD handed {to} {what}, not above {}, which it handed {whom} at {}{restart}",
                            secs(at),
                            ts_text(*top),
                            secs(*when)
                        ));
                    }
                }
                if top_ts.as_ref().is_none_or(|(top, ..)| *last > *top) {
                    top_ts = Some((*last, at, to, lifetime));
                }
            }
            PdEvent::IdsHandedOut { first, count } if rules.handed_out => {
                if let Some((top, when)) = top_id {
                    if *first <= top {
                        problems.push(format!(
                            "ids are handed out once: at {} PD handed out ids {first}..{}, and id {top} went out already at {}",
                            secs(at),
                            first + count,
                            secs(when)
                        ));
                    }
                }
                if *count > 0 && top_id.is_none_or(|(top, _)| first + count - 1 > top) {
                    top_id = Some((first + count - 1, at));
                }
            }
            PdEvent::RegionAccepted { region, term, via, .. } if rules.view => {
                if let Some((known, known_term, when)) = newest.get(&region.id) {
                    if region.epoch.is_stale_against(&known.epoch) || (region.epoch == known.epoch && term < known_term) {
                        problems.push(format!(
                            "PD's view never goes back: at {} PD took {via} of region {} at epoch {} (leader term {term}) after taking it at epoch {} (leader term {known_term}) at {}",
                            secs(at),
                            region.id,
                            region.epoch,
                            known.epoch,
                            secs(*when)
                        ));
                    }
                }
                for (other, _, when) in view.values().filter(|(r, ..)| r.id != region.id && r.overlaps(region)) {
                    if other.epoch.version > region.epoch.version {
                        problems.push(format!(
                            "PD's view never goes back: at {} PD took {via} of region {} at version {} over region {} at version {} covering the same keys (taken at {})",
                            secs(at),
                            region.id,
                            region.epoch.version,
                            other.id,
                            other.epoch.version,
                            secs(*when)
                        ));
                    }
                }
                view.retain(|_, (r, ..)| r.id == region.id || !r.overlaps(region));
                view.insert(region.id, (region.clone(), *term, at));
                let newer = newest.get(&region.id).is_none_or(|(r, t, _)| !region.epoch.is_stale_against(&r.epoch) && (region.epoch != r.epoch || term >= t));
                if newer {
                    newest.insert(region.id, (region.clone(), *term, at));
                }
            }
            PdEvent::Routed { region, to, .. } if rules.view => {
                let to = to.map_or_else(|| "PD itself".to_string(), |a| a.ip().to_string());
                if let Some((known, _, when)) = newest.get(&region.id).filter(|(k, ..)| region.epoch.is_stale_against(&k.epoch)) {
                    problems.push(format!(
                        "PD routes by what it knows: at {} PD answered {to} with region {} at epoch {}, older than the epoch {} it took at {}",
                        secs(at),
                        region.id,
                        region.epoch,
                        known.epoch,
                        secs(*when)
                    ));
                }
            }
            _ => {}
        }
    }
    if problems.is_empty() {
        return None;
    }
    let mut text = problems.iter().take(3).cloned().collect::<Vec<_>>().join("\n");
    if problems.len() > 3 {
        let _ = write!(text, "\n... and {} more", problems.len() - 3);
    }
    Some(text)
}

/// A timestamp with its parts: physical milliseconds and logical counter.
fn ts_text(ts: u64) -> String {
    let physical = simkv::pd::tso::physical(ts);
    format!("{ts} ({physical} ms + {})", ts - simkv::pd::tso::compose(physical, 0))
}

fn secs(at: Duration) -> String {
    format!("{:.3}s", at.as_secs_f64())
}

/// This checker in the registry ([`super::registry::ALL`]).
pub struct Rule;

impl super::registry::Check for Rule {
    fn name(&self) -> super::Checker {
        super::Checker::Pd
    }

    fn applies(&self, scenario: &crate::scenario::Scenario) -> bool {
        scenario.checkers.pd
    }

    fn check(&self, run: &super::registry::Inputs) -> super::registry::Verdict {
        super::registry::Verdict::of(check(&run.records.pd_events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simkv::meta::{Peer, RegionEpoch};
    use simkv::pd::ReportKind;

    fn region(id: RegionId, start: &str, end: &str, conf_ver: u64, version: u64) -> Region {
        Region { id, start_key: start.into(), end_key: end.into(), epoch: RegionEpoch::new(conf_ver, version), peers: vec![Peer::voter(id * 10, 1)] }
    }

    fn accepted(ms: u64, r: Region, term: u64) -> TimedPdEvent {
        (Duration::from_millis(ms), PdEvent::RegionAccepted { region: r, leader: None, term, via: ReportKind::Heartbeat })
    }

    fn ts(ms: u64, last: u64, count: u32) -> TimedPdEvent {
        (Duration::from_millis(ms), PdEvent::TsHandedOut { last, count, to: None })
    }

    fn opened(ms: u64) -> TimedPdEvent {
        (Duration::from_millis(ms), PdEvent::Opened { ts_floor: 0 })
    }

    #[test]
    fn a_clean_history_passes() {
        let events = vec![
            opened(0),
            ts(1, 10, 1),
            ts(2, 15, 5),
            accepted(3, region(1, "", "", 1, 1), 5),
            accepted(4, region(2, "m", "", 1, 2), 5),
            accepted(5, region(1, "", "m", 1, 2), 6),
            (Duration::from_millis(6), PdEvent::Routed { region: region(2, "m", "", 1, 2), leader: None, to: None }),
            (Duration::from_millis(7), PdEvent::IdsHandedOut { first: 1000, count: 3 }),
            opened(8),
            // A new lifetime relearns from scratch: an older report is not a regression.
            accepted(9, region(1, "", "m", 1, 1), 1),
            ts(10, 16, 1),
            (Duration::from_millis(11), PdEvent::IdsHandedOut { first: 2000, count: 1 }),
        ];
        assert_eq!(check(&events), None);
    }

    #[test]
    fn a_repeated_timestamp_is_caught_across_a_restart() {
        let events = vec![opened(0), ts(1, 10, 1), opened(2), ts(3, 10, 1)];
        let text = check(&events).unwrap();
        assert!(text.contains("timestamps only go up") && text.contains("1 restart(s) before"), "{text}");
        // A batch reaching back below what was handed out.
        let text = check(&[ts(1, 10, 1), ts(2, 12, 3)]).unwrap();
        assert!(text.contains("timestamps 10 (0 ms + 10)..=12 (0 ms + 12)"), "{text}");
    }

    #[test]
    fn an_id_handed_out_twice_is_caught() {
        let ids = |ms, first, count| (Duration::from_millis(ms), PdEvent::IdsHandedOut { first, count });
        assert!(check(&[ids(1, 1000, 10), ids(2, 1005, 1)]).unwrap().contains("ids are handed out once"));
    }

    #[test]
    fn a_stale_report_or_route_is_caught_within_a_lifetime() {
        let newer = accepted(1, region(1, "", "", 1, 2), 5);
        let text = check(&[newer.clone(), accepted(2, region(1, "", "", 1, 1), 5)]).unwrap();
        assert!(text.contains("PD's view never goes back") && text.contains("region 1 at epoch"), "{text}");
        let text = check(&[newer.clone(), accepted(2, region(1, "", "", 1, 2), 4)]).unwrap();
        assert!(text.contains("leader term 4"), "an older leader at the same epoch: {text}");
        let text = check(&[accepted(1, region(2, "m", "", 1, 3), 5), accepted(2, region(1, "", "", 1, 2), 5)]).unwrap();
        assert!(text.contains("over region 2 at version 3"), "{text}");
        let routed = (Duration::from_millis(3), PdEvent::Routed { region: region(1, "", "", 1, 1), leader: None, to: None });
        let text = check(&[newer, routed]).unwrap();
        assert!(text.contains("PD routes by what it knows"), "{text}");
        let rules = Rules { handed_out: true, view: false };
        assert_eq!(check_rules(&[accepted(1, region(1, "", "", 1, 2), 5), accepted(2, region(1, "", "", 1, 1), 5)], rules), None);
    }
}
