//! The placement driver's service: timestamps, ids, cluster bootstrap, store and
//! region heartbeats, routing lookups, and split bookkeeping.

use crate::meta::{Peer, PeerId, Region, RegionEpoch, RegionId, StoreId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use thiserror::Error;

/// What a store reports about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub region_count: u64,
    pub applying_snapshots: u64,
    pub sending_snapshots: u64,
}

/// What a region's leader reports about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionHeartbeat {
    pub region: Region,
    pub leader: Peer,
    /// Peers that lag far behind the leader (or wait for a snapshot).
    pub pending_peers: Vec<Peer>,
    pub approximate_size: u64,
    pub approximate_keys: u64,
    pub term: u64,
}

/// Ids for the regions one split creates: one region id and one peer id per
/// replica (in the parent's peer order) for each new region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitIds {
    pub new_region_id: RegionId,
    pub new_peer_ids: Vec<PeerId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PdRequest {
    /// `count` timestamps; the answer is the last of them (the others precede it).
    Tso {
        count: u32,
    },
    /// `count` fresh ids; the answer is the first of a consecutive run.
    AllocIds {
        count: u32,
    },
    IsBootstrapped,
    /// Starts the cluster with `region` (the whole key space) on `store`.
    Bootstrap {
        store: StoreId,
        addr: SocketAddr,
        region: Region,
    },
    /// A store announces itself and where it listens.
    PutStore {
        store: StoreId,
        addr: SocketAddr,
    },
    GetStore {
        store: StoreId,
    },
    StoreHeartbeat {
        store: StoreId,
        stats: StoreStats,
    },
    RegionHeartbeat(RegionHeartbeat),
    /// The region holding encoded key `key`, with its leader if known.
    RegionByKey {
        key: Vec<u8>,
    },
    RegionById {
        region_id: RegionId,
    },
    /// Up to `limit` regions from the one holding `start` on, in key order.
    ScanRegions {
        start: Vec<u8>,
        limit: u32,
    },
    /// Ids for splitting `region` into `split_count + 1` regions.
    AskSplit {
        region: Region,
        split_count: u32,
    },
    /// A split was applied: the regions it left, in key order.
    ReportSplit {
        regions: Vec<Region>,
    },
    /// Asks PD to run an operator on a region (an operator's or the
    /// testbed's request), carried out like PD's own.
    AddOperator {
        region_id: RegionId,
        operator: OperatorRequest,
    },
}

/// An operator asked of PD by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperatorRequest {
    /// Move the region's replica on `from_store` to `to_store` (add a learner
    /// there, promote it, remove the old one).
    MovePeer { from_store: StoreId, to_store: StoreId },
    /// Hand the region's leadership to its voter on `to_store`.
    TransferLeader { to_store: StoreId },
    /// Remove the region's replica on `store`, then add one back on the same
    /// store (a new peer id).
    RemoveReAdd { store: StoreId },
}

/// What PD asks of a region's leader in a heartbeat reply (one step of an
/// operator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegionCommand {
    /// Make this membership change, if the region is still at `epoch`.
    ChangePeer { epoch: RegionEpoch, changes: Vec<super::admin::PeerChange> },
    /// Hand leadership to the region's peer on `to_store`.
    TransferLeader { to_store: StoreId },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PdReply {
    /// A region heartbeat was taken; PD may have a command for the leader.
    Heartbeat(Option<RegionCommand>),
    Ts(u64),
    FirstId(u64),
    Bootstrapped(bool),
    Done,
    Store {
        addr: SocketAddr,
    },
    Region {
        region: Region,
        leader: Option<Peer>,
    },
    Regions(Vec<(Region, Option<Peer>)>),
    SplitIds(Vec<SplitIds>),
}

#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum PdError {
    #[error("the cluster is not bootstrapped")]
    NotBootstrapped,
    #[error("the cluster is already bootstrapped")]
    AlreadyBootstrapped,
    #[error("store {0} is not known")]
    StoreNotFound(StoreId),
    #[error("no region known for {0}")]
    RegionNotFound(String),
    /// A heartbeat or report older than what PD knows; the sender is behind.
    #[error("stale region {region_id}: {message}")]
    StaleRegion { region_id: RegionId, message: String },
    #[error("invalid request: {0}")]
    Invalid(String),
    /// PD's own storage failed (it is stopping).
    #[error("pd storage: {0}")]
    Storage(String),
}

pub type PdResponse = Result<PdReply, PdError>;
