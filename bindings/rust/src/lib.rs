//! Rust bindings to **ebb**, a general-purpose memory allocator written in C:
//! a [`GlobalAlloc`] and a small safe API for its statistics and options.
//!
//! Make ebb the program's allocator with one line:
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: ebb::Ebb = ebb::Ebb;
//!
//! fn main() {
//!     let words: Vec<String> = "allocated by ebb".split(' ').map(String::from).collect();
//!     assert_eq!(words.len(), 3);
//!     assert!(ebb::stats().allocs > 0);
//! }
//! ```
//!
//! The C library is compiled from the repository's `src/` by `build.rs` with
//! the system C compiler (`CC`, default `cc`); the crate has no dependencies.
//!
//! By default the crate serves Rust's allocations only: C code in the same
//! program keeps the C library's `malloc`.  The `override` feature also builds
//! ebb's `malloc`, `free`, `calloc`, `realloc`, ... so that C code uses ebb too
//! (see the crate's README for the trade-off).
//!
//! Statistics: [`stats()`] returns a [`Stats`] snapshot; [`stats_json`] and
//! [`stats_prometheus`] format it for a metrics endpoint; [`print_stats`]
//! prints a table with a verdict (leak or fragmentation?) to stderr.
//! Options (the `EBB_*` environment variables): [`option_get`],
//! [`option_set`].  [`collect`] gives free memory back to the OS.
#![deny(missing_docs)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::CStr;
use std::os::raw::c_void;

mod ffi;
mod options;
pub mod prof;
mod stats;

pub use options::{option_get, option_set, Error};
pub use stats::{print_stats, stats, stats_json, stats_prometheus, ClassStats, Stats, CLASS_COUNT};

/// ebb as Rust's global allocator.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: ebb::Ebb = ebb::Ebb;
/// # fn main() {}
/// ```
///
/// Every [`Layout`] is honoured: alignments up to 16 come from ebb's plain
/// size classes, larger ones (up to at least 1 GiB) from
/// `ebb_aligned_alloc`, and `realloc` keeps them.  `dealloc` passes the
/// layout's size to `ebb_free_sized`, which aborts with a one-line message
/// if it exceeds the block, as it does for any pointer ebb did not hand out.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ebb;

/// Every block ebb's `malloc` hands out is aligned to 16 bytes...
const MALLOC_ALIGN: usize = 16;
/// ...except blocks of up to 8 bytes, which are aligned to 8.
const SMALL_BLOCK_MAX: usize = 8;

/// Whether `ebb_malloc(size)` alone meets `align`.
#[inline]
fn malloc_is_aligned_enough(size: usize, align: usize) -> bool {
    align <= SMALL_BLOCK_MAX || (align <= MALLOC_ALIGN && size > SMALL_BLOCK_MAX)
}

// SAFETY: every method hands the request to the ebb_* function made for it
// (see include/ebb.h), which returns blocks of at least the size asked for,
// aligned as asked (malloc_is_aligned_enough, else the aligned functions),
// or NULL; dealloc and realloc receive only blocks these methods returned.
unsafe impl GlobalAlloc for Ebb {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if malloc_is_aligned_enough(layout.size(), layout.align()) {
            ffi::ebb_malloc(layout.size()).cast()
        } else {
            ffi::ebb_aligned_alloc(layout.align(), layout.size()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ffi::ebb_free_sized(ptr.cast(), layout.size());
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if malloc_is_aligned_enough(layout.size(), layout.align()) {
            // ebb's calloc skips zeroing memory fresh from the OS.
            return ffi::ebb_calloc(1, layout.size()).cast();
        }
        // Likewise: only a reused block is zeroed.
        ffi::ebb_calloc_aligned(layout.align(), layout.size()).cast()
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if malloc_is_aligned_enough(new_size, layout.align()) {
            // ebb_realloc(p, 0) frees p and returns NULL, which Rust would
            // read as a failure leaving p allocated.  new_size is never 0
            // through GlobalAlloc's contract, but keep the block anyway.
            ffi::ebb_realloc(ptr.cast(), new_size.max(1)).cast()
        } else {
            ffi::ebb_realloc_aligned(ptr.cast(), layout.align(), new_size).cast()
        }
    }
}

/// The C library's version, `"MAJOR.MINOR.PATCH"` (equal to this crate's).
#[must_use]
pub fn version() -> &'static str {
    // SAFETY: ebb_version returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(ffi::ebb_version()) }
        .to_str()
        .unwrap_or("")
}

/// The number of bytes usable in the block at `ptr` (at least what was
/// requested); 0 for a null pointer.
///
/// # Safety
///
/// `ptr` must be null or the start of a live block that ebb handed out (for
/// instance through [`Ebb`] as the global allocator).  ebb reports any other
/// pointer it can recognise on stderr and aborts the process, but a huge
/// block freed by another thread at the same moment may already be unmapped.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: ebb::Ebb = ebb::Ebb;
///
/// fn main() {
///     let buffer = vec![0u8; 1000];
///     let usable = unsafe { ebb::usable_size(buffer.as_ptr()) };
///     assert!(usable >= 1000);
/// }
/// ```
#[must_use]
pub unsafe fn usable_size(ptr: *const u8) -> usize {
    ffi::ebb_usable_size(ptr.cast::<c_void>())
}

/// The usable size that a request of `size` bytes gets: asking for exactly
/// that wastes nothing (useful to size a buffer's capacity).  0 if `size` is
/// impossible.
#[must_use]
pub fn good_size(size: usize) -> usize {
    // SAFETY: no pointers.
    unsafe { ffi::ebb_good_size(size) }
}

/// Gives free memory back.
///
/// Merges the calling thread's pending frees and returns its empty pages.
/// With `force` (as `malloc_trim(0)` does), everything free that ebb holds
/// goes back to the OS at once, whatever the `decay_ms` option says: every
/// thread's free spans and sparse pages, the segments of exited threads,
/// cached huge mappings.  Without it, the background purger does that once
/// the memory has been free for `decay_ms`.
pub fn collect(force: bool) {
    // SAFETY: no pointers.
    unsafe { ffi::ebb_collect(force) }
}

/// The examples in README.md, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, size_of, MaybeUninit};
    use std::ptr;

    /// The #[repr(C)] mirror has the C compiler's sizes and field offsets.
    #[test]
    fn stats_layout_matches_c() {
        let mut table: *const usize = ptr::null();
        let c_layout = unsafe {
            let len = ffi::ebb_rust_layout_check(&mut table);
            std::slice::from_raw_parts(table, len)
        };

        let stats = MaybeUninit::<Stats>::uninit();
        let s = stats.as_ptr();
        let class = MaybeUninit::<ClassStats>::uninit();
        let c = class.as_ptr();
        // Offsets by address arithmetic (offset_of! is newer than Rust 1.63).
        macro_rules! offsets {
            ($base:expr, $($field:ident),*) => {
                [$(unsafe { ptr::addr_of!((*$base).$field) as usize - $base as usize }),*]
            };
        }
        let mut rust_layout = vec![
            size_of::<Stats>(),
            align_of::<Stats>(),
            size_of::<ClassStats>(),
            align_of::<ClassStats>(),
            CLASS_COUNT,
        ];
        rust_layout.extend(offsets!(
            s,
            live_bytes,
            huge_requested_bytes,
            page_bytes,
            resident_bytes,
            free_resident_bytes,
            retained_bytes,
            mapped_bytes,
            rss_bytes,
            memory_limit,
            purged_bytes,
            allocs,
            frees,
            remote_frees,
            mmap_calls,
            munmap_calls,
            purge_calls,
            purge_passes,
            threads,
            segments,
            huge_blocks,
            classes
        ));
        rust_layout.extend(offsets!(
            c,
            block_size,
            pages,
            live_blocks,
            live_bytes,
            free_resident_bytes,
            allocs,
            frees
        ));
        assert_eq!(rust_layout, c_layout);
    }

    #[test]
    fn malloc_alignment_rule() {
        assert!(malloc_is_aligned_enough(0, 8));
        assert!(malloc_is_aligned_enough(8, 8));
        assert!(!malloc_is_aligned_enough(8, 16));
        assert!(malloc_is_aligned_enough(9, 16));
        assert!(!malloc_is_aligned_enough(1 << 20, 32));
    }
}
