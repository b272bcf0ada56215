//! CLUSTER: how a group of rockraft nodes presents itself to Redis Cluster clients, and how it
//! is administered. The whole key space (slots 0-16383) lives in one raft group: its leader is
//! the master that owns every slot, the other members are its replicas.
//!
//! ```text
//! CLUSTER MYID | NODES | SLOTS | SHARDS | INFO | KEYSLOT key | COUNTKEYSINSLOT slot
//!         | GETKEYSINSLOT slot count | MEET host port | FORGET node-id | FAILOVER [FORCE|TAKEOVER]
//! ```
//! MEET and FORGET sent to a follower are forwarded to the leader. MEET invites a node that
//! holds no keys: it leaves its own one-node group, joins as a learner, and is promoted to voter
//! by the leader once its log has caught up; until then it is listed with the `nofailover`
//! flag (SHARDS: `health loading`). Membership changes are made one at a time: a MEET or FORGET
//! that arrives while another is in progress waits for its turn (up to the write timeout, then
//! `-TRYAGAIN` with the reason) instead of failing.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rockraft_raftstore::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use rockraft_raftstore::node::redis_node_id;
use rockraft_raftstore::proto::{NodeInfo, StoreIdent};
use rockraft_raftstore::slot::{key_slot, SLOT_COUNT};
use rockraft_raftstore::storage::initial_conf_state;
use rockraft_resp::Reply;

use super::flags::{ADMIN, LOADING, NOSCRIPT, STALE};
use super::{now_ms, spec, unknown_subcommand, upper, wrong_arity, Caller, CommandSpec, Kind};
use crate::connection::store_error;
use crate::{peer_client, Shared, DATA_GROUP_ID};
use rockraft_raftstore::{Error as StoreError, Members};

type ReplyFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

pub fn commands() -> Vec<CommandSpec> {
    vec![spec(
        "cluster",
        -2,
        ADMIN | LOADING | STALE | NOSCRIPT,
        (0, 0, 0),
        "cluster",
        "A container for Redis Cluster commands.",
        Kind::Async(cluster),
    )
    .lists_subcommands(&[
        ("ADDSLOTS", -3),
        ("ADDSLOTSRANGE", -4),
        ("BUMPEPOCH", 2),
        ("COUNTKEYSINSLOT", 3),
        ("DELSLOTS", -3),
        ("DELSLOTSRANGE", -4),
        ("FAILOVER", -2),
        ("FLUSHSLOTS", 2),
        ("FORGET", 3),
        ("GETKEYSINSLOT", 4),
        ("HELP", 2),
        ("INFO", 2),
        ("KEYSLOT", 3),
        ("MEET", -4),
        ("MYID", 2),
        ("NODES", 2),
        ("REPLICATE", 3),
        ("RESET", -2),
        ("SAVECONFIG", 2),
        ("SET-CONFIG-EPOCH", 3),
        ("SETSLOT", -4),
        ("SHARDS", 2),
        ("SLOTS", 2),
    ])]
}

const NOT_EMPTY: &str = "is not empty";

/// Redis Cluster's subcommands that move slots or set up replication by hand, with their
/// arities: a raft group assigns neither.
const NOT_IN_RAFT: &[(&str, i32)] = &[
    ("ADDSLOTS", -3),
    ("ADDSLOTSRANGE", -4),
    ("DELSLOTS", -3),
    ("DELSLOTSRANGE", -4),
    ("SETSLOT", -4),
    ("FLUSHSLOTS", 2),
    ("BUMPEPOCH", 2),
    ("SET-CONFIG-EPOCH", 3),
    ("REPLICATE", 3),
    ("RESET", -2),
];

fn ready(r: Reply) -> ReplyFuture {
    Box::pin(std::future::ready(r))
}

/// The client port a client is told for `info`: a TLS client the node's TLS port, a plaintext
/// one its plaintext port (each the other's when the node has only one).
pub fn client_port(info: &NodeInfo, tls: bool) -> u32 {
    match (tls, info.port, info.tls_port) {
        (true, _, t) | (false, 0, t) if t != 0 => t,
        (_, p, _) => p,
    }
}

/// Where this node reaches `info`'s client port for a forwarded or invitation command: its TLS
/// port, with this node's certificate, on a `--tls-cluster` cluster; else its plaintext port.
fn peer_addr<'a>(
    shared: &'a Shared,
    info: &NodeInfo,
) -> (String, Option<&'a tokio_rustls::TlsConnector>) {
    let tls = shared.peer_tls.as_ref().filter(|_| info.tls_port != 0);
    let port = client_port(info, tls.is_some());
    (format!("{}:{port}", info.host), tls)
}

fn cluster(shared: Arc<Shared>, argv: Vec<Bytes>, caller: Caller) -> ReplyFuture {
    let tls = caller.tls;
    let sub = upper(&argv[1]);
    let arity = |n: usize| -> Option<Reply> {
        (argv.len() != n).then(|| wrong_arity(&format!("cluster|{}", sub.to_ascii_lowercase())))
    };
    match sub.as_str() {
        "MYID" => ready(arity(2).unwrap_or_else(|| Reply::bulk(redis_node_id(shared.node_id)))),
        "NODES" => ready(arity(2).unwrap_or_else(|| Reply::Verbatim(nodes(&shared, tls)))),
        "SLOTS" => ready(arity(2).unwrap_or_else(|| slots(&shared, tls))),
        "SHARDS" => ready(arity(2).unwrap_or_else(|| shards(&shared))),
        "INFO" => ready(arity(2).unwrap_or_else(|| Reply::Verbatim(info(&shared)))),
        "KEYSLOT" => ready(arity(3).unwrap_or_else(|| Reply::Int(key_slot(&argv[2]) as i64))),
        "COUNTKEYSINSLOT" => ready(arity(3).unwrap_or_else(|| match parse_slot(&argv[2]) {
            Ok(slot) => {
                let n = shared.db.keys_in_slot(slot, usize::MAX, now_ms()).len();
                Reply::Int(n as i64)
            }
            Err(e) => e,
        })),
        "GETKEYSINSLOT" => ready(arity(4).unwrap_or_else(|| {
            let slot = match parse_slot(&argv[2]) {
                Ok(s) => s,
                Err(e) => return e,
            };
            let Some(count) = super::parse_i64(&argv[3]).filter(|c| *c >= 0) else {
                return Reply::err("ERR Invalid number of keys");
            };
            let keys = shared.db.keys_in_slot(slot, count as usize, now_ms());
            Reply::Array(keys.into_iter().map(Reply::bulk).collect())
        })),
        "MEET" => {
            if argv.len() != 4 && argv.len() != 5 {
                return ready(wrong_arity("cluster|meet"));
            }
            Box::pin(meet(shared, argv))
        }
        "FORGET" => match arity(3) {
            Some(e) => ready(e),
            None => Box::pin(forget(shared, argv)),
        },
        "FAILOVER" => ready(if argv.len() > 3 {
            wrong_arity("cluster|failover")
        } else {
            failover(&shared, &argv)
        }),
        "RRJOIN" => match arity(4) {
            Some(e) => ready(e),
            None => Box::pin(join(shared, argv)),
        },
        "HELP" => ready(help()),
        // The cluster's configuration is the raft log's: there is nothing else to save.
        "SAVECONFIG" => ready(arity(2).unwrap_or_else(Reply::ok)),
        _ => match NOT_IN_RAFT.iter().find(|(name, _)| *name == sub) {
            Some(&(name, n)) => ready(
                if n > 0 && argv.len() != n as usize
                    || n < 0 && argv.len() < n.unsigned_abs() as usize
                {
                    wrong_arity(&format!("cluster|{}", name.to_ascii_lowercase()))
                } else {
                    Reply::err(format!(
                    "ERR CLUSTER {name} is not supported: every slot belongs to rockraft's one raft group, whose leader serves them all; change members with CLUSTER MEET, FORGET and FAILOVER"
                ))
                },
            ),
            None => ready(unknown_subcommand("cluster", &argv[1])),
        },
    }
}

fn parse_slot(b: &[u8]) -> Result<u16, Reply> {
    super::parse_i64(b)
        .filter(|s| (0..SLOT_COUNT as i64).contains(s))
        .map(|s| s as u16)
        .ok_or_else(|| Reply::err("ERR Invalid or out of range slot"))
}

fn parse_node_id(b: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.len() != 40 || !s[..24].bytes().all(|c| c == b'0') {
        return None;
    }
    u64::from_str_radix(&s[24..], 16).ok()
}

/// Every member with its address, leader first.
fn members(shared: &Shared) -> Vec<(u64, Option<NodeInfo>)> {
    let status = shared.group.status();
    let m = status.members();
    let leader = status.leader();
    let mut ids: Vec<u64> = m.voters.iter().chain(m.learners.iter()).copied().collect();
    if !ids.contains(&shared.node_id) {
        ids.push(shared.node_id);
    }
    ids.sort_by_key(|id| (Some(*id) != leader, *id));
    ids.dedup();
    ids.into_iter()
        .map(|id| {
            let info = if id == shared.node_id {
                Some(shared.me.clone())
            } else {
                shared.book.get(id)
            };
            (id, info)
        })
        .collect()
}

fn epoch(shared: &Shared) -> u64 {
    shared.group.status().term.load(Ordering::Acquire)
}

fn nodes(shared: &Shared, tls: bool) -> String {
    let leader = shared.group.status().leader();
    let learners = shared.group.status().members().learners;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut out = String::new();
    for (id, info) in members(shared) {
        let (host, port, bus) = info
            .map(|i| (i.host.clone(), client_port(&i, tls), i.bus_port))
            .unwrap_or_default();
        let myself = id == shared.node_id;
        let is_leader = Some(id) == leader;
        let mut flags = Vec::new();
        if myself {
            flags.push("myself");
        }
        flags.push(if is_leader { "master" } else { "slave" });
        if learners.contains(&id) {
            // A learner replicates but cannot vote or take over (Redis's replica that will
            // not fail over) until it has caught up and is promoted.
            flags.push("nofailover");
        }
        let master = match (is_leader, leader) {
            (false, Some(l)) => redis_node_id(l),
            _ => "-".into(),
        };
        let connected = myself || shared.network.is_connected(id);
        let pong = if myself { 0 } else { now };
        out.push_str(&format!(
            "{} {host}:{port}@{bus} {} {master} 0 {pong} {} {}{}\n",
            redis_node_id(id),
            flags.join(","),
            epoch(shared),
            if connected {
                "connected"
            } else {
                "disconnected"
            },
            if is_leader {
                format!(" 0-{}", SLOT_COUNT - 1)
            } else {
                String::new()
            },
        ));
    }
    out
}

fn node_entry(id: u64, info: &NodeInfo, tls: bool) -> Reply {
    Reply::Array(vec![
        Reply::bulk(info.host.clone()),
        Reply::Int(client_port(info, tls) as i64),
        Reply::bulk(redis_node_id(id)),
        Reply::Map(vec![]),
    ])
}

fn slots(shared: &Shared, tls: bool) -> Reply {
    let Some(leader) = shared.group.status().leader() else {
        return Reply::Array(vec![]);
    };
    let mut entry = vec![Reply::Int(0), Reply::Int(SLOT_COUNT as i64 - 1)];
    let members = members(shared);
    let Some((_, Some(leader_info))) = members.iter().find(|(id, _)| *id == leader) else {
        return Reply::Array(vec![]);
    };
    entry.push(node_entry(leader, leader_info, tls));
    for (id, info) in &members {
        if let (false, Some(info)) = (*id == leader, info) {
            entry.push(node_entry(*id, info, tls));
        }
    }
    Reply::Array(vec![Reply::Array(entry)])
}

fn shards(shared: &Shared) -> Reply {
    let status = shared.group.status();
    let leader = status.leader();
    let Members {
        progress, learners, ..
    } = status.members();
    let applied = status.applied_index.load(Ordering::Acquire);
    let nodes = members(shared)
        .into_iter()
        .filter_map(|(id, info)| {
            let info = info?;
            let offset = if id == shared.node_id {
                applied
            } else {
                progress.iter().find(|p| p.0 == id).map_or(0, |p| p.1)
            };
            let online = id == shared.node_id || shared.network.is_connected(id);
            let field = |k: &str| Reply::bulk(k.to_string());
            // Both ports, as Redis lists them: `port` (plaintext) and `tls-port`, each when
            // the node has it.
            let mut fields = vec![(field("id"), Reply::bulk(redis_node_id(id)))];
            if info.port != 0 {
                fields.push((field("port"), Reply::Int(info.port as i64)));
            }
            if info.tls_port != 0 {
                fields.push((field("tls-port"), Reply::Int(info.tls_port as i64)));
            }
            fields.extend([
                (field("ip"), Reply::bulk(info.host.clone())),
                (field("endpoint"), Reply::bulk(info.host.clone())),
                (
                    field("role"),
                    field(if Some(id) == leader {
                        "master"
                    } else {
                        "replica"
                    }),
                ),
                (field("replication-offset"), Reply::Int(offset as i64)),
                (
                    field("health"),
                    // A learner is still catching up: Redis's replica that is loading.
                    field(match (online, learners.contains(&id)) {
                        (false, _) => "failed",
                        (true, true) => "loading",
                        (true, false) => "online",
                    }),
                ),
            ]);
            Some(Reply::Map(fields))
        })
        .collect();
    let slots = if leader.is_some() {
        vec![Reply::Int(0), Reply::Int(SLOT_COUNT as i64 - 1)]
    } else {
        vec![]
    };
    Reply::Array(vec![Reply::Map(vec![
        (Reply::bulk("slots"), Reply::Array(slots)),
        (Reply::bulk("nodes"), Reply::Array(nodes)),
    ])])
}

fn info(shared: &Shared) -> String {
    let ok = shared.group.status().leader().is_some();
    let known = members(shared).len();
    let e = epoch(shared);
    format!(
        "cluster_state:{}\r\ncluster_slots_assigned:{SLOT_COUNT}\r\ncluster_slots_ok:{}\r\n\
         cluster_slots_pfail:0\r\ncluster_slots_fail:{}\r\ncluster_known_nodes:{known}\r\n\
         cluster_size:1\r\ncluster_current_epoch:{e}\r\ncluster_my_epoch:{e}\r\n\
         cluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n\
         total_cluster_links_buffer_limit_exceeded:0\r\n",
        if ok { "ok" } else { "fail" },
        if ok { SLOT_COUNT } else { 0 },
        if ok { 0 } else { SLOT_COUNT },
    )
}

/// How long a forwarded membership command may take on the leader: inviting the node, waiting
/// behind the change in progress, and its own apply.
fn forward_timeout(shared: &Shared) -> Duration {
    INVITE_TIMEOUT + 2 * write_timeout(shared) + Duration::from_secs(5)
}

fn write_timeout(shared: &Shared) -> Duration {
    Duration::from_millis(shared.config.write_timeout_ms)
}

/// How long the invited node of a MEET has to answer.
const INVITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends a membership command on to the leader when this node is a follower.
async fn forward_to_leader(shared: &Shared, argv: &[Bytes]) -> Option<Reply> {
    let status = shared.group.status();
    if status.is_leader() {
        return None;
    }
    let Some(leader) = status.leader().and_then(|l| shared.book.get(l)) else {
        return Some(Reply::err("CLUSTERDOWN The cluster is down"));
    };
    let args: Vec<&[u8]> = argv.iter().map(|a| &a[..]).collect();
    let (addr, tls) = peer_addr(shared, &leader);
    let password = shared.acl.requirepass(&shared.db);
    let password = (!password.is_empty()).then_some(&password[..]);
    Some(
        match peer_client::call(&addr, tls, password, &args, forward_timeout(shared)).await {
            Ok(s) if s == "OK" => Reply::ok(),
            Ok(s) => Reply::bulk(s),
            // The leader's error keeps its code (TRYAGAIN, TIMEOUT, CLUSTERDOWN, ERR).
            Err(e) if has_error_code(&e) => Reply::err(e),
            Err(e) => Reply::err(format!("ERR {e}")),
        },
    )
}

/// Whether an error reply starts with a Redis error code (an upper-case word).
fn has_error_code(e: &str) -> bool {
    e.split(' ')
        .next()
        .is_some_and(|w| !w.is_empty() && w.bytes().all(|c| c.is_ascii_uppercase()))
}

/// Queues a membership change on this node (the leader) and waits for it to be applied.
/// Changes go one at a time: this one waits behind any in progress, up to the write timeout,
/// then gets `-TRYAGAIN` with the reason. If leadership moves while it waits, the command
/// (`argv`) is sent on to the new leader.
async fn change_membership(shared: &Shared, cc: ConfChangeV2, argv: &[Bytes]) -> Reply {
    let timeout = write_timeout(shared);
    for _ in 0..3 {
        // Waiting to start is bounded by the group (then ConfChangeNotStarted); this bounds
        // the wait for the apply once proposed.
        let change = shared.group.conf_change(cc.clone());
        match tokio::time::timeout(2 * timeout + Duration::from_secs(1), change).await {
            Ok(Ok(())) => return Reply::ok(),
            Ok(Err(StoreError::NotLeader { .. })) => {
                // Never proposed here. Follow the leadership to whoever holds it now.
                let deadline = tokio::time::Instant::now() + timeout;
                let status = shared.group.status();
                while status.leader().is_none() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                if let Some(r) = forward_to_leader(shared, argv).await {
                    return r;
                }
            }
            Ok(Err(e)) => return store_error(shared, e, "membership change", 0, false),
            Err(_) => {
                return Reply::err(format!(
                    "TIMEOUT membership change outcome unknown: proposed but not applied within {} ms; check CLUSTER NODES before retrying",
                    (2 * timeout).as_millis()
                ))
            }
        }
    }
    Reply::err(
        "TRYAGAIN leadership kept changing while the membership change waited; it was not applied",
    )
}

async fn meet(shared: Arc<Shared>, argv: Vec<Bytes>) -> Reply {
    if let Some(r) = forward_to_leader(&shared, &argv).await {
        return r;
    }
    let host = String::from_utf8_lossy(&argv[2]).into_owned();
    let Some(port) = super::parse_i64(&argv[3]).filter(|p| (1..=65535).contains(p)) else {
        return Reply::err(format!(
            "ERR Invalid base port specified: {}",
            String::from_utf8_lossy(&argv[3])
        ));
    };
    let voters = match initial_conf_state(shared.db.engine(), DATA_GROUP_ID) {
        Ok(Some(cs)) => cs.voters,
        Ok(None) => return Reply::err("ERR this node has no raft group"),
        Err(e) => return Reply::err(format!("ERR {e}")),
    };
    let voters_arg = voters
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let cluster = format!("{:016x}", shared.network.cluster_id());
    let addr = format!("{host}:{port}");
    let password = shared.acl.requirepass(&shared.db);
    let password = (!password.is_empty()).then_some(&password[..]);
    // On a --tls-cluster cluster the port MEET names is the node's TLS port (as in Redis).
    let reply = peer_client::call(
        &addr,
        shared.peer_tls.as_ref(),
        password,
        &[
            b"CLUSTER",
            b"RRJOIN",
            cluster.as_bytes(),
            voters_arg.as_bytes(),
        ],
        INVITE_TIMEOUT,
    )
    .await;
    let line = match reply {
        Ok(line) => line,
        Err(e) if e.contains(NOT_EMPTY) => {
            return Reply::err(format!(
                "ERR Node {addr} is not empty. Either the node already knows other nodes (check with CLUSTER NODES) or contains some key in database 0."
            ))
        }
        Err(e) => return Reply::err(format!("ERR cannot meet {addr}: {e}")),
    };
    let parts: Vec<&str> = line.split_whitespace().collect();
    let (Some(id), Some(h), Some(p), Some(b)) = (
        parts.first().and_then(|s| s.parse::<u64>().ok()),
        parts.get(1),
        parts.get(2).and_then(|s| s.parse::<u32>().ok()),
        parts.get(3).and_then(|s| s.parse::<u32>().ok()),
    ) else {
        return Reply::err(format!("ERR unexpected answer from {addr}: {line}"));
    };
    let m = shared.group.status().members();
    if m.voters.contains(&id) || m.learners.contains(&id) {
        return Reply::ok();
    }
    let info = NodeInfo {
        node_id: id,
        host: h.to_string(),
        port: p,
        bus_port: b,
        tls_port: parts.get(4).and_then(|s| s.parse().ok()).unwrap_or(0),
        ..Default::default()
    };
    // A node that cannot prove the cluster secret on its bus is never made a member.
    if let Err(e) = shared.network.probe(&format!("{h}:{b}")).await {
        return Reply::err(format!("ERR cannot meet {addr}: {e}"));
    }
    let mut change = ConfChangeSingle::default();
    change.set_change_type(ConfChangeType::AddLearnerNode);
    change.node_id = id;
    let mut cc = ConfChangeV2::default();
    cc.mut_changes().push(change);
    cc.context = protobuf::Message::write_to_bytes(&info)
        .expect("encode node info")
        .into();
    tracing::info!(node = id, %addr, "adding node as learner");
    change_membership(&shared, cc, &argv).await
}

/// The invited side of MEET: leave this node's own group and wait to be added to the
/// inviter's. Only a node holding no keys and no other members may be invited.
async fn join(shared: Arc<Shared>, argv: Vec<Bytes>) -> Reply {
    let Some(cluster_id) = std::str::from_utf8(&argv[2])
        .ok()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
    else {
        return Reply::err("ERR invalid cluster id");
    };
    let voters: Option<Vec<u64>> = std::str::from_utf8(&argv[3])
        .ok()
        .map(|s| s.split(',').map(|v| v.parse::<u64>().ok()).collect())
        .and_then(|v: Option<Vec<u64>>| v.filter(|v| !v.is_empty()));
    let Some(voters) = voters else {
        return Reply::err("ERR invalid voters");
    };
    let me = shared.node_id;
    let m = shared.group.status().members();
    let member = m.voters.contains(&me) || m.learners.contains(&me);
    let same_cluster = shared.network.cluster_id() == cluster_id;
    let info_line = format!(
        "{} {} {} {} {}",
        me, shared.me.host, shared.me.port, shared.me.bus_port, shared.me.tls_port
    );
    if same_cluster && (member || !m.voters.contains(&me)) {
        // Already in (or already waiting to join) this cluster: answering again is harmless.
        return Reply::bulk(info_line);
    }
    let alone = m.voters == [me] && m.learners.is_empty();
    if !alone || shared.db.count(now_ms()).0 > 0 {
        return Reply::err(format!("ERR node {NOT_EMPTY}"));
    }
    let ident = StoreIdent {
        node_id: me,
        cluster_id,
        ..Default::default()
    };
    if let Err(e) = shared.group.reset(ident, voters).await {
        return Reply::err(format!("ERR {e}"));
    }
    shared.network.set_cluster_id(cluster_id);
    tracing::info!(cluster = %format!("{cluster_id:016x}"), "joining a cluster");
    Reply::bulk(info_line)
}

async fn forget(shared: Arc<Shared>, argv: Vec<Bytes>) -> Reply {
    let Some(id) = parse_node_id(&argv[2]) else {
        return Reply::err(format!(
            "ERR Unknown node {}",
            String::from_utf8_lossy(&argv[2])
        ));
    };
    if id == shared.node_id {
        return Reply::err("ERR I tried hard but I can't forget myself...");
    }
    if let Some(r) = forward_to_leader(&shared, &argv).await {
        return r;
    }
    let m = shared.group.status().members();
    if !m.voters.contains(&id) && !m.learners.contains(&id) {
        return Reply::err(format!(
            "ERR Unknown node {}",
            String::from_utf8_lossy(&argv[2])
        ));
    }
    let mut change = ConfChangeSingle::default();
    change.set_change_type(ConfChangeType::RemoveNode);
    change.node_id = id;
    let mut cc = ConfChangeV2::default();
    cc.mut_changes().push(change);
    change_membership(&shared, cc, &argv).await
}

fn failover(shared: &Shared, argv: &[Bytes]) -> Reply {
    if let Some(opt) = argv.get(2) {
        if !matches!(upper(opt).as_str(), "FORCE" | "TAKEOVER") {
            return Reply::err(super::ERR_SYNTAX);
        }
    }
    let status = shared.group.status();
    if status.is_leader() {
        return Reply::err("ERR You should send CLUSTER FAILOVER to a replica");
    }
    if !status.members().voters.contains(&shared.node_id) {
        return Reply::err("ERR this node is not a voting member and cannot become leader");
    }
    match shared.group.transfer_leader(shared.node_id) {
        Ok(()) => Reply::ok(),
        Err(e) => Reply::err(format!("ERR {e}")),
    }
}

fn help() -> Reply {
    super::help_reply(&[
        "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "COUNTKEYSINSLOT <slot>",
        "    Return the number of keys in <slot>.",
        "FAILOVER [FORCE|TAKEOVER]",
        "    Make this follower the leader (sent to a follower).",
        "FORGET <node-id>",
        "    Remove a node from the cluster.",
        "GETKEYSINSLOT <slot> <count>",
        "    Return key names stored by this node in a slot.",
        "INFO",
        "    Return information about the cluster.",
        "KEYSLOT <key>",
        "    Return the hash slot for <key>.",
        "MEET <ip> <port>",
        "    Add a node holding no keys to the cluster.",
        "MYID",
        "    Return the node id.",
        "NODES",
        "    Return cluster configuration seen by node.",
        "SHARDS",
        "    Return information about slot range mappings and the nodes serving them.",
        "SLOTS",
        "    Return information about slots range mappings.",
        "HELP",
        "    Prints this help.",
    ])
}
