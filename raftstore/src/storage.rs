//! `PeerStorage`: the raft log, hard state, conf state and apply state of one raft group,
//! kept in the `raft` column family and read by raft-rs through [`raft::Storage`].
//!
//! Writes are staged into a `WriteBatch` by the ready loop, and the group's log writer writes it
//! (synced); raft is told what is persisted only after that. The in-memory copies here are
//! updated as the writes are staged, so staged entries are served from the entry cache until
//! they reach the disk; a failed write panics the node, so memory never outlives a lost write.

use std::collections::VecDeque;
use std::sync::Arc;

use protobuf::Message as PbMessage;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use rocksdb::{Direction, IteratorMode, WriteBatch};

use crate::engine::{encode_msg, Engine};
use crate::error::{Error, Result};
use crate::keys::{self, CF_RAFT};
use crate::proto::{ApplyState, SnapshotData};
use crate::snap;

pub struct PeerStorage {
    engine: Arc<Engine>,
    group_id: u64,
    hard_state: HardState,
    conf_state: ConfState,
    apply_state: ApplyState,
    last_index: u64,
    last_term: u64,
    /// Terms of the most recent entries (consecutive, ending at `last_index`): raft asks for
    /// them on every append response, and they would otherwise be a RocksDB read each.
    recent_terms: VecDeque<u64>,
    /// Encoded size of every entry in `[first_index, last_index]`, and their sum: what log
    /// compaction is judged by.
    entry_sizes: VecDeque<u32>,
    log_bytes: u64,
    /// The newest entries (consecutive, ending at `last_index`) and their encoded sizes, up to
    /// [`ENTRY_CACHE_BYTES`]: they are applied and sent to followers right after they are
    /// written, and would otherwise be read back from RocksDB and decoded.
    /// Entries past `persisted` are not written yet (the log writer has them): they are never
    /// evicted, since raft reads them through [`raft::Storage`] before they reach the disk.
    cache: VecDeque<(Entry, u32)>,
    cache_bytes: u64,
    persisted: u64,
}

const RECENT_TERMS: usize = 8192;
const ENTRY_CACHE_BYTES: u64 = 8 << 20;

impl PeerStorage {
    /// Loads the state of `group_id`. A group never seen before is created with `voters`
    /// as its configuration (a one-voter group for a fresh node).
    pub fn open(engine: Arc<Engine>, group_id: u64, voters: &[u64]) -> Result<PeerStorage> {
        let hard_state: HardState = engine
            .get_msg(CF_RAFT, &keys::hard_state_key(group_id))?
            .unwrap_or_default();
        let apply_state: ApplyState = engine
            .get_msg(CF_RAFT, &keys::apply_state_key(group_id))?
            .unwrap_or_default();
        let conf_state = match engine.get_msg(CF_RAFT, &keys::conf_state_key(group_id))? {
            Some(cs) => cs,
            None => {
                let mut cs = ConfState::default();
                cs.set_voters(voters.to_vec());
                let mut wb = WriteBatch::default();
                let cf = engine.cf(CF_RAFT);
                wb.put_cf(cf, keys::conf_state_key(group_id), encode_msg(&cs));
                // Every member of the group starts from this configuration.
                wb.put_cf(cf, keys::initial_conf_key(group_id), encode_msg(&cs));
                engine.write(wb, true)?;
                cs
            }
        };
        let mut s = PeerStorage {
            engine,
            group_id,
            hard_state,
            conf_state,
            last_index: apply_state.truncated_index,
            last_term: apply_state.truncated_term,
            apply_state,
            recent_terms: VecDeque::new(),
            entry_sizes: VecDeque::new(),
            log_bytes: 0,
            cache: VecDeque::new(),
            cache_bytes: 0,
            persisted: 0,
        };
        if let Some(last) = s.read_last_entry()? {
            s.last_index = last.index;
            s.last_term = last.term;
        }
        s.persisted = s.last_index;
        // Only committed entries are applied, but the apply state and the hard state are
        // written by different threads (apply, log writer), so the stored commit index may
        // lag the stored apply index: what was applied was committed.
        if s.hard_state.commit < s.apply_state.applied_index {
            s.hard_state.commit = s.apply_state.applied_index;
        }
        s.finish_interrupted_snapshot()?;
        s.check_consistency()?;
        s.load_entry_sizes()?;
        Ok(s)
    }

    /// Completes a snapshot install that a crash interrupted (see [`crate::snap`]): the raft
    /// state already describes the snapshot, so the data must be made to match it.
    fn finish_interrupted_snapshot(&self) -> Result<()> {
        let g = self.group_id;
        let snaps = self.engine.snapshots();
        let marker: Option<SnapshotData> = self
            .engine
            .get_msg(CF_RAFT, &keys::snapshot_applying_key(g))?;
        let Some(data) = marker else {
            return snaps.clean_received(g, None);
        };
        let dir = std::path::PathBuf::from(&data.received_dir);
        tracing::warn!(
            group = g,
            index = self.apply_state.applied_index,
            dir = %dir.display(),
            "finishing a snapshot install interrupted by a crash"
        );
        if !dir.is_dir() {
            return Err(Error::Corrupted(format!(
                "group {g}: a snapshot install was interrupted and its files ({}) are gone",
                dir.display()
            )));
        }
        let mut wb = WriteBatch::default();
        keys::stage_clear_data(&self.engine, &mut wb);
        self.engine.write(wb, true)?;
        snap::ingest(&self.engine, &dir)?;
        self.finish_snapshot()?;
        snaps.clean_received(g, None)
    }

    /// Removes the "applying" marker once a snapshot's files are ingested (synced, so a
    /// restart never redoes an install that later writes were applied on top of).
    pub fn finish_snapshot(&self) -> Result<()> {
        let mut wb = WriteBatch::default();
        wb.delete_cf(
            self.engine.cf(CF_RAFT),
            keys::snapshot_applying_key(self.group_id),
        );
        self.engine.write(wb, true)
    }

    fn load_entry_sizes(&mut self) -> Result<()> {
        let first = self.first_index();
        let start = keys::log_key(self.group_id, first);
        let it = self.engine.db().iterator_cf(
            self.engine.cf(CF_RAFT),
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in it {
            let (k, v) = item.map_err(|e| Error::Storage(e.to_string()))?;
            if k[..10] != start[..10] || keys::log_index(&k).is_none() {
                break;
            }
            self.entry_sizes.push_back(v.len() as u32);
            self.log_bytes += v.len() as u64;
        }
        Ok(())
    }

    /// Refuses to start on state that cannot have been written by a correct node.
    fn check_consistency(&self) -> Result<()> {
        let commit = self.hard_state.commit;
        if commit > self.last_index {
            return Err(Error::Corrupted(format!(
                "group {}: commit index {commit} is past the last log entry {} (raft log truncated?)",
                self.group_id, self.last_index
            )));
        }
        if self.last_index > self.apply_state.truncated_index {
            let first = self.first_index();
            if self.read_entry(first)?.is_none() {
                return Err(Error::Corrupted(format!(
                    "group {}: log entry {first} is missing",
                    self.group_id
                )));
            }
        }
        Ok(())
    }

    fn read_last_entry(&self) -> Result<Option<Entry>> {
        let end = keys::log_key(self.group_id, u64::MAX);
        let mut it = self.engine.db().iterator_cf(
            self.engine.cf(CF_RAFT),
            IteratorMode::From(&end, Direction::Reverse),
        );
        match it.next() {
            Some(Ok((k, v))) if keys::log_index(&k).is_some() && k[..10] == end[..10] => {
                Ok(Some(decode_entry(&v)?))
            }
            Some(Err(e)) => Err(Error::Storage(e.to_string())),
            _ => Ok(None),
        }
    }

    fn read_entry(&self, index: u64) -> Result<Option<Entry>> {
        match self
            .engine
            .get(CF_RAFT, &keys::log_key(self.group_id, index))?
        {
            Some(v) => Ok(Some(decode_entry(&v)?)),
            None => Ok(None),
        }
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

    fn first_index(&self) -> u64 {
        self.apply_state.truncated_index + 1
    }

    /// Entries in the log (past the compacted prefix) and their encoded size.
    pub fn log_size(&self) -> (u64, u64) {
        (
            self.last_index - self.apply_state.truncated_index,
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
        let mut by_bytes = self.apply_state.truncated_index;
        for (i, size) in self.entry_sizes.iter().enumerate().rev() {
            kept += u64::from(*size);
            if kept > max_bytes / 2 {
                by_bytes = self.first_index() + i as u64;
                break;
            }
        }
        let target = by_count.max(by_bytes).min(applied);
        (target > self.apply_state.truncated_index).then_some(target)
    }

    /// Stages the removal of the log up to and including `index` (which must be applied).
    pub fn compact_to(&mut self, index: u64, wb: &mut WriteBatch) -> Result<()> {
        let first = self.first_index();
        assert!(
            index >= first && index <= self.apply_state.applied_index,
            "compact to {index}: log starts at {first}, applied {}",
            self.apply_state.applied_index
        );
        let term = raft::Storage::term(self, index)
            .map_err(|e| Error::Storage(format!("term of {index}: {e}")))?;
        wb.delete_range_cf(
            self.engine.cf(CF_RAFT),
            keys::log_key(self.group_id, first),
            keys::log_key(self.group_id, index + 1),
        );
        for _ in first..=index {
            if let Some(size) = self.entry_sizes.pop_front() {
                self.log_bytes -= u64::from(size);
            }
        }
        while self.cache.front().is_some_and(|(e, _)| e.index <= index) {
            let (_, size) = self.cache.pop_front().expect("non-empty");
            self.cache_bytes -= u64::from(size);
        }
        self.apply_state.truncated_index = index;
        self.apply_state.truncated_term = term;
        let applied = self.apply_state.applied_index;
        self.set_applied(applied, wb);
        Ok(())
    }

    /// Stages the raft side of installing `snap`: the log is dropped, the apply and conf
    /// states move to the snapshot, the old data is cleared and the "applying" marker (naming
    /// the received files in `data`) is set. The caller writes the batch (synced), ingests the
    /// files, then calls [`PeerStorage::finish_snapshot`].
    pub fn apply_snapshot(&mut self, snap: &Snapshot, data: &SnapshotData, wb: &mut WriteBatch) {
        let meta = snap.get_metadata();
        let (index, term) = (meta.index, meta.term);
        let g = self.group_id;
        let cf = self.engine.cf(CF_RAFT);
        let (log_start, log_end) = keys::log_range(g);
        wb.delete_range_cf(cf, log_start, log_end);
        let (addr_start, addr_end) = keys::node_addr_range(g);
        wb.delete_range_cf(cf, addr_start, addr_end);
        for n in data.nodes.iter() {
            wb.put_cf(cf, keys::node_addr_key(g, n.node_id), encode_msg(n));
        }
        keys::stage_clear_data(&self.engine, wb);
        wb.put_cf(cf, keys::snapshot_applying_key(g), encode_msg(data));
        self.apply_state.truncated_index = index;
        self.apply_state.truncated_term = term;
        self.set_applied(index, wb);
        self.set_conf_state(meta.get_conf_state().clone(), wb);
        let mut hs = self.hard_state.clone();
        hs.term = hs.term.max(term);
        hs.commit = hs.commit.max(index);
        self.set_hard_state(hs, wb);
        self.last_index = index;
        self.last_term = term;
        self.recent_terms.clear();
        self.entry_sizes.clear();
        self.log_bytes = 0;
        self.cache.clear();
        self.cache_bytes = 0;
        self.persisted = index;
    }

    /// Stages `entries` (which may overwrite a conflicting suffix of the log).
    pub fn append(&mut self, entries: &[Entry], wb: &mut WriteBatch) {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return;
        };
        assert!(
            first.index > self.apply_state.truncated_index,
            "append at {} overwrites the compacted log (truncated at {})",
            first.index,
            self.apply_state.truncated_index
        );
        let mut sizes = Vec::with_capacity(entries.len());
        for e in entries {
            let encoded = encode_msg(e);
            sizes.push(encoded.len() as u32);
            wb.put_cf(
                self.engine.cf(CF_RAFT),
                keys::log_key(self.group_id, e.index),
                encoded,
            );
        }
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
        if last.index < self.last_index {
            // The tail of the old log conflicts with the new entries: remove it.
            wb.delete_range_cf(
                self.engine.cf(CF_RAFT),
                keys::log_key(self.group_id, last.index + 1),
                keys::log_key(self.group_id, self.last_index + 1),
            );
        }
        self.last_index = last.index;
        self.last_term = last.term;
        self.evict();
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

    pub fn set_hard_state(&mut self, hs: HardState, wb: &mut WriteBatch) {
        wb.put_cf(
            self.engine.cf(CF_RAFT),
            keys::hard_state_key(self.group_id),
            encode_msg(&hs),
        );
        self.hard_state = hs;
    }

    pub fn set_conf_state(&mut self, cs: ConfState, wb: &mut WriteBatch) {
        wb.put_cf(
            self.engine.cf(CF_RAFT),
            keys::conf_state_key(self.group_id),
            encode_msg(&cs),
        );
        self.conf_state = cs;
    }

    /// Stages the apply state; it must go in the same batch as the data it covers.
    pub fn set_applied(&mut self, applied: u64, wb: &mut WriteBatch) {
        self.apply_state.applied_index = applied;
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

fn decode_entry(v: &[u8]) -> Result<Entry> {
    Entry::parse_from_bytes(v).map_err(|e| Error::Corrupted(format!("raft log entry: {e}")))
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
        // Entries before the cache come from RocksDB, the rest from the cache (which holds
        // every entry not written yet).
        let cache_start = self.last_index + 1 - self.cache.len() as u64;
        let disk_end = high.min(cache_start);
        if low < disk_end {
            let start = keys::log_key(self.group_id, low);
            let it = self.engine.db().iterator_cf(
                self.engine.cf(CF_RAFT),
                IteratorMode::From(&start, Direction::Forward),
            );
            for (expect, item) in (low..disk_end).zip(it) {
                let (k, v) = item.map_err(|e| store_err(Error::Storage(e.to_string())))?;
                if keys::log_index(&k) != Some(expect) || k[..10] != start[..10] {
                    return Err(store_err(Error::Corrupted(format!(
                        "group {}: log entry {expect} is missing",
                        self.group_id
                    ))));
                }
                size += v.len() as u64;
                if !out.is_empty() && size > max_size {
                    return Ok(out);
                }
                out.push(decode_entry(&v).map_err(store_err)?);
            }
            if out.len() as u64 != disk_end - low {
                return Err(store_err(Error::Corrupted(format!(
                    "group {}: log entries [{low}, {disk_end}) are missing",
                    self.group_id
                ))));
            }
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
        if idx == self.apply_state.truncated_index {
            return Ok(self.apply_state.truncated_term);
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
        let min_index = request_index.max(self.apply_state.truncated_index);
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
        let engine = Arc::new(Engine::open(dir).unwrap());
        let s = PeerStorage::open(engine.clone(), 3, &[1]).unwrap();
        (engine, s)
    }

    #[test]
    fn appended_entries_survive_reopen_and_conflicts_truncate() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (engine, mut s) = open(dir.path());
            assert_eq!(s.initial_state().unwrap().conf_state.voters, vec![1]);
            let mut wb = WriteBatch::default();
            s.append(&(1..=10).map(|i| entry(i, 1)).collect::<Vec<_>>(), &mut wb);
            s.set_hard_state(hard_state(1, 5), &mut wb);
            engine.write(wb, true).unwrap();
            // A new leader overwrites the tail from index 7 with two entries of term 2.
            let mut wb = WriteBatch::default();
            s.append(&[entry(7, 2), entry(8, 2)], &mut wb);
            engine.write(wb, true).unwrap();
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
        let mut wb = WriteBatch::default();
        s.append(&(1..=2000).map(|i| big(i, 1)).collect::<Vec<_>>(), &mut wb);
        assert_eq!(s.cache.len(), 2000, "entries not written yet stay cached");
        engine.write(wb, false).unwrap();
        s.set_persisted(2000);
        let mut wb = WriteBatch::default();
        s.append(&[big(1990, 2), big(1991, 2)], &mut wb);
        engine.write(wb, false).unwrap();
        s.set_persisted(1991);
        s.apply_state.applied_index = 1991;
        let mut wb = WriteBatch::default();
        s.compact_to(1500, &mut wb).unwrap();
        engine.write(wb, false).unwrap();
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
            let mut wb = WriteBatch::default();
            s.append(&(1..=10).map(|i| entry(i, 1)).collect::<Vec<_>>(), &mut wb);
            s.set_hard_state(hard_state(1, 4), &mut wb);
            s.set_applied(7, &mut wb);
            engine.write(wb, true).unwrap();
        }
        let (_engine, s) = open(dir.path());
        assert_eq!(s.initial_state().unwrap().hard_state.commit, 7);
        assert_eq!(s.initial_state().unwrap().hard_state.term, 1);
    }

    #[test]
    fn cached_terms_follow_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, mut s) = open(dir.path());
        let mut wb = WriteBatch::default();
        s.append(&(1..=10).map(|i| entry(i, 1)).collect::<Vec<_>>(), &mut wb);
        s.append(&[entry(6, 2), entry(7, 2)], &mut wb);
        s.append(&[entry(8, 3)], &mut wb);
        engine.write(wb, true).unwrap();
        let expect = [1, 1, 1, 1, 1, 2, 2, 3];
        for (i, t) in expect.iter().enumerate() {
            assert_eq!(s.term(i as u64 + 1).unwrap(), *t, "index {}", i + 1);
        }
        // The same answers from disk alone.
        drop(s);
        let s = PeerStorage::open(engine, 3, &[1]).unwrap();
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
            let mut wb = WriteBatch::default();
            s.append(&(1..=100).map(|i| entry(i, 1)).collect::<Vec<_>>(), &mut wb);
            s.set_hard_state(hard_state(1, 100), &mut wb);
            s.set_applied(60, &mut wb);
            engine.write(wb, true).unwrap();
            assert_eq!(s.compact_target(60, 100, u64::MAX), None, "within limits");
            // Over 40 entries: keep the newest 20, but nothing past applied (60).
            assert_eq!(s.compact_target(60, 40, u64::MAX), Some(60));
            assert_eq!(s.compact_target(100, 40, u64::MAX), Some(80));
            // By bytes: each entry is a little over 10 bytes; 200 bytes keeps ~9 of them.
            let by_bytes = s.compact_target(100, 1000, 200).unwrap();
            assert!((88..=95).contains(&by_bytes), "{by_bytes}");
            let mut wb = WriteBatch::default();
            s.compact_to(50, &mut wb).unwrap();
            engine.write(wb, false).unwrap();
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
        let engine = Arc::new(Engine::open(dir.path()).unwrap());
        let mut a = PeerStorage::open(engine.clone(), 1, &[1]).unwrap();
        let mut wb = WriteBatch::default();
        a.append(&[entry(1, 1), entry(2, 1)], &mut wb);
        a.set_hard_state(hard_state(1, 2), &mut wb);
        engine.write(wb, true).unwrap();
        let b = PeerStorage::open(engine.clone(), 2, &[1]).unwrap();
        assert_eq!(Storage::last_index(&b).unwrap(), 0);
        let a = PeerStorage::open(engine, 1, &[1]).unwrap();
        assert_eq!(Storage::last_index(&a).unwrap(), 2);
    }

    #[test]
    fn a_log_missing_committed_entries_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (engine, mut s) = open(dir.path());
            let mut wb = WriteBatch::default();
            s.append(&[entry(1, 1), entry(2, 1), entry(3, 1)], &mut wb);
            s.set_hard_state(hard_state(1, 3), &mut wb);
            engine.write(wb, true).unwrap();
            let mut wb = WriteBatch::default();
            wb.delete_cf(engine.cf(CF_RAFT), keys::log_key(3, 3));
            wb.delete_cf(engine.cf(CF_RAFT), keys::log_key(3, 2));
            engine.write(wb, true).unwrap();
        }
        let engine = Arc::new(Engine::open(dir.path()).unwrap());
        let err = PeerStorage::open(engine, 3, &[1]).err().unwrap();
        assert!(
            err.to_string()
                .contains("commit index 3 is past the last log entry 1"),
            "{err}"
        );
    }
}
