//! Transactions: MULTI EXEC DISCARD WATCH UNWATCH.
//!
//! MULTI queues commands on the connection (`crate::connection`). EXEC proposes the queued
//! writes and reads as **one** log entry, `rockraft.exec`, applied in order in one write
//! batch, each command seeing the earlier ones' writes; a transaction of reads only is served
//! as one read (ReadIndex, then one consistent view).
//!
//! WATCH reads, linearizably, the apply index its view holds (`at`) and whether each key is
//! live. Every entry that changes a key records its own index as the key's modification mark
//! (`crate::db::Txn::finish`). The EXEC entry carries the watches, and every node aborts the
//! transaction (nil reply) when a watched key's mark is above its `at`, or a key that was live
//! at WATCH time no longer is (it expired, or a FLUSHALL removed it): the same decision on
//! every node, on whichever leader the EXEC arrives. A watch older than
//! [`MARK_HORIZON`](rockraft_raftstore::keys::MARK_HORIZON) entries aborts the transaction
//! (the marks it would need may be gone).
//!
//! ```text
//! rockraft.exec <header> <command> [<command> ...]
//! header: Command{ resp3 ("0"|"1"), then per watch: key, at (decimal), live ("0"|"1") }
//! command: Command{ argv } as proposed on its own (after `prepare`)
//! ```

use bytes::Bytes;
use rockraft_raftstore::keys::MARK_HORIZON;
use rockraft_resp::Reply;

use super::flags::{FAST, LOADING, NOSCRIPT, STALE};
use super::{spec, CommandSpec, Kind, ReadCtx};
use crate::db::Txn;
use crate::state_machine::{decode_command, encode_command};
use crate::types::Reader;

pub const EXEC_ENTRY: &[u8] = b"rockraft.exec";
pub const ERR_EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

#[rustfmt::skip]
pub fn commands() -> Vec<CommandSpec> {
    let g = "transactions";
    let f = NOSCRIPT | LOADING | STALE;
    vec![
        spec("multi", 1, f | FAST, (0, 0, 0), g, "Starts a transaction.", Kind::Transaction),
        spec("exec", 1, f, (0, 0, 0), g, "Executes all commands in a transaction.", Kind::Transaction),
        spec("discard", 1, f | FAST, (0, 0, 0), g, "Discards a transaction.", Kind::Transaction),
        spec("watch", -2, f | FAST, (1, -1, 1), g, "Monitors changes to keys to determine the execution of a transaction.", Kind::Transaction),
        spec("unwatch", 1, f | FAST, (0, 0, 0), g, "Forgets about watched keys of a transaction.", Kind::Transaction),
    ]
}

/// A watched key, as WATCH read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    pub key: Bytes,
    /// The apply index the WATCH's view held.
    pub at: u64,
    /// The key was live then.
    pub live: bool,
}

/// Whether a watch is broken in the state `r`, whose entries go up to `index`.
pub fn broken(r: &dyn Reader, index: u64, watches: &[Watch]) -> bool {
    watches.iter().any(|w| {
        index.saturating_sub(w.at) > MARK_HORIZON
            || r.mark(&w.key) > w.at
            || (w.live && r.live(&w.key).is_none())
    })
}

/// The `rockraft.exec` entry for `commands` (canonical, as each would be proposed alone).
/// `run_as`: the restricted ACL user the transaction's scripts run as (the entry is then
/// wrapped in `rockraft.as`, see `acl::apply_as`).
pub fn encode_exec(
    resp3: bool,
    watches: &[Watch],
    commands: &[Vec<Bytes>],
    run_as: Option<&str>,
) -> Vec<u8> {
    let mut header = vec![Bytes::from_static(if resp3 { b"1" } else { b"0" })];
    for w in watches {
        header.push(w.key.clone());
        header.push(Bytes::from(w.at.to_string()));
        header.push(Bytes::from_static(if w.live { b"1" } else { b"0" }));
    }
    let mut argv = Vec::with_capacity(commands.len() + 4);
    if let Some(user) = run_as {
        argv.push(Bytes::from_static(crate::acl::AS_ENTRY));
        argv.push(Bytes::copy_from_slice(user.as_bytes()));
    }
    argv.push(Bytes::from_static(EXEC_ENTRY));
    argv.push(Bytes::from(encode_command(&header)));
    argv.extend(commands.iter().map(|c| Bytes::from(encode_command(c))));
    encode_command(&argv)
}

fn decode_header(raw: &Bytes) -> Option<(bool, Vec<Watch>)> {
    let h = decode_command(raw).ok()?;
    let (resp3, rest) = h.split_first()?;
    if !rest.len().is_multiple_of(3) {
        return None;
    }
    let watches = rest
        .chunks_exact(3)
        .map(|w| {
            Some(Watch {
                key: w[0].clone(),
                at: std::str::from_utf8(&w[1]).ok()?.parse().ok()?,
                live: &w[2][..] == b"1",
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some((&resp3[..] == b"1", watches))
}

/// Applies a transaction: nil when a watch is broken, else every command's reply in order.
pub fn apply_exec(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let Some((resp3, watches)) = argv.get(1).and_then(decode_header) else {
        return Reply::err("ERR undecodable transaction");
    };
    if broken(&*txn, txn.index(), &watches) {
        return Reply::NilArray;
    }
    let node = txn.node();
    let mut replies = Vec::with_capacity(argv.len() - 2);
    for raw in &argv[2..] {
        let reply = match decode_command(raw) {
            Ok(cmd) if !cmd.is_empty() => match super::lookup(&cmd[0]).map(|s| s.kind) {
                Some(Kind::Write { apply, .. }) => {
                    let name = super::lookup(&cmd[0]).map_or("", |s| s.name);
                    txn.apply_command(name, apply, &cmd)
                }
                Some(Kind::Read(run)) => {
                    let now = txn.now_ms();
                    let mut ctx = ReadCtx::fixed(&*txn, node.as_deref(), now, resp3);
                    ctx.user = txn.acl_user_arc();
                    run(&ctx, &cmd)
                }
                _ => Reply::err("ERR command cannot run in a transaction"),
            },
            _ => Reply::err("ERR undecodable command in transaction"),
        };
        replies.push(reply);
    }
    Reply::Array(replies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_round_trips() {
        let watches = vec![
            Watch {
                key: Bytes::from_static(b"k\x00\xff"),
                at: 42,
                live: true,
            },
            Watch {
                key: Bytes::new(),
                at: u64::MAX,
                live: false,
            },
        ];
        let entry = encode_exec(true, &watches, &[vec![Bytes::from("PING")]], None);
        let argv = decode_command(&Bytes::from(entry)).unwrap();
        assert_eq!(&argv[0][..], EXEC_ENTRY);
        assert_eq!(decode_header(&argv[1]), Some((true, watches)));
        assert_eq!(decode_command(&argv[2]).unwrap(), vec![Bytes::from("PING")]);
    }
}
