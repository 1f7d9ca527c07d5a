//! How `vigil query` and `vigil train --server` reach a guarded query server: the bearer
//! token (flag, `VIGIL_TOKEN`, the config's `[server] token` or `VIGIL__SERVER__TOKEN`) and
//! the CA file for https with a self-signed certificate.
//!
//! Invariants: the token is looked up in that order and never printed; `--ca-file` with an
//! address without a scheme means https.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use vigil::query::client::{Client, ClientOptions};

use super::load_config;

#[derive(Args, Debug, Clone, Default)]
pub struct AccessArgs {
    /// Bearer token of the query server (`[server] token` of the run).
    #[arg(long, global = true, env = "VIGIL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the certificate (or its CA) to trust for https, for a server with a
    /// self-signed certificate; with an address without `https://`, https is used.
    #[arg(long, global = true, env = "VIGIL_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Read the token from this config file's `[server] token` when no --token is given.
    #[arg(long = "server-config", global = true, value_name = "TOML")]
    pub server_config: Option<PathBuf>,
}

impl AccessArgs {
    /// The token to send, if any.
    pub fn token(&self) -> anyhow::Result<Option<String>> {
        if let Some(t) = &self.token {
            return Ok(Some(t.clone()));
        }
        if let Some(path) = &self.server_config {
            let config = load_config(Some(path))?;
            return Ok(config.server.token.map(|s| s.expose().to_string()));
        }
        Ok(std::env::var("VIGIL__SERVER__TOKEN").ok().filter(|t| !t.is_empty()))
    }

    /// A client of `addr` with these credentials.
    pub fn client(&self, addr: &str, timeout: Duration) -> anyhow::Result<Client> {
        let addr = if self.ca_file.is_some() && !addr.contains("://") {
            format!("https://{addr}")
        } else {
            addr.to_string()
        };
        let options = ClientOptions {
            timeout,
            token: self.token()?,
            ca_file: self.ca_file.clone(),
        };
        Ok(Client::new(&addr, &options)?)
    }
}
