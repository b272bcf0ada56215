//! Time to live: keys vanish for readers the moment their time passes, the leader deletes them
//! through the log, and TTL-preserving and TTL-clearing writes behave as in Redis.

use std::time::Duration;

use redis::{cmd, Connection};
use rockraft_tests::{wait_until, InProcess};

fn node() -> (tempfile::TempDir, InProcess) {
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(&dir.path().join("n"));
    (dir, node)
}

fn get(c: &mut Connection, k: &str) -> Option<String> {
    cmd("GET").arg(k).query(c).unwrap()
}

fn info_field(c: &mut Connection, field: &str) -> u64 {
    let info: String = cmd("INFO").arg("stats").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[test]
fn expired_keys_are_invisible_then_deleted() {
    let (_d, n) = node();
    let c = &mut n.client();
    let _: () = cmd("SET")
        .arg("short")
        .arg("v")
        .arg("PX")
        .arg(300)
        .query(c)
        .unwrap();
    let _: () = cmd("SET")
        .arg("long")
        .arg("v")
        .arg("EX")
        .arg(100)
        .query(c)
        .unwrap();
    assert_eq!(get(c, "short").as_deref(), Some("v"));
    std::thread::sleep(Duration::from_millis(350));
    // Invisible to every read right away, whether or not the delete has been applied yet.
    assert_eq!(get(c, "short"), None);
    assert_eq!(cmd("EXISTS").arg("short").query::<i64>(c).unwrap(), 0);
    assert_eq!(cmd("TTL").arg("short").query::<i64>(c).unwrap(), -2);
    let keys: Vec<String> = cmd("KEYS").arg("*").query(c).unwrap();
    assert_eq!(keys, ["long"]);
    assert_eq!(cmd("DBSIZE").query::<i64>(c).unwrap(), 1);
    // The leader's expirer deletes it through the log.
    assert!(wait_until(Duration::from_secs(5), || info_field(
        c,
        "expired_keys"
    ) >= 1));
    assert_eq!(get(c, "long").as_deref(), Some("v"));
}

#[test]
fn writes_treat_expired_keys_as_absent() {
    let (_d, n) = node();
    let c = &mut n.client();
    let _: () = cmd("SET")
        .arg("k")
        .arg("old")
        .arg("PX")
        .arg(100)
        .query(c)
        .unwrap();
    let _: () = cmd("SET")
        .arg("n")
        .arg("41")
        .arg("PX")
        .arg(100)
        .query(c)
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    // NX succeeds on an expired key; INCR starts again from 0 and has no TTL.
    let r: Option<String> = cmd("SET").arg("k").arg("new").arg("NX").query(c).unwrap();
    assert_eq!(r.as_deref(), Some("OK"));
    assert_eq!(cmd("INCR").arg("n").query::<i64>(c).unwrap(), 1);
    assert_eq!(cmd("TTL").arg("n").query::<i64>(c).unwrap(), -1);
    assert_eq!(cmd("TTL").arg("k").query::<i64>(c).unwrap(), -1);
}

#[test]
fn ttl_is_kept_or_cleared_like_redis() {
    let (_d, n) = node();
    let c = &mut n.client();
    let _: () = cmd("SET")
        .arg("k")
        .arg("1")
        .arg("EX")
        .arg(100)
        .query(c)
        .unwrap();
    // INCR, APPEND, SETRANGE keep the TTL.
    let _: i64 = cmd("INCR").arg("k").query(c).unwrap();
    let _: i64 = cmd("APPEND").arg("k").arg("0").query(c).unwrap();
    let _: i64 = cmd("SETRANGE").arg("k").arg("0").arg("3").query(c).unwrap();
    assert!(cmd("TTL").arg("k").query::<i64>(c).unwrap() > 90);
    // SET KEEPTTL keeps it; plain SET and GETSET clear it.
    let _: () = cmd("SET")
        .arg("k")
        .arg("2")
        .arg("KEEPTTL")
        .query(c)
        .unwrap();
    assert!(cmd("TTL").arg("k").query::<i64>(c).unwrap() > 90);
    let _: () = cmd("SET").arg("k").arg("3").query(c).unwrap();
    assert_eq!(cmd("TTL").arg("k").query::<i64>(c).unwrap(), -1);
    let _: () = cmd("SET")
        .arg("k")
        .arg("3")
        .arg("EX")
        .arg(100)
        .query(c)
        .unwrap();
    let _: String = cmd("GETSET").arg("k").arg("4").query(c).unwrap();
    assert_eq!(cmd("TTL").arg("k").query::<i64>(c).unwrap(), -1);
    // RENAME carries the TTL to the new name.
    let _: () = cmd("SET")
        .arg("a")
        .arg("x")
        .arg("EX")
        .arg(100)
        .query(c)
        .unwrap();
    let _: () = cmd("RENAME").arg("a").arg("b").query(c).unwrap();
    assert!(cmd("TTL").arg("b").query::<i64>(c).unwrap() > 90);
    // EXAT/PXAT in the past: the key is gone at once.
    let _: () = cmd("SET")
        .arg("past")
        .arg("x")
        .arg("PXAT")
        .arg(1000)
        .query(c)
        .unwrap();
    assert_eq!(get(c, "past"), None);
}

#[test]
fn many_keys_expire_in_bulk() {
    let (_d, n) = node();
    let c = &mut n.client();
    let mut pipe = redis::pipe();
    for i in 0..2000 {
        pipe.cmd("SET")
            .arg(format!("e{i}"))
            .arg(i)
            .arg("PX")
            .arg(200)
            .ignore();
    }
    let _: () = pipe.query(c).unwrap();
    let _: () = cmd("SET").arg("stay").arg(1).query(c).unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        info_field(c, "expired_keys") >= 2000
    }));
    assert_eq!(cmd("DBSIZE").query::<i64>(c).unwrap(), 1);
}

/// Invariant 6: apply judges expiry by the clock in the entry, never by the applying node's.
#[test]
fn apply_uses_the_entrys_clock_not_the_local_one() {
    use bytes_of::argv;
    let (_d, n) = node();
    let c = &mut n.client();
    let now = rockraft_server::command::now_ms();
    let at = now + 60_000;
    let _: () = cmd("SET")
        .arg("k")
        .arg("v1")
        .arg("PXAT")
        .arg(at)
        .query(c)
        .unwrap();
    let shared = n.handle.as_ref().unwrap().shared().clone();
    let propose = |entry_now: u64, args: &[&str]| {
        let data = rockraft_server::state_machine::encode_command(&argv(args));
        n.runtime
            .block_on(shared.group.propose(entry_now, data))
            .unwrap()
    };
    // At the entry's time the key has expired, so NX succeeds, although locally it is alive.
    let reply = propose(at + 1, &["SET", "k", "v2", "NX"]);
    assert_eq!(reply, rockraft_resp::Reply::ok());
    assert_eq!(get(c, "k").as_deref(), Some("v2"));
    // And an entry from before the expiry sees the key alive: NX fails.
    let _: () = cmd("SET")
        .arg("j")
        .arg("v1")
        .arg("PXAT")
        .arg(at)
        .query(c)
        .unwrap();
    let reply = propose(at - 1, &["SET", "j", "v2", "NX"]);
    assert_eq!(reply, rockraft_resp::Reply::Nil);
}

mod bytes_of {
    pub fn argv(args: &[&str]) -> Vec<bytes::Bytes> {
        args.iter()
            .map(|a| bytes::Bytes::from(a.to_string()))
            .collect()
    }
}
