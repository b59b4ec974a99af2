//! A kv engine's contents as a sorted map, for unit tests of pure code that
//! reads through a snapshot (apply, the MVCC commands): write batches go in
//! at once, without an engine or a runtime.

use super::{Cf, KvPair, Mutation, Result, Snapshot, WriteBatch};
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone)]
pub struct MemSnapshot(pub BTreeMap<(Cf, Vec<u8>), Vec<u8>>);

impl MemSnapshot {
    /// Applies `batch` as an engine would.
    pub fn write(&mut self, batch: &WriteBatch) {
        for m in batch.mutations() {
            match m {
                Mutation::Put { cf, key, value } => drop(self.0.insert((*cf, key.clone()), value.clone())),
                Mutation::Delete { cf, key } => drop(self.0.remove(&(*cf, key.clone()))),
                Mutation::DeleteRange { cf, start, end } => self.0.retain(|(c, k), _| !(c == cf && k >= start && k < end)),
            }
        }
    }
}

impl Snapshot for MemSnapshot {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(&(cf, key.to_vec())).cloned())
    }

    fn iter<'a>(&'a self, cf: Cf, start: &[u8], end: Option<&[u8]>, reverse: bool) -> Box<dyn Iterator<Item = Result<KvPair>> + 'a> {
        let end = end.map(|e| e.to_vec());
        let items = self.0.range((cf, start.to_vec())..).take_while(move |((c, k), _)| *c == cf && end.as_ref().is_none_or(|e| k < e));
        let items: Vec<_> = items.map(|((_, k), v)| Ok((k.clone(), v.clone()))).collect();
        if reverse {
            Box::new(items.into_iter().rev())
        } else {
            Box::new(items.into_iter())
        }
    }
}
