//! The module rules of DESIGN.md, checked on the source: which module may use
//! which, and an acyclic import graph inside the raftstore.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The code of a file without its `#[cfg(test)]` module (tests may use
/// anything) and without comment lines (a doc link is not a use).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    text.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The names that follow `prefix` in `text` (`super::` → `apply`, `cmd`, ...),
/// including each name inside a `prefix{a, b}` group.
fn names_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        let rest = &text[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for part in inner.split(',') {
                let name: String = part.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    names.insert(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// A cycle in `graph` (edges to names outside it are ignored), if any.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(node: &str, graph: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten().filter(|n| graph.contains_key(*n)) {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_raftstore_imports_one_way() {
    let dir = src().join("raftstore");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in rust_files(&dir) {
        let module = path.file_stem().unwrap().to_string_lossy().into_owned();
        if module == "mod" {
            continue;
        }
        let text = code(&path);
        let mut uses = names_after(&text, "super::");
        uses.extend(names_after(&text, "crate::raftstore::"));
        uses.remove(&module);
        graph.insert(module, uses);
    }
    if let Some(cycle) = find_cycle(&graph) {
        panic!("raftstore import cycle: {}", cycle.join(" -> "));
    }
    // The direction the design names: the store at the top, apply pure below the peer.
    assert!(graph["store"].contains("peer"));
    assert!(graph["peer"].contains("apply") && graph["peer"].contains("snapshot"));
    for low in ["apply", "snapshot", "proposal", "router", "cmd"] {
        assert!(!graph[low].contains("peer") && !graph[low].contains("store"), "{low} must not import peer or store: {:?}", graph[low]);
    }
    assert!(!graph["apply"].iter().any(|m| ["raft_node", "storage", "snapshot", "router"].contains(&m.as_str())), "apply is pure: {:?}", graph["apply"]);
}

#[test]
fn modules_use_only_what_the_design_allows() {
    // Each module, and what it must never use (DESIGN.md, "Which module may
    // use which"): the ground floor (meta, codec, proto) nothing above it;
    // engine none of the layers on top; mvcc is pure logic over engine
    // snapshots; pd learns about regions only from heartbeats; clients know
    // the wire, never a store's insides; the transport carries bytes.
    let forbidden: &[(&str, &[&str])] = &[
        ("meta", &["engine", "raftstore", "server", "client", "pd", "mvcc", "transport", "rpc", "proto", "codec", "table"]),
        ("client", &["raftstore", "server", "mvcc", "engine", "pd", "table"]),
        ("pd", &["raftstore", "server", "client", "mvcc", "table"]),
        ("server", &["client", "pd", "table"]),
        ("raftstore", &["server", "client", "table"]),
        ("transport", &["raftstore", "server", "client", "pd", "mvcc", "engine", "table"]),
        ("proto", &["raftstore", "server", "client", "engine", "transport", "rpc"]),
        ("rpc", &["raftstore", "server", "client"]),
        ("codec", &["raftstore", "server", "client", "engine", "proto"]),
        ("engine", &["raftstore", "server", "client", "proto"]),
        ("mvcc", &["raftstore", "server", "client", "transport", "rpc", "pd", "table"]),
    ];
    let mut broken = Vec::new();
    for (module, banned) in forbidden {
        let path = src().join(module);
        let files = if path.is_dir() { rust_files(&path) } else { vec![src().join(format!("{module}.rs"))] };
        for file in files {
            let used = names_after(&code(&file), "crate::");
            for name in used.iter().filter(|n| banned.contains(&n.as_str())) {
                broken.push(format!("{} uses crate::{name}", file.strip_prefix(src()).unwrap().display()));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_checks_see_what_they_look_for() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert_eq!(find_cycle(&graph(&[("store", "peer"), ("peer", "apply"), ("store", "apply")])), None);
    assert_eq!(find_cycle(&graph(&[("store", "peer"), ("peer", "apply"), ("apply", "store")])).unwrap(), ["apply", "store", "peer", "apply"]);
    assert_eq!(names_after("use super::{a, b::c};\nuse super::d;", "super::"), ["a", "b", "d"].iter().map(|s| s.to_string()).collect());
    assert_eq!(names_after("crate::raftstore::peer::X", "crate::raftstore::"), ["peer".to_string()].into());
}

#[test]
fn the_store_knows_nothing_of_its_tester() {
    let broken: Vec<String> = rust_files(&src())
        .into_iter()
        .filter(|file| code(file).contains("simkv_sim"))
        .map(|file| file.strip_prefix(src()).unwrap().display().to_string())
        .collect();
    assert!(broken.is_empty(), "src/ must not import the testbed: {broken:?}");
}

/// The checkers' files: `sim/src/checker/` and each workload's `check.rs`.
fn checker_files() -> Vec<PathBuf> {
    let sim = Path::new(env!("CARGO_MANIFEST_DIR")).join("sim/src");
    let mut files = rust_files(&sim.join("checker"));
    files.extend(rust_files(&sim.join("workload")).into_iter().filter(|f| f.ends_with("check.rs")));
    files
}

/// A file's path under `sim/src/`.
fn sim_name(file: &Path) -> String {
    file.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("sim/src")).unwrap().display().to_string()
}

/// In `sim/`, checkers read histories and events, never store internals:
/// from the store they may name its vocabulary (`meta`, `codec`), the data
/// replicas hold (`engine`'s pairs, `mvcc`'s lock record, which the lock
/// checker reads), and what it reports (store, PD and routing events, which
/// store answered a client, and PD's timestamp layout).
#[test]
fn checkers_read_histories_and_events_not_store_internals() {
    let allowed: &[(&str, &[&str])] = &[
        ("simkv::", &["meta", "codec", "engine", "mvcc", "raftstore", "pd", "client"]),
        ("simkv::mvcc::", &["Lock"]),
        ("simkv::raftstore::", &["StoreEvent", "events"]),
        ("simkv::pd::", &["PdEvent", "ReportKind", "events", "tso"]),
        ("simkv::client::", &["region_cache", "raw"]),
        ("simkv::client::raw::", &["Answered"]),
        ("simkv::client::region_cache::", &["RoutingEvent"]),
    ];
    let mut broken = Vec::new();
    for file in checker_files() {
        let text = code(&file);
        for (prefix, names) in allowed {
            for name in names_after(&text, prefix).into_iter().filter(|n| !names.contains(&n.as_str())) {
                broken.push(format!("{} uses {prefix}{name}", sim_name(&file)));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// Every checker with a `Rule` is in the registry the run goes through: a
/// checker written and never listed would never run.
#[test]
fn every_checker_rule_is_registered() {
    let registry = code(&Path::new(env!("CARGO_MANIFEST_DIR")).join("sim/src/checker/registry.rs"));
    let mut missing = Vec::new();
    for file in checker_files() {
        // `sim/src/checker/raft.rs` is `super::raft`; a workload's
        // `sim/src/workload/bank/check.rs` is `crate::workload::bank::check`.
        let name = sim_name(&file);
        let module = match name.strip_prefix("workload/") {
            Some(path) => format!("crate::workload::{}", path.trim_end_matches(".rs").replace('/', "::")),
            None => format!("super::{}", name.trim_start_matches("checker/").trim_end_matches(".rs")),
        };
        if code(&file).contains("pub struct Rule;") && !registry.contains(&format!("&{module}::Rule,")) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "checkers with a Rule missing from registry::ALL: {missing:?}");
    assert!(registry.matches("::Rule,").count() >= 12, "the registry lists the checkers");
}

/// The peer decides; the store does the IO (`raftstore/ready.rs`): the peer
/// awaits nothing, so what it persists and sends is what it returns.
#[test]
fn the_peer_does_no_io() {
    let text = code(&src().join("raftstore/peer.rs"));
    assert!(!text.contains(".await") && !text.contains("async fn"), "raftstore/peer.rs awaits: its IO belongs in raftstore/ready.rs");
}

/// DESIGN's determinism rules, as far as text can show them: no hash-ordered
/// collections in the store (their order could reach a message or a
/// decision), and no wall clock, OS thread or unseeded randomness anywhere in
/// `src/` or `sim/src/` except where named below, each outside the simulation.
#[test]
fn determinism_rules_hold_in_the_code() {
    let sim = Path::new(env!("CARGO_MANIFEST_DIR")).join("sim/src");
    // Lookup tables only, never iterated, in checkers that run after the simulation.
    let hash_allowed = ["sim/src/checker/linearizability.rs", "sim/src/workload/list_append/check.rs"];
    // Outside the simulation: the real build's clocks (under `cfg(not(madsim))`;
    // a real process's event stamps, the real cluster's processes and time),
    // the stall watchdog and the shrinker's watched runs (OS threads watching a
    // run from outside), the CLI's jobs and progress, the benchmarks' wall time,
    // guided exploration's loop and benchmark (its jobs, budget and progress).
    // Inside it, one measurement: coverage's CPU time (`explore/coverage.rs`),
    // kept out of the digest and of every decision.
    let wall_allowed = [
        "src/pd/server.rs",
        "src/event_log.rs",
        "sim/src/cluster/real.rs",
        "src/trace.rs",
        "sim/src/run/watch.rs",
        "sim/src/shrink.rs",
        "sim/src/main.rs",
        "sim/src/bench/",
        "sim/src/explore/mod.rs",
        "sim/src/explore/bench.rs",
        "sim/src/explore/coverage.rs",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut broken = Vec::new();
    for file in rust_files(&src()).into_iter().chain(rust_files(&sim)) {
        let name = file.strip_prefix(root).unwrap().to_string_lossy().to_string();
        let text = code(&file);
        if (text.contains("HashMap") || text.contains("HashSet")) && !hash_allowed.contains(&name.as_str()) {
            broken.push(format!("{name}: HashMap/HashSet (use BTreeMap/BTreeSet, or sort first)"));
        }
        let wall = ["std::time::Instant", "std::time::{", "SystemTime", "std::thread", "clock_gettime"].iter().filter(|w| text.contains(**w)).count();
        let unseeded = text.replace("madsim::rand::thread_rng", "").contains("thread_rng") || text.contains("rand::rng()");
        if (wall > 0 || unseeded) && !wall_allowed.iter().any(|a| name.starts_with(a)) {
            broken.push(format!("{name}: wall clock, OS thread or unseeded randomness inside the simulation"));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
