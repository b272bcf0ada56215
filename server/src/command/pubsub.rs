//! Pub/sub: SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE SSUBSCRIBE SUNSUBSCRIBE PUBLISH
//! SPUBLISH PUBSUB (CHANNELS NUMSUB NUMPAT SHARDCHANNELS SHARDNUMSUB HELP).
//!
//! ```text
//! SUBSCRIBE channel …     PSUBSCRIBE pattern …     SSUBSCRIBE shardchannel …
//! UNSUBSCRIBE [channel …] PUNSUBSCRIBE [pattern …] SUNSUBSCRIBE [shardchannel …]
//! PUBLISH channel message SPUBLISH shardchannel message
//! PUBSUB CHANNELS [pattern] | NUMSUB [channel …] | NUMPAT | SHARDCHANNELS [pattern] | SHARDNUMSUB [channel …]
//! ```
//!
//! All are answered by the node itself (see `pubsub.rs`): a subscription is the connection's,
//! a publish reaches every node's subscribers through the peer transport, never the log.

use std::collections::BTreeSet;

use bytes::Bytes;
use rockraft_resp::Reply;

use super::flags::{FAST, LOADING, NOSCRIPT, STALE};
use super::{help_reply, spec, unknown_subcommand, upper, CommandSpec, Kind};
use crate::pubsub::{encode_forward, Outbox, Space};
use crate::session::Session;
use crate::Shared;

#[rustfmt::skip]
pub fn commands() -> Vec<CommandSpec> {
    use Kind::Local;
    let g = "pubsub";
    let f = NOSCRIPT | LOADING | STALE;
    vec![
        spec("subscribe", -2, f, (0, 0, 0), g, "Listens for messages published to channels.", Local(subscribe)),
        spec("unsubscribe", -1, f, (0, 0, 0), g, "Stops listening to messages posted to channels.", Local(unsubscribe)),
        spec("psubscribe", -2, f, (0, 0, 0), g, "Listens for messages published to channels that match one or more patterns.", Local(psubscribe)),
        spec("punsubscribe", -1, f, (0, 0, 0), g, "Stops listening to messages published to channels that match one or more patterns.", Local(punsubscribe)),
        spec("ssubscribe", -2, f, (1, -1, 1), g, "Listens for messages published to shard channels.", Local(ssubscribe)),
        spec("sunsubscribe", -1, f, (1, -1, 1), g, "Stops listening to messages posted to shard channels.", Local(sunsubscribe)),
        spec("publish", 3, LOADING | STALE | FAST, (0, 0, 0), g, "Posts a message to a channel.", Local(publish)),
        spec("spublish", 3, LOADING | STALE | FAST, (1, 1, 1), g, "Post a message to a shard channel", Local(spublish)),
        spec("pubsub", -2, LOADING | STALE, (0, 0, 0), g, "A container for Pub/Sub commands.", Local(pubsub)).subcommands(SUBCOMMANDS),
    ]
}

/// Which of a connection's subscription sets a command works on.
fn set_of(s: &mut Session, space: Space, pattern: bool) -> &mut BTreeSet<Bytes> {
    match (space, pattern) {
        (Space::Shard, _) => &mut s.subs.shard,
        (Space::Global, false) => &mut s.subs.channels,
        (Space::Global, true) => &mut s.subs.patterns,
    }
}

fn count_of(s: &Session, space: Space) -> usize {
    match space {
        Space::Shard => s.subs.shard.len(),
        Space::Global => s.subs.count(),
    }
}

fn confirm(kind: &'static str, name: Option<Bytes>, count: usize) -> Reply {
    Reply::Push(vec![
        Reply::bulk(kind),
        name.map_or(Reply::Nil, Reply::Bulk),
        Reply::Int(count as i64),
    ])
}

fn add(
    s: &mut Session,
    shared: &Shared,
    argv: &[Bytes],
    space: Space,
    pattern: bool,
    kind: &'static str,
) -> Reply {
    if space == Space::Shard {
        let first = rockraft_raftstore::slot::key_slot(&argv[1]);
        if argv[2..]
            .iter()
            .any(|c| rockraft_raftstore::slot::key_slot(c) != first)
        {
            return Reply::err("CROSSSLOT Keys in request don't hash to the same slot");
        }
    }
    if s.outbox.is_none() {
        let (outbox, rx) = Outbox::new();
        s.outbox = Some(outbox);
        s.pushes = Some(rx);
    }
    let outbox = s.outbox.clone().expect("just made");
    let mut replies = Vec::with_capacity(argv.len() - 1);
    for name in &argv[1..] {
        if set_of(s, space, pattern).insert(name.clone()) {
            shared.pubsub.subscribe(space, pattern, name, s.id, &outbox);
        }
        replies.push(confirm(kind, Some(name.clone()), count_of(s, space)));
    }
    Reply::Many(replies)
}

fn remove(
    s: &mut Session,
    shared: &Shared,
    argv: &[Bytes],
    space: Space,
    pattern: bool,
    kind: &'static str,
) -> Reply {
    let names: Vec<Bytes> = if argv.len() > 1 {
        argv[1..].to_vec()
    } else {
        set_of(s, space, pattern).iter().cloned().collect()
    };
    if names.is_empty() {
        return Reply::Many(vec![confirm(kind, None, count_of(s, space))]);
    }
    let mut replies = Vec::with_capacity(names.len());
    for name in names {
        if set_of(s, space, pattern).remove(&name) {
            shared.pubsub.unsubscribe(space, pattern, &name, s.id);
        }
        replies.push(confirm(kind, Some(name), count_of(s, space)));
    }
    Reply::Many(replies)
}

fn subscribe(s: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    add(s, shared, argv, Space::Global, false, "subscribe")
}

fn psubscribe(s: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    add(s, shared, argv, Space::Global, true, "psubscribe")
}

fn ssubscribe(s: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    add(s, shared, argv, Space::Shard, false, "ssubscribe")
}

fn unsubscribe(s: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    remove(s, shared, argv, Space::Global, false, "unsubscribe")
}

fn punsubscribe(s: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    remove(s, shared, argv, Space::Global, true, "punsubscribe")
}

fn sunsubscribe(s: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    remove(s, shared, argv, Space::Shard, false, "sunsubscribe")
}

/// Delivers here, sends to the other nodes; answers how many received it here.
fn deliver(shared: &Shared, space: Space, argv: &[Bytes]) -> Reply {
    let n = shared.pubsub.publish(space, &argv[1], &argv[2]);
    shared
        .network
        .broadcast_app(&encode_forward(space, &argv[1], &argv[2]));
    metrics::counter!("rockraft_pubsub_published_total").increment(1);
    Reply::Int(n as i64)
}

fn publish(_: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    deliver(shared, Space::Global, argv)
}

fn spublish(_: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    deliver(shared, Space::Shard, argv)
}

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

/// PUBSUB's subcommands and their arities (negative: at least).
const SUBCOMMANDS: &[(&str, i32)] = &[
    ("CHANNELS", -2),
    ("NUMSUB", -2),
    ("NUMPAT", 2),
    ("SHARDCHANNELS", -2),
    ("SHARDNUMSUB", -2),
    ("HELP", 2),
];

fn pubsub(_: &mut Session, shared: &Shared, argv: &[Bytes]) -> Reply {
    if let Some(e) = super::check_subcommand("pubsub", SUBCOMMANDS, argv) {
        return e;
    }
    let sub = upper(&argv[1]);
    let hub = &shared.pubsub;
    let channels = |space: Space| {
        if argv.len() > 3 {
            return Reply::err(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
                String::from_utf8_lossy(&argv[1])
            ));
        }
        let list = hub.channels(space, argv.get(2).map(|p| &p[..]));
        Reply::Array(list.into_iter().map(Reply::Bulk).collect())
    };
    let numsub = |space: Space| {
        Reply::Array(
            argv[2..]
                .iter()
                .flat_map(|c| {
                    [
                        Reply::Bulk(c.clone()),
                        Reply::Int(hub.subscribers(space, c) as i64),
                    ]
                })
                .collect(),
        )
    };
    match sub.as_str() {
        "CHANNELS" => channels(Space::Global),
        "SHARDCHANNELS" => channels(Space::Shard),
        "NUMSUB" => numsub(Space::Global),
        "SHARDNUMSUB" => numsub(Space::Shard),
        "NUMPAT" => Reply::Int(hub.patterns() as i64),
        "HELP" => help_reply(PUBSUB_HELP),
        _ => unknown_subcommand("PUBSUB", &argv[1]),
    }
}
