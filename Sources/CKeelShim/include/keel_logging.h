// The logger's C needs: O_DIRECT|O_DSYNC opens, non-blocking descriptors, the eventfd doorbell,
// the journal's datagram socket, errno names and thread names.
#ifndef KEEL_LOGGING_H
#define KEEL_LOGGING_H
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/// CLOCK_MONOTONIC in nanoseconds (vDSO: no syscall). Inline so a producer's log call pays no
/// extra call.
static inline int64_t keel_logging_monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

/// open(path, O_RDWR|O_CREAT|O_DSYNC|O_CLOEXEC, 0640) (read too: a continued file's partial last
/// page is read back), with O_DIRECT when `direct` is non-zero
/// and O_TRUNC when `truncate` is non-zero. -1 and errno on failure.
int keel_logging_open(const char *path, int direct, int truncate);

/// Sets O_NONBLOCK on `fd` (fcntl F_GETFL/F_SETFL). 0, or -1 and errno.
int keel_logging_set_nonblocking(int fd);

/// eventfd(0, EFD_NONBLOCK|EFD_CLOEXEC): the logger's doorbell.
int keel_logging_eventfd(void);

/// Adds 1 to the eventfd counter without blocking (EFD_NONBLOCK). 0, or -1 and errno.
int keel_logging_ring_doorbell(int fd);

/// Waits until `fd` is readable or `timeout_ns` passed (ppoll), then empties the eventfd counter.
/// 1 readable, 0 timed out, -1 and errno.
int keel_logging_wait_doorbell(int fd, int64_t timeout_ns);

/// socket(AF_UNIX, SOCK_DGRAM|SOCK_NONBLOCK|SOCK_CLOEXEC) connected to `path` (the journal's
/// native socket). -1 and errno on failure (ENAMETOOLONG for a path sun_path cannot hold).
int keel_logging_connect_datagram(const char *path);

/// send(fd, bytes, count, MSG_DONTWAIT|MSG_NOSIGNAL): never blocks, never raises SIGPIPE.
ssize_t keel_logging_send(int fd, const void *bytes, size_t count);

/// The symbolic name of `error` ("EIO"), or NULL when glibc knows none. Never allocates.
const char *keel_logging_errno_name(int error);

/// pthread_setname_np(pthread_self(), name).
void keel_logging_name_thread(const char *name);

#endif
