//! The commands operators reach for (issue 19): SHUTDOWN, ROLE, LASTSAVE, BGREWRITEAOF, and the
//! replication and slot commands a raft cluster has no use for, which say why.

use std::time::Duration;

use redis::cmd;
use rockraft_tests::{free_port, resp, InProcess, InProcessCluster, Process, Raw};

#[test]
fn shutdown_stops_the_node_as_sigterm_does() {
    let dir = tempfile::tempdir().unwrap();
    let (port, bus) = (free_port(), free_port());
    let mut node = Process::spawn(dir.path(), port, bus, None);
    let mut c = node.client();
    let _: () = cmd("SET").arg("k").arg("kept").query(&mut c).unwrap();
    let mut raw = Raw::connect(node.addr());
    for (args, want) in [
        (
            &[&b"SHUTDOWN"[..], b"ABORT"][..],
            "-ERR No shutdown in progress.\r\n",
        ),
        (&[b"SHUTDOWN", b"NOSAVE", b"SAVE"], "-ERR syntax error\r\n"),
        (&[b"SHUTDOWN", b"ABORT", b"NOW"], "-ERR syntax error\r\n"),
        (&[b"SHUTDOWN", b"SOON"], "-ERR syntax error\r\n"),
        (&[b"MULTI"], "+OK\r\n"),
        (
            &[b"SHUTDOWN"],
            "-ERR Command not allowed inside a transaction\r\n",
        ),
        (
            &[b"EXEC"],
            "-EXECABORT Transaction discarded because of previous errors.\r\n",
        ),
    ] {
        assert_eq!(raw.roundtrip(&resp(args)), want, "{args:?}");
    }
    // No reply: the connection closes and the process exits cleanly.
    raw.send(&resp(&[b"SHUTDOWN", b"NOSAVE"]));
    let mut buf = [0u8; 16];
    assert_eq!(std::io::Read::read(&mut raw.stream, &mut buf).ok(), Some(0));
    assert_eq!(node.wait_exit(Duration::from_secs(20)), Some(Some(0)));
    let node = Process::spawn(dir.path(), port, bus, None);
    let v: String = cmd("GET").arg("k").query(&mut node.client()).unwrap();
    assert_eq!(v, "kept");
}

#[test]
fn role_names_the_leader_and_its_followers() {
    let cluster = InProcessCluster::start(3);
    let l = cluster.leader();
    let _: () = cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut cluster.client(l))
        .unwrap();
    assert!(cluster.wait_converged(Duration::from_secs(20)));
    let role: redis::Value = cmd("ROLE").query(&mut cluster.client(l)).unwrap();
    let redis::Value::Array(parts) = role else {
        panic!("{role:?}")
    };
    assert_eq!(parts[0], redis::Value::BulkString(b"master".to_vec()));
    assert!(
        matches!(parts[1], redis::Value::Int(n) if n > 0),
        "{parts:?}"
    );
    let redis::Value::Array(replicas) = &parts[2] else {
        panic!("{parts:?}")
    };
    let mut ports: Vec<u16> = replicas
        .iter()
        .map(|r| match r {
            redis::Value::Array(f) => match &f[1] {
                redis::Value::BulkString(p) => String::from_utf8_lossy(p).parse().unwrap(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        })
        .collect();
    ports.sort_unstable();
    let mut followers: Vec<u16> = (0..3)
        .filter(|&i| i != l)
        .map(|i| cluster.addr(i).port())
        .collect();
    followers.sort_unstable();
    assert_eq!(ports, followers);
    let f = (l + 1) % 3;
    let role: (String, String, i64, String, i64) =
        cmd("ROLE").query(&mut cluster.client(f)).unwrap();
    assert_eq!(role.0, "slave");
    assert_eq!(role.1, "127.0.0.1");
    assert_eq!(role.2, i64::from(cluster.addr(l).port()));
    assert_eq!(role.3, "connected");
    assert!(role.4 > 0, "{role:?}");
}

#[test]
fn commands_a_raft_cluster_has_no_use_for_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(dir.path());
    let mut raw = Raw::connect(node.addr());
    for args in [
        &[&b"REPLICAOF"[..], b"127.0.0.1", b"6379"][..],
        &[b"SLAVEOF", b"NO", b"ONE"],
        &[b"SYNC"],
        &[b"PSYNC", b"?", b"-1"],
        &[b"FAILOVER"],
    ] {
        let r = raw.roundtrip(&resp(args));
        assert!(
            r.starts_with(&format!(
                "-ERR {} is not supported: every rockraft node replicates through raft",
                String::from_utf8_lossy(args[0])
            )),
            "{args:?}: {r}"
        );
    }
    let r = raw.roundtrip(&resp(&[b"CLUSTER", b"ADDSLOTS", b"1", b"2"]));
    assert!(
        r.starts_with("-ERR CLUSTER ADDSLOTS is not supported"),
        "{r}"
    );
    assert_eq!(
        raw.roundtrip(&resp(&[b"CLUSTER", b"ADDSLOTS"])),
        "-ERR wrong number of arguments for 'cluster|addslots' command\r\n"
    );
    assert_eq!(
        raw.roundtrip(&resp(&[b"REPLICAOF", b"x"])),
        "-ERR wrong number of arguments for 'replicaof' command\r\n"
    );
    assert_eq!(
        raw.roundtrip(&resp(&[b"CLUSTER", b"SAVECONFIG"])),
        "+OK\r\n"
    );
    assert_eq!(
        raw.roundtrip(&resp(&[b"BGREWRITEAOF"])),
        "+Background append only file rewriting started\r\n"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let last: i64 = cmd("LASTSAVE").query(&mut node.client()).unwrap();
    assert!((now - 120..=now).contains(&last), "{last} vs {now}");
}

/// SLOWLOG against Redis 7.0: the same entries (arguments trimmed as Redis trims them, newest
/// first, the client's name), errors, and trimming by `slowlog-max-len`; the ids, times and
/// durations are the servers' own.
#[test]
fn slowlog_matches_redis() {
    use rockraft_tests::differential::{RedisServer, Resp, Target};
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(dir.path());
    // An entry without its id, time and duration.
    let shape = |r: Resp| -> Resp {
        match r {
            Resp::Array(Some(entries)) => Resp::Array(Some(
                entries
                    .into_iter()
                    .map(|e| match e {
                        Resp::Array(Some(mut f)) if f.len() == 6 => {
                            f.drain(..3);
                            f.remove(1); // the client's address differs
                            Resp::Array(Some(f))
                        }
                        other => other,
                    })
                    .collect(),
            )),
            other => other,
        }
    };
    let a =
        |parts: &[&str]| -> Vec<Vec<u8>> { parts.iter().map(|p| p.as_bytes().to_vec()).collect() };
    let long = "x".repeat(200);
    let mut mset = vec!["MSET".to_string()];
    for i in 0..20 {
        mset.push(format!("k{i}"));
        mset.push("v".into());
    }
    let mset: Vec<&str> = mset.iter().map(String::as_str).collect();
    let script: Vec<Vec<Vec<u8>>> = vec![
        a(&["CLIENT", "SETNAME", "slowpoke"]),
        a(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]),
        a(&["SLOWLOG", "RESET"]),
        a(&["SLOWLOG", "LEN"]),
        a(&["SET", "k", &long]),
        a(&mset),
        a(&["SLOWLOG", "GET", "3"]),
        a(&["SLOWLOG", "GET", "-2"]),
        a(&["SLOWLOG", "GET", "x"]),
        a(&["SLOWLOG", "GET", "1", "2"]),
        a(&["SLOWLOG", "LEN", "1"]),
        a(&["SLOWLOG", "NOPE"]),
        a(&["CONFIG", "SET", "slowlog-max-len", "-1"]),
        a(&["CONFIG", "SET", "slowlog-log-slower-than", "-2"]),
        a(&["CONFIG", "SET", "slowlog-max-len", "2"]),
        a(&["SLOWLOG", "LEN"]),
        a(&["CONFIG", "GET", "slowlog-max-len"]),
        a(&["CONFIG", "GET", "slowlog-log-slower-than"]),
        a(&["CONFIG", "SET", "slowlog-log-slower-than", "-1"]),
        a(&["SET", "k", "v"]),
        a(&["SLOWLOG", "GET"]),
        a(&["SLOWLOG", "HELP"]),
    ];
    let mut oracle = Target::connect("redis", redis.addr);
    let mut ours = Target::connect("rockraft", node.addr());
    for cmd in &script {
        let want = shape(oracle.call(cmd));
        let got = shape(ours.call(cmd));
        assert_eq!(
            got.to_string(),
            want.to_string(),
            "{:?}",
            cmd.iter()
                .map(|c| String::from_utf8_lossy(c))
                .collect::<Vec<_>>()
        );
    }
}

/// CLIENT KILL in both forms, every filter, against Redis 7.0: the same replies and the same
/// connections closed.
#[test]
fn client_kill_matches_redis() {
    use rockraft_tests::differential::RedisServer;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(dir.path());
    for addr in [redis.addr, node.addr()] {
        let mut admin = Raw::connect(addr);
        assert_eq!(
            admin.roundtrip(&resp(&[
                b"ACL", b"SETUSER", b"app", b"on", b"nopass", b"+@all", b"~*", b"&*"
            ])),
            "+OK\r\n"
        );
        let id_of = |r: &mut Raw| -> String {
            let line = r.roundtrip(&resp(&[b"CLIENT", b"ID"]));
            line.trim_start_matches(':').trim().to_string()
        };
        let addr_of = |r: &mut Raw| -> String {
            let info = r.roundtrip(&resp(&[b"CLIENT", b"INFO"]));
            info.split(' ')
                .find_map(|f| f.strip_prefix("addr="))
                .unwrap()
                .to_string()
        };
        let mut by_id = Raw::connect(addr);
        let mut by_addr = Raw::connect(addr);
        let mut by_user = Raw::connect(addr);
        assert_eq!(
            by_user.roundtrip(&resp(&[b"AUTH", b"app", b"x"])),
            "+OK\r\n"
        );
        let mut subscriber = Raw::connect(addr);
        let sub = subscriber.roundtrip(&resp(&[b"SUBSCRIBE", b"ch"]));
        assert!(sub.ends_with(":1\r\n"), "{sub}");
        let id = id_of(&mut by_id);
        let a = addr_of(&mut by_addr);
        let me = id_of(&mut admin);
        let check = |admin: &mut Raw, args: &[&[u8]], want: &str| {
            assert_eq!(admin.roundtrip(&resp(args)), want, "{addr} {args:?}");
        };
        check(
            &mut admin,
            &[b"CLIENT", b"KILL", b"ID", b"0"],
            "-ERR client-id should be greater than 0\r\n",
        );
        check(
            &mut admin,
            &[b"CLIENT", b"KILL", b"TYPE", b"bogus"],
            "-ERR Unknown client type 'bogus'\r\n",
        );
        check(
            &mut admin,
            &[b"CLIENT", b"KILL", b"USER", b"nobody"],
            "-ERR No such user 'nobody'\r\n",
        );
        check(
            &mut admin,
            &[b"CLIENT", b"KILL", b"SKIPME", b"maybe"],
            "-ERR syntax error\r\n",
        );
        check(
            &mut admin,
            &[b"CLIENT", b"KILL", b"ID"],
            "-ERR No such client\r\n",
        );
        check(
            &mut admin,
            &[b"CLIENT", b"KILL", b"ID", b"1", b"X"],
            "-ERR syntax error\r\n",
        );
        check(
            &mut admin,
            &[b"CLIENT", b"KILL", b"1.2.3.4:5"],
            "-ERR No such client\r\n",
        );
        check(
            &mut admin,
            &[b"CLIENT", b"KILL", b"TYPE", b"master"],
            ":0\r\n",
        );
        check(
            &mut admin,
            &[b"CLIENT", b"KILL", b"ID", me.as_bytes()],
            ":0\r\n",
        );
        check(
            &mut admin,
            &[b"CLIENT", b"KILL", b"ID", id.as_bytes()],
            ":1\r\n",
        );
        check(&mut admin, &[b"CLIENT", b"KILL", a.as_bytes()], "+OK\r\n");
        check(&mut admin, &[b"CLIENT", b"KILL", b"USER", b"app"], ":1\r\n");
        check(
            &mut admin,
            &[b"CLIENT", b"KILL", b"TYPE", b"pubsub"],
            ":1\r\n",
        );
        for (what, r) in [
            ("by id", &mut by_id),
            ("by addr", &mut by_addr),
            ("by user", &mut by_user),
            ("subscriber", &mut subscriber),
        ] {
            let mut buf = [0u8; 16];
            assert_eq!(
                std::io::Read::read(&mut r.stream, &mut buf).ok(),
                Some(0),
                "{addr}: the connection killed {what} is still open"
            );
        }
        // The old form kills the caller too, after its reply.
        let own = addr_of(&mut admin);
        assert_eq!(
            admin.roundtrip(&resp(&[b"CLIENT", b"KILL", own.as_bytes()])),
            "+OK\r\n"
        );
        let mut buf = [0u8; 16];
        assert_eq!(
            std::io::Read::read(&mut admin.stream, &mut buf).ok(),
            Some(0)
        );
    }
}

/// MONITOR against Redis 7.0: the same lines (but their times and client addresses) for the
/// same commands: quoting, redacted credentials, refused and administrative commands left out; a monitor
/// may not touch the keyspace, and RESET ends it.
#[test]
fn monitor_matches_redis() {
    use rockraft_tests::differential::RedisServer;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(dir.path());
    let mut seen = Vec::new();
    for addr in [redis.addr, node.addr()] {
        let mut mon = Raw::connect(addr);
        assert_eq!(mon.roundtrip(&resp(&[b"MONITOR"])), "+OK\r\n");
        let mut c = Raw::connect(addr);
        let script: &[&[&[u8]]] = &[
            &[b"SET", b"k", b"a\"b\\c"],
            &[b"SET", b"k2", b"x\ny\x01z\t\xff"],
            &[b"AUTH", b"default", b"wrong"],
            &[b"HELLO", b"2", b"AUTH", b"default", b"wrong"],
            &[b"NOSUCH"],
            &[b"GET"],
            &[b"MULTI"],
            &[b"INCR", b"n"],
            &[b"EXEC"],
            &[b"CONFIG", b"SET", b"maxclients", b"100"],
        ];
        for args in script {
            c.roundtrip(&resp(args));
        }
        // The lines, less their times and addresses.
        let mut lines = Vec::new();
        // CONFIG SET is an administrative command: not shown, as in Redis.
        c.roundtrip(&resp(&[b"ECHO", b"last"]));
        for _ in 0..8 {
            let l = mon.read_reply();
            let rest = l.split_once("] ").map_or(l.clone(), |(_, r)| r.to_string());
            lines.push(rest);
        }
        assert_eq!(
            mon.roundtrip(&resp(&[b"GET", b"k"])),
            "-ERR Replica can't interact with the keyspace\r\n"
        );
        assert_eq!(mon.roundtrip(&resp(&[b"PING"])), "+PONG\r\n");
        // A monitor sees its own commands too, after their replies.
        let own = mon.read_reply();
        assert!(own.ends_with("] \"PING\"\r\n"), "{own}");
        assert_eq!(mon.roundtrip(&resp(&[b"RESET"])), "+RESET\r\n");
        assert_eq!(mon.roundtrip(&resp(&[b"GET", b"k"])), "$5\r\na\"b\\c\r\n");
        seen.push(lines);
    }
    assert_eq!(seen[1], seen[0]);
    assert!(
        seen[0][2].contains("\"AUTH\" \"(redacted)\" \"(redacted)\""),
        "{:?}",
        seen[0]
    );
}

/// A monitor that stops reading is disconnected at its buffer limit (the node does not keep
/// what it cannot send), and everyone else carries on.
#[test]
fn a_monitor_that_stops_reading_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(dir.path());
    let mut mon = Raw::connect(node.addr());
    assert_eq!(mon.roundtrip(&resp(&[b"MONITOR"])), "+OK\r\n");
    let mut c = node.client();
    let value = vec![b'v'; 256 * 1024];
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.cmd("SET").arg(format!("big{i}")).arg(&value).ignore();
    }
    // 200 × 256 KiB of lines: past the 32 MiB hard limit, which closes the monitor.
    let _: () = pipe.query(&mut c).unwrap();
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let closed = loop {
        match std::io::Read::read(&mut mon.stream, &mut buf) {
            Ok(0) => break true,
            Ok(n) => total += n,
            Err(_) => break false,
        }
    };
    assert!(
        closed,
        "the monitor was not disconnected ({total} bytes read)"
    );
    assert!(
        total < 48 << 20,
        "{total} bytes reached a monitor that was not reading"
    );
    let v: i64 = cmd("STRLEN").arg("big199").query(&mut c).unwrap();
    assert_eq!(v, 256 * 1024);
}

/// CLIENT REPLY OFF|ON|SKIP against Redis 7.0: the same bytes come back for the same requests.
#[test]
fn client_reply_matches_redis() {
    use rockraft_tests::differential::RedisServer;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(dir.path());
    let mut seen = Vec::new();
    for addr in [redis.addr, node.addr()] {
        let mut c = Raw::connect(addr);
        let mut out = String::new();
        for args in [
            &[&b"CLIENT"[..], b"REPLY", b"OFF"][..],
            &[b"SET", b"k", b"1"],
            &[b"CLIENT", b"REPLY", b"SKIP"],
            &[b"INCR", b"k"],
            &[b"CLIENT", b"REPLY", b"ON"],
            &[b"INCR", b"k"],
            &[b"CLIENT", b"REPLY", b"SKIP"],
            &[b"INCR", b"k"],
            &[b"GET", b"k"],
            &[b"CLIENT", b"REPLY", b"MAYBE"],
            &[b"CLIENT", b"NO-EVICT", b"ON"],
            &[b"CLIENT", b"NO-EVICT", b"SOMETIMES"],
        ] {
            c.send(&resp(args));
        }
        for _ in 0..6 {
            out.push_str(&c.read_reply());
        }
        seen.push(out);
    }
    assert_eq!(seen[1], seen[0]);
    assert_eq!(
        seen[0],
        "+OK\r\n:3\r\n$1\r\n4\r\n-ERR syntax error\r\n+OK\r\n-ERR syntax error\r\n"
    );
}

/// CLIENT PAUSE holds writes (WRITE) or every command (ALL) until it ends or CLIENT UNPAUSE;
/// reads go on under WRITE; Redis's errors for bad arguments.
#[test]
fn client_pause_holds_commands_until_it_ends() {
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(dir.path());
    let mut admin = Raw::connect(node.addr());
    for (args, want) in [
        (
            &[&b"CLIENT"[..], b"PAUSE", b"x"][..],
            "-ERR timeout is not an integer or out of range\r\n",
        ),
        (
            &[b"CLIENT", b"PAUSE", b"-1"],
            "-ERR timeout is negative\r\n",
        ),
        (
            &[b"CLIENT", b"PAUSE", b"10", b"SOME"],
            "-ERR CLIENT PAUSE mode must be WRITE or ALL\r\n",
        ),
    ] {
        assert_eq!(admin.roundtrip(&resp(args)), want);
    }
    let mut c = node.client();
    assert_eq!(
        admin.roundtrip(&resp(&[b"CLIENT", b"PAUSE", b"700", b"WRITE"])),
        "+OK\r\n"
    );
    let start = Instant::now();
    let _: Option<String> = cmd("GET").arg("k").query(&mut c).unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "a read waited out a WRITE pause"
    );
    let _: () = cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(600),
        "a write ran during the pause"
    );
    // A long pause, ended early by UNPAUSE from another connection.
    assert_eq!(
        admin.roundtrip(&resp(&[b"CLIENT", b"PAUSE", b"30000", b"WRITE"])),
        "+OK\r\n"
    );
    let writer = std::thread::spawn({
        let addr = node.addr();
        move || {
            let mut w = rockraft_tests::connect(addr).unwrap();
            let t = Instant::now();
            let _: () = cmd("SET").arg("k").arg("w").query(&mut w).unwrap();
            t.elapsed()
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(admin.roundtrip(&resp(&[b"CLIENT", b"UNPAUSE"])), "+OK\r\n");
    let waited = writer.join().unwrap();
    assert!(
        waited < Duration::from_secs(10),
        "UNPAUSE did not release the write ({waited:?})"
    );
    // ALL holds reads too.
    assert_eq!(
        admin.roundtrip(&resp(&[b"CLIENT", b"PAUSE", b"600", b"ALL"])),
        "+OK\r\n"
    );
    let start = Instant::now();
    let _: String = cmd("GET").arg("k").query(&mut c).unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "a read ran during an ALL pause"
    );
}

/// SAVE and BGSAVE write a checkpoint of the node to `<data-dir>/save` (a new one replaces
/// the last), which LASTSAVE and INFO persistence then date; the checkpoint restores as a
/// backup does.
#[test]
fn save_and_bgsave_write_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let node = InProcess::start(&data);
    let mut c = node.client();
    let _: () = cmd("SET").arg("k").arg("saved").query(&mut c).unwrap();
    let before: i64 = cmd("LASTSAVE").query(&mut c).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let _: () = cmd("SAVE").query(&mut c).unwrap();
    let after: i64 = cmd("LASTSAVE").query(&mut c).unwrap();
    assert!(after > before, "{before} {after}");
    assert!(data.join("save").is_dir());
    let started: String = cmd("BGSAVE").query(&mut c).unwrap();
    assert_eq!(started, "Background saving started");
    assert!(rockraft_tests::wait_until(Duration::from_secs(20), || {
        rockraft_tests::info_field(&mut c, "persistence", "rdb_bgsave_in_progress").as_deref()
            == Some("0")
    }));
    assert_eq!(
        rockraft_tests::info_field(&mut c, "persistence", "rdb_last_bgsave_status").as_deref(),
        Some("ok")
    );
    let e = cmd("BGSAVE")
        .arg("NOW")
        .query::<String>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("syntax error"), "{e}");
    // The checkpoint is a backup: `rockraft-ctl restore` makes a node of it, with the key.
    let copy = dir.path().join("copy");
    std::fs::rename(data.join("save"), &copy).unwrap();
    drop(node);
    let restored_dir = dir.path().join("restored");
    let out = std::process::Command::new(rockraft_tests::workspace_binary("rockraft-ctl"))
        .args(["restore", "--from"])
        .arg(&copy)
        .arg("--data-dir")
        .arg(&restored_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = InProcess::start(&restored_dir);
    let v: String = cmd("GET").arg("k").query(&mut restored.client()).unwrap();
    assert_eq!(v, "saved");
}

/// INFO commandstats and errorstats count calls, failures and error codes as Redis does;
/// CONFIG RESETSTAT clears them; the default INFO has errorstats, `all` commandstats too.
#[test]
fn commandstats_and_errorstats_count_calls_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(dir.path());
    let mut c = node.client();
    // The harness's own readiness probes are counted too: start from zero.
    let _: () = cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    let _: () = cmd("SET").arg("a").arg("1").query(&mut c).unwrap();
    let _: i64 = cmd("INCR").arg("a").query(&mut c).unwrap();
    let _: i64 = cmd("INCR").arg("a").query(&mut c).unwrap();
    assert!(cmd("HSET")
        .arg("a")
        .arg("f")
        .arg("v")
        .query::<i64>(&mut c)
        .is_err());
    assert!(cmd("NOSUCH").query::<()>(&mut c).is_err());
    let info =
        |c: &mut redis::Connection, s: &str| -> String { cmd("INFO").arg(s).query(c).unwrap() };
    let stats = info(&mut c, "commandstats");
    for want in [
        "cmdstat_set:calls=1,",
        "cmdstat_incr:calls=2,",
        "cmdstat_hset:calls=1,",
    ] {
        assert!(stats.contains(want), "{want} not in {stats}");
    }
    assert!(
        stats.contains("rejected_calls=0,failed_calls=1\r\n"),
        "{stats}"
    );
    let errors = info(&mut c, "errorstats");
    assert!(errors.contains("errorstat_ERR:count=1\r\n"), "{errors}");
    assert!(
        errors.contains("errorstat_WRONGTYPE:count=1\r\n"),
        "{errors}"
    );
    assert!(info(&mut c, "stats").contains("total_error_replies:2\r\n"));
    let default: String = cmd("INFO").query(&mut c).unwrap();
    assert!(default.contains("# Errorstats") && !default.contains("# Commandstats"));
    assert!(info(&mut c, "all").contains("# Commandstats"));
    let _: () = cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    let stats = info(&mut c, "commandstats");
    assert!(!stats.contains("cmdstat_set:"), "{stats}");
    assert_eq!(info(&mut c, "errorstats"), "# Errorstats\r\n");
}

/// MEMORY against Redis 7.0: HELP, DOCTOR on a small dataset, PURGE and every error the same;
/// USAGE gives a number for a key (growing with its data) and nil for a missing one.
#[test]
fn memory_matches_redis_where_it_can() {
    use rockraft_tests::differential::{RedisServer, Target};
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(dir.path());
    let a =
        |parts: &[&str]| -> Vec<Vec<u8>> { parts.iter().map(|p| p.as_bytes().to_vec()).collect() };
    let mut oracle = Target::connect("redis", redis.addr);
    let mut ours = Target::connect("rockraft", node.addr());
    for cmd in [
        a(&["SET", "k", "v"]),
        a(&["MEMORY", "HELP"]),
        a(&["MEMORY", "DOCTOR"]),
        a(&["MEMORY", "PURGE"]),
        a(&["MEMORY", "USAGE", "nokey"]),
        a(&["MEMORY", "USAGE", "k", "SAMPLES", "x"]),
        a(&["MEMORY", "USAGE", "k", "SAMPLES", "-1"]),
        a(&["MEMORY", "USAGE", "k", "FOO", "1"]),
        a(&["MEMORY", "USAGE", "k", "SAMPLES"]),
        a(&["MEMORY", "USAGE"]),
        a(&["MEMORY", "NOPE"]),
    ] {
        assert_eq!(
            ours.call(&cmd).to_string(),
            oracle.call(&cmd).to_string(),
            "{cmd:?}"
        );
    }
    let mut c = node.client();
    let small: i64 = cmd("MEMORY").arg("USAGE").arg("k").query(&mut c).unwrap();
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("HSET")
            .arg("h")
            .arg(format!("field{i}"))
            .arg("x".repeat(100))
            .ignore();
    }
    let _: () = pipe.query(&mut c).unwrap();
    let all: i64 = cmd("MEMORY")
        .arg("USAGE")
        .arg("h")
        .arg("SAMPLES")
        .arg(0)
        .query(&mut c)
        .unwrap();
    let sampled: i64 = cmd("MEMORY").arg("USAGE").arg("h").query(&mut c).unwrap();
    assert!(small > 0 && small < 100, "{small}");
    assert!(all > 100_000 && sampled > 100_000, "{all} {sampled}");
    let stats: std::collections::HashMap<String, redis::Value> =
        cmd("MEMORY").arg("STATS").query(&mut c).unwrap();
    assert_eq!(stats["keys.count"], redis::Value::Int(2));
}
