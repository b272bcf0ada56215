//! Raft snapshots: how a node far behind the leader's compacted log gets the data.
//!
//! - **Generate** (leader, background thread): a RocksDB checkpoint of the whole store (hard
//!   links; memtables flushed first). The checkpoint is self-describing: its own apply state
//!   says which index (and term) its data is at, and its conf state and member addresses are
//!   those of that same index, because apply writes them all in one batch. The raft thread never
//!   waits for it: raft is told "temporarily unavailable" and asks again.
//! - **Send** (leader, a task per follower): the raft message goes first on a connection of its
//!   own, then the data and expiry column families as [`SnapshotChunk`]s of about 1 MiB, read
//!   from the checkpoint by a blocking thread through a small bounded queue. TCP flow control
//!   and the queue bound the memory used, whatever the size of the data. The receiver answers
//!   one byte once everything is on disk, and the leader's raft is told the outcome.
//! - **Receive** (follower): chunks are written into one SST file per column family
//!   (`SstFileWriter`, again through a bounded queue) in `snap/recv-…`. Only when the last
//!   chunk has arrived and the totals match is the raft message handed to the group, its data
//!   now naming the directory.
//! - **Install** (follower raft thread, see `group.rs`): one flushed RocksDB batch clears the
//!   old data, moves the apply and conf states to the snapshot and records an "applying"
//!   marker; then the raft log is restarted after the snapshot (synced); then the files are
//!   ingested; then the marker is removed. A restart that finds the marker redoes the log
//!   restart, the clear and the ingest from the same files, so old and new data are never
//!   mixed.
//!   A half-received directory (no marker names it) is deleted at start.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use protobuf::Message as PbMessage;
use raft::eraftpb::{ConfState, Snapshot, SnapshotMetadata};
use rocksdb::checkpoint::Checkpoint;
use rocksdb::{
    DBCompressionType, IngestExternalFileOptions, IteratorMode, Options, SstFileWriter, DB,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::keys::{self, CF_RAFT};
use crate::proto::{ApplyState, NodeInfo, SnapshotChunk, SnapshotData};

/// The column families a snapshot carries (the raft state is rebuilt from its metadata).
pub const SNAPSHOT_CFS: [&str; keys::DATA_CFS.len()] = keys::DATA_CFS;
/// Key and value bytes per chunk.
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks buffered between the disk thread and the network task, on either side.
const QUEUE_CHUNKS: usize = 4;
/// Longest a stalled snapshot transfer is waited for.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A snapshot generated on this node: a checkpoint directory, open read-only.
pub struct Generated {
    pub id: u64,
    pub group_id: u64,
    pub meta: SnapshotMetadata,
    pub nodes: Vec<NodeInfo>,
    pub created: Instant,
    db: Option<DB>,
    dir: PathBuf,
}

impl Generated {
    fn db(&self) -> &DB {
        self.db.as_ref().expect("open until dropped")
    }
}

impl Drop for Generated {
    fn drop(&mut self) {
        drop(self.db.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Default)]
struct State {
    /// Groups with a generation running.
    generating: HashMap<u64, Instant>,
    /// The newest snapshot of each group (a sender may still hold older ones).
    latest: HashMap<u64, Arc<Generated>>,
}

/// The node's snapshot directory and the snapshots generated in it.
pub struct SnapManager {
    dir: PathBuf,
    next_id: AtomicU64,
    state: Mutex<State>,
}

impl SnapManager {
    /// Uses `dir`, deleting every generated snapshot left there by an earlier run (received
    /// ones are judged by each group when it opens, see [`SnapManager::clean_received`]).
    pub fn open(dir: PathBuf) -> Result<SnapManager> {
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::Storage(format!("cannot create snapshot dir {}: {e}", dir.display()))
        })?;
        for entry in list(&dir)? {
            if file_name(&entry).starts_with("gen-") {
                remove_dir(&entry);
            }
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Ok(SnapManager {
            dir,
            next_id: AtomicU64::new(seed),
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest generated snapshot of `group_id` at `min_index` or later, if there is one;
    /// otherwise starts generating one (unless that is under way) and returns `None`.
    pub fn get_or_generate(
        &self,
        engine: &Arc<Engine>,
        group_id: u64,
        min_index: u64,
    ) -> Option<Arc<Generated>> {
        let mut st = self.state();
        if let Some(g) = st.latest.get(&group_id) {
            if g.meta.index >= min_index {
                return Some(g.clone());
            }
        }
        if st.generating.contains_key(&group_id) {
            return None;
        }
        st.generating.insert(group_id, Instant::now());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let dir = self.dir.join(format!("gen-{group_id}-{id}"));
        let engine = engine.clone();
        let spawned = std::thread::Builder::new()
            .name("snap-generate".into())
            .spawn(move || {
                let started = Instant::now();
                let result = generate(&engine, group_id, id, dir);
                let mgr = engine.snapshots();
                let mut st = mgr.state();
                st.generating.remove(&group_id);
                match result {
                    Ok(g) => {
                        tracing::info!(
                            group = group_id,
                            index = g.meta.index,
                            term = g.meta.term,
                            took_ms = started.elapsed().as_millis() as u64,
                            "snapshot generated"
                        );
                        metrics::counter!("rockraft_snapshots_generated_total").increment(1);
                        st.latest.insert(group_id, Arc::new(g));
                    }
                    Err(e) => tracing::error!(group = group_id, "snapshot generation failed: {e}"),
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot spawn snapshot generation: {e}");
            st.generating.remove(&group_id);
        }
        None
    }

    /// Drops generated snapshots older than `max_age` that no transfer is using: a checkpoint
    /// pins the SST files it links to, so keeping it would keep their disk space.
    pub fn gc(&self, max_age: Duration) {
        let mut st = self.state();
        st.latest
            .retain(|_, g| Arc::strong_count(g) > 1 || g.created.elapsed() < max_age);
    }

    /// A generated snapshot by id, while it is the newest of its group.
    pub fn generated(&self, id: u64) -> Option<Arc<Generated>> {
        self.state().latest.values().find(|g| g.id == id).cloned()
    }

    /// Deletes the received snapshots of `group_id` except `keep`: called when a group opens
    /// (a half-received snapshot is never used) and after an install.
    pub fn clean_received(&self, group_id: u64, keep: Option<&Path>) -> Result<()> {
        let prefix = format!("recv-{group_id}-");
        for entry in list(&self.dir)? {
            if file_name(&entry).starts_with(&prefix) && Some(entry.as_path()) != keep {
                tracing::info!(dir = %entry.display(), "discarding a received snapshot");
                remove_dir(&entry);
            }
        }
        Ok(())
    }

    fn new_receive_dir(&self, group_id: u64, index: u64) -> PathBuf {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("recv-{group_id}-{index}-{id}"))
    }

    /// Whether `dir` is a receive directory of this manager (a snapshot message naming any
    /// other path is refused).
    pub fn is_received_dir(&self, dir: &Path) -> bool {
        dir.parent() == Some(self.dir.as_path())
            && file_name(dir).starts_with("recv-")
            && dir.is_dir()
    }
}

fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::Storage(format!("cannot list {}: {e}", dir.display())))?;
    Ok(rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn remove_dir(p: &Path) {
    if let Err(e) = std::fs::remove_dir_all(p) {
        tracing::warn!(dir = %p.display(), "cannot remove snapshot dir: {e}");
    }
}

fn storage_err(what: &str) -> impl Fn(rocksdb::Error) -> Error + '_ {
    move |e| Error::Storage(format!("{what}: {e}"))
}

/// Makes a checkpoint and reads, from the checkpoint itself, the index its data is at.
fn generate(engine: &Engine, group_id: u64, id: u64, dir: PathBuf) -> Result<Generated> {
    fail::fail_point!("snapshot_generate");
    let (db, meta, nodes) = checkpoint(engine, group_id, &dir)?;
    Ok(Generated {
        id,
        group_id,
        meta,
        nodes,
        created: Instant::now(),
        db: Some(db),
        dir,
    })
}

/// A consistent copy of the whole store in `dir` (a RocksDB checkpoint: hard links where the
/// file system allows), also used as a backup. Returns it opened read-only, with the raft
/// position its data is at and the member addresses of that position.
pub fn checkpoint(
    engine: &Engine,
    group_id: u64,
    dir: &Path,
) -> Result<(DB, SnapshotMetadata, Vec<NodeInfo>)> {
    // The data is written without a WAL: what is not flushed would not be in the copy (the
    // checkpoint flushes too, but the copy must not depend on its settings).
    engine.flush()?;
    Checkpoint::new(engine.db())
        .and_then(|cp| cp.create_checkpoint(dir))
        .map_err(storage_err("checkpoint"))?;
    let db = DB::open_cf_for_read_only(&Options::default(), dir, keys::ALL_CFS, false)
        .map_err(storage_err("open checkpoint"))?;
    let cf = db.cf_handle(CF_RAFT).expect("raft column family");
    let get = |key: &[u8]| db.get_cf(cf, key).map_err(storage_err("read checkpoint"));
    let parse_err = |e: protobuf::ProtobufError| Error::Corrupted(format!("checkpoint: {e}"));
    let apply: ApplyState = match get(&keys::apply_state_key(group_id))? {
        Some(v) => ApplyState::parse_from_bytes(&v).map_err(parse_err)?,
        None => ApplyState::default(),
    };
    let index = apply.applied_index;
    if index == 0 {
        return Err(Error::Storage("nothing applied yet to snapshot".into()));
    }
    let term = apply.applied_term;
    if term == 0 {
        return Err(Error::Corrupted(format!(
            "checkpoint: no term recorded for applied index {index}"
        )));
    }
    let conf_state: ConfState = match get(&keys::conf_state_key(group_id))? {
        Some(v) => ConfState::parse_from_bytes(&v).map_err(parse_err)?,
        None => return Err(Error::Corrupted("checkpoint lacks a conf state".into())),
    };
    let (start, end) = keys::node_addr_range(group_id);
    let mut nodes = Vec::new();
    for item in db.iterator_cf(cf, IteratorMode::From(&start, rocksdb::Direction::Forward)) {
        let (k, v) = item.map_err(storage_err("read checkpoint"))?;
        if k.as_ref() >= &end[..] {
            break;
        }
        nodes.push(NodeInfo::parse_from_bytes(&v).map_err(parse_err)?);
    }
    let mut meta = SnapshotMetadata {
        index,
        term,
        ..Default::default()
    };
    meta.set_conf_state(conf_state);
    Ok((db, meta, nodes))
}

/// The raft snapshot describing `g` (metadata, and data naming it).
pub fn raft_snapshot(g: &Generated) -> Snapshot {
    let data = SnapshotData {
        id: g.id,
        nodes: protobuf::RepeatedField::from_vec(g.nodes.clone()),
        ..Default::default()
    };
    let mut s = Snapshot::default();
    s.set_metadata(g.meta.clone());
    s.data = crate::engine::encode_msg(&data).into();
    s
}

fn frame(body: &[u8]) -> Bytes {
    let mut f = BytesMut::with_capacity(4 + body.len());
    f.put_u32(body.len() as u32);
    f.put_slice(body);
    f.freeze()
}

/// Reads `g`'s column families into framed chunks (on a blocking thread).
fn produce_chunks(g: Arc<Generated>, tx: mpsc::Sender<Bytes>) -> Result<()> {
    let db = g.db();
    let mut total = 0u64;
    for cf_name in SNAPSHOT_CFS {
        let cf = db.cf_handle(cf_name).expect("snapshot column family");
        let mut chunk = SnapshotChunk {
            cf: cf_name.into(),
            ..Default::default()
        };
        let mut bytes = 0;
        for item in db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item.map_err(storage_err("read snapshot"))?;
            bytes += k.len() + v.len();
            chunk.keys.push(k.into_vec());
            chunk.values.push(v.into_vec());
            total += 1;
            if bytes >= CHUNK_BYTES {
                let next = SnapshotChunk {
                    cf: cf_name.into(),
                    ..Default::default()
                };
                let full = std::mem::replace(&mut chunk, next);
                bytes = 0;
                if tx
                    .blocking_send(frame(&crate::engine::encode_msg(&full)))
                    .is_err()
                {
                    return Err(Error::Stopped);
                }
                fail::fail_point!("snapshot_send");
            }
        }
        if !chunk.keys.is_empty()
            && tx
                .blocking_send(frame(&crate::engine::encode_msg(&chunk)))
                .is_err()
        {
            return Err(Error::Stopped);
        }
    }
    let last = SnapshotChunk {
        done: true,
        total_keys: total,
        ..Default::default()
    };
    tx.blocking_send(frame(&crate::engine::encode_msg(&last)))
        .map_err(|_| Error::Stopped)
}

/// Streams snapshot `g` after `header` (the framed raft message) and waits for the receiver's
/// acknowledgement.
pub async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    g: Arc<Generated>,
    header: Bytes,
    stream: &mut S,
) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel(QUEUE_CHUNKS);
    let producer = tokio::task::spawn_blocking(move || produce_chunks(g, tx));
    timed(stream.write_all(&header)).await?;
    while let Some(f) = rx.recv().await {
        timed(stream.write_all(&f)).await?;
    }
    match producer.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(io::Error::other(e.to_string())),
        Err(e) => return Err(io::Error::other(e.to_string())),
    }
    timed(stream.flush()).await?;
    // The receiver answers once its files are complete and synced.
    let ack = tokio::time::timeout(Duration::from_secs(120), stream.read_u8())
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no snapshot acknowledgement"))??;
    if ack != 1 {
        return Err(io::Error::other("receiver refused the snapshot"));
    }
    Ok(())
}

async fn timed<T>(f: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(IO_TIMEOUT, f)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "snapshot transfer stalled"))?
}

/// Writes received chunks into one SST file per column family (on a blocking thread).
fn consume_chunks(dir: &Path, mut rx: mpsc::Receiver<SnapshotChunk>) -> Result<u64> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Storage(format!("create {}: {e}", dir.display())))?;
    let mut opts = Options::default();
    opts.set_compression_type(DBCompressionType::Lz4);
    let mut writer: Option<(String, SstFileWriter)> = None;
    let mut total = 0u64;
    let mut first = true;
    while let Some(chunk) = rx.blocking_recv() {
        if chunk.done {
            if let Some((_, mut w)) = writer.take() {
                w.finish().map_err(storage_err("finish snapshot file"))?;
            }
            if chunk.total_keys != total {
                return Err(Error::Corrupted(format!(
                    "snapshot stream ended with {total} keys, sender counted {}",
                    chunk.total_keys
                )));
            }
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::Storage(format!("sync {}: {e}", dir.display())))?;
            return Ok(total);
        }
        if !SNAPSHOT_CFS.contains(&chunk.cf.as_str()) || chunk.keys.len() != chunk.values.len() {
            return Err(Error::Corrupted(format!(
                "bad snapshot chunk for column family {:?}",
                chunk.cf
            )));
        }
        if writer.as_ref().is_none_or(|(cf, _)| *cf != chunk.cf) {
            if let Some((_, mut w)) = writer.take() {
                w.finish().map_err(storage_err("finish snapshot file"))?;
            }
            let path = dir.join(format!("{}.sst", chunk.cf));
            if path.exists() {
                return Err(Error::Corrupted(format!(
                    "snapshot column family {} sent twice",
                    chunk.cf
                )));
            }
            let w = SstFileWriter::create(&opts);
            w.open(&path).map_err(storage_err("create snapshot file"))?;
            writer = Some((chunk.cf.clone(), w));
        }
        let (_, w) = writer.as_mut().expect("opened above");
        for (k, v) in chunk.keys.iter().zip(chunk.values.iter()) {
            w.put(k, v).map_err(storage_err("write snapshot file"))?;
        }
        total += chunk.keys.len() as u64;
        if first {
            first = false;
            fail::fail_point!("snapshot_receive");
        }
    }
    Err(Error::Storage("snapshot stream ended early".into()))
}

/// Receives the chunks following a snapshot message for `group_id` at `index` into a new
/// directory; returns the directory and the number of keys once every chunk is on disk. On
/// any failure the directory is removed.
pub async fn receive<R: AsyncRead + Unpin>(
    mgr: &SnapManager,
    group_id: u64,
    index: u64,
    reader: &mut R,
) -> Result<(PathBuf, u64)> {
    let dir = mgr.new_receive_dir(group_id, index);
    let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
    let writer_dir = dir.clone();
    let writer = tokio::task::spawn_blocking(move || consume_chunks(&writer_dir, rx));
    let read = async {
        loop {
            let len = timed(reader.read_u32()).await? as usize;
            if len > 256 << 20 {
                return Err(io::Error::other("snapshot chunk too large"));
            }
            let mut body = vec![0u8; len];
            timed(reader.read_exact(&mut body)).await?;
            let chunk = SnapshotChunk::parse_from_bytes(&body)
                .map_err(|e| io::Error::other(format!("undecodable snapshot chunk: {e}")))?;
            let done = chunk.done;
            if tx.send(chunk).await.is_err() || done {
                return Ok(());
            }
        }
    };
    let read_result = read.await;
    drop(tx);
    let written = writer
        .await
        .map_err(|e| Error::Storage(format!("snapshot writer: {e}")))?;
    let result = match (read_result, written) {
        (_, Ok(keys)) => Ok((dir.clone(), keys)),
        (Err(e), Err(_)) => Err(Error::Storage(format!("snapshot receive: {e}"))),
        (Ok(()), Err(e)) => Err(e),
    };
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// Ingests the files of a received snapshot. The source files stay (ingest takes hard links),
/// so an install interrupted by a crash can be redone from them.
pub fn ingest(engine: &Engine, dir: &Path) -> Result<()> {
    for cf in SNAPSHOT_CFS {
        let file = dir.join(format!("{cf}.sst"));
        if !file.exists() {
            continue;
        }
        let link = dir.join(format!("{cf}.ingest.sst"));
        let _ = std::fs::remove_file(&link);
        std::fs::hard_link(&file, &link)
            .map_err(|e| Error::Storage(format!("link {}: {e}", file.display())))?;
        let mut opts = IngestExternalFileOptions::default();
        opts.set_move_files(true);
        engine
            .db()
            .ingest_external_file_cf_opts(engine.cf(cf), &opts, vec![&link])
            .map_err(storage_err("ingest snapshot"))?;
    }
    Ok(())
}
