//! Timestamps: `physical_ms << 18 | logical`, strictly increasing, across restarts.
//!
//! As TiKV's PD does, the allocator persists the upper bound of a time window
//! and allocates inside it: before handing out a timestamp whose physical part
//! reaches the saved bound, it saves a new bound `window` ahead (synced). After a
//! restart it starts above the saved bound, so even a clock that went backwards
//! cannot make it repeat or go back.

use serde::{Deserialize, Serialize};

pub use crate::meta::{compose_ts as compose, physical_ms as physical, TS_LOGICAL_BITS as LOGICAL_BITS};

pub const MAX_LOGICAL: u64 = 1 << LOGICAL_BITS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tso {
    physical: u64,
    logical: u64,
    /// The saved upper bound: no timestamp at or past it is handed out before a
    /// larger bound is saved.
    saved_until: u64,
}

/// What the allocator needs before it may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The timestamps are ready: the last of the batch.
    Ready(u64),
    /// Persist this window bound (synced), then call [`Tso::saved`] and ask again.
    Save(u64),
}

impl Tso {
    /// A restarted allocator: it starts above everything the saved bound allowed.
    pub fn recover(saved_until: u64) -> Tso {
        Tso { physical: saved_until, logical: 0, saved_until }
    }

    /// Every timestamp handed out from now on is above this one.
    pub fn floor(&self) -> u64 {
        compose(self.physical, self.logical)
    }

    /// `count` timestamps at wall time `now_ms`; `window_ms` is how far ahead a
    /// new bound is saved.
    pub fn next(&mut self, now_ms: u64, count: u64, window_ms: u64) -> Next {
        let count = count.clamp(1, MAX_LOGICAL - 1);
        let (mut physical, mut logical) = if now_ms > self.physical { (now_ms, 0) } else { (self.physical, self.logical) };
        if logical + count >= MAX_LOGICAL {
            physical += 1;
            logical = 0;
        }
        if physical >= self.saved_until {
            return Next::Save(physical.max(now_ms) + window_ms);
        }
        logical += count;
        self.physical = physical;
        self.logical = logical;
        Next::Ready(compose(physical, logical))
    }

    /// The bound `until` is durable.
    pub fn saved(&mut self, until: u64) {
        self.saved_until = self.saved_until.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(tso: &mut Tso, now: u64, count: u64, saved: &mut Vec<u64>) -> u64 {
        loop {
            match tso.next(now, count, 3000) {
                Next::Ready(ts) => return ts,
                Next::Save(until) => {
                    saved.push(until);
                    tso.saved(until);
                }
            }
        }
    }

    #[test]
    fn timestamps_increase_within_a_window_and_across_restarts() {
        let mut saved = Vec::new();
        let mut tso = Tso::recover(0);
        let a = take(&mut tso, 100, 1, &mut saved);
        assert_eq!(saved, vec![3100], "the first timestamp waits for a window");
        let b = take(&mut tso, 100, 10, &mut saved);
        assert!(b > a && b - a == 10, "a batch of 10 ends 10 later");
        let c = take(&mut tso, 50, 1, &mut saved);
        assert!(c > b, "a clock that went back does not matter");
        let d = take(&mut tso, 3200, 1, &mut saved);
        assert_eq!(saved, vec![3100, 6200]);
        assert!(d > c);
        // A restart, with a clock now far behind: it starts above the saved bound.
        let mut restarted = Tso::recover(*saved.last().unwrap());
        let e = take(&mut restarted, 10, 1, &mut saved);
        assert!(e > d && physical(e) >= 6200, "{e} after {d}");
    }

    #[test]
    fn logical_overflow_moves_to_the_next_millisecond() {
        let mut saved = Vec::new();
        let mut tso = Tso::recover(0);
        let a = take(&mut tso, 100, MAX_LOGICAL - 2, &mut saved);
        let b = take(&mut tso, 100, 5, &mut saved);
        assert_eq!((physical(a), physical(b)), (100, 101));
        assert!(b > a);
    }
}
