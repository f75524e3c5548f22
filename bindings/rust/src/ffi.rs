//! The C functions of `include/ebb.h` that the crate calls (see the header
//! for their full contracts).  `size_t` is `usize` on every target Rust
//! supports with Linux.

use std::os::raw::{c_char, c_int, c_longlong, c_void};

use crate::stats::Stats;

extern "C" {
    pub fn ebb_version() -> *const c_char;

    pub fn ebb_malloc(size: usize) -> *mut c_void;
    pub fn ebb_calloc(count: usize, size: usize) -> *mut c_void;
    pub fn ebb_realloc(p: *mut c_void, size: usize) -> *mut c_void;
    pub fn ebb_realloc_aligned(p: *mut c_void, alignment: usize, size: usize) -> *mut c_void;
    pub fn ebb_aligned_alloc(alignment: usize, size: usize) -> *mut c_void;
    pub fn ebb_calloc_aligned(alignment: usize, size: usize) -> *mut c_void;
    pub fn ebb_free_sized(p: *mut c_void, size: usize);
    pub fn ebb_usable_size(p: *const c_void) -> usize;
    pub fn ebb_good_size(size: usize) -> usize;

    pub fn ebb_option_get(name: *const c_char) -> c_longlong;
    pub fn ebb_option_set(name: *const c_char, value: *const c_char) -> c_int;

    pub fn ebb_stats_get(out: *mut Stats);
    pub fn ebb_stats_print(fd: c_int);
    pub fn ebb_stats_json(buf: *mut c_char, size: usize) -> usize;
    pub fn ebb_stats_prometheus(buf: *mut c_char, size: usize) -> usize;
    pub fn ebb_collect(force: bool);

    pub fn ebb_prof_start(rate: usize) -> c_int;
    pub fn ebb_prof_stop();
    pub fn ebb_prof_rate() -> usize;
    pub fn ebb_prof_dump(path: *const c_char) -> c_int;
    pub fn ebb_prof_dump_collapsed(path: *const c_char) -> c_int;

    /// The calling thread's `errno` (glibc and musl both name it so).
    /// `ebb_option_get`'s -1 is ambiguous without it: -1 is also a valid
    /// value (`decay_ms` = -1, "never").
    pub fn __errno_location() -> *mut c_int;
}

/// `EINVAL` on Linux (every architecture).
pub const EINVAL: c_int = 22;

#[cfg(test)]
extern "C" {
    /// From c/layout_check.c: the C compiler's layout of ebb_stats_t.
    pub fn ebb_rust_layout_check(out: *mut *const usize) -> usize;
}
