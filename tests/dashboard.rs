//! The dashboard in a real browser: `vigil run` serves generated data with known incidents
//! (with a token configured), and headless Chromium (Debian's `chromium`, driven by
//! `tests/browser/dashboard.mjs` through playwright-core) opens the page. What the page
//! shows is compared with the API: the anomaly table with `/anomalies`, the timeline with
//! `/episodes`, a device's charts with its `/history` windows (one point per window) and its
//! episodes (one band per episode overlapping them), the top-k table with `/top`; no console
//! error, no failed request. Screenshots land in `target/tmp/dashboard/`.
//!
//! Needs `/usr/bin/chromium`, node and `npm ci` in `tests/browser/` (scripts/test.sh
//! installs them); skipped with a message otherwise, unless `VIGIL_REQUIRE_BROWSER=1`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const TOKEN: &str = "dashboard-test-token-0123456789";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Why the browser test cannot run here, if it cannot.
fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("no Chromium at {chromium} (apt-get install chromium)"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("no node on PATH".into());
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Some("no tests/browser/node_modules (npm ci in tests/browser)".into());
    }
    None
}

/// GET with the token; (status, JSON body or Null).
fn get(addr: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    try_get(addr, path, token).unwrap()
}

/// [`get`], with the connection's failure as an error (for the probe while the server starts).
fn try_get(addr: &str, path: &str, token: Option<&str>) -> std::io::Result<(u16, Value)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

fn api(addr: &str, path: &str) -> Value {
    let (status, body) = get(addr, path, Some(TOKEN));
    assert_eq!(status, 200, "{path}: {body}");
    body
}

struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn vigil() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.current_dir(env!("CARGO_MANIFEST_DIR")).env("VIGIL_LOG", "warn");
    c
}

/// Generates events with incidents and serves them (token required) until dropped.
fn serve(dir: &Path) -> (Serving, String) {
    let input = dir.join("events.csv");
    let o = vigil()
        .args([
            "generate",
            "--events",
            "60000",
            "--devices",
            "40",
            "--seed",
            "7",
            "--out",
        ])
        .arg(&input)
        .arg("--labels")
        .arg(dir.join("labels.jsonl"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The generator's incidents are over before its data ends; these open some at the end
    // (two readings far off each sensor's baseline: `value_outlier` and `corruption`;
    // gigabytes to an external address).
    let text = std::fs::read_to_string(&input).unwrap();
    let last: i64 = text.lines().last().unwrap().split(',').next().unwrap().parse().unwrap();
    let mut more = String::new();
    for i in 1..=5 {
        for at in [last - 500, last - 499] {
            more += &format!(
                "{at},sensor-000{i},192.168.16.{},192.168.1.10,8883,tcp,1500,150,7,20,99999.5\n",
                i + 1
            );
        }
    }
    for i in 2..=3 {
        more += &format!(
            "{},host-000{i},10.0.0.{i},203.0.113.9,443,tcp,4000000000,1000,900000,60000,\n",
            last - 2000
        );
    }
    std::fs::write(&input, text + &more).unwrap();
    let addr = vigil::query::client::free_loopback_addr().unwrap().to_string();
    let child = vigil()
        .args(["run", "--progress", "never", "-w", "2", "--serve", &addr, "--input"])
        .arg(&input)
        .arg("--out")
        .arg(dir.join("out"))
        .env("VIGIL__SERVER__TOKEN", TOKEN)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let serving = Serving(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // A connection refused or reset while the process starts is "not up yet".
        let up = try_get(&addr, "/health", None)
            .is_ok_and(|(_, health)| health["phase"].as_str().is_some_and(|p| p.starts_with("input done")));
        if up {
            break;
        }
        assert!(Instant::now() < deadline, "the run finished its input in time");
        std::thread::sleep(Duration::from_millis(100));
    }
    (serving, addr)
}

/// GET without parsing: (status, the head, the body).
fn get_raw(addr: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or_default();
    let status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn keys(list: &Value) -> Vec<(String, String, i64)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let ts = a.get("ts_ms").or_else(|| a.get("start_ms")).unwrap();
            (
                a["detector"].as_str().unwrap().into(),
                a["device_id"].as_str().unwrap().into(),
                ts.as_i64().unwrap(),
            )
        })
        .collect()
}

/// What the page reads, without a browser: the page and its assets need no token and come
/// from the binary; pages of `/anomalies` put together are the whole list; the severity
/// filter keeps exactly that severity and above; the open episodes of `/episodes` are the
/// open anomalies (one process), and `/health` counts them by detector.
#[test]
fn the_api_behind_the_dashboard_pages_filters_and_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let (_serving, addr) = serve(dir.path());
    let (status, head, page) = get_raw(&addr, "/");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("Content-Type: text/html") && page.contains("/assets/app.js"),
        "{head}"
    );
    for asset in [
        "/assets/app.js",
        "/assets/app.css",
        "/assets/uPlot.iife.min.js",
        "/assets/uPlot.min.css",
    ] {
        let (status, _, body) = get_raw(&addr, asset);
        assert_eq!(status, 200, "{asset}");
        assert!(body.len() > 500, "{asset}");
    }
    assert_eq!(
        get_raw(&addr, "/assets/../Cargo.toml").0,
        401,
        "not an asset: needs the token"
    );

    let all = keys(&api(&addr, "/anomalies?limit=1000")["anomalies"]);
    assert!(all.len() >= 5, "{all:?}");
    let mut paged = Vec::new();
    for offset in (0..all.len() + 2).step_by(2) {
        let page = api(&addr, &format!("/anomalies?limit=2&offset={offset}"));
        assert_eq!(page["offset"], offset);
        paged.extend(keys(&page["anomalies"]));
    }
    assert_eq!(paged, all, "pages put together are the list");
    let rank = |s: &str| {
        ["low", "medium", "high", "critical"]
            .iter()
            .position(|x| *x == s)
            .unwrap()
    };
    let every = api(&addr, "/anomalies?limit=1000");
    for severity in ["medium", "high", "critical"] {
        let want: Vec<_> = every["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| rank(a["severity"].as_str().unwrap()) >= rank(severity))
            .cloned()
            .collect();
        let got = api(&addr, &format!("/anomalies?limit=1000&severity={severity}"));
        assert_eq!(keys(&got["anomalies"]), keys(&Value::Array(want)), "{severity}");
    }
    assert_eq!(get(&addr, "/anomalies?severity=urgent", Some(TOKEN)).0, 400);
    assert_eq!(get(&addr, "/anomalies?offset=-1", Some(TOKEN)).0, 400);

    let open = api(&addr, "/episodes?open=true&limit=1000");
    let mut open_keys = keys(&open["episodes"]);
    let mut all_sorted = all.clone();
    open_keys.sort();
    all_sorted.sort();
    assert_eq!(open_keys, all_sorted, "the open episodes are the open anomalies");
    let episodes = api(&addr, "/episodes?limit=1");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/summary.json")).unwrap()).unwrap();
    assert_eq!(
        episodes["total"], summary["anomalies"],
        "every episode of the run is listed"
    );
    let health = get(&addr, "/health", None).1;
    let by_detector: u64 = health["anomalies_open_by_detector"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_detector as usize, all.len());
    assert_eq!(health["devices"], summary["devices"]);
    assert_eq!(get(&addr, "/episodes?open=maybe", Some(TOKEN)).0, 400);
}

#[test]
fn the_dashboard_shows_what_the_api_answers_in_a_real_browser() {
    if let Some(why) = missing() {
        assert!(
            std::env::var("VIGIL_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "VIGIL_REQUIRE_BROWSER=1 but {why}"
        );
        eprintln!("SKIPPED the browser test: {why}");
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (_serving, addr) = serve(dir.path());

    // The page is open; the data behind it needs the token.
    let (status, page) = get(&addr, "/", None);
    assert_eq!(
        (status, page),
        (200, Value::Null),
        "the page (HTML, not JSON) needs no token"
    );
    assert_eq!(get(&addr, "/anomalies", None).0, 401);

    let open = api(&addr, "/anomalies?limit=50");
    let open_rows: Vec<(String, String, i64)> = open["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["detector"].as_str().unwrap().into(),
                a["device_id"].as_str().unwrap().into(),
                a["ts_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(
        !open_rows.is_empty(),
        "the generated incidents leave anomalies open: {open}"
    );
    let episodes = api(&addr, "/episodes?limit=2000");
    let total = episodes["total"].as_u64().unwrap();
    let device = episodes["episodes"][0]["device_id"].as_str().unwrap().to_string();

    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&out_dir).unwrap();
    let o = Command::new("node")
        .current_dir(browser_dir())
        .arg("dashboard.mjs")
        .arg(format!("http://{addr}"))
        .arg(&out_dir)
        .arg(&device)
        .arg(TOKEN)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the browser script failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let seen: Value = serde_json::from_slice(o.stdout.trim_ascii()).unwrap();
    assert_eq!(seen["errors"], Value::Array(vec![]), "console errors: {seen}");
    assert_eq!(seen["requests_failed"], Value::Array(vec![]), "{seen}");

    // The table lists the open anomalies, newest first, as /anomalies does (both read after
    // the input, so at the same final tick).
    let rows: Vec<(String, String, i64)> = seen["overview"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["detector"].as_str().unwrap().into(),
                r["device_id"].as_str().unwrap().into(),
                r["ts_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, open_rows, "the anomaly table is /anomalies' first page");
    assert_eq!(
        seen["overview"]["timeline_episodes"].as_u64(),
        Some(total.min(2000)),
        "one bar per episode"
    );
    assert!(seen["all_episodes_page"]
        .as_str()
        .unwrap()
        .ends_with(&format!(" of {total}")));

    // The device page: one point per closed 1-minute window, one band per episode over them
    // (the newest episode's device: its episode is still open or just closed).
    let history = api(&addr, &format!("/devices/{device}/history?window=1m&limit=1000"));
    let windows = history["rows"].as_array().unwrap();
    // The charts' x axis runs from the first window to the answer's as_of.
    let as_of = history["as_of_ms"].as_i64().unwrap();
    let (from, to) = (windows[0]["window_start_ms"].as_i64().unwrap(), as_of);
    let device_episodes = api(&addr, &format!("/episodes?device={device}&limit=1000"));
    let bands = device_episodes["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["start_ms"].as_i64().unwrap() <= to && e["end_ms"].as_i64().unwrap_or(as_of) >= from)
        .count();
    assert!(bands >= 1, "the device's newest episode is on its charts");
    let d = &seen["device"];
    assert_eq!(d["id"], device.as_str());
    let charts = d["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 4, "{d}");
    for c in charts {
        assert_eq!(c["points"].as_u64(), Some(windows.len() as u64), "{c}");
        assert_eq!(c["bands"].as_u64(), Some(bands as u64), "{c}");
        assert!(c["canvases"].as_u64().unwrap() >= 1, "uPlot drew {c}");
    }
    assert_eq!(
        d["episodes"].as_u64(),
        Some(device_episodes["total"].as_u64().unwrap()),
        "{d}"
    );
    let layout = api(&addr, "/features");
    assert_eq!(
        d["features"].as_u64(),
        Some(layout["features"].as_array().unwrap().len() as u64)
    );

    // Top: the server's top-k for the feature shown.
    let feature = seen["top"]["feature"].as_str().unwrap();
    let top = api(&addr, &format!("/top?feature={feature}&k=25"));
    let want: Vec<&Value> = top["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["device_id"])
        .collect();
    let got: Vec<&Value> = seen["top"]["devices"].as_array().unwrap().iter().collect();
    assert_eq!(got, want);

    // A tab without the token is asked for it, with the server's reason.
    assert!(
        seen["token_prompt"].as_str().unwrap_or_default().contains("token"),
        "{seen}"
    );
    for shot in ["overview.png", "device.png", "top.png"] {
        let len = std::fs::metadata(out_dir.join(shot)).map_or(0, |m| m.len());
        assert!(len > 10_000, "{shot} written ({len} bytes)");
    }
    eprintln!(
        "browser test: {} open anomalies, {total} episodes, device {device} with {} windows and {bands} bands; screenshots in {}; {:.1} s",
        rows.len(),
        windows.len(),
        out_dir.display(),
        started.elapsed().as_secs_f64()
    );
}
