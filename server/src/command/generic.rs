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
        spec("object", -2, READONLY, (2, 2, 1), g, "A container for object introspection commands.", Read(object)).lists_subcommands(&[("ENCODING", 3), ("FREQ", 3), ("HELP", 2), ("IDLETIME", 3), ("REFCOUNT", 3)]),
        spec("memory", -2, 0, (2, 2, 1), "server", "A container for memory diagnostics commands.", Read(memory))
            .subcommands(&[("DOCTOR", 2), ("HELP", 2), ("MALLOC-STATS", 2), ("PURGE", 2), ("STATS", 2), ("USAGE", -3)]),
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

/// MEMORY USAGE key [SAMPLES n] | STATS | DOCTOR | MALLOC-STATS | PURGE | HELP. rockraft keeps
/// its data in RocksDB, not in a heap of Redis objects: USAGE estimates the bytes a key takes
/// there (its name, value and per-entry overhead; a collection's elements sampled as Redis
/// samples them), STATS reports the process's memory and the keys' count.
fn memory(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    /// Bytes of bookkeeping per stored entry (its row key prefix, kind, expiry, version).
    const ENTRY: usize = 24;
    match upper(&argv[1]).as_str() {
        "HELP" => super::help_reply(&[
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
            "HELP",
            "    Prints this help.",
        ]),
        "PURGE" => Reply::ok(),
        "MALLOC-STATS" => Reply::bulk("Stats not supported for the current allocator"),
        "DOCTOR" => {
            // Redis's threshold is 5 MB of data; rockraft estimates its data at 64 bytes a key.
            let keys = key_count(ctx);
            Reply::Verbatim(if keys * 64 < 5 << 20 {
                "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n".into()
            } else {
                "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n".into()
            })
        }
        "STATS" => {
            let (keys, rss) = (key_count(ctx) as i64, crate::command::server::rss() as i64);
            let field = |k: &str| Reply::bulk(k.to_string());
            Reply::Map(vec![
                (field("peak.allocated"), Reply::Int(rss)),
                (field("total.allocated"), Reply::Int(rss)),
                (field("keys.count"), Reply::Int(keys)),
                (
                    field("keys.bytes-per-key"),
                    Reply::Int(if keys > 0 { rss / keys } else { 0 }),
                ),
            ])
        }
        _ => {
            let mut samples = 5usize;
            let mut i = 3;
            while i < argv.len() {
                if !argv[i].eq_ignore_ascii_case(b"samples") || i + 1 >= argv.len() {
                    return Reply::err(ERR_SYNTAX);
                }
                match parse_i64(&argv[i + 1]) {
                    None => return Reply::err(ERR_NOT_INTEGER),
                    Some(n) if n < 0 => return Reply::err(ERR_SYNTAX),
                    Some(0) => samples = usize::MAX,
                    Some(n) => samples = n as usize,
                }
                i += 2;
            }
            let key = &argv[2];
            ctx.read(|at| {
                let Some(value) = at.live(key) else {
                    return Reply::Nil;
                };
                if !value.is_collection() {
                    return Reply::Int((key.len() + value.data.len() + ENTRY) as i64);
                }
                let size = crate::types::Meta::decode(&value).size as usize;
                let Ok(Some(c)) = Collection::get(at, value.kind, key) else {
                    return Reply::Int((key.len() + ENTRY) as i64);
                };
                let (mut seen, mut bytes) = (0usize, 0usize);
                at.scan(key, c.meta.version, &[], &mut |sub, v| {
                    seen += 1;
                    bytes += key.len() + sub.len() + v.len() + ENTRY;
                    seen < samples
                });
                let elements = (bytes * size.max(seen)).checked_div(seen).unwrap_or(0);
                Reply::Int((key.len() + value.data.len() + ENTRY + elements) as i64)
            })
        }
    }
}

/// How many keys the node holds.
fn key_count(ctx: &ReadCtx) -> usize {
    let mut n = 0;
    ctx.for_each_key(&[], |_, _| {
        n += 1;
        true
    });
    n
}
