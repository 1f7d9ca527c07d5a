//! Detectors as dataflow modules: the interface every detector implements, the context it
//! is built with, and how the configured detectors are assembled into one anomaly
//! collection.
//!
//! Invariants: a detector is one file in `dataflows/` and one line in the registry
//! (`dataflows/mod.rs`); its parameters are a typed struct read from `[detectors.<name>]`
//! with unknown keys rejected; configuration errors are found before any data is read
//! ([`validate_config`]); what detectors report is turned into episodes (see [`episodes`]),
//! so an anomaly is inserted once when it opens and retracted when it closes.

pub mod anomaly;
pub mod baseline;
pub mod episodes;
pub mod keyed;
pub mod surprise;

use std::sync::Arc;

use differential_dataflow::operators::arrange::Arranged;
use differential_dataflow::VecCollection;
use serde::de::DeserializeOwned;
use serde::Serialize;
use timely::dataflow::{Scope, StreamVec};

pub use anomaly::{Anomaly, EventScore, Real, Severity};

use crate::config::{Config, ConfigError, NetworkConfig};
use crate::event::DeviceId;
use crate::feature_store::FeatureTrace;
use crate::features::FeatureLayout;
use crate::model::rescore::DeviceScore;

/// The maintained windows, for detectors that pick one by length.
#[derive(Clone, Debug)]
pub struct WindowLayout {
    pub tick_ms: u64,
    /// Length in ms of each entry of `DeviceWindows::windows`.
    pub lens_ms: Vec<u64>,
    /// Step in ticks of each entry (1: the window slides every tick).
    pub steps: Vec<u64>,
    /// Indices of the configured sliding windows, ascending by length.
    pub sliding: Vec<usize>,
}

impl WindowLayout {
    pub fn new(config: &Config) -> Self {
        let tick_ms = config.tick_ms();
        let lens_ms: Vec<u64> = config.maintained_windows_ticks().iter().map(|l| l * tick_ms).collect();
        let sliding = config
            .windows
            .sliding
            .iter()
            .filter_map(|w| lens_ms.iter().position(|&l| l == w.0))
            .collect();
        WindowLayout {
            tick_ms,
            lens_ms,
            steps: config.window_steps_ticks(),
            sliding,
        }
    }

    /// The event time window `i` covers at `tick`, in ms: its length for a window sliding
    /// every tick; for one advancing in steps, the steps before `tick`'s that it holds plus
    /// `tick`'s own step so far (`docs/semantics.md`), between `len - step + 1 tick` and `len`.
    pub fn span_ms(&self, i: usize, tick: u64) -> u64 {
        let step = self.steps[i];
        if step <= 1 {
            return self.lens_ms[i];
        }
        self.lens_ms[i] - (step - 1 - tick % step) * self.tick_ms
    }

    /// Index of the maintained window closest in length to `ms`.
    pub fn nearest(&self, ms: u64) -> usize {
        (0..self.lens_ms.len())
            .min_by_key(|&i| self.lens_ms[i].abs_diff(ms))
            .unwrap_or(0)
    }

    /// Index of the shortest and of the longest sliding window.
    pub fn shortest(&self) -> usize {
        self.sliding[0]
    }
    pub fn longest(&self) -> usize {
        *self.sliding.last().expect("one sliding window")
    }
}

/// Everything a detector is built with.
#[derive(Clone)]
pub struct DetectorContext<'s> {
    pub scope: Scope<'s, u64>,
    /// The window-stats collection `(device, state)`, one per device at any time, arranged
    /// by device (the feature store).
    pub arranged: Arranged<'s, FeatureTrace>,
    /// The worker's store the arrangement's handles point into.
    pub states: std::rc::Rc<crate::window::StateStore>,
    /// Where per-device logic runs ([`keyed::DeviceLogic`]): inside the window operator,
    /// with each device's events, state changes and rejected records of every tick.
    pub per_device: keyed::PerDevice<'s>,
    pub windows: Arc<WindowLayout>,
    pub features: Arc<FeatureLayout>,
    /// Which destinations are internal (`[network]`).
    pub network: Arc<NetworkConfig>,
    /// Identifies the dataflow's worker (for detectors that keep per-worker state).
    pub worker_index: usize,
    /// The model collection: the active model version (a new version replaces the old one
    /// by retraction); entered on worker 0, so broadcast it before use (`model::rescore`).
    pub models: VecCollection<'s, u64, crate::model::Model>,
}

/// What a detector returns.
pub struct Detected<'s> {
    /// The anomalies it reports, as a collection (what holds at each time).
    pub anomalies: VecCollection<'s, u64, Anomaly>,
    /// Per-event scores, for detectors that score every event.
    pub scores: Option<StreamVec<'s, u64, EventScore>>,
    /// Every device's score under the current model (model-based detectors): what
    /// `GET /devices/{id}` shows as `model`.
    pub model_scores: Option<VecCollection<'s, u64, (DeviceId, DeviceScore)>>,
}

impl<'s> Detected<'s> {
    /// A detector that only reports anomalies.
    pub fn reports(anomalies: VecCollection<'s, u64, Anomaly>) -> Self {
        Detected {
            anomalies,
            scores: None,
            model_scores: None,
        }
    }
}

/// One parameter of a detector, for `vigil detectors`.
#[derive(Clone, Debug, Serialize)]
pub struct ParameterDoc {
    pub name: String,
    pub default: String,
    pub description: String,
}

/// The threat a detector targets: what `vigil eval` scores it against (a label kind maps to
/// a threat through [`crate::generate::IncidentKind::threat`], never through detector names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Threat {
    /// A device stops working: it goes silent or its traffic collapses.
    DenialOfService,
    /// A rogue agent ships data out of the network.
    DataLoss,
    /// A device sends erroneous data.
    DataCorruption,
    /// Someone maps the network (scans).
    Reconnaissance,
}

impl Threat {
    pub const ALL: [Threat; 4] = [
        Threat::DenialOfService,
        Threat::DataLoss,
        Threat::DataCorruption,
        Threat::Reconnaissance,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Threat::DenialOfService => "denial_of_service",
            Threat::DataLoss => "data_loss",
            Threat::DataCorruption => "data_corruption",
            Threat::Reconnaissance => "reconnaissance",
        }
    }
}

/// The interface of a registered detector (object-safe; implement [`TypedDetector`]).
pub trait Detector: Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    /// The threat it targets (None: it reports behaviour, not one threat), declared in the
    /// detector's own file ([`TypedDetector::THREAT`]).
    fn threat(&self) -> Option<Threat>;
    /// Whether it runs when the config does not mention it.
    fn enabled_by_default(&self) -> bool;
    fn parameters(&self) -> Vec<ParameterDoc>;
    /// Checks a `[detectors.<name>]` section (without the `enabled` key).
    fn validate(&self, section: &toml::Table) -> Result<(), ConfigError>;
    fn build<'s>(&self, ctx: &DetectorContext<'s>, section: &toml::Table) -> Result<Detected<'s>, ConfigError>;
}

/// The convenient way to write a detector: a typed parameter struct and a build function.
pub trait TypedDetector: Sync + 'static {
    /// Parameters, read from `[detectors.NAME]`; `Default` gives the defaults. Use
    /// `#[serde(deny_unknown_fields, default)]`.
    type Params: Serialize + DeserializeOwned + Default + Clone + 'static;
    const NAME: &'static str;
    const DESCRIPTION: &'static str;
    /// The threat it targets (what evaluation scores it against); None: not scored.
    const THREAT: Option<Threat> = None;
    const ENABLED_BY_DEFAULT: bool = true;
    /// `(parameter, description)` for each field of `Params`.
    const PARAMETER_DOCS: &'static [(&'static str, &'static str)];
    /// Checks values beyond their types: `Err((key, message))`.
    fn check(_params: &Self::Params) -> Result<(), (String, String)> {
        Ok(())
    }
    fn build<'s>(ctx: &DetectorContext<'s>, params: &Self::Params) -> Detected<'s>;
}

fn parse_params<T: TypedDetector>(section: &toml::Table) -> Result<T::Params, ConfigError> {
    let params: T::Params = toml::Value::Table(section.clone())
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Invalid {
            key: format!("detectors.{}", T::NAME),
            message: e.message().to_string(),
        })?;
    T::check(&params).map_err(|(key, message)| ConfigError::Invalid {
        key: format!("detectors.{}.{key}", T::NAME),
        message,
    })?;
    Ok(params)
}

impl<T: TypedDetector> Detector for T {
    fn name(&self) -> &'static str {
        T::NAME
    }
    fn description(&self) -> &'static str {
        T::DESCRIPTION
    }
    fn threat(&self) -> Option<Threat> {
        T::THREAT
    }
    fn enabled_by_default(&self) -> bool {
        T::ENABLED_BY_DEFAULT
    }
    fn parameters(&self) -> Vec<ParameterDoc> {
        let defaults = toml::Value::try_from(T::Params::default()).ok();
        T::PARAMETER_DOCS
            .iter()
            .map(|(name, description)| ParameterDoc {
                name: name.to_string(),
                default: defaults
                    .as_ref()
                    .and_then(|d| d.get(name))
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                description: description.to_string(),
            })
            .collect()
    }
    fn validate(&self, section: &toml::Table) -> Result<(), ConfigError> {
        parse_params::<T>(section).map(|_| ())
    }
    fn build<'s>(&self, ctx: &DetectorContext<'s>, section: &toml::Table) -> Result<Detected<'s>, ConfigError> {
        let params = parse_params::<T>(section)?;
        Ok(<T as TypedDetector>::build(ctx, &params))
    }
}

/// Every registered detector.
pub fn registry() -> &'static [&'static dyn Detector] {
    crate::dataflows::DETECTORS
}

/// The detectors a config enables, each with its parameter section (without `enabled`).
pub fn enabled(config: &Config) -> Result<Vec<(&'static dyn Detector, toml::Table)>, ConfigError> {
    for name in config.detectors.keys() {
        if !registry().iter().any(|d| d.name() == name) {
            let known: Vec<&str> = registry().iter().map(|d| d.name()).collect();
            return Err(ConfigError::Invalid {
                key: format!("detectors.{name}"),
                message: format!("unknown detector `{name}`; registered: {}", known.join(", ")),
            });
        }
    }
    let mut out = Vec::new();
    for d in registry() {
        let mut section = match config.detectors.get(d.name()) {
            None => toml::Table::new(),
            Some(toml::Value::Table(t)) => t.clone(),
            Some(_) => {
                return Err(ConfigError::Invalid {
                    key: format!("detectors.{}", d.name()),
                    message: "must be a table, e.g. [detectors.NAME]".into(),
                })
            }
        };
        let enabled = match section.remove("enabled") {
            None => d.enabled_by_default(),
            Some(toml::Value::Boolean(b)) => b,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    key: format!("detectors.{}.enabled", d.name()),
                    message: "must be true or false".into(),
                })
            }
        };
        d.validate(&section)?;
        if enabled {
            out.push((*d, section));
        }
    }
    Ok(out)
}

/// Checks the detector sections of a config (unknown names, bad parameters).
pub fn validate_config(config: &Config) -> Result<(), ConfigError> {
    enabled(config).map(|_| ())
}

/// Every enabled detector, built.
pub struct Built<'s> {
    /// The anomaly episodes of all detectors.
    pub anomalies: VecCollection<'s, u64, Anomaly>,
    /// Per-event scores.
    pub scores: Vec<StreamVec<'s, u64, EventScore>>,
    /// Per-device model scores (from the first detector that has them).
    pub model_scores: Option<VecCollection<'s, u64, (DeviceId, DeviceScore)>>,
}

/// Builds every enabled detector: the anomaly episodes, per-event and per-device scores.
pub fn build_all<'s>(ctx: &DetectorContext<'s>, config: &Config) -> Result<Built<'s>, ConfigError> {
    let mut reports = Vec::new();
    let mut scores = Vec::new();
    let mut model_scores = None;
    for (detector, section) in enabled(config)? {
        let detected = detector.build(ctx, &section)?;
        reports.push(detected.anomalies);
        scores.extend(detected.scores);
        if model_scores.is_none() {
            model_scores = detected.model_scores;
        }
    }
    let all = differential_dataflow::collection::concatenate(ctx.scope, reports);
    Ok(Built {
        anomalies: episodes::episodes(all),
        scores,
        model_scores,
    })
}
