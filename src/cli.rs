//! The command line. `main.rs` parses and calls [`run`]; every command is a function here.
//! Each flag can also be set from the environment (`VOS_*`).

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::backend::{self, API_PAGE, BackendConfig, BackendError, OPENAPI_PATH};
use crate::dktime::Clock;
use crate::vos;

#[derive(Debug, Parser)]
#[command(
    name = "vos-converter",
    version,
    about = "SOAP-to-REST converter for STAR's VisiteringOgStatus, with its reference REST service"
)]
pub struct Cli {
    /// Without a command: the reference backend in dev mode on 127.0.0.1:8090, data in ./data.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the reference VisiteringOgStatus REST service (PersonVisiteringService v1).
    Backend(BackendArgs),
    /// Print the REST service's OpenAPI document (the one committed in openapi/).
    Openapi,
}

#[derive(Debug, clap::Args)]
pub struct BackendArgs {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed).
    #[arg(long, env = "VOS_BACKEND_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: String,
    /// SQLite database file; created, with its schema, if missing.
    #[arg(long, env = "VOS_BACKEND_DB", default_value = "data/vos-backend.db")]
    pub db: PathBuf,
    /// Development mode: serves SetPersonRegister, the admin API that feeds the access rules.
    #[arg(long, env = "VOS_BACKEND_DEV")]
    pub dev: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot create the folder of {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("cannot render the OpenAPI document: {0}")]
    Json(#[from] serde_json::Error),
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        None => {
            let args = BackendArgs {
                listen: "127.0.0.1:8090".into(),
                db: "data/vos-backend.db".into(),
                dev: true,
            };
            run_backend(args).await
        }
        Some(Command::Backend(args)) => run_backend(args).await,
        Some(Command::Openapi) => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", openapi_json()?)?;
            Ok(())
        }
    }
}

/// The full OpenAPI document (with the dev-only operation), as committed in openapi/.
pub fn openapi_json() -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(&backend::openapi(true))
}

async fn run_backend(args: BackendArgs) -> Result<(), CliError> {
    if let Some(dir) = args.db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| CliError::DataDir {
            path: args.db.clone(),
            source,
        })?;
    }
    let listener = TcpListener::bind(&args.listen).map_err(|source| CliError::Listen {
        addr: args.listen.clone(),
        source,
    })?;
    let addr = listener.local_addr()?;
    let cfg = BackendConfig {
        db: args.db.clone(),
        dev: args.dev,
        clock: Clock::System,
    };
    let server = backend::server(listener, &cfg)?;
    let base = format!("http://{addr}");
    let mode = if args.dev {
        "dev mode: SetPersonRegister is on"
    } else {
        "production mode"
    };
    // stdout, one line each, so scripts and tests can read the address.
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "VisiteringOgStatus reference backend ({mode}), database {}",
        args.db.display()
    )?;
    writeln!(out, "listening on {base}")?;
    writeln!(out, "  REST API:     {base}{}", vos::BASE)?;
    writeln!(out, "  API page:     {base}{API_PAGE}")?;
    writeln!(out, "  OpenAPI:      {base}{OPENAPI_PATH}")?;
    out.flush()?;
    drop(out);
    server.await?;
    Ok(())
}
