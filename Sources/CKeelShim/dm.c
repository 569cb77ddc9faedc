// Device-mapper C for Keel (see include/keel_dm.h): ioctl request numbers, the kernel's reading of
// a DM_TARGET_MSG buffer, and libdevmapper's variadic log callback.
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <libdevmapper.h>
#include "keel_dm.h"

unsigned long keel_dm_request(keel_dm_command command) {
    switch (command) {
    case KEEL_DM_CMD_VERSION: return DM_VERSION;
    case KEEL_DM_CMD_LIST_DEVICES: return DM_LIST_DEVICES;
    case KEEL_DM_CMD_TABLE_STATUS: return DM_TABLE_STATUS;
    case KEEL_DM_CMD_TARGET_MSG: return DM_TARGET_MSG;
    case KEEL_DM_CMD_DEV_ARM_POLL: return DM_DEV_ARM_POLL;
    }
    return 0;
}

int keel_dm_ioctl(int fd, keel_dm_command command, struct dm_ioctl *io) {
    unsigned long request = keel_dm_request(command);
    if (request == 0) {
        errno = EINVAL;
        return -1;
    }
    return ioctl(fd, request, io);
}

static void keel_dm_header(struct dm_ioctl *io, size_t size, const char *name) {
    memset(io, 0, sizeof(*io));
    io->version[0] = KEEL_DM_REQUEST_VERSION_MAJOR;
    io->version[1] = KEEL_DM_REQUEST_VERSION_MINOR;
    io->data_size = (uint32_t)size;
    io->data_start = KEEL_DM_DATA_START;
    snprintf(io->name, sizeof(io->name), "%s", name);
}

int keel_dm_create_device(int fd, const char *name, const char *uuid, uint64_t length, const char *type,
                          const char *params, void *buffer, size_t capacity, uint64_t *dev, int *stage) {
    struct dm_ioctl *io = buffer;
    size_t spec_at = KEEL_DM_DATA_START;
    size_t params_bytes = strlen(params) + 1;
    size_t needed = spec_at + sizeof(struct dm_target_spec) + params_bytes;
    *stage = 1;
    if (capacity < needed || strlen(name) >= DM_NAME_LEN || strlen(uuid) >= DM_UUID_LEN
        || strlen(type) >= DM_MAX_TYPE_NAME) {
        *stage = capacity < needed ? 2 : 1;
        return capacity < needed ? ENOSPC : EINVAL;
    }
    keel_dm_header(io, KEEL_DM_DATA_START, name);
    snprintf(io->uuid, sizeof(io->uuid), "%s", uuid);
    if (ioctl(fd, DM_DEV_CREATE, io) != 0) return errno;
    *dev = io->dev;

    *stage = 2;
    keel_dm_header(io, needed, name);
    io->target_count = 1;
    struct dm_target_spec *spec = (struct dm_target_spec *)((char *)buffer + spec_at);
    memset(spec, 0, sizeof(*spec));
    spec->sector_start = 0;
    spec->length = length;
    spec->next = 0;
    snprintf(spec->target_type, sizeof(spec->target_type), "%s", type);
    memcpy((char *)(spec + 1), params, params_bytes);
    int failure = 0;
    if (ioctl(fd, DM_TABLE_LOAD, io) != 0) failure = errno;
    if (failure == 0) {
        *stage = 3;
        keel_dm_header(io, KEEL_DM_DATA_START, name);
        if (ioctl(fd, DM_DEV_SUSPEND, io) != 0) failure = errno;
    }
    if (failure != 0) {
        keel_dm_header(io, KEEL_DM_DATA_START, name);
        (void)ioctl(fd, DM_DEV_REMOVE, io);
    }
    return failure;
}

int keel_dm_decode_target_msg(const struct dm_ioctl *io, uint64_t *sector, const char **text) {
    // The checks of the kernel's check_ioctl_version(), copy_params() and target_message().
    if (io->version[0] != DM_VERSION_MAJOR || io->version[1] > DM_VERSION_MINOR) return EINVAL;
    if (io->data_size < offsetof(struct dm_ioctl, data)) return EINVAL;
    if (io->data_start < sizeof(struct dm_ioctl)) return EINVAL;
    if ((size_t)io->data_start + sizeof(struct dm_target_msg) >= io->data_size) return EINVAL;
    const struct dm_target_msg *msg = (const void *)((const char *)io + io->data_start);
    const char *end = (const char *)io + io->data_size;
    const char *nul = memchr(msg->message, 0, (size_t)(end - msg->message));
    if (nul == NULL) return EINVAL;
    if ((io->name[0] == 0) == (io->uuid[0] == 0)) return EINVAL;  // exactly one of name and uuid
    *sector = msg->sector;
    *text = msg->message;
    return 0;
}

// libdm's log levels (its internal log.h; not in libdevmapper.h).
enum { KEEL_LIBDM_LOG_LEVEL_MASK = 0x7, KEEL_LIBDM_LOG_ERR = 3 };

static __thread char keel_dm_log_buffer[1024];
static __thread size_t keel_dm_log_length;
static __thread int keel_dm_log_first_errno;

__attribute__((format(printf, 5, 6)))
static void keel_dm_log(int level, const char *file, int line, int dm_errno_or_class, const char *format, ...) {
    (void)file;
    (void)line;
    // Only errors and fatals are kept: they explain a failed call. Warnings and debug text would
    // otherwise go to stderr, which a pinned daemon must not write to uncontrolled.
    if ((level & KEEL_LIBDM_LOG_LEVEL_MASK) > KEEL_LIBDM_LOG_ERR) return;
    if (dm_errno_or_class != 0 && keel_dm_log_first_errno == 0) keel_dm_log_first_errno = dm_errno_or_class;
    size_t capacity = sizeof(keel_dm_log_buffer);
    if (keel_dm_log_length + 1 >= capacity) return;
    if (keel_dm_log_length > 0) {
        int n = snprintf(keel_dm_log_buffer + keel_dm_log_length, capacity - keel_dm_log_length, "; ");
        if (n > 0) keel_dm_log_length += (size_t)n;
        if (keel_dm_log_length >= capacity) keel_dm_log_length = capacity - 1;
    }
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(keel_dm_log_buffer + keel_dm_log_length, capacity - keel_dm_log_length, format, ap);
    va_end(ap);
    if (n > 0) keel_dm_log_length += (size_t)n;
    if (keel_dm_log_length >= capacity) keel_dm_log_length = capacity - 1;
}

void keel_dm_log_install(void) {
    dm_log_with_errno_init(keel_dm_log);
    dm_log_init_verbose(0);
    // No udev cookies: Keel addresses maps by dm name through the control node, never through
    // udev-made symlinks, so there is nothing to wait for; and a cookie wait with no udevd
    // running would only add a timeout. libdm creates /dev/mapper/<name> itself instead.
    dm_udev_set_sync_support(0);
}

void keel_dm_log_clear(void) {
    keel_dm_log_length = 0;
    keel_dm_log_buffer[0] = 0;
    keel_dm_log_first_errno = 0;
}

const char *keel_dm_log_text(void) {
    keel_dm_log_buffer[keel_dm_log_length] = 0;
    return keel_dm_log_buffer;
}

int keel_dm_log_errno(void) { return keel_dm_log_first_errno; }

const void *keel_dm_names_first(struct dm_task *task) {
    struct dm_names *names = dm_task_get_names(task);
    // libdm's convention: an empty list is one entry with dev 0.
    if (names == NULL || names->dev == 0) return NULL;
    return names;
}

const void *keel_dm_names_next(const void *entry) {
    const struct dm_names *names = entry;
    if (names->next == 0) return NULL;
    return (const char *)names + names->next;
}

const char *keel_dm_names_name(const void *entry) { return ((const struct dm_names *)entry)->name; }
