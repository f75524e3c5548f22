//! The heap profiler: which call sites hold the memory.
//!
//! While on, ebb samples one allocation per `rate` bytes allocated on
//! average and records its stack; a dump lists the live sampled heap by
//! call site, scaled to estimates of all allocations, in the gperftools
//! heap-profile format that `google-pprof` reads (`google-pprof --text
//! PROGRAM FILE`, `--svg`, `--base OLD` for what grew between two dumps).
//! Stacks come from the DWARF unwinder (glibc's `backtrace`), so Rust
//! programs need no frame pointers.  Off by default; `EBB_PROF=1` in the
//! environment, or [`start`], turns it on.
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: ebb::Ebb = ebb::Ebb;
//!
//! fn main() {
//!     ebb::prof::start(64 * 1024).unwrap();
//!     let kept: Vec<Vec<u8>> = (0..1000).map(|_| vec![1u8; 4096]).collect();
//!     let path = std::env::temp_dir().join(format!("ebb-doc-{}.heap", std::process::id()));
//!     ebb::prof::dump(&path).unwrap();
//!     let text = std::fs::read_to_string(&path).unwrap();
//!     assert!(text.starts_with("heap profile:"));
//!     std::fs::remove_file(&path).unwrap();
//!     ebb::prof::stop();
//!     drop(kept);
//! }
//! ```

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::ffi;

/// Starts sampling: one allocation per `rate` bytes on average (0: the
/// default, 512 KiB).  Threads already running pick it up at their next
/// slow-path allocation of each size class.
pub fn start(rate: usize) -> io::Result<()> {
    // SAFETY: no pointers.
    match unsafe { ffi::ebb_prof_start(rate) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Stops sampling new allocations; what was sampled stays in the profile
/// until it is freed.
pub fn stop() {
    // SAFETY: no pointers.
    unsafe { ffi::ebb_prof_stop() }
}

/// The sampling rate in bytes, or `None` while the profiler is off.
#[must_use]
pub fn rate() -> Option<usize> {
    // SAFETY: no pointers.
    match unsafe { ffi::ebb_prof_rate() } {
        0 => None,
        r => Some(r),
    }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Writes the live sampled heap, by call site, to `path` in the
/// gperftools heap-profile text format (for `google-pprof`).
pub fn dump<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = c_path(path.as_ref())?;
    // SAFETY: a NUL-terminated path that outlives the call.
    match unsafe { ffi::ebb_prof_dump(path.as_ptr()) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Writes the same as collapsed stacks (`outer;...;inner bytes` a line),
/// the input of flame graph tools.
pub fn dump_collapsed<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = c_path(path.as_ref())?;
    // SAFETY: a NUL-terminated path that outlives the call.
    match unsafe { ffi::ebb_prof_dump_collapsed(path.as_ptr()) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}
