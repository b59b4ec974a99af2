//! The bank's clients: open the accounts, transfer between them, read them
//! all in one snapshot, and record each as a [`BankOp`].

use super::history::{BankCall, BankOp, BankOutcome};
use crate::workload::{now_ns, think, Shared};
use simkv::client::{TxnClient, TxnError};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

pub const INITIAL_BALANCE: i64 = 100;

/// The key of account `i` of `n`, spread over the key space the cluster is
/// pre-split on.
pub fn account_key(i: u64, n: u64) -> String {
    format!("key{:03}-a{i}", i * 1000 / n.max(1))
}

/// Where the bank's keys live: every account key starts with it.
pub const PREFIX: &str = "key";

fn account_of(key: &[u8], n: u64) -> Option<u64> {
    let key = std::str::from_utf8(key).ok()?;
    let i: u64 = key.rsplit("-a").next()?.parse().ok()?;
    (account_key(i, n) == key).then_some(i)
}

fn balance(value: Option<Vec<u8>>) -> Result<i64, String> {
    let value = value.ok_or("no balance")?;
    String::from_utf8_lossy(&value).parse().map_err(|e| format!("balance {value:?}: {e}"))
}

/// Opens every account, in one transaction; retried until it commits.
pub async fn open_accounts(client: &TxnClient, accounts: u64) -> Result<(), TxnError> {
    let mut last = None;
    for _ in 0..30 {
        let attempt = async {
            let mut txn = client.begin().await?;
            if txn.get(account_key(0, accounts).as_bytes()).await?.is_some() {
                return Ok(()); // an earlier attempt whose outcome was unknown did commit
            }
            for a in 0..accounts {
                txn.set(account_key(a, accounts).as_bytes(), INITIAL_BALANCE.to_string().as_bytes());
            }
            txn.commit().await.map(|_| ())
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
        madsim::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(last.expect("attempted"))
}

/// Reads every account in one snapshot.
pub async fn read_all(client: &TxnClient, accounts: u64) -> (Option<u64>, Result<BTreeMap<u64, i64>, TxnError>) {
    let txn = match client.begin().await {
        Ok(txn) => txn,
        Err(e) => return (None, Err(e)),
    };
    let start_ts = Some(txn.start_ts());
    let end = format!("{PREFIX}~");
    let pairs = match txn.scan(PREFIX.as_bytes(), end.as_bytes(), usize::MAX).await {
        Ok(pairs) => pairs,
        Err(e) => return (start_ts, Err(e)),
    };
    let mut balances = BTreeMap::new();
    for (key, value) in pairs {
        if let Some(a) = account_of(&key, accounts) {
            match balance(Some(value)) {
                Ok(b) => {
                    balances.insert(a, b);
                }
                Err(e) => return (start_ts, Err(TxnError::Unexpected(format!("account {a}: {e}")))),
            }
        }
    }
    (start_ts, Ok(balances))
}

/// One client: transfers and whole-bank reads until the safety phase ends.
/// A client whose commit has an unknown outcome continues as a new process.
pub async fn bank_client(shared: &Shared, client: &TxnClient, c: u64) {
    use rand::Rng;
    let accounts = shared.swarm.keys.max(2);
    let clients = shared.swarm.clients.max(1);
    let mut process = c;
    while !shared.stop.load(Ordering::SeqCst) {
        let (dice, from, to, amount) = {
            let mut rng = madsim::rand::thread_rng();
            let from = rng.gen_range(0..accounts);
            let to = (from + rng.gen_range(1..accounts)) % accounts;
            (rng.gen_range(0..100u64), from, to, rng.gen_range(1..=5i64))
        };
        let invoke = now_ns();
        let op = if dice < shared.swarm.read_percent {
            let (start_ts, result) = read_all(client, accounts).await;
            let outcome = match result {
                Ok(balances) => BankOutcome::Read(balances),
                Err(e) => BankOutcome::Fail(e.to_string()),
            };
            BankOp { process, call: BankCall::Read, outcome, invoke, complete: Some(now_ns()), start_ts, commit_ts: None }
        } else {
            let (start_ts, commit_ts, outcome) = transfer(client, accounts, from, to, amount).await;
            let complete = (!matches!(outcome, BankOutcome::Info(_))).then(now_ns);
            BankOp { process, call: BankCall::Transfer { from, to, amount }, outcome, invoke, complete, start_ts, commit_ts }
        };
        let unknown = matches!(op.outcome, BankOutcome::Info(_));
        shared.record_bank(op);
        if unknown {
            process += clients;
        }
        think(shared).await;
    }
}

/// Moves `amount` from one account to another unless that overdraws it.
async fn transfer(client: &TxnClient, accounts: u64, from: u64, to: u64, amount: i64) -> (Option<u64>, Option<u64>, BankOutcome) {
    let mut txn = match client.begin().await {
        Ok(txn) => txn,
        Err(e) => return (None, None, BankOutcome::Fail(e.to_string())),
    };
    let start_ts = Some(txn.start_ts());
    let (from_key, to_key) = (account_key(from, accounts), account_key(to, accounts));
    let balances = async {
        let a = balance(txn.get(from_key.as_bytes()).await?).map_err(TxnError::Unexpected)?;
        let b = balance(txn.get(to_key.as_bytes()).await?).map_err(TxnError::Unexpected)?;
        Ok::<_, TxnError>((a, b))
    };
    let (a, b) = match balances.await {
        Ok(balances) => balances,
        Err(e) => return (start_ts, None, BankOutcome::Fail(e.to_string())),
    };
    if a < amount {
        return (start_ts, None, BankOutcome::Fail(format!("account {from} holds {a}, less than {amount}")));
    }
    txn.set(from_key.as_bytes(), (a - amount).to_string().as_bytes());
    txn.set(to_key.as_bytes(), (b + amount).to_string().as_bytes());
    match txn.commit().await {
        Ok(commit_ts) => (start_ts, Some(commit_ts), BankOutcome::Ok),
        Err(e) if e.is_definite() => (start_ts, None, BankOutcome::Fail(e.to_string())),
        Err(e) => (start_ts, None, BankOutcome::Info(e.to_string())),
    }
}
