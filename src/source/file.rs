//! Records from files, folders of files and stdin.
//!
//! Invariants: a folder is read as its regular, non-hidden files in name order; each file is
//! decoded with its own format and header; blank lines are skipped (not records); line
//! numbers are 1-based within each file and count every line. A file that cannot be opened,
//! or whose CSV header (or a Zeek `#fields` line, wherever it is) is unusable, is an input
//! error, not a stream of rejects. A gzip file (by its magic bytes, e.g. Zeek's archived
//! `conn.log.gz`) is read decompressed, its members one after another; line numbers and
//! format detection are those of the decompressed text. Header lines (Zeek TSV's `#` lines,
//! also in the middle of a file, where a rotated log begins) are not records.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::SourceError;
use crate::decode::{DecodeOptions, Format, RecordDecoder};

/// What `--input` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputSpec {
    /// Files, in order (a folder already expanded).
    Files(Vec<PathBuf>),
    /// Standard input.
    Stdin,
    /// Bytes already in memory (benchmarks, tests), under a name.
    Memory { name: String, data: Arc<Vec<u8>> },
    /// Kafka topics (read by `source::kafka`, not by [`RecordReader`]).
    Kafka(super::kafka::KafkaSpec),
}

impl InputSpec {
    /// Resolves `-` to stdin, a folder to its files, a file to itself.
    pub fn resolve(input: &Path) -> Result<Self, SourceError> {
        if input.as_os_str() == "-" {
            return Ok(InputSpec::Stdin);
        }
        let err = |message: String| SourceError::Input {
            path: input.display().to_string(),
            message,
        };
        let meta = std::fs::metadata(input)
            .map_err(|e| err(format!("{e}; give a file, a folder of files, or - for stdin")))?;
        if meta.is_file() {
            return Ok(InputSpec::Files(vec![input.to_path_buf()]));
        }
        if !meta.is_dir() {
            return Err(err("is neither a file nor a folder".into()));
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(input)
            .map_err(|e| err(e.to_string()))?
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.path())
            .filter(|p| p.is_file())
            .filter(|p| {
                !p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(err("the folder holds no files".into()));
        }
        Ok(InputSpec::Files(files))
    }

    /// Total size in bytes, when known (for progress).
    pub fn total_bytes(&self) -> Option<u64> {
        match self {
            InputSpec::Files(files) => Some(
                files
                    .iter()
                    .filter_map(|f| std::fs::metadata(f).ok())
                    .map(|m| m.len())
                    .sum(),
            ),
            InputSpec::Stdin => None,
            InputSpec::Memory { data, .. } => Some(data.len() as u64),
            InputSpec::Kafka(_) => None,
        }
    }
}

/// A record handed to the caller.
pub struct Record<'a> {
    pub source: &'a Arc<str>,
    pub line: u64,
    pub bytes: &'a [u8],
    pub decoder: &'a RecordDecoder,
    /// A header line (Zeek TSV's `#` lines, already applied to `decoder`), handed over only
    /// by a reader made [`RecordReader::with_headers`].
    pub header: bool,
}

struct OpenFile {
    reader: Box<dyn BufRead>,
    name: Arc<str>,
    line: u64,
    decoder: RecordDecoder,
    /// A first line that turned out to be a record (or a header to hand over).
    held: Option<(u64, Vec<u8>, bool)>,
}

/// Reads the records of an [`InputSpec`] in order.
pub struct RecordReader {
    queue: std::collections::VecDeque<(Origin, Arc<str>)>,
    current: Option<OpenFile>,
    format: Option<Format>,
    options: DecodeOptions,
    buf: Vec<u8>,
    bytes_read: Arc<AtomicU64>,
    /// Hand header lines over too (marked), for a producer that forwards them.
    pass_headers: bool,
}

impl RecordReader {
    /// Also hands over Zeek TSV header lines (as [`Record::header`]), after applying them.
    pub fn with_headers(mut self) -> Self {
        self.pass_headers = true;
        self
    }

    /// A reader over the input; `format` None means detect per file.
    pub fn new(spec: &InputSpec, format: Option<Format>, options: DecodeOptions, bytes_read: Arc<AtomicU64>) -> Self {
        let queue = match spec {
            InputSpec::Files(files) => files
                .iter()
                .map(|p| (Origin::File(p.clone()), Arc::from(p.display().to_string())))
                .collect(),
            InputSpec::Stdin => std::iter::once((Origin::Stdin, Arc::from("stdin"))).collect(),
            InputSpec::Memory { name, data } => {
                std::iter::once((Origin::Memory(data.clone()), Arc::from(name.as_str()))).collect()
            }
            InputSpec::Kafka(_) => Default::default(),
        };
        RecordReader {
            queue,
            current: None,
            format,
            options,
            buf: Vec::with_capacity(4096),
            bytes_read,
            pass_headers: false,
        }
    }

    /// A reader that yields nothing (a worker with no share of the input).
    pub fn empty() -> Self {
        RecordReader {
            queue: Default::default(),
            current: None,
            format: None,
            options: DecodeOptions::new(0),
            buf: Vec::new(),
            bytes_read: Arc::new(AtomicU64::new(0)),
            pass_headers: false,
        }
    }

    fn read_line(reader: &mut dyn BufRead, buf: &mut Vec<u8>, name: &str) -> Result<bool, SourceError> {
        buf.clear();
        let n = read_until_newline(reader, buf).map_err(|source| SourceError::Io {
            path: name.to_string(),
            source,
        })?;
        if n == 0 {
            return Ok(false);
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(true)
    }

    fn open_next(&mut self) -> Result<bool, SourceError> {
        let Some((origin, name)) = self.queue.pop_front() else {
            return Ok(false);
        };
        let counter = self.bytes_read.clone();
        let mut reader: Box<dyn BufRead> = match &origin {
            Origin::File(p) => {
                let file = File::open(p).map_err(|source| SourceError::Io {
                    path: name.to_string(),
                    source,
                })?;
                let mut plain = BufReader::with_capacity(1 << 20, CountingRead(file, counter));
                let magic = plain.fill_buf().map_err(|source| SourceError::Io {
                    path: name.to_string(),
                    source,
                })?;
                if magic.starts_with(&[0x1f, 0x8b]) {
                    Box::new(BufReader::with_capacity(
                        1 << 20,
                        flate2::bufread::MultiGzDecoder::new(plain),
                    ))
                } else {
                    Box::new(plain)
                }
            }
            Origin::Stdin => Box::new(BufReader::with_capacity(
                1 << 20,
                CountingRead(std::io::stdin(), counter),
            )),
            Origin::Memory(data) => Box::new(std::io::Cursor::new(SharedBytes(data.clone()))),
        };
        // `events.jsonl.gz` is detected as `events.jsonl`.
        let path = match &origin {
            Origin::File(p) if p.extension().is_some_and(|e| e == "gz") => {
                Some(Path::new(p.file_stem().unwrap_or_default()))
            }
            Origin::File(p) => Some(p.as_path()),
            _ => None,
        };
        // The first non-blank line decides the format and may be a header.
        let mut line = 0;
        loop {
            if !Self::read_line(reader.as_mut(), &mut self.buf, &name)? {
                // An empty file: nothing to read.
                return Ok(true);
            }
            line += 1;
            if !self.buf.trim_ascii().is_empty() {
                break;
            }
        }
        let format = self.format.unwrap_or_else(|| Format::detect(path, &self.buf));
        let (decoder, is_header) = RecordDecoder::for_file_with(format, &self.buf, &self.options).map_err(|e| {
            SourceError::Input {
                path: name.to_string(),
                message: match format {
                    Format::ZeekTsv => format!("line {line}: {}", e.detail),
                    _ => format!(
                        "line {line}: {}; a CSV input needs a header naming its columns (ts,device_id,src_ip,dst_ip,dst_port,protocol,bytes_out,bytes_in,packets,duration_ms,value) or no header at all",
                        e.detail
                    ),
                },
            }
        })?;
        let held = (!is_header || (self.pass_headers && decoder.is_header(&self.buf)))
            .then(|| (line, self.buf.clone(), is_header));
        self.current = Some(OpenFile {
            reader,
            name,
            line,
            decoder,
            held,
        });
        Ok(true)
    }

    /// Hands up to `max` records to `each`; returns false once the input is exhausted.
    pub fn next_batch(&mut self, max: usize, mut each: impl FnMut(Record<'_>)) -> Result<bool, SourceError> {
        let mut n = 0;
        while n < max {
            if self.current.is_none() && !self.open_next()? {
                return Ok(false);
            }
            let Some(file) = self.current.as_mut() else { continue };
            if let Some((line, bytes, header)) = file.held.take() {
                each(Record {
                    source: &file.name,
                    line,
                    bytes: &bytes,
                    decoder: &file.decoder,
                    header,
                });
                n += 1;
                continue;
            }
            if !Self::read_line(file.reader.as_mut(), &mut self.buf, &file.name)? {
                self.current = None;
                continue;
            }
            file.line += 1;
            if self.buf.trim_ascii().is_empty() {
                continue;
            }
            if file.decoder.is_header(&self.buf) {
                let line = file.line;
                file.decoder.header(&self.buf).map_err(|e| SourceError::Input {
                    path: file.name.to_string(),
                    message: format!("line {line}: {}", e.detail),
                })?;
                if self.pass_headers {
                    each(Record {
                        source: &file.name,
                        line,
                        bytes: &self.buf,
                        decoder: &file.decoder,
                        header: true,
                    });
                    n += 1;
                }
                continue;
            }
            each(Record {
                source: &file.name,
                line: file.line,
                bytes: &self.buf,
                decoder: &file.decoder,
                header: false,
            });
            n += 1;
        }
        Ok(true)
    }
}

/// `reader.read_until(b'\n', buf)`, with the newline found by `memchr` (vectorised) where
/// the standard library's search reads a word at a time.
fn read_until_newline(reader: &mut dyn BufRead, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut read = 0;
    loop {
        let (done, used) = {
            let available = match reader.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            match memchr::memchr(b'\n', available) {
                Some(i) => {
                    buf.extend_from_slice(&available[..=i]);
                    (true, i + 1)
                }
                None => {
                    buf.extend_from_slice(available);
                    (false, available.len())
                }
            }
        };
        reader.consume(used);
        read += used;
        if done || used == 0 {
            return Ok(read);
        }
    }
}

/// Counts bytes read, for progress.
struct CountingRead<R>(R, Arc<AtomicU64>);

impl<R: Read> Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

enum Origin {
    File(PathBuf),
    Stdin,
    Memory(Arc<Vec<u8>>),
}

struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_as_read_until_reads_them() {
        // Lines across buffer refills, empty lines, a last line without a newline.
        let mut data = Vec::new();
        let mut x = 7u32;
        for i in 0..2_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let len = (x >> 16) as usize % 40 + i % 3;
            data.extend((0..len).map(|k| b'a' + (k % 26) as u8));
            if i % 11 == 0 {
                data.push(b'\r');
            }
            data.push(b'\n');
        }
        data.extend_from_slice(b"no newline");
        for capacity in [1, 3, 8, 64, 1 << 20] {
            let mut ours = BufReader::with_capacity(capacity, data.as_slice());
            let mut theirs = BufReader::with_capacity(capacity, data.as_slice());
            let (mut a, mut b) = (Vec::new(), Vec::new());
            loop {
                a.clear();
                b.clear();
                let n = read_until_newline(&mut ours, &mut a).unwrap();
                assert_eq!(n, theirs.read_until(b'\n', &mut b).unwrap());
                assert_eq!(a, b);
                if n == 0 {
                    break;
                }
            }
        }
    }
}
