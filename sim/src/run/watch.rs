//! Watching a run from outside and inside: a wall-clock watchdog for runs
//! whose simulated time stops, and a heartbeat of simulated time that also
//! stops a run whose stores report events without bound.

use super::report::{RunReport, EVENT_STORM};
use crate::cluster::TimedEvent;
use crate::nemesis::Plan;
use crate::scenario::Scenario;
use madsim::time::{sleep, Duration};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Why a run was given up: its simulated time stopped advancing (a task spinning
/// without awaiting holds the simulation's only thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    /// The last simulated time seen, in ms.
    pub sim_ms: u64,
    pub wall_secs: u64,
    /// The (store, region) the store last started working on, if any.
    pub working_on: Option<(u64, u64)>,
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stalled at simulated time {:.3}s: no simulated time passed for {} s of wall time", self.sim_ms as f64 / 1000.0, self.wall_secs)?;
        if let Some((store, region)) = self.working_on {
            write!(f, " (store {store} was last working on region {region})")?;
        }
        Ok(())
    }
}

/// [`super::run`], watched: if the run's simulated time stops advancing for
/// `stall` of wall time, `on_stall` is called from the watchdog's thread (the
/// run's own thread is stuck and cannot be stopped: the caller decides what to
/// do, e.g. exit the process, or record the failure and go on with another
/// thread).
pub fn run_watched(scenario: &Scenario, plan: &Plan, stall: std::time::Duration, on_stall: impl FnOnce(Stall) + Send + 'static) -> RunReport {
    let progress = Arc::new(AtomicU64::new(u64::MAX));
    let done = Arc::new(AtomicBool::new(false));
    let slot: simkv::trace::WorkingOnSlot = Arc::default();
    simkv::trace::watch_working_on(Some(slot.clone()));
    let watchdog = {
        let (progress, done, slot) = (progress.clone(), done.clone(), slot.clone());
        std::thread::spawn(move || {
            let (mut last, mut since) = (u64::MAX, std::time::Instant::now());
            while !done.load(Ordering::SeqCst) {
                // Woken early when the run ends, so a finished run never waits.
                std::thread::park_timeout(std::time::Duration::from_millis(100));
                let now = progress.load(Ordering::SeqCst);
                if now != last {
                    (last, since) = (now, std::time::Instant::now());
                } else if since.elapsed() >= stall {
                    let store = slot.0.load(Ordering::Relaxed);
                    let working_on = (store != 0).then(|| (store, slot.1.load(Ordering::Relaxed)));
                    on_stall(Stall { sim_ms: if last == u64::MAX { 0 } else { last }, wall_secs: stall.as_secs(), working_on });
                    return;
                }
            }
        })
    };
    let report = super::run_with_progress(scenario, plan, progress);
    done.store(true, Ordering::SeqCst);
    simkv::trace::watch_working_on(None);
    watchdog.thread().unpark();
    let _ = watchdog.join();
    report
}

/// [`run_watched`] on a thread of its own: the report, or the stall that
/// gave the run up (its thread spins on until the process ends, as in
/// `fuzz`). What `shrink` and `explore` run their candidates with.
pub fn run_or_stall(scenario: &Scenario, plan: &Plan, stall: std::time::Duration) -> Result<RunReport, Stall> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (scenario, plan) = (scenario.clone(), plan.clone());
    let stalled = tx.clone();
    std::thread::spawn(move || {
        let report = run_watched(&scenario, &plan, stall, move |s| drop(stalled.send(Err(s))));
        let _ = tx.send(Ok(report));
    });
    rx.recv().expect("a run ends or stalls")
}

/// A heartbeat of simulated time, written to `progress` (ms): it stops when a
/// task stops awaiting. It also stops a run that explodes (its stores report
/// more than `limit` events) while it can still be reported, not when memory
/// runs out. It stops when the returned handle goes.
pub(super) fn heartbeat(progress: Arc<AtomicU64>, events: Arc<Mutex<Vec<TimedEvent>>>, limit: u64) -> AbortOnDrop {
    AbortOnDrop(madsim::task::spawn(async move {
        loop {
            let now = madsim::time::TimeHandle::current().elapsed();
            progress.store(now.as_millis() as u64, Ordering::SeqCst);
            let count = events.lock().unwrap().len() as u64;
            if count > limit {
                panic!(
                    "{EVENT_STORM}: {count} store events by simulated time {:.1}s, over the limit of {limit} ([checkers] max_store_events)",
                    now.as_secs_f64()
                );
            }
            sleep(Duration::from_millis(100)).await;
        }
    }))
}

/// A task of the main node that stops when its handle goes, however the
/// run ends (a panic unwinds through the main task and drops it).
pub(super) struct AbortOnDrop(madsim::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
