//! The `vigil` command line: a thin layer over the library. Errors are printed as their
//! full chain (`error: …: …`) and exit with status 2 for bad usage, config or input, 1 for
//! failures while running.

mod commands;

use clap::Parser;

/// Every allocation of the binary goes through mimalloc (see Cargo.toml for why).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 2's `mimalloc.h` (the version the crate builds by
/// default), which the Rust bindings do not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // Freed memory stays with the process for reuse instead of going back to the OS after
    // 10 ms: the engine's state is bounded by its windows, so its high-water mark is its
    // steady state, and purging cost 10-15% of throughput (`vigil bench`, sparse shape).
    // SAFETY: sets a plain integer option; called before any worker thread starts.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
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
