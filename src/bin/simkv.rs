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
//!
//! Tables on transactions, against a running cluster:
//!
//! ```sh
//! simkv table --pd 127.0.0.1:2379 create people --columns name,email,age --unique email --index age
//! simkv table --pd 127.0.0.1:2379 insert people 1 ann ann@example.com 30
//! simkv table --pd 127.0.0.1:2379 find people age 30
//! ```
//!
//! A store started without `--id` joins a running cluster: PD gives it an id
//! (kept in its kv engine, so a restart keeps it), the other stores learn its
//! address from PD, and PD's schedulers move replicas and leaders onto it.

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
            /// Appends PD's events (timestamps handed out, region reports
            /// accepted, operators) to this file, one JSON line each: the
            /// testbed's real mode reads them.
            #[arg(long)]
            events: Option<PathBuf>,
            /// Moves PD's clock by this many milliseconds (negative: back), as
            /// a clock stepped by NTP would be; the testbed's real mode uses it.
            #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
            clock_offset_ms: i64,
            /// PD's settings: a TOML file of `PdConfig`'s fields (those left
            /// out keep their defaults).
            #[arg(long)]
            config: Option<PathBuf>,
            /// Planted bugs (kebab-case names, comma-separated); only in a
            /// build with the `planted-bugs` feature.
            #[arg(long, value_delimiter = ',')]
            bugs: Vec<String>,
        },
        /// Runs a store.
        Store {
            /// This store's id, one of `--stores`; omit it to join a running
            /// cluster with an id from PD.
            #[arg(long)]
            id: Option<StoreId>,
            #[arg(long)]
            addr: SocketAddr,
            #[arg(long)]
            pd: SocketAddr,
            #[arg(long)]
            data_dir: PathBuf,
            /// Every store of the cluster as `id=addr`, comma-separated.
            #[arg(long, value_parser = parse_stores)]
            stores: BTreeMap<StoreId, SocketAddr>,
            /// The raftstore's settings: a TOML file of `RaftStoreConfig`'s
            /// fields (those left out keep their defaults). The flags below
            /// override it.
            #[arg(long)]
            config: Option<PathBuf>,
            /// Split a region holding more than this many keys (0: never by count; default 0).
            #[arg(long)]
            split_keys: Option<u64>,
            /// Split a region holding more than this many bytes (default 96 MiB).
            #[arg(long)]
            split_bytes: Option<u64>,
            /// The raft base tick in milliseconds (default 100).
            #[arg(long)]
            tick_ms: Option<u64>,
            /// Encoded keys (hex, comma-separated) at which the first regions
            /// are split when the cluster is created; every store of a
            /// cluster must be given the same.
            #[arg(long, value_delimiter = ',', value_parser = parse_hex)]
            split_at: Vec<Vec<u8>>,
            /// Replicas of each first region (on the first stores of `--stores`).
            #[arg(long, default_value_t = 3)]
            replicas: usize,
            /// Appends the store's events (votes, applies, membership changes,
            /// lease reads, splits) to this file, one JSON line each: the
            /// testbed's real mode reads them.
            #[arg(long)]
            events: Option<PathBuf>,
            /// Planted bugs (kebab-case names, comma-separated); only in a
            /// build with the `planted-bugs` feature.
            #[arg(long, value_delimiter = ',')]
            bugs: Vec<String>,
        },
        /// Tables on transactions, against a running cluster: create one, change
        /// rows, look them up by primary key, by a unique or a non-unique index.
        Table {
            /// Where PD listens.
            #[arg(long)]
            pd: SocketAddr,
            #[command(subcommand)]
            action: TableAction,
        },
    }

    #[derive(Subcommand)]
    enum TableAction {
        /// Creates a table: an integer primary key and value columns, each
        /// optionally indexed (unique or not).
        Create {
            table: String,
            /// The value columns, comma-separated.
            #[arg(long, value_delimiter = ',')]
            columns: Vec<String>,
            /// Columns with a unique index.
            #[arg(long, value_delimiter = ',')]
            unique: Vec<String>,
            /// Columns with a non-unique index.
            #[arg(long, value_delimiter = ',')]
            index: Vec<String>,
        },
        /// Inserts a row: its primary key, then one value per column (numbers
        /// are integers, anything else text).
        Insert { table: String, pk: i64, values: Vec<String> },
        /// Replaces a row's values.
        Update { table: String, pk: i64, values: Vec<String> },
        /// Deletes a row.
        Delete { table: String, pk: i64 },
        /// Prints a row by primary key.
        Get { table: String, pk: i64 },
        /// Prints the rows whose indexed column holds a value.
        Find { table: String, column: String, value: String },
        /// Prints every row, by primary key.
        Scan { table: String },
    }

    fn datum(text: &str) -> simkv::table::Datum {
        match text.parse() {
            Ok(v) => simkv::table::Datum::Int(v),
            Err(_) => simkv::table::Datum::Text(text.to_string()),
        }
    }

    fn print_row(schema: &simkv::table::TableSchema, pk: i64, row: &[simkv::table::Datum]) {
        let cells: Vec<String> = schema.columns.iter().zip(row).map(|(c, v)| format!("{c}={v}")).collect();
        println!("{pk}: {}", cells.join(" "));
    }

    /// Runs one table command; the exit code.
    async fn table(pd: SocketAddr, action: TableAction) -> Result<(), String> {
        use simkv::table::{create_table, open_table, IndexSchema, TableSchema};
        let local = SocketAddr::new(if pd.ip().is_loopback() { pd.ip() } else { std::net::Ipv4Addr::UNSPECIFIED.into() }, 0);
        let rpc = simkv::rpc::RpcClient::bind(local).await.map_err(|e| format!("binding a PD client: {e}"))?;
        let pd_client = simkv::pd_client::PdClient::new(std::sync::Arc::new(rpc), pd, simkv::pd_client::PdClientConfig::default());
        let source = Box::new(simkv::client::PdRegions(pd_client.clone()));
        let raw = simkv::client::RawClient::connect(local, BTreeMap::new(), source, simkv::client::ClientConfig::default())
            .await
            .map_err(|e| format!("binding a client: {e}"))?;
        let client = simkv::client::TxnClient::new(raw, pd_client, simkv::client::TxnConfig::default());
        let name = match &action {
            TableAction::Create { table, .. }
            | TableAction::Insert { table, .. }
            | TableAction::Update { table, .. }
            | TableAction::Delete { table, .. }
            | TableAction::Get { table, .. }
            | TableAction::Find { table, .. }
            | TableAction::Scan { table } => table.clone(),
        };
        if let TableAction::Create { columns, unique, index, .. } = &action {
            let position = |c: &String| columns.iter().position(|x| x == c).ok_or_else(|| format!("no column named {c:?}"));
            let mut indexes = Vec::new();
            for (c, is_unique) in unique.iter().map(|c| (c, true)).chain(index.iter().map(|c| (c, false))) {
                indexes.push(IndexSchema { id: indexes.len() as i64 + 1, name: c.clone(), column: position(c)?, unique: is_unique });
            }
            // Table ids: a hash of the name would collide; PD's id allocator never does.
            let id = simkv::pd_client::PdClient::alloc_ids(&client_pd(pd).await?, 1).await.map_err(|e| format!("asking PD for a table id: {e}"))? as i64;
            let schema = TableSchema { id, name: name.clone(), columns: columns.clone(), indexes };
            create_table(&client, &schema).await.map_err(|e| e.to_string())?;
            println!("created table {name} (id {id})");
            return Ok(());
        }
        let schema = open_table(&client, &name).await.map_err(|e| e.to_string())?;
        let row = |values: &[String]| values.iter().map(|v| datum(v)).collect::<Vec<_>>();
        let mut txn = client.begin().await.map_err(|e| e.to_string())?;
        // What a change did, said once it has committed.
        let mut done = None;
        match action {
            TableAction::Create { .. } => unreachable!("handled above"),
            TableAction::Insert { pk, values, .. } => {
                schema.insert(&mut txn, pk, row(&values)).await.map_err(|e| e.to_string())?;
                done = Some(format!("inserted row {pk} into {name}"));
            }
            TableAction::Update { pk, values, .. } => {
                schema.update(&mut txn, pk, row(&values)).await.map_err(|e| e.to_string())?;
                done = Some(format!("updated row {pk} of {name}"));
            }
            TableAction::Delete { pk, .. } => {
                if !schema.delete(&mut txn, pk).await.map_err(|e| e.to_string())? {
                    return Err(format!("no row with primary key {pk}"));
                }
                done = Some(format!("deleted row {pk} from {name}"));
            }
            TableAction::Get { pk, .. } => match schema.get(&txn, pk).await.map_err(|e| e.to_string())? {
                Some(row) => print_row(&schema, pk, &row),
                None => return Err(format!("no row with primary key {pk}")),
            },
            TableAction::Find { column, value, .. } => {
                for (pk, row) in schema.find(&txn, &column, &datum(&value), usize::MAX).await.map_err(|e| e.to_string())? {
                    print_row(&schema, pk, &row);
                }
            }
            TableAction::Scan { .. } => {
                for (pk, row) in schema.scan(&txn, usize::MAX).await.map_err(|e| e.to_string())? {
                    print_row(&schema, pk, &row);
                }
            }
        }
        let commit_ts = txn.commit().await.map_err(|e| e.to_string())?;
        if let Some(done) = done {
            println!("{done} (committed at ts {commit_ts})");
        }
        Ok(())
    }

    async fn client_pd(pd: SocketAddr) -> Result<simkv::pd_client::PdClient, String> {
        let rpc = simkv::rpc::RpcClient::bind(SocketAddr::new(pd.ip(), 0)).await.map_err(|e| format!("binding a PD client: {e}"))?;
        Ok(simkv::pd_client::PdClient::new(std::sync::Arc::new(rpc), pd, simkv::pd_client::PdClientConfig::default()))
    }

    /// The id of a store joining a running cluster: the one it was given
    /// before (kept in its kv engine), or a fresh one from PD, saved first.
    async fn joining_store_id(kv: &RocksEngine, pd: SocketAddr, addr: SocketAddr) -> Result<StoreId, String> {
        use simkv::codec::keys::STORE_IDENT_KEY;
        use simkv::engine::{Cf, Engine, Snapshot as _, WriteBatch};
        if let Some(bytes) = kv.snapshot().get(Cf::Raft, STORE_IDENT_KEY).map_err(|e| format!("reading the store id: {e}"))? {
            let id = <[u8; 8]>::try_from(bytes.as_slice()).map_err(|_| "the saved store id is corrupt".to_string())?;
            return Ok(u64::from_be_bytes(id));
        }
        let rpc = simkv::rpc::RpcClient::bind(SocketAddr::new(addr.ip(), 0)).await.map_err(|e| format!("binding a PD client: {e}"))?;
        let client = simkv::pd_client::PdClient::new(std::sync::Arc::new(rpc), pd, simkv::pd_client::PdClientConfig::default());
        let id = client.alloc_ids(1).await.map_err(|e| format!("asking PD {pd} for a store id: {e}"))?;
        let mut batch = WriteBatch::new();
        batch.put(Cf::Raft, STORE_IDENT_KEY.to_vec(), id.to_be_bytes().to_vec());
        kv.write(&batch, true).await.map_err(|e| format!("saving the store id: {e}"))?;
        tracing::info!(store = id, %addr, "joined the cluster with an id from PD");
        Ok(id)
    }

    /// A settings file (TOML; fields left out keep their defaults), or the defaults.
    fn read_config<T: serde::de::DeserializeOwned + Default>(path: Option<&std::path::Path>) -> Result<T, String> {
        let Some(path) = path else { return Ok(T::default()) };
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The planted bugs named on the command line.
    fn planted(names: &[String]) -> Result<simkv::planted::Bugs, String> {
        let bugs: Vec<simkv::planted::Bug> = names.iter().map(|n| simkv::planted::Bug::parse(n)).collect::<Result<_, _>>()?;
        #[cfg(feature = "planted-bugs")]
        return Ok(bugs.into_iter().collect());
        #[cfg(not(feature = "planted-bugs"))]
        if bugs.is_empty() {
            Ok(simkv::planted::Bugs::NONE)
        } else {
            Err("this simkv was built without planted bugs (build it with `--features planted-bugs`)".into())
        }
    }

    fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
        if !text.len().is_multiple_of(2) {
            return Err(format!("{text:?} is not hex (an odd number of digits)"));
        }
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| format!("{text:?} is not hex"))).collect()
    }

    fn open_events(path: Option<&std::path::Path>) -> Result<Option<simkv::event_log::EventFile>, String> {
        path.map(|p| simkv::event_log::EventFile::append(p).map_err(|e| format!("cannot open the event file {}: {e}", p.display()))).transpose()
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
                Command::Table { pd, action } => match table(pd, action).await {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("simkv table: {e}");
                        1
                    }
                },
                Command::Pd { addr, data_dir, events, clock_offset_ms, config, bugs } => {
                    let (pd, bugs): (PdConfig, _) = match read_config(config.as_deref()).and_then(|pd| Ok((pd, planted(&bugs)?))) {
                        Ok(both) => both,
                        Err(e) => {
                            eprintln!("simkv pd: {e}");
                            return 2;
                        }
                    };
                    let engine = match RocksEngine::open("pd", &data_dir) {
                        Ok(e) => e,
                        Err(e) => {
                            eprintln!("simkv pd: cannot open {}: {e}", data_dir.display());
                            return 1;
                        }
                    };
                    let events = match open_events(events.as_deref()) {
                        Ok(file) => file.map(|f| f.pd_sink()),
                        Err(e) => {
                            eprintln!("simkv pd: {e}");
                            return 1;
                        }
                    };
                    // A drifting clock (at rate 1) so that the testbed can change its rate.
                    let pd = PdConfig { clock: simkv::clock::Clock::drifting(1.0), bugs, ..pd };
                    let clock_offset_ms = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(clock_offset_ms));
                    let cfg = PdNodeConfig { addr, pd, clock_offset_ms, events };
                    match run_pd_node(cfg, engine).await {
                        Ok(()) => 0,
                        Err(e) => {
                            eprintln!("simkv pd: {e}");
                            1
                        }
                    }
                }
                Command::Store { id, addr, pd, data_dir, mut stores, config, split_keys, split_bytes, tick_ms, split_at, replicas, events, bugs } => {
                    let raftstore: RaftStoreConfig =
                        match read_config(config.as_deref()).and_then(|cfg: RaftStoreConfig| Ok(RaftStoreConfig { bugs: planted(&bugs)?, ..cfg })) {
                            Ok(cfg) => cfg,
                            Err(e) => {
                                eprintln!("simkv store: {e}");
                                return 2;
                            }
                        };
                    let events = match open_events(events.as_deref()) {
                        Ok(file) => file,
                        Err(e) => {
                            eprintln!("simkv store: {e}");
                            return 1;
                        }
                    };
                    if let Some(id) = id {
                        if stores.get(&id) != Some(&addr) {
                            eprintln!("simkv store: --stores must list this store ({id}={addr})");
                            return 2;
                        }
                    }
                    let name = id.map_or_else(|| addr.to_string(), |id| id.to_string());
                    let open = |part: &str| RocksEngine::open(format!("store-{name}/{part}"), &data_dir.join(part));
                    let (raft, kv) = match (open("raft"), open("kv")) {
                        (Ok(raft), Ok(kv)) => (raft, kv),
                        (Err(e), _) | (_, Err(e)) => {
                            eprintln!("simkv store: cannot open {}: {e}", data_dir.display());
                            return 1;
                        }
                    };
                    let id = match id {
                        Some(id) => id,
                        None => match joining_store_id(&kv, pd, addr).await {
                            Ok(id) => id,
                            Err(e) => {
                                eprintln!("simkv store: {e}");
                                return 1;
                            }
                        },
                    };
                    let ids: Vec<StoreId> = stores.keys().copied().collect();
                    stores.insert(id, addr);
                    let first = presplit_regions(&split_at, &ids, replicas, &mut 100);
                    if let Err(e) = bootstrap_store(&raft, &kv, id, &first).await {
                        eprintln!("simkv store: bootstrap: {e}");
                        return 1;
                    }
                    // A drifting clock (at rate 1) so that the testbed can change its rate.
                    let clock = simkv::clock::Clock::drifting(1.0);
                    let mut raftstore = RaftStoreConfig {
                        base_tick_ms: tick_ms.unwrap_or(raftstore.base_tick_ms),
                        region_split_keys: split_keys.unwrap_or(raftstore.region_split_keys),
                        region_split_bytes: split_bytes.unwrap_or(raftstore.region_split_bytes),
                        clock,
                        ..raftstore
                    };
                    // The drift bound is at most a quarter of the election timeout,
                    // so a lease is left inside the voters' refusal (a tick less).
                    raftstore.max_clock_drift_ms = raftstore.max_clock_drift_ms.min(raftstore.election_timeout().as_millis() as u64 / 4);
                    if let Err(e) = raftstore.validate() {
                        eprintln!("simkv store: {e}");
                        return 2;
                    }
                    let events = events.map(|f| f.store_sink());
                    let cfg = StoreNodeConfig { store_id: id, addr, addresses: stores, raftstore, events, pd: Some(pd) };
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
