//! Lua scripts on real nodes: one log entry each, run at apply on every node; the script
//! cache is replicated state (EVALSHA after failover, on a node that joined later, after a
//! restart); random choices and runaway scripts leave every node identical.

use std::time::Duration;

use redis::{cmd, Value};
use rockraft_server::Config;
use rockraft_tests::{form_cluster, InProcess, InProcessCluster};

fn sha1(body: &str) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

fn digest(c: &mut redis::Connection) -> String {
    cmd("DEBUG").arg("DIGEST").query(c).unwrap()
}

#[test]
fn evalsha_works_on_the_next_leader_and_after_a_restart() {
    let mut cluster = InProcessCluster::start(3);
    let leader = cluster.leader();
    let mut c = cluster.client(leader);
    let body = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    let sha: String = cmd("SCRIPT").arg("LOAD").arg(body).query(&mut c).unwrap();
    assert_eq!(sha, sha1(body));
    let n: i64 = cmd("EVALSHA")
        .arg(&sha)
        .arg(1)
        .arg("counter")
        .arg(5)
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 5);
    // EVAL caches its script too.
    let other = "return 'cached by eval'";
    let _: String = cmd("EVAL").arg(other).arg(0).query(&mut c).unwrap();
    assert!(cluster.wait_converged(Duration::from_secs(30)));

    cluster.stop(leader);
    let next = cluster.leader();
    assert_ne!(next, leader);
    let mut c = cluster.client(next);
    let n: i64 = cmd("EVALSHA")
        .arg(&sha)
        .arg(1)
        .arg("counter")
        .arg(2)
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 7);
    let s: String = cmd("EVALSHA")
        .arg(sha1(other))
        .arg(0)
        .query(&mut c)
        .unwrap();
    assert_eq!(s, "cached by eval");
    let exists: Vec<i64> = cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .arg("ffffffffffffffffffffffffffffffffffffffff")
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, vec![1, 0]);

    cluster.restart(leader);
    assert!(cluster.wait_converged(Duration::from_secs(60)));
    // The restarted node (a follower now) reads its own replicated cache.
    let mut r = cluster.client(leader);
    let _: () = cmd("READONLY").query(&mut r).unwrap();
    let s: String = cmd("EVALSHA_RO")
        .arg(sha1(other))
        .arg(0)
        .query(&mut r)
        .unwrap();
    assert_eq!(s, "cached by eval");

    // SCRIPT FLUSH goes through the log as well.
    let next = cluster.leader();
    let mut c = cluster.client(next);
    let _: () = cmd("SCRIPT").arg("FLUSH").query(&mut c).unwrap();
    let err = cmd("EVALSHA")
        .arg(&sha)
        .arg(1)
        .arg("counter")
        .arg(1)
        .query::<i64>(&mut c)
        .unwrap_err();
    assert_eq!(err.code(), Some("NOSCRIPT"));
    assert!(cluster.wait_converged(Duration::from_secs(30)));
}

#[test]
fn a_script_loaded_before_a_node_joins_works_on_it() {
    let mut cluster = InProcessCluster::start_with(1, |c| c.raft_log_max_entries = 200);
    let mut c = cluster.client(0);
    let body = "return 'from the snapshot'";
    let sha: String = cmd("SCRIPT").arg("LOAD").arg(body).query(&mut c).unwrap();
    let lib = "#!lua name=joined\nredis.register_function{function_name='hello', \
               callback=function(keys, args) return 'function from the snapshot' end, flags={'no-writes'}}";
    let name: String = cmd("FUNCTION").arg("LOAD").arg(lib).query(&mut c).unwrap();
    assert_eq!(name, "joined");
    // Enough entries after it that the joiner gets a snapshot, not the log.
    for i in 0..600 {
        let _: () = cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query(&mut c)
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_data_dir(dir.path());
    cfg.raft_log_max_entries = 200;
    let joiner = InProcess::start_with(cfg);
    form_cluster(cluster.addr(0), &[joiner.addr()]);
    cluster.nodes.push(Some(joiner));
    assert!(cluster.wait_converged(Duration::from_secs(60)));
    let mut j = cluster.client(1);
    let installed = rockraft_tests::info_field(&mut j, "raft", "raft_snapshots_installed").unwrap();
    assert_eq!(installed, "1");
    let _: () = cmd("READONLY").query(&mut j).unwrap();
    let s: String = cmd("EVALSHA_RO").arg(&sha).arg(0).query(&mut j).unwrap();
    assert_eq!(s, "from the snapshot");
    let s: String = cmd("FCALL_RO").arg("hello").arg(0).query(&mut j).unwrap();
    assert_eq!(s, "function from the snapshot");
}

#[test]
fn random_choices_and_runaway_scripts_leave_every_node_identical() {
    let cluster = InProcessCluster::start(3);
    let leader = cluster.leader();
    let mut c = cluster.client(leader);
    let _: i64 = cmd("SADD")
        .arg("s")
        .arg((0..100).collect::<Vec<i32>>())
        .query(&mut c)
        .unwrap();
    // Every random choice a script can make, written down.
    let body = r#"
        redis.call('SET', 'popped', redis.call('SPOP', 's'))
        redis.call('SET', 'member', redis.call('SRANDMEMBER', 's'))
        redis.call('SET', 'key', redis.call('RANDOMKEY'))
        redis.call('SET', 'number', math.random(1000000))
        redis.call('SET', 'time', redis.call('TIME')[1])
        local t = redis.call('SRANDMEMBER', 's', -5)
        return redis.call('RPUSH', 'picks', unpack(t))
    "#;
    for _ in 0..20 {
        let _: i64 = cmd("EVAL").arg(body).arg(0).query(&mut c).unwrap();
    }
    // A runaway script stops at its budget at the same instruction on every node; what it
    // wrote before stays.
    let err = cmd("EVAL")
        .arg("redis.call('SET', 'before', 'kept') local i = 0 while true do i = i + 1 end")
        .arg(0)
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("budget"), "{err}");
    let kept: String = cmd("GET").arg("before").query(&mut c).unwrap();
    assert_eq!(kept, "kept");
    // The node still serves scripts.
    let one: i64 = cmd("EVAL").arg("return 1").arg(0).query(&mut c).unwrap();
    assert_eq!(one, 1);
    assert!(cluster.wait_converged(Duration::from_secs(30)));
    let digests: Vec<String> = (0..3).map(|i| digest(&mut cluster.client(i))).collect();
    assert!(digests.iter().all(|d| d == &digests[0]), "{digests:?}");
    let left: i64 = cmd("SCARD").arg("s").query(&mut c).unwrap();
    assert_eq!(left, 80);
}

#[test]
fn scripts_queue_in_multi_and_read_only_scripts_are_reads() {
    let (_d, node) = {
        let d = tempfile::tempdir().unwrap();
        let n = InProcess::start(&d.path().join("n"));
        (d, n)
    };
    let mut c = node.client();
    let replies: Vec<Value> = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("x")
        .arg("1")
        .cmd("EVAL")
        .arg("return redis.call('INCR', KEYS[1])")
        .arg(1)
        .arg("x")
        .cmd("EVAL")
        .arg("return redis.call('GET', KEYS[1])")
        .arg(1)
        .arg("x")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        replies,
        vec![Value::Okay, Value::Int(2), Value::BulkString(b"2".to_vec())]
    );
    let v: String = cmd("EVAL_RO")
        .arg("return redis.call('GET', KEYS[1])")
        .arg(1)
        .arg("x")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, "2");
    let err = cmd("EVAL_RO")
        .arg("return redis.call('SET', KEYS[1], 'y')")
        .arg(1)
        .arg("x")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Write commands are not allowed from read-only scripts."),
        "{err}"
    );
    // A no-writes script through EVAL is read-only as well.
    let err = cmd("EVAL")
        .arg("#!lua flags=no-writes\nreturn redis.call('SET', 'x', 'z')")
        .arg(0)
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("read-only scripts"), "{err}");
    // A script that runs SCAN to the end sees every key (its cursors are its own).
    for i in 0..50 {
        let _: () = cmd("SET")
            .arg(format!("scan:{i}"))
            .arg(i)
            .query(&mut c)
            .unwrap();
    }
    let n: i64 = cmd("EVAL")
        .arg(
            "local cursor, n = '0', 0 repeat local r = redis.call('SCAN', cursor, 'MATCH', 'scan:*') \
             cursor = r[1] n = n + #r[2] until cursor == '0' return n",
        )
        .arg(0)
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 50);
}

#[test]
fn functions_survive_failover_and_no_writes_calls_are_reads() {
    let mut cluster = InProcessCluster::start(3);
    let leader = cluster.leader();
    let mut c = cluster.client(leader);
    let lib = "#!lua name=counters\n\
        local calls = 0\n\
        redis.register_function('bump', function(keys, args) calls = calls + 1 \
            return {redis.call('INCRBY', keys[1], args[1]), calls} end)\n\
        redis.register_function{function_name='peek', flags={'no-writes'}, \
            callback=function(keys) return redis.call('GET', keys[1]) end}";
    let name: String = cmd("FUNCTION").arg("LOAD").arg(lib).query(&mut c).unwrap();
    assert_eq!(name, "counters");
    let bump = |c: &mut redis::Connection, by: i64| -> Vec<i64> {
        cmd("FCALL")
            .arg("bump")
            .arg(1)
            .arg("n")
            .arg(by)
            .query(c)
            .unwrap()
    };
    assert_eq!(bump(&mut c, 5), vec![5, 1]);
    // Each call starts from the library as loaded (its locals would differ between nodes).
    assert_eq!(bump(&mut c, 1), vec![6, 1]);
    assert!(cluster.wait_converged(Duration::from_secs(30)));

    cluster.stop(leader);
    let next = cluster.leader();
    let mut c = cluster.client(next);
    assert_eq!(bump(&mut c, 2), vec![8, 1]);
    let listed: Vec<Value> = cmd("FUNCTION").arg("LIST").query(&mut c).unwrap();
    assert_eq!(listed.len(), 1);

    // On a follower that asked for local reads, a no-writes function (and a no-writes
    // script) is served as a read; a function that may write is redirected.
    cluster.restart(leader);
    assert!(cluster.wait_converged(Duration::from_secs(60)));
    let follower = (0..3).find(|&i| i != cluster.leader()).unwrap();
    let mut f = cluster.client(follower);
    let _: () = cmd("READONLY").query(&mut f).unwrap();
    let v: String = cmd("FCALL")
        .arg("peek")
        .arg(1)
        .arg("n")
        .query(&mut f)
        .unwrap();
    assert_eq!(v, "8");
    let v: String = cmd("EVAL")
        .arg("#!lua flags=no-writes\nreturn redis.call('GET', KEYS[1])")
        .arg(1)
        .arg("n")
        .query(&mut f)
        .unwrap();
    assert_eq!(v, "8");
    let err = cmd("FCALL")
        .arg("bump")
        .arg(1)
        .arg("n")
        .arg(1)
        .query::<()>(&mut f)
        .unwrap_err();
    assert_eq!(err.code(), Some("MOVED"), "{err}");
    let err = cmd("FCALL_RO")
        .arg("bump")
        .arg(1)
        .arg("n")
        .arg(1)
        .query::<()>(&mut f)
        .unwrap_err();
    assert!(err.to_string().contains("write flag"), "{err}");

    // FUNCTION DELETE and FLUSH go through the log as well.
    let mut c = cluster.client(cluster.leader());
    let _: () = cmd("FUNCTION")
        .arg("DELETE")
        .arg("counters")
        .query(&mut c)
        .unwrap();
    let err = cmd("FCALL")
        .arg("bump")
        .arg(1)
        .arg("n")
        .arg(1)
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("Function not found"), "{err}");
    assert!(cluster.wait_converged(Duration::from_secs(30)));
    let digests: Vec<String> = (0..3).map(|i| digest(&mut cluster.client(i))).collect();
    assert!(digests.iter().all(|d| d == &digests[0]), "{digests:?}");
}
