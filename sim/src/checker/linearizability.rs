//! Linearizability of a register / kv history, checked key by key (it is
//! compositional) with the Wing–Gong–Lowe search.
//!
//! The history becomes a list of call and return entries in time order. The search
//! walks the list, tentatively linearizing any operation whose call it meets (if
//! the model allows it from the current state), and backtracks when it meets the
//! return of an operation it has not linearized yet: that operation must have taken
//! effect before it returned. Configurations already explored — the set of
//! linearized operations plus the state they leave — are remembered, so each is
//! tried once (Lowe's memoisation).
//!
//! An operation with an unknown outcome returns at +infinity: it may take effect
//! anywhere after its invoke, and if the search reaches the unknown tail with only
//! such operations left, they never happened, which is always legal.
//!
//! On failure the explanation names the operation that could not be placed, the
//! operations concurrent with it (the smallest window in which no order works), and
//! the values the earlier operations can leave the key holding.

use crate::history::{Call, History, Initial, Operation, Outcome};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

/// Why a key's history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub key: String,
    /// The operation that could not be linearized before it returned.
    pub blocked: Operation,
    /// The window: it and the operations overlapping it in time, by invoke time.
    pub window: Vec<Operation>,
    /// What the key may hold just before the window, over every legal order of
    /// the operations before it.
    pub states_before: Vec<Option<String>>,
    /// Operations linearized in the deepest attempt.
    pub linearized: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable(Box<Violation>),
    /// The search for these keys ran out of its step budget without a verdict
    /// (every other key was linearizable).
    Inconclusive { keys: Vec<String>, steps: u64 },
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// Checks every key with no limit on the search.
pub fn check(history: &History) -> Verdict {
    check_with_limit(history, u64::MAX)
}

/// Checks every key. Keys are searched side by side with growing step budgets,
/// so the verdict and explanation do not depend on how long other keys take;
/// among keys that fail in the same round, the first in key order is explained.
/// A key whose search takes more than `max_steps` is left inconclusive.
pub fn check_with_limit(history: &History, max_steps: u64) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    // Operations that did not happen constrain nothing.
    for op in history.ops.iter().filter(|o| o.outcome != Outcome::Failed) {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut searches: Vec<Search> = by_key.into_iter().map(|(key, ops)| Search::new(key, ops, history.initial)).collect();
    let (mut budget, mut spent) = (4096u64, 0u64);
    while !searches.is_empty() {
        if spent >= max_steps {
            return Verdict::Inconclusive { keys: searches.iter().map(|s| s.key.to_string()).collect(), steps: spent };
        }
        let round = budget.min(max_steps - spent);
        let mut still_running = Vec::new();
        for mut search in searches {
            match search.run(round) {
                Progress::Running => still_running.push(search),
                Progress::Linearizable => {}
                Progress::Violated(v) => return Verdict::NotLinearizable(Box::new(v)),
            }
        }
        searches = still_running;
        spent += round;
        budget = budget.saturating_mul(2);
    }
    Verdict::Linearizable
}

/// Renders a violation for a person, with times in the history's clock.
pub fn explain(history: &History, v: &Violation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "key {:?} is not linearizable.", v.key);
    let _ = writeln!(out, "This operation cannot take effect anywhere between its invoke and its return:");
    let _ = writeln!(out, "  {}", history.describe(&v.blocked));
    let states: Vec<String> = v.states_before.iter().map(|s| s.as_deref().map(|s| format!("{s:?}")).unwrap_or_else(|| "nil".into())).collect();
    let _ = writeln!(out, "Before it, the earlier operations can leave the key holding: {}", states.join(", "));
    let _ = writeln!(out, "and no order of the {} operations in its window (itself and those overlapping it) makes it legal:", v.window.len());
    for op in &v.window {
        let _ = writeln!(out, "  {}", history.describe(op));
    }
    let _ = write!(out, "({} operations were linearized in the deepest attempt.)", v.linearized);
    out
}

/// Values interned to small ids so that states are cheap to copy and hash.
struct States {
    values: Vec<Option<String>>,
    ids: HashMap<Option<String>, u32>,
}

impl States {
    fn intern(&mut self, v: Option<String>) -> u32 {
        if let Some(&id) = self.ids.get(&v) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(v.clone());
        self.ids.insert(v, id);
        id
    }

    /// The model: the state after `op` from `state`, or `None` if `op` cannot
    /// happen there with the outcome it reported.
    fn step(&mut self, state: u32, op: &Operation) -> Option<u32> {
        let current = &self.values[state as usize];
        match (&op.call, &op.outcome) {
            (Call::Read, Outcome::Read(v)) => (v == current).then_some(state),
            (Call::Write(v), Outcome::Done | Outcome::Unknown) => Some(self.intern(Some(v.clone()))),
            (Call::Append(v), Outcome::Done | Outcome::Unknown) => {
                let next = format!("{}{v}", current.as_deref().unwrap_or(""));
                Some(self.intern(Some(next)))
            }
            (Call::Cas(from, to), Outcome::CasOk) => (current.as_deref() == Some(from.as_str())).then(|| self.intern(Some(to.clone()))),
            (Call::Cas(from, _), Outcome::CasFailed) => (current.as_deref() != Some(from.as_str())).then_some(state),
            (Call::Cas(from, to), Outcome::Unknown) => {
                if current.as_deref() == Some(from.as_str()) {
                    Some(self.intern(Some(to.clone())))
                } else {
                    Some(state)
                }
            }
            // An outcome that does not fit the call (a read that "wrote") never fits.
            _ => None,
        }
    }
}

#[derive(Clone, Copy)]
struct Entry {
    op: usize,
    is_return: bool,
}

const NIL: usize = usize::MAX;

/// A doubly linked list over the entries, with a head sentinel at index `n`.
struct List {
    next: Vec<usize>,
    prev: Vec<usize>,
    head: usize,
}

impl List {
    fn new(n: usize) -> Self {
        let mut next: Vec<usize> = (1..=n).collect();
        next.push(if n > 0 { 0 } else { NIL });
        if n > 0 {
            next[n - 1] = NIL;
        }
        let mut prev: Vec<usize> = (0..n).map(|i| if i == 0 { n } else { i - 1 }).collect();
        prev.push(NIL);
        List { next, prev, head: n }
    }

    fn unlink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        self.next[p] = i;
        if n != NIL {
            self.prev[n] = i;
        }
    }
}

/// A fixed pseudo-random 128-bit key per operation index (splitmix64 twice).
fn zobrist_key(i: u64) -> u128 {
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let a = mix(i.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1));
    let b = mix(a ^ 0xd1b5_4a32_d192_ed03);
    ((a as u128) << 64) | b as u128
}

/// One key's search, resumable: [`Search::run`] takes a step budget, so that the
/// keys can be searched side by side and a failing key found quickly even when
/// another key's search is long (as Porcupine finds it by checking keys in
/// parallel, but deterministically).
struct Search<'a> {
    key: &'a str,
    ops: Vec<&'a Operation>,
    entries: Vec<Entry>,
    call_at: Vec<usize>,
    return_at: Vec<usize>,
    states: States,
    state: u32,
    list: List,
    /// Zobrist hash of the set of linearized operations: the xor of their keys.
    zobrist: Vec<u128>,
    linearized: u128,
    /// Configurations explored: (hash of the linearized set, state). 128-bit
    /// hashes make a collision (which could hide an order) vanishingly unlikely.
    seen: HashSet<(u128, u32)>,
    stack: Vec<(usize, u32)>,
    /// The deepest point reached: (depth, blocked op, states seen there).
    deepest: (usize, usize, BTreeSet<u32>),
    at: usize,
}

enum Progress {
    Running,
    Linearizable,
    Violated(Violation),
}

impl<'a> Search<'a> {
    fn new(key: &'a str, ops: Vec<&'a Operation>, initial: Initial) -> Self {
        let n = ops.len();
        let mut sorted: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
        for (i, op) in ops.iter().enumerate() {
            sorted.push((op.invoke, false, i));
            sorted.push((op.complete.unwrap_or(u64::MAX), true, i));
        }
        // At equal times calls come first: such operations count as concurrent.
        sorted.sort();
        let entries: Vec<Entry> = sorted.into_iter().map(|(_, is_return, op)| Entry { op, is_return }).collect();
        let (mut call_at, mut return_at) = (vec![0; n], vec![0; n]);
        for (i, e) in entries.iter().enumerate() {
            if e.is_return {
                return_at[e.op] = i;
            } else {
                call_at[e.op] = i;
            }
        }
        let mut states = States { values: Vec::new(), ids: HashMap::new() };
        let state = states.intern(match initial {
            Initial::Absent => None,
            Initial::Empty => Some(String::new()),
        });
        let list = List::new(entries.len());
        let at = list.next[list.head];
        Search {
            key,
            ops,
            entries,
            call_at,
            return_at,
            states,
            state,
            list,
            zobrist: (0..n as u64).map(zobrist_key).collect(),
            linearized: 0,
            seen: HashSet::new(),
            stack: Vec::new(),
            deepest: (0, NIL, BTreeSet::new()),
            at,
        }
    }

    fn run(&mut self, mut budget: u64) -> Progress {
        while self.at != NIL {
            if budget == 0 {
                return Progress::Running;
            }
            budget -= 1;
            let entry = self.entries[self.at];
            let op = self.ops[entry.op];
            if !entry.is_return {
                if let Some(next_state) = self.states.step(self.state, op) {
                    let with_op = self.linearized ^ self.zobrist[entry.op];
                    if self.seen.insert((with_op, next_state)) {
                        self.linearized = with_op;
                        self.stack.push((entry.op, self.state));
                        self.state = next_state;
                        self.list.unlink(self.call_at[entry.op]);
                        self.list.unlink(self.return_at[entry.op]);
                        self.at = self.list.next[self.list.head];
                        continue;
                    }
                }
                self.at = self.list.next[self.at];
                continue;
            }
            if op.complete.is_none() {
                // Only operations with unknown outcomes are left: they never happened.
                return Progress::Linearizable;
            }
            if self.stack.len() > self.deepest.0 || self.deepest.1 == NIL {
                self.deepest = (self.stack.len(), entry.op, BTreeSet::new());
            }
            if self.stack.len() == self.deepest.0 && self.deepest.1 == entry.op {
                self.deepest.2.insert(self.state);
            }
            let Some((undo, previous)) = self.stack.pop() else {
                return Progress::Violated(self.violation());
            };
            self.state = previous;
            self.linearized ^= self.zobrist[undo];
            self.list.relink(self.return_at[undo]);
            self.list.relink(self.call_at[undo]);
            self.at = self.list.next[self.call_at[undo]];
        }
        // The list ran empty: every operation was linearized.
        Progress::Linearizable
    }

    fn violation(&self) -> Violation {
        let blocked = self.ops[self.deepest.1];
        let done = blocked.complete.unwrap_or(u64::MAX);
        // The window: the blocked operation and every operation overlapping it.
        let mut window: Vec<Operation> =
            self.ops.iter().filter(|o| o.invoke <= done && o.complete.unwrap_or(u64::MAX) >= blocked.invoke).map(|o| (*o).clone()).collect();
        window.sort_by_key(|o| (o.invoke, o.process));
        let states_before = self.deepest.2.iter().map(|&s| self.states.values[s as usize].clone()).collect();
        Violation { key: self.key.to_string(), blocked: blocked.clone(), window, states_before, linearized: self.deepest.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Clock, Operation};

    fn op(process: u64, call: Call, outcome: Outcome, invoke: u64, complete: Option<u64>) -> Operation {
        Operation { process, key: "x".into(), call, outcome, invoke, complete }
    }

    fn history(ops: Vec<Operation>) -> History {
        History { initial: Initial::Absent, clock: Clock::Nanos, ops }
    }

    #[test]
    fn sequential_register_is_linearizable() {
        let h = history(vec![
            op(0, Call::Write("1".into()), Outcome::Done, 0, Some(1)),
            op(0, Call::Read, Outcome::Read(Some("1".into())), 2, Some(3)),
            op(0, Call::Cas("1".into(), "2".into()), Outcome::CasOk, 4, Some(5)),
            op(0, Call::Cas("1".into(), "3".into()), Outcome::CasFailed, 6, Some(7)),
            op(0, Call::Read, Outcome::Read(Some("2".into())), 8, Some(9)),
        ]);
        assert!(check(&h).is_ok());
    }

    #[test]
    fn stale_read_after_write_is_caught_and_explained() {
        let h = history(vec![
            op(0, Call::Write("1".into()), Outcome::Done, 1_000_000, Some(12_000_000)),
            op(2, Call::Read, Outcome::Read(Some("1".into())), 11_000_000, Some(13_000_000)),
            op(1, Call::Read, Outcome::Read(None), 20_000_000, Some(30_000_000)),
        ]);
        let Verdict::NotLinearizable(v) = check(&h) else { panic!("stale read accepted") };
        assert_eq!(v.blocked.process, 1);
        assert_eq!(v.states_before, vec![Some("1".to_string())]);
        insta::assert_snapshot!("stale_read", explain(&h, &v));
    }

    #[test]
    fn concurrent_operations_may_order_either_way() {
        let h = history(vec![
            op(0, Call::Write("1".into()), Outcome::Done, 0, Some(10)),
            op(1, Call::Read, Outcome::Read(None), 5, Some(6)),
            op(2, Call::Read, Outcome::Read(Some("1".into())), 7, Some(8)),
        ]);
        assert!(check(&h).is_ok());
    }

    #[test]
    fn unknown_writes_may_happen_late_or_never() {
        // The unknown write is seen by a read long after it was invoked...
        let seen = history(vec![
            op(0, Call::Write("1".into()), Outcome::Unknown, 0, None),
            op(1, Call::Read, Outcome::Read(None), 10, Some(20)),
            op(1, Call::Read, Outcome::Read(Some("1".into())), 30, Some(40)),
        ]);
        assert!(check(&seen).is_ok());
        // ...or never.
        let never = history(vec![op(0, Call::Write("1".into()), Outcome::Unknown, 0, None), op(1, Call::Read, Outcome::Read(None), 10, Some(20))]);
        assert!(check(&never).is_ok());
        // But it cannot be seen before it was invoked.
        let early = history(vec![op(1, Call::Read, Outcome::Read(Some("1".into())), 0, Some(5)), op(0, Call::Write("1".into()), Outcome::Unknown, 10, None)]);
        assert!(!check(&early).is_ok());
    }

    #[test]
    fn a_value_cannot_come_back() {
        let h = history(vec![
            op(0, Call::Write("1".into()), Outcome::Done, 0, Some(1)),
            op(0, Call::Write("2".into()), Outcome::Done, 2, Some(3)),
            op(1, Call::Read, Outcome::Read(Some("2".into())), 4, Some(5)),
            op(2, Call::Read, Outcome::Read(Some("1".into())), 6, Some(7)),
        ]);
        let Verdict::NotLinearizable(v) = check(&h) else { panic!("resurrected value accepted") };
        assert_eq!(v.blocked.process, 2);
        assert_eq!(v.linearized, 3);
    }
}
