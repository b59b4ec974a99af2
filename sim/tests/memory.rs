//! A run leaves nothing behind: a long campaign is many runs in one process,
//! so every byte a run keeps after it ends is multiplied by the campaign.
//!
//! This test binary counts the bytes live on its heap (a counting allocator
//! around the system's) and runs the same scenario again and again on one
//! thread. After the first runs (which fill process-wide caches once: the
//! tracing subscriber, the panic hook, lazily built tables) the live bytes
//! must stay where they were. Before runs tore their simulation down, each
//! run kept about 2 MB (its cluster's disks, event log and history, held by
//! tasks that were still waiting when the runtime was dropped).
#![cfg(madsim)]

use simkv_sim::nemesis::Plan;
use simkv_sim::run;
use simkv_sim::scenario::Scenario;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn scenario(name: &str) -> Scenario {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    Scenario::load(&root.join("scenarios").join(format!("{name}.toml"))).expect("scenario loads")
}

/// Live heap bytes after each of `runs` runs of `scenario`'s `seed`.
fn live_after_each(scenario: &Scenario, seed: u64, runs: usize, expect_pass: bool) -> Vec<isize> {
    (0..runs)
        .map(|_| {
            let report = run::run(scenario, &Plan::draw(scenario, seed));
            assert_eq!(report.passed(), expect_pass, "{} seed {seed}: {:?}", scenario.name, report.failures);
            drop(report);
            LIVE.load(Ordering::Relaxed)
        })
        .collect()
}

fn assert_flat(what: &str, live: &[isize]) {
    // The first two runs may fill process-wide caches; from then on a run
    // must give back what it took (a little slack for allocator-independent
    // noise such as a thread-local buffer growing once).
    let (settled, last) = (live[1], *live.last().unwrap());
    let grown = last - settled;
    let per_run = grown / (live.len() as isize - 2);
    eprintln!("{what}: live heap after each run (KiB): {:?}", live.iter().map(|b| b / 1024).collect::<Vec<_>>());
    assert!(per_run < 16 * 1024, "{what}: every run keeps about {} KiB (live heap {settled} -> {last} bytes over {} runs)", per_run / 1024, live.len() - 2);
}

#[test]
fn runs_leave_nothing_behind() {
    // Crashes, partitions, splits, membership churn, PD restarts: the swarm
    // scenario creates and kills the most tasks.
    let chaos = scenario("chaos");
    assert_flat("chaos seed 1", &live_after_each(&chaos, 1, 8, true));
    // A run that ends in a panic inside a store unwinds through the runtime
    // with every task still in place: it must be torn down too.
    let panics = scenario("bugs/empty-value-panics");
    assert_flat("empty-value-panics seed 0", &live_after_each(&panics, 0, 8, false));
}
