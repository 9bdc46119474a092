//! Interning of call stacks: a `thread_stack` or `cpu_sample` event carries a small stack id, and
//! every file carries the stacks (as return addresses) that give the ids back their frames.
//!
//! Ids are global and stable for the process's life, start at 1 (0 means "no stack") and are
//! handed out in order, so a file writer writes just the stacks added since its last write, like
//! strings. Stacks are interned by the threads that capture them (a watchdog, a sampler), never
//! on the recording hot path and never in a signal handler: interning takes a lock and may
//! allocate.
//!
//! The table only grows, so it is bounded: at most [`MAX_STACKS`] distinct stacks and
//! [`MAX_FRAMES`] frames in all (8 MiB of addresses). Past that, a new stack gets id 0 and is
//! counted in [`dropped`]; stacks already interned keep their ids.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use crate::record::sync::lock;

/// The most distinct stacks kept.
pub(crate) const MAX_STACKS: usize = 1 << 16;

/// The most frames kept, all stacks together.
pub(crate) const MAX_FRAMES: usize = 1 << 20;

#[derive(Default)]
struct StackTable {
    stacks: Vec<Arc<[u64]>>,
    ids: HashMap<Arc<[u64]>, u64>,
    frames: usize,
}

static TABLE: LazyLock<Mutex<StackTable>> = LazyLock::new(Default::default);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The id of a stack (return addresses, innermost first): the same id for equal stacks, 0 when
/// the table is full.
pub(crate) fn intern_stack(frames: &[u64]) -> u64 {
    let mut table = lock(&TABLE);
    if let Some(&id) = table.ids.get(frames) {
        return id;
    }
    if table.stacks.len() >= MAX_STACKS || table.frames + frames.len() > MAX_FRAMES {
        drop(table);
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return 0;
    }
    let stack: Arc<[u64]> = frames.into();
    table.stacks.push(stack.clone());
    table.frames += frames.len();
    let id = table.stacks.len() as u64;
    table.ids.insert(stack, id);
    id
}

/// The stacks with an id above `after`, with their ids.
pub(crate) fn stacks_after(after: u64) -> Vec<(u64, Arc<[u64]>)> {
    let table = lock(&TABLE);
    table
        .stacks
        .iter()
        .enumerate()
        .skip(after as usize)
        .map(|(i, stack)| (i as u64 + 1, stack.clone()))
        .collect()
}

/// Stacks that could not be interned because the table was full.
pub(crate) fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_stacks_share_an_id_and_ids_are_listed_in_order() {
        let a = intern_stack(&[0x1000, 0x2000, 0x3000]);
        let b = intern_stack(&[0x1000, 0x2000]);
        assert_ne!(a, 0);
        assert_ne!(a, b);
        assert_eq!(intern_stack(&[0x1000, 0x2000, 0x3000]), a);
        let listed = stacks_after(a - 1);
        assert_eq!(listed[0].0, a);
        assert_eq!(&listed[0].1[..], &[0x1000, 0x2000, 0x3000]);
        assert!(stacks_after(b).iter().all(|(id, _)| *id > b));
        assert_eq!(dropped(), 0);
    }
}
