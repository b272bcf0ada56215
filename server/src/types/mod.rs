//! The data types on RocksDB, one module per type (kvrocks' `types/`): each turns an operation
//! on a collection into reads and writes of its metadata (the key's value) and its elements.
//! A type never sees RESP: it returns data or an [`Error`], and the command files make replies.
//!
//! Every collection has a version, chosen when the entry that creates it is applied (see
//! [`Txn::new_version`]). Its elements are stored under that version, so deleting, overwriting
//! or expiring a collection of any size writes only its metadata; the old elements become
//! unreachable at once and are dropped by compactions later. An emptied collection is deleted,
//! as in Redis.

pub mod geohash;
pub mod hash;
pub mod hll;
pub mod list;
pub mod set;
pub mod stream;
pub mod zset;

use bytes::Bytes;

use crate::db::{Txn, Value, View, ELEMENTS, TYPE_LIST};

/// Why an operation on a collection failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The key holds another type.
    WrongType,
    /// The stored element is not an integer (`what` names the type, e.g. "hash").
    NotInteger(&'static str),
    /// The stored element is not a float.
    NotFloat(&'static str),
    /// An integer increment would overflow.
    Overflow,
    /// A float increment would give NaN or an infinity.
    NanOrInfinity,
    /// The key does not exist (LSET).
    NoSuchKey,
    /// An index past either end (LSET).
    IndexOutOfRange,
    /// A score would be NaN (ZADD INCR of inf and -inf).
    ScoreNan,
}

/// A collection's metadata: the payload of its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// The version its elements are stored under.
    pub version: u64,
    /// Its number of elements (never 0 for a stored collection).
    pub size: u64,
    /// A list's first index: its elements are at `head..head + size` (0 for other types).
    pub head: u64,
    /// A set's or sorted set's end hints ([`hints`]): which of them it has.
    pub hints: u64,
}

const META_LEN: usize = 24;

impl Meta {
    pub fn decode(v: &Value) -> Meta {
        let optional = |i: usize| {
            v.data
                .get(i * 8..i * 8 + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
        };
        let field =
            |i: usize| optional(i).unwrap_or_else(|| panic!("corrupt {} metadata", v.type_name()));
        let list = v.kind == TYPE_LIST;
        Meta {
            version: field(0),
            size: field(1),
            head: if list { field(2) } else { 0 },
            hints: if list { 0 } else { optional(2).unwrap_or(0) },
        }
    }

    /// The payload of a collection of type `kind` (a list stores its head; a set or sorted
    /// set its hint flags, when it has any).
    pub fn encode(&self, kind: u8) -> Bytes {
        let mut b = Vec::with_capacity(META_LEN);
        b.extend_from_slice(&self.version.to_be_bytes());
        b.extend_from_slice(&self.size.to_be_bytes());
        if kind == TYPE_LIST {
            b.extend_from_slice(&self.head.to_be_bytes());
        } else if self.hints != 0 {
            b.extend_from_slice(&self.hints.to_be_bytes());
        }
        Bytes::from(b)
    }
}

/// A live collection of type `kind` as stored: its value (type, expiry) and metadata.
#[derive(Clone, Debug)]
pub struct Collection {
    pub value: Value,
    pub meta: Meta,
}

impl Collection {
    fn of(kind: u8, value: Option<Value>) -> Result<Option<Collection>, Error> {
        match value {
            None => Ok(None),
            Some(v) if v.kind != kind => Err(Error::WrongType),
            Some(v) => Ok(Some(Collection {
                meta: Meta::decode(&v),
                value: v,
            })),
        }
    }

    /// The live collection `key` of type `kind` during apply.
    pub fn load(txn: &Txn, kind: u8, key: &[u8]) -> Result<Option<Collection>, Error> {
        Self::of(kind, txn.get(key))
    }

    /// The live collection `key` of type `kind`, read through `r`.
    pub fn get(
        r: &(impl Reader + ?Sized),
        kind: u8,
        key: &[u8],
    ) -> Result<Option<Collection>, Error> {
        Self::of(kind, r.live(key))
    }

    /// A new, empty collection of type `kind` (stored once it has an element).
    pub fn create(txn: &mut Txn, kind: u8) -> Collection {
        let meta = Meta {
            version: txn.new_version(),
            size: 0,
            // A new list starts in the middle of the index space, to grow either way.
            head: 1 << 63,
            hints: 0,
        };
        Collection {
            value: Value {
                kind,
                expire_at: 0,
                data: meta.encode(kind),
            },
            meta,
        }
    }

    /// Stores the metadata after its size changed by `added` (which may be negative);
    /// deletes the key when the collection became empty.
    pub fn store(mut self, txn: &mut Txn, key: &[u8], added: i64) {
        if added == 0 && self.meta.size > 0 {
            return;
        }
        self.meta.size = self.meta.size.saturating_add_signed(added);
        if self.meta.size == 0 {
            txn.del(key);
            return;
        }
        self.value.data = self.meta.encode(self.value.kind);
        txn.set(key, &self.value);
    }
}

impl Collection {
    /// Stores the metadata as it is now (a list whose head moved, say); deletes the key when
    /// the collection is empty.
    pub fn save(mut self, txn: &mut Txn, key: &[u8]) {
        if self.meta.size == 0 {
            txn.del(key);
            return;
        }
        self.value.data = self.meta.encode(self.value.kind);
        txn.set(key, &self.value);
    }
}

/// Copies collection `from` (live, of any type) to `to` under a new version, with the same
/// expiry; the caller has removed whatever `to` held. For RENAME and COPY.
pub fn copy_collection(txn: &mut Txn, from: &[u8], source: &Value, to: &[u8]) {
    let meta = Meta::decode(source);
    let version = txn.new_version();
    for cf in rockraft_raftstore::keys::ELEMENT_CFS {
        let mut elements = Vec::new();
        txn.scan_elements(cf, from, meta.version, &[], |sub, v| {
            elements.push((sub.to_vec(), v.to_vec()));
            true
        });
        for (sub, v) in elements {
            txn.put_element(cf, to, version, &sub, &v);
        }
    }
    // Every collection's metadata starts with its version; the rest is copied as it is
    // (a stream's IDs and counters, say).
    let mut data = source.data.to_vec();
    data[..8].copy_from_slice(&version.to_be_bytes());
    let value = Value {
        kind: source.kind,
        expire_at: source.expire_at,
        data: Bytes::from(data),
    };
    txn.set(to, &value);
}

/// End hints of sets and sorted sets. Popping from an end (ZPOPMIN, SPOP's wrap-around)
/// leaves deletions there, and RocksDB walks every deletion a scan meets: popping a sorted set
/// empty from one end would cost O(n²). A hint is a bound stored with the collection: "no
/// live entry sorts below `low`" (or above `high`), so a scan from that end seeks past the
/// deletions. A pop sets it; an insertion beyond it moves it; nothing else can make it wrong.
/// Hints are entries of the `zscore` family under the collection's version, at sub-keys no
/// score-index entry can have (`""`, which sorts first, and eight 0xff bytes, a NaN score,
/// which sorts after every real one); sets have no other `zscore` entries. The metadata's
/// `hints` flags say which exist, so a collection that never popped costs nothing.
pub mod hints {
    use super::{Meta, Reader};
    use crate::db::{Txn, SCORES};

    pub const LOW: u64 = 1;
    pub const HIGH: u64 = 2;
    const LOW_SUB: &[u8] = b"";
    const HIGH_SUB: &[u8] = &[0xff; 8];

    fn sub(which: u64) -> &'static [u8] {
        if which == LOW {
            LOW_SUB
        } else {
            HIGH_SUB
        }
    }

    /// Whether a `zscore` sub-key is a hint (not a score-index entry).
    pub fn is_hint(sub: &[u8]) -> bool {
        sub.is_empty() || sub == HIGH_SUB
    }

    /// The bound `which` (LOW or HIGH) of the collection with `meta`, if it has one.
    pub fn get(r: &(impl Reader + ?Sized), key: &[u8], meta: &Meta, which: u64) -> Option<Vec<u8>> {
        if meta.hints & which == 0 {
            return None;
        }
        r.element_in(SCORES, key, meta.version, sub(which))
    }

    /// Sets bound `which` to `bound`; the caller stores `meta` afterwards.
    pub fn set(txn: &mut Txn, key: &[u8], meta: &mut Meta, which: u64, bound: &[u8]) {
        txn.put_element(SCORES, key, meta.version, sub(which), bound);
        meta.hints |= which;
    }

    /// Keeps the bounds true after sub-key `inserted` became live.
    pub fn note_insert(txn: &mut Txn, key: &[u8], meta: &Meta, inserted: &[u8]) {
        if meta.hints == 0 {
            return;
        }
        if get(&*txn, key, meta, LOW).is_some_and(|low| inserted < low.as_slice()) {
            txn.put_element(SCORES, key, meta.version, LOW_SUB, inserted);
        }
        if get(&*txn, key, meta, HIGH).is_some_and(|high| inserted > high.as_slice()) {
            txn.put_element(SCORES, key, meta.version, HIGH_SUB, inserted);
        }
    }
}

/// Reads of collections that the apply path ([`Txn`]) and the read path ([`At`]) share, so
/// an algorithm over collections (set algebra, say) is written once.
pub trait Reader {
    /// The live value of `key`.
    fn live(&self, key: &[u8]) -> Option<Value>;
    /// Entry `sub` of version `version` of `key` in family `cf`.
    fn element_in(&self, cf: &str, key: &[u8], version: u64, sub: &[u8]) -> Option<Vec<u8>>;
    /// Visits the entries of version `version` of `key` in family `cf` from sub-key `from`,
    /// in order.
    fn scan_in(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    );
    /// [`Reader::scan_in`] up to sub-key `to` (exclusive): the scan stops at the bound
    /// instead of walking whatever deletions lie beyond it.
    fn scan_between_in(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        from: &[u8],
        to: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    );
    /// The same in descending order, from just below `before` (or from the last).
    fn scan_rev_in(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        before: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    );

    /// Visits live keys in storage order from data key `from` (inclusive): (user key, stored
    /// value); `visit` returns false to stop. Returns the data key where it stopped early.
    fn for_each_key(
        &self,
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Option<Vec<u8>>;
    /// The modification mark of `key` (the index of the entry that last changed it; 0 when
    /// none is recorded).
    fn mark(&self, key: &[u8]) -> u64;
    /// The value under `key` in the scripts' column family (the script cache and the
    /// function libraries: `keys::script_key`, `library_key`, `function_key`).
    fn script_entry(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Visits the scripts' column family in `[start, end)`: (key, value).
    fn script_entries(&self, start: &[u8], end: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool);

    /// The body of the cached script `sha`, if any.
    fn script(&self, sha: &[u8]) -> Option<Vec<u8>> {
        self.script_entry(&rockraft_raftstore::keys::script_key(sha))
    }

    /// Element `sub` of version `version` of `key`.
    fn element(&self, key: &[u8], version: u64, sub: &[u8]) -> Option<Vec<u8>> {
        self.element_in(ELEMENTS, key, version, sub)
    }

    /// Visits the elements of version `version` of `key` from sub-key `from`, in order.
    fn scan(
        &self,
        key: &[u8],
        version: u64,
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
        self.scan_in(ELEMENTS, key, version, from, visit)
    }
}

impl<R: Reader + ?Sized> Reader for &R {
    fn live(&self, key: &[u8]) -> Option<Value> {
        (**self).live(key)
    }

    fn element_in(&self, cf: &str, key: &[u8], version: u64, sub: &[u8]) -> Option<Vec<u8>> {
        (**self).element_in(cf, key, version, sub)
    }

    fn scan_in(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
        (**self).scan_in(cf, key, version, from, visit)
    }

    fn scan_between_in(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        from: &[u8],
        to: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
        (**self).scan_between_in(cf, key, version, from, to, visit)
    }

    fn scan_rev_in(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        before: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
        (**self).scan_rev_in(cf, key, version, before, visit)
    }

    fn for_each_key(
        &self,
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        (**self).for_each_key(from, visit)
    }

    fn mark(&self, key: &[u8]) -> u64 {
        (**self).mark(key)
    }

    fn script_entry(&self, key: &[u8]) -> Option<Vec<u8>> {
        (**self).script_entry(key)
    }

    fn script_entries(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
        (**self).script_entries(start, end, visit)
    }
}

impl Reader for Txn<'_, '_> {
    fn live(&self, key: &[u8]) -> Option<Value> {
        self.get(key)
    }

    fn for_each_key(
        &self,
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        Txn::for_each_key(self, from, visit)
    }

    fn mark(&self, key: &[u8]) -> u64 {
        Txn::mark(self, key)
    }

    fn script_entry(&self, key: &[u8]) -> Option<Vec<u8>> {
        Txn::script_entry(self, key)
    }

    fn script_entries(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
        Txn::script_entries(self, start, end, visit)
    }

    fn element_in(&self, cf: &str, key: &[u8], version: u64, sub: &[u8]) -> Option<Vec<u8>> {
        Txn::element(self, cf, key, version, sub)
    }

    fn scan_in(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
        self.scan_elements(cf, key, version, from, visit)
    }

    fn scan_between_in(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        from: &[u8],
        to: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
        self.scan_elements_between(cf, key, version, from, Some(to), visit)
    }

    fn scan_rev_in(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        before: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
        self.scan_elements_rev(cf, key, version, before, visit)
    }
}

/// A read view at a point in time (what is expired is decided at `now_ms`).
pub struct At<'v, 'a> {
    pub view: &'v View<'a>,
    pub now_ms: u64,
}

impl Reader for At<'_, '_> {
    fn live(&self, key: &[u8]) -> Option<Value> {
        self.view.get(key, self.now_ms)
    }

    fn for_each_key(
        &self,
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        self.view.for_each_key(from, self.now_ms, visit)
    }

    fn mark(&self, key: &[u8]) -> u64 {
        self.view.mark(key)
    }

    fn script_entry(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.view.script_entry(key)
    }

    fn script_entries(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
        self.view.script_entries(start, end, visit)
    }

    fn element_in(&self, cf: &str, key: &[u8], version: u64, sub: &[u8]) -> Option<Vec<u8>> {
        self.view.element(cf, key, version, sub)
    }

    fn scan_in(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
        self.view.scan_elements(cf, key, version, from, visit)
    }

    fn scan_between_in(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        from: &[u8],
        to: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
        self.view
            .scan_elements_between(cf, key, version, from, Some(to), visit)
    }

    fn scan_rev_in(
        &self,
        cf: &str,
        key: &[u8],
        version: u64,
        before: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) {
        self.view.scan_elements_rev(cf, key, version, before, visit)
    }
}

/// A random number generator whose sequence is fixed forever (splitmix64): choices made at
/// apply (SPOP) from a seed in the entry must be the same on every node, in every version of
/// rockraft that replays the log.
pub struct LogRng(u64);

impl LogRng {
    pub fn new(seed: u64) -> LogRng {
        LogRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `[0, n)` (n > 0), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }
}
