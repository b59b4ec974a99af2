//! Byte encodings shared by every layer of the store.
//!
//! Everything simkv writes to an engine or sends over the wire goes through one of
//! these encoders, so the order of keys on disk is decided here and nowhere else:
//!
//! * [`bytes`]: the memcomparable encoding of user keys. Encoded keys compare in the
//!   same order as the raw keys, and no encoded key is a prefix of another, which is
//!   what lets us append a timestamp and still keep versions of one key together.
//! * [`keys`]: the physical key layout. Data keys are `z` + key; MVCC versions append
//!   `!ts` big-endian so that, for one key, newer versions sort first (as TiKV does,
//!   "big-endian, then invert the bytes by bit"). Raft engine keys live under the
//!   local prefix `0x01` and are grouped by region id.
//! * [`table`]: the table codec that maps rows and indexes onto keys: rows at
//!   `t{table}_r{pk}`, unique index entries at `t{table}_i{index}{value}` → pk,
//!   non-unique entries at `t{table}_i{index}{value}{pk}` → empty, with a seek-based
//!   index lookup.
//! * [`number`]: fixed-width big-endian integers whose byte order equals numeric order.
//!
//! Decoding never trusts its input: malformed bytes give a [`CodecError`] that says
//! what was wrong and at which offset, never a panic.
//!
//! Deliberately not implemented: TiDB's full datum encoding (decimals, collations,
//! varints), which the workloads do not need.

pub mod bytes;
pub mod keys;
pub mod number;
pub mod table;

use thiserror::Error;

/// Why a byte string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    #[error("input ended at byte {offset} while decoding {what} (needed {needed} more bytes)")]
    Truncated { what: &'static str, offset: usize, needed: usize },
    #[error("bad {what} at byte {offset}: {detail}")]
    Malformed { what: &'static str, offset: usize, detail: String },
    #[error("expected prefix {expected:?} for {what}, found {found:?}")]
    WrongPrefix { what: &'static str, expected: Vec<u8>, found: Vec<u8> },
    #[error("{what} has {extra} unexpected trailing bytes")]
    TrailingBytes { what: &'static str, extra: usize },
}

pub type Result<T> = std::result::Result<T, CodecError>;

/// Takes exactly `n` bytes from the front of `input`, or says how many were missing.
pub(crate) fn take<'a>(input: &'a [u8], n: usize, what: &'static str, offset: usize) -> Result<(&'a [u8], &'a [u8])> {
    if input.len() < n {
        return Err(CodecError::Truncated { what, offset: offset + input.len(), needed: n - input.len() });
    }
    Ok(input.split_at(n))
}

/// Renders bytes as lowercase hex, printable ASCII shown alongside: for snapshots
/// and error messages a person reads.
pub fn hex(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let text: String = bytes.iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '.' }).collect();
    format!("{hex} |{text}|")
}

#[cfg(test)]
pub(crate) fn hex_table(rows: &[(&str, Vec<u8>)]) -> String {
    rows.iter().map(|(name, bytes)| format!("{name:<36} {}\n", hex(bytes))).collect()
}
