#!/usr/bin/env bash
# bench/misuse.sh: what each allocator does with heap misuse, side by side.
#
#   bench/misuse.sh [NAME=/path/lib.so ...]
#
# Runs build/bench/misuse (bench/misuse.c: every case in a forked child
# with a 10 s limit) under glibc (nothing preloaded), Debian's mimalloc,
# jemalloc and tcmalloc, ebb (build/libebb.so) and ebb's secure build
# (build/libebb-secure.so), and any NAME=PATH given, preloaded.  Prints a
# Markdown table (case x allocator, each cell the verdict) and writes it to
# bench/results/misuse.md.  Verdicts (bench/misuse.c): reported (the
# allocator aborted with its own check), crashed, hang, duplicate (one
# block handed out twice), steered (malloc returned the program's chosen
# address), leaked, silent (none of these seen), ok (fork cases finished),
# trapped (a write past a block faulted at once: a guard page), immediate /
# delayed (reuse_next: is a freed block the next one handed out), filled
# (uaf_read: a freed block reads ebb's secure fill pattern), sequential /
# shuffled (carve_order: whether fresh blocks come in address order).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s all build/bench/misuse

lib_dir=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
names=(glibc); paths=("")
for peer in mimalloc=libmimalloc.so.2 jemalloc=libjemalloc.so.2 tcmalloc=libtcmalloc_minimal.so.4; do
  if [ -e "$lib_dir/${peer#*=}" ]; then names+=("${peer%%=*}"); paths+=("$lib_dir/${peer#*=}")
  else echo "misuse: ${peer%%=*} not installed, skipped" >&2; fi
done
names+=(ebb ebb-secure); paths+=("$PWD/build/libebb.so" "$PWD/build/libebb-secure.so")
for extra in "$@"; do names+=("${extra%%=*}"); paths+=("${extra#*=}"); done

mapfile -t cases < <(build/bench/misuse -l)
declare -A cell
for i in "${!names[@]}"; do
  echo "misuse: ${names[$i]}" >&2
  while read -r c verdict _; do
    [ "$c" = summary ] && continue
    cell["$c,$i"]=$verdict
  done < <(LD_PRELOAD="${paths[$i]}" build/bench/misuse -t 10 || true)
done

out=bench/results/misuse.md
{
  printf '| case |'; printf ' %s |' "${names[@]}"; echo
  printf '|---|'; for _ in "${names[@]}"; do printf -- '---|'; done; echo
  for c in "${cases[@]}"; do
    printf '| %s |' "$c"
    for i in "${!names[@]}"; do
      v=${cell["$c,$i"]:-?}
      case $v in hang|duplicate|steered|crashed|leaked) v="**$v**" ;; esac
      printf ' %s |' "$v"
    done
    echo
  done
} | tee "$out"
echo "wrote $out" >&2
