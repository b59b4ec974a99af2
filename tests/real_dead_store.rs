//! A dead store costs a client nothing once it knows where the region's
//! leader is: PD and three `simkv store` processes as the README starts them
//! (one region, three replicas), a table made with `simkv table`, then each
//! store in turn killed — a follower, or the leader — and the next `simkv
//! table` commands timed. Before clients took PD's leader hint and failed a
//! refused connection at once, every command with any store down waited out
//! a 2 s request timeout on it.
//!
//! This test reads the wall clock: it is about real processes on real
//! sockets, where latency is the point. The bound (1 s a command, half the
//! request timeout a dead store used to cost) leaves room for a slow machine.
//!
//! Compiled only in the real build (`RUSTFLAGS="" cargo test -p simkv`).
#![cfg(not(madsim))]

mod common;

use common::{free_addr, Process};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn simkv(args: &[String]) -> Process {
    Process(Command::new(env!("CARGO_BIN_EXE_simkv")).args(args).env("RUST_LOG", "error").spawn().expect("simkv starts"))
}

fn store(id: u64, stores: &BTreeMap<u64, SocketAddr>, pd: SocketAddr, dir: &Path) -> Process {
    let list: Vec<String> = stores.iter().map(|(id, addr)| format!("{id}={addr}")).collect();
    simkv(&[
        "store".into(),
        "--id".into(),
        id.to_string(),
        "--addr".into(),
        stores[&id].to_string(),
        "--pd".into(),
        pd.to_string(),
        "--data-dir".into(),
        dir.join(format!("s{id}")).display().to_string(),
        "--stores".into(),
        list.join(","),
    ])
}

/// Runs `simkv table --pd PD args...`: exit code, stdout, stderr, and how long it took.
fn table(pd: SocketAddr, args: &[&str]) -> (Option<i32>, String, String, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_simkv")).args(["table", "--pd", &pd.to_string()]).args(args).env("RUST_LOG", "error").output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned(), started.elapsed())
}

/// Runs `args` until it succeeds (the cluster settling, a new leader being
/// elected), at most `within`.
fn eventually(pd: SocketAddr, args: &[&str], within: Duration) -> String {
    let started = Instant::now();
    loop {
        let (code, out, err, _) = table(pd, args);
        if code == Some(0) {
            return out;
        }
        assert!(started.elapsed() < within, "`simkv table {}` still failing after {within:?}: {err}", args.join(" "));
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn commands_do_not_wait_on_a_dead_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pd = free_addr();
    let stores: BTreeMap<u64, SocketAddr> = (1..=3).map(|id| (id, free_addr())).collect();
    let _pd = simkv(&["pd".into(), "--addr".into(), pd.to_string(), "--data-dir".into(), dir.join("pd").display().to_string()]);
    let mut running: BTreeMap<u64, Process> = stores.keys().map(|&id| (id, store(id, &stores, pd, dir))).collect();

    eventually(pd, &["create", "people", "--columns", "name,email,age", "--unique", "email", "--index", "age"], Duration::from_secs(60));
    let inserted = eventually(pd, &["insert", "people", "1", "ann", "ann@example.com", "30"], Duration::from_secs(30));
    assert!(inserted.starts_with("inserted row 1 into people (committed at ts "), "a change says what it did: {inserted:?}");
    let (code, all_up, _, _) = table(pd, &["get", "people", "1"]);
    assert_eq!((code, all_up.as_str()), (Some(0), "1: name=\"ann\" email=\"ann@example.com\" age=30\n"));

    let mut report = Vec::new();
    for victim in [1, 2, 3] {
        drop(running.remove(&victim));
        // The first command may wait for a new leader (when the victim led).
        eventually(pd, &["get", "people", "1"], Duration::from_secs(30));
        for (i, args) in [
            vec!["get", "people", "1"],
            vec!["update", "people", "1", "ann", "ann@example.com", &*format!("{}", 30 + victim)],
            vec!["find", "people", "age", &*format!("{}", 30 + victim)],
            vec!["scan", "people"],
            vec!["get", "people", "1"],
        ]
        .iter()
        .enumerate()
        {
            let (code, out, err, took) = table(pd, args);
            assert_eq!(code, Some(0), "store {victim} down, `{}`: {err}", args.join(" "));
            if args[0] == "update" {
                assert!(out.starts_with("updated row 1 of people (committed at ts "), "{out:?}");
            }
            report.push(format!("store {victim} down, command {i} `{}`: {took:?}", args.join(" ")));
            assert!(took < Duration::from_secs(1), "store {victim} down: `{}` took {took:?}\n{}", args.join(" "), report.join("\n"));
        }
        running.insert(victim, store(victim, &stores, pd, dir));
    }
    eprintln!("{}", report.join("\n"));
}
