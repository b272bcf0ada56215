//! Blocking pops through real connections: replies and errors, timeouts, FIFO wake-up order,
//! one element for one of two waiters, CLIENT UNBLOCK, no blocking inside MULTI, MOVED when
//! the node stops leading, and a client that leaves while blocked takes nothing with it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use redis::cmd;
use rockraft_tests::{info_field, resp, wait_until, InProcess, InProcessCluster, Raw};

fn node() -> (tempfile::TempDir, InProcess) {
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(&dir.path().join("n"));
    (dir, node)
}

fn send(c: &mut Raw, words: &[&str]) {
    let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    c.send(&resp(&args));
}

fn call(c: &mut Raw, words: &[&str]) -> String {
    send(c, words);
    c.read_reply()
}

fn blocked_clients(addr: SocketAddr) -> usize {
    let mut c = rockraft_tests::connect(addr).unwrap();
    info_field(&mut c, "clients", "blocked_clients")
        .unwrap()
        .parse()
        .unwrap()
}

fn wait_blocked(addr: SocketAddr, n: usize) {
    assert!(
        wait_until(Duration::from_secs(10), || blocked_clients(addr) == n),
        "expected {n} blocked clients, have {}",
        blocked_clients(addr)
    );
}

#[test]
fn blocking_pops_reply_as_redis_and_time_out() {
    let (_d, n) = node();
    let c = &mut Raw::connect(n.addr());
    let other = &mut n.client();
    // Data already there: no blocking.
    let _: i64 = cmd("RPUSH")
        .arg("l")
        .arg("a")
        .arg("b")
        .query(other)
        .unwrap();
    assert_eq!(
        call(c, &["BLPOP", "none", "l", "0"]),
        "*2\r\n$1\r\nl\r\n$1\r\na\r\n"
    );
    assert_eq!(
        call(c, &["BRPOP", "l", "0"]),
        "*2\r\n$1\r\nl\r\n$1\r\nb\r\n"
    );
    let _: i64 = cmd("ZADD")
        .arg("z")
        .arg(1.5)
        .arg("m")
        .arg(2)
        .arg("n")
        .query(other)
        .unwrap();
    assert_eq!(
        call(c, &["BZPOPMIN", "z", "0"]),
        "*3\r\n$1\r\nz\r\n$1\r\nm\r\n$3\r\n1.5\r\n"
    );
    assert_eq!(
        call(c, &["BZMPOP", "0", "1", "z", "MAX", "COUNT", "5"]),
        "*2\r\n$1\r\nz\r\n*1\r\n*2\r\n$1\r\nn\r\n$1\r\n2\r\n"
    );
    let _: i64 = cmd("RPUSH")
        .arg("l")
        .arg("x")
        .arg("y")
        .query(other)
        .unwrap();
    assert_eq!(
        call(c, &["BLMOVE", "l", "d", "LEFT", "RIGHT", "0"]),
        "$1\r\nx\r\n"
    );
    assert_eq!(call(c, &["BRPOPLPUSH", "l", "d", "0"]), "$1\r\ny\r\n");
    assert_eq!(
        call(c, &["BLMPOP", "0", "2", "l", "d", "LEFT", "COUNT", "9"]),
        "*2\r\n$1\r\nd\r\n*2\r\n$1\r\ny\r\n$1\r\nx\r\n"
    );
    // Errors, in Redis's words.
    assert_eq!(
        call(c, &["BLPOP", "l", "x"]),
        "-ERR timeout is not a float or out of range\r\n"
    );
    assert_eq!(
        call(c, &["BLPOP", "l", "-1"]),
        "-ERR timeout is negative\r\n"
    );
    assert_eq!(
        call(c, &["BLMOVE", "l", "d", "UP", "LEFT", "0"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        call(c, &["BLMPOP", "0", "0", "l", "LEFT"]),
        "-ERR numkeys should be greater than 0\r\n"
    );
    let _: () = cmd("SET").arg("s").arg("v").query(other).unwrap();
    assert_eq!(
        call(c, &["BLPOP", "s", "0"]),
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
    // Timeouts: a null array (BLMOVE's too, as in Redis), after the time asked.
    let t = Instant::now();
    assert_eq!(call(c, &["BLPOP", "empty", "0.2"]), "*-1\r\n");
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        call(c, &["BLMOVE", "empty", "d", "LEFT", "LEFT", "0.05"]),
        "*-1\r\n"
    );
    assert_eq!(call(c, &["BZPOPMAX", "empty", "0.05"]), "*-1\r\n");
    assert_eq!(blocked_clients(n.addr()), 0);
    // Inside MULTI nothing blocks.
    assert_eq!(call(c, &["MULTI"]), "+OK\r\n");
    assert_eq!(call(c, &["BLPOP", "empty", "0"]), "+QUEUED\r\n");
    assert_eq!(
        call(c, &["BLMOVE", "empty", "d", "LEFT", "LEFT", "0"]),
        "+QUEUED\r\n"
    );
    assert_eq!(call(c, &["EXEC"]), "*2\r\n*-1\r\n$-1\r\n");
}

#[test]
fn a_push_wakes_the_blocked_clients_in_the_order_they_blocked() {
    let (_d, n) = node();
    let mut waiters: Vec<Raw> = Vec::new();
    for i in 0..3 {
        let mut c = Raw::connect(n.addr());
        send(&mut c, &["BLPOP", "q", "0"]);
        wait_blocked(n.addr(), i + 1);
        waiters.push(c);
    }
    // One push of three: the first blocked gets the first element, and so on.
    let other = &mut n.client();
    let _: i64 = cmd("RPUSH")
        .arg("q")
        .arg("e1")
        .arg("e2")
        .arg("e3")
        .query(other)
        .unwrap();
    for (i, c) in waiters.iter_mut().enumerate() {
        assert_eq!(
            c.read_reply(),
            format!("*2\r\n$1\r\nq\r\n$2\r\ne{}\r\n", i + 1),
            "waiter {i}"
        );
    }
    wait_blocked(n.addr(), 0);
    let len: i64 = cmd("LLEN").arg("q").query(other).unwrap();
    assert_eq!(len, 0);
}

#[test]
fn one_element_goes_to_exactly_one_of_two_waiters() {
    let (_d, n) = node();
    let mut a = Raw::connect(n.addr());
    let mut b = Raw::connect(n.addr());
    send(&mut a, &["BRPOP", "q", "2"]);
    wait_blocked(n.addr(), 1);
    send(&mut b, &["BRPOP", "q", "2"]);
    wait_blocked(n.addr(), 2);
    let other = &mut n.client();
    let _: i64 = cmd("LPUSH").arg("q").arg("only").query(other).unwrap();
    let (ra, rb) = (a.read_reply(), b.read_reply());
    let got = "*2\r\n$1\r\nq\r\n$4\r\nonly\r\n";
    assert!(
        (ra == got && rb == "*-1\r\n") || (rb == got && ra == "*-1\r\n"),
        "a: {ra:?} b: {rb:?}"
    );
    // The first blocked was first served.
    assert_eq!(ra, got);
}

#[test]
fn client_unblock_ends_a_wait_and_a_leaving_client_takes_nothing() {
    let (_d, n) = node();
    let mut a = Raw::connect(n.addr());
    let id: i64 = call(&mut a, &["CLIENT", "ID"])
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap();
    let other = &mut n.client();
    send(&mut a, &["BLPOP", "q", "0"]);
    wait_blocked(n.addr(), 1);
    let r: i64 = cmd("CLIENT").arg("UNBLOCK").arg(id).query(other).unwrap();
    assert_eq!(r, 1);
    assert_eq!(a.read_reply(), "*-1\r\n");
    send(&mut a, &["BZPOPMIN", "z", "0"]);
    wait_blocked(n.addr(), 1);
    let r: i64 = cmd("CLIENT")
        .arg("UNBLOCK")
        .arg(id)
        .arg("ERROR")
        .query(other)
        .unwrap();
    assert_eq!(r, 1);
    assert_eq!(
        a.read_reply(),
        "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    );
    let r: i64 = cmd("CLIENT").arg("UNBLOCK").arg(id).query(other).unwrap();
    assert_eq!(r, 0, "not blocked any more");
    let err = cmd("CLIENT")
        .arg("UNBLOCK")
        .arg(id)
        .arg("NOW")
        .query::<i64>(other)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("reason should be TIMEOUT or ERROR"),
        "{err}"
    );

    // A client that disconnects while blocked leaves the queue: the element stays.
    send(&mut a, &["BLPOP", "gone", "0"]);
    wait_blocked(n.addr(), 1);
    drop(a);
    wait_blocked(n.addr(), 0);
    let _: i64 = cmd("LPUSH").arg("gone").arg("kept").query(other).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let left: Vec<String> = cmd("LRANGE")
        .arg("gone")
        .arg(0)
        .arg(-1)
        .query(other)
        .unwrap();
    assert_eq!(left, vec!["kept".to_string()]);
}

#[test]
fn a_blocked_client_is_redirected_when_its_node_stops_leading() {
    let cluster = InProcessCluster::start(3);
    let leader = cluster.leader();
    let follower = (leader + 1) % 3;
    let mut c = Raw::connect(cluster.addr(leader));
    send(&mut c, &["BLPOP", "q", "0"]);
    wait_blocked(cluster.addr(leader), 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.leader() != follower {
        assert!(Instant::now() < deadline, "no failover");
        let _ = cmd("CLUSTER")
            .arg("FAILOVER")
            .query::<String>(&mut cluster.client(follower));
        std::thread::sleep(Duration::from_millis(200));
    }
    let reply = c.read_reply();
    let new = cluster.addr(follower);
    assert!(
        reply.starts_with("-MOVED ")
            && reply
                .trim_end()
                .ends_with(&format!("{}:{}", new.ip(), new.port())),
        "{reply:?}"
    );
    // A cluster client follows the redirect and is served there.
    let mut c = Raw::connect(new);
    send(&mut c, &["BLPOP", "q", "0"]);
    wait_blocked(new, 1);
    let _: i64 = cmd("RPUSH")
        .arg("q")
        .arg("v")
        .query(&mut cluster.client(follower))
        .unwrap();
    assert_eq!(c.read_reply(), "*2\r\n$1\r\nq\r\n$1\r\nv\r\n");
    assert!(cluster.wait_converged(Duration::from_secs(30)));
}

/// WAIT counts the other members holding the connection's writes: both followers of a
/// three-node group, one once the other is stopped (after its timeout), never blocking inside
/// MULTI; a follower refuses it as a Redis replica does.
#[test]
fn wait_counts_the_replicas_that_hold_the_writes() {
    let (_d, n) = node();
    let c = &mut Raw::connect(n.addr());
    assert_eq!(call(c, &["WAIT", "0", "0"]), ":0\r\n");
    assert_eq!(call(c, &["WAIT", "1", "50"]), ":0\r\n");
    assert_eq!(
        call(c, &["WAIT", "x", "0"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        call(c, &["WAIT", "1", "-1"]),
        "-ERR timeout is negative\r\n"
    );
    assert_eq!(
        call(c, &["WAIT", "1", "1.5"]),
        "-ERR timeout is not an integer or out of range\r\n"
    );

    let mut cluster = InProcessCluster::start(3);
    let leader = cluster.leader();
    let c = &mut Raw::connect(cluster.addr(leader));
    assert_eq!(call(c, &["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(call(c, &["WAIT", "2", "10000"]), ":2\r\n");
    let started = Instant::now();
    assert_eq!(call(c, &["WAIT", "3", "300"]), ":2\r\n");
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Inside MULTI it answers at once, even with no timeout.
    assert_eq!(call(c, &["MULTI"]), "+OK\r\n");
    assert_eq!(call(c, &["WAIT", "3", "0"]), "+QUEUED\r\n");
    assert_eq!(call(c, &["EXEC"]), "*1\r\n:2\r\n");
    let follower = (leader + 1) % 3;
    let f = &mut Raw::connect(cluster.addr(follower));
    assert!(call(f, &["WAIT", "1", "0"])
        .starts_with("-ERR WAIT cannot be used with replica instances."));
    // With one follower gone, a new write is on one replica only.
    drop(cluster.nodes[follower].take().unwrap().stop());
    assert_eq!(call(c, &["SET", "k", "w"]), "+OK\r\n");
    assert_eq!(call(c, &["WAIT", "2", "500"]), ":1\r\n");
    assert_eq!(call(c, &["WAIT", "1", "0"]), ":1\r\n");
}
