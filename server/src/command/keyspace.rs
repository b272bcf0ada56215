//! Generic keyspace commands: DEL UNLINK EXISTS TYPE KEYS SCAN RENAME RENAMENX EXPIRE PEXPIRE
//! EXPIREAT PEXPIREAT TTL PTTL PERSIST EXPIRETIME PEXPIRETIME.
//!
//! ```text
//! EXPIRE key seconds [NX | XX | GT | LT]      (proposed as PEXPIREAT key ms-timestamp …)
//! SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
//! ```

use bytes::Bytes;
use rockraft_raftstore::keys;
use rockraft_resp::Reply;

use super::flags::{FAST, READONLY, WRITE};
use super::{as_is, int_arg, spec, upper, CommandSpec, Kind, ReadCtx, ERR_NO_SUCH_KEY, ERR_SYNTAX};
use crate::db::Txn;
use crate::glob::glob_match;

pub fn commands() -> Vec<CommandSpec> {
    use Kind::{Read, Write};
    let g = "generic";
    let expire = Write {
        prepare: prepare_expire,
        apply: apply_pexpireat,
    };
    vec![
        spec(
            "del",
            -2,
            WRITE,
            (1, -1, 1),
            g,
            "Deletes one or more keys.",
            Write {
                prepare: as_is,
                apply: apply_del,
            },
        ),
        spec(
            "unlink",
            -2,
            WRITE | FAST,
            (1, -1, 1),
            g,
            "Asynchronously deletes one or more keys.",
            Write {
                prepare: as_is,
                apply: apply_del,
            },
        ),
        spec(
            "exists",
            -2,
            READONLY | FAST,
            (1, -1, 1),
            g,
            "Determines whether one or more keys exist.",
            Read(exists),
        ),
        spec(
            "type",
            2,
            READONLY | FAST,
            (1, 1, 1),
            g,
            "Determines the type of value stored at a key.",
            Read(type_of),
        ),
        spec(
            "keys",
            2,
            READONLY,
            (0, 0, 0),
            g,
            "Returns all key names that match a pattern.",
            Read(keys_cmd),
        ),
        spec(
            "scan",
            -2,
            READONLY,
            (0, 0, 0),
            g,
            "Iterates over the key names in the database.",
            Read(scan),
        ),
        spec(
            "rename",
            3,
            WRITE,
            (1, 2, 1),
            g,
            "Renames a key and overwrites the destination.",
            Write {
                prepare: as_is,
                apply: apply_rename,
            },
        ),
        spec(
            "renamenx",
            3,
            WRITE | FAST,
            (1, 2, 1),
            g,
            "Renames a key only when the target key name doesn't exist.",
            Write {
                prepare: as_is,
                apply: apply_rename,
            },
        ),
        spec(
            "expire",
            -3,
            WRITE | FAST,
            (1, 1, 1),
            g,
            "Sets the expiration time of a key in seconds.",
            expire,
        ),
        spec(
            "pexpire",
            -3,
            WRITE | FAST,
            (1, 1, 1),
            g,
            "Sets the expiration time of a key in milliseconds.",
            expire,
        ),
        spec(
            "expireat",
            -3,
            WRITE | FAST,
            (1, 1, 1),
            g,
            "Sets the expiration time of a key to a Unix timestamp.",
            expire,
        ),
        spec(
            "pexpireat",
            -3,
            WRITE | FAST,
            (1, 1, 1),
            g,
            "Sets the expiration time of a key to a Unix milliseconds timestamp.",
            expire,
        ),
        spec(
            "persist",
            2,
            WRITE | FAST,
            (1, 1, 1),
            g,
            "Removes the expiration time of a key.",
            Write {
                prepare: as_is,
                apply: apply_persist,
            },
        ),
        spec(
            "ttl",
            2,
            READONLY | FAST,
            (1, 1, 1),
            g,
            "Returns the expiration time in seconds of a key.",
            Read(ttl),
        ),
        spec(
            "pttl",
            2,
            READONLY | FAST,
            (1, 1, 1),
            g,
            "Returns the expiration time in milliseconds of a key.",
            Read(ttl),
        ),
        spec(
            "expiretime",
            2,
            READONLY | FAST,
            (1, 1, 1),
            g,
            "Returns the expiration time of a key as a Unix timestamp.",
            Read(expiretime),
        ),
        spec(
            "pexpiretime",
            2,
            READONLY | FAST,
            (1, 1, 1),
            g,
            "Returns the expiration time of a key as a Unix milliseconds timestamp.",
            Read(expiretime),
        ),
    ]
}

fn apply_del(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let mut n = 0;
    for k in &argv[1..] {
        n += txn.del(k) as i64;
    }
    Reply::Int(n)
}

fn exists(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    Reply::Int(argv[1..].iter().filter(|k| ctx.get(k).is_some()).count() as i64)
}

fn type_of(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let name = ctx.get(&argv[1]).map_or("none", |v| v.type_name());
    Reply::Simple(name.into())
}

fn keys_cmd(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let pattern = &argv[1];
    let mut out = Vec::new();
    ctx.for_each_key(&[], |k, _| {
        if glob_match(pattern, k, false) {
            out.push(Reply::Bulk(Bytes::copy_from_slice(k)));
        }
        true
    });
    Reply::Array(out)
}

/// The arguments of SCAN and its per-type cousins (HSCAN, SSCAN, ZSCAN).
pub struct ScanOpts {
    pub cursor: u64,
    pub pattern: Option<Bytes>,
    pub count: u64,
    /// SCAN only.
    pub type_filter: Option<String>,
}

/// The element-scan commands (HSCAN SSCAN ZSCAN): a cursor names the next element, kept by
/// the node (as SCAN's are); a collection Redis would keep compact (`whole`) comes back in one
/// call, as from Redis.
pub struct ElementScan {
    pub opts: ScanOpts,
    /// The sub-key to start at (empty for cursor 0).
    pub from: Vec<u8>,
}

impl ElementScan {
    /// Parses `key cursor [MATCH pattern] [COUNT count]`; Err is the reply to send (an error,
    /// or the end of the scan for a cursor this node no longer knows).
    pub fn start(ctx: &ReadCtx, argv: &[Bytes]) -> Result<ElementScan, Reply> {
        let opts = ScanOpts::parse(&argv[2], &argv[3..], false)?;
        let from = if opts.cursor == 0 {
            Vec::new()
        } else {
            ctx.take_cursor(opts.cursor).ok_or_else(ElementScan::done)?
        };
        Ok(ElementScan { opts, from })
    }

    /// The reply of a finished (or empty) scan.
    pub fn done() -> Reply {
        Reply::Array(vec![Reply::bulk("0"), Reply::Array(vec![])])
    }

    /// One page over the elements of version `version` of `key`: `emit` adds the reply items
    /// of an element (sub-key, value) whose sub-key matches the pattern.
    pub fn page(
        &self,
        ctx: &ReadCtx,
        r: &dyn crate::types::Reader,
        key: &[u8],
        version: u64,
        whole: bool,
        mut emit: impl FnMut(&[u8], &[u8], &mut Vec<Reply>),
    ) -> Reply {
        let limit = if whole { u64::MAX } else { self.opts.count };
        let mut out = Vec::new();
        let mut visited = 0u64;
        let mut next = None;
        r.scan(key, version, &self.from, &mut |sub, v| {
            if visited >= limit {
                next = Some(sub.to_vec());
                return false;
            }
            visited += 1;
            if self
                .opts
                .pattern
                .as_ref()
                .is_none_or(|p| glob_match(p, sub, false))
            {
                emit(sub, v, &mut out);
            }
            true
        });
        let cursor = next.map_or(0, |pos| ctx.put_cursor(pos));
        Reply::Array(vec![Reply::bulk(cursor.to_string()), Reply::Array(out)])
    }
}

impl ScanOpts {
    /// Parses `cursor [MATCH pattern] [COUNT count] [TYPE type]` (TYPE when `allow_type`).
    pub fn parse(cursor: &[u8], args: &[Bytes], allow_type: bool) -> Result<ScanOpts, Reply> {
        let cursor = std::str::from_utf8(cursor)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| Reply::err("ERR invalid cursor"))?;
        let mut opts = ScanOpts {
            cursor,
            pattern: None,
            count: 10,
            type_filter: None,
        };
        let mut i = 0;
        while i < args.len() {
            let opt = upper(&args[i]);
            let Some(arg) = args.get(i + 1) else {
                return Err(Reply::err(ERR_SYNTAX));
            };
            match opt.as_str() {
                "MATCH" => opts.pattern = Some(arg.clone()),
                "COUNT" => match int_arg(arg)? {
                    c if c >= 1 => opts.count = c as u64,
                    _ => return Err(Reply::err(ERR_SYNTAX)),
                },
                "TYPE" if allow_type => {
                    opts.type_filter = Some(String::from_utf8_lossy(arg).to_ascii_lowercase())
                }
                _ => return Err(Reply::err(ERR_SYNTAX)),
            }
            i += 2;
        }
        Ok(opts)
    }
}

/// SCAN: the cursor names a position in the key order, kept by the node (see `ScanCursors`).
fn scan(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let ScanOpts {
        cursor,
        pattern,
        count,
        type_filter,
    } = match ScanOpts::parse(&argv[1], &argv[2..], true) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let start = if cursor == 0 {
        keys::slot_start(0).to_vec()
    } else {
        match ctx.take_cursor(cursor) {
            Some(pos) => pos,
            // An unknown cursor (expired, or from another node) restarts the iteration, so a
            // client always terminates; Redis likewise accepts any cursor.
            None => return Reply::Array(vec![Reply::bulk("0"), Reply::Array(vec![])]),
        }
    };
    let mut out = Vec::new();
    let mut visited = 0u64;
    let stopped_at = ctx.for_each_key(&start, |k, v| {
        if visited >= count {
            return false;
        }
        visited += 1;
        let type_ok = type_filter
            .as_deref()
            .is_none_or(|t| crate::db::Value::decode(v).is_some_and(|v| v.type_name() == t));
        if type_ok && pattern.as_ref().is_none_or(|p| glob_match(p, k, false)) {
            out.push(Reply::Bulk(Bytes::copy_from_slice(k)));
        }
        true
    });
    let next = match stopped_at {
        Some(pos) => ctx.put_cursor(pos),
        None => 0,
    };
    Reply::Array(vec![Reply::bulk(next.to_string()), Reply::Array(out)])
}

fn apply_rename(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let nx = upper(&argv[0]) == "RENAMENX";
    let Some(v) = txn.get(&argv[1]) else {
        return Reply::err(ERR_NO_SUCH_KEY);
    };
    if argv[1] == argv[2] {
        return if nx { Reply::Int(0) } else { Reply::ok() };
    }
    if nx && txn.get(&argv[2]).is_some() {
        return Reply::Int(0);
    }
    if v.is_collection() {
        // The elements are stored under the key's name: copy them to the new one.
        crate::types::copy_collection(txn, &argv[1], &v, &argv[2]);
    } else {
        txn.set(&argv[2], &v);
    }
    txn.del(&argv[1]);
    if nx {
        Reply::Int(1)
    } else {
        Reply::ok()
    }
}

/// The EXPIRE family's condition flag.
#[derive(Clone, Copy, PartialEq)]
enum Cond {
    Always,
    Nx,
    Xx,
    Gt,
    Lt,
}

fn parse_cond(args: &[Bytes]) -> Result<Cond, Reply> {
    let mut cond = Cond::Always;
    for a in args {
        let c = match upper(a).as_str() {
            "NX" => Cond::Nx,
            "XX" => Cond::Xx,
            "GT" => Cond::Gt,
            "LT" => Cond::Lt,
            other => return Err(Reply::err(format!("ERR Unsupported option {other}"))),
        };
        if cond != Cond::Always && cond != c {
            let msg = if matches!((cond, c), (Cond::Gt, Cond::Lt) | (Cond::Lt, Cond::Gt)) {
                "ERR GT and LT options at the same time are not compatible"
            } else {
                "ERR NX and XX, GT or LT options at the same time are not compatible"
            };
            return Err(Reply::err(msg));
        }
        cond = c;
    }
    Ok(cond)
}

/// EXPIRE/PEXPIRE/EXPIREAT key t [cond] → PEXPIREAT key absolute-ms [cond].
fn prepare_expire(argv: &[Bytes], now: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    let cmd = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
    let amount = int_arg(&argv[2])?;
    parse_cond(&argv[3..])?;
    let invalid = || Reply::err(format!("ERR invalid expire time in '{cmd}' command"));
    let ms = match cmd.as_str() {
        "expire" | "expireat" => amount.checked_mul(1000).ok_or_else(invalid)?,
        _ => amount,
    };
    let at = match cmd.as_str() {
        "expire" | "pexpire" => ms.checked_add(now as i64).ok_or_else(invalid)?,
        _ => ms,
    };
    let mut out = vec![
        Bytes::from_static(b"PEXPIREAT"),
        argv[1].clone(),
        Bytes::from(at.to_string()),
    ];
    out.extend_from_slice(&argv[3..]);
    Ok(Some(out))
}

fn apply_pexpireat(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let (at, cond) = match (int_arg(&argv[2]), parse_cond(&argv[3..])) {
        (Ok(at), Ok(c)) => (at, c),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let Some(mut v) = txn.get(&argv[1]) else {
        return Reply::Int(0);
    };
    // A key without a TTL counts as an infinite TTL for GT and LT, as in Redis.
    let ok = match cond {
        Cond::Always => true,
        Cond::Nx => v.expire_at == 0,
        Cond::Xx => v.expire_at != 0,
        Cond::Gt => v.expire_at != 0 && at > v.expire_at as i64,
        Cond::Lt => v.expire_at == 0 || at < v.expire_at as i64,
    };
    if !ok {
        return Reply::Int(0);
    }
    if at <= txn.now_ms() as i64 {
        txn.del(&argv[1]);
    } else {
        v.expire_at = at as u64;
        txn.set(&argv[1], &v);
    }
    Reply::Int(1)
}

fn apply_persist(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    match txn.get(&argv[1]) {
        Some(mut v) if v.expire_at != 0 => {
            v.expire_at = 0;
            txn.set(&argv[1], &v);
            Reply::Int(1)
        }
        _ => Reply::Int(0),
    }
}

fn ttl(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let ms = upper(&argv[0]) == "PTTL";
    match ctx.get(&argv[1]) {
        None => Reply::Int(-2),
        Some(v) if v.expire_at == 0 => Reply::Int(-1),
        Some(v) => {
            let left = v.expire_at.saturating_sub(ctx.now_ms) as i64;
            // Redis rounds the remaining seconds to the nearest second.
            Reply::Int(if ms { left } else { (left + 500) / 1000 })
        }
    }
}

fn expiretime(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let ms = upper(&argv[0]) == "PEXPIRETIME";
    match ctx.get(&argv[1]) {
        None => Reply::Int(-2),
        Some(v) if v.expire_at == 0 => Reply::Int(-1),
        Some(v) if ms => Reply::Int(v.expire_at as i64),
        Some(v) => Reply::Int((v.expire_at / 1000) as i64),
    }
}

/// `ROCKRAFT.DELEXPIRED at key [at key …]`, proposed by the leader's expirer: deletes each key
/// that is expired at the entry's time, and its expiry-index entry either way.
pub fn apply_delexpired(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let mut n = 0;
    for pair in argv[1..].chunks_exact(2) {
        if let Some(at) = super::parse_i64(&pair[0]) {
            n += txn.del_if_expired(at as u64, &pair[1]) as i64;
        }
    }
    Reply::Int(n)
}
