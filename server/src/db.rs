//! The data model on RocksDB: one `default`-family entry per user key, whose value carries the
//! key's type and absolute expiry time, and an `expire`-family index of keys with a TTL.
//!
//! Value layout: `[type: u8][expire_at_ms: u64 BE, 0 = none][payload]`.
//! The expiry index may hold stale entries (a key overwritten without a TTL keeps its old index
//! entry); the expirer checks each entry against the value before deleting anything.

use std::sync::Arc;

use bytes::Bytes;
use rockraft_raftstore::keys::{self, CF_DATA, CF_EXPIRE};
use rockraft_raftstore::slot::SLOT_COUNT;
use rockraft_raftstore::{ApplyContext, Engine};
use rocksdb::{Direction, IteratorMode};

/// Type tag of a string value.
pub const TYPE_STRING: u8 = 0;

const HEADER_LEN: usize = 9;

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
            _ => "unknown",
        }
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

    /// The live value of `key` at `now_ms`; expired keys are absent.
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<Value> {
        let raw = self
            .engine
            .get(CF_DATA, &keys::data_key(key))
            .unwrap_or_else(|e| panic!("read failed: {e}"))?;
        let v = Value::decode(&raw).unwrap_or_else(|| corrupt(key));
        (!v.is_expired(now_ms)).then_some(v)
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
pub struct Txn<'c, 'e> {
    ctx: &'c mut ApplyContext<'e>,
}

impl<'c, 'e> Txn<'c, 'e> {
    pub fn new(ctx: &'c mut ApplyContext<'e>) -> Self {
        Txn { ctx }
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
                !v.is_expired(self.now_ms())
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
                true
            }
            _ => false,
        }
    }

    /// Removes every key.
    pub fn flush(&mut self) {
        self.ctx
            .clear(CF_DATA, &keys::slot_start(0), &keys::slot_start(SLOT_COUNT));
        self.ctx.clear(CF_EXPIRE, &[], &[0xff; 9]);
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
    /// SHA-1 over every stored key and value (type, expiry and payload) in storage order. Nodes
    /// that applied the same log prefix have the same digest; all zeros when there is no key.
    /// Expired keys still stored count: their deletion is itself a log entry.
    pub fn digest(&self) -> String {
        let mut h = sha1_smol::Sha1::new();
        let mut any = false;
        let it = self
            .engine
            .db()
            .iterator_cf(self.engine.cf(CF_DATA), IteratorMode::Start);
        for item in it {
            let (k, v) = item.unwrap_or_else(|e| panic!("scan failed: {e}"));
            any = true;
            h.update(&(k.len() as u64).to_be_bytes());
            h.update(&k);
            h.update(&(v.len() as u64).to_be_bytes());
            h.update(&v);
        }
        if any {
            h.digest().to_string()
        } else {
            "0".repeat(40)
        }
    }
}
