//! A node's clock.
//!
//! Time inside a store is what its machine's clock says, and machines'
//! clocks drift: one runs a little fast, another a little slow. Everything
//! in the store that measures time against a promise made by another node
//! reads this clock: the raft tick (so election timeouts are measured on
//! it) and the leader lease (its evidence time, its expiry). The lease is
//! shorter than the election timeout by the drift bound the store is
//! configured with (`RaftStoreConfig::max_clock_drift_ms`), which is what
//! keeps lease reads linearizable while real drift stays within that bound.
//! PD reads its own clock for its timestamps' physical part, store-down
//! detection and operator deadlines.
//!
//! In the real build the clock is the machine's. In simulation the testbed
//! gives each store a clock running at its own rate (drawn from the run's
//! seed), which it may change during the run; the local time is a
//! piecewise-linear, monotonic function of simulated time.

use madsim::time::Instant;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug)]
struct Drift {
    /// Simulated time and local time at the last rate change.
    anchor_true: Instant,
    anchor_local: Instant,
    /// Local seconds per simulated second.
    rate: f64,
}

/// A cheap, cloneable handle on one node's clock.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    drift: Option<Arc<Mutex<Drift>>>,
}

impl PartialEq for Clock {
    fn eq(&self, other: &Clock) -> bool {
        match (&self.drift, &other.drift) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Clock {}

impl Clock {
    /// The machine's clock (in simulation: simulated time itself).
    pub fn exact() -> Clock {
        Clock { drift: None }
    }

    /// A clock running at `rate` local seconds per second (1.0: exact).
    pub fn drifting(rate: f64) -> Clock {
        let now = Instant::now();
        Clock { drift: Some(Arc::new(Mutex::new(Drift { anchor_true: now, anchor_local: now, rate: Self::sane(rate) }))) }
    }

    fn sane(rate: f64) -> f64 {
        assert!(rate.is_finite() && rate > 0.0, "a clock rate must be positive, not {rate}");
        rate
    }

    /// From now on the clock runs at `rate` (it does not jump).
    pub fn set_rate(&self, rate: f64) {
        if let Some(drift) = &self.drift {
            let mut d = drift.lock().expect("clock mutex");
            let now = Instant::now();
            d.anchor_local = Self::local_at(&d, now);
            d.anchor_true = now;
            d.rate = Self::sane(rate);
        }
    }

    /// Whether the clock's rate can be changed (a clock made by [`Clock::drifting`]).
    pub fn is_drifting(&self) -> bool {
        self.drift.is_some()
    }

    pub fn rate(&self) -> f64 {
        self.drift.as_ref().map_or(1.0, |d| d.lock().expect("clock mutex").rate)
    }

    fn local_at(d: &Drift, now: Instant) -> Instant {
        d.anchor_local + (now - d.anchor_true).mul_f64(d.rate)
    }

    /// What this node's clock reads now.
    pub fn now(&self) -> Instant {
        match &self.drift {
            None => Instant::now(),
            Some(drift) => Self::local_at(&drift.lock().expect("clock mutex"), Instant::now()),
        }
    }

    /// Sleeps until `d` has passed on this clock (at its current rate).
    pub async fn sleep(&self, d: Duration) {
        let rate = self.rate();
        madsim::time::sleep(if rate == 1.0 { d } else { d.div_f64(rate) }).await;
    }
}

/// Simulation only: in the real build `madsim::time` is the machine's time,
/// and these would sleep for real and race the scheduler.
#[cfg(all(test, madsim))]
mod tests {
    use super::*;

    /// madsim's timers may fire a few microseconds late: compare to within 1 ms.
    fn about(d: Duration, secs: f64) {
        assert!((d.as_secs_f64() - secs).abs() < 0.001, "{d:?} is not about {secs} s");
    }

    #[madsim::test]
    async fn a_drifting_clock_is_monotonic_and_runs_at_its_rate() {
        let fast = Clock::drifting(1.25);
        let exact = Clock::exact();
        let (f0, e0) = (fast.now(), exact.now());
        madsim::time::sleep(Duration::from_secs(4)).await;
        about(fast.now() - f0, 5.0);
        about(exact.now() - e0, 4.0);
        fast.set_rate(0.5);
        let before = fast.now();
        madsim::time::sleep(Duration::from_secs(2)).await;
        about(fast.now() - before, 1.0);
        let start = madsim::time::Instant::now();
        fast.sleep(Duration::from_secs(1)).await;
        about(start.elapsed(), 2.0);
        assert_eq!(fast.clone(), fast);
        assert_ne!(fast, Clock::drifting(0.5));
    }
}
