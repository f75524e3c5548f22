//! ebb as this test binary's global allocator: raw GlobalAlloc calls over
//! every size and alignment, collections under threads with cross-thread
//! frees, and the statistics and options API.
//!
//! The harness runs tests in parallel threads of this one process.  The
//! tests that need the allocator to themselves (live bytes must move by
//! exactly what they hold; options changed and restored) take `alone()`;
//! every other test takes `shared()`.

use std::alloc::{GlobalAlloc, Layout};
use std::collections::HashMap;
use std::sync::{mpsc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;

#[global_allocator]
static GLOBAL: ebb::Ebb = ebb::Ebb;

static EXCLUSIVE: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    EXCLUSIVE
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn alone() -> RwLockWriteGuard<'static, ()> {
    EXCLUSIVE
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

// ---- block contents ------------------------------------------------------------
// Blocks are filled and checked a 4 KiB chunk at a time with memcpy/memcmp,
// so a debug build checks 64 MiB blocks quickly.  Byte i of a block filled
// with `seed` is (i + seed) % 251: a period that no block size or alignment
// shares, so a shifted or misplaced copy is caught.
const CHUNK: usize = 4096;
const PERIOD: usize = 251;

fn pattern_table() -> Vec<u8> {
    (0..CHUNK + PERIOD).map(|i| (i % PERIOD) as u8).collect()
}

unsafe fn fill(block: *mut u8, len: usize, seed: usize, table: &[u8]) {
    let mut offset = 0;
    while offset < len {
        let n = CHUNK.min(len - offset);
        let start = (offset + seed) % PERIOD;
        std::ptr::copy_nonoverlapping(table[start..].as_ptr(), block.add(offset), n);
        offset += n;
    }
}

unsafe fn holds_pattern(block: *const u8, len: usize, seed: usize, table: &[u8]) -> bool {
    let mut offset = 0;
    while offset < len {
        let n = CHUNK.min(len - offset);
        let start = (offset + seed) % PERIOD;
        if std::slice::from_raw_parts(block.add(offset), n) != &table[start..start + n] {
            return false;
        }
        offset += n;
    }
    true
}

unsafe fn is_zero(block: *const u8, len: usize) -> bool {
    static ZEROS: [u8; CHUNK] = [0; CHUNK];
    let mut offset = 0;
    while offset < len {
        let n = CHUNK.min(len - offset);
        if std::slice::from_raw_parts(block.add(offset), n) != &ZEROS[..n] {
            return false;
        }
        offset += n;
    }
    true
}

fn is_aligned(block: *const u8, align: usize) -> bool {
    block as usize % align == 0
}

/// One layout through every GlobalAlloc method: alloc, write the whole
/// block, grow and shrink with realloc (contents and alignment kept),
/// dealloc, then alloc_zeroed of the same layout after dirtying a block of it
/// (so a reused block must really be zeroed).
unsafe fn exercise(size: usize, align: usize, seed: usize, table: &[u8]) {
    let layout = Layout::from_size_align(size, align).unwrap();
    let what = format!("size {} align {}", size, align);

    let block = GLOBAL.alloc(layout);
    assert!(!block.is_null(), "alloc failed: {}", what);
    assert!(
        is_aligned(block, align),
        "alloc misaligned {:p}: {}",
        block,
        what
    );
    assert!(
        ebb::usable_size(block) >= size,
        "usable size too small: {}",
        what
    );
    fill(block, size, seed, table);
    assert!(
        holds_pattern(block, size, seed, table),
        "contents lost: {}",
        what
    );

    let grown_size = size * 2 + 24;
    let grown = GLOBAL.realloc(block, layout, grown_size);
    assert!(!grown.is_null(), "realloc up failed: {}", what);
    assert!(
        is_aligned(grown, align),
        "realloc up misaligned {:p}: {}",
        grown,
        what
    );
    assert!(
        holds_pattern(grown, size, seed, table),
        "realloc up lost contents: {}",
        what
    );
    fill(grown, grown_size, seed + 1, table);

    let grown_layout = Layout::from_size_align(grown_size, align).unwrap();
    let shrunk_size = size / 3 + 1;
    let shrunk = GLOBAL.realloc(grown, grown_layout, shrunk_size);
    assert!(!shrunk.is_null(), "realloc down failed: {}", what);
    assert!(
        is_aligned(shrunk, align),
        "realloc down misaligned {:p}: {}",
        shrunk,
        what
    );
    assert!(
        holds_pattern(shrunk, shrunk_size, seed + 1, table),
        "realloc down lost contents: {}",
        what
    );
    GLOBAL.dealloc(shrunk, Layout::from_size_align(shrunk_size, align).unwrap());

    let dirty = GLOBAL.alloc(layout);
    assert!(!dirty.is_null(), "alloc failed: {}", what);
    std::ptr::write_bytes(dirty, 0xa5, size);
    GLOBAL.dealloc(dirty, layout);
    let zeroed = GLOBAL.alloc_zeroed(layout);
    assert!(!zeroed.is_null(), "alloc_zeroed failed: {}", what);
    assert!(
        is_aligned(zeroed, align),
        "alloc_zeroed misaligned {:p}: {}",
        zeroed,
        what
    );
    assert!(is_zero(zeroed, size), "alloc_zeroed not zero: {}", what);
    GLOBAL.dealloc(zeroed, layout);
}

/// 0..=64 KiB: every size to 1 KiB, then a step that crosses every class
/// boundary at a different offset; then powers of two (and one either side)
/// up to 64 MiB.
fn sizes_to_test() -> Vec<usize> {
    let mut sizes: Vec<usize> = (0..=KIB).collect();
    sizes.extend((KIB + 1..=64 * KIB).step_by(37));
    sizes.push(64 * KIB);
    for shift in 1..=26 {
        let power = 1usize << shift;
        sizes.extend([power - 1, power, power + 1]);
    }
    sizes
}

#[test]
fn every_size_with_small_alignments() {
    let _guard = shared();
    let table = pattern_table();
    for (i, size) in sizes_to_test().into_iter().enumerate() {
        // 1 and 8: ebb_malloc; 16: ebb_malloc above 8 bytes, aligned below.
        for align in [1, 8, 16] {
            unsafe { exercise(size, align, i, &table) };
        }
    }
}

#[test]
fn every_alignment() {
    let _guard = shared();
    let table = pattern_table();
    let mut alignments: Vec<usize> = (0..=20).map(|shift| 1usize << shift).collect();
    alignments.extend([4 * MIB, 64 * MIB]); // above the size classes' 64 KiB and the 4 MiB segment
    for (i, &align) in alignments.iter().enumerate() {
        let mut sizes = vec![
            0,
            1,
            7,
            8,
            9,
            24,
            100,
            align / 2,
            align - 1,
            align,
            align + 1,
        ];
        sizes.extend([70 * KIB, 3 * MIB]);
        if align <= MIB {
            sizes.extend([3 * align + 5, 5 * align]);
        }
        for size in sizes {
            unsafe { exercise(size, align, i + size, &table) };
        }
    }
}

#[test]
fn zero_size_layouts() {
    // Never sent by Rust's collections, but GlobalAlloc must not misbehave.
    let _guard = shared();
    for align in [1, 8, 16, 64, 4096, 4 * MIB] {
        let layout = Layout::from_size_align(0, align).unwrap();
        unsafe {
            let block = GLOBAL.alloc(layout);
            assert!(!block.is_null() && is_aligned(block, align));
            GLOBAL.dealloc(block, layout);
            let block = GLOBAL.alloc_zeroed(layout);
            assert!(!block.is_null() && is_aligned(block, align));
            // realloc to 0 must not free the block behind Rust's back
            let same = GLOBAL.realloc(block, layout, 0);
            assert!(!same.is_null() && is_aligned(same, align));
            GLOBAL.dealloc(same, layout);
        }
    }
}

#[test]
fn really_uses_ebb() {
    let _guard = shared();
    let before = ebb::stats().allocs;
    let boxed = Box::new([7u8; 100]);
    let after = ebb::stats().allocs;
    assert!(
        after > before,
        "Box::new did not allocate from ebb ({} -> {})",
        before,
        after
    );
    // ebb aborts on a pointer it did not hand out: this one is ebb's.
    let usable = unsafe { ebb::usable_size(boxed.as_ptr()) };
    assert!(usable >= 100);
    assert_eq!(boxed[99], 7);
}

/// With the `override` feature, C code's malloc is ebb's too, including the
/// C library's own calls (strdup calls malloc inside libc): this binary
/// names neither malloc nor free.
#[cfg(feature = "override")]
#[test]
fn c_library_allocates_from_ebb_with_override() {
    use std::os::raw::{c_char, c_void};
    extern "C" {
        fn strdup(s: *const c_char) -> *mut c_char;
        fn malloc_usable_size(p: *mut c_void) -> usize;
    }
    let _guard = shared();
    let text = std::ffi::CString::new("a string copied by the C library").unwrap();
    let before = ebb::stats().allocs;
    unsafe {
        let copy = strdup(text.as_ptr());
        assert!(!copy.is_null());
        assert!(
            ebb::stats().allocs > before,
            "strdup did not allocate from ebb"
        );
        // ebb aborts on a pointer it did not hand out
        assert!(ebb::usable_size(copy.cast()) > text.as_bytes().len());
        assert_eq!(
            malloc_usable_size(copy.cast()),
            ebb::usable_size(copy.cast())
        );
        // freed by ebb's sized free: the block is ebb's, as Rust's are
        GLOBAL.dealloc(
            copy.cast(),
            Layout::from_size_align(text.as_bytes().len() + 1, 1).unwrap(),
        );
    }
}

// ---- collections under threads --------------------------------------------------
const THREADS: usize = 8;
const ROUNDS: usize = 300;

/// What one thread builds and sends to the next, which checks and drops it.
struct Parcel {
    from: usize,
    round: usize,
    numbers: Vec<u64>,
    text: String,
    bytes: Box<[u8]>,
    map: HashMap<u64, String>,
}

fn make_parcel(from: usize, round: usize) -> Parcel {
    let n = (from * 31 + round * 17) % 700 + 1;
    let mut numbers = Vec::new();
    for i in 0..n as u64 {
        numbers.push(i * 3 + from as u64);
    }
    let mut text = String::new();
    for i in 0..n % 50 {
        text.push_str(&format!("{}-{}-{};", from, round, i));
    }
    let bytes = vec![(from + round) as u8; n * 13 + round % 5000].into_boxed_slice();
    let map = (0..(n % 40) as u64)
        .map(|k| (k, format!("value {} of {}", k, from)))
        .collect();
    Parcel {
        from,
        round,
        numbers,
        text,
        bytes,
        map,
    }
}

fn check_parcel(parcel: &Parcel) {
    let expected = make_parcel(parcel.from, parcel.round);
    assert_eq!(parcel.numbers, expected.numbers);
    assert_eq!(parcel.text, expected.text);
    assert_eq!(parcel.bytes, expected.bytes);
    assert_eq!(parcel.map, expected.map);
}

#[test]
fn collections_across_threads() {
    let _guard = shared();
    let remote_frees_before = ebb::stats().remote_frees;

    // A ring: thread i sends to thread i+1, which checks and drops, so
    // nearly every free is of a block another thread allocated.
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..THREADS).map(|_| mpsc::channel::<Parcel>()).unzip();
    let mut handles = Vec::new();
    for (id, receiver) in receivers.into_iter().enumerate() {
        let next = senders[(id + 1) % THREADS].clone();
        handles.push(thread::spawn(move || {
            let mut kept: HashMap<String, Vec<u8>> = HashMap::new();
            let mut scratch: Vec<Box<[u64]>> = Vec::new();
            for round in 0..ROUNDS {
                next.send(make_parcel(id, round)).unwrap();
                let parcel = receiver.recv().unwrap();
                assert_eq!(parcel.from, (id + THREADS - 1) % THREADS);
                check_parcel(&parcel);
                // some of what arrives outlives the round, freed later
                if round % 10 == 0 {
                    kept.insert(
                        format!("{}:{}", parcel.from, parcel.round),
                        parcel.bytes.to_vec(),
                    );
                }
                scratch.push(vec![round as u64; round % 300 + 1].into_boxed_slice());
                if scratch.len() > 50 {
                    scratch.drain(..25);
                }
            }
            kept // dropped by the main thread: more remote frees
        }));
    }
    drop(senders);
    for handle in handles {
        let kept = handle.join().unwrap();
        assert_eq!(kept.len(), ROUNDS / 10);
        for (key, bytes) in kept {
            let mut parts = key.split(':').map(|p| p.parse::<usize>().unwrap());
            let (from, round) = (parts.next().unwrap(), parts.next().unwrap());
            assert_eq!(bytes, make_parcel(from, round).bytes.to_vec());
        }
    }
    // Remote frees may be counted only when the owner takes them in; the
    // owners have exited: adopt their pages and take them in.
    ebb::collect(true);
    let remote_frees_after = ebb::stats().remote_frees;
    assert!(
        remote_frees_after > remote_frees_before,
        "no remote frees counted ({} -> {})",
        remote_frees_before,
        remote_frees_after
    );
}

#[test]
fn large_collections_grow_in_place_or_move_intact() {
    let _guard = shared();
    let mut numbers: Vec<u64> = Vec::new();
    for i in 0..(8 * MIB as u64 / 8) {
        numbers.push(i ^ 0x5555); // grows through every class into huge blocks
    }
    assert!(numbers
        .iter()
        .enumerate()
        .all(|(i, &v)| v == i as u64 ^ 0x5555));
    numbers.truncate(1000);
    numbers.shrink_to_fit();
    assert!(numbers
        .iter()
        .enumerate()
        .all(|(i, &v)| v == i as u64 ^ 0x5555));
}

// ---- statistics and options ----------------------------------------------------------
#[test]
fn live_bytes_follow_what_is_held() {
    let _guard = alone();
    let mut held: Vec<Vec<u8>> = Vec::with_capacity(1100);
    // Blocks that other threads freed count as live until their page's
    // owner collects them, and this thread may adopt (and so collect) the
    // pages of exited threads while it allocates: collect everything first.
    ebb::collect(true);
    let before = ebb::stats();
    let mut requested = 0;
    for i in 0..1000 {
        let len = 100 + i * 7;
        held.push(vec![1; len]);
        requested += len;
    }
    for _ in 0..3 {
        held.push(vec![2; 3 * MIB]); // huge blocks
        requested += 3 * MIB;
    }
    let during = ebb::stats();
    let grew = during.live_bytes as isize - before.live_bytes as isize;
    // at least what is held; at most its rounding to size classes (< 12.5%
    // above 128 bytes, < 28% from 100 to 128) and pages, plus slack for
    // the harness's threads
    assert!(
        grew >= requested as isize,
        "live bytes grew {} for {} held",
        grew,
        requested
    );
    assert!(
        grew <= (requested + requested / 4 + MIB) as isize,
        "live bytes grew {} for {} held",
        grew,
        requested
    );
    assert!(during.huge().live_blocks >= before.huge().live_blocks + 3);
    assert!(during.huge_requested_bytes >= before.huge_requested_bytes + 9 * MIB);

    drop(held);
    let after = ebb::stats();
    let left = after.live_bytes as isize - before.live_bytes as isize;
    assert!(
        left.abs() < 256 * KIB as isize,
        "live bytes {} -> {} -> {}",
        before.live_bytes,
        during.live_bytes,
        after.live_bytes
    );
}

#[test]
fn stats_totals_are_the_sums_of_the_classes() {
    // ebb_stats_get computes the totals from the classes, so in one snapshot
    // they agree exactly: a check that the struct is read at the right offsets.
    let _guard = shared();
    let _some_live = (vec![0u8; 50], vec![0u8; 5000], vec![0u8; 5 * MIB]);
    let stats = ebb::stats();
    let sum = |field: fn(&ebb::ClassStats) -> u64| stats.classes.iter().map(field).sum::<u64>();
    assert_eq!(sum(|c| c.live_bytes as u64), stats.live_bytes as u64);
    assert_eq!(sum(|c| c.allocs), stats.allocs);
    assert_eq!(sum(|c| c.frees), stats.frees);
    assert_eq!(stats.huge().block_size, 0);
    assert_eq!(stats.size_classes().len(), ebb::CLASS_COUNT - 1);
    assert_eq!(stats.size_classes()[0].block_size, 8);
    assert_eq!(stats.size_classes().last().unwrap().block_size, 2 * MIB);
    assert!(stats
        .size_classes()
        .windows(2)
        .all(|w| w[0].block_size < w[1].block_size));
    assert!(stats.huge().live_blocks >= 1 && stats.huge_blocks == stats.huge().live_blocks);
    assert!(stats.threads >= 1 && stats.segments >= 1 && stats.mapped_bytes > 0);
}

/// Enough of a JSON check without a parser: one object, strings closed,
/// brackets balanced, the expected keys present.
fn looks_like_json_object(text: &str) -> bool {
    let text = text.trim();
    if !text.starts_with('{') || !text.ends_with('}') {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0i32, false, false);
    for (i, ch) in text.char_indices() {
        if in_string {
            match ch {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' => in_string = true,
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ => {}
        }
        if depth < 0 || (depth == 0 && i + 1 < text.len()) {
            return false;
        }
    }
    depth == 0 && !in_string
}

#[test]
fn json_and_prometheus_text() {
    let _guard = shared();
    let json = ebb::stats_json();
    assert!(looks_like_json_object(&json), "not a JSON object: {}", json);
    for key in [
        "\"live_bytes\":",
        "\"rss_bytes\":",
        "\"allocs\":",
        "\"classes\":[",
    ] {
        assert!(json.contains(key), "{} missing from {}", key, json);
    }

    let text = ebb::stats_prometheus();
    assert!(text.contains("# HELP ebb_live_bytes "), "{}", text);
    assert!(text.contains("# TYPE ebb_live_bytes gauge"), "{}", text);
    let mut samples = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP ebb_") || line.starts_with("# TYPE ebb_"),
                "{}",
                line
            );
            continue;
        }
        assert!(line.starts_with("ebb_"), "sample not named ebb_*: {}", line);
        let value = line.rsplit(' ').next().unwrap();
        assert!(
            value.parse::<f64>().is_ok(),
            "no number at the end of: {}",
            line
        );
        samples += 1;
    }
    assert!(samples > 10);
}

#[test]
fn collect_runs() {
    let _guard = shared();
    let freed: Vec<Vec<u8>> = (0..100).map(|i| vec![3; 1000 + i * 100]).collect();
    drop(freed);
    ebb::collect(false);
    let purged_before = ebb::stats().purged_bytes;
    ebb::collect(true);
    assert!(ebb::stats().purged_bytes >= purged_before);
}

#[test]
fn options() {
    let _guard = alone();
    let environment_sets_decay = std::env::var_os("EBB_DECAY_MS").is_some()
        || std::env::var("EBB_CONF").map_or(false, |conf| conf.contains("decay_ms"));
    let decay = ebb::option_get("decay_ms").expect("decay_ms is an option");
    if !environment_sets_decay {
        assert_eq!(decay, 250);
    }
    assert_eq!(ebb::option_get("no_such_option"), None);
    assert_eq!(ebb::option_get("decay\0ms"), None);

    assert_eq!(
        ebb::option_set("decay_ms", "soon"),
        Err(ebb::Error::InvalidValue {
            name: "decay_ms".into(),
            value: "soon".into()
        })
    );
    assert_eq!(
        ebb::option_set("no_such_option", "1"),
        Err(ebb::Error::UnknownOption {
            name: "no_such_option".into()
        })
    );
    assert_eq!(
        ebb::option_get("decay_ms"),
        Some(decay),
        "a refused value changed the option"
    );

    ebb::option_set("decay_ms", "2s").unwrap();
    assert_eq!(ebb::option_get("decay_ms"), Some(2000));
    // -1 ("never") is a value, not the error return
    ebb::option_set("decay_ms", "-1").unwrap();
    assert_eq!(ebb::option_get("decay_ms"), Some(-1));
    ebb::option_set("decay_ms", &decay.to_string()).unwrap();
    assert_eq!(ebb::option_get("decay_ms"), Some(decay));

    let error = ebb::option_set("decay_ms", "soon").unwrap_err();
    assert!(error.to_string().contains("decay_ms"));
}

#[test]
fn version_matches_the_crate() {
    assert_eq!(ebb::version(), env!("CARGO_PKG_VERSION"));
}

/// With the `secure` feature, a block the owning thread frees twice is
/// reported (one line, then abort), even with other blocks of its page
/// live.  The double free runs in a child: this test binary again, asked
/// by an environment variable to do only that.
#[cfg(feature = "secure")]
#[test]
fn secure_feature_reports_a_double_free() {
    const CHILD: &str = "EBB_RUST_TEST_DOUBLE_FREE";
    if std::env::var_os(CHILD).is_some() {
        let layout = Layout::from_size_align(48, 8).unwrap();
        unsafe {
            let keep = GLOBAL.alloc(layout);
            let block = GLOBAL.alloc(layout);
            GLOBAL.dealloc(block, layout);
            GLOBAL.dealloc(block, layout); // reported here
            GLOBAL.dealloc(keep, layout);
        }
        std::process::exit(0);
    }
    let _guard = shared();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "secure_feature_reports_a_double_free", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("the test binary runs again");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the double free went unnoticed: {}", stderr);
    assert!(
        stderr.contains("ebb: free(") && stderr.contains("double free"),
        "no report from ebb: {}",
        stderr
    );
}
