//! rockraft-server as a library: [`start`] runs a node inside the caller's tokio runtime and
//! returns a handle, so tests can start, stop and restart nodes in one process; the binary is
//! a thin `main` over it.

pub mod acl;
pub mod blocking;
pub mod cmdstats;
pub mod command;
pub mod config;
pub mod config_file;
mod connection;
pub mod db;
mod expire;
pub mod glob;
pub mod latency;
pub mod long_double;
pub mod monitor;
pub mod notify;
mod peer_client;
pub mod pubsub;
pub mod rdb;
mod scan;
pub mod scripting;
pub mod session;
pub mod slowlog;
pub mod state_machine;
pub mod strtod;
pub mod telemetry;
pub mod tls;
pub mod tracking;
pub mod types;

#[allow(warnings, clippy::all)]
pub mod proto {
    //! Log entry payloads (generated from `proto/command.proto`).
    include!(concat!(env!("OUT_DIR"), "/command.rs"));
}

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rockraft_raftstore::node::load_or_create_ident;
use rockraft_raftstore::proto::NodeInfo;
use rockraft_raftstore::{start_group, AddressBook, Engine, GroupConfig, GroupHandle, PeerNetwork};
use rockraft_resp::Reply;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinSet;

pub use config::{Config, MetricsAddr};

/// The Redis version rockraft reports, so clients enable their Redis 7 features.
pub const REDIS_VERSION: &str = "7.2.4";

pub use rockraft_raftstore::DATA_GROUP_ID;

/// Settings CONFIG SET may change at run time.
pub struct RuntimeConfig {
    pub maxclients: AtomicU64,
    /// `protected-mode` (CONFIG SET may change it).
    pub protected_mode: std::sync::atomic::AtomicBool,
    pub proto_max_bulk_len: AtomicU64,
    /// The sizes up to which Redis keeps a collection compact: what OBJECT ENCODING reports
    /// (and whether HSCAN & co return a collection whole). Node-local: nothing stored depends
    /// on them, so replicas need not agree.
    pub encodings: Encodings,
}

/// Redis's encoding thresholds (CONFIG names in [`Encodings::PARAMS`]).
pub struct Encodings {
    pub hash_max_listpack_entries: std::sync::atomic::AtomicI64,
    pub hash_max_listpack_value: std::sync::atomic::AtomicI64,
    pub set_max_intset_entries: std::sync::atomic::AtomicI64,
    pub zset_max_listpack_entries: std::sync::atomic::AtomicI64,
    pub zset_max_listpack_value: std::sync::atomic::AtomicI64,
    pub list_max_listpack_size: std::sync::atomic::AtomicI64,
    pub list_compress_depth: std::sync::atomic::AtomicI64,
}

impl Default for Encodings {
    fn default() -> Self {
        use std::sync::atomic::AtomicI64;
        Encodings {
            hash_max_listpack_entries: AtomicI64::new(128),
            hash_max_listpack_value: AtomicI64::new(64),
            set_max_intset_entries: AtomicI64::new(512),
            zset_max_listpack_entries: AtomicI64::new(128),
            zset_max_listpack_value: AtomicI64::new(64),
            list_max_listpack_size: AtomicI64::new(-2),
            list_compress_depth: AtomicI64::new(0),
        }
    }
}

impl Encodings {
    /// (CONFIG name, its old ziplist alias, smallest value Redis accepts).
    pub const PARAMS: [(&'static str, Option<&'static str>, i64); 7] = [
        (
            "hash-max-listpack-entries",
            Some("hash-max-ziplist-entries"),
            0,
        ),
        ("hash-max-listpack-value", Some("hash-max-ziplist-value"), 0),
        ("set-max-intset-entries", None, 0),
        (
            "zset-max-listpack-entries",
            Some("zset-max-ziplist-entries"),
            0,
        ),
        ("zset-max-listpack-value", Some("zset-max-ziplist-value"), 0),
        (
            "list-max-listpack-size",
            Some("list-max-ziplist-size"),
            i32::MIN as i64,
        ),
        ("list-compress-depth", None, 0),
    ];

    /// The setting named `name` (or its alias).
    pub fn get(&self, name: &str) -> Option<&std::sync::atomic::AtomicI64> {
        let i = Self::PARAMS
            .iter()
            .position(|(n, alias, _)| *n == name || *alias == Some(name))?;
        Some(match i {
            0 => &self.hash_max_listpack_entries,
            1 => &self.hash_max_listpack_value,
            2 => &self.set_max_intset_entries,
            3 => &self.zset_max_listpack_entries,
            4 => &self.zset_max_listpack_value,
            5 => &self.list_max_listpack_size,
            _ => &self.list_compress_depth,
        })
    }
}

/// Counters INFO stats reports.
#[derive(Default)]
pub struct Stats {
    pub connections_received: AtomicU64,
    pub commands_processed: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub expired_keys: AtomicU64,
}

impl Stats {
    pub fn reset(&self) {
        for c in [
            &self.connections_received,
            &self.commands_processed,
            &self.rejected_connections,
            &self.expired_keys,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// State shared by every connection of a node.
pub struct Shared {
    pub config: Config,
    pub runtime: RuntimeConfig,
    pub group: GroupHandle<Reply>,
    pub db: db::Db,
    pub clients: Arc<session::Clients>,
    pub stats: Stats,
    pub started: Instant,
    pub run_id: String,
    pub node_id: u64,
    /// This node's addresses as advertised to others.
    pub me: NodeInfo,
    pub book: AddressBook,
    pub network: PeerNetwork,
    /// The plaintext client port actually bound (0: none).
    pub port: u16,
    pub scan_cursors: scan::ScanCursors,
    /// Clients blocked in BLPOP and friends on this node.
    pub blocked: Arc<blocking::Blocked>,
    /// This node's pub/sub subscribers.
    pub pubsub: Arc<pubsub::Hub>,
    /// Keyspace notifications (`notify-keyspace-events`, node-local).
    pub notifier: Arc<notify::Notifier>,
    /// Client-side caching: what this node's tracking clients read.
    pub tracker: Arc<tracking::Tracker>,
    /// The cluster's ACL users as applied on this node, and this node's ACL LOG.
    pub acl: acl::Acl,
    /// The node's certificate, for the TLS port and the bus (CONFIG SET tls-cert-file
    /// replaces it).
    pub tls_certs: Option<Arc<tls::CertStore>>,
    /// CLIENT PAUSE: until when, and whether every command waits (else only writes).
    pub pause: std::sync::Mutex<Option<(tokio::time::Instant, bool)>>,
    /// Wakes the commands waiting out a pause when CLIENT UNPAUSE ends it.
    pub unpaused: tokio::sync::Notify,
    /// The connections in MONITOR mode.
    pub monitors: monitor::Monitors,
    /// INFO commandstats and errorstats.
    pub command_stats: Arc<cmdstats::CommandStats>,
    /// SLOWLOG's entries and settings.
    pub slowlog: Arc<slowlog::SlowLog>,
    /// SHUTDOWN asks the process to stop (the binary waits for it as for SIGTERM).
    pub shutdown_request: tokio::sync::Notify,
    /// LASTSAVE's answer (Unix seconds): when the node started, or its last SAVE/BGSAVE.
    pub last_save: AtomicU64,
    /// A BGSAVE is running; the last one failed.
    pub bgsave_running: std::sync::atomic::AtomicBool,
    pub bgsave_failed: std::sync::atomic::AtomicBool,
    /// With `--tls-cluster yes`: how this node dials another's TLS port (MEET, forwarded
    /// membership commands), with its certificate, checking theirs against the CA.
    pub peer_tls: Option<tokio_rustls::TlsConnector>,
}

async fn bind(addr: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Store(#[from] rockraft_raftstore::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Metrics(String),
    #[error("{0}")]
    Config(String),
}

/// A running node.
pub struct ServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: broadcast::Sender<()>,
    tasks: JoinSet<()>,
    raft_thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    /// The address clients connect to: the plaintext port, or the TLS port when there is none.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Resolves once a client sent SHUTDOWN (the caller then calls [`ServerHandle::shutdown`],
    /// as for SIGTERM).
    pub async fn shutdown_requested(&self) {
        self.shared.shutdown_request.notified().await
    }

    /// The address of the peer (raft) port.
    pub fn bus_port(&self) -> u16 {
        self.shared.me.bus_port as u16
    }

    /// A leader that is about to stop hands leadership to its most up-to-date follower first,
    /// so the cluster does not wait an election timeout (a rolling restart costs ~no downtime).
    async fn hand_over_leadership(&self) {
        let status = self.shared.group.status();
        if !status.is_leader() {
            return;
        }
        let members = status.members();
        let Some(&(target, _, _)) = members
            .progress
            .iter()
            .filter(|(id, _, active)| {
                *id != self.shared.node_id && *active && members.voters.contains(id)
            })
            .max_by_key(|(_, matched, _)| *matched)
        else {
            return;
        };
        tracing::info!(to = target, "handing leadership over before shutting down");
        if self.shared.group.transfer_leader(target).is_err() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        // Done once this node has heard from the new leader.
        while Instant::now() < deadline && status.leader() != Some(target) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops accepting, closes every connection, stops raft and waits for all of it, so the
    /// data directory can be opened again.
    pub async fn shutdown(mut self) {
        self.hand_over_leadership().await;
        let _ = self.shutdown.send(());
        let deadline = Duration::from_secs(10);
        let _ = tokio::time::timeout(deadline, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        self.shared.group.stop();
        let thread = self.raft_thread.take();
        drop(self.shared);
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// Opens the data directory, starts raft and listens for clients and peers.
pub async fn start(config: Config) -> Result<ServerHandle, StartError> {
    // The configuration first: a bad flag or file stops the node before it binds anything.
    let secret = config.secret().map_err(StartError::Config)?;
    let tls = tls::setup(&config).map_err(StartError::Config)?;
    let plain = config.port != 0 || config.zero_port_picks_free;
    if !plain && config.tls_port.is_none() {
        return Err(StartError::Config(
            "--port 0 and no --tls-port: configured to not listen anywhere".into(),
        ));
    }
    let listener = match plain {
        true => Some(bind(&format!("{}:{}", config.bind, config.port)).await?),
        false => None,
    };
    let tls_listener = match config.tls_port {
        Some(p) => Some(bind(&format!("{}:{p}", config.bind)).await?),
        None => None,
    };
    let local = |l: &Option<TcpListener>| {
        l.as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    };
    let (plain_addr, tls_addr) = (local(&listener), local(&tls_listener));
    // Clients reach the node here (the plaintext port, else the TLS port).
    let addr = plain_addr.or(tls_addr).expect("a client listener");
    let bus_port = match config.bus_port {
        Some(p) => p,
        None => addr
            .port()
            .checked_add(10000)
            .ok_or_else(|| StartError::Bind {
                addr: addr.to_string(),
                source: std::io::Error::other("client port + 10000 is not a port; set --bus-port"),
            })?,
    };
    let bus_listener = bind(&format!("{}:{}", config.bind, bus_port)).await?;
    let bus_addr = bus_listener
        .local_addr()
        .expect("a bound listener has an address");
    let engine = Engine::open(&config.data_dir)?;
    let ident = load_or_create_ident(&engine)?;
    let me = NodeInfo {
        node_id: ident.node_id,
        host: config.advertised_host(),
        port: plain_addr.map_or(0, |a| u32::from(a.port())),
        bus_port: u32::from(config.advertise_bus_port.unwrap_or(bus_addr.port())),
        tls_port: tls_addr.map_or(0, |a| u32::from(a.port())),
        ..Default::default()
    };
    let book = AddressBook::default();
    let network = PeerNetwork::new(
        ident.cluster_id,
        me.clone(),
        book.clone(),
        tokio::runtime::Handle::current(),
        Some(engine.clone()),
    );
    network.set_secret(secret.as_deref());
    network.set_tls(tls.as_ref().and_then(|t| t.bus.clone()));
    let mut group_cfg = GroupConfig::new(ident.node_id, DATA_GROUP_ID);
    group_cfg.me = Some(me.clone());
    group_cfg.log_max_entries = config.raft_log_max_entries;
    group_cfg.log_max_bytes = config.raft_log_max_bytes;
    // A membership change waits behind the one in progress at most as long as a write waits.
    group_cfg.conf_change_wait = Duration::from_millis(config.write_timeout_ms);
    let node: Arc<std::sync::OnceLock<std::sync::Weak<Shared>>> = Arc::default();
    let blocked: Arc<blocking::Blocked> = Arc::default();
    let hub: Arc<pubsub::Hub> = Arc::default();
    let notifier = Arc::new(notify::Notifier::new(hub.clone()));
    let tracker = Arc::new(tracking::Tracker::new(hub.clone()));
    let (group, raft_thread) = start_group(
        engine.clone(),
        group_cfg,
        &[ident.node_id],
        state_machine::KvStateMachine::new(
            node.clone(),
            blocked.clone(),
            notifier.clone(),
            tracker.clone(),
        ),
        network.transport(DATA_GROUP_ID),
        book.clone(),
    )?;
    let router = group.clone();
    network.register(
        DATA_GROUP_ID,
        Box::new(move |msg, from| {
            let _ = router.step(msg, Some(from));
        }),
    );
    // Publishes of other nodes, delivered to this node's subscribers.
    {
        let hub = hub.clone();
        network.set_app_route(Box::new(move |_from, msg| {
            if let Some((space, channel, payload)) = pubsub::decode_forward(&msg) {
                hub.publish(space, &channel, &payload);
            }
        }));
    }
    let installed = match config.metrics(addr.port()) {
        Ok(MetricsAddr::At(maddr)) => telemetry::install(maddr),
        Ok(MetricsAddr::Off) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = installed {
        group.stop();
        let _ = raft_thread.join();
        return Err(StartError::Metrics(e));
    }
    let requirepass = config
        .requirepass
        .as_ref()
        .filter(|p| !p.is_empty())
        .map(|p| p.as_bytes().to_vec());
    let shared = Arc::new(Shared {
        runtime: RuntimeConfig {
            maxclients: AtomicU64::new(config.maxclients),
            protected_mode: std::sync::atomic::AtomicBool::new(config.protected_mode),
            proto_max_bulk_len: AtomicU64::new(config.proto_max_bulk_len),
            encodings: Encodings::default(),
        },
        config,
        group,
        db: db::Db::new(engine),
        clients: Arc::new(session::Clients::default()),
        stats: Stats::default(),
        started: Instant::now(),
        run_id: format!("{:040x}", rand::random::<u128>()),
        node_id: ident.node_id,
        me,
        book,
        network: network.clone(),
        port: plain_addr.map_or(0, |a| a.port()),
        scan_cursors: scan::ScanCursors::default(),
        blocked,
        pubsub: hub,
        notifier,
        tracker,
        acl: acl::Acl::new(requirepass),
        tls_certs: tls.as_ref().map(|t| t.certs.clone()),
        slowlog: Arc::default(),
        command_stats: Arc::default(),
        monitors: monitor::Monitors::default(),
        pause: std::sync::Mutex::new(None),
        unpaused: tokio::sync::Notify::new(),
        shutdown_request: tokio::sync::Notify::new(),
        bgsave_running: std::sync::atomic::AtomicBool::new(false),
        bgsave_failed: std::sync::atomic::AtomicBool::new(false),
        last_save: AtomicU64::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        ),
        peer_tls: tls
            .as_ref()
            .and_then(|t| t.bus.as_ref())
            .map(|b| b.connector.clone()),
    });
    let _ = node.set(Arc::downgrade(&shared));
    shared.acl.reload(&shared.db);
    for setting in &shared.config.file_settings {
        command::server::apply_file_setting(&shared, setting).map_err(StartError::Config)?;
    }
    let (shutdown, _) = broadcast::channel(1);
    let mut tasks = JoinSet::new();
    if let Some(l) = listener {
        tasks.spawn(accept_loop(l, shared.clone(), shutdown.clone()));
    }
    if let (Some(l), Some(config)) = (tls_listener, tls.and_then(|t| t.clients)) {
        tasks.spawn(tls_accept_loop(l, config, shared.clone(), shutdown.clone()));
    }
    tasks.spawn(network.serve(bus_listener, shutdown.subscribe()));
    tasks.spawn(expire::run(shared.clone(), shutdown.subscribe()));
    if shared
        .config
        .requirepass
        .as_ref()
        .is_some_and(|p| !p.is_empty())
    {
        tasks.spawn(command::acl::seed_requirepass(
            shared.clone(),
            shutdown.subscribe(),
        ));
    }
    tracing::info!(
        addr = %plain_addr.map_or_else(|| "none".to_string(), |a| a.to_string()),
        tls = %tls_addr.map_or_else(|| "none".to_string(), |a| a.to_string()),
        bus = %bus_addr,
        bus_tls = shared.config.tls_cluster,
        node_id = %rockraft_raftstore::node::redis_node_id(shared.node_id),
        data_dir = %shared.config.data_dir.display(),
        "rockraft-server ready to accept connections"
    );
    Ok(ServerHandle {
        addr,
        shared,
        shutdown,
        tasks,
        raft_thread: Some(raft_thread),
    })
}

/// Counts an accepted client connection and decides whether it is served: `Err` holds
/// Redis's refusal when maxclients is reached, or when protected mode (no password for the
/// default user) refuses a client that is not on 127.0.0.1 or ::1.
fn admit(shared: &Shared, peer: SocketAddr) -> Result<(), &'static str> {
    shared
        .stats
        .connections_received
        .fetch_add(1, Ordering::Relaxed);
    let full = shared.clients.count() as u64 >= shared.runtime.maxclients.load(Ordering::Relaxed);
    let protected = shared.runtime.protected_mode.load(Ordering::Relaxed)
        && shared.acl.default_nopass()
        && peer.ip() != std::net::IpAddr::from([127, 0, 0, 1])
        && peer.ip() != std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST);
    if !full && !protected {
        return Ok(());
    }
    shared
        .stats
        .rejected_connections
        .fetch_add(1, Ordering::Relaxed);
    Err(if full {
        "-ERR max number of clients reached\r\n"
    } else {
        command::acl::PROTECTED_MODE_ERR
    })
}

/// Accepts TLS clients: each handshake runs in its own task (bounded by a timeout), so a
/// slow or failed one, or a plaintext client on the TLS port, affects no other connection.
async fn tls_accept_loop(
    listener: TcpListener,
    config: Arc<tokio_rustls::rustls::ServerConfig>,
    shared: Arc<Shared>,
    shutdown: broadcast::Sender<()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let mut stop = shutdown.subscribe();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.recv() => break,
        };
        while connections.try_join_next().is_some() {}
        let Ok((stream, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // A refused TLS client is closed before its handshake (there is no channel yet to
        // tell it why).
        if admit(&shared, peer).is_err() {
            continue;
        }
        let _ = stream.set_nodelay(true);
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        let down = shutdown.subscribe();
        connections.spawn(async move {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(tls)) => connection::serve_stream(tls, true, peer, local, shared, down).await,
                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
    while connections.join_next().await.is_some() {}
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, shutdown: broadcast::Sender<()>) {
    let mut stop = shutdown.subscribe();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.recv() => break,
        };
        while connections.try_join_next().is_some() {}
        let (mut stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let refused = stream
            .peer_addr()
            .map_err(|_| "")
            .and_then(|peer| admit(&shared, peer));
        if let Err(why) = refused {
            connections.spawn(async move {
                use tokio::io::AsyncWriteExt;
                let _ = stream.write_all(why.as_bytes()).await;
            });
            continue;
        }
        connections.spawn(connection::serve(
            stream,
            shared.clone(),
            shutdown.subscribe(),
        ));
    }
    while connections.join_next().await.is_some() {}
}
