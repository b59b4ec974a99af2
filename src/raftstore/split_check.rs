//! Whether a region should split, and where: its size and key count, and the
//! key in the middle of it.

use crate::codec::keys;
use crate::engine::{Cf, Snapshot};
use crate::meta::Region;

/// The bytes and keys `region` holds in the default CF, and its middle key
/// (an encoded key strictly inside the region), if it has two keys or more.
pub fn measure<S: Snapshot>(snap: &S, region: &Region) -> (u64, u64, Option<Vec<u8>>) {
    let (start, end) = keys::region_data_range(&region.start_key, &region.end_key);
    let (mut seen, mut bytes) = (Vec::new(), 0u64);
    for pair in snap.iter(Cf::Default, &start, Some(&end), false) {
        let (k, v) = pair.expect("split check scan");
        bytes += (k.len() + v.len()) as u64;
        seen.push(k);
    }
    let middle =
        (seen.len() >= 2).then(|| keys::origin_key(&seen[seen.len() / 2]).expect("data key").to_vec()).filter(|m| region.contains(m) && *m != region.start_key);
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
}
