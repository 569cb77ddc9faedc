// The kernel's uevent socket (see include/keel_uevent.h).
#include "keel_uevent.h"
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/netlink.h>

int keel_uevent_kernel_socket(int receive_buffer_bytes) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
    if (fd < 0) return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &receive_buffer_bytes, sizeof receive_buffer_bytes) < 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes, sizeof receive_buffer_bytes) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct sockaddr_nl address;
    memset(&address, 0, sizeof address);
    address.nl_family = AF_NETLINK;
    address.nl_groups = 1;   // the kernel's own uevents (udevd's are group 2)
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

ssize_t keel_uevent_receive(int fd, void *buffer, size_t capacity, int *truncated) {
    struct sockaddr_nl from;
    struct iovec vector = { .iov_base = buffer, .iov_len = capacity };
    struct msghdr message;
    memset(&message, 0, sizeof message);
    memset(&from, 0, sizeof from);
    message.msg_name = &from;
    message.msg_namelen = sizeof from;
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    *truncated = 0;
    ssize_t n = recvmsg(fd, &message, MSG_DONTWAIT);
    if (n < 0) return -errno;
    if (message.msg_flags & MSG_TRUNC) {
        *truncated = 1;
        return 0;
    }
    // Only the kernel (port 0) speaks on group 1; anything else is not a uevent.
    if (message.msg_namelen != sizeof from || from.nl_family != AF_NETLINK || from.nl_pid != 0) return 0;
    return n;
}
