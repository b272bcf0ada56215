//! AUTH and ACL (the model is `crate::acl`). `ACL SETUSER`, `DELUSER` and `LOAD`, and
//! `CONFIG SET requirepass`, are writes through the log ([`as_write`]); the rest run on the
//! node the client is connected to.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rockraft_resp::Reply;

use super::{spec, upper, CommandSpec, Kind};
use crate::acl::{self, AclCommands, Denied, LogEntry, User, CATEGORIES};
use crate::session::Session;
use crate::Shared;

pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const NOAUTH: &str = "NOAUTH Authentication required.";

/// What a client not on this host gets in protected mode (Redis's text).
pub const PROTECTED_MODE_ERR: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

pub fn commands() -> Vec<CommandSpec> {
    use super::flags::*;
    vec![
        spec(
            "auth",
            -2,
            NOSCRIPT | LOADING | STALE | FAST,
            (0, 0, 0),
            "connection",
            "Authenticate to the server",
            Kind::Local(auth),
        ),
        spec(
            "acl",
            -2,
            0,
            (0, 0, 0),
            "server",
            "A container for Access List Control commands",
            Kind::Local(acl_local),
        )
        .subcommands(&[
            ("CAT", -2),
            ("DELUSER", -3),
            ("DRYRUN", -4),
            ("GENPASS", -2),
            ("GETUSER", 3),
            ("HELP", 2),
            ("LIST", 2),
            ("LOAD", 2),
            ("LOG", -2),
            ("SAVE", 2),
            ("SETUSER", -3),
            ("USERS", 2),
            ("WHOAMI", 2),
        ]),
    ]
}

/// Whether `name` is one of the commands a connection may run before it authenticates.
pub fn may_run_unauthenticated(name: &[u8]) -> bool {
    [&b"auth"[..], b"hello", b"quit", b"reset"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
}

/// Sets the connection up as Redis does: it runs as the default user, authenticated if that
/// user needs no password.
pub fn start_session(session: &mut Session, shared: &Shared) {
    let generation = shared.acl.generation();
    session.user = shared.acl.user("default");
    session.user_generation = generation;
    session.authenticated = !shared.acl.auth_required();
}

/// The refusal of a command by authentication or ACL (Redis's order: NOAUTH, then the
/// user's permissions), recorded in ACL LOG; `None` lets it run.
pub fn refuse(
    session: &mut Session,
    shared: &Shared,
    spec: &CommandSpec,
    argv: &[Bytes],
) -> Option<Reply> {
    let generation = shared.acl.generation();
    if generation != session.user_generation {
        let name = session
            .user
            .as_ref()
            .map_or("default".into(), |u| u.name.clone());
        session.user_generation = generation;
        match shared.acl.user(&name) {
            Some(u) => session.user = Some(u),
            None => {
                // Its user was deleted: Redis closes such connections.
                session.quit = true;
                return Some(Reply::err(NOAUTH));
            }
        }
    }
    if !session.authenticated && !acl::no_auth(spec.name) && shared.acl.auth_required() {
        return Some(Reply::err(NOAUTH));
    }
    let user = session.user.as_ref()?;
    if user.unrestricted() {
        return None;
    }
    let denied = user.check(spec, argv).err()?;
    let context = if session.multi.is_some() {
        "multi"
    } else {
        "toplevel"
    };
    let user = user.clone();
    Some(Reply::err(log_denied(
        session, shared, &user, spec, argv, denied, context,
    )))
}

/// After the users changed, closes the connections Redis closes: those whose user was deleted
/// (ACL DELUSER), every one of a user other than the default after an ACL LOAD (`loaded`:
/// Redis replaces all its users then), and subscribers whose user may no longer hear a
/// channel or pattern they are subscribed to. Each node closes its own clients as it applies
/// the change.
pub fn close_revoked(shared: &Shared, loaded: bool) {
    let users = shared.acl.users();
    let mut subscriptions = None;
    for client in shared.clients.snapshot() {
        let revoked = match users.get(&client.user) {
            None => true,
            Some(_) if loaded && client.user != "default" => true,
            Some(u) if u.unrestricted() => false,
            Some(u) => subscriptions
                .get_or_insert_with(|| shared.pubsub.subscriptions())
                .get(&client.id)
                .is_some_and(|subs| {
                    subs.iter()
                        .any(|(pattern, name)| !u.channel_allowed(name, *pattern))
                }),
        };
        if revoked {
            if let Some(outbox) = shared.pubsub.outbox(client.id) {
                tracing::info!(client = client.id, user = %client.user, "ACL change: closing the connection");
                outbox.close();
            }
        }
    }
}

/// A queued command checked again at EXEC (Redis 7.0's `execCommand`): if the user's rules
/// changed since it was queued and no longer allow it, its reply in the transaction is this
/// error, recorded in ACL LOG.
pub fn refuse_at_exec(
    session: &Session,
    shared: &Shared,
    spec: &CommandSpec,
    argv: &[Bytes],
) -> Option<Reply> {
    let user = session.user.as_ref()?;
    if user.unrestricted() {
        return None;
    }
    let denied = user.check(spec, argv).err()?;
    let why = match denied {
        Denied::Command => "no permission to execute the command or subcommand",
        Denied::Key(_) => "no permission to touch the specified keys",
        Denied::Channel(_) => "no permission to access one of the channels used as arguments",
    };
    log_denied(session, shared, user, spec, argv, denied, "multi");
    Some(Reply::err(format!(
        "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {why}"
    )))
}

/// Records a refusal in ACL LOG; the error text Redis answers it with outside EXEC.
fn log_denied(
    session: &Session,
    shared: &Shared,
    user: &acl::User,
    spec: &CommandSpec,
    argv: &[Bytes],
    denied: Denied,
    context: &'static str,
) -> String {
    let fullname = AclCommands::get().list[AclCommands::get().id_of(spec, argv)]
        .fullname
        .clone();
    let (reason, object, reply) = match denied {
        Denied::Command => (
            "command",
            fullname.clone().into_bytes(),
            format!("NOPERM this user has no permissions to run the '{fullname}' command"),
        ),
        Denied::Key(i) => (
            "key",
            argv[i].to_vec(),
            "NOPERM this user has no permissions to access one of the keys used as arguments"
                .into(),
        ),
        Denied::Channel(i) => (
            "channel",
            argv[i].to_vec(),
            "NOPERM this user has no permissions to access one of the channels used as arguments"
                .into(),
        ),
    };
    shared.acl.log(LogEntry {
        count: 1,
        reason,
        context,
        object,
        username: user.name.clone(),
        at_ms: super::now_ms(),
        client_info: client_info(session),
    });
    reply
}

fn client_info(session: &Session) -> String {
    super::connection::client_info_line(&session.info())
}

/// Checks `user`/`pass` and, if they match, runs the connection as that user; the failure is
/// recorded in ACL LOG.
fn authenticate(
    session: &mut Session,
    shared: &Shared,
    command: &[u8],
    user: &[u8],
    pass: &[u8],
) -> bool {
    let generation = shared.acl.generation();
    let name = String::from_utf8_lossy(user);
    match shared.acl.user(&name) {
        Some(u) if u.accepts(pass) => {
            session.set_user(u, generation);
            true
        }
        _ => {
            let username = name.into_owned();
            shared.acl.log(LogEntry {
                count: 1,
                reason: "auth",
                context: if session.multi.is_some() {
                    "multi"
                } else {
                    "toplevel"
                },
                object: command.to_vec(),
                username,
                at_ms: super::now_ms(),
                client_info: client_info(session),
            });
            false
        }
    }
}

fn auth(s: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    if argv.len() > 3 {
        return Reply::err(super::ERR_SYNTAX);
    }
    let (user, pass): (&[u8], &[u8]) = if argv.len() == 2 {
        if shared.acl.user("default").is_some_and(|d| d.nopass) {
            return Reply::err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
        }
        (b"default", &argv[1])
    } else {
        (&argv[1], &argv[2])
    };
    if authenticate(s, shared, &argv[0], user, pass) {
        Reply::ok()
    } else {
        Reply::err(WRONGPASS)
    }
}

/// HELLO's `AUTH user pass`: WRONGPASS, or the connection runs as that user.
pub fn hello_auth(
    s: &mut Session,
    shared: &Shared,
    command: &[u8],
    user: &[u8],
    pass: &[u8],
) -> Result<(), Reply> {
    if authenticate(s, shared, command, user, pass) {
        Ok(())
    } else {
        Err(Reply::err(WRONGPASS))
    }
}

/// The internal write an ACL or CONFIG command is, if it is one: `Ok(Some(argv))` to
/// propose, `Err` for a refusal found before proposing, `Ok(None)` for a local command.
pub fn as_write(shared: &Shared, argv: &[Bytes]) -> Result<Option<Vec<Bytes>>, Reply> {
    let name = upper(&argv[0]);
    let sub = argv.get(1).map(|a| upper(a)).unwrap_or_default();
    let internal = |rest: &[Bytes]| -> Vec<Bytes> {
        let mut v = vec![Bytes::from_static(b"rockraft.acl")];
        v.extend_from_slice(rest);
        v
    };
    match (name.as_str(), sub.as_str()) {
        ("ACL", "SETUSER") => {
            if argv[2].iter().any(|c| c.is_ascii_whitespace() || *c == 0) {
                return Err(Reply::err(
                    "ERR Usernames can't contain spaces or null characters",
                ));
            }
            // Refused rules are answered here, with nothing proposed; the apply checks again
            // against the user as it is then.
            let name = String::from_utf8_lossy(&argv[2]).into_owned();
            let mut u = shared
                .acl
                .user(&name)
                .map_or_else(|| User::new(&name), |u| (*u).clone());
            u.apply_rules(&argv[3..])
                .map_err(|e| Reply::err(format!("ERR {e}")))?;
            Ok(Some(internal(&argv[1..])))
        }
        ("ACL", "DELUSER") => {
            if argv[2..].iter().any(|n| &n[..] == b"default") {
                return Err(Reply::err("ERR The 'default' user cannot be removed"));
            }
            Ok(Some(internal(&argv[1..])))
        }
        ("ACL", "LOAD") => {
            let Some(path) = &shared.config.aclfile else {
                return Err(Reply::err(NO_ACLFILE));
            };
            let text = std::fs::read(path).map_err(|e| {
                Reply::err(format!(
                    "ERR Error loading ACLs, opening file '{}': {e}",
                    path.display()
                ))
            })?;
            acl::parse_file(&text, &path.display().to_string())
                .map_err(|e| Reply::err(format!("ERR {e}")))?;
            Ok(Some(internal(&[argv[1].clone(), Bytes::from(text)])))
        }
        ("CONFIG", "SET") if argv.len() == 4 && argv[2].eq_ignore_ascii_case(b"requirepass") => {
            Ok(Some(internal(&[
                Bytes::from_static(b"REQUIREPASS"),
                argv[3].clone(),
            ])))
        }
        _ => Ok(None),
    }
}

const NO_ACLFILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

fn acl_local(s: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    let sub = upper(&argv[1]);
    let cmds = AclCommands::get();
    match sub.as_str() {
        "WHOAMI" => Reply::bulk(
            s.user
                .as_ref()
                .map_or("default".to_string(), |u| u.name.clone()),
        ),
        "USERS" => Reply::Array(
            shared
                .acl
                .users()
                .map
                .keys()
                .map(|n| Reply::bulk(n.clone()))
                .collect(),
        ),
        "LIST" => Reply::Array(
            shared
                .acl
                .users()
                .map
                .iter()
                .map(|(n, u)| {
                    let mut line = format!("user {n} ").into_bytes();
                    line.extend_from_slice(&u.describe(true));
                    Reply::Bulk(Bytes::from(line))
                })
                .collect(),
        ),
        "GETUSER" => {
            let Some(u) = shared.acl.user(&String::from_utf8_lossy(&argv[2])) else {
                return Reply::Nil;
            };
            let field = |k: &str| Reply::bulk(k.to_string());
            Reply::Map(vec![
                (
                    field("flags"),
                    Reply::Set(u.flags().into_iter().map(Reply::bulk).collect()),
                ),
                (
                    field("passwords"),
                    Reply::Array(u.passwords.iter().map(|p| Reply::bulk(p.clone())).collect()),
                ),
                (field("commands"), Reply::bulk(u.command_rules(true))),
                (field("keys"), Reply::Bulk(Bytes::from(u.keys_text()))),
                (field("channels"), Reply::Bulk(Bytes::from(u.channels_text()))),
                (
                    field("selectors"),
                    Reply::Array(
                        u.selectors
                            .iter()
                            .map(|s| {
                                Reply::Map(vec![
                                    (field("commands"), Reply::bulk(s.command_rules(true))),
                                    (field("keys"), Reply::Bulk(Bytes::from(s.keys_text()))),
                                    (
                                        field("channels"),
                                        Reply::Bulk(Bytes::from(s.channels_text())),
                                    ),
                                ])
                            })
                            .collect(),
                    ),
                ),
            ])
        }
        "CAT" if argv.len() == 2 => {
            Reply::Array(CATEGORIES.iter().map(|c| Reply::bulk(*c)).collect())
        }
        "CAT" if argv.len() == 3 => {
            let cat = String::from_utf8_lossy(&argv[2]).to_ascii_lowercase();
            let Some(j) = CATEGORIES.iter().position(|c| *c == cat) else {
                let shown: String = String::from_utf8_lossy(&argv[2]).chars().take(128).collect();
                return Reply::err(format!("ERR Unknown category '{shown}'"));
            };
            Reply::Array(
                cmds.list
                    .iter()
                    .filter(|c| c.categories & (1 << j) != 0)
                    .map(|c| Reply::bulk(c.fullname.clone()))
                    .collect(),
            )
        }
        "GENPASS" if argv.len() <= 3 => {
            let bits = match argv.get(2) {
                None => 256,
                Some(b) => match super::int_arg(b) {
                    Ok(n) => n,
                    Err(e) => return e,
                },
            };
            if bits <= 0 || bits > 4096 {
                return Reply::err("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096");
            }
            let chars = (bits as usize).div_ceil(4);
            let mut bytes = vec![0u8; chars.div_ceil(2)];
            rand::Rng::fill(&mut rand::rng(), &mut bytes[..]);
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            Reply::bulk(hex[..chars].to_string())
        }
        "LOG" if argv.len() <= 3 => {
            let mut count = 10usize;
            if let Some(a) = argv.get(2) {
                if a.eq_ignore_ascii_case(b"reset") {
                    shared.acl.log_reset();
                    return Reply::ok();
                }
                match super::int_arg(a) {
                    Ok(n) => count = n.max(0) as usize,
                    Err(e) => return e,
                }
            }
            let now = super::now_ms();
            Reply::Array(
                shared
                    .acl
                    .log_entries(count)
                    .into_iter()
                    .map(|e| {
                        let field = |k: &str| Reply::bulk(k.to_string());
                        Reply::Map(vec![
                            (field("count"), Reply::Int(e.count as i64)),
                            (field("reason"), field(e.reason)),
                            (field("context"), field(e.context)),
                            (field("object"), Reply::Bulk(Bytes::from(e.object))),
                            (field("username"), Reply::bulk(e.username)),
                            (
                                field("age-seconds"),
                                Reply::Double(now.saturating_sub(e.at_ms) as f64 / 1000.0),
                            ),
                            (field("client-info"), Reply::bulk(e.client_info)),
                        ])
                    })
                    .collect(),
            )
        }
        "DRYRUN" => {
            let name = String::from_utf8_lossy(&argv[2]).into_owned();
            let Some(u) = shared.acl.user(&name) else {
                return Reply::err(format!("ERR User '{name}' not found"));
            };
            let call = &argv[3..];
            let Some(spec) = super::lookup(&call[0]) else {
                return Reply::err(format!(
                    "ERR Command '{}' not found",
                    String::from_utf8_lossy(&call[0])
                ));
            };
            let id = cmds.id_of(spec, call);
            if !spec.arity_ok(call.len()) {
                return Reply::err(format!(
                    "ERR wrong number of arguments for '{}' command",
                    cmds.list[id].fullname
                ));
            }
            match u.check(spec, call) {
                Ok(()) => Reply::ok(),
                Err(Denied::Command) => Reply::bulk(format!(
                    "This user has no permissions to run the '{}' command",
                    cmds.list[id].fullname
                )),
                Err(Denied::Key(i)) => Reply::bulk(format!(
                    "This user has no permissions to access the '{}' key",
                    String::from_utf8_lossy(&call[i])
                )),
                Err(Denied::Channel(i)) => Reply::bulk(format!(
                    "This user has no permissions to access the '{}' channel",
                    String::from_utf8_lossy(&call[i])
                )),
            }
        }
        "SAVE" => {
            let Some(path) = &shared.config.aclfile else {
                return Reply::err(NO_ACLFILE);
            };
            let text = acl::file_text(&shared.acl.users());
            let tmp = path.with_extension("tmp");
            let saved = std::fs::write(&tmp, &text).and_then(|()| std::fs::rename(&tmp, path));
            match saved {
                Ok(()) => Reply::ok(),
                Err(e) => {
                    tracing::warn!("ACL SAVE to {}: {e}", path.display());
                    Reply::err("ERR There was an error trying to save the ACLs. Please check the server logs for more information")
                }
            }
        }
        "LOAD" => Reply::err(NO_ACLFILE),
        "HELP" => super::help_reply(&[
            "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CAT [<category>]",
            "    List all commands that belong to <category>, or all command categories",
            "    when no category is specified.",
            "DELUSER <username> [<username> ...]",
            "    Delete a list of users.",
            "DRYRUN <username> <command> [<arg> ...]",
            "    Returns whether the user can execute the given command without executing the command.",
            "GETUSER <username>",
            "    Get the user's details.",
            "GENPASS [<bits>]",
            "    Generate a secure 256-bit user password. The optional `bits` argument can",
            "    be used to specify a different size.",
            "LIST",
            "    Show users details in config file format.",
            "LOAD",
            "    Reload users from the ACL file.",
            "LOG [<count> | RESET]",
            "    Show the ACL log entries.",
            "SAVE",
            "    Save the current config to the ACL file.",
            "SETUSER <username> <attribute> [<attribute> ...]",
            "    Create or modify a user with the specified attributes.",
            "USERS",
            "    List all the registered usernames.",
            "WHOAMI",
            "    Return the current connection username.",
            "HELP",
            "    Prints this help.",
        ]),
        _ => Reply::err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try ACL HELP.",
            String::from_utf8_lossy(&argv[1])
        )),
    }
}

/// `--requirepass` on a node that leads a cluster with no default user of its own yet: the
/// password is proposed as the cluster's (once; `CONFIG SET requirepass` changes it later).
pub async fn seed_requirepass(
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::broadcast::Receiver<()>,
) {
    let Some(pass) = shared.config.requirepass.clone() else {
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = shutdown.recv() => return,
        }
        if shared.db.users().iter().any(|(n, _)| n == "default") {
            let stored = shared.db.view().script_entry(acl::REQUIREPASS_KEY);
            if stored.as_deref() != Some(pass.as_bytes()) {
                tracing::warn!(
                    "--requirepass differs from the cluster's password, which is enforced; CONFIG SET requirepass changes it"
                );
            }
            return;
        }
        if !shared.group.status().is_leader() {
            continue;
        }
        let argv = [
            Bytes::from_static(b"rockraft.acl"),
            Bytes::from_static(b"REQUIREPASS"),
            Bytes::from(pass.clone()),
        ];
        let proposal = shared
            .group
            .propose(super::now_ms(), crate::state_machine::encode_command(&argv));
        match tokio::time::timeout(Duration::from_secs(10), proposal).await {
            Ok(Ok(_)) => {
                tracing::info!("--requirepass is now the cluster's password");
                return;
            }
            _ => continue,
        }
    }
}
