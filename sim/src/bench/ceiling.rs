//! The ceiling: a bare raft-rs group in madsim, with nothing of the store.
//!
//! Three nodes, each a `RawNode` over raft-rs's `MemStorage`, ticking every
//! 100 ms as the store's peers do, exchanging protobuf-encoded messages as
//! datagrams over madsim's network, while the leader proposes a 64-byte entry
//! every 20 ms (about the writes `chaos`'s clients commit). No engine, no apply, no
//! PD, no checks: whatever the store's runs cost beyond this is the store's
//! and the testbed's. `bench` prints each scenario's simulated seconds per
//! wall second as a share of this one, measured in the same run.

use futures::FutureExt;
use madsim::net::Endpoint;
use madsim::time::{interval, sleep, Duration};
use protobuf::Message as _;
use raft::eraftpb::Message;
use raft::storage::MemStorage;
use raft::{Config, RawNode};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

const NODES: u64 = 3;
const TAG: u64 = 0x0c11;

fn addr(id: u64) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 9, 0, id as u8)), 7000)
}

/// Simulated seconds per wall second of a bare 3-node raft-rs group run for
/// `sim_seconds` (median of `runs` seeds), and the entries it committed in
/// the last run.
pub fn bare_raft(sim_seconds: u64, runs: u64) -> (f64, u64) {
    let mut rates = Vec::new();
    let mut committed = 0;
    for seed in 0..runs.max(1) {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
        let started = std::time::Instant::now();
        committed = runtime.block_on(async move {
            let handle = madsim::runtime::Handle::current();
            let nodes: Vec<_> = (1..=NODES)
                .map(|id| handle.create_node().name(format!("raft-{id}")).ip(addr(id).ip()).build().spawn(async move { node(id, sim_seconds).await }))
                .collect();
            let mut committed = 0;
            for n in nodes {
                committed = committed.max(n.await.expect("a raft node"));
            }
            committed
        });
        rates.push(sim_seconds as f64 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    (rates[rates.len() / 2], committed)
}

/// One node: ticks, steps what arrives, proposes while it leads, handles its
/// readies in raft-rs's order; returns how many entries it committed.
async fn node(id: u64, sim_seconds: u64) -> u64 {
    let storage = MemStorage::new_with_conf_state((vec![1, 2, 3], vec![]));
    let cfg = Config { id, election_tick: 10, heartbeat_tick: 2, ..Config::default() };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let mut raft = RawNode::new(&cfg, storage, &logger).expect("a raft node");
    if id == 1 {
        raft.campaign().expect("campaign");
    }
    let endpoint = Arc::new(Endpoint::bind(addr(id)).await.expect("bind"));
    let (tx, mut rx) = futures::channel::mpsc::unbounded::<Message>();
    let receiver = endpoint.clone();
    madsim::task::spawn(async move {
        while let Ok((payload, _)) = receiver.recv_from_raw(TAG).await {
            let bytes = payload.downcast::<Vec<u8>>().expect("bytes");
            let _ = tx.unbounded_send(Message::parse_from_bytes(&bytes).expect("a raft message"));
        }
    });
    let (mut ticks, mut proposals) = (interval(Duration::from_millis(100)), interval(Duration::from_millis(20)));
    // One timer for the end, not one per turn of the loop.
    let end = sleep(Duration::from_secs(sim_seconds)).fuse();
    futures::pin_mut!(end);
    let mut committed = 0u64;
    loop {
        use futures::StreamExt;
        futures::select_biased! {
            msg = rx.next() => if let Some(msg) = msg { let _ = raft.step(msg); },
            _ = ticks.tick().fuse() => { raft.tick(); }
            _ = proposals.tick().fuse() => if raft.raft.state == raft::StateRole::Leader { let _ = raft.propose(vec![], vec![7; 64]); },
            _ = end => break,
        }
        if !raft.has_ready() {
            continue;
        }
        let mut ready = raft.ready();
        send(&endpoint, ready.take_messages()).await;
        if !ready.snapshot().is_empty() {
            raft.mut_store().wl().apply_snapshot(ready.snapshot().clone()).expect("snapshot");
        }
        committed += ready.take_committed_entries().len() as u64;
        raft.mut_store().wl().append(ready.entries()).expect("append");
        if let Some(hs) = ready.hs() {
            raft.mut_store().wl().set_hardstate(hs.clone());
        }
        send(&endpoint, ready.take_persisted_messages()).await;
        let mut light = raft.advance(ready);
        if let Some(commit) = light.commit_index() {
            raft.mut_store().wl().mut_hard_state().set_commit(commit);
        }
        send(&endpoint, light.take_messages()).await;
        committed += light.take_committed_entries().len() as u64;
        raft.advance_apply();
    }
    committed
}

async fn send(endpoint: &Endpoint, messages: Vec<Message>) {
    for m in messages {
        let bytes = m.write_to_bytes().expect("encodes");
        let _ = endpoint.send_to_raw(addr(m.to), TAG, Box::new(bytes)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bare_group_elects_and_commits() {
        // About one entry per 20 ms once a leader is up: a group that did not
        // work would make the ceiling meaningless.
        let (rate, committed) = super::bare_raft(5, 1);
        println!("bare raft-rs group: {rate:.0} simulated s per wall s, {committed} entries");
        assert!(committed > 150, "{committed} entries committed in 5 simulated s");
        assert!(rate > 0.0);
    }
}
