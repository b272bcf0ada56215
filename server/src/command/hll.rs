//! HyperLogLog commands: PFADD PFCOUNT PFMERGE on string values in Redis's format
//! (`types::hll`).
//!
//! PFCOUNT is a read. Redis's PFCOUNT also stores the count it computed in the value's header
//! (a write that Redis replicates); rockraft does not turn a read into a proposal for a cache,
//! so after PFCOUNT the header's cached count may differ from Redis's while every register,
//! and every count, is the same.

use bytes::Bytes;
use rockraft_resp::Reply;

use super::flags::{DENYOOM, FAST, READONLY, WRITE};
use super::{as_is, spec, CommandSpec, Kind, ReadCtx, ERR_WRONGTYPE};
use crate::db::{Txn, Value, TYPE_STRING};
use crate::types::hll::{self, Hll, REGISTERS};

const ERR_NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const ERR_CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

#[rustfmt::skip]
pub fn commands() -> Vec<CommandSpec> {
    use Kind::{Read, Write};
    let g = "hyperloglog";
    vec![
        spec("pfadd", -2, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.", Write { prepare: as_is, apply: apply_pfadd }),
        spec("pfcount", -2, READONLY, (1, -1, 1), g, "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).", Read(pfcount)),
        spec("pfmerge", -2, WRITE | DENYOOM, (1, -1, 1), g, "Merges one or more HyperLogLog values into a single key.", Write { prepare: as_is, apply: apply_pfmerge }),
    ]
}

/// The HLL in `value`, or the reply for a value that is not one.
fn parse(value: &Value) -> Result<Hll, Reply> {
    if value.kind != TYPE_STRING {
        return Err(Reply::err(ERR_WRONGTYPE));
    }
    Hll::parse(&value.data).map_err(|_| Reply::err(ERR_NOT_HLL))
}

fn apply_pfadd(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    let (mut h, expire_at, mut updated) = match txn.get(key) {
        None => (Hll::new(), 0, true),
        Some(v) => match parse(&v) {
            Ok(h) => (h, v.expire_at, false),
            Err(e) => return e,
        },
    };
    for element in &argv[2..] {
        match h.add(element) {
            Ok(changed) => updated |= changed,
            Err(_) => return Reply::err(ERR_CORRUPT),
        }
    }
    if !updated {
        return Reply::Int(0);
    }
    h.invalidate_cache();
    txn.set(key, &Value::string(h.into_bytes(), expire_at));
    Reply::Int(1)
}

/// The union of the HLLs at `keys` (missing keys are empty) as raw registers, and whether any
/// of them is dense.
fn union(
    get: impl Fn(&[u8]) -> Option<Value>,
    keys: &[Bytes],
) -> Result<(Box<[u8; REGISTERS]>, bool), Reply> {
    let mut max = Box::new([0u8; REGISTERS]);
    let mut dense = false;
    for key in keys {
        let Some(v) = get(key) else { continue };
        let h = parse(&v)?;
        dense |= h.is_dense();
        h.merge_into(&mut max)
            .map_err(|_| Reply::err(ERR_CORRUPT))?;
    }
    Ok((max, dense))
}

fn pfcount(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    if argv.len() > 2 {
        return ctx.read(|r| match union(|k| r.live(k), &argv[1..]) {
            Ok((max, _)) => Reply::Int(hll::count_registers(&max) as i64),
            Err(e) => e,
        });
    }
    let Some(v) = ctx.get(&argv[1]) else {
        return Reply::Int(0);
    };
    let h = match parse(&v) {
        Ok(h) => h,
        Err(e) => return e,
    };
    match h.cached().map_or_else(|| h.count(), Ok) {
        Ok(n) => Reply::Int(n as i64),
        Err(_) => Reply::err(ERR_CORRUPT),
    }
}

/// PFMERGE dest src…: the destination, itself a source, becomes the union (dense when any
/// source is), keeping its TTL.
fn apply_pfmerge(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let (max, dense) = match union(|k| txn.get(k), &argv[1..]) {
        Ok(u) => u,
        Err(e) => return e,
    };
    let dest = &argv[1];
    let (mut h, expire_at) = match txn.get(dest) {
        // Already checked as a source.
        Some(v) => (Hll::parse(&v.data).expect("checked HLL"), v.expire_at),
        None => (Hll::new(), 0),
    };
    if dense && h.to_dense().is_err() {
        return Reply::err(ERR_CORRUPT);
    }
    for (i, &m) in max.iter().enumerate() {
        if m != 0 {
            // As Redis, a corrupt destination's failed update is skipped.
            let _ = h.set(i, m);
        }
    }
    h.invalidate_cache();
    txn.set(dest, &Value::string(h.into_bytes(), expire_at));
    Reply::ok()
}
