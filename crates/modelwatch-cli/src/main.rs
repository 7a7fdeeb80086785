//! The `modelwatch` command. A thin main: the logic lives in the library crates.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
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
    /// The whole point in one command: serve the bundled model, send traffic, break
    /// things, and watch the status board and the alerts say so
    Demo(modelwatch_demo::cli::DemoArgs),
    /// Play one scenario (clean included) against a lab at your traffic rate and
    /// mixin config; report every alert that went pending or fired, and how late
    /// the scenario's alert fired
    Drill(modelwatch_demo::drill::DrillArgs),
    /// Serve a model with every ML metric recorded (API on --listen, /metrics on
    /// --metrics-listen)
    Serve(modelwatch_server::config::ServeArgs),
    /// Send simulator traffic at a steady rate, optionally with an incident scenario
    Loadgen(modelwatch_loadgen::cli::LoadgenArgs),
    /// Generate the Prometheus rules, alerts, Grafana dashboard, runbook and promtool
    /// tests (mixin/), or check that they are up to date
    Mixin(modelwatch_mixin::MixinArgs),
    /// The 10-second verdict: HEALTHY (exit 0), DEGRADED (1) or UNHEALTHY (2); 3 when
    /// it cannot judge
    Status(modelwatch_status::cli::StatusArgs),
    /// Fill a model's entity groups in the embedded feature store (`features load`)
    Features(modelwatch_server::ingest::FeaturesArgs),
    /// Build a model's reference distributions from holdout data
    Reference(modelwatch_runtime::cli::ReferenceArgs),
    /// Model card tools: `card init` writes a first card for an ONNX model
    Card(modelwatch_runtime::skeleton::CardArgs),
    /// Print the metric schema as Markdown (the source of docs/metrics.md)
    Schema,
    /// Simulate card transactions and write featurised training data as CSV
    Simulate(modelwatch_sim::cli::SimulateArgs),
    /// Serve the model-health page: the Grafana dashboard drawn live from Prometheus,
    /// with the status verdict and the firing alerts
    Ui(modelwatch_ui::cli::UiArgs),
    /// Run Prometheus and Alertmanager on this machine (up, down, status), or
    /// generate the Kubernetes objects from the mixin
    Stack(modelwatch_stack::cli::StackArgs),
    /// Synthesize a year of the bundled model's metrics (seasons, two past incidents)
    /// for a long-term store to import (VictoriaMetrics, promtool)
    History(modelwatch_history::cli::HistoryArgs),
}

fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => return usage_error(e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = match cli.command {
        Command::Serve(args) => {
            let sub = matches.subcommand_matches("serve").unwrap_or(&matches);
            args.resolve(sub).and_then(serve)
        }
        Command::Demo(args) => block_on(modelwatch_demo::cli::run(&args)),
        Command::Drill(args) => block_on(modelwatch_demo::drill::run_cli(&args)),
        Command::Loadgen(args) => block_on(modelwatch_loadgen::cli::run(&args)),
        Command::Mixin(args) => modelwatch_mixin::run(&args),
        Command::Status(args) => {
            return match block_on(modelwatch_status::cli::run(&args)) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(modelwatch_status::CANNOT_JUDGE)
                }
            };
        }
        Command::Reference(args) => {
            modelwatch_runtime::cli::run_reference(&args).map(|()| ExitCode::SUCCESS)
        }
        Command::Card(args) => match &args.command {
            modelwatch_runtime::skeleton::CardCommand::Init(init) => {
                modelwatch_runtime::skeleton::run_card_init(init).map(|()| ExitCode::SUCCESS)
            }
        },
        Command::Features(args) => {
            modelwatch_server::ingest::run(&args).map(|()| ExitCode::SUCCESS)
        }
        Command::Schema => {
            print!("{}", modelwatch::schema::metrics_markdown());
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate(args) => modelwatch_sim::cli::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Stack(args) => modelwatch_stack::cli::run(&args),
        Command::Ui(args) => block_on(modelwatch_ui::cli::run(&args)),
        Command::History(args) => modelwatch_history::cli::run(&args).map(|()| ExitCode::SUCCESS),
    };
    report(result)
}

/// Help and version go to stdout with exit 0. Any other parse failure is clap's usage
/// error (exit 2), except under `status`, whose exit 2 means UNHEALTHY: there a usage
/// error is "cannot judge" (3), with a `hint:` line like every failure of status.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) || !is_status() {
        e.exit()
    }
    let _ = e.print();
    if !e.to_string().contains("\nhint: ") {
        eprintln!("hint: `modelwatch status --help` lists its flags");
    }
    ExitCode::from(modelwatch_status::CANNOT_JUDGE)
}

/// Whether the command line names the `status` subcommand. `modelwatch` itself takes
/// no option with a value, so the subcommand is the first word that is not an option.
fn is_status() -> bool {
    std::env::args_os()
        .skip(1)
        .find(|a| !a.to_string_lossy().starts_with('-'))
        .is_some_and(|a| a == "status")
}

/// Prints an error (and its causes) to stderr; `hint:` lines travel in the message.
fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MODELWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs `future` on a fresh multi-threaded runtime.
fn block_on<T>(future: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

fn serve(args: modelwatch_server::config::ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("modelwatch-worker")
        .build()?;
    runtime.block_on(modelwatch_server::server::run(args))?;
    Ok(ExitCode::SUCCESS)
}
