//! Framed messages between nodes.
//!
//! Every message crosses the wire as bytes that we encode ourselves, in the
//! simulator too, so codec bugs cannot hide behind madsim's in-memory delivery. A
//! frame is `MAGIC | VERSION | bincode(Frame)`; anything else is rejected with a
//! [`WireError`] and the receiver keeps serving.
//!
//! Delivery is datagram-like: a frame may be lost, delayed or reordered (the
//! simulator does all three), and every protocol above survives that by design:
//! raft retransmits, RPC callers time out and retry. Sending never blocks the
//! caller: each destination has a bounded outbox drained by its own task, and a
//! frame that finds the outbox full is dropped and counted.
//!
//! The same code runs on madsim's simulated network and, in the real build, on
//! tokio TCP connections (one per destination, reconnected after failures).

use crate::meta::{Peer, RegionEpoch, RegionId};
use futures::channel::mpsc;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use thiserror::Error;

const MAGIC: u8 = 0x5b;
const VERSION: u8 = 2;
/// The largest frame accepted; bigger payloads (snapshots) travel in chunks.
pub const MAX_FRAME_BYTES: usize = 8 << 20;
/// Frames queued per destination before new ones are dropped.
pub const OUTBOX_CAPACITY: usize = 4096;

/// A raft message with the routing information the receiving store needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftEnvelope {
    pub region_id: RegionId,
    pub from: Peer,
    pub to: Peer,
    pub epoch: RegionEpoch,
    /// The sender's region bounds: a store that hosts no peer of the region
    /// yet decides from them whether it may create one.
    pub start_key: Vec<u8>,
    pub end_key: Vec<u8>,
    /// `eraftpb::Message`, protobuf-encoded; empty for a tombstone notice.
    pub message: Vec<u8>,
    /// A tombstone notice: the sender's region (at `epoch`) no longer has peer
    /// `to`, which destroys itself if its own epoch is older.
    pub tombstone: bool,
}

impl RaftEnvelope {
    /// A raft message (protobuf bytes) from `from` to `to`, carrying the
    /// sender's view of `region`.
    pub fn new(region: &crate::meta::Region, from: Peer, to: Peer, message: Vec<u8>) -> RaftEnvelope {
        RaftEnvelope {
            region_id: region.id,
            from,
            to,
            epoch: region.epoch,
            start_key: region.start_key.clone(),
            end_key: region.end_key.clone(),
            message,
            tombstone: false,
        }
    }

    /// A store-liveness keepalive from store `from` to store `to`: it names
    /// no region (region 0) and carries no message. See
    /// `raftstore::hibernate`.
    pub fn keepalive(from: crate::meta::StoreId, to: crate::meta::StoreId) -> RaftEnvelope {
        let (from, to) = (Peer::voter(0, from), Peer::voter(0, to));
        RaftEnvelope { region_id: 0, from, to, epoch: RegionEpoch::default(), start_key: vec![], end_key: vec![], message: vec![], tombstone: false }
    }

    pub fn is_keepalive(&self) -> bool {
        self.region_id == 0
    }

    /// A tombstone notice: `region` (the sender's, newer) no longer has `to`.
    pub fn tombstone(region: &crate::meta::Region, from: Peer, to: Peer) -> RaftEnvelope {
        RaftEnvelope { tombstone: true, ..RaftEnvelope::new(region, from, to, Vec::new()) }
    }
}

/// One piece of a raft message too large for a frame (a snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    pub region_id: RegionId,
    pub from: Peer,
    pub to: Peer,
    pub epoch: RegionEpoch,
    pub start_key: Vec<u8>,
    pub end_key: Vec<u8>,
    /// Identifies the snapshot: (term, index) of its metadata.
    pub snapshot: (u64, u64),
    pub seq: u32,
    pub total: u32,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Raft messages for regions on one store, batched.
    Raft(Vec<RaftEnvelope>),
    SnapshotChunk(SnapshotChunk),
    /// An RPC request; `payload` is the service's own encoding.
    Request {
        id: u64,
        payload: Vec<u8>,
    },
    Response {
        id: u64,
        payload: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("frame of {len} bytes is over the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge { len: usize },
    #[error("frame starts with {found:02x?}, not magic {MAGIC:#04x} version {VERSION}")]
    BadHeader { found: Vec<u8> },
    #[error("frame body does not decode: {0}")]
    BadBody(String),
}

impl Frame {
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = vec![MAGIC, VERSION];
        bincode::serialize_into(&mut buf, self).expect("frames always serialize");
        buf
    }

    pub fn decode(bytes: &[u8]) -> Result<Frame, WireError> {
        if bytes.len() > MAX_FRAME_BYTES {
            return Err(WireError::TooLarge { len: bytes.len() });
        }
        if bytes.len() < 2 || bytes[0] != MAGIC || bytes[1] != VERSION {
            return Err(WireError::BadHeader { found: bytes.iter().take(2).copied().collect() });
        }
        use bincode::Options;
        bincode::options().with_fixint_encoding().with_limit(MAX_FRAME_BYTES as u64).deserialize(&bytes[2..]).map_err(|e| WireError::BadBody(e.to_string()))
    }
}

/// Counters for what the transport dropped; read by traces and tests.
#[derive(Debug, Default)]
pub struct TransportStats {
    pub sent: AtomicU64,
    pub dropped_outbox_full: AtomicU64,
    pub dropped_oversized: AtomicU64,
    pub rejected_malformed: AtomicU64,
}

/// Which kind of traffic a frame is, so that faults can treat them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// Raft messages and snapshot chunks between stores.
    Raft,
    /// Requests and responses between clients and stores.
    Client,
}

impl Frame {
    pub fn traffic(&self) -> Traffic {
        match self {
            Frame::Raft(_) | Frame::SnapshotChunk(_) => Traffic::Raft,
            Frame::Request { .. } | Frame::Response { .. } => Traffic::Client,
        }
    }
}

pub use crate::proto::{LinkFaults, ProcessFaults};

/// How much later than the delay range a duplicated frame's copy may arrive.
pub const DUPLICATE_LATE_MS: u64 = 300;

/// Faults the testbed injects into our transport, per kind of traffic. Only the
/// simulated network honours them (draws come from the run's seed); one value is
/// shared by every node of a simulated cluster and changed while it runs.
#[cfg(madsim)]
#[derive(Debug, Default)]
pub struct NetFaults {
    raft: Mutex<LinkFaults>,
    client: Mutex<LinkFaults>,
}

#[cfg(madsim)]
impl NetFaults {
    pub fn set(&self, traffic: Traffic, faults: LinkFaults) {
        *self.slot(traffic).lock().expect("net faults lock") = faults;
    }

    pub fn get(&self, traffic: Traffic) -> LinkFaults {
        *self.slot(traffic).lock().expect("net faults lock")
    }

    fn slot(&self, traffic: Traffic) -> &Mutex<LinkFaults> {
        match traffic {
            Traffic::Raft => &self.raft,
            Traffic::Client => &self.client,
        }
    }
}

/// A frame waiting to be sent: its kind, its bytes, the request id when it is
/// a request (so that a request that could not be sent at all can be failed at
/// once, see [`Transport::on_not_sent`]), and, in simulation, the faults it
/// suffers when they were decided already (a raft batch's messages are lost
/// and duplicated one by one, see [`Transport::send`]).
type Queued = (Traffic, Vec<u8>, Option<u64>, Option<FaultsDecided>);

/// The faults a frame suffers when they were decided before it was queued.
#[cfg(madsim)]
type FaultsDecided = LinkFaults;
#[cfg(not(madsim))]
type FaultsDecided = std::convert::Infallible;

/// A destination's queue of frames waiting to be sent.
type Outbox = mpsc::Sender<Queued>;

/// Told `(destination, request id)` of a request frame that never left this
/// node (the destination refused the connection, or was found down moments
/// ago): its caller need not wait out a timeout, and may retry elsewhere.
pub type NotSentHook = Box<dyn Fn(SocketAddr, u64) + Send + Sync>;

struct Inner {
    net: net::Net,
    outboxes: Mutex<BTreeMap<SocketAddr, Outbox>>,
    stats: TransportStats,
    not_sent: Mutex<Vec<NotSentHook>>,
    #[cfg(madsim)]
    faults: Option<Arc<NetFaults>>,
    #[cfg(not(madsim))]
    process_faults: Arc<Mutex<ProcessFaults>>,
}

/// A node's network endpoint. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl Transport {
    #[cfg(madsim)]
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_with_faults(addr, None).await
    }

    #[cfg(not(madsim))]
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        let net = net::Net::bind(addr).await?;
        let inner =
            Inner { net, outboxes: Mutex::new(BTreeMap::new()), stats: TransportStats::default(), not_sent: Mutex::default(), process_faults: Arc::default() };
        Ok(Transport { inner: Arc::new(inner) })
    }

    /// From now on this process's frames suffer `faults` (replacing any set
    /// before; the default heals everything).
    #[cfg(not(madsim))]
    pub fn set_process_faults(&self, faults: ProcessFaults) {
        tracing::info!(?faults, "process faults set");
        *self.inner.process_faults.lock().expect("faults lock") = faults;
    }

    #[cfg(not(madsim))]
    pub fn process_faults(&self) -> ProcessFaults {
        self.inner.process_faults.lock().expect("faults lock").clone()
    }

    /// Binds a transport whose outgoing frames suffer `faults` (simulation only).
    #[cfg(madsim)]
    pub async fn bind_with_faults(addr: SocketAddr, faults: Option<Arc<NetFaults>>) -> io::Result<Self> {
        let net = net::Net::bind(addr).await?;
        let inner = Inner { net, outboxes: Mutex::new(BTreeMap::new()), stats: TransportStats::default(), not_sent: Mutex::default(), faults };
        Ok(Transport { inner: Arc::new(inner) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.net.local_addr()
    }

    pub fn stats(&self) -> &TransportStats {
        &self.inner.stats
    }

    /// Queues `frame` for `to`. Never waits; a full outbox drops the frame.
    ///
    /// In simulation, a raft batch's messages are lost and duplicated one by
    /// one, each with the probability the testbed set for raft traffic, as if
    /// each had been a datagram of its own: batching changes what is sent,
    /// not what can go wrong. (The batch is then delayed as one frame;
    /// messages inside one may still be reordered, by the buggify site
    /// `reorder-messages`.)
    pub fn send(&self, to: SocketAddr, frame: &Frame) {
        #[cfg(madsim)]
        if let (Frame::Raft(envelopes), Some(faults)) = (frame, self.inner.faults.as_ref()) {
            let faults = faults.get(Traffic::Raft);
            if faults.loss > 0.0 || faults.duplicate > 0.0 {
                return self.send_raft_messages(to, frame, envelopes, faults);
            }
        }
        let request = match frame {
            Frame::Request { id, .. } => Some(*id),
            _ => None,
        };
        self.send_encoded(to, frame.traffic(), frame.encode(), request, None);
    }

    /// A raft batch (`frame`, holding `envelopes`) under message loss or
    /// duplication: each message is lost
    /// or duplicated on its own draw; what survives goes as one frame, and the
    /// duplicates as a second frame that may arrive up to
    /// [`DUPLICATE_LATE_MS`] later than any other.
    #[cfg(madsim)]
    fn send_raft_messages(&self, to: SocketAddr, frame: &Frame, envelopes: &[RaftEnvelope], faults: LinkFaults) {
        use rand::Rng;
        // Which messages are lost, and which sent twice, by position.
        let (mut lost, mut copies) = (Vec::new(), Vec::new());
        {
            let mut rng = madsim::rand::thread_rng();
            for (i, envelope) in envelopes.iter().enumerate() {
                if faults.loss > 0.0 && rng.gen_bool(faults.loss.min(1.0)) {
                    lost.push(i);
                    continue;
                }
                if faults.duplicate > 0.0 && rng.gen_bool(faults.duplicate.min(1.0)) {
                    copies.push(envelope.clone());
                }
            }
        }
        let decided = LinkFaults { loss: 0.0, duplicate: 0.0, ..faults };
        if lost.is_empty() {
            // The usual case: the batch goes as it is, without a copy.
            self.send_encoded(to, Traffic::Raft, frame.encode(), None, Some(decided));
        } else if lost.len() < envelopes.len() {
            let kept = envelopes.iter().enumerate().filter(|(i, _)| !lost.contains(i)).map(|(_, e)| e.clone()).collect();
            self.send_encoded(to, Traffic::Raft, Frame::Raft(kept).encode(), None, Some(decided));
        }
        if !copies.is_empty() {
            let (lo, hi) = faults.delay_ms;
            let late = LinkFaults { delay_ms: (lo, hi + DUPLICATE_LATE_MS), ..decided };
            self.send_encoded(to, Traffic::Raft, Frame::Raft(copies).encode(), None, Some(late));
        }
    }

    /// Queues already-encoded bytes (tests use this to send garbage).
    pub fn send_bytes(&self, to: SocketAddr, bytes: Vec<u8>) {
        self.send_encoded(to, Traffic::Client, bytes, None, None);
    }

    /// Registers `hook` to hear of request frames that never left this node.
    /// Only the real network knows this (a refused connection); the
    /// simulated one, like UDP, never tells.
    pub fn on_not_sent(&self, hook: NotSentHook) {
        self.inner.not_sent.lock().expect("hooks lock").push(hook);
    }

    fn send_encoded(&self, to: SocketAddr, traffic: Traffic, bytes: Vec<u8>, request: Option<u64>, decided: Option<FaultsDecided>) {
        let stats = &self.inner.stats;
        if bytes.len() > MAX_FRAME_BYTES {
            stats.dropped_oversized.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%to, len = bytes.len(), "dropping oversized frame");
            return;
        }
        let mut outboxes = self.inner.outboxes.lock().expect("outbox lock");
        let outbox = outboxes.entry(to).or_insert_with(|| self.spawn_sender(to));
        match outbox.try_send((traffic, bytes, request, decided)) {
            Ok(()) => {
                stats.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                stats.dropped_outbox_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn spawn_sender(&self, to: SocketAddr) -> Outbox {
        let (tx, mut rx) = mpsc::channel::<Queued>(OUTBOX_CAPACITY);
        let inner = self.inner.clone();
        #[cfg(not(madsim))]
        let late = net::Late::start(inner.net.link(to));
        madsim::task::spawn(async move {
            let mut link = inner.net.link(to);
            while let Some((traffic, bytes, request, decided)) = rx.next().await {
                #[cfg(madsim)]
                let sent = {
                    let _ = request;
                    let faults = decided.or_else(|| inner.faults.as_ref().map(|f| f.get(traffic))).unwrap_or_default();
                    link.send(bytes, faults).await
                };
                #[cfg(not(madsim))]
                let sent = {
                    let _ = decided;
                    let (cut, link_faults) = {
                        let faults = inner.process_faults.lock().expect("faults lock");
                        let link = match traffic {
                            Traffic::Raft => faults.raft,
                            Traffic::Client => faults.client,
                        };
                        (faults.cuts_send(to), link)
                    };
                    if cut {
                        continue;
                    }
                    if link_faults != LinkFaults::default() {
                        late.plan(bytes, link_faults);
                        continue;
                    }
                    match link.send(bytes).await {
                        Err(net::SendError::NotSent(e)) => {
                            if let Some(id) = request {
                                inner.not_sent.lock().expect("hooks lock").iter().for_each(|hook| hook(to, id));
                            }
                            Err(e)
                        }
                        Err(net::SendError::MaybeSent(e)) => Err(e),
                        Ok(()) => Ok(()),
                    }
                };
                if let Err(e) = sent {
                    tracing::debug!(%to, error = %e, "send failed");
                }
            }
        });
        tx
    }

    /// Receives the next frame. A malformed frame is returned as an error (and
    /// counted) so the caller can log it and keep receiving.
    pub async fn recv(&self) -> io::Result<(Result<Frame, WireError>, SocketAddr)> {
        #[cfg(madsim)]
        let (bytes, from) = self.inner.net.recv().await?;
        #[cfg(not(madsim))]
        let (bytes, from) = loop {
            let (bytes, from) = self.inner.net.recv().await?;
            // A cut link: as if the frame never arrived.
            if !self.inner.process_faults.lock().expect("faults lock").cuts_recv(from) {
                break (bytes, from);
            }
        };
        let frame = Frame::decode(&bytes);
        if frame.is_err() {
            self.inner.stats.rejected_malformed.fetch_add(1, Ordering::Relaxed);
        }
        Ok((frame, from))
    }
}

/// The simulated network: madsim's endpoint, which may lose, delay and reorder
/// datagrams and honours clogged links and nodes.
#[cfg(madsim)]
mod net {
    use super::LinkFaults;
    use madsim::net::Endpoint;
    use std::io;
    use std::net::SocketAddr;
    use std::sync::Arc;

    const TAG: u64 = 0x51_4b56;

    pub struct Net {
        endpoint: Arc<Endpoint>,
    }

    pub struct Link {
        endpoint: Arc<Endpoint>,
        to: SocketAddr,
    }

    impl Net {
        pub async fn bind(addr: SocketAddr) -> io::Result<Net> {
            Ok(Net { endpoint: Arc::new(Endpoint::bind(addr).await?) })
        }

        pub fn local_addr(&self) -> SocketAddr {
            self.endpoint.local_addr().expect("bound endpoint has an address")
        }

        pub fn link(&self, to: SocketAddr) -> Link {
            Link { endpoint: self.endpoint.clone(), to }
        }

        /// The simulator hands over the sender's byte vector as it is: no copy.
        pub async fn recv(&self) -> io::Result<(Vec<u8>, SocketAddr)> {
            let (payload, from) = self.endpoint.recv_from_raw(TAG).await?;
            let bytes = payload.downcast::<Vec<u8>>().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "simulated payload is not bytes"))?;
            Ok((*bytes, from))
        }
    }

    impl Link {
        /// Sends, or loses, or delays (in a task of its own, so later frames may
        /// overtake it), as `faults` and the run's seed decide.
        pub async fn send(&mut self, bytes: Vec<u8>, faults: LinkFaults) -> io::Result<()> {
            use rand::Rng;
            let mut rng = madsim::rand::thread_rng();
            if faults.loss > 0.0 && rng.gen_bool(faults.loss.min(1.0)) {
                return Ok(());
            }
            let (lo, hi) = faults.delay_ms;
            if faults.duplicate > 0.0 && rng.gen_bool(faults.duplicate.min(1.0)) {
                let late = rng.gen_range(lo..=hi + super::DUPLICATE_LATE_MS);
                let (endpoint, to, copy) = (self.endpoint.clone(), self.to, bytes.clone());
                madsim::task::spawn(async move {
                    madsim::time::sleep(std::time::Duration::from_millis(late)).await;
                    let _ = endpoint.send_to_raw(to, TAG, Box::new(copy)).await;
                });
            }
            let delay = if hi > lo { rng.gen_range(lo..=hi) } else { lo };
            if delay == 0 {
                return self.endpoint.send_to_raw(self.to, TAG, Box::new(bytes)).await;
            }
            let (endpoint, to) = (self.endpoint.clone(), self.to);
            madsim::task::spawn(async move {
                madsim::time::sleep(std::time::Duration::from_millis(delay)).await;
                let _ = endpoint.send_to_raw(to, TAG, Box::new(bytes)).await;
            });
            Ok(())
        }
    }
}

/// The real network: one TCP connection per destination, opened lazily and
/// reopened after any error (frames sent while a peer is down are dropped, as the
/// simulated network would). A connection starts with the sender's listening
/// address, then carries `u32 length | frame` records.
#[cfg(not(madsim))]
mod net {
    use super::{LinkFaults, MAX_FRAME_BYTES};
    use futures::channel::mpsc;
    use futures::lock::Mutex;
    use futures::{SinkExt, StreamExt};
    use std::io;
    use std::net::SocketAddr;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
    use tokio::net::{TcpListener, TcpStream};

    const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
    /// After a failed connect, frames to that destination are dropped at
    /// once (not sent) for this long before the next attempt: a dead node
    /// costs its senders nothing, not a connect per frame.
    const RECONNECT_AFTER: Duration = Duration::from_millis(200);
    const INCOMING_CAPACITY: usize = 4096;

    /// Why a frame did not go out.
    #[derive(Debug)]
    pub enum SendError {
        /// It never left this node: no connection could be made (refused,
        /// timed out, or the destination was found down moments ago).
        NotSent(io::Error),
        /// The connection broke while or after writing it: it may have
        /// arrived.
        MaybeSent(io::Error),
    }

    pub struct Net {
        addr: SocketAddr,
        incoming: Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    }

    pub struct Link {
        from: SocketAddr,
        to: SocketAddr,
        stream: Option<BufWriter<TcpStream>>,
        /// No connect attempt before this instant (the last one failed).
        down_until: Option<tokio::time::Instant>,
    }

    impl Net {
        pub async fn bind(addr: SocketAddr) -> io::Result<Net> {
            let listener = TcpListener::bind(addr).await?;
            let addr = listener.local_addr()?;
            let (tx, rx) = mpsc::channel(INCOMING_CAPACITY);
            tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => {
                            tokio::spawn(read_connection(stream, tx.clone()));
                        }
                        Err(e) => tracing::debug!(error = %e, "accept failed"),
                    }
                }
            });
            Ok(Net { addr, incoming: Mutex::new(rx) })
        }

        pub fn local_addr(&self) -> SocketAddr {
            self.addr
        }

        pub fn link(&self, to: SocketAddr) -> Link {
            Link { from: self.addr, to, stream: None, down_until: None }
        }

        pub async fn recv(&self) -> io::Result<(Vec<u8>, SocketAddr)> {
            let mut incoming = self.incoming.lock().await;
            incoming.next().await.ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "listener stopped"))
        }
    }

    /// Reads the peer's address, then frames, until the connection ends or sends
    /// something that cannot be a frame.
    async fn read_connection(mut stream: TcpStream, mut tx: mpsc::Sender<(Vec<u8>, SocketAddr)>) {
        let _ = stream.set_nodelay(true);
        let result: io::Result<()> = async {
            let len = stream.read_u32().await? as usize;
            if len > 256 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "peer address too long"));
            }
            let mut addr = vec![0; len];
            stream.read_exact(&mut addr).await?;
            let from: SocketAddr =
                std::str::from_utf8(&addr).ok().and_then(|a| a.parse().ok()).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad peer address"))?;
            loop {
                let len = stream.read_u32().await? as usize;
                if len > MAX_FRAME_BYTES {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
                }
                let mut frame = vec![0; len];
                stream.read_exact(&mut frame).await?;
                if tx.send((frame, from)).await.is_err() {
                    return Ok(());
                }
            }
        }
        .await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection closed");
        }
    }

    /// Frames of one destination that the process's faults lose, delay or
    /// duplicate: each delayed frame waits in a task of its own (so later
    /// frames may overtake it), then goes out on a second connection.
    pub struct Late {
        tx: mpsc::UnboundedSender<Vec<u8>>,
    }

    impl Late {
        pub fn start(mut link: Link) -> Late {
            let (tx, mut rx) = mpsc::unbounded::<Vec<u8>>();
            tokio::spawn(async move {
                while let Some(bytes) = rx.next().await {
                    if let Err(e) = link.send(bytes).await {
                        tracing::debug!(to = %link.to, error = ?e, "late send failed");
                    }
                }
            });
            Late { tx }
        }

        /// Loses `bytes`, or sends them (and maybe a copy) after a delay, as
        /// `faults` draw.
        pub fn plan(&self, bytes: Vec<u8>, faults: LinkFaults) {
            use rand::Rng;
            let mut rng = madsim::rand::thread_rng();
            if faults.loss > 0.0 && rng.gen_bool(faults.loss.min(1.0)) {
                return;
            }
            let (lo, hi) = faults.delay_ms;
            if faults.duplicate > 0.0 && rng.gen_bool(faults.duplicate.min(1.0)) {
                self.after(rng.gen_range(lo..=hi + super::DUPLICATE_LATE_MS), bytes.clone());
            }
            self.after(if hi > lo { rng.gen_range(lo..=hi) } else { lo }, bytes);
        }

        fn after(&self, ms: u64, bytes: Vec<u8>) {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let _ = tx.unbounded_send(bytes);
            });
        }
    }

    impl Link {
        /// Faults are injected before this (see [`Late`]); the real network
        /// adds its own.
        pub async fn send(&mut self, bytes: Vec<u8>) -> Result<(), SendError> {
            if self.stream.is_none() {
                if self.down_until.is_some_and(|t| tokio::time::Instant::now() < t) {
                    return Err(SendError::NotSent(io::Error::new(io::ErrorKind::ConnectionRefused, "destination down (a connect just failed)")));
                }
                let connected = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.to)).await {
                    Ok(Ok(stream)) => Ok(stream),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
                };
                let stream = connected.map_err(|e| {
                    self.down_until = Some(tokio::time::Instant::now() + RECONNECT_AFTER);
                    SendError::NotSent(e)
                })?;
                self.down_until = None;
                let mut stream = BufWriter::new(stream);
                let me = self.from.to_string();
                let hello: io::Result<()> = async {
                    stream.get_ref().set_nodelay(true)?;
                    stream.write_u32(me.len() as u32).await?;
                    stream.write_all(me.as_bytes()).await
                }
                .await;
                hello.map_err(SendError::NotSent)?;
                self.stream = Some(stream);
            }
            let stream = self.stream.as_mut().expect("connected above");
            let written: io::Result<()> = async {
                stream.write_u32(bytes.len() as u32).await?;
                stream.write_all(&bytes).await?;
                stream.flush().await
            }
            .await;
            if written.is_err() {
                self.stream = None;
            }
            written.map_err(SendError::MaybeSent)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Peer;

    fn sample() -> Frame {
        Frame::Raft(vec![RaftEnvelope {
            region_id: 7,
            from: Peer::voter(1, 1),
            to: Peer::voter(2, 2),
            epoch: RegionEpoch::new(1, 3),
            start_key: b"ra".to_vec(),
            end_key: vec![],
            message: vec![1, 2, 3],
            tombstone: false,
        }])
    }

    #[test]
    fn frames_round_trip() {
        for frame in [sample(), Frame::Request { id: 9, payload: b"abc".to_vec() }, Frame::Response { id: 9, payload: vec![] }] {
            assert_eq!(Frame::decode(&frame.encode()).unwrap(), frame);
        }
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert!(matches!(Frame::decode(b""), Err(WireError::BadHeader { .. })));
        assert!(matches!(Frame::decode(b"\x00\x01rest"), Err(WireError::BadHeader { .. })));
        let mut truncated = sample().encode();
        truncated.truncate(truncated.len() - 2);
        assert!(matches!(Frame::decode(&truncated), Err(WireError::BadBody(_))));
        // A length prefix claiming gigabytes must not allocate them.
        let mut huge = vec![MAGIC, VERSION, 2, 0, 0, 0];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(Frame::decode(&huge), Err(WireError::BadBody(_))));
    }

    /// The real network's injected faults: a cut at either end, isolation
    /// with the runner's address kept, loss and delay. (Real time: the
    /// waits are short and only bound how long a dropped frame is awaited.)
    #[cfg(not(madsim))]
    #[tokio::test]
    async fn process_faults_cut_lose_and_delay_frames_in_the_real_network() {
        use std::time::{Duration, Instant};
        // Three nodes, each an IP of its own (cuts name IPs).
        let at = |ip: &str| Transport::bind(format!("{ip}:0").parse().unwrap());
        let (a, b, runner) = (at("127.0.9.1").await.unwrap(), at("127.0.9.2").await.unwrap(), at("127.0.9.3").await.unwrap());
        let ping = |n: u64| Frame::Request { id: n, payload: vec![] };
        let arrives = |t: &Transport, wait_ms: u64| {
            let t = t.clone();
            async move { tokio::time::timeout(Duration::from_millis(wait_ms), t.recv()).await.ok().map(|r| r.unwrap().0.unwrap()) }
        };
        a.send(b.local_addr(), &ping(1));
        assert_eq!(arrives(&b, 5000).await, Some(ping(1)));
        // Cut at the sender, then at the receiver.
        a.set_process_faults(ProcessFaults { send_cut: vec![b.local_addr().ip()], ..Default::default() });
        a.send(b.local_addr(), &ping(2));
        assert_eq!(arrives(&b, 300).await, None);
        a.set_process_faults(ProcessFaults::default());
        b.set_process_faults(ProcessFaults { recv_cut: vec![a.local_addr().ip()], ..Default::default() });
        a.send(b.local_addr(), &ping(3));
        assert_eq!(arrives(&b, 300).await, None);
        // Isolated, except from the runner.
        b.set_process_faults(ProcessFaults { isolated: true, keep: vec![runner.local_addr().ip()], ..Default::default() });
        a.send(b.local_addr(), &ping(4));
        runner.send(b.local_addr(), &ping(5));
        assert_eq!(arrives(&b, 2000).await, Some(ping(5)));
        assert_eq!(arrives(&b, 300).await, None);
        b.set_process_faults(ProcessFaults::default());
        // Every request lost, then every request delayed.
        let client = |f: LinkFaults| ProcessFaults { client: f, ..Default::default() };
        a.set_process_faults(client(LinkFaults { loss: 1.0, ..Default::default() }));
        a.send(b.local_addr(), &ping(6));
        assert_eq!(arrives(&b, 300).await, None);
        a.set_process_faults(client(LinkFaults { delay_ms: (400, 400), ..Default::default() }));
        let sent = Instant::now();
        a.send(b.local_addr(), &ping(7));
        assert_eq!(arrives(&b, 5000).await, Some(ping(7)));
        assert!(sent.elapsed() >= Duration::from_millis(400), "arrived after {:?}", sent.elapsed());
        // Healed: frames flow again.
        a.set_process_faults(ProcessFaults::default());
        a.send(b.local_addr(), &ping(8));
        assert_eq!(arrives(&b, 5000).await, Some(ping(8)));
    }

    #[test]
    fn encoding_is_pinned() {
        insta::assert_snapshot!("frame_encoding", crate::codec::hex(&sample().encode()));
    }
}
