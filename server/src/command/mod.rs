//! The command table: every command once, with its arity, flags and key positions (as in
//! kvrocks' command table). The same table drives dispatch, `COMMAND` and key extraction.
//!
//! A command is one of three kinds:
//! - `Local`: answered by this node from connection or server state (PING, CLIENT, CONFIG…);
//! - `Read`: answered from local data once a ReadIndex round makes the read linearizable;
//! - `Write`: `prepare` validates the arguments on the proposing node and rewrites relative
//!   times into absolute ones; the result is proposed to raft, and `apply` computes the effect
//!   and the reply on every node from the entry alone.

pub mod acl;
pub mod acl_table;
pub mod bitmap;
pub mod blocking;
pub mod categories;
pub mod cluster;
pub mod connection;
pub mod dump;
pub mod function;
pub mod generic;
pub mod geo;
pub mod hash;
pub mod hll;
pub mod keyspace;
pub mod list;
pub mod multi;
pub mod pubsub;
pub mod scripting;
pub mod server;
pub mod set;
pub mod sort;
pub mod stream;
pub mod string;
pub mod tips;
pub mod zset;

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;
use rockraft_resp::Reply;

use crate::db::{Db, Txn};
use crate::session::Session;
use crate::Shared;

pub const ERR_SYNTAX: &str = "ERR syntax error";
pub const ERR_NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const ERR_NOT_FLOAT: &str = "ERR value is not a valid float";
pub const ERR_WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const ERR_OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const ERR_NO_SUCH_KEY: &str = "ERR no such key";

/// Command flags, as `COMMAND INFO` names them.
pub mod flags {
    pub const WRITE: u32 = 1;
    pub const READONLY: u32 = 1 << 1;
    pub const ADMIN: u32 = 1 << 2;
    pub const FAST: u32 = 1 << 3;
    pub const DENYOOM: u32 = 1 << 4;
    pub const LOADING: u32 = 1 << 5;
    pub const STALE: u32 = 1 << 6;
    pub const NOSCRIPT: u32 = 1 << 7;
    /// May block the client (BLPOP and friends).
    pub const BLOCKING: u32 = 1 << 8;
    /// Refused inside MULTI (SHUTDOWN, SYNC): Redis's `no-multi`.
    pub const NO_MULTI: u32 = 1 << 9;
    /// Served during a slot migration's ASK redirection (RESTORE-ASKING): Redis's `asking`.
    pub const ASKING: u32 = 1 << 10;

    pub const NAMES: [(u32, &str); 11] = [
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (FAST, "fast"),
        (NO_MULTI, "no_multi"),
        (ASKING, "asking"),
    ];
}

/// Answers from connection or node state.
pub type LocalFn = fn(&mut Session, &Shared, &[Bytes]) -> Reply;
/// Answers asynchronously (cluster administration that talks to other nodes or waits for a
/// membership change). Runs on leaders and followers alike.
pub type AsyncFn = fn(
    std::sync::Arc<Shared>,
    Vec<Bytes>,
    Caller,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>>;

/// What an asynchronous command knows of the connection that sent it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Caller {
    /// It came in on the TLS port (cluster replies name TLS ports).
    pub tls: bool,
}
/// Answers from committed data at `now_ms` (the local clock).
pub type ReadFn = fn(&ReadCtx, &[Bytes]) -> Reply;
/// Validates and canonicalises a write before it is proposed: `Ok(None)` proposes the
/// arguments as they are, `Ok(Some(argv))` proposes `argv` instead, `Err` answers at once.
pub type PrepareFn = fn(&[Bytes], u64) -> Result<Option<Vec<Bytes>>, Reply>;
/// Applies a write; deterministic in the arguments, the data and `txn.now_ms()`.
pub type ApplyFn = fn(&mut Txn, &[Bytes]) -> Reply;

#[derive(Clone, Copy)]
pub enum Kind {
    Local(LocalFn),
    Async(AsyncFn),
    Read(ReadFn),
    Write {
        prepare: PrepareFn,
        apply: ApplyFn,
    },
    /// MULTI EXEC DISCARD WATCH UNWATCH: run by the connection, which holds the transaction.
    Transaction,
}

/// One row of the command table.
pub struct CommandSpec {
    /// Lowercase name.
    pub name: &'static str,
    /// Number of arguments including the name; negative means "at least".
    pub arity: i32,
    pub flags: u32,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    /// `COMMAND DOCS` group and summary.
    pub group: &'static str,
    pub summary: &'static str,
    pub kind: Kind,
    /// For commands whose keys follow a count (`ZUNION numkeys key …`): the count's position.
    /// Their keys are the `first_key` (a destination, when > 0) and the counted ones.
    pub numkeys_at: Option<usize>,
    /// For writes that are reads for some arguments (EVAL of a `no-writes` script, FCALL of
    /// a `no-writes` function): whether these arguments are one, by the node's own state,
    /// and the read, which answers `None` if they no longer are one at the read.
    pub read_form: Option<ReadForm>,
    /// A container command's subcommands and their arities (negative: at least), checked
    /// before it runs or is queued ([`subcommand_error`]).
    pub subcommands: &'static [(&'static str, i32)],
    /// The subcommands COMMAND lists for a container that checks its own (CLIENT, CONFIG,
    /// CLUSTER, COMMAND, OBJECT): Redis's arities, nothing checked from this table.
    pub listed_subcommands: &'static [(&'static str, i32)],
    /// For commands whose keys a keyword locates (XREAD's `STREAMS`): their positions.
    pub key_finder: Option<KeyFinder>,
    /// Redis's ACL categories of the command (`@read`, `@write`, `@dangerous`…).
    pub categories: &'static [&'static str],
}

/// Where a command's keys are (see [`CommandSpec::key_finder`]).
pub type KeyFinder = fn(&[Bytes]) -> Vec<usize>;

/// See [`CommandSpec::read_form`].
#[derive(Clone, Copy)]
pub struct ReadForm {
    pub applies: fn(&crate::db::View, &[Bytes]) -> bool,
    pub run: fn(&ReadCtx, &[Bytes]) -> Option<Reply>,
}

impl CommandSpec {
    /// Marks the argument at `at` as the number of keys that follow it.
    pub(crate) fn numkeys(mut self, at: usize) -> Self {
        self.numkeys_at = Some(at);
        self
    }

    /// Locates the command's keys with `find` (see [`CommandSpec::key_finder`]).
    pub(crate) fn keys_by(mut self, find: KeyFinder) -> Self {
        self.key_finder = Some(find);
        self
    }

    /// Gives a container command its subcommand table (see [`CommandSpec::subcommands`]).
    pub(crate) fn subcommands(mut self, table: &'static [(&'static str, i32)]) -> Self {
        self.subcommands = table;
        self
    }

    /// Lists subcommands in COMMAND without checking them (see
    /// [`CommandSpec::listed_subcommands`]).
    pub(crate) fn lists_subcommands(mut self, table: &'static [(&'static str, i32)]) -> Self {
        self.listed_subcommands = table;
        self
    }

    /// The subcommands COMMAND shows.
    pub fn shown_subcommands(&self) -> &'static [(&'static str, i32)] {
        match self.subcommands.is_empty() {
            true => self.listed_subcommands,
            false => self.subcommands,
        }
    }

    /// Gives a write its read form (see [`CommandSpec::read_form`]).
    pub(crate) fn reads_when(
        mut self,
        applies: fn(&crate::db::View, &[Bytes]) -> bool,
        run: fn(&ReadCtx, &[Bytes]) -> Option<Reply>,
    ) -> Self {
        self.read_form = Some(ReadForm { applies, run });
        self
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    pub fn is_write(&self) -> bool {
        self.flags & flags::WRITE != 0
    }

    /// The key a command is routed by (its first), if it has one.
    pub fn routing_key<'a>(&self, argv: &'a [Bytes]) -> Option<&'a Bytes> {
        if self.numkeys_at.is_some() || self.key_finder.is_some() {
            return self.keys(argv).into_iter().next();
        }
        usize::try_from(self.first_key)
            .ok()
            .filter(|&i| i > 0)
            .and_then(|i| argv.get(i))
    }

    /// The key arguments of `argv` by the table's positions.
    pub fn keys<'a>(&self, argv: &'a [Bytes]) -> Vec<&'a Bytes> {
        if let Some(find) = self.key_finder {
            return find(argv).into_iter().filter_map(|i| argv.get(i)).collect();
        }
        if let Some(at) = self.numkeys_at {
            let n = argv.get(at).and_then(|n| parse_i64(n)).unwrap_or(0).max(0) as usize;
            let counted = argv.iter().skip(at + 1).take(n);
            let dst = usize::try_from(self.first_key)
                .ok()
                .filter(|&i| i > 0)
                .and_then(|i| argv.get(i));
            return dst.into_iter().chain(counted).collect();
        }
        if self.first_key <= 0 {
            return Vec::new();
        }
        let last = if self.last_key < 0 {
            argv.len() as i32 + self.last_key
        } else {
            self.last_key
        };
        let mut out = Vec::new();
        let mut i = self.first_key;
        while i <= last && (i as usize) < argv.len() {
            out.push(&argv[i as usize]);
            i += self.step.max(1);
        }
        out
    }
}

/// What a read command sees: the committed data (each read on a consistent view of its own),
/// or one fixed state (a transaction's: one view for a read-only EXEC, the apply round for an
/// EXEC with writes, where reads see the transaction's earlier writes).
pub struct ReadCtx<'a> {
    data: Data<'a>,
    /// The node; None while a transaction is applied during the log's replay at start (no
    /// client waits for those replies).
    node: Option<&'a Shared>,
    pub now_ms: u64,
    /// The connection speaks RESP3 (some replies differ in shape).
    pub resp3: bool,
    /// Random choices (SRANDMEMBER, RANDOMKEY…) from this seeded generator instead of the
    /// thread's: a script applied on every node must choose the same everywhere.
    rng: Option<std::cell::RefCell<rand::rngs::StdRng>>,
    /// SCAN cursors handed out within one script (numbered in order, so the same on every
    /// node) instead of the node's.
    cursors: Option<&'a std::cell::RefCell<Vec<Vec<u8>>>>,
    /// The restricted ACL user a read-only script runs as: its `redis.call`s are checked.
    pub user: Option<std::sync::Arc<crate::acl::User>>,
}

#[derive(Clone, Copy)]
enum Data<'a> {
    Db(&'a Db),
    Fixed(&'a dyn crate::types::Reader),
}

impl<'a> ReadCtx<'a> {
    /// Reads of the committed data at `now_ms`.
    pub fn committed(shared: &'a Shared, now_ms: u64, resp3: bool) -> Self {
        ReadCtx {
            data: Data::Db(&shared.db),
            node: Some(shared),
            now_ms,
            resp3,
            rng: None,
            cursors: None,
            user: None,
        }
    }

    /// Reads of one fixed state (whose own clock decides what is expired).
    pub fn fixed(
        reader: &'a dyn crate::types::Reader,
        node: Option<&'a Shared>,
        now_ms: u64,
        resp3: bool,
    ) -> Self {
        ReadCtx {
            data: Data::Fixed(reader),
            node,
            now_ms,
            resp3,
            rng: None,
            cursors: None,
            user: None,
        }
    }

    /// The same, with random choices drawn from a generator seeded with `seed`.
    pub fn seeded(mut self, seed: u64) -> Self {
        use rand::SeedableRng;
        self.rng = Some(std::cell::RefCell::new(rand::rngs::StdRng::seed_from_u64(
            seed,
        )));
        self
    }

    /// The same, with SCAN cursors kept in `cursors` (a script's own).
    pub fn with_cursors(mut self, cursors: &'a std::cell::RefCell<Vec<Vec<u8>>>) -> Self {
        self.cursors = Some(cursors);
        self
    }

    /// Runs `f` with the generator random choices come from (see [`ReadCtx::seeded`]).
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut dyn rand::RngCore) -> T) -> T {
        match &self.rng {
            Some(r) => f(&mut *r.borrow_mut()),
            None => f(&mut rand::rng()),
        }
    }

    /// Runs `read` on a consistent state (see [`Db::read`]).
    pub fn read<T>(&self, read: impl Fn(&dyn crate::types::Reader) -> T) -> T {
        match self.data {
            Data::Db(db) => db.read(|view| {
                read(&crate::types::At {
                    view,
                    now_ms: self.now_ms,
                })
            }),
            Data::Fixed(r) => read(r),
        }
    }

    /// The live value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<crate::db::Value> {
        match self.data {
            Data::Db(db) => db.get(key, self.now_ms),
            Data::Fixed(r) => r.live(key),
        }
    }

    /// Visits live keys in storage order from data key `from` (see [`Db::for_each_key`]).
    pub fn for_each_key(
        &self,
        from: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        match self.data {
            Data::Db(db) => db.for_each_key(from, self.now_ms, visit),
            Data::Fixed(r) => r.for_each_key(from, &mut visit),
        }
    }

    /// Hands out a SCAN cursor for `position` (0 when there is no node to remember it).
    pub fn put_cursor(&self, position: Vec<u8>) -> u64 {
        if let Some(c) = self.cursors {
            let mut c = c.borrow_mut();
            c.push(position);
            return c.len() as u64;
        }
        self.node.map_or(0, |n| n.scan_cursors.put(position))
    }

    /// The position of a SCAN cursor handed out earlier.
    pub fn take_cursor(&self, cursor: u64) -> Option<Vec<u8>> {
        if let Some(c) = self.cursors {
            let i = usize::try_from(cursor).ok()?.checked_sub(1)?;
            return c.borrow().get(i).cloned();
        }
        self.node?.scan_cursors.take(cursor)
    }

    /// `proto-max-bulk-len` on this node (Redis's default without one).
    pub fn proto_max_bulk_len(&self) -> u64 {
        self.node.map_or(512 << 20, |n| {
            n.runtime
                .proto_max_bulk_len
                .load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// Redis's encoding thresholds, as configured on this node.
    pub fn encodings(&self) -> &crate::Encodings {
        static DEFAULT: OnceLock<crate::Encodings> = OnceLock::new();
        match self.node {
            Some(n) => &n.runtime.encodings,
            None => DEFAULT.get_or_init(crate::Encodings::default),
        }
    }
}

/// The reply for an operation a collection type refused.
pub fn type_error(e: crate::types::Error) -> Reply {
    use crate::types::Error;
    match e {
        Error::WrongType => Reply::err(ERR_WRONGTYPE),
        Error::NotInteger(what) => Reply::err(format!("ERR {what} value is not an integer")),
        Error::NotFloat(what) => Reply::err(format!("ERR {what} value is not a float")),
        Error::Overflow => Reply::err(ERR_OVERFLOW),
        Error::NanOrInfinity => Reply::err("ERR increment would produce NaN or Infinity"),
        Error::NoSuchKey => Reply::err(ERR_NO_SUCH_KEY),
        Error::IndexOutOfRange => Reply::err("ERR index out of range"),
        Error::ScoreNan => Reply::err("ERR resulting score is not a number (NaN)"),
    }
}

/// The full command table.
pub fn table() -> &'static [CommandSpec] {
    static TABLE: OnceLock<Vec<CommandSpec>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Vec::new();
        t.extend(connection::commands());
        t.extend(acl::commands());
        t.extend(server::commands());
        t.extend(string::commands());
        t.extend(keyspace::commands());
        t.extend(hash::commands());
        t.extend(set::commands());
        t.extend(list::commands());
        t.extend(zset::commands());
        t.extend(generic::commands());
        t.extend(dump::commands());
        t.extend(sort::commands());
        t.extend(cluster::commands());
        t.extend(multi::commands());
        t.extend(blocking::commands());
        t.extend(bitmap::commands());
        t.extend(hll::commands());
        t.extend(geo::commands());
        t.extend(scripting::commands());
        t.extend(function::commands());
        t.extend(pubsub::commands());
        t.extend(stream::commands());
        t
    })
}

/// The error Redis's command lookup gives a container command's unknown subcommand or a
/// subcommand's wrong arity (before the command runs or is queued), if any.
pub fn subcommand_error(spec: &CommandSpec, argv: &[Bytes]) -> Option<Reply> {
    if spec.subcommands.is_empty() {
        return None;
    }
    check_subcommand(spec.name, spec.subcommands, argv)
}

/// [`subcommand_error`] against a table of (subcommand, arity; negative: at least).
pub fn check_subcommand(cmd: &str, table: &[(&str, i32)], argv: &[Bytes]) -> Option<Reply> {
    let sub = upper(&argv[1]);
    let Some(&(_, arity)) = table.iter().find(|(n, _)| *n == sub) else {
        return Some(unknown_subcommand(cmd, &argv[1]));
    };
    let n = argv.len() as i32;
    let ok = if arity >= 0 { n == arity } else { n >= -arity };
    (!ok).then(|| wrong_arity(&format!("{cmd}|{}", sub.to_ascii_lowercase())))
}

/// A command's name as Redis's errors give it: `container|subcommand` for a container
/// command's subcommand (`client|tracking`), else the name.
pub fn full_name(spec: &CommandSpec, argv: &[Bytes]) -> String {
    const CONTAINERS: &[&str] = &[
        "client", "config", "cluster", "command", "object", "memory", "acl", "latency", "module",
        "slowlog",
    ];
    match argv.get(1) {
        Some(sub) if !spec.subcommands.is_empty() || CONTAINERS.contains(&spec.name) => {
            format!(
                "{}|{}",
                spec.name,
                String::from_utf8_lossy(sub).to_ascii_lowercase()
            )
        }
        _ => spec.name.to_string(),
    }
}

/// Looks a command up by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    static INDEX: OnceLock<HashMap<&'static str, usize>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        table()
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name, i))
            .collect()
    });
    // Lowercased on the stack: this runs for every request.
    let mut buf = [0u8; 32];
    let lower = buf.get_mut(..name.len())?;
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    index
        .get(std::str::from_utf8(lower).ok()?)
        .map(|&i| &table()[i])
}

/// Write commands that only the server itself proposes (never accepted from clients).
pub fn internal_apply(name: &[u8]) -> Option<ApplyFn> {
    match name {
        b"rockraft.delexpired" => Some(keyspace::apply_delexpired),
        b"rockraft.exec" => Some(multi::apply_exec),
        b"rockraft.acl" => Some(crate::acl::apply),
        b"rockraft.as" => Some(crate::acl::apply_as),
        b"rockraft.migrated" => Some(dump::apply_migrated),
        _ => None,
    }
}

/// `-ERR wrong number of arguments for '<name>' command`.
pub fn wrong_arity(name: &str) -> Reply {
    Reply::err(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// Redis's reply to a command it does not know.
pub fn unknown_command(argv: &[Bytes]) -> Reply {
    let mut args = String::new();
    for a in argv.iter().skip(1) {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        let s = String::from_utf8_lossy(a);
        let s: String = s.chars().take(room).collect();
        args.push_str(&format!("'{s}' "));
    }
    let name = String::from_utf8_lossy(&argv[0]);
    let name: String = name.chars().take(128).collect();
    Reply::err(format!(
        "ERR unknown command '{name}', with args beginning with: {args}"
    ))
}

/// `-ERR unknown subcommand '<sub>'. Try <CMD> HELP.`
pub fn unknown_subcommand(cmd: &str, sub: &[u8]) -> Reply {
    let sub: String = String::from_utf8_lossy(sub).chars().take(128).collect();
    Reply::err(format!(
        "ERR unknown subcommand '{sub}'. Try {} HELP.",
        cmd.to_ascii_uppercase()
    ))
}

/// A `<CMD> HELP` reply: one status line per text line.
pub fn help_reply(lines: &[&str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::Simple(l.to_string())).collect())
}

/// Parses an integer the way Redis's `string2ll` does (no sign `+`, no spaces, no leading zeros).
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if digits.is_empty()
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits[0] == b'0' && (digits.len() > 1 || b[0] == b'-'))
    {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// An integer argument, or Redis's "not an integer" error.
pub fn int_arg(b: &[u8]) -> Result<i64, Reply> {
    parse_i64(b).ok_or_else(|| Reply::err(ERR_NOT_INTEGER))
}

/// Parses a float the way Redis does for INCRBYFLOAT: no spaces, not NaN.
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    (!v.is_nan()).then_some(v)
}

/// Uppercase copy of an option argument, for matching.
pub fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

/// Milliseconds since the Unix epoch on this node's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Shorthand for a table row.
#[allow(clippy::too_many_arguments)]
pub(crate) fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    group: &'static str,
    summary: &'static str,
    kind: Kind,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
        group,
        summary,
        kind,
        numkeys_at: None,
        read_form: None,
        subcommands: &[],
        listed_subcommands: &[],
        key_finder: None,
        categories: categories::of(name).unwrap_or(&["@slow"]),
    }
}

/// `prepare` for writes whose arguments need no rewriting.
pub(crate) fn as_is(_: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string2ll_rules() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"+1",
            b"01",
            b"-0",
            b" 1",
            b"1 ",
            b"1.0",
            b"9223372036854775808",
            b"-",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn every_command_is_unique_and_lowercase() {
        let mut seen = std::collections::HashSet::new();
        for c in table() {
            assert!(seen.insert(c.name), "duplicate {}", c.name);
            assert_eq!(c.name, c.name.to_ascii_lowercase());
            assert!(c.arity != 0);
            // A write proposes through its apply; an asynchronous command flagged write
            // (MIGRATE) proposes its own entries.
            match c.kind {
                Kind::Write { .. } => assert!(c.is_write(), "{}", c.name),
                Kind::Async(_) => {}
                _ => assert!(!c.is_write(), "{}", c.name),
            }
        }
        assert!(lookup(b"GeT").is_some());
    }

    #[test]
    fn unknown_command_text_matches_redis() {
        let argv = [Bytes::from("foo"), Bytes::from("a"), Bytes::from("b")];
        assert_eq!(
            unknown_command(&argv),
            Reply::err("ERR unknown command 'foo', with args beginning with: 'a' 'b' ")
        );
    }
}
