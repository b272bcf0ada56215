//! Clients blocked in BLPOP and friends, on this node.
//!
//! A blocked client registers on its keys (FIFO per key, as in Redis) and waits. Every entry
//! applied on this node reports the keys it changed ([`Blocked::touched`]); the first client
//! waiting on each such key is woken and tries its pop again, as a proposal decided at apply:
//! if another client took the element meanwhile, it finds nothing and waits on. A client that
//! leaves the queue (served, timed out, unblocked, disconnected) wakes the next one, which
//! may now be first in line for an element still there. Nothing here decides who gets an
//! element (the log does), so a wake-up too many costs a proposal, never a double delivery.
//!
//! Stream readers (XREAD and XREADGROUP with BLOCK) wait apart: an entry is for every reader
//! (each group gets it, every XREAD sees it), so all of a key's readers are woken, and only
//! when an entry is added to it or a group is destroyed ([`Blocked::ready`]), not by every
//! change (an XREADGROUP's own bookkeeping would wake the others for nothing).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

/// How CLIENT UNBLOCK ends a wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unblock {
    /// As if the timeout expired.
    Timeout,
    /// With `-UNBLOCKED`.
    Error,
}

/// One blocked client's wake-up.
pub struct Waiter {
    pub client: u64,
    notify: Notify,
    unblocked: Mutex<Option<Unblock>>,
}

impl Waiter {
    /// Waits until woken (a key changed, or CLIENT UNBLOCK). A wake-up that came before the
    /// wait is not lost.
    pub async fn woken(&self) {
        self.notify.notified().await
    }

    /// Whether CLIENT UNBLOCK ended this wait, and how.
    pub fn unblocked(&self) -> Option<Unblock> {
        *self.unblocked.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
struct Queues {
    next: u64,
    by_key: HashMap<Bytes, VecDeque<u64>>,
    /// Stream readers, by key.
    readers: HashMap<Bytes, Vec<u64>>,
    waiters: HashMap<u64, (Arc<Waiter>, Vec<Bytes>)>,
}

/// The blocked clients of this node.
#[derive(Default)]
pub struct Blocked {
    count: AtomicUsize,
    queues: Mutex<Queues>,
}

impl Blocked {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many clients are blocked (INFO's `blocked_clients`).
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Queues client `client` on `keys` (last in line on each); it leaves the queues when the
    /// returned registration drops.
    pub fn register(self: &Arc<Self>, client: u64, keys: Vec<Bytes>) -> Registration {
        self.enter(client, keys, false)
    }

    /// Registers client `client` as a reader of streams `keys` (see the module's comment).
    pub fn register_reader(self: &Arc<Self>, client: u64, keys: Vec<Bytes>) -> Registration {
        self.enter(client, keys, true)
    }

    fn enter(self: &Arc<Self>, client: u64, keys: Vec<Bytes>, reader: bool) -> Registration {
        let waiter = Arc::new(Waiter {
            client,
            notify: Notify::new(),
            unblocked: Mutex::new(None),
        });
        let mut q = self.lock();
        q.next += 1;
        let id = q.next;
        for k in &keys {
            if reader {
                let readers = q.readers.entry(k.clone()).or_default();
                if !readers.contains(&id) {
                    readers.push(id);
                }
                continue;
            }
            let line = q.by_key.entry(k.clone()).or_default();
            if !line.contains(&id) {
                line.push_back(id);
            }
        }
        q.waiters.insert(id, (waiter.clone(), keys));
        self.count.fetch_add(1, Ordering::Relaxed);
        Registration {
            blocked: self.clone(),
            id,
            waiter,
        }
    }

    /// Streams an applied entry added to (or destroyed a group of): wakes all their readers.
    pub fn ready<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) {
        if self.count() == 0 {
            return;
        }
        let q = self.lock();
        for k in keys {
            for id in q.readers.get(k).into_iter().flatten() {
                if let Some((w, _)) = q.waiters.get(id) {
                    w.notify.notify_one();
                }
            }
        }
    }

    /// Keys an applied entry changed: wakes the first client waiting on each.
    pub fn touched<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) {
        if self.count() == 0 {
            return;
        }
        let q = self.lock();
        for k in keys {
            if let Some(first) = q.by_key.get(k).and_then(|line| line.front()) {
                if let Some((w, _)) = q.waiters.get(first) {
                    w.notify.notify_one();
                }
            }
        }
    }

    /// CLIENT UNBLOCK: ends client `client`'s wait; whether it was blocked.
    pub fn unblock(&self, client: u64, how: Unblock) -> bool {
        let q = self.lock();
        let Some((w, _)) = q.waiters.values().find(|(w, _)| w.client == client) else {
            return false;
        };
        *w.unblocked.lock().unwrap_or_else(|e| e.into_inner()) = Some(how);
        w.notify.notify_one();
        true
    }

    fn leave(&self, id: u64) {
        let mut q = self.lock();
        let Some((_, keys)) = q.waiters.remove(&id) else {
            return;
        };
        self.count.fetch_sub(1, Ordering::Relaxed);
        for k in keys {
            if let Some(readers) = q.readers.get_mut(&k) {
                readers.retain(|&w| w != id);
                if readers.is_empty() {
                    q.readers.remove(&k);
                }
            }
            let Some(line) = q.by_key.get_mut(&k) else {
                continue;
            };
            let was_first = line.front() == Some(&id);
            line.retain(|&w| w != id);
            let next = line.front().copied();
            if line.is_empty() {
                q.by_key.remove(&k);
            }
            // The element this client was woken for (or left behind) may be the next one's.
            if was_first {
                if let Some((w, _)) = next.and_then(|n| q.waiters.get(&n)) {
                    w.notify.notify_one();
                }
            }
        }
    }
}

/// A client's place in the queues; leaving them on drop.
pub struct Registration {
    blocked: Arc<Blocked>,
    id: u64,
    pub waiter: Arc<Waiter>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.blocked.leave(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[tokio::test]
    async fn only_the_first_in_line_is_woken_and_leaving_passes_the_turn_on() {
        let b = Arc::new(Blocked::default());
        let first = b.register(1, vec![key("k")]);
        let second = b.register(2, vec![key("k"), key("other")]);
        assert_eq!(b.count(), 2);
        b.touched([&b"k"[..]]);
        // The first's wake-up is stored; the second has none.
        tokio::time::timeout(std::time::Duration::from_secs(1), first.waiter.woken())
            .await
            .unwrap();
        let second_woken =
            tokio::time::timeout(std::time::Duration::from_millis(50), second.waiter.woken()).await;
        assert!(second_woken.is_err());
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(1), second.waiter.woken())
            .await
            .unwrap();
        assert!(b.unblock(2, Unblock::Error));
        assert_eq!(second.waiter.unblocked(), Some(Unblock::Error));
        assert!(!b.unblock(1, Unblock::Timeout));
        drop(second);
        assert_eq!(b.count(), 0);
        assert!(b.lock().by_key.is_empty());
    }

    #[tokio::test]
    async fn every_stream_reader_is_woken_by_a_ready_key_and_only_by_it() {
        let b = Arc::new(Blocked::default());
        let r1 = b.register_reader(1, vec![key("s")]);
        let r2 = b.register_reader(2, vec![key("s")]);
        let short = std::time::Duration::from_millis(50);
        b.touched([&b"s"[..]]);
        assert!(tokio::time::timeout(short, r1.waiter.woken())
            .await
            .is_err());
        b.ready([&b"s"[..]]);
        for r in [&r1, &r2] {
            tokio::time::timeout(std::time::Duration::from_secs(1), r.waiter.woken())
                .await
                .unwrap();
        }
        drop(r1);
        drop(r2);
        assert_eq!(b.count(), 0);
        assert!(b.lock().readers.is_empty());
    }
}
