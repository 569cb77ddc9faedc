// Process discipline's C (see include/keel_process.h): malloc tuning, the seccomp-BPF program that
// refuses process creation, prctl, signalfd, eventfd, thread names and default stacks.
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include "keel_process.h"

// --- malloc -------------------------------------------------------------------------------------

int keel_process_mallopt(keel_malloc_parameter parameter, int value) {
    switch (parameter) {
    case KEEL_MALLOC_ARENA_MAX: return mallopt(M_ARENA_MAX, value);
    case KEEL_MALLOC_MMAP_MAX: return mallopt(M_MMAP_MAX, value);
    case KEEL_MALLOC_TRIM_THRESHOLD: return mallopt(M_TRIM_THRESHOLD, value);
    case KEEL_MALLOC_MMAP_THRESHOLD: return mallopt(M_MMAP_THRESHOLD, value);
    }
    return 0;
}

keel_malloc_statistics keel_process_malloc_statistics(void) {
    struct mallinfo2 info = mallinfo2();
    keel_malloc_statistics statistics = {
        .heap_bytes = info.arena,
        .mapped_bytes = info.hblkhd,
        .mapped_regions = info.hblks,
        .in_use_bytes = info.uordblks,
    };
    return statistics;
}

void keel_process_prefault(void *start, size_t length, size_t page_bytes) {
    // volatile: the compiler must not drop a store of the value just loaded. A write (not only a
    // read) is needed: a read of an untouched private page maps the shared zero page, and the
    // first write would then still fault.
    volatile unsigned char *bytes = start;
    for (size_t offset = 0; offset < length; offset += page_bytes) bytes[offset] = bytes[offset];
    if (length > 0) bytes[length - 1] = bytes[length - 1];
}

// --- threads ------------------------------------------------------------------------------------

int keel_process_set_thread_name(pthread_t thread, const char *name) { return pthread_setname_np(thread, name); }

int keel_process_thread_name(pthread_t thread, char *buffer, size_t capacity) {
    return pthread_getname_np(thread, buffer, capacity);
}

int keel_process_set_default_stack_bytes(size_t stack_bytes) {
    pthread_attr_t attributes;
    int result = pthread_getattr_default_np(&attributes);
    if (result != 0) return result;
    result = pthread_attr_setstacksize(&attributes, stack_bytes);
    if (result == 0) result = pthread_setattr_default_np(&attributes);
    pthread_attr_destroy(&attributes);
    return result;
}

size_t keel_process_current_stack_bytes(void) {
    pthread_attr_t attributes;
    if (pthread_getattr_np(pthread_self(), &attributes) != 0) return 0;
    size_t bytes = 0;
    if (pthread_attr_getstacksize(&attributes, &bytes) != 0) bytes = 0;
    pthread_attr_destroy(&attributes);
    return bytes;
}

int32_t keel_process_gettid(void) { return (int32_t)gettid(); }

// --- stack watermark ----------------------------------------------------------------------------

#define KEEL_STACK_PAINT 0xA5A5A5A5A5A5A5A5ull
// Left unpainted below the caller's frame: this function's own frame and memset's live there.
#define KEEL_STACK_PAINT_MARGIN 4096

int keel_process_stack_bounds(uintptr_t *low, uintptr_t *high) {
    pthread_attr_t attributes;
    int result = pthread_getattr_np(pthread_self(), &attributes);
    if (result != 0) return result;
    void *address = NULL;
    size_t bytes = 0;
    result = pthread_attr_getstack(&attributes, &address, &bytes);
    pthread_attr_destroy(&attributes);
    if (result != 0) return result;
    *low = (uintptr_t)address;
    *high = (uintptr_t)address + bytes;
    return 0;
}

__attribute__((noinline)) void keel_process_paint_stack(uintptr_t low) {
    volatile char here = 0;
    uintptr_t frame = (uintptr_t)&here;
    low = (low + 7) & ~(uintptr_t)7;
    if (frame <= low + KEEL_STACK_PAINT_MARGIN) return;
    uintptr_t end = (frame - KEEL_STACK_PAINT_MARGIN) & ~(uintptr_t)7;
    for (volatile uint64_t *word = (volatile uint64_t *)low; (uintptr_t)word < end; word++) *word = KEEL_STACK_PAINT;
}

size_t keel_process_stack_untouched(uintptr_t low, uintptr_t high) {
    low = (low + 7) & ~(uintptr_t)7;
    const volatile uint64_t *word = (const volatile uint64_t *)low;
    while ((uintptr_t)(word + 1) <= high && *word == KEEL_STACK_PAINT) word++;
    return (uintptr_t)word - low;
}


// --- seccomp ------------------------------------------------------------------------------------

int keel_process_set_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }

int keel_process_no_new_privs(void) { return prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); }

#if defined(__x86_64__)
#define KEEL_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define KEEL_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "keel_process: no seccomp architecture for this target"
#endif

// The low 32 bits of the first system call argument (clone's flags on x86_64 and aarch64).
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define KEEL_ARG0_LOW offsetof(struct seccomp_data, args[0])
#else
#define KEEL_ARG0_LOW (offsetof(struct seccomp_data, args[0]) + 4)
#endif

#define KEEL_LOAD(field) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (field))
#define KEEL_RETURN(action) BPF_STMT(BPF_RET | BPF_K, (action))
// "if nr == number return ERRNO(error)": two instructions.
#define KEEL_REFUSE(number, error) \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (number), 0, 1), \
    KEEL_RETURN(SECCOMP_RET_ERRNO | ((error) & SECCOMP_RET_DATA))

// The program. Order matters only for the clone block, whose jumps are relative.
static const struct sock_filter keel_process_creation_filter[] = {
    // 1. Another architecture's system call numbers mean something else: a filter written for
    //    this one cannot judge them, so the process is killed (seccomp best practice).
    KEEL_LOAD(offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, KEEL_AUDIT_ARCH, 1, 0),
    KEEL_RETURN(SECCOMP_RET_KILL_PROCESS),
    KEEL_LOAD(offsetof(struct seccomp_data, nr)),
#if defined(__x86_64__)
    // x32 calls carry AUDIT_ARCH_X86_64 too but set bit 30 of the number: same rule, killed.
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, __X32_SYSCALL_BIT, 0, 1),
    KEEL_RETURN(SECCOMP_RET_KILL_PROCESS),
#endif
    // 2. clone3 takes its flags in a structure in user memory, which BPF cannot read, so a
    //    thread cannot be told from a process here. ENOSYS (not EPERM) makes glibc's
    //    pthread_create and posix_spawn fall back to clone, whose flags are judged below.
#ifdef __NR_clone3
    KEEL_REFUSE(__NR_clone3, ENOSYS),
#endif
#ifdef __NR_fork
    KEEL_REFUSE(__NR_fork, EPERM),
#endif
#ifdef __NR_vfork
    KEEL_REFUSE(__NR_vfork, EPERM),
#endif
    KEEL_REFUSE(__NR_execve, EPERM),
#ifdef __NR_execveat
    KEEL_REFUSE(__NR_execveat, EPERM),
#endif
    // 3. clone: allowed only with CLONE_THREAD, i.e. a new thread of this process.
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3),
    KEEL_LOAD(KEEL_ARG0_LOW),
    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 1, 0),
    KEEL_RETURN(SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
    // 4. Everything else.
    KEEL_RETURN(SECCOMP_RET_ALLOW),
};

int keel_process_process_creation_filter_length(void) {
    return (int)(sizeof(keel_process_creation_filter) / sizeof(keel_process_creation_filter[0]));
}

long keel_process_install_process_creation_filter(void) {
    struct sock_fprog program = {
        .len = (unsigned short)keel_process_process_creation_filter_length(),
        .filter = (struct sock_filter *)keel_process_creation_filter,
    };
    long result = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &program);
    if (result > 0) {
        // TSYNC names a thread it could not synchronise (it runs another filter).
        errno = ESRCH;
        return result;
    }
    if (result == -1 && errno == ENOSYS) return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0);
    return result;
}

long keel_process_syscall(long number, long a0, long a1, long a2, long a3, long a4, long a5) {
    return syscall(number, a0, a1, a2, a3, a4, a5);
}

keel_process_creation_syscalls keel_process_creation_syscall_numbers(void) {
    keel_process_creation_syscalls numbers = {
        .fork = -1, .vfork = -1, .execve = __NR_execve, .execveat = -1, .clone = __NR_clone, .clone3 = -1,
    };
#ifdef __NR_fork
    numbers.fork = __NR_fork;
#endif
#ifdef __NR_vfork
    numbers.vfork = __NR_vfork;
#endif
#ifdef __NR_execveat
    numbers.execveat = __NR_execveat;
#endif
#ifdef __NR_clone3
    numbers.clone3 = __NR_clone3;
#endif
    return numbers;
}

unsigned long keel_process_thread_clone_flags(void) {
    return CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
}

// --- signals ------------------------------------------------------------------------------------

int keel_process_signalfd(const int *signals, int count) {
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) {
        if (sigaddset(&set, signals[i]) != 0) return -1;
    }
    int result = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (result != 0) {
        errno = result;
        return -1;
    }
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int keel_process_signal_blocked(int signal) {
    sigset_t set;
    int result = pthread_sigmask(SIG_BLOCK, NULL, &set);
    if (result != 0) {
        errno = result;
        return -1;
    }
    return sigismember(&set, signal);
}

int keel_process_signalfd_read(int fd, keel_signal_record *record) {
    struct signalfd_siginfo info;
    for (;;) {
        ssize_t n = read(fd, &info, sizeof(info));
        if (n == (ssize_t)sizeof(info)) break;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return 0;
        if (n >= 0) errno = EIO;  // signalfd returns whole records only
        return -1;
    }
    record->signal = info.ssi_signo;
    record->sender_pid = (int32_t)info.ssi_pid;
    record->sender_uid = info.ssi_uid;
    record->code = info.ssi_code;
    return 1;
}

// --- eventfd ------------------------------------------------------------------------------------

int keel_process_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int keel_process_keep_capabilities(uint64_t keep) {
    // Bounding set first (needs CAP_SETPCAP, which the capset below may drop). Capabilities
    // past the kernel's last one answer EINVAL: that is the end.
    for (int cap = 0; cap < 64; cap++) {
        if (keep & (1ULL << cap)) continue;
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0) break;
        (void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    }
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0) return -1;
    for (int i = 0; i < 2; i++) {
        uint32_t mask = (uint32_t)(keep >> (32 * i));
        data[i].effective &= mask;
        data[i].permitted &= mask;
        data[i].inheritable &= mask;
    }
    return (int)syscall(SYS_capset, &header, data);
}

uint64_t keel_process_effective_capabilities(void) {
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0) return 0;
    return (uint64_t)data[0].effective | ((uint64_t)data[1].effective << 32);
}

int keel_process_malloc_trim(size_t pad) { return malloc_trim(pad); }
