// Small C for what Swift cannot import directly: macros, _GNU_SOURCE-only symbols and kernel
// ioctl structures. Each area has a header of its own beside this one.
#ifndef KEEL_SHIM_H
#define KEEL_SHIM_H
#include <stdint.h>
#include <stddef.h>

/// The calling thread's errno (Swift's Glibc errno is not always visible in every module).
int keel_errno(void);

#endif
