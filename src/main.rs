//! `ioc`: the operator's binary. Each pipeline stage as a subcommand, the whole pipeline on an
//! embedded broker (`ioc demo`), and ward-map tools (`ioc wards ...`).

mod contracts;

/// mimalloc rather than the system allocator: the stages allocate and free many small
/// buffers per record on several threads, where glibc's malloc spent a fifth of the router's
/// time (BENCHMARKS.md, camera situations).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
mod demo;
mod wards_cmd;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ioc_config::load::Settings;
use ioc_schema::metrics::Metrics;

#[derive(Parser)]
#[command(
    name = "ioc",
    version,
    about = "Event pipeline for a city's Intelligent Operations Center",
    long_about = "Citizens' reports and camera events flow through Kafka into a spatial router that \
assigns each to the responsible ward; a dashboard API shows every incident live.\n\n\
Start with `ioc demo` (everything in one process, no Kafka needed). Run stages separately with \
`ioc ingest`, `ioc router` and `ioc dashboard` against a Kafka cluster."
)]
struct Cli {
    /// Log lines as `plain` text, `json` (one object per line, for log collectors), or `auto`:
    /// coloured on a terminal, plain otherwise. RUST_LOG sets the level (e.g. `info,ioc=debug`).
    #[arg(long, global = true, env = "IOC_LOG_FORMAT", default_value = "auto")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Auto,
    Plain,
    Json,
}

/// Options every stage takes.
#[derive(clap::Args, Clone)]
struct StageArgs {
    /// Configuration file (TOML). Without it the embedded defaults (the demo city) are used;
    /// IOC_<SECTION>__<KEY> environment variables override either.
    #[arg(short, long, env = "IOC_CONFIG")]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers (host:port,...), overriding `kafka.brokers`.
    #[arg(long)]
    brokers: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline in one process on the embedded broker, with simulated citizens
    /// and cameras feeding the demo city, until Ctrl-C.
    Demo(demo::DemoArgs),
    /// Run the ingest API (POST /v1/reports, POST /v1/camera-events).
    Ingest(StageArgs),
    /// Run a router; start several with the same config to share the partitions.
    Router(StageArgs),
    /// Run the dashboard API and live map.
    Dashboard(StageArgs),
    /// Create the pipeline's topics on the configured brokers (stages also do this at start
    /// when `topics.create` is true).
    CreateTopics(StageArgs),
    /// Ward boundary tools.
    #[command(subcommand)]
    Wards(wards_cmd::WardsCommand),
    /// Generate a secret and the config lines that accept it: a dashboard token
    /// (`dashboard.tokens`), a camera system's key (`ingest.camera_keys`) or an Open311 key.
    Token {
        /// Also print the HTTP digest login (realm "ioc") for cameras that sign in only by
        /// answering a digest challenge: they are given this user name and the key as password.
        #[arg(long, value_name = "NAME")]
        digest_user: Option<String>,
    },
    /// Write the published contracts: the OpenAPI 3.1 description of each stage's HTTP API and
    /// the JSON Schema of each record type on each Kafka topic (the repository keeps a copy in
    /// `contracts/`; a test fails when it is out of date).
    Contracts {
        /// Folder to write into (`openapi/<stage>.json`, `records/<schema>.json`).
        #[arg(long, default_value = "contracts")]
        out: PathBuf,
    },
}

fn init_logging(format: LogFormat, default: &str) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Plain => builder.with_ansi(false).init(),
        // Colour codes only where a person reads them; files and pipes get plain text.
        LogFormat::Auto => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// Loads configuration for a stage and applies `--brokers`.
fn load_settings(args: &StageArgs) -> anyhow::Result<Arc<Settings>> {
    let mut settings = Settings::load(args.config.as_deref(), std::env::vars())?;
    if let Some(b) = &args.brokers {
        settings.config.kafka.brokers = b.clone();
    }
    if settings.config.kafka.brokers == "embedded" {
        anyhow::bail!(
            "kafka.brokers is 'embedded', which only `ioc demo` can start; pass --brokers host:port \
             or set kafka.brokers in the config file"
        );
    }
    Ok(Arc::new(settings))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

async fn prepare_topics(settings: &Settings) -> anyhow::Result<()> {
    if settings.config.topics.create {
        ioc_config::kafka::ensure_topics(&settings.config)
            .await
            .context("creating topics (set topics.create = false if they are managed elsewhere)")?;
    }
    // The incident topic is the source of truth: refuse to run on one that deletes by age.
    ioc_config::kafka::check_topic_policies(&settings.config)
        .await
        .map_err(anyhow::Error::msg)
        .context("checking the topics' retention")?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => {
            init_logging(cli.log_format, "warn,ioc=info");
            demo::run(args).await
        }
        Command::Ingest(args) => {
            init_logging(cli.log_format, "info");
            let settings = load_settings(&args)?;
            prepare_topics(&settings).await?;
            ioc_ingest::run(settings, Metrics::new(), shutdown_signal()).await
        }
        Command::Router(args) => {
            init_logging(cli.log_format, "info");
            let settings = load_settings(&args)?;
            prepare_topics(&settings).await?;
            ioc_router::run(settings, Metrics::new(), shutdown_signal()).await
        }
        Command::Dashboard(args) => {
            init_logging(cli.log_format, "info");
            let settings = load_settings(&args)?;
            prepare_topics(&settings).await?;
            ioc_dashboard::run(settings, Metrics::new(), shutdown_signal()).await
        }
        Command::CreateTopics(args) => {
            init_logging(cli.log_format, "info");
            let settings = load_settings(&args)?;
            ioc_config::kafka::ensure_topics(&settings.config).await?;
            println!("topics ready on {}", settings.config.kafka.brokers);
            Ok(())
        }
        Command::Wards(cmd) => {
            init_logging(cli.log_format, "warn");
            wards_cmd::run(cmd)
        }
        Command::Contracts { out } => {
            for (path, doc) in contracts::all() {
                let file = out.join(&path);
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                std::fs::write(&file, doc)
                    .with_context(|| format!("writing {}", file.display()))?;
                println!("wrote {}", file.display());
            }
            Ok(())
        }
        Command::Token { digest_user } => {
            let token = demo::new_token();
            println!("token:  {token}");
            println!("sha256: {}", ioc_config::load::token_digest(&token));
            println!("\nAdd to the config file, for an operator:\n");
            println!("[[dashboard.tokens]]\nname = \"IOC operators\"\nrole = \"operator\"\nsha256 = \"{}\"", ioc_config::load::token_digest(&token));
            println!("\nor for a ward unit: role = \"ward\" and ward = \"<ward id>\".");
            println!("\nAs a camera system's key (POST /v1/camera-events):\n");
            println!("[[ingest.camera_keys]]\nname = \"<camera system>\"\nsha256 = \"{}\"\n# cameras = [\"CAM-0001\"]   (optional: only these cameras)", ioc_config::load::token_digest(&token));
            if let Some(user) = digest_user {
                use ioc_ingest::digest::{ha1, Algorithm};
                println!(
                    "digest = {{ user = \"{user}\", md5 = \"{}\", sha256 = \"{}\" }}",
                    ha1(Algorithm::Md5, &user, &token),
                    ha1(Algorithm::Sha256, &user, &token)
                );
                println!(
                    "# devices: user name \"{user}\", password = the token above, HTTP digest"
                );
            }
            println!("\nor as an Open311 client's key: [[open311.keys]] with name and sha256.");
            Ok(())
        }
    }
}
