//! One clogged link: everything one store sends to another vanishes, the other
//! direction works.

use super::{Fault, Link, Nemesis};

pub(super) fn links(n: &Nemesis, fault: &Fault) -> Option<(Vec<Link>, String)> {
    let Fault::ClogLink { from, to } = fault else { return None };
    let links: Vec<Link> = n.nodes(&[*from]).into_iter().zip(n.nodes(&[*to])).collect();
    Some((links, format!("clog link store {from} -> store {to}")))
}
