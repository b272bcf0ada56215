//! Authentication and ACL users across a cluster: users are replicated state, enforced the
//! same by every node (followers included, a node that joined later from a snapshot, and
//! after restarts and leader changes). Redis's own replies are compared in
//! `differential::acl_users_match_redis`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use redis::cmd;
use rockraft_server::config::Config;
use rockraft_tests::{
    form_cluster, info_field, resp, wait_until, InProcess, InProcessCluster, Raw,
};

/// Every test of this binary authenticates its helpers' connections with this password (a
/// node whose default user needs none takes any).
const PASS: &str = "s3cret-pw";

fn use_password() {
    rockraft_ctl::auth::set(None, Some(PASS));
}

/// One raw round trip on a new, unauthenticated connection.
fn unauthenticated(addr: SocketAddr, argv: &[&[u8]]) -> String {
    Raw::connect(addr).roundtrip(&resp(argv))
}

/// A connection authenticated as `user`.
fn login(addr: SocketAddr, user: &str, pass: &str) -> redis::Connection {
    let mut c = redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = cmd("AUTH").arg(user).arg(pass).query(&mut c).unwrap();
    c
}

fn err_code(r: redis::RedisResult<redis::Value>) -> String {
    match r {
        Err(e) => format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or("")),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

fn small_log(c: &mut Config) {
    c.raft_log_max_entries = 200;
}

#[test]
fn a_user_limited_to_app_keys_and_reads_is_refused_elsewhere_on_every_node() {
    use_password();
    let cluster = InProcessCluster::start(3);
    let l = cluster.leader();
    let mut admin = cluster.client(l);
    let _: () = cmd("ACL")
        .arg(&[
            "SETUSER",
            "app",
            "on",
            ">apppw",
            "~app:*",
            "+@read",
            "+readonly",
            "+acl|whoami",
        ])
        .query(&mut admin)
        .unwrap();
    let _: () = cmd("SET").arg("app:1").arg("v").query(&mut admin).unwrap();
    let _: () = cmd("SET").arg("other").arg("w").query(&mut admin).unwrap();
    assert!(cluster.wait_converged(Duration::from_secs(20)));
    for i in 0..3 {
        let mut c = login(cluster.addr(i), "app", "apppw");
        let me: String = cmd("ACL").arg("WHOAMI").query(&mut c).unwrap();
        assert_eq!(me, "app");
        // Followers serve local reads after READONLY; the checks come first everywhere.
        let _: () = cmd("READONLY").query(&mut c).unwrap();
        let v: String = cmd("GET").arg("app:1").query(&mut c).unwrap();
        assert_eq!(v, "v", "node {i}");
        assert_eq!(
            err_code(cmd("GET").arg("other").query(&mut c)),
            "NOPERM this user has no permissions to access one of the keys used as arguments",
            "node {i}"
        );
        assert_eq!(
            err_code(cmd("SET").arg("app:1").arg("x").query(&mut c)),
            "NOPERM this user has no permissions to run the 'set' command",
            "node {i}"
        );
        assert_eq!(
            err_code(cmd("FLUSHALL").query(&mut c)),
            "NOPERM this user has no permissions to run the 'flushall' command"
        );
        assert_eq!(
            err_code(cmd("CLUSTER").arg("FORGET").arg("x").query(&mut c)),
            "NOPERM this user has no permissions to run the 'cluster|forget' command"
        );
        // The refusals are in that node's ACL LOG.
        let mut a = cluster.client(i);
        let log: Vec<redis::Value> = cmd("ACL").arg("LOG").query(&mut a).unwrap();
        let text = format!("{log:?}");
        assert!(
            text.contains("flushall") && text.contains("other"),
            "{text}"
        );
    }
    let mut a = cluster.client(l);
    let v: String = cmd("GET").arg("app:1").query(&mut a).unwrap();
    assert_eq!(v, "v", "nothing the user was refused was written");
}

#[test]
fn requirepass_locks_every_node_through_restarts_and_leader_changes() {
    use_password();
    let mut cluster = InProcessCluster::start(3);
    let l = cluster.leader();
    let mut c = cluster.client(l);
    let _: () = cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(PASS)
        .query(&mut c)
        .unwrap();
    let _: () = cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    let _: () = cmd("ACL")
        .arg(&[
            "SETUSER",
            "ops",
            "on",
            ">opspw",
            "~*",
            "+@all",
            "-@dangerous",
        ])
        .query(&mut c)
        .unwrap();
    drop(c);
    let locked = |cluster: &InProcessCluster, i: usize| {
        let addr = cluster.addr(i);
        wait_until(Duration::from_secs(10), || {
            unauthenticated(addr, &[b"GET", b"k"]) == "-NOAUTH Authentication required.\r\n"
        })
    };
    for i in 0..3 {
        assert!(locked(&cluster, i), "node {i} is not locked");
        let addr = cluster.addr(i);
        assert_eq!(
            unauthenticated(addr, &[b"AUTH", b"wrong"]),
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        );
        let mut r = Raw::connect(addr);
        assert_eq!(r.roundtrip(&resp(&[b"AUTH", PASS.as_bytes()])), "+OK\r\n");
        assert_eq!(
            r.roundtrip(&resp(&[b"ACL", b"WHOAMI"])),
            "$7\r\ndefault\r\n"
        );
    }
    // Every node restarts locked, with the same users.
    let lists = |cluster: &InProcessCluster| -> Vec<Vec<String>> {
        (0..3)
            .map(|i| {
                cmd("ACL")
                    .arg("LIST")
                    .query(&mut cluster.client(i))
                    .unwrap()
            })
            .collect()
    };
    let before = lists(&cluster);
    assert!(before.iter().all(|l| *l == before[0]), "{before:?}");
    // (One at a time: a restarted node is on new ports, which the others learn through the
    // log.)
    for i in 0..3 {
        cluster.stop(i);
        cluster.restart(i);
        assert!(
            locked(&cluster, i),
            "node {i} is not locked after a restart"
        );
        // Every node knows where the restarted one is now before the next one stops.
        let port = format!(":{}@", cluster.addr(i).port());
        assert!(wait_until(Duration::from_secs(30), || (0..3).all(|j| {
            rockraft_tests::connect(cluster.addr(j))
                .and_then(|mut c| cmd("CLUSTER").arg("NODES").query::<String>(&mut c).ok())
                .is_some_and(|n| n.contains(&port))
        })));
    }
    let l = cluster.leader();
    assert_eq!(lists(&cluster), before);
    // A new leader enforces and changes the same users.
    cluster.stop(l);
    let others: Vec<Option<SocketAddr>> = cluster.addrs();
    let l2 = rockraft_tests::wait_for_leader(&others);
    let mut o = login(cluster.addr(l2), "ops", "opspw");
    let v: String = cmd("GET").arg("k").query(&mut o).unwrap();
    assert_eq!(v, "v");
    assert_eq!(
        err_code(cmd("FLUSHALL").query(&mut o)),
        "NOPERM this user has no permissions to run the 'flushall' command"
    );
    let mut c = cluster.client(l2);
    let _: () = cmd("ACL")
        .arg(&["SETUSER", "ops", "off"])
        .query(&mut c)
        .unwrap();
    for i in (0..3).filter(|&i| i != l) {
        let addr = cluster.addr(i);
        assert!(wait_until(Duration::from_secs(10), || unauthenticated(
            addr,
            &[b"AUTH", b"ops", b"opspw"]
        )
        .starts_with("-WRONGPASS")));
    }
}

#[test]
fn a_node_that_joins_later_gets_the_users_from_a_snapshot() {
    use_password();
    // The snapshot streams over an authenticated bus.
    fn small_log_with_secret(c: &mut Config) {
        small_log(c);
        with_secret(c);
    }
    let cluster = InProcessCluster::start_with(1, small_log_with_secret);
    let mut c = cluster.client(0);
    let _: () = cmd("ACL")
        .arg(&[
            "SETUSER",
            "reader",
            "on",
            ">rpw",
            "%R~*",
            "+@read",
            "+readonly",
        ])
        .query(&mut c)
        .unwrap();
    let _: () = cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(PASS)
        .query(&mut c)
        .unwrap();
    for i in 0..1000 {
        let _: () = cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query(&mut c)
            .unwrap();
    }
    let first: u64 = info_field(&mut c, "raft", "raft_first_index")
        .unwrap()
        .parse()
        .unwrap();
    assert!(first > 300, "the log was compacted (first index {first})");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_data_dir(dir.path());
    small_log_with_secret(&mut cfg);
    let joiner = InProcess::start_with(cfg);
    // Before it joins, the new node has no password of its own.
    assert_eq!(unauthenticated(joiner.addr(), &[b"PING"]), "+PONG\r\n");
    form_cluster(cluster.addr(0), &[joiner.addr()]);
    let addr = joiner.addr();
    assert!(wait_until(Duration::from_secs(30), || unauthenticated(
        addr,
        &[b"PING"]
    )
        == "-NOAUTH Authentication required.\r\n"));
    let mut j = rockraft_tests::connect(addr).unwrap();
    assert_eq!(
        info_field(&mut j, "raft", "raft_snapshots_installed").as_deref(),
        Some("1")
    );
    assert_eq!(
        info_field(&mut j, "raft", "raft_bus_auth_failures").as_deref(),
        Some("0")
    );
    let list: Vec<String> = cmd("ACL").arg("LIST").query(&mut j).unwrap();
    let leader_list: Vec<String> = cmd("ACL").arg("LIST").query(&mut c).unwrap();
    assert_eq!(list, leader_list);
    let mut r = login(addr, "reader", "rpw");
    let _: () = cmd("READONLY").query(&mut r).unwrap();
    let v: String = cmd("GET").arg("k7").query(&mut r).unwrap();
    assert_eq!(v, "7");
    assert!(err_code(cmd("SET").arg("k7").arg("x").query(&mut r)).starts_with("NOPERM"));
}

#[test]
fn protected_mode_refuses_other_hosts_until_there_is_a_password() {
    use_password();
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(dir.path());
    let addr = node.addr();
    // A client from 127.0.0.2 is not "local" to Redis's protected mode (only 127.0.0.1 is).
    let from_elsewhere = || -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let std_stream = rt.block_on(async {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            s.connect(addr).await.unwrap().into_std().unwrap()
        });
        let mut s: TcpStream = std_stream;
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(&resp(&[b"PING"]));
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let refused = from_elsewhere();
    assert!(
        refused.starts_with("-DENIED Redis is running in protected mode"),
        "{refused}"
    );
    // Local clients are served, and may turn it off, or set a password.
    assert_eq!(unauthenticated(addr, &[b"PING"]), "+PONG\r\n");
    let mut c = node.client();
    let _: () = cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(PASS)
        .query(&mut c)
        .unwrap();
    assert_eq!(
        from_elsewhere(),
        "-NOAUTH Authentication required.\r\n",
        "with a password, other hosts may connect (and must authenticate)"
    );
}

#[test]
fn hello_authenticates_and_refuses_as_redis_does() {
    use_password();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_data_dir(dir.path());
    cfg.requirepass = Some(PASS.into());
    let node = InProcess::start_with(cfg);
    let addr = node.addr();
    let mut r = Raw::connect(addr);
    assert!(r
        .roundtrip(&resp(&[b"HELLO", b"3"]))
        .starts_with("-NOAUTH HELLO must be called with the client already authenticated"));
    assert_eq!(
        r.roundtrip(&resp(&[b"HELLO", b"3", b"AUTH", b"default", b"nope"])),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    let hello = r.roundtrip(&resp(&[
        b"HELLO",
        b"3",
        b"AUTH",
        b"default",
        PASS.as_bytes(),
    ]));
    assert!(hello.starts_with("%7\r\n"), "{hello}");
    // The node's flag became the cluster's password, through the log.
    let mut c = rockraft_tests::connect(addr).unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        let v: Vec<String> = cmd("CONFIG")
            .arg("GET")
            .arg("requirepass")
            .query(&mut c)
            .unwrap();
        let users: Vec<String> = cmd("ACL").arg("USERS").query(&mut c).unwrap();
        v == ["requirepass", PASS] && users == ["default"]
    }));
    // A brute-force loop is logged (counted as one entry) and does not lock anyone out.
    for _ in 0..200 {
        assert!(unauthenticated(addr, &[b"AUTH", b"guess"]).starts_with("-WRONGPASS"));
    }
    let log: Vec<std::collections::HashMap<String, redis::Value>> =
        cmd("ACL").arg("LOG").query(&mut c).unwrap();
    assert_eq!(log[0]["count"], redis::Value::Int(200), "{:?}", log[0]);
    assert_eq!(log[0]["reason"], redis::Value::BulkString(b"auth".to_vec()));
    assert_eq!(log[0]["object"], redis::Value::BulkString(b"AUTH".to_vec()));
    assert_eq!(
        log[1]["object"],
        redis::Value::BulkString(b"HELLO".to_vec())
    );
    assert_eq!(
        unauthenticated(addr, &[b"AUTH", PASS.as_bytes()]),
        "+OK\r\n"
    );
}

/// Nodes that all start locked (`--requirepass`) form a cluster (MEET authenticates with
/// the cluster's password), and rockraft-ctl works on it with `--pass` or `ROCKRAFT_AUTH`.
#[test]
fn locked_nodes_form_a_cluster_that_rockraft_ctl_operates_with_a_password() {
    use_password();
    let cluster = rockraft_tests::ProcessCluster::start_with(3, &["--requirepass", PASS]);
    for i in 0..3 {
        assert_eq!(
            unauthenticated(cluster.addr(i), &[b"GET", b"k"]),
            "-NOAUTH Authentication required.\r\n"
        );
    }
    let l = cluster.leader();
    let ctl = rockraft_tests::workspace_binary("rockraft-ctl");
    let port = cluster.addr(l).port().to_string();
    let status = |extra: &[&str], env: Option<&str>| {
        let mut c = std::process::Command::new(&ctl);
        c.args(["--port", &port]).args(extra).arg("status");
        c.env_remove("ROCKRAFT_AUTH");
        if let Some(e) = env {
            c.env("ROCKRAFT_AUTH", e);
        }
        c.output().unwrap()
    };
    let refused = status(&[], None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("NOAUTH"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    for (extra, env) in [
        (&["--pass", PASS][..], None),
        (&["--user", "default", "--pass", PASS][..], None),
        (&[][..], Some(PASS)),
        (&[][..], Some(&*format!("default:{PASS}"))),
    ] {
        let ok = status(extra, env);
        assert!(
            ok.status.success(),
            "{extra:?} {env:?}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        assert!(String::from_utf8_lossy(&ok.stdout).contains("leader"));
    }
}

fn with_secret(c: &mut Config) {
    c.cluster_secret = Some("bus-secret-for-tests".into());
}

/// A rogue process that knows a node's bus address and the cluster id but not the cluster
/// secret tries a vote request, an append and a snapshot, with and without a handshake of its
/// own, and to be met into the cluster: the cluster ignores all of it (counted in INFO raft)
/// and keeps its leader, term and data.
#[test]
fn a_rogue_peer_without_the_cluster_secret_is_ignored() {
    use rockraft_raftstore::eraftpb::MessageType;

    use_password();
    let cluster = InProcessCluster::start_with(3, with_secret);
    let l = cluster.leader();
    let shared = cluster.shared(l);
    let mut c = cluster.client(l);
    let _: () = cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    let term = info_field(&mut c, "raft", "raft_term").unwrap();
    let digest: String = cmd("DEBUG").arg("DIGEST").query(&mut c).unwrap();
    let frame = |t: MessageType| {
        rockraft_tests::rogue_frame(shared.network.cluster_id(), shared.node_id, t)
    };
    let bus = SocketAddr::from(([127, 0, 0, 1], shared.me.bus_port as u16));
    for t in [
        MessageType::MsgRequestVote,
        MessageType::MsgAppend,
        MessageType::MsgSnapshot,
    ] {
        let mut s = TcpStream::connect(bus).unwrap();
        let _ = s.write_all(&frame(t));
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    // With a handshake, but another secret.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let wrong = rt.block_on(async {
        let mut s = tokio::net::TcpStream::connect(bus).await.unwrap();
        let secret = rockraft_raftstore::bus_auth::Secret::new(b"guessed");
        rockraft_raftstore::bus_auth::dial(&mut s, &secret).await
    });
    assert!(wrong.is_err());
    assert!(wait_until(Duration::from_secs(10), || {
        info_field(&mut c, "raft", "raft_bus_auth_failures")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n >= 4)
    }));
    // A node without the secret cannot be met into the cluster.
    let dir = tempfile::tempdir().unwrap();
    let outsider = InProcess::start(dir.path());
    let met: redis::RedisResult<()> = cmd("CLUSTER")
        .arg("MEET")
        .arg("127.0.0.1")
        .arg(outsider.addr().port())
        .query(&mut c);
    let e = met.unwrap_err().to_string();
    assert!(
        e.contains("cannot meet") && e.contains("cluster secret"),
        "{e}"
    );
    assert_eq!(
        info_field(&mut c, "raft", "raft_learners").as_deref(),
        Some("0")
    );
    assert_eq!(
        info_field(&mut c, "raft", "raft_voters").as_deref(),
        Some("3")
    );
    // Nothing changed: same leader, same term, same data everywhere.
    assert_eq!(
        info_field(&mut c, "raft", "raft_role").as_deref(),
        Some("leader")
    );
    assert_eq!(info_field(&mut c, "raft", "raft_term").unwrap(), term);
    let _: () = cmd("SET").arg("k2").arg("v2").query(&mut c).unwrap();
    assert!(cluster.wait_converged(Duration::from_secs(20)));
    let _: i64 = cmd("DEL").arg("k2").query(&mut c).unwrap();
    assert!(cluster.wait_converged(Duration::from_secs(20)));
    let after: String = cmd("DEBUG").arg("DIGEST").query(&mut c).unwrap();
    assert_eq!(after, digest);
}

/// A node whose `--cluster-secret-file` is missing does not start, and says which file.
#[test]
fn a_missing_cluster_secret_file_stops_the_node_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(rockraft_tests::workspace_binary("rockraft-server"))
        .args(["--port", "0", "--bus-port", "0", "--metrics-addr", "off"])
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .arg("--cluster-secret-file")
        .arg(dir.path().join("no-such-secret"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-secret"), "{err}");
}

/// Whether the server closes `raw` (EOF, no bytes) within 10 s without it sending anything.
fn closed_by_server(raw: &mut Raw) -> bool {
    let mut buf = [0u8; 64];
    matches!(raw.stream.read(&mut buf), Ok(0))
}

/// A transaction's commands are checked again at EXEC (Redis 7.0): one the user's rules no
/// longer allow gets Redis's error in its slot, the others run.
#[test]
fn exec_checks_queued_commands_against_the_rules_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(dir.path());
    let mut admin = node.client();
    let _: () = cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("on")
        .arg(">pw")
        .arg("~*")
        .arg("+@all")
        .query(&mut admin)
        .unwrap();
    let mut app = Raw::connect(node.addr());
    assert_eq!(app.roundtrip(&resp(&[b"AUTH", b"app", b"pw"])), "+OK\r\n");
    assert_eq!(app.roundtrip(&resp(&[b"MULTI"])), "+OK\r\n");
    assert_eq!(app.roundtrip(&resp(&[b"SET", b"k", b"v"])), "+QUEUED\r\n");
    assert_eq!(app.roundtrip(&resp(&[b"INCR", b"n"])), "+QUEUED\r\n");
    let _: () = cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("-set")
        .query(&mut admin)
        .unwrap();
    assert_eq!(
        app.roundtrip(&resp(&[b"EXEC"])),
        "*2\r\n-NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: no permission to execute the command or subcommand\r\n:1\r\n"
    );
    let k: Option<String> = cmd("GET").arg("k").query(&mut admin).unwrap();
    assert_eq!(k, None);
    let log: Vec<std::collections::HashMap<String, redis::Value>> =
        cmd("ACL").arg("LOG").query(&mut admin).unwrap();
    assert_eq!(
        log[0]["context"],
        redis::Value::BulkString(b"multi".to_vec())
    );
    assert_eq!(log[0]["object"], redis::Value::BulkString(b"set".to_vec()));
}

/// ACL DELUSER closes the user's connections on every node at once, and a subscriber whose
/// user may no longer hear its channel is disconnected (Redis 7.0), while others stay.
#[test]
fn revoked_users_and_subscribers_are_disconnected_on_every_node() {
    let cluster = InProcessCluster::start(3);
    let l = cluster.leader();
    let mut admin = cluster.client(l);
    for (user, channels) in [("app", "&*"), ("sub", "&news:*"), ("other", "&news:*")] {
        let _: () = cmd("ACL")
            .arg("SETUSER")
            .arg(user)
            .arg("on")
            .arg(">pw")
            .arg("~*")
            .arg(channels)
            .arg("+@all")
            .query(&mut admin)
            .unwrap();
    }
    let login_raw = |i: usize, user: &[u8]| {
        let mut r = Raw::connect(cluster.addr(i));
        assert_eq!(r.roundtrip(&resp(&[b"AUTH", user, b"pw"])), "+OK\r\n");
        r
    };
    // Users reach every node through the log before the connections are made.
    assert!(cluster.wait_converged(Duration::from_secs(20)));
    let mut apps: Vec<Raw> = (0..3).map(|i| login_raw(i, b"app")).collect();
    let mut subs: Vec<Raw> = (0..3)
        .map(|i| {
            let mut r = login_raw(i, b"sub");
            let reply = r.roundtrip(&resp(&[b"SUBSCRIBE", b"news:1"]));
            assert!(reply.ends_with(":1\r\n"), "{reply}");
            r
        })
        .collect();
    let mut pattern = login_raw(l, b"other");
    let reply = pattern.roundtrip(&resp(&[b"PSUBSCRIBE", b"news:*"]));
    assert!(reply.ends_with(":1\r\n"), "{reply}");
    let _: i64 = cmd("ACL")
        .arg("DELUSER")
        .arg("app")
        .query(&mut admin)
        .unwrap();
    for (i, app) in apps.iter_mut().enumerate() {
        assert!(
            closed_by_server(app),
            "node {i} kept a deleted user's connection"
        );
    }
    // sub may still hear news:1 (news:* allows it); after resetchannels it may not.
    let _: () = cmd("ACL")
        .arg("SETUSER")
        .arg("sub")
        .arg("&news:1")
        .query(&mut admin)
        .unwrap();
    let _: () = cmd("ACL")
        .arg("SETUSER")
        .arg("sub")
        .arg("resetchannels")
        .arg("&other")
        .query(&mut admin)
        .unwrap();
    for (i, sub) in subs.iter_mut().enumerate() {
        assert!(closed_by_server(sub), "node {i} kept a revoked subscriber");
    }
    // A pattern subscription needs the pattern itself allowed: news:* still is.
    let _: () = cmd("ACL")
        .arg("SETUSER")
        .arg("other")
        .arg("resetchannels")
        .arg("&news:*")
        .query(&mut admin)
        .unwrap();
    let _: i64 = cmd("PUBLISH")
        .arg("news:2")
        .arg("hi")
        .query(&mut admin)
        .unwrap();
    let message = pattern.read_reply();
    assert!(
        message.contains("pmessage") && message.contains("hi"),
        "{message}"
    );
}

/// A script runs as the user who called it: each `redis.call` must pass the user's rules
/// (Redis's scriptVerifyACL), in EVAL, EVAL_RO, FCALL and inside MULTI, on a cluster where the
/// script is applied on every node.
#[test]
fn scripts_run_with_the_rules_of_their_user() {
    let cluster = InProcessCluster::start(3);
    let l = cluster.leader();
    let mut admin = cluster.client(l);
    let _: () = cmd("SET").arg("other").arg("1").query(&mut admin).unwrap();
    let _: () = cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("on")
        .arg(">pw")
        .arg("~app:*")
        .arg("+@all")
        .arg("-set")
        .query(&mut admin)
        .unwrap();
    assert!(cluster.wait_converged(Duration::from_secs(20)));
    let mut app = Raw::connect(cluster.addr(l));
    assert_eq!(app.roundtrip(&resp(&[b"AUTH", b"app", b"pw"])), "+OK\r\n");
    let key_err = "-ERR The user executing the script can't access at least one of the keys mentioned in the command arguments script: 3b0b57995a47ae0e1bb20220278b82568130ec0f, on @user_script:1.\r\n";
    let cmd_err = "-ERR The user executing the script can't run this command or subcommand script: 5ba2bb0dbf087a9263cd934506409b8ac381e0af, on @user_script:1.\r\n";
    let get_other = &b"return redis.call('GET', 'other')"[..];
    let set_app = &b"return redis.call('SET', 'app:2', '1')"[..];
    for eval in [&b"EVAL"[..], b"EVAL_RO"] {
        assert_eq!(app.roundtrip(&resp(&[eval, get_other, b"0"])), key_err);
        assert_eq!(app.roundtrip(&resp(&[eval, set_app, b"0"])), cmd_err);
        assert_eq!(
            app.roundtrip(&resp(&[
                eval,
                b"return redis.call('GET', KEYS[1])",
                b"1",
                b"app:1"
            ])),
            "$-1\r\n"
        );
    }
    assert_eq!(
        app.roundtrip(&resp(&[b"EVAL", b"return redis.pcall('GET', 'other')", b"0"])),
        "-ERR The user executing the script can't access at least one of the keys mentioned in the command arguments\r\n"
    );
    assert_eq!(app.roundtrip(&resp(&[b"MULTI"])), "+OK\r\n");
    assert_eq!(
        app.roundtrip(&resp(&[b"EVAL", get_other, b"0"])),
        "+QUEUED\r\n"
    );
    assert_eq!(app.roundtrip(&resp(&[b"EXEC"])), format!("*1\r\n{key_err}"));
    // Allowed calls write as usual (and the same on every node).
    let _: () = cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("+set")
        .query(&mut admin)
        .unwrap();
    assert!(cluster.wait_converged(Duration::from_secs(20)));
    assert_eq!(app.roundtrip(&resp(&[b"EVAL", set_app, b"0"])), "+OK\r\n");
    let _: i64 = cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=lib\nredis.register_function('touch', function(keys) return redis.call('INCR', keys[1]) end)")
        .query(&mut admin)
        .map(|_: String| 0)
        .unwrap();
    assert_eq!(
        app.roundtrip(&resp(&[b"FCALL", b"touch", b"1", b"app:n"])),
        ":1\r\n"
    );
    let denied = app.roundtrip(&resp(&[b"FCALL", b"touch", b"1", b"other"]));
    assert!(
        denied.starts_with("-NOPERM"),
        "declared keys are checked first: {denied}"
    );
    assert!(cluster.wait_converged(Duration::from_secs(20)));
    let other: String = cmd("GET").arg("other").query(&mut admin).unwrap();
    assert_eq!(other, "1");
}

/// ACL LOAD replaces every user, as Redis's does: connections of users other than the default
/// are closed (even a user the file defines again); the default user's stay.
#[test]
fn acl_load_closes_the_connections_of_every_user_but_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.acl");
    std::fs::write(
        &file,
        "user default on nopass ~* &* +@all\nuser app on >pw ~* &* +@all\n",
    )
    .unwrap();
    let mut cfg = Config::for_data_dir(dir.path().join("node"));
    cfg.aclfile = Some(file);
    let node = InProcess::start_with(cfg);
    let mut admin = node.client();
    let _: () = cmd("ACL").arg("LOAD").query(&mut admin).unwrap();
    let mut app = Raw::connect(node.addr());
    assert_eq!(app.roundtrip(&resp(&[b"AUTH", b"app", b"pw"])), "+OK\r\n");
    let mut default = Raw::connect(node.addr());
    assert_eq!(default.roundtrip(&resp(&[b"PING"])), "+PONG\r\n");
    let _: () = cmd("ACL").arg("LOAD").query(&mut admin).unwrap();
    assert!(
        closed_by_server(&mut app),
        "an app connection survived ACL LOAD"
    );
    assert_eq!(default.roundtrip(&resp(&[b"PING"])), "+PONG\r\n");
}

/// A user's selectors are part of the replicated user: every node reads them back from the log
/// (the stored form) and allows what the selector allows.
#[test]
fn selectors_reach_every_node() {
    let cluster = InProcessCluster::start(3);
    let l = cluster.leader();
    let mut admin = cluster.client(l);
    let _: () = cmd("ACL")
        .arg("SETUSER")
        .arg("worker")
        .arg("on")
        .arg(">pw")
        .arg("~app:*")
        .arg("+get")
        .arg("(~queue:*")
        .arg("+lpush")
        .arg("+rpop)")
        .query(&mut admin)
        .unwrap();
    assert!(cluster.wait_converged(Duration::from_secs(20)));
    let want: Vec<String> = cmd("ACL").arg("LIST").query(&mut admin).unwrap();
    assert!(
        want.iter()
            .any(|l| l.ends_with("(~queue:* resetchannels -@all +lpush +rpop)")),
        "{want:?}"
    );
    for i in 0..3 {
        let mut c = cluster.client(i);
        let list: Vec<String> = cmd("ACL").arg("LIST").query(&mut c).unwrap();
        assert_eq!(list, want, "node {i}");
        let dry = |c: &mut redis::Connection, args: &[&str]| -> String {
            cmd("ACL")
                .arg("DRYRUN")
                .arg("worker")
                .arg(args)
                .query(c)
                .unwrap()
        };
        assert_eq!(dry(&mut c, &["lpush", "queue:1", "job"]), "OK");
        assert_eq!(dry(&mut c, &["get", "app:1"]), "OK");
        // The most telling refusal, as Redis picks it: a key over a command.
        assert_eq!(
            dry(&mut c, &["lpush", "app:1", "job"]),
            "This user has no permissions to access the 'app:1' key"
        );
        assert_eq!(
            dry(&mut c, &["set", "x", "1"]),
            "This user has no permissions to run the 'set' command"
        );
        assert_eq!(
            dry(&mut c, &["get", "queue:1"]),
            "This user has no permissions to access the 'queue:1' key"
        );
    }
}
