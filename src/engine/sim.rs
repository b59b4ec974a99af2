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
//! Values are held in `imbl::OrdMap`s, persistent ordered maps whose clone is O(1),
//! so a snapshot is a cheap copy of the current view.

use super::{Cf, Engine, EngineError, IoKind, KvPair, Mutation, Result, Snapshot, WriteBatch, ALL_CFS};
use imbl::OrdMap;
use madsim::time::{Duration, Instant};
use rand::Rng;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

type CfMap = OrdMap<Vec<u8>, Vec<u8>>;
type Cfs = [CfMap; ALL_CFS.len()];

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
}

/// Totals since the disk was created; for traces and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub batches_written: u64,
    pub bytes_written: u64,
    pub syncs: u64,
    pub crashes: u64,
    pub batches_lost: u64,
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
}

/// The simulated platter. Clone it freely: clones share one disk.
#[derive(Clone)]
pub struct SimDisk {
    name: Arc<str>,
    state: Arc<Mutex<DiskState>>,
}

impl SimDisk {
    pub fn new(name: impl Into<String>, profile: IoProfile) -> Self {
        let empty: Cfs = Default::default();
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
        let mut state = self.lock();
        let keep = keep.min(state.unsynced.len());
        let mut survivor = state.durable.clone();
        for batch in &state.unsynced[..keep] {
            apply(&mut survivor, batch);
        }
        let report = CrashReport { kept_batches: keep, lost_batches: state.unsynced.len() - keep };
        state.view = survivor.clone();
        state.durable = survivor;
        state.unsynced.clear();
        state.generation += 1;
        state.stats.crashes += 1;
        state.stats.batches_lost += report.lost_batches as u64;
        report
    }

    /// Crashes the disk, keeping a uniformly random prefix of the unsynced batches.
    pub fn crash(&self, rng: &mut impl Rng) -> CrashReport {
        let unsynced = self.unsynced_batches();
        self.crash_keeping(rng.gen_range(0..=unsynced))
    }

    /// A read-only view of what the disk holds now (durable or not), without
    /// opening it: the testbed's way to inspect a running node's data.
    pub fn snapshot(&self) -> SimSnapshot {
        SimSnapshot { cfs: self.lock().view.clone() }
    }

    /// A copy of the durable state, CF by CF: what the next crash would certainly keep.
    pub fn durable_contents(&self, cf: Cf) -> Vec<KvPair> {
        self.lock().durable[cf.index()].iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

fn apply(cfs: &mut Cfs, batch: &WriteBatch) {
    for mutation in batch.mutations() {
        match mutation {
            Mutation::Put { cf, key, value } => {
                cfs[cf.index()].insert(key.clone(), value.clone());
            }
            Mutation::Delete { cf, key } => {
                cfs[cf.index()].remove(key);
            }
            Mutation::DeleteRange { cf, start, end } => {
                let map = &mut cfs[cf.index()];
                let doomed: Vec<Vec<u8>> = map.range::<_, [u8]>((Bound::Included(&start[..]), Bound::Excluded(&end[..]))).map(|(k, _)| k.clone()).collect();
                for key in doomed {
                    map.remove(&key);
                }
            }
        }
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
        SimSnapshot { cfs: self.disk.lock().view.clone() }
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
}

fn bounds<'k>(start: &'k [u8], end: Option<&'k [u8]>) -> (Bound<&'k [u8]>, Bound<&'k [u8]>) {
    (Bound::Included(start), end.map_or(Bound::Unbounded, Bound::Excluded))
}

impl Snapshot for SimSnapshot {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.cfs[cf.index()].get(key).cloned())
    }

    fn iter<'a>(&'a self, cf: Cf, start: &[u8], end: Option<&[u8]>, reverse: bool) -> Box<dyn Iterator<Item = Result<KvPair>> + 'a> {
        if end.is_some_and(|end| end <= start) {
            return Box::new(std::iter::empty());
        }
        let range = self.cfs[cf.index()].range::<_, [u8]>(bounds(start, end));
        let pairs = range.map(|(k, v)| Ok((k.clone(), v.clone())));
        if reverse {
            Box::new(pairs.rev())
        } else {
            Box::new(pairs)
        }
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
}
