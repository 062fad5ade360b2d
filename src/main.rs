//! The binary: parse arguments, set up tracing, run the command. Everything else is in the
//! library, where tests can reach it.

use std::process::ExitCode;

use clap::Parser;

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
