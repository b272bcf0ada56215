//! Applying committed entries: the [`StateMachine`] a raft group drives, and the
//! [`ApplyContext`] it writes through.
//!
//! All the writes of one apply round go into one `WriteBatch` together with the group's apply
//! index, so a restart resumes exactly after the last applied entry. Reads made during apply
//! see the round's own earlier writes (an overlay over RocksDB), so `SET k 1` followed by
//! `INCR k` in the same round behaves as it would one entry at a time.

use std::collections::HashMap;

use bytes::Bytes;
use rocksdb::WriteBatch;

use crate::engine::Engine;
use crate::keys::ALL_CFS;

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
}

/// Reads and writes of one apply round.
pub struct ApplyContext<'a> {
    engine: &'a Engine,
    wb: WriteBatch,
    overlay: HashMap<(usize, Vec<u8>), Option<Vec<u8>>>,
    cleared: [bool; ALL_CFS.len()],
    now_ms: u64,
}

fn cf_index(cf: &str) -> usize {
    ALL_CFS
        .iter()
        .position(|c| *c == cf)
        .unwrap_or_else(|| panic!("unknown column family {cf}"))
}

impl<'a> ApplyContext<'a> {
    /// A new apply round over `engine`. A raft group makes one per batch of committed entries;
    /// the benchmarks make their own.
    pub fn new(engine: &'a Engine) -> Self {
        ApplyContext {
            engine,
            wb: WriteBatch::default(),
            overlay: HashMap::new(),
            cleared: [false; ALL_CFS.len()],
            now_ms: 0,
        }
    }

    /// Sets the clock of the entry about to be applied.
    pub fn set_now_ms(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
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

    /// The value of `key` as of the entries applied so far. A read error stops the node: it
    /// cannot apply deterministically without its data.
    pub fn get(&self, cf: &str, key: &[u8]) -> Option<Vec<u8>> {
        let i = cf_index(cf);
        if let Some(v) = self.overlay.get(&(i, key.to_vec())) {
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
        self.overlay.insert((cf_index(cf), key), Some(value));
    }

    pub fn delete(&mut self, cf: &str, key: &[u8]) {
        self.wb.delete_cf(self.engine.cf(cf), key);
        self.overlay.insert((cf_index(cf), key.to_vec()), None);
    }

    /// Empties `cf` (FLUSHALL): `[from, to)` must cover every key the family can hold.
    pub fn clear(&mut self, cf: &str, from: &[u8], to: &[u8]) {
        self.wb.delete_range_cf(self.engine.cf(cf), from, to);
        let i = cf_index(cf);
        self.overlay.retain(|(c, _), _| *c != i);
        self.cleared[i] = true;
    }
}
