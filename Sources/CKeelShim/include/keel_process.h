// Process discipline's C needs: mallopt/mallinfo2, the seccomp filter, prctl, signalfd, eventfd,
// thread names, default thread stacks, and syscall(2) without varargs. See Sources/CKeelShim/process.c.
#ifndef KEEL_PROCESS_H
#define KEEL_PROCESS_H
#include <stdint.h>
#include <stddef.h>
#include <pthread.h>

// --- malloc -------------------------------------------------------------------------------------

/// The mallopt parameters Keel sets (malloc.h's M_* values are mapped in process.c).
typedef enum {
    /// M_ARENA_MAX: how many malloc arenas threads may create.
    KEEL_MALLOC_ARENA_MAX = 0,
    /// M_MMAP_MAX: how many allocations malloc may serve with mmap.
    KEEL_MALLOC_MMAP_MAX = 1,
    /// M_TRIM_THRESHOLD: free top-of-heap bytes kept before malloc returns memory to the kernel.
    KEEL_MALLOC_TRIM_THRESHOLD = 2,
    /// M_MMAP_THRESHOLD: the size from which an allocation gets a mapping of its own (setting
    /// it also stops glibc from raising it as mapped chunks are freed).
    KEEL_MALLOC_MMAP_THRESHOLD = 3,
} keel_malloc_parameter;

/// mallopt(parameter, value): 1 on success, 0 when glibc refused the value.
int keel_process_mallopt(keel_malloc_parameter parameter, int value);

/// malloc_trim(pad): returns free memory at the top of the heap to the kernel; 1 if any was.
int keel_process_malloc_trim(size_t pad);

/// What mallinfo2() reports, reduced to what Keel shows.
typedef struct {
    /// Bytes obtained with brk/sbrk by the main arena (mallinfo2.arena).
    uint64_t heap_bytes;
    /// Bytes in chunks served with mmap (mallinfo2.hblkhd).
    uint64_t mapped_bytes;
    /// Number of chunks served with mmap (mallinfo2.hblks).
    uint64_t mapped_regions;
    /// Bytes in use by the program in the main arena (mallinfo2.uordblks).
    uint64_t in_use_bytes;
} keel_malloc_statistics;

/// mallinfo2() as a keel_malloc_statistics.
keel_malloc_statistics keel_process_malloc_statistics(void);

/// Writes to one byte in every page of [start, start + length) (a volatile read and write back of
/// the byte already there), so every page is populated now and not on first use.
void keel_process_prefault(void *start, size_t length, size_t page_bytes);

// --- threads ------------------------------------------------------------------------------------

/// pthread_setname_np(thread, name). 0 or an errno (ERANGE for a name over 15 bytes).
int keel_process_set_thread_name(pthread_t thread, const char *name);

/// pthread_getname_np(thread, buffer, capacity). 0 or an errno.
int keel_process_thread_name(pthread_t thread, char *buffer, size_t capacity);

/// pthread_setattr_default_np with only the stack size changed: threads created without
/// attributes (by libraries) get `stack_bytes` stacks. 0 or an errno.
int keel_process_set_default_stack_bytes(size_t stack_bytes);

/// The stack size of the calling thread (pthread_getattr_np + pthread_attr_getstacksize), or 0.
size_t keel_process_current_stack_bytes(void);

/// The calling thread's stack: its lowest usable address (above the guard) and its end, from
/// pthread_getattr_np. Returns 0, or an error number.
int keel_process_stack_bounds(uintptr_t *low, uintptr_t *high);

/// Fills the calling thread's stack from `low` up to a margin below the caller's frame with
/// KEEL_STACK_PAINT, so `keel_process_stack_untouched` can later tell how deep it ever went.
void keel_process_paint_stack(uintptr_t low);

/// How many bytes from `low` up still hold the paint (never used since painting). May be called
/// from any thread; the answer is a snapshot of a stack that may be in use.
size_t keel_process_stack_untouched(uintptr_t low, uintptr_t high);

/// The kernel thread id of the calling thread (gettid).
int32_t keel_process_gettid(void);

// --- capabilities -------------------------------------------------------------------------------

/// Keeps only the capabilities whose bits are set in `keep` (bit n = capability n): drops the
/// others from the calling thread's bounding set (PR_CAPBSET_DROP, needs CAP_SETPCAP) and from its
/// effective, permitted and inheritable sets (capset). Threads created afterwards inherit the
/// result. Returns 0, or -1 with errno of the capset.
int keel_process_keep_capabilities(uint64_t keep);

/// The calling thread's effective capabilities (bit n = capability n); 0 on failure.
uint64_t keel_process_effective_capabilities(void);

// --- seccomp ------------------------------------------------------------------------------------

/// prctl(PR_SET_NO_NEW_PRIVS, 1): required before an unprivileged seccomp filter. 0 or -1/errno.
int keel_process_set_no_new_privs(void);

/// prctl(PR_GET_NO_NEW_PRIVS): 1 when set, 0 when not, -1/errno on failure.
int keel_process_no_new_privs(void);

/// Installs the filter that refuses process creation (see process.c for the program):
/// fork, vfork, execve, execveat and clone without CLONE_THREAD fail with EPERM; clone3 fails
/// with ENOSYS; foreign-architecture and x32 system calls kill the process. Uses
/// seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC) so every thread of the process gets
/// it; with no seccomp(2) (ENOSYS) falls back to prctl(PR_SET_SECCOMP), which covers only the
/// calling thread and the threads it creates later.
/// 0 on success; -1 and errno on failure (a positive return is the id of a thread TSYNC could not
/// synchronise, errno then ESRCH).
long keel_process_install_process_creation_filter(void);

/// How many instructions the filter has (for reports).
int keel_process_process_creation_filter_length(void);

/// syscall(number, a0, ..., a5) without varargs, for calls glibc does not wrap. -1 and errno on
/// failure.
long keel_process_syscall(long number, long a0, long a1, long a2, long a3, long a4, long a5);

/// System call numbers of this architecture for the calls the filter refuses; -1 where the
/// architecture has no such call (aarch64 has neither fork nor vfork).
typedef struct {
    long fork;
    long vfork;
    long execve;
    long execveat;
    long clone;
    long clone3;
} keel_process_creation_syscalls;

/// This architecture's numbers for the calls the filter refuses.
keel_process_creation_syscalls keel_process_creation_syscall_numbers(void);

/// CLONE_THREAD, CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND, CLONE_SYSVSEM together: the
/// flags pthread_create passes to clone.
unsigned long keel_process_thread_clone_flags(void);

// --- signals ------------------------------------------------------------------------------------

/// Blocks `signals[0..<count]` in the calling thread (pthread_sigmask SIG_BLOCK) and returns
/// signalfd(-1, that set, SFD_NONBLOCK|SFD_CLOEXEC). -1 and errno on failure (EINVAL for a bad
/// signal number); the mask is left unchanged when the set cannot be built.
int keel_process_signalfd(const int *signals, int count);

/// Whether `signal` is blocked in the calling thread: 1 yes, 0 no, -1/errno.
int keel_process_signal_blocked(int signal);

/// What Keel keeps of one signalfd_siginfo.
typedef struct {
    uint32_t signal;
    int32_t sender_pid;
    uint32_t sender_uid;
    int32_t code;
} keel_signal_record;

/// One read(2) of a struct signalfd_siginfo from `fd`: 1 and the record, 0 when nothing is
/// pending (EAGAIN), -1 and errno on failure.
int keel_process_signalfd_read(int fd, keel_signal_record *record);

// --- eventfd ------------------------------------------------------------------------------------

/// eventfd(0, EFD_NONBLOCK|EFD_CLOEXEC). -1 and errno on failure.
int keel_process_eventfd(void);

#endif
