//! A bounded in-memory log: at most `capacity` entries, and payloads (request bodies, results)
//! that together hold at most `budget` bytes, none larger than `entry_cap`. The oldest entry
//! goes first when the log is full; the oldest payload goes first when the budget is spent
//! (its entry stays, without the payload). Counters survive eviction and clearing.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// The sizes and counters of one log (`GET /admin/stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogStats {
    /// Entries ever recorded, including those evicted or cleared since.
    pub recorded: u64,
    /// Entries kept now (at most the log capacity).
    pub retained: usize,
    /// Bytes of payloads (request bodies, transaction results) kept now: at most the body budget.
    pub retained_bytes: usize,
    /// Entries evicted because the log was full.
    pub evicted: u64,
    /// Payloads not kept or dropped later: larger than the per-entry cap, or pushed out by
    /// newer ones when the budget was spent.
    pub payloads_dropped: u64,
}

#[derive(Debug)]
struct Entry<T> {
    seq: u64,
    item: T,
    payload: Option<Box<[u8]>>,
}

#[derive(Debug)]
pub(crate) struct Ring<T> {
    entries: VecDeque<Entry<T>>,
    /// Sequence numbers of the entries still holding a payload, oldest first.
    with_payload: VecDeque<u64>,
    capacity: usize,
    budget: usize,
    entry_cap: usize,
    next_seq: u64,
    stats: LogStats,
}

impl<T> Ring<T> {
    pub(crate) fn new(capacity: usize, budget: usize, entry_cap: usize) -> Self {
        Ring {
            entries: VecDeque::new(),
            with_payload: VecDeque::new(),
            capacity: capacity.max(1),
            budget,
            entry_cap: entry_cap.min(budget),
            next_seq: 0,
            stats: LogStats::default(),
        }
    }

    /// Appends `item`, keeping its payload of `len` bytes (made by `make` only when kept).
    /// Returns the sequence number of the new entry and the entry evicted to make room.
    pub(crate) fn push(
        &mut self,
        item: T,
        payload: Option<(usize, impl FnOnce() -> Box<[u8]>)>,
    ) -> (u64, Option<(u64, T)>) {
        let evicted = if self.entries.len() >= self.capacity {
            self.pop_front()
        } else {
            None
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.stats.recorded += 1;
        let payload = match payload {
            Some((len, _)) if len > self.entry_cap => {
                self.stats.payloads_dropped += 1;
                None
            }
            Some((len, make)) => {
                while self.stats.retained_bytes + len > self.budget {
                    if !self.drop_oldest_payload() {
                        break;
                    }
                }
                self.stats.retained_bytes += len;
                self.with_payload.push_back(seq);
                Some(make())
            }
            None => None,
        };
        self.entries.push_back(Entry { seq, item, payload });
        (seq, evicted)
    }

    fn pop_front(&mut self) -> Option<(u64, T)> {
        let e = self.entries.pop_front()?;
        self.stats.evicted += 1;
        if let Some(p) = &e.payload {
            self.stats.retained_bytes -= p.len();
            if self.with_payload.front() == Some(&e.seq) {
                self.with_payload.pop_front();
            }
        }
        Some((e.seq, e.item))
    }

    fn drop_oldest_payload(&mut self) -> bool {
        let Some(seq) = self.with_payload.pop_front() else {
            return false;
        };
        if let Some(p) = self
            .position(seq)
            .and_then(|i| self.entries[i].payload.take())
        {
            self.stats.retained_bytes -= p.len();
            self.stats.payloads_dropped += 1;
        }
        true
    }

    fn position(&self, seq: u64) -> Option<usize> {
        let first = self.entries.front()?.seq;
        let i = usize::try_from(seq.checked_sub(first)?).ok()?;
        (i < self.entries.len()).then_some(i)
    }

    /// The entry `seq`, if still kept, with its payload if still kept.
    pub(crate) fn get(&self, seq: u64) -> Option<(&T, Option<&[u8]>)> {
        let e = &self.entries[self.position(seq)?];
        Some((&e.item, e.payload.as_deref()))
    }

    /// The kept entries, oldest first, with their sequence numbers and payloads.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &T, Option<&[u8]>)> {
        self.entries
            .iter()
            .map(|e| (e.seq, &e.item, e.payload.as_deref()))
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Forgets every entry; the counters of recorded entries stay.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.with_payload.clear();
        self.stats.retained_bytes = 0;
    }

    pub(crate) fn stats(&self) -> LogStats {
        LogStats {
            retained: self.entries.len(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: usize) -> Option<(usize, impl FnOnce() -> Box<[u8]>)> {
        Some((n, move || vec![b'x'; n].into_boxed_slice()))
    }

    #[test]
    fn entries_and_bytes_stay_bounded_and_the_newest_stay() {
        let mut r = Ring::new(5, 100, 40);
        for i in 0..20u32 {
            let (_, evicted) = r.push(i, body(30));
            assert_eq!(evicted.map(|e| e.1), i.checked_sub(5));
            assert!(r.stats().retained_bytes <= 100);
        }
        let s = r.stats();
        assert_eq!((s.recorded, s.retained, s.evicted), (20, 5, 15));
        assert_eq!(s.retained_bytes, 90);
        let kept: Vec<_> = r.iter().map(|(_, i, p)| (*i, p.is_some())).collect();
        assert_eq!(
            kept,
            vec![(15, false), (16, false), (17, true), (18, true), (19, true)]
        );
        // Too large for one entry: kept without its payload.
        let (seq, _) = r.push(20, body(41));
        assert_eq!(r.get(seq).map(|(i, p)| (*i, p.is_none())), Some((20, true)));
        assert_eq!(r.stats().retained_bytes, 90);
        r.clear();
        assert_eq!(r.len(), 0);
        assert_eq!(r.stats().retained_bytes, 0);
        assert_eq!(r.stats().recorded, 21);
        assert!(r.get(seq).is_none());
    }
}
