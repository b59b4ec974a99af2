//! The sequential check (TinyKV's): each client appends its own numbered items,
//! in order, to its own key. At the end, for every client, the items present
//! must be strictly increasing (order kept, none duplicated), include every
//! acknowledged item (none lost), and include only items that were attempted.

use std::collections::BTreeMap;

/// What happened to each item a client tried to append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemStatus {
    Acknowledged,
    /// The outcome is unknown: the item may or may not be there.
    Unknown,
}

/// One client's record: the items it tried, and the list finally read back.
#[derive(Debug, Clone, Default)]
pub struct ClientLog {
    pub items: BTreeMap<u64, ItemStatus>,
    pub final_list: Option<Vec<u64>>,
}

/// The list format on disk: `1,2,3,`.
pub fn encode(items: &[u64]) -> String {
    items.iter().map(|i| format!("{i},")).collect()
}

pub fn decode(text: &str) -> Result<Vec<u64>, String> {
    text.split_terminator(',').map(|s| s.parse::<u64>().map_err(|_| format!("item {s:?} in {text:?} is not a number"))).collect()
}

/// `None` when every client's list is right, else what is wrong, per client.
pub fn check(clients: &BTreeMap<u64, ClientLog>) -> Option<String> {
    let mut problems = Vec::new();
    for (client, log) in clients {
        let Some(list) = &log.final_list else {
            problems.push(format!("client {client}: its list could not be read at the end"));
            continue;
        };
        if let Some(w) = list.windows(2).find(|w| w[0] >= w[1]) {
            let what = if w[0] == w[1] { "duplicated" } else { "out of order" };
            problems.push(format!("client {client}: item {} is {what} (…{}, {}… in {:?})", w[1], w[0], w[1], list));
        }
        for (item, status) in &log.items {
            if *status == ItemStatus::Acknowledged && !list.contains(item) {
                problems.push(format!("client {client}: acknowledged item {item} was lost (final list {list:?})"));
            }
        }
        for item in list {
            if !log.items.contains_key(item) {
                problems.push(format!("client {client}: item {item} appeared but was never written"));
            }
        }
    }
    (!problems.is_empty()).then(|| problems.join("\n"))
}

/// This checker in the registry ([`crate::checker::registry::ALL`]).
pub struct Rule;

impl crate::checker::registry::Check for Rule {
    fn name(&self) -> crate::checker::Checker {
        crate::checker::Checker::Sequential
    }

    fn applies(&self, scenario: &crate::scenario::Scenario) -> bool {
        scenario.checkers.sequential && scenario.workload.kind == crate::scenario::WorkloadKind::Sequential
    }

    fn check(&self, run: &crate::checker::registry::Inputs) -> crate::checker::registry::Verdict {
        // The logs are complete only after the final reads (not after a panic).
        crate::checker::registry::Verdict::of(run.records.logs.as_ref().and_then(check))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(items: &[(u64, ItemStatus)], list: &[u64]) -> BTreeMap<u64, ClientLog> {
        BTreeMap::from([(0, ClientLog { items: items.iter().copied().collect(), final_list: Some(list.to_vec()) })])
    }

    #[test]
    fn unknown_items_may_be_missing() {
        use ItemStatus::*;
        assert_eq!(check(&log(&[(1, Acknowledged), (2, Unknown), (3, Acknowledged)], &[1, 3])), None);
        assert_eq!(decode(&encode(&[1, 3])).unwrap(), vec![1, 3]);
    }

    #[test]
    fn lost_duplicated_reordered_and_phantom_items_are_caught() {
        use ItemStatus::*;
        assert!(check(&log(&[(1, Acknowledged), (2, Acknowledged)], &[1])).unwrap().contains("acknowledged item 2 was lost"));
        assert!(check(&log(&[(1, Acknowledged)], &[1, 1])).unwrap().contains("duplicated"));
        assert!(check(&log(&[(1, Acknowledged), (2, Acknowledged)], &[2, 1])).unwrap().contains("out of order"));
        assert!(check(&log(&[(1, Acknowledged)], &[1, 7])).unwrap().contains("item 7 appeared but was never written"));
    }
}
