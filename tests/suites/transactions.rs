//! MULTI/EXEC/WATCH through real connections: Redis's replies and errors, one log entry per
//! EXEC, reads that see the transaction's own writes, WATCH broken by other clients, by
//! expiry and by FLUSHALL (and not by what Redis does not count), WATCH across leader changes,
//! and an optimistic-locking counter that loses no increment.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use redis::cmd;
use rockraft_tests::{info_field, resp, InProcess, InProcessCluster, Raw};

fn node() -> (tempfile::TempDir, InProcess) {
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(&dir.path().join("n"));
    (dir, node)
}

/// Sends a command given as words and returns the raw reply.
fn call(c: &mut Raw, words: &[&str]) -> String {
    let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    c.roundtrip(&resp(&args))
}

fn applied(addr: SocketAddr) -> u64 {
    let mut c = rockraft_tests::connect(addr).unwrap();
    info_field(&mut c, "raft", "raft_applied_index")
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn transaction_replies_and_errors_are_redis_s() {
    let (_d, n) = node();
    let c = &mut Raw::connect(n.addr());
    assert_eq!(call(c, &["EXEC"]), "-ERR EXEC without MULTI\r\n");
    assert_eq!(call(c, &["DISCARD"]), "-ERR DISCARD without MULTI\r\n");
    assert_eq!(call(c, &["MULTI"]), "+OK\r\n");
    assert_eq!(
        call(c, &["MULTI"]),
        "-ERR MULTI calls can not be nested\r\n"
    );
    assert_eq!(
        call(c, &["WATCH", "k"]),
        "-ERR WATCH inside MULTI is not allowed\r\n"
    );
    assert_eq!(call(c, &["SET", "k", "1"]), "+QUEUED\r\n");
    assert_eq!(call(c, &["INCR", "k"]), "+QUEUED\r\n");
    assert_eq!(call(c, &["LPUSH", "k", "x"]), "+QUEUED\r\n");
    assert_eq!(call(c, &["PING"]), "+QUEUED\r\n");
    assert_eq!(call(c, &["GET", "k"]), "+QUEUED\r\n");
    // A runtime error is that command's element; the others still run.
    assert_eq!(
        call(c, &["EXEC"]),
        "*5\r\n+OK\r\n:2\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n+PONG\r\n$1\r\n2\r\n"
    );
    // Errors while queuing discard the transaction.
    assert_eq!(call(c, &["MULTI"]), "+OK\r\n");
    assert_eq!(call(c, &["SET", "k", "changed"]), "+QUEUED\r\n");
    assert_eq!(
        call(c, &["NOSUCH", "a"]),
        "-ERR unknown command 'NOSUCH', with args beginning with: 'a' \r\n"
    );
    assert_eq!(
        call(c, &["GET"]),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert_eq!(
        call(c, &["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_eq!(call(c, &["GET", "k"]), "$1\r\n2\r\n");
    // DISCARD drops the queue; an empty transaction is an empty array.
    assert_eq!(call(c, &["MULTI"]), "+OK\r\n");
    assert_eq!(call(c, &["SET", "k", "discarded"]), "+QUEUED\r\n");
    assert_eq!(call(c, &["DISCARD"]), "+OK\r\n");
    assert_eq!(call(c, &["GET", "k"]), "$1\r\n2\r\n");
    assert_eq!(call(c, &["MULTI"]), "+OK\r\n");
    assert_eq!(call(c, &["EXEC"]), "*0\r\n");
    // A syntax error found at EXEC is the command's element, as in Redis.
    assert_eq!(call(c, &["MULTI"]), "+OK\r\n");
    assert_eq!(call(c, &["SET", "k", "v", "EX", "x"]), "+QUEUED\r\n");
    assert_eq!(call(c, &["GET", "k"]), "+QUEUED\r\n");
    assert_eq!(
        call(c, &["EXEC"]),
        "*2\r\n-ERR value is not an integer or out of range\r\n$1\r\n2\r\n"
    );
}

#[test]
fn reads_in_a_transaction_see_its_writes_and_exec_is_one_entry() {
    let (_d, n) = node();
    let c = &mut Raw::connect(n.addr());
    let before = applied(n.addr());
    let script: &[&[&str]] = &[
        &["HSET", "h", "f", "1", "g", "2"],
        &["HINCRBY", "h", "f", "10"],
        &["HGET", "h", "f"],
        &["SADD", "s", "a", "b"],
        &["SCARD", "s"],
        &["KEYS", "*"],
        &["DBSIZE"],
        &["DEL", "h"],
        &["EXISTS", "h"],
        &["ZADD", "z", "1", "m"],
        &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
    ];
    assert_eq!(call(c, &["MULTI"]), "+OK\r\n");
    for q in script {
        assert_eq!(call(c, q), "+QUEUED\r\n", "{q:?}");
    }
    let reply = call(c, &["EXEC"]);
    assert!(
        reply.contains("*2\r\n$1\r\nh\r\n$1\r\ns\r\n")
            || reply.contains("*2\r\n$1\r\ns\r\n$1\r\nh\r\n"),
        "KEYS sees h and s: {reply:?}"
    );
    assert!(
        reply.starts_with("*11\r\n:2\r\n:11\r\n$2\r\n11\r\n:2\r\n:2\r\n*2\r\n"),
        "{reply:?}"
    );
    assert!(
        reply.ends_with(":2\r\n:1\r\n:0\r\n:1\r\n*2\r\n$1\r\nm\r\n$1\r\n1\r\n"),
        "{reply:?}"
    );
    assert_eq!(applied(n.addr()) - before, 1, "one EXEC, one log entry");
    // A transaction of reads is a read: no entry.
    let before = applied(n.addr());
    assert_eq!(call(c, &["MULTI"]), "+OK\r\n");
    assert_eq!(call(c, &["SMEMBERS", "s"]), "+QUEUED\r\n");
    assert_eq!(call(c, &["ZSCORE", "z", "m"]), "+QUEUED\r\n");
    assert_eq!(
        call(c, &["EXEC"]),
        "*2\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\n1\r\n"
    );
    assert_eq!(applied(n.addr()), before);
}

#[test]
fn watch_is_broken_by_changes_expiry_and_flushall_as_in_redis() {
    let (_d, n) = node();
    let c = &mut Raw::connect(n.addr());
    let other = &mut n.client();
    let exec_set = |c: &mut Raw| {
        assert_eq!(call(c, &["MULTI"]), "+OK\r\n");
        assert_eq!(call(c, &["SET", "k", "mine"]), "+QUEUED\r\n");
        call(c, &["EXEC"])
    };
    // Untouched: the transaction runs.
    let _: () = cmd("SET").arg("k").arg("0").query(other).unwrap();
    assert_eq!(call(c, &["WATCH", "k", "unrelated"]), "+OK\r\n");
    let _: () = cmd("SET").arg("unrelated2").arg("x").query(other).unwrap();
    assert_eq!(exec_set(c), "*1\r\n+OK\r\n");
    // Changed by another client (even to the same value): nil.
    assert_eq!(call(c, &["WATCH", "k"]), "+OK\r\n");
    let _: () = cmd("SET").arg("k").arg("mine").query(other).unwrap();
    assert_eq!(exec_set(c), "*-1\r\n");
    // A collection changed in place (no metadata change: an existing field overwritten).
    let _: i64 = cmd("HSET").arg("h").arg("f").arg("1").query(other).unwrap();
    assert_eq!(call(c, &["WATCH", "h"]), "+OK\r\n");
    let _: i64 = cmd("HSET").arg("h").arg("f").arg("2").query(other).unwrap();
    assert_eq!(exec_set(c), "*-1\r\n");
    // A no-op (SADD of a member already there) is no change, as in Redis.
    let _: i64 = cmd("SADD").arg("s").arg("a").query(other).unwrap();
    assert_eq!(call(c, &["WATCH", "s"]), "+OK\r\n");
    let _: i64 = cmd("SADD").arg("s").arg("a").query(other).unwrap();
    assert_eq!(exec_set(c), "*1\r\n+OK\r\n");
    // A key created and deleted again meanwhile.
    assert_eq!(call(c, &["WATCH", "ghost"]), "+OK\r\n");
    let _: () = cmd("SET").arg("ghost").arg("1").query(other).unwrap();
    let _: i64 = cmd("DEL").arg("ghost").query(other).unwrap();
    assert_eq!(exec_set(c), "*-1\r\n");
    // The client's own change outside the transaction counts too.
    assert_eq!(call(c, &["WATCH", "k"]), "+OK\r\n");
    assert_eq!(call(c, &["INCRBY", "unrelated", "1"]), ":1\r\n");
    assert_eq!(call(c, &["SET", "k", "x"]), "+OK\r\n");
    assert_eq!(exec_set(c), "*-1\r\n");
    // UNWATCH and DISCARD forget the watches.
    assert_eq!(call(c, &["WATCH", "k"]), "+OK\r\n");
    let _: () = cmd("SET").arg("k").arg("y").query(other).unwrap();
    assert_eq!(call(c, &["UNWATCH"]), "+OK\r\n");
    assert_eq!(exec_set(c), "*1\r\n+OK\r\n");
    assert_eq!(call(c, &["WATCH", "k"]), "+OK\r\n");
    let _: () = cmd("SET").arg("k").arg("z").query(other).unwrap();
    assert_eq!(call(c, &["MULTI"]), "+OK\r\n");
    assert_eq!(call(c, &["DISCARD"]), "+OK\r\n");
    assert_eq!(exec_set(c), "*1\r\n+OK\r\n");
    // A live key that expires before EXEC: nil (Redis's isWatchedKeyExpired).
    let _: () = cmd("SET")
        .arg("t")
        .arg("1")
        .arg("PX")
        .arg("150")
        .query(other)
        .unwrap();
    assert_eq!(call(c, &["WATCH", "t"]), "+OK\r\n");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(exec_set(c), "*-1\r\n");
    // A key already expired when watched: its deletion by the expirer is no change.
    let _: () = cmd("SET")
        .arg("t2")
        .arg("1")
        .arg("PX")
        .arg("1")
        .query(other)
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(call(c, &["WATCH", "t2"]), "+OK\r\n");
    std::thread::sleep(Duration::from_millis(300));
    let _: i64 = cmd("EXISTS").arg("t2").query(other).unwrap();
    assert_eq!(exec_set(c), "*1\r\n+OK\r\n");
    // FLUSHALL breaks the watch of a key that existed, not of one that did not.
    assert_eq!(call(c, &["WATCH", "k"]), "+OK\r\n");
    let _: () = cmd("FLUSHALL").query(other).unwrap();
    assert_eq!(exec_set(c), "*-1\r\n");
    let _: () = cmd("FLUSHALL").query(other).unwrap();
    assert_eq!(call(c, &["WATCH", "absent"]), "+OK\r\n");
    let _: () = cmd("FLUSHALL").query(other).unwrap();
    assert_eq!(exec_set(c), "*1\r\n+OK\r\n");
    // A read-only transaction checks its watches too.
    assert_eq!(call(c, &["WATCH", "k"]), "+OK\r\n");
    let _: () = cmd("SET").arg("k").arg("again").query(other).unwrap();
    assert_eq!(call(c, &["MULTI"]), "+OK\r\n");
    assert_eq!(call(c, &["GET", "k"]), "+QUEUED\r\n");
    assert_eq!(call(c, &["EXEC"]), "*-1\r\n");
}

/// Transfers leadership to node `to` (CLUSTER FAILOVER there) and waits until it leads.
fn move_leader(cluster: &InProcessCluster, to: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.leader() != to {
        assert!(Instant::now() < deadline, "node {to} did not become leader");
        let _ = cmd("CLUSTER")
            .arg("FAILOVER")
            .query::<String>(&mut cluster.client(to));
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_watch_survives_leader_changes_and_still_sees_every_change() {
    let cluster = InProcessCluster::start(3);
    let a = cluster.leader();
    let b = (a + 1) % 3;
    let c = &mut Raw::connect(cluster.addr(a));
    assert_eq!(call(c, &["SET", "k", "0"]), "+OK\r\n");

    // WATCH on leader A; B leads and changes the key; A leads again; EXEC on A: nil.
    assert_eq!(call(c, &["WATCH", "k"]), "+OK\r\n");
    move_leader(&cluster, b);
    let _: () = cmd("SET")
        .arg("k")
        .arg("by b")
        .query(&mut cluster.client(b))
        .unwrap();
    move_leader(&cluster, a);
    assert_eq!(call(c, &["MULTI"]), "+OK\r\n");
    assert_eq!(call(c, &["SET", "k", "by a"]), "+QUEUED\r\n");
    assert_eq!(call(c, &["EXEC"]), "*-1\r\n");
    assert_eq!(call(c, &["GET", "k"]), "$4\r\nby b\r\n");

    // The same round trip of leadership without a change: the transaction runs.
    assert_eq!(call(c, &["WATCH", "k"]), "+OK\r\n");
    move_leader(&cluster, b);
    move_leader(&cluster, a);
    assert_eq!(call(c, &["MULTI"]), "+OK\r\n");
    assert_eq!(call(c, &["SET", "k", "by a"]), "+QUEUED\r\n");
    assert_eq!(call(c, &["EXEC"]), "*1\r\n+OK\r\n");

    // EXEC on a node that no longer leads is redirected; the transaction is gone.
    assert_eq!(call(c, &["MULTI"]), "+OK\r\n");
    assert_eq!(call(c, &["INCR", "n"]), "+QUEUED\r\n");
    move_leader(&cluster, b);
    let moved = call(c, &["EXEC"]);
    assert!(moved.starts_with("-MOVED "), "{moved:?}");
    assert_eq!(call(c, &["EXEC"]), "-ERR EXEC without MULTI\r\n");
    // Commands queued on a follower are redirected and fail the transaction.
    assert_eq!(call(c, &["MULTI"]), "+OK\r\n");
    assert!(call(c, &["INCR", "n"]).starts_with("-MOVED "));
    assert_eq!(
        call(c, &["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert!(cluster.wait_converged(Duration::from_secs(30)));
}

/// WATCH k, GET k, MULTI, SET k n+1, EXEC, retried until it runs: `per_client` increments
/// from each of `clients` connections at once. Returns the final value and the retries.
fn watch_counter(addr: SocketAddr, clients: usize, per_client: usize) -> (i64, usize) {
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = rockraft_tests::connect(addr).unwrap();
                let mut retries = 0;
                for _ in 0..per_client {
                    for attempt in 0.. {
                        assert!(attempt < 10_000, "no progress");
                        let _: () = cmd("WATCH").arg("counter").query(&mut c).unwrap();
                        let v: Option<i64> = cmd("GET").arg("counter").query(&mut c).unwrap();
                        let done: Option<(String,)> = redis::pipe()
                            .atomic()
                            .cmd("SET")
                            .arg("counter")
                            .arg(v.unwrap_or(0) + 1)
                            .query(&mut c)
                            .unwrap();
                        if done.is_some() {
                            break;
                        }
                        retries += 1;
                    }
                }
                retries
            })
        })
        .collect();
    let retries = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let mut c = rockraft_tests::connect(addr).unwrap();
    let v: i64 = cmd("GET").arg("counter").query(&mut c).unwrap();
    (v, retries)
}

#[test]
fn an_optimistic_counter_loses_no_increment() {
    let cluster = InProcessCluster::start(3);
    let leader = cluster.leader();
    let (value, retries) = watch_counter(cluster.addr(leader), 4, 40);
    assert_eq!(value, 160, "every acknowledged increment is counted once");
    println!("160 increments, {retries} retries after a broken watch");
    assert!(cluster.wait_converged(Duration::from_secs(30)));
}
