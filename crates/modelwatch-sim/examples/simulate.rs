//! `modelwatch simulate` without building the rest of the workspace:
//!
//! ```text
//! cargo run --release -p modelwatch-sim --example simulate -- --out /tmp/sim.csv
//! ```

use clap::Parser;

/// Simulate card transactions and write featurised training data as CSV.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    simulate: modelwatch_sim::cli::SimulateArgs,
}

fn main() -> anyhow::Result<()> {
    modelwatch_sim::cli::run(&Args::parse().simulate)
}
