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

use crate::history::{event_order, Call, History, Initial, Operation, Outcome};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

/// Why a key's history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub key: String,
    /// The operation that could not be linearized before it returned.
    pub blocked: Operation,
    /// The window: it and the operations overlapping it in time, by invoke time.
    pub window: Vec<Operation>,
    /// What the key held where the deepest attempts got stuck.
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
    Inconclusive {
        keys: Vec<String>,
        steps: u64,
    },
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
    // A key's search is built when its turn first comes: a violation found in
    // the first keys spares building the others.
    let mut searches: Vec<(&str, Result<Search, Vec<&Operation>>)> = by_key.into_iter().map(|(key, ops)| (key, Err(ops))).collect();
    let (mut budget, mut spent) = (4096u64, 0u64);
    while !searches.is_empty() {
        if spent >= max_steps {
            return Verdict::Inconclusive { keys: searches.iter().map(|(key, _)| key.to_string()).collect(), steps: spent };
        }
        let round = budget.min(max_steps - spent);
        let mut still_running = Vec::new();
        for (key, search) in searches {
            let mut search = search.unwrap_or_else(|ops| Search::new(key, ops, history.initial));
            match search.run(round) {
                Progress::Running => still_running.push((key, Ok(search))),
                Progress::Linearizable => {}
                Progress::Violated(v) => return Verdict::NotLinearizable(v),
            }
        }
        searches = still_running;
        spent += round;
        budget = budget.saturating_mul(2);
    }
    Verdict::Linearizable
}

/// Renders a violation for a person, with times in the history's clock. When
/// the blocked operation needs a value that no operation recorded as
/// happening (or possibly happening) wrote, that is said first: the history,
/// not the store, may be what is wrong.
pub fn explain(history: &History, v: &Violation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "key {:?} is not linearizable.", v.key);
    if let Some(source) = value_source(history, v) {
        let _ = writeln!(out, "{source}");
    }
    let _ = writeln!(out, "This operation cannot take effect anywhere between its invoke and its return:");
    let _ = writeln!(out, "  {}", history.describe(&v.blocked));
    let states: Vec<String> = v.states_before.iter().map(|s| s.as_deref().map(|s| format!("{s:?}")).unwrap_or_else(|| "nil".into())).collect();
    let _ = writeln!(out, "In the deepest attempts to place it, the earlier operations left the key holding: {}", elide(&states, 12));
    let _ = writeln!(out, "and no order of the {} operations in its window (itself and those overlapping it) makes it legal:", v.window.len());
    // A long window is shown around the blocked operation.
    let at = v.window.iter().position(|o| *o == v.blocked).unwrap_or(0);
    let (from, to) = (at.saturating_sub(8), (at + 9).min(v.window.len()));
    if from > 0 {
        let _ = writeln!(out, "  ... {from} earlier operations of the window ...");
    }
    for op in &v.window[from..to] {
        let _ = writeln!(out, "  {}", history.describe(op));
    }
    if to < v.window.len() {
        let _ = writeln!(out, "  ... {} later operations of the window ...", v.window.len() - to);
    }
    let _ = write!(out, "({} operations were linearized in the deepest attempt.)", v.linearized);
    out
}

/// At most `keep` items, the rest counted.
fn elide(items: &[String], keep: usize) -> String {
    if items.len() <= keep {
        return items.join(", ");
    }
    format!("{}, ... and {} more", items[..keep].join(", "), items.len() - keep)
}

/// When the blocked operation reads (or compares against) a value that only
/// operations recorded as failed wrote, or that nothing wrote, says so.
fn value_source(history: &History, v: &Violation) -> Option<String> {
    let needed = match (&v.blocked.call, &v.blocked.outcome) {
        (Call::Read, Outcome::Read(Some(value))) => value,
        (Call::Cas(from, _), Outcome::CasOk) => from,
        _ => return None,
    };
    let writes = |op: &&Operation| {
        op.key == v.key
            && match &op.call {
                Call::Write(w) | Call::Cas(_, w) => w == needed,
                _ => false,
            }
    };
    if history.initial == Initial::Empty && needed.is_empty() {
        return None;
    }
    let writers: Vec<&Operation> = history.ops.iter().filter(writes).collect();
    if writers.iter().any(|o| o.outcome != Outcome::Failed && o.outcome != Outcome::CasFailed) {
        return None;
    }
    if history.ops.iter().any(|o| o.key == v.key && matches!(o.call, Call::Append(_))) {
        // Appended strings are made of several writes: no single writer to name.
        return None;
    }
    Some(match writers.first() {
        Some(failed) => format!(
            "Value {needed:?} was written only by an operation recorded as failed: {}\nThe history, not the store, may be what is wrong: check how the client decided that this operation did not happen.",
            history.describe(failed)
        ),
        None => format!("Value {needed:?} was never written: no operation in the history writes it."),
    })
}

/// What an operation does to the key. Values are interned (`u32` value ids) and
/// states are nodes (`u32` state ids, see [`Values`]), so that the search never
/// touches a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Legal iff the key holds value `.0`.
    Read(u32),
    Write(u32),
    /// Legal iff the key holds value `.0`; then it holds `.1`.
    CasOk(u32, u32),
    /// Legal iff the key does not hold value `.0`.
    CasFail(u32),
    /// A compare-and-set whose outcome is unknown. Had it compared unequal, it
    /// would have changed nothing — the same as never happening, which an
    /// unknown operation may always do — so it is placed only where it compares
    /// equal.
    CasMaybe(u32, u32),
    /// Appends value `.0` to the string the key holds.
    Append(u32),
    /// An outcome that does not fit its call (a read that "wrote"): never legal.
    Never,
}

/// A state: a value put there whole (`parent == NIL`), or a state with a value
/// appended to it. Equal strings reached by different appends may be different
/// states: that costs the memo a hit, never a verdict, because reads and
/// compares look at the string (by length and hash, then byte by byte).
#[derive(Clone, Copy)]
struct Node {
    parent: u32,
    value: u32,
    len: usize,
    hash: u64,
}

/// Polynomial string hashing: `H(s + t) = H(s) * BASE^len(t) + H(t)`.
const BASE: u64 = 0x100_0000_01b3;

/// Values interned to small ids (borrowed from the history: nothing is
/// copied), and the states built from them.
struct Values<'a> {
    values: Vec<Option<&'a str>>,
    ids: HashMap<&'a str, u32, FxBuild>,
    nil: Option<u32>,
    /// Per value: length, hash and `BASE^length`.
    shape: Vec<(usize, u64, u64)>,
    nodes: Vec<Node>,
    /// The state holding exactly each value.
    root: Vec<u32>,
    children: HashMap<(u32, u32), u32, FxBuild>,
    /// Whether a state made by appends equals a value, once compared.
    compared: HashMap<(u32, u32), bool, FxBuild>,
    /// Whether a state begins a value, once compared.
    prefixes: HashMap<(u32, u32), bool, FxBuild>,
    /// Hashes of each prefix of a value, for values that states are compared to.
    prefix_hashes: HashMap<u32, Vec<u64>, FxBuild>,
}

impl<'a> Values<'a> {
    fn new(capacity: usize) -> Self {
        Values {
            values: Vec::with_capacity(capacity),
            ids: HashMap::with_capacity_and_hasher(capacity, FxBuild),
            nil: None,
            shape: Vec::new(),
            nodes: Vec::new(),
            root: Vec::new(),
            children: HashMap::default(),
            compared: HashMap::default(),
            prefixes: HashMap::default(),
            prefix_hashes: HashMap::default(),
        }
    }

    fn intern(&mut self, v: Option<&'a str>) -> u32 {
        let found = match v {
            Some(text) => self.ids.get(text).copied(),
            None => self.nil,
        };
        if let Some(id) = found {
            return id;
        }
        let id = self.values.len() as u32;
        let bytes = v.unwrap_or("").as_bytes();
        let hash = bytes.iter().fold(0u64, |h, &b| h.wrapping_mul(BASE).wrapping_add(u64::from(b) + 1));
        let power = bytes.iter().fold(1u64, |p, _| p.wrapping_mul(BASE));
        self.values.push(v);
        match v {
            Some(text) => {
                self.ids.insert(text, id);
            }
            None => self.nil = Some(id),
        }
        self.shape.push((bytes.len(), hash, power));
        self.root.push(self.nodes.len() as u32);
        self.nodes.push(Node { parent: NIL, value: id, len: bytes.len(), hash });
        id
    }

    fn compile(&mut self, op: &'a Operation) -> Step {
        match (&op.call, &op.outcome) {
            (Call::Read, Outcome::Read(v)) => Step::Read(self.intern(v.as_deref())),
            (Call::Write(v), Outcome::Done | Outcome::Unknown) => Step::Write(self.intern(Some(v))),
            (Call::Append(v), Outcome::Done | Outcome::Unknown) => Step::Append(self.intern(Some(v))),
            // A delete leaves the key holding nothing: a write of nil.
            (Call::Delete, Outcome::Done | Outcome::Unknown) => Step::Write(self.intern(None)),
            (Call::Cas(a, b), Outcome::CasOk) => Step::CasOk(self.intern(Some(a)), self.intern(Some(b))),
            (Call::Cas(a, _), Outcome::CasFailed) => Step::CasFail(self.intern(Some(a))),
            (Call::Cas(a, b), Outcome::Unknown) => Step::CasMaybe(self.intern(Some(a)), self.intern(Some(b))),
            _ => Step::Never,
        }
    }

    /// The model: the state after `step` from `state`, or `None` if the step
    /// cannot happen there with the outcome it reported.
    #[inline]
    fn step(&mut self, state: u32, step: Step) -> Option<u32> {
        match step {
            Step::Read(v) => self.holds(state, v).then_some(state),
            Step::Write(v) => Some(self.root[v as usize]),
            Step::CasOk(a, b) | Step::CasMaybe(a, b) => self.holds(state, a).then(|| self.root[b as usize]),
            Step::CasFail(a) => (!self.holds(state, a)).then_some(state),
            Step::Append(v) => Some(self.append(state, v)),
            Step::Never => None,
        }
    }

    /// Whether the key holds value `v` in `state`.
    #[inline]
    fn holds(&mut self, state: u32, v: u32) -> bool {
        if state == self.root[v as usize] {
            return true;
        }
        let node = self.nodes[state as usize];
        // Distinct values are distinct strings; an appended string is never nil.
        if node.parent == NIL || self.values[v as usize].is_none() {
            return false;
        }
        let (len, hash, _) = self.shape[v as usize];
        if node.len != len || node.hash != hash {
            return false;
        }
        if let Some(&equal) = self.compared.get(&(state, v)) {
            return equal;
        }
        let equal = self.text(state) == self.values[v as usize].unwrap_or("");
        self.compared.insert((state, v), equal);
        equal
    }

    /// Whether the string a state holds begins the string value `v` (append
    /// keys only: there states are never nil).
    fn begins(&mut self, state: u32, v: u32) -> bool {
        let Some(target) = self.values[v as usize] else { return false };
        let node = self.nodes[state as usize];
        if node.len > target.len() {
            return false;
        }
        // The hash of the target's first `node.len` bytes must match first.
        let hashes = self.prefix_hashes.entry(v).or_insert_with(|| {
            let mut h = 0u64;
            let mut out = Vec::with_capacity(target.len() + 1);
            out.push(0);
            for &b in target.as_bytes() {
                h = h.wrapping_mul(BASE).wrapping_add(u64::from(b) + 1);
                out.push(h);
            }
            out
        });
        if hashes[node.len] != node.hash {
            return false;
        }
        if let Some(&answer) = self.prefixes.get(&(state, v)) {
            return answer;
        }
        let answer = target.starts_with(&self.text(state));
        self.prefixes.insert((state, v), answer);
        answer
    }

    /// The string a state holds.
    fn text(&self, state: u32) -> String {
        let mut parts = Vec::new();
        let mut at = state;
        while at != NIL {
            let node = self.nodes[at as usize];
            parts.push(self.values[node.value as usize].unwrap_or(""));
            at = node.parent;
        }
        parts.iter().rev().copied().collect()
    }

    /// What a state holds, as a value.
    fn value_of(&self, state: u32) -> Option<String> {
        let node = self.nodes[state as usize];
        if node.parent == NIL {
            self.values[node.value as usize].map(str::to_string)
        } else {
            Some(self.text(state))
        }
    }

    #[inline]
    fn append(&mut self, state: u32, v: u32) -> u32 {
        if let Some(&next) = self.children.get(&(state, v)) {
            return next;
        }
        let node = self.nodes[state as usize];
        let (len, hash, power) = self.shape[v as usize];
        let next = self.nodes.len() as u32;
        self.nodes.push(Node { parent: state, value: v, len: node.len + len, hash: node.hash.wrapping_mul(power).wrapping_add(hash) });
        self.children.insert((state, v), next);
        next
    }
}

/// A fast hasher for small integer keys (the Fx hash of rustc), deterministic.
#[derive(Default, Clone, Copy)]
struct FxBuild;

impl std::hash::BuildHasher for FxBuild {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.write_u64(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        for &b in chunks.remainder() {
            self.write_u64(u64::from(b));
        }
    }
    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

const NIL: u32 = u32::MAX;

/// A fixed pseudo-random 64-bit key per operation index (splitmix64).
fn zobrist_key(i: u64) -> u64 {
    let mut z = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(0x6a09_e667_f3bc_c909);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The configurations already explored, for pruning.
///
/// A configuration is (definite operations linearized, unknown-outcome
/// operations linearized, state). It is found by the definite set and the state
/// — an open-addressing table keyed by the set itself (a bitset compared in
/// full, found by its Zobrist hash), so no two configurations are ever confused
/// — and holds the unknown sets explored with them. A new configuration is
/// pruned when an explored one had a **subset** of its unknown operations: an
/// unknown operation never has to take effect, and one not yet used can still
/// be used later, so fewer used is never worse (with no unknown operations this
/// is plain memoisation). Bitsets live in flat arenas: nothing is allocated per
/// configuration beyond amortised growth.
struct Seen {
    words: usize,
    unknown_words: usize,
    /// Entry index + 1 per slot; 0 is empty. Always a power of two long.
    slots: Vec<u32>,
    hashes: Vec<u64>,
    states: Vec<u32>,
    bits: Vec<u64>,
    /// Per entry: the first of its unknown sets (an index into `chain`).
    first: Vec<u32>,
    /// Per unknown set: the next one of the same entry, or `NIL`.
    chain: Vec<u32>,
    unknown_bits: Vec<u64>,
}

/// Configurations room is made for up front (most keys need fewer).
const RESERVED: usize = 1024;

impl Seen {
    fn new(words: usize, unknown_words: usize) -> Self {
        Seen {
            words,
            unknown_words,
            slots: vec![0; 2 * RESERVED],
            hashes: Vec::with_capacity(RESERVED),
            states: Vec::with_capacity(RESERVED),
            bits: Vec::with_capacity(RESERVED * words),
            first: Vec::with_capacity(RESERVED),
            chain: Vec::with_capacity(RESERVED),
            unknown_bits: Vec::with_capacity(RESERVED * unknown_words),
        }
    }

    /// Records a configuration; false if it, or one that dominates it, was
    /// already explored.
    #[inline]
    fn insert(&mut self, set_hash: u64, state: u32, bits: &[u64], unknown: &[u64]) -> bool {
        let hash = set_hash ^ (u64::from(state) + 1).wrapping_mul(0xff51_afd7_ed55_8ccd);
        if (self.states.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = (hash >> 16) as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                self.slots[i] = self.states.len() as u32 + 1;
                self.hashes.push(hash);
                self.states.push(state);
                self.bits.extend_from_slice(bits);
                self.first.push(NIL);
                let e = self.states.len() - 1;
                self.add_unknown(e, unknown);
                return true;
            }
            let e = (slot - 1) as usize;
            if self.hashes[e] == hash && self.states[e] == state && self.bits[e * self.words..(e + 1) * self.words] == *bits {
                let w = self.unknown_words;
                let mut at = self.first[e];
                while at != NIL {
                    let seen = &self.unknown_bits[at as usize * w..(at as usize + 1) * w];
                    if seen.iter().zip(unknown).all(|(s, u)| s & !u == 0) {
                        return false;
                    }
                    at = self.chain[at as usize];
                }
                self.add_unknown(e, unknown);
                return true;
            }
            i = (i + 1) & mask;
        }
    }

    fn add_unknown(&mut self, entry: usize, unknown: &[u64]) {
        let id = self.chain.len() as u32;
        self.chain.push(self.first[entry]);
        self.first[entry] = id;
        self.unknown_bits.extend_from_slice(unknown);
    }

    fn grow(&mut self) {
        let size = self.slots.len() * 2;
        let mask = size - 1;
        let mut slots = vec![0u32; size];
        for (e, &hash) in self.hashes.iter().enumerate() {
            let mut i = (hash >> 16) as usize & mask;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = e as u32 + 1;
        }
        self.slots = slots;
    }
}

/// One key's search, resumable: [`Search::run`] takes a step budget, so that the
/// keys can be searched side by side and a failing key found quickly even when
/// another key's search is long (as Porcupine finds it by checking keys in
/// parallel, but deterministically).
///
/// The entries (calls and returns in real-time order) sit in a doubly linked
/// list; linearizing an operation unlinks its call and return, backtracking
/// links them back (Wing & Gong; Lowe's memoisation of configurations).
struct Search<'a> {
    key: &'a str,
    ops: Vec<&'a Operation>,
    steps: Vec<Step>,
    /// Entry `i` is operation `entry_op[i] >> 1`, a return iff the low bit is set.
    entry_op: Vec<u32>,
    call_at: Vec<u32>,
    return_at: Vec<u32>,
    next: Vec<u32>,
    prev: Vec<u32>,
    head: u32,
    values: Values<'a>,
    state: u32,
    /// Per operation: whether its outcome is unknown, and its bit in the
    /// definite or the unknown bitset.
    unknown: Vec<bool>,
    bit: Vec<u32>,
    /// The linearized operations: definite ones as a bitset and as the xor of
    /// their keys, unknown ones as a bitset.
    bits: Vec<u64>,
    hash: u64,
    unknown_bits: Vec<u64>,
    zobrist: Vec<u64>,
    seen: Seen,
    /// For an operation with unknown outcome: the one invoked last before it
    /// with the same step and an unknown outcome too, or `NIL`. Two such twins
    /// are interchangeable (neither must return), so the later one is placed
    /// only once the earlier one is: a symmetry that would otherwise multiply
    /// the configurations by every subset of equal pending writes.
    twin: Vec<u32>,
    /// Candidates are tried definite operations first, then those with unknown
    /// outcomes: a configuration reached with fewer unknown operations used
    /// is then explored first, and its supersets are pruned (see [`Seen`]).
    unknown_phase: bool,
    /// Linearized operations with the state before each.
    stack: Vec<(u32, u32)>,
    /// How the key's state can change, for [`Search::hopeless`].
    hope: Hope,
    /// Per definite read or successful compare: the operations invoked before
    /// it returned that could make the key hold (or, for append keys, begin)
    /// the value it needs.
    producers: Vec<Vec<u32>>,
    /// The deepest point reached: (depth, blocked op, states seen there).
    deepest: (usize, u32, BTreeSet<u32>),
    at: u32,
}

/// What a key's operations can do to its state, which decides when an
/// operation waiting to take effect can no longer hope to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hope {
    /// Writes and compare-and-sets: a value is held again only if an operation
    /// writes it.
    Register,
    /// Writes and appends (no compare-and-set): the state only grows between
    /// writes, so a needed string must begin with the state or with a write.
    Append,
    /// Both appends and compare-and-sets: no pruning.
    Unknown,
}

enum Progress {
    Running,
    Linearizable,
    Violated(Box<Violation>),
}

impl<'a> Search<'a> {
    fn new(key: &'a str, ops: Vec<&'a Operation>, initial: Initial) -> Self {
        let n = ops.len();
        let events = event_order(&ops);
        let mut entry_op = Vec::with_capacity(events.len());
        let (mut call_at, mut return_at) = (vec![0u32; n], vec![0u32; n]);
        for (i, e) in events.iter().enumerate() {
            entry_op.push(((e.op as u32) << 1) | u32::from(e.is_return));
            if e.is_return {
                return_at[e.op] = i as u32;
            } else {
                call_at[e.op] = i as u32;
            }
        }
        let mut values = Values::new(ops.len() + 1);
        let state = values.intern(match initial {
            Initial::Absent => None,
            Initial::Empty => Some(""),
        });
        let steps: Vec<Step> = ops.iter().map(|op| values.compile(op)).collect();
        let mut twin = vec![NIL; n];
        let mut last_unknown: HashMap<(u8, u32, u32), u32, FxBuild> = HashMap::default();
        for e in events.iter().filter(|e| !e.is_return && ops[e.op].complete.is_none()) {
            let shape = match steps[e.op] {
                Step::Write(v) => (0, v, 0),
                Step::Append(v) => (1, v, 0),
                Step::CasMaybe(a, b) => (2, a, b),
                _ => continue,
            };
            if let Some(previous) = last_unknown.insert(shape, e.op as u32) {
                twin[e.op] = previous;
            }
        }
        // The list: entries 0..m, the head sentinel at m.
        let m = events.len() as u32;
        let mut next: Vec<u32> = (1..=m).collect();
        let mut prev: Vec<u32> = (0..m).map(|i| if i == 0 { m } else { i - 1 }).collect();
        if m > 0 {
            next[m as usize - 1] = NIL;
        }
        next.push(if m > 0 { 0 } else { NIL });
        prev.push(NIL);
        let unknown: Vec<bool> = ops.iter().map(|o| o.complete.is_none()).collect();
        let has_append = steps.iter().any(|s| matches!(s, Step::Append(_)));
        let has_cas = steps.iter().any(|s| matches!(s, Step::CasOk(..) | Step::CasFail(_) | Step::CasMaybe(..)));
        let hope = match (has_append, has_cas) {
            (false, _) => Hope::Register,
            (true, false) => Hope::Append,
            (true, true) => Hope::Unknown,
        };
        let mut producers = vec![Vec::new(); n];
        if hope != Hope::Unknown {
            // Writers by the value they leave, in invoke order.
            let mut writers: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
            for e in events.iter().filter(|e| !e.is_return) {
                if let Step::Write(w) | Step::CasOk(_, w) | Step::CasMaybe(_, w) = steps[e.op] {
                    writers.entry(w).or_default().push(e.op as u32);
                }
            }
            for r in (0..n).filter(|&r| !unknown[r]) {
                let need = match steps[r] {
                    Step::Read(v) | Step::CasOk(v, _) => v,
                    _ => continue,
                };
                let called_in_time = |j: &&u32| **j as usize != r && call_at[**j as usize] < return_at[r];
                // A writer can leave exactly the needed value; in an append key,
                // also any string the needed one begins with (appends follow).
                let target = values.values[need as usize];
                for (&w, list) in &writers {
                    let written = values.values[w as usize];
                    // (Appending to a deleted key starts from nothing.)
                    let helps = w == need
                        || (hope == Hope::Append && matches!((written, target), (None, Some(_))))
                        || (hope == Hope::Append && matches!((written, target), (Some(w), Some(t)) if t.starts_with(w)));
                    if helps {
                        producers[r].extend(list.iter().filter(called_in_time));
                    }
                }
            }
        }
        let (mut definite_count, mut unknown_count) = (0u32, 0u32);
        let bit: Vec<u32> = unknown
            .iter()
            .map(|&u| {
                let counter = if u { &mut unknown_count } else { &mut definite_count };
                *counter += 1;
                *counter - 1
            })
            .collect();
        let words = (definite_count as usize).div_ceil(64).max(1);
        let unknown_words = (unknown_count as usize).div_ceil(64).max(1);
        Search {
            key,
            ops,
            steps,
            entry_op,
            call_at,
            return_at,
            at: next[m as usize],
            next,
            prev,
            head: m,
            values,
            state,
            unknown,
            bit,
            bits: vec![0; words],
            hash: 0,
            unknown_bits: vec![0; unknown_words],
            zobrist: (0..n as u64).map(zobrist_key).collect(),
            seen: Seen::new(words, unknown_words),
            twin,
            unknown_phase: false,
            stack: Vec::new(),
            hope,
            producers,
            deepest: (0, NIL, BTreeSet::new()),
        }
    }

    /// Whether operation `r` — definite, invoked, not yet placed — can no
    /// longer take effect before it returns: the key does not hold (or, for
    /// append keys, begin) the value it needs, and nothing invoked in time and
    /// not yet placed could make it so.
    fn hopeless(&mut self, r: u32) -> bool {
        let need = match self.steps[r as usize] {
            Step::Read(v) | Step::CasOk(v, _) => v,
            _ => return false,
        };
        let hopeful = match self.hope {
            Hope::Register => self.values.holds(self.state, need),
            Hope::Append => self.values.begins(self.state, need) || self.values.holds(self.state, need),
            Hope::Unknown => true,
        };
        // The latest producers are the likeliest not to be placed yet.
        !hopeful && self.producers[r as usize].iter().rev().all(|&j| self.is_linearized(j))
    }

    /// The entry of the operation that must return first, if any operation
    /// invoked and not yet placed is hopeless (the configuration is then dead:
    /// that operation must take effect before it returns).
    fn hopeless_return(&mut self) -> Option<u32> {
        let mut at = self.next[self.head as usize];
        let mut doomed = false;
        while at != NIL && self.entry_op[at as usize] & 1 == 0 {
            let op = self.entry_op[at as usize] >> 1;
            doomed = doomed || (!self.unknown[op as usize] && self.hopeless(op));
            at = self.next[at as usize];
        }
        (doomed && at != NIL).then_some(at)
    }

    #[inline]
    fn unlink(&mut self, i: u32) {
        let (p, n) = (self.prev[i as usize], self.next[i as usize]);
        self.next[p as usize] = n;
        if n != NIL {
            self.prev[n as usize] = p;
        }
    }

    #[inline]
    fn relink(&mut self, i: u32) {
        let (p, n) = (self.prev[i as usize], self.next[i as usize]);
        self.next[p as usize] = i;
        if n != NIL {
            self.prev[n as usize] = i;
        }
    }

    #[inline]
    fn flip(&mut self, op: u32) {
        let b = self.bit[op as usize];
        if self.unknown[op as usize] {
            self.unknown_bits[(b >> 6) as usize] ^= 1u64 << (b & 63);
        } else {
            self.bits[(b >> 6) as usize] ^= 1u64 << (b & 63);
            self.hash ^= self.zobrist[op as usize];
        }
    }

    #[inline]
    fn is_linearized(&self, op: u32) -> bool {
        let b = self.bit[op as usize];
        let set = if self.unknown[op as usize] { &self.unknown_bits } else { &self.bits };
        set[(b >> 6) as usize] & (1u64 << (b & 63)) != 0
    }

    fn run(&mut self, mut budget: u64) -> Progress {
        while self.at != NIL {
            if budget == 0 {
                return Progress::Running;
            }
            budget -= 1;
            let entry = self.entry_op[self.at as usize];
            let op = entry >> 1;
            if entry & 1 == 0 {
                let twin = self.twin[op as usize];
                if self.unknown[op as usize] != self.unknown_phase || (twin != NIL && !self.is_linearized(twin)) {
                    self.at = self.next[self.at as usize];
                    continue;
                }
                // An unknown operation only changes the state; a write right after
                // it erases that, so the order "unknown, then write" is the order
                // "write" with the unknown one never happening: tried elsewhere.
                let erases_unknown = matches!(self.steps[op as usize], Step::Write(_)) && self.stack.last().is_some_and(|&(top, _)| self.unknown[top as usize]);
                if erases_unknown {
                    self.at = self.next[self.at as usize];
                    continue;
                }
                if let Some(next_state) = self.values.step(self.state, self.steps[op as usize]) {
                    self.flip(op);
                    if self.seen.insert(self.hash, next_state, &self.bits, &self.unknown_bits) {
                        self.stack.push((op, self.state));
                        self.state = next_state;
                        self.unknown_phase = false;
                        self.unlink(self.call_at[op as usize]);
                        self.unlink(self.return_at[op as usize]);
                        self.at = self.next[self.head as usize];
                        // Placing a read or a failed compare changes neither the
                        // state nor what can still be written: no new doom.
                        let changes = !matches!(self.steps[op as usize], Step::Read(_) | Step::CasFail(_));
                        if let Some(doomed) = if changes { self.hopeless_return() } else { None } {
                            // Nothing here can save the operation that must
                            // return first: go straight to its return, which
                            // backtracks.
                            self.at = doomed;
                            self.unknown_phase = true;
                        }
                        continue;
                    }
                    self.flip(op);
                }
                self.at = self.next[self.at as usize];
                continue;
            }
            if self.ops[op as usize].complete.is_none() {
                // Only operations with unknown outcomes are left: they never happened.
                return Progress::Linearizable;
            }
            if !self.unknown_phase {
                // Every definite candidate was tried; now the unknown ones.
                self.unknown_phase = true;
                self.at = self.next[self.head as usize];
                continue;
            }
            if self.stack.len() > self.deepest.0 || self.deepest.1 == NIL {
                self.deepest = (self.stack.len(), op, BTreeSet::new());
            }
            if self.stack.len() == self.deepest.0 && self.deepest.1 == op {
                self.deepest.2.insert(self.state);
            }
            let Some((undo, previous)) = self.stack.pop() else {
                return Progress::Violated(Box::new(self.violation()));
            };
            self.state = previous;
            self.unknown_phase = self.unknown[undo as usize];
            self.flip(undo);
            self.relink(self.return_at[undo as usize]);
            self.relink(self.call_at[undo as usize]);
            self.at = self.next[self.call_at[undo as usize] as usize];
        }
        // The list ran empty: every operation was linearized.
        Progress::Linearizable
    }

    fn violation(&self) -> Violation {
        let blocked = self.ops[self.deepest.1 as usize];
        let done = blocked.complete.unwrap_or(u64::MAX);
        // The window: the blocked operation and every operation overlapping it.
        let mut window: Vec<Operation> =
            self.ops.iter().filter(|o| o.invoke <= done && o.complete.unwrap_or(u64::MAX) >= blocked.invoke).map(|o| (*o).clone()).collect();
        window.sort_by_key(|o| (o.invoke, o.process));
        let mut states_before: Vec<Option<String>> = self.deepest.2.iter().map(|&s| self.values.value_of(s)).collect();
        states_before.sort();
        states_before.dedup();
        Violation { key: self.key.to_string(), blocked: blocked.clone(), window, states_before, linearized: self.deepest.0 }
    }
}

/// This checker in the registry ([`super::registry::ALL`]).
pub struct Rule;

impl super::registry::Check for Rule {
    fn name(&self) -> super::Checker {
        super::Checker::Linearizability
    }

    fn applies(&self, scenario: &crate::scenario::Scenario) -> bool {
        scenario.checkers.linearizability
    }

    fn check(&self, run: &super::registry::Inputs) -> super::registry::Verdict {
        use super::registry::{Finding, NamedOp};
        match check_with_limit(run.history, run.scenario.checkers.linearizability_steps) {
            Verdict::Linearizable => super::registry::Verdict::Pass,
            Verdict::NotLinearizable(v) => {
                let mut explanation = explain(run.history, &v);
                if let Some(a) = run.records.served.get(&(v.blocked.process, v.blocked.invoke)) {
                    let peer = a.peer.map_or_else(|| "no peer of it".to_string(), |p| format!("peer {p}"));
                    explanation += &format!("\nThe operation that cannot be placed was answered by store {} ({peer} of region {}).", a.store, a.region);
                }
                let named = v.window.iter().map(|o| NamedOp { process: o.process, invoke: o.invoke, culprit: *o == v.blocked }).collect();
                super::registry::Verdict::Fail(Finding { explanation, marks: vec![], named })
            }
            Verdict::Inconclusive { keys, steps } => super::registry::Verdict::Inconclusive(format!(
                "the search ran out of its budget of {steps} steps for keys {keys:?} without a verdict: this run was neither shown linearizable nor shown not to be (replay it and run `simkv-sim check --max-steps N` on its history.edn)"
            )),
        }
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
        History { ops, ..History::new(Initial::Absent, Clock::Nanos) }
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

    #[test]
    fn a_process_is_sequential_at_equal_times() {
        // Process 0 writes 1, returning at 10, then reads at 10 and sees nil:
        // its own write had already taken effect.
        let h = history(vec![op(0, Call::Write("1".into()), Outcome::Done, 0, Some(10)), op(0, Call::Read, Outcome::Read(None), 10, Some(20))]);
        assert!(!check(&h).is_ok(), "a process's read was ordered before its own earlier write");
        // Zero-length operations at one instant too.
        let h = history(vec![op(0, Call::Write("1".into()), Outcome::Done, 5, Some(5)), op(0, Call::Read, Outcome::Read(None), 5, Some(5))]);
        assert!(!check(&h).is_ok());
        // Different processes at the same instant overlap: either order is fine.
        let h = history(vec![op(0, Call::Write("1".into()), Outcome::Done, 0, Some(10)), op(1, Call::Read, Outcome::Read(None), 10, Some(20))]);
        assert!(check(&h).is_ok());
    }

    #[test]
    fn equal_unknown_writes_are_interchangeable_and_never_required() {
        // Many unknown writes of a few values, reads that need some of them:
        // the twin and subset rules must not lose a valid order.
        let mut ops = Vec::new();
        for i in 0..30u64 {
            ops.push(op(100 + i, Call::Write((i % 3).to_string()), Outcome::Unknown, i, None));
        }
        ops.push(op(0, Call::Read, Outcome::Read(Some("2".into())), 40, Some(41)));
        ops.push(op(0, Call::Read, Outcome::Read(Some("0".into())), 42, Some(43)));
        ops.push(op(0, Call::Read, Outcome::Read(Some("2".into())), 44, Some(45)));
        assert!(check(&history(ops.clone())).is_ok());
        // A value no unknown write wrote cannot appear.
        ops.push(op(0, Call::Read, Outcome::Read(Some("3".into())), 46, Some(47)));
        assert!(!check(&history(ops)).is_ok());
        // One unknown write can be used only once.
        let h = history(vec![
            op(9, Call::Write("1".into()), Outcome::Unknown, 0, None),
            op(0, Call::Read, Outcome::Read(Some("1".into())), 10, Some(11)),
            op(0, Call::Write("2".into()), Outcome::Done, 12, Some(13)),
            op(0, Call::Read, Outcome::Read(Some("1".into())), 14, Some(15)),
        ]);
        assert!(!check(&h).is_ok());
    }

    #[test]
    fn a_value_written_only_by_a_failed_operation_is_named() {
        let h = history(vec![
            op(0, Call::Write("5000264".into()), Outcome::Failed, 0, Some(10)),
            op(1, Call::Read, Outcome::Read(Some("5000264".into())), 20, Some(30)),
        ]);
        let Verdict::NotLinearizable(v) = check(&h) else { panic!("read of a failed write accepted") };
        let text = explain(&h, &v);
        assert!(
            text.contains("Value \"5000264\" was written only by an operation recorded as failed: [0.000000s .. 0.000000s] process 0 key \"x\": write \"5000264\" failed (did not happen)"),
            "{text}"
        );
        let never = history(vec![op(1, Call::Read, Outcome::Read(Some("7".into())), 20, Some(30))]);
        let Verdict::NotLinearizable(v) = check(&never) else { panic!() };
        assert!(explain(&never, &v).contains("Value \"7\" was never written"));
    }

    #[test]
    fn long_windows_are_shown_around_the_blocked_operation() {
        let mut ops: Vec<Operation> = (0..40u64).map(|i| op(10 + i, Call::Write("1".into()), Outcome::Unknown, i, None)).collect();
        ops.push(op(0, Call::Read, Outcome::Read(Some("2".into())), 50, Some(60)));
        let h = history(ops);
        let Verdict::NotLinearizable(v) = check(&h) else { panic!() };
        let text = explain(&h, &v);
        assert!(text.contains("... 32 earlier operations of the window ..."), "{text}");
        assert!(text.lines().count() < 20, "{text}");
    }

    /// Every order of every subset of the unknown operations, tried one by one:
    /// slow, obviously right, and independent of the search's shortcuts.
    fn brute_force(h: &History) -> bool {
        let ops: Vec<&Operation> = h.ops.iter().filter(|o| o.outcome != Outcome::Failed).collect();
        let before = |a: &Operation, b: &Operation| a.complete.is_some_and(|c| c < b.invoke);
        fn step(state: &Option<String>, op: &Operation) -> Option<Option<String>> {
            match (&op.call, &op.outcome) {
                (Call::Read, Outcome::Read(v)) => (v == state).then(|| state.clone()),
                (Call::Write(v), _) => Some(Some(v.clone())),
                (Call::Delete, _) => Some(None),
                (Call::Append(v), _) => Some(Some(format!("{}{v}", state.as_deref().unwrap_or("")))),
                (Call::Cas(a, b), Outcome::CasOk) => (state.as_deref() == Some(a.as_str())).then(|| Some(b.clone())),
                (Call::Cas(a, _), Outcome::CasFailed) => (state.as_deref() != Some(a.as_str())).then(|| state.clone()),
                (Call::Cas(a, b), Outcome::Unknown) => Some(if state.as_deref() == Some(a.as_str()) { Some(b.clone()) } else { state.clone() }),
                _ => None,
            }
        }
        fn search(ops: &[&Operation], done: &mut Vec<bool>, state: Option<String>, before: &dyn Fn(&Operation, &Operation) -> bool) -> bool {
            // Done when every definite operation is placed (unknown ones may never happen).
            if ops.iter().zip(done.iter()).all(|(o, d)| *d || o.complete.is_none()) {
                return true;
            }
            for i in 0..ops.len() {
                if done[i] || (0..ops.len()).any(|j| !done[j] && j != i && before(ops[j], ops[i])) {
                    continue;
                }
                if let Some(next) = step(&state, ops[i]) {
                    done[i] = true;
                    if search(ops, done, next, before) {
                        return true;
                    }
                    done[i] = false;
                }
            }
            false
        }
        let initial = match h.initial {
            Initial::Absent => None,
            Initial::Empty => Some(String::new()),
        };
        search(&ops, &mut vec![false; ops.len()], initial, &before)
    }

    #[test]
    fn agrees_with_brute_force_on_small_random_histories() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = move |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let (mut valid, mut invalid) = (0, 0);
        for case in 0..20_000 {
            let appends = case % 2 == 1;
            let n = 1 + next(7) as usize;
            let values: &[&str] = if appends { &["a", "b", "ab"] } else { &["1", "2", "3"] };
            // Invoke and complete times all distinct: the real-time order is plain.
            let mut times: Vec<u64> = (0..2 * n as u64).collect();
            for k in (1..times.len()).rev() {
                times.swap(k, next(k as u64 + 1) as usize);
            }
            let mut ops = Vec::new();
            for k in 0..n {
                let (a, b) = (times[2 * k].min(times[2 * k + 1]), times[2 * k].max(times[2 * k + 1]));
                let v = values[next(3) as usize].to_string();
                let (call, outcome) = match next(if appends { 4 } else { 5 }) {
                    0 => (Call::Read, Outcome::Read(None)),
                    1 => (Call::Write(v), Outcome::Done),
                    2 if appends => (Call::Append(v), Outcome::Done),
                    3 if appends => (Call::Delete, Outcome::Done),
                    4 => (Call::Delete, Outcome::Done),
                    _ => (Call::Cas(values[next(3) as usize].to_string(), v), Outcome::CasOk),
                };
                let unknown = call != Call::Read && next(4) == 0;
                ops.push(op(k as u64, call, if unknown { Outcome::Unknown } else { outcome }, a, (!unknown).then_some(b)));
            }
            // Answers from one random order of effects, then maybe one lie.
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|&k| (ops[k].invoke + next(1 + ops[k].complete.unwrap_or(ops[k].invoke + 3) - ops[k].invoke), k));
            let mut state: Option<String> = if appends { Some(String::new()) } else { None };
            for k in order {
                let happened = ops[k].outcome != Outcome::Unknown || next(2) == 0;
                match ops[k].call.clone() {
                    Call::Read => ops[k].outcome = Outcome::Read(state.clone()),
                    Call::Write(v) if happened => state = Some(v),
                    Call::Delete if happened => state = None,
                    Call::Append(v) if happened => state = Some(format!("{}{v}", state.as_deref().unwrap_or(""))),
                    Call::Cas(a, b) => {
                        let equal = state.as_deref() == Some(a.as_str());
                        if ops[k].outcome != Outcome::Unknown {
                            ops[k].outcome = if equal { Outcome::CasOk } else { Outcome::CasFailed };
                        }
                        if equal && happened {
                            state = Some(b);
                        }
                    }
                    _ => {}
                }
            }
            if next(2) == 0 {
                if let Some(k) = (0..n).find(|&k| ops[k].call == Call::Read) {
                    let lie = ["", "a", "ab", "ba", "aab", "1", "2"][next(7) as usize];
                    ops[k].outcome = Outcome::Read(if next(5) == 0 { None } else { Some(lie.to_string()) });
                }
            }
            let h = History { initial: if appends { Initial::Empty } else { Initial::Absent }, ..history(ops) };
            let expected = brute_force(&h);
            assert_eq!(check(&h).is_ok(), expected, "case {case}: {:#?}", h.ops);
            if expected {
                valid += 1
            } else {
                invalid += 1
            }
        }
        assert!(valid > 5000 && invalid > 2500, "both verdicts exercised: {valid} valid, {invalid} invalid");
    }
}
