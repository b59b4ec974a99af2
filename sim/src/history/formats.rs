//! Reading and writing histories.
//!
//! In:
//! - **Porcupine etcd logs** (`INFO  jepsen.util - <proc>\t:invoke\t:read\tnil`):
//!   one CAS register; `:fail :cas` means the compare failed (the CAS ran);
//!   `:fail :read` and `:info` mean the outcome is unknown.
//! - **EDN**, one op map per line (or a vector of them), in two flavours told apart
//!   by their functions: Porcupine's kv logs (`:get` / `:put` / `:append` with
//!   `:key`, every key starting as `""`) and Jepsen register histories (`:read` /
//!   `:write` / `:cas`, optional `:key`) with Knossos semantics: `:fail` means the
//!   operation did not happen, `:info` means unknown.
//!
//! Out: [`to_edn`] (Jepsen register EDN with `:key` and `:time`) and
//! [`to_porcupine_log`] (Porcupine's etcd log grammar, one key, integer values).
//!
//! Every error names the line it is about.

use super::{Call, Clock, History, Initial, Operation, Outcome};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError { line, message: message.into() })
}

/// Reads any supported format, deciding by the first line that is neither blank
/// nor an EDN `;` comment (a UTF-8 byte-order mark is ignored): `{`, `[`, `(` or
/// `#` start EDN; a line with `jepsen.util - ` (Porcupine's logs and Jepsen's raw
/// `jepsen.log`) starts a Jepsen log, whose other lines are skipped.
pub fn parse(text: &str) -> Result<History, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let significant = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).find(|(_, l)| !l.is_empty() && !l.starts_with(';'));
    match significant {
        None => err(1, "empty history"),
        Some((_, first)) if first.starts_with(['{', '[', '(', '#']) => parse_edn(text),
        Some(_) if text.lines().any(is_jepsen_op_line) => parse_etcd_log(text),
        Some((line, _)) => err(
            line,
            "not a history: expected Jepsen log lines (`INFO  jepsen.util - <process>\t:invoke\t:read\tnil`) or EDN op maps (`{:type :invoke, :f :read, ...}`)",
        ),
    }
}

/// An operation whose invoke has been seen, waiting for its completion.
struct Open {
    call: Call,
    invoke: u64,
    key: String,
}

/// Pairs invokes with completions by process, as both formats require. Each
/// event gets the next position as its time ([`Clock::Events`]), and its line is
/// remembered for explanations.
struct Pairing {
    history: History,
    open: BTreeMap<u64, Open>,
}

enum Completion {
    Ok(Outcome),
    /// Definitely did not happen: kept as [`Outcome::Failed`].
    NotHappened,
    Unknown,
}

impl Pairing {
    fn new(initial: Initial) -> Self {
        Pairing { history: History::new(initial, Clock::Events), open: BTreeMap::new() }
    }

    /// The next event's time: its position in the history.
    fn tick(&mut self, line: usize) -> u64 {
        self.history.lines.push(line);
        (self.history.lines.len() - 1) as u64
    }

    fn invoke(&mut self, line: usize, process: u64, key: String, call: Call) -> Result<(), ParseError> {
        if self.open.contains_key(&process) {
            return err(line, format!("process {process} invokes while its previous operation is still open"));
        }
        let invoke = self.tick(line);
        self.open.insert(process, Open { call, invoke, key });
        Ok(())
    }

    fn complete(&mut self, line: usize, process: u64, completion: Completion) -> Result<(), ParseError> {
        let Some(open) = self.open.remove(&process) else {
            return err(line, format!("process {process} completes an operation it never invoked"));
        };
        let (outcome, complete) = match completion {
            Completion::NotHappened => (Outcome::Failed, Some(self.tick(line))),
            Completion::Unknown => (Outcome::Unknown, None),
            Completion::Ok(outcome) => (outcome, Some(self.tick(line))),
        };
        // An unknown read constrains nothing.
        if outcome == Outcome::Unknown && open.call == Call::Read {
            return Ok(());
        }
        self.history.ops.push(Operation { process, key: open.key, call: open.call, outcome, invoke: open.invoke, complete });
        Ok(())
    }

    /// Operations still open at the end have unknown outcomes.
    fn finish(mut self) -> History {
        for (process, open) in std::mem::take(&mut self.open) {
            if open.call != Call::Read {
                self.history.ops.push(Operation { process, key: open.key, call: open.call, outcome: Outcome::Unknown, invoke: open.invoke, complete: None });
            }
        }
        self.history.ops.sort_by_key(|o| (o.invoke, o.process));
        self.history
    }
}

/// A line that holds a Jepsen client operation: `... jepsen.util - <process>
/// <:type> ...` with `:type` one of `:invoke`, `:ok`, `:fail`, `:info`.
fn is_jepsen_op_line(line: &str) -> bool {
    jepsen_op_fields(line).is_some()
}

fn jepsen_op_fields(line: &str) -> Option<Vec<&str>> {
    let (_, rest) = line.split_once("jepsen.util - ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    matches!(fields.get(1), Some(&(":invoke" | ":ok" | ":fail" | ":info"))).then_some(fields)
}

/// Jepsen's etcd logs: Porcupine's test data (op lines only) and Jepsen's raw
/// `jepsen.log` (op lines among console lines, with or without timestamps).
/// Lines that are not client operations — console output, and the nemesis's own
/// `:nemesis` lines — are skipped and counted in [`History::skipped_lines`].
pub fn parse_etcd_log(text: &str) -> Result<History, ParseError> {
    let mut pairing = Pairing::new(Initial::Absent);
    let mut skipped = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let Some(fields) = jepsen_op_fields(raw) else {
            skipped += 1;
            continue;
        };
        // Fields are separated by tabs or, in some logs, by runs of spaces; the
        // value is the rest of the line (a cas value holds a space).
        if fields.len() < 4 {
            return err(line, format!("expected `<process> <type> <f> <value>` after `jepsen.util - `, found {} fields", fields.len()));
        }
        if fields[0].starts_with(':') {
            // `:nemesis` and other non-client processes.
            skipped += 1;
            continue;
        }
        let process: u64 = fields[0].parse().or_else(|_| err(line, format!("process id {:?} is not a number", fields[0])))?;
        let (kind, f) = (fields[1], fields[2]);
        let value_owned = fields[3..].join(" ");
        let value = value_owned.as_str();
        match (kind, f) {
            (":invoke", ":read") => pairing.invoke(line, process, String::new(), Call::Read)?,
            (":invoke", ":write") => pairing.invoke(line, process, String::new(), Call::Write(int(line, value)?))?,
            (":invoke", ":cas") => {
                let (a, b) = pair(line, value)?;
                pairing.invoke(line, process, String::new(), Call::Cas(a, b))?
            }
            (":ok", ":read") => {
                let v = if value == "nil" { None } else { Some(int(line, value)?) };
                pairing.complete(line, process, Completion::Ok(Outcome::Read(v)))?
            }
            (":ok", ":write") => pairing.complete(line, process, Completion::Ok(Outcome::Done))?,
            (":ok", ":cas") => pairing.complete(line, process, Completion::Ok(Outcome::CasOk))?,
            (":fail", ":cas") => pairing.complete(line, process, Completion::Ok(Outcome::CasFailed))?,
            (":fail", ":read") | (":info", _) => pairing.complete(line, process, Completion::Unknown)?,
            _ => return err(line, format!("unsupported operation `{kind} {f}`")),
        }
    }
    let mut history = pairing.finish();
    history.skipped_lines = skipped;
    Ok(history)
}

fn int(line: usize, s: &str) -> Result<String, ParseError> {
    s.parse::<i64>().map(|v| v.to_string()).or_else(|_| err(line, format!("value {s:?} is not an integer")))
}

fn pair(line: usize, s: &str) -> Result<(String, String), ParseError> {
    let inner = s.strip_prefix('[').and_then(|s| s.strip_suffix(']'));
    let parts: Vec<&str> = inner.map(|s| s.split_whitespace().collect()).unwrap_or_default();
    match parts.as_slice() {
        [a, b] => Ok((int(line, a)?, int(line, b)?)),
        _ => err(line, format!("cas value {s:?} is not `[from to]`")),
    }
}

/// A parsed EDN value (the subset histories use).
#[derive(Debug, Clone, PartialEq)]
pub enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Keyword(String),
    Symbol(String),
    Vector(Vec<Edn>),
    Map(Vec<(Edn, Edn)>),
}

impl Edn {
    pub fn get(&self, key: &str) -> Option<&Edn> {
        match self {
            Edn::Map(pairs) => pairs.iter().find(|(k, _)| matches!(k, Edn::Keyword(k) if k == key)).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn keyword(&self) -> Option<&str> {
        match self {
            Edn::Keyword(k) => Some(k),
            _ => None,
        }
    }
}

struct EdnReader<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> EdnReader<'a> {
    fn skip_space(&mut self) {
        while let Some(&c) = self.text.get(self.pos) {
            match c {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | b',' => self.pos += 1,
                b';' => {
                    while self.text.get(self.pos).is_some_and(|&c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn value(&mut self) -> Result<Edn, ParseError> {
        self.skip_space();
        let Some(&c) = self.text.get(self.pos) else { return err(self.line, "unexpected end of input") };
        match c {
            b'{' => {
                self.pos += 1;
                let items = self.sequence(b'}')?;
                if items.len() % 2 != 0 {
                    return err(self.line, "map has an odd number of forms");
                }
                let mut pairs = Vec::new();
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Ok(Edn::Map(pairs))
            }
            b'[' | b'(' => {
                self.pos += 1;
                Ok(Edn::Vector(self.sequence(if c == b'[' { b']' } else { b')' })?))
            }
            b'"' => self.string(),
            b'#' if self.text.get(self.pos + 1) == Some(&b'{') => {
                self.pos += 2;
                Ok(Edn::Vector(self.sequence(b'}')?))
            }
            b'#' if self.text.get(self.pos + 1) == Some(&b'_') => {
                // `#_form`: the next form is discarded.
                self.pos += 2;
                self.value()?;
                self.value()
            }
            b'#' => {
                // A tagged literal (`#jepsen.history.Op{...}`, `#inst "..."`):
                // the tag is dropped, the value kept.
                self.pos += 1;
                match self.atom()? {
                    Edn::Symbol(_) => self.value(),
                    other => err(self.line, format!("`#` followed by {other:?} is not a tagged literal")),
                }
            }
            _ => self.atom(),
        }
    }

    fn sequence(&mut self, close: u8) -> Result<Vec<Edn>, ParseError> {
        Ok(self.sequence_with_lines(close)?.into_iter().map(|(_, item)| item).collect())
    }

    /// The forms up to `close` (the opening bracket already read), each with
    /// the line it starts on.
    fn sequence_with_lines(&mut self, close: u8) -> Result<Vec<(usize, Edn)>, ParseError> {
        let opened = self.line;
        let mut items = Vec::new();
        loop {
            self.skip_space();
            match self.text.get(self.pos) {
                None => return err(opened, format!("missing `{}` to close what this line opens", close as char)),
                Some(&c) if c == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(b'}' | b']' | b')') => return err(self.line, format!("unbalanced `{}`", self.text[self.pos] as char)),
                Some(_) => {
                    let line = self.line;
                    items.push((line, self.value()?));
                }
            }
        }
    }

    fn string(&mut self) -> Result<Edn, ParseError> {
        let start_line = self.line;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.text.get(self.pos) else { return err(start_line, "unterminated string") };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.text.get(self.pos) else { return err(start_line, "unterminated string") };
                    self.pos += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        other => other,
                    });
                }
                b'\n' => {
                    self.line += 1;
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map(Edn::Str).or_else(|_| err(start_line, "string is not UTF-8"))
    }

    fn atom(&mut self) -> Result<Edn, ParseError> {
        let start = self.pos;
        while let Some(&c) = self.text.get(self.pos) {
            if c.is_ascii_whitespace() || b",{}[]()\"".contains(&c) {
                break;
            }
            self.pos += 1;
        }
        let token = std::str::from_utf8(&self.text[start..self.pos]).unwrap_or("");
        if token.is_empty() {
            return err(self.line, format!("unexpected character {:?}", self.text[start] as char));
        }
        Ok(match token {
            "nil" => Edn::Nil,
            "true" => Edn::Bool(true),
            "false" => Edn::Bool(false),
            _ if token.starts_with(':') => Edn::Keyword(token[1..].to_string()),
            _ => {
                let digits = token.strip_suffix('N').unwrap_or(token);
                if let Ok(i) = digits.parse::<i64>() {
                    Edn::Int(i)
                } else if let Ok(f) = token.parse::<f64>() {
                    Edn::Float(f)
                } else {
                    Edn::Symbol(token.to_string())
                }
            }
        })
    }
}

/// Every top-level op map with the line it starts on. A history written as one
/// vector or list of op maps (`[{...} {...}]`, `({...} ...)`, maybe several maps
/// per line, as Knossos and many Jepsen tools write it) is read map by map, each
/// with its own line.
pub fn read_edn_ops(text: &str) -> Result<Vec<(usize, Edn)>, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = EdnReader { text: text.as_bytes(), pos: 0, line: 1 };
    let mut ops = Vec::new();
    loop {
        reader.skip_space();
        let Some(&c) = reader.text.get(reader.pos) else { return Ok(ops) };
        let line = reader.line;
        if c == b'[' || c == b'(' {
            let close = if c == b'[' { b']' } else { b')' };
            reader.pos += 1;
            for (at, item) in reader.sequence_with_lines(close)? {
                match item {
                    map @ Edn::Map(_) => ops.push((at, map)),
                    other => return err(at, format!("expected an op map, found {}", short(&other))),
                }
            }
            continue;
        }
        match reader.value()? {
            map @ Edn::Map(_) => ops.push((line, map)),
            other => return err(line, format!("expected an op map, found {}", short(&other))),
        }
    }
}

/// A value as an error message shows it: cut short.
fn short(v: &Edn) -> String {
    let text = format!("{v:?}");
    match text.char_indices().nth(60) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

/// The order events happened in: by `:index` when every op has one (Jepsen's
/// own histories), else by `:time` when every op has one, else the order of
/// the file; ties keep the file's order.
fn history_order(ops: &mut [(usize, Edn)]) {
    let all_int = |name: &str| ops.iter().all(|(_, op)| matches!(op.get(name), Some(Edn::Int(_))));
    let field = if all_int("index") {
        "index"
    } else if all_int("time") {
        "time"
    } else {
        return;
    };
    ops.sort_by_key(|(_, op)| match op.get(field) {
        Some(Edn::Int(i)) => *i,
        _ => unreachable!("checked above"),
    });
}

/// EDN register (Knossos) or kv (Porcupine) histories.
pub fn parse_edn(text: &str) -> Result<History, ParseError> {
    let mut ops = read_edn_ops(text)?;
    // Transactions (Elle's list-append: `:f :txn`, values of micro-ops) are
    // not register histories: say so instead of complaining about a field.
    let is_txn = |op: &Edn| {
        op.get("f").and_then(Edn::keyword) == Some("txn")
            || matches!(op.get("value"), Some(Edn::Vector(mops)) if mops.first().is_some_and(|m| matches!(m, Edn::Vector(m) if matches!(m.first(), Some(Edn::Keyword(k)) if k == "append" || k == "r" || k == "w"))))
    };
    if let Some((line, _)) = ops.iter().find(|(_, op)| is_txn(op)) {
        return err(*line, "a transactional (list-append) history: `check` reads register and kv histories, one operation per key");
    }
    history_order(&mut ops);
    let is_kv = ops.iter().any(|(_, op)| matches!(op.get("f").and_then(Edn::keyword), Some("get" | "put" | "append")));
    let mut pairing = Pairing::new(if is_kv { Initial::Empty } else { Initial::Absent });
    for (line, op) in ops {
        let field = |name: &str| op.get(name).ok_or_else(|| ParseError { line, message: format!("op map has no `:{name}`") });
        let process = match field("process")? {
            Edn::Int(p) if *p >= 0 => *p as u64,
            // Jepsen's nemesis and other non-client entries are not operations.
            Edn::Keyword(_) => continue,
            other => return err(line, format!("`:process` is {other:?}, not a process id")),
        };
        let kind = field("type")?.keyword().ok_or_else(|| ParseError { line, message: "`:type` is not a keyword".into() })?;
        let f = field("f")?.keyword().ok_or_else(|| ParseError { line, message: "`:f` is not a keyword".into() })?;
        let value = op.get("value").unwrap_or(&Edn::Nil);
        let key = match op.get("key") {
            None => String::new(),
            Some(k) => scalar(line, k, "`:key`")?.unwrap_or_default(),
        };
        match kind {
            "invoke" => {
                let call = match f {
                    "read" | "get" => Call::Read,
                    "write" | "put" => Call::Write(scalar(line, value, "`:value`")?.unwrap_or_default()),
                    "append" => Call::Append(scalar(line, value, "`:value`")?.unwrap_or_default()),
                    "delete" => Call::Delete,
                    "cas" => match value {
                        Edn::Vector(v) if v.len() == 2 => {
                            Call::Cas(scalar(line, &v[0], "cas `from`")?.unwrap_or_default(), scalar(line, &v[1], "cas `to`")?.unwrap_or_default())
                        }
                        _ => return err(line, "cas `:value` is not `[from to]`"),
                    },
                    other => return err(line, format!("unsupported function `:{other}`")),
                };
                pairing.invoke(line, process, key, call)?;
            }
            "ok" => {
                let outcome = match f {
                    "read" | "get" => Outcome::Read(scalar(line, value, "`:value`")?),
                    "cas" => Outcome::CasOk,
                    _ => Outcome::Done,
                };
                pairing.complete(line, process, Completion::Ok(outcome))?;
            }
            "fail" => pairing.complete(line, process, Completion::NotHappened)?,
            "info" => pairing.complete(line, process, Completion::Unknown)?,
            other => return err(line, format!("unsupported `:type :{other}`")),
        }
    }
    Ok(pairing.finish())
}

/// A value as our string form: integers and strings; `nil` is `None`.
fn scalar(line: usize, v: &Edn, what: &str) -> Result<Option<String>, ParseError> {
    match v {
        Edn::Nil => Ok(None),
        Edn::Int(i) => Ok(Some(i.to_string())),
        Edn::Str(s) => Ok(Some(s.clone())),
        Edn::Keyword(k) => Ok(Some(format!(":{k}"))),
        other => err(line, format!("{what} is {other:?}, expected an integer, a string or nil")),
    }
}

/// One EDN value for a string: integers stay integers.
fn edn_value(v: &str) -> String {
    if v.parse::<i64>().is_ok() {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

/// Invokes and completions in real-time order as `(time, phase, op)`, phase 0
/// for an invoke and 1 for a completion (see [`super::event_order`]).
fn event_order(ops: &[&Operation]) -> Vec<(u64, u8, usize)> {
    super::event_order(ops)
        .into_iter()
        .map(|e| {
            let op = ops[e.op];
            if e.is_return {
                (op.complete.unwrap_or(u64::MAX), 1, e.op)
            } else {
                (op.invoke, 0, e.op)
            }
        })
        .collect()
}

/// Writes a history as Jepsen EDN, invoke and completion lines in time order;
/// unknown outcomes become `:info` lines at the end, as a Jepsen run would record
/// them when it gives up on the client.
pub fn to_edn(history: &History) -> String {
    let ops: Vec<&Operation> = history.ops.iter().collect();
    let mut out = String::new();
    for (time, phase, i) in event_order(&ops) {
        let op = ops[i];
        let (f, invoke_value) = match &op.call {
            Call::Read => ("read", "nil".to_string()),
            Call::Write(v) => ("write", edn_value(v)),
            Call::Cas(a, b) => ("cas", format!("[{} {}]", edn_value(a), edn_value(b))),
            Call::Append(v) => ("append", edn_value(v)),
            Call::Delete => ("delete", "nil".to_string()),
        };
        let (kind, value) = match (phase, &op.outcome) {
            (0, _) => ("invoke", invoke_value),
            (_, Outcome::Read(v)) => ("ok", v.as_deref().map(edn_value).unwrap_or_else(|| "nil".into())),
            (_, Outcome::Done | Outcome::CasOk) => ("ok", invoke_value),
            // Knossos reads `:fail` as "did not happen", which a compare that
            // failed is, as far as the register's value goes.
            (_, Outcome::CasFailed) => ("fail", invoke_value),
            (_, Outcome::Unknown) => ("info", invoke_value),
            (_, Outcome::Failed) => ("fail", invoke_value),
        };
        let time = if time == u64::MAX { String::new() } else { format!(", :time {time}") };
        let _ = writeln!(out, "{{:type :{kind}, :f :{f}, :key {}, :value {value}, :process {}{time}}}", edn_value(&op.key), op.process);
    }
    out
}

/// Writes one key's operations in Porcupine's etcd log grammar (integer values).
pub fn to_porcupine_log(history: &History, key: &str) -> Result<String, String> {
    // Porcupine's `:fail` means a compare that failed; operations that did not
    // happen at all are left out.
    let ops: Vec<&Operation> = history.ops.iter().filter(|o| o.key == key && o.outcome != Outcome::Failed).collect();
    let check = |v: &str| v.parse::<i64>().map(|_| ()).map_err(|_| format!("value {v:?} of key {key:?} is not an integer"));
    for op in &ops {
        match &op.call {
            Call::Write(v) => check(v)?,
            Call::Cas(a, b) => {
                check(a)?;
                check(b)?
            }
            Call::Append(_) => return Err("Porcupine's etcd log has no append".into()),
            Call::Delete => return Err("Porcupine's etcd log has no delete".into()),
            Call::Read => {}
        }
    }
    let mut out = String::new();
    for (_, phase, i) in event_order(&ops) {
        let op = ops[i];
        let (f, value) = match &op.call {
            Call::Read => ("read", "nil".to_string()),
            Call::Write(v) => ("write", v.clone()),
            Call::Cas(a, b) => ("cas", format!("[{a} {b}]")),
            Call::Append(_) | Call::Delete => unreachable!("rejected above"),
        };
        let (kind, value) = match (phase, &op.outcome) {
            (0, _) => (":invoke", value),
            (_, Outcome::Read(v)) => (":ok", v.clone().unwrap_or_else(|| "nil".into())),
            (_, Outcome::Done | Outcome::CasOk) => (":ok", value),
            (_, Outcome::CasFailed) => (":fail", value),
            (_, Outcome::Unknown) => (":info", ":timed-out".to_string()),
            (_, Outcome::Failed) => unreachable!("left out above"),
        };
        let _ = writeln!(out, "INFO  jepsen.util - {}\t{kind}\t:{f}\t{value}", op.process);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_lines_pair_by_process() {
        let log = "INFO  jepsen.util - 0\t:invoke\t:write\t3\n\
                   INFO  jepsen.util - 1\t:invoke\t:cas\t[3 4]\n\
                   INFO  jepsen.util - 0\t:ok\t:write\t3\n\
                   INFO  jepsen.util - 1\t:fail\t:cas\t[3 4]\n\
                   INFO  jepsen.util - 2\t:invoke\t:write\t1\n\
                   INFO  jepsen.util - 2\t:info\t:write\t:timed-out\n";
        let h = parse(log).unwrap();
        assert_eq!(h.ops.len(), 3);
        assert_eq!(h.ops[0].outcome, Outcome::Done);
        assert_eq!(h.ops[1].outcome, Outcome::CasFailed);
        assert_eq!(h.ops[2].outcome, Outcome::Unknown);
        assert_eq!(h.ops[2].complete, None);
    }

    #[test]
    fn errors_name_the_line() {
        let log = "INFO  jepsen.util - 0\t:invoke\t:write\t3\nINFO  jepsen.util - x\t:ok\t:write\t3\n";
        assert_eq!(parse(log).unwrap_err().to_string(), "line 2: process id \"x\" is not a number");
        let edn = "{:type :invoke, :f :read, :process 0}\n{:type :ok, :f :read, :process 0, :value [1]}\n";
        assert_eq!(parse(edn).unwrap_err().line, 2);
        assert_eq!(parse("{:type :invoke\n").unwrap_err().to_string(), "line 1: missing `}` to close what this line opens");
        assert_eq!(parse("hello\n").unwrap_err().line, 1);
        let orphan = "{:type :ok, :f :read, :process 3, :value 1}";
        assert!(parse(orphan).unwrap_err().message.contains("never invoked"));
    }

    #[test]
    fn edn_knossos_fail_means_did_not_happen() {
        let edn = "{:type :invoke, :f :write, :value 1, :process 0}\n{:type :fail, :f :write, :value 1, :process 0}\n\
                   {:type :invoke, :f :cas, :value [1 2], :process 1}\n{:type :info, :f :cas, :value [1 2], :process 1}\n";
        let h = parse(edn).unwrap();
        assert_eq!(h.ops.len(), 2);
        assert_eq!(h.ops[0].outcome, Outcome::Failed);
        assert_eq!(h.ops[1].call, Call::Cas("1".into(), "2".into()));
        assert_eq!(h.ops[1].outcome, Outcome::Unknown);
    }

    #[test]
    fn our_exports_read_back() {
        let mut h = History::new(Initial::Absent, Clock::Nanos);
        let op = |process, call, outcome, invoke, complete| Operation { process, key: "k1".into(), call, outcome, invoke, complete };
        h.ops.push(op(0, Call::Write("5".into()), Outcome::Done, 10, Some(20)));
        h.ops.push(op(1, Call::Read, Outcome::Read(Some("5".into())), 15, Some(30)));
        h.ops.push(op(2, Call::Cas("5".into(), "6".into()), Outcome::Unknown, 40, None));
        h.ops.push(op(0, Call::Cas("7".into(), "8".into()), Outcome::CasFailed, 50, Some(60)));
        let edn = to_edn(&h);
        let back = parse(&edn).unwrap();
        // The failed CAS reads back as "did not happen", as Knossos reads `:fail`.
        assert_eq!(back.ops.len(), 4);
        assert_eq!(
            back.ops.iter().map(|o| o.outcome.clone()).collect::<Vec<_>>(),
            [Outcome::Done, Outcome::Read(Some("5".into())), Outcome::Unknown, Outcome::Failed]
        );
        let log = to_porcupine_log(&h, "k1").unwrap();
        let back = parse(&log).unwrap();
        assert_eq!(back.ops.len(), 4);
        assert_eq!(back.ops[3].outcome, Outcome::CasFailed);
    }

    use crate::checker::linearizability::check;

    /// A write completes, then a later read returns the old value: a stale read,
    /// whatever the layout.
    const STALE: [&str; 4] = [
        "{:process 0, :type :invoke, :f :write, :value 1}",
        "{:process 0, :type :ok, :f :write, :value 1}",
        "{:process 1, :type :invoke, :f :read, :value nil}",
        "{:process 1, :type :ok, :f :read, :value nil}",
    ];

    #[test]
    fn real_time_order_holds_in_every_edn_layout() {
        let layouts = [
            STALE.join("\n"),
            format!("[{}]", STALE.join(" ")),
            format!("[{}\n]", STALE.join("\n ")),
            format!("({})", STALE.join("\n ")),
            format!("{} {}\n{} {}", STALE[0], STALE[1], STALE[2], STALE[3]),
            format!("; a Knossos history\n;; written by hand\n[{}]", STALE.join(",\n ")),
            format!("\u{feff}{}", STALE.join("\n")),
            STALE.iter().map(|m| format!("#jepsen.history.Op{m}")).collect::<Vec<_>>().join("\n"),
        ];
        for layout in layouts {
            let h = parse(&layout).unwrap_or_else(|e| panic!("{layout}: {e}"));
            assert_eq!(h.ops.len(), 2, "{layout}");
            assert!(!check(&h).is_ok(), "a stale read passed in this layout:\n{layout}");
        }
    }

    #[test]
    fn transactional_histories_are_named_as_such() {
        let elle = "{:index 0 :type :invoke :value [[:append 253 1] [:r 253 nil]]}\n";
        let e = parse(elle).unwrap_err();
        assert_eq!((e.line, e.message.contains("transactional (list-append) history")), (1, true), "{e}");
        let with_f = "{:type :invoke, :f :txn, :value [[:append 11 1]], :process 10}\n";
        assert!(parse(with_f).unwrap_err().message.contains("transactional"));
    }

    #[test]
    fn ops_keep_their_own_lines_inside_a_vector() {
        let h = parse(&format!("[{}\n {}\n {}\n {}]", STALE[0], STALE[1], STALE[2], STALE[3])).unwrap();
        assert_eq!(h.describe(&h.ops[1]), "[line 3 .. line 4] process 1 key \"\": read -> nil");
        let err = parse("[{:process 0, :type :invoke, :f :read}\n {:process 0, :type :ok, :f :read, :value [1]}]").unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn index_and_time_order_events_when_every_op_has_them() {
        // Lines out of order, but :index says the write came first.
        let shuffled = "{:index 2, :process 1, :type :invoke, :f :read, :value nil}\n\
                        {:index 3, :process 1, :type :ok, :f :read, :value nil}\n\
                        {:index 0, :process 0, :type :invoke, :f :write, :value 1}\n\
                        {:index 1, :process 0, :type :ok, :f :write, :value 1}\n";
        assert!(!check(&parse(shuffled).unwrap()).is_ok());
        let by_time = shuffled.replace(":index", ":time");
        assert!(!check(&parse(&by_time).unwrap()).is_ok());
        // Without them, the file's order: the read came first and is fine.
        let plain = shuffled.replace(":index 2, ", "").replace(":index 3, ", "").replace(":index 0, ", "").replace(":index 1, ", "");
        assert!(check(&parse(&plain).unwrap()).is_ok());
    }

    #[test]
    fn raw_jepsen_logs_skip_what_is_not_an_operation() {
        let log = "2015-04-21 10:32:10,589{GMT}\tINFO\t[main] jepsen.core - Running test\n\
                   INFO  jepsen.os.debian - Installing etcd\n\
                   INFO  jepsen.util - 0\t:invoke\t:write\t1\n\
                   INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
                   INFO  jepsen.util - 0\t:ok\t:write\t1\n\
                   \n\
                   INFO  jepsen.util - :nemesis\t:info\t:start\t[:isolated {\"n1\" #{\"n2\"}}]\n\
                   2015-04-21 10:32:11,001{GMT}\tINFO\t[jepsen worker 1] jepsen.util - 1\t:invoke\t:read\tnil\n\
                   INFO  jepsen.util - 1\t:ok\t:read\tnil\n\
                   INFO  jepsen.core - Everything looks good! ヽ(‘ー`)ノ\n";
        let h = parse(log).unwrap();
        assert_eq!(h.ops.len(), 2);
        assert_eq!(h.skipped_lines, 5);
        assert!(!check(&h).is_ok(), "the read after the write returned nil");
        // A line that looks like an operation but is malformed is still an error.
        let bad = format!("{log}INFO  jepsen.util - 2\t:invoke\t:cas\t[1]\n");
        assert_eq!(parse(&bad).unwrap_err().line, 11);
    }

    #[test]
    fn round_trips_keep_failed_and_unknown_operations_and_verdicts() {
        let mut h = History::new(Initial::Absent, Clock::Nanos);
        let op = |process, call, outcome, invoke, complete| Operation { process, key: "k1".into(), call, outcome, invoke, complete };
        h.ops.push(op(0, Call::Write("5".into()), Outcome::Done, 10, Some(20)));
        h.ops.push(op(3, Call::Write("9".into()), Outcome::Failed, 12, Some(18)));
        h.ops.push(op(1, Call::Read, Outcome::Read(Some("5".into())), 25, Some(30)));
        h.ops.push(op(2, Call::Cas("5".into(), "6".into()), Outcome::Unknown, 40, None));
        h.ops.push(op(0, Call::Cas("7".into(), "8".into()), Outcome::CasFailed, 50, Some(60)));
        assert!(check(&h).is_ok());
        let back = parse(&to_edn(&h)).unwrap();
        assert_eq!(back.ops.iter().filter(|o| o.outcome == Outcome::Failed).count(), 2, "the failed write and the failed CAS did not happen");
        assert_eq!(back.ops.iter().filter(|o| o.outcome == Outcome::Unknown).count(), 1);
        assert!(check(&back).is_ok());
        // Not linearizable: a read of the value only the failed write wrote.
        h.ops.push(op(1, Call::Read, Outcome::Read(Some("9".into())), 70, Some(80)));
        assert!(!check(&h).is_ok());
        assert!(!check(&parse(&to_edn(&h)).unwrap()).is_ok());
        // Porcupine's grammar has no "did not happen": the failed write is left
        // out, and the read of its value is still a violation.
        let log = to_porcupine_log(&h, "k1").unwrap();
        let back = parse(&log).unwrap();
        assert_eq!(back.ops.len(), 5);
        assert!(!check(&back).is_ok());
    }

    #[test]
    fn exports_keep_a_process_in_order_at_equal_times() {
        // Process 0's write ends at 10 and its read starts at 10; process 1's
        // read at 10 overlaps both.
        let mut h = History::new(Initial::Absent, Clock::Nanos);
        let op = |process, call, outcome, invoke, complete| Operation { process, key: "k".into(), call, outcome, invoke, complete };
        h.ops.push(op(0, Call::Write("1".into()), Outcome::Done, 0, Some(10)));
        h.ops.push(op(0, Call::Read, Outcome::Read(None), 10, Some(20)));
        h.ops.push(op(1, Call::Read, Outcome::Read(Some("1".into())), 10, Some(10)));
        assert!(!check(&h).is_ok(), "process 0 read nil after its own write");
        let back = parse(&to_edn(&h)).unwrap();
        assert!(!check(&back).is_ok());
    }
}
