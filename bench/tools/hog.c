/* hog SECONDS: keep one CPU busy for at most SECONDS, then exit.
 *
 * The benchmark runner (bench/runner.py --busy N, and its burst-busy
 * workload) starts N of these beside a workload run to measure it on a busy
 * machine, and kills them when the run ends.  They can never outlive it by
 * much: each dies with its parent (PR_SET_PDEATHSIG), and after SECONDS at
 * the latest (its own clock, and alarm(2) as a backstop whose default
 * action ends the process).  Pure arithmetic in registers: no allocator
 * calls, no memory traffic, no system calls but a clock read every few
 * milliseconds. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static volatile uint64_t sink;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    char *end;
    long secs = argc == 2 ? strtol(argv[1], &end, 10) : 0;
    if (argc != 2 || *end || secs < 1 || secs > 86400) {
        fprintf(stderr, "usage: hog SECONDS (1..86400)\n");
        return 2;
    }
    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        return 0; /* no death signal, or the parent is gone already */
    alarm((unsigned)secs + 1);
    double stop = now() + (double)secs;
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (;;) {
        for (int i = 0; i < 1000000; i++)
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        sink = x;
        if (now() >= stop)
            return 0;
    }
}
