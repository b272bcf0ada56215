//! The data model on RocksDB: one `default`-family entry per user key, whose value carries the
//! key's type and absolute expiry time, and an `expire`-family index of keys with a TTL. A
//! collection's value is its metadata; its elements live in the `element` family under the
//! collection's version (layouts: `rockraft_raftstore::keys`; the types: `crate::types`).
//!
//! Value layout: `[type: u8][expire_at_ms: u64 BE, 0 = none][payload]`.
//! The expiry index may hold stale entries (a key overwritten without a TTL keeps its old index
//! entry); the expirer checks each entry against the value before deleting anything.
//!
//! [`Db`] reads committed data (a [`View`] is a consistent snapshot of it); [`Txn`] is the
//! state machine's access while it applies one entry.

use std::cell::RefCell;
use std::sync::Arc;

use bytes::Bytes;
use rockraft_raftstore::keys::{
    self, CF_DATA, CF_ELEMENT, CF_EXPIRE, CF_MARK, CF_RAFT, CF_SCRIPT, FLUSH_CFS, VALUE_HEADER_LEN,
};
use rockraft_raftstore::{ApplyContext, Engine};
use rocksdb::{Direction, IteratorMode, ReadOptions};

pub use rockraft_raftstore::keys::TYPE_STRING;
/// Type tags of the collections (stored in the value's first byte; never renumber).
pub const TYPE_HASH: u8 = 1;
pub const TYPE_LIST: u8 = 2;
pub const TYPE_SET: u8 = 3;
pub const TYPE_ZSET: u8 = 4;
pub const TYPE_STREAM: u8 = 5;

const HEADER_LEN: usize = VALUE_HEADER_LEN;

/// A decoded value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    pub kind: u8,
    /// Absolute expiry in ms since the Unix epoch; 0 when the key has no TTL.
    pub expire_at: u64,
    pub data: Bytes,
}

impl Value {
    pub fn string(data: impl Into<Bytes>, expire_at: u64) -> Value {
        Value {
            kind: TYPE_STRING,
            expire_at,
            data: data.into(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER_LEN + self.data.len());
        v.push(self.kind);
        v.extend_from_slice(&self.expire_at.to_be_bytes());
        v.extend_from_slice(&self.data);
        v
    }

    pub fn decode(raw: &[u8]) -> Option<Value> {
        let at: [u8; 8] = raw.get(1..HEADER_LEN)?.try_into().ok()?;
        Some(Value {
            kind: raw[0],
            expire_at: u64::from_be_bytes(at),
            data: Bytes::copy_from_slice(&raw[HEADER_LEN..]),
        })
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now_ms
    }

    pub fn type_name(&self) -> &'static str {
        match self.kind {
            TYPE_STRING => "string",
            TYPE_HASH => "hash",
            TYPE_LIST => "list",
            TYPE_SET => "set",
            TYPE_ZSET => "zset",
            TYPE_STREAM => "stream",
            _ => "unknown",
        }
    }

    /// Whether this is a collection (its payload is metadata; elements live apart).
    pub fn is_collection(&self) -> bool {
        self.kind != TYPE_STRING
    }
}

/// Reads the expiry time of an encoded value without copying its payload.
fn raw_expire_at(raw: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(raw.get(1..HEADER_LEN)?.try_into().ok()?))
}

fn corrupt(key: &[u8]) -> ! {
    panic!(
        "corrupt value stored for key {:?}",
        String::from_utf8_lossy(key)
    )
}

/// Reads of committed data (the caller has done whatever makes the read linearizable).
#[derive(Clone)]
pub struct Db {
    engine: Arc<Engine>,
}

impl Db {
    pub fn new(engine: Arc<Engine>) -> Db {
        Db { engine }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The stored ACL users: (name, rules), by name.
    pub fn users(&self) -> Vec<(String, Vec<u8>)> {
        let (start, end) = crate::acl::user_range();
        let mut out = Vec::new();
        self.view().script_entries(&start, &end, &mut |k, v| {
            out.push((String::from_utf8_lossy(&k[1..]).into_owned(), v.to_vec()));
            true
        });
        out
    }

    /// The live value of `key` at `now_ms`; expired keys are absent.
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<Value> {
        let raw = self
            .engine
            .get(CF_DATA, &keys::data_key(key))
            .unwrap_or_else(|e| panic!("read failed: {e}"))?;
        let v = Value::decode(&raw).unwrap_or_else(|| corrupt(key));
        (!v.is_expired(now_ms)).then_some(v)
    }

    /// A consistent snapshot of the committed data, for reads that look at more than one
    /// entry (a collection's metadata and its elements).
    pub fn view(&self) -> View<'_> {
        View {
            engine: &self.engine,
            snapshot: self.engine.db().snapshot(),
            seen: RefCell::new(Vec::new()),
        }
    }

    /// Runs `read` on a [`View`] and answers with its result, unless a collection it read was
    /// deleted or replaced meanwhile: its elements may then be dropped by a compaction even
    /// though the view still sees them (compaction filters ignore snapshots), so the read runs
    /// again on a newer view. Any view taken after the read arrived is a valid linearization
    /// point for it.
    pub fn read<T>(&self, read: impl Fn(&View) -> T) -> T {
        for _ in 0..4 {
            let view = self.view();
            let out = read(&view);
            if view.still_current() {
                return out;
            }
        }
        // Four replacements of the same keys in a row: the last answer is as good as any.
        read(&self.view())
    }

    /// Visits live keys in storage order, starting at data key `from` (inclusive); the visitor
    /// returns false to stop. Returns the data key where the visit stopped, if it stopped early.
    pub fn for_each_key(
        &self,
        from: &[u8],
        now_ms: u64,
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let it = self.engine.db().iterator_cf(
            self.engine.cf(CF_DATA),
            IteratorMode::From(from, Direction::Forward),
        );
        for item in it {
            let (k, v) = item.unwrap_or_else(|e| panic!("scan failed: {e}"));
            if raw_expire_at(&v).is_some_and(|at| at != 0 && at <= now_ms) {
                continue;
            }
            if !visit(keys::user_key(&k), &v) {
                return Some(k.to_vec());
            }
        }
        None
    }

    /// (keys, keys with a TTL) alive at `now_ms`.
    pub fn count(&self, now_ms: u64) -> (u64, u64) {
        let (mut n, mut with_ttl) = (0, 0);
        self.for_each_key(&[], now_ms, |_, v| {
            n += 1;
            if raw_expire_at(v).is_some_and(|at| at != 0) {
                with_ttl += 1;
            }
            true
        });
        (n, with_ttl)
    }

    /// Up to `limit` (expiry time, user key) pairs of the expiry index due at `now_ms`.
    pub fn due_expirations(&self, now_ms: u64, limit: usize) -> Vec<(u64, Vec<u8>)> {
        let it = self
            .engine
            .db()
            .iterator_cf(self.engine.cf(CF_EXPIRE), IteratorMode::Start);
        let mut out = Vec::new();
        for item in it {
            let Ok((k, _)) = item else { break };
            match keys::parse_expire_key(&k) {
                Some((at, key)) if at <= now_ms => out.push((at, key.to_vec())),
                _ => break,
            }
            if out.len() >= limit {
                break;
            }
        }
        out
    }
}

/// The state machine's view of the data while it applies one entry: reads see earlier writes
/// of the same apply round; "now" is the proposer's clock from the entry.
///
/// Every user key the entry changes gets the entry's index as its modification mark (family
/// `mark`, written by [`Txn::finish`]): what WATCH compares. Deleting a key that had already
/// expired is no change (as in Redis), and FLUSHALL marks nothing: a watcher of a key that was
/// live sees it gone.
pub struct Txn<'c, 'e> {
    ctx: &'c mut ApplyContext<'e>,
    /// User keys changed by this entry (may repeat).
    touched: Vec<Vec<u8>>,
    /// The node, when it is running (not while it replays its log at start): what reads in a
    /// transaction need besides the data (SCAN cursors, encoding thresholds).
    node: Option<&'c std::sync::OnceLock<std::sync::Weak<crate::Shared>>>,
    /// Keyspace notifications are on: commands record what they change.
    notifying: bool,
    /// While a command runs with notifications on: the keys it changed so far, and whether
    /// each existed before it.
    changes: Option<Vec<(Vec<u8>, bool)>>,
    /// The keyspace events of this entry's commands, in order.
    events: Vec<crate::notify::Event>,
    /// Streams that got an entry (or lost a group): their blocked readers are woken.
    ready: Vec<Vec<u8>>,
    /// The ACL user a script of this entry runs as (`rockraft.as`): its `redis.call`s are
    /// checked against the user's rules as of this entry.
    acl_user: Option<std::sync::Arc<crate::acl::User>>,
}

/// Decodes a modification mark.
fn decode_mark(raw: Option<Vec<u8>>) -> u64 {
    raw.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Bits of a version below the entry's log index: how many collections one entry can create.
const VERSION_SEQ_BITS: u32 = 20;

impl<'c, 'e> Txn<'c, 'e> {
    /// The ACL user this entry's script runs as, if it is restricted.
    pub fn acl_user(&self) -> Option<&crate::acl::User> {
        self.acl_user.as_deref()
    }

    pub fn acl_user_arc(&self) -> Option<std::sync::Arc<crate::acl::User>> {
        self.acl_user.clone()
    }

    pub fn set_acl_user(&mut self, user: Option<std::sync::Arc<crate::acl::User>>) {
        self.acl_user = user;
    }

    pub fn new(ctx: &'c mut ApplyContext<'e>) -> Self {
        Txn {
            ctx,
            touched: Vec::new(),
            node: None,
            notifying: false,
            changes: None,
            events: Vec::new(),
            ready: Vec::new(),
            acl_user: None,
        }
    }

    /// Turns keyspace notifications on for this entry.
    pub fn notify(mut self, on: bool) -> Self {
        self.notifying = on;
        self
    }

    /// Runs one command's `apply`, and records its keyspace events when notifications are
    /// on (EXEC, scripts and the state machine run every command through here).
    pub fn apply_command(
        &mut self,
        name: &str,
        apply: crate::command::ApplyFn,
        argv: &[bytes::Bytes],
    ) -> rockraft_resp::Reply {
        if !self.notifying || !crate::notify::emits(name) {
            return apply(self, argv);
        }
        let outer = self.changes.replace(Vec::new());
        let reply = apply(self, argv);
        let changed = std::mem::replace(&mut self.changes, outer).unwrap_or_default();
        let changes: Vec<crate::notify::Change> = changed
            .into_iter()
            .map(|(key, before)| {
                let after = self.get(&key).is_some();
                (key, before, after)
            })
            .collect();
        let events = crate::notify::events(name, argv, &changes, &reply);
        self.events.extend(events);
        reply
    }

    /// Records a keyspace event a command works out itself (the stream commands), when
    /// notifications are on.
    pub fn event(&mut self, class: u32, event: &'static str, key: &[u8]) {
        if self.notifying {
            self.events.push((class, event, key.to_vec()));
        }
    }

    /// Marks stream `key` as having something new for its blocked readers.
    pub fn signal_ready(&mut self, key: &[u8]) {
        self.ready.push(key.to_vec());
    }

    /// The streams marked by [`Txn::signal_ready`] (taken).
    pub fn take_ready(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.ready)
    }

    /// The keyspace events of the entry so far (taken).
    pub fn take_events(&mut self) -> Vec<crate::notify::Event> {
        std::mem::take(&mut self.events)
    }

    /// A transaction that can reach the running node (see [`Txn::node`]).
    pub fn with_node(
        ctx: &'c mut ApplyContext<'e>,
        node: &'c std::sync::OnceLock<std::sync::Weak<crate::Shared>>,
    ) -> Self {
        Txn {
            node: Some(node),
            ..Txn::new(ctx)
        }
    }

    /// The running node, if any.
    pub fn node(&self) -> Option<std::sync::Arc<crate::Shared>> {
        self.node?.get()?.upgrade()
    }

    /// The log index of the entry being applied.
    pub fn index(&self) -> u64 {
        self.ctx.index()
    }

    fn touch(&mut self, key: &[u8]) {
        self.touch_known(key, None);
    }

    /// [`Txn::touch`], for a caller that knows whether the key was live before it changed
    /// it (one that already deleted it).
    fn touch_known(&mut self, key: &[u8], existed: Option<bool>) {
        if self.touched.last().map(Vec::as_slice) != Some(key) {
            self.touched.push(key.to_vec());
        }
        if self
            .changes
            .as_ref()
            .is_some_and(|c| !c.iter().any(|(k, _)| k == key))
        {
            let before = existed.unwrap_or_else(|| self.get(key).is_some());
            if let Some(c) = self.changes.as_mut() {
                c.push((key.to_vec(), before));
            }
        }
    }

    /// The modification mark of `key`: the index of the last entry that changed it, or 0 when
    /// none is recorded (never changed, or so long ago that it no longer matters).
    pub fn mark(&self, key: &[u8]) -> u64 {
        decode_mark(self.ctx.get(CF_MARK, &keys::data_key(key)))
    }

    /// The value under `key` (a `keys::script_key`, `library_key` or `function_key`) in the
    /// scripts' column family, as of this round.
    pub fn script_entry(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.ctx.get(CF_SCRIPT, key)
    }

    /// Visits the scripts' column family in `[start, end)`: (key, value).
    pub fn script_entries(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
        self.ctx.scan(CF_SCRIPT, start, end, |k, v| visit(k, v));
    }

    /// Sets `key` in the scripts' column family.
    pub fn put_script_entry(&mut self, key: &[u8], value: &[u8]) {
        self.ctx.put(CF_SCRIPT, key, value);
    }

    /// Deletes `key` from the scripts' column family.
    pub fn delete_script_entry(&mut self, key: &[u8]) {
        self.ctx.delete(CF_SCRIPT, key);
    }

    /// The body of the cached script `sha` (40 lowercase hex digits), if any.
    pub fn script(&self, sha: &[u8]) -> Option<Vec<u8>> {
        self.script_entry(&keys::script_key(sha))
    }

    /// Adds a script to the replicated cache.
    pub fn put_script(&mut self, sha: &[u8], body: &[u8]) {
        self.put_script_entry(&keys::script_key(sha), body);
    }

    /// Deletes every entry of the scripts' column family in `[start, end)`, one by one (a
    /// range deletion here would read as the whole family cleared).
    pub fn clear_script_entries(&mut self, (start, end): (Vec<u8>, Vec<u8>)) {
        let mut found = Vec::new();
        self.ctx.scan(CF_SCRIPT, &start, &end, |k, _| {
            found.push(k.to_vec());
            true
        });
        for k in found {
            self.ctx.delete(CF_SCRIPT, &k);
        }
    }

    /// SCRIPT FLUSH: empties the script cache.
    pub fn flush_scripts(&mut self) {
        self.clear_script_entries(keys::script_range());
    }

    /// Writes the modification marks of the keys this entry changed; returns those keys.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        let mark = self.ctx.index().to_be_bytes();
        for key in &touched {
            self.ctx
                .put_owned(CF_MARK, keys::data_key(key), mark.to_vec());
        }
        touched
    }

    /// Visits live keys in storage order from data key `from` (inclusive), as of this round's
    /// writes: (user key, stored value); `visit` returns false to stop. Returns the data key
    /// where the visit stopped, if it stopped early.
    pub fn for_each_key(
        &self,
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let now = self.now_ms();
        let end = keys::slot_start(rockraft_raftstore::slot::SLOT_COUNT);
        let mut stopped = None;
        self.ctx.scan(CF_DATA, from, &end, |k, v| {
            if raw_expire_at(v).is_some_and(|at| at != 0 && at <= now) {
                return true;
            }
            if !visit(keys::user_key(k), v) {
                stopped = Some(k.to_vec());
                return false;
            }
            true
        });
        stopped
    }

    /// A version for a collection this entry creates (or re-creates): from the entry's log
    /// index and the collection's position in it, so every replica picks the same one, and a
    /// key's new version is always above any it had before.
    pub fn new_version(&mut self) -> u64 {
        let seq = self.ctx.next_seq().min((1 << VERSION_SEQ_BITS) - 1);
        (self.ctx.index() << VERSION_SEQ_BITS) | seq
    }

    /// Element `sub` of version `version` of collection `key`.
    pub fn element(&self, cf: &str, key: &[u8], version: u64, sub: &[u8]) -> Option<Vec<u8>> {
        self.ctx.get(cf, &keys::element_key(key, version, sub))
    }

    pub fn put_element(&mut self, cf: &str, key: &[u8], version: u64, sub: &[u8], value: &[u8]) {
        self.touch(key);
        self.ctx
            .put_owned(cf, keys::element_key(key, version, sub), value.to_vec());
    }

    pub fn del_element(&mut self, cf: &str, key: &[u8], version: u64, sub: &[u8]) {
        self.touch(key);
        self.ctx.delete(cf, &keys::element_key(key, version, sub));
    }

    /// Visits the elements of version `version` of `key` in sub-key order, starting at
    /// `from` (a sub-key, inclusive): (sub-key, value); `visit` returns false to stop.
    pub fn scan_elements(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        from: &[u8],
        visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) {
        self.scan_elements_between(cf, key, version, from, None, visit)
    }

    /// [`Txn::scan_elements`] up to sub-key `to` (exclusive) when given. A bound keeps the
    /// scan from walking the deletions beyond it (a list's popped tail, say).
    pub fn scan_elements_between(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        from: &[u8],
        to: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) {
        let prefix = keys::element_prefix(key, version);
        let mut start = prefix.clone();
        start.extend_from_slice(from);
        let end = match to {
            Some(to) => [&prefix[..], to].concat(),
            None => keys::prefix_end(&prefix),
        };
        self.ctx
            .scan(cf, &start, &end, |k, v| visit(&k[prefix.len()..], v));
    }

    /// Visits the elements of version `version` of `key` in descending sub-key order, from
    /// just below `before` (a sub-key, exclusive) or from the last: (sub-key, value).
    pub fn scan_elements_rev(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        before: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) {
        let prefix = keys::element_prefix(key, version);
        let end = match before {
            Some(b) => [&prefix[..], b].concat(),
            None => keys::prefix_end(&prefix),
        };
        self.ctx
            .scan_rev(cf, &prefix, &end, |k, v| visit(&k[prefix.len()..], v));
    }

    pub fn now_ms(&self) -> u64 {
        self.ctx.now_ms()
    }

    /// The value stored under `key`, expired or not.
    pub fn get_raw(&self, key: &[u8]) -> Option<Value> {
        let raw = self.ctx.get(CF_DATA, &keys::data_key(key))?;
        Some(Value::decode(&raw).unwrap_or_else(|| corrupt(key)))
    }

    /// The live value of `key` as of the entry's time.
    pub fn get(&self, key: &[u8]) -> Option<Value> {
        self.get_raw(key).filter(|v| !v.is_expired(self.now_ms()))
    }

    /// Stores `value`; a value already expired at the entry's time is a delete.
    pub fn set(&mut self, key: &[u8], value: &Value) {
        self.touch(key);
        if value.is_expired(self.now_ms()) {
            self.ctx.delete(CF_DATA, &keys::data_key(key));
            return;
        }
        self.ctx
            .put_owned(CF_DATA, keys::data_key(key), value.encode());
        if value.expire_at != 0 {
            self.ctx
                .put(CF_EXPIRE, &keys::expire_key(value.expire_at, key), &[]);
        }
    }

    /// Deletes `key`; true when a live key was deleted.
    pub fn del(&mut self, key: &[u8]) -> bool {
        match self.get_raw(key) {
            None => false,
            Some(v) => {
                self.ctx.delete(CF_DATA, &keys::data_key(key));
                let live = !v.is_expired(self.now_ms());
                if live {
                    self.touch_known(key, Some(true));
                }
                live
            }
        }
    }

    /// Deletes `key` if it is expired at the entry's time, and the index entry `(at, key)`
    /// either way: the expirer's entry point.
    pub fn del_if_expired(&mut self, at: u64, key: &[u8]) -> bool {
        self.ctx.delete(CF_EXPIRE, &keys::expire_key(at, key));
        match self.get_raw(key) {
            Some(v) if v.is_expired(self.now_ms()) => {
                self.ctx.delete(CF_DATA, &keys::data_key(key));
                if self.notifying {
                    self.events
                        .push((crate::notify::EXPIRED, "expired", key.to_vec()));
                }
                true
            }
            _ => false,
        }
    }

    /// Removes every key, element and index entry (not the modification marks).
    pub fn flush(&mut self) {
        for cf in FLUSH_CFS {
            let (start, end) = keys::data_cf_range(cf);
            self.ctx.clear(cf, &start, &end);
        }
    }
}

impl Db {
    /// Up to `limit` live keys of hash slot `slot`, in order.
    pub fn keys_in_slot(&self, slot: u16, limit: usize, now_ms: u64) -> Vec<Vec<u8>> {
        let start = keys::slot_start(slot);
        let end = keys::slot_start(slot + 1);
        let mut out = Vec::new();
        let it = self.engine.db().iterator_cf(
            self.engine.cf(CF_DATA),
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in it {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.unwrap_or_else(|e| panic!("scan failed: {e}"));
            if k[..] >= end[..] {
                break;
            }
            if raw_expire_at(&v).is_some_and(|at| at != 0 && at <= now_ms) {
                continue;
            }
            out.push(keys::user_key(&k).to_vec());
        }
        out
    }
}

impl Db {
    /// SHA-1 over every stored key and value (type, expiry and payload) in storage order, and
    /// over each collection's reachable elements and score-index entries (not the garbage of
    /// old versions, which compactions drop at different times on different nodes). Nodes that
    /// applied the same log prefix have the same digest; all zeros when there is no key.
    /// Expired keys still stored count: their deletion is itself a log entry.
    pub fn digest(&self) -> String {
        let mut h = sha1_smol::Sha1::new();
        let mut any = false;
        let view = self.view();
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&view.snapshot);
        let it =
            self.engine
                .db()
                .iterator_cf_opt(self.engine.cf(CF_DATA), opts, IteratorMode::Start);
        let mut feed = |k: &[u8], v: &[u8]| {
            h.update(&(k.len() as u64).to_be_bytes());
            h.update(k);
            h.update(&(v.len() as u64).to_be_bytes());
            h.update(v);
        };
        for item in it {
            let (k, v) = item.unwrap_or_else(|e| panic!("scan failed: {e}"));
            any = true;
            feed(&k, &v);
            if let Some(version) = keys::collection_version(&v) {
                let user_key = keys::user_key(&k);
                for cf in keys::ELEMENT_CFS {
                    view.scan_prefix(cf, &keys::element_prefix(user_key, version), &mut feed);
                }
            }
        }
        // The script cache is replicated state too (but alone it is no data, as in Redis).
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&view.snapshot);
        let scripts =
            self.engine
                .db()
                .iterator_cf_opt(self.engine.cf(CF_SCRIPT), opts, IteratorMode::Start);
        for item in scripts {
            let (k, v) = item.unwrap_or_else(|e| panic!("scan failed: {e}"));
            feed(&k, &v);
        }
        if any {
            h.digest().to_string()
        } else {
            "0".repeat(40)
        }
    }
}

/// A consistent snapshot of the committed data (see [`Db::view`]). It remembers the collection
/// versions it read, so [`Db::read`] can tell whether they are still current.
pub struct View<'a> {
    engine: &'a Engine,
    snapshot: rocksdb::SnapshotWithThreadMode<'a, rocksdb::DB>,
    seen: RefCell<Vec<(Vec<u8>, u64)>>,
}

impl View<'_> {
    /// The live value of `key` at `now_ms`; expired keys are absent.
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<Value> {
        let data_key = keys::data_key(key);
        let raw = self
            .snapshot
            .get_cf(self.engine.cf(CF_DATA), &data_key)
            .unwrap_or_else(|e| panic!("read failed: {e}"))?;
        if let Some(version) = keys::collection_version(&raw) {
            self.seen.borrow_mut().push((data_key, version));
        }
        let v = Value::decode(&raw).unwrap_or_else(|| corrupt(key));
        (!v.is_expired(now_ms)).then_some(v)
    }

    /// The value under `key` in the scripts' column family (see [`Txn::script_entry`]).
    pub fn script_entry(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.snapshot
            .get_cf(self.engine.cf(CF_SCRIPT), key)
            .unwrap_or_else(|e| panic!("read failed: {e}"))
    }

    /// The body of the cached script `sha` (see [`Txn::script`]).
    pub fn script(&self, sha: &[u8]) -> Option<Vec<u8>> {
        self.script_entry(&keys::script_key(sha))
    }

    /// Visits the scripts' column family in `[start, end)` (see [`Txn::script_entries`]).
    pub fn script_entries(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
        self.scan_range(CF_SCRIPT, start, end, visit);
    }

    /// The modification mark of `key` (see [`Txn::mark`]).
    pub fn mark(&self, key: &[u8]) -> u64 {
        decode_mark(
            self.snapshot
                .get_cf(self.engine.cf(CF_MARK), keys::data_key(key))
                .unwrap_or_else(|e| panic!("read failed: {e}")),
        )
    }

    /// The apply index of the data group as of this view: the view holds exactly the entries
    /// up to it.
    pub fn applied_index(&self) -> u64 {
        use protobuf::Message as _;
        self.snapshot
            .get_cf(
                self.engine.cf(CF_RAFT),
                keys::apply_state_key(rockraft_raftstore::DATA_GROUP_ID),
            )
            .unwrap_or_else(|e| panic!("read failed: {e}"))
            .and_then(|raw| rockraft_raftstore::proto::ApplyState::parse_from_bytes(&raw).ok())
            .map_or(0, |s| s.applied_index)
    }

    /// Visits live keys at `now_ms` in storage order from data key `from` (see
    /// [`Db::for_each_key`]).
    pub fn for_each_key(
        &self,
        from: &[u8],
        now_ms: u64,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let mut stopped = None;
        let end = keys::slot_start(rockraft_raftstore::slot::SLOT_COUNT);
        self.scan_range(CF_DATA, from, &end, |k, v| {
            if raw_expire_at(v).is_some_and(|at| at != 0 && at <= now_ms) {
                return true;
            }
            if !visit(keys::user_key(k), v) {
                stopped = Some(k.to_vec());
                return false;
            }
            true
        });
        stopped
    }

    /// Element `sub` of version `version` of `key`.
    pub fn element(&self, cf: &str, key: &[u8], version: u64, sub: &[u8]) -> Option<Vec<u8>> {
        self.snapshot
            .get_cf(self.engine.cf(cf), keys::element_key(key, version, sub))
            .unwrap_or_else(|e| panic!("read failed: {e}"))
    }

    /// Visits the elements of version `version` of `key` in sub-key order from sub-key `from`
    /// (inclusive): (sub-key, value); `visit` returns false to stop.
    pub fn scan_elements(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        from: &[u8],
        visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) {
        self.scan_elements_between(cf, key, version, from, None, visit)
    }

    /// [`View::scan_elements`] up to sub-key `to` (exclusive) when given.
    pub fn scan_elements_between(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        from: &[u8],
        to: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) {
        let prefix = keys::element_prefix(key, version);
        let mut start = prefix.clone();
        start.extend_from_slice(from);
        let end = match to {
            Some(to) => [&prefix[..], to].concat(),
            None => keys::prefix_end(&prefix),
        };
        self.scan_range(cf, &start, &end, |k, v| visit(&k[prefix.len()..], v));
    }

    /// [`View::scan_elements`] in descending sub-key order, from just below `before`
    /// (exclusive) or from the last.
    pub fn scan_elements_rev(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        before: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) {
        let prefix = keys::element_prefix(key, version);
        let end = match before {
            Some(b) => [&prefix[..], b].concat(),
            None => keys::prefix_end(&prefix),
        };
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&self.snapshot);
        opts.set_iterate_lower_bound(prefix.clone());
        opts.set_iterate_upper_bound(end);
        let it = self
            .engine
            .db()
            .iterator_cf_opt(self.engine.cf(cf), opts, IteratorMode::End);
        for item in it {
            let (k, v) = item.unwrap_or_else(|e| panic!("scan failed: {e}"));
            if !visit(&k[prefix.len()..], &v) {
                return;
            }
        }
    }

    fn scan_prefix(&self, cf: &str, prefix: &[u8], visit: &mut impl FnMut(&[u8], &[u8])) {
        self.scan_range(cf, prefix, &keys::prefix_end(prefix), |k, v| {
            visit(k, v);
            true
        });
    }

    fn scan_range(
        &self,
        cf: &str,
        start: &[u8],
        end: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) {
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&self.snapshot);
        opts.set_iterate_upper_bound(end.to_vec());
        let it = self.engine.db().iterator_cf_opt(
            self.engine.cf(cf),
            opts,
            IteratorMode::From(start, Direction::Forward),
        );
        for item in it {
            let (k, v) = item.unwrap_or_else(|e| panic!("scan failed: {e}"));
            if !visit(&k, &v) {
                return;
            }
        }
    }

    /// Whether every collection this view read still has the version it read.
    fn still_current(&self) -> bool {
        self.seen.borrow().iter().all(|(data_key, version)| {
            let now = self
                .engine
                .get(CF_DATA, data_key)
                .unwrap_or_else(|e| panic!("read failed: {e}"));
            now.as_deref().and_then(keys::collection_version) == Some(*version)
        })
    }
}

/// The element family of a collection type's elements.
pub const ELEMENTS: &str = CF_ELEMENT;
/// The family of the sorted sets' score index.
pub const SCORES: &str = rockraft_raftstore::keys::CF_SCORE;
