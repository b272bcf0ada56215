//! Server commands: INFO CONFIG COMMAND DBSIZE FLUSHDB FLUSHALL TIME.
//!
//! ```text
//! INFO [section …]            sections: server clients memory persistence stats replication
//!                             keyspace raft cluster (default: all of them), all, everything
//! CONFIG GET pattern [pattern …] | SET parameter value | RESETSTAT | HELP
//! COMMAND [COUNT | LIST | INFO [name …] | DOCS [name …] | GETKEYS cmd [arg …]]
//! FLUSHALL [ASYNC | SYNC]
//! RRBACKUP directory          a consistent copy of this node's store (RocksDB checkpoint)
//! WAIT numreplicas timeout    how many replicas hold this connection's writes
//! ```

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use rockraft_resp::Reply;

use super::flags::{self, ADMIN, FAST, LOADING, NOSCRIPT, NO_MULTI, READONLY, STALE, WRITE};
use super::{
    lookup, spec, table, unknown_subcommand, upper, wrong_arity, CommandSpec, Kind, ReadCtx,
    ERR_SYNTAX,
};
use crate::db::Txn;
use crate::glob::glob_match;
use crate::session::Session;
use crate::Shared;

pub fn commands() -> Vec<CommandSpec> {
    use Kind::{Local, Read, Write};
    let g = "server";
    vec![
        spec(
            "shutdown",
            -1,
            ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI,
            (0, 0, 0),
            g,
            "Synchronously saves the database(s) to disk and shuts down the Redis server.",
            Local(shutdown),
        ),
        spec(
            "slowlog",
            -2,
            0,
            (0, 0, 0),
            g,
            "A container for slow log commands.",
            Local(|_, shared, argv| crate::slowlog::command(&shared.slowlog, argv)),
        )
        .subcommands(&[("GET", -2), ("LEN", 2), ("RESET", 2), ("HELP", 2)]),
        spec(
            "latency",
            -2,
            0,
            (0, 0, 0),
            g,
            "A container for latency diagnostics commands.",
            Local(|_, shared, argv| {
                let stats = &shared.command_stats;
                crate::latency::command(
                    &stats.latency,
                    argv,
                    &|name| stats.histograms(name),
                    shared.slowlog.slower_than.load(Ordering::Relaxed),
                )
            }),
        )
        .subcommands(&[
            ("DOCTOR", 2),
            ("GRAPH", 3),
            ("HISTORY", 3),
            ("LATEST", 2),
            ("RESET", -2),
            ("HISTOGRAM", -2),
            ("HELP", 2),
        ]),
        spec(
            "lolwut",
            -1,
            READONLY | FAST,
            (0, 0, 0),
            g,
            "Displays computer art and the Redis version",
            Local(lolwut),
        ),
        spec(
            "save",
            1,
            ADMIN | NOSCRIPT | NO_MULTI,
            (0, 0, 0),
            g,
            "Synchronously saves the database(s) to disk.",
            Kind::Async(save),
        ),
        spec(
            "bgsave",
            -1,
            ADMIN | NOSCRIPT,
            (0, 0, 0),
            g,
            "Asynchronously saves the database(s) to disk.",
            Kind::Async(bgsave),
        ),
        spec(
            "role",
            1,
            NOSCRIPT | LOADING | STALE | FAST,
            (0, 0, 0),
            g,
            "Returns the replication role.",
            Local(role),
        ),
        spec(
            "lastsave",
            1,
            LOADING | STALE | FAST,
            (0, 0, 0),
            g,
            "Returns the Unix timestamp of the last successful save to disk.",
            Local(lastsave),
        ),
        spec(
            "bgrewriteaof",
            1,
            ADMIN | NOSCRIPT,
            (0, 0, 0),
            g,
            "Asynchronously rewrites the append-only file to disk.",
            Local(bgrewriteaof),
        ),
        spec(
            "replicaof",
            3,
            ADMIN | NOSCRIPT | STALE,
            (0, 0, 0),
            g,
            "Configures a server as replica of another, or promotes it to a master.",
            Local(not_in_raft),
        ),
        spec(
            "slaveof",
            3,
            ADMIN | NOSCRIPT | STALE,
            (0, 0, 0),
            g,
            "Sets a Redis server as a replica of another, or promotes it to being a master.",
            Local(not_in_raft),
        ),
        spec(
            "sync",
            1,
            ADMIN | NOSCRIPT | NO_MULTI,
            (0, 0, 0),
            g,
            "An internal command used in replication.",
            Local(not_in_raft),
        ),
        spec(
            "psync",
            -3,
            ADMIN | NOSCRIPT | NO_MULTI,
            (0, 0, 0),
            g,
            "An internal command used in replication.",
            Local(not_in_raft),
        ),
        spec(
            "failover",
            -1,
            ADMIN | NOSCRIPT | STALE,
            (0, 0, 0),
            g,
            "Starts a coordinated failover from a server to one of its replicas.",
            Local(not_in_raft),
        ),
        spec(
            "wait",
            3,
            NOSCRIPT,
            (0, 0, 0),
            "generic",
            "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.",
            Kind::Async(wait),
        ),
        spec(
            "info",
            -1,
            LOADING | STALE,
            (0, 0, 0),
            g,
            "Returns information and statistics about the server.",
            Local(info),
        ),
        spec(
            "config",
            -2,
            ADMIN | NOSCRIPT | LOADING | STALE,
            (0, 0, 0),
            g,
            "A container for server configuration commands.",
            Local(config),
        )
        .lists_subcommands(&[
            ("GET", -3),
            ("HELP", 2),
            ("RESETSTAT", 2),
            ("REWRITE", 2),
            ("SET", -4),
        ]),
        spec(
            "command",
            -1,
            LOADING | STALE,
            (0, 0, 0),
            g,
            "Returns detailed information about all commands.",
            Local(command),
        )
        .lists_subcommands(&[
            ("COUNT", 2),
            ("DOCS", -2),
            ("GETKEYS", -4),
            ("GETKEYSANDFLAGS", -4),
            ("HELP", 2),
            ("INFO", -2),
            ("LIST", -2),
        ]),
        spec(
            "dbsize",
            1,
            READONLY | FAST,
            (0, 0, 0),
            g,
            "Returns the number of keys in the database.",
            Read(dbsize),
        ),
        spec(
            "flushdb",
            -1,
            WRITE,
            (0, 0, 0),
            g,
            "Remove all keys from the current database.",
            Write {
                prepare: prepare_flush,
                apply: apply_flush,
            },
        ),
        spec(
            "flushall",
            -1,
            WRITE,
            (0, 0, 0),
            g,
            "Removes all keys from all databases.",
            Write {
                prepare: prepare_flush,
                apply: apply_flush,
            },
        ),
        spec(
            "time",
            1,
            LOADING | STALE | FAST,
            (0, 0, 0),
            g,
            "Returns the server time.",
            Local(time),
        ),
        spec(
            "debug",
            -2,
            ADMIN | NOSCRIPT | LOADING | STALE,
            (0, 0, 0),
            g,
            "A container for debugging commands.",
            Local(debug),
        ),
        spec(
            "rrbackup",
            2,
            ADMIN | NOSCRIPT,
            (0, 0, 0),
            g,
            "Writes a consistent copy of this node's store (a RocksDB checkpoint) to a new directory on the node's host; replies with the applied index it holds.",
            Kind::Async(rrbackup),
        ),
    ]
}

fn rrbackup(
    shared: std::sync::Arc<Shared>,
    argv: Vec<Bytes>,
    _caller: super::Caller,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>> {
    Box::pin(async move {
        let dir = std::path::PathBuf::from(String::from_utf8_lossy(&argv[1]).into_owned());
        if !dir.is_absolute() {
            return Reply::err("ERR the backup directory must be an absolute path");
        }
        if dir.exists() {
            return Reply::err(format!("ERR {} already exists", dir.display()));
        }
        let engine = shared.db.engine().clone();
        let made = tokio::task::spawn_blocking(move || {
            rockraft_raftstore::snap::checkpoint(&engine, crate::DATA_GROUP_ID, &dir)
                .map(|(_, meta, _)| meta.index)
        })
        .await;
        match made {
            Ok(Ok(index)) => {
                tracing::info!(applied_index = index, "backup written");
                Reply::bulk(format!("applied_index:{index}"))
            }
            Ok(Err(e)) => Reply::err(format!("ERR backup failed: {e}")),
            Err(e) => Reply::err(format!("ERR backup failed: {e}")),
        }
    })
}

/// Where SAVE and BGSAVE put the node's checkpoint (RRBACKUP's, replaced each time).
fn save_dir(shared: &Shared) -> std::path::PathBuf {
    shared.config.data_dir.join("save")
}

/// Writes a checkpoint of the node to `<data-dir>/save` (a new one replaces the last one only
/// once it is complete) and records its time for LASTSAVE.
fn checkpoint(shared: &Shared) -> Result<u64, String> {
    let dir = save_dir(shared);
    let tmp = shared.config.data_dir.join("save.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    let (_, meta, _) =
        rockraft_raftstore::snap::checkpoint(shared.db.engine(), crate::DATA_GROUP_ID, &tmp)
            .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    shared.last_save.store(now, Ordering::Relaxed);
    tracing::info!(applied_index = meta.index, dir = %dir.display(), "checkpoint saved");
    Ok(meta.index)
}

/// SAVE: a checkpoint of the node now (every acknowledged write is already durable in the raft
/// log; this is a copy an operator can take away, as RRBACKUP makes).
fn save(
    shared: std::sync::Arc<Shared>,
    _: Vec<Bytes>,
    _caller: super::Caller,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>> {
    Box::pin(async move {
        // One save at a time (they write the same directory).
        if shared
            .bgsave_running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Reply::err("ERR Background save already in progress");
        }
        let node = shared.clone();
        let made = tokio::task::spawn_blocking(move || checkpoint(&node)).await;
        shared.bgsave_running.store(false, Ordering::Release);
        match made {
            Ok(Ok(_)) => Reply::ok(),
            Ok(Err(e)) => Reply::err(format!("ERR {e}")),
            Err(e) => Reply::err(format!("ERR {e}")),
        }
    })
}

/// BGSAVE [SCHEDULE]: the same checkpoint in the background.
fn bgsave(
    shared: std::sync::Arc<Shared>,
    argv: Vec<Bytes>,
    _caller: super::Caller,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>> {
    Box::pin(async move {
        let schedule = match argv.get(1).map(|a| upper(a)) {
            None if argv.len() == 1 => false,
            Some(a) if a == "SCHEDULE" && argv.len() == 2 => true,
            _ => return Reply::err(ERR_SYNTAX),
        };
        if shared
            .bgsave_running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return if schedule {
                Reply::Simple("Background saving scheduled".into())
            } else {
                Reply::err("ERR Background save already in progress")
            };
        }
        let node = shared.clone();
        tokio::task::spawn_blocking(move || {
            let ok = checkpoint(&node);
            if let Err(e) = &ok {
                tracing::warn!("background save failed: {e}");
            }
            node.bgsave_failed.store(ok.is_err(), Ordering::Relaxed);
            node.bgsave_running.store(false, Ordering::Release);
        });
        Reply::Simple("Background saving started".into())
    })
}

fn dbsize(ctx: &ReadCtx, _: &[Bytes]) -> Reply {
    let mut n = 0i64;
    ctx.for_each_key(&[], |_, _| {
        n += 1;
        true
    });
    Reply::Int(n)
}

fn prepare_flush(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    match argv.len() {
        1 => Ok(None),
        2 if matches!(upper(&argv[1]).as_str(), "ASYNC" | "SYNC") => Ok(None),
        _ => Err(Reply::err(ERR_SYNTAX)),
    }
}

fn apply_flush(txn: &mut Txn, _: &[Bytes]) -> Reply {
    txn.flush();
    Reply::ok()
}

/// DEBUG DIGEST: a digest of this node's data (see `Db::digest`), to compare replicas.
fn debug(_: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    match upper(&argv[1]).as_str() {
        "DIGEST" if argv.len() == 2 => Reply::Simple(shared.db.digest()),
        "DIGEST" => wrong_arity("debug|digest"),
        "HELP" => super::help_reply(&[
            "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DIGEST",
            "    Output a hex signature representing the current DB content.",
            "HELP",
            "    Prints this help.",
        ]),
        _ => unknown_subcommand("debug", &argv[1]),
    }
}

fn time(_: &mut Session, _: &Shared, _: &[Bytes]) -> Reply {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Reply::Array(vec![
        Reply::bulk(now.as_secs().to_string()),
        Reply::bulk(now.subsec_micros().to_string()),
    ])
}

const DEFAULT_SECTIONS: [&str; 10] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "errorstats",
    "keyspace",
    "raft",
    "cluster",
];

fn info(_: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    let wanted: Vec<String> = argv[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| matches!(w.as_str(), "all" | "everything" | "default"));
    // `all` and `everything` add what the default leaves out (Redis's rule).
    let more = wanted
        .iter()
        .any(|w| matches!(w.as_str(), "all" | "everything"));
    let mut out = String::new();
    // Redis's order: commandstats, errorstats, latencystats (only the middle one by default).
    let every = DEFAULT_SECTIONS[..6]
        .iter()
        .chain(&["commandstats"])
        .chain(&DEFAULT_SECTIONS[6..7])
        .chain(&["latencystats"])
        .chain(&DEFAULT_SECTIONS[7..]);
    for section in every {
        let listed = wanted.iter().any(|w| w == section);
        let default = DEFAULT_SECTIONS.contains(section);
        if listed || (all && default) || more {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            info_section(shared, section, &mut out);
        }
    }
    Reply::Verbatim(out)
}

/// The process's resident memory, in bytes.
pub fn rss() -> u64 {
    rss_bytes()
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.2}G", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.2}M", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.2}K", b as f64 / 1024.0),
        b => format!("{b}B"),
    }
}

fn info_section(shared: &Shared, section: &str, out: &mut String) {
    let status = shared.group.status();
    let leader = status.is_leader();
    let mut title = section.to_string();
    title[..1].make_ascii_uppercase();
    let _ = write!(out, "# {title}\r\n");
    match section {
        "commandstats" => return shared.command_stats.commandstats(out),
        "errorstats" => return shared.command_stats.errorstats(out),
        "latencystats" => return shared.command_stats.latencystats(out),
        _ => {}
    }
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(out, "{k}:{v}\r\n");
    };
    match section {
        "server" => {
            let uptime = shared.started.elapsed().as_secs();
            let now_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            kv("redis_version", &crate::REDIS_VERSION);
            kv("rockraft_version", &env!("CARGO_PKG_VERSION"));
            kv("redis_git_sha1", &"00000000");
            kv("redis_git_dirty", &0);
            kv("redis_mode", &"cluster");
            kv(
                "os",
                &format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            );
            kv("arch_bits", &(usize::BITS));
            kv("multiplexing_api", &"epoll");
            kv("process_id", &std::process::id());
            kv("run_id", &shared.run_id);
            kv("tcp_port", &shared.port);
            kv("server_time_usec", &now_us);
            kv("uptime_in_seconds", &uptime);
            kv("uptime_in_days", &(uptime / 86400));
            kv("hz", &10);
            kv(
                "executable",
                &std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            );
            kv("config_file", &"");
        }
        "clients" => {
            kv("connected_clients", &shared.clients.count());
            kv(
                "maxclients",
                &shared.runtime.maxclients.load(Ordering::Relaxed),
            );
            kv("blocked_clients", &shared.blocked.count());
        }
        "memory" => {
            let rss = rss_bytes();
            kv("used_memory", &rss);
            kv("used_memory_human", &human_bytes(rss));
            kv("used_memory_rss", &rss);
            kv("used_memory_rss_human", &human_bytes(rss));
            kv("maxmemory", &0);
            kv("maxmemory_human", &"0B");
            kv("maxmemory_policy", &"noeviction");
        }
        "persistence" => {
            kv("loading", &0);
            kv("async_loading", &0);
            kv("rdb_changes_since_last_save", &0);
            kv(
                "rdb_bgsave_in_progress",
                &u8::from(shared.bgsave_running.load(Ordering::Relaxed)),
            );
            kv(
                "rdb_last_save_time",
                &shared.last_save.load(Ordering::Relaxed),
            );
            kv(
                "rdb_last_bgsave_status",
                &if shared.bgsave_failed.load(Ordering::Relaxed) {
                    "err"
                } else {
                    "ok"
                },
            );
            kv("aof_enabled", &1);
            kv("aof_rewrite_in_progress", &0);
            kv("aof_last_bgrewrite_status", &"ok");
            kv("aof_last_write_status", &"ok");
            kv("rockraft_durability", &"raft-log-fsync");
            kv("rockraft_data_dir", &shared.config.data_dir.display());
        }
        "stats" => {
            let s = &shared.stats;
            kv(
                "total_connections_received",
                &s.connections_received.load(Ordering::Relaxed),
            );
            kv(
                "total_commands_processed",
                &s.commands_processed.load(Ordering::Relaxed),
            );
            kv(
                "rejected_connections",
                &s.rejected_connections.load(Ordering::Relaxed),
            );
            kv("expired_keys", &s.expired_keys.load(Ordering::Relaxed));
            kv("total_error_replies", &shared.command_stats.total_errors());
        }
        "replication" => {
            let applied = status.applied_index.load(Ordering::Acquire);
            let members = status.members();
            if leader {
                let last = status.last_index.load(Ordering::Acquire);
                let followers: Vec<_> = members
                    .progress
                    .iter()
                    .filter(|p| p.0 != shared.node_id)
                    .collect();
                kv("role", &"master");
                kv("connected_slaves", &followers.len());
                for (i, (id, matched, active)) in followers.iter().enumerate() {
                    let (host, port) = shared
                        .book
                        .get(*id)
                        .map_or((String::new(), 0), |n| (n.host, n.port));
                    let learner = members.learners.contains(id);
                    let state = match (active, learner) {
                        (false, _) => "offline",
                        (true, true) => "learner",
                        (true, false) => "online",
                    };
                    // lag: how many log entries the follower is behind the leader.
                    kv(
                        &format!("slave{i}"),
                        &format!(
                            "ip={host},port={port},state={state},offset={matched},lag={}",
                            last.saturating_sub(*matched)
                        ),
                    );
                }
            } else {
                kv("role", &"slave");
                let leader_info = status.leader().and_then(|l| shared.book.get(l));
                let (host, port) = leader_info
                    .as_ref()
                    .map_or((String::from("?"), 0), |n| (n.host.clone(), n.port));
                kv("master_host", &host);
                kv("master_port", &port);
                let up = leader_info.is_some_and(|n| shared.network.is_connected(n.node_id));
                kv("master_link_status", &if up { "up" } else { "down" });
                // A learner is still catching up and will not take over until promoted.
                let learner = members.learners.contains(&shared.node_id);
                kv("master_sync_in_progress", &u8::from(learner));
                kv("slave_repl_offset", &applied);
                kv("slave_priority", &if learner { 0 } else { 100 });
                kv("connected_slaves", &0);
            }
            kv(
                "master_replid",
                &format!("{:040x}", shared.network.cluster_id()),
            );
            kv("master_repl_offset", &applied);
        }
        "keyspace" => {
            let (keys, expires) = shared.db.count(super::now_ms());
            if keys > 0 {
                kv("db0", &format!("keys={keys},expires={expires},avg_ttl=0"));
            }
        }
        "raft" => {
            let role = format!("{:?}", status.role()).to_ascii_lowercase();
            kv("raft_node_id", &shared.node_id);
            kv("raft_cluster_id", &shared.network.cluster_id());
            kv("raft_group_id", &shared.group.group_id());
            kv("raft_role", &role);
            kv("raft_term", &status.term.load(Ordering::Acquire));
            kv("raft_leader_id", &status.leader_id.load(Ordering::Acquire));
            kv(
                "raft_commit_index",
                &status.commit_index.load(Ordering::Acquire),
            );
            kv(
                "raft_applied_index",
                &status.applied_index.load(Ordering::Acquire),
            );
            kv(
                "raft_last_index",
                &status.last_index.load(Ordering::Acquire),
            );
            let members = status.members();
            kv("raft_voters", &members.voters.len());
            kv(
                "raft_foreign_messages_dropped",
                &shared.network.dropped_foreign(),
            );
            kv("raft_bus_auth_failures", &shared.network.auth_failures());
            kv("raft_learners", &members.learners.len());
            let membership = if members.voters.contains(&shared.node_id) {
                "voter"
            } else if members.learners.contains(&shared.node_id) {
                "learner"
            } else {
                "none"
            };
            kv("raft_membership", &membership);
            kv(
                "raft_first_index",
                &status.first_index.load(Ordering::Acquire),
            );
            kv(
                "raft_log_entries",
                &status.log_entries.load(Ordering::Acquire),
            );
            kv("raft_log_bytes", &status.log_bytes.load(Ordering::Acquire));
            kv(
                "raft_snapshots_installed",
                &status.snapshots_installed.load(Ordering::Relaxed),
            );
            kv("raft_snapshots_sent", &shared.network.snapshots_sent());
            let engine = shared.db.engine();
            kv("raft_log_file_bytes", &engine.raft_log_bytes());
            kv(
                "rocksdb_data_sst_bytes",
                &engine.cf_sst_bytes(rockraft_raftstore::keys::CF_DATA),
            );
        }
        "cluster" => kv("cluster_enabled", &1),
        _ => {}
    }
}

/// The TLS certificate or key file parameter (settable when the node has a TLS port).
fn tls_file(
    shared: &Shared,
    name: &'static str,
    pick: fn((std::path::PathBuf, std::path::PathBuf)) -> std::path::PathBuf,
) -> (&'static str, String, bool) {
    let value = shared
        .tls_certs
        .as_ref()
        .map(|t| pick(t.files()).display().to_string())
        .unwrap_or_default();
    (name, value, shared.tls_certs.is_some())
}

/// One CONFIG parameter: its value now, and whether CONFIG SET may change it.
fn config_params(shared: &Shared) -> Vec<(&'static str, String, bool)> {
    let c = &shared.config;
    let r = &shared.runtime;
    vec![
        ("bind", c.bind.clone(), false),
        ("port", shared.port.to_string(), false),
        ("dir", c.data_dir.display().to_string(), false),
        ("databases", "1".into(), false),
        ("save", String::new(), false),
        // Every acknowledged write is in a synced raft log: the equivalent of AOF "always".
        ("appendonly", "yes".into(), false),
        ("appendfsync", "always".into(), false),
        ("cluster-enabled", "yes".into(), false),
        (
            "maxclients",
            r.maxclients.load(Ordering::Relaxed).to_string(),
            true,
        ),
        (
            "proto-max-bulk-len",
            r.proto_max_bulk_len.load(Ordering::Relaxed).to_string(),
            true,
        ),
        (
            "slowlog-log-slower-than",
            shared
                .slowlog
                .slower_than
                .load(Ordering::Relaxed)
                .to_string(),
            true,
        ),
        (
            "slowlog-max-len",
            shared.slowlog.max_len.load(Ordering::Relaxed).to_string(),
            true,
        ),
        (
            "latency-monitor-threshold",
            shared
                .command_stats
                .latency
                .threshold_ms
                .load(Ordering::Relaxed)
                .to_string(),
            true,
        ),
        ("maxmemory", "0".into(), false),
        ("maxmemory-policy", "noeviction".into(), false),
        ("timeout", "0".into(), false),
        ("tcp-keepalive", "300".into(), false),
        ("hz", "10".into(), false),
        ("loglevel", c.log_level.clone(), false),
        (
            "requirepass",
            String::from_utf8_lossy(&shared.acl.requirepass(&shared.db)).into_owned(),
            true,
        ),
        (
            "protected-mode",
            if r.protected_mode.load(Ordering::Relaxed) {
                "yes"
            } else {
                "no"
            }
            .into(),
            true,
        ),
        ("tls-port", shared.me.tls_port.to_string(), false),
        (
            "tls-cluster",
            if c.tls_cluster { "yes" } else { "no" }.into(),
            false,
        ),
        tls_file(shared, "tls-cert-file", |f| f.0),
        tls_file(shared, "tls-key-file", |f| f.1),
        (
            "aclfile",
            c.aclfile
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            false,
        ),
        (
            "notify-keyspace-events",
            crate::notify::format_flags(shared.notifier.flags.load(Ordering::Relaxed)),
            true,
        ),
    ]
    .into_iter()
    .chain(
        crate::Encodings::PARAMS
            .iter()
            .flat_map(|(name, alias, _)| {
                let v = r
                    .encodings
                    .get(name)
                    .expect("listed")
                    .load(Ordering::Relaxed)
                    .to_string();
                std::iter::once((*name, v.clone(), true)).chain(alias.map(|a| (a, v, true)))
            }),
    )
    .collect()
}

fn config(_: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    let sub = upper(&argv[1]);
    match sub.as_str() {
        "GET" => {
            if argv.len() < 3 {
                return wrong_arity("config|get");
            }
            let params = config_params(shared);
            let mut pairs = Vec::new();
            for (name, value, _) in &params {
                if argv[2..]
                    .iter()
                    .any(|p| glob_match(p, name.as_bytes(), true))
                {
                    pairs.push((Reply::bulk(*name), Reply::bulk(value.clone())));
                }
            }
            Reply::Map(pairs)
        }
        "SET" => {
            if argv.len() < 4 || !argv.len().is_multiple_of(2) {
                return wrong_arity("config|set");
            }
            let params = config_params(shared);
            // A new certificate and key are loaded together, once every pair is read.
            let mut tls_files: Option<(std::path::PathBuf, std::path::PathBuf)> = None;
            for pair in argv[2..].chunks_exact(2) {
                let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
                if let Err(e) = set_param(shared, &params, &name, &pair[1], &mut tls_files) {
                    return e;
                }
            }
            if let (Some((cert, key)), Some(store)) = (tls_files, &shared.tls_certs) {
                if let Err(e) = store.reload(&cert, &key) {
                    tracing::warn!("TLS certificate not reloaded: {e}");
                    return Reply::err("ERR CONFIG SET failed (possibly related to argument 'tls-cert-file') - Unable to update TLS configuration. Check server logs.");
                }
            }
            Reply::ok()
        }
        "RESETSTAT" => {
            shared.stats.reset();
            shared.command_stats.reset();
            Reply::ok()
        }
        "REWRITE" => config_rewrite(shared),
        "HELP" => super::help_reply(&[
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
            "HELP",
            "    Prints this help.",
        ]),
        _ => unknown_subcommand("config", &argv[1]),
    }
}

/// CONFIG SET of one parameter (a certificate or key file is only noted in `tls_files`, for
/// the caller to load the pair together).
fn set_param(
    shared: &Shared,
    params: &[(&'static str, String, bool)],
    name: &str,
    value: &Bytes,
    tls_files: &mut Option<(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<(), Reply> {
    let pair = [Bytes::copy_from_slice(name.as_bytes()), value.clone()];
    match params.iter().find(|(n, _, _)| *n == name) {
                None => {
                    return Err(Reply::err(format!(
                        "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                    )))
                }
                Some((_, _, false)) => {
                    return Err(Reply::err(format!(
                        "ERR CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config"
                    )))
                }
                Some(_) => {}
            }
    if name == "tls-cert-file" || name == "tls-key-file" {
        if let Some(store) = &shared.tls_certs {
            let files = tls_files.get_or_insert_with(|| store.files());
            let path = std::path::PathBuf::from(String::from_utf8_lossy(&pair[1]).into_owned());
            if name == "tls-cert-file" {
                files.0 = path;
            } else {
                files.1 = path;
            }
        }
        return Ok(());
    }
    if name == "requirepass" {
        return Err(Reply::err(
                    "ERR CONFIG SET failed (possibly related to argument 'requirepass') - requirepass goes through the raft log: set it on its own",
                ));
    }
    if name == "protected-mode" {
        let on = match upper(&pair[1]).as_str() {
                    "YES" => true,
                    "NO" => false,
                    _ => {
                        return Err(Reply::err(
                            "ERR CONFIG SET failed (possibly related to argument 'protected-mode') - argument must be 'yes' or 'no'",
                        ))
                    }
                };
        shared.runtime.protected_mode.store(on, Ordering::Relaxed);
        return Ok(());
    }
    if name == "notify-keyspace-events" {
        let Some(flags) = crate::notify::parse_flags(&pair[1]) else {
            return Err(Reply::err(
                        "ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.",
                    ));
        };
        shared.notifier.flags.store(flags, Ordering::Relaxed);
        return Ok(());
    }
    let not_integer = || {
        Reply::err(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - argument couldn't be parsed into an integer"
                ))
    };
    if name == "latency-monitor-threshold" {
        let value = super::parse_i64(&pair[1]).ok_or_else(not_integer)?;
        let Some(value) = Some(value).filter(|v| *v >= 0) else {
            return Err(Reply::err(format!(
                        "ERR CONFIG SET failed (possibly related to argument '{name}') - argument must be between 0 and {} inclusive",
                        i64::MAX
                    )));
        };
        shared
            .command_stats
            .latency
            .threshold_ms
            .store(value, Ordering::Relaxed);
        return Ok(());
    }
    if name == "slowlog-log-slower-than" || name == "slowlog-max-len" {
        let min = if name == "slowlog-max-len" { 0 } else { -1 };
        let value = super::parse_i64(&pair[1]).ok_or_else(not_integer)?;
        let Some(value) = Some(value).filter(|v| *v >= min) else {
            return Err(Reply::err(format!(
                        "ERR CONFIG SET failed (possibly related to argument '{name}') - argument must be between {min} and {} inclusive",
                        i64::MAX
                    )));
        };
        if name == "slowlog-max-len" {
            shared
                .slowlog
                .max_len
                .store(value as u64, Ordering::Relaxed);
            shared.slowlog.trim();
        } else {
            shared.slowlog.slower_than.store(value, Ordering::Relaxed);
        }
        return Ok(());
    }
    let min = crate::Encodings::PARAMS
        .iter()
        .find(|(n, alias, _)| *n == name || *alias == Some(name))
        .map_or(1, |(_, _, min)| *min);
    let Some(value) = super::parse_i64(&pair[1]) else {
        return Err(Reply::err(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - argument couldn't be parsed into an integer"
                )));
    };
    if value < min {
        return Err(Reply::err(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - argument must be between {min} and {} inclusive",
                    i64::MAX
                )));
    }
    if let Some(setting) = shared.runtime.encodings.get(name) {
        setting.store(value, Ordering::Relaxed);
        return Ok(());
    }
    let target = match name {
        "maxclients" => &shared.runtime.maxclients,
        _ => &shared.runtime.proto_max_bulk_len,
    };
    target.store(value as u64, Ordering::Relaxed);
    Ok(())
}

/// The default of each parameter CONFIG SET changes: CONFIG REWRITE appends a setting the
/// file lacks only when it differs from this.
fn param_default(name: &str) -> String {
    match name {
        "maxclients" => "10000".into(),
        "proto-max-bulk-len" => (512u64 << 20).to_string(),
        "slowlog-log-slower-than" => "10000".into(),
        "slowlog-max-len" => "128".into(),
        "latency-monitor-threshold" => "0".into(),
        "protected-mode" => "yes".into(),
        _ => crate::Encodings::default()
            .get(name)
            .map(|v| v.load(Ordering::Relaxed).to_string())
            .unwrap_or_default(),
    }
}

/// CONFIG REWRITE: the settings CONFIG SET changes, written into the configuration file
/// (startup-only lines are left as they are: they cannot have changed).
fn config_rewrite(shared: &Shared) -> Reply {
    let Some(path) = &shared.config.config else {
        return Reply::err("ERR The server is running without a config file");
    };
    let aliases: Vec<(&str, &str)> = crate::Encodings::PARAMS
        .iter()
        .filter_map(|(n, a, _)| a.map(|a| (a, *n)))
        .collect();
    let settings: Vec<(String, String, String)> = config_params(shared)
        .into_iter()
        .filter(|(name, _, mutable)| *mutable && !aliases.iter().any(|(a, _)| a == name))
        .map(|(name, value, _)| (name.to_string(), value, param_default(name)))
        .collect();
    let canon = |n: &str| {
        aliases
            .iter()
            .find(|(a, _)| *a == n)
            .map_or(n.to_string(), |(_, c)| c.to_string())
    };
    match crate::config_file::rewrite(path, &settings, canon) {
        Ok(()) => Reply::ok(),
        Err(e) => {
            tracing::warn!("CONFIG REWRITE of {}: {e}", path.display());
            Reply::err(format!("ERR Rewriting config file: {e}"))
        }
    }
}

/// A setting of the configuration file, applied as the node starts: an error names its line.
pub fn apply_file_setting(
    shared: &Shared,
    s: &crate::config_file::RuntimeSetting,
) -> Result<(), String> {
    let params = config_params(shared);
    set_param(
        shared,
        &params,
        &s.name,
        &Bytes::from(s.value.clone()),
        &mut None,
    )
    .map_err(|e| {
        let text = match e {
            Reply::Error(t) => t,
            _ => "invalid".into(),
        };
        crate::config_file::fatal(&s.file, s.line, &s.text, &text)
    })
}

/// The categories of subcommand `sub` of `container` (lowercase names).
fn sub_categories(container: &str, sub: &str) -> &'static [&'static str] {
    super::acl_table::SUBCOMMANDS
        .iter()
        .find(|(c, s, _)| *c == container && *s == sub)
        .map_or(&["@slow"][..], |(_, _, cats)| cats)
}

/// A subcommand's flags: what its categories say (Redis derives those categories from these
/// flags), and the container's loading, stale and noscript.
fn sub_flags(container: &CommandSpec, cats: &[&str]) -> u32 {
    let mut f = container.flags & (LOADING | STALE | NOSCRIPT);
    for (cat, flag) in [
        ("@write", WRITE),
        ("@read", READONLY),
        ("@admin", ADMIN),
        ("@fast", FAST),
    ] {
        if cats.contains(&cat) {
            f |= flag;
        }
    }
    f
}

fn flag_set(flags: u32) -> Reply {
    Reply::Set(
        flags::NAMES
            .iter()
            .filter(|(f, _)| flags & f != 0)
            .map(|(_, n)| Reply::Simple((*n).into()))
            .collect(),
    )
}

/// Redis 7's key specifications, from the key positions and each key's access: a range from
/// the first key, or `unknown` where a keyword or count locates the keys (COMMAND GETKEYS
/// finds them).
fn key_specs(name: &str, c: &CommandSpec) -> Reply {
    // A container's keys are its subcommands' (OBJECT ENCODING's, not OBJECT's).
    let container = !c.shown_subcommands().is_empty() && !name.contains('|');
    if container || (c.first_key == 0 && c.key_finder.is_none() && c.numkeys_at.is_none()) {
        return Reply::Array(vec![]);
    }
    let access = super::acl_table::key_access(name).unwrap_or(&[super::acl_table::R]);
    let flags = |a: u8| {
        let r = a & super::acl_table::R != 0;
        let w = a & super::acl_table::W != 0;
        let names: &[&str] = match (r, w) {
            (true, true) => &["RW", "access", "update"],
            (false, true) => &["OW", "update"],
            _ => &["RO", "access"],
        };
        Reply::Set(names.iter().map(|n| Reply::Simple((*n).into())).collect())
    };
    let map = |pairs: Vec<(&'static str, Reply)>| {
        Reply::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Reply::bulk(k), v))
                .collect(),
        )
    };
    let unknown = || {
        map(vec![
            ("type", Reply::bulk("unknown")),
            ("spec", map(vec![])),
        ])
    };
    let spec = |index: i64, lastkey: i64, a: u8| {
        map(vec![
            ("flags", flags(a)),
            (
                "begin_search",
                map(vec![
                    ("type", Reply::bulk("index")),
                    ("spec", map(vec![("index", Reply::Int(index))])),
                ]),
            ),
            (
                "find_keys",
                map(vec![
                    ("type", Reply::bulk("range")),
                    (
                        "spec",
                        map(vec![
                            ("lastkey", Reply::Int(lastkey)),
                            ("keystep", Reply::Int(c.step as i64)),
                            ("limit", Reply::Int(0)),
                        ]),
                    ),
                ]),
            ),
        ])
    };
    let (first, last) = (c.first_key as i64, c.last_key as i64);
    let mut specs = Vec::new();
    // A count of keys at `at`, the keys after it (SINTERCARD, EVAL, ZUNIONSTORE's sources).
    if let Some(at) = c.numkeys_at {
        let at = at as i64;
        if first > 0 && first < at {
            specs.push(spec(first, 0, access[0]));
        }
        specs.push(map(vec![
            ("flags", flags(*access.last().expect("an access"))),
            (
                "begin_search",
                map(vec![
                    ("type", Reply::bulk("index")),
                    ("spec", map(vec![("index", Reply::Int(at))])),
                ]),
            ),
            (
                "find_keys",
                map(vec![
                    ("type", Reply::bulk("keynum")),
                    (
                        "spec",
                        map(vec![
                            ("keynumidx", Reply::Int(0)),
                            ("firstkey", Reply::Int(1)),
                            ("keystep", Reply::Int(1)),
                        ]),
                    ),
                ]),
            ),
        ]));
        return Reply::Array(specs);
    }
    if c.key_finder.is_some() {
        return Reply::Array(vec![map(vec![
            ("flags", flags(access[0])),
            ("begin_search", unknown()),
            ("find_keys", unknown()),
        ])]);
    }

    // One spec per listed access; the last covers the keys after it.
    for (i, a) in access.iter().enumerate() {
        let index = first + i as i64 * c.step as i64;
        let final_spec = i + 1 == access.len();
        let lastkey = match (final_spec, last) {
            (false, _) => 0,
            (true, l) if l < 0 => l,
            (true, l) => (l - index).max(0),
        };
        if last >= 0 && index > last {
            break;
        }
        specs.push(spec(index, lastkey, *a));
    }
    Reply::Array(specs)
}

fn tips_reply(name: &str) -> Reply {
    Reply::Set(
        super::tips::of(name)
            .iter()
            .map(|t| Reply::bulk(*t))
            .collect(),
    )
}

/// A `COMMAND INFO` entry in Redis 7's ten-field form (subcommands in the tenth).
fn command_info(c: &CommandSpec) -> Reply {
    let subs = c
        .shown_subcommands()
        .iter()
        .map(|(sub, arity)| {
            let sub = sub.to_ascii_lowercase();
            let cats = sub_categories(c.name, &sub);
            let full = format!("{}|{sub}", c.name);
            // A subcommand that takes keys takes them where the container's table says.
            let keyed = c.first_key > 0 && super::acl_table::key_access(&full).is_some();
            let (first, last, step) = match keyed {
                true => (c.first_key as i64, c.last_key as i64, c.step as i64),
                false => (0, 0, 0),
            };
            Reply::Array(vec![
                Reply::bulk(full.clone()),
                Reply::Int(*arity as i64),
                flag_set(sub_flags(c, cats)),
                Reply::Int(first),
                Reply::Int(last),
                Reply::Int(step),
                Reply::Set(
                    cats.iter()
                        .map(|cat| Reply::Simple((*cat).into()))
                        .collect(),
                ),
                tips_reply(&full),
                match keyed {
                    true => key_specs(&full, c),
                    false => Reply::Array(vec![]),
                },
                Reply::Array(vec![]),
            ])
        })
        .collect();
    let keys = match c.shown_subcommands().is_empty() {
        true => (c.first_key as i64, c.last_key as i64, c.step as i64),
        false => (0, 0, 0),
    };
    Reply::Array(vec![
        Reply::bulk(c.name),
        Reply::Int(c.arity as i64),
        flag_set(c.flags),
        Reply::Int(keys.0),
        Reply::Int(keys.1),
        Reply::Int(keys.2),
        Reply::Set(
            c.categories
                .iter()
                .map(|cat| Reply::Simple((*cat).into()))
                .collect(),
        ),
        tips_reply(c.name),
        key_specs(c.name, c),
        Reply::Array(subs),
    ])
}

/// COMMAND INFO of a name, `container|sub` included.
fn command_info_of(name: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(name).to_ascii_lowercase();
    if let Some((container, _)) = text.split_once('|') {
        let Some(c) = lookup(container.as_bytes()) else {
            return Reply::Nil;
        };
        return match command_info(c) {
            Reply::Array(f) => match &f[9] {
                Reply::Array(subs) => subs
                    .iter()
                    .find(|e| matches!(e, Reply::Array(x) if x[0] == Reply::bulk(text.clone())))
                    .cloned()
                    .unwrap_or(Reply::Nil),
                _ => Reply::Nil,
            },
            _ => Reply::Nil,
        };
    }
    lookup(name).map_or(Reply::Nil, command_info)
}

fn command_docs(c: &CommandSpec) -> Reply {
    let mut fields = vec![
        (Reply::bulk("summary"), Reply::bulk(c.summary)),
        (Reply::bulk("since"), Reply::bulk("1.0.0")),
        (Reply::bulk("group"), Reply::bulk(c.group)),
    ];
    if !c.shown_subcommands().is_empty() {
        let subs = c
            .shown_subcommands()
            .iter()
            .map(|(sub, _)| {
                let full = format!("{}|{}", c.name, sub.to_ascii_lowercase());
                let doc = Reply::Map(vec![
                    (
                        Reply::bulk("summary"),
                        Reply::bulk(format!("{} {sub}", c.name.to_ascii_uppercase())),
                    ),
                    (Reply::bulk("since"), Reply::bulk("1.0.0")),
                    (Reply::bulk("group"), Reply::bulk(c.group)),
                ]);
                (Reply::bulk(full), doc)
            })
            .collect();
        fields.push((Reply::bulk("subcommands"), Reply::Map(subs)));
    }
    Reply::Map(fields)
}

/// Which names COMMAND LIST FILTERBY keeps.
type NameFilter = Box<dyn Fn(&str, &CommandSpec) -> bool>;

/// Every command name, subcommands (`client|kill`) after their container, as Redis lists them.
fn all_names() -> Vec<(String, &'static CommandSpec)> {
    let mut out = Vec::new();
    for c in table().iter().filter(|c| !c.name.starts_with("rockraft.")) {
        out.push((c.name.to_string(), c));
        for (sub, _) in c.shown_subcommands() {
            out.push((format!("{}|{}", c.name, sub.to_ascii_lowercase()), c));
        }
    }
    out
}

fn command(_: &mut Session, _: &Shared, argv: &[Bytes]) -> Reply {
    if argv.len() == 1 {
        return Reply::Array(table().iter().map(command_info).collect());
    }
    match upper(&argv[1]).as_str() {
        "COUNT" if argv.len() == 2 => Reply::Int(table().len() as i64),
        "LIST" => {
            let names = all_names();
            let keep: NameFilter = match argv.len() {
                2 => Box::new(|_, _| true),
                5 if upper(&argv[2]) == "FILTERBY" => {
                    let value = argv[4].clone();
                    match upper(&argv[3]).as_str() {
                        "MODULE" => Box::new(|_, _| false),
                        "ACLCAT" => {
                            let cat = format!(
                                "@{}",
                                String::from_utf8_lossy(&value).to_ascii_lowercase()
                            );
                            Box::new(move |name, c| match name.split_once('|') {
                                Some((container, sub)) => {
                                    sub_categories(container, sub).contains(&cat.as_str())
                                }
                                None => c.categories.contains(&cat.as_str()),
                            })
                        }
                        "PATTERN" => {
                            Box::new(move |name, _| glob_match(&value, name.as_bytes(), true))
                        }
                        _ => return Reply::err(ERR_SYNTAX),
                    }
                }
                _ => return Reply::err(ERR_SYNTAX),
            };
            Reply::Array(
                names
                    .into_iter()
                    .filter(|(n, c)| keep(n, c))
                    .map(|(n, _)| Reply::bulk(n))
                    .collect(),
            )
        }
        "INFO" => {
            if argv.len() == 2 {
                return Reply::Array(table().iter().map(command_info).collect());
            }
            Reply::Array(argv[2..].iter().map(|n| command_info_of(n)).collect())
        }
        "DOCS" => {
            let docs = if argv.len() == 2 {
                table()
                    .iter()
                    .map(|c| (Reply::bulk(c.name), command_docs(c)))
                    .collect()
            } else {
                argv[2..]
                    .iter()
                    .filter_map(|n| lookup(n))
                    .map(|c| (Reply::bulk(c.name), command_docs(c)))
                    .collect()
            };
            Reply::Map(docs)
        }
        "GETKEYS" | "GETKEYSANDFLAGS" => {
            let with_flags = upper(&argv[1]) == "GETKEYSANDFLAGS";
            if argv.len() < 4 {
                return wrong_arity(if with_flags {
                    "command|getkeysandflags"
                } else {
                    "command|getkeys"
                });
            }
            let cmd_argv = &argv[2..];
            let Some(c) = lookup(&cmd_argv[0]) else {
                return Reply::err("ERR Invalid command specified");
            };
            if !c.arity_ok(cmd_argv.len()) {
                return Reply::err("ERR Invalid number of arguments specified for command");
            }
            let keys = c.keys(cmd_argv);
            if keys.is_empty() {
                return Reply::err("ERR The command has no key arguments");
            }
            if !with_flags {
                return Reply::Array(keys.into_iter().map(|k| Reply::Bulk(k.clone())).collect());
            }
            // Each key with its access, as the key specs give it.
            let access = super::acl_table::key_access(c.name).unwrap_or(&[super::acl_table::R]);
            Reply::Array(
                keys.into_iter()
                    .enumerate()
                    .map(|(i, k)| {
                        let a = access[i.min(access.len() - 1)];
                        let names: &[&str] =
                            match (a & super::acl_table::R != 0, a & super::acl_table::W != 0) {
                                (true, true) => &["RW", "access", "update"],
                                (false, true) => &["OW", "update"],
                                _ => &["RO", "access"],
                            };
                        Reply::Array(vec![
                            Reply::Bulk(k.clone()),
                            Reply::Set(names.iter().map(|n| Reply::Simple((*n).into())).collect()),
                        ])
                    })
                    .collect(),
            )
        }
        "HELP" if argv.len() == 2 => super::help_reply(&[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full Redis command.",
            "HELP",
            "    Prints this help.",
        ]),
        "HELP" => wrong_arity("command|help"),
        "COUNT" => wrong_arity("command|count"),
        _ => unknown_subcommand("command", &argv[1]),
    }
}

fn wait(
    shared: std::sync::Arc<Shared>,
    argv: Vec<Bytes>,
    _caller: super::Caller,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>> {
    Box::pin(wait_for(shared, argv, true))
}

/// WAIT numreplicas timeout: how many of the other members hold every write this connection
/// had acknowledged before it (those are committed on a quorum already: WAIT tells how many
/// copies beyond the leader's exist). Waits up to `timeout` ms (0: until there are enough)
/// for `numreplicas` of them, unless `may_block` is false (inside MULTI, as in Redis). The
/// connection has answered its earlier commands before this runs, so their entries are at or
/// below the applied index it reads.
pub async fn wait_for(shared: std::sync::Arc<Shared>, argv: Vec<Bytes>, may_block: bool) -> Reply {
    let status = shared.group.status();
    if !status.is_leader() {
        return Reply::err(
            "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.",
        );
    }
    let Some(wanted) = super::parse_i64(&argv[1]) else {
        return Reply::err(super::ERR_NOT_INTEGER);
    };
    let Some(timeout) = super::parse_i64(&argv[2]) else {
        return Reply::err("ERR timeout is not an integer or out of range");
    };
    if timeout < 0 {
        return Reply::err("ERR timeout is negative");
    }
    let target = status.applied_index.load(Ordering::Acquire);
    let deadline = (timeout > 0)
        .then(|| std::time::Instant::now() + std::time::Duration::from_millis(timeout as u64));
    loop {
        let holding = status
            .members()
            .progress
            .iter()
            .filter(|(id, matched, _)| *id != shared.node_id && *matched >= target)
            .count() as i64;
        let expired = deadline.is_some_and(|d| std::time::Instant::now() >= d);
        if holding >= wanted || !may_block || expired || !status.is_leader() {
            return Reply::Int(holding);
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: stops the node as SIGTERM does (leadership is
/// handed over first; every acknowledged write is already in the raft log, so SAVE and NOSAVE
/// change nothing). The connection closes without a reply, as Redis's does.
fn shutdown(session: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    let (mut save, mut nosave, mut other, mut abort) = (false, false, false, false);
    for a in &argv[1..] {
        match upper(a).as_str() {
            "NOSAVE" => nosave = true,
            "SAVE" => save = true,
            "NOW" | "FORCE" => other = true,
            "ABORT" => abort = true,
            _ => return Reply::err(ERR_SYNTAX),
        }
    }
    if (abort && (save || nosave || other)) || (save && nosave) {
        return Reply::err(ERR_SYNTAX);
    }
    if abort {
        // A shutdown starts at once and cannot be waited out, so none is ever pending.
        return Reply::err("ERR No shutdown in progress.");
    }
    tracing::info!(client = session.id, "SHUTDOWN requested");
    shared.shutdown_request.notify_one();
    session.quit = true;
    Reply::Many(Vec::new())
}

/// ROLE: the leader is Redis's master (its log index as the offset, its connected followers
/// as replicas); a follower a replica of the leader.
fn role(_: &mut Session, shared: &Shared, _: &[Bytes]) -> Reply {
    let status = shared.group.status();
    let applied = status.applied_index.load(Ordering::Acquire) as i64;
    if status.is_leader() {
        let members = status.members();
        let replicas = members
            .progress
            .iter()
            .filter(|(id, _, active)| *id != shared.node_id && *active)
            .filter_map(|(id, matched, _)| {
                let n = shared.book.get(*id)?;
                Some(Reply::Array(vec![
                    Reply::bulk(n.host),
                    Reply::bulk(n.port.to_string()),
                    Reply::bulk(matched.to_string()),
                ]))
            })
            .collect();
        return Reply::Array(vec![
            Reply::bulk("master"),
            Reply::Int(applied),
            Reply::Array(replicas),
        ]);
    }
    let leader = status.leader().and_then(|l| shared.book.get(l));
    let up = leader
        .as_ref()
        .is_some_and(|n| shared.network.is_connected(n.node_id));
    let (host, port) = leader.map_or((String::from("?"), 0), |n| (n.host, n.port));
    Reply::Array(vec![
        Reply::bulk("slave"),
        Reply::bulk(host),
        Reply::Int(i64::from(port)),
        Reply::bulk(if up { "connected" } else { "connect" }),
        Reply::Int(if up { applied } else { -1 }),
    ])
}

/// LASTSAVE: when this node started (every write is durable once acknowledged: there is no
/// save to wait for).
fn lastsave(_: &mut Session, shared: &Shared, _: &[Bytes]) -> Reply {
    Reply::Int(shared.last_save.load(Ordering::Relaxed) as i64)
}

/// BGREWRITEAOF: nothing to do (the raft log is the append-only file, compacted on its own);
/// Redis's reply, for the tools that wait for it.
fn bgrewriteaof(_: &mut Session, _: &Shared, _: &[Bytes]) -> Reply {
    Reply::Simple("Background append only file rewriting started".into())
}

/// Replication commands that have no meaning in a raft cluster: an error that says why.
fn not_in_raft(_: &mut Session, _: &Shared, argv: &[Bytes]) -> Reply {
    Reply::err(format!(
        "ERR {} is not supported: every rockraft node replicates through raft; add a node with CLUSTER MEET, move leadership with CLUSTER FAILOVER",
        upper(&argv[0])
    ))
}

/// LOLWUT [VERSION v]: the version line Redis 7 prints (its art for versions 5 and 6 is not
/// drawn here).
fn lolwut(_: &mut Session, _: &Shared, argv: &[Bytes]) -> Reply {
    if argv.len() >= 3 && upper(&argv[1]) == "VERSION" && super::parse_i64(&argv[2]).is_none() {
        return Reply::err(super::ERR_NOT_INTEGER);
    }
    Reply::Verbatim(format!("Redis ver. {}\n", crate::REDIS_VERSION))
}
