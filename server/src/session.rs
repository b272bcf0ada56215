//! Per-connection state, and the registry of connected clients that CLIENT LIST reads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rockraft_resp::Protocol;

/// What CLIENT LIST shows of a connection.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub name: String,
    pub lib_name: String,
    pub lib_ver: String,
    pub created: Instant,
    pub last_active: Instant,
    pub last_cmd: String,
    pub resp: u8,
    pub user: String,
}

/// One connection's state.
pub struct Session {
    pub id: u64,
    pub proto: Protocol,
    /// Close the connection once the pending replies are written (QUIT).
    pub quit: bool,
    /// Serve reads from local state without a ReadIndex round (READONLY).
    pub readonly: bool,
    /// The transaction being queued, between MULTI and EXEC/DISCARD.
    pub multi: Option<Multi>,
    /// The keys WATCHed since the last EXEC, DISCARD or UNWATCH.
    pub watched: Vec<crate::command::multi::Watch>,
    /// Pub/sub: what the connection subscribed to, the queue its messages arrive in, and
    /// the receiving end the connection writes from.
    pub subs: crate::pubsub::Subscriptions,
    pub outbox: Option<Arc<crate::pubsub::Outbox>>,
    pub pushes: Option<tokio::sync::mpsc::UnboundedReceiver<crate::pubsub::Push>>,
    /// Client-side caching (CLIENT TRACKING), and CLIENT CACHING's answer for the next
    /// command (`caching_next`) and for the one running (`caching_now`).
    pub tracking: Option<crate::tracking::Mode>,
    pub caching_next: Option<bool>,
    pub caching_now: Option<bool>,
    /// The ACL user the connection runs as (its definition as of `user_generation`), and
    /// whether it has authenticated (a connection made while the default user needed no
    /// password is, as in Redis).
    pub user: Option<Arc<crate::acl::User>>,
    pub user_generation: u64,
    pub authenticated: bool,
    /// The connection came in on the TLS port: cluster replies and redirects name TLS ports.
    pub tls: bool,
    /// MONITOR: the connection receives every command of the node's clients.
    pub monitor: bool,
    /// CLIENT REPLY OFF: no replies are sent; `reply_skip`: how many of the next commands'
    /// replies are not sent (CLIENT REPLY SKIP: its own and the next one's).
    pub reply_off: bool,
    pub reply_skip: u8,
    info: Arc<Mutex<ClientInfo>>,
}

/// Commands queued after MULTI.
#[derive(Default)]
pub struct Multi {
    pub queued: Vec<Vec<bytes::Bytes>>,
    /// A command was refused while queuing: EXEC answers EXECABORT.
    pub failed: bool,
}

impl Session {
    pub fn info(&self) -> std::sync::MutexGuard<'_, ClientInfo> {
        self.info.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the connection as `user` from now on (AUTH, HELLO AUTH).
    pub fn set_user(&mut self, user: Arc<crate::acl::User>, generation: u64) {
        self.info().user = user.name.clone();
        self.user = Some(user);
        self.user_generation = generation;
        self.authenticated = true;
    }

    pub fn set_proto(&mut self, proto: Protocol) {
        self.proto = proto;
        self.info().resp = if proto == Protocol::Resp3 { 3 } else { 2 };
    }
}

/// Every connected client.
#[derive(Default)]
pub struct Clients {
    next_id: AtomicU64,
    map: Mutex<BTreeMap<u64, Arc<Mutex<ClientInfo>>>>,
}

impl Clients {
    /// Registers a new connection; it is removed when its [`Registration`] drops.
    pub fn register(
        self: &Arc<Self>,
        addr: SocketAddr,
        laddr: SocketAddr,
    ) -> (Session, Registration) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let info = Arc::new(Mutex::new(ClientInfo {
            id,
            addr,
            laddr,
            name: String::new(),
            lib_name: String::new(),
            lib_ver: String::new(),
            created: now,
            last_active: now,
            last_cmd: "NULL".into(),
            resp: 2,
            user: "default".into(),
        }));
        self.lock().insert(id, info.clone());
        metrics::gauge!("rockraft_connected_clients").increment(1.0);
        let session = Session {
            id,
            proto: Protocol::Resp2,
            quit: false,
            readonly: false,
            multi: None,
            watched: Vec::new(),
            subs: Default::default(),
            outbox: None,
            pushes: None,
            tracking: None,
            caching_next: None,
            caching_now: None,
            user: None,
            user_generation: 0,
            authenticated: false,
            tls: false,
            monitor: false,
            reply_off: false,
            reply_skip: 0,
            info,
        };
        (
            session,
            Registration {
                clients: self.clone(),
                id,
            },
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Mutex<ClientInfo>>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    pub fn snapshot(&self) -> Vec<ClientInfo> {
        self.lock()
            .values()
            .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect()
    }
}

/// Removes a client from the registry when its connection ends.
pub struct Registration {
    clients: Arc<Clients>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.clients.lock().remove(&self.id);
        metrics::gauge!("rockraft_connected_clients").decrement(1.0);
    }
}
