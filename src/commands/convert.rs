//! `vigil convert`: write the events of an input in another input format (canonical CSV or
//! JSON lines, Zeek `conn.log` JSON or TSV, Suricata EVE), to feed the same connections to
//! every decoder. Records that do not decode, and skipped lines, are left out and counted.

use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use vigil::convert::Converter;
use vigil::decode::{DecodeOptions, Format, Peek};
use vigil::source::file::{InputSpec, RecordReader};

use super::UsageError;

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// A file, a folder of files (read in name order), or - for stdin.
    #[arg(short, long)]
    pub input: PathBuf,
    /// Input format: auto, csv, jsonl, zeek, zeek-tsv or suricata.
    #[arg(long, default_value = "auto")]
    pub from: String,
    /// Output format: csv, jsonl, zeek (JSON), zeek-tsv or suricata.
    #[arg(long)]
    pub to: String,
    /// Output file.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Zeek TSV: start a new header block, with the columns in another order, every N
    /// records, as logs rotated and appended to one another have them (0: one block).
    #[arg(long, default_value_t = 0)]
    pub rotate_every: u64,
}

pub fn convert(args: ConvertArgs) -> anyhow::Result<()> {
    let from = Format::parse(&args.from).map_err(UsageError)?;
    let to = Format::parse(&args.to)
        .map_err(UsageError)?
        .ok_or_else(|| UsageError("--to needs a format, not auto".into()))?;
    let spec = InputSpec::resolve(&args.input)?;
    let file = std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut out = Converter::new(BufWriter::new(file), to, args.rotate_every)?;
    let mut reader = RecordReader::new(&spec, from, DecodeOptions::new(1 << 20), Default::default());
    let (mut rejected, mut skipped) = (0u64, 0u64);
    let mut error = None;
    while reader.next_batch(16_384, |r| {
        if error.is_some() {
            return;
        }
        let (peek, decoded) = match r.decoder.peek_decode(r.bytes) {
            Some((peek, decoded)) => (peek, Some(decoded)),
            None => (r.decoder.peek(r.bytes), None),
        };
        if let Peek::Skip(_) = peek {
            skipped += 1;
            return;
        }
        match decoded.unwrap_or_else(|| r.decoder.decode(r.bytes)) {
            Ok(e) => error = out.write(&e).err(),
            Err(_) => rejected += 1,
        }
    })? {
        if let Some(e) = error.take() {
            return Err(e).with_context(|| format!("writing {}", args.out.display()));
        }
    }
    let written = out
        .finish()
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "wrote {written} events as {} to {} ({rejected} records rejected, {skipped} skipped: left out)",
        to.name(),
        args.out.display()
    );
    Ok(())
}
