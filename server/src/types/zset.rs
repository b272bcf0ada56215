//! Sorted sets: metadata (version, number of members) in the key's value, and each member
//! twice: an `element` entry (sub-key = member, value = the score's 8 bytes) for lookups by
//! member, and a `zscore` entry (sub-key = order-preserving score, then member; empty value)
//! for order by (score, member), so ranges by score are range scans.
//!
//! Ranges follow what Redis 7.0 does for the sorted sets it keeps as listpacks (every one up
//! to 128 members): by lex, a walk in (score, member) order that starts at the first member
//! inside the range and stops at the first outside it, which is also what a skiplist gives
//! when all scores are equal (the case lex ranges are defined for).

use std::cmp::Ordering;

use bytes::Bytes;
use rockraft_raftstore::keys::{decode_score, encode_score, prefix_end};

use super::{hints, Collection, Error, Meta, Reader};
use crate::db::{Txn, ELEMENTS, SCORES, TYPE_SET, TYPE_ZSET};

/// A member and its score.
pub type Entry = (Vec<u8>, f64);

/// One input of a ZUNION/ZINTER/ZDIFF: member → score, in member order.
pub type Scores = std::collections::BTreeMap<Vec<u8>, f64>;

fn score_bytes(score: f64) -> [u8; 8] {
    score.to_bits().to_be_bytes()
}

fn score_from(v: &[u8]) -> f64 {
    f64::from_bits(u64::from_be_bytes(
        v.try_into()
            .unwrap_or_else(|_| panic!("corrupt sorted-set score")),
    ))
}

/// (score, member) of a score-index sub-key.
fn index_entry(sub: &[u8]) -> (f64, &[u8]) {
    (
        decode_score(&sub[..8]).expect("score index entry"),
        &sub[8..],
    )
}

fn index_sub(score: f64, member: &[u8]) -> Vec<u8> {
    [&encode_score(score)[..], member].concat()
}

/// Redis keeps a zero score as `0` (a listpack stores `-0` as the integer 0).
fn stored(score: f64) -> f64 {
    if score == 0.0 {
        0.0
    } else {
        score
    }
}

/// The live sorted set `key`, if any.
pub fn get(r: &(impl Reader + ?Sized), key: &[u8]) -> Result<Option<Collection>, Error> {
    Collection::get(r, TYPE_ZSET, key)
}

pub fn score(r: &(impl Reader + ?Sized), z: &Collection, key: &[u8], member: &[u8]) -> Option<f64> {
    r.element(key, z.meta.version, member)
        .map(|v| score_from(&v))
}

fn put(txn: &mut Txn, key: &[u8], meta: &Meta, member: &[u8], old: Option<f64>, score: f64) {
    let version = meta.version;
    if let Some(old) = old {
        txn.del_element(SCORES, key, version, &index_sub(old, member));
    }
    let score = stored(score);
    let sub = index_sub(score, member);
    txn.put_element(ELEMENTS, key, version, member, &score_bytes(score));
    txn.put_element(SCORES, key, version, &sub, &[]);
    hints::note_insert(txn, key, meta, &sub);
}

fn delete(txn: &mut Txn, key: &[u8], version: u64, member: &[u8], score: f64) {
    txn.del_element(ELEMENTS, key, version, member);
    txn.del_element(SCORES, key, version, &index_sub(score, member));
}

/// ZADD's options.
#[derive(Clone, Copy, Default)]
pub struct AddFlags {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
    pub incr: bool,
}

/// What a ZADD did.
#[derive(Default)]
pub struct AddOutcome {
    pub added: i64,
    pub updated: i64,
    /// Pairs not skipped by NX, XX, GT or LT.
    pub processed: i64,
    /// The last pair's new score (ZADD INCR's reply).
    pub score: f64,
}

/// ZADD (and ZINCRBY): sets or increments the scores of `pairs`, as Redis's `zsetAdd`.
pub fn add(
    txn: &mut Txn,
    key: &[u8],
    flags: AddFlags,
    pairs: &[(f64, &Bytes)],
) -> Result<AddOutcome, Error> {
    let mut out = AddOutcome::default();
    let z = match Collection::load(txn, TYPE_ZSET, key)? {
        Some(z) => z,
        None if flags.xx => return Ok(out),
        None => Collection::create(txn, TYPE_ZSET),
    };
    let version = z.meta.version;
    for &(score, member) in pairs {
        if score.is_nan() {
            return Err(Error::ScoreNan);
        }
        match txn
            .element(ELEMENTS, key, version, member)
            .map(|v| score_from(&v))
        {
            Some(current) => {
                if flags.nx {
                    continue;
                }
                let new = if flags.incr { score + current } else { score };
                if new.is_nan() {
                    return Err(Error::ScoreNan);
                }
                if (flags.lt && new >= current) || (flags.gt && new <= current) {
                    continue;
                }
                out.processed += 1;
                out.score = new;
                if new != current {
                    put(txn, key, &z.meta, member, Some(current), new);
                    out.updated += 1;
                }
            }
            None if flags.xx => {}
            None => {
                put(txn, key, &z.meta, member, None, score);
                out.processed += 1;
                out.added += 1;
                out.score = score;
            }
        }
    }
    z.store(txn, key, out.added);
    Ok(out)
}

/// ZREM: how many of `members` were there.
pub fn remove(txn: &mut Txn, key: &[u8], members: &[Bytes]) -> Result<i64, Error> {
    let Some(z) = Collection::load(txn, TYPE_ZSET, key)? else {
        return Ok(0);
    };
    let version = z.meta.version;
    let mut removed = 0;
    for m in members {
        if let Some(s) = txn
            .element(ELEMENTS, key, version, m)
            .map(|v| score_from(&v))
        {
            delete(txn, key, version, m, s);
            removed += 1;
        }
    }
    z.store(txn, key, -removed);
    Ok(removed)
}

/// Removes `entries` (members of `z`); for the range removals and pops.
fn remove_entries(txn: &mut Txn, key: &[u8], z: Collection, entries: &[Entry]) {
    for (m, s) in entries {
        delete(txn, key, z.meta.version, m, *s);
    }
    z.store(txn, key, -(entries.len() as i64));
}

/// ZPOPMIN/ZPOPMAX: removes and returns up to `count` members from the low (or high) end.
pub fn pop(txn: &mut Txn, key: &[u8], max: bool, count: u64) -> Result<Option<Vec<Entry>>, Error> {
    let Some(z) = Collection::load(txn, TYPE_ZSET, key)? else {
        return Ok(None);
    };
    let mut z = z;
    let n = count.min(z.meta.size);
    let popped = by_rank(&*txn, &z, key, 0, n.saturating_sub(1), max);
    let popped = if n == 0 { Vec::new() } else { popped };
    if let Some((m, s)) = popped.last().filter(|_| n < z.meta.size) {
        // Every member left sorts beyond the last one popped.
        let which = if max { hints::HIGH } else { hints::LOW };
        hints::set(txn, key, &mut z.meta, which, &index_sub(*s, m));
    }
    remove_entries(txn, key, z, &popped);
    Ok(Some(popped))
}

/// Visits the members in (score, member) order (descending with `rev`): (member, score).
fn walk(
    r: &(impl Reader + ?Sized),
    z: &Collection,
    key: &[u8],
    rev: bool,
    from: Option<&[u8]>,
    visit: &mut dyn FnMut(&[u8], f64) -> bool,
) {
    let mut f = |sub: &[u8], _: &[u8]| {
        if hints::is_hint(sub) {
            return true;
        }
        let (score, member) = index_entry(sub);
        visit(member, score)
    };
    if rev {
        // Start at the high bound when it is below where the scan would start.
        let high = hints::get(r, key, &z.meta, hints::HIGH).map(|mut h| {
            h.push(0);
            h
        });
        let before = match (from, high.as_deref()) {
            (Some(f), Some(h)) => Some(f.min(h)),
            (f, h) => f.or(h),
        };
        r.scan_rev_in(SCORES, key, z.meta.version, before, &mut f);
    } else {
        let low = hints::get(r, key, &z.meta, hints::LOW);
        let from = from.unwrap_or(&[]).max(low.as_deref().unwrap_or(&[]));
        r.scan_in(SCORES, key, z.meta.version, from, &mut f);
    }
}

/// Members at ranks `[from, to]` (0-based, both within the set), lowest first or, with
/// `rev`, highest first.
pub fn by_rank(
    r: &(impl Reader + ?Sized),
    z: &Collection,
    key: &[u8],
    from: u64,
    to: u64,
    rev: bool,
) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut rank = 0u64;
    walk(r, z, key, rev, None, &mut |m, s| {
        if rank >= from {
            out.push((m.to_vec(), s));
        }
        rank += 1;
        rank <= to
    });
    out
}

/// The 0-based rank of `member` (from the top with `rev`), if it is a member.
pub fn rank(
    r: &(impl Reader + ?Sized),
    z: &Collection,
    key: &[u8],
    member: &[u8],
    rev: bool,
) -> Option<u64> {
    let s = score(r, z, key, member)?;
    let mut below = 0u64;
    walk(r, z, key, false, None, &mut |m, score| {
        if score.partial_cmp(&s) == Some(Ordering::Less) || (score == s && m < member) {
            below += 1;
            true
        } else {
            false
        }
    });
    Some(if rev { z.meta.size - 1 - below } else { below })
}

/// A score range (`zslParseRange`): bounds, each inclusive or exclusive.
#[derive(Clone, Copy, Debug)]
pub struct ScoreRange {
    pub min: f64,
    pub min_ex: bool,
    pub max: f64,
    pub max_ex: bool,
}

impl ScoreRange {
    fn gte_min(&self, s: f64) -> bool {
        if self.min_ex {
            s > self.min
        } else {
            s >= self.min
        }
    }

    fn lte_max(&self, s: f64) -> bool {
        if self.max_ex {
            s < self.max
        } else {
            s <= self.max
        }
    }

    fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.min_ex || self.max_ex))
    }
}

/// Members with scores in `range`, lowest first (highest first with `rev`), after skipping
/// `offset` of them, at most `limit` (negative: all), as Redis's `genericZrangebyscore`.
pub fn by_score(
    r: &(impl Reader + ?Sized),
    z: &Collection,
    key: &[u8],
    range: &ScoreRange,
    rev: bool,
    offset: i64,
    limit: i64,
) -> Vec<Entry> {
    if (offset > 0 && offset as u64 >= z.meta.size) || range.is_empty() || offset < 0 {
        // A negative offset walks off the end before anything is taken.
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut skipped = 0i64;
    let mut started = false;
    let mut left = limit;
    let (seek, mut out_of_range): (Vec<u8>, Box<dyn FnMut(f64) -> bool>) = if rev {
        (
            prefix_end(&encode_score(range.max)),
            Box::new(|s| !range.gte_min(s)),
        )
    } else {
        (
            encode_score(range.min).to_vec(),
            Box::new(|s| !range.lte_max(s)),
        )
    };
    walk(r, z, key, rev, Some(&seek), &mut |m, s| {
        if !started {
            // The first member inside the range's near bound.
            let inside_near = if rev {
                range.lte_max(s)
            } else {
                range.gte_min(s)
            };
            if !inside_near {
                return true;
            }
            started = true;
        }
        if skipped < offset {
            skipped += 1;
            return true;
        }
        if left == 0 || out_of_range(s) {
            return false;
        }
        left -= 1;
        out.push((m.to_vec(), s));
        true
    });
    out
}

/// Visits the members with scores in `range`, lowest first, until `visit` returns false.
pub fn scan_by_score(
    r: &(impl Reader + ?Sized),
    z: &Collection,
    key: &[u8],
    range: &ScoreRange,
    visit: &mut dyn FnMut(&[u8], f64) -> bool,
) {
    if range.is_empty() {
        return;
    }
    walk(
        r,
        z,
        key,
        false,
        Some(&encode_score(range.min)),
        &mut |m, s| {
            if !range.gte_min(s) {
                return true;
            }
            range.lte_max(s) && visit(m, s)
        },
    );
}

/// How many members have scores in `range`.
pub fn count(r: &(impl Reader + ?Sized), z: &Collection, key: &[u8], range: &ScoreRange) -> u64 {
    if range.is_empty() {
        return 0;
    }
    let mut n = 0;
    walk(
        r,
        z,
        key,
        false,
        Some(&encode_score(range.min)),
        &mut |_, s| {
            if !range.gte_min(s) {
                return true;
            }
            if !range.lte_max(s) {
                return false;
            }
            n += 1;
            true
        },
    );
    n
}

/// One end of a lex range (`zslParseLexRangeItem`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LexBound {
    /// `-`
    Min,
    /// `+`
    Max,
    Inclusive(Vec<u8>),
    Exclusive(Vec<u8>),
}

impl LexBound {
    pub fn parse(b: &[u8]) -> Option<LexBound> {
        match b {
            [b'+'] => Some(LexBound::Max),
            [b'-'] => Some(LexBound::Min),
            [b'(', rest @ ..] => Some(LexBound::Exclusive(rest.to_vec())),
            [b'[', rest @ ..] => Some(LexBound::Inclusive(rest.to_vec())),
            _ => None,
        }
    }

    fn exclusive(&self) -> bool {
        !matches!(self, LexBound::Inclusive(_))
    }
}

/// `sdscmplex`: `-` below everything, `+` above everything.
fn cmp_lex(a: &LexBound, b: &LexBound) -> Ordering {
    use LexBound::*;
    match (a, b) {
        _ if a == b => Ordering::Equal,
        (Min, _) | (_, Max) => Ordering::Less,
        (Max, _) | (_, Min) => Ordering::Greater,
        (Inclusive(x) | Exclusive(x), Inclusive(y) | Exclusive(y)) => x.cmp(y),
    }
}

/// A lex range: `[min, max]`, each end inclusive or not.
#[derive(Clone, Debug)]
pub struct LexRange {
    pub min: LexBound,
    pub max: LexBound,
}

impl LexRange {
    fn gte_min(&self, m: &[u8]) -> bool {
        let c = cmp_lex(&LexBound::Inclusive(m.to_vec()), &self.min);
        if self.min.exclusive() {
            c == Ordering::Greater
        } else {
            c != Ordering::Less
        }
    }

    fn lte_max(&self, m: &[u8]) -> bool {
        let c = cmp_lex(&LexBound::Inclusive(m.to_vec()), &self.max);
        if self.max.exclusive() {
            c == Ordering::Less
        } else {
            c != Ordering::Greater
        }
    }

    /// `zzlIsInLexRange`: false when no member can be in range.
    fn may_hold(&self, r: &(impl Reader + ?Sized), z: &Collection, key: &[u8]) -> bool {
        let c = cmp_lex(&self.min, &self.max);
        if c == Ordering::Greater
            || (c == Ordering::Equal && (self.min.exclusive() || self.max.exclusive()))
        {
            return false;
        }
        let (mut first, mut last) = (None, None);
        walk(r, z, key, false, None, &mut |m, _| {
            first = Some(m.to_vec());
            false
        });
        walk(r, z, key, true, None, &mut |m, _| {
            last = Some(m.to_vec());
            false
        });
        last.is_some_and(|l| self.gte_min(&l)) && first.is_some_and(|f| self.lte_max(&f))
    }
}

/// Members in a lex range, as Redis's listpack walk: from the first member (in score order;
/// from the last with `rev`) that passes the near bound, skipping `offset` unchecked, then
/// while the far bound holds, at most `limit` (negative: all).
pub fn by_lex(
    r: &(impl Reader + ?Sized),
    z: &Collection,
    key: &[u8],
    range: &LexRange,
    rev: bool,
    offset: i64,
    limit: i64,
) -> Vec<Entry> {
    if !range.may_hold(r, z, key) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut started = false;
    let mut skipped = 0i64;
    let mut left = limit;
    walk(r, z, key, rev, None, &mut |m, s| {
        if !started {
            let near = if rev {
                range.lte_max(m)
            } else {
                range.gte_min(m)
            };
            if !near {
                return true;
            }
            let far = if rev {
                range.gte_min(m)
            } else {
                range.lte_max(m)
            };
            if !far {
                return false;
            }
            started = true;
        }
        if skipped < offset || offset < 0 {
            skipped += 1;
            return offset >= 0;
        }
        let far = if rev {
            range.gte_min(m)
        } else {
            range.lte_max(m)
        };
        if left == 0 || !far {
            return false;
        }
        left -= 1;
        out.push((m.to_vec(), s));
        true
    });
    out
}

/// ZREMRANGEBYRANK/SCORE/LEX: removes `doomed` (found by the range functions).
pub fn remove_range(
    txn: &mut Txn,
    key: &[u8],
    find: impl FnOnce(&Txn, &Collection) -> Vec<Entry>,
) -> Result<i64, Error> {
    let Some(z) = Collection::load(txn, TYPE_ZSET, key)? else {
        return Ok(0);
    };
    let doomed = find(txn, &z);
    let n = doomed.len() as i64;
    remove_entries(txn, key, z, &doomed);
    Ok(n)
}

/// Every (member, score) in (score, member) order.
pub fn all(r: &(impl Reader + ?Sized), z: &Collection, key: &[u8]) -> Vec<Entry> {
    let mut out = Vec::with_capacity(z.meta.size.min(1 << 20) as usize);
    walk(r, z, key, false, None, &mut |m, s| {
        out.push((m.to_vec(), s));
        true
    });
    out
}

/// Replaces whatever `dst` holds with a sorted set of `entries` (deletes it when there are
/// none); the new size.
pub fn store(txn: &mut Txn, dst: &[u8], entries: &[Entry]) -> i64 {
    txn.del(dst);
    if entries.is_empty() {
        return 0;
    }
    let z = Collection::create(txn, TYPE_ZSET);
    for (m, s) in entries {
        put(txn, dst, &z.meta, m, None, *s);
    }
    z.store(txn, dst, entries.len() as i64);
    entries.len() as i64
}

/// ZUNION/ZINTER/ZDIFF's operation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Union,
    Inter,
    Diff,
}

/// How scores of a member in several inputs combine.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(target: &mut f64, value: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += value;
            // inf + -inf: Redis makes it 0.
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => *target = target.min(value),
        Aggregate::Max => *target = target.max(value),
    }
}

/// One input of a ZUNION/ZINTER/ZDIFF: a sorted set, a set (every score 1), or nothing.
struct Input {
    /// member → score, in member order.
    members: std::collections::BTreeMap<Vec<u8>, f64>,
    weight: f64,
}

/// The inputs at `keys` (WRONGTYPE unless each is a sorted set, a set, or missing).
pub fn inputs(
    r: &(impl Reader + ?Sized),
    keys: &[Bytes],
) -> Result<Vec<std::collections::BTreeMap<Vec<u8>, f64>>, Error> {
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let mut members = Scores::new();
        match r.live(key) {
            None => {}
            Some(v) if v.kind == TYPE_ZSET => {
                let z = Collection::get(r, TYPE_ZSET, key)?.expect("live");
                r.scan(key, z.meta.version, &[], &mut |m, s| {
                    members.insert(m.to_vec(), score_from(s));
                    true
                });
            }
            Some(v) if v.kind == TYPE_SET => {
                let s = Collection::get(r, TYPE_SET, key)?.expect("live");
                r.scan(key, s.meta.version, &[], &mut |m, _| {
                    members.insert(m.to_vec(), 1.0);
                    true
                });
            }
            Some(_) => return Err(Error::WrongType),
        }
        out.push(members);
    }
    Ok(out)
}

/// Combines inputs as Redis's `zunionInterDiffGenericCommand`: union and intersection take
/// the inputs smallest first (a stable sort, as glibc's qsort), so sums add in Redis's order;
/// the result is in (score, member) order. `limit` stops an intersection count early.
pub fn combine(
    sets: Vec<Scores>,
    weights: &[f64],
    op: Op,
    how: Aggregate,
    limit: Option<u64>,
) -> Vec<Entry> {
    let mut inputs: Vec<Input> = sets
        .into_iter()
        .zip(weights.iter().copied().chain(std::iter::repeat(1.0)))
        .map(|(members, weight)| Input { members, weight })
        .collect();
    let weighted = |s: f64, w: f64| {
        let v = w * s;
        if v.is_nan() {
            0.0
        } else {
            v
        }
    };
    let mut result: Vec<Entry> = match op {
        Op::Diff => {
            let (first, rest) = inputs.split_first().expect("at least one input");
            first
                .members
                .iter()
                .filter(|(m, _)| !rest.iter().any(|i| i.members.contains_key(*m)))
                .map(|(m, s)| (m.clone(), *s))
                .collect()
        }
        Op::Inter => {
            inputs.sort_by_key(|i| i.members.len());
            let (first, rest) = inputs.split_first().expect("at least one input");
            let mut out = Vec::new();
            for (m, s) in &first.members {
                let mut score = weighted(*s, first.weight);
                let mut everywhere = true;
                for other in rest {
                    match other.members.get(m) {
                        Some(v) => aggregate(&mut score, *v * other.weight, how),
                        None => {
                            everywhere = false;
                            break;
                        }
                    }
                }
                if everywhere {
                    out.push((m.clone(), score));
                    if limit.is_some_and(|l| out.len() as u64 >= l) {
                        break;
                    }
                }
            }
            out
        }
        Op::Union => {
            inputs.sort_by_key(|i| i.members.len());
            let mut acc: std::collections::BTreeMap<Vec<u8>, f64> = Default::default();
            for input in &inputs {
                for (m, s) in &input.members {
                    let v = weighted(*s, input.weight);
                    match acc.get_mut(m) {
                        Some(t) => aggregate(t, v, how),
                        None => {
                            acc.insert(m.clone(), v);
                        }
                    }
                }
            }
            acc.into_iter().collect()
        }
    };
    sort_entries(&mut result);
    result
}

/// (score, member) order.
pub fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.0.cmp(&b.0))
    });
}
