//! `timeline.html`: a run drawn as one self-contained page (inline SVG and
//! one line of script that scrolls to the failure; nothing fetched), for a
//! person to open in a browser.
//!
//! Time runs left to right and the drawing takes the window's width. A lane
//! per client shows each of its operations as a bar from invocation to
//! completion (a client that met an unknown outcome goes on as a new process,
//! as Jepsen's do: the lane's label lists its process ids, the names the
//! checkers' explanations use), coloured by outcome (ok green, a failed
//! compare light green, failed red, unknown orange until the client stopped
//! waiting and went on) and labelled with its key and value when it is wide
//! enough. A nemesis lane on top shows every fault with its description. A
//! lane per store (and one for PD) shows the faults that touched it as spans
//! and leader changes as ticks. Every bar and tick has a tooltip in user
//! terms (key, value, outcome, the store that answered). A failed checker's
//! explanation heads the page; the operations it names stand out — the one
//! that cannot be placed in magenta under a marker, the others of its window
//! outlined — and the page opens scrolled to it.

use crate::checker::Checker;
use crate::history::{Call, Outcome};
use crate::run::RunReport;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The drawing's own width; the page scales it to the window.
const WIDTH: f64 = 1600.0;
const LEFT: f64 = 190.0;
const LANE: f64 = 16.0;

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A fault span parsed from the run's timeline lines.
struct Span {
    start_ms: u64,
    end_ms: Option<u64>,
    what: String,
}

fn seconds_of(line: &str) -> Option<u64> {
    let t: f64 = line.split_whitespace().next()?.strip_suffix('s')?.parse().ok()?;
    Some((t * 1000.0) as u64)
}

/// Faults from the timeline: "T s fault #i starts: what" to "T s fault #i healed"
/// (or to the liveness phase, which heals everything).
fn fault_spans(timeline: &[String]) -> Vec<Span> {
    let mut open: BTreeMap<String, usize> = BTreeMap::new();
    let mut spans: Vec<Span> = Vec::new();
    for line in timeline {
        let Some(at) = seconds_of(line) else { continue };
        if let Some(rest) = line.split("fault #").nth(1) {
            let id: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Some(what) = rest.split_once("starts: ").map(|(_, w)| w.to_string()) {
                open.insert(id, spans.len());
                spans.push(Span { start_ms: at, end_ms: None, what });
            } else if rest.contains("healed") {
                if let Some(i) = open.remove(&id) {
                    spans[i].end_ms = Some(at);
                }
            }
        } else if line.contains("liveness phase begins") {
            for (_, i) in std::mem::take(&mut open) {
                spans[i].end_ms = Some(at);
            }
        }
    }
    spans
}

/// The stores a fault's description names ("store 3", "[1, 2]"), or none (PD).
fn stores_named(what: &str, stores: u64) -> Vec<u64> {
    let mut found = Vec::new();
    let mut number = String::new();
    let flush = |number: &mut String, found: &mut Vec<u64>| {
        if let Ok(n) = number.parse::<u64>() {
            if (1..=stores).contains(&n) && !found.contains(&n) {
                found.push(n);
            }
        }
        number.clear();
    };
    let mentions_stores = what.contains("store") || what.contains('[');
    for c in what.chars() {
        if c.is_ascii_digit() {
            number.push(c);
        } else {
            flush(&mut number, &mut found);
        }
    }
    flush(&mut number, &mut found);
    if mentions_stores && !what.contains("pd") {
        found.retain(|s| what.contains(&format!("store {s}")) || what.contains('['));
        found
    } else {
        Vec::new()
    }
}

/// The page for `report`.
/// One operation drawn as a bar on its process's lane.
struct Bar {
    process: u64,
    invoke: u64,
    complete: Option<u64>,
    colour: &'static str,
    what: String,
    title: String,
    /// Named by a failure: one of the window around it.
    outlined: bool,
    /// Named by a failure as the operation it is about.
    culprit: bool,
}

/// The lane a process's operations are drawn on: its client's (a client
/// goes on as process `p + clients` after an unknown outcome), the final
/// reads', or the scans'.
fn lane_of(process: u64, clients: u64) -> u64 {
    use crate::workload::{FINAL_PROCESS, SCAN_PROCESS};
    match process {
        p if p >= SCAN_PROCESS => u64::MAX - 1,
        p if p >= FINAL_PROCESS => u64::MAX - 2,
        p => p % clients.max(1),
    }
}

/// What a register operation did, in words.
fn register_words(op: &crate::history::Operation) -> String {
    let value = |v: &Option<String>| v.as_deref().map_or("nothing (absent)".to_string(), |v| format!("{v:?}"));
    match (&op.call, &op.outcome) {
        (Call::Read, Outcome::Read(v)) => format!("read of {:?} returned {}", op.key, value(v)),
        (Call::Read, Outcome::Failed) => format!("read of {:?} failed", op.key),
        (Call::Read, _) => format!("read of {:?}, no answer", op.key),
        (Call::Write(v), Outcome::Failed) => format!("write of {v:?} to {:?} failed (did not happen)", op.key),
        (Call::Write(v), Outcome::Unknown) => format!("write of {v:?} to {:?}, outcome unknown (the client gave up waiting)", op.key),
        (Call::Write(v), _) => format!("write of {v:?} to {:?} acknowledged", op.key),
        (Call::Cas(from, to), Outcome::CasOk) => format!("compare-and-set of {:?} from {from:?} to {to:?} succeeded", op.key),
        (Call::Cas(from, to), Outcome::CasFailed) => format!("compare-and-set of {:?} from {from:?} to {to:?} found another value", op.key),
        (Call::Cas(from, to), Outcome::Unknown) => format!("compare-and-set of {:?} from {from:?} to {to:?}, outcome unknown", op.key),
        (Call::Cas(from, to), _) => format!("compare-and-set of {:?} from {from:?} to {to:?} failed (did not happen)", op.key),
        (Call::Delete, Outcome::Unknown) => format!("delete of {:?}, outcome unknown", op.key),
        (Call::Delete, Outcome::Failed) => format!("delete of {:?} failed (did not happen)", op.key),
        (Call::Delete, _) => format!("delete of {:?} acknowledged", op.key),
        (other, outcome) => format!("{other} on {:?}: {outcome}", op.key),
    }
}

const OK: &str = "#43a047";
const FAILED: &str = "#e53935";
const UNKNOWN: &str = "#ff9800";
/// The operation a failure is about.
const CULPRIT: &str = "#d500f9";

/// Every operation of the run, register and transactional alike.
fn bars(report: &RunReport) -> Vec<Bar> {
    use crate::workload::bank::history::{BankCall, BankOutcome};
    use crate::workload::list_append::history::Mop;
    use crate::workload::list_append::history::TxnOutcome;
    use crate::workload::table::history::{TableCall, TableOutcome};
    let clients = report.plan.swarm.clients;
    let window = |process: u64, invoke: u64, complete: Option<u64>| {
        let who = match lane_of(process, clients) {
            l if l == u64::MAX - 2 => format!("process {process} (the final reads)"),
            l if l == u64::MAX - 1 => format!("process {process} (a scan)"),
            l => format!("process {process} (client {l})"),
        };
        format!("{who}, {:.6}s .. {}", invoke as f64 / 1e9, complete.map_or("(no answer)".into(), |c| format!("{:.6}s", c as f64 / 1e9)))
    };
    let named: BTreeMap<(u64, u64), bool> = report.named.iter().map(|n| ((n.process, n.invoke), n.culprit)).collect();
    let mut out = Vec::new();
    for op in &report.history.ops {
        let colour = match op.outcome {
            Outcome::Failed => FAILED,
            Outcome::Unknown => UNKNOWN,
            Outcome::CasFailed => "#aed581",
            _ => OK,
        };
        let what = match (&op.call, &op.outcome) {
            (Call::Read, Outcome::Read(v)) => format!("{} = {}", op.key, v.as_deref().unwrap_or("nil")),
            (Call::Read, _) => format!("read {}", op.key),
            (Call::Write(v), _) => format!("{} := {v}", op.key),
            (Call::Cas(from, to), _) => format!("{} {from}→{to}", op.key),
            (Call::Delete, _) => format!("delete {}", op.key),
            (other, _) => format!("{} {other:?}", op.key),
        };
        let served = report.served.get(&(op.process, op.invoke)).map_or(String::new(), |a| {
            format!("; answered by store {}{} of region {}", a.store, a.peer.map_or(String::new(), |p| format!(" (peer {p})")), a.region)
        });
        let title = format!("{}{served}; {}", register_words(op), window(op.process, op.invoke, op.complete));
        let name = named.get(&(op.process, op.invoke)).copied();
        out.push(Bar {
            process: op.process,
            invoke: op.invoke,
            complete: op.complete,
            colour,
            what,
            title,
            outlined: name.is_some(),
            culprit: name == Some(true),
        });
    }
    for op in &report.bank {
        let colour = match op.outcome {
            BankOutcome::Ok | BankOutcome::Read(_) => OK,
            BankOutcome::Fail(_) => FAILED,
            BankOutcome::Info(_) => UNKNOWN,
        };
        let what = match (&op.call, &op.outcome) {
            (BankCall::Transfer { from, to, amount }, _) => format!("{from}→{to} {amount}"),
            (BankCall::Read, BankOutcome::Read(b)) => format!("read: total {}", b.values().sum::<i64>()),
            (BankCall::Read, _) => "read".into(),
        };
        let words = match (&op.call, &op.outcome) {
            (BankCall::Transfer { from, to, amount }, o) => format!("transfer of {amount} from account {from} to {to}: {o:?}"),
            (BankCall::Read, BankOutcome::Read(b)) => format!("read of every account: total {} ({b:?})", b.values().sum::<i64>()),
            (BankCall::Read, o) => format!("read of every account: {o:?}"),
        };
        let title = format!("{words}; start_ts {:?}, commit_ts {:?}; {}", op.start_ts, op.commit_ts, window(op.process, op.invoke, op.complete));
        // A read that breaks the bank's invariant is the culprit.
        let total = crate::workload::bank::client::INITIAL_BALANCE * report.plan.swarm.keys.max(2) as i64;
        let bad = matches!(&op.outcome, BankOutcome::Read(b) if b.values().sum::<i64>() != total || b.values().any(|v| *v < 0));
        out.push(Bar { process: op.process, invoke: op.invoke, complete: op.complete, colour, what, title, outlined: bad, culprit: bad });
    }
    for op in &report.table {
        let (colour, bad) = match &op.outcome {
            TableOutcome::Ok => (OK, false),
            TableOutcome::Checked { problems, .. } => (if problems.is_empty() { OK } else { FAILED }, !problems.is_empty()),
            TableOutcome::Fail(_) => (FAILED, false),
            TableOutcome::Info(_) => (UNKNOWN, false),
        };
        let what = match &op.call {
            TableCall::Insert { pk, .. } => format!("insert {pk}"),
            TableCall::Update { pk, .. } => format!("update {pk}"),
            TableCall::Delete { pk } => format!("delete {pk}"),
            TableCall::Check => "check".into(),
        };
        let title = format!("{:?}: {:?}; {}", op.call, op.outcome, window(op.process, op.invoke, op.complete));
        out.push(Bar { process: op.process, invoke: op.invoke, complete: op.complete, colour, what, title, outlined: bad, culprit: bad });
    }
    for txn in &report.list_append {
        let colour = match txn.outcome {
            TxnOutcome::Ok => OK,
            TxnOutcome::Fail => FAILED,
            TxnOutcome::Info => UNKNOWN,
        };
        let what: Vec<String> = txn
            .mops
            .iter()
            .map(|m| match m {
                Mop::Append { key, value } => format!("a{key}+{value}"),
                Mop::Read { key, values: Some(vs) } => format!("r{key}={}", vs.len()),
                Mop::Read { key, values: None } => format!("r{key}"),
            })
            .collect();
        let process = txn.process.unwrap_or_default() as u64;
        let title =
            format!("transaction {:?}: {:?} {}; {}", txn.mops, txn.outcome, txn.error.as_deref().unwrap_or(""), window(process, txn.invoke, txn.complete));
        out.push(Bar { process, invoke: txn.invoke, complete: txn.complete, colour, what: what.join(" "), title, outlined: false, culprit: false });
    }
    out
}

pub fn render(scenario_path: &str, report: &RunReport) -> String {
    let end_ms = report.stats.sim_millis.max(report.history.ops.iter().filter_map(|o| o.complete).max().unwrap_or(0) / 1_000_000).max(1);
    let x = |ms: f64| LEFT + ms / end_ms as f64 * (WIDTH - LEFT - 10.0);
    // Lanes: one per client (its processes listed), then the final reads and
    // the scans, then stores, then PD.
    let clients = report.plan.swarm.clients;
    let mut bars = bars(report);
    bars.sort_by_key(|b| (lane_of(b.process, clients), b.invoke));
    let mut processes: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for bar in &bars {
        let seen = processes.entry(lane_of(bar.process, clients)).or_default();
        if !seen.contains(&bar.process) {
            seen.push(bar.process);
        }
    }
    let lanes: BTreeMap<u64, String> = processes
        .iter()
        .map(|(&lane, ps)| {
            let name = match lane {
                l if l == u64::MAX - 2 => format!("process {} (final reads)", ps[0]),
                l if l == u64::MAX - 1 => "scans (one process per key)".to_string(),
                l => {
                    let listed: Vec<String> = ps.iter().map(u64::to_string).collect();
                    let listed = if listed.len() > 4 { format!("{},…", listed[..3].join(",")) } else { listed.join(",") };
                    format!("client {l} (process {listed})")
                }
            };
            (lane, name)
        })
        .collect();
    let lane_index: BTreeMap<u64, usize> = lanes.keys().enumerate().map(|(i, id)| (*id, i)).collect();
    // An operation without an answer ends where its client stopped waiting
    // for it: when the client's next operation began (else the run's end).
    let ends: Vec<u64> = (0..bars.len())
        .map(|i| {
            let bar = &bars[i];
            let gave_up = report.gave_up.get(&(bar.process, bar.invoke)).map(|t| t / 1_000_000);
            bar.complete.map(|c| c / 1_000_000).or(gave_up).unwrap_or_else(|| {
                let next = bars.get(i + 1).filter(|n| lane_of(n.process, clients) == lane_of(bar.process, clients));
                next.map_or(end_ms, |n| n.invoke / 1_000_000)
            })
        })
        .collect();
    let stores = report.plan.swarm.stores;
    let client_lanes = lanes.len();
    let store_lane = |store: u64| client_lanes + store as usize; // one spacer lane before stores
    let pd_lane = client_lanes + stores as usize + 1;
    // The nemesis lane (every fault) sits on top; the others follow it.
    let height = 40.0 + (pd_lane + 3) as f64 * LANE;
    // Regions a raft, region or membership failure names: their leader changes
    // are drawn red.
    let bad_regions: Vec<u64> = report
        .failures
        .iter()
        .filter(|f| matches!(f.checker, Checker::Raft | Checker::Regions | Checker::Membership))
        .flat_map(|f| {
            f.explanation.split("region ").skip(1).filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()).collect::<Vec<u64>>()
        })
        .collect();

    let mut svg = String::new();
    let _ = write!(svg, r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" font-family="monospace" font-size="9">"#);
    // Time axis, a tick a second.
    for s in 0..=end_ms / 1000 {
        let px = x((s * 1000) as f64);
        let _ = write!(svg, r##"<line x1="{px:.1}" y1="20" x2="{px:.1}" y2="{height}" stroke="#eee"/><text x="{px:.1}" y="14">{s}s</text>"##);
    }
    let nemesis_y = 24.0;
    let lane_y = |i: usize| 24.0 + (i + 1) as f64 * LANE;
    let _ = write!(svg, r#"<text x="4" y="{:.1}" font-weight="bold">nemesis</text>"#, nemesis_y + 10.0);
    for (i, name) in lanes.values().enumerate() {
        let _ = write!(svg, r#"<text x="4" y="{:.1}">{}</text>"#, lane_y(i) + 10.0, escape(name));
    }
    for store in 1..=stores {
        let _ = write!(svg, r#"<text x="4" y="{:.1}" font-weight="bold">store {store}</text>"#, lane_y(store_lane(store)) + 10.0);
    }
    let _ = write!(svg, r#"<text x="4" y="{:.1}" font-weight="bold">pd</text>"#, lane_y(pd_lane) + 10.0);
    // Operations; the ones a failure names last, on top.
    let order: Vec<usize> = (0..bars.len()).filter(|&i| !bars[i].outlined).chain((0..bars.len()).filter(|&i| bars[i].outlined)).collect();
    let mut culprit_drawn = false;
    for i in order {
        let bar = &bars[i];
        let y = lane_y(lane_index[&lane_of(bar.process, clients)]) + 2.0;
        let start = x(bar.invoke as f64 / 1e6);
        // Named operations are at least a few pixels wide, whatever their length.
        let least = if bar.outlined { 5.0 } else { 1.5 };
        let stop = x(ends[i] as f64).max(start + least);
        let (fill, outline) = match (bar.culprit, bar.outlined) {
            (true, _) => (CULPRIT, r#" stroke="black" stroke-width="2""#),
            (false, true) => (bar.colour, r##" stroke="#6a1b9a" stroke-width="2""##),
            _ => (bar.colour, ""),
        };
        let id = if bar.culprit && !culprit_drawn { r#" id="culprit""# } else { "" };
        let _ = write!(
            svg,
            r#"<rect{id} x="{start:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{fill}"{outline}><title>{}</title></rect>"#,
            stop - start,
            LANE - 4.0,
            escape(&bar.title),
        );
        if bar.culprit {
            // A marker above it, so it is found at a glance.
            let mid = (start + stop) / 2.0;
            let _ = write!(
                svg,
                r##"<polygon points="{:.1},{:.1} {:.1},{:.1} {mid:.1},{:.1}" fill="{CULPRIT}" stroke="black" stroke-width="0.5"><title>{}</title></polygon>"##,
                mid - 6.0,
                y - 9.0,
                mid + 6.0,
                y - 9.0,
                y - 1.0,
                escape(&bar.title)
            );
            culprit_drawn = true;
        }
        if stop - start > 6.0 * bar.what.len() as f64 {
            let _ = write!(svg, r#"<text x="{:.1}" y="{:.1}" fill="white">{}</text>"#, start + 2.0, y + 9.0, escape(&bar.what));
        }
    }
    // Faults on the stores they touch (or PD), and leader changes.
    for span in fault_spans(&report.timeline) {
        let (a, b) = (x(span.start_ms as f64), x(span.end_ms.unwrap_or(end_ms) as f64));
        let _ = write!(
            svg,
            r##"<rect x="{a:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#7e57c2" opacity="0.35"><title>{}</title></rect>"##,
            nemesis_y + 2.0,
            (b - a).max(2.0),
            LANE - 4.0,
            escape(&span.what)
        );
        if b - a > 6.0 * span.what.len() as f64 {
            let _ = write!(svg, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, a + 2.0, nemesis_y + 11.0, escape(&span.what));
        }
        let named = stores_named(&span.what, stores);
        let rows: Vec<usize> = if named.is_empty() { vec![pd_lane] } else { named.iter().map(|s| store_lane(*s)).collect() };
        let (a, b) = (x(span.start_ms as f64), x(span.end_ms.unwrap_or(end_ms) as f64));
        for row in rows {
            let _ = write!(
                svg,
                r##"<rect x="{a:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#9575cd" opacity="0.6"><title>{}</title></rect>"##,
                lane_y(row) + 2.0,
                (b - a).max(2.0),
                LANE - 4.0,
                escape(&span.what)
            );
        }
    }
    for &(at_ms, store, region, term) in &report.leader_changes {
        if store >= 1 && store <= stores {
            let px = x(at_ms as f64);
            let y = lane_y(store_lane(store));
            let (colour, width) = if bad_regions.contains(&region) { ("#d50000", 3.0) } else { ("#1e88e5", 1.5) };
            let _ = write!(
                svg,
                r##"<line x1="{px:.1}" y1="{y:.1}" x2="{px:.1}" y2="{:.1}" stroke="{colour}" stroke-width="{width}"><title>{:.3}s: store {store} leads region {region} (term {term})</title></line>"##,
                y + LANE,
                at_ms as f64 / 1000.0
            );
        }
    }
    // The exact events a raft or membership failure names: a red diamond on
    // the store's lane at the moment the store reported it.
    for mark in &report.marks {
        if mark.store >= 1 && mark.store <= stores {
            let (px, y) = (x(mark.at_ms as f64), lane_y(store_lane(mark.store)) + LANE / 2.0);
            // Without an operation to point at, the page opens at the first mark.
            let id = if culprit_drawn { "" } else { r#" id="culprit""# };
            culprit_drawn = true;
            let _ = write!(
                svg,
                r##"<polygon{id} points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="#d50000" stroke="#000" stroke-width="0.5"><title>{:.3}s: offending event: {}</title></polygon>"##,
                px,
                y - 6.0,
                px + 6.0,
                y,
                px,
                y + 6.0,
                px - 6.0,
                y,
                mark.at_ms as f64 / 1000.0,
                escape(&mark.what)
            );
        }
    }
    svg.push_str("</svg>");

    let plan = &report.plan;
    let mut page = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>simkv: {} seed {}</title>\n<style>body{{font-family:sans-serif;margin:16px}} pre{{background:#f6f6f6;padding:8px;white-space:pre-wrap}} .fail{{color:#c62828}}</style></head><body>\n",
        escape(&plan.scenario),
        plan.seed
    );
    let verdict = if report.passed() {
        "passed".to_string()
    } else {
        format!("<span class=\"fail\">failed: {}</span>", escape(&report.failures.iter().map(|f| f.checker.as_str()).collect::<Vec<_>>().join(", ")))
    };
    let _ = write!(page, "<h1>{} seed {} — {verdict}</h1>\n<p>{}</p>\n", escape(scenario_path), plan.seed, escape(&plan.swarm_line()));
    if bars.iter().any(|b| b.culprit) {
        let _ = writeln!(
            page,
            "<p class=\"fail\">Magenta under a marker: the operation the failure is about (the page opens scrolled to it); outlined in purple: the other operations the explanation names.</p>"
        );
    }
    let _ = writeln!(
        page,
        "<p>{} operations ({} unknown), {} faults, {} regions, {:.1} simulated s. Green: ok; light green: a compare that found another value; red: failed (did not happen); orange: unknown (until the client gave up waiting). Purple: faults; blue ticks: a store becomes a region's leader. Hover for details.</p>",
        report.stats.ops,
        report.stats.unknown,
        report.stats.faults,
        report.stats.regions,
        report.stats.sim_millis as f64 / 1000.0
    );
    if !bad_regions.is_empty() {
        let _ = writeln!(page, "<p class=\"fail\">Red ticks: leader changes of the regions the failure names.</p>");
    }
    if !report.marks.is_empty() {
        let _ = writeln!(page, "<p class=\"fail\">Red diamonds: the {} store event(s) that broke a rule (a vote, an apply, a configuration in use, a lease read); hover for the event.</p>", report.marks.len());
    }
    for f in &report.failures {
        let _ = writeln!(page, "<h2 class=\"fail\">{}</h2><pre>{}</pre>", escape(f.checker.as_str()), escape(&with_lanes(&f.explanation, clients)));
    }
    page.push_str(&svg);
    if culprit_drawn {
        page.push_str("\n<script>document.getElementById('culprit').scrollIntoView({block: 'center', inline: 'center'});</script>");
    }
    page.push_str("\n</body></html>\n");
    page
}

/// `text` with every "process N" followed by the lane it is drawn on
/// ("process 33 (client 3)", "process 1000000 (final reads)"), so an
/// explanation names what the lane labels say.
fn with_lanes(text: &str, clients: u64) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("process ") {
        let (head, tail) = rest.split_at(at + "process ".len());
        out.push_str(head);
        let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
        rest = &tail[digits.len()..];
        out.push_str(&digits);
        if let Ok(p) = digits.parse::<u64>() {
            let _ = match lane_of(p, clients) {
                l if l == u64::MAX - 2 => write!(out, " (final reads)"),
                l if l == u64::MAX - 1 => write!(out, " (a scan)"),
                l => write!(out, " (client {l})"),
            };
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations_name_the_lanes() {
        let text = "[1s .. 2s] process 33 key \"k\": read\n[3s .. never] process 1000000 key \"k\": read; process 2000004 too";
        assert_eq!(
            with_lanes(text, 5),
            "[1s .. 2s] process 33 (client 3) key \"k\": read\n[3s .. never] process 1000000 (final reads) key \"k\": read; process 2000004 (a scan) too"
        );
    }

    #[test]
    fn faults_are_parsed_with_the_stores_they_touch() {
        let timeline = vec![
            "   1.000s fault #0 starts: crash store 2".to_string(),
            "   2.500s fault #1 starts: partition [1, 3] | [2]".to_string(),
            "   3.000s fault #0 healed".to_string(),
            "   4.000s fault #2 starts: isolate pd".to_string(),
            "   9.000s liveness phase begins: every fault healed".to_string(),
        ];
        let spans = fault_spans(&timeline);
        assert_eq!(spans.iter().map(|s| (s.start_ms, s.end_ms)).collect::<Vec<_>>(), vec![(1000, Some(3000)), (2500, Some(9000)), (4000, Some(9000))]);
        assert_eq!(stores_named(&spans[0].what, 3), vec![2]);
        assert_eq!(stores_named(&spans[1].what, 3), vec![1, 3, 2]);
        assert_eq!(stores_named(&spans[2].what, 3), Vec::<u64>::new(), "PD's own lane");
    }
}
