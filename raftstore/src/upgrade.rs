//! Upgrading a data directory written by a release that kept the raft log in RocksDB.
//!
//! Those directories have no format key; each group's log entries and hard state are in the
//! `raft` family, and its apply state records where the log was truncated. At the first start
//! of this release, for every such group:
//!
//! 1. its log, hard state and truncation point are copied into raft-engine, replacing
//!    whatever a crashed earlier attempt left there, and synced;
//! 2. one RocksDB batch removes the old log and hard state, records the applied entry's term
//!    in the apply state and sets the format key; it is flushed.
//!
//! A crash before step 2 is on disk leaves the old layout whole (the WAL still holds what the
//! old release had not flushed), and the next start does it all again; after step 2, the
//! directory is in the new format. Nothing in the old layout is removed before its copy is
//! durable.

use std::collections::BTreeSet;

use protobuf::Message as PbMessage;
use raft::eraftpb::{Entry, HardState};
use raft_engine::{Command, LogBatch};
use rocksdb::{IteratorMode, WriteBatch};

use crate::engine::{encode_msg, Engine, EntryExt};
use crate::error::{Error, Result};
use crate::keys::{self, CF_RAFT};
use crate::proto::{ApplyState, RaftLogState};

/// Entries copied per raft-engine batch.
const BATCH_BYTES: usize = 4 << 20;

/// Brings `engine`'s directory to [`keys::STORE_FORMAT`].
pub fn upgrade(engine: &Engine) -> Result<()> {
    if let Some(v) = engine.get(CF_RAFT, &keys::store_format_key())? {
        let format = <[u8; 8]>::try_from(v.as_slice()).map(u64::from_be_bytes);
        return match format {
            Ok(keys::STORE_FORMAT) => Ok(()),
            Ok(other) => Err(Error::Corrupted(format!(
                "the data directory has format {other}, and this release reads format {}: \
                 it was written by a newer release",
                keys::STORE_FORMAT
            ))),
            Err(_) => Err(Error::Corrupted("unreadable data directory format".into())),
        };
    }
    let groups = legacy_groups(engine)?;
    let mut wb = WriteBatch::default();
    let cf = engine.cf(CF_RAFT);
    for &g in &groups {
        tracing::warn!(
            group = g,
            "upgrading the data directory: moving the raft log from RocksDB to raft-engine"
        );
        let (count, apply) = copy_group(engine, g)?;
        let (start, end) = keys::log_range(g);
        wb.delete_range_cf(cf, start, end);
        wb.delete_cf(cf, keys::hard_state_key(g));
        if let Some(apply) = apply {
            wb.put_cf(cf, keys::apply_state_key(g), encode_msg(&apply));
        }
        tracing::warn!(group = g, entries = count, "raft log moved to raft-engine");
    }
    fail::fail_point!("upgrade_before_format");
    wb.put_cf(
        cf,
        keys::store_format_key(),
        keys::STORE_FORMAT.to_be_bytes(),
    );
    engine.write(wb, true)
}

/// Groups with raft state in the old layout.
fn legacy_groups(engine: &Engine) -> Result<BTreeSet<u64>> {
    let mut groups = BTreeSet::new();
    let it = engine
        .db()
        .iterator_cf(engine.cf(CF_RAFT), IteratorMode::Start);
    for item in it {
        let (k, _) = item.map_err(|e| Error::Storage(e.to_string()))?;
        if let Some(g) = keys::legacy_raft_state_group(&k) {
            groups.insert(g);
        }
    }
    Ok(groups)
}

/// Step 1 for group `g`: returns how many entries were copied, and its apply state as the new
/// format keeps it (with the applied entry's term), if it has one.
fn copy_group(engine: &Engine, g: u64) -> Result<(u64, Option<ApplyState>)> {
    let old_apply: Option<ApplyState> = engine.get_msg(CF_RAFT, &keys::apply_state_key(g))?;
    let hard_state: Option<HardState> = engine.get_msg(CF_RAFT, &keys::hard_state_key(g))?;
    let truncated = RaftLogState {
        truncated_index: old_apply.as_ref().map_or(0, |a| a.legacy_truncated_index),
        truncated_term: old_apply.as_ref().map_or(0, |a| a.legacy_truncated_term),
        ..Default::default()
    };
    let applied = old_apply.as_ref().map_or(0, |a| a.applied_index);
    let mut applied_term =
        (applied == truncated.truncated_index).then_some(truncated.truncated_term);
    let mut batch = LogBatch::default();
    batch.add_command(g, Command::Clean);
    put(&mut batch, g, keys::RAFT_LOG_STATE_KEY, &truncated)?;
    if let Some(hs) = &hard_state {
        put(&mut batch, g, keys::RAFT_HARD_STATE_KEY, hs)?;
    }
    let (start, end) = keys::log_range(g);
    let mut opts = rocksdb::ReadOptions::default();
    opts.set_iterate_upper_bound(end.to_vec());
    let it = engine.db().iterator_cf_opt(
        engine.cf(CF_RAFT),
        opts,
        IteratorMode::From(&start, rocksdb::Direction::Forward),
    );
    let mut chunk: Vec<Entry> = Vec::new();
    let mut chunk_bytes = 0;
    let mut count = 0u64;
    let mut expect = truncated.truncated_index + 1;
    for item in it {
        let (k, v) = item.map_err(|e| Error::Storage(e.to_string()))?;
        let Some(index) = keys::log_index(&k) else {
            continue;
        };
        if index != expect {
            return Err(Error::Corrupted(format!(
                "group {g}: the old raft log lacks entry {expect} (found {index})"
            )));
        }
        expect += 1;
        let entry = Entry::parse_from_bytes(&v)
            .map_err(|e| Error::Corrupted(format!("group {g}: old log entry {index}: {e}")))?;
        if index == applied {
            applied_term = Some(entry.term);
        }
        chunk_bytes += v.len();
        chunk.push(entry);
        count += 1;
        if chunk_bytes >= BATCH_BYTES {
            add_entries(&mut batch, g, &chunk)?;
            engine.write_log(&mut batch, true)?;
            chunk.clear();
            chunk_bytes = 0;
        }
    }
    add_entries(&mut batch, g, &chunk)?;
    engine.write_log(&mut batch, true)?;
    let apply = match old_apply {
        None => None,
        Some(_) => Some(ApplyState {
            applied_index: applied,
            applied_term: applied_term.ok_or_else(|| {
                Error::Corrupted(format!(
                    "group {g}: applied index {applied} is in neither the old log nor its truncation point"
                ))
            })?,
            ..Default::default()
        }),
    };
    Ok((count, apply))
}

fn put<M: PbMessage>(batch: &mut LogBatch, g: u64, key: &[u8], m: &M) -> Result<()> {
    batch
        .put_message(g, key.to_vec(), m)
        .map_err(crate::storage::log_batch_err)
}

fn add_entries(batch: &mut LogBatch, g: u64, entries: &[Entry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    batch
        .add_entries::<EntryExt>(g, entries)
        .map_err(crate::storage::log_batch_err)
}
