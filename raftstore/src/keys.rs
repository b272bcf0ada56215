//! Every key rockraft writes, in one place: RocksDB's, and raft-engine's.
//!
//! All integers are big-endian so that RocksDB's byte order is numeric order.
//!
//! ## raft-engine (`<data dir>/raft`)
//! Per raft group (raft-engine's region id is the group id): its log entries, its hard state
//! ([`RAFT_HARD_STATE_KEY`]) and where its log starts ([`RAFT_LOG_STATE_KEY`]). Everything
//! there is written synced before raft is told it is persisted.
//!
//! ## RocksDB (`<data dir>/db`), written without a WAL
//! Only apply writes here (and the rare node-level changes: identity, joining a cluster,
//! installing a snapshot, which flush at once). All column families flush together
//! (`atomic_flush`), so after a crash RocksDB holds exactly the state at some apply index,
//! and the group re-applies the log from there.
//!
//! Column families:
//! - `raft`: per-node identity and format; per raft group, its apply state, conf state and
//!   member addresses (all written with the data they go with).
//! - `default`: user data (one key per user key; the value carries type and expiry).
//! - `expire`: an index of keys with a time to live, ordered by expiry time.
//! - `element`: one entry per element of a collection (hash field, set member, list element,
//!   sorted-set member), under the collection's current version.
//! - `zscore`: the score index of sorted sets (score, then member), for range scans by score.
//! - `mark`: per user key, the log index of the entry that last changed it (WATCH compares
//!   these with the index it read at); see [`MARK_HORIZON`].
//! - `script`: the replicated script cache (`s` + SHA1 hex → script body) and the function
//!   libraries (`l` + library name → its code; `f` + function name → its library's name).
//!   FLUSHALL keeps it (as Redis keeps its scripts and functions); SCRIPT FLUSH empties the
//!   cache, FUNCTION FLUSH the libraries.
//!
//! Every user key, element and index entry starts with the key's 2-byte hash slot, so one slot
//! range is one key range in every data family (the key space can be split by slots).
//!
//! ## Values in `default`
//! `[type: u8][expire_at_ms: u64, 0 = none][payload]`. A string's payload is its bytes. A
//! collection's payload is its metadata, `[version: u64][size: u64][type-specific…]`: deleting
//! or overwriting a collection of any size replaces only this entry, and the elements of the old
//! version become unreachable (a compaction filter drops them later, see `engine.rs`).
//!
//! ## Elements
//! `slot | key length: u32 | key | version: u64 | sub-key`: a collection's elements are one
//! contiguous range, ordered by sub-key. The score index is the same prefix, then the score in
//! an order-preserving 8-byte form ([`encode_score`]), then the member.

/// Column family of raft state.
pub const CF_RAFT: &str = "raft";
/// Column family of user data.
pub const CF_DATA: &str = "default";
/// Column family of the expiry index.
pub const CF_EXPIRE: &str = "expire";
/// Column family of collection elements.
pub const CF_ELEMENT: &str = "element";
/// Column family of the sorted sets' score index.
pub const CF_SCORE: &str = "zscore";
/// Column family of the modification marks (key: a data key; value: a log index, u64).
pub const CF_MARK: &str = "mark";
/// Column family of the replicated script cache and function libraries.
pub const CF_SCRIPT: &str = "script";
/// Every column family, in creation order.
pub const ALL_CFS: [&str; 7] = [
    CF_DATA, CF_RAFT, CF_EXPIRE, CF_ELEMENT, CF_SCORE, CF_MARK, CF_SCRIPT,
];
/// The families of the replicated state machine (what a snapshot carries and replaces).
pub const DATA_CFS: [&str; 6] = [CF_DATA, CF_EXPIRE, CF_ELEMENT, CF_SCORE, CF_MARK, CF_SCRIPT];
/// The families FLUSHALL empties: the data, not the marks (a flush is judged key by key by
/// whoever watched a key, see the server's `WATCH`).
pub const FLUSH_CFS: [&str; 4] = [CF_DATA, CF_EXPIRE, CF_ELEMENT, CF_SCORE];

/// How many log entries a WATCH may span. A transaction whose watch was read more than this
/// many entries before its EXEC entry is aborted, whatever the marks say; so a mark older than
/// twice this behind the applied index can no longer decide anything, and compactions drop it
/// (the second horizon covers a node that took a snapshot while it applied further). Marks
/// are thus bounded by the keys written in the last `2 * MARK_HORIZON` entries, and every
/// node decides a transaction the same way whether or not its compactions dropped a mark.
pub const MARK_HORIZON: u64 = 1 << 24;
/// The families whose entries belong to a collection version (and are garbage once it is gone).
pub const ELEMENT_CFS: [&str; 2] = [CF_ELEMENT, CF_SCORE];

/// Type tag of a string value (the only type without metadata).
pub const TYPE_STRING: u8 = 0;
/// Bytes before a value's payload: type and expiry.
pub const VALUE_HEADER_LEN: usize = 9;

/// The version of the collection an encoded `default` value holds; None for a string.
pub fn collection_version(value: &[u8]) -> Option<u64> {
    if *value.first()? == TYPE_STRING {
        return None;
    }
    let v: [u8; 8] = value
        .get(VALUE_HEADER_LEN..VALUE_HEADER_LEN + 8)?
        .try_into()
        .ok()?;
    Some(u64::from_be_bytes(v))
}

const STORE_PREFIX: u8 = 0x01;
const GROUP_PREFIX: u8 = 0x02;

const IDENT_SUFFIX: u8 = 0x01;

const LOG_SUFFIX: u8 = 0x01;
const HARD_STATE_SUFFIX: u8 = 0x02;
const APPLY_STATE_SUFFIX: u8 = 0x03;
const CONF_STATE_SUFFIX: u8 = 0x04;
const NODE_ADDR_SUFFIX: u8 = 0x05;
const INITIAL_CONF_SUFFIX: u8 = 0x06;
const SNAPSHOT_APPLYING_SUFFIX: u8 = 0x07;
const RESETTING_SUFFIX: u8 = 0x08;

const FORMAT_SUFFIX: u8 = 0x02;

/// The data directory's format ([`STORE_FORMAT`], a u64): absent in directories written before
/// the raft log moved to raft-engine, whose log is in the `raft` family (see `upgrade.rs`).
pub fn store_format_key() -> [u8; 2] {
    [STORE_PREFIX, FORMAT_SUFFIX]
}

/// The format this release writes: the raft log and hard state in raft-engine.
pub const STORE_FORMAT: u64 = 2;

/// raft-engine key of a group's hard state.
pub const RAFT_HARD_STATE_KEY: &[u8] = b"hard_state";
/// raft-engine key of a group's [`crate::proto::RaftLogState`].
pub const RAFT_LOG_STATE_KEY: &[u8] = b"log_state";

/// The node's identity (node id, cluster id), written once at first start.
pub fn store_ident_key() -> [u8; 2] {
    [STORE_PREFIX, IDENT_SUFFIX]
}

fn group_key(group_id: u64, suffix: u8) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[0] = GROUP_PREFIX;
    k[1..9].copy_from_slice(&group_id.to_be_bytes());
    k[9] = suffix;
    k
}

/// The log entry at `index` of group `group_id`, in the `raft` family of a directory written
/// before the raft log moved to raft-engine (read only by the upgrade).
pub fn log_key(group_id: u64, index: u64) -> [u8; 18] {
    let mut k = [0u8; 18];
    k[..10].copy_from_slice(&group_key(group_id, LOG_SUFFIX));
    k[10..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The index encoded in a key made by [`log_key`].
pub fn log_index(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(10..18)?.try_into().ok()?;
    (key.len() == 18 && key[9] == LOG_SUFFIX).then(|| u64::from_be_bytes(tail))
}

/// A group's hard state in a directory written before the raft log moved to raft-engine.
pub fn hard_state_key(group_id: u64) -> [u8; 10] {
    group_key(group_id, HARD_STATE_SUFFIX)
}

pub fn apply_state_key(group_id: u64) -> [u8; 10] {
    group_key(group_id, APPLY_STATE_SUFFIX)
}

pub fn conf_state_key(group_id: u64) -> [u8; 10] {
    group_key(group_id, CONF_STATE_SUFFIX)
}

/// The conf state the group started from (before its first log entry). Every member starts
/// from it and replays the log, so all members go through the same configurations.
pub fn initial_conf_key(group_id: u64) -> [u8; 10] {
    group_key(group_id, INITIAL_CONF_SUFFIX)
}

/// Present while a received snapshot is being installed: the old data is already cleared and
/// the raft state moved to the snapshot's index, but its files may not all be ingested yet. A
/// restart finishes the install before anything else.
pub fn snapshot_applying_key(group_id: u64) -> [u8; 10] {
    group_key(group_id, SNAPSHOT_APPLYING_SUFFIX)
}

/// Present while a node leaves its group to join another (see `group.rs`, `reset`): RocksDB
/// already holds the new, empty state, and the group's raft log must still be discarded.
pub fn resetting_key(group_id: u64) -> [u8; 10] {
    group_key(group_id, RESETTING_SUFFIX)
}

/// Address of member `node_id` of group `group_id`, as recorded by the log.
pub fn node_addr_key(group_id: u64, node_id: u64) -> [u8; 18] {
    let mut k = [0u8; 18];
    k[..10].copy_from_slice(&group_key(group_id, NODE_ADDR_SUFFIX));
    k[10..].copy_from_slice(&node_id.to_be_bytes());
    k
}

/// The group whose raft log or raft state (log entries, hard state, apply state) key `k` of
/// the `raft` family is, if it is one: what a directory of the old format must migrate.
pub fn legacy_raft_state_group(k: &[u8]) -> Option<u64> {
    if k.len() < 10 || k[0] != GROUP_PREFIX {
        return None;
    }
    let group = u64::from_be_bytes(k[1..9].try_into().ok()?);
    matches!(k[9], LOG_SUFFIX | HARD_STATE_SUFFIX | APPLY_STATE_SUFFIX).then_some(group)
}

/// Every key of group `group_id` lies in `[group_start, group_end)`.
pub fn group_start(group_id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = GROUP_PREFIX;
    k[1..9].copy_from_slice(&group_id.to_be_bytes());
    k
}

/// See [`group_start`].
pub fn group_end(group_id: u64) -> [u8; 9] {
    group_start(group_id + 1)
}

/// `[start, end)` of the log keys of group `group_id`.
pub fn log_range(group_id: u64) -> ([u8; 18], [u8; 18]) {
    (log_key(group_id, 0), log_key(group_id, u64::MAX))
}

/// `[start, end)` of the member addresses of group `group_id`.
pub fn node_addr_range(group_id: u64) -> ([u8; 18], [u8; 18]) {
    (
        node_addr_key(group_id, 0),
        node_addr_key(group_id, u64::MAX),
    )
}

/// `[start, end)` covering every key of data family `cf`.
pub fn data_cf_range(cf: &str) -> (Vec<u8>, Vec<u8>) {
    if cf == CF_SCRIPT {
        // Script keys start with an ASCII letter.
        (Vec::new(), vec![0xff])
    } else if cf == CF_EXPIRE {
        (vec![0u8; 8], vec![0xffu8; 9])
    } else {
        (
            slot_start(0).to_vec(),
            slot_start(crate::slot::SLOT_COUNT).to_vec(),
        )
    }
}

/// Stages the removal of every user key, element and index entry (FLUSHALL-like, for a node
/// that leaves its data behind or installs a snapshot).
pub fn stage_clear_data(engine: &crate::Engine, wb: &mut rocksdb::WriteBatch) {
    for cf in DATA_CFS {
        let (start, end) = data_cf_range(cf);
        wb.delete_range_cf(engine.cf(cf), start, end);
    }
}

/// Key of a cached script in `script`: `s` + its SHA1 (40 lowercase hex digits).
pub fn script_key(sha: &[u8]) -> Vec<u8> {
    [&b"s"[..], sha].concat()
}

/// `[start, end)` of the cached scripts in `script`.
pub fn script_range() -> (Vec<u8>, Vec<u8>) {
    (b"s".to_vec(), b"t".to_vec())
}

/// Key of a function library in `script`: `l` + its name.
pub fn library_key(name: &[u8]) -> Vec<u8> {
    [&b"l"[..], name].concat()
}

/// `[start, end)` of the function libraries in `script`.
pub fn library_range() -> (Vec<u8>, Vec<u8>) {
    (b"l".to_vec(), b"m".to_vec())
}

/// Key of a function's entry in `script` (its library's name): `f` + the function's name.
pub fn function_key(name: &[u8]) -> Vec<u8> {
    [&b"f"[..], name].concat()
}

/// `[start, end)` of the functions' entries in `script`.
pub fn function_range() -> (Vec<u8>, Vec<u8>) {
    (b"f".to_vec(), b"g".to_vec())
}

/// Key in the expiry index: expiry time, then the user key.
pub fn expire_key(expire_at_ms: u64, user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + user_key.len());
    k.extend_from_slice(&expire_at_ms.to_be_bytes());
    k.extend_from_slice(user_key);
    k
}

/// Splits a key made by [`expire_key`].
pub fn parse_expire_key(k: &[u8]) -> Option<(u64, &[u8])> {
    let at: [u8; 8] = k.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(at), &k[8..]))
}

/// Key in the data column family for a user key: its hash slot first (big-endian), so one
/// slot's keys are contiguous and the whole key space is the range `[0, SLOT_COUNT)`.
pub fn data_key(user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + user_key.len());
    k.extend_from_slice(&crate::slot::key_slot(user_key).to_be_bytes());
    k.extend_from_slice(user_key);
    k
}

/// The user key inside a key made by [`data_key`].
pub fn user_key(data_key: &[u8]) -> &[u8] {
    &data_key[2.min(data_key.len())..]
}

/// The first data key of `slot`; `slot_start(SLOT_COUNT)` is the end of the key space.
pub fn slot_start(slot: u16) -> [u8; 2] {
    slot.to_be_bytes()
}

/// The prefix shared by every element (and score-index entry) of version `version` of
/// `user_key`.
pub fn element_prefix(user_key: &[u8], version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(14 + user_key.len() + 16);
    k.extend_from_slice(&crate::slot::key_slot(user_key).to_be_bytes());
    k.extend_from_slice(&(user_key.len() as u32).to_be_bytes());
    k.extend_from_slice(user_key);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// The element `sub` of version `version` of `user_key`.
pub fn element_key(user_key: &[u8], version: u64, sub: &[u8]) -> Vec<u8> {
    let mut k = element_prefix(user_key, version);
    k.extend_from_slice(sub);
    k
}

/// Splits a key made by [`element_key`] (or [`score_key`]): (user key, version, sub-key).
pub fn parse_element_key(k: &[u8]) -> Option<(&[u8], u64, &[u8])> {
    let len = u32::from_be_bytes(k.get(2..6)?.try_into().ok()?) as usize;
    let key_end = 6usize.checked_add(len)?;
    let user_key = k.get(6..key_end)?;
    let version = u64::from_be_bytes(k.get(key_end..key_end + 8)?.try_into().ok()?);
    Some((user_key, version, &k[key_end + 8..]))
}

/// The data key ([`data_key`]) of the collection an element key belongs to.
pub fn element_owner(k: &[u8]) -> Option<Vec<u8>> {
    let (user_key, _, _) = parse_element_key(k)?;
    let mut d = Vec::with_capacity(2 + user_key.len());
    d.extend_from_slice(&k[..2]);
    d.extend_from_slice(user_key);
    Some(d)
}

/// The end (exclusive) of the range of keys starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff: no key is greater with this prefix; a longer key of 0xff bytes is the bound.
    vec![0xff; prefix.len() + 1]
}

/// A score in 8 bytes whose byte order is the numeric order (-inf < … < -0 = 0 < … < +inf).
/// NaN is never stored.
pub fn encode_score(score: f64) -> [u8; 8] {
    // -0.0 and 0.0 are the same score.
    let score = if score == 0.0 { 0.0 } else { score };
    let bits = score.to_bits();
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    ordered.to_be_bytes()
}

/// The inverse of [`encode_score`].
pub fn decode_score(b: &[u8]) -> Option<f64> {
    let ordered = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
    let bits = if ordered >> 63 == 1 {
        ordered & !(1 << 63)
    } else {
        !ordered
    };
    Some(f64::from_bits(bits))
}

/// The score-index entry of `member` with `score` in version `version` of `user_key`.
pub fn score_key(user_key: &[u8], version: u64, score: f64, member: &[u8]) -> Vec<u8> {
    let mut k = element_prefix(user_key, version);
    k.extend_from_slice(&encode_score(score));
    k.extend_from_slice(member);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_index_within_a_group() {
        assert!(log_key(1, 255) < log_key(1, 256));
        assert!(log_key(1, u64::MAX) < log_key(2, 0));
        assert!(log_key(1, 9)[..] > hard_state_key(0)[..]);
        assert_eq!(log_index(&log_key(7, 42)), Some(42));
        assert_eq!(log_index(&hard_state_key(7)), None);
    }

    #[test]
    fn element_keys_split_back_and_sort_by_key_then_version_then_sub_key() {
        let k = element_key(b"user", 7, b"field");
        assert_eq!(
            parse_element_key(&k),
            Some((&b"user"[..], 7, &b"field"[..]))
        );
        assert_eq!(element_owner(&k).unwrap(), data_key(b"user"));
        assert!(k.starts_with(&element_prefix(b"user", 7)));
        assert!(element_key(b"user", 7, b"a") < element_key(b"user", 7, b"b"));
        assert!(element_key(b"user", 7, b"\xff") < element_key(b"user", 8, b""));
        // A key that is a prefix of another never shares its elements' range.
        let short = element_prefix(b"ab", 1);
        assert!(!element_key(b"abc", 1, b"").starts_with(&short));
        assert!(element_key(b"user", 7, b"zz") < prefix_end(&element_prefix(b"user", 7)));
        assert_eq!(parse_element_key(b"\x00\x01\x00\x00\x00\x09ab"), None);
    }

    #[test]
    fn scores_sort_numerically() {
        let scores = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -1.0,
            -f64::MIN_POSITIVE,
            0.0,
            f64::MIN_POSITIVE,
            1.0,
            2.5,
            1e300,
            f64::INFINITY,
        ];
        for w in scores.windows(2) {
            assert!(
                encode_score(w[0]) < encode_score(w[1]),
                "{} < {}",
                w[0],
                w[1]
            );
        }
        for s in scores {
            assert_eq!(decode_score(&encode_score(s)), Some(s));
        }
        assert_eq!(encode_score(-0.0), encode_score(0.0));
    }

    #[test]
    fn collection_version_reads_the_metadata() {
        let mut v = vec![3u8];
        v.extend_from_slice(&0u64.to_be_bytes());
        v.extend_from_slice(&42u64.to_be_bytes());
        assert_eq!(collection_version(&v), Some(42));
        assert_eq!(collection_version(&[TYPE_STRING, 0, 0]), None);
        assert_eq!(collection_version(&[3, 0]), None);
    }

    #[test]
    fn expire_keys_sort_by_time() {
        assert!(expire_key(1, b"zzz") < expire_key(2, b"a"));
        assert_eq!(parse_expire_key(&expire_key(5, b"k")), Some((5, &b"k"[..])));
    }
}
