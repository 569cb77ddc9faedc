// The test bundle's own malloc: counts calls and hands them to glibc's implementation.
//
// It keeps no per-thread state at all (the measured thread is compared with pthread_self(),
// which reads the thread pointer and allocates nothing), so nothing of it can be freed under a
// thread that is still exiting. A counter that frees a thread's block in a TSD destructor but
// leaves its thread-local pointer set is written through after the free by later destructors
// of the same thread (their frees are counted too): heap corruption that shows up later, far
// from its cause (`malloc_consolidate(): invalid chunk size`).
//
// Defined in the test executable, these symbols interpose libc's for every library the process
// loads (the executable comes first in ELF symbol lookup).
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include "keel_malloc_counter.h"

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void __libc_free(void *pointer);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

static atomic_int counting;
static atomic_ulong measured_thread;
static atomic_llong measured_count;
static atomic_llong process_count;

static inline void count_call(void) {
    if (!atomic_load_explicit(&counting, memory_order_relaxed)) return;
    atomic_fetch_add_explicit(&process_count, 1, memory_order_relaxed);
    if ((unsigned long)pthread_self() == atomic_load_explicit(&measured_thread, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&measured_count, 1, memory_order_relaxed);
    }
}

void keel_malloc_counter_begin(void) {
    atomic_store(&measured_count, 0);
    atomic_store(&process_count, 0);
    atomic_store(&measured_thread, (unsigned long)pthread_self());
    atomic_store(&counting, 1);
}

int64_t keel_malloc_counter_end(void) {
    atomic_store(&counting, 0);
    atomic_store(&measured_thread, 0);
    return atomic_load(&measured_count);
}

int64_t keel_malloc_counter_process_total(void) { return atomic_load(&process_count); }

void *malloc(size_t size) { count_call(); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { count_call(); return __libc_calloc(count, size); }
void *realloc(void *pointer, size_t size) { count_call(); return __libc_realloc(pointer, size); }
void free(void *pointer) { __libc_free(pointer); }
void *memalign(size_t alignment, size_t size) { count_call(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { count_call(); return __libc_memalign(alignment, size); }
void *valloc(size_t size) { count_call(); return __libc_valloc(size); }
void *pvalloc(size_t size) { count_call(); return __libc_pvalloc(size); }

int posix_memalign(void **out, size_t alignment, size_t size) {
    count_call();
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL && size != 0) return ENOMEM;
    *out = pointer;
    return 0;
}
