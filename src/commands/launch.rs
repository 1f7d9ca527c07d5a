//! `vigil launch`: starts every process of a hostfile (local ones directly, remote ones
//! through a command template, ssh by default), prefixes their output by process, forwards
//! Ctrl-C, and exits non-zero if any process fails — stopping the others, naming it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use vigil::cluster::{parse_hostfile, ClusterSpec};

use super::UsageError;

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
    let mut children: Vec<(usize, String, Child)> = Vec::new();
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
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting process {i} ({addr})"))?;
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
        children.push((i, addr.clone(), child));
    }
    // Wait: the first failure (or Ctrl-C) stops everyone.
    let mut failed: Option<(usize, String, ExitStatus)> = None;
    let mut running = children.len();
    while running > 0 {
        if stop.load(Ordering::SeqCst) {
            eprintln!(
                "vigil launch: interrupted; stopping every process (SIGINT, then SIGKILL after {} s)",
                STOP_GRACE.as_secs()
            );
            stop_gracefully(&mut children);
            return Err(anyhow::anyhow!("interrupted"));
        }
        running = 0;
        for (i, addr, child) in children.iter_mut() {
            match child.try_wait()? {
                None => running += 1,
                Some(status) if !status.success() && failed.is_none() => failed = Some((*i, addr.clone(), status)),
                Some(_) => {}
            }
        }
        if let Some((i, addr, status)) = &failed {
            for (_, _, c) in children.iter_mut() {
                let _ = c.kill();
            }
            for (_, _, c) in children.iter_mut() {
                let _ = c.wait();
            }
            return Err(anyhow::anyhow!(
                "process {i} ({addr}) failed ({status}); stopped the others"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("vigil launch: all {n} processes finished");
    Ok(())
}

/// How long processes get to finish after SIGINT (a Kafka run flushes its outputs and
/// commits its offsets) before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// SIGINT to every process still running (a local one, or the remote command's local end),
/// then SIGKILL to those still running after [`STOP_GRACE`].
fn stop_gracefully(children: &mut [(usize, String, Child)]) {
    for (_, _, c) in children.iter_mut() {
        if matches!(c.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
    let deadline = std::time::Instant::now() + STOP_GRACE;
    while std::time::Instant::now() < deadline && children.iter_mut().any(|(_, _, c)| matches!(c.try_wait(), Ok(None)))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (_, _, c) in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
}
