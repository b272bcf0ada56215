//! Generic commands for keys of every type: COPY RANDOMKEY TOUCH OBJECT (SORT is `sort.rs`,
//! the rest of the keyspace family `keyspace.rs`).
//!
//! ```text
//! COPY source destination [DB destination-db] [REPLACE]
//! OBJECT ENCODING | FREQ | IDLETIME | REFCOUNT key
//! ```
//! OBJECT ENCODING answers with the name Redis 7.0 would use for a collection of this size and
//! these elements, following the `*-max-listpack-*` and `set-max-intset-entries` settings.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use rand::Rng;
use rockraft_raftstore::slot::SLOT_COUNT;
use rockraft_resp::Reply;

use super::flags::{FAST, READONLY, WRITE};
use super::{
    parse_i64, spec, unknown_subcommand, upper, wrong_arity, CommandSpec, Kind, ReadCtx,
    ERR_NOT_INTEGER, ERR_SYNTAX,
};
use crate::db::{Txn, Value, TYPE_HASH, TYPE_LIST, TYPE_SET, TYPE_STRING, TYPE_ZSET};
use crate::types::{Collection, Reader};

#[rustfmt::skip]
pub fn commands() -> Vec<CommandSpec> {
    use Kind::{Read, Write};
    let g = "generic";
    vec![
        spec("copy", -3, WRITE, (1, 2, 1), g, "Copies the value of a key to a new key.", Write { prepare: prepare_copy, apply: apply_copy }),
        spec("randomkey", 1, READONLY, (0, 0, 0), g, "Returns a random key name from the database.", Read(randomkey)),
        spec("touch", -2, READONLY | FAST, (1, -1, 1), g, "Returns the number of existing keys out of those specified after updating the time they were last accessed.", Read(touch)),
        spec("object", -2, READONLY, (2, 2, 1), g, "A container for object introspection commands.", Read(object)),
    ]
}

/// COPY's options: whether to replace.
fn parse_copy(argv: &[Bytes]) -> Result<bool, Reply> {
    let mut replace = false;
    let mut j = 3;
    while j < argv.len() {
        match upper(&argv[j]).as_str() {
            "REPLACE" => replace = true,
            "DB" if j + 1 < argv.len() => {
                let db = parse_i64(&argv[j + 1])
                    .filter(|d| i32::try_from(*d).is_ok())
                    .ok_or_else(|| Reply::err(ERR_NOT_INTEGER))?;
                if db != 0 {
                    return Err(Reply::err(
                        "ERR Copying to another database is not allowed in cluster mode",
                    ));
                }
                j += 1;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        j += 1;
    }
    if argv[1] == argv[2] {
        return Err(Reply::err(
            "ERR source and destination objects are the same",
        ));
    }
    Ok(replace)
}

fn prepare_copy(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    parse_copy(argv)?;
    Ok(None)
}

fn apply_copy(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let replace = match parse_copy(argv) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let Some(source) = txn.get(&argv[1]) else {
        return Reply::Int(0);
    };
    if txn.get(&argv[2]).is_some() {
        if !replace {
            return Reply::Int(0);
        }
        txn.del(&argv[2]);
    }
    if source.is_collection() {
        crate::types::copy_collection(txn, &argv[1], &source, &argv[2]);
    } else {
        txn.set(&argv[2], &source);
    }
    Reply::Int(1)
}

/// A random live key: the first at or after a random slot (wrapping around).
fn randomkey(ctx: &ReadCtx, _: &[Bytes]) -> Reply {
    let start = ctx.with_rng(|r| r.random_range(0..SLOT_COUNT));
    let mut found = None;
    ctx.for_each_key(&rockraft_raftstore::keys::slot_start(start), |k, _| {
        found = Some(Bytes::copy_from_slice(k));
        false
    });
    if found.is_none() {
        ctx.for_each_key(&[], |k, _| {
            found = Some(Bytes::copy_from_slice(k));
            false
        });
    }
    found.map_or(Reply::Nil, Reply::Bulk)
}

/// TOUCH: the keys that exist (rockraft keeps no access times to update).
fn touch(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    Reply::Int(argv[1..].iter().filter(|k| ctx.get(k).is_some()).count() as i64)
}

const LFU_ERROR: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";

fn object(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let sub = upper(&argv[1]);
    if sub == "HELP" && argv.len() != 2 {
        return wrong_arity("object|help");
    }
    if sub == "HELP" {
        return super::help_reply(&[
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
            "HELP",
            "    Prints this help.",
        ]);
    }
    if !matches!(sub.as_str(), "ENCODING" | "FREQ" | "IDLETIME" | "REFCOUNT") {
        return unknown_subcommand("object", &argv[1]);
    }
    if argv.len() != 3 {
        return wrong_arity(&format!("object|{}", sub.to_ascii_lowercase()));
    }
    ctx.read(|at| {
        let Some(value) = at.live(&argv[2]) else {
            return Reply::Nil;
        };
        match sub.as_str() {
            "ENCODING" => Reply::bulk(encoding(ctx, &at, &argv[2], &value)),
            "FREQ" => Reply::err(LFU_ERROR),
            // rockraft keeps no access times.
            "IDLETIME" => Reply::Int(0),
            _ => Reply::Int(
                if string_encoding(&value) == "int"
                    && parse_i64(&value.data).is_some_and(|v| (0..10_000).contains(&v))
                {
                    // Redis shares the objects of small integers.
                    i32::MAX as i64
                } else {
                    1
                },
            ),
        }
    })
}

fn string_encoding(v: &Value) -> &'static str {
    if v.data.len() <= 20 && parse_i64(&v.data).is_some() {
        "int"
    } else if v.data.len() <= 44 {
        "embstr"
    } else {
        "raw"
    }
}

/// Whether every element of collection `key` passes `ok` (visiting at most `limit`).
fn all_elements(at: &dyn Reader, key: &[u8], kind: u8, ok: impl Fn(&[u8], &[u8]) -> bool) -> bool {
    let Ok(Some(c)) = Collection::get(at, kind, key) else {
        return false;
    };
    let mut all = true;
    at.scan(key, c.meta.version, &[], &mut |sub, v| {
        all = ok(sub, v);
        all
    });
    all
}

fn encoding(ctx: &ReadCtx, at: &dyn Reader, key: &[u8], v: &Value) -> &'static str {
    let e = ctx.encodings();
    let size = if v.is_collection() {
        crate::types::Meta::decode(v).size as i64
    } else {
        0
    };
    let setting = |s: &std::sync::atomic::AtomicI64| s.load(Ordering::Relaxed);
    match v.kind {
        TYPE_STRING => string_encoding(v),
        TYPE_LIST => "quicklist",
        TYPE_HASH => {
            let max_value = setting(&e.hash_max_listpack_value) as usize;
            let compact = size <= setting(&e.hash_max_listpack_entries)
                && all_elements(at, key, TYPE_HASH, |f, v| {
                    f.len() <= max_value && v.len() <= max_value
                });
            if compact {
                "listpack"
            } else {
                "hashtable"
            }
        }
        TYPE_SET => {
            let compact = size <= setting(&e.set_max_intset_entries)
                && all_elements(at, key, TYPE_SET, |m, _| parse_i64(m).is_some());
            if compact {
                "intset"
            } else {
                "hashtable"
            }
        }
        TYPE_ZSET => {
            let max_value = setting(&e.zset_max_listpack_value) as usize;
            let compact = size <= setting(&e.zset_max_listpack_entries)
                && all_elements(at, key, TYPE_ZSET, |m, _| m.len() <= max_value);
            if compact {
                "listpack"
            } else {
                "skiplist"
            }
        }
        crate::db::TYPE_STREAM => "stream",
        _ => "unknown",
    }
}
