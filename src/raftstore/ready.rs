//! The store's side of a peer's ready: every write, sync, crash point and
//! delay, in raft-rs's order. The peer (`peer.rs`) decides what to persist,
//! apply and send without doing any IO; this module does the IO and calls it
//! back.
//!
//! 1. messages that may leave before the write are queued;
//! 2. a snapshot, if the ready carries one, starts being written;
//! 3. committed entries are applied: their kv batch written, then the peer
//!    takes the new state, carries out admin results, answers proposals;
//! 4. new entries and the hard state are written to the raft engine, synced;
//! 5. then the persisted messages are queued, raft advances, and the light
//!    ready's committed entries are applied as in 3.

use super::apply::ExecResult;
use super::peer::{Effects, PeerContext, PeerFsm};
use super::router::{engine_ok, Stopped};
use crate::buggify::{self, Site};
use crate::engine::{Engine, EngineError};
use crate::planted::Bug;
use raft::eraftpb::Entry;

/// Handles the peer's ready, if it has one, in raft-rs's order; then serves
/// reads and starts a snapshot raft asked for.
pub async fn handle_ready<E: Engine>(peer: &mut PeerFsm<E>, ctx: &PeerContext<'_, E>) -> Result<Effects, Stopped> {
    let mut effects = Effects::default();
    if let Some(held) = peer.release_held() {
        apply(peer, ctx, held, &mut effects).await?;
        peer.advance_apply();
    }
    if let Some(mut ready) = peer.take_ready(ctx.events, &mut effects) {
        if let Some(snapshot) = peer.snapshot_to_apply(&ready) {
            let index = snapshot.get_metadata().index;
            ctx.snapshots.start_apply(peer.node.mut_store(), snapshot).await?;
            peer.snapshot_applying(ctx, index);
        }
        peer.take_read_states(&mut ready);
        apply(peer, ctx, ready.take_committed_entries(), &mut effects).await?;
        if let Some((batch, sync)) = peer.persist(ctx.cfg, &ready) {
            if buggify::fires(Site::FailRaftWrite) {
                return Err(Stopped::Failed("persist raft log: buggify: the raft-engine write failed".into()));
            }
            let written = match ctx.raft_engine.write(&batch, sync).await {
                // Planted bug: carry on as if the write had made it.
                Err(EngineError::Io(_)) if ctx.cfg.bugs.on(Bug::AckAfterFailedFsync) => Ok(()),
                other => other,
            };
            engine_ok(written, "persist raft log")?;
        }
        let mut light = peer.persisted(ready, ctx.events, &mut effects);
        apply(peer, ctx, light.take_committed_entries(), &mut effects).await?;
        peer.finish_ready(ctx.events);
    }
    peer.serve_reads(ctx);
    peer.maybe_generate_snapshot(ctx);
    Ok(effects)
}

/// A snapshot's data is written: the snapshot is marked done, and the
/// entries held back behind it are applied.
pub async fn on_snapshot_applied<E: Engine>(peer: &mut PeerFsm<E>, ctx: &PeerContext<'_, E>, index: u64) -> Result<Effects, Stopped> {
    let deferred = peer.snapshot_applied(ctx, index);
    ctx.snapshots.finish_apply(peer.region_id()).await?;
    let mut effects = Effects::default();
    apply(peer, ctx, deferred, &mut effects).await?;
    peer.advance_apply();
    Ok(effects)
}

/// Applies committed entries: the kv batch holding data and apply state is
/// written, then the peer takes the new state, the admin commands' results
/// are carried out, and the proposals answered.
async fn apply<E: Engine>(peer: &mut PeerFsm<E>, ctx: &PeerContext<'_, E>, entries: Vec<Entry>, effects: &mut Effects) -> Result<(), Stopped> {
    let Some(mut output) = peer.prepare_apply(ctx, entries) else {
        return Ok(());
    };
    if buggify::fires(Site::DelayApply) {
        buggify::delay_ms(10, 300).await;
    }
    for (i, (batch, sync, what)) in PeerFsm::<E>::apply_writes(ctx.cfg, &mut output).into_iter().enumerate() {
        engine_ok(ctx.kv_engine.write(&batch, sync).await, what)?;
        if i == 0 {
            // After the first write: with the planted bug, between the apply
            // state and the data it covers.
            buggify::crash_point(Site::CrashAfterApply, ctx.store_id).await;
        }
    }
    let (execs, answers) = peer.applied(output);
    for exec in execs {
        match &exec {
            ExecResult::CompactLog { old_truncated, index } => {
                engine_ok(ctx.raft_engine.write(&peer.log_gc_batch(*old_truncated, *index), false).await, "raft log gc")?;
            }
            ExecResult::Split { .. } => buggify::crash_point(Site::CrashAfterSplitApply, ctx.store_id).await,
            ExecResult::ChangePeer { .. } => {}
        }
        peer.on_exec_result(ctx, exec, effects);
    }
    peer.answer(answers);
    Ok(())
}
