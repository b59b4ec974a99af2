//! The admin service of a store: membership changes, leader transfers and
//! splits asked for by an operator, a test, or the testbed's nemesis (PD's own
//! operators reach the store in region-heartbeat replies instead).

use super::errors::ServerError;
use crate::meta::{Peer, RegionEpoch, RegionId, StoreId};
use serde::{Deserialize, Serialize};

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
    SetProcessFaults(crate::transport::ProcessFaults),
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
    /// The data asked for, by CF in key order.
    Data(Vec<(crate::engine::Cf, crate::engine::KvPair)>),
}

pub type AdminResponse = Result<AdminReply, ServerError>;
