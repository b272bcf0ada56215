//! The RocksDB instance shared by the raft log and the data: one WAL, so a synced write of the
//! raft log also makes every earlier (unsynced) apply write durable.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use protobuf::Message as PbMessage;
use rocksdb::compaction_filter::Decision;
use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Options,
    WriteBatch, WriteOptions, DB,
};

use crate::error::{Error, Result};
use crate::keys::{self, ALL_CFS, CF_DATA, CF_MARK, ELEMENT_CFS, MARK_HORIZON};
use crate::snap::SnapManager;

/// Memtable size of the data and expiry column families.
const DATA_WRITE_BUFFER_BYTES: usize = 8 << 20;

/// The node's RocksDB.
pub struct Engine {
    db: Arc<DB>,
    path: PathBuf,
    snapshots: SnapManager,
    /// The highest apply index written (a hint for the mark filter; 0 until the first apply).
    applied: Arc<AtomicU64>,
}

impl Engine {
    /// Opens (creating if needed) the database under `dir`.
    pub fn open(dir: &Path) -> Result<Engine> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Storage(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let path = dir.join("db");
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_paranoid_checks(true);
        opts.increase_parallelism(2);
        // The element filters look up their collection's metadata in the same database.
        let handle: Arc<OnceLock<Weak<DB>>> = Arc::default();
        let applied: Arc<AtomicU64> = Arc::default();
        let cfs = ALL_CFS.iter().map(|name| {
            let mut cf = Options::default();
            if *name != crate::keys::CF_RAFT {
                // Data keys arrive in random order: every put searches the memtable's skiplist,
                // and a 64 MiB one (the default) is mostly cache misses. 8 MiB memtables made
                // applying SETs ~30% cheaper (`cargo bench -p rockraft-benches -- apply`); the
                // log's keys are sequential and keep the default.
                cf.set_write_buffer_size(DATA_WRITE_BUFFER_BYTES);
            }
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
        let snapshots = SnapManager::open(dir.join("snap"))?;
        Ok(Engine {
            db,
            path,
            snapshots,
            applied,
        })
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

    /// Bytes of SST files of column family `cf` on disk (RocksDB's estimate).
    pub fn cf_sst_bytes(&self, cf: &str) -> u64 {
        self.db
            .property_int_value_cf(self.cf(cf), "rocksdb.total-sst-files-size")
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// Bytes of the write-ahead log files (shared by every column family).
    pub fn wal_bytes(&self) -> u64 {
        std::fs::read_dir(&self.path)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Records that entries up to `index` are applied (written): marks more than twice
    /// [`MARK_HORIZON`] behind it may then be dropped by compactions.
    pub fn note_applied(&self, index: u64) {
        self.applied.fetch_max(index, Ordering::AcqRel);
    }

    /// Writes a batch; `sync` makes it durable (fsync of the WAL) before returning.
    pub fn write(&self, wb: WriteBatch, sync: bool) -> Result<()> {
        // A disk that fails writes (crash tests: `engine_write=return(...)`).
        fail::fail_point!("engine_write", |msg: Option<String>| Err(Error::Storage(
            format!("write: {}", msg.unwrap_or_else(|| "IO error".into()))
        )));
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db
            .write_opt(wb, &opts)
            .map_err(|e| Error::Storage(format!("write: {e}")))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
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
