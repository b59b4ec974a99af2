//! Random list-append histories, serializable by construction, with anomalies
//! planted on purpose: what the SI checker's benchmark runs on.
//!
//! `concurrency` processes run transactions of 1 to 4 micro-ops over `keys`
//! active keys; a key that has taken [`MAX_WRITES_PER_KEY`] appends is retired
//! for a fresh one, as Jepsen's list-append workload does (lists stay short). Each transaction takes effect atomically at a hidden moment between
//! its invocation and its completion; applying them in the order of those
//! moments to a map of lists gives every read its answer, so the history is
//! serializable (and strictly so) by construction. A planted anomaly is a small
//! group of transactions on keys of their own, shaped like the textbook case of
//! its class, spliced into the middle of the history.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Appends a key takes before the generator moves on to a fresh key.
pub const MAX_WRITES_PER_KEY: usize = 32;

/// The anomaly classes the generator can plant.
pub const PLANTABLE: [&str; 9] = ["G0", "G1a", "G1b", "G1c", "G-single", "G-nonadjacent", "lost-update", "internal", "garbage-read"];

/// The transactions (as EDN micro-op vectors, with `:ok`/`:fail`) that make
/// anomaly `kind` on keys named after `tag`.
fn gadget(kind: &str, tag: usize) -> Vec<(&'static str, String)> {
    let k = |name: &str| format!(":{name}{tag}");
    let (x, y, a, b, c, d) = (k("x"), k("y"), k("a"), k("b"), k("c"), k("d"));
    let ok = |v: String| ("ok", v);
    match kind {
        "G0" => vec![
            ok(format!("[[:append {x} 1] [:append {y} 2]]")),
            ok(format!("[[:append {x} 2] [:append {y} 1]]")),
            ok(format!("[[:r {x} [1 2]] [:r {y} [1 2]]]")),
        ],
        "G1a" => vec![("fail", format!("[[:append {x} 1]]")), ok(format!("[[:r {x} [1]]]"))],
        "G1b" => vec![ok(format!("[[:append {x} 1] [:append {x} 2]]")), ok(format!("[[:r {x} [1]]]"))],
        "G1c" => vec![ok(format!("[[:append {x} 1] [:r {y} [1]]]")), ok(format!("[[:append {y} 1] [:r {x} [1]]]"))],
        "G-single" => vec![ok(format!("[[:append {x} 1]]")), ok(format!("[[:r {x} [1]] [:append {y} 1]]")), ok(format!("[[:r {x} []] [:r {y} [1]]]"))],
        "G-nonadjacent" => vec![
            ok(format!("[[:r {a} []] [:r {d} [1]]]")),
            ok(format!("[[:append {a} 1] [:append {b} 1]]")),
            ok(format!("[[:r {b} [1]] [:r {c} []]]")),
            ok(format!("[[:append {c} 1] [:append {d} 1]]")),
        ],
        "lost-update" => vec![ok(format!("[[:r {x} []] [:append {x} 1]]")), ok(format!("[[:r {x} []] [:append {x} 2]]")), ok(format!("[[:r {x} [1 2]]]"))],
        "internal" => vec![ok(format!("[[:append {x} 1] [:r {x} []]]"))],
        "garbage-read" => vec![ok(format!("[[:r {x} [99]]]"))],
        other => panic!("cannot plant {other}"),
    }
}

/// A history of `txns` transactions as EDN text, with each of `plant` planted once.
pub fn list_append_history(seed: u64, txns: usize, keys: usize, concurrency: usize, plant: &[&str]) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let concurrency = concurrency.max(1);
    // Each txn: (process, invoke, effect, complete, mops with reads to fill).
    struct Planned {
        process: usize,
        invoke: u64,
        effect: u64,
        complete: u64,
        mops: Vec<(bool, usize)>, // (is_append, key)
    }
    let mut free_at = vec![0u64; concurrency];
    let mut planned = Vec::with_capacity(txns);
    // Active key in each slot, and appends planned on it.
    let mut slots: Vec<(usize, usize)> = (0..keys.max(1)).map(|k| (k, 0)).collect();
    let mut next_key = keys.max(1);
    for _ in 0..txns {
        let process = (rng.next_u64() % concurrency as u64) as usize;
        let invoke = free_at[process] + rng.next_u64() % 10;
        let duration = 1 + rng.next_u64() % 50;
        let effect = invoke + rng.next_u64() % duration;
        let complete = invoke + duration;
        free_at[process] = complete + 1;
        let n = 1 + (rng.next_u64() % 4) as usize;
        let mops = (0..n)
            .map(|_| {
                let append = rng.next_u64() % 2 == 0;
                let slot = (rng.next_u64() % slots.len() as u64) as usize;
                let key = slots[slot].0;
                if append {
                    slots[slot].1 += 1;
                    if slots[slot].1 >= MAX_WRITES_PER_KEY {
                        slots[slot] = (next_key, 0);
                        next_key += 1;
                    }
                }
                (append, key)
            })
            .collect();
        planned.push(Planned { process, invoke, effect, complete, mops });
    }
    // Apply in effect order to give reads their answers.
    let mut by_effect: Vec<usize> = (0..planned.len()).collect();
    by_effect.sort_by_key(|&i| (planned[i].effect, i));
    let mut state: Vec<Vec<u64>> = vec![Vec::new(); next_key];
    let mut next_value = vec![1u64; next_key];
    let mut values: Vec<String> = vec![String::new(); planned.len()];
    for &i in &by_effect {
        let mut text = String::from("[");
        for (n, &(append, key)) in planned[i].mops.iter().enumerate() {
            if n > 0 {
                text.push(' ');
            }
            if append {
                let v = next_value[key];
                next_value[key] += 1;
                state[key].push(v);
                let _ = write!(text, "[:append {key} {v}]");
            } else {
                let _ = write!(text, "[:r {key} [{}]]", state[key].iter().map(u64::to_string).collect::<Vec<_>>().join(" "));
            }
        }
        text.push(']');
        values[i] = text;
    }
    // Events in time order (processes run one transaction at a time).
    let mut events: Vec<(u64, usize, &str, String)> = Vec::new();
    for (i, p) in planned.iter().enumerate() {
        let invoked = values[i].clone();
        events.push((p.invoke, p.process, "invoke", invoked));
        events.push((p.complete, p.process, "ok", values[i].clone()));
    }
    events.sort_by_key(|(t, process, kind, _)| (*t, *kind != "ok", *process));
    // Planted groups run on processes of their own, one after another, in the middle.
    let middle = events.get(events.len() / 2).map_or(0, |e| e.0);
    let mut planted: BTreeMap<u64, Vec<(u64, usize, &str, String)>> = BTreeMap::new();
    for (tag, kind) in plant.iter().enumerate() {
        for (n, (outcome, value)) in gadget(kind, tag).into_iter().enumerate() {
            let process = concurrency + 100 + tag * 10 + n;
            planted.entry(middle).or_default().push((middle, process, "invoke", value.clone()));
            planted.entry(middle).or_default().push((middle, process, outcome, value));
        }
    }
    let mut out = String::with_capacity(events.len() * 80);
    let mut index = 0u64;
    let mut emit = |t: u64, process: usize, kind: &str, value: &str, out: &mut String| {
        let _ = writeln!(out, "{{:index {index}, :time {t}, :type :{kind}, :process {process}, :f :txn, :value {value}}}");
        index += 1;
    };
    let mut planted_done = false;
    for (t, process, kind, value) in &events {
        if !planted_done && *t >= middle {
            for (pt, pp, pk, pv) in planted.values().flatten() {
                emit(*pt, *pp, pk, pv, &mut out);
            }
            planted_done = true;
        }
        emit(*t, *process, kind, value, &mut out);
    }
    if !planted_done {
        for (pt, pp, pk, pv) in planted.values().flatten() {
            emit(*pt, *pp, pk, pv, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::list_append::check::{check, Model};
    use crate::workload::list_append::history as txn;

    #[test]
    fn generated_histories_are_valid_and_every_planted_class_is_found() {
        let clean = txn::parse(&list_append_history(1, 2_000, 8, 10, &[])).unwrap();
        let report = check(&clean, Model::StrictSerializable);
        assert!(report.valid(), "{:?}", report.anomalies.first());
        for kind in PLANTABLE {
            let h = txn::parse(&list_append_history(2, 2_000, 8, 10, &[kind])).unwrap();
            let found = check(&h, Model::SnapshotIsolation);
            assert!(found.kinds().contains(&kind), "{kind} planted, found {:?}", found.kinds());
        }
    }
}
