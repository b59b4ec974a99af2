//! Serving reads: each from a kv snapshot taken when its turn comes, paying
//! read IO in the background.

use super::cmd::{ReadCmd, ReadResult, RegionError, RegionResult};
use super::router::ReadCallback;
use crate::codec::keys;
use crate::engine::{Cf, Engine, EngineError, IoKind, Snapshot as _};
use crate::meta::{Region, RegionEpoch};
use crate::proto::TxnReply;

pub struct PendingRead {
    pub id: u64,
    pub cmd: ReadCmd,
    pub callback: ReadCallback,
    /// Set once the leader has confirmed its leadership for this read.
    pub read_index: Option<u64>,
    /// The region's epoch when the read was admitted: a split applied before it
    /// is served changes what the read may see.
    pub epoch: RegionEpoch,
    /// When its ReadIndex round started (None: served on the lease): the
    /// quorum's answer renews the lease from then.
    pub sent_at: Option<madsim::time::Instant>,
}

/// Serves `reads` (confirmed, and at an index applied) of `region` from one kv
/// snapshot. A read admitted before a split that has since moved the region's
/// bounds is refused with `EpochNotMatch`: the client must route it again.
/// If a read of the snapshot failed its checksum, no answer computed from it
/// goes out: every read is refused with `DataCorrupted` and the failure is
/// returned (the replica must be repaired).
pub fn serve<E: Engine>(reads: impl IntoIterator<Item = PendingRead>, region: Region, kv_engine: &E, bugs: crate::planted::Bugs) -> Result<(), EngineError> {
    let snap = kv_engine.snapshot();
    let answers: Vec<(PendingRead, RegionResult<ReadResult>)> = reads
        .into_iter()
        .map(|read| {
            let result = if region.epoch.version == read.epoch.version {
                exec_read(&region, &read.cmd, &snap, bugs)
            } else {
                Err(RegionError::EpochNotMatch {
                    message: format!("region {} split while the read waited ({} -> {})", region.id, read.epoch, region.epoch),
                    current_regions: vec![region.clone()],
                })
            };
            (read, result)
        })
        .collect();
    let failure = snap.failure();
    for (read, mut result) in answers {
        if let Some(failure) = &failure {
            result = Err(RegionError::DataCorrupted { region_id: region.id, reason: failure.to_string() });
        }
        let engine = kv_engine.clone();
        madsim::task::spawn(async move {
            let bytes = match &result {
                Ok(ReadResult::Value(v)) => v.as_ref().map_or(0, Vec::len),
                Ok(ReadResult::Pairs(pairs) | ReadResult::Txn(Ok(TxnReply::Pairs(pairs)))) => pairs.iter().map(|(k, v)| k.len() + v.len()).sum(),
                Ok(ReadResult::Txn(Ok(TxnReply::Value(v)))) => v.as_ref().map_or(0, Vec::len),
                Ok(ReadResult::Txn(_)) | Err(_) => 0,
            };
            engine.io(IoKind::Read, bytes).await;
            let _ = read.callback.send(result);
        });
    }
    failure.map_or(Ok(()), Err)
}

/// Executes a read against a kv snapshot, clipped to the region.
pub fn exec_read<S: crate::engine::Snapshot>(region: &Region, cmd: &ReadCmd, snap: &S, bugs: crate::planted::Bugs) -> RegionResult<ReadResult> {
    match cmd {
        ReadCmd::Txn(read) => {
            let (lower, upper) = crate::mvcc::commands::txn_data_range(&region.start_key, &region.end_key);
            let reader = crate::mvcc::MvccReader::with_bugs(snap, bugs);
            Ok(ReadResult::Txn(crate::mvcc::commands::execute_read(&reader, (&lower, &upper), read)))
        }
        ReadCmd::Get { key } => Ok(ReadResult::Value(snap.get(Cf::Default, &keys::data_key(key)).expect("kv read"))),
        ReadCmd::Scan { start, end, limit } => {
            let (_, region_end) = keys::region_data_range(&region.start_key, &region.end_key);
            let mut stop = if end.is_empty() { region_end.clone() } else { keys::data_key(end) };
            if stop > region_end {
                stop = region_end;
            }
            let pairs = snap
                .scan(Cf::Default, &keys::data_key(start), Some(&stop), *limit, false)
                .expect("kv scan")
                .into_iter()
                .map(|(k, v)| (keys::origin_key(&k).expect("data key").to_vec(), v))
                .collect();
            Ok(ReadResult::Pairs(pairs))
        }
    }
}
