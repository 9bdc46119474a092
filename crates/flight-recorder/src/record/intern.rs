//! Interning of static strings and source locations: events carry small ids, and every file
//! carries the tables that give them back their text.
//!
//! Ids are global and stable for the process's life (so a file can include the whole table and
//! be self-contained), start at 1 (0 means "none"), and are handed out in order (so a full trace
//! can write just the entries added since its last write).

use std::cell::Cell;
use std::collections::HashMap;
use std::panic::Location;
use std::sync::{LazyLock, Mutex};

use flight_recorder_format::tables;

use crate::record::ring;
use crate::record::sync::lock;

#[derive(Default)]
struct Interner {
    strings: Vec<&'static str>,
    string_ids: HashMap<&'static str, u64>,
    locations: Vec<&'static Location<'static>>,
    location_ids: HashMap<(&'static str, u32, u32), u64>,
}

static INTERNER: LazyLock<Mutex<Interner>> = LazyLock::new(Default::default);

/// Entries of the per-thread memo: a direct-mapped cache from a static's address to its id, so
/// a call site interning the same literal on every call takes no lock and no hash after its
/// first call.
const MEMO_SLOTS: usize = 64;

thread_local! {
    static STRING_MEMO: [Cell<(usize, usize, u64)>; MEMO_SLOTS] =
        const { [const { Cell::new((0, 0, 0)) }; MEMO_SLOTS] };
    static LOCATION_MEMO: [Cell<(usize, u64)>; MEMO_SLOTS] =
        const { [const { Cell::new((0, 0)) }; MEMO_SLOTS] };
}

#[inline(always)]
fn memo_slot(address: usize) -> usize {
    (address >> 3 ^ address >> 9) % MEMO_SLOTS
}

/// The id of a static string (the same id for equal strings).
#[inline]
pub fn intern_str(text: &'static str) -> u64 {
    let address = text.as_ptr() as usize;
    let slot = memo_slot(address);
    let cached = STRING_MEMO.with(|memo| memo[slot].get());
    if cached.0 == address && cached.1 == text.len() && cached.2 != 0 {
        return cached.2;
    }
    let id = intern_str_slow(text);
    STRING_MEMO.with(|memo| memo[slot].set((address, text.len(), id)));
    id
}

#[cold]
fn intern_str_slow(text: &'static str) -> u64 {
    let mut interner = lock(&INTERNER);
    if let Some(&id) = interner.string_ids.get(text) {
        return id;
    }
    interner.strings.push(text);
    let id = interner.strings.len() as u64;
    interner.string_ids.insert(text, id);
    if let Some(ring) = ring::ring() {
        let mut entry = Vec::new();
        tables::push_string(id, text, &mut entry);
        ring.log_strings(&entry);
    }
    id
}

/// The id of a source location (the same id for equal locations).
#[inline]
pub fn intern_location(location: &'static Location<'static>) -> u64 {
    let address = location as *const Location<'static> as usize;
    let slot = memo_slot(address);
    let cached = LOCATION_MEMO.with(|memo| memo[slot].get());
    if cached.0 == address && cached.1 != 0 {
        return cached.1;
    }
    let id = intern_location_slow(location);
    LOCATION_MEMO.with(|memo| memo[slot].set((address, id)));
    id
}

#[cold]
fn intern_location_slow(location: &'static Location<'static>) -> u64 {
    let mut interner = lock(&INTERNER);
    let content = (location.file(), location.line(), location.column());
    if let Some(&id) = interner.location_ids.get(&content) {
        return id;
    }
    interner.locations.push(location);
    let id = interner.locations.len() as u64;
    interner.location_ids.insert(content, id);
    if let Some(ring) = ring::ring() {
        let mut entry = Vec::new();
        tables::push_location(id, &location_entry(location), &mut entry);
        ring.log_locations(&entry);
    }
    id
}

fn location_entry(location: &Location<'_>) -> tables::Location {
    tables::Location {
        file: location.file().to_string(),
        line: location.line(),
        column: location.column(),
    }
}

/// Copies every string and location interned so far into the ring's logs (when the ring is
/// made; those interned later are logged as they come). Under the interner's lock, so none is
/// missed: an entry logged twice is harmless (a later entry with the same id replaces it).
pub(crate) fn log_all_to_ring(ring: &ring::Ring) {
    let interner = lock(&INTERNER);
    let mut entries = Vec::new();
    for (id, text) in (1..).zip(&interner.strings) {
        tables::push_string(id, text, &mut entries);
    }
    ring.log_strings(&entries);
    entries.clear();
    for (id, location) in (1..).zip(&interner.locations) {
        tables::push_location(id, &location_entry(location), &mut entries);
    }
    ring.log_locations(&entries);
}

/// The id of a string made at run time (a runtime's or a counter's name): a copy is leaked once
/// per distinct text, so call it for names, not for unbounded data.
#[cfg(feature = "tokio")]
pub(crate) fn intern_name(text: &str) -> u64 {
    let leaked = {
        let interner = lock(&INTERNER);
        interner.string_ids.get_key_value(text).map(|(&k, _)| k)
    };
    intern_str(leaked.unwrap_or_else(|| Box::leak(text.to_string().into_boxed_str())))
}

/// The strings with an id above `after`, with their ids.
pub(crate) fn strings_after(after: u64) -> Vec<(u64, &'static str)> {
    let interner = lock(&INTERNER);
    interner
        .strings
        .iter()
        .enumerate()
        .skip(after as usize)
        .map(|(i, &s)| (i as u64 + 1, s))
        .collect()
}

/// The locations with an id above `after`, with their ids.
pub(crate) fn locations_after(after: u64) -> Vec<(u64, &'static Location<'static>)> {
    let interner = lock(&INTERNER);
    interner
        .locations
        .iter()
        .enumerate()
        .skip(after as usize)
        .map(|(i, &l)| (i as u64 + 1, l))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_an_id_and_ids_are_listed() {
        let a = intern_str("intern-test-a");
        // The same text at another address: a static has an address of its own.
        static COPY: [u8; 13] = *b"intern-test-a";
        let owned: &'static str = std::str::from_utf8(&COPY).unwrap();
        assert_ne!(owned.as_ptr(), "intern-test-a".as_ptr());
        assert_eq!(intern_str(owned), a);
        let b = intern_str("intern-test-b");
        assert_ne!(a, b);
        let listed = strings_after(0);
        assert!(listed.contains(&(a, "intern-test-a")));
        assert!(listed.contains(&(b, "intern-test-b")));
        assert!(strings_after(b).iter().all(|&(id, _)| id > b));
    }

    #[test]
    fn locations_are_interned_by_content() {
        let here = Location::caller();
        let id = intern_location(here);
        assert_eq!(intern_location(here), id);
        let listed = locations_after(id - 1);
        assert_eq!(listed[0].0, id);
        assert_eq!(listed[0].1.line(), here.line());
    }
}
