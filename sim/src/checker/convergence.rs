//! Convergence: once every fault has healed, the replicas of each region hold
//! identical data, in every data CF (default, lock, write). The runner polls this
//! until the liveness phase ends.

use simkv::engine::{Cf, KvPair};

/// A region's data on one replica, CF by CF.
pub type Data = Vec<(Cf, KvPair)>;

/// One region's data as each of its replicas holds it: (store, data, last
/// applied index reported by that store).
pub struct RegionCopies {
    pub region_id: u64,
    pub copies: Vec<(u64, Data, Option<u64>)>,
}

/// `None` when every region's copies agree; otherwise the first difference.
pub fn check(regions: &[RegionCopies]) -> Option<String> {
    for region in regions {
        let Some((first_store, first, first_applied)) = region.copies.first() else { continue };
        let Some((store, data, applied)) = region.copies[1..].iter().find(|(_, d, _)| d != first) else { continue };
        let at = first.iter().zip(data.iter()).position(|(a, b)| a != b).unwrap_or(first.len().min(data.len()));
        // Keys as the user wrote them: without the engine's data prefix and the
        // raw mode prefix; the CF named unless it is the default one.
        let show = |d: &Data| {
            d.get(at)
                .map(|(cf, (k, v))| {
                    let encoded = simkv::codec::keys::origin_key(k).unwrap_or(k);
                    let user = simkv::codec::keys::decode_raw_key(encoded).unwrap_or(encoded);
                    let cf = if *cf == Cf::Default { String::new() } else { format!("[{}] ", cf.name()) };
                    format!("{cf}{} = {}", user.escape_ascii(), v.escape_ascii())
                })
                .unwrap_or_else(|| "(end)".into())
        };
        return Some(format!(
            "region {} differs between store {first_store} ({} keys, last applied index {:?}) and store {store} ({} keys, last applied index {:?}); first difference: store {first_store} has {}, store {store} has {}",
            region.region_id,
            first.len(),
            first_applied,
            data.len(),
            applied,
            show(first),
            show(data),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lagging_replica_is_named() {
        let pair = |k: &str, v: &str| (Cf::Default, (simkv::codec::keys::data_key(&simkv::codec::keys::raw_key(k.as_bytes())), v.as_bytes().to_vec()));
        let same = RegionCopies { region_id: 1, copies: vec![(1, vec![pair("a", "1")], Some(5)), (2, vec![pair("a", "1")], Some(5))] };
        assert_eq!(check(&[same]), None);
        let lagging = RegionCopies { region_id: 1, copies: vec![(1, vec![pair("a", "2")], Some(9)), (3, vec![pair("a", "1")], Some(5))] };
        assert_eq!(
            check(&[lagging]).unwrap(),
            "region 1 differs between store 1 (1 keys, last applied index Some(9)) and store 3 (1 keys, last applied index Some(5)); first difference: store 1 has a = 2, store 3 has a = 1"
        );
        // A lock left on one replica only: the other CFs count too.
        let lock = (Cf::Lock, (simkv::codec::keys::mvcc_key_prefix(b"a"), b"lock".to_vec()));
        let stray = RegionCopies { region_id: 2, copies: vec![(1, vec![pair("a", "1")], Some(5)), (2, vec![pair("a", "1"), lock], Some(5))] };
        let text = check(&[stray]).unwrap();
        assert!(text.contains("store 1 has (end), store 2 has [lock] "), "{text}");
    }
}
