//! `fcd`: a self-hosted, wire-compatible Alibaba Cloud Function Compute (FC 2.0 API).
//!
//! This binary owns process-level concerns only: command-line parsing, configuration from the
//! environment, credentials, logging, signals and the order of start-up and shutdown. Everything
//! else lives in the library crates.

mod allocator;
mod client;
mod credentials;
mod iam_cli;
mod listener;
mod logs_cli;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "fcd",
    version,
    about = "A self-hosted, wire-compatible Alibaba Cloud Function Compute"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API server with its embedded store and instance manager (or, clustered, on
    /// PostgreSQL and NATS).
    Serve(Box<serve::ServeArgs>),
    /// Common RAM tasks (users with keys and policies) through a running server's RAM API.
    Iam(iam_cli::IamArgs),
    /// Print a function's stored log (by request id, since a time, or following new records).
    Logs(logs_cli::LogsArgs),
}

fn main() -> anyhow::Result<()> {
    // fcd doubles as the init of its instance jails; that path must not touch anything else.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(fcd_runtime::sandbox::INIT_ARG))
    {
        fcd_runtime::sandbox::jail::init_main();
    }
    allocator::configure();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // sqlx reports PostgreSQL's notices ("relation already exists, skipping" at
                // every start) at info: not news.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn")
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve::run(*args))
        }
        Command::Iam(args) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(iam_cli::run(args))
        }
        Command::Logs(args) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(logs_cli::run(args))
        }
    }
}
