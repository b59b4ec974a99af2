//! A real process's events, written for the testbed's real mode.
//!
//! In simulation the testbed hands each store and PD an event sink that
//! records straight into its memory. A real process cannot do that: it
//! appends every event to a file of its own (`simkv store --events FILE`),
//! one JSON line each, stamped with the machine's wall clock. The real-mode
//! runner reads the files of every process of a run (the same machine, so
//! the same clock), merges them by time, and hands them to the same
//! checkers. A process killed with `kill -9` can leave a torn last line;
//! [`parse`] skips only that one.

use crate::pd::{PdEvent, PdEventSink};
use crate::raftstore::{EventSink, StoreEvent};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// What a process reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Logged {
    Store(StoreEvent),
    Pd(PdEvent),
}

/// One line of an event file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLine {
    /// Wall-clock nanoseconds since the Unix epoch when the event happened.
    pub at_unix_ns: u64,
    pub event: Logged,
}

fn unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// An event file opened for appending (a restarted process adds to it).
#[derive(Clone)]
pub struct EventFile {
    file: Arc<Mutex<std::fs::File>>,
}

impl EventFile {
    pub fn append(path: &Path) -> std::io::Result<EventFile> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(EventFile { file: Arc::new(Mutex::new(file)) })
    }

    /// Writes one event as one line, in one write: a kill can only tear the
    /// last line, never interleave two.
    pub fn write(&self, event: Logged) {
        let mut line = serde_json::to_vec(&EventLine { at_unix_ns: unix_ns(), event }).expect("events serialize");
        line.push(b'\n');
        if let Err(e) = self.file.lock().expect("event file lock").write_all(&line) {
            tracing::warn!(error = %e, "writing an event failed");
        }
    }

    pub fn store_sink(&self) -> EventSink {
        let file = self.clone();
        Arc::new(move |event: &StoreEvent| file.write(Logged::Store(event.clone())))
    }

    pub fn pd_sink(&self) -> PdEventSink {
        let file = self.clone();
        Arc::new(move |event: &PdEvent| file.write(Logged::Pd(event.clone())))
    }
}

/// Reads an event file's text. A line that does not parse is an error
/// naming the file and line, except a torn last line (a process killed
/// while writing it), which is left out.
pub fn parse(file: &str, text: &str) -> Result<Vec<EventLine>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut events = Vec::with_capacity(lines.len());
    for (n, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<EventLine>(line) {
            Ok(event) => events.push(event),
            Err(_) if n + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => return Err(format!("{file}:{}: not an event line: {e}", n + 1)),
        }
    }
    Ok(events)
}

/// A text known when the code was written (the events' reasons and kinds).
/// Named, so that serde reads it through [`interned`] instead of borrowing
/// it from the input (which would tie events to the file's text).
pub type StaticText = &'static str;

/// Deserializes a [`StaticText`] field (the events' reasons and kinds, a
/// small fixed set) by keeping one copy of each distinct text for the
/// process's lifetime.
pub fn interned<'de, D: Deserializer<'de>>(deserializer: D) -> Result<&'static str, D::Error> {
    static TEXTS: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let text = String::deserialize(deserializer)?;
    let mut texts = TEXTS.lock().expect("interned texts lock");
    if let Some(known) = texts.get(text.as_str()) {
        return Ok(known);
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    texts.insert(leaked);
    Ok(leaked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Peer, Region, RegionEpoch};

    fn samples() -> Vec<Logged> {
        let region = Region { id: 7, start_key: b"a".to_vec(), end_key: vec![], epoch: RegionEpoch::new(2, 3), peers: vec![Peer::voter(8, 1)] };
        vec![
            Logged::Store(StoreEvent::Woke { store_id: 1, region_id: 7, peer_id: 8, why: "a message" }),
            Logged::Store(StoreEvent::SnapshotRejected { store_id: 1, region_id: 7, index: 9, reason: "stale" }),
            Logged::Store(StoreEvent::Split { store_id: 2, regions: vec![region.clone(), region.clone()], index: 12 }),
            Logged::Pd(PdEvent::OperatorEnded { region_id: 7, kind: "add-peer", finished: true }),
            Logged::Pd(PdEvent::RegionAccepted { region, leader: Some(Peer::voter(8, 1)), term: 4, via: crate::pd::ReportKind::Heartbeat }),
        ]
    }

    #[test]
    fn every_kind_of_line_reads_back_as_written() {
        let text: String =
            samples().into_iter().enumerate().map(|(i, event)| serde_json::to_string(&EventLine { at_unix_ns: i as u64, event }).unwrap() + "\n").collect();
        let read = parse("events.jsonl", &text).unwrap();
        assert_eq!(read.into_iter().map(|l| l.event).collect::<Vec<_>>(), samples());
    }

    #[test]
    fn a_torn_last_line_is_left_out_and_a_bad_line_elsewhere_is_named() {
        let good = serde_json::to_string(&EventLine { at_unix_ns: 1, event: samples().remove(0) }).unwrap();
        let torn = format!("{good}\n{}", &good[..good.len() / 2]);
        assert_eq!(parse("s1.jsonl", &torn).unwrap().len(), 1);
        let bad = format!("{good}\n{{\"at_unix_ns\": 2}}\n{good}\n");
        let e = parse("s1.jsonl", &bad).unwrap_err();
        assert!(e.starts_with("s1.jsonl:2: not an event line"), "{e}");
    }
}
