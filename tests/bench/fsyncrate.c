/*
 * fsyncrate.c - how many small durable writes per second the file system
 * under DIR takes: append 512 bytes, fdatasync, repeat for SECONDS
 * (as SQLite's WAL does on each commit with synchronous=FULL).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 *   fsyncrate DIR [SECONDS]   prints "fsyncrate: syncs=N secs=S rate=R"
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
    char path[4096], block[512];
    double secs = argc > 2 ? atof(argv[2]) : 3.0, t0, t;
    long n = 0;
    off_t off = 0;
    int fd;

    if (argc < 2 || secs <= 0 || secs > 600) {
        fprintf(stderr, "usage: fsyncrate DIR [SECONDS]\n");
        return 2;
    }
    snprintf(path, sizeof(path), "%s/fsyncrate.%ld", argv[1], (long)getpid());
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    memset(block, 'x', sizeof(block));
    t0 = now();
    do {
        if (pwrite(fd, block, sizeof(block), off) != (ssize_t)sizeof(block) ||
            fdatasync(fd) != 0) {
            perror(path);
            close(fd);
            unlink(path);
            return 1;
        }
        off += sizeof(block);
        n++;
        t = now();
    } while (t - t0 < secs && n < 10000000L);
    close(fd);
    unlink(path);
    printf("fsyncrate: syncs=%ld secs=%.2f rate=%.0f\n", n, t - t0,
           (double)n / (t - t0));
    return 0;
}
