//! Panics inside a simulated run, caught with their context.
//!
//! A panic hook (installed once per process, and passing panics outside runs to
//! the hook that was there before) notes, for a panic on a thread that is inside
//! [`catching`], the message, where in the source it was raised, the simulated
//! time, the madsim node whose task panicked, and the (store, region) the store
//! last said it was working on (`simkv::trace::working_on`). Runs on other
//! threads (`fuzz --jobs`) keep their own notes: everything is thread-local.

use madsim::task::NodeId;
use std::cell::{Cell, RefCell};
use std::sync::Once;
use std::time::Duration;

/// What is known about a panic inside a run.
#[derive(Debug, Clone, Default)]
pub struct PanicReport {
    pub message: String,
    /// `file:line:column` of the panic.
    pub location: Option<String>,
    pub at: Option<Duration>,
    pub node: Option<NodeId>,
    pub working_on: Option<(u64, u64)>,
}

thread_local! {
    static INSIDE: Cell<bool> = const { Cell::new(false) };
    static CAUGHT: RefCell<Option<PanicReport>> = const { RefCell::new(None) };
}

fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !INSIDE.with(Cell::get) {
                return previous(info);
            }
            let message = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            let clock = madsim::time::TimeHandle::try_current();
            let report = PanicReport {
                message,
                location: info.location().map(|l| l.to_string()),
                at: clock.as_ref().map(|c| c.elapsed()),
                // Inside the runtime every panic is raised by one of its tasks.
                node: clock.is_some().then(madsim::plugin::node),
                working_on: simkv::trace::last_working_on(),
            };
            // The first panic is the one that matters; unwinding may raise more.
            CAUGHT.with(|c| {
                c.borrow_mut().get_or_insert(report);
            });
        }));
    });
}

/// Runs `f`; a panic inside it comes back as a [`PanicReport`].
pub fn catching<T>(f: impl FnOnce() -> T) -> Result<T, PanicReport> {
    install_hook();
    CAUGHT.with(|c| c.borrow_mut().take());
    INSIDE.with(|i| i.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    INSIDE.with(|i| i.set(false));
    let caught = CAUGHT.with(|c| c.borrow_mut().take());
    result.map_err(|payload| {
        caught.unwrap_or_else(|| PanicReport {
            message: payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default(),
            ..PanicReport::default()
        })
    })
}
