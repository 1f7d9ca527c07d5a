//! Live queries: the engine runs in-process with its server on a free loopback port; every
//! endpoint is asked, during ingestion and after it, and the answers are compared with the
//! single-threaded oracle at the tick each answer states (`as_of_tick`). Also: bad requests
//! get JSON 4xx, concurrent clients, 1 and 2 workers answer byte for byte the same, the
//! binary's `--serve`/`--exit-when-done`/`vigil query`, and two processes of a cluster
//! (`vigil launch`) answering the same.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::oracle::{Oracle, OracleInput};
use serde_json::{json, Value};
use vigil::config::Config;
use vigil::features::FeatureLayout;
use vigil::output::{CaptureSink, Captured};
use vigil::pipeline::{run, RunOutcome, RunSpec};
use vigil::query::client::{self, free_loopback_addr};
use vigil::query::request::percent_encode;
use vigil::source::file::InputSpec;

const TIMEOUT: Duration = Duration::from_secs(20);

fn generated(events: u64, devices: u32, seed: u64) -> Vec<u8> {
    common::noisy_csv(events, devices, seed, 0.01)
}

fn test_config() -> Config {
    common::config(
        "[windows]\nsliding = [\"10s\", \"1m\", \"5m\"]\ntumbling = [\"30s\", \"1m\"]\n[input]\nbatch_records = 500\n[server]\nhistory_retention = \"24h\"\nstep_events = 40\n",
    )
}

/// Starts the engine on its own thread; returns the server address and the thread, which
/// ends (with the outcome, still serving) when the input is done.
fn start(
    config: &Config,
    data: &[u8],
    workers: usize,
) -> (String, std::thread::JoinHandle<RunOutcome>, Arc<Mutex<Captured>>) {
    let captured = Arc::new(Mutex::new(Captured::default()));
    let addr: SocketAddr = free_loopback_addr().unwrap();
    let spec = RunSpec {
        config: config.clone(),
        input: InputSpec::Memory {
            name: "input".into(),
            data: Arc::new(data.to_vec()),
        },
        format: None,
        workers,
        sinks: CaptureSink::factory(captured.clone()),
        progress: false,
        serve: Some(addr),
        cluster: None,
    };
    let handle = std::thread::spawn(move || run(spec).expect("engine run"));
    (addr.to_string(), handle, captured)
}

fn get(addr: &str, path: &str) -> (u16, Value) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match client::get(addr, path, TIMEOUT) {
            Ok(r) => {
                return (
                    r.status,
                    serde_json::from_str(&r.body).unwrap_or_else(|_| panic!("{path}: not JSON: {}", r.body)),
                )
            }
            // The server may not be listening yet right after the start.
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("{path}: {e}"),
        }
    }
}

/// JSON equality, numbers within a few ulps: the server prints floats exactly (shortest
/// round-trip form), but serde_json's default parser may land one ulp off.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-13 * x.abs().max(y.abs()),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

macro_rules! assert_same {
    ($a:expr, $b:expr, $($msg:tt)+) => {{
        let (a, b) = (&$a, &$b);
        assert!(same(a, b), "{}:\n  left: {a}\n right: {b}", format!($($msg)+));
    }};
}

fn devices_of(oracle: &Oracle) -> Vec<String> {
    let mut d: Vec<String> = oracle.accepted.iter().map(|e| e.event.device.to_string()).collect();
    d.sort();
    d.dedup();
    d
}

type States = std::collections::HashMap<u64, BTreeMap<vigil::event::DeviceId, vigil::window::DeviceWindows>>;

/// Checks a `/devices/{id}` answer against the oracle's state at its `as_of_tick`.
fn check_device(config: &Config, oracle: &Oracle, cache: &mut States, device: &str, status: u16, body: &Value) {
    if status == 503 {
        return; // no tick complete yet
    }
    let tick = body["as_of_tick"]
        .as_u64()
        .unwrap_or_else(|| panic!("no as_of_tick: {body}"));
    assert_eq!(
        body["as_of_ms"].as_i64().unwrap(),
        (tick as i64 + 1) * config.tick_ms() as i64 - 1,
        "as_of_ms states the end of as_of_tick"
    );
    let expected = cache.entry(tick).or_insert_with(|| oracle.state_at(config, tick));
    let Some(state) = expected.get(device) else {
        assert_eq!(status, 404, "{device} unknown at tick {tick}, got {body}");
        assert!(body["error"].is_string());
        return;
    };
    assert_eq!(status, 200, "{device} at tick {tick}: {body}");
    assert_eq!(body["device_id"], json!(device));
    assert_eq!(body["last_seen_ms"], json!(state.last_seen_ms), "{device} at {tick}");
    let windows = body["windows"].as_array().unwrap();
    assert_eq!(windows.len(), state.windows.len());
    for (w, expected) in windows.iter().zip(&state.windows) {
        let mut w = w.as_object().unwrap().clone();
        w.remove("window");
        w.remove("window_ms");
        assert_same!(Value::Object(w), expected.to_json(), "{device} at tick {tick}");
    }
    let layout = FeatureLayout::new(config);
    assert_same!(
        body["feature_vector"],
        json!(layout.vector(state)),
        "{device} features at tick {tick}"
    );
}

/// The oracle's top `k` by feature `name` at `tick` (value desc, device asc), as `/top` lists it.
fn expected_top(
    config: &Config,
    state: &BTreeMap<vigil::event::DeviceId, vigil::window::DeviceWindows>,
    name: &str,
    k: usize,
) -> Value {
    let layout = FeatureLayout::new(config);
    let i = layout.index_of(name).unwrap();
    let mut ranked: Vec<(f64, String)> = state
        .iter()
        .map(|(d, s)| (layout.vector(s)[i], d.to_string()))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    ranked.truncate(k);
    Value::Array(
        ranked
            .iter()
            .map(|(v, d)| json!({"device_id": d, "value": v}))
            .collect(),
    )
}

/// The anomalies open at `tick` — the captured anomaly changes accumulated to it — as
/// `(device, detector, tick)`, sorted.
fn open_anomalies(captured: &Mutex<Captured>, tick: u64) -> Vec<(String, String, u64)> {
    let mut open: BTreeMap<(String, String, u64), isize> = BTreeMap::new();
    for (a, t, d) in &captured.lock().unwrap().anomalies {
        if *t <= tick {
            *open
                .entry((a.device.to_string(), a.detector.to_string(), a.tick))
                .or_default() += d;
        }
    }
    open.retain(|_, c| *c > 0);
    open.into_keys().collect()
}

/// An `/anomalies` answer as `(device, detector, tick)`, sorted; checks it lists the most
/// recent first and counts them.
fn listed_anomalies(config: &Config, body: &Value) -> Vec<(String, String, u64)> {
    let mut got: Vec<(String, String, u64)> = body["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["device_id"].as_str().unwrap().to_string(),
                a["detector"].as_str().unwrap().to_string(),
                a["ts_ms"].as_u64().unwrap() / config.tick_ms(),
            )
        })
        .collect();
    let ts: Vec<u64> = got.iter().map(|g| g.2).collect();
    assert!(ts.windows(2).all(|w| w[0] >= w[1]), "most recent first");
    assert_eq!(body["count"], json!(got.len()));
    got.sort();
    got
}

#[test]
fn answers_equal_the_oracle_during_and_after_ingestion() {
    let config = test_config();
    let data = generated(150_000, 30, 5);
    let oracle = Oracle::run(&config, None, &OracleInput::single("input", &data));
    let devices = devices_of(&oracle);
    let (addr, engine, captured) = start(&config, &data, 2);

    // Ask while the input is being ingested.
    let done = Arc::new(AtomicBool::new(false));
    let asker = {
        let (addr, devices, done) = (addr.clone(), devices.clone(), done.clone());
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            let mut i = 0;
            while !done.load(Ordering::Relaxed) && answers.len() < 1_000 {
                // Mostly devices; every fifth a listing, which gathers a part from each worker.
                let device = devices[(i * 7) % devices.len()].clone();
                let path = match i % 10 {
                    4 => "/top?feature=events_10s&k=7".to_string(),
                    9 => "/anomalies?limit=10000".to_string(),
                    _ => format!("/devices/{}", percent_encode(&device)),
                };
                let (status, body) = get(&addr, &path);
                answers.push((path, device, status, body));
                i += 1;
            }
            answers
        })
    };
    let outcome = engine.join().unwrap();
    done.store(true, Ordering::Relaxed);
    let during = asker.join().unwrap();
    let t_end = (outcome.summary.end_event_time_ms.unwrap() / config.tick_ms() as i64) as u64;

    let mut ticks = std::collections::BTreeSet::new();
    let mut cache = States::new();
    let mut listings = 0;
    for (path, device, status, body) in &during {
        if let Some(t) = body["as_of_tick"].as_u64() {
            ticks.insert(t);
        }
        if path.starts_with("/devices/") {
            check_device(&config, &oracle, &mut cache, device, *status, body);
            continue;
        }
        if *status == 503 {
            continue; // no tick complete yet
        }
        assert_eq!(*status, 200, "{path}: {body}");
        let tick = body["as_of_tick"].as_u64().unwrap();
        if path.starts_with("/top") {
            let state = cache.entry(tick).or_insert_with(|| oracle.state_at(&config, tick));
            assert_same!(
                body["devices"],
                expected_top(&config, state, "events_10s", 7),
                "top while ingesting, at tick {tick}"
            );
        } else {
            assert_eq!(
                listed_anomalies(&config, body),
                open_anomalies(&captured, tick),
                "open anomalies while ingesting, at tick {tick}"
            );
        }
        listings += 1;
    }
    assert!(listings > 0, "listings were answered while ingesting");
    eprintln!(
        "{} answers during ingestion at {} distinct ticks",
        during.len(),
        ticks.len()
    );
    assert!(
        ticks.iter().any(|&t| t < t_end),
        "some answers were read before the end: {ticks:?}"
    );

    // After the input: every device at T_end.
    for device in &devices {
        let (status, body) = get(&addr, &format!("/devices/{}", percent_encode(device)));
        assert_eq!(body["as_of_tick"], json!(t_end));
        check_device(&config, &oracle, &mut cache, device, status, &body);
    }

    // Top-k at T_end equals sorting the oracle's vectors (value desc, device asc).
    let state = oracle.state_at(&config, t_end);
    for name in [
        "events_10s",
        "bytes_out_5m",
        "distinct_dst_1m",
        "value_max_1m",
        "rate_ratio",
    ] {
        let (status, body) = get(&addr, &format!("/top?feature={name}&k=7"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["as_of_tick"], json!(t_end));
        assert_same!(body["devices"], expected_top(&config, &state, name, 7), "top by {name}");
    }

    // Open anomalies at T_end equal the captured anomaly changes accumulated to T_end.
    let (status, body) = get(&addr, "/anomalies?limit=10000");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        listed_anomalies(&config, &body),
        open_anomalies(&captured, t_end),
        "open anomalies at T_end"
    );

    // History: the closed 30 s windows of a device, as the oracle's tumbling rows.
    let end_ms = (t_end as i64 + 1) * config.tick_ms() as i64;
    let all_rows = oracle.tumbling_rows(&config);
    for device in devices.iter().take(5) {
        let expected: Vec<Value> = all_rows
            .iter()
            .filter(|r| r.device == device.as_str() && r.window_len_ms == 30_000 && r.window_end_ms <= end_ms)
            .map(|r| r.to_json())
            .collect();
        let (status, body) = get(
            &addr,
            &format!("/devices/{}/history?window=30s&limit=10000", percent_encode(device)),
        );
        assert_eq!(status, 200, "{body}");
        assert_same!(body["rows"], Value::Array(expected), "history of {device}");
    }
    let (_, body) = get(&addr, &format!("/devices/{}/history?window=1m&from=0&to=1", devices[0]));
    assert_eq!(body["rows"], json!([]));

    // Health and metrics.
    let (status, health) = get(&addr, "/health");
    assert_eq!(status, 200);
    assert_eq!(health["as_of_ms"], json!(end_ms - 1), "{health}");
    assert_eq!(health["events_read"], json!(oracle.read));
    let too_far_ahead = oracle
        .rejects
        .iter()
        .filter(|r| r.reason == vigil::decode::RejectReason::TooFarAhead)
        .count();
    assert_eq!(health["events_too_far_ahead"], json!(too_far_ahead), "{health}");
    let metrics = client::get(&addr, "/metrics", TIMEOUT).unwrap();
    assert_eq!(metrics.status, 200);
    for needle in [
        "vigil_events_read_total ",
        "vigil_events_rejected_total{reason=\"late\"}",
        "vigil_events_rejected_total{reason=\"too_far_ahead\"}",
        "vigil_events_late_total",
        "vigil_frontier_lag_ms",
        "vigil_query_duration_seconds_bucket{le=\"+Inf\"}",
        "vigil_queries_total{endpoint=\"device\",code=\"2xx\"}",
    ] {
        assert!(metrics.body.contains(needle), "{needle} in /metrics:\n{}", metrics.body);
    }
    // One kept-alive connection (as a dashboard keeps one): the same answers as a connection
    // per request, over a single TCP connection, large bodies included.
    let connections = |body: &str| -> u64 {
        body.lines()
            .find_map(|l| l.strip_prefix("vigil_http_connections_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .expect("vigil_http_connections_total in /metrics") as u64
    };
    let before = connections(&client::get(&addr, "/metrics", TIMEOUT).unwrap().body);
    let kept = client::Client::new(&addr, &client::ClientOptions::with_timeout(TIMEOUT)).unwrap();
    let mut paths: Vec<String> = devices
        .iter()
        .take(20)
        .map(|d| format!("/devices/{}", percent_encode(d)))
        .collect();
    paths.push("/top?feature=events_10s&k=1000".into());
    paths.push("/anomalies?limit=10000".into());
    paths.push("/devices/no-such-device".into());
    for path in &paths {
        let (a, b) = (kept.get(path).unwrap(), client::get(&addr, path, TIMEOUT).unwrap());
        assert_eq!((a.status, &a.body), (b.status, &b.body), "{path} kept alive and not");
    }
    let metrics = kept.get("/metrics").unwrap();
    assert!(metrics.body.contains("vigil_query_duration_seconds_count"));
    // One connection per one-shot request, and one for every kept-alive request.
    assert_eq!(
        connections(&metrics.body) - before,
        paths.len() as u64 + 1,
        "every kept-alive request went over the first connection"
    );
    outcome.serving.expect("serving").stop().unwrap();
    assert!(
        client::get(&addr, "/health", Duration::from_secs(1)).is_err(),
        "stopped"
    );
}

#[test]
fn bad_requests_get_json_errors_and_do_not_hurt_the_engine() {
    let config = test_config();
    let data = generated(5_000, 5, 2);
    let (addr, engine, _) = start(&config, &data, 2);
    let outcome = engine.join().unwrap();
    for (path, status) in [
        ("/devices/no-such-device", 404),
        ("/devices/no-such-device/history", 404),
        ("/nope", 404),
        // `/` is the dashboard (tests/dashboard.rs); an unknown asset is an unknown endpoint.
        ("/assets/nope.js", 404),
        ("/devices/a/b/c", 404),
        ("/devices/%zz", 400),
        ("/devices/%C3%28", 400),
        ("/devices/x?unknown=1", 400),
        ("/devices/x/history?window=2m", 400),
        ("/devices/x/history?from=yesterday", 400),
        ("/top", 400),
        ("/top?feature=bogus", 400),
        ("/top?feature=events_1m&k=-3", 400),
        ("/top?feature=events_1m&k=100000000", 400),
        ("/anomalies?detector=bogus", 400),
        ("/anomalies?since=soon", 400),
        ("/anomalies?limit=0", 400),
    ] {
        let (got, body) = get(&addr, path);
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{path}: {body}");
    }
    // Raw garbage, a huge path, a POST and a half-closed connection.
    let raw = |bytes: &[u8]| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(bytes);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    raw(b"\x00\x01\x02 garbage\r\n\r\n");
    raw(format!(
        "GET /devices/{} HTTP/1.1\r\nConnection: close\r\n\r\n",
        "x".repeat(5000)
    )
    .as_bytes());
    let post = raw(b"POST /health HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    raw(b"GET /health HTTP/1.1\r\n");
    // Still answering.
    let (status, _) = get(&addr, "/health");
    assert_eq!(status, 200);
    outcome.serving.unwrap().stop().unwrap();
}

#[test]
fn concurrent_clients_and_one_vs_two_workers_answer_the_same() {
    let config = test_config();
    let data = generated(20_000, 12, 9);
    let oracle = Oracle::run(&config, None, &OracleInput::single("input", &data));
    let devices = devices_of(&oracle);
    let mut paths: Vec<String> = devices
        .iter()
        .flat_map(|d| {
            let d = percent_encode(d);
            [format!("/devices/{d}"), format!("/devices/{d}/history?window=1m")]
        })
        .collect();
    paths.extend([
        "/top?feature=events_1m&k=5".to_string(),
        "/top?feature=value_mean_5m&k=50".to_string(),
        "/anomalies".to_string(),
        "/anomalies?limit=3".to_string(),
        "/devices/unknown".to_string(),
    ]);
    let mut bodies: Vec<Vec<String>> = Vec::new();
    for workers in [1, 2] {
        let (addr, engine, _) = start(&config, &data, workers);
        let outcome = engine.join().unwrap();
        // Eight clients at once, each asking everything.
        let threads: Vec<_> = (0..8)
            .map(|c| {
                let (addr, paths) = (addr.clone(), paths.clone());
                std::thread::spawn(move || {
                    let mut out = Vec::new();
                    for i in 0..paths.len() {
                        let path = &paths[(i + c * 3) % paths.len()];
                        let r = client::get(&addr, path, TIMEOUT).unwrap();
                        assert!(r.status == 200 || r.status == 404, "{path}: {} {}", r.status, r.body);
                        out.push((path.clone(), r.body));
                    }
                    out.sort();
                    out
                })
            })
            .collect();
        let results: Vec<Vec<(String, String)>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for r in &results[1..] {
            assert_eq!(r, &results[0], "every client got the same answers");
        }
        bodies.push(results[0].iter().map(|(_, b)| b.clone()).collect());
        outcome.serving.unwrap().stop().unwrap();
    }
    assert_eq!(bodies[0], bodies[1], "1 and 2 workers answer byte for byte the same");
}

fn vigil_bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.current_dir(env!("CARGO_MANIFEST_DIR")).env("VIGIL_LOG", "warn");
    c
}

#[test]
fn the_binary_serves_and_vigil_query_prints_tables() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.csv");
    std::fs::write(&input, generated(8_000, 6, 4)).unwrap();
    let addr = free_loopback_addr().unwrap().to_string();
    let out = dir.path().join("out");

    // --exit-when-done leaves after the input.
    let o = vigil_bin()
        .args([
            "run",
            "--progress",
            "never",
            "--serve",
            &addr,
            "--exit-when-done",
            "--input",
        ])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // An explicit --serve keeps serving after the input, until killed (another --out: a
    // run refuses a folder holding another run's files).
    let out = dir.path().join("out-serving");
    let mut child = vigil_bin()
        .args(["run", "--progress", "never", "-w", "2", "--serve", &addr, "--input"])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let h = client::get(&addr, "/health", Duration::from_secs(2));
        if h.as_ref()
            .is_ok_and(|r| r.json()["phase"].as_str().is_some_and(|p| p.starts_with("input done")))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the server came up and finished the input");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        out.join("summary.json").exists(),
        "outputs are written before serving on"
    );
    let query = |args: &[&str]| {
        vigil_bin()
            .arg("query")
            .args(args)
            .args(["--addr", &addr])
            .output()
            .unwrap()
    };
    let (_, top) = get(&addr, "/top?feature=events_1h&k=1");
    let device = top["devices"][0]["device_id"].as_str().unwrap().to_string();
    let o = query(&["device", &device]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        text.contains(&device) && text.contains("windows") && text.contains("events_1m"),
        "{text}"
    );
    let o = query(&["device", &device, "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["as_of_ms"].is_i64());
    for args in [
        &["top", "events_1m", "-k", "3"][..],
        &["anomalies"],
        &["health"],
        &["history", device.as_str()],
    ] {
        let o = query(args);
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("as of") || args[0] == "health",
            "{args:?}"
        );
    }
    let o = query(&["device", "no-such-device"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Port in use: a clear error naming the address.
    let o = vigil_bin()
        .args(["run", "--progress", "never", "--serve", &addr, "--input"])
        .arg(&input)
        .arg("--out")
        .arg(dir.path().join("out2"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&addr),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    child.kill().unwrap();
    let _ = child.wait();

    // Nobody listening: a clear error.
    let o = query(&["health"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot reach"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Two processes of a cluster started as a user would (`vigil launch -w 2 --hostfile H --
/// --serve BASE ...`: process p serves on BASE + p) give identical answers for the same
/// device at the same time (both read at the run's final frontier once their input is done).
#[test]
fn two_processes_of_a_cluster_answer_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.csv");
    std::fs::write(&input, generated(20_000, 10, 8)).unwrap();
    let hostfile = dir.path().join("hosts");
    let ports: Vec<String> = (0..2).map(|_| free_loopback_addr().unwrap().to_string()).collect();
    std::fs::write(&hostfile, ports.join("\n") + "\n").unwrap();
    // A base port whose successor is free too.
    let base = loop {
        let a = free_loopback_addr().unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", a.port() + 1)).is_ok() {
            break a;
        }
    };
    let serve: Vec<String> = (0..2).map(|p| format!("127.0.0.1:{}", base.port() + p)).collect();
    let mut launcher = vigil_bin()
        .args(["launch", "-w", "2", "--hostfile"])
        .arg(&hostfile)
        .args(["--", "--progress", "never", "--serve", &base.to_string(), "--input"])
        .arg(&input)
        .arg("--out")
        .arg(dir.path().join("out"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for addr in &serve {
        loop {
            let h = client::get(addr, "/health", Duration::from_secs(2));
            if h.as_ref()
                .is_ok_and(|r| r.json()["phase"].as_str().is_some_and(|p| p.starts_with("input done")))
            {
                break;
            }
            assert!(Instant::now() < deadline, "process at {addr} finished its input");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let (_, top) = get(&serve[0], "/top?feature=events_1h&k=10");
    let mut paths = vec!["/top?feature=events_1h&k=10".to_string(), "/anomalies".to_string()];
    for d in top["devices"].as_array().unwrap() {
        let d = percent_encode(d["device_id"].as_str().unwrap());
        paths.push(format!("/devices/{d}"));
        paths.push(format!("/devices/{d}/history"));
    }
    for path in &paths {
        let a = client::get(&serve[0], path, TIMEOUT).unwrap();
        let b = client::get(&serve[1], path, TIMEOUT).unwrap();
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert_eq!(
            (a.status, &a.body),
            (b.status, &b.body),
            "{path}: process 0 and 1 agree"
        );
    }
    // Ctrl-C to the launcher ends every process; the cluster's file outputs were merged.
    let _ = std::process::Command::new("kill")
        .args(["-INT", &launcher.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while launcher.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = launcher.kill();
            panic!("vigil launch did not stop on Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(dir.path().join("out/summary.json").exists());
}
