//! Crash and restart as a campaign, against real brokers: a Kafka run (`--sink kafka`) is
//! killed with SIGKILL at random points and restarted; a broker is stopped and started again
//! in the middle of a run. After folding (the latest row per key), the output topics equal
//! those of an uninterrupted run, every trial.
//!
//! Trials: `VIGIL_CRASH_TRIALS` SIGKILL trials (default 2) and `VIGIL_BROKER_TRIALS` broker
//! restarts (default 2; every other one with a 1 s delivery time-out, so that the run
//! fails and is restarted), at points drawn from `VIGIL_CRASH_SEED` (default 1); the short
//! version runs in the tests, `scripts/crash-campaign.sh` runs the campaign (10 and 3). Each
//! trial prints one line (where it was interrupted, what the restart replayed).
//!
//! The broker-restart trials run on a broker of their own (scripts/kafka.sh on port 19192),
//! so that stopping it cannot disturb the tests that share the main one.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::{
    broker, committed, device_key, events, fold, output_env, produce, read_topic, unique, vigil_ok, window_key,
    write_events, KillOnDrop,
};
use serde_json::Value;

/// Port of the broker the restart trials stop and start (its controller uses the next one).
const PRIVATE_BROKER_PORT: u16 = 19192;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Uniform in [0, 1) from a SplitMix64 stream.
fn uniform(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

/// A run's outputs, folded: window rows by (device, start, length), features by device,
/// dead letters by origin.
#[derive(Debug, PartialEq)]
struct Folded {
    windows: BTreeMap<String, Value>,
    features: BTreeMap<String, Value>,
    dead_letters: BTreeSet<(String, String, String)>,
}

fn folded(brokers: &str, prefix: &str) -> Folded {
    Folded {
        windows: fold(&read_topic(brokers, &format!("{prefix}.windows")), window_key),
        features: fold(&read_topic(brokers, &format!("{prefix}.features")), device_key),
        dead_letters: read_topic(brokers, &format!("{prefix}.dlq"))
            .iter()
            .map(|m| {
                (
                    m.headers["vigil.source.partition"].clone(),
                    m.headers["vigil.source.offset"].clone(),
                    m.headers["vigil.reason"].clone(),
                )
            })
            .collect(),
    }
}

fn assert_same(trial: &str, got: &Folded, want: &Folded) {
    assert!(!want.windows.is_empty() && !want.features.is_empty() && !want.dead_letters.is_empty());
    assert_eq!(got.windows.len(), want.windows.len(), "{trial}: window rows, folded");
    assert!(got.windows == want.windows, "{trial}: window rows differ after folding");
    assert!(got.features == want.features, "{trial}: features differ after folding");
    // Every rejected record has its dead letter, by origin. Its reason may differ across a
    // restart: a restarted run warms its partitions up again from the committed offset, and
    // a record near the `time.max_ahead` bound can be decided differently (docs/semantics.md).
    // That is reported, not failed.
    let origins = |d: &BTreeSet<(String, String, String)>| -> BTreeSet<(String, String)> {
        d.iter().map(|(p, o, _)| (p.clone(), o.clone())).collect()
    };
    assert_eq!(
        origins(&got.dead_letters),
        origins(&want.dead_letters),
        "{trial}: dead letters, by origin"
    );
    if got.dead_letters != want.dead_letters {
        let differ: Vec<_> = got.dead_letters.symmetric_difference(&want.dead_letters).collect();
        eprintln!("{trial}: dead letters with another reason than the uninterrupted run's: {differ:?}");
    }
}

/// The arguments of a Kafka-to-Kafka run of `input` in consumer group `group`.
fn run_args(input: &str, group: &str, out: &Path, config: &Path, bounded: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "--input",
        &format!("kafka://{input}"),
        "--sink",
        "kafka",
        "--group",
        group,
        "-w",
        "2",
        "--progress",
        "never",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        "--out".into(),
        out.display().to_string(),
        "-c".into(),
        config.display().to_string(),
    ]);
    if bounded {
        args.push("--bounded".into());
    }
    args
}

fn spawn(args: &[String], env: &[(String, String)]) -> KillOnDrop {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.args(args)
        .env("VIGIL_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    KillOnDrop(cmd.spawn().expect("starting vigil"))
}

fn run_ok(args: &[String], env: &[(String, String)]) -> f64 {
    let t0 = Instant::now();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    vigil_ok(&args, env);
    t0.elapsed().as_secs_f64()
}

fn events_read(out: &Path) -> u64 {
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    summary["events_read"].as_u64().unwrap()
}

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    input: String,
    records: u64,
}

/// A topic of generated events (3 partitions) and a config with short windows.
fn setup(brokers: &str, events_n: u64) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vigil.toml");
    std::fs::write(&config, common::kafka::SHORT_WINDOWS).unwrap();
    let data = events(events_n, 60, 21);
    let records = data.iter().filter(|&&b| b == b'\n').count() as u64 - 1;
    let file = write_events(dir.path(), "events.csv", &data);
    let input = unique("vigil-crash-in");
    produce(brokers, &file, &input, 3);
    Setup {
        dir,
        config,
        input,
        records,
    }
}

/// A campaign's input topic and its uninterrupted reference run: the outputs and how long
/// the run took.
fn prepare(brokers: &str, campaign: &str) -> (Setup, Folded, f64) {
    let s = setup(brokers, 150_000);
    let prefix = unique("vigil-crash-ref");
    let out = s.dir.path().join("out-reference");
    let secs = run_ok(
        &run_args(&s.input, &prefix, &out, &s.config, true),
        &output_env(brokers, &prefix),
    );
    assert_eq!(events_read(&out), s.records);
    eprintln!(
        "{campaign} campaign: {} records, uninterrupted run {secs:.1} s",
        s.records
    );
    (s, folded(brokers, &prefix), secs)
}

#[test]
fn sigkill_at_random_points_folds_to_the_uninterrupted_outputs() {
    let Some(brokers) = broker() else { return };
    let trials = env_number("VIGIL_CRASH_TRIALS", 2);
    let mut rng = env_number("VIGIL_CRASH_SEED", 1);
    let (s, want, reference_secs) = prepare(&brokers, "sigkill");
    for trial in 0..trials {
        let name = format!("sigkill trial {}/{trials}", trial + 1);
        let prefix = unique("vigil-crash");
        let env = output_env(&brokers, &prefix);
        // Anywhere from start-up to past the end of the input.
        let delay = Duration::from_secs_f64(0.2 + uniform(&mut rng) * (reference_secs * 1.2));
        let out = s.dir.path().join(format!("out-{trial}-killed"));
        let mut child = spawn(&run_args(&s.input, &prefix, &out, &s.config, false), &env);
        std::thread::sleep(delay);
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "{name}: the unbounded run ended by itself"
        );
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        let at_kill = committed(&brokers, &prefix, &s.input, 3);
        let restart = s.dir.path().join(format!("out-{trial}-restarted"));
        run_ok(&run_args(&s.input, &prefix, &restart, &s.config, true), &env);
        let replayed = events_read(&restart);
        assert_same(&name, &folded(&brokers, &prefix), &want);
        eprintln!(
            "{name}: killed after {:.2} s, committed offsets then {at_kill:?}; the restart read {replayed} of {} \
             records; folded outputs equal the uninterrupted run's",
            delay.as_secs_f64(),
            s.records
        );
    }
}

/// `scripts/kafka.sh` on the private port.
fn private_broker(command: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh");
    let o = Command::new(script)
        .arg(command)
        .env("KAFKA_PORT", PRIVATE_BROKER_PORT.to_string())
        .output()
        .expect("running scripts/kafka.sh");
    assert!(
        o.status.success(),
        "scripts/kafka.sh {command} (port {PRIVATE_BROKER_PORT}) failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Stops the private broker when the test ends, however it ends.
struct PrivateBroker;

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh");
        let _ = Command::new(script)
            .arg("reset")
            .env("KAFKA_PORT", PRIVATE_BROKER_PORT.to_string())
            .output();
    }
}

#[test]
fn a_broker_restart_mid_run_folds_to_the_uninterrupted_outputs() {
    // The main broker answering means Kafka is installed (and required when it must be).
    if broker().is_none() {
        return;
    }
    let trials = env_number("VIGIL_BROKER_TRIALS", 2);
    let mut rng = env_number("VIGIL_CRASH_SEED", 1) ^ 0xB40C;
    private_broker("start");
    let _stop = PrivateBroker;
    let brokers = format!("127.0.0.1:{PRIVATE_BROKER_PORT}");
    let (s, want, reference_secs) = prepare(&brokers, "broker restart");
    for trial in 0..trials {
        let name = format!("broker restart trial {}/{trials}", trial + 1);
        let prefix = unique("vigil-restart-broker");
        let env = output_env(&brokers, &prefix);
        // Every other trial waits for deliveries only 1 s: the run must then stop with the
        // error (not hang), and its restart must still fold to the reference.
        let impatient = trial % 2 == 1;
        let mut first_env = env.clone();
        if impatient {
            first_env.push(("VIGIL__KAFKA__DELIVERY_TIMEOUT".into(), "1s".into()));
        }
        // While the run processes (after its start-up, before its end): a stop after the end
        // would test nothing.
        let delay = Duration::from_secs_f64(reference_secs * (0.4 + 0.4 * uniform(&mut rng)));
        let out = s.dir.path().join(format!("out-broker-{trial}"));
        let mut child = spawn(&run_args(&s.input, &prefix, &out, &s.config, true), &first_env);
        std::thread::sleep(delay);
        let running_at_stop = child.0.try_wait().unwrap().is_none();
        let t0 = Instant::now();
        private_broker("stop");
        private_broker("start");
        let outage = t0.elapsed().as_secs_f64();
        // The run rides out the outage, or stops with an error and is started again (as an
        // operator would); either way the folded outputs must equal the reference.
        let deadline = Instant::now() + Duration::from_secs(300);
        let status = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: the run did not finish within 300 s of the restart"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        // A run that fails ends (the deadline above): it does not hang on its other worker.
        let how = if status.success() {
            if impatient {
                "the run rode it out (no delivery fell in the outage)".to_string()
            } else {
                "the run rode it out".to_string()
            }
        } else {
            let mut err = String::new();
            if let Some(mut e) = child.0.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            let restart = s.dir.path().join(format!("out-broker-{trial}-restarted"));
            run_ok(&run_args(&s.input, &prefix, &restart, &s.config, true), &env);
            let last = err
                .lines()
                .rev()
                .find(|l| l.contains("rror"))
                .unwrap_or("")
                .trim()
                .to_string();
            // A delivery that could not wait names the brokers and the time it waited.
            if impatient && last.contains("awaiting delivery") {
                assert!(last.contains("did not answer within 1000 ms"), "{name}: {last}");
            }
            format!("the run stopped ({status}: {last}) and was started again")
        };
        assert_same(&name, &folded(&brokers, &prefix), &want);
        eprintln!(
            "{name}: broker stopped {:.2} s into the run ({}), back after {outage:.1} s; {how}; folded outputs equal \
             the uninterrupted run's",
            delay.as_secs_f64(),
            if running_at_stop {
                "mid-run"
            } else {
                "after the run ended"
            }
        );
    }
}
