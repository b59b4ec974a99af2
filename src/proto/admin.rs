//! The admin service of a store: membership changes, leader transfers and
//! splits asked for by an operator, a test, or the testbed's nemesis (PD's own
//! operators reach the store in region-heartbeat replies instead).

use super::errors::ServerError;
use crate::meta::{Peer, RegionEpoch, RegionId, StoreId};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// What a membership change does to one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ChangeKind {
    /// Adds the peer as a voter, or promotes it from learner.
    AddVoter,
    /// Adds the peer as a learner, or demotes it from voter.
    AddLearner,
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerChange {
    pub kind: ChangeKind,
    pub peer: Peer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// Changes the region's membership: one change is simple, several enter
    /// joint consensus (left at once by the leader). Answered once applied.
    ChangePeer { region_id: RegionId, epoch: RegionEpoch, changes: Vec<PeerChange> },
    /// Hands the region's leadership to its peer on `to_store`. Answered when
    /// the transfer started; whether it succeeded shows in routing.
    TransferLeader { region_id: RegionId, to_store: StoreId },
    /// Splits the region at `split_key` (ids from PD). Answered when asked.
    Split { region_id: RegionId, split_key: Vec<u8> },
    /// Replaces the faults the process's transport injects (a real process
    /// only; the real-mode runner's partitions, loss and delay). Answered
    /// once in force. Served by PD too.
    SetProcessFaults(ProcessFaults),
    /// From now on the process's clock runs at `rate` local seconds per
    /// second (a real process only; clock drift). Served by PD too.
    SetClockRate { rate: f64 },
    /// What the store's kv engine holds now for a region's key range
    /// (`start_key..end_key`, as the region names them; empty end: the
    /// end of the key space), in every data CF: how the testbed compares
    /// replicas after healing. Answered with [`AdminReply::Data`].
    RegionData { start_key: Vec<u8>, end_key: Vec<u8> },
}

impl AdminRequest {
    /// The region the request is about; `None` for one about the whole process.
    pub fn region_id(&self) -> Option<RegionId> {
        match self {
            AdminRequest::ChangePeer { region_id, .. } | AdminRequest::TransferLeader { region_id, .. } | AdminRequest::Split { region_id, .. } => {
                Some(*region_id)
            }
            AdminRequest::SetProcessFaults(_) | AdminRequest::SetClockRate { .. } | AdminRequest::RegionData { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminReply {
    /// The change was applied.
    Applied,
    /// The request was handed to the region; its effect comes later, if at all.
    Started,
    /// The data asked for, by CF (named) in key order: `(cf, key, value)`.
    Data(Vec<(String, Vec<u8>, Vec<u8>)>),
}

pub type AdminResponse = Result<AdminReply, ServerError>;

/// Faults one kind of traffic suffers on its way out of a node: in
/// simulation set by the testbed on every node at once (`transport::NetFaults`), in a
/// real process per process ([`ProcessFaults`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkFaults {
    /// Probability that a frame is lost (for raft traffic: each message of a
    /// batch, see `transport::Transport::send`).
    pub loss: f64,
    /// Extra delay drawn uniformly from this range; frames delayed differently
    /// overtake each other (reordering).
    pub delay_ms: (u64, u64),
    /// Probability that a frame (for raft traffic: each message of a batch)
    /// is delivered twice: the copy with a delay of its own, up to
    /// `transport::DUPLICATE_LATE_MS` later than any other (a late duplicate).
    pub duplicate: f64,
}

/// The faults a real process's transport injects, set by the testbed (the
/// real-mode runner) over the admin RPC: the real network's counterpart of
/// the simulator's clogged links and nodes and of `transport::NetFaults`. As in
/// simulation, a node is an IP address (the runner gives every process and
/// client one of its own on the loopback network, `127.0.0.0/8`), so a cut
/// names IPs: every socket of a node (a store's listener, its PD client) is
/// cut at once. A cut link is cut at one end: what this process sends to an
/// IP in `send_cut`, and what it receives from one in `recv_cut` (a frame's
/// sender is the listening address it announced), is dropped. So the runner
/// cuts a link between two of its processes at either end, and one between
/// a process and a client (which it cannot reach) at the process's end. The
/// simulated network ignores these (it has its own).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessFaults {
    /// Frames to these nodes are dropped.
    pub send_cut: Vec<IpAddr>,
    /// Frames from these nodes are dropped.
    pub recv_cut: Vec<IpAddr>,
    /// Every frame in and out is dropped, except to and from `keep`: an
    /// isolated process.
    pub isolated: bool,
    /// Nodes never cut: the runner's own control connection.
    pub keep: Vec<IpAddr>,
    /// Loss, delay and duplication of raft traffic (raft messages, snapshots).
    pub raft: LinkFaults,
    /// Loss, delay and duplication of requests and responses.
    pub client: LinkFaults,
}

impl ProcessFaults {
    /// Whether frames to `addr` are dropped.
    pub fn cuts_send(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip();
        !self.keep.contains(&ip) && (self.isolated || self.send_cut.contains(&ip))
    }

    /// Whether frames from `addr` are dropped.
    pub fn cuts_recv(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip();
        !self.keep.contains(&ip) && (self.isolated || self.recv_cut.contains(&ip))
    }
}
