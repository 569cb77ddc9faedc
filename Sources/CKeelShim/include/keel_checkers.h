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

/// pthread_setname_np(pthread_self(), name): names a checker thread for ps/top.
void keel_checkers_name_thread(const char *name);

#endif
