//! Every key rockraft writes to RocksDB, in one place.
//!
//! All integers are big-endian so that RocksDB's byte order is numeric order: the entries of a
//! group's log are contiguous and sorted by index, and one range delete removes a suffix.
//!
//! Column families:
//! - `raft`: per-node identity and, per raft group, its log, hard state and apply state.
//! - `default`: user data (one key per user key; the value carries type and expiry).
//! - `expire`: an index of keys with a time to live, ordered by expiry time.

/// Column family of raft state.
pub const CF_RAFT: &str = "raft";
/// Column family of user data.
pub const CF_DATA: &str = "default";
/// Column family of the expiry index.
pub const CF_EXPIRE: &str = "expire";
/// Every column family, in creation order.
pub const ALL_CFS: [&str; 3] = [CF_DATA, CF_RAFT, CF_EXPIRE];

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

/// The log entry at `index` of group `group_id`.
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

/// Address of member `node_id` of group `group_id`, as recorded by the log.
pub fn node_addr_key(group_id: u64, node_id: u64) -> [u8; 18] {
    let mut k = [0u8; 18];
    k[..10].copy_from_slice(&group_key(group_id, NODE_ADDR_SUFFIX));
    k[10..].copy_from_slice(&node_id.to_be_bytes());
    k
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

/// Stages the removal of every user key and expiry entry (FLUSHALL-like, for a node that
/// leaves its data behind or installs a snapshot).
pub fn stage_clear_data(engine: &crate::Engine, wb: &mut rocksdb::WriteBatch) {
    wb.delete_range_cf(
        engine.cf(CF_DATA),
        slot_start(0),
        slot_start(crate::slot::SLOT_COUNT),
    );
    wb.delete_range_cf(engine.cf(CF_EXPIRE), &[0u8; 8][..], &[0xffu8; 9][..]);
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
    fn expire_keys_sort_by_time() {
        assert!(expire_key(1, b"zzz") < expire_key(2, b"a"));
        assert_eq!(parse_expire_key(&expire_key(5, b"k")), Some((5, &b"k"[..])));
    }
}
