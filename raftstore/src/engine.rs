//! The RocksDB instance shared by the raft log and the data: one WAL, so a synced write of the
//! raft log also makes every earlier (unsynced) apply write durable.

use std::path::{Path, PathBuf};

use protobuf::Message as PbMessage;
use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Options,
    WriteBatch, WriteOptions, DB,
};

use crate::error::{Error, Result};
use crate::keys::ALL_CFS;
use crate::snap::SnapManager;

/// Memtable size of the data and expiry column families.
const DATA_WRITE_BUFFER_BYTES: usize = 8 << 20;

/// The node's RocksDB.
pub struct Engine {
    db: DB,
    path: PathBuf,
    snapshots: SnapManager,
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
            ColumnFamilyDescriptor::new(*name, cf)
        });
        let db = DB::open_cf_descriptors(&opts, &path, cfs).map_err(|e| {
            Error::Storage(format!("cannot open RocksDB at {}: {e}", path.display()))
        })?;
        let snapshots = SnapManager::open(dir.join("snap"))?;
        Ok(Engine {
            db,
            path,
            snapshots,
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

/// Encodes a protobuf message; encoding an in-memory message cannot fail.
pub fn encode_msg<M: PbMessage>(m: &M) -> Vec<u8> {
    m.write_to_bytes().expect("encode protobuf message")
}
