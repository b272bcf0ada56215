//! One client connection: read requests, execute them in order, write the replies.
//!
//! Pipelined requests are submitted as they are decoded, so a batch of writes from one
//! connection reaches raft together and shares one fsync. Replies are written in request order,
//! all replies of a batch in one write. A read that follows a not-yet-answered write of the
//! same connection waits for it, so a connection always reads its own writes.
//!
//! A malformed request gets Redis's protocol error, then the connection closes (the stream
//! cannot be resynchronised); every other error leaves the connection open.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rockraft_raftstore::Error as StoreError;
use rockraft_resp::{decode_request, Reply, RequestLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast;

use crate::command::{self, Kind, ReadCtx};
use crate::session::Session;
use crate::Shared;

type ReplyFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// A reply in the order it must be written.
struct Slot {
    name: &'static str,
    reply: ReplyFuture,
}

/// The per-command metric handles a connection has used, so that recording one is not a
/// registry lookup by name and label.
#[derive(Default)]
struct CommandMetrics {
    handles: Vec<(&'static str, metrics::Counter, metrics::Histogram)>,
}

impl CommandMetrics {
    /// Beyond this many distinct commands a connection records through the registry.
    const MAX: usize = 32;

    fn record(&mut self, name: &'static str, seconds: f64) {
        if let Some((_, count, took)) = self.handles.iter().find(|(n, ..)| *n == name) {
            count.increment(1);
            took.record(seconds);
            return;
        }
        let count = metrics::counter!("rockraft_commands_total", "cmd" => name);
        let took = metrics::histogram!("rockraft_command_duration_seconds", "cmd" => name);
        count.increment(1);
        took.record(seconds);
        if self.handles.len() < Self::MAX {
            self.handles.push((name, count, took));
        }
    }
}

/// What the replies of one read from the socket share.
struct Batch {
    /// When the requests were read: command durations are measured from here.
    received: Instant,
    metrics: CommandMetrics,
    output: BytesMut,
}

pub async fn serve(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    mut shutdown: broadcast::Receiver<()>,
) {
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let (mut session, _registration) = shared.clients.register(peer, local);
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut batch = Batch {
        received: Instant::now(),
        metrics: CommandMetrics::default(),
        output: BytesMut::with_capacity(16 * 1024),
    };
    let mut slots: Vec<Slot> = Vec::new();
    loop {
        input.reserve(64 * 1024);
        tokio::select! {
            read = stream.read_buf(&mut input) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            _ = shutdown.recv() => break,
        }
        let limits = RequestLimits {
            max_bulk_len: shared.runtime.proto_max_bulk_len.load(Ordering::Relaxed) as usize,
        };
        batch.received = Instant::now();
        let mut close = false;
        let mut pending_write = false;
        let mut last_cmd = None;
        loop {
            match decode_request(&mut input, &limits) {
                Ok(None) => break,
                Ok(Some(argv)) if argv.is_empty() => continue,
                Ok(Some(argv)) => {
                    last_cmd = submit(
                        &mut session,
                        &shared,
                        argv,
                        &mut slots,
                        &mut batch,
                        &mut pending_write,
                    )
                    .await
                    .or(last_cmd);
                    if session.quit {
                        close = true;
                        break;
                    }
                }
                Err(e) => {
                    tracing::debug!(client = session.id, %peer, "protocol error: {e}");
                    slots.push(ready("protocol", Reply::err(format!("ERR {e}"))));
                    close = true;
                    break;
                }
            }
        }
        resolve(&mut session, &mut slots, &mut batch).await;
        if let Some(name) = last_cmd {
            touch(&session, name, batch.received);
        }
        if !batch.output.is_empty() {
            if stream.write_all(&batch.output).await.is_err() {
                break;
            }
            batch.output.clear();
        }
        if close {
            break;
        }
        if batch.output.capacity() > 1024 * 1024 {
            batch.output = BytesMut::with_capacity(16 * 1024);
        }
    }
}

/// Records the connection's last command for CLIENT LIST / INFO (once per batch, and before
/// each local command so that one sees itself).
fn touch(session: &Session, name: &'static str, at: Instant) {
    let mut info = session.info();
    info.last_active = at;
    if info.last_cmd != name {
        info.last_cmd = name.to_string();
    }
}

fn ready(name: &'static str, reply: Reply) -> Slot {
    Slot {
        name,
        reply: Box::pin(std::future::ready(reply)),
    }
}

/// Waits for every submitted command in order, encoding each reply. The clock is read again
/// only after a reply that had to be waited for.
async fn resolve(session: &mut Session, slots: &mut Vec<Slot>, batch: &mut Batch) {
    let mut done = None;
    for mut slot in slots.drain(..) {
        let now = std::future::poll_fn(|cx| Poll::Ready(slot.reply.as_mut().poll(cx))).await;
        let reply = match now {
            Poll::Ready(reply) => reply,
            Poll::Pending => {
                done = None;
                slot.reply.await
            }
        };
        reply.encode(session.proto, &mut batch.output);
        let done = *done.get_or_insert_with(Instant::now);
        let took = done.saturating_duration_since(batch.received);
        batch.metrics.record(slot.name, took.as_secs_f64());
    }
}

/// Starts one command: local ones run now, reads and writes are handed to raft and answered
/// when `resolve` awaits them. Returns the command's name if it is a known one.
async fn submit(
    session: &mut Session,
    shared: &Arc<Shared>,
    argv: Vec<Bytes>,
    slots: &mut Vec<Slot>,
    batch: &mut Batch,
    pending_write: &mut bool,
) -> Option<&'static str> {
    shared
        .stats
        .commands_processed
        .fetch_add(1, Ordering::Relaxed);
    let Some(spec) = command::lookup(&argv[0]) else {
        slots.push(ready("unknown", command::unknown_command(&argv)));
        return None;
    };
    if !spec.arity_ok(argv.len()) {
        slots.push(ready(spec.name, command::wrong_arity(spec.name)));
        return Some(spec.name);
    }
    match spec.kind {
        Kind::Local(run) => {
            // Local commands may change the session (HELLO switches protocol): everything
            // before them is answered first.
            resolve(session, slots, batch).await;
            *pending_write = false;
            touch(session, spec.name, batch.received);
            let reply = run(session, shared, &argv);
            slots.push(ready(spec.name, reply));
        }
        Kind::Async(run) => {
            resolve(session, slots, batch).await;
            *pending_write = false;
            touch(session, spec.name, batch.received);
            slots.push(Slot {
                name: spec.name,
                reply: run(shared.clone(), argv),
            });
        }
        Kind::Read(run) => {
            // A deliberately broken build for the campaign's own test: every read is local
            // and unconfirmed (stale reads), which the checker must catch.
            #[cfg(feature = "failpoints")]
            if fail::eval("stale_reads", |_| ()).is_some() {
                session.readonly = true;
            }
            // A follower serves reads only to a connection that asked for local reads.
            if !session.readonly && !shared.group.status().is_leader() {
                let leader = shared.group.status().leader();
                slots.push(ready(
                    spec.name,
                    redirect(shared, slot_of(spec, &argv), leader),
                ));
                return Some(spec.name);
            }
            if *pending_write {
                resolve(session, slots, batch).await;
                *pending_write = false;
            }
            let shared = shared.clone();
            let local = session.readonly;
            let resp3 = session.proto == rockraft_resp::Protocol::Resp3;
            let confirmed = (!local).then(|| shared.group.read_index());
            slots.push(Slot {
                name: spec.name,
                reply: Box::pin(async move {
                    if let Some(confirmed) = confirmed {
                        if let Err(e) = confirmed.await {
                            return store_error(&shared, e, "read", slot_of(spec, &argv));
                        }
                    }
                    let ctx = ReadCtx {
                        db: &shared.db,
                        shared: &shared,
                        now_ms: command::now_ms(),
                        resp3,
                    };
                    run(&ctx, &argv)
                }),
            });
        }
        Kind::Write { prepare, .. } => {
            if !shared.group.status().is_leader() {
                let leader = shared.group.status().leader();
                slots.push(ready(
                    spec.name,
                    redirect(shared, slot_of(spec, &argv), leader),
                ));
                return Some(spec.name);
            }
            // A deliberately broken build for the campaign's own test: some SETs are
            // acknowledged without being written (lost writes), which it must catch.
            #[cfg(feature = "failpoints")]
            if spec.name == "set" && fail::eval("ack_without_write", |_| ()).is_some() {
                slots.push(ready(spec.name, Reply::ok()));
                return Some(spec.name);
            }
            let now = command::now_ms();
            let argv = match prepare(&argv, now) {
                Ok(Some(rewritten)) => rewritten,
                Ok(None) => argv,
                Err(reply) => {
                    slots.push(ready(spec.name, reply));
                    return Some(spec.name);
                }
            };
            let data = crate::state_machine::encode_command(&argv);
            // Only an error reply needs the slot: keep the key, not its CRC.
            let key = spec.routing_key(&argv).cloned();
            let proposal = shared.group.propose(now, data);
            let timeout = Duration::from_millis(shared.config.write_timeout_ms);
            let shared = shared.clone();
            let pairs = session.proto == rockraft_resp::Protocol::Resp3
                && command::zset::wants_resp3_pairs(spec.name, argv.len());
            *pending_write = true;
            slots.push(Slot {
                name: spec.name,
                reply: Box::pin(async move {
                    let slot = || key.as_deref().map_or(0, rockraft_raftstore::slot::key_slot);
                    match tokio::time::timeout(timeout, proposal).await {
                        Ok(Ok(reply)) if pairs => command::zset::resp3_pairs(reply),
                        Ok(Ok(reply)) => reply,
                        Ok(Err(e)) => store_error(&shared, e, "write", slot()),
                        Err(_) => Reply::err(format!(
                            "TIMEOUT write outcome unknown: not applied within {} ms; it may still be applied",
                            timeout.as_millis()
                        )),
                    }
                }),
            });
        }
    }
    Some(spec.name)
}

/// The slot a command is routed by: its first key's, or 0 for keyless commands.
fn slot_of(spec: &command::CommandSpec, argv: &[Bytes]) -> u16 {
    spec.routing_key(argv)
        .map_or(0, |k| rockraft_raftstore::slot::key_slot(k))
}

/// Where a command that only the leader may serve should go: `-MOVED <slot> <leader>`, or
/// `-CLUSTERDOWN` when no leader is known.
pub fn redirect(shared: &Shared, slot: u16, leader: Option<u64>) -> Reply {
    match leader.and_then(|l| shared.book.get(l)) {
        Some(info) if info.node_id != shared.node_id => {
            Reply::err(format!("MOVED {slot} {}:{}", info.host, info.port))
        }
        _ => Reply::err("CLUSTERDOWN The cluster is down"),
    }
}

/// The reply for a raft-level failure.
pub fn store_error(shared: &Shared, e: StoreError, what: &str, slot: u16) -> Reply {
    match e {
        StoreError::NotLeader { leader } => redirect(shared, slot, leader),
        StoreError::ConfChangeNotStarted { .. } => {
            Reply::err(format!("TRYAGAIN {e}; it was not applied"))
        }
        StoreError::ConfChangeRejected(_) => Reply::err(format!("ERR {e}")),
        StoreError::EntryReplaced | StoreError::ProposalDropped => Reply::err(format!(
            "TRYAGAIN {what} was not committed (leadership changed) and was not applied"
        )),
        StoreError::OutcomeUnknown => Reply::err(format!(
            "TIMEOUT {what} outcome unknown: leadership changed before it was known to be applied"
        )),
        StoreError::ReadTimeout => {
            Reply::err("TRYAGAIN read could not be confirmed by a quorum in time")
        }
        StoreError::Stopped => Reply::err(format!(
            "ERR server is shutting down; {what} outcome unknown"
        )),
        StoreError::Storage(m) | StoreError::Corrupted(m) => Reply::err(format!("ERR {m}")),
    }
}
