//! Every command of the foundation, through a real client library (the `redis` crate).

use redis::{cmd, Connection, RedisResult, Value};
use rockraft_tests::InProcess;

fn node() -> (tempfile::TempDir, InProcess) {
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(&dir.path().join("n"));
    (dir, node)
}

fn q<T: redis::FromRedisValue>(c: &mut Connection, args: &[&str]) -> T {
    let mut command = cmd(args[0]);
    for a in &args[1..] {
        command.arg(*a);
    }
    command
        .query(c)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

fn err(c: &mut Connection, args: &[&str]) -> String {
    let mut command = cmd(args[0]);
    for a in &args[1..] {
        command.arg(*a);
    }
    let r: RedisResult<Value> = command.query(c);
    match r {
        Err(e) => e.to_string(),
        Ok(v) => panic!("{args:?} should fail, got {v:?}"),
    }
}

#[test]
fn string_commands() {
    let (_d, n) = node();
    let c = &mut n.client();
    assert_eq!(q::<String>(c, &["SET", "k", "v"]), "OK");
    assert_eq!(q::<String>(c, &["GET", "k"]), "v");
    assert_eq!(q::<Option<String>>(c, &["SET", "k", "w", "NX"]), None);
    assert_eq!(q::<Option<String>>(c, &["SET", "new", "w", "XX"]), None);
    assert_eq!(
        q::<Option<String>>(c, &["SET", "k", "w", "XX", "GET"]),
        Some("v".into())
    );
    assert_eq!(
        q::<Option<String>>(c, &["SET", "k2", "x", "NX", "GET"]),
        None
    );
    assert_eq!(q::<String>(c, &["GET", "k2"]), "x");
    assert_eq!(q::<i64>(c, &["SETNX", "k", "z"]), 0);
    assert_eq!(q::<i64>(c, &["SETNX", "nx", "z"]), 1);
    assert_eq!(q::<String>(c, &["SETEX", "ex", "100", "v"]), "OK");
    assert!((99..=100).contains(&q::<i64>(c, &["TTL", "ex"])));
    assert_eq!(q::<String>(c, &["PSETEX", "pex", "100000", "v"]), "OK");
    assert!(q::<i64>(c, &["PTTL", "pex"]) > 99_000);
    assert!(err(c, &["SETEX", "ex", "-1", "v"]).contains("invalid expire time in 'setex' command"));
    assert_eq!(q::<Option<String>>(c, &["GETSET", "gs", "1"]), None);
    assert_eq!(
        q::<Option<String>>(c, &["GETSET", "gs", "2"]),
        Some("1".into())
    );
    assert_eq!(q::<Option<String>>(c, &["GETDEL", "gs"]), Some("2".into()));
    assert_eq!(q::<i64>(c, &["EXISTS", "gs"]), 0);
    assert_eq!(q::<String>(c, &["GETEX", "k", "EX", "50"]), "w");
    assert!(q::<i64>(c, &["TTL", "k"]) > 40);
    assert_eq!(q::<String>(c, &["GETEX", "k", "PERSIST"]), "w");
    assert_eq!(q::<i64>(c, &["TTL", "k"]), -1);
    assert_eq!(q::<String>(c, &["MSET", "a", "1", "b", "2"]), "OK");
    assert!(
        err(c, &["MSET", "a", "1", "b"]).contains("wrong number of arguments for 'mset' command")
    );
    assert_eq!(
        q::<Vec<Option<String>>>(c, &["MGET", "a", "b", "nope"]),
        vec![Some("1".into()), Some("2".into()), None]
    );
    assert_eq!(q::<i64>(c, &["MSETNX", "a", "9", "fresh", "9"]), 0);
    assert_eq!(
        q::<Option<String>>(c, &["GET", "fresh"]),
        None,
        "MSETNX is all or nothing"
    );
    assert_eq!(q::<i64>(c, &["MSETNX", "f1", "1", "f2", "2"]), 1);
    assert_eq!(q::<i64>(c, &["INCR", "n"]), 1);
    assert_eq!(q::<i64>(c, &["INCRBY", "n", "10"]), 11);
    assert_eq!(q::<i64>(c, &["DECR", "n"]), 10);
    assert_eq!(q::<i64>(c, &["DECRBY", "n", "20"]), -10);
    assert_eq!(q::<String>(c, &["INCRBYFLOAT", "f", "10.5"]), "10.5");
    assert_eq!(q::<String>(c, &["INCRBYFLOAT", "f", "0.1"]), "10.6");
    assert_eq!(q::<String>(c, &["INCRBYFLOAT", "f", "-5"]), "5.6");
    assert_eq!(q::<i64>(c, &["APPEND", "ap", "Hello"]), 5);
    assert_eq!(q::<i64>(c, &["APPEND", "ap", " World"]), 11);
    assert_eq!(q::<i64>(c, &["STRLEN", "ap"]), 11);
    assert_eq!(q::<i64>(c, &["STRLEN", "nope"]), 0);
    assert_eq!(q::<String>(c, &["GETRANGE", "ap", "0", "4"]), "Hello");
    assert_eq!(q::<String>(c, &["GETRANGE", "ap", "-5", "-1"]), "World");
    assert_eq!(q::<String>(c, &["GETRANGE", "ap", "5", "2"]), "");
    assert_eq!(
        q::<String>(c, &["GETRANGE", "ap", "0", "100"]),
        "Hello World"
    );
    assert_eq!(q::<i64>(c, &["SETRANGE", "ap", "6", "Redis"]), 11);
    assert_eq!(q::<String>(c, &["GET", "ap"]), "Hello Redis");
    assert_eq!(q::<i64>(c, &["SETRANGE", "pad", "3", "x"]), 4);
    assert_eq!(q::<Vec<u8>>(c, &["GET", "pad"]), b"\0\0\0x");
    assert_eq!(q::<i64>(c, &["SETRANGE", "none", "3", ""]), 0);
    assert_eq!(q::<i64>(c, &["EXISTS", "none"]), 0);
    assert!(err(c, &["SETRANGE", "ap", "-1", "x"]).contains("offset is out of range"));
    // Found by the fuzz test: an offset whose sum with the length overflows once took the
    // node down at apply (every replica applies it).
    for offset in ["9223372036854775807", "9223372036854775806", "536870912"] {
        let e = err(c, &["SETRANGE", "ap", offset, "xx"]);
        assert!(
            e.contains("string exceeds maximum allowed size (proto-max-bulk-len)"),
            "offset {offset}: {e}"
        );
    }
    assert_eq!(q::<String>(c, &["GET", "ap"]), "Hello Redis");
}

#[test]
fn keyspace_commands() {
    let (_d, n) = node();
    let c = &mut n.client();
    let _: () = q(c, &["MSET", "user:1", "a", "user:2", "b", "other", "c"]);
    assert_eq!(q::<i64>(c, &["EXISTS", "user:1", "user:1", "nope"]), 2);
    assert_eq!(q::<i64>(c, &["DBSIZE"]), 3);
    let mut keys: Vec<String> = q(c, &["KEYS", "user:*"]);
    keys.sort();
    assert_eq!(keys, ["user:1", "user:2"]);
    assert_eq!(q::<String>(c, &["TYPE", "other"]), "string");
    assert_eq!(q::<String>(c, &["RENAME", "other", "renamed"]), "OK");
    assert_eq!(q::<i64>(c, &["EXISTS", "other"]), 0);
    assert_eq!(q::<i64>(c, &["RENAMENX", "renamed", "user:1"]), 0);
    assert_eq!(q::<i64>(c, &["RENAMENX", "renamed", "fresh"]), 1);
    assert_eq!(q::<String>(c, &["GET", "fresh"]), "c");
    assert_eq!(q::<i64>(c, &["EXPIRE", "fresh", "100"]), 1);
    assert_eq!(q::<i64>(c, &["EXPIRE", "fresh", "200", "NX"]), 0);
    assert_eq!(q::<i64>(c, &["EXPIRE", "fresh", "200", "GT"]), 1);
    assert_eq!(q::<i64>(c, &["EXPIRE", "fresh", "50", "GT"]), 0);
    assert_eq!(q::<i64>(c, &["EXPIRE", "fresh", "50", "LT"]), 1);
    assert_eq!(q::<i64>(c, &["EXPIRE", "user:1", "50", "XX"]), 0);
    assert!(err(c, &["EXPIRE", "fresh", "5", "NX", "XX"]).contains("not compatible"));
    assert_eq!(q::<i64>(c, &["PEXPIRE", "user:2", "100000"]), 1);
    assert!(q::<i64>(c, &["PTTL", "user:2"]) > 99_000);
    let at = q::<i64>(c, &["EXPIRETIME", "user:2"]);
    let pat = q::<i64>(c, &["PEXPIRETIME", "user:2"]);
    assert_eq!(at, pat / 1000);
    assert_eq!(
        q::<i64>(c, &["EXPIREAT", "user:2", &(at + 10).to_string()]),
        1
    );
    assert_eq!(q::<i64>(c, &["EXPIRETIME", "user:2"]), at + 10);
    assert_eq!(
        q::<i64>(c, &["PEXPIREAT", "user:2", &((at + 20) * 1000).to_string()]),
        1
    );
    assert_eq!(q::<i64>(c, &["PERSIST", "user:2"]), 1);
    assert_eq!(q::<i64>(c, &["PERSIST", "user:2"]), 0);
    assert_eq!(q::<i64>(c, &["TTL", "user:2"]), -1);
    assert_eq!(q::<i64>(c, &["TTL", "nope"]), -2);
    assert_eq!(q::<i64>(c, &["EXPIRETIME", "nope"]), -2);
    assert_eq!(
        q::<i64>(c, &["EXPIRE", "user:2", "-1"]),
        1,
        "a past time deletes"
    );
    assert_eq!(q::<i64>(c, &["EXISTS", "user:2"]), 0);
    assert_eq!(q::<i64>(c, &["DEL", "user:1", "fresh", "nope"]), 2);
    assert_eq!(q::<i64>(c, &["UNLINK", "renamed"]), 0);
    assert_eq!(q::<i64>(c, &["DBSIZE"]), 0);
}

#[test]
fn scan_visits_every_key_once() {
    let (_d, n) = node();
    let c = &mut n.client();
    let mut mset = cmd("MSET");
    for i in 0..500 {
        mset.arg(format!("key:{i}")).arg(i);
    }
    let _: () = mset.query(c).unwrap();
    let _: () = q(c, &["SET", "skip", "x"]);
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_string();
    let mut rounds = 0;
    loop {
        let (next, batch): (String, Vec<String>) =
            q(c, &["SCAN", &cursor, "MATCH", "key:*", "COUNT", "37"]);
        for k in batch {
            assert!(seen.insert(k), "key returned twice");
        }
        rounds += 1;
        assert!(rounds < 100, "SCAN does not terminate");
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 500);
    assert!(!seen.contains("skip"));
    // The client library's iterator works too.
    let iter: Vec<String> = redis::Commands::scan_match::<_, String>(c, "key:4*")
        .unwrap()
        .collect::<RedisResult<_>>()
        .unwrap();
    assert_eq!(iter.len(), 111);
    let (_, none): (String, Vec<String>) = q(c, &["SCAN", "0", "TYPE", "hash"]);
    assert!(none.is_empty());
}

#[test]
fn server_and_connection_commands() {
    let (_d, n) = node();
    let c = &mut n.client();
    assert_eq!(q::<String>(c, &["PING"]), "PONG");
    assert_eq!(q::<String>(c, &["ECHO", "hey"]), "hey");
    assert_eq!(q::<String>(c, &["SELECT", "0"]), "OK");
    let id: i64 = q(c, &["CLIENT", "ID"]);
    assert!(id > 0);
    assert_eq!(q::<Option<String>>(c, &["CLIENT", "GETNAME"]), None);
    assert_eq!(q::<String>(c, &["CLIENT", "SETNAME", "tester"]), "OK");
    assert_eq!(q::<String>(c, &["CLIENT", "GETNAME"]), "tester");
    assert_eq!(
        q::<String>(c, &["CLIENT", "SETINFO", "LIB-NAME", "mylib"]),
        "OK"
    );
    let list: String = q(c, &["CLIENT", "LIST"]);
    assert!(list.contains(&format!("id={id} ")), "{list}");
    assert!(list.contains("name=tester"), "{list}");
    assert!(list.contains("lib-name=mylib"), "{list}");
    assert!(err(c, &["CLIENT", "SETNAME", "has space"]).contains("cannot contain spaces"));
    let info: String = q(c, &["INFO"]);
    for field in [
        "redis_version:7.",
        "rockraft_version:",
        "redis_mode:cluster",
        "arch_bits:64",
        "tcp_port:",
        "uptime_in_seconds:",
        "run_id:",
        "connected_clients:",
        "role:master",
        "raft_role:leader",
        "raft_term:",
        "raft_applied_index:",
        "cluster_enabled:1",
        "total_commands_processed:",
    ] {
        assert!(info.contains(field), "INFO lacks {field}");
    }
    let server_only: String = q(c, &["INFO", "server"]);
    assert!(server_only.starts_with("# Server\r\n") && !server_only.contains("# Clients"));
    let _: () = q(c, &["SET", "k", "v"]);
    let keyspace: String = q(c, &["INFO", "keyspace"]);
    assert!(keyspace.contains("db0:keys=1,expires=0"), "{keyspace}");
    let save: Vec<String> = q(c, &["CONFIG", "GET", "save"]);
    assert_eq!(save, ["save", ""]);
    let many: Vec<String> = q(c, &["CONFIG", "GET", "max*"]);
    assert!(many.contains(&"maxclients".to_string()));
    let unknown: Vec<String> = q(c, &["CONFIG", "GET", "no-such-param"]);
    assert!(unknown.is_empty());
    assert!(err(c, &["CONFIG", "SET", "no-such", "1"]).contains("Unknown option"));
    assert_eq!(
        q::<String>(c, &["CONFIG", "SET", "maxclients", "500"]),
        "OK"
    );
    assert_eq!(
        q::<Vec<String>>(c, &["CONFIG", "GET", "maxclients"])[1],
        "500"
    );
    let (secs, micros): (String, String) = q(c, &["TIME"]);
    assert!(secs.parse::<u64>().unwrap() > 1_600_000_000);
    assert!(micros.parse::<u32>().unwrap() < 1_000_000);
    assert_eq!(q::<i64>(c, &["DBSIZE"]), 1);
    assert_eq!(q::<String>(c, &["FLUSHDB"]), "OK");
    assert_eq!(q::<i64>(c, &["DBSIZE"]), 0);
    let _: () = q(c, &["SET", "k", "v"]);
    assert_eq!(q::<String>(c, &["FLUSHALL", "ASYNC"]), "OK");
    assert_eq!(q::<i64>(c, &["DBSIZE"]), 0);
    // DEBUG DIGEST: all zeros for no data, changes with the data, back when the data is back.
    assert_eq!(q::<String>(c, &["DEBUG", "DIGEST"]), "0".repeat(40));
    let _: () = q(c, &["SET", "a", "1"]);
    let one: String = q(c, &["DEBUG", "DIGEST"]);
    assert_eq!(one.len(), 40);
    let _: () = q(c, &["SET", "a", "2"]);
    assert_ne!(q::<String>(c, &["DEBUG", "DIGEST"]), one);
    let _: () = q(c, &["SET", "a", "1"]);
    assert_eq!(q::<String>(c, &["DEBUG", "DIGEST"]), one);
    assert_eq!(q::<String>(c, &["QUIT"]), "OK");
}

#[test]
fn command_introspection() {
    let (_d, n) = node();
    let c = &mut n.client();
    let count: i64 = q(c, &["COMMAND", "COUNT"]);
    assert!(count >= 50, "{count}");
    let all: Vec<Value> = q(c, &["COMMAND"]);
    assert_eq!(all.len() as i64, count);
    let info: Vec<Value> = q(c, &["COMMAND", "INFO", "get", "nosuch"]);
    assert_eq!(info.len(), 2);
    assert_eq!(info[1], Value::Nil);
    let Value::Array(get) = &info[0] else {
        panic!("{info:?}")
    };
    assert_eq!(get.len(), 10);
    assert_eq!(get[1], Value::Int(2));
    assert_eq!(get[3], Value::Int(1));
    let keys: Vec<String> = q(c, &["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"]);
    assert_eq!(keys, ["a", "b"]);
    assert!(err(c, &["COMMAND", "GETKEYS", "PING", "x"]).contains("no key arguments"));
    // Redis 7.0's arity for COMMAND GETKEYS is -4.
    assert!(err(c, &["COMMAND", "GETKEYS", "PING"]).contains("wrong number of arguments"));
    let docs: Value = q(c, &["COMMAND", "DOCS", "set"]);
    assert!(format!("{docs:?}").contains("summary"));
}

#[test]
fn wrong_type_and_bad_arguments_are_clean_errors() {
    let (_d, n) = node();
    let c = &mut n.client();
    let _: () = q(c, &["SET", "s", "notanumber"]);
    assert!(err(c, &["INCRBY", "s", "1"]).contains("not an integer"));
    assert!(err(c, &["INCRBY", "n", "1.5"]).contains("not an integer"));
    assert!(err(c, &["DECRBY", "n", "-9223372036854775808"]).contains("decrement would overflow"));
    assert!(err(c, &["INCRBYFLOAT", "s", "1"]).contains("not a valid float"));
    assert!(err(c, &["SET", "k", "v", "NX", "XX"]).contains("syntax error"));
    assert!(err(c, &["SET", "k", "v", "EX", "10", "PX", "10"]).contains("syntax error"));
    assert!(err(c, &["SET", "k", "v", "EX", "nope"]).contains("not an integer"));
    assert!(err(c, &["SET", "k", "v", "KEEPTTL", "EX", "1"]).contains("syntax error"));
    assert!(err(c, &["GETEX", "k", "EX"]).contains("syntax error"));
    assert!(err(c, &["SCAN", "0", "COUNT", "0"]).contains("syntax error"));
    assert!(err(c, &["EXPIRE", "s", "9223372036854775807"]).contains("invalid expire time"));
    assert!(err(c, &["NOSUCHCOMMAND"]).contains("unknown command"));
    // None of it wrote anything.
    assert_eq!(q::<String>(c, &["GET", "s"]), "notanumber");
    assert_eq!(q::<i64>(c, &["EXISTS", "k", "n"]), 0);
}
