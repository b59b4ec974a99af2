//! What a store does when it must stop: a write to one of its disks failed
//! (a failed fsync), so nothing written since the last good sync can be
//! trusted, and going on could acknowledge what a crash would lose.
//!
//! The store stops at once, before it answers or sends anything more, and
//! starts again from what is durable, as PostgreSQL does after a failed
//! fsync. In the real build the process exits with status 70 and whoever
//! runs it (systemd, Kubernetes) restarts it. In simulation the testbed's
//! supervisor hook kills the node (its disks keep only what was durable)
//! and restarts it a little later.

use crate::meta::StoreId;

/// Kills the store's node and arranges its restart; false if the testbed
/// declines (the run is ending).
#[cfg(madsim)]
pub type Hook = Box<dyn Fn(StoreId, &str) -> bool>;

#[cfg(madsim)]
thread_local! {
    static HOOK: std::cell::RefCell<Option<Hook>> = const { std::cell::RefCell::new(None) };
}

/// Installs the supervisor for the run about to start on this thread.
#[cfg(madsim)]
pub fn install(hook: Hook) {
    HOOK.with(|h| *h.borrow_mut() = Some(hook));
}

#[cfg(madsim)]
pub fn uninstall() {
    HOOK.with(|h| *h.borrow_mut() = None);
}

/// Stops store `store` because `reason`; does not return if a supervisor
/// takes the store down (without one the caller simply stops its loop).
pub async fn fail_stop(store: StoreId, reason: &str) {
    tracing::error!(store, reason, "a disk write failed: stopping the store");
    #[cfg(madsim)]
    if HOOK.with(|h| h.borrow().as_ref().is_some_and(|hook| hook(store, reason))) {
        std::future::pending::<()>().await;
    }
    #[cfg(not(madsim))]
    {
        eprintln!("store {store}: a disk write failed ({reason}); exiting so that the store restarts from what is durable");
        std::process::exit(70);
    }
}
