//! The raft log writer: a thread that makes a group's log writes durable while the group's
//! raft thread goes on (raft-rs's `advance_append_async` / `on_persist_ready`).
//!
//! The raft thread hands over each `Ready`'s batch (new entries and hard state) with the
//! `Ready`'s number, then keeps working: it applies what is already committed, takes new
//! proposals and sends the leader's appends while the batch is written. Batches are written in
//! the order they were handed over. All batches waiting when the writer wakes up share one
//! fsync: the last is written synced and the others not, and since the raft log and the data
//! share one WAL, that sync covers them all. Then the writer publishes the highest number
//! written and calls `notify`. The raft thread reacts by sending the messages that had to wait
//! for the disk (votes, append acknowledgements) and by telling raft what is persisted.
//!
//! A failed write panics, which stops the node (see the server's panic hook): memory would
//! otherwise be ahead of the disk.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use rocksdb::WriteBatch;

use crate::engine::Engine;
use crate::error::{Error, Result};

struct Task {
    number: u64,
    wb: WriteBatch,
    sync: bool,
}

/// The highest `Ready` number whose batch is written.
#[derive(Default)]
struct Written {
    number: Mutex<u64>,
    cv: Condvar,
}

/// The writer of one group's raft log.
pub struct LogWriter {
    tx: Option<Sender<Task>>,
    written: Arc<Written>,
    thread: Option<JoinHandle<()>>,
    /// The highest number handed over.
    submitted: u64,
}

impl LogWriter {
    /// Starts the writer thread of group `group_id`; `notify` is called with the highest
    /// number written after each round of writes.
    pub fn start(
        engine: Arc<Engine>,
        group_id: u64,
        notify: impl Fn(u64) + Send + 'static,
    ) -> Result<LogWriter> {
        let (tx, rx) = mpsc::channel();
        let written = Arc::new(Written::default());
        let shared = written.clone();
        let thread = std::thread::Builder::new()
            .name(format!("raft-log-{group_id}"))
            .spawn(move || run(engine, group_id, rx, shared, notify))
            .map_err(|e| Error::Storage(format!("spawn raft log writer: {e}")))?;
        Ok(LogWriter {
            tx: Some(tx),
            written,
            thread: Some(thread),
            submitted: 0,
        })
    }

    /// Queues the batch of `Ready` `number` (numbers only grow). `sync: false` is for batches
    /// raft does not need durable (a hard state whose commit index alone moved); such a batch
    /// still becomes durable with the next synced one.
    pub fn submit(&mut self, number: u64, wb: WriteBatch, sync: bool) {
        assert!(number > self.submitted, "ready numbers must grow");
        self.submitted = number;
        let task = Task { number, wb, sync };
        if self.tx.as_ref().is_none_or(|tx| tx.send(task).is_err()) {
            panic!("raft log writer stopped");
        }
    }

    /// The highest number whose batch is written.
    pub fn written(&self) -> u64 {
        *self
            .written
            .number
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a handed-over batch is not written yet.
    pub fn busy(&self) -> bool {
        self.written() < self.submitted
    }

    /// Blocks until every handed-over batch is written; returns the highest number.
    pub fn wait_idle(&self) -> u64 {
        let mut n = self
            .written
            .number
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        while *n < self.submitted {
            n = self.written.cv.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n
    }
}

impl Drop for LogWriter {
    /// Writes what was handed over, then stops the thread.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    engine: Arc<Engine>,
    group_id: u64,
    rx: Receiver<Task>,
    written: Arc<Written>,
    notify: impl Fn(u64),
) {
    while let Ok(first) = rx.recv() {
        let mut tasks = vec![first];
        tasks.extend(rx.try_iter());
        let started = Instant::now();
        let sync = tasks.iter().any(|t| t.sync);
        // The sync goes with the last write: it covers the earlier ones.
        let last_write = tasks.iter().rposition(|t| !t.wb.is_empty());
        let number = tasks.last().map_or(0, |t| t.number);
        for (i, task) in tasks.into_iter().enumerate() {
            if task.wb.is_empty() {
                continue;
            }
            fail::fail_point!("raft_log_write_before");
            if let Err(e) = engine.write(task.wb, sync && Some(i) == last_write) {
                panic!("group {group_id}: raft log write failed: {e}");
            }
            fail::fail_point!("raft_log_write_after");
        }
        metrics::histogram!("rockraft_raft_log_write_seconds")
            .record(started.elapsed().as_secs_f64());
        *written.number.lock().unwrap_or_else(|e| e.into_inner()) = number;
        written.cv.notify_all();
        notify(number);
    }
}
