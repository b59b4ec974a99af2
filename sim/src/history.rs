//! Histories: what clients asked for and what they were told, with times.
//!
//! An [`Operation`] is one call by one process on one key, from its invoke to its
//! completion. Its [`Outcome`] is either a definite answer or [`Outcome::Unknown`]
//! (Jepsen's `:info`): the operation may have taken effect at any moment after its
//! invoke, or never. Operations that definitely did not happen are kept as
//! [`Outcome::Failed`] (Jepsen's `:fail`); checkers ignore them.
//!
//! The same history is read from and written to three formats (see [`formats`]):
//! Porcupine's etcd logs, Porcupine's kv logs and Jepsen EDN register histories,
//! and our own recordings are exported as EDN and as Porcupine logs.

/// The invocations (phase 0) and completions (phase 1) of operations with
/// these (invoke, complete) times, in time order, by index: how every
/// transactional history is written as EDN. An operation that never
/// completed gets its completion (Jepsen's `:info`) at its invocation.
pub fn windows_in_order(windows: impl Iterator<Item = (u64, Option<u64>)>) -> Vec<(u64, u8, usize)> {
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (i, (invoke, complete)) in windows.enumerate() {
        events.push((invoke, 0, i));
        events.push((complete.unwrap_or(invoke), 1, i));
    }
    events.sort();
    events
}
pub mod formats;
pub mod generate;

use std::fmt;

/// What a process asked for. Values are strings: integers in register histories,
/// arbitrary text in kv histories.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Call {
    Read,
    Write(String),
    /// Compare-and-set: if the value is `.0`, make it `.1`.
    Cas(String, String),
    Append(String),
    /// Removes the key: it holds nothing afterwards.
    Delete,
}

/// What the process was told.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A read returned this value (`None`: the key holds nothing).
    Read(Option<String>),
    /// A write or append took effect.
    Done,
    /// A compare-and-set compared equal and took effect.
    CasOk,
    /// A compare-and-set compared unequal and did nothing.
    CasFailed,
    /// No answer: took effect at some point after invoke, or never.
    Unknown,
    /// Definitely did not take effect (Jepsen's `:fail` of a write, or a read
    /// that got an error). Kept for the record; it constrains nothing.
    Failed,
}

/// One operation. Times are simulated nanoseconds for our own recordings and
/// event positions for imported logs (see [`Clock`]); an unknown outcome has no
/// completion time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub process: u64,
    pub key: String,
    pub call: Call,
    pub outcome: Outcome,
    pub invoke: u64,
    pub complete: Option<u64>,
}

/// What a key holds before the first operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initial {
    /// Nothing (a register that was never written).
    Absent,
    /// The empty string (Porcupine's kv model).
    Empty,
}

/// What operation times count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Simulated nanoseconds (our own recordings). Operations of different
    /// processes at the same instant count as concurrent; a process's own
    /// operations are always in sequence (see [`event_order`]).
    Nanos,
    /// Positions of the events in an imported history (0, 1, 2, ...: every event
    /// its own instant, so real-time order is the history's order);
    /// [`History::lines`] maps each position to the line it came from.
    Events,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub initial: Initial,
    pub clock: Clock,
    pub ops: Vec<Operation>,
    /// With [`Clock::Events`]: the source line of the event at each position.
    pub lines: Vec<usize>,
    /// Lines of an imported log that were not operations (console output,
    /// nemesis lines) and were skipped.
    pub skipped_lines: usize,
}

impl History {
    pub fn new(initial: Initial, clock: Clock) -> Self {
        History { initial, clock, ops: Vec::new(), lines: Vec::new(), skipped_lines: 0 }
    }

    /// A time of this history as a person reads it.
    pub fn time(&self, t: u64) -> String {
        match self.clock {
            Clock::Nanos => format_time(t),
            Clock::Events => match self.lines.get(t as usize) {
                Some(line) => format!("line {line}"),
                None => format!("event {t}"),
            },
        }
    }

    /// One operation as a person reads it, with times in this history's clock.
    pub fn describe(&self, op: &Operation) -> String {
        let time = |t: u64| self.time(t);
        let end = op.complete.map(time).unwrap_or_else(|| "never".to_string());
        format!("[{} .. {}] process {} key {:?}: {} {}", time(op.invoke), end, op.process, op.key, op.call, op.outcome)
    }

    /// The keys, in order.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.ops.iter().map(|o| o.key.as_str()).collect();
        keys.sort();
        keys.dedup();
        keys
    }

    pub fn unknown_count(&self) -> usize {
        self.ops.iter().filter(|o| o.outcome == Outcome::Unknown).count()
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Read => write!(f, "read"),
            Call::Write(v) => write!(f, "write {v:?}"),
            Call::Cas(a, b) => write!(f, "cas {a:?}->{b:?}"),
            Call::Append(v) => write!(f, "append {v:?}"),
            Call::Delete => write!(f, "delete"),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Read(Some(v)) => write!(f, "-> {v:?}"),
            Outcome::Read(None) => write!(f, "-> nil"),
            Outcome::Done => write!(f, "ok"),
            Outcome::CasOk => write!(f, "ok"),
            Outcome::CasFailed => write!(f, "fail (compare unequal)"),
            Outcome::Unknown => write!(f, "unknown"),
            Outcome::Failed => write!(f, "failed (did not happen)"),
        }
    }
}

/// One end of an operation: its invoke, or its return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Index into the slice given to [`event_order`].
    pub op: usize,
    pub is_return: bool,
}

/// Every invoke and return of `ops` in real-time order.
///
/// Events are ordered by time. At equal times the order is a choice, made so
/// that no order is invented between processes and none is lost within one:
/// invokes come before returns (operations of different processes at the same
/// instant overlap, so either may take effect first), except that a process's
/// operation returns before the same process's next operation is invoked (a
/// process is sequential, even when its next call starts at the instant the last
/// one ended). A process's operations are in the order of their invoke times,
/// then of their positions in `ops`. Unknown outcomes return at +infinity.
pub fn event_order(ops: &[&Operation]) -> Vec<Event> {
    let done = |i: usize| ops[i].complete.unwrap_or(u64::MAX);
    // The operation each one follows in its process, if any.
    let mut by_process: Vec<usize> = (0..ops.len()).collect();
    by_process.sort_by_key(|&i| (ops[i].process, ops[i].invoke, i));
    let mut previous = vec![usize::MAX; ops.len()];
    for pair in by_process.windows(2) {
        if ops[pair[0]].process == ops[pair[1]].process {
            previous[pair[1]] = pair[0];
        }
    }
    let mut events: Vec<(u64, usize, bool)> = Vec::with_capacity(2 * ops.len());
    for (i, op) in ops.iter().enumerate() {
        events.push((op.invoke, i, false));
        events.push((done(i), i, true));
    }
    events.sort_unstable();
    let (mut called, mut returned) = (vec![false; ops.len()], vec![false; ops.len()]);
    let mut out = Vec::with_capacity(events.len());
    let mut start = 0;
    while start < events.len() {
        let t = events[start].0;
        let end = start + events[start..].iter().take_while(|e| e.0 == t).count();
        let group = &events[start..end];
        if group.len() == 1 {
            let (_, op, is_return) = group[0];
            out.push(Event { op, is_return });
            if is_return {
                returned[op] = true
            } else {
                called[op] = true
            }
            start = end;
            continue;
        }
        let mut calls: Vec<usize> = group.iter().filter(|e| !e.2).map(|e| e.1).collect();
        let mut returns: Vec<usize> = group.iter().filter(|e| e.2).map(|e| e.1).collect();
        // A call may go once its process's previous operation has returned (or
        // returns later than this call: an inconsistent history, not ours to fix).
        let ready = |op: usize, returned: &[bool]| {
            let p = previous[op];
            p == usize::MAX || returned[p] || done(p) > t
        };
        while !calls.is_empty() || !returns.is_empty() {
            let before = calls.len();
            calls.retain(|&op| {
                if ready(op, &returned) {
                    out.push(Event { op, is_return: false });
                    called[op] = true;
                    false
                } else {
                    true
                }
            });
            if calls.len() < before {
                continue;
            }
            // Every call left waits for its process's previous operation: return
            // the first such operation; with none waiting, return them all.
            let waited: Vec<usize> = calls.iter().map(|&op| previous[op]).collect();
            let pick = returns.iter().position(|r| called[*r] && waited.contains(r)).or_else(|| {
                if calls.is_empty() {
                    returns.iter().position(|r| called[*r])
                } else {
                    None
                }
            });
            match pick {
                Some(k) => {
                    let op = returns.remove(k);
                    out.push(Event { op, is_return: true });
                    returned[op] = true;
                }
                None => {
                    // Nothing can go in order (a history that contradicts
                    // itself): keep the rest in time order.
                    for op in calls.drain(..) {
                        out.push(Event { op, is_return: false });
                        called[op] = true;
                    }
                    for op in returns.drain(..) {
                        out.push(Event { op, is_return: true });
                        returned[op] = true;
                    }
                }
            }
        }
        start = end;
    }
    out
}

/// Nanoseconds as seconds with microseconds, e.g. `12.000345s`.
pub fn format_time(ns: u64) -> String {
    format!("{}.{:06}s", ns / 1_000_000_000, (ns % 1_000_000_000) / 1_000)
}
