//! One clogged link: everything one store sends to another vanishes; the
//! other direction works.

use super::*;

/// What `from` sends to `to` is lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClogLink {
    pub from: u64,
    pub to: u64,
}

impl Kind for ClogLink {
    fn weight(weights: &Weights) -> u32 {
        weights.clog_link
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        let (from, to) = d.two_stores(on.stores);
        ClogLink { from, to }
    }

    fn stores(&self) -> Vec<u64> {
        vec![self.from, self.to]
    }

    fn start(&self, n: &Nemesis, _: &mut FaultState) -> (Vec<Link>, String) {
        let links: Vec<Link> = n.nodes(&[self.from]).into_iter().zip(n.nodes(&[self.to])).collect();
        (links, format!("clog link store {} -> store {}", self.from, self.to))
    }
}
