//! `vigil models list|show|promote|rollback`: the model registry on disk.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use vigil::model::Registry;

use super::load_config;

#[derive(Args, Debug)]
pub struct ModelsArgs {
    /// Config file (TOML), for `model.registry`.
    #[arg(short, long, global = true)]
    pub config: Option<PathBuf>,
    /// Registry folder (default: `model.registry`).
    #[arg(long, global = true)]
    pub registry: Option<PathBuf>,
    #[command(subcommand)]
    pub command: ModelsCommand,
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// Every version, with the active one marked.
    List,
    /// One version as JSON (default: the active one).
    Show { version: Option<u64> },
    /// Make a version the active one (a running engine picks it up within a second).
    Promote { version: u64 },
    /// Return to the version that was active before the current one.
    Rollback,
}

pub fn models(args: ModelsArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
    let registry = Registry::new(args.registry.unwrap_or(config.model.registry));
    match args.command {
        ModelsCommand::List => {
            let index = registry.index()?;
            let versions = registry.versions()?;
            if versions.is_empty() {
                println!("no models in {}", registry.dir().display());
            }
            for v in versions {
                let m = registry.load(v).with_context(|| format!("version {v}"))?;
                let mark = if index.active == Some(v) { "*" } else { " " };
                let created = chrono::DateTime::from_timestamp_millis(m.created_ms)
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_default();
                println!("{mark} {}  created {created}", m.summary());
            }
        }
        ModelsCommand::Show { version } => {
            let v = match version {
                Some(v) => v,
                None => registry
                    .index()?
                    .active
                    .ok_or_else(|| anyhow::anyhow!("no active model in {}", registry.dir().display()))?,
            };
            println!("{}", serde_json::to_string_pretty(&registry.load(v)?)?);
        }
        ModelsCommand::Promote { version } => {
            registry.promote(version)?;
            println!("version {version} is active");
        }
        ModelsCommand::Rollback => {
            let index = registry.rollback()?;
            println!("version {} is active", index.active.unwrap_or_default());
        }
    }
    Ok(())
}
