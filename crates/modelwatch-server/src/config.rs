//! Module implementing `modelwatch serve`'s settings: flags, `MODELWATCH_*`
//! environment variables and an optional TOML file. See [`ServeArgs`] for details.
//!
//! Precedence: a flag on the command line, then its environment variable, then the
//! config file, then the default.

use clap::parser::ValueSource;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every duration setting below is read by the one grammar of all modelwatch commands
/// (`250us`, `50ms`, `1m30s`; a bare number is seconds), in flags and in the file alike.
pub use modelwatch_duration::HumanDuration;

/// Where the feature store lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The embedded SQLite store in `--data-dir` (seeded on first start).
    Sqlite,
}

/// Serve a model with every ML metric recorded: POST /v1/predict on --listen, and
/// GET /metrics on --metrics-listen.
// Unknown keys are refused by `resolve` (serde's deny_unknown_fields cannot be
// combined with the flattened population flags).
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
#[command(after_help = modelwatch_duration::HELP)]
pub struct ServeArgs {
    /// TOML file with any of these settings (keys as the long flags, with
    /// underscores). Flags and environment variables win over the file.
    #[arg(long, env = "MODELWATCH_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Model card of the model to serve (the ONNX file and the reference sit next to
    /// it). Default: the bundled fraud model.
    #[arg(
        long,
        env = "MODELWATCH_MODEL",
        value_name = "CARD.json",
        conflicts_with = "model_repository"
    )]
    #[serde(default)]
    pub model: Option<PathBuf>,

    /// Directory of models to serve side by side: every `*.card.json` in it, each
    /// with its ONNX file and reference next to it. Each model has its own batcher,
    /// feature cache and `model` label; they share the feature store.
    #[arg(long, env = "MODELWATCH_MODEL_REPOSITORY", value_name = "DIR")]
    #[serde(default)]
    pub model_repository: Option<PathBuf>,

    /// The model of `/v1/predict` and `/v1/predict/batch` (and of `/admin/faults`),
    /// by name, with `--model-repository`. Default: the first name in sort order.
    #[arg(
        long,
        env = "MODELWATCH_DEFAULT_MODEL",
        value_name = "NAME",
        requires = "model_repository"
    )]
    #[serde(default)]
    pub default_model: Option<String>,

    /// Address of the prediction API.
    #[arg(long, env = "MODELWATCH_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Address of the metrics listener (GET /metrics). Kept off the API port, and off
    /// 9090, which is Prometheus' own.
    #[arg(
        long,
        env = "MODELWATCH_METRICS_LISTEN",
        default_value = "0.0.0.0:9464"
    )]
    pub metrics_listen: SocketAddr,

    /// Web-config file, in the format of Prometheus' exporter-toolkit, that turns on
    /// TLS and basic or bearer auth on the metrics listener (see
    /// docs/metrics-security.md). Without it, /metrics is plain HTTP with no auth.
    #[arg(long, env = "MODELWATCH_METRICS_WEB_CONFIG", value_name = "FILE")]
    #[serde(default)]
    pub metrics_web_config: Option<PathBuf>,

    /// Directory for the embedded feature store and unpacked model files. Default:
    /// $XDG_DATA_HOME/modelwatch or ~/.local/share/modelwatch.
    #[arg(long, env = "MODELWATCH_DATA_DIR", value_name = "DIR")]
    #[serde(default)]
    pub data_dir: Option<PathBuf>,

    /// The prediction log (redb) that `/v1/feedback` joins labels against.
    /// Default: predictions.redb in --data-dir. One server per file.
    #[arg(long, env = "MODELWATCH_PREDICTION_LOG", value_name = "FILE")]
    #[serde(default)]
    pub prediction_log: Option<PathBuf>,

    /// How long the prediction log keeps a prediction (and its label): labels for
    /// older predictions count as unmatched.
    #[arg(
        long,
        env = "MODELWATCH_PREDICTION_LOG_RETENTION",
        value_name = "DURATION",
        default_value = "30d"
    )]
    pub prediction_log_retention: HumanDuration,

    /// Stored bytes past which the prediction log deletes its oldest predictions.
    #[arg(long, env = "MODELWATCH_PREDICTION_LOG_MAX_BYTES", default_value_t = 1 << 30)]
    pub prediction_log_max_bytes: u64,

    /// Longest a prediction waits in the prediction log's writer for others to share
    /// its commit (a label commits at once). Longer: fewer commits under load, and a
    /// prediction reaches the file later.
    #[arg(
        long,
        env = "MODELWATCH_PREDICTION_LOG_LINGER",
        value_name = "DURATION",
        default_value = "5ms"
    )]
    pub prediction_log_linger: HumanDuration,

    /// A label arriving longer than this after its prediction is late: stored, and
    /// counted in model_feedback_late_total instead of the confusion counts.
    #[arg(
        long,
        env = "MODELWATCH_FEEDBACK_LATE_AFTER",
        value_name = "DURATION",
        default_value = "30d"
    )]
    pub feedback_late_after: HumanDuration,

    /// Feature store backend (`sqlite`, the only value; `--feature-store` chooses
    /// among every store).
    #[arg(
        long,
        env = "MODELWATCH_STORE",
        value_enum,
        default_value = "sqlite",
        hide = true
    )]
    pub store: StoreKind,

    /// Where the features live, and how to reach them.
    #[command(flatten)]
    #[serde(flatten)]
    pub feature_store: StoreArgs,

    /// What a request gets when the feature store fails (an error, a timeout, or
    /// the circuit breaker open): `defaults` scores it with the group's values
    /// missing; `shed` answers 503 (counted as status="error").
    #[arg(
        long,
        env = "MODELWATCH_STORE_FAILURE",
        value_enum,
        default_value = "defaults"
    )]
    pub store_failure: crate::features::StoreFailurePolicy,

    /// Consecutive feature store failures that open the circuit breaker; while open,
    /// store calls fail at once (kind circuit_open) instead of waiting for
    /// --store-timeout.
    #[arg(long, env = "MODELWATCH_STORE_BREAKER_FAILURES", default_value_t = 5)]
    pub store_breaker_failures: u32,

    /// How long an open breaker refuses store calls before one call probes the
    /// store (closing the breaker when it answers).
    #[arg(
        long,
        env = "MODELWATCH_STORE_BREAKER_COOLDOWN",
        value_name = "DURATION",
        default_value = "1s"
    )]
    pub store_breaker_cooldown: HumanDuration,

    /// Most rows per model call.
    #[arg(long, env = "MODELWATCH_MAX_BATCH", default_value_t = 32)]
    pub max_batch: usize,

    /// Longest the first row of a batch waits for more rows.
    #[arg(
        long,
        env = "MODELWATCH_MAX_DELAY",
        value_name = "DURATION",
        default_value = "250us"
    )]
    pub max_delay: HumanDuration,

    /// Rows that may wait for the model; past this, requests get 429.
    #[arg(long, env = "MODELWATCH_QUEUE_CAPACITY", default_value_t = 2048)]
    pub queue_capacity: usize,

    /// Rows skip the batcher's queue and are scored on the request's own thread
    /// while the model's recent calls took less than this (a tree ensemble's take a
    /// few microseconds: batching saves it nothing, and the hand-off to the inference
    /// thread costs more than the model). 0: every row goes through the queue.
    #[arg(
        long,
        env = "MODELWATCH_DIRECT_BELOW",
        value_name = "DURATION",
        default_value = "50us"
    )]
    pub direct_below: HumanDuration,

    /// Deadline of one prediction; past it the request is answered 504 and counted as
    /// a timeout.
    #[arg(
        long,
        env = "MODELWATCH_REQUEST_TIMEOUT",
        value_name = "DURATION",
        default_value = "500ms"
    )]
    pub request_timeout: HumanDuration,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "MODELWATCH_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,

    /// Most transactions in one /v1/predict/batch request.
    #[arg(long, env = "MODELWATCH_MAX_BATCH_REQUEST", default_value_t = 256)]
    pub max_batch_request: usize,

    /// Most events in one POST /v1/models/{model}/observations request (a
    /// monitor-only model's prediction events).
    #[arg(long, env = "MODELWATCH_MAX_OBSERVATION_BATCH", default_value_t = 1000)]
    pub max_observation_batch: usize,

    /// Prediction events that may wait to be recorded, per monitor-only model; past
    /// this, observations requests get 429 and their events are counted as dropped.
    #[arg(long, env = "MODELWATCH_OBSERVATION_QUEUE", default_value_t = 100_000)]
    pub observation_queue: usize,

    /// How long a cached feature group stays valid.
    #[arg(
        long,
        env = "MODELWATCH_CACHE_TTL",
        value_name = "DURATION",
        default_value = "60s"
    )]
    pub cache_ttl: HumanDuration,

    /// Entities cached per feature group.
    #[arg(long, env = "MODELWATCH_CACHE_CAPACITY", default_value_t = 100_000)]
    pub cache_capacity: u64,

    /// Deadline of one feature store call; past it the group is served as missing.
    #[arg(
        long,
        env = "MODELWATCH_STORE_TIMEOUT",
        value_name = "DURATION",
        default_value = "50ms"
    )]
    pub store_timeout: HumanDuration,

    /// SQLite reader connections serving feature lookups that miss the cache, read in
    /// parallel (writes have a connection of their own). Default: the number of cores.
    #[arg(long, env = "MODELWATCH_STORE_READERS", default_value_t = crate::store::default_readers())]
    pub store_readers: usize,

    /// How often the built-in refresher (standing in for the batch feature pipeline)
    /// updates each feature group.
    #[arg(
        long,
        env = "MODELWATCH_REFRESH_INTERVAL",
        value_name = "DURATION",
        default_value = "30s"
    )]
    pub refresh_interval: HumanDuration,

    /// Length of the per-replica drift windows (model_score_psi{window}).
    #[arg(
        long,
        env = "MODELWATCH_DRIFT_WINDOW",
        value_name = "DURATION",
        default_value = "1h"
    )]
    pub drift_window: HumanDuration,

    /// Enable POST /admin/faults on the metrics listener, for incident scenarios.
    /// Never in production.
    #[arg(long, env = "MODELWATCH_ENABLE_FAULT_INJECTION")]
    #[serde(default)]
    pub enable_fault_injection: bool,

    /// Record no metrics at all (for measuring the instrumentation's cost).
    #[arg(long, env = "MODELWATCH_NO_INSTRUMENTATION", hide = true)]
    #[serde(default)]
    pub no_instrumentation: bool,

    /// The simulated population an empty feature store is seeded with (give
    /// `modelwatch loadgen` the same values).
    #[command(flatten)]
    #[serde(flatten)]
    pub population: modelwatch_sim::population::PopulationArgs,

    /// How long shutdown waits for in-flight requests.
    #[arg(
        long,
        env = "MODELWATCH_DRAIN_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s"
    )]
    pub drain_timeout: HumanDuration,
}

impl ServeArgs {
    /// Settings from `serve`'s flags (and the environment variables the flags read, as
    /// on the command line, but no config file), as a test or an embedding program
    /// builds them; validated like the command line's.
    ///
    /// # Errors
    /// A flag clap refuses, or a setting out of range.
    pub fn from_flags<I, T>(flags: I) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            serve: ServeArgs,
        }
        use clap::Parser as _;
        let command = Command::try_parse_from(
            std::iter::once(std::ffi::OsString::from("serve"))
                .chain(flags.into_iter().map(Into::into)),
        )?;
        command.serve.validate()?;
        Ok(command.serve)
    }

    /// Merges the config file (if any) into every setting that was left at its
    /// default, then validates.
    pub fn resolve(mut self, matches: &clap::ArgMatches) -> anyhow::Result<Self> {
        if let Some(path) = self.config.clone() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
            let file: toml::Table = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
            let mut merged = toml::Table::try_from(&self)?;
            for (key, value) in file {
                let id = key.as_str();
                if !merged.contains_key(id) && !is_optional_key(id) {
                    anyhow::bail!(
                        "config file {}: unknown setting {key:?}\nhint: keys are the long flags with underscores, see `modelwatch serve --help`",
                        path.display()
                    );
                }
                let from_default = matches!(
                    matches.value_source(id),
                    None | Some(ValueSource::DefaultValue)
                );
                if from_default {
                    merged.insert(key, value);
                }
            }
            let config = self.config.take();
            self = merged
                .try_into()
                .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
            self.config = config;
        }
        self.validate()?;
        Ok(self)
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=4096).contains(&self.max_batch),
            "max_batch must be between 1 and 4096, got {}",
            self.max_batch
        );
        anyhow::ensure!(
            self.queue_capacity >= 1,
            "queue_capacity must be at least 1"
        );
        anyhow::ensure!(
            self.max_batch_request >= 1,
            "max_batch_request must be at least 1"
        );
        anyhow::ensure!(
            self.max_observation_batch >= 1,
            "max_observation_batch must be at least 1"
        );
        anyhow::ensure!(
            self.observation_queue >= self.max_observation_batch,
            "observation_queue ({}) must hold at least one full request (max_observation_batch, {})",
            self.observation_queue,
            self.max_observation_batch
        );
        anyhow::ensure!(
            self.max_body_bytes >= 1024,
            "max_body_bytes must be at least 1024"
        );
        anyhow::ensure!(
            !self.request_timeout.0.is_zero(),
            "request_timeout must be more than zero"
        );
        anyhow::ensure!(
            !self.store_timeout.0.is_zero(),
            "store_timeout must be more than zero\nhint: a store call needs time to answer; 50ms is the default"
        );
        anyhow::ensure!(
            self.refresh_interval.0 >= MIN_REFRESH_INTERVAL,
            "refresh_interval must be at least {}, got {}\nhint: the refresher rewrites every feature group each time; 30s is the default",
            HumanDuration(MIN_REFRESH_INTERVAL),
            self.refresh_interval
        );
        anyhow::ensure!(self.store_readers >= 1, "store_readers must be at least 1");
        anyhow::ensure!(
            self.store_breaker_failures >= 1,
            "store_breaker_failures must be at least 1"
        );
        self.feature_store.parse(&self.data_dir())?;
        anyhow::ensure!(
            self.prediction_log_linger.0 <= std::time::Duration::from_secs(60),
            "prediction_log_linger must be at most 1m, got {:?}\nhint: 5ms is the default; predictions wait at most this long to share a commit",
            self.prediction_log_linger.0
        );
        anyhow::ensure!(
            !self.prediction_log_retention.0.is_zero(),
            "prediction_log_retention must be more than zero\nhint: 30d is the default; labels for predictions older than it count as unmatched"
        );
        anyhow::ensure!(
            self.model.is_none() || self.model_repository.is_none(),
            "model and model_repository cannot both be set\nhint: --model serves one card, --model-repository every card in a directory; keep one"
        );
        anyhow::ensure!(
            self.default_model.is_none() || self.model_repository.is_some(),
            "default_model needs model_repository\nhint: with --model, the one model is the default"
        );
        anyhow::ensure!(
            self.listen != self.metrics_listen || self.listen.port() == 0,
            "--listen and --metrics-listen must differ ({})",
            self.listen
        );
        Ok(())
    }

    /// The prediction log's settings: --prediction-log, else predictions.redb in the
    /// data directory.
    pub fn prediction_log(&self) -> modelwatch_log::LogConfig {
        let path = self
            .prediction_log
            .clone()
            .unwrap_or_else(|| self.data_dir().join("predictions.redb"));
        let mut config = modelwatch_log::LogConfig::new(path);
        config.retention = self.prediction_log_retention.0;
        config.max_bytes = self.prediction_log_max_bytes;
        config.linger = self.prediction_log_linger.0;
        config.late_after = self.feedback_late_after.0;
        config
    }

    /// The data directory, defaulting per user.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        default_data_dir()
    }
}

/// The refresher's floor (below it, refreshing would take the store's writer all the
/// time).
const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(100);

fn is_optional_key(key: &str) -> bool {
    matches!(
        key,
        "model"
            | "data_dir"
            | "metrics_web_config"
            | "feature_store"
            | "redis_password_file"
            | "redis_ca_file"
            | "prediction_log"
    )
}

/// The environment variable that may hold the Redis password (there is no flag).
pub const REDIS_PASSWORD_VAR: &str = "MODELWATCH_REDIS_PASSWORD";

/// Where the feature store is: `serve` and `features load` share these settings.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
pub struct StoreArgs {
    /// The feature store: `sqlite:PATH` (default: features.sqlite in the data
    /// directory); `redis://HOST:PORT/DB` for Redis in modelwatch's layout
    /// (`?prefix=` sets the key prefix, default `modelwatch:`);
    /// `feast+redis://HOST:PORT/DB?project=NAME` for Feast's online store in Redis.
    /// `rediss://` (and `feast+rediss://`) use TLS. A user name may be in the URL; a
    /// password may not (see --redis-password-file).
    #[arg(long, env = "MODELWATCH_FEATURE_STORE", value_name = "URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_store: Option<String>,

    /// File whose first line is the Redis password. Without it, the password comes
    /// from MODELWATCH_REDIS_PASSWORD, if set; never from a flag.
    #[arg(long, env = "MODELWATCH_REDIS_PASSWORD_FILE", value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_password_file: Option<PathBuf>,

    /// PEM file of the certificate authority that signed Redis' certificate, for
    /// `rediss://`. Default: the system's roots.
    #[arg(long, env = "MODELWATCH_REDIS_CA_FILE", value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_ca_file: Option<PathBuf>,
}

/// A parsed `--feature-store`.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    /// The embedded SQLite file.
    Sqlite(PathBuf),
    /// Redis in modelwatch's layout, keys under `prefix`.
    Redis {
        /// How to reach it.
        target: crate::store::redis::RedisTarget,
        /// The key prefix.
        prefix: String,
    },
    /// Feast's online store in Redis, for `project`.
    Feast {
        /// How to reach it.
        target: crate::store::redis::RedisTarget,
        /// The Feast project.
        project: String,
    },
}

const STORE_HINT: &str = "hint: --feature-store takes sqlite:PATH, redis://HOST:PORT/DB or feast+redis://HOST:PORT/DB?project=NAME (rediss:// for TLS)";

impl StoreArgs {
    /// Parses the URL and reads the secrets it needs.
    ///
    /// # Errors
    /// An unknown scheme, a password in the URL, an unknown or missing query
    /// setting, or an unreadable password or CA file; each with a `hint:`.
    pub fn parse(&self, data_dir: &Path) -> anyhow::Result<StoreLocation> {
        let Some(url) = self.feature_store.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(StoreLocation::Sqlite(data_dir.join("features.sqlite")));
        };
        if let Some(path) = url.strip_prefix("sqlite:") {
            anyhow::ensure!(
                !path.is_empty(),
                "--feature-store sqlite: needs a path\n{STORE_HINT}"
            );
            return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
        }
        let (feast, rest) = match url.strip_prefix("feast+") {
            Some(rest) => (true, rest),
            None => (false, url),
        };
        anyhow::ensure!(
            rest.starts_with("redis://") || rest.starts_with("rediss://"),
            "--feature-store {url:?}: unknown store\n{STORE_HINT}"
        );
        let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = base.split_once("://").map_or("", |(_, a)| a);
        let authority = authority.split('/').next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            anyhow::ensure!(
                !userinfo.contains(':'),
                "--feature-store: the URL holds a password\nhint: put the password in a file given to --redis-password-file (or in {REDIS_PASSWORD_VAR}), never on the command line"
            );
        }
        let mut prefix = crate::store::redis::DEFAULT_PREFIX.to_string();
        let mut project = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match (key, feast) {
                ("prefix", false) => prefix = value.to_string(),
                ("project", true) if !value.is_empty() => project = Some(value.to_string()),
                _ => anyhow::bail!(
                    "--feature-store: unknown setting {key:?}\nhint: redis:// takes ?prefix=, feast+redis:// takes ?project=NAME"
                ),
            }
        }
        let password = match &self.redis_password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("cannot read --redis-password-file {}: {e}\nhint: the file's first line is the password", path.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ),
            None => std::env::var(REDIS_PASSWORD_VAR).ok().filter(|p| !p.is_empty()),
        };
        let ca_pem = match &self.redis_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("cannot read --redis-ca-file {}: {e}\nhint: give the PEM file of the CA that signed Redis' certificate", path.display())
            })?),
            None => None,
        };
        let target = crate::store::redis::RedisTarget {
            url: base.to_string(),
            password,
            ca_pem,
        };
        Ok(if feast {
            let project = project.ok_or_else(|| {
                anyhow::anyhow!("--feature-store {url:?}: no Feast project\nhint: add ?project=NAME, the project of feature_store.yaml")
            })?;
            StoreLocation::Feast { target, project }
        } else {
            StoreLocation::Redis { target, prefix }
        })
    }
}

/// `$XDG_DATA_HOME/modelwatch`, else `~/.local/share/modelwatch`, else
/// `./.modelwatch`.
pub fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Path::new(&xdg).join("modelwatch");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return Path::new(&home).join(".local/share/modelwatch");
    }
    PathBuf::from(".modelwatch")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> anyhow::Result<ServeArgs> {
        let matches = Cli::command().try_get_matches_from(args)?;
        let cli = Cli::from_arg_matches(&matches)?;
        cli.serve.resolve(&matches)
    }

    #[test]
    fn duration_flags_take_units_and_bare_seconds() {
        let args = parse(&["x", "--max-delay", "250us", "--drain-timeout", "1m30s"]).unwrap();
        assert_eq!(args.max_delay.0, Duration::from_micros(250));
        assert_eq!(args.drain_timeout.0, Duration::from_secs(90));
        let args = parse(&["x", "--store-timeout", "0.05", "--cache-ttl", "90"]).unwrap();
        assert_eq!(args.store_timeout.0, Duration::from_millis(50));
        assert_eq!(args.cache_ttl.0, Duration::from_secs(90));
        let err = parse(&["x", "--request-timeout", "5 parsecs"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown unit") && err.contains("hint:"),
            "{err}"
        );
    }

    #[test]
    fn file_fills_defaults_but_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        std::fs::write(
            &path,
            "max_batch = 8\nlisten = \"127.0.0.1:7000\"\nmax_delay = \"1ms\"\ndrain_timeout = 20\ncache_ttl = \"1m30s\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let args = parse(&["x", "--config", p, "--listen", "127.0.0.1:7001"]).unwrap();
        assert_eq!(args.max_batch, 8);
        assert_eq!(args.max_delay.0, Duration::from_millis(1));
        assert_eq!(args.drain_timeout.0, Duration::from_secs(20));
        assert_eq!(args.cache_ttl.0, Duration::from_secs(90));
        assert_eq!(args.listen.to_string(), "127.0.0.1:7001");
    }

    #[test]
    fn unknown_file_key_is_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        std::fs::write(&path, "max_bacth = 8\n").unwrap();
        let err = parse(&["x", "--config", path.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_bacth") && err.contains("hint:"), "{err}");
    }

    #[test]
    fn store_readers_default_to_the_cores_and_zero_is_refused() {
        let args = parse(&["x"]).unwrap();
        assert_eq!(args.store_readers, crate::store::default_readers());
        assert_eq!(
            parse(&["x", "--store-readers", "3"]).unwrap().store_readers,
            3
        );
        let err = parse(&["x", "--store-readers", "0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("store_readers"), "{err}");
    }

    #[test]
    fn invalid_values_are_refused() {
        let err = parse(&["x", "--max-batch", "0"]).unwrap_err().to_string();
        assert!(err.contains("max_batch"), "{err}");
        let err = parse(&["x", "--refresh-interval", "10ms"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("at least 100ms, got 10ms") && err.contains("hint:"),
            "{err}"
        );
        let err = parse(&["x", "--store-timeout", "0"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("store_timeout") && err.contains("hint:"),
            "{err}"
        );
    }
}
