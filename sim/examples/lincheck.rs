//! Checks history files one by one and prints each verdict with its wall time;
//! with `--generate OPS CONCURRENCY KEYS UNKNOWN% VALUES SEEDS`, checks generated
//! invalid and valid histories instead.
use simkv_sim::checker::linearizability::{check, Verdict};
use simkv_sim::history::generate::{register_history, Shape};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--generate") {
        let n: Vec<u64> = args[1..].iter().map(|a| a.parse().expect("a number")).collect();
        let shape = Shape { ops: n[0] as usize, concurrency: n[1] as usize, keys: n[2] as usize, unknown_percent: n[3], values: n[4] };
        for seed in 0..n[5] {
            for valid in [true, false] {
                let h = register_history(seed, shape, valid);
                let t = std::time::Instant::now();
                let v = check(&h);
                println!("seed {seed} valid {valid}: verdict ok={} {:?}", v.is_ok(), t.elapsed());
            }
        }
        return;
    }
    for path in args {
        let text = std::fs::read_to_string(&path).unwrap();
        let Ok(h) = simkv_sim::history::formats::parse(&text) else { continue };
        let repeat: u32 = std::env::var("REPEAT").ok().and_then(|r| r.parse().ok()).unwrap_or(1);
        let t = std::time::Instant::now();
        let mut v = check(&h);
        for _ in 1..repeat {
            v = check(&h);
        }
        let t = t.elapsed() / repeat;
        let key = match &v {
            Verdict::NotLinearizable(v) => v.key.clone(),
            _ => String::new(),
        };
        println!("{path} ops {} ok {} key {key} {:?}", h.ops.len(), v.is_ok(), t);
    }
}
