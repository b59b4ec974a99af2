//! What PD did, as facts a checker can hold it to: every timestamp and id
//! range it handed out, every region report it accepted into its routing
//! table, every region it answered a routing question with, and every
//! operator it started or ended.
//!
//! The store's own events ([`crate::raftstore::StoreEvent`]) say what the
//! replicas did; these say what the control plane promised. PD promises that
//! no timestamp or id is ever handed out twice or out of order (restarts
//! included), and that within one lifetime its view of a region never goes
//! back to an older epoch or leader once it accepted a newer one. (The
//! routing table is not persisted: a restarted PD relearns it from
//! heartbeats, so [`PdEvent::Opened`] starts a new view.)

use crate::meta::{Peer, Region, RegionId};
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PdEvent {
    /// PD opened its engine (first start or restart); `ts_floor` is where its
    /// timestamps resume (the saved window bound).
    Opened { ts_floor: u64 },
    /// Timestamps `last - count + 1 ..= last` went to `to` (`None`: asked
    /// in-process, not over the network).
    TsHandedOut { last: u64, count: u32, to: Option<SocketAddr> },
    /// Ids `first .. first + count` were handed out.
    IdsHandedOut { first: u64, count: u64 },
    /// A report of `region` was taken into the routing table.
    RegionAccepted { region: Region, leader: Option<Peer>, term: u64, via: ReportKind },
    /// PD answered a routing question with `region`.
    Routed { region: Region, leader: Option<Peer>, to: Option<SocketAddr> },
    /// An operator started for the region (`what`: its kind and steps).
    OperatorStarted { region_id: RegionId, what: String },
    /// The region's operator ended, finished or not.
    OperatorEnded {
        region_id: RegionId,
        #[serde(deserialize_with = "crate::event_log::interned")]
        kind: crate::event_log::StaticText,
        finished: bool,
    },
}

/// How a region report reached PD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReportKind {
    Bootstrap,
    Heartbeat,
    SplitReport,
}

impl std::fmt::Display for ReportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReportKind::Bootstrap => "the bootstrap",
            ReportKind::Heartbeat => "a heartbeat",
            ReportKind::SplitReport => "a split report",
        })
    }
}

pub type PdEventSink = Arc<dyn Fn(&PdEvent) + Send + Sync>;
