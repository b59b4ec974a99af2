//! What kills and restarts a store or PD besides the nemesis: buggify's crash
//! points and the supervisor a store calls when a disk write failed.

use crate::nemesis::Plan;
use crate::workload::Shared;
use madsim::time::{sleep, Duration};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Enables the plan's buggify sites for this run, with the crash hook: a
/// crash point kills its store (disks crashed: unsynced writes may be lost)
/// and restarts it 1–3 s later, at most three times a run and only while
/// the safety phase lasts.
pub(super) fn install_buggify(shared: &Arc<Shared>, plan: &Plan) {
    if plan.buggify.is_empty() {
        return;
    }
    let supervisor = madsim::runtime::Handle::current().create_node().name("buggify").build();
    shared.cluster.spec.node_names.lock().unwrap().insert(supervisor.id(), "buggify".into());
    let crashes = std::cell::Cell::new(0u32);
    let s = shared.clone();
    let hook: simkv::buggify::CrashHook = Box::new(move |store, site| {
        if s.stop.load(Ordering::SeqCst) || crashes.get() >= 3 {
            return false;
        }
        let killed = if store == simkv::buggify::PD {
            kill_and_restart_pd(&s, &supervisor, format!("buggify: crash point {site} kills pd"))
        } else {
            kill_and_restart(&s, &supervisor, store, format!("buggify: crash point {site} kills store {store}"), "buggify")
        };
        crashes.set(crashes.get() + killed as u32);
        killed
    });
    simkv::buggify::install(&plan.buggify, Some(hook));
}

/// The supervisor a store calls when a disk write failed: the store's node
/// is killed (its disks keep what was durable) and restarted 1–3 s later,
/// as systemd would restart the process.
pub(super) fn install_supervisor(shared: &Arc<Shared>) {
    let supervisor = madsim::runtime::Handle::current().create_node().name("supervisor").build();
    shared.cluster.spec.node_names.lock().unwrap().insert(supervisor.id(), "supervisor".into());
    let s = shared.clone();
    simkv::supervisor::install(Box::new(move |store, reason| {
        kill_and_restart(&s, &supervisor, store, format!("supervisor: store {store} stopped ({reason})"), "supervisor")
    }));
}

/// Takes `store` down as a crash does (unless it is down already), logs
/// `why`, and restarts it 1–3 s later from `node`; says whether it did.
fn kill_and_restart(s: &Arc<Shared>, node: &madsim::runtime::NodeHandle, store: u64, why: String, who: &'static str) -> bool {
    if !s.nemesis.crash_point(store) {
        return false;
    }
    s.log(why);
    let s = s.clone();
    node.spawn(async move {
        use rand::Rng;
        let ms = madsim::rand::thread_rng().gen_range(1000..=3000);
        sleep(Duration::from_millis(ms)).await;
        if s.nemesis.restart_after_crash_point(store) {
            s.log(format!("{who}: store {store} restarts"));
        }
    });
    true
}

/// Takes PD down as a crash does (unless it is down already), logs `why`,
/// and restarts it 0.2–1 s later from `node` with its clock set back by up to
/// 2 s (as the fault `pd_crash_restart` may); says whether it did.
fn kill_and_restart_pd(s: &Arc<Shared>, node: &madsim::runtime::NodeHandle, why: String) -> bool {
    if !s.nemesis.crash_point_pd() {
        return false;
    }
    s.log(why);
    let s = s.clone();
    node.spawn(async move {
        use rand::Rng;
        let (ms, back) = {
            let mut rng = madsim::rand::thread_rng();
            (rng.gen_range(200..=1000), rng.gen_range(0..=2000))
        };
        sleep(Duration::from_millis(ms)).await;
        if s.nemesis.restart_pd_after_crash_point(back) {
            s.log(format!("buggify: pd restarts, its clock {back} ms behind"));
        }
    });
    true
}
