//! Fuzzing on a stable toolchain: structure-aware random inputs with campaigns of N cases
//! (`vigil fuzz`). [`http`]: random requests against the query server. This module: the
//! record decoders.
//!
//! Coverage-guided fuzzers need a nightly toolchain; this one draws valid records of every
//! format ([`inputs`]), mutates most of them field by field and byte by byte ([`mutate`]), and
//! checks each decoding ([`check`]): no panic, no hang, a valid record decodes to exactly
//! what was drawn, an accepted record satisfies the event's invariants, agrees with the
//! decoder's cheap peeks (the watermark and the placement read those) and survives the trip
//! through the canonical JSON and CSV forms unchanged.
//!
//! Invariants: case `i` of a campaign depends only on `(format, seed, i)`, so a finding is
//! reproduced with `vigil fuzz decode --format F --seed S --case i`; cases are spread over
//! threads by index and the report is the same for any thread count. A case still running
//! after the hang limit is reported by a watchdog, which then ends the process (a decoder
//! stuck in a loop cannot be interrupted): exit status 3.

pub mod check;
mod flows;
pub mod http;
pub mod inputs;
pub mod mutate;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::decode::Format;
use crate::generate::rng::Rng64;

pub use check::{Finding, FindingKind, Outcome};

/// One generated input: an optional CSV header line and the record.
#[derive(Clone, Debug)]
pub struct Case {
    pub index: u64,
    pub header: Option<Vec<u8>>,
    pub record: Vec<u8>,
    /// For an unmutated record: the event it must decode to.
    pub expected: Option<crate::event::Event>,
}

/// Share of cases left valid (the rest are mutated).
const VALID_SHARE: f64 = 0.1;
/// Share of CSV headers mutated too.
const HEADER_MUTATION_SHARE: f64 = 0.05;

fn format_tag(format: Format) -> u64 {
    match format {
        Format::Csv => 1,
        Format::Jsonl => 2,
        Format::Zeek => 3,
        Format::ZeekTsv => 4,
        Format::Suricata => 5,
    }
}

/// Case `index` of the campaign `(format, seed)`.
pub fn case(format: Format, seed: u64, index: u64) -> Case {
    let mut rng = Rng64::stream(seed, index.wrapping_mul(8) | format_tag(format));
    let sample = inputs::sample(format, &mut rng);
    let mut header = sample.header.clone().map(String::into_bytes);
    if let Some(h) = header.as_mut() {
        if rng.chance(HEADER_MUTATION_SHARE) {
            let mutated = mutate::mutate(
                &inputs::Sample {
                    header: None,
                    fields: inputs::Fields::Csv(String::from_utf8_lossy(h).split(',').map(str::to_string).collect()),
                    event: sample.event.clone(),
                },
                &mut rng,
            );
            *h = mutated;
        }
    }
    let valid = rng.chance(VALID_SHARE) && header.as_deref() == sample.header.as_deref().map(str::as_bytes);
    let record = if valid {
        sample.render()
    } else {
        mutate::mutate(&sample, &mut rng)
    };
    Case {
        index,
        header,
        record,
        expected: valid.then_some(sample.event),
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Campaign {
    pub format: Format,
    pub seed: u64,
    /// Cases `first .. first + cases`.
    pub first: u64,
    pub cases: u64,
    pub threads: usize,
    /// A case running longer than this is a hang.
    pub hang_after: Duration,
    /// The decoders' record length limit (`input.max_record_bytes`).
    pub max_record_bytes: usize,
    /// Findings kept in full (the rest are counted).
    pub keep_findings: usize,
}

/// What a campaign found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub cases: u64,
    /// Unmutated cases (each must decode to its drawn event).
    pub valid: u64,
    pub accepted: u64,
    /// Rejections by reason (the decoders' closed set).
    pub rejected: BTreeMap<&'static str, u64>,
    /// CSV headers the decoder refused (the record is then not decoded).
    pub headers_refused: u64,
    pub panics: u64,
    pub wrong: u64,
    /// The first findings, in case order.
    pub findings: Vec<Finding>,
    pub slowest: Duration,
    pub slowest_case: u64,
    pub elapsed: Duration,
}

impl Report {
    fn add(&mut self, other: Report) {
        self.cases += other.cases;
        self.valid += other.valid;
        self.accepted += other.accepted;
        for (k, v) in other.rejected {
            *self.rejected.entry(k).or_default() += v;
        }
        self.headers_refused += other.headers_refused;
        self.panics += other.panics;
        self.wrong += other.wrong;
        self.findings.extend(other.findings);
        if other.slowest > self.slowest {
            self.slowest = other.slowest;
            self.slowest_case = other.slowest_case;
        }
    }

    /// Cases that did not hold (panics and wrong answers; hangs end the process).
    pub fn failures(&self) -> u64 {
        self.panics + self.wrong
    }

    /// Every case is accounted for exactly once.
    pub fn accounted(&self) -> u64 {
        self.accepted + self.rejected.values().sum::<u64>() + self.headers_refused + self.panics + self.wrong
    }
}

/// Where each thread is, for the watchdog: the case it runs (index + 1; 0 when idle) and
/// when it started it (ns since the campaign began).
struct Lane {
    case: AtomicU64,
    since_ns: AtomicU64,
}

/// Runs `campaign`, calling `progress` with the cases done so far about every second.
pub fn run(campaign: &Campaign, progress: &(dyn Fn(u64) + Sync)) -> Report {
    let threads = campaign.threads.max(1);
    let started = Instant::now();
    let lanes: Vec<Lane> = (0..threads)
        .map(|_| Lane {
            case: AtomicU64::new(0),
            since_ns: AtomicU64::new(0),
        })
        .collect();
    let done = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    let hook = std::panic::take_hook();
    // Panics are findings, reported with their case; the default hook would print each.
    std::panic::set_hook(Box::new(|_| {}));
    let reports: Vec<Report> = std::thread::scope(|scope| {
        let mut workers = Vec::with_capacity(threads);
        for (t, lane) in lanes.iter().enumerate() {
            let done = &done;
            workers.push(scope.spawn(move || {
                let mut report = Report::default();
                let mut checker = check::Checker::new(campaign.format, campaign.max_record_bytes);
                let mut i = campaign.first + t as u64;
                let end = campaign.first + campaign.cases;
                while i < end {
                    lane.since_ns.store(started.elapsed().as_nanos() as u64, Relaxed);
                    lane.case.store(i + 1, Relaxed);
                    let c = case(campaign.format, campaign.seed, i);
                    let t0 = Instant::now();
                    let outcome = checker.check(&c);
                    let took = t0.elapsed();
                    if took > report.slowest {
                        report.slowest = took;
                        report.slowest_case = i;
                    }
                    report.cases += 1;
                    report.valid += u64::from(c.expected.is_some());
                    match outcome {
                        Outcome::Accepted => report.accepted += 1,
                        Outcome::Rejected(reason) => *report.rejected.entry(reason.as_str()).or_default() += 1,
                        Outcome::HeaderRefused => report.headers_refused += 1,
                        Outcome::Failed(finding) => {
                            match finding.kind {
                                FindingKind::Panic => report.panics += 1,
                                _ => report.wrong += 1,
                            }
                            if report.findings.len() < campaign.keep_findings {
                                report.findings.push(*finding);
                            }
                        }
                    }
                    if report.cases % 4096 == 0 {
                        done.fetch_add(4096, Relaxed);
                    }
                    i += threads as u64;
                }
                lane.case.store(0, Relaxed);
                report
            }));
        }
        // The watchdog.
        scope.spawn(|| {
            let mut last_progress = Instant::now();
            while !finished.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                let now_ns = started.elapsed().as_nanos() as u64;
                for lane in &lanes {
                    let case = lane.case.load(Relaxed);
                    let since = lane.since_ns.load(Relaxed);
                    if case > 0 && now_ns.saturating_sub(since) > campaign.hang_after.as_nanos() as u64 {
                        // Re-read: the lane may have moved on meanwhile.
                        if lane.case.load(Relaxed) == case && lane.since_ns.load(Relaxed) == since {
                            let c = self::case(campaign.format, campaign.seed, case - 1);
                            eprintln!(
                                "hang: case {} of format {:?}, seed {} has run for more than {:?}\n  header: {}\n  record: {}\n  \
                                 reproduce: vigil fuzz decode --format {} --seed {} --case {}",
                                case - 1,
                                campaign.format,
                                campaign.seed,
                                campaign.hang_after,
                                c.header.as_deref().map(check::escape).unwrap_or_else(|| "-".into()),
                                check::escape(&c.record),
                                campaign.format.name(),
                                campaign.seed,
                                case - 1
                            );
                            std::process::exit(3);
                        }
                    }
                }
                if last_progress.elapsed() >= Duration::from_secs(1) {
                    progress(done.load(Relaxed));
                    last_progress = Instant::now();
                }
            }
        });
        // The workers first, then the watchdog is told to stop (a panic is caught per case, so
        // a worker thread always returns its report).
        let reports = workers.into_iter().map(|w| w.join().unwrap_or_default()).collect();
        finished.store(true, Relaxed);
        reports
    });
    std::panic::set_hook(hook);
    let mut total = Report::default();
    for r in reports {
        total.add(r);
    }
    total.findings.sort_by_key(|f| f.case);
    total.findings.truncate(campaign.keep_findings);
    total.elapsed = started.elapsed();
    total
}
