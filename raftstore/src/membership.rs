//! Who the members of a raft group are and where to reach them.
//!
//! Addresses travel in the log (in the context of the conf change that adds a node, and in
//! address-update entries), so every member learns the same book from the same entries.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use rocksdb::{Direction, IteratorMode};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::keys::{self, CF_RAFT};
use crate::proto::NodeInfo;

/// The addresses of a group's members, shared by the raft thread, the transport and the
/// server (CLUSTER NODES, MOVED).
#[derive(Clone, Default)]
pub struct AddressBook {
    inner: Arc<RwLock<BTreeMap<u64, NodeInfo>>>,
}

impl AddressBook {
    pub fn get(&self, node_id: u64) -> Option<NodeInfo> {
        self.read().get(&node_id).cloned()
    }

    pub fn all(&self) -> Vec<NodeInfo> {
        self.read().values().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u64, NodeInfo>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u64, NodeInfo>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set(&self, info: NodeInfo) {
        self.write().insert(info.node_id, info);
    }

    pub(crate) fn remove(&self, node_id: u64) {
        self.write().remove(&node_id);
    }

    pub(crate) fn replace_all(&self, infos: Vec<NodeInfo>) {
        let mut book = self.write();
        book.clear();
        for i in infos {
            book.insert(i.node_id, i);
        }
    }

    /// Loads the addresses recorded for `group_id`.
    pub(crate) fn load(&self, engine: &Engine, group_id: u64) -> Result<()> {
        let start = keys::node_addr_key(group_id, 0);
        let it = engine.db().iterator_cf(
            engine.cf(CF_RAFT),
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut infos = Vec::new();
        for item in it {
            let (k, v) = item.map_err(|e| Error::Storage(e.to_string()))?;
            if k.len() != start.len() || k[..10] != start[..10] {
                break;
            }
            let info = protobuf::Message::parse_from_bytes(&v)
                .map_err(|e| Error::Corrupted(format!("node address: {e}")))?;
            infos.push(info);
        }
        self.replace_all(infos);
        Ok(())
    }
}

/// `host:port` of a node's client port.
pub fn client_addr(info: &NodeInfo) -> String {
    format!("{}:{}", info.host, info.port)
}
