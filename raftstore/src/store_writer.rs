//! The store writer: one thread per node that makes the raft logs of every group on it
//! durable, while each group's raft thread goes on (raft-rs's `advance_append_async` /
//! `on_persist_ready`).
//!
//! A group hands over each `Ready`'s batch (new entries and hard state, a raft-engine
//! `LogBatch`) with the `Ready`'s number, then keeps working: it applies what is already
//! committed, takes new proposals and sends the leader's appends while the batch is written.
//! All batches waiting when the writer wakes up, of every group, are merged into one
//! raft-engine write with one fdatasync: more groups on a node mean bigger writes, not more
//! fsyncs or threads. Each group's batches are written in the order it handed them over.
//! Then the writer publishes, per group, the highest number written and calls the group's
//! `notify`; the raft thread reacts by sending the messages that had to wait for the disk
//! (votes, append acknowledgements) and by telling raft what is persisted.
//!
//! A failed write panics, which stops the node (see the server's panic hook): memory would
//! otherwise be ahead of the disk.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Instant;

use raft_engine::LogBatch;

use crate::engine::Engine;
use crate::error::{Error, Result};

/// What a group is told when its batches are written (the highest number written).
type Notify = Box<dyn Fn(u64) + Send + Sync>;

/// One group's side of the writer.
struct GroupState {
    group_id: u64,
    /// The highest `Ready` number whose batch is written.
    written: Mutex<u64>,
    cv: Condvar,
    notify: Notify,
}

struct Task {
    group: Arc<GroupState>,
    number: u64,
    batch: LogBatch,
    sync: bool,
}

/// The node's writer thread.
pub struct StoreWriter {
    tx: Mutex<Option<Sender<Task>>>,
}

impl StoreWriter {
    /// Starts the writer of `engine`'s raft log. It holds the engine only while it writes, so
    /// dropping the engine's last handle stops it.
    pub fn start(engine: Weak<Engine>) -> Result<StoreWriter> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || run(engine, rx))
            .map_err(|e| Error::Storage(format!("spawn raft log writer: {e}")))?;
        Ok(StoreWriter {
            tx: Mutex::new(Some(tx)),
        })
    }

    /// A writer for group `group_id`, numbering its batches afresh; `notify` is called with
    /// the highest number written after each write that had some of the group's batches.
    pub fn group(
        &self,
        engine: Arc<Engine>,
        group_id: u64,
        notify: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<GroupWriter> {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(Error::Stopped)?;
        Ok(GroupWriter {
            _engine: engine,
            tx,
            state: Arc::new(GroupState {
                group_id,
                written: Mutex::new(0),
                cv: Condvar::new(),
                notify: Box::new(notify),
            }),
            submitted: 0,
        })
    }

    /// Stops taking batches; the thread ends once every group writer is gone.
    pub fn stop(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// A group's handle on the store writer.
pub struct GroupWriter {
    /// Keeps the engine (and so the writer thread) alive until the group's batches are
    /// written.
    _engine: Arc<Engine>,
    tx: Sender<Task>,
    state: Arc<GroupState>,
    /// The highest number handed over.
    submitted: u64,
}

impl GroupWriter {
    /// Queues the batch of `Ready` `number` (numbers only grow). `sync: false` is for batches
    /// raft does not need durable (a hard state whose commit index alone moved); such a batch
    /// still becomes durable with the next synced write.
    pub fn submit(&mut self, number: u64, batch: LogBatch, sync: bool) {
        assert!(number > self.submitted, "ready numbers must grow");
        self.submitted = number;
        let task = Task {
            group: self.state.clone(),
            number,
            batch,
            sync,
        };
        if self.tx.send(task).is_err() {
            panic!("raft log writer stopped");
        }
    }

    /// The highest number whose batch is written.
    pub fn written(&self) -> u64 {
        *self.state.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a handed-over batch is not written yet.
    pub fn busy(&self) -> bool {
        self.written() < self.submitted
    }

    /// Blocks until every handed-over batch is written; returns the highest number.
    pub fn wait_idle(&self) -> u64 {
        let mut n = self.state.written.lock().unwrap_or_else(|e| e.into_inner());
        while *n < self.submitted {
            n = self.state.cv.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n
    }
}

impl Drop for GroupWriter {
    /// What was handed over is written before the group is gone.
    fn drop(&mut self) {
        self.wait_idle();
    }
}

fn run(engine: Weak<Engine>, rx: Receiver<Task>) {
    while let Ok(first) = rx.recv() {
        let mut tasks = vec![first];
        tasks.extend(rx.try_iter());
        let Some(engine) = engine.upgrade() else {
            // The node is gone; so is anyone waiting for these.
            return;
        };
        let started = Instant::now();
        let sync = tasks.iter().any(|t| t.sync);
        let mut batch = LogBatch::default();
        for t in &mut tasks {
            if let Err(e) = batch.merge(&mut t.batch) {
                panic!("group {}: raft log batch: {e}", t.group.group_id);
            }
        }
        fail::fail_point!("raft_log_write_before");
        if let Err(e) = engine.write_log(&mut batch, sync) {
            panic!("raft log write failed: {e}");
        }
        fail::fail_point!("raft_log_write_after");
        drop(engine);
        metrics::histogram!("rockraft_raft_log_write_seconds")
            .record(started.elapsed().as_secs_f64());
        // Each group's tasks are in its order: the last one seen is its highest number.
        let mut groups: Vec<(Arc<GroupState>, u64)> = Vec::new();
        for t in tasks {
            match groups.iter_mut().find(|(g, _)| Arc::ptr_eq(g, &t.group)) {
                Some((_, n)) => *n = t.number,
                None => groups.push((t.group, t.number)),
            }
        }
        for (g, number) in groups {
            *g.written.lock().unwrap_or_else(|e| e.into_inner()) = number;
            g.cv.notify_all();
            (g.notify)(number);
        }
    }
}
