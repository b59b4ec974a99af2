//! `simkv`: the real (non-simulated) processes of a cluster.
//!
//! ```sh
//! simkv pd --addr 127.0.0.1:2379 --data-dir data/pd
//! simkv store --id 1 --addr 127.0.0.1:20161 --pd 127.0.0.1:2379 --data-dir data/s1 \
//!     --stores 1=127.0.0.1:20161,2=127.0.0.1:20162,3=127.0.0.1:20163
//! ```
//!
//! Every store is started with the same `--stores` list: the cluster's first
//! region (the whole key space, one replica on each of the first three stores)
//! is derived from it, so each store writes the same initial state, and the
//! store holding it bootstraps PD. Regions then split as they grow
//! (`--split-keys`, `--split-bytes`). Data lives in RocksDB under `--data-dir`.

#[cfg(madsim)]
fn main() {
    eprintln!("simkv: this binary runs real processes; build it without `--cfg madsim` (RUSTFLAGS=\"\" cargo build --bin simkv)");
    std::process::exit(2);
}

#[cfg(not(madsim))]
fn main() {
    std::process::exit(real::main());
}

#[cfg(not(madsim))]
mod real {
    use clap::{Parser, Subcommand};
    use simkv::engine::rocks::RocksEngine;
    use simkv::meta::{presplit_regions, StoreId};
    use simkv::pd::{run_pd_node, PdConfig, PdNodeConfig};
    use simkv::raftstore::{bootstrap_store, RaftStoreConfig};
    use simkv::server::{run_store_node, StoreNodeConfig};
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::path::PathBuf;

    #[derive(Parser)]
    #[command(name = "simkv", about = "A TiKV-style key-value store: the PD and store processes")]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Runs the placement driver.
        Pd {
            #[arg(long)]
            addr: SocketAddr,
            #[arg(long)]
            data_dir: PathBuf,
        },
        /// Runs a store.
        Store {
            #[arg(long)]
            id: StoreId,
            #[arg(long)]
            addr: SocketAddr,
            #[arg(long)]
            pd: SocketAddr,
            #[arg(long)]
            data_dir: PathBuf,
            /// Every store of the cluster as `id=addr`, comma-separated.
            #[arg(long, value_parser = parse_stores)]
            stores: BTreeMap<StoreId, SocketAddr>,
            /// Split a region holding more than this many keys (0: never by count).
            #[arg(long, default_value_t = 0)]
            split_keys: u64,
            /// Split a region holding more than this many bytes.
            #[arg(long, default_value_t = 96 << 20)]
            split_bytes: u64,
            /// The raft base tick in milliseconds.
            #[arg(long, default_value_t = 100)]
            tick_ms: u64,
        },
    }

    fn parse_stores(text: &str) -> Result<BTreeMap<StoreId, SocketAddr>, String> {
        let mut stores = BTreeMap::new();
        for (n, item) in text.split(',').enumerate() {
            let (id, addr) = item.split_once('=').ok_or_else(|| format!("item {} ({item:?}) is not id=addr", n + 1))?;
            let id: StoreId = id.trim().parse().map_err(|e| format!("item {} ({item:?}): store id: {e}", n + 1))?;
            let addr: SocketAddr = addr.trim().parse().map_err(|e| format!("item {} ({item:?}): address: {e}", n + 1))?;
            if stores.insert(id, addr).is_some() {
                return Err(format!("store {id} is listed twice"));
            }
        }
        if stores.len() < 3 {
            return Err(format!("{} stores listed; the first region needs 3", stores.len()));
        }
        Ok(stores)
    }

    pub fn main() -> i32 {
        simkv::trace::init_for_tests("info");
        let cli = Cli::parse();
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
        runtime.block_on(async move {
            match cli.command {
                Command::Pd { addr, data_dir } => {
                    let engine = match RocksEngine::open("pd", &data_dir) {
                        Ok(e) => e,
                        Err(e) => {
                            eprintln!("simkv pd: cannot open {}: {e}", data_dir.display());
                            return 1;
                        }
                    };
                    let cfg = PdNodeConfig { addr, pd: PdConfig::default(), clock_offset_ms: Default::default() };
                    match run_pd_node(cfg, engine).await {
                        Ok(()) => 0,
                        Err(e) => {
                            eprintln!("simkv pd: {e}");
                            1
                        }
                    }
                }
                Command::Store { id, addr, pd, data_dir, stores, split_keys, split_bytes, tick_ms } => {
                    if stores.get(&id) != Some(&addr) {
                        eprintln!("simkv store: --stores must list this store ({id}={addr})");
                        return 2;
                    }
                    let open = |part: &str| RocksEngine::open(format!("store-{id}/{part}"), &data_dir.join(part));
                    let (raft, kv) = match (open("raft"), open("kv")) {
                        (Ok(raft), Ok(kv)) => (raft, kv),
                        (Err(e), _) | (_, Err(e)) => {
                            eprintln!("simkv store: cannot open {}: {e}", data_dir.display());
                            return 1;
                        }
                    };
                    let ids: Vec<StoreId> = stores.keys().copied().collect();
                    let first = presplit_regions(&[], &ids, 3, &mut 100);
                    if let Err(e) = bootstrap_store(&raft, &kv, id, &first).await {
                        eprintln!("simkv store: bootstrap: {e}");
                        return 1;
                    }
                    let mut raftstore =
                        RaftStoreConfig { base_tick_ms: tick_ms, region_split_keys: split_keys, region_split_bytes: split_bytes, ..RaftStoreConfig::default() };
                    // The lease keeps three quarters of the election timeout, at most
                    // the default drift bound short of it.
                    raftstore.max_clock_drift_ms = raftstore.max_clock_drift_ms.min(raftstore.election_timeout().as_millis() as u64 / 4);
                    if let Err(e) = raftstore.validate() {
                        eprintln!("simkv store: {e}");
                        return 2;
                    }
                    let cfg = StoreNodeConfig { store_id: id, addr, addresses: stores, raftstore, events: None, pd: Some(pd) };
                    match run_store_node(cfg, raft, kv).await {
                        Ok(()) => 0,
                        Err(e) => {
                            eprintln!("simkv store: {e}");
                            1
                        }
                    }
                }
            }
        })
    }
}
