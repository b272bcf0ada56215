//! Hashes: metadata (version, number of fields) in the key's value, one element per field
//! (`sub-key = field`, value = the field's value), so fields come back in byte order.

use bytes::Bytes;

use super::Reader;
use super::{Collection, Error};
use crate::db::{Txn, ELEMENTS, TYPE_HASH};
use crate::long_double::LongDouble;

/// What [`incr_by_float`] stores and returns: Redis's text for the new value.
pub type FloatText = String;

/// Sets `pairs` (field, value) in hash `key`, creating it if needed; with `only_new`, fields
/// that exist keep their value. Returns how many fields were added.
pub fn set(
    txn: &mut Txn,
    key: &[u8],
    pairs: &[(&Bytes, &Bytes)],
    only_new: bool,
) -> Result<i64, Error> {
    let hash = load_or_create(txn, key)?;
    let version = hash.meta.version;
    let mut added = 0;
    for (field, value) in pairs {
        // A field set earlier in the same command counts as existing (the round's writes
        // are visible).
        let exists = txn.element(ELEMENTS, key, version, field).is_some();
        if exists && only_new {
            continue;
        }
        added += i64::from(!exists);
        txn.put_element(ELEMENTS, key, version, field, value);
    }
    hash.store(txn, key, added);
    Ok(added)
}

fn load_or_create(txn: &mut Txn, key: &[u8]) -> Result<Collection, Error> {
    Ok(match Collection::load(txn, TYPE_HASH, key)? {
        Some(h) => h,
        None => Collection::create(txn, TYPE_HASH),
    })
}

/// Removes `fields` from hash `key`; how many existed.
pub fn del(txn: &mut Txn, key: &[u8], fields: &[Bytes]) -> Result<i64, Error> {
    let Some(hash) = Collection::load(txn, TYPE_HASH, key)? else {
        return Ok(0);
    };
    let version = hash.meta.version;
    let mut removed = 0;
    for field in fields {
        if txn.element(ELEMENTS, key, version, field).is_some() {
            txn.del_element(ELEMENTS, key, version, field);
            removed += 1;
        }
    }
    if removed > 0 {
        hash.store(txn, key, -removed);
    }
    Ok(removed)
}

/// Adds `by` to the integer in `field` (0 when absent); the new value.
pub fn incr_by(txn: &mut Txn, key: &[u8], field: &[u8], by: i64) -> Result<i64, Error> {
    let hash = load_or_create(txn, key)?;
    let version = hash.meta.version;
    let old = txn.element(ELEMENTS, key, version, field);
    let current = match &old {
        Some(v) => crate::command::parse_i64(v).ok_or(Error::NotInteger("hash"))?,
        None => 0,
    };
    let new = current.checked_add(by).ok_or(Error::Overflow)?;
    txn.put_element(ELEMENTS, key, version, field, new.to_string().as_bytes());
    hash.store(txn, key, i64::from(old.is_none()));
    Ok(new)
}

/// Adds `by` to the float in `field` (0 when absent), in long double as Redis does; the
/// stored text of the new value.
pub fn incr_by_float(
    txn: &mut Txn,
    key: &[u8],
    field: &[u8],
    by: LongDouble,
) -> Result<FloatText, Error> {
    let hash = load_or_create(txn, key)?;
    let version = hash.meta.version;
    let old = txn.element(ELEMENTS, key, version, field);
    let current = match &old {
        Some(v) => LongDouble::parse(v).ok_or(Error::NotFloat("hash"))?,
        None => LongDouble::ZERO,
    };
    let new = current + by;
    if !new.is_finite() {
        return Err(Error::NanOrInfinity);
    }
    let text = new.to_redis_string();
    txn.put_element(ELEMENTS, key, version, field, text.as_bytes());
    hash.store(txn, key, i64::from(old.is_none()));
    Ok(text)
}

/// The live hash `key`, if any.
pub fn get_hash(r: &(impl Reader + ?Sized), key: &[u8]) -> Result<Option<Collection>, Error> {
    Collection::get(r, TYPE_HASH, key)
}

/// The value of `field`.
pub fn get(
    r: &(impl Reader + ?Sized),
    hash: &Collection,
    key: &[u8],
    field: &[u8],
) -> Option<Vec<u8>> {
    r.element(key, hash.meta.version, field)
}

/// Visits the fields from `from` (inclusive) in byte order: (field, value); `visit` returns
/// false to stop.
pub fn scan(
    r: &(impl Reader + ?Sized),
    hash: &Collection,
    key: &[u8],
    from: &[u8],
    mut visit: impl FnMut(&[u8], &[u8]) -> bool,
) {
    r.scan(key, hash.meta.version, from, &mut visit);
}
