//! Timestamps: every timestamp a client got from PD is unique, and one obtained
//! after another returned (in simulated real time) is larger — across PD
//! crashes, restarts and clocks set back.

/// One timestamp request that returned: invoke and return (simulated ns), and
/// the timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsCall {
    pub client: u64,
    pub invoke: u64,
    pub complete: u64,
    pub ts: u64,
}

/// `None` when the rule holds; otherwise the first violation found.
pub fn check(calls: &[TsCall]) -> Option<String> {
    let mut by_complete: Vec<&TsCall> = calls.iter().collect();
    by_complete.sort_by_key(|c| (c.complete, c.ts));
    let mut by_invoke: Vec<&TsCall> = calls.iter().collect();
    by_invoke.sort_by_key(|c| (c.invoke, c.ts));
    // Walk the calls in invoke order, keeping the largest timestamp of every
    // call that returned strictly before the current one was invoked.
    let (mut done, mut largest): (usize, Option<&TsCall>) = (0, None);
    for call in by_invoke {
        while done < by_complete.len() && by_complete[done].complete < call.invoke {
            let c = by_complete[done];
            if largest.is_none_or(|l| c.ts > l.ts) {
                largest = Some(c);
            }
            done += 1;
        }
        if let Some(before) = largest {
            if call.ts <= before.ts {
                return Some(format!(
                    "timestamps went backwards: client {} got {} at {:.6}s, after client {} had got {} at {:.6}s",
                    call.client,
                    call.ts,
                    call.invoke as f64 / 1e9,
                    before.client,
                    before.ts,
                    before.complete as f64 / 1e9
                ));
            }
        }
    }
    let mut seen: Vec<&TsCall> = calls.iter().collect();
    seen.sort_by_key(|c| c.ts);
    seen.windows(2).find(|w| w[0].ts == w[1].ts).map(|w| format!("timestamp {} was handed out twice (clients {} and {})", w[0].ts, w[0].client, w[1].client))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(client: u64, invoke: u64, complete: u64, ts: u64) -> TsCall {
        TsCall { client, invoke, complete, ts }
    }

    #[test]
    fn increasing_and_overlapping_calls_pass() {
        // The second and third overlap: either order of their timestamps is fine.
        assert_eq!(check(&[call(1, 0, 10, 5), call(2, 20, 40, 9), call(3, 25, 30, 7), call(1, 50, 60, 11)]), None);
    }

    #[test]
    fn a_smaller_or_repeated_timestamp_is_caught() {
        let back = check(&[call(1, 0, 10, 500), call(2, 20, 30, 400)]).unwrap();
        assert_eq!(back, "timestamps went backwards: client 2 got 400 at 0.000000s, after client 1 had got 500 at 0.000000s");
        assert!(check(&[call(1, 0, 10, 5), call(2, 5, 15, 5)]).unwrap().contains("handed out twice"));
    }
}
