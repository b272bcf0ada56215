//! A raft group over RocksDB with a toy state machine: proposals are answered with their own
//! entry's output, reads wait for ReadIndex, and a restart neither re-applies nor skips entries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rockraft_raftstore::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use rockraft_raftstore::keys::CF_DATA;
use rockraft_raftstore::{
    start_group, ApplyContext, Engine, GroupConfig, GroupHandle, NoPeers, StateMachine,
};

/// Increments the counter named by the entry and returns its new value; counts apply calls.
struct Counter {
    applies: Arc<AtomicU64>,
}

impl StateMachine for Counter {
    type Output = (u64, u64);

    fn apply(&mut self, ctx: &mut ApplyContext<'_>, data: &bytes::Bytes) -> (u64, u64) {
        self.applies.fetch_add(1, Ordering::SeqCst);
        let current = ctx
            .get(CF_DATA, data)
            .map(|v| u64::from_be_bytes(v.try_into().unwrap()))
            .unwrap_or(0);
        ctx.put(CF_DATA, data, &(current + 1).to_be_bytes());
        (current + 1, ctx.now_ms())
    }
}

fn start(
    dir: &std::path::Path,
    applies: &Arc<AtomicU64>,
) -> (
    GroupHandle<(u64, u64)>,
    std::thread::JoinHandle<()>,
    Arc<Engine>,
) {
    let engine = Engine::open(dir).unwrap();
    let (h, t) = start_group(
        engine.clone(),
        GroupConfig::new(7, 1),
        &[7],
        Counter {
            applies: applies.clone(),
        },
        NoPeers,
        rockraft_raftstore::AddressBook::default(),
    )
    .unwrap();
    (h, t, engine)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn propose_until_leader(h: &GroupHandle<(u64, u64)>, key: &[u8], now: u64) -> (u64, u64) {
    for _ in 0..200 {
        match h.propose(now, key.to_vec()).await {
            Ok(v) => return v,
            Err(rockraft_raftstore::Error::NotLeader { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no leader");
}

#[test]
fn each_proposal_gets_its_own_entry_output() {
    let dir = tempfile::tempdir().unwrap();
    let applies = Arc::new(AtomicU64::new(0));
    let (h, t, _e) = start(dir.path(), &applies);
    rt().block_on(async {
        propose_until_leader(&h, b"warmup", 1).await;
        // Submit many before awaiting any: they share ready turns, yet each caller gets the
        // output of its own entry, in order.
        let futures: Vec<_> = (0..500)
            .map(|i| h.propose(1000 + i, b"c".to_vec()))
            .collect();
        for (i, f) in futures.into_iter().enumerate() {
            let (value, now) = f.await.unwrap();
            assert_eq!(value, i as u64 + 1);
            assert_eq!(now, 1000 + i as u64, "apply sees the proposer's clock");
        }
        h.read_index().await.unwrap();
    });
    assert_eq!(applies.load(Ordering::SeqCst), 501);
    h.stop();
    t.join().unwrap();
}

#[test]
fn restart_resumes_after_the_applied_index() {
    let dir = tempfile::tempdir().unwrap();
    let applies = Arc::new(AtomicU64::new(0));
    let (h, t, engine) = start(dir.path(), &applies);
    rt().block_on(async {
        propose_until_leader(&h, b"c", 1).await;
        for _ in 0..99 {
            h.propose(1, b"c".to_vec()).await.unwrap();
        }
    });
    let applied = h.status().applied_index.load(Ordering::SeqCst);
    h.stop();
    t.join().unwrap();
    drop(engine);

    let again = Arc::new(AtomicU64::new(0));
    let (h, t, engine) = start(dir.path(), &again);
    rt().block_on(async {
        let (value, _) = propose_until_leader(&h, b"c", 1).await;
        assert_eq!(value, 101, "nothing applied twice, nothing skipped");
        h.read_index().await.unwrap();
    });
    assert_eq!(
        again.load(Ordering::SeqCst),
        1,
        "only the new entry is applied"
    );
    assert!(h.status().applied_index.load(Ordering::SeqCst) > applied);
    let stored = engine.get(CF_DATA, b"c").unwrap().unwrap();
    assert_eq!(u64::from_be_bytes(stored.try_into().unwrap()), 101);
    h.stop();
    t.join().unwrap();
}

#[test]
fn reads_wait_for_the_leader_and_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let applies = Arc::new(AtomicU64::new(0));
    let (h, t, _e) = start(dir.path(), &applies);
    rt().block_on(async {
        propose_until_leader(&h, b"k", 1).await;
        let reads: Vec<_> = (0..100).map(|_| h.read_index()).collect();
        for r in reads {
            r.await.unwrap();
        }
    });
    h.stop();
    t.join().unwrap();
    // A stopped group fails new requests instead of hanging them.
    let err = rt().block_on(h.read_index()).unwrap_err();
    assert_eq!(err, rockraft_raftstore::Error::Stopped);
}

fn conf_change(change_type: ConfChangeType, node: u64) -> ConfChangeV2 {
    let mut change = ConfChangeSingle::default();
    change.set_change_type(change_type);
    change.node_id = node;
    let mut cc = ConfChangeV2::default();
    cc.mut_changes().push(change);
    cc
}

/// A lone voter answers linearizable reads without a read index once it has applied its
/// term's first entry; a learner changes nothing, a second voter ends it (and reads then need
/// a quorum the group no longer has).
#[test]
fn a_lone_voter_reads_locally_until_a_second_voter_is_proposed() {
    let dir = tempfile::tempdir().unwrap();
    let applies = Arc::new(AtomicU64::new(0));
    let (h, t, _e) = start(dir.path(), &applies);
    let local = |h: &GroupHandle<(u64, u64)>| h.status().sole_voter_reads();
    rt().block_on(async {
        propose_until_leader(&h, b"k", 1).await;
        // Published at the end of the turn that answered the proposal.
        assert!(
            eventually(|| local(&h)).await,
            "a lone leader that applied its term reads locally"
        );
        h.read_index().await.unwrap();
        h.conf_change(conf_change(ConfChangeType::AddLearnerNode, 8))
            .await
            .unwrap();
        assert!(
            eventually(|| local(&h)).await,
            "a learner has no vote: reads are local again once it is applied"
        );
        // Node 8 never answers: the promotion commits on the old configuration's quorum.
        let promote = h.conf_change(conf_change(ConfChangeType::AddNode, 8));
        promote.await.unwrap();
        assert!(!local(&h), "two voters: reads need a read index again");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!local(&h), "and stay so");
    });
    h.stop();
    t.join().unwrap();
}

/// Whether `f` holds within two seconds.
async fn eventually(f: impl Fn() -> bool) -> bool {
    for _ in 0..100 {
        if f() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}
