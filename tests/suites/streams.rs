//! Streams on real nodes: blocking XREAD and XREADGROUP woken by XADD (every reader, every
//! group), timeouts and CLIENT UNBLOCK, a READONLY follower's blocked XREAD woken by what it
//! applies, stream keyspace events on a follower, and a consumer group that survives a leader
//! kill with every entry delivered once to the group and acknowledged exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{cmd, Value};
use rockraft_tests::{
    find_leader, info_field, resp, wait_until, InProcess, InProcessCluster, ProcessCluster, Raw,
};

fn call(c: &mut Raw, words: &[&str]) -> String {
    let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    c.send(&resp(&args));
    c.read_reply()
}

fn send(c: &mut Raw, words: &[&str]) {
    let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    c.send(&resp(&args));
}

fn wait_blocked(addr: SocketAddr, n: usize) {
    let blocked = || {
        let mut c = rockraft_tests::connect(addr).unwrap();
        info_field(&mut c, "clients", "blocked_clients")
            .unwrap()
            .parse::<usize>()
            .unwrap()
    };
    assert!(
        wait_until(Duration::from_secs(10), || blocked() == n),
        "expected {n} blocked clients, have {}",
        blocked()
    );
}

#[test]
fn blocked_readers_of_every_kind_are_woken_by_one_xadd() {
    let dir = tempfile::tempdir().unwrap();
    let n = InProcess::start(&dir.path().join("n"));
    let mut admin = Raw::connect(n.addr());
    assert_eq!(
        call(&mut admin, &["XADD", "s", "1-1", "f", "old"]),
        "$3\r\n1-1\r\n"
    );
    for g in ["g1", "g2"] {
        assert_eq!(
            call(&mut admin, &["XGROUP", "CREATE", "s", g, "$"]),
            "+OK\r\n"
        );
    }
    // Nothing new: a timed wait ends with a null array, as in Redis.
    let started = Instant::now();
    assert_eq!(
        call(&mut admin, &["XREAD", "BLOCK", "100", "STREAMS", "s", "$"]),
        "*-1\r\n"
    );
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(
        call(
            &mut admin,
            &[
                "XREADGROUP",
                "GROUP",
                "g1",
                "c",
                "BLOCK",
                "50",
                "STREAMS",
                "s",
                ">"
            ]
        ),
        "*-1\r\n"
    );
    let mut readers: Vec<Raw> = (0..4).map(|_| Raw::connect(n.addr())).collect();
    send(
        &mut readers[0],
        &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"],
    );
    send(
        &mut readers[1],
        &[
            "XREAD", "COUNT", "5", "BLOCK", "0", "STREAMS", "other", "s", "0", "1-1",
        ],
    );
    send(
        &mut readers[2],
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "a",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ],
    );
    send(
        &mut readers[3],
        &[
            "XREADGROUP",
            "GROUP",
            "g2",
            "b",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ],
    );
    wait_blocked(n.addr(), 4);
    assert_eq!(
        call(&mut admin, &["XADD", "s", "2-1", "f", "new"]),
        "$3\r\n2-1\r\n"
    );
    let entry = "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$1\r\nf\r\n$3\r\nnew\r\n";
    for r in readers.iter_mut() {
        assert_eq!(r.read_reply(), entry);
    }
    wait_blocked(n.addr(), 0);
    // Each group got it once, into its consumer's pending list.
    for (g, c) in [("g1", "a"), ("g2", "b")] {
        assert_eq!(
            call(&mut admin, &["XPENDING", "s", g]),
            format!("*4\r\n:1\r\n$3\r\n2-1\r\n$3\r\n2-1\r\n*1\r\n*2\r\n$1\r\n{c}\r\n$1\r\n1\r\n")
        );
    }
    // CLIENT UNBLOCK ends a blocked XREADGROUP as a timeout (or with -UNBLOCKED).
    let mut r = Raw::connect(n.addr());
    let id = call(&mut r, &["CLIENT", "ID"]);
    let id = id.trim_start_matches(':').trim();
    send(
        &mut r,
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "a",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ],
    );
    wait_blocked(n.addr(), 1);
    assert_eq!(
        call(&mut admin, &["CLIENT", "UNBLOCK", id, "ERROR"]),
        ":1\r\n"
    );
    assert_eq!(
        r.read_reply(),
        "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    );
    // A destroyed group ends its readers' waits with NOGROUP.
    send(
        &mut r,
        &[
            "XREADGROUP",
            "GROUP",
            "g2",
            "b",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ],
    );
    wait_blocked(n.addr(), 1);
    assert_eq!(
        call(&mut admin, &["XGROUP", "DESTROY", "s", "g2"]),
        ":1\r\n"
    );
    assert!(r.read_reply().starts_with("-NOGROUP "));
    // Inside MULTI nothing blocks; in a script BLOCK is refused, as in Redis.
    assert_eq!(call(&mut admin, &["MULTI"]), "+OK\r\n");
    assert_eq!(
        call(&mut admin, &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]),
        "+QUEUED\r\n"
    );
    assert_eq!(call(&mut admin, &["EXEC"]), "*1\r\n*-1\r\n");
    let refused = call(
        &mut admin,
        &[
            "EVAL",
            "return redis.call('xread','BLOCK','0','STREAMS','s','$')",
            "0",
        ],
    );
    assert!(
        refused.starts_with("-ERR xread command is not allowed with BLOCK option from scripts"),
        "{refused}"
    );
}

#[test]
fn a_readonly_follower_wakes_its_blocked_xread_and_notifies_stream_events() {
    let cluster = InProcessCluster::start(3);
    let leader = cluster.leader();
    let follower = (leader + 1) % 3;
    let mut events = Raw::connect(cluster.addr(follower));
    assert_eq!(
        call(
            &mut events,
            &["CONFIG", "SET", "notify-keyspace-events", "Et"]
        ),
        "+OK\r\n"
    );
    send(&mut events, &["SUBSCRIBE", "__keyevent@0__:xadd"]);
    assert!(events.read_reply().contains("subscribe"));
    let mut reader = Raw::connect(cluster.addr(follower));
    assert_eq!(call(&mut reader, &["READONLY"]), "+OK\r\n");
    send(&mut reader, &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
    wait_blocked(cluster.addr(follower), 1);
    // Without READONLY, a follower redirects a blocking XREAD to the leader.
    let mut plain = Raw::connect(cluster.addr(follower));
    assert!(call(&mut plain, &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]).starts_with("-MOVED "));
    let mut w = Raw::connect(cluster.addr(leader));
    assert_eq!(
        call(&mut w, &["XADD", "s", "5-1", "k", "v"]),
        "$3\r\n5-1\r\n"
    );
    assert_eq!(
        reader.read_reply(),
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n5-1\r\n*2\r\n$1\r\nk\r\n$1\r\nv\r\n"
    );
    assert_eq!(
        events.read_reply(),
        "*3\r\n$7\r\nmessage\r\n$19\r\n__keyevent@0__:xadd\r\n$1\r\ns\r\n"
    );
    assert_eq!(call(&mut w, &["TYPE", "s"]), "+stream\r\n");
    assert!(cluster.wait_converged(Duration::from_secs(30)));
}

/// The IDs in an XREADGROUP or XAUTOCLAIM entry list.
fn ids_of(entries: &Value) -> Vec<String> {
    let Value::Array(items) = entries else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|e| match e {
            Value::Array(pair) => match pair.first() {
                Some(Value::BulkString(id)) => Some(String::from_utf8_lossy(id).into_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// What the consumers saw: deliveries of new entries (`>`), redeliveries (claims), and the
/// acknowledgements that removed an entry (XACK answered 1) or whose outcome is unknown.
#[derive(Default)]
struct Seen {
    delivered: BTreeMap<String, usize>,
    acked: BTreeMap<String, usize>,
    unsure: BTreeSet<String>,
    /// What XAUTOCLAIM handed over, and what c1 left unacknowledged on purpose.
    claimed: BTreeSet<String>,
    skipped: BTreeSet<String>,
}

fn leader_connection(addrs: &Mutex<Vec<Option<SocketAddr>>>) -> Option<redis::Connection> {
    let addrs = addrs.lock().unwrap().clone();
    let i = find_leader(&addrs)?;
    let c = rockraft_tests::connect(addrs[i]?)?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    Some(c)
}

fn consume(name: &str, addrs: &Mutex<Vec<Option<SocketAddr>>>, seen: &Mutex<Seen>, total: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut conn: Option<redis::Connection> = None;
    let mut rounds = 0u64;
    while Instant::now() < deadline {
        let settled = {
            let s = seen.lock().unwrap();
            s.acked.len() + s.unsure.len()
        };
        if settled >= total {
            let Some(c) = conn.as_mut() else {
                conn = leader_connection(addrs);
                continue;
            };
            // Every unsure acknowledgement settled: the pending list is what tells.
            let pending: Result<Value, _> = cmd("XPENDING").arg("s").arg("g").query(c);
            if let Ok(Value::Array(p)) = pending {
                if p.first() == Some(&Value::Int(0)) {
                    return;
                }
            }
        }
        rounds += 1;
        if rounds.is_multiple_of(50) {
            let s = seen.lock().unwrap();
            eprintln!(
                "{name}: round {rounds}, {} delivered, {} acked, {} unsure",
                s.delivered.len(),
                s.acked.len(),
                s.unsure.len()
            );
        }
        let Some(c) = conn.as_mut() else {
            conn = leader_connection(addrs);
            if conn.is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            continue;
        };
        // New entries, then whatever a lost reply left pending for more than a second.
        let fresh: Result<Value, _> = cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg(name)
            .arg("COUNT")
            .arg(5)
            .arg("BLOCK")
            .arg(200)
            .arg("STREAMS")
            .arg("s")
            .arg(">")
            .query(c);
        let claimed: Result<Value, _> = match &fresh {
            Ok(_) => cmd("XAUTOCLAIM")
                .arg("s")
                .arg("g")
                .arg(name)
                .arg(1000)
                .arg("0-0")
                .arg("COUNT")
                .arg(20)
                .query(c),
            Err(e) => Err(e.clone()),
        };
        let (fresh, claimed) = match (fresh, claimed) {
            (Ok(f), Ok(cl)) => (f, cl),
            _ => {
                conn = None;
                continue;
            }
        };
        let mut work = Vec::new();
        if let Value::Array(streams) = &fresh {
            for s in streams {
                if let Value::Array(kv) = s {
                    let ids = ids_of(&kv[1]);
                    let mut seen = seen.lock().unwrap();
                    for id in &ids {
                        *seen.delivered.entry(id.clone()).or_default() += 1;
                    }
                    // c1 "crashes" before acknowledging every tenth entry: it stays pending
                    // until a claim hands it on.
                    let skipped = |id: &String| {
                        name == "c1"
                            && id.trim_end_matches("-1").parse::<usize>().unwrap() % 10 == 0
                    };
                    for id in ids {
                        if skipped(&id) {
                            seen.skipped.insert(id);
                        } else {
                            work.push(id);
                        }
                    }
                }
            }
        }
        if let Value::Array(parts) = &claimed {
            let ids = ids_of(&parts[1]);
            seen.lock().unwrap().claimed.extend(ids.iter().cloned());
            work.extend(ids);
        }
        for id in work {
            let ack: Result<i64, _> = cmd("XACK").arg("s").arg("g").arg(&id).query(c);
            let mut seen = seen.lock().unwrap();
            match ack {
                Ok(1) => *seen.acked.entry(id).or_default() += 1,
                Ok(_) => {}
                Err(_) => {
                    seen.unsure.insert(id);
                    conn = None;
                    break;
                }
            }
        }
    }
    panic!("consumer {name} did not finish");
}

fn produce(addrs: &Mutex<Vec<Option<SocketAddr>>>, from: usize, to: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = from;
    while i <= to {
        assert!(Instant::now() < deadline, "could not add entry {i}");
        let Some(mut c) = leader_connection(addrs) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        while i <= to {
            // Explicit IDs: a retried XADD whose first try was applied is refused, not doubled.
            let r: redis::RedisResult<String> = cmd("XADD")
                .arg("s")
                .arg(format!("{i}-1"))
                .arg("n")
                .arg(i)
                .query(&mut c);
            match r {
                Ok(_) => i += 1,
                Err(e) if e.to_string().contains("equal or smaller") => i += 1,
                Err(_) => break,
            }
        }
    }
}

#[test]
fn a_consumer_group_survives_a_leader_kill_with_every_entry_acknowledged_once() {
    const TOTAL: usize = 200;
    let mut cluster = ProcessCluster::start(3);
    let addrs = Arc::new(Mutex::new(cluster.addrs()));
    let mut c = rockraft_tests::connect(cluster.addr(cluster.leader())).unwrap();
    let _: String = cmd("XGROUP")
        .arg("CREATE")
        .arg("s")
        .arg("g")
        .arg("$")
        .arg("MKSTREAM")
        .query(&mut c)
        .unwrap();
    produce(&addrs, 1, TOTAL / 2);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let consumers: Vec<_> = ["c1", "c2"]
        .into_iter()
        .map(|name| {
            let (addrs, seen) = (addrs.clone(), seen.clone());
            std::thread::spawn(move || consume(name, &addrs, &seen, TOTAL))
        })
        .collect();
    // kill -9 the leader while the group is being consumed.
    assert!(wait_until(Duration::from_secs(30), || {
        seen.lock().unwrap().delivered.len() >= TOTAL / 4
    }));
    let leader = cluster.leader();
    addrs.lock().unwrap()[leader] = None;
    cluster.kill9(leader);
    produce(&addrs, TOTAL / 2 + 1, TOTAL);
    for t in consumers {
        t.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    let all: BTreeSet<String> = (1..=TOTAL).map(|i| format!("{i}-1")).collect();
    // No entry was delivered twice as new to the group.
    let twice: Vec<_> = seen.delivered.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    // Every entry acknowledged, none twice (an XACK whose reply was lost may have been it).
    let acked_twice: Vec<_> = seen.acked.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        acked_twice.is_empty(),
        "acknowledged twice: {acked_twice:?}"
    );
    let settled: BTreeSet<String> = seen
        .acked
        .keys()
        .chain(seen.unsure.iter())
        .cloned()
        .collect();
    assert_eq!(settled, all);
    // What c1 left pending was claimed by XAUTOCLAIM.
    assert!(!seen.skipped.is_empty());
    let unclaimed: Vec<_> = seen.skipped.difference(&seen.claimed).collect();
    assert!(
        unclaimed.is_empty(),
        "left pending, never claimed: {unclaimed:?}"
    );
    // The survivors agree: nothing pending, everything read.
    let now = addrs.lock().unwrap().clone();
    let mut c =
        rockraft_tests::connect(now[find_leader(&now).expect("a leader")].unwrap()).unwrap();
    let groups: Value = cmd("XINFO").arg("GROUPS").arg("s").query(&mut c).unwrap();
    let Value::Array(groups) = &groups else {
        panic!("{groups:?}")
    };
    let Value::Array(fields) = &groups[0] else {
        panic!("{groups:?}")
    };
    let field = |name: &str| {
        let at = fields
            .iter()
            .position(|f| *f == Value::BulkString(name.as_bytes().to_vec()));
        fields[at.expect(name) + 1].clone()
    };
    assert_eq!(field("entries-read"), Value::Int(TOTAL as i64));
    assert_eq!(field("lag"), Value::Int(0));
    assert_eq!(field("pending"), Value::Int(0));
    let pending: Value = cmd("XPENDING").arg("s").arg("g").query(&mut c).unwrap();
    assert!(
        matches!(&pending, Value::Array(p) if p[0] == Value::Int(0)),
        "{pending:?}"
    );
    let live: Vec<SocketAddr> = now.into_iter().flatten().collect();
    assert!(rockraft_tests::converged(&live, Duration::from_secs(30)));
}
