//! The stack walk run by the signal handler: frame pointers, plus a bounded scan for the callers
//! of functions that keep none.
//!
//! Everything here must stay async-signal-safe: no allocation, no lock, no system call. Memory is
//! read only inside `[stack_lo, stack_hi)` and above the interrupted stack pointer, word-aligned;
//! code is read only through [`CodeMap::is_after_call`], whose implementation reads only inside
//! executable segments that cannot be unmapped.
//!
//! The walk, innermost first:
//!
//! 1. the interrupted pc;
//! 2. on aarch64, the link register, if it points just after a call instruction (a leaf function
//!    without a frame still holds its return address there);
//! 3. the frame-pointer chain: each record is `[fp] = caller's fp`, `[fp + word] = return
//!    address`; a record must be aligned, inside the stack, above the previous one, and its return
//!    address must be in an executable segment (when the segments are known);
//! 4. and between the stack pointer and the first record, and between two records, the scan:
//!    words that point just after a call instruction in an executable segment. These are the
//!    return addresses of functions that keep no frame pointer — glibc's system call wrappers,
//!    code built without frame pointers — whose frames lie between two frames that keep one. Where the
//!    frame pointer does not point into the stack, or a "record" turns out not to be one (code
//!    without frame pointers uses the register for other values), or the chain ends on a value
//!    that is not 0 and not a record, the scan goes on for a few KiB instead. The scan may also find stale return addresses left in uninitialized stack slots;
//!    its frames are marked [`FrameKind::Scanned`].

use super::FrameKind;

/// The size of a stack word.
const WORD: usize = std::mem::size_of::<usize>();

/// The most bytes scanned in all, between frame records and after the chain ends.
const SCAN_BUDGET: usize = 64 << 10;

/// The most bytes scanned above the stack pointer when the frame pointer is not usable, or
/// above a record that turns out not to be one.
const SCAN_WITHOUT_FP: usize = 8 << 10;

/// The registers the walk starts from.
#[derive(Clone, Copy, Debug)]
pub(super) struct Regs {
    pub(super) pc: usize,
    pub(super) sp: usize,
    pub(super) fp: usize,
    /// The link register (aarch64), 0 where there is none.
    pub(super) lr: usize,
}

/// What the walk knows about code: which addresses are executable, and which are just after a
/// call instruction. Implementations must be async-signal-safe.
pub(super) trait CodeMap {
    /// Whether no segment is known (then return addresses are not checked).
    fn is_empty(&self) -> bool;
    /// Whether `address` lies in a known executable segment.
    fn is_executable(&self, address: usize) -> bool;
    /// Whether `address` lies in an executable segment whose code can be read safely and just
    /// follows a call instruction.
    fn is_after_call(&self, address: usize) -> bool;
}

/// Walks the stack described by `regs`, calling `emit` for every frame, innermost first, until
/// `emit` returns `false` (its buffer is full) or the walk ends. Returns whether `emit` refused a
/// frame.
///
/// # Safety
///
/// If `regs.sp` lies in `[stack_lo, stack_hi)`, every byte of `[regs.sp, stack_hi)` must be
/// readable for the duration of the call (the interrupted thread's own stack, from its handler).
pub(super) unsafe fn walk<C: CodeMap, F: FnMut(usize, FrameKind) -> bool>(
    regs: Regs,
    stack_lo: usize,
    stack_hi: usize,
    code: &C,
    mut emit: F,
) -> bool {
    if !emit(regs.pc, FrameKind::Pc) {
        return true;
    }
    // The interrupted stack pointer must be on the registered stack (not, say, on an alternate
    // signal stack): only then is everything between it and the top mapped (the main thread's
    // stack is mapped from its lowest stack pointer up, not from `stack_lo`). Reads stay in
    // [lo, stack_hi): the part of the stack that is live, above the stack pointer.
    let on_stack = regs.sp >= stack_lo && regs.sp < stack_hi;
    let lo = regs.sp;
    let readable = |address: usize, len: usize| {
        on_stack
            && address.is_multiple_of(WORD)
            && address >= lo
            && address.checked_add(len).is_some_and(|end| end <= stack_hi)
    };
    let read = |address: usize| -> usize {
        // SAFETY: callers check `readable(address, WORD)`, and the caller of `walk` guarantees
        // that this part of the stack is readable.
        unsafe { std::ptr::read_volatile(address as *const usize) }
    };
    let mut last = regs.pc;

    if regs.lr != 0 && regs.lr != regs.pc && code.is_after_call(regs.lr) {
        if !emit(regs.lr, FrameKind::Scanned) {
            return true;
        }
        last = regs.lr;
    }

    // Scans `[from, to)` for return addresses, within the scan budget; `false` when `emit`
    // refused a frame.
    let mut budget = SCAN_BUDGET;
    let mut scan = |from: usize, to: usize, last: &mut usize, emit: &mut F| -> bool {
        let to = to.min(from.saturating_add(budget));
        budget -= to.saturating_sub(from).min(budget);
        let Some(mut address) = from.checked_next_multiple_of(WORD) else {
            return true;
        };
        while address < to && readable(address, WORD) {
            let value = read(address);
            if value != *last && code.is_after_call(value) {
                if !emit(value, FrameKind::Scanned) {
                    return false;
                }
                *last = value;
            }
            address += WORD;
        }
        true
    };

    if !readable(regs.fp, 2 * WORD) {
        // No frame pointer to start from: scan a little of the stack.
        let end = stack_hi.min(lo.saturating_add(SCAN_WITHOUT_FP));
        return !scan(lo, end, &mut last, &mut emit);
    }
    let mut gap_start = lo;
    let mut fp = regs.fp;
    loop {
        // The frames of functions without a frame pointer lie between two records.
        if !scan(gap_start, fp, &mut last, &mut emit) {
            return true;
        }
        let next = read(fp);
        let ret = read(fp + WORD);
        gap_start = fp + 2 * WORD;
        if ret == 0 {
            return false;
        }
        if !code.is_empty() && !code.is_executable(ret) {
            // Not a frame record after all (code without frame pointers uses the register for
            // something else): scan on from here instead.
            let end = stack_hi.min(fp.saturating_add(SCAN_WITHOUT_FP));
            return !scan(fp, end, &mut last, &mut emit);
        }
        if !emit(ret, FrameKind::FramePointer) {
            return true;
        }
        last = ret;
        if next == 0 {
            // The outermost frame.
            return false;
        }
        // Strictly increasing: a loop or a step down ends the chain. It may just have reached
        // a function without a frame pointer (the register then holds some other value): scan
        // on from here.
        if next <= fp || !readable(next, 2 * WORD) {
            let end = stack_hi.min(gap_start.saturating_add(SCAN_WITHOUT_FP));
            return !scan(gap_start, end, &mut last, &mut emit);
        }
        fp = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Code at [0x1000, 0x2000); "after a call" means odd addresses.
    struct FakeCode;

    impl CodeMap for FakeCode {
        fn is_empty(&self) -> bool {
            false
        }
        fn is_executable(&self, address: usize) -> bool {
            (0x1000..0x2000).contains(&address)
        }
        fn is_after_call(&self, address: usize) -> bool {
            self.is_executable(address) && !address.is_multiple_of(2)
        }
    }

    fn run(stack: &[usize], regs: Regs) -> (Vec<(usize, FrameKind)>, bool) {
        let lo = stack.as_ptr() as usize;
        let hi = lo + std::mem::size_of_val(stack);
        let mut out = Vec::new();
        // SAFETY: the slice is readable for the whole call.
        let full = unsafe {
            walk(regs, lo, hi, &FakeCode, |a, k| {
                if out.len() == 8 {
                    return false;
                }
                out.push((a, k));
                true
            })
        };
        (out, full)
    }

    fn at(stack: &[usize], index: usize) -> usize {
        stack.as_ptr() as usize + index * WORD
    }

    #[test]
    fn frame_pointers_and_scan() {
        // Words: 0 sp, 1 a scanned return address, 2 junk, 3 not after a call, 4 frame record ->
        // 6, 6 frame record -> 8 (which points down: end).
        let mut stack = vec![0usize; 10];
        stack[1] = 0x1235;
        stack[2] = 0xdead;
        stack[3] = 0x1236;
        let fp0 = at(&stack, 4);
        stack[4] = at(&stack, 6);
        stack[5] = 0x1301;
        stack[6] = at(&stack, 2);
        stack[7] = 0x1401;
        let regs = Regs {
            pc: 0x1100,
            sp: at(&stack, 0),
            fp: fp0,
            lr: 0,
        };
        let (frames, full) = run(&stack, regs);
        assert!(!full);
        assert_eq!(
            frames,
            vec![
                (0x1100, FrameKind::Pc),
                (0x1235, FrameKind::Scanned),
                (0x1301, FrameKind::FramePointer),
                (0x1401, FrameKind::FramePointer),
            ]
        );
    }

    #[test]
    fn never_reads_outside_the_stack() {
        let mut stack = vec![0usize; 4];
        // A frame pointer outside the range, one below the stack pointer, one misaligned.
        for fp in [
            0x10usize,
            at(&stack, 0) - WORD,
            at(&stack, 1) + 1,
            usize::MAX - 3,
        ] {
            let regs = Regs {
                pc: 0x1100,
                sp: at(&stack, 0),
                fp,
                lr: 0,
            };
            let (frames, _) = run(&stack, regs);
            assert_eq!(frames, vec![(0x1100, FrameKind::Pc)]);
        }
        // Registers holding anything at all.
        for sp in [0, 1, usize::MAX, usize::MAX - 3] {
            let regs = Regs {
                pc: 0x1100,
                sp,
                fp: usize::MAX - 1,
                lr: usize::MAX,
            };
            let (frames, _) = run(&stack, regs);
            assert_eq!(frames, vec![(0x1100, FrameKind::Pc)]);
        }
        // A stack pointer off the registered stack: no read at all.
        stack[1] = 0x1235;
        let regs = Regs {
            pc: 0x1100,
            sp: at(&stack, 0) - 64,
            fp: at(&stack, 0),
            lr: 0,
        };
        let (frames, _) = run(&stack, regs);
        assert_eq!(frames, vec![(0x1100, FrameKind::Pc)]);
        stack[1] = 0;
        // A record whose caller's fp leaves the stack: the walk stops after its return address.
        stack[2] = usize::MAX - 8;
        stack[3] = 0x1501;
        let regs = Regs {
            pc: 0x1100,
            sp: at(&stack, 2),
            fp: at(&stack, 2),
            lr: 0,
        };
        let (frames, _) = run(&stack, regs);
        assert_eq!(
            frames,
            vec![(0x1100, FrameKind::Pc), (0x1501, FrameKind::FramePointer)]
        );
    }

    #[test]
    fn stops_when_full_and_on_non_code() {
        let mut stack = vec![0usize; 40];
        for i in 0..19 {
            stack[2 * i] = at(&stack, 2 * i + 2);
            stack[2 * i + 1] = 0x1001 + 2 * i;
        }
        let regs = Regs {
            pc: 0x1100,
            sp: at(&stack, 0),
            fp: at(&stack, 0),
            lr: 0,
        };
        let (frames, full) = run(&stack, regs);
        assert!(full);
        assert_eq!(frames.len(), 8);
        // A record whose return address is not code: what follows is scanned instead.
        stack[5] = 0x9999;
        let (frames, _) = run(&stack, regs);
        assert_eq!(
            frames[..4],
            [
                (0x1100, FrameKind::Pc),
                (0x1001, FrameKind::FramePointer),
                (0x1003, FrameKind::FramePointer),
                (0x1007, FrameKind::Scanned),
            ]
        );
    }

    #[test]
    fn link_register_first() {
        let stack = vec![0usize; 4];
        let regs = Regs {
            pc: 0x1100,
            sp: at(&stack, 0),
            fp: 0,
            lr: 0x1703,
        };
        let (frames, _) = run(&stack, regs);
        assert_eq!(
            frames,
            vec![(0x1100, FrameKind::Pc), (0x1703, FrameKind::Scanned)]
        );
    }
}
