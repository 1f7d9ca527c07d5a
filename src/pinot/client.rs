//! A small blocking client for a Pinot controller (schemas, tables) and broker (SQL).
//!
//! Invariants: [`apply`] is idempotent: it reads every schema and table first and changes
//! nothing unless all of them are either missing or equal (in the sense of
//! [`super::diff`]) to what vigil generates, or `force` is set; a conflict names the table or
//! schema and every differing key. Schemas are created before the tables that use them.
//! Every HTTP error carries the method, URL, status and Pinot's own message.

use std::time::Duration;

use serde_json::Value;

use super::diff::{differences, Difference};
use super::spec::TableSpec;

/// What can go wrong talking to Pinot.
#[derive(Debug, thiserror::Error)]
pub enum PinotError {
    #[error("{method} {url}: {message}")]
    Connect {
        method: &'static str,
        url: String,
        message: String,
    },
    #[error("{method} {url}: HTTP {status}: {body}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: unexpected answer ({message}): {body}")]
    BadResponse { url: String, message: String, body: String },
    #[error("{}", conflicts_text(.0))]
    Conflict(Vec<Conflict>),
    #[error("query `{sql}` failed: {message}")]
    Query { sql: String, message: String },
}

/// An existing schema or table that differs from what vigil would create.
#[derive(Debug, Clone)]
pub struct Conflict {
    /// `schema` or `table`.
    pub kind: &'static str,
    pub name: String,
    pub differences: Vec<Difference>,
}

fn conflicts_text(conflicts: &[Conflict]) -> String {
    let mut text = String::new();
    for c in conflicts {
        text += &format!(
            "existing {} `{}` differs from vigil's in {} key(s): ",
            c.kind,
            c.name,
            c.differences.len()
        );
        let shown: Vec<String> = c.differences.iter().take(8).map(|d| d.to_string()).collect();
        text += &shown.join("; ");
        if c.differences.len() > 8 {
            text += &format!("; and {} more", c.differences.len() - 8);
        }
        text += ". ";
    }
    text + "Nothing was changed; use --force to update them to vigil's version, or change the \
            table names in [pinot]."
}

/// What [`apply`] did to one schema or table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Unchanged,
    /// Different, and updated because of `force`.
    Updated,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Unchanged => "unchanged",
            Outcome::Updated => "updated",
        }
    }
}

/// One line of an apply report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub kind: &'static str,
    pub name: String,
    pub outcome: Outcome,
}

/// An HTTP endpoint of Pinot (controller or broker).
#[derive(Clone)]
pub struct Endpoint {
    base: String,
    agent: ureq::Agent,
}

impl Endpoint {
    /// `url` like `http://127.0.0.1:19000` (a trailing `/` is dropped).
    pub fn new(url: &str, timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build();
        Endpoint {
            base: url.trim_end_matches('/').to_string(),
            agent: ureq::Agent::new_with_config(config),
        }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// Sends a request; returns the status and body text (any status).
    fn send(&self, method: &'static str, path: &str, body: Option<&Value>) -> Result<(u16, String), PinotError> {
        let url = format!("{}{path}", self.base);
        let connect = |e: ureq::Error| PinotError::Connect {
            method,
            url: url.clone(),
            message: e.to_string(),
        };
        tracing::debug!(method, url = %url, "pinot request");
        let json = "application/json";
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            ("POST", b) => self
                .agent
                .post(&url)
                .header("Content-Type", json)
                .send(b.map(|b| b.to_string()).unwrap_or_default()),
            ("PUT", b) => self
                .agent
                .put(&url)
                .header("Content-Type", json)
                .send(b.map(|b| b.to_string()).unwrap_or_default()),
            _ => unreachable!("methods are fixed in this module"),
        };
        let mut response = result.map_err(connect)?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(connect)?;
        Ok((status, text))
    }

    /// Like `send`, but an HTTP status >= 400 is an error.
    fn send_ok(&self, method: &'static str, path: &str, body: Option<&Value>) -> Result<String, PinotError> {
        let (status, text) = self.send(method, path, body)?;
        if status >= 400 {
            return Err(PinotError::Status {
                method,
                url: format!("{}{path}", self.base),
                status,
                body: pinot_message(&text),
            });
        }
        Ok(text)
    }

    fn parse(&self, path: &str, text: &str) -> Result<Value, PinotError> {
        serde_json::from_str(text).map_err(|e| PinotError::BadResponse {
            url: format!("{}{path}", self.base),
            message: e.to_string(),
            body: text.chars().take(500).collect(),
        })
    }
}

/// Pinot's `{"code":..,"error":".."}` as its message, else the body (cut).
fn pinot_message(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| text.chars().take(500).collect())
}

/// The controller's REST API (schemas and tables).
#[derive(Clone)]
pub struct Controller(pub Endpoint);

impl Controller {
    pub fn new(url: &str) -> Self {
        Controller(Endpoint::new(url, Duration::from_secs(60)))
    }

    /// Ok when `/health` answers `OK`.
    pub fn health(&self) -> Result<(), PinotError> {
        let text = self.0.send_ok("GET", "/health", None)?;
        if text.trim() == "OK" {
            Ok(())
        } else {
            Err(PinotError::BadResponse {
                url: format!("{}/health", self.0.base),
                message: "controller is not healthy".into(),
                body: text,
            })
        }
    }

    /// The schema, or `None` when there is none of that name.
    pub fn schema(&self, name: &str) -> Result<Option<Value>, PinotError> {
        let path = format!("/schemas/{name}");
        let (status, text) = self.0.send("GET", &path, None)?;
        match status {
            404 => Ok(None),
            s if s >= 400 => Err(PinotError::Status {
                method: "GET",
                url: format!("{}{path}", self.0.base),
                status: s,
                body: pinot_message(&text),
            }),
            _ => self.0.parse(&path, &text).map(Some),
        }
    }

    /// The REALTIME table config, or `None` when there is no such table.
    pub fn realtime_table(&self, name: &str) -> Result<Option<Value>, PinotError> {
        let path = format!("/tables/{name}?type=realtime");
        let (status, text) = self.0.send("GET", &path, None)?;
        match status {
            404 => Ok(None),
            s if s >= 400 => Err(PinotError::Status {
                method: "GET",
                url: format!("{}{path}", self.0.base),
                status: s,
                body: pinot_message(&text),
            }),
            _ => Ok(self.0.parse(&path, &text)?.get("REALTIME").cloned()),
        }
    }

    pub fn create_schema(&self, schema: &Value) -> Result<(), PinotError> {
        self.0.send_ok("POST", "/schemas", Some(schema)).map(drop)
    }

    pub fn update_schema(&self, name: &str, schema: &Value) -> Result<(), PinotError> {
        self.0
            .send_ok("PUT", &format!("/schemas/{name}"), Some(schema))
            .map(drop)
    }

    pub fn create_table(&self, table: &Value) -> Result<(), PinotError> {
        self.0.send_ok("POST", "/tables", Some(table)).map(drop)
    }

    pub fn update_table(&self, name: &str, table: &Value) -> Result<(), PinotError> {
        self.0.send_ok("PUT", &format!("/tables/{name}"), Some(table)).map(drop)
    }

    /// Deletes the REALTIME table (and its segments); missing is fine.
    pub fn delete_table(&self, name: &str) -> Result<(), PinotError> {
        let path = format!("/tables/{name}?type=realtime");
        let (status, text) = self.0.send("DELETE", &path, None)?;
        if status >= 400 && status != 404 {
            return Err(PinotError::Status {
                method: "DELETE",
                url: format!("{}{path}", self.0.base),
                status,
                body: pinot_message(&text),
            });
        }
        Ok(())
    }

    /// Deletes the schema; missing is fine.
    pub fn delete_schema(&self, name: &str) -> Result<(), PinotError> {
        let path = format!("/schemas/{name}");
        let (status, text) = self.0.send("DELETE", &path, None)?;
        if status >= 400 && status != 404 {
            return Err(PinotError::Status {
                method: "DELETE",
                url: format!("{}{path}", self.0.base),
                status,
                body: pinot_message(&text),
            });
        }
        Ok(())
    }
}

/// The existing table config, comparable with a generated one: Pinot stores the name as
/// `NAME_REALTIME`.
fn normalize_table(mut existing: Value, name: &str) -> Value {
    if existing["tableName"].as_str() == Some(&format!("{name}_REALTIME")) {
        existing["tableName"] = name.into();
    }
    existing
}

enum TablePlan {
    Create,
    Keep,
    Update(Vec<Difference>),
}

fn plan(wanted: &Value, existing: Option<Value>) -> TablePlan {
    match existing {
        None => TablePlan::Create,
        Some(e) => {
            let d = differences(wanted, &e);
            if d.is_empty() {
                TablePlan::Keep
            } else {
                TablePlan::Update(d)
            }
        }
    }
}

/// Creates the schemas and tables that are missing, leaves equal ones alone, and with `force`
/// updates different ones; without `force` a difference is a [`PinotError::Conflict`] and
/// nothing is changed.
pub fn apply(controller: &Controller, specs: &[TableSpec], force: bool) -> Result<Vec<Applied>, PinotError> {
    let mut steps = Vec::new();
    for spec in specs {
        let schema = plan(&spec.schema, controller.schema(&spec.name)?);
        let table = plan(
            &spec.table_config,
            controller
                .realtime_table(&spec.name)?
                .map(|t| normalize_table(t, &spec.name)),
        );
        steps.push((spec, schema, table));
    }
    let conflicts: Vec<Conflict> = steps
        .iter()
        .flat_map(|(spec, schema, table)| {
            [("schema", schema), ("table", table)]
                .into_iter()
                .filter_map(move |(kind, step)| match step {
                    TablePlan::Update(d) => Some(Conflict {
                        kind,
                        name: spec.name.clone(),
                        differences: d.clone(),
                    }),
                    _ => None,
                })
        })
        .collect();
    if !conflicts.is_empty() && !force {
        return Err(PinotError::Conflict(conflicts));
    }
    let mut report = Vec::new();
    for (spec, schema, table) in steps {
        let outcome = match schema {
            TablePlan::Create => controller.create_schema(&spec.schema).map(|_| Outcome::Created)?,
            TablePlan::Keep => Outcome::Unchanged,
            TablePlan::Update(_) => controller
                .update_schema(&spec.name, &spec.schema)
                .map(|_| Outcome::Updated)?,
        };
        tracing::debug!(schema = %spec.name, outcome = outcome.as_str(), "pinot schema");
        report.push(Applied {
            kind: "schema",
            name: spec.name.clone(),
            outcome,
        });
        let outcome = match table {
            TablePlan::Create => controller
                .create_table(&spec.table_config)
                .map_err(|e| topic_hint(e, spec))
                .map(|_| Outcome::Created)?,
            TablePlan::Keep => Outcome::Unchanged,
            TablePlan::Update(_) => controller
                .update_table(&spec.name, &spec.table_config)
                .map_err(|e| topic_hint(e, spec))
                .map(|_| Outcome::Updated)?,
        };
        tracing::debug!(table = %spec.name, topic = %spec.topic, outcome = outcome.as_str(), "pinot table");
        report.push(Applied {
            kind: "table",
            name: spec.name.clone(),
            outcome,
        });
    }
    Ok(report)
}

/// Pinot 0.11 answers a table whose topic does not exist with a NullPointerException about
/// `partitionsFor`: say what it means.
fn topic_hint(e: PinotError, spec: &TableSpec) -> PinotError {
    match e {
        PinotError::Status {
            method,
            url,
            status,
            body,
        } if body.contains("partitionsFor") => PinotError::Status {
            method,
            url,
            status,
            body: format!(
                "{body} (Pinot could not read the partitions of topic `{}`: does it exist on the \
                 brokers of kafka.brokers? vigil creates its output topics when it first \
                 writes to them; create them first)",
                spec.topic
            ),
        },
        other => other,
    }
}

/// The broker's SQL endpoint.
#[derive(Clone)]
pub struct Broker(pub Endpoint);

impl Broker {
    pub fn new(url: &str) -> Self {
        Broker(Endpoint::new(url, Duration::from_secs(60)))
    }

    /// Runs a query; returns `resultTable.rows` (an error when Pinot reports exceptions).
    pub fn sql(&self, sql: &str) -> Result<Vec<Vec<Value>>, PinotError> {
        self.sql_with_columns(sql).map(|(_, rows)| rows)
    }

    /// The column names of a query's result (with `sql`'s rows).
    pub fn sql_with_columns(&self, sql: &str) -> Result<(Vec<String>, Vec<Vec<Value>>), PinotError> {
        let body = serde_json::json!({ "sql": sql });
        let text = self.0.send_ok("POST", "/query/sql", Some(&body))?;
        let answer = self.0.parse("/query/sql", &text)?;
        if answer
            .get("exceptions")
            .and_then(|e| e.as_array())
            .is_some_and(|e| !e.is_empty())
        {
            return Err(PinotError::Query {
                sql: sql.to_string(),
                message: answer["exceptions"].to_string(),
            });
        }
        let columns = answer["resultTable"]["dataSchema"]["columnNames"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let rows = answer["resultTable"]["rows"]
            .as_array()
            .map(|rows| rows.iter().map(|r| r.as_array().cloned().unwrap_or_default()).collect())
            .unwrap_or_default();
        Ok((columns, rows))
    }
}
