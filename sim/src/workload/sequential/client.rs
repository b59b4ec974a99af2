//! The sequential clients: each appends its numbered items to its own key
//! and records them in its [`ClientLog`].

use super::check::{ClientLog, ItemStatus};
use crate::history::{Call, Outcome};
use crate::workload::{now_ns, record, sequential_key, think, Shared};
use simkv::client::{ClientError, RawClient};
use std::sync::atomic::Ordering;

/// Appends items 1, 2, 3, ... to the client's own key by read + compare-and-set.
pub async fn sequential_client(shared: &Shared, client: &RawClient, c: u64) {
    let clients = shared.swarm.clients.max(1);
    let key = sequential_key(c, clients);
    shared.logs.lock().unwrap().insert(c, ClientLog::default());
    let mut process = c;
    // Start from the empty list, so that every append is a compare-and-set
    // between two strings the register model can follow.
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let invoke = now_ns();
        shared.begin(process, &key, Call::Write(String::new()), invoke);
        let outcome = match client.put(key.as_bytes(), b"").await {
            Ok(()) => Some(Outcome::Done),
            Err(ClientError::Unknown(_)) => Some(Outcome::Unknown),
            Err(_) => Some(Outcome::Failed),
        };
        let done = outcome == Some(Outcome::Done);
        if outcome == Some(Outcome::Unknown) {
            record(shared, process, &key, Call::Write(String::new()), invoke, outcome.clone());
            process += clients;
        }
        if done {
            record(shared, process, &key, Call::Write(String::new()), invoke, outcome);
            break;
        }
        shared.end(process);
        think(shared).await;
    }
    let mut item = 1u64;
    while !shared.stop.load(Ordering::SeqCst) {
        let invoke = now_ns();
        let current = match client.get(key.as_bytes()).await {
            Ok(v) => v.map(|v| String::from_utf8_lossy(&v).into_owned()),
            Err(_) => {
                think(shared).await;
                continue;
            }
        };
        record(shared, process, &key, Call::Read, invoke, Some(Outcome::Read(current.clone())));
        let mut next = current.clone().unwrap_or_default();
        next.push_str(&format!("{item},"));
        let from = current.clone().unwrap_or_default();
        let invoke = now_ns();
        let expected = current.as_deref().map(str::as_bytes);
        shared.begin(process, &key, Call::Cas(from.clone(), next.clone()), invoke);
        let (status, outcome) = match client.cas(key.as_bytes(), expected, Some(next.as_bytes())).await {
            Ok((true, _)) => (Some(ItemStatus::Acknowledged), Some(Outcome::CasOk)),
            Ok((false, _)) => (None, Some(Outcome::CasFailed)),
            Err(ClientError::Unknown(_)) => (Some(ItemStatus::Unknown), Some(Outcome::Unknown)),
            Err(_) => (None, Some(Outcome::Failed)),
        };
        record(shared, process, &key, Call::Cas(from, next), invoke, outcome.clone());
        if let Some(status) = status {
            shared.logs.lock().unwrap().get_mut(&c).expect("registered").items.insert(item, status);
            item += 1;
        }
        if outcome == Some(Outcome::Unknown) {
            process += clients;
        }
        think(shared).await;
    }
}
