//! Statistics: a snapshot struct, the printed table, JSON and Prometheus text.

use std::mem::MaybeUninit;
use std::os::raw::c_char;
use std::ptr;

use crate::ffi;

/// Number of entries in [`Stats::classes`]: index 0 is huge blocks (above
/// 2 MiB), indexes 1 and up the size classes, smallest first
/// (`EBB_STATS_CLASSES` in `ebb.h`).
pub const CLASS_COUNT: usize = 122;

/// Statistics of one size class (`ebb_class_stats_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClassStats {
    /// Block size of the class in bytes; 0 for the huge entry (index 0).
    pub block_size: usize,
    /// Pages of this class in use (for the huge entry: huge blocks).
    pub pages: usize,
    /// Blocks allocated and not freed.
    pub live_blocks: usize,
    /// `live_blocks` times the block size.
    pub live_bytes: usize,
    /// Bytes of free blocks that are still resident (for the huge entry:
    /// mappings cached for reuse).
    pub free_resident_bytes: usize,
    /// Allocations ever.
    pub allocs: u64,
    /// Frees ever (allocations minus live blocks).
    pub frees: u64,
}

/// A snapshot of ebb's statistics (`ebb_stats_t`), from [`stats()`].
///
/// Counters are kept per thread and summed when asked for: while other
/// threads run, the sum is a consistent-enough snapshot, not an atomic one.
/// "Resident" figures are ebb's own estimate of its memory backed by RAM;
/// [`rss_bytes`](Stats::rss_bytes) is what the OS says for the whole process.
///
/// A block freed by a thread other than its owner counts as live until the
/// owner next collects its page's remote frees.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Stats {
    /// Bytes in blocks handed out and not freed (usable size, so at least
    /// what was requested).
    pub live_bytes: usize,
    /// Requested size of the live huge blocks (own mappings: above 2 MiB, or grown by realloc).
    pub huge_requested_bytes: usize,
    /// Bytes in pages that hold blocks.
    pub page_bytes: usize,
    /// ebb's estimate of its memory backed by RAM.
    pub resident_bytes: usize,
    /// Resident but free: memory waiting for its decay, or fragmentation.
    pub free_resident_bytes: usize,
    /// Mapped, not resident: purged, or never written.
    pub retained_bytes: usize,
    /// Address space ebb holds.
    pub mapped_bytes: usize,
    /// The process's resident set size, from the OS (0 if unknown).
    pub rss_bytes: usize,
    /// The memory limit in effect (the `memory_limit` option, else the
    /// cgroup's), 0 if none.
    pub memory_limit: usize,
    /// Bytes given back to the OS, ever.
    pub purged_bytes: u64,
    /// Allocations, ever.
    pub allocs: u64,
    /// Frees, ever (allocations minus live blocks).
    pub frees: u64,
    /// Frees by a thread other than the block's owner, ever.
    pub remote_frees: u64,
    /// Calls that mapped memory (mmap, mremap), ever.
    pub mmap_calls: u64,
    /// Calls that unmapped memory, ever.
    pub munmap_calls: u64,
    /// Calls that gave memory back (madvise), ever.
    pub purge_calls: u64,
    /// Passes of the purger over the free memory, ever.
    pub purge_passes: u64,
    /// Heaps of running threads.
    pub threads: usize,
    /// Segments (4 MiB units of address space) ebb holds.
    pub segments: usize,
    /// Live huge blocks (each its own mapping: above 2 MiB, or a large block grown by realloc).
    pub huge_blocks: usize,
    /// Per size class: index 0 is huge blocks, then the classes by size
    /// (see [`Stats::huge`] and [`Stats::size_classes`]).
    pub classes: [ClassStats; CLASS_COUNT],
}

impl Stats {
    /// The entry for huge blocks (own mappings: above 2 MiB, or grown by realloc): `classes[0]`.
    #[must_use]
    pub fn huge(&self) -> &ClassStats {
        &self.classes[0]
    }

    /// The size classes, smallest block size first (`classes[1..]`).
    #[must_use]
    pub fn size_classes(&self) -> &[ClassStats] {
        &self.classes[1..]
    }
}

/// Takes a snapshot of ebb's statistics.
///
/// ```
/// let stats = ebb::stats();
/// println!("live {} B, resident {} B, RSS {} B", stats.live_bytes,
///          stats.resident_bytes, stats.rss_bytes);
/// for class in stats.size_classes().iter().filter(|c| c.live_blocks > 0) {
///     println!("{:>8} B: {} live", class.block_size, class.live_blocks);
/// }
/// ```
#[must_use]
pub fn stats() -> Stats {
    let mut snapshot = MaybeUninit::<Stats>::zeroed();
    // SAFETY: Stats mirrors ebb_stats_t (a test compares the layouts), and
    // ebb_stats_get writes every byte of it.
    unsafe {
        ffi::ebb_stats_get(snapshot.as_mut_ptr());
        snapshot.assume_init()
    }
}

/// Prints the statistics table, with its verdict (live vs resident vs RSS,
/// and where free-but-resident memory sits), to stderr.
///
/// It writes straight to file descriptor 2, not through Rust's `eprintln!`,
/// so test harnesses do not capture it.
pub fn print_stats() {
    // SAFETY: no pointers; ebb writes to fd 2 without allocating.
    unsafe { ffi::ebb_stats_print(2) }
}

/// The statistics as one JSON object (the same fields as [`Stats`], plus
/// `fragmentation`, with `classes` listing only the classes in use).
#[must_use]
pub fn stats_json() -> String {
    format_text(ffi::ebb_stats_json)
}

/// The statistics in the Prometheus text exposition format (version 0.0.4):
/// metrics named `ebb_*`, each with `# HELP` and `# TYPE` lines, ready to be
/// served as the body of a `/metrics` response.
#[must_use]
pub fn stats_prometheus() -> String {
    format_text(ffi::ebb_stats_prometheus)
}

/// Runs one of ebb's snprintf-like formatters (it returns the length the
/// whole text needs) into a buffer of the right size.
fn format_text(format: unsafe extern "C" fn(*mut c_char, usize) -> usize) -> String {
    // SAFETY: a null buffer of size 0 is allowed: only the length is returned.
    let mut needed = unsafe { format(ptr::null_mut(), 0) };
    loop {
        // Each call takes a new snapshot, and other threads may have put
        // more classes in use since the last: leave some room.
        let mut buffer = vec![0u8; needed + needed / 8 + 64];
        // SAFETY: the formatter writes at most buffer.len() bytes.
        let written = unsafe { format(buffer.as_mut_ptr().cast::<c_char>(), buffer.len()) };
        if written < buffer.len() {
            buffer.truncate(written);
            // The formatters write ASCII only.
            return String::from_utf8(buffer)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        }
        needed = written;
    }
}
