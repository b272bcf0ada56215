//! Durability across restarts: every acknowledged write survives a graceful restart and a
//! `kill -9` of the real process, TTLs included.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::cmd;
use rockraft_tests::{free_port, InProcess, Process};

#[test]
fn graceful_restart_in_process_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    let node = InProcess::start(&data);
    let c = &mut node.client();
    for i in 0..200 {
        let _: () = cmd("SET").arg(format!("k{i}")).arg(i).query(c).unwrap();
    }
    let _: i64 = cmd("INCRBY").arg("counter").arg(7).query(c).unwrap();
    let term_before: String = cmd("INFO").arg("raft").query(c).unwrap();
    node.stop();

    let node = InProcess::start(&data);
    let c = &mut node.client();
    for i in 0..200 {
        let v: i64 = cmd("GET").arg(format!("k{i}")).query(c).unwrap();
        assert_eq!(v, i);
    }
    assert_eq!(cmd("INCR").arg("counter").query::<i64>(c).unwrap(), 8);
    let info: String = cmd("INFO").arg("raft").query(c).unwrap();
    let node_id = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("raft_node_id:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        node_id(&info),
        node_id(&term_before),
        "node identity is persisted"
    );
}

#[test]
fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    let port = free_port();
    let node = Process::start(&data, port);

    // Writers keep going until the kill; every write they saw acknowledged is recorded.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Vec<Arc<AtomicU64>> = (0..4).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let stop = stop.clone();
            let acked = acked[w].clone();
            let addr = node.addr();
            std::thread::spawn(move || {
                let mut c = redis::Client::open(format!("redis://{addr}/"))
                    .unwrap()
                    .get_connection()
                    .unwrap();
                for i in 1..=1_000_000u64 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key = format!("w{w}:{i}");
                    let r: redis::RedisResult<()> = if i % 3 == 0 {
                        cmd("SET")
                            .arg(&key)
                            .arg(i)
                            .arg("EX")
                            .arg(3600)
                            .query(&mut c)
                    } else {
                        cmd("SET").arg(&key).arg(i).query(&mut c)
                    };
                    if r.is_err() {
                        break;
                    }
                    acked.store(i, Ordering::SeqCst);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    node.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let counts: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    assert!(
        counts.iter().all(|&n| n > 10),
        "writers made progress: {counts:?}"
    );

    let node = Process::start(&data, port);
    let c = &mut node.client();
    for (w, &n) in counts.iter().enumerate() {
        for i in 1..=n {
            let key = format!("w{w}:{i}");
            let v: Option<u64> = cmd("GET").arg(&key).query(c).unwrap();
            assert_eq!(v, Some(i), "acknowledged write {key} lost after kill -9");
            let ttl: i64 = cmd("TTL").arg(&key).query(c).unwrap();
            if i % 3 == 0 {
                assert!(ttl > 3500 && ttl <= 3600, "{key} lost its TTL: {ttl}");
            } else {
                assert_eq!(ttl, -1, "{key} gained a TTL");
            }
        }
    }
}

/// Starts a real node, writes `k = v`, stops it with SIGTERM (asserting a clean exit) and returns
/// its temp dir, data dir and port.
fn stopped_node_with_one_key() -> (tempfile::TempDir, std::path::PathBuf, u16) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    let port = free_port();
    let node = Process::start(&data, port);
    let _: () = cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut node.client())
        .unwrap();
    assert_eq!(node.terminate(), Some(0));
    (dir, data, port)
}

#[test]
fn sigterm_shuts_down_cleanly_and_restarts() {
    let (_dir, data, port) = stopped_node_with_one_key();
    let node = Process::start(&data, port);
    let v: String = cmd("GET").arg("k").query(&mut node.client()).unwrap();
    assert_eq!(v, "v");
}

#[test]
fn a_second_node_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    let _first = InProcess::start(&data);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(rockraft_server::start(rockraft_tests::config(&data)))
        .err()
        .expect("second open must fail");
    assert!(err.to_string().contains("cannot open RocksDB"), "{err}");
}

#[test]
fn a_corrupted_data_directory_is_refused_with_a_clear_error() {
    let (_dir, data, _) = stopped_node_with_one_key();
    // Point RocksDB's CURRENT file at a manifest that does not exist.
    std::fs::write(data.join("db").join("CURRENT"), "MANIFEST-999999\n").unwrap();
    let bin = rockraft_tests::workspace_binary("rockraft-server");
    let out = std::process::Command::new(bin)
        .args([
            "--port",
            &free_port().to_string(),
            "--bus-port",
            &free_port().to_string(),
            "--metrics-addr",
            "off",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a corrupted node must not start");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("cannot open RocksDB at"), "{log}");
    assert!(
        log.contains("MANIFEST-999999"),
        "the error names the problem: {log}"
    );
}

/// A data directory written by release 0.1 (raft log in RocksDB), unpacked into a new
/// temporary directory: 250 strings `str:1`..`str:250` ("value-N"), a hash, a list, a set, a
/// sorted set, a stream, `counter` = 2 and `withttl` (expiring in 2100). It was killed with
/// `kill -9`, so part of it is only in RocksDB's WAL, and its log was compacted (the first
/// index is 205, the last 262). `fixtures/make-data-dir-v0.1.sh` rebuilds it.
fn old_release_data_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    std::fs::create_dir_all(&data).unwrap();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/data-dir-v0.1.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("xzf")
        .arg(&fixture)
        .arg("-C")
        .arg(&data)
        .status()
        .unwrap();
    assert!(status.success(), "unpacking {}", fixture.display());
    (dir, data)
}

/// Everything the old release's directory holds (see [`old_release_data_dir`]).
fn check_old_release_data(c: &mut redis::Connection) {
    for i in 1..=250 {
        let v: String = cmd("GET").arg(format!("str:{i}")).query(c).unwrap();
        assert_eq!(v, format!("value-{i}"));
    }
    let h: Vec<String> = cmd("HGETALL").arg("h").query(c).unwrap();
    assert_eq!(h, ["f1", "v1", "f2", "v2"]);
    let l: Vec<String> = cmd("LRANGE").arg("l").arg(0).arg(-1).query(c).unwrap();
    assert_eq!(l, ["a", "b", "c"]);
    let s: u64 = cmd("SCARD").arg("s").query(c).unwrap();
    assert_eq!(s, 3);
    let z: Vec<String> = cmd("ZRANGE").arg("z").arg(0).arg(-1).query(c).unwrap();
    assert_eq!(z, ["one", "two"]);
    let x: u64 = cmd("XLEN").arg("st").query(c).unwrap();
    assert_eq!(x, 1);
    let ttl: i64 = cmd("TTL").arg("withttl").query(c).unwrap();
    assert!(ttl > 0, "TTL {ttl}");
}

fn raft_info(c: &mut redis::Connection, field: &str) -> u64 {
    rockraft_tests::info_field(c, "raft", field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("INFO raft lacks {field}"))
}

#[test]
fn a_data_directory_of_the_previous_release_is_upgraded_at_start() {
    let (_dir, data) = old_release_data_dir();
    let port = free_port();
    let node = Process::start(&data, port);
    let c = &mut node.client();
    assert_eq!(cmd("DBSIZE").query::<u64>(c).unwrap(), 257);
    assert_eq!(cmd("GET").arg("counter").query::<u64>(c).unwrap(), 2);
    check_old_release_data(c);
    // The old log moved: same start, and the entries it held are still served.
    assert_eq!(raft_info(c, "raft_first_index"), 205);
    assert!(raft_info(c, "raft_last_index") > 260);
    assert!(node.log().contains("raft log moved to raft-engine"));
    assert_eq!(cmd("INCR").arg("counter").query::<u64>(c).unwrap(), 3);
    node.kill9();
    // The second start finds the new format: no second upgrade, nothing lost. (Another port:
    // a node's log file is named by it.)
    let node = Process::start(&data, free_port());
    let c = &mut node.client();
    check_old_release_data(c);
    assert_eq!(cmd("GET").arg("counter").query::<u64>(c).unwrap(), 3);
    assert!(!node.log().contains("upgrading the data directory"));
    assert!(data.join("raft").is_dir());
}

#[test]
fn an_upgrade_interrupted_by_a_crash_is_done_again() {
    let (_dir, data) = old_release_data_dir();
    let port = free_port();
    // The crash comes after the log is copied into raft-engine, before the old one is removed.
    let launch = rockraft_tests::Launch::failpoints("upgrade_before_format=panic");
    let mut crashed = Process::spawn_full(&launch, &data, port, free_port(), None, &[]);
    assert_eq!(
        crashed.wait_exit(Duration::from_secs(30)),
        Some(Some(101)),
        "no crash during the upgrade"
    );
    let node = Process::start(&data, free_port());
    assert!(node.log().contains("raft log moved to raft-engine"));
    let c = &mut node.client();
    check_old_release_data(c);
    assert_eq!(cmd("INCR").arg("counter").query::<u64>(c).unwrap(), 3);
    assert_eq!(raft_info(c, "raft_first_index"), 205);
}
