//! Transactional (list-append) histories, as Elle and Jepsen write them.
//!
//! Each operation is a transaction of micro-ops: `[:append k v]` appends `v` to
//! the list at `k`; `[:r k [v ...]]` reads it (`nil` in the invocation). `:ok`
//! committed, `:fail` did not happen, `:info` may have. Keys and values are any
//! EDN scalars; they are interned to numbers here.
//!
//! Real-time order: by `:index` when every op has one, else by `:time` when every
//! op has one, else by place in the file. Invocations and completions pair by
//! `:process`; a history without processes (the Elle paper's example) pairs each
//! invocation with the completion that follows it.

use crate::history::formats::{read_edn_ops, Edn, ParseError};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mop {
    Append {
        key: u32,
        value: u32,
    },
    /// `None` for an invocation's read, or a read whose result is unknown.
    Read {
        key: u32,
        values: Option<Vec<u32>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnOutcome {
    Ok,
    Fail,
    Info,
}

/// One transaction: what a file says of it, or what a workload client ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub process: Option<i64>,
    pub outcome: TxnOutcome,
    pub mops: Vec<Mop>,
    /// Positions in real-time order (`complete` is `None` for `:info`): in a
    /// file, places in it; recorded, simulated nanoseconds.
    pub invoke: u64,
    pub complete: Option<u64>,
    /// The line of the completion (or of the invocation, when it never
    /// completed); recorded, its place in invocation order.
    pub line: usize,
    /// Why the transaction failed or is unknown (`:error`), when said.
    pub error: Option<String>,
    /// The timestamps it used, when known (recorded: for the TSO checker).
    pub start_ts: Option<u64>,
    pub commit_ts: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct TxnHistory {
    pub txns: Vec<Txn>,
    /// Interned keys and values, as a file wrote them. Empty for a recorded
    /// history: there the ids are the numbers themselves.
    pub keys: Vec<String>,
    pub values: Vec<String>,
}

impl TxnHistory {
    /// The transactions a run recorded, in invocation order, as the checker
    /// reads them. A failed transaction's reads saw nothing that counts.
    pub fn recorded(txns: &[Txn]) -> TxnHistory {
        let mut txns = txns.to_vec();
        txns.sort_by_key(|t| (t.invoke, t.process));
        for (line, txn) in txns.iter_mut().enumerate() {
            txn.line = line + 1;
            if txn.outcome == TxnOutcome::Fail {
                for mop in &mut txn.mops {
                    if let Mop::Read { values, .. } = mop {
                        *values = None;
                    }
                }
            }
        }
        TxnHistory { txns, keys: Vec::new(), values: Vec::new() }
    }

    pub fn key_name(&self, key: u32) -> Cow<'_, str> {
        self.keys.get(key as usize).map_or_else(|| key.to_string().into(), |k| k.as_str().into())
    }

    pub fn value_name(&self, value: u32) -> Cow<'_, str> {
        self.values.get(value as usize).map_or_else(|| value.to_string().into(), |v| v.as_str().into())
    }

    /// A transaction as a person reads it: its number, process and micro-ops.
    pub fn describe(&self, t: usize) -> String {
        let txn = &self.txns[t];
        let process = txn.process.map_or(String::new(), |p| format!(" process {p}"));
        format!("T{t} (line {}{process}, {:?}) [{}]", txn.line, txn.outcome, self.describe_mops(txn))
    }

    /// A transaction's micro-ops, keys and values by name, as EDN writes them.
    pub fn describe_mops(&self, txn: &Txn) -> String {
        let mops: Vec<String> = txn
            .mops
            .iter()
            .map(|m| match m {
                Mop::Append { key, value } => format!("[:append {} {}]", self.key_name(*key), self.value_name(*value)),
                Mop::Read { key, values: None } => format!("[:r {} nil]", self.key_name(*key)),
                Mop::Read { key, values: Some(vs) } => {
                    format!("[:r {} [{}]]", self.key_name(*key), vs.iter().map(|v| self.value_name(*v)).collect::<Vec<_>>().join(" "))
                }
            })
            .collect();
        mops.join(" ")
    }
}

/// Whether `text` is an EDN history of list-append transactions.
pub fn sniff(text: &str) -> bool {
    read_edn_ops(text).is_ok_and(|ops| ops.iter().any(|(_, op)| looks_transactional(op)))
}

/// Whether an op is a transaction of micro-ops.
pub fn looks_transactional(op: &Edn) -> bool {
    op.get("f").and_then(Edn::keyword) == Some("txn")
        || matches!(op.get("value"), Some(Edn::Vector(mops)) if mops.first().is_some_and(|m| matches!(m, Edn::Vector(m) if matches!(m.first(), Some(Edn::Keyword(k)) if k == "append" || k == "r"))))
}

struct Interner {
    ids: BTreeMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn new() -> Self {
        Interner { ids: BTreeMap::new(), names: Vec::new() }
    }

    fn id(&mut self, name: String) -> u32 {
        if let Some(&id) = self.ids.get(&name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.clone(), id);
        self.names.push(name);
        id
    }
}

fn scalar(v: &Edn) -> Option<String> {
    match v {
        Edn::Int(i) => Some(i.to_string()),
        Edn::Str(s) => Some(format!("{s:?}")),
        Edn::Keyword(k) => Some(format!(":{k}")),
        Edn::Symbol(s) => Some(s.clone()),
        Edn::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads a list-append history.
pub fn parse(text: &str) -> Result<TxnHistory, ParseError> {
    let err = |line: usize, message: String| ParseError { line, message };
    let mut ops = read_edn_ops(text)?;
    let all_int = |ops: &[(usize, Edn)], name: &str| !ops.is_empty() && ops.iter().all(|(_, op)| matches!(op.get(name), Some(Edn::Int(_))));
    if all_int(&ops, "index") {
        ops.sort_by_key(|(_, op)| if let Some(Edn::Int(i)) = op.get("index") { *i } else { 0 });
    } else if all_int(&ops, "time") {
        ops.sort_by_key(|(_, op)| if let Some(Edn::Int(i)) = op.get("time") { *i } else { 0 });
    }
    let (mut keys, mut values) = (Interner::new(), Interner::new());
    let mut history = TxnHistory::default();
    // Open invocations: by process, or (no processes) the last one.
    let mut open: BTreeMap<Option<i64>, (usize, u64, Vec<Mop>)> = BTreeMap::new();
    for (position, (line, op)) in ops.into_iter().enumerate() {
        let position = position as u64;
        let process = match op.get("process") {
            Some(Edn::Int(p)) => Some(*p),
            // Jepsen's nemesis entries are not client operations.
            Some(Edn::Keyword(_)) => continue,
            None => None,
            Some(other) => return Err(err(line, format!("`:process` is {other:?}, not a process id"))),
        };
        if let Some(f) = op.get("f").and_then(Edn::keyword) {
            if f != "txn" {
                return Err(err(line, format!("`:f :{f}`: a list-append history has only `:txn` operations")));
            }
        }
        let kind = op.get("type").and_then(Edn::keyword).ok_or_else(|| err(line, "op map has no `:type` keyword".into()))?;
        let Some(Edn::Vector(raw)) = op.get("value") else {
            return Err(err(line, "`:value` is not a vector of micro-ops".into()));
        };
        let mut mops = Vec::with_capacity(raw.len());
        for (n, m) in raw.iter().enumerate() {
            let Edn::Vector(parts) = m else {
                return Err(err(line, format!("micro-op {} is not a vector", n + 1)));
            };
            let (Some(Edn::Keyword(f)), Some(k), value) = (parts.first(), parts.get(1), parts.get(2)) else {
                return Err(err(line, format!("micro-op {} is not [:f key value]", n + 1)));
            };
            let key = keys.id(scalar(k).ok_or_else(|| err(line, format!("micro-op {}: the key is not a scalar", n + 1)))?);
            mops.push(match (f.as_str(), value) {
                ("append", Some(v)) => {
                    Mop::Append { key, value: values.id(scalar(v).ok_or_else(|| err(line, format!("micro-op {}: the value is not a scalar", n + 1)))?) }
                }
                ("r", None | Some(Edn::Nil)) => Mop::Read { key, values: None },
                ("r", Some(Edn::Vector(vs))) => {
                    let mut read = Vec::with_capacity(vs.len());
                    for v in vs {
                        read.push(values.id(scalar(v).ok_or_else(|| err(line, format!("micro-op {}: a read value is not a scalar", n + 1)))?));
                    }
                    Mop::Read { key, values: Some(read) }
                }
                (other, _) => return Err(err(line, format!("micro-op {}: `:{other}` is not :append or :r with a list", n + 1))),
            });
        }
        match kind {
            "invoke" => {
                if let Some((open_line, ..)) = open.insert(process, (line, position, mops)) {
                    return Err(err(line, format!("a second invocation while the one at line {open_line} is still open")));
                }
            }
            "ok" | "fail" | "info" => {
                let Some((_, invoke, invoked)) = open.remove(&process) else {
                    return Err(err(line, format!("`:{kind}` was never invoked")));
                };
                let outcome = match kind {
                    "ok" => TxnOutcome::Ok,
                    "fail" => TxnOutcome::Fail,
                    _ => TxnOutcome::Info,
                };
                // An :info completion knows no more than the invocation did; in
                // an :ok one, a read of `nil` is a read of a key never appended to.
                let mops = match outcome {
                    TxnOutcome::Info => invoked,
                    TxnOutcome::Ok => mops
                        .into_iter()
                        .map(|m| match m {
                            Mop::Read { key, values: None } => Mop::Read { key, values: Some(Vec::new()) },
                            other => other,
                        })
                        .collect(),
                    TxnOutcome::Fail => mops,
                };
                let complete = (outcome == TxnOutcome::Ok).then_some(position);
                let error = op.get("error").map(|e| match e {
                    Edn::Str(text) => text.clone(),
                    other => scalar(other).unwrap_or_else(|| format!("{other:?}")),
                });
                history.txns.push(Txn { process, outcome, mops, invoke, complete, line, error, start_ts: None, commit_ts: None });
            }
            other => return Err(err(line, format!("`:type :{other}` is not invoke, ok, fail or info"))),
        }
    }
    // Invocations never completed: their outcome is unknown.
    for (process, (line, invoke, mops)) in open {
        history.txns.push(Txn { process, outcome: TxnOutcome::Info, mops, invoke, complete: None, line, error: None, start_ts: None, commit_ts: None });
    }
    history.keys = keys.names;
    history.values = values.names;
    Ok(history)
}

/// The history as Elle's EDN: `:f :txn`, micro-ops as vectors.
pub fn to_edn(h: &TxnHistory) -> String {
    let events = crate::history::windows_in_order(h.txns.iter().map(|t| (t.invoke, t.complete)));
    let mut out = String::new();
    for (time, phase, i) in events {
        let txn = &h.txns[i];
        let mops: Vec<String> = txn
            .mops
            .iter()
            .map(|m| match m {
                Mop::Append { key, value } => format!("[:append {} {}]", h.key_name(*key), h.value_name(*value)),
                Mop::Read { key, values: Some(vs) } if phase == 1 && txn.outcome == TxnOutcome::Ok => {
                    format!("[:r {} [{}]]", h.key_name(*key), vs.iter().map(|v| h.value_name(*v)).collect::<Vec<_>>().join(" "))
                }
                Mop::Read { key, .. } => format!("[:r {} nil]", h.key_name(*key)),
            })
            .collect();
        let kind = match (phase, txn.outcome) {
            (0, _) => "invoke",
            (_, TxnOutcome::Ok) => "ok",
            (_, TxnOutcome::Fail) => "fail",
            (_, TxnOutcome::Info) => "info",
        };
        let error = match (&txn.error, phase) {
            (Some(e), 1) => format!(", :error {e:?}"),
            _ => String::new(),
        };
        let process = txn.process.map_or(String::new(), |p| format!(", :process {p}"));
        let _ = writeln!(out, "{{:type :{kind}, :f :txn, :value [{}]{process}, :time {time}{error}}}", mops.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layouts list-append tools write: one map per line, one vector of maps
    /// (several per line), with or without `:process`, `:index`, `:time`,
    /// commas and `;` comments, nemesis entries among them: all read the same.
    #[test]
    fn every_layout_reads_the_same() {
        let per_line = "{:index 0 :type :invoke :process 1 :f :txn :value [[:append :x 1] [:r :y nil]]}\n\
                        {:index 1 :type :ok :process 1 :f :txn :value [[:append :x 1] [:r :y []]]}\n";
        let vector = "; a comment\n[{:type :invoke, :process 1, :f :txn, :value [[:append :x 1] [:r :y nil]]} {:type :info, :process :nemesis, :f :kill}\n \
                      {:type :ok, :process 1, :f :txn, :value [[:append :x 1] [:r :y []]]}]\n";
        let no_process = "{:time 5 :type :invoke :value [[:append :x 1] [:r :y nil]]}\n{:time 9 :type :ok :value [[:append :x 1] [:r :y nil]]}\n";
        let shape = |h: TxnHistory| h.txns.iter().map(|t| (t.outcome, t.mops.clone())).collect::<Vec<_>>();
        let expected = shape(parse(per_line).unwrap());
        assert_eq!(expected.len(), 1);
        assert_eq!(shape(parse(vector).unwrap()), expected);
        assert_eq!(shape(parse(no_process).unwrap()), expected, "a nil read in an :ok is an empty list");
    }

    #[test]
    fn errors_name_the_line() {
        let bad = "{:type :invoke :process 1 :f :txn :value [[:append :x 1]]}\n{:type :ok :process 1 :f :txn :value [[:append :x]]}\n";
        assert_eq!(parse(bad).unwrap_err().line, 2);
        let orphan = "{:type :ok :process 3 :f :txn :value [[:r :x []]]}\n";
        assert!(parse(orphan).unwrap_err().message.contains("never invoked"));
    }
}
