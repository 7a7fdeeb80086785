//! Module implementing `modelwatch mixin`. See [`MixinArgs`] and [`run`] for
//! details.

use crate::{MixinConfig, check, generate, write};
use anyhow::Context as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Generate the Prometheus rules, alerts, Grafana dashboard, runbook and promtool
/// tests of the mixin, or check that the committed ones are up to date.
#[derive(Debug, Clone, clap::Args)]
pub struct MixinArgs {
    /// Mixin settings (TOML); every field is optional, see --print-default-config
    #[arg(long, env = "MODELWATCH_MIXIN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory the files are written to (or checked against)
    #[arg(
        long,
        env = "MODELWATCH_MIXIN_OUT",
        value_name = "DIR",
        default_value = "mixin"
    )]
    pub out: PathBuf,

    /// Write nothing; exit non-zero when the files in --out differ from what would be
    /// generated
    #[arg(long, env = "MODELWATCH_MIXIN_CHECK")]
    pub check: bool,

    /// Print the default settings as TOML and exit
    #[arg(long, env = "MODELWATCH_MIXIN_PRINT_DEFAULT_CONFIG")]
    pub print_default_config: bool,
}

/// Runs `modelwatch mixin`: prints the default config, checks, or generates.
pub fn run(args: &MixinArgs) -> anyhow::Result<ExitCode> {
    if args.print_default_config {
        print!("{}", MixinConfig::default_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            MixinConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => MixinConfig::default(),
    };
    let files = generate(&config)?;
    if args.check {
        return Ok(match check(&args.out, &files) {
            Ok(()) => {
                eprintln!(
                    "{} generated files in {} are up to date",
                    files.len(),
                    args.out.display()
                );
                ExitCode::SUCCESS
            }
            Err(stale) => {
                eprintln!("error: {stale}");
                let config = args
                    .config
                    .as_ref()
                    .map(|c| format!(" --config {}", c.display()))
                    .unwrap_or_default();
                eprintln!(
                    "hint: run `modelwatch mixin{config} --out {}` and commit the result",
                    args.out.display()
                );
                ExitCode::FAILURE
            }
        });
    }
    write(&args.out, &files)?;
    eprintln!("wrote {} files to {}", files.len(), args.out.display());
    Ok(ExitCode::SUCCESS)
}
