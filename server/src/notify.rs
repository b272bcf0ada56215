//! Keyspace notifications (`notify-keyspace-events`): the `__keyspace@0__:<key>` and
//! `__keyevent@0__:<event>` messages Redis publishes when a command changes a key.
//!
//! Every node emits them itself, to its own subscribers, when it applies the write (so a
//! subscriber on a follower sees them too), once the apply round is written. A node that
//! installs a snapshot applies no commands, and one that restarts does not apply again what
//! it had applied, so neither emits anything twice. The events of a command come from what it
//! changed: the keys it touched, whether each existed before and after, and Redis's event
//! names for the command ([`events`]).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use rockraft_resp::Reply;

use crate::pubsub::{Hub, Space};

pub const KEYSPACE: u32 = 1 << 0;
pub const KEYEVENT: u32 = 1 << 1;
pub const GENERIC: u32 = 1 << 2;
pub const STRING: u32 = 1 << 3;
pub const LIST: u32 = 1 << 4;
pub const SET: u32 = 1 << 5;
pub const HASH: u32 = 1 << 6;
pub const ZSET: u32 = 1 << 7;
pub const EXPIRED: u32 = 1 << 8;
pub const EVICTED: u32 = 1 << 9;
pub const STREAM: u32 = 1 << 10;
pub const KEY_MISS: u32 = 1 << 11;
pub const MODULE: u32 = 1 << 13;
pub const NEW: u32 = 1 << 14;
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Redis's `keyspaceEventsStringToFlags`; `None` for a character that names no class.
pub fn parse_flags(s: &[u8]) -> Option<u32> {
    let mut flags = 0;
    for &c in s {
        flags |= match c {
            b'A' => ALL,
            b'g' => GENERIC,
            b'$' => STRING,
            b'l' => LIST,
            b's' => SET,
            b'h' => HASH,
            b'z' => ZSET,
            b'x' => EXPIRED,
            b'e' => EVICTED,
            b'K' => KEYSPACE,
            b'E' => KEYEVENT,
            b't' => STREAM,
            b'm' => KEY_MISS,
            b'd' => MODULE,
            b'n' => NEW,
            _ => return None,
        };
    }
    Some(flags)
}

/// Redis's `keyspaceEventsFlagsToString`.
pub fn format_flags(flags: u32) -> String {
    let mut out = String::new();
    if flags & ALL == ALL {
        out.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if flags & bit != 0 {
                out.push(c);
            }
        }
    }
    for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if flags & bit != 0 {
            out.push(c);
        }
    }
    out
}

/// One event: its class, its name, the key.
pub type Event = (u32, &'static str, Vec<u8>);

/// What one command did to one key: (key, existed before, exists after).
pub type Change = (Vec<u8>, bool, bool);

/// The node's notification setting and where its messages go.
pub struct Notifier {
    pub flags: AtomicU32,
    hub: Arc<Hub>,
}

impl Notifier {
    pub fn new(hub: Arc<Hub>) -> Notifier {
        Notifier {
            flags: AtomicU32::new(0),
            hub,
        }
    }

    /// Whether any event would be published (else commands need not work them out).
    pub fn enabled(&self) -> bool {
        let f = self.flags.load(Ordering::Relaxed);
        f & (KEYSPACE | KEYEVENT) != 0 && f & !(KEYSPACE | KEYEVENT) != 0
    }

    /// Publishes events to this node's subscribers (never to other nodes: each emits its own).
    pub fn publish(&self, events: &[Event]) {
        let flags = self.flags.load(Ordering::Relaxed);
        for (class, event, key) in events {
            if flags & class == 0 {
                continue;
            }
            if flags & KEYSPACE != 0 {
                let channel = [&b"__keyspace@0__:"[..], key].concat();
                self.hub.publish(
                    Space::Global,
                    &Bytes::from(channel),
                    &Bytes::from_static(event.as_bytes()),
                );
            }
            if flags & KEYEVENT != 0 {
                let channel = format!("__keyevent@0__:{event}");
                self.hub.publish(
                    Space::Global,
                    &Bytes::from(channel),
                    &Bytes::copy_from_slice(key),
                );
            }
        }
    }
}

/// How a command's event relates to the keys it changed.
#[derive(Clone, Copy)]
enum Rule {
    /// The event for every key it changed, then `del` for each it emptied.
    Each(u32, &'static str),
    /// The event for each key that exists after it; `del` instead for one it removed
    /// (STORE commands with an empty result, EXPIRE with a time in the past…).
    Stored(u32, &'static str),
    /// Only `del`, for each key it removed.
    Del,
}

fn has_option(argv: &[Bytes], names: &[&str]) -> bool {
    argv.iter()
        .skip(2)
        .any(|a| names.iter().any(|n| a.eq_ignore_ascii_case(n.as_bytes())))
}

/// `LEFT`/`RIGHT` of LMPOP-like commands: the pop event.
fn mpop_event(argv: &[Bytes], list: bool) -> &'static str {
    let left = has_option(argv, &[if list { "LEFT" } else { "MIN" }]);
    match (list, left) {
        (true, true) => "lpop",
        (true, false) => "rpop",
        (false, true) => "zpopmin",
        (false, false) => "zpopmax",
    }
}

fn rule(name: &str, argv: &[Bytes]) -> Option<Rule> {
    use Rule::{Del, Each, Stored};
    Some(match name {
        "set" | "setnx" | "setex" | "psetex" | "getset" | "mset" | "msetnx" => Each(STRING, "set"),
        "incr" | "decr" | "incrby" | "decrby" => Each(STRING, "incrby"),
        "incrbyfloat" => Each(STRING, "incrbyfloat"),
        "append" => Each(STRING, "append"),
        "setrange" => Each(STRING, "setrange"),
        "setbit" | "bitfield" => Each(STRING, "setbit"),
        "bitop" => Stored(STRING, "set"),
        "pfadd" | "pfmerge" => Each(STRING, "pfadd"),
        "del" | "unlink" | "getdel" => Del,
        "expire" | "pexpire" | "expireat" | "pexpireat" => Stored(GENERIC, "expire"),
        "persist" => Each(GENERIC, "persist"),
        "getex" if has_option(argv, &["PERSIST"]) => Each(GENERIC, "persist"),
        "getex" => Stored(GENERIC, "expire"),
        "copy" => Stored(GENERIC, "copy_to"),
        "restore" | "restore-asking" => Stored(GENERIC, "restore"),
        "lpush" | "lpushx" => Each(LIST, "lpush"),
        "rpush" | "rpushx" => Each(LIST, "rpush"),
        "lpop" | "blpop" => Each(LIST, "lpop"),
        "rpop" | "brpop" => Each(LIST, "rpop"),
        "lmpop" | "blmpop" => Each(LIST, mpop_event(argv, true)),
        "linsert" => Each(LIST, "linsert"),
        "lset" => Each(LIST, "lset"),
        "ltrim" => Each(LIST, "ltrim"),
        "lrem" => Each(LIST, "lrem"),
        "sort" => Stored(LIST, "sortstore"),
        "hset" | "hmset" | "hsetnx" => Each(HASH, "hset"),
        "hincrby" => Each(HASH, "hincrby"),
        "hincrbyfloat" => Each(HASH, "hincrbyfloat"),
        "hdel" => Each(HASH, "hdel"),
        "sadd" => Each(SET, "sadd"),
        "srem" => Each(SET, "srem"),
        "spop" => Each(SET, "spop"),
        "sinterstore" => Stored(SET, "sinterstore"),
        "sunionstore" => Stored(SET, "sunionstore"),
        "sdiffstore" => Stored(SET, "sdiffstore"),
        "zadd" if has_option(argv, &["INCR"]) => Each(ZSET, "zincr"),
        "zadd" | "geoadd" => Each(ZSET, "zadd"),
        "zincrby" => Each(ZSET, "zincr"),
        "zrem" => Each(ZSET, "zrem"),
        "zremrangebyscore" => Each(ZSET, "zremrangebyscore"),
        "zremrangebyrank" => Each(ZSET, "zremrangebyrank"),
        "zremrangebylex" => Each(ZSET, "zremrangebylex"),
        "zunionstore" => Stored(ZSET, "zunionstore"),
        "zinterstore" => Stored(ZSET, "zinterstore"),
        "zdiffstore" => Stored(ZSET, "zdiffstore"),
        "zrangestore" => Stored(ZSET, "zrangestore"),
        "zpopmin" | "bzpopmin" => Each(ZSET, "zpopmin"),
        "zpopmax" | "bzpopmax" => Each(ZSET, "zpopmax"),
        "zmpop" | "bzmpop" => Each(ZSET, mpop_event(argv, false)),
        "geosearchstore" => Stored(ZSET, "geosearchstore"),
        "georadius" | "georadiusbymember" => Stored(ZSET, "georadiusstore"),
        _ => return None,
    })
}

/// Whether command `name` (lowercase) emits events (so its changes are worth recording).
pub fn emits(name: &str) -> bool {
    matches!(
        name,
        "rename" | "renamenx" | "smove" | "lmove" | "blmove" | "rpoplpush" | "brpoplpush"
    ) || rule(name, &[]).is_some()
}

/// How many of a BITFIELD's SET and INCRBY operations changed the value (Redis notifies
/// only then): those whose reply is not nil (an OVERFLOW FAIL that fired).
fn bitfield_changes(argv: &[Bytes], reply: &Reply) -> usize {
    let Reply::Array(items) = reply else {
        return 0;
    };
    let (mut i, mut at, mut changes) = (2, 0, 0);
    while i < argv.len() {
        let op = argv[i].to_ascii_uppercase();
        match op.as_slice() {
            b"GET" => (i, at) = (i + 3, at + 1),
            b"SET" | b"INCRBY" => {
                if items.get(at).is_some_and(|r| *r != Reply::Nil) {
                    changes += 1;
                }
                (i, at) = (i + 4, at + 1);
            }
            _ => i += 2,
        }
    }
    changes
}

/// The events of command `argv` (named `name`, lowercase), which made `changes` and
/// answered `reply`, in Redis's order.
pub fn events(name: &str, argv: &[Bytes], changes: &[Change], reply: &Reply) -> Vec<Event> {
    let mut out = Vec::new();
    let new = |out: &mut Vec<Event>, (key, before, after): &Change| {
        if !before && *after {
            out.push((NEW, "new", key.clone()));
        }
    };
    let find = |key: &[u8]| changes.iter().find(|(k, ..)| k == key);
    match name {
        "rename" | "renamenx" if argv.len() >= 3 => {
            if let (Some(src), Some(dst)) = (find(&argv[1]), find(&argv[2])) {
                // The destination is deleted and added again: always a new key.
                out.push((NEW, "new", dst.0.clone()));
                out.push((GENERIC, "rename_from", src.0.clone()));
                out.push((GENERIC, "rename_to", dst.0.clone()));
            }
            return out;
        }
        "smove" if argv.len() >= 3 => {
            if let Some(src) = find(&argv[1]) {
                out.push((SET, "srem", src.0.clone()));
                if src.1 && !src.2 {
                    out.push((GENERIC, "del", src.0.clone()));
                }
            }
            if let Some(dst) = find(&argv[2]).filter(|_| argv[1] != argv[2]) {
                new(&mut out, dst);
                out.push((SET, "sadd", dst.0.clone()));
            }
            return out;
        }
        "lmove" | "blmove" | "rpoplpush" | "brpoplpush" if argv.len() >= 3 => {
            let (from_left, to_left) = match name {
                "lmove" | "blmove" if argv.len() >= 5 => (
                    argv[3].eq_ignore_ascii_case(b"LEFT"),
                    argv[4].eq_ignore_ascii_case(b"LEFT"),
                ),
                _ => (false, true),
            };
            if let Some(dst) = find(&argv[2]) {
                new(&mut out, dst);
                out.push((LIST, if to_left { "lpush" } else { "rpush" }, dst.0.clone()));
            }
            if let Some(src) = find(&argv[1]) {
                out.push((LIST, if from_left { "lpop" } else { "rpop" }, src.0.clone()));
                if src.1 && !src.2 {
                    out.push((GENERIC, "del", src.0.clone()));
                }
            }
            return out;
        }
        _ => {}
    }
    let Some(rule) = rule(name, argv) else {
        return out;
    };
    let silent = name == "bitfield" && bitfield_changes(argv, reply) == 0;
    let sets_expiry = match name {
        "set" => has_option(argv, &["EX", "PX", "EXAT", "PXAT"]),
        "setex" | "psetex" => true,
        _ => false,
    };
    for change in changes {
        let (key, before, after) = change;
        match rule {
            Rule::Del => {
                if *before && !after {
                    out.push((GENERIC, "del", key.clone()));
                }
            }
            Rule::Stored(class, event) => {
                if *after && matches!(name, "copy" | "restore" | "restore-asking") {
                    // COPY and RESTORE REPLACE delete a key they replace and add it again.
                    out.push((NEW, "new", key.clone()));
                    out.push((class, event, key.clone()));
                } else if *after {
                    new(&mut out, change);
                    out.push((class, event, key.clone()));
                } else if *before {
                    out.push((GENERIC, "del", key.clone()));
                }
            }
            Rule::Each(class, event) => {
                new(&mut out, change);
                if silent {
                    continue;
                }
                out.push((class, event, key.clone()));
                if sets_expiry && *after {
                    out.push((GENERIC, "expire", key.clone()));
                }
                if *before && !after {
                    out.push((GENERIC, "del", key.clone()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_and_print_as_redis_s() {
        assert_eq!(
            parse_flags(b"KEA").map(format_flags).as_deref(),
            Some("AKE")
        );
        assert_eq!(
            parse_flags(b"g$lshzxetdnKEm").map(format_flags).as_deref(),
            Some("AKEm")
        );
        assert_eq!(parse_flags(b"Kl").map(format_flags).as_deref(), Some("lK"));
        assert_eq!(parse_flags(b"Q"), None);
        assert_eq!(parse_flags(b""), Some(0));
    }

    #[test]
    fn a_pop_that_empties_a_list_also_deletes_it() {
        let argv = vec![Bytes::from_static(b"LPOP"), Bytes::from_static(b"l")];
        let ev = events("lpop", &argv, &[(b"l".to_vec(), true, false)], &Reply::Nil);
        assert_eq!(
            ev,
            vec![
                (LIST, "lpop", b"l".to_vec()),
                (GENERIC, "del", b"l".to_vec())
            ]
        );
        let ev = events(
            "set",
            &[
                Bytes::from_static(b"SET"),
                Bytes::from_static(b"k"),
                Bytes::from_static(b"v"),
                Bytes::from_static(b"EX"),
                Bytes::from_static(b"5"),
            ],
            &[(b"k".to_vec(), false, true)],
            &Reply::ok(),
        );
        assert_eq!(
            ev,
            vec![
                (NEW, "new", b"k".to_vec()),
                (STRING, "set", b"k".to_vec()),
                (GENERIC, "expire", b"k".to_vec())
            ]
        );
    }
}
