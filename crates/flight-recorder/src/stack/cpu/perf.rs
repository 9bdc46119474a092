//! The `perf_event_open` source: one software CPU-clock event per sampled thread, sampling at a
//! frequency, with the thread's user-space call chain and a `CLOCK_MONOTONIC` time in every
//! sample, read from a ring buffer per thread by the sampler thread.
//!
//! The kernel takes the sample (its call chain follows frame pointers, user space only); nothing
//! runs on the sampled thread.

use std::sync::atomic::{AtomicU64, Ordering};

use super::super::signal::errno;

/// `perf_event_attr`, as far as `PERF_ATTR_SIZE_VER5` (112 bytes, Linux 4.1+): the fields used
/// here are all in the first version; the later ones are zero.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    /// `sample_period`, or `sample_freq` with the `freq` flag.
    sample_freq: u64,
    sample_type: u64,
    read_format: u64,
    /// The bit fields (`disabled`, `inherit`, …), bit 0 first.
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved_2: u16,
}

const _: () = assert!(std::mem::size_of::<PerfEventAttr>() == 112);

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;

const PERF_SAMPLE_TID: u64 = 1 << 1;
const PERF_SAMPLE_TIME: u64 = 1 << 2;
const PERF_SAMPLE_CALLCHAIN: u64 = 1 << 5;

const FLAG_EXCLUDE_KERNEL: u64 = 1 << 5;
const FLAG_EXCLUDE_HV: u64 = 1 << 6;
const FLAG_FREQ: u64 = 1 << 10;
const FLAG_EXCLUDE_CALLCHAIN_KERNEL: u64 = 1 << 21;
const FLAG_USE_CLOCKID: u64 = 1 << 25;

const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

const PERF_RECORD_LOST: u32 = 2;
const PERF_RECORD_SAMPLE: u32 = 9;

/// Call-chain entries at or above this value are context markers (`PERF_CONTEXT_USER`, …), not
/// addresses.
const PERF_CONTEXT_MAX: u64 = -4095i64 as u64;

/// The offsets of `data_head` and `data_tail` in the ring's first page (`perf_event_mmap_page`).
const DATA_HEAD: usize = 1024;
const DATA_TAIL: usize = 1032;

/// The most data pages per thread's ring (32 KiB with 4 KiB pages: at 99 Hz and 30 frames a
/// sample, about 10 s of samples; the sampler drains every 20 ms).
pub(crate) const MAX_DATA_PAGES: usize = 8;

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as usize
    } else {
        4096
    }
}

fn attr(hz: u32) -> PerfEventAttr {
    PerfEventAttr {
        type_: PERF_TYPE_SOFTWARE,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: PERF_COUNT_SW_CPU_CLOCK,
        sample_freq: u64::from(hz),
        sample_type: PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_CALLCHAIN,
        flags: FLAG_EXCLUDE_KERNEL
            | FLAG_EXCLUDE_HV
            | FLAG_FREQ
            | FLAG_EXCLUDE_CALLCHAIN_KERNEL
            | FLAG_USE_CLOCKID,
        clockid: libc::CLOCK_MONOTONIC,
        ..PerfEventAttr::default()
    }
}

/// Opens the event for thread `tid` (0: the calling thread); the file descriptor or `errno`.
fn open(tid: i32, hz: u32) -> Result<i32, i32> {
    let attr = attr(hz);
    // SAFETY: `attr` is a complete, correctly sized perf_event_attr for the duration of the
    // call; the other arguments are plain integers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            tid,
            -1i32,
            -1i32,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd as i32)
    }
}

/// Whether the kernel lets this process sample its threads: opens an event on the calling
/// thread and closes it. `Err(errno)` when refused.
pub(crate) fn probe(hz: u32) -> Result<(), i32> {
    let fd = open(0, hz)?;
    // SAFETY: `fd` was just opened and is closed once.
    unsafe { libc::close(fd) };
    Ok(())
}

/// The data pages to give each thread's ring: at most [`MAX_DATA_PAGES`], a power of two, and
/// such that `threads` rings fit within `perf_event_mlock_kb` when the process cannot lock
/// memory beyond it (the kernel charges rings past that allowance to `RLIMIT_MEMLOCK`).
pub(crate) fn data_pages_for(threads: usize) -> usize {
    let page = page_size();
    let allowance_kb = std::fs::read_to_string("/proc/sys/kernel/perf_event_mlock_kb")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(516);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out-pointer.
    let memlock = if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } == 0 {
        limit.rlim_cur as usize
    } else {
        0
    };
    let budget = (allowance_kb << 10).saturating_add(memlock);
    let per_thread_pages = budget / page / threads.max(1);
    let mut pages = MAX_DATA_PAGES;
    while pages > 1 && pages + 1 > per_thread_pages {
        pages /= 2;
    }
    pages
}

/// One sampled thread: its event and the ring buffer the kernel writes samples into.
pub(crate) struct PerfThread {
    pub(crate) tid: i32,
    fd: i32,
    base: *mut u8,
    len: usize,
    data_size: usize,
}

// SAFETY: the mapping and the descriptor are owned by this value and used by one thread at a
// time (the sampler's).
unsafe impl Send for PerfThread {}

impl PerfThread {
    /// Starts sampling thread `tid` at `hz`, with a ring of `data_pages` pages (halved until the
    /// kernel accepts it). `Err(errno)` when the event cannot be opened or mapped.
    pub(crate) fn open(tid: i32, hz: u32, data_pages: usize) -> Result<PerfThread, i32> {
        let fd = open(tid, hz)?;
        let page = page_size();
        let mut pages = data_pages.max(1).next_power_of_two();
        loop {
            let len = (pages + 1) * page;
            // SAFETY: maps the event's ring buffer (one metadata page and a power of two of data
            // pages), shared with the kernel; unmapped in `Drop`.
            let base = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                )
            };
            if base != libc::MAP_FAILED {
                return Ok(PerfThread {
                    tid,
                    fd,
                    base: base.cast(),
                    len,
                    data_size: pages * page,
                });
            }
            let e = errno();
            if pages == 1 || !(e == libc::EPERM || e == libc::ENOMEM) {
                // SAFETY: `fd` is ours and closed once.
                unsafe { libc::close(fd) };
                return Err(e);
            }
            pages /= 2;
        }
    }

    /// The bytes of the ring's data area.
    pub(crate) fn ring_bytes(&self) -> usize {
        self.data_size
    }

    fn head(&self) -> &AtomicU64 {
        // SAFETY: `data_head` is an aligned u64 in the mapped metadata page, which lives as long
        // as `self`; the kernel writes it, we read it atomically.
        unsafe { &*self.base.add(DATA_HEAD).cast::<AtomicU64>() }
    }

    fn tail(&self) -> &AtomicU64 {
        // SAFETY: `data_tail` is an aligned u64 in the mapped metadata page; we write it, the
        // kernel reads it.
        unsafe { &*self.base.add(DATA_TAIL).cast::<AtomicU64>() }
    }

    /// Copies `out.len()` bytes of the data area from ring offset `at` (wrapping).
    fn copy(&self, at: u64, out: &mut [u8]) {
        let size = self.data_size;
        let start = (at % size as u64) as usize;
        let first = out.len().min(size - start);
        // SAFETY: the data area is `[base + page, base + page + size)`; both copies stay inside
        // it (`start + first <= size`, `out.len() - first <= size`), and the kernel does not
        // write between `data_tail` and `data_head`, which we read after an acquire load of
        // `data_head`.
        unsafe {
            let data = self.base.add(self.len - size);
            std::ptr::copy_nonoverlapping(data.add(start), out.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(data, out[first..].as_mut_ptr(), out.len() - first);
        }
    }

    /// Reads every record in the ring: each sample goes to `sample(tid, monotonic_ns, frames)`;
    /// returns the samples the kernel reported lost.
    pub(crate) fn drain(
        &mut self,
        buffer: &mut Vec<u8>,
        frames: &mut Vec<u64>,
        sample: &mut dyn FnMut(i32, u64, &[u64]),
    ) -> u64 {
        let head = self.head().load(Ordering::Acquire);
        let mut tail = self.tail().load(Ordering::Relaxed);
        let mut lost = 0u64;
        while head.saturating_sub(tail) >= 8 {
            let mut header = [0u8; 8];
            self.copy(tail, &mut header);
            let kind = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]);
            let size = u16::from_ne_bytes([header[6], header[7]]) as u64;
            if size < 8 || size > head - tail {
                // A corrupt record: skip everything written so far.
                tail = head;
                break;
            }
            buffer.resize(size as usize - 8, 0);
            self.copy(tail + 8, buffer);
            let word = |i: usize| -> Option<u64> {
                let bytes = buffer.get(i * 8..i * 8 + 8)?;
                Some(u64::from_ne_bytes(bytes.try_into().ok()?))
            };
            match kind {
                PERF_RECORD_SAMPLE => {
                    // pid, tid (u32 each), time, nr, ips[nr].
                    if let (Some(ids), Some(time), Some(nr)) = (word(0), word(1), word(2)) {
                        let tid = (ids >> 32) as i32;
                        frames.clear();
                        for i in 0..nr.min(1024) as usize {
                            match word(3 + i) {
                                Some(ip) if ip < PERF_CONTEXT_MAX => frames.push(ip),
                                Some(_) => {}
                                None => break,
                            }
                        }
                        if !frames.is_empty() {
                            sample(tid, time, frames);
                        }
                    }
                }
                PERF_RECORD_LOST => {
                    // id, lost.
                    lost += word(1).unwrap_or(0);
                }
                _ => {}
            }
            tail += size;
        }
        self.tail().store(tail, Ordering::Release);
        lost
    }
}

impl Drop for PerfThread {
    fn drop(&mut self) {
        // SAFETY: the mapping and the descriptor are ours, released once.
        unsafe {
            libc::munmap(self.base.cast(), self.len);
            libc::close(self.fd);
        }
    }
}
