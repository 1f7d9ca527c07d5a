//! The `vigil` command line: a thin layer over the library. Errors are printed as their
//! full chain (`error: …: …`) and exit with status 2 for bad usage, config or input, 1 for
//! failures while running.

mod commands;

use clap::Parser;

fn main() {
    let cli = commands::Cli::parse();
    commands::init_logging(cli.verbose);
    if let Err(e) = commands::dispatch(cli) {
        eprintln!("error: {e:#}");
        let code = if e.chain().any(|c| c.is::<commands::UsageError>()) {
            2
        } else {
            1
        };
        std::process::exit(code);
    }
}
