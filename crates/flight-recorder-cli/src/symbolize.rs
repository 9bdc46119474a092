//! `symbolize FILE [--binary PATH]... [-o OUT]`: resolves every address of the file's stacks
//! from the modules' binaries and writes a copy of the file with a Symbols record before its
//! first chunk, so that it reads with names on a machine without the binaries.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use flight_recorder_analysis::symbols::{ModuleProblem, Symbolizer};
use flight_recorder_format::record::{PREAMBLE_LEN, RECORD_OVERHEAD};
use flight_recorder_format::{tables, RecordType, TraceReader};

use crate::failure::Failure;

/// The default output: `FILE.symbolized.out`.
pub fn default_output(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".symbolized.out");
    PathBuf::from(name)
}

/// Runs the command; prints one line saying what was resolved.
pub fn symbolize(
    file: &Path,
    binaries: Vec<PathBuf>,
    output: Option<PathBuf>,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let fail = |p: &Path, error: String| Failure::Trace(p.to_path_buf(), error);
    let output = output.unwrap_or_else(|| default_output(file));
    if output == file
        || (output.exists()
            && std::fs::canonicalize(&output).ok() == std::fs::canonicalize(file).ok())
    {
        return Err(fail(
            file,
            "the output would overwrite the input; give another -o".to_string(),
        ));
    }
    let started = Instant::now();
    // Pass 1: every stack, module and symbol of the file.
    let mut reader = TraceReader::open(file).map_err(|e| fail(file, e.to_string()))?;
    loop {
        match reader.next_raw_chunk() {
            Ok(Some(chunk)) => reader.recycle_chunk(chunk),
            Ok(None) => break,
            Err(e) => return Err(fail(file, e.to_string())),
        }
    }
    let names = reader.name_tables();
    if names.modules().is_empty() {
        return Err(fail(
            file,
            "the file has no Modules table: its stacks cannot be symbolized".to_string(),
        ));
    }
    let mut symbolizer = Symbolizer::new(binaries);
    let problems = symbolizer.check(&names);
    if let Some(p) = problems
        .iter()
        .find(|p| matches!(p, ModuleProblem::Mismatch { .. }))
    {
        return Err(fail(file, p.to_string()));
    }
    for p in &problems {
        eprintln!("flight-recorder: {}: warning: {p}", file.display());
    }
    // Every address, with whether it is a return address (it is when it is not innermost in
    // some stack; an address both innermost and not is looked up as a return address).
    let mut addresses: std::collections::BTreeMap<u64, bool> = Default::default();
    for stack in names.stacks().values() {
        for (i, &a) in stack.iter().enumerate() {
            *addresses.entry(a).or_insert(i > 0) |= i > 0;
        }
    }
    // One record per 16 MiB of entries (a record holds at most 64 MiB).
    let mut payloads: Vec<Vec<u8>> = vec![Vec::new()];
    let (mut resolved, mut total) = (0u64, 0u64);
    for (&address, &is_return) in &addresses {
        if names.symbol(address).is_some() {
            continue;
        }
        total += 1;
        let frames = symbolizer.lookup(&names, address, is_return);
        if !frames.is_empty() {
            resolved += 1;
            if payloads.last().is_some_and(|p| p.len() >= 16 << 20) {
                payloads.push(Vec::new());
            }
            let last = payloads.last_mut().expect("one payload at least");
            tables::push_symbol(address, &frames, last);
        }
    }
    // Pass 2: the file's records, with the Symbols record before the first chunk.
    copy_with_symbols(file, &output, &payloads).map_err(|e| fail(&output, e.to_string()))?;
    writeln!(
        out,
        "{}: {resolved} of {total} addresses resolved, in {} modules, {:.2}s",
        output.display(),
        names.modules().len(),
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}

fn copy_with_symbols(input: &Path, output: &Path, symbols: &[Vec<u8>]) -> std::io::Result<()> {
    let mut inp = BufReader::with_capacity(256 << 10, File::open(input)?);
    let tmp = output.with_extension("tmp-symbolize");
    let mut w = BufWriter::with_capacity(256 << 10, File::create(&tmp)?);
    let mut preamble = [0u8; PREAMBLE_LEN];
    inp.read_exact(&mut preamble)?;
    w.write_all(&preamble)?;
    let mut inserted = symbols.iter().all(Vec::is_empty);
    let mut head = [0u8; 5];
    let mut buf = Vec::new();
    loop {
        match inp.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if !inserted && head[0] == RecordType::Chunk as u8 {
            write_symbols(&mut w, symbols)?;
            inserted = true;
        }
        buf.clear();
        // A torn last record is copied as far as it goes.
        (&mut inp)
            .take((len + RECORD_OVERHEAD - 5) as u64)
            .read_to_end(&mut buf)?;
        w.write_all(&head)?;
        w.write_all(&buf)?;
    }
    if !inserted {
        write_symbols(&mut w, symbols)?;
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, output)
}

fn write_symbols(w: &mut impl Write, symbols: &[Vec<u8>]) -> std::io::Result<()> {
    let mut records = flight_recorder_format::RecordWriter::new(Vec::new())?;
    for payload in symbols.iter().filter(|p| !p.is_empty()) {
        records.write_record(RecordType::Symbols, &[payload])?;
    }
    w.write_all(&records.into_inner()[PREAMBLE_LEN..])
}
