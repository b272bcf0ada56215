//! List commands: LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LLEN LINDEX LSET LRANGE LTRIM LINSERT
//! LREM LPOS LMOVE RPOPLPUSH LMPOP. The list itself is `types::list`.
//!
//! ```text
//! LPOP key [count]
//! LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
//! LMOVE source destination LEFT|RIGHT LEFT|RIGHT
//! LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]
//! ```

use bytes::Bytes;
use rockraft_resp::Reply;

use super::flags::{DENYOOM, FAST, READONLY, WRITE};
use super::{
    as_is, int_arg, parse_i64, spec, type_error, upper, CommandSpec, Kind, ReadCtx, ERR_SYNTAX,
};
use crate::db::Txn;
use crate::types::list::{self, End, Position};
use crate::types::{Collection, Reader};

#[rustfmt::skip]
pub fn commands() -> Vec<CommandSpec> {
    use Kind::{Read, Write};
    let g = "list";
    vec![
        spec("lpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Prepends one or more elements to a list. Creates the key if it doesn't exist.", Write { prepare: as_is, apply: apply_push }),
        spec("rpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Appends one or more elements to a list. Creates the key if it doesn't exist.", Write { prepare: as_is, apply: apply_push }),
        spec("lpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Prepends one or more elements to a list only when the list exists.", Write { prepare: as_is, apply: apply_push }),
        spec("rpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Appends an element to a list only when the list exists.", Write { prepare: as_is, apply: apply_push }),
        spec("lpop", -2, WRITE | FAST, (1, 1, 1), g, "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.", Write { prepare: prepare_pop, apply: apply_pop }),
        spec("rpop", -2, WRITE | FAST, (1, 1, 1), g, "Returns and removes the last elements of the list. Deletes the list if the last element was popped.", Write { prepare: prepare_pop, apply: apply_pop }),
        spec("llen", 2, READONLY | FAST, (1, 1, 1), g, "Returns the length of a list.", Read(llen)),
        spec("lindex", 3, READONLY, (1, 1, 1), g, "Returns an element from a list by its index.", Read(lindex)),
        spec("lset", 4, WRITE | DENYOOM, (1, 1, 1), g, "Sets the value of an element in a list by its index.", Write { prepare: as_is, apply: apply_lset }),
        spec("lrange", 4, READONLY, (1, 1, 1), g, "Returns a range of elements from a list.", Read(lrange)),
        spec("ltrim", 4, WRITE, (1, 1, 1), g, "Removes elements from both ends a list. Deletes the list if all elements were trimmed.", Write { prepare: prepare_ltrim, apply: apply_ltrim }),
        spec("linsert", 5, WRITE | DENYOOM, (1, 1, 1), g, "Inserts an element before or after another element in a list.", Write { prepare: prepare_linsert, apply: apply_linsert }),
        spec("lrem", 4, WRITE, (1, 1, 1), g, "Removes elements from a list. Deletes the list if the last element was removed.", Write { prepare: prepare_lrem, apply: apply_lrem }),
        spec("lpos", -3, READONLY, (1, 1, 1), g, "Returns the index of matching elements in a list.", Read(lpos)),
        spec("lmove", 5, WRITE | DENYOOM, (1, 2, 1), g, "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.", Write { prepare: prepare_lmove, apply: apply_lmove }),
        spec("rpoplpush", 3, WRITE | DENYOOM, (1, 2, 1), g, "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.", Write { prepare: as_is, apply: apply_lmove }),
        spec("lmpop", -4, WRITE, (0, 0, 0), g, "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.", Write { prepare: prepare_lmpop, apply: apply_lmpop }).numkeys(1),
    ]
}

fn bulks(items: Vec<Vec<u8>>) -> Reply {
    Reply::Array(items.into_iter().map(|e| Reply::Bulk(e.into())).collect())
}

fn apply_push(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let name = upper(&argv[0]);
    let end = if name.starts_with('L') {
        End::Left
    } else {
        End::Right
    };
    list::push(txn, &argv[1], &argv[2..], end, name.ends_with('X'))
        .map_or_else(type_error, Reply::Int)
}

/// LPOP/RPOP's count: a non-negative integer.
fn pop_count(argv: &[Bytes]) -> Result<Option<u64>, Reply> {
    if argv.len() > 3 {
        return Err(super::wrong_arity(
            &String::from_utf8_lossy(&argv[0]).to_ascii_lowercase(),
        ));
    }
    argv.get(2)
        .map(|c| match parse_i64(c) {
            Some(n) if n >= 0 => Ok(n as u64),
            _ => Err(Reply::err("ERR value is out of range, must be positive")),
        })
        .transpose()
}

fn prepare_pop(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    pop_count(argv)?;
    Ok(None)
}

fn apply_pop(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let count = match pop_count(argv) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let end = if upper(&argv[0]) == "LPOP" {
        End::Left
    } else {
        End::Right
    };
    match list::pop(txn, &argv[1], end, count.unwrap_or(1)) {
        Err(e) => type_error(e),
        Ok(None) if count.is_some() => Reply::NilArray,
        Ok(None) => Reply::Nil,
        Ok(Some(items)) if count.is_some() => bulks(items),
        Ok(Some(items)) => items
            .into_iter()
            .next()
            .map_or(Reply::Nil, |e| Reply::Bulk(e.into())),
    }
}

/// LSET checks the key before the index (as Redis does), so it is validated at apply.
fn apply_lset(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    match list::get(&*txn, &argv[1]) {
        Ok(Some(_)) => {}
        Ok(None) => return type_error(crate::types::Error::NoSuchKey),
        Err(e) => return type_error(e),
    }
    let index = match int_arg(&argv[2]) {
        Ok(i) => i,
        Err(e) => return e,
    };
    list::set(txn, &argv[1], index, &argv[3]).map_or_else(type_error, |()| Reply::ok())
}

fn prepare_ltrim(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    int_arg(&argv[2])?;
    int_arg(&argv[3])?;
    Ok(None)
}

fn apply_ltrim(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let (start, stop) = match (int_arg(&argv[2]), int_arg(&argv[3])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    list::trim(txn, &argv[1], start, stop).map_or_else(type_error, |()| Reply::ok())
}

fn insert_side(b: &[u8]) -> Result<bool, Reply> {
    match upper(b).as_str() {
        "AFTER" => Ok(true),
        "BEFORE" => Ok(false),
        _ => Err(Reply::err(ERR_SYNTAX)),
    }
}

fn prepare_linsert(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    insert_side(&argv[2])?;
    Ok(None)
}

fn apply_linsert(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let after = match insert_side(&argv[2]) {
        Ok(a) => a,
        Err(e) => return e,
    };
    list::insert(txn, &argv[1], after, &argv[3], &argv[4]).map_or_else(type_error, Reply::Int)
}

fn prepare_lrem(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    int_arg(&argv[2])?;
    Ok(None)
}

fn apply_lrem(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let count = match int_arg(&argv[2]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    list::remove(txn, &argv[1], count, &argv[3]).map_or_else(type_error, Reply::Int)
}

fn end_of(b: &[u8]) -> Result<End, Reply> {
    match upper(b).as_str() {
        "LEFT" => Ok(End::Left),
        "RIGHT" => Ok(End::Right),
        _ => Err(Reply::err(ERR_SYNTAX)),
    }
}

pub(crate) fn prepare_lmove(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    end_of(&argv[3])?;
    end_of(&argv[4])?;
    Ok(None)
}

pub(crate) fn apply_lmove(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let ends = if argv.len() == 3 {
        Ok((End::Right, End::Left))
    } else {
        end_of(&argv[3]).and_then(|f| end_of(&argv[4]).map(|t| (f, t)))
    };
    let (from, to) = match ends {
        Ok(e) => e,
        Err(e) => return e,
    };
    match list::move_element(txn, &argv[1], &argv[2], from, to) {
        Ok(Some(v)) => Reply::Bulk(v.into()),
        Ok(None) => Reply::Nil,
        Err(e) => type_error(e),
    }
}

/// LMPOP's parsed arguments: (keys, end, count).
fn parse_lmpop(argv: &[Bytes]) -> Result<(&[Bytes], End, u64), Reply> {
    let numkeys = match parse_i64(&argv[1]) {
        Some(n) if n > 0 => n as usize,
        _ => return Err(Reply::err("ERR numkeys should be greater than 0")),
    };
    if numkeys > argv.len() - 3 {
        return Err(Reply::err("ERR syntax error"));
    }
    let keys = &argv[2..2 + numkeys];
    let end = end_of(&argv[2 + numkeys])?;
    let mut count = None;
    let mut rest = &argv[3 + numkeys..];
    while let Some(opt) = rest.first() {
        if upper(opt) != "COUNT" || rest.len() < 2 || count.is_some() {
            return Err(Reply::err(ERR_SYNTAX));
        }
        count = match parse_i64(&rest[1]) {
            Some(c) if c > 0 => Some(c as u64),
            _ => return Err(Reply::err("ERR count should be greater than 0")),
        };
        rest = &rest[2..];
    }
    Ok((keys, end, count.unwrap_or(1)))
}

pub(crate) fn prepare_lmpop(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    parse_lmpop(argv)?;
    Ok(None)
}

pub(crate) fn apply_lmpop(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let (keys, end, count) = match parse_lmpop(argv) {
        Ok(p) => p,
        Err(e) => return e,
    };
    for key in keys {
        match list::pop(txn, key, end, count) {
            Err(e) => return type_error(e),
            Ok(None) => continue,
            Ok(Some(items)) => return Reply::Array(vec![Reply::Bulk(key.clone()), bulks(items)]),
        }
    }
    Reply::NilArray
}

/// Runs `f` on the live list at `argv[1]` in a consistent view; `missing` when there is none.
fn with_list(
    ctx: &ReadCtx,
    argv: &[Bytes],
    missing: impl Fn() -> Reply,
    f: impl Fn(&dyn Reader, &Collection) -> Reply,
) -> Reply {
    ctx.read(|at| match list::get(&at, &argv[1]) {
        Ok(Some(l)) => f(&at, &l),
        Ok(None) => missing(),
        Err(e) => type_error(e),
    })
}

fn llen(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    with_list(
        ctx,
        argv,
        || Reply::Int(0),
        |_, l| Reply::Int(l.meta.size as i64),
    )
}

/// LINDEX checks the key before the index, as Redis does.
fn lindex(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    with_list(
        ctx,
        argv,
        || Reply::Nil,
        |at, l| match int_arg(&argv[2]) {
            Ok(index) => {
                list::index(at, l, &argv[1], index).map_or(Reply::Nil, |e| Reply::Bulk(e.into()))
            }
            Err(e) => e,
        },
    )
}

fn lrange(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let (start, stop) = match (int_arg(&argv[2]), int_arg(&argv[3])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    with_list(
        ctx,
        argv,
        || Reply::Array(vec![]),
        |at, l| match list::normalize_range(start, stop, l.meta.size) {
            Some((from, to)) => bulks(list::range(at, l, &argv[1], from, to)),
            None => Reply::Array(vec![]),
        },
    )
}

fn lpos(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let mut opts = Position {
        rank: 1,
        count: None,
        maxlen: 0,
    };
    let mut rest = &argv[3..];
    while let Some(opt) = rest.first() {
        let Some(arg) = rest.get(1) else {
            return Reply::err(ERR_SYNTAX);
        };
        let opt = upper(opt);
        // COUNT and MAXLEN name themselves in the error for any bad number.
        let n = match (parse_i64(arg), opt.as_str()) {
            (Some(n), "RANK" | "COUNT" | "MAXLEN") => n,
            (None, "RANK") => return Reply::err(super::ERR_NOT_INTEGER),
            (None, "COUNT") => return Reply::err("ERR COUNT can't be negative"),
            (None, "MAXLEN") => return Reply::err("ERR MAXLEN can't be negative"),
            _ => return Reply::err(ERR_SYNTAX),
        };
        match opt.as_str() {
            "RANK" if n == 0 => {
                return Reply::err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list")
            }
            // Redis takes the most negative rank as "the first match from the right".
            "RANK" => opts.rank = if n == i64::MIN { -1 } else { n },
            "COUNT" if n < 0 => return Reply::err("ERR COUNT can't be negative"),
            "COUNT" => opts.count = Some(n as u64),
            "MAXLEN" if n < 0 => return Reply::err("ERR MAXLEN can't be negative"),
            "MAXLEN" => opts.maxlen = n as u64,
            _ => return Reply::err(ERR_SYNTAX),
        }
        rest = &rest[2..];
    }
    let none = || {
        if opts.count.is_some() {
            Reply::Array(vec![])
        } else {
            Reply::Nil
        }
    };
    with_list(ctx, argv, none, |at, l| {
        let found = list::positions(at, l, &argv[1], &argv[2], &opts);
        match opts.count {
            Some(_) => Reply::Array(found.into_iter().map(Reply::Int).collect()),
            None => found.first().map_or(Reply::Nil, |&i| Reply::Int(i)),
        }
    })
}
