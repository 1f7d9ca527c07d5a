//! `vigil pinot`: the Pinot schemas and REALTIME table configs of vigil's output topics,
//! printed (`schema`, `tables`) or posted to a controller (`apply`).
//!
//! Invariants: everything is generated from the same config `vigil run` uses (table names
//! from `[pinot]`, topic and broker names from `[kafka]` — the topics `vigil run --sink
//! kafka` writes —, feature names from `[windows]`); `apply` changes nothing
//! when a schema or table exists with other content, unless `--force`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use vigil::pinot::{self, Controller, Table};

use super::load_config;

#[derive(Args, Debug)]
pub struct PinotArgs {
    #[command(subcommand)]
    pub command: PinotCommand,
}

#[derive(Subcommand, Debug)]
pub enum PinotCommand {
    /// Print the Pinot schema(s) as JSON (one object with --table, else an array of three).
    Schema(PrintArgs),
    /// Print the REALTIME table config(s) as JSON (one object with --table, else an array).
    Tables(PrintArgs),
    /// Create the schemas and tables on a Pinot controller (idempotent).
    Apply(ApplyArgs),
}

#[derive(Args, Debug)]
pub struct PrintArgs {
    /// Only this table.
    #[arg(short, long, value_enum)]
    pub table: Option<Table>,
    /// Config file (TOML), the one `vigil run` uses.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// The controller's REST endpoint (default: pinot.controller from the config).
    #[arg(long)]
    pub controller: Option<String>,
    /// Config file (TOML), the one `vigil run` uses.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Update schemas and tables that exist with other content (instead of failing).
    #[arg(long)]
    pub force: bool,
}

pub fn pinot(args: PinotArgs) -> anyhow::Result<()> {
    match args.command {
        PinotCommand::Schema(a) => print(a, |s| &s.schema),
        PinotCommand::Tables(a) => print(a, |s| &s.table_config),
        PinotCommand::Apply(a) => apply(a),
    }
}

fn print(args: PrintArgs, part: fn(&pinot::TableSpec) -> &serde_json::Value) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
    let value = match args.table {
        Some(t) => part(&pinot::spec(&config, t)).clone(),
        None => serde_json::Value::Array(pinot::specs(&config).iter().map(|s| part(s).clone()).collect()),
    };
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

fn apply(args: ApplyArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
    let url = args.controller.unwrap_or_else(|| config.pinot.controller.clone());
    let controller = Controller::new(&url);
    controller.health().with_context(|| {
        format!("Pinot controller {url} is not reachable or not healthy (is it started? scripts/pinot.sh start)")
    })?;
    let specs = pinot::specs(&config);
    let report = pinot::apply(&controller, &specs, args.force).with_context(|| format!("applying to {url}"))?;
    for item in report {
        println!("{} {}: {}", item.kind, item.name, item.outcome.as_str());
    }
    Ok(())
}
