//! Whole transactional commands over one region's range: the wire's
//! [`TxnWrite`] and [`TxnRead`] turned into the per-key actions, with the
//! command's answer. A write command is all or nothing: if any key fails, it
//! writes nothing and answers every failed key.

use super::actions::{self, TxnStatus};
use super::{MvccReader, MvccTxn};
use crate::codec::keys;
use crate::engine::ReadView;
use crate::proto::{LockInfo, TxnRead, TxnReply, TxnResult, TxnWrite};

/// The engine keys `[lower, upper)` of a region with bounds `start_key` and
/// `end_key` (encoded keys) that hold transactional data.
pub fn txn_data_range(start_key: &[u8], end_key: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (space_lower, space_upper) = super::reader::data_range(b"", b"");
    let (region_lower, region_upper) = keys::region_data_range(start_key, end_key);
    (region_lower.max(space_lower), region_upper.min(space_upper))
}

/// Executes `cmd` against `reader` for a region whose transactional data is
/// in `range`. Returns what to write (nothing if the command failed) and the
/// answer.
pub fn execute_write<S: ReadView + ?Sized>(reader: &MvccReader<S>, range: (&[u8], &[u8]), cmd: &TxnWrite) -> (MvccTxn, TxnResult) {
    let mut txn = MvccTxn::default();
    let mut errors = Vec::new();
    let reply = match cmd {
        TxnWrite::Prewrite { mutations, primary, start_ts, ttl_ms } => {
            for m in mutations {
                if let Err(e) = actions::prewrite(reader, &mut txn, &m.key, m.op.clone(), primary, *start_ts, *ttl_ms) {
                    errors.push(e);
                }
            }
            TxnReply::Done
        }
        TxnWrite::Commit { keys, start_ts, commit_ts } => {
            for key in keys {
                if let Err(e) = actions::commit(reader, &mut txn, key, *start_ts, *commit_ts) {
                    errors.push(e);
                }
            }
            TxnReply::Done
        }
        TxnWrite::Rollback { keys, start_ts } => {
            for key in keys {
                if let Err(e) = actions::rollback(reader, &mut txn, key, *start_ts) {
                    errors.push(e);
                }
            }
            TxnReply::Done
        }
        TxnWrite::CheckTxnStatus { primary, start_ts, current_ts } => {
            TxnReply::Status(actions::check_txn_status(reader, &mut txn, primary, *start_ts, actions::physical_ms(*current_ts)))
        }
        TxnWrite::ResolveLock { start_ts, commit_ts } => {
            for (key, lock) in reader.locks(range.0, range.1) {
                if lock.start_ts == *start_ts {
                    if let Err(e) = actions::resolve_lock(reader, &mut txn, &key, *start_ts, *commit_ts) {
                        errors.push(e);
                    }
                }
            }
            TxnReply::Done
        }
        TxnWrite::TxnHeartbeat { primary, start_ts, ttl_ms } => match actions::txn_heartbeat(reader, &mut txn, primary, *start_ts, *ttl_ms) {
            Ok(ttl) => TxnReply::Ttl(ttl),
            Err(e) => {
                errors.push(e);
                TxnReply::Done
            }
        },
        TxnWrite::Gc { safe_point } => {
            for key in reader.versioned_keys(range.0, range.1) {
                actions::gc(reader, &mut txn, &key, *safe_point);
            }
            TxnReply::Done
        }
    };
    if errors.is_empty() {
        (txn, Ok(reply))
    } else {
        (MvccTxn::default(), Err(errors))
    }
}

/// Serves a read for a region whose transactional data is in `range`.
pub fn execute_read<S: ReadView + ?Sized>(reader: &MvccReader<S>, range: (&[u8], &[u8]), cmd: &TxnRead) -> TxnResult {
    match cmd {
        TxnRead::Get { key, ts } => reader.get(key, *ts).map(TxnReply::Value).map_err(|e| vec![e]),
        TxnRead::Scan { start, end, limit, ts, reverse } => {
            let (lower, upper) = super::reader::data_range(start, end);
            let lower = lower.max(range.0.to_vec());
            let upper = upper.min(range.1.to_vec());
            if lower >= upper {
                return Ok(TxnReply::Pairs(vec![]));
            }
            reader.scan_data_range(&lower, &upper, *limit, *ts, *reverse).map(TxnReply::Pairs).map_err(|e| vec![e])
        }
        TxnRead::ScanLocks { max_ts, limit } => Ok(TxnReply::Locks(
            reader
                .locks(range.0, range.1)
                .into_iter()
                .filter(|(_, lock)| lock.start_ts <= *max_ts)
                .take(*limit)
                .map(|(key, lock)| LockInfo { key, primary: lock.primary, start_ts: lock.start_ts, ttl_ms: lock.ttl_ms })
                .collect(),
        )),
    }
}

/// The status a check answered, for callers that only need to know whether
/// the transaction committed.
pub fn commit_ts_of(status: TxnStatus) -> Option<u64> {
    match status {
        TxnStatus::Committed { commit_ts } => Some(commit_ts),
        TxnStatus::RolledBack | TxnStatus::Alive { .. } => None,
    }
}
