//! Pub/sub on real nodes: a PUBLISH sent to any node reaches the subscribers of every node
//! (over the peer transport), Redis's subscribed-context rules and reply shapes in RESP2 and
//! RESP3, and a stalled subscriber cut off at its output limit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use redis::cmd;
use rockraft_tests::{InProcess, InProcessCluster};

fn raw(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn request(args: &[&[u8]]) -> Vec<u8> {
    rockraft_resp::encode_request(args)
}

/// Reads until `expected` has arrived (exactly: nothing else first), within 10 s.
fn expect(s: &mut TcpStream, expected: &[u8]) {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < expected.len() && Instant::now() < deadline {
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

#[test]
fn a_publish_on_any_node_reaches_subscribers_on_every_node() {
    let cluster = InProcessCluster::start(3);
    let mut subs: Vec<TcpStream> = (0..3).map(|i| raw(cluster.addr(i))).collect();
    for s in &mut subs {
        s.write_all(&request(&[b"SUBSCRIBE", b"news"])).unwrap();
        expect(s, b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
        s.write_all(&request(&[b"PSUBSCRIBE", b"n*"])).unwrap();
        expect(s, b"*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:2\r\n");
    }
    for from in 0..3 {
        let mut c = cluster.client(from);
        let payload = format!("hello from {from}");
        // The reply counts the receivers on the node that took it: a channel and a pattern.
        let n: i64 = cmd("PUBLISH")
            .arg("news")
            .arg(&payload)
            .query(&mut c)
            .unwrap();
        assert_eq!(n, 2);
        for s in &mut subs {
            let msg = format!(
                "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n${}\r\n{payload}\r\n*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n${}\r\n{payload}\r\n",
                payload.len(),
                payload.len()
            );
            expect(s, msg.as_bytes());
        }
    }
    // Shard channels are their own namespace.
    let mut shard = raw(cluster.addr(2));
    shard
        .write_all(&request(&[b"SSUBSCRIBE", b"orders"]))
        .unwrap();
    expect(
        &mut shard,
        b"*3\r\n$10\r\nssubscribe\r\n$6\r\norders\r\n:1\r\n",
    );
    let mut c = cluster.client(0);
    let n: i64 = cmd("SPUBLISH")
        .arg("orders")
        .arg("o1")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 0);
    expect(
        &mut shard,
        b"*3\r\n$8\r\nsmessage\r\n$6\r\norders\r\n$2\r\no1\r\n",
    );
    let counts: Vec<redis::Value> = cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("news")
        .arg("none")
        .query(&mut cluster.client(1))
        .unwrap();
    assert_eq!(counts.len(), 4);
    let numpat: i64 = cmd("PUBSUB")
        .arg("NUMPAT")
        .query(&mut cluster.client(1))
        .unwrap();
    assert_eq!(numpat, 1);
}

#[test]
fn subscribed_connections_follow_redis_s_rules() {
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(&dir.path().join("n"));
    let mut s = raw(node.addr());
    s.write_all(&request(&[b"SUBSCRIBE", b"a", b"b"])).unwrap();
    expect(
        &mut s,
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n",
    );
    s.write_all(&request(&[b"GET", b"k"])).unwrap();
    expect(&mut s, b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n");
    s.write_all(&request(&[b"PING"])).unwrap();
    expect(&mut s, b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    s.write_all(&request(&[b"UNSUBSCRIBE"])).unwrap();
    expect(
        &mut s,
        b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n",
    );
    s.write_all(&request(&[b"UNSUBSCRIBE"])).unwrap();
    expect(&mut s, b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
    // Out of the subscribed context, commands run again.
    s.write_all(&request(&[b"PING"])).unwrap();
    expect(&mut s, b"+PONG\r\n");

    // RESP3: confirmations and messages are pushes, and any command may run meanwhile.
    let mut r3 = raw(node.addr());
    r3.write_all(&request(&[b"HELLO", b"3"])).unwrap();
    let mut buf = [0u8; 4096];
    let _ = r3.read(&mut buf).unwrap();
    r3.write_all(&request(&[b"SUBSCRIBE", b"c"])).unwrap();
    expect(&mut r3, b">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n");
    r3.write_all(&request(&[b"PING"])).unwrap();
    expect(&mut r3, b"+PONG\r\n");
    let n: i64 = cmd("PUBLISH")
        .arg("c")
        .arg("m")
        .query(&mut node.client())
        .unwrap();
    assert_eq!(n, 1);
    expect(&mut r3, b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
}

#[test]
fn a_stalled_subscriber_is_disconnected_at_its_output_limit() {
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(&dir.path().join("n"));
    let mut stalled = raw(node.addr());
    stalled
        .write_all(&request(&[b"SUBSCRIBE", b"flood"]))
        .unwrap();
    expect(
        &mut stalled,
        b"*3\r\n$9\r\nsubscribe\r\n$5\r\nflood\r\n:1\r\n",
    );
    // Publish far more than the 32 MB hard limit while the subscriber reads nothing.
    let mut c = node.client();
    let payload = vec![b'x'; 256 * 1024];
    let mut disconnected = false;
    for _ in 0..2000 {
        let n: i64 = cmd("PUBLISH")
            .arg("flood")
            .arg(&payload[..])
            .query(&mut c)
            .unwrap();
        if n == 0 {
            disconnected = true;
            break;
        }
    }
    assert!(disconnected, "the stalled subscriber was never cut off");
    let subs: Vec<redis::Value> = cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("flood")
        .query(&mut c)
        .unwrap();
    assert_eq!(subs[1], redis::Value::Int(0));
    // The node still serves.
    let pong: String = cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn keyspace_events_reach_subscribers_on_followers_when_they_apply() {
    let cluster = InProcessCluster::start(3);
    let leader = cluster.leader();
    let follower = (0..3).find(|&i| i != leader).unwrap();
    for i in 0..3 {
        let _: () = cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg("KEA")
            .query(&mut cluster.client(i))
            .unwrap();
    }
    let flags: Vec<String> = cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query(&mut cluster.client(follower))
        .unwrap();
    assert_eq!(flags, vec!["notify-keyspace-events", "AKE"]);
    let mut s = raw(cluster.addr(follower));
    s.write_all(&request(&[b"SUBSCRIBE", b"__keyspace@0__:job"]))
        .unwrap();
    expect(
        &mut s,
        b"*3\r\n$9\r\nsubscribe\r\n$18\r\n__keyspace@0__:job\r\n:1\r\n",
    );
    let mut c = cluster.client(leader);
    let _: () = cmd("RPUSH").arg("job").arg("a").query(&mut c).unwrap();
    let _: () = cmd("LPOP").arg("job").query(&mut c).unwrap();
    let _: () = cmd("SET")
        .arg("job")
        .arg("x")
        .arg("PX")
        .arg(50)
        .query(&mut c)
        .unwrap();
    let frame = |event: &str| {
        format!(
            "*3\r\n$7\r\nmessage\r\n$18\r\n__keyspace@0__:job\r\n${}\r\n{event}\r\n",
            event.len()
        )
    };
    let expected: String = ["rpush", "lpop", "del", "set", "expire", "expired"]
        .iter()
        .map(|e| frame(e))
        .collect();
    expect(&mut s, expected.as_bytes());
}

fn hello3(s: &mut TcpStream) {
    s.write_all(&request(&[b"HELLO", b"3"])).unwrap();
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf).unwrap();
}

/// Sends a request and expects exactly `reply`.
fn say(s: &mut TcpStream, args: &[&[u8]], reply: &[u8]) {
    s.write_all(&request(args)).unwrap();
    expect(s, reply);
}

fn invalidate(key: &str) -> String {
    format!(
        ">2\r\n$10\r\ninvalidate\r\n*1\r\n${}\r\n{key}\r\n",
        key.len()
    )
}

#[test]
fn tracking_clients_are_invalidated_by_the_node_that_applies_the_write() {
    let cluster = InProcessCluster::start(3);
    let leader = cluster.leader();
    let follower = (0..3).find(|&i| i != leader).unwrap();
    let mut w = cluster.client(leader);

    // Default mode, RESP3, on the leader: a key read is invalidated once, by the next write.
    let mut t = raw(cluster.addr(leader));
    hello3(&mut t);
    say(&mut t, &[b"CLIENT", b"TRACKING", b"ON"], b"+OK\r\n");
    say(&mut t, &[b"GET", b"k"], b"_\r\n");
    let _: () = cmd("SET").arg("k").arg("1").query(&mut w).unwrap();
    expect(&mut t, invalidate("k").as_bytes());
    let _: () = cmd("SET").arg("k").arg("2").query(&mut w).unwrap();
    say(&mut t, &[b"GET", b"z"], b"_\r\n");
    let _: () = cmd("SET").arg("z").arg("1").query(&mut w).unwrap();
    // k was not read again: only z is invalidated.
    expect(&mut t, invalidate("z").as_bytes());

    // A READONLY client on a follower is invalidated when the follower applies the write.
    let mut f = raw(cluster.addr(follower));
    hello3(&mut f);
    say(&mut f, &[b"READONLY"], b"+OK\r\n");
    say(&mut f, &[b"CLIENT", b"TRACKING", b"ON"], b"+OK\r\n");
    say(&mut f, &[b"GET", b"k"], b"$1\r\n2\r\n");
    let _: () = cmd("SET").arg("k").arg("3").query(&mut w).unwrap();
    expect(&mut f, invalidate("k").as_bytes());

    // RESP2 through a redirect to a connection subscribed to __redis__:invalidate.
    let mut target = raw(cluster.addr(leader));
    target.write_all(&request(&[b"CLIENT", b"ID"])).unwrap();
    let mut buf = [0u8; 64];
    let n = target.read(&mut buf).unwrap();
    let id = String::from_utf8_lossy(&buf[1..n - 2]).to_string();
    target
        .write_all(&request(&[b"SUBSCRIBE", b"__redis__:invalidate"]))
        .unwrap();
    expect(
        &mut target,
        b"*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n",
    );
    let mut r2 = cluster.client(leader);
    let _: () = cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("REDIRECT")
        .arg(&id)
        .query(&mut r2)
        .unwrap();
    let _: Option<String> = cmd("GET").arg("r").query(&mut r2).unwrap();
    let _: () = cmd("SET").arg("r").arg("1").query(&mut w).unwrap();
    expect(
        &mut target,
        b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nr\r\n",
    );

    // BCAST with a prefix: every change under it, nothing else.
    let mut b = raw(cluster.addr(leader));
    hello3(&mut b);
    say(
        &mut b,
        &[b"CLIENT", b"TRACKING", b"ON", b"BCAST", b"PREFIX", b"user:"],
        b"+OK\r\n",
    );
    let _: () = cmd("SET").arg("other").arg("1").query(&mut w).unwrap();
    let _: () = cmd("SET").arg("user:1").arg("1").query(&mut w).unwrap();
    expect(&mut b, invalidate("user:1").as_bytes());
    // FLUSHALL invalidates everything.
    let _: () = cmd("FLUSHALL").query(&mut w).unwrap();
    expect(&mut b, b">2\r\n$10\r\ninvalidate\r\n_\r\n");
}

#[test]
fn client_libraries_read_messages_and_resp3_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(&dir.path().join("n"));
    let addr = node.addr();
    // redis-py style: a RESP2 connection in the subscribed context.
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut con = client.get_connection().unwrap();
    let mut ps = con.as_pubsub();
    ps.subscribe("jobs").unwrap();
    ps.psubscribe("job*").unwrap();
    ps.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n: i64 = cmd("PUBLISH")
        .arg("jobs")
        .arg("run")
        .query(&mut node.client())
        .unwrap();
    assert_eq!(n, 2);
    let m = ps.get_message().unwrap();
    assert_eq!(
        (m.get_channel_name(), m.get_payload::<String>().unwrap()),
        ("jobs", "run".into())
    );
    let m = ps.get_message().unwrap();
    assert_eq!(m.get_pattern::<String>().unwrap(), "job*");
    drop(ps);

    // ioredis/node-redis style: RESP3, pushes beside replies on one connection.
    let client = redis::Client::open(format!("redis://{addr}/?protocol=resp3")).unwrap();
    let mut con = client.get_connection().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    con.set_push_sender(tx);
    con.subscribe_resp3("events").unwrap();
    let _: () = cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .query(&mut con)
        .unwrap();
    let _: Option<String> = cmd("GET").arg("cached").query(&mut con).unwrap();
    let mut other = node.client();
    let _: i64 = cmd("PUBLISH")
        .arg("events")
        .arg("e1")
        .query(&mut other)
        .unwrap();
    let _: () = cmd("SET").arg("cached").arg("v").query(&mut other).unwrap();
    // The pushes are read with the next replies.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut kinds = Vec::new();
    while kinds.len() < 3 && Instant::now() < deadline {
        let _: String = cmd("PING").query(&mut con).unwrap();
        while let Ok(push) = rx.try_recv() {
            kinds.push(push.kind);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        kinds,
        vec![
            redis::PushKind::Subscribe,
            redis::PushKind::Message,
            redis::PushKind::Invalidate
        ]
    );
}
