//! simkv-sim: the deterministic simulation testbed for simkv.
//!
//! Runs inside madsim (build with `--cfg madsim`, the default set by
//! `.cargo/config.toml`): [`cluster`] builds a simulated cluster whose disks
//! outlive its nodes. The real build (without `--cfg madsim`) runs the same
//! scenarios, workloads, nemesis and checkers against real processes
//! ([`cluster`]'s other implementation, [`run::real`]).

#[cfg(madsim)]
pub mod admin;
pub mod bench;
pub mod checker;
pub mod cluster;
#[cfg(madsim)]
pub mod explore;
/// What a real run's report carries of exploration: its coverage.
#[cfg(not(madsim))]
pub mod explore {
    pub mod coverage;
}
pub mod history;
pub mod nemesis;
#[cfg(madsim)]
pub mod panics;
pub mod report;
pub mod run;
pub mod scenario;
pub mod seeds;
#[cfg(madsim)]
pub mod shrink;
pub mod timeline_html;
pub mod topology;
pub mod workload;
