//! A record that declares a huge length on a short file is an error, and the reader does not
//! allocate the declared length. This file is its own test binary so that its allocator, which
//! records the largest allocation, sees only this test.

use flight_recorder_test_support as common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Cursor, Read};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{header, TraceBuilder};
use flight_recorder_format::record::MAX_RECORD_LEN;
use flight_recorder_format::{ErrorKind, TraceReader};

/// The system allocator, recording the largest allocation or reallocation requested.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

#[test]
fn a_huge_declared_length_on_a_short_file_is_not_allocated() {
    let mut bytes = TraceBuilder::new(&header()).unfinished();
    let start = bytes.len();
    bytes.push(6);
    bytes.extend_from_slice(&MAX_RECORD_LEN.to_le_bytes());
    bytes.extend_from_slice(&[0x11; 1000]);

    // Through a slice and through a generic reader (no size hint).
    for generic in [false, true] {
        LARGEST.store(0, Ordering::Relaxed);
        let (events, error) = if generic {
            let reader = TraceReader::new(Cursor::new(bytes.clone()).chain(std::io::empty()));
            let mut reader = reader.unwrap();
            (Vec::new(), reader.read_all_events().err())
        } else {
            common::read(&bytes)
        };
        assert!(events.is_empty());
        let error = error.unwrap();
        assert!(matches!(error.kind, ErrorKind::Truncated(_)), "{error}");
        assert_eq!(error.offset, start as u64);
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(
            largest > 0 && largest < 1 << 20,
            "largest allocation {largest} bytes for a declared {MAX_RECORD_LEN}"
        );
    }
}
