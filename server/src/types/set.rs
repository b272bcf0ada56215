//! Sets: metadata (version, number of members) in the key's value, one element per member
//! (`sub-key = member`, empty value), so members come back in byte order.

use bytes::Bytes;

use super::{hints, Collection, Error, LogRng, Reader};
use crate::db::{Txn, ELEMENTS, TYPE_SET};

fn load_or_create(txn: &mut Txn, key: &[u8]) -> Result<Collection, Error> {
    Ok(match Collection::load(txn, TYPE_SET, key)? {
        Some(s) => s,
        None => Collection::create(txn, TYPE_SET),
    })
}

/// Adds `members`; how many were new.
pub fn add(txn: &mut Txn, key: &[u8], members: &[Bytes]) -> Result<i64, Error> {
    let set = load_or_create(txn, key)?;
    let version = set.meta.version;
    let mut added = 0;
    for m in members {
        if txn.element(ELEMENTS, key, version, m).is_none() {
            txn.put_element(ELEMENTS, key, version, m, &[]);
            hints::note_insert(txn, key, &set.meta, m);
            added += 1;
        }
    }
    set.store(txn, key, added);
    Ok(added)
}

/// Removes `members`; how many were there.
pub fn remove(txn: &mut Txn, key: &[u8], members: &[Bytes]) -> Result<i64, Error> {
    let Some(set) = Collection::load(txn, TYPE_SET, key)? else {
        return Ok(0);
    };
    let version = set.meta.version;
    let mut removed = 0;
    for m in members {
        if txn.element(ELEMENTS, key, version, m).is_some() {
            txn.del_element(ELEMENTS, key, version, m);
            removed += 1;
        }
    }
    if removed > 0 {
        set.store(txn, key, -removed);
    }
    Ok(removed)
}

/// Removes `count` members chosen with `seed` (all of them when `count` ≥ the size) and
/// returns them in byte order. The choice is a function of the seed and the set, so every
/// replica pops the same members.
pub fn pop(txn: &mut Txn, key: &[u8], count: u64, seed: u64) -> Result<Vec<Vec<u8>>, Error> {
    let Some(set) = Collection::load(txn, TYPE_SET, key)? else {
        return Ok(Vec::new());
    };
    let size = set.meta.size;
    if count.saturating_mul(4) < size {
        return Ok(pop_by_seeks(txn, key, set, count, seed));
    }
    let chosen = choose(size, count, seed);
    let version = set.meta.version;
    let mut popped = Vec::with_capacity(chosen.len());
    let mut i = 0u64;
    let mut next = chosen.iter().peekable();
    txn.scan_elements(ELEMENTS, key, version, &[], |m, _| {
        if next.peek() == Some(&&i) {
            popped.push(m.to_vec());
            next.next();
        }
        i += 1;
        next.peek().is_some()
    });
    for m in &popped {
        txn.del_element(ELEMENTS, key, version, m);
    }
    set.store(txn, key, -(popped.len() as i64));
    Ok(popped)
}

/// SPOP of a few members of a big set, each found by a few seeks instead of a walk over the
/// set: a random descent of the members' byte trie. Between the lowest and the highest
/// member left, pick a byte at random where they first differ; the members under that byte
/// (found by one seek each way) are the next range, until one member is left, or no member
/// has the byte and the next one is taken. Every member can be chosen, though not with equal
/// chances (Redis's own choice is not uniform either); the deletions the pops leave are
/// spread over the set, so no seek walks far.
fn pop_by_seeks(
    txn: &mut Txn,
    key: &[u8],
    mut set: Collection,
    count: u64,
    seed: u64,
) -> Vec<Vec<u8>> {
    let mut rng = LogRng::new(seed);
    let version = set.meta.version;
    let mut popped = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let low = hints::get(&*txn, key, &set.meta, hints::LOW).unwrap_or_default();
        let high = hints::get(&*txn, key, &set.meta, hints::HIGH).map(|mut h| {
            h.push(0);
            h
        });
        let (Some(first), Some(last)) = (
            first_from(txn, version, key, &low),
            last_before(txn, version, key, high.as_deref()),
        ) else {
            break;
        };
        let pick = descend(txn, version, key, first.clone(), last.clone(), &mut rng);
        // Whatever is left sorts after the lowest member popped, before the highest.
        if pick == first {
            hints::set(txn, key, &mut set.meta, hints::LOW, &pick);
        }
        if pick == last {
            hints::set(txn, key, &mut set.meta, hints::HIGH, &pick);
        }
        txn.del_element(ELEMENTS, key, version, &pick);
        popped.push(pick);
    }
    set.store(txn, key, -(popped.len() as i64));
    popped
}

/// The first member at or after `from`.
fn first_from(txn: &Txn, version: u64, key: &[u8], from: &[u8]) -> Option<Vec<u8>> {
    let mut found = None;
    txn.scan_elements(ELEMENTS, key, version, from, |m, _| {
        found = Some(m.to_vec());
        false
    });
    found
}

/// The last member before `before` (exclusive), or the last one.
fn last_before(txn: &Txn, version: u64, key: &[u8], before: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut found = None;
    txn.scan_elements_rev(ELEMENTS, key, version, before, |m, _| {
        found = Some(m.to_vec());
        false
    });
    found
}

/// A random member in `[lo, hi]` (both members), by the descent `pop_by_seeks` describes.
fn descend(
    txn: &Txn,
    version: u64,
    key: &[u8],
    mut lo: Vec<u8>,
    mut hi: Vec<u8>,
    rng: &mut LogRng,
) -> Vec<u8> {
    loop {
        if lo == hi {
            return lo;
        }
        let common = lo.iter().zip(&hi).take_while(|(a, b)| a == b).count();
        let top = u64::from(hi[common]);
        // `lo` may be a prefix of `hi`: then it is one more choice, "no byte here".
        let (bottom, choices) = match lo.get(common) {
            Some(&b) => (u64::from(b), top - u64::from(b) + 1),
            None => (0, top + 2),
        };
        let r = rng.below(choices);
        if lo.len() == common && r == top + 1 {
            return lo;
        }
        let mut prefix = hi[..common].to_vec();
        prefix.push((bottom + r) as u8);
        let Some(a) = first_from(txn, version, key, &prefix) else {
            return lo;
        };
        if !a.starts_with(&prefix) {
            return a;
        }
        let end = rockraft_raftstore::keys::prefix_end(&prefix);
        let b = last_before(txn, version, key, Some(&end)).unwrap_or_else(|| a.clone());
        (lo, hi) = (a, b);
    }
}

/// `count` distinct positions in `[0, size)` chosen with `seed`, ascending (a partial
/// Fisher-Yates shuffle over the positions, sparse so a huge set costs only `count`).
fn choose(size: u64, count: u64, seed: u64) -> Vec<u64> {
    if count >= size {
        return (0..size).collect();
    }
    let mut rng = LogRng::new(seed);
    let mut swapped = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count {
        let j = i + rng.below(size - i);
        let at_j = *swapped.get(&j).unwrap_or(&j);
        let at_i = *swapped.get(&i).unwrap_or(&i);
        swapped.insert(j, at_i);
        out.push(at_j);
    }
    out.sort_unstable();
    out
}

/// Moves `member` from set `src` to set `dst`; whether it was in `src`.
pub fn move_member(txn: &mut Txn, src: &[u8], dst: &[u8], member: &[u8]) -> Result<bool, Error> {
    let Some(from) = Collection::load(txn, TYPE_SET, src)? else {
        return Ok(false);
    };
    let to = Collection::load(txn, TYPE_SET, dst)?;
    let present = txn
        .element(ELEMENTS, src, from.meta.version, member)
        .is_some();
    if src == dst || !present {
        return Ok(present);
    }
    txn.del_element(ELEMENTS, src, from.meta.version, member);
    from.store(txn, src, -1);
    let to = match to {
        Some(t) => t,
        None => Collection::create(txn, TYPE_SET),
    };
    let added = txn
        .element(ELEMENTS, dst, to.meta.version, member)
        .is_none();
    if added {
        txn.put_element(ELEMENTS, dst, to.meta.version, member, &[]);
        hints::note_insert(txn, dst, &to.meta, member);
    }
    to.store(txn, dst, i64::from(added));
    Ok(true)
}

/// The live set `key`, if any.
pub fn get(r: &(impl Reader + ?Sized), key: &[u8]) -> Result<Option<Collection>, Error> {
    Collection::get(r, TYPE_SET, key)
}

pub fn is_member(r: &(impl Reader + ?Sized), set: &Collection, key: &[u8], member: &[u8]) -> bool {
    r.element(key, set.meta.version, member).is_some()
}

/// Every member, in byte order.
pub fn members(r: &(impl Reader + ?Sized), set: &Collection, key: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(set.meta.size.min(1 << 20) as usize);
    r.scan(key, set.meta.version, &[], &mut |m, _| {
        out.push(m.to_vec());
        true
    });
    out
}

/// Set algebra of SINTER, SUNION and SDIFF (and their STORE and CARD forms).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Inter,
    Union,
    Diff,
}

/// The result of `op` over the sets at `keys`, in byte order; missing keys are empty sets,
/// and any key of another type is WRONGTYPE (checked for every key first, as Redis does).
/// For an intersection, `limit` stops after that many members (SINTERCARD).
pub fn combine(
    r: &(impl Reader + ?Sized),
    op: Op,
    keys: &[Bytes],
    limit: Option<u64>,
) -> Result<Vec<Vec<u8>>, Error> {
    let mut sets = Vec::with_capacity(keys.len());
    for k in keys {
        sets.push((k, get(r, k)?));
    }
    match op {
        Op::Inter => {
            if sets.iter().any(|(_, s)| s.is_none()) {
                return Ok(Vec::new());
            }
            let mut sets: Vec<(&Bytes, Collection)> = sets
                .into_iter()
                .map(|(k, s)| (k, s.expect("checked")))
                .collect();
            sets.sort_by_key(|(_, s)| s.meta.size);
            let (first, rest) = sets.split_first().expect("at least one key");
            let limit = limit.unwrap_or(u64::MAX);
            let mut out = Vec::new();
            r.scan(first.0, first.1.meta.version, &[], &mut |m, _| {
                if rest.iter().all(|(k, s)| is_member(r, s, k, m)) {
                    out.push(m.to_vec());
                }
                (out.len() as u64) < limit
            });
            out.sort();
            Ok(out)
        }
        Op::Union => {
            let mut all = std::collections::BTreeSet::new();
            for (k, s) in &sets {
                if let Some(s) = s {
                    all.extend(members(r, s, k));
                }
            }
            Ok(all.into_iter().collect())
        }
        Op::Diff => {
            let Some((first_key, Some(first))) = sets.first() else {
                return Ok(Vec::new());
            };
            let rest: Vec<(&Bytes, &Collection)> = sets[1..]
                .iter()
                .filter_map(|(k, s)| s.as_ref().map(|s| (*k, s)))
                .collect();
            let mut out = Vec::new();
            r.scan(first_key, first.meta.version, &[], &mut |m, _| {
                if !rest.iter().any(|(k, s)| is_member(r, s, k, m)) {
                    out.push(m.to_vec());
                }
                true
            });
            Ok(out)
        }
    }
}

/// Replaces whatever `dst` holds with a set of `members` (deletes it when there are none);
/// the new size.
pub fn store(txn: &mut Txn, dst: &[u8], members: &[Vec<u8>]) -> i64 {
    txn.del(dst);
    if members.is_empty() {
        return 0;
    }
    let set = Collection::create(txn, TYPE_SET);
    for m in members {
        txn.put_element(ELEMENTS, dst, set.meta.version, m, &[]);
    }
    set.store(txn, dst, members.len() as i64);
    members.len() as i64
}

#[cfg(test)]
mod tests {
    use super::choose;

    #[test]
    fn choices_are_distinct_sorted_and_fixed_by_the_seed() {
        let a = choose(1000, 10, 42);
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert!(a.iter().all(|&i| i < 1000));
        assert_eq!(a, choose(1000, 10, 42));
        assert_ne!(a, choose(1000, 10, 43));
        assert_eq!(choose(5, 9, 1), vec![0, 1, 2, 3, 4]);
        assert!(choose(u64::MAX, 3, 7).iter().all(|&i| i < u64::MAX));
    }
}
