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
use tokio::sync::mpsc::UnboundedReceiver;

use crate::pubsub::Push;

use crate::command::{self, Kind, ReadCtx};
use crate::session::Session;
use crate::Shared;

type ReplyFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// A reply in the order it must be written.
struct Slot {
    name: &'static str,
    reply: ReplyFuture,
    /// The command's arguments, kept for SLOWLOG while it is on.
    argv: Option<Vec<Bytes>>,
    /// CLIENT REPLY OFF/SKIP: the reply is waited for but not sent.
    silent: bool,
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
    /// A blocking command (BLPOP…) is among the submitted ones: while it waits, the
    /// connection watches its socket, so a client that leaves stops waiting (and popping).
    blocking: bool,
    /// Replies were resolved while the last command was submitted (the slots were drained).
    resolved: bool,
    /// A read among the submitted commands has not run yet: a write after it waits until it
    /// has (a pipeline runs in order, and the read must not see the write).
    pending_read: bool,
    slowlog: Arc<crate::slowlog::SlowLog>,
    command_stats: Arc<crate::cmdstats::CommandStats>,
}

/// While a blocking command waits, at most this much of the client's next requests is read
/// ahead.
const MAX_READ_AHEAD: usize = 64 << 20;

/// Serves a plaintext client connection.
pub async fn serve(stream: TcpStream, shared: Arc<Shared>, shutdown: broadcast::Receiver<()>) {
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    serve_stream(stream, false, peer, local, shared, shutdown).await
}

/// Serves a client connection over any byte stream (plaintext, or TLS once the handshake is
/// done).
pub async fn serve_stream<S>(
    mut stream: S,
    tls: bool,
    peer: std::net::SocketAddr,
    local: std::net::SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: broadcast::Receiver<()>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let (mut session, _registration) = shared.clients.register(peer, local);
    session.tls = tls;
    let (outbox, pushes) = shared.pubsub.register(session.id);
    session.outbox = Some(outbox);
    session.pushes = Some(pushes);
    command::acl::start_session(&mut session, &shared);
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut batch = Batch {
        received: Instant::now(),
        metrics: CommandMetrics::default(),
        output: BytesMut::with_capacity(16 * 1024),
        blocking: false,
        resolved: false,
        pending_read: false,
        slowlog: shared.slowlog.clone(),
        command_stats: shared.command_stats.clone(),
    };
    let mut slots: Vec<Slot> = Vec::new();
    // Requests read while a blocking command waited are decoded before reading again.
    let mut read_ahead = false;
    // The server closes the connection through its outbox (an ACL change revoked it).
    let outbox = session.outbox.clone();
    let closed = async {
        match &outbox {
            Some(o) => o.cut_off().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(closed);
    loop {
        if !read_ahead {
            input.reserve(64 * 1024);
            tokio::select! {
                read = stream.read_buf(&mut input) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                },
                _ = &mut closed => break,
                push = next_push(&mut session.pushes) => {
                    if !write_pushes(&mut session, push, &mut stream, &mut batch.output).await {
                        break;
                    }
                    continue;
                }
                _ = shutdown.recv() => break,
            }
        }
        read_ahead = false;
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
                    let before = slots.len();
                    batch.resolved = false;
                    let copy = (batch.slowlog.slower_than.load(Ordering::Relaxed) >= 0)
                        .then(|| argv.clone());
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
                    // The command's own slot is the last one it pushed (after any it
                    // resolved first); SLOWLOG needs its arguments once it is answered.
                    let pushed = slots.len() > before || batch.resolved;
                    if let (true, Some(slot)) = (pushed, slots.last_mut()) {
                        if let Some(copy) = copy {
                            if slot.argv.is_none() && crate::slowlog::loggable(slot.name) {
                                slot.argv = Some(copy);
                            }
                        }
                        // CLIENT REPLY: OFF (and SKIP) send no reply of their own.
                        if session.reply_off || session.reply_skip > 0 {
                            slot.silent = true;
                            session.reply_skip = session.reply_skip.saturating_sub(1);
                        }
                    }
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
        if batch.blocking {
            batch.blocking = false;
            let gone = {
                let resolving = resolve(&mut session, &mut slots, &mut batch);
                tokio::pin!(resolving);
                loop {
                    tokio::select! {
                        _ = &mut resolving => break false,
                        read = stream.read_buf(&mut input), if input.len() < MAX_READ_AHEAD => {
                            match read {
                                Ok(0) | Err(_) => break true,
                                Ok(_) => {}
                            }
                        }
                        _ = shutdown.recv() => break true,
                    }
                }
            };
            if gone {
                // Dropping the waits takes the client out of the queues.
                break;
            }
            read_ahead = !input.is_empty();
        } else {
            resolve(&mut session, &mut slots, &mut batch).await;
        }
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
    shared.pubsub.forget(session.id, &session.subs);
    shared.pubsub.unregister(session.id);
    if session.monitor {
        shared.monitors.remove(session.id);
    }
    if session.tracking.is_some() {
        shared.tracker.disable(session.id);
    }
}

/// The next pub/sub message for a subscribed connection (never, for one that is not).
async fn next_push(pushes: &mut Option<UnboundedReceiver<Push>>) -> Option<Push> {
    match pushes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Writes `first` and whatever else is queued (up to a bound); false when the connection
/// must close (the socket failed, or the subscriber went past its output limit).
async fn write_pushes<S: tokio::io::AsyncWrite + Unpin>(
    session: &mut Session,
    first: Option<Push>,
    stream: &mut S,
    out: &mut BytesMut,
) -> bool {
    let (Some(outbox), Some(mut push)) = (session.outbox.clone(), first) else {
        return true;
    };
    let mut n = 0;
    loop {
        if outbox.killed() {
            tracing::info!(
                client = session.id,
                "pub/sub output limit reached or revoked; closing"
            );
            return false;
        }
        outbox.taken(&push);
        let resp3 = session.proto == rockraft_resp::Protocol::Resp3;
        if let Some(reply) = push.reply(resp3, !session.subs.is_empty()) {
            reply.encode(session.proto, out);
        }
        n += 1;
        if n >= 1024 || out.len() >= 1 << 20 {
            break;
        }
        match session.pushes.as_mut().map(UnboundedReceiver::try_recv) {
            Some(Ok(next)) => push = next,
            _ => break,
        }
    }
    // A client that reads nothing must not hold the connection here past its limit.
    let ok = tokio::select! {
        written = stream.write_all(out) => written.is_ok(),
        _ = outbox.cut_off() => {
            tracing::info!(client = session.id, "pub/sub output limit reached; closing");
            false
        }
    };
    out.clear();
    ok
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
        argv: None,
        silent: false,
    }
}

/// Waits for every submitted command in order, encoding each reply. The clock is read again
/// only after a reply that had to be waited for.
async fn resolve(session: &mut Session, slots: &mut Vec<Slot>, batch: &mut Batch) {
    batch.resolved = true;
    batch.pending_read = false;
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
        let done = *done.get_or_insert_with(Instant::now);
        let took = done.saturating_duration_since(batch.received);
        batch.metrics.record(slot.name, took.as_secs_f64());
        let error = match &reply {
            Reply::Error(e) => Some(e.as_str()),
            _ => None,
        };
        batch
            .command_stats
            .record(slot.name, took.as_micros() as u64, error);
        if !slot.silent {
            reply.encode(session.proto, &mut batch.output);
        }
        if let Some(argv) = slot.argv.take() {
            let micros = took.as_micros().min(i64::MAX as u128) as i64;
            if batch.slowlog.wants(micros) {
                let info = session.info();
                let (addr, name) = (info.addr.to_string(), info.name.clone());
                drop(info);
                batch.slowlog.push(&argv, micros, addr, name);
            }
        }
    }
}

/// How a read runs: a read command, or the read form of a write (see
/// `CommandSpec::read_form`).
#[derive(Clone, Copy)]
enum ReadRun {
    Plain(command::ReadFn),
    Maybe(fn(&ReadCtx, &[Bytes]) -> Option<Reply>),
}

/// Starts a read: confirmed by a ReadIndex round (unless the connection asked for local
/// reads), then run against the committed state.
#[allow(clippy::too_many_arguments)]
async fn submit_read(
    session: &mut Session,
    shared: &Arc<Shared>,
    spec: &'static command::CommandSpec,
    argv: Vec<Bytes>,
    run: ReadRun,
    slots: &mut Vec<Slot>,
    batch: &mut Batch,
    pending_write: &mut bool,
) {
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
            redirect(shared, slot_of(spec, &argv), leader, session.tls),
        ));
        return;
    }
    if *pending_write {
        resolve(session, slots, batch).await;
        *pending_write = false;
    }
    // Client-side caching: the keys are remembered before the read runs, so a write applied
    // meanwhile invalidates them.
    if let Some(mode) = &session.tracking {
        let cache = if mode.optin {
            session.caching_now == Some(true)
        } else if mode.optout {
            session.caching_now != Some(false)
        } else {
            true
        };
        if !mode.bcast && cache && spec.flags & command::flags::READONLY != 0 {
            shared.tracker.remember(session.id, spec.keys(&argv));
        }
    }
    let shared = shared.clone();
    let local = session.readonly;
    let tls = session.tls;
    let user = restricted_user(session);
    let resp3 = session.proto == rockraft_resp::Protocol::Resp3;
    // EVAL_RO (and EVAL of a `no-writes` script) adds a new script to the cache, as
    // Redis's does: once per script, through the log, so an EVALSHA after it finds the
    // script on every node.
    let load = (matches!(spec.name, "eval_ro" | "eval") && !local)
        .then(|| command::scripting::load_if_missing(&shared.db, &argv))
        .flatten()
        .map(|load| {
            shared.group.propose(
                command::now_ms(),
                crate::state_machine::encode_command(&load),
            )
        });
    let confirmed = (!local).then(|| shared.group.read_index());
    batch.pending_read = true;
    slots.push(Slot {
            argv: None,
            silent: false,
            name: spec.name,
            reply: Box::pin(async move {
                if let Some(load) = load {
                    let timeout = Duration::from_millis(shared.config.write_timeout_ms);
                    match tokio::time::timeout(timeout, load).await {
                        Ok(Ok(reply)) if reply.is_error() => return reply,
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            return store_error(&shared, e, "script load", slot_of(spec, &argv), tls)
                        }
                        Err(_) => {
                            return Reply::err(
                                "TIMEOUT script load outcome unknown; it may still be applied",
                            )
                        }
                    }
                }
                if let Some(confirmed) = confirmed {
                    if let Err(e) = confirmed.await {
                        return store_error(&shared, e, "read", slot_of(spec, &argv), tls);
                    }
                }
                let mut ctx = ReadCtx::committed(&shared, command::now_ms(), resp3);
                ctx.user = user;
                match run {
                    ReadRun::Plain(run) => run(&ctx, &argv),
                    // The script or function stopped being `no-writes` after the command was
                    // routed (its library was replaced): nothing ran; the client retries.
                    ReadRun::Maybe(run) => run(&ctx, &argv).unwrap_or_else(|| {
                        Reply::err("TRYAGAIN the script's flags changed while the command was routed; run it again")
                    }),
                }
            }),
        });
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
    // An unauthenticated client learns nothing, not even which commands exist: NOAUTH for
    // all but AUTH, HELLO, QUIT and RESET (Redis 7.0 answers unknown commands and wrong
    // arities first).
    if !session.authenticated
        && !command::acl::may_run_unauthenticated(&argv[0])
        && shared.acl.auth_required()
    {
        flag_transaction(session);
        slots.push(ready("unknown", Reply::err(command::acl::NOAUTH)));
        return None;
    }
    let Some(spec) = command::lookup(&argv[0]) else {
        flag_transaction(session);
        slots.push(ready("unknown", command::unknown_command(&argv)));
        return None;
    };
    if !spec.arity_ok(argv.len()) {
        flag_transaction(session);
        slots.push(ready(spec.name, command::wrong_arity(spec.name)));
        return Some(spec.name);
    }
    // An unknown subcommand, or a subcommand's wrong arity, is refused at once (and fails a
    // transaction it would be queued in), as Redis's command lookup does.
    if let Some(err) = command::subcommand_error(spec, &argv) {
        flag_transaction(session);
        slots.push(ready(spec.name, err));
        return Some(spec.name);
    }
    // Authentication, then the user's permissions (Redis's order).
    if let Some(refused) = command::acl::refuse(session, shared, spec, &argv) {
        flag_transaction(session);
        slots.push(ready(spec.name, refused));
        return Some(spec.name);
    }
    if session.multi.is_some() && spec.flags & command::flags::NO_MULTI != 0 {
        flag_transaction(session);
        slots.push(ready(
            spec.name,
            Reply::err("ERR Command not allowed inside a transaction"),
        ));
        return Some(spec.name);
    }
    // A monitor is a replica to Redis: it may not touch the keyspace.
    if session.monitor && spec.flags & (command::flags::READONLY | command::flags::WRITE) != 0 {
        slots.push(ready(
            spec.name,
            Reply::err("ERR Replica can't interact with the keyspace"),
        ));
        return Some(spec.name);
    }
    // CLIENT PAUSE: the command waits out the pause (every command under ALL, writes and
    // what may publish under WRITE), after the replies before it are sent.
    if pause_for(shared, spec).is_some() {
        resolve(session, slots, batch).await;
        *pending_write = false;
        while let Some(until) = pause_for(shared, spec) {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = shared.unpaused.notified() => {}
            }
        }
    }
    // Administrative commands are not shown (Redis: too dangerous to be).
    if shared.monitors.active() && spec.flags & command::flags::ADMIN == 0 {
        let addr = session.info().addr.to_string();
        // A monitor's RESET ends its monitoring before Redis shows the command.
        let except = (session.monitor && spec.name == "reset").then_some(session.id);
        shared.monitors.feed(&addr, &argv, except);
    }
    // CLIENT CACHING YES/NO applies to the command after it.
    let caching_command = spec.name == "client"
        && argv
            .get(1)
            .is_some_and(|a| a.eq_ignore_ascii_case(b"caching"));
    if !caching_command {
        session.caching_now = session.caching_next.take();
    }
    // A RESP2 connection that subscribed may only (un)subscribe, PING, QUIT or RESET.
    if session.proto == rockraft_resp::Protocol::Resp2
        && !session.subs.is_empty()
        && !matches!(
            spec.name,
            "subscribe"
                | "psubscribe"
                | "ssubscribe"
                | "unsubscribe"
                | "punsubscribe"
                | "sunsubscribe"
                | "ping"
                | "quit"
                | "reset"
        )
    {
        slots.push(ready(
            spec.name,
            Reply::err(format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                command::full_name(spec, &argv)
            )),
        ));
        return Some(spec.name);
    }
    if session.multi.is_some()
        && !matches!(spec.name, "exec" | "discard" | "multi" | "watch" | "quit")
    {
        queue(session, shared, spec, argv, slots);
        return Some(spec.name);
    }
    // ACL SETUSER, DELUSER, LOAD and CONFIG SET requirepass change replicated users.
    if matches!(spec.name, "acl" | "config") {
        match command::acl::as_write(shared, &argv) {
            Err(reply) => {
                slots.push(ready(spec.name, reply));
                return Some(spec.name);
            }
            Ok(Some(internal)) => {
                if batch.pending_read {
                    resolve(session, slots, batch).await;
                    *pending_write = false;
                }
                slots.push(propose_internal(shared, spec.name, internal, session.tls));
                *pending_write = true;
                return Some(spec.name);
            }
            Ok(None) => {}
        }
    }
    match spec.kind {
        Kind::Transaction => {
            resolve(session, slots, batch).await;
            *pending_write = false;
            touch(session, spec.name, batch.received);
            let slot = match spec.name {
                "multi" if session.multi.is_some() => {
                    ready(spec.name, Reply::err("ERR MULTI calls can not be nested"))
                }
                "multi" => {
                    session.multi = Some(Default::default());
                    ready(spec.name, Reply::ok())
                }
                "discard" if session.multi.is_none() => {
                    ready(spec.name, Reply::err("ERR DISCARD without MULTI"))
                }
                "discard" => {
                    session.multi = None;
                    session.watched.clear();
                    ready(spec.name, Reply::ok())
                }
                "unwatch" => {
                    session.watched.clear();
                    ready(spec.name, Reply::ok())
                }
                "watch" if session.multi.is_some() => ready(
                    spec.name,
                    Reply::err("ERR WATCH inside MULTI is not allowed"),
                ),
                "watch" => ready(spec.name, watch(session, shared, spec, &argv).await),
                "exec" if session.multi.is_none() => {
                    ready(spec.name, Reply::err("ERR EXEC without MULTI"))
                }
                _ => {
                    let reply = exec(session, shared).await;
                    *pending_write = true;
                    Slot {
                        argv: None,
                        silent: false,
                        name: spec.name,
                        reply,
                    }
                }
            };
            slots.push(slot);
        }
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
            // WAIT may wait forever: watch the socket meanwhile, as for BLPOP.
            batch.blocking |= spec.name == "wait";
            slots.push(Slot {
                argv: None,
                silent: false,
                name: spec.name,
                reply: run(shared.clone(), argv, command::Caller { tls: session.tls }),
            });
        }
        Kind::Read(run) => {
            // XREAD BLOCK waits for an entry (re-reading when one is added).
            if spec.name == "xread" {
                if let Some(timeout) = command::stream::block_timeout(&argv) {
                    if !session.readonly && !shared.group.status().is_leader() {
                        let leader = shared.group.status().leader();
                        slots.push(ready(
                            spec.name,
                            redirect(shared, slot_of(spec, &argv), leader, session.tls),
                        ));
                        return Some(spec.name);
                    }
                    if *pending_write {
                        resolve(session, slots, batch).await;
                        *pending_write = false;
                    }
                    // `$` is the stream's last ID now, then the client registers: an entry
                    // added after this point is either found by the first read or wakes it.
                    let argv = {
                        let resp3 = session.proto == rockraft_resp::Protocol::Resp3;
                        let ctx = ReadCtx::committed(shared, command::now_ms(), resp3);
                        command::stream::resolve_last_ids(&ctx, &argv)
                    };
                    let keys = spec.keys(&argv).into_iter().cloned().collect();
                    let registration = shared.blocked.register_reader(session.id, keys);
                    let wait = BlockedRead {
                        run,
                        slot: slot_of(spec, &argv),
                        tls: session.tls,
                        timeout,
                        local: session.readonly,
                        resp3: session.proto == rockraft_resp::Protocol::Resp3,
                    };
                    batch.blocking = true;
                    slots.push(Slot {
                        argv: None,
                        silent: false,
                        name: spec.name,
                        reply: Box::pin(block_read(shared.clone(), argv, wait, registration)),
                    });
                    return Some(spec.name);
                }
            }
            submit_read(
                session,
                shared,
                spec,
                argv,
                ReadRun::Plain(run),
                slots,
                batch,
                pending_write,
            )
            .await;
        }
        Kind::Write { prepare, .. } => {
            // EVAL of a `no-writes` script and FCALL of a `no-writes` function are reads.
            if let Some(form) = spec.read_form {
                if (form.applies)(&shared.db.view(), &argv) {
                    let run = ReadRun::Maybe(form.run);
                    submit_read(
                        session,
                        shared,
                        spec,
                        argv,
                        run,
                        slots,
                        batch,
                        pending_write,
                    )
                    .await;
                    return Some(spec.name);
                }
            }
            if !shared.group.status().is_leader() {
                let leader = shared.group.status().leader();
                slots.push(ready(
                    spec.name,
                    redirect(shared, slot_of(spec, &argv), leader, session.tls),
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
            if batch.pending_read {
                resolve(session, slots, batch).await;
                *pending_write = false;
            }
            if session.tracking.as_ref().is_some_and(|m| m.noloop) {
                shared.tracker.wrote(session.id, spec.keys(&argv));
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
            if let Some(timeout) = command::blocking::wait_timeout(spec, &argv) {
                let keys = spec.keys(&argv).into_iter().cloned().collect();
                // In line before the first attempt: a push between it and the wait wakes it.
                let registration = if spec.name == "xreadgroup" {
                    shared.blocked.register_reader(session.id, keys)
                } else {
                    shared.blocked.register(session.id, keys)
                };
                let slot = slot_of(spec, &argv);
                *pending_write = true;
                batch.blocking = true;
                slots.push(Slot {
                    argv: None,
                    silent: false,
                    name: spec.name,
                    reply: Box::pin(block(
                        shared.clone(),
                        spec,
                        argv,
                        slot,
                        session.tls,
                        timeout,
                        registration,
                    )),
                });
                return Some(spec.name);
            }
            // A restricted user's script runs as that user: its calls are checked at apply.
            let data = match restricted_user(session).filter(|_| crate::acl::runs_script(spec.name))
            {
                Some(user) => {
                    let mut wrapped = vec![
                        Bytes::from_static(crate::acl::AS_ENTRY),
                        Bytes::copy_from_slice(user.name.as_bytes()),
                    ];
                    wrapped.extend(argv.iter().cloned());
                    crate::state_machine::encode_command(&wrapped)
                }
                None => crate::state_machine::encode_command(&argv),
            };
            // Only an error reply needs the slot: keep the key, not its CRC.
            let key = spec.routing_key(&argv).cloned();
            let proposal = shared.group.propose(now, data);
            let timeout = Duration::from_millis(shared.config.write_timeout_ms);
            let shared = shared.clone();
            let tls = session.tls;
            let pairs = session.proto == rockraft_resp::Protocol::Resp3
                && command::zset::wants_resp3_pairs(spec.name, argv.len());
            *pending_write = true;
            slots.push(Slot {
                argv: None,
                silent: false,
                name: spec.name,
                reply: Box::pin(async move {
                    let slot = || key.as_deref().map_or(0, rockraft_raftstore::slot::key_slot);
                    match tokio::time::timeout(timeout, proposal).await {
                        Ok(Ok(reply)) if pairs => command::zset::resp3_pairs(reply),
                        Ok(Ok(reply)) => reply,
                        Ok(Err(e)) => store_error(&shared, e, "write", slot(), tls),
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

/// Proposes an internal write (`rockraft.acl …`) on behalf of `name`: its reply once
/// applied, a redirect from a follower, or "outcome unknown" after the write timeout.
fn propose_internal(shared: &Arc<Shared>, name: &'static str, argv: Vec<Bytes>, tls: bool) -> Slot {
    if !shared.group.status().is_leader() {
        let leader = shared.group.status().leader();
        return ready(name, redirect(shared, 0, leader, tls));
    }
    let proposal = shared.group.propose(
        command::now_ms(),
        crate::state_machine::encode_command(&argv),
    );
    let timeout = Duration::from_millis(shared.config.write_timeout_ms);
    let shared = shared.clone();
    Slot {
        argv: None,
        silent: false,
        name,
        reply: Box::pin(async move {
            match tokio::time::timeout(timeout, proposal).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(e)) => store_error(&shared, e, "write", 0, tls),
                Err(_) => Reply::err(format!(
                    "TIMEOUT write outcome unknown: not applied within {} ms; it may still be applied",
                    timeout.as_millis()
                )),
            }
        }),
    }
}

/// How often a blocked client's node checks that it still leads.
const LEADER_CHECK: Duration = Duration::from_millis(100);

/// A blocking command outside a transaction: attempts (proposals that pop or find nothing)
/// until one pops, woken by changes to its keys; then the timeout's reply, CLIENT UNBLOCK's,
/// or a redirect when the node stops leading. An attempt in flight is always waited for: its
/// outcome, element or not, is the client's.
async fn block(
    shared: Arc<Shared>,
    spec: &'static command::CommandSpec,
    argv: Vec<Bytes>,
    slot: u16,
    tls: bool,
    timeout: Option<Duration>,
    registration: crate::blocking::Registration,
) -> Reply {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let nothing = command::blocking::nothing(spec.name);
    let write_timeout = Duration::from_millis(shared.config.write_timeout_ms);
    let data = crate::state_machine::encode_command(&argv);
    let waiter = registration.waiter.clone();
    let mut first = true;
    loop {
        if !shared.group.status().is_leader() {
            return redirect(&shared, slot, shared.group.status().leader(), tls);
        }
        let proposal = shared.group.propose(command::now_ms(), data.clone());
        let reply = match tokio::time::timeout(write_timeout, proposal).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return store_error(&shared, e, "pop", slot, tls),
            Err(_) => {
                return Reply::err(format!(
                "TIMEOUT pop outcome unknown: not applied within {} ms; it may still be applied",
                write_timeout.as_millis()
            ))
            }
        };
        // A key that became another type is skipped while waiting, as in Redis.
        let wrong_type = matches!(&reply, Reply::Error(e) if e.starts_with("WRONGTYPE"));
        if reply != nothing && (first || !wrong_type) {
            return reply;
        }
        first = false;
        if let Some(end) = wait_woken(&shared, &waiter, deadline, slot, tls, true).await {
            return end;
        }
    }
}

/// Waits for a blocked client's wake-up; or answers how its wait ended: the timeout, CLIENT
/// UNBLOCK, or (when `leading` must hold) a redirect once the node stops leading.
async fn wait_woken(
    shared: &Shared,
    waiter: &crate::blocking::Waiter,
    deadline: Option<tokio::time::Instant>,
    slot: u16,
    tls: bool,
    leading: bool,
) -> Option<Reply> {
    use crate::blocking::Unblock;
    // One wake-up future for the whole wait: the leadership checks must not drop it.
    let woken = waiter.woken();
    tokio::pin!(woken);
    loop {
        let expired = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut woken => break,
            // Redis answers a timed-out wait with a null array, whatever the command.
            _ = expired => return Some(Reply::NilArray),
            _ = tokio::time::sleep(LEADER_CHECK) => {
                if leading && !shared.group.status().is_leader() {
                    return Some(redirect(shared, slot, shared.group.status().leader(), tls));
                }
            }
        }
    }
    match waiter.unblocked() {
        Some(Unblock::Timeout) => Some(Reply::NilArray),
        Some(Unblock::Error) => Some(Reply::err("UNBLOCKED client unblocked via CLIENT UNBLOCK")),
        None => None,
    }
}

/// How a blocked XREAD reads.
struct BlockedRead {
    run: command::ReadFn,
    slot: u16,
    tls: bool,
    timeout: Option<Duration>,
    /// A READONLY connection's local reads (on a follower too, woken by what it applies).
    local: bool,
    resp3: bool,
}

/// XREAD BLOCK: reads (each made linearizable, unless local) until one finds an entry past
/// the IDs asked for (`$` already replaced), woken when an entry is added to one of the
/// streams; then the timeout's reply, CLIENT UNBLOCK's, or a redirect.
async fn block_read(
    shared: Arc<Shared>,
    argv: Vec<Bytes>,
    wait: BlockedRead,
    registration: crate::blocking::Registration,
) -> Reply {
    let deadline = wait.timeout.map(|t| tokio::time::Instant::now() + t);
    let waiter = registration.waiter.clone();
    loop {
        if !wait.local {
            if !shared.group.status().is_leader() {
                return redirect(&shared, wait.slot, shared.group.status().leader(), wait.tls);
            }
            if let Err(e) = shared.group.read_index().await {
                return store_error(&shared, e, "read", wait.slot, wait.tls);
            }
        }
        let reply = {
            let ctx = ReadCtx::committed(&shared, command::now_ms(), wait.resp3);
            (wait.run)(&ctx, &argv)
        };
        if reply != Reply::NilArray {
            return reply;
        }
        if let Some(end) =
            wait_woken(&shared, &waiter, deadline, wait.slot, wait.tls, !wait.local).await
        {
            return end;
        }
    }
}

/// A command refused while a transaction is queued makes its EXEC fail (Redis's rule).
fn flag_transaction(session: &mut Session) {
    if let Some(multi) = session.multi.as_mut() {
        multi.failed = true;
    }
}

/// Where a command that reads or writes data must go, when it is not this node: the same rule
/// as for the command run on its own.
fn must_redirect(session: &Session, shared: &Shared, spec: &command::CommandSpec) -> bool {
    match spec.kind {
        Kind::Read(_) => !session.readonly && !shared.group.status().is_leader(),
        Kind::Write { .. } => !shared.group.status().is_leader(),
        _ => false,
    }
}

/// Queues a command after MULTI: `+QUEUED`, or the redirect a cluster client follows (which
/// also fails the transaction, as in Redis Cluster).
fn queue(
    session: &mut Session,
    shared: &Shared,
    spec: &'static command::CommandSpec,
    argv: Vec<Bytes>,
    slots: &mut Vec<Slot>,
) {
    if must_redirect(session, shared, spec) {
        flag_transaction(session);
        let leader = shared.group.status().leader();
        slots.push(ready(
            spec.name,
            redirect(shared, slot_of(spec, &argv), leader, session.tls),
        ));
        return;
    }
    if let Some(multi) = session.multi.as_mut() {
        multi.queued.push(argv);
    }
    slots.push(ready(spec.name, Reply::Simple("QUEUED".into())));
}

/// WATCH: after a ReadIndex round (unless the connection reads locally), one view gives the
/// apply index it holds and whether each key is live. A key already watched keeps its first
/// watch.
async fn watch(
    session: &mut Session,
    shared: &Arc<Shared>,
    spec: &command::CommandSpec,
    argv: &[Bytes],
) -> Reply {
    if !session.readonly {
        if !shared.group.status().is_leader() {
            let leader = shared.group.status().leader();
            return redirect(shared, slot_of(spec, argv), leader, session.tls);
        }
        if let Err(e) = shared.group.read_index().await {
            return store_error(shared, e, "read", slot_of(spec, argv), session.tls);
        }
    }
    let now = command::now_ms();
    let view = shared.db.view();
    let at = view.applied_index();
    for key in &argv[1..] {
        if session.watched.iter().any(|w| w.key == *key) {
            continue;
        }
        let live = view.get(key, now).is_some();
        session.watched.push(command::multi::Watch {
            key: key.clone(),
            at,
            live,
        });
    }
    Reply::ok()
}

/// One queued command at EXEC: answered on this node, or part of the replicated transaction.
enum Step {
    Answered(Reply),
    Replicated(&'static command::CommandSpec),
}

/// EXEC: commands answered by the node (PING, CLIENT …) run now; the writes and reads go into
/// one `rockraft.exec` entry, or, when there is no write, are served as one linearizable read.
async fn exec(session: &mut Session, shared: &Arc<Shared>) -> ReplyFuture {
    let multi = session.multi.take().unwrap_or_default();
    let watches = std::mem::take(&mut session.watched);
    if multi.failed {
        return Box::pin(std::future::ready(Reply::err(
            command::multi::ERR_EXECABORT,
        )));
    }
    let now = command::now_ms();
    let resp3 = session.proto == rockraft_resp::Protocol::Resp3;
    let mut steps = Vec::with_capacity(multi.queued.len());
    let mut replicated: Vec<Vec<Bytes>> = Vec::new();
    let mut writes = false;
    for argv in multi.queued {
        let Some(spec) = command::lookup(&argv[0]) else {
            steps.push(Step::Answered(command::unknown_command(&argv)));
            continue;
        };
        if let Some(refused) = command::acl::refuse_at_exec(session, shared, spec, &argv) {
            steps.push(Step::Answered(refused));
            continue;
        }
        let step = match spec.kind {
            Kind::Local(run) => Step::Answered(run(session, shared, &argv)),
            // Inside MULTI, WAIT does not block (Redis's rule).
            Kind::Async(_) if spec.name == "wait" => {
                Step::Answered(command::server::wait_for(shared.clone(), argv, false).await)
            }
            Kind::Async(run) => Step::Answered(
                run(shared.clone(), argv, command::Caller { tls: session.tls }).await,
            ),
            // UNWATCH, queued: the watches are spent by this EXEC anyway.
            Kind::Transaction => Step::Answered(Reply::ok()),
            Kind::Read(_) => {
                // Client-side caching: a read in a transaction is tracked (OPTIN or not: an
                // extra invalidation is harmless).
                if let Some(mode) = &session.tracking {
                    if !mode.bcast && spec.flags & command::flags::READONLY != 0 {
                        shared.tracker.remember(session.id, spec.keys(&argv));
                    }
                }
                replicated.push(argv);
                Step::Replicated(spec)
            }
            Kind::Write { prepare, .. } => match prepare(&argv, now) {
                Ok(rewritten) => {
                    writes = true;
                    replicated.push(rewritten.unwrap_or(argv));
                    Step::Replicated(spec)
                }
                Err(reply) => Step::Answered(reply),
            },
        };
        steps.push(step);
    }
    let slot = replicated
        .first()
        .and_then(|argv| command::lookup(&argv[0]).map(|spec| slot_of(spec, argv)))
        .unwrap_or(0);
    let needs_leader = writes || !session.readonly;
    if (!replicated.is_empty() || !watches.is_empty())
        && needs_leader
        && !shared.group.status().is_leader()
    {
        let leader = shared.group.status().leader();
        return Box::pin(std::future::ready(redirect(
            shared,
            slot,
            leader,
            session.tls,
        )));
    }
    let shared = shared.clone();
    let tls = session.tls;
    let user = restricted_user(session);
    if writes {
        let run_as = restricted_user(session).filter(|_| {
            replicated.iter().any(|argv| {
                command::lookup(&argv[0]).is_some_and(|s| crate::acl::runs_script(s.name))
            })
        });
        let data = command::multi::encode_exec(
            resp3,
            &watches,
            &replicated,
            run_as.as_ref().map(|u| u.name.as_str()),
        );
        let proposal = shared.group.propose(now, data);
        let timeout = Duration::from_millis(shared.config.write_timeout_ms);
        return Box::pin(async move {
            let reply = match tokio::time::timeout(timeout, proposal).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(e)) => return store_error(&shared, e, "transaction", slot, tls),
                Err(_) => {
                    return Reply::err(format!(
                    "TIMEOUT transaction outcome unknown: not applied within {} ms; it may still be applied",
                    timeout.as_millis()
                ))
                }
            };
            merge(steps, &replicated, reply, resp3)
        });
    }
    if replicated.is_empty() && watches.is_empty() {
        return Box::pin(std::future::ready(merge(
            steps,
            &[],
            Reply::Array(vec![]),
            resp3,
        )));
    }
    let confirmed = (!session.readonly).then(|| shared.group.read_index());
    Box::pin(async move {
        if let Some(confirmed) = confirmed {
            if let Err(e) = confirmed.await {
                return store_error(&shared, e, "transaction", slot, tls);
            }
        }
        let now = command::now_ms();
        let reply = shared.db.read(|view| {
            let at = crate::types::At { view, now_ms: now };
            if command::multi::broken(&at, view.applied_index(), &watches) {
                return Reply::NilArray;
            }
            let mut ctx = command::ReadCtx::fixed(&at, Some(&shared), now, resp3);
            ctx.user = user.clone();
            Reply::Array(
                replicated
                    .iter()
                    .map(|argv| match command::lookup(&argv[0]).map(|s| s.kind) {
                        Some(Kind::Read(run)) => run(&ctx, argv),
                        _ => Reply::err("ERR command cannot run in a transaction"),
                    })
                    .collect(),
            )
        });
        merge(steps, &replicated, reply, resp3)
    })
}

/// EXEC's reply: the replicated commands' replies (`reply`, an array in their order) put back
/// among those answered by the node. A nil (a watch broke) or an error stands for the whole.
fn merge(steps: Vec<Step>, replicated: &[Vec<Bytes>], reply: Reply, resp3: bool) -> Reply {
    let Reply::Array(replies) = reply else {
        return reply;
    };
    let mut replies = replies.into_iter().zip(replicated);
    Reply::Array(
        steps
            .into_iter()
            .map(|step| match step {
                Step::Answered(reply) => reply,
                Step::Replicated(spec) => match replies.next() {
                    Some((reply, argv))
                        if resp3 && command::zset::wants_resp3_pairs(spec.name, argv.len()) =>
                    {
                        command::zset::resp3_pairs(reply)
                    }
                    Some((reply, _)) => reply,
                    None => Reply::err("ERR transaction reply is missing"),
                },
            })
            .collect(),
    )
}

/// Until when `spec` must wait under CLIENT PAUSE, if it must.
fn pause_for(shared: &Shared, spec: &command::CommandSpec) -> Option<tokio::time::Instant> {
    let pause = *shared.pause.lock().unwrap_or_else(|e| e.into_inner());
    let (until, all) = pause?;
    let writes = spec.is_write() || matches!(spec.name, "publish" | "spublish" | "pfcount");
    (until > tokio::time::Instant::now() && (all || writes)).then_some(until)
}

/// The connection's ACL user, if its rules restrict it (scripts it runs are checked call by
/// call).
fn restricted_user(session: &Session) -> Option<Arc<crate::acl::User>> {
    session.user.clone().filter(|u| !u.unrestricted())
}

/// The slot a command is routed by: its first key's, or 0 for keyless commands.
fn slot_of(spec: &command::CommandSpec, argv: &[Bytes]) -> u16 {
    spec.routing_key(argv)
        .map_or(0, |k| rockraft_raftstore::slot::key_slot(k))
}

/// Where a command that only the leader may serve should go: `-MOVED <slot> <leader>`, or
/// `-CLUSTERDOWN` when no leader is known.
pub fn redirect(shared: &Shared, slot: u16, leader: Option<u64>, tls: bool) -> Reply {
    match leader.and_then(|l| shared.book.get(l)) {
        Some(info) if info.node_id != shared.node_id => Reply::err(format!(
            "MOVED {slot} {}:{}",
            info.host,
            command::cluster::client_port(&info, tls)
        )),
        _ => Reply::err("CLUSTERDOWN The cluster is down"),
    }
}

/// The reply for a raft-level failure.
pub fn store_error(shared: &Shared, e: StoreError, what: &str, slot: u16, tls: bool) -> Reply {
    match e {
        StoreError::NotLeader { leader } => redirect(shared, slot, leader, tls),
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
