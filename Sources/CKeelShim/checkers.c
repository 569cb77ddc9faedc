// Path checkers' C needs (see include/keel_checkers.h).
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include "keel_checkers.h"

int keel_checkers_open_direct(const char *path) { return open(path, O_RDONLY | O_DIRECT | O_CLOEXEC); }

int keel_checkers_open_nonblock(const char *path) { return open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); }

int keel_checkers_logical_block_size(int fd, int *bytes) { return ioctl(fd, BLKSSZGET, bytes); }

int keel_checkers_soft_block_size(int fd, int *bytes) { return ioctl(fd, BLKBSZGET, bytes); }

int keel_checkers_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int keel_checkers_sg_io(int fd, struct sg_io_hdr *header) { return ioctl(fd, SG_IO, header); }

int keel_checkers_wait_readable(int fd, int64_t timeout_ns) {
    struct pollfd descriptor = { .fd = fd, .events = POLLIN };
    struct timespec timeout = { .tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000 };
    return ppoll(&descriptor, 1, &timeout, NULL);
}

void keel_checkers_name_thread(const char *name) { pthread_setname_np(pthread_self(), name); }
