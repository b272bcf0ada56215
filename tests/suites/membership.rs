//! Membership changes that never trip: MEETs sent back to back (to the leader or to a
//! follower, under write load) queue behind the change in progress instead of failing; a
//! change that cannot start in time gets `-TRYAGAIN` with the reason and is never applied;
//! a learner is visible as one until it is promoted.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{cmd, Connection, Value};
use rockraft_raftstore::eraftpb::{Message, MessageType};
use rockraft_raftstore::SendFilter;
use rockraft_tests::{
    connect, converged, free_port, info_field, run_tool, wait_all_voters, wait_ready, wait_until,
    InProcess, InProcessCluster, Process,
};

/// Starts `n` real nodes, each a one-node cluster of its own.
fn spawn_nodes(root: &std::path::Path, n: usize) -> Vec<Process> {
    (0..n)
        .map(|i| {
            let p = Process::spawn(&root.join(format!("n{i}")), free_port(), free_port(), None);
            wait_ready(p.addr(), Duration::from_secs(30));
            p
        })
        .collect()
}

/// redis-benchmark writing to `addr` until killed (or 200,000 SETs).
fn load(addr: SocketAddr) -> Child {
    Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args([
            "-t", "set", "-n", "200000", "-c", "8", "-r", "5000", "-d", "64", "-q",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-benchmark must be installed (.ci/run installs it)")
}

/// Sends a MEET for every node of `joining` to `via`, back to back on one connection; every
/// reply must be OK.
fn meet_back_to_back(via: SocketAddr, joining: &[SocketAddr]) {
    let mut c = connect(via).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    for j in joining {
        let r: redis::RedisResult<String> = cmd("CLUSTER")
            .arg("MEET")
            .arg("127.0.0.1")
            .arg(j.port())
            .query(&mut c);
        assert_eq!(r.as_deref(), Ok("OK"), "MEET {j} via {via}");
    }
}

fn stop_load(mut bench: Child) {
    let _ = bench.kill();
    let _ = bench.wait();
}

#[test]
fn back_to_back_meets_to_the_leader_under_load_end_as_voters() {
    let root = tempfile::tempdir().unwrap();
    let nodes = spawn_nodes(root.path(), 5);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr()).collect();
    let bench = load(addrs[0]);
    std::thread::sleep(Duration::from_millis(300));
    // Each MEET answers once its learner is added; the next arrives while that learner is
    // catching up or being promoted, i.e. while a membership change is in progress.
    meet_back_to_back(addrs[0], &addrs[1..]);
    wait_all_voters(&addrs, Duration::from_secs(60));
    stop_load(bench);
    assert!(converged(&addrs, Duration::from_secs(30)), "digests differ");
}

#[test]
fn back_to_back_meets_to_a_follower_under_load_end_as_voters() {
    let root = tempfile::tempdir().unwrap();
    let nodes = spawn_nodes(root.path(), 5);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr()).collect();
    rockraft_tests::form_cluster(addrs[0], &addrs[1..2]);
    let leader = rockraft_tests::wait_for_leader(&[Some(addrs[0]), Some(addrs[1])]);
    let follower = addrs[1 - leader];
    let bench = load(addrs[leader]);
    std::thread::sleep(Duration::from_millis(300));
    meet_back_to_back(follower, &addrs[2..]);
    wait_all_voters(&addrs, Duration::from_secs(60));
    stop_load(bench);
    assert!(converged(&addrs, Duration::from_secs(30)), "digests differ");
}

/// A MEET that arrives while another membership change is in progress (here: proposed, but
/// it cannot commit while appends are dropped) waits for it instead of failing, and both
/// answer OK once it commits.
#[test]
fn a_meet_waits_behind_a_change_that_has_not_committed() {
    let cluster = InProcessCluster::start(2);
    let l = cluster.leader();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let newcomers: Vec<InProcess> = dirs.iter().map(|d| InProcess::start(d.path())).collect();
    cluster.add_filter(Arc::new(NoAppends));
    let leader = cluster.addr(l);
    let meet = |n: &InProcess| {
        let port = n.addr().port();
        std::thread::spawn(move || {
            let mut c = connect(leader).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(port)
                .query::<String>(&mut c)
        })
    };
    let first = meet(&newcomers[0]);
    std::thread::sleep(Duration::from_millis(500));
    let second = meet(&newcomers[1]);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        !first.is_finished(),
        "the first change cannot have committed"
    );
    assert!(!second.is_finished(), "the second MEET must wait, not fail");
    cluster.heal();
    assert_eq!(first.join().unwrap().as_deref(), Ok("OK"));
    assert_eq!(second.join().unwrap().as_deref(), Ok("OK"));
    let addrs = [
        cluster.addr(0),
        cluster.addr(1),
        newcomers[0].addr(),
        newcomers[1].addr(),
    ];
    wait_all_voters(&addrs, Duration::from_secs(30));
}

/// Drops the learner's successful append acknowledgements: it receives and applies the log
/// (so it knows it is a learner, and every address), but the leader never sees it catch up,
/// so it stays a learner until the filter goes.
struct HideProgress;

impl SendFilter for HideProgress {
    fn allow(&self, m: &Message) -> bool {
        m.get_msg_type() != MessageType::MsgAppendResponse || m.reject
    }
}

fn cluster_nodes(c: &mut Connection) -> String {
    cmd("CLUSTER").arg("NODES").query(c).unwrap()
}

/// The flags field of `id`'s line in CLUSTER NODES.
fn flags_of(nodes: &str, id: &str) -> String {
    nodes
        .lines()
        .find(|l| l.starts_with(id))
        .and_then(|l| l.split(' ').nth(2))
        .unwrap_or_else(|| panic!("{id} not in\n{nodes}"))
        .to_string()
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

/// CLUSTER SHARDS' `health` of node `id` (RESP2: maps are flat arrays).
fn shard_health(c: &mut Connection, id: &str) -> String {
    let shards: Value = cmd("CLUSTER").arg("SHARDS").query(c).unwrap();
    let fields = |v: &Value| -> Vec<(String, Value)> {
        match v {
            Value::Array(items) => items
                .chunks(2)
                .map(|kv| (text(&kv[0]), kv[1].clone()))
                .collect(),
            Value::Map(kvs) => kvs.iter().map(|(k, v)| (text(k), v.clone())).collect(),
            other => panic!("not a map: {other:?}"),
        }
    };
    let Value::Array(shards) = shards else {
        panic!("CLUSTER SHARDS: {shards:?}")
    };
    for shard in &shards {
        for (k, v) in fields(shard) {
            let Value::Array(nodes) = v else { continue };
            if k != "nodes" {
                continue;
            }
            for node in &nodes {
                let f = fields(node);
                let get = |name: &str| f.iter().find(|(k, _)| k == name).map(|(_, v)| text(v));
                if get("id").as_deref() == Some(id) {
                    return get("health").expect("health");
                }
            }
        }
    }
    panic!("{id} not in CLUSTER SHARDS")
}

fn redis_cli_check(addr: SocketAddr) {
    let (ok, out) = run_tool(
        "redis-cli",
        &["--cluster", "check", &format!("127.0.0.1:{}", addr.port())],
        None,
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("[OK] All nodes agree about slots configuration.")
            && out.contains("[OK] All 16384 slots covered.")
            && !out.contains("[ERR]"),
        "{out}"
    );
}

#[test]
fn a_learner_is_flagged_until_it_is_promoted() {
    let cluster = InProcessCluster::start(2);
    let l = cluster.leader();
    let f = 1 - l;
    let dir = tempfile::tempdir().unwrap();
    let newcomer = InProcess::start(dir.path());
    let shared = newcomer.handle.as_ref().unwrap().shared().clone();
    let id = format!("{:040x}", shared.node_id);
    shared.network.add_filter(Arc::new(HideProgress));
    let ok: String = cmd("CLUSTER")
        .arg("MEET")
        .arg("127.0.0.1")
        .arg(newcomer.addr().port())
        .query(&mut cluster.client(l))
        .unwrap();
    assert_eq!(ok, "OK");
    let mut n = newcomer.client();
    assert!(
        wait_until(Duration::from_secs(20), || {
            info_field(&mut n, "raft", "raft_membership").as_deref() == Some("learner")
        }),
        "the newcomer never learned it is a learner"
    );
    let mut leader = cluster.client(l);
    assert!(wait_until(Duration::from_secs(10), || {
        info_field(&mut leader, "replication", "connected_slaves").as_deref() == Some("2")
    }));
    // Every node lists it as a replica that will not fail over.
    assert_eq!(
        flags_of(&cluster_nodes(&mut leader), &id),
        "slave,nofailover"
    );
    assert_eq!(
        flags_of(&cluster_nodes(&mut cluster.client(f)), &id),
        "slave,nofailover"
    );
    assert_eq!(
        flags_of(&cluster_nodes(&mut n), &id),
        "myself,slave,nofailover"
    );
    assert_eq!(shard_health(&mut leader, &id), "loading");
    let replication: String = cmd("INFO").arg("replication").query(&mut leader).unwrap();
    let port = format!("port={},", newcomer.addr().port());
    assert!(
        replication
            .lines()
            .any(|l| l.starts_with("slave") && l.contains(&port) && l.contains("state=learner")),
        "{replication}"
    );
    assert_eq!(
        info_field(&mut n, "replication", "master_sync_in_progress").as_deref(),
        Some("1")
    );
    assert_eq!(
        info_field(&mut n, "replication", "slave_priority").as_deref(),
        Some("0")
    );
    // A learner cannot take over.
    let err = cmd("CLUSTER")
        .arg("FAILOVER")
        .query::<String>(&mut n)
        .unwrap_err();
    assert!(err.to_string().contains("not a voting member"), "{err}");
    redis_cli_check(cluster.addr(l));

    // Once its progress reaches the leader, it is promoted and flagged as any replica.
    shared.network.clear_filters();
    let addrs = [cluster.addr(0), cluster.addr(1), newcomer.addr()];
    wait_all_voters(&addrs, Duration::from_secs(30));
    for c in [&mut leader, &mut n] {
        let flags = flags_of(&cluster_nodes(c), &id);
        assert!(flags == "slave" || flags == "myself,slave", "{flags}");
    }
    assert_eq!(shard_health(&mut leader, &id), "online");
    let replication: String = cmd("INFO").arg("replication").query(&mut leader).unwrap();
    assert!(
        replication
            .lines()
            .any(|l| l.starts_with("slave") && l.contains(&port) && l.contains("state=online")),
        "{replication}"
    );
    assert_eq!(
        info_field(&mut n, "replication", "slave_priority").as_deref(),
        Some("100")
    );
    redis_cli_check(cluster.addr(l));
}

/// Drops every append (so nothing new commits) but not heartbeats (so the leader stays).
struct NoAppends;

impl SendFilter for NoAppends {
    fn allow(&self, m: &Message) -> bool {
        !matches!(
            m.get_msg_type(),
            MessageType::MsgAppend | MessageType::MsgAppendResponse | MessageType::MsgSnapshot
        )
    }
}

fn short_write_timeout(c: &mut rockraft_server::Config) {
    c.write_timeout_ms = 1500;
}

fn forget_reply(addr: SocketAddr, id: &str) -> redis::RedisResult<String> {
    let mut c = connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    cmd("CLUSTER").arg("FORGET").arg(id).query(&mut c)
}

/// A change that cannot start within the write timeout (the one before it cannot commit) is
/// given up with TRYAGAIN and the reason, and is never applied; the one in progress is
/// reported as of unknown outcome, and does apply once the cluster heals.
#[test]
fn a_change_that_cannot_start_in_time_gets_tryagain_and_is_not_applied() {
    let cluster = InProcessCluster::start_with(3, short_write_timeout);
    let l = cluster.leader();
    let (a, b) = ((l + 1) % 3, (l + 2) % 3);
    let id = |i: usize| format!("{:040x}", cluster.node_id(i));
    cluster.add_filter(Arc::new(NoAppends));
    let leader = cluster.addr(l);
    let (id_a, id_b) = (id(a), id(b));
    let first = std::thread::spawn(move || forget_reply(leader, &id_a));
    // The first FORGET is proposed (it cannot commit); the second queues behind it.
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let err = forget_reply(leader, &id_b).unwrap_err();
    assert_eq!(err.code(), Some("TRYAGAIN"), "{err}");
    let err = err.to_string();
    assert!(
        err.contains("membership change not started within 1500 ms")
            && err.contains("is not applied yet")
            && err.contains("it was not applied"),
        "{err}"
    );
    assert!(started.elapsed() >= Duration::from_millis(1000), "{err}");
    let err = first.join().unwrap().unwrap_err();
    assert_eq!(err.code(), Some("TIMEOUT"), "{err}");
    assert!(err.to_string().contains("outcome unknown"), "{err}");
    cluster.heal();
    // The first change commits once appends flow again; the second never does.
    let remaining = [cluster.addr(l), cluster.addr(b)];
    wait_all_voters(&remaining, Duration::from_secs(30));
    let nodes = cluster_nodes(&mut cluster.client(l));
    assert!(!nodes.contains(&id(a)), "{nodes}");
    assert!(nodes.contains(&id(b)), "{nodes}");
}
