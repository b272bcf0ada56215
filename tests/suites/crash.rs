//! Crash safety: a node is crashed at each failpoint (fail-rs, in the server built with the
//! `failpoints` feature), restarted without it, and then every acknowledged write must be on
//! every node and the nodes' data identical.
//!
//! The failpoint panics; the server's panic hook makes that a process exit (101), as abrupt as
//! `kill -9` for everything not yet synced.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rockraft_tests::*;

/// Small enough that a few hundred writes compact the log (and need snapshots).
const LOG_FLAGS: &[&str] = &["--raft-log-max-entries", "100"];

/// An acknowledged write: of a string, or of an element of a collection of each type.
#[derive(Debug)]
enum Acked {
    String(String),
    Hash(String, String),
    Set(String, String),
    Zset(String, String),
    List(String, String),
}

impl Acked {
    /// The write for the `n`-th attempt: the types take turns, a few keys per type so the
    /// collections grow (and snapshots carry them).
    fn make(n: usize, value: &str) -> (Acked, redis::Cmd) {
        let (key, item) = (format!("{{c}}{}", n % 5), format!("e{n}"));
        let mut c;
        let acked = match n % 5 {
            0 => {
                let k = format!("key:{n}");
                c = redis::cmd("SET");
                c.arg(&k).arg(value);
                Acked::String(k)
            }
            1 => {
                c = redis::cmd("HSET");
                c.arg(format!("h{key}")).arg(&item).arg(value);
                Acked::Hash(format!("h{key}"), item)
            }
            2 => {
                c = redis::cmd("SADD");
                c.arg(format!("s{key}")).arg(&item);
                Acked::Set(format!("s{key}"), item)
            }
            3 => {
                c = redis::cmd("ZADD");
                c.arg(format!("z{key}")).arg(n).arg(&item);
                Acked::Zset(format!("z{key}"), item)
            }
            _ => {
                c = redis::cmd("RPUSH");
                c.arg(format!("l{key}")).arg(&item);
                Acked::List(format!("l{key}"), item)
            }
        };
        (acked, c)
    }

    /// Whether the write is visible on `c`.
    fn present(&self, c: &mut redis::Connection) -> bool {
        let q = |cmd: &mut redis::Cmd, c: &mut redis::Connection| -> redis::Value {
            cmd.query(c).unwrap_or(redis::Value::Nil)
        };
        match self {
            Acked::String(k) => !matches!(q(redis::cmd("GET").arg(k), c), redis::Value::Nil),
            Acked::Hash(k, f) => q(redis::cmd("HEXISTS").arg(k).arg(f), c) == redis::Value::Int(1),
            Acked::Set(k, m) => q(redis::cmd("SISMEMBER").arg(k).arg(m), c) == redis::Value::Int(1),
            Acked::Zset(k, m) => {
                !matches!(q(redis::cmd("ZSCORE").arg(k).arg(m), c), redis::Value::Nil)
            }
            Acked::List(k, v) => {
                matches!(q(redis::cmd("LPOS").arg(k).arg(v), c), redis::Value::Int(_))
            }
        }
    }
}

/// Writes per attempt of [`Writer::write_one`].
const PIPELINE: usize = 4;

/// Acknowledged writes, and where to send the next.
struct Writer {
    addrs: Vec<SocketAddr>,
    acked: Vec<Acked>,
    next: usize,
    conn: Option<(usize, redis::Connection)>,
    value: String,
}

impl Writer {
    fn new(addrs: Vec<SocketAddr>, value_len: usize) -> Writer {
        Writer {
            addrs,
            acked: Vec::new(),
            next: 0,
            conn: None,
            value: "v".repeat(value_len),
        }
    }

    /// One write attempt: [`PIPELINE`] writes of new keys or elements in one pipeline (so that
    /// they share raft entries); true if all were acknowledged. Errors (a dead node, MOVED,
    /// CLUSTERDOWN, an unknown outcome) move to the next node; the pipeline's writes are then
    /// not counted, whatever became of them.
    fn write_one(&mut self) -> bool {
        let (i, c) = match self.conn.take() {
            Some(c) => c,
            None => {
                let i = self.next % self.addrs.len();
                self.next += 1;
                match connect(self.addrs[i]) {
                    Some(c) => (i, c),
                    None => {
                        std::thread::sleep(Duration::from_millis(50));
                        return false;
                    }
                }
            }
        };
        let mut c = c;
        let base = self.acked.len() + self.next * 1_000_000;
        let mut pipe = redis::pipe();
        let mut made = Vec::with_capacity(PIPELINE);
        for j in 0..PIPELINE {
            let (acked, command) = Acked::make(base + j, &self.value);
            pipe.add_command(command);
            made.push(acked);
        }
        let r: redis::RedisResult<Vec<redis::Value>> = pipe.query(&mut c);
        match r {
            Ok(replies)
                if replies.len() == PIPELINE
                    && !replies
                        .iter()
                        .any(|r| matches!(r, redis::Value::ServerError(_))) =>
            {
                self.acked.extend(made);
                self.conn = Some((i, c));
                true
            }
            _ => {
                std::thread::sleep(Duration::from_millis(20));
                false
            }
        }
    }

    /// Writes until `n` more writes are acknowledged (or `timeout` passes: panics).
    fn write(&mut self, n: usize, timeout: Duration) {
        let want = self.acked.len() + n;
        let deadline = Instant::now() + timeout;
        while self.acked.len() < want {
            assert!(
                Instant::now() < deadline,
                "only {} of {want} writes acknowledged in {timeout:?}",
                self.acked.len()
            );
            self.write_one();
        }
    }

    /// Writes until `done()` (checked between writes; panics after `timeout`).
    fn write_until(&mut self, timeout: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "condition not reached while writing"
            );
            self.write_one();
        }
    }
}

/// Every acknowledged key is on every running node (read locally, READONLY), and all nodes
/// have the same data.
fn check(cluster: &ProcessCluster, acked: &[Acked]) {
    assert!(
        cluster.wait_converged(Duration::from_secs(60)),
        "nodes did not converge"
    );
    for addr in cluster.addrs().into_iter().flatten() {
        let mut c = connect(addr).unwrap();
        let _: () = redis::cmd("READONLY").query(&mut c).unwrap();
        for a in acked {
            assert!(a.present(&mut c), "acknowledged {a:?} missing on {addr}");
        }
    }
}

fn raft_field(addr: SocketAddr, field: &str) -> u64 {
    connect(addr)
        .and_then(|mut c| info_field(&mut c, "raft", field))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Crashes node `target` (0 leads at the start) at `failpoint` while a client writes.
fn crash_on_write_path(target: usize, failpoint: &str) {
    // Skip the hits of cluster formation and the first writes.
    crash_with(target, &format!("{failpoint}=150*off->panic"), failpoint);
}

/// Runs node `target` with failpoints `spec` while a client writes, until the node stops by
/// itself; `expect_log` must be in its log (what the operator reads). Then restarts it.
fn crash_with(target: usize, spec: &str, expect_log: &str) {
    let mut cluster = ProcessCluster::start_full(3, LOG_FLAGS, |i| {
        if i == target {
            Launch::failpoints(spec)
        } else {
            Launch::default()
        }
    });
    let addrs: Vec<SocketAddr> = (0..3).map(|i| cluster.addr(i)).collect();
    let mut w = Writer::new(addrs, 16);
    let crashed = {
        let p = cluster.nodes[target].as_mut().unwrap();
        let mut exited = None;
        w.write_until(Duration::from_secs(90), || {
            if exited.is_none() {
                exited = p.wait_exit(Duration::ZERO);
            }
            exited.is_some()
        });
        exited.unwrap()
    };
    assert_eq!(crashed, Some(101), "node {target} did not stop at {spec}");
    let log = cluster.nodes[target].take().unwrap().log();
    assert!(log.contains(expect_log), "log lacks {expect_log:?}");
    // The others go on (a new leader if the leader crashed).
    w.write(100, Duration::from_secs(60));
    cluster.restart(target);
    w.write(100, Duration::from_secs(60));
    check(&cluster, &w.acked);
}

#[test]
fn leader_crash_before_the_raft_log_write() {
    crash_on_write_path(0, "raft_log_write_before");
}

#[test]
fn leader_crash_after_the_raft_log_write() {
    crash_on_write_path(0, "raft_log_write_after");
}

#[test]
fn leader_crash_before_apply() {
    crash_on_write_path(0, "apply_before");
}

#[test]
fn leader_crash_after_apply() {
    crash_on_write_path(0, "apply_after");
}

/// A disk that starts failing writes (EIO) stops the leader with a log line naming the error;
/// nothing it acknowledged is lost.
#[test]
fn leader_stops_when_the_disk_fails_writes() {
    crash_with(
        0,
        "engine_write=150*off->return(IO error: Input/output error)",
        "write failed: storage error: write: IO error: Input/output error",
    );
}

#[test]
fn follower_crash_after_the_raft_log_write() {
    crash_on_write_path(1, "raft_log_write_after");
}

#[test]
fn follower_crash_before_apply() {
    crash_on_write_path(1, "apply_before");
}

/// Node 2 falls behind the compacted log; when it comes back, `sender` (node 0, the leader)
/// or node 2 itself crashes at `failpoint` during the snapshot.
fn crash_during_snapshot(on_sender: bool, failpoint: &str) {
    let spec = format!("{failpoint}=panic");
    let mut cluster = ProcessCluster::start_full(3, LOG_FLAGS, |i| {
        if on_sender && i == 0 {
            Launch::failpoints(&spec)
        } else {
            Launch::default()
        }
    });
    let addrs: Vec<SocketAddr> = (0..3).map(|i| cluster.addr(i)).collect();
    // 5 KB values (of the strings and hash fields, two writes in five): the data and element
    // families are each more than one 1 MiB chunk, so mid-stream points are reached.
    let mut w = Writer::new(addrs.clone(), 5000);
    w.write(50, Duration::from_secs(30));
    cluster.kill9(2);
    w.write(1500, Duration::from_secs(120));
    assert!(raft_field(addrs[0], "raft_first_index") > 100);
    let target = if on_sender { 0 } else { 2 };
    if on_sender {
        cluster.restart(2);
    } else {
        cluster.restart_as(2, &Launch::failpoints(&spec));
    }
    let code = cluster.wait_crash(target, Duration::from_secs(60));
    assert_eq!(code, Some(101), "no crash at {failpoint}");
    cluster.restart(target);
    w.write(100, Duration::from_secs(60));
    check(&cluster, &w.acked);
    if !on_sender
        && failpoint.starts_with("snapshot_install_")
        && failpoint != "snapshot_install_before"
    {
        // The marker made the restart finish the interrupted install itself.
        let log = cluster.nodes[2].as_ref().unwrap().log();
        assert!(
            log.contains("finishing a snapshot install interrupted by a crash"),
            "restart did not redo the install"
        );
    }
    assert!(raft_field(addrs[2], "raft_first_index") > 1);
}

#[test]
fn leader_crash_while_generating_a_snapshot() {
    crash_during_snapshot(true, "snapshot_generate");
}

#[test]
fn leader_crash_while_sending_a_snapshot() {
    crash_during_snapshot(true, "snapshot_send");
}

#[test]
fn follower_crash_while_receiving_a_snapshot() {
    crash_during_snapshot(false, "snapshot_receive");
}

#[test]
fn follower_crash_before_installing_a_snapshot() {
    crash_during_snapshot(false, "snapshot_install_before");
}

#[test]
fn follower_crash_between_the_snapshots_data_and_log_writes() {
    crash_during_snapshot(false, "snapshot_install_log");
}

#[test]
fn follower_crash_between_clearing_and_ingesting_a_snapshot() {
    crash_during_snapshot(false, "snapshot_install_ingest");
}

#[test]
fn follower_crash_after_ingesting_a_snapshot() {
    crash_during_snapshot(false, "snapshot_install_after");
}

#[test]
fn leader_crash_while_applying_a_membership_change() {
    // The leader applies two changes while node 1 joins; it crashes on the third (node 2
    // joining as a learner), after the change is in its log.
    let mut cluster = ProcessCluster::start_full(2, LOG_FLAGS, |i| {
        if i == 0 {
            Launch::failpoints("conf_change_apply=2*off->panic")
        } else {
            Launch::default()
        }
    });
    let mut w = Writer::new(vec![cluster.addr(0), cluster.addr(1)], 16);
    w.write(50, Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let (port, bus) = (free_port(), free_port());
    let joiner = Process::spawn_with(dir.path(), port, bus, None, LOG_FLAGS);
    wait_ready(joiner.addr(), Duration::from_secs(30));
    let mut c = connect(cluster.addr(0)).unwrap();
    // The leader may crash before it can answer.
    let _: redis::RedisResult<String> = redis::cmd("CLUSTER")
        .arg("MEET")
        .arg("127.0.0.1")
        .arg(port)
        .query(&mut c);
    let code = cluster.wait_crash(0, Duration::from_secs(30));
    assert_eq!(code, Some(101));
    cluster.restart(0);
    cluster.nodes.push(Some(joiner));
    cluster.ports.push((port, bus));
    // The change was committed: after the restart it completes, and node 2 is promoted.
    rockraft_tests::wait_all_voters(
        &[cluster.addr(0), cluster.addr(1), cluster.addr(2)],
        Duration::from_secs(60),
    );
    w.addrs.push(cluster.addr(2));
    w.write(100, Duration::from_secs(60));
    check(&cluster, &w.acked);
}

/// A lone node (its own quorum) crashes at `spec` while a client INCRs a counter and SETs a
/// new key, one command at a time. The data is written without a WAL, so the crash loses what
/// RocksDB had not flushed; the restart re-applies it from the raft log. Every acknowledged
/// write must be there, and nothing applied twice: the counter is the number of acknowledged
/// INCRs, or one more (the command in flight at the crash, whose outcome is unknown).
fn lone_node_crash(spec: &str) {
    let mut cluster = ProcessCluster::start_full(1, LOG_FLAGS, |_| Launch::failpoints(spec));
    let mut c = connect(cluster.addr(0)).unwrap();
    let (mut incrs, mut keys) = (0u64, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(90);
    let in_flight = loop {
        assert!(
            Instant::now() < deadline,
            "the node never stopped at {spec}"
        );
        match redis::cmd("INCR").arg("counter").query::<u64>(&mut c) {
            Ok(v) => {
                incrs += 1;
                assert_eq!(v, incrs, "INCR's reply");
            }
            Err(_) => break 1,
        }
        let key = format!("key:{}", keys.len());
        match redis::cmd("SET").arg(&key).arg("v").query::<()>(&mut c) {
            Ok(()) => keys.push(key),
            Err(_) => break 0,
        }
    };
    assert_eq!(
        cluster.wait_crash(0, Duration::from_secs(30)),
        Some(101),
        "no crash at {spec}"
    );
    assert!(incrs > 50, "only {incrs} INCRs before the crash");
    cluster.restart(0);
    let mut c = connect(cluster.addr(0)).unwrap();
    let counter: u64 = redis::cmd("GET").arg("counter").query(&mut c).unwrap();
    assert!(
        (incrs..=incrs + in_flight).contains(&counter),
        "counter {counter} after {incrs} acknowledged INCRs (+{in_flight} in flight): \
         entries lost or applied twice"
    );
    for key in &keys {
        let v: Option<String> = redis::cmd("GET").arg(key).query(&mut c).unwrap();
        assert_eq!(v.as_deref(), Some("v"), "acknowledged {key} lost");
    }
    // Writes go on from the recovered state.
    let next: u64 = redis::cmd("INCR").arg("counter").query(&mut c).unwrap();
    assert_eq!(next, counter + 1);
}

#[test]
fn lone_node_crash_after_the_unflushed_apply() {
    lone_node_crash("apply_after=300*off->panic");
}

#[test]
fn lone_node_crash_after_the_raft_log_write() {
    lone_node_crash("raft_log_write_after=300*off->panic");
}

#[test]
fn lone_node_crash_before_a_flush() {
    // The first flushes are the node's start (identity, group, format); later ones come
    // before log compactions.
    lone_node_crash("flush_before=6*off->panic");
}

#[test]
fn lone_node_crash_after_a_flush() {
    lone_node_crash("flush_after=6*off->panic");
}

#[test]
fn lone_node_crash_before_a_log_compaction() {
    lone_node_crash("compact_before=3*off->panic");
}

#[test]
fn lone_node_crash_after_a_log_compaction() {
    lone_node_crash("compact_after=3*off->panic");
}

#[test]
fn leader_crash_after_a_log_compaction() {
    crash_with(0, "compact_after=3*off->panic", "compact_after");
}

#[test]
fn follower_crash_after_a_flush() {
    crash_with(1, "flush_after=6*off->panic", "flush_after");
}
