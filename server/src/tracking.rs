//! Client-side caching (CLIENT TRACKING): which keys each tracking client read on this node,
//! and the invalidation messages sent when a write to one of them is applied here.
//!
//! Tracking is per node, like the connection: a client reading from a follower (READONLY) is
//! invalidated by that follower when it applies the write. A key read is remembered when the
//! read is dispatched, before it runs, so a write applied in between invalidates it (an extra
//! invalidation, never a missed one). Default mode remembers the keys a client read (until
//! they are invalidated); BCAST sends every change to a key under one of the client's prefixes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::pubsub::{Hub, Push};

/// A client's tracking settings (CLIENT TRACKING ON …).
#[derive(Clone, Debug, Default)]
pub struct Mode {
    /// The client whose connection receives the invalidations (0: the client itself).
    pub redirect: u64,
    pub bcast: bool,
    pub prefixes: Vec<Bytes>,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
}

#[derive(Default)]
struct State {
    /// Default mode: key → the clients that read it since its last invalidation.
    keys: HashMap<Vec<u8>, HashSet<u64>>,
    /// Every tracking client.
    clients: HashMap<u64, Mode>,
    /// NOLOOP: keys a client wrote whose next invalidation it does not get.
    own_writes: HashMap<Vec<u8>, HashSet<u64>>,
}

/// The node's tracking table.
pub struct Tracker {
    state: Mutex<State>,
    hub: Arc<Hub>,
}

impl Tracker {
    pub fn new(hub: Arc<Hub>) -> Tracker {
        Tracker {
            state: Mutex::new(State::default()),
            hub,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn enable(&self, client: u64, mode: Mode) {
        self.lock().clients.insert(client, mode);
    }

    /// CLIENT TRACKING OFF, or the client left.
    pub fn disable(&self, client: u64) {
        let mut s = self.lock();
        s.clients.remove(&client);
        s.keys.retain(|_, readers| {
            readers.remove(&client);
            !readers.is_empty()
        });
        s.own_writes.retain(|_, writers| {
            writers.remove(&client);
            !writers.is_empty()
        });
    }

    /// The client read `keys` (default mode).
    pub fn remember<'a>(&self, client: u64, keys: impl IntoIterator<Item = &'a Bytes>) {
        let mut s = self.lock();
        for k in keys {
            s.keys.entry(k.to_vec()).or_default().insert(client);
        }
    }

    /// A NOLOOP client is writing `keys`.
    pub fn wrote<'a>(&self, client: u64, keys: impl IntoIterator<Item = &'a Bytes>) {
        let mut s = self.lock();
        for k in keys {
            s.own_writes.entry(k.to_vec()).or_default().insert(client);
        }
    }

    fn send(&self, s: &State, client: u64, keys: Option<Vec<Bytes>>) {
        let Some(mode) = s.clients.get(&client) else {
            return;
        };
        let target = if mode.redirect != 0 {
            mode.redirect
        } else {
            client
        };
        if let Some(outbox) = self.hub.outbox(target) {
            outbox.push(Push::Invalidate {
                keys,
                redirected: mode.redirect != 0,
            });
        }
    }

    /// Writes to `keys` (an apply round's) were applied on this node. Default-mode readers
    /// get one message per key; a BCAST client one per prefix, holding the round's keys
    /// under it (as Redis sends them once per event-loop iteration).
    pub fn invalidate(&self, keys: &[Vec<u8>]) {
        let mut s = self.lock();
        if s.clients.is_empty() {
            return;
        }
        let mut own: HashMap<Vec<u8>, HashSet<u64>> = HashMap::new();
        for key in keys {
            if let Some(writers) = s.own_writes.remove(key) {
                own.entry(key.clone()).or_default().extend(writers);
            }
        }
        let skip = |s: &State, client: u64, key: &[u8]| {
            s.clients.get(&client).is_some_and(|m| m.noloop)
                && own.get(key).is_some_and(|w| w.contains(&client))
        };
        for key in keys {
            let mut readers: Vec<u64> = s
                .keys
                .remove(key)
                .map(|r| r.into_iter().collect())
                .unwrap_or_default();
            readers.sort_unstable();
            for client in readers {
                if !skip(&s, client, key) {
                    self.send(&s, client, Some(vec![Bytes::copy_from_slice(key)]));
                }
            }
        }
        let mut bcast: Vec<(u64, Vec<Bytes>)> = s
            .clients
            .iter()
            .filter(|(_, m)| m.bcast)
            .map(|(id, m)| {
                // Redis walks its prefixes in order, and each prefix's keys in order.
                let mut prefixes = if m.prefixes.is_empty() {
                    vec![Bytes::new()]
                } else {
                    m.prefixes.clone()
                };
                prefixes.sort();
                (*id, prefixes)
            })
            .collect();
        bcast.sort_by_key(|(id, _)| *id);
        for (client, prefixes) in bcast {
            for prefix in prefixes {
                let mut matched: Vec<Bytes> = Vec::new();
                for key in keys {
                    if key.starts_with(&prefix)
                        && !skip(&s, client, key)
                        && !matched.iter().any(|m| m[..] == key[..])
                    {
                        matched.push(Bytes::copy_from_slice(key));
                    }
                }
                if !matched.is_empty() {
                    matched.sort();
                    self.send(&s, client, Some(matched));
                }
            }
        }
    }

    /// FLUSHALL/FLUSHDB was applied: every tracking client is told to drop everything.
    pub fn flush(&self) {
        let mut s = self.lock();
        s.keys.clear();
        s.own_writes.clear();
        let clients: Vec<u64> = s.clients.keys().copied().collect();
        for client in clients {
            self.send(&s, client, None);
        }
    }
}
