//! Whether a region should split, and where: its size and key count, and the
//! key in the middle of it.

use crate::codec::keys;
use crate::engine::{Cf, Snapshot};
use crate::meta::Region;

/// The bytes `region` holds in the default and write CFs, its keys (raw
/// keys, and transactional keys counted once whatever their versions), and
/// its middle key, if it has two keys or more: an encoded key strictly inside
/// the region and never inside one key's versions (a transactional key is
/// cut before its timestamp), so a split keeps every version of a key in one
/// region.
pub fn measure<S: Snapshot>(snap: &S, region: &Region) -> (u64, u64, Option<Vec<u8>>) {
    let (start, end) = keys::region_data_range(&region.start_key, &region.end_key);
    let (mut seen, mut bytes) = (std::collections::BTreeSet::new(), 0u64);
    for cf in [Cf::Default, Cf::Write] {
        for pair in snap.iter(cf, &start, Some(&end), false) {
            let (k, v) = pair.expect("split check scan");
            bytes += (k.len() + v.len()) as u64;
            let key = keys::origin_key(&k).expect("data key");
            let key = match key.first() {
                // A version: the key without its 8-byte timestamp.
                Some(&keys::TXN_PREFIX) if key.len() > 8 => &key[..key.len() - 8],
                _ => key,
            };
            seen.insert(key.to_vec());
        }
    }
    let middle =
        (seen.len() >= 2).then(|| seen.iter().nth(seen.len() / 2).cloned().expect("in range")).filter(|m| region.contains(m) && *m != region.start_key);
    (bytes, seen.len() as u64, middle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, SimEngine, WriteBatch};
    use crate::meta::RegionEpoch;

    #[madsim::test]
    async fn the_middle_key_is_inside_the_region() {
        let engine = SimEngine::in_memory("kv");
        let mut batch = WriteBatch::new();
        for k in ["a", "b", "c", "d", "x"] {
            batch.put(Cf::Default, keys::data_key(&keys::raw_key(k.as_bytes())), b"v".to_vec());
        }
        engine.write(&batch, true).await.unwrap();
        let region = Region { id: 1, start_key: keys::raw_key(b"a"), end_key: keys::raw_key(b"e"), epoch: RegionEpoch::new(1, 1), peers: vec![] };
        let (bytes, count, middle) = measure(&engine.snapshot(), &region);
        assert_eq!(count, 4, "x is another region's");
        assert_eq!(bytes, 4 * 4);
        assert_eq!(middle, Some(keys::raw_key(b"c")));
        let one = Region { start_key: keys::raw_key(b"d"), ..region };
        assert_eq!(measure(&engine.snapshot(), &one).2, None, "one key: nowhere to split");
    }

    #[madsim::test]
    async fn transactional_keys_split_between_keys_never_between_versions() {
        let engine = SimEngine::in_memory("kv");
        let mut batch = WriteBatch::new();
        for k in ["a", "b", "c"] {
            for ts in [10, 20, 30] {
                batch.put(Cf::Write, keys::mvcc_key(k.as_bytes(), ts), b"w".to_vec());
            }
        }
        batch.put(Cf::Default, keys::mvcc_key(b"b", 5), vec![1u8; 300]);
        engine.write(&batch, true).await.unwrap();
        let region = Region { id: 1, start_key: vec![], end_key: vec![], epoch: RegionEpoch::new(1, 1), peers: vec![] };
        let (_, count, middle) = measure(&engine.snapshot(), &region);
        assert_eq!(count, 3, "three keys, however many versions");
        assert_eq!(middle, Some(keys::txn_key(b"b")), "cut before b's versions");
    }
}
