// Small C for what Swift cannot import directly (see include/keel_shim.h).
#define _GNU_SOURCE
#include <errno.h>
#include "keel_shim.h"

int keel_errno(void) { return errno; }
