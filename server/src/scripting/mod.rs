//! Lua scripting: Redis 7.0's environment on Lua 5.1 (`mlua`, built from source).
//!
//! A script that may write runs at apply, on every node, inside the entry's write batch (see
//! `command/scripting.rs`), so everything it can observe must be the same everywhere:
//! - the commands it calls read and write through the apply round ([`Host`]); their clock is
//!   the entry's, and their random choices (SPOP, SRANDMEMBER…) and `math.random` come from
//!   a seed the proposer put in the entry;
//! - the globals are protected as in Redis (reading a missing one, or writing any, is an
//!   error), so no script leaves state behind for the next one; `collectgarbage('count')` and
//!   `gcinfo()` answer 0 (a node's heap is its own history);
//! - a runaway script is stopped by an instruction budget, not a clock: every node stops it
//!   at the same instruction. Its writes before that point are kept, as a Redis script's
//!   writes before a runtime error are.
//!
//! Each thread keeps one Lua state and the scripts it compiled (keyed by SHA1); the bodies
//! themselves are replicated state (the `script` column family).

pub mod dump;
mod libs;
mod rand48;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use rockraft_resp::Reply;

use crate::command::{self, flags, CommandSpec, Kind};

/// Lua instructions a script may run (every node stops a longer one at the same point).
pub const INSTRUCTION_BUDGET: u64 = 200_000_000;
/// How often the budget is checked, in instructions.
const HOOK_EVERY: u32 = 10_000;
/// Memory one thread's Lua state may hold between scripts (a guard for the process).
const MEMORY_LIMIT: usize = 1 << 30;
/// Memory one script may allocate. The collector does not run during a script, so what it
/// allocates is the same on every node, and so is where it runs out.
pub const SCRIPT_MEMORY: usize = 512 << 20;
/// A script that allocated this much since the last collection gets a full collection at
/// its next budget check: a point that depends only on what the script did.
const GC_EVERY: usize = 64 << 20;
/// Compiled scripts a thread keeps before it starts over.
const COMPILED_MAX: usize = 4096;

/// What a script's `redis.call` runs against: the apply round of a write, or one consistent
/// view of a read.
pub trait Host {
    /// Whether the script may write (EVAL, not EVAL_RO or a `no-writes` script).
    fn writable(&self) -> bool;
    /// Runs a command already checked (known, right arity, allowed here); `resp3` is the
    /// protocol the script asked for with `redis.setresp`.
    fn run(&mut self, spec: &'static CommandSpec, argv: Vec<Bytes>, resp3: bool) -> Reply;
    /// The clock the script sees (the entry's, for a write).
    fn now_ms(&self) -> u64;
    /// The ACL user the script runs as, when it is restricted (its calls are checked).
    fn user(&self) -> Option<&crate::acl::User> {
        None
    }
}

/// Why the script's user may not make this call (Redis's `scriptVerifyACL`), if it may not.
fn acl_refusal(host: &dyn Host, spec: &CommandSpec, argv: &[Bytes]) -> Option<&'static str> {
    let denied = host.user()?.check(spec, argv).err()?;
    Some(match denied {
        crate::acl::Denied::Command => {
            "The user executing the script can't run this command or subcommand"
        }
        crate::acl::Denied::Key(_) => "The user executing the script can't access at least one of the keys mentioned in the command arguments",
        crate::acl::Denied::Channel(_) => {
            "The user executing the script can't publish to the channel mentioned in the command"
        }
    })
}

/// Flags of a `#!lua flags=…` shebang.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScriptFlags {
    /// The script has a shebang (else it runs in "compatibility mode").
    pub shebang: bool,
    pub no_writes: bool,
}

/// Splits a script into its shebang flags and the code Lua compiles (the shebang line is
/// dropped, its newline kept, so line numbers stay the user's).
pub fn shebang(body: &[u8]) -> Result<(ScriptFlags, &[u8]), String> {
    if !body.starts_with(b"#!") {
        return Ok((ScriptFlags::default(), body));
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("Invalid script shebang".into());
    };
    let line = String::from_utf8_lossy(&body[..end]);
    let mut parts = line.split_ascii_whitespace();
    let Some(engine) = parts.next() else {
        return Err("Invalid engine in script shebang".into());
    };
    if engine != "#!lua" {
        return Err(format!("Unexpected engine in script shebang: {engine}"));
    }
    let mut flags = ScriptFlags {
        shebang: true,
        no_writes: false,
    };
    for part in parts {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(format!("Unknown lua shebang option: {part}"));
        };
        for flag in list.split(',') {
            match flag {
                "no-writes" => flags.no_writes = true,
                "allow-oom" | "allow-stale" | "no-cluster" | "allow-cross-slot-keys" => {}
                other => return Err(format!("Unexpected flag in script shebang: {other}")),
            }
        }
    }
    Ok((flags, &body[end..]))
}

/// SHA1 of a script body, as 40 lowercase hex digits.
pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

/// State of the script running on this thread.
struct Run {
    resp3: bool,
    used: u64,
    exceeded: bool,
    rand: rand48::Rand48,
    /// The value a Rust function of the API raised (Lua sees an opaque error until the
    /// prelude's `fix` swaps it for this; Redis's C functions raise tables and strings).
    pending: Option<Value>,
    /// Where the Lua code that called it was then (source, line): a tail call
    /// (`return redis.call(…)`) leaves no frame of it for the error handler to find.
    pending_at: Option<(String, usize)>,
    /// cjson's settings (a script may change them; the next one starts from the defaults).
    cjson: libs::CjsonConfig,
    /// The heap size at which the running script's next collection happens.
    gc_at: usize,
    /// The instruction budget ([`INSTRUCTION_BUDGET`]; smaller in tests).
    budget: u64,
    /// The functions registered so far while a library loads (`None` otherwise).
    registry: Option<Vec<Registered>>,
    /// The running function was registered `no-writes`.
    no_writes: bool,
}

/// The flags a script's shebang or a function's registration may give, in Redis's order
/// (`FUNCTION LIST` shows them so).
pub const FLAG_NAMES: [&str; 5] = [
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];
/// `FLAG_NAMES[0]` as a bit.
pub const FLAG_NO_WRITES: u8 = 1;

/// A function of a library, as its registration described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionInfo {
    pub name: String,
    pub description: Option<Vec<u8>>,
    /// Bits of [`FLAG_NAMES`].
    pub flags: u8,
}

/// A function registered while its library loads.
struct Registered {
    info: FunctionInfo,
    callback: Function,
}

/// Redis's rule for library and function names.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

const ERR_NAME: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// The library name in the `#!lua name=…` first line of `FUNCTION LOAD`'s code (Redis's
/// `functionExtractLibMetaData` and its checks), or the error text (without `ERR`).
pub fn library_name(code: &[u8]) -> Result<String, String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let Some(end) = code.iter().position(|&b| b == b'\n') else {
        return Err("Invalid library metadata".into());
    };
    let line = String::from_utf8_lossy(&code[..end]);
    let parts: Vec<&str> = line.split_ascii_whitespace().collect();
    if parts.is_empty() {
        return Err("Invalid library metadata".into());
    }
    let engine = &parts[0][2..];
    let mut name = None;
    for part in &parts[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case("name=") {
            if name.is_some() {
                return Err(
                    "Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(part[5..].to_string());
            continue;
        }
        return Err(format!("Invalid metadata value given: {part}"));
    }
    let Some(name) = name else {
        return Err("Library name was not given".into());
    };
    if !valid_name(name.as_bytes()) {
        return Err(ERR_NAME.into());
    }
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("Engine '{engine}' not found"));
    }
    Ok(name)
}

/// Raises `value` as the Lua error of the running Rust function (called from `lua`).
fn raise_at(lua: &Lua, state: &Rc<RefCell<Run>>, value: Value) -> mlua::Error {
    let at = lua
        .inspect_stack(1, |d| {
            let line = d.current_line()?;
            let src = d.source().source?.into_owned();
            Some((src, line))
        })
        .flatten();
    let mut s = state.borrow_mut();
    s.pending = Some(value);
    s.pending_at = at;
    mlua::Error::runtime("rockraft: pending script error")
}

/// `luaL_error`: the message, after the position of the Lua code that called the function.
fn raise_positioned(lua: &Lua, state: &Rc<RefCell<Run>>, msg: &str) -> mlua::Error {
    let at = lua
        .inspect_stack(1, |d| {
            let line = d.current_line()?;
            let src = d.source().short_src?.into_owned();
            Some(format!("{src}:{line}: "))
        })
        .flatten()
        .unwrap_or_default();
    match lua.create_string(format!("{at}{msg}")) {
        Ok(s) => raise_at(lua, state, Value::String(s)),
        Err(e) => e,
    }
}

fn raise_table(lua: &Lua, state: &Rc<RefCell<Run>>, msg: &str) -> mlua::Error {
    match error_table(lua, msg, false) {
        Ok(t) => raise_at(lua, state, Value::Table(t)),
        Err(e) => e,
    }
}

struct Vm {
    lua: Lua,
    /// The real globals (scripts see them through a read-only proxy).
    globals: Table,
    /// The protected `_G` every script runs in.
    env: Table,
    /// `xpcall(f, __redis__err__handler)`.
    run: Function,
    /// `load_library(chunk)`: runs a library's code with the load API as its globals.
    load_library: Function,
    /// `run_function(callback, keys, args)` under the error handler.
    run_function: Function,
    state: Rc<RefCell<Run>>,
    /// Compiled scripts (by SHA1) and libraries (by `lib:` + the SHA1 of their code).
    compiled: HashMap<String, Function>,
    /// What each library this thread loaded registered (by the SHA1 of its code).
    libraries: HashMap<String, Rc<Vec<FunctionInfo>>>,
}

thread_local! {
    static VM: RefCell<Option<Vm>> = const { RefCell::new(None) };
    /// The host of the script running on this thread (set only while it runs).
    static HOST: Cell<Option<*mut (dyn Host + 'static)>> = const { Cell::new(None) };
}

/// What running a script gave.
pub enum Outcome {
    Reply(Reply),
    /// The body does not compile (`ERR Error compiling script …`).
    CompileError(Reply),
}

/// Compiles `body` (whose SHA1 is `sha`), checking its shebang, without running it: what
/// SCRIPT LOAD and EVAL check. Its flags.
pub fn check(sha: &str, body: &[u8]) -> Result<ScriptFlags, Reply> {
    let (flags, _) = shebang(body).map_err(|e| Reply::err(format!("ERR {e}")))?;
    with_vm(|vm| vm.compile(sha, body).map(|_| ()))?;
    Ok(flags)
}

/// Runs the script `body` (whose SHA1 is `sha`) with `keys` and `args` against `host`;
/// `seed` seeds `math.random`.
pub fn run(
    sha: &str,
    body: &[u8],
    keys: &[Bytes],
    args: &[Bytes],
    seed: u64,
    host: &mut dyn Host,
) -> Outcome {
    with_vm(|vm| {
        let f = match vm.compile(sha, body) {
            Ok(f) => f,
            Err(e) => return Outcome::CompileError(e),
        };
        Outcome::Reply(vm.call(sha, f, keys, args, seed, host))
    })
}

/// Loads the library `code` (`FUNCTION LOAD`'s argument, metadata checked) without running
/// any of its functions: what it registers, or Redis's error. Deterministic: every node
/// loading the same code gets the same answer.
pub fn load_library(code: &[u8]) -> Result<Rc<Vec<FunctionInfo>>, Reply> {
    with_vm(|vm| vm.library(code))
}

/// Runs function `name` of library `code` with `keys` and `args` against `host` (`seed`
/// seeds `math.random`); `read_only` for FCALL_RO, which refuses a function without the
/// `no-writes` flag.
pub fn run_function(
    code: &[u8],
    name: &str,
    read_only: bool,
    keys: &[Bytes],
    args: &[Bytes],
    seed: u64,
    host: &mut dyn Host,
) -> Reply {
    with_vm(|vm| vm.call_function(code, name, read_only, keys, args, seed, host))
}

/// Sets this thread's instruction budget (tests: a runaway script in milliseconds).
#[cfg(test)]
fn set_budget(n: u64) {
    with_vm(|vm| vm.state.borrow_mut().budget = n);
}

fn with_vm<T>(f: impl FnOnce(&mut Vm) -> T) -> T {
    VM.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(Vm::new().expect("the Lua environment starts"));
        }
        f(slot.as_mut().expect("just made"))
    })
}

/// Clears the host when the script ends, however it ends.
struct HostGuard;

impl Drop for HostGuard {
    fn drop(&mut self) {
        HOST.with(|h| h.set(None));
    }
}

/// Runs `f` with `host` as the host of this thread's script.
fn with_host_set<T>(host: &mut dyn Host, f: impl FnOnce() -> T) -> T {
    // SAFETY (see `with_host`): cleared by the guard before `host`'s borrow ends.
    let ptr: *mut (dyn Host + '_) = host;
    let ptr: *mut (dyn Host + 'static) = unsafe { std::mem::transmute(ptr) };
    HOST.with(|h| h.set(Some(ptr)));
    let _guard = HostGuard;
    f()
}

fn with_host<T>(f: impl FnOnce(&mut dyn Host) -> T) -> Option<T> {
    let ptr = HOST.with(|h| h.get())?;
    // SAFETY: the pointer is set by `Vm::call` from a `&mut dyn Host` that outlives the
    // script's run, and cleared (HostGuard) before that borrow ends; scripts do not nest.
    Some(f(unsafe { &mut *ptr }))
}

/// Redis's `luaPushErrorBuff`: `-CODE msg` keeps its code, anything else gets `ERR`.
fn error_text(s: &str) -> String {
    let (code, msg) = match s.strip_prefix('-') {
        Some(rest) => match rest.split_once(' ') {
            Some((code, msg)) => (code.to_string(), msg.to_string()),
            None => ("ERR".to_string(), rest.to_string()),
        },
        None => ("ERR".to_string(), s.to_string()),
    };
    format!("{code} {}", msg.trim_matches(['\r', '\n']))
}

fn error_table(lua: &Lua, s: &str, from_command: bool) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("err", error_text(s))?;
    if from_command {
        t.raw_set("ignore_error_stats_update", true)?;
    }
    Ok(t)
}

/// A command reply as a Lua value (Redis's `redisProtocolToLuaType`), under RESP2 or RESP3.
fn reply_to_lua(lua: &Lua, reply: Reply, resp3: bool) -> mlua::Result<Value> {
    let typed = |kind: &str, v: Value| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set(kind, v)?;
        Ok(Value::Table(t))
    };
    Ok(match reply {
        Reply::Simple(s) => typed("ok", Value::String(lua.create_string(s)?))?,
        Reply::Error(e) => Value::Table(error_table(lua, &format!("-{e}"), true)?),
        Reply::Int(i) => Value::Number(i as f64),
        Reply::Bulk(b) => Value::String(lua.create_string(&b)?),
        Reply::Nil | Reply::NilArray => {
            if resp3 {
                Value::Nil
            } else {
                Value::Boolean(false)
            }
        }
        Reply::Array(items) => array(lua, items, resp3)?,
        Reply::Set(items) if resp3 => {
            let set = lua.create_table()?;
            for item in items {
                set.raw_set(reply_to_lua(lua, item, resp3)?, true)?;
            }
            typed("set", Value::Table(set))?
        }
        Reply::Set(items) => array(lua, items, resp3)?,
        Reply::Map(pairs) | Reply::Pairs(pairs) if resp3 => {
            let map = lua.create_table()?;
            for (k, v) in pairs {
                map.raw_set(reply_to_lua(lua, k, resp3)?, reply_to_lua(lua, v, resp3)?)?;
            }
            typed("map", Value::Table(map))?
        }
        Reply::Map(pairs) => array(
            lua,
            pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            resp3,
        )?,
        Reply::Pairs(pairs) => array(
            lua,
            pairs
                .into_iter()
                .map(|(k, v)| Reply::Array(vec![k, v]))
                .collect(),
            resp3,
        )?,
        Reply::Double(d) | Reply::HumanDouble(d) if resp3 => typed("double", Value::Number(d))?,
        Reply::Double(d) => {
            Value::String(lua.create_string(rockraft_resp::reply::format_double_g17(d))?)
        }
        Reply::HumanDouble(d) => {
            Value::String(lua.create_string(rockraft_resp::reply::format_human(d))?)
        }
        Reply::Bool(b) if resp3 => Value::Boolean(b),
        Reply::Bool(b) => Value::Number(if b { 1.0 } else { 0.0 }),
        Reply::Verbatim(s) if resp3 => {
            let v = lua.create_table()?;
            v.raw_set("format", "txt")?;
            v.raw_set("string", lua.create_string(s)?)?;
            typed("verbatim_string", Value::Table(v))?
        }
        Reply::Verbatim(s) => Value::String(lua.create_string(s)?),
        Reply::Push(items) | Reply::Many(items) => array(lua, items, resp3)?,
    })
}

fn array(lua: &Lua, items: Vec<Reply>, resp3: bool) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.into_iter().enumerate() {
        t.raw_set(i + 1, reply_to_lua(lua, item, resp3)?)?;
    }
    Ok(Value::Table(t))
}

/// A script's result as a reply (Redis's `luaReplyToRedisReply`); `resp3` is the protocol
/// the script chose, which decides what a boolean becomes.
fn lua_to_reply(v: &Value, resp3: bool, depth: usize) -> Reply {
    if depth > 1000 {
        return Reply::err("ERR reached lua stack limit");
    }
    let string = |v: &Value| match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        _ => None,
    };
    match v {
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) if resp3 => Reply::Bool(*b),
        Value::Boolean(true) => Reply::Int(1),
        Value::Boolean(false) => Reply::Nil,
        Value::Number(n) => Reply::Int(crate::types::geohash::c_to_i64(*n)),
        Value::Integer(i) => Reply::Int(*i),
        Value::Table(t) => {
            let field = |name: &str| t.raw_get::<Value>(name).unwrap_or(Value::Nil);
            if let Some(e) = string(&field("err")) {
                let e = String::from_utf8_lossy(&e).replace(['\r', '\n'], " ");
                return Reply::Error(e);
            }
            if let Some(ok) = string(&field("ok")) {
                return Reply::Simple(String::from_utf8_lossy(&ok).replace(['\r', '\n'], " "));
            }
            if let Value::Number(d) = field("double") {
                return Reply::Double(d);
            }
            if let Some(n) = string(&field("big_number")) {
                return Reply::Bulk(
                    String::from_utf8_lossy(&n)
                        .replace(['\r', '\n'], " ")
                        .into(),
                );
            }
            if let Value::Table(vt) = field("verbatim_string") {
                if let (Ok(Value::String(_)), Ok(Value::String(s))) =
                    (vt.raw_get::<Value>("format"), vt.raw_get::<Value>("string"))
                {
                    return Reply::Verbatim(String::from_utf8_lossy(&s.as_bytes()).into_owned());
                }
            }
            if let Value::Table(m) = field("map") {
                let pairs = m
                    .pairs::<Value, Value>()
                    .filter_map(Result::ok)
                    .map(|(k, v)| {
                        (
                            lua_to_reply(&k, resp3, depth + 1),
                            lua_to_reply(&v, resp3, depth + 1),
                        )
                    })
                    .collect();
                return Reply::Map(pairs);
            }
            if let Value::Table(s) = field("set") {
                let items = s
                    .pairs::<Value, Value>()
                    .filter_map(Result::ok)
                    .map(|(k, _)| lua_to_reply(&k, resp3, depth + 1))
                    .collect();
                return Reply::Set(items);
            }
            let mut items = Vec::new();
            for i in 1.. {
                match t.raw_get::<Value>(i) {
                    Ok(Value::Nil) | Err(_) => break,
                    Ok(v) => items.push(lua_to_reply(&v, resp3, depth + 1)),
                }
            }
            Reply::Array(items)
        }
        _ => Reply::Nil,
    }
}

/// A string argument as `lua_isstring` sees one (strings and numbers).
fn lua_text(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(n) => Some(n.to_string().into_bytes()),
        Value::Number(n) => Some(rockraft_resp::reply::format_g(*n, 14).into_bytes()),
        _ => None,
    }
}

/// The arguments of `redis.register_function` (Redis's `luaRegisterFunctionReadArgs`):
/// `(name, callback)` or one table of named arguments.
fn register_args(args: &MultiValue) -> Result<Registered, String> {
    let text = |v: &Value| lua_text(v).map(|b| String::from_utf8_lossy(&b).into_owned());
    match args.len() {
        2 => {
            let name = text(&args[0])
                .ok_or("first argument to redis.register_function must be a string")?;
            let Value::Function(callback) = &args[1] else {
                return Err("second argument to redis.register_function must be a function".into());
            };
            Ok(Registered {
                info: FunctionInfo {
                    name,
                    description: None,
                    flags: 0,
                },
                callback: callback.clone(),
            })
        }
        1 => {
            let Value::Table(t) = &args[0] else {
                return Err("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).".into());
            };
            let (mut name, mut description, mut callback, mut flags) = (None, None, None, 0u8);
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, v) = pair.map_err(|e| e.to_string())?;
                let key = text(&k)
                    .ok_or("named argument key given to redis.register_function is not a string")?;
                match key.to_ascii_lowercase().as_str() {
                    "function_name" => name = Some(text(&v).ok_or(
                        "function_name argument given to redis.register_function must be a string",
                    )?),
                    "description" => description = Some(lua_text(&v).ok_or(
                        "description argument given to redis.register_function must be a string",
                    )?),
                    "callback" => match v {
                        Value::Function(f) => callback = Some(f),
                        _ => return Err(
                            "callback argument given to redis.register_function must be a function"
                                .into(),
                        ),
                    },
                    "flags" => {
                        let Value::Table(list) = v else {
                            return Err("flags argument to redis.register_function must be a table representing function flags".into());
                        };
                        flags = 0;
                        for i in 1.. {
                            let flag = list.raw_get::<Value>(i).unwrap_or(Value::Nil);
                            if flag == Value::Nil {
                                break;
                            }
                            let flag = text(&flag).ok_or("unknown flag given")?;
                            let bit = FLAG_NAMES
                                .iter()
                                .position(|f| f.eq_ignore_ascii_case(&flag))
                                .ok_or("unknown flag given")?;
                            flags |= 1 << bit;
                        }
                    }
                    _ => return Err("unknown argument given to redis.register_function".into()),
                }
            }
            let name = name.ok_or("redis.register_function must get a function name argument")?;
            let callback =
                callback.ok_or("redis.register_function must get a callback argument")?;
            Ok(Registered {
                info: FunctionInfo {
                    name,
                    description,
                    flags,
                },
                callback,
            })
        }
        _ => Err("wrong number of arguments to redis.register_function".into()),
    }
}

/// Commands a script may call although the node answers them itself.
fn local_in_script(name: &str, argv: &[Bytes], now_ms: u64) -> Option<Reply> {
    Some(match name {
        "ping" => match argv.len() {
            1 => Reply::Simple("PONG".into()),
            2 => Reply::Bulk(argv[1].clone()),
            _ => command::wrong_arity("ping"),
        },
        "echo" => Reply::Bulk(argv[1].clone()),
        "time" => Reply::Array(vec![
            Reply::bulk((now_ms / 1000).to_string()),
            Reply::bulk(((now_ms % 1000) * 1000).to_string()),
        ]),
        "select" if &argv[1][..] == b"0" => Reply::ok(),
        "select" => Reply::err("ERR SELECT is not allowed in cluster mode"),
        _ => return None,
    })
}

/// `redis.call`/`redis.pcall` (Redis's `luaRedisGenericCommand` and `scriptCall`): the
/// command's reply as a Lua value, and whether it is an error.
fn call(lua: &Lua, args: MultiValue, state: &Rc<RefCell<Run>>) -> mlua::Result<(Value, bool)> {
    let fail = |msg: &str, from_command: bool| -> mlua::Result<(Value, bool)> {
        Ok((Value::Table(error_table(lua, msg, from_command)?), true))
    };
    if args.is_empty() {
        return fail(
            "Please specify at least one argument for this redis lib call",
            false,
        );
    }
    let mut argv = Vec::with_capacity(args.len());
    for a in args.iter() {
        match a {
            Value::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Number(n) => argv.push(Bytes::from(rockraft_resp::reply::format_double_g17(*n))),
            Value::Integer(i) => argv.push(Bytes::from(i.to_string())),
            _ => {
                return fail(
                    "Lua redis lib command arguments must be strings or integers",
                    false,
                )
            }
        }
    }
    let Some(spec) = command::lookup(&argv[0]) else {
        return fail("Unknown Redis command called from script", true);
    };
    if !spec.arity_ok(argv.len()) {
        return fail(
            "Wrong number of args calling Redis command from script",
            true,
        );
    }
    // A container's unknown subcommand is an unknown command to Redis's lookup.
    if let Some(Reply::Error(e)) = command::subcommand_error(spec, &argv) {
        return if e.starts_with("ERR unknown subcommand") {
            fail("Unknown Redis command called from script", true)
        } else {
            fail(
                "Wrong number of args calling Redis command from script",
                true,
            )
        };
    }
    let resp3 = state.borrow().resp3;
    let local = matches!(spec.kind, Kind::Local(_));
    // A blocking command runs once, as it would in MULTI (BLMPOP answers nil at once).
    let allowed = spec.flags & flags::NOSCRIPT == 0
        && match spec.kind {
            Kind::Read(_) | Kind::Write { .. } => true,
            Kind::Local(_) => matches!(spec.name, "ping" | "echo" | "time" | "select"),
            Kind::Async(_) | Kind::Transaction => false,
        };
    if !allowed {
        return fail("This Redis command is not allowed from script", true);
    }
    if matches!(spec.name, "xread" | "xreadgroup") && command::stream::has_block(&argv) {
        let reply = Reply::err(format!(
            "ERR {} command is not allowed with BLOCK option from scripts",
            String::from_utf8_lossy(&argv[0])
        ));
        return Ok((reply_to_lua(lua, reply, resp3)?, true));
    }
    let no_writes = state.borrow().no_writes;
    let reply = with_host(|host| {
        if let Some(refused) = acl_refusal(host, spec, &argv) {
            return Err(refused);
        }
        if spec.is_write() && (no_writes || !host.writable()) {
            return Err("Write commands are not allowed from read-only scripts.");
        }
        Ok(if local {
            local_in_script(spec.name, &argv, host.now_ms())
                .unwrap_or_else(|| Reply::err("ERR This Redis command is not allowed from script"))
        } else {
            host.run(spec, argv, resp3)
        })
    });
    let reply = match reply {
        None => {
            return fail(
                "redis.call/pcall can only be called inside a script invocation",
                false,
            )
        }
        Some(Err(msg)) => return fail(msg, true),
        Some(Ok(reply)) => reply,
    };
    let failed = reply.is_error();
    Ok((reply_to_lua(lua, reply, resp3)?, failed))
}

/// The Lua side of the environment, run once per state with the Rust primitives (`rr`) and
/// the real globals. Everything a script reaches is defined here or in the standard libraries.
const PRELUDE: &str = r#"
local rr, G = ...
local error, type, tostring, select, rawget, unpack = error, type, tostring, select, rawget, unpack
local real_pcall, real_xpcall, real_rawset, real_setmetatable = pcall, xpcall, rawset, setmetatable
local real_loadstring, real_load, real_getfenv, real_setfenv = loadstring, load, getfenv, setfenv
local real_getmetatable, real_ipairs, real_pairs = getmetatable, ipairs, pairs
local setfenv_ = setfenv

local protected = real_setmetatable({}, {__mode = 'k'})
local function readonly() error('Attempt to modify a readonly table', 2) end
local function proxy(t)
  local p = real_setmetatable({}, {__index = t, __newindex = readonly, __metatable = false})
  protected[p] = true
  protected[t] = true
  return p
end

local function pack(...) return {n = select('#', ...), ...} end
local function budget()
  if rr.exceeded() then error(rr.budget_message(), 0) end
end
-- An error raised by one of the API's Rust functions, as the value it raised.
local take_pending = rr.take_pending
local function fix(e)
  if type(e) == 'userdata' then
    local p = take_pending()
    if p ~= nil then return p end
  end
  return e
end

-- Redis's pcall: an error table from redis.call comes back as its message.
function pcall(f, ...)
  local r = pack(real_pcall(f, ...))
  budget()
  if not r[1] then
    r[2] = fix(r[2])
    if type(r[2]) == 'table' then
      local e = rawget(r[2], 'err')
      if type(e) == 'string' or type(e) == 'number' then r[2] = e end
    end
  end
  return unpack(r, 1, r.n)
end
function xpcall(f, h)
  local r = pack(real_xpcall(f, function(e) return h(fix(e)) end))
  budget()
  return unpack(r, 1, r.n)
end
function rawset(t, k, v)
  if protected[t] then error('Attempt to modify a readonly table', 0) end
  return real_rawset(t, k, v)
end
function setmetatable(t, mt)
  if protected[t] then error('Attempt to modify a readonly table', 0) end
  return real_setmetatable(t, mt)
end
local function own_env(f) if type(f) == 'function' then setfenv_(f, G._G) end return f end
function loadstring(s, name)
  if type(s) == 'string' and s:sub(1, 1) == '\27' then return nil, 'bytecode loading is disabled' end
  local f, e = real_loadstring(s, name)
  return own_env(f), e
end
function load(f, name)
  local first = true
  local f2, e = real_load(function()
    local c = f()
    if first and type(c) == 'string' and c:sub(1, 1) == '\27' then error('bytecode loading is disabled', 0) end
    first = false
    return c
  end, name)
  return own_env(f2), e
end
function getfenv(f)
  if f == nil then f = 1 end
  if type(f) == 'number' and f > 0 then f = f + 1 end
  local e = real_getfenv(f)
  if e == G then return G._G end
  return e
end
function setfenv(f, t)
  -- A script may change its own function's environment (level 1, or a function it made),
  -- not the thread's, ours, or a caller's it does not own.
  if f == 0 or protected[f] or (type(f) == 'number' and f > 1) then
    error('Attempt to modify a readonly table', 2)
  end
  if f == 1 then f = 2 end
  return real_setfenv(f, t)
end
function collectgarbage(opt, arg)
  return 0
end
function gcinfo() return 0 end

local errtable = rr.error_table
local redis = {}
redis.call = rr.call
redis.pcall = rr.pcall
redis.sha1hex = rr.sha1hex
redis.error_reply = function(...)
  local e = ...
  if select('#', ...) ~= 1 or type(e) ~= 'string' then return errtable('wrong number or type of arguments') end
  if e:sub(1, 1) ~= '-' then e = '-' .. e end
  return errtable(e)
end
redis.status_reply = function(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then return errtable('wrong number or type of arguments') end
  return {ok = s}
end
redis.log = rr.log
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.setresp = rr.setresp
redis.set_repl = rr.set_repl
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.replicate_commands = function() return true end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.acl_check_cmd = rr.acl_check_cmd
redis.REDIS_VERSION = rr.version
redis.REDIS_VERSION_NUM = rr.version_num
math.random, math.randomseed = rr.random, rr.randomseed

local dbg = debug
function __redis__err__handler(err)
  local source, line
  if type(err) == 'userdata' then
    local p, s, l = take_pending()
    if p ~= nil then err, source, line = p, s, l end
  end
  if source == nil then
    local level = 2
    local i = dbg.getinfo(level, 'nSl')
    while i and (i.what == 'C' or i.source == '=rockraft') do
      level = level + 1
      i = dbg.getinfo(level, 'nSl')
    end
    if i then source, line = i.source, i.currentline end
  end
  if type(err) ~= 'table' then err = {err = 'ERR ' .. tostring(err)} end
  if source ~= nil then
    err['source'] = source
    err['line'] = line
  end
  return err
end
local handler = __redis__err__handler

G.redis = redis
-- newproxy's __gc would run a script's code whenever the collector gets to it.
G.debug, G.print, G.dofile, G.loadfile, G.module, G.require, G.newproxy = nil, nil, nil, nil, nil, nil, nil
for _, name in real_ipairs({'string', 'table', 'math', 'coroutine', 'redis', 'cjson', 'bit', 'struct', 'cmsgpack'}) do
  local lib = G[name]
  if lib ~= nil then
    for _, f in real_pairs(lib) do
      if type(f) == 'function' then protected[f] = true end
    end
    G[name] = proxy(lib)
  end
end
for _, f in real_pairs(G) do
  if type(f) == 'function' then protected[f] = true end
end
-- Strings' methods go through the read-only `string`, and their metatable is read-only.
local string_mt = real_getmetatable('')
string_mt.__index = G.string
string_mt.__metatable = proxy(string_mt)
local env = proxy(G)
G._G = env
real_setmetatable(G, {__index = function(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end})
protected[G] = true

-- A script runs in the protected globals, whatever it did to its environment last time.
local run = function(f) real_setfenv(f, env) return real_xpcall(f, handler) end

-- Function libraries (Redis's function_lua.c). Every library's code runs in `lib_env`:
-- while it loads, its only global is the load API's `redis`; when its functions run, the
-- scripts' globals, without EVAL's KEYS and ARGV (a function gets them as arguments).
local function missing(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end
local load_redis = {
  register_function = rr.register_function, log = rr.log,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REDIS_VERSION = rr.version, REDIS_VERSION_NUM = rr.version_num,
}
real_setmetatable(load_redis, {__index = missing})
local load_api = {redis = proxy(load_redis)}
local loading = false
local lib_env = real_setmetatable({}, {
  __index = function(_, k)
    local v
    if loading then
      v = rawget(load_api, k)
    elseif k ~= 'KEYS' and k ~= 'ARGV' then
      v = rawget(G, k)
    end
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = readonly,
  __metatable = false,
})
protected[lib_env] = true
local load_library = function(chunk)
  real_setfenv(chunk, lib_env)
  loading = true
  local ok, e = real_pcall(chunk)
  loading = false
  if not ok then e = fix(e) end
  return ok, e
end
local run_function = function(callback, keys, args)
  return real_xpcall(function() return callback(keys, args) end, handler)
end
return env, run, load_library, run_function
"#;

impl Vm {
    fn new() -> mlua::Result<Vm> {
        // SAFETY: `debug` is loaded for the error handler only; the prelude keeps a private
        // reference and removes the global before any script runs.
        let lua = unsafe {
            Lua::unsafe_new_with(
                StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
                LuaOptions::default(),
            )
        };
        lua.set_memory_limit(MEMORY_LIMIT)?;
        let state = Rc::new(RefCell::new(Run {
            resp3: false,
            used: 0,
            exceeded: false,
            rand: rand48::Rand48::new(0),
            pending: None,
            pending_at: None,
            cjson: libs::CjsonConfig::default(),
            gc_at: 0,
            budget: INSTRUCTION_BUDGET,
            registry: None,
            no_writes: false,
        }));
        let rr = lua.create_table()?;
        let api = |name: &str, f: Function| rr.raw_set(name, f);
        {
            let st = state.clone();
            api(
                "call",
                lua.create_function(move |lua, args: MultiValue| {
                    let (v, failed) = call(lua, args, &st)?;
                    if failed {
                        return Err(raise_at(lua, &st, v));
                    }
                    Ok(v)
                })?,
            )?;
        }
        {
            let st = state.clone();
            api(
                "pcall",
                lua.create_function(move |lua, args: MultiValue| Ok(call(lua, args, &st)?.0))?,
            )?;
        }
        {
            let st = state.clone();
            api(
                "take_pending",
                lua.create_function(move |_, ()| {
                    let mut s = st.borrow_mut();
                    let (src, line) = s.pending_at.take().unzip();
                    Ok((s.pending.take().unwrap_or(Value::Nil), src, line))
                })?,
            )?;
        }
        api(
            "error_table",
            lua.create_function(|lua, msg: mlua::String| error_table(lua, &msg.to_str()?, false))?,
        )?;
        {
            let st = state.clone();
            api(
                "sha1hex",
                lua.create_function(move |lua, args: MultiValue| {
                    if args.len() != 1 {
                        return Err(raise_table(lua, &st, "wrong number of arguments"));
                    }
                    let bytes = match &args[0] {
                        Value::String(s) => s.as_bytes().to_vec(),
                        Value::Number(n) => format!("{n}").into_bytes(),
                        Value::Integer(n) => n.to_string().into_bytes(),
                        _ => Vec::new(),
                    };
                    Ok(sha1_hex(&bytes))
                })?,
            )?;
        }
        {
            let st = state.clone();
            api(
                "log",
                lua.create_function(move |lua, args: MultiValue| {
                    if args.len() < 2 {
                        return Err(raise_table(
                            lua,
                            &st,
                            "redis.log() requires two arguments or more.",
                        ));
                    }
                    let level = match &args[0] {
                        Value::Number(n) => *n as i64,
                        Value::Integer(n) => *n,
                        _ => {
                            return Err(raise_table(
                                lua,
                                &st,
                                "First argument must be a number (log level).",
                            ))
                        }
                    };
                    if !(0..=3).contains(&level) {
                        return Err(raise_table(lua, &st, "Invalid debug level."));
                    }
                    let msg: Vec<String> = args
                        .iter()
                        .skip(1)
                        .map(|v| match v {
                            Value::String(s) => s.to_string_lossy(),
                            other => format!("{other:?}"),
                        })
                        .collect();
                    let msg = msg.join(" ");
                    match level {
                        0 => tracing::debug!(target: "script", "{msg}"),
                        1 | 2 => tracing::info!(target: "script", "{msg}"),
                        _ => tracing::warn!(target: "script", "{msg}"),
                    }
                    Ok(())
                })?,
            )?;
        }
        {
            let st = state.clone();
            api(
                "setresp",
                lua.create_function(move |lua, args: MultiValue| {
                    if args.len() != 1 {
                        return Err(raise_table(
                            lua,
                            &st,
                            "redis.setresp() requires one argument.",
                        ));
                    }
                    let v = match &args[0] {
                        Value::Number(n) => *n,
                        Value::Integer(n) => *n as f64,
                        Value::String(s) => s
                            .to_str()
                            .ok()
                            .and_then(|s| s.trim().parse().ok())
                            .unwrap_or(0.0),
                        _ => 0.0,
                    };
                    if v != 2.0 && v != 3.0 {
                        return Err(raise_table(lua, &st, "RESP version must be 2 or 3."));
                    }
                    st.borrow_mut().resp3 = v == 3.0;
                    Ok(())
                })?,
            )?;
        }
        {
            let st = state.clone();
            api(
                "set_repl",
                lua.create_function(move |lua, args: MultiValue| {
                    if args.len() != 1 {
                        return Err(raise_table(lua, &st, "redis.set_repl() requires two arguments."));
                    }
                    let f = match &args[0] {
                        Value::Number(n) => *n as i64,
                        Value::Integer(n) => *n,
                        _ => -1,
                    };
                    if !(0..=3).contains(&f) {
                        return Err(raise_table(
                            lua,
                            &st,
                            "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                        ));
                    }
                    // Every script is replicated whole (its entry), whatever it asks.
                    Ok(())
                })?,
            )?;
        }
        {
            let st = state.clone();
            api(
                "acl_check_cmd",
                lua.create_function(move |lua, args: MultiValue| {
                    let known = match args.front() {
                        Some(Value::String(s)) => command::lookup(&s.as_bytes()).is_some(),
                        _ => false,
                    };
                    if !known {
                        return Err(raise_table(
                            lua,
                            &st,
                            "Invalid command passed to redis.acl_check_cmd()",
                        ));
                    }
                    Ok(true)
                })?,
            )?;
        }
        {
            let st = state.clone();
            api(
                "random",
                lua.create_function(move |lua, args: MultiValue| {
                    let r = f64::from(st.borrow_mut().rand.next() % i32::MAX) / f64::from(i32::MAX);
                    let int = |i: usize| -> mlua::Result<i64> {
                        match args.get(i) {
                            Some(Value::Number(n)) => Ok(*n as i32 as i64),
                            Some(Value::Integer(n)) => Ok(*n as i32 as i64),
                            Some(Value::String(s))
                                if s.to_str()
                                    .ok()
                                    .and_then(|t| t.trim().parse::<f64>().ok())
                                    .is_some() =>
                            {
                                Ok(s.to_str()?.trim().parse::<f64>().unwrap_or(0.0) as i32 as i64)
                            }
                            other => {
                                let got = match other {
                                    None | Some(Value::Nil) if i >= args.len() => {
                                        "no value".to_string()
                                    }
                                    Some(v) => v.type_name().to_string(),
                                    None => "no value".to_string(),
                                };
                                Err(raise_positioned(
                                    lua,
                                    &st,
                                    &format!(
                                        "bad argument #{} to 'random' (number expected, got {got})",
                                        i + 1
                                    ),
                                ))
                            }
                        }
                    };
                    match args.len() {
                        0 => Ok(r),
                        1 => {
                            let u = int(0)?;
                            if u < 1 {
                                return Err(raise_positioned(
                                    lua,
                                    &st,
                                    "bad argument #1 to 'random' (interval is empty)",
                                ));
                            }
                            Ok((r * u as f64).floor() + 1.0)
                        }
                        2 => {
                            let l = int(0)?;
                            let u = int(1)?;
                            if l > u {
                                return Err(raise_positioned(
                                    lua,
                                    &st,
                                    "bad argument #2 to 'random' (interval is empty)",
                                ));
                            }
                            Ok((r * (u - l + 1) as f64).floor() + l as f64)
                        }
                        _ => Err(raise_positioned(lua, &st, "wrong number of arguments")),
                    }
                })?,
            )?;
        }
        {
            let st = state.clone();
            api(
                "randomseed",
                lua.create_function(move |lua, args: MultiValue| {
                    let seed = match args.front() {
                        Some(Value::Number(n)) => *n as i32,
                        Some(Value::Integer(n)) => *n as i32,
                        other => {
                            let got = other.map_or("no value", |v| v.type_name());
                            return Err(raise_positioned(
                                lua,
                                &st,
                                &format!(
                                    "bad argument #1 to 'randomseed' (number expected, got {got})"
                                ),
                            ));
                        }
                    };
                    st.borrow_mut().rand = rand48::Rand48::new(seed);
                    Ok(())
                })?,
            )?;
        }
        {
            let st = state.clone();
            api(
                "register_function",
                lua.create_function(move |lua, args: MultiValue| {
                    let reg = register_args(&args).and_then(|reg| {
                        let mut s = st.borrow_mut();
                        let Some(registry) = s.registry.as_mut() else {
                            return Err("redis.register_function can only be called on FUNCTION LOAD command".to_string());
                        };
                        if !valid_name(reg.info.name.as_bytes()) {
                            return Err(ERR_NAME.to_string());
                        }
                        if registry.iter().any(|r| r.info.name == reg.info.name) {
                            return Err("Function already exists in the library".to_string());
                        }
                        registry.push(reg);
                        Ok(())
                    });
                    reg.map_err(|e| raise_table(lua, &st, &e))
                })?,
            )?;
        }
        {
            let st = state.clone();
            api(
                "exceeded",
                lua.create_function(move |_, ()| Ok(st.borrow().exceeded))?,
            )?;
        }
        api(
            "budget_message",
            lua.create_function(|_, ()| Ok(budget_message()))?,
        )?;
        rr.raw_set("version", crate::REDIS_VERSION)?;
        rr.raw_set("version_num", version_num(crate::REDIS_VERSION))?;
        let globals = lua.globals();
        globals.raw_set("bit", libs::bit(&lua, &state)?)?;
        globals.raw_set("cjson", libs::cjson(&lua, &state)?)?;
        globals.raw_set("cmsgpack", libs::cmsgpack(&lua, &state)?)?;
        globals.raw_set("struct", libs::structlib(&lua, &state)?)?;
        let (env, run, load_library, run_function): (Table, Function, Function, Function) = lua
            .load(PRELUDE)
            .set_name("=rockraft")
            .call((rr, globals.clone()))?;
        Ok(Vm {
            lua,
            globals,
            env,
            run,
            load_library,
            run_function,
            state,
            compiled: HashMap::new(),
            libraries: HashMap::new(),
        })
    }

    /// (Re)arms the instruction budget: setting the hook also restarts Lua's instruction
    /// count, so every script's budget starts at the same instruction on every node.
    fn arm_budget(&self) -> mlua::Result<()> {
        let st = self.state.clone();
        self.lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |lua, _| {
                let mut s = st.borrow_mut();
                s.used += u64::from(HOOK_EVERY);
                if s.used > s.budget {
                    s.exceeded = true;
                    return Err(mlua::Error::runtime(budget_message()));
                }
                if lua.used_memory() > s.gc_at {
                    // (A full collection restarts the collector: stop it again.)
                    let _ = lua.gc_collect();
                    lua.gc_stop();
                    s.gc_at = lua.used_memory() + GC_EVERY;
                }
                Ok(VmState::Continue)
            },
        )
    }

    /// The compiled script `sha` (compiling `body` if this thread has not yet).
    fn compile(&mut self, sha: &str, body: &[u8]) -> Result<Function, Reply> {
        if let Some(f) = self.compiled.get(sha) {
            return Ok(f.clone());
        }
        let (_, code) = shebang(body).map_err(|e| Reply::err(format!("ERR {e}")))?;
        let f = self
            .lua
            .load(code)
            .set_name("@user_script")
            .set_mode(mlua::ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| {
                Reply::err(format!(
                    "ERR Error compiling script (new function): {}",
                    lua_message(&e)
                ))
            })?;
        if self.compiled.len() >= COMPILED_MAX {
            self.compiled.clear();
        }
        self.compiled.insert(sha.to_string(), f.clone());
        Ok(f)
    }

    /// Sets up a run: the state a script starts from, its budget, its memory allowance and
    /// the stopped collector. The heap size it starts from, for [`Vm::end`].
    fn begin(&mut self, seed: u64) -> Result<usize, Reply> {
        {
            let mut s = self.state.borrow_mut();
            s.resp3 = false;
            s.used = 0;
            s.exceeded = false;
            s.rand = rand48::Rand48::new(seed as i32);
            s.pending = None;
            s.pending_at = None;
            s.cjson = libs::CjsonConfig::default();
            s.registry = None;
            s.no_writes = false;
        }
        self.arm_budget()
            .map_err(|e| Reply::err(format!("ERR Error running script: {}", lua_message(&e))))?;
        // The collector runs only at points that depend on the script alone (a weak table
        // would otherwise lose entries at a moment that depends on this node's history), and
        // the memory allowance counts from where the script starts.
        let base = self.lua.used_memory();
        self.state.borrow_mut().gc_at = base + GC_EVERY;
        let _ = self.lua.set_memory_limit(base + SCRIPT_MEMORY);
        self.lua.gc_stop();
        Ok(base)
    }

    /// Ends a run begun at heap size `base`.
    fn end(&mut self, base: usize) {
        self.lua.gc_restart();
        if self.lua.used_memory() > base + (16 << 20) {
            let _ = self.lua.gc_collect();
        } else {
            let _ = self.lua.gc_step();
        }
        let _ = self
            .lua
            .set_memory_limit(MEMORY_LIMIT.max(self.lua.used_memory() + (64 << 20)));
    }

    fn call(
        &mut self,
        sha: &str,
        f: Function,
        keys: &[Bytes],
        args: &[Bytes],
        seed: u64,
        host: &mut dyn Host,
    ) -> Reply {
        let set_array = |name: &str, items: &[Bytes]| -> mlua::Result<()> {
            let t = self.array(items)?;
            self.globals.raw_set(name, t)
        };
        if let Err(e) = set_array("KEYS", keys).and_then(|_| set_array("ARGV", args)) {
            return Reply::err(format!(
                "ERR Error running script {sha}: {}",
                lua_message(&e)
            ));
        }
        let base = match self.begin(seed) {
            Ok(base) => base,
            Err(e) => return e,
        };
        let reply = with_host_set(host, || {
            let result = self.run.call::<(bool, Value)>(f);
            self.outcome(sha, result)
        });
        self.end(base);
        reply
    }

    fn array(&self, items: &[Bytes]) -> mlua::Result<Table> {
        let t = self.lua.create_table_with_capacity(items.len(), 0)?;
        for (i, item) in items.iter().enumerate() {
            t.raw_set(i + 1, self.lua.create_string(item)?)?;
        }
        Ok(t)
    }

    /// The compiled code of a library (`code` is `FUNCTION LOAD`'s argument, whose SHA1 is
    /// `sha`; its first line, the metadata, is not Lua).
    fn compile_library(&mut self, sha: &str, code: &[u8]) -> Result<Function, Reply> {
        let key = format!("lib:{sha}");
        if let Some(f) = self.compiled.get(&key) {
            return Ok(f.clone());
        }
        let body = code
            .iter()
            .position(|&b| b == b'\n')
            .map_or(&code[code.len()..], |at| &code[at..]);
        let f = self
            .lua
            .load(body)
            .set_name("@user_function")
            .set_mode(mlua::ChunkMode::Text)
            .into_function()
            .map_err(|e| {
                Reply::err(format!("ERR Error compiling function: {}", lua_message(&e)))
            })?;
        if self.compiled.len() >= COMPILED_MAX {
            self.compiled.clear();
        }
        self.compiled.insert(key, f.clone());
        Ok(f)
    }

    /// Runs a library's code (in a run begun with [`Vm::begin`]): what it registered.
    fn register(&mut self, chunk: Function) -> Result<Vec<Registered>, Reply> {
        self.state.borrow_mut().registry = Some(Vec::new());
        let result = self.load_library.call::<(bool, Value)>(chunk);
        let (registered, exceeded) = {
            let mut s = self.state.borrow_mut();
            (s.registry.take().unwrap_or_default(), s.exceeded)
        };
        let failed = |msg: String| {
            Err(Reply::Error(
                format!("ERR Error registering functions: {msg}").replace(['\r', '\n'], " "),
            ))
        };
        if exceeded {
            // Redis's words for a library whose loading runs too long (here: past the budget).
            return failed("ERR FUNCTION LOAD timeout".into());
        }
        match result {
            Ok((true, _)) => Ok(registered),
            Ok((false, Value::Table(t))) => match t.raw_get::<Value>("err") {
                Ok(v) => failed(
                    lua_text(&v)
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_else(|| "ERR unknown error".into()),
                ),
                Err(e) => failed(format!("ERR {}", lua_message(&e))),
            },
            Ok((false, other)) => failed(format!(
                "ERR {}",
                lua_text(&other)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_else(|| "execution failure".into())
            )),
            Err(e) => failed(format!("ERR {}", lua_message(&e))),
        }
    }

    /// The functions the library `code` registers (loading it if this thread has not).
    fn library(&mut self, code: &[u8]) -> Result<Rc<Vec<FunctionInfo>>, Reply> {
        let sha = sha1_hex(code);
        if let Some(info) = self.libraries.get(&sha) {
            return Ok(info.clone());
        }
        let chunk = self.compile_library(&sha, code)?;
        let base = self.begin(0)?;
        let registered = self.register(chunk);
        self.end(base);
        let info: Rc<Vec<FunctionInfo>> =
            Rc::new(registered?.into_iter().map(|r| r.info).collect());
        if self.libraries.len() >= COMPILED_MAX {
            self.libraries.clear();
        }
        self.libraries.insert(sha, info.clone());
        Ok(info)
    }

    /// Runs function `name` of library `code`. The library's code runs first, each time,
    /// so every call starts from the same library state on every node.
    #[allow(clippy::too_many_arguments)]
    fn call_function(
        &mut self,
        code: &[u8],
        name: &str,
        read_only: bool,
        keys: &[Bytes],
        args: &[Bytes],
        seed: u64,
        host: &mut dyn Host,
    ) -> Reply {
        let sha = sha1_hex(code);
        let chunk = match self.compile_library(&sha, code) {
            Ok(chunk) => chunk,
            Err(e) => return e,
        };
        let base = match self.begin(seed) {
            Ok(base) => base,
            Err(e) => return e,
        };
        let reply = with_host_set(host, || {
            let registered = match self.register(chunk) {
                Ok(r) => r,
                Err(e) => return e,
            };
            let Some(f) = registered.into_iter().find(|r| r.info.name == name) else {
                return Reply::err("ERR Function not found");
            };
            let no_writes = f.info.flags & FLAG_NO_WRITES != 0;
            if read_only && !no_writes {
                return Reply::err(
                    "ERR Can not execute a script with write flag using *_ro command.",
                );
            }
            self.state.borrow_mut().no_writes = no_writes;
            let tables = self.array(keys).and_then(|k| Ok((k, self.array(args)?)));
            let result = tables
                .and_then(|(k, a)| self.run_function.call::<(bool, Value)>((f.callback, k, a)));
            self.outcome(name, result)
        });
        self.end(base);
        reply
    }

    /// The reply of a script or function `name` that ran to `result`.
    fn outcome(&self, name: &str, result: mlua::Result<(bool, Value)>) -> Reply {
        let sha = name;
        let (resp3, exceeded) = {
            let s = self.state.borrow();
            (s.resp3, s.exceeded)
        };
        if exceeded {
            return Reply::err(format!("ERR {} script: {sha}", budget_message()));
        }
        match result {
            Ok((true, v)) => lua_to_reply(&v, resp3, 0),
            Ok((false, Value::Table(t))) => {
                let text = |k: &str| -> Option<String> {
                    match t.raw_get::<Value>(k) {
                        Ok(Value::String(s)) => Some(s.to_string_lossy()),
                        Ok(Value::Number(n)) => Some(format!("{n}")),
                        Ok(Value::Integer(n)) => Some(format!("{n}")),
                        _ => None,
                    }
                };
                let msg = text("err").unwrap_or_else(|| "ERR unknown error".into());
                let mut out = msg;
                if let (Some(source), Some(line)) = (text("source"), text("line")) {
                    out.push_str(&format!(" script: {sha}, on {source}:{line}."));
                }
                Reply::Error(out.replace(['\r', '\n'], " "))
            }
            Ok((false, other)) => {
                let msg = match other {
                    Value::String(s) => s.to_string_lossy(),
                    _ => "execution failure".to_string(),
                };
                let msg: String = msg.chars().take(100).collect();
                self.after_error();
                Reply::Error(
                    format!("ERR Error running script {sha}, {msg}").replace(['\r', '\n'], " "),
                )
            }
            Err(e) => {
                self.after_error();
                Reply::err(
                    format!("ERR Error running script {sha}, {}", lua_message(&e))
                        .replace(['\r', '\n'], " "),
                )
            }
        }
    }

    /// After a failure that may have been memory: give the heap back.
    fn after_error(&self) {
        let _ = self.lua.gc_collect();
    }
}

fn budget_message() -> String {
    format!(
        "Script exceeded rockraft's budget of {INSTRUCTION_BUDGET} Lua instructions (every node stops it at the same point; its writes before it are kept)"
    )
}

/// A Lua error's own text (without mlua's decorations).
fn lua_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::MemoryError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => lua_message(cause),
        other => other.to_string(),
    }
}

/// `7.2.4` → 0x070204, as `REDIS_VERSION_NUM`.
fn version_num(v: &str) -> f64 {
    let mut n = 0u32;
    for part in v.split('.').take(3) {
        n = (n << 8) | part.parse::<u32>().unwrap_or(0);
    }
    f64::from(n)
}

#[cfg(test)]
mod tests;
