#!/usr/bin/env bash
# make bench: build ebb and the workloads, install what is missing (when run
# as root), and run every workload on every allocator (bench/runner.py).
#   bench/run.sh [--quick] [runner options: --runs N --only REGEX,... --allocators a,b
#                --extra "name=/path/lib.so ..." --busy N --classic /path/to/mimalloc-bench]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the peers, the real programs, the chart tool.
want=(libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4 redis-server redis-tools lua5.4
      sqlite3 gnuplot-nox python3 gcc)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "bench: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
      >/tmp/ebb-bench-apt.log 2>&1 || { cat /tmp/ebb-bench-apt.log >&2; exit 1; }
    # Debian starts redis-server as a service on install; the bench runs its own.
    (systemctl stop redis-server || service redis-server stop) >/dev/null 2>&1 || true
  else
    echo "bench: missing (not root, so not installing): ${missing[*]}; running without them" >&2
  fi
fi

make -s all
exec python3 bench/runner.py "$@"
