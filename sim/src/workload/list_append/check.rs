//! Snapshot isolation (and its neighbours) for list-append histories, as Elle
//! checks it: infer each key's version order from the reads, derive the
//! dependency graph between committed transactions, and look for the cycles and
//! the non-cyclic anomalies the chosen model forbids.
//!
//! **Version order.** Appended values are unique per key, so every external read
//! (a read of a key before the transaction appended to it) reveals a prefix of
//! the key's order; reads after a transaction's own appends are checked for
//! internal consistency only; the longest read is the order, and every other
//! read must be a prefix of it (`incompatible-order` otherwise). A committed
//! append that no read shows comes after everything the longest read shows (the
//! final list holds it, and the longest read is a prefix of the final list), so
//! it follows the last value read (`ww`) and every read of the whole known
//! order missed it (`rw`); the order among such unread appends is unknown.
//!
//! **Edges** (between `:ok` transactions, and `:info` ones a read proves
//! committed): `ww` T1 appended v, T2 the next value of the key; `wr` T2 read a
//! version ending in T1's value; `rw` T1 read a version of the key and T2
//! appended the next value (T1 did not see it); `rt` (strong models only) T1
//! committed before T2 was invoked.
//!
//! **Cycles**, classified as in Adya and Elle: `G0` (only ww), `G1c` (ww and wr),
//! `G-single` (exactly one rw), `G-nonadjacent` (several rw, no two adjacent),
//! `G2-item` (two adjacent rw: allowed by snapshot isolation, not by
//! serializability); with rt edges in the cycle the name gets `-realtime`. They
//! are found without searching every cycle: SCCs of the non-rw graph give G0
//! and G1c; a graph where an rw edge must be followed by a non-rw one (a copy
//! of each node reached by rw, leaving only by non-rw edges) has a cycle exactly
//! when a G-single or G-nonadjacent exists; SCCs of the whole graph give G2.
//! Concrete cycles are then found by breadth-first search inside one SCC. SCCs
//! come from petgraph's Kosaraju search, which does not recurse: a history of
//! 100,000 transactions in one long chain cannot overflow the stack.
//!
//! **Not cycles:** `G1a` (aborted read: a value only a `:fail` transaction
//! appended), `G1b` (intermediate read: a version ending in the middle of one
//! transaction's appends), `lost-update` (two committed transactions read the
//! same version of a key and both appended to it), `internal` (a transaction
//! does not see its own earlier appends and reads), `garbage-read` (a value no
//! one appended), `duplicate-append`.

use super::history::{Mop, TxnHistory, TxnOutcome};
use petgraph::algo::kosaraju_scc;
use petgraph::graph::DiGraph;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;

/// The consistency model a history is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Model {
    SnapshotIsolation,
    /// Snapshot isolation, and a transaction sees every one that committed before
    /// it began (real time).
    StrongSnapshotIsolation,
    Serializable,
    StrictSerializable,
}

impl Model {
    pub fn parse(name: &str) -> Option<Model> {
        Some(match name {
            "snapshot-isolation" | "si" => Model::SnapshotIsolation,
            "strong-snapshot-isolation" | "strong-si" => Model::StrongSnapshotIsolation,
            "serializable" => Model::Serializable,
            "strict-serializable" => Model::StrictSerializable,
            _ => return None,
        })
    }

    fn realtime(self) -> bool {
        matches!(self, Model::StrongSnapshotIsolation | Model::StrictSerializable)
    }

    fn forbids_g2(self) -> bool {
        matches!(self, Model::Serializable | Model::StrictSerializable)
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Model::SnapshotIsolation => "snapshot-isolation",
            Model::StrongSnapshotIsolation => "strong-snapshot-isolation",
            Model::Serializable => "serializable",
            Model::StrictSerializable => "strict-serializable",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    pub kind: String,
    pub explanation: String,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub model: Model,
    pub txns: usize,
    /// Everything the model forbids that the history shows.
    pub anomalies: Vec<Anomaly>,
    /// Cycles the model allows (G2-item under snapshot isolation), for the record.
    pub allowed: Vec<Anomaly>,
}

impl Report {
    pub fn valid(&self) -> bool {
        self.anomalies.is_empty()
    }

    /// Every anomaly kind found, in order, without repeats.
    pub fn kinds(&self) -> Vec<&str> {
        let mut kinds: Vec<&str> = self.anomalies.iter().map(|a| a.kind.as_str()).collect();
        kinds.dedup();
        kinds
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum EdgeKind {
    Ww,
    Wr,
    Rw,
    Rt,
}

#[derive(Debug, Clone, Copy)]
struct Edge {
    from: u32,
    to: u32,
    kind: EdgeKind,
    key: u32,
    value: u32,
}

/// At most this many examples of each anomaly kind are explained.
const EXAMPLES: usize = 3;

struct Checker<'a> {
    h: &'a TxnHistory,
    model: Model,
    anomalies: Vec<Anomaly>,
    allowed: Vec<Anomaly>,
    counts: BTreeMap<String, usize>,
}

impl Checker<'_> {
    fn report(&mut self, kind: &str, explanation: impl FnOnce() -> String) {
        let count = self.counts.entry(kind.to_string()).or_insert(0);
        *count += 1;
        if *count <= EXAMPLES {
            self.anomalies.push(Anomaly { kind: kind.to_string(), explanation: explanation() });
        }
    }
}

/// Checks `h` against `model`.
pub fn check(h: &TxnHistory, model: Model) -> Report {
    let mut c = Checker { h, model, anomalies: Vec::new(), allowed: Vec::new(), counts: BTreeMap::new() };
    let n = h.txns.len();
    // Who appended each (key, value), and where in its own appends to that key.
    let mut writer: HashMap<(u32, u32), (u32, u32)> = HashMap::new();
    let mut appends_to: HashMap<(u32, u32), u32> = HashMap::new();
    for (t, txn) in h.txns.iter().enumerate() {
        for m in &txn.mops {
            if let Mop::Append { key, value } = *m {
                let nth = appends_to.entry((t as u32, key)).or_insert(0);
                if let Some(&(other, _)) = writer.get(&(key, value)) {
                    c.report("duplicate-append", || {
                        format!("{} = {} was appended by both {} and {}", h.key_name(key), h.value_name(value), h.describe(other as usize), h.describe(t))
                    });
                } else {
                    writer.insert((key, value), (t as u32, *nth));
                }
                *nth += 1;
            }
        }
    }
    // Internal consistency, and each committed read (the reads of `:ok` txns).
    let mut reads: Vec<(u32, u32, &[u32])> = Vec::new(); // (txn, key, values)
    for (t, txn) in h.txns.iter().enumerate().filter(|(_, t)| t.outcome == TxnOutcome::Ok) {
        let mut state: HashMap<u32, (Option<Vec<u32>>, Vec<u32>)> = HashMap::new(); // key -> (last read, own appends since)
        let mut appended: std::collections::HashSet<u32> = std::collections::HashSet::new();
        for m in &txn.mops {
            match m {
                Mop::Append { key, value } => {
                    state.entry(*key).or_default().1.push(*value);
                    appended.insert(*key);
                }
                Mop::Read { key, values: Some(vs) } => {
                    let (seen, mine) = state.entry(*key).or_default();
                    let expected_ok = match seen {
                        Some(prev) => vs.len() == prev.len() + mine.len() && vs.starts_with(prev) && vs.ends_with(mine),
                        None => vs.ends_with(mine),
                    };
                    if !expected_ok {
                        let (prev, own) = (seen.clone(), mine.clone());
                        c.report("internal", || {
                            format!(
                                "{} read {} = {}, which does not show what it read before ({}) and appended since ({})",
                                h.describe(t),
                                h.key_name(*key),
                                c_values(h, vs),
                                prev.map_or("nothing".into(), |p| c_values(h, &p)),
                                c_values(h, &own)
                            )
                        });
                    }
                    // Only external reads (before the transaction appended to the
                    // key) say anything about other transactions, as in Elle.
                    let external = !appended.contains(key);
                    *seen = Some(vs.clone());
                    mine.clear();
                    if external {
                        reads.push((t as u32, *key, vs));
                    }
                }
                Mop::Read { .. } => {}
            }
        }
    }
    // Version orders: the longest read of each key; the others must be prefixes.
    let mut order: HashMap<u32, &[u32]> = HashMap::new();
    for &(_, key, vs) in &reads {
        let longest = order.entry(key).or_insert(vs);
        if vs.len() > longest.len() {
            *longest = vs;
        }
    }
    for &(t, key, vs) in &reads {
        let longest = order[&key];
        if !longest.starts_with(vs) {
            let text = c_values(h, vs);
            let other = c_values(h, longest);
            c.report("incompatible-order", || {
                format!("{} read {} = {text}, which is not a prefix of {other} read elsewhere", h.describe(t as usize), h.key_name(key))
            });
        }
        for (i, v) in vs.iter().enumerate() {
            match writer.get(&(key, *v)) {
                None => c.report("garbage-read", || {
                    format!("{} read {} = {}, but no transaction appended {}", h.describe(t as usize), h.key_name(key), c_values(h, vs), h.value_name(*v))
                }),
                Some(&(w, _)) if h.txns[w as usize].outcome == TxnOutcome::Fail => c.report("G1a", || {
                    format!(
                        "aborted read: {} read {} = {}, and {} was appended only by {}, which failed",
                        h.describe(t as usize),
                        h.key_name(key),
                        c_values(h, vs),
                        h.value_name(*v),
                        h.describe(w as usize)
                    )
                }),
                Some(&(w, nth)) if i + 1 == vs.len() && w != t && nth + 1 < appends_to[&(w, key)] => c.report("G1b", || {
                    format!(
                        "intermediate read: {} read {} = {}, which ends in the middle of {}'s appends to it",
                        h.describe(t as usize),
                        h.key_name(key),
                        c_values(h, vs),
                        h.describe(w as usize)
                    )
                }),
                _ => {}
            }
        }
    }
    // Lost updates: two committed transactions that read the same version of a
    // key before appending to it.
    let mut read_then_appended: BTreeMap<(u32, usize), Vec<u32>> = BTreeMap::new();
    for (t, txn) in h.txns.iter().enumerate().filter(|(_, t)| t.outcome == TxnOutcome::Ok) {
        let mut first_read: HashMap<u32, usize> = HashMap::new();
        for m in &txn.mops {
            match m {
                Mop::Read { key, values: Some(vs) } => {
                    first_read.entry(*key).or_insert(vs.len());
                }
                Mop::Append { key, .. } => {
                    if let Some(len) = first_read.remove(key) {
                        read_then_appended.entry((*key, len)).or_default().push(t as u32);
                    }
                }
                _ => {}
            }
        }
    }
    for ((key, len), txns) in &read_then_appended {
        if txns.len() > 1 {
            let version = order.get(key).map_or(vec![], |o| o[..(*len).min(o.len())].to_vec());
            c.report("lost-update", || {
                format!(
                    "{} and {} both read {} = {} and both appended to it",
                    h.describe(txns[0] as usize),
                    h.describe(txns[1] as usize),
                    h.key_name(*key),
                    c_values(h, &version)
                )
            });
        }
    }

    // The graph: committed transactions, and :info ones whose appends were read.
    let mut node = vec![false; n];
    for (t, txn) in h.txns.iter().enumerate() {
        node[t] = txn.outcome == TxnOutcome::Ok;
    }
    for (&key, vs) in &order {
        for v in *vs {
            if let Some(&(w, _)) = writer.get(&(key, *v)) {
                if h.txns[w as usize].outcome == TxnOutcome::Info {
                    node[w as usize] = true;
                }
            }
        }
    }
    let mut edges: Vec<Edge> = Vec::new();
    let mut keys: Vec<u32> = order.keys().copied().collect();
    keys.sort_unstable();
    for &key in &keys {
        let vs = order[&key];
        for pair in vs.windows(2) {
            if let (Some(&(a, _)), Some(&(b, _))) = (writer.get(&(key, pair[0])), writer.get(&(key, pair[1]))) {
                if a != b && node[a as usize] && node[b as usize] {
                    edges.push(Edge { from: a, to: b, kind: EdgeKind::Ww, key, value: pair[1] });
                }
            }
        }
    }
    // Committed appends no read shows: after the whole known order of their key.
    let mut unread: BTreeMap<u32, Vec<(u32, u32)>> = BTreeMap::new(); // key -> (txn, value)
    {
        let mut shown: std::collections::HashSet<(u32, u32)> = std::collections::HashSet::new();
        for (&key, vs) in &order {
            shown.extend(vs.iter().map(|v| (key, *v)));
        }
        for (t, txn) in h.txns.iter().enumerate().filter(|(_, t)| t.outcome == TxnOutcome::Ok) {
            for m in &txn.mops {
                if let Mop::Append { key, value } = *m {
                    if !shown.contains(&(key, value)) && writer.get(&(key, value)).is_some_and(|(w, _)| *w == t as u32) {
                        unread.entry(key).or_default().push((t as u32, value));
                    }
                }
            }
        }
    }
    for (&key, tail) in &unread {
        let known: &[u32] = order.get(&key).copied().unwrap_or(&[]);
        if let Some(&(last_writer, _)) = known.last().and_then(|v| writer.get(&(key, *v))) {
            for &(w, value) in tail {
                if w != last_writer && node[last_writer as usize] {
                    edges.push(Edge { from: last_writer, to: w, kind: EdgeKind::Ww, key, value });
                }
            }
        }
    }
    for &(r, key, vs) in &reads {
        if let Some(tail) = unread.get(&key) {
            if order.get(&key).is_none_or(|full| full.len() == vs.len()) {
                for &(w, value) in tail {
                    if w != r {
                        edges.push(Edge { from: r, to: w, kind: EdgeKind::Rw, key, value });
                    }
                }
            }
        }
        if let Some(&last) = vs.last() {
            if let Some(&(w, _)) = writer.get(&(key, last)) {
                if w != r && node[w as usize] {
                    edges.push(Edge { from: w, to: r, kind: EdgeKind::Wr, key, value: last });
                }
            }
        }
        let full = order[&key];
        if vs.len() < full.len() && full.starts_with(vs) {
            let next = full[vs.len()];
            if let Some(&(w, _)) = writer.get(&(key, next)) {
                if w != r && node[w as usize] {
                    edges.push(Edge { from: r, to: w, kind: EdgeKind::Rw, key, value: next });
                }
            }
        }
    }
    // Real time, through a chain of barrier nodes (ids from n on): a txn's commit
    // leads to the next barrier, a barrier to the next one and to every txn
    // invoked after it. T1 reaches T2 through barriers iff T1 committed first.
    let mut total = n as u32;
    if model.realtime() {
        let mut events: Vec<(u64, bool, u32)> = Vec::new(); // (position, is_invoke, txn)
        for (t, txn) in h.txns.iter().enumerate().filter(|(t, _)| node[*t]) {
            events.push((txn.invoke, true, t as u32));
            if let Some(done) = txn.complete {
                events.push((done, false, t as u32));
            }
        }
        events.sort_unstable();
        let mut barrier: Option<u32> = None;
        for (_, is_invoke, t) in events {
            if is_invoke {
                if let Some(b) = barrier {
                    edges.push(Edge { from: b, to: t, kind: EdgeKind::Rt, key: 0, value: 0 });
                }
            } else {
                let b = total;
                total += 1;
                edges.push(Edge { from: t, to: b, kind: EdgeKind::Rt, key: 0, value: 0 });
                if let Some(prev) = barrier {
                    edges.push(Edge { from: prev, to: b, kind: EdgeKind::Rt, key: 0, value: 0 });
                }
                barrier = Some(b);
            }
        }
    }
    edges.sort_by_key(|e| (e.from, e.to, e.kind));
    edges.dedup_by_key(|e| (e.from, e.to, e.kind));
    let graph = Graph { n: n as u32, total, edges };
    graph.find_cycles(&mut c);
    let Checker { anomalies, allowed, counts, .. } = c;
    let mut anomalies = anomalies;
    for (kind, count) in counts {
        if count > EXAMPLES {
            anomalies.push(Anomaly { kind: kind.clone(), explanation: format!("... and {} more {kind} not shown", count - EXAMPLES) });
        }
    }
    Report { model, txns: n, anomalies, allowed }
}

fn c_values(h: &TxnHistory, vs: &[u32]) -> String {
    format!("[{}]", vs.iter().map(|v| h.value_name(*v)).collect::<Vec<_>>().join(" "))
}

struct Graph {
    /// Transactions are nodes `0..n`; barrier nodes `n..total`.
    n: u32,
    total: u32,
    edges: Vec<Edge>,
}

impl Graph {
    fn sccs(&self, nodes: u32, edges: impl Iterator<Item = (u32, u32)>) -> Vec<Vec<u32>> {
        let g: DiGraph<(), ()> = DiGraph::from_edges(edges);
        let mut g = g;
        while g.node_count() < nodes as usize {
            g.add_node(());
        }
        kosaraju_scc(&g).into_iter().map(|c| c.into_iter().map(|i| i.index() as u32).collect::<Vec<u32>>()).filter(|c| c.len() > 1).collect()
    }

    fn find_cycles(&self, c: &mut Checker) {
        let non_rw = |e: &Edge| e.kind != EdgeKind::Rw;
        // G0, then G1c: cycles of ww edges, then of ww, wr and rt edges.
        let mut seen_in_g1 = vec![false; self.total as usize];
        for kinds in [&[EdgeKind::Ww][..], &[EdgeKind::Ww, EdgeKind::Wr, EdgeKind::Rt][..]] {
            let allowed = |e: &Edge| kinds.contains(&e.kind);
            for scc in self.sccs(self.total, self.edges.iter().filter(|e| allowed(e)).map(|e| (e.from, e.to))) {
                if scc.iter().any(|v| seen_in_g1[*v as usize]) {
                    continue;
                }
                scc.iter().for_each(|v| seen_in_g1[*v as usize] = true);
                if let Some(cycle) = self.cycle_in(&scc, &allowed) {
                    self.report_cycle(c, &cycle);
                }
            }
        }
        // G-single and G-nonadjacent: node v is `v` (left by any edge) or `v'`
        // (reached by rw, left only by non-rw edges).
        let primed = |v: u32| v + self.total;
        let h_edges =
            self.edges.iter().flat_map(|e| if e.kind == EdgeKind::Rw { vec![(e.from, primed(e.to))] } else { vec![(e.from, e.to), (primed(e.from), e.to)] });
        for scc in self.sccs(2 * self.total, h_edges) {
            let mut members: Vec<u32> = scc.iter().map(|v| v % self.total).collect();
            members.sort_unstable();
            members.dedup();
            if !scc.iter().any(|v| *v >= self.total) {
                continue;
            }
            // Prefer a cycle with one rw edge: for an rw edge a -> b inside,
            // b reaching a by non-rw edges.
            let non_rw_adjacency = self.adjacency(&members, &non_rw);
            let single = self
                .edges
                .iter()
                .filter(|e| e.kind == EdgeKind::Rw && members.binary_search(&e.from).is_ok() && members.binary_search(&e.to).is_ok())
                .find_map(|rw| {
                    let path = Self::path(&non_rw_adjacency, rw.to, rw.from)?;
                    Some([vec![*rw], path].concat())
                });
            match single {
                Some(cycle) => self.report_cycle(c, &cycle),
                None => {
                    if let Some(cycle) = self.nonadjacent_cycle(&members) {
                        self.report_cycle(c, &cycle);
                    }
                }
            }
        }
        // G2: any other cycle (two adjacent rw edges).
        for scc in self.sccs(self.total, self.edges.iter().map(|e| (e.from, e.to))) {
            let mut members = scc.clone();
            members.sort_unstable();
            if let Some(cycle) = self.cycle_in(&members, &|_| true) {
                let rw = cycle.iter().filter(|e| e.kind == EdgeKind::Rw).count();
                if rw >= 2 {
                    let kind = if cycle.iter().any(|e| e.kind == EdgeKind::Rt) { "G2-item-realtime" } else { "G2-item" };
                    let explanation = self.explain(c.h, &cycle);
                    if c.model.forbids_g2() {
                        c.report(kind, || explanation);
                    } else if c.allowed.len() < EXAMPLES {
                        c.allowed.push(Anomaly { kind: kind.into(), explanation });
                    }
                }
            }
        }
    }

    /// The shortest path from `from` to `to` over `adjacency`.
    fn path(adjacency: &HashMap<u32, Vec<Edge>>, from: u32, to: u32) -> Option<Vec<Edge>> {
        let mut prev: HashMap<u32, Edge> = HashMap::new();
        let mut queue = VecDeque::from([from]);
        let mut seen = std::collections::HashSet::from([from]);
        while let Some(v) = queue.pop_front() {
            for e in adjacency.get(&v).into_iter().flatten() {
                if seen.insert(e.to) {
                    prev.insert(e.to, *e);
                    if e.to == to {
                        let mut path = vec![*e];
                        let mut at = e.from;
                        while at != from {
                            let p = prev[&at];
                            path.push(p);
                            at = p.from;
                        }
                        path.reverse();
                        return Some(path);
                    }
                    queue.push_back(e.to);
                }
            }
        }
        None
    }

    fn adjacency(&self, members: &[u32], allowed: &dyn Fn(&Edge) -> bool) -> HashMap<u32, Vec<Edge>> {
        let mut adjacency: HashMap<u32, Vec<Edge>> = HashMap::new();
        for e in self.edges.iter().filter(|e| allowed(e) && members.binary_search(&e.from).is_ok() && members.binary_search(&e.to).is_ok()) {
            adjacency.entry(e.from).or_default().push(*e);
        }
        adjacency
    }

    /// A shortest cycle through some member, over edges `allowed`.
    fn cycle_in(&self, members: &[u32], allowed: &dyn Fn(&Edge) -> bool) -> Option<Vec<Edge>> {
        let mut members = members.to_vec();
        members.sort_unstable();
        let adjacency = self.adjacency(&members, allowed);
        // Start from a transaction, not a barrier, when there is one.
        let start = members.iter().copied().find(|v| *v < self.n).unwrap_or(members[0]);
        for e in adjacency.get(&start).into_iter().flatten() {
            if e.to == start {
                return Some(vec![*e]);
            }
        }
        adjacency.get(&start)?.iter().find_map(|first| {
            let rest = Self::path(&adjacency, first.to, start)?;
            Some([vec![*first], rest].concat())
        })
    }

    /// A cycle with several rw edges, none adjacent: a search over (node,
    /// whether the last edge was rw) states.
    fn nonadjacent_cycle(&self, members: &[u32]) -> Option<Vec<Edge>> {
        let adjacency = self.adjacency(members, &|_| true);
        for rw in self.edges.iter().filter(|e| e.kind == EdgeKind::Rw && members.binary_search(&e.from).is_ok() && members.binary_search(&e.to).is_ok()) {
            // From rw.to, having just taken an rw edge, back to rw.from arriving by a non-rw edge.
            let start = (rw.to, true);
            let mut prev: HashMap<(u32, bool), ((u32, bool), Edge)> = HashMap::new();
            let mut queue = VecDeque::from([start]);
            let mut seen = std::collections::HashSet::from([start]);
            while let Some((v, last_rw)) = queue.pop_front() {
                for e in adjacency.get(&v).into_iter().flatten() {
                    let is_rw = e.kind == EdgeKind::Rw;
                    if is_rw && last_rw {
                        continue;
                    }
                    let state = (e.to, is_rw);
                    if !seen.insert(state) {
                        continue;
                    }
                    prev.insert(state, ((v, last_rw), *e));
                    if e.to == rw.from && !is_rw {
                        let mut path = vec![*e];
                        let mut at = (v, last_rw);
                        while at != start {
                            let (p, edge) = prev[&at];
                            path.push(edge);
                            at = p;
                        }
                        path.reverse();
                        return Some([vec![*rw], path].concat());
                    }
                    queue.push_back(state);
                }
            }
        }
        None
    }

    fn report_cycle(&self, c: &mut Checker, cycle: &[Edge]) {
        let rw = cycle.iter().filter(|e| e.kind == EdgeKind::Rw).count();
        let realtime = cycle.iter().any(|e| e.kind == EdgeKind::Rt);
        let base = match rw {
            0 if cycle.iter().all(|e| e.kind == EdgeKind::Ww) => "G0",
            0 => "G1c",
            1 => "G-single",
            _ => "G-nonadjacent",
        };
        let kind = if realtime { format!("{base}-realtime") } else { base.to_string() };
        let explanation = self.explain(c.h, cycle);
        c.report(&kind, || explanation);
    }

    /// A cycle as a person reads it: each transaction, then each edge and the
    /// key and value behind it. Runs of barrier hops read as one real-time edge.
    fn explain(&self, h: &TxnHistory, cycle: &[Edge]) -> String {
        let mut hops: Vec<(u32, u32, String)> = Vec::new();
        let mut rt_from: Option<u32> = None;
        for e in cycle {
            match e.kind {
                EdgeKind::Rt if e.to >= self.n => {
                    rt_from.get_or_insert(e.from);
                }
                EdgeKind::Rt => {
                    let from = rt_from.take().unwrap_or(e.from);
                    hops.push((from, e.to, format!("T{from} -rt-> T{}: T{from} committed before T{} was invoked", e.to, e.to)));
                }
                kind => {
                    let (a, b, k, v) = (e.from, e.to, h.key_name(e.key), h.value_name(e.value));
                    let text = match kind {
                        EdgeKind::Ww => format!("T{a} -ww-> T{b}: T{b} appended {v} to {k} right after a value of T{a}"),
                        EdgeKind::Wr => format!("T{a} -wr-> T{b}: T{b} read {k} ending in T{a}'s {v}"),
                        _ => format!("T{a} -rw-> T{b}: T{a} read {k} without {v}, which T{b} appended next"),
                    };
                    hops.push((a, b, text));
                }
            }
        }
        // A cycle that starts inside a run of barriers closes it at the end.
        if let Some(from) = rt_from {
            let to = cycle.iter().find(|e| e.to < self.n).map_or(0, |e| e.to);
            hops.push((from, to, format!("T{from} -rt-> T{to}: T{from} committed before T{to} was invoked")));
        }
        let mut txns: Vec<u32> = hops.iter().map(|(f, _, _)| *f).collect();
        txns.dedup();
        let mut out = format!("cycle {}:\n", txns.iter().chain(txns.first()).map(|t| format!("T{t}")).collect::<Vec<_>>().join(" -> "));
        for t in &txns {
            out.push_str(&format!("  {}\n", h.describe(*t as usize)));
        }
        for (_, _, text) in &hops {
            out.push_str(&format!("  {text}\n"));
        }
        out.trim_end().to_string()
    }
}

/// This checker in the registry ([`crate::checker::registry::ALL`]).
pub struct Rule;

impl crate::checker::registry::Check for Rule {
    fn name(&self) -> crate::checker::Checker {
        crate::checker::Checker::ListAppend
    }

    fn applies(&self, scenario: &crate::scenario::Scenario) -> bool {
        scenario.checkers.list_append && scenario.workload.kind == crate::scenario::WorkloadKind::ListAppend
    }

    fn check(&self, run: &crate::checker::registry::Inputs) -> crate::checker::registry::Verdict {
        let model = Model::parse(&run.scenario.checkers.list_append_model).expect("validated when the scenario loaded");
        let report = check(&crate::workload::list_append::history::TxnHistory::recorded(&run.records.list_append), model);
        let shown: Vec<String> = report.anomalies.iter().take(3).map(|a| format!("{}: {}", a.kind, a.explanation)).collect();
        crate::checker::registry::Verdict::of((!report.valid()).then(|| format!("{} transactions are not {model}: {}", report.txns, shown.join("\n"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::list_append::history as txn;

    /// Committed transactions, one process each, all concurrent (every
    /// invocation before every completion): only dependencies order them.
    fn concurrent(txns: &[&str]) -> TxnHistory {
        let mut text = String::new();
        for (p, v) in txns.iter().enumerate() {
            text.push_str(&format!("{{:process {p} :type :invoke :f :txn :value {v}}}\n"));
        }
        for (p, v) in txns.iter().enumerate() {
            text.push_str(&format!("{{:process {p} :type :ok :f :txn :value {v}}}\n"));
        }
        txn::parse(&text).unwrap()
    }

    fn kinds(h: &TxnHistory, model: Model) -> Vec<String> {
        check(h, model).anomalies.iter().map(|a| a.kind.clone()).collect()
    }

    #[test]
    fn g0_write_cycle() {
        // T0 then T1 on x, T1 then T0 on y.
        let h = concurrent(&["[[:append :x 1] [:append :y 2]]", "[[:append :x 2] [:append :y 1]]", "[[:r :x [1 2]] [:r :y [1 2]]]"]);
        let report = check(&h, Model::SnapshotIsolation);
        assert_eq!(report.kinds(), vec!["G0"]);
        let text = &report.anomalies[0].explanation;
        assert!(text.starts_with("cycle T0 -> T1 -> T0") || text.starts_with("cycle T1 -> T0 -> T1"), "{text}");
        assert!(text.contains("-ww->") && text.contains("appended 2 to :x"), "{text}");
    }

    #[test]
    fn g1c_circular_information_flow() {
        // T0 reads T1's append, T1 reads T0's.
        let h = concurrent(&["[[:append :x 1] [:r :y [1]]]", "[[:append :y 1] [:r :x [1]]]"]);
        assert_eq!(kinds(&h, Model::SnapshotIsolation), vec!["G1c"]);
    }

    #[test]
    fn g1a_aborted_read_and_g1b_intermediate_read() {
        let text = "{:process 0 :type :invoke :f :txn :value [[:append :x 1]]}\n{:process 0 :type :fail :f :txn :value [[:append :x 1]]}\n\
                    {:process 1 :type :invoke :f :txn :value [[:r :x nil]]}\n{:process 1 :type :ok :f :txn :value [[:r :x [1]]]}\n";
        let report = check(&txn::parse(text).unwrap(), Model::SnapshotIsolation);
        assert_eq!(report.kinds(), vec!["G1a"]);
        assert!(report.anomalies[0].explanation.contains("which failed"));
        let h = concurrent(&["[[:append :x 1] [:append :x 2]]", "[[:r :x [1]]]"]);
        let report = check(&h, Model::SnapshotIsolation);
        assert!(report.kinds().contains(&"G1b"), "{:?}", report.anomalies);
    }

    #[test]
    fn g_single_read_skew() {
        // T2 sees T1's y but not T0's x, which T1 read: one anti-dependency.
        let h = concurrent(&["[[:append :x 1]]", "[[:r :x [1]] [:append :y 1]]", "[[:r :x []] [:r :y [1]]]"]);
        let report = check(&h, Model::SnapshotIsolation);
        assert_eq!(report.kinds(), vec!["G-single"]);
        let text = &report.anomalies[0].explanation;
        assert!(text.contains("-rw->") && text.contains("-wr->") && text.contains("read :x without 1"), "{text}");
    }

    #[test]
    fn g_nonadjacent_two_separated_anti_dependencies() {
        // T0 -rw-> T1 -wr-> T2 -rw-> T3 -wr-> T0.
        let h = concurrent(&["[[:r :a []] [:r :d [1]]]", "[[:append :a 1] [:append :b 1]]", "[[:r :b [1]] [:r :c []]]", "[[:append :c 1] [:append :d 1]]"]);
        let report = check(&h, Model::SnapshotIsolation);
        assert_eq!(report.kinds(), vec!["G-nonadjacent"], "{:?}", report.anomalies);
    }

    #[test]
    fn write_skew_is_allowed_by_snapshot_isolation_only() {
        // Each reads what the other writes, neither sees the other: G2-item.
        let h = concurrent(&["[[:r :x []] [:append :y 1]]", "[[:r :y []] [:append :x 1]]", "[[:r :x [1]] [:r :y [1]]]"]);
        let si = check(&h, Model::SnapshotIsolation);
        assert!(si.valid(), "{:?}", si.anomalies);
        assert_eq!(si.allowed.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(), vec!["G2-item"]);
        assert_eq!(kinds(&h, Model::Serializable), vec!["G2-item"]);
    }

    #[test]
    fn lost_update_internal_garbage_duplicate_and_incompatible_orders() {
        let lost = concurrent(&["[[:r :x []] [:append :x 1]]", "[[:r :x []] [:append :x 2]]", "[[:r :x [1 2]]]"]);
        assert!(check(&lost, Model::SnapshotIsolation).kinds().contains(&"lost-update"));
        let internal = concurrent(&["[[:append :x 1] [:r :x []]]"]);
        assert_eq!(kinds(&internal, Model::SnapshotIsolation), vec!["internal"]);
        let garbage = concurrent(&["[[:r :x [9]]]"]);
        assert_eq!(kinds(&garbage, Model::SnapshotIsolation), vec!["garbage-read"]);
        let duplicate = concurrent(&["[[:append :x 1]]", "[[:append :x 1]]"]);
        assert_eq!(kinds(&duplicate, Model::SnapshotIsolation), vec!["duplicate-append"]);
        let diverging = concurrent(&["[[:append :x 1]]", "[[:append :x 2]]", "[[:r :x [1 2]]]", "[[:r :x [2 1]]]"]);
        assert!(check(&diverging, Model::SnapshotIsolation).kinds().contains(&"incompatible-order"));
    }

    #[test]
    fn real_time_edges_only_count_for_strong_models() {
        // T0 commits, then T1 starts and misses T0's append: stale under real time.
        let text = "{:process 0 :type :invoke :f :txn :value [[:append :x 1]]}\n{:process 0 :type :ok :f :txn :value [[:append :x 1]]}\n\
                    {:process 1 :type :invoke :f :txn :value [[:r :x nil]]}\n{:process 1 :type :ok :f :txn :value [[:r :x []]]}\n";
        let h = txn::parse(text).unwrap();
        assert!(check(&h, Model::SnapshotIsolation).valid());
        assert!(check(&h, Model::Serializable).valid());
        assert_eq!(kinds(&h, Model::StrongSnapshotIsolation), vec!["G-single-realtime"]);
        assert_eq!(kinds(&h, Model::StrictSerializable), vec!["G-single-realtime"]);
    }

    #[test]
    fn an_info_transaction_counts_once_a_read_shows_it_committed() {
        let text = "{:process 0 :type :invoke :f :txn :value [[:append :x 1]]}\n{:process 0 :type :info :f :txn :value [[:append :x 1]]}\n\
                    {:process 1 :type :invoke :f :txn :value [[:r :x nil] [:append :y 1]]}\n{:process 1 :type :ok :f :txn :value [[:r :x [1]] [:append :y 1]]}\n\
                    {:process 2 :type :invoke :f :txn :value [[:r :y nil] [:r :x nil]]}\n{:process 2 :type :ok :f :txn :value [[:r :y [1]] [:r :x []]]}\n";
        assert_eq!(kinds(&txn::parse(text).unwrap(), Model::SnapshotIsolation), vec!["G-single"]);
    }
}
