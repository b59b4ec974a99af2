//! The register workload: per-key get / put / cas / delete over a few keys
//! spread across the regions, and scans over key ranges that cross region
//! boundaries.

use super::{now_ns, record, register_key, think, Shared, RECENT_VALUES, SCAN_PROCESS};
use crate::history::{Call, Outcome};
use simkv::client::{ClientError, RawClient};
use std::sync::atomic::Ordering;

/// Per-key get / put / cas / delete. A client whose operation has an unknown outcome
/// continues as a new process, as Jepsen's do.
pub async fn register_client(shared: &Shared, client: &RawClient, c: u64) {
    use rand::Rng;
    let (keys, read_percent, cas_percent) = (shared.swarm.keys, shared.swarm.read_percent, shared.swarm.cas_percent);
    let delete_percent = shared.delete_percent;
    let clients = shared.swarm.clients.max(1);
    let mut process = c;
    let mut counter = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        let (k, dice, expect) = {
            let mut rng = madsim::rand::thread_rng();
            (rng.gen_range(0..keys), rng.gen_range(0..100u64), rng.gen_range(0..RECENT_VALUES as u64))
        };
        let key = register_key(k, keys);
        counter += 1;
        let value = ((c + 1) * 1_000_000 + counter).to_string();
        let invoke = now_ns();
        let (call, outcome) = if dice < read_percent {
            shared.begin(process, &key, Call::Read, invoke);
            let outcome = match client.get(key.as_bytes()).await {
                Ok(v) => Some(Outcome::Read(v.map(|v| String::from_utf8_lossy(&v).into_owned()))),
                // Definite: the client saw only errors that mean it did not happen.
                Err(_) => Some(Outcome::Failed),
            };
            (Call::Read, outcome)
        } else if dice < read_percent + cas_percent {
            // Compare against a value this key plausibly holds: the last value
            // this process read or wrote, else a recent one from the history.
            let from = last_value(shared, &key, expect).unwrap_or_else(|| "0".into());
            shared.begin(process, &key, Call::Cas(from.clone(), value.clone()), invoke);
            let outcome = match client.cas(key.as_bytes(), Some(from.as_bytes()), Some(value.as_bytes())).await {
                Ok((true, _)) => Some(Outcome::CasOk),
                Ok((false, _)) => Some(Outcome::CasFailed),
                Err(ClientError::Unknown(_)) => Some(Outcome::Unknown),
                // Definite: the client saw only errors that mean it did not happen.
                Err(_) => Some(Outcome::Failed),
            };
            (Call::Cas(from, value), outcome)
        } else if dice >= read_percent + cas_percent + delete_percent && dice < read_percent + cas_percent + delete_percent + shared.scan_percent {
            scan(shared, client, c, keys).await;
            think(shared).await;
            continue;
        } else if dice < read_percent + cas_percent + delete_percent {
            shared.begin(process, &key, Call::Delete, invoke);
            let outcome = match client.delete(key.as_bytes()).await {
                Ok(()) => Some(Outcome::Done),
                Err(ClientError::Unknown(_)) => Some(Outcome::Unknown),
                // Definite: the client saw only errors that mean it did not happen.
                Err(_) => Some(Outcome::Failed),
            };
            (Call::Delete, outcome)
        } else {
            shared.begin(process, &key, Call::Write(value.clone()), invoke);
            let outcome = match client.put(key.as_bytes(), value.as_bytes()).await {
                Ok(()) => Some(Outcome::Done),
                Err(ClientError::Unknown(_)) => Some(Outcome::Unknown),
                // Definite: the client saw only errors that mean it did not happen.
                Err(_) => Some(Outcome::Failed),
            };
            (Call::Write(value), outcome)
        };
        let unknown = outcome == Some(Outcome::Unknown);
        shared.note_served(process, invoke, client.take_answered());
        record(shared, process, &key, call, invoke, outcome);
        if unknown {
            process += clients;
        }
        think(shared).await;
    }
}

/// One of the last few values seen on `key` (0 = the latest).
pub fn last_value(shared: &Shared, key: &str, back: u64) -> Option<String> {
    shared.recent.lock().unwrap().get(key).and_then(|values| values.iter().rev().nth(back as usize).cloned())
}

/// Scans the register keys `a..=b` (drawn at random, so ranges cross region
/// boundaries) and records what it saw as one read per key covered, each by a
/// process of its own over the scan's interval: a projection of the scan onto
/// the per-key model (every key it covers must read a value the model allows
/// then; absent keys read as nothing). A result out of order, repeated, or
/// outside the range is a failure of its own.
async fn scan(shared: &Shared, client: &RawClient, c: u64, keys: u64) {
    use rand::Rng;
    let (a, b) = {
        let mut rng = madsim::rand::thread_rng();
        let (x, y) = (rng.gen_range(0..keys), rng.gen_range(0..keys));
        (x.min(y), x.max(y))
    };
    let start = register_key(a, keys);
    // Just past the last key of the range.
    let end = format!("{}\0", register_key(b, keys));
    let invoke = now_ns();
    let Ok(pairs) = client.scan(start.as_bytes(), end.as_bytes(), 10_000).await else {
        return;
    };
    let complete = now_ns();
    let found: Vec<(String, String)> =
        pairs.into_iter().map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), String::from_utf8_lossy(&v).into_owned())).collect();
    let in_order = found.windows(2).all(|w| w[0].0 < w[1].0);
    let inside = found.iter().all(|(k, _)| k.as_str() >= start.as_str() && k.as_str() < end.as_str());
    if !in_order || !inside {
        let shown: Vec<String> = found.iter().map(|(k, v)| format!("{k}={v}")).collect();
        shared.scan_problems.lock().unwrap().push(format!(
            "client {c}: scan [{start:?}, {end:?}) at {:.6}s..{:.6}s returned keys {} the range: {}",
            invoke as f64 / 1e9,
            complete as f64 / 1e9,
            if in_order { "outside" } else { "repeated or out of order within" },
            shown.join(" ")
        ));
        return;
    }
    let values: std::collections::BTreeMap<&str, &str> = found.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for i in a..=b {
        let key = register_key(i, keys);
        let value = values.get(key.as_str()).map(|v| v.to_string());
        let process = SCAN_PROCESS + c * keys + i;
        super::record_at(shared, process, &key, Call::Read, invoke, complete, Outcome::Read(value));
    }
}
