//! The replicated store under rockraft: raft-rs groups whose logs and hard states live in
//! raft-engine and whose applied data lives in RocksDB (see `engine.rs`). Knows nothing of
//! RESP; the server supplies a [`StateMachine`].

pub mod apply;
pub mod bus_auth;
pub mod engine;
pub mod error;
pub mod filters;
pub mod group;
pub mod keys;
mod logger;
pub mod membership;
pub mod node;
pub mod slot;
pub mod snap;
pub mod storage;
mod store_writer;
pub mod transport;
mod upgrade;

#[allow(warnings, clippy::all)]
pub mod proto {
    //! Protobuf messages of the raft store (generated from `proto/raftstore.proto`).
    include!(concat!(env!("OUT_DIR"), "/raftstore.rs"));
}

/// The raft group holding the whole key space (one group per node, for now).
pub const DATA_GROUP_ID: u64 = 1;

pub use apply::{ApplyContext, StateMachine};
pub use engine::Engine;
pub use error::{Error, Result};
pub use group::{
    start_group, GroupConfig, GroupHandle, GroupStatus, Members, NoPeers, Transport,
    MERGE_MAX_BYTES, MERGE_MAX_PROPOSALS,
};
pub use membership::AddressBook;
pub use raft::eraftpb;
pub use raft::StateRole;
pub use raft_engine::LogBatch;
pub use transport::{PeerNetwork, SendFilter};
