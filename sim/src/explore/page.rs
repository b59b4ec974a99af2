//! `explore.html`: what an exploration reached, as one self-contained page
//! (inline SVG, nothing fetched): coverage over runs (and the random
//! baseline's, when one ran), coverage by family, the corpus's fault mix,
//! how often each mutation was kept, the failures with their replay
//! commands, and the coverage items of the enumerable families no run
//! reached.

use super::{Explorer, Point};
use crate::explore::coverage::Coverage;
use crate::timeline_html::escape;
use std::collections::BTreeMap;
use std::fmt::Write as _;

const W: f64 = 900.0;
const H: f64 = 320.0;
const PAD: f64 = 50.0;

/// The page for `explorer`, with `random`'s curve and coverage beside it.
pub fn page(explorer: &Explorer, random: Option<&Explorer>) -> String {
    let mut out = String::new();
    let s = &explorer.scenario;
    let _ = write!(
        out,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>explore {}</title><style>\
         body{{font-family:sans-serif;margin:24px;max-width:1100px}} table{{border-collapse:collapse}} \
         td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}} code{{background:#f4f4f4}} \
         .bar{{background:#4a7bd0;height:10px;display:inline-block}}</style></head><body>",
        escape(&s.name)
    );
    let _ = write!(
        out,
        "<h1>Guided exploration of <code>{}</code></h1><p>seed {}, {} runs, {} coverage items, {} plans in the corpus, {} failures.</p>",
        escape(&explorer.scenario_path),
        explorer.options.seed,
        explorer.runs,
        explorer.hits.len(),
        explorer.corpus.len(),
        explorer.failures.len()
    );
    failures(&mut out, explorer);
    out.push_str("<h2>Coverage over runs</h2>");
    let mut curves = vec![("guided", "#1f5fbf", explorer.curve.as_slice())];
    if let Some(r) = random {
        curves.push(("random", "#c0392b", r.curve.as_slice()));
        let _ = write!(out, "<p>After {} runs: guided {} items, random {} items ({} runs).</p>", explorer.runs, explorer.hits.len(), r.hits.len(), r.runs);
    }
    plot(&mut out, &curves);
    families(&mut out, explorer, random);
    fault_mix(&mut out, explorer);
    mutations(&mut out, explorer);
    let never = explorer.never_reached();
    let _ = write!(out, "<h2>Never reached ({})</h2><p>Items of the families that can be listed in advance (each fault kind the scenario weighs, at an election, a membership change, a split, a snapshot taken and a lease read; each buggify site the scenario allows) that no run reached.</p><p>", never.len());
    for item in &never {
        let _ = write!(out, "<code>{}</code> ", escape(item));
    }
    out.push_str("</p>");
    corpus(&mut out, explorer);
    out.push_str("</body></html>\n");
    out
}

fn failures(out: &mut String, e: &Explorer) {
    if e.failures.is_empty() {
        return;
    }
    out.push_str("<h2>Failures</h2><ul>");
    for f in &e.failures {
        let _ = write!(out, "<li>run {} ({:.0} s): <b>{}</b>: {}", f.run, f.wall_secs, escape(&f.checker), escape(f.explanation.lines().next().unwrap_or("")));
        if let Some(dir) = &f.dir {
            let plan = dir.join("plan.toml");
            let _ = write!(out, "<br>replay: <code>{}</code>", escape(&super::replay_command(&e.scenario_path, f.plan.seed, &plan)));
        }
        out.push_str("</li>");
    }
    out.push_str("</ul>");
}

fn plot(out: &mut String, curves: &[(&str, &str, &[Point])]) {
    let max_runs = curves.iter().flat_map(|c| c.2.iter().map(|p| p.runs)).max().unwrap_or(1).max(1) as f64;
    let max_cov = curves.iter().flat_map(|c| c.2.iter().map(|p| p.coverage)).max().unwrap_or(1).max(1) as f64;
    let x = |r: u64| PAD + (W - 2.0 * PAD) * r as f64 / max_runs;
    let y = |c: usize| H - PAD + -(H - 2.0 * PAD) * c as f64 / max_cov;
    let _ = write!(out, "<svg viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" xmlns=\"http://www.w3.org/2000/svg\">");
    let _ = write!(
        out,
        "<line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#333\"/><line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{b}\" stroke=\"#333\"/>",
        b = H - PAD,
        r = W - PAD
    );
    let _ = write!(out, "<text x=\"{}\" y=\"{}\" font-size=\"12\">runs ({max_runs:.0})</text>", W / 2.0, H - 15.0);
    let _ = write!(out, "<text x=\"5\" y=\"{}\" font-size=\"12\">items ({max_cov:.0})</text>", PAD - 10.0);
    for (i, (name, colour, points)) in curves.iter().enumerate() {
        let path: Vec<String> = points.iter().map(|p| format!("{:.1},{:.1}", x(p.runs), y(p.coverage))).collect();
        let _ = write!(out, "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>", path.join(" "));
        let _ = write!(out, "<text x=\"{}\" y=\"{}\" font-size=\"13\" fill=\"{colour}\">{name}</text>", PAD + 10.0, PAD + 16.0 * i as f64);
    }
    out.push_str("</svg>");
}

fn by_family(hits: &BTreeMap<String, u64>) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for item in hits.keys() {
        *n.entry(Coverage::family(item).to_string()).or_default() += 1;
    }
    n
}

fn families(out: &mut String, e: &Explorer, random: Option<&Explorer>) {
    let guided = by_family(&e.hits);
    let baseline = random.map(|r| by_family(&r.hits));
    out.push_str("<h2>Coverage by family</h2><table><tr><th>family</th><th>guided</th>");
    if baseline.is_some() {
        out.push_str("<th>random</th>");
    }
    out.push_str("</tr>");
    let mut names: Vec<&String> = guided.keys().collect();
    if let Some(b) = &baseline {
        names.extend(b.keys().filter(|k| !guided.contains_key(*k)));
    }
    names.sort();
    for name in names {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td>", escape(name), guided.get(name).copied().unwrap_or(0));
        if let Some(b) = &baseline {
            let _ = write!(out, "<td>{}</td>", b.get(name).copied().unwrap_or(0));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

fn fault_mix(out: &mut String, e: &Explorer) {
    let mut mix: BTreeMap<&'static str, usize> = BTreeMap::new();
    for entry in &e.corpus {
        for f in &entry.plan.faults {
            *mix.entry(f.fault.kind().name()).or_default() += 1;
        }
    }
    let most = mix.values().copied().max().unwrap_or(1).max(1);
    out.push_str("<h2>The corpus's fault mix</h2><table><tr><th>fault</th><th>in corpus plans</th><th></th></tr>");
    for (kind, n) in &mix {
        let _ = write!(out, "<tr><td>{kind}</td><td>{n}</td><td><span class=\"bar\" style=\"width:{}px\"></span></td></tr>", 300 * n / most);
    }
    out.push_str("</table>");
}

fn mutations(out: &mut String, e: &Explorer) {
    out.push_str("<h2>Mutations</h2><table><tr><th>mutation</th><th>children</th><th>kept</th></tr>");
    for (m, (made, kept)) in &e.mutations {
        let _ = write!(out, "<tr><td>{}</td><td>{made}</td><td>{kept}</td></tr>", m.name());
    }
    out.push_str("</table>");
}

fn corpus(out: &mut String, e: &Explorer) {
    out.push_str("<h2>Corpus</h2><table><tr><th>plan</th><th>made from</th><th>faults</th><th>items</th><th>rarest item</th></tr>");
    for entry in &e.corpus {
        let rarest = entry.coverage.items.iter().min_by_key(|i| (e.hits.get(*i).copied().unwrap_or(0), (*i).clone()));
        let _ = write!(
            out,
            "<tr><td>{:06}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code> ({} runs)</td></tr>",
            entry.id,
            escape(&entry.origin),
            entry.plan.faults.len(),
            entry.coverage.len(),
            escape(rarest.map_or("", String::as_str)),
            rarest.and_then(|i| e.hits.get(i)).copied().unwrap_or(0)
        );
    }
    out.push_str("</table>");
}
