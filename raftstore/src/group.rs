//! One raft group: a raft-rs `RawNode` over [`PeerStorage`], driven by its own thread.
//!
//! The thread owns all group state (no process-wide singletons; a node will run many groups).
//! Each turn it drains every queued proposal, read and raft message, then handles one `Ready`
//! in the order raft-rs documents:
//!
//! 1. send `messages()` (a leader replicates before its own fsync);
//! 2. apply the committed entries, with the apply index in the same RocksDB `WriteBatch` as
//!    the data (without a WAL: the entries are in the synced raft log already, and a crash
//!    re-applies what RocksDB had not flushed, see `engine.rs`);
//! 3. hand the new entries and the hard state, as one raft-engine `LogBatch`, to the node's
//!    store writer and `advance_append_async`: the raft thread goes on with the next turn
//!    while the batch is fsynced (one fsync covers every batch of every group waiting);
//! 4. when the writer reports the batch written, send its `persisted_messages()` (votes and
//!    append acks are never sent from memory) and tell raft (`on_persist_ready`), which is
//!    what lets a lone leader commit its own entries.
//!
//! The proposals drained in one turn share entries: up to [`MERGE_MAX_PROPOSALS`] of them (and
//! [`MERGE_MAX_BYTES`]) go into one entry, their data concatenated and each one's length and
//! clock in its header. Apply hands each to the state machine in turn, as if it had its own
//! entry (they share the entry's index, and its sequence, see [`ApplyContext::next_seq`]), in
//! the one write of the round either way. Fewer, larger entries cost raft, the log writer and
//! the followers less per write; nothing waits for more proposals to come.
//!
//! A proposal is matched to its entry by (term, index): its caller is answered only when that
//! index is applied, with the output of its own part of the entry or, if an entry of another
//! term took the index, with [`Error::EntryReplaced`]. A proposal whose index is never seen committed stays
//! pending: its outcome is unknown, and the caller's timeout says so.
//!
//! Linearizable reads use ReadIndex: all reads queued in one turn share one `read_index` call;
//! each is answered once the applied index reaches the index a quorum confirmed. A leader that
//! is the group's only voter needs no quorum: once it has applied the first entry of its term,
//! every acknowledged write is applied, and reads are answered at once, without a trip to the
//! raft thread ([`GroupStatus::sole_voter_reads`]). It stops before it proposes any membership
//! change.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use protobuf::Message as PbMessage;
use raft::eraftpb::{ConfChangeV2, Entry, EntryType, Message, MessageType, Snapshot};
use raft::{RawNode, SnapshotStatus, StateRole};
use raft_engine::LogBatch;
use rocksdb::WriteBatch;
use tokio::sync::oneshot;

use crate::apply::{ApplyContext, StateMachine};
use crate::engine::{encode_msg, Engine};
use crate::error::{Error, Result};
use crate::keys::{self, CF_RAFT};
use crate::logger::raft_logger;
use crate::membership::AddressBook;
use crate::proto::{EntryHeader, NodeInfo, SnapshotData, StoreIdent};
use crate::snap;
use crate::storage::PeerStorage;
use crate::store_writer::GroupWriter;

mod conf_change;

use conf_change::QueuedConfChange;

/// How a raft group is run.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub node_id: u64,
    pub group_id: u64,
    /// Length of one raft tick.
    pub tick: Duration,
    /// Ticks without a leader before a follower campaigns (randomised up to twice this).
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// How long a read waits for a quorum to confirm its read index.
    pub read_timeout: Duration,
    /// Most queued requests taken in one turn, so a flood cannot starve the ready loop.
    pub max_batch: usize,
    /// This node's address, which the leader records in the log for the others.
    pub me: Option<NodeInfo>,
    /// A learner whose log is within this many entries of the leader's is promoted to voter.
    pub promote_lag: u64,
    /// The log is compacted (its older half removed, up to the applied index) once it holds
    /// more entries than this...
    pub log_max_entries: u64,
    /// ... or more bytes than this. A follower further behind gets a snapshot.
    pub log_max_bytes: u64,
    /// How long a membership change may wait behind the one in progress (one at a time)
    /// before it is given up, unproposed, with [`Error::ConfChangeNotStarted`].
    pub conf_change_wait: Duration,
}

impl GroupConfig {
    pub fn new(node_id: u64, group_id: u64) -> Self {
        GroupConfig {
            node_id,
            group_id,
            tick: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 2,
            read_timeout: Duration::from_secs(5),
            max_batch: 4096,
            me: None,
            promote_lag: 64,
            log_max_entries: 20_000,
            log_max_bytes: 64 << 20,
            conf_change_wait: Duration::from_secs(20),
        }
    }
}

/// Sends raft messages to the other members of a group.
pub trait Transport: Send + 'static {
    fn send(&mut self, msgs: Vec<Message>);
}

/// The transport of a group with no other members.
pub struct NoPeers;

impl Transport for NoPeers {
    fn send(&mut self, msgs: Vec<Message>) {
        if !msgs.is_empty() {
            tracing::warn!(
                count = msgs.len(),
                "raft messages for peers, but no peer transport"
            );
        }
    }
}

/// A group's state as last published by its thread; read without a round trip.
#[derive(Default, Debug)]
pub struct GroupStatus {
    pub term: AtomicU64,
    pub commit_index: AtomicU64,
    pub applied_index: AtomicU64,
    pub last_index: AtomicU64,
    /// 0 when no leader is known.
    pub leader_id: AtomicU64,
    /// First index still in the log (1 + the compacted prefix).
    pub first_index: AtomicU64,
    /// Entries in the log and their encoded size.
    pub log_entries: AtomicU64,
    pub log_bytes: AtomicU64,
    /// Snapshots this node installed since it started.
    pub snapshots_installed: AtomicU64,
    /// Set while this node leads as the group's only voter and has applied every entry
    /// before its term: local reads are then linearizable without a read index.
    sole_voter_reads: AtomicBool,
    role: AtomicU8,
    members: Mutex<Members>,
}

/// The group's configuration and, on the leader, each member's replication progress.
#[derive(Clone, Debug, Default)]
pub struct Members {
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// (node, matched index, recently active); filled on the leader only.
    pub progress: Vec<(u64, u64, bool)>,
}

impl GroupStatus {
    pub fn role(&self) -> StateRole {
        match self.role.load(Ordering::Acquire) {
            1 => StateRole::Leader,
            2 => StateRole::Candidate,
            3 => StateRole::PreCandidate,
            _ => StateRole::Follower,
        }
    }

    pub fn is_leader(&self) -> bool {
        self.role() == StateRole::Leader
    }

    /// Whether a linearizable read may be served locally without a read index (see the
    /// module's documentation).
    pub fn sole_voter_reads(&self) -> bool {
        self.sole_voter_reads.load(Ordering::Acquire)
    }

    /// The known leader, if any.
    pub fn leader(&self) -> Option<u64> {
        Some(self.leader_id.load(Ordering::Acquire)).filter(|&l| l != raft::INVALID_ID)
    }

    pub fn members(&self) -> Members {
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

enum Request<O> {
    Propose {
        now_ms: u64,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<O>>,
    },
    Read {
        reply: oneshot::Sender<Result<()>>,
    },
    Raft(Box<Message>, Option<NodeInfo>),
    ConfChange {
        cc: ConfChangeV2,
        reply: oneshot::Sender<Result<()>>,
    },
    TransferLeader(u64),
    /// From the log writer: batches up to this ready number (of this writer) are written.
    Persisted {
        writer: u64,
        number: u64,
    },
    /// From the flusher: the flush this group asked for is done (the log may be compacted).
    Flushed,
    Reset {
        ident: StoreIdent,
        voters: Vec<u64>,
        reply: oneshot::Sender<Result<()>>,
    },
    Stop,
}

/// A cheap, cloneable way to talk to a running raft group.
pub struct GroupHandle<O> {
    tx: Sender<Request<O>>,
    status: Arc<GroupStatus>,
    node_id: u64,
    group_id: u64,
}

impl<O> Clone for GroupHandle<O> {
    fn clone(&self) -> Self {
        GroupHandle {
            tx: self.tx.clone(),
            status: self.status.clone(),
            node_id: self.node_id,
            group_id: self.group_id,
        }
    }
}

impl<O: Send + 'static> GroupHandle<O> {
    /// Queues a request now; the future resolves with the raft thread's answer.
    fn request<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Request<O>,
    ) -> impl Future<Output = Result<T>> + Send + 'static {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(make(reply)).map_err(|_| Error::Stopped);
        async move {
            sent?;
            rx.await.map_err(|_| Error::Stopped)?
        }
    }

    /// Proposes `data` stamped with the proposer's clock. The proposal is queued before this
    /// returns (so a caller can submit many before awaiting any); the future resolves with the
    /// state machine's output once the entry is applied. Dropping it does not withdraw it.
    pub fn propose(
        &self,
        now_ms: u64,
        data: Vec<u8>,
    ) -> impl Future<Output = Result<O>> + Send + 'static {
        self.request(move |reply| Request::Propose {
            now_ms,
            data,
            reply,
        })
    }

    /// Queues a read; the future resolves when local reads are linearizable: the applied index
    /// has reached a read index that a quorum confirmed after this call.
    pub fn read_index(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        let local = self.status.sole_voter_reads();
        let queued = (!local).then(|| self.request(move |reply| Request::Read { reply }));
        async move {
            match queued {
                Some(q) => q.await,
                None => Ok(()),
            }
        }
    }

    /// Hands a message from a peer (whose address is `from`, if known) to the group.
    pub fn step(&self, msg: Message, from: Option<NodeInfo>) -> Result<()> {
        self.tx
            .send(Request::Raft(Box::new(msg), from))
            .map_err(|_| Error::Stopped)
    }

    /// Queues a membership change behind any in progress (they are proposed one at a time,
    /// promotions of caught-up learners first); resolves once it is applied here. A change
    /// that would change nothing (adding a member, removing a non-member) resolves at once.
    pub fn conf_change(
        &self,
        cc: ConfChangeV2,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        self.request(move |reply| Request::ConfChange { cc, reply })
    }

    /// Asks the leader to hand leadership to `to` (forwarded by a follower).
    pub fn transfer_leader(&self, to: u64) -> Result<()> {
        self.tx
            .send(Request::TransferLeader(to))
            .map_err(|_| Error::Stopped)
    }

    /// Wipes this node's state of the group and its data, and restarts it as a non-member of
    /// the group that started from `voters`, in the cluster of `ident` (joining a cluster).
    pub fn reset(
        &self,
        ident: StoreIdent,
        voters: Vec<u64>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        self.request(move |reply| Request::Reset {
            ident,
            voters,
            reply,
        })
    }

    pub fn status(&self) -> &GroupStatus {
        &self.status
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    pub fn group_id(&self) -> u64 {
        self.group_id
    }

    /// Asks the group's thread to stop; pending callers get [`Error::Stopped`].
    pub fn stop(&self) {
        let _ = self.tx.send(Request::Stop);
    }
}

/// Most proposals that share one entry.
pub const MERGE_MAX_PROPOSALS: usize = 256;
/// Proposals share an entry until their data reaches this size; a larger one has its own.
pub const MERGE_MAX_BYTES: usize = 256 << 10;

type Reply<O> = oneshot::Sender<Result<O>>;

/// Who waits for a proposed entry: one caller, or the callers whose proposals share it (in
/// the order of its parts).
enum Waiter<O> {
    One(Reply<O>),
    Parts(Vec<Reply<O>>),
}

impl<O> Waiter<O> {
    fn fail(self, err: &Error) {
        match self {
            Waiter::One(r) => {
                let _ = r.send(Err(err.clone()));
            }
            Waiter::Parts(rs) => {
                for r in rs {
                    let _ = r.send(Err(err.clone()));
                }
            }
        }
    }
}

struct Pending<O> {
    index: u64,
    term: u64,
    waiter: Waiter<O>,
}

/// The proposals of this turn not yet in an entry: (clock, data, caller), and their size.
struct Merging<O> {
    parts: Vec<(u64, Vec<u8>, Reply<O>)>,
    bytes: usize,
}

/// An applied entry's outputs, for its waiter: one, one per part, or none (not a proposal's
/// entry).
enum Outputs<O> {
    None,
    One(O),
    Parts(Vec<O>),
}

struct ReadBatch {
    id: u64,
    sent: Instant,
    replies: Vec<oneshot::Sender<Result<()>>>,
}

struct RaftGroup<SM: StateMachine, T: Transport> {
    cfg: GroupConfig,
    raw: RawNode<PeerStorage>,
    engine: Arc<Engine>,
    sm: SM,
    transport: T,
    status: Arc<GroupStatus>,
    proposals: VecDeque<Pending<SM::Output>>,
    merging: Merging<SM::Output>,
    /// Reads not yet sent to raft (no leader commit in this term yet, or queued this turn).
    reads_queued: Vec<oneshot::Sender<Result<()>>>,
    /// Reads whose read index a quorum has not yet confirmed.
    reads_inflight: Vec<ReadBatch>,
    /// Reads with a confirmed read index, waiting for apply to reach it.
    reads_ready: VecDeque<(u64, Vec<oneshot::Sender<Result<()>>>)>,
    next_read_id: u64,
    book: AddressBook,
    /// The proposed membership change whose caller waits for its apply: (index, term, caller).
    conf_proposal: Option<(u64, u64, oneshot::Sender<Result<()>>)>,
    /// Membership changes waiting for the one in progress, in arrival order.
    conf_queue: VecDeque<QueuedConfChange>,
    /// When an address update was last proposed for each node (they are rate limited).
    address_proposed: HashMap<u64, Instant>,
    writer: GroupWriter,
    /// Which writer `writer` is (a reset starts a new one, with new ready numbers).
    writer_id: u64,
    /// The highest ready number known written, and messages waiting for their ready's write.
    persisted_number: u64,
    waiting_messages: VecDeque<(u64, Vec<Message>)>,
    /// Set on becoming leader: record this node's address at the start of the next turn.
    record_own_address: bool,
    /// A follower acknowledged entries: publish the members' progress after this batch (WAIT
    /// reads it), not only at the next tick.
    progress_moved: bool,
    /// To start a new writer with (its reports come back as requests).
    requests: Sender<Request<SM::Output>>,
    /// The highest apply index known flushed to RocksDB (the log may be compacted up to it),
    /// and whether a flush is under way.
    flushed_applied: Arc<AtomicU64>,
    flush_pending: Arc<AtomicBool>,
    /// The index of this leader's first entry of its term (0 when not leading).
    term_start: u64,
}

/// How long a generated snapshot is kept for more followers once no transfer uses it.
const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(60);

fn raft_config(cfg: &GroupConfig, applied: u64) -> raft::Config {
    raft::Config {
        id: cfg.node_id,
        election_tick: cfg.election_ticks,
        heartbeat_tick: cfg.heartbeat_ticks,
        applied,
        max_size_per_msg: 1024 * 1024,
        max_inflight_msgs: 256,
        check_quorum: true,
        pre_vote: true,
        ..Default::default()
    }
}

/// Starts the raft group `cfg.group_id` on its own thread.
pub fn start_group<SM: StateMachine, T: Transport>(
    engine: Arc<Engine>,
    cfg: GroupConfig,
    voters: &[u64],
    sm: SM,
    transport: T,
    book: AddressBook,
) -> Result<(GroupHandle<SM::Output>, JoinHandle<()>)> {
    let storage = PeerStorage::open(engine.clone(), cfg.group_id, voters)?;
    // What RocksDB holds at open is on disk.
    let applied = storage.apply_state().applied_index;
    book.load(&engine, cfg.group_id)?;
    let raft_cfg = raft_config(&cfg, storage.apply_state().applied_index);
    raft_cfg
        .validate()
        .map_err(|e| Error::Storage(format!("raft config: {e}")))?;
    let single_voter = storage.conf_state().voters == [cfg.node_id];
    let mut raw = RawNode::new(&raft_cfg, storage, &raft_logger(cfg.group_id))
        .map_err(|e| Error::Storage(format!("raft init: {e}")))?;
    if single_voter {
        // A lone voter needs nobody's vote: lead now rather than after an election timeout.
        let _ = raw.campaign();
    }
    let status = Arc::new(GroupStatus::default());
    let (tx, rx) = mpsc::channel();
    let writer = start_writer(&engine, cfg.group_id, 1, &tx)?;
    let handle = GroupHandle {
        tx: tx.clone(),
        status: status.clone(),
        node_id: cfg.node_id,
        group_id: cfg.group_id,
    };
    let mut group = RaftGroup {
        cfg,
        raw,
        engine,
        sm,
        transport,
        status,
        proposals: VecDeque::new(),
        merging: Merging {
            parts: Vec::new(),
            bytes: 0,
        },
        reads_queued: Vec::new(),
        reads_inflight: Vec::new(),
        reads_ready: VecDeque::new(),
        next_read_id: 1,
        book,
        conf_proposal: None,
        conf_queue: VecDeque::new(),
        address_proposed: HashMap::new(),
        writer,
        writer_id: 1,
        persisted_number: 0,
        waiting_messages: VecDeque::new(),
        record_own_address: false,
        progress_moved: false,
        requests: tx,
        flushed_applied: Arc::new(AtomicU64::new(applied)),
        flush_pending: Arc::default(),
        term_start: 0,
    };
    group.publish_status();
    group.publish_members();
    let name = format!("raft-group-{}", group.cfg.group_id);
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || group.run(rx))
        .map_err(|e| Error::Storage(format!("spawn raft thread: {e}")))?;
    Ok((handle, thread))
}

/// A handle on the node's store writer whose reports come back to the group as
/// [`Request::Persisted`].
fn start_writer<O: Send + 'static>(
    engine: &Arc<Engine>,
    group_id: u64,
    writer: u64,
    requests: &Sender<Request<O>>,
) -> Result<GroupWriter> {
    let requests = requests.clone();
    engine.group_writer(group_id, move |number| {
        let _ = requests.send(Request::Persisted { writer, number });
    })
}

impl<SM: StateMachine, T: Transport> RaftGroup<SM, T> {
    fn run(mut self, rx: Receiver<Request<SM::Output>>) {
        let mut next_tick = Instant::now() + self.cfg.tick;
        'run: loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(req) => {
                    if !self.handle(req) {
                        break 'run;
                    }
                    for _ in 1..self.cfg.max_batch {
                        match rx.try_recv() {
                            Ok(req) => {
                                if !self.handle(req) {
                                    break 'run;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break 'run,
            }
            self.propose_merged();
            let now = Instant::now();
            if now >= next_tick {
                self.raw.tick();
                self.expire_reads(now);
                self.engine.snapshots().gc(SNAPSHOT_MAX_AGE);
                self.on_leader_tick();
                self.publish_members();
                next_tick = now + self.cfg.tick;
            }
            if std::mem::take(&mut self.record_own_address) {
                self.on_leader_tick();
            }
            self.send_reads();
            self.start_conf_change();
            self.on_ready();
            if std::mem::take(&mut self.progress_moved) {
                self.publish_members();
            }
            // The ready just handled may have applied the change in progress: start the next
            // one now rather than at the next wake-up.
            if self.start_conf_change() {
                self.on_ready();
            }
        }
        self.status.sole_voter_reads.store(false, Ordering::Release);
        self.fail_all(Error::Stopped);
        tracing::info!(group = self.cfg.group_id, "raft group stopped");
    }

    /// Returns false when the group must stop.
    fn handle(&mut self, req: Request<SM::Output>) -> bool {
        match req {
            Request::Propose {
                now_ms,
                data,
                reply,
            } => self.merge_proposal(now_ms, data, reply),
            Request::Read { reply } => {
                if self.raw.raft.state == StateRole::Leader {
                    self.reads_queued.push(reply);
                } else {
                    let _ = reply.send(Err(self.not_leader()));
                }
            }
            Request::Raft(msg, from) => {
                match msg.get_msg_type() {
                    MessageType::MsgSnapStatus => {
                        // From our own transport: how sending a snapshot to `msg.from` went.
                        let status = if msg.reject {
                            SnapshotStatus::Failure
                        } else {
                            SnapshotStatus::Finish
                        };
                        self.raw.report_snapshot(msg.from, status);
                        return true;
                    }
                    MessageType::MsgSnapshot if msg.to == self.cfg.node_id => {
                        self.step_snapshot(*msg, from);
                        return true;
                    }
                    _ => {}
                }
                if msg.to != self.cfg.node_id {
                    // Meant for a node that was at this address before (it came back with an
                    // empty data directory, so under a new id): stepping it would apply
                    // another node's log positions to this one (raft-rs panics on a commit
                    // index past the log).
                    tracing::debug!(
                        group = self.cfg.group_id,
                        to = msg.to,
                        from = msg.from,
                        "dropped raft message addressed to another node"
                    );
                    metrics::counter!("rockraft_raft_messages_to_another_node_total").increment(1);
                    return true;
                }
                if !self.is_member(msg.from) && self.is_member(self.cfg.node_id) {
                    // A node removed from the group (or never in it) can neither vote nor
                    // append here, whatever term it claims. (A node that is joining is not
                    // in its own configuration yet: it hears from whoever leads now, which
                    // may be a node that joined after the configuration it starts from.)
                    tracing::debug!(
                        group = self.cfg.group_id,
                        from = msg.from,
                        "dropped raft message from a non-member"
                    );
                    metrics::counter!("rockraft_raft_messages_from_non_members_total").increment(1);
                    return true;
                }
                if let Some(from) = from {
                    self.check_address(from);
                }
                let ack = msg.get_msg_type() == MessageType::MsgAppendResponse;
                if let Err(e) = self.raw.step(*msg) {
                    tracing::debug!(group = self.cfg.group_id, "raft step: {e}");
                }
                self.progress_moved |= ack && self.raw.raft.state == StateRole::Leader;
            }
            Request::ConfChange { cc, reply } => {
                if self.raw.raft.state != StateRole::Leader {
                    let _ = reply.send(Err(self.not_leader()));
                } else {
                    self.conf_queue.push_back(QueuedConfChange {
                        cc,
                        queued: Instant::now(),
                        reply,
                    });
                }
            }
            Request::TransferLeader(to) => {
                // What was asked before the transfer is proposed before it.
                self.propose_merged();
                self.raw.transfer_leader(to);
            }
            Request::Persisted { writer, number } => {
                if writer == self.writer_id {
                    self.on_persisted(number);
                }
            }
            Request::Flushed => {
                self.maybe_compact();
                self.publish_status();
            }
            Request::Reset {
                ident,
                voters,
                reply,
            } => {
                let _ = reply.send(self.reset(ident, voters));
            }
            Request::Stop => return false,
        }
        true
    }

    /// Steps a snapshot whose files the transport has received. The snapshot's own
    /// configuration vouches for the sender (a joining node does not know the leader yet).
    fn step_snapshot(&mut self, msg: Message, from: Option<NodeInfo>) {
        let snap = msg.get_snapshot();
        let dir = SnapshotData::parse_from_bytes(&snap.data)
            .ok()
            .map(|d| std::path::PathBuf::from(d.received_dir))
            .filter(|d| self.engine.snapshots().is_received_dir(d));
        let Some(dir) = dir else {
            tracing::warn!(
                group = self.cfg.group_id,
                "dropped a snapshot message without received files"
            );
            return;
        };
        let cs = snap.get_metadata().get_conf_state();
        let vouched = cs.voters.contains(&msg.from) || cs.voters_outgoing.contains(&msg.from);
        if !vouched && !self.is_member(msg.from) {
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
        if let Some(from) = from {
            self.check_address(from);
        }
        let index = snap.get_metadata().index;
        if let Err(e) = self.raw.step(msg) {
            tracing::debug!(group = self.cfg.group_id, "raft step: {e}");
        }
        let pending = self
            .raw
            .raft
            .raft_log
            .unstable_snapshot()
            .as_ref()
            .is_some_and(|s| s.get_metadata().index == index);
        if !pending {
            // Raft did not take it (stale, or the log already had it): its files are not needed.
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// Installs a snapshot raft accepted (see [`crate::snap`] for the steps and why a crash
    /// at any of them is safe).
    fn install_snapshot(&mut self, snap: &Snapshot) {
        let g = self.cfg.group_id;
        let started = Instant::now();
        let data = SnapshotData::parse_from_bytes(&snap.data)
            .unwrap_or_else(|e| panic!("group {g}: accepted snapshot has bad data: {e}"));
        let dir = std::path::PathBuf::from(&data.received_dir);
        let index = snap.get_metadata().index;
        fail::fail_point!("snapshot_install_before");
        let mut wb = WriteBatch::default();
        let mut batch = LogBatch::default();
        let staged = self
            .raw
            .mut_store()
            .apply_snapshot(snap, &data, &mut wb, &mut batch);
        // RocksDB first: once the marker is on disk a restart finishes the install, the raft
        // log's part included.
        let written = staged
            .and_then(|()| self.engine.write(wb, true))
            .and_then(|()| {
                fail::fail_point!("snapshot_install_log");
                self.engine.write_log(&mut batch, true)
            });
        if let Err(e) = written {
            panic!("group {g}: snapshot install write failed: {e}");
        }
        self.flushed_applied.fetch_max(index, Ordering::AcqRel);
        fail::fail_point!("snapshot_install_ingest");
        if let Err(e) = snap::ingest(&self.engine, &dir) {
            panic!("group {g}: snapshot ingest failed: {e}");
        }
        fail::fail_point!("snapshot_install_after");
        if let Err(e) = self.raw.store().finish_snapshot() {
            panic!("group {g}: snapshot install write failed: {e}");
        }
        let _ = self.engine.snapshots().clean_received(g, None);
        if let Err(e) = self.book.load(&self.engine, g) {
            panic!("group {g}: member addresses after snapshot: {e}");
        }
        self.sm.restored();
        // Proposals this node made as leader and that the snapshot covers may or may not be
        // in it: their outcome is unknown (never "failed").
        while self.proposals.front().is_some_and(|p| p.index <= index) {
            let p = self.proposals.pop_front().expect("front exists");
            p.waiter.fail(&Error::OutcomeUnknown);
        }
        if self
            .conf_proposal
            .as_ref()
            .is_some_and(|(i, _, _)| *i <= index)
        {
            let (_, _, reply) = self.conf_proposal.take().expect("checked");
            let _ = reply.send(Err(Error::OutcomeUnknown));
        }
        self.status.applied_index.store(index, Ordering::Release);
        self.publish_members();
        metrics::counter!("rockraft_snapshots_installed_total").increment(1);
        self.status
            .snapshots_installed
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            group = g,
            index,
            term = snap.get_metadata().term,
            keys = data.keys,
            took_ms = started.elapsed().as_millis() as u64,
            "snapshot installed"
        );
    }

    /// Compacts the log once it passes the configured limits, but only up to an apply index
    /// known to be flushed: RocksDB is written without a WAL, and after a crash its data must
    /// still be within the log. A flush is requested (from the flusher thread) when the
    /// target is past the flushed index; the compaction waits for it.
    fn maybe_compact(&mut self) {
        let applied = self.raw.store().apply_state().applied_index;
        let (max_entries, max_bytes) = (self.cfg.log_max_entries, self.cfg.log_max_bytes);
        let Some(wanted) = self
            .raw
            .store()
            .compact_target(applied, max_entries, max_bytes)
        else {
            return;
        };
        let flushed = self.flushed_applied.load(Ordering::Acquire);
        if wanted > flushed && !self.flush_pending.swap(true, Ordering::AcqRel) {
            // Every apply up to `applied` is written: a flush that starts now covers them.
            let (done, pending) = (self.flushed_applied.clone(), self.flush_pending.clone());
            let wake = self.requests.clone();
            self.engine.request_flush(move || {
                done.fetch_max(applied, Ordering::AcqRel);
                pending.store(false, Ordering::Release);
                let _ = wake.send(Request::Flushed);
            });
        }
        let target = wanted.min(flushed);
        if target <= self.raw.store().truncated_index() {
            return;
        }
        let store = self.raw.mut_store();
        let mut batch = LogBatch::default();
        fail::fail_point!("compact_before");
        let written = store
            .compact_to(target, &mut batch)
            .and_then(|()| self.engine.write_log(&mut batch, false));
        if let Err(e) = written {
            panic!("group {}: log compaction failed: {e}", self.cfg.group_id);
        }
        fail::fail_point!("compact_after");
        let (entries, bytes) = self.raw.store().log_size();
        tracing::debug!(
            group = self.cfg.group_id,
            to = target,
            entries,
            bytes,
            "raft log compacted"
        );
    }

    /// Whether `node` is in the group's configuration (voters, learners, or either half of a
    /// joint configuration).
    fn is_member(&self, node: u64) -> bool {
        let cs = self.raw.store().conf_state();
        cs.voters.contains(&node)
            || cs.learners.contains(&node)
            || cs.voters_outgoing.contains(&node)
            || cs.learners_next.contains(&node)
    }

    fn not_leader(&self) -> Error {
        let leader = self.raw.raft.leader_id;
        Error::NotLeader {
            leader: (leader != raft::INVALID_ID).then_some(leader),
        }
    }

    /// Queues a proposal for this turn's entries (see the module's documentation).
    fn merge_proposal(&mut self, now_ms: u64, data: Vec<u8>, reply: Reply<SM::Output>) {
        if self.raw.raft.state != StateRole::Leader {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        if data.len() >= MERGE_MAX_BYTES {
            self.propose_merged();
            let header = EntryHeader {
                now_ms,
                ..Default::default()
            };
            self.propose(header, data, Waiter::One(reply));
            return;
        }
        if self.merging.bytes + data.len() > MERGE_MAX_BYTES {
            self.propose_merged();
        }
        self.merging.bytes += data.len();
        self.merging.parts.push((now_ms, data, reply));
        if self.merging.parts.len() >= MERGE_MAX_PROPOSALS {
            self.propose_merged();
        }
    }

    /// Proposes the queued proposals: alone, or as the parts of one entry.
    fn propose_merged(&mut self) {
        let mut parts = std::mem::take(&mut self.merging.parts);
        self.merging.bytes = 0;
        if parts.len() <= 1 {
            if let Some((now_ms, data, reply)) = parts.pop() {
                let header = EntryHeader {
                    now_ms,
                    ..Default::default()
                };
                self.propose(header, data, Waiter::One(reply));
            }
            return;
        }
        let mut header = EntryHeader::default();
        let mut data = Vec::with_capacity(parts.iter().map(|p| p.1.len()).sum());
        let mut replies = Vec::with_capacity(parts.len());
        for (now_ms, part, reply) in parts {
            header.now_ms = header.now_ms.max(now_ms);
            header.part_len.push(part.len() as u64);
            header.part_now_ms.push(now_ms);
            data.extend_from_slice(&part);
            replies.push(reply);
        }
        metrics::counter!("rockraft_raft_proposals_merged_total").increment(replies.len() as u64);
        self.propose(header, data, Waiter::Parts(replies));
    }

    fn propose(&mut self, header: EntryHeader, data: Vec<u8>, waiter: Waiter<SM::Output>) {
        if self.raw.raft.state != StateRole::Leader {
            waiter.fail(&self.not_leader());
            return;
        }
        let before = self.raw.raft.raft_log.last_index();
        let result = self.raw.propose(encode_msg(&header), data);
        let index = self.raw.raft.raft_log.last_index();
        if result.is_err() || index == before {
            waiter.fail(&Error::ProposalDropped);
            return;
        }
        self.proposals.push_back(Pending {
            index,
            term: self.raw.raft.term,
            waiter,
        });
    }

    /// Records `info` as a member's address if the log does not already say so (leader only,
    /// at most once a second per node).
    fn check_address(&mut self, info: NodeInfo) {
        if self.raw.raft.state != StateRole::Leader || info.node_id == 0 {
            return;
        }
        let cs = self.raw.store().conf_state();
        let member = cs.voters.contains(&info.node_id) || cs.learners.contains(&info.node_id);
        if !member || self.book.get(info.node_id).as_ref() == Some(&info) {
            return;
        }
        let now = Instant::now();
        if let Some(at) = self.address_proposed.get(&info.node_id) {
            if now.duration_since(*at) < Duration::from_secs(1) {
                return;
            }
        }
        self.address_proposed.insert(info.node_id, now);
        tracing::info!(
            group = self.cfg.group_id,
            node = info.node_id,
            addr = %crate::membership::client_addr(&info),
            "recording member address"
        );
        let header = EntryHeader {
            node_update: protobuf::SingularPtrField::some(info),
            ..Default::default()
        };
        let _ = self.raw.propose(encode_msg(&header), vec![]);
    }

    /// Leader housekeeping: record its own address. (Learners are promoted by
    /// [`Self::start_conf_change`].)
    fn on_leader_tick(&mut self) {
        if self.raw.raft.state != StateRole::Leader {
            return;
        }
        if let Some(me) = self.cfg.me.clone() {
            self.check_address(me);
        }
    }

    /// Leaves the current group and data behind, and restarts as a non-member of a group that
    /// started from `voters` (in cluster `ident.cluster_id`). One flushed RocksDB batch holds
    /// the new state and a "resetting" marker; then the old raft log is dropped; then the
    /// marker. A crash leaves either the old node, or the new one (whose restart drops the log
    /// if the marker is still there).
    fn reset(&mut self, ident: StoreIdent, voters: Vec<u64>) -> Result<()> {
        let g = self.cfg.group_id;
        let engine = self.engine.clone();
        // Writes of the old group must not land after the wipe; the new raft node numbers its
        // readies afresh, so it gets a writer of its own.
        self.writer.wait_idle();
        self.writer_id += 1;
        self.writer = start_writer(&engine, g, self.writer_id, &self.requests)?;
        self.persisted_number = 0;
        self.waiting_messages.clear();
        let mut wb = WriteBatch::default();
        let raft_cf = engine.cf(CF_RAFT);
        wb.delete_range_cf(raft_cf, keys::group_start(g), keys::group_end(g));
        wb.put_cf(raft_cf, keys::store_ident_key(), encode_msg(&ident));
        let mut cs = raft::eraftpb::ConfState::default();
        cs.set_voters(voters.clone());
        wb.put_cf(raft_cf, keys::initial_conf_key(g), encode_msg(&cs));
        wb.put_cf(raft_cf, keys::conf_state_key(g), encode_msg(&cs));
        wb.put_cf(raft_cf, keys::resetting_key(g), []);
        keys::stage_clear_data(&engine, &mut wb);
        self.status.sole_voter_reads.store(false, Ordering::Release);
        engine.write(wb, true)?;
        fail::fail_point!("reset_after_data");
        let mut batch = LogBatch::default();
        batch.add_command(g, raft_engine::Command::Clean);
        engine.write_log(&mut batch, true)?;
        let mut wb = WriteBatch::default();
        wb.delete_cf(raft_cf, keys::resetting_key(g));
        engine.write(wb, true)?;
        self.flushed_applied.store(0, Ordering::Release);
        engine.snapshots().clean_received(g, None)?;
        let storage = PeerStorage::open(engine.clone(), g, &voters)?;
        let raw = RawNode::new(&raft_config(&self.cfg, 0), storage, &raft_logger(g))
            .map_err(|e| Error::Storage(format!("raft init: {e}")))?;
        self.raw = raw;
        self.fail_all(Error::NotLeader { leader: None });
        self.book.load(&engine, g)?;
        self.sm.restored();
        self.address_proposed.clear();
        self.publish_status();
        self.publish_members();
        tracing::info!(
            group = g,
            cluster = format!("{:016x}", ident.cluster_id),
            "left the old group; waiting to be added"
        );
        Ok(())
    }

    fn publish_members(&mut self) {
        let cs = self.raw.store().conf_state();
        let progress = if self.raw.raft.state == StateRole::Leader {
            self.raw
                .raft
                .prs()
                .iter()
                .map(|(id, pr)| (*id, pr.matched, pr.recent_active))
                .collect()
        } else {
            Vec::new()
        };
        let members = Members {
            voters: cs.voters.clone(),
            learners: cs.learners.clone(),
            progress,
        };
        *self
            .status
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = members;
    }

    /// Sends one read-index request for every read queued since the last one.
    fn send_reads(&mut self) {
        if self.reads_queued.is_empty() || !self.raw.raft.commit_to_current_term() {
            // A new leader confirms no read before an entry of its own term is committed.
            return;
        }
        let id = self.next_read_id;
        self.next_read_id += 1;
        self.raw.read_index(id.to_be_bytes().to_vec());
        self.reads_inflight.push(ReadBatch {
            id,
            sent: Instant::now(),
            replies: std::mem::take(&mut self.reads_queued),
        });
    }

    fn expire_reads(&mut self, now: Instant) {
        let timeout = self.cfg.read_timeout;
        self.reads_inflight.retain_mut(|b| {
            if now.duration_since(b.sent) < timeout {
                return true;
            }
            for r in b.replies.drain(..) {
                let _ = r.send(Err(Error::ReadTimeout));
            }
            false
        });
    }

    fn on_ready(&mut self) {
        if !self.raw.has_ready() {
            return;
        }
        let mut rd = self.raw.ready();
        if rd.ss().is_some() {
            self.on_role_change();
        }
        if !rd.messages().is_empty() {
            self.transport.send(rd.take_messages());
        }
        let mut written_before_snapshot = None;
        if !rd.snapshot().is_empty() {
            // The snapshot replaces the log: every earlier write must be on disk first.
            written_before_snapshot = Some(self.writer.wait_idle());
            let snap = rd.snapshot().clone();
            self.install_snapshot(&snap);
        }
        let committed = rd.take_committed_entries();
        self.apply(committed);

        let mut batch = LogBatch::default();
        let store = self.raw.mut_store();
        let staged = store
            .append(rd.entries(), &mut batch)
            .and_then(|()| match rd.hs() {
                Some(hs) => store.set_hard_state(hs.clone(), &mut batch),
                None => Ok(()),
            });
        if let Err(e) = staged {
            panic!("group {}: raft log batch: {e}", self.cfg.group_id);
        }
        for rs in rd.take_read_states() {
            self.on_read_state(&rs.request_ctx, rs.index);
        }
        let applied = self.raw.store().apply_state().applied_index;
        self.answer_reads(applied);
        let number = rd.number();
        let must_sync = rd.must_sync();
        let messages = rd.take_persisted_messages();
        self.raw.advance_append_async(rd);
        if let Some(written) = written_before_snapshot {
            // A ready with a snapshot is written here, in full: raft must know the snapshot
            // persisted before anything is applied past it.
            self.on_persisted(written);
            if let Err(e) = self.engine.write_log(&mut batch, true) {
                panic!("group {}: raft log write failed: {e}", self.cfg.group_id);
            }
            if !messages.is_empty() {
                self.transport.send(messages);
            }
            self.on_persisted(number);
        } else if batch.is_empty() && !self.writer.busy() {
            // Nothing of this ready, nor before it, waits for the disk.
            if !messages.is_empty() {
                self.transport.send(messages);
            }
            self.on_persisted(number);
        } else {
            if !messages.is_empty() {
                self.waiting_messages.push_back((number, messages));
            }
            // An empty batch still goes through the writer, to be reported in order.
            self.writer.submit(number, batch, must_sync);
        }
        self.raw.advance_apply();
        self.maybe_compact();
        self.publish_status();
    }

    /// The log writer wrote every batch up to ready `number`.
    fn on_persisted(&mut self, number: u64) {
        if number <= self.persisted_number {
            return;
        }
        self.persisted_number = number;
        while self
            .waiting_messages
            .front()
            .is_some_and(|(n, _)| *n <= number)
        {
            let (_, messages) = self.waiting_messages.pop_front().expect("non-empty");
            self.transport.send(messages);
        }
        self.raw.on_persist_ready(number);
        let persisted = self.raw.raft.raft_log.persisted;
        self.raw.mut_store().set_persisted(persisted);
    }

    fn on_read_state(&mut self, ctx: &[u8], index: u64) {
        let Ok(id) = <[u8; 8]>::try_from(ctx).map(u64::from_be_bytes) else {
            return;
        };
        if let Some(pos) = self.reads_inflight.iter().position(|b| b.id == id) {
            let batch = self.reads_inflight.remove(pos);
            self.reads_ready.push_back((index, batch.replies));
        }
    }

    fn on_role_change(&mut self) {
        if self.raw.raft.state == StateRole::Leader {
            tracing::info!(
                group = self.cfg.group_id,
                term = self.raw.raft.term,
                "became leader"
            );
            // Record this node's address in the log before anything else it proposes: a
            // member that restarts on a new address (or joins) finds the leader only through
            // the log, and the first tick may come after a whole cluster has formed.
            self.record_own_address = true;
            // The empty entry raft appends on election: once it is applied, so is every
            // entry of earlier terms.
            self.term_start = self.raw.raft.raft_log.last_index();
            return;
        }
        self.term_start = 0;
        // Unconfirmed reads can no longer be confirmed by this node. Confirmed ones stay:
        // their read index is still a valid linearization point.
        let err = self.not_leader();
        for r in self.reads_queued.drain(..) {
            let _ = r.send(Err(err.clone()));
        }
        for b in self.reads_inflight.drain(..) {
            for r in b.replies {
                let _ = r.send(Err(err.clone()));
            }
        }
        // Pending proposals are kept: their entries may still commit under the new leader.
    }

    /// Applies `entries` in one batch.
    fn apply(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let engine = self.engine.clone();
        let mut ctx = ApplyContext::new(&engine);
        let mut replies = Vec::new();
        let mut conf_reply = None;
        let mut applied = None;
        let mut applied_term = 0;
        for entry in entries {
            let mut conf_result = None;
            let output = match entry.get_entry_type() {
                EntryType::EntryNormal => {
                    let mut header = if entry.context.is_empty() {
                        EntryHeader::default()
                    } else {
                        EntryHeader::parse_from_bytes(&entry.context).unwrap_or_else(|e| {
                            panic!("corrupt entry header at {}: {e}", entry.index)
                        })
                    };
                    if let Some(info) = header.node_update.take() {
                        self.record_address(info, &mut ctx);
                    }
                    ctx.set_index(entry.index);
                    if !header.part_len.is_empty() {
                        Outputs::Parts(self.apply_parts(&mut ctx, &entry, &header))
                    } else if entry.data.is_empty() {
                        Outputs::None
                    } else {
                        ctx.set_now_ms(header.now_ms);
                        Outputs::One(self.sm.apply(&mut ctx, &entry.data))
                    }
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    conf_result = Some(self.apply_conf_change(&entry, &mut ctx));
                    Outputs::None
                }
            };
            // The proposed membership change is answered at its index: with its result, or
            // as replaced when an entry of another term (of any type) took the index.
            if self
                .conf_proposal
                .as_ref()
                .is_some_and(|(index, _, _)| *index <= entry.index)
            {
                let (index, term, reply) = self.conf_proposal.take().expect("checked");
                let result = match conf_result.take() {
                    Some(result) if index == entry.index && term == entry.term => result,
                    _ => Err(Error::EntryReplaced),
                };
                conf_reply = Some((reply, result));
            }
            if let Some(waiter) = self.take_proposal(entry.index, entry.term) {
                match (waiter, output) {
                    (Waiter::One(reply), Outputs::One(out)) => replies.push((reply, out)),
                    (Waiter::Parts(rs), Outputs::Parts(outs)) if rs.len() == outs.len() => {
                        replies.extend(rs.into_iter().zip(outs));
                    }
                    (waiter, _) => waiter.fail(&Error::EntryReplaced),
                }
            }
            applied = Some(entry.index);
            applied_term = entry.term;
        }
        if let Some(applied) = applied {
            // The stored commit index may lag this (the log writer stores it): a restart
            // takes the apply index as committed (see `PeerStorage::open`).
            self.raw
                .mut_store()
                .set_applied(applied, applied_term, ctx.batch());
        }
        fail::fail_point!("apply_before");
        if let Err(e) = engine.write(ctx.into_batch(), false) {
            panic!("group {}: apply write failed: {e}", self.cfg.group_id);
        }
        fail::fail_point!("apply_after");
        self.sm.round_written();
        // The applied index is published before the proposers hear back, so a client that got
        // its reply finds its entry applied (INFO, a read on this node) whatever it asks next.
        if let Some(applied) = applied {
            engine.note_applied(applied);
            self.status.applied_index.store(applied, Ordering::Release);
        }
        for (reply, out) in replies {
            let _ = reply.send(Ok(out));
        }
        if let Some((reply, result)) = conf_reply {
            let _ = reply.send(result);
        }
        if let Some(applied) = applied {
            self.answer_reads(applied);
        }
    }

    /// Applies the parts of an entry that carries several proposals, each with its own clock.
    fn apply_parts(
        &mut self,
        ctx: &mut ApplyContext<'_>,
        entry: &Entry,
        header: &EntryHeader,
    ) -> Vec<SM::Output> {
        let lens = &header.part_len;
        let total = lens.iter().try_fold(0u64, |a, l| a.checked_add(*l));
        if header.part_now_ms.len() != lens.len() || total != Some(entry.data.len() as u64) {
            panic!(
                "group {}: entry {} has parts that do not match its data",
                self.cfg.group_id, entry.index
            );
        }
        let mut outputs = Vec::with_capacity(lens.len());
        let mut at = 0;
        for (len, now_ms) in lens.iter().zip(&header.part_now_ms) {
            let end = at + *len as usize;
            ctx.set_now_ms(*now_ms);
            outputs.push(self.sm.apply(ctx, &entry.data.slice(at..end)));
            at = end;
        }
        outputs
    }

    fn record_address(&mut self, info: NodeInfo, ctx: &mut ApplyContext<'_>) {
        let key = keys::node_addr_key(self.cfg.group_id, info.node_id);
        ctx.batch()
            .put_cf(self.engine.cf(CF_RAFT), key, encode_msg(&info));
        self.book.set(info);
    }

    /// The caller waiting on entry (index, term), if any; callers whose index was taken by an
    /// entry of another term are told so.
    fn take_proposal(&mut self, index: u64, term: u64) -> Option<Waiter<SM::Output>> {
        while let Some(front) = self.proposals.front() {
            if front.index > index {
                return None;
            }
            let p = self.proposals.pop_front().expect("front exists");
            if p.index == index && p.term == term {
                return Some(p.waiter);
            }
            p.waiter.fail(&Error::EntryReplaced);
        }
        None
    }

    fn answer_reads(&mut self, applied: u64) {
        while let Some((index, _)) = self.reads_ready.front() {
            if *index > applied {
                break;
            }
            let (_, replies) = self.reads_ready.pop_front().expect("front exists");
            for r in replies {
                let _ = r.send(Ok(()));
            }
        }
    }

    fn publish_status(&mut self) {
        let raft = &self.raw.raft;
        let s = &self.status;
        s.term.store(raft.term, Ordering::Release);
        s.commit_index
            .store(raft.raft_log.committed, Ordering::Release);
        s.last_index
            .store(raft.raft_log.last_index(), Ordering::Release);
        let previous_leader = s.leader_id.swap(raft.leader_id, Ordering::AcqRel);
        if previous_leader != raft.leader_id && raft.leader_id != raft::INVALID_ID {
            // Counted by every node as it learns of a new leader (Grafana's "leader changes").
            metrics::counter!("rockraft_raft_leader_changes_total").increment(1);
        }
        metrics::gauge!("rockraft_raft_is_leader").set(if raft.state == StateRole::Leader {
            1.0
        } else {
            0.0
        });
        let role = match raft.state {
            StateRole::Follower => 0,
            StateRole::Leader => 1,
            StateRole::Candidate => 2,
            StateRole::PreCandidate => 3,
        };
        s.role.store(role, Ordering::Release);
        let store = self.raw.store();
        let applied = store.apply_state().applied_index;
        s.applied_index.store(applied, Ordering::Release);
        self.engine.note_applied(applied);
        let (entries, bytes) = store.log_size();
        s.first_index
            .store(store.truncated_index() + 1, Ordering::Release);
        // Reads need no read index while this node leads alone (see the module's
        // documentation); never while a membership change waits or is under way.
        let cs = store.conf_state();
        let alone = raft.state == StateRole::Leader
            && cs.voters == [self.cfg.node_id]
            && cs.voters_outgoing.is_empty()
            && self.conf_proposal.is_none()
            && self.conf_queue.is_empty()
            && !raft.has_pending_conf()
            && self.term_start > 0
            && applied >= self.term_start;
        s.sole_voter_reads.store(alone, Ordering::Release);
        s.log_entries.store(entries, Ordering::Release);
        s.log_bytes.store(bytes, Ordering::Release);
        metrics::gauge!("rockraft_raft_log_entries").set(entries as f64);
        metrics::gauge!("rockraft_raft_log_bytes").set(bytes as f64);
        metrics::gauge!("rockraft_raft_term").set(raft.term as f64);
        metrics::gauge!("rockraft_raft_commit_index").set(raft.raft_log.committed as f64);
        metrics::gauge!("rockraft_raft_applied_index").set(applied as f64);
    }

    fn fail_all(&mut self, err: Error) {
        if let Some((_, _, reply)) = self.conf_proposal.take() {
            let _ = reply.send(Err(err.clone()));
        }
        for q in self.conf_queue.drain(..) {
            let _ = q.reply.send(Err(err.clone()));
        }
        for p in self.proposals.drain(..) {
            p.waiter.fail(&err);
        }
        for (_, _, reply) in self.merging.parts.drain(..) {
            let _ = reply.send(Err(err.clone()));
        }
        self.merging.bytes = 0;
        for r in self.reads_queued.drain(..) {
            let _ = r.send(Err(err.clone()));
        }
        for b in self.reads_inflight.drain(..) {
            for r in b.replies {
                let _ = r.send(Err(err.clone()));
            }
        }
        for (_, replies) in self.reads_ready.drain(..) {
            for r in replies {
                let _ = r.send(Err(err.clone()));
            }
        }
    }
}
