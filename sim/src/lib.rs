//! simkv-sim: the deterministic simulation testbed for simkv.
//!
//! Everything here runs inside madsim (build with `--cfg madsim`, the default set
//! by `.cargo/config.toml`). [`cluster`] builds a simulated cluster whose disks
//! outlive its nodes.

#[cfg(madsim)]
pub mod admin;
pub mod bench;
pub mod checker;
#[cfg(madsim)]
pub mod cluster;
#[cfg(madsim)]
pub mod explore;
pub mod history;
pub mod nemesis;
#[cfg(madsim)]
pub mod panics;
#[cfg(madsim)]
pub mod report;
#[cfg(madsim)]
pub mod run;
pub mod scenario;
pub mod seeds;
#[cfg(madsim)]
pub mod shrink;
#[cfg(madsim)]
pub mod timeline_html;
pub mod topology;
#[cfg(madsim)]
pub mod workload;
