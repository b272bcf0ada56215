//! Differential test: seeded random command sequences against real Redis (Debian's
//! redis-server) and against rockraft (one node, and the leader of a three-node cluster);
//! every reply must match. CI runs a seeded slice; `ROCKRAFT_DIFF_SEQUENCES` (default 200)
//! and `ROCKRAFT_DIFF_SEED` run more, or another slice. A difference fails with the seed and
//! the shortest sequence that still shows it.

use std::time::Duration;

use rand::{Rng, SeedableRng};

use rockraft_tests::differential::{
    first_difference, first_pipelined_difference, show, shrink, Generator, RedisServer, Resp,
    Target,
};
use rockraft_tests::{InProcess, InProcessCluster};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn replies_match_redis() {
    let sequences = env_u64("ROCKRAFT_DIFF_SEQUENCES", 200);
    let seed = env_u64("ROCKRAFT_DIFF_SEED", 20261201);
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let single = InProcess::start(dir.path());
    let cluster = InProcessCluster::start(3);
    let leader = cluster.leader();
    let mut oracle = Target::connect("redis", redis.addr);
    let mut targets = [
        Target::connect("rockraft (1 node)", single.addr()),
        Target::connect("rockraft (3-node leader)", cluster.addr(leader)),
    ];
    let mut commands = 0usize;
    let mut names = std::collections::BTreeSet::new();
    for s in 0..sequences {
        let seq_seed = seed.wrapping_add(s);
        let seq = Generator::new(seq_seed).sequence(40);
        names.extend(
            seq.iter()
                .map(|c| String::from_utf8_lossy(&c[0]).to_ascii_uppercase()),
        );
        for t in targets.iter_mut() {
            if let Some((i, want, got)) = first_difference(&mut oracle, t, &seq) {
                let small = shrink(&mut oracle, t, seq.clone());
                let lines: Vec<String> = small.iter().map(show).collect();
                panic!(
                    "{} differs from Redis (ROCKRAFT_DIFF_SEED={seq_seed} ROCKRAFT_DIFF_SEQUENCES=1)\n\
                     at command {i}: {}\n  redis:    {want}\n  rockraft: {got}\n\
                     shortest sequence that differs:\n  {}",
                    t.name,
                    show(&seq[i]),
                    lines.join("\n  ")
                );
            }
            commands += seq.len();
        }
    }
    assert!(
        cluster.wait_converged(Duration::from_secs(30)),
        "the cluster's replicas differ after the sequences"
    );
    println!(
        "{sequences} sequences, {commands} commands compared with Redis ({} command names: {})",
        names.len(),
        names.into_iter().collect::<Vec<_>>().join(" ")
    );
}

/// The same generated commands sent as one pipeline per sequence: a node proposes them as they
/// arrive, so many share a raft entry (`group.rs`), and each must still be applied as if it
/// had its own, in order. `ROCKRAFT_DIFF_SEQUENCES` runs more (half as many as the test above).
#[test]
fn pipelined_replies_match_redis() {
    let sequences = env_u64("ROCKRAFT_DIFF_SEQUENCES", 200) / 2;
    let seed = env_u64("ROCKRAFT_DIFF_SEED", 20261201) ^ 0x5049_5045;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let single = InProcess::start(dir.path());
    let cluster = InProcessCluster::start(3);
    let leader = cluster.leader();
    let mut oracle = Target::connect("redis", redis.addr);
    let mut targets = [
        Target::connect("rockraft (1 node)", single.addr()),
        Target::connect("rockraft (3-node leader)", cluster.addr(leader)),
    ];
    for s in 0..sequences {
        let seq_seed = seed.wrapping_add(s);
        let seq = Generator::new(seq_seed).sequence(60);
        for t in targets.iter_mut() {
            if let Some((cmd, want, got)) = first_pipelined_difference(&mut oracle, t, &seq) {
                panic!(
                    "{} differs from Redis in a pipeline (sequence {s} of seed {seed})\n\
                     at: {cmd}\n  redis:    {want}\n  rockraft: {got}\n\
                     the whole sequence:\n  {}",
                    t.name,
                    seq.iter().map(show).collect::<Vec<_>>().join("\n  ")
                );
            }
        }
    }
    assert!(
        cluster.wait_converged(Duration::from_secs(30)),
        "the cluster's replicas differ after the pipelines"
    );
}

/// The keyspace events a sequence makes, as a subscriber sees them: (event, key).
fn events_of(t: &mut Target, sub: &mut Target, seq: &[Vec<Vec<u8>>]) -> Vec<(Vec<u8>, Vec<u8>)> {
    for cmd in seq {
        rockraft_tests::differential::run(t, cmd);
    }
    // A marker after the sequence's events (published where no keyspace event goes).
    let _ = t.call(&args(&[b"PUBLISH", b"diff:end", b"end"]));
    let mut out = Vec::new();
    loop {
        match sub.read() {
            Resp::Array(Some(items)) if items.len() == 4 => {
                let text = |r: &Resp| match r {
                    Resp::Bulk(Some(b)) => b.clone(),
                    _ => Vec::new(),
                };
                let channel = text(&items[2]);
                if channel == b"diff:end" {
                    return out;
                }
                let event = channel
                    .strip_prefix(b"__keyevent@0__:")
                    .unwrap_or(&channel)
                    .to_vec();
                out.push((event, text(&items[3])));
            }
            other => panic!("{}: unexpected message {other}", t.name),
        }
    }
}

#[test]
fn keyspace_events_match_redis() {
    let sequences = env_u64("ROCKRAFT_DIFF_EVENT_SEQUENCES", 60);
    let seed = env_u64("ROCKRAFT_DIFF_SEED", 20261201);
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let single = InProcess::start(dir.path());
    let mut pairs = Vec::new();
    for (name, addr) in [("redis", redis.addr), ("rockraft (1 node)", single.addr())] {
        let mut t = Target::connect(name, addr);
        let set = t.call(&args(&[
            b"CONFIG",
            b"SET",
            b"notify-keyspace-events",
            b"KEAn",
        ]));
        assert_eq!(set, Resp::Simple(b"OK".to_vec()), "{name}");
        let mut sub = Target::connect(name, addr);
        sub.send(&args(&[b"PSUBSCRIBE", b"__keyevent@0__:*", b"diff:*"]));
        let _ = (sub.read(), sub.read());
        pairs.push((t, sub));
    }
    let mut events = 0;
    for s in 0..sequences {
        let seq_seed = seed.wrapping_add(s);
        let seq = Generator::new(seq_seed).sequence(40);
        let mut seen = Vec::new();
        for (t, sub) in pairs.iter_mut() {
            t.flush();
            // FLUSHALL makes no events; what the flush did is drained before the sequence.
            let _ = events_of(t, sub, &[]);
            seen.push(events_of(t, sub, &seq));
        }
        if seen[0] != seen[1] {
            let show_events = |e: &[(Vec<u8>, Vec<u8>)]| {
                e.iter()
                    .map(|(ev, k)| {
                        format!(
                            "{} {}",
                            String::from_utf8_lossy(ev),
                            String::from_utf8_lossy(k)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let lines: Vec<String> = seq.iter().map(show).collect();
            panic!(
                "keyspace events differ (ROCKRAFT_DIFF_SEED={seq_seed} ROCKRAFT_DIFF_EVENT_SEQUENCES=1)\n  redis:    {}\n  rockraft: {}\nsequence:\n  {}",
                show_events(&seen[0]),
                show_events(&seen[1]),
                lines.join("\n  ")
            );
        }
        events += seen[0].len();
    }
    println!("{sequences} sequences: {events} keyspace events, the same as Redis's");
}

fn bulk(r: Resp) -> Vec<u8> {
    match r {
        Resp::Bulk(Some(b)) => b,
        other => panic!("expected a bulk string, got {other}"),
    }
}

fn args(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.to_vec()).collect()
}

/// A HyperLogLog moves between Redis and rockraft by GET and SET, both ways, sparse and
/// dense: the same count, and the same bytes after the same further adds.
#[test]
fn hyperloglogs_round_trip_through_get_and_set_with_redis() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(dir.path());
    let mut r = Target::connect("redis", redis.addr);
    let mut o = Target::connect("rockraft", node.addr());
    for (key, n) in [(&b"small"[..], 200u32), (&b"big"[..], 20_000)] {
        let mut add = vec![b"PFADD".to_vec(), key.to_vec()];
        add.extend((0..n).map(|i| format!("member:{i}").into_bytes()));
        assert_eq!(r.call(&add), Resp::Int(1));
        // Redis's PFCOUNT caches the count in the value; rockraft honours that cache.
        let count = r.call(&args(&[b"PFCOUNT", key]));
        let Resp::Int(c) = count else {
            panic!("{count}")
        };
        let err = (c as f64 - f64::from(n)).abs() / f64::from(n);
        assert!(err < 0.03, "{n} elements counted as {c}");
        let from_redis = bulk(r.call(&args(&[b"GET", key])));
        assert_eq!(
            o.call(&args(&[b"SET", key, &from_redis])),
            Resp::Simple(b"OK".to_vec())
        );
        assert_eq!(o.call(&args(&[b"PFCOUNT", key])), count);
        // The same adds on both give the same registers (the cached count aside).
        let more = args(&[b"PFADD", key, b"x1", b"x2", b"x3", b"x4", b"x5"]);
        assert_eq!(o.call(&more), r.call(&more));
        let (mut mine, mut theirs) = (
            bulk(o.call(&args(&[b"GET", key]))),
            bulk(r.call(&args(&[b"GET", key]))),
        );
        mine[8..16].fill(0);
        theirs[8..16].fill(0);
        assert_eq!(mine, theirs, "{n} elements: registers differ");
        // And back: rockraft's value counts the same in Redis.
        let from_rockraft = bulk(o.call(&args(&[b"GET", key])));
        r.call(&args(&[b"SET", b"back", &from_rockraft]));
        assert_eq!(
            r.call(&args(&[b"PFCOUNT", b"back"])),
            o.call(&args(&[b"PFCOUNT", key]))
        );
    }
    let merge = args(&[b"PFMERGE", b"union", b"small", b"big"]);
    assert_eq!(o.call(&merge), r.call(&merge));
    let count = args(&[b"PFCOUNT", b"small", b"big", b"union"]);
    assert_eq!(o.call(&count), r.call(&count));
    for t in [&mut o, &mut r] {
        t.call(&args(&[b"RPUSH", b"list", b"a"]));
    }
    for c in [
        args(&[b"PFADD", b"list", b"a"]),
        args(&[b"PFMERGE", b"union", b"list"]),
        args(&[b"PFCOUNT", b"list", b"small"]),
    ] {
        assert_eq!(o.call(&c), r.call(&c), "{}", show(&c));
    }
}

/// Redis's documented geo example, and a GEORADIUS STORE read back as a sorted set.
#[test]
fn geo_matches_redis_to_the_last_digit() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(dir.path());
    let mut r = Target::connect("redis", redis.addr);
    let mut o = Target::connect("rockraft", node.addr());
    let script: &[&[&[u8]]] = &[
        &[
            b"GEOADD",
            b"Sicily",
            b"13.361389",
            b"38.115556",
            b"Palermo",
            b"15.087269",
            b"37.502669",
            b"Catania",
        ],
        &[b"GEODIST", b"Sicily", b"Palermo", b"Catania"],
        &[b"GEODIST", b"Sicily", b"Palermo", b"Catania", b"km"],
        &[b"GEOHASH", b"Sicily", b"Palermo", b"Catania", b"nowhere"],
        &[b"GEOPOS", b"Sicily", b"Palermo", b"nowhere"],
        &[
            b"GEORADIUS",
            b"Sicily",
            b"15",
            b"37",
            b"200",
            b"km",
            b"WITHDIST",
            b"WITHCOORD",
            b"WITHHASH",
        ],
        &[
            b"GEOSEARCH",
            b"Sicily",
            b"FROMLONLAT",
            b"15",
            b"37",
            b"BYBOX",
            b"400",
            b"400",
            b"km",
            b"ASC",
            b"WITHDIST",
        ],
        &[
            b"GEORADIUSBYMEMBER",
            b"Sicily",
            b"Palermo",
            b"200",
            b"km",
            b"STOREDIST",
            b"near",
        ],
        &[b"ZRANGE", b"near", b"0", b"-1", b"WITHSCORES"],
        &[
            b"GEOSEARCHSTORE",
            b"copy",
            b"Sicily",
            b"FROMMEMBER",
            b"Catania",
            b"BYRADIUS",
            b"1000",
            b"km",
        ],
        &[b"ZRANGE", b"copy", b"0", b"-1", b"WITHSCORES"],
        &[b"TYPE", b"Sicily"],
    ];
    for c in script {
        let c = args(c);
        assert_eq!(o.call(&c), r.call(&c), "{}", show(&c));
    }
}

/// One command of a pub/sub sequence and who sends it.
type Step = (Who, Vec<Vec<u8>>);

/// Who sends a command of a pub/sub sequence.
#[derive(Clone, Copy, Debug)]
enum Who {
    /// The connection under test (subscriptions, tracking, its pushes).
    Sub,
    /// Another client (publishes, writes, tracking redirected to the first).
    Other,
}

/// A pub/sub and client-tracking sequence: the first connection's protocol, then commands.
/// `$SUBID` stands for the first connection's client id.
fn pubsub_sequence(seed: u64, len: usize) -> (bool, Vec<Step>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let resp3 = rng.random_ratio(1, 2);
    let pick = |rng: &mut rand::rngs::StdRng, items: &[&str]| {
        items[rng.random_range(0..items.len())].to_string()
    };
    let words = |w: &[String]| w.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    let mut out = Vec::new();
    for _ in 0..len {
        let channel = pick(&mut rng, &["c1", "c2", "news.a", "__redis__:invalidate"]);
        let key = pick(&mut rng, &["k1", "k2", "pre:k3"]);
        let (who, cmd): (Who, Vec<String>) = match rng.random_range(0..26) {
            0..=2 => {
                let mut c = vec!["SUBSCRIBE".to_string(), channel];
                if rng.random_ratio(1, 3) {
                    c.push(pick(&mut rng, &["c1", "c2", "c3"]));
                }
                (Who::Sub, c)
            }
            3 => (
                Who::Sub,
                vec!["PSUBSCRIBE".into(), pick(&mut rng, &["news.*", "c?", "*"])],
            ),
            4 => {
                let mut c = vec![pick(
                    &mut rng,
                    &["UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"],
                )];
                if rng.random_ratio(1, 2) {
                    c.push(pick(&mut rng, &["c1", "news.*", "{s}a", "nothing"]));
                }
                (Who::Sub, c)
            }
            5 => (
                Who::Sub,
                vec!["SSUBSCRIBE".into(), pick(&mut rng, &["{s}a", "{s}b"])],
            ),
            6 => (Who::Sub, vec!["PING".into()]),
            7 => (Who::Sub, vec![pick(&mut rng, &["GET", "TTL"]), key]),
            8 => (
                Who::Sub,
                vec![
                    "PUBSUB".into(),
                    pick(&mut rng, &["NUMSUB", "NUMPAT", "CHANNELS"]),
                ],
            ),
            9..=11 => {
                let channel = pick(&mut rng, &["c1", "c2", "news.a", "news.b", "c3"]);
                (
                    Who::Other,
                    vec![
                        "PUBLISH".into(),
                        channel,
                        pick(&mut rng, &["hello", "", "x y"]),
                    ],
                )
            }
            12 => (
                Who::Other,
                vec![
                    "SPUBLISH".into(),
                    pick(&mut rng, &["{s}a", "{s}b"]),
                    "m".into(),
                ],
            ),
            13 | 14 => {
                let mut c = vec![
                    "CLIENT".into(),
                    "TRACKING".into(),
                    pick(&mut rng, &["ON", "ON", "OFF"]),
                ];
                for _ in 0..rng.random_range(0..3) {
                    match rng.random_range(0..5) {
                        0 => c.extend([
                            "BCAST".into(),
                            "PREFIX".into(),
                            pick(&mut rng, &["pre:", "k"]),
                        ]),
                        1 => c.push(pick(&mut rng, &["OPTIN", "OPTOUT"])),
                        2 => c.push("NOLOOP".into()),
                        3 => c.push("BCAST".into()),
                        _ => c.extend(["PREFIX".into(), "k".into()]),
                    }
                }
                let who = if rng.random_ratio(1, 2) {
                    Who::Sub
                } else {
                    Who::Other
                };
                if matches!(who, Who::Other) || rng.random_ratio(1, 4) {
                    c.extend(["REDIRECT".into(), "$SUBID".into()]);
                }
                (who, c)
            }
            15 => (
                Who::Sub,
                vec![
                    "CLIENT".into(),
                    "CACHING".into(),
                    pick(&mut rng, &["YES", "NO", "maybe"]),
                ],
            ),
            16 => (
                Who::Sub,
                vec![
                    "CLIENT".into(),
                    pick(&mut rng, &["TRACKINGINFO", "GETREDIR"]),
                ],
            ),
            17 | 18 => (Who::Other, vec!["GET".into(), key]),
            19..=21 => (Who::Other, vec!["SET".into(), key, "v".into()]),
            22 => (Who::Sub, vec!["SET".into(), key, "w".into()]),
            23 => (Who::Other, vec!["DEL".into(), key]),
            24 => (
                Who::Other,
                vec![
                    "MSET".into(),
                    "k1".into(),
                    "a".into(),
                    "pre:k3".into(),
                    "b".into(),
                ],
            ),
            _ => (Who::Sub, vec!["RESET".into()]),
        };
        out.push((who, words(&cmd)));
    }
    (resp3, out)
}

/// Runs a pub/sub sequence on fresh connections to `addr`: for each command, the other
/// client's reply (if it sent it) and every frame the first connection received up to a
/// PING marker sent after it (replies and pushes, in order). Client ids read as `<id>`.
fn pubsub_run(name: &str, addr: std::net::SocketAddr, resp3: bool, seq: &[Step]) -> Vec<String> {
    let mut sub = Target::connect(name, addr);
    let mut other = Target::connect(name, addr);
    let id = match sub.call(&args(&[b"CLIENT", b"ID"])) {
        Resp::Int(id) => id,
        r => panic!("{name}: CLIENT ID answered {r}"),
    };
    if resp3 {
        let _ = sub.call(&args(&[b"HELLO", b"3"]));
    }
    let ids = |r: Resp| -> String {
        // An id is a whole reply (CLIENT ID, CLIENT GETREDIR) or the value after "redirect"
        // (CLIENT TRACKINGINFO); an integer in a push is a count, even when it equals the id.
        fn hide(r: Resp, id: i64, top: bool) -> Resp {
            match r {
                Resp::Int(i) if top && i == id => Resp::Simple(b"<id>".to_vec()),
                Resp::Array(Some(items)) => {
                    let mut out = Vec::with_capacity(items.len());
                    let mut after_redirect = false;
                    for item in items {
                        let is_key = matches!(&item, Resp::Bulk(Some(b)) if b == b"redirect");
                        out.push(hide(item, id, after_redirect));
                        after_redirect = is_key;
                    }
                    Resp::Array(Some(out))
                }
                other => other,
            }
        }
        hide(r, id, true).to_string()
    };
    let mut out = Vec::new();
    for (i, (who, cmd)) in seq.iter().enumerate() {
        let cmd: Vec<Vec<u8>> = cmd
            .iter()
            .map(|a| {
                if a == b"$SUBID" {
                    id.to_string().into_bytes()
                } else {
                    a.clone()
                }
            })
            .collect();
        let mut line = String::new();
        match who {
            Who::Other => {
                line = format!("other: {} | ", ids(other.call(&cmd)));
                // Pushes it caused reach the first connection after this reply (Redis writes
                // them at once; a node when it applied the write): let them arrive.
                std::thread::sleep(Duration::from_millis(20));
            }
            Who::Sub => {
                sub.send(&cmd);
                if cmd[0] == b"SET" {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        let marker = format!("marker-{i}");
        sub.send(&args(&[b"PING", marker.as_bytes()]));
        let mut window = Vec::new();
        loop {
            let shown = ids(sub.read());
            if shown.contains(&marker) {
                break;
            }
            window.push(shown);
        }
        for f in unordered(&cmd, window) {
            line.push_str(&f);
            line.push(' ');
        }
        out.push(line);
    }
    out
}

/// What Redis leaves in its hash order, compared as sets: the confirmations of an
/// UNSUBSCRIBE of everything (each count kept, the channels sorted apart), PUBSUB CHANNELS,
/// and the `pmessage`s of one message matching several patterns.
fn unordered(cmd: &[Vec<u8>], mut frames: Vec<String>) -> Vec<String> {
    let name = String::from_utf8_lossy(&cmd[0]).to_ascii_uppercase();
    // A write's own invalidations: Redis sends a default-mode one before the reply, a
    // BCAST one after it; a node sends both once it applied the write.
    if name == "SET" {
        frames.sort();
        return frames;
    }
    if name.ends_with("UNSUBSCRIBE") && cmd.len() == 1 {
        let mut channels = Vec::new();
        for f in frames.iter_mut() {
            // `["unsubscribe", "<channel>", :<count>]`
            if let (Some(a), Some(b)) = (f.find(", "), f.rfind(", ")) {
                if a < b {
                    channels.push(f[a + 2..b].to_string());
                    *f = format!("{}, <channel>{}", &f[..a], &f[b..]);
                }
            }
        }
        channels.sort();
        frames.push(format!("channels {channels:?}"));
        return frames;
    }
    if name == "PUBSUB"
        && cmd
            .get(1)
            .is_some_and(|s| s.eq_ignore_ascii_case(b"CHANNELS"))
    {
        if let Some(f) = frames.first_mut() {
            let inner = f.trim_start_matches('[').trim_end_matches(']');
            let mut items: Vec<&str> = inner.split(", ").filter(|s| !s.is_empty()).collect();
            items.sort();
            *f = format!("[{}]", items.join(", "));
        }
        return frames;
    }
    let at: Vec<usize> = (0..frames.len())
        .filter(|&i| frames[i].contains("\"pmessage\""))
        .collect();
    let mut sorted: Vec<String> = at.iter().map(|&i| frames[i].clone()).collect();
    sorted.sort();
    for (i, f) in at.into_iter().zip(sorted) {
        frames[i] = f;
    }
    frames
}

/// The differential test of pub/sub and client-side caching where Redis's replies are
/// deterministic: subscriptions and their confirmations, messages, the RESP2 subscribed
/// context's errors, PUBSUB counts, CLIENT TRACKING options and errors, invalidations (RESP3
/// pushes, RESP2 through `__redis__:invalidate`), RESET, in RESP2 and RESP3.
#[test]
fn pubsub_and_tracking_match_redis() {
    let sequences = env_u64("ROCKRAFT_DIFF_PUBSUB_SEQUENCES", 30);
    let seed = env_u64("ROCKRAFT_DIFF_SEED", 20261201);
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let single = InProcess::start(dir.path());
    let cluster = InProcessCluster::start(3);
    let leader = cluster.addr(cluster.leader());
    let targets = [
        ("rockraft (1 node)", single.addr()),
        ("rockraft (3-node leader)", leader),
    ];
    let mut frames = 0;
    for s in 0..sequences {
        let seq_seed = seed.wrapping_add(s);
        let (resp3, seq) = pubsub_sequence(seq_seed, 30);
        for addr in [redis.addr, single.addr(), leader] {
            Target::connect("flush", addr).flush();
        }
        let want = pubsub_run("redis", redis.addr, resp3, &seq);
        for (name, addr) in targets {
            let got = pubsub_run(name, addr, resp3, &seq);
            if let Some(i) = (0..want.len()).find(|&i| want[i] != got[i]) {
                let lines: Vec<String> = seq
                    .iter()
                    .map(|(who, c)| format!("{who:?}: {}", show(c)))
                    .collect();
                panic!(
                    "{name} differs from Redis (ROCKRAFT_DIFF_SEED={seq_seed} ROCKRAFT_DIFF_PUBSUB_SEQUENCES=1, resp3 {resp3})\n\
                     at command {i}: {}\n  redis:    {}\n  rockraft: {}\nsequence:\n  {}",
                    lines[i],
                    want[i],
                    got[i],
                    lines.join("\n  ")
                );
            }
        }
        frames += want.len();
    }
    println!("{sequences} pub/sub and tracking sequences, {frames} steps the same as Redis's");
}

/// Every command's and subcommand's arity and ACL categories in `COMMAND INFO` are Redis's, in
/// Redis's order (what ACL rules like `+@read` select, and what clients reading `COMMAND` see),
/// and where its first key spec begins to search (what cluster clients route by).
#[test]
fn command_categories_match_redis() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(dir.path());
    let mut oracle = Target::connect("redis", redis.addr);
    let mut ours = Target::connect("rockraft", node.addr());
    let names = match ours.call(&args(&[b"COMMAND", b"LIST"])) {
        Resp::Array(Some(names)) => names,
        r => panic!("COMMAND LIST answered {r}"),
    };
    let categories = |t: &mut Target, name: &[u8]| match t.call(&args(&[b"COMMAND", b"INFO", name]))
    {
        // Arity, categories, and where the first key spec's search begins.
        Resp::Array(Some(mut infos)) => match infos.pop() {
            Some(Resp::Array(Some(fields))) => {
                let begin = match &fields[8] {
                    Resp::Array(Some(specs)) => specs.first().map(|spec| match spec {
                        Resp::Array(Some(kv)) => kv
                            .iter()
                            .position(|k| *k == Resp::Bulk(Some(b"begin_search".to_vec())))
                            .and_then(|i| kv.get(i + 1))
                            .map(|b| b.to_string())
                            .unwrap_or_default(),
                        _ => String::new(),
                    }),
                    _ => None,
                };
                Some((format!("{} {} {}", fields[1], fields[6], fields[7]), begin))
            }
            _ => None,
        },
        r => panic!("COMMAND INFO answered {r}"),
    };
    let mut compared = 0;
    for name in names {
        let name = bulk(name);
        if name == b"rrbackup" {
            continue;
        }
        // CLIENT SETINFO and NO-TOUCH are Redis 7.2's; the oracle is 7.0.
        if name == b"client|setinfo" || name == b"client|no-touch" {
            continue;
        }
        let want = categories(&mut oracle, &name)
            .unwrap_or_else(|| panic!("{} is not a Redis command", String::from_utf8_lossy(&name)));
        let got = categories(&mut ours, &name).expect("listed");
        let name = String::from_utf8_lossy(&name);
        assert_eq!(got.0, want.0, "arity, categories and tips of {name}");
        // Keys a keyword or a count locates are `unknown` here (COMMAND GETKEYS finds them).
        if !got.1.as_ref().is_some_and(|b| b.contains("unknown")) {
            assert_eq!(got.1, want.1, "first key spec of {name}");
        }
        compared += 1;
    }
    assert!(compared > 200, "only {compared} commands compared");
}

/// The ACL rules the ACL sequences draw from: valid ones of every kind, and each error.
const ACL_RULES: &[&str] = &[
    "on",
    "off",
    "nopass",
    "resetpass",
    ">p1",
    ">p2",
    "<p1",
    "<nope",
    "!0000",
    "#bad",
    "reset",
    "~app:*",
    "%R~r:*",
    "%W~w:*",
    "%RW~rw:*",
    "%X~x",
    "~*",
    "allkeys",
    "resetkeys",
    "~k",
    "&ch*",
    "&*",
    "allchannels",
    "resetchannels",
    "&news",
    "+@read",
    "-@write",
    "+@all",
    "-@all",
    "allcommands",
    "nocommands",
    "+@hash",
    "-@dangerous",
    "+@string",
    "+get",
    "-get",
    "+set",
    "+config|get",
    "-config|set",
    "+client",
    "-client|kill",
    "+nosuch",
    "+@nosuch",
    "bogus",
    "",
    "+del",
    "+publish",
    "+subscribe",
    "+config|get|x",
    "-@slow",
    "+@fast",
    "sanitize-payload",
    "skip-sanitize-payload",
    "+debug|object",
];

/// The calls ACL DRYRUN probes each user with.
const ACL_PROBES: &[&[&str]] = &[
    &["get", "app:1"],
    &["get", "r:1"],
    &["set", "w:1", "v"],
    &["set", "r:1", "v"],
    &["set", "rw:1", "v", "get"],
    &["incr", "w:1"],
    &["del", "app:1"],
    &["mget", "app:1", "r:2"],
    &["hset", "app:h", "f", "v"],
    &["publish", "news", "m"],
    &["publish", "chat", "m"],
    &["subscribe", "ch1"],
    &["psubscribe", "ch*"],
    &["config", "get", "maxmemory"],
    &["config", "set", "maxmemory", "1"],
    &["client", "id"],
    &["client", "kill", "id", "1"],
    &["flushall"],
    &["copy", "r:1", "w:1"],
    &["lmove", "rw:1", "w:2", "left", "right"],
];

/// A rule a selector may hold (keys, channels, commands), or now and then one it may not.
fn selector_rule(rng: &mut rand::rngs::StdRng) -> &'static str {
    loop {
        let r = ACL_RULES[rng.random_range(0..ACL_RULES.len())];
        let user_only = matches!(r, "on" | "off" | "nopass" | "resetpass" | "reset")
            || r.starts_with(['>', '<', '!', '#']);
        if !user_only || rng.random_range(0..10) == 0 {
            return r;
        }
    }
}

fn acl_sequence(seed: u64, len: usize) -> Vec<Vec<Vec<u8>>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let users = ["u1", "u2", "default"];
    let mut seq = Vec::new();
    for _ in 0..len {
        let user = users[rng.random_range(0..users.len())];
        let cmd: Vec<String> = match rng.random_range(0..10) {
            0..=4 => {
                let mut c = vec!["ACL".into(), "SETUSER".into(), user.into()];
                for _ in 0..rng.random_range(0..5) {
                    match rng.random_range(0..12) {
                        // A selector of key, channel and command rules, in one argument or
                        // spread over several (sometimes never closed).
                        0 | 1 => {
                            let rules: Vec<&str> = (0..rng.random_range(0..4))
                                .map(|_| selector_rule(&mut rng))
                                .collect();
                            if rng.random_bool(0.5) {
                                c.push(format!("({})", rules.join(" ")));
                            } else {
                                let mut words: Vec<String> =
                                    rules.iter().map(|r| r.to_string()).collect();
                                if words.is_empty() {
                                    words.push(String::new());
                                }
                                words[0] = format!("({}", words[0]);
                                if rng.random_range(0..8) != 0 {
                                    let last = words.len() - 1;
                                    words[last].push(')');
                                }
                                c.extend(words);
                            }
                        }
                        2 => c.push("clearselectors".into()),
                        _ => c.push(ACL_RULES[rng.random_range(0..ACL_RULES.len())].into()),
                    }
                }
                c
            }
            5 => vec!["ACL".into(), "DELUSER".into(), user.into()],
            6 => vec!["ACL".into(), "GETUSER".into(), user.into()],
            7 => vec!["ACL".into(), "USERS".into()],
            8 => {
                let p = ACL_PROBES[rng.random_range(0..ACL_PROBES.len())];
                let mut c = vec!["ACL".into(), "DRYRUN".into(), user.into()];
                c.extend(p.iter().map(|s| s.to_string()));
                c
            }
            _ => vec![
                "ACL".into(),
                "CAT".into(),
                ["read", "nosuch", "admin"][rng.random_range(0..3)].into(),
            ],
        };
        seq.push(cmd.into_iter().map(String::into_bytes).collect());
    }
    seq
}

/// What a reply must equal Redis's in: everything but the `commands` field of ACL GETUSER
/// (Redis describes a user's commands with the categories that fit best over its own command
/// table, which has commands rockraft lacks; `acl_users_match_redis` compares what the
/// commands allow instead) and ACL CAT's lists (compared as sets of rockraft's commands).
fn acl_comparable(
    cmd: &[Vec<u8>],
    reply: Resp,
    ours: &std::collections::BTreeSet<Vec<u8>>,
) -> Resp {
    let sub = String::from_utf8_lossy(&cmd[1]).to_ascii_uppercase();
    match (sub.as_str(), reply) {
        ("GETUSER", Resp::Array(Some(mut fields))) => {
            let mask = |fields: &mut Vec<Resp>| {
                if let Some(i) = fields
                    .iter()
                    .position(|f| *f == Resp::Bulk(Some(b"commands".to_vec())))
                {
                    fields[i + 1] = Resp::Bulk(None);
                }
            };
            mask(&mut fields);
            // Each selector's commands too.
            if let Some(i) = fields
                .iter()
                .position(|f| *f == Resp::Bulk(Some(b"selectors".to_vec())))
            {
                if let Resp::Array(Some(selectors)) = &mut fields[i + 1] {
                    for sel in selectors.iter_mut() {
                        if let Resp::Array(Some(f)) = sel {
                            mask(f);
                        }
                    }
                }
            }
            Resp::Array(Some(fields))
        }
        ("CAT", Resp::Array(Some(mut names))) => {
            names.retain(|n| matches!(n, Resp::Bulk(Some(b)) if ours.contains(b.split(|c| *c == b'|').next().unwrap())));
            names.sort();
            Resp::Array(Some(names))
        }
        (_, r) => r,
    }
}

/// Seeded random ACL SETUSER / DELUSER / GETUSER / USERS / DRYRUN / CAT sequences against
/// Redis and rockraft: the same replies (errors byte for byte), and after each sequence every
/// user allows exactly what Redis's allows (every probe of ACL_PROBES, and Redis's own reading
/// of rockraft's description of the user's commands).
#[test]
fn acl_users_match_redis() {
    let sequences = env_u64("ROCKRAFT_DIFF_ACL_SEQUENCES", 60);
    let seed = env_u64("ROCKRAFT_DIFF_SEED", 20261202);
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(dir.path());
    let mut oracle = Target::connect("redis", redis.addr);
    let mut ours = Target::connect("rockraft", node.addr());
    let table: std::collections::BTreeSet<Vec<u8>> = match ours.call(&args(&[b"COMMAND", b"LIST"]))
    {
        // RRBACKUP is rockraft's own (@admin @dangerous).
        Resp::Array(Some(names)) => names
            .into_iter()
            .map(bulk)
            .filter(|n| n != b"rrbackup")
            .collect(),
        r => panic!("COMMAND LIST answered {r}"),
    };
    // One call of every command and subcommand rockraft has, of the right arity.
    let mut calls: Vec<Vec<Vec<u8>>> = Vec::new();
    let dummy = |arity: i64, base: Vec<Vec<u8>>| {
        let n = arity.unsigned_abs() as usize;
        let mut c = base;
        while c.len() < n {
            c.push(b"x".to_vec());
        }
        c
    };
    if let Resp::Array(Some(all)) = oracle.call(&args(&[b"COMMAND"])) {
        for info in all {
            let Resp::Array(Some(f)) = info else { continue };
            let name = bulk(f[0].clone());
            let Resp::Int(arity) = f[1] else { continue };
            if !table.contains(&name) {
                continue;
            }
            match f.get(9) {
                Some(Resp::Array(Some(subs))) if !subs.is_empty() => {
                    for sub in subs {
                        let Resp::Array(Some(sf)) = sub else { continue };
                        let full = bulk(sf[0].clone());
                        let Resp::Int(sa) = sf[1] else { continue };
                        let parts: Vec<Vec<u8>> =
                            full.split(|c| *c == b'|').map(<[u8]>::to_vec).collect();
                        calls.push(dummy(sa, parts));
                    }
                }
                _ => calls.push(dummy(arity, vec![name])),
            }
        }
    }
    assert!(calls.len() > 250, "{} calls", calls.len());
    // The test's connections run as an admin the sequences leave alone (they change the
    // default user too).
    for t in [&mut oracle, &mut ours] {
        let admin = args(&[
            b"ACL",
            b"SETUSER",
            b"admin",
            b"on",
            b">adminpw",
            b"~*",
            b"&*",
            b"+@all",
        ]);
        assert_eq!(t.call(&admin), Resp::Simple(b"OK".to_vec()));
        assert_eq!(
            t.call(&args(&[b"AUTH", b"admin", b"adminpw"])),
            Resp::Simple(b"OK".to_vec())
        );
    }
    let mut compared = 0;
    for s in 0..sequences {
        let seq_seed = seed.wrapping_add(s);
        for u in ["u1", "u2"] {
            for t in [&mut oracle, &mut ours] {
                t.call(&args(&[b"ACL", b"DELUSER", u.as_bytes()]));
            }
        }
        for t in [&mut oracle, &mut ours] {
            t.call(&args(&[
                b"ACL", b"SETUSER", b"default", b"reset", b"on", b"nopass", b"~*", b"&*", b"+@all",
            ]));
        }
        let seq = acl_sequence(seq_seed, 25);
        for cmd in &seq {
            let want = acl_comparable(cmd, oracle.call(cmd), &table);
            let got = acl_comparable(cmd, ours.call(cmd), &table);
            assert_eq!(
                got, want,
                "ROCKRAFT_DIFF_SEED={seq_seed} ROCKRAFT_DIFF_ACL_SEQUENCES=1: {} differs\n  redis:    {want}\n  rockraft: {got}",
                show(cmd)
            );
            compared += 1;
        }
        for u in ["u1", "u2", "default"] {
            for probe in ACL_PROBES {
                let mut cmd = args(&[b"ACL", b"DRYRUN", u.as_bytes()]);
                cmd.extend(probe.iter().map(|a| a.as_bytes().to_vec()));
                let want = oracle.call(&cmd);
                assert_eq!(
                    ours.call(&cmd),
                    want,
                    "ROCKRAFT_DIFF_SEED={seq_seed}: {}",
                    show(&cmd)
                );
                compared += 1;
            }
        }
        // What each user allows: Redis reads rockraft's description of the user's commands,
        // and that user may run exactly the commands (of rockraft's) Redis's user may.
        for u in ["u1", "u2", "default"] {
            let commands = |t: &mut Target| match t.call(&args(&[b"ACL", b"GETUSER", u.as_bytes()]))
            {
                Resp::Array(Some(f)) => {
                    let i = f
                        .iter()
                        .position(|x| *x == Resp::Bulk(Some(b"commands".to_vec())))
                        .unwrap();
                    Some(bulk(f[i + 1].clone()))
                }
                _ => None,
            };
            let (Some(_), Some(got)) = (commands(&mut oracle), commands(&mut ours)) else {
                continue;
            };
            let mut canon = args(&[b"ACL", b"SETUSER", b"canon", b"reset", b"~*", b"&*"]);
            canon.extend(
                got.split(|c| *c == b' ')
                    .filter(|w| !w.ends_with(b"rrbackup"))
                    .map(<[u8]>::to_vec),
            );
            assert_eq!(
                oracle.call(&canon),
                Resp::Simple(b"OK".to_vec()),
                "{}",
                String::from_utf8_lossy(&got)
            );
            let mut like = args(&[b"ACL", b"SETUSER", b"like", b"reset", b"~*", b"&*"]);
            like.extend(
                commands(&mut oracle)
                    .unwrap()
                    .split(|c| *c == b' ')
                    .map(<[u8]>::to_vec),
            );
            assert_eq!(oracle.call(&like), Resp::Simple(b"OK".to_vec()));
            for call in &calls {
                let runs = |t: &mut Target, user: &[u8]| {
                    let mut c = args(&[b"ACL", b"DRYRUN", user]);
                    c.extend(call.iter().cloned());
                    let r = t.call(&c);
                    !matches!(&r, Resp::Bulk(Some(b)) if b.ends_with(b" command"))
                };
                assert_eq!(
                    runs(&mut oracle, b"canon"),
                    runs(&mut oracle, b"like"),
                    "ROCKRAFT_DIFF_SEED={seq_seed}: user {u} described by rockraft as {:?}: {}",
                    String::from_utf8_lossy(&got),
                    show(call)
                );
            }
            oracle.call(&args(&[b"ACL", b"DELUSER", b"canon", b"like"]));
        }
    }
    // Every category selects the same commands and subcommands (of those rockraft has).
    let cats = match oracle.call(&args(&[b"ACL", b"CAT"])) {
        Resp::Array(Some(c)) => c,
        r => panic!("{r}"),
    };
    assert_eq!(
        ours.call(&args(&[b"ACL", b"CAT"])),
        Resp::Array(Some(cats.clone()))
    );
    for cat in cats {
        let cmd = args(&[b"ACL", b"CAT", &bulk(cat)]);
        let want = acl_comparable(&cmd, oracle.call(&cmd), &table);
        assert_eq!(
            acl_comparable(&cmd, ours.call(&cmd), &table),
            want,
            "{}",
            show(&cmd)
        );
    }
    println!("{sequences} ACL sequences, {compared} commands compared with Redis");
}

/// ACL LOAD and ACL SAVE with an ACL file, against Redis started with the same file: the
/// loaded users, the errors of a bad file (which changes nothing), and the saved text.
#[test]
fn acl_files_load_and_save_as_redis_does() {
    let dir = tempfile::tempdir().unwrap();
    let redis_file = dir.path().join("redis.acl");
    let our_file = dir.path().join("rockraft.acl");
    let good = "user default on nopass ~* &* +@all\nuser app on #5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 ~app:* resetchannels &news -@all +@read (~sel:* +get) (%W~w:* &w -@all +set)\n\n  user ops off ~* &* +@all -@dangerous  \n";
    for f in [&redis_file, &our_file] {
        std::fs::write(f, good).unwrap();
    }
    let redis = RedisServer::start_with(&["--aclfile", redis_file.to_str().unwrap()]);
    let mut cfg = rockraft_server::config::Config::for_data_dir(dir.path().join("node"));
    cfg.aclfile = Some(our_file.clone());
    let node = InProcess::start_with(cfg);
    let mut oracle = Target::connect("redis", redis.addr);
    let mut ours = Target::connect("rockraft", node.addr());
    let both = |oracle: &mut Target, ours: &mut Target, cmd: &[&[u8]]| {
        let cmd = args(cmd);
        let strip = |r: Resp, path: &std::path::Path| -> String {
            r.to_string().replace(path.to_str().unwrap(), "FILE")
        };
        let want = strip(oracle.call(&cmd), &redis_file);
        let got = strip(ours.call(&cmd), &our_file);
        assert_eq!(got, want, "{}", show(&cmd));
        got
    };
    both(&mut oracle, &mut ours, &[b"ACL", b"LOAD"]);
    both(&mut oracle, &mut ours, &[b"ACL", b"LIST"]);
    both(
        &mut oracle,
        &mut ours,
        &[b"ACL", b"DRYRUN", b"app", b"set", b"app:1", b"v"],
    );
    for probe in [
        &[&b"get"[..], b"sel:1"][..],
        &[b"set", b"sel:1", b"v"],
        &[b"set", b"w:1", b"v"],
        &[b"publish", b"w", b"m"],
    ] {
        let mut cmd = vec![&b"ACL"[..], b"DRYRUN", b"app"];
        cmd.extend_from_slice(probe);
        both(&mut oracle, &mut ours, &cmd);
    }
    both(&mut oracle, &mut ours, &[b"AUTH", b"app", b"password"]);
    both(&mut oracle, &mut ours, &[b"ACL", b"WHOAMI"]);
    both(&mut oracle, &mut ours, &[b"AUTH", b"default", b"any"]);
    // A bad file: every error, in Redis's words, and nothing changes.
    let bad =
        "user app on +nosuch ~a\nbogus line\nuser x on #abc\nuser app on\nuser y on +get|x|y\nuser z (~a +get\n";
    for f in [&redis_file, &our_file] {
        std::fs::write(f, bad).unwrap();
    }
    let err = both(&mut oracle, &mut ours, &[b"ACL", b"LOAD"]);
    assert!(err.contains("WARNING: ACL errors detected"), "{err}");
    both(&mut oracle, &mut ours, &[b"ACL", b"USERS"]);
    // ACL SAVE writes what ACL LIST shows.
    both(
        &mut oracle,
        &mut ours,
        &[
            b"ACL", b"SETUSER", b"extra", b"on", b">pw", b"%R~r:*", b"+@hash",
        ],
    );
    both(&mut oracle, &mut ours, &[b"ACL", b"SAVE"]);
    let sorted = |p: &std::path::Path| {
        let mut l: Vec<String> = std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        l.sort();
        l
    };
    assert_eq!(sorted(&our_file), sorted(&redis_file));
}
