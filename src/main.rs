//! The binary: parse arguments, set up tracing, run the command. Everything else is in the
//! library, where tests can reach it.

use std::process::ExitCode;

use clap::Parser;

// mimalloc instead of glibc's allocator: callgrind measured the allocator at ~20% of a SOAP
// call's instructions, and mimalloc took 15-17% off them (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use vos_converter::{cli, observe};

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    observe::init(args.log_format);
    match actix_web::rt::System::new().block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vos-converter: {e}");
            ExitCode::FAILURE
        }
    }
}
