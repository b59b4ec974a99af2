//! A real cluster: PD and the stores as processes of the `simkv` binary,
//! each on RocksDB in a directory of its own, talking TCP over the loopback
//! network, started, killed (`SIGKILL`), paused (`SIGSTOP` / `SIGCONT`) and
//! partitioned by the runner.
//!
//! **Nodes are IPs, as in simulation.** Every node of a run has an address of
//! its own in `127.B.0.0/16` (`B` picked per run): PD `127.B.0.1`, store `s`
//! `127.B.1.s`, client `n` `127.B.2.n`, the runner's own control sockets
//! `127.B.3.k`. Linux routes all of `127.0.0.0/8` to the loopback device, so
//! no setup is needed. A store's PD client binds on the store's IP, so a cut
//! named by IP cuts the whole node.
//!
//! **Faults.** A clogged directed link `a -> b` is cut at `b`'s end when `b`
//! is a process of the run (it drops what it receives from `a`), else at
//! `a`'s (it drops what it sends to the client `b`): every process's
//! transport honours a [`ProcessFaults`] the runner sets over the admin RPC.
//! Loss, delay and duplication of raft and client traffic go the same way,
//! to every process; the runner's own clients send without them (their
//! requests are lost or delayed only on the way back, unlike in
//! simulation). Clock drift is a rate set on each process's clock likewise;
//! PD's clock stepped back after a restart is a flag it restarts with. Disk
//! faults are simulation-only: a plan holding one is refused before a run
//! starts (`Plan::sim_only`). Network namespaces would cut links outside
//! the processes, but need root and per-run setup; the transport's own cut
//! needs neither and also sees which traffic is raft and which is client.
//!
//! **Events.** Each process appends its events to a file of its own
//! (`simkv::event_log`); a task here reads the new lines every 100 ms into
//! the same lists the simulated cluster records into, timed from the run's
//! start on the machine's clock. A process killed mid-line loses only that
//! line.

use super::{events_fingerprint, ClusterSpec, TimedEvent};
use crate::topology::Topology;
use simkv::client::{ClientConfig, RawClient};
use simkv::engine::{Cf, KvPair};
use simkv::event_log::Logged;
use simkv::meta::{presplit_regions, Region, StoreId};
use simkv::pd_client::{PdClient, PdClientConfig};
use simkv::proto::{AdminReply, AdminRequest, RpcRequest, RpcResponse};
use simkv::rpc::RpcClient;
use simkv::transport::{LinkFaults, ProcessFaults, Traffic};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Seek as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A node of a real run: a store's id, [`PD_NODE`], a client's
/// `CLIENT_NODES + n`, or the runner's `CONTROL_NODES + k`.
pub type NodeId = u64;

const PD_NODE: NodeId = 1000;
const CLIENT_NODES: NodeId = 2000;
const CONTROL_NODES: NodeId = 3000;

/// How often the runner reads the processes' event files.
const TAIL_EVERY: Duration = Duration::from_millis(100);
/// How long a process may take to come up before the run gives up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A node the runner's tasks run "on": in a real run every task is a task
/// of the runner's runtime, and a node is only its id (which the nemesis
/// cuts by).
pub struct NodeHandle {
    id: NodeId,
}

impl NodeHandle {
    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn spawn<F>(&self, task: F) -> madsim::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        madsim::task::spawn(task)
    }
}

/// Where a real run's processes come from and put their files.
#[derive(Debug, Clone)]
pub struct RealSetup {
    /// The `simkv` binary.
    pub bin: PathBuf,
    /// The run's directory: a folder per process (data, events, log).
    pub dir: PathBuf,
    /// Planted bugs every process runs with (a build with the
    /// `planted-bugs` feature only).
    pub bugs: Vec<simkv::planted::Bug>,
}

/// The time base of real runs: nanoseconds since the current run started,
/// on the machine's monotonic clock, and the wall clock then (event files
/// are stamped with the wall clock).
static EPOCH: Mutex<Option<(std::time::Instant, u64)>> = Mutex::new(None);

fn unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn epoch() -> (std::time::Instant, u64) {
    *EPOCH.lock().unwrap().get_or_insert_with(|| (std::time::Instant::now(), unix_ns()))
}

/// Nanoseconds since the run started (histories are timed with it).
pub fn now_ns() -> u64 {
    epoch().0.elapsed().as_nanos() as u64
}

/// The time since the run started.
pub fn elapsed() -> Duration {
    epoch().0.elapsed()
}

/// The processes of the runs going on in this process: killed at once on
/// Ctrl-C ([`kill_all`]).
static LIVE: Mutex<Vec<std::sync::Weak<Control>>> = Mutex::new(Vec::new());

/// Kills every process of every real run going on (Ctrl-C).
pub fn kill_all() {
    for control in LIVE.lock().unwrap().drain(..).filter_map(|c| c.upgrade()) {
        control.stopped.store(true, Ordering::SeqCst);
        for process in control.processes.values() {
            process.kill();
        }
    }
}

/// One process of the run (PD or a store).
struct Process {
    name: String,
    addr: SocketAddr,
    args: Vec<String>,
    events: PathBuf,
    log: PathBuf,
    child: Mutex<Option<Child>>,
    paused: AtomicBool,
    /// Fault pushes to this process go one at a time, each with the state
    /// as it is when sent (so an older one never lands after a newer one).
    push: futures::lock::Mutex<()>,
}

impl Process {
    fn spawn(&self, bin: &Path, extra: &[String]) -> std::io::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut command = Command::new(bin);
        command.args(&self.args).args(extra).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).env("RUST_LOG", "info");
        // The process dies with the runner, even one killed with SIGKILL
        // (nothing else could clean up after that).
        #[cfg(target_os = "linux")]
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn()?;
        tracing::info!(process = %self.name, pid = child.id(), "started");
        *self.child.lock().unwrap() = Some(child);
        self.paused.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// `kill -9`, then reaps it.
    fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            if self.paused.swap(false, Ordering::SeqCst) {
                self.signal_pid(child.id(), libc::SIGCONT);
            }
            let _ = child.kill();
            let _ = child.wait();
            tracing::info!(process = %self.name, "killed");
        }
    }

    fn signal(&self, signal: i32) {
        if let Some(child) = self.child.lock().unwrap().as_ref() {
            self.signal_pid(child.id(), signal);
        }
    }

    fn signal_pid(&self, pid: u32, signal: i32) {
        // SAFETY: a plain syscall on our own child's pid (not yet reaped).
        unsafe {
            libc::kill(pid as libc::pid_t, signal);
        }
    }

    fn is_up(&self) -> bool {
        self.child.lock().unwrap().is_some()
    }

    /// The exit status of a process that died by itself.
    fn died(&self) -> Option<String> {
        let mut child = self.child.lock().unwrap();
        match child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => Some(format!("{} exited by itself ({status}); its log: {}", self.name, self.log.display())),
            _ => None,
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the runner wants every process's transport and clock to do; pushed
/// to a process when it changes and when the process (re)starts.
#[derive(Default)]
struct Wanted {
    /// Clogged directed links.
    clogs: BTreeSet<(NodeId, NodeId)>,
    raft: LinkFaults,
    client: LinkFaults,
    /// Clock rates by node (missing: 1).
    rates: BTreeMap<NodeId, f64>,
}

/// The runner's side of every process: their processes, what their faults
/// should be, and the control connection it sets them over.
pub struct Control {
    net: u8,
    bin: PathBuf,
    processes: BTreeMap<NodeId, Arc<Process>>,
    wanted: Mutex<Wanted>,
    rpc: RpcClient,
    controls: AtomicU32,
    stopped: AtomicBool,
}

impl Control {
    fn ip(&self, node: NodeId) -> IpAddr {
        ip_of(self.net, node)
    }

    /// Loss, delay and duplication for one kind of traffic, on every process.
    pub fn set(self: &Arc<Self>, traffic: Traffic, faults: LinkFaults) {
        {
            let mut wanted = self.wanted.lock().unwrap();
            match traffic {
                Traffic::Raft => wanted.raft = faults,
                Traffic::Client => wanted.client = faults,
            }
        }
        for &node in self.processes.keys() {
            self.push(node);
        }
    }

    fn faults_of(&self, node: NodeId) -> ProcessFaults {
        let wanted = self.wanted.lock().unwrap();
        let mut faults = ProcessFaults { raft: wanted.raft, client: wanted.client, ..ProcessFaults::default() };
        for &(a, b) in &wanted.clogs {
            if b == node {
                faults.recv_cut.push(self.ip(a));
            } else if a == node && !self.processes.contains_key(&b) {
                faults.send_cut.push(self.ip(b));
            }
        }
        faults.keep = (1..=self.controls.load(Ordering::SeqCst) as u64).map(|k| self.ip(CONTROL_NODES + k)).collect();
        faults
    }

    /// Sends `node` its faults and clock rate as they are now, in the
    /// background, retrying while it is paused or starting; a process that
    /// is down gets them when it restarts.
    fn push(self: &Arc<Self>, node: NodeId) {
        let control = self.clone();
        madsim::task::spawn(async move {
            let Some(process) = control.processes.get(&node).cloned() else { return };
            let _one_at_a_time = process.push.lock().await;
            let mut delay = Duration::from_millis(20);
            while process.is_up() && !control.stopped.load(Ordering::SeqCst) {
                let faults = control.faults_of(node);
                let rate = control.wanted.lock().unwrap().rates.get(&node).copied().unwrap_or(1.0);
                let sent = async {
                    control.admin(process.addr, AdminRequest::SetProcessFaults(faults)).await?;
                    control.admin(process.addr, AdminRequest::SetClockRate { rate }).await
                };
                match sent.await {
                    Ok(_) => return,
                    Err(e) => tracing::debug!(process = %process.name, error = %e, "pushing faults"),
                }
                madsim::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
        });
    }

    async fn admin(&self, addr: SocketAddr, request: AdminRequest) -> Result<AdminReply, String> {
        match self.rpc.call(addr, &RpcRequest::Admin(request), Duration::from_secs(1)).await {
            Ok(RpcResponse::Admin(Ok(reply))) => Ok(reply),
            Ok(RpcResponse::Admin(Err(e))) | Ok(RpcResponse::Rejected(e)) => Err(format!("{e:?}")),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    fn clog(self: &Arc<Self>, a: NodeId, b: NodeId, on: bool) {
        let changed = {
            let mut wanted = self.wanted.lock().unwrap();
            if on {
                wanted.clogs.insert((a, b))
            } else {
                wanted.clogs.remove(&(a, b))
            }
        };
        if changed {
            self.push(if self.processes.contains_key(&b) { b } else { a });
        }
    }

    fn set_rate(self: &Arc<Self>, node: NodeId, rate: f64) {
        self.wanted.lock().unwrap().rates.insert(node, rate);
        self.push(node);
    }

    fn restart(self: &Arc<Self>, node: NodeId, extra: &[String]) {
        let Some(process) = self.processes.get(&node) else { return };
        process.kill();
        if let Err(e) = process.spawn(&self.bin, extra) {
            tracing::warn!(process = %process.name, error = %e, "restart failed");
        }
        self.push(node);
    }
}

fn ip_of(net: u8, node: NodeId) -> IpAddr {
    let (role, n) = match node {
        PD_NODE => (0, 1),
        n if n >= CONTROL_NODES => (3, n - CONTROL_NODES),
        n if n >= CLIENT_NODES => (2, n - CLIENT_NODES),
        store => (1, store),
    };
    IpAddr::V4(Ipv4Addr::new(127, net, role, n as u8))
}

/// A free TCP port on `ip` (the OS's pick; the process binds it moments later).
fn free_port(ip: IpAddr) -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(SocketAddr::new(ip, 0))?.local_addr()?.port())
}

/// A store's clock as the nemesis changes it: its rate, set over the admin RPC.
pub struct RemoteClock {
    control: Arc<Control>,
    node: NodeId,
}

impl RemoteClock {
    pub fn set_rate(&self, rate: f64) {
        self.control.set_rate(self.node, rate);
    }
}

pub struct StoreSlot {
    pub id: StoreId,
    pub addr: SocketAddr,
    pub node: NodeHandle,
    pub clock: RemoteClock,
}

pub struct PdSlot {
    pub addr: SocketAddr,
    pub node: NodeHandle,
    /// Added to PD's clock when it next restarts (a clock stepped back).
    pub clock_offset_ms: Arc<AtomicI64>,
}

pub struct Cluster {
    pub spec: ClusterSpec,
    pub pd: PdSlot,
    pub initial_regions: Vec<Region>,
    pub addresses: BTreeMap<StoreId, SocketAddr>,
    pub stores: BTreeMap<StoreId, StoreSlot>,
    pub events: Arc<Mutex<Vec<TimedEvent>>>,
    /// Loss, delay and duplication, pushed to every process.
    pub net_faults: Arc<Control>,
    clients: Mutex<u32>,
    tail: madsim::task::JoinHandle<()>,
    tail_state: Arc<Mutex<Tail>>,
}

/// How far each event file has been read.
#[derive(Default)]
struct Tail {
    files: Vec<(PathBuf, u64)>,
}

impl Cluster {
    /// Starts PD and the stores of `spec` as processes, in `setup.dir`, and
    /// waits until PD answers and every first region has a leader.
    pub async fn start(spec: ClusterSpec, setup: &RealSetup) -> Result<Cluster, String> {
        *EPOCH.lock().unwrap() = Some((std::time::Instant::now(), unix_ns()));
        let net = pick_net();
        let store_ids: Vec<StoreId> = (1..=spec.stores as u64).collect();
        let mut next_id = 100;
        let regions = presplit_regions(&spec.split_keys, &store_ids, spec.replicas, &mut next_id);
        let bind_err = |what: String| move |e: std::io::Error| format!("{what}: {e} (real mode needs the loopback network 127.0.0.0/8)");
        let pd_ip = ip_of(net, PD_NODE);
        let pd_addr = SocketAddr::new(pd_ip, free_port(pd_ip).map_err(bind_err(format!("no port on {pd_ip}")))?);
        let mut addresses = BTreeMap::new();
        for &id in &store_ids {
            let ip = ip_of(net, id);
            addresses.insert(id, SocketAddr::new(ip, free_port(ip).map_err(bind_err(format!("no port on {ip}")))?));
        }
        std::fs::create_dir_all(&setup.dir).map_err(|e| format!("{}: {e}", setup.dir.display()))?;
        let write = |name: &str, text: String| {
            let path = setup.dir.join(name);
            std::fs::write(&path, text).map(|_| path).map_err(|e| format!("{}: {e}", setup.dir.display()))
        };
        let raftstore = write("raftstore.toml", toml::to_string(&spec.raftstore).map_err(|e| format!("the raftstore settings as TOML: {e}"))?)?;
        // PD keeps as many replicas as the first regions have (as the
        // simulated cluster's PD does).
        let pd = simkv::pd::PdConfig { max_replicas: spec.replicas, ..spec.pd.clone() };
        let pd_config = write("pd.toml", toml::to_string(&pd).map_err(|e| format!("PD's settings as TOML: {e}"))?)?;
        let path = |p: &Path| p.display().to_string();
        let mut processes = BTreeMap::new();
        let pd_dir = setup.dir.join("pd");
        std::fs::create_dir_all(&pd_dir).map_err(|e| format!("{}: {e}", pd_dir.display()))?;
        let pd_args = vec![
            "pd".into(),
            "--addr".into(),
            pd_addr.to_string(),
            "--data-dir".into(),
            path(&pd_dir.join("data")),
            "--events".into(),
            path(&pd_dir.join("events.jsonl")),
            "--config".into(),
            path(&pd_config),
        ];
        let mut pd_args = pd_args;
        let bugs: Vec<String> = setup.bugs.iter().map(|b| b.name()).collect();
        if !bugs.is_empty() {
            pd_args.extend(["--bugs".into(), bugs.join(",")]);
        }
        processes.insert(PD_NODE, Arc::new(process("pd", pd_addr, pd_args, &pd_dir)));
        let list: Vec<String> = addresses.iter().map(|(id, a)| format!("{id}={a}")).collect();
        let split_at: Vec<String> = spec.split_keys.iter().map(|k| k.iter().map(|b| format!("{b:02x}")).collect()).collect();
        for (&id, &addr) in &addresses {
            let dir = setup.dir.join(format!("store-{id}"));
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let mut args: Vec<String> = vec![
                "store".into(),
                "--id".into(),
                id.to_string(),
                "--addr".into(),
                addr.to_string(),
                "--pd".into(),
                pd_addr.to_string(),
                "--data-dir".into(),
                path(&dir.join("data")),
                "--stores".into(),
                list.join(","),
                "--config".into(),
                path(&raftstore),
                "--replicas".into(),
                spec.replicas.to_string(),
                "--events".into(),
                path(&dir.join("events.jsonl")),
            ];
            if !split_at.is_empty() {
                args.extend(["--split-at".into(), split_at.join(",")]);
            }
            if !bugs.is_empty() {
                args.extend(["--bugs".into(), bugs.join(",")]);
            }
            processes.insert(id, Arc::new(process(&format!("store-{id}"), addr, args, &dir)));
        }
        let control_ip = ip_of(net, CONTROL_NODES + 1);
        let rpc = RpcClient::bind(SocketAddr::new(control_ip, 0)).await.map_err(bind_err(format!("binding the runner's control socket on {control_ip}")))?;
        let mut wanted = Wanted::default();
        for (i, &rate) in spec.clock_rates.iter().enumerate() {
            let node = if i < spec.stores { i as u64 + 1 } else { PD_NODE };
            wanted.rates.insert(node, rate);
        }
        let control = Arc::new(Control {
            net,
            bin: setup.bin.clone(),
            processes,
            wanted: Mutex::new(wanted),
            rpc,
            controls: AtomicU32::new(1),
            stopped: AtomicBool::new(false),
        });
        LIVE.lock().unwrap().push(Arc::downgrade(&control));
        for (node, process) in &control.processes {
            process.spawn(&setup.bin, &[]).map_err(|e| format!("starting {} ({}): {e}", process.name, setup.bin.display()))?;
            control.push(*node);
        }
        let events: Arc<Mutex<Vec<TimedEvent>>> = spec.events.clone();
        let tail_state = Arc::new(Mutex::new(Tail { files: control.processes.values().map(|p| (p.events.clone(), 0)).collect() }));
        let tail = {
            let (state, events, pd_events) = (tail_state.clone(), events.clone(), spec.pd_events.clone());
            madsim::task::spawn(async move {
                loop {
                    madsim::time::sleep(TAIL_EVERY).await;
                    read_events(&state, &events, &pd_events);
                }
            })
        };
        let stores = addresses
            .iter()
            .map(|(&id, &addr)| (id, StoreSlot { id, addr, node: NodeHandle { id }, clock: RemoteClock { control: control.clone(), node: id } }))
            .collect();
        let pd = PdSlot { addr: pd_addr, node: NodeHandle { id: PD_NODE }, clock_offset_ms: Arc::default() };
        let cluster = Cluster { spec, pd, initial_regions: regions, addresses, stores, events, net_faults: control, clients: Mutex::new(0), tail, tail_state };
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    /// Waits until PD answers and every first region has elected a leader.
    async fn wait_ready(&self) -> Result<(), String> {
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        let pd = self.pd_client(ip_of(self.net_faults.net, CONTROL_NODES + 1)).await;
        loop {
            if let Some(died) = self.net_faults.processes.values().find_map(|p| p.died()) {
                return Err(died);
            }
            let topology = self.topology();
            let led = self.initial_regions.iter().all(|r| topology.leader_of(r.id).is_some());
            if led && pd.get_ts(1).await.is_ok() {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(format!(
                    "the cluster did not come up within {START_TIMEOUT:?} (PD answering, every region led); see the logs in each process's folder"
                ));
            }
            madsim::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A PD client bound on `ip`.
    pub async fn pd_client(&self, ip: IpAddr) -> PdClient {
        let rpc = RpcClient::bind(SocketAddr::new(ip, 0)).await.expect("pd client binds");
        PdClient::new(Arc::new(rpc), self.pd.addr, PdClientConfig::default())
    }

    /// `kill -9` PD (RocksDB keeps what reached the OS).
    pub fn crash_pd(&self) {
        self.net_faults.processes[&PD_NODE].kill();
    }

    /// Restarts PD, its clock moved by `clock_offset_ms`.
    pub fn restart_pd(&self, clock_offset_ms: i64) {
        self.pd.clock_offset_ms.store(clock_offset_ms, Ordering::Relaxed);
        self.net_faults.restart(PD_NODE, &["--clock-offset-ms".into(), clock_offset_ms.to_string()]);
    }

    /// A client node with an IP of its own.
    pub fn client_node(&self) -> (NodeHandle, SocketAddr) {
        let mut n = self.clients.lock().unwrap();
        *n += 1;
        let node = CLIENT_NODES + u64::from(*n);
        (NodeHandle { id: node }, SocketAddr::new(ip_of(self.net_faults.net, node), 0))
    }

    /// The nemesis's IP: a control node of its own, never cut off.
    pub fn nemesis_ip(&self) -> IpAddr {
        ip_of(self.net_faults.net, CONTROL_NODES + 2)
    }

    /// A node of the runner's own at `ip` (a control IP), never cut off.
    pub fn control_node(&self, name: &str, ip: IpAddr) -> NodeHandle {
        let k = match ip {
            IpAddr::V4(ip) => u32::from(ip.octets()[3]),
            IpAddr::V6(_) => 1,
        };
        tracing::debug!(name, k, "control node");
        if self.net_faults.controls.fetch_max(k, Ordering::SeqCst) < k {
            for &node in self.net_faults.processes.keys() {
                self.net_faults.push(node);
            }
        }
        NodeHandle { id: CONTROL_NODES + u64::from(k) }
    }

    /// Connects a raw client (the runner's own, on a client's IP).
    pub async fn raw_client(&self, local: SocketAddr, cfg: ClientConfig) -> RawClient {
        super::connect_client(&self.spec, &self.addresses, self.pd_client(local.ip()).await, local, cfg).await
    }

    /// `kill -9` the store (RocksDB keeps what reached the OS).
    pub fn crash(&self, store_id: StoreId) {
        self.net_faults.processes[&store_id].kill();
    }

    pub fn restart(&self, store_id: StoreId) {
        self.net_faults.restart(store_id, &[]);
    }

    /// `SIGSTOP`: the process stops running until [`Cluster::resume`].
    pub fn pause(&self, store_id: StoreId) {
        let process = &self.net_faults.processes[&store_id];
        process.paused.store(true, Ordering::SeqCst);
        process.signal(libc::SIGSTOP);
    }

    pub fn resume(&self, store_id: StoreId) {
        let process = &self.net_faults.processes[&store_id];
        process.paused.store(false, Ordering::SeqCst);
        process.signal(libc::SIGCONT);
    }

    /// Drops everything node `a` sends to node `b` (one direction).
    pub fn clog_link_nodes(&self, a: NodeId, b: NodeId) {
        self.net_faults.clog(a, b, true);
    }

    pub fn unclog_link_nodes(&self, a: NodeId, b: NodeId) {
        self.net_faults.clog(a, b, false);
    }

    /// The regions and leaders as the stores have reported them so far.
    pub fn topology(&self) -> Topology {
        let events = self.events.lock().unwrap();
        Topology::from_events(events.iter().map(|e| &e.event))
    }

    pub fn leader_of(&self, region_id: u64) -> Option<StoreId> {
        self.topology().leader_of(region_id)
    }

    /// A region's data in every data CF, as the store's kv engine holds it
    /// now (asked over the admin RPC; empty if the store does not answer).
    pub async fn region_data(&self, store_id: StoreId, region: &Region) -> Vec<(Cf, KvPair)> {
        let request = AdminRequest::RegionData { start_key: region.start_key.clone(), end_key: region.end_key.clone() };
        match self.net_faults.admin(self.addresses[&store_id], request).await {
            Ok(AdminReply::Data(data)) => data
                .into_iter()
                .filter_map(|(cf, key, value)| simkv::engine::DATA_CFS.into_iter().find(|c| c.name() == cf).map(|cf| (cf, (key, value))))
                .collect(),
            other => {
                // The caller compares again until its deadline.
                tracing::debug!(store = store_id, region = region.id, answer = ?other, "region data not read");
                Vec::new()
            }
        }
    }

    /// Reads what the event files hold now, then every event recorded,
    /// in time order.
    pub fn events(&self) -> Vec<TimedEvent> {
        read_events(&self.tail_state, &self.events, &self.spec.pd_events);
        let mut events = self.events.lock().unwrap().clone();
        events.sort_by_key(|e| e.at);
        events
    }

    pub fn digest(&self) -> u64 {
        events_fingerprint(&self.events())
    }

    /// Ends the run: stops the fault pushes and the event reader, reads the
    /// event files a last time (in time order), and kills every process.
    pub fn stop(&self) {
        self.net_faults.stopped.store(true, Ordering::SeqCst);
        self.tail.abort();
        for process in self.net_faults.processes.values() {
            process.kill();
        }
        read_events(&self.tail_state, &self.events, &self.spec.pd_events);
        self.events.lock().unwrap().sort_by_key(|e| e.at);
        self.spec.pd_events.lock().unwrap().sort_by_key(|e| e.0);
    }

    /// Each process's name, log and event file.
    pub fn process_files(&self) -> Vec<(String, PathBuf, PathBuf)> {
        self.net_faults.processes.values().map(|p| (p.name.clone(), p.log.clone(), p.events.clone())).collect()
    }

    /// Ends the run's cluster before its report is made: a process that
    /// died by itself (a panic, a fail-stop) is a failure of its own, then
    /// every process is stopped and the event files read to their end.
    pub fn finish(&self) -> Option<crate::checker::Failure> {
        let died: Vec<String> = self.net_faults.processes.values().filter_map(|p| p.died()).collect();
        self.stop();
        (!died.is_empty()).then(|| crate::checker::Failure::new(crate::checker::Checker::Panic, died.join("\n")))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn process(name: &str, addr: SocketAddr, args: Vec<String>, dir: &Path) -> Process {
    Process {
        name: name.into(),
        addr,
        args,
        events: dir.join("events.jsonl"),
        log: dir.join("log.txt"),
        child: Mutex::new(None),
        paused: AtomicBool::new(false),
        push: futures::lock::Mutex::new(()),
    }
}

/// The second octet of this run's addresses: spread by process id and a
/// counter, so that runs side by side on one machine rarely share one
/// (ports are free ones anyway).
fn pick_net() -> u8 {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let n = std::process::id().wrapping_mul(31).wrapping_add(RUNS.fetch_add(1, Ordering::SeqCst));
    10 + (n % 240) as u8
}

/// Reads the new complete lines of every event file into the run's lists.
fn read_events(state: &Mutex<Tail>, events: &Mutex<Vec<TimedEvent>>, pd_events: &Mutex<Vec<crate::checker::pd::TimedPdEvent>>) {
    let start_unix = epoch().1;
    let mut state = state.lock().unwrap();
    for (path, offset) in &mut state.files {
        let Ok(mut file) = std::fs::File::open(&*path) else { continue };
        if file.seek(std::io::SeekFrom::Start(*offset)).is_err() {
            continue;
        }
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_err() {
            continue;
        }
        let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else { continue };
        let text = String::from_utf8_lossy(&bytes[..=end]);
        *offset += end as u64 + 1;
        // Line by line: a line torn by a kill has the restarted process's
        // first line glued to it; that one line is lost, no other.
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<simkv::event_log::EventLine>(line) {
                Ok(line) => {
                    let at = Duration::from_nanos(line.at_unix_ns.saturating_sub(start_unix));
                    match line.event {
                        Logged::Store(event) => events.lock().unwrap().push(TimedEvent { at, event }),
                        Logged::Pd(event) => pd_events.lock().unwrap().push((at, event)),
                    }
                }
                Err(e) => tracing::warn!(file = %path.display(), error = %e, "an event line torn by a kill, left out"),
            }
        }
    }
}
