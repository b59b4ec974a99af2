//! Partitions between stores: random halves, one store isolated (from stores and
//! clients), the current leader of a region isolated, an asymmetric (one-way)
//! partition, and a bridge (two sides that meet only through one store).

use super::{between, Fault, Link, Nemesis};

/// The links a partition fault cuts, and how to say what it did; `None` for
/// faults that are not partitions.
pub(super) fn links(n: &Nemesis, fault: &Fault) -> Option<(Vec<Link>, String)> {
    let all = n.store_ids();
    let others = |store: u64| all.iter().copied().filter(|&s| s != store).collect::<Vec<_>>();
    let isolate = |store: u64| {
        let mut links = between(&n.nodes(&[store]), &n.nodes(&others(store)));
        links.extend(between(&n.nodes(&[store]), &n.client_nodes()));
        links
    };
    Some(match fault {
        Fault::PartitionHalves { side } => {
            let rest: Vec<u64> = all.iter().copied().filter(|s| !side.contains(s)).collect();
            (between(&n.nodes(side), &n.nodes(&rest)), format!("partition {side:?} | {rest:?}"))
        }
        Fault::IsolateStore { store } => (isolate(*store), format!("isolate store {store}")),
        Fault::IsolateLeader { region_index } => {
            let region = &n.cluster.regions[*region_index as usize % n.cluster.regions.len()];
            match n.cluster.leader_of(region.id) {
                Some(leader) => (isolate(leader), format!("isolate store {leader}, leader of region {}", region.id)),
                None => (vec![], format!("isolate the leader of region {}: none known", region.id)),
            }
        }
        Fault::Asymmetric { from, to } => {
            // `from` can no longer send to any store; everyone still reaches it.
            let targets = n.nodes(&others(*from));
            let links = n.nodes(&[*from]).into_iter().flat_map(|a| targets.iter().map(move |&b| (a, b))).collect();
            (links, format!("one-way: store {from} cannot send (e.g. to store {to}), but receives"))
        }
        Fault::Bridge { left, bridge, right } => {
            (between(&n.nodes(left), &n.nodes(right)), format!("bridge: {left:?} and {right:?} meet only through store {bridge}"))
        }
        _ => return None,
    })
}
