// The logger's C needs (see include/keel_logging.h).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "keel_logging.h"

int keel_logging_open(const char *path, int direct, int truncate) {
    int flags = O_RDWR | O_CREAT | O_DSYNC | O_CLOEXEC;
    if (direct) flags |= O_DIRECT;
    if (truncate) flags |= O_TRUNC;
    return open(path, flags, 0640);
}

int keel_logging_set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ? -1 : 0;
}

int keel_logging_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int keel_logging_ring_doorbell(int fd) {
    uint64_t one = 1;
    return write(fd, &one, sizeof one) == (ssize_t)sizeof one ? 0 : -1;
}

int keel_logging_wait_doorbell(int fd, int64_t timeout_ns) {
    struct pollfd descriptor = { .fd = fd, .events = POLLIN };
    struct timespec timeout = { .tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000 };
    int ready = ppoll(&descriptor, 1, &timeout, NULL);
    if (ready > 0) {
        uint64_t count;
        // Non-blocking: EAGAIN when another wake emptied it first, which is fine.
        (void)!read(fd, &count, sizeof count);
    }
    return ready;
}

int keel_logging_connect_datagram(const char *path) {
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    size_t length = strlen(path);
    if (length >= sizeof address.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(address.sun_path, path, length + 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (const struct sockaddr *)&address, sizeof address) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

ssize_t keel_logging_send(int fd, const void *bytes, size_t count) {
    return send(fd, bytes, count, MSG_DONTWAIT | MSG_NOSIGNAL);
}

const char *keel_logging_errno_name(int error) { return strerrorname_np(error); }

void keel_logging_name_thread(const char *name) { pthread_setname_np(pthread_self(), name); }
