//! Clients of the store. [`RawClient`](raw::RawClient) speaks the raw KV RPC: it
//! routes each key to its region through the [`RegionCache`](region_cache::RegionCache),
//! finds the leader, and retries region errors with bounded backoff. It knows the
//! store only through `meta`, `codec`, `proto`, `rpc` and `transport`, never
//! `raftstore` or `server`.
//!
//! [`TxnClient`](txn::TxnClient) runs Percolator transactions over the same
//! routing, with timestamps from PD.
//!
//! Until PD exists the cache's source is the initial region layout; `EpochNotMatch`
//! answers carry the current regions and refresh it.

pub mod error;
pub mod raw;
pub mod region_cache;
pub mod txn;

pub use error::{AttemptError, ClientError};
pub use raw::{ClientConfig, RawClient};
pub use region_cache::{PdRegions, RegionCache, RegionSource, StaticRegions};
pub use txn::{Transaction, TxnClient, TxnConfig, TxnError};
