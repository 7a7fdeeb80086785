//! The `modelwatch` command. A thin main: the logic lives in the library crates.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// ML-model observability: serve a model with its metrics, generate the Prometheus
/// rules and Grafana dashboards, and tell in 10 seconds whether the model is healthy.
#[derive(Debug, Parser)]
#[command(name = "modelwatch", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the metric schema as Markdown (the source of docs/metrics.md)
    Schema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Schema => {
            print!("{}", modelwatch::schema::metrics_markdown());
            ExitCode::SUCCESS
        }
    }
}
