//! Faults injected into the peer transport of an in-process cluster: partitions, isolation,
//! lossy links, repeated elections. No acknowledged write may be lost, no read may be stale,
//! and a cut-off leader must never report success.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{cmd, Connection, RedisResult};
use rockraft_raftstore::filters::{Delay, DropRate};
use rockraft_tests::{connect, find_leader, info_field, wait_until, InProcessCluster};

fn set(c: &mut Connection, k: &str, v: &str) -> RedisResult<()> {
    cmd("SET").arg(k).arg(v).query(c)
}

fn get(c: &mut Connection, k: &str) -> RedisResult<Option<String>> {
    cmd("GET").arg(k).query(c)
}

#[test]
fn a_leader_cut_off_in_the_minority_never_reports_success() {
    let cluster = InProcessCluster::start(3);
    let old = cluster.leader();
    let mut c_old = connect(cluster.addr(old)).unwrap();
    set(&mut c_old, "k", "v1").unwrap();
    cluster.isolate(old);
    // Writes to the cut-off leader: none may succeed (they time out as unknown, or are
    // refused once it steps down).
    let r = set(&mut c_old, "k", "minority");
    assert!(r.is_err(), "a minority leader acknowledged a write");
    // The majority elects a leader and takes writes.
    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let mut new = None;
    assert!(wait_until(Duration::from_secs(15), || {
        new = others.iter().copied().find(|&i| {
            connect(cluster.addr(i))
                .and_then(|mut c| info_field(&mut c, "raft", "raft_role"))
                .as_deref()
                == Some("leader")
        });
        new.is_some()
    }));
    let mut c_new = connect(cluster.addr(new.unwrap())).unwrap();
    assert!(wait_until(Duration::from_secs(10), || set(
        &mut c_new, "k", "v2"
    )
    .is_ok()));
    // A linearizable read on the old leader never returns the stale v1 now that v2 is
    // acknowledged: it errors (no quorum to confirm its read index) or redirects.
    let mut c_old = connect(cluster.addr(old)).unwrap();
    if let Ok(v) = get(&mut c_old, "k") {
        assert_eq!(v.as_deref(), Some("v2"), "stale read from a cut-off leader");
    }
    cluster.heal();
    assert!(cluster.wait_converged(Duration::from_secs(20)));
    let l = cluster.leader();
    let v = get(&mut connect(cluster.addr(l)).unwrap(), "k").unwrap();
    assert_eq!(
        v.as_deref(),
        Some("v2"),
        "the unacknowledged minority write must not win"
    );
}

#[test]
fn a_lossy_network_still_makes_progress() {
    let cluster = InProcessCluster::start(3);
    cluster.add_filter(Arc::new(DropRate::new(20, 7)));
    let started = Instant::now();
    let mut acked = Vec::new();
    let mut c = None;
    while acked.len() < 200 && started.elapsed() < Duration::from_secs(60) {
        if c.is_none() {
            c = find_leader(&cluster.addrs()).and_then(|l| connect(cluster.addr(l)));
        }
        let Some(conn) = c.as_mut() else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let i = acked.len();
        match set(conn, &format!("k{i}"), &i.to_string()) {
            Ok(()) => acked.push(i),
            Err(_) => c = None,
        }
    }
    assert_eq!(acked.len(), 200, "progress under 20% message loss");
    cluster.heal();
    assert!(cluster.wait_converged(Duration::from_secs(20)));
    let l = cluster.leader();
    let mut c = connect(cluster.addr(l)).unwrap();
    for i in acked {
        assert_eq!(get(&mut c, &format!("k{i}")).unwrap(), Some(i.to_string()));
    }
}

#[test]
fn a_slow_reordering_network_stays_correct() {
    // 20-120 ms on every message (elections take 1-2 s, heartbeats 200 ms): slow, and
    // messages overtake each other.
    let cluster = InProcessCluster::start(3);
    cluster.add_filter(Arc::new(Delay::new(20, 120, 11)));
    let started = Instant::now();
    let mut c = None;
    let mut acked = 0;
    while acked < 100 && started.elapsed() < Duration::from_secs(60) {
        if c.is_none() {
            c = find_leader(&cluster.addrs()).and_then(|l| connect(cluster.addr(l)));
        }
        let Some(conn) = c.as_mut() else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        // Each acknowledged write is read back at once (linearizable read) on the same node.
        if set(conn, "k", &acked.to_string()).is_err() {
            c = None;
            continue;
        }
        match get(conn, "k") {
            Ok(v) => assert_eq!(v, Some(acked.to_string()), "stale read on a slow network"),
            Err(_) => c = None,
        }
        acked += 1;
    }
    assert_eq!(acked, 100, "progress with 20-120 ms delays");
    cluster.heal();
    assert!(cluster.wait_converged(Duration::from_secs(20)));
}

#[test]
fn repeated_elections_lose_no_acknowledged_write() {
    let cluster = InProcessCluster::start(3);
    let addrs = cluster.addrs();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let stop = stop.clone();
        let acked = acked.clone();
        std::thread::spawn(move || {
            let mut c: Option<Connection> = None;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && i < 100_000 {
                if c.is_none() {
                    c = find_leader(&addrs).and_then(|l| connect(addrs[l].unwrap()));
                    if c.is_none() {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
                let key = format!("w{i}");
                match set(c.as_mut().unwrap(), &key, "x") {
                    Ok(()) => acked.lock().unwrap().push(key),
                    Err(_) => c = None,
                }
                i += 1;
            }
        })
    };
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(400));
        let l = cluster.leader();
        cluster.isolate(l);
        std::thread::sleep(Duration::from_millis(2500));
        cluster.heal();
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(cluster.wait_converged(Duration::from_secs(20)));
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "writes made progress: {}", acked.len());
    for i in 0..3 {
        let mut c = connect(cluster.addr(i)).unwrap();
        let _: () = cmd("READONLY").query(&mut c).unwrap();
        for k in &acked {
            assert_eq!(
                get(&mut c, k).unwrap().as_deref(),
                Some("x"),
                "node {i} lost {k}"
            );
        }
    }
}
