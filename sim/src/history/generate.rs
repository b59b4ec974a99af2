//! Random register histories for benchmarking and testing the checkers beyond
//! the corpus: valid ones by construction, invalid ones with a planted read that
//! no order can explain.
//!
//! Each operation gets an invoke time, a completion time and a hidden moment
//! between them at which it takes effect; applying the operations to a register
//! in the order of those moments gives every read and compare its answer, so
//! the history is linearizable by construction. Some operations end with an
//! unknown outcome (they took effect or not, by the draw) and retire their
//! process, as Jepsen's clients do. An invalid history has a stale read planted
//! in its second half: a write of a value nothing else writes ([`MARKER`]), then
//! a later write of another value, then a read that returns the marker. No
//! order explains it, and the search must rule out every order before the
//! read's return to say so, which is the expensive case.

use super::{Call, Clock, History, Initial, Operation, Outcome};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// The shape of a generated history.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub ops: usize,
    /// Processes running at once.
    pub concurrency: usize,
    pub keys: usize,
    /// Percent of writes and compare-and-sets whose outcome is unknown.
    pub unknown_percent: u64,
    /// Values written are drawn from `0..values` (small: many equal writes, as
    /// in Jepsen's etcd tests), or unique when 0.
    pub values: u64,
}

struct Draw(ChaCha8Rng);

impl Draw {
    fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            0
        } else {
            self.0.next_u64() % n
        }
    }
}

/// The value of the planted write in an invalid history; no other operation
/// writes it.
pub const MARKER: &str = "-1";

/// A random register history of `shape`, linearizable when `valid`, and not
/// linearizable otherwise (a stale read of [`MARKER`]).
pub fn register_history(seed: u64, shape: Shape, valid: bool) -> History {
    let mut d = Draw(ChaCha8Rng::seed_from_u64(seed ^ 0x6e6e_7261_7465_0001));
    // (process, key, call, invoke, effect, complete, unknown)
    struct Planned {
        process: u64,
        key: String,
        call: Call,
        invoke: u64,
        effect: u64,
        complete: u64,
        unknown: bool,
        happened: bool,
    }
    let mut free_at: Vec<(u64, u64)> = (0..shape.concurrency as u64).map(|p| (p, d.below(100))).collect();
    let mut next_process = shape.concurrency as u64;
    let mut planned: Vec<Planned> = Vec::with_capacity(shape.ops);
    let mut counter = 0u64;
    for _ in 0..shape.ops {
        // The process that is free first runs the next operation.
        let slot = (0..free_at.len()).min_by_key(|&i| (free_at[i].1, free_at[i].0)).expect("processes");
        let (process, free) = free_at[slot];
        let invoke = free + d.below(20);
        let complete = invoke + 1 + d.below(200);
        let effect = invoke + d.below(complete - invoke + 1);
        let key = format!("k{}", d.below(shape.keys as u64));
        counter += 1;
        let value = if shape.values == 0 { counter.to_string() } else { d.below(shape.values).to_string() };
        let call = match d.below(10) {
            0..=3 => Call::Read,
            4..=6 => Call::Write(value),
            _ => {
                let from = if shape.values == 0 { d.below(counter + 1).to_string() } else { d.below(shape.values).to_string() };
                Call::Cas(from, value)
            }
        };
        let unknown = call != Call::Read && d.below(100) < shape.unknown_percent;
        let happened = !unknown || d.below(2) == 0;
        planned.push(Planned { process, key, call, invoke, effect, complete, unknown, happened });
        free_at[slot] = if unknown {
            next_process += 1;
            (next_process - 1, complete)
        } else {
            (process, complete)
        };
    }
    // An invalid history: the first definite write of the second half writes
    // the marker instead (the reads it is applied before see it, so far all is
    // consistent).
    let definite_write = |p: &Planned| matches!(p.call, Call::Write(_)) && !p.unknown;
    let marker = if valid { None } else { (planned.len() / 2..planned.len()).find(|&i| definite_write(&planned[i])) };
    if let Some(w) = marker {
        planned[w].call = Call::Write(MARKER.to_string());
    }
    // Apply in the order the operations took effect.
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&i| (planned[i].effect, i));
    let mut register: std::collections::BTreeMap<String, Option<String>> = Default::default();
    let mut outcomes: Vec<Outcome> = vec![Outcome::Unknown; planned.len()];
    for i in order {
        let p = &planned[i];
        let current = register.entry(p.key.clone()).or_insert(None);
        let outcome = match &p.call {
            Call::Read => Outcome::Read(current.clone()),
            Call::Write(v) => {
                if p.happened {
                    *current = Some(v.clone());
                }
                Outcome::Done
            }
            Call::Cas(from, to) => {
                if current.as_deref() == Some(from.as_str()) {
                    if p.happened {
                        *current = Some(to.clone());
                    }
                    Outcome::CasOk
                } else {
                    Outcome::CasFailed
                }
            }
            Call::Append(_) | Call::Delete => unreachable!("generated histories do not append or delete"),
        };
        outcomes[i] = if p.unknown { Outcome::Unknown } else { outcome };
    }
    let mut history = History::new(Initial::Absent, Clock::Nanos);
    for (p, outcome) in planned.into_iter().zip(outcomes) {
        let complete = (!p.unknown).then_some(p.complete);
        history.ops.push(Operation { process: p.process, key: p.key, call: p.call, outcome, invoke: p.invoke, complete });
    }
    if !valid {
        // A definite write of another value that began after the marker's write
        // returned, and a read that began after that one returned: the read is
        // made to return the marker, which no order allows.
        let ops = &history.ops;
        let stale = marker.and_then(|w| {
            let key = &ops[w].key;
            let done = |i: usize| ops[i].complete.unwrap_or(u64::MAX);
            let later_write = (0..ops.len())
                .find(|&i| &ops[i].key == key && ops[i].outcome == Outcome::Done && matches!(ops[i].call, Call::Write(_)) && ops[i].invoke > done(w))?;
            (0..ops.len()).find(|&i| &ops[i].key == key && ops[i].call == Call::Read && ops[i].invoke > done(later_write))
        });
        // Too short for that: a read of the marker where it was never written
        // (another key, or before the marker's write began).
        let impossible = || {
            (0..ops.len())
                .find(|&i| ops[i].call == Call::Read && marker.is_none_or(|w| ops[i].key != ops[w].key || ops[i].complete.unwrap_or(u64::MAX) < ops[w].invoke))
        };
        if let Some(r) = stale.or_else(impossible) {
            history.ops[r].outcome = Outcome::Read(Some(MARKER.to_string()));
        }
    }
    history.ops.sort_by_key(|o| (o.invoke, o.process));
    history
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::linearizability::check;

    #[test]
    fn generated_histories_have_the_verdict_they_were_made_with() {
        for seed in 0..40 {
            let shape = Shape { ops: 300, concurrency: 1 + (seed as usize % 12), keys: 1 + (seed as usize % 3), unknown_percent: seed % 30, values: seed % 6 };
            let good = register_history(seed, shape, true);
            assert_eq!(good.ops.len(), 300);
            assert!(check(&good).is_ok(), "seed {seed}: a valid history was rejected");
            let bad = register_history(seed, shape, false);
            assert!(!check(&bad).is_ok(), "seed {seed}: a stale read was accepted");
        }
    }

    #[test]
    fn same_seed_same_history() {
        let shape = Shape { ops: 100, concurrency: 5, keys: 2, unknown_percent: 10, values: 3 };
        assert_eq!(register_history(7, shape, true), register_history(7, shape, true));
    }
}
