//! Turning a stack's addresses into functions, files and lines: from the file's Symbols table
//! when it has one, else from the modules' binaries on this machine (DWARF through `addr2line`,
//! the ELF symbol table when there is no DWARF), checked against the modules' build ids.
//!
//! Nothing here runs in the recorded program: `flight-recorder symbolize` and the viewers call
//! it. A module whose binary is missing, unreadable or of another build leaves its addresses
//! raw (module + offset); [`Symbolizer::check`] reports a mismatch for the `symbolize` command,
//! which refuses it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flight_recorder_format::{Module, NameTables, SymbolFrame};
use object::{Object, ObjectSection, ObjectSymbol};

type Reader = gimli::EndianArcSlice<gimli::RunTimeEndian>;

/// One loaded binary.
struct Binary {
    context: Option<addr2line::Context<Reader>>,
    /// ELF symbols `(address, size, name)`, sorted by address, for code without DWARF.
    symbols: Vec<(u64, u64, String)>,
}

/// What became of a module's binary.
enum State {
    Loaded(Box<Binary>),
    Unavailable,
}

impl Binary {
    /// The DWARF and the ELF symbols of a parsed binary.
    fn parse(file: &object::File<'_>) -> Binary {
        let endian = if file.is_little_endian() {
            gimli::RunTimeEndian::Little
        } else {
            gimli::RunTimeEndian::Big
        };
        let load_section = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
            let bytes: Cow<'_, [u8]> = file
                .section_by_name(id.name())
                .and_then(|s| s.uncompressed_data().ok())
                .unwrap_or(Cow::Borrowed(&[]));
            Ok(gimli::EndianArcSlice::new(Arc::from(&*bytes), endian))
        };
        let context = gimli::Dwarf::load(load_section)
            .ok()
            .and_then(|dwarf| addr2line::Context::from_dwarf(dwarf).ok());
        let mut symbols: Vec<(u64, u64, String)> = file
            .symbols()
            .chain(file.dynamic_symbols())
            .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0)
            .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_string())))
            .collect();
        symbols.sort_unstable_by_key(|s| s.0);
        symbols.dedup_by_key(|s| s.0);
        Binary { context, symbols }
    }

    /// The ELF symbol `(start, size, name)` holding `address`: the last one starting at or
    /// before it, unless its size ends it before (a size of 0 is unknown, and holds it).
    fn symbol_at(&self, address: u64) -> Option<&(u64, u64, String)> {
        let i = self.symbols.partition_point(|s| s.0 <= address);
        let symbol = self.symbols.get(i.checked_sub(1)?)?;
        (symbol.1 == 0 || address < symbol.0 + symbol.1).then_some(symbol)
    }

    /// The line of the nearest instruction at or before `address`, in the same function and
    /// `file`, that has one: for an instruction the compiler gave line 0 (code of no single
    /// source line, such as a loop's jump back), which would otherwise show a file with no line.
    fn nearest_line(&self, address: u64, file: &str) -> Option<u32> {
        let context = self.context.as_ref()?;
        let &(start, _, _) = self.symbol_at(address).filter(|s| s.1 != 0)?;
        let mut nearest = None;
        for (row, _, location) in context
            .find_location_range(start, address.saturating_add(1))
            .ok()?
        {
            if row <= address && location.file == Some(file) {
                if let Some(line) = location.line.filter(|&line| line > 0) {
                    nearest = Some(line);
                }
            }
        }
        nearest
    }
}

/// One frame of a stack, resolved as far as possible.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedFrame {
    /// The address in the recorded process.
    pub address: u64,
    /// The module's path, when the address lies in a module of the file.
    pub module: Option<String>,
    /// `address − load_bias`: the address in the module's file.
    pub offset: u64,
    /// The functions at that address, innermost inlined first, the one holding the machine code
    /// last; empty when unknown.
    pub functions: Vec<SymbolFrame>,
}

/// Resolves addresses of a file's stacks, caching per module and per address.
pub struct Symbolizer {
    binaries: Vec<PathBuf>,
    states: HashMap<u64, State>,
    cache: HashMap<(u64, bool), Arc<[SymbolFrame]>>,
}

impl std::fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbolizer")
            .field("binaries", &self.binaries)
            .finish_non_exhaustive()
    }
}

/// Why a module cannot be symbolized with the binary found for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModuleProblem {
    /// No binary: none given and the module's path does not exist here.
    Missing(String),
    /// The binary's build id is not the module's.
    Mismatch {
        /// The module's path in the file.
        module: String,
        /// The binary used.
        binary: String,
        /// The module's build id, hex.
        expected: String,
        /// The binary's build id, hex (empty when it has none).
        found: String,
    },
    /// The binary could not be read or parsed.
    Unreadable(String),
}

impl std::fmt::Display for ModuleProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModuleProblem::Missing(m) | ModuleProblem::Unreadable(m) => f.write_str(m),
            ModuleProblem::Mismatch {
                module,
                binary,
                expected,
                found,
            } => write!(
                f,
                "{binary} is not the binary of module {module}: build id {} where the trace \
                 has {expected}",
                if found.is_empty() { "(none)" } else { found }
            ),
        }
    }
}

static BINARIES: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();

/// Sets, once for the process, the binaries that the viewers' symbolizers (`summary`, `dump`,
/// `convert`, `report`) look in before the modules' own paths (the `--binary` of the command
/// line). Later calls are ignored.
pub fn set_default_binaries(binaries: Vec<PathBuf>) {
    let _ = BINARIES.set(binaries);
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl Symbolizer {
    /// A symbolizer that looks for each module's binary among `binaries` (by file name; a binary
    /// whose name matches no module is taken for the main executable, the file's first module),
    /// else at the module's own path.
    pub fn new(binaries: Vec<PathBuf>) -> Symbolizer {
        Symbolizer {
            binaries,
            states: HashMap::new(),
            cache: HashMap::new(),
        }
    }

    fn binary_for(&self, names: &NameTables, module: &Module) -> Option<PathBuf> {
        let name = file_name(&module.path);
        if let Some(b) = self
            .binaries
            .iter()
            .find(|b| b.file_name().and_then(|n| n.to_str()) == Some(name))
        {
            return Some(b.clone());
        }
        let main = names.modules().values().next().map(|m| m.id) == Some(module.id);
        if main {
            let unmatched = self.binaries.iter().find(|b| {
                let n = b.file_name().and_then(|n| n.to_str()).unwrap_or("");
                !names.modules().values().any(|m| file_name(&m.path) == n)
            });
            if let Some(b) = unmatched {
                return Some(b.clone());
            }
        }
        if module.path.starts_with('/') && Path::new(&module.path).is_file() {
            return Some(PathBuf::from(&module.path));
        }
        None
    }

    fn load(&self, names: &NameTables, module: &Module) -> Result<Binary, ModuleProblem> {
        let Some(path) = self.binary_for(names, module) else {
            return Err(ModuleProblem::Missing(format!(
                "no binary for module {} (give it with --binary)",
                module.path
            )));
        };
        let shown = path.display().to_string();
        let data =
            std::fs::read(&path).map_err(|e| ModuleProblem::Unreadable(format!("{shown}: {e}")))?;
        let file = object::File::parse(&*data)
            .map_err(|e| ModuleProblem::Unreadable(format!("{shown}: {e}")))?;
        let found = file.build_id().ok().flatten().unwrap_or(&[]);
        if !module.build_id.is_empty() && found != module.build_id.as_slice() {
            return Err(ModuleProblem::Mismatch {
                module: module.path.clone(),
                binary: shown,
                expected: module.build_id_hex(),
                found: found.iter().map(|b| format!("{b:02x}")).collect(),
            });
        }
        Ok(Binary::parse(&file))
    }

    fn state(&mut self, names: &NameTables, module: &Module) -> &State {
        if !self.states.contains_key(&module.id) {
            let state = match self.load(names, module) {
                Ok(b) => State::Loaded(Box::new(b)),
                Err(_) => State::Unavailable,
            };
            self.states.insert(module.id, state);
        }
        &self.states[&module.id]
    }

    /// A symbolizer with the binaries set by [`set_default_binaries`] (none by default).
    pub fn with_default_binaries() -> Symbolizer {
        Symbolizer::new(BINARIES.get().cloned().unwrap_or_default())
    }

    /// Loads the binaries of every module that an address of the file's stacks lies in, and
    /// returns the problems (missing, unreadable, another build), one per module.
    pub fn check(&mut self, names: &NameTables) -> Vec<ModuleProblem> {
        let mut used: Vec<&Module> = names
            .modules()
            .values()
            .filter(|m| {
                names
                    .stacks()
                    .values()
                    .any(|s| s.iter().any(|&a| m.contains(a)))
            })
            .collect();
        used.sort_by_key(|m| m.id);
        let mut problems = Vec::new();
        for m in used {
            if self.states.contains_key(&m.id) {
                continue;
            }
            match self.load(names, m) {
                Ok(b) => {
                    self.states.insert(m.id, State::Loaded(Box::new(b)));
                }
                Err(p) => {
                    self.states.insert(m.id, State::Unavailable);
                    problems.push(p);
                }
            }
        }
        problems
    }

    /// What `address` resolves to from the binaries (not the file's Symbols table); `is_return`
    /// for every frame but the innermost (looked up at `address − 1`, the call).
    pub fn lookup(
        &mut self,
        names: &NameTables,
        address: u64,
        is_return: bool,
    ) -> Arc<[SymbolFrame]> {
        if let Some(hit) = self.cache.get(&(address, is_return)) {
            return hit.clone();
        }
        let frames: Vec<SymbolFrame> = match names.module_of(address) {
            None => Vec::new(),
            Some(module) => {
                let module = module.clone();
                let probe = address
                    .wrapping_sub(module.load_bias)
                    .wrapping_sub(u64::from(is_return));
                match self.state(names, &module) {
                    State::Loaded(b) => resolve(b, probe),
                    State::Unavailable => Vec::new(),
                }
            }
        };
        let frames: Arc<[SymbolFrame]> = frames.into();
        self.cache.insert((address, is_return), frames.clone());
        frames
    }

    /// One stack, innermost first, resolved: from the file's Symbols table when it has the
    /// address, else from the binaries.
    pub fn resolve_stack(&mut self, names: &NameTables, addresses: &[u64]) -> Vec<ResolvedFrame> {
        addresses
            .iter()
            .enumerate()
            .map(|(i, &address)| {
                let module = names.module_of(address);
                let functions = match names.symbol(address) {
                    Some(frames) => frames.to_vec(),
                    None => self.lookup(names, address, i > 0).to_vec(),
                };
                ResolvedFrame {
                    address,
                    module: module.map(|m| m.path.clone()),
                    offset: module.map_or(address, |m| address.wrapping_sub(m.load_bias)),
                    functions,
                }
            })
            .collect()
    }
}

fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

fn resolve(binary: &Binary, probe: u64) -> Vec<SymbolFrame> {
    let mut out = Vec::new();
    if let Some(ctx) = &binary.context {
        if let Ok(mut frames) = ctx.find_frames(probe).skip_all_loads() {
            while let Ok(Some(frame)) = frames.next() {
                let function = frame
                    .function
                    .as_ref()
                    .and_then(|f| f.raw_name().ok().map(|n| demangle(n.as_ref())))
                    .unwrap_or_default();
                let (file, line) = frame
                    .location
                    .as_ref()
                    .map(|l| (l.file.unwrap_or("").to_string(), l.line.unwrap_or(0)))
                    .unwrap_or_default();
                out.push(SymbolFrame {
                    function,
                    file,
                    line,
                });
            }
        }
    }
    // The innermost frame's line is the instruction's own, from the line table.
    if let Some(innermost) = out.first_mut() {
        if innermost.line == 0 && !innermost.file.is_empty() {
            if let Some(line) = binary.nearest_line(probe, &innermost.file) {
                innermost.line = line;
            }
        }
    }
    let named = out.iter().any(|f| !f.function.is_empty());
    if !named {
        if let Some((_, _, name)) = binary.symbol_at(probe) {
            let (file, line) = out
                .first()
                .map(|f| (f.file.clone(), f.line))
                .unwrap_or_default();
            out = vec![SymbolFrame {
                function: demangle(name),
                file,
                line,
            }];
        }
    }
    out
}

/// A source path as people read it: a file inside a dependency (`…/registry/src/<index>/`,
/// `…/git/checkouts/<repo>/<rev>/`) or the toolchain's sources (`/rustc/<hash>/`, `…/toolchains/
/// …/lib/rustlib/src/rust/`) keeps only what follows (`axum-0.8.9/src/serve/mod.rs`,
/// `library/std/src/thread/mod.rs`).
pub fn short_path(path: &str) -> Cow<'_, str> {
    if let Some(i) = path.find("/registry/src/") {
        let rest = &path[i + "/registry/src/".len()..];
        if let Some(j) = rest.find('/') {
            return Cow::Borrowed(&rest[j + 1..]);
        }
    }
    if let Some(i) = path.find("/git/checkouts/") {
        let rest = &path[i + "/git/checkouts/".len()..];
        let mut parts = rest.splitn(3, '/');
        if let (Some(repo), Some(_rev), Some(tail)) = (parts.next(), parts.next(), parts.next()) {
            return Cow::Owned(format!("{repo}/{tail}"));
        }
    }
    if let Some(rest) = path.strip_prefix("/rustc/") {
        if let Some(j) = rest.find('/') {
            return Cow::Borrowed(&rest[j + 1..]);
        }
    }
    if let Some(i) = path.find("/lib/rustlib/src/rust/") {
        return Cow::Borrowed(&path[i + "/lib/rustlib/src/rust/".len()..]);
    }
    Cow::Borrowed(path)
}

/// Where a frame's code is, as people read it: `file:line` with the [`short_path`], the file
/// alone when the line is unknown (0: code that debug info ties to no line, such as a loop's
/// jump), nothing when the file is unknown.
pub fn source_at(frame: &SymbolFrame) -> String {
    match (frame.file.is_empty(), frame.line) {
        (true, _) => String::new(),
        (false, 0) => short_path(&frame.file).into_owned(),
        (false, line) => format!("{}:{line}", short_path(&frame.file)),
    }
}

/// Whether a source path is inside a dependency or the toolchain (not the application's code).
pub fn is_library_path(path: &str) -> bool {
    path.contains("/registry/src/")
        || path.contains("/git/checkouts/")
        || path.starts_with("/rustc/")
        || path.contains("/lib/rustlib/src/rust/")
        || path.starts_with("/usr/include/")
}

/// The crate a frame belongs to, for folding: from its path (`tokio`, `std`, `core`, `axum`) or
/// its function (`std::thread::sleep` → `std`); `None` for the application's code.
pub fn library_of(frame: &SymbolFrame) -> Option<String> {
    let path = frame.file.as_str();
    if let Some(i) = path.find("/registry/src/") {
        let rest = &path[i + "/registry/src/".len()..];
        let krate = rest.split('/').nth(1).unwrap_or("");
        let name = match krate.rfind('-') {
            Some(j) if krate[j + 1..].starts_with(|c: char| c.is_ascii_digit()) => &krate[..j],
            _ => krate,
        };
        return Some(name.to_string());
    }
    if path.starts_with("/rustc/") || path.contains("/lib/rustlib/src/rust/") {
        let short = short_path(path);
        let krate = short
            .strip_prefix("library/")
            .and_then(|r| r.split('/').next())
            .unwrap_or("std");
        return Some(krate.to_string());
    }
    if is_library_path(path) {
        return Some("libc".to_string());
    }
    if path.is_empty() {
        // No line information: a system library, or code without debug info.
        let f = frame.function.trim_start_matches('<');
        for krate in ["std::", "core::", "alloc::", "tokio::"] {
            if f.starts_with(krate) {
                return Some(krate.trim_end_matches("::").to_string());
            }
        }
        return Some("system".to_string());
    }
    None
}

/// Whether a stack looks cut short: its outermost frame is not a thread's entry
/// (`start_thread`, `clone`/`clone3`, std's `thread_start`, `main`, `_start`,
/// `__libc_start_main`). Unresolved stacks are not judged.
pub fn looks_truncated(frames: &[ResolvedFrame]) -> bool {
    let Some(last) = frames.last() else {
        return false;
    };
    let Some(f) = last.functions.last() else {
        return false;
    };
    let name = f.function.as_str();
    let entries = [
        "start_thread",
        "clone",
        "clone3",
        "__clone",
        "__clone3",
        "main",
        "_start",
        "__libc_start_main",
        "__libc_start_call_main",
    ];
    !(entries.contains(&name)
        || name.ends_with("::thread_start")
        || name.ends_with("::main")
        || name.starts_with("std::sys::") && name.contains("thread"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An instruction of this test binary that the line table gives line 0, in a function whose
    /// earlier instructions of the same file have lines: (its address, the file, the last of
    /// those lines).
    fn an_instruction_without_a_line(binary: &Binary) -> Option<(u64, String, u32)> {
        let context = binary.context.as_ref()?;
        for &(start, size, _) in binary.symbols.iter().filter(|s| s.1 > 0) {
            let Ok(rows) = context.find_location_range(start, start + size) else {
                continue;
            };
            let rows: Vec<(u64, Option<&str>, u32)> = rows
                .map(|(at, _, l)| (at, l.file, l.line.unwrap_or(0)))
                .collect();
            for (i, &(at, file, line)) in rows.iter().enumerate() {
                let Some(file) = file.filter(|_| line == 0 && at >= start) else {
                    continue;
                };
                let before = rows[..i]
                    .iter()
                    .rev()
                    .find(|r| r.1 == Some(file) && r.2 > 0 && r.0 >= start);
                if let Some(&(_, _, nearest)) = before {
                    return Some((at, file.to_string(), nearest));
                }
            }
        }
        None
    }

    #[test]
    fn an_instruction_without_a_line_shows_the_nearest_line_before_it() {
        let exe = std::env::current_exe().unwrap();
        let data = std::fs::read(&exe).unwrap();
        let binary = Binary::parse(&object::File::parse(&*data).unwrap());
        let (address, file, nearest) = an_instruction_without_a_line(&binary)
            .expect("the test binary has code the compiler gave line 0");
        let frames = resolve(&binary, address);
        let innermost = frames.first().expect("the address resolves");
        assert_eq!(innermost.file, file, "{frames:?}");
        assert_eq!(
            innermost.line, nearest,
            "the nearest line before {address:#x} in {file}: {frames:?}"
        );
    }

    fn f(function: &str, file: &str) -> SymbolFrame {
        SymbolFrame {
            function: function.into(),
            file: file.into(),
            line: 1,
        }
    }

    #[test]
    fn a_frame_without_a_line_shows_its_file_alone() {
        let reg =
            "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/axum-0.8.9/src/lib.rs";
        let mut frame = f("axum::serve", reg);
        frame.line = 12;
        assert_eq!(source_at(&frame), "axum-0.8.9/src/lib.rs:12");
        frame.line = 0;
        assert_eq!(source_at(&frame), "axum-0.8.9/src/lib.rs");
        assert_eq!(source_at(&f("main", "")), "");
    }

    #[test]
    fn paths_of_dependencies_and_the_toolchain_print_short() {
        let reg = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/axum-0.8.9/src/serve/mod.rs";
        assert_eq!(short_path(reg), "axum-0.8.9/src/serve/mod.rs");
        assert_eq!(
            short_path(
                "/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/std/src/thread/mod.rs"
            ),
            "library/std/src/thread/mod.rs"
        );
        assert_eq!(
            short_path("/home/u/.cargo/git/checkouts/tokio-abc123/def456/tokio/src/lib.rs"),
            "tokio-abc123/tokio/src/lib.rs"
        );
        assert_eq!(short_path("src/main.rs"), "src/main.rs");
        assert_eq!(library_of(&f("axum::serve", reg)).as_deref(), Some("axum"));
        assert_eq!(
            library_of(&f(
                "std::thread::sleep",
                "/rustc/abc/library/std/src/thread/mod.rs"
            ))
            .as_deref(),
            Some("std")
        );
        assert_eq!(library_of(&f("app::handler", "/src/app/src/main.rs")), None);
        assert_eq!(
            library_of(&f("clock_nanosleep", "")).as_deref(),
            Some("system")
        );
    }

    #[test]
    fn a_stack_not_ending_at_a_thread_entry_looks_truncated() {
        let frame = |name: &str| ResolvedFrame {
            functions: vec![f(name, "")],
            ..ResolvedFrame::default()
        };
        assert!(!looks_truncated(&[frame("app::f"), frame("start_thread")]));
        assert!(!looks_truncated(&[frame("app::f"), frame("__clone3")]));
        assert!(!looks_truncated(&[
            frame("app::f"),
            frame("<std::sys::thread::unix::Thread>::new::thread_start")
        ]));
        assert!(looks_truncated(&[
            frame("app::f"),
            frame("tokio::runtime::park")
        ]));
        // Unresolved stacks are not judged.
        assert!(!looks_truncated(&[ResolvedFrame::default()]));
        assert!(!looks_truncated(&[]));
    }
}
