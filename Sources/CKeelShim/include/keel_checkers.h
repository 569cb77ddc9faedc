// Path checkers' C needs: O_DIRECT opens, block-size ioctls, eventfd, SG_IO and thread names.
#ifndef KEEL_CHECKERS_H
#define KEEL_CHECKERS_H
#include <stdint.h>
#include <stddef.h>
#include <scsi/sg.h>

/// open(path, O_RDONLY|O_DIRECT|O_CLOEXEC): the directio checker's device descriptor. -1 and errno on failure.
int keel_checkers_open_direct(const char *path);

/// open(path, O_RDONLY|O_NONBLOCK|O_CLOEXEC): the TUR checker's device descriptor. -1 and errno on failure.
int keel_checkers_open_nonblock(const char *path);

/// ioctl(fd, BLKSSZGET): the logical sector size in bytes. -1 and errno on failure.
int keel_checkers_logical_block_size(int fd, int *bytes);

/// ioctl(fd, BLKBSZGET): the soft block size in bytes. -1 and errno on failure.
int keel_checkers_soft_block_size(int fd, int *bytes);

/// eventfd(0, EFD_NONBLOCK|EFD_CLOEXEC): the checkers' completion doorbell.
int keel_checkers_eventfd(void);

/// ioctl(fd, SG_IO, header): one SCSI command through the sg interface. -1 and errno on failure.
int keel_checkers_sg_io(int fd, struct sg_io_hdr *header);

/// ppoll on one descriptor for POLLIN, at most timeout_ns: 1 readable, 0 timed out, -1 and errno.
int keel_checkers_wait_readable(int fd, int64_t timeout_ns);

/// open(path, O_RDWR|O_NONBLOCK|O_CLOEXEC), then refuses (closes, errno ENOTTY) anything but a
/// SCSI generic character device (major 21): writing a request to a block device would write data.
int keel_checkers_open_sg(const char *path);

/// Whether fd is a SCSI generic character device (1), a socket (2, the tests' fake transport), or
/// anything else (0).
int keel_checkers_sg_kind(int fd);

/// epoll_create1(EPOLL_CLOEXEC): the asynchronous TUR checker's completion set.
int keel_checkers_epoll_create(void);

/// epoll_ctl(ADD) of fd for EPOLLIN, edge-triggered, with `data` as the event's u64.
int keel_checkers_epoll_add(int epfd, int fd, uint64_t data);

/// epoll_wait(epfd, 0 timeout): stores up to `max` events' u64 data in `data` and their flags
/// (bit 0: readable, bit 1: hang-up or error) in `flags`. Returns the count, -1 and errno.
int keel_checkers_epoll_poll(int epfd, uint64_t *data, uint8_t *flags, int max);

/// pthread_setname_np(pthread_self(), name): names a checker thread for ps/top.
void keel_checkers_name_thread(const char *name);

#endif
