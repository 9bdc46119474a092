//! The modules of this process (`dl_iterate_phdr`) and the table of executable ranges that the
//! signal handler checks return addresses against.
//!
//! The table is filled outside the handler (when the handler is installed and at every thread
//! registration) and is append-only: an entry is written, then the count is published with a
//! release store, and the handler reads only entries below the count it loaded with acquire.
//! An entry is *readable* when its module can never be unmapped: the main executable, the vDSO,
//! and every shared library that `dlopen(RTLD_NOLOAD | RTLD_NODELETE)` pinned when the entry was
//! added. Only readable entries are ever dereferenced (to look at the instruction before a
//! candidate return address), so the handler never reads code that a `dlclose` could unmap.
//! The cost: a library loaded when stacks are set up is never unloaded afterwards.

use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::walk::CodeMap;
use super::Module;

/// The most executable ranges the handler knows.
const MAX_RANGES: usize = 512;

/// `NT_GNU_BUILD_ID`, the note type of a GNU build id.
const NT_GNU_BUILD_ID: u32 = 3;

struct Range {
    start: AtomicUsize,
    end: AtomicUsize,
    readable: AtomicBool,
}

static RANGES: [Range; MAX_RANGES] = [const {
    Range {
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        readable: AtomicBool::new(false),
    }
}; MAX_RANGES];

/// How many entries of [`RANGES`] are published.
static RANGE_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Serializes writers of [`RANGES`] (never taken by the handler).
static RANGE_WRITER: Mutex<()> = Mutex::new(());

/// The loader's count of modules added (`dlpi_adds`) when the table was last refreshed; `u64::MAX`
/// before the first refresh.
static LOADER_ADDS: AtomicU64 = AtomicU64::new(u64::MAX);

/// The loader's count of modules added since the program started.
fn loader_adds() -> u64 {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `info` is valid during the callback; `data` is the u64 passed below.
        unsafe { *data.cast::<u64>() = (*info).dlpi_adds };
        1
    }
    let mut adds = 0u64;
    // SAFETY: the callback writes only to `adds`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(first), (&mut adds as *mut u64).cast()) };
    adds
}

/// Adds the executable segments of modules loaded since the last call to the handler's table.
/// Cheap when no module was loaded since.
pub(super) fn refresh_code_ranges() {
    let adds = loader_adds();
    if LOADER_ADDS.load(Ordering::Acquire) == adds {
        return;
    }
    let _guard = RANGE_WRITER.lock().unwrap_or_else(|e| e.into_inner());
    let modules = loaded_modules();
    let mut count = RANGE_COUNT.load(Ordering::Relaxed);
    for (index, module) in modules.iter().enumerate() {
        for &(start, end) in &module.executable {
            let known = RANGES[..count].iter().any(|r| {
                r.start.load(Ordering::Relaxed) == start && r.end.load(Ordering::Relaxed) == end
            });
            if known || count == MAX_RANGES {
                continue;
            }
            let readable = index == 0 || is_vdso(module) || pin(module);
            let entry = &RANGES[count];
            entry.start.store(start, Ordering::Relaxed);
            entry.end.store(end, Ordering::Relaxed);
            entry.readable.store(readable, Ordering::Relaxed);
            count += 1;
            RANGE_COUNT.store(count, Ordering::Release);
        }
    }
    LOADER_ADDS.store(adds, Ordering::Release);
}

fn is_vdso(module: &Module) -> bool {
    let name = module.path.to_string_lossy();
    name.starts_with("linux-vdso") || name.starts_with("linux-gate")
}

/// Makes sure the library is never unloaded; whether it worked.
fn pin(module: &Module) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = CString::new(module.path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid C string. RTLD_NOLOAD only finds a library already loaded (it runs no
    // initializer); the handle is kept forever on purpose (RTLD_NODELETE pins the library).
    let handle = unsafe {
        libc::dlopen(
            path.as_ptr(),
            libc::RTLD_LAZY | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
        )
    };
    !handle.is_null()
}

/// The handler's view of [`RANGES`].
pub(super) struct Code;

impl Code {
    fn find(&self, address: usize) -> Option<&'static Range> {
        let count = RANGE_COUNT.load(Ordering::Acquire).min(MAX_RANGES);
        RANGES[..count].iter().find(|r| {
            r.start.load(Ordering::Relaxed) <= address && address < r.end.load(Ordering::Relaxed)
        })
    }
}

impl CodeMap for Code {
    fn is_empty(&self) -> bool {
        RANGE_COUNT.load(Ordering::Acquire) == 0
    }

    fn is_executable(&self, address: usize) -> bool {
        self.find(address).is_some()
    }

    fn is_after_call(&self, address: usize) -> bool {
        let Some(range) = self.find(address) else {
            return false;
        };
        // The instruction before `address` must lie in the same readable segment.
        if !range.readable.load(Ordering::Relaxed)
            || address < range.start.load(Ordering::Relaxed).saturating_add(8)
        {
            return false;
        }
        // SAFETY: `[address - 8, address)` lies in an executable segment of a module that can
        // never be unmapped (see the module docs), so it is mapped and readable.
        unsafe { follows_call(address) }
    }
}

/// Whether the instruction before `address` is a call.
///
/// # Safety
///
/// The 8 bytes before `address` must be readable.
#[cfg(target_arch = "x86_64")]
unsafe fn follows_call(address: usize) -> bool {
    // SAFETY: the caller guarantees that `address - 8 .. address` is readable.
    let byte = |back: usize| unsafe { std::ptr::read_volatile((address - back) as *const u8) };
    // `call rel32`: E8 and four bytes.
    if byte(5) == 0xE8 {
        return true;
    }
    // `call r/m64`: FF /2, with a ModRM, maybe a SIB and a displacement: 2, 3, 4, 6 or 7 bytes.
    [2usize, 3, 4, 6, 7]
        .iter()
        .any(|&len| byte(len) == 0xFF && (byte(len - 1) & 0x38) == 0x10)
}

/// Whether the instruction before `address` is a call.
///
/// # Safety
///
/// The 8 bytes before `address` must be readable.
#[cfg(target_arch = "aarch64")]
unsafe fn follows_call(address: usize) -> bool {
    if !address.is_multiple_of(4) {
        return false;
    }
    // SAFETY: the caller guarantees that `address - 8 .. address` is readable; aligned.
    let insn = unsafe { std::ptr::read_volatile((address - 4) as *const u32) };
    // BL imm26; BLR Xn; BLRAA/BLRAB/BLRAAZ/BLRABZ (pointer authentication).
    (insn & 0xFC00_0000) == 0x9400_0000
        || (insn & 0xFFFF_FC1F) == 0xD63F_0000
        || (insn & 0xFEFF_F800) == 0xD63F_0800
}

/// The modules mapped now, the main executable first.
pub(super) fn loaded_modules() -> Vec<Module> {
    let mut modules: Vec<Module> = Vec::new();
    // SAFETY: the callback only reads the `dl_phdr_info` it is given, during the call, and pushes
    // into the vector passed through `data`, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(on_module),
            (&mut modules as *mut Vec<Module>).cast::<libc::c_void>(),
        );
    }
    modules
}

unsafe extern "C" fn on_module(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the vector `loaded_modules` passed, `info` is valid for this call
    // (dl_iterate_phdr's contract); a panic must not unwind out of this C callback.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
        let modules = &mut *data.cast::<Vec<Module>>();
        if let Some(module) = read_module(&*info, modules.is_empty()) {
            modules.push(module);
        }
    }));
    let _ = result;
    0
}

/// # Safety
///
/// `info` must come from `dl_iterate_phdr`, within its callback.
unsafe fn read_module(info: &libc::dl_phdr_info, first: bool) -> Option<Module> {
    let bias = info.dlpi_addr as usize;
    if info.dlpi_phdr.is_null() {
        return None;
    }
    // SAFETY: dl_iterate_phdr gives `dlpi_phnum` program headers at `dlpi_phdr`.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let name = if info.dlpi_name.is_null() {
        Vec::new()
    } else {
        // SAFETY: a NUL-terminated string owned by the dynamic loader.
        unsafe { CStr::from_ptr(info.dlpi_name) }
            .to_bytes()
            .to_vec()
    };
    let path = if name.is_empty() {
        if !first {
            // Unnamed modules after the first one (rare) have no file to name.
            PathBuf::new()
        } else {
            std::fs::read_link("/proc/self/exe")
                .or_else(|_| std::env::current_exe())
                .unwrap_or_default()
        }
    } else {
        use std::os::unix::ffi::OsStringExt;
        PathBuf::from(std::ffi::OsString::from_vec(name))
    };
    let mut start = usize::MAX;
    let mut end = 0usize;
    let mut executable = Vec::new();
    let mut build_id = None;
    for header in headers {
        let seg_start = bias.wrapping_add(header.p_vaddr as usize);
        let seg_end = seg_start.wrapping_add(header.p_memsz as usize);
        if header.p_type == libc::PT_LOAD {
            start = start.min(seg_start);
            end = end.max(seg_end);
            if header.p_flags & libc::PF_X != 0 {
                executable.push((seg_start, seg_end));
            }
        } else if header.p_type == libc::PT_NOTE && build_id.is_none() {
            // SAFETY: a PT_NOTE segment of a loaded module is mapped (it lies in a PT_LOAD).
            let notes = unsafe {
                std::slice::from_raw_parts(seg_start as *const u8, header.p_memsz as usize)
            };
            build_id = find_build_id(notes);
        }
    }
    if start >= end {
        return None;
    }
    Some(Module {
        path,
        start,
        end,
        load_bias: bias,
        build_id,
        executable,
    })
}

/// The GNU build id in a note segment.
fn find_build_id(mut notes: &[u8]) -> Option<Vec<u8>> {
    let word = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let align4 = |n: usize| n.checked_add(3).map(|n| n & !3);
    while notes.len() >= 12 {
        let name_size = word(notes, 0)? as usize;
        let desc_size = word(notes, 4)? as usize;
        let kind = word(notes, 8)?;
        let name_end = 12usize.checked_add(align4(name_size)?)?;
        let desc_end = name_end.checked_add(align4(desc_size)?)?;
        let name = notes.get(12..12 + name_size)?;
        let desc = notes.get(name_end..name_end.checked_add(desc_size)?)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return Some(desc.to_vec());
        }
        notes = notes.get(desc_end..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_id_notes() {
        let mut notes = Vec::new();
        // An unrelated note first.
        notes.extend_from_slice(&4u32.to_ne_bytes());
        notes.extend_from_slice(&4u32.to_ne_bytes());
        notes.extend_from_slice(&1u32.to_ne_bytes());
        notes.extend_from_slice(b"GNU\0");
        notes.extend_from_slice(&[1, 2, 3, 4]);
        notes.extend_from_slice(&4u32.to_ne_bytes());
        notes.extend_from_slice(&5u32.to_ne_bytes());
        notes.extend_from_slice(&NT_GNU_BUILD_ID.to_ne_bytes());
        notes.extend_from_slice(b"GNU\0");
        notes.extend_from_slice(&[9, 8, 7, 6, 5, 0, 0, 0]);
        assert_eq!(find_build_id(&notes), Some(vec![9, 8, 7, 6, 5]));
        assert_eq!(find_build_id(&notes[..30]), None);
        assert_eq!(find_build_id(&[]), None);
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls the dynamic loader")]
    fn this_process_modules() {
        let modules = loaded_modules();
        assert!(!modules.is_empty());
        let here = this_process_modules as *const () as usize;
        let main = &modules[0];
        assert!(main.executable.iter().any(|&(s, e)| s <= here && here < e));
        assert!(main.path.is_absolute(), "{:?}", main.path);
        refresh_code_ranges();
        assert!(Code.is_executable(here));
        assert!(!Code.is_executable(&modules as *const _ as usize));
    }
}
