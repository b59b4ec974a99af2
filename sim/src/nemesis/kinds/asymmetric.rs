//! A one-way partition: one group of stores cannot send to another, which
//! still reaches it.

use super::*;

/// The stores in `from` cannot send to those in `to`; `to` still reaches
/// `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Asymmetric {
    pub from: Vec<u64>,
    pub to: Vec<u64>,
}

impl Kind for Asymmetric {
    fn weight(weights: &Weights) -> u32 {
        weights.asymmetric
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        let all = d.shuffled(on.stores);
        let cut = (1 + d.below(on.stores - 1)) as usize;
        let (mut from, mut to) = (all[..cut].to_vec(), all[cut..].to_vec());
        from.sort();
        to.sort();
        Asymmetric { from, to }
    }

    fn stores(&self) -> Vec<u64> {
        [self.from.clone(), self.to.clone()].concat()
    }

    fn start(&self, n: &Nemesis, _: &mut FaultState) -> (Vec<Link>, String) {
        let targets = n.nodes(&self.to);
        let links = n.nodes(&self.from).into_iter().flat_map(|a| targets.iter().map(move |&b| (a, b))).collect();
        (links, format!("one-way: {:?} cannot send to {:?}, but hear from them", self.from, self.to))
    }
}
