//! tokio's task ids as numbers.

use std::hash::{Hash, Hasher};

/// A hasher that keeps the last `u64` it is given: tokio's `task::Id` hashes its `NonZeroU64`,
/// which is the only way to read the number without parsing its `Display` form.
struct LastU64(u64);

impl Hasher for LastU64 {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for tokio's ids; fold anything else into a stable value.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// The number of a tokio task id (never 0).
#[inline]
pub(crate) fn task_id(id: tokio::task::Id) -> u64 {
    let mut hasher = LastU64(0);
    id.hash(&mut hasher);
    hasher.0
}

/// The id of the task running on this thread, or 0 outside a task.
#[inline]
pub(crate) fn current_task() -> u64 {
    tokio::task::try_id().map_or(0, task_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_display_form() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for _ in 0..3 {
            let handle = runtime.spawn(async {});
            let id = handle.id();
            assert_eq!(task_id(id), id.to_string().parse::<u64>().unwrap());
            assert_ne!(task_id(id), 0);
            runtime.block_on(handle).unwrap();
        }
    }
}
