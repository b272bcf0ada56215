//! Scripting commands: EVAL EVALSHA EVAL_RO EVALSHA_RO SCRIPT (LOAD EXISTS FLUSH KILL HELP).
//!
//! ```text
//! EVAL script numkeys [key …] [arg …]      (proposed as EVAL <seed> script numkeys …)
//! EVALSHA sha1 numkeys [key …] [arg …]
//! EVAL_RO / EVALSHA_RO …                   reads: one ReadIndex round, one consistent view
//! SCRIPT LOAD script | EXISTS sha1 … | FLUSH [ASYNC|SYNC] | KILL | HELP
//! ```
//!
//! EVAL and EVALSHA are one log entry each: the script runs at apply on every node, against
//! the apply round (`scripting::Host`), so it is atomic and every replica ends the same. The
//! script cache is replicated state: EVAL and SCRIPT LOAD add to it, SCRIPT FLUSH empties it,
//! all through the log, so EVALSHA works on any leader, after restarts and on nodes that
//! joined later.

use std::cell::RefCell;

use bytes::Bytes;
use rand::Rng;
use rockraft_resp::Reply;

use super::flags::{NOSCRIPT, READONLY, STALE, WRITE};
use super::{
    help_reply, parse_i64, spec, unknown_subcommand, upper, wrong_arity, CommandSpec, Kind,
    ReadCtx, ERR_NOT_INTEGER,
};
use crate::db::Txn;
use crate::scripting::{self, Host, Outcome};
use crate::types::Reader;

const ERR_NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";

#[rustfmt::skip]
pub fn commands() -> Vec<CommandSpec> {
    use Kind::{Read, Write};
    let g = "scripting";
    vec![
        spec("eval", -3, WRITE | NOSCRIPT | STALE, (0, 0, 0), g, "Executes a server-side Lua script.", Write { prepare: prepare_eval, apply: apply_eval }).numkeys(2).reads_when(eval_reads, eval_read),
        spec("evalsha", -3, WRITE | NOSCRIPT | STALE, (0, 0, 0), g, "Executes a server-side Lua script by SHA1 digest.", Write { prepare: prepare_eval, apply: apply_eval }).numkeys(2).reads_when(eval_reads, eval_read),
        spec("eval_ro", -3, READONLY | NOSCRIPT | STALE, (0, 0, 0), g, "Executes a read-only server-side Lua script.", Read(eval_ro)).numkeys(2),
        spec("evalsha_ro", -3, READONLY | NOSCRIPT | STALE, (0, 0, 0), g, "Executes a read-only server-side Lua script by SHA1 digest.", Read(eval_ro)).numkeys(2),
        spec("script", -2, WRITE | NOSCRIPT, (0, 0, 0), g, "A container for Lua scripts management commands.", Write { prepare: prepare_script, apply: apply_script }).subcommands(SCRIPT_SUBCOMMANDS),
    ]
}

/// The number of keys of an EVAL-like `argv` (`[name, script, numkeys, …]`), checked.
fn numkeys(argv: &[Bytes]) -> Result<usize, Reply> {
    let n = parse_i64(&argv[2]).ok_or_else(|| Reply::err(ERR_NOT_INTEGER))?;
    if n < 0 {
        return Err(Reply::err("ERR Number of keys can't be negative"));
    }
    if n as u64 > (argv.len() - 3) as u64 {
        return Err(Reply::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    Ok(n as usize)
}

/// `EVAL script numkeys …` → `EVAL <seed> script numkeys …`: the seed of the script's
/// `math.random` and of the random choices of the commands it calls.
fn prepare_eval(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    numkeys(argv)?;
    let seed: u64 = rand::rng().random();
    let mut out = Vec::with_capacity(argv.len() + 1);
    out.push(argv[0].clone());
    out.push(Bytes::copy_from_slice(&seed.to_be_bytes()));
    out.extend(argv[1..].iter().cloned());
    Ok(Some(out))
}

fn is_sha_form(name: &[u8]) -> bool {
    upper(name).starts_with("EVALSHA")
}

/// A script run during apply: commands read and write the apply round.
pub(super) struct WriteHost<'t, 'c, 'e> {
    txn: &'t mut Txn<'c, 'e>,
    writable: bool,
    seed: u64,
    calls: u64,
    cursors: RefCell<Vec<Vec<u8>>>,
}

impl<'t, 'c, 'e> WriteHost<'t, 'c, 'e> {
    pub(super) fn new(txn: &'t mut Txn<'c, 'e>, writable: bool, seed: u64) -> Self {
        WriteHost {
            txn,
            writable,
            seed,
            calls: 0,
            cursors: RefCell::new(Vec::new()),
        }
    }
}

/// A seed for the `n`th command of a script seeded with `seed` (SplitMix64).
fn nth_seed(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Host for WriteHost<'_, '_, '_> {
    fn writable(&self) -> bool {
        self.writable
    }

    fn user(&self) -> Option<&crate::acl::User> {
        self.txn.acl_user()
    }

    fn now_ms(&self) -> u64 {
        self.txn.now_ms()
    }

    fn run(&mut self, spec: &'static CommandSpec, argv: Vec<Bytes>, resp3: bool) -> Reply {
        self.calls += 1;
        let seed = nth_seed(self.seed, self.calls);
        let now = self.txn.now_ms();
        match spec.kind {
            Kind::Write { prepare, apply } => {
                let mut argv = match prepare(&argv, now) {
                    Ok(Some(rewritten)) => rewritten,
                    Ok(None) => argv,
                    Err(reply) => return reply,
                };
                if spec.name == "spop" {
                    // SPOP's proposer-chosen seed, chosen here from the script's instead.
                    argv[2] = Bytes::from(seed.to_string());
                }
                self.txn.apply_command(spec.name, apply, &argv)
            }
            Kind::Read(run) => {
                let ctx = ReadCtx::fixed(&*self.txn, None, now, resp3)
                    .seeded(seed)
                    .with_cursors(&self.cursors);
                run(&ctx, &argv)
            }
            _ => Reply::err("ERR This Redis command is not allowed from script"),
        }
    }
}

/// A read-only script: commands read one consistent view.
pub(super) struct ReadHost<'r> {
    reader: &'r dyn Reader,
    /// The restricted user the script runs as.
    pub(super) user: Option<std::sync::Arc<crate::acl::User>>,
    now_ms: u64,
    seed: u64,
    calls: u64,
    cursors: RefCell<Vec<Vec<u8>>>,
}

impl<'r> ReadHost<'r> {
    pub(super) fn new(reader: &'r dyn Reader, now_ms: u64, seed: u64) -> Self {
        ReadHost {
            reader,
            user: None,
            now_ms,
            seed,
            calls: 0,
            cursors: RefCell::new(Vec::new()),
        }
    }
}

impl Host for ReadHost<'_> {
    fn writable(&self) -> bool {
        false
    }

    fn user(&self) -> Option<&crate::acl::User> {
        self.user.as_deref()
    }

    fn now_ms(&self) -> u64 {
        self.now_ms
    }

    fn run(&mut self, spec: &'static CommandSpec, argv: Vec<Bytes>, resp3: bool) -> Reply {
        self.calls += 1;
        match spec.kind {
            Kind::Read(run) => {
                let ctx = ReadCtx::fixed(self.reader, None, self.now_ms, resp3)
                    .seeded(nth_seed(self.seed, self.calls))
                    .with_cursors(&self.cursors);
                run(&ctx, &argv)
            }
            _ => Reply::err("ERR Write commands are not allowed from read-only scripts."),
        }
    }
}

/// Splits `[body, numkeys, keys…, args…]` (numkeys already checked).
fn keys_and_args(rest: &[Bytes]) -> (&[Bytes], &[Bytes]) {
    let n = parse_i64(&rest[1]).unwrap_or(0).max(0) as usize;
    let n = n.min(rest.len() - 2);
    (&rest[2..2 + n], &rest[2 + n..])
}

fn apply_eval(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let Some(seed) = argv.get(1).and_then(|s| <[u8; 8]>::try_from(&s[..]).ok()) else {
        return Reply::err("ERR EVAL entry without a seed");
    };
    let seed = u64::from_be_bytes(seed);
    let rest = &argv[2..];
    if rest.len() < 2 {
        return wrong_arity(&String::from_utf8_lossy(&argv[0]).to_ascii_lowercase());
    }
    let checked = if is_sha_form(&argv[0]) {
        let sha = String::from_utf8_lossy(&rest[0]).to_ascii_lowercase();
        match txn.script(sha.as_bytes()) {
            // Cached, so it compiled: only its flags are needed.
            Some(body) => {
                let flags = scripting::shebang(&body).map(|(flags, _)| flags);
                flags
                    .map(|flags| (sha, body, flags))
                    .map_err(|e| Reply::err(format!("ERR {e}")))
            }
            None => Err(Reply::err(ERR_NOSCRIPT)),
        }
    } else {
        let body = rest[0].to_vec();
        let sha = scripting::sha1_hex(&body);
        // Compiled scripts are cached, as Redis caches every script EVAL runs.
        scripting::check(&sha, &body).map(|flags| {
            if txn.script(sha.as_bytes()).is_none() {
                txn.put_script(sha.as_bytes(), &body);
            }
            (sha, body, flags)
        })
    };
    let (sha, body, flags) = match checked {
        Ok(c) => c,
        Err(e) => return e,
    };
    let (keys, args) = keys_and_args(rest);
    let mut host = WriteHost::new(txn, !flags.no_writes, seed);
    match scripting::run(&sha, &body, keys, args, seed, &mut host) {
        Outcome::Reply(r) | Outcome::CompileError(r) => r,
    }
}

/// Whether EVAL/EVALSHA `argv` runs a script flagged `no-writes` (so it is served as a read).
fn eval_reads(view: &crate::db::View, argv: &[Bytes]) -> bool {
    let body = if is_sha_form(&argv[0]) {
        match view.script(
            String::from_utf8_lossy(&argv[1])
                .to_ascii_lowercase()
                .as_bytes(),
        ) {
            Some(body) => body,
            None => return false,
        }
    } else {
        argv[1].to_vec()
    };
    matches!(scripting::shebang(&body), Ok((flags, _)) if flags.no_writes)
}

fn eval_ro(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    eval_read(ctx, argv).unwrap_or_else(|| Reply::err(ERR_NOSCRIPT))
}

/// EVAL_RO/EVALSHA_RO, and EVAL/EVALSHA of a `no-writes` script: one consistent view.
/// `None` when an EVAL's script is not `no-writes` there.
fn eval_read(ctx: &ReadCtx, argv: &[Bytes]) -> Option<Reply> {
    if let Err(e) = numkeys(argv) {
        return Some(e);
    }
    let ro_command = upper(&argv[0]).ends_with("_RO");
    let rest = &argv[1..];
    let seed: u64 = rand::rng().random();
    ctx.read(|r| {
        let (sha, body) = if is_sha_form(&argv[0]) {
            let sha = String::from_utf8_lossy(&rest[0]).to_ascii_lowercase();
            match r.script(sha.as_bytes()) {
                Some(body) => (sha, body),
                None => return Some(Reply::err(ERR_NOSCRIPT)),
            }
        } else {
            (scripting::sha1_hex(&rest[0]), rest[0].to_vec())
        };
        match scripting::shebang(&body) {
            Err(e) => return Some(Reply::err(format!("ERR {e}"))),
            Ok((flags, _)) if ro_command && flags.shebang && !flags.no_writes => {
                return Some(Reply::err(
                    "ERR Can not execute a script with write flag using *_ro command.",
                ))
            }
            Ok((flags, _)) if !ro_command && !flags.no_writes => return None,
            Ok(_) => {}
        }
        let (keys, args) = keys_and_args(rest);
        let mut host = ReadHost::new(r, ctx.now_ms, seed);
        host.user = ctx.user.clone();
        Some(
            match scripting::run(&sha, &body, keys, args, seed, &mut host) {
                Outcome::Reply(r) | Outcome::CompileError(r) => r,
            },
        )
    })
}

/// For EVAL_RO of a script the cache does not hold: the `SCRIPT LOAD` that adds it.
pub fn load_if_missing(db: &crate::db::Db, argv: &[Bytes]) -> Option<Vec<Bytes>> {
    numkeys(argv).ok()?;
    let sha = scripting::sha1_hex(&argv[1]);
    if db.view().script(sha.as_bytes()).is_some() {
        return None;
    }
    Some(vec![
        Bytes::from_static(b"SCRIPT"),
        Bytes::from_static(b"LOAD"),
        argv[1].clone(),
    ])
}

const SCRIPT_HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];

/// SCRIPT's subcommands and their arities (negative: at least).
const SCRIPT_SUBCOMMANDS: &[(&str, i32)] = &[
    ("HELP", 2),
    ("KILL", 2),
    ("DEBUG", 3),
    ("LOAD", 3),
    ("EXISTS", -3),
    ("FLUSH", -2),
];

/// SCRIPT: HELP and KILL are answered at once; LOAD, EXISTS and FLUSH go through the log
/// (the cache is replicated state; EXISTS reads it linearizably).
fn prepare_script(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    let sub = upper(&argv[1]);
    let arity = |ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(wrong_arity(&format!("script|{}", sub.to_ascii_lowercase())))
        }
    };
    match sub.as_str() {
        "HELP" => {
            arity(argv.len() == 2)?;
            Err(help_reply(SCRIPT_HELP))
        }
        // A script runs inside its entry's apply and cannot be interrupted there.
        "KILL" => {
            arity(argv.len() == 2)?;
            Err(Reply::err("NOTBUSY No scripts in execution right now."))
        }
        "DEBUG" => {
            arity(argv.len() == 3)?;
            Err(Reply::err("ERR SCRIPT DEBUG is not supported by rockraft"))
        }
        "LOAD" => {
            arity(argv.len() == 3)?;
            // A script that does not compile is answered here, not proposed.
            scripting::check(&scripting::sha1_hex(&argv[2]), &argv[2])?;
            Ok(None)
        }
        "EXISTS" => {
            arity(argv.len() >= 3)?;
            Ok(None)
        }
        "FLUSH" => match (argv.len(), argv.get(2).map(|a| upper(a))) {
            (2, _) => Ok(None),
            (3, Some(m)) if m == "ASYNC" || m == "SYNC" => Ok(None),
            _ => Err(Reply::err(
                "ERR SCRIPT FLUSH only support SYNC|ASYNC option",
            )),
        },
        _ => Err(unknown_subcommand("SCRIPT", &argv[1])),
    }
}

fn apply_script(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    match upper(&argv[1]).as_str() {
        "LOAD" => {
            let body = &argv[2];
            let sha = scripting::sha1_hex(body);
            if let Err(e) = scripting::check(&sha, body) {
                return e;
            }
            if txn.script(sha.as_bytes()).is_none() {
                txn.put_script(sha.as_bytes(), body);
            }
            Reply::bulk(sha)
        }
        "EXISTS" => Reply::Array(
            argv[2..]
                .iter()
                .map(|sha| {
                    let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
                    Reply::Int(i64::from(txn.script(sha.as_bytes()).is_some()))
                })
                .collect(),
        ),
        "FLUSH" => {
            txn.flush_scripts();
            Reply::ok()
        }
        _ => unknown_subcommand("SCRIPT", &argv[1]),
    }
}
