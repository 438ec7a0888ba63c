//! `autolearn`: `serve` runs the server; every other command is a client of its API.

use clap::Parser;

use autolearn_server::Application;
use autolearn_server::cli::{Cli, Command};
use autolearn_server::config::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { ref config } => serve(config.as_deref()).await,
        Command::Worker {
            ref config,
            workers,
        } => worker(config.as_deref(), workers).await,
        _ => autolearn_server::cli::run_client(cli).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn load_config(config_file: Option<&std::path::Path>) -> anyhow::Result<Config> {
    let config = Config::load(config_file)?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&config.log_filter))
        .init();
    Ok(config)
}

async fn worker(config_file: Option<&std::path::Path>, workers: usize) -> anyhow::Result<()> {
    let mut config = load_config(config_file)?;
    config.workers = workers.max(1);
    autolearn_server::run_workers_only(config).await
}

async fn serve(config_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let config = load_config(config_file)?;
    let app = Application::build(config).await?;
    tracing::info!("AutoLearn listening on http://{}", app.local_addr());
    app.run().await
}
