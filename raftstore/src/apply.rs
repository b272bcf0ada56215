//! Applying committed entries: the [`StateMachine`] a raft group drives, and the
//! [`ApplyContext`] it writes through.
//!
//! All the writes of one apply round go into one `WriteBatch` together with the group's apply
//! index, so a restart resumes exactly after the last applied entry. Reads made during apply
//! see the round's own earlier writes (an overlay over RocksDB), so `SET k 1` followed by
//! `INCR k` in the same round behaves as it would one entry at a time.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use bytes::Bytes;
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};

use crate::engine::Engine;
use crate::keys::{ALL_CFS, ELEMENT_CFS};

/// The replicated state machine of a raft group. `apply` must be deterministic: the same
/// entries in the same order give the same writes and outputs on every node, every time.
pub trait StateMachine: Send + 'static {
    /// What a proposal's caller gets back once its entry is applied.
    type Output: Send + 'static;

    /// Applies one normal entry's data. Everything it decides comes from `data`, the state
    /// read through `ctx`, and `ctx.now_ms()` (the proposer's clock, carried in the entry).
    /// `data` is the entry's payload, shared (not copied) so that the state machine can keep
    /// slices of it.
    fn apply(&mut self, ctx: &mut ApplyContext<'_>, data: &Bytes) -> Self::Output;

    /// Called once the round's writes are durable (before its proposers are answered).
    fn round_written(&mut self) {}

    /// Called after the state was replaced wholesale (a snapshot was installed, or the node
    /// left its group's data behind): whatever the state machine keeps of it is stale.
    fn restored(&mut self) {}
}

/// Reads and writes of one apply round.
pub struct ApplyContext<'a> {
    engine: &'a Engine,
    wb: WriteBatch,
    /// The round's writes to point-read families (None: deleted).
    overlay: HashMap<(usize, Vec<u8>), Option<Vec<u8>>>,
    /// The round's writes to the element families, in key order so they can be scanned.
    ordered: [BTreeMap<Vec<u8>, Option<Vec<u8>>>; ALL_CFS.len()],
    cleared: [bool; ALL_CFS.len()],
    now_ms: u64,
    index: u64,
    /// Sequence numbers handed out for the entry being applied.
    seq: u64,
}

fn cf_index(cf: &str) -> usize {
    ALL_CFS
        .iter()
        .position(|c| *c == cf)
        .unwrap_or_else(|| panic!("unknown column family {cf}"))
}

/// A write of the round, as the ordered overlay holds it (None: deleted).
type Written<'a> = (&'a Vec<u8>, &'a Option<Vec<u8>>);

/// A stored entry, as RocksDB's iterator returns it.
type KeyValue = (Box<[u8]>, Box<[u8]>);

fn is_ordered(cf: &str) -> bool {
    ELEMENT_CFS.contains(&cf)
}

impl<'a> ApplyContext<'a> {
    /// A new apply round over `engine`. A raft group makes one per batch of committed entries;
    /// the benchmarks make their own.
    pub fn new(engine: &'a Engine) -> Self {
        ApplyContext {
            engine,
            wb: WriteBatch::default(),
            overlay: HashMap::new(),
            ordered: Default::default(),
            cleared: [false; ALL_CFS.len()],
            now_ms: 0,
            index: 0,
            seq: 0,
        }
    }

    /// Sets the clock of the entry about to be applied.
    pub fn set_now_ms(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Sets the log index of the entry about to be applied.
    pub fn set_index(&mut self, index: u64) {
        self.index = index;
        self.seq = 0;
    }

    /// The next of a sequence (0, 1, 2, …) that starts anew with every entry: with
    /// [`Self::index`], a number no other write of any entry gets. An entry that carries
    /// several proposals applies each in turn, and they share the sequence.
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq - 1
    }

    pub(crate) fn batch(&mut self) -> &mut WriteBatch {
        &mut self.wb
    }

    /// The round's writes, to be written in one batch.
    pub fn into_batch(self) -> WriteBatch {
        self.wb
    }

    /// The proposer's clock when the entry was proposed, in ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The log index of the entry being applied: the same on every node, and increasing, so a
    /// function of it (a collection's version) is too.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The value of `key` as of the entries applied so far. A read error stops the node: it
    /// cannot apply deterministically without its data.
    pub fn get(&self, cf: &str, key: &[u8]) -> Option<Vec<u8>> {
        let i = cf_index(cf);
        let written = if is_ordered(cf) {
            self.ordered[i].get(key)
        } else {
            self.overlay.get(&(i, key.to_vec()))
        };
        if let Some(v) = written {
            return v.clone();
        }
        if self.cleared[i] {
            return None;
        }
        self.engine
            .get(cf, key)
            .unwrap_or_else(|e| panic!("apply cannot read its data: {e}"))
    }

    pub fn put(&mut self, cf: &str, key: &[u8], value: &[u8]) {
        self.put_owned(cf, key.to_vec(), value.to_vec());
    }

    /// [`ApplyContext::put`] for a key and value the caller no longer needs (not copied again).
    pub fn put_owned(&mut self, cf: &str, key: Vec<u8>, value: Vec<u8>) {
        self.wb.put_cf(self.engine.cf(cf), &key, &value);
        let i = cf_index(cf);
        if is_ordered(cf) {
            self.ordered[i].insert(key, Some(value));
        } else {
            self.overlay.insert((i, key), Some(value));
        }
    }

    pub fn delete(&mut self, cf: &str, key: &[u8]) {
        self.wb.delete_cf(self.engine.cf(cf), key);
        let i = cf_index(cf);
        if is_ordered(cf) {
            self.ordered[i].insert(key.to_vec(), None);
        } else {
            self.overlay.insert((i, key.to_vec()), None);
        }
    }

    /// Empties `cf` (FLUSHALL): `[from, to)` must cover every key the family can hold.
    pub fn clear(&mut self, cf: &str, from: &[u8], to: &[u8]) {
        self.wb.delete_range_cf(self.engine.cf(cf), from, to);
        let i = cf_index(cf);
        self.overlay.retain(|(c, _), _| *c != i);
        self.ordered[i].clear();
        self.cleared[i] = true;
    }

    /// Visits the entries of family `cf` in `[start, end)` in key order, as of the entries
    /// applied so far (the round's own writes over the stored data); `visit` returns false to
    /// stop. Cheap for the element families; a point-read family's writes of the round are
    /// sorted for each scan.
    pub fn scan(
        &self,
        cf: &str,
        start: &[u8],
        end: &[u8],
        visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) {
        self.scan_ordered(cf, start, end, false, visit);
    }

    /// [`ApplyContext::scan`] from the last entry of `[start, end)` down to the first.
    pub fn scan_rev(
        &self,
        cf: &str,
        start: &[u8],
        end: &[u8],
        visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) {
        self.scan_ordered(cf, start, end, true, visit);
    }

    fn scan_ordered(
        &self,
        cf: &str,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) {
        let i = cf_index(cf);
        let mut written: Box<dyn Iterator<Item = Written<'_>>> = if is_ordered(cf) {
            let range =
                self.ordered[i].range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)));
            if reverse {
                Box::new(range.rev())
            } else {
                Box::new(range)
            }
        } else {
            // A point-read family (the key space, for KEYS or SCAN inside a transaction):
            // its writes are hashed, so this round's are sorted here.
            let mut range: Vec<Written<'_>> = self
                .overlay
                .iter()
                .filter(|((c, k), _)| *c == i && k.as_slice() >= start && k.as_slice() < end)
                .map(|((_, k), v)| (k, v))
                .collect();
            range.sort_by(|a, b| a.0.cmp(b.0));
            if reverse {
                range.reverse();
            }
            Box::new(range.into_iter())
        };
        let mut written_next = written.next();
        let mut stored = (!self.cleared[i]).then(|| {
            let mut opts = ReadOptions::default();
            opts.set_iterate_lower_bound(start.to_vec());
            opts.set_iterate_upper_bound(end.to_vec());
            let mode = if reverse {
                IteratorMode::End
            } else {
                IteratorMode::From(start, Direction::Forward)
            };
            self.engine
                .db()
                .iterator_cf_opt(self.engine.cf(cf), opts, mode)
        });
        let mut next_stored = || -> Option<KeyValue> {
            stored
                .as_mut()?
                .next()
                .map(|item| item.unwrap_or_else(|e| panic!("apply cannot read its data: {e}")))
        };
        let mut from_disk = next_stored();
        loop {
            // The round's write wins over the stored entry with the same key.
            let take_written = match (&written_next, &from_disk) {
                (None, None) => return,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((wk, _)), Some((dk, _))) if reverse => wk.as_slice() >= &dk[..],
                (Some((wk, _)), Some((dk, _))) => wk.as_slice() <= &dk[..],
            };
            if take_written {
                let (k, v) = written_next.take().expect("checked");
                written_next = written.next();
                if from_disk
                    .as_ref()
                    .is_some_and(|(dk, _)| &dk[..] == k.as_slice())
                {
                    from_disk = next_stored();
                }
                if let Some(v) = v {
                    if !visit(k, v) {
                        return;
                    }
                }
            } else {
                let (k, v) = from_disk.take().expect("checked");
                if !visit(&k, &v) {
                    return;
                }
                from_disk = next_stored();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::CF_ELEMENT;

    #[test]
    fn scan_merges_the_rounds_writes_over_the_stored_data() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut wb = WriteBatch::default();
        for k in [&b"a"[..], b"c", b"e", b"g"] {
            wb.put_cf(engine.cf(CF_ELEMENT), k, b"disk");
        }
        engine.write(wb, false).unwrap();
        let mut ctx = ApplyContext::new(&engine);
        ctx.put(CF_ELEMENT, b"b", b"new");
        ctx.put(CF_ELEMENT, b"c", b"changed");
        ctx.delete(CF_ELEMENT, b"e");
        ctx.put(CF_ELEMENT, b"h", b"outside");
        let mut seen = Vec::new();
        ctx.scan(CF_ELEMENT, b"a", b"h", |k, v| {
            seen.push((k.to_vec(), v.to_vec()));
            true
        });
        let want: Vec<(Vec<u8>, Vec<u8>)> =
            [("a", "disk"), ("b", "new"), ("c", "changed"), ("g", "disk")]
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect();
        assert_eq!(seen, want);
        let mut first = Vec::new();
        ctx.scan(CF_ELEMENT, b"b", b"z", |k, _| {
            first.push(k.to_vec());
            first.len() < 2
        });
        assert_eq!(first, vec![b"b".to_vec(), b"c".to_vec()]);
        let mut backwards = Vec::new();
        ctx.scan_rev(CF_ELEMENT, b"a", b"h", |k, _| {
            backwards.push(k.to_vec());
            true
        });
        let mut forwards: Vec<Vec<u8>> = want.iter().map(|(k, _)| k.clone()).collect();
        forwards.reverse();
        assert_eq!(backwards, forwards);
        let mut last_two = Vec::new();
        ctx.scan_rev(CF_ELEMENT, b"b", b"g", |k, _| {
            last_two.push(k.to_vec());
            last_two.len() < 2
        });
        assert_eq!(last_two, vec![b"c".to_vec(), b"b".to_vec()]);
        assert_eq!(ctx.get(CF_ELEMENT, b"e"), None);
        assert_eq!(ctx.get(CF_ELEMENT, b"g").as_deref(), Some(&b"disk"[..]));
    }
}
