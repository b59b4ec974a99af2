//! Fixed-width integers whose big-endian bytes sort like the numbers themselves.

use super::{take, Result};

/// Appends `v` as 8 big-endian bytes: unsigned order equals byte order.
pub fn encode_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_be_bytes());
}

/// Appends `!v`, so that larger values sort first. Used for MVCC timestamps.
pub fn encode_u64_desc(buf: &mut Vec<u8>, v: u64) {
    encode_u64(buf, !v);
}

/// Appends `v` with its sign bit flipped: negative numbers sort before positive.
pub fn encode_i64(buf: &mut Vec<u8>, v: i64) {
    encode_u64(buf, (v as u64) ^ (1 << 63));
}

pub fn decode_u64<'a>(input: &'a [u8], what: &'static str) -> Result<(u64, &'a [u8])> {
    let (head, rest) = take(input, 8, what, 0)?;
    let mut raw = [0u8; 8];
    raw.copy_from_slice(head);
    Ok((u64::from_be_bytes(raw), rest))
}

pub fn decode_u64_desc<'a>(input: &'a [u8], what: &'static str) -> Result<(u64, &'a [u8])> {
    let (v, rest) = decode_u64(input, what)?;
    Ok((!v, rest))
}

pub fn decode_i64<'a>(input: &'a [u8], what: &'static str) -> Result<(i64, &'a [u8])> {
    let (v, rest) = decode_u64(input, what)?;
    Ok(((v ^ (1 << 63)) as i64, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn i64_order_and_round_trip(a: i64, b: i64) {
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            encode_i64(&mut ea, a);
            encode_i64(&mut eb, b);
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            prop_assert_eq!(decode_i64(&ea, "i64").unwrap(), (a, &[][..]));
        }

        #[test]
        fn u64_desc_reverses_order(a: u64, b: u64) {
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            encode_u64_desc(&mut ea, a);
            encode_u64_desc(&mut eb, b);
            prop_assert_eq!(a.cmp(&b), eb.cmp(&ea));
            prop_assert_eq!(decode_u64_desc(&ea, "ts").unwrap().0, a);
        }

        #[test]
        fn short_input_is_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..8)) {
            prop_assert!(decode_u64(&bytes, "u64").is_err());
        }
    }
}
