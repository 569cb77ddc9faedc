// The kernel's uevent socket without libudev (see Sources/CKeelShim/uevent.c): used when no udevd
// runs, where libudev would build and filter every kernel uevent in user space.
#ifndef KEEL_UEVENT_H
#define KEEL_UEVENT_H
#include <stddef.h>
#include <sys/types.h>

/// A non-blocking, close-on-exec NETLINK_KOBJECT_UEVENT socket bound to the kernel's group, with
/// a receive buffer of `receive_buffer_bytes` (SO_RCVBUFFORCE, else SO_RCVBUF). Returns the
/// descriptor, or -errno.
int keel_uevent_kernel_socket(int receive_buffer_bytes);

/// Receives one datagram into `buffer` without waiting. Returns its length; 0 when it did not
/// come from the kernel (another process's message, dropped) or did not fit (`*truncated` set);
/// -errno on failure (-EAGAIN: nothing queued; -ENOBUFS: the kernel dropped messages).
ssize_t keel_uevent_receive(int fd, void *buffer, size_t capacity, int *truncated);
#endif
