//! The replicated state machine: decodes a write command from a log entry and applies it with
//! the command table's `apply`, producing the client's reply.

use bytes::Bytes;
use protobuf::wire_format::WireType;
use protobuf::{CodedInputStream, CodedOutputStream, ProtobufResult};
use rockraft_raftstore::{ApplyContext, StateMachine};
use rockraft_resp::Reply;

use crate::command::{self, Kind};
use crate::db::Txn;

/// The `argv` field of the `Command` message (`proto/command.proto`).
const ARGV_FIELD: u32 = 1;

/// Encodes a canonical write command for a log entry: a `Command` message, written field by
/// field so that the arguments are copied once, straight into the entry.
pub fn encode_command(argv: &[Bytes]) -> Vec<u8> {
    let size: u32 = argv
        .iter()
        .map(|a| protobuf::rt::bytes_size(ARGV_FIELD, a))
        .sum();
    let mut out = Vec::with_capacity(size as usize);
    let mut os = CodedOutputStream::vec(&mut out);
    for a in argv {
        os.write_bytes(ARGV_FIELD, a).expect("encode command");
    }
    os.flush().expect("encode command");
    drop(os);
    out
}

/// Decodes a `Command` message; the arguments are slices of `data`, not copies.
pub fn decode_command(data: &Bytes) -> ProtobufResult<Vec<Bytes>> {
    let mut is = CodedInputStream::from_carllerche_bytes(data);
    let mut argv = Vec::with_capacity(4);
    while !is.eof()? {
        let (field, wire_type) = is.read_tag_unpack()?;
        if field == ARGV_FIELD && wire_type == WireType::WireTypeLengthDelimited {
            argv.push(is.read_carllerche_bytes()?);
        } else {
            is.skip_field(wire_type)?;
        }
    }
    Ok(argv)
}

/// Applies rockraft's write commands.
#[derive(Default)]
pub struct KvStateMachine {
    /// The running node, once it is (reads inside a transaction use it).
    node: std::sync::Arc<std::sync::OnceLock<std::sync::Weak<crate::Shared>>>,
    /// The node's blocked clients, told which keys each entry changed.
    blocked: std::sync::Arc<crate::blocking::Blocked>,
    /// Keyspace notifications: the setting, and the events of the round not yet published.
    notifier: Option<std::sync::Arc<crate::notify::Notifier>>,
    events: Vec<crate::notify::Event>,
    /// Client-side caching: the keys the round changed, and whether it flushed everything.
    tracker: Option<std::sync::Arc<crate::tracking::Tracker>>,
    changed: Vec<Vec<u8>>,
    flushed: bool,
    /// Streams the round added to: their blocked readers are woken once it is written (a
    /// reader on a READONLY follower reads locally, and must find the entry).
    ready: Vec<Vec<u8>>,
    /// The round changed the ACL users: the node reloads them once it is written.
    acl_changed: bool,
    /// … by an ACL LOAD, which closes every connection of a user other than the default (as
    /// Redis's does).
    acl_loaded: bool,
}

impl KvStateMachine {
    /// A state machine that will reach the node through `node` once it is set, and tell
    /// `blocked` which keys each entry changed.
    pub fn new(
        node: std::sync::Arc<std::sync::OnceLock<std::sync::Weak<crate::Shared>>>,
        blocked: std::sync::Arc<crate::blocking::Blocked>,
        notifier: std::sync::Arc<crate::notify::Notifier>,
        tracker: std::sync::Arc<crate::tracking::Tracker>,
    ) -> Self {
        KvStateMachine {
            node,
            blocked,
            notifier: Some(notifier),
            events: Vec::new(),
            tracker: Some(tracker),
            changed: Vec::new(),
            flushed: false,
            ready: Vec::new(),
            acl_changed: false,
            acl_loaded: false,
        }
    }
}

impl KvStateMachine {
    /// The node re-reads its users from the committed state.
    fn reload_acl(&self, loaded: bool) {
        if let Some(node) = self.node.get().and_then(std::sync::Weak::upgrade) {
            node.acl.reload(&node.db);
            crate::command::acl::close_revoked(&node, loaded);
        }
    }
}

impl StateMachine for KvStateMachine {
    fn restored(&mut self) {
        self.reload_acl(false);
    }

    type Output = Reply;

    fn apply(&mut self, ctx: &mut ApplyContext<'_>, data: &Bytes) -> Reply {
        let argv = match decode_command(data) {
            Ok(argv) if !argv.is_empty() => argv,
            _ => {
                tracing::error!("log entry does not hold a command; skipped");
                return Reply::err("ERR undecodable log entry");
            }
        };
        let (name, apply) = match command::lookup(&argv[0]) {
            Some(spec) => match spec.kind {
                Kind::Write { apply, .. } => (spec.name, apply),
                _ => return Reply::err("ERR not a write command"),
            },
            None => match command::internal_apply(&argv[0].to_ascii_lowercase()) {
                Some(apply) => ("", apply),
                None => return Reply::err("ERR unknown write command in log"),
            },
        };
        if name.is_empty() && argv[0].eq_ignore_ascii_case(b"rockraft.acl") {
            self.acl_changed = true;
            self.acl_loaded |= argv.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"load"));
        }
        let notifying = self.notifier.as_ref().is_some_and(|n| n.enabled());
        let mut txn = Txn::with_node(ctx, &self.node).notify(notifying);
        let reply = txn.apply_command(name, apply, &argv);
        self.events.extend(txn.take_events());
        self.ready.extend(txn.take_ready());
        let touched = txn.finish();
        self.blocked.touched(touched.iter().map(Vec::as_slice));
        if self.tracker.is_some() {
            self.flushed |= matches!(name, "flushall" | "flushdb");
            self.changed.extend(touched);
        }
        reply
    }

    fn round_written(&mut self) {
        if std::mem::take(&mut self.acl_changed) {
            let loaded = std::mem::take(&mut self.acl_loaded);
            self.reload_acl(loaded);
        }
        if !self.ready.is_empty() {
            self.blocked.ready(self.ready.iter().map(Vec::as_slice));
            self.ready.clear();
        }
        if let (Some(n), false) = (&self.notifier, self.events.is_empty()) {
            n.publish(&self.events);
            self.events.clear();
        }
        if let Some(t) = &self.tracker {
            if !self.changed.is_empty() {
                t.invalidate(&self.changed);
                self.changed.clear();
            }
            if std::mem::take(&mut self.flushed) {
                t.flush();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use protobuf::Message as _;

    use super::*;
    use crate::proto::Command;

    fn argv(args: &[&[u8]]) -> Vec<Bytes> {
        args.iter().map(|a| Bytes::copy_from_slice(a)).collect()
    }

    #[test]
    fn entries_are_command_messages_both_ways() {
        let big = vec![7u8; 300];
        let args = argv(&[b"SET", b"k", b"", &big, b"PXAT", b"1700000000000"]);
        let encoded = encode_command(&args);
        let parsed = Command::parse_from_bytes(&encoded).unwrap();
        assert_eq!(
            parsed.argv.to_vec(),
            args.iter().map(|a| a.to_vec()).collect::<Vec<_>>()
        );

        let written = Command {
            argv: protobuf::RepeatedField::from_vec(args.iter().map(|a| a.to_vec()).collect()),
            ..Default::default()
        }
        .write_to_bytes()
        .unwrap();
        assert_eq!(written, encoded);
        assert_eq!(decode_command(&Bytes::from(written)).unwrap(), args);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_command(&Bytes::from_static(b"\x0a\x05ab")).is_err());
        assert!(decode_command(&Bytes::from_static(b"\xff")).is_err());
        assert_eq!(decode_command(&Bytes::new()).unwrap(), Vec::<Bytes>::new());
    }
}
