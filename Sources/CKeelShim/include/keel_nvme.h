// NVMe admin commands through the kernel's passthrough ioctl (see Sources/CKeelShim/nvme.c): what
// the ana prioritizer asks a path's controller.
#ifndef KEEL_NVME_H
#define KEEL_NVME_H
#include <stdint.h>

/// Sends one admin command through the namespace block device `fd` (NVME_IOCTL_ADMIN_CMD) and
/// waits for it. `data` receives `length` bytes. Returns 0, the NVMe status (> 0) when the
/// controller refused the command, or -errno.
int keel_nvme_admin(int fd, uint8_t opcode, uint32_t nsid, uint32_t cdw10, uint32_t cdw11,
                    void *data, uint32_t length, uint32_t timeout_ms);

/// The namespace id of the namespace block device `fd` (NVME_IOCTL_ID), or -errno.
int keel_nvme_namespace_id(int fd);

/// Opens a namespace block device for admin commands: read-only, non-blocking, close-on-exec.
/// Returns the descriptor or -errno.
int keel_nvme_open(const char *path);
#endif
