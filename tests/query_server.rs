//! The query server under hostile clients, on loopback: `/health` stays fast while 1,000
//! idle and 300 slow connections are held; memory comes back after a connection flood; a
//! token guards every endpoint but `/health`; TLS round trips with a self-signed
//! certificate (client, `vigil query`, `vigil train --server`); a non-loopback address is
//! refused without a token; a short campaign of random requests neither panics nor hangs it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil::config::Config;
use vigil::pipeline::RunOutcome;
use vigil::query::client::{free_loopback_addr, Client, ClientError, ClientOptions};

const TOKEN: &str = "test-token-0123456789abcdef";

/// The tests run one at a time: two measure time or memory, which the others would disturb.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// An engine that has read its input and serves on a free loopback port.
fn serve(config: &Config, events: u64, devices: u32) -> (String, RunOutcome) {
    let addr = free_loopback_addr().unwrap();
    let data = common::noisy_csv(events, devices, 5, 0.01);
    let (outcome, _) = common::engine::run_serving(config, &data, None, 1, Some(addr));
    (addr.to_string(), outcome)
}

/// One request on a connection of its own, as raw text (head and body).
fn raw(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn metric(addr: &str, name: &str) -> u64 {
    let text = raw(addr, "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics:\n{text}")) as u64
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Resident memory of this process, bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4096
}

#[test]
fn health_answers_within_100_ms_while_1000_idle_and_300_slow_connections_are_held() {
    let _one = heavy();
    let (addr, outcome) = serve(&common::config(""), 3_000, 10);
    // Both ends of every connection live in this process: 2 × 1,300 descriptors and more.
    let open_files = vigil::query::http::raise_open_files_limit();
    assert!(
        open_files >= 4_000,
        "the open-files limit ({open_files}) is too low for this test; raise `ulimit -Hn`"
    );
    let idle: Vec<TcpStream> = (0..1_000).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    let slow: Vec<TcpStream> = (0..300).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // The slow ones send a request one byte a second.
    let stop = Arc::new(AtomicBool::new(false));
    let dripping = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut slow = slow;
            let request = b"GET /health HTTP/1.1\r\nX-Slow: one byte a second\r\n\r\n";
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                for s in &mut slow {
                    let _ = s.write_all(&request[i % request.len()..][..1]);
                }
                i += 1;
                for _ in 0..10 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            slow
        })
    };
    wait_for("the server holds all 1,300 connections", || {
        metric(&addr, "vigil_http_connections_open") >= 1_301
    });
    // Fifteen /health calls, each on a new connection (connect, ask, read to the close).
    let mut took = Vec::new();
    for _ in 0..15 {
        let t0 = Instant::now();
        let answer = raw(&addr, "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
        took.push(t0.elapsed());
        assert!(
            answer.starts_with("HTTP/1.1 200 OK") && answer.contains("\"status\":\"ok\""),
            "{answer}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Still held: the server did not have to drop the idle or slow connections.
    assert!(metric(&addr, "vigil_http_connections_open") >= 1_301);
    stop.store(true, Ordering::Relaxed);
    let slow = dripping.join().unwrap();
    took.sort();
    let (best, median, worst) = (took[0], took[took.len() / 2], took[took.len() - 1]);
    eprintln!(
        "/health with 1,000 idle and 300 slow connections held: best {best:?}, median {median:?}, worst {worst:?}"
    );
    // The bound is on the median of 15 (a loaded 2-core machine may delay a single call).
    assert!(
        median < Duration::from_millis(100),
        "median /health {median:?} (best {best:?}, worst {worst:?})"
    );
    drop((idle, slow));
    outcome.serving.unwrap().stop().unwrap();
}

#[test]
fn memory_after_a_connection_flood_returns_near_where_it_was() {
    let _one = heavy();
    // The flood's unfinished heads must stay open until all of them are: on a loaded machine
    // opening 2,000 connections took longer than the default `request_timeout` (10 s), the
    // first ones were closed, and the count never reached the flood's size.
    let (addr, outcome) = serve(&common::config("[server]\nrequest_timeout = \"10m\"\n"), 3_000, 10);
    for _ in 0..200 {
        raw(&addr, "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    }
    let before = rss();
    let mut peak = before;
    // Three floods of 2,000 connections, each with 8 KiB of an unfinished request head.
    let pad = format!("GET /health HTTP/1.1\r\nX-Pad: {}", "p".repeat(8 * 1024));
    for _ in 0..3 {
        let mut flood: Vec<TcpStream> = Vec::new();
        for _ in 0..2_000 {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(pad.as_bytes()).unwrap();
            flood.push(s);
        }
        wait_for("the flood is held", || {
            metric(&addr, "vigil_http_connections_open") >= 2_001
        });
        peak = peak.max(rss());
        drop(flood);
        wait_for("the flood is gone", || {
            metric(&addr, "vigil_http_connections_open") <= 1
        });
    }
    let after = rss();
    let mb = |b: u64| b as f64 / 1e6;
    eprintln!(
        "RSS before {:.1} MB, at the flood's peak {:.1} MB, after {:.1} MB",
        mb(before),
        mb(peak),
        mb(after)
    );
    assert!(
        after < before + 24_000_000,
        "RSS before {:.1} MB, peak {:.1} MB, after {:.1} MB",
        mb(before),
        mb(peak),
        mb(after)
    );
    // And it still answers.
    assert!(raw(&addr, "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n").starts_with("HTTP/1.1 200"));
    outcome.serving.unwrap().stop().unwrap();
}

fn guarded_config(extra: &str) -> Config {
    common::config(&format!("[server]\ntoken = \"{TOKEN}\"\n{extra}"))
}

fn client(addr: &str, token: Option<&str>, ca: Option<&std::path::Path>) -> Client {
    let options = ClientOptions {
        token: token.map(str::to_string),
        ca_file: ca.map(|p| p.to_path_buf()),
        ..ClientOptions::with_timeout(Duration::from_secs(20))
    };
    Client::new(addr, &options).unwrap()
}

fn vigil_bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("VIGIL_LOG", "warn")
        .env_remove("VIGIL_TOKEN")
        .env_remove("VIGIL_CA_FILE")
        .env_remove("VIGIL__SERVER__TOKEN");
    c
}

#[test]
fn a_token_guards_every_endpoint_but_health() {
    let _one = heavy();
    let (addr, outcome) = serve(&guarded_config(""), 3_000, 10);
    for target in ["/devices/x", "/metrics", "/features", "/models", "/nope"] {
        let answer = raw(&addr, &format!("GET {target} HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(answer.starts_with("HTTP/1.1 401 Unauthorized"), "{target}: {answer}");
        assert!(answer.contains("WWW-Authenticate: Bearer"), "{answer}");
        let body: serde_json::Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["status"], 401);
        assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
    }
    // Wrong token, other scheme, a prefix of the token: 401.
    for auth in [
        "Bearer wrong-token-0123456789abcd".to_string(),
        format!("Basic {TOKEN}"),
        format!("Bearer {}", &TOKEN[..10]),
        format!("Bearer {TOKEN}x"),
    ] {
        let answer = raw(
            &addr,
            &format!("GET /features HTTP/1.1\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"),
        );
        assert!(answer.starts_with("HTTP/1.1 401"), "{auth}: {answer}");
    }
    // /health stays open (liveness probes carry no token; it shows counters, no device data).
    let health = client(&addr, None, None).get("/health").unwrap();
    assert_eq!(health.status, 200, "{}", health.body);
    // With the token: answered.
    let c = client(&addr, Some(TOKEN), None);
    assert_eq!(c.get("/features").unwrap().status, 200);
    assert_eq!(c.get("/devices/no-such-device").unwrap().status, 404);
    assert_eq!(c.get("/metrics").unwrap().status, 200);
    // `vigil query`: without the token a clear usage error; with it (flag, env, config file) answered.
    let o = vigil_bin()
        .args(["query", "features", "--addr", &addr])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("401") && err.contains("token"), "{err}");
    let o = vigil_bin()
        .args(["query", "features", "--addr", &addr])
        .env("VIGIL_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("events_1m"));
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("vigil.toml");
    std::fs::write(&toml, format!("[server]\ntoken = \"{TOKEN}\"\n")).unwrap();
    let o = vigil_bin()
        .args(["query", "features", "--addr", &addr, "--server-config"])
        .arg(&toml)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    outcome.serving.unwrap().stop().unwrap();
}

#[test]
fn tls_round_trip_with_a_self_signed_certificate() {
    let _one = heavy();
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let registry = dir.path().join("models");
    let config = guarded_config(&format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n[model]\nregistry = \"{}\"\n",
        cert.display(),
        key.display(),
        registry.display()
    ));
    let (addr, outcome) = serve(&config, 20_000, 30);
    let https = format!("https://{addr}");
    // Trusting the certificate: answered, twice over one kept-alive connection.
    let c = client(&https, Some(TOKEN), Some(&cert));
    let health = c.get("/health").unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    let features = c.get("/features").unwrap();
    assert_eq!(features.status, 200, "{}", features.body);
    // Without the token, over TLS: 401.
    assert_eq!(client(&https, None, Some(&cert)).get("/features").unwrap().status, 401);
    // Not trusting it: a TLS error that says what to do.
    match client(&https, Some(TOKEN), None).get("/health") {
        Err(e @ ClientError::Tls { .. }) => assert!(e.to_string().contains("--ca-file"), "{e}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    // Plain HTTP to the TLS port: an error, not an answer and not a hang.
    assert!(client(&addr, Some(TOKEN), None).get("/health").is_err());
    // `vigil query` and `vigil train --server` over https (--ca-file implies https).
    let o = vigil_bin()
        .args(["query", "health", "--addr", &addr, "--token", TOKEN, "--ca-file"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ok"));
    let o = vigil_bin()
        .args(["train", "--server", &https, "--no-promote", "--ca-file"])
        .arg(&cert)
        .env("VIGIL_TOKEN", TOKEN)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("registered as version 1"), "{out}");
    outcome.serving.unwrap().stop().unwrap();
}

#[test]
fn a_non_loopback_address_needs_a_token_or_insecure() {
    let _one = heavy();
    use vigil::query::server::{guard, ServerError};
    let any: SocketAddr = "0.0.0.0:7070".parse().unwrap();
    let open = common::config("");
    match guard(any, &open.server) {
        Err(e @ ServerError::Unguarded { .. }) => {
            let m = e.to_string();
            assert!(m.contains("token") && m.contains("--insecure"), "{m}");
        }
        other => panic!("expected a refusal, got {:?}", other.map(|t| t.is_some())),
    }
    assert!(guard(any, &guarded_config("").server).is_ok());
    assert!(guard(any, &common::config("[server]\ninsecure = true\n").server).is_ok());
    for local in ["127.0.0.1:7070", "[::1]:7070", "127.0.0.2:7070"] {
        assert!(guard(local.parse().unwrap(), &open.server).is_ok(), "{local}");
    }
    // TLS files that do not load: an error naming the file.
    let bad = guarded_config("tls_cert = \"/nonexistent/cert.pem\"\ntls_key = \"/nonexistent/key.pem\"\n");
    let e = guard(any, &bad.server).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/cert.pem"), "{e}");
    // A token too short to guard anything is refused with the config.
    let e = vigil::config::Config::from_toml("[server]\ntoken = \"short\"\n").unwrap_err();
    assert!(e.to_string().contains("server.token"), "{e}");
    // The binary refuses before reading any input, and says what to do.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = vigil_bin()
        .args([
            "run",
            "--progress",
            "never",
            "--serve",
            "0.0.0.0:0",
            "--exit-when-done",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("refusing") && err.contains("[server] token") && err.contains("--insecure"),
        "{err}"
    );
    assert!(!out.join("summary.json").exists(), "nothing was run");
}

#[test]
fn random_requests_neither_panic_nor_hang_the_server() {
    let _one = heavy();
    use vigil::fuzz::http::{count_panics, run_campaign, HttpCampaign};
    let panics = count_panics();
    // Rare retraining requests register models: in a folder of the test's own.
    let dir = tempfile::tempdir().unwrap();
    let config = guarded_config(&format!("[model]\nregistry = \"{}\"\n", dir.path().display()));
    let (addr, outcome) = serve(&config, 3_000, 10);
    let c = client(&addr, Some(TOKEN), None);
    let features = c.get("/features").unwrap().json();
    let campaign = HttpCampaign {
        addr: addr.parse().unwrap(),
        cases: 4_000,
        seed: 17,
        clients: 4,
        hang_after: Duration::from_secs(20),
        devices: vec!["vm-0001".into(), "ctr-000001".into()],
        features: features["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect(),
        detectors: vec!["silence".into(), "exfiltration".into()],
        token: Some(TOKEN.into()),
    };
    let report = run_campaign(&campaign, &|_| {});
    eprintln!("{report:?}");
    assert_eq!(report.cases, 4_000);
    assert_eq!(
        (report.panics, report.hangs, report.malformed_answers),
        (0, 0, 0),
        "{report:?}"
    );
    assert_eq!(panics.load(Ordering::Relaxed), 0, "no panic in this process");
    assert!(report.answered_2xx > 100 && report.answered_4xx > 100, "{report:?}");
    // Still answering.
    assert_eq!(c.get("/health").unwrap().status, 200);
    assert_eq!(c.get("/features").unwrap().status, 200);
    outcome.serving.unwrap().stop().unwrap();
}
