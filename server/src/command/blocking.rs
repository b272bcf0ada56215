//! Blocking pops: BLPOP BRPOP BRPOPLPUSH BLMOVE BLMPOP BZPOPMIN BZPOPMAX BZMPOP.
//!
//! Each is a write whose apply is one attempt: it pops as its non-blocking form would, or
//! answers its "nothing" reply ([`nothing`]) when every key is empty. Inside MULTI that is the
//! whole command (Redis's rule: a transaction never blocks). Otherwise the connection
//! (`crate::connection`) waits on the leader for a change to one of the keys and proposes the
//! attempt again, until it pops something, the timeout expires, CLIENT UNBLOCK ends it, or the
//! node stops leading (`-MOVED`). Whoever gets an element is decided at apply, so no element is
//! delivered twice or lost.
//!
//! ```text
//! BLPOP key [key ...] timeout          BZPOPMIN key [key ...] timeout
//! BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout
//! BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]
//! BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]
//! ```

use std::time::Duration;

use bytes::Bytes;
use rockraft_resp::Reply;

use super::flags::{BLOCKING, NOSCRIPT, WRITE};
use super::{list, spec, type_error, upper, zset, CommandSpec, Kind};
use crate::db::Txn;
use crate::types::list::End;

#[rustfmt::skip]
pub fn commands() -> Vec<CommandSpec> {
    use Kind::Write;
    let l = "list";
    let z = "sorted_set";
    let f = WRITE | BLOCKING;
    vec![
        spec("blpop", -3, f | NOSCRIPT, (1, -2, 1), l, "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", Write { prepare: prepare_last_timeout, apply: apply_bpop }),
        spec("brpop", -3, f | NOSCRIPT, (1, -2, 1), l, "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", Write { prepare: prepare_last_timeout, apply: apply_bpop }),
        spec("brpoplpush", 4, f | super::flags::DENYOOM | NOSCRIPT, (1, 2, 1), l, "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.", Write { prepare: prepare_brpoplpush, apply: apply_brpoplpush }),
        spec("blmove", 6, f | super::flags::DENYOOM | NOSCRIPT, (1, 2, 1), l, "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.", Write { prepare: prepare_blmove, apply: apply_blmove }),
        spec("blmpop", -5, f, (0, 0, 0), l, "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", Write { prepare: prepare_blmpop, apply: apply_blmpop }).numkeys(2),
        spec("bzpopmin", -3, f | super::flags::FAST | NOSCRIPT, (1, -2, 1), z, "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", Write { prepare: prepare_last_timeout, apply: apply_bzpop }),
        spec("bzpopmax", -3, f | super::flags::FAST | NOSCRIPT, (1, -2, 1), z, "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped.", Write { prepare: prepare_last_timeout, apply: apply_bzpop }),
        spec("bzmpop", -5, f, (0, 0, 0), z, "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", Write { prepare: prepare_bzmpop, apply: apply_bzmpop }).numkeys(2),
    ]
}

/// Redis's `getTimeoutFromObjectOrReply` in seconds: a float, rounded up to milliseconds;
/// `None` waits forever (0).
pub fn parse_timeout(b: &[u8]) -> Result<Option<Duration>, Reply> {
    // strtold's syntax (hexadecimal too) and range (1e400 is finite), as Redis reads it.
    let secs: f64 = crate::long_double::LongDouble::parse(b)
        .and_then(|ld| ld.to_redis_string().parse().ok())
        .ok_or_else(|| Reply::err("ERR timeout is not a float or out of range"))?;
    let ms = (secs * 1000.0).ceil();
    // Redis casts to long long: an infinity or an overflow comes out negative on x86-64.
    if !ms.is_finite() || !(0.0..9.2e18).contains(&ms) {
        return Err(Reply::err("ERR timeout is negative"));
    }
    Ok((ms > 0.0).then(|| Duration::from_millis(ms as u64)))
}

/// How long a blocking command waits (None: forever), or None when it does not block
/// (XREADGROUP without BLOCK).
pub fn wait_timeout(spec: &super::CommandSpec, argv: &[Bytes]) -> Option<Option<Duration>> {
    if spec.flags & BLOCKING == 0 {
        return None;
    }
    if spec.name == "xreadgroup" {
        return super::stream::block_timeout(argv);
    }
    Some(parse_timeout(timeout_arg(spec.name, argv)).unwrap_or(None))
}

/// Where the timeout is in a blocking command's arguments.
pub fn timeout_arg<'a>(name: &str, argv: &'a [Bytes]) -> &'a Bytes {
    match name {
        "blmpop" | "bzmpop" => &argv[1],
        "brpoplpush" => &argv[3],
        "blmove" => &argv[5],
        _ => &argv[argv.len() - 1],
    }
}

/// What an attempt answers when there was nothing to pop (inside MULTI, the reply; a wait
/// that times out answers a null array, as in Redis).
pub fn nothing(name: &str) -> Reply {
    match name {
        "blmove" | "brpoplpush" => Reply::Nil,
        _ => Reply::NilArray,
    }
}

fn prepare_last_timeout(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    parse_timeout(&argv[argv.len() - 1])?;
    Ok(None)
}

fn prepare_brpoplpush(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    parse_timeout(&argv[3])?;
    Ok(None)
}

fn prepare_blmove(argv: &[Bytes], now: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    list::prepare_lmove(&argv[..5], now)?;
    parse_timeout(&argv[5])?;
    Ok(None)
}

/// BLMPOP is LMPOP with the timeout in front: the syntax first, then the timeout (Redis's
/// order).
fn prepare_blmpop(argv: &[Bytes], now: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    list::prepare_lmpop(&argv[1..], now)?;
    parse_timeout(&argv[1])?;
    Ok(None)
}

fn prepare_bzmpop(argv: &[Bytes], now: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    zset::prepare_zmpop(&argv[1..], now)?;
    parse_timeout(&argv[1])?;
    Ok(None)
}

/// BLPOP/BRPOP: the first non-empty list's end element, as [key, element].
fn apply_bpop(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let end = if upper(&argv[0]) == "BLPOP" {
        End::Left
    } else {
        End::Right
    };
    for key in &argv[1..argv.len() - 1] {
        match crate::types::list::pop(txn, key, end, 1) {
            Err(e) => return type_error(e),
            Ok(Some(mut items)) if !items.is_empty() => {
                return Reply::Array(vec![
                    Reply::Bulk(key.clone()),
                    Reply::Bulk(items.swap_remove(0).into()),
                ])
            }
            Ok(_) => {}
        }
    }
    Reply::NilArray
}

fn apply_brpoplpush(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    list::apply_lmove(txn, &argv[..3])
}

fn apply_blmove(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    list::apply_lmove(txn, &argv[..5])
}

fn apply_blmpop(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    list::apply_lmpop(txn, &argv[1..])
}

fn apply_bzmpop(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    zset::apply_zmpop(txn, &argv[1..])
}

/// BZPOPMIN/BZPOPMAX: [key, member, score] from the first non-empty sorted set.
fn apply_bzpop(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let max = upper(&argv[0]) == "BZPOPMAX";
    for key in &argv[1..argv.len() - 1] {
        match crate::types::zset::pop(txn, key, max, 1) {
            Err(e) => return type_error(e),
            Ok(Some(mut popped)) if !popped.is_empty() => {
                let (member, score) = popped.swap_remove(0);
                return Reply::Array(vec![
                    Reply::Bulk(key.clone()),
                    Reply::Bulk(member.into()),
                    Reply::Double(score),
                ]);
            }
            Ok(_) => {}
        }
    }
    Reply::NilArray
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_as_redis_s() {
        assert_eq!(parse_timeout(b"0"), Ok(None));
        assert_eq!(parse_timeout(b"0.0001"), Ok(Some(Duration::from_millis(1))));
        assert_eq!(parse_timeout(b"1.5"), Ok(Some(Duration::from_millis(1500))));
        let negative = Err(Reply::err("ERR timeout is negative"));
        assert_eq!(parse_timeout(b"-1"), negative);
        assert_eq!(parse_timeout(b"inf"), negative);
        assert_eq!(parse_timeout(b"1e400"), negative);
        assert_eq!(parse_timeout(b"9.3e15"), negative);
        assert_eq!(parse_timeout(b"0x10"), Ok(Some(Duration::from_secs(16))));
        assert_eq!(parse_timeout(b"1e-10"), Ok(Some(Duration::from_millis(1))));
        let not_float = Err(Reply::err("ERR timeout is not a float or out of range"));
        for bad in [&b"x"[..], b"", b" 1", b"1 ", b"nan"] {
            assert_eq!(parse_timeout(bad), not_float, "{bad:?}");
        }
    }
}
