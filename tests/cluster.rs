//! Results do not depend on the shape of the cluster: 1 process × 1 worker and 2 processes
//! × 2 workers on loopback give identical outputs; and the cluster's failure modes end in
//! clear errors, never a hang.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn vigil() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.current_dir(env!("CARGO_MANIFEST_DIR")).env("VIGIL_LOG", "warn");
    c
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

fn hostfile(dir: &Path, ports: &[u16]) -> PathBuf {
    let path = dir.join("hosts");
    let text: String = ports.iter().map(|p| format!("127.0.0.1:{p}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn generated(dir: &Path) -> PathBuf {
    let input = dir.join("events.csv");
    let o = vigil()
        .args([
            "generate",
            "--events",
            "60000",
            "--devices",
            "80",
            "--seed",
            "9",
            "--out",
        ])
        .arg(&input)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    input
}

#[test]
fn one_process_and_two_by_two_give_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated(dir.path());
    let single = dir.path().join("single");
    let o = vigil()
        .args(["run", "--progress", "never", "--serve", "off", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(&single)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let cluster = dir.path().join("cluster");
    let hosts = hostfile(dir.path(), &free_ports(2));
    let o = vigil()
        .args(["launch", "-w", "2", "--hostfile"])
        .arg(&hosts)
        .args(["--", "--progress", "never", "--serve", "off", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(&cluster)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for file in ["windows.jsonl", "features.jsonl", "rejects.jsonl", "anomalies.jsonl"] {
        let a = std::fs::read_to_string(single.join(file)).unwrap();
        let b = std::fs::read_to_string(cluster.join(file)).unwrap();
        assert!(!a.is_empty() || file == "anomalies.jsonl", "{file} is empty");
        assert!(a == b, "{file} differs between 1x1 and 2x2");
    }
    let summary = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p.join("summary.json")).unwrap()).unwrap()
    };
    let (a, b) = (summary(&single), summary(&cluster));
    for key in [
        "events_read",
        "accepted",
        "rejected",
        "rejected_by_reason",
        "devices",
        "window_rows",
        "anomalies",
    ] {
        assert_eq!(a[key], b[key], "summary {key}");
    }
    assert_eq!(b["workers"], 4);
}

#[test]
fn hostfile_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad-hosts");
    std::fs::write(&bad, "127.0.0.1:2101\nnot-an-address\n").unwrap();
    let o = vigil()
        .args(["launch", "--hostfile"])
        .arg(&bad)
        .args(["--", "--progress", "never", "--serve", "off"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 2"), "{}", stderr(&o));

    let short = hostfile(dir.path(), &[2101]);
    let o = vigil()
        .args(["run", "--serve", "off", "-n", "2", "-p", "0", "-h"])
        .arg(&short)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("1 address(es) for 2 processes"), "{}", stderr(&o));

    let o = vigil()
        .args(["launch", "--hostfile", "/no/such/hosts"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/no/such/hosts"), "{}", stderr(&o));
}

#[test]
fn port_in_use_is_reported_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let hosts = hostfile(dir.path(), &[port, free_ports(1)[0]]);
    let o = vigil()
        .args(["launch", "--hostfile"])
        .arg(&hosts)
        .args(["--", "--progress", "never", "--serve", "off"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(&format!("127.0.0.1:{port}")), "{}", stderr(&o));
}

/// In a cluster process p serves queries on the --serve port + p; a port that is taken
/// there is an error naming the process and the address (not a cluster without a server).
#[test]
fn a_query_port_taken_in_a_cluster_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let hosts = hostfile(dir.path(), &free_ports(2));
    let o = vigil()
        .args(["run", "--progress", "never", "-n", "2", "-p", "1", "-h"])
        .arg(&hosts)
        .args(["--serve", &format!("127.0.0.1:{}", port - 1)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("process 1 cannot serve queries") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn a_peer_that_never_comes_up_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hostfile(dir.path(), &free_ports(2));
    let started = Instant::now();
    let o = vigil()
        .args([
            "run",
            "--progress",
            "never",
            "--serve",
            "off",
            "-n",
            "2",
            "-p",
            "0",
            "--connect-timeout",
            "3",
            "-h",
        ])
        .arg(&hosts)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("did not all connect"), "{}", stderr(&o));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "timed out instead of hanging"
    );
}

#[test]
fn a_peer_that_dies_stops_the_others_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.csv");
    let o = vigil()
        .args(["generate", "--events", "2000000", "--devices", "2000", "--out"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(o.status.success());
    let hosts = hostfile(dir.path(), &free_ports(2));
    let mut launch = vigil()
        .args(["launch", "--hostfile"])
        .arg(&hosts)
        .args(["--", "--progress", "never", "--serve", "off", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(dir.path().join("out"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // Kill process 1 hard, as a crashed machine would.
    let pattern = format!("p 1 -h {}", std::fs::canonicalize(&hosts).unwrap().display());
    let killed = Command::new("pkill").args(["-9", "-f", &pattern]).status().unwrap();
    assert!(killed.success(), "process 1 was running");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = launch.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "launch did not stop after a peer died"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(launch.stderr.as_mut().unwrap(), &mut err).unwrap();
    // The launcher's own verdict (not a line of a process, which are prefixed `[pN]`) names
    // process 1, killed, as the one that failed first, whatever order it noticed them in.
    let verdict = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no verdict from vigil launch: {err}"));
    assert!(
        verdict.starts_with("error: process 1 (") && verdict.contains("failed first (killed by SIGKILL)"),
        "{verdict}\n{err}"
    );
    assert!(!verdict.contains("process 0 ("), "{verdict}");
}
