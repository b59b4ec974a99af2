//! The transactional client: Percolator over the store's transactional
//! service, with timestamps from PD's TSO and routing from the raw client's
//! region cache.
//!
//! A [`Transaction`] reads at its start_ts (seeing its own buffered writes)
//! and commits in two phases: prewrite every key (grouped by region, the
//! groups in parallel) with the first key as primary, then commit the primary
//! at a fresh commit_ts — the transaction's commit point — then the
//! secondaries. A read or a prewrite that meets another transaction's lock
//! waits while the lock is alive, then asks the lock's primary for its fate
//! (`check_txn_status`, which rolls back an expired transaction) and resolves
//! the lock as the primary says.
//!
//! Every transactional command is idempotent (a retried prewrite finds its own
//! lock, a retried commit its own record), so the client retries them through
//! timeouts. Only the primary's commit decides the outcome: if it cannot be
//! learned, the commit is reported [`TxnError::Unknown`], never as failed.

use super::error::{AttemptError, ClientError};
use super::raw::RawClient;
use crate::codec::keys;
use crate::meta::{Region, StoreId};
use crate::pd_client::{PdClient, PdClientError};
use crate::planted::Bug;
use crate::proto::{
    KeyError, LockInfo, RpcRequest, RpcResponse, ServerError, TxnCmd, TxnMutation, TxnOp, TxnRead, TxnReply, TxnRequest, TxnResult, TxnStatus, TxnWrite,
};
use std::collections::BTreeMap;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// The TTL of a transaction's locks: how long others wait before they may
    /// roll it back.
    pub lock_ttl_ms: u64,
    /// How long a read or prewrite waits for other transactions' locks in
    /// all before it gives up (`LockNotResolved`).
    pub max_lock_wait: Duration,
    /// Planted bugs (`crate::planted`): none outside simulation.
    pub bugs: crate::planted::Bugs,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig { lock_ttl_ms: 3000, max_lock_wait: Duration::from_secs(10), bugs: crate::planted::Bugs::NONE }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TxnError {
    /// Another transaction committed a write to `key` after this one started:
    /// this one is aborted (nothing of it was committed).
    #[error("write conflict on {key:?}: aborted")]
    WriteConflict { key: Vec<u8> },
    /// A lock of another transaction stayed in the way past the wait limit.
    #[error("key {:?} stayed locked by transaction {} (primary {:?})", String::from_utf8_lossy(&.0.key), .0.start_ts, String::from_utf8_lossy(&.0.primary))]
    LockNotResolved(LockInfo),
    /// The transaction did not commit (its locks were rolled back by others,
    /// or a step failed before the commit point). Nothing of it is visible.
    #[error("transaction aborted: {0}")]
    Aborted(String),
    /// The commit point's outcome could not be learned: the transaction may
    /// or may not have committed.
    #[error("commit outcome unknown: {0}")]
    Unknown(String),
    /// A read failed (routing, unreachable stores).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// No timestamp from PD.
    #[error("tso: {0}")]
    Tso(PdClientError),
    /// A key error the protocol does not expect here.
    #[error("unexpected: {0}")]
    Unexpected(String),
}

impl TxnError {
    /// True if the transaction certainly did not commit.
    pub fn is_definite(&self) -> bool {
        !matches!(self, TxnError::Unknown(_))
    }
}

pub struct TxnClient {
    raw: RawClient,
    pd: PdClient,
    cfg: TxnConfig,
    /// The last start_ts and when it was taken (for a planted bug).
    last_start: std::sync::Mutex<Option<(madsim::time::Instant, u64)>>,
}

impl TxnClient {
    pub fn new(raw: RawClient, pd: PdClient, cfg: TxnConfig) -> TxnClient {
        TxnClient { raw, pd, cfg, last_start: std::sync::Mutex::new(None) }
    }

    pub fn raw(&self) -> &RawClient {
        &self.raw
    }

    /// A transaction reading at a fresh start_ts.
    pub async fn begin(&self) -> Result<Transaction<'_>, TxnError> {
        if self.cfg.bugs.on(Bug::StartTsReused) {
            let now = madsim::time::Instant::now();
            let recent = *self.last_start.lock().expect("last start lock");
            if let Some((_, ts)) = recent.filter(|(at, _)| now.duration_since(*at) < Duration::from_millis(50)) {
                return Ok(Transaction { client: self, start_ts: ts, writes: BTreeMap::new() });
            }
            let start_ts = self.timestamp().await?;
            *self.last_start.lock().expect("last start lock") = Some((madsim::time::Instant::now(), start_ts));
            return Ok(Transaction { client: self, start_ts, writes: BTreeMap::new() });
        }
        let start_ts = self.timestamp().await?;
        Ok(Transaction { client: self, start_ts, writes: BTreeMap::new() })
    }

    pub async fn timestamp(&self) -> Result<u64, TxnError> {
        self.pd.get_ts(1).await.map_err(TxnError::Tso)
    }

    /// `key` as of `ts`, resolving the locks in the way.
    pub async fn get_at(&self, key: &[u8], ts: u64) -> Result<Option<Vec<u8>>, TxnError> {
        let deadline = madsim::time::Instant::now() + self.cfg.max_lock_wait;
        let mut attempt = 0;
        loop {
            let read = TxnCmd::Read(TxnRead::Get { key: key.to_vec(), ts });
            let (result, _) = self.call(&keys::txn_key(key), |_| read.clone()).await?;
            match result {
                Ok(TxnReply::Value(v)) => return Ok(v),
                Ok(other) => return Err(TxnError::Unexpected(format!("{other:?} to a get"))),
                Err(errors) => self.handle_locks(errors, deadline, &mut attempt).await?,
            }
        }
    }

    /// Up to `limit` pairs with keys in `[start, end)` (empty end: unbounded)
    /// as of `ts`, ascending, region by region; locks in the way resolved.
    pub async fn scan_at(&self, start: &[u8], end: &[u8], limit: usize, ts: u64) -> Result<Vec<(Vec<u8>, Vec<u8>)>, TxnError> {
        let space_end = vec![keys::TXN_PREFIX + 1];
        let stop = if end.is_empty() { space_end } else { keys::txn_key(end) };
        let deadline = madsim::time::Instant::now() + self.cfg.max_lock_wait;
        let mut attempt = 0;
        let mut out = Vec::new();
        let mut cursor = keys::txn_key(start);
        while out.len() < limit && cursor < stop {
            let read = TxnCmd::Read(TxnRead::Scan { start: start.to_vec(), end: end.to_vec(), limit: limit - out.len(), ts, reverse: false });
            let (result, region) = self.call(&cursor, |_| read.clone()).await?;
            match result {
                Ok(TxnReply::Pairs(pairs)) => out.extend(pairs),
                Ok(other) => return Err(TxnError::Unexpected(format!("{other:?} to a scan"))),
                Err(errors) => {
                    self.handle_locks(errors, deadline, &mut attempt).await?;
                    continue;
                }
            }
            if region.end_key.is_empty() {
                break;
            }
            cursor = region.end_key;
        }
        out.truncate(limit);
        Ok(out)
    }

    /// One sweep over the transactional key space: every lock left by a
    /// transaction that started at or before `max_ts` is settled as its
    /// primary says (after clients stop: what a GC worker's lock sweep does),
    /// waiting for locks whose TTL has not run out. Returns how many locks it
    /// resolved. A lock that lands after the sweep passed its region is left
    /// for the next sweep.
    pub async fn resolve_locks_in(&self, max_ts: u64) -> Result<usize, TxnError> {
        let mut resolved = 0;
        for lock in self.scan_locks(max_ts).await? {
            while !self.resolve(&lock).await? {
                // Still alive: its TTL runs out soon.
                madsim::time::sleep(Duration::from_millis(100)).await;
            }
            resolved += 1;
        }
        Ok(resolved)
    }

    /// Garbage-collects every region of the transactional key space at
    /// `safe_point`: versions no read at or after it can see are dropped.
    /// Returns how many regions it collected.
    pub async fn gc(&self, safe_point: u64) -> Result<usize, TxnError> {
        let results = self.each_region(TxnCmd::Write(TxnWrite::Gc { safe_point })).await?;
        for result in &results {
            if let Err(errors) = result {
                return Err(TxnError::Unexpected(format!("gc: {}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))));
            }
        }
        Ok(results.len())
    }

    /// The locks left in the transactional key space by transactions that
    /// started at or before `max_ts`.
    pub async fn scan_locks(&self, max_ts: u64) -> Result<Vec<LockInfo>, TxnError> {
        let mut out = Vec::new();
        for result in self.each_region(TxnCmd::Read(TxnRead::ScanLocks { max_ts, limit: usize::MAX })).await? {
            match result {
                Ok(TxnReply::Locks(locks)) => out.extend(locks),
                other => return Err(TxnError::Unexpected(format!("{other:?} to a lock scan"))),
            }
        }
        Ok(out)
    }

    /// Sends `cmd` to every region of the transactional key space, in key
    /// order, following the regions as they are when each is reached.
    async fn each_region(&self, cmd: TxnCmd) -> Result<Vec<TxnResult>, ClientError> {
        let mut cursor = keys::txn_key(b"");
        let stop = vec![keys::TXN_PREFIX + 1];
        let mut out = Vec::new();
        while cursor < stop {
            let (result, region) = self.call(&cursor, |_| cmd.clone()).await?;
            out.push(result);
            if region.end_key.is_empty() {
                break;
            }
            cursor = region.end_key;
        }
        Ok(out)
    }

    /// Sends one transactional command to the region holding user key `key`,
    /// as it is: no lock resolution, no two-phase protocol (tools and tests
    /// that need to leave a transaction half done).
    pub async fn command(&self, key: &[u8], cmd: TxnCmd) -> Result<TxnResult, ClientError> {
        Ok(self.call(&keys::txn_key(key), |_| cmd.clone()).await?.0)
    }

    /// Waits for, or resolves, the locks named by `errors`; any other key
    /// error is returned.
    async fn handle_locks(&self, errors: Vec<KeyError>, deadline: madsim::time::Instant, attempt: &mut u32) -> Result<(), TxnError> {
        let mut waited = false;
        for error in errors {
            match error {
                KeyError::KeyIsLocked(lock) => {
                    if madsim::time::Instant::now() >= deadline {
                        return Err(TxnError::LockNotResolved(lock));
                    }
                    if !self.resolve(&lock).await? {
                        waited = true;
                    }
                }
                KeyError::WriteConflict { key, .. } => return Err(TxnError::WriteConflict { key }),
                other => return Err(TxnError::Unexpected(other.to_string())),
            }
        }
        // Retry at once after resolving; back off while locks are alive, or
        // when resolved locks keep coming back.
        if waited || *attempt >= 2 {
            let backoff = Duration::from_millis(20u64 << (*attempt).min(5));
            madsim::time::sleep(backoff).await;
        }
        *attempt += 1;
        Ok(())
    }

    /// Settles `lock` as its primary decided: asks the primary for the
    /// transaction's status (rolling it back if it expired) and commits or
    /// rolls back the locks of that transaction in the locked key's region.
    /// Returns false if the transaction is still alive (wait, then retry).
    async fn resolve(&self, lock: &LockInfo) -> Result<bool, TxnError> {
        let current_ts = self.timestamp().await?;
        if self.cfg.bugs.on(Bug::ResolveWithoutPrimary) && crate::meta::physical_ms(lock.start_ts) + lock.ttl_ms <= crate::meta::physical_ms(current_ts) {
            // Planted bug: an expired lock is taken for a committed one.
            self.resolve_region(lock, Some(current_ts)).await?;
            return Ok(true);
        }
        let check = TxnCmd::Write(TxnWrite::CheckTxnStatus { primary: lock.primary.clone(), start_ts: lock.start_ts, current_ts });
        let (result, _) = self.call(&keys::txn_key(&lock.primary), |_| check.clone()).await?;
        let commit_ts = match result {
            Ok(TxnReply::Status(TxnStatus::Alive { .. })) => return Ok(false),
            Ok(TxnReply::Status(TxnStatus::Committed { commit_ts })) => Some(commit_ts),
            Ok(TxnReply::Status(TxnStatus::RolledBack)) => None,
            other => return Err(TxnError::Unexpected(format!("{other:?} to a status check"))),
        };
        if lock.key != lock.primary || commit_ts.is_some() {
            self.resolve_region(lock, commit_ts).await?;
        }
        Ok(true)
    }

    async fn resolve_region(&self, lock: &LockInfo, commit_ts: Option<u64>) -> Result<(), TxnError> {
        let resolve = TxnCmd::Write(TxnWrite::ResolveLock { start_ts: lock.start_ts, commit_ts });
        match self.call(&keys::txn_key(&lock.key), |_| resolve.clone()).await?.0 {
            Ok(_) => Ok(()),
            Err(errors) => {
                Err(TxnError::Unexpected(format!("resolving {:?}: {}", lock.key, errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))))
            }
        }
    }

    /// Sends the command `make` builds for the region holding encoded key
    /// `key`; key errors come back as the command's result.
    async fn call(&self, key: &[u8], make: impl Fn(&Region) -> TxnCmd) -> Result<(TxnResult, Region), ClientError> {
        self.raw.route(key, false, |region| RpcRequest::Txn(TxnRequest { region_id: region.id, epoch: region.epoch, cmd: make(region) }), extract).await
    }

    /// Runs `make(keys)` for every user key of `keys`, one command per region
    /// (the regions in parallel), following splits as they are learned.
    /// Returns each command's keys and result.
    async fn per_region(&self, keys: &[Vec<u8>], make: impl Fn(&[Vec<u8>]) -> TxnWrite + Clone) -> Result<Vec<(Vec<Vec<u8>>, TxnResult)>, ClientError> {
        // Grouped by the region the cache (or PD) names; keys no region is
        // known for yet go together, and find their regions as they are sent.
        let mut groups: BTreeMap<Option<Vec<u8>>, Vec<Vec<u8>>> = BTreeMap::new();
        for key in keys {
            let region = self.raw.locate(&keys::txn_key(key)).await.ok();
            groups.entry(region.map(|r| r.start_key)).or_default().push(key.clone());
        }
        let tasks = groups.into_values().map(|group| {
            let make = make.clone();
            async move {
                let mut left = group;
                let mut answers = Vec::new();
                while !left.is_empty() {
                    let first = keys::txn_key(&left[0]);
                    let mine = |region: &Region| left.iter().filter(|k| region.contains(&keys::txn_key(k))).cloned().collect::<Vec<_>>();
                    let (result, region) = self.call(&first, |region| TxnCmd::Write(make(&mine(region)))).await?;
                    let done = mine(&region);
                    left.retain(|k| !done.contains(k));
                    answers.push((done, result));
                }
                Ok::<_, ClientError>(answers)
            }
        });
        let mut out = Vec::new();
        for answers in futures::future::join_all(tasks).await {
            out.extend(answers?);
        }
        Ok(out)
    }
}

/// A transactional response: the command's result, or the attempt's failure.
fn extract(store: StoreId, response: RpcResponse) -> Result<TxnResult, AttemptError> {
    match response {
        RpcResponse::Txn(Ok(reply)) => Ok(Ok(reply)),
        RpcResponse::Txn(Err(ServerError::Key(errors))) => Ok(Err(errors)),
        RpcResponse::Txn(Err(error)) | RpcResponse::Rejected(error) => Err(AttemptError::Server(error)),
        _ => Err(AttemptError::Server(ServerError::Malformed(format!("store {store} answered with a response of another service")))),
    }
}

/// One transaction: reads at `start_ts`, writes buffered until commit.
pub struct Transaction<'a> {
    client: &'a TxnClient,
    start_ts: u64,
    writes: BTreeMap<Vec<u8>, TxnOp>,
}

impl Transaction<'_> {
    pub fn start_ts(&self) -> u64 {
        self.start_ts
    }

    /// `key` as this transaction sees it: its own write, else the snapshot.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, TxnError> {
        match self.writes.get(key) {
            Some(TxnOp::Put(v)) => Ok(Some(v.clone())),
            Some(TxnOp::Delete) => Ok(None),
            Some(TxnOp::Lock) | None => self.client.get_at(key, self.read_ts()).await,
        }
    }

    /// The timestamp reads are served at: the start_ts.
    fn read_ts(&self) -> u64 {
        if self.client.cfg.bugs.on(Bug::StaleSnapshotReads) {
            // Planted bug: the snapshot is half a second old.
            return self.start_ts.saturating_sub(500 << 18);
        }
        self.start_ts
    }

    /// Up to `limit` pairs in `[start, end)` (empty end: unbounded) as this
    /// transaction sees them, ascending.
    pub async fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, TxnError> {
        // Read enough of the snapshot that own deletions cannot starve the limit.
        let deletes = self.writes.values().filter(|op| matches!(op, TxnOp::Delete)).count();
        let snapshot = self.client.scan_at(start, end, limit.saturating_add(deletes), self.read_ts()).await?;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = snapshot.into_iter().collect();
        let in_range = |k: &[u8]| k >= start && (end.is_empty() || k < end);
        for (key, op) in self.writes.iter().filter(|(k, _)| in_range(k)) {
            match op {
                TxnOp::Put(v) => {
                    merged.insert(key.clone(), v.clone());
                }
                TxnOp::Delete => {
                    merged.remove(key);
                }
                TxnOp::Lock => {}
            }
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    pub fn set(&mut self, key: &[u8], value: &[u8]) {
        self.writes.insert(key.to_vec(), TxnOp::Put(value.to_vec()));
    }

    pub fn delete(&mut self, key: &[u8]) {
        self.writes.insert(key.to_vec(), TxnOp::Delete);
    }

    /// Locks `key` at commit without changing it (so that a concurrent write
    /// to it conflicts with this transaction).
    pub fn lock_key(&mut self, key: &[u8]) {
        self.writes.entry(key.to_vec()).or_insert(TxnOp::Lock);
    }

    /// Two-phase commit. Returns the commit_ts (a read-only transaction
    /// commits at its start_ts without writing).
    pub async fn commit(self) -> Result<u64, TxnError> {
        let client = self.client;
        if self.writes.is_empty() {
            return Ok(self.start_ts);
        }
        let start_ts = self.start_ts;
        let keys: Vec<Vec<u8>> = self.writes.keys().cloned().collect();
        let primary = keys[0].clone();
        if let Err(e) = self.prewrite(&primary).await {
            // Nothing is committed before the primary is: the locks left are
            // rolled back now, or by whoever meets them once they expire.
            let _ = client.per_region(&keys, move |ks: &[Vec<u8>]| TxnWrite::Rollback { keys: ks.to_vec(), start_ts }).await;
            return Err(e);
        }
        let commit_ts = match client.timestamp().await {
            Ok(ts) => ts,
            Err(e) => {
                let _ = client.per_region(&keys, move |ks: &[Vec<u8>]| TxnWrite::Rollback { keys: ks.to_vec(), start_ts }).await;
                return Err(TxnError::Aborted(format!("no commit timestamp: {e}")));
            }
        };
        // The commit point.
        let commit = TxnCmd::Write(TxnWrite::Commit { keys: vec![primary.clone()], start_ts, commit_ts });
        match client.call(&keys::txn_key(&primary), |_| commit.clone()).await {
            Ok((Ok(_), _)) => {}
            Ok((Err(errors), _)) => {
                return Err(match &errors[..] {
                    [KeyError::TxnNotFound { .. }] => TxnError::Aborted("the primary's lock was rolled back before the commit".into()),
                    _ => TxnError::Unexpected(errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")),
                });
            }
            Err(e) => return Err(TxnError::Unknown(format!("committing the primary: {e}"))),
        }
        // Committed. Secondaries that fail to commit now are resolved by
        // whoever meets their locks.
        let secondaries: Vec<Vec<u8>> = keys[1..].to_vec();
        if !secondaries.is_empty() {
            let _ = client.per_region(&secondaries, move |ks: &[Vec<u8>]| TxnWrite::Commit { keys: ks.to_vec(), start_ts, commit_ts }).await;
        }
        Ok(commit_ts)
    }

    /// Locks every key, resolving other transactions' locks in the way.
    async fn prewrite(&self, primary: &[u8]) -> Result<(), TxnError> {
        let client = self.client;
        let deadline = madsim::time::Instant::now() + client.cfg.max_lock_wait;
        let mut attempt = 0;
        let mut left: Vec<Vec<u8>> = self.writes.keys().cloned().collect();
        while !left.is_empty() {
            let (writes, primary, start_ts, ttl_ms) = (&self.writes, primary.to_vec(), self.start_ts, client.cfg.lock_ttl_ms);
            let make = move |ks: &[Vec<u8>]| TxnWrite::Prewrite {
                mutations: ks.iter().map(|k| TxnMutation { key: k.clone(), op: writes[k].clone() }).collect(),
                primary: primary.clone(),
                start_ts,
                ttl_ms,
            };
            let answers = client.per_region(&left, make).await.map_err(|e| TxnError::Aborted(format!("prewrite: {e}")))?;
            let mut errors = Vec::new();
            let mut retry = Vec::new();
            for (ks, result) in answers {
                if let Err(es) = result {
                    errors.extend(es);
                    retry.extend(ks);
                }
            }
            if errors.is_empty() {
                return Ok(());
            }
            client.handle_locks(errors, deadline, &mut attempt).await?;
            left = retry;
        }
        Ok(())
    }
}
