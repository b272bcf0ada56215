//! Clusters of real `rockraft-server` processes: `redis-cli -c`, the `redis` crate's cluster
//! client through a leader kill, quorum loss on a 5-node cluster, and a full restart.

use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;
use redis::{cmd, Commands};
use rockraft_tests::{info_field, run_tool, wait_until, ProcessCluster};

#[test]
fn redis_cli_follows_moved_from_a_follower() {
    let cluster = ProcessCluster::start(3);
    let l = cluster.leader();
    let f = (l + 1) % 3;
    let port = cluster.ports[f].0.to_string();
    let (ok, out) = run_tool(
        "redis-cli",
        &["-c", "-p", &port, "SET", "greeting", "hello"],
        None,
    );
    assert!(ok && out.trim() == "OK", "{out}");
    let (ok, out) = run_tool("redis-cli", &["-c", "-p", &port, "GET", "greeting"], None);
    assert!(ok && out.trim() == "hello", "{out}");
    // Without -c the redirect is shown, as with Redis Cluster.
    let (_, out) = run_tool("redis-cli", &["-p", &port, "GET", "greeting"], None);
    assert!(out.contains("MOVED"), "{out}");
}

/// Also the figure for the closing note: time from `kill -9` of the leader to the first
/// successful write through the cluster client, median of 5 rounds.
#[test]
fn cluster_client_rides_through_leader_kills() {
    let mut cluster = ProcessCluster::start(3);
    let client = ClusterClient::builder(cluster.urls())
        .retries(20)
        .min_retry_wait(20)
        .max_retry_wait(200)
        .connection_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut c = client.get_connection().unwrap();
    let mut next = 0i64;
    let mut write = |c: &mut redis::cluster::ClusterConnection, deadline: Duration| {
        let started = Instant::now();
        loop {
            let r: redis::RedisResult<()> = c.set(format!("k{next}"), next);
            if r.is_ok() {
                next += 1;
                return;
            }
            assert!(
                started.elapsed() < deadline,
                "write {next} never succeeded: {r:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
            if let Ok(fresh) = client.get_connection() {
                *c = fresh;
            }
        }
    };
    for _ in 0..100 {
        write(&mut c, Duration::from_secs(10));
    }
    let mut took = Vec::new();
    for round in 0..5 {
        let l = cluster.leader();
        cluster.kill9(l);
        let killed = Instant::now();
        write(&mut c, Duration::from_secs(30));
        took.push(killed.elapsed());
        for _ in 0..50 {
            write(&mut c, Duration::from_secs(10));
        }
        // Bring the node back and let it catch up before the next round.
        cluster.restart(l);
        let leader = cluster.leader();
        let mut lc = rockraft_tests::connect(cluster.addr(leader)).unwrap();
        assert!(
            wait_until(Duration::from_secs(30), || {
                let online = (0..2).all(|i| {
                    info_field(&mut lc, "replication", &format!("slave{i}"))
                        .is_some_and(|s| s.contains("state=online") && s.ends_with("lag=0"))
                });
                online
            }),
            "round {round}: the restarted node did not catch up"
        );
    }
    took.sort();
    eprintln!(
        "leader kill -> first successful write (5 rounds): {took:?}; median {:?}",
        took[2]
    );
    assert!(took[2] < Duration::from_secs(10), "{took:?}");
    for i in 0..next {
        let v: i64 = c.get(format!("k{i}")).unwrap();
        assert_eq!(v, i, "acknowledged write k{i} lost");
    }
}

#[test]
fn five_nodes_survive_two_failures_and_stop_writing_at_three() {
    let mut cluster = ProcessCluster::start(5);
    let l = cluster.leader();
    let mut c = rockraft_tests::connect(cluster.addr(l)).unwrap();
    let _: () = cmd("SET").arg("k").arg("v0").query(&mut c).unwrap();
    // Kill two followers: the leader keeps its quorum of three.
    let followers: Vec<usize> = (0..5).filter(|&i| i != l).collect();
    cluster.kill9(followers[0]);
    cluster.kill9(followers[1]);
    let _: () = cmd("SET").arg("k").arg("v1").query(&mut c).unwrap();
    let v: String = cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v, "v1");
    // A third failure leaves two of five: no write may be acknowledged.
    cluster.kill9(followers[2]);
    let r: redis::RedisResult<()> = cmd("SET").arg("k").arg("v2").query(&mut c);
    assert!(r.is_err(), "a write was acknowledged without a quorum");
    // Once the leader notices (check quorum) it steps down: CLUSTERDOWN, never a wrong answer.
    let mut c2 = rockraft_tests::connect(cluster.addr(l)).unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        match cmd("GET").arg("k").query::<String>(&mut c2) {
            Err(e) => matches!(e.code(), Some("CLUSTERDOWN") | Some("MOVED")),
            Ok(v) => {
                assert!(v == "v1" || v == "v2", "wrong answer {v}");
                false
            }
        }
    }));
    // Bring one back: quorum again, and the value is one that was written.
    cluster.restart(followers[2]);
    let leader = cluster.leader();
    let mut c = rockraft_tests::connect(cluster.addr(leader)).unwrap();
    assert!(wait_until(Duration::from_secs(20), || cmd("GET")
        .arg("k")
        .query::<String>(&mut c)
        .is_ok()));
    let v: String = cmd("GET").arg("k").query(&mut c).unwrap();
    assert!(v == "v1" || v == "v2", "{v}");
}

#[test]
fn restarting_every_node_keeps_data_and_membership() {
    let mut cluster = ProcessCluster::start(3);
    let l = cluster.leader();
    let mut c = rockraft_tests::connect(cluster.addr(l)).unwrap();
    for i in 0..100 {
        let _: () = cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query(&mut c)
            .unwrap();
    }
    drop(c);
    for i in 0..3 {
        cluster.kill9(i);
    }
    for i in 0..3 {
        cluster.restart(i);
    }
    let l = cluster.leader();
    let mut c = rockraft_tests::connect(cluster.addr(l)).unwrap();
    assert_eq!(
        info_field(&mut c, "raft", "raft_voters").as_deref(),
        Some("3")
    );
    assert!(wait_until(Duration::from_secs(10), || cmd("GET")
        .arg("k0")
        .query::<i64>(&mut c)
        .is_ok()));
    for i in 0..100 {
        let v: i64 = cmd("GET").arg(format!("k{i}")).query(&mut c).unwrap();
        assert_eq!(v, i);
    }
    let nodes: String = cmd("CLUSTER").arg("NODES").query(&mut c).unwrap();
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
}

/// Invariant 8: a write pending when its leader can no longer commit is never reported as
/// failed. It is answered "outcome unknown" after the write timeout, and the cluster converges
/// whichever way the entry went.
#[test]
fn a_write_that_cannot_commit_is_reported_unknown_not_failed() {
    let cluster = ProcessCluster::start_with(3, &["--write-timeout-ms", "1000"]);
    let l = cluster.leader();
    let followers: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    let mut c = rockraft_tests::connect(cluster.addr(l)).unwrap();
    let _: () = cmd("SET").arg("k").arg("before").query(&mut c).unwrap();
    for &f in &followers {
        let node = cluster.nodes[f].as_ref().unwrap();
        assert!(
            node.pause(),
            "node {f} did not stop: {:?}",
            node.thread_states()
        );
    }
    let r: redis::RedisResult<()> = cmd("SET").arg("k").arg("pending").query(&mut c);
    let Err(err) = r else {
        let raft: Vec<Option<String>> = (0..3)
            .map(|i| {
                let node = cluster.nodes[i].as_ref().unwrap();
                let states: String = node.thread_states().into_iter().collect();
                let info = if followers.contains(&i) {
                    String::new()
                } else {
                    rockraft_tests::connect(cluster.addr(i))
                        .and_then(|mut c| cmd("INFO").arg("raft").query::<String>(&mut c).ok())
                        .unwrap_or_default()
                };
                Some(format!("node {i} threads {states}\n{info}"))
            })
            .collect();
        panic!("no quorum, yet the write was acknowledged:\n{raft:#?}")
    };
    assert_eq!(err.code(), Some("TIMEOUT"), "{err}");
    assert!(err.to_string().contains("outcome unknown"), "{err}");
    for &f in &followers {
        cluster.nodes[f].as_ref().unwrap().signal("CONT");
    }
    // The cluster recovers, and every node ends with the same data: "before" or "pending".
    let leader = cluster.leader();
    let mut c = rockraft_tests::connect(cluster.addr(leader)).unwrap();
    assert!(wait_until(Duration::from_secs(20), || cmd("SET")
        .arg("after")
        .arg("1")
        .query::<()>(&mut c)
        .is_ok()));
    let v: String = cmd("GET").arg("k").query(&mut c).unwrap();
    assert!(v == "before" || v == "pending", "{v}");
    let digest = |i: usize| -> Option<String> {
        let mut c = rockraft_tests::connect(cluster.addr(i))?;
        cmd("DEBUG").arg("DIGEST").query(&mut c).ok()
    };
    assert!(wait_until(Duration::from_secs(20), || {
        let d: Vec<Option<String>> = (0..3).map(digest).collect();
        d[0].is_some() && d.iter().all(|x| *x == d[0])
    }));
}

/// SIGTERM on the leader hands leadership over before stopping: a new leader is writable at
/// once instead of after an election timeout.
#[test]
fn a_leader_stopped_gracefully_hands_over_leadership() {
    let mut cluster = ProcessCluster::start(3);
    let l = cluster.leader();
    let node = cluster.nodes[l].take().unwrap();
    let stopped = Instant::now();
    assert_eq!(node.terminate(), Some(0));
    let took = stopped.elapsed();
    // The remaining two already have a leader: no election timeout (1-2 s) to wait for.
    let others: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    // Well under the election timeout (1 s at least).
    let mut leader = None;
    wait_until(Duration::from_millis(300), || {
        leader = others.iter().copied().find(|&i| {
            rockraft_tests::connect(cluster.addr(i))
                .and_then(|mut c| info_field(&mut c, "raft", "raft_role"))
                .as_deref()
                == Some("leader")
        });
        leader.is_some()
    });
    let leader =
        leader.unwrap_or_else(|| panic!("no leader right after a graceful stop ({took:?})"));
    let mut c = rockraft_tests::connect(cluster.addr(leader)).unwrap();
    let _: () = cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
}
