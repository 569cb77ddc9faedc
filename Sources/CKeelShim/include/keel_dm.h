// Device-mapper C for Keel: the kernel's dm ioctl layout and request numbers, and the libdevmapper
// log callback (variadic, so Swift cannot be it). See Sources/CKeelShim/dm.c.
#ifndef KEEL_DM_H
#define KEEL_DM_H
#include <stdint.h>
#include <stddef.h>
#include <linux/dm-ioctl.h>

/// The dm ioctl layout as <linux/dm-ioctl.h> defines it, as constants Swift can import.
enum {
    /// sizeof(struct dm_ioctl): the header every dm ioctl starts with.
    KEEL_DM_IOCTL_BYTES = sizeof(struct dm_ioctl),
    /// Where Keel puts the payload: right after the header, 8-byte aligned (the kernel's
    /// align_ptr(param + 1) for results).
    KEEL_DM_DATA_START = (sizeof(struct dm_ioctl) + 7) & ~(size_t)7,
    /// offsetof(struct dm_target_msg, message): the message text follows the 64-bit sector.
    KEEL_DM_TARGET_MSG_TEXT_OFFSET = offsetof(struct dm_target_msg, message),
    /// sizeof(struct dm_target_spec): the status text follows it.
    KEEL_DM_TARGET_SPEC_BYTES = sizeof(struct dm_target_spec),
    KEEL_DM_TARGET_SPEC_TYPE_OFFSET = offsetof(struct dm_target_spec, target_type),
    KEEL_DM_TARGET_SPEC_NEXT_OFFSET = offsetof(struct dm_target_spec, next),
    KEEL_DM_NAME_LIST_NAME_OFFSET = offsetof(struct dm_name_list, name),
    KEEL_DM_NAME_LIST_NEXT_OFFSET = offsetof(struct dm_name_list, next),
    KEEL_DM_NAME_LEN = DM_NAME_LEN,
    KEEL_DM_UUID_LEN = DM_UUID_LEN,
    KEEL_DM_MAX_TYPE_NAME = DM_MAX_TYPE_NAME,
    KEEL_DM_HEADER_VERSION_MAJOR = DM_VERSION_MAJOR,
    KEEL_DM_HEADER_VERSION_MINOR = DM_VERSION_MINOR,
    /// The interface version Keel asks for: 4.37 brought DM_DEV_ARM_POLL and event numbers in
    /// DM_LIST_DEVICES. The kernel refuses a minor newer than its own, so ask for no more.
    KEEL_DM_REQUEST_VERSION_MAJOR = 4,
    KEEL_DM_REQUEST_VERSION_MINOR = 37,
    KEEL_DM_SUSPEND_FLAG = DM_SUSPEND_FLAG,
    KEEL_DM_STATUS_TABLE_FLAG = DM_STATUS_TABLE_FLAG,
    KEEL_DM_BUFFER_FULL_FLAG = DM_BUFFER_FULL_FLAG,
    KEEL_DM_NOFLUSH_FLAG = DM_NOFLUSH_FLAG,
    KEEL_DM_UUID_FLAG = DM_UUID_FLAG,
    KEEL_DM_DATA_OUT_FLAG = DM_DATA_OUT_FLAG,
    KEEL_DM_NAME_LIST_FLAG_HAS_UUID = DM_NAME_LIST_FLAG_HAS_UUID,
    KEEL_DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID = DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID,
};

/// The dm ioctl commands Keel issues without libdevmapper.
typedef enum {
    KEEL_DM_CMD_VERSION = DM_VERSION_CMD,
    KEEL_DM_CMD_LIST_DEVICES = DM_LIST_DEVICES_CMD,
    KEEL_DM_CMD_TABLE_STATUS = DM_TABLE_STATUS_CMD,
    KEEL_DM_CMD_TARGET_MSG = DM_TARGET_MSG_CMD,
    KEEL_DM_CMD_DEV_ARM_POLL = DM_DEV_ARM_POLL_CMD,
} keel_dm_command;

/// The ioctl request number of `command` (_IOWR(DM_IOCTL, cmd, struct dm_ioctl)); 0 if unknown.
unsigned long keel_dm_request(keel_dm_command command);

/// ioctl(fd, keel_dm_request(command), io): non-variadic, allocation-free. -1 and errno on failure
/// (EINVAL for an unknown command, without a syscall).
int keel_dm_ioctl(int fd, keel_dm_command command, struct dm_ioctl *io);

/// Reads a DM_TARGET_MSG buffer back the way the kernel's target_message() does: checks the
/// version, data_size and data_start, and that the text is NUL-terminated inside data_size.
/// Returns 0 and the sector and text, or an errno (EINVAL) for a buffer the kernel would refuse.
int keel_dm_decode_target_msg(const struct dm_ioctl *io, uint64_t *sector, const char **text);

/// Creates the dm device `name` with `uuid`, loads one target (`type`, `params`, sectors 0 to
/// `length`) into it and resumes it: DM_DEV_CREATE, DM_TABLE_LOAD and DM_DEV_SUSPEND (resume) on
/// `fd`, in the caller's `buffer` of `capacity` bytes (8-byte aligned). No libdevmapper, so any
/// number of threads may call it at once, each with its own buffer. Returns 0 and the device's
/// encoded number in *dev, or an errno with *stage the step that failed (1 create, 2 load,
/// 3 resume; ENOSPC at 2 when the buffer is too small); a device whose load or resume failed is
/// removed again. Makes no /dev node.
int keel_dm_create_device(int fd, const char *name, const char *uuid, uint64_t length, const char *type,
                          const char *params, void *buffer, size_t capacity, uint64_t *dev, int *stage);

// --- libdevmapper -------------------------------------------------------------------------------

/// Routes libdevmapper's log (errors and fatals) into a per-thread buffer instead of stderr,
/// drops its warnings and debug output, and turns libdm's udev synchronisation off.
void keel_dm_log_install(void);
/// Forgets the collected libdm error text of the calling thread (call before each libdm call).
void keel_dm_log_clear(void);
/// The libdm error text collected on the calling thread since the last clear ("" for none).
/// Several messages are joined with "; ". Valid until the next libdm call on this thread.
const char *keel_dm_log_text(void);
/// The first non-zero errno libdm passed to its log since the last clear, or 0.
int keel_dm_log_errno(void);

struct dm_task;
/// The first entry of a DM_DEVICE_LIST result, or NULL when the list is empty.
const void *keel_dm_names_first(struct dm_task *task);
/// The entry after `entry`, or NULL at the end.
const void *keel_dm_names_next(const void *entry);
/// The dm name of `entry`.
const char *keel_dm_names_name(const void *entry);

#endif
