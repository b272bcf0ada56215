//! Pub/sub on one node, and its reach across the cluster.
//!
//! Subscriptions live on the node the client is connected to. A PUBLISH is delivered to the
//! matching subscribers here and sent to every other member over the peer transport (not the
//! raft log: at most once, in order per publisher, as Redis Cluster's bus), where it is
//! delivered to theirs; its reply counts the receivers on the node that took it. SPUBLISH
//! does the same for shard channels (one raft group: every node serves every slot).
//!
//! A subscriber's messages queue in its [`Outbox`] until its connection writes them. Past
//! Redis's `client-output-buffer-limit pubsub` defaults (32 MB at once, or 8 MB for 60
//! seconds) the subscriber is disconnected and nothing more is queued for it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rockraft_resp::Reply;
use tokio::sync::mpsc;

/// Redis's default `client-output-buffer-limit pubsub 32mb 8mb 60`.
const HARD_LIMIT: usize = 32 << 20;
const SOFT_LIMIT: usize = 8 << 20;
const SOFT_SECONDS: Duration = Duration::from_secs(60);

/// Which namespace a channel is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Space {
    /// SUBSCRIBE / PUBLISH.
    Global,
    /// SSUBSCRIBE / SPUBLISH.
    Shard,
}

/// A message for one subscriber.
#[derive(Debug)]
pub enum Push {
    Message {
        channel: Bytes,
        payload: Bytes,
    },
    Pattern {
        pattern: Bytes,
        channel: Bytes,
        payload: Bytes,
    },
    Shard {
        channel: Bytes,
        payload: Bytes,
    },
    /// A MONITOR line (a status reply).
    Monitor(String),
    /// Client-side caching: these keys changed (`None`: every key, after FLUSHALL).
    Invalidate {
        keys: Option<Vec<Bytes>>,
        /// Sent for another client that redirects here (what a RESP2 connection needs).
        redirected: bool,
    },
}

impl Push {
    fn size(&self) -> usize {
        match self {
            Push::Message { channel, payload } | Push::Shard { channel, payload } => {
                channel.len() + payload.len() + 32
            }
            Push::Pattern {
                pattern,
                channel,
                payload,
            } => pattern.len() + channel.len() + payload.len() + 48,
            Push::Monitor(line) => line.len() + 16,
            Push::Invalidate { keys, .. } => {
                32 + keys
                    .as_ref()
                    .map_or(0, |k| k.iter().map(|k| k.len() + 16).sum())
            }
        }
    }

    /// The push as Redis sends it to a connection in RESP3 (`resp3`) or RESP2, subscribed
    /// or not: an array in RESP2, a push in RESP3. An invalidation reaches a RESP2 connection
    /// only as a message of `__redis__:invalidate`, if it subscribed to something.
    pub fn reply(self, resp3: bool, subscribed: bool) -> Option<Reply> {
        let b = |s: &'static str| Reply::Bulk(Bytes::from_static(s.as_bytes()));
        if let Push::Monitor(line) = self {
            return Some(Reply::Simple(line));
        }
        if let Push::Invalidate { keys, redirected } = self {
            let keys = keys.map_or(Reply::Nil, |k| {
                Reply::Array(k.into_iter().map(Reply::Bulk).collect())
            });
            return match (resp3, subscribed) {
                (true, _) => Some(Reply::Push(vec![b("invalidate"), keys])),
                // Redis sends a RESP2 client's own invalidations nowhere (RESP2 has no push
                // in the same connection); only a redirect reaches a subscribed RESP2 client.
                (false, true) if redirected => Some(Reply::Push(vec![
                    b("message"),
                    b("__redis__:invalidate"),
                    keys,
                ])),
                (false, _) => None,
            };
        }
        Some(Reply::Push(match self {
            Push::Message { channel, payload } => {
                vec![b("message"), Reply::Bulk(channel), Reply::Bulk(payload)]
            }
            Push::Pattern {
                pattern,
                channel,
                payload,
            } => vec![
                b("pmessage"),
                Reply::Bulk(pattern),
                Reply::Bulk(channel),
                Reply::Bulk(payload),
            ],
            Push::Shard { channel, payload } => {
                vec![b("smessage"), Reply::Bulk(channel), Reply::Bulk(payload)]
            }
            Push::Invalidate { .. } | Push::Monitor(_) => unreachable!("answered above"),
        }))
    }
}

/// The queue of one subscribed connection.
pub struct Outbox {
    tx: mpsc::UnboundedSender<Push>,
    /// Bytes queued and not yet taken by the connection.
    queued: AtomicUsize,
    /// Since when the queue has been over the soft limit.
    over_soft: Mutex<Option<Instant>>,
    /// Past the limit: the connection closes, nothing more is queued.
    killed: AtomicBool,
    /// Wakes the connection (even one stuck writing to a client that reads nothing).
    dead: tokio::sync::Notify,
}

impl Outbox {
    pub fn new() -> (Arc<Outbox>, mpsc::UnboundedReceiver<Push>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Arc::new(Outbox {
            tx,
            queued: AtomicUsize::new(0),
            over_soft: Mutex::new(None),
            killed: AtomicBool::new(false),
            dead: tokio::sync::Notify::new(),
        });
        (outbox, rx)
    }

    /// Queues a message for the connection.
    pub fn push(&self, push: Push) {
        self.send(push)
    }

    fn send(&self, push: Push) {
        if self.killed.load(Ordering::Relaxed) {
            return;
        }
        let queued = self.queued.fetch_add(push.size(), Ordering::Relaxed) + push.size();
        let over = {
            let mut since = self.over_soft.lock().unwrap_or_else(|e| e.into_inner());
            if queued > SOFT_LIMIT {
                let start = *since.get_or_insert_with(Instant::now);
                queued > HARD_LIMIT || start.elapsed() >= SOFT_SECONDS
            } else {
                *since = None;
                false
            }
        };
        if over {
            self.killed.store(true, Ordering::Relaxed);
            self.dead.notify_waiters();
            metrics::counter!("rockraft_pubsub_clients_disconnected_total").increment(1);
            return;
        }
        let _ = self.tx.send(push);
    }

    /// The connection took `push` off the queue.
    pub fn taken(&self, push: &Push) {
        self.queued.fetch_sub(push.size(), Ordering::Relaxed);
    }

    /// Closes the connection (the server's decision: its ACL user was deleted, or may no
    /// longer hear what it subscribed to); nothing more is queued.
    pub fn close(&self) {
        self.killed.store(true, Ordering::Relaxed);
        self.dead.notify_waiters();
    }

    /// Whether the connection must close (past its output limit, or closed by the server).
    pub fn killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }

    /// Resolves once the connection must close (see [`Outbox::killed`]). Any number of these
    /// may wait at once: each is woken.
    pub async fn cut_off(&self) {
        loop {
            let notified = self.dead.notified();
            tokio::pin!(notified);
            // Registered before the flag is read: a kill in between still wakes it.
            notified.as_mut().enable();
            if self.killed() {
                return;
            }
            notified.await;
        }
    }
}

/// One connection's subscriptions.
#[derive(Default)]
pub struct Subscriptions {
    pub channels: BTreeSet<Bytes>,
    pub patterns: BTreeSet<Bytes>,
    pub shard: BTreeSet<Bytes>,
}

impl Subscriptions {
    /// SUBSCRIBE and PSUBSCRIBE subscriptions (what their replies count).
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0 && self.shard.is_empty()
    }
}

type Subscribers = HashMap<Bytes, HashMap<u64, Arc<Outbox>>>;

/// The node's subscribers.
#[derive(Default)]
pub struct Hub {
    outboxes: Mutex<HashMap<u64, Arc<Outbox>>>,
    channels: Mutex<Subscribers>,
    patterns: Mutex<Subscribers>,
    shard: Mutex<Subscribers>,
}

fn lock(m: &Mutex<Subscribers>) -> std::sync::MutexGuard<'_, Subscribers> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    /// A new connection's queue.
    pub fn register(&self, client: u64) -> (Arc<Outbox>, mpsc::UnboundedReceiver<Push>) {
        let (outbox, rx) = Outbox::new();
        self.outboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(client, outbox.clone());
        (outbox, rx)
    }

    /// The queue of connection `client`, while it is connected.
    pub fn outbox(&self, client: u64) -> Option<Arc<Outbox>> {
        self.outboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&client)
            .cloned()
    }

    /// The connection closed.
    pub fn unregister(&self, client: u64) {
        self.outboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&client);
    }

    fn map(&self, space: Space, pattern: bool) -> &Mutex<Subscribers> {
        match (space, pattern) {
            (Space::Shard, _) => &self.shard,
            (Space::Global, false) => &self.channels,
            (Space::Global, true) => &self.patterns,
        }
    }

    pub fn subscribe(
        &self,
        space: Space,
        pattern: bool,
        name: &Bytes,
        client: u64,
        outbox: &Arc<Outbox>,
    ) {
        lock(self.map(space, pattern))
            .entry(name.clone())
            .or_default()
            .insert(client, outbox.clone());
    }

    pub fn unsubscribe(&self, space: Space, pattern: bool, name: &[u8], client: u64) {
        let mut map = lock(self.map(space, pattern));
        if let Some(subs) = map.get_mut(name) {
            subs.remove(&client);
            if subs.is_empty() {
                map.remove(name);
            }
        }
    }

    /// Every connection's subscriptions: client id -> (whether a pattern, channel or pattern).
    pub fn subscriptions(&self) -> HashMap<u64, Vec<(bool, Bytes)>> {
        let mut all: HashMap<u64, Vec<(bool, Bytes)>> = HashMap::new();
        for (map, pattern) in [
            (&self.channels, false),
            (&self.patterns, true),
            (&self.shard, false),
        ] {
            for (name, subs) in lock(map).iter() {
                for client in subs.keys() {
                    all.entry(*client)
                        .or_default()
                        .push((pattern, name.clone()));
                }
            }
        }
        all
    }

    /// Removes every subscription of a connection that closed.
    pub fn forget(&self, client: u64, subs: &Subscriptions) {
        for c in &subs.channels {
            self.unsubscribe(Space::Global, false, c, client);
        }
        for p in &subs.patterns {
            self.unsubscribe(Space::Global, true, p, client);
        }
        for c in &subs.shard {
            self.unsubscribe(Space::Shard, false, c, client);
        }
    }

    /// Delivers a message to this node's subscribers: how many received it.
    pub fn publish(&self, space: Space, channel: &Bytes, payload: &Bytes) -> usize {
        let mut receivers = 0;
        let mut map = lock(self.map(space, false));
        if let Some(subs) = map.get_mut(channel) {
            // A subscriber cut off at its limit receives nothing more (its connection closes).
            subs.retain(|_, outbox| !outbox.killed());
            for outbox in subs.values() {
                let push = match space {
                    Space::Global => Push::Message {
                        channel: channel.clone(),
                        payload: payload.clone(),
                    },
                    Space::Shard => Push::Shard {
                        channel: channel.clone(),
                        payload: payload.clone(),
                    },
                };
                outbox.send(push);
                receivers += 1;
            }
        }
        drop(map);
        if space == Space::Global {
            for (pattern, subs) in lock(&self.patterns).iter_mut() {
                if !crate::glob::glob_match(pattern, channel, false) {
                    continue;
                }
                subs.retain(|_, outbox| !outbox.killed());
                for outbox in subs.values() {
                    outbox.send(Push::Pattern {
                        pattern: pattern.clone(),
                        channel: channel.clone(),
                        payload: payload.clone(),
                    });
                    receivers += 1;
                }
            }
        }
        receivers
    }

    /// The channels (or shard channels) with subscribers here, matching `pattern` if given.
    pub fn channels(&self, space: Space, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let mut out: Vec<Bytes> = lock(self.map(space, false))
            .keys()
            .filter(|c| pattern.is_none_or(|p| crate::glob::glob_match(p, c, false)))
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// How many subscribers a channel has here.
    pub fn subscribers(&self, space: Space, channel: &[u8]) -> usize {
        lock(self.map(space, false))
            .get(channel)
            .map_or(0, HashMap::len)
    }

    /// How many distinct patterns are subscribed here.
    pub fn patterns(&self) -> usize {
        lock(&self.patterns).len()
    }
}

/// A publish as it travels to the other nodes: the space (0 global, 1 shard), the channel's
/// length (4 bytes, big-endian), the channel, the payload.
pub fn encode_forward(space: Space, channel: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(5 + channel.len() + payload.len());
    out.put_u8(match space {
        Space::Global => 0,
        Space::Shard => 1,
    });
    out.put_u32(channel.len() as u32);
    out.put_slice(channel);
    out.put_slice(payload);
    out.to_vec()
}

pub fn decode_forward(msg: &Bytes) -> Option<(Space, Bytes, Bytes)> {
    let space = match *msg.first()? {
        0 => Space::Global,
        1 => Space::Shard,
        _ => return None,
    };
    let len = u32::from_be_bytes(msg.get(1..5)?.try_into().ok()?) as usize;
    let end = 5usize.checked_add(len).filter(|&e| e <= msg.len())?;
    Some((space, msg.slice(5..end), msg.slice(end..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_round_trip() {
        let m = Bytes::from(encode_forward(Space::Shard, b"ch", b"hello"));
        assert_eq!(
            decode_forward(&m),
            Some((
                Space::Shard,
                Bytes::from_static(b"ch"),
                Bytes::from_static(b"hello")
            ))
        );
        assert_eq!(
            decode_forward(&Bytes::from_static(b"\x00\x00\x00\x00\x09ab")),
            None
        );
    }

    #[test]
    fn a_stalled_subscriber_is_cut_off_at_the_hard_limit() {
        let hub = Hub::default();
        let (outbox, mut rx) = Outbox::new();
        let ch = Bytes::from_static(b"ch");
        hub.subscribe(Space::Global, false, &ch, 1, &outbox);
        let payload = Bytes::from(vec![b'x'; 1 << 20]);
        for _ in 0..40 {
            hub.publish(Space::Global, &ch, &payload);
        }
        assert!(outbox.killed());
        let mut queued = 0;
        while let Ok(p) = rx.try_recv() {
            outbox.taken(&p);
            queued += 1;
        }
        assert!(queued < 33, "{queued} messages queued past the limit");
    }

    #[test]
    fn patterns_and_channels_both_receive() {
        let hub = Hub::default();
        let (outbox, mut rx) = Outbox::new();
        hub.subscribe(
            Space::Global,
            false,
            &Bytes::from_static(b"news.a"),
            1,
            &outbox,
        );
        hub.subscribe(
            Space::Global,
            true,
            &Bytes::from_static(b"news.*"),
            1,
            &outbox,
        );
        let n = hub.publish(
            Space::Global,
            &Bytes::from_static(b"news.a"),
            &Bytes::from_static(b"x"),
        );
        assert_eq!(n, 2);
        assert!(matches!(rx.try_recv(), Ok(Push::Message { .. })));
        assert!(matches!(rx.try_recv(), Ok(Push::Pattern { .. })));
        assert_eq!(
            hub.publish(Space::Shard, &Bytes::from_static(b"news.a"), &Bytes::new()),
            0
        );
    }
}
