#!/usr/bin/env bash
# demo/run.sh: build ebb-demo twice (system allocator; ebb crate as the global
# allocator), then run the same load against every allocator (demo/run.py) and
# write build/demo/ (`make demo-publish` copies it to demo/results/, the copy
# the README shows).  Options go to run.py (--duration 60, --idle 20,
# --only glibc,ebb, ...: see `demo/run.py --help`).  `make demo` runs this.
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the demo needs, installed only if missing.
packages=(wrk gnuplot-nox python3 libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4
          librust-tokio-dev librust-hyper-dev build-essential)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "demo: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  $sudo apt-get -q update >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -q -y install --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo=$(command -v cargo || echo "$HOME/.cargo/bin/cargo")
[ -x "$cargo" ] || { echo "demo: cargo not found (install Rust with rustup)"; exit 1; }

# build/libebb.so, for the extra LD_PRELOAD row.
make -C .. -s all

# No lockfile is kept: versions resolve from what Debian installed, and a
# format-4 lock left by a newer cargo would stop Debian's cargo 1.65.
rm -f Cargo.lock

# One target directory for both builds (the dependencies are compiled once);
# each binary is copied out before the other build overwrites it.
"$cargo" build --release --offline
cp target/release/ebb-demo target/ebb-demo-system
"$cargo" build --release --offline --features ebb
cp target/release/ebb-demo target/ebb-demo-ebb

python=/usr/bin/python3; [ -x $python ] || python=python3
exec $python run.py "$@"
