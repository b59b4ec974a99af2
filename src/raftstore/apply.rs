//! Apply: committed entries in, what they do out. Pure: no IO, no raft-rs, no
//! peer; the same entries applied to the same state give the same output on
//! every replica.
//!
//! [`apply_entries`] takes the region, its apply state, a kv snapshot and the
//! committed entries, and returns an [`ApplyOutput`]: one write batch holding the
//! data **and** the new apply state (so a crash can never separate them), the
//! answer for each entry, and the exec results the peer must act on. An admin
//! command changes nothing outside the batch by itself: log compaction is an
//! exec result the peer carries out on its log, and so will membership changes
//! and splits be, which is what makes "a configuration takes effect when its
//! entry is applied" a single visible place (the peer acting on the result).
//!
//! Every command is checked again here: a command whose epoch is stale for its
//! kind (see [`CmdBody::epoch_checks`]) or whose keys left the region is skipped
//! and answered `EpochNotMatch` / `KeyNotInRegion`.

use super::cmd::{AdminCmd, CmdBody, Mutation, PeerChange, RaftCmd, RegionError, RegionResult, SplitIds, WriteCmd, WriteResult};
use super::events::fingerprint;
use super::state::{self, ApplyState, PeerState, RegionLocalState, RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM};
use crate::codec::keys;
use crate::engine::{Cf, KvPair, ReadView, Snapshot, WriteBatch};
use crate::meta::{Peer, Region, RegionEpoch};
use crate::planted::{Bug, Bugs};
use protobuf::Message as _;
use raft::eraftpb::{ConfChangeV2, Entry, EntryType};
use std::collections::BTreeMap;

/// What the peer must do after a batch is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecResult {
    /// The log up to `index` may be deleted (the apply state already says so).
    CompactLog { old_truncated: u64, index: u64 },
    /// The region split at `index`: it is now `derived`, and `new_regions` exist
    /// (their states are in the batch); the store creates their peers.
    Split { derived: Region, new_regions: Vec<Region>, index: u64 },
    /// A membership change was applied at `index`: the region is now `region`
    /// (its state is in the batch); the peer hands `changes` to raft-rs, and
    /// only then does the raft configuration change.
    ChangePeer { region: Region, changes: Vec<PeerChange>, index: u64 },
}

/// One applied entry, for the `Applied` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedEntry {
    pub index: u64,
    pub term: u64,
    pub digest: u64,
    /// For a data write that took effect: the epoch it was proposed at and the
    /// region's epoch when it was applied.
    pub write_epochs: Option<(RegionEpoch, RegionEpoch)>,
}

pub struct ApplyOutput {
    /// The region after these entries (a split changes it).
    pub region: Region,
    /// Data and apply state together: write it as one batch.
    pub batch: WriteBatch,
    /// Whether the batch must be synced (before the log is truncated, the applied
    /// state must be durable).
    pub sync: bool,
    pub apply_state: ApplyState,
    /// The answer for each entry, by (index, term).
    pub results: Vec<(u64, u64, RegionResult<WriteResult>)>,
    pub exec_results: Vec<ExecResult>,
    pub applied: Vec<AppliedEntry>,
}

/// Applies `entries` (consecutive, starting right after `apply_state`'s index).
pub fn apply_entries<S: Snapshot>(region: &Region, apply_state: ApplyState, entries: &[Entry], snap: &S) -> ApplyOutput {
    apply_entries_with(region, apply_state, entries, snap, Bugs::NONE)
}

/// [`apply_entries`], with planted defects.
pub fn apply_entries_with<S: Snapshot>(region: &Region, mut apply_state: ApplyState, entries: &[Entry], snap: &S, bugs: Bugs) -> ApplyOutput {
    let mut region = region.clone();
    let mut ctx = ApplyContext { snap, overlay: BTreeMap::new(), batch: WriteBatch::new() };
    let mut results = Vec::with_capacity(entries.len());
    let mut exec_results = Vec::new();
    let mut applied = Vec::with_capacity(entries.len());
    for entry in entries {
        assert_eq!(entry.index, apply_state.applied_index + 1, "region {}: applying index {} after {}", region.id, entry.index, apply_state.applied_index);
        apply_state.applied_index = entry.index;
        if bugs.on(Bug::SpinInApply) && entry.index == 50 {
            loop {
                std::hint::spin_loop();
            }
        }
        let mut write_epochs = None;
        let result = match entry.get_entry_type() {
            EntryType::EntryNormal if entry.data.is_empty() => Err(RegionError::StaleCommand),
            EntryType::EntryNormal | EntryType::EntryConfChangeV2 => {
                let data = match entry.get_entry_type() {
                    EntryType::EntryNormal => entry.data.to_vec(),
                    _ => ConfChangeV2::parse_from_bytes(&entry.data)
                        .unwrap_or_else(|e| panic!("region {}: committed conf change {} is corrupt: {e}", region.id, entry.index))
                        .take_context()
                        .to_vec(),
                };
                let cmd = RaftCmd::decode(&data).unwrap_or_else(|e| panic!("region {}: committed entry {} is corrupt: {e}", region.id, entry.index));
                if matches!(cmd.body, CmdBody::Write(_)) {
                    write_epochs = Some((cmd.epoch, region.epoch));
                }
                let checked = if bugs.on(Bug::ApplySkipsEpochCheck) { Ok(()) } else { check_epoch(&region, &cmd) };
                checked.and_then(|()| match cmd.body {
                    CmdBody::Write(WriteCmd::Mutate(mutations))
                        if bugs.on(Bug::EmptyValuePanics) && mutations.iter().any(|m| matches!(m, Mutation::Put { value, .. } if value.is_empty())) =>
                    {
                        let key = mutations.iter().map(Mutation::key).next().unwrap_or_default();
                        panic!("apply: put of an empty value to {:?} at index {}", String::from_utf8_lossy(key), entry.index)
                    }
                    CmdBody::Write(write) if bugs.on(Bug::ApplySkipsEpochCheck) => ctx.exec_write_anywhere(&region, write, bugs),
                    CmdBody::Write(write) => ctx.exec_write(&region, write, bugs),
                    CmdBody::Admin(AdminCmd::BatchSplit { split_keys, ids }) => {
                        let (derived, new_regions) = split(&region, &split_keys, &ids, !bugs.on(Bug::SplitKeepsVersion))?;
                        let local = RegionLocalState { state: PeerState::Normal, region: derived.clone() };
                        ctx.batch.put(Cf::Raft, keys::region_state_key(derived.id), state::encode(&local));
                        for r in &new_regions {
                            // A new region this store already knows (a snapshot made
                            // it here first, or its peer here was since removed and
                            // tombstoned) keeps its own, newer state: the split
                            // must not set it back.
                            if ctx.current(Cf::Raft, &keys::region_state_key(r.id)).is_some() {
                                continue;
                            }
                            let local = RegionLocalState { state: PeerState::Normal, region: r.clone() };
                            ctx.batch.put(Cf::Raft, keys::region_state_key(r.id), state::encode(&local));
                            if !bugs.on(Bug::SplitDefersApplyState) {
                                let initial =
                                    ApplyState { applied_index: RAFT_INIT_LOG_INDEX, truncated_index: RAFT_INIT_LOG_INDEX, truncated_term: RAFT_INIT_LOG_TERM };
                                ctx.batch.put(Cf::Raft, keys::apply_state_key(r.id), state::encode(&initial));
                            }
                        }
                        region = derived.clone();
                        exec_results.push(ExecResult::Split { derived, new_regions, index: entry.index });
                        Ok(WriteResult::Done)
                    }
                    CmdBody::Admin(AdminCmd::ChangePeer { changes }) => {
                        let next = super::conf_change::change_peers(&region, &changes)
                            .map_err(|reason| RegionError::ConfChangeRefused { region_id: region.id, reason })?;
                        let local = RegionLocalState { state: PeerState::Normal, region: next.clone() };
                        ctx.batch.put(Cf::Raft, keys::region_state_key(next.id), state::encode(&local));
                        region = next.clone();
                        exec_results.push(ExecResult::ChangePeer { region: next, changes, index: entry.index });
                        Ok(WriteResult::Done)
                    }
                    CmdBody::Admin(AdminCmd::CompactLog { index, term }) => {
                        if index > apply_state.truncated_index && index <= apply_state.applied_index {
                            exec_results.push(ExecResult::CompactLog { old_truncated: apply_state.truncated_index, index });
                            apply_state.truncated_index = index;
                            apply_state.truncated_term = term;
                        }
                        Ok(WriteResult::Done)
                    }
                })
            }
            other => panic!("region {}: entry type {other:?} is not supported yet", region.id),
        };
        let write_epochs = write_epochs.filter(|_| result.is_ok());
        results.push((entry.index, entry.term, result));
        applied.push(AppliedEntry { index: entry.index, term: entry.term, digest: fingerprint(&entry.data), write_epochs });
    }
    let mut batch = ctx.batch;
    batch.put(Cf::Raft, keys::apply_state_key(region.id), state::encode(&apply_state));
    let sync = !exec_results.is_empty();
    ApplyOutput { region, batch, sync, apply_state, results, exec_results, applied }
}

/// The regions a split at `split_keys` leaves: `region` shrunk to the first
/// range, and one new region per later range; every one at the next version
/// (unless `bump` is off: a planted bug).
pub fn split(region: &Region, split_keys: &[Vec<u8>], ids: &[SplitIds], bump: bool) -> RegionResult<(Region, Vec<Region>)> {
    let invalid = |why: String| Err(RegionError::SplitRefused { region_id: region.id, reason: why });
    if split_keys.is_empty() || split_keys.len() != ids.len() {
        return invalid(format!("{} split keys with {} id sets", split_keys.len(), ids.len()));
    }
    let mut previous = &region.start_key;
    for key in split_keys {
        if key <= previous || !region.contains(key) {
            return invalid(format!("split key {key:?} is not inside the region after {previous:?}"));
        }
        previous = key;
    }
    if let Some(bad) = ids.iter().find(|i| i.new_peer_ids.len() != region.peers.len()) {
        return invalid(format!("region {} would get {} peers for {} replicas", bad.new_region_id, bad.new_peer_ids.len(), region.peers.len()));
    }
    let mut epoch = region.epoch;
    if bump {
        epoch.version += 1;
    }
    let mut bounds: Vec<Vec<u8>> = vec![region.start_key.clone()];
    bounds.extend(split_keys.iter().cloned());
    bounds.push(region.end_key.clone());
    let derived = Region { start_key: bounds[0].clone(), end_key: bounds[1].clone(), epoch, ..region.clone() };
    let new_regions = ids
        .iter()
        .enumerate()
        .map(|(i, ids)| Region {
            id: ids.new_region_id,
            start_key: bounds[i + 1].clone(),
            end_key: bounds[i + 2].clone(),
            epoch,
            peers: region.peers.iter().zip(&ids.new_peer_ids).map(|(p, &id)| Peer { id, ..*p }).collect(),
        })
        .collect();
    Ok((derived, new_regions))
}

/// The epoch check at apply time: only parts the command's kind depends on.
fn check_epoch(region: &Region, cmd: &RaftCmd) -> RegionResult<()> {
    if cmd.epoch.is_stale_for(&region.epoch, cmd.body.epoch_checks()) {
        return Err(RegionError::EpochNotMatch {
            message: format!("proposed at {}, applied at {}", cmd.epoch, region.epoch),
            current_regions: vec![region.clone()],
        });
    }
    Ok(())
}

/// The batch being built, and what it has written so far (later commands of the
/// same batch must see earlier ones).
struct ApplyContext<'a, S> {
    snap: &'a S,
    overlay: BTreeMap<(Cf, Vec<u8>), Option<Vec<u8>>>,
    batch: WriteBatch,
}

impl<S: Snapshot> ApplyContext<'_, S> {
    fn current(&self, cf: Cf, data_key: &[u8]) -> Option<Vec<u8>> {
        match self.overlay.get(&(cf, data_key.to_vec())) {
            Some(value) => value.clone(),
            None => self.snap.get(cf, data_key).expect("kv read during apply"),
        }
    }

    fn set(&mut self, cf: Cf, data_key: Vec<u8>, value: Option<Vec<u8>>) {
        match &value {
            Some(v) => self.batch.put(cf, data_key.clone(), v.clone()),
            None => self.batch.delete(cf, data_key.clone()),
        }
        self.overlay.insert((cf, data_key), value);
    }

    fn exec_write(&mut self, region: &Region, cmd: WriteCmd, bugs: Bugs) -> RegionResult<WriteResult> {
        if let Some(key) = cmd.keys().into_iter().find(|k| !region.contains(k)) {
            return Err(RegionError::KeyNotInRegion {
                key: key.into_owned(),
                region_id: region.id,
                start_key: region.start_key.clone(),
                end_key: region.end_key.clone(),
            });
        }
        self.exec_write_anywhere(region, cmd, bugs)
    }

    /// Executes a write without asking whether its keys are the region's.
    fn exec_write_anywhere(&mut self, region: &Region, cmd: WriteCmd, bugs: Bugs) -> RegionResult<WriteResult> {
        match cmd {
            WriteCmd::Mutate(mutations) => {
                for mutation in mutations {
                    match mutation {
                        Mutation::Put { cf, key, value } => self.set(cf, keys::data_key(&key), Some(value)),
                        Mutation::Delete { cf, key } => self.set(cf, keys::data_key(&key), None),
                    }
                }
                Ok(WriteResult::Done)
            }
            WriteCmd::Cas { key, expected, new } => {
                let data_key = keys::data_key(&key);
                let previous = self.current(Cf::Default, &data_key);
                let succeeded = previous == expected;
                if succeeded {
                    self.set(Cf::Default, data_key, new);
                }
                Ok(WriteResult::Cas { succeeded, previous })
            }
            WriteCmd::Txn(cmd) => {
                let (lower, upper) = crate::mvcc::commands::txn_data_range(&region.start_key, &region.end_key);
                let view = BatchView { snap: self.snap, overlay: &self.overlay };
                let reader = crate::mvcc::MvccReader::with_bugs(&view, bugs);
                let (txn, result) = crate::mvcc::commands::execute_write(&reader, (&lower, &upper), &cmd);
                for modify in txn.modifies {
                    match modify {
                        crate::mvcc::Modify::Put { cf, key, value } => self.set(cf, keys::data_key(&key), Some(value)),
                        crate::mvcc::Modify::Delete { cf, key } => self.set(cf, keys::data_key(&key), None),
                    }
                }
                Ok(WriteResult::Txn(result))
            }
        }
    }
}

/// The batch being applied seen over the snapshot it is applied to: what
/// earlier commands of the batch wrote, else the snapshot.
struct BatchView<'a, S> {
    snap: &'a S,
    overlay: &'a BTreeMap<(Cf, Vec<u8>), Option<Vec<u8>>>,
}

impl<S: Snapshot> ReadView for BatchView<'_, S> {
    fn read(&self, cf: Cf, key: &[u8]) -> crate::engine::Result<Option<Vec<u8>>> {
        match self.overlay.get(&(cf, key.to_vec())) {
            Some(value) => Ok(value.clone()),
            None => self.snap.get(cf, key),
        }
    }

    fn range<'b>(&'b self, cf: Cf, start: &[u8], end: Option<&[u8]>, reverse: bool) -> Box<dyn Iterator<Item = crate::engine::Result<KvPair>> + 'b> {
        let mut written: Vec<Written> = self
            .overlay
            .range((cf, start.to_vec())..)
            .take_while(|((c, k), _)| *c == cf && end.is_none_or(|end| k.as_slice() < end))
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect();
        if written.is_empty() {
            return self.snap.iter(cf, start, end, reverse);
        }
        if reverse {
            written.reverse();
        }
        Box::new(Merged { base: self.snap.iter(cf, start, end, reverse).peekable(), written: written.into_iter().peekable(), reverse })
    }
}

/// A key the batch wrote, and its value (None: deleted).
type Written = (Vec<u8>, Option<Vec<u8>>);

/// Two ordered streams of the same range merged, the batch's writes winning
/// over (and deletions hiding) the snapshot's pairs.
struct Merged<'a> {
    base: std::iter::Peekable<Box<dyn Iterator<Item = crate::engine::Result<KvPair>> + 'a>>,
    written: std::iter::Peekable<std::vec::IntoIter<Written>>,
    reverse: bool,
}

impl Iterator for Merged<'_> {
    type Item = crate::engine::Result<KvPair>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.base.peek(), self.written.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => return self.base.next(),
                (Some(Ok(_)), None) => return self.base.next(),
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(Ok((b, _))), Some((w, _))) => {
                    let order = b.cmp(w);
                    if self.reverse {
                        order.reverse()
                    } else {
                        order
                    }
                }
            };
            match order {
                std::cmp::Ordering::Less => return self.base.next(),
                std::cmp::Ordering::Equal => {
                    self.base.next();
                }
                std::cmp::Ordering::Greater => {}
            }
            let (key, value) = self.written.next().expect("peeked");
            if let Some(value) = value {
                return Some(Ok((key, value)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, SimEngine};
    use crate::meta::{Peer, RegionEpoch};

    fn region(version: u64, conf_ver: u64) -> Region {
        Region {
            id: 1,
            start_key: keys::raw_key(b"b"),
            end_key: keys::raw_key(b"m"),
            epoch: RegionEpoch::new(conf_ver, version),
            peers: vec![Peer::voter(11, 1), Peer::voter(12, 2), Peer::voter(13, 3)],
        }
    }

    fn entry(index: u64, term: u64, epoch: RegionEpoch, body: CmdBody) -> Entry {
        Entry { index, term, data: RaftCmd { region_id: 1, epoch, body }.encode().into(), ..Entry::default() }
    }

    fn write(index: u64, epoch: RegionEpoch, cmd: WriteCmd) -> Entry {
        entry(index, 2, epoch, CmdBody::Write(cmd))
    }

    fn state(applied: u64) -> ApplyState {
        ApplyState { applied_index: applied, truncated_index: 5, truncated_term: 5 }
    }

    fn k(key: &str) -> Vec<u8> {
        keys::raw_key(key.as_bytes())
    }

    async fn engine_after(output: &ApplyOutput) -> SimEngine {
        let engine = SimEngine::in_memory("kv");
        engine.write(&output.batch, true).await.unwrap();
        engine
    }

    #[madsim::test]
    async fn writes_and_the_apply_state_land_in_one_batch() {
        let r = region(1, 1);
        let engine = SimEngine::in_memory("kv");
        let put = WriteCmd::Mutate(vec![
            Mutation::Put { cf: Cf::Default, key: k("c"), value: b"1".to_vec() },
            Mutation::Put { cf: Cf::Lock, key: k("d"), value: b"lock".to_vec() },
            Mutation::Put { cf: Cf::Write, key: k("e"), value: b"w".to_vec() },
        ]);
        let entries = vec![write(6, r.epoch, put), write(7, r.epoch, WriteCmd::delete(k("c")))];
        let out = apply_entries(&r, state(5), &entries, &engine.snapshot());
        assert_eq!(out.apply_state.applied_index, 7);
        assert!(out.exec_results.is_empty() && !out.sync);
        assert_eq!(
            out.results.iter().map(|(i, t, r)| (*i, *t, r.clone())).collect::<Vec<_>>(),
            vec![(6, 2, Ok(WriteResult::Done)), (7, 2, Ok(WriteResult::Done))]
        );
        assert_eq!(out.applied.iter().map(|a| a.index).collect::<Vec<_>>(), vec![6, 7]);
        let after = engine_after(&out).await.snapshot();
        assert_eq!(after.get(Cf::Default, &keys::data_key(&k("c"))).unwrap(), None, "deleted by the later entry");
        assert_eq!(after.get(Cf::Lock, &keys::data_key(&k("d"))).unwrap(), Some(b"lock".to_vec()));
        assert_eq!(after.get(Cf::Write, &keys::data_key(&k("e"))).unwrap(), Some(b"w".to_vec()));
        let stored: ApplyState = state::decode(&after.get(Cf::Raft, &keys::apply_state_key(1)).unwrap().unwrap(), "apply state", "test");
        assert_eq!(stored, out.apply_state, "the apply state travels with the data");
    }

    #[madsim::test]
    async fn cas_sees_earlier_writes_of_the_same_batch() {
        let r = region(1, 1);
        let engine = SimEngine::in_memory("kv");
        let cas = |expected: Option<&str>, new: &str| WriteCmd::Cas {
            key: k("c"),
            expected: expected.map(|e| e.as_bytes().to_vec()),
            new: Some(new.as_bytes().to_vec()),
        };
        let entries =
            vec![write(6, r.epoch, WriteCmd::put(k("c"), b"1".to_vec())), write(7, r.epoch, cas(Some("1"), "2")), write(8, r.epoch, cas(Some("1"), "3"))];
        let out = apply_entries(&r, state(5), &entries, &engine.snapshot());
        assert_eq!(out.results[1].2, Ok(WriteResult::Cas { succeeded: true, previous: Some(b"1".to_vec()) }));
        assert_eq!(out.results[2].2, Ok(WriteResult::Cas { succeeded: false, previous: Some(b"2".to_vec()) }));
        assert_eq!(engine_after(&out).await.snapshot().get(Cf::Default, &keys::data_key(&k("c"))).unwrap(), Some(b"2".to_vec()));
    }

    #[madsim::test]
    async fn transactional_commands_see_earlier_commands_of_the_same_batch() {
        use crate::proto::{KeyError, TxnMutation, TxnOp, TxnReply, TxnWrite};
        let r = Region { start_key: vec![], end_key: vec![], ..region(1, 1) };
        let engine = SimEngine::in_memory("kv");
        let txn = |cmd: TxnWrite| write_entry(r.epoch, WriteCmd::Txn(cmd));
        let prewrite = |key: &str, start_ts| TxnWrite::Prewrite {
            mutations: vec![TxnMutation { key: key.as_bytes().to_vec(), op: TxnOp::Put(format!("v{start_ts}").into_bytes()) }],
            primary: key.as_bytes().to_vec(),
            start_ts,
            ttl_ms: 1000,
        };
        let entries: Vec<Entry> = [
            txn(prewrite("k", 10)),
            txn(TxnWrite::Commit { keys: vec![b"k".to_vec()], start_ts: 10, commit_ts: 11 }),
            // Started before the commit above (in this very batch): a conflict.
            txn(prewrite("k", 9)),
            txn(prewrite("k", 12)),
            txn(TxnWrite::Rollback { keys: vec![b"k".to_vec()], start_ts: 12 }),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, make)| make(6 + i as u64))
        .collect();
        let out = apply_entries(&r, state(5), &entries, &engine.snapshot());
        let answers: Vec<_> = out.results.iter().map(|(_, _, r)| r.clone()).collect();
        assert_eq!(answers[0], Ok(WriteResult::Txn(Ok(TxnReply::Done))));
        assert_eq!(answers[1], Ok(WriteResult::Txn(Ok(TxnReply::Done))), "the commit found the lock written earlier in the batch");
        assert!(matches!(&answers[2], Ok(WriteResult::Txn(Err(e))) if matches!(e[..], [KeyError::WriteConflict { conflict_commit_ts: 11, .. }])));
        assert_eq!(answers[3], Ok(WriteResult::Txn(Ok(TxnReply::Done))));
        assert_eq!(answers[4], Ok(WriteResult::Txn(Ok(TxnReply::Done))));
        let after = engine_after(&out).await.snapshot();
        let reader = crate::mvcc::MvccReader::new(&after);
        assert_eq!(reader.get(b"k", 20), Ok(Some(b"v10".to_vec())), "txn 12 was rolled back, txn 9 never wrote");
        assert_eq!(reader.load_lock(b"k"), None);
    }

    fn write_entry(epoch: RegionEpoch, cmd: WriteCmd) -> impl Fn(u64) -> Entry {
        move |index| write(index, epoch, cmd.clone())
    }

    #[madsim::test]
    async fn stale_epochs_and_foreign_keys_are_skipped() {
        let r = region(3, 2);
        let engine = SimEngine::in_memory("kv");
        let entries = vec![
            // Proposed before a split (older version): refused.
            write(6, RegionEpoch::new(2, 2), WriteCmd::put(k("c"), b"x".to_vec())),
            // An older conf_ver does not matter to a data command.
            write(7, RegionEpoch::new(1, 3), WriteCmd::put(k("c"), b"y".to_vec())),
            // A key outside the region, in a batch: nothing of the batch is written.
            write(
                8,
                r.epoch,
                WriteCmd::Mutate(vec![Mutation::Put { cf: Cf::Default, key: k("d"), value: b"z".to_vec() }, Mutation::Delete { cf: Cf::Default, key: k("z") }]),
            ),
            // Compaction checks no epoch.
            entry(9, 2, RegionEpoch::new(1, 1), CmdBody::Admin(AdminCmd::CompactLog { index: 8, term: 2 })),
        ];
        let out = apply_entries(&r, state(5), &entries, &engine.snapshot());
        assert!(matches!(&out.results[0].2, Err(RegionError::EpochNotMatch { current_regions, .. }) if current_regions == &vec![r.clone()]));
        assert_eq!(out.results[1].2, Ok(WriteResult::Done));
        assert!(matches!(&out.results[2].2, Err(RegionError::KeyNotInRegion { key, .. }) if key == &k("z")));
        assert_eq!(out.results[3].2, Ok(WriteResult::Done));
        let after = engine_after(&out).await.snapshot();
        assert_eq!(after.get(Cf::Default, &keys::data_key(&k("c"))).unwrap(), Some(b"y".to_vec()));
        assert_eq!(after.get(Cf::Default, &keys::data_key(&k("d"))).unwrap(), None);
        assert_eq!(out.apply_state.applied_index, 9, "skipped entries are still applied (as no-ops)");
    }

    #[madsim::test]
    async fn a_split_never_sets_back_a_new_region_this_store_already_knows() {
        let r = region(1, 1);
        let engine = SimEngine::in_memory("kv");
        // Region 7 reached this store by a snapshot before the split that made it.
        let newer = Region { id: 7, start_key: k("g"), end_key: k("m"), epoch: RegionEpoch::new(3, 4), peers: r.peers.clone() };
        let mut before = crate::engine::WriteBatch::new();
        before.put(Cf::Raft, keys::region_state_key(7), state::encode(&RegionLocalState { state: PeerState::Normal, region: newer.clone() }));
        before.put(Cf::Raft, keys::apply_state_key(7), state::encode(&ApplyState { applied_index: 40, truncated_index: 40, truncated_term: 6 }));
        engine.write(&before, true).await.unwrap();
        let ids = |region_id| SplitIds { new_region_id: region_id, new_peer_ids: vec![region_id * 10 + 1, region_id * 10 + 2, region_id * 10 + 3] };
        let split = entry(6, 2, r.epoch, CmdBody::Admin(AdminCmd::BatchSplit { split_keys: vec![k("d"), k("g")], ids: vec![ids(6), ids(7)] }));
        let out = apply_entries(&r, state(5), &[split], &engine.snapshot());
        assert!(matches!(&out.exec_results[..], [ExecResult::Split { new_regions, .. }] if new_regions.len() == 2));
        let after = engine_after_on(&engine, &out).await.snapshot();
        let local: RegionLocalState = state::decode(&after.get(Cf::Raft, &keys::region_state_key(7)).unwrap().unwrap(), "region state", "test");
        assert_eq!(local.region, newer, "the snapshot's newer region stays");
        let apply: ApplyState = state::decode(&after.get(Cf::Raft, &keys::apply_state_key(7)).unwrap().unwrap(), "apply state", "test");
        assert_eq!(apply.applied_index, 40, "its apply state is not set back to the split's initial one");
        assert!(after.get(Cf::Raft, &keys::region_state_key(6)).unwrap().is_some(), "the other new region is written");
    }

    async fn engine_after_on(engine: &SimEngine, output: &ApplyOutput) -> SimEngine {
        engine.write(&output.batch, true).await.unwrap();
        engine.clone()
    }

    #[test]
    fn compact_log_is_an_exec_result_and_syncs() {
        let r = region(1, 1);
        let engine = SimEngine::in_memory("kv");
        let compact = |index, to| entry(index, 2, r.epoch, CmdBody::Admin(AdminCmd::CompactLog { index: to, term: 2 }));
        // The second asks for less than is already truncated, the third for more than is applied.
        let out = apply_entries(&r, state(5), &[compact(6, 6), compact(7, 4), compact(8, 20)], &engine.snapshot());
        assert_eq!(out.exec_results, vec![ExecResult::CompactLog { old_truncated: 5, index: 6 }]);
        assert_eq!((out.apply_state.truncated_index, out.apply_state.truncated_term, out.sync), (6, 2, true));
        assert!(out.results.iter().all(|(_, _, r)| r == &Ok(WriteResult::Done)));
    }

    #[test]
    fn an_empty_entry_answers_stale() {
        let r = region(1, 1);
        let engine = SimEngine::in_memory("kv");
        let out = apply_entries(&r, state(5), &[Entry { index: 6, term: 3, ..Entry::default() }], &engine.snapshot());
        assert_eq!(out.results, vec![(6, 3, Err(RegionError::StaleCommand))]);
    }

    #[test]
    #[should_panic(expected = "applying index 7 after 5")]
    fn a_gap_in_the_log_is_a_bug() {
        let r = region(1, 1);
        let engine = SimEngine::in_memory("kv");
        apply_entries(&r, state(5), &[write(7, r.epoch, WriteCmd::delete(k("c")))], &engine.snapshot());
    }

    /// A model-based test: random writes and compare-and-sets, some carrying
    /// a stale epoch or a key outside the region, applied in random batches
    /// (as readies deliver them), each batch against the state the batches
    /// before it wrote. The answers, the applied index and the data agree
    /// with a plain map; later entries of a batch see what earlier ones wrote.
    mod model {
        use super::*;
        use crate::engine::mem::MemSnapshot;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Put(u8, u8),
            Delete(u8),
            /// key, expected (None: absent), new (None: delete)
            Cas(u8, Option<u8>, Option<u8>),
        }

        fn op() -> impl Strategy<Value = (Op, u8)> {
            // Keys 'a'..='n': the region is [b, m), so some fall outside.
            let key = 0..14u8;
            let small = || proptest::option::of(0..4u8);
            let op = prop_oneof![
                3 => (key.clone(), 0..4u8).prop_map(|(k, v)| Op::Put(k, v)),
                1 => key.clone().prop_map(Op::Delete),
                3 => (key, small(), small()).prop_map(|(k, e, n)| Op::Cas(k, e, n)),
            ];
            // The epoch: 0 current, 1 an older version (stale), 2 another conf_ver (fine for data).
            (op, prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)])
        }

        fn key(k: u8) -> Vec<u8> {
            keys::raw_key(&[b'a' + k])
        }

        fn val(v: u8) -> Vec<u8> {
            format!("v{v}").into_bytes()
        }

        proptest! {
            #[test]
            fn applying_agrees_with_a_map(ops in proptest::collection::vec(op(), 1..40), cuts in proptest::collection::vec(1..6usize, 1..40)) {
                let r = region(3, 2);
                let mut mem = MemSnapshot::default();
                let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
                let mut apply_state = state(5);
                let entries: Vec<(Entry, Op, u8)> = ops.into_iter().enumerate().map(|(i, (op, epoch))| {
                    let epoch_of = match epoch {
                        0 => r.epoch,
                        1 => RegionEpoch::new(r.epoch.conf_ver, r.epoch.version - 1),
                        _ => RegionEpoch::new(r.epoch.conf_ver + 1, r.epoch.version),
                    };
                    let cmd = match &op {
                        Op::Put(k, v) => WriteCmd::Mutate(vec![Mutation::Put { cf: Cf::Default, key: key(*k), value: val(*v) }]),
                        Op::Delete(k) => WriteCmd::delete(key(*k)),
                        Op::Cas(k, e, n) => WriteCmd::Cas { key: key(*k), expected: e.map(val), new: n.map(val) },
                    };
                    (write(6 + i as u64, epoch_of, cmd), op, epoch)
                }).collect();
                let mut at = 0;
                for cut in cuts.iter().cycle() {
                    if at == entries.len() {
                        break;
                    }
                    let batch = &entries[at..(at + cut).min(entries.len())];
                    at += batch.len();
                    let raft_entries: Vec<Entry> = batch.iter().map(|(e, _, _)| e.clone()).collect();
                    let out = apply_entries(&r, apply_state, &raft_entries, &mem);
                    prop_assert_eq!(out.apply_state.applied_index, raft_entries.last().unwrap().index);
                    prop_assert_eq!(out.results.len(), batch.len());
                    for ((entry, op, epoch), (index, _, result)) in batch.iter().zip(&out.results) {
                        prop_assert_eq!(entry.index, *index);
                        let k = match op { Op::Put(k, _) | Op::Delete(k) | Op::Cas(k, _, _) => key(*k) };
                        if *epoch == 1 {
                            prop_assert!(matches!(result, Err(RegionError::EpochNotMatch { .. })), "stale epoch: {:?}", result);
                            continue;
                        }
                        if !r.contains(&k) {
                            prop_assert!(matches!(result, Err(RegionError::KeyNotInRegion { .. })), "outside: {:?}", result);
                            continue;
                        }
                        let expected = match op {
                            Op::Put(_, v) => {
                                model.insert(k, val(*v));
                                WriteResult::Done
                            }
                            Op::Delete(_) => {
                                model.remove(&k);
                                WriteResult::Done
                            }
                            Op::Cas(_, e, n) => {
                                let previous = model.get(&k).cloned();
                                let succeeded = previous == e.map(val);
                                if succeeded {
                                    match n {
                                        Some(n) => drop(model.insert(k, val(*n))),
                                        None => drop(model.remove(&k)),
                                    }
                                }
                                WriteResult::Cas { succeeded, previous }
                            }
                        };
                        prop_assert_eq!(result, &Ok(expected), "entry {}", entry.index);
                    }
                    mem.write(&out.batch);
                    apply_state = out.apply_state;
                    let stored: ApplyState = state::decode(&mem.get(Cf::Raft, &keys::apply_state_key(1)).unwrap().unwrap(), "apply state", "mem");
                    prop_assert_eq!(stored, apply_state, "the apply state travels with the data");
                }
                let data: BTreeMap<Vec<u8>, Vec<u8>> = mem.0.iter().filter(|((cf, _), _)| *cf == Cf::Default).map(|((_, k), v)| (k.clone(), v.clone())).collect();
                let expected: BTreeMap<Vec<u8>, Vec<u8>> = model.into_iter().map(|(k, v)| (keys::data_key(&k), v)).collect();
                prop_assert_eq!(data, expected);
            }
        }
    }
}
