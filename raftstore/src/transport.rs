//! Peer transport: raft messages between nodes over TCP, on each node's bus port.
//!
//! Frames are a 4-byte big-endian length and an encoded [`PeerMessage`]. A node keeps one
//! outgoing connection per peer, fed by a queue: the sender writes every queued frame in one
//! `write_all`, and reconnects with backoff when the connection drops (raft resends what was
//! lost). Every frame carries the cluster id; frames of another cluster are dropped and logged,
//! so a node removed or from another cluster can neither vote nor append here.
//!
//! A connection may be wrapped twice before its first frame: in mutual TLS (`--tls-cluster`;
//! both sides present a certificate signed by the cluster's CA) and then in the cluster-secret
//! handshake (`bus_auth`). A peer that fails either is dropped and counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use protobuf::Message as PbMessage;
use raft::eraftpb::{Message, MessageType};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};

use crate::engine::{encode_msg, Engine};
use crate::group::Transport;
use crate::membership::AddressBook;
use crate::proto::{NodeInfo, PeerMessage, SnapshotData};
use crate::snap;

/// Largest frame accepted (an entry may carry a 512 MB value).
const MAX_FRAME: usize = 1 << 30;
/// Most bytes one write gathers from the queue.
const MAX_BATCH: usize = 4 << 20;

/// Receives the messages addressed to one raft group.
pub type Route = Box<dyn Fn(Message, NodeInfo) + Send + Sync>;

/// Receives the application's own messages: (the sender's node id, the payload).
pub type AppRoute = Box<dyn Fn(u64, Bytes) + Send + Sync>;

/// Decides whether an outgoing raft message is sent: the hook fault tests use to partition,
/// isolate, or drop (after tikv's test_raftstore transport filters).
pub trait SendFilter: Send + Sync {
    fn allow(&self, msg: &Message) -> bool;

    /// How long to hold `msg` back before sending it (messages held for different times
    /// may overtake each other, as on a real network).
    fn delay(&self, _msg: &Message) -> Option<Duration> {
        None
    }
}

/// Mutual TLS for peer connections: the connector dials with this node's certificate and
/// checks the listener's against the cluster CA, the acceptor requires the dialer's.
#[derive(Clone)]
pub struct BusTls {
    pub connector: tokio_rustls::TlsConnector,
    pub acceptor: tokio_rustls::TlsAcceptor,
}

/// A peer connection: TCP, or TLS over TCP.
pub trait BusIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> BusIo for T {}
pub type BusStream = Box<dyn BusIo>;

/// The name `addr` ("host:port") is dialed by, for TLS.
pub fn server_name(
    addr: &str,
) -> std::io::Result<tokio_rustls::rustls::pki_types::ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{host}: {e}")))
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
    app: RwLock<Option<AppRoute>>,
    /// Addresses peers announced in their own frames: how a node that just joined answers
    /// its leader before the log has told it where anyone is.
    announced: RwLock<HashMap<u64, NodeInfo>>,
    dropped_foreign: AtomicU64,
    snapshots_sent: AtomicU64,
    /// The cluster secret every peer connection must prove (none: no handshake).
    secret: RwLock<Option<crate::bus_auth::Secret>>,
    /// Mutual TLS on every peer connection (none: plain TCP).
    tls: RwLock<Option<BusTls>>,
    /// Peer connections refused for failing the handshake.
    auth_failures: AtomicU64,
    filters: RwLock<Vec<Arc<dyn SendFilter>>>,
    snapshots: Option<Arc<Engine>>,
}

impl NetInner {
    fn secret(&self) -> Option<crate::bus_auth::Secret> {
        self.secret
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn tls(&self) -> Option<BusTls> {
        self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Opens a peer connection to `addr`: TLS when the bus has it, then the handshake when
    /// there is a secret. A peer that fails either is refused (`PermissionDenied`).
    async fn dial(&self, addr: &str, timeout: Duration) -> std::io::Result<BusStream> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let _ = tcp.set_nodelay(true);
        let mut stream: BusStream = match self.tls() {
            Some(tls) => {
                let name = server_name(addr)?;
                Box::new(tls_handshake(tls.connector.connect(name, tcp)).await?)
            }
            None => Box::new(tcp),
        };
        if let Some(secret) = self.secret() {
            crate::bus_auth::dial(&mut stream, &secret).await?;
        }
        Ok(stream)
    }

    /// Completes the listener's side of a peer connection (TLS, then the secret); `Err` says
    /// why the peer is refused.
    async fn accept(&self, tcp: TcpStream) -> std::io::Result<BusStream> {
        let _ = tcp.set_nodelay(true);
        let mut stream: BusStream = match self.tls() {
            Some(tls) => Box::new(tls_handshake(tls.acceptor.accept(tcp)).await?),
            None => Box::new(tcp),
        };
        if let Some(secret) = self.secret() {
            crate::bus_auth::accept(&mut stream, &secret).await?;
        }
        Ok(stream)
    }

    /// Counts (and now and then logs) a peer connection refused by the handshake.
    fn refused(&self, peer: String, why: &std::io::Error) {
        let n = self.auth_failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("rockraft_bus_auth_failures_total").increment(1);
        if n.is_power_of_two() || n == 0 {
            tracing::warn!(%peer, refused = n + 1, "peer connection refused: {why}");
        }
    }

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
    /// A node's network; `engine` holds the snapshots it sends and receives.
    pub fn new(
        cluster_id: u64,
        me: NodeInfo,
        book: AddressBook,
        runtime: tokio::runtime::Handle,
        engine: Option<Arc<Engine>>,
    ) -> PeerNetwork {
        PeerNetwork {
            inner: Arc::new(NetInner {
                cluster_id: AtomicU64::new(cluster_id),
                me: RwLock::new(me),
                book,
                runtime,
                links: Mutex::new(HashMap::new()),
                routes: RwLock::new(HashMap::new()),
                app: RwLock::new(None),
                announced: RwLock::new(HashMap::new()),
                dropped_foreign: AtomicU64::new(0),
                snapshots_sent: AtomicU64::new(0),
                secret: RwLock::new(None),
                tls: RwLock::new(None),
                auth_failures: AtomicU64::new(0),
                filters: RwLock::new(Vec::new()),
                snapshots: engine,
            }),
        }
    }

    /// Requires every peer connection, both ways, to prove `secret` (see `bus_auth`).
    pub fn set_secret(&self, secret: Option<&[u8]>) {
        *self.inner.secret.write().unwrap_or_else(|e| e.into_inner()) =
            secret.map(crate::bus_auth::Secret::new);
    }

    /// Puts every peer connection, both ways, on mutual TLS (`None`: plain TCP).
    pub fn set_tls(&self, tls: Option<BusTls>) {
        *self.inner.tls.write().unwrap_or_else(|e| e.into_inner()) = tls;
    }

    /// Peer connections refused because they failed the handshake.
    pub fn auth_failures(&self) -> u64 {
        self.inner.auth_failures.load(Ordering::Relaxed)
    }

    /// Opens a connection to the bus at `addr` and completes the handshake (a node about to
    /// be invited must know the cluster secret); an error says why not.
    pub async fn probe(&self, addr: &str) -> Result<(), String> {
        self.inner
            .dial(addr, Duration::from_secs(5))
            .await
            .map(drop)
            .map_err(|e| match (self.inner.secret(), self.inner.tls()) {
                (_, Some(_)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    format!(
                        "its bus at {addr} did not prove the cluster's certificate or secret ({e})"
                    )
                }
                (Some(_), None) => {
                    format!("its bus at {addr} did not prove the cluster secret ({e})")
                }
                _ => format!("its bus at {addr} does not answer ({e})"),
            })
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

    /// Delivers the application's messages (see [`PeerNetwork::broadcast_app`]) to `route`.
    pub fn set_app_route(&self, route: AppRoute) {
        *self.inner.app.write().unwrap_or_else(|e| e.into_inner()) = Some(route);
    }

    /// Sends an application message to every other member, on the links raft uses: best
    /// effort (a message to a node that is down or unreachable is lost), in order per
    /// destination.
    pub fn broadcast_app(&self, payload: &[u8]) {
        let me = self.me();
        let pm = PeerMessage {
            cluster_id: self.cluster_id(),
            from: protobuf::SingularPtrField::some(me.clone()),
            app: payload.to_vec(),
            ..Default::default()
        };
        let body = encode_msg(&pm);
        let mut f = BytesMut::with_capacity(4 + body.len());
        f.put_u32(body.len() as u32);
        f.put_slice(&body);
        let frame = f.freeze();
        let mut links = self.inner.links.lock().unwrap_or_else(|e| e.into_inner());
        for node in self.inner.book.all() {
            if node.node_id == me.node_id || node.node_id == 0 {
                continue;
            }
            if self
                .link(&mut links, node.node_id)
                .tx
                .send(frame.clone())
                .is_err()
            {
                links.remove(&node.node_id);
            }
        }
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

    /// Snapshots this node streamed to a follower that acknowledged them.
    pub fn snapshots_sent(&self) -> u64 {
        self.inner.snapshots_sent.load(Ordering::Relaxed)
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

    fn frame(&self, group_id: u64, msg: &Message) -> Bytes {
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
    }

    fn send(&self, group_id: u64, msg: &Message) {
        let (allowed, delay) = {
            let filters = self.inner.filters.read().unwrap_or_else(|e| e.into_inner());
            (
                filters.iter().all(|f| f.allow(msg)),
                filters.iter().filter_map(|f| f.delay(msg)).max(),
            )
        };
        if let (true, Some(d)) = (allowed, delay) {
            let (net, msg) = (self.clone(), msg.clone());
            self.inner.runtime.spawn(async move {
                tokio::time::sleep(d).await;
                net.send_now(group_id, &msg);
            });
            return;
        }
        if msg.get_msg_type() == MessageType::MsgSnapshot {
            self.send_snapshot(group_id, msg.clone(), allowed);
            return;
        }
        if !allowed {
            return;
        }
        self.send_now(group_id, msg);
    }

    fn send_now(&self, group_id: u64, msg: &Message) {
        if msg.get_msg_type() == MessageType::MsgSnapshot {
            self.send_snapshot(group_id, msg.clone(), true);
            return;
        }
        let to = msg.to;
        let frame = self.frame(group_id, msg);
        let mut links = self.inner.links.lock().unwrap_or_else(|e| e.into_inner());
        if self.link(&mut links, to).tx.send(frame).is_err() {
            links.remove(&to);
        }
    }
}

impl PeerNetwork {
    /// Streams a snapshot to its follower on a connection of its own (so the data never
    /// queues behind, or in front of, raft's small messages), then tells the group how it
    /// went. A filtered snapshot fails like one sent into a partition.
    fn send_snapshot(&self, group_id: u64, msg: Message, allowed: bool) {
        let net = self.clone();
        self.inner.runtime.spawn(async move {
            let (to, from) = (msg.to, msg.from);
            let result = if allowed {
                net.stream_snapshot(group_id, &msg).await
            } else {
                Err(std::io::Error::other("dropped by a filter"))
            };
            match &result {
                Ok(()) => {
                    metrics::counter!("rockraft_snapshots_sent_total").increment(1);
                    net.inner.snapshots_sent.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(group = group_id, to, "snapshot sent");
                }
                Err(e) => {
                    metrics::counter!("rockraft_snapshots_send_failed_total").increment(1);
                    tracing::warn!(group = group_id, to, "snapshot send failed: {e}");
                }
            }
            let mut status = Message::default();
            status.set_msg_type(MessageType::MsgSnapStatus);
            status.from = to;
            status.to = from;
            status.reject = result.is_err();
            let routes = net.inner.routes.read().unwrap_or_else(|e| e.into_inner());
            if let Some(route) = routes.get(&group_id) {
                route(status, NodeInfo::default());
            }
        });
    }

    async fn stream_snapshot(&self, group_id: u64, msg: &Message) -> std::io::Result<()> {
        let data = SnapshotData::parse_from_bytes(&msg.get_snapshot().data)
            .map_err(|e| std::io::Error::other(format!("bad snapshot data: {e}")))?;
        let snaps = self
            .inner
            .snapshots
            .as_ref()
            .map(|e| e.snapshots())
            .ok_or_else(|| std::io::Error::other("no snapshot store"))?;
        let generated = snaps
            .generated(data.id)
            .ok_or_else(|| std::io::Error::other("snapshot no longer exists"))?;
        let addr = self
            .inner
            .bus_addr(msg.to)
            .ok_or_else(|| std::io::Error::other("no address for the follower"))?;
        let mut stream = self.inner.dial(&addr, Duration::from_secs(5)).await?;
        snap::send(generated, self.frame(group_id, msg), &mut stream).await
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
        let stream = match inner.dial(&addr, Duration::from_secs(1)).await {
            Ok(s) => s,
            Err(e) => {
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    inner.refused(addr.clone(), &e);
                }
                if drain(&mut rx) {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
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

fn tls_refused(why: &dyn std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, format!("TLS: {why}"))
}

/// Either side's TLS handshake, bounded like the secret's; a failure refuses the peer.
async fn tls_handshake<S>(
    handshake: impl std::future::Future<Output = std::io::Result<S>>,
) -> std::io::Result<S> {
    match tokio::time::timeout(crate::bus_auth::HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(tls_refused(&e)),
        Err(_) => Err(tls_refused(&"the TLS handshake timed out")),
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

/// Receives a snapshot's chunks after its message, then hands the message (its data now
/// naming the received files) to the group and acknowledges.
async fn receive_snapshot(
    inner: &NetInner,
    pm: PeerMessage,
    mut msg: Message,
    mut reader: BufReader<BusStream>,
) {
    let Some(snaps) = inner.snapshots.as_ref().map(|e| e.snapshots()) else {
        return;
    };
    let index = msg.get_snapshot().get_metadata().index;
    let started = std::time::Instant::now();
    let (dir, keys) = match snap::receive(snaps, pm.group_id, index, &mut reader).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(group = pm.group_id, index, "snapshot receive failed: {e}");
            return;
        }
    };
    let Ok(mut data) = SnapshotData::parse_from_bytes(&msg.get_snapshot().data) else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    data.received_dir = dir.to_string_lossy().into_owned();
    data.keys = keys;
    msg.mut_snapshot().data = encode_msg(&data).into();
    tracing::info!(
        group = pm.group_id,
        index,
        keys,
        took_ms = started.elapsed().as_millis() as u64,
        "snapshot received"
    );
    metrics::counter!("rockraft_snapshots_received_total").increment(1);
    {
        let routes = inner.routes.read().unwrap_or_else(|e| e.into_inner());
        match routes.get(&pm.group_id) {
            Some(route) => route(msg, pm.get_from().clone()),
            None => {
                let _ = std::fs::remove_dir_all(&dir);
                return;
            }
        }
    }
    let _ = reader.get_mut().write_u8(1).await;
    let _ = reader.get_mut().flush().await;
}

async fn receive(inner: Arc<NetInner>, tcp: TcpStream, mut shutdown: broadcast::Receiver<()>) {
    let peer = tcp
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let stream = match inner.accept(tcp).await {
        Ok(s) => s,
        Err(e) => {
            inner.refused(peer, &e);
            return;
        }
    };
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
        if !pm.app.is_empty() {
            let app = inner.app.read().unwrap_or_else(|e| e.into_inner());
            if let Some(route) = app.as_ref() {
                route(pm.get_from().node_id, Bytes::from(pm.app));
            }
            continue;
        }
        let Ok(msg) = Message::parse_from_bytes(&pm.message) else {
            continue;
        };
        match msg.get_msg_type() {
            // Only our own transport reports snapshot status, never a peer.
            MessageType::MsgSnapStatus => continue,
            MessageType::MsgSnapshot => {
                // The rest of this connection is the snapshot's data.
                receive_snapshot(&inner, pm, msg, reader).await;
                return;
            }
            _ => {}
        }
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
