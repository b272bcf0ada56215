//! `PeerStorage`: the raft log, hard state, conf state and apply state of one raft group, read
//! by raft-rs through [`raft::Storage`].
//!
//! The log entries, the hard state and where the log starts are in raft-engine; the apply
//! state, the conf state and the member addresses are in RocksDB, written with the data they
//! go with (see `engine.rs`). Log writes are staged into a raft-engine `LogBatch` by the ready
//! loop and written (synced) by the store writer; raft is told what is persisted only after
//! that. The in-memory copies here are updated as the writes are staged, so staged entries are
//! served from the entry cache until they reach the disk; a failed write panics the node, so
//! memory never outlives a lost write.
//!
//! [`PeerStorage::open`] is the whole of a group's recovery, in order.

use std::collections::VecDeque;
use std::sync::Arc;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use raft_engine::{Command, LogBatch};
use rocksdb::WriteBatch;

use crate::engine::{encode_msg, Engine, EntryExt};
use crate::error::{Error, Result};
use crate::keys::{self, CF_RAFT, RAFT_HARD_STATE_KEY, RAFT_LOG_STATE_KEY};
use crate::proto::{ApplyState, RaftLogState, SnapshotData};
use crate::snap;

pub struct PeerStorage {
    engine: Arc<Engine>,
    group_id: u64,
    hard_state: HardState,
    conf_state: ConfState,
    apply_state: ApplyState,
    /// Where the log starts: entries up to `truncated.truncated_index` are gone.
    truncated: RaftLogState,
    last_index: u64,
    last_term: u64,
    /// Terms of the most recent entries (consecutive, ending at `last_index`): raft asks for
    /// them on every append response, and they would otherwise be a log read each.
    recent_terms: VecDeque<u64>,
    /// Encoded size of every entry in `[first_index, last_index]`, and their sum: what log
    /// compaction is judged by.
    entry_sizes: VecDeque<u32>,
    log_bytes: u64,
    /// The newest entries (consecutive, ending at `last_index`) and their encoded sizes, up to
    /// [`ENTRY_CACHE_BYTES`]: they are applied and sent to followers right after they are
    /// written, and would otherwise be read back from the log files and decoded.
    /// Entries past `persisted` are not written yet (the store writer has them): they are
    /// never evicted, since raft reads them through [`raft::Storage`] before they reach the
    /// disk.
    cache: VecDeque<(Entry, u32)>,
    cache_bytes: u64,
    persisted: u64,
}

const RECENT_TERMS: usize = 8192;
const ENTRY_CACHE_BYTES: u64 = 8 << 20;
/// Entries read per raft-engine call when loading their sizes at start.
const LOAD_CHUNK: u64 = 1024;

/// A raft-engine batch that could not be staged.
pub(crate) fn log_batch_err(e: raft_engine::Error) -> Error {
    Error::Storage(format!("raft log batch: {e}"))
}

impl PeerStorage {
    /// Recovers group `group_id` after a start or a crash, in order:
    ///
    /// 1. finish a reset (leaving the group to join another) that a crash interrupted;
    /// 2. load the raft state: the conf and apply states from RocksDB (a group never seen
    ///    before is created with `voters` as its configuration), the hard state and where the
    ///    log starts from raft-engine;
    /// 3. finish a snapshot install that a crash interrupted, or discard half-received files;
    /// 4. reconcile the apply index with the log: RocksDB holds the state at the apply index
    ///    it records (its last flush), which must lie within the log, and raft re-applies
    ///    every committed entry after it;
    /// 5. load what the group keeps in memory (last entry, entry sizes).
    pub fn open(engine: Arc<Engine>, group_id: u64, voters: &[u64]) -> Result<PeerStorage> {
        let g = group_id;
        // 1.
        finish_interrupted_reset(&engine, g)?;
        // 2.
        let conf_state = match engine.get_msg(CF_RAFT, &keys::conf_state_key(g))? {
            Some(cs) => cs,
            None => {
                let mut cs = ConfState::default();
                cs.set_voters(voters.to_vec());
                let mut wb = WriteBatch::default();
                let cf = engine.cf(CF_RAFT);
                wb.put_cf(cf, keys::conf_state_key(g), encode_msg(&cs));
                // Every member of the group starts from this configuration.
                wb.put_cf(cf, keys::initial_conf_key(g), encode_msg(&cs));
                engine.write(wb, true)?;
                cs
            }
        };
        let apply_state: ApplyState = engine
            .get_msg(CF_RAFT, &keys::apply_state_key(g))?
            .unwrap_or_default();
        let hard_state: HardState = engine
            .get_log_msg(g, RAFT_HARD_STATE_KEY)?
            .unwrap_or_default();
        let truncated: RaftLogState = engine
            .get_log_msg(g, RAFT_LOG_STATE_KEY)?
            .unwrap_or_default();
        let mut s = PeerStorage {
            engine,
            group_id,
            hard_state,
            conf_state,
            last_index: truncated.truncated_index,
            last_term: truncated.truncated_term,
            apply_state,
            truncated,
            recent_terms: VecDeque::new(),
            entry_sizes: VecDeque::new(),
            log_bytes: 0,
            cache: VecDeque::new(),
            cache_bytes: 0,
            persisted: 0,
        };
        // 3.
        s.finish_interrupted_snapshot()?;
        // 4.
        s.reconcile()?;
        // 5.
        s.load_entry_sizes()?;
        Ok(s)
    }

    /// Completes a snapshot install that a crash interrupted (see [`crate::snap`]): RocksDB's
    /// raft state already describes the snapshot, so the data must be made to match it, and
    /// the raft log must start after it.
    fn finish_interrupted_snapshot(&mut self) -> Result<()> {
        let g = self.group_id;
        let engine = self.engine.clone();
        let snaps = engine.snapshots();
        let marker: Option<SnapshotData> = self
            .engine
            .get_msg(CF_RAFT, &keys::snapshot_applying_key(g))?;
        let Some(data) = marker else {
            return snaps.clean_received(g, None);
        };
        let dir = std::path::PathBuf::from(&data.received_dir);
        let (index, term) = (
            self.apply_state.applied_index,
            self.apply_state.applied_term,
        );
        tracing::warn!(
            group = g,
            index,
            dir = %dir.display(),
            "finishing a snapshot install interrupted by a crash"
        );
        if !dir.is_dir() {
            return Err(Error::Corrupted(format!(
                "group {g}: a snapshot install was interrupted and its files ({}) are gone",
                dir.display()
            )));
        }
        let mut batch = LogBatch::default();
        self.stage_log_restart(index, term, &mut batch)?;
        self.engine.write_log(&mut batch, true)?;
        let mut wb = WriteBatch::default();
        keys::stage_clear_data(&self.engine, &mut wb);
        self.engine.write(wb, true)?;
        snap::ingest(&self.engine, &dir)?;
        self.finish_snapshot()?;
        snaps.clean_received(g, None)
    }

    /// Stages a log that starts right after (`index`, `term`): the old entries are dropped and
    /// the hard state covers the point.
    fn stage_log_restart(&mut self, index: u64, term: u64, batch: &mut LogBatch) -> Result<()> {
        let g = self.group_id;
        batch.add_command(g, Command::Clean);
        self.truncated = RaftLogState {
            truncated_index: index,
            truncated_term: term,
            ..Default::default()
        };
        batch
            .put_message(g, RAFT_LOG_STATE_KEY.to_vec(), &self.truncated)
            .map_err(log_batch_err)?;
        let mut hs = self.hard_state.clone();
        hs.term = hs.term.max(term);
        hs.commit = hs.commit.max(index);
        self.set_hard_state(hs, batch)?;
        self.last_index = index;
        self.last_term = term;
        self.recent_terms.clear();
        self.entry_sizes.clear();
        self.log_bytes = 0;
        self.cache.clear();
        self.cache_bytes = 0;
        self.persisted = index;
        Ok(())
    }

    /// Removes the "applying" marker once a snapshot's files are ingested (flushed, so a
    /// restart never redoes an install that later writes were applied on top of).
    pub fn finish_snapshot(&self) -> Result<()> {
        let mut wb = WriteBatch::default();
        wb.delete_cf(
            self.engine.cf(CF_RAFT),
            keys::snapshot_applying_key(self.group_id),
        );
        self.engine.write(wb, true)
    }

    /// Step 4 of [`PeerStorage::open`]; refuses to start on state that cannot have been
    /// written by a correct node.
    fn reconcile(&mut self) -> Result<()> {
        let g = self.group_id;
        let log = self.engine.raft_log();
        let truncated = self.truncated.truncated_index;
        if let (Some(first), Some(last)) = (log.first_index(g), log.last_index(g)) {
            if first != truncated + 1 {
                return Err(Error::Corrupted(format!(
                    "group {g}: the raft log starts at {first}, but was truncated at {truncated}"
                )));
            }
            let entry = self.read_entry(last)?.ok_or_else(|| {
                Error::Corrupted(format!("group {g}: log entry {last} is unreadable"))
            })?;
            self.last_index = last;
            self.last_term = entry.term;
        }
        self.persisted = self.last_index;
        let applied = self.apply_state.applied_index;
        if applied < truncated {
            return Err(Error::Corrupted(format!(
                "group {g}: the data is at index {applied}, before the start of the raft log \
                 ({}): the log was compacted past what was flushed",
                truncated + 1
            )));
        }
        if applied > self.last_index {
            return Err(Error::Corrupted(format!(
                "group {g}: the data is at index {applied}, past the last raft log entry {} \
                 (raft log lost?)",
                self.last_index
            )));
        }
        // What was applied was committed; the stored commit index may lag it (the hard state
        // with a new commit index alone is not synced).
        if self.hard_state.commit < applied {
            self.hard_state.commit = applied;
        }
        let commit = self.hard_state.commit;
        if commit > self.last_index {
            return Err(Error::Corrupted(format!(
                "group {g}: commit index {commit} is past the last log entry {} (raft log truncated?)",
                self.last_index
            )));
        }
        if applied < commit {
            tracing::info!(
                group = g,
                from = applied + 1,
                to = commit,
                "re-applying committed entries the data on disk does not hold yet"
            );
        }
        Ok(())
    }

    fn load_entry_sizes(&mut self) -> Result<()> {
        let mut low = self.first_index();
        while low <= self.last_index {
            let high = (low + LOAD_CHUNK).min(self.last_index + 1);
            let mut ents = Vec::with_capacity((high - low) as usize);
            self.engine
                .raft_log()
                .fetch_entries_to::<EntryExt>(self.group_id, low, high, None, &mut ents)
                .map_err(|e| {
                    Error::Corrupted(format!(
                        "group {}: log entries [{low}, {high}): {e}",
                        self.group_id
                    ))
                })?;
            for e in &ents {
                let size = protobuf::Message::compute_size(e);
                self.entry_sizes.push_back(size);
                self.log_bytes += u64::from(size);
            }
            low = high;
        }
        Ok(())
    }

    fn read_entry(&self, index: u64) -> Result<Option<Entry>> {
        self.engine
            .raft_log()
            .get_entry::<EntryExt>(self.group_id, index)
            .map_err(|e| Error::Corrupted(format!("raft log entry {index}: {e}")))
    }

    pub fn group_id(&self) -> u64 {
        self.group_id
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn apply_state(&self) -> &ApplyState {
        &self.apply_state
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// Where the log was truncated: entries up to this index are gone.
    pub fn truncated_index(&self) -> u64 {
        self.truncated.truncated_index
    }

    fn first_index(&self) -> u64 {
        self.truncated.truncated_index + 1
    }

    /// Entries in the log (past the compacted prefix) and their encoded size.
    pub fn log_size(&self) -> (u64, u64) {
        (
            self.last_index - self.truncated.truncated_index,
            self.log_bytes,
        )
    }

    /// Where to compact the log to, if it holds more than `max_entries` entries or
    /// `max_bytes` bytes: the newest half of each limit is kept, and nothing past `applied`
    /// is removed.
    pub fn compact_target(&self, applied: u64, max_entries: u64, max_bytes: u64) -> Option<u64> {
        let (count, bytes) = self.log_size();
        if count <= max_entries && bytes <= max_bytes {
            return None;
        }
        let by_count = self.last_index.saturating_sub(max_entries / 2);
        let mut kept = 0u64;
        let mut by_bytes = self.truncated.truncated_index;
        for (i, size) in self.entry_sizes.iter().enumerate().rev() {
            kept += u64::from(*size);
            if kept > max_bytes / 2 {
                by_bytes = self.first_index() + i as u64;
                break;
            }
        }
        let target = by_count.max(by_bytes).min(applied);
        (target > self.truncated.truncated_index).then_some(target)
    }

    /// Stages the removal of the log up to and including `index`, which must be applied and
    /// flushed: the data on disk must never be older than the log's start.
    pub fn compact_to(&mut self, index: u64, batch: &mut LogBatch) -> Result<()> {
        let first = self.first_index();
        assert!(
            index >= first && index <= self.apply_state.applied_index,
            "compact to {index}: log starts at {first}, applied {}",
            self.apply_state.applied_index
        );
        let term = raft::Storage::term(self, index)
            .map_err(|e| Error::Storage(format!("term of {index}: {e}")))?;
        self.truncated = RaftLogState {
            truncated_index: index,
            truncated_term: term,
            ..Default::default()
        };
        batch
            .put_message(self.group_id, RAFT_LOG_STATE_KEY.to_vec(), &self.truncated)
            .map_err(log_batch_err)?;
        batch.add_command(self.group_id, Command::Compact { index: index + 1 });
        for _ in first..=index {
            if let Some(size) = self.entry_sizes.pop_front() {
                self.log_bytes -= u64::from(size);
            }
        }
        while self.cache.front().is_some_and(|(e, _)| e.index <= index) {
            let (_, size) = self.cache.pop_front().expect("non-empty");
            self.cache_bytes -= u64::from(size);
        }
        Ok(())
    }

    /// Stages installing `snap`, in two batches written in this order: `wb` (RocksDB: the
    /// old data cleared, the apply and conf states moved to the snapshot, its member
    /// addresses, and the "applying" marker naming the received files in `data`), then
    /// `batch` (raft-engine: the log dropped, restarting after the snapshot). The caller
    /// writes both (durably), ingests the files, then calls [`PeerStorage::finish_snapshot`].
    /// A crash after `wb` is on disk finishes the install at the next start.
    pub fn apply_snapshot(
        &mut self,
        snap: &Snapshot,
        data: &SnapshotData,
        wb: &mut WriteBatch,
        batch: &mut LogBatch,
    ) -> Result<()> {
        let meta = snap.get_metadata();
        let (index, term) = (meta.index, meta.term);
        let g = self.group_id;
        let cf = self.engine.cf(CF_RAFT);
        let (addr_start, addr_end) = keys::node_addr_range(g);
        wb.delete_range_cf(cf, addr_start, addr_end);
        for n in data.nodes.iter() {
            wb.put_cf(cf, keys::node_addr_key(g, n.node_id), encode_msg(n));
        }
        keys::stage_clear_data(&self.engine, wb);
        wb.put_cf(cf, keys::snapshot_applying_key(g), encode_msg(data));
        self.set_applied(index, term, wb);
        self.set_conf_state(meta.get_conf_state().clone(), wb);
        self.stage_log_restart(index, term, batch)
    }

    /// Stages `entries` (which may overwrite a conflicting suffix of the log: raft-engine
    /// drops the old suffix from the first new index on).
    pub fn append(&mut self, entries: &[Entry], batch: &mut LogBatch) -> Result<()> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        assert!(
            first.index > self.truncated.truncated_index,
            "append at {} overwrites the compacted log (truncated at {})",
            first.index,
            self.truncated.truncated_index
        );
        assert!(
            first.index <= self.last_index + 1,
            "append at {} leaves a hole after {}",
            first.index,
            self.last_index
        );
        batch
            .add_entries::<EntryExt>(self.group_id, entries)
            .map_err(log_batch_err)?;
        // Encoding them into the batch cached each entry's encoded size: no second pass.
        let sizes: Vec<u32> = entries
            .iter()
            .map(protobuf::Message::get_cached_size)
            .collect();
        // `recent_terms` covers [window_start, last_index]; keep the part before the new
        // entries, then add theirs, so it stays consecutive and ends at the new last index.
        let window_start = self.last_index + 1 - self.recent_terms.len() as u64;
        if first.index < window_start || first.index > self.last_index + 1 {
            self.recent_terms.clear();
        } else {
            self.recent_terms
                .truncate((first.index - window_start) as usize);
        }
        self.recent_terms.extend(entries.iter().map(|e| e.term));
        // `entry_sizes` covers [first_index, last_index] the same way.
        let keep = (first.index - self.first_index()) as usize;
        while self.entry_sizes.len() > keep {
            let size = self.entry_sizes.pop_back().expect("non-empty");
            self.log_bytes -= u64::from(size);
        }
        // The cache covers [cache_start, last_index] the same way.
        let cache_start = self.last_index + 1 - self.cache.len() as u64;
        if first.index < cache_start || first.index > self.last_index + 1 {
            self.cache.clear();
            self.cache_bytes = 0;
        } else {
            while self.cache.len() as u64 > first.index - cache_start {
                let (_, size) = self.cache.pop_back().expect("non-empty");
                self.cache_bytes -= u64::from(size);
            }
        }
        // The new entries are not written yet.
        self.persisted = self.persisted.min(first.index - 1);
        for (e, size) in entries.iter().zip(sizes) {
            self.entry_sizes.push_back(size);
            self.log_bytes += u64::from(size);
            self.cache.push_back((e.clone(), size));
            self.cache_bytes += u64::from(size);
        }
        while self.recent_terms.len() > RECENT_TERMS {
            self.recent_terms.pop_front();
        }
        self.last_index = last.index;
        self.last_term = last.term;
        self.evict();
        Ok(())
    }

    /// Records that the log is written up to `index` (by the log writer).
    pub fn set_persisted(&mut self, index: u64) {
        self.persisted = index;
        self.evict();
    }

    /// Keeps the cache within its budget, dropping the oldest written entries.
    fn evict(&mut self) {
        let persisted = self.persisted;
        while self.cache_bytes > ENTRY_CACHE_BYTES
            && self.cache.len() > 1
            && self
                .cache
                .front()
                .is_some_and(|(e, _)| e.index <= persisted)
        {
            let (_, size) = self.cache.pop_front().expect("non-empty");
            self.cache_bytes -= u64::from(size);
        }
    }

    pub fn set_hard_state(&mut self, hs: HardState, batch: &mut LogBatch) -> Result<()> {
        batch
            .put_message(self.group_id, RAFT_HARD_STATE_KEY.to_vec(), &hs)
            .map_err(log_batch_err)?;
        self.hard_state = hs;
        Ok(())
    }

    pub fn set_conf_state(&mut self, cs: ConfState, wb: &mut WriteBatch) {
        wb.put_cf(
            self.engine.cf(CF_RAFT),
            keys::conf_state_key(self.group_id),
            encode_msg(&cs),
        );
        self.conf_state = cs;
    }

    /// Stages the apply state (the index and term of the last entry applied); it must go in
    /// the same batch as the data it covers.
    pub fn set_applied(&mut self, applied: u64, term: u64, wb: &mut WriteBatch) {
        self.apply_state.applied_index = applied;
        self.apply_state.applied_term = term;
        wb.put_cf(
            self.engine.cf(CF_RAFT),
            keys::apply_state_key(self.group_id),
            encode_msg(&self.apply_state),
        );
    }
}

/// The configuration group `group_id` started from; a node joining the group starts from it
/// too and replays the whole log.
pub fn initial_conf_state(engine: &Engine, group_id: u64) -> Result<Option<ConfState>> {
    engine.get_msg(CF_RAFT, &keys::initial_conf_key(group_id))
}

/// Finishes a reset that a crash interrupted (see `group.rs`): RocksDB already holds the new
/// state, and the old group's raft log is dropped now.
fn finish_interrupted_reset(engine: &Engine, g: u64) -> Result<()> {
    if engine.get(CF_RAFT, &keys::resetting_key(g))?.is_none() {
        return Ok(());
    }
    tracing::warn!(group = g, "finishing a reset interrupted by a crash");
    let mut batch = LogBatch::default();
    batch.add_command(g, Command::Clean);
    engine.write_log(&mut batch, true)?;
    let mut wb = WriteBatch::default();
    wb.delete_cf(engine.cf(CF_RAFT), keys::resetting_key(g));
    engine.write(wb, true)
}

fn store_err(e: Error) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(e)))
}

impl raft::Storage for PeerStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(
            high <= self.last_index + 1,
            "entries [{low}, {high}) past the last index {}",
            self.last_index
        );
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let mut out = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        // Entries before the cache come from raft-engine, the rest from the cache (which holds
        // every entry not written yet).
        let cache_start = self.last_index + 1 - self.cache.len() as u64;
        let disk_end = high.min(cache_start);
        if low < disk_end {
            let max = usize::try_from(max_size).unwrap_or(usize::MAX);
            let fetched = self
                .engine
                .raft_log()
                .fetch_entries_to::<EntryExt>(self.group_id, low, disk_end, Some(max), &mut out)
                .map_err(|e| {
                    store_err(Error::Corrupted(format!(
                        "group {}: log entries [{low}, {disk_end}): {e}",
                        self.group_id
                    )))
                })?;
            if (fetched as u64) < disk_end - low {
                // The size limit was reached.
                return Ok(out);
            }
            size = out
                .iter()
                .map(|e| u64::from(protobuf::Message::compute_size(e)))
                .sum();
        }
        if high > cache_start {
            let skip = low.saturating_sub(cache_start) as usize;
            for (e, len) in self.cache.range(skip..) {
                if e.index >= high {
                    break;
                }
                size += u64::from(*len);
                if !out.is_empty() && size > max_size {
                    break;
                }
                out.push(e.clone());
            }
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.truncated.truncated_index {
            return Ok(self.truncated.truncated_term);
        }
        if idx < self.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if idx == self.last_index {
            return Ok(self.last_term);
        }
        let window_start = self.last_index + 1 - self.recent_terms.len() as u64;
        if idx >= window_start {
            return Ok(self.recent_terms[(idx - window_start) as usize]);
        }
        match self.read_entry(idx).map_err(store_err)? {
            Some(e) => Ok(e.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
    }

    /// A snapshot for a follower the compacted log cannot serve. It must reach the compacted
    /// point, or the follower would need entries that are gone; generation runs in the
    /// background and raft asks again until it is ready.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let min_index = request_index.max(self.truncated.truncated_index);
        match self
            .engine
            .snapshots()
            .get_or_generate(&self.engine, self.group_id, min_index)
        {
            Some(g) => {
                tracing::info!(
                    group = self.group_id,
                    to,
                    index = g.meta.index,
                    "sending a snapshot"
                );
                Ok(snap::raft_snapshot(&g))
            }
            None => Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use raft::Storage;

    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8; 10].into(),
            ..Default::default()
        }
    }

    fn hard_state(term: u64, commit: u64) -> HardState {
        HardState {
            term,
            commit,
            ..Default::default()
        }
    }

    fn open(dir: &std::path::Path) -> (Arc<Engine>, PeerStorage) {
        let engine = Engine::open(dir).unwrap();
        let s = PeerStorage::open(engine.clone(), 3, &[1]).unwrap();
        (engine, s)
    }

    /// Stages with `stage` into one raft-engine batch and writes it synced.
    fn log_write(engine: &Engine, stage: impl FnOnce(&mut LogBatch)) {
        let mut b = LogBatch::default();
        stage(&mut b);
        engine.write_log(&mut b, true).unwrap();
    }

    fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range.map(|i| entry(i, term)).collect()
    }

    #[test]
    fn appended_entries_survive_reopen_and_conflicts_truncate() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (engine, mut s) = open(dir.path());
            assert_eq!(s.initial_state().unwrap().conf_state.voters, vec![1]);
            log_write(&engine, |b| {
                s.append(&entries(1..=10, 1), b).unwrap();
                s.set_hard_state(hard_state(1, 5), b).unwrap();
            });
            // A new leader overwrites the tail from index 7 with two entries of term 2.
            log_write(&engine, |b| {
                s.append(&[entry(7, 2), entry(8, 2)], b).unwrap()
            });
            assert_eq!(s.last_index, 8);
        }
        let (_engine, s) = open(dir.path());
        assert_eq!(Storage::last_index(&s).unwrap(), 8);
        assert_eq!(Storage::first_index(&s).unwrap(), 1);
        assert_eq!(s.term(8).unwrap(), 2);
        assert_eq!(s.term(6).unwrap(), 1);
        assert_eq!(s.initial_state().unwrap().hard_state.commit, 5);
        let ents = s
            .entries(1, 9, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(
            ents.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(),
            [
                (1, 1),
                (2, 1),
                (3, 1),
                (4, 1),
                (5, 1),
                (6, 1),
                (7, 2),
                (8, 2)
            ]
        );
        // max_size limits the batch but always returns at least one entry.
        assert_eq!(
            s.entries(1, 9, 1, GetEntriesContext::empty(false))
                .unwrap()
                .len(),
            1
        );
        assert!(matches!(
            s.term(9),
            Err(raft::Error::Store(StorageError::Unavailable))
        ));
    }

    #[test]
    fn cached_entries_match_the_log_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, mut s) = open(dir.path());
        let big = |index: u64, term: u64| Entry {
            data: vec![index as u8; 10_000].into(),
            ..entry(index, term)
        };
        // 2,000 entries of 10 kB: more than the cache holds, so it starts past the log's start.
        let mut b = LogBatch::default();
        s.append(&(1..=2000).map(|i| big(i, 1)).collect::<Vec<_>>(), &mut b)
            .unwrap();
        assert_eq!(s.cache.len(), 2000, "entries not written yet stay cached");
        engine.write_log(&mut b, false).unwrap();
        s.set_persisted(2000);
        log_write(&engine, |b| {
            s.append(&[big(1990, 2), big(1991, 2)], b).unwrap()
        });
        s.set_persisted(1991);
        s.apply_state.applied_index = 1991;
        log_write(&engine, |b| s.compact_to(1500, b).unwrap());
        assert!(s.cache_bytes <= ENTRY_CACHE_BYTES);
        assert!(s.cache.len() > 100 && s.cache.len() < 990);
        assert_eq!(s.cache.back().unwrap().0.index, 1991);
        let ranges = [
            (1501, 1992),
            (1900, 1992),
            (1990, 1991),
            (1501, 1502),
            (1985, 1992),
        ];
        let read = |s: &PeerStorage| {
            let mut all = Vec::new();
            for (low, high) in ranges {
                for max in [None, Some(1), Some(25_000), Some(1 << 20)] {
                    let got = s.entries(low, high, max, GetEntriesContext::empty(false));
                    all.push(got.unwrap());
                }
            }
            all
        };
        let cached = read(&s);
        s.cache.clear();
        assert_eq!(read(&s), cached);
        assert_eq!(cached[0].len(), 491);
        assert_eq!(cached[0].last().unwrap().term, 2);
        assert_eq!(cached[1].len(), 1, "max_size still returns one entry");
        assert_eq!(cached[2].len(), 2, "max_size 25,000 fits two 10 kB entries");
    }

    #[test]
    fn a_stored_commit_behind_the_apply_index_is_raised_to_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (engine, mut s) = open(dir.path());
            log_write(&engine, |b| {
                s.append(&entries(1..=10, 1), b).unwrap();
                s.set_hard_state(hard_state(1, 4), b).unwrap();
            });
            let mut wb = WriteBatch::default();
            s.set_applied(7, 1, &mut wb);
            engine.write(wb, true).unwrap();
        }
        let (_engine, s) = open(dir.path());
        assert_eq!(s.initial_state().unwrap().hard_state.commit, 7);
        assert_eq!(s.initial_state().unwrap().hard_state.term, 1);
    }

    #[test]
    fn unflushed_applies_are_lost_in_a_crash_and_the_log_still_covers_them() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (engine, mut s) = open(dir.path());
            log_write(&engine, |b| {
                s.append(&entries(1..=10, 1), b).unwrap();
                s.set_hard_state(hard_state(1, 10), b).unwrap();
            });
            let mut wb = WriteBatch::default();
            s.set_applied(4, 1, &mut wb);
            engine.write(wb, true).unwrap();
            // Applied to 10, but not flushed: the crash (RocksDB closed without its
            // shutdown flush) loses it.
            let mut wb = WriteBatch::default();
            s.set_applied(10, 1, &mut wb);
            engine.write(wb, false).unwrap();
            assert_eq!(s.apply_state.applied_index, 10);
            std::mem::forget(s);
            std::mem::forget(engine);
        }
        // The forgotten engine still holds the directory's locks: copy what is on disk.
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        let (_engine, s) = open(copy.path());
        assert_eq!(s.apply_state().applied_index, 4, "only the flushed apply");
        assert_eq!(s.initial_state().unwrap().hard_state.commit, 10);
        assert_eq!(
            Storage::last_index(&s).unwrap(),
            10,
            "entries 5..=10 to re-apply"
        );
    }

    fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dest = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                std::fs::create_dir_all(&dest).unwrap();
                copy_dir(&e.path(), &dest);
            } else if e.file_name() != "LOCK" {
                std::fs::copy(e.path(), dest).unwrap();
            }
        }
    }

    #[test]
    fn cached_terms_follow_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, mut s) = open(dir.path());
        log_write(&engine, |b| {
            s.append(&entries(1..=10, 1), b).unwrap();
            s.append(&[entry(6, 2), entry(7, 2)], b).unwrap();
            s.append(&[entry(8, 3)], b).unwrap();
        });
        let expect = [1, 1, 1, 1, 1, 2, 2, 3];
        for (i, t) in expect.iter().enumerate() {
            assert_eq!(s.term(i as u64 + 1).unwrap(), *t, "index {}", i + 1);
        }
        // The same answers from disk alone.
        drop(s);
        let s = PeerStorage::open(engine, 3, &[1]).unwrap();
        assert_eq!(Storage::last_index(&s).unwrap(), 8);
        for (i, t) in expect.iter().enumerate() {
            assert_eq!(
                s.term(i as u64 + 1).unwrap(),
                *t,
                "index {} after reopen",
                i + 1
            );
        }
    }

    #[test]
    fn compaction_keeps_the_newest_half_and_never_passes_applied() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (engine, mut s) = open(dir.path());
            log_write(&engine, |b| {
                s.append(&entries(1..=100, 1), b).unwrap();
                s.set_hard_state(hard_state(1, 100), b).unwrap();
            });
            let mut wb = WriteBatch::default();
            s.set_applied(60, 1, &mut wb);
            engine.write(wb, true).unwrap();
            assert_eq!(s.compact_target(60, 100, u64::MAX), None, "within limits");
            // Over 40 entries: keep the newest 20, but nothing past applied (60).
            assert_eq!(s.compact_target(60, 40, u64::MAX), Some(60));
            assert_eq!(s.compact_target(100, 40, u64::MAX), Some(80));
            // By bytes: each entry is a little over 10 bytes; 200 bytes keeps ~9 of them.
            let by_bytes = s.compact_target(100, 1000, 200).unwrap();
            assert!((88..=95).contains(&by_bytes), "{by_bytes}");
            log_write(&engine, |b| s.compact_to(50, b).unwrap());
            assert_eq!(s.log_size().0, 50);
            assert!(matches!(
                s.entries(40, 60, None, GetEntriesContext::empty(false)),
                Err(raft::Error::Store(StorageError::Compacted))
            ));
            assert!(matches!(
                s.term(49),
                Err(raft::Error::Store(StorageError::Compacted))
            ));
        }
        let (_engine, s) = open(dir.path());
        assert_eq!(Storage::first_index(&s).unwrap(), 51);
        assert_eq!(s.term(50).unwrap(), 1, "the truncated term is kept");
        assert_eq!(s.log_size().0, 50);
        let ents = s
            .entries(51, 101, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(ents.len(), 50);
    }

    #[test]
    fn groups_do_not_see_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut a = PeerStorage::open(engine.clone(), 1, &[1]).unwrap();
        log_write(&engine, |b| {
            a.append(&[entry(1, 1), entry(2, 1)], b).unwrap();
            a.set_hard_state(hard_state(1, 2), b).unwrap();
        });
        let b = PeerStorage::open(engine.clone(), 2, &[1]).unwrap();
        assert_eq!(Storage::last_index(&b).unwrap(), 0);
        let a = PeerStorage::open(engine, 1, &[1]).unwrap();
        assert_eq!(Storage::last_index(&a).unwrap(), 2);
    }

    #[test]
    fn data_outside_the_log_is_refused() {
        // The data ahead of the log (the raft log lost).
        let dir = tempfile::tempdir().unwrap();
        {
            let (engine, mut s) = open(dir.path());
            log_write(&engine, |b| {
                s.append(&entries(1..=3, 1), b).unwrap();
                s.set_hard_state(hard_state(1, 3), b).unwrap();
            });
            let mut wb = WriteBatch::default();
            s.set_applied(5, 1, &mut wb);
            engine.write(wb, true).unwrap();
        }
        let engine = Engine::open(dir.path()).unwrap();
        let err = PeerStorage::open(engine, 3, &[1]).err().unwrap();
        assert!(
            err.to_string()
                .contains("the data is at index 5, past the last raft log entry 3"),
            "{err}"
        );
        // The data behind the log's start (compacted past what was flushed).
        let dir = tempfile::tempdir().unwrap();
        {
            let (engine, mut s) = open(dir.path());
            log_write(&engine, |b| {
                s.append(&entries(1..=20, 1), b).unwrap();
                s.set_hard_state(hard_state(1, 20), b).unwrap();
            });
            s.apply_state.applied_index = 15;
            log_write(&engine, |b| s.compact_to(12, b).unwrap());
            let mut wb = WriteBatch::default();
            s.set_applied(8, 1, &mut wb);
            engine.write(wb, true).unwrap();
        }
        let engine = Engine::open(dir.path()).unwrap();
        let err = PeerStorage::open(engine, 3, &[1]).err().unwrap();
        assert!(
            err.to_string()
                .contains("the data is at index 8, before the start of the raft log (13)"),
            "{err}"
        );
    }

    #[test]
    fn an_interrupted_reset_drops_the_old_log_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (engine, mut s) = open(dir.path());
            log_write(&engine, |b| {
                s.append(&entries(1..=5, 2), b).unwrap();
                s.set_hard_state(hard_state(2, 5), b).unwrap();
            });
            // The reset's first step: RocksDB holds the new, empty state and the marker.
            let mut wb = WriteBatch::default();
            let cf = engine.cf(CF_RAFT);
            wb.delete_range_cf(cf, keys::group_start(3), keys::group_end(3));
            wb.put_cf(cf, keys::resetting_key(3), []);
            engine.write(wb, true).unwrap();
        }
        let (engine, s) = open(dir.path());
        assert_eq!(Storage::last_index(&s).unwrap(), 0);
        assert_eq!(s.initial_state().unwrap().hard_state.term, 0);
        assert_eq!(engine.get(CF_RAFT, &keys::resetting_key(3)).unwrap(), None);
    }
}
