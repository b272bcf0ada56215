//! Differential test: seeded random command sequences against real Redis (Debian's
//! redis-server) and against rockraft (one node, and the leader of a three-node cluster);
//! every reply must match. CI runs a seeded slice; `ROCKRAFT_DIFF_SEQUENCES` (default 200)
//! and `ROCKRAFT_DIFF_SEED` run more, or another slice. A difference fails with the seed and
//! the shortest sequence that still shows it.

use std::time::Duration;

use rockraft_tests::differential::{
    first_difference, show, shrink, Generator, RedisServer, Target,
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
