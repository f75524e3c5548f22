#!/usr/bin/env bash
# The Rust crate (bindings/rust): `cargo test` as the crate is used by
# default, then with its `override` feature (the C malloc family is ebb's
# too), then with its `secure` feature (the secure build: a double free is
# reported).  Offline and --locked: the crate has no dependencies.  Builds into
# build/rust, so `make clean` removes it.
# Needs cargo and rustc >= 1.63: Debian 12's `cargo` and `rustc` packages
# (.ci/run installs them) or rustup's.  cargo is looked for on PATH, then in
# $CARGO_HOME/bin and ~/.cargo/bin.  Without it the test is skipped (exit 77)
# and says so, except in CI (CI=true), where that is a failure.
set -u
EBB_ROOT=${EBB_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}

cargo=$(command -v cargo || true)
if [ -z "$cargo" ]; then
  for candidate in "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" "$HOME/.cargo/bin/cargo"; do
    if [ -x "$candidate" ]; then cargo=$candidate; break; fi
  done
fi
if [ -z "$cargo" ]; then
  if [ "${CI:-}" = true ]; then
    echo "FAIL: cargo not found (PATH, ~/.cargo/bin): CI must install Debian's cargo and rustc (.ci/run)"
    exit 1
  fi
  echo "SKIP: cargo not found (PATH, ~/.cargo/bin), the Rust binding is not tested: apt-get install cargo rustc"
  exit 77
fi
# rustup's cargo outside PATH: its rustc sits beside it.
PATH=${cargo%/*}:$PATH
"$cargo" --version && rustc --version || exit 1

failures=0
for features in "" "override" "secure"; do
  echo
  echo "=== cargo test --offline --locked${features:+ --features $features}"
  if ! "$cargo" test --offline --locked \
      --manifest-path "$EBB_ROOT/bindings/rust/Cargo.toml" \
      --target-dir "$EBB_ROOT/build/rust" \
      ${features:+--features "$features"}; then
    echo "FAIL: cargo test${features:+ --features $features}"
    failures=$((failures + 1))
  fi
done
[ "$failures" -eq 0 ]
