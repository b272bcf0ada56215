//! Collections through a real client (the `redis` crate): what the differential test cannot
//! see. A collection's elements follow its versions (DEL, overwrite, expiry and RENAME touch
//! only metadata, or move the elements whole), big collections work, and replicas that catch
//! up from a snapshot hold the same elements (equal digests).

use std::collections::HashMap;
use std::time::Duration;

use redis::{cmd, Connection};
use rockraft_tests::{wait_until, InProcess, InProcessCluster};

fn node() -> (tempfile::TempDir, InProcess) {
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(&dir.path().join("n"));
    (dir, node)
}

fn hgetall(c: &mut Connection, key: &str) -> HashMap<String, String> {
    cmd("HGETALL").arg(key).query(c).unwrap()
}

/// Fills hash `key` with `n` fields `f<i>` = `v<i>`, pipelined.
fn fill(c: &mut Connection, key: &str, n: usize) {
    for start in (0..n).step_by(1000) {
        let mut pipe = redis::pipe();
        let mut hset = cmd("HSET");
        hset.arg(key);
        for i in start..(start + 1000).min(n) {
            hset.arg(format!("f{i}")).arg(format!("v{i}"));
        }
        pipe.add_command(hset).ignore();
        pipe.query::<()>(c).unwrap();
    }
}

#[test]
fn a_deleted_or_overwritten_hash_leaves_no_fields_behind() {
    let (_d, n) = node();
    let c = &mut n.client();
    fill(c, "h", 500);
    assert_eq!(cmd("HLEN").arg("h").query::<i64>(c).unwrap(), 500);
    assert_eq!(cmd("DEL").arg("h").query::<i64>(c).unwrap(), 1);
    // A new hash under the same name starts empty: the old fields are another version.
    let _: i64 = cmd("HSET").arg("h").arg("only").arg("1").query(c).unwrap();
    assert_eq!(
        hgetall(c, "h"),
        HashMap::from([("only".into(), "1".into())])
    );
    let _: () = cmd("SET").arg("h").arg("a string now").query(c).unwrap();
    assert!(cmd("HGET")
        .arg("h")
        .arg("only")
        .query::<Option<String>>(c)
        .unwrap_err()
        .to_string()
        .contains("WRONGTYPE"));
    let _: i64 = cmd("DEL").arg("h").query(c).unwrap();
    let _: i64 = cmd("HSET").arg("h").arg("again").arg("2").query(c).unwrap();
    assert_eq!(cmd("HLEN").arg("h").query::<i64>(c).unwrap(), 1);
}

#[test]
fn an_expired_hash_is_gone_and_comes_back_empty() {
    let (_d, n) = node();
    let c = &mut n.client();
    fill(c, "h", 50);
    let _: i64 = cmd("PEXPIRE").arg("h").arg(200).query(c).unwrap();
    assert!(cmd("PTTL").arg("h").query::<i64>(c).unwrap() > 0);
    assert!(wait_until(Duration::from_secs(5), || {
        cmd("EXISTS").arg("h").query::<i64>(c).unwrap() == 0
    }));
    assert_eq!(hgetall(c, "h"), HashMap::new());
    assert_eq!(
        cmd("HSETNX")
            .arg("h")
            .arg("f1")
            .arg("new")
            .query::<i64>(c)
            .unwrap(),
        1
    );
    assert_eq!(cmd("HLEN").arg("h").query::<i64>(c).unwrap(), 1);
    assert_eq!(cmd("TTL").arg("h").query::<i64>(c).unwrap(), -1);
}

#[test]
fn rename_moves_every_field_and_the_ttl() {
    let (_d, n) = node();
    let c = &mut n.client();
    fill(c, "src", 300);
    let _: i64 = cmd("EXPIRE").arg("src").arg(1000).query(c).unwrap();
    let before = hgetall(c, "src");
    let _: () = cmd("SET").arg("dst").arg("old string").query(c).unwrap();
    let _: () = cmd("RENAME").arg("src").arg("dst").query(c).unwrap();
    assert_eq!(hgetall(c, "dst"), before);
    assert_eq!(cmd("EXISTS").arg("src").query::<i64>(c).unwrap(), 0);
    assert!(cmd("TTL").arg("dst").query::<i64>(c).unwrap() > 990);
    assert_eq!(cmd("TYPE").arg("dst").query::<String>(c).unwrap(), "hash");
    // The old name is free and empty.
    let _: i64 = cmd("HSET").arg("src").arg("x").arg("y").query(c).unwrap();
    assert_eq!(cmd("HLEN").arg("src").query::<i64>(c).unwrap(), 1);
}

#[test]
fn hscan_visits_every_field_of_a_big_hash_once() {
    let (_d, n) = node();
    let c = &mut n.client();
    fill(c, "big", 5000);
    let mut cursor = 0u64;
    let mut seen = HashMap::new();
    let mut calls = 0;
    loop {
        let (next, items): (u64, Vec<String>) = cmd("HSCAN")
            .arg("big")
            .arg(cursor)
            .arg("COUNT")
            .arg(100)
            .query(c)
            .unwrap();
        calls += 1;
        for pair in items.chunks(2) {
            assert!(seen.insert(pair[0].clone(), pair[1].clone()).is_none());
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 5000);
    assert!(calls >= 50, "COUNT was not honoured: {calls} calls");
    assert_eq!(seen["f4321"], "v4321");
    let (_, small): (u64, Vec<String>) = cmd("HSCAN")
        .arg("big")
        .arg(0)
        .arg("MATCH")
        .arg("f12*")
        .arg("COUNT")
        .arg(100_000)
        .query(c)
        .unwrap();
    assert_eq!(small.len(), 2 * 111);
}

#[test]
fn a_follower_catching_up_from_a_snapshot_gets_every_field() {
    let mut cluster = InProcessCluster::start_with(3, |c| c.raft_log_max_entries = 200);
    let leader = cluster.leader();
    let lagging = (leader + 1) % 3;
    let mut c = cluster.client(leader);
    fill(&mut c, "before", 200);
    cluster.stop(lagging);
    for i in 0..400 {
        let _: i64 = cmd("HSET")
            .arg(format!("h{}", i % 7))
            .arg(format!("f{i}"))
            .arg(i)
            .query(&mut c)
            .unwrap();
    }
    let _: i64 = cmd("DEL").arg("h3").query(&mut c).unwrap();
    let _: i64 = cmd("HINCRBY")
        .arg("h1")
        .arg("n")
        .arg(5)
        .query(&mut c)
        .unwrap();
    cluster.restart(lagging);
    assert!(cluster.wait_converged(Duration::from_secs(60)));
    let mut f = cluster.client(lagging);
    let _: () = cmd("READONLY").query(&mut f).unwrap();
    assert_eq!(hgetall(&mut f, "h1"), hgetall(&mut c, "h1"));
    assert_eq!(cmd("HLEN").arg("before").query::<i64>(&mut f).unwrap(), 200);
    assert_eq!(cmd("EXISTS").arg("h3").query::<i64>(&mut f).unwrap(), 0);
    let installed = rockraft_tests::info_field(&mut f, "raft", "raft_snapshots_installed");
    assert_ne!(
        installed.as_deref(),
        Some("0"),
        "the follower caught up without a snapshot"
    );
}

/// SPOP chooses at random, but at apply, from a seed in the entry: every replica pops the
/// same members (invariant 13).
#[test]
fn spop_pops_the_same_members_on_every_replica() {
    let cluster = InProcessCluster::start(3);
    let leader = cluster.leader();
    let mut c = cluster.client(leader);
    let mut sadd = cmd("SADD");
    sadd.arg("s");
    for i in 0..1000 {
        sadd.arg(format!("m{i}"));
    }
    let _: i64 = sadd.query(&mut c).unwrap();
    let mut popped = std::collections::HashSet::new();
    for i in 0..50 {
        let got: Vec<String> = cmd("SPOP").arg("s").arg(i % 7).query(&mut c).unwrap();
        for m in got {
            assert!(popped.insert(m), "a member popped twice");
        }
        let one: Option<String> = cmd("SPOP").arg("s").query(&mut c).unwrap();
        assert!(popped.insert(one.unwrap()));
    }
    let left: i64 = cmd("SCARD").arg("s").query(&mut c).unwrap();
    assert_eq!(left as usize + popped.len(), 1000);
    assert!(cluster.wait_converged(Duration::from_secs(30)));
    let mut mine: Vec<String> = cmd("SMEMBERS").arg("s").query(&mut c).unwrap();
    mine.sort();
    for i in 0..3 {
        let mut f = cluster.client(i);
        let _: () = cmd("READONLY").query(&mut f).unwrap();
        let mut theirs: Vec<String> = cmd("SMEMBERS").arg("s").query(&mut f).unwrap();
        theirs.sort();
        assert_eq!(theirs, mine, "node {i}");
    }
}

/// A list of 5,000 elements against a model: pushes at both ends, inserts and removals in
/// the middle (which shift one side), trims and pops; then the replicas' digests agree.
#[test]
fn a_long_list_matches_a_model_through_middle_edits() {
    use rand::{Rng, SeedableRng};
    let cluster = InProcessCluster::start(3);
    let leader = cluster.leader();
    let mut c = cluster.client(leader);
    let mut model: std::collections::VecDeque<String> = Default::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut pipe = redis::pipe();
    for i in 0..5000 {
        let v = format!("v{}", i % 97);
        if rng.random_bool(0.5) {
            pipe.cmd("LPUSH").arg("l").arg(&v).ignore();
            model.push_front(v);
        } else {
            pipe.cmd("RPUSH").arg("l").arg(&v).ignore();
            model.push_back(v);
        }
    }
    pipe.query::<()>(&mut c).unwrap();
    for round in 0..40 {
        let pivot = model[rng.random_range(0..model.len())].clone();
        let after = rng.random_bool(0.5);
        let n: i64 = cmd("LINSERT")
            .arg("l")
            .arg(if after { "AFTER" } else { "BEFORE" })
            .arg(&pivot)
            .arg(format!("ins{round}"))
            .query(&mut c)
            .unwrap();
        let p = model.iter().position(|e| *e == pivot).unwrap();
        model.insert(if after { p + 1 } else { p }, format!("ins{round}"));
        assert_eq!(n as usize, model.len());
        let victim = format!("v{}", rng.random_range(0..97));
        let count: i64 = rng.random_range(-3..4);
        let removed: i64 = cmd("LREM")
            .arg("l")
            .arg(count)
            .arg(&victim)
            .query(&mut c)
            .unwrap();
        let mut left = if count == 0 {
            usize::MAX
        } else {
            count.unsigned_abs() as usize
        };
        let mut gone = 0;
        if count >= 0 {
            model.retain(|e| {
                let drop = *e == victim && left > 0;
                if drop {
                    left -= 1;
                    gone += 1;
                }
                !drop
            });
        } else {
            let mut v: Vec<String> = model.drain(..).rev().collect();
            v.retain(|e| {
                let drop = *e == victim && left > 0;
                if drop {
                    left -= 1;
                    gone += 1;
                }
                !drop
            });
            model = v.into_iter().rev().collect();
        }
        assert_eq!(removed, gone);
        if round % 10 == 9 {
            let _: () = cmd("LTRIM").arg("l").arg(3).arg(-4).query(&mut c).unwrap();
            model.drain(..3);
            for _ in 0..3 {
                model.pop_back();
            }
            let _: Vec<String> = cmd("LPOP").arg("l").arg(2).query(&mut c).unwrap();
            model.drain(..2);
        }
    }
    let all: Vec<String> = cmd("LRANGE").arg("l").arg(0).arg(-1).query(&mut c).unwrap();
    assert_eq!(all, model.iter().cloned().collect::<Vec<_>>());
    let mid: Vec<String> = cmd("LRANGE")
        .arg("l")
        .arg(100)
        .arg(110)
        .query(&mut c)
        .unwrap();
    assert_eq!(
        mid,
        model.iter().skip(100).take(11).cloned().collect::<Vec<_>>()
    );
    assert!(cluster.wait_converged(Duration::from_secs(30)));
}

/// A sorted set of 20,000 members: ranges by rank, score and lex, ranks and pops agree with
/// a model; replicas end with the same digest.
#[test]
fn a_big_sorted_set_matches_a_model() {
    let cluster = InProcessCluster::start(3);
    let leader = cluster.leader();
    let mut c = cluster.client(leader);
    let mut model: Vec<(i64, String)> = Vec::new();
    for start in (0..20_000).step_by(1000) {
        let mut zadd = cmd("ZADD");
        zadd.arg("z");
        for i in start..start + 1000 {
            let score = (i * 7919) % 5000;
            let member = format!("m{i:05}");
            zadd.arg(score).arg(&member);
            model.push((score, member));
        }
        let _: i64 = zadd.query(&mut c).unwrap();
    }
    model.sort();
    assert_eq!(cmd("ZCARD").arg("z").query::<i64>(&mut c).unwrap(), 20_000);
    let mid: Vec<String> = cmd("ZRANGE")
        .arg("z")
        .arg(10_000)
        .arg(10_009)
        .query(&mut c)
        .unwrap();
    let want: Vec<String> = model[10_000..10_010]
        .iter()
        .map(|(_, m)| m.clone())
        .collect();
    assert_eq!(mid, want);
    let rev: Vec<String> = cmd("ZRANGE")
        .arg("z")
        .arg(0)
        .arg(2)
        .arg("REV")
        .query(&mut c)
        .unwrap();
    let want: Vec<String> = model.iter().rev().take(3).map(|(_, m)| m.clone()).collect();
    assert_eq!(rev, want);
    let by_score: Vec<String> = cmd("ZRANGEBYSCORE")
        .arg("z")
        .arg("(100")
        .arg(102)
        .query(&mut c)
        .unwrap();
    let want: Vec<String> = model
        .iter()
        .filter(|(s, _)| *s > 100 && *s <= 102)
        .map(|(_, m)| m.clone())
        .collect();
    assert_eq!(by_score, want);
    let count: i64 = cmd("ZCOUNT")
        .arg("z")
        .arg(0)
        .arg(999)
        .query(&mut c)
        .unwrap();
    assert_eq!(
        count as usize,
        model.iter().filter(|(s, _)| *s < 1000).count()
    );
    let (s, m) = &model[12_345];
    let rank: i64 = cmd("ZRANK").arg("z").arg(m).query(&mut c).unwrap();
    assert_eq!(rank, 12_345);
    let score: f64 = cmd("ZSCORE").arg("z").arg(m).query(&mut c).unwrap();
    assert_eq!(score as i64, *s);
    let popped: Vec<String> = cmd("ZPOPMIN").arg("z").arg(3).query(&mut c).unwrap();
    let want: Vec<String> = model[..3]
        .iter()
        .flat_map(|(s, m)| [m.clone(), s.to_string()])
        .collect();
    assert_eq!(popped, want);
    let removed: i64 = cmd("ZREMRANGEBYSCORE")
        .arg("z")
        .arg(4000)
        .arg("+inf")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        removed as usize,
        model.iter().filter(|(s, _)| *s >= 4000).count()
    );
    let stored: i64 = cmd("ZUNIONSTORE")
        .arg("u")
        .arg(2)
        .arg("z")
        .arg("z")
        .arg("AGGREGATE")
        .arg("MAX")
        .query(&mut c)
        .unwrap();
    assert_eq!(stored, cmd("ZCARD").arg("z").query::<i64>(&mut c).unwrap());
    assert!(cluster.wait_converged(Duration::from_secs(30)));
}

/// OBJECT ENCODING names Redis's encoding for the current size and elements, following the
/// thresholds CONFIG SET changes.
#[test]
fn object_encoding_follows_the_listpack_settings() {
    let (_d, n) = node();
    let c = &mut n.client();
    let enc = |c: &mut Connection, k: &str| -> String {
        cmd("OBJECT").arg("ENCODING").arg(k).query(c).unwrap()
    };
    let _: i64 = cmd("HSET")
        .arg("h")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .query(c)
        .unwrap();
    assert_eq!(enc(c, "h"), "listpack");
    let _: () = cmd("CONFIG")
        .arg("SET")
        .arg("hash-max-listpack-entries")
        .arg(1)
        .query(c)
        .unwrap();
    assert_eq!(enc(c, "h"), "hashtable");
    let got: Vec<String> = cmd("CONFIG")
        .arg("GET")
        .arg("hash-max-ziplist-entries")
        .query(c)
        .unwrap();
    assert_eq!(got, vec!["hash-max-ziplist-entries", "1"]);
    let _: i64 = cmd("SADD").arg("s").arg(1).arg(2).query(c).unwrap();
    assert_eq!(enc(c, "s"), "intset");
    let _: i64 = cmd("SADD").arg("s").arg("x").query(c).unwrap();
    assert_eq!(enc(c, "s"), "hashtable");
    let _: i64 = cmd("ZADD").arg("z").arg(1).arg("a").query(c).unwrap();
    assert_eq!(enc(c, "z"), "listpack");
    let _: i64 = cmd("ZADD")
        .arg("z")
        .arg(2)
        .arg("x".repeat(65))
        .query(c)
        .unwrap();
    assert_eq!(enc(c, "z"), "skiplist");
    let _: i64 = cmd("RPUSH").arg("l").arg(1).query(c).unwrap();
    assert_eq!(enc(c, "l"), "quicklist");
    let _: () = cmd("SET").arg("n").arg(12).query(c).unwrap();
    assert_eq!(enc(c, "n"), "int");
    let refs: i64 = cmd("OBJECT").arg("REFCOUNT").arg("n").query(c).unwrap();
    assert_eq!(refs, i32::MAX as i64);
    let _: () = cmd("SET").arg("t").arg("x".repeat(45)).query(c).unwrap();
    assert_eq!(enc(c, "t"), "raw");
    let err = cmd("CONFIG")
        .arg("SET")
        .arg("set-max-intset-entries")
        .arg(-1)
        .query::<()>(c)
        .unwrap_err();
    assert!(
        err.to_string().contains("argument must be between 0"),
        "{err}"
    );
}

/// Popping from the ends leaves deletions there; the end hints skip them. Members inserted
/// beyond a hint (below the lowest popped, above the highest) must still be found, by pops,
/// ranges and ranks, on every replica.
#[test]
fn pops_from_the_ends_and_inserts_beyond_them_match_a_model() {
    let cluster = InProcessCluster::start(3);
    let leader = cluster.leader();
    let mut c = cluster.client(leader);
    // Sorted set: every score 0, so the order is the members' (as redis-benchmark's ZADD).
    let mut model: std::collections::BTreeSet<String> =
        (0..2000).map(|i| format!("m{i:04}")).collect();
    let mut zadd = cmd("ZADD");
    zadd.arg("z");
    for m in &model {
        zadd.arg(0).arg(m);
    }
    let _: i64 = zadd.query(&mut c).unwrap();
    for round in 0..20 {
        let low: Vec<String> = cmd("ZPOPMIN").arg("z").arg(30).query(&mut c).unwrap();
        let want: Vec<String> = model
            .iter()
            .take(30)
            .flat_map(|m| [m.clone(), "0".into()])
            .collect();
        assert_eq!(low, want, "ZPOPMIN round {round}");
        let high: Vec<String> = cmd("ZPOPMAX").arg("z").arg(20).query(&mut c).unwrap();
        let want: Vec<String> = model
            .iter()
            .rev()
            .take(20)
            .flat_map(|m| [m.clone(), "0".into()])
            .collect();
        assert_eq!(high, want, "ZPOPMAX round {round}");
        for m in low.iter().step_by(2).chain(high.iter().step_by(2)) {
            model.remove(m);
        }
        // Beyond both ends, and in the middle.
        for m in [
            format!("a{round:02}"),
            format!("z{round:02}"),
            format!("m1{round:03}x"),
        ] {
            let _: i64 = cmd("ZADD").arg("z").arg(0).arg(&m).query(&mut c).unwrap();
            model.insert(m);
        }
        let all: Vec<String> = cmd("ZRANGE").arg("z").arg(0).arg(-1).query(&mut c).unwrap();
        assert_eq!(
            all,
            model.iter().cloned().collect::<Vec<_>>(),
            "ZRANGE round {round}"
        );
        let first = model.iter().next().unwrap().clone();
        let rank: i64 = cmd("ZRANK").arg("z").arg(&first).query(&mut c).unwrap();
        assert_eq!(rank, 0);
        let rev: Vec<String> = cmd("ZREVRANGE")
            .arg("z")
            .arg(0)
            .arg(2)
            .query(&mut c)
            .unwrap();
        assert_eq!(rev, model.iter().rev().take(3).cloned().collect::<Vec<_>>());
    }
    // A lower score goes below everything popped.
    let _: i64 = cmd("ZADD")
        .arg("z")
        .arg(-1)
        .arg("zzz")
        .query(&mut c)
        .unwrap();
    let popped: Vec<String> = cmd("ZPOPMIN").arg("z").query(&mut c).unwrap();
    assert_eq!(popped, vec!["zzz".to_string(), "-1".into()]);

    // Set: SPOP until empty, inserting below and above the ends now and then.
    let mut sadd = cmd("SADD");
    sadd.arg("s");
    for i in 0..3000 {
        sadd.arg(format!("element:{i:012}"));
    }
    let _: i64 = sadd.query(&mut c).unwrap();
    let mut popped = std::collections::HashSet::new();
    let mut added = 3000;
    let mut firsts = std::collections::HashSet::new();
    for i in 0.. {
        if i % 100 == 0 && i < 2000 {
            for m in [format!("a{i}"), format!("zz{i}")] {
                let _: i64 = cmd("SADD").arg("s").arg(&m).query(&mut c).unwrap();
                added += 1;
            }
        }
        let got: Vec<String> = cmd("SPOP").arg("s").arg(7).query(&mut c).unwrap();
        if got.is_empty() {
            break;
        }
        if i < 20 {
            firsts.insert(got[0].clone());
        }
        for m in got {
            assert!(popped.insert(m), "a member popped twice");
        }
        assert!(i < 10_000, "SPOP never emptied the set");
    }
    assert_eq!(popped.len(), added, "every member popped once");
    assert!(firsts.len() > 10, "SPOP's choices are spread: {firsts:?}");
    assert!(cluster.wait_converged(Duration::from_secs(30)));
}

/// Writes pipelined on one connection are proposed as they arrive, and a raft turn puts many
/// in one log entry (`group.rs`). Each is still applied on its own, in order: a collection
/// re-created within the entry gets a new version (its old elements stay gone), and the
/// replicas agree.
#[test]
fn pipelined_writes_share_entries_keep_their_order_and_versions() {
    let (_d, single) = node();
    let cluster = InProcessCluster::start(3);
    let leader = cluster.leader();
    for (name, mut c) in [
        ("1 node", single.client()),
        ("3-node leader", cluster.client(leader)),
    ] {
        let before: u64 = rockraft_tests::info_field(&mut c, "raft", "raft_applied_index")
            .unwrap()
            .parse()
            .unwrap();
        let mut pipe = redis::pipe();
        for _ in 0..300 {
            pipe.cmd("INCR").arg("n");
        }
        let counts: Vec<i64> = pipe.query(&mut c).unwrap();
        assert_eq!(counts, (1..=300).collect::<Vec<_>>(), "{name}: in order");
        let after: u64 = rockraft_tests::info_field(&mut c, "raft", "raft_applied_index")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            after - before < 150,
            "{name}: 300 pipelined writes took {} entries",
            after - before
        );

        let mut pipe = redis::pipe();
        pipe.cmd("HSET").arg("h").arg("a").arg("1").ignore();
        pipe.cmd("DEL").arg("h").ignore();
        pipe.cmd("HSET").arg("h").arg("b").arg("2").ignore();
        pipe.cmd("SADD").arg("s").arg("x").ignore();
        pipe.cmd("DEL").arg("s").ignore();
        pipe.cmd("SADD").arg("s").arg("y").ignore();
        pipe.cmd("RPUSH").arg("l").arg("a").arg("b").ignore();
        pipe.cmd("SET").arg("l").arg("a string").ignore();
        pipe.cmd("DEL").arg("l").ignore();
        pipe.cmd("RPUSH").arg("l").arg("c").ignore();
        pipe.cmd("RPUSH").arg("from").arg("x").ignore();
        pipe.cmd("RENAME").arg("from").arg("to").ignore();
        pipe.cmd("RPUSH").arg("from").arg("y").ignore();
        pipe.cmd("ZADD").arg("z").arg(1).arg("a").ignore();
        pipe.cmd("DEL").arg("z").ignore();
        pipe.cmd("ZADD").arg("z").arg(2).arg("b").ignore();
        pipe.cmd("HGETALL").arg("h");
        pipe.cmd("SMEMBERS").arg("s");
        pipe.cmd("LRANGE").arg("l").arg(0).arg(-1);
        pipe.cmd("LRANGE").arg("to").arg(0).arg(-1);
        pipe.cmd("LRANGE").arg("from").arg(0).arg(-1);
        pipe.cmd("ZRANGE").arg("z").arg(0).arg(-1).arg("WITHSCORES");
        #[allow(clippy::type_complexity)]
        let got: (
            HashMap<String, String>,
            Vec<String>,
            Vec<String>,
            Vec<String>,
            Vec<String>,
            Vec<(String, f64)>,
        ) = pipe.query(&mut c).unwrap();
        assert_eq!(got.0, HashMap::from([("b".into(), "2".into())]), "{name}");
        assert_eq!(got.1, vec!["y".to_string()], "{name}");
        assert_eq!(got.2, vec!["c".to_string()], "{name}");
        assert_eq!(got.3, vec!["x".to_string()], "{name}");
        assert_eq!(got.4, vec!["y".to_string()], "{name}");
        assert_eq!(got.5, vec![("b".to_string(), 2.0)], "{name}");
    }
    assert!(cluster.wait_converged(Duration::from_secs(30)));
}

/// A pipeline runs in order: a read sent before a write does not see it, even on a leader
/// whose reads wait for a read index while the write could already be committed.
#[test]
fn a_pipelined_read_does_not_see_the_writes_after_it() {
    let (_d, single) = node();
    let cluster = InProcessCluster::start(3);
    let leader = cluster.leader();
    for (name, mut c) in [
        ("1 node", single.client()),
        ("3-node leader", cluster.client(leader)),
    ] {
        for i in 0..50 {
            let key = format!("order:{i}");
            let (before, _, after): (Option<String>, (), Option<String>) = redis::pipe()
                .cmd("GET")
                .arg(&key)
                .cmd("SET")
                .arg(&key)
                .arg("v")
                .cmd("GET")
                .arg(&key)
                .query(&mut c)
                .unwrap();
            assert_eq!(
                before, None,
                "{name}: the read before the write saw it ({i})"
            );
            assert_eq!(after.as_deref(), Some("v"), "{name}");
        }
    }
}
