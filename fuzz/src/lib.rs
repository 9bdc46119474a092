//! What the fuzz targets share: an allocator that turns an unbounded allocation into a crash.
//!
//! The targets run without a sanitizer (`cargo fuzz run -s none`, see `scripts/fuzz.sh`), so
//! libFuzzer's `-malloc_limit_mb` has no malloc hooks to work with. This allocator stands in for
//! it: a single allocation larger than [`MAX_ALLOCATION`] aborts, which libFuzzer reports as a
//! crash and saves the input. (`-rss_limit_mb` still bounds the total.) The inputs are at most a
//! few hundred KiB, so a legitimate allocation stays far below the limit: anything above it is an
//! amplification bug (a length or count read from the file trusted before the bytes are there).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;

/// The largest single allocation a target may make, bytes.
pub const MAX_ALLOCATION: usize = 64 << 20;

struct Limited;

// SAFETY: every call is forwarded to the system allocator unchanged, or aborts the process.
unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn check(size: usize) {
    if size > MAX_ALLOCATION {
        // No allocation here: stderr is unbuffered and the message is static.
        let _ = std::io::stderr()
            .write_all(b"==fuzz== allocation above MAX_ALLOCATION: unbounded allocation\n");
        std::process::abort();
    }
}

#[global_allocator]
static ALLOCATOR: Limited = Limited;

/// Makes sure this crate, and so its allocator, is linked into a target (call it first).
#[inline(never)]
pub fn check_allocations() {
    std::hint::black_box(MAX_ALLOCATION);
}

/// The preamble's length: magic and version.
const PREAMBLE_LEN: usize = 12;

/// `data` with the checksum of every whole record recomputed, so that a mutation inside a record
/// reaches the decoders behind the checksum instead of stopping at it. (A mutated length that
/// runs past the input ends the walk; the rest is left as it is.)
pub fn fix_checksums(data: &[u8]) -> Vec<u8> {
    let mut fixed = data.to_vec();
    let mut at = PREAMBLE_LEN;
    while at + 5 <= fixed.len() {
        let len = u32::from_le_bytes([fixed[at + 1], fixed[at + 2], fixed[at + 3], fixed[at + 4]])
            as usize;
        let Some(end) = (at + 5).checked_add(len) else {
            break;
        };
        if end + 4 > fixed.len() {
            break;
        }
        let crc = crc32fast::hash(&fixed[at..end]);
        fixed[end..end + 4].copy_from_slice(&crc.to_le_bytes());
        at = end + 4;
    }
    fixed
}
