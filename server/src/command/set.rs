//! Set commands: SADD SREM SCARD SISMEMBER SMISMEMBER SMEMBERS SPOP SRANDMEMBER SMOVE SINTER
//! SINTERCARD SUNION SDIFF SINTERSTORE SUNIONSTORE SDIFFSTORE SSCAN. The set itself is
//! `types::set`.
//!
//! ```text
//! SPOP key [count]                    (proposed as SPOP key <seed> [count])
//! SINTERCARD numkeys key [key ...] [LIMIT limit]
//! SSCAN key cursor [MATCH pattern] [COUNT count]
//! ```
//! SPOP's choice is made at apply from a seed the proposing node puts in the entry, so every
//! replica pops the same members.

use bytes::Bytes;
use rand::seq::SliceRandom;
use rand::Rng;
use rockraft_resp::Reply;

use super::flags::{DENYOOM, FAST, READONLY, WRITE};
use super::keyspace::ElementScan;
use super::{
    as_is, parse_i64, spec, type_error, upper, CommandSpec, Kind, ReadCtx, ERR_NOT_INTEGER,
    ERR_SYNTAX,
};
use crate::db::Txn;
use crate::types::set::{self, Op};
use crate::types::{Collection, Reader};

/// Up to this many members, Redis keeps a small set compact and SSCAN returns it whole.
const COMPACT_MEMBERS: u64 = 128;

/// Most members a negative SRANDMEMBER count may ask for (see HRANDFIELD's).
const MAX_RANDOM: i64 = 10_000_000;

#[rustfmt::skip]
pub fn commands() -> Vec<CommandSpec> {
    use Kind::{Read, Write};
    let g = "set";
    vec![
        spec("sadd", -3, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Adds one or more members to a set. Creates the key if it doesn't exist.", Write { prepare: as_is, apply: apply_sadd }),
        spec("srem", -3, WRITE | FAST, (1, 1, 1), g, "Removes one or more members from a set. Deletes the set if the last member was removed.", Write { prepare: as_is, apply: apply_srem }),
        spec("scard", 2, READONLY | FAST, (1, 1, 1), g, "Returns the number of members in a set.", Read(scard)),
        spec("sismember", 3, READONLY | FAST, (1, 1, 1), g, "Determines whether a member belongs to a set.", Read(sismember)),
        spec("smismember", -3, READONLY | FAST, (1, 1, 1), g, "Determines whether multiple members belong to a set.", Read(smismember)),
        spec("smembers", 2, READONLY, (1, 1, 1), g, "Returns all members of a set.", Read(smembers)),
        spec("spop", -2, WRITE | FAST, (1, 1, 1), g, "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.", Write { prepare: prepare_spop, apply: apply_spop }),
        spec("srandmember", -2, READONLY, (1, 1, 1), g, "Get one or multiple random members from a set", Read(srandmember)),
        spec("smove", 4, WRITE | FAST, (1, 2, 1), g, "Moves a member from one set to another.", Write { prepare: as_is, apply: apply_smove }),
        spec("sinter", -2, READONLY, (1, -1, 1), g, "Returns the intersect of multiple sets.", Read(sinter)),
        spec("sintercard", -3, READONLY, (0, 0, 0), g, "Returns the number of members of the intersect of multiple sets.", Read(sintercard)).numkeys(1),
        spec("sunion", -2, READONLY, (1, -1, 1), g, "Returns the union of multiple sets.", Read(sunion)),
        spec("sdiff", -2, READONLY, (1, -1, 1), g, "Returns the difference of multiple sets.", Read(sdiff)),
        spec("sinterstore", -3, WRITE | DENYOOM, (1, -1, 1), g, "Stores the intersect of multiple sets in a key.", Write { prepare: as_is, apply: apply_store }),
        spec("sunionstore", -3, WRITE | DENYOOM, (1, -1, 1), g, "Stores the union of multiple sets in a key.", Write { prepare: as_is, apply: apply_store }),
        spec("sdiffstore", -3, WRITE | DENYOOM, (1, -1, 1), g, "Stores the difference of multiple sets in a key.", Write { prepare: as_is, apply: apply_store }),
        spec("sscan", -3, READONLY, (1, 1, 1), g, "Iterates over members of a set.", Read(sscan)),
    ]
}

fn members_reply(members: Vec<Vec<u8>>) -> Reply {
    Reply::Set(members.into_iter().map(|m| Reply::Bulk(m.into())).collect())
}

fn apply_sadd(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    set::add(txn, &argv[1], &argv[2..]).map_or_else(type_error, Reply::Int)
}

fn apply_srem(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    set::remove(txn, &argv[1], &argv[2..]).map_or_else(type_error, Reply::Int)
}

/// SPOP's count: a non-negative integer (Redis's message for anything else).
fn positive_count(b: &[u8]) -> Result<u64, Reply> {
    match parse_i64(b) {
        Some(n) if n >= 0 => Ok(n as u64),
        _ => Err(Reply::err("ERR value is out of range, must be positive")),
    }
}

/// `SPOP key [count]` → `SPOP key <seed> [count]`.
fn prepare_spop(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    if argv.len() > 3 {
        return Err(Reply::err(ERR_SYNTAX));
    }
    if let Some(count) = argv.get(2) {
        positive_count(count)?;
    }
    let seed: u64 = rand::rng().random();
    let mut out = vec![
        argv[0].clone(),
        argv[1].clone(),
        Bytes::from(seed.to_string()),
    ];
    out.extend(argv.get(2).cloned());
    Ok(Some(out))
}

fn apply_spop(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let Some(seed) = argv
        .get(2)
        .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok())
    else {
        return Reply::err("ERR SPOP entry without a seed");
    };
    let count = match argv.get(3).map(|c| positive_count(c)).transpose() {
        Ok(c) => c,
        Err(e) => return e,
    };
    match set::pop(txn, &argv[1], count.unwrap_or(1), seed) {
        Err(e) => type_error(e),
        Ok(popped) => match count {
            Some(_) => members_reply(popped),
            None => popped
                .into_iter()
                .next()
                .map_or(Reply::Nil, |m| Reply::Bulk(m.into())),
        },
    }
}

fn apply_smove(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    set::move_member(txn, &argv[1], &argv[2], &argv[3])
        .map_or_else(type_error, |moved| Reply::Int(i64::from(moved)))
}

fn op_of(name: &[u8]) -> Op {
    match upper(name).as_str() {
        "SINTER" | "SINTERSTORE" | "SINTERCARD" => Op::Inter,
        "SUNION" | "SUNIONSTORE" => Op::Union,
        _ => Op::Diff,
    }
}

fn apply_store(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    match set::combine(&*txn, op_of(&argv[0]), &argv[2..], None) {
        Ok(members) => Reply::Int(set::store(txn, &argv[1], &members)),
        Err(e) => type_error(e),
    }
}

/// Runs `f` on the live set at `argv[1]` in a consistent view; `missing` when there is none.
fn with_set(
    ctx: &ReadCtx,
    argv: &[Bytes],
    missing: impl Fn() -> Reply,
    f: impl Fn(&dyn Reader, &Collection) -> Reply,
) -> Reply {
    ctx.read(|at| match set::get(&at, &argv[1]) {
        Ok(Some(s)) => f(&at, &s),
        Ok(None) => missing(),
        Err(e) => type_error(e),
    })
}

fn scard(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    with_set(
        ctx,
        argv,
        || Reply::Int(0),
        |_, s| Reply::Int(s.meta.size as i64),
    )
}

fn sismember(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    with_set(
        ctx,
        argv,
        || Reply::Int(0),
        |at, s| Reply::Int(i64::from(set::is_member(at, s, &argv[1], &argv[2]))),
    )
}

fn smismember(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let zeros = || Reply::Array(vec![Reply::Int(0); argv.len() - 2]);
    with_set(ctx, argv, zeros, |at, s| {
        Reply::Array(
            argv[2..]
                .iter()
                .map(|m| Reply::Int(i64::from(set::is_member(at, s, &argv[1], m))))
                .collect(),
        )
    })
}

fn smembers(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    with_set(
        ctx,
        argv,
        || Reply::Set(vec![]),
        |at, s| members_reply(set::members(at, s, &argv[1])),
    )
}

/// SRANDMEMBER key [count], with HRANDFIELD's rules for the count.
fn srandmember(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let Some(count) = argv.get(2) else {
        return with_set(
            ctx,
            argv,
            || Reply::Nil,
            |at, s| {
                let members = set::members(at, s, &argv[1]);
                let pick = ctx.with_rng(|r| r.random_range(0..members.len()));
                Reply::Bulk(members[pick].clone().into())
            },
        );
    };
    // Redis's order: the syntax, then the count, then the key.
    if argv.len() > 3 {
        return Reply::err(ERR_SYNTAX);
    }
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
    if count < -MAX_RANDOM {
        return Reply::err(format!(
            "ERR value is out of range, a negative count may ask for at most {MAX_RANDOM} members"
        ));
    }
    with_set(
        ctx,
        argv,
        || Reply::Array(vec![]),
        |at, s| {
            let mut members = set::members(at, s, &argv[1]);
            let picked: Vec<Vec<u8>> = ctx.with_rng(|rng| {
                if count >= 0 {
                    members.shuffle(rng);
                    members.truncate(count as usize);
                    members
                } else {
                    (0..count.unsigned_abs())
                        .map(|_| members[rng.random_range(0..members.len())].clone())
                        .collect()
                }
            });
            Reply::Array(picked.into_iter().map(|m| Reply::Bulk(m.into())).collect())
        },
    )
}

fn combine_reply(ctx: &ReadCtx, op: Op, keys: &[Bytes]) -> Reply {
    ctx.read(|at| set::combine(&at, op, keys, None).map_or_else(type_error, members_reply))
}

fn sinter(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    combine_reply(ctx, Op::Inter, &argv[1..])
}

fn sunion(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    combine_reply(ctx, Op::Union, &argv[1..])
}

fn sdiff(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    combine_reply(ctx, Op::Diff, &argv[1..])
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
fn sintercard(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let numkeys = match parse_i64(&argv[1]) {
        Some(n) if n > 0 => n as usize,
        _ => return Reply::err("ERR numkeys should be greater than 0"),
    };
    if numkeys > argv.len() - 2 {
        return Reply::err("ERR Number of keys can't be greater than number of args");
    }
    let keys = &argv[2..2 + numkeys];
    let mut limit = 0u64;
    let mut rest = &argv[2 + numkeys..];
    while let Some(opt) = rest.first() {
        if upper(opt) != "LIMIT" || rest.len() < 2 {
            return Reply::err(ERR_SYNTAX);
        }
        limit = match parse_i64(&rest[1]) {
            Some(l) if l >= 0 => l as u64,
            _ => return Reply::err("ERR LIMIT can't be negative"),
        };
        rest = &rest[2..];
    }
    ctx.read(|at| {
        let limit = (limit > 0).then_some(limit);
        set::combine(&at, Op::Inter, keys, limit)
            .map_or_else(type_error, |m| Reply::Int(m.len() as i64))
    })
}

/// SSCAN: as HSCAN (a cursor names the next member; a small set comes back whole).
fn sscan(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let scan = match ElementScan::start(ctx, argv) {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    with_set(ctx, argv, ElementScan::done, |r, s| {
        let whole = s.meta.size <= COMPACT_MEMBERS;
        scan.page(ctx, r, &argv[1], s.meta.version, whole, |m, _, out| {
            out.push(Reply::Bulk(Bytes::copy_from_slice(m)));
        })
    })
}
