//! Clusters of in-process nodes: replication, redirects, the CLUSTER commands, membership
//! changes (MEET, FORGET, FAILOVER) and leader loss.

use std::time::Duration;

use redis::{cmd, Connection, RedisResult};
use rockraft_tests::{info_field, wait_until, InProcess, InProcessCluster};

fn get(c: &mut Connection, k: &str) -> RedisResult<Option<String>> {
    cmd("GET").arg(k).query(c)
}

fn set(c: &mut Connection, k: &str, v: &str) -> RedisResult<()> {
    cmd("SET").arg(k).arg(v).query(c)
}

#[test]
fn three_nodes_replicate_and_followers_redirect() {
    let cluster = InProcessCluster::start(3);
    let l = cluster.leader();
    let f = (l + 1) % 3;
    let mut leader = cluster.client(l);
    for i in 0..50 {
        set(&mut leader, &format!("k{i}"), &i.to_string()).unwrap();
    }
    // A follower redirects reads and writes to the leader, with the key's slot.
    let mut follower = cluster.client(f);
    let err = set(&mut follower, "foo", "x").unwrap_err();
    let leader_addr = cluster.addr(l);
    assert_eq!(err.code(), Some("MOVED"), "{err}");
    assert_eq!(
        err.redirect_node(),
        Some((leader_addr.to_string().as_str(), 12182)),
        "{err}"
    );
    let err = get(&mut follower, "k1").unwrap_err();
    assert_eq!(err.code(), Some("MOVED"), "{err}");
    let err = cmd("FLUSHALL").query::<()>(&mut follower).unwrap_err();
    assert_eq!(
        err.redirect_node(),
        Some((leader_addr.to_string().as_str(), 0)),
        "keyless writes are redirected with slot 0: {err}"
    );
    // READONLY: local (possibly stale) reads; every follower catches up.
    let _: () = cmd("READONLY").query(&mut follower).unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        get(&mut follower, "k49").ok().flatten().as_deref() == Some("49")
    }));
    let _: () = cmd("READWRITE").query(&mut follower).unwrap();
    assert!(get(&mut follower, "k49").is_err());
    // CLUSTER views agree on who is who.
    let nodes: String = cmd("CLUSTER").arg("NODES").query(&mut follower).unwrap();
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
    let leader_id: String = cmd("CLUSTER").arg("MYID").query(&mut leader).unwrap();
    let leader_line = nodes.lines().find(|l| l.starts_with(&leader_id)).unwrap();
    assert!(
        leader_line.contains(" master - ") && leader_line.ends_with(" 0-16383"),
        "{leader_line}"
    );
    let me = nodes.lines().find(|l| l.contains("myself")).unwrap();
    assert!(me.contains(&format!("myself,slave {leader_id}")), "{me}");
    assert!(
        me.contains(&format!("127.0.0.1:{}@", cluster.addr(f).port())),
        "{me}"
    );
    let slots: Vec<(i64, i64, Vec<redis::Value>)> = {
        let v: Vec<redis::Value> = cmd("CLUSTER").arg("SLOTS").query(&mut follower).unwrap();
        v.into_iter()
            .map(|r| {
                let redis::Value::Array(items) = r else {
                    panic!()
                };
                let (a, b) = (items[0].clone(), items[1].clone());
                let (redis::Value::Int(a), redis::Value::Int(b)) = (a, b) else {
                    panic!()
                };
                (a, b, items[2..].to_vec())
            })
            .collect()
    };
    assert_eq!(slots.len(), 1);
    assert_eq!((slots[0].0, slots[0].1), (0, 16383));
    assert_eq!(slots[0].2.len(), 3, "leader first, then both followers");
    let info: String = cmd("CLUSTER").arg("INFO").query(&mut follower).unwrap();
    assert!(
        info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3"),
        "{info}"
    );
    assert_eq!(
        cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg("{user1}.a")
            .query::<i64>(&mut follower)
            .unwrap(),
        8106
    );
    let repl = info_field(&mut leader, "replication", "connected_slaves").unwrap();
    assert_eq!(repl, "2");
    let slave0 = info_field(&mut leader, "replication", "slave0").unwrap();
    assert!(
        slave0.contains("state=online") && slave0.contains("offset="),
        "{slave0}"
    );
    assert_eq!(
        info_field(&mut follower, "replication", "role").unwrap(),
        "slave"
    );
    assert_eq!(
        info_field(&mut follower, "replication", "master_port").unwrap(),
        leader_addr.port().to_string()
    );
}

#[test]
fn meet_refuses_a_node_with_keys() {
    let cluster = InProcessCluster::start(2);
    let dir = tempfile::tempdir().unwrap();
    let other = InProcess::start(&dir.path().join("x"));
    set(&mut other.client(), "mine", "1").unwrap();
    let l = cluster.leader();
    let err = cmd("CLUSTER")
        .arg("MEET")
        .arg("127.0.0.1")
        .arg(other.addr().port())
        .query::<String>(&mut cluster.client(l))
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "Node 127.0.0.1:{} is not empty. Either the node already knows other nodes",
            other.addr().port()
        )),
        "{err}"
    );
    // Nothing changed on either side.
    assert_eq!(
        get(&mut other.client(), "mine").unwrap().as_deref(),
        Some("1")
    );
    let nodes: String = cmd("CLUSTER")
        .arg("NODES")
        .query(&mut cluster.client(l))
        .unwrap();
    assert_eq!(nodes.lines().count(), 2);
    // A member of another cluster is refused too.
    let err = cmd("CLUSTER")
        .arg("MEET")
        .arg("127.0.0.1")
        .arg(cluster.addr(l).port())
        .query::<String>(&mut other.client());
    assert!(err.is_err() || nodes.lines().count() == 2);
}

#[test]
fn failover_moves_leadership_to_the_follower_asked() {
    let cluster = InProcessCluster::start(3);
    let l = cluster.leader();
    let f = (l + 1) % 3;
    set(&mut cluster.client(l), "k", "v").unwrap();
    let err = cmd("CLUSTER")
        .arg("FAILOVER")
        .query::<String>(&mut cluster.client(l))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("You should send CLUSTER FAILOVER to a replica"),
        "{err}"
    );
    let ok: String = cmd("CLUSTER")
        .arg("FAILOVER")
        .query(&mut cluster.client(f))
        .unwrap();
    assert_eq!(ok, "OK");
    assert!(wait_until(Duration::from_secs(10), || {
        info_field(&mut cluster.client(f), "raft", "raft_role").as_deref() == Some("leader")
    }));
    // The new leader serves the old data and new writes.
    let mut c = cluster.client(f);
    assert!(wait_until(Duration::from_secs(5), || get(&mut c, "k").is_ok()));
    assert_eq!(get(&mut c, "k").unwrap().as_deref(), Some("v"));
    set(&mut c, "k2", "v2").unwrap();
}

#[test]
fn forget_removes_a_member() {
    let cluster = InProcessCluster::start(3);
    let l = cluster.leader();
    let f = (l + 1) % 3;
    let mut leader = cluster.client(l);
    let victim: String = cmd("CLUSTER")
        .arg("MYID")
        .query(&mut cluster.client(f))
        .unwrap();
    let me: String = cmd("CLUSTER").arg("MYID").query(&mut leader).unwrap();
    let err = cmd("CLUSTER")
        .arg("FORGET")
        .arg(&me)
        .query::<String>(&mut leader)
        .unwrap_err();
    assert!(err.to_string().contains("can't forget myself"), "{err}");
    let err = cmd("CLUSTER")
        .arg("FORGET")
        .arg("0".repeat(40))
        .query::<String>(&mut leader)
        .unwrap_err();
    assert!(err.to_string().contains("Unknown node"), "{err}");
    let ok: String = cmd("CLUSTER")
        .arg("FORGET")
        .arg(&victim)
        .query(&mut leader)
        .unwrap();
    assert_eq!(ok, "OK");
    let nodes: String = cmd("CLUSTER").arg("NODES").query(&mut leader).unwrap();
    assert_eq!(nodes.lines().count(), 2, "{nodes}");
    assert!(!nodes.contains(&victim));
    assert_eq!(info_field(&mut leader, "raft", "raft_voters").unwrap(), "2");
    // The two remaining nodes still form a quorum.
    set(&mut leader, "after", "1").unwrap();
}

#[test]
fn losing_the_leader_elects_another_and_keeps_acknowledged_writes() {
    let mut cluster = InProcessCluster::start(3);
    let l = cluster.leader();
    let mut c = cluster.client(l);
    for i in 0..100 {
        set(&mut c, &format!("k{i}"), &i.to_string()).unwrap();
    }
    drop(c);
    cluster.stop(l);
    let new = cluster.leader();
    assert_ne!(new, l);
    let mut c = cluster.client(new);
    assert!(wait_until(Duration::from_secs(10), || set(
        &mut c, "after", "1"
    )
    .is_ok()));
    for i in 0..100 {
        assert_eq!(get(&mut c, &format!("k{i}")).unwrap(), Some(i.to_string()));
    }
}

#[test]
fn a_node_joined_during_writes_ends_with_identical_data() {
    let cluster = InProcessCluster::start(2);
    let l = cluster.leader();
    let leader_addr = cluster.addr(l);
    let writer = std::thread::spawn(move || {
        let mut c = rockraft_tests::connect(leader_addr).unwrap();
        for i in 0..3000 {
            set(&mut c, &format!("w{i}"), &i.to_string()).unwrap();
            if i % 7 == 0 {
                let _: i64 = cmd("INCR").arg("counter").query(&mut c).unwrap();
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let dir = tempfile::tempdir().unwrap();
    let newcomer = InProcess::start(&dir.path().join("new"));
    let ok: String = cmd("CLUSTER")
        .arg("MEET")
        .arg("127.0.0.1")
        .arg(newcomer.addr().port())
        .query(&mut cluster.client(l))
        .unwrap();
    assert_eq!(ok, "OK");
    writer.join().unwrap();
    let mut leader = cluster.client(l);
    let applied = info_field(&mut leader, "raft", "raft_commit_index").unwrap();
    let mut n = newcomer.client();
    assert!(wait_until(Duration::from_secs(20), || {
        info_field(&mut n, "raft", "raft_applied_index").as_deref() == Some(applied.as_str())
    }));
    rockraft_tests::wait_all_voters(
        &[cluster.addr(0), cluster.addr(1), newcomer.addr()],
        Duration::from_secs(20),
    );
    let _: () = cmd("READONLY").query(&mut n).unwrap();
    let mut keys: Vec<String> = cmd("KEYS").arg("*").query(&mut leader).unwrap();
    keys.sort();
    let mut theirs: Vec<String> = cmd("KEYS").arg("*").query(&mut n).unwrap();
    theirs.sort();
    assert_eq!(keys, theirs);
    assert_eq!(keys.len(), 3001);
    for k in &keys {
        assert_eq!(get(&mut leader, k).unwrap(), get(&mut n, k).unwrap(), "{k}");
    }
    // Every member's digest is the same once all have applied the same log.
    let digest = |c: &mut Connection| cmd("DEBUG").arg("DIGEST").query::<String>(c).unwrap();
    let expected = digest(&mut leader);
    assert_ne!(expected, "0".repeat(40));
    for i in 0..2 {
        let mut c = cluster.client(i);
        assert!(
            wait_until(Duration::from_secs(20), || digest(&mut c) == expected),
            "node {i}"
        );
    }
    assert_eq!(digest(&mut n), expected);
}

/// Invariant 12: raft traffic stamped with another cluster's id is dropped, however high its
/// term, and counted.
#[test]
fn traffic_from_another_cluster_is_ignored() {
    use protobuf::Message as _;
    use rockraft_raftstore::eraftpb::{Message, MessageType};
    use rockraft_raftstore::proto::{NodeInfo, PeerMessage};
    use std::io::Write;

    let cluster = InProcessCluster::start(2);
    let l = cluster.leader();
    let shared = cluster.shared(l);
    let mut c = cluster.client(l);
    let term_before = info_field(&mut c, "raft", "raft_term").unwrap();
    let mut vote = Message::default();
    // A heartbeat of a higher term would make the leader step down, were it accepted.
    vote.set_msg_type(MessageType::MsgHeartbeat);
    vote.to = shared.node_id;
    vote.from = 42;
    vote.term = 1_000;
    vote.log_term = 1_000;
    vote.index = 1_000_000;
    let frame = PeerMessage {
        cluster_id: shared.network.cluster_id() ^ 1,
        group_id: rockraft_server::DATA_GROUP_ID,
        from: protobuf::SingularPtrField::some(NodeInfo {
            node_id: 42,
            host: "127.0.0.1".into(),
            port: 1,
            bus_port: 1,
            ..Default::default()
        }),
        message: vote.write_to_bytes().unwrap(),
        ..Default::default()
    }
    .write_to_bytes()
    .unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", shared.me.bus_port as u16)).unwrap();
    for _ in 0..3 {
        s.write_all(&(frame.len() as u32).to_be_bytes()).unwrap();
        s.write_all(&frame).unwrap();
    }
    assert!(wait_until(Duration::from_secs(5), || {
        info_field(&mut c, "raft", "raft_foreign_messages_dropped").as_deref() == Some("3")
    }));
    assert_eq!(
        info_field(&mut c, "raft", "raft_term").unwrap(),
        term_before
    );
    assert_eq!(info_field(&mut c, "raft", "raft_role").unwrap(), "leader");
}

#[test]
fn slot_introspection() {
    let cluster = InProcessCluster::start(2);
    let l = cluster.leader();
    let mut c = cluster.client(l);
    for k in ["{tag}a", "{tag}b", "{tag}c", "other"] {
        set(&mut c, k, "1").unwrap();
    }
    let slot: i64 = cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("{tag}a")
        .query(&mut c)
        .unwrap();
    let n: i64 = cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(slot)
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 3);
    let keys: Vec<String> = cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(slot)
        .arg(2)
        .query(&mut c)
        .unwrap();
    assert_eq!(keys, ["{tag}a", "{tag}b"]);
    let err = cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(16384)
        .query::<i64>(&mut c)
        .unwrap_err();
    assert!(
        err.to_string().contains("Invalid or out of range slot"),
        "{err}"
    );
    let shards: redis::Value = cmd("CLUSTER").arg("SHARDS").query(&mut c).unwrap();
    let text = format!("{shards:?}");
    assert!(
        text.contains("slots") && text.contains("master") && text.contains("replica"),
        "{text}"
    );
}

/// Invariant 12, second half: once FORGET has removed a node, its raft messages are ignored,
/// however high a term they claim.
#[test]
fn a_removed_node_can_neither_vote_nor_append() {
    use protobuf::Message as _;
    use rockraft_raftstore::eraftpb::{Message, MessageType};
    use rockraft_raftstore::proto::PeerMessage;
    use std::io::Write;

    let cluster = InProcessCluster::start(3);
    let l = cluster.leader();
    let f = (l + 1) % 3;
    let removed = cluster.node_id(f);
    let mut c = cluster.client(l);
    let victim: String = cmd("CLUSTER")
        .arg("MYID")
        .query(&mut cluster.client(f))
        .unwrap();
    let _: String = cmd("CLUSTER")
        .arg("FORGET")
        .arg(&victim)
        .query(&mut c)
        .unwrap();
    let term_before = info_field(&mut c, "raft", "raft_term").unwrap();
    let shared = cluster.shared(l);
    let send = |t: MessageType| {
        let mut m = Message::default();
        m.set_msg_type(t);
        m.to = shared.node_id;
        m.from = removed;
        m.term = 1_000;
        m.log_term = 1_000;
        m.index = 1_000_000;
        let frame = PeerMessage {
            cluster_id: shared.network.cluster_id(),
            group_id: rockraft_server::DATA_GROUP_ID,
            message: m.write_to_bytes().unwrap(),
            ..Default::default()
        }
        .write_to_bytes()
        .unwrap();
        let mut s = std::net::TcpStream::connect(("127.0.0.1", shared.me.bus_port as u16)).unwrap();
        s.write_all(&(frame.len() as u32).to_be_bytes()).unwrap();
        s.write_all(&frame).unwrap();
    };
    send(MessageType::MsgHeartbeat);
    send(MessageType::MsgRequestVote);
    send(MessageType::MsgAppend);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        info_field(&mut c, "raft", "raft_term").unwrap(),
        term_before
    );
    assert_eq!(info_field(&mut c, "raft", "raft_role").unwrap(), "leader");
    set(&mut c, "still", "writable").unwrap();
}

/// A joining node starts from the group's first configuration, whose members may all be gone:
/// it must still hear from the leader of today's configuration.
#[test]
fn a_node_joins_after_the_founding_node_was_forgotten() {
    let mut cluster = InProcessCluster::start(3);
    // Node 0 founded the group; make another node lead, then remove node 0.
    let founder: String = cmd("CLUSTER")
        .arg("MYID")
        .query(&mut cluster.client(0))
        .unwrap();
    let mut c = cluster.client(1);
    let _: String = cmd("CLUSTER").arg("FAILOVER").query(&mut c).unwrap();
    assert!(wait_until(Duration::from_secs(10), || cluster.leader() == 1));
    let ok: String = cmd("CLUSTER")
        .arg("FORGET")
        .arg(&founder)
        .query(&mut c)
        .unwrap();
    assert_eq!(ok, "OK");
    cluster.stop(0);
    set(&mut c, "k", "v").unwrap();

    let dir = tempfile::tempdir().unwrap();
    let joiner = InProcess::start(dir.path());
    let ok: String = cmd("CLUSTER")
        .arg("MEET")
        .arg("127.0.0.1")
        .arg(joiner.addr().port())
        .query(&mut c)
        .unwrap();
    assert_eq!(ok, "OK");
    let addrs = [cluster.addr(1), cluster.addr(2), joiner.addr()];
    rockraft_tests::wait_all_voters(&addrs, Duration::from_secs(30));
    assert!(rockraft_tests::converged(&addrs, Duration::from_secs(30)));
    let mut j = joiner.client();
    let _: () = cmd("READONLY").query(&mut j).unwrap();
    assert_eq!(get(&mut j, "k").unwrap().as_deref(), Some("v"));
}

/// Raft traffic addressed to another node id is dropped: a node that came back at a removed
/// member's address with an empty data directory (so under a new id) still receives what the
/// leader sends the old id, and stepping it would apply the old node's log positions (a
/// heartbeat's commit index past this node's log is a panic in raft-rs).
#[test]
fn traffic_for_another_node_id_is_ignored() {
    use protobuf::Message as _;
    use rockraft_raftstore::eraftpb::{Message, MessageType};
    use rockraft_raftstore::proto::PeerMessage;
    use std::io::Write;

    let cluster = InProcessCluster::start(2);
    let l = cluster.leader();
    let f = 1 - l;
    let (leader, follower) = (cluster.shared(l), cluster.shared(f));
    let mut c = cluster.client(l);
    let term = info_field(&mut c, "raft", "raft_term").unwrap();
    let mut hb = Message::default();
    hb.set_msg_type(MessageType::MsgHeartbeat);
    hb.to = follower.node_id ^ 0x5555; // the id that was here before
    hb.from = leader.node_id;
    hb.term = term.parse().unwrap();
    hb.commit = 1_000_000;
    let frame = PeerMessage {
        cluster_id: leader.network.cluster_id(),
        group_id: rockraft_server::DATA_GROUP_ID,
        from: protobuf::SingularPtrField::some(leader.me.clone()),
        message: hb.write_to_bytes().unwrap(),
        ..Default::default()
    }
    .write_to_bytes()
    .unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", follower.me.bus_port as u16)).unwrap();
    for _ in 0..3 {
        s.write_all(&(frame.len() as u32).to_be_bytes()).unwrap();
        s.write_all(&frame).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    // The follower's group still runs: it applies a write made after.
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("1")
        .query(&mut c)
        .unwrap();
    assert!(
        cluster.wait_converged(Duration::from_secs(20)),
        "the follower stopped applying"
    );
    assert_eq!(cluster.leader(), l);
}
