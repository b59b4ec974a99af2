//! The table codec: rows and secondary indexes as ordered keys.
//!
//! ```text
//! row                 t | table_id | _r | pk                 → row bytes
//! unique index        t | table_id | _i | index_id | value      → pk
//! non-unique index    t | table_id | _i | index_id | value | pk → (empty)
//! ```
//!
//! Ids and primary keys are sign-flipped big-endian i64, and index values carry a
//! type flag followed by an order-preserving encoding, so every key sorts in the
//! order of the tuple it encodes. A non-unique index appends the pk to keep two rows
//! with the same value apart; a lookup seeks to the first key ≥ the value prefix and
//! walks forward while the prefix matches, decoding each pk from the tail.

use super::bytes::{decode_bytes, encode_bytes_into};
use super::number::{decode_i64, encode_i64};
use super::{CodecError, Result};

pub const TABLE_PREFIX: u8 = b't';
pub const ROW_SEP: &[u8; 2] = b"_r";
pub const INDEX_SEP: &[u8; 2] = b"_i";
const BYTES_FLAG: u8 = 0x01;
const INT_FLAG: u8 = 0x03;

/// One indexed column value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum IndexValue {
    Bytes(Vec<u8>),
    Int(i64),
}

impl IndexValue {
    fn encode_into(&self, buf: &mut Vec<u8>) {
        match self {
            IndexValue::Bytes(b) => {
                buf.push(BYTES_FLAG);
                encode_bytes_into(buf, b);
            }
            IndexValue::Int(v) => {
                buf.push(INT_FLAG);
                encode_i64(buf, *v);
            }
        }
    }

    fn decode(input: &[u8]) -> Result<(IndexValue, &[u8])> {
        match input.split_first() {
            Some((&BYTES_FLAG, rest)) => {
                let (b, rest) = decode_bytes(rest)?;
                Ok((IndexValue::Bytes(b), rest))
            }
            Some((&INT_FLAG, rest)) => {
                let (v, rest) = decode_i64(rest, "index int value")?;
                Ok((IndexValue::Int(v), rest))
            }
            Some((flag, _)) => Err(CodecError::Malformed { what: "index value", offset: 0, detail: format!("unknown type flag {flag:#04x}") }),
            None => Err(CodecError::Truncated { what: "index value", offset: 0, needed: 1 }),
        }
    }
}

fn table_prefix(table_id: i64, sep: &[u8; 2]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(32);
    buf.push(TABLE_PREFIX);
    encode_i64(&mut buf, table_id);
    buf.extend_from_slice(sep);
    buf
}

/// `t{table}_r`: the prefix of every row of a table.
pub fn row_prefix(table_id: i64) -> Vec<u8> {
    table_prefix(table_id, ROW_SEP)
}

/// `t{table}_r{pk}`.
pub fn row_key(table_id: i64, pk: i64) -> Vec<u8> {
    let mut buf = row_prefix(table_id);
    encode_i64(&mut buf, pk);
    buf
}

/// Decodes (table_id, pk) from a row key.
pub fn decode_row_key(key: &[u8]) -> Result<(i64, i64)> {
    let (table_id, rest) = decode_table_head(key, ROW_SEP, "row key")?;
    let (pk, rest) = decode_i64(rest, "row pk")?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes { what: "row key", extra: rest.len() });
    }
    Ok((table_id, pk))
}

fn decode_table_head<'a>(key: &'a [u8], sep: &[u8; 2], what: &'static str) -> Result<(i64, &'a [u8])> {
    let rest = match key.split_first() {
        Some((&TABLE_PREFIX, rest)) => rest,
        _ => return Err(CodecError::WrongPrefix { what, expected: vec![TABLE_PREFIX], found: key.iter().take(1).copied().collect() }),
    };
    let (table_id, rest) = decode_i64(rest, "table id")?;
    if !rest.starts_with(sep) {
        return Err(CodecError::WrongPrefix { what, expected: sep.to_vec(), found: rest.iter().take(2).copied().collect() });
    }
    Ok((table_id, &rest[2..]))
}

/// `t{table}_i{index}{value}`: the unique index key, and the prefix of every
/// non-unique entry with this value.
pub fn index_prefix(table_id: i64, index_id: i64, value: &IndexValue) -> Vec<u8> {
    let mut buf = index_space_prefix(table_id, index_id);
    value.encode_into(&mut buf);
    buf
}

/// `t{table}_i{index}`: the prefix of every entry of one index.
pub fn index_space_prefix(table_id: i64, index_id: i64) -> Vec<u8> {
    let mut buf = table_prefix(table_id, INDEX_SEP);
    encode_i64(&mut buf, index_id);
    buf
}

/// Unique index key; its value is [`encode_pk`] of the row's pk.
pub fn unique_index_key(table_id: i64, index_id: i64, value: &IndexValue) -> Vec<u8> {
    index_prefix(table_id, index_id, value)
}

/// Non-unique index key `t{table}_i{index}{value}{pk}`; its value is empty.
pub fn non_unique_index_key(table_id: i64, index_id: i64, value: &IndexValue, pk: i64) -> Vec<u8> {
    let mut buf = index_prefix(table_id, index_id, value);
    encode_i64(&mut buf, pk);
    buf
}

/// The pk stored as the value of a unique index entry.
pub fn encode_pk(pk: i64) -> Vec<u8> {
    let mut buf = Vec::with_capacity(8);
    encode_i64(&mut buf, pk);
    buf
}

pub fn decode_pk(value: &[u8]) -> Result<i64> {
    let (pk, rest) = decode_i64(value, "pk")?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes { what: "pk", extra: rest.len() });
    }
    Ok(pk)
}

/// Decodes (table_id, index_id, value, pk) from a non-unique index key.
pub fn decode_non_unique_index_key(key: &[u8]) -> Result<(i64, i64, IndexValue, i64)> {
    let (table_id, rest) = decode_table_head(key, INDEX_SEP, "index key")?;
    let (index_id, rest) = decode_i64(rest, "index id")?;
    let (value, rest) = IndexValue::decode(rest)?;
    let (pk, rest) = decode_i64(rest, "index pk")?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes { what: "index key", extra: rest.len() });
    }
    Ok((table_id, index_id, value, pk))
}

/// Seek-based lookup of a non-unique index: `entries` must yield keys in order,
/// starting at the first key ≥ `index_prefix(table, index, value)` (what an engine
/// scan from that key gives). Walks forward while the prefix matches and returns
/// the pks found, stopping at the first key past the prefix. At most `limit` pks.
pub fn lookup_non_unique<K, I>(entries: I, table_id: i64, index_id: i64, value: &IndexValue, limit: usize) -> Result<Vec<i64>>
where
    K: AsRef<[u8]>,
    I: IntoIterator<Item = K>,
{
    let prefix = index_prefix(table_id, index_id, value);
    let mut pks = Vec::new();
    for key in entries {
        let key = key.as_ref();
        if pks.len() >= limit || !key.starts_with(&prefix) {
            break;
        }
        let (pk, rest) = decode_i64(&key[prefix.len()..], "index pk")?;
        if !rest.is_empty() {
            return Err(CodecError::TrailingBytes { what: "index key", extra: rest.len() });
        }
        pks.push(pk);
    }
    Ok(pks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn value() -> impl Strategy<Value = IndexValue> {
        prop_oneof![any::<i64>().prop_map(IndexValue::Int), proptest::collection::vec(any::<u8>(), 0..12).prop_map(IndexValue::Bytes),]
    }

    #[test]
    fn layout_is_pinned() {
        let layout = [
            ("row_key(1, 2)", row_key(1, 2)),
            ("unique_index_key(1, 3, \"bob\")", unique_index_key(1, 3, &IndexValue::Bytes(b"bob".to_vec()))),
            ("non_unique_index_key(1, 4, 30, 2)", non_unique_index_key(1, 4, &IndexValue::Int(30), 2)),
        ];
        insta::assert_snapshot!("table_layout", crate::codec::hex_table(&layout));
    }

    #[test]
    fn malformed_keys_are_errors() {
        assert!(decode_row_key(b"").is_err());
        assert!(decode_row_key(b"x").is_err());
        assert!(decode_row_key(&non_unique_index_key(1, 1, &IndexValue::Int(1), 1)).is_err());
        let mut bad_flag = index_prefix(1, 1, &IndexValue::Int(1));
        bad_flag[20] = 0x09;
        assert!(decode_non_unique_index_key(&bad_flag).is_err());
        assert!(decode_pk(&[1, 2]).is_err());
    }

    proptest! {
        #[test]
        fn row_keys_round_trip_and_order(t1: i64, p1: i64, t2: i64, p2: i64) {
            prop_assert_eq!(decode_row_key(&row_key(t1, p1)).unwrap(), (t1, p1));
            prop_assert_eq!((t1, p1).cmp(&(t2, p2)), row_key(t1, p1).cmp(&row_key(t2, p2)));
        }

        #[test]
        fn index_keys_round_trip_and_order(t: i64, i: i64, a in value(), b in value(), pa: i64, pb: i64) {
            let ka = non_unique_index_key(t, i, &a, pa);
            let kb = non_unique_index_key(t, i, &b, pb);
            prop_assert_eq!(decode_non_unique_index_key(&ka).unwrap(), (t, i, a.clone(), pa));
            prop_assert_eq!((&a, pa).cmp(&(&b, pb)), ka.cmp(&kb));
        }

        #[test]
        fn seek_lookup_finds_exactly_the_matching_pks(
            rows in proptest::collection::vec((0i64..4, any::<i64>()), 0..40),
            probe in 0i64..5,
        ) {
            // Index the ages of random rows, then look one age up through a seek.
            let keys: BTreeSet<Vec<u8>> = rows.iter()
                .map(|(age, pk)| non_unique_index_key(7, 1, &IndexValue::Int(*age), *pk))
                .chain([row_key(7, 0), non_unique_index_key(7, 2, &IndexValue::Int(probe), 0)])
                .collect();
            let value = IndexValue::Int(probe);
            let start = index_prefix(7, 1, &value);
            let found = lookup_non_unique(keys.range(start..), 7, 1, &value, usize::MAX).unwrap();
            let mut expected: Vec<i64> = rows.iter().filter(|(age, _)| *age == probe).map(|(_, pk)| *pk).collect();
            expected.sort();
            expected.dedup();
            prop_assert_eq!(found, expected);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            let _ = decode_row_key(&bytes);
            let _ = decode_non_unique_index_key(&bytes);
            let _ = decode_pk(&bytes);
        }
    }
}
