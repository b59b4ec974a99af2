//! `SimEngine`: the simulated disk.
//!
//! A [`SimDisk`] is the platter: it lives outside any simulated node (the testbed
//! holds it in an `Arc`), so it survives a node kill, and a restarted node reopens
//! it with [`SimEngine::open`]. Opening fences every older handle, the way RocksDB's
//! LOCK file does, so a task of a killed node that the runtime has not dropped yet
//! cannot write to the disk of its successor.
//!
//! Crash model (what a write-ahead log gives): every synced batch survives; of the
//! unsynced batches written after the last sync, a crash keeps a prefix, chosen by
//! the caller's seeded RNG, and loses the rest. Never a partial batch, never a gap.
//!
//! IO time: every operation can be charged simulated latency from an [`IoProfile`]
//! the testbed controls (normal, slow, or stalled until a given moment), separately
//! for foreground IO and for snapshot IO, so a slow disk and slow snapshot IO are
//! real faults that slow whoever touches the disk.
//!
//! Disk faults the testbed can inject, each modelled on what real disks and
//! RocksDB do:
//!
//! * **bit flips** ([`Damage::BitFlip`]): a stored value changes under the
//!   engine. Every value carries a checksum (RocksDB's block checksums), so a
//!   read notices: the value reads as absent and the snapshot records a
//!   [`EngineError::Corruption`] (see [`Snapshot::failure`]). The disk keeps
//!   the mark beside the flipped value, which is exactly what a CRC32 over
//!   the value would find: it catches every single-bit error.
//! * **latent sector errors** ([`Damage::Unreadable`]): a value that cannot be
//!   read back at all (an IO error), until it is written again.
//! * **a failed fsync**: the sync returns an error, and, as Linux does, the
//!   dirty pages it could not write are dropped from the writeback queue:
//!   what was written since the last good sync stays readable (the page
//!   cache) until the next crash but will never be durable. The device has
//!   stopped persisting: later writes still reach the page cache, every later
//!   sync fails, and a crash keeps only what the last good sync made durable.
//!   A store must stop rather than go on.
//! * **torn writes**: a crash may cut the first lost batch in the middle of
//!   its write-ahead-log record. The record's checksum no longer matches and
//!   recovery discards it, as RocksDB's WAL recovery does; the crash model
//!   above (a prefix of whole batches) is what survives.
//!
//! Values are held in `imbl::OrdMap`s, persistent ordered maps whose clone is O(1),
//! so a snapshot is a cheap copy of the current view.

use super::{Cf, Engine, EngineError, IoKind, KvPair, Mutation, Result, Snapshot, WriteBatch, ALL_CFS};
use imbl::OrdMap;
use madsim::time::{Duration, Instant};
use rand::Rng;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

type CfMap = OrdMap<Vec<u8>, Vec<u8>>;

/// What the disk holds: the CFs, and the values it damaged.
#[derive(Clone, Default)]
struct Cfs {
    maps: [CfMap; ALL_CFS.len()],
    damaged: OrdMap<(Cf, Vec<u8>), Damage>,
}

impl std::ops::Index<usize> for Cfs {
    type Output = CfMap;
    fn index(&self, i: usize) -> &CfMap {
        &self.maps[i]
    }
}

impl std::ops::IndexMut<usize> for Cfs {
    fn index_mut(&mut self, i: usize) -> &mut CfMap {
        &mut self.maps[i]
    }
}

/// How a stored value was damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Damage {
    /// One bit flipped: the checksum no longer matches.
    BitFlip,
    /// The block cannot be read (a latent sector error).
    Unreadable,
}

/// Whether syncs still work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncHealth {
    Healthy,
    /// The next sync fails.
    FailNext,
    /// A sync failed: nothing is persisted, every sync fails, until a crash.
    Failed,
}

/// Latency of simulated IO. All durations in microseconds; each operation draws its
/// base latency uniformly from `[min, max]` and adds `per_kib_us` per KiB moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoProfile {
    pub read_us: (u64, u64),
    pub write_us: (u64, u64),
    pub sync_us: (u64, u64),
    pub per_kib_us: u64,
    /// Multiplies every foreground latency (1 = normal).
    pub slowdown: u64,
    /// Multiplies snapshot read and write latency (1 = normal).
    pub snapshot_slowdown: u64,
}

impl IoProfile {
    /// No simulated latency at all.
    pub fn instant() -> Self {
        IoProfile { read_us: (0, 0), write_us: (0, 0), sync_us: (0, 0), per_kib_us: 0, slowdown: 1, snapshot_slowdown: 1 }
    }

    /// A fast SSD: tens of microseconds per operation, a sync under a millisecond.
    pub fn ssd() -> Self {
        IoProfile { read_us: (20, 120), write_us: (20, 150), sync_us: (200, 900), per_kib_us: 2, slowdown: 1, snapshot_slowdown: 1 }
    }

    fn latency(&self, kind: IoKind, bytes: usize, rng: &mut impl Rng) -> Duration {
        let (range, factor) = match kind {
            IoKind::Read => (self.read_us, self.slowdown),
            IoKind::Write => (self.write_us, self.slowdown),
            IoKind::Sync => (self.sync_us, self.slowdown),
            IoKind::SnapshotRead => (self.read_us, self.snapshot_slowdown),
            IoKind::SnapshotWrite => (self.write_us, self.snapshot_slowdown),
        };
        let base = if range.1 > range.0 { rng.gen_range(range.0..=range.1) } else { range.0 };
        let transfer = self.per_kib_us * (bytes as u64).div_ceil(1024);
        Duration::from_micros((base + transfer) * factor.max(1))
    }
}

/// What a crash did to a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashReport {
    /// Unsynced batches that survived (a prefix of those written since the last sync).
    pub kept_batches: usize,
    /// Unsynced batches lost.
    pub lost_batches: usize,
    /// The first lost batch was torn mid-record; recovery found the record's
    /// checksum wrong and discarded it.
    pub torn_record_discarded: bool,
}

/// Totals since the disk was created; for traces and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub batches_written: u64,
    pub bytes_written: u64,
    pub syncs: u64,
    pub crashes: u64,
    pub batches_lost: u64,
    /// Torn write-ahead-log records found and discarded by recovery.
    pub torn_records_discarded: u64,
    pub failed_syncs: u64,
    pub io_time_us: u64,
}

struct DiskState {
    /// Bumped by every open and every crash; only the newest handle may write.
    generation: u64,
    /// What reads see: durable state plus every unsynced batch.
    view: Cfs,
    /// What a crash right now would certainly keep.
    durable: Cfs,
    /// Batches written since the last sync, oldest first.
    unsynced: Vec<WriteBatch>,
    profile: IoProfile,
    /// Every IO waits until this moment (a stalled disk).
    stalled_until: Option<Instant>,
    stats: DiskStats,
    sync_health: SyncHealth,
    /// Whether reads verify checksums (off only for a planted bug).
    verify_checksums: bool,
    /// A deliberately broken crash model (kept batches skip the first
    /// unsynced one), to show [`survivor_is_a_prefix`] catches it.
    broken_crash_model: bool,
}

/// The simulated platter. Clone it freely: clones share one disk.
#[derive(Clone)]
pub struct SimDisk {
    name: Arc<str>,
    state: Arc<Mutex<DiskState>>,
}

impl SimDisk {
    pub fn new(name: impl Into<String>, profile: IoProfile) -> Self {
        let empty = Cfs::default();
        SimDisk {
            name: name.into().into(),
            state: Arc::new(Mutex::new(DiskState {
                generation: 0,
                view: empty.clone(),
                durable: empty,
                unsynced: Vec::new(),
                profile,
                stalled_until: None,
                stats: DiskStats::default(),
                sync_health: SyncHealth::Healthy,
                verify_checksums: true,
                broken_crash_model: false,
            })),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().expect("sim disk mutex poisoned")
    }

    pub fn set_profile(&self, profile: IoProfile) {
        self.lock().profile = profile;
    }

    pub fn profile(&self) -> IoProfile {
        self.lock().profile.clone()
    }

    /// Makes every IO wait until `until` (cleared with `None`).
    pub fn stall_until(&self, until: Option<Instant>) {
        self.lock().stalled_until = until;
    }

    pub fn stats(&self) -> DiskStats {
        self.lock().stats
    }

    /// Unsynced batches a crash now could lose.
    pub fn unsynced_batches(&self) -> usize {
        self.lock().unsynced.len()
    }

    /// Crashes the disk, keeping the durable state plus the first `keep` unsynced
    /// batches (clamped to how many there are). Every open handle is fenced.
    pub fn crash_keeping(&self, keep: usize) -> CrashReport {
        self.crash_tearing(keep, None)
    }

    /// As [`SimDisk::crash_keeping`]; `tear` cuts the first lost batch's
    /// log record after that many mutations (see the module docs).
    fn crash_tearing(&self, keep: usize, tear: Option<usize>) -> CrashReport {
        let mut state = self.lock();
        let keep = keep.min(state.unsynced.len());
        let mut survivor = state.durable.clone();
        // The broken model keeps later batches without the first one.
        let skip = usize::from(state.broken_crash_model && keep >= 2);
        for batch in &state.unsynced[skip..keep] {
            apply(&mut survivor, batch);
        }
        let mut torn_record_discarded = false;
        if let (Some(cut), Some(first_lost)) = (tear, state.unsynced.get(keep)) {
            let record = WalRecord::of(first_lost);
            let torn = WalRecord { mutations: record.mutations[..cut.min(record.mutations.len())].to_vec(), checksum: record.checksum };
            match torn.recover() {
                Some(batch) => apply(&mut survivor, &batch),
                None => torn_record_discarded = true,
            }
        }
        // The testbed checks its own fault model: whatever a crash keeps is
        // what was durable plus a prefix of the batches written since the
        // last sync. A model that keeps anything else would blame the store
        // for the testbed's bug; it stops the run as the testbed's fault.
        if let Err(what) = survivor_is_a_prefix(&state.durable, &state.unsynced, &survivor) {
            panic!("{FAULT_MODEL_BROKEN}: disk {} after a crash: {what}", self.name);
        }
        let report = CrashReport { kept_batches: keep, lost_batches: state.unsynced.len() - keep, torn_record_discarded };
        state.view = survivor.clone();
        state.durable = survivor;
        state.unsynced.clear();
        state.generation += 1;
        state.stats.crashes += 1;
        state.stats.batches_lost += report.lost_batches as u64;
        state.stats.torn_records_discarded += torn_record_discarded as u64;
        if state.sync_health == SyncHealth::Failed {
            state.sync_health = SyncHealth::Healthy;
        }
        report
    }

    /// Crashes the disk, keeping a uniformly random prefix of the unsynced
    /// batches; half the time the first lost batch is torn mid-record.
    pub fn crash(&self, rng: &mut impl Rng) -> CrashReport {
        let (unsynced, sizes) = {
            let state = self.lock();
            (state.unsynced.len(), state.unsynced.iter().map(WriteBatch::len).collect::<Vec<_>>())
        };
        let keep = rng.gen_range(0..=unsynced);
        let tear = sizes.get(keep).filter(|&&n| n >= 2 && rng.gen_bool(0.5)).map(|&n| rng.gen_range(1..n));
        self.crash_tearing(keep, tear)
    }

    /// Damages the value at `key` in `cf` (if there is one): flips bit `bit`
    /// (modulo its length) or makes it unreadable, in what reads see and in
    /// what a crash keeps. Writing the key again heals it.
    pub fn damage(&self, cf: Cf, key: &[u8], damage: Damage, bit: usize) -> bool {
        let mut state = self.lock();
        let state = &mut *state;
        let mut hit = false;
        for cfs in [&mut state.view, &mut state.durable] {
            let Some(value) = cfs[cf.index()].get_mut(key) else { continue };
            if damage == Damage::BitFlip {
                if value.is_empty() {
                    continue;
                }
                let bit = bit % (value.len() * 8);
                value[bit / 8] ^= 1 << (bit % 8);
            }
            cfs.damaged.insert((cf, key.to_vec()), damage);
            hit = true;
        }
        hit
    }

    /// The `n`th key (modulo how many there are) holding a non-empty value in
    /// `cfs`, in key order: a target for [`SimDisk::damage`].
    pub fn nth_key(&self, cfs: &[Cf], n: u64) -> Option<(Cf, Vec<u8>)> {
        let state = self.lock();
        let candidates = |cf: Cf| state.view[cf.index()].iter().filter(|(_, v)| !v.is_empty()).map(move |(k, _)| (cf, k));
        let total: usize = cfs.iter().map(|&cf| candidates(cf).count()).sum();
        if total == 0 {
            return None;
        }
        cfs.iter().flat_map(|&cf| candidates(cf)).nth((n % total as u64) as usize).map(|(cf, k)| (cf, k.clone()))
    }

    /// The damaged values the disk holds now (healed ones excluded).
    pub fn damaged(&self) -> Vec<(Cf, Vec<u8>, Damage)> {
        self.lock().view.damaged.iter().map(|((cf, k), d)| (*cf, k.clone(), *d)).collect()
    }

    /// The next sync fails (see the module docs).
    pub fn fail_next_sync(&self) {
        let mut state = self.lock();
        if state.sync_health == SyncHealth::Healthy {
            state.sync_health = SyncHealth::FailNext;
        }
    }

    /// Breaks this disk's crash model on purpose (a crash keeps later
    /// unsynced batches without the first), for the test that shows the
    /// fault model's self-check catching it.
    #[doc(hidden)]
    pub fn break_crash_model(&self) {
        self.lock().broken_crash_model = true;
    }

    /// Planted bug: reads stop verifying checksums (a flipped value is served).
    pub fn set_verify_checksums(&self, verify: bool) {
        self.lock().verify_checksums = verify;
    }

    /// A read-only view of what the disk holds now (durable or not), without
    /// opening it: the testbed's way to inspect a running node's data.
    pub fn snapshot(&self) -> SimSnapshot {
        let state = self.lock();
        SimSnapshot::new(state.view.clone(), state.verify_checksums, &self.name)
    }

    /// A copy of the durable state, CF by CF: what the next crash would certainly keep.
    pub fn durable_contents(&self, cf: Cf) -> Vec<KvPair> {
        self.lock().durable[cf.index()].iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// What a panic of the testbed's own fault model starts with, so a run
/// reports it as the testbed's failure, never the store's.
pub const FAULT_MODEL_BROKEN: &str = "testbed fault model broken";

/// `Ok(k)` when `survivor` is `durable` with the first `k` of `unsynced`
/// applied (a torn record discarded counts as not kept), else what is wrong.
fn survivor_is_a_prefix(durable: &Cfs, unsynced: &[WriteBatch], survivor: &Cfs) -> std::result::Result<usize, String> {
    let same = |a: &Cfs, b: &Cfs| a.maps == b.maps;
    let mut candidate = durable.clone();
    for k in 0..=unsynced.len() {
        if same(&candidate, survivor) {
            return Ok(k);
        }
        if let Some(batch) = unsynced.get(k) {
            apply(&mut candidate, batch);
        }
    }
    let differing: Vec<String> = ALL_CFS
        .iter()
        .filter_map(|cf| {
            let (kept, full) = (&survivor[cf.index()], &candidate[cf.index()]);
            let key = kept.keys().chain(full.keys()).find(|k| kept.get(*k) != full.get(*k) && durable[cf.index()].get(*k) != kept.get(*k))?;
            Some(format!("{} key {}", cf.name(), key.escape_ascii()))
        })
        .take(3)
        .collect();
    Err(format!(
        "what survived is not the durable state plus a prefix of the {} batches written since the last sync (first differences: {})",
        unsynced.len(),
        if differing.is_empty() { "none found by key".into() } else { differing.join(", ") }
    ))
}

fn apply(cfs: &mut Cfs, batch: &WriteBatch) {
    for mutation in batch.mutations() {
        match mutation {
            Mutation::Put { cf, key, value } => {
                cfs[cf.index()].insert(key.clone(), value.clone());
                if !cfs.damaged.is_empty() {
                    cfs.damaged.remove(&(*cf, key.clone()));
                }
            }
            Mutation::Delete { cf, key } => {
                cfs[cf.index()].remove(key);
                if !cfs.damaged.is_empty() {
                    cfs.damaged.remove(&(*cf, key.clone()));
                }
            }
            Mutation::DeleteRange { cf, start, end } => {
                let map = &mut cfs[cf.index()];
                let doomed: Vec<Vec<u8>> = map.range::<_, [u8]>((Bound::Included(&start[..]), Bound::Excluded(&end[..]))).map(|(k, _)| k.clone()).collect();
                for key in doomed {
                    map.remove(&key);
                }
                if !cfs.damaged.is_empty() && start < end {
                    let healed: Vec<(Cf, Vec<u8>)> = cfs.damaged.range((*cf, start.clone())..(*cf, end.clone())).map(|(k, _)| k.clone()).collect();
                    for key in healed {
                        cfs.damaged.remove(&key);
                    }
                }
            }
        }
    }
}

/// A batch as its write-ahead-log record: the mutations and a checksum over
/// all of them, written last.
struct WalRecord {
    mutations: Vec<Mutation>,
    checksum: u64,
}

impl WalRecord {
    fn of(batch: &WriteBatch) -> WalRecord {
        WalRecord { mutations: batch.mutations().to_vec(), checksum: Self::checksum(batch.mutations()) }
    }

    fn checksum(mutations: &[Mutation]) -> u64 {
        use std::hash::{Hash, Hasher};
        // SipHash with fixed keys: the same everywhere, every run.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for m in mutations {
            match m {
                Mutation::Put { cf, key, value } => (0u8, cf, key, value).hash(&mut h),
                Mutation::Delete { cf, key } => (1u8, cf, key).hash(&mut h),
                Mutation::DeleteRange { cf, start, end } => (2u8, cf, start, end).hash(&mut h),
            }
        }
        h.finish()
    }

    /// What recovery makes of the record: the batch if its checksum holds.
    fn recover(&self) -> Option<WriteBatch> {
        if Self::checksum(&self.mutations) != self.checksum {
            return None;
        }
        let mut batch = WriteBatch::new();
        self.mutations.iter().cloned().for_each(|m| batch.push(m));
        Some(batch)
    }
}

/// A handle on a [`SimDisk`], as a node opens it.
#[derive(Clone)]
pub struct SimEngine {
    disk: SimDisk,
    generation: u64,
}

impl SimEngine {
    /// Opens the disk, fencing every handle opened before.
    pub fn open(disk: &SimDisk) -> Self {
        let mut state = disk.lock();
        state.generation += 1;
        SimEngine { disk: disk.clone(), generation: state.generation }
    }

    /// A fresh disk with no latency, opened: for unit tests.
    pub fn in_memory(name: &str) -> Self {
        SimEngine::open(&SimDisk::new(name, IoProfile::instant()))
    }

    pub fn disk(&self) -> &SimDisk {
        &self.disk
    }

    fn check_open(&self, state: &DiskState) -> Result<()> {
        if state.generation != self.generation {
            return Err(EngineError::Closed(self.disk.name.to_string()));
        }
        Ok(())
    }

    fn io_latency(&self, kind: IoKind, bytes: usize) -> Duration {
        let mut state = self.disk.lock();
        let mut latency = state.profile.latency(kind, bytes, &mut madsim::rand::thread_rng());
        if let Some(until) = state.stalled_until {
            latency += until.saturating_duration_since(Instant::now());
        }
        state.stats.io_time_us += latency.as_micros() as u64;
        latency
    }
}

impl Engine for SimEngine {
    type Snap = SimSnapshot;

    fn name(&self) -> &str {
        self.disk.name()
    }

    async fn write(&self, batch: &WriteBatch, sync: bool) -> Result<()> {
        self.check_open(&self.disk.lock())?;
        self.io(IoKind::Write, batch.size_bytes()).await;
        if sync {
            self.io(IoKind::Sync, 0).await;
        }
        // The node may have crashed while this write was waiting for the disk.
        let mut state = self.disk.lock();
        self.check_open(&state)?;
        match state.sync_health {
            SyncHealth::Failed => {
                // The page cache still takes writes; nothing reaches the platter.
                apply(&mut state.view, batch);
                return if sync { Err(EngineError::Io(format!("{}: fsync failed (the disk stopped persisting)", self.disk.name))) } else { Ok(()) };
            }
            SyncHealth::FailNext if sync => {
                // The batch reaches the page cache; neither it nor the unsynced
                // batches before it will ever reach the platter.
                apply(&mut state.view, batch);
                state.unsynced.clear();
                state.sync_health = SyncHealth::Failed;
                state.stats.failed_syncs += 1;
                return Err(EngineError::Io(format!("{}: fsync failed", self.disk.name)));
            }
            _ => {}
        }
        apply(&mut state.view, batch);
        if sync {
            state.durable = state.view.clone();
            state.unsynced.clear();
            state.stats.syncs += 1;
        } else {
            state.unsynced.push(batch.clone());
        }
        state.stats.batches_written += 1;
        state.stats.bytes_written += batch.size_bytes() as u64;
        Ok(())
    }

    fn snapshot(&self) -> SimSnapshot {
        self.disk.snapshot()
    }

    async fn io(&self, kind: IoKind, bytes: usize) {
        let latency = self.io_latency(kind, bytes);
        if !latency.is_zero() {
            madsim::time::sleep(latency).await;
        }
    }
}

/// A frozen copy of a [`SimEngine`]'s view.
pub struct SimSnapshot {
    cfs: Cfs,
    verify_checksums: bool,
    disk: Arc<str>,
    failure: Mutex<Option<EngineError>>,
}

fn bounds<'k>(start: &'k [u8], end: Option<&'k [u8]>) -> (Bound<&'k [u8]>, Bound<&'k [u8]>) {
    (Bound::Included(start), end.map_or(Bound::Unbounded, Bound::Excluded))
}

impl SimSnapshot {
    fn new(cfs: Cfs, verify_checksums: bool, disk: &Arc<str>) -> SimSnapshot {
        SimSnapshot { cfs, verify_checksums, disk: disk.clone(), failure: Mutex::new(None) }
    }

    /// Whether the value at `key` may be handed out; records the failure if not.
    fn readable(&self, cf: Cf, key: &[u8]) -> bool {
        let Some(damage) = self.cfs.damaged.get(&(cf, key.to_vec())) else { return true };
        let error = match damage {
            Damage::BitFlip if !self.verify_checksums => return true,
            Damage::BitFlip => EngineError::Corruption { engine: self.disk.to_string(), cf: cf.name(), key: key.to_vec() },
            Damage::Unreadable => EngineError::Io(format!("{}: latent sector error reading the {} value at key {key:?}", self.disk, cf.name())),
        };
        self.failure.lock().expect("failure mutex").get_or_insert(error);
        false
    }
}

impl Snapshot for SimSnapshot {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let value = self.cfs[cf.index()].get(key);
        if value.is_some() && !self.cfs.damaged.is_empty() && !self.readable(cf, key) {
            return Ok(None);
        }
        Ok(value.cloned())
    }

    fn iter<'a>(&'a self, cf: Cf, start: &[u8], end: Option<&[u8]>, reverse: bool) -> Box<dyn Iterator<Item = Result<KvPair>> + 'a> {
        if end.is_some_and(|end| end <= start) {
            return Box::new(std::iter::empty());
        }
        let range = self.cfs[cf.index()].range::<_, [u8]>(bounds(start, end));
        let check = !self.cfs.damaged.is_empty();
        let pairs = range.filter(move |(k, _)| !check || self.readable(cf, k)).map(|(k, v)| Ok((k.clone(), v.clone())));
        if reverse {
            Box::new(pairs.rev())
        } else {
            Box::new(pairs)
        }
    }

    fn failure(&self) -> Option<EngineError> {
        self.failure.lock().expect("failure mutex").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::{Rng as _, SeedableRng};
    use std::collections::BTreeMap;

    crate::engine_conformance_tests!((SimEngine::in_memory("conformance"), ()));

    /// The state a model disk would hold after the first `n` batches.
    fn model_after(batches: &[WriteBatch], n: usize) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut cfs: Cfs = Default::default();
        for batch in &batches[..n] {
            apply(&mut cfs, batch);
        }
        cfs[Cf::Default.index()].iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The fault model checks itself at every crash: a model broken on
    /// purpose (a crash that keeps the second unsynced batch without the
    /// first) stops with the testbed's own failure, not a store's.
    #[madsim::test]
    async fn a_broken_crash_model_is_caught_by_its_self_check() {
        let write_three = |disk: &SimDisk| {
            let engine = SimEngine::open(disk);
            async move {
                for key in ["a", "b", "c"] {
                    let mut batch = WriteBatch::new();
                    batch.put(Cf::Default, key, "v");
                    engine.write(&batch, false).await.unwrap();
                }
            }
        };
        let sound = SimDisk::new("sound", IoProfile::instant());
        write_three(&sound).await;
        assert_eq!(sound.crash_keeping(2).kept_batches, 2, "the real model passes its own check");
        let broken = SimDisk::new("broken", IoProfile::instant());
        write_three(&broken).await;
        broken.break_crash_model();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| broken.crash_keeping(2))).expect_err("the self-check stops the crash");
        let message = caught.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.starts_with(FAULT_MODEL_BROKEN), "{message}");
        assert!(message.contains("disk broken after a crash") && message.contains("not the durable state plus a prefix of the 3 batches"), "{message}");
        // One crash keeping nothing, or everything, is a prefix under any model.
        assert_eq!(survivor_is_a_prefix(&Cfs::default(), &[], &Cfs::default()), Ok(0));
    }

    /// Over 1,000 crash points drawn by [`SimDisk::crash`] itself: synced data
    /// always survives, and what is lost of the unsynced data is exactly a
    /// suffix of the batches written (a crash that kept a random subset, or
    /// lost a synced batch, fails here).
    #[madsim::test]
    async fn crashes_lose_only_an_unsynced_suffix() {
        let mut crash_points = 0;
        let mut lost_something = 0;
        for seed in 0..1_200u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let disk = SimDisk::new(format!("crash-{seed}"), IoProfile::instant());
            let engine = SimEngine::open(&disk);
            let mut written = Vec::new();
            let mut last_synced = 0;
            let batches = 1 + rng.next_u32() % 12;
            for i in 0..batches {
                let mut batch = WriteBatch::new();
                for j in 0..1 + rng.next_u32() % 3 {
                    let key = format!("k{}", rng.next_u32() % 6);
                    if rng.next_u32() % 4 == 0 {
                        batch.delete(Cf::Default, key);
                    } else {
                        batch.put(Cf::Default, key, format!("{i}.{j}"));
                    }
                }
                let sync = rng.next_u32() % 4 == 0;
                engine.write(&batch, sync).await.unwrap();
                written.push(batch);
                if sync {
                    last_synced = written.len();
                }
            }
            // The crash itself draws what survives: the test judges the result
            // against the model, whatever the disk decided.
            let report = disk.crash(&mut madsim::rand::thread_rng());
            crash_points += 1;
            assert_eq!(report.kept_batches + report.lost_batches, written.len() - last_synced);
            lost_something += (report.lost_batches > 0) as usize;

            // Recovered state must equal some prefix of the writes that includes
            // every synced batch; find which prefix without trusting `report`.
            let reopened = SimEngine::open(&disk);
            let recovered: BTreeMap<Vec<u8>, Vec<u8>> = reopened.snapshot().scan(Cf::Default, b"", None, usize::MAX, false).unwrap().into_iter().collect();
            let prefixes: Vec<usize> = (0..=written.len()).filter(|&n| model_after(&written, n) == recovered).collect();
            assert!(prefixes.iter().any(|&n| n >= last_synced), "seed {seed}: recovered state is not a prefix covering the {last_synced} synced batches");
            assert!(prefixes.contains(&(last_synced + report.kept_batches)), "seed {seed}: report disagrees");
            // The old handle is fenced; the new one writes, and its sync is durable.
            assert!(matches!(engine.write(&WriteBatch::new(), false).await, Err(EngineError::Closed(_))));
            let mut after = WriteBatch::new();
            after.put(Cf::Default, "after", "crash");
            reopened.write(&after, true).await.unwrap();
            disk.crash_keeping(0);
            assert_eq!(SimEngine::open(&disk).snapshot().get(Cf::Default, b"after").unwrap(), Some(b"crash".to_vec()));
        }
        assert!(crash_points >= 1_000);
        assert!(lost_something > 100, "the generator should often lose unsynced writes");
    }

    /// A random crash keeps a uniformly drawn prefix; the RNG decides, not the disk.
    #[madsim::test]
    async fn random_crash_draws_every_prefix_length() {
        let mut seen = [false; 4];
        for _ in 0..200 {
            let disk = SimDisk::new("draw", IoProfile::instant());
            let engine = SimEngine::open(&disk);
            for i in 0..3u8 {
                let mut batch = WriteBatch::new();
                batch.put(Cf::Raft, [i], [i]);
                engine.write(&batch, false).await.unwrap();
            }
            let report = disk.crash(&mut madsim::rand::thread_rng());
            seen[report.kept_batches] = true;
        }
        assert_eq!(seen, [true; 4]);
    }

    /// Reopening fences the previous handle, as RocksDB's LOCK file would.
    #[madsim::test]
    async fn reopen_fences_old_handles() {
        let disk = SimDisk::new("fence", IoProfile::instant());
        let old = SimEngine::open(&disk);
        let new = SimEngine::open(&disk);
        let mut batch = WriteBatch::new();
        batch.put(Cf::Lock, "k", "v");
        assert_eq!(old.write(&batch, true).await, Err(EngineError::Closed("fence".into())));
        new.write(&batch, true).await.unwrap();
    }

    /// IO takes simulated time from the profile: a slow disk is slower, a stalled
    /// disk waits for the stall to end, and a crash during a write loses that write.
    #[madsim::test]
    async fn io_takes_simulated_time() {
        let disk = SimDisk::new("slow", IoProfile::ssd());
        let engine = SimEngine::open(&disk);
        let mut batch = WriteBatch::new();
        batch.put(Cf::Default, "k", vec![0u8; 64 * 1024]);
        let start = Instant::now();
        engine.write(&batch, true).await.unwrap();
        let normal = start.elapsed();
        assert!(normal >= Duration::from_micros(20 + 200 + 128), "{normal:?}");

        disk.set_profile(IoProfile { slowdown: 50, ..IoProfile::ssd() });
        let start = Instant::now();
        engine.write(&batch, true).await.unwrap();
        // Latencies are drawn from ranges, so compare against the slowest normal write
        // can never reach: 50× the smallest possible latency.
        let slow = start.elapsed();
        assert!(slow >= Duration::from_micros(50 * (20 + 200 + 128)), "slow disk took {slow:?}");
        assert!(slow > normal, "slow disk took {slow:?}, normal {normal:?}");

        disk.set_profile(IoProfile { snapshot_slowdown: 1000, ..IoProfile::ssd() });
        let start = Instant::now();
        engine.io(IoKind::SnapshotRead, 1 << 20).await;
        assert!(start.elapsed() >= Duration::from_secs(1), "slow snapshot IO took {:?}", start.elapsed());

        disk.stall_until(Some(Instant::now() + Duration::from_secs(5)));
        let start = Instant::now();
        engine.get(Cf::Default, b"k").await.unwrap();
        assert!(start.elapsed() >= Duration::from_secs(5));
        disk.stall_until(None);

        // A crash while a write waits for the disk: the write fails and is not applied.
        disk.set_profile(IoProfile { slowdown: 1000, ..IoProfile::ssd() });
        let writer = engine.clone();
        let mut late = WriteBatch::new();
        late.put(Cf::Default, "late", "v");
        let task = madsim::task::spawn(async move { writer.write(&late, true).await });
        madsim::time::sleep(Duration::from_micros(1)).await;
        disk.crash_keeping(0);
        assert!(matches!(task.await.unwrap(), Err(EngineError::Closed(_))));
        assert_eq!(SimEngine::open(&disk).snapshot().get(Cf::Default, b"late").unwrap(), None);
    }

    /// A flipped bit is caught by the checksum: the value reads as absent and
    /// the snapshot reports the corruption, in point reads and in scans;
    /// writing the key again (or deleting its range) heals it; the damage is
    /// on the platter, so a crash keeps it. With verification off (a planted
    /// bug) the flipped value comes back as if it were good.
    #[madsim::test]
    async fn damaged_values_are_caught_on_read() {
        let disk = SimDisk::new("store-9/kv", IoProfile::instant());
        let engine = SimEngine::open(&disk);
        let mut batch = WriteBatch::new();
        for k in ["a", "b", "c"] {
            batch.put(Cf::Default, k, "value");
        }
        engine.write(&batch, true).await.unwrap();
        assert_eq!(disk.nth_key(&[Cf::Default], 4), Some((Cf::Default, b"b".to_vec())));
        assert!(disk.damage(Cf::Default, b"b", Damage::BitFlip, 3));
        assert!(!disk.damage(Cf::Default, b"absent", Damage::BitFlip, 3));

        let snap = engine.snapshot();
        assert_eq!(snap.get(Cf::Default, b"a").unwrap(), Some(b"value".to_vec()));
        assert!(snap.failure().is_none(), "a good read is no failure");
        assert_eq!(snap.get(Cf::Default, b"b").unwrap(), None);
        assert!(matches!(snap.failure(), Some(EngineError::Corruption { ref key, .. }) if key == b"b"), "{:?}", snap.failure());
        let scan = engine.snapshot();
        let keys: Vec<Vec<u8>> = scan.scan(Cf::Default, b"", None, 10, true).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![b"c".to_vec(), b"a".to_vec()]);
        assert!(scan.failure().is_some());

        disk.set_verify_checksums(false);
        let flipped = engine.snapshot().get(Cf::Default, b"b").unwrap().unwrap();
        assert_ne!(flipped, b"value".to_vec(), "the bug serves the flipped value");
        assert_eq!(flipped.iter().zip(b"value").map(|(x, y)| (x ^ y).count_ones()).sum::<u32>(), 1);
        disk.set_verify_checksums(true);

        disk.crash_keeping(0);
        let engine = SimEngine::open(&disk);
        assert_eq!(disk.damaged(), vec![(Cf::Default, b"b".to_vec(), Damage::BitFlip)], "damage is on the platter");
        let mut heal = WriteBatch::new();
        heal.put(Cf::Default, "b", "fresh");
        engine.write(&heal, false).await.unwrap();
        let snap = engine.snapshot();
        assert_eq!(snap.get(Cf::Default, b"b").unwrap(), Some(b"fresh".to_vec()));
        assert!(snap.failure().is_none());

        // A latent sector error: an IO error, even without verification.
        disk.set_verify_checksums(false);
        assert!(disk.damage(Cf::Default, b"c", Damage::Unreadable, 0));
        let snap = engine.snapshot();
        assert_eq!(snap.get(Cf::Default, b"c").unwrap(), None);
        assert!(matches!(snap.failure(), Some(EngineError::Io(_))));
        let mut clear = WriteBatch::new();
        clear.delete_range(Cf::Default, "b", "z");
        engine.write(&clear, true).await.unwrap();
        assert!(disk.damaged().is_empty(), "deleting the range heals it");
    }

    /// A failed fsync: the write errors, what it and the unsynced batches
    /// before it wrote stays readable but never becomes durable, every later
    /// sync fails (plain writes reach the page cache only), and after a crash
    /// the disk holds what the last good sync made durable and works again.
    #[madsim::test]
    async fn a_failed_sync_loses_what_it_did_not_write() {
        let disk = SimDisk::new("store-9/raft", IoProfile::instant());
        let engine = SimEngine::open(&disk);
        engine.write(&put_one("synced"), true).await.unwrap();
        engine.write(&put_one("unsynced"), false).await.unwrap();
        disk.fail_next_sync();
        engine.write(&put_one("plain"), false).await.unwrap();
        assert!(matches!(engine.write(&put_one("doomed"), true).await, Err(EngineError::Io(_))));
        assert_eq!(engine.snapshot().get(Cf::Raft, b"doomed").unwrap(), Some(b"v".to_vec()), "still in the page cache");
        assert!(matches!(engine.write(&put_one("later"), true).await, Err(EngineError::Io(_))));
        engine.write(&put_one("cached"), false).await.unwrap();
        assert_eq!(engine.snapshot().get(Cf::Raft, b"cached").unwrap(), Some(b"v".to_vec()));
        assert_eq!(disk.stats().failed_syncs, 1);
        let report = disk.crash(&mut madsim::rand::thread_rng());
        assert_eq!(report.kept_batches, 0);
        let engine = SimEngine::open(&disk);
        let left: Vec<Vec<u8>> = engine.snapshot().scan(Cf::Raft, b"", None, 10, false).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(left, vec![b"synced".to_vec()]);
        engine.write(&put_one("after"), true).await.unwrap();
    }

    fn put_one(key: &str) -> WriteBatch {
        let mut batch = WriteBatch::new();
        batch.put(Cf::Raft, key, "v");
        batch
    }

    /// A record torn anywhere inside fails its checksum and is discarded; a
    /// whole record recovers as written.
    #[madsim::test]
    async fn torn_log_records_are_discarded() {
        let mut batch = WriteBatch::new();
        batch.put(Cf::Default, "x", "1");
        batch.delete(Cf::Lock, "y");
        batch.delete_range(Cf::Write, "a", "b");
        let record = WalRecord::of(&batch);
        assert_eq!(record.recover(), Some(batch.clone()));
        for cut in 0..batch.len() {
            let torn = WalRecord { mutations: record.mutations[..cut].to_vec(), checksum: record.checksum };
            assert_eq!(torn.recover(), None, "cut after {cut}");
        }
        let disk = SimDisk::new("torn", IoProfile::instant());
        let engine = SimEngine::open(&disk);
        engine.write(&batch, false).await.unwrap();
        let report = disk.crash_tearing(0, Some(1));
        assert!(report.torn_record_discarded);
        assert_eq!(SimEngine::open(&disk).snapshot().get(Cf::Default, b"x").unwrap(), None, "no half batch survives");
        assert_eq!(disk.stats().torn_records_discarded, 1);
    }
}
