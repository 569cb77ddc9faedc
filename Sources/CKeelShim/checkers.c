// Path checkers' C needs (see include/keel_checkers.h).
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <errno.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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

int keel_checkers_sg_kind(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return 0;
    if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 21) return 1;
    if (S_ISSOCK(st.st_mode)) return 2;
    return 0;
}

int keel_checkers_open_sg(const char *path) {
    int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -1;
    if (keel_checkers_sg_kind(fd) != 1) {
        close(fd);
        errno = ENOTTY;
        return -1;
    }
    return fd;
}

int keel_checkers_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int keel_checkers_epoll_add(int epfd, int fd, uint64_t data) {
    struct epoll_event event = { .events = EPOLLIN | EPOLLET, .data.u64 = data };
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int keel_checkers_epoll_poll(int epfd, uint64_t *data, uint8_t *flags, int max) {
    struct epoll_event events[64];
    if (max > 64) max = 64;
    int n = epoll_wait(epfd, events, max, 0);
    for (int i = 0; i < n; i++) {
        data[i] = events[i].data.u64;
        flags[i] = (uint8_t)(((events[i].events & EPOLLIN) ? 1 : 0) | ((events[i].events & (EPOLLHUP | EPOLLERR)) ? 2 : 0));
    }
    return n;
}

void keel_checkers_name_thread(const char *name) { pthread_setname_np(pthread_self(), name); }
