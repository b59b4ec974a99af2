//! Ids for stores, regions and peers: never reused, across restarts.
//!
//! Ids are handed out from a range whose end is persisted first: the allocator
//! saves `end + step` before using ids past `end`, and a restarted allocator
//! starts at the saved end, so a crash can skip ids but never repeat one.

/// What the allocator needs before it may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// `count` ids starting here.
    Ready(u64),
    /// Persist this end (synced), then call [`IdAlloc::saved`] and ask again.
    Save(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdAlloc {
    next: u64,
    saved_end: u64,
}

impl IdAlloc {
    /// A restarted allocator: everything below `saved_end` may have been used.
    pub fn recover(saved_end: u64, first: u64) -> IdAlloc {
        let start = saved_end.max(first);
        IdAlloc { next: start, saved_end: start }
    }

    pub fn next(&mut self, count: u64, step: u64) -> Next {
        let count = count.max(1);
        if self.next + count > self.saved_end {
            return Next::Save(self.next + count + step);
        }
        let first = self.next;
        self.next += count;
        Next::Ready(first)
    }

    pub fn saved(&mut self, end: u64) {
        self.saved_end = self.saved_end.max(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(a: &mut IdAlloc, count: u64, saved: &mut Vec<u64>) -> u64 {
        loop {
            match a.next(count, 100) {
                Next::Ready(first) => return first,
                Next::Save(end) => {
                    saved.push(end);
                    a.saved(end);
                }
            }
        }
    }

    #[test]
    fn ids_are_never_reused_across_restarts() {
        let mut saved = Vec::new();
        let mut a = IdAlloc::recover(0, 1000);
        assert_eq!(take(&mut a, 1, &mut saved), 1000);
        assert_eq!(take(&mut a, 3, &mut saved), 1001);
        assert_eq!(saved, vec![1101]);
        let used_before_crash = 1003;
        let mut b = IdAlloc::recover(*saved.last().unwrap(), 1000);
        let first = take(&mut b, 1, &mut saved);
        assert!(first > used_before_crash, "{first}");
    }
}
