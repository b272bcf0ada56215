//! Streams: the metadata (version, length, last and first IDs, largest deleted ID, entries
//! ever added, number of groups) in the key's value; under the version, one element per
//! entry and per consumer-group record:
//!
//! ```text
//! E <id: ms seq, 16 bytes big-endian>           -> the entry's fields and values
//! G <group>                                     -> last delivered ID, entries read, counts
//! C <len(group): u32> <group> <consumer>        -> seen time, pending count
//! P <len(group): u32> <group> <id>              -> delivery time, delivery count, consumer
//! ```
//!
//! Entries come back in ID order, groups and consumers in name order (Redis's rax order),
//! pending entries in ID order. Unlike the other collections an empty stream is kept (Redis
//! keeps it: its last ID and groups live on). Every time here (an auto ID, a delivery, a
//! seen time) is the applied entry's clock, so every replica holds the same stream.

use bytes::Bytes;

use super::{Error, Reader};
use crate::db::{Txn, Value, ELEMENTS, TYPE_STREAM};

/// A stream entry ID.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    pub fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.ms.to_be_bytes());
        b[8..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> StreamId {
        let word = |i: usize| {
            u64::from_be_bytes(
                b.get(i..i + 8)
                    .and_then(|w| w.try_into().ok())
                    .expect("corrupt stream ID"),
            )
        };
        StreamId {
            ms: word(0),
            seq: word(8),
        }
    }

    /// The next ID, None after the last possible one.
    pub fn incr(self) -> Option<StreamId> {
        match (self.seq.checked_add(1), self.ms.checked_add(1)) {
            (Some(seq), _) => Some(StreamId { ms: self.ms, seq }),
            (None, Some(ms)) => Some(StreamId { ms, seq: 0 }),
            (None, None) => None,
        }
    }

    /// The previous ID, None before 0-0.
    pub fn decr(self) -> Option<StreamId> {
        match (self.seq.checked_sub(1), self.ms.checked_sub(1)) {
            (Some(seq), _) => Some(StreamId { ms: self.ms, seq }),
            (None, Some(ms)) => Some(StreamId { ms, seq: u64::MAX }),
            (None, None) => None,
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == StreamId::MIN
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A stream's metadata.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamMeta {
    /// The version its elements are stored under (first, as in every collection's metadata).
    pub version: u64,
    /// Its number of entries (second, as in every collection's metadata).
    pub length: u64,
    /// The largest ID it ever had (XADD's floor; XSETID may raise it).
    pub last_id: StreamId,
    /// Its first entry's ID (0-0 when empty): where scans from the head seek to, past the
    /// deletions trimming leaves.
    pub first_id: StreamId,
    /// The largest ID XDEL removed.
    pub max_deleted: StreamId,
    /// How many entries were ever added.
    pub entries_added: u64,
    /// How many consumer groups it has.
    pub groups: u64,
}

const META_LEN: usize = 88;

impl StreamMeta {
    fn decode(v: &Value) -> StreamMeta {
        let d = &v.data;
        assert!(d.len() >= META_LEN, "corrupt stream metadata");
        let word = |i: usize| u64::from_be_bytes(d[i..i + 8].try_into().expect("8 bytes"));
        StreamMeta {
            version: word(0),
            length: word(8),
            last_id: StreamId::decode(&d[16..32]),
            first_id: StreamId::decode(&d[32..48]),
            max_deleted: StreamId::decode(&d[48..64]),
            entries_added: word(64),
            groups: word(72),
        }
    }

    fn encode(&self) -> Bytes {
        let mut b = Vec::with_capacity(META_LEN);
        b.extend_from_slice(&self.version.to_be_bytes());
        b.extend_from_slice(&self.length.to_be_bytes());
        b.extend_from_slice(&self.last_id.encode());
        b.extend_from_slice(&self.first_id.encode());
        b.extend_from_slice(&self.max_deleted.encode());
        b.extend_from_slice(&self.entries_added.to_be_bytes());
        b.extend_from_slice(&self.groups.to_be_bytes());
        // Reserved (a future field), so the layout can grow without a migration.
        b.extend_from_slice(&0u64.to_be_bytes());
        Bytes::from(b)
    }
}

/// A live stream as stored.
#[derive(Clone, Debug)]
pub struct Stream {
    pub value: Value,
    pub meta: StreamMeta,
}

impl Stream {
    fn of(value: Option<Value>) -> Result<Option<Stream>, Error> {
        match value {
            None => Ok(None),
            Some(v) if v.kind != TYPE_STREAM => Err(Error::WrongType),
            Some(v) => Ok(Some(Stream {
                meta: StreamMeta::decode(&v),
                value: v,
            })),
        }
    }

    /// The live stream `key`, read through `r`.
    pub fn get(r: &(impl Reader + ?Sized), key: &[u8]) -> Result<Option<Stream>, Error> {
        Self::of(r.live(key))
    }

    /// A new, empty stream (stored by [`Stream::save`]).
    pub fn create(txn: &mut Txn) -> Stream {
        let meta = StreamMeta {
            version: txn.new_version(),
            ..StreamMeta::default()
        };
        Stream {
            value: Value {
                kind: TYPE_STREAM,
                expire_at: 0,
                data: meta.encode(),
            },
            meta,
        }
    }

    /// Stores the metadata as it is now (an empty stream too).
    pub fn save(&mut self, txn: &mut Txn, key: &[u8]) {
        self.value.data = self.meta.encode();
        txn.set(key, &self.value);
    }
}

const ENTRY: u8 = b'E';
const GROUP: u8 = b'G';
const CONSUMER: u8 = b'C';
const PENDING: u8 = b'P';

fn entry_sub(id: StreamId) -> [u8; 17] {
    let mut s = [0u8; 17];
    s[0] = ENTRY;
    s[1..].copy_from_slice(&id.encode());
    s
}

/// `<tag> <len(group)> <group>`: the prefix of a group's consumers or pending entries.
fn group_prefix(tag: u8, group: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(5 + group.len() + 16);
    s.push(tag);
    s.extend_from_slice(&(group.len() as u32).to_be_bytes());
    s.extend_from_slice(group);
    s
}

/// An entry's fields and values, as stored: a count, then each length-prefixed.
pub fn encode_fields(pairs: &[Bytes]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + pairs.iter().map(|p| 4 + p.len()).sum::<usize>());
    b.extend_from_slice(&(pairs.len() as u32).to_be_bytes());
    for p in pairs {
        b.extend_from_slice(&(p.len() as u32).to_be_bytes());
        b.extend_from_slice(p);
    }
    b
}

/// The fields and values of a stored entry, in order (field, value, field, value…).
pub fn decode_fields(b: &[u8]) -> Vec<Bytes> {
    let word = |at: usize| {
        u32::from_be_bytes(
            b.get(at..at + 4)
                .and_then(|w| w.try_into().ok())
                .expect("corrupt stream entry"),
        ) as usize
    };
    let n = word(0);
    let mut out = Vec::with_capacity(n);
    let mut at = 4;
    for _ in 0..n {
        let len = word(at);
        at += 4;
        out.push(Bytes::copy_from_slice(&b[at..at + len]));
        at += len;
    }
    out
}

/// One entry: its ID and its fields and values.
pub type Entry = (StreamId, Vec<Bytes>);

/// Visits the entries with IDs in `[start, end]`, ascending (or descending with `rev`),
/// until `visit` returns false.
pub fn range(
    r: &(impl Reader + ?Sized),
    key: &[u8],
    meta: &StreamMeta,
    start: StreamId,
    end: StreamId,
    rev: bool,
    visit: &mut dyn FnMut(StreamId, &[u8]) -> bool,
) {
    if meta.length == 0 || start > end {
        return;
    }
    // Nothing lies before the first entry: seeking there skips what trimming deleted.
    let start = start.max(meta.first_id);
    let from = entry_sub(start);
    let to: Vec<u8> = match end.incr() {
        Some(after) => entry_sub(after).to_vec(),
        None => vec![ENTRY + 1],
    };
    let mut on = |sub: &[u8], v: &[u8]| visit(StreamId::decode(&sub[1..]), v);
    if rev {
        r.scan_rev_in(ELEMENTS, key, meta.version, Some(&to), &mut |sub, v| {
            if sub < from.as_slice() {
                return false;
            }
            on(sub, v)
        });
    } else {
        r.scan_between_in(ELEMENTS, key, meta.version, &from, &to, &mut on);
    }
}

/// Up to `count` entries (0: all) with IDs in `[start, end]`.
pub fn entries(
    r: &(impl Reader + ?Sized),
    key: &[u8],
    meta: &StreamMeta,
    start: StreamId,
    end: StreamId,
    rev: bool,
    count: usize,
) -> Vec<Entry> {
    let mut out = Vec::new();
    range(r, key, meta, start, end, rev, &mut |id, v| {
        out.push((id, decode_fields(v)));
        count == 0 || out.len() < count
    });
    out
}

/// Entry `id`, if the stream has it.
pub fn entry(
    r: &(impl Reader + ?Sized),
    key: &[u8],
    meta: &StreamMeta,
    id: StreamId,
) -> Option<Vec<Bytes>> {
    r.element_in(ELEMENTS, key, meta.version, &entry_sub(id))
        .map(|v| decode_fields(&v))
}

/// The last entry's ID (0-0 when empty): Redis's `streamLastValidID`.
pub fn last_entry_id(r: &(impl Reader + ?Sized), key: &[u8], meta: &StreamMeta) -> StreamId {
    let mut last = StreamId::MIN;
    range(
        r,
        key,
        meta,
        StreamId::MIN,
        StreamId::MAX,
        true,
        &mut |id, _| {
            last = id;
            false
        },
    );
    last
}

/// Appends entry `id` (greater than the stream's last ID) with `pairs`.
pub fn append(txn: &mut Txn, key: &[u8], s: &mut Stream, id: StreamId, pairs: &[Bytes]) {
    txn.put_element(
        ELEMENTS,
        key,
        s.meta.version,
        &entry_sub(id),
        &encode_fields(pairs),
    );
    s.meta.length += 1;
    s.meta.entries_added += 1;
    s.meta.last_id = id;
    if s.meta.length == 1 {
        s.meta.first_id = id;
    }
}

/// Deletes entry `id`; whether it was there. The caller fixes the first ID afterwards
/// ([`refresh_first`]).
pub fn delete(txn: &mut Txn, key: &[u8], s: &mut Stream, id: StreamId) -> bool {
    let sub = entry_sub(id);
    if txn.element(ELEMENTS, key, s.meta.version, &sub).is_none() {
        return false;
    }
    txn.del_element(ELEMENTS, key, s.meta.version, &sub);
    s.meta.length -= 1;
    true
}

/// Sets the first ID to the first entry's (0-0 when empty).
pub fn refresh_first(txn: &Txn, key: &[u8], s: &mut Stream) {
    if s.meta.length == 0 {
        s.meta.first_id = StreamId::MIN;
        return;
    }
    let mut first = StreamId::MIN;
    range(
        txn,
        key,
        &s.meta,
        StreamId::MIN,
        StreamId::MAX,
        false,
        &mut |id, _| {
            first = id;
            false
        },
    );
    s.meta.first_id = first;
}

/// How to trim a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

/// Entries Redis keeps in one radix-tree node (`stream-node-max-entries`): approximate
/// trimming (`~`) removes whole runs of this many entries from the head, as Redis removes
/// whole nodes, so a stream under its bound by less than a run is left alone.
pub const NODE_ENTRIES: u64 = 100;

/// Trims from the head; `approx` removes only whole runs of [`NODE_ENTRIES`] (the last run
/// may be shorter), `limit` (0: none) bounds how many entries go. Returns how many went.
pub fn trim(txn: &mut Txn, key: &[u8], s: &mut Stream, how: Trim, approx: bool, limit: u64) -> u64 {
    let length = s.meta.length;
    // Nothing can go: no scan (a capped stream's every XADD asks).
    if let Trim::MaxLen(max) = how {
        if length <= max || (approx && length - NODE_ENTRIES.min(length) < max) {
            return 0;
        }
    }
    let budget = if limit > 0 { limit } else { u64::MAX };
    // Whether a head of `n` entries ending at `last` may go.
    let goes = |n: u64, last: StreamId| match how {
        Trim::MaxLen(max) => length - n >= max,
        Trim::MinId(min) => last < min,
    };
    let mut doomed: Vec<StreamId> = Vec::new();
    let mut run: Vec<StreamId> = Vec::new();
    let mut stopped = false;
    range(
        &*txn,
        key,
        &s.meta,
        StreamId::MIN,
        StreamId::MAX,
        false,
        &mut |id, _| {
            if !approx {
                if !goes(doomed.len() as u64 + 1, id) {
                    return false;
                }
                doomed.push(id);
                return true;
            }
            run.push(id);
            if run.len() as u64 == NODE_ENTRIES {
                let n = (doomed.len() + run.len()) as u64;
                if n > budget || !goes(n, id) {
                    stopped = true;
                    return false;
                }
                doomed.append(&mut run);
            }
            true
        },
    );
    // The tail's shorter run.
    if approx && !stopped {
        if let Some(&last) = run.last() {
            let n = (doomed.len() + run.len()) as u64;
            if n <= budget && goes(n, last) {
                doomed.append(&mut run);
            }
        }
    }
    let removed = doomed.len() as u64;
    for id in doomed {
        txn.del_element(ELEMENTS, key, s.meta.version, &entry_sub(id));
    }
    if removed > 0 {
        s.meta.length -= removed;
        refresh_first(txn, key, s);
    }
    removed
}

/// A consumer group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Group {
    /// The last ID delivered to the group.
    pub last_id: StreamId,
    /// Entries read by the group, -1 when unknown (Redis's `entries_read`).
    pub entries_read: i64,
    /// Entries delivered and not acknowledged.
    pub pending: u64,
    pub consumers: u64,
}

impl Group {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(40);
        b.extend_from_slice(&self.last_id.encode());
        b.extend_from_slice(&self.entries_read.to_be_bytes());
        b.extend_from_slice(&self.pending.to_be_bytes());
        b.extend_from_slice(&self.consumers.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Group {
        assert!(b.len() >= 40, "corrupt consumer group");
        let word = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Group {
            last_id: StreamId::decode(&b[..16]),
            entries_read: word(16) as i64,
            pending: word(24),
            consumers: word(32),
        }
    }
}

fn group_sub(name: &[u8]) -> Vec<u8> {
    [&[GROUP][..], name].concat()
}

/// Group `name` of the stream, if it has one.
pub fn group(
    r: &(impl Reader + ?Sized),
    key: &[u8],
    meta: &StreamMeta,
    name: &[u8],
) -> Option<Group> {
    r.element_in(ELEMENTS, key, meta.version, &group_sub(name))
        .map(|v| Group::decode(&v))
}

pub fn put_group(txn: &mut Txn, key: &[u8], meta: &StreamMeta, name: &[u8], g: &Group) {
    txn.put_element(ELEMENTS, key, meta.version, &group_sub(name), &g.encode());
}

/// The stream's groups, in name order.
pub fn groups(r: &(impl Reader + ?Sized), key: &[u8], meta: &StreamMeta) -> Vec<(Bytes, Group)> {
    let mut out = Vec::new();
    r.scan_between_in(
        ELEMENTS,
        key,
        meta.version,
        &[GROUP],
        &[GROUP + 1],
        &mut |sub, v| {
            out.push((Bytes::copy_from_slice(&sub[1..]), Group::decode(v)));
            true
        },
    );
    out
}

/// Removes group `name`, its consumers and its pending entries (the caller counts it out of
/// the metadata).
pub fn destroy_group(txn: &mut Txn, key: &[u8], meta: &StreamMeta, name: &[u8]) {
    let version = meta.version;
    let mut subs = vec![group_sub(name)];
    for tag in [CONSUMER, PENDING] {
        let prefix = group_prefix(tag, name);
        let end = rockraft_raftstore::keys::prefix_end(&prefix);
        txn.scan_elements_between(ELEMENTS, key, version, &prefix, Some(&end), |sub, _| {
            subs.push(sub.to_vec());
            true
        });
    }
    for sub in subs {
        txn.del_element(ELEMENTS, key, version, &sub);
    }
}

/// A consumer of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Consumer {
    /// When it last read or claimed (the entry's clock).
    pub seen_time: u64,
    pub pending: u64,
}

impl Consumer {
    fn encode(&self) -> Vec<u8> {
        [self.seen_time.to_be_bytes(), self.pending.to_be_bytes()].concat()
    }

    fn decode(b: &[u8]) -> Consumer {
        assert!(b.len() >= 16, "corrupt consumer");
        Consumer {
            seen_time: u64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
            pending: u64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
        }
    }
}

fn consumer_sub(group: &[u8], name: &[u8]) -> Vec<u8> {
    [group_prefix(CONSUMER, group).as_slice(), name].concat()
}

pub fn consumer(
    r: &(impl Reader + ?Sized),
    key: &[u8],
    meta: &StreamMeta,
    group: &[u8],
    name: &[u8],
) -> Option<Consumer> {
    r.element_in(ELEMENTS, key, meta.version, &consumer_sub(group, name))
        .map(|v| Consumer::decode(&v))
}

pub fn put_consumer(
    txn: &mut Txn,
    key: &[u8],
    meta: &StreamMeta,
    group: &[u8],
    name: &[u8],
    c: &Consumer,
) {
    txn.put_element(
        ELEMENTS,
        key,
        meta.version,
        &consumer_sub(group, name),
        &c.encode(),
    );
}

pub fn del_consumer(txn: &mut Txn, key: &[u8], meta: &StreamMeta, group: &[u8], name: &[u8]) {
    txn.del_element(ELEMENTS, key, meta.version, &consumer_sub(group, name));
}

/// A group's consumers, in name order.
pub fn consumers(
    r: &(impl Reader + ?Sized),
    key: &[u8],
    meta: &StreamMeta,
    group: &[u8],
) -> Vec<(Bytes, Consumer)> {
    let prefix = group_prefix(CONSUMER, group);
    let end = rockraft_raftstore::keys::prefix_end(&prefix);
    let mut out = Vec::new();
    r.scan_between_in(ELEMENTS, key, meta.version, &prefix, &end, &mut |sub, v| {
        out.push((
            Bytes::copy_from_slice(&sub[prefix.len()..]),
            Consumer::decode(v),
        ));
        true
    });
    out
}

/// A pending (delivered, not acknowledged) entry of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    pub delivery_time: u64,
    pub delivery_count: u64,
    pub consumer: Bytes,
}

impl Nack {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + self.consumer.len());
        b.extend_from_slice(&self.delivery_time.to_be_bytes());
        b.extend_from_slice(&self.delivery_count.to_be_bytes());
        b.extend_from_slice(&self.consumer);
        b
    }

    fn decode(b: &[u8]) -> Nack {
        assert!(b.len() >= 16, "corrupt pending entry");
        Nack {
            delivery_time: u64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
            delivery_count: u64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
            consumer: Bytes::copy_from_slice(&b[16..]),
        }
    }
}

fn nack_sub(group: &[u8], id: StreamId) -> Vec<u8> {
    let mut s = group_prefix(PENDING, group);
    s.extend_from_slice(&id.encode());
    s
}

pub fn nack(
    r: &(impl Reader + ?Sized),
    key: &[u8],
    meta: &StreamMeta,
    group: &[u8],
    id: StreamId,
) -> Option<Nack> {
    r.element_in(ELEMENTS, key, meta.version, &nack_sub(group, id))
        .map(|v| Nack::decode(&v))
}

pub fn put_nack(
    txn: &mut Txn,
    key: &[u8],
    meta: &StreamMeta,
    group: &[u8],
    id: StreamId,
    n: &Nack,
) {
    txn.put_element(
        ELEMENTS,
        key,
        meta.version,
        &nack_sub(group, id),
        &n.encode(),
    );
}

pub fn del_nack(txn: &mut Txn, key: &[u8], meta: &StreamMeta, group: &[u8], id: StreamId) {
    txn.del_element(ELEMENTS, key, meta.version, &nack_sub(group, id));
}

/// Visits a group's pending entries with IDs from `from` through `to`, in ID order, until
/// `visit` returns false.
pub fn pending(
    r: &(impl Reader + ?Sized),
    key: &[u8],
    meta: &StreamMeta,
    group: &[u8],
    from: StreamId,
    to: StreamId,
    visit: &mut dyn FnMut(StreamId, Nack) -> bool,
) {
    if from > to {
        return;
    }
    let prefix = group_prefix(PENDING, group);
    let start = nack_sub(group, from);
    let end = match to.incr() {
        Some(after) => nack_sub(group, after),
        None => rockraft_raftstore::keys::prefix_end(&prefix),
    };
    r.scan_between_in(ELEMENTS, key, meta.version, &start, &end, &mut |sub, v| {
        visit(StreamId::decode(&sub[prefix.len()..]), Nack::decode(v))
    });
}

/// The last pending entry of a group.
pub fn last_pending(
    r: &(impl Reader + ?Sized),
    key: &[u8],
    meta: &StreamMeta,
    group: &[u8],
) -> Option<StreamId> {
    let prefix = group_prefix(PENDING, group);
    let end = rockraft_raftstore::keys::prefix_end(&prefix);
    let mut last = None;
    r.scan_rev_in(ELEMENTS, key, meta.version, Some(&end), &mut |sub, _| {
        if sub.starts_with(&prefix) {
            last = Some(StreamId::decode(&sub[prefix.len()..]));
        }
        false
    });
    last
}

/// Whether any entry in `[start, end]` was deleted by XDEL (Redis's
/// `streamRangeHasTombstones`, from the largest deleted ID).
pub fn range_has_tombstones(meta: &StreamMeta, start: StreamId, end: StreamId) -> bool {
    if meta.length == 0 || meta.max_deleted.is_zero() || meta.first_id > meta.max_deleted {
        return false;
    }
    start <= meta.max_deleted && meta.max_deleted <= end
}

/// An ID's position counted from the first entry ever added, when it can be known (Redis's
/// `streamEstimateDistanceFromFirstEverEntry`); -1 when not.
pub fn estimate_distance(meta: &StreamMeta, id: StreamId) -> i64 {
    if meta.entries_added == 0 {
        return 0;
    }
    let added = meta.entries_added as i64;
    if meta.length == 0 && id <= meta.last_id {
        return added;
    }
    match id.cmp(&meta.last_id) {
        std::cmp::Ordering::Equal => return added,
        std::cmp::Ordering::Greater => return -1,
        std::cmp::Ordering::Less => {}
    }
    if meta.max_deleted.is_zero() || meta.max_deleted < meta.first_id {
        match id.cmp(&meta.first_id) {
            std::cmp::Ordering::Less => return added - meta.length as i64,
            std::cmp::Ordering::Equal => return added - meta.length as i64 + 1,
            std::cmp::Ordering::Greater => {}
        }
    }
    -1
}

/// A group's lag (entries not yet delivered to it), when it can be known.
pub fn lag(meta: &StreamMeta, g: &Group) -> Option<i64> {
    if meta.entries_added == 0 {
        return Some(0);
    }
    if g.entries_read != -1 && !range_has_tombstones(meta, g.last_id, StreamId::MAX) {
        return Some(meta.entries_added as i64 - g.entries_read);
    }
    let read = estimate_distance(meta, g.last_id);
    (read != -1).then(|| meta.entries_added as i64 - read)
}

/// Moves a group past entry `id` as it is delivered (Redis's read-counter bookkeeping).
pub fn note_delivered(meta: &StreamMeta, g: &mut Group, id: StreamId) {
    if id <= g.last_id {
        return;
    }
    if g.entries_read != -1 && !range_has_tombstones(meta, id, StreamId::MAX) {
        g.entries_read += 1;
    } else if meta.entries_added > 0 {
        g.entries_read = estimate_distance(meta, id);
    }
    g.last_id = id;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_step_and_order_as_128_bit_numbers() {
        let id = StreamId::new(5, u64::MAX);
        assert_eq!(id.incr(), Some(StreamId::new(6, 0)));
        assert_eq!(StreamId::new(6, 0).decr(), Some(id));
        assert_eq!(StreamId::MAX.incr(), None);
        assert_eq!(StreamId::MIN.decr(), None);
        assert!(StreamId::new(1, 9) < StreamId::new(2, 0));
        assert_eq!(StreamId::decode(&id.encode()), id);
        assert!(id.encode() < StreamId::new(6, 0).encode());
        assert_eq!(id.to_string(), "5-18446744073709551615");
    }

    #[test]
    fn fields_round_trip_with_empty_and_binary_values() {
        let pairs = [Bytes::from("f"), Bytes::new(), Bytes::from(vec![0, 255])];
        assert_eq!(decode_fields(&encode_fields(&pairs)), pairs.to_vec());
    }

    #[test]
    fn read_counters_follow_redis() {
        let mut meta = StreamMeta {
            length: 3,
            entries_added: 3,
            first_id: StreamId::new(1, 0),
            last_id: StreamId::new(3, 0),
            ..StreamMeta::default()
        };
        assert_eq!(estimate_distance(&meta, StreamId::new(0, 5)), 0);
        assert_eq!(estimate_distance(&meta, StreamId::new(1, 0)), 1);
        assert_eq!(estimate_distance(&meta, StreamId::new(2, 0)), -1);
        assert_eq!(estimate_distance(&meta, StreamId::new(3, 0)), 3);
        assert_eq!(estimate_distance(&meta, StreamId::new(4, 0)), -1);
        let mut g = Group {
            last_id: StreamId::MIN,
            entries_read: -1,
            pending: 0,
            consumers: 0,
        };
        assert_eq!(lag(&meta, &g), Some(3));
        note_delivered(&meta, &mut g, StreamId::new(1, 0));
        assert_eq!(g.entries_read, 1);
        note_delivered(&meta, &mut g, StreamId::new(2, 0));
        assert_eq!((g.entries_read, lag(&meta, &g)), (2, Some(1)));
        meta.max_deleted = StreamId::new(3, 0);
        assert!(range_has_tombstones(
            &meta,
            StreamId::new(2, 0),
            StreamId::MAX
        ));
    }
}
