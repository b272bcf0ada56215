//! Peer transport: raft messages between nodes over TCP, on each node's bus port.
//!
//! Frames are a 4-byte big-endian length and an encoded [`PeerMessage`]. A node keeps one
//! outgoing connection per peer, fed by a queue: the sender writes every queued frame in one
//! `write_all`, and reconnects with backoff when the connection drops (raft resends what was
//! lost). Every frame carries the cluster id; frames of another cluster are dropped and logged,
//! so a node removed or from another cluster can neither vote nor append here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use protobuf::Message as PbMessage;
use raft::eraftpb::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};

use crate::engine::encode_msg;
use crate::group::Transport;
use crate::membership::AddressBook;
use crate::proto::{NodeInfo, PeerMessage};

/// Largest frame accepted (an entry may carry a 512 MB value).
const MAX_FRAME: usize = 1 << 30;
/// Most bytes one write gathers from the queue.
const MAX_BATCH: usize = 4 << 20;

/// Receives the messages addressed to one raft group.
pub type Route = Box<dyn Fn(Message, NodeInfo) + Send + Sync>;

/// Decides whether an outgoing raft message is sent: the hook fault tests use to partition,
/// isolate, or drop (after tikv's test_raftstore transport filters).
pub trait SendFilter: Send + Sync {
    fn allow(&self, msg: &Message) -> bool;
}

struct Link {
    tx: mpsc::UnboundedSender<Bytes>,
    connected: Arc<AtomicBool>,
}

struct NetInner {
    cluster_id: AtomicU64,
    me: RwLock<NodeInfo>,
    book: AddressBook,
    runtime: tokio::runtime::Handle,
    links: Mutex<HashMap<u64, Link>>,
    routes: RwLock<HashMap<u64, Route>>,
    /// Addresses peers announced in their own frames: how a node that just joined answers
    /// its leader before the log has told it where anyone is.
    announced: RwLock<HashMap<u64, NodeInfo>>,
    dropped_foreign: AtomicU64,
    filters: RwLock<Vec<Arc<dyn SendFilter>>>,
}

impl NetInner {
    fn bus_addr(&self, node_id: u64) -> Option<String> {
        let info = self.book.get(node_id).or_else(|| {
            self.announced
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&node_id)
                .cloned()
        })?;
        Some(format!("{}:{}", info.host, info.bus_port))
    }
}

/// A node's connections to its peers.
#[derive(Clone)]
pub struct PeerNetwork {
    inner: Arc<NetInner>,
}

impl PeerNetwork {
    pub fn new(
        cluster_id: u64,
        me: NodeInfo,
        book: AddressBook,
        runtime: tokio::runtime::Handle,
    ) -> PeerNetwork {
        PeerNetwork {
            inner: Arc::new(NetInner {
                cluster_id: AtomicU64::new(cluster_id),
                me: RwLock::new(me),
                book,
                runtime,
                links: Mutex::new(HashMap::new()),
                routes: RwLock::new(HashMap::new()),
                announced: RwLock::new(HashMap::new()),
                dropped_foreign: AtomicU64::new(0),
                filters: RwLock::new(Vec::new()),
            }),
        }
    }

    pub fn cluster_id(&self) -> u64 {
        self.inner.cluster_id.load(Ordering::Acquire)
    }

    /// Switches to another cluster (a node that joined one).
    pub fn set_cluster_id(&self, id: u64) {
        self.inner.cluster_id.store(id, Ordering::Release);
    }

    pub fn me(&self) -> NodeInfo {
        self.inner
            .me
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Delivers messages for `group_id` to `route`.
    pub fn register(&self, group_id: u64, route: Route) {
        self.inner
            .routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(group_id, route);
    }

    /// Whether the outgoing connection to `node_id` is up.
    pub fn is_connected(&self, node_id: u64) -> bool {
        self.inner
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&node_id)
            .is_some_and(|l| l.connected.load(Ordering::Relaxed))
    }

    /// Frames dropped because they came from another cluster.
    pub fn dropped_foreign(&self) -> u64 {
        self.inner.dropped_foreign.load(Ordering::Relaxed)
    }

    /// The sending side for raft group `group_id`.
    pub fn transport(&self, group_id: u64) -> GroupTransport {
        GroupTransport {
            net: self.clone(),
            group_id,
        }
    }

    /// Accepts peer connections until `shutdown` fires.
    pub async fn serve(self, listener: TcpListener, mut shutdown: broadcast::Receiver<()>) {
        loop {
            let stream = tokio::select! {
                a = listener.accept() => match a {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!("peer accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.recv() => return,
            };
            let inner = self.inner.clone();
            let stop = shutdown.resubscribe();
            self.inner
                .runtime
                .spawn(async move { receive(inner, stream, stop).await });
        }
    }

    /// Adds a filter on outgoing raft messages (fault injection).
    pub fn add_filter(&self, filter: Arc<dyn SendFilter>) {
        self.inner
            .filters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(filter);
    }

    /// Removes every filter.
    pub fn clear_filters(&self) {
        self.inner
            .filters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Opens the link to `node_id` if there is none, so link state reflects reachability even
    /// between nodes that have nothing to say to each other (followers).
    pub fn ensure_link(&self, node_id: u64) {
        let mut links = self.inner.links.lock().unwrap_or_else(|e| e.into_inner());
        self.link(&mut links, node_id);
    }

    fn link<'a>(&self, links: &'a mut HashMap<u64, Link>, to: u64) -> &'a Link {
        links.entry(to).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let connected = Arc::new(AtomicBool::new(false));
            let inner = self.inner.clone();
            let flag = connected.clone();
            self.inner
                .runtime
                .spawn(async move { send_loop(inner, to, rx, flag).await });
            Link { tx, connected }
        })
    }

    fn send(&self, group_id: u64, msg: &Message) {
        {
            let filters = self.inner.filters.read().unwrap_or_else(|e| e.into_inner());
            if !filters.iter().all(|f| f.allow(msg)) {
                return;
            }
        }
        let to = msg.to;
        let frame = {
            let pm = PeerMessage {
                cluster_id: self.cluster_id(),
                group_id,
                from: protobuf::SingularPtrField::some(self.me()),
                message: encode_msg(msg),
                ..Default::default()
            };
            let body = encode_msg(&pm);
            let mut f = BytesMut::with_capacity(4 + body.len());
            f.put_u32(body.len() as u32);
            f.put_slice(&body);
            f.freeze()
        };
        let mut links = self.inner.links.lock().unwrap_or_else(|e| e.into_inner());
        if self.link(&mut links, to).tx.send(frame).is_err() {
            links.remove(&to);
        }
    }
}

/// The [`Transport`] of one raft group.
pub struct GroupTransport {
    net: PeerNetwork,
    group_id: u64,
}

impl Transport for GroupTransport {
    fn send(&mut self, msgs: Vec<Message>) {
        for m in &msgs {
            self.net.send(self.group_id, m);
        }
    }
}

async fn send_loop(
    inner: Arc<NetInner>,
    to: u64,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    connected: Arc<AtomicBool>,
) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let Some(addr) = inner.bus_addr(to) else {
            // Not (yet) in the address book: drop what is queued; raft will resend.
            if drain(&mut rx) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let stream =
            match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(&addr)).await {
                Ok(Ok(s)) => s,
                _ => {
                    if drain(&mut rx) {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
        let _ = stream.set_nodelay(true);
        let mut stream = stream;
        backoff = Duration::from_millis(20);
        connected.store(true, Ordering::Relaxed);
        tracing::debug!(peer = to, %addr, "peer connected");
        let mut buf = BytesMut::new();
        loop {
            let Some(first) = rx.recv().await else {
                connected.store(false, Ordering::Relaxed);
                return;
            };
            buf.clear();
            buf.extend_from_slice(&first);
            while buf.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(f) => buf.extend_from_slice(&f),
                    Err(_) => break,
                }
            }
            if stream.write_all(&buf).await.is_err() {
                break;
            }
        }
        connected.store(false, Ordering::Relaxed);
        tracing::debug!(peer = to, %addr, "peer connection lost");
    }
}

/// Drops every queued frame; true when the queue is closed for good.
fn drain(rx: &mut mpsc::UnboundedReceiver<Bytes>) -> bool {
    loop {
        match rx.try_recv() {
            Ok(_) => {}
            Err(mpsc::error::TryRecvError::Empty) => return false,
            Err(mpsc::error::TryRecvError::Disconnected) => return true,
        }
    }
}

async fn receive(inner: Arc<NetInner>, stream: TcpStream, mut shutdown: broadcast::Receiver<()>) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    loop {
        let len = tokio::select! {
            l = reader.read_u32() => match l {
                Ok(l) => l as usize,
                Err(_) => return,
            },
            _ = shutdown.recv() => return,
        };
        if len > MAX_FRAME {
            tracing::warn!(len, "peer frame too large; closing the connection");
            return;
        }
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let Ok(pm) = PeerMessage::parse_from_bytes(&body) else {
            tracing::warn!("undecodable peer frame; closing the connection");
            return;
        };
        let ours = inner.cluster_id.load(Ordering::Acquire);
        if pm.cluster_id != ours {
            let n = inner.dropped_foreign.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(
                    from = pm.get_from().node_id,
                    their_cluster = format!("{:016x}", pm.cluster_id),
                    our_cluster = format!("{ours:016x}"),
                    dropped = n + 1,
                    "ignoring raft traffic from another cluster"
                );
            }
            continue;
        }
        let Ok(msg) = Message::parse_from_bytes(&pm.message) else {
            continue;
        };
        let from = pm.get_from();
        if from.node_id != 0 {
            let mut announced = inner.announced.write().unwrap_or_else(|e| e.into_inner());
            if announced.get(&from.node_id) != Some(from) {
                announced.insert(from.node_id, from.clone());
            }
        }
        let routes = inner.routes.read().unwrap_or_else(|e| e.into_inner());
        if let Some(route) = routes.get(&pm.group_id) {
            route(msg, pm.get_from().clone());
        }
    }
}
