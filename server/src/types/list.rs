//! Lists: metadata (version, length, head index) in the key's value, element `i` (from the
//! left, 0-based) at sub-key `head + i` (a big-endian u64), so pushes and pops at either end
//! touch one element and the metadata; inserts and removals in the middle shift the shorter
//! side.

use bytes::Bytes;

use super::{Collection, Error, Reader};
use crate::db::{Txn, ELEMENTS, TYPE_LIST};

/// An end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Left,
    Right,
}

fn sub(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The live list `key`, if any.
pub fn get(r: &(impl Reader + ?Sized), key: &[u8]) -> Result<Option<Collection>, Error> {
    Collection::get(r, TYPE_LIST, key)
}

/// Pushes `values` one by one at `end`; with `only_existing`, nothing happens to a missing
/// key (LPUSHX). The length after, 0 when nothing was pushed to a missing key.
pub fn push(
    txn: &mut Txn,
    key: &[u8],
    values: &[Bytes],
    end: End,
    only_existing: bool,
) -> Result<i64, Error> {
    let list = match Collection::load(txn, TYPE_LIST, key)? {
        Some(l) => l,
        None if only_existing => return Ok(0),
        None => Collection::create(txn, TYPE_LIST),
    };
    Ok(push_to(txn, key, list, values, end))
}

fn push_to(txn: &mut Txn, key: &[u8], mut list: Collection, values: &[Bytes], end: End) -> i64 {
    let version = list.meta.version;
    for v in values {
        let at = match end {
            End::Left => {
                list.meta.head -= 1;
                list.meta.head
            }
            End::Right => list.meta.head + list.meta.size,
        };
        txn.put_element(ELEMENTS, key, version, &sub(at), v);
        list.meta.size += 1;
    }
    let len = list.meta.size as i64;
    list.save(txn, key);
    len
}

/// Pops up to `count` elements from `end`, in pop order.
pub fn pop(txn: &mut Txn, key: &[u8], end: End, count: u64) -> Result<Option<Vec<Vec<u8>>>, Error> {
    let Some(list) = Collection::load(txn, TYPE_LIST, key)? else {
        return Ok(None);
    };
    Ok(Some(pop_from(txn, key, list, end, count)))
}

fn pop_from(txn: &mut Txn, key: &[u8], mut list: Collection, end: End, count: u64) -> Vec<Vec<u8>> {
    let n = count.min(list.meta.size);
    if n == 0 {
        // Nothing popped: the list is not changed (no modification mark, no event).
        return Vec::new();
    }
    let version = list.meta.version;
    let first = match end {
        End::Left => list.meta.head,
        End::Right => list.meta.head + list.meta.size - n,
    };
    let mut out = Vec::with_capacity(n as usize);
    // Bounded: a list popped from the right has the deletions of its old tail right after
    // its last element.
    txn.scan_elements_between(
        ELEMENTS,
        key,
        version,
        &sub(first),
        Some(&sub(first + n)),
        |_, v| {
            out.push(v.to_vec());
            true
        },
    );
    for i in first..first + n {
        txn.del_element(ELEMENTS, key, version, &sub(i));
    }
    if end == End::Left {
        list.meta.head += n;
    } else {
        out.reverse();
    }
    list.meta.size -= n;
    list.save(txn, key);
    out
}

/// Redis's LRANGE/LTRIM normalization: the inclusive range `[start, stop]` of a list of `len`
/// elements, or None when it is empty.
pub fn normalize_range(start: i64, stop: i64, len: u64) -> Option<(u64, u64)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    (start <= stop && start < len).then_some((start as u64, stop as u64))
}

/// Elements `[from, to]` (inclusive, 0-based from the left, within the list).
pub fn range(
    r: &(impl Reader + ?Sized),
    list: &Collection,
    key: &[u8],
    from: u64,
    to: u64,
) -> Vec<Vec<u8>> {
    let head = list.meta.head;
    let mut out = Vec::with_capacity((to - from + 1).min(1 << 20) as usize);
    r.scan_between_in(
        ELEMENTS,
        key,
        list.meta.version,
        &sub(head + from),
        &sub(head + to + 1),
        &mut |_, v| {
            out.push(v.to_vec());
            true
        },
    );
    out
}

/// Element `index` (negative from the right), if in range.
pub fn index(
    r: &(impl Reader + ?Sized),
    list: &Collection,
    key: &[u8],
    index: i64,
) -> Option<Vec<u8>> {
    let len = list.meta.size as i64;
    let i = if index < 0 { len + index } else { index };
    if !(0..len).contains(&i) {
        return None;
    }
    r.element(key, list.meta.version, &sub(list.meta.head + i as u64))
}

/// LSET.
pub fn set(txn: &mut Txn, key: &[u8], index: i64, value: &[u8]) -> Result<(), Error> {
    let list = Collection::load(txn, TYPE_LIST, key)?.ok_or(Error::NoSuchKey)?;
    let len = list.meta.size as i64;
    let i = if index < 0 { len + index } else { index };
    if !(0..len).contains(&i) {
        return Err(Error::IndexOutOfRange);
    }
    txn.put_element(
        ELEMENTS,
        key,
        list.meta.version,
        &sub(list.meta.head + i as u64),
        value,
    );
    Ok(())
}

/// LTRIM: keeps `[start, stop]` (Redis's normalization), deletes the list when that is empty.
pub fn trim(txn: &mut Txn, key: &[u8], start: i64, stop: i64) -> Result<(), Error> {
    let Some(mut list) = Collection::load(txn, TYPE_LIST, key)? else {
        return Ok(());
    };
    let (head, len, version) = (list.meta.head, list.meta.size, list.meta.version);
    let keep = normalize_range(start, stop, len);
    let (from, to) = keep.unwrap_or((len, len));
    for i in (0..from).chain(keep.map_or(0, |_| to + 1)..len) {
        txn.del_element(ELEMENTS, key, version, &sub(head + i));
    }
    match keep {
        Some((from, to)) => {
            list.meta.head = head + from;
            list.meta.size = to - from + 1;
        }
        None => list.meta.size = 0,
    }
    list.save(txn, key);
    Ok(())
}

/// Every element, left to right.
fn all(txn: &Txn, list: &Collection, key: &[u8]) -> Vec<Vec<u8>> {
    if list.meta.size == 0 {
        return Vec::new();
    }
    range(txn, list, key, 0, list.meta.size - 1)
}

/// Rewrites positions `from..` of the list as `elements[from..]` (the list now has
/// `elements.len()` elements) and deletes the positions past the new end.
fn rewrite_tail(
    txn: &mut Txn,
    key: &[u8],
    mut list: Collection,
    elements: &[Vec<u8>],
    from: usize,
) {
    let (head, version, old_len) = (list.meta.head, list.meta.version, list.meta.size);
    for (i, e) in elements.iter().enumerate().skip(from) {
        txn.put_element(ELEMENTS, key, version, &sub(head + i as u64), e);
    }
    for i in elements.len() as u64..old_len {
        txn.del_element(ELEMENTS, key, version, &sub(head + i));
    }
    list.meta.size = elements.len() as u64;
    list.save(txn, key);
}

/// LINSERT: inserts `value` before or after the first `pivot`; the new length, -1 when the
/// pivot is not there, 0 when the key is missing.
pub fn insert(
    txn: &mut Txn,
    key: &[u8],
    after: bool,
    pivot: &[u8],
    value: &[u8],
) -> Result<i64, Error> {
    let Some(mut list) = Collection::load(txn, TYPE_LIST, key)? else {
        return Ok(0);
    };
    let mut elements = all(txn, &list, key);
    let Some(p) = elements.iter().position(|e| e == pivot) else {
        return Ok(-1);
    };
    let at = if after { p + 1 } else { p };
    elements.insert(at, value.to_vec());
    let len = elements.len() as i64;
    if at < elements.len() / 2 {
        // Shift the left side one place left: the head moves.
        list.meta.head -= 1;
        let version = list.meta.version;
        for (i, e) in elements.iter().enumerate().take(at + 1) {
            txn.put_element(ELEMENTS, key, version, &sub(list.meta.head + i as u64), e);
        }
        list.meta.size += 1;
        list.save(txn, key);
    } else {
        rewrite_tail(txn, key, list, &elements, at);
    }
    Ok(len)
}

/// LREM: removes up to |count| elements equal to `value` (from the left when count > 0, from
/// the right when < 0, all when 0); how many.
pub fn remove(txn: &mut Txn, key: &[u8], count: i64, value: &[u8]) -> Result<i64, Error> {
    let Some(list) = Collection::load(txn, TYPE_LIST, key)? else {
        return Ok(0);
    };
    let elements = all(txn, &list, key);
    let limit = if count == 0 {
        usize::MAX
    } else {
        count.unsigned_abs() as usize
    };
    let mut doomed = vec![false; elements.len()];
    let mut removed = 0;
    let order: Box<dyn Iterator<Item = usize>> = if count < 0 {
        Box::new((0..elements.len()).rev())
    } else {
        Box::new(0..elements.len())
    };
    for i in order {
        if removed == limit {
            break;
        }
        if elements[i] == value {
            doomed[i] = true;
            removed += 1;
        }
    }
    if removed == 0 {
        return Ok(0);
    }
    let first = doomed.iter().position(|&d| d).expect("something removed");
    let kept: Vec<Vec<u8>> = elements
        .into_iter()
        .zip(doomed)
        .filter_map(|(e, d)| (!d).then_some(e))
        .collect();
    rewrite_tail(txn, key, list, &kept, first);
    Ok(removed as i64)
}

/// LPOS's options.
pub struct Position {
    /// 1-based match to start from; negative searches from the right.
    pub rank: i64,
    /// How many matches to return (0: all); None: the reply is one position, not a list.
    pub count: Option<u64>,
    /// Compare at most this many elements (0: all).
    pub maxlen: u64,
}

/// LPOS: the positions of the matches of `value`.
pub fn positions(
    r: &(impl Reader + ?Sized),
    list: &Collection,
    key: &[u8],
    value: &[u8],
    opts: &Position,
) -> Vec<i64> {
    let len = list.meta.size;
    let span = if opts.maxlen == 0 {
        len
    } else {
        opts.maxlen.min(len)
    };
    if span == 0 {
        return Vec::new();
    }
    let from_right = opts.rank < 0;
    let (from, to) = if from_right {
        (len - span, len - 1)
    } else {
        (0, span - 1)
    };
    let elements = range(r, list, key, from, to);
    let skip = opts.rank.unsigned_abs().saturating_sub(1);
    let wanted = match opts.count {
        None => 1,
        Some(0) => u64::MAX,
        Some(n) => n,
    };
    let mut out = Vec::new();
    let mut matched = 0u64;
    let mut visit = |i: u64, e: &Vec<u8>| {
        if e == value {
            matched += 1;
            if matched > skip {
                out.push(i as i64);
            }
        }
        (out.len() as u64) < wanted
    };
    if from_right {
        for (i, e) in elements.iter().enumerate().rev() {
            if !visit(from + i as u64, e) {
                break;
            }
        }
    } else {
        for (i, e) in elements.iter().enumerate() {
            if !visit(i as u64, e) {
                break;
            }
        }
    }
    out
}

/// LMOVE: pops from `src`'s `from` end and pushes to `dst`'s `to` end; the element, or None
/// when `src` is missing. `dst` of another type is WRONGTYPE and nothing moves.
pub fn move_element(
    txn: &mut Txn,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
) -> Result<Option<Vec<u8>>, Error> {
    let Some(source) = Collection::load(txn, TYPE_LIST, src)? else {
        return Ok(None);
    };
    Collection::load(txn, TYPE_LIST, dst)?;
    let Some(value) = pop_from(txn, src, source, from, 1).pop() else {
        return Ok(None);
    };
    let target = match Collection::load(txn, TYPE_LIST, dst)? {
        Some(t) => t,
        None => Collection::create(txn, TYPE_LIST),
    };
    push_to(txn, dst, target, &[Bytes::from(value.clone())], to);
    Ok(Some(value))
}
