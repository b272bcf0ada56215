//! Stream commands: XADD XRANGE XREVRANGE XLEN XDEL XTRIM XREAD XREADGROUP XGROUP XACK
//! XPENDING XCLAIM XAUTOCLAIM XINFO XSETID. The stream itself is `types::stream`.
//!
//! ```text
//! XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value [...]
//! XREAD [COUNT count] [BLOCK ms] STREAMS key [key ...] id [id ...]
//! XREADGROUP GROUP group consumer [COUNT count] [BLOCK ms] [NOACK] STREAMS key [...] id [...]
//! XCLAIM key group consumer min-idle-time id [...] [IDLE ms] [TIME ms] [RETRYCOUNT n] [FORCE]
//!        [JUSTID] [LASTID id]
//! XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]
//! ```
//!
//! Everything that changes a stream or its groups is a write decided at apply: IDs, delivery
//! and seen times come from the entry's clock. XREADGROUP changes its group (pending entries,
//! the last delivered ID), so it is a write; XREAD is a read. With BLOCK, both wait on the
//! node for an entry (see `crate::connection`): XREAD re-reads, XREADGROUP proposes again,
//! and who gets an entry is decided at apply, so no group gets it twice.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use rockraft_resp::Reply;

use super::flags::{BLOCKING, DENYOOM, FAST, READONLY, WRITE};
use super::{
    as_is, help_reply, parse_i64, spec, type_error, upper, wrong_arity, CommandSpec, Kind, ReadCtx,
    ERR_NOT_INTEGER, ERR_NO_SUCH_KEY, ERR_SYNTAX,
};
use crate::db::Txn;
use crate::notify::{NEW, STREAM};
use crate::types::stream::{self as st, Consumer, Group, Nack, Stream, StreamId, Trim};
use crate::types::Reader;

const ERR_INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

const XGROUP_SUBCOMMANDS: &[(&str, i32)] = &[
    ("CREATE", -5),
    ("SETID", -5),
    ("DESTROY", 4),
    ("CREATECONSUMER", 5),
    ("DELCONSUMER", 5),
    ("HELP", 2),
];

const XINFO_SUBCOMMANDS: &[(&str, i32)] =
    &[("CONSUMERS", 4), ("GROUPS", 3), ("STREAM", -3), ("HELP", 2)];

#[rustfmt::skip]
pub fn commands() -> Vec<CommandSpec> {
    use Kind::{Read, Write};
    let g = "stream";
    vec![
        spec("xadd", -5, WRITE | DENYOOM | FAST, (1, 1, 1), g, "Appends a new message to a stream. Creates the key if it doesn't exist.", Write { prepare: as_is, apply: apply_xadd }),
        spec("xrange", -4, READONLY, (1, 1, 1), g, "Returns the messages from a stream within a range of IDs.", Read(xrange)),
        spec("xrevrange", -4, READONLY, (1, 1, 1), g, "Returns the messages from a stream within a range of IDs in reverse order.", Read(xrange)),
        spec("xlen", 2, READONLY | FAST, (1, 1, 1), g, "Return the number of messages in a stream.", Read(xlen)),
        spec("xdel", -3, WRITE | FAST, (1, 1, 1), g, "Returns the number of messages after removing them from a stream.", Write { prepare: as_is, apply: apply_xdel }),
        spec("xtrim", -4, WRITE, (1, 1, 1), g, "Deletes messages from the beginning of a stream.", Write { prepare: as_is, apply: apply_xtrim }),
        spec("xread", -4, READONLY | BLOCKING, (0, 0, 0), g, "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.", Read(xread)).keys_by(stream_keys),
        spec("xreadgroup", -7, WRITE | BLOCKING, (0, 0, 0), g, "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.", Write { prepare: as_is, apply: apply_xreadgroup }).keys_by(stream_keys),
        spec("xgroup", -2, WRITE, (2, 2, 1), g, "A container for consumer groups commands.", Write { prepare: as_is, apply: apply_xgroup }).subcommands(XGROUP_SUBCOMMANDS),
        spec("xack", -4, WRITE | FAST, (1, 1, 1), g, "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.", Write { prepare: as_is, apply: apply_xack }),
        spec("xpending", -3, READONLY, (1, 1, 1), g, "Returns the information and entries from a stream consumer group's pending entries list.", Read(xpending)),
        spec("xclaim", -6, WRITE | FAST, (1, 1, 1), g, "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member.", Write { prepare: as_is, apply: apply_xclaim }),
        spec("xautoclaim", -6, WRITE | FAST, (1, 1, 1), g, "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member.", Write { prepare: as_is, apply: apply_xautoclaim }),
        spec("xinfo", -2, READONLY, (2, 2, 1), g, "A container for stream introspection commands.", Read(xinfo)).subcommands(XINFO_SUBCOMMANDS),
        spec("xsetid", -3, WRITE | DENYOOM | FAST, (1, 1, 1), g, "An internal command for replicating stream values.", Write { prepare: as_is, apply: apply_xsetid }),
    ]
}

/// XREAD's and XREADGROUP's keys: the first half of what follows `STREAMS` (Redis's key
/// spec: the keyword searched from argument 1, or 4 after `GROUP group consumer`).
fn stream_keys(argv: &[Bytes]) -> Vec<usize> {
    let from = if argv[0].len() == 10 { 4 } else { 1 };
    let Some(at) = (from..argv.len()).find(|&i| argv[i].eq_ignore_ascii_case(b"STREAMS")) else {
        return Vec::new();
    };
    let n = (argv.len() - at - 1) / 2;
    (at + 1..at + 1 + n).collect()
}

// ---------------------------------------------------------------------------------------------
// Parsing, as Redis parses.

/// Redis's `string2ull`: `string2ll` (no negatives), else `strtoull`'s leniency (spaces, a
/// sign, leading zeros; a negative number wraps around).
fn string2ull(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    if let Some(ll) = parse_i64(s) {
        return u64::try_from(ll).ok();
    }
    let mut i = s
        .iter()
        .position(|&c| !matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .unwrap_or(s.len());
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits = &s[i..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if negative { v.wrapping_neg() } else { v })
}

/// An ID argument (Redis's `streamGenericParseIDOrReply`): `ms-seq`, `ms` (the sequence is
/// `missing_seq`), `-` and `+` unless `strict`, and with `seq_star` the `ms-*` form (the
/// second value says whether the sequence was given).
fn parse_id_full(
    arg: &[u8],
    missing_seq: u64,
    strict: bool,
    seq_star: bool,
) -> Result<(StreamId, bool), Reply> {
    let invalid = || Reply::err(ERR_INVALID_ID);
    if arg.len() > 127 {
        return Err(invalid());
    }
    // Redis reads the argument as a C string.
    let arg = &arg[..arg.iter().position(|&c| c == 0).unwrap_or(arg.len())];
    match arg {
        b"-" | b"+" if strict => return Err(invalid()),
        b"-" => return Ok((StreamId::MIN, true)),
        b"+" => return Ok((StreamId::MAX, true)),
        _ => {}
    }
    let (ms, seq) = match arg.iter().position(|&c| c == b'-') {
        Some(dash) => (&arg[..dash], Some(&arg[dash + 1..])),
        None => (arg, None),
    };
    let ms = string2ull(ms).ok_or_else(invalid)?;
    match seq {
        Some(b"*") if seq_star => Ok((StreamId::new(ms, 0), false)),
        Some(seq) => Ok((
            StreamId::new(ms, string2ull(seq).ok_or_else(invalid)?),
            true,
        )),
        None => Ok((StreamId::new(ms, missing_seq), true)),
    }
}

/// A strict ID (no `-`, `+` or `ms-*`).
fn strict_id(arg: &[u8]) -> Result<StreamId, Reply> {
    parse_id_full(arg, 0, true, false).map(|(id, _)| id)
}

/// A range bound: `(` makes it exclusive (then strict); a missing sequence is `missing_seq`.
fn interval_id(arg: &[u8], missing_seq: u64) -> Result<(StreamId, bool), Reply> {
    if arg.len() > 1 && arg[0] == b'(' {
        let (id, _) = parse_id_full(&arg[1..], missing_seq, true, false)?;
        return Ok((id, true));
    }
    let (id, _) = parse_id_full(arg, missing_seq, false, false)?;
    Ok((id, false))
}

/// A range's start: exclusive moves it up.
fn range_start(arg: &[u8]) -> Result<StreamId, Reply> {
    match interval_id(arg, 0)? {
        (id, false) => Ok(id),
        (id, true) => id
            .incr()
            .ok_or_else(|| Reply::err("ERR invalid start ID for the interval")),
    }
}

/// A range's end: exclusive moves it down.
fn range_end(arg: &[u8]) -> Result<StreamId, Reply> {
    match interval_id(arg, u64::MAX)? {
        (id, false) => Ok(id),
        (id, true) => id
            .decr()
            .ok_or_else(|| Reply::err("ERR invalid end ID for the interval")),
    }
}

fn ll(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(|| Reply::err(ERR_NOT_INTEGER))
}

fn ll_or(arg: &[u8], msg: &str) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(|| Reply::err(format!("ERR {msg}")))
}

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// `addReplySubcommandSyntaxError`.
fn subcommand_syntax(argv: &[Bytes]) -> Reply {
    let sub: String = String::from_utf8_lossy(&argv[1])
        .chars()
        .take(128)
        .collect();
    Reply::err(format!(
        "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try {} HELP.",
        upper(&argv[0])
    ))
}

fn nogroup(key: &[u8], group: &[u8]) -> Reply {
    Reply::err(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(Bytes::from(id.to_string()))
}

fn entry_reply(id: StreamId, fields: Vec<Bytes>) -> Reply {
    Reply::Array(vec![
        id_reply(id),
        Reply::Array(fields.into_iter().map(Reply::Bulk).collect()),
    ])
}

fn entries_reply(entries: Vec<st::Entry>) -> Reply {
    Reply::Array(
        entries
            .into_iter()
            .map(|(id, f)| entry_reply(id, f))
            .collect(),
    )
}

fn load(r: &(impl Reader + ?Sized), key: &[u8]) -> Result<Option<Stream>, Reply> {
    Stream::get(r, key).map_err(type_error)
}

// ---------------------------------------------------------------------------------------------
// XADD and XTRIM.

/// The trimming options of XADD and XTRIM, and XADD's own.
#[derive(Default)]
struct AddTrim {
    trim: Option<Trim>,
    approx: bool,
    limit: u64,
    no_mkstream: bool,
    /// XADD's explicit ID and whether its sequence was given (`ms-*` leaves it out).
    id: Option<(StreamId, bool)>,
    /// Where XADD's ID is.
    id_pos: usize,
}

/// Redis's `streamParseAddOrTrimArgsOrReply`.
fn parse_add_trim(argv: &[Bytes], xadd: bool) -> Result<AddTrim, Reply> {
    let mut a = AddTrim::default();
    let mut limit_given = false;
    let mut i = 2;
    let both = "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let opt = &argv[i];
        if xadd && opt.as_ref() == b"*" {
            break;
        } else if (is(opt, "maxlen") || is(opt, "minid")) && more > 0 {
            if a.trim.is_some() {
                return Err(Reply::err(both));
            }
            a.approx = false;
            let next = &argv[i + 1];
            if more >= 2 && next.as_ref() == b"~" {
                a.approx = true;
                i += 1;
            } else if more >= 2 && next.as_ref() == b"=" {
                i += 1;
            }
            if is(opt, "maxlen") {
                let max = ll(&argv[i + 1])?;
                if max < 0 {
                    return Err(Reply::err("ERR The MAXLEN argument must be >= 0."));
                }
                a.trim = Some(Trim::MaxLen(max as u64));
            } else {
                a.trim = Some(Trim::MinId(strict_id(&argv[i + 1])?));
            }
            i += 1;
        } else if is(opt, "limit") && more > 0 {
            let limit = ll(&argv[i + 1])?;
            if limit < 0 {
                return Err(Reply::err("ERR The LIMIT argument must be >= 0."));
            }
            a.limit = limit as u64;
            limit_given = true;
            i += 1;
        } else if xadd && is(opt, "nomkstream") {
            a.no_mkstream = true;
        } else if xadd {
            a.id = Some(parse_id_full(opt, 0, true, true)?);
            break;
        } else {
            return Err(Reply::err(ERR_SYNTAX));
        }
        i += 1;
    }
    a.id_pos = i;
    if a.limit > 0 && a.trim.is_none() {
        return Err(Reply::err(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && a.trim.is_none() {
        return Err(Reply::err(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if limit_given && !a.approx {
        return Err(Reply::err(
            "ERR syntax error, LIMIT cannot be used without the special ~ option",
        ));
    }
    if !limit_given {
        // Redis bounds an approximate trim to 100 nodes' worth unless told otherwise.
        a.limit = if a.approx { 100 * st::NODE_ENTRIES } else { 0 };
    }
    Ok(a)
}

/// Most bytes of fields and values one entry may hold (Redis's listpack bound).
const MAX_ENTRY_BYTES: usize = 1 << 30;

fn apply_xadd(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let a = match parse_add_trim(argv, true) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let fields = argv.get(a.id_pos + 1..).unwrap_or(&[]);
    if fields.len() < 2 || fields.len() % 2 == 1 {
        return wrong_arity("xadd");
    }
    if a.id == Some((StreamId::MIN, true)) {
        return Reply::err("ERR The ID specified in XADD must be greater than 0-0");
    }
    let key = &argv[1];
    let (mut s, created) = match load(&*txn, key) {
        Err(e) => return e,
        Ok(Some(s)) => (s, false),
        Ok(None) if a.no_mkstream => return Reply::Nil,
        Ok(None) => (Stream::create(txn), true),
    };
    let last = s.meta.last_id;
    if last == StreamId::MAX {
        return Reply::err(
            "ERR The stream has exhausted the last possible ID, unable to add more items",
        );
    }
    let smaller = || {
        Reply::err(
            "ERR The ID specified in XADD is equal or smaller than the target stream top item",
        )
    };
    let id = match a.id {
        Some((id, true)) => id,
        Some((id, false)) if id.ms == last.ms => match last.seq.checked_add(1) {
            Some(seq) => StreamId::new(id.ms, seq),
            // Redis fails here without setting errno, and so answers with the size error.
            None => return Reply::err("ERR Elements are too large to be stored"),
        },
        Some((id, false)) => id,
        // The entry's clock: the same ID on every node.
        None if txn.now_ms() > last.ms => StreamId::new(txn.now_ms(), 0),
        None => match last.incr() {
            Some(id) => id,
            None => return smaller(),
        },
    };
    if id <= last {
        return smaller();
    }
    if fields.iter().map(Bytes::len).sum::<usize>() > MAX_ENTRY_BYTES {
        return Reply::err("ERR Elements are too large to be stored");
    }
    st::append(txn, key, &mut s, id, fields);
    if created {
        txn.event(NEW, "new", key);
    }
    txn.event(STREAM, "xadd", key);
    if let Some(how) = a.trim {
        if st::trim(txn, key, &mut s, how, a.approx, a.limit) > 0 {
            txn.event(STREAM, "xtrim", key);
        }
    }
    s.save(txn, key);
    txn.signal_ready(key);
    id_reply(id)
}

fn apply_xtrim(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let a = match parse_add_trim(argv, false) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let key = &argv[1];
    let mut s = match load(&*txn, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(s)) => s,
    };
    let Some(how) = a.trim else {
        return Reply::Int(0);
    };
    let removed = st::trim(txn, key, &mut s, how, a.approx, a.limit);
    if removed > 0 {
        s.save(txn, key);
        txn.event(STREAM, "xtrim", key);
    }
    Reply::Int(removed as i64)
}

fn apply_xdel(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    let mut s = match load(&*txn, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(s)) => s,
    };
    let ids = match strict_ids(&argv[2..]) {
        Ok(ids) => ids,
        Err(e) => return e,
    };
    let mut deleted = 0;
    let mut first = false;
    for id in ids {
        if st::delete(txn, key, &mut s, id) {
            first |= id == s.meta.first_id;
            s.meta.max_deleted = s.meta.max_deleted.max(id);
            deleted += 1;
        }
    }
    if deleted > 0 {
        if s.meta.length == 0 || first {
            st::refresh_first(txn, key, &mut s);
        }
        s.save(txn, key);
        txn.event(STREAM, "xdel", key);
    }
    Reply::Int(deleted)
}

// ---------------------------------------------------------------------------------------------
// Reads of entries.

fn xrange(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let rev = argv[0].len() == 9;
    let (start_arg, end_arg) = if rev {
        (&argv[3], &argv[2])
    } else {
        (&argv[2], &argv[3])
    };
    let start = match range_start(start_arg) {
        Ok(id) => id,
        Err(e) => return e,
    };
    let end = match range_end(end_arg) {
        Ok(id) => id,
        Err(e) => return e,
    };
    let mut count: i64 = -1;
    let mut j = 4;
    while j < argv.len() {
        if is(&argv[j], "COUNT") && j + 1 < argv.len() {
            count = match ll(&argv[j + 1]) {
                Ok(c) => c.max(0),
                Err(e) => return e,
            };
            j += 2;
        } else {
            return Reply::err(ERR_SYNTAX);
        }
    }
    ctx.read(|r| {
        let s = match load(r, &argv[1]) {
            Err(e) => return e,
            Ok(None) => return Reply::Array(vec![]),
            Ok(Some(s)) => s,
        };
        if count == 0 {
            return Reply::NilArray;
        }
        let limit = usize::try_from(count).unwrap_or(0);
        entries_reply(st::entries(r, &argv[1], &s.meta, start, end, rev, limit))
    })
}

fn xlen(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    ctx.read(|r| match load(r, &argv[1]) {
        Err(e) => e,
        Ok(s) => Reply::Int(s.map_or(0, |s| s.meta.length as i64)),
    })
}

/// XREAD's and XREADGROUP's options.
struct ReadArgs {
    /// BLOCK's timeout (None: wait forever), when given.
    block: Option<Option<Duration>>,
    count: u64,
    group: Option<(Bytes, Bytes)>,
    noack: bool,
    /// Where the keys start; as many IDs follow them.
    streams: usize,
    n: usize,
}

/// A BLOCK timeout in milliseconds (Redis's `getTimeoutFromObjectOrReply`, UNIT_MILLISECONDS).
fn block_ms(arg: &[u8]) -> Result<Option<Duration>, Reply> {
    let ms = parse_i64(arg)
        .ok_or_else(|| Reply::err("ERR timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(Reply::err("ERR timeout is negative"));
    }
    Ok((ms > 0).then(|| Duration::from_millis(ms as u64)))
}

fn parse_read(argv: &[Bytes]) -> Result<ReadArgs, Reply> {
    let xreadgroup = argv[0].len() == 10;
    let mut a = ReadArgs {
        block: None,
        count: 0,
        group: None,
        noack: false,
        streams: 0,
        n: 0,
    };
    let mut i = 1;
    while i < argv.len() {
        let more = argv.len() - i - 1;
        let o = &argv[i];
        if is(o, "BLOCK") && more > 0 {
            i += 1;
            a.block = Some(block_ms(&argv[i])?);
        } else if is(o, "COUNT") && more > 0 {
            i += 1;
            a.count = ll(&argv[i])?.max(0) as u64;
        } else if is(o, "STREAMS") && more > 0 {
            a.streams = i + 1;
            let rest = argv.len() - a.streams;
            if !rest.is_multiple_of(2) {
                return Err(Reply::err("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."));
            }
            a.n = rest / 2;
            break;
        } else if is(o, "GROUP") && more >= 2 {
            if !xreadgroup {
                return Err(Reply::err(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            a.group = Some((argv[i + 1].clone(), argv[i + 2].clone()));
            i += 2;
        } else if is(o, "NOACK") {
            if !xreadgroup {
                return Err(Reply::err(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            a.noack = true;
        } else {
            return Err(Reply::err(ERR_SYNTAX));
        }
        i += 1;
    }
    if a.streams == 0 {
        return Err(Reply::err(ERR_SYNTAX));
    }
    if xreadgroup && a.group.is_none() {
        return Err(Reply::err("ERR Missing GROUP option for XREADGROUP"));
    }
    Ok(a)
}

/// XREAD's or XREADGROUP's BLOCK timeout, when it has a valid one (None: no BLOCK, or an
/// argument error the command itself reports).
pub fn block_timeout(argv: &[Bytes]) -> Option<Option<Duration>> {
    parse_read(argv).ok()?.block
}

/// Whether XREAD/XREADGROUP reaches a BLOCK option with the options before it valid: where
/// Redis refuses it in a script (an error earlier in the options is that error).
pub fn has_block(argv: &[Bytes]) -> bool {
    let xreadgroup = argv[0].len() == 10;
    let mut i = 1;
    while i + 1 < argv.len() {
        let o = &argv[i];
        if is(o, "BLOCK") {
            return true;
        } else if is(o, "COUNT") && parse_i64(&argv[i + 1]).is_some() {
            i += 2;
        } else if is(o, "GROUP") && xreadgroup && i + 2 < argv.len() {
            i += 3;
        } else if is(o, "NOACK") && xreadgroup {
            i += 1;
        } else {
            return false;
        }
    }
    false
}

/// XREAD with every `$` replaced by the stream's last ID as of `ctx` (what a blocked XREAD
/// waits past).
pub fn resolve_last_ids(ctx: &ReadCtx, argv: &[Bytes]) -> Vec<Bytes> {
    let Ok(a) = parse_read(argv) else {
        return argv.to_vec();
    };
    ctx.read(|r| {
        let mut out = argv.to_vec();
        for i in 0..a.n {
            let at = a.streams + a.n + i;
            if out[at].as_ref() == b"$" {
                let last = match load(r, &argv[a.streams + i]) {
                    Ok(Some(s)) => s.meta.last_id,
                    _ => StreamId::MIN,
                };
                out[at] = Bytes::from(last.to_string());
            }
        }
        out
    })
}

fn xread(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let a = match parse_read(argv) {
        Ok(a) => a,
        Err(e) => return e,
    };
    ctx.read(|r| {
        let mut after = Vec::with_capacity(a.n);
        for i in 0..a.n {
            let key = &argv[a.streams + i];
            let arg = &argv[a.streams + a.n + i];
            let s = match load(r, key) {
                Ok(s) => s,
                Err(e) => return e,
            };
            let gt = match arg.as_ref() {
                b"$" => s.as_ref().map_or(StreamId::MIN, |s| s.meta.last_id),
                b">" => return Reply::err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."),
                _ => match strict_id(arg) {
                    Ok(id) => id,
                    Err(e) => return e,
                },
            };
            after.push((s, gt));
        }
        let mut served = Vec::new();
        for (i, (s, gt)) in after.into_iter().enumerate() {
            let key = &argv[a.streams + i];
            let (Some(s), Some(start)) = (s, gt.incr()) else {
                continue;
            };
            // Served when an entry lies past the ID.
            let entries = st::entries(r, key, &s.meta, start, StreamId::MAX, false, a.count as usize);
            if !entries.is_empty() {
                served.push((Reply::Bulk(key.clone()), entries_reply(entries)));
            }
        }
        if served.is_empty() {
            Reply::NilArray
        } else {
            Reply::Pairs(served)
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Consumer groups.

/// A group and the consumer records changed while a command runs, stored at its end.
struct GroupState {
    name: Bytes,
    group: Group,
    consumers: HashMap<Bytes, Consumer>,
}

impl GroupState {
    fn load(r: &(impl Reader + ?Sized), key: &[u8], s: &Stream, name: &[u8]) -> Option<Self> {
        Some(GroupState {
            name: Bytes::copy_from_slice(name),
            group: st::group(r, key, &s.meta, name)?,
            consumers: HashMap::new(),
        })
    }

    /// Consumer `name`, created (with its event) if missing; its seen time is now
    /// (Redis's `streamLookupConsumer` with refresh, or `streamCreateConsumer`).
    fn seen(&mut self, txn: &mut Txn, key: &[u8], s: &Stream, name: &Bytes) {
        let now = txn.now_ms();
        if let Some(c) = self.consumers.get_mut(name) {
            c.seen_time = now;
            return;
        }
        let c = match st::consumer(&*txn, key, &s.meta, &self.name, name) {
            Some(c) => Consumer {
                seen_time: now,
                ..c
            },
            None => {
                self.group.consumers += 1;
                txn.event(STREAM, "xgroup-createconsumer", key);
                Consumer {
                    seen_time: now,
                    pending: 0,
                }
            }
        };
        self.consumers.insert(name.clone(), c);
    }

    /// Adds `by` to consumer `name`'s pending count (loading it if needed).
    fn add_pending(&mut self, txn: &Txn, key: &[u8], s: &Stream, name: &Bytes, by: i64) {
        if !self.consumers.contains_key(name) {
            let Some(c) = st::consumer(txn, key, &s.meta, &self.name, name) else {
                return;
            };
            self.consumers.insert(name.clone(), c);
        }
        if let Some(c) = self.consumers.get_mut(name) {
            c.pending = c.pending.saturating_add_signed(by);
        }
    }

    /// Gives pending entry `id` to `consumer` (counting it out of its old owner), delivered
    /// at `time` with `count` deliveries.
    #[allow(clippy::too_many_arguments)]
    fn assign(
        &mut self,
        txn: &mut Txn,
        key: &[u8],
        s: &Stream,
        id: StreamId,
        old: Option<&Nack>,
        consumer: &Bytes,
        time: u64,
        count: u64,
    ) {
        match old {
            Some(n) if n.consumer == *consumer => {}
            Some(n) => {
                self.add_pending(txn, key, s, &n.consumer, -1);
                self.add_pending(txn, key, s, consumer, 1);
            }
            None => {
                self.group.pending += 1;
                self.add_pending(txn, key, s, consumer, 1);
            }
        }
        let nack = Nack {
            delivery_time: time,
            delivery_count: count,
            consumer: consumer.clone(),
        };
        st::put_nack(txn, key, &s.meta, &self.name, id, &nack);
    }

    /// Removes pending entry `id` (owned as `nack` says).
    fn remove(&mut self, txn: &mut Txn, key: &[u8], s: &Stream, id: StreamId, nack: &Nack) {
        st::del_nack(txn, key, &s.meta, &self.name, id);
        self.group.pending = self.group.pending.saturating_sub(1);
        self.add_pending(txn, key, s, &nack.consumer, -1);
    }

    fn store(self, txn: &mut Txn, key: &[u8], s: &Stream) {
        for (name, c) in &self.consumers {
            st::put_consumer(txn, key, &s.meta, &self.name, name, c);
        }
        st::put_group(txn, key, &s.meta, &self.name, &self.group);
    }
}

/// Stream `key` and its group `group`, if both exist (the type checked).
fn load_group(txn: &Txn, key: &[u8], group: &[u8]) -> Result<Option<(Stream, GroupState)>, Reply> {
    Ok(load(txn, key)?.and_then(|s| {
        let g = GroupState::load(txn, key, &s, group)?;
        Some((s, g))
    }))
}

/// Strict ID arguments, all or the error of the first bad one.
fn strict_ids(args: &[Bytes]) -> Result<Vec<StreamId>, Reply> {
    args.iter().map(|a| strict_id(a)).collect()
}

fn apply_xreadgroup(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let a = match parse_read(argv) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let Some((group_name, consumer)) = a.group.clone() else {
        return Reply::err("ERR Missing GROUP option for XREADGROUP");
    };
    // Checks first, as Redis does, then serves.
    let mut after = Vec::with_capacity(a.n);
    for i in 0..a.n {
        let key = &argv[a.streams + i];
        let arg = &argv[a.streams + a.n + i];
        let s = match load(&*txn, key) {
            Ok(s) => s,
            Err(e) => return e,
        };
        if s.as_ref()
            .and_then(|s| st::group(&*txn, key, &s.meta, &group_name))
            .is_none()
        {
            return Reply::err(format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(&group_name)
            ));
        }
        if arg.as_ref() == b"$" {
            return Reply::err("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.");
        }
        if arg.as_ref() == b">" {
            after.push(StreamId::MAX);
            continue;
        }
        match strict_id(arg) {
            Ok(id) => after.push(id),
            Err(e) => return e,
        }
    }
    let now = txn.now_ms();
    let mut served = Vec::new();
    for (i, gt) in after.into_iter().enumerate() {
        let key = &argv[a.streams + i];
        let Ok(Some(s)) = load(&*txn, key) else {
            continue;
        };
        let Some(mut g) = GroupState::load(&*txn, key, &s, &group_name) else {
            continue;
        };
        // `>`: served when entries lie past the group's last delivered ID.
        let fresh = if gt == StreamId::MAX {
            let Some(after_last) = g.group.last_id.incr() else {
                continue;
            };
            let count = a.count as usize;
            let entries = st::entries(&*txn, key, &s.meta, after_last, StreamId::MAX, false, count);
            if entries.is_empty() {
                continue;
            }
            Some(entries)
        } else {
            None
        };
        let start = gt.incr().unwrap_or(StreamId::MAX);
        g.seen(txn, key, &s, &consumer);
        let reply = if let Some(entries) = fresh {
            for (id, _) in &entries {
                st::note_delivered(&s.meta, &mut g.group, *id);
                if !a.noack {
                    let old = st::nack(&*txn, key, &s.meta, &group_name, *id);
                    g.assign(txn, key, &s, *id, old.as_ref(), &consumer, now, 1);
                }
            }
            entries_reply(entries)
        } else {
            // The consumer's own pending entries from `start`.
            let mut mine = Vec::new();
            st::pending(
                &*txn,
                key,
                &s.meta,
                &group_name,
                start,
                StreamId::MAX,
                &mut |id, n| {
                    if n.consumer == consumer {
                        mine.push((id, n));
                    }
                    a.count == 0 || (mine.len() as u64) < a.count
                },
            );
            let mut out = Vec::with_capacity(mine.len());
            for (id, mut n) in mine {
                match st::entry(&*txn, key, &s.meta, id) {
                    Some(fields) => {
                        n.delivery_time = now;
                        n.delivery_count += 1;
                        st::put_nack(txn, key, &s.meta, &group_name, id, &n);
                        out.push(entry_reply(id, fields));
                    }
                    None => out.push(Reply::Array(vec![id_reply(id), Reply::NilArray])),
                }
            }
            Reply::Array(out)
        };
        g.store(txn, key, &s);
        served.push((Reply::Bulk(key.clone()), reply));
    }
    if served.is_empty() {
        Reply::NilArray
    } else {
        Reply::Pairs(served)
    }
}

const XGROUP_HELP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

fn apply_xgroup(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    match xgroup(txn, argv) {
        Ok(r) | Err(r) => r,
    }
}

fn xgroup(txn: &mut Txn, argv: &[Bytes]) -> Result<Reply, Reply> {
    let sub = upper(&argv[1]);
    let mut mkstream = false;
    let mut entries_read = -1i64;
    let mut stream = None;
    if argv.len() >= 4 {
        let create = sub == "CREATE";
        let setid = sub == "SETID";
        let mut i = 5;
        while i < argv.len() {
            if create && is(&argv[i], "MKSTREAM") {
                mkstream = true;
                i += 1;
            } else if (create || setid) && is(&argv[i], "ENTRIESREAD") && i + 1 < argv.len() {
                entries_read = ll(&argv[i + 1])?;
                if entries_read < 0 && entries_read != -1 {
                    return Err(Reply::err(
                        "ERR value for ENTRIESREAD must be positive or -1",
                    ));
                }
                i += 2;
            } else {
                return Err(subcommand_syntax(argv));
            }
        }
        stream = load(&*txn, &argv[2])?;
    }
    let key = argv.get(2).cloned().unwrap_or_default();
    let name = argv.get(3).cloned().unwrap_or_default();
    let mut group = None;
    if argv.len() >= 4 && !mkstream {
        let Some(s) = &stream else {
            return Err(Reply::err("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."));
        };
        group = GroupState::load(&*txn, &key, s, &name);
        if group.is_none() && matches!(sub.as_str(), "SETID" | "CREATECONSUMER" | "DELCONSUMER") {
            return Err(Reply::err(format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                String::from_utf8_lossy(&name),
                String::from_utf8_lossy(&key)
            )));
        }
    }
    let n = argv.len();
    match sub.as_str() {
        "HELP" if n == 2 => Ok(help_reply(XGROUP_HELP)),
        "CREATE" if (5..=8).contains(&n) => {
            let id = if argv[4].as_ref() == b"$" {
                stream.as_ref().map_or(StreamId::MIN, |s| s.meta.last_id)
            } else {
                strict_id(&argv[4])?
            };
            let mut s = match stream {
                Some(s) => s,
                None => {
                    let mut s = Stream::create(txn);
                    s.save(txn, &key);
                    txn.event(NEW, "new", &key);
                    s
                }
            };
            if st::group(&*txn, &key, &s.meta, &name).is_some() {
                return Err(Reply::err("BUSYGROUP Consumer Group name already exists"));
            }
            let g = Group {
                last_id: id,
                entries_read,
                pending: 0,
                consumers: 0,
            };
            st::put_group(txn, &key, &s.meta, &name, &g);
            s.meta.groups += 1;
            s.save(txn, &key);
            txn.event(STREAM, "xgroup-create", &key);
            Ok(Reply::ok())
        }
        "SETID" if n == 5 || n == 7 => {
            let (Some(s), Some(mut g)) = (stream, group) else {
                return Err(Reply::err(ERR_SYNTAX));
            };
            let id = if argv[4].as_ref() == b"$" {
                s.meta.last_id
            } else {
                parse_id_full(&argv[4], 0, false, false)?.0
            };
            g.group.last_id = id;
            g.group.entries_read = entries_read;
            g.store(txn, &key, &s);
            txn.event(STREAM, "xgroup-setid", &key);
            Ok(Reply::ok())
        }
        "DESTROY" if n == 4 => {
            let (Some(mut s), Some(_)) = (stream, group) else {
                return Ok(Reply::Int(0));
            };
            st::destroy_group(txn, &key, &s.meta, &name);
            s.meta.groups = s.meta.groups.saturating_sub(1);
            s.save(txn, &key);
            txn.event(STREAM, "xgroup-destroy", &key);
            // Its blocked readers get -NOGROUP.
            txn.signal_ready(&key);
            Ok(Reply::Int(1))
        }
        "CREATECONSUMER" if n == 5 => {
            let (Some(s), Some(mut g)) = (stream, group) else {
                return Err(Reply::err(ERR_SYNTAX));
            };
            if st::consumer(&*txn, &key, &s.meta, &name, &argv[4]).is_some() {
                return Ok(Reply::Int(0));
            }
            g.seen(txn, &key, &s, &argv[4]);
            g.store(txn, &key, &s);
            Ok(Reply::Int(1))
        }
        "DELCONSUMER" if n == 5 => {
            let (Some(s), Some(mut g)) = (stream, group) else {
                return Err(Reply::err(ERR_SYNTAX));
            };
            let Some(c) = st::consumer(&*txn, &key, &s.meta, &name, &argv[4]) else {
                return Ok(Reply::Int(0));
            };
            let mut owned = Vec::new();
            st::pending(
                &*txn,
                &key,
                &s.meta,
                &name,
                StreamId::MIN,
                StreamId::MAX,
                &mut |id, nack| {
                    if nack.consumer == argv[4] {
                        owned.push(id);
                    }
                    true
                },
            );
            for id in &owned {
                st::del_nack(txn, &key, &s.meta, &name, *id);
            }
            g.group.pending = g.group.pending.saturating_sub(owned.len() as u64);
            g.group.consumers = g.group.consumers.saturating_sub(1);
            st::del_consumer(txn, &key, &s.meta, &name, &argv[4]);
            g.store(txn, &key, &s);
            txn.event(STREAM, "xgroup-delconsumer", &key);
            Ok(Reply::Int(c.pending as i64))
        }
        _ => Err(subcommand_syntax(argv)),
    }
}

fn apply_xsetid(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    match xsetid(txn, argv) {
        Ok(r) | Err(r) => r,
    }
}

fn xsetid(txn: &mut Txn, argv: &[Bytes]) -> Result<Reply, Reply> {
    let id = strict_id(&argv[2])?;
    let mut entries_added = -1i64;
    let mut max_deleted = StreamId::MIN;
    let mut i = 3;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        if is(&argv[i], "ENTRIESADDED") && more > 0 {
            entries_added = ll(&argv[i + 1])?;
            if entries_added < 0 {
                return Err(Reply::err("ERR entries_added must be positive"));
            }
            i += 2;
        } else if is(&argv[i], "MAXDELETEDID") && more > 0 {
            max_deleted = strict_id(&argv[i + 1])?;
            if id < max_deleted {
                return Err(Reply::err("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"));
            }
            i += 2;
        } else {
            return Err(Reply::err(ERR_SYNTAX));
        }
    }
    let key = &argv[1];
    let Some(mut s) = load(&*txn, key)? else {
        return Err(Reply::err(ERR_NO_SUCH_KEY));
    };
    if s.meta.length > 0 {
        if id < st::last_entry_id(&*txn, key, &s.meta) {
            return Err(Reply::err(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            ));
        }
        if entries_added != -1 && s.meta.length > entries_added as u64 {
            return Err(Reply::err("ERR The entries_added specified in XSETID is smaller than the target stream length"));
        }
    }
    s.meta.last_id = id;
    if entries_added != -1 {
        s.meta.entries_added = entries_added as u64;
    }
    if !max_deleted.is_zero() {
        s.meta.max_deleted = max_deleted;
    }
    s.save(txn, key);
    txn.event(STREAM, "xsetid", key);
    Ok(Reply::ok())
}

fn apply_xack(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    let (s, mut g) = match load_group(txn, key, &argv[2]) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(sg)) => sg,
    };
    let ids = match strict_ids(&argv[3..]) {
        Ok(ids) => ids,
        Err(e) => return e,
    };
    let mut acked = 0;
    for id in ids {
        if let Some(n) = st::nack(&*txn, key, &s.meta, &g.name, id) {
            g.remove(txn, key, &s, id, &n);
            acked += 1;
        }
    }
    if acked > 0 {
        g.store(txn, key, &s);
    }
    Reply::Int(acked)
}

fn xpending(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    match pending_reply(ctx, argv) {
        Ok(r) | Err(r) => r,
    }
}

fn pending_reply(ctx: &ReadCtx, argv: &[Bytes]) -> Result<Reply, Reply> {
    let n = argv.len();
    if n != 3 && !(6..=9).contains(&n) {
        return Err(Reply::err(ERR_SYNTAX));
    }
    let mut range = None;
    let mut min_idle = 0i64;
    let mut consumer = None;
    if n >= 6 {
        let mut at = 3;
        if is(&argv[3], "IDLE") {
            min_idle = ll(&argv[4])?;
            if n < 8 {
                return Err(Reply::err(ERR_SYNTAX));
            }
            at += 2;
        }
        let count = ll(&argv[at + 2])?.max(0) as u64;
        let start = range_start(&argv[at])?;
        let end = range_end(&argv[at + 1])?;
        consumer = argv.get(at + 3).cloned();
        range = Some((start, end, count));
    }
    let key = &argv[1];
    let group_name = &argv[2];
    let now = ctx.now_ms;
    ctx.read(|r| {
        let Some(s) = load(r, key)? else {
            return Err(nogroup(key, group_name));
        };
        let Some(g) = st::group(r, key, &s.meta, group_name) else {
            return Err(nogroup(key, group_name));
        };
        let Some((start, end, mut count)) = range else {
            if g.pending == 0 {
                return Ok(Reply::Array(vec![
                    Reply::Int(0),
                    Reply::Nil,
                    Reply::Nil,
                    Reply::NilArray,
                ]));
            }
            let mut first = None;
            st::pending(
                r,
                key,
                &s.meta,
                group_name,
                StreamId::MIN,
                StreamId::MAX,
                &mut |id, _| {
                    first = Some(id);
                    false
                },
            );
            let last = st::last_pending(r, key, &s.meta, group_name);
            let owners = st::consumers(r, key, &s.meta, group_name)
                .into_iter()
                .filter(|(_, c)| c.pending > 0)
                .map(|(name, c)| {
                    Reply::Array(vec![
                        Reply::Bulk(name),
                        Reply::Bulk(Bytes::from(c.pending.to_string())),
                    ])
                })
                .collect();
            return Ok(Reply::Array(vec![
                Reply::Int(g.pending as i64),
                first.map_or(Reply::Nil, id_reply),
                last.map_or(Reply::Nil, id_reply),
                Reply::Array(owners),
            ]));
        };
        if let Some(c) = &consumer {
            if st::consumer(r, key, &s.meta, group_name, c).is_none() {
                return Ok(Reply::Array(vec![]));
            }
        }
        let mut out = Vec::new();
        st::pending(r, key, &s.meta, group_name, start, end, &mut |id, nack| {
            if count == 0 {
                return false;
            }
            if consumer.as_ref().is_some_and(|c| *c != nack.consumer) {
                return true;
            }
            let idle = now as i64 - nack.delivery_time as i64;
            if min_idle != 0 && idle < min_idle {
                return true;
            }
            count -= 1;
            out.push(Reply::Array(vec![
                id_reply(id),
                Reply::Bulk(nack.consumer),
                Reply::Int(idle.max(0)),
                Reply::Int(nack.delivery_count as i64),
            ]));
            true
        });
        Ok(Reply::Array(out))
    })
}

fn apply_xclaim(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    match xclaim(txn, argv) {
        Ok(r) | Err(r) => r,
    }
}

fn xclaim(txn: &mut Txn, argv: &[Bytes]) -> Result<Reply, Reply> {
    let key = &argv[1];
    let Some((s, mut g)) = load_group(txn, key, &argv[2])? else {
        return Err(nogroup(key, &argv[2]));
    };
    let min_idle = ll_or(&argv[4], "Invalid min-idle-time argument for XCLAIM")?.max(0);
    let mut ids = Vec::new();
    let mut j = 5;
    while j < argv.len() {
        match strict_id(&argv[j]) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let now = txn.now_ms() as i64;
    let (mut force, mut justid) = (false, false);
    let mut delivery: i64 = -1;
    let mut retry: i64 = -1;
    let mut last_id = StreamId::MIN;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let opt = &argv[j];
        if is(opt, "FORCE") {
            force = true;
        } else if is(opt, "JUSTID") {
            justid = true;
        } else if is(opt, "IDLE") && more > 0 {
            j += 1;
            delivery =
                now.wrapping_sub(ll_or(&argv[j], "Invalid IDLE option argument for XCLAIM")?);
        } else if is(opt, "TIME") && more > 0 {
            j += 1;
            delivery = ll_or(&argv[j], "Invalid TIME option argument for XCLAIM")?;
        } else if is(opt, "RETRYCOUNT") && more > 0 {
            j += 1;
            retry = ll_or(&argv[j], "Invalid RETRYCOUNT option argument for XCLAIM")?;
        } else if is(opt, "LASTID") && more > 0 {
            j += 1;
            last_id = strict_id(&argv[j])?;
        } else {
            return Err(Reply::err(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(opt)
            )));
        }
        j += 1;
    }
    if last_id > g.group.last_id {
        g.group.last_id = last_id;
    }
    if delivery == -1 || delivery < 0 || delivery > now {
        delivery = now;
    }
    let consumer = argv[3].clone();
    let mut seen = false;
    let mut out = Vec::new();
    for id in ids {
        let nack = st::nack(&*txn, key, &s.meta, &g.name, id);
        let Some(fields) = st::entry(&*txn, key, &s.meta, id) else {
            // Claiming an entry deleted meanwhile drops it from the pending list.
            if let Some(n) = nack {
                g.remove(txn, key, &s, id, &n);
            }
            continue;
        };
        let nack = match nack {
            Some(n) => {
                let idle = now - n.delivery_time as i64;
                if min_idle > 0 && idle < min_idle {
                    continue;
                }
                Some(n)
            }
            None if force => None,
            None => continue,
        };
        if !seen {
            g.seen(txn, key, &s, &consumer);
            seen = true;
        }
        let count = match &nack {
            _ if retry >= 0 => retry as u64,
            Some(n) if !justid => n.delivery_count + 1,
            Some(n) => n.delivery_count,
            // A forced entry starts at one delivery (Redis's new NACK), plus this one.
            None if !justid => 2,
            None => 1,
        };
        g.assign(
            txn,
            key,
            &s,
            id,
            nack.as_ref(),
            &consumer,
            delivery as u64,
            count,
        );
        out.push(if justid {
            id_reply(id)
        } else {
            entry_reply(id, fields)
        });
    }
    g.store(txn, key, &s);
    Ok(Reply::Array(out))
}

fn apply_xautoclaim(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    match xautoclaim(txn, argv) {
        Ok(r) | Err(r) => r,
    }
}

fn xautoclaim(txn: &mut Txn, argv: &[Bytes]) -> Result<Reply, Reply> {
    let min_idle = ll_or(&argv[4], "Invalid min-idle-time argument for XAUTOCLAIM")?.max(0);
    let start = range_start(&argv[5])?;
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if is(&argv[j], "COUNT") && more > 0 {
            let max = i64::MAX / 16;
            count = match parse_i64(&argv[j + 1]) {
                Some(c) if (1..=max).contains(&c) => c,
                _ => return Err(Reply::err("ERR COUNT must be > 0")),
            };
            j += 1;
        } else if is(&argv[j], "JUSTID") {
            justid = true;
        } else {
            return Err(Reply::err(ERR_SYNTAX));
        }
        j += 1;
    }
    let key = &argv[1];
    let Some((s, mut g)) = load_group(txn, key, &argv[2])? else {
        return Err(nogroup(key, &argv[2]));
    };
    let mut attempts = count.saturating_mul(10);
    // The pending entries this call can examine, and the one after them.
    let mut list = Vec::new();
    let want = usize::try_from(attempts)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    st::pending(
        &*txn,
        key,
        &s.meta,
        &g.name,
        start,
        StreamId::MAX,
        &mut |id, n| {
            list.push((id, n));
            list.len() < want
        },
    );
    let now = txn.now_ms();
    let consumer = argv[3].clone();
    let mut seen = false;
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut i = 0;
    loop {
        if attempts == 0 {
            break;
        }
        attempts -= 1;
        if count == 0 || i >= list.len() {
            break;
        }
        let (id, nack) = list[i].clone();
        i += 1;
        let Some(fields) = st::entry(&*txn, key, &s.meta, id) else {
            g.remove(txn, key, &s, id, &nack);
            deleted.push(id_reply(id));
            count -= 1;
            continue;
        };
        if min_idle > 0 && (now as i64 - nack.delivery_time as i64) < min_idle {
            continue;
        }
        if !seen {
            g.seen(txn, key, &s, &consumer);
            seen = true;
        }
        let deliveries = nack.delivery_count + u64::from(!justid);
        g.assign(txn, key, &s, id, Some(&nack), &consumer, now, deliveries);
        claimed.push(if justid {
            id_reply(id)
        } else {
            entry_reply(id, fields)
        });
        count -= 1;
    }
    let next = list.get(i).map_or(StreamId::MIN, |(id, _)| *id);
    g.store(txn, key, &s);
    Ok(Reply::Array(vec![
        id_reply(next),
        Reply::Array(claimed),
        Reply::Array(deleted),
    ]))
}

// ---------------------------------------------------------------------------------------------
// XINFO.

const XINFO_HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];

fn field(name: &str, v: Reply) -> (Reply, Reply) {
    (Reply::Bulk(Bytes::from(name.to_string())), v)
}

fn entries_read_reply(g: &Group) -> Reply {
    if g.entries_read == -1 {
        Reply::Nil
    } else {
        Reply::Int(g.entries_read)
    }
}

fn xinfo(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    match info(ctx, argv) {
        Ok(r) | Err(r) => r,
    }
}

fn info(ctx: &ReadCtx, argv: &[Bytes]) -> Result<Reply, Reply> {
    let sub = upper(&argv[1]);
    if sub == "HELP" {
        return Ok(help_reply(XINFO_HELP));
    }
    if argv.len() < 3 {
        return Err(subcommand_syntax(argv));
    }
    let key = &argv[2];
    let now = ctx.now_ms;
    ctx.read(|r| {
        let Some(s) = load(r, key)? else {
            return Err(Reply::err(ERR_NO_SUCH_KEY));
        };
        match sub.as_str() {
            "CONSUMERS" if argv.len() == 4 => {
                if st::group(r, key, &s.meta, &argv[3]).is_none() {
                    return Err(Reply::err(format!(
                        "NOGROUP No such consumer group '{}' for key name '{}'",
                        String::from_utf8_lossy(&argv[3]),
                        String::from_utf8_lossy(key)
                    )));
                }
                Ok(Reply::Array(
                    st::consumers(r, key, &s.meta, &argv[3])
                        .into_iter()
                        .map(|(name, c)| {
                            Reply::Map(vec![
                                field("name", Reply::Bulk(name)),
                                field("pending", Reply::Int(c.pending as i64)),
                                field("idle", Reply::Int((now as i64 - c.seen_time as i64).max(0))),
                            ])
                        })
                        .collect(),
                ))
            }
            "GROUPS" if argv.len() == 3 => Ok(Reply::Array(
                st::groups(r, key, &s.meta)
                    .into_iter()
                    .map(|(name, g)| {
                        Reply::Map(vec![
                            field("name", Reply::Bulk(name)),
                            field("consumers", Reply::Int(g.consumers as i64)),
                            field("pending", Reply::Int(g.pending as i64)),
                            field("last-delivered-id", id_reply(g.last_id)),
                            field("entries-read", entries_read_reply(&g)),
                            field("lag", st::lag(&s.meta, &g).map_or(Reply::Nil, Reply::Int)),
                        ])
                    })
                    .collect(),
            )),
            "STREAM" => stream_info(r, argv, key, &s),
            _ => Err(subcommand_syntax(argv)),
        }
    })
}

fn stream_info(r: &dyn Reader, argv: &[Bytes], key: &[u8], s: &Stream) -> Result<Reply, Reply> {
    let opts = &argv[3..];
    let full = !opts.is_empty();
    let mut count: i64 = 10;
    if full {
        if (opts.len() != 1 && opts.len() != 3) || !is(&opts[0], "FULL") {
            return Err(subcommand_syntax(argv));
        }
        if opts.len() == 3 {
            if !is(&opts[1], "COUNT") {
                return Err(subcommand_syntax(argv));
            }
            count = ll(&opts[2])?;
            if count < 0 {
                count = 10;
            }
        }
    }
    let m = &s.meta;
    // Redis's radix tree holds a node per run of entries; rockraft has none. These are what
    // a stream of this length would have, for tools that read them.
    let nodes = m.length.div_ceil(st::NODE_ENTRIES);
    let mut out = vec![
        field("length", Reply::Int(m.length as i64)),
        field("radix-tree-keys", Reply::Int(nodes as i64)),
        field("radix-tree-nodes", Reply::Int(nodes as i64 + 1)),
        field("last-generated-id", id_reply(m.last_id)),
        field("max-deleted-entry-id", id_reply(m.max_deleted)),
        field("entries-added", Reply::Int(m.entries_added as i64)),
        field("recorded-first-entry-id", id_reply(m.first_id)),
    ];
    if !full {
        let edge = |rev: bool| {
            st::entries(r, key, m, StreamId::MIN, StreamId::MAX, rev, 1)
                .pop()
                .map_or(Reply::Nil, |(id, f)| entry_reply(id, f))
        };
        out.push(field("groups", Reply::Int(m.groups as i64)));
        out.push(field("first-entry", edge(false)));
        out.push(field("last-entry", edge(true)));
        return Ok(Reply::Map(out));
    }
    let limit = count as usize;
    let under = |n: usize| limit == 0 || n < limit;
    out.push(field(
        "entries",
        entries_reply(st::entries(
            r,
            key,
            m,
            StreamId::MIN,
            StreamId::MAX,
            false,
            limit,
        )),
    ));
    let mut groups = Vec::new();
    for (name, g) in st::groups(r, key, m) {
        let mut pel = Vec::new();
        let mut by_consumer: HashMap<Bytes, Vec<Reply>> = HashMap::new();
        st::pending(
            r,
            key,
            m,
            &name,
            StreamId::MIN,
            StreamId::MAX,
            &mut |id, n| {
                if under(pel.len()) {
                    pel.push(Reply::Array(vec![
                        id_reply(id),
                        Reply::Bulk(n.consumer.clone()),
                        Reply::Int(n.delivery_time as i64),
                        Reply::Int(n.delivery_count as i64),
                    ]));
                }
                let mine = by_consumer.entry(n.consumer.clone()).or_default();
                if under(mine.len()) {
                    mine.push(Reply::Array(vec![
                        id_reply(id),
                        Reply::Int(n.delivery_time as i64),
                        Reply::Int(n.delivery_count as i64),
                    ]));
                }
                true
            },
        );
        let consumers = st::consumers(r, key, m, &name)
            .into_iter()
            .map(|(cname, c)| {
                let pending = by_consumer.remove(&cname).unwrap_or_default();
                Reply::Map(vec![
                    field("name", Reply::Bulk(cname)),
                    field("seen-time", Reply::Int(c.seen_time as i64)),
                    field("pel-count", Reply::Int(c.pending as i64)),
                    field("pending", Reply::Array(pending)),
                ])
            })
            .collect();
        groups.push(Reply::Map(vec![
            field("name", Reply::Bulk(name)),
            field("last-delivered-id", id_reply(g.last_id)),
            field("entries-read", entries_read_reply(&g)),
            field("lag", st::lag(m, &g).map_or(Reply::Nil, Reply::Int)),
            field("pel-count", Reply::Int(g.pending as i64)),
            field("pending", Reply::Array(pel)),
            field("consumers", Reply::Array(consumers)),
        ]));
    }
    out.push(field("groups", Reply::Array(groups)));
    Ok(Reply::Map(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_as_redis_parses_them() {
        let id = |s: &str| parse_id_full(s.as_bytes(), 0, true, true);
        assert_eq!(id("5-3"), Ok((StreamId::new(5, 3), true)));
        assert_eq!(id("5"), Ok((StreamId::new(5, 0), true)));
        assert_eq!(id("5-*"), Ok((StreamId::new(5, 0), false)));
        // strtoull's leniency once string2ll refuses.
        assert_eq!(id("05-1"), Ok((StreamId::new(5, 1), true)));
        assert_eq!(id("+5-1"), Ok((StreamId::new(5, 1), true)));
        assert_eq!(id(" 5-1"), Ok((StreamId::new(5, 1), true)));
        assert_eq!(id("-05-1").map(|r| r.0.ms), Err(Reply::err(ERR_INVALID_ID)));
        for bad in [
            "-",
            "+",
            "",
            "5-",
            "a",
            "5-1-1",
            "5 ",
            "-5",
            "18446744073709551616",
        ] {
            assert_eq!(id(bad), Err(Reply::err(ERR_INVALID_ID)), "{bad}");
        }
        assert_eq!(
            parse_id_full(b"+", 0, false, false),
            Ok((StreamId::MAX, true))
        );
        assert_eq!(range_end(b"5").unwrap(), StreamId::new(5, u64::MAX));
        assert_eq!(range_start(b"(5-1").unwrap(), StreamId::new(5, 2));
        assert_eq!(
            range_start(b"(18446744073709551615-18446744073709551615"),
            Err(Reply::err("ERR invalid start ID for the interval"))
        );
        assert_eq!(
            range_end(b"(0-0"),
            Err(Reply::err("ERR invalid end ID for the interval"))
        );
    }

    #[test]
    fn read_keys_follow_streams() {
        let argv: Vec<Bytes> = ["XREAD", "COUNT", "2", "STREAMS", "a", "b", "0", "$"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        assert_eq!(stream_keys(&argv), vec![4, 5]);
        assert!(!has_block(&argv));
        let argv: Vec<Bytes> = [
            "XREADGROUP",
            "GROUP",
            "streams",
            "c",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ]
        .iter()
        .map(|s| Bytes::from(*s))
        .collect();
        assert_eq!(stream_keys(&argv), vec![7]);
        assert!(has_block(&argv));
        assert_eq!(block_timeout(&argv), Some(None));
    }
}
