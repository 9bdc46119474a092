//! Platforms without stack capture: every call reports [`StackError::Unsupported`].

use super::{Module, Stack, StackError, ThreadHandle};

pub(super) fn register_current_thread() -> Result<ThreadHandle, StackError> {
    Err(StackError::Unsupported)
}

pub(super) fn current_thread_handle() -> Option<ThreadHandle> {
    None
}

pub(super) fn capture_thread_stack(
    _thread: &ThreadHandle,
    _deadline: std::time::Instant,
) -> Result<Stack, StackError> {
    Err(StackError::Unsupported)
}

pub(super) fn set_signal(_signal: i32) -> Result<(), StackError> {
    Err(StackError::Unsupported)
}

pub(super) fn signal() -> i32 {
    0
}

pub(super) fn default_signal() -> i32 {
    0
}

pub(super) fn is_installed() -> bool {
    false
}

pub(super) fn loaded_modules() -> Vec<Module> {
    Vec::new()
}

pub(super) fn prepare_fatal_walk() {}

/// # Safety
///
/// None needed: nothing is read.
pub(super) unsafe fn walk_fatal(
    _context: *mut libc::c_void,
    _lo: usize,
    _hi: usize,
    _emit: impl FnMut(u64) -> bool,
) -> usize {
    0
}

pub(super) fn current_stack_bounds() -> Option<(usize, usize)> {
    None
}
