//! `simkv-sim`: runs simkv inside the deterministic simulator.

#[cfg(not(madsim))]
fn main() {
    eprintln!("simkv-sim runs only in simulation mode: build it with `--cfg madsim` (the default in .cargo/config.toml).");
    std::process::exit(2);
}

#[cfg(madsim)]
fn main() {
    use clap::Parser;
    let cli = cli::Cli::parse();
    simkv::trace::init(simkv::trace::DEFAULT_FILTER);
    std::process::exit(cli.run());
}

#[cfg(madsim)]
mod cli {
    use clap::{Parser, Subcommand};
    use simkv_sim::bench;

    #[derive(Parser)]
    #[command(
        name = "simkv-sim",
        about = "Deterministic simulation testbed for simkv",
        version
    )]
    pub struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Drives a 5-store, 8-region cluster under client load for each seed and
        /// prints simulated seconds per wall second and raw ops per wall second.
        BenchRaftstore {
            /// First seed.
            #[arg(long, default_value_t = 1)]
            seed: u64,
            /// How many seeds, one run each.
            #[arg(long, default_value_t = 3)]
            seeds: u64,
            /// Simulated seconds of load per run.
            #[arg(long, default_value_t = 20)]
            sim_seconds: u64,
            /// Concurrent clients.
            #[arg(long, default_value_t = 8)]
            clients: usize,
        },
    }

    impl Cli {
        pub fn run(self) -> i32 {
            match self.command {
                Command::BenchRaftstore {
                    seed,
                    seeds,
                    sim_seconds,
                    clients,
                } => {
                    let mut total = bench::BenchTotals::default();
                    for s in seed..seed + seeds {
                        let report = bench::raftstore_load(s, sim_seconds, clients);
                        println!("{report}");
                        total.add(&report);
                    }
                    println!("{total}");
                    if total.failed_runs > 0 {
                        1
                    } else {
                        0
                    }
                }
            }
        }
    }
}
