//! Logging setup shared by the store, the testbed and the tests.
//!
//! Every line carries the simulated time (seconds since the simulation started; wall
//! time since process start in the real build) and, through madsim's per-node spans,
//! the name of the node that logged it. Quiet by default: `RUST_LOG` raises it, e.g.
//! `RUST_LOG=simkv=debug` or `RUST_LOG=simkv::raftstore=trace`.

use std::fmt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::EnvFilter;

/// The default filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "warn";

/// The filter for quiet simulation runs (fuzzing, benchmarks, tests) when
/// `RUST_LOG` is unset: warnings only, and without madsim's per-task spans.
/// madsim opens a span for every task it spawns and enters it on every poll;
/// with a subscriber that records spans that was about a fifth of a run's
/// time. The spans only name the node on a log line, and a quiet run logs
/// almost nothing (a store's warnings carry its id). Any `RUST_LOG`, and
/// `replay`'s trace, keep them.
pub const QUIET_SIM_FILTER: &str = "warn,madsim=error,madsim::sim::task=off";

/// The filter for the testbed's command line (`run`, `fuzz`, `shrink`,
/// `bench`) when `RUST_LOG` is unset: nothing. The stores' warnings there are
/// the faults the nemesis injects on purpose ("replica data damaged", "a disk
/// write failed"), thousands of them in a campaign; what a person needs of a
/// run is its outcome, and a run's whole story is `replay`'s trace.
pub const CLI_FILTER: &str = "off";

/// Formats timestamps as `[  12.345678s]` of simulated time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimulatedTime;

impl FormatTime for SimulatedTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        match elapsed() {
            Some(t) => write!(w, "[{:>4}.{:06}s]", t.as_secs(), t.subsec_micros()),
            None => write!(w, "[ no clock ]"),
        }
    }
}

#[cfg(madsim)]
fn elapsed() -> Option<std::time::Duration> {
    madsim::time::TimeHandle::try_current().map(|h| h.elapsed())
}

#[cfg(not(madsim))]
fn elapsed() -> Option<std::time::Duration> {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    Some(START.get_or_init(std::time::Instant::now).elapsed())
}

/// Installs the global subscriber (once; later calls do nothing). `default_filter`
/// applies when `RUST_LOG` is unset.
pub fn init(default_filter: &str) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    install(default_filter, ansi, std::io::stderr);
}

/// Like [`init`], but writes every line (without colours) to `file`.
pub fn init_to_file(default_filter: &str, file: std::fs::File) {
    install(default_filter, false, std::sync::Mutex::new(file));
}

/// Like [`init`], but writes through the test harness's capture (`eprint!`), so
/// that a failing test shows its trace and a passing one stays quiet.
pub fn init_for_tests(default_filter: &str) {
    install(default_filter, false, tracing_subscriber::fmt::TestWriter::new());
}

fn install<W>(default_filter: &str, ansi: bool, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_timer(SimulatedTime).with_target(true).with_ansi(ansi).with_writer(writer).try_init();
}

#[cfg(all(test, madsim))]
mod tests {
    use super::*;

    #[madsim::test]
    async fn timestamps_are_simulated() {
        madsim::time::sleep(std::time::Duration::from_secs(3600)).await;
        let mut line = String::new();
        SimulatedTime.format_time(&mut Writer::new(&mut line)).unwrap();
        assert!(line.starts_with("[3600."), "{line}");
    }
}

thread_local! {
    /// The (store, region) this thread last started working on.
    static WORKING_ON: std::cell::Cell<Option<(u64, u64)>> = const { std::cell::Cell::new(None) };
}

/// Notes that this thread now works on `region_id` of `store_id`, so a panic can
/// say where it happened. The store calls it before each piece of work on a
/// region (a message, a request, a ready); it costs one thread-local write.
pub fn working_on(store_id: u64, region_id: u64) {
    WORKING_ON.with(|w| w.set(Some((store_id, region_id))));
    WATCHED.with(|w| {
        if let Some(slot) = &*w.borrow() {
            slot.0.store(store_id, std::sync::atomic::Ordering::Relaxed);
            slot.1.store(region_id, std::sync::atomic::Ordering::Relaxed);
        }
    });
}

/// Where another thread (a watchdog) can read what this thread last worked on.
pub type WorkingOnSlot = std::sync::Arc<(std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64)>;

thread_local! {
    static WATCHED: std::cell::RefCell<Option<WorkingOnSlot>> = const { std::cell::RefCell::new(None) };
}

/// Makes [`working_on`] on this thread also write to `slot` (or stop, with `None`).
pub fn watch_working_on(slot: Option<WorkingOnSlot>) {
    WATCHED.with(|w| *w.borrow_mut() = slot);
}

/// What [`working_on`] last noted on this thread.
pub fn last_working_on() -> Option<(u64, u64)> {
    WORKING_ON.with(|w| w.get())
}
