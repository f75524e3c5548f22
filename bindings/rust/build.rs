//! Builds the ebb C library from the repository's `src/` and `include/` (two
//! directories up) with the system C compiler and `ar`: no build-time
//! dependencies, so the crate builds offline with nothing but a C toolchain.
//!
//! Outputs, all in OUT_DIR:
//! - `libebb_c.a`: every `src/*.c`, compiled with the Makefile's BASEFLAGS;
//! - `libebb_rust_layout_check.a`: a helper that only the crate's own tests
//!   reference (the linker drops it from every other program).
//!
//! Environment read: `CC_<target>` / `TARGET_CC` / `CC` (default `cc`),
//! `AR_<target>` / `TARGET_AR` / `AR` (default `ar`), and cargo's own
//! variables (`OUT_DIR`, `DEBUG`, `NUM_JOBS`, `CARGO_FEATURE_OVERRIDE`,
//! `CARGO_FEATURE_SECURE`, ...).

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{self, Child, Command};

/// The Makefile's BASEFLAGS, minus -Werror (a newer compiler's new warning
/// must not break a user's build) and the include paths (added below).
const BASE_FLAGS: &[&str] = &[
    "-std=c11",
    "-D_GNU_SOURCE",
    "-pthread",
    "-fPIC",
    // Only the functions marked EBB_EXPORT (the ebb_* API, and with
    // `override` the malloc family) keep default visibility.
    "-fvisibility=hidden",
    // The compiler must not turn ebb's own malloc+memset into a call to
    // calloc (or similar), which would recurse into itself.
    "-fno-builtin-malloc",
    "-fno-builtin-calloc",
    "-fno-builtin-realloc",
    "-fno-builtin-free",
    "-ftls-model=initial-exec",
    // The allocator is optimised even in a debug build of the Rust program:
    // an -O0 malloc would make every Rust test slow for no benefit.
    "-O2",
    "-Wall",
    "-Wextra",
];

fn main() {
    let manifest_dir = PathBuf::from(env_required("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env_required("OUT_DIR"));
    let repo_dir = manifest_dir.join("..").join("..");
    let src_dir = repo_dir.join("src");
    let include_dir = repo_dir.join("include");

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=c");
    println!("cargo:rerun-if-changed={}", src_dir.display());
    println!("cargo:rerun-if-changed={}", include_dir.display());

    let target = env::var("TARGET").unwrap_or_default();
    for var in ["CC", "AR", "TARGET_CC", "TARGET_AR"] {
        println!("cargo:rerun-if-env-changed={}", var);
    }
    let target_var = target.replace('-', "_");
    println!("cargo:rerun-if-env-changed=CC_{}", target_var);
    println!("cargo:rerun-if-env-changed=AR_{}", target_var);

    if env::var("CARGO_CFG_TARGET_OS").map_or(false, |os| os != "linux") {
        fail(&format!(
            "ebb supports Linux only (it uses mremap, madvise and /proc); target is {}",
            target
        ));
    }
    if !include_dir.join("ebb.h").is_file() || !src_dir.is_dir() {
        fail(&format!(
            "the ebb C sources were not found at {} (expected src/ and include/ebb.h there).\n\
             This crate compiles the C library of the ebb repository it lives in \
             (bindings/rust): depend on it from a checkout of that repository, as a \
             `path` or `git` dependency, not as a copy of bindings/rust alone.",
            repo_dir.display()
        ));
    }

    let c_sources = c_files_in(&src_dir);
    if c_sources.is_empty() {
        fail(&format!("no .c files in {}", src_dir.display()));
    }

    let compiler = tool_from_env(&target_var, "CC", "cc");
    let archiver = tool_from_env(&target_var, "AR", "ar");
    let override_malloc = env::var_os("CARGO_FEATURE_OVERRIDE").is_some();
    let secure = env::var_os("CARGO_FEATURE_SECURE").is_some();

    let mut flags: Vec<OsString> = BASE_FLAGS.iter().map(OsString::from).collect();
    if env::var("DEBUG").map_or(false, |debug| debug == "true") {
        flags.push("-g".into());
    }
    if !override_malloc {
        // src/override.c compiles to nothing: the process keeps the C
        // library's malloc, and ebb serves only what calls ebb_* (Rust).
        flags.push("-DEBB_OVERRIDE=0".into());
    }
    if secure {
        // The secure build (README, "Heap integrity"): encoded, checked
        // free lists, double frees caught, freed memory filled.
        flags.push("-DEBB_SECURE=1".into());
    }
    let mut include_flags = Vec::new();
    for dir in [&include_dir, &src_dir] {
        let mut flag = OsString::from("-I");
        flag.push(dir.as_os_str());
        include_flags.push(flag);
    }
    flags.extend(include_flags.iter().cloned());

    let obj_dir = fresh_dir(&out_dir.join("ebb-obj"));
    let jobs = env::var("NUM_JOBS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let library_objects = compile_all(&compiler, &flags, &c_sources, &obj_dir, jobs);
    archive(&archiver, &out_dir.join("libebb_c.a"), &library_objects);

    // The layout check: no -fvisibility=hidden needed, it is only linked into
    // the crate's test binaries.
    let layout_source = manifest_dir.join("c").join("layout_check.c");
    let mut layout_flags: Vec<OsString> = vec!["-std=c11".into(), "-fPIC".into(), "-O1".into()];
    layout_flags.extend(include_flags);
    let layout_obj_dir = fresh_dir(&out_dir.join("layout-check-obj"));
    let layout_objects = compile_all(
        &compiler,
        &layout_flags,
        &[layout_source],
        &layout_obj_dir,
        1,
    );
    archive(
        &archiver,
        &out_dir.join("libebb_rust_layout_check.a"),
        &layout_objects,
    );

    println!("cargo:rustc-link-search=native={}", out_dir.display());
    if override_malloc {
        // Nothing in Rust calls malloc or free by name, so a plain static
        // library would leave override.o out of the link: take every object.
        // `-bundle` because Rust 1.63 rejects +whole-archive for a library
        // bundled into an rlib; the final link finds it in OUT_DIR instead.
        println!("cargo:rustc-link-lib=static:+whole-archive,-bundle=ebb_c");
    } else {
        println!("cargo:rustc-link-lib=static=ebb_c");
    }
    println!("cargo:rustc-link-lib=static=ebb_rust_layout_check");
    println!("cargo:rustc-link-lib=pthread");
}

/// Every `*.c` directly in `dir`, sorted (a stable archive, whatever the
/// directory order): new C files are picked up without editing this script.
fn c_files_in(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| fail(&format!("{}: {}", dir.display(), e)));
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().map_or(false, |ext| ext == "c") && path.is_file())
        .collect();
    files.sort();
    files
}

/// The compiler or archiver named by `<NAME>_<target>`, `TARGET_<NAME>` or
/// `<NAME>` (the variables the `cc` crate reads too), else `default`.
fn tool_from_env(target_var: &str, name: &str, default: &str) -> OsString {
    [
        format!("{}_{}", name, target_var),
        format!("TARGET_{}", name),
        name.to_string(),
    ]
    .iter()
    .filter_map(env::var_os)
    .find(|value| !value.is_empty())
    .unwrap_or_else(|| default.into())
}

/// Compiles `sources` into `obj_dir`, at most `jobs` at a time; returns the
/// objects.  Stops the build naming every file that failed.
fn compile_all(
    compiler: &OsString,
    flags: &[OsString],
    sources: &[PathBuf],
    obj_dir: &Path,
    jobs: usize,
) -> Vec<PathBuf> {
    let mut objects = Vec::new();
    let mut failed = Vec::new();
    for batch in sources.chunks(jobs) {
        let mut running: Vec<(&PathBuf, Child)> = Vec::new();
        for source in batch {
            let stem = source.file_stem().unwrap_or_default();
            let object = obj_dir.join(stem).with_extension("o");
            let child = Command::new(compiler)
                .args(flags)
                .arg("-c")
                .arg(source)
                .arg("-o")
                .arg(&object)
                .spawn()
                .unwrap_or_else(|e| {
                    fail(&format!(
                        "cannot run the C compiler {:?}: {} (set CC to a C11 compiler)",
                        compiler, e
                    ))
                });
            running.push((source, child));
            objects.push(object);
        }
        for (source, mut child) in running {
            match child.wait() {
                Ok(status) if status.success() => {}
                _ => failed.push(source.display().to_string()),
            }
        }
    }
    if !failed.is_empty() {
        fail(&format!(
            "{:?} failed to compile: {}",
            compiler,
            failed.join(", ")
        ));
    }
    objects
}

/// An empty directory at `dir`: objects of C files since deleted must not
/// linger into the archive.
fn fresh_dir(dir: &Path) -> PathBuf {
    if dir.exists() {
        fs::remove_dir_all(dir).unwrap_or_else(|e| fail(&format!("{}: {}", dir.display(), e)));
    }
    fs::create_dir_all(dir).unwrap_or_else(|e| fail(&format!("{}: {}", dir.display(), e)));
    dir.to_path_buf()
}

/// `ar crs library objects...`, replacing any previous archive.
fn archive(archiver: &OsString, library: &Path, objects: &[PathBuf]) {
    if library.exists() {
        fs::remove_file(library).unwrap_or_else(|e| fail(&format!("{}: {}", library.display(), e)));
    }
    let status = Command::new(archiver)
        .arg("crs")
        .arg(library)
        .args(objects)
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run {:?}: {} (set AR)", archiver, e)));
    if !status.success() {
        fail(&format!(
            "{:?} failed to write {}",
            archiver,
            library.display()
        ));
    }
}

fn env_required(name: &str) -> OsString {
    env::var_os(name).unwrap_or_else(|| fail(&format!("{} is not set (run through cargo)", name)))
}

/// Stops the build with one clear message (cargo shows the build script's
/// stderr when it fails).
fn fail(message: &str) -> ! {
    eprintln!("error: ebb: {}", message);
    process::exit(1);
}
