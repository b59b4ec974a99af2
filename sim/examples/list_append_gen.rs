//! Writes a generated list-append history (see `workload::list_append::generate`) to
//! stdout: `cargo run --release -p simkv-sim --example list_append_gen -- TXNS KEYS CONCURRENCY [KIND...]`.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let plant: Vec<&str> = args.iter().skip(3).map(String::as_str).collect();
    print!("{}", simkv_sim::workload::list_append::generate::list_append_history(7, num(0, 1000), num(1, 10), num(2, 10), &plant));
}
