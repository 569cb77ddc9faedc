// Counts allocation calls for the zero-allocation tests: malloc and its relatives, interposed.
#ifndef KEEL_MALLOC_COUNTER_H
#define KEEL_MALLOC_COUNTER_H
#include <stdint.h>

/// Starts counting: from now, every allocation call of the calling thread is counted (and every
/// thread's in the process-wide total). Resets both counts.
void keel_malloc_counter_begin(void);

/// Stops counting and returns the calling thread's count since `keel_malloc_counter_begin`.
int64_t keel_malloc_counter_end(void);

/// Allocation calls of every thread between the last begin and end.
int64_t keel_malloc_counter_process_total(void);

#endif
