//! The placement driver (PD): the cluster's control plane.
//!
//! One PD node serves timestamps ([`tso`]), ids ([`alloc`]), cluster bootstrap,
//! store registration and heartbeats, and the routing table ([`routing`]),
//! learned **only** from region heartbeats and split reports: PD is a cache of
//! routing truth, and stores never trust it over their own applied state.
//! Everything PD must not forget (the timestamp window, the id high-water mark,
//! the bootstrap record, store addresses) is persisted on its own engine
//! before it is handed out, so a crash and restart never hands out a smaller
//! timestamp or a used id. The routing table is rebuilt from heartbeats.
//!
//! PD also schedules ([`schedule`]): on each region heartbeat it may start an
//! operator for the region (make up or replace replicas, balance regions and
//! leaders) and hands its leader one step at a time in the heartbeat reply.
//! Operators live in memory: a restarted PD starts over from heartbeats.
//!
//! What PD hands out and accepts is reported as [`events`] (timestamps, ids,
//! accepted region reports, routing answers, operators), so the testbed can
//! hold the control plane to its promises.
//!
//! `pd` uses `meta`, `proto`, `engine` and `transport`, never `raftstore`.

pub mod alloc;
pub mod events;
pub mod routing;
pub mod schedule;
pub mod server;
pub mod tso;

pub use events::{PdEvent, PdEventSink, ReportKind};
pub use server::{run_pd_node, PdConfig, PdNodeConfig, PdServer};
