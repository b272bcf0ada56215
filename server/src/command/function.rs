//! Functions: FUNCTION (LOAD DELETE FLUSH LIST DUMP RESTORE STATS KILL HELP), FCALL, FCALL_RO.
//!
//! ```text
//! FUNCTION LOAD [REPLACE] code         code = "#!lua name=<library>\n…"
//! FUNCTION DELETE library | FLUSH [ASYNC|SYNC] | LIST [LIBRARYNAME pattern] [WITHCODE]
//! FUNCTION DUMP | RESTORE payload [FLUSH|APPEND|REPLACE] | STATS | KILL | HELP
//! FCALL function numkeys [key …] [arg …]     (proposed as FCALL <seed> function numkeys …)
//! FCALL_RO function numkeys [key …] [arg …]  a read
//! ```
//!
//! The libraries are replicated state, in the `script` column family: `l<library>` holds a
//! library's code, `f<function>` the function's flags byte and its library's name. Every
//! FUNCTION subcommand goes through the log (LIST, DUMP and STATS read the libraries
//! linearizably). A library's code is run at apply to find what it registers; FCALL runs it
//! again before each call (see `scripting::run_function`), so a call never depends on what
//! earlier calls left in the library's local variables, which would differ between nodes.

use std::rc::Rc;

use bytes::Bytes;
use rand::Rng;
use rockraft_raftstore::keys;
use rockraft_resp::Reply;

use super::flags::{NOSCRIPT, READONLY, STALE, WRITE};
use super::scripting::{ReadHost, WriteHost};
use super::{
    help_reply, parse_i64, spec, unknown_subcommand, upper, wrong_arity, CommandSpec, Kind, ReadCtx,
};
use crate::db::Txn;
use crate::scripting::{self, dump, FunctionInfo, FLAG_NAMES, FLAG_NO_WRITES};
use crate::types::Reader;

#[rustfmt::skip]
pub fn commands() -> Vec<CommandSpec> {
    use Kind::{Read, Write};
    let g = "scripting";
    vec![
        spec("function", -2, WRITE | NOSCRIPT, (0, 0, 0), g, "A container for function commands.", Write { prepare: prepare_function, apply: apply_function }).subcommands(SUBCOMMANDS),
        spec("fcall", -3, WRITE | NOSCRIPT | STALE, (0, 0, 0), g, "Invokes a function.", Write { prepare: prepare_fcall, apply: apply_fcall }).numkeys(2).reads_when(fcall_reads, fcall_read),
        spec("fcall_ro", -3, READONLY | NOSCRIPT | STALE, (0, 0, 0), g, "Invokes a read-only function.", Read(fcall_ro)).numkeys(2),
    ]
}

/// A function's entry: its flags and its library's name.
fn function_entry(r: &dyn Reader, name: &[u8]) -> Option<(u8, Vec<u8>)> {
    let v = r.script_entry(&keys::function_key(name))?;
    let (&flags, library) = v.split_first()?;
    Some((flags, library.to_vec()))
}

/// Whether FCALL `argv` calls a function registered `no-writes` (so it is served as a read).
fn fcall_reads(view: &crate::db::View, argv: &[Bytes]) -> bool {
    view.script_entry(&keys::function_key(&argv[1]))
        .and_then(|v| v.first().copied())
        .is_some_and(|flags| flags & FLAG_NO_WRITES != 0)
}

/// FCALL's checks of `[name, numkeys, …]`, as Redis orders them: the function (its flags
/// and its library's code), then the number of keys.
fn lookup(r: &dyn Reader, rest: &[Bytes]) -> Result<(u8, Vec<u8>, usize), Reply> {
    let Some((flags, library)) = function_entry(r, &rest[0]) else {
        return Err(Reply::err("ERR Function not found"));
    };
    let code = r
        .script_entry(&keys::library_key(&library))
        .ok_or_else(|| Reply::err("ERR Function not found"))?;
    let n = parse_i64(&rest[1]).ok_or_else(|| Reply::err("ERR Bad number of keys provided"))?;
    if n > (rest.len() - 2) as i64 {
        return Err(Reply::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    if n < 0 {
        return Err(Reply::err("ERR Number of keys can't be negative"));
    }
    Ok((flags, code, n as usize))
}

/// `FCALL f numkeys …` → `FCALL <seed> f numkeys …` (the seed of `math.random` and of the
/// random choices of the commands the function calls).
fn prepare_fcall(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    let seed: u64 = rand::rng().random();
    let mut out = Vec::with_capacity(argv.len() + 1);
    out.push(argv[0].clone());
    out.push(Bytes::copy_from_slice(&seed.to_be_bytes()));
    out.extend(argv[1..].iter().cloned());
    Ok(Some(out))
}

fn apply_fcall(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let Some(seed) = argv.get(1).and_then(|s| <[u8; 8]>::try_from(&s[..]).ok()) else {
        return Reply::err("ERR FCALL entry without a seed");
    };
    let seed = u64::from_be_bytes(seed);
    let rest = &argv[2..];
    if rest.len() < 2 {
        return wrong_arity("fcall");
    }
    let (_, code, n) = match lookup(&*txn, rest) {
        Ok(found) => found,
        Err(e) => return e,
    };
    let name = String::from_utf8_lossy(&rest[0]).into_owned();
    let (keys, args) = (&rest[2..2 + n], &rest[2 + n..]);
    let mut host = WriteHost::new(txn, true, seed);
    scripting::run_function(&code, &name, false, keys, args, seed, &mut host)
}

/// FCALL_RO, and FCALL of a `no-writes` function: one consistent view. `None` when FCALL's
/// function is no longer `no-writes` there (its library was replaced since it was routed).
fn fcall_read(ctx: &ReadCtx, argv: &[Bytes]) -> Option<Reply> {
    let read_only = upper(&argv[0]) == "FCALL_RO";
    let rest = &argv[1..];
    let seed: u64 = rand::rng().random();
    ctx.read(|r| {
        let (flags, code, n) = match lookup(r, rest) {
            Ok(found) => found,
            Err(e) => return Some(e),
        };
        if !read_only && flags & FLAG_NO_WRITES == 0 {
            return None;
        }
        let name = String::from_utf8_lossy(&rest[0]).into_owned();
        let (keys, args) = (&rest[2..2 + n], &rest[2 + n..]);
        let mut host = ReadHost::new(r, ctx.now_ms, seed);
        host.user = ctx.user.clone();
        Some(scripting::run_function(
            &code, &name, read_only, keys, args, seed, &mut host,
        ))
    })
}

fn fcall_ro(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    fcall_read(ctx, argv).unwrap_or_else(|| Reply::err("ERR Function not found"))
}

const FUNCTION_HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
];

/// FUNCTION's subcommands and their arities (negative: at least).
const SUBCOMMANDS: &[(&str, i32)] = &[
    ("LOAD", -3),
    ("DELETE", 3),
    ("FLUSH", -2),
    ("LIST", -2),
    ("DUMP", 2),
    ("RESTORE", -3),
    ("STATS", 2),
    ("KILL", 2),
    ("HELP", 2),
];

fn syntax_error(sub: &[u8]) -> Reply {
    Reply::err(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
        String::from_utf8_lossy(sub)
    ))
}

/// FUNCTION LOAD's arguments: (REPLACE given, the code).
fn load_args(argv: &[Bytes]) -> Result<(bool, &Bytes), Reply> {
    let mut replace = false;
    let mut at = 2;
    while at < argv.len() - 1 {
        if upper(&argv[at]) != "REPLACE" {
            return Err(Reply::err(format!(
                "ERR Unknown option given: {}",
                String::from_utf8_lossy(&argv[at])
            )));
        }
        replace = true;
        at += 1;
    }
    argv.get(at)
        .map(|code| (replace, code))
        .ok_or_else(|| Reply::err("ERR Function code is missing"))
}

/// FUNCTION LIST's arguments: (WITHCODE given, the LIBRARYNAME pattern).
fn list_args(argv: &[Bytes]) -> Result<(bool, Option<&Bytes>), Reply> {
    let (mut with_code, mut pattern) = (false, None);
    let mut i = 2;
    while i < argv.len() {
        let arg = upper(&argv[i]);
        if !with_code && arg == "WITHCODE" {
            with_code = true;
        } else if pattern.is_none() && arg == "LIBRARYNAME" {
            if i >= argv.len() - 1 {
                return Err(Reply::err("ERR library name argument was not given"));
            }
            i += 1;
            pattern = Some(&argv[i]);
        } else {
            return Err(Reply::err(format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(&argv[i])
            )));
        }
        i += 1;
    }
    Ok((with_code, pattern))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Policy {
    Append,
    Replace,
    Flush,
}

fn restore_args(argv: &[Bytes]) -> Result<Policy, Reply> {
    if argv.len() > 4 {
        return Err(syntax_error(&argv[1]));
    }
    match argv.get(3).map(|p| upper(p)).as_deref() {
        None | Some("APPEND") => Ok(Policy::Append),
        Some("REPLACE") => Ok(Policy::Replace),
        Some("FLUSH") => Ok(Policy::Flush),
        Some(_) => Err(Reply::err(
            "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
        )),
    }
}

/// FUNCTION: HELP and KILL are answered at once; everything else goes through the log.
fn prepare_function(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    if let Some(e) = super::check_subcommand("function", SUBCOMMANDS, argv) {
        return Err(e);
    }
    match upper(&argv[1]).as_str() {
        "HELP" => Err(help_reply(FUNCTION_HELP)),
        // A function runs inside its entry's apply and cannot be interrupted there.
        "KILL" => Err(Reply::err("NOTBUSY No scripts in execution right now.")),
        "LOAD" => load_args(argv).map(|_| None),
        "LIST" => list_args(argv).map(|_| None),
        "RESTORE" => restore_args(argv).map(|_| None),
        "FLUSH" => match argv.len() {
            2 => Ok(None),
            3 if matches!(upper(&argv[2]).as_str(), "SYNC" | "ASYNC") => Ok(None),
            3 => Err(Reply::err(
                "ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
            )),
            _ => Err(syntax_error(&argv[1])),
        },
        _ => Ok(None),
    }
}

/// The libraries, in name order: (name, code).
fn libraries(r: &dyn Reader) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (start, end) = keys::library_range();
    let mut out = Vec::new();
    r.script_entries(&start, &end, &mut |k, v| {
        out.push((k[1..].to_vec(), v.to_vec()));
        true
    });
    out
}

/// The functions' entries, in name order: (function, flags, library).
fn functions(r: &dyn Reader) -> Vec<(Vec<u8>, u8, Vec<u8>)> {
    let (start, end) = keys::function_range();
    let mut out = Vec::new();
    r.script_entries(&start, &end, &mut |k, v| {
        if let Some((&flags, library)) = v.split_first() {
            out.push((k[1..].to_vec(), flags, library.to_vec()));
        }
        true
    });
    out
}

/// Removes a library and its functions' entries.
fn unlink(txn: &mut Txn, library: &[u8]) {
    for (f, _, lib) in functions(&*txn) {
        if lib == library {
            txn.delete_script_entry(&keys::function_key(&f));
        }
    }
    txn.delete_script_entry(&keys::library_key(library));
}

/// Adds a library (whose functions are `info`) and its functions' entries.
fn link(txn: &mut Txn, library: &[u8], code: &[u8], info: &[FunctionInfo]) {
    txn.put_script_entry(&keys::library_key(library), code);
    for f in info {
        let mut entry = vec![f.flags];
        entry.extend_from_slice(library);
        txn.put_script_entry(&keys::function_key(f.name.as_bytes()), &entry);
    }
}

/// A library checked and loaded: (name, functions), or Redis's error.
fn load_checked(code: &[u8]) -> Result<(String, Rc<Vec<FunctionInfo>>), Reply> {
    let name = scripting::library_name(code).map_err(|e| Reply::err(format!("ERR {e}")))?;
    let info = scripting::load_library(code)?;
    if info.is_empty() {
        return Err(Reply::err("ERR No functions registered"));
    }
    Ok((name, info))
}

/// A library ready to be stored: its name, its code and its functions.
type Loaded = (String, Vec<u8>, Rc<Vec<FunctionInfo>>);

/// Adds libraries (name, code, functions) to the stored ones, Redis's way: an existing
/// library is an error unless `replace` (then it is replaced); a function another library
/// has is an error. Nothing is written unless everything fits.
fn join(
    txn: &mut Txn,
    new: &[Loaded],
    replace: bool,
    library_message: fn(&str) -> String,
) -> Result<(), Reply> {
    let mut replaced = Vec::new();
    for (name, _, _) in new {
        if txn
            .script_entry(&keys::library_key(name.as_bytes()))
            .is_some()
        {
            if !replace {
                return Err(Reply::err(format!("ERR {}", library_message(name))));
            }
            replaced.push(name.as_bytes().to_vec());
        }
    }
    let existing = functions(&*txn);
    for (_, _, info) in new {
        for f in info.iter() {
            let taken = existing
                .iter()
                .any(|(e, _, lib)| e == f.name.as_bytes() && !replaced.contains(lib));
            if taken {
                return Err(Reply::err(format!(
                    "ERR Function {} already exists",
                    f.name
                )));
            }
        }
    }
    for name in &replaced {
        unlink(txn, name);
    }
    for (name, code, info) in new {
        link(txn, name.as_bytes(), code, info);
    }
    Ok(())
}

fn flush(txn: &mut Txn) {
    txn.clear_script_entries(keys::library_range());
    txn.clear_script_entries(keys::function_range());
}

fn flags_reply(flags: u8) -> Reply {
    Reply::Set(
        FLAG_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| flags & (1 << i) != 0)
            .map(|(_, f)| Reply::Simple(f.to_string()))
            .collect(),
    )
}

fn list(r: &dyn Reader, with_code: bool, pattern: Option<&Bytes>) -> Reply {
    let mut out = Vec::new();
    for (name, code) in libraries(r) {
        if pattern.is_some_and(|p| !crate::glob::glob_match(p, &name, false)) {
            continue;
        }
        let mut info: Vec<FunctionInfo> = match scripting::load_library(&code) {
            Ok(info) => info.to_vec(),
            Err(e) => return e,
        };
        info.sort_by(|a, b| a.name.cmp(&b.name));
        let functions = info
            .into_iter()
            .map(|f| {
                Reply::Map(vec![
                    (Reply::bulk("name"), Reply::bulk(f.name)),
                    (
                        Reply::bulk("description"),
                        f.description.map_or(Reply::Nil, |d| Reply::Bulk(d.into())),
                    ),
                    (Reply::bulk("flags"), flags_reply(f.flags)),
                ])
            })
            .collect();
        let mut lib = vec![
            (Reply::bulk("library_name"), Reply::Bulk(name.into())),
            (Reply::bulk("engine"), Reply::bulk("LUA")),
            (Reply::bulk("functions"), Reply::Array(functions)),
        ];
        if with_code {
            lib.push((Reply::bulk("library_code"), Reply::Bulk(code.into())));
        }
        out.push(Reply::Map(lib));
    }
    Reply::Array(out)
}

fn apply_function(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let result = match upper(&argv[1]).as_str() {
        "LOAD" => load_args(argv).and_then(|(replace, code)| {
            let name = scripting::library_name(code).map_err(|e| Reply::err(format!("ERR {e}")))?;
            let exists = txn
                .script_entry(&keys::library_key(name.as_bytes()))
                .is_some();
            if exists && !replace {
                return Err(Reply::err(format!("ERR Library '{name}' already exists")));
            }
            let (name, info) = load_checked(code)?;
            join(txn, &[(name.clone(), code.to_vec(), info)], true, |_| {
                String::new()
            })?;
            Ok(Reply::bulk(name))
        }),
        "DELETE" => {
            if txn.script_entry(&keys::library_key(&argv[2])).is_none() {
                Err(Reply::err("ERR Library not found"))
            } else {
                unlink(txn, &argv[2]);
                Ok(Reply::ok())
            }
        }
        "FLUSH" => {
            flush(txn);
            Ok(Reply::ok())
        }
        "LIST" => list_args(argv).map(|(with_code, pattern)| list(&*txn, with_code, pattern)),
        "DUMP" => {
            let codes: Vec<Vec<u8>> = libraries(&*txn).into_iter().map(|(_, c)| c).collect();
            Ok(Reply::Bulk(dump::encode(&codes).into()))
        }
        "RESTORE" => restore_args(argv).and_then(|policy| {
            let codes = dump::decode(&argv[2]).map_err(|e| Reply::err(format!("ERR {e}")))?;
            let mut new: Vec<Loaded> = Vec::new();
            for code in codes {
                let (name, info) = load_checked(&code)?;
                // The payload's libraries are loaded together first, as Redis does.
                if new.iter().any(|(n, _, _)| *n == name) {
                    return Err(Reply::err(format!("ERR Library '{name}' already exists")));
                }
                for f in info.iter() {
                    if new
                        .iter()
                        .any(|(_, _, i)| i.iter().any(|g| g.name == f.name))
                    {
                        return Err(Reply::err(format!(
                            "ERR Function {} already exists",
                            f.name
                        )));
                    }
                }
                new.push((name, code, info));
            }
            if policy == Policy::Flush {
                flush(txn);
            }
            join(txn, &new, policy == Policy::Replace, |name| {
                format!("Library {name} already exists")
            })?;
            Ok(Reply::ok())
        }),
        "STATS" => {
            let counts = |n: usize| Reply::Int(n as i64);
            Ok(Reply::Map(vec![
                (Reply::bulk("running_script"), Reply::Nil),
                (
                    Reply::bulk("engines"),
                    Reply::Map(vec![(
                        Reply::bulk("LUA"),
                        Reply::Map(vec![
                            (
                                Reply::bulk("libraries_count"),
                                counts(libraries(&*txn).len()),
                            ),
                            (
                                Reply::bulk("functions_count"),
                                counts(functions(&*txn).len()),
                            ),
                        ]),
                    )]),
                ),
            ]))
        }
        _ => Err(unknown_subcommand("FUNCTION", &argv[1])),
    };
    result.unwrap_or_else(|e| e)
}
