//! Golden traces of a 3-peer group's ready pipeline.
//!
//! Three peers of one region, each on a store of its own (two in-memory disks
//! apiece), driven by hand in a fixed order with no network and no timers: an
//! election, a write, a crash of a follower that loses what it had not synced,
//! a write it must catch up on, and a membership change that removes a peer.
//! Every message a peer hands the store, every batch it writes (with its sync
//! flag), every event it reports, in order, is one line of the trace, pinned
//! with insta: a change to the pipeline's order or durability (a message sent
//! before the write it answers for, a sync flag dropped) shows up as a
//! readable diff of `snapshots/*pipeline*.snap`.

use super::*;
use crate::codec::keys;
use crate::engine::sim::SimSnapshot;
use crate::engine::{IoKind, Mutation as DiskMutation, SimEngine};
use crate::meta::RegionEpoch;
use crate::proto::admin::{ChangeKind, PeerChange};
use crate::raftstore::state::{self, RegionLocalState};
use std::sync::{Arc, Mutex};

type Trace = Arc<Mutex<Vec<String>>>;

/// An engine that writes every batch it is given into the trace.
#[derive(Clone)]
struct Recording {
    inner: SimEngine,
    /// `store-N/raft` or `store-N/kv`.
    label: String,
    trace: Trace,
}

impl Engine for Recording {
    type Snap = SimSnapshot;

    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn write(&self, batch: &WriteBatch, sync: bool) -> crate::engine::Result<()> {
        let what: Vec<String> = batch.mutations().iter().map(describe_mutation).collect();
        let how = if sync { "synced" } else { "not synced" };
        self.trace.lock().unwrap().push(format!("  {} writes ({how}): {}", self.label, what.join(", ")));
        self.inner.write(batch, sync).await
    }

    fn snapshot(&self) -> SimSnapshot {
        self.inner.snapshot()
    }

    async fn io(&self, kind: IoKind, bytes: usize) {
        self.inner.io(kind, bytes).await
    }
}

/// One mutation, by what its key means.
fn describe_mutation(m: &DiskMutation) -> String {
    let (put, key, value) = match m {
        DiskMutation::Put { key, value, .. } => (true, key, Some(value)),
        DiskMutation::Delete { key, .. } => (false, key, None),
        DiskMutation::DeleteRange { start, end, .. } => return format!("delete range {}..{}", short(start), short(end)),
    };
    let verb = if put { "put" } else { "delete" };
    if let Ok((_, index)) = keys::decode_raft_log_key(key) {
        return format!("{verb} log entry {index}");
    }
    let decoded = |what: &str| -> Option<String> {
        let v = value?;
        Some(match what {
            "raft state" => {
                let s: RaftLocalState = state::decode(v, what, "trace");
                format!(" (term {}, vote {}, commit {}, last {})", s.term, s.vote, s.commit, s.last_index)
            }
            "apply state" => format!(" (applied {})", state::decode::<ApplyState>(v, what, "trace").applied_index),
            _ => {
                let s: RegionLocalState = state::decode(v, what, "trace");
                format!(" ({:?}, voters {:?}, conf_ver {})", s.state, s.region.voter_ids(), s.region.epoch.conf_ver)
            }
        })
    };
    for (state_key, what) in
        [(keys::raft_state_key(REGION), "raft state"), (keys::apply_state_key(REGION), "apply state"), (keys::region_state_key(REGION), "region state")]
    {
        if *key == state_key {
            return format!("{verb} {what}{}", decoded(what).unwrap_or_default());
        }
    }
    match value {
        Some(v) => format!("{verb} {}={}", short(key), String::from_utf8_lossy(v)),
        None => format!("{verb} {}", short(key)),
    }
}

fn short(key: &[u8]) -> String {
    String::from_utf8_lossy(key).chars().map(|c| if c.is_ascii_graphic() { c } else { '.' }).collect()
}

/// One raft message, as a line.
fn describe_message(envelope: &RaftEnvelope) -> String {
    let m = Message::parse_from_bytes(&envelope.message).expect("a raft message");
    let mut line = format!("{:?} {}->{} term {}", m.get_msg_type(), envelope.from.id, envelope.to.id, m.term);
    match m.get_msg_type() {
        MessageType::MsgAppend => {
            let entries: Vec<u64> = m.entries.iter().map(|e| e.index).collect();
            line += &format!(" after {}/{} entries {entries:?} commit {}", m.log_term, m.index, m.commit);
        }
        MessageType::MsgAppendResponse => line += &format!(" index {}{}", m.index, if m.reject { " rejected" } else { "" }),
        MessageType::MsgRequestVote | MessageType::MsgRequestPreVote => line += &format!(" last {}/{}", m.log_term, m.index),
        MessageType::MsgRequestVoteResponse | MessageType::MsgRequestPreVoteResponse => line += if m.reject { " rejected" } else { " granted" },
        MessageType::MsgHeartbeat => line += &format!(" commit {}", m.commit),
        _ => {}
    }
    line
}

const REGION: RegionId = 1;

/// One store of the harness: its peer of the region and its disks.
struct Node {
    store_id: StoreId,
    peer: PeerFsm<Recording>,
    raft: Recording,
    kv: Recording,
    snapshots: SnapshotWorker<Recording>,
    events: Events,
}

struct Group {
    cfg: RaftStoreConfig,
    nodes: Vec<Node>,
    trace: Trace,
    /// Messages handed to the network, delivered in order.
    wire: VecDeque<RaftEnvelope>,
}

fn region() -> Region {
    Region { id: REGION, start_key: vec![], end_key: vec![], epoch: RegionEpoch::new(1, 1), peers: (1..=3).map(|s| Peer::voter(s * 10, s)).collect() }
}

impl Group {
    async fn new() -> Group {
        let trace: Trace = Arc::default();
        let cfg = RaftStoreConfig::default();
        let mut nodes = Vec::new();
        for store_id in 1..=3 {
            let disk = |what: &str| Recording {
                inner: SimEngine::in_memory(&format!("store-{store_id}/{what}")),
                label: format!("store {store_id} {what}"),
                trace: trace.clone(),
            };
            let (raft, kv) = (disk("raft"), disk("kv"));
            crate::raftstore::bootstrap_store(&raft.inner, &kv.inner, store_id, &[region()]).await.unwrap();
            nodes.push(Group::open(&cfg, store_id, raft, kv, &trace));
        }
        Group { cfg, nodes, trace, wire: VecDeque::new() }
    }

    /// The store's peer as its disks hold it.
    fn open(cfg: &RaftStoreConfig, store_id: StoreId, raft: Recording, kv: Recording, trace: &Trace) -> Node {
        let get = |engine: &Recording, key: Vec<u8>| engine.snapshot().get(Cf::Raft, &key).unwrap().expect("state written at bootstrap");
        let raft_state: RaftLocalState = state::decode(&get(&raft, keys::raft_state_key(REGION)), "raft state", "trace");
        let apply_state: ApplyState = state::decode(&get(&kv, keys::apply_state_key(REGION)), "apply state", "trace");
        let local: RegionLocalState = state::decode(&get(&kv, keys::region_state_key(REGION)), "region state", "trace");
        let me = local.region.peer_on_store(store_id).copied().expect("a peer on the store");
        let peer = PeerFsm::create(me, cfg, raft.clone(), local.region, raft_state, apply_state);
        let (tx, _) = futures::channel::mpsc::channel(16);
        let snapshots = SnapshotWorker::new(store_id, (kv.clone(), raft.clone()), tx, 1 << 20, 64, cfg.bugs);
        let sink_trace = trace.clone();
        let sink: crate::raftstore::events::EventSink = Arc::new(move |e: &StoreEvent| {
            let line = match e {
                StoreEvent::BecameLeader { peer_id, term, .. } => format!("peer {peer_id} became leader in term {term}"),
                StoreEvent::Applied { peer_id, index, .. } => format!("peer {peer_id} applied {index}"),
                StoreEvent::ConfChangeApplied { region, index, .. } => format!("conf change at {index} applied: voters {:?}", region.voter_ids()),
                StoreEvent::RaftConfig { peer_id, voters, .. } => format!("peer {peer_id} raft counts voters {voters:?}"),
                _ => return,
            };
            sink_trace.lock().unwrap().push(format!("  store {store_id}: {line}"));
        });
        Node { store_id, peer, raft, kv, snapshots, events: Events::new(store_id, Some(sink)) }
    }

    fn note(&self, line: impl Into<String>) {
        self.trace.lock().unwrap().push(line.into());
    }

    /// Has every peer handle its ready, then delivers what they sent, until
    /// nothing is left to do.
    async fn settle(&mut self) {
        for _round in 0..50 {
            for node in &mut self.nodes {
                let ctx = PeerContext {
                    store_id: node.store_id,
                    cfg: &self.cfg,
                    raft_engine: &node.raft,
                    kv_engine: &node.kv,
                    snapshots: &node.snapshots,
                    events: &node.events,
                };
                let before = self.trace.lock().unwrap().len();
                let effects = crate::raftstore::ready::handle_ready(&mut node.peer, &ctx).await.expect("no disk fails here");
                let mut trace = self.trace.lock().unwrap();
                for envelope in &effects.messages {
                    trace.push(format!("  store {} sends {}", node.store_id, describe_message(envelope)));
                }
                if trace.len() > before {
                    // A peer with nothing to do leaves no line.
                    trace.insert(before, format!("store {} handles its ready", node.store_id));
                }
                assert!(effects.snapshots.is_empty(), "no peer falls behind a compacted log here");
                self.wire.extend(effects.messages);
            }
            if self.wire.is_empty() {
                return;
            }
            while let Some(envelope) = self.wire.pop_front() {
                let msg = Message::parse_from_bytes(&envelope.message).unwrap();
                if let Some(node) = self.nodes.iter_mut().find(|n| n.peer.peer.id == envelope.to.id) {
                    node.peer.step(&self.cfg, msg);
                }
            }
        }
        panic!("the group did not settle");
    }

    fn node(&mut self, store_id: StoreId) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.store_id == store_id).unwrap()
    }

    /// The store's process dies: its disks keep only what was synced, and
    /// its peer is opened again from them.
    fn crash(&mut self, store_id: StoreId) {
        let trace = self.trace.clone();
        let cfg = self.cfg.clone();
        let node = self.node(store_id);
        let (lost_raft, lost_kv) = (node.raft.inner.disk().crash_keeping(0).lost_batches, node.kv.inner.disk().crash_keeping(0).lost_batches);
        let reopen = |e: &Recording| Recording { inner: SimEngine::open(e.inner.disk()), ..e.clone() };
        let (raft, kv) = (reopen(&node.raft), reopen(&node.kv));
        *node = Group::open(&cfg, store_id, raft, kv, &trace);
        let s = node.peer.node.raft();
        let line = format!(
            "store {store_id} crashed, losing {lost_raft} raft and {lost_kv} kv batches not synced; reopened at term {}, vote {}, commit {}, last index {}, applied {}",
            s.term,
            s.vote,
            s.raft_log.committed,
            s.raft_log.last_index(),
            node.peer.applied_index()
        );
        trace.lock().unwrap().push(line);
    }

    fn put(&mut self, leader: StoreId, key: &str, value: &str) {
        self.note(format!("client writes {key}={value} at store {leader}"));
        let (cfg, node) = (self.cfg.clone(), self.node(leader));
        let epoch = node.peer.region().epoch;
        let (callback, _answer) = futures::channel::oneshot::channel();
        let put = crate::raftstore::cmd::Mutation::Put { cf: Cf::Default, key: keys::raw_key(key.as_bytes()), value: value.as_bytes().to_vec() };
        node.peer.propose_write(&cfg, epoch, WriteCmd::Mutate(vec![put]), callback);
    }
}

#[madsim::test]
async fn a_three_peer_group_through_election_write_crash_and_conf_change() {
    let mut group = Group::new().await;
    group.note("store 1 campaigns");
    group.node(1).peer.campaign();
    group.settle().await;
    assert!(group.node(1).peer.is_leader());

    group.put(1, "a", "1");
    group.settle().await;

    group.crash(2);
    group.put(1, "b", "2");
    group.settle().await;

    group.note("store 1 removes peer 30 (store 3)");
    let (cfg, leader) = (group.cfg.clone(), group.node(1));
    let (epoch, events) = (leader.peer.region().epoch, leader.events.clone());
    leader.peer.propose_conf_change(&cfg, &events, epoch, vec![PeerChange { kind: ChangeKind::Remove, peer: Peer::voter(30, 3) }], None);
    group.settle().await;
    assert_eq!(group.node(1).peer.region().voter_ids(), vec![10, 20]);

    let trace = group.trace.lock().unwrap().join("\n");
    insta::assert_snapshot!("pipeline_election_write_crash_conf_change", trace);
}
