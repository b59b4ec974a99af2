//! Memcomparable encoding of arbitrary byte strings.
//!
//! The input is cut into groups of [`GROUP_SIZE`] bytes. Each group is written in
//! full (the last one padded with zeros) followed by a marker byte `0xFF - padding`.
//! A full group is marked `0xFF` and means "more follows"; any smaller marker ends
//! the key. Comparing two encodings byte by byte therefore compares the original
//! strings, and an encoding is never a prefix of a different encoding, so suffixes
//! such as timestamps can be appended without breaking the order.

use super::{CodecError, Result};

pub const GROUP_SIZE: usize = 8;
const MARKER: u8 = 0xFF;
const PAD: u8 = 0;

/// The encoded length of a key of `len` bytes.
pub fn encoded_len(len: usize) -> usize {
    (len / GROUP_SIZE + 1) * (GROUP_SIZE + 1)
}

/// Appends the memcomparable encoding of `key` to `buf`.
pub fn encode_bytes_into(buf: &mut Vec<u8>, key: &[u8]) {
    buf.reserve(encoded_len(key.len()));
    let mut chunks = key.chunks_exact(GROUP_SIZE);
    for group in &mut chunks {
        buf.extend_from_slice(group);
        buf.push(MARKER);
    }
    let tail = chunks.remainder();
    let padding = GROUP_SIZE - tail.len();
    buf.extend_from_slice(tail);
    buf.extend(std::iter::repeat_n(PAD, padding));
    buf.push(MARKER - padding as u8);
}

/// The memcomparable encoding of `key`.
pub fn encode_bytes(key: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_bytes_into(&mut buf, key);
    buf
}

/// Decodes one memcomparable key from the front of `input`; returns it and the rest.
pub fn decode_bytes(input: &[u8]) -> Result<(Vec<u8>, &[u8])> {
    let mut key = Vec::with_capacity(input.len() / (GROUP_SIZE + 1) * GROUP_SIZE);
    let mut offset = 0;
    loop {
        let group_end = offset + GROUP_SIZE + 1;
        if input.len() < group_end {
            return Err(CodecError::Truncated { what: "memcomparable bytes", offset: input.len(), needed: group_end - input.len() });
        }
        let group = &input[offset..offset + GROUP_SIZE];
        let marker = input[offset + GROUP_SIZE];
        if marker == MARKER {
            key.extend_from_slice(group);
            offset = group_end;
            continue;
        }
        let padding = (MARKER - marker) as usize;
        if padding > GROUP_SIZE {
            return Err(CodecError::Malformed {
                what: "memcomparable bytes",
                offset: offset + GROUP_SIZE,
                detail: format!("marker {marker:#04x} implies {padding} padding bytes"),
            });
        }
        let (data, pad) = group.split_at(GROUP_SIZE - padding);
        if let Some(i) = pad.iter().position(|&b| b != PAD) {
            return Err(CodecError::Malformed {
                what: "memcomparable bytes",
                offset: offset + GROUP_SIZE - padding + i,
                detail: "non-zero padding byte".to_string(),
            });
        }
        key.extend_from_slice(data);
        return Ok((key, &input[group_end..]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = Vec<u8>> {
        // Bias towards short keys and the bytes that matter at group boundaries.
        proptest::collection::vec(prop_oneof![Just(0u8), Just(0xFF), any::<u8>()], 0..40)
    }

    #[test]
    fn known_encodings() {
        assert_eq!(encode_bytes(b""), vec![0, 0, 0, 0, 0, 0, 0, 0, 0xF7]);
        assert_eq!(encode_bytes(b"a"), vec![b'a', 0, 0, 0, 0, 0, 0, 0, 0xF8]);
        assert_eq!(encode_bytes(b"12345678"), [&b"12345678"[..], &[0xFF], &[0; 8], &[0xF7]].concat());
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert!(matches!(decode_bytes(b""), Err(CodecError::Truncated { .. })));
        // Marker says 9 padding bytes: impossible.
        let bad_marker = [0u8, 0, 0, 0, 0, 0, 0, 0, 0xF6];
        assert!(matches!(decode_bytes(&bad_marker), Err(CodecError::Malformed { .. })));
        // Padding must be zero.
        let bad_pad = [b'a', 1, 0, 0, 0, 0, 0, 0, 0xF8];
        assert!(matches!(decode_bytes(&bad_pad), Err(CodecError::Malformed { offset: 1, .. })));
        // A full group with nothing after it is truncated.
        let mut cut = vec![b'a'; 9];
        cut[8] = 0xFF;
        assert!(matches!(decode_bytes(&cut), Err(CodecError::Truncated { .. })));
    }

    proptest! {
        #[test]
        fn round_trip(k in key(), suffix in proptest::collection::vec(any::<u8>(), 0..10)) {
            let mut enc = encode_bytes(&k);
            prop_assert_eq!(enc.len(), encoded_len(k.len()));
            enc.extend_from_slice(&suffix);
            let (dec, rest) = decode_bytes(&enc).unwrap();
            prop_assert_eq!(dec, k);
            prop_assert_eq!(rest, &suffix[..]);
        }

        #[test]
        fn order_is_preserved(a in key(), b in key()) {
            prop_assert_eq!(a.cmp(&b), encode_bytes(&a).cmp(&encode_bytes(&b)));
        }

        #[test]
        fn order_survives_suffixes(a in key(), b in key(), sa: u64, sb: u64) {
            // Appending anything keeps distinct keys in key order (prefix-freedom).
            prop_assume!(a != b);
            let mut ea = encode_bytes(&a);
            ea.extend_from_slice(&sa.to_be_bytes());
            let mut eb = encode_bytes(&b);
            eb.extend_from_slice(&sb.to_be_bytes());
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok((k, rest)) = decode_bytes(&bytes) {
                // Whatever decodes must re-encode to exactly the bytes consumed.
                let consumed = bytes.len() - rest.len();
                prop_assert_eq!(encode_bytes(&k), &bytes[..consumed]);
            }
        }
    }
}
