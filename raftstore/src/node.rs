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

/// Turns a copy of a node's store (a backup made with [`crate::snap::checkpoint`]) into the
/// store of the only member of a new cluster: a new node id and cluster id, the data as it
/// was, and the raft state of group `group_id` reset so that the log starts right after the
/// backup's applied index. Nodes that join later get the data as a snapshot.
pub fn seed_new_cluster(engine: &Engine, group_id: u64) -> Result<(StoreIdent, u64)> {
    use raft::eraftpb::{ConfState, HardState};
    use raft_engine::{Command, LogBatch};

    use crate::error::Error;
    use crate::proto::{ApplyState, RaftLogState};

    let apply: ApplyState = engine
        .get_msg(CF_RAFT, &keys::apply_state_key(group_id))?
        .ok_or_else(|| Error::Corrupted(format!("no state of group {group_id} in the backup")))?;
    if engine
        .get(CF_RAFT, &keys::snapshot_applying_key(group_id))?
        .is_some()
    {
        return Err(Error::Corrupted(
            "the backup was taken during a snapshot install; take another".into(),
        ));
    }
    let (index, term) = (apply.applied_index, apply.applied_term);
    if term == 0 {
        return Err(Error::Corrupted(format!(
            "the backup records no term for its applied index {index}"
        )));
    }
    let ident = StoreIdent {
        node_id: nonzero_random(),
        cluster_id: nonzero_random(),
        ..Default::default()
    };
    // The log starts right after the backup's index, committed up to it.
    let mut batch = LogBatch::default();
    batch.add_command(group_id, Command::Clean);
    let truncated = RaftLogState {
        truncated_index: index,
        truncated_term: term,
        ..Default::default()
    };
    let hs = HardState {
        term,
        commit: index,
        ..Default::default()
    };
    batch
        .put_message(group_id, keys::RAFT_LOG_STATE_KEY.to_vec(), &truncated)
        .and_then(|()| batch.put_message(group_id, keys::RAFT_HARD_STATE_KEY.to_vec(), &hs))
        .map_err(crate::storage::log_batch_err)?;
    engine.write_log(&mut batch, true)?;
    let cf = engine.cf(CF_RAFT);
    let mut wb = WriteBatch::default();
    wb.delete_range_cf(cf, keys::group_start(group_id), keys::group_end(group_id));
    wb.put_cf(cf, keys::store_ident_key(), encode_msg(&ident));
    let apply = ApplyState {
        applied_index: index,
        applied_term: term,
        ..Default::default()
    };
    wb.put_cf(cf, keys::apply_state_key(group_id), encode_msg(&apply));
    let mut cs = ConfState::default();
    cs.set_voters(vec![ident.node_id]);
    wb.put_cf(cf, keys::conf_state_key(group_id), encode_msg(&cs));
    wb.put_cf(cf, keys::initial_conf_key(group_id), encode_msg(&cs));
    engine.write(wb, true)?;
    Ok((ident, index))
}
