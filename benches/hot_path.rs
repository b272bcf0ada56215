//! Micro-benchmarks of the pieces every write goes through, in the order it meets them:
//!
//! - `resp`: decoding a pipelined batch of 16 `SET`s, encoding 16 replies;
//! - `dispatch`: command lookup, arity check, `prepare` and the log entry encoding of one `SET`;
//! - `apply`: the state machine applying a batch of 64 `SET`s into RocksDB (one unsynced batch,
//!   as a raft group's apply round writes it);
//! - `raft_log`: appending 64 entries to the raft log, unsynced (CPU) and synced (CPU + fsync).
//!
//! Run with `cargo bench -p rockraft-benches` (add `-- --quick` for a short run). Keys and values
//! are shaped like `redis-benchmark -d 64 -r 100000`'s.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use raft::eraftpb::Entry;
use rockraft_raftstore::engine::encode_msg;
use rockraft_raftstore::proto::EntryHeader;
use rockraft_raftstore::storage::PeerStorage;
use rockraft_raftstore::{ApplyContext, Engine, StateMachine};
use rockraft_resp::{decode_request, encode_request, Protocol, Reply, RequestLimits};
use rockraft_server::command::{self, Kind};
use rockraft_server::state_machine::{encode_command, KvStateMachine};

const VALUE: [u8; 64] = [b'x'; 64];

/// The `n`-th key of a run, spread over 100,000 keys like `-r 100000`.
fn key(n: u64) -> String {
    format!("key:{:012}", n.wrapping_mul(2_654_435_761) % 100_000)
}

fn set_argv(n: u64) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"SET"),
        Bytes::from(key(n)),
        Bytes::from_static(&VALUE),
    ]
}

fn resp(c: &mut Criterion) {
    let mut wire = Vec::new();
    for n in 0..16 {
        wire.extend(encode_request(&set_argv(n)));
    }
    let limits = RequestLimits::default();
    let mut g = c.benchmark_group("resp");
    g.throughput(Throughput::Elements(16));
    g.bench_function("decode_pipeline_16_set", |b| {
        b.iter_batched(
            || BytesMut::from(&wire[..]),
            |mut buf| {
                let mut n = 0;
                while let Some(argv) = decode_request(&mut buf, &limits).expect("valid") {
                    n += argv.len();
                }
                assert_eq!(n, 48);
            },
            BatchSize::SmallInput,
        )
    });
    let bulk = Reply::Bulk(Bytes::from_static(&VALUE));
    let mut out = BytesMut::with_capacity(16 * 1024);
    g.bench_function("encode_16_ok", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..16 {
                Reply::ok().encode(Protocol::Resp2, &mut out);
            }
        })
    });
    g.bench_function("encode_16_bulk64", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..16 {
                bulk.encode(Protocol::Resp2, &mut out);
            }
        })
    });
    g.finish();
}

fn dispatch(c: &mut Criterion) {
    let argv = set_argv(7);
    let mut g = c.benchmark_group("dispatch");
    g.throughput(Throughput::Elements(1));
    g.bench_function("set_to_log_entry", |b| {
        b.iter(|| {
            let spec = command::lookup(&argv[0]).expect("known");
            assert!(spec.arity_ok(argv.len()));
            let Kind::Write { prepare, .. } = spec.kind else {
                panic!("SET is a write");
            };
            let argv = match prepare(&argv, 1_700_000_000_000) {
                Ok(Some(rewritten)) => rewritten,
                Ok(None) => argv.clone(),
                Err(_) => panic!("valid SET"),
            };
            encode_command(&argv)
        })
    });
    g.finish();
}

fn apply(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(dir.path()).expect("engine");
    let mut sm = KvStateMachine::default();
    let mut n = 0u64;
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(64));
    g.bench_function("batch_64_set", |b| {
        b.iter_batched(
            || {
                (0..64)
                    .map(|_| {
                        n += 1;
                        bytes::Bytes::from(encode_command(&set_argv(n)))
                    })
                    .collect::<Vec<_>>()
            },
            |entries| {
                let mut ctx = ApplyContext::new(&engine);
                for data in &entries {
                    ctx.set_now_ms(1_700_000_000_000);
                    let reply = sm.apply(&mut ctx, data);
                    assert!(matches!(reply, Reply::Simple(_)));
                }
                engine.write(ctx.into_batch(), false).expect("write");
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn raft_log(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(dir.path()).expect("engine");
    let mut store = PeerStorage::open(engine.clone(), 1, &[1]).expect("storage");
    let header = encode_msg(&EntryHeader {
        now_ms: 1_700_000_000_000,
        ..Default::default()
    });
    let mut next = 1u64;
    let mut entries = |count: u64| -> Vec<Entry> {
        let first = next;
        next += count;
        (first..first + count)
            .map(|index| Entry {
                index,
                term: 1,
                context: header.clone().into(),
                data: encode_command(&set_argv(index)).into(),
                ..Default::default()
            })
            .collect()
    };
    let mut g = c.benchmark_group("raft_log");
    g.throughput(Throughput::Elements(64));
    for sync in [false, true] {
        let name = if sync {
            "append_64_synced"
        } else {
            "append_64_unsynced"
        };
        g.bench_function(name, |b| {
            b.iter_batched(
                || entries(64),
                |batch| {
                    let mut log = rockraft_raftstore::LogBatch::default();
                    store.append(&batch, &mut log).expect("stage");
                    engine.write_log(&mut log, sync).expect("write");
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = resp, dispatch, apply, raft_log
}
criterion_main!(benches);
