//! Tracing setup. Log lines go to stderr; `RUST_LOG` filters them (default `info`).
//! Nothing logged carries a CPR number: request logs name the route pattern, never the
//! URL's values, headers or bodies, and `Cpr` masks itself if printed by mistake.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
