//! A node's two stores: RocksDB for the applied data, raft-engine for the raft logs.
//!
//! - **raft-engine** (`<data dir>/raft`) holds every group's log entries and hard state. The
//!   store writer (`store_writer.rs`) writes them synced, in one batch for all groups.
//! - **RocksDB** (`<data dir>/db`) holds the data, and next to it each group's apply state,
//!   conf state and member addresses. It is written without a WAL: an apply round's writes and
//!   its apply index go in one batch, and all column families are flushed together
//!   (`atomic_flush`), so what is on disk after a crash is exactly the state at some apply
//!   index `k`; the group re-applies its log from `k + 1`. Every value thus crosses one log
//!   (raft-engine's), not two. A write that must be durable at once (identity, a snapshot
//!   install, joining a cluster) is followed by a flush ([`Engine::write`] with `durable`).
//!   The raft log is compacted only up to an apply index known to be flushed
//!   ([`Engine::request_flush`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use protobuf::Message as PbMessage;
use raft::eraftpb::Entry;
use raft_engine::{LogBatch, ReadableSize};
use rocksdb::compaction_filter::Decision;
use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, FlushOptions,
    Options, WriteBatch, WriteOptions, DB,
};

use crate::error::{Error, Result};
use crate::keys::{self, ALL_CFS, CF_DATA, CF_MARK, ELEMENT_CFS, MARK_HORIZON};
use crate::snap::SnapManager;
use crate::store_writer::{GroupWriter, StoreWriter};

/// Memtable size of the data and expiry column families.
const DATA_WRITE_BUFFER_BYTES: usize = 8 << 20;
/// raft-engine's log files: small, so that compacted logs free their disk soon on a small
/// machine (raft-engine's default is 128 MiB files and a 10 GiB purge threshold).
const RAFT_LOG_FILE_BYTES: u64 = 16 << 20;
const RAFT_LOG_PURGE_THRESHOLD_BYTES: u64 = 256 << 20;
/// How often the flusher thread lets raft-engine delete log files nothing refers to.
const PURGE_INTERVAL: Duration = Duration::from_secs(10);

/// raft-engine's view of raft-rs's log entries.
#[derive(Clone, Copy)]
pub struct EntryExt;

impl raft_engine::MessageExt for EntryExt {
    type Entry = Entry;

    fn index(e: &Entry) -> u64 {
        e.index
    }
}

/// The raft log engine.
pub type RaftLog = raft_engine::Engine;

/// Called once a flush requested with [`Engine::request_flush`] is done.
type FlushCallback = Box<dyn FnOnce() + Send>;

/// The node's stores.
pub struct Engine {
    db: Arc<DB>,
    raft: Arc<RaftLog>,
    path: PathBuf,
    snapshots: SnapManager,
    /// The highest apply index written (a hint for the mark filter; 0 until the first apply).
    applied: Arc<AtomicU64>,
    /// The flusher thread and its queue (flushes requested to make apply writes durable).
    flusher: Mutex<Option<(Sender<FlushCallback>, JoinHandle<()>)>>,
    /// The one writer of every group's raft log.
    writer: OnceLock<StoreWriter>,
}

impl Engine {
    /// Opens (creating if needed) both stores under `dir`, upgrading a directory written by a
    /// release that kept the raft log in RocksDB (see `upgrade.rs`).
    pub fn open(dir: &Path) -> Result<Arc<Engine>> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Storage(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let path = dir.join("db");
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_paranoid_checks(true);
        opts.increase_parallelism(2);
        // Writes carry no WAL: every family flushes together, so the files on disk always
        // hold one apply index's state (the apply state is in the `raft` family).
        opts.set_atomic_flush(true);
        // The element filters look up their collection's metadata in the same database.
        let handle: Arc<OnceLock<Weak<DB>>> = Arc::default();
        let applied: Arc<AtomicU64> = Arc::default();
        let cfs = ALL_CFS.iter().map(|name| {
            let mut cf = Options::default();
            // Data keys arrive in random order: every put searches the memtable's skiplist,
            // and a 64 MiB one (the default) is mostly cache misses. 8 MiB memtables made
            // applying SETs ~30% cheaper (`cargo bench -p rockraft-benches -- apply`).
            cf.set_write_buffer_size(DATA_WRITE_BUFFER_BYTES);
            cf.set_compression_type(DBCompressionType::Lz4);
            let mut table = BlockBasedOptions::default();
            table.set_bloom_filter(10.0, false);
            cf.set_block_based_table_factory(&table);
            if ELEMENT_CFS.contains(name) {
                let handle = handle.clone();
                cf.set_compaction_filter("rockraft-stale-elements", move |_, key, _| {
                    stale_element_decision(&handle, key)
                });
            }
            if *name == CF_MARK {
                let applied = applied.clone();
                cf.set_compaction_filter("rockraft-old-marks", move |_, _, value| {
                    old_mark_decision(applied.load(Ordering::Acquire), value)
                });
            }
            ColumnFamilyDescriptor::new(*name, cf)
        });
        let db = Arc::new(DB::open_cf_descriptors(&opts, &path, cfs).map_err(|e| {
            Error::Storage(format!("cannot open RocksDB at {}: {e}", path.display()))
        })?);
        let _ = handle.set(Arc::downgrade(&db));
        let raft = Arc::new(open_raft_log(&dir.join("raft"))?);
        let snapshots = SnapManager::open(dir.join("snap"))?;
        let engine = Arc::new(Engine {
            db,
            raft,
            path,
            snapshots,
            applied,
            flusher: Mutex::new(None),
            writer: OnceLock::new(),
        });
        crate::upgrade::upgrade(&engine)?;
        engine.start_flusher()?;
        let writer = StoreWriter::start(Arc::downgrade(&engine))?;
        let _ = engine.writer.set(writer);
        Ok(engine)
    }

    /// The node's snapshots (in `<data dir>/snap`).
    pub fn snapshots(&self) -> &SnapManager {
        &self.snapshots
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying RocksDB, for reads.
    pub fn db(&self) -> &DB {
        &self.db
    }

    /// A handle on the node's raft log writer for group `group_id` (see `store_writer.rs`).
    pub fn group_writer(
        self: &Arc<Self>,
        group_id: u64,
        notify: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<GroupWriter> {
        self.writer
            .get()
            .ok_or(Error::Stopped)?
            .group(self.clone(), group_id, notify)
    }

    /// The raft log engine.
    pub fn raft_log(&self) -> &RaftLog {
        &self.raft
    }

    /// A column family by name; the set of families is fixed at open.
    pub fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .unwrap_or_else(|| panic!("column family {name} was created at open"))
    }

    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db
            .get_cf(self.cf(cf), key)
            .map_err(|e| Error::Storage(format!("read {cf}: {e}")))
    }

    pub fn get_msg<M: PbMessage>(&self, cf: &str, key: &[u8]) -> Result<Option<M>> {
        match self.get(cf, key)? {
            None => Ok(None),
            Some(v) => M::parse_from_bytes(&v)
                .map(Some)
                .map_err(|e| Error::Corrupted(format!("{cf} key {key:?}: {e}"))),
        }
    }

    /// A message of group `group_id` in raft-engine.
    pub fn get_log_msg<M: PbMessage>(&self, group_id: u64, key: &[u8]) -> Result<Option<M>> {
        self.raft
            .get_message(group_id, key)
            .map_err(|e| Error::Corrupted(format!("raft log of group {group_id}: {e}")))
    }

    /// Bytes of SST files of column family `cf` on disk (RocksDB's estimate).
    pub fn cf_sst_bytes(&self, cf: &str) -> u64 {
        self.db
            .property_int_value_cf(self.cf(cf), "rocksdb.total-sst-files-size")
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// Bytes of raft-engine's log files (every group's log, until purged).
    pub fn raft_log_bytes(&self) -> u64 {
        self.raft.get_used_size() as u64
    }

    /// Records that entries up to `index` are applied (written): marks more than twice
    /// [`MARK_HORIZON`] behind it may then be dropped by compactions.
    pub fn note_applied(&self, index: u64) {
        self.applied.fetch_max(index, Ordering::AcqRel);
    }

    /// Writes a batch to RocksDB (without a WAL). Unless `durable`, it reaches the disk with
    /// a later flush (the raft log can redo it); `durable` flushes every family before
    /// returning.
    pub fn write(&self, wb: WriteBatch, durable: bool) -> Result<()> {
        // A disk that fails writes (crash tests: `engine_write=return(...)`).
        fail::fail_point!("engine_write", |msg: Option<String>| Err(Error::Storage(
            format!("write: {}", msg.unwrap_or_else(|| "IO error".into()))
        )));
        let mut opts = WriteOptions::default();
        opts.disable_wal(true);
        self.db
            .write_opt(wb, &opts)
            .map_err(|e| Error::Storage(format!("write: {e}")))?;
        if durable {
            self.flush()?;
        }
        Ok(())
    }

    /// Flushes every column family, atomically: everything written before is on disk after.
    pub fn flush(&self) -> Result<()> {
        flush_all(&self.db)
    }

    /// Writes a raft-engine batch; `sync` makes it durable (fdatasync) before returning.
    /// (raft-engine's own `sync()` does nothing: the sync must go with a write.)
    pub fn write_log(&self, batch: &mut LogBatch, sync: bool) -> Result<()> {
        fail::fail_point!("engine_write", |msg: Option<String>| Err(Error::Storage(
            format!("write: {}", msg.unwrap_or_else(|| "IO error".into()))
        )));
        self.raft
            .write(batch, sync)
            .map(|_| ())
            .map_err(|e| Error::Storage(format!("raft log write: {e}")))
    }

    /// Asks the flusher thread for a flush of every family; `done` is called once it is done
    /// (so everything written before this call is then on disk). Requests that wait together
    /// share one flush.
    pub fn request_flush(&self, done: impl FnOnce() + Send + 'static) {
        let sent = self
            .flusher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|(tx, _)| tx.send(Box::new(done)).is_ok());
        if !sent {
            tracing::warn!("flusher stopped; a flush request is dropped");
        }
    }

    /// Starts the flusher thread. It holds the stores only while it works on them, and the
    /// engine's drop joins it, so the directory is released when the engine is gone.
    fn start_flusher(&self) -> Result<()> {
        let (tx, rx) = mpsc::channel::<FlushCallback>();
        let (db, raft) = (Arc::downgrade(&self.db), Arc::downgrade(&self.raft));
        let thread = std::thread::Builder::new()
            .name("store-flush".into())
            .spawn(move || {
                let mut last_purge = Instant::now();
                loop {
                    let first = match rx.recv_timeout(PURGE_INTERVAL) {
                        Ok(cb) => Some(cb),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => return,
                    };
                    if let Some(first) = first {
                        let mut done = vec![first];
                        done.extend(rx.try_iter());
                        let started = Instant::now();
                        let Some(db) = db.upgrade() else {
                            return;
                        };
                        if let Err(e) = flush_all(&db) {
                            panic!("flush of the applied data failed: {e}");
                        }
                        drop(db);
                        metrics::histogram!("rockraft_flush_seconds")
                            .record(started.elapsed().as_secs_f64());
                        for cb in done {
                            cb();
                        }
                    }
                    if last_purge.elapsed() >= PURGE_INTERVAL {
                        last_purge = Instant::now();
                        let Some(raft) = raft.upgrade() else {
                            return;
                        };
                        match raft.purge_expired_files() {
                            Ok(behind) if !behind.is_empty() => tracing::debug!(
                                ?behind,
                                "raft log files held by groups that have not compacted"
                            ),
                            Ok(_) => {}
                            Err(e) => tracing::warn!("raft log purge: {e}"),
                        }
                    }
                }
            })
            .map_err(|e| Error::Storage(format!("spawn the flusher: {e}")))?;
        *self.flusher.lock().unwrap_or_else(|e| e.into_inner()) = Some((tx, thread));
        Ok(())
    }
}

/// Flushes every column family of `db`, atomically.
fn flush_all(db: &DB) -> Result<()> {
    fail::fail_point!("flush_before");
    let cfs: Vec<&ColumnFamily> = ALL_CFS
        .iter()
        .map(|name| {
            db.cf_handle(name)
                .unwrap_or_else(|| panic!("column family {name} was created at open"))
        })
        .collect();
    let mut opts = FlushOptions::default();
    opts.set_wait(true);
    db.flush_cfs_opt(&cfs, &opts)
        .map_err(|e| Error::Storage(format!("flush: {e}")))?;
    fail::fail_point!("flush_after");
    Ok(())
}

fn open_raft_log(dir: &Path) -> Result<RaftLog> {
    let cfg = raft_engine::Config {
        dir: dir.to_string_lossy().into_owned(),
        target_file_size: ReadableSize(RAFT_LOG_FILE_BYTES),
        purge_threshold: ReadableSize(RAFT_LOG_PURGE_THRESHOLD_BYTES),
        ..Default::default()
    };
    raft_engine::Engine::open(cfg).map_err(|e| {
        Error::Storage(format!(
            "cannot open the raft log at {}: {e}",
            dir.display()
        ))
    })
}

impl Drop for Engine {
    fn drop(&mut self) {
        let flusher = self
            .flusher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((tx, thread)) = flusher {
            // Its queue closed, it ends after the flush under way, if any.
            drop(tx);
            let _ = thread.join();
        }
        if let Some(w) = self.writer.get() {
            w.stop();
        }
        // A compaction filter may hold the database for the length of one call; wait for
        // background work to end so the last reference is always this one.
        self.db.cancel_all_background_work(true);
    }
}

/// Whether a compaction may drop an element (or score-index entry): only once its collection
/// is gone, or holds another version (deleted, overwritten or expired and deleted since).
/// Deterministic data is unaffected: reads only ever look at the current version, and the
/// digest covers only what is reachable.
fn stale_element_decision(handle: &OnceLock<Weak<DB>>, key: &[u8]) -> Decision {
    let Some(db) = handle.get().and_then(Weak::upgrade) else {
        return Decision::Keep;
    };
    let (Some((_, version, _)), Some(owner)) =
        (keys::parse_element_key(key), keys::element_owner(key))
    else {
        return Decision::Keep;
    };
    let Some(cf) = db.cf_handle(CF_DATA) else {
        return Decision::Keep;
    };
    let decision = match db.get_pinned_cf(cf, &owner) {
        Ok(None) => Decision::Remove,
        Ok(Some(v)) if keys::collection_version(&v) != Some(version) => Decision::Remove,
        // The element is live, or the lookup failed: keep it.
        _ => Decision::Keep,
    };
    decision
}

/// Whether a compaction may drop a modification mark: once it is more than twice
/// [`MARK_HORIZON`] entries behind the applied index, no transaction still to be applied can
/// be decided by it (see `keys::MARK_HORIZON`).
fn old_mark_decision(applied: u64, value: &[u8]) -> Decision {
    let Some(mark) = value.try_into().ok().map(u64::from_be_bytes) else {
        return Decision::Keep;
    };
    if mark.saturating_add(2 * MARK_HORIZON) < applied {
        Decision::Remove
    } else {
        Decision::Keep
    }
}

/// Encodes a protobuf message; encoding an in-memory message cannot fail.
pub fn encode_msg<M: PbMessage>(m: &M) -> Vec<u8> {
    m.write_to_bytes().expect("encode protobuf message")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{CF_ELEMENT, CF_SCORE};

    fn metadata(version: u64) -> Vec<u8> {
        let mut v = vec![2u8];
        v.extend_from_slice(&0u64.to_be_bytes());
        v.extend_from_slice(&version.to_be_bytes());
        v.extend_from_slice(&1u64.to_be_bytes());
        v
    }

    fn count(engine: &Engine, cf: &str) -> usize {
        engine
            .db()
            .iterator_cf(engine.cf(cf), rocksdb::IteratorMode::Start)
            .count()
    }

    #[test]
    fn compaction_drops_only_marks_two_horizons_behind_the_applied_index() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let now = 5 * MARK_HORIZON;
        let mut wb = WriteBatch::default();
        for (key, mark) in [
            (&b"old"[..], now - 2 * MARK_HORIZON - 1),
            (b"edge", now - 2 * MARK_HORIZON),
            (b"recent", now - 1),
        ] {
            wb.put_cf(engine.cf(CF_MARK), keys::data_key(key), mark.to_be_bytes());
        }
        engine.write(wb, false).unwrap();
        engine.db().flush_cf(engine.cf(CF_MARK)).unwrap();
        // Before any apply is noted, nothing is old.
        engine
            .db()
            .compact_range_cf(engine.cf(CF_MARK), None::<&[u8]>, None::<&[u8]>);
        assert_eq!(count(&engine, CF_MARK), 3);
        engine.note_applied(now);
        engine
            .db()
            .compact_range_cf(engine.cf(CF_MARK), None::<&[u8]>, None::<&[u8]>);
        let left: std::collections::BTreeSet<Vec<u8>> = engine
            .db()
            .iterator_cf(engine.cf(CF_MARK), rocksdb::IteratorMode::Start)
            .map(|kv| keys::user_key(&kv.unwrap().0).to_vec())
            .collect();
        assert_eq!(left, [b"edge".to_vec(), b"recent".to_vec()].into());
    }

    #[test]
    fn compaction_drops_elements_of_collections_that_are_gone_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut wb = WriteBatch::default();
        // live: version 5; replaced: metadata now version 9; deleted: no metadata; string.
        wb.put_cf(engine.cf(CF_DATA), keys::data_key(b"live"), metadata(5));
        wb.put_cf(engine.cf(CF_DATA), keys::data_key(b"replaced"), metadata(9));
        wb.put_cf(engine.cf(CF_DATA), keys::data_key(b"str"), [0u8; 9]);
        for (key, version) in [
            (&b"live"[..], 5),
            (b"replaced", 5),
            (b"deleted", 5),
            (b"str", 5),
        ] {
            for f in [&b"f1"[..], b"f2"] {
                wb.put_cf(
                    engine.cf(CF_ELEMENT),
                    keys::element_key(key, version, f),
                    b"v",
                );
                wb.put_cf(
                    engine.cf(CF_SCORE),
                    keys::score_key(key, version, 1.0, f),
                    b"",
                );
            }
        }
        engine.write(wb, false).unwrap();
        for cf in [CF_DATA, CF_ELEMENT, CF_SCORE] {
            engine.db().flush_cf(engine.cf(cf)).unwrap();
        }
        assert_eq!(count(&engine, CF_ELEMENT), 8);
        for cf in [CF_ELEMENT, CF_SCORE] {
            engine
                .db()
                .compact_range_cf(engine.cf(cf), None::<&[u8]>, None::<&[u8]>);
        }
        for cf in [CF_ELEMENT, CF_SCORE] {
            let left: Vec<Vec<u8>> = engine
                .db()
                .iterator_cf(engine.cf(cf), rocksdb::IteratorMode::Start)
                .map(|kv| kv.unwrap().0.to_vec())
                .collect();
            assert_eq!(left.len(), 2, "{cf}");
            for k in left {
                assert_eq!(keys::parse_element_key(&k).unwrap().0, b"live");
            }
        }
    }
}
