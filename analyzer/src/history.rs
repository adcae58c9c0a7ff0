//! Bounded per-socket histories (RDMA writes, CDCs sent, send completions)
//! that the model consults for every new message: the events of a long copy
//! can arrive before the message they belong to. Searching 512 entries per
//! message was a quarter of the analyzer's time; these histories count how
//! many neighbours are out of order in each of two keys, and while there
//! are none a search is a binary search giving exactly the entry the linear
//! scan would have found (callers keep the scan for the unordered case).

use std::collections::VecDeque;

/// The two keys an entry is ordered by (most recordings push them in order).
pub trait Keys {
    fn key0(&self) -> u64;
    fn key1(&self) -> u64;
}

#[derive(Debug)]
pub struct History<T> {
    q: VecDeque<T>,
    cap: usize,
    /// Adjacent pairs (older, newer) with newer < older, per key.
    inversions: [usize; 2],
}

impl<T: Keys> History<T> {
    pub fn new(cap: usize) -> History<T> {
        History {
            q: VecDeque::new(),
            cap,
            inversions: [0, 0],
        }
    }

    /// Append `v`, dropping the oldest entry when full.
    pub fn push(&mut self, v: T) {
        if self.q.len() >= self.cap {
            if let Some(old) = self.q.pop_front() {
                if let Some(next) = self.q.front() {
                    self.inversions[0] -= (next.key0() < old.key0()) as usize;
                    self.inversions[1] -= (next.key1() < old.key1()) as usize;
                }
            }
        }
        if let Some(last) = self.q.back() {
            self.inversions[0] += (v.key0() < last.key0()) as usize;
            self.inversions[1] += (v.key1() < last.key1()) as usize;
        }
        self.q.push_back(v);
    }

    /// Both keys are non-decreasing from the oldest entry to the newest.
    pub fn sorted(&self) -> bool {
        self.inversions == [0, 0]
    }

    /// Index of the first entry for which `pred` is false (entries for
    /// which it holds must come first: use only when [`History::sorted`]).
    pub fn partition_point(&self, pred: impl FnMut(&T) -> bool) -> usize {
        self.q.partition_point(pred)
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.q.get(i)
    }

    pub fn iter(&self) -> std::collections::vec_deque::Iter<'_, T> {
        self.q.iter()
    }

    pub fn len(&self) -> usize {
        self.q.len()
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}

impl<T: Keys> Default for History<T> {
    fn default() -> History<T> {
        History::new(crate::model::HISTORY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy)]
    struct P(u64, u64);
    impl Keys for P {
        fn key0(&self) -> u64 {
            self.0
        }
        fn key1(&self) -> u64 {
            self.1
        }
    }

    #[test]
    fn inversions_follow_pushes_and_evictions() {
        let mut h = History::new(3);
        for p in [P(1, 1), P(2, 2), P(3, 3)] {
            h.push(p);
        }
        assert!(h.sorted());
        h.push(P(0, 9)); // out of order in key 0
        assert!(!h.sorted());
        h.push(P(5, 10)); // (3,3) (0,9) (5,10)
        assert!(!h.sorted());
        h.push(P(6, 11)); // (0,9) (5,10) (6,11)
        assert!(h.sorted());
    }

    #[test]
    fn an_inversion_leaves_with_its_older_entry() {
        let mut h = History::new(2);
        h.push(P(5, 5));
        h.push(P(1, 6));
        assert!(!h.sorted());
        h.push(P(2, 7)); // evicts (5,5): (1,6) (2,7)
        assert!(h.sorted());
        assert_eq!(h.partition_point(|p| p.0 < 2), 1);
        assert_eq!(h.len(), 2);
    }
}
