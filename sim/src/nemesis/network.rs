//! Packet loss, extra delay and reordering in our transport, for the whole
//! safety phase, drawn separately for raft traffic and client traffic (so that a
//! scenario can torture replication while clients see a clean network, or the
//! other way round). Random per-frame delays reorder frames.

use super::Swarm;
use crate::cluster::Cluster;
use simkv::transport::{LinkFaults, Traffic};

pub fn start(cluster: &Cluster, swarm: &Swarm) -> String {
    cluster.net_faults.set(Traffic::Raft, LinkFaults { loss: swarm.raft_loss, delay_ms: (0, swarm.raft_delay_ms), duplicate: swarm.raft_duplicate });
    cluster.net_faults.set(Traffic::Client, LinkFaults { loss: swarm.client_loss, delay_ms: (0, swarm.client_delay_ms), duplicate: 0.0 });
    let duplicate = if swarm.raft_duplicate > 0.0 { format!(" duplicate {}", swarm.raft_duplicate) } else { String::new() };
    format!(
        "transport: raft loss {} delay 0..{}ms{duplicate}, client loss {} delay 0..{}ms",
        swarm.raft_loss, swarm.raft_delay_ms, swarm.client_loss, swarm.client_delay_ms
    )
}

pub fn heal(cluster: &Cluster) {
    cluster.net_faults.set(Traffic::Raft, LinkFaults::default());
    cluster.net_faults.set(Traffic::Client, LinkFaults::default());
}
