//! The key space and the physical key layout, following TiKV (API V2).
//!
//! **One key space.** Every key a region, a client or an engine talks about is an
//! *encoded key*: a mode prefix, then the key in that mode's encoding. Raw and
//! transactional data never share keys:
//!
//! ```text
//! raw key                 r | user key                    (bytes as given)
//! transactional key       x | memcomparable(user key)
//! ```
//!
//! Region bounds are encoded keys (empty = unbounded), so one order holds for
//! routing, splitting and storage, and [`region_data_range`] is the one place that
//! turns a region into the engine range its data occupies. A version key (an
//! encoded transactional key with `!ts` appended) sorts inside every region that
//! contains its key: memcomparable encodings are prefix-free, so appending the
//! timestamp never carries a key across a bound that is itself an encoded key.
//!
//! ```text
//! data (kv engine, every data CF)   z | encoded key
//! MVCC version (default, write CF)  z | x | memcomparable(key) | !ts (8 bytes, big-endian)
//! MVCC lock (lock CF)               z | x | memcomparable(key)
//! raft log entry (raft engine)      0x01 0x02 | region_id BE8 | 0x01 | index BE8
//! raft hard state (raft engine)     0x01 0x02 | region_id BE8 | 0x02
//! apply state (kv engine)           0x01 0x02 | region_id BE8 | 0x03
//! region state (kv engine)          0x01 0x03 | region_id BE8 | 0x01
//! ```
//!
//! Local keys (prefix `0x01`) sort before every data key (prefix `z`), so a scan of
//! the data range never meets bookkeeping. Region ids and log indexes are big-endian
//! so one region's entries are contiguous and in index order.

use super::bytes::{decode_bytes, encode_bytes_into};
use super::number::{decode_u64, decode_u64_desc, encode_u64, encode_u64_desc};
use super::{CodecError, Result};

pub const DATA_PREFIX: u8 = b'z';
/// The mode prefix of raw keys.
pub const RAW_PREFIX: u8 = b'r';
/// The mode prefix of transactional keys.
pub const TXN_PREFIX: u8 = b'x';
/// The raw key space, `[RAW_MIN_KEY, RAW_MAX_KEY)`.
pub const RAW_MIN_KEY: &[u8] = &[RAW_PREFIX];
pub const RAW_MAX_KEY: &[u8] = &[RAW_PREFIX + 1];
pub const LOCAL_PREFIX: u8 = 0x01;
pub const REGION_RAFT_PREFIX: u8 = 0x02;
pub const REGION_META_PREFIX: u8 = 0x03;
pub const RAFT_LOG_SUFFIX: u8 = 0x01;
pub const RAFT_STATE_SUFFIX: u8 = 0x02;
pub const APPLY_STATE_SUFFIX: u8 = 0x03;
pub const REGION_STATE_SUFFIX: u8 = 0x01;
pub const SNAPSHOT_SUFFIX: u8 = 0x04;

/// The smallest data key and the bound just past the largest.
pub const DATA_MIN_KEY: &[u8] = &[DATA_PREFIX];
pub const DATA_MAX_KEY: &[u8] = &[DATA_PREFIX + 1];

/// `r` + user key: the encoded form of a raw key.
pub fn raw_key(user_key: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(user_key.len() + 1);
    buf.push(RAW_PREFIX);
    buf.extend_from_slice(user_key);
    buf
}

/// The user key of an encoded raw key.
pub fn decode_raw_key(key: &[u8]) -> Result<&[u8]> {
    match key.split_first() {
        Some((&RAW_PREFIX, rest)) => Ok(rest),
        _ => Err(CodecError::WrongPrefix { what: "raw key", expected: vec![RAW_PREFIX], found: key.iter().take(1).copied().collect() }),
    }
}

/// The encoded bound of a raw range whose user-level end is `end` (empty = the
/// end of the raw key space).
pub fn raw_end_key(end: &[u8]) -> Vec<u8> {
    if end.is_empty() {
        RAW_MAX_KEY.to_vec()
    } else {
        raw_key(end)
    }
}

/// `x` + memcomparable(key): the encoded form of a transactional key.
pub fn txn_key(user_key: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(super::bytes::encoded_len(user_key.len()) + 1);
    buf.push(TXN_PREFIX);
    encode_bytes_into(&mut buf, user_key);
    buf
}

/// The engine range `[start, end)` holding a region's data in every data CF, for
/// region bounds `start_key` and `end_key` (encoded keys; empty end = unbounded).
pub fn region_data_range(start_key: &[u8], end_key: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (data_key(start_key), data_end_key(end_key))
}

/// `z` + encoded key: where a key lives in the kv engine.
pub fn data_key(key: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(key.len() + 1);
    buf.push(DATA_PREFIX);
    buf.extend_from_slice(key);
    buf
}

/// The upper bound of a data range whose user-level end is `end` (empty = unbounded).
pub fn data_end_key(end: &[u8]) -> Vec<u8> {
    if end.is_empty() {
        DATA_MAX_KEY.to_vec()
    } else {
        data_key(end)
    }
}

/// Strips the `z` prefix.
pub fn origin_key(data_key: &[u8]) -> Result<&[u8]> {
    match data_key.split_first() {
        Some((&DATA_PREFIX, rest)) => Ok(rest),
        _ => Err(CodecError::WrongPrefix { what: "data key", expected: vec![DATA_PREFIX], found: data_key.iter().take(1).copied().collect() }),
    }
}

/// `z` + `x` + memcomparable(key): the lock CF key, and the common prefix of all versions.
pub fn mvcc_key_prefix(key: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(super::bytes::encoded_len(key.len()) + 10);
    buf.push(DATA_PREFIX);
    buf.push(TXN_PREFIX);
    encode_bytes_into(&mut buf, key);
    buf
}

/// `z` + `x` + memcomparable(key) + !ts: one version of a key; newer versions sort first.
pub fn mvcc_key(key: &[u8], ts: u64) -> Vec<u8> {
    let mut buf = mvcc_key_prefix(key);
    encode_u64_desc(&mut buf, ts);
    buf
}

/// Splits a versioned key into (user key, ts).
pub fn decode_mvcc_key(versioned: &[u8]) -> Result<(Vec<u8>, u64)> {
    let encoded = txn_body(origin_key(versioned)?)?;
    let (key, rest) = decode_bytes(encoded)?;
    let (ts, rest) = decode_u64_desc(rest, "mvcc timestamp")?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes { what: "mvcc key", extra: rest.len() });
    }
    Ok((key, ts))
}

/// Decodes the user key of a lock CF key (`z` + memcomparable(key)).
pub fn decode_lock_key(lock_key: &[u8]) -> Result<Vec<u8>> {
    let (key, rest) = decode_bytes(txn_body(origin_key(lock_key)?)?)?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes { what: "lock key", extra: rest.len() });
    }
    Ok(key)
}

fn txn_body(encoded: &[u8]) -> Result<&[u8]> {
    match encoded.split_first() {
        Some((&TXN_PREFIX, rest)) => Ok(rest),
        _ => Err(CodecError::WrongPrefix { what: "transactional key", expected: vec![TXN_PREFIX], found: encoded.iter().take(1).copied().collect() }),
    }
}

/// Where a store keeps the id PD gave it (local, outside every region).
pub const STORE_IDENT_KEY: &[u8] = &[LOCAL_PREFIX, 0x01];

fn region_key(prefix: u8, region_id: u64, suffix: u8) -> Vec<u8> {
    let mut buf = Vec::with_capacity(19);
    buf.extend_from_slice(&[LOCAL_PREFIX, prefix]);
    encode_u64(&mut buf, region_id);
    buf.push(suffix);
    buf
}

/// Raft log entry `index` of `region_id`.
pub fn raft_log_key(region_id: u64, index: u64) -> Vec<u8> {
    let mut buf = region_key(REGION_RAFT_PREFIX, region_id, RAFT_LOG_SUFFIX);
    encode_u64(&mut buf, index);
    buf
}

/// The first key after every log entry of `region_id`: the end of its log range.
pub fn raft_log_end_key(region_id: u64) -> Vec<u8> {
    region_key(REGION_RAFT_PREFIX, region_id, RAFT_LOG_SUFFIX + 1)
}

/// Decodes (region_id, index) from a raft log key.
pub fn decode_raft_log_key(key: &[u8]) -> Result<(u64, u64)> {
    let expected = [LOCAL_PREFIX, REGION_RAFT_PREFIX];
    if key.len() < 2 || key[..2] != expected {
        return Err(CodecError::WrongPrefix { what: "raft log key", expected: expected.to_vec(), found: key.iter().take(2).copied().collect() });
    }
    let (region_id, rest) = decode_u64(&key[2..], "region id")?;
    match rest.split_first() {
        Some((&RAFT_LOG_SUFFIX, rest)) => {
            let (index, rest) = decode_u64(rest, "log index")?;
            if !rest.is_empty() {
                return Err(CodecError::TrailingBytes { what: "raft log key", extra: rest.len() });
            }
            Ok((region_id, index))
        }
        other => Err(CodecError::Malformed { what: "raft log key", offset: 10, detail: format!("suffix {:?} is not the log suffix", other.map(|(b, _)| *b)) }),
    }
}

/// Raft hard state and last index of `region_id` (raft engine).
pub fn raft_state_key(region_id: u64) -> Vec<u8> {
    region_key(REGION_RAFT_PREFIX, region_id, RAFT_STATE_SUFFIX)
}

/// Applied index and truncated state of `region_id` (kv engine).
pub fn apply_state_key(region_id: u64) -> Vec<u8> {
    region_key(REGION_RAFT_PREFIX, region_id, APPLY_STATE_SUFFIX)
}

/// A received snapshot whose data is not yet fully applied (raft engine): kept so a
/// crash in the middle of applying can finish the job on restart.
pub fn pending_snapshot_key(region_id: u64) -> Vec<u8> {
    region_key(REGION_RAFT_PREFIX, region_id, SNAPSHOT_SUFFIX)
}

/// The region's descriptor and whether the peer is live or tombstoned (kv engine).
pub fn region_state_key(region_id: u64) -> Vec<u8> {
    region_key(REGION_META_PREFIX, region_id, REGION_STATE_SUFFIX)
}

/// The range holding every region state key: scanned on restart to find peers.
pub fn region_state_range() -> (Vec<u8>, Vec<u8>) {
    (vec![LOCAL_PREFIX, REGION_META_PREFIX], vec![LOCAL_PREFIX, REGION_META_PREFIX + 1])
}

/// Decodes the region id from a region state key.
pub fn decode_region_state_key(key: &[u8]) -> Result<u64> {
    let expected = [LOCAL_PREFIX, REGION_META_PREFIX];
    if key.len() < 2 || key[..2] != expected {
        return Err(CodecError::WrongPrefix { what: "region state key", expected: expected.to_vec(), found: key.iter().take(2).copied().collect() });
    }
    let (region_id, rest) = decode_u64(&key[2..], "region id")?;
    if rest != [REGION_STATE_SUFFIX] {
        return Err(CodecError::Malformed { what: "region state key", offset: 10, detail: format!("expected suffix [{REGION_STATE_SUFFIX}], found {rest:?}") });
    }
    Ok(region_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_is_pinned() {
        let layout = [
            ("data_key(raw_key(k))", data_key(&raw_key(b"k"))),
            ("txn_key(k)", txn_key(b"k")),
            ("mvcc_key(k, 5)", mvcc_key(b"k", 5)),
            ("raft_log_key(7, 9)", raft_log_key(7, 9)),
            ("raft_state_key(7)", raft_state_key(7)),
            ("apply_state_key(7)", apply_state_key(7)),
            ("region_state_key(7)", region_state_key(7)),
        ];
        insta::assert_snapshot!("key_layout", crate::codec::hex_table(&layout));
    }

    #[test]
    fn local_keys_sort_before_data() {
        assert!(region_state_key(u64::MAX) < data_key(b""));
        assert!(raft_log_key(u64::MAX, u64::MAX) < data_key(b""));
        assert!(raft_log_key(3, u64::MAX) < raft_log_end_key(3));
        assert!(raft_log_end_key(3) <= raft_state_key(3));
    }

    #[test]
    fn malformed_keys_are_errors() {
        assert!(decode_mvcc_key(b"").is_err());
        assert!(decode_mvcc_key(b"k").is_err());
        assert!(decode_mvcc_key(&mvcc_key_prefix(b"k")).is_err());
        assert!(decode_raft_log_key(&raft_state_key(1)).is_err());
        assert!(decode_raft_log_key(&[1, 2, 0]).is_err());
        assert!(decode_region_state_key(&apply_state_key(1)).is_err());
        let mut long = mvcc_key(b"k", 1);
        long.push(0);
        assert!(matches!(decode_mvcc_key(&long), Err(CodecError::TrailingBytes { .. })));
    }

    proptest! {
        #[test]
        fn newer_versions_sort_first(k in proptest::collection::vec(any::<u8>(), 0..20), a: u64, b: u64) {
            prop_assert_eq!(a.cmp(&b), mvcc_key(&k, b).cmp(&mvcc_key(&k, a)));
            prop_assert_eq!(decode_mvcc_key(&mvcc_key(&k, a)).unwrap(), (k.clone(), a));
            prop_assert!(mvcc_key(&k, a).starts_with(&mvcc_key_prefix(&k)));
        }

        #[test]
        fn versions_group_by_key(
            a in proptest::collection::vec(any::<u8>(), 0..20),
            b in proptest::collection::vec(any::<u8>(), 0..20),
            ta: u64, tb: u64,
        ) {
            prop_assume!(a != b);
            prop_assert_eq!(a.cmp(&b), mvcc_key(&a, ta).cmp(&mvcc_key(&b, tb)));
            prop_assert_eq!(a.cmp(&b), mvcc_key_prefix(&a).cmp(&mvcc_key_prefix(&b)));
        }

        #[test]
        fn raft_log_keys_round_trip_and_order(r1: u64, i1: u64, r2: u64, i2: u64) {
            prop_assert_eq!(decode_raft_log_key(&raft_log_key(r1, i1)).unwrap(), (r1, i1));
            prop_assert_eq!((r1, i1).cmp(&(r2, i2)), raft_log_key(r1, i1).cmp(&raft_log_key(r2, i2)));
            prop_assert_eq!(decode_region_state_key(&region_state_key(r1)).unwrap(), r1);
        }

        /// Every key a region owns, in any CF, lies inside its data range, and no
        /// key outside the region does: for raw keys, transactional keys and
        /// their versions, with random bounds in both modes.
        #[test]
        fn a_region_owns_exactly_its_data_range(
            bounds in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..6), 2),
            txn_bounds: bool, unbounded_start: bool, unbounded_end: bool,
            k in proptest::collection::vec(any::<u8>(), 0..8),
            ts: u64,
        ) {
            let encode = |b: &[u8]| if txn_bounds { txn_key(b) } else { raw_key(b) };
            let (mut lo, mut hi) = (encode(&bounds[0]), encode(&bounds[1]));
            if lo > hi { std::mem::swap(&mut lo, &mut hi); }
            if unbounded_start { lo.clear(); }
            if unbounded_end { hi.clear(); }
            let owns = |encoded: &[u8]| encoded >= lo.as_slice() && (hi.is_empty() || encoded < hi.as_slice());
            let (start, end) = region_data_range(&lo, &hi);
            let inside = |engine_key: &[u8]| engine_key >= start.as_slice() && engine_key < end.as_slice();
            // Raw: the data key of a raw key.
            prop_assert_eq!(owns(&raw_key(&k)), inside(&data_key(&raw_key(&k))));
            // Transactional: the lock key and every version of a key go where the key goes.
            let key = txn_key(&k);
            prop_assert_eq!(owns(&key), inside(&mvcc_key_prefix(&k)));
            prop_assert_eq!(owns(&key), inside(&mvcc_key(&k, ts)));
            prop_assert_eq!(owns(&key), inside(&mvcc_key(&k, 0)));
            prop_assert_eq!(owns(&key), inside(&mvcc_key(&k, u64::MAX)));
        }

        #[test]
        fn raw_keys_round_trip_and_keep_order(a in proptest::collection::vec(any::<u8>(), 0..10), b in proptest::collection::vec(any::<u8>(), 0..10)) {
            let encoded = raw_key(&a);
            prop_assert_eq!(decode_raw_key(&encoded).unwrap(), a.as_slice());
            prop_assert_eq!(a.cmp(&b), raw_key(&a).cmp(&raw_key(&b)));
            prop_assert!(raw_key(&a).as_slice() < RAW_MAX_KEY && raw_key(&a).as_slice() >= RAW_MIN_KEY);
            prop_assert!(raw_key(&a) < txn_key(&b), "modes never interleave");
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode_mvcc_key(&bytes);
            let _ = decode_lock_key(&bytes);
            let _ = decode_raft_log_key(&bytes);
            let _ = decode_region_state_key(&bytes);
        }
    }
}
