//! A node's identity: a random raft id and cluster id, persisted at the first start of a data
//! directory and never changed afterwards.

use rocksdb::WriteBatch;

use crate::engine::{encode_msg, Engine};
use crate::error::Result;
use crate::keys::{self, CF_RAFT};
use crate::proto::StoreIdent;

/// Loads the node's identity, creating it on a fresh data directory.
pub fn load_or_create_ident(engine: &Engine) -> Result<StoreIdent> {
    if let Some(ident) = engine.get_msg::<StoreIdent>(CF_RAFT, &keys::store_ident_key())? {
        return Ok(ident);
    }
    let ident = StoreIdent {
        node_id: nonzero_random(),
        cluster_id: nonzero_random(),
        ..Default::default()
    };
    let mut wb = WriteBatch::default();
    wb.put_cf(
        engine.cf(CF_RAFT),
        keys::store_ident_key(),
        encode_msg(&ident),
    );
    engine.write(wb, true)?;
    Ok(ident)
}

fn nonzero_random() -> u64 {
    loop {
        let v: u64 = rand::random();
        if v != 0 {
            return v;
        }
    }
}

/// The node id shown the Redis way: 40 lowercase hex characters.
pub fn redis_node_id(node_id: u64) -> String {
    format!("{:040x}", node_id)
}
