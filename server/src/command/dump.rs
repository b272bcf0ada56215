//! DUMP and RESTORE in Redis's RDB serialization ([`crate::rdb`]), so values move between a
//! Redis and rockraft (`redis-cli --cluster import`, RIOT, MIGRATE from a Redis, scripts).
//!
//! ```text
//! DUMP key
//! RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
//! MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE]
//!         [AUTH password | AUTH2 username password] [KEYS key …]
//! ```
//! MIGRATE reads the keys linearizably, sends them to the target as Redis does (AUTH, SELECT,
//! then RESTORE-ASKING for each, so a Redis, a Redis Cluster node or another rockraft takes
//! them), and unless COPY proposes their removal: an entry that removes each key only if it
//! still holds the value sent, so a write that came in meanwhile is never lost.
//! RESTORE is proposed with its TTL made absolute (as Redis propagates it), so every node
//! gives the key the same expiry. IDLETIME and FREQ are checked as Redis checks them and
//! otherwise ignored: rockraft keeps no access times or frequencies.

use bytes::Bytes;
use rockraft_resp::Reply;

use super::flags::{ASKING, DENYOOM, READONLY, WRITE};
use super::{parse_i64, spec, CommandSpec, Kind, ReadCtx, ERR_NOT_INTEGER, ERR_SYNTAX};
use crate::db::{Txn, Value, TYPE_HASH, TYPE_LIST, TYPE_SET, TYPE_STREAM, TYPE_STRING, TYPE_ZSET};
use crate::rdb::{self, Object, Refused};
use crate::types::stream::{self as st, StreamId};
use crate::types::{hash, list, set, zset, Collection, Reader};

#[rustfmt::skip]
pub fn commands() -> Vec<CommandSpec> {
    use Kind::{Read, Write};
    let g = "generic";
    vec![
        spec("dump", 2, READONLY, (1, 1, 1), g, "Returns a serialized representation of the value stored at a key.", Read(dump)),
        spec("restore", -4, WRITE | DENYOOM, (1, 1, 1), g, "Creates a key from the serialized representation of a value.", Write { prepare: prepare_restore, apply: apply_restore }),
        spec("migrate", -6, WRITE, (3, 3, 1), g, "Atomically transfers a key from one Redis instance to another.", Kind::Async(migrate)).keys_by(migrate_keys),
        // What a Redis Cluster node sends while migrating a slot; one raft group holds every
        // slot here, so it is RESTORE.
        spec("restore-asking", -4, WRITE | DENYOOM | ASKING, (1, 1, 1), "server", "An internal command for migrating keys in a cluster.", Write { prepare: prepare_restore, apply: apply_restore }),
    ]
}

/// The value of `key` as the RDB format carries it.
pub fn object_of(r: &dyn Reader, key: &[u8], v: &Value) -> Object {
    let coll = || Collection {
        value: v.clone(),
        meta: crate::types::Meta::decode(v),
    };
    match v.kind {
        TYPE_STRING => Object::String(v.data.to_vec()),
        TYPE_LIST => {
            let l = coll();
            let items = match l.meta.size {
                0 => vec![],
                n => list::range(&r, &l, key, 0, n - 1),
            };
            Object::List(items)
        }
        TYPE_SET => Object::Set(set::members(&r, &coll(), key)),
        TYPE_ZSET => Object::ZSet(zset::all(&r, &coll(), key)),
        TYPE_HASH => {
            let mut pairs = Vec::new();
            hash::scan(&r, &coll(), key, &[], |f, v| {
                pairs.push((f.to_vec(), v.to_vec()));
                true
            });
            Object::Hash(pairs)
        }
        TYPE_STREAM => {
            let s = st::Stream::get(&r, key).ok().flatten().expect("a stream");
            let m = &s.meta;
            let entries = st::entries(&r, key, m, StreamId::MIN, StreamId::MAX, false, 0)
                .into_iter()
                .map(|(id, pairs)| {
                    (
                        (id.ms, id.seq),
                        pairs.into_iter().map(|b| b.to_vec()).collect(),
                    )
                })
                .collect();
            let groups = st::groups(&r, key, m)
                .into_iter()
                .map(|(name, g)| {
                    let mut pending = Vec::new();
                    st::pending(
                        &r,
                        key,
                        m,
                        &name,
                        StreamId::MIN,
                        StreamId::MAX,
                        &mut |id, n| {
                            pending.push((
                                (id.ms, id.seq),
                                n.delivery_time,
                                n.delivery_count,
                                n.consumer.to_vec(),
                            ));
                            true
                        },
                    );
                    rdb::Group {
                        name: name.to_vec(),
                        last_id: (g.last_id.ms, g.last_id.seq),
                        entries_read: g.entries_read,
                        pending,
                        consumers: st::consumers(&r, key, m, &name)
                            .into_iter()
                            .map(|(n, c)| (n.to_vec(), c.seen_time))
                            .collect(),
                    }
                })
                .collect();
            Object::Stream(rdb::Stream {
                entries,
                last_id: (m.last_id.ms, m.last_id.seq),
                first_id: (m.first_id.ms, m.first_id.seq),
                max_deleted: (m.max_deleted.ms, m.max_deleted.seq),
                entries_added: m.entries_added,
                groups,
            })
        }
        _ => unreachable!("every stored type is listed"),
    }
}

fn dump(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    ctx.read(|r| match r.live(&argv[1]) {
        None => Reply::Nil,
        Some(v) => Reply::Bulk(Bytes::from(rdb::dump(&object_of(r, &argv[1], &v)))),
    })
}

struct Options {
    replace: bool,
    absttl: bool,
}

/// RESTORE's options after the payload, checked as Redis checks them.
fn options(argv: &[Bytes]) -> Result<Options, Reply> {
    let mut o = Options {
        replace: false,
        absttl: false,
    };
    let (mut idle, mut freq) = (false, false);
    let mut j = 4;
    while j < argv.len() {
        let more = argv.len() - j - 1;
        match super::upper(&argv[j]).as_str() {
            "REPLACE" => o.replace = true,
            "ABSTTL" => o.absttl = true,
            "IDLETIME" if more >= 1 && !freq => {
                let v = parse_i64(&argv[j + 1]).ok_or_else(|| Reply::err(ERR_NOT_INTEGER))?;
                if v < 0 {
                    return Err(Reply::err("ERR Invalid IDLETIME value, must be >= 0"));
                }
                idle = true;
                j += 1;
            }
            "FREQ" if more >= 1 && !idle => {
                let v = parse_i64(&argv[j + 1]).ok_or_else(|| Reply::err(ERR_NOT_INTEGER))?;
                if !(0..=255).contains(&v) {
                    return Err(Reply::err(
                        "ERR Invalid FREQ value, must be >= 0 and <= 255",
                    ));
                }
                freq = true;
                j += 1;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        j += 1;
    }
    Ok(o)
}

/// Checks the options; a relative TTL becomes absolute (`… ABSTTL`), as Redis propagates it.
fn prepare_restore(argv: &[Bytes], now: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    let o = options(argv)?;
    match parse_i64(&argv[2]) {
        Some(ttl) if ttl > 0 && !o.absttl => {
            let at = ttl.saturating_add(now as i64);
            let mut out = argv.to_vec();
            out[2] = Bytes::from(at.to_string());
            out.push(Bytes::from_static(b"ABSTTL"));
            Ok(Some(out))
        }
        // A bad TTL is reported in apply, after the key's existence (Redis's order).
        _ => Ok(None),
    }
}

fn apply_restore(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let o = match options(argv) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let key = &argv[1];
    if !o.replace && txn.get(key).is_some() {
        return Reply::err("BUSYKEY Target key name already exists.");
    }
    let Some(ttl) = parse_i64(&argv[2]) else {
        return Reply::err(ERR_NOT_INTEGER);
    };
    if ttl < 0 {
        return Reply::err("ERR Invalid TTL value, must be >= 0");
    }
    let object = match rdb::restore(&argv[3]) {
        Ok(obj) => obj,
        Err(Refused::VersionOrChecksum) => {
            return Reply::err("ERR DUMP payload version or checksum are wrong")
        }
        Err(Refused::BadFormat) => return Reply::err("ERR Bad data format"),
    };
    if empty(&object) {
        return Reply::err("ERR Bad data format");
    }
    if o.replace {
        txn.del(key);
    }
    // Prepare made a relative TTL absolute; one already past leaves no key (Redis's rule).
    if ttl > 0 && ttl as u64 <= txn.now_ms() {
        return Reply::ok();
    }
    store(txn, key, object);
    if ttl > 0 {
        if let Some(mut v) = txn.get(key) {
            v.expire_at = ttl as u64;
            txn.set(key, &v);
        }
    }
    Reply::ok()
}

/// Redis refuses an empty collection in a payload.
fn empty(o: &Object) -> bool {
    match o {
        Object::String(_) => false,
        Object::List(v) | Object::Set(v) => v.is_empty(),
        Object::ZSet(v) => v.is_empty(),
        Object::Hash(v) => v.is_empty(),
        Object::Stream(_) => false,
    }
}

fn store(txn: &mut Txn, key: &[u8], o: Object) {
    let b = |v: Vec<u8>| Bytes::from(v);
    match o {
        Object::String(s) => txn.set(key, &Value::string(s, 0)),
        Object::List(items) => {
            let items: Vec<Bytes> = items.into_iter().map(b).collect();
            list::push(txn, key, &items, list::End::Right, false).expect("a new list");
        }
        Object::Set(members) => {
            set::store(txn, key, &members);
        }
        Object::ZSet(mut entries) => {
            // A payload may repeat a member: the last score wins, as in Redis's load.
            entries.reverse();
            let mut seen = std::collections::HashSet::new();
            entries.retain(|(m, _)| seen.insert(m.clone()));
            zset::store(txn, key, &entries);
        }
        Object::Hash(pairs) => {
            let pairs: Vec<(Bytes, Bytes)> = pairs.into_iter().map(|(f, v)| (b(f), b(v))).collect();
            let refs: Vec<(&Bytes, &Bytes)> = pairs.iter().map(|(f, v)| (f, v)).collect();
            hash::set(txn, key, &refs, false).expect("a new hash");
        }
        Object::Stream(s) => {
            let mut stream = st::Stream::create(txn);
            for ((ms, seq), pairs) in s.entries {
                let pairs: Vec<Bytes> = pairs.into_iter().map(b).collect();
                st::append(txn, key, &mut stream, StreamId::new(ms, seq), &pairs);
            }
            let id = |(ms, seq): rdb::Id| StreamId::new(ms, seq);
            stream.meta.last_id = id(s.last_id).max(stream.meta.last_id);
            stream.meta.first_id = id(s.first_id);
            stream.meta.max_deleted = id(s.max_deleted);
            stream.meta.entries_added = s.entries_added;
            stream.meta.groups = s.groups.len() as u64;
            for g in s.groups {
                for (name, seen) in &g.consumers {
                    let pending = g.pending.iter().filter(|p| p.3 == *name).count() as u64;
                    st::put_consumer(
                        txn,
                        key,
                        &stream.meta,
                        &g.name,
                        name,
                        &st::Consumer {
                            seen_time: *seen,
                            pending,
                        },
                    );
                }
                for (pid, time, count, owner) in &g.pending {
                    let n = st::Nack {
                        delivery_time: *time,
                        delivery_count: *count,
                        consumer: Bytes::copy_from_slice(owner),
                    };
                    st::put_nack(txn, key, &stream.meta, &g.name, id(*pid), &n);
                }
                let group = st::Group {
                    last_id: id(g.last_id),
                    entries_read: g.entries_read,
                    pending: g.pending.len() as u64,
                    consumers: g.consumers.len() as u64,
                };
                st::put_group(txn, key, &stream.meta, &g.name, &group);
            }
            stream.save(txn, key);
        }
    }
}

/// MIGRATE's keys: the key argument, or those after KEYS.
fn migrate_keys(argv: &[Bytes]) -> Vec<usize> {
    match argv.iter().position(|a| a.eq_ignore_ascii_case(b"KEYS")) {
        Some(i) if argv.get(3).is_some_and(|k| k.is_empty()) => (i + 1..argv.len()).collect(),
        _ => vec![3],
    }
}

struct Migrate {
    addr: String,
    db: i64,
    timeout_ms: u64,
    copy: bool,
    replace: bool,
    auth: Option<Vec<Bytes>>,
    keys: Vec<Bytes>,
}

fn parse_migrate(argv: &[Bytes]) -> Result<Migrate, Reply> {
    let mut m = Migrate {
        addr: format!(
            "{}:{}",
            String::from_utf8_lossy(&argv[1]),
            String::from_utf8_lossy(&argv[2])
        ),
        db: 0,
        timeout_ms: 0,
        copy: false,
        replace: false,
        auth: None,
        keys: vec![argv[3].clone()],
    };
    let mut j = 6;
    let mut first_key = None;
    while j < argv.len() {
        let more = argv.len() - j - 1;
        match super::upper(&argv[j]).as_str() {
            "COPY" => m.copy = true,
            "REPLACE" => m.replace = true,
            "AUTH" if more >= 1 => {
                m.auth = Some(vec![Bytes::from_static(b"AUTH"), argv[j + 1].clone()]);
                j += 1;
            }
            "AUTH2" if more >= 2 => {
                m.auth = Some(vec![
                    Bytes::from_static(b"AUTH"),
                    argv[j + 1].clone(),
                    argv[j + 2].clone(),
                ]);
                j += 2;
            }
            "KEYS" => {
                if !argv[3].is_empty() {
                    return Err(Reply::err("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string"));
                }
                first_key = Some(j + 1);
                break;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        j += 1;
    }
    let (Some(timeout), Some(db)) = (parse_i64(&argv[5]), parse_i64(&argv[4])) else {
        return Err(Reply::err(ERR_NOT_INTEGER));
    };
    m.timeout_ms = if timeout <= 0 { 1000 } else { timeout as u64 };
    m.db = db;
    if let Some(k) = first_key {
        m.keys = argv[k..].to_vec();
    }
    Ok(m)
}

fn migrate(
    shared: std::sync::Arc<crate::Shared>,
    argv: Vec<Bytes>,
    caller: super::Caller,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>> {
    Box::pin(async move {
        let m = match parse_migrate(&argv) {
            Ok(m) => m,
            Err(e) => return e,
        };
        let status = shared.group.status();
        if !status.is_leader() {
            return crate::connection::redirect(&shared, 0, status.leader(), caller.tls);
        }
        if let Err(e) = shared.group.read_index().await {
            return crate::connection::store_error(&shared, e, "read", 0, caller.tls);
        }
        // Each key's payload and remaining TTL, as of the linearizable read.
        let now = super::now_ms();
        let found: Vec<(Bytes, Vec<u8>, u64)> = shared.db.read(|view| {
            let at = crate::types::At { view, now_ms: now };
            m.keys
                .iter()
                .filter_map(|k| {
                    let v = at.live(k)?;
                    let ttl = if v.expire_at == 0 {
                        0
                    } else {
                        v.expire_at.saturating_sub(now).max(1)
                    };
                    Some((k.clone(), rdb::dump(&object_of(&at, k, &v)), ttl))
                })
                .collect()
        });
        if found.is_empty() {
            return Reply::Simple("NOKEY".into());
        }
        let mut requests = Vec::new();
        if let Some(auth) = &m.auth {
            requests.push(auth.clone());
        }
        requests.push(vec![
            Bytes::from_static(b"SELECT"),
            Bytes::from(m.db.to_string()),
        ]);
        for (k, payload, ttl) in &found {
            let mut r = vec![
                Bytes::from_static(b"RESTORE-ASKING"),
                k.clone(),
                Bytes::from(ttl.to_string()),
                Bytes::from(payload.clone()),
            ];
            if m.replace {
                r.push(Bytes::from_static(b"REPLACE"));
            }
            requests.push(r);
        }
        let timeout = std::time::Duration::from_millis(m.timeout_ms);
        let replies = match crate::peer_client::pipeline(&m.addr, &requests, timeout).await {
            Ok(r) => r,
            Err(crate::peer_client::PipelineFailure::Connect) => {
                return Reply::err("IOERR error or timeout connecting to the client")
            }
            Err(crate::peer_client::PipelineFailure::Write) => {
                return Reply::err("IOERR error or timeout writing to target instance")
            }
            Err(crate::peer_client::PipelineFailure::Read) => {
                return Reply::err("IOERR error or timeout reading to target instance")
            }
        };
        let skip = requests.len() - found.len();
        // The keys the target took; the first error reply is the answer (as Redis's).
        let mut first_error = None;
        let mut moved = vec![Bytes::from_static(b"rockraft.migrated")];
        for (i, r) in replies.into_iter().enumerate() {
            match r {
                Err(e) if first_error.is_none() => first_error = Some(e),
                Err(_) => {}
                Ok(()) if i >= skip => {
                    let (k, payload, _) = &found[i - skip];
                    moved.push(k.clone());
                    moved.push(Bytes::from(payload.clone()));
                }
                Ok(()) => {}
            }
        }
        if !m.copy && moved.len() > 1 {
            let proposal = shared
                .group
                .propose(now, crate::state_machine::encode_command(&moved));
            let timeout = std::time::Duration::from_millis(shared.config.write_timeout_ms);
            match tokio::time::timeout(timeout, proposal).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return crate::connection::store_error(&shared, e, "write", 0, caller.tls)
                }
                Err(_) => {
                    return Reply::err(
                        "TIMEOUT the keys were copied; their removal here is not applied yet",
                    )
                }
            }
        }
        match first_error {
            Some(e) => Reply::err(format!("ERR Target instance replied with error: {e}")),
            None => Reply::ok(),
        }
    })
}

/// `rockraft.migrated key payload …`: removes each key MIGRATE sent, if it still holds the
/// value sent (a write since then keeps the key, as if it came after the migration).
pub fn apply_migrated(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let mut removed = 0;
    for pair in argv[1..].chunks_exact(2) {
        let Some(v) = txn.get(&pair[0]) else {
            continue;
        };
        if rdb::dump(&object_of(&*txn, &pair[0], &v)) == pair[1][..] {
            txn.del(&pair[0]);
            removed += 1;
        }
    }
    Reply::Int(removed)
}
