//! Clients of the store. [`RawClient`](raw::RawClient) speaks the raw KV RPC: it
//! routes each key to its region, finds the leader, and retries region errors with
//! bounded backoff. It knows the store only through `meta`, `codec`-free wire types
//! and `transport`.
//!
//! Until PD exists the client is given the initial region layout and store
//! addresses; `EpochNotMatch` answers carry the current regions and refresh them.

pub mod raw;

pub use raw::{ClientConfig, ClientError, RawClient};
