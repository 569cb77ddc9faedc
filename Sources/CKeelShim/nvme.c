// NVMe admin passthrough (see include/keel_nvme.h).
#include "keel_nvme.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/nvme_ioctl.h>

int keel_nvme_admin(int fd, uint8_t opcode, uint32_t nsid, uint32_t cdw10, uint32_t cdw11,
                    void *data, uint32_t length, uint32_t timeout_ms) {
    struct nvme_admin_cmd command;
    memset(&command, 0, sizeof command);
    command.opcode = opcode;
    command.nsid = nsid;
    command.addr = (uint64_t)(uintptr_t)data;
    command.data_len = length;
    command.cdw10 = cdw10;
    command.cdw11 = cdw11;
    command.timeout_ms = timeout_ms;
    int rc = ioctl(fd, NVME_IOCTL_ADMIN_CMD, &command);
    return rc < 0 ? -errno : rc;
}

int keel_nvme_namespace_id(int fd) {
    int rc = ioctl(fd, NVME_IOCTL_ID);
    return rc < 0 ? -errno : rc;
}

int keel_nvme_open(const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}
