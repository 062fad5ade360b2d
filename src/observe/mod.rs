//! Observability: tracing setup (human or JSON lines, every line through the CPR
//! redaction), Prometheus metrics, and the migration usage behind the dashboard.
//! Nothing logged, labelled or shown carries a CPR number: request logs name routes and
//! operations, never values; `Cpr` masks itself; and `redact` masks anything CPR-shaped in
//! every log line at any level, including a dependency's.

pub mod dashboard;
pub mod metrics;
pub mod redact;
pub mod usage;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event (for log shippers).
    Json,
}

/// Sets up tracing: `RUST_LOG` filters (default `info`), lines go to stderr, redacted.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = || redact::Redacting(std::io::stderr());
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(writer)
            .try_init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(writer)
            .try_init(),
    };
}
