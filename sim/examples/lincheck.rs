//! Checks history files one by one and prints each verdict with its wall time.
fn main() {
    for path in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&path).unwrap();
        let Ok(h) = simkv_sim::history::formats::parse(&text) else { continue };
        let t = std::time::Instant::now();
        let v = simkv_sim::checker::linearizability::check(&h);
        let key = match &v { simkv_sim::checker::linearizability::Verdict::NotLinearizable(v) => v.key.clone(), _ => String::new() };
        eprintln!("{path} ops {} ok {} key {key} {:?}", h.ops.len(), v.is_ok(), t.elapsed());
    }
}
