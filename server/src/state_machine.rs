//! The replicated state machine: decodes a write command from a log entry and applies it with
//! the command table's `apply`, producing the client's reply.

use bytes::Bytes;
use protobuf::Message as PbMessage;
use rockraft_raftstore::{ApplyContext, StateMachine};
use rockraft_resp::Reply;

use crate::command::{self, Kind};
use crate::db::Txn;
use crate::proto::Command;

/// Encodes a canonical write command for a log entry.
pub fn encode_command(argv: &[Bytes]) -> Vec<u8> {
    let cmd = Command {
        argv: protobuf::RepeatedField::from_vec(argv.iter().map(|a| a.to_vec()).collect()),
        ..Default::default()
    };
    cmd.write_to_bytes().expect("encode command")
}

/// Applies rockraft's write commands.
pub struct KvStateMachine;

impl StateMachine for KvStateMachine {
    type Output = Reply;

    fn apply(&mut self, ctx: &mut ApplyContext<'_>, data: &[u8]) -> Reply {
        let argv: Vec<Bytes> = match Command::parse_from_bytes(data) {
            Ok(cmd) if !cmd.argv.is_empty() => cmd.argv.into_iter().map(Bytes::from).collect(),
            _ => {
                tracing::error!("log entry does not hold a command; skipped");
                return Reply::err("ERR undecodable log entry");
            }
        };
        let name = argv[0].to_ascii_lowercase();
        let apply = match command::lookup(&name) {
            Some(spec) => match spec.kind {
                Kind::Write { apply, .. } => apply,
                _ => return Reply::err("ERR not a write command"),
            },
            None => match command::internal_apply(&name) {
                Some(apply) => apply,
                None => return Reply::err("ERR unknown write command in log"),
            },
        };
        apply(&mut Txn::new(ctx), &argv)
    }
}
