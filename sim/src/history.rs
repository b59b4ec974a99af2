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

pub mod formats;

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

/// One operation. Times are nanoseconds (simulated, or line numbers for imported
/// logs); an unknown outcome has no completion time.
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
    /// Simulated nanoseconds (our own recordings).
    Nanos,
    /// Line numbers of an imported log: only their order means anything.
    Lines,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub initial: Initial,
    pub clock: Clock,
    pub ops: Vec<Operation>,
}

impl History {
    pub fn new(initial: Initial, clock: Clock) -> Self {
        History { initial, clock, ops: Vec::new() }
    }

    /// One operation as a person reads it, with times in this history's clock.
    pub fn describe(&self, op: &Operation) -> String {
        let time = |t: u64| match self.clock {
            Clock::Nanos => format_time(t),
            Clock::Lines => format!("line {t}"),
        };
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

/// Nanoseconds as seconds with microseconds, e.g. `12.000345s`.
pub fn format_time(ns: u64) -> String {
    format!("{}.{:06}s", ns / 1_000_000_000, (ns % 1_000_000_000) / 1_000)
}
