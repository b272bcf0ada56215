//! Log compaction and snapshots: a follower behind the compacted log, and a node joining a
//! cluster whose log no longer starts at 1, catch up through a snapshot and end up with
//! identical data (digest) and the acknowledged keys, TTLs included.

use std::time::Duration;

use rockraft_server::Config;
use rockraft_tests::*;

/// Compact after 200 entries, so a few hundred writes push a stopped node off the log.
fn small_log(c: &mut Config) {
    c.raft_log_max_entries = 200;
}

fn raft_u64(c: &mut redis::Connection, field: &str) -> u64 {
    info_field(c, "raft", field)
        .unwrap_or_else(|| panic!("INFO raft has no {field}"))
        .parse()
        .unwrap()
}

/// Writes `n` keys `prefix:i`, one at a time: every one acknowledged, each in an entry of
/// its own (pipelined writes would share entries, and these tests count entries).
fn write_keys(c: &mut redis::Connection, prefix: &str, n: usize) {
    for i in 0..n {
        let _: () = redis::cmd("SET")
            .arg(format!("{prefix}:{i}"))
            .arg(i)
            .query(c)
            .expect("SET acknowledged");
    }
}

fn check_keys(c: &mut redis::Connection, prefix: &str, n: usize) {
    let _: () = redis::cmd("READONLY").query(c).unwrap();
    for i in 0..n {
        let v: Option<u64> = redis::cmd("GET")
            .arg(format!("{prefix}:{i}"))
            .query(c)
            .unwrap();
        assert_eq!(v, Some(i as u64), "{prefix}:{i}");
    }
}

#[test]
fn the_log_is_compacted_past_its_limit() {
    let cluster = InProcessCluster::start_with(1, small_log);
    let mut c = cluster.client(0);
    write_keys(&mut c, "k", 1000);
    // The three figures are published at different moments (the log writer, the raft
    // thread, the compaction): once the writes are done they agree. The compaction waits for
    // the applied data to be flushed (it is written without a WAL), so it trails the writes.
    let mut figures = (0, 0, 0);
    let settled = rockraft_tests::wait_until(std::time::Duration::from_secs(10), || {
        figures = (
            raft_u64(&mut c, "raft_first_index"),
            raft_u64(&mut c, "raft_log_entries"),
            raft_u64(&mut c, "raft_last_index"),
        );
        figures.0 + figures.1 - 1 == figures.2 && figures.1 <= 200
    });
    let (first, entries, last) = figures;
    assert!(
        settled,
        "first {first} + entries {entries} - 1 != last {last}"
    );
    assert!(first > 500, "log not compacted: first index {first}");
    assert!(entries <= 200, "log holds {entries} entries (limit 200)");
    assert!(raft_u64(&mut c, "raft_log_bytes") > 0);
    // The data is all there, and it survives a restart from the compacted log.
    let mut cluster = cluster;
    cluster.stop(0);
    cluster.restart(0);
    let mut c = cluster.client(0);
    check_keys(&mut c, "k", 1000);
    assert_eq!(raft_u64(&mut c, "raft_first_index"), first);
}

#[test]
fn a_follower_behind_the_compacted_log_catches_up_from_a_snapshot() {
    let mut cluster = InProcessCluster::start_with(3, small_log);
    let leader = cluster.leader();
    let lagging = (leader + 1) % 3;
    let mut c = cluster.client(leader);
    write_keys(&mut c, "before", 100);
    cluster.stop(lagging);
    write_keys(&mut c, "while-down", 1500);
    // Some keys with a TTL: the expiry index travels in the snapshot too.
    for i in 0..20 {
        let _: () = redis::cmd("SET")
            .arg(format!("ttl:{i}"))
            .arg("v")
            .arg("EX")
            .arg(1000)
            .query(&mut c)
            .unwrap();
    }
    let first = raft_u64(&mut c, "raft_first_index");
    assert!(
        first > 100,
        "leader's log was not compacted (first index {first})"
    );
    let sent_before = raft_u64(&mut c, "raft_snapshots_sent");

    cluster.restart(lagging);
    assert!(
        cluster.wait_converged(Duration::from_secs(60)),
        "the restarted follower did not converge"
    );
    let mut f = cluster.client(lagging);
    assert!(raft_u64(&mut f, "raft_snapshots_installed") >= 1);
    assert!(raft_u64(&mut c, "raft_snapshots_sent") > sent_before);
    check_keys(&mut f, "before", 100);
    check_keys(&mut f, "while-down", 1500);
    let ttl: i64 = redis::cmd("TTL").arg("ttl:7").query(&mut f).unwrap();
    assert!((900..=1000).contains(&ttl), "TTL after snapshot: {ttl}");
    // It keeps replicating normally afterwards.
    write_keys(&mut c, "after", 300);
    assert!(cluster.wait_converged(Duration::from_secs(30)));
    check_keys(&mut f, "after", 300);
}

#[test]
fn a_node_joining_a_compacted_cluster_gets_a_snapshot() {
    let mut cluster = InProcessCluster::start_with(1, small_log);
    let mut c = cluster.client(0);
    write_keys(&mut c, "k", 3000);
    assert!(raft_u64(&mut c, "raft_first_index") > 1000);
    let digest: String = redis::cmd("DEBUG").arg("DIGEST").query(&mut c).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_data_dir(dir.path());
    small_log(&mut cfg);
    let joiner = InProcess::start_with(cfg);
    form_cluster(cluster.addr(0), &[joiner.addr()]);
    cluster.nodes.push(Some(joiner));
    assert!(cluster.wait_converged(Duration::from_secs(60)));
    let mut j = cluster.client(1);
    assert_eq!(raft_u64(&mut j, "raft_snapshots_installed"), 1);
    let joined: String = redis::cmd("DEBUG").arg("DIGEST").query(&mut j).unwrap();
    assert_eq!(joined, digest);
    check_keys(&mut j, "k", 3000);
    let dbsize: u64 = redis::cmd("DBSIZE").query(&mut j).unwrap();
    assert_eq!(dbsize, 3000);
}

#[test]
fn a_half_received_snapshot_is_discarded_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(dir.path());
    node.stop();
    // What a crash in the middle of a transfer leaves behind.
    let partial = dir.path().join("snap").join("recv-1-500-7");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("default.sst"), b"half a file").unwrap();
    let generated = dir.path().join("snap").join("gen-1-9");
    std::fs::create_dir_all(&generated).unwrap();
    let node = InProcess::start(dir.path());
    assert!(!partial.exists(), "half-received snapshot still there");
    assert!(!generated.exists(), "stale generated snapshot still there");
    let mut c = node.client();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
}
