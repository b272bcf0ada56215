//! Connection commands: PING ECHO QUIT RESET HELLO SELECT CLIENT READONLY READWRITE ASKING.
//!
//! ```text
//! HELLO [protover [AUTH username password] [SETNAME clientname]]
//! CLIENT ID | GETNAME | SETNAME name | SETINFO LIB-NAME|LIB-VER value | LIST | INFO | HELP
//! ```

use bytes::Bytes;
use rockraft_resp::{Protocol, Reply};

use super::flags::{ADMIN, FAST, LOADING, NOSCRIPT, STALE};
use super::{int_arg, spec, unknown_subcommand, upper, wrong_arity, CommandSpec, Kind};
use crate::session::{ClientInfo, Session};
use crate::Shared;

pub fn commands() -> Vec<CommandSpec> {
    use Kind::Local;
    let g = "connection";
    let f = FAST | LOADING | STALE;
    vec![
        spec(
            "ping",
            -1,
            f,
            (0, 0, 0),
            g,
            "Returns the server's liveliness response.",
            Local(ping),
        ),
        spec(
            "echo",
            2,
            f,
            (0, 0, 0),
            g,
            "Returns the given string.",
            Local(echo),
        ),
        spec(
            "quit",
            -1,
            f | NOSCRIPT,
            (0, 0, 0),
            g,
            "Closes the connection.",
            Local(quit),
        ),
        spec(
            "monitor",
            1,
            ADMIN | NOSCRIPT | LOADING | STALE,
            (0, 0, 0),
            "server",
            "Listens for all requests received by the server in real-time.",
            Local(monitor),
        ),
        spec(
            "reset",
            1,
            NOSCRIPT | LOADING | STALE | FAST,
            (0, 0, 0),
            g,
            "Resets the connection.",
            Local(reset),
        ),
        spec(
            "hello",
            -1,
            f | NOSCRIPT,
            (0, 0, 0),
            g,
            "Handshakes with the Redis server.",
            Local(hello),
        ),
        spec(
            "select",
            2,
            f,
            (0, 0, 0),
            g,
            "Changes the selected database.",
            Local(select),
        ),
        spec(
            "client",
            -2,
            LOADING | STALE | NOSCRIPT,
            (0, 0, 0),
            g,
            "A container for client connection commands.",
            Local(client),
        )
        .lists_subcommands(&[
            ("CACHING", 3),
            ("GETNAME", 2),
            ("GETREDIR", 2),
            ("HELP", 2),
            ("ID", 2),
            ("INFO", 2),
            ("KILL", -3),
            ("LIST", -2),
            ("NO-EVICT", 3),
            ("NO-TOUCH", 3),
            ("PAUSE", -3),
            ("REPLY", 3),
            ("SETINFO", 4),
            ("SETNAME", 3),
            ("TRACKING", -3),
            ("TRACKINGINFO", 2),
            ("UNBLOCK", -3),
            ("UNPAUSE", 2),
        ]),
        spec(
            "readonly",
            1,
            f,
            (0, 0, 0),
            "cluster",
            "Enables read-only queries for a connection to a Redis Cluster replica node.",
            Local(readonly),
        ),
        spec(
            "readwrite",
            1,
            f,
            (0, 0, 0),
            "cluster",
            "Enables read-write queries for a connection to a Redis Cluster replica node.",
            Local(readwrite),
        ),
        spec(
            "asking",
            1,
            FAST,
            (0, 0, 0),
            "cluster",
            "Signals that a cluster client is following an -ASK redirect.",
            Local(asking),
        ),
    ]
}

fn ping(s: &mut Session, _: &Shared, argv: &[Bytes]) -> Reply {
    // A RESP2 connection in the subscribed context gets PING's answer as a message would be.
    if s.proto == Protocol::Resp2 && !s.subs.is_empty() && argv.len() <= 2 {
        let msg = argv.get(1).cloned().unwrap_or_default();
        return Reply::Array(vec![Reply::bulk("pong"), Reply::Bulk(msg)]);
    }
    match argv.len() {
        1 => Reply::Simple("PONG".into()),
        2 => Reply::Bulk(argv[1].clone()),
        _ => wrong_arity("ping"),
    }
}

fn echo(_: &mut Session, _: &Shared, argv: &[Bytes]) -> Reply {
    Reply::Bulk(argv[1].clone())
}

/// RESET: the connection as new (no transaction, no watched keys, no subscriptions, RESP2,
/// no name, reads through the leader).
fn reset(s: &mut Session, shared: &Shared, _: &[Bytes]) -> Reply {
    if std::mem::take(&mut s.monitor) {
        shared.monitors.remove(s.id);
    }
    s.multi = None;
    s.watched.clear();
    shared.pubsub.forget(s.id, &s.subs);
    s.subs = Default::default();
    if s.tracking.take().is_some() {
        shared.tracker.disable(s.id);
    }
    s.caching_next = None;
    s.readonly = false;
    s.set_proto(Protocol::Resp2);
    s.info().name.clear();
    Reply::Simple("RESET".into())
}

/// MONITOR: from now on the connection receives every command of this node's clients (see
/// `crate::monitor`).
fn monitor(s: &mut Session, shared: &Shared, _: &[Bytes]) -> Reply {
    if let (false, Some(outbox)) = (s.monitor, s.outbox.clone()) {
        s.monitor = true;
        shared.monitors.add(s.id, outbox);
    }
    Reply::ok()
}

fn quit(s: &mut Session, _: &Shared, _: &[Bytes]) -> Reply {
    s.quit = true;
    Reply::ok()
}

fn readonly(s: &mut Session, _: &Shared, _: &[Bytes]) -> Reply {
    s.readonly = true;
    Reply::ok()
}

fn readwrite(s: &mut Session, _: &Shared, _: &[Bytes]) -> Reply {
    s.readonly = false;
    Reply::ok()
}

fn asking(_: &mut Session, _: &Shared, _: &[Bytes]) -> Reply {
    Reply::ok()
}

fn select(_: &mut Session, _: &Shared, argv: &[Bytes]) -> Reply {
    match int_arg(&argv[1]) {
        Ok(0) => Reply::ok(),
        // rockraft is a cluster: like Redis in cluster mode, it has database 0 only.
        Ok(_) => Reply::err("ERR SELECT is not allowed in cluster mode"),
        Err(e) => e,
    }
}

fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

fn hello(s: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    let mut proto = s.proto;
    let mut i = 1;
    if argv.len() > 1 {
        proto = match super::parse_i64(&argv[1]) {
            Some(2) => Protocol::Resp2,
            Some(3) => Protocol::Resp3,
            Some(_) => return Reply::err("NOPROTO unsupported protocol version"),
            None => return Reply::err("ERR Protocol version is not an integer or out of range"),
        };
        i = 2;
    }
    let mut name = None;
    while i < argv.len() {
        let opt = upper(&argv[i]);
        match opt.as_str() {
            "AUTH" if i + 2 < argv.len() => {
                if let Err(e) =
                    super::acl::hello_auth(s, shared, &argv[0], &argv[i + 1], &argv[i + 2])
                {
                    return e;
                }
                i += 3;
            }
            "SETNAME" if i + 1 < argv.len() => {
                if !valid_client_name(&argv[i + 1]) {
                    return Reply::err(BAD_NAME);
                }
                name = Some(argv[i + 1].clone());
                i += 2;
            }
            _ => {
                return Reply::err(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&argv[i])
                ))
            }
        }
    }
    if !s.authenticated && shared.acl.auth_required() {
        return Reply::err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    s.set_proto(proto);
    if let Some(n) = name {
        s.info().name = String::from_utf8_lossy(&n).into_owned();
    }
    let role = if shared.group.status().is_leader() {
        "master"
    } else {
        "replica"
    };
    let field = |k: &str| Reply::bulk(k.to_string());
    Reply::Map(vec![
        (field("server"), field("redis")),
        (field("version"), field(crate::REDIS_VERSION)),
        (
            field("proto"),
            Reply::Int(if proto == Protocol::Resp3 { 3 } else { 2 }),
        ),
        (field("id"), Reply::Int(s.id as i64)),
        (field("mode"), field("cluster")),
        (field("role"), field(role)),
        (field("modules"), Reply::Array(vec![])),
    ])
}

fn client(s: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    let sub = upper(&argv[1]);
    let arity = |n: usize| {
        if argv.len() != n {
            Some(wrong_arity(&format!("client|{}", sub.to_ascii_lowercase())))
        } else {
            None
        }
    };
    match sub.as_str() {
        "ID" => arity(2).unwrap_or(Reply::Int(s.id as i64)),
        "GETNAME" => arity(2).unwrap_or_else(|| {
            let name = s.info().name.clone();
            if name.is_empty() {
                Reply::Nil
            } else {
                Reply::bulk(name)
            }
        }),
        "SETNAME" => arity(3).unwrap_or_else(|| {
            if !valid_client_name(&argv[2]) {
                return Reply::err(BAD_NAME);
            }
            s.info().name = String::from_utf8_lossy(&argv[2]).into_owned();
            Reply::ok()
        }),
        "SETINFO" => arity(4).unwrap_or_else(|| {
            let value = String::from_utf8_lossy(&argv[3]).into_owned();
            if !valid_client_name(&argv[3]) {
                return Reply::err(format!(
                    "ERR {} cannot contain spaces, newlines or special characters.",
                    upper(&argv[2])
                ));
            }
            match upper(&argv[2]).as_str() {
                "LIB-NAME" => s.info().lib_name = value,
                "LIB-VER" => s.info().lib_ver = value,
                _ => {
                    return Reply::err(format!(
                        "ERR Unrecognized option '{}'",
                        String::from_utf8_lossy(&argv[2])
                    ))
                }
            }
            Reply::ok()
        }),
        "LIST" => {
            let now = std::time::Instant::now();
            let text: String = shared
                .clients
                .snapshot()
                .iter()
                .map(|c| client_line(c, now) + "\n")
                .collect();
            Reply::Verbatim(text)
        }
        "INFO" => arity(2).unwrap_or_else(|| {
            let line = client_line(&s.info(), std::time::Instant::now());
            Reply::Verbatim(line + "\n")
        }),
        "UNBLOCK" if argv.len() == 3 || argv.len() == 4 => {
            let how = match argv.get(3).map(|r| upper(r)) {
                None => crate::blocking::Unblock::Timeout,
                Some(r) if r == "TIMEOUT" => crate::blocking::Unblock::Timeout,
                Some(r) if r == "ERROR" => crate::blocking::Unblock::Error,
                Some(_) => {
                    return Reply::err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
                }
            };
            let Some(id) = super::parse_i64(&argv[2]) else {
                return Reply::err(super::ERR_NOT_INTEGER);
            };
            Reply::Int(i64::from(id > 0 && shared.blocked.unblock(id as u64, how)))
        }
        "TRACKING" if argv.len() < 3 => wrong_arity("client|tracking"),
        "CACHING" if argv.len() != 3 => wrong_arity("client|caching"),
        "TRACKING" => tracking(s, shared, argv),
        "CACHING" => {
            let Some(mode) = s.tracking.as_ref() else {
                return Reply::err("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled");
            };
            match upper(&argv[2]).as_str() {
                "YES" if mode.optin => s.caching_next = Some(true),
                "YES" => return Reply::err(
                    "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
                ),
                "NO" if mode.optout => s.caching_next = Some(false),
                "NO" => return Reply::err(
                    "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
                ),
                _ => return Reply::err("ERR syntax error"),
            }
            Reply::ok()
        }
        "GETREDIR" => arity(2)
            .unwrap_or_else(|| Reply::Int(s.tracking.as_ref().map_or(-1, |m| m.redirect as i64))),
        "TRACKINGINFO" => arity(2).unwrap_or_else(|| {
            let mut flags = Vec::new();
            let status = |f: &str| Reply::bulk(f.to_string());
            match &s.tracking {
                None => flags.push(status("off")),
                Some(m) => {
                    flags.push(status("on"));
                    if m.bcast {
                        flags.push(status("bcast"));
                    }
                    if m.optin {
                        flags.push(status("optin"));
                        if s.caching_now == Some(true) {
                            flags.push(status("caching-yes"));
                        }
                    }
                    if m.optout {
                        flags.push(status("optout"));
                        if s.caching_now == Some(false) {
                            flags.push(status("caching-no"));
                        }
                    }
                    if m.noloop {
                        flags.push(status("noloop"));
                    }
                }
            }
            let prefixes = s.tracking.as_ref().map_or(Vec::new(), |m| {
                let mut p = m.prefixes.clone();
                p.sort();
                p.into_iter().map(Reply::Bulk).collect()
            });
            Reply::Map(vec![
                (Reply::bulk("flags"), Reply::Set(flags)),
                (
                    Reply::bulk("redirect"),
                    Reply::Int(s.tracking.as_ref().map_or(-1, |m| m.redirect as i64)),
                ),
                (Reply::bulk("prefixes"), Reply::Array(prefixes)),
            ])
        }),
        "REPLY" => arity(3).unwrap_or_else(|| match upper(&argv[2]).as_str() {
            "ON" => {
                s.reply_off = false;
                s.reply_skip = 0;
                Reply::ok()
            }
            "OFF" => {
                s.reply_off = true;
                Reply::ok()
            }
            "SKIP" => {
                if !s.reply_off {
                    // Its own reply and the next command's.
                    s.reply_skip = 2;
                }
                Reply::ok()
            }
            _ => Reply::err(super::ERR_SYNTAX),
        }),
        // Nothing is evicted (no maxmemory) and no key's access time is kept.
        "NO-EVICT" | "NO-TOUCH" => arity(3).unwrap_or_else(|| match upper(&argv[2]).as_str() {
            "ON" | "OFF" => Reply::ok(),
            _ => Reply::err(super::ERR_SYNTAX),
        }),
        "PAUSE" if argv.len() != 3 && argv.len() != 4 => wrong_arity("client|pause"),
        "PAUSE" => {
            let all = match argv.get(3).map(|m| upper(m)) {
                None => true,
                Some(m) if m == "ALL" => true,
                Some(m) if m == "WRITE" => false,
                Some(_) => return Reply::err("ERR CLIENT PAUSE mode must be WRITE or ALL"),
            };
            let Some(ms) = super::parse_i64(&argv[2]) else {
                return Reply::err("ERR timeout is not an integer or out of range");
            };
            if ms < 0 {
                return Reply::err("ERR timeout is negative");
            }
            let until = tokio::time::Instant::now() + std::time::Duration::from_millis(ms as u64);
            let mut pause = shared.pause.lock().unwrap_or_else(|e| e.into_inner());
            // A pause during another keeps the stricter mode and the later end (Redis).
            *pause = Some(match *pause {
                Some((u, a)) if u > tokio::time::Instant::now() => (u.max(until), a || all),
                _ => (until, all),
            });
            Reply::ok()
        }
        "UNPAUSE" => arity(2).unwrap_or_else(|| {
            *shared.pause.lock().unwrap_or_else(|e| e.into_inner()) = None;
            shared.unpaused.notify_waiters();
            Reply::ok()
        }),
        "KILL" if argv.len() < 3 => wrong_arity("client|kill"),
        "KILL" => kill(s, shared, argv),
        "HELP" => super::help_reply(&[
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are:",
            "    * ADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made from the specified address",
            "    * LADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made to specified local address",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Kill connections by type.",
            "    * USER <username>",
            "      Kill connections authenticated by <username>.",
            "    * SKIPME (YES|NO)",
            "      Skip killing current connection (default: yes).",
            "LIST",
            "    Return information about client connections.",
            "SETINFO <option> <value>",
            "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "    Unblock the specified blocked client.",
            "HELP",
            "    Prints this help.",
        ]),
        _ => unknown_subcommand("client", &argv[1]),
    }
}

/// CLIENT KILL <ip:port> | CLIENT KILL [ID id] [TYPE type] [USER name] [ADDR ip:port]
/// [LADDR ip:port] [SKIPME yes|no] (Redis's `clientCommand`): each matching connection is
/// closed at once (the caller's own after this reply). The old form answers OK or "No such
/// client", the new one how many it killed.
fn kill(s: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    let (mut addr, mut laddr, mut user, mut kind, mut id) = (None, None, None, None, None);
    let mut skipme = true;
    if argv.len() == 3 {
        addr = Some(text(&argv[2]));
        skipme = false;
    } else {
        let mut i = 2;
        while i < argv.len() {
            let Some(value) = argv.get(i + 1) else {
                return Reply::err(super::ERR_SYNTAX);
            };
            match upper(&argv[i]).as_str() {
                "ID" => match super::parse_i64(value).filter(|v| *v >= 1) {
                    Some(v) => id = Some(v as u64),
                    None => return Reply::err("ERR client-id should be greater than 0"),
                },
                "TYPE" => match upper(value).as_str() {
                    "NORMAL" => kind = Some(Some(false)),
                    "PUBSUB" => kind = Some(Some(true)),
                    // No connection here is a replica or a master (raft replicates).
                    "SLAVE" | "REPLICA" | "MASTER" => kind = Some(None),
                    _ => return Reply::err(format!("ERR Unknown client type '{}'", text(value))),
                },
                "ADDR" => addr = Some(text(value)),
                "LADDR" => laddr = Some(text(value)),
                "USER" => {
                    let name = text(value);
                    if shared.acl.user(&name).is_none() {
                        return Reply::err(format!("ERR No such user '{name}'"));
                    }
                    user = Some(name);
                }
                "SKIPME" => match upper(value).as_str() {
                    "YES" => skipme = true,
                    "NO" => skipme = false,
                    _ => return Reply::err(super::ERR_SYNTAX),
                },
                _ => return Reply::err(super::ERR_SYNTAX),
            }
            i += 2;
        }
    }
    let subscribed = kind.map(|_| shared.pubsub.subscriptions());
    let mut killed = 0;
    for c in shared.clients.snapshot() {
        let pubsub = subscribed.as_ref().map(|m| m.contains_key(&c.id));
        if addr.as_ref().is_some_and(|a| *a != c.addr.to_string())
            || laddr.as_ref().is_some_and(|a| *a != c.laddr.to_string())
            || kind.is_some_and(|k| k != pubsub)
            || id.is_some_and(|i| i != c.id)
            || user.as_ref().is_some_and(|u| *u != c.user)
            || (skipme && c.id == s.id)
        {
            continue;
        }
        if c.id == s.id {
            s.quit = true;
        } else if let Some(outbox) = shared.pubsub.outbox(c.id) {
            outbox.close();
        }
        killed += 1;
    }
    if argv.len() == 3 {
        if killed == 0 {
            Reply::err("ERR No such client")
        } else {
            Reply::ok()
        }
    } else {
        Reply::Int(killed)
    }
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p …] [OPTIN] [OPTOUT] [NOLOOP], with
/// Redis's checks in Redis's order.
fn tracking(s: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    let mut mode = crate::tracking::Mode::default();
    let mut j = 3;
    while j < argv.len() {
        let more = j + 1 < argv.len();
        match upper(&argv[j]).as_str() {
            "REDIRECT" if more => {
                j += 1;
                if mode.redirect != 0 {
                    return Reply::err("ERR A client can only redirect to a single other client");
                }
                let Some(id) = super::parse_i64(&argv[j]) else {
                    return Reply::err(super::ERR_NOT_INTEGER);
                };
                if id <= 0 || shared.pubsub.outbox(id as u64).is_none() {
                    return Reply::err("ERR The client ID you want redirect to does not exist");
                }
                mode.redirect = id as u64;
            }
            "BCAST" => mode.bcast = true,
            "OPTIN" => mode.optin = true,
            "OPTOUT" => mode.optout = true,
            "NOLOOP" => mode.noloop = true,
            "PREFIX" if more => {
                j += 1;
                mode.prefixes.push(argv[j].clone());
            }
            _ => return Reply::err("ERR syntax error"),
        }
        j += 1;
    }
    match upper(&argv[2]).as_str() {
        "ON" => {
            if !mode.bcast && !mode.prefixes.is_empty() {
                return Reply::err("ERR PREFIX option requires BCAST mode to be enabled");
            }
            if let Some(old) = &s.tracking {
                if old.bcast != mode.bcast {
                    return Reply::err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.");
                }
            }
            if mode.bcast && (mode.optin || mode.optout) {
                return Reply::err("ERR OPTIN and OPTOUT are not compatible with BCAST");
            }
            if mode.optin && mode.optout {
                return Reply::err("ERR You can't specify both OPTIN mode and OPTOUT mode");
            }
            if let Some(old) = &s.tracking {
                if (mode.optin && old.optout) || (mode.optout && old.optin) {
                    return Reply::err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.");
                }
            }
            if mode.bcast {
                let existing: &[Bytes] = s.tracking.as_ref().map_or(&[], |m| &m.prefixes);
                for (i, p) in mode.prefixes.iter().enumerate() {
                    let overlap = |a: &[u8], b: &[u8]| a.starts_with(b) || b.starts_with(a);
                    if let Some(e) = existing.iter().find(|e| overlap(e, p)) {
                        return Reply::err(format!(
                            "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                            String::from_utf8_lossy(p),
                            String::from_utf8_lossy(e)
                        ));
                    }
                    if let Some(q) = mode.prefixes[i + 1..].iter().find(|q| overlap(p, q)) {
                        return Reply::err(format!(
                            "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                            String::from_utf8_lossy(p),
                            String::from_utf8_lossy(q)
                        ));
                    }
                }
                // BCAST without a prefix tracks the empty one (every key), as in Redis.
                if mode.prefixes.is_empty() {
                    mode.prefixes.push(Bytes::new());
                }
                // Turning tracking on again adds prefixes.
                if let Some(old) = &s.tracking {
                    let mut all = old.prefixes.clone();
                    all.append(&mut mode.prefixes);
                    mode.prefixes = all;
                }
                mode.prefixes.sort();
                mode.prefixes.dedup();
            }
            shared.tracker.enable(s.id, mode.clone());
            s.tracking = Some(mode);
            Reply::ok()
        }
        "OFF" => {
            if s.tracking.take().is_some() {
                shared.tracker.disable(s.id);
            }
            s.caching_next = None;
            Reply::ok()
        }
        _ => Reply::err("ERR syntax error"),
    }
}

/// The CLIENT LIST line of a connection now (ACL LOG's client-info).
pub fn client_info_line(c: &ClientInfo) -> String {
    client_line(c, std::time::Instant::now())
}

/// One CLIENT LIST line, in Redis's field order.
fn client_line(c: &ClientInfo, now: std::time::Instant) -> String {
    format!(
        "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags=N db=0 sub=0 psub=0 ssub=0 \
         multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 \
         tot-mem=0 events=r cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}",
        c.id,
        c.addr,
        c.laddr,
        c.name,
        now.duration_since(c.created).as_secs(),
        now.duration_since(c.last_active).as_secs(),
        c.last_cmd,
        c.user,
        c.resp,
        c.lib_name,
        c.lib_ver
    )
}
