//! String commands: GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX MGET MSET MSETNX INCR DECR
//! INCRBY DECRBY INCRBYFLOAT APPEND STRLEN GETRANGE SETRANGE.
//!
//! ```text
//! SET key value [NX | XX] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL]
//! GETEX key [EX s | PX ms | EXAT s | PXAT ms | PERSIST]
//! ```
//! Relative expiries are made absolute (`PXAT`) by the proposing node, so every replica
//! expires the key at the same instant; SETEX/PSETEX are proposed as `SET … PXAT`.

use bytes::Bytes;
use rockraft_resp::Reply;

use super::flags::{DENYOOM, FAST, READONLY, WRITE};
use super::{
    as_is, int_arg, parse_i64, spec, upper, CommandSpec, Kind, ReadCtx, ERR_NOT_FLOAT,
    ERR_NOT_INTEGER, ERR_OVERFLOW, ERR_SYNTAX, ERR_WRONGTYPE,
};
use crate::db::{Txn, Value, TYPE_STRING};
use crate::long_double::LongDouble;

/// Largest string Redis lets a value grow to (`proto-max-bulk-len`).
pub const MAX_STRING: i64 = 512 * 1024 * 1024;

pub fn commands() -> Vec<CommandSpec> {
    use Kind::{Read, Write};
    let g = "string";
    vec![
        spec("get", 2, READONLY | FAST, (1, 1, 1), g, "Returns the string value of a key.", Read(get)),
        spec("set", -3, WRITE | DENYOOM, (1, 1, 1), g, "Sets the string value of a key, ignoring its type.", Write { prepare: prepare_set, apply: apply_set }),
        spec("setnx", 3, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Set the string value of a key only when the key doesn't exist.", Write { prepare: as_is, apply: apply_setnx }),
        spec("setex", 4, WRITE | DENYOOM, (1, 1, 1), g, "Sets the string value and expiration time of a key.", Write { prepare: prepare_setex, apply: apply_set }),
        spec("psetex", 4, WRITE | DENYOOM, (1, 1, 1), g, "Sets both string value and expiration time in milliseconds of a key.", Write { prepare: prepare_setex, apply: apply_set }),
        spec("getset", 3, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Returns the previous string value of a key after setting it to a new value.", Write { prepare: as_is, apply: apply_getset }),
        spec("getdel", 2, WRITE | FAST, (1, 1, 1), g, "Returns the string value of a key after deleting the key.", Write { prepare: as_is, apply: apply_getdel }),
        spec("getex", -2, WRITE | FAST, (1, 1, 1), g, "Returns the string value of a key after setting its expiration time.", Write { prepare: prepare_getex, apply: apply_getex }),
        spec("mget", -2, READONLY | FAST, (1, -1, 1), g, "Atomically returns the string values of one or more keys.", Read(mget)),
        spec("mset", -3, WRITE | DENYOOM, (1, -1, 2), g, "Atomically creates or modifies the string values of one or more keys.", Write { prepare: prepare_mset, apply: apply_mset }),
        spec("msetnx", -3, WRITE | DENYOOM, (1, -1, 2), g, "Atomically modifies the string values of one or more keys only when all keys don't exist.", Write { prepare: prepare_mset, apply: apply_msetnx }),
        spec("incr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Increments the integer value of a key by one.", Write { prepare: as_is, apply: apply_incr }),
        spec("decr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Decrements the integer value of a key by one.", Write { prepare: as_is, apply: apply_incr }),
        spec("incrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Increments the integer value of a key by a number.", Write { prepare: prepare_incrby, apply: apply_incr }),
        spec("decrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Decrements a number from the integer value of a key.", Write { prepare: prepare_incrby, apply: apply_incr }),
        spec("incrbyfloat", 3, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Increment the floating point value of a key by a number.", Write { prepare: prepare_incrbyfloat, apply: apply_incrbyfloat }),
        spec("append", 3, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Appends a string to the value of a key.", Write { prepare: as_is, apply: apply_append }),
        spec("strlen", 2, READONLY | FAST, (1, 1, 1), g, "Returns the length of a string value.", Read(strlen)),
        spec("getrange", 4, READONLY, (1, 1, 1), g, "Returns a substring of the string stored at a key.", Read(getrange)),
        spec("setrange", 4, WRITE | DENYOOM, (1, 1, 1), g, "Overwrites a part of a string value with another by an offset.", Write { prepare: prepare_setrange, apply: apply_setrange }),
        spec("substr", 4, READONLY, (1, 1, 1), g, "Returns a substring from a string value.", Read(getrange)),
        spec("lcs", -3, READONLY, (1, 1, 1), g, "Finds the longest common substring.", Read(lcs)),
    ]
}

/// The string stored at `key`, or WRONGTYPE.
fn string_of(v: Option<Value>) -> Result<Option<Value>, Reply> {
    match v {
        Some(v) if v.kind != TYPE_STRING => Err(Reply::err(ERR_WRONGTYPE)),
        other => Ok(other),
    }
}

fn get(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    match string_of(ctx.get(&argv[1])) {
        Ok(Some(v)) => Reply::Bulk(v.data),
        Ok(None) => Reply::Nil,
        Err(e) => e,
    }
}

fn mget(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    Reply::Array(
        argv[1..]
            .iter()
            .map(|k| match ctx.get(k) {
                Some(v) if v.kind == TYPE_STRING => Reply::Bulk(v.data),
                _ => Reply::Nil,
            })
            .collect(),
    )
}

fn strlen(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    match string_of(ctx.get(&argv[1])) {
        Ok(v) => Reply::Int(v.map_or(0, |v| v.data.len() as i64)),
        Err(e) => e,
    }
}

fn getrange(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let (start, end) = match (int_arg(&argv[2]), int_arg(&argv[3])) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let v = match string_of(ctx.get(&argv[1])) {
        Ok(Some(v)) => v.data,
        Ok(None) => return Reply::bulk(""),
        Err(e) => return e,
    };
    let len = v.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Reply::bulk("");
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 {
        (len + end).max(0)
    } else {
        end.min(len - 1)
    };
    if start > end || len == 0 {
        return Reply::bulk("");
    }
    Reply::Bulk(v.slice(start as usize..=end as usize))
}

/// Parsed SET options.
#[derive(Default)]
struct SetOpts {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    /// Absolute expiry (ms), once canonicalised.
    pxat: Option<u64>,
}

/// The absolute expiry for `amount` of `unit` (EX/PX/EXAT/PXAT) at `now`, or `None` when the
/// time is invalid for Redis (not positive, or overflowing).
fn absolute_expiry(unit: &str, amount: i64, now: u64) -> Option<u64> {
    if amount <= 0 {
        return None;
    }
    let ms = match unit {
        "EX" | "EXAT" => amount.checked_mul(1000)?,
        _ => amount,
    };
    match unit {
        "EX" | "PX" => (now as i64).checked_add(ms).map(|v| v as u64),
        _ => Some(ms as u64),
    }
}

fn invalid_expire(cmd: &str) -> Reply {
    Reply::err(format!("ERR invalid expire time in '{cmd}' command"))
}

fn parse_set_opts(args: &[Bytes], now: u64) -> Result<SetOpts, Reply> {
    let mut o = SetOpts::default();
    let mut i = 0;
    while i < args.len() {
        let opt = upper(&args[i]);
        match opt.as_str() {
            "NX" if !o.xx => o.nx = true,
            "XX" if !o.nx => o.xx = true,
            "GET" => o.get = true,
            "KEEPTTL" if o.pxat.is_none() => o.keepttl = true,
            "EX" | "PX" | "EXAT" | "PXAT" if o.pxat.is_none() && !o.keepttl => {
                let Some(arg) = args.get(i + 1) else {
                    return Err(Reply::err(ERR_SYNTAX));
                };
                let amount = int_arg(arg)?;
                o.pxat =
                    Some(absolute_expiry(&opt, amount, now).ok_or_else(|| invalid_expire("set"))?);
                i += 1;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        i += 1;
    }
    Ok(o)
}

fn prepare_set(argv: &[Bytes], now: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    let o = parse_set_opts(&argv[3..], now)?;
    let mut out = argv[..3].to_vec();
    for (on, name) in [
        (o.nx, "NX"),
        (o.xx, "XX"),
        (o.get, "GET"),
        (o.keepttl, "KEEPTTL"),
    ] {
        if on {
            out.push(Bytes::from_static(name.as_bytes()));
        }
    }
    if let Some(at) = o.pxat {
        out.push(Bytes::from_static(b"PXAT"));
        out.push(Bytes::from(at.to_string()));
    }
    Ok(Some(out))
}

/// SETEX key seconds value / PSETEX key ms value → SET key value PXAT t.
fn prepare_setex(argv: &[Bytes], now: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    let cmd = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
    let amount = int_arg(&argv[2])?;
    let unit = if cmd == "setex" { "EX" } else { "PX" };
    let at = absolute_expiry(unit, amount, now).ok_or_else(|| invalid_expire(&cmd))?;
    Ok(Some(vec![
        Bytes::from_static(b"SET"),
        argv[1].clone(),
        argv[3].clone(),
        Bytes::from_static(b"PXAT"),
        Bytes::from(at.to_string()),
    ]))
}

fn apply_set(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let o = match parse_set_opts(&argv[3..], txn.now_ms()) {
        Ok(o) => o,
        Err(e) => return e,
    };
    // A plain SET overwrites whatever is there: only the options need the old value.
    let needs_old = o.nx || o.xx || o.get || o.keepttl;
    let old = if needs_old { txn.get(&argv[1]) } else { None };
    if o.get {
        if let Some(v) = &old {
            if v.kind != TYPE_STRING {
                return Reply::err(ERR_WRONGTYPE);
            }
        }
    }
    let old_reply = || match &old {
        Some(v) => Reply::Bulk(v.data.clone()),
        None => Reply::Nil,
    };
    if (o.nx && old.is_some()) || (o.xx && old.is_none()) {
        return if o.get { old_reply() } else { Reply::Nil };
    }
    let expire_at = match (o.pxat, o.keepttl, &old) {
        (Some(at), _, _) => at,
        (None, true, Some(v)) => v.expire_at,
        _ => 0,
    };
    txn.set(&argv[1], &Value::string(argv[2].clone(), expire_at));
    if o.get {
        old_reply()
    } else {
        Reply::ok()
    }
}

fn apply_setnx(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    if txn.get(&argv[1]).is_some() {
        return Reply::Int(0);
    }
    txn.set(&argv[1], &Value::string(argv[2].clone(), 0));
    Reply::Int(1)
}

fn apply_getset(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let old = match string_of(txn.get(&argv[1])) {
        Ok(old) => old,
        Err(e) => return e,
    };
    txn.set(&argv[1], &Value::string(argv[2].clone(), 0));
    old.map_or(Reply::Nil, |v| Reply::Bulk(v.data))
}

fn apply_getdel(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    match string_of(txn.get(&argv[1])) {
        Ok(Some(v)) => {
            txn.del(&argv[1]);
            Reply::Bulk(v.data)
        }
        Ok(None) => Reply::Nil,
        Err(e) => e,
    }
}

/// GETEX options → `None` (no change), `Some(0)` (PERSIST) or `Some(at)`.
fn parse_getex_opts(args: &[Bytes], now: u64) -> Result<Option<u64>, Reply> {
    match args {
        [] => Ok(None),
        [opt] if upper(opt) == "PERSIST" => Ok(Some(0)),
        [opt, amount] => {
            let unit = upper(opt);
            if !matches!(unit.as_str(), "EX" | "PX" | "EXAT" | "PXAT") {
                return Err(Reply::err(ERR_SYNTAX));
            }
            let amount = int_arg(amount)?;
            absolute_expiry(&unit, amount, now)
                .map(Some)
                .ok_or_else(|| invalid_expire("getex"))
        }
        _ => Err(Reply::err(ERR_SYNTAX)),
    }
}

fn prepare_getex(argv: &[Bytes], now: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    let mut out = argv[..2].to_vec();
    match parse_getex_opts(&argv[2..], now)? {
        None => {}
        Some(0) => out.push(Bytes::from_static(b"PERSIST")),
        Some(at) => {
            out.push(Bytes::from_static(b"PXAT"));
            out.push(Bytes::from(at.to_string()));
        }
    }
    Ok(Some(out))
}

fn apply_getex(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let change = match parse_getex_opts(&argv[2..], txn.now_ms()) {
        Ok(c) => c,
        Err(e) => return e,
    };
    match string_of(txn.get(&argv[1])) {
        Ok(Some(mut v)) => {
            if let Some(at) = change {
                v.expire_at = at;
                txn.set(&argv[1], &v);
            }
            Reply::Bulk(v.data)
        }
        Ok(None) => Reply::Nil,
        Err(e) => e,
    }
}

fn prepare_mset(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    if argv.len().is_multiple_of(2) {
        let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
        return Err(super::wrong_arity(&name));
    }
    Ok(None)
}

fn apply_mset(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    for pair in argv[1..].chunks_exact(2) {
        txn.set(&pair[0], &Value::string(pair[1].clone(), 0));
    }
    Reply::ok()
}

fn apply_msetnx(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    if argv[1..].chunks_exact(2).any(|p| txn.get(&p[0]).is_some()) {
        return Reply::Int(0);
    }
    apply_mset(txn, argv);
    Reply::Int(1)
}

fn prepare_incrby(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    let by = int_arg(&argv[2])?;
    if by == i64::MIN && upper(&argv[0]) == "DECRBY" {
        return Err(Reply::err("ERR decrement would overflow"));
    }
    Ok(None)
}

/// INCR, DECR, INCRBY and DECRBY.
fn apply_incr(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let name = upper(&argv[0]);
    let by = match name.as_str() {
        "INCR" => 1,
        "DECR" => -1,
        _ => match int_arg(&argv[2]) {
            Ok(v) if name == "DECRBY" => match v.checked_neg() {
                Some(n) => n,
                None => return Reply::err("ERR decrement would overflow"),
            },
            Ok(v) => v,
            Err(e) => return e,
        },
    };
    let old = match string_of(txn.get(&argv[1])) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let (current, expire_at) = match &old {
        Some(v) => match parse_i64(&v.data) {
            Some(n) => (n, v.expire_at),
            None => return Reply::err(ERR_NOT_INTEGER),
        },
        None => (0, 0),
    };
    let Some(new) = current.checked_add(by) else {
        return Reply::err(ERR_OVERFLOW);
    };
    txn.set(&argv[1], &Value::string(new.to_string(), expire_at));
    Reply::Int(new)
}

/// INCRBYFLOAT checks the key's type before its increment (as Redis does), so a bad increment
/// is found at apply, not before proposing.
fn prepare_incrbyfloat(_: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    Ok(None)
}

/// In long double, as Redis computes it (see `long_double`).
fn apply_incrbyfloat(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let old = match string_of(txn.get(&argv[1])) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let (current, expire_at) = match &old {
        Some(v) => match LongDouble::parse(&v.data) {
            Some(n) => (n, v.expire_at),
            None => return Reply::err(ERR_NOT_FLOAT),
        },
        None => (LongDouble::ZERO, 0),
    };
    let Some(by) = LongDouble::parse(&argv[2]) else {
        return Reply::err(ERR_NOT_FLOAT);
    };
    let new = current + by;
    if !new.is_finite() {
        return Reply::err("ERR increment would produce NaN or Infinity");
    }
    let text = new.to_redis_string();
    txn.set(&argv[1], &Value::string(text.clone(), expire_at));
    Reply::bulk(text)
}

fn too_big() -> Reply {
    Reply::err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
}

fn apply_append(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let old = match string_of(txn.get(&argv[1])) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let (mut data, expire_at) = match old {
        Some(v) => (v.data.to_vec(), v.expire_at),
        None => (Vec::new(), 0),
    };
    if data.len() as i64 + argv[2].len() as i64 > MAX_STRING {
        return too_big();
    }
    data.extend_from_slice(&argv[2]);
    let len = data.len() as i64;
    txn.set(&argv[1], &Value::string(data, expire_at));
    Reply::Int(len)
}

/// Whether a string of `offset + len` bytes would pass Redis's limit (or overflow on the way).
fn exceeds_max_string(offset: i64, len: usize) -> bool {
    i64::try_from(len)
        .ok()
        .and_then(|l| offset.checked_add(l))
        .is_none_or(|total| total > MAX_STRING)
}

fn prepare_setrange(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    let offset = int_arg(&argv[2])?;
    if offset < 0 {
        return Err(Reply::err("ERR offset is out of range"));
    }
    if !argv[3].is_empty() && exceeds_max_string(offset, argv[3].len()) {
        return Err(too_big());
    }
    Ok(None)
}

fn apply_setrange(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let offset = match int_arg(&argv[2]) {
        Ok(o) if o >= 0 => o as usize,
        Ok(_) => return Reply::err("ERR offset is out of range"),
        Err(e) => return e,
    };
    let patch = &argv[3];
    let old = match string_of(txn.get(&argv[1])) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let (mut data, expire_at) = match old {
        Some(v) => (v.data.to_vec(), v.expire_at),
        None if patch.is_empty() => return Reply::Int(0),
        None => (Vec::new(), 0),
    };
    if patch.is_empty() {
        return Reply::Int(data.len() as i64);
    }
    // Checked here too: an entry is applied on every node, and arithmetic that overflowed
    // (SETRANGE k 9223372036854775807 x) once took every node down at apply.
    if exceeds_max_string(offset as i64, patch.len()) {
        return too_big();
    }
    if data.len() < offset + patch.len() {
        data.resize(offset + patch.len(), 0);
    }
    data[offset..offset + patch.len()].copy_from_slice(patch);
    let len = data.len() as i64;
    txn.set(&argv[1], &Value::string(data, expire_at));
    Reply::Int(len)
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN], as Redis's `lcsCommand`: the
/// classic dynamic programme, walked back from the end to build the string and its ranges.
fn lcs(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let (a, b) = match (ctx.get(&argv[1]), ctx.get(&argv[2])) {
        (a, b)
            if a.as_ref().is_some_and(|v| v.kind != TYPE_STRING)
                || b.as_ref().is_some_and(|v| v.kind != TYPE_STRING) =>
        {
            return Reply::err("ERR The specified keys must contain string values")
        }
        (a, b) => (
            a.map(|v| v.data).unwrap_or_default(),
            b.map(|v| v.data).unwrap_or_default(),
        ),
    };
    let (mut get_len, mut get_idx, mut with_len, mut min_len) = (false, false, false, 0i64);
    let mut j = 3;
    while j < argv.len() {
        match upper(&argv[j]).as_str() {
            "IDX" => get_idx = true,
            "LEN" => get_len = true,
            "WITHMATCHLEN" => with_len = true,
            "MINMATCHLEN" if j + 1 < argv.len() => {
                min_len = match int_arg(&argv[j + 1]) {
                    Ok(n) => n.max(0),
                    Err(e) => return e,
                };
                j += 1;
            }
            _ => return Reply::err(ERR_SYNTAX),
        }
        j += 1;
    }
    if get_len && get_idx {
        return Reply::err("ERR If you want both the length and indexes, please just use IDX.");
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    let max = ctx.proto_max_bulk_len();
    if cells.saturating_mul(4) > max {
        return Reply::err(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        );
    }
    let w = blen + 1;
    let mut t = vec![0u32; cells as usize];
    for i in 1..=alen {
        for k in 1..=blen {
            t[i * w + k] = if a[i - 1] == b[k - 1] {
                t[(i - 1) * w + k - 1] + 1
            } else {
                t[(i - 1) * w + k].max(t[i * w + k - 1])
            };
        }
    }
    let total = t[alen * w + blen];
    if get_len {
        return Reply::Int(total as i64);
    }
    let mut result = vec![0u8; total as usize];
    let mut idx = total as usize;
    let mut matches = Vec::new();
    let (mut i, mut k) = (alen, blen);
    // `alen` as a start means "no range open", as in Redis.
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (alen, 0usize, 0usize, 0usize);
    while i > 0 && k > 0 {
        let mut emit = false;
        if a[i - 1] == b[k - 1] {
            result[idx - 1] = a[i - 1];
            if a_start == alen {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, k - 1, k - 1);
            } else if a_start == i && b_start == k {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            k -= 1;
        } else {
            if t[(i - 1) * w + k] > t[i * w + k - 1] {
                i -= 1;
            } else {
                k -= 1;
            }
            if a_start != alen {
                emit = true;
            }
        }
        let match_len = a_end as i64 - a_start as i64 + 1;
        if emit {
            if get_idx && (min_len == 0 || match_len >= min_len) {
                let mut m = vec![
                    Reply::Array(vec![Reply::Int(a_start as i64), Reply::Int(a_end as i64)]),
                    Reply::Array(vec![Reply::Int(b_start as i64), Reply::Int(b_end as i64)]),
                ];
                if with_len {
                    m.push(Reply::Int(match_len));
                }
                matches.push(Reply::Array(m));
            }
            a_start = alen;
        }
    }
    if get_idx {
        Reply::Map(vec![
            (Reply::bulk("matches"), Reply::Array(matches)),
            (Reply::bulk("len"), Reply::Int(total as i64)),
        ])
    } else {
        Reply::Bulk(result.into())
    }
}
