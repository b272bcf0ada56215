//! Hash commands: HSET HSETNX HMSET HGET HMGET HDEL HEXISTS HLEN HSTRLEN HKEYS HVALS HGETALL
//! HINCRBY HINCRBYFLOAT HRANDFIELD HSCAN. The hash itself is `types::hash`.
//!
//! ```text
//! HSET key field value [field value ...]
//! HRANDFIELD key [count [WITHVALUES]]
//! HSCAN key cursor [MATCH pattern] [COUNT count]
//! ```

use bytes::Bytes;
use rand::seq::SliceRandom;
use rand::Rng;
use rockraft_resp::Reply;

use super::flags::{DENYOOM, FAST, READONLY, WRITE};
use super::keyspace::ElementScan;
use super::{
    as_is, int_arg, parse_i64, spec, type_error, upper, wrong_arity, CommandSpec, Kind, ReadCtx,
    ERR_NOT_FLOAT, ERR_NOT_INTEGER, ERR_SYNTAX,
};
use crate::db::Txn;
use crate::long_double::LongDouble;
use crate::types::{hash, Collection, Reader};

/// Up to this many fields, Redis keeps a hash as a listpack and HSCAN returns it whole.
const LISTPACK_ENTRIES: u64 = 128;

/// Most fields a negative HRANDFIELD count may ask for (repeats allowed, so the reply is not
/// bounded by the hash).
const MAX_RANDOM: i64 = 10_000_000;

#[rustfmt::skip]
pub fn commands() -> Vec<CommandSpec> {
    use Kind::{Read, Write};
    let g = "hash";
    vec![
        spec("hset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Creates or modifies the value of a field in a hash.", Write { prepare: prepare_pairs, apply: apply_hset }),
        spec("hsetnx", 4, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Sets the value of a field in a hash only when the field doesn't exist.", Write { prepare: as_is, apply: apply_hsetnx }),
        spec("hmset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Sets the values of multiple fields.", Write { prepare: prepare_pairs, apply: apply_hset }),
        spec("hget", 3, READONLY | FAST, (1, 1, 1), g, "Returns the value of a field in a hash.", Read(hget)),
        spec("hmget", -3, READONLY | FAST, (1, 1, 1), g, "Returns the values of all fields in a hash.", Read(hmget)),
        spec("hdel", -3, WRITE | FAST, (1, 1, 1), g, "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.", Write { prepare: as_is, apply: apply_hdel }),
        spec("hexists", 3, READONLY | FAST, (1, 1, 1), g, "Determines whether a field exists in a hash.", Read(hexists)),
        spec("hlen", 2, READONLY | FAST, (1, 1, 1), g, "Returns the number of fields in a hash.", Read(hlen)),
        spec("hstrlen", 3, READONLY | FAST, (1, 1, 1), g, "Returns the length of the value of a field.", Read(hstrlen)),
        spec("hkeys", 2, READONLY, (1, 1, 1), g, "Returns all fields in a hash.", Read(hkeys)),
        spec("hvals", 2, READONLY, (1, 1, 1), g, "Returns all values in a hash.", Read(hvals)),
        spec("hgetall", 2, READONLY, (1, 1, 1), g, "Returns all fields and values in a hash.", Read(hgetall)),
        spec("hincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.", Write { prepare: prepare_hincrby, apply: apply_hincrby }),
        spec("hincrbyfloat", 4, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.", Write { prepare: prepare_hincrbyfloat, apply: apply_hincrbyfloat }),
        spec("hrandfield", -2, READONLY, (1, 1, 1), g, "Returns one or more random fields from a hash.", Read(hrandfield)),
        spec("hscan", -3, READONLY, (1, 1, 1), g, "Iterates over fields and values of a hash.", Read(hscan)),
    ]
}

/// HSET and HMSET take field-value pairs.
fn prepare_pairs(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    if !argv.len().is_multiple_of(2) {
        return Err(wrong_arity(
            &String::from_utf8_lossy(&argv[0]).to_ascii_lowercase(),
        ));
    }
    Ok(None)
}

fn pairs(argv: &[Bytes]) -> Vec<(&Bytes, &Bytes)> {
    argv.chunks_exact(2).map(|p| (&p[0], &p[1])).collect()
}

fn apply_hset(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    if let Err(e) = prepare_pairs(argv, 0) {
        return e;
    }
    match hash::set(txn, &argv[1], &pairs(&argv[2..]), false) {
        Ok(_) if upper(&argv[0]) == "HMSET" => Reply::ok(),
        Ok(added) => Reply::Int(added),
        Err(e) => type_error(e),
    }
}

fn apply_hsetnx(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    match hash::set(txn, &argv[1], &pairs(&argv[2..4]), true) {
        Ok(added) => Reply::Int(added),
        Err(e) => type_error(e),
    }
}

fn apply_hdel(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    match hash::del(txn, &argv[1], &argv[2..]) {
        Ok(n) => Reply::Int(n),
        Err(e) => type_error(e),
    }
}

fn prepare_hincrby(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    int_arg(&argv[3])?;
    Ok(None)
}

fn apply_hincrby(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let by = match int_arg(&argv[3]) {
        Ok(by) => by,
        Err(e) => return e,
    };
    match hash::incr_by(txn, &argv[1], &argv[2], by) {
        Ok(n) => Reply::Int(n),
        Err(e) => type_error(e),
    }
}

/// The increment of HINCRBYFLOAT: a long double that is neither NaN nor infinite.
fn float_increment(b: &[u8]) -> Result<LongDouble, Reply> {
    let by = LongDouble::parse(b).ok_or_else(|| Reply::err(ERR_NOT_FLOAT))?;
    if by.is_infinite() {
        return Err(Reply::err("ERR value is NaN or Infinity"));
    }
    Ok(by)
}

fn prepare_hincrbyfloat(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    float_increment(&argv[3])?;
    Ok(None)
}

fn apply_hincrbyfloat(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let by = match float_increment(&argv[3]) {
        Ok(by) => by,
        Err(e) => return e,
    };
    match hash::incr_by_float(txn, &argv[1], &argv[2], by) {
        Ok(text) => Reply::bulk(text),
        Err(e) => type_error(e),
    }
}

/// Runs `f` on the live hash at `argv[1]` in a consistent view; `missing` when there is none.
fn with_hash(
    ctx: &ReadCtx,
    argv: &[Bytes],
    missing: impl Fn() -> Reply,
    f: impl Fn(&dyn Reader, &Collection) -> Reply,
) -> Reply {
    ctx.read(|r| match hash::get_hash(r, &argv[1]) {
        Ok(Some(h)) => f(r, &h),
        Ok(None) => missing(),
        Err(e) => type_error(e),
    })
}

fn hget(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    with_hash(
        ctx,
        argv,
        || Reply::Nil,
        |view, h| {
            hash::get(view, h, &argv[1], &argv[2]).map_or(Reply::Nil, |v| Reply::Bulk(v.into()))
        },
    )
}

fn hmget(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let nils = || Reply::Array(vec![Reply::Nil; argv.len() - 2]);
    with_hash(ctx, argv, nils, |view, h| {
        Reply::Array(
            argv[2..]
                .iter()
                .map(|f| {
                    hash::get(view, h, &argv[1], f).map_or(Reply::Nil, |v| Reply::Bulk(v.into()))
                })
                .collect(),
        )
    })
}

fn hexists(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    with_hash(
        ctx,
        argv,
        || Reply::Int(0),
        |view, h| Reply::Int(i64::from(hash::get(view, h, &argv[1], &argv[2]).is_some())),
    )
}

fn hlen(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    with_hash(
        ctx,
        argv,
        || Reply::Int(0),
        |_, h| Reply::Int(h.meta.size as i64),
    )
}

fn hstrlen(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    with_hash(
        ctx,
        argv,
        || Reply::Int(0),
        |view, h| Reply::Int(hash::get(view, h, &argv[1], &argv[2]).map_or(0, |v| v.len() as i64)),
    )
}

/// Every (field, value) of the hash, in field order.
fn all(view: &dyn Reader, h: &Collection, key: &[u8]) -> Vec<(Bytes, Bytes)> {
    let mut out = Vec::with_capacity(h.meta.size.min(1 << 20) as usize);
    hash::scan(view, h, key, &[], |f, v| {
        out.push((Bytes::copy_from_slice(f), Bytes::copy_from_slice(v)));
        true
    });
    out
}

fn hkeys(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    with_hash(
        ctx,
        argv,
        || Reply::Array(vec![]),
        |view, h| {
            let mut out = Vec::with_capacity(h.meta.size.min(1 << 20) as usize);
            hash::scan(view, h, &argv[1], &[], |f, _| {
                out.push(Reply::Bulk(Bytes::copy_from_slice(f)));
                true
            });
            Reply::Array(out)
        },
    )
}

fn hvals(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    with_hash(
        ctx,
        argv,
        || Reply::Array(vec![]),
        |view, h| {
            let mut out = Vec::with_capacity(h.meta.size.min(1 << 20) as usize);
            hash::scan(view, h, &argv[1], &[], |_, v| {
                out.push(Reply::Bulk(Bytes::copy_from_slice(v)));
                true
            });
            Reply::Array(out)
        },
    )
}

fn hgetall(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    with_hash(
        ctx,
        argv,
        || Reply::Map(vec![]),
        |view, h| {
            Reply::Map(
                all(view, h, &argv[1])
                    .into_iter()
                    .map(|(f, v)| (Reply::Bulk(f), Reply::Bulk(v)))
                    .collect(),
            )
        },
    )
}

/// HRANDFIELD key [count [WITHVALUES]], with Redis's rules: a positive count gives distinct
/// fields (at most all of them), a negative one exactly |count| fields, repeats allowed.
fn hrandfield(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let Some(count) = argv.get(2) else {
        return with_hash(
            ctx,
            argv,
            || Reply::Nil,
            |view, h| {
                let pick = ctx.with_rng(|r| r.random_range(0..h.meta.size as usize));
                let mut i = 0;
                let mut out = Reply::Nil;
                hash::scan(view, h, &argv[1], &[], |f, _| {
                    if i == pick {
                        out = Reply::Bulk(Bytes::copy_from_slice(f));
                        return false;
                    }
                    i += 1;
                    true
                });
                out
            },
        );
    };
    // Redis's order: the count, then the syntax, then the count's range, then the key.
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
    let with_values = match argv.get(3) {
        _ if argv.len() > 4 => return Reply::err(ERR_SYNTAX),
        Some(opt) if upper(opt) == "WITHVALUES" => true,
        Some(_) => return Reply::err(ERR_SYNTAX),
        None => false,
    };
    if with_values && count < -(i64::MAX / 2) {
        return Reply::err("ERR value is out of range");
    }
    if count < -MAX_RANDOM {
        // Redis would try to build the reply (and run out of memory); refuse instead.
        return Reply::err(format!(
            "ERR value is out of range, a negative count may ask for at most {MAX_RANDOM} fields"
        ));
    }
    with_hash(
        ctx,
        argv,
        || Reply::Array(vec![]),
        |view, h| {
            let fields = all(view, h, &argv[1]);
            let picked: Vec<&(Bytes, Bytes)> = ctx.with_rng(|rng| {
                if count >= 0 {
                    let n = (count as u64).min(h.meta.size) as usize;
                    let mut chosen: Vec<&(Bytes, Bytes)> = fields.iter().collect();
                    chosen.shuffle(rng);
                    chosen.truncate(n);
                    chosen
                } else {
                    (0..count.unsigned_abs())
                        .map(|_| &fields[rng.random_range(0..fields.len())])
                        .collect()
                }
            });
            // (A negative count is bounded by MAX_RANDOM before the hash is read.)
            random_reply(ctx, picked, with_values)
        },
    )
}

fn random_reply(ctx: &ReadCtx, picked: Vec<&(Bytes, Bytes)>, with_values: bool) -> Reply {
    let resp3 = ctx.resp3;
    Reply::Array(if !with_values {
        picked
            .into_iter()
            .map(|(f, _)| Reply::Bulk(f.clone()))
            .collect()
    } else if resp3 {
        picked
            .into_iter()
            .map(|(f, v)| Reply::Array(vec![Reply::Bulk(f.clone()), Reply::Bulk(v.clone())]))
            .collect()
    } else {
        picked
            .into_iter()
            .flat_map(|(f, v)| [Reply::Bulk(f.clone()), Reply::Bulk(v.clone())])
            .collect()
    })
}

/// HSCAN: a cursor names the next field, kept by the node (as SCAN's do). A hash Redis would
/// keep as a listpack comes back whole in one call, as from Redis.
fn hscan(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let scan = match ElementScan::start(ctx, argv) {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    with_hash(ctx, argv, ElementScan::done, |r, h| {
        let whole = h.meta.size <= LISTPACK_ENTRIES;
        scan.page(ctx, r, &argv[1], h.meta.version, whole, |f, v, out| {
            out.push(Reply::Bulk(Bytes::copy_from_slice(f)));
            out.push(Reply::Bulk(Bytes::copy_from_slice(v)));
        })
    })
}
