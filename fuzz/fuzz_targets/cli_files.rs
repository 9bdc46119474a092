//! The CLI's handling of a dump directory (`flight-recorder ls` and `bundle`'s index): listing
//! the directory, telling trace files from others by name, reading each header, and rendering
//! the table and the JSON index. The input is split into files (name and contents) written to a
//! private scratch directory; the CLI's `ls` module is used through the CLI's library.
#![no_main]

use std::path::PathBuf;

use flight_recorder_cli::ls;
use flight_recorder_fuzz::check_allocations;
use libfuzzer_sys::fuzz_target;

/// Separates files in the input: `name \0 contents \xff\xfe\xfd\xfc`.
const FILE_END: &[u8] = b"\xff\xfe\xfd\xfc";

fn scratch() -> PathBuf {
    let base = std::env::var_os("FUZZ_SCRATCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            if std::path::Path::new("/dev/shm").is_dir() {
                PathBuf::from("/dev/shm")
            } else {
                std::env::temp_dir()
            }
        });
    base.join(format!("flight-recorder-fuzz-cli-{}", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    check_allocations();
    let dir = scratch();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    for (i, file) in data.split_on(FILE_END).into_iter().take(8).enumerate() {
        let (name, contents) = match file.iter().position(|&b| b == 0) {
            Some(at) => (&file[..at], &file[at + 1..]),
            None => (&b""[..], file),
        };
        // A name from the input, kept to one plain component; otherwise a dump name.
        let name = String::from_utf8_lossy(name);
        let name = if !name.is_empty()
            && name.len() < 200
            && !name.contains('/')
            && name != "."
            && name != ".."
        {
            name.into_owned()
        } else {
            format!("executiontrace.2026-01-01T00_00_0{i}.000.out")
        };
        let _ = std::fs::write(dir.join(name), contents);
    }
    if let Ok(entries) = ls::list(&dir) {
        for entry in &entries {
            assert!(ls::is_trace_name(&entry.name));
            let _ = entry.written_unix_ns();
        }
        let _ = ls::render_table(&entries);
        let json = ls::to_json(&entries);
        let _ = serde_json::to_string_pretty(&json).expect("the index serializes");
    }
    let _ = std::fs::remove_dir_all(&dir);
});

/// Splitting on a multi-byte separator.
trait SplitOn {
    fn split_on<'a>(&'a self, sep: &'a [u8]) -> Vec<&'a [u8]>;
}

impl SplitOn for [u8] {
    fn split_on<'a>(&'a self, sep: &'a [u8]) -> Vec<&'a [u8]> {
        let mut parts = Vec::new();
        let mut rest = self;
        while let Some(at) = rest.windows(sep.len()).position(|w| w == sep) {
            parts.push(&rest[..at]);
            rest = &rest[at + sep.len()..];
        }
        parts.push(rest);
        parts
    }
}
