//! Sorted-set commands: ZADD ZINCRBY ZREM ZCARD ZSCORE ZMSCORE ZRANK ZREVRANK ZCOUNT ZLEXCOUNT
//! ZRANGE ZRANGESTORE ZRANGEBYSCORE ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZREVRANGE
//! ZPOPMIN ZPOPMAX ZMPOP ZRANDMEMBER ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREMRANGEBYLEX ZUNION
//! ZINTER ZDIFF ZUNIONSTORE ZINTERSTORE ZDIFFSTORE ZINTERCARD ZSCAN. The sorted set itself is
//! `types::zset`.
//!
//! ```text
//! ZADD key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]
//! ZRANGE key start stop [BYSCORE | BYLEX] [REV] [LIMIT offset count] [WITHSCORES]
//! ZUNION numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]
//! ```
//! Arguments are checked in Redis's order (t_zset.c), so every error is the one Redis gives.

use bytes::Bytes;
use rand::seq::SliceRandom;
use rand::Rng;
use rockraft_resp::Reply;

use super::flags::{DENYOOM, FAST, READONLY, WRITE};
use super::keyspace::ElementScan;
use super::{
    as_is, parse_i64, spec, type_error, upper, CommandSpec, Kind, ReadCtx, ERR_NOT_FLOAT,
    ERR_NOT_INTEGER, ERR_SYNTAX,
};
use crate::db::Txn;
use crate::strtod;
use crate::types::zset::{
    self, AddFlags, Aggregate, Entry, LexBound, LexRange, Op, ScoreRange, Scores,
};
use crate::types::{Collection, Reader};

/// Up to this many members, Redis keeps a sorted set as a listpack and ZSCAN returns it whole.
const LISTPACK_ENTRIES: u64 = 128;

/// Most members a negative ZRANDMEMBER count may ask for (see HRANDFIELD's).
const MAX_RANDOM: i64 = 10_000_000;

#[rustfmt::skip]
pub fn commands() -> Vec<CommandSpec> {
    use Kind::{Read, Write};
    let g = "sorted-set";
    vec![
        spec("zadd", -4, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.", Write { prepare: prepare_zadd, apply: apply_zadd }),
        spec("zincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Increments the score of a member in a sorted set.", Write { prepare: prepare_zadd, apply: apply_zadd }),
        spec("zrem", -3, WRITE | FAST, (1, 1, 1), g, "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.", Write { prepare: as_is, apply: apply_zrem }),
        spec("zcard", 2, READONLY | FAST, (1, 1, 1), g, "Returns the number of members in a sorted set.", Read(zcard)),
        spec("zscore", 3, READONLY | FAST, (1, 1, 1), g, "Returns the score of a member in a sorted set.", Read(zscore)),
        spec("zmscore", -3, READONLY | FAST, (1, 1, 1), g, "Returns the score of one or more members in a sorted set.", Read(zmscore)),
        spec("zrank", 3, READONLY | FAST, (1, 1, 1), g, "Returns the index of a member in a sorted set ordered by ascending scores.", Read(zrank)),
        spec("zrevrank", 3, READONLY | FAST, (1, 1, 1), g, "Returns the index of a member in a sorted set ordered by descending scores.", Read(zrank)),
        spec("zcount", 4, READONLY | FAST, (1, 1, 1), g, "Returns the count of members in a sorted set that have scores within a range.", Read(zcount)),
        spec("zlexcount", 4, READONLY | FAST, (1, 1, 1), g, "Returns the number of members in a sorted set within a lexicographical range.", Read(zlexcount)),
        spec("zrange", -4, READONLY, (1, 1, 1), g, "Returns members in a sorted set within a range of indexes.", Read(zrange)),
        spec("zrangestore", -5, WRITE | DENYOOM, (1, 2, 1), g, "Stores a range of members from sorted set in a key.", Write { prepare: prepare_zrangestore, apply: apply_zrangestore }),
        spec("zrangebyscore", -4, READONLY, (1, 1, 1), g, "Returns members in a sorted set within a range of scores.", Read(zrange)),
        spec("zrevrangebyscore", -4, READONLY, (1, 1, 1), g, "Returns members in a sorted set within a range of scores in reverse order.", Read(zrange)),
        spec("zrangebylex", -4, READONLY, (1, 1, 1), g, "Returns members in a sorted set within a lexicographical range.", Read(zrange)),
        spec("zrevrangebylex", -4, READONLY, (1, 1, 1), g, "Returns members in a sorted set within a lexicographical range in reverse order.", Read(zrange)),
        spec("zrevrange", -4, READONLY, (1, 1, 1), g, "Returns members in a sorted set within a range of indexes in reverse order.", Read(zrange)),
        spec("zpopmin", -2, WRITE | FAST, (1, 1, 1), g, "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", Write { prepare: prepare_zpop, apply: apply_zpop }),
        spec("zpopmax", -2, WRITE | FAST, (1, 1, 1), g, "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", Write { prepare: prepare_zpop, apply: apply_zpop }),
        spec("zmpop", -4, WRITE, (0, 0, 0), g, "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.", Write { prepare: prepare_zmpop, apply: apply_zmpop }).numkeys(1),
        spec("zrandmember", -2, READONLY, (1, 1, 1), g, "Returns one or more random members from a sorted set.", Read(zrandmember)),
        spec("zremrangebyrank", 4, WRITE, (1, 1, 1), g, "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.", Write { prepare: prepare_zremrange, apply: apply_zremrange }),
        spec("zremrangebyscore", 4, WRITE, (1, 1, 1), g, "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.", Write { prepare: prepare_zremrange, apply: apply_zremrange }),
        spec("zremrangebylex", 4, WRITE, (1, 1, 1), g, "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.", Write { prepare: prepare_zremrange, apply: apply_zremrange }),
        spec("zunion", -3, READONLY, (0, 0, 0), g, "Returns the union of multiple sorted sets.", Read(zcombine)).numkeys(1),
        spec("zinter", -3, READONLY, (0, 0, 0), g, "Returns the intersect of multiple sorted sets.", Read(zcombine)).numkeys(1),
        spec("zdiff", -3, READONLY, (0, 0, 0), g, "Returns the difference between multiple sorted sets.", Read(zcombine)).numkeys(1),
        spec("zintercard", -3, READONLY, (0, 0, 0), g, "Returns the number of members of the intersect of multiple sorted sets.", Read(zcombine)).numkeys(1),
        spec("zunionstore", -4, WRITE | DENYOOM, (1, 1, 1), g, "Stores the union of multiple sorted sets in a key.", Write { prepare: as_is, apply: apply_zcombine_store }).numkeys(2),
        spec("zinterstore", -4, WRITE | DENYOOM, (1, 1, 1), g, "Stores the intersect of multiple sorted sets in a key.", Write { prepare: as_is, apply: apply_zcombine_store }).numkeys(2),
        spec("zdiffstore", -4, WRITE | DENYOOM, (1, 1, 1), g, "Stores the difference of multiple sorted sets in a key.", Write { prepare: as_is, apply: apply_zcombine_store }).numkeys(2),
        spec("zscan", -3, READONLY, (1, 1, 1), g, "Iterates over members and scores of a sorted set.", Read(zscan)),
    ]
}

/// Entries as a reply: members, or with scores (flat in RESP2, pairs in RESP3).
fn entries_reply(entries: Vec<Entry>, with_scores: bool, resp3: bool) -> Reply {
    Reply::Array(if !with_scores {
        entries
            .into_iter()
            .map(|(m, _)| Reply::Bulk(m.into()))
            .collect()
    } else if resp3 {
        entries
            .into_iter()
            .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m.into()), Reply::Double(s)]))
            .collect()
    } else {
        entries
            .into_iter()
            .flat_map(|(m, s)| [Reply::Bulk(m.into()), Reply::Double(s)])
            .collect()
    })
}

/// ZADD/ZINCRBY's parsed arguments.
struct Zadd {
    flags: AddFlags,
    ch: bool,
    pairs: Vec<(f64, Bytes)>,
}

fn parse_zadd(argv: &[Bytes]) -> Result<Zadd, Reply> {
    let mut flags = AddFlags {
        incr: upper(&argv[0]) == "ZINCRBY",
        ..Default::default()
    };
    let mut ch = false;
    let mut i = 2;
    while i < argv.len() {
        match upper(&argv[i]).as_str() {
            "NX" => flags.nx = true,
            "XX" => flags.xx = true,
            "CH" => ch = true,
            "INCR" => flags.incr = true,
            "GT" => flags.gt = true,
            "LT" => flags.lt = true,
            _ => break,
        }
        i += 1;
    }
    let rest = &argv[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(Reply::err(ERR_SYNTAX));
    }
    if flags.nx && flags.xx {
        return Err(Reply::err(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (flags.nx && (flags.gt || flags.lt)) || (flags.gt && flags.lt) {
        return Err(Reply::err(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if flags.incr && rest.len() > 2 {
        return Err(Reply::err(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for p in rest.chunks_exact(2) {
        let score = strtod::parse_strict(&p[0]).ok_or_else(|| Reply::err(ERR_NOT_FLOAT))?;
        pairs.push((score, p[1].clone()));
    }
    Ok(Zadd { flags, ch, pairs })
}

fn prepare_zadd(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    parse_zadd(argv)?;
    Ok(None)
}

fn apply_zadd(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let z = match parse_zadd(argv) {
        Ok(z) => z,
        Err(e) => return e,
    };
    let pairs: Vec<(f64, &Bytes)> = z.pairs.iter().map(|(s, m)| (*s, m)).collect();
    match zset::add(txn, &argv[1], z.flags, &pairs) {
        Err(e) => type_error(e),
        Ok(out) if z.flags.incr => {
            if out.processed > 0 {
                Reply::Double(out.score)
            } else {
                Reply::Nil
            }
        }
        Ok(out) => Reply::Int(if z.ch {
            out.added + out.updated
        } else {
            out.added
        }),
    }
}

fn apply_zrem(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    zset::remove(txn, &argv[1], &argv[2..]).map_or_else(type_error, Reply::Int)
}

fn parse_score_bound(b: &[u8]) -> Option<(f64, bool)> {
    match b.split_first() {
        Some((b'(', rest)) => strtod::parse_loose(rest).map(|v| (v, true)),
        _ => strtod::parse_loose(b).map(|v| (v, false)),
    }
}

fn parse_score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, Reply> {
    match (parse_score_bound(min), parse_score_bound(max)) {
        (Some((min, min_ex)), Some((max, max_ex))) => Ok(ScoreRange {
            min,
            min_ex,
            max,
            max_ex,
        }),
        _ => Err(Reply::err("ERR min or max is not a float")),
    }
}

fn parse_lex_range(min: &[u8], max: &[u8]) -> Result<LexRange, Reply> {
    match (LexBound::parse(min), LexBound::parse(max)) {
        (Some(min), Some(max)) => Ok(LexRange { min, max }),
        _ => Err(Reply::err("ERR min or max not valid string range item")),
    }
}

/// What ZRANGE and its cousins select.
#[derive(Clone, Debug)]
enum Selection {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// A parsed ZRANGE-family request.
struct RangeRequest {
    selection: Selection,
    rev: bool,
    offset: i64,
    limit: i64,
    with_scores: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

/// Redis's `zrangeGenericCommand` argument handling: `argv[first]` is the source key, then
/// min and max, then options.
fn parse_range(
    argv: &[Bytes],
    first: usize,
    store: bool,
    mut kind: RangeType,
    mut rev: Option<bool>,
) -> Result<RangeRequest, Reply> {
    let (mut with_scores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut j = first + 3;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let opt = upper(&argv[j]);
        if !store && opt == "WITHSCORES" {
            with_scores = true;
        } else if opt == "LIMIT" && left >= 2 {
            offset = parse_i64(&argv[j + 1]).ok_or_else(|| Reply::err(ERR_NOT_INTEGER))?;
            limit = parse_i64(&argv[j + 2]).ok_or_else(|| Reply::err(ERR_NOT_INTEGER))?;
            j += 2;
        } else if rev.is_none() && opt == "REV" {
            rev = Some(true);
        } else if kind == RangeType::Auto && opt == "BYLEX" {
            kind = RangeType::Lex;
        } else if kind == RangeType::Auto && opt == "BYSCORE" {
            kind = RangeType::Score;
        } else {
            return Err(Reply::err(ERR_SYNTAX));
        }
        j += 1;
    }
    let rev = rev.unwrap_or(false);
    if kind == RangeType::Auto {
        kind = RangeType::Rank;
    }
    if limit != -1 && kind == RangeType::Rank {
        return Err(Reply::err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if with_scores && kind == RangeType::Lex {
        return Err(Reply::err(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let (mut lo, mut hi) = (&argv[first + 1], &argv[first + 2]);
    if rev && kind != RangeType::Rank {
        // Given as [max, min].
        std::mem::swap(&mut lo, &mut hi);
    }
    let selection = match kind {
        RangeType::Score => Selection::Score(parse_score_range(lo, hi)?),
        RangeType::Lex => Selection::Lex(parse_lex_range(lo, hi)?),
        _ => {
            let start = parse_i64(lo).ok_or_else(|| Reply::err(ERR_NOT_INTEGER))?;
            let stop = parse_i64(hi).ok_or_else(|| Reply::err(ERR_NOT_INTEGER))?;
            Selection::Rank(start, stop)
        }
    };
    Ok(RangeRequest {
        selection,
        rev,
        offset,
        limit,
        with_scores,
    })
}

/// The command's fixed range type and direction (ZRANGE decides from its options).
fn range_kind(name: &str) -> (RangeType, Option<bool>) {
    match name {
        "ZRANGEBYSCORE" => (RangeType::Score, Some(false)),
        "ZREVRANGEBYSCORE" => (RangeType::Score, Some(true)),
        "ZRANGEBYLEX" => (RangeType::Lex, Some(false)),
        "ZREVRANGEBYLEX" => (RangeType::Lex, Some(true)),
        "ZREVRANGE" => (RangeType::Rank, Some(true)),
        _ => (RangeType::Auto, None),
    }
}

/// Runs a parsed range request on the sorted set `z`.
fn select(
    r: &(impl Reader + ?Sized),
    z: &Collection,
    key: &[u8],
    req: &RangeRequest,
) -> Vec<Entry> {
    match &req.selection {
        Selection::Rank(start, stop) => {
            match crate::types::list::normalize_range(*start, *stop, z.meta.size) {
                Some((from, to)) => zset::by_rank(r, z, key, from, to, req.rev),
                None => Vec::new(),
            }
        }
        Selection::Score(range) => zset::by_score(r, z, key, range, req.rev, req.offset, req.limit),
        Selection::Lex(range) => zset::by_lex(r, z, key, range, req.rev, req.offset, req.limit),
    }
}

/// Runs `f` on the live sorted set `key` in a consistent view; `missing` when there is none.
fn with_zset(
    ctx: &ReadCtx,
    key: &[u8],
    missing: impl Fn() -> Reply,
    f: impl Fn(&dyn Reader, &Collection) -> Reply,
) -> Reply {
    ctx.read(|at| match zset::get(&at, key) {
        Ok(Some(z)) => f(&at, &z),
        Ok(None) => missing(),
        Err(e) => type_error(e),
    })
}

fn zrange(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let (kind, rev) = range_kind(&upper(&argv[0]));
    let req = match parse_range(argv, 1, false, kind, rev) {
        Ok(r) => r,
        Err(e) => return e,
    };
    with_zset(
        ctx,
        &argv[1],
        || Reply::Array(vec![]),
        |at, z| entries_reply(select(at, z, &argv[1], &req), req.with_scores, ctx.resp3),
    )
}

fn prepare_zrangestore(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    parse_range(argv, 2, true, RangeType::Auto, None)?;
    Ok(None)
}

fn apply_zrangestore(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let req = match parse_range(argv, 2, true, RangeType::Auto, None) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let picked = match zset::get(&*txn, &argv[2]) {
        Err(e) => return type_error(e),
        Ok(None) => Vec::new(),
        Ok(Some(z)) => select(&*txn, &z, &argv[2], &req),
    };
    Reply::Int(zset::store(txn, &argv[1], &picked))
}

fn zcard(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    with_zset(
        ctx,
        &argv[1],
        || Reply::Int(0),
        |_, z| Reply::Int(z.meta.size as i64),
    )
}

fn zscore(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    with_zset(
        ctx,
        &argv[1],
        || Reply::Nil,
        |at, z| zset::score(at, z, &argv[1], &argv[2]).map_or(Reply::Nil, Reply::Double),
    )
}

fn zmscore(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let nils = || Reply::Array(vec![Reply::Nil; argv.len() - 2]);
    with_zset(ctx, &argv[1], nils, |at, z| {
        Reply::Array(
            argv[2..]
                .iter()
                .map(|m| zset::score(at, z, &argv[1], m).map_or(Reply::Nil, Reply::Double))
                .collect(),
        )
    })
}

fn zrank(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let rev = upper(&argv[0]) == "ZREVRANK";
    with_zset(
        ctx,
        &argv[1],
        || Reply::Nil,
        |at, z| {
            zset::rank(at, z, &argv[1], &argv[2], rev).map_or(Reply::Nil, |r| Reply::Int(r as i64))
        },
    )
}

fn zcount(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let range = match parse_score_range(&argv[2], &argv[3]) {
        Ok(r) => r,
        Err(e) => return e,
    };
    with_zset(
        ctx,
        &argv[1],
        || Reply::Int(0),
        |at, z| Reply::Int(zset::count(at, z, &argv[1], &range) as i64),
    )
}

fn zlexcount(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let range = match parse_lex_range(&argv[2], &argv[3]) {
        Ok(r) => r,
        Err(e) => return e,
    };
    with_zset(
        ctx,
        &argv[1],
        || Reply::Int(0),
        |at, z| Reply::Int(zset::by_lex(at, z, &argv[1], &range, false, 0, -1).len() as i64),
    )
}

/// ZREMRANGEBY*'s selection.
fn parse_zremrange(argv: &[Bytes]) -> Result<Selection, Reply> {
    match upper(&argv[0]).as_str() {
        "ZREMRANGEBYRANK" => {
            let start = parse_i64(&argv[2]).ok_or_else(|| Reply::err(ERR_NOT_INTEGER))?;
            let stop = parse_i64(&argv[3]).ok_or_else(|| Reply::err(ERR_NOT_INTEGER))?;
            Ok(Selection::Rank(start, stop))
        }
        "ZREMRANGEBYSCORE" => Ok(Selection::Score(parse_score_range(&argv[2], &argv[3])?)),
        _ => Ok(Selection::Lex(parse_lex_range(&argv[2], &argv[3])?)),
    }
}

fn prepare_zremrange(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    parse_zremrange(argv)?;
    Ok(None)
}

fn apply_zremrange(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let selection = match parse_zremrange(argv) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let req = RangeRequest {
        selection,
        rev: false,
        offset: 0,
        limit: -1,
        with_scores: false,
    };
    let key = argv[1].clone();
    zset::remove_range(txn, &argv[1], |txn, z| select(txn, z, &key, &req))
        .map_or_else(type_error, Reply::Int)
}

/// ZPOPMIN/ZPOPMAX's count: None for a plain pop.
fn zpop_count(argv: &[Bytes]) -> Result<Option<u64>, Reply> {
    if argv.len() > 3 {
        return Err(Reply::err(ERR_SYNTAX));
    }
    argv.get(2)
        .map(|c| match parse_i64(c) {
            Some(n) if n >= 0 => Ok(n as u64),
            _ => Err(Reply::err("ERR value is out of range, must be positive")),
        })
        .transpose()
}

fn prepare_zpop(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    zpop_count(argv)?;
    Ok(None)
}

/// The reply shape of ZPOPMIN/ZPOPMAX depends on the protocol, so the entry says which.
fn apply_zpop(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let count = match zpop_count(argv) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let max = upper(&argv[0]) == "ZPOPMAX";
    match zset::pop(txn, &argv[1], max, count.unwrap_or(1)) {
        Err(e) => type_error(e),
        Ok(None) => Reply::Array(vec![]),
        // RESP3 nests the pairs when a count was given: the connection reshapes this flat
        // reply then (`resp3_pairs`), as the entry cannot know the client's protocol.
        Ok(Some(popped)) => entries_reply(popped, true, false),
    }
}

/// Whether a write's reply needs [`resp3_pairs`] for a RESP3 client (ZPOPMIN/ZPOPMAX with a
/// count).
pub fn wants_resp3_pairs(name: &str, argc: usize) -> bool {
    matches!(name, "zpopmin" | "zpopmax") && argc == 3
}

/// A flat [member, score, …] reply as RESP3's [[member, score], …].
pub fn resp3_pairs(reply: Reply) -> Reply {
    match reply {
        Reply::Array(items) => {
            let mut out = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(m), Some(s)) = (it.next(), it.next()) {
                out.push(Reply::Array(vec![m, s]));
            }
            Reply::Array(out)
        }
        other => other,
    }
}

/// ZMPOP's parsed arguments: (keys, max, count).
fn parse_zmpop(argv: &[Bytes]) -> Result<(&[Bytes], bool, u64), Reply> {
    let numkeys = match parse_i64(&argv[1]) {
        Some(n) if n > 0 => n as usize,
        _ => return Err(Reply::err("ERR numkeys should be greater than 0")),
    };
    let where_idx = 1 + numkeys + 1;
    if where_idx >= argv.len() {
        return Err(Reply::err(ERR_SYNTAX));
    }
    let max = match upper(&argv[where_idx]).as_str() {
        "MIN" => false,
        "MAX" => true,
        _ => return Err(Reply::err(ERR_SYNTAX)),
    };
    let mut count = None;
    let mut j = where_idx + 1;
    while j < argv.len() {
        if count.is_none() && upper(&argv[j]) == "COUNT" && j + 1 < argv.len() {
            count = match parse_i64(&argv[j + 1]) {
                Some(c) if c > 0 => Some(c as u64),
                _ => return Err(Reply::err("ERR count should be greater than 0")),
            };
            j += 2;
        } else {
            return Err(Reply::err(ERR_SYNTAX));
        }
    }
    Ok((&argv[2..2 + numkeys], max, count.unwrap_or(1)))
}

pub(crate) fn prepare_zmpop(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    parse_zmpop(argv)?;
    Ok(None)
}

pub(crate) fn apply_zmpop(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let (keys, max, count) = match parse_zmpop(argv) {
        Ok(p) => p,
        Err(e) => return e,
    };
    for key in keys {
        match zset::pop(txn, key, max, count) {
            Err(e) => return type_error(e),
            Ok(None) => continue,
            Ok(Some(popped)) => {
                return Reply::Array(vec![
                    Reply::Bulk(key.clone()),
                    entries_reply(popped, true, true),
                ])
            }
        }
    }
    Reply::NilArray
}

/// ZUNION/ZINTER/ZDIFF/ZINTERCARD and their STORE forms, in Redis's order: numkeys, the keys'
/// types, then the options.
struct Combine<'a> {
    keys: &'a [Bytes],
    op: Op,
    weights: Vec<f64>,
    how: Aggregate,
    with_scores: bool,
    limit: u64,
}

fn combine_op(name: &str) -> (Op, bool, bool) {
    // (op, store, cardinality only)
    match name {
        "ZUNION" => (Op::Union, false, false),
        "ZINTER" => (Op::Inter, false, false),
        "ZDIFF" => (Op::Diff, false, false),
        "ZINTERCARD" => (Op::Inter, false, true),
        "ZUNIONSTORE" => (Op::Union, true, false),
        "ZINTERSTORE" => (Op::Inter, true, false),
        _ => (Op::Diff, true, false),
    }
}

fn parse_combine<'a>(
    r: &(impl Reader + ?Sized),
    argv: &'a [Bytes],
) -> Result<(Combine<'a>, Vec<Scores>), Reply> {
    let name = upper(&argv[0]);
    let (op, store, card) = combine_op(&name);
    let numkeys_idx = if store { 2 } else { 1 };
    let setnum = parse_i64(&argv[numkeys_idx]).ok_or_else(|| Reply::err(ERR_NOT_INTEGER))?;
    if setnum < 1 {
        return Err(Reply::err(format!(
            "ERR at least 1 input key is needed for '{}' command",
            name.to_ascii_lowercase()
        )));
    }
    let setnum = setnum as usize;
    if setnum > argv.len() - (numkeys_idx + 1) {
        return Err(Reply::err(ERR_SYNTAX));
    }
    let keys = &argv[numkeys_idx + 1..numkeys_idx + 1 + setnum];
    let sets = zset::inputs(r, keys).map_err(type_error)?;
    let mut c = Combine {
        keys,
        op,
        weights: vec![1.0; setnum],
        how: Aggregate::Sum,
        with_scores: false,
        limit: 0,
    };
    let mut j = numkeys_idx + 1 + setnum;
    while j < argv.len() {
        let remaining = argv.len() - j;
        let opt = upper(&argv[j]);
        if op != Op::Diff && !card && remaining > setnum && opt == "WEIGHTS" {
            for (i, w) in argv[j + 1..j + 1 + setnum].iter().enumerate() {
                c.weights[i] = strtod::parse_strict(w)
                    .ok_or_else(|| Reply::err("ERR weight value is not a float"))?;
            }
            j += 1 + setnum;
        } else if op != Op::Diff && !card && remaining >= 2 && opt == "AGGREGATE" {
            c.how = match upper(&argv[j + 1]).as_str() {
                "SUM" => Aggregate::Sum,
                "MIN" => Aggregate::Min,
                "MAX" => Aggregate::Max,
                _ => return Err(Reply::err(ERR_SYNTAX)),
            };
            j += 2;
        } else if !store && !card && opt == "WITHSCORES" {
            c.with_scores = true;
            j += 1;
        } else if card && remaining >= 2 && opt == "LIMIT" {
            c.limit = match parse_i64(&argv[j + 1]) {
                Some(l) if l >= 0 => l as u64,
                _ => return Err(Reply::err("ERR LIMIT can't be negative")),
            };
            j += 2;
        } else {
            return Err(Reply::err(ERR_SYNTAX));
        }
    }
    Ok((c, sets))
}

fn run_combine(
    c: &Combine,
    sets: Vec<std::collections::BTreeMap<Vec<u8>, f64>>,
    card: bool,
) -> Vec<Entry> {
    let limit = (card && c.limit > 0).then_some(c.limit);
    let _ = c.keys;
    zset::combine(sets, &c.weights, c.op, c.how, limit)
}

fn zcombine(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let card = upper(&argv[0]) == "ZINTERCARD";
    ctx.read(|at| match parse_combine(&at, argv) {
        Err(e) => e,
        Ok((c, sets)) => {
            let result = run_combine(&c, sets, card);
            if card {
                Reply::Int(result.len() as i64)
            } else {
                entries_reply(result, c.with_scores, ctx.resp3)
            }
        }
    })
}

fn apply_zcombine_store(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let (c, sets) = match parse_combine(&*txn, argv) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let result = run_combine(&c, sets, false);
    Reply::Int(zset::store(txn, &argv[1], &result))
}

/// ZRANDMEMBER key [count [WITHSCORES]], with HRANDFIELD's rules.
fn zrandmember(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let Some(count) = argv.get(2) else {
        return with_zset(
            ctx,
            &argv[1],
            || Reply::Nil,
            |at, z| {
                let all = zset::all(at, z, &argv[1]);
                let pick = ctx.with_rng(|r| r.random_range(0..all.len()));
                Reply::Bulk(all[pick].0.clone().into())
            },
        );
    };
    let count = match parse_i64(count) {
        Some(i64::MIN) => {
            return Reply::err(format!(
                "ERR value is out of range, value must between {} and {}",
                -i64::MAX,
                i64::MAX
            ))
        }
        Some(c) => c,
        None => return Reply::err(ERR_NOT_INTEGER),
    };
    let with_scores = match argv.get(3) {
        _ if argv.len() > 4 => return Reply::err(ERR_SYNTAX),
        Some(opt) if upper(opt) == "WITHSCORES" => true,
        Some(_) => return Reply::err(ERR_SYNTAX),
        None => false,
    };
    if with_scores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Reply::err("ERR value is out of range");
    }
    if count < -MAX_RANDOM {
        return Reply::err(format!(
            "ERR value is out of range, a negative count may ask for at most {MAX_RANDOM} members"
        ));
    }
    with_zset(
        ctx,
        &argv[1],
        || Reply::Array(vec![]),
        |at, z| {
            let mut all = zset::all(at, z, &argv[1]);
            let picked: Vec<Entry> = ctx.with_rng(|rng| {
                if count >= 0 {
                    all.shuffle(rng);
                    all.truncate(count as usize);
                    all
                } else {
                    (0..count.unsigned_abs())
                        .map(|_| all[rng.random_range(0..all.len())].clone())
                        .collect()
                }
            });
            entries_reply(picked, with_scores, ctx.resp3)
        },
    )
}

/// A score as a small sorted set stores it (`d2string`): integral values as integers.
fn stored_score_text(s: f64) -> String {
    if s.is_finite() && s == s.trunc() && s.abs() <= (i64::MAX / 2) as f64 {
        return format!("{}", s as i64);
    }
    rockraft_resp::reply::format_double_g17(s)
}

/// ZSCAN: as HSCAN (a cursor names the next member; a small sorted set comes back whole).
fn zscan(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let scan = match ElementScan::start(ctx, argv) {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    with_zset(ctx, &argv[1], ElementScan::done, |r, z| {
        let whole = z.meta.size <= LISTPACK_ENTRIES;
        scan.page(ctx, r, &argv[1], z.meta.version, whole, |m, s, out| {
            let score = f64::from_bits(u64::from_be_bytes(s.try_into().unwrap_or([0; 8])));
            out.push(Reply::Bulk(Bytes::copy_from_slice(m)));
            out.push(Reply::bulk(stored_score_text(score)));
        })
    })
}
