# bench/tools/segments.py: where a running process's ebb memory is, seen
# from gdb.  For the developers' questions the statistics do not answer:
# which owner holds free slices waiting for the decay, and how full each
# kind of page is.
#
#   gdb -p PID -batch -ex 'source bench/tools/segments.py' -ex ebb-segments -ex ebb-pages
#
# (or run the program under gdb, stopped where it should be looked at).
# Needs ebb with its debug information (make builds build/libebb.so with
# -g) and /proc/PID/pagemap, whose present bits the process's own user may
# read.  Huge blocks (their own mappings) are not on the segment list and
# not counted.
#
# ebb-segments: one line per segment ever mapped: its owner (a thread's
#   heap by its number, "medium" or "large" for the shared heaps' two
#   holders, "exited" for an exited thread's segment, "none" for a pooled
#   one or one the purger has out), KiB resident, KiB of that in free
#   slices, and its slices: H header, U in a page and at least half
#   resident, u in a page and less, d free but resident, . free and not.
# ebb-pages: pages by who owns their segment and what they hold (small
#   blocks up to 8 KiB, medium up to 128 KiB, large; "lent": a shared
#   heap's page on a thread's segment): pages, slices, KiB in blocks
#   counted as used (remote frees not yet taken in count), KiB resident,
#   and the share of resident memory those blocks are.
# ebb-page-list [OWNER]: one line per page (of segments whose owner name
#   starts with OWNER, e.g. "heap#1", "medium"), by resident bytes, most
#   first: owner, slice, block size, blocks counted as used and blocks
#   carved out of those that fit, KiB in those blocks, KiB resident, and
#   "full" (on its heap's full list) or "sparse" (handed to the purger).
#   Which classes hold memory they no longer use: pages left empty but
#   resident, or carved far beyond what is in use.
import os
import struct

import gdb

SLICE = 64 << 10
OS_PAGE = os.sysconf("SC_PAGE_SIZE")
OWNER_SHARED = 2  # EBB_OWNER_SHARED (internal.h): a shared heap's page
FULL_BIAS = 1 << 30  # EBB_USED_FULL_BIAS (internal.h), on a full page's count
SMALL_MAX, MEDIUM_MAX = 8 << 10, 128 << 10  # EBB_SMALL_MAX, EBB_MEDIUM_MAX


def resident_pages(pid, addr, size):
    """Present bits of [addr, addr+size) from /proc/pid/pagemap, one per OS page."""
    with open("/proc/%d/pagemap" % pid, "rb") as f:
        f.seek(addr // OS_PAGE * 8)
        data = f.read(size // OS_PAGE * 8)
    return [(struct.unpack_from("<Q", data, i)[0] >> 63) & 1 for i in range(0, len(data), 8)]


def segments():
    seg = gdb.parse_and_eval("ebb_all_segments")
    while int(seg) != 0:
        yield seg
        seg = seg.dereference()["all_next"]


def holders():
    return {int(gdb.parse_and_eval("&medium_holder")): "medium",
            int(gdb.parse_and_eval("&large_holder")): "large"}


def owner_name(seg, named):
    owner = int(seg["owner"])
    if owner in named:
        return named[owner]
    if owner == 0:
        return "exited" if int(seg["abandoned_listed"]) else "none"
    return "heap#%d" % int(seg["owner"].dereference()["birth"])


def slices_per_segment():
    return int(gdb.parse_and_eval("sizeof(((ebb_segment_t *)0)->pages) / sizeof(ebb_page_t)"))


def inferior_pid():
    pid = gdb.selected_inferior().pid
    if pid == 0:
        raise gdb.GdbError("no process: attach to one (gdb -p PID) or run it first")
    return pid


class Segments(gdb.Command):
    """One line per ebb segment: owner, resident KiB, of it in free slices, slice map."""

    def __init__(self):
        super().__init__("ebb-segments", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        pid, named, n = inferior_pid(), holders(), slices_per_segment()
        per_slice = SLICE // OS_PAGE
        total = total_free = 0
        for seg in segments():
            s = seg.dereference()
            bits = resident_pages(pid, int(seg), n * SLICE)
            used = int(s["used_slices"])
            line, res, free_res = "", 0, 0
            for i in range(n):
                r = sum(bits[i * per_slice:(i + 1) * per_slice])
                res += r
                if i == 0:
                    line += "H"
                elif used >> i & 1:
                    line += "U" if 2 * r >= per_slice else "u"
                elif r:
                    line += "d"
                    free_res += r
                else:
                    line += "."
            total += res
            total_free += free_res
            print("%#x %-9s resident %7d KiB  free slices %7d KiB  %s"
                  % (int(seg), owner_name(s, named), res * OS_PAGE >> 10, free_res * OS_PAGE >> 10, line))
        print("total: %d KiB resident in segments, %d KiB of it in free slices"
              % (total * OS_PAGE >> 10, total_free * OS_PAGE >> 10))


def pages(pid, named, n, prefix=""):
    """Every page of every segment whose owner's name starts with prefix:
    (owner, slice index, page descriptor, slices, blocks in use, on the full
    list, resident bytes)."""
    for seg in segments():
        s = seg.dereference()
        owner = owner_name(s, named)
        if not owner.startswith(prefix):
            continue
        used_mask = int(s["used_slices"])
        bits = resident_pages(pid, int(seg), n * SLICE)
        i = 1
        while i < n:
            if not used_mask >> i & 1:
                i += 1
                continue
            page = s["pages"][i]
            count = max(int(page["slice_count"]), 1)
            in_use = int(page["used_minus_one"])  # as page_used() (internal.h) reads it
            full = in_use < -(FULL_BIAS // 2)
            if full:
                in_use += FULL_BIAS
            in_use += 1 + int(page["sparse_at"]) - int(page["quiet"])
            resident = sum(bits[i * SLICE // OS_PAGE:(i + count) * SLICE // OS_PAGE]) * OS_PAGE
            yield owner, i, page, count, max(in_use, 0), full, resident
            i += count


def page_kind(owner, page):
    block = int(page["block_size"])
    kind = "small" if block <= SMALL_MAX else "medium" if block <= MEDIUM_MAX else "large"
    if owner not in ("medium", "large") and int(page["owner_thread"]) == OWNER_SHARED:
        kind = "lent " + kind
    return kind


class Pages(gdb.Command):
    """ebb's pages by owner and kind: blocks counted as used against residency."""

    def __init__(self):
        super().__init__("ebb-pages", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        pid, named, n = inferior_pid(), holders(), slices_per_segment()
        table = {}
        for owner, _, page, count, in_use, _, resident in pages(pid, named, n):
            who = "thread" if owner.startswith("heap#") else owner
            row = table.setdefault((who, page_kind(owner, page)), [0, 0, 0, 0])
            row[0] += 1
            row[1] += count
            row[2] += in_use * int(page["block_size"])
            row[3] += resident
        print("%-8s %-13s %6s %7s %12s %12s %5s" % ("segment", "pages of", "pages", "slices",
                                                   "used KiB", "resident KiB", "used"))
        for (who, kind), (npages, slices, used, res) in sorted(table.items()):
            print("%-8s %-13s %6d %7d %12d %12d %4.0f%%"
                  % (who, kind, npages, slices, used >> 10, res >> 10, 100.0 * used / res if res else 0))


class PageList(gdb.Command):
    """One line per ebb page, most resident first: block size, blocks used and carved, residency."""

    def __init__(self):
        super().__init__("ebb-page-list", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        pid, named, n = inferior_pid(), holders(), slices_per_segment()
        rows = []
        for owner, i, page, count, in_use, full, resident in pages(pid, named, n, arg.strip()):
            block = int(page["block_size"])
            state = "full" if full else "sparse" if int(page["detached"]) else ""
            rows.append((resident, owner, i, count, block, in_use, int(page["capacity"]),
                         int(page["reserved"]), state))
        print("%-9s %5s %6s %8s %7s %7s %7s %10s %12s  %s" % ("owner", "slice", "slices", "block",
                                                             "used", "carved", "fit", "used KiB",
                                                             "resident KiB", "state"))
        for resident, owner, i, count, block, in_use, carved, fit, state in sorted(rows, key=lambda r: -r[0]):
            print("%-9s %5d %6d %8d %7d %7d %7d %10.1f %12d  %s"
                  % (owner, i, count, block, in_use, carved, fit, in_use * block / 1024.0,
                     resident >> 10, state))


Segments()
Pages()
PageList()
