//! A raft group over RocksDB with a toy state machine: proposals are answered with their own
//! entry's output, proposals of one turn share entries yet are applied one by one in order,
//! reads wait for ReadIndex, and a restart neither re-applies nor skips entries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rockraft_raftstore::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use rockraft_raftstore::keys::CF_DATA;
use rockraft_raftstore::{
    start_group, ApplyContext, Engine, GroupConfig, GroupHandle, NoPeers, StateMachine,
    MERGE_MAX_BYTES, MERGE_MAX_PROPOSALS,
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

/// Records what each apply saw: the proposal's first byte, the entry's index, the sequence
/// number it drew and the proposer's clock. Answers with the proposal's length.
struct Recorder {
    seen: Arc<Mutex<Vec<Applied>>>,
}

/// (first byte, entry index, sequence number, clock) of one apply.
type Applied = (u8, u64, u64, u64);

impl StateMachine for Recorder {
    type Output = usize;

    fn apply(&mut self, ctx: &mut ApplyContext<'_>, data: &bytes::Bytes) -> usize {
        let seq = ctx.next_seq();
        let seen = (data[0], ctx.index(), seq, ctx.now_ms());
        self.seen.lock().unwrap().push(seen);
        ctx.put(CF_DATA, &[data[0]], &ctx.index().to_be_bytes());
        data.len()
    }
}

#[test]
fn proposals_of_one_turn_share_entries_and_each_is_applied_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (h, t) = start_group(
        engine.clone(),
        GroupConfig::new(7, 1),
        &[7],
        Recorder { seen: seen.clone() },
        NoPeers,
        rockraft_raftstore::AddressBook::default(),
    )
    .unwrap();
    // Proposal i carries (i % 251) as its first byte and i + 1 bytes, except a big one.
    let big = 300;
    let data = |i: usize| {
        let len = if i == big { MERGE_MAX_BYTES } else { i + 1 };
        vec![(i % 251) as u8; len]
    };
    let total = 3 * MERGE_MAX_PROPOSALS;
    rt().block_on(async {
        for _ in 0..200 {
            match h.propose(1, vec![255]).await {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
        seen.lock().unwrap().clear();
        let futures: Vec<_> = (0..total)
            .map(|i| h.propose(5000 + i as u64, data(i)))
            .collect();
        for (i, f) in futures.into_iter().enumerate() {
            assert_eq!(
                f.await.unwrap(),
                data(i).len(),
                "proposal {i} got its own output"
            );
        }
    });
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), total, "every proposal applied once");
    let mut entries = 0;
    for (i, &(first, index, seq, now)) in seen.iter().enumerate() {
        assert_eq!(first, (i % 251) as u8, "applied in the order proposed");
        assert_eq!(now, 5000 + i as u64, "each with its own proposer's clock");
        if i == 0 || index != seen[i - 1].1 {
            entries += 1;
            assert!(i == 0 || index > seen[i - 1].1);
            assert_eq!(seq, 0, "the sequence starts anew with each entry");
        } else {
            assert_eq!(
                seq,
                seen[i - 1].2 + 1,
                "parts of one entry share its sequence"
            );
            assert!(
                i != big && i != big + 1,
                "a proposal this big has an entry of its own"
            );
        }
    }
    eprintln!("{entries} entries for {total} proposals");
    assert!(
        entries <= total / 2,
        "{entries} entries for {total} proposals queued at once"
    );
    assert!(
        entries >= total / MERGE_MAX_PROPOSALS,
        "at most {MERGE_MAX_PROPOSALS} per entry"
    );
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
