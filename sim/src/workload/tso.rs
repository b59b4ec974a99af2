//! A client that asks PD for timestamps all through the run, recording each
//! one it gets with its invoke and return times (for the TSO checker).

use super::{now_ns, Shared};
use crate::checker::tso::{TsCall, TsUse};
use madsim::time::{sleep, Duration};
use std::sync::atomic::Ordering;

/// Asks for a batch of 1 to 3 timestamps every 50 to 300 ms until the run stops.
pub async fn tso_client(shared: &Shared, pd: &simkv::pd_client::PdClient, client: u64) {
    use rand::Rng;
    while !shared.stop.load(Ordering::SeqCst) {
        let (pause, count) = {
            let mut rng = madsim::rand::thread_rng();
            (rng.gen_range(50..=300), rng.gen_range(1..=3u32))
        };
        let invoke = now_ns();
        if let Ok(ts) = pd.get_ts(count).await {
            let complete = now_ns();
            // A batch is the `count` timestamps ending at `ts`.
            let mut calls = shared.recorded.ts_calls.lock().unwrap();
            calls.extend((0..count as u64).map(|i| TsCall { client, invoke, complete, ts: ts - i, used_as: TsUse::Request }));
        }
        sleep(Duration::from_millis(pause)).await;
    }
}
