//! The ring: the process's chunks, and what is needed to rebuild its window, in a `MAP_SHARED`
//! mapping of a file in a memory-backed directory (`/dev/shm/flight-recorder` by default), so
//! that they survive the process however it dies (`kill -9`, the OOM killer, a fatal signal).
//! `flight-recorder recover` (or the next start of automatic capture) turns a dead process's ring
//! into a trace file (`crate::recover`).
//!
//! # Layout (all integers native-endian, the file made by and for one machine)
//!
//! ```text
//! 0                RingHeader (one page): magic, layout version, uid, pid, process start time,
//!                  sizes and offsets, clock calibration, the window's generation, status,
//!                  program, host, dump directory, two clock samples refreshed as chunks seal
//! strings_offset   LogHead + strings_cap bytes: Strings table entries, appended whole
//! locations_offset LogHead + locations_cap bytes: Locations table entries
//! threads_offset   LogHead + threads_cap bytes: Threads table entries
//! modules_offset   LogHead + modules_cap bytes: Modules table entries (the process's
//!                  executable mappings when the ring was made, to symbolize a crash stack)
//! fatal_offset     FatalArea (one page): what the fatal-signal handler saw
//! slots_offset     slot_count × (ChunkHeader (128 bytes) + chunk_size bytes of events)
//! ```
//!
//! A slot's [`ChunkHeader`] holds the chunk's publish counter (`committed`, the very counter the
//! hot path stores and snapshots read), its sequence number (0: the slot is free), thread, state
//! word and base time. A table log's length is stored (release) after its entries are written,
//! so a log's first `len` bytes are whole entries.
//!
//! # Allocation
//!
//! The file's whole size is reserved at creation (`posix_fallocate`): pages of a tmpfs file are
//! then allocated, so no write to the mapping can fault for want of memory (`SIGBUS`). When the
//! reservation fails (a small `/dev/shm`), no ring is made and the recorder keeps its heap
//! buffers (said once on stderr). The slot count is fixed at creation: the window's `max_bytes`
//! in chunks plus `spare_chunks` (open chunks of live threads, chunks pinned by a snapshot).
//! When every slot is taken, the ring grows by a segment file (`<ring>.seg<k>`, up to
//! [`SEGMENT_SLOTS`] slots, at most [`MAX_SEGMENTS`] segments in all); past that cap, new chunks
//! come from the heap as before: they are in snapshots but not in a recovery (the drop policy;
//! counted in the header and said once). No mapping is ever resized or unmapped.
//!
//! # Liveness
//!
//! The process holds an exclusive `flock` on its ring file for its whole life (the descriptor is
//! close-on-exec); recovery takes the lock without waiting and leaves a ring alone when it
//! cannot, and also when a process with the ring's pid and start time exists.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::record::chunk::{Buffer, ChunkHeader, HEADER_SIZE};
use crate::record::sync::lock;

/// The file's first bytes.
pub(crate) const MAGIC: [u8; 8] = *b"FRRING01";
/// The layout described above; recovery refuses any other.
pub(crate) const LAYOUT_VERSION: u64 = 1;
/// The suffix of ring file names.
pub(crate) const RING_SUFFIX: &str = ".ring";
const PAGE: usize = 4096;
/// Bytes of each table log.
pub(crate) const STRINGS_CAP: usize = 1 << 20;
pub(crate) const LOCATIONS_CAP: usize = 256 << 10;
pub(crate) const THREADS_CAP: usize = 512 << 10;
pub(crate) const MODULES_CAP: usize = 256 << 10;
/// Frames of the crashing thread's stack kept.
pub(crate) const FATAL_FRAMES: usize = 128;
pub(crate) const PROGRAM_CAP: usize = 256;
pub(crate) const HOST_CAP: usize = 256;
pub(crate) const DIR_CAP: usize = 2048;
/// The most segments a ring has: the first, in the ring file, and up to 7 more files
/// `<ring>.seg<k>` made when every slot is taken (the cap; past it, chunks go to the heap).
pub(crate) const MAX_SEGMENTS: usize = 8;
/// The most slots of a segment file (4 MiB of chunks): the growth is for threads beyond the
/// spare slots, not for the window, which the first segment holds.
pub(crate) const SEGMENT_SLOTS: usize = 64;
/// The first bytes of a segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"FRRSEG01";
/// A slot id holds its segment above this bit.
const SEGMENT_SHIFT: u32 = 24;

/// The first page of a segment file; its slots follow at one page.
#[repr(C)]
pub(crate) struct SegmentHeader {
    pub magic: [u8; 8],
    pub layout_version: u64,
    pub pid: u64,
    pub start_time: u64,
    pub index: u64,
    pub slot_count: u64,
    pub chunk_size: u64,
    pub file_size: u64,
}

/// The path of segment `index` of the ring at `ring`.
pub(crate) fn segment_path(ring: &Path, index: usize) -> PathBuf {
    let mut name = ring.as_os_str().to_owned();
    name.push(format!(".seg{index}"));
    PathBuf::from(name)
}

/// The most ring files a directory may hold before no new ring is made there.
pub(crate) const MAX_RINGS: usize = 64;

/// `RingHeader::status`: the process exited through `exit` (atexit ran).
pub(crate) const STATUS_EXITED: u64 = 1;

/// `RingHeader::window_generation` when no flight recorder runs.
pub(crate) const NO_WINDOW: u64 = u64::MAX;

/// The ring's first page.
#[repr(C)]
pub(crate) struct RingHeader {
    pub magic: [u8; 8],
    pub layout_version: u64,
    pub header_size: u64,
    pub uid: u64,
    pub pid: u64,
    /// The process's start time, clock ticks since boot (`/proc/self/stat`, field 22).
    pub start_time: u64,
    pub chunk_size: u64,
    pub slot_count: u64,
    pub slots_offset: u64,
    pub file_size: u64,
    pub strings_offset: u64,
    pub strings_cap: u64,
    pub locations_offset: u64,
    pub locations_cap: u64,
    pub threads_offset: u64,
    pub threads_cap: u64,
    pub modules_offset: u64,
    pub modules_cap: u64,
    pub fatal_offset: u64,
    /// 1 `tsc`, 2 `monotonic`.
    pub clock_source: u64,
    pub unit_shift: u64,
    /// The first calibration sample: ticks, monotonic ns, wall ns.
    pub start_sample: [u64; 3],
    pub created_wall_ns: u64,
    /// The window's `min_age` (ns) and `max_bytes`, for the recovered file's header.
    pub min_age_ns: AtomicU64,
    pub max_bytes: AtomicU64,
    /// The generation the running window started in ([`NO_WINDOW`]: none): chunks of older
    /// generations are not part of it.
    pub window_generation: AtomicU64,
    /// 0 while running (or died), [`STATUS_EXITED`] after a normal exit.
    pub status: AtomicU64,
    /// Chunks that found no free slot and were made on the heap (not recoverable).
    pub heap_chunks: AtomicU64,
    /// `samples[sample_index % 2]` is the latest whole clock sample.
    pub sample_index: AtomicU64,
    pub samples: [[AtomicU64; 3]; 2],
    pub program_len: u64,
    pub program: [u8; PROGRAM_CAP],
    pub host_len: u64,
    pub host: [u8; HOST_CAP],
    pub dump_dir_len: u64,
    pub dump_dir: [u8; DIR_CAP],
}

const _: () = assert!(std::mem::size_of::<RingHeader>() <= PAGE);

/// The head of a table log.
#[repr(C)]
pub(crate) struct LogHead {
    /// Bytes of whole entries, stored after they are written.
    pub len: AtomicU64,
    /// Entries that did not fit.
    pub dropped: AtomicU64,
    _pad: [u64; 6],
}

pub(crate) const LOG_HEAD: usize = std::mem::size_of::<LogHead>();

/// What the fatal-signal handler records: written once (`state` 0 → 1 while writing → 2).
#[repr(C)]
pub(crate) struct FatalArea {
    pub state: AtomicU64,
    pub signal: AtomicU64,
    pub code: AtomicU64,
    pub address: AtomicU64,
    pub os_tid: AtomicU64,
    /// The recorder's id of the crashing thread (0: it never recorded).
    pub thread: AtomicU64,
    /// The trace clock when the handler ran, ticks.
    pub ticks: AtomicU64,
    /// The last fatal signal seen (a handler chained to may raise another: a stack overflow
    /// found by `SIGSEGV` ends with `SIGABRT`).
    pub last_signal: AtomicU64,
    pub frame_count: AtomicU64,
    pub frames: [AtomicU64; FATAL_FRAMES],
}

const _: () = assert!(std::mem::size_of::<FatalArea>() <= PAGE);

/// Where the ring goes and what it holds beyond the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RingParams {
    pub dir: PathBuf,
    pub dump_dir: PathBuf,
    pub slots: usize,
    pub chunk_size: usize,
}

/// The process's ring.
pub(crate) struct Ring {
    base: NonNull<u8>,
    len: usize,
    chunk_size: usize,
    slot_count: usize,
    slots_offset: usize,
    free: Mutex<Vec<u32>>,
    /// The slots of segments 1.. (segment 0 is in the ring file): base of their slots.
    segments: [std::sync::atomic::AtomicPtr<u8>; MAX_SEGMENTS],
    segment_count: std::sync::atomic::AtomicUsize,
    /// Slots of each segment file.
    segment_slots: usize,
    grow_failed: AtomicBool,
    logs: Mutex<()>,
    sampling: AtomicBool,
    path: CString,
    /// Held open (and locked) for the process's life.
    _fd: i32,
}

// SAFETY: the mapping is shared memory accessed through atomics (headers, logs' lengths) or by
// the protocol of its chunks; the raw pointer is only a base address.
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

static RING: OnceLock<Ring> = OnceLock::new();
static CREATING: Mutex<()> = Mutex::new(());
static SAID_FULL: AtomicBool = AtomicBool::new(false);

/// The process's ring, if one was made.
#[inline]
pub(crate) fn ring() -> Option<&'static Ring> {
    RING.get()
}

/// The process's start time in clock ticks since boot, from `/proc/<pid>/stat` (field 22).
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// The ring directory by default: `$XDG_RUNTIME_DIR/flight-recorder` when that is set, else
/// `/dev/shm/flight-recorder` (both memory-backed).
pub fn default_ring_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("flight-recorder"),
        _ => PathBuf::from("/dev/shm/flight-recorder"),
    }
}

/// Makes `dir` (owner-only) if missing and checks that it is ours and private.
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true).mode(0o700);
    builder.create(dir)?;
    let meta = std::fs::metadata(dir)?;
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    if meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a private directory of this user (owner {}, mode {:o})",
                dir.display(),
                meta.uid(),
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// The offsets of a ring of `slots` chunks of `chunk_size` bytes.
struct Layout {
    strings: usize,
    locations: usize,
    threads: usize,
    modules: usize,
    fatal: usize,
    slots: usize,
    size: usize,
}

fn layout(slots: usize, chunk_size: usize) -> Option<Layout> {
    let strings = PAGE;
    let locations = round_up(strings + LOG_HEAD + STRINGS_CAP, PAGE);
    let threads = round_up(locations + LOG_HEAD + LOCATIONS_CAP, PAGE);
    let modules = round_up(threads + LOG_HEAD + THREADS_CAP, PAGE);
    let fatal = round_up(modules + LOG_HEAD + MODULES_CAP, PAGE);
    let slots_offset = fatal + PAGE;
    let size = slots
        .checked_mul(HEADER_SIZE.checked_add(chunk_size)?)?
        .checked_add(slots_offset)?;
    Some(Layout {
        strings,
        locations,
        threads,
        modules,
        fatal,
        slots: slots_offset,
        size: round_up(size, PAGE),
    })
}

fn copy_text(text: &[u8], len: &mut u64, out: &mut [u8]) {
    let n = text.len().min(out.len());
    out[..n].copy_from_slice(&text[..n]);
    *len = n as u64;
}

/// What the ring's header says about the process, given by the layers above.
pub(crate) struct ProcessText<'a> {
    pub program: &'a str,
    pub host: &'a str,
}

/// Makes the process's ring, once; later calls return the ring made first. Fails (and the
/// recorder keeps its heap buffers) when the directory is not private, holds too many rings, or
/// the file's space cannot be reserved.
pub(crate) fn create(
    params: &RingParams,
    text: &ProcessText<'_>,
) -> std::io::Result<&'static Ring> {
    let _guard = lock(&CREATING);
    if let Some(ring) = RING.get() {
        return Ok(ring);
    }
    if params.slots == 0 || params.slots >= 1 << SEGMENT_SHIFT {
        return Err(std::io::Error::other(
            "a ring's slot count must be in 1..2^24",
        ));
    }
    private_dir(&params.dir)?;
    let rings = std::fs::read_dir(&params.dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().as_bytes().ends_with(RING_SUFFIX.as_bytes()))
        .count();
    if rings >= MAX_RINGS {
        return Err(std::io::Error::other(format!(
            "{} already holds {rings} rings (at most {MAX_RINGS}); run `flight-recorder recover`",
            params.dir.display()
        )));
    }
    let Layout {
        strings,
        locations,
        threads,
        modules,
        fatal,
        slots: slots_offset,
        size,
    } = layout(params.slots, params.chunk_size)
        .ok_or_else(|| std::io::Error::other("ring too large"))?;
    let pid = std::process::id();
    let start_time = process_start_time(pid).unwrap_or(0);
    let program: String = text
        .program
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let path = params
        .dir
        .join(format!("{program}.{pid}.{start_time}{RING_SUFFIX}"));
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("ring path holds a NUL byte"))?;
    // SAFETY: a plain open(2) of a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            cpath.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fail = |err: std::io::Error| {
        // SAFETY: `fd` is ours; the path is the file we made.
        unsafe {
            libc::unlink(cpath.as_ptr());
            libc::close(fd);
        }
        err
    };
    // SAFETY: flock on our own descriptor.
    if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(fail(std::io::Error::last_os_error()));
    }
    // SAFETY: posix_fallocate on our own descriptor; it returns the error number.
    let rc = unsafe { libc::posix_fallocate(fd, 0, size as libc::off_t) };
    if rc != 0 {
        return Err(fail(std::io::Error::from_raw_os_error(rc)));
    }
    // SAFETY: a fresh shared mapping of the whole file, which is `size` bytes long.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(fail(std::io::Error::last_os_error()));
    }
    let base = NonNull::new(base.cast::<u8>()).expect("mmap does not return null");
    let calibration = crate::record::clock::calibration();
    // SAFETY: the mapping is fresh, page-aligned, at least a page long, zeroed, and no one else
    // has it yet: writing its header through a unique reference is sound.
    let header = unsafe { &mut *base.as_ptr().cast::<RingHeader>() };
    header.layout_version = LAYOUT_VERSION;
    header.header_size = std::mem::size_of::<RingHeader>() as u64;
    // SAFETY: getuid has no preconditions.
    header.uid = u64::from(unsafe { libc::getuid() });
    header.pid = u64::from(pid);
    header.start_time = start_time;
    header.chunk_size = params.chunk_size as u64;
    header.slot_count = params.slots as u64;
    header.slots_offset = slots_offset as u64;
    header.file_size = size as u64;
    header.strings_offset = strings as u64;
    header.strings_cap = STRINGS_CAP as u64;
    header.locations_offset = locations as u64;
    header.locations_cap = LOCATIONS_CAP as u64;
    header.threads_offset = threads as u64;
    header.threads_cap = THREADS_CAP as u64;
    header.modules_offset = modules as u64;
    header.modules_cap = MODULES_CAP as u64;
    header.fatal_offset = fatal as u64;
    header.clock_source = if calibration.source == "tsc" { 1 } else { 2 };
    header.unit_shift = u64::from(calibration.unit_shift);
    header.start_sample = [
        calibration.start.ticks,
        calibration.start.monotonic_ns,
        calibration.start.wall_ns,
    ];
    header.created_wall_ns = crate::record::clock::sample().wall_ns;
    header.window_generation = AtomicU64::new(NO_WINDOW);
    copy_text(
        text.program.as_bytes(),
        &mut header.program_len,
        &mut header.program,
    );
    copy_text(text.host.as_bytes(), &mut header.host_len, &mut header.host);
    copy_text(
        params.dump_dir.as_os_str().as_bytes(),
        &mut header.dump_dir_len,
        &mut header.dump_dir,
    );
    header.magic = MAGIC;
    let ring = Ring {
        base,
        len: size,
        chunk_size: params.chunk_size,
        slot_count: params.slots,
        slots_offset,
        free: Mutex::new((0..params.slots as u32).rev().collect()),
        segments: [const { std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()) }; MAX_SEGMENTS],
        segment_count: std::sync::atomic::AtomicUsize::new(1),
        segment_slots: params.slots.min(SEGMENT_SLOTS),
        grow_failed: AtomicBool::new(false),
        logs: Mutex::new(()),
        sampling: AtomicBool::new(false),
        path: cpath,
        _fd: fd,
    };
    ring.refresh_clock();
    let ring = RING.get_or_init(|| ring);
    crate::record::fatal::install();
    // SAFETY: registering a function with no preconditions, run at `exit`.
    unsafe { libc::atexit(at_exit) };
    Ok(ring)
}

/// At a normal exit of the process that made it: the ring is no longer needed. It is kept when a fatal signal was recorded
/// (a handler the program installed may have let it go on), so that it is recovered.
extern "C" fn at_exit() {
    if let Some(ring) = RING.get().filter(|r| r.is_own()) {
        ring.header().status.store(STATUS_EXITED, Ordering::Release);
        if ring.fatal().state.load(Ordering::Acquire) == 0 {
            for index in 1..ring.segment_count.load(Ordering::Relaxed) {
                let _ = std::fs::remove_file(segment_path(&ring.path(), index));
            }
            // SAFETY: unlink of the NUL-terminated path we made; the mapping stays valid.
            unsafe { libc::unlink(ring.path.as_ptr()) };
        }
    }
}

impl Ring {
    /// Whether the calling process made the ring (a child forked without `exec` shares the
    /// mapping, but must not mark or remove it). Async-signal-safe.
    pub(crate) fn is_own(&self) -> bool {
        // SAFETY: getpid has no preconditions and is async-signal-safe.
        self.header().pid == u64::from(unsafe { libc::getpid() } as u32)
    }

    pub(crate) fn header(&self) -> &RingHeader {
        // SAFETY: the mapping starts with a RingHeader and stays mapped for the process's life;
        // after creation it is only accessed through its atomics.
        unsafe { &*self.base.as_ptr().cast::<RingHeader>() }
    }

    pub(crate) fn fatal(&self) -> &FatalArea {
        let offset = self.header().fatal_offset as usize;
        // SAFETY: the fatal area is a page inside the mapping, page-aligned, zeroed at creation,
        // accessed only through atomics.
        unsafe { &*self.base.as_ptr().add(offset).cast::<FatalArea>() }
    }

    /// The ring file's path.
    pub(crate) fn path(&self) -> PathBuf {
        PathBuf::from(std::ffi::OsStr::from_bytes(self.path.as_bytes()))
    }

    /// The mapping's size, bytes.
    pub(crate) fn size(&self) -> usize {
        self.len
    }

    /// The header of slot `slot` (segment in the high bits, index in the low ones).
    fn slot_header(&self, slot: u32) -> NonNull<ChunkHeader> {
        let segment = (slot >> SEGMENT_SHIFT) as usize;
        let index = (slot & ((1 << SEGMENT_SHIFT) - 1)) as usize;
        let base = if segment == 0 {
            // SAFETY: the slots start inside the mapping.
            unsafe { self.base.as_ptr().add(self.slots_offset) }
        } else {
            self.segments[segment].load(Ordering::Acquire)
        };
        // SAFETY: a slot id on the free list or held by a buffer names a slot of a mapped
        // segment (the first holds `slot_count` slots, the others `segment_slots`); slots are 128-aligned (segments start on a
        // page, slots are multiples of 128 bytes) and never unmapped.
        unsafe {
            NonNull::new_unchecked(
                base.add(index * (HEADER_SIZE + self.chunk_size))
                    .cast::<ChunkHeader>(),
            )
        }
    }

    /// Adds a segment file with `slot_count` more slots to `free`; false at the cap or when the
    /// file cannot be made (then never tried again).
    fn grow(&self, free: &mut Vec<u32>) -> bool {
        let index = self.segment_count.load(Ordering::Relaxed);
        if index >= MAX_SEGMENTS || self.grow_failed.load(Ordering::Relaxed) {
            return false;
        }
        match self.make_segment(index) {
            Ok(slots) => {
                self.segments[index].store(slots, Ordering::Release);
                self.segment_count.store(index + 1, Ordering::Relaxed);
                free.extend(
                    (0..self.segment_slots as u32)
                        .rev()
                        .map(|i| (index as u32) << SEGMENT_SHIFT | i),
                );
                true
            }
            Err(_) => {
                self.grow_failed.store(true, Ordering::Relaxed);
                false
            }
        }
    }

    /// Makes segment file `index` (reserved, mapped, its header written); returns its slots.
    fn make_segment(&self, index: usize) -> std::io::Result<*mut u8> {
        let path = segment_path(&self.path(), index);
        let cpath = CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
        let size = PAGE + self.segment_slots * (HEADER_SIZE + self.chunk_size);
        // SAFETY: open(2) of a NUL-terminated path; the descriptor is closed below (the mapping
        // keeps the file).
        let fd = unsafe {
            libc::open(
                cpath.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                0o600,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: our descriptor; a fresh shared mapping of the whole reserved file.
        let base = unsafe {
            let rc = libc::posix_fallocate(fd, 0, size as libc::off_t);
            let base = if rc == 0 {
                libc::mmap(
                    std::ptr::null_mut(),
                    size,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                )
            } else {
                libc::MAP_FAILED
            };
            libc::close(fd);
            if base == libc::MAP_FAILED {
                libc::unlink(cpath.as_ptr());
                return Err(std::io::Error::other("no room for a ring segment"));
            }
            base.cast::<u8>()
        };
        let h = self.header();
        // SAFETY: the mapping is fresh, page-aligned, zeroed and ours alone.
        let header = unsafe { &mut *base.cast::<SegmentHeader>() };
        header.layout_version = LAYOUT_VERSION;
        header.pid = h.pid;
        header.start_time = h.start_time;
        header.index = index as u64;
        header.slot_count = self.segment_slots as u64;
        header.chunk_size = self.chunk_size as u64;
        header.file_size = size as u64;
        header.magic = SEGMENT_MAGIC;
        // SAFETY: the slots start one page into the mapping.
        Ok(unsafe { base.add(PAGE) })
    }

    fn take_slot(&self) -> Option<Buffer> {
        let slot = {
            let mut free = lock(&self.free);
            match free.pop() {
                Some(slot) => slot,
                None if self.grow(&mut free) => free.pop()?,
                None => return None,
            }
        };
        // SAFETY: the slot was on the free list, so nothing else uses it until the buffer is
        // dropped; `slot_header` gives its 128-aligned header, in a mapping never unmapped.
        Some(unsafe { Buffer::in_ring(self.slot_header(slot), self.chunk_size, slot) })
    }

    fn release_slot(&self, slot: u32) {
        // SAFETY: as in `take_slot`; the buffer that had the slot is being dropped.
        let header = unsafe { self.slot_header(slot).as_ref() };
        // The slot holds no chunk from now on, for recovery.
        header.seq.store(0, Ordering::Release);
        lock(&self.free).push(slot);
    }

    /// Appends table entries (already encoded) to the log at `offset`; dropped when full.
    fn append(&self, offset: u64, cap: u64, entries: &[u8]) {
        if entries.is_empty() {
            return;
        }
        let _guard = lock(&self.logs);
        // SAFETY: the log head is inside the mapping, aligned, accessed through atomics.
        let head = unsafe { &*self.base.as_ptr().add(offset as usize).cast::<LogHead>() };
        let len = head.len.load(Ordering::Relaxed) as usize;
        if len + entries.len() > cap as usize {
            head.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // SAFETY: `[len, len + entries.len())` lies in the log's bytes (checked against its
        // capacity), past its published length, and only this appender (under `logs`) writes it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                entries.as_ptr(),
                self.base.as_ptr().add(offset as usize + LOG_HEAD + len),
                entries.len(),
            );
        }
        head.len
            .store((len + entries.len()) as u64, Ordering::Release);
    }

    /// Appends encoded Strings table entries.
    pub(crate) fn log_strings(&self, entries: &[u8]) {
        let h = self.header();
        self.append(h.strings_offset, h.strings_cap, entries);
    }

    /// Appends encoded Locations table entries.
    pub(crate) fn log_locations(&self, entries: &[u8]) {
        let h = self.header();
        self.append(h.locations_offset, h.locations_cap, entries);
    }

    /// Appends encoded Threads table entries.
    pub(crate) fn log_threads(&self, entries: &[u8]) {
        let h = self.header();
        self.append(h.threads_offset, h.threads_cap, entries);
    }

    /// Appends encoded Modules table entries.
    pub(crate) fn log_modules(&self, entries: &[u8]) {
        let h = self.header();
        self.append(h.modules_offset, h.modules_cap, entries);
    }

    /// Stores a fresh clock sample (cheap: the vDSO's clocks), so that recovered times map with
    /// a rate measured up to near the death. Skipped when another thread is at it.
    pub(crate) fn refresh_clock(&self) {
        if self.sampling.swap(true, Ordering::Acquire) {
            return;
        }
        let sample = crate::record::clock::sample();
        let h = self.header();
        let next = h.sample_index.load(Ordering::Relaxed).wrapping_add(1);
        let slot = &h.samples[(next % 2) as usize];
        slot[0].store(sample.ticks, Ordering::Relaxed);
        slot[1].store(sample.monotonic_ns, Ordering::Relaxed);
        slot[2].store(sample.wall_ns, Ordering::Relaxed);
        h.sample_index.store(next, Ordering::Release);
        self.sampling.store(false, Ordering::Release);
    }

    /// Records the generation the running window started in ([`NO_WINDOW`] when stopped).
    pub(crate) fn set_window_generation(&self, generation: u64) {
        self.header()
            .window_generation
            .store(generation, Ordering::Release);
    }

    /// Records the window's bounds, for the recovered file's header.
    pub(crate) fn set_window_bounds(&self, min_age_ns: u64, max_bytes: u64) {
        let h = self.header();
        h.min_age_ns.store(min_age_ns, Ordering::Relaxed);
        h.max_bytes.store(max_bytes, Ordering::Relaxed);
    }
}

/// A buffer from the ring's free slots, when there is a ring with chunks of this size and a slot
/// is free; `None` sends the caller to the heap.
pub(crate) fn take(capacity: usize) -> Option<Buffer> {
    let ring = RING.get()?;
    if capacity != ring.chunk_size {
        return None;
    }
    let buffer = ring.take_slot();
    if buffer.is_none() {
        ring.header().heap_chunks.fetch_add(1, Ordering::Relaxed);
        if !SAID_FULL.swap(true, Ordering::Relaxed) {
            eprintln!(
                "flight-recorder: the ring {} has no free chunk slot ({} segments of {} slots); \
                 further chunks are kept on the heap and are not recoverable after a crash",
                ring.path().display(),
                ring.segment_count.load(Ordering::Relaxed),
                ring.slot_count
            );
        }
    }
    buffer
}

/// Gives a ring slot back (the buffer that had it is dropped).
pub(crate) fn release(slot: u32) {
    if let Some(ring) = RING.get() {
        ring.release_slot(slot);
    }
}

/// Per-thread facts the fatal-signal handler reads: the recorder's id of the thread and its stack
/// bounds (a thread-local without destructor: a plain TLS access, safe in a handler).
pub(crate) mod thread {
    use std::cell::Cell;

    thread_local! {
        static FACTS: Cell<(u64, usize, usize)> = const { Cell::new((0, 0, 0)) };
    }

    /// Notes the calling thread's recorder id and stack bounds (when a ring exists).
    pub(crate) fn registered(id: u64) {
        if super::ring().is_none() {
            return;
        }
        let (lo, hi) = crate::stack::current_stack_bounds().unwrap_or((0, 0));
        let _ = FACTS.try_with(|f| f.set((id, lo, hi)));
    }

    /// The calling thread's (id, stack lo, stack hi); zeros if unknown.
    pub(crate) fn facts() -> (u64, usize, usize) {
        FACTS.try_with(Cell::get).unwrap_or((0, 0, 0))
    }
}
