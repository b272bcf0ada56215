//! SCAN cursors. Redis cursors are integers, but a position in RocksDB's key order is a key;
//! the node remembers the key for each cursor it hands out (bounded, oldest forgotten first).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

const MAX_CURSORS: usize = 16 * 1024;

#[derive(Default)]
pub struct ScanCursors {
    inner: Mutex<Cursors>,
}

#[derive(Default)]
struct Cursors {
    next: u64,
    by_id: HashMap<u64, Vec<u8>>,
    order: VecDeque<u64>,
}

impl ScanCursors {
    /// Remembers `position` and returns its cursor (never 0, which means "done").
    pub fn put(&self, position: Vec<u8>) -> u64 {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.next += 1;
        let id = c.next;
        c.by_id.insert(id, position);
        c.order.push_back(id);
        while c.order.len() > MAX_CURSORS {
            if let Some(old) = c.order.pop_front() {
                c.by_id.remove(&old);
            }
        }
        id
    }

    /// The position of `cursor`. A cursor stays valid after use, so a client may retry a
    /// SCAN call whose reply it lost.
    pub fn take(&self, cursor: u64) -> Option<Vec<u8>> {
        let c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.by_id.get(&cursor).cloned()
    }
}
