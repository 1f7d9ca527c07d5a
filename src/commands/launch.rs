//! `vigil launch`: starts every process of a hostfile (local ones directly, remote ones
//! through a command template, ssh by default), prefixes their output by process, forwards
//! Ctrl-C, and exits non-zero if any process fails — stopping the others, naming the one that
//! failed first.
//!
//! Which failed first: one thread per process waits for it and reports its exit in the order
//! the processes end; a process that stopped only because it lost a peer (exit status
//! [`PEER_LOST_EXIT`]) is a consequence, so the first failure that is not one is named (the
//! first one of all when every failure is).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use vigil::cluster::{parse_hostfile, ClusterSpec};

use super::{UsageError, PEER_LOST_EXIT};

#[derive(Args, Debug)]
pub struct LaunchArgs {
    /// Hostfile: one host:port per line, in process order (all lines are used unless -n).
    #[arg(long)]
    pub hostfile: PathBuf,
    /// Worker threads per process, the same for every process [default: the cores of this
    /// machine].
    #[arg(short, long, default_value_t = super::default_workers(), hide_default_value = true)]
    pub workers: usize,
    /// Use only the first N hosts.
    #[arg(short = 'n', long)]
    pub processes: Option<usize>,
    /// How to start a process on a remote host; {host} and {command} are replaced.
    #[arg(long, default_value = "ssh {host} {command}")]
    pub remote: String,
    /// The vigil binary on remote hosts.
    #[arg(long, default_value = "vigil")]
    pub remote_binary: String,
    /// Arguments for `vigil run` (after --).
    #[arg(last = true)]
    pub run_args: Vec<String>,
}

fn is_local(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    matches!(host, "127.0.0.1" | "localhost" | "::1" | "0.0.0.0")
        || host.starts_with("127.")
        || std::fs::read_to_string("/etc/hostname").is_ok_and(|h| h.trim() == host)
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub fn launch(args: LaunchArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.hostfile)
        .map_err(|e| UsageError(format!("hostfile {}: {e}", args.hostfile.display())))?;
    let hosts = parse_hostfile(&text).map_err(|m| UsageError(format!("hostfile {}: {m}", args.hostfile.display())))?;
    let n = args.processes.unwrap_or(hosts.len());
    let spec =
        ClusterSpec::new(hosts, n, 0).map_err(|e| UsageError(format!("hostfile {}: {e}", args.hostfile.display())))?;
    if args
        .run_args
        .iter()
        .any(|a| ["-n", "-p", "-h", "--processes", "--process", "--hostfile"].contains(&a.as_str()))
    {
        return Err(UsageError("give -n/-p/-h to launch, not to the run arguments after --".into()).into());
    }
    // A local port already taken would make that process fail late: say so now.
    for (i, addr) in spec.addresses.iter().enumerate() {
        let (host, _) = addr.rsplit_once(':').unwrap_or((addr, ""));
        if is_local(host) {
            if let Err(e) = std::net::TcpListener::bind(addr) {
                return Err(UsageError(format!("process {i}: cannot listen on {addr}: {e} (port in use?)")).into());
            }
        }
    }
    let exe = std::env::current_exe().context("locating the vigil binary")?;
    let hostfile = std::fs::canonicalize(&args.hostfile)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst)).context("installing the Ctrl-C handler")?;
    }
    let mut children: Vec<Started> = Vec::new();
    let (exits, exited) = mpsc::channel::<(usize, std::io::Result<ExitStatus>)>();
    for (i, addr) in spec.addresses.iter().enumerate() {
        let (host, _) = addr.rsplit_once(':').unwrap_or((addr, ""));
        let mut run: Vec<String> = vec!["run".into()];
        run.extend(args.run_args.iter().cloned());
        run.extend([
            "-w".into(),
            args.workers.to_string(),
            "-n".into(),
            n.to_string(),
            "-p".into(),
            i.to_string(),
            "-h".into(),
            hostfile.display().to_string(),
        ]);
        let mut command = if is_local(host) {
            let mut c = Command::new(&exe);
            c.args(&run);
            c
        } else {
            let line = std::iter::once(args.remote_binary.clone())
                .chain(run.iter().cloned())
                .map(|a| shell_quote(&a))
                .collect::<Vec<_>>()
                .join(" ");
            let template = args
                .remote
                .replace("{host}", host)
                .replace("{command}", &shell_quote(&line));
            let mut c = Command::new("sh");
            c.args(["-c", &template]);
            c
        };
        let spawned = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting process {i} ({addr})"));
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                kill_all(&children);
                return Err(e);
            }
        };
        for (stream, out) in [
            (
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
                false,
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
                true,
            ),
        ] {
            if let Some(stream) = stream {
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        if out {
                            eprintln!("[p{i}] {line}");
                        } else {
                            println!("[p{i}] {line}");
                        }
                    }
                });
            }
        }
        children.push(Started {
            index: i,
            addr: addr.clone(),
            pid: child.id(),
            status: None,
        });
        let exits = exits.clone();
        std::thread::spawn(move || {
            let status = child.wait();
            let _ = exits.send((i, status));
        });
    }
    drop(exits);
    // Wait: the first failure (or Ctrl-C) stops everyone.
    let mut running = children.len();
    while running > 0 {
        if stop.load(Ordering::SeqCst) {
            eprintln!(
                "vigil launch: interrupted; stopping every process (SIGINT, then SIGKILL after {} s)",
                STOP_GRACE.as_secs()
            );
            stop_gracefully(&mut children, &exited);
            return Err(anyhow::anyhow!("interrupted"));
        }
        let (i, status) = match exited.recv_timeout(Duration::from_millis(50)) {
            Ok(exit) => exit,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        running -= 1;
        let status = status.with_context(|| format!("waiting for process {i}"))?;
        children[i].status = Some(status);
        if status.success() {
            continue;
        }
        // A failure: the others stop too. Those that end within a moment of it are still
        // weighed, so a process that only lost this peer is not named in its place.
        let settle = std::time::Instant::now() + FAILURE_SETTLE;
        while let Some(left) = settle.checked_duration_since(std::time::Instant::now()) {
            match exited.recv_timeout(left) {
                Ok((j, Ok(s))) => children[j].status = Some(s),
                Ok((_, Err(_))) => {}
                Err(_) => break,
            }
        }
        kill_all(&children);
        let order = failure_order(&children, i, &exited);
        let first = &children[order[0]];
        let mut message = format!(
            "process {} ({}) failed first ({}); stopped the others",
            first.index,
            first.addr,
            first.status.map_or("unknown status".to_string(), describe)
        );
        let consequences: Vec<String> = order[1..]
            .iter()
            .map(|&j| &children[j])
            .filter(|c| c.status.is_some_and(|s| s.code() == Some(PEER_LOST_EXIT)))
            .map(|c| format!("process {}", c.index))
            .collect();
        if !consequences.is_empty() {
            message.push_str(&format!(" ({} then stopped for losing it)", consequences.join(", ")));
        }
        return Err(anyhow::anyhow!(message));
    }
    eprintln!("vigil launch: all {n} processes finished");
    Ok(())
}

/// A process `vigil launch` started; `status` once it ended.
struct Started {
    index: usize,
    addr: String,
    pid: u32,
    status: Option<ExitStatus>,
}

/// How long after a first failure the processes that end too are still weighed for blame.
const FAILURE_SETTLE: Duration = Duration::from_millis(500);

/// The failed processes, the one to name first: in the order they ended (`first` ended
/// first), those that stopped for losing a peer ([`PEER_LOST_EXIT`]) after the others. The
/// processes still ending (killed now) are collected from `exited` and are not failures.
fn failure_order(
    children: &[Started],
    first: usize,
    exited: &mpsc::Receiver<(usize, std::io::Result<ExitStatus>)>,
) -> Vec<usize> {
    while exited.recv_timeout(Duration::from_millis(10)).is_ok() {}
    let mut order: Vec<usize> = vec![first];
    order.extend(
        children
            .iter()
            .filter(|c| c.index != first && c.status.is_some_and(|s| !s.success()))
            .map(|c| c.index),
    );
    // Stable: the arrival order (first, then by index) is kept within each class.
    order.sort_by_key(|&j| children[j].status.is_some_and(|s| s.code() == Some(PEER_LOST_EXIT)));
    order
}

/// An exit status in words: the signal that ended a process, or its exit code.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (_, Some(9)) => "killed by SIGKILL".to_string(),
        (_, Some(sig)) => format!("ended by signal {sig}"),
        (Some(code), _) => format!("exit status {code}"),
        _ => status.to_string(),
    }
}

/// Sends `signal` to a process that has not ended yet.
fn signal(child: &Started, signal: &str) {
    if child.status.is_none() {
        let _ = Command::new("kill")
            .args([signal, &child.pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// SIGKILL to every process that has not ended yet.
fn kill_all(children: &[Started]) {
    for c in children {
        signal(c, "-KILL");
    }
}

/// How long processes get to finish after SIGINT (a Kafka run flushes its outputs and
/// commits its offsets) before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// SIGINT to every process still running (a local one, or the remote command's local end),
/// then SIGKILL to those still running after [`STOP_GRACE`].
fn stop_gracefully(children: &mut [Started], exited: &mpsc::Receiver<(usize, std::io::Result<ExitStatus>)>) {
    for c in children.iter() {
        signal(c, "-INT");
    }
    let deadline = std::time::Instant::now() + STOP_GRACE;
    while children.iter().any(|c| c.status.is_none()) {
        let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
            break;
        };
        match exited.recv_timeout(left) {
            Ok((i, status)) => {
                // An error waiting: the process is gone all the same.
                children[i].status =
                    Some(status.unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(0)));
            }
            Err(_) => break,
        }
    }
    kill_all(children);
}
